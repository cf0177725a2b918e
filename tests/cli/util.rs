//! Test helpers: a temporary directory, the built `xva` binary, and the qemu-img oracle.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary directory removed at the end of the test.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> TestDir {
        TestDir { dir: tempfile::tempdir().expect("create temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `xva` with `args` in this directory.
    pub fn xva<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Command::new(env!("CARGO_BIN_EXE_xva")).args(args).current_dir(self.path()).output().expect("run xva")
    }

    /// Runs `xva` and asserts it succeeded; returns stdout.
    pub fn xva_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.xva(args);
        assert!(out.status.success(), "xva failed: {}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// The names of the files in the directory, sorted (hidden ones included).
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A deterministic pseudo-random byte stream (xorshift), so tests need no RNG crate.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Creates a sparse file of `size` bytes with `blocks` of `(offset, len)` random data.
pub fn sparse_file(path: &Path, size: u64, blocks: &[(u64, usize)]) {
    let mut f = File::create(path).unwrap();
    f.set_len(size).unwrap();
    for (i, &(off, len)) in blocks.iter().enumerate() {
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(&pattern(i as u64 + 1, len)).unwrap();
    }
}

/// The path of `qemu-img`, or a failure that says how to install it. Tests that need the
/// oracle never skip.
pub fn qemu_img() -> &'static str {
    let ok = Command::new("qemu-img").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "qemu-img is required for this test (the oracle for every disk format): apt-get install -y qemu-utils");
    "qemu-img"
}

/// Runs a command and asserts it succeeded; returns stdout.
pub fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// One entry of a map, as both `qemu-img map --output=json` and `xva map --output json` print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapEntry {
    pub start: u64,
    pub length: u64,
    pub depth: u64,
    pub present: bool,
    pub zero: bool,
    pub data: bool,
}

/// Parses a JSON map, clamps it to `size` (qemu rounds the last raw extent up to 512 bytes)
/// and merges adjacent entries that say the same thing (ignoring `offset`).
pub fn parse_map(json: &str, size: u64) -> Vec<MapEntry> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("bad map json {e}: {json}"));
    let entries = v
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["start"].as_u64().unwrap() < size)
        .map(|e| {
            let start = e["start"].as_u64().unwrap();
            MapEntry {
                start,
                length: e["length"].as_u64().unwrap().min(size - start),
                depth: e["depth"].as_u64().unwrap(),
                present: e["present"].as_bool().unwrap(),
                zero: e["zero"].as_bool().unwrap(),
                data: e["data"].as_bool().unwrap(),
            }
        })
        .collect();
    merge(entries)
}

/// Merges adjacent entries that say the same thing.
pub fn merge(entries: Vec<MapEntry>) -> Vec<MapEntry> {
    let mut out: Vec<MapEntry> = Vec::new();
    for m in entries {
        if let Some(last) = out.last_mut() {
            if last.start + last.length == m.start
                && (last.depth, last.present, last.zero, last.data) == (m.depth, m.present, m.zero, m.data)
            {
                last.length += m.length;
                continue;
            }
        }
        out.push(m);
    }
    out
}

/// One tar member: name and data.
pub struct Member {
    pub name: String,
    pub data: Vec<u8>,
}

/// Reads a tar stream written by xva, checking header checksums (a test-side reader,
/// independent of the library's validator).
pub fn members(path: &Path) -> Vec<Member> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let h = &bytes[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            assert!(bytes[pos..].iter().all(|&b| b == 0), "only zero blocks after the end marker");
            assert!(bytes.len() - pos >= 1024, "two zero blocks at the end");
            break;
        }
        let name = String::from_utf8(h[..100].iter().take_while(|&&b| b != 0).copied().collect()).unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap(), 8).unwrap();
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        let sum: u32 =
            h.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u32::from(b) }).sum();
        assert_eq!(stored, sum, "header checksum of {name}");
        assert_eq!(h[156], b'0', "regular file typeflag for {name}");
        assert_eq!(&h[345..500], &[0u8; 155][..], "prefix field unused");
        out.push(Member { name, data: bytes[pos + 512..pos + 512 + size].to_vec() });
        pos += 512 + size.div_ceil(512) * 512;
    }
    out
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut f = File::open(path).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    hex(&h.finalize())
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
