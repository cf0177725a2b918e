//! VHDX reader tests against files on disk.
//!
//! * `qemu`: images written by qemu-img / qemu-io (dynamic and fixed, 1/16/256 MiB blocks,
//!   512 and 4096-byte logical sectors, a 6 GiB disk whose blocks pass the first chunk-ratio
//!   boundary, sizes that are not a multiple of the block). The full read must equal
//!   `qemu-img convert -O raw`. qemu's VHDX driver has no block-status, so `qemu-img map` calls
//!   every byte data (measured with qemu 10.0.2); the map is checked instead against where the
//!   raw source holds data (qemu-img convert allocates exactly the blocks that hold non-zero
//!   bytes) and, for fixed disks, equals qemu's. These tests need qemu-img and qemu-io and FAIL
//!   when they are missing (install qemu-utils); they never skip.
//! * `handmade`: files qemu cannot write (dirty logs, differencing disks, PARTIALLY_PRESENT
//!   blocks, unknown required regions and items), built by `xva_backends::vhdx::build`; the
//!   expected contents come from the builder's spec, not from the reader.
//! * `bad`: broken inputs give clear errors naming file and offset, never panics or hangs.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use xva_backends::vhdx::build::{self, guid, Block, LogSpec, Spec};
use xva_backends::vhdx::header;
use xva_backends::{open, BlockReader, ErrorKind, OpenOptions, OpenPolicy};

mod common;

use common::{data_after, noise, open_default, p, run};

// ---------------------------------------------------------------------------------------------
// helpers

/// A sparse raw file of `size` bytes with scattered blocks at 512-byte granular offsets and one
/// at the very end.
fn make_raw(path: &Path, size: u64, seed: u64) {
    let mut f = fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    let n = 16u64;
    for i in 0..n {
        let len = 512 + (noise(seed + i, 4)[0] as usize) * 900;
        let off = ((size / n * i + (noise(seed + 100 + i, 1)[0] as u64) * 1536) / 512 * 512).min(size - len as u64);
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(&noise(seed * 1000 + i, len)).unwrap();
    }
    f.seek(SeekFrom::Start(size - 1000)).unwrap();
    f.write_all(&noise(seed + 7, 1000)).unwrap();
}

/// Our full read equals the raw file `raw` (sparse: only its data parts are read), walking our
/// map; returns the byte ranges we call data.
fn assert_reads_like(r: &dyn BlockReader, raw: &Path) -> Vec<(u64, u64)> {
    let want_len = fs::metadata(raw).unwrap().len();
    assert_eq!(r.virtual_size(), want_len, "virtual size of {}", r.path().display());
    let mut f = fs::File::open(raw).unwrap();
    let mut data = Vec::new();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for m in r.extents(0..r.virtual_size()) {
        let m = m.unwrap();
        if m.data {
            data.push((m.start, m.len));
        }
        let mut off = m.start;
        while off < m.start + m.len {
            let n = (m.start + m.len - off).min((4 << 20) + 4097) as usize;
            let holes_only = !matches!(data_after(&f, off), Some(d) if d < off + n as u64);
            if holes_only && !m.data {
                off += n as u64;
                continue;
            }
            theirs.resize(n, 0);
            f.seek(SeekFrom::Start(off)).unwrap();
            f.read_exact(&mut theirs).unwrap();
            ours.resize(n, 0xEE);
            r.read_exact_at(&mut ours, off).unwrap();
            if ours != theirs {
                let i = ours.iter().zip(&theirs).position(|(a, b)| a != b).unwrap();
                panic!("{}: bytes differ in {off}+{n}: first at +{i} (data: {})", r.path().display(), m.data);
            }
            off += n as u64;
        }
    }
    for i in 0..48u64 {
        let off = (want_len / 48 * i + i * 511).min(want_len - 1);
        let n = (7000 + i as usize * 13).min((want_len - off) as usize);
        let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
        r.read_exact_at(&mut a, off).unwrap();
        f.seek(SeekFrom::Start(off)).unwrap();
        f.read_exact(&mut b).unwrap();
        assert!(a == b, "{}: small read at {off}+{n}", r.path().display());
    }
    data
}

