//! `xva inspect` over guest definitions (xm, xl, SXP, VMX, OVF, OVA) in temp dirs: detection,
//! disk resolution, `--set`, `--path-map`, OVA members and manifests, and the bad inputs of
//! issue 4 (exit code 3, a clear message, nothing written).

use std::path::Path;

use serde_json::Value;
use xva::guest::ova;

use crate::util::{stderr, TestDir};

const CONFIGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/configs");

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{out}"))
}

fn write(dir: &TestDir, name: &str, data: impl AsRef<[u8]>) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, data).unwrap();
}

fn sized(dir: &TestDir, name: &str, size: u64) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::File::create(p).unwrap().set_len(size).unwrap();
}

fn fails_with(dir: &TestDir, args: &[&str], needles: &[&str]) {
    let before = dir.files();
    let out = dir.xva(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "expected exit 3 for {args:?}; stderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    assert_eq!(dir.files(), before, "nothing may be written");
}

#[test]
fn xl_config_plan_as_json() {
    let dir = TestDir::new();
    sized(&dir, "root.img", 8 << 20);
    sized(&dir, "data.img", 3 << 20);
    let root = dir.join("root.img");
    let data = dir.join("data.img");
    write(
        &dir,
        "web01.cfg",
        format!(
            "name = \"web01\"\ntype = \"hvm\"\nmemory = 1024\nvcpus = 2\nviridian = 1\n\
             disk = [ '{},raw,xvda,rw', 'format=raw, vdev=xvdb, target={}', ',hdc:cdrom,r' ]\n\
             vif = [ 'mac=00:16:3E:01:02:03,bridge=xenbr0' ]\n",
            root.display(),
            data.display()
        ),
    );
    let v = json(&dir.xva_ok(["inspect", "web01.cfg", "--output", "json"]));
    assert_eq!(v["source_kind"], "xl");
    assert_eq!(v["name"], "web01");
    assert_eq!(v["memory"]["static_max"], 1u64 << 30);
    assert_eq!(v["boot"]["mode"], "hvm");
    assert_eq!(v["disk_images"][0]["virtual_size"], 8u64 << 20);
    assert_eq!(v["disk_images"][1]["virtual_size"], 3u64 << 20);
    assert_eq!(v["disk_images"][0]["format"], "raw");
    let rec = &v["vm_record"];
    assert_eq!(rec["domain_type"], "hvm");
    assert_eq!(rec["vcpus_max"], 2);
    assert_eq!(rec["cdrom"], true);
    assert_eq!(rec["platform"]["viridian"], true);
    assert_eq!(rec["disks"][0]["userdevice"], 0);
    assert_eq!(rec["disks"][1]["userdevice"], 1);
    assert_eq!(rec["vifs"][0]["mac"], "00:16:3e:01:02:03");
    // Human output names the notes with their severity.
    let human = dir.xva_ok(["inspect", "web01.cfg"]);
    assert!(human.contains("userdevice 0, bootable"), "{human}");
    assert!(human.contains("restore mode"), "{human}");
}

#[test]
fn xm_example_needs_set_and_path_map() {
    let dir = TestDir::new();
    std::fs::copy(Path::new(CONFIGS).join("xm/xmexample2"), dir.join("xmexample2")).unwrap();
    // Without vmid the config cannot be evaluated: the error names the line and the fix.
    fails_with(&dir, &["inspect", "xmexample2"], &["xmexample2:16", "--set vmid="]);
    // phy:sda9 and phy:sda6 live in /dev on the source host; here they are files.
    sized(&dir, "dev/sda9", 1 << 20);
    sized(&dir, "dev/sda6", 2 << 20);
    let map = format!("/dev={}", dir.join("dev").display());
    let v = json(&dir.xva_ok(["inspect", "xmexample2", "--set", "vmid=2", "--path-map", &map, "--output", "json"]));
    assert_eq!(v["source_kind"], "xm");
    assert_eq!(v["name"], "VM2");
    assert_eq!(v["disk_images"][0]["virtual_size"], 1u64 << 20);
    assert_eq!(v["disk_images"][1]["virtual_size"], 2u64 << 20);
    assert_eq!(v["vm_record"]["domain_type"], "pv");
    assert_eq!(v["vm_record"]["disks"][1]["read_only"], true);
    let notes = v["notes"].as_array().unwrap();
    assert!(notes.iter().any(|n| n["severity"] == "important" && n["message"].as_str().unwrap().contains("PV")));
}

#[test]
fn missing_disks_are_listed_all_at_once() {
    let dir = TestDir::new();
    write(
        &dir,
        "vm.cfg",
        "name = 'x'\nbootloader = 'pygrub'\ndisk = ['phy:/nonexistent/a,xvda,w', 'file:/nonexistent/b.img,xvdb,w']\n",
    );
    fails_with(&dir, &["inspect", "vm.cfg"], &["2 disk file(s)", "/nonexistent/a", "/nonexistent/b.img", "--path-map"]);
}

#[test]
fn bad_configs_exit_3_with_line_and_construct() {
    let dir = TestDir::new();
    write(&dir, "unterminated.cfg", "name = 'x\nmemory = 512\n");
    fails_with(&dir, &["inspect", "unterminated.cfg", "--source-type", "xm"], &["unterminated.cfg:1", "unterminated"]);
    write(&dir, "prefix.cfg", "name = 'x'\nbootloader = 'pygrub'\ndisk = ['lvm:/dev/x,xvda,w']\n");
    fails_with(&dir, &["inspect", "prefix.cfg"], &["prefix.cfg:3", "disk prefix \"lvm"]);
    write(&dir, "code.cfg", "import os\nname = os.uname()[1]\n");
    fails_with(&dir, &["inspect", "code.cfg"], &["code.cfg:1", "import", "--set"]);
    write(&dir, "noise.bin", [0xffu8, 0xfe, 0x00, 0x01]);
    fails_with(&dir, &["inspect", "noise.bin"], &["noise.bin"]);
}

#[test]
fn vmx_workstation_fixture_with_snapshots() {
    let dir = TestDir::new();
    let src = Path::new(CONFIGS).join("vmx/workstation-win7");
    for f in ["Win7.vmx", "Win7.vmsd"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    // Stand-ins for the disks (opened as raw here; the VMDK reader follows real chains).
    sized(&dir, "Win7-000002.vmdk", 4 << 20);
    sized(&dir, "Win7-data.vmdk", 1 << 20);
    let v = json(&dir.xva_ok(["inspect", "Win7.vmx", "--output", "json"]));
    assert_eq!(v["source_kind"], "vmx");
    assert_eq!(v["name"], "Büro-PC Café");
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 2);
    assert_eq!(v["snapshots"][1]["current"], true);
    assert!(v["disk_images"][0]["source"].as_str().unwrap().ends_with("Win7-000002.vmdk"));
    assert_eq!(v["vm_record"]["vifs"][0]["mac"], "00:0c:29:c0:3a:22");
    // A lock file means the VM is running: refused unless --force.
    std::fs::create_dir(dir.join("Win7.vmx.lck")).unwrap();
    let out = dir.xva(["inspect", "Win7.vmx"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"));
    dir.xva_ok(["inspect", "Win7.vmx", "--force"]);
}

#[test]
fn vmx_disk_outside_its_directory_is_refused() {
    let dir = TestDir::new();
    sized(&dir, "other-vm/disk.vmdk", 1 << 20);
    std::fs::create_dir(dir.join("vm")).unwrap();
    std::fs::copy(Path::new(CONFIGS).join("vmx/bad/outside.vmx"), dir.join("vm/outside.vmx")).unwrap();
    fails_with(&dir, &["inspect", "vm/outside.vmx"], &["outside the directory", "../other-vm/disk.vmdk"]);
    // An ESXi datastore path is refused too, and --path-map brings it in.
    std::fs::write(
        dir.join("vm/esx.vmx"),
        "config.version = \"8\"\ndisplayName = \"e\"\nmemsize = \"512\"\nscsi0:0.fileName = \"/vmfs/volumes/ds1/e/e.vmdk\"\n",
    )
    .unwrap();
    fails_with(&dir, &["inspect", "vm/esx.vmx"], &["--path-map"]);
    sized(&dir, "copied/e.vmdk", 1 << 20);
    let map = format!("/vmfs/volumes/ds1/e={}", dir.join("copied").display());
    dir.xva_ok(["inspect", "vm/esx.vmx", "--path-map", &map]);
}

fn ovf_for(disk_href: &str, disk_bytes: u64) -> String {
    std::fs::read_to_string(Path::new(CONFIGS).join("ovf/two-disks.ovf"))
        .unwrap()
        .replace("app01-disk1.vmdk", disk_href)
        .replace(
            "<File ovf:href=\"app01-disk2.vmdk\" ovf:id=\"file2\" ovf:size=\"65536\"/>",
            "",
        )
        .replace(
            "<Disk ovf:capacity=\"2048\" ovf:capacityAllocationUnits=\"byte * 2^20\" ovf:diskId=\"vmdisk2\" ovf:fileRef=\"file2\" ovf:format=\"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized\"/>",
            "",
        )
        .replace("<rasd:HostResource>ovf:/disk/vmdisk2</rasd:HostResource>", "<rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>")
        .replace("ovf:capacity=\"16\"", &format!("ovf:capacity=\"{disk_bytes}\""))
        .replace("ovf:capacityAllocationUnits=\"byte * 2^30\"", "ovf:capacityAllocationUnits=\"byte\"")
}

#[test]
fn ova_read_in_place_with_manifest() {
    let dir = TestDir::new();
    // The disk is a VMware-layout streamOptimized VMDK (compressed grains, GD at the end).
    let raw: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    let disk = xva::backends::vmdk::build::sparse(
        &raw,
        &|_| xva::backends::vmdk::build::GrainSpec::Data,
        &xva::backends::vmdk::build::SparseOpts { stream: true, ..Default::default() },
    );
    let ovf = ovf_for("app01-disk1.vmdk", raw.len() as u64);
    let mf = format!(
        "SHA256(app01.ovf)= {}\nSHA1(app01-disk1.vmdk)= {}\n",
        ova::sha256_hex(ovf.as_bytes()),
        ova::sha1_hex(&disk)
    );
    let tar =
        ova::build_tar(&[("app01.ovf", ovf.as_bytes()), ("app01.mf", mf.as_bytes()), ("app01-disk1.vmdk", &disk)]);
    write(&dir, "app01.ova", &tar);
    let v = json(&dir.xva_ok(["inspect", "app01.ova", "--output", "json"]));
    assert_eq!(v["source_kind"], "ova");
    assert_eq!(v["name"], "app01 & db");
    let d = &v["disks"][0]["source"];
    assert_eq!(d["kind"], "ova_member");
    assert_eq!(d["name"], "app01-disk1.vmdk");
    let (off, len) = (d["offset"].as_u64().unwrap() as usize, d["len"].as_u64().unwrap() as usize);
    assert_eq!(&tar[off..off + len], &disk[..], "the member is a window of the OVA, not a copy");
    assert_eq!(v["disk_images"][0]["format"], "vmdk");
    assert_eq!(v["disk_images"][0]["virtual_size"], raw.len() as u64);
    assert!(v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["message"].as_str().unwrap().contains("manifest verified")));
    assert_eq!(dir.files(), ["app01.ova"], "nothing extracted");

    // One byte of the disk changed: the manifest check fails.
    let mut bad = tar.clone();
    bad[off + 1000] ^= 1;
    write(&dir, "bad.ova", &bad);
    fails_with(&dir, &["inspect", "bad.ova"], &["digest mismatch", "app01-disk1.vmdk"]);
}

#[test]
fn chunked_disks_in_an_ova_and_next_to_an_ovf() {
    let raw: Vec<u8> = (0..(1u32 << 20)).map(|i| (i / 7 % 253) as u8).collect();
    let disk = xva::backends::vmdk::build::sparse(
        &raw,
        &|g| {
            if g % 3 == 0 {
                xva::backends::vmdk::build::GrainSpec::Data
            } else {
                xva::backends::vmdk::build::GrainSpec::Unallocated
            }
        },
        &xva::backends::vmdk::build::SparseOpts { stream: true, ..Default::default() },
    );
    let third = disk.len() / 3 + 1;
    let chunks: Vec<&[u8]> = disk.chunks(third).collect();
    assert_eq!(chunks.len(), 3);
    let ovf = ovf_for("app01-disk1.vmdk", raw.len() as u64)
        .replace("ovf:href=\"app01-disk1.vmdk\"", &format!("ovf:href=\"app01-disk1.vmdk\" ovf:chunkSize=\"{third}\""));
    let names: Vec<String> = (0..3).map(|i| format!("app01-disk1.vmdk.{i:09}")).collect();
    let mut mf = format!("SHA256(app01.ovf)= {}\n", ova::sha256_hex(ovf.as_bytes()));
    for (n, c) in names.iter().zip(&chunks) {
        mf.push_str(&format!("SHA256({n})= {}\n", ova::sha256_hex(c)));
    }
    let mut members: Vec<(&str, &[u8])> = vec![("app01.ovf", ovf.as_bytes()), ("app01.mf", mf.as_bytes())];
    for (n, c) in names.iter().zip(&chunks) {
        members.push((n.as_str(), c));
    }
    let dir = TestDir::new();
    write(&dir, "app01.ova", ova::build_tar(&members));
    let v = json(&dir.xva_ok(["inspect", "app01.ova", "--output", "json"]));
    assert_eq!(v["disks"][0]["source"]["kind"], "chunks");
    assert_eq!(v["disks"][0]["source"]["parts"].as_array().unwrap().len(), 3);
    assert_eq!(v["disk_images"][0]["format"], "vmdk");
    assert_eq!(v["disk_images"][0]["virtual_size"], raw.len() as u64);

    // Read through the library: the joined chunks give back the raw disk.
    let g = xva::guest::load(&dir.join("app01.ova"), &Default::default()).unwrap();
    let r = xva::guest::open_disk(&g.disks[0], &Default::default()).unwrap();
    let mut back = vec![0u8; raw.len()];
    r.read_exact_at(&mut back, 0).unwrap();
    for (i, (a, b)) in back.chunks(65536).zip(raw.chunks(65536)).enumerate() {
        if (i as u64).is_multiple_of(3) {
            assert_eq!(a, b, "grain {i}");
        } else {
            assert!(a.iter().all(|&x| x == 0), "grain {i} unallocated reads as zeros");
        }
    }

    // The same chunks as files next to the .ovf.
    let dir = TestDir::new();
    write(&dir, "app01.ovf", &ovf);
    for (n, c) in names.iter().zip(&chunks) {
        write(&dir, n, c);
    }
    let v = json(&dir.xva_ok(["inspect", "app01.ovf", "--output", "json"]));
    assert_eq!(v["disks"][0]["source"]["kind"], "chunks");
    assert_eq!(v["disk_images"][0]["format"], "vmdk");
    assert_eq!(v["disk_images"][0]["virtual_size"], raw.len() as u64);
}

#[test]
fn ovf_next_to_its_disks_and_bad_units() {
    let dir = TestDir::new();
    write(&dir, "app01.ovf", ovf_for("app01-disk1.vmdk", 2 << 20));
    sized(&dir, "app01-disk1.vmdk", 2 << 20);
    let v = json(&dir.xva_ok(["inspect", "app01.ovf", "--output", "json"]));
    assert_eq!(v["source_kind"], "ovf");
    assert_eq!(v["boot"]["firmware"], "uefi");
    assert_eq!(v["boot"]["secure_boot"], true);
    assert_eq!(v["disk_images"][0]["checks"].as_array().unwrap().len(), 1, "raw stand-in for a vmdk: {v}");
    std::fs::copy(Path::new(CONFIGS).join("ovf/bad/huge-units.ovf"), dir.join("huge.ovf")).unwrap();
    fails_with(&dir, &["inspect", "huge.ovf"], &["huge.ovf:", "impossibly large"]);
}

#[test]
fn sxp_fixture_detected_by_content() {
    let dir = TestDir::new();
    let text = std::fs::read_to_string(Path::new(CONFIGS).join("sxp/ubuntu-pv.sxp")).unwrap();
    sized(&dir, "sdb7", 1 << 20);
    sized(&dir, "data.img", 1 << 20);
    let text = text
        .replace("phy:/dev/sdb7", &format!("phy:{}", dir.join("sdb7").display()))
        .replace("tap:aio:/srv/xen/ubuntu-data.img", &format!("tap:aio:{}", dir.join("data.img").display()));
    write(&dir, "domain-dump", text);
    let v = json(&dir.xva_ok(["inspect", "domain-dump", "--output", "json"]));
    assert_eq!(v["source_kind"], "sxp");
    assert_eq!(v["vm_record"]["domain_type"], "pv");
    assert_eq!(v["nics"][0]["mac"], "00:16:3e:1b:8b:d2");
}

/// Config → guest model → VM record → XVA (through the library, as `xva convert SOURCE` will
/// wire it) → `xva verify`; the record carries what the source said.
#[test]
fn config_to_xva_end_to_end() {
    use xva::backends::OpenOptions;
    use xva::xva::{records, writer};

    let dir = TestDir::new();
    // Boot disk with data at the start and the end; a second, empty disk.
    let mut c = vec![0u8; 4 << 20];
    c[..512].copy_from_slice(&[0x55; 512]);
    let n = c.len();
    c[n - 512..].copy_from_slice(&[0xaa; 512]);
    write(&dir, "c.img", &c);
    sized(&dir, "d.img", 2 << 20);
    write(
        &dir,
        "win2008",
        format!(
            "kernel = '/usr/lib/xen/boot/hvmloader'\nbuilder = 'hvm'\nname = 'win%d' % 2008\n\
             memory = '1024'\nmaxmem = 2048\nvcpus = 2\nacpi = 1\napic = 0\npae = 1\nviridian = 1\n\
             rtc_timeoffset = -3600\n\
             disk = [ 'file:{c},hda,w', 'file:{d},hdb,r', ',hdc:cdrom,r' ]\n\
             vif = [ 'type=ioemu, mac=00:16:3e:5a:01:02, bridge=xenbr1', 'bridge=xenbr0' ]\n",
            c = dir.join("c.img").display(),
            d = dir.join("d.img").display(),
        ),
    );
    let mut g = xva::guest::load(&dir.join("win2008"), &Default::default()).unwrap();
    assert_eq!(g.source_kind, xva::guest::SourceKind::Xm);
    let readers = g.open_disks(&OpenOptions::default()).unwrap();
    let sizes: Vec<u64> = readers.iter().map(|r| r.virtual_size()).collect();
    let vm = xva::plan::vm_spec(&g, &sizes).unwrap();
    let xml = records::ova_xml(&vm).unwrap();
    let ids: Vec<String> = (0..readers.len()).map(records::vdi_id).collect();
    let sources: Vec<writer::DiskSource<'_>> =
        readers.iter().zip(&ids).map(|(r, id)| writer::DiskSource { id, reader: r.as_ref() }).collect();
    let mut out = std::fs::File::create(dir.join("win2008.xva")).unwrap();
    writer::write_xva(&mut out, &xml, &sources, &writer::WriteOptions::default(), &|_| {}).unwrap();
    drop(out);
    dir.xva_ok(["verify", "win2008.xva"]);

    // Read ova.xml back out of the XVA (it is a tar; the guest OVA indexer reads it).
    let xva_path = dir.join("win2008.xva");
    let idx = ova::index_file(&xva_path).unwrap();
    let m = idx.get("ova.xml").expect("ova.xml member");
    let text = String::from_utf8(ova::read_member(&xva_path, m, 1 << 20).unwrap()).unwrap();
    let has = |needle: &str| assert!(text.contains(needle), "ova.xml lacks {needle}");
    has("<name>name_label</name><value>win2008</value>");
    has(&format!("<name>memory_static_max</name><value>{}</value>", 2u64 << 30));
    has(&format!("<name>memory_dynamic_max</name><value>{}</value>", 1u64 << 30));
    has("<name>VCPUs_max</name><value>2</value>");
    has("<name>HVM_boot_policy</name><value>BIOS order</value>");
    has("<name>apic</name><value>false</value>");
    has("<name>viridian</name><value>true</value>");
    has("<name>timeoffset</name><value>-3600</value>");
    has("<name>MAC</name><value>00:16:3e:5a:01:02</value>");
    has("Pool-wide network associated with eth1");
    has(&format!("<name>virtual_size</name><value>{}</value>", 4u64 << 20));
    // Disk order: the boot disk's VDI (4 MiB) comes before the second (2 MiB).
    let first = text.find(&format!("<name>virtual_size</name><value>{}</value>", 4u64 << 20)).unwrap();
    let second = text.find(&format!("<name>virtual_size</name><value>{}</value>", 2u64 << 20)).unwrap();
    assert!(first < second);
}

/// The Workstation fixture with a real three-layer chain: `Win7.vmdk` ← `Win7-000001.vmdk` ←
/// `Win7-000002.vmdk` (the file the .vmx names). The current state is read through the chain.
#[test]
fn vmx_current_state_is_the_delta_chain() {
    use xva::backends::vmdk::build::{sparse, GrainSpec, SparseOpts};
    const GRAIN: usize = 64 << 10;
    let size = 1usize << 20;
    let desc = |cid: &str, parent: &str, hint: Option<&str>, file: &str| {
        format!(
            "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID={cid}\nparentCID={parent}\n\
             createType=\"monolithicSparse\"\n{}\n# Extent description\nRW {} SPARSE \"{file}\"\n\n\
             # The Disk Data Base\nddb.adapterType = \"lsisas1068\"\n",
            hint.map(|h| format!("parentFileNameHint=\"{h}\"\n")).unwrap_or_default(),
            size / 512
        )
    };
    let layer = |fill: u8, grains: std::ops::Range<u64>, d: String| {
        let raw = vec![fill; size];
        sparse(
            &raw,
            &|g| if grains.contains(&g) { GrainSpec::Data } else { GrainSpec::Unallocated },
            &SparseOpts { descriptor: Some(d), ..Default::default() },
        )
    };
    let dir = TestDir::new();
    let src = Path::new(CONFIGS).join("vmx/workstation-win7");
    for f in ["Win7.vmx", "Win7.vmsd"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    write(&dir, "Win7.vmdk", layer(0xa0, 0..16, desc("0000000a", "ffffffff", None, "Win7.vmdk")));
    write(
        &dir,
        "Win7-000001.vmdk",
        layer(0xb1, 0..4, desc("0000000b", "0000000a", Some("Win7.vmdk"), "Win7-000001.vmdk")),
    );
    write(
        &dir,
        "Win7-000002.vmdk",
        layer(0xc2, 2..6, desc("0000000c", "0000000b", Some("Win7-000001.vmdk"), "Win7-000002.vmdk")),
    );
    sized(&dir, "Win7-data.vmdk", 1 << 20);
    let v = json(&dir.xva_ok(["inspect", "Win7.vmx", "--output", "json"]));
    let d0 = &v["disk_images"][0];
    assert_eq!(d0["format"], "vmdk");
    assert_eq!(d0["virtual_size"], size as u64);
    assert_eq!(d0["chain"].as_array().unwrap().len(), 3, "{d0}");
    assert_eq!(v["vm_record"]["disks"][0]["bootable"], true);

    let g = xva::guest::load(&dir.join("Win7.vmx"), &Default::default()).unwrap();
    let r = xva::guest::open_disk(&g.disks[0], &Default::default()).unwrap();
    let mut back = vec![0u8; size];
    r.read_exact_at(&mut back, 0).unwrap();
    for (g, chunk) in back.chunks(GRAIN).enumerate() {
        let want = match g {
            0 | 1 => 0xb1,
            2..=5 => 0xc2,
            _ => 0xa0,
        };
        assert!(chunk.iter().all(|&b| b == want), "grain {g}");
    }
}
