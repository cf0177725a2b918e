//! VHD through the real binary: `xva convert` → `xva verify` → `xva extract` gives back qemu's
//! raw bytes for dynamic and fixed disks and the builder's bytes for a differencing chain (qemu
//! reads a differencing VHD as if it had no parent, so it cannot be the oracle there); `xva map`
//! equals `qemu-img map`; `xva info` shows the VHD facts; an xm config's `tap2:tapdisk:vhd:`
//! disk converts. The qemu tests need qemu-img and fail (never skip) without it.

use std::path::Path;

use xva::backends::vhd::build::{self, Opts, Parent};

use crate::util::{merge, parse_map, qemu_img, run_ok, sha256_file, sparse_file, stderr, MapEntry, TestDir};

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// 40 MiB + 5 sectors, data in a few runs (one at the end).
fn source_raw(t: &TestDir) -> u64 {
    let size = (40u64 << 20) + 5 * 512;
    sparse_file(&t.join("src.raw"), size, &[(0, 4096), (3 << 20, 300_000), (20 << 20, 1 << 20), (size - 2048, 2048)]);
    size
}

fn vpc(t: &TestDir, opts: &str, name: &str) {
    source_raw(t);
    run_ok(qemu_img(), &["convert", "-f", "raw", "-O", "vpc", "-o", opts, p(&t.join("src.raw")), p(&t.join(name))]);
}

/// Holes of a fixed disk's file are `zero` and `data` for qemu (it recurses into the file) and
/// zero for xva; a dynamic disk's unallocated blocks are `present` for qemu (its vpc driver has
/// no backing files) and not for xva. Compare what both read: zero or data.
fn normalise(m: Vec<MapEntry>) -> Vec<MapEntry> {
    merge(
        m.into_iter()
            .map(|e| MapEntry { data: e.data && !e.zero, present: e.present || e.zero, depth: 0, ..e })
            .collect(),
    )
}

/// `xva convert`, `xva verify` against the SHA-256 of `want`, `xva extract`: same bytes.
fn round_trip(t: &TestDir, name: &str, want: &Path) {
    t.xva_ok(["convert", "--disk", name, "-o", "out.xva"]);
    let sha = sha256_file(want);
    t.xva_ok(["verify", "out.xva", "--expect-sha256", &sha]);
    t.xva_ok(["extract", "out.xva", "-o", "got.raw"]);
    assert_eq!(sha256_file(&t.join("got.raw")), sha, "{name}: extracted disk");
}

#[test]
fn convert_verify_extract_equal_qemu_raw() {
    for opts in ["subformat=dynamic", "subformat=dynamic,force_size=on", "subformat=fixed"] {
        let t = TestDir::new();
        vpc(&t, opts, "d.vhd");
        run_ok(qemu_img(), &["convert", "-f", "vpc", "-O", "raw", p(&t.join("d.vhd")), p(&t.join("want.raw"))]);
        round_trip(&t, "d.vhd", &t.join("want.raw"));
    }
}

#[test]
fn map_matches_qemu_and_info_shows_the_vhd_facts() {
    for opts in ["subformat=dynamic", "subformat=fixed,force_size=on"] {
        let t = TestDir::new();
        vpc(&t, opts, "d.vhd");
        let info = t.xva_ok(["info", "--output", "json", "d.vhd"]);
        let v: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(v["format"], "vhd", "{v}");
        let size = v["virtual_size"].as_u64().unwrap();
        let ours = t.xva_ok(["map", "--output", "json", "d.vhd"]);
        let theirs = run_ok(qemu_img(), &["map", "--output=json", "-f", "vpc", p(&t.join("d.vhd"))]);
        assert_eq!(normalise(parse_map(&ours, size)), normalise(parse_map(&theirs, size)), "{opts}\n{ours}\n{theirs}");
        let d = &v["chain"][0]["details"];
        assert!(d["creator"].as_str().unwrap().starts_with("qem"), "{v}");
        if opts.contains("dynamic") {
            assert_eq!(d["disk type"], "dynamic", "{v}");
            assert_eq!(d["block size"], "2097152", "{v}");
        } else {
            assert_eq!(d["disk type"], "fixed", "{v}");
        }
    }
}

