//! VHD: Virtual PC / Hyper-V (generation 1) / XenServer virtual disks — fixed, dynamic and
//! differencing (`disk-formats.md` §1.4; `docs/formats/vhd.md`).
//!
//! ```text
//!   fixed         [ data ...................................... ][footer]
//!   dynamic       [footer copy][header][BAT]  [bitmap|block] ... [footer]
//!   differencing  the same, plus parent locators; a 0 bit in a block's sector bitmap (or an
//!                 unallocated block) shows the parent ──► parent layer (unique id checked)
//! ```
//!
//! The footer is read at EOF − 512, then EOF − 511 (pre-2004 Virtual PC), then the copy at
//! offset 0 (a VHD inside a larger volume); a copy with a bad checksum is used only when no good
//! one exists, with a warning, as qemu does. This layer reports its own blocks only
//! (`block_status`); the generic resolver (`crate::chain`) reads through to the parent.

pub mod dynamic;
pub mod footer;

#[cfg(any(test, feature = "testutil"))]
pub mod build;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::dynamic::{Header, UNALLOCATED};
use self::footer::{DiskType, Footer};
use crate::cache::{next_owner_id, LayerCache, TABLE_CACHE_BYTES};
use crate::error::{CheckedExt, Error, ErrorKind, Result};
use crate::flat::Flat;
use crate::format::{Confidence, ProbeInput};
use crate::parent::{self, LayerId, ParentRef};
use crate::policy::OpenCtx;
use crate::reader::{Allocation, BlockReader, Extent, Format};
use crate::source::{read_vec, ByteSource};

/// The registry entry for VHD.
pub static FORMAT: Format = Format {
    name: "vhd",
    title: "VHD",
    readable: true,
    description: "Virtual PC / Hyper-V / XenServer VHD: fixed, dynamic and differencing disks",
    probe: probe_vhd,
    open: |src, ctx| Ok(Box::new(VhdReader::open(src, ctx)?)),
};

/// BAT entries read (and cached) together.
const BAT_CHUNK: u64 = 4096;
/// Bytes of a sector bitmap read (and cached) together: 32 Ki sectors, 16 MiB of data.
const BITMAP_PIECE: u64 = 4096;

fn probe_vhd(input: &ProbeInput<'_>) -> Confidence {
    let t = input.tail;
    if input.head.starts_with(footer::COOKIE) {
        Confidence::CERTAIN
    } else if t.len() == footer::LEN && (t.starts_with(footer::COOKIE) || t[1..].starts_with(footer::COOKIE)) {
        // A fixed VHD: raw data, then the footer (512 bytes, or 511 from old Virtual PC).
        Confidence::LIKELY
    } else {
        Confidence::NO
    }
}

/// Which copy of the footer was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    End,
    EndShort,
    Start,
}

impl Where {
    fn describe(self) -> &'static str {
        match self {
            Where::End => "end of file",
            Where::EndShort => "end of file (511-byte footer of old Virtual PC)",
            Where::Start => "copy at offset 0 (none at the end of the file)",
        }
    }
}

/// A footer-sized read at `at`: `None` without a cookie; an error for an unknown disk type.
fn footer_at(src: &dyn ByteSource, at: u64, n: usize) -> Result<Option<Footer>> {
    let b = read_vec(src, at, n, "VHD footer")?;
    if !b.starts_with(footer::COOKIE) {
        return Ok(None);
    }
    footer::parse(&b).map(Some).map_err(|e| e.at(at).with_path(src.path()))
}

