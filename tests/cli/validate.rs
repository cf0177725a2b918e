//! `xva verify` and `xva extract`: exit codes, messages, output safety, and round trips through
//! `xva convert`.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use sha1::Digest as _;

use crate::util::{self, sparse_file, stderr, TestDir};

const HVM: &str = include_str!("../../testdata/xva/spec-6a-hvm.ova.xml");

/// A minimal ustar header (test-side builder, independent of the library).
fn header(name: &str, size: usize) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn file(t: &mut Vec<u8>, name: &str, data: &[u8]) {
    t.extend_from_slice(&header(name, data.len()));
    t.extend_from_slice(data);
    t.resize(t.len().div_ceil(512) * 512, 0);
}

fn sha1_hex(d: &[u8]) -> String {
    util::hex(&sha1::Sha1::digest(d))
}

/// An XVA of the §6.a ova.xml with a disk of `chunks` (counter, data); `ck` edits checksums.
fn xva(size: u64, chunks: &[(u32, Vec<u8>)], ck: impl Fn(String) -> String) -> Vec<u8> {
    let xml = HVM.replace(
        "<name>virtual_size</name><value>10737418240</value>",
        &format!("<name>virtual_size</name><value>{size}</value>"),
    );
    let mut t = Vec::new();
    file(&mut t, "ova.xml", xml.as_bytes());
    for (n, data) in chunks {
        let name = format!("Ref:2/{n:08}");
        file(&mut t, &name, data);
        file(&mut t, &format!("{name}.checksum"), ck(sha1_hex(data)).as_bytes());
    }
    t.extend_from_slice(&[0u8; 1024]);
    t
}

/// 2 MiB + 7 bytes: chunk 0 random, chunk 1 omitted, chunk 2 of 7 bytes.
fn good() -> Vec<u8> {
    xva((2 << 20) + 7, &[(0, util::pattern(1, 1 << 20)), (2, b"1234567".to_vec())], |s| s)
}

fn good_disk() -> Vec<u8> {
    let mut d = util::pattern(1, 1 << 20);
    d.extend(vec![0u8; 1 << 20]);
    d.extend_from_slice(b"1234567");
    d
}

