//! VHD reader tests against files on disk.
//!
//! * `qemu`: fixed and dynamic disks written by qemu-img (`-O vpc`, `force_size=on|off`, sizes
//!   that are not a multiple of the block, a sparse disk larger than 4 GiB). The full read must
//!   equal `qemu-img convert -O raw` and the map `qemu-img map --output=json` (see [`qemu_map`]
//!   for the one measured difference). These tests need qemu-img and qemu-io and FAIL when they
//!   are missing (install qemu-utils); they never skip. The images are the same under qemu 7.2
//!   and 10: qemu writes creator `qemu` (CHS) or `qem2` (current size), which both rules size alike.
//! * `handmade`: what qemu cannot write or read (differencing disks — qemu reads them as if they
//!   had no parent), built by `xva_backends::vhd::build` from raw bytes; the expected contents
//!   are computed from those raw bytes and the per-sector choices alone.
//! * `bad`: broken inputs give clear errors naming the file and the offset, never panics or hangs.

use std::fs;
use std::path::Path;

use xva_backends::vhd::build::{self, FooterAt, Opts, Parent};
use xva_backends::{open, BlockReader, ErrorKind, OpenOptions, OpenPolicy};

mod common;

use common::{field, p, run};

// ---------------------------------------------------------------------------------------------
// helpers

/// Deterministic pseudo-random bytes (the VHD tests' own seeding of the shared generator).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    common::xorshift(seed.wrapping_mul(0x2545_f491_4f6c_dd1d), 32, len)
}

/// A raw disk of `size` bytes (a multiple of 512): zeros with data runs at sector-granular
/// offsets, some straddling 2 MiB blocks, one at the very end.
fn raw_disk(size: u64, seed: u64) -> Vec<u8> {
    let mut raw = vec![0u8; size as usize];
    let runs = [(0u64, 4096usize), (3 << 20, 5000), ((4 << 20) - 1024, 3072), (size / 2 + 512, 70_000)];
    for (i, &(off, len)) in runs.iter().enumerate() {
        let off = off.min(size - len as u64) as usize;
        raw[off..off + len].copy_from_slice(&noise(seed + i as u64, len));
    }
    let n = raw.len();
    raw[n - 700..].copy_from_slice(&noise(seed + 99, 700));
    raw
}

fn open_with(path: &Path, policy: OpenPolicy) -> xva_backends::Result<Box<dyn BlockReader>> {
    open(path, &OpenOptions { format: None, policy })
}

fn open_ok(path: &Path) -> Box<dyn BlockReader> {
    open_with(path, OpenPolicy::default()).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

fn read_all(r: &dyn BlockReader) -> Vec<u8> {
    let mut v = vec![0xEEu8; r.virtual_size() as usize];
    r.read_exact_at(&mut v, 0).unwrap();
    v
}

/// Parent locators for the builder: platform code and data.
type Locators = Vec<([u8; 4], Vec<u8>)>;

/// A map row: start, length, zero, data (data only where not zero).
type Row = (u64, u64, bool, bool);

fn coalesce(rows: impl IntoIterator<Item = Row>) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for r in rows {
        match out.last_mut() {
            Some(l) if l.0 + l.1 == r.0 && (l.2, l.3) == (r.2, r.3) => l.1 += r.1,
            _ => out.push(r),
        }
    }
    out
}

/// `qemu-img map --output=json`, normalised: holes of a fixed disk's file are `zero` and `data`
/// at once for qemu (it recurses into the file), zero only for us. `present` is left out: qemu
/// says `present: true` for a dynamic disk's unallocated blocks (its vpc driver has no backing
/// support, so the block layer calls them allocated zeros), we say unallocated — both read zeros.
fn qemu_map(path: &Path) -> Vec<Row> {
    let out = run("qemu-img", &["map", "--output=json", "-f", "vpc", p(path)]);
    coalesce(out.lines().filter(|l| l.contains("\"start\"")).map(|l| {
        let zero = field(l, "zero") == "true";
        (
            field(l, "start").parse().unwrap(),
            field(l, "length").parse().unwrap(),
            zero,
            field(l, "data") == "true" && !zero,
        )
    }))
}