/// Finds the footer: a good copy at the end, else a good copy at 0, else a bad one (warned).
fn find_footer(src: &dyn ByteSource) -> Result<(Footer, Where, u64)> {
    let len = src.len();
    let (full, short) = (footer::LEN as u64, footer::SHORT_LEN as u64);
    let mut found: Vec<(Footer, Where, u64)> = Vec::new();
    if len >= full {
        if let Some(f) = footer_at(src, len - full, footer::LEN)? {
            found.push((f, Where::End, len - full));
        }
    }
    if found.is_empty() && len >= short {
        if let Some(f) = footer_at(src, len - short, footer::SHORT_LEN)? {
            found.push((f, Where::EndShort, len - short));
        }
    }
    if len >= full {
        // A fixed disk has no copy at 0: bytes there that look like one are guest data.
        if let Some(f) = footer_at(src, 0, footer::LEN)?.filter(|f| f.disk_type != DiskType::Fixed) {
            found.push((f, Where::Start, 0));
        }
    }
    if found.is_empty() {
        return Err(Error::invalid(format!(
            "not a VHD: no footer (cookie \"conectix\") at the end of the file or at offset 0 \
             ({len} bytes)"
        ))
        .with_path(src.path()));
    }
    let pick = found.iter().position(|(f, _, _)| f.checksum_ok).unwrap_or(0);
    Ok(found.swap_remove(pick))
}

/// The block map of a dynamic or differencing disk.
#[derive(Debug)]
struct Blocks {
    src: Arc<dyn ByteSource>,
    block_size: u64,
    bitmap_len: u64,
    table_offset: u64,
    /// BAT entries the virtual size needs (≤ the header's max table entries).
    entries: u64,
    differencing: bool,
    cache: Arc<LayerCache>,
    owner: u64,
}

impl Blocks {
    fn new(src: Arc<dyn ByteSource>, h: &Header, size: u64, differencing: bool, header_at: u64) -> Result<Blocks> {
        let path = src.path().to_path_buf();
        let block_size = h.block_size as u64;
        let entries = size.div_ceil(block_size);
        if entries > h.max_entries as u64 {
            return Err(Error::corrupt(format!(
                "the BAT has {} entries of {block_size}-byte blocks, too few for the virtual size \
                 {size} ({entries} needed)",
                h.max_entries
            ))
            .at(header_at + 28)
            .with_path(&path));
        }
        let end = entries
            .mul_or(4, "BAT size")
            .and_then(|n| h.table_offset.add_or(n, "BAT end"))
            .map_err(|e| e.at(header_at + 16).with_path(&path))?;
        if end > src.len() {
            return Err(Error::corrupt(format!(
                "the BAT ({entries} entries at byte {}) lies past the end of the file ({} bytes)",
                h.table_offset,
                src.len()
            ))
            .at(header_at + 16)
            .with_path(&path));
        }
        let owner = next_owner_id();
        let cache = LayerCache::new(TABLE_CACHE_BYTES);
        Ok(Blocks {
            src,
            block_size,
            bitmap_len: dynamic::bitmap_len(h.block_size),
            table_offset: h.table_offset,
            entries,
            differencing,
            cache,
            owner,
        })
    }

    /// File offset of block `b`'s bitmap, `None` when the block is not in the file.
    fn block_at(&self, b: u64) -> Result<Option<u64>> {
        let chunk = b / BAT_CHUNK;
        let first = self.table_offset + chunk * BAT_CHUNK * 4;
        let table = match self.cache.tables.get((self.owner, first)) {
            Some(t) => t,
            None => {
                let n = (self.entries - chunk * BAT_CHUNK).min(BAT_CHUNK) as usize;
                let raw = read_vec(self.src.as_ref(), first, n * 4, "BAT")?;
                let t: Arc<[u64]> = raw.chunks_exact(4).map(|c| crate::be::u32(c, 0) as u64).collect();
                self.cache.tables.insert((self.owner, first), t.clone(), n * 8);
                t
            }
        };
        let e = table[(b % BAT_CHUNK) as usize];
        if e == UNALLOCATED as u64 {
            return Ok(None);
        }
        let at = e * 512;
        // The bitmap and the whole block must be in the file.
        let end = at + self.bitmap_len + self.block_size;
        if end > self.src.len() {
            return Err(Error::corrupt(format!(
                "BAT entry {b} puts the block at byte {at}, but the block ends at {end}, past the end \
                 of the file ({} bytes)",
                self.src.len()
            ))
            .at(self.table_offset + b * 4)
            .with_path(self.src.path()));
        }
        Ok(Some(at))
    }

