//! The two-level grain map shared by every sparse VMDK extent (KDMV, COWD, seSparse).
//!
//! ```text
//!   extent offset ─► grain = off / grain_size ─► GD[grain / gt_len] ─► GT[grain % gt_len] ─► GTE
//!                                                 (read at open)      (bounded LRU cache)
//!   GTE ─► Unallocated (parent) │ Zero (hides the parent) │ Data at a file offset
//!                                                          │ Compressed record at a file offset
//! ```
//!
//! The formats differ only in how entries are encoded; [`Encoding`] says which. Every table
//! offset is checked against the file length before it is read, and the cache
//! ([`crate::cache`]) is capped in bytes, so memory stays bounded whatever the disk size.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use crate::cache::{LayerCache, TABLE_CACHE_BYTES};
use crate::error::{CheckedExt, Error, Result};
use crate::reader::Allocation;
use crate::source::ByteSource;

/// Largest compressed grain we inflate (bounds the decode buffer).
pub const MAX_COMPRESSED_GRAIN: u64 = 16 << 20;

/// How grain-directory and grain-table entries are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Hosted sparse (KDMV): u32 sector numbers; GTE 1 is a zeroed grain when `zeroed_grain`.
    Kdmv {
        /// Header flag bit 2: GTE 1 means "reads as zeros".
        zeroed_grain: bool,
    },
    /// ESX redo log (COWD): u32 sector numbers.
    Cowd,
    /// seSparse: u64 entries with a type nibble; offsets relative to the grain area.
    SeSparse {
        /// `grains_offset` in sectors.
        grains_offset: u64,
    },
}

/// How allocated grains are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Plain bytes at the grain's offset.
    Plain,
    /// zlib-compressed grains (streamOptimized); `markers`: each starts with a 12-byte
    /// grain marker (LBA u64, size u32).
    Deflate {
        /// Grain markers present (header flag bit 17).
        markers: bool,
    },
}

thread_local! {
    /// Per-thread read buffer and inflater for compressed grains (reused, not reallocated).
    static SCRATCH: RefCell<(Vec<u8>, Option<flate2::Decompress>)> = const { RefCell::new((Vec::new(), None)) };
}

/// One grain-directory slot, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gde {
    /// No grain table: the whole span is unallocated.
    None,
    /// The whole span reads as zeros (KDMV GDE 1 with the zeroed-grain flag).
    Zero,
    /// Grain table at this byte offset of the file.
    At(u64),
}

/// One grain, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grain {
    Unallocated,
    Zero,
    /// File byte offset of the grain (or of its compressed record).
    At(u64),
}

/// A sparse extent's grain map over one file.
pub struct GrainMap {
    src: Arc<dyn ByteSource>,
    /// Bytes of the virtual disk this extent's header covers.
    capacity: u64,
    /// Grain size in bytes.
    grain: u64,
    /// Entries per grain table.
    gt_len: u64,
    gd: Vec<Gde>,
    enc: Encoding,
    storage: Storage,
    id: u64,
    cache: Arc<LayerCache>,
}

impl fmt::Debug for GrainMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrainMap")
            .field("path", &self.src.path())
            .field("capacity", &self.capacity)
            .field("grain", &self.grain)
            .field("gt_len", &self.gt_len)
            .field("gd_len", &self.gd.len())
            .field("enc", &self.enc)
            .field("storage", &self.storage)
            .finish()
    }
}

/// Number of grain-directory entries needed to cover `capacity` bytes.
pub fn gd_entries_needed(capacity: u64, grain: u64, gt_len: u64) -> Result<u64> {
    let span = grain.mul_or(gt_len, "grain table coverage")?;
    if span == 0 {
        return Err(Error::invalid("grain size or grain table size is zero"));
    }
    Ok(capacity.div_ceil(span))
}