fn our_map(r: &dyn BlockReader) -> Vec<Row> {
    coalesce(r.extents(0..r.virtual_size()).map(|m| m.unwrap()).map(|m| (m.start, m.len, m.zero, m.data)))
}

/// Full read equals `qemu-img convert -O raw`, odd-sized reads agree, the map equals qemu's.
fn assert_like_qemu(path: &Path) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("qemu.raw");
    run("qemu-img", &["convert", "-f", "vpc", "-O", "raw", p(path), p(&raw)]);
    let want = fs::read(&raw).unwrap();
    let r = open_ok(path);
    assert_eq!(r.virtual_size(), want.len() as u64, "virtual size of {}", path.display());
    let got = read_all(r.as_ref());
    assert!(got == want, "{}: content differs from qemu-img convert", path.display());
    for i in 0..48u64 {
        let off = (want.len() as u64 / 48 * i + i * 511).min(want.len() as u64 - 1);
        let n = (9000 + i as usize * 37).min(want.len() - off as usize);
        let mut a = vec![0u8; n];
        r.read_exact_at(&mut a, off).unwrap();
        assert!(a[..] == want[off as usize..off as usize + n], "{}: read at {off}+{n}", path.display());
    }
    assert_eq!(our_map(r.as_ref()), qemu_map(path), "map of {}", path.display());
    assert_eq!(r.format().name, "vhd");
    want
}

/// 64 MiB + 3 sectors: not a multiple of the block (nor of the CHS geometry qemu rounds to).
const ODD: u64 = (64 << 20) + 3 * 512;

// ---------------------------------------------------------------------------------------------
mod qemu {
    use super::*;

    fn convert(opts: &str) -> (Box<dyn BlockReader>, Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let raw = raw_disk(ODD, 7);
        let src = dir.path().join("src.raw");
        fs::write(&src, &raw).unwrap();
        let out = dir.path().join("d.vhd");
        run("qemu-img", &["convert", "-f", "raw", "-O", "vpc", "-o", opts, p(&src), p(&out)]);
        let src_detect = xva_backends::FileSource::open(&out).unwrap();
        assert_eq!(xva_backends::probe::detect(&src_detect).unwrap().0.name, "vhd", "{opts}: probed as vhd");
        let want = assert_like_qemu(&out);
        // `virtual size: 64 MiB (67125248 bytes)` (the JSON form also has the file's own size).
        let info = run("qemu-img", &["info", "-f", "vpc", p(&out)]);
        let line = info.lines().find(|l| l.starts_with("virtual size:")).unwrap();
        let bytes = line.rsplit('(').next().unwrap().split(' ').next().unwrap();
        assert_eq!(bytes.parse::<u64>().unwrap(), want.len() as u64, "{opts}: {line}");
        (open_ok(&out), want, raw)
    }

    #[test]
    fn dynamic_sized_by_chs() {
        let (r, want, raw) = convert("subformat=dynamic");
        // qemu rounds the geometry up: the disk is a little larger than the source.
        assert!(r.virtual_size() > ODD, "{}", r.virtual_size());
        assert!(want[..raw.len()] == raw[..] && want[raw.len()..].iter().all(|&b| b == 0));
        let d = r.details();
        let get = |k: &str| d.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
        assert_eq!(get("disk type"), "dynamic");
        assert_eq!(get("block size"), "2097152");
        assert!(get("creator").starts_with("qemu"), "{d:?}");
        assert_eq!(get("size from"), "geometry (C×H×S)");
    }

    #[test]
    fn dynamic_force_size() {
        let (r, want, raw) = convert("subformat=dynamic,force_size=on");
        assert_eq!(r.virtual_size(), ODD);
        assert!(want == raw);
    }

