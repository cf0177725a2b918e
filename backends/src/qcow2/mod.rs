//! qcow2 (versions 2 and 3) and qcow (version 1, including Xen blktap's variant): QEMU's
//! copy-on-write images.
//!
//! ```text
//!   header.rs ── v2/v3 header, extensions (backing format, feature names, data file), refusals
//!   qcow1.rs  ── v1 header, blktap's "XEN\xfb" extension (little-endian L1, L1 checksum)
//!   mapping.rs ─ L1 → L2 (bounded cache) → cluster: unallocated │ zero │ data │ compressed
//!                                                   │ extended L2: 32 subclusters each
//!   compressed.rs ─ raw deflate and multi-frame zstd, one cluster at a time
//!   backing file ──► parent layer (any format; opened through the open policy)
//!   external data file ──► where data clusters live (opened through the open policy)
//! ```
//!
//! This layer reports its own clusters only (`block_status`); unallocated clusters fall
//! through to the backing file in the generic resolver (`crate::chain`). The active L1 table is
//! what is read; internal snapshots are listed in `details`. See `docs/formats/qcow2.md` and
//! `disk-formats.md` §1.3.

pub mod compressed;
pub mod header;
pub mod mapping;
pub mod qcow1;

#[cfg(any(test, feature = "testutil"))]
pub mod build;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::header::{Compression, Header, AUTOCLEAR_DATA_FILE_RAW, MAGIC};
use self::mapping::{read_be_table, ClusterMap, Flavour, Geometry};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{Confidence, ProbeInput};
use crate::parent::{self, ParentRef};
use crate::policy::OpenCtx;
use crate::probe;
use crate::reader::{BlockReader, Extent, Format, Stored};
use crate::source::{read_vec, ByteSource};

/// The registry entry for qcow2 and qcow.
pub static FORMAT: Format = Format {
    name: "qcow2",
    title: "qcow2/qcow",
    readable: true,
    description: "QEMU qcow2 (v2, v3: backing files, zlib/zstd compression, extended L2, external \
                  data file) and qcow v1, including Xen blktap's",
    probe: probe_qcow,
    open: |src, ctx| Ok(Box::new(Qcow2Reader::open(src, ctx)?)),
};

fn probe_qcow(input: &ProbeInput<'_>) -> Confidence {
    if input.head.starts_with(MAGIC) {
        Confidence::CERTAIN
    } else {
        Confidence::NO
    }
}

/// Longest snapshot table we list (qemu's limit is 65536 snapshots).
const MAX_SNAPSHOTS_LISTED: u32 = 1000;

/// A qcow2 or qcow layer: its cluster map, header facts and backing file.
#[derive(Debug)]
pub struct Qcow2Reader {
    path: PathBuf,
    size: u64,
    map: ClusterMap,
    parent: Option<Box<dyn BlockReader>>,
    details: Vec<(String, String)>,
}

fn detail(out: &mut Vec<(String, String)>, k: &str, v: impl ToString) {
    out.push((k.to_string(), v.to_string()));
}

impl Qcow2Reader {
    /// Opens a qcow2 or qcow image from `src` with its backing chain and data file.
    pub fn open(src: Arc<dyn ByteSource>, ctx: &OpenCtx<'_>) -> Result<Qcow2Reader> {
        let path = src.path().to_path_buf();
        let len = src.len();
        let head = read_vec(src.as_ref(), 0, len.min(4096) as usize, "qcow header")?;
        if head.len() < 8 || !head.starts_with(MAGIC) {
            return Err(Error::invalid("not a qcow image: no QFI\\xfb magic").at(0).with_path(&path));
        }
        let version = header::be32(&head, 4);
        if version == 1 {
            return Self::open_v1(src, &head, ctx);
        }
        // The header and its extensions lie in the first cluster.
        let cluster_bits = if head.len() >= 24 { header::be32(&head, 20) } else { 0 };
        let first = if (header::MIN_CLUSTER_BITS..=header::MAX_CLUSTER_BITS).contains(&cluster_bits) {
            read_vec(src.as_ref(), 0, len.min(1 << cluster_bits) as usize, "qcow2 header cluster")?
        } else {
            head
        };
        let h = header::parse(&first, len).map_err(|e| e.with_path(&path))?;
        if let Some(e) = h.refusal(ctx.policy.allow_corrupt) {
            return Err(e.with_path(&path));
        }
        let mut details = header_details(&h);
        let data: Arc<dyn ByteSource> = if h.has_data_file() {
            let name = h.data_file.as_deref().ok_or_else(|| {
                Error::invalid(
                    "the image keeps its data in an external data file but does not name it \
                     (qemu needs `-o data_file=...` for such images; xva cannot open them)",
                )
                .with_path(&path)
            })?;
            probe::open_data_file(ctx.policy, &path, name, "external data file")?
        } else {
            src.clone()
        };
        let geo = Geometry::qcow2(h.cluster_bits, h.size, h.extended_l2(), h.has_data_file(), h.compression);
        let entries = (h.l1_size as u64).min(geo.l1_entries_needed());
        let l1 = read_be_table(src.as_ref(), h.l1_table_offset, entries, "L1 table").map_err(|e| e.with_path(&path))?;
        if (h.l1_size as u64) < geo.l1_entries_needed() {
            detail(
                &mut details,
                "warning",
                format!(
                    "the L1 table has {} entries but the disk needs {}: the rest reads as unallocated",
                    h.l1_size,
                    geo.l1_entries_needed()
                ),
            );
        }
        details.extend(snapshot_details(src.as_ref(), &h));
        let map = ClusterMap::new(src.clone(), data, geo, l1);
        let parent = match &h.backing_file {
            None => None,
            Some(name) => Some(open_backing(ctx, &path, name, h.backing_format.as_deref())?),
        };
        Ok(Qcow2Reader { path, size: h.size, map, parent, details })
    }

