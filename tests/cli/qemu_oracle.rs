//! Raw disks against the oracle: `xva map` equals `qemu-img map`, a full read equals
//! `qemu-img convert -O raw`. These tests need qemu-img and fail (never skip) without it.

use std::path::Path;

use xva::backends::{self, OpenOptions};

use crate::util::{parse_map, qemu_img, run_ok, sha256_file, sparse_file, TestDir};

/// Full read through the library, as a SHA-256.
fn read_all_sha256(path: &Path) -> String {
    use sha2::Digest;
    let r = backends::open(path, &OpenOptions::default()).unwrap();
    let size = r.virtual_size();
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < size {
        let n = (size - off).min(buf.len() as u64) as usize;
        r.read_exact_at(&mut buf[..n], off).unwrap();
        h.update(&buf[..n]);
        off += n as u64;
    }
    crate::util::hex(&h.finalize())
}

fn check(t: &TestDir, name: &str, fmt: &str) {
    let qemu = qemu_img();
    let p = t.join(name);
    let size = std::fs::metadata(&p).unwrap().len();
    let ours = t.xva_ok(["map", "--output", "json", name]);
    let theirs = run_ok(qemu, &["map", "--output=json", "-f", fmt, p.to_str().unwrap()]);
    assert_eq!(parse_map(&ours, size), parse_map(&theirs, size), "map of {name}\nours: {ours}\nqemu: {theirs}");
    let raw = t.join(&format!("{name}.qemu.raw"));
    run_ok(qemu, &["convert", "-f", fmt, "-O", "raw", p.to_str().unwrap(), raw.to_str().unwrap()]);
    // qemu rounds a raw image's size up to a whole sector; the extra bytes read as zeros.
    let qsize = std::fs::metadata(&raw).unwrap().len();
    assert!(qsize >= size && qsize - size < 512, "qemu size {qsize} vs {size}");
    let bytes = std::fs::read(&raw).unwrap();
    assert!(bytes[size as usize..].iter().all(|&b| b == 0));
    std::fs::OpenOptions::new().write(true).open(&raw).unwrap().set_len(size).unwrap();
    assert_eq!(read_all_sha256(&p), sha256_file(&raw), "content of {name}");
}

#[test]
fn raw_with_holes_and_random_data() {
    let t = TestDir::new();
    let mb = 1u64 << 20;
    sparse_file(
        &t.join("a.raw"),
        64 * mb + 3 * 512,
        &[(0, 4096), (5 * mb + 100, 70_000), (40 * mb, 3 << 20), (64 * mb, 1536)],
    );
    check(&t, "a.raw", "raw");
    sparse_file(&t.join("holes.raw"), 10 * mb, &[]);
    check(&t, "holes.raw", "raw");
    sparse_file(&t.join("full.raw"), 3 * mb + 1, &[(0, 3 << 20), (3 * mb, 1)]);
    check(&t, "full.raw", "raw");
    sparse_file(&t.join("odd.raw"), 1000, &[(10, 10)]);
    check(&t, "odd.raw", "raw");
}

#[test]
fn info_reports_format_size_and_allocation() {
    let t = TestDir::new();
    sparse_file(&t.join("d.raw"), 32 << 20, &[(1 << 20, 8192)]);
    let out = t.xva_ok(["info", "--output", "json", "d.raw"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["format"], "raw");
    assert_eq!(v["virtual_size"], 32 << 20);
    let alloc = v["allocated_bytes"].as_u64().unwrap();
    assert!((8192..1 << 20).contains(&alloc), "{v}");
    assert_eq!(v["chain"].as_array().unwrap().len(), 1);
    assert_eq!(v["chain"][0]["details"]["storage"], "regular file");
    let human = t.xva_ok(["info", "d.raw"]);
    assert!(human.contains("format:         raw"), "{human}");
}

/// Every format the registry recognises but cannot read is refused with advice (exit code 3),
/// never converted as raw. The formats come from the registry; the table only says how qemu-img
/// writes each one.
#[test]
fn recognised_but_unreadable_formats_are_refused_not_read_as_raw() {
    let t = TestDir::new();
    let qemu = qemu_img();
    sparse_file(&t.join("base.raw"), 1 << 20, &[(0, 512)]);
    fn qemu_format(name: &str) -> &str {
        match name {
            "vhd" => "vpc",
            other => other,
        }
    }
    let recognised = backends::probe::recognised();
    assert!(!recognised.is_empty(), "the registry lists no recognised-only format: nothing to check");
    for f in recognised {
        let img = format!("d.{}", f.name);
        let out_name = format!("d-{}.xva", f.name);
        run_ok(
            qemu,
            &[
                "convert",
                "-f",
                "raw",
                "-O",
                qemu_format(f.name),
                t.join("base.raw").to_str().unwrap(),
                t.join(&img).to_str().unwrap(),
            ],
        );
        let out = t.xva(["convert", "-d", &img, "-o", &out_name]);
        assert_eq!(out.status.code(), Some(3), "{img}");
        let e = crate::util::stderr(&out);
        assert!(e.to_lowercase().contains(f.name) && e.contains("cannot read yet") && e.contains(&img), "{e}");
        assert!(!t.join(&out_name).exists());
    }
}