fn write(dir: &TestDir, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn verify_clean_file_exits_0_and_prints_the_disk() {
    let d = TestDir::new();
    write(&d, "a.xva", &good());
    let out = d.xva(["verify", "a.xva"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let s = stdout(&out);
    assert!(s.contains("OK: 0 error(s), 0 corruption(s), 0 warning(s)"), "{s}");
    let sha = util::hex(&sha2::Sha256::digest(good_disk()));
    assert!(s.contains(&format!("sha256 {sha}")), "{s}");
    assert!(s.contains("1 zero gap(s)"), "{s}");
}

#[test]
fn verify_bad_checksum_exits_5_with_the_rule() {
    let d = TestDir::new();
    write(&d, "bad.xva", &xva(7, &[(0, b"1234567".to_vec())], |s| s.to_uppercase()));
    let out = d.xva(["verify", "bad.xva"]);
    assert_eq!(code(&out), 5);
    let s = stdout(&out);
    assert!(s.contains("E rule 25 Ref:2/00000000.checksum"), "{s}");
    assert!(s.contains("wrong case"), "{s}");
    assert!(s.contains("FAILED: 1 error(s)"), "{s}");
}

#[test]
fn verify_missing_last_chunk_and_corruption_exit_5() {
    let d = TestDir::new();
    write(&d, "short.xva", &xva(3 << 20, &[(0, vec![1; 1 << 20])], |s| s));
    let out = d.xva(["verify", "short.xva"]);
    assert_eq!(code(&out), 5);
    assert!(stdout(&out).contains("E rule 26"), "{}", stdout(&out));
    // overrun only: a C finding also fails
    write(&d, "over.xva", &xva(5, &[(0, vec![1; 512])], |s| s));
    let out = d.xva(["verify", "over.xva"]);
    assert_eq!(code(&out), 5);
    assert!(stdout(&out).contains("C rule 26"), "{}", stdout(&out));
}

#[test]
fn verify_warnings_only_exit_0() {
    let d = TestDir::new();
    let t = good();
    write(&d, "noend.xva", &t[..t.len() - 1024]);
    let out = d.xva(["verify", "noend.xva"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(stdout(&out).contains("W rule 6"), "{}", stdout(&out));
}

#[test]
fn verify_missing_file_exits_3() {
    let d = TestDir::new();
    let out = d.xva(["verify", "nope.xva"]);
    assert_eq!(code(&out), 3);
    assert!(stderr(&out).contains("nope.xva"), "{}", stderr(&out));
}

#[test]
fn verify_gzip_and_zstd_inputs() {
    let d = TestDir::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&good()).unwrap();
    write(&d, "a.xva.gz", &gz.finish().unwrap());
    write(&d, "a.xva.zst", &zstd::encode_all(&good()[..], 3).unwrap());
    for (f, c) in [("a.xva.gz", "gzip"), ("a.xva.zst", "zstd")] {
        let out = d.xva(["verify", f]);
        assert_eq!(code(&out), 0, "{}", stdout(&out));
        assert!(stdout(&out).contains(&format!("{c} tar stream")), "{}", stdout(&out));
    }
}

#[test]
fn verify_json_and_expect_sha256() {
    let d = TestDir::new();
    write(&d, "a.xva", &good());
    let sha = util::hex(&sha2::Sha256::digest(good_disk()));
    let out = d.xva(["verify", "a.xva", "--output", "json", "--expect-sha256", &format!("0={sha}")]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["disks"][0]["sha256"], sha.as_str());
    assert_eq!(v["disks"][0]["virtual_size"], (2u64 << 20) + 7);
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
    // bare HEX = disk 0; a wrong digest exits 5
    let out = d.xva(["verify", "a.xva", "--expect-sha256", &sha]);
    assert_eq!(code(&out), 0);
    let wrong = "0".repeat(64);
    let out = d.xva(["verify", "a.xva", "--expect-sha256", &wrong]);
    assert_eq!(code(&out), 5);
    assert!(stdout(&out).contains("mismatch: disk 0"), "{}", stdout(&out));
    let out = d.xva(["verify", "a.xva", "--expect-sha256", &format!("1={sha}")]);
    assert_eq!(code(&out), 5);
    assert!(stdout(&out).contains("no such disk"), "{}", stdout(&out));
    let out = d.xva(["verify", "a.xva", "--expect-sha256", "1=xyz"]);
    assert_eq!(code(&out), 2);
}

#[test]
fn extract_writes_the_disk_sparse_and_refuses_to_overwrite() {
    let d = TestDir::new();
    write(&d, "a.xva", &good());
    let out = d.xva(["extract", "a.xva", "-o", "disk.raw"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got = std::fs::read(d.join("disk.raw")).unwrap();
    assert_eq!(got, good_disk());
    // The omitted MiB is a hole: at most the 1 MiB + 7 bytes of data are allocated.
    let blocks = std::fs::metadata(d.join("disk.raw")).unwrap().blocks() * 512;
    assert!(blocks < (3 << 19), "allocated {blocks}");
    // no overwrite without --force
    let out = d.xva(["extract", "a.xva", "-o", "disk.raw"]);
    assert_eq!(code(&out), 4);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let out = d.xva(["extract", "a.xva", "-o", "disk.raw", "--force"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(d.files(), ["a.xva", "disk.raw"]);
    // no such disk
    let out = d.xva(["extract", "a.xva", "--disk", "3", "-o", "other.raw"]);
    assert_ne!(code(&out), 0);
    assert!(!d.join("other.raw").exists());
}

#[test]
fn extract_failure_leaves_nothing() {
    let d = TestDir::new();
    write(&d, "bad.xva", &xva(3 << 20, &[(0, vec![1; 1 << 20])], |s| s));
    let out = d.xva(["extract", "bad.xva", "-o", "disk.raw"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("E rule 26"), "{}", stderr(&out));
    assert_eq!(d.files(), ["bad.xva"], "no output, no temp file");
}

fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn round_trip_convert_verify_extract() {
    let d = TestDir::new();
    for size in [1u64, 512, (1 << 20) - 1, 1 << 20, (1 << 20) + 1] {
        let src = d.join(&format!("src-{size}.raw"));
        std::fs::write(&src, util::pattern(size, size as usize)).unwrap();
        let xva_name = format!("out-{size}.xva");
        let out = d.xva(["convert", "--disk", src.to_str().unwrap(), "-o", &xva_name]);
        assert_eq!(code(&out), 0, "convert {size}: {}", stderr(&out));
        let sha = util::sha256_file(&src);
        let out = d.xva(["verify", &xva_name, "--expect-sha256", &sha]);
        assert_eq!(code(&out), 0, "verify {size}: {}", stdout(&out));
        assert!(stdout(&out).contains("OK: 0 error(s), 0 corruption(s), 0 warning(s)"), "{}", stdout(&out));
        let raw = format!("back-{size}.raw");
        let out = d.xva(["extract", &xva_name, "-o", &raw]);
        assert_eq!(code(&out), 0, "extract {size}: {}", stderr(&out));
        assert_eq!(std::fs::read(d.join(&raw)).unwrap(), std::fs::read(&src).unwrap(), "size {size}");
    }
}

#[test]
fn round_trip_keeps_holes() {
    let d = TestDir::new();
    let src = d.join("sparse.raw");
    let size = 8u64 << 20;
    sparse_file(&src, size, &[(0, 4096), (5 << 20, 100_000)]);
    let out = d.xva(["convert", "--disk", "sparse.raw", "-o", "s.xva"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = d.xva(["verify", "s.xva", "--output", "json", "--expect-sha256", &util::sha256_file(&src)]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(v["disks"][0]["zero_chunks"].as_u64().unwrap() >= 5, "{v}");
    let out = d.xva(["extract", "s.xva", "-o", "back.raw"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read(d.join("back.raw")).unwrap(), std::fs::read(&src).unwrap());
    assert_eq!(std::fs::metadata(d.join("back.raw")).unwrap().len(), size);
    // Holes stay holes: allocation is about the data written, far below the 8 MiB size.
    let a = allocated(&d.join("back.raw"));
    assert!(a <= 512 << 10, "extracted file allocates {a} bytes");
}