    fn open_v1(src: Arc<dyn ByteSource>, head: &[u8], ctx: &OpenCtx<'_>) -> Result<Qcow2Reader> {
        let path = src.path().to_path_buf();
        let h = qcow1::parse(head, src.len()).map_err(|e| e.with_path(&path))?;
        if let Some(e) = h.refusal() {
            return Err(e.with_path(&path));
        }
        let raw = read_vec(src.as_ref(), h.l1_table_offset, (h.l1_entries() * 8) as usize, "L1 table")?;
        let l1 = qcow1::decode_l1(&raw, &h);
        let mut details = vec![
            ("version".to_string(), "1 (qcow)".to_string()),
            ("cluster_size".to_string(), (1u64 << h.cluster_bits).to_string()),
            ("l2_entries".to_string(), (1u64 << h.l2_bits).to_string()),
        ];
        if let Some(x) = h.blktap {
            let ok = qcow1::l1_checksum(&l1) == x.cksum;
            detail(
                &mut details,
                "blktap",
                format!(
                    "Xen blktap extension: L1 table {}, flags {:#x}, L1 checksum {}",
                    if x.l1_big_endian() {
                        "big-endian"
                    } else {
                        "little-endian (old tapdisk image, read as such; qemu-img misreads these)"
                    },
                    x.flags,
                    if ok { "ok" } else { "MISMATCH" }
                ),
            );
            if !ok {
                detail(
                    &mut details,
                    "warning",
                    "the blktap L1 checksum does not match the L1 table: tapdisk did not close the \
                     image cleanly (it updates the checksum on close); the table is read as it is",
                );
            }
        }
        let backing = if h.backing_file_offset != 0 && h.backing_file_size > 0 {
            let b = read_vec(src.as_ref(), h.backing_file_offset, h.backing_file_size as usize, "backing file name")?;
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            Some(String::from_utf8_lossy(&b[..end]).into_owned())
        } else {
            None
        };
        if let Some(b) = &backing {
            detail(&mut details, "backing_file", b);
        }
        let geo = Geometry { cluster_bits: h.cluster_bits, l2_bits: h.l2_bits, size: h.size, flavour: Flavour::V1 };
        let map = ClusterMap::new(src.clone(), src, geo, l1);
        let parent = match &backing {
            None => None,
            Some(name) => Some(open_backing(ctx, &path, name, None)?),
        };
        Ok(Qcow2Reader { path, size: h.size, map, parent, details })
    }

    /// The cluster map (for tests and tools).
    pub fn map(&self) -> &ClusterMap {
        &self.map
    }
}