/// Reads `count` little-endian entries of `width` bytes at `offset`, bounds-checked first.
pub fn read_entries(src: &dyn ByteSource, offset: u64, count: u64, width: u64, what: &str) -> Result<Vec<u64>> {
    let bytes = count.mul_or(width, what)?;
    let end = offset.add_or(bytes, what)?;
    if end > src.len() {
        return Err(Error::corrupt(format!(
            "{what} ({count} entries, {bytes} bytes) lies past the end of the file ({} bytes)",
            src.len()
        ))
        .at(offset)
        .with_path(src.path()));
    }
    let raw = crate::source::read_vec(src, offset, bytes as usize, what)?;
    Ok(crate::le::entries(&raw, width as usize))
}

impl GrainMap {
    /// A grain map; `gd` must hold at least enough entries for `capacity`.
    pub fn new(
        src: Arc<dyn ByteSource>,
        capacity: u64,
        grain: u64,
        gt_len: u64,
        gd: Vec<Gde>,
        enc: Encoding,
        storage: Storage,
    ) -> Result<GrainMap> {
        let need = gd_entries_needed(capacity, grain, gt_len)?;
        if (gd.len() as u64) < need {
            return Err(Error::corrupt(format!(
                "grain directory has {} entries but the capacity needs {need}",
                gd.len()
            ))
            .with_path(src.path()));
        }
        if matches!(storage, Storage::Deflate { .. }) && grain > MAX_COMPRESSED_GRAIN {
            return Err(Error::unsupported(format!(
                "compressed grains of {grain} bytes (at most {MAX_COMPRESSED_GRAIN} supported)"
            ))
            .with_path(src.path()));
        }
        if capacity > 1 << 62 {
            return Err(
                Error::invalid(format!("capacity of {capacity} bytes is beyond any real disk")).with_path(src.path())
            );
        }
        Ok(GrainMap {
            src,
            capacity,
            grain,
            gt_len,
            gd,
            enc,
            storage,
            id: crate::cache::next_owner_id(),
            cache: LayerCache::new(TABLE_CACHE_BYTES),
        })
    }

    /// Makes this map use `cache` (shared with the other extents of its layer).
    pub fn share_cache(&mut self, cache: Arc<LayerCache>) {
        self.cache = cache;
    }

    /// Bytes of the virtual disk this map covers.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Grain size in bytes.
    pub fn grain_size(&self) -> u64 {
        self.grain
    }

    /// True when grains are compressed.
    pub fn compressed(&self) -> bool {
        matches!(self.storage, Storage::Deflate { .. })
    }

    fn entry_width(&self) -> u64 {
        match self.enc {
            Encoding::SeSparse { .. } => 8,
            _ => 4,
        }
    }

    /// The grain table at `offset`, from the cache or the file.
    fn table(&self, offset: u64) -> Result<Arc<[u64]>> {
        if let Some(t) = self.cache.tables.get((self.id, offset)) {
            return Ok(t);
        }
        let t: Arc<[u64]> =
            read_entries(self.src.as_ref(), offset, self.gt_len, self.entry_width(), "grain table")?.into();
        self.cache.tables.insert((self.id, offset), t.clone(), t.len() * 8);
        Ok(t)
    }

    fn decode_gte(&self, e: u64, grain_index: u64) -> Result<Grain> {
        match self.enc {
            Encoding::Kdmv { zeroed_grain } => Ok(match e {
                0 => Grain::Unallocated,
                1 if zeroed_grain => Grain::Zero,
                s => Grain::At(s.mul_or(512, "grain offset")?),
            }),
            Encoding::Cowd => Ok(match e {
                0 => Grain::Unallocated,
                s => Grain::At(s.mul_or(512, "grain offset")?),
            }),
            Encoding::SeSparse { grains_offset } => match e >> 60 {
                0 if e == 0 => Ok(Grain::Unallocated),
                1 | 2 => Ok(Grain::Zero),
                3 => {
                    let cluster = ((e & 0x0fff_0000_0000_0000) >> 48) | ((e & 0x0000_ffff_ffff_ffff) << 12);
                    let sector = cluster
                        .mul_or(self.grain / 512, "seSparse grain offset")?
                        .add_or(grains_offset, "seSparse grain offset")?;
                    Ok(Grain::At(sector.mul_or(512, "seSparse grain offset")?))
                }
                _ => Err(Error::corrupt(format!(
                    "seSparse grain table entry {e:#018x} for grain {grain_index} has an unknown type"
                ))
                .with_path(self.src.path())),
            },
        }
    }