    #[test]
    fn fixed_sized_by_chs_and_forced() {
        let (r, _, _) = convert("subformat=fixed");
        assert!(r.virtual_size() > ODD);
        let (r, want, raw) = convert("subformat=fixed,force_size=on");
        assert_eq!(r.virtual_size(), ODD);
        assert!(want == raw);
        assert!(r.details().iter().any(|(k, v)| k == "disk type" && v == "fixed"));
    }

    /// A sparse 6 GiB dynamic disk with data past 4 GiB (BAT entries past 2048, file offsets
    /// past 32 bits of bytes in the sector numbers) and at the very end.
    #[test]
    fn dynamic_larger_than_4_gib() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("big.vhd");
        run("qemu-img", &["create", "-q", "-f", "vpc", "-o", "force_size=on", p(&img), "6G"]);
        run(
            "qemu-io",
            &[
                "-f",
                "vpc",
                "-c",
                "write -P 0x5a 5368709120 1048576",
                "-c",
                "write -P 0xa5 1000000000 3000",
                "-c",
                "write -P 0x33 6442446848 4096",
                p(&img),
            ],
        );
        let r = open_ok(&img);
        assert_eq!(r.virtual_size(), 6 << 30);
        let mut b = vec![0u8; 4096];
        r.read_exact_at(&mut b, (6 << 30) - 4096).unwrap();
        assert!(b.iter().all(|&x| x == 0x33));
        assert_eq!(our_map(r.as_ref()), qemu_map(&img));
        let mut b = vec![0u8; (1 << 20) + 1024];
        r.read_exact_at(&mut b, (5 << 30) - 512).unwrap();
        assert!(b[..512].iter().all(|&x| x == 0) && b[512..512 + (1 << 20)].iter().all(|&x| x == 0x5a));
        assert!(b[512 + (1 << 20)..].iter().all(|&x| x == 0));
    }
}

// ---------------------------------------------------------------------------------------------
mod handmade {
    use super::*;

    const SIZE: u64 = 1 << 20; // 16 blocks of 64 KiB

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    /// Every footer placement of a dynamic disk, with sectors left out of stored blocks (whose
    /// data area holds 0xEE: a clear bit reads as zeros) and a fixed disk with a 511-byte footer.
    #[test]
    fn dynamic_and_fixed_footer_placements() {
        let dir = tempfile::tempdir().unwrap();
        let raw = noise(3, SIZE as usize);
        let stored = |s: u64| !s.is_multiple_of(7) && !(300..700).contains(&s);
        let want: Vec<u8> = (0..SIZE / 512)
            .flat_map(|s| if stored(s) { raw[s as usize * 512..][..512].to_vec() } else { vec![0; 512] })
            .collect();
        for at in [FooterAt::Both, FooterAt::StartOnly, FooterAt::Short511] {
            let o = Opts { footer: at, unset_fill: 0xEE, ..Opts::default() };
            let path = write(dir.path(), "d.vhd", &build::sparse(&raw, &stored, &o));
            let r = open_ok(&path);
            assert_eq!(r.virtual_size(), SIZE, "{at:?}");
            assert!(read_all(r.as_ref()) == want, "{at:?}");
            let zero_sectors: u64 =
                r.extents(0..SIZE).map(|m| m.unwrap()).filter(|m| m.zero).map(|m| m.len / 512).sum();
            assert_eq!(zero_sectors, (0..SIZE / 512).filter(|&s| !stored(s)).count() as u64, "{at:?}");
        }
        let path =
            write(dir.path(), "f.vhd", &build::fixed(&raw, &Opts { footer: FooterAt::Short511, ..Opts::default() }));
        let src = xva_backends::FileSource::open(&path).unwrap();
        assert_eq!(xva_backends::probe::detect(&src).unwrap().0.name, "vhd");
        let r = open_ok(&path);
        assert!(read_all(r.as_ref()) == raw);
        assert!(r.details().iter().any(|(_, v)| v.contains("511-byte")), "{:?}", r.details());
    }

