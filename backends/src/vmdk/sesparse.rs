//! seSparse extents: ESXi 6.5+ / VMFS 6 snapshot deltas ("space-efficient sparse").
//!
//! ```text
//!   sector 0   const header (512 B, u64 LE): magic 0xcafebabe, version 0x2_00000001,
//!              capacity, grain size (8), GT size (64), flags (0), 4 reserved (0), then
//!              (offset, size) in sectors of: volatile header, journal header, journal,
//!              grain directory, grain tables, free bitmap, backmap, grains
//!   volatile   magic 0xcafecafe, free GT number, next txn, replay_journal (≠ 0: dirty)
//!   GD entry   0 = none; 0x10000000_xxxxxxxx = GT index x (GT at tables + x × 64 sectors)
//!   GT entry   top nibble 0 unallocated, 1 unmapped, 2 zero, 3 allocated (cluster number
//!              split: bits 48..59 low 12 bits, bits 0..47 the rest)
//! ```
//!
//! The format is not officially documented; like qemu we check every constant strictly and
//! refuse a journal that needs replaying. See `disk-formats.md` §1.2.7.

use std::sync::Arc;

use super::grains::{self, Encoding, Gde, GrainMap, Storage};
use crate::error::{CheckedExt, Error, Result};
use crate::le::u64 as le64;
use crate::source::{read_vec, ByteSource};

/// Const header magic (u64 LE at 0).
pub const MAGIC: u64 = 0xcafe_babe;
/// Volatile header magic.
pub const VOLATILE_MAGIC: u64 = 0xcafe_cafe;
/// The only known version.
pub const VERSION: u64 = 0x0000_0002_0000_0001;
/// Entries per grain table (64 sectors of u64).
const GT_ENTRIES: u64 = 4096;

/// True when `head` starts with the seSparse const-header magic.
pub fn has_magic(head: &[u8]) -> bool {
    head.len() >= 8 && le64(head, 0) == MAGIC
}

