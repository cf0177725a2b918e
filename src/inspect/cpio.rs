//! The module names inside an initramfs: one or more cpio `newc` archives (dracut puts an
//! uncompressed early-microcode archive first), the last usually gzip- or zstd-compressed.
//! Streaming: file data is skipped, never kept, so memory stays small whatever the image size.
//!
//! newc header (`cpio(5)`): magic `070701`/`070702`, then 13 fields of 8 hex digits — ino, mode,
//! uid, gid, nlink, mtime, **filesize** (field 7), devmajor, devminor, rdevmajor, rdevminor,
//! **namesize** (field 12, with the NUL), check; the name follows, padded so header + name is a
//! multiple of 4; then the data, padded to 4. The name `TRAILER!!!` ends an archive; zero bytes
//! may pad before the next one.

use std::collections::BTreeSet;
use std::io::{self, Read};

use super::{Error, ErrorKind, Result};

/// Most decompressed bytes scanned from one image.
pub const MAX_UNPACKED: u64 = 1 << 30;
/// Most entries read from one image.
pub const MAX_ENTRIES: usize = 500_000;
/// Longest entry name.
const MAX_NAME: usize = 4096;
/// Most zero padding bytes skipped between archives.
const MAX_PADDING: usize = 1 << 20;

/// What an initramfs holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Initramfs {
    /// Compressions met, in order (`none`, `gzip`, `zstd`).
    pub layers: Vec<&'static str>,
    /// Kernel module names (`xen_blkfront`: file name without `.ko*`, `-` read as `_`).
    pub modules: BTreeSet<String>,
    /// A compression `xva` does not read (`xz`, `lz4`, `bzip2`, `lzma`): the modules after it
    /// are unknown.
    pub unsupported: Option<&'static str>,
    /// The scan stopped early, at the first module it was asked to look for: `modules` is
    /// then only what came before.
    pub stopped: bool,
}

/// Scans a whole initramfs image.
pub fn scan(data: impl Read) -> Result<Initramfs> {
    scan_until(data, &[])
}

/// Scans an initramfs image, stopping at the first module named in `stop`.
pub fn scan_until(data: impl Read, stop: &[&str]) -> Result<Initramfs> {
    let mut out = Initramfs::default();
    let mut st = State { entries: 0, stop };
    scan_into(Box::new(data), 0, &mut out, &mut st)?;
    Ok(out)
}

struct State<'s> {
    entries: usize,
    stop: &'s [&'s str],
}

fn corrupt(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupt, what)
}

fn io_err(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return corrupt("initramfs ends inside a cpio entry");
    }
    // An inspection error travelling through ext4-view's or a decompressor's io::Error.
    match e.get_ref().and_then(|x| x.downcast_ref::<Error>()) {
        Some(inner) => Error::new(inner.kind, inner.to_string()),
        None => Error::with_source(ErrorKind::Corrupt, "reading the initramfs", e),
    }
}

