//! Guest offset → host offset for qcow2 (v2, v3, extended L2) and qcow v1.
//!
//! ```text
//!   guest offset ─► cluster = off >> cluster_bits
//!                   L1[cluster >> l2_bits] ─► L2 table (bounded cache) ─► entry
//!   entry ─► Unallocated (parent or zeros) │ Zero (hides the parent)
//!          │ Data at a host offset          │ Compressed bytes at a host offset
//!          │ extended L2: 32 subclusters, each allocated / zero / unallocated
//! ```
//!
//! Entry decoding is pure ([`decode_l2`], [`decode_l1`]) and tested alone; [`ClusterMap`]
//! walks the tables over a [`ByteSource`]. Every table and data offset is checked against the
//! file length before it is read, so a truncated image is reported, not read as zeros.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use super::compressed;
use super::header::Compression;
use crate::cache::{self, LayerCache, TABLE_CACHE_BYTES};
use crate::error::{CheckedExt, Error, Result};
use crate::reader::{Allocation, Stored};
use crate::source::{read_vec, ByteSource};

/// L1 entry bits 9–55: the L2 table's offset.
pub const L1E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 entry bits 9–55: the cluster's host offset.
pub const L2E_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 entry bit 62: the cluster is compressed.
pub const L2E_COMPRESSED: u64 = 1 << 62;
/// L1/L2 entry bit 63: refcount is one (only meaningful for writers, and for external data
/// files, where it marks guest cluster 0 at host offset 0 as allocated).
pub const OFLAG_COPIED: u64 = 1 << 63;
/// L2 entry bit 0 (standard entries): the cluster reads as zeros.
pub const L2E_ZERO: u64 = 1;
/// qcow v1 L2 entry bit 63: the cluster is compressed.
pub const V1_COMPRESSED: u64 = 1 << 63;
/// Subclusters per cluster with extended L2 entries.
pub const SUBCLUSTERS: u32 = 32;

/// Which on-disk encoding the tables use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// qcow version 1: byte offsets, bit 63 compressed with a byte length.
    V1,
    /// qcow2 versions 2 and 3.
    V2 {
        /// 128-bit L2 entries with a subcluster bitmap.
        extended: bool,
        /// Guest data lives in an external data file.
        data_file: bool,
        /// How compressed clusters are compressed.
        compression: Compression,
    },
}

/// The shape of the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// log2 of the cluster size.
    pub cluster_bits: u32,
    /// log2 of the number of entries in an L2 table.
    pub l2_bits: u32,
    /// Virtual size in bytes.
    pub size: u64,
    /// Entry encoding.
    pub flavour: Flavour,
}

impl Geometry {
    /// qcow2: an L2 table is one cluster of 8-byte (or 16-byte extended) entries.
    pub fn qcow2(cluster_bits: u32, size: u64, extended: bool, data_file: bool, compression: Compression) -> Geometry {
        let l2_bits = cluster_bits - if extended { 4 } else { 3 };
        Geometry { cluster_bits, l2_bits, size, flavour: Flavour::V2 { extended, data_file, compression } }
    }

    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    fn extended(&self) -> bool {
        matches!(self.flavour, Flavour::V2 { extended: true, .. })
    }

    /// u64 words per L2 entry.
    fn words(&self) -> u64 {
        if self.extended() {
            2
        } else {
            1
        }
    }

    /// Bytes of guest disk one L2 table maps.
    pub fn l2_span(&self) -> u64 {
        1 << (self.cluster_bits + self.l2_bits)
    }

    /// L1 entries needed to map the virtual size.
    pub fn l1_entries_needed(&self) -> u64 {
        self.size.div_ceil(self.l2_span())
    }
}

