//! VHDX: Hyper-V virtual disks — fixed, dynamic and differencing (AVHDX), 512-byte and 4 KiB
//! logical sectors, with a dirty log replayed in memory.
//!
//! ```text
//!   file ── header.rs: identifier, 2 headers (CRC-32C, sequence), 2 region tables
//!        ── log.rs:    log GUID set → replay the newest valid sequence into an Overlay
//!        ── header.rs: metadata (block size, sizes, parent locator) read through the overlay
//!        ── BAT (read in 4 KiB pages through the overlay, cached):
//!             payload block i → BAT[i + i / chunk_ratio]
//!             sector bitmap of chunk c → BAT[c * (chunk_ratio + 1) + chunk_ratio]
//!   parent_linkage ──► parent layer (relative_path, then the base name of the absolute paths;
//!                      checked against the parent's DataWriteGuid)
//! ```
//!
//! Payload block states: NOT_PRESENT → unallocated (the parent, or zeros); UNDEFINED, ZERO,
//! UNMAPPED (3, and 5 of the v0.95 draft) → zeros that hide the parent; FULLY_PRESENT → data;
//! PARTIALLY_PRESENT (differencing only) → per logical sector, from the sector bitmap (LSB
//! first): 1 here, 0 the parent. The source file is never written. See `docs/formats/vhdx.md`
//! and `disk-formats.md` §1.5.

pub mod crc;
pub mod header;
pub mod log;

#[cfg(any(test, feature = "testutil"))]
pub mod build;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::header::{Guid, Metadata, Regions};
use crate::cache::{next_owner_id, LayerCache, TABLE_CACHE_BYTES};
use crate::error::{CheckedExt, Error, ErrorKind, Result};
use crate::format::{Confidence, ProbeInput};
use crate::parent::{self, LayerId, ParentRef};
use crate::policy::OpenCtx;
use crate::reader::Format;
use crate::reader::{Allocation, BlockReader, Extent};
use crate::source::{read_vec, ByteSource};

/// The registry entry for VHDX.
pub static FORMAT: Format = Format {
    name: "vhdx",
    title: "VHDX",
    readable: true,
    description: "Hyper-V VHDX: fixed, dynamic and differencing (AVHDX) disks, 512 B and 4 KiB \
                  sectors; a dirty log is replayed in memory",
    probe: |input: &ProbeInput<'_>| {
        if input.head.starts_with(header::FILE_MAGIC) {
            Confidence::CERTAIN
        } else {
            Confidence::NO
        }
    },
    open: |src, ctx| Ok(Box::new(VhdxReader::open(src, ctx)?)),
};

/// Payload and sector-bitmap block states (BAT entry bits 0–2).
pub mod state {
    /// Not present: the parent, or zeros.
    pub const NOT_PRESENT: u64 = 0;
    /// Undefined contents (read as zeros).
    pub const UNDEFINED: u64 = 1;
    /// Zeros.
    pub const ZERO: u64 = 2;
    /// Unmapped (trimmed): read as zeros.
    pub const UNMAPPED: u64 = 3;
    /// Unmapped in the v0.95 draft; treated as 3, as qemu does.
    pub const UNMAPPED_V095: u64 = 5;
    /// Data in this file (payload), or a present sector bitmap.
    pub const FULLY_PRESENT: u64 = 6;
    /// Some sectors here, the rest in the parent (differencing disks).
    pub const PARTIALLY_PRESENT: u64 = 7;
}

/// BAT entries read at once (one 4 KiB page).
const BAT_PAGE: u64 = 512;
/// Bits of one sector-bitmap block (1 MiB).
const SB_BITS: u64 = 1 << 23;
/// Most payload blocks one `block_status` call looks at.
const STATUS_BLOCKS: u64 = 4096;

/// A VHDX layer.
#[derive(Debug)]
pub struct VhdxReader {
    path: PathBuf,
    /// The file, or the file with its log replayed over it.
    src: Arc<dyn ByteSource>,
    meta: Metadata,
    block_size: u64,
    chunk_ratio: u64,
    bat: header::Region,
    bat_entries: u64,
    data_write_guid: Guid,
    parent: Option<Box<dyn BlockReader>>,
    expects: Option<LayerId>,
    cache: Arc<LayerCache>,
    owner: u64,
    details: Vec<(String, String)>,
}