/// The blocks of `raw` (of `bs` bytes) that hold a non-zero byte: what qemu-img convert
/// allocates in a dynamic VHDX, so what we must call data.
fn nonzero_blocks(raw: &Path, bs: u64) -> Vec<u64> {
    let mut f = fs::File::open(raw).unwrap();
    let len = f.metadata().unwrap().len();
    let mut out = Vec::new();
    let mut buf = vec![0u8; bs as usize];
    let mut b = 0;
    while b * bs < len {
        let off = b * bs;
        let n = bs.min(len - off) as usize;
        if matches!(data_after(&f, off), Some(d) if d < off + n as u64) {
            f.seek(SeekFrom::Start(off)).unwrap();
            f.read_exact(&mut buf[..n]).unwrap();
            if buf[..n].iter().any(|&x| x != 0) {
                out.push(b);
            }
        }
        b += 1;
    }
    out
}

fn blocks_of(data: &[(u64, u64)], bs: u64) -> Vec<u64> {
    let mut out: Vec<u64> = data.iter().flat_map(|&(s, l)| s / bs..(s + l).div_ceil(bs)).collect();
    out.dedup();
    out
}

fn detail(r: &dyn BlockReader, k: &str) -> Option<String> {
    r.details().into_iter().find(|(x, _)| x == k).map(|(_, v)| v)
}

/// The file's bytes, to compare before and after reading (the source is never written).
fn contents(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap()
}

// ---------------------------------------------------------------------------------------------
mod qemu {
    use super::*;

    /// 64 MiB + 3 sectors: not a multiple of any block size (and of 4096 only after rounding).
    const ODD: u64 = (64 << 20) + 3 * 512;
    const ODD4K: u64 = (64 << 20) + 3 * 4096;

    fn convert(opts: &str, size: u64, bs: u64) {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("base.raw");
        make_raw(&raw, size, size ^ bs);
        let out = dir.path().join("d.vhdx");
        run("qemu-img", &["convert", "-f", "raw", "-O", "vhdx", "-o", opts, p(&raw), p(&out)]);
        let qraw = dir.path().join("qemu.raw");
        run("qemu-img", &["convert", "-f", "vhdx", "-O", "raw", p(&out), p(&qraw)]);
        let before = contents(&out);
        let r = open_default(&out);
        assert_eq!(r.format().name, "vhdx");
        let data = assert_reads_like(r.as_ref(), &qraw);
        assert_reads_like(r.as_ref(), &raw);
        assert_eq!(detail(r.as_ref(), "block size"), Some(bs.to_string()), "{opts}");
        if opts.contains("fixed") {
            // qemu-img convert marks the all-zero blocks of a fixed disk ZERO in the BAT (its
            // map still says data everywhere): the blocks holding data are data.
            let ours = blocks_of(&data, bs);
            assert!(nonzero_blocks(&raw, bs).iter().all(|b| ours.contains(b)), "{opts}: {ours:?}");
            assert_eq!(detail(r.as_ref(), "disk type").as_deref(), Some("fixed"));
        } else {
            assert_eq!(blocks_of(&data, bs), nonzero_blocks(&raw, bs), "{opts}: allocated blocks");
            assert_eq!(detail(r.as_ref(), "disk type").as_deref(), Some("dynamic"));
        }
        drop(r);
        assert!(contents(&out) == before, "the source was modified");
    }

    #[test]
    fn dynamic_1m_16m_256m_blocks() {
        convert("subformat=dynamic,block_size=1M", ODD, 1 << 20);
        convert("subformat=dynamic,block_size=16M", ODD, 16 << 20);
        convert("subformat=dynamic,block_size=256M", ODD, 256 << 20);
    }

    #[test]
    fn fixed() {
        convert("subformat=fixed,block_size=1M", ODD, 1 << 20);
        convert("subformat=fixed,block_size=16M", ODD, 16 << 20);
    }