    /// A bad checksum on the end footer: the good copy at 0 is used; with both bad, the end
    /// one is used with a warning.
    #[test]
    fn checksum_mismatch_falls_back_then_warns() {
        let dir = tempfile::tempdir().unwrap();
        let raw = noise(4, SIZE as usize);
        let mut f = build::sparse(&raw, &|_| true, &Opts::default());
        let n = f.len();
        f[n - 512 + 100] ^= 1;
        let r = open_ok(&write(dir.path(), "a.vhd", &f));
        assert!(read_all(r.as_ref()) == raw);
        assert!(r.details().iter().any(|(k, v)| k == "footer" && v.contains("offset 0")), "{:?}", r.details());
        f[100] ^= 1;
        let r = open_ok(&write(dir.path(), "b.vhd", &f));
        assert!(read_all(r.as_ref()) == raw);
        assert!(r.details().iter().any(|(k, v)| k == "warning" && v.contains("checksum")), "{:?}", r.details());
    }

    fn parent_opts() -> Opts {
        Opts { unique_id: [0xaa; 16], timestamp: 1000, ..Opts::default() }
    }

    fn link(locators: Locators, name: &str) -> Parent {
        Parent { unique_id: [0xaa; 16], timestamp: 1000, unicode_name: name.to_string(), locators }
    }

    /// Sector choices of the child: a mix inside blocks, whole blocks, and blocks not stored.
    fn child_stores(s: u64) -> bool {
        s % 5 == 1 || (512..640).contains(&s)
    }

    /// The chain's expected bytes: the child's raw bytes where it stores a sector, else the
    /// parent's where the parent stores it, else zeros.
    fn expected(child: &[u8], parent: &[u8], parent_stores: &dyn Fn(u64) -> bool) -> Vec<u8> {
        (0..child.len() as u64 / 512)
            .flat_map(|s| {
                let at = s as usize * 512;
                if child_stores(s) {
                    child[at..at + 512].to_vec()
                } else if at < parent.len() && parent_stores(s) {
                    parent[at..at + 512].to_vec()
                } else {
                    vec![0; 512]
                }
            })
            .collect()
    }

    /// Each locator kind alone finds the parent; a locator naming a missing file is skipped for
    /// the next; the header's unicode name is the last resort.
    #[test]
    fn differencing_with_each_locator_kind() {
        let dir = tempfile::tempdir().unwrap();
        let praw = noise(10, SIZE as usize);
        let craw = noise(11, SIZE as usize);
        let pstores = |s: u64| s < 1500;
        write(dir.path(), "base.vhd", &build::sparse(&praw, &pstores, &parent_opts()));
        let want = expected(&craw, &praw, &pstores);
        let abs = format!("file://{}", dir.path().join("base.vhd").display());
        let cases: Vec<(&str, Locators, &str)> = vec![
            ("W2ru", vec![(*b"W2ru", build::utf16le(".\\base.vhd"))], "nothing.vhd"),
            ("MacX", vec![(*b"MacX", b"file://./base.vhd".to_vec())], "nothing.vhd"),
            ("MacX", vec![(*b"MacX", abs.into_bytes())], "nothing.vhd"),
            ("W2ku", vec![(*b"W2ku", build::utf16le("C:\\Hyper-V\\disks\\base.vhd"))], "nothing.vhd"),
            ("unicode", vec![], "base.vhd"),
            ("MacX", vec![(*b"W2ru", build::utf16le(".\\gone.vhd")), (*b"MacX", b"file://./base.vhd".to_vec())], ""),
        ];
        for (i, (by, locators, name)) in cases.into_iter().enumerate() {
            let o = Opts { parent: Some(link(locators, name)), unique_id: [i as u8; 16], ..Opts::default() };
            let path = write(dir.path(), &format!("child{i}.vhd"), &build::sparse(&craw, &child_stores, &o));
            let r = open_ok(&path);
            assert!(read_all(r.as_ref()) == want, "case {i} ({by})");
            let d = r.details();
            assert!(d.iter().any(|(k, v)| k == "parent found by" && v.contains(by)), "case {i}: {d:?}");
            assert!(d.iter().any(|(k, v)| k == "disk type" && v == "differencing"), "{d:?}");
            assert_eq!(r.parent().unwrap().path().file_name().unwrap(), "base.vhd");
            // The resolved map says which layer answers.
            let depth1: u64 =
                r.extents(0..SIZE).map(|m| m.unwrap()).filter(|m| m.depth == 1 && m.data).map(|m| m.len).sum();
            let from_parent = (0..SIZE / 512).filter(|&s| !child_stores(s) && pstores(s)).count() as u64 * 512;
            assert_eq!(depth1, from_parent, "case {i}");
        }
    }

