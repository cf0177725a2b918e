//! Helpers shared by the reader tests against qemu-img (`vmdk.rs`, `qcow2.rs`, `vhd.rs`,
//! `vhdx.rs`): running
//! qemu-img / qemu-io (failing, never skipping, when they are missing), test disks, and the
//! oracle check — our full read equals `qemu-img convert -O raw`, our map equals
//! `qemu-img map --output=json`.
#![allow(dead_code)] // each test binary uses its own subset

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use xva_backends::{open, BlockReader, OpenOptions};

pub fn run(cmd: &str, args: &[&str]) -> String {
    run_in(Path::new("."), cmd, args)
}

/// Runs `cmd` in `dir` (qemu resolves some names an image holds, such as qcow2 external data
/// files, against its working directory).
pub fn run_in(dir: &Path, cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).current_dir(dir).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {cmd} ({e}): the oracle tests need qemu-img and qemu-io \
             (Debian/Ubuntu: apt-get install qemu-utils); they fail rather than skip"
        )
    });
    assert!(out.status.success(), "{cmd} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

pub fn qemu_img(args: &[&str]) -> String {
    run("qemu-img", args)
}

/// `qemu-io -f FMT -c CMD ... PATH`, in the image's directory.
pub fn qemu_io(fmt: &str, path: &Path, cmds: &[&str]) {
    let mut args = vec!["-f", fmt];
    for c in cmds {
        args.push("-c");
        args.push(c);
    }
    args.push(path.to_str().unwrap());
    run_in(path.parent().unwrap(), "qemu-io", &args);
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Deterministic pseudo-random bytes.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 24, len)
}

/// `len` bytes of a xorshift64 stream started at `start | 1`, each taken from bits `shift..`
/// of the state (the one generator behind [`noise`] and the VHD tests' own seeding).
pub fn xorshift(start: u64, shift: u32, len: usize) -> Vec<u8> {
    let mut x = start | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> shift) as u8
        })
        .collect()
}

/// A sparse raw file of `size` bytes with scattered blocks at 512-byte granular offsets
/// (straddling grains), one at the very end, and some compressible text.
pub fn make_raw(path: &Path, size: u64, seed: u64) -> Vec<(u64, usize)> {
    let mut f = fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    let mut blocks = Vec::new();
    let n = 24;
    for i in 0..n {
        let len = 512 + (noise(seed + i, 4)[0] as usize) * 700;
        let off = (size / n * i + (noise(seed + 100 + i, 1)[0] as u64) * 1536) / 512 * 512;
        let off = off.min(size - len as u64);
        blocks.push((off, len));
    }
    blocks.push((size - 1000.min(size), 1000.min(size as usize)));
    for (i, &(off, len)) in blocks.iter().enumerate() {
        f.seek(SeekFrom::Start(off)).unwrap();
        if i % 3 == 0 {
            let text: Vec<u8> = format!("block {i} at {off:x} ").bytes().cycle().take(len).collect();
            f.write_all(&text).unwrap();
        } else {
            f.write_all(&noise(seed * 1000 + i as u64, len)).unwrap();
        }
    }
    blocks
}

pub fn open_default(path: &Path) -> Box<dyn BlockReader> {
    open(path, &OpenOptions::default()).unwrap_or_else(|e| panic!("opening {}: {e} ({:?})", path.display(), e.kind()))
}

pub type Row = (u64, u64, u32, bool, bool, bool);

pub fn coalesce(rows: impl IntoIterator<Item = Row>) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for r in rows {
        if r.1 == 0 {
            continue;
        }
        if let Some(l) = out.last_mut() {
            if l.0 + l.1 == r.0 && (l.2, l.3, l.4, l.5) == (r.2, r.3, r.4, r.5) {
                l.1 += r.1;
                continue;
            }
        }
        out.push(r);
    }
    out
}

pub fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let k = format!("\"{key}\":");
    let at = line.find(&k).unwrap_or_else(|| panic!("no {key} in {line}")) + k.len();
    let rest = line[at..].trim_start();
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim()
}