    /// The state of grain `g`.
    fn grain_at(&self, g: u64) -> Result<Grain> {
        let gdi = g / self.gt_len;
        let gde = *self.gd.get(gdi as usize).ok_or_else(|| {
            Error::corrupt(format!("grain {g} lies past the grain directory")).with_path(self.src.path())
        })?;
        match gde {
            Gde::None => Ok(Grain::Unallocated),
            Gde::Zero => Ok(Grain::Zero),
            Gde::At(off) => {
                let t = self.table(off)?;
                self.decode_gte(t[(g % self.gt_len) as usize], g)
            }
        }
    }

    /// What the extent holds at `off` (< capacity), up to `max_len` bytes.
    pub fn status(&self, off: u64, max_len: u64) -> Result<(u64, Allocation)> {
        let end = off.saturating_add(max_len).min(self.capacity);
        debug_assert!(off < end);
        let class = |g: Grain| match g {
            Grain::Unallocated => Allocation::Unallocated,
            Grain::Zero => Allocation::Zero { explicit: true },
            Grain::At(_) => Allocation::Data,
        };
        let grain_end = |g: u64| g.saturating_mul(self.grain).min(end);
        let mut g = off / self.grain;
        let mut pos = off;
        let mut first: Option<Allocation> = None;
        // One grain table at a time: a missing or zero table is skipped whole, a present one
        // is scanned without going back to the cache for every grain.
        'tables: while pos < end {
            let gdi = g / self.gt_len;
            let span_end = (gdi + 1).saturating_mul(self.gt_len);
            let gde = *self.gd.get(gdi as usize).ok_or_else(|| {
                Error::corrupt(format!("grain {g} lies past the grain directory")).with_path(self.src.path())
            })?;
            let table = match gde {
                Gde::None | Gde::Zero => {
                    let a =
                        if gde == Gde::None { Allocation::Unallocated } else { Allocation::Zero { explicit: true } };
                    if first.is_some_and(|f| f != a) {
                        break;
                    }
                    first = Some(a);
                    g = span_end;
                    pos = grain_end(g);
                    continue;
                }
                Gde::At(t) => self.table(t)?,
            };
            while g < span_end && pos < end {
                let a = class(self.decode_gte(table[(g % self.gt_len) as usize], g)?);
                if first.is_some_and(|f| f != a) {
                    break 'tables;
                }
                first = Some(a);
                g += 1;
                pos = grain_end(g);
            }
        }
        Ok((pos - off, first.unwrap_or(Allocation::Unallocated)))
    }

    /// Reads `buf.len()` bytes at `off` of a range [`status`](Self::status) reported as data.
    pub fn read(&self, buf: &mut [u8], off: u64) -> Result<()> {
        match self.storage {
            Storage::Plain => self.read_plain(buf, off),
            Storage::Deflate { markers } => self.read_compressed(buf, off, markers),
        }
    }

    fn data_offset(&self, g: u64) -> Result<u64> {
        match self.grain_at(g)? {
            Grain::At(o) => Ok(o),
            other => Err(Error::corrupt(format!("grain {g} changed state while being read ({other:?})"))
                .with_path(self.src.path())),
        }
    }

    fn read_plain(&self, buf: &mut [u8], off: u64) -> Result<()> {
        let mut pos = 0usize;
        // Runs of grains that are contiguous in the file are read with one call.
        let mut run: Option<(usize, u64, usize)> = None; // (buf start, file offset, len)
        while pos < buf.len() {
            let v = off + pos as u64;
            let g = v / self.grain;
            let in_grain = v % self.grain;
            let n = ((self.grain - in_grain) as usize).min(buf.len() - pos);
            let file_off = self.data_offset(g)?.add_or(in_grain, "grain offset")?;
            run = match run {
                Some((b, f, l)) if f + l as u64 == file_off => Some((b, f, l + n)),
                Some(r) => {
                    self.pread(&mut buf[r.0..r.0 + r.2], r.1)?;
                    Some((pos, file_off, n))
                }
                None => Some((pos, file_off, n)),
            };
            pos += n;
        }
        if let Some((b, f, l)) = run {
            self.pread(&mut buf[b..b + l], f)?;
        }
        Ok(())
    }

    fn pread(&self, buf: &mut [u8], file_off: u64) -> Result<()> {
        let end = file_off.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.src.len()) {
            return Err(Error::corrupt(format!(
                "grain data ({} bytes) lies past the end of the file ({} bytes)",
                buf.len(),
                self.src.len()
            ))
            .at(file_off)
            .with_path(self.src.path()));
        }
        self.src
            .read_exact_at(buf, file_off)
            .map_err(|e| Error::io("reading grain data", e).at(file_off).with_path(self.src.path()))
    }

    /// Bytes of grain `g` that lie inside the capacity.
    fn grain_len(&self, g: u64) -> usize {
        (self.capacity - g * self.grain).min(self.grain) as usize
    }

    fn read_compressed(&self, buf: &mut [u8], off: u64, markers: bool) -> Result<()> {
        // One grain at a time; full grains decode straight into `buf`. Concurrency comes from
        // callers reading different ranges at once, never from threads inside a read.
        let mut rest = buf;
        let mut v = off;
        while !rest.is_empty() {
            let g = v / self.grain;
            let in_grain = (v % self.grain) as usize;
            let n = (self.grain as usize - in_grain).min(rest.len());
            let (head, tail) = rest.split_at_mut(n);
            let at = self.data_offset(g)?;
            self.decode_into(head, g, in_grain, at, markers)?;
            rest = tail;
            v += n as u64;
        }
        Ok(())
    }

    fn decode_into(&self, dst: &mut [u8], g: u64, in_grain: usize, at: u64, markers: bool) -> Result<()> {
        let glen = self.grain_len(g);
        if in_grain == 0 && dst.len() == glen {
            return self.inflate(dst, g, at, markers);
        }
        let data = match self.cache.blocks.get((self.id, at)) {
            Some(d) => d,
            None => {
                let mut d = vec![0u8; glen];
                self.inflate(&mut d, g, at, markers)?;
                let d = Arc::new(d);
                self.cache.blocks.insert((self.id, at), d.clone(), d.len());
                d
            }
        };
        let end = in_grain + dst.len();
        if end > data.len() {
            return Err(Error::corrupt(format!("read past the end of grain {g}")).with_path(self.src.path()));
        }
        dst.copy_from_slice(&data[in_grain..end]);
        Ok(())
    }

    /// Inflates grain `g` (record at file offset `at`) into `dst` (its first `dst.len()` bytes).
    fn inflate(&self, dst: &mut [u8], g: u64, at: u64, markers: bool) -> Result<()> {
        let len = self.src.len();
        let corrupt = |msg: String| Error::corrupt(msg).at(at).with_path(self.src.path());
        if at >= len {
            return Err(corrupt(format!("compressed grain {g} lies past the end of the file ({len} bytes)")));
        }
        // One read usually covers the marker and the compressed bytes (which are rarely larger
        // than the grain); the rest is read only when the marker says it is needed.
        let limit = 2 * self.grain + 4096;
        let first = (self.grain + 4096).min(len - at) as usize;
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let (buf, z) = &mut *scratch;
            buf.resize(first, 0);
            self.src
                .read_exact_at(buf, at)
                .map_err(|e| Error::io("reading a compressed grain", e).at(at).with_path(self.src.path()))?;
            let (skip, data_len) = if markers {
                if buf.len() < 12 {
                    return Err(corrupt(format!("grain marker of grain {g} is cut off by the end of the file")));
                }
                let lba = crate::le::u64(buf, 0);
                let size = crate::le::u32(buf, 8) as u64;
                if size == 0 {
                    return Err(corrupt(format!("grain {g} points at a metadata marker, not a compressed grain")));
                }
                let want_lba = g * (self.grain / 512);
                if lba != want_lba {
                    return Err(corrupt(format!(
                        "grain marker says sector {lba}, but the grain table puts it at sector {want_lba}"
                    )));
                }
                if size > limit {
                    return Err(corrupt(format!(
                        "compressed grain of {size} bytes is larger than the grain ({} bytes) allows",
                        self.grain
                    )));
                }
                if at + 12 + size > len {
                    return Err(corrupt(format!(
                        "compressed grain ({size} bytes) lies past the end of the file ({len} bytes)"
                    )));
                }
                (12usize, size as usize)
            } else {
                // No marker: the zlib stream starts at the entry and ends itself.
                (0usize, (limit.min(len - at)) as usize)
            };
            if skip + data_len > buf.len() {
                let old = buf.len();
                buf.resize(skip + data_len, 0);
                self.src
                    .read_exact_at(&mut buf[old..], at + old as u64)
                    .map_err(|e| Error::io("reading a compressed grain", e).at(at).with_path(self.src.path()))?;
            }
            let z = z.get_or_insert_with(|| flate2::Decompress::new(true));
            z.reset(true);
            let r = z.decompress(&buf[skip..skip + data_len], dst, flate2::FlushDecompress::Finish);
            let filled = z.total_out() as usize;
            match r {
                Ok(_) if filled == dst.len() => Ok(()),
                Ok(_) => Err(corrupt(format!("grain {g} inflates to {filled} bytes, {} expected", dst.len()))),
                Err(e) => Err(corrupt(format!("grain {g} does not inflate")).with_source(e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemSource;
    use crate::vmdk::build::{self, GrainSpec, SparseOpts};
    use crate::vmdk::sparse;

    fn map_of(raw: &[u8], opts: &SparseOpts, spec: &dyn Fn(u64) -> GrainSpec) -> GrainMap {
        let f = build::sparse(raw, spec, opts);
        let src: Arc<dyn ByteSource> = Arc::new(MemSource::new(f, "c.vmdk"));
        let h = sparse::read_header(src.as_ref()).unwrap();
        sparse::open(src, &h).unwrap()
    }

    #[test]
    fn the_grain_table_cache_stays_bounded() {
        // 256 grain tables of 2 entries; a cache of 4 tables.
        let raw: Vec<u8> = (0..512 * 4096).map(|i: usize| (i / 4096) as u8 ^ (i as u8)).collect();
        let opts = SparseOpts { grain_sectors: 8, gtes: 2, ..Default::default() };
        let mut m = map_of(&raw, &opts, &|g| if g % 3 == 2 { GrainSpec::Unallocated } else { GrainSpec::Data });
        // Room for 4 tables of 2 entries.
        m.share_cache(LayerCache::new(4 * 2 * 8));
        for pass in 0..2 {
            let mut off = 0u64;
            while off < raw.len() as u64 {
                let (n, a) = m.status(off, 3 * 4096).unwrap();
                if a == Allocation::Data {
                    let mut b = vec![0u8; n as usize];
                    m.read(&mut b, off).unwrap();
                    assert_eq!(b, raw[off as usize..(off + n) as usize], "pass {pass} at {off}");
                }
                off += n;
                assert!(m.cache.table_bytes() <= 4 * 2 * 8);
            }
        }
    }

    #[test]
    fn reads_from_several_threads_agree() {
        let raw: Vec<u8> = (0..(3 << 20) + 512).map(|i: usize| ((i * 7) >> 9) as u8).collect();
        let opts = SparseOpts { grain_sectors: 16, gtes: 16, stream: true, ..Default::default() };
        let m = map_of(&raw, &opts, &|_| GrainSpec::Data);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (m, raw) = (&m, &raw);
                s.spawn(move || {
                    let step = 4096 * (t + 1) + 512 * t;
                    let mut off = t * 1000 / 512 * 512;
                    while off < raw.len() as u64 {
                        let n = step.min(raw.len() as u64 - off) as usize;
                        let mut b = vec![0u8; n];
                        m.read(&mut b, off).unwrap();
                        assert_eq!(b, raw[off as usize..off as usize + n]);
                        off += n as u64;
                    }
                });
            }
        });
    }
}