    /// Bit `sector` (of the block) of the bitmap at `at`, with how many sectors from there
    /// (up to `max`) share its value.
    fn bitmap_run(&self, at: u64, sector: u64, max: u64) -> Result<(bool, u64)> {
        let mut run = 0u64;
        let mut value = None;
        while run < max {
            let s = sector + run;
            let byte = s / 8;
            let piece = byte / BITMAP_PIECE * BITMAP_PIECE;
            let key = (self.owner, at + piece);
            let bits = match self.cache.blocks.get(key) {
                Some(b) => b,
                None => {
                    let n = (self.bitmap_len - piece).min(BITMAP_PIECE) as usize;
                    let b = Arc::new(read_vec(self.src.as_ref(), at + piece, n, "sector bitmap")?);
                    self.cache.blocks.insert(key, b.clone(), n);
                    b
                }
            };
            let piece_end_sector = ((piece + bits.len() as u64) * 8).min(sector + max);
            let mut s = s;
            while s < piece_end_sector {
                let v = bits[(s / 8 - piece) as usize] & (0x80 >> (s % 8)) != 0;
                match value {
                    None => value = Some(v),
                    Some(w) if w != v => return Ok((w, run)),
                    Some(_) => {}
                }
                run += 1;
                s += 1;
            }
        }
        Ok((value.unwrap_or(false), run))
    }

    fn status(&self, offset: u64, max_len: u64) -> Result<(u64, Allocation)> {
        let b = offset / self.block_size;
        let rel = offset % self.block_size;
        let lim = max_len.min(self.block_size - rel);
        let Some(at) = self.block_at(b)? else {
            // A run of unallocated blocks is one answer (a sparse 2 TB disk has a million).
            let mut len = lim;
            let mut next = b + 1;
            while len < max_len && next < self.entries && matches!(self.block_at(next), Ok(None)) {
                len = len.saturating_add(self.block_size).min(max_len);
                next += 1;
            }
            return Ok((len, Allocation::Unallocated));
        };
        // Sectors of the block from the one holding `offset` to the one holding the last byte.
        let sector = rel / 512;
        let sectors = (rel + lim).div_ceil(512) - sector;
        let (set, run) = self.bitmap_run(at, sector, sectors)?;
        let len = ((sector + run) * 512 - rel).min(lim);
        let alloc = match (set, self.differencing) {
            (true, _) => Allocation::Data,
            (false, true) => Allocation::Unallocated,
            // A dynamic disk's clear bit: never written, zeros (qemu reads the zero-filled area).
            (false, false) => Allocation::Zero { explicit: true },
        };
        Ok((len, alloc))
    }

    fn read(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let mut pos = 0usize;
        while pos < buf.len() {
            let off = offset + pos as u64;
            let b = off / self.block_size;
            let rel = off % self.block_size;
            let n = ((self.block_size - rel) as usize).min(buf.len() - pos);
            let part = &mut buf[pos..pos + n];
            match self.block_at(b)? {
                None => part.fill(0),
                Some(at) => {
                    let file_at = at + self.bitmap_len + rel;
                    self.src.read_exact_at(part, file_at).map_err(|e| {
                        Error::io(format!("reading {n} bytes of block {b}"), e).at(file_at).with_path(self.src.path())
                    })?;
                }
            }
            pos += n;
        }
        Ok(())
    }
}

#[derive(Debug)]
enum Data {
    Fixed(Flat),
    Blocks(Blocks),
}