    /// A three-layer chain whose child is larger than its parent (reads past the parent's end are
    /// zeros) over a raw base, which has no identity to check.
    #[test]
    fn chain_over_a_raw_base_and_a_smaller_parent() {
        let dir = tempfile::tempdir().unwrap();
        let base = noise(20, SIZE as usize / 2);
        write(dir.path(), "base.raw", &base);
        let mid_raw = noise(21, SIZE as usize / 2);
        let mid_stores = |s: u64| s.is_multiple_of(3);
        let mid = Opts {
            unique_id: [0xbb; 16],
            timestamp: 77,
            parent: Some(link(vec![(*b"W2ru", build::utf16le(".\\base.raw"))], "base.raw")),
            ..Opts::default()
        };
        write(dir.path(), "mid.vhd", &build::sparse(&mid_raw, &mid_stores, &mid));
        let top_raw = noise(22, SIZE as usize);
        let mut l = link(vec![(*b"MacX", b"file://./mid.vhd".to_vec())], "mid.vhd");
        l.unique_id = [0xbb; 16];
        l.timestamp = 77;
        let top = write(
            dir.path(),
            "top.vhd",
            &build::sparse(&top_raw, &child_stores, &Opts { parent: Some(l), ..Opts::default() }),
        );
        let r = open_ok(&top);
        assert_eq!(r.layers().len(), 3);
        let mid_view: Vec<u8> = (0..mid_raw.len() / 512)
            .flat_map(|s| {
                if mid_stores(s as u64) {
                    mid_raw[s * 512..][..512].to_vec()
                } else {
                    base[s * 512..][..512].to_vec()
                }
            })
            .collect();
        assert!(read_all(r.as_ref()) == expected(&top_raw, &mid_view, &|_| true));
    }

    /// XenServer LVHD: the child names `<uuid>.vhd`, the parent is the volume `VHD-<uuid>`, larger
    /// than the VHD in it (so its only footer is the copy at offset 0).
    #[test]
    fn xenserver_lvhd_parent_volume() {
        let dir = tempfile::tempdir().unwrap();
        let uuid = "0b3c4a2e-5d6f-4e70-8a91-b2c3d4e5f601";
        let praw = noise(80, SIZE as usize);
        let po = Opts { footer: FooterAt::StartOnly, ..parent_opts() };
        write(dir.path(), &format!("VHD-{uuid}"), &build::sparse(&praw, &|_| true, &po));
        let craw = noise(81, SIZE as usize);
        let o = Opts { parent: Some(link(vec![], &format!("{uuid}.vhd"))), ..Opts::default() };
        let child = write(dir.path(), &format!("VHD-{}", "c".repeat(8)), &build::sparse(&craw, &child_stores, &o));
        let r = open_ok(&child);
        assert!(read_all(r.as_ref()) == expected(&craw, &praw, &|_| true));
        assert!(r.details().iter().any(|(k, v)| k == "parent found by" && v.contains("LVHD")), "{:?}", r.details());
    }