/// How a range of payload block reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    /// This layer is silent.
    Parent,
    /// Zeros hiding the parent.
    Zero,
    /// Data at this file offset (of the block's start).
    Data(u64),
    /// Per sector: data at this file offset / parent, by the bitmap at `bitmap` (file offset of
    /// the block's first bitmap byte).
    Partial { data: u64, bitmap: u64 },
}

impl VhdxReader {
    /// Opens a VHDX layer (and its parent chain) from `src`.
    pub fn open(src: Arc<dyn ByteSource>, ctx: &OpenCtx<'_>) -> Result<VhdxReader> {
        let path = src.path().to_path_buf();
        let at = |e: Error, off: u64| e.at(off).with_path(&path);
        let ident = read_vec(src.as_ref(), 0, (64 << 10).min(src.len()) as usize, "file type identifier")?;
        if !ident.starts_with(header::FILE_MAGIC) {
            return Err(at(Error::invalid("not a VHDX file: no \"vhdxfile\" signature"), 0));
        }
        if src.len() < 3 * header::MIB {
            return Err(at(
                Error::invalid(format!(
                    "the file is only {} bytes; a VHDX has a 1 MiB header section, a metadata region and a BAT",
                    src.len()
                )),
                0,
            ));
        }
        let mut details = Vec::new();
        if let Some(c) = header::creator(&ident) {
            details.push(("creator".to_string(), c));
        }
        let read_header =
            |off: u64| read_vec(src.as_ref(), off, header::HEADER_LEN, "header").and_then(|b| header::parse_header(&b));
        let (h, which) =
            header::choose_header(read_header(header::HEADER1_OFFSET), read_header(header::HEADER2_OFFSET))
                .map_err(|e| at(e, header::HEADER1_OFFSET))?;
        details.push(("header".to_string(), format!("{which} (sequence number {})", h.sequence)));

        // The log: replayed into an overlay through which everything else is read.
        let src: Arc<dyn ByteSource> = match log::search(src.as_ref(), &h).map_err(|e| e.with_path(&path))? {
            Some(replay) => {
                if src.len() < replay.flushed_file_offset {
                    return Err(at(
                        Error::corrupt(format!(
                            "the file is {} bytes but its log says it was at least {} bytes when the log \
                             was written: the file is truncated",
                            src.len(),
                            replay.flushed_file_offset
                        )),
                        h.log_offset,
                    ));
                }
                details.push((
                    "log".to_string(),
                    format!(
                        "replayed in memory: {} entr{} (sequence {}..{}); the file was not modified",
                        replay.entries,
                        if replay.entries == 1 { "y" } else { "ies" },
                        replay.sequences.0,
                        replay.sequences.1
                    ),
                ));
                Arc::new(log::Overlay::new(src, replay))
            }
            None => {
                if h.log_guid != header::ZERO_GUID {
                    details.push((
                        "warning".to_string(),
                        "the header names a log, but the log holds no valid sequence: read without \
                         replaying it (as qemu does)"
                            .to_string(),
                    ));
                }
                details.push(("log".to_string(), "none replayed".to_string()));
                src
            }
        };

        let read_regions = |off: u64| {
            read_vec(src.as_ref(), off, header::TABLE_LEN, "region table").and_then(|b| header::parse_regions(&b))
        };
        let regions = match read_regions(header::REGION1_OFFSET) {
            Ok(r) => r,
            Err(e1) if e1.kind() == ErrorKind::Unsupported => return Err(at(e1, header::REGION1_OFFSET)),
            Err(e1) => read_regions(header::REGION2_OFFSET).map_err(|e2| {
                at(
                    Error::new(
                        e2.kind(),
                        format!(
                            "neither region table is valid: table 1 (at {:#x}): {}; table 2 (at {:#x}): {}",
                            header::REGION1_OFFSET,
                            e1.message(),
                            header::REGION2_OFFSET,
                            e2.message()
                        ),
                    ),
                    header::REGION1_OFFSET,
                )
            })?,
        };
        Self::check_regions(&regions, src.len()).map_err(|e| e.with_path(&path))?;

        let m = regions.metadata;
        let table = read_vec(src.as_ref(), m.offset, header::TABLE_LEN, "metadata table")?;
        let items = header::parse_metadata_table(&table, m.length).map_err(|e| at(e, m.offset))?;
        // The known items (at most six of at most 1 MiB each), read one by one and laid out
        // after the table in a compact copy of the region: the region itself may be 4 GiB.
        let mut region = table;
        let mut compact = Vec::with_capacity(items.len());
        for it in &items {
            let bytes = read_vec(src.as_ref(), m.offset + it.offset as u64, it.length as usize, "metadata item")?;
            compact.push(header::ItemRef { offset: region.len() as u32, ..*it });
            region.extend(bytes);
        }
        let meta = header::parse_metadata(&compact, &region).map_err(|e| at(e, m.offset))?;

        let block_size = meta.block_size as u64;
        let chunk_ratio = (SB_BITS * meta.logical_sector as u64) / block_size;
        let payload_blocks = meta.virtual_size.div_ceil(block_size);
        let bat_entries = if meta.has_parent {
            payload_blocks.div_ceil(chunk_ratio).mul_or(chunk_ratio + 1, "BAT entries")?
        } else {
            payload_blocks + (payload_blocks - 1) / chunk_ratio
        };
        if bat_entries.mul_or(8, "BAT size")? > regions.bat.length {
            return Err(at(
                Error::invalid(format!(
                    "the BAT region ({} bytes) is too small for the {bat_entries} entries a {}-byte disk \
                     with {block_size}-byte blocks needs",
                    regions.bat.length, meta.virtual_size
                )),
                regions.bat.offset,
            ));
        }
        details.extend([
            (
                "disk type".to_string(),
                if meta.has_parent {
                    "differencing"
                } else if meta.leave_allocated {
                    "fixed"
                } else {
                    "dynamic"
                }
                .to_string(),
            ),
            ("block size".to_string(), block_size.to_string()),
            ("logical sector size".to_string(), meta.logical_sector.to_string()),
        ]);
        if let Some(p) = meta.physical_sector {
            details.push(("physical sector size".to_string(), p.to_string()));
        }
        details.push(("DataWriteGuid".to_string(), header::guid_string(&h.data_write_guid)));

        let mut r = VhdxReader {
            path: path.clone(),
            src,
            block_size,
            chunk_ratio,
            bat: regions.bat,
            bat_entries,
            data_write_guid: h.data_write_guid,
            parent: None,
            expects: None,
            cache: LayerCache::new(TABLE_CACHE_BYTES),
            owner: next_owner_id(),
            details,
            meta,
        };
        if r.meta.has_parent {
            r.open_parent(ctx)?;
        }
        Ok(r)
    }