/// One cluster, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cluster {
    /// Not in this layer: the parent's bytes, or zeros.
    Unallocated,
    /// Reads as zeros, hiding any parent; the host cluster behind it, if it has one
    /// (a preallocated zero cluster).
    Zero(Option<u64>),
    /// Plain data at this host offset (of the data file, when there is one).
    Data(u64),
    /// Compressed data: at most `len` bytes at byte offset `at`.
    Compressed {
        /// Byte offset of the compressed bytes.
        at: u64,
        /// Upper bound of their length.
        len: u64,
    },
    /// Extended L2: per-subcluster state. `host` is the cluster's host offset, if any.
    Sub {
        /// Host offset of the cluster (`None`: not allocated; subclusters are zero or unallocated).
        host: Option<u64>,
        /// Bit i: subcluster i is allocated (data at host + i × subcluster size).
        alloc: u32,
        /// Bit i: subcluster i reads as zeros.
        zero: u32,
    },
}

/// Decodes an L1 entry: the L2 table offset, or `None` when the whole span is unallocated.
pub fn decode_l1(e: u64, geo: &Geometry) -> Result<Option<u64>> {
    match geo.flavour {
        Flavour::V1 => Ok((e != 0).then_some(e)),
        Flavour::V2 { .. } => {
            let off = e & L1E_OFFSET_MASK;
            if off == 0 {
                return Ok(None);
            }
            if !off.is_multiple_of(geo.cluster_size()) {
                return Err(Error::corrupt(format!(
                    "L2 table offset {off:#x} in L1 entry {e:#018x} is not cluster-aligned"
                )));
            }
            Ok(Some(off))
        }
    }
}

/// Decodes an L2 entry (`bitmap`: the second word of an extended entry).
pub fn decode_l2(e: u64, bitmap: u64, geo: &Geometry) -> Result<Cluster> {
    let cb = geo.cluster_bits;
    match geo.flavour {
        Flavour::V1 => {
            if e & V1_COMPRESSED != 0 {
                let shift = 63 - cb;
                let at = e & ((1u64 << shift) - 1);
                let len = (e >> shift) & (geo.cluster_size() - 1);
                return Ok(Cluster::Compressed { at, len });
            }
            Ok(if e == 0 { Cluster::Unallocated } else { Cluster::Data(e) })
        }
        Flavour::V2 { extended, data_file, .. } => {
            if e & L2E_COMPRESSED != 0 {
                if data_file {
                    return Err(Error::corrupt(format!(
                        "L2 entry {e:#018x} is compressed, which images with an external data file cannot be"
                    )));
                }
                let x = 62 - (cb - 8);
                let at = e & ((1u64 << x) - 1);
                let sectors = ((e >> x) & ((1u64 << (cb - 8)) - 1)) + 1;
                let len = sectors * 512 - (at & 511);
                return Ok(Cluster::Compressed { at, len });
            }
            let off = e & L2E_OFFSET_MASK;
            let allocated = off != 0 || (data_file && e & OFLAG_COPIED != 0);
            if allocated && !off.is_multiple_of(geo.cluster_size()) {
                return Err(Error::corrupt(format!(
                    "cluster offset {off:#x} in L2 entry {e:#018x} is not cluster-aligned"
                )));
            }
            if extended {
                if e & L2E_ZERO != 0 {
                    return Err(Error::corrupt(format!("extended L2 entry {e:#018x} has the reserved bit 0 set")));
                }
                let alloc = bitmap as u32;
                let zero = (bitmap >> 32) as u32;
                if alloc & zero != 0 {
                    return Err(Error::corrupt(format!(
                        "subcluster bitmap {bitmap:#018x} marks subclusters both allocated and zero"
                    )));
                }
                if !allocated && alloc != 0 {
                    return Err(Error::corrupt(format!(
                        "subcluster bitmap {bitmap:#018x} marks subclusters allocated in an unallocated cluster"
                    )));
                }
                return Ok(Cluster::Sub { host: allocated.then_some(off), alloc, zero });
            }
            if e & L2E_ZERO != 0 {
                return Ok(Cluster::Zero(allocated.then_some(off)));
            }
            Ok(if allocated { Cluster::Data(off) } else { Cluster::Unallocated })
        }
    }
}

