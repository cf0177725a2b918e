//! VMDK through the real binary: `xva map` equals `qemu-img map`, `xva info` shows the chain and
//! the descriptor facts, and `xva convert` of a VMDK chain rebuilds to `qemu-img convert -O raw`.
//! These tests need qemu-img and qemu-io and fail (never skip) without them.

use std::path::Path;

use crate::util::{merge, parse_map, qemu_img, run_ok, stderr, MapEntry, TestDir};

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// qemu reports holes of flat extents as `zero` and `data` at once (it recurses into the file);
/// xva reports them as zero only. Compare in xva's terms.
fn normalise(mut m: Vec<MapEntry>) -> Vec<MapEntry> {
    for e in &mut m {
        if e.zero {
            e.data = false;
        }
    }
    merge(m)
}

/// base.vmdk (`sub`) ← base-000001.vmdk (zeroed grains) with data, zeroes over the base's data
/// and partial-grain writes.
fn chain(t: &TestDir, sub: &str) -> u64 {
    let qemu = qemu_img();
    let size = (48u64 << 20) + 5 * 512;
    crate::util::sparse_file(
        &t.join("base.raw"),
        size,
        &[(0, 4096), (1 << 20, 200_000), (9 << 20, 70_000), (30 << 20, 1 << 20), (size - 2048, 2048)],
    );
    run_ok(
        qemu,
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            &format!("subformat={sub}"),
            p(&t.join("base.raw")),
            p(&t.join("base.vmdk")),
        ],
    );
    run_ok(
        qemu,
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "zeroed_grain=on",
            "-b",
            "base.vmdk",
            "-F",
            "vmdk",
            p(&t.join("base-000001.vmdk")),
        ],
    );
    run_ok(
        "qemu-io",
        &[
            "-f",
            "vmdk",
            "-c",
            "write -P 0xab 65536 65536",
            "-c",
            "write -z 1048576 131072",
            "-c",
            "write -P 0xcd 9437184 3000",
            "-c",
            "write -z 31457792 1024",
            p(&t.join("base-000001.vmdk")),
        ],
    );
    size
}

fn check_map(t: &TestDir, name: &str, size: u64) {
    let ours = t.xva_ok(["map", "--output", "json", name]);
    let theirs = run_ok(qemu_img(), &["map", "--output=json", "-f", "vmdk", p(&t.join(name))]);
    assert_eq!(
        normalise(parse_map(&ours, size)),
        normalise(parse_map(&theirs, size)),
        "map of {name}\nours: {ours}\nqemu: {theirs}"
    );
}

#[test]
fn map_matches_qemu_for_chains_over_sparse_flat_and_stream_bases() {
    for sub in ["monolithicSparse", "monolithicFlat", "streamOptimized", "twoGbMaxExtentSparse"] {
        let t = TestDir::new();
        let size = chain(&t, sub);
        check_map(&t, "base.vmdk", size);
        check_map(&t, "base-000001.vmdk", size);
    }
}