    /// qemu-img can neither write nor read 4096-byte logical sectors (no create option; its
    /// driver refuses to open them with "Operation not supported", measured with qemu 10.0.2).
    /// Built disks (dynamic and fixed, 1 and 16 MiB blocks, odd size) must read as their spec
    /// says; the same disks with 512-byte sectors must read like qemu-img convert's raw of
    /// them, which checks the builder against qemu.
    #[test]
    fn logical_sectors_of_4096() {
        let dir = tempfile::tempdir().unwrap();
        for lss in [512u32, 4096] {
            for (fixed, bs) in [(false, 1u32 << 20), (false, 16 << 20), (true, 1 << 20)] {
                let mut spec = Spec::dynamic(ODD4K);
                spec.logical_sector = lss;
                spec.block_size = bs;
                spec.fixed = fixed;
                let last = (ODD4K - 1) >> bs.trailing_zeros();
                spec.blocks = vec![(1, Block::Data(noise(1, 777_777))), (last, Block::Data(noise(2, 3 * 4096)))];
                spec.blocks.dedup_by_key(|b| b.0);
                let path = dir.path().join("s.vhdx");
                fs::write(&path, build::build(&spec)).unwrap();
                let want = dir.path().join("want.raw");
                if lss == 512 {
                    run("qemu-img", &["convert", "-f", "vhdx", "-O", "raw", p(&path), p(&want)]);
                    assert!(fs::read(&want).unwrap() == spec.expected(), "qemu reads the built disk as its spec says");
                } else {
                    fs::write(&want, spec.expected()).unwrap();
                }
                let r = open_default(&path);
                assert_reads_like(r.as_ref(), &want);
                assert_eq!(detail(r.as_ref(), "logical sector size"), Some(lss.to_string()));
            }
        }
    }

    /// 6 GiB with 16 MiB blocks: chunk ratio 256, so payload blocks from 256 on (4 GiB) sit one
    /// BAT slot further along; data at 100 MiB, across 4 GiB and at 5 GiB.
    #[test]
    fn past_the_first_chunk_ratio_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("big.vhdx");
        run("qemu-img", &["create", "-f", "vhdx", "-o", "block_size=16M", p(&out), "6G"]);
        run(
            "qemu-io",
            &[
                "-f",
                "vhdx",
                "-c",
                "write -P 0x11 100M 1M",
                "-c",
                "write -P 0x22 4095M 2M",
                "-c",
                "write -P 0x33 5G 4097",
                "-c",
                "write -P 0x44 6143M 1M",
                p(&out),
            ],
        );
        let qraw = dir.path().join("qemu.raw");
        run("qemu-img", &["convert", "-f", "vhdx", "-O", "raw", p(&out), p(&qraw)]);
        let r = open_default(&out);
        let data = assert_reads_like(r.as_ref(), &qraw);
        let bs = 16u64 << 20;
        assert_eq!(blocks_of(&data, bs), vec![6, 255, 256, 320, 383]);
        let mut b = vec![0u8; 2];
        r.read_exact_at(&mut b, (4096 << 20) - 1).unwrap();
        assert_eq!(b, [0x22, 0x22]);
    }

    /// qemu refuses to open a dirty VHDX read-only; `qemu-img check -r all` replays the log
    /// into a copy, whose raw must equal our in-memory replay of the original (and the spec).
    #[test]
    fn log_replay_agrees_with_qemu_img_check_on_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = Spec::dynamic(8 << 20);
        let mut b3 = noise(30, 1 << 20);
        b3[8192..3 * 4096].fill(0);
        spec.blocks =
            vec![(0, Block::Data(noise(10, 300_000))), (3, Block::Data(b3)), (6, Block::Data(noise(60, 4096)))];
        spec.log = Some(LogSpec { logged: vec![3, 6], torn_tail: true, ..Default::default() });
        let path = dir.path().join("dirty.vhdx");
        fs::write(&path, build::build(&spec)).unwrap();
        let copy = dir.path().join("copy.vhdx");
        fs::copy(&path, &copy).unwrap();
        run("qemu-img", &["check", "-q", "-r", "all", "-f", "vhdx", p(&copy)]);
        let want = dir.path().join("want.raw");
        run("qemu-img", &["convert", "-f", "vhdx", "-O", "raw", p(&copy), p(&want)]);
        assert!(fs::read(&want).unwrap() == spec.expected(), "qemu's replay equals the spec");
        assert_reads_like(open_default(&path).as_ref(), &want);
    }

    #[test]
    fn probe_says_vhdx() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.vhdx");
        run("qemu-img", &["create", "-f", "vhdx", p(&out), "4M"]);
        let src = xva_backends::FileSource::open(&out).unwrap();
        assert_eq!(xva_backends::probe::detect(&src).unwrap().0.name, "vhdx");
    }
}

// ---------------------------------------------------------------------------------------------
mod handmade {
    use super::*;