/// What a piece of a cluster is: the allocation and, for plain data and zeros with a host
/// cluster behind them, the host offset of the piece's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    Unallocated,
    Zero(Option<u64>),
    Data(u64),
    Compressed { at: u64, len: u64 },
}

impl Piece {
    fn alloc(self) -> Allocation {
        match self {
            Piece::Unallocated => Allocation::Unallocated,
            Piece::Zero(_) => Allocation::Zero { explicit: true },
            Piece::Data(_) | Piece::Compressed { .. } => Allocation::Data,
        }
    }

    /// Where the piece is stored, for `xva map` (qemu shows offsets of data and of zeros with a
    /// host cluster, and no offset for compressed data).
    fn stored(self) -> Option<Stored> {
        match self {
            Piece::Data(h) | Piece::Zero(Some(h)) => Some(Stored::At(h)),
            Piece::Compressed { .. } => Some(Stored::Compressed),
            Piece::Zero(None) | Piece::Unallocated => None,
        }
    }
}

/// Per-thread decoders and the buffer compressed bytes are read into (reused, not reallocated).
struct Scratch {
    raw: Vec<u8>,
    inflate: Option<flate2::Decompress>,
    zstd: Option<zstd::stream::raw::Decoder<'static>>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch { raw: Vec::new(), inflate: None, zstd: None }) };
}

/// The L1/L2 tables of one image over its files.
pub struct ClusterMap {
    meta: Arc<dyn ByteSource>,
    data: Arc<dyn ByteSource>,
    geo: Geometry,
    /// Raw L1 entries (decoded on use); fewer than needed means the rest is unallocated.
    l1: Vec<u64>,
    /// This map's key in the cache.
    id: u64,
    /// L2 tables, and decoded compressed clusters for reads smaller than a cluster.
    cache: Arc<LayerCache>,
}

impl fmt::Debug for ClusterMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterMap")
            .field("path", &self.meta.path())
            .field("geo", &self.geo)
            .field("l1_len", &self.l1.len())
            .finish()
    }
}

impl ClusterMap {
    /// A map over `meta` (the image) whose data clusters live in `data` (the image itself, or
    /// its external data file), with the L1 entries already read.
    pub fn new(meta: Arc<dyn ByteSource>, data: Arc<dyn ByteSource>, geo: Geometry, l1: Vec<u64>) -> ClusterMap {
        ClusterMap { meta, data, geo, l1, id: cache::next_owner_id(), cache: LayerCache::new(TABLE_CACHE_BYTES) }
    }

    /// Caps the L2 table cache at `bytes`.
    pub fn with_cache_budget(mut self, bytes: usize) -> ClusterMap {
        self.cache = LayerCache::new(bytes);
        self
    }

    /// Bytes of L2 tables cached now.
    pub fn cached_bytes(&self) -> usize {
        self.cache.table_bytes()
    }

    /// The image file.
    pub fn meta_source(&self) -> Arc<dyn ByteSource> {
        self.meta.clone()
    }

    /// The file data clusters are read from.
    pub fn data_source(&self) -> Arc<dyn ByteSource> {
        self.data.clone()
    }

    /// The raw L1 entries.
    pub fn l1(&self) -> &[u64] {
        &self.l1
    }