/// A VHD layer.
#[derive(Debug)]
pub struct VhdReader {
    path: PathBuf,
    size: u64,
    footer: Footer,
    data: Data,
    parent: Option<Box<dyn BlockReader>>,
    expects: Option<LayerId>,
    details: Vec<(String, String)>,
}

fn uuid(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

impl VhdReader {
    /// Opens a VHD from `src` with its parent chain (differencing disks).
    pub fn open(src: Arc<dyn ByteSource>, ctx: &OpenCtx<'_>) -> Result<VhdReader> {
        let path = src.path().to_path_buf();
        let (footer, found, footer_at) = find_footer(src.as_ref())?;
        let size = footer.virtual_size();
        if size == 0 {
            return Err(Error::invalid("the disk is empty (virtual size 0)").at(footer_at).with_path(&path));
        }
        let (c, h, s) = footer.geometry;
        let mut details = vec![
            ("disk type".to_string(), footer.disk_type.name().to_string()),
            (
                "creator".to_string(),
                format!(
                    "{} {}.{} on {}",
                    footer::four_cc(&footer.creator_app),
                    footer.creator_version >> 16,
                    footer.creator_version & 0xffff,
                    footer::four_cc(&footer.creator_os)
                ),
            ),
            ("current size".to_string(), footer.current_size.to_string()),
            ("geometry".to_string(), format!("{c}/{h}/{s}")),
            (
                "size from".to_string(),
                if footer.sized_by_chs() { "geometry (C×H×S)" } else { "current size" }.to_string(),
            ),
            ("unique id".to_string(), uuid(&footer.unique_id)),
            ("timestamp".to_string(), footer::timestamp_text(footer.timestamp)),
            ("footer".to_string(), found.describe().to_string()),
        ];
        if !footer.checksum_ok {
            details.push((
                "warning".into(),
                format!("the footer checksum is wrong (stored {:08x}); no good copy was found", footer.checksum),
            ));
        }
        let (data, parent, expects) = match footer.disk_type {
            DiskType::Fixed => {
                if size > footer_at {
                    return Err(Error::corrupt(format!(
                        "fixed disk of {size} bytes, but the footer is at byte {footer_at}: the file \
                         is truncated"
                    ))
                    .at(footer_at)
                    .with_path(&path));
                }
                (Data::Fixed(Flat::new(src, 0, size)?), None, None)
            }
            DiskType::Dynamic | DiskType::Differencing => {
                let at = footer.data_offset;
                if at.checked_add(dynamic::LEN as u64).is_none_or(|e| e > src.len()) {
                    return Err(Error::corrupt(format!(
                        "the dynamic disk header at byte {at} lies past the end of the file ({} bytes)",
                        src.len()
                    ))
                    .at(footer_at + 16)
                    .with_path(&path));
                }
                let raw = read_vec(src.as_ref(), at, dynamic::LEN, "dynamic disk header")?;
                let h = dynamic::parse(&raw, at).map_err(|e| e.with_path(&path))?;
                details.push(("block size".into(), h.block_size.to_string()));
                if !h.checksum_ok {
                    details.push(("warning".into(), "the dynamic disk header checksum is wrong".into()));
                }
                let diff = footer.disk_type == DiskType::Differencing;
                let blocks = Blocks::new(src.clone(), &h, size, diff, at)?;
                if diff {
                    let want = LayerId::Vhd { unique_id: h.parent_unique_id, timestamp: h.parent_timestamp };
                    details.push(("parent unique id".into(), uuid(&h.parent_unique_id)));
                    details.push(("parent timestamp".into(), footer::timestamp_text(h.parent_timestamp)));
                    details.push(("parent name".into(), h.parent_name.clone()));
                    let p = open_parent(src.as_ref(), &h, ctx, &mut details)?;
                    check_parent(&path, &want, p.as_ref(), ctx, &mut details)?;
                    (Data::Blocks(blocks), Some(p), Some(want))
                } else {
                    (Data::Blocks(blocks), None, None)
                }
            }
        };
        Ok(VhdReader { path, size, footer, data, parent, expects, details })
    }

    /// The footer in use.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }
}

/// The names a differencing disk gives its parent, in the order of `disk-formats.md` §1.4.4:
/// `W2ru`, `MacX`, `W2ku`, the deprecated ANSI `Wi2r`/`Wi2k`, then the header's unicode name.
fn parent_names(src: &dyn ByteSource, h: &Header) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for code in [b"W2ru", b"MacX", b"W2ku", b"Wi2r", b"Wi2k"] {
        for l in h.locators.iter().filter(|l| &l.code == code) {
            let what = format!("parent locator {}", footer::four_cc(code));
            if l.len > dynamic::MAX_LOCATOR_LEN {
                return Err(Error::corrupt(format!(
                    "{what} is {} bytes long (at most {} are read)",
                    l.len,
                    dynamic::MAX_LOCATOR_LEN
                ))
                .at(l.entry_at + 8)
                .with_path(src.path()));
            }
            if l.offset.checked_add(l.len as u64).is_none_or(|e| e > src.len()) {
                return Err(Error::corrupt(format!(
                    "{what}: its {} bytes at byte {} lie past the end of the file ({} bytes)",
                    l.len,
                    l.offset,
                    src.len()
                ))
                .at(l.entry_at + 16)
                .with_path(src.path()));
            }
            let data = read_vec(src, l.offset, l.len as usize, &what)?;
            if let Some(name) = dynamic::locator_path(code, &data) {
                out.push((what, name));
            }
        }
    }
    if !h.parent_name.is_empty() {
        out.push(("parent unicode name".to_string(), h.parent_name.clone()));
    }
    // XenServer LVHD: a parent named `<uuid>.vhd` is the logical volume `VHD-<uuid>` beside
    // the child in the volume group's directory (`/dev/VG_XenStorage-<sr>/`).
    let lvs: Vec<(String, String)> = out
        .iter()
        .filter_map(|(_, name)| xenserver_lv(name))
        .map(|lv| ("XenServer LVHD volume".to_string(), lv))
        .collect();
    for lv in lvs {
        if !out.iter().any(|(_, n)| *n == lv.1) {
            out.push(lv);
        }
    }
    Ok(out)
}