fn header_details(h: &Header) -> Vec<(String, String)> {
    let mut d = Vec::new();
    detail(&mut d, "version", if h.version == 2 { "2 (compat=0.10)" } else { "3 (compat=1.1)" });
    detail(&mut d, "cluster_size", h.cluster_size());
    if h.compression != Compression::Zlib {
        detail(&mut d, "compression_type", "zstd");
    }
    if h.extended_l2() {
        detail(&mut d, "extended_l2", "on (32 subclusters per cluster)");
    }
    if let Some(b) = &h.backing_file {
        detail(&mut d, "backing_file", b);
        detail(&mut d, "backing_format", h.backing_format.as_deref().unwrap_or("(not recorded: probed)"));
    }
    if let Some(f) = &h.data_file {
        detail(&mut d, "data_file", f);
        detail(&mut d, "data_file_raw", h.autoclear & AUTOCLEAR_DATA_FILE_RAW != 0);
    }
    if h.dirty() {
        detail(
            &mut d,
            "warning",
            "dirty bit set (the image was not closed cleanly): only reference counts may be stale, \
             the data mapping is valid and is read as it is",
        );
    }
    if h.corrupt() {
        detail(&mut d, "warning", "corrupt bit set: metadata may be inconsistent; read because of --allow-corrupt");
    }
    if h.has_bitmaps_ext {
        detail(&mut d, "bitmaps", "persistent dirty bitmaps present (not needed for reading)");
    }
    d
}

/// Lists internal snapshots (id, name, size of the saved VM state); the active layer is read.
fn snapshot_details(src: &dyn ByteSource, h: &Header) -> Vec<(String, String)> {
    let mut d = Vec::new();
    if h.nb_snapshots == 0 {
        return d;
    }
    detail(&mut d, "snapshots", format!("{} internal (the active state is read)", h.nb_snapshots));
    let mut at = h.snapshots_offset;
    for i in 0..h.nb_snapshots.min(MAX_SNAPSHOTS_LISTED) {
        // Fixed part: 40 bytes; id and name follow the extra data.
        let Ok(fixed) = read_vec(src, at, 40, "snapshot table entry") else { break };
        let id_len = u16::from_be_bytes([fixed[12], fixed[13]]) as u64;
        let name_len = u16::from_be_bytes([fixed[14], fixed[15]]) as u64;
        let date = header::be32(&fixed, 16);
        let extra = header::be32(&fixed, 36) as u64;
        let Some(text_at) = at.checked_add(40 + extra) else { break };
        let Ok(text) = read_vec(src, text_at, (id_len + name_len) as usize, "snapshot name") else { break };
        let id = String::from_utf8_lossy(&text[..id_len as usize]).into_owned();
        let name = String::from_utf8_lossy(&text[id_len as usize..]).into_owned();
        detail(&mut d, &format!("snapshot{}", i + 1), format!("id {id:?}, name {name:?}, taken at {date} (Unix time)"));
        at = (text_at + id_len + name_len).div_ceil(8) * 8;
    }
    d
}

/// qemu's driver names for the formats we know under another name.
fn format_by_qemu_name(name: &str) -> Option<&'static Format> {
    let ours = match name {
        "qcow" => "qcow2",
        "vpc" => "vhd",
        "file" | "host_device" => "raw",
        other => other,
    };
    probe::by_name(ours)
}

/// Opens the backing file `name` of `child`: relative to the child's directory, through the
/// open policy, in the format the header names (no probing then).
fn open_backing(ctx: &OpenCtx<'_>, child: &Path, name: &str, format: Option<&str>) -> Result<Box<dyn BlockReader>> {
    if name.starts_with("json:") {
        return Err(Error::unsupported(format!(
            "backing file {name:?} is a qemu JSON pseudo-filename (driver options, not a file); \
             xva only follows backing files that are plain file names"
        ))
        .with_path(child));
    }
    let fmt = match format {
        None => None,
        Some(f) => Some(format_by_qemu_name(f).ok_or_else(|| {
            Error::unsupported(format!(
                "backing file {name:?} is in format {f:?}, which xva does not read (known: {})",
                probe::names().join(", ")
            ))
            .with_path(child)
        })?),
    };
    let r = ParentRef { name, field: "backing file", format: fmt, expect: None };
    parent::open_parent(ctx, child, &r).map_err(|e| {
        if e.kind() == ErrorKind::MissingFile {
            Error::new(ErrorKind::MissingFile, format!("{} (the backing file of this image)", e.message()))
                .with_path(child)
        } else {
            e
        }
    })
}

impl BlockReader for Qcow2Reader {
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
        let (len, alloc) = self.map.status(offset, max_len.min(self.size - offset))?;
        Ok(Extent { start: offset, len, alloc })
    }

    fn read_layer(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.map.read(buf, offset)
    }

    fn stored(&self, offset: u64) -> Result<Option<Stored>> {
        self.map.stored(offset)
    }

    fn parent(&self) -> Option<&dyn BlockReader> {
        self.parent.as_deref()
    }

    fn details(&self) -> Vec<(String, String)> {
        self.details.clone()
    }
}

/// Compile-time check that the reader can be shared between threads.
#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Qcow2Reader>();
}

#[cfg(test)]
mod tests;
