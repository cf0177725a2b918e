//! COWD extents (`vmfsSparse`): the ESX "redo log" written for snapshots on VMFS ≤ 5.
//!
//! ```text
//!   sector 0..3   header (2048 B, LE): magic "COWD" @0, version @4, flags @8,
//!                 capacity (sectors, u32) @12, grain size (sectors) @16,
//!                 GD offset (sectors) @20, GD entries @24, next free sector @28, ...
//!   GD            u32 sector of each grain table
//!   GT            4096 × u32 sector of each grain (0 = unallocated: read the parent)
//! ```
//!
//! No compression and no zeroed grains. The parent is named by the descriptor's
//! `parentFileNameHint`, not by the header. See `disk-formats.md` §1.2.5.

use std::sync::Arc;

use super::grains::{self, Encoding, Gde, GrainMap, Storage};
use crate::error::{CheckedExt, Error, Result};
use crate::source::{read_vec, ByteSource};

/// `COWD` as it appears in the file.
pub const MAGIC: &[u8; 4] = b"COWD";
/// Entries per COWD grain table.
pub const GT_ENTRIES: u64 = 4096;
/// Largest grain accepted, in sectors.
const MAX_GRAIN_SECTORS: u64 = 0x20_0000;

fn le32(b: &[u8], at: usize) -> u64 {
    crate::le::u32(b, at) as u64
}

/// Opens the grain map of a COWD file.
pub fn open(src: Arc<dyn ByteSource>) -> Result<GrainMap> {
    let h = read_vec(src.as_ref(), 0, 2048, "COWD header")?;
    if &h[0..4] != MAGIC {
        return Err(Error::invalid("no COWD magic").with_path(src.path()));
    }
    let version = le32(&h, 4);
    if version != 1 {
        return Err(Error::unsupported(format!("COWD version {version}")).with_path(src.path()));
    }
    let capacity = le32(&h, 12) * 512;
    let grain_sectors = le32(&h, 16);
    if grain_sectors == 0 || grain_sectors > MAX_GRAIN_SECTORS {
        return Err(Error::invalid(format!(
            "COWD grain size of {grain_sectors} sectors (must be 1 to {MAX_GRAIN_SECTORS})"
        ))
        .with_path(src.path()));
    }
    let gd_off = le32(&h, 20).mul_or(512, "COWD grain directory offset")?;
    let gd_entries = le32(&h, 24);
    let grain = grain_sectors * 512;
    let need = grains::gd_entries_needed(capacity, grain, GT_ENTRIES)?;
    if gd_entries < need {
        return Err(Error::corrupt(format!(
            "COWD grain directory has {gd_entries} entries, the capacity needs {need}"
        ))
        .with_path(src.path()));
    }
    let gd = grains::read_entries(src.as_ref(), gd_off, need, 4, "COWD grain directory")?
        .into_iter()
        .map(|e| match e {
            0 => Ok(Gde::None),
            s => Ok(Gde::At(s.mul_or(512, "COWD grain table offset")?)),
        })
        .collect::<Result<Vec<_>>>()?;
    GrainMap::new(src, capacity, grain, GT_ENTRIES, gd, Encoding::Cowd, Storage::Plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::Allocation;
    use crate::source::MemSource;
    use crate::vmdk::build::{self, GrainSpec};

    #[test]
    fn reads_what_the_builder_wrote() {
        // 2 GTs worth of 1-sector grains plus a partial one.
        let raw: Vec<u8> = (0..(4096 + 100) * 512).map(|i| (i % 253) as u8).collect();
        let spec = |g: u64| {
            if g % 7 < 3 {
                GrainSpec::Data
            } else {
                GrainSpec::Unallocated
            }
        };
        let f = build::cowd(&raw, 1, &spec);
        let m = open(Arc::new(MemSource::new(f, "d-delta.vmdk"))).unwrap();
        assert_eq!(m.capacity(), raw.len() as u64);
        let mut off = 0;
        while off < raw.len() as u64 {
            let (n, a) = m.status(off, raw.len() as u64 - off).unwrap();
            let want = if spec(off / 512) == GrainSpec::Data { Allocation::Data } else { Allocation::Unallocated };
            assert_eq!(a, want);
            if a == Allocation::Data {
                let mut b = vec![0u8; n as usize];
                m.read(&mut b, off).unwrap();
                assert_eq!(b, raw[off as usize..(off + n) as usize]);
            }
            off += n;
        }
    }

    #[test]
    fn short_gd_and_bad_headers() {
        let raw = vec![1u8; 64 * 512];
        let mut f = build::cowd(&raw, 8, &|_| GrainSpec::Data);
        f[24..28].copy_from_slice(&0u32.to_le_bytes());
        assert!(open(Arc::new(MemSource::new(f, "x"))).is_err());
        let mut f = build::cowd(&raw, 8, &|_| GrainSpec::Data);
        f[16..20].copy_from_slice(&0u32.to_le_bytes());
        assert!(open(Arc::new(MemSource::new(f, "x"))).is_err());
        assert!(open(Arc::new(MemSource::new(b"COWD".to_vec(), "x"))).is_err());
    }
}
