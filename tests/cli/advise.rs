//! Boot advisories end to end: guest disks made by e2fsprogs (`mke2fs -d`, a real ext4 with
//! extents and metadata checksums — the oracle for our reading through ext4-view), partitioned
//! by hand, then `xva inspect` and `xva convert` on an xl definition. Needs `mke2fs`
//! (Debian: e2fsprogs); without it the tests fail with that hint.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{sha256_file, stderr, TestDir};

const UUID: &str = "0b4f5a9e-1d2c-4e3f-8a7b-6c5d4e3f2a1b";

fn mke2fs() -> &'static str {
    let ok = Command::new("mke2fs").arg("-V").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "mke2fs is required for this test (it builds the guest filesystems): apt-get install -y e2fsprogs");
    "mke2fs"
}

fn put(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// An uncompressed newc cpio of empty files.
fn newc(names: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, n) in names.iter().chain(["TRAILER!!!"].iter()).enumerate() {
        v.extend_from_slice(b"070701");
        for f in [i as u64 + 1, 0o100644, 0, 0, 1, 0, 0, 0, 0, 0, 0, n.len() as u64 + 1, 0] {
            v.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        v.extend_from_slice(n.as_bytes());
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
    }
    v
}

/// A CentOS-5-like Xen guest: `…el5xen` kernel only, `/dev/sda1` in fstab and grub, `xvc0`
/// console, an initramfs without xen-blkfront or ata_piix; ext4 in partition 1 of an MBR disk
/// whose boot code is all zeros.
fn el5_disk(dir: &TestDir) -> PathBuf {
    let tree = dir.join("tree");
    let v = "2.6.18-398.el5xen";
    put(&tree, "etc/fstab", b"/dev/sda1 / ext4 defaults 1 1\nLABEL=SWAP swap swap defaults 0 0\n");
    put(&tree, "etc/redhat-release", b"CentOS release 5.11 (Final)\n");
    put(&tree, &format!("boot/vmlinuz-{v}"), b"not really a kernel");
    put(&tree, &format!("boot/config-{v}"), b"CONFIG_X86_XEN=y\nCONFIG_XEN_BLKDEV_FRONTEND=m\n");
    put(&tree, &format!("boot/initrd-{v}.img"), &newc(&["lib/ext3.ko", "lib/jbd.ko", "init"]));
    put(
        &tree,
        "boot/grub/menu.lst",
        format!("title CentOS\n kernel /boot/vmlinuz-{v} ro root=/dev/sda1 console=xvc0\n").as_bytes(),
    );
    let fs = dir.join("fs.img");
    let out = Command::new(mke2fs())
        .args(["-q", "-F", "-t", "ext4", "-O", "metadata_csum,64bit", "-L", "root", "-U", UUID, "-d"])
        .arg(&tree)
        .arg(&fs)
        .arg("8M")
        .output()
        .unwrap();
    assert!(out.status.success(), "mke2fs: {}", String::from_utf8_lossy(&out.stderr));
    let disk = mbr_disk(&std::fs::read(&fs).unwrap(), 0x83, false);
    let path = dir.join("el5.img");
    std::fs::write(&path, disk).unwrap();
    path
}

/// `fs` as active partition 1 (type `kind`) of an MBR disk, from 1 MiB; boot code or zeros.
fn mbr_disk(fs: &[u8], kind: u8, boot_code: bool) -> Vec<u8> {
    let mut disk = vec![0u8; (1 << 20) + fs.len()];
    let e = &mut disk[446..462];
    e[0] = 0x80;
    e[4] = kind;
    e[8..12].copy_from_slice(&2048u32.to_le_bytes());
    e[12..16].copy_from_slice(&((fs.len() / 512) as u32).to_le_bytes());
    if boot_code {
        disk[0] = 0x33;
    }
    disk[510] = 0x55;
    disk[511] = 0xAA;
    disk[1 << 20..].copy_from_slice(fs);
    disk
}

fn config(dir: &TestDir, disk: &Path) {
    let cfg =
        format!("name = \"el5\"\nbootloader = \"pygrub\"\nmemory = 512\ndisk = [ 'file:{},xvda,w' ]\n", disk.display());
    std::fs::write(dir.join("el5.cfg"), cfg).unwrap();
}

fn codes(v: &Value) -> Vec<String> {
    v["advisories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{} {}", a["severity"].as_str().unwrap(), a["code"].as_str().unwrap()))
        .collect()
}