    /// The table shape.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    fn corrupt(&self, e: Error) -> Error {
        e.with_path(self.meta.path())
    }

    /// The L2 table at file offset `off`.
    fn table(&self, off: u64) -> Result<Arc<[u64]>> {
        if let Some(t) = self.cache.tables.get((self.id, off)) {
            return Ok(t);
        }
        let words = (1u64 << self.geo.l2_bits) * self.geo.words();
        let raw = read_vec(self.meta.as_ref(), off, (words * 8) as usize, "L2 table")?;
        let t: Arc<[u64]> = raw.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes"))).collect();
        self.cache.tables.insert((self.id, off), t.clone(), t.len() * 8);
        Ok(t)
    }

    /// The L2 table offset for cluster `ci`, or `None` when its whole L2 span is unallocated.
    fn l2_for(&self, ci: u64) -> Result<Option<u64>> {
        let l1i = ci >> self.geo.l2_bits;
        match self.l1.get(l1i as usize) {
            None => Ok(None),
            Some(&e) => decode_l1(e, &self.geo).map_err(|e| self.corrupt(e.at(l1i * 8))),
        }
    }

    /// Decodes the entry of cluster `ci` in `table` (the L2 table at file offset `l2off`).
    fn entry(&self, table: &[u64], l2off: u64, ci: u64) -> Result<Cluster> {
        let i = ((ci & ((1 << self.geo.l2_bits) - 1)) * self.geo.words()) as usize;
        let bitmap = if self.geo.extended() { table[i + 1] } else { 0 };
        decode_l2(table[i], bitmap, &self.geo).map_err(|e| self.corrupt(e.at(l2off + i as u64 * 8)))
    }

    /// The decoded cluster with index `ci`, or `Err` naming the entry.
    pub fn cluster(&self, ci: u64) -> Result<Cluster> {
        match self.l2_for(ci)? {
            None => Ok(Cluster::Unallocated),
            Some(l2off) => self.entry(&self.table(l2off)?, l2off, ci),
        }
    }

    /// The piece of cluster `c` (index `ci`) at byte `in_cluster`, and where the piece ends
    /// (relative to the cluster start).
    fn piece(&self, c: Cluster, in_cluster: u64) -> (Piece, u64) {
        let cs = self.geo.cluster_size();
        match c {
            Cluster::Unallocated => (Piece::Unallocated, cs),
            Cluster::Zero(h) => (Piece::Zero(h.map(|h| h + in_cluster)), cs),
            Cluster::Data(h) => (Piece::Data(h + in_cluster), cs),
            Cluster::Compressed { at, len } => (Piece::Compressed { at, len }, cs),
            Cluster::Sub { host, alloc, zero } => {
                let sub = cs / SUBCLUSTERS as u64;
                let si = (in_cluster / sub) as u32;
                let bit = 1u32 << si;
                let state = |b: u32| (alloc & b != 0, zero & b != 0);
                let here = state(bit);
                let mut end = si + 1;
                while end < SUBCLUSTERS && state(1 << end) == here {
                    end += 1;
                }
                let p = match here {
                    (true, _) => Piece::Data(host.unwrap_or(0) + in_cluster),
                    (false, true) => Piece::Zero(host.map(|h| h + in_cluster)),
                    (false, false) => Piece::Unallocated,
                };
                (p, end as u64 * sub)
            }
        }
    }

    /// What the image holds at `off` (< size), for up to `max_len` bytes: the length of the
    /// run of the same kind and its kind. A run also ends where its storage stops being
    /// contiguous in the file, or changes between plain and compressed (so that [`stored`]
    /// holds for the whole run, as qemu splits its map). Each L2 table is looked up once per
    /// call; a missing one is skipped whole.
    ///
    /// [`stored`]: ClusterMap::stored
    pub fn status(&self, off: u64, max_len: u64) -> Result<(u64, Allocation)> {
        let end = off.saturating_add(max_len.max(1)).min(self.geo.size);
        let cb = self.geo.cluster_bits;
        let mut pos = off;
        let mut kind: Option<Allocation> = None;
        // What the next piece must be stored as to continue the run.
        let mut next: Option<Stored> = None;
        'spans: while pos < end {
            let ci = pos >> cb;
            let l1i = ci >> self.geo.l2_bits;
            // Past the L1 table everything is unallocated: one step to the end, however large
            // the virtual size (not one step per L2 span).
            let span_end =
                if l1i >= self.l1.len() as u64 { end } else { (l1i + 1).saturating_mul(self.geo.l2_span()).min(end) };
            let Some(l2off) = self.l2_for(ci)? else {
                if kind.is_some_and(|k| k != Allocation::Unallocated) {
                    break;
                }
                next = None;
                kind = Some(Allocation::Unallocated);
                pos = span_end;
                continue;
            };
            let table = self.table(l2off)?;
            while pos < span_end {
                let ci = pos >> cb;
                let base = ci << cb;
                let (p, piece_end) = self.piece(self.entry(&table, l2off, ci)?, pos - base);
                let a = p.alloc();
                if kind.is_some_and(|k| k != a) || (kind.is_some() && p.stored() != next) {
                    break 'spans;
                }
                kind = Some(a);
                let piece_end = (base + piece_end).min(span_end);
                next = match p.stored() {
                    Some(Stored::At(h)) => Some(Stored::At(h + (piece_end - pos))),
                    other => other,
                };
                pos = piece_end;
            }
        }
        Ok((pos - off, kind.unwrap_or(Allocation::Unallocated)))
    }

    /// Where the bytes at guest offset `off` (< size) are stored: see [`Stored`].
    pub fn stored(&self, off: u64) -> Result<Option<Stored>> {
        let ci = off >> self.geo.cluster_bits;
        let (p, _) = self.piece(self.cluster(ci)?, off - (ci << self.geo.cluster_bits));
        Ok(p.stored())
    }

    /// Reads `buf.len()` bytes at guest offset `off` from a range [`status`](Self::status)
    /// reported as data. Zero pieces read as zeros; unallocated pieces are an error.
    pub fn read(&self, buf: &mut [u8], off: u64) -> Result<()> {
        let cb = self.geo.cluster_bits;
        let mut pos = 0usize;
        // Runs of plain data contiguous in the data file are read with one call.
        let mut run: Option<(usize, u64, usize)> = None;
        while pos < buf.len() {
            let v = off + pos as u64;
            let ci = v >> cb;
            let base = ci << cb;
            let c = self.cluster(ci)?;
            let (p, piece_end) = self.piece(c, v - base);
            let n = ((base + piece_end - v) as usize).min(buf.len() - pos);
            if let Piece::Data(h) = p {
                run = match run {
                    Some((b, f, l)) if f + l as u64 == h => Some((b, f, l + n)),
                    Some((b, f, l)) => {
                        self.pread(&mut buf[b..b + l], f)?;
                        Some((pos, h, n))
                    }
                    None => Some((pos, h, n)),
                };
                pos += n;
                continue;
            }
            let part = &mut buf[pos..pos + n];
            match p {
                Piece::Zero(_) => part.fill(0),
                Piece::Compressed { at, len } => self.read_compressed(part, at, len, (v - base) as usize)?,
                Piece::Unallocated => {
                    return Err(
                        self.corrupt(Error::corrupt(format!("guest offset {v} is unallocated but was read as data")))
                    )
                }
                Piece::Data(_) => unreachable!("handled above"),
            }
            pos += n;
        }
        if let Some((b, f, l)) = run {
            self.pread(&mut buf[b..b + l], f)?;
        }
        Ok(())
    }

    fn pread(&self, buf: &mut [u8], at: u64) -> Result<()> {
        let src = &self.data;
        let end = at.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > src.len()) {
            return Err(Error::corrupt(format!(
                "data cluster ({} bytes) lies past the end of the file ({} bytes): the image is truncated",
                buf.len(),
                src.len()
            ))
            .at(at)
            .with_path(src.path()));
        }
        src.read_exact_at(buf, at).map_err(|e| Error::io("reading cluster data", e).at(at).with_path(src.path()))
    }

    /// Decodes the compressed cluster at `at` (at most `len` bytes) and copies the bytes from
    /// `in_cluster` into `dst`.
    fn read_compressed(&self, dst: &mut [u8], at: u64, len: u64, in_cluster: usize) -> Result<()> {
        let cs = self.geo.cluster_size() as usize;
        if in_cluster == 0 && dst.len() == cs {
            return self.decode_cluster(dst, at, len);
        }
        // A part of a cluster: through the layer's cache of decoded blocks (clusters too large
        // for it are decoded for each read).
        let data = match self.cache.blocks.get((self.id, at)) {
            Some(d) => d,
            None => {
                let mut d = vec![0u8; cs];
                self.decode_cluster(&mut d, at, len)?;
                let d = Arc::new(d);
                self.cache.blocks.insert((self.id, at), d.clone(), cs);
                d
            }
        };
        dst.copy_from_slice(&data[in_cluster..in_cluster + dst.len()]);
        Ok(())
    }

    /// Decodes the compressed cluster at `at` (at most `len` bytes) into `dst` (one cluster).
    fn decode_cluster(&self, dst: &mut [u8], at: u64, len: u64) -> Result<()> {
        let flen = self.meta.len();
        let bad = |e: Error| e.at(at).with_path(self.meta.path());
        if at >= flen {
            return Err(bad(Error::corrupt(format!(
                "compressed cluster lies past the end of the file ({flen} bytes)"
            ))));
        }
        // The stored length is an upper bound that may run past the end of the file.
        let n = len.min(flen - at).min(2 * dst.len() as u64 + 4096) as usize;
        let compression = match self.geo.flavour {
            Flavour::V1 => Compression::Zlib,
            Flavour::V2 { compression, .. } => compression,
        };
        SCRATCH.with(|cell| {
            let mut s = cell.borrow_mut();
            let s = &mut *s;
            s.raw.resize(n, 0);
            self.meta.read_exact_at(&mut s.raw, at).map_err(|e| bad(Error::io("reading a compressed cluster", e)))?;
            match compression {
                Compression::Zlib => {
                    let z = s.inflate.get_or_insert_with(|| flate2::Decompress::new(false));
                    compressed::inflate_raw(&s.raw, dst, z).map_err(bad)
                }
                Compression::Zstd => {
                    if s.zstd.is_none() {
                        s.zstd = Some(
                            zstd::stream::raw::Decoder::new()
                                .map_err(|e| bad(Error::io("cannot create a zstd decoder", e)))?,
                        );
                    }
                    let d = s.zstd.as_mut().expect("just set");
                    compressed::unzstd(&s.raw, dst, d).map_err(bad)
                }
            }
        })
    }
}

