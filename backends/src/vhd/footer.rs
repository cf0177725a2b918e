//! The VHD footer (`disk-formats.md` §1.4.1): 512 big-endian bytes at the end of every VHD, with
//! a copy at offset 0 in dynamic and differencing disks. Pure parsing: bytes in, [`Footer`] out.
//!
//! ```text
//!   off  size  field                 off  size  field
//!     0     8  cookie "conectix"      48     8  current size (bytes)
//!     8     4  features               56     4  geometry: u16 cylinders, u8 heads, u8 sectors
//!    12     4  format version         60     4  disk type: 2 fixed, 3 dynamic, 4 differencing
//!    16     8  data offset            64     4  checksum (one's complement of the byte sum)
//!    24     4  time stamp (s, 2000)   68    16  unique id
//!    28     4  creator application    84     1  saved state
//!    32     4  creator version        85   427  reserved
//!    36     4  creator host OS
//!    40     8  original size
//! ```

use crate::be;
use crate::error::{Error, Result};

/// The footer cookie.
pub const COOKIE: &[u8; 8] = b"conectix";
/// Length of a footer (and of its copy at offset 0).
pub const LEN: usize = 512;
/// Pre-2004 Virtual PC wrote the footer one byte short, without the last reserved byte.
pub const SHORT_LEN: usize = 511;
/// Byte offset of the checksum field in the footer (and in the dynamic header: 36).
const CHECKSUM_AT: usize = 64;
/// The largest geometry (65535 cylinders, 16 heads, 255 sectors): a disk too large for CHS,
/// whose size is always `current size`.
pub const MAX_GEOMETRY_SECTORS: u64 = 65535 * 16 * 255;

/// The disk type field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskType {
    /// 2: the data, then the footer.
    Fixed,
    /// 3: a BAT of blocks; unallocated blocks read as zeros.
    Dynamic,
    /// 4: a BAT of blocks with per-sector bitmaps over a parent disk.
    Differencing,
}

impl DiskType {
    /// The name `xva info` shows.
    pub fn name(self) -> &'static str {
        match self {
            DiskType::Fixed => "fixed",
            DiskType::Dynamic => "dynamic",
            DiskType::Differencing => "differencing",
        }
    }
}

/// A parsed footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footer {
    /// Offset of the dynamic disk header (`u64::MAX` in fixed disks).
    pub data_offset: u64,
    /// Seconds since 2000-01-01 00:00:00 UTC.
    pub timestamp: u32,
    /// Creator application (`vpc `, `qemu`, `qem2`, `win `, `tap\0`, ...).
    pub creator_app: [u8; 4],
    /// Creator version (major in the high 16 bits).
    pub creator_version: u32,
    /// Creator host OS (`Wi2k`, `Mac `).
    pub creator_os: [u8; 4],
    /// Size in bytes now (the "current size").
    pub current_size: u64,
    /// Cylinders, heads, sectors per track.
    pub geometry: (u16, u8, u8),
    /// The disk type.
    pub disk_type: DiskType,
    /// The stored checksum.
    pub checksum: u32,
    /// True when the stored checksum is right.
    pub checksum_ok: bool,
    /// The identity children reference.
    pub unique_id: [u8; 16],
}

/// One's complement of the byte sum of `b`, the bytes of the 4-byte field at `skip` not counted
/// (the VHD checksum of the footer and of the dynamic header).
pub fn checksum(b: &[u8], skip: usize) -> u32 {
    let sum = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(skip..skip + 4).contains(i))
        .fold(0u32, |s, (_, &x)| s.wrapping_add(x as u32));
    !sum
}

/// Four bytes as text for messages (`qemu`, `tap\0` → `tap`).
pub fn four_cc(b: &[u8; 4]) -> String {
    String::from_utf8_lossy(b).trim_end_matches(['\0', ' ']).to_string()
}