    fn check_regions(r: &Regions, file_len: u64) -> Result<()> {
        for (name, reg) in [("BAT", r.bat), ("metadata", r.metadata)] {
            if reg.offset.checked_add(reg.length).is_none_or(|e| e > file_len) {
                return Err(Error::corrupt(format!(
                    "the {name} region ({} bytes at {:#x}) ends past the end of the file ({file_len} bytes)",
                    reg.length, reg.offset
                ))
                .at(reg.offset));
            }
        }
        let (a, b) = (r.bat, r.metadata);
        if a.offset < b.offset + b.length && b.offset < a.offset + a.length {
            return Err(Error::invalid("the BAT and metadata regions overlap").at(a.offset));
        }
        Ok(())
    }

    /// Finds, opens and checks the parent named by the parent locator.
    fn open_parent(&mut self, ctx: &OpenCtx<'_>) -> Result<()> {
        let loc = self.meta.locator.clone().unwrap_or_default();
        let get = |k: &str| loc.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        for (k, v) in &loc {
            self.details.push((format!("parent locator {k}"), v.clone()));
        }
        let linkage = |k: &str| -> Result<Option<Guid>> {
            match get(k) {
                None => Ok(None),
                Some(v) => header::parse_guid(v.as_bytes()).map(Some).ok_or_else(|| {
                    Error::invalid(format!("parent locator: {k} {v:?} is not a GUID")).with_path(&self.path)
                }),
            }
        };
        let l1 = linkage("parent_linkage")?.ok_or_else(|| {
            Error::invalid("a differencing disk whose parent locator has no parent_linkage").with_path(&self.path)
        })?;
        let l2 = linkage("parent_linkage2")?;
        self.expects = Some(LayerId::VhdxDataWriteGuid(l1));
        let names: Vec<(&str, &str)> = ["relative_path", "absolute_win32_path", "volume_path"]
            .iter()
            .filter_map(|k| get(k).filter(|v| !v.is_empty()).map(|v| (*k, v)))
            .collect();
        if names.is_empty() {
            return Err(Error::invalid(
                "a differencing disk whose parent locator names no parent file (no relative_path, \
                 absolute_win32_path or volume_path)",
            )
            .with_path(&self.path));
        }
        let mut last = None;
        for (field, name) in names {
            let pr = ParentRef { name, field, format: Some(&FORMAT), expect: None };
            match parent::open_parent(ctx, &self.path, &pr) {
                Ok(p) => {
                    match p.identity() {
                        Some(LayerId::VhdxDataWriteGuid(g)) if Some(g) == l2 && g != l1 => {
                            self.expects = Some(LayerId::VhdxDataWriteGuid(g));
                        }
                        _ => parent::check_link(&self.path, &LayerId::VhdxDataWriteGuid(l1), p.as_ref(), ctx.policy)?,
                    }
                    self.parent = Some(p);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::MissingFile => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::invalid("no parent").with_path(&self.path)))
    }

    /// BAT entry `i`.
    fn bat_entry(&self, i: u64) -> Result<u64> {
        if i >= self.bat_entries {
            return Err(
                Error::corrupt(format!("BAT entry {i} past the {} entries", self.bat_entries)).with_path(&self.path)
            );
        }
        let page = i / BAT_PAGE;
        let off = self.bat.offset + page * BAT_PAGE * 8;
        let key = (self.owner, off);
        let table = match self.cache.tables.get(key) {
            Some(t) => t,
            None => {
                let n = (BAT_PAGE * 8).min(self.bat.offset + self.bat.length - off);
                let raw = read_vec(self.src.as_ref(), off, n as usize, "BAT")?;
                let t: Arc<[u64]> = crate::le::entries(&raw, 8).into();
                self.cache.tables.insert(key, t.clone(), raw.len());
                t
            }
        };
        Ok(table[(i % BAT_PAGE) as usize])
    }

    /// The file offset of BAT entry `i` (for messages).
    fn bat_entry_offset(&self, i: u64) -> u64 {
        self.bat.offset + i * 8
    }

    /// What payload block `b` is.
    fn block(&self, b: u64) -> Result<Block> {
        let idx = b + b / self.chunk_ratio;
        let e = self.bat_entry(idx)?;
        let st = e & 7;
        let off = e & !0xF_FFFF;
        let bad = |what: String| Error::corrupt(what).at(self.bat_entry_offset(idx)).with_path(&self.path);
        let data_at = |off: u64| -> Result<u64> {
            if off < header::MIB || off.checked_add(self.block_size).is_none_or(|end| end > self.src.len()) {
                return Err(bad(format!(
                    "BAT entry {idx} (payload block {b}) points at {off:#x}, outside the file ({} bytes)",
                    self.src.len()
                )));
            }
            Ok(off)
        };
        match st {
            // Unallocated: the parent's bytes, or zeros (the resolver's rule) without one.
            state::NOT_PRESENT => Ok(Block::Parent),
            state::UNDEFINED | state::ZERO | state::UNMAPPED | state::UNMAPPED_V095 => Ok(Block::Zero),
            state::FULLY_PRESENT => Ok(Block::Data(data_at(off)?)),
            state::PARTIALLY_PRESENT if self.meta.has_parent => {
                let data = data_at(off)?;
                let c = b / self.chunk_ratio;
                let sb_idx = c * (self.chunk_ratio + 1) + self.chunk_ratio;
                let sb = self.bat_entry(sb_idx)?;
                let sb_off = sb & !0xF_FFFF;
                if sb & 7 != state::FULLY_PRESENT
                    || sb_off < header::MIB
                    || sb_off.checked_add(header::MIB).is_none_or(|e| e > self.src.len())
                {
                    return Err(Error::corrupt(format!(
                        "payload block {b} is PARTIALLY_PRESENT but the sector bitmap of its chunk (BAT \
                         entry {sb_idx}: state {}, offset {sb_off:#x}) is not present in the file",
                        sb & 7
                    ))
                    .at(self.bat_entry_offset(sb_idx))
                    .with_path(&self.path));
                }
                let spb = self.block_size / self.meta.logical_sector as u64;
                Ok(Block::Partial { data, bitmap: sb_off + (b % self.chunk_ratio) * spb / 8 })
            }
            state::PARTIALLY_PRESENT => {
                Err(bad(format!("payload block {b} is PARTIALLY_PRESENT in a disk without a parent (state 7)")))
            }
            s => Err(bad(format!("payload block {b} has the reserved state {s}"))),
        }
    }

    /// The sector bitmap bytes of one payload block (cached).
    fn bitmap(&self, at: u64) -> Result<Arc<Vec<u8>>> {
        let key = (self.owner, at);
        if let Some(b) = self.cache.blocks.get(key) {
            return Ok(b);
        }
        let n = (self.block_size / self.meta.logical_sector as u64 / 8) as usize;
        let b = Arc::new(read_vec(self.src.as_ref(), at, n, "sector bitmap")?);
        self.cache.blocks.insert(key, b.clone(), n);
        Ok(b)
    }

    /// The disk's metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }
}

fn bit(bm: &[u8], i: u64) -> bool {
    bm.get((i / 8) as usize).is_some_and(|b| b >> (i % 8) & 1 != 0)
}

impl BlockReader for VhdxReader {
    fn format(&self) -> &'static Format {
        &FORMAT
    }

