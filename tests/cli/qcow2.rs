//! qcow2 through the real binary: `xva convert --disk X.qcow2` → `xva verify` → `xva extract`
//! gives back `qemu-img convert -O raw`; `xva map` equals `qemu-img map`; `xva info` shows the
//! chain; an xm guest with a `tap:qcow2:` disk converts. These tests need qemu-img and qemu-io
//! and fail (never skip) without them.

use std::path::Path;

use crate::util::{merge, parse_map, qemu_img, run_ok, sha256_file, TestDir};

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// base.qcow2 (zlib-compressed from base.raw) ← mid.qcow2 ← top.qcow2 (v2), with data,
/// zeroes over parent data and partial clusters; returns the virtual size.
fn chain(t: &TestDir) -> u64 {
    let qemu = qemu_img();
    let size = (40u64 << 20) + 3 * 512;
    crate::util::sparse_file(
        &t.join("base.raw"),
        size,
        &[(0, 4096), (1 << 20, 200_000), (9 << 20, 70_000), (30 << 20, 1 << 20), (size - 2048, 2048)],
    );
    run_ok(qemu, &["convert", "-c", "-f", "raw", "-O", "qcow2", p(&t.join("base.raw")), p(&t.join("base.qcow2"))]);
    run_ok(qemu, &["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", p(&t.join("mid.qcow2"))]);
    run_ok(
        "qemu-io",
        &["-f", "qcow2", "-c", "write -P 0xab 65536 65536", "-c", "write -z 1048576 131072", p(&t.join("mid.qcow2"))],
    );
    run_ok(
        qemu,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "compat=0.10",
            "-b",
            "mid.qcow2",
            "-F",
            "qcow2",
            p(&t.join("top.qcow2")),
        ],
    );
    run_ok(
        "qemu-io",
        &["-f", "qcow2", "-c", "write -P 0xcd 9437184 3000", "-c", "write -z 31457792 1024", p(&t.join("top.qcow2"))],
    );
    size
}

#[test]
fn convert_verify_extract_equal_qemu_raw() {
    let t = TestDir::new();
    let size = chain(&t);
    for name in ["top.qcow2", "base.qcow2"] {
        t.xva_ok(["convert", "--disk", name, "-o", "out.xva"]);
        run_ok(qemu_img(), &["convert", "-f", "qcow2", "-O", "raw", p(&t.join(name)), p(&t.join("want.raw"))]);
        assert_eq!(std::fs::metadata(t.join("want.raw")).unwrap().len(), size);
        let want = sha256_file(&t.join("want.raw"));
        t.xva_ok(["verify", "out.xva", "--expect-sha256", &want]);
        t.xva_ok(["extract", "out.xva", "-o", "got.raw"]);
        assert_eq!(sha256_file(&t.join("got.raw")), want, "{name}: extracted disk");
        for f in ["out.xva", "got.raw", "want.raw"] {
            std::fs::remove_file(t.join(f)).unwrap();
        }
    }
}