/// base.vhd (dynamic) ← child.vhd (differencing, found by its W2ru locator), both from the
/// builder; the expected disk is computed from the raw inputs sector by sector.
fn differencing_chain(t: &TestDir, parent_id: [u8; 16]) -> Vec<u8> {
    let size = 6usize << 20;
    let base = crate::util::pattern(1, size);
    let child = crate::util::pattern(2, size);
    let base_stores = |s: u64| s < 6000;
    let child_stores = |s: u64| s % 9 == 4 || (4096..4200).contains(&s);
    let bo = Opts { block_size: 2 << 20, unique_id: parent_id, timestamp: 5, ..Opts::default() };
    std::fs::write(t.join("base.vhd"), build::sparse(&base, &base_stores, &bo)).unwrap();
    let link = Parent {
        unique_id: [0x42; 16],
        timestamp: 5,
        unicode_name: "base.vhd".into(),
        locators: vec![(*b"W2ru", build::utf16le(".\\base.vhd")), (*b"MacX", b"file://./base.vhd".to_vec())],
    };
    let co = Opts { block_size: 2 << 20, parent: Some(link), unique_id: [0x43; 16], ..Opts::default() };
    std::fs::write(t.join("child.vhd"), build::sparse(&child, &child_stores, &co)).unwrap();
    (0..size as u64 / 512)
        .flat_map(|s| {
            let at = s as usize * 512;
            if child_stores(s) {
                child[at..at + 512].to_vec()
            } else if base_stores(s) {
                base[at..at + 512].to_vec()
            } else {
                vec![0; 512]
            }
        })
        .collect()
}

#[test]
fn differencing_chain_round_trips_to_the_builders_bytes() {
    let t = TestDir::new();
    let want = differencing_chain(&t, [0x42; 16]);
    std::fs::write(t.join("want.raw"), &want).unwrap();
    round_trip(&t, "child.vhd", &t.join("want.raw"));
    let v: serde_json::Value = serde_json::from_str(&t.xva_ok(["info", "--output", "json", "child.vhd"])).unwrap();
    let chain = v["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "{v}");
    let d = &chain[0]["details"];
    assert_eq!(d["disk type"], "differencing", "{v}");
    assert_eq!(d["parent name"], "base.vhd", "{v}");
    assert_eq!(d["parent found by"], "parent locator W2ru", "{v}");
    assert_eq!(d["parent unique id"], chain[1]["details"]["unique id"], "{v}");
}

#[test]
fn parent_id_mismatch_is_refused_unless_ignored() {
    let t = TestDir::new();
    let size = differencing_chain(&t, [0x99; 16]).len() as u64;
    let out = t.xva(["map", "--output", "json", "child.vhd"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("child.vhd") && e.contains("unique id") && e.contains("--ignore-parent-mismatch"), "{e}");
    let out = t.xva_ok(["map", "--output", "json", "--ignore-parent-mismatch", "child.vhd"]);
    assert!(!parse_map(&out, size).is_empty());
}

/// An xm config naming its disk `tap2:tapdisk:vhd:` (blktap2) converts; the disk's bytes are
/// qemu's.
#[test]
fn xm_config_with_a_blktap2_vhd_disk_converts() {
    let t = TestDir::new();
    vpc(&t, "subformat=dynamic", "root.vhd");
    let cfg = format!(
        "name = 'tapvm'\nmemory = 512\nvcpus = 1\nbuilder = 'hvm'\n\
         disk = [ 'tap2:tapdisk:vhd:{},xvda,w' ]\n",
        t.join("root.vhd").display()
    );
    std::fs::write(t.join("tapvm.cfg"), cfg).unwrap();
    let out = t.xva(["convert", "tapvm.cfg", "-o", "vm.xva", "--verify", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true, "{v}");
    run_ok(qemu_img(), &["convert", "-f", "vpc", "-O", "raw", p(&t.join("root.vhd")), p(&t.join("want.raw"))]);
    t.xva_ok(["extract", "vm.xva", "-o", "got.raw"]);
    assert_eq!(sha256_file(&t.join("got.raw")), sha256_file(&t.join("want.raw")));
}