fn scan_into(mut r: Box<dyn Read + '_>, depth: u32, out: &mut Initramfs, st: &mut State<'_>) -> Result<()> {
    loop {
        let mut first = [0u8; 1];
        let mut skipped = 0usize;
        loop {
            match r.read(&mut first) {
                Ok(0) => return Ok(()),
                Ok(_) if first[0] == 0 => {
                    skipped += 1;
                    if skipped > MAX_PADDING {
                        return Err(corrupt("more than 1 MiB of zeros between initramfs archives"));
                    }
                }
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        let mut magic = [0u8; 6];
        magic[0] = first[0];
        r.read_exact(&mut magic[1..]).map_err(io_err)?;
        match &magic {
            b"070701" | b"070702" => {
                if depth == 0 && out.layers.last() != Some(&"none") {
                    out.layers.push("none");
                }
                archive(&mut r, out, st)?;
                if out.stopped {
                    return Ok(());
                }
            }
            [0x1f, 0x8b, ..] | [0x28, 0xb5, 0x2f, 0xfd, ..] if depth < 2 => {
                let gzip = magic[0] == 0x1f;
                out.layers.push(if gzip { "gzip" } else { "zstd" });
                let whole = io::Cursor::new(magic).chain(r).take(MAX_UNPACKED);
                let inner: Box<dyn Read + '_> = if gzip {
                    Box::new(flate2::read::MultiGzDecoder::new(whole))
                } else {
                    Box::new(zstd::stream::read::Decoder::new(whole).map_err(io_err)?)
                };
                return scan_into(inner, depth + 1, out, st);
            }
            [0xfd, b'7', b'z', b'X', b'Z', 0] => return unsupported(out, "xz"),
            [0x02, 0x21, 0x4c, 0x18, ..] | [0x04, 0x22, 0x4d, 0x18, ..] => return unsupported(out, "lz4"),
            [b'B', b'Z', b'h', ..] => return unsupported(out, "bzip2"),
            [0x5d, 0, 0, ..] => return unsupported(out, "lzma"),
            _ => return Err(corrupt(format!("initramfs: unknown data starting {}", crate_hex(&magic)))),
        }
    }
}

fn unsupported(out: &mut Initramfs, what: &'static str) -> Result<()> {
    out.layers.push(what);
    out.unsupported = Some(what);
    Ok(())
}

fn crate_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

/// The entries of one archive, after its first magic, up to `TRAILER!!!`.
fn archive(r: &mut Box<dyn Read + '_>, out: &mut Initramfs, st: &mut State<'_>) -> Result<()> {
    let mut first = true;
    loop {
        if !first {
            let mut magic = [0u8; 6];
            r.read_exact(&mut magic).map_err(io_err)?;
            if &magic != b"070701" && &magic != b"070702" {
                return Err(corrupt(format!("cpio entry without newc magic ({})", crate_hex(&magic))));
            }
        }
        first = false;
        st.entries += 1;
        if st.entries > MAX_ENTRIES {
            return Err(Error::new(ErrorKind::Unsupported, format!("initramfs holds more than {MAX_ENTRIES} entries")));
        }
        let mut h = [0u8; 104];
        r.read_exact(&mut h).map_err(io_err)?;
        let field = |i: usize| -> Result<u64> {
            let s = std::str::from_utf8(&h[i * 8..i * 8 + 8]).map_err(|_| corrupt("cpio header field is not hex"))?;
            u64::from_str_radix(s, 16).map_err(|_| corrupt(format!("cpio header field {s:?} is not hex")))
        };
        let filesize = field(6)?;
        let namesize = field(11)? as usize;
        if namesize == 0 || namesize > MAX_NAME {
            return Err(corrupt(format!("cpio name size {namesize} (1..={MAX_NAME} expected)")));
        }
        let mut name = vec![0u8; namesize];
        r.read_exact(&mut name).map_err(io_err)?;
        skip(r, pad4(110 + namesize as u64))?;
        name.pop();
        if name == b"TRAILER!!!" {
            return Ok(());
        }
        if let Some(m) = module_name(&name) {
            let stop = st.stop.contains(&m.as_str());
            out.modules.insert(m);
            if stop {
                out.stopped = true;
                return Ok(());
            }
        }
        skip(r, filesize + pad4(filesize))?;
    }
}

fn pad4(n: u64) -> u64 {
    (4 - n % 4) % 4
}

fn skip(r: &mut Box<dyn Read + '_>, n: u64) -> Result<()> {
    let got = io::copy(&mut r.take(n), &mut io::sink()).map_err(io_err)?;
    if got != n {
        return Err(corrupt("initramfs ends inside a cpio entry"));
    }
    Ok(())
}

/// `usr/lib/modules/6.1.0/kernel/drivers/block/xen-blkfront.ko.xz` → `xen_blkfront`.
pub fn module_name(path: &[u8]) -> Option<String> {
    let path = std::str::from_utf8(path).ok()?;
    let base = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().find_map(|ext| base.strip_suffix(ext))?;
    Some(stem.replace('-', "_"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A newc archive of `names` (empty files; directories are plain entries too).
    pub(crate) fn newc(names: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, n) in names.iter().chain(["TRAILER!!!"].iter()).enumerate() {
            let data: &[u8] = if n.ends_with(".ko") { b"\x7fELF" } else { b"" };
            v.extend_from_slice(b"070701");
            let fields = [i as u64, 0o100644, 0, 0, 1, 0, data.len() as u64, 0, 0, 0, 0, n.len() as u64 + 1, 0];
            for f in fields {
                v.extend_from_slice(format!("{f:08X}").as_bytes());
            }
            v.extend_from_slice(n.as_bytes());
            v.push(0);
            while v.len() % 4 != 0 {
                v.push(0);
            }
            v.extend_from_slice(data);
            while v.len() % 4 != 0 {
                v.push(0);
            }
        }
        v
    }

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn early_microcode_then_gzip() {
        let mut img = newc(&["kernel/x86/microcode/GenuineIntel.bin"]);
        img.extend_from_slice(&[0; 512]);
        img.extend(gzip(&newc(&["usr/lib/modules/6.1.0/kernel/drivers/block/xen-blkfront.ko", "init"])));
        let got = scan(&img[..]).unwrap();
        assert_eq!(got.layers, vec!["none", "gzip"]);
        assert_eq!(got.modules.into_iter().collect::<Vec<_>>(), vec!["xen_blkfront".to_string()]);
    }

    #[test]
    fn stops_at_the_first_wanted_module() {
        let img = gzip(&newc(&["a/ata_piix.ko", "b/ext4.ko", "c/xen-blkfront.ko"]));
        let got = scan_until(&img[..], &["xen_blkfront", "ata_piix"]).unwrap();
        assert!(got.stopped);
        assert_eq!(got.modules.into_iter().collect::<Vec<_>>(), vec!["ata_piix".to_string()]);
        let got = scan(&img[..]).unwrap();
        assert!(!got.stopped);
        assert_eq!(got.modules.len(), 3);
    }

    #[test]
    fn zstd_and_unsupported_xz() {
        let inner = newc(&["lib/modules/5.14/kernel/drivers/ata/ata_piix.ko.xz"]);
        let img = zstd::encode_all(&inner[..], 1).unwrap();
        let got = scan(&img[..]).unwrap();
        assert_eq!(got.layers, vec!["zstd"]);
        assert!(got.modules.contains("ata_piix"));
        let got = scan(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2][..]).unwrap();
        assert_eq!(got.unsupported, Some("xz"));
    }

    #[test]
    fn truncated_and_garbage_are_errors() {
        let img = newc(&["a.ko"]);
        assert!(scan(&img[..50]).is_err());
        assert!(scan(&b"hello world"[..]).is_err());
        let mut bad = img.clone();
        bad[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"FFFFFFFF");
        assert!(scan(&bad[..]).is_err());
        assert_eq!(scan(&[][..]).unwrap(), Initramfs::default());
    }
}