/// `VHD-<uuid>` for a name whose base name is `<uuid>.vhd` (36 characters of a UUID).
fn xenserver_lv(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = base.strip_suffix(".vhd").or_else(|| base.strip_suffix(".VHD"))?;
    let uuid_like = stem.len() == 36
        && stem
            .char_indices()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() });
    uuid_like.then(|| format!("VHD-{stem}"))
}

/// Opens the first parent a name leads to; names whose file does not exist are skipped.
fn open_parent(
    src: &dyn ByteSource,
    h: &Header,
    ctx: &OpenCtx<'_>,
    details: &mut Vec<(String, String)>,
) -> Result<Box<dyn BlockReader>> {
    let path = src.path();
    let names = parent_names(src, h)?;
    for (field, name) in &names {
        details.push((field.clone(), name.clone()));
    }
    let mut missing = Vec::new();
    for (field, name) in &names {
        let link = ParentRef { name, field, format: None, expect: None };
        match parent::open_parent(ctx, path, &link) {
            Ok(p) => {
                details.push(("parent found by".into(), field.clone()));
                return Ok(p);
            }
            Err(e) if e.kind() == ErrorKind::MissingFile => missing.push(format!("{name:?} ({field})")),
            Err(e) => return Err(e),
        }
    }
    Err(Error::new(
        ErrorKind::MissingFile,
        if missing.is_empty() {
            "differencing disk without a parent name (no parent locator and an empty parent unicode name)".to_string()
        } else {
            format!("the parent of this differencing disk was not found; tried {}", missing.join(", "))
        },
    )
    .with_path(path))
}