/// Opens the grain map of an seSparse file.
pub fn open(src: Arc<dyn ByteSource>) -> Result<GrainMap> {
    let path = src.path().to_path_buf();
    let h = read_vec(src.as_ref(), 0, 512, "seSparse const header")?;
    let unsup = |m: String| Error::unsupported(m).with_path(&path);
    if le64(&h, 0) != MAGIC {
        return Err(Error::invalid("no seSparse magic").with_path(&path));
    }
    if le64(&h, 8) != VERSION {
        return Err(unsup(format!("seSparse version {:#018x}", le64(&h, 8))));
    }
    let capacity = le64(&h, 16).mul_or(512, "seSparse capacity")?;
    if le64(&h, 24) != 8 {
        return Err(unsup(format!("seSparse grain size of {} sectors (only 8)", le64(&h, 24))));
    }
    if le64(&h, 32) != 64 {
        return Err(unsup(format!("seSparse grain table size of {} sectors (only 64)", le64(&h, 32))));
    }
    if le64(&h, 40) != 0 {
        return Err(unsup(format!("seSparse flags {:#x}", le64(&h, 40))));
    }
    if (48..80).step_by(8).any(|at| le64(&h, at) != 0) || h[208..].iter().any(|&b| b != 0) {
        return Err(unsup("seSparse header with non-zero reserved fields".into()));
    }
    let vh_off = le64(&h, 80).mul_or(512, "seSparse volatile header offset")?;
    let vh = read_vec(src.as_ref(), vh_off, 512, "seSparse volatile header")?;
    if le64(&vh, 0) != VOLATILE_MAGIC {
        return Err(Error::corrupt("bad seSparse volatile header magic").at(vh_off).with_path(&path));
    }
    if le64(&vh, 24) != 0 {
        return Err(unsup(
            "the seSparse journal needs replaying (the delta was not closed cleanly); \
             consolidate the snapshot on the ESXi host first"
                .into(),
        ));
    }
    let gd_off = le64(&h, 128).mul_or(512, "seSparse grain directory offset")?;
    let gd_len = le64(&h, 136).mul_or(512 / 8, "seSparse grain directory size")?;
    let tables = le64(&h, 144);
    let grains_offset = le64(&h, 192);
    let need = grains::gd_entries_needed(capacity, 4096, GT_ENTRIES)?;
    if gd_len < need {
        return Err(Error::corrupt(format!(
            "seSparse grain directory has {gd_len} entries, the capacity needs {need}"
        ))
        .with_path(&path));
    }
    let gd = grains::read_entries(src.as_ref(), gd_off, need, 8, "seSparse grain directory")?
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            if e == 0 {
                return Ok(Gde::None);
            }
            if e & 0xffff_ffff_0000_0000 != 0x1000_0000_0000_0000 {
                return Err(Error::corrupt(format!(
                    "seSparse grain directory entry {i} is {e:#018x}, not an allocated table"
                ))
                .with_path(&path));
            }
            let sector = (e & 0xffff_ffff)
                .mul_or(64, "seSparse grain table offset")?
                .add_or(tables, "seSparse grain table offset")?;
            Ok(Gde::At(sector.mul_or(512, "seSparse grain table offset")?))
        })
        .collect::<Result<Vec<_>>>()?;
    GrainMap::new(src, capacity, 4096, GT_ENTRIES, gd, Encoding::SeSparse { grains_offset }, Storage::Plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::Allocation;
    use crate::source::MemSource;
    use crate::vmdk::build::{self, SeGrain};

    fn spec(g: u64) -> SeGrain {
        match g % 9 {
            0..=3 => SeGrain::Data,
            4 => SeGrain::Zero,
            5 => SeGrain::Unmapped,
            _ => SeGrain::Unallocated,
        }
    }

    #[test]
    fn reads_what_the_builder_wrote() {
        // 17 MiB + 1 sector: two grain tables, > 4096 clusters, a partial last grain.
        let raw: Vec<u8> = (0..(17 << 20) + 512).map(|i: usize| (i / 4096 % 251) as u8 ^ (i as u8)).collect();
        let f = build::sesparse(&raw, &spec);
        let m = open(Arc::new(MemSource::new(f, "d-sesparse.vmdk"))).unwrap();
        let mut off = 0;
        while off < raw.len() as u64 {
            let (n, a) = m.status(off, raw.len() as u64 - off).unwrap();
            let want = match spec(off / 4096) {
                SeGrain::Data => Allocation::Data,
                SeGrain::Zero | SeGrain::Unmapped => Allocation::Zero { explicit: true },
                SeGrain::Unallocated => Allocation::Unallocated,
            };
            assert_eq!(a, want, "at {off}");
            if a == Allocation::Data {
                let mut b = vec![0u8; n as usize];
                m.read(&mut b, off).unwrap();
                assert_eq!(b, raw[off as usize..(off + n) as usize], "at {off}");
            }
            off += n;
        }
    }

    #[test]
    fn strict_header_checks() {
        let raw = vec![7u8; 64 * 1024];
        let good = build::sesparse(&raw, &|_| SeGrain::Data);
        assert!(open(Arc::new(MemSource::new(good.clone(), "x"))).is_ok());
        for (at, v) in [(8usize, 1u64), (24, 16), (32, 32), (40, 1), (56, 1)] {
            let mut f = good.clone();
            f[at..at + 8].copy_from_slice(&v.to_le_bytes());
            let e = open(Arc::new(MemSource::new(f, "x"))).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Unsupported, "{at}: {e}");
        }
        // Dirty journal.
        let mut f = good.clone();
        f[512 + 24..512 + 32].copy_from_slice(&1u64.to_le_bytes());
        let e = open(Arc::new(MemSource::new(f, "x"))).unwrap_err();
        assert!(e.to_string().contains("journal"), "{e}");
        // Bad GD entry type.
        let mut f = good.clone();
        f[11 * 512..11 * 512 + 8].copy_from_slice(&0x2000_0000_0000_0000u64.to_le_bytes());
        assert!(open(Arc::new(MemSource::new(f, "x"))).is_err());
        // Bad GT entry type: an error on access, not a panic.
        let mut f = good;
        f[12 * 512..12 * 512 + 8].copy_from_slice(&0x7000_0000_0000_0000u64.to_le_bytes());
        let m = open(Arc::new(MemSource::new(f, "x"))).unwrap();
        assert!(m.status(0, 4096).is_err());
    }
}