    fn write(dir: &Path, name: &str, spec: &Spec) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, build::build(spec)).unwrap();
        path
    }

    fn read_all(r: &dyn BlockReader) -> Vec<u8> {
        let mut v = vec![0u8; r.virtual_size() as usize];
        r.read_exact_at(&mut v, 0).unwrap();
        v
    }

    fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        if got != want {
            let i = got.iter().zip(want).position(|(a, b)| a != b).unwrap();
            panic!("{what}: first difference at byte {i}: {} != {}", got[i], want[i]);
        }
    }

    /// Every block state; 4 KiB logical sectors; a size not a multiple of the block.
    #[test]
    fn every_block_state_and_4k_sectors() {
        let dir = tempfile::tempdir().unwrap();
        for lss in [512u32, 4096] {
            let mut spec = Spec::dynamic((9 << 20) + 3 * 4096);
            spec.logical_sector = lss;
            spec.blocks = vec![
                (0, Block::Data(noise(1, 1 << 20))),
                (1, Block::State(1)),
                (2, Block::State(2)),
                (3, Block::State(3)),
                (4, Block::State(5)),
                (5, Block::Data(noise(2, 5000))),
                (9, Block::Data(noise(3, 3 * 4096))),
            ];
            let path = write(dir.path(), &format!("states{lss}.vhdx"), &spec);
            let r = open_default(&path);
            assert_bytes(&read_all(r.as_ref()), &spec.expected(), "states");
            let kinds: Vec<(u64, u64, bool)> =
                r.extents(0..r.virtual_size()).map(|m| m.unwrap()).map(|m| (m.start, m.len, m.data)).collect();
            let mb = 1u64 << 20;
            assert_eq!(
                kinds,
                vec![
                    (0, mb, true),
                    (mb, 4 * mb, false),
                    (5 * mb, mb, true),
                    (6 * mb, 3 * mb, false),
                    (9 * mb, 3 * 4096, true)
                ]
            );
            assert_eq!(detail(r.as_ref(), "logical sector size"), Some(lss.to_string()));
        }
    }

    fn logged_spec() -> Spec {
        let mut spec = Spec::dynamic(8 << 20);
        let mut b3 = noise(30, 1 << 20);
        b3[8192..3 * 4096].fill(0); // an all-zero sector: a zero descriptor in the log
        spec.blocks =
            vec![(0, Block::Data(noise(10, 300_000))), (3, Block::Data(b3)), (6, Block::Data(noise(60, 4096)))];
        spec.log = Some(LogSpec { logged: vec![3, 6], ..Default::default() });
        spec
    }

    /// A log holding BAT and data updates: only a replay reads blocks 3 and 6; the file is not
    /// modified.
    #[test]
    fn a_dirty_log_is_replayed_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let spec = logged_spec();
        let path = write(dir.path(), "dirty.vhdx", &spec);
        let before = fs::read(&path).unwrap();
        let r = open_default(&path);
        assert_bytes(&read_all(r.as_ref()), &spec.expected(), "after replay");
        let log = detail(r.as_ref(), "log").unwrap();
        assert!(log.contains("replayed") && log.contains("7 entries"), "{log}");
        drop(r);
        assert!(fs::read(&path).unwrap() == before, "the source was modified");
        // Without a replay the logged blocks read as 0xEE filler or not at all.
        let mut buf = vec![0u8; 4096];
        r_without_log(&before).read_exact_at(&mut buf, 6 << 20).unwrap();
        assert_eq!(buf, vec![0u8; 4096], "block 6 is NOT_PRESENT in the file itself");
    }

    /// Opens `file` with its log GUID cleared (so nothing is replayed).
    fn r_without_log(file: &[u8]) -> Box<dyn BlockReader> {
        let mut f = file.to_vec();
        for h in [64usize << 10, 128 << 10] {
            f[h + 48..h + 64].fill(0);
            f[h + 4..h + 8].fill(0);
            let c = xva_backends::vhdx::crc::crc32c(&f[h..h + 4096]);
            f[h + 4..h + 8].copy_from_slice(&c.to_le_bytes());
        }
        let src = std::sync::Arc::new(xva_backends::MemSource::new(f, "nolog.vhdx"));
        let policy = OpenPolicy::default();
        Box::new(xva_backends::vhdx::VhdxReader::open(src, &xva_backends::OpenCtx::new(&policy)).unwrap())
    }

    #[test]
    fn a_torn_tail_entry_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = logged_spec();
        spec.log.as_mut().unwrap().torn_tail = true;
        let path = write(dir.path(), "torn.vhdx", &spec);
        let r = open_default(&path);
        assert_bytes(&read_all(r.as_ref()), &spec.expected(), "torn tail");
        assert!(detail(r.as_ref(), "log").unwrap().contains("7 entries"));
    }

    #[test]
    fn a_log_guid_without_a_valid_sequence_is_read_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = Spec::dynamic(4 << 20);
        spec.blocks = vec![(1, Block::Data(noise(4, 9999)))];
        spec.log = Some(LogSpec { empty: true, ..Default::default() });
        let path = write(dir.path(), "nolog.vhdx", &spec);
        let r = open_default(&path);
        assert_bytes(&read_all(r.as_ref()), &spec.expected(), "no valid log");
        assert!(detail(r.as_ref(), "warning").unwrap().contains("no valid sequence"));
    }

    #[test]
    fn a_file_shorter_than_its_log_says_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = logged_spec();
        spec.log.as_mut().unwrap().flushed_extra = 1 << 20;
        let path = write(dir.path(), "short.vhdx", &spec);
        let e = open(&path, &OpenOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.to_string().contains("truncated") && e.to_string().contains("short.vhdx"), "{e}");
    }

    fn parent_spec() -> Spec {
        let mut base = Spec::dynamic((6 << 20) + 512);
        base.data_write_guid = guid(0xBA5E);
        base.blocks = (0..7).map(|b| (b, Block::Data(noise(100 + b, 1 << 20)))).collect();
        base
    }

    fn child_spec(locator: Vec<(&str, String)>) -> Spec {
        let mut c = Spec::dynamic((6 << 20) + 512);
        c.data_write_guid = guid(0xC41D);
        let sectors: Vec<bool> = (0..2048).map(|s| s % 3 == 0 || (100..300).contains(&s)).collect();
        c.blocks = vec![
            (1, Block::Data(noise(201, 1 << 20))),
            (2, Block::State(2)),
            (3, Block::Partial { data: noise(203, 1 << 20), sectors }),
            (5, Block::Partial { data: noise(205, 1 << 20), sectors: vec![false, true, true] }),
        ];
        c.parent = Some(locator.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        c
    }

    fn linkage(g: u32) -> String {
        format!("{{{}}}", header::guid_string(&guid(g)))
    }

    /// The child over the parent, computed from the two specs.
    fn merged(parent: &Spec, child: &Spec) -> Vec<u8> {
        let mut out = parent.expected();
        let lss = 512usize;
        let top = child.expected();
        for (b, blk) in &child.blocks {
            let at = *b as usize * (1 << 20);
            let end = (at + (1 << 20)).min(out.len());
            match blk {
                Block::Data(_) | Block::State(_) => out[at..end].copy_from_slice(&top[at..end]),
                Block::Partial { sectors, .. } => {
                    for (s, present) in sectors.iter().enumerate() {
                        let lo = at + s * lss;
                        if *present && lo < end {
                            out[lo..(lo + lss).min(end)].copy_from_slice(&top[lo..(lo + lss).min(end)]);
                        }
                    }
                }
                Block::Entry(_) => unreachable!(),
            }
        }
        out
    }

    #[test]
    fn differencing_with_partially_present_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let base = parent_spec();
        write(dir.path(), "base.vhdx", &base);
        let child = child_spec(vec![
            ("parent_linkage", linkage(0xBA5E)),
            ("relative_path", ".\\base.vhdx".to_string()),
            ("absolute_win32_path", "C:\\Hyper-V\\base.vhdx".to_string()),
        ]);
        let path = write(dir.path(), "child.avhdx", &child);
        let r = open_default(&path);
        assert_eq!(r.parent().unwrap().format().name, "vhdx");
        assert_eq!(detail(r.as_ref(), "disk type").as_deref(), Some("differencing"));
        assert_bytes(&read_all(r.as_ref()), &merged(&base, &child), "differencing");
        // The map: depth 1 where the parent shows through.
        let m: Vec<_> = r.extents(0..r.virtual_size()).map(|m| m.unwrap()).collect();
        assert!(m.iter().any(|m| m.depth == 1 && m.data));
        assert!(m.iter().any(|m| m.depth == 0 && m.start == 3 << 20 && m.len == 512 && m.data));
    }

    #[test]
    fn the_parent_is_found_by_the_base_name_of_an_absolute_path_and_linkage2() {
        let dir = tempfile::tempdir().unwrap();
        let base = parent_spec();
        write(dir.path(), "base.vhdx", &base);
        let child = child_spec(vec![
            ("parent_linkage", linkage(0x1111)),
            ("parent_linkage2", linkage(0xBA5E)),
            ("relative_path", "..\\elsewhere\\base.vhdx".to_string()),
            ("absolute_win32_path", "\\\\?\\D:\\vms\\base.vhdx".to_string()),
        ]);
        let path = write(dir.path(), "child.avhdx", &child);
        let r = open_default(&path);
        assert_bytes(&read_all(r.as_ref()), &merged(&base, &child), "via absolute path");
    }

    #[test]
    fn a_parent_with_another_data_write_guid_is_refused_unless_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "base.vhdx", &parent_spec());
        let child = child_spec(vec![("parent_linkage", linkage(0x2222)), ("relative_path", "base.vhdx".to_string())]);
        let path = write(dir.path(), "child.avhdx", &child);
        let e = open(&path, &OpenOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.to_string().contains("DataWriteGuid") && e.to_string().contains("--ignore-parent-mismatch"), "{e}");
        let opts = OpenOptions {
            policy: OpenPolicy { ignore_parent_mismatch: true, ..Default::default() },
            ..Default::default()
        };
        assert!(open(&path, &opts).is_ok());
    }

    /// An AVHDX chain of three: base ← child ← grandchild, each checked by DataWriteGuid.
    #[test]
    fn a_chain_of_three() {
        let dir = tempfile::tempdir().unwrap();
        let base = parent_spec();
        write(dir.path(), "base.vhdx", &base);
        let child = child_spec(vec![("parent_linkage", linkage(0xBA5E)), ("relative_path", "base.vhdx".to_string())]);
        write(dir.path(), "child.avhdx", &child);
        let mut grand = Spec::dynamic((6 << 20) + 512);
        grand.blocks = vec![(3, Block::Partial { data: noise(300, 1 << 20), sectors: vec![false, false, true] })];
        grand.parent = Some(vec![
            ("parent_linkage".to_string(), linkage(0xC41D)),
            ("relative_path".to_string(), "child.avhdx".to_string()),
        ]);
        let path = write(dir.path(), "grand.avhdx", &grand);
        let r = open_default(&path);
        assert_eq!(r.layers().len(), 3);
        let mut want = merged(&base, &child);
        let top = grand.expected();
        let at = (3 << 20) + 1024;
        want[at..at + 512].copy_from_slice(&top[at..at + 512]);
        assert_bytes(&read_all(r.as_ref()), &want, "chain of three");
    }

    /// A differencing disk naming itself is a loop, not a hang.
    #[test]
    fn a_disk_naming_itself_is_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let mut me = child_spec(vec![("parent_linkage", linkage(0xC41D)), ("relative_path", "me.avhdx".to_string())]);
        me.data_write_guid = guid(0xC41D);
        let path = write(dir.path(), "me.avhdx", &me);
        let e = open(&path, &OpenOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RefusedReference, "{e}");
        assert!(e.to_string().contains("me.avhdx"), "{e}");
    }

    #[test]
    fn unknown_required_region_and_item_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let other = header::parse_guid(b"01234567-89AB-CDEF-0123-456789ABCDEF").unwrap();
        for (region, item) in [(true, false), (false, true)] {
            let mut spec = Spec::dynamic(4 << 20);
            spec.blocks = vec![(0, Block::Data(noise(9, 1000)))];
            for required in [false, true] {
                if region {
                    spec.extra_region = Some((other, required));
                }
                if item {
                    spec.extra_item = Some((other, required));
                }
                let path = write(dir.path(), "unknown.vhdx", &spec);
                match open(&path, &OpenOptions::default()) {
                    Ok(r) => {
                        assert!(!required);
                        assert_bytes(&read_all(r.as_ref()), &spec.expected(), "optional unknown");
                    }
                    Err(e) => {
                        assert!(required, "{e}");
                        assert_eq!(e.kind(), ErrorKind::Unsupported);
                        assert!(e.to_string().contains("01234567-89AB-CDEF-0123-456789ABCDEF"), "{e}");
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
mod bad {
    use super::*;
    use xva_backends::vhdx::crc;

    fn err(bytes: &[u8], name: &str) -> xva_backends::Error {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        let e = match open(&path, &OpenOptions::default()) {
            Err(e) => e,
            Ok(r) => {
                let mut buf = vec![0u8; r.virtual_size() as usize];
                r.read_exact_at(&mut buf, 0).expect_err("a broken file reads")
            }
        };
        assert!(e.to_string().contains(name), "{e}");
        e
    }

    fn reseal(f: &mut [u8], at: usize, len: usize) {
        f[at + 4..at + 8].fill(0);
        let c = crc::crc32c(&f[at..at + len]);
        f[at + 4..at + 8].copy_from_slice(&c.to_le_bytes());
    }

    fn small() -> Spec {
        let mut s = Spec::dynamic(4 << 20);
        s.blocks = vec![(0, Block::Data(noise(1, 5000)))];
        s
    }

    #[test]
    fn crc_failures_on_both_headers() {
        let mut f = build::build(&small());
        f[(64 << 10) + 200] ^= 1;
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.vhdx");
        fs::write(&one, &f).unwrap();
        assert_eq!(detail(open_default(&one).as_ref(), "header").unwrap(), "2 (sequence number 11)");
        f[(128 << 10) + 200] ^= 1;
        let e = err(&f, "both.vhdx");
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.to_string().contains("header 1") && e.to_string().contains("header 2"), "{e}");
        assert!(e.to_string().contains("CRC-32C") && e.offset().is_some(), "{e}");
    }

    #[test]
    fn bat_entries_past_eof() {
        let mut s = small();
        s.blocks.push((2, Block::Entry((1 << 40) | 6)));
        let e = err(&build::build(&s), "pasteof.vhdx");
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.to_string().contains("outside the file") && e.offset() == Some((6 << 20) + 16), "{e}");
        let mut s = small();
        s.blocks.push((1, Block::State(4)));
        assert!(err(&build::build(&s), "reserved.vhdx").to_string().contains("reserved state 4"));
        let mut s = small();
        s.blocks.push((1, Block::Partial { data: vec![1], sectors: vec![true] }));
        let f = build::build(&s);
        assert!(err(&f, "partial.vhdx").to_string().contains("PARTIALLY_PRESENT"));
    }

    /// Patches file parameters (block size) in the metadata item at 1 MiB + 64 KiB.
    #[test]
    fn block_sizes_that_are_not_a_power_of_two() {
        for bs in [3u32 << 20, 0, 512 << 20, 1 << 19] {
            let mut f = build::build(&small());
            let at = (1 << 20) + (64 << 10);
            f[at..at + 4].copy_from_slice(&bs.to_le_bytes());
            let e = err(&f, "bs.vhdx");
            assert!(e.to_string().contains("block size") && e.offset() == Some(1 << 20), "{e}");
        }
    }

    #[test]
    fn huge_counts_and_sizes() {
        // Region table entry count.
        let mut f = build::build(&small());
        let at = 192 << 10;
        f[at + 8..at + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        reseal(&mut f, at, 64 << 10);
        let at2 = 256 << 10;
        f[at2 + 8..at2 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        reseal(&mut f, at2, 64 << 10);
        assert!(err(&f, "regions.vhdx").to_string().contains("entries"));
        // Metadata entry count.
        let mut f = build::build(&small());
        f[(1 << 20) + 10..(1 << 20) + 12].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(err(&f, "items.vhdx").to_string().contains("entries"));
        // A 64 TiB disk needs a far larger BAT than the file has.
        let mut f = build::build(&small());
        let at = (1 << 20) + (64 << 10) + 8;
        f[at..at + 8].copy_from_slice(&(64u64 << 40).to_le_bytes());
        assert!(err(&f, "huge.vhdx").to_string().contains("BAT region"));
        let mut f = build::build(&small());
        f[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(err(&f, "max.vhdx").to_string().contains("virtual disk size"));
        // A metadata item far past its region (nothing that large is allocated).
        let mut f = build::build(&small());
        let at = (1 << 20) + 32 + 16;
        f[at..at + 4].copy_from_slice(&0xFFFF_0000u32.to_le_bytes());
        let e = err(&f, "item.vhdx");
        assert!(e.to_string().contains("do not fit") && e.offset() == Some(1 << 20), "{e}");
        // A log longer than the file.
        let mut f = build::build(&small());
        for h in [64usize << 10, 128 << 10] {
            f[h + 48..h + 64].fill(0x42);
            f[h + 68..h + 72].copy_from_slice(&(1024u32 << 20).to_le_bytes());
            reseal(&mut f, h, 4096);
        }
        assert!(err(&f, "log.vhdx").to_string().contains("truncated"));
    }

    #[test]
    fn random_damage_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = Spec::dynamic(3 << 20);
        spec.blocks = vec![(0, Block::Data(noise(1, 4096))), (2, Block::Data(noise(2, 4096)))];
        spec.log = Some(LogSpec { logged: vec![2], ..Default::default() });
        let file = build::build(&spec);
        let hot = [0usize, 64 << 10, 128 << 10, 192 << 10, 1 << 20, (1 << 20) + (64 << 10), 2 << 20, 6 << 20];
        for round in 0..300u64 {
            let mut f = file.clone();
            let r = noise(round * 7 + 3, 16);
            for k in 0..4 {
                let base = hot[r[k] as usize % hot.len()];
                let at = base + (u32::from_le_bytes(r[k * 4..k * 4 + 4].try_into().unwrap()) as usize % 512);
                f[at] ^= r[k + 8].max(1);
            }
            let t = dir.path().join("dmg.vhdx");
            fs::write(&t, &f).unwrap();
            if let Ok(rd) = open(&t, &OpenOptions::default()) {
                let mut buf = vec![0u8; rd.virtual_size().min(8 << 20) as usize];
                let _ = rd.read_exact_at(&mut buf, 0);
                for m in rd.extents(0..rd.virtual_size()).take(10_000) {
                    if m.is_err() {
                        break;
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
/// The fuzz target's seed corpus (`fuzz/corpus/vhdx/`): rewritten with `XVA_WRITE_SEEDS=1`,
/// otherwise checked to be what the builder makes now, and to open (the differencing seed
/// fails only for its missing parent).
#[test]
fn fuzz_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/vhdx");
    let mut dynamic = Spec::dynamic((4 << 20) + 512);
    dynamic.blocks = vec![
        (0, Block::Data(noise(1, 3000))),
        (1, Block::State(2)),
        (2, Block::State(3)),
        (4, Block::Data(noise(2, 512))),
    ];
    let mut dirty = Spec::dynamic(3 << 20);
    dirty.blocks = vec![(0, Block::Data(noise(3, 600))), (2, Block::Data(noise(4, 9000)))];
    dirty.log = Some(LogSpec { logged: vec![2], torn_tail: true, ..Default::default() });
    let mut diff = Spec::dynamic(2 << 20);
    diff.blocks = vec![(1, Block::Partial { data: noise(5, 2048), sectors: vec![true, false, true, true] })];
    diff.parent = Some(vec![
        ("parent_linkage".to_string(), format!("{{{}}}", header::guid_string(&guid(9)))),
        ("relative_path".to_string(), "base.vhdx".to_string()),
    ]);
    let mut sectors4k = Spec::dynamic(2 << 20);
    sectors4k.logical_sector = 4096;
    sectors4k.fixed = true;
    sectors4k.blocks = vec![(1, Block::Data(noise(6, 5000)))];
    let write = std::env::var_os("XVA_WRITE_SEEDS").is_some();
    if write {
        fs::create_dir_all(&dir).unwrap();
    }
    for (name, spec) in [("dynamic", dynamic), ("dirty-log", dirty), ("differencing", diff), ("4k-fixed", sectors4k)] {
        let seed = build::encode(&build::build(&spec));
        let path = dir.join(format!("{name}.vxp"));
        if write {
            fs::write(&path, &seed).unwrap();
        }
        let stored =
            fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (XVA_WRITE_SEEDS=1 writes it)", path.display()));
        assert!(stored == seed, "{} is stale: rerun with XVA_WRITE_SEEDS=1", path.display());
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("seed.vhdx");
        fs::write(&f, build::decode(&stored).unwrap()).unwrap();
        match open(&f, &OpenOptions::default()) {
            Ok(r) => assert_eq!(r.virtual_size(), spec.virtual_size),
            Err(e) => assert!(name == "differencing" && e.kind() == ErrorKind::MissingFile, "{name}: {e}"),
        }
    }
}