/// A VHD time stamp (seconds since 2000-01-01 00:00:00 UTC) as `N (YYYY-MM-DD hh:mm:ss UTC)`.
pub fn timestamp_text(ts: u32) -> String {
    let days = ts as i64 / 86_400 + 10_957; // days from 1970-01-01 to 2000-01-01
    let secs = ts as i64 % 86_400;
    // Days since 1970 to a proleptic Gregorian date (Howard Hinnant's civil_from_days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{ts} ({y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC)", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Parses a footer from `b` (511 or more bytes starting at the cookie). A missing cookie or an
/// unknown disk type is an error; a wrong checksum is not (qemu warns too): see
/// [`Footer::checksum_ok`].
pub fn parse(b: &[u8]) -> Result<Footer> {
    if b.len() < SHORT_LEN || !b.starts_with(COOKIE) {
        return Err(Error::invalid("no VHD footer (cookie \"conectix\")"));
    }
    let mut full = [0u8; LEN];
    let n = b.len().min(LEN);
    full[..n].copy_from_slice(&b[..n]);
    let stored = be::u32(&full, CHECKSUM_AT);
    let disk_type = match be::u32(&full, 60) {
        2 => DiskType::Fixed,
        3 => DiskType::Dynamic,
        4 => DiskType::Differencing,
        t => {
            return Err(
                Error::unsupported(format!("VHD disk type {t} (known: 2 fixed, 3 dynamic, 4 differencing)")).at(60)
            )
        }
    };
    let four = |at: usize| -> [u8; 4] { [full[at], full[at + 1], full[at + 2], full[at + 3]] };
    let mut unique_id = [0u8; 16];
    unique_id.copy_from_slice(&full[68..84]);
    Ok(Footer {
        data_offset: be::u64(&full, 16),
        timestamp: be::u32(&full, 24),
        creator_app: four(28),
        creator_version: be::u32(&full, 32),
        creator_os: four(36),
        current_size: be::u64(&full, 48),
        geometry: (be::u16(&full, 56), full[58], full[59]),
        disk_type,
        checksum: stored,
        checksum_ok: checksum(&full, CHECKSUM_AT) == stored,
        unique_id,
    })
}

impl Footer {
    /// Sectors the geometry describes (C × H × S).
    pub fn chs_sectors(&self) -> u64 {
        let (c, h, s) = self.geometry;
        c as u64 * h as u64 * s as u64
    }

    /// True when the size comes from the geometry rather than `current size`: qemu ≥ 10's rule
    /// (`disk-formats.md` §1.4.1) — only Virtual PC (`vpc `) and old qemu (`qemu`) size a disk by
    /// its CHS, and never when the geometry is the maximum.
    pub fn sized_by_chs(&self) -> bool {
        matches!(&self.creator_app, b"vpc " | b"qemu") && self.chs_sectors() != MAX_GEOMETRY_SECTORS
    }

    /// The virtual size in bytes, a whole number of sectors.
    pub fn virtual_size(&self) -> u64 {
        if self.sized_by_chs() {
            self.chs_sectors() * 512
        } else {
            self.current_size / 512 * 512
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A footer from annotated fields, with a right checksum.
    fn footer(creator: &[u8; 4], size: u64, geo: (u16, u8, u8), kind: u32) -> Vec<u8> {
        let mut b = vec![0u8; LEN];
        b[..8].copy_from_slice(COOKIE);
        b[8..12].copy_from_slice(&2u32.to_be_bytes()); // features: reserved bit
        b[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes()); // version 1.0
        b[16..24].copy_from_slice(&512u64.to_be_bytes()); // dynamic header right after
        b[24..28].copy_from_slice(&0x32a6_3cb3u32.to_be_bytes());
        b[28..32].copy_from_slice(creator);
        b[40..48].copy_from_slice(&size.to_be_bytes());
        b[48..56].copy_from_slice(&size.to_be_bytes());
        b[56..58].copy_from_slice(&geo.0.to_be_bytes());
        b[58] = geo.1;
        b[59] = geo.2;
        b[60..64].copy_from_slice(&kind.to_be_bytes());
        b[68..84].copy_from_slice(&[7u8; 16]);
        let c = checksum(&b, 64);
        b[64..68].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn fields_and_checksum() {
        let b = footer(b"qemu", 67_125_248, (964, 8, 17), 3);
        let f = parse(&b).unwrap();
        assert!(f.checksum_ok);
        assert_eq!(f.disk_type, DiskType::Dynamic);
        assert_eq!(f.data_offset, 512);
        assert_eq!(f.timestamp, 0x32a6_3cb3);
        assert_eq!(f.unique_id, [7; 16]);
        let mut bad = b.clone();
        bad[100] ^= 1;
        assert!(!parse(&bad).unwrap().checksum_ok, "a changed byte breaks the checksum");
        // The 511-byte footer of old Virtual PC reads the same.
        assert_eq!(parse(&b[..511]).unwrap(), f);
        assert!(parse(&b[..510]).is_err());
        assert!(parse(&[0u8; 512]).is_err());
        let e = parse(&footer(b"qemu", 1 << 20, (1, 1, 1), 9)).unwrap_err();
        assert!(e.to_string().contains("disk type 9"), "{e}");
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp_text(0), "0 (2000-01-01 00:00:00 UTC)");
        // qemu's image made on 2026-12-05 03:08 UTC (the fixture above).
        assert_eq!(timestamp_text(0x32a6_3cb3), "849755315 (2026-12-05 03:08:35 UTC)");
        assert_eq!(timestamp_text(5_097_600 + 59), "5097659 (2000-02-29 00:00:59 UTC)");
        assert!(timestamp_text(u32::MAX).starts_with("4294967295 (2136-02-"));
    }

    #[test]
    fn virtual_size_follows_qemu_10() {
        // qemu's own dynamic disk of 67 110 400 bytes: CHS rounded up (§1.4.1).
        let f = parse(&footer(b"qemu", 67_125_248, (964, 8, 17), 3)).unwrap();
        assert_eq!(f.virtual_size(), 964 * 8 * 17 * 512);
        // force_size: creator qem2, maximum geometry, current size.
        let f = parse(&footer(b"qem2", 67_110_400, (65535, 16, 255), 3)).unwrap();
        assert_eq!(f.virtual_size(), 67_110_400);
        // Virtual PC: CHS, even when current size is larger.
        let f = parse(&footer(b"vpc ", 10 << 20, (20, 16, 63), 2)).unwrap();
        assert_eq!(f.virtual_size(), 20 * 16 * 63 * 512);
        // ... but not with the maximum geometry.
        let f = parse(&footer(b"vpc ", 3 << 40, (65535, 16, 255), 2)).unwrap();
        assert_eq!(f.virtual_size(), 3 << 40);
        // Everyone else (Hyper-V, XenServer, Azure, Disk2vhd, unknown): current size, whole sectors.
        for app in [b"win ", b"tap\0", b"wa\0\0", b"d2v ", b"CTXS", b"xyz "] {
            let f = parse(&footer(app, (10 << 20) + 100, (20, 16, 63), 2)).unwrap();
            assert_eq!(f.virtual_size(), 10 << 20, "{}", four_cc(app));
        }
    }
}