/// The parent's unique id must match (refused unless `--ignore-parent-mismatch`); a different
/// time stamp is only warned about (tools differ on enforcing it).
fn check_parent(
    path: &Path,
    want: &LayerId,
    parent: &dyn BlockReader,
    ctx: &OpenCtx<'_>,
    details: &mut Vec<(String, String)>,
) -> Result<()> {
    let (LayerId::Vhd { unique_id, timestamp }, Some(LayerId::Vhd { unique_id: u, timestamp: t })) =
        (want, parent.identity())
    else {
        return parent::check_link(path, want, parent, ctx.policy);
    };
    if *unique_id != u {
        return parent::check_link(path, want, parent, ctx.policy);
    }
    if *timestamp != t {
        details.push((
            "warning".into(),
            format!(
                "the parent's time stamp is {t}, this disk expects {timestamp}: the parent may have \
                 changed after this disk was made"
            ),
        ));
    }
    Ok(())
}

impl BlockReader for VhdReader {
    fn format(&self) -> &'static Format {
        &FORMAT
    }

    fn virtual_size(&self) -> u64 {
        self.size
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn block_status(&self, offset: u64, max_len: u64) -> Result<Extent> {
        if offset >= self.size {
            return Err(Error::past_virtual_size(offset, self.size, &self.path));
        }
        let max = max_len.clamp(1, self.size - offset);
        let (len, alloc) = match &self.data {
            Data::Fixed(f) => f.status(offset, max)?,
            Data::Blocks(b) => b.status(offset, max)?,
        };
        Ok(Extent { start: offset, len, alloc })
    }

    fn read_layer(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|e| e > self.size) {
            return Err(Error::read_past_virtual_size(buf.len() as u64, offset, self.size, &self.path));
        }
        match &self.data {
            Data::Fixed(f) => f.read(buf, offset),
            Data::Blocks(b) => b.read(buf, offset),
        }
    }

    fn parent(&self) -> Option<&dyn BlockReader> {
        self.parent.as_deref()
    }

    fn identity(&self) -> Option<LayerId> {
        Some(LayerId::Vhd { unique_id: self.footer.unique_id, timestamp: self.footer.timestamp })
    }

    fn expected_parent(&self) -> Option<LayerId> {
        self.expects
    }

    fn details(&self) -> Vec<(String, String)> {
        self.details.clone()
    }
}

/// Compile-time check that the reader can be shared between threads.
#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<VhdReader>();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(head: &[u8], tail: &[u8]) -> Confidence {
        probe_vhd(&ProbeInput { head, tail, len: 1 << 20, path: Path::new("p.vhd") })
    }

    #[test]
    fn xenserver_lv_names() {
        let u = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
        assert_eq!(xenserver_lv(&format!("{u}.vhd")).unwrap(), format!("VHD-{u}"));
        assert_eq!(xenserver_lv(&format!("./{u}.vhd")).unwrap(), format!("VHD-{u}"));
        assert_eq!(xenserver_lv("base.vhd"), None);
        assert_eq!(xenserver_lv(&format!("{u}.raw")), None);
        assert_eq!(xenserver_lv("3f2504e0x4f89-11d3-9a0c-0305e82c3301.vhd"), None);
    }

    #[test]
    fn probe_cookies() {
        let mut tail = vec![0u8; 512];
        assert_eq!(probe(b"conectix", &tail), Confidence::CERTAIN);
        assert_eq!(probe(b"", &tail), Confidence::NO);
        tail[..8].copy_from_slice(b"conectix");
        assert_eq!(probe(&[0; 512], &tail), Confidence::LIKELY);
        let mut short = vec![0u8; 512];
        short[1..9].copy_from_slice(b"conectix");
        assert_eq!(probe(&[0; 512], &short), Confidence::LIKELY, "511-byte footer");
        assert_eq!(probe(b"", b"conectix"), Confidence::NO, "a file shorter than a footer");
    }
}