/// Reads `count` big-endian u64 entries at `offset` (bounds-checked before allocating).
pub fn read_be_table(src: &dyn ByteSource, offset: u64, count: u64, what: &str) -> Result<Vec<u64>> {
    let bytes = count.mul_or(8, what)?;
    offset.add_or(bytes, what)?;
    let raw = read_vec(src, offset, bytes as usize, what)?;
    Ok(raw.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes"))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn v3(cb: u32) -> Geometry {
        Geometry::qcow2(cb, 1 << 30, false, false, Compression::Zlib)
    }

    #[test]
    fn standard_entries() {
        let g = v3(16);
        assert_eq!(decode_l2(0, 0, &g).unwrap(), Cluster::Unallocated);
        assert_eq!(decode_l2(OFLAG_COPIED, 0, &g).unwrap(), Cluster::Unallocated);
        assert_eq!(decode_l2(0x5_0000 | OFLAG_COPIED, 0, &g).unwrap(), Cluster::Data(0x5_0000));
        assert_eq!(decode_l2(1, 0, &g).unwrap(), Cluster::Zero(None));
        // A preallocated zero cluster is zero, whatever its offset.
        assert_eq!(decode_l2(0x5_0000 | 1, 0, &g).unwrap(), Cluster::Zero(Some(0x5_0000)));
        let e = decode_l2(0x5_0200, 0, &g).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.to_string().contains("not cluster-aligned"), "{e}");
        // External data file: offset 0 with COPIED is guest cluster 0 at host 0.
        let gd = Geometry::qcow2(16, 1 << 30, false, true, Compression::Zlib);
        assert_eq!(decode_l2(OFLAG_COPIED, 0, &gd).unwrap(), Cluster::Data(0));
        assert_eq!(decode_l2(0, 0, &gd).unwrap(), Cluster::Unallocated);
        assert!(decode_l2(L2E_COMPRESSED | 5, 0, &gd).is_err());
    }

    #[test]
    fn l1_entries() {
        let g = v3(16);
        assert_eq!(decode_l1(0, &g).unwrap(), None);
        assert_eq!(decode_l1(OFLAG_COPIED, &g).unwrap(), None);
        assert_eq!(decode_l1(OFLAG_COPIED | 0x3_0000, &g).unwrap(), Some(0x3_0000));
        assert!(decode_l1(0x3_0200, &g).is_err());
        let v1 = Geometry { cluster_bits: 12, l2_bits: 9, size: 1 << 30, flavour: Flavour::V1 };
        assert_eq!(decode_l1(0x1234, &v1).unwrap(), Some(0x1234));
    }

    #[test]
    fn compressed_descriptors() {
        // 64 KiB clusters: x = 62 - 8 = 54 bits of offset, 8 bits of additional sectors.
        let g = v3(16);
        let e = L2E_COMPRESSED | (3u64 << 54) | 0x1_2345;
        assert_eq!(decode_l2(e, 0, &g).unwrap(), Cluster::Compressed { at: 0x1_2345, len: 4 * 512 - 0x145 });
        // 512-byte clusters: x = 61, one bit of sectors.
        let g = v3(9);
        let e = L2E_COMPRESSED | (1u64 << 61) | 0x200;
        assert_eq!(decode_l2(e, 0, &g).unwrap(), Cluster::Compressed { at: 0x200, len: 1024 });
        // 2 MiB clusters: x = 49, 13 bits of sectors.
        let g = v3(21);
        let e = L2E_COMPRESSED | (0x1fffu64 << 49) | 0x10;
        assert_eq!(decode_l2(e, 0, &g).unwrap(), Cluster::Compressed { at: 0x10, len: 0x2000 * 512 - 0x10 });
        // qcow v1: bit 63, length in bytes above the offset bits.
        let v1 = Geometry { cluster_bits: 12, l2_bits: 9, size: 1 << 30, flavour: Flavour::V1 };
        let e = V1_COMPRESSED | (1500u64 << 51) | 0x12_3456;
        assert_eq!(decode_l2(e, 0, &v1).unwrap(), Cluster::Compressed { at: 0x12_3456, len: 1500 });
        assert_eq!(decode_l2(0x8000, 0, &v1).unwrap(), Cluster::Data(0x8000));
    }

    #[test]
    fn extended_entries() {
        let g = Geometry::qcow2(16, 1 << 30, true, false, Compression::Zlib);
        assert_eq!(g.l2_bits, 12);
        let c = decode_l2(0x7_0000, 0x0000_0003_0000_0010, &g).unwrap();
        assert_eq!(c, Cluster::Sub { host: Some(0x7_0000), alloc: 0x10, zero: 3 });
        let c = decode_l2(0, 0xffff_ffff_0000_0000, &g).unwrap();
        assert_eq!(c, Cluster::Sub { host: None, alloc: 0, zero: u32::MAX });
        assert!(decode_l2(0, 1, &g).is_err(), "allocated subcluster in an unallocated cluster");
        assert!(decode_l2(0x7_0000, 0x1_0000_0001, &g).is_err(), "allocated and zero");
        assert!(decode_l2(0x7_0001, 0, &g).is_err(), "bit 0 is reserved");
        assert!(matches!(decode_l2(L2E_COMPRESSED | 0x7_0000, 0, &g).unwrap(), Cluster::Compressed { .. }));
    }
}
