//! Hosted sparse extents (`KDMV`): monolithicSparse, twoGbMaxExtentSparse extents, and
//! streamOptimized (compressed grains, markers, grain directory at the end with a footer).
//!
//! ```text
//!   sector 0      header (512 B, LE; fields below)           gdOffset = GD_AT_END (stream) ─┐
//!   sector 1..    embedded descriptor (NUL padded)                                          │
//!   rgdOffset     redundant GD + GTs (hosted only)                                          │
//!   gdOffset      GD: u32 sector of each GT                                                 │
//!   overHead..    grains (plain), or grain records: LBA u64, size u32, zlib bytes           │
//!   stream end:   [GT marker, GT]* GD marker, GD, footer marker, footer (a header), EOS  ◄──┘
//! ```
//!
//! See `disk-formats.md` §1.2.3, §1.2.4 and §1.2.6.

use std::sync::Arc;

use super::grains::{self, Encoding, Gde, GrainMap, Storage};
use crate::error::{CheckedExt, Error, Result};
use crate::le::{u32 as le32, u64 as le64};
use crate::source::{read_vec, ByteSource};

/// `KDMV` as it appears in the file.
pub const MAGIC: &[u8; 4] = b"KDMV";
/// `gdOffset` value meaning "the grain directory is at the end; read the footer".
pub const GD_AT_END: u64 = u64::MAX;
/// Header flag bit 1: a redundant grain directory is in use.
pub const FLAG_RGD: u32 = 1 << 1;
/// Header flag bit 2: GTE 1 means a zeroed grain.
pub const FLAG_ZEROED_GRAIN: u32 = 1 << 2;
/// Header flag bit 16: grains are compressed.
pub const FLAG_COMPRESSED: u32 = 1 << 16;
/// Header flag bit 17: grains and metadata carry markers.
pub const FLAG_MARKERS: u32 = 1 << 17;
/// `compressAlgorithm` value for zlib/deflate.
pub const COMPRESSION_DEFLATE: u16 = 1;
/// Largest grain qemu accepts, in sectors (1 GiB).
pub const MAX_GRAIN_SECTORS: u64 = 0x20_0000;
/// Largest number of entries per grain table accepted (qemu: 512).
pub const MAX_GTES_PER_GT: u32 = 512;
/// Stream marker types (`size == 0`).
pub const MARKER_EOS: u32 = 0;
/// Grain-table marker.
pub const MARKER_GT: u32 = 1;
/// Grain-directory marker.
pub const MARKER_GD: u32 = 2;
/// Footer marker.
pub const MARKER_FOOTER: u32 = 3;

/// The 512-byte KDMV header (the footer of a stream has the same layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// @4 u32: 1, 2 (zeroed-grain GTEs) or 3 (CBT-aware).
    pub version: u32,
    /// @8 u32: flags (see `FLAG_*`).
    pub flags: u32,
    /// @12 u64: capacity in sectors.
    pub capacity: u64,
    /// @20 u64: grain size in sectors.
    pub grain_size: u64,
    /// @28 u64: embedded descriptor start (sectors), 0 = none.
    pub desc_offset: u64,
    /// @36 u64: embedded descriptor size (sectors).
    pub desc_size: u64,
    /// @44 u32: entries per grain table.
    pub num_gtes_per_gt: u32,
    /// @48 u64: redundant grain directory (sectors).
    pub rgd_offset: u64,
    /// @56 u64: grain directory (sectors), or [`GD_AT_END`].
    pub gd_offset: u64,
    /// @64 u64: first grain sector.
    pub overhead: u64,
    /// @72 u8: unclean shutdown.
    pub unclean_shutdown: u8,
    /// @77 u16: 0 none, 1 deflate.
    pub compress_algorithm: u16,
}

impl Header {
    /// Parses the first 512 bytes of `b` (which must start with `KDMV`).
    pub fn parse(b: &[u8]) -> Result<Header> {
        if b.len() < 512 {
            return Err(Error::invalid(format!("KDMV header truncated: {} of 512 bytes", b.len())));
        }
        if &b[0..4] != MAGIC {
            return Err(Error::invalid("no KDMV magic"));
        }
        Ok(Header {
            version: le32(b, 4),
            flags: le32(b, 8),
            capacity: le64(b, 12),
            grain_size: le64(b, 20),
            desc_offset: le64(b, 28),
            desc_size: le64(b, 36),
            num_gtes_per_gt: le32(b, 44),
            rgd_offset: le64(b, 48),
            gd_offset: le64(b, 56),
            overhead: le64(b, 64),
            unclean_shutdown: b[72],
            compress_algorithm: crate::le::u16(b, 77),
        })
    }