#[test]
fn info_shows_the_chain_and_descriptor_facts() {
    let t = TestDir::new();
    let size = chain(&t, "monolithicSparse");
    let out = t.xva_ok(["info", "--output", "json", "base-000001.vmdk"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["format"], "vmdk");
    assert_eq!(v["virtual_size"], size);
    let chain = v["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "{v}");
    let top = &chain[0]["details"];
    assert_eq!(top["createType"], "monolithicSparse", "{v}");
    assert_eq!(top["ddb.adapterType"], "ide", "{v}");
    assert_eq!(top["parentFileNameHint"], "base.vmdk", "{v}");
    assert_eq!(top["parentCID"], chain[1]["details"]["CID"], "{v}");
}

#[test]
fn cid_mismatch_is_a_clear_error() {
    let t = TestDir::new();
    chain(&t, "monolithicFlat");
    let text = std::fs::read_to_string(t.join("base.vmdk")).unwrap();
    let line = text.lines().find(|l| l.starts_with("CID=")).unwrap().to_string();
    std::fs::write(t.join("base.vmdk"), text.replace(&line, "CID=0badc0de")).unwrap();
    let out = t.xva(["map", "--output", "json", "base-000001.vmdk"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("CID") && e.contains("0badc0de") && e.contains("base.vmdk"), "{e}");
}

/// `--ignore-parent-mismatch` reads such a chain anyway; `--ignore-cid` still works as its alias.
#[test]
fn cid_mismatch_can_be_ignored_with_either_flag() {
    let t = TestDir::new();
    let size = chain(&t, "monolithicFlat");
    let text = std::fs::read_to_string(t.join("base.vmdk")).unwrap();
    let line = text.lines().find(|l| l.starts_with("CID=")).unwrap().to_string();
    std::fs::write(t.join("base.vmdk"), text.replace(&line, "CID=0badc0de")).unwrap();
    let e = stderr(&t.xva(["info", "base-000001.vmdk"]));
    assert!(e.contains("--ignore-parent-mismatch"), "{e}");
    for flag in ["--ignore-parent-mismatch", "--ignore-cid"] {
        let out = t.xva_ok(["map", "--output", "json", flag, "base-000001.vmdk"]);
        assert!(!parse_map(&out, size).is_empty(), "{flag}: {out}");
    }
}

/// `xva convert` of a VMDK chain: the disk rebuilt from the XVA's chunks (missing chunks are
/// zeros) equals `qemu-img convert -O raw`.
#[test]
fn convert_a_vmdk_chain_and_a_stream_to_xva() {
    for (sub, name) in [("monolithicSparse", "base-000001.vmdk"), ("streamOptimized", "base.vmdk")] {
        let t = TestDir::new();
        let size = chain(&t, sub);
        t.xva_ok(["convert", "--disk", name, "-o", "out.xva"]);
        let want_path = t.join("want.raw");
        run_ok(qemu_img(), &["convert", "-f", "vmdk", "-O", "raw", p(&t.join(name)), p(&want_path)]);
        let want = std::fs::read(&want_path).unwrap();
        assert_eq!(want.len() as u64, size);
        let mut disk = vec![0u8; size as usize];
        let mut chunks = 0;
        for crate::util::Member { name: n, data } in crate::util::members(&t.join("out.xva")) {
            let Some((_, idx)) = n.split_once('/') else { continue };
            if idx.len() != 8 || !idx.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let at = idx.parse::<usize>().unwrap() << 20;
            disk[at..at + data.len()].copy_from_slice(&data);
            chunks += 1;
        }
        assert!(chunks >= 2, "{sub}: some chunks written");
        assert!(chunks < size.div_ceil(1 << 20), "{sub}: zero chunks are skipped");
        assert!(disk == want, "{sub}: XVA content differs from qemu-img convert");
    }
}

/// End to end: `xva convert --disk X.vmdk -o out.xva`, then `xva verify` (with the SHA-256 of
/// `qemu-img convert -O raw` as the expected disk digest) and `xva extract` give back qemu's
/// bytes, for a hosted delta chain, a stream and a flat base.
#[test]
fn convert_verify_extract_equal_qemu_raw() {
    for (sub, name) in [
        ("monolithicSparse", "base-000001.vmdk"),
        ("streamOptimized", "base.vmdk"),
        ("monolithicFlat", "base-000001.vmdk"),
    ] {
        let t = TestDir::new();
        chain(&t, sub);
        t.xva_ok(["convert", "--disk", name, "-o", "out.xva"]);
        run_ok(qemu_img(), &["convert", "-f", "vmdk", "-O", "raw", p(&t.join(name)), p(&t.join("want.raw"))]);
        let want = crate::util::sha256_file(&t.join("want.raw"));
        t.xva_ok(["verify", "out.xva", "--expect-sha256", &want]);
        t.xva_ok(["extract", "out.xva", "-o", "got.raw"]);
        assert_eq!(crate::util::sha256_file(&t.join("got.raw")), want, "{sub}: extracted disk");
    }
}