#[test]
fn inspect_an_el5_xen_guest() {
    let dir = TestDir::new();
    let disk = el5_disk(&dir);
    config(&dir, &disk);
    let before = sha256_file(&disk);
    let v: Value = serde_json::from_str(&dir.xva_ok(["inspect", "el5.cfg", "--output", "json"])).unwrap();
    assert_eq!(v["target"], "xcp-ng-8.3");
    assert_eq!(codes(&v), ["BLOCK C3", "BLOCK L1", "BLOCK L3", "BLOCK L7", "WARN L5", "WARN L9"]);
    let fs = &v["disk_images"][0]["inspection"]["filesystems"][0];
    assert_eq!(fs["fs_type"], "ext4");
    assert_eq!(fs["uuid"], UUID);
    assert_eq!(fs["label"], "root");
    assert_eq!(fs["linux"]["distro"], "CentOS release 5.11 (Final)");
    let by = |c: &str| v["advisories"].as_array().unwrap().iter().find(|a| a["code"] == c).unwrap().clone();
    assert_eq!(
        by("L5")["evidence"],
        "disk 0 partition 1 /etc/fstab:1 /dev/sda1; disk 0 partition 1 /boot/grub/menu.lst:2 /dev/sda1"
    );
    assert!(by("L5")["fix"].as_str().unwrap().contains(&format!("UUID={UUID}")));
    assert!(by("L7")["evidence"].as_str().unwrap().contains("/boot/initrd-2.6.18-398.el5xen.img (none)"));
    let read = v["disk_images"][0]["inspection"]["bytes_read"].as_u64().unwrap();
    assert!(read < 1 << 20, "{read} bytes read to inspect a 9 MiB disk");

    let human = dir.xva_ok(["inspect", "el5.cfg"]);
    assert!(human.contains("advisories:   (target xcp-ng-8.3)"), "{human}");
    assert!(human.contains("BLOCK L1   only Xen-PV-only kernels"), "{human}");
    // A target that still runs PV: what only matters for HVM goes away; pygrub's limits appear.
    let v: Value =
        serde_json::from_str(&dir.xva_ok(["inspect", "el5.cfg", "--output", "json", "--target", "xenserver-7.1"]))
            .unwrap();
    assert_eq!(codes(&v), ["BLOCK L7", "WARN L5", "WARN L13"]);
    let out = dir.xva(["inspect", "el5.cfg", "--target", "xenserver-9"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("xcp-ng-8.3"));
    assert_eq!(sha256_file(&disk), before, "inspection must not change the source");
}

#[test]
fn convert_shows_advice_before_writing() {
    let dir = TestDir::new();
    let disk = el5_disk(&dir);
    config(&dir, &disk);
    let before = sha256_file(&disk);
    let out = dir.xva(["convert", "el5.cfg", "--hvm", "-o", "el5.xva"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let l1 = err.find("advice: BLOCK L1:").unwrap_or_else(|| panic!("{err}"));
    assert!(err[..l1].find("wrote").is_none(), "advice comes before the result:\n{err}");
    assert!(!err.contains("C3"), "--hvm: the guest is no longer PV:\n{err}");
    let out = dir.xva(["convert", "el5.cfg", "--hvm", "-o", "el5b.xva", "--json"]);
    let v: Value = serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(codes(&v), ["BLOCK L1", "BLOCK L3", "BLOCK L7", "WARN L5", "WARN L9"]);
    assert_eq!(sha256_file(&disk), before);
}

#[test]
fn inspect_a_bare_disk_without_a_definition() {
    let dir = TestDir::new();
    let disk = el5_disk(&dir);
    let disk = disk.to_str().unwrap();
    let v: Value = serde_json::from_str(&dir.xva_ok(["inspect", "--disk", disk, "--output", "json"])).unwrap();
    assert_eq!(v["source_kind"], "disks");
    assert_eq!(codes(&v), ["BLOCK L1", "BLOCK L3", "BLOCK L7", "WARN L5", "WARN L9"]);
    assert_eq!(v["disk_images"][0]["inspection"]["table"]["scheme"], "mbr");
    // An empty disk: nothing found, nothing said.
    std::fs::File::create(dir.join("empty.img")).unwrap().set_len(4 << 20).unwrap();
    let human = dir.xva_ok(["inspect", "--disk", "empty.img"]);
    assert!(!human.contains("advisories"), "{human}");
    let out = dir.xva(["inspect"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

fn tool(name: &str) -> &str {
    let ok = Command::new(name)
        .arg("--version")
        .output()
        .map(|o| o.status.success() || !o.stderr.is_empty())
        .unwrap_or(false);
    assert!(ok, "{name} is required for this test (it builds the NTFS guest volume): apt-get install -y ntfs-3g");
    name
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// An XP-style NTFS volume (mkntfs, ntfscp): `boot.ini` with `/gplpv`, a hibernated
/// `hiberfil.sys`; in partition 1 of an MBR disk.
fn xp_disk(dir: &TestDir, hibernated: bool) -> PathBuf {
    let vol = dir.join("ntfs.img");
    std::fs::File::create(&vol).unwrap().set_len(16 << 20).unwrap();
    let v = vol.to_str().unwrap();
    run(tool("mkntfs"), &["-F", "-q", "-Q", "-L", "WINXP", "-s", "512", "-p", "2048", "-H", "255", "-S", "63", v]);
    let ini = dir.join("boot.ini");
    std::fs::write(
        &ini,
        b"[operating systems]\r\nmulti(0)disk(0)rdisk(0)partition(1)\\WINDOWS=\"XP\" /fastdetect /gplpv\r\n",
    )
    .unwrap();
    run(tool("ntfscp"), &["-q", v, ini.to_str().unwrap(), "boot.ini"]);
    let hib = dir.join("hib");
    let mut h = if hibernated { b"HIBR".to_vec() } else { vec![0; 4] };
    h.resize(8192, 0);
    std::fs::write(&hib, h).unwrap();
    run("ntfscp", &["-q", v, hib.to_str().unwrap(), "hiberfil.sys"]);
    let disk = mbr_disk(&std::fs::read(&vol).unwrap(), 0x07, true);
    let path = dir.join(if hibernated { "xp-hib.img" } else { "xp.img" });
    std::fs::write(&path, disk).unwrap();
    path
}

#[test]
fn an_xp_volume_hibernated_with_gplpv() {
    let dir = TestDir::new();
    let disk = xp_disk(&dir, true);
    let before = sha256_file(&disk);
    let d = disk.to_str().unwrap();
    let v: Value = serde_json::from_str(&dir.xva_ok(["inspect", "--disk", d, "--output", "json"])).unwrap();
    assert_eq!(codes(&v), ["BLOCK W10", "WARN W7", "INFO W12"]);
    let by = |c: &str| v["advisories"].as_array().unwrap().iter().find(|a| a["code"] == c).unwrap().clone();
    assert_eq!(by("W10")["evidence"], "disk 0 partition 1: \\hiberfil.sys starts with a hibernation signature");
    assert_eq!(by("W7")["evidence"], "disk 0 partition 1: \\boot.ini has /gplpv");
    assert_eq!(sha256_file(&disk), before);
    let clean = xp_disk(&dir, false);
    let v: Value =
        serde_json::from_str(&dir.xva_ok(["inspect", "--disk", clean.to_str().unwrap(), "--output", "json"])).unwrap();
    assert_eq!(codes(&v), ["WARN W7", "INFO W12"]);
}