    /// True for compressed (streamOptimized) extents.
    pub fn compressed(&self) -> bool {
        self.compress_algorithm == COMPRESSION_DEFLATE
    }
}

/// Reads the header of a KDMV file; for a stream with the GD at the end, the footer (which
/// takes precedence) replaces it, as qemu does.
pub fn read_header(src: &dyn ByteSource) -> Result<Header> {
    let b = read_vec(src, 0, 512, "KDMV header")?;
    let h = Header::parse(&b).map_err(|e| e.with_path(src.path()))?;
    if h.gd_offset != GD_AT_END {
        return Ok(h);
    }
    let len = src.len();
    let bad = |msg: &str| {
        Error::corrupt(format!(
            "the header says the grain directory is at the end of the stream, but {msg} \
             (is the file truncated?)"
        ))
        .with_path(src.path())
    };
    if len < 2048 {
        return Err(bad("the file is too short to hold a footer"));
    }
    let at = len - 1536;
    let f = read_vec(src, at, 1536, "stream footer")?;
    let marker_size = le32(&f, 8);
    let marker_type = le32(&f, 12);
    if marker_size != 0 || marker_type != MARKER_FOOTER {
        return Err(bad("no footer marker lies 1536 bytes before the end").at(at));
    }
    if le64(&f, 1024) != 0 || le32(&f, 1032) != 0 || le32(&f, 1036) != MARKER_EOS {
        return Err(bad("no end-of-stream marker ends the file").at(at + 1024));
    }
    let footer = Header::parse(&f[512..1024]).map_err(|_| bad("the footer has no KDMV magic").at(at + 512))?;
    if footer.gd_offset == GD_AT_END {
        return Err(bad("the footer does not say where it is either").at(at + 512));
    }
    Ok(footer)
}

/// The embedded descriptor bytes (up to the first NUL, at most 1 MiB), if any.
pub fn embedded_descriptor(src: &dyn ByteSource, h: &Header) -> Result<Option<Vec<u8>>> {
    if h.desc_offset == 0 || h.desc_size == 0 {
        return Ok(None);
    }
    let off = h.desc_offset.mul_or(512, "descriptor offset")?;
    let size = h
        .desc_size
        .mul_or(512, "descriptor size")?
        .min(super::descriptor::MAX_DESCRIPTOR_LEN as u64)
        .min(src.len().saturating_sub(off));
    if off >= src.len() || size == 0 {
        return Err(Error::corrupt(format!(
            "the embedded descriptor at sector {} lies past the end of the file",
            h.desc_offset
        ))
        .at(off)
        .with_path(src.path()));
    }
    let mut b = read_vec(src, off, size as usize, "embedded descriptor")?;
    if let Some(n) = b.iter().position(|&c| c == 0) {
        b.truncate(n);
    }
    Ok(Some(b))
}