    /// A parent whose unique id differs is refused with the flag to pass; the flag reads it. A
    /// different time stamp only warns.
    #[test]
    fn parent_id_mismatch_is_refused_and_timestamp_warns() {
        let dir = tempfile::tempdir().unwrap();
        let praw = noise(30, SIZE as usize);
        write(
            dir.path(),
            "base.vhd",
            &build::sparse(&praw, &|_| true, &Opts { unique_id: [0xcc; 16], ..parent_opts() }),
        );
        let craw = noise(31, SIZE as usize);
        let o = Opts { parent: Some(link(vec![(*b"W2ru", build::utf16le(".\\base.vhd"))], "")), ..Opts::default() };
        let child = write(dir.path(), "child.vhd", &build::sparse(&craw, &child_stores, &o));
        let e = open_with(&child, OpenPolicy::default()).unwrap_err();
        let s = e.to_string();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{s}");
        assert!(s.contains("--ignore-parent-mismatch") && s.contains("child.vhd") && s.contains("aaaaaaaa"), "{s}");
        let lax = OpenPolicy { ignore_parent_mismatch: true, ..OpenPolicy::default() };
        let r = open_with(&child, lax).unwrap();
        assert!(read_all(r.as_ref()) == expected(&craw, &praw, &|_| true));
        // Same id, other time stamp: read, with a warning.
        write(dir.path(), "base.vhd", &build::sparse(&praw, &|_| true, &Opts { timestamp: 999, ..parent_opts() }));
        let r = open_ok(&child);
        assert!(r.details().iter().any(|(k, v)| k == "warning" && v.contains("time stamp")), "{:?}", r.details());
        assert_eq!(r.expected_parent(), Some(xva_backends::LayerId::Vhd { unique_id: [0xaa; 16], timestamp: 1000 }));
    }
}

// ---------------------------------------------------------------------------------------------
mod bad {
    use super::*;

    const SIZE: u64 = 1 << 20;

    fn image() -> Vec<u8> {
        build::sparse(&noise(40, SIZE as usize), &|s| s % 2 == 0, &Opts::default())
    }