/// `qemu-img map --output=json`, normalised: ranges qemu reports as both zero and data (holes
/// of flat extents, found by recursing into the file) are zero, as we report them.
pub fn qemu_map(fmt: &str, path: &Path) -> Vec<Row> {
    let out = run_in(path.parent().unwrap(), "qemu-img", &["map", "--output=json", "-f", fmt, p(path)]);
    coalesce(out.lines().filter(|l| l.contains("\"start\"")).map(|l| {
        let zero = field(l, "zero") == "true";
        let data = field(l, "data") == "true";
        (
            field(l, "start").parse().unwrap(),
            field(l, "length").parse().unwrap(),
            field(l, "depth").parse().unwrap(),
            field(l, "present") == "true",
            zero,
            data && !zero,
        )
    }))
}

pub fn our_map(r: &dyn BlockReader) -> Vec<Row> {
    coalesce(
        r.extents(0..r.virtual_size())
            .map(|m| m.unwrap())
            .map(|m| (m.start, m.len, m.depth, m.present, m.zero, m.data)),
    )
}

/// Full read equals `qemu-img convert -O raw`, odd-sized reads agree, and the map equals
/// `qemu-img map`.
pub fn assert_like_qemu(fmt: &str, path: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("qemu.raw");
    run_in(path.parent().unwrap(), "qemu-img", &["convert", "-f", fmt, "-O", "raw", p(path), p(&raw)]);
    let r = open_default(path);
    let want_len = fs::metadata(&raw).unwrap().len();
    assert_eq!(r.virtual_size(), want_len, "virtual size of {}", path.display());
    let mut f = fs::File::open(&raw).unwrap();
    let mut ours = vec![0u8; 0];
    let mut theirs = vec![0u8; 0];
    // Walk our map: data ranges are compared byte for byte, zero ranges must be zero in qemu's
    // output too; chunks of an odd size so that reads straddle grains and extents.
    for m in r.extents(0..r.virtual_size()) {
        let m = m.unwrap();
        let mut off = m.start;
        while off < m.start + m.len {
            let n = (m.start + m.len - off).min((4 << 20) + 4097) as usize;
            if !m.data && m.depth == 0 {
                // Zero here: qemu's sparse output must hold no data in the range either
                // (only the parts the file system says hold data are read).
                match data_after(&f, off) {
                    Some(d) if d < off + n as u64 => {}
                    _ => {
                        off += n as u64;
                        continue;
                    }
                }
            }
            theirs.resize(n, 0);
            f.seek(SeekFrom::Start(off)).unwrap();
            f.read_exact(&mut theirs).unwrap();
            if m.data || m.depth > 0 {
                ours.resize(n, 0xEE);
                r.read_exact_at(&mut ours, off).unwrap();
                if ours != theirs {
                    let i = ours.iter().zip(&theirs).position(|(a, b)| a != b).unwrap();
                    let j = ours.iter().zip(&theirs).rposition(|(a, b)| a != b).unwrap();
                    panic!("{}: bytes differ in {off}+{n}: first at +{i}, last at +{j}", path.display());
                }
            } else {
                assert!(theirs.iter().all(|&b| b == 0), "{}: we say {off}+{n} is zero, qemu disagrees", path.display());
            }
            off += n as u64;
        }
    }
    // Small reads at awkward offsets.
    for i in 0..64u64 {
        let off = (want_len / 64 * i + i * 511).min(want_len - 1);
        let n = (7000 + i as usize * 13).min((want_len - off) as usize);
        let mut a = vec![0u8; n];
        let mut b = vec![0u8; n];
        r.read_exact_at(&mut a, off).unwrap();
        f.seek(SeekFrom::Start(off)).unwrap();
        f.read_exact(&mut b).unwrap();
        assert!(a == b, "{}: small read at {off}+{n}", path.display());
    }
    assert_eq!(our_map(r.as_ref()), qemu_map(fmt, path), "map of {}", path.display());
}

/// `lseek(SEEK_DATA)`: the first data byte at or after `off`, `None` when only holes follow.
pub fn data_after(f: &fs::File, off: u64) -> Option<u64> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain lseek on an fd owned by `f`, which outlives the call.
    let r = unsafe { libc::lseek(f.as_raw_fd(), off as libc::off_t, libc::SEEK_DATA) };
    if r < 0 {
        None
    } else {
        Some(r as u64)
    }
}

pub fn base_raw(dir: &Path, size: u64) -> PathBuf {
    let raw = dir.join("base.raw");
    make_raw(&raw, size, size);
    raw
}

/// 64 MiB + 3 sectors: not a multiple of the grain or of 1 MiB.
pub const ODD: u64 = (64 << 20) + 3 * 512;