#[test]
fn map_matches_qemu_and_info_shows_the_chain() {
    let t = TestDir::new();
    let size = chain(&t);
    for name in ["base.qcow2", "mid.qcow2", "top.qcow2"] {
        let ours = t.xva_ok(["map", "--output", "json", name]);
        let theirs = run_ok(qemu_img(), &["map", "--output=json", "-f", "qcow2", p(&t.join(name))]);
        assert_eq!(
            merge(parse_map(&ours, size)),
            merge(parse_map(&theirs, size)),
            "map of {name}\nours: {ours}\nqemu: {theirs}"
        );
    }
    // Entry by entry, with `offset` and `compressed` (qemu before 8.2 prints no `compressed`).
    for name in ["base.qcow2", "top.qcow2"] {
        let ours: serde_json::Value = serde_json::from_str(&t.xva_ok(["map", "--output", "json", name])).unwrap();
        let theirs = run_ok(qemu_img(), &["map", "--output=json", "-f", "qcow2", p(&t.join(name))]);
        let mut theirs: serde_json::Value = serde_json::from_str(&theirs).unwrap();
        let mut ours = ours.as_array().unwrap().clone();
        for (o, q) in ours.iter_mut().zip(theirs.as_array_mut().unwrap()) {
            if q.get("compressed").is_none() {
                o.as_object_mut().unwrap().remove("compressed");
            }
        }
        assert_eq!(serde_json::Value::Array(ours), theirs, "{name}");
    }
    let out = t.xva_ok(["info", "--output", "json", "top.qcow2"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["format"], "qcow2");
    assert_eq!(v["virtual_size"], size);
    let chain = v["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 3, "{v}");
    assert_eq!(chain[0]["details"]["backing_file"], "mid.qcow2", "{v}");
    assert_eq!(chain[0]["details"]["version"], "2 (compat=0.10)", "{v}");
    assert_eq!(chain[1]["details"]["backing_format"], "qcow2", "{v}");
    assert_eq!(chain[2]["format"], "qcow2", "{v}");
}

/// An xend guest whose disk is `tap:qcow2:` converts, and the XVA holds qemu's bytes.
#[test]
fn xm_guest_with_a_tap_qcow2_disk() {
    let t = TestDir::new();
    chain(&t);
    let cfg = format!(
        "name = 'q1'\nmemory = 256\nkernel = '/usr/lib/xen/boot/hvmloader'\nbuilder = 'hvm'\n\
         disk = [ 'tap:qcow2:{},hda,w' ]\n",
        t.join("top.qcow2").display()
    );
    std::fs::write(t.join("q1.cfg"), cfg).unwrap();
    t.xva_ok(["convert", "q1.cfg", "-o", "q1.xva"]);
    run_ok(qemu_img(), &["convert", "-f", "qcow2", "-O", "raw", p(&t.join("top.qcow2")), p(&t.join("want.raw"))]);
    t.xva_ok(["extract", "q1.xva", "-o", "got.raw"]);
    assert_eq!(sha256_file(&t.join("got.raw")), sha256_file(&t.join("want.raw")));
}

/// The corrupt bit: refused with advice, read with --allow-corrupt.
#[test]
fn corrupt_bit_is_refused_unless_allowed() {
    let t = TestDir::new();
    crate::util::sparse_file(&t.join("d.raw"), 1 << 20, &[(0, 4096)]);
    run_ok(qemu_img(), &["convert", "-f", "raw", "-O", "qcow2", p(&t.join("d.raw")), p(&t.join("c.qcow2"))]);
    let mut f = std::fs::read(t.join("c.qcow2")).unwrap();
    f[79] |= 2; // incompatible_features bit 1, big-endian u64 at 72
    std::fs::write(t.join("c.qcow2"), f).unwrap();
    let out = t.xva(["convert", "--disk", "c.qcow2", "-o", "c.xva"]);
    assert!(!out.status.success());
    let e = crate::util::stderr(&out);
    assert!(e.contains("corrupt bit") && e.contains("--allow-corrupt") && e.contains("c.qcow2"), "{e}");
    t.xva_ok(["convert", "--disk", "c.qcow2", "-o", "c.xva", "--allow-corrupt"]);
}

/// The format rule (issue 9, qemu's CVE-2008-2004): a disk the guest definition declares raw
/// (`file:`) whose content a guest wrote as a qcow2 header naming a backing file converts as
/// raw, byte for byte, and the named file is never opened (here it is a directory, which would
/// fail the conversion if anything tried to open it).
#[test]
fn a_disk_declared_raw_is_read_as_raw_even_when_it_looks_like_qcow2() {
    for backing in ["other.img", "../other.img"] {
        let t = TestDir::new();
        std::fs::create_dir(t.join("vm")).unwrap();
        std::fs::create_dir(t.join("other.img")).unwrap();
        std::fs::create_dir(t.join("vm/other.img")).unwrap();
        let disk = t.join("vm/disk.img");
        run_ok(qemu_img(), &["create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "raw", p(&disk), "64M"]);
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
            f.set_len(3 << 20).unwrap();
            f.seek(SeekFrom::Start(2 << 20)).unwrap();
            f.write_all(&crate::util::pattern(9, 70_000)).unwrap();
        }
        let cfg = format!(
            "name = 'g'\nmemory = 256\nbuilder = 'hvm'\nkernel = '/usr/lib/xen/boot/hvmloader'\n\
             disk = [ 'file:{},hda,w' ]\n",
            disk.display()
        );
        std::fs::write(t.join("vm/g.cfg"), cfg).unwrap();
        let out = t.xva(["convert", "vm/g.cfg", "-o", "g.xva"]);
        let e = crate::util::stderr(&out);
        assert!(out.status.success(), "{backing}: {e}");
        assert!(e.contains("looks like a qcow2 image") && e.contains("read as raw"), "{e}");
        t.xva_ok(["extract", "g.xva", "-o", "got.raw"]);
        assert_eq!(sha256_file(&t.join("got.raw")), sha256_file(&disk), "{backing}: byte for byte");
        let inspect = t.xva_ok(["inspect", "vm/g.cfg"]);
        assert!(inspect.contains("looks like a qcow2 image"), "{inspect}");
        // Given alone, the same file is probed as qcow2 and its backing file is judged by the
        // open policy (a directory is not an image; `..` is refused).
        assert!(!t.xva(["convert", "--disk", "vm/disk.img", "-o", "d.xva"]).status.success());
    }
}
