//! VHDX through the real binary: `xva convert` → `xva verify` → `xva extract` gives back
//! `qemu-img convert -O raw`'s bytes for dynamic and fixed disks, and the builder's bytes for
//! what qemu cannot read (a dirty log, a differencing disk); `xva info` shows the VHDX facts.
//! These tests need qemu-img and fail (never skip) without it.

use std::path::Path;

use xva_backends::vhdx::build::{self, guid, Block, LogSpec, Spec};
use xva_backends::vhdx::header;

use crate::util::{pattern, qemu_img, run_ok, sha256_file, sparse_file, TestDir};

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// convert → verify (against the SHA-256 of `want`) → extract equals `want`.
fn round_trip(t: &TestDir, name: &str, want: &Path) {
    t.xva_ok(["convert", "--disk", name, "-o", "out.xva"]);
    let digest = sha256_file(want);
    t.xva_ok(["verify", "out.xva", "--expect-sha256", &digest]);
    t.xva_ok(["extract", "out.xva", "-o", "got.raw"]);
    assert_eq!(sha256_file(&t.join("got.raw")), digest, "{name}: extracted disk");
    std::fs::remove_file(t.join("out.xva")).unwrap();
    std::fs::remove_file(t.join("got.raw")).unwrap();
}

#[test]
fn convert_verify_extract_equal_qemu_raw() {
    for sub in ["dynamic", "fixed"] {
        let t = TestDir::new();
        let size = (40u64 << 20) + 3 * 512;
        sparse_file(&t.join("base.raw"), size, &[(4096, 5000), (9 << 20, 1 << 20), (size - 2048, 2048)]);
        let opts = format!("subformat={sub},block_size=1M");
        run_ok(
            qemu_img(),
            &["convert", "-f", "raw", "-O", "vhdx", "-o", &opts, p(&t.join("base.raw")), p(&t.join("d.vhdx"))],
        );
        run_ok(qemu_img(), &["convert", "-f", "vhdx", "-O", "raw", p(&t.join("d.vhdx")), p(&t.join("want.raw"))]);
        let before = sha256_file(&t.join("d.vhdx"));
        round_trip(&t, "d.vhdx", &t.join("want.raw"));
        assert_eq!(sha256_file(&t.join("d.vhdx")), before, "the source is not modified");
        let v: serde_json::Value = serde_json::from_str(&t.xva_ok(["info", "--output", "json", "d.vhdx"])).unwrap();
        assert_eq!(v["format"], "vhdx", "{v}");
        assert_eq!(v["virtual_size"], size, "{v}");
        let d = &v["chain"][0]["details"];
        assert_eq!(d["disk type"], sub, "{v}");
        assert_eq!(d["block size"], "1048576", "{v}");
        assert_eq!(d["logical sector size"], "512", "{v}");
    }
}

/// A dirty log (qemu refuses to open it read-only) and a differencing disk (qemu cannot read
/// it): the builder's bytes come back.
#[test]
fn a_dirty_log_and_a_differencing_disk_convert() {
    let t = TestDir::new();
    let mut spec = Spec::dynamic((5 << 20) + 512);
    spec.data_write_guid = guid(77);
    spec.blocks = vec![(0, Block::Data(pattern(1, 70_000))), (4, Block::Data(pattern(2, 1 << 20)))];
    spec.log = Some(LogSpec { logged: vec![4], ..Default::default() });
    std::fs::write(t.join("dirty.vhdx"), build::build(&spec)).unwrap();
    std::fs::write(t.join("want.raw"), spec.expected()).unwrap();
    let before = sha256_file(&t.join("dirty.vhdx"));
    round_trip(&t, "dirty.vhdx", &t.join("want.raw"));
    assert_eq!(sha256_file(&t.join("dirty.vhdx")), before, "the log is replayed in memory only");
    let info = t.xva_ok(["info", "dirty.vhdx"]);
    assert!(info.contains("replayed in memory"), "{info}");

    // A child over the replayed disk (the parent's DataWriteGuid is its linkage).
    let mut child = Spec::dynamic((5 << 20) + 512);
    child.blocks = vec![
        (1, Block::Data(pattern(3, 4096))),
        (4, Block::Partial { data: pattern(4, 1 << 20), sectors: (0..2048).map(|s| s % 2 == 0).collect() }),
    ];
    child.parent = Some(vec![
        ("parent_linkage".to_string(), format!("{{{}}}", header::guid_string(&guid(77)))),
        ("relative_path".to_string(), ".\\dirty.vhdx".to_string()),
    ]);
    std::fs::write(t.join("child.avhdx"), build::build(&child)).unwrap();
    let mut want = spec.expected();
    let top = child.expected();
    want[1 << 20..(1 << 20) + 4096].copy_from_slice(&top[1 << 20..(1 << 20) + 4096]);
    want[(1 << 20) + 4096..2 << 20].fill(0);
    for s in (0..2048).step_by(2) {
        let at = (4 << 20) + s * 512;
        want[at..at + 512].copy_from_slice(&top[at..at + 512]);
    }
    std::fs::write(t.join("want.raw"), &want).unwrap();
    round_trip(&t, "child.avhdx", &t.join("want.raw"));
}