/// Opens the grain map of a KDMV file whose header (or footer) is `h`.
pub fn open(src: Arc<dyn ByteSource>, h: &Header) -> Result<GrainMap> {
    let path = src.path().to_path_buf();
    let invalid = |m: String| Error::invalid(m).with_path(&path);
    if h.version == 0 || h.version > 3 {
        return Err(Error::unsupported(format!("KDMV version {}", h.version)).with_path(&path));
    }
    if h.compress_algorithm > COMPRESSION_DEFLATE {
        return Err(Error::unsupported(format!(
            "grain compression algorithm {} (only 1 = deflate is known)",
            h.compress_algorithm
        ))
        .with_path(&path));
    }
    if h.grain_size == 0 || h.grain_size > MAX_GRAIN_SECTORS {
        return Err(invalid(format!("grain size of {} sectors (must be 1 to {MAX_GRAIN_SECTORS})", h.grain_size)));
    }
    if h.num_gtes_per_gt == 0 || h.num_gtes_per_gt > MAX_GTES_PER_GT {
        return Err(invalid(format!("{} entries per grain table (must be 1 to {MAX_GTES_PER_GT})", h.num_gtes_per_gt)));
    }
    let capacity = h.capacity.mul_or(512, "capacity")?;
    let grain = h.grain_size * 512;
    let gt_len = h.num_gtes_per_gt as u64;
    let overhead = h.overhead.mul_or(512, "overhead")?;
    if overhead > src.len() {
        return Err(Error::corrupt(format!(
            "file truncated: the header puts the first grain at byte {overhead}, past the end ({} bytes)",
            src.len()
        ))
        .with_path(&path));
    }
    let entries = grains::gd_entries_needed(capacity, grain, gt_len)?;
    let read_gd = |sector: u64, what: &str| -> Result<Vec<u64>> {
        let off = sector.mul_or(512, what)?;
        grains::read_entries(src.as_ref(), off, entries, 4, what)
    };
    let gd = match read_gd(h.gd_offset, "grain directory") {
        Ok(gd) => gd,
        Err(primary) => {
            // The redundant GD, when there is one, is a full mirror: use it.
            if h.flags & FLAG_RGD != 0 && h.rgd_offset != 0 {
                read_gd(h.rgd_offset, "redundant grain directory").map_err(|_| primary)?
            } else {
                return Err(primary);
            }
        }
    };
    let zeroed_grain = h.flags & FLAG_ZEROED_GRAIN != 0;
    let gd = gd
        .into_iter()
        .map(|e| match e {
            0 => Ok(Gde::None),
            1 if zeroed_grain => Ok(Gde::Zero),
            s => Ok(Gde::At(s.mul_or(512, "grain table offset")?)),
        })
        .collect::<Result<Vec<_>>>()?;
    let storage =
        if h.compressed() { Storage::Deflate { markers: h.flags & FLAG_MARKERS != 0 } } else { Storage::Plain };
    GrainMap::new(src, capacity, grain, gt_len, gd, Encoding::Kdmv { zeroed_grain }, storage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::Allocation;
    use crate::source::MemSource;
    use crate::vmdk::build::{self, GrainSpec, SparseOpts};

    fn pattern(size: usize) -> Vec<u8> {
        (0..size).map(|i| (i / 512 % 251) as u8 + 1).collect()
    }

    fn check(raw: &[u8], spec: &dyn Fn(u64) -> GrainSpec, opts: SparseOpts) {
        let file = build::sparse(raw, spec, &opts);
        let src: Arc<dyn ByteSource> = Arc::new(MemSource::new(file, "t.vmdk"));
        let h = read_header(src.as_ref()).unwrap();
        let m = open(src, &h).unwrap();
        assert_eq!(m.capacity(), raw.len() as u64);
        let g = opts.grain_sectors * 512;
        let mut off = 0;
        while off < raw.len() as u64 {
            let (n, a) = m.status(off, raw.len() as u64 - off).unwrap();
            assert!(n > 0);
            let want = match spec(off / g) {
                GrainSpec::Unallocated => Allocation::Unallocated,
                GrainSpec::Zero => Allocation::Zero { explicit: true },
                GrainSpec::Data => Allocation::Data,
            };
            assert_eq!(a, want, "at {off}");
            if a == Allocation::Data {
                // Whole, odd-sized and sub-grain reads.
                let mut buf = vec![0u8; n as usize];
                m.read(&mut buf, off).unwrap();
                assert_eq!(buf, raw[off as usize..(off + n) as usize]);
                let mut b = vec![0u8; 1000.min(n as usize - 7)];
                m.read(&mut b, off + 7).unwrap();
                assert_eq!(b, raw[off as usize + 7..off as usize + 7 + b.len()]);
            }
            off += n;
        }
    }

    fn spec(g: u64) -> GrainSpec {
        match g % 5 {
            0 | 3 => GrainSpec::Data,
            1 => GrainSpec::Unallocated,
            2 => GrainSpec::Zero,
            _ => GrainSpec::Data,
        }
    }

    #[test]
    fn hosted_sparse_with_zeroed_grains() {
        let raw = pattern(3 * 65536 * 4 + 1536);
        check(&raw, &spec, SparseOpts { grain_sectors: 8, gtes: 4, ..SparseOpts::default() });
    }

    #[test]
    fn vmware_stream_with_footer_and_markers() {
        let raw = pattern(40 * 4096 + 512);
        let opts = SparseOpts { grain_sectors: 8, gtes: 8, stream: true, ..SparseOpts::default() };
        let nonzero = |g| {
            if g % 3 == 1 {
                GrainSpec::Unallocated
            } else {
                GrainSpec::Data
            }
        };
        check(&raw, &nonzero, opts.clone());
        // The header really says GD_AT_END and the footer is found.
        let file = build::sparse(&raw, &nonzero, &opts);
        assert_eq!(le64(&file, 56), GD_AT_END);
        // Chopping the end off is a clear error.
        let src = MemSource::new(file[..file.len() - 512].to_vec(), "cut.vmdk");
        let e = read_header(&src).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn header_checks() {
        let raw = pattern(65536);
        let opts = SparseOpts::default();
        let mut file = build::sparse(&raw, &|_| GrainSpec::Data, &opts);
        let src = |f: &Vec<u8>| -> Arc<dyn ByteSource> { Arc::new(MemSource::new(f.clone(), "h.vmdk")) };
        // GD past EOF.
        file[56..64].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let s = src(&file);
        let e = open(s.clone(), &read_header(s.as_ref()).unwrap()).unwrap_err();
        assert!(e.to_string().contains("grain directory"), "{e}");
        // A capacity that would need a gigantic GD fails on bounds, before allocating.
        let mut f2 = build::sparse(&raw, &|_| GrainSpec::Data, &opts);
        f2[12..20].copy_from_slice(&(1u64 << 50).to_le_bytes());
        let s = src(&f2);
        let e = open(s.clone(), &read_header(s.as_ref()).unwrap()).unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
        // Version and grain checks.
        let mut f3 = build::sparse(&raw, &|_| GrainSpec::Data, &opts);
        f3[4..8].copy_from_slice(&9u32.to_le_bytes());
        let s = src(&f3);
        assert_eq!(
            open(s.clone(), &read_header(s.as_ref()).unwrap()).unwrap_err().kind(),
            crate::ErrorKind::Unsupported
        );
        let mut f4 = build::sparse(&raw, &|_| GrainSpec::Data, &opts);
        f4[44..48].copy_from_slice(&0u32.to_le_bytes());
        let s = src(&f4);
        assert!(open(s.clone(), &read_header(s.as_ref()).unwrap()).is_err());
    }

    #[test]
    fn redundant_gd_is_used_when_the_primary_is_unreadable() {
        let raw = pattern(8 * 4096);
        let opts = SparseOpts { grain_sectors: 8, gtes: 4, rgd: true, ..SparseOpts::default() };
        let mut file = build::sparse(&raw, &|_| GrainSpec::Data, &opts);
        file[56..64].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let src: Arc<dyn ByteSource> = Arc::new(MemSource::new(file, "r.vmdk"));
        let m = open(src.clone(), &read_header(src.as_ref()).unwrap()).unwrap();
        let mut buf = vec![0u8; raw.len()];
        m.read(&mut buf, 0).unwrap();
        assert_eq!(buf, raw);
    }

    #[test]
    fn gt_past_eof_and_bad_grain_records_are_errors() {
        let raw = pattern(8 * 4096);
        let opts = SparseOpts { grain_sectors: 8, gtes: 4, stream: true, ..SparseOpts::default() };
        let file = build::sparse(&raw, &|_| GrainSpec::Data, &opts);
        let src: Arc<dyn ByteSource> = Arc::new(MemSource::new(file.clone(), "s.vmdk"));
        let h = read_header(src.as_ref()).unwrap();
        // Point GD[0] past EOF.
        let gd_at = (h.gd_offset * 512) as usize;
        let mut f = file.clone();
        f[gd_at..gd_at + 4].copy_from_slice(&0x0fff_ffffu32.to_le_bytes());
        let s: Arc<dyn ByteSource> = Arc::new(MemSource::new(f, "s.vmdk"));
        let m = open(s.clone(), &read_header(s.as_ref()).unwrap()).unwrap();
        let e = m.status(0, 4096).unwrap_err();
        assert!(e.to_string().contains("grain table"), "{e}");
        // Garble the first compressed grain.
        let mut f = file;
        let first = (h.overhead * 512) as usize;
        for b in &mut f[first + 12..first + 40] {
            *b ^= 0x5a;
        }
        let s: Arc<dyn ByteSource> = Arc::new(MemSource::new(f, "s.vmdk"));
        let m = open(s.clone(), &read_header(s.as_ref()).unwrap()).unwrap();
        assert!(m.read(&mut [0u8; 4096], 0).is_err());
    }
}