    fn virtual_size(&self) -> u64 {
        self.meta.virtual_size
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn block_status(&self, offset: u64, max_len: u64) -> Result<Extent> {
        let size = self.meta.virtual_size;
        if offset >= size {
            return Err(Error::past_virtual_size(offset, size, &self.path));
        }
        let limit = offset + max_len.clamp(1, size - offset);
        let bs = self.block_size;
        let first = offset / bs;
        let kind = |blk: Block| match blk {
            Block::Parent => Some(Allocation::Unallocated),
            Block::Zero => Some(Allocation::Zero { explicit: true }),
            Block::Data(_) => Some(Allocation::Data),
            Block::Partial { .. } => None,
        };
        let blk = self.block(first)?;
        if let Block::Partial { bitmap, .. } = blk {
            let lss = self.meta.logical_sector as u64;
            let bm = self.bitmap(bitmap)?;
            let block_end = ((first + 1) * bs).min(limit);
            let s0 = (offset % bs) / lss;
            let v = bit(&bm, s0);
            let mut s = s0 + 1;
            while first * bs + s * lss < block_end && bit(&bm, s) == v {
                s += 1;
            }
            let end = (first * bs + s * lss).min(block_end);
            let alloc = if v { Allocation::Data } else { Allocation::Unallocated };
            return Ok(Extent { start: offset, len: end - offset, alloc });
        }
        let alloc = kind(blk).unwrap_or(Allocation::Data);
        let mut b = first + 1;
        while b * bs < limit && b - first < STATUS_BLOCKS {
            if kind(self.block(b)?) != Some(alloc) {
                break;
            }
            b += 1;
        }
        let end = (b * bs).min(limit);
        Ok(Extent { start: offset, len: end - offset, alloc })
    }

    fn read_layer(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let bs = self.block_size;
        let mut pos = 0usize;
        while pos < buf.len() {
            let off = offset + pos as u64;
            let within = off % bs;
            let n = ((bs - within) as usize).min(buf.len() - pos);
            let part = &mut buf[pos..pos + n];
            match self.block(off / bs)? {
                Block::Data(at) | Block::Partial { data: at, .. } => {
                    let at = at + within;
                    self.src
                        .read_exact_at(part, at)
                        .map_err(|e| Error::io("reading payload", e).at(at).with_path(&self.path))?;
                }
                Block::Zero | Block::Parent => part.fill(0),
            }
            pos += n;
        }
        Ok(())
    }

    fn parent(&self) -> Option<&dyn BlockReader> {
        self.parent.as_deref()
    }

    fn identity(&self) -> Option<LayerId> {
        Some(LayerId::VhdxDataWriteGuid(self.data_write_guid))
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
    is::<VhdxReader>();
}
