//! `xva convert SOURCE`: a guest definition (xm, xl, VMX) becomes an XVA whose VM record says
//! what the source said, with command-line overrides and `--disk` replacing the disks.

use crate::util::{sparse_file, stderr, TestDir};

/// The `ova.xml` of an XVA (its first member).
fn ova_xml(path: &std::path::Path) -> String {
    let first = crate::util::members(path).into_iter().next().expect("a member");
    assert_eq!(first.name, "ova.xml");
    String::from_utf8(first.data).unwrap()
}

fn xm_guest(t: &TestDir) {
    sparse_file(&t.join("root.img"), 6 << 20, &[(0, 512), ((6 << 20) - 512, 512)]);
    sparse_file(&t.join("data.img"), 3 << 20, &[(1 << 20, 4096)]);
    let cfg = format!(
        "# xend config\nkernel = '/usr/lib/xen/boot/hvmloader'\nbuilder = 'hvm'\nname = 'web%02d' % 1\n\
         memory = 1024\nvcpus = 2\napic = 0\nviridian = 1\n\
         disk = [ 'file:{},hda,w', 'tap:aio:{},hdb,w', ',hdc:cdrom,r' ]\n\
         vif = [ 'mac=00:16:3e:00:00:01, bridge=xenbr0' ]\n",
        t.join("root.img").display(),
        t.join("data.img").display()
    );
    std::fs::write(t.join("web01"), cfg).unwrap();
}

#[test]
fn xm_config_to_verified_xva() {
    let t = TestDir::new();
    xm_guest(&t);
    let out = t.xva(["convert", "web01", "-o", "web01.xva", "--verify", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["vm"], "web01");
    assert_eq!(v["disks"].as_array().unwrap().len(), 2);
    let xml = ova_xml(&t.join("web01.xva"));
    for want in [
        "<name>name_label</name><value>web01</value>",
        "<name>memory_static_max</name><value>1073741824</value>",
        "<name>VCPUs_max</name><value>2</value>",
        "<name>HVM_boot_policy</name><value>BIOS order</value>",
        "<name>apic</name><value>false</value>",
        "<name>viridian</name><value>true</value>",
        "<name>MAC</name><value>00:16:3e:00:00:01</value>",
        "<name>type</name><value>CD</value>",
        "<name>virtual_size</name><value>6291456</value>",
    ] {
        assert!(xml.contains(want), "ova.xml lacks {want}");
    }
    // The boot disk (6 MiB) is disk 0, the data disk (3 MiB) disk 1.
    assert!(xml.find("<value>6291456</value>").unwrap() < xml.find("<value>3145728</value>").unwrap());
}

#[test]
fn command_line_overrides_and_xva_py_config_flag() {
    let t = TestDir::new();
    xm_guest(&t);
    sparse_file(&t.join("other.img"), 1 << 20, &[(0, 100)]);
    // -c is xva.py's spelling; --disk replaces the config's disks
    t.xva_ok([
        "convert",
        "-c",
        "web01",
        "--name",
        "renamed",
        "--memory",
        "512",
        "--vcpus",
        "1",
        "--nx",
        "--no-viridian",
        "--disk",
        "other.img",
        "--network",
        "LAN",
        "-o",
        "o.xva",
    ]);
    let xml = ova_xml(&t.join("o.xva"));
    for want in [
        "<name>name_label</name><value>renamed</value>",
        "<name>memory_static_max</name><value>536870912</value>",
        "<name>VCPUs_max</name><value>1</value>",
        "<name>nx</name><value>true</value>",
        "<name>viridian</name><value>false</value>",
        "<name>name_label</name><value>LAN</value>",
        "<name>virtual_size</name><value>1048576</value>",
    ] {
        assert!(xml.contains(want), "ova.xml lacks {want}");
    }
    assert!(!xml.contains("<value>6291456</value>"), "the config's disks were replaced");
}

#[test]
fn pv_config_warns_and_hvm_converts_the_boot_mode() {
    let t = TestDir::new();
    sparse_file(&t.join("pv.img"), 2 << 20, &[(0, 512)]);
    let cfg = format!(
        "name = \"pv1\"\ntype = \"pv\"\nmemory = 512\nbootloader = \"pygrub\"\nextra = \"console=hvc0\"\n\
         disk = [ 'format=raw, vdev=xvda, access=rw, target={}' ]\n",
        t.join("pv.img").display()
    );
    std::fs::write(t.join("pv1.cfg"), cfg).unwrap();
    let out = t.xva(["convert", "pv1.cfg", "-o", "pv.xva"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("PV"), "the PV warning is shown: {}", stderr(&out));
    let xml = ova_xml(&t.join("pv.xva"));
    assert!(xml.contains("<name>PV_bootloader</name><value>pygrub</value>"));
    let out = t.xva(["convert", "pv1.cfg", "--hvm", "-o", "hvm.xva"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let xml = ova_xml(&t.join("hvm.xva"));
    assert!(xml.contains("<name>HVM_boot_policy</name><value>BIOS order</value>"));
    assert!(xml.contains("<name>PV_bootloader</name><value/>"));
}

#[test]
fn missing_disks_of_a_config_fail_before_writing() {
    let t = TestDir::new();
    std::fs::write(
        t.join("g.cfg"),
        "name = \"g\"\ntype = \"hvm\"\ndisk = [ '/nonexistent/a.img,raw,xvda,rw', '/nonexistent/b.img,raw,xvdb,rw' ]\n",
    )
    .unwrap();
    let out = t.xva(["convert", "g.cfg", "-o", "g.xva"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("a.img") && e.contains("b.img"), "{e}");
    assert_eq!(t.files(), ["g.cfg"]);
    // a SOURCE and -c together are a usage error
    let out = t.xva(["convert", "g.cfg", "-c", "g.cfg", "-o", "g.xva"]);
    assert_eq!(out.status.code(), Some(2));
}