    fn put32(f: &mut [u8], at: usize, v: u32) {
        f[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Opens (and reads) `bytes` as `name`; returns the error text, which must name the file.
    fn fails(name: &str, bytes: &[u8], policy: OpenPolicy) -> (ErrorKind, String, Option<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        let opts = OpenOptions { format: xva_backends::probe::by_name("vhd"), policy };
        let e = match open(&path, &opts) {
            Err(e) => e,
            Ok(r) => {
                let mut v = vec![0u8; r.virtual_size() as usize];
                r.read_exact_at(&mut v, 0).expect_err("a broken image reads")
            }
        };
        let s = e.to_string();
        assert!(s.contains(name), "the error names the file: {s}");
        (e.kind(), s, e.offset())
    }

    #[test]
    fn broken_headers_and_tables_are_clear_errors() {
        let base = image();
        // The BAT entry of block 3 points past the end of the file.
        let mut f = base.clone();
        put32(&mut f, 1536 + 12, 0x00ff_ffff);
        let (k, s, at) = fails("bat.vhd", &f, OpenPolicy::default());
        assert_eq!((k, at), (ErrorKind::Corrupt, Some(1536 + 12)), "{s}");
        assert!(s.contains("BAT entry 3") && s.contains("past the end"), "{s}");
        // A block size that is not a power of two.
        let mut f = base.clone();
        put32(&mut f, 512 + 32, 3 << 16);
        let (k, s, at) = fails("bs.vhd", &f, OpenPolicy::default());
        assert_eq!((k, at), (ErrorKind::InvalidFormat, Some(512 + 32)), "{s}");
        // A huge table count with the BAT past the end of the file, and a table too small.
        let mut f = base.clone();
        put32(&mut f, 512 + 28, u32::MAX);
        f[512 + 16..512 + 24].copy_from_slice(&(u64::MAX - 8).to_be_bytes());
        let (_, s, _) = fails("count.vhd", &f, OpenPolicy::default());
        assert!(s.contains("BAT"), "{s}");
        let mut f = base.clone();
        put32(&mut f, 512 + 28, 3);
        let (k, s, _) = fails("small.vhd", &f, OpenPolicy::default());
        assert!(k == ErrorKind::Corrupt && s.contains("too few"), "{s}");
        // The dynamic header past the end of the file; no footer at all; a disk type of 9.
        let mut f = base.clone();
        let n = f.len();
        f[n - 512 + 16..n - 512 + 24].copy_from_slice(&(1u64 << 40).to_be_bytes());
        f[16..24].copy_from_slice(&(1u64 << 40).to_be_bytes());
        let (_, s, _) = fails("hdr.vhd", &f, OpenPolicy::default());
        assert!(s.contains("dynamic disk header"), "{s}");
        let (k, s, _) = fails("none.vhd", &[0u8; 4096], OpenPolicy::default());
        assert!(k == ErrorKind::InvalidFormat && s.contains("no footer"), "{s}");
        let mut f = base.clone();
        let n = f.len();
        put32(&mut f, n - 512 + 60, 9);
        put32(&mut f, 60, 9);
        let (k, s, _) = fails("type.vhd", &f, OpenPolicy::default());
        assert!(k == ErrorKind::Unsupported && s.contains("disk type 9"), "{s}");
        // A fixed disk whose footer claims more data than the file holds.
        let f = build::fixed(&vec![1u8; 4096], &Opts::default());
        let mut t = vec![1u8; 1024];
        t.extend_from_slice(&f[4096..]);
        let (k, s, _) = fails("trunc.vhd", &t, OpenPolicy::default());
        assert!(k == ErrorKind::Corrupt && s.contains("truncated"), "{s}");
    }

    #[test]
    fn broken_locators_and_loops_are_clear_errors() {
        let raw = noise(50, SIZE as usize);
        let diff = |locators: Locators, name: &str| {
            let parent = Parent { unique_id: [1; 16], timestamp: 0, unicode_name: name.into(), locators };
            build::sparse(&raw, &|s| s % 3 == 0, &Opts { parent: Some(parent), ..Opts::default() })
        };
        // A locator whose data lies past the end of the file.
        let mut f = diff(vec![(*b"W2ru", build::utf16le(".\\base.vhd"))], "");
        f[512 + 576 + 16..512 + 576 + 24].copy_from_slice(&(1u64 << 50).to_be_bytes());
        let (k, s, at) = fails("loc.vhd", &f, OpenPolicy::default());
        assert_eq!((k, at), (ErrorKind::Corrupt, Some(512 + 576 + 16)), "{s}");
        assert!(s.contains("W2ru") && s.contains("past the end"), "{s}");
        // A child that names itself, and two that name each other.
        let f = diff(vec![(*b"W2ru", build::utf16le(".\\self.vhd"))], "");
        let (k, s, _) = fails("self.vhd", &f, OpenPolicy::default());
        assert!(k == ErrorKind::RefusedReference && s.contains("loop"), "{s}");
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.vhd"), diff(vec![], "b.vhd")).unwrap();
        fs::write(dir.path().join("b.vhd"), diff(vec![], "a.vhd")).unwrap();
        let e = open_with(&dir.path().join("a.vhd"), OpenPolicy::default()).unwrap_err();
        assert!(e.kind() == ErrorKind::RefusedReference && e.to_string().contains("loop"), "{e}");
        // No parent anywhere: every name tried is listed.
        let f = diff(vec![(*b"W2ru", build::utf16le(".\\x.vhd")), (*b"MacX", b"file://./y.vhd".to_vec())], "z.vhd");
        let (k, s, _) = fails("orphan.vhd", &f, OpenPolicy::default());
        assert!(
            k == ErrorKind::MissingFile && s.contains("x.vhd") && s.contains("y.vhd") && s.contains("z.vhd"),
            "{s}"
        );
    }

    /// Random byte changes in the metadata of a dynamic and a differencing image: errors are
    /// fine, panics and hangs are not.
    #[test]
    fn mutations_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let raw = noise(60, SIZE as usize);
        fs::write(dir.path().join("base.vhd"), build::sparse(&raw, &|_| true, &Opts::default())).unwrap();
        let parent = Parent {
            unique_id: [0x11; 16],
            timestamp: 0x2e00_0000,
            unicode_name: "base.vhd".into(),
            locators: vec![(*b"W2ru", build::utf16le(".\\base.vhd"))],
        };
        let child =
            build::sparse(&raw, &|s| s % 3 == 0, &Opts { parent: Some(parent), unique_id: [2; 16], ..Opts::default() });
        let path = dir.path().join("m.vhd");
        for (i, seed) in (0..300u64).enumerate() {
            let mut f = if i % 2 == 0 { image() } else { child.clone() };
            let r = noise(seed + 1000, 16);
            for k in 0..4 {
                let meta = 2048 + 512 * 3; // footer copy, header, BAT, locator sector
                let at = if k == 3 {
                    f.len() - 512 + r[k] as usize
                } else {
                    (r[k] as usize * 13 + r[k + 4] as usize) % meta
                };
                f[at] = r[k + 8];
            }
            fs::write(&path, &f).unwrap();
            if let Ok(rd) = open_with(&path, OpenPolicy::default()) {
                let size = rd.virtual_size().min(64 << 20);
                let mut v = vec![0u8; size as usize];
                let _ = rd.read_exact_at(&mut v, 0);
                let _ = rd.extents(0..size).take(10_000).count();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
mod properties {
    use super::*;
    use proptest::prelude::*;

    const SECTORS: usize = 64; // 8 blocks of 4 KiB

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Random sector choices in a dynamic parent and a differencing child (block size 4 KiB,
        /// so blocks mix stored and parent sectors): every read, at any offset and length, and
        /// the resolved map agree with a sector-by-sector model; the extents tile the disk.
        #[test]
        fn differencing_reads_follow_the_sector_model(
            pmask in prop::collection::vec(any::<bool>(), SECTORS),
            cmask in prop::collection::vec(any::<bool>(), SECTORS),
            reads in prop::collection::vec((0u64..(SECTORS as u64 * 512), 1usize..9000), 1..8),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let praw = noise(70, SECTORS * 512);
            let craw = noise(71, SECTORS * 512);
            let small = Opts { block_size: 4096, unset_fill: 0x77, ..Opts::default() };
            let po = Opts { unique_id: [5; 16], ..small.clone() };
            fs::write(dir.path().join("p.vhd"), build::sparse(&praw, &|s| pmask[s as usize], &po)).unwrap();
            let link = Parent { unique_id: [5; 16], timestamp: small.timestamp, unicode_name: "p.vhd".into(), locators: vec![] };
            let co = Opts { parent: Some(link), ..small };
            let child = dir.path().join("c.vhd");
            fs::write(&child, build::sparse(&craw, &|s| cmask[s as usize], &co)).unwrap();
            let want: Vec<u8> = (0..SECTORS)
                .flat_map(|s| {
                    let v = if cmask[s] { &craw[s * 512..][..512] } else if pmask[s] { &praw[s * 512..][..512] } else { &[0u8; 512][..] };
                    v.to_vec()
                })
                .collect();
            let r = open_ok(&child);
            prop_assert!(read_all(r.as_ref()) == want);
            for (off, n) in reads {
                let n = n.min(want.len() - off as usize);
                let mut b = vec![0u8; n];
                r.read_exact_at(&mut b, off).unwrap();
                prop_assert!(b[..] == want[off as usize..off as usize + n], "read {}+{}", off, n);
            }
            let mut pos = 0;
            for m in r.extents(0..r.virtual_size()) {
                let m = m.unwrap();
                prop_assert_eq!(m.start, pos);
                for s in m.start / 512..(m.start + m.len) / 512 {
                    let s = s as usize;
                    let (depth, data) = if cmask[s] { (0, true) } else if pmask[s] { (1, true) } else { (m.depth, false) };
                    prop_assert_eq!((m.depth, m.data), (depth, data), "sector {}", s);
                }
                pos += m.len;
            }
            prop_assert_eq!(pos, want.len() as u64);
        }
    }
}
