//! The dynamic disk header (`disk-formats.md` §1.4.2) and the parent locators of differencing
//! disks (§1.4.4). Pure parsing: bytes in, typed values out.
//!
//! ```text
//!   off  size  field                       off  size  field
//!     0     8  cookie "cxsparse"            40    16  parent unique id
//!     8     8  data offset (unused)         56     4  parent time stamp
//!    16     8  table offset (the BAT)       64   512  parent unicode name (UTF-16 BE)
//!    24     4  header version               576  8×24  parent locators:
//!    28     4  max table entries                        code, data space, data length,
//!    32     4  block size (a power of two)              reserved, data offset (u64)
//!    36     4  checksum                     768   256  reserved
//! ```

use crate::be;
use crate::error::{Error, Result};
use crate::parent::decode_utf16_lossy;
use crate::vhd::footer::checksum;

/// The dynamic header cookie.
pub const COOKIE: &[u8; 8] = b"cxsparse";
/// Length of the dynamic header.
pub const LEN: usize = 1024;
/// A BAT entry for a block that is not in the file.
pub const UNALLOCATED: u32 = 0xFFFF_FFFF;
/// The longest parent locator read (platform data), in bytes: a path of 32 Ki UTF-16 units.
pub const MAX_LOCATOR_LEN: u32 = 64 * 1024;

/// One parent locator entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locator {
    /// Platform code (`W2ru`, `W2ku`, `MacX`, `Wi2r`, `Wi2k`, `Mac `).
    pub code: [u8; 4],
    /// Bytes of platform data.
    pub len: u32,
    /// File offset of the platform data.
    pub offset: u64,
    /// Byte offset of this entry in the file (for messages).
    pub entry_at: u64,
}

/// A parsed dynamic disk header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// File offset of the BAT.
    pub table_offset: u64,
    /// Entries the BAT has room for.
    pub max_entries: u32,
    /// Bytes of data per block (a power of two, at least 512).
    pub block_size: u32,
    /// True when the stored checksum is right.
    pub checksum_ok: bool,
    /// The parent's footer unique id (differencing disks).
    pub parent_unique_id: [u8; 16],
    /// The parent's footer time stamp (differencing disks).
    pub parent_timestamp: u32,
    /// The parent's file name, decoded from UTF-16 BE (lossily).
    pub parent_name: String,
    /// The locators with a platform code (empty slots left out).
    pub locators: Vec<Locator>,
}

/// Parses the 1024-byte header read at file offset `at` (offsets in errors are file offsets).
pub fn parse(b: &[u8], at: u64) -> Result<Header> {
    if b.len() < LEN || !b.starts_with(COOKIE) {
        return Err(Error::invalid(
            "no dynamic disk header (cookie \"cxsparse\") where the footer's data offset points",
        )
        .at(at));
    }
    let block_size = be::u32(b, 32);
    if block_size < 512 || !block_size.is_power_of_two() {
        return Err(
            Error::invalid(format!("block size {block_size} is not a power of two of at least 512 bytes")).at(at + 32)
        );
    }
    let mut parent_unique_id = [0u8; 16];
    parent_unique_id.copy_from_slice(&b[40..56]);
    let locators = (0..8)
        .map(|i| 576 + i * 24)
        .filter(|&o| b[o..o + 4] != [0; 4])
        .map(|o| Locator {
            code: [b[o], b[o + 1], b[o + 2], b[o + 3]],
            len: be::u32(b, o + 8),
            offset: be::u64(b, o + 16),
            entry_at: at + o as u64,
        })
        .collect();
    Ok(Header {
        table_offset: be::u64(b, 16),
        max_entries: be::u32(b, 28),
        block_size,
        checksum_ok: checksum(&b[..LEN], 36) == be::u32(b, 36),
        parent_unique_id,
        parent_timestamp: be::u32(b, 56),
        parent_name: decode_utf16_lossy(&b[64..576], false),
        locators,
    })
}

/// Bytes of the sector bitmap in front of each block: one bit per sector, rounded up to whole
/// sectors.
pub fn bitmap_len(block_size: u32) -> u64 {
    (block_size as u64 / 512).div_ceil(8).div_ceil(512) * 512
}

/// The path a locator's platform data names, or `None` for codes that name no usable path
/// (`Mac ` aliases, unknown codes). `W2ru`/`W2ku` are UTF-16 LE, `Wi2r`/`Wi2k` ANSI, `MacX` a
/// UTF-8 file URL (`file://./base.vhd`, `file:///srv/base.vhd`).
pub fn locator_path(code: &[u8; 4], data: &[u8]) -> Option<String> {
    let s = match code {
        b"W2ru" | b"W2ku" => decode_utf16_lossy(data, true),
        b"Wi2r" | b"Wi2k" => String::from_utf8_lossy(data.split(|&c| c == 0).next().unwrap_or(&[])).into_owned(),
        b"MacX" => {
            let text = String::from_utf8_lossy(data.split(|&c| c == 0).next().unwrap_or(&[])).into_owned();
            let rest = text.strip_prefix("file://").unwrap_or(&text);
            let rest = rest.strip_prefix("localhost/").map(|r| format!("/{r}")).unwrap_or_else(|| rest.to_string());
            percent_decode(&rest)
        }
        _ => return None,
    };
    let s = s.trim_end_matches('\0').to_string();
    (!s.is_empty()).then_some(s)
}

/// `%XX` escapes of a file URL decoded (RFC 2396); anything malformed is kept as written.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex =
            b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(block_size: u32) -> Vec<u8> {
        let mut b = vec![0u8; LEN];
        b[..8].copy_from_slice(COOKIE);
        b[8..16].fill(0xff);
        b[16..24].copy_from_slice(&1536u64.to_be_bytes());
        b[24..28].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        b[28..32].copy_from_slice(&33u32.to_be_bytes());
        b[32..36].copy_from_slice(&block_size.to_be_bytes());
        b[40..56].copy_from_slice(&[9u8; 16]);
        b[56..60].copy_from_slice(&1234u32.to_be_bytes());
        for (i, u) in "b\u{e4}se.vhd".encode_utf16().enumerate() {
            b[64 + 2 * i..66 + 2 * i].copy_from_slice(&u.to_be_bytes());
        }
        b[576..580].copy_from_slice(b"W2ru");
        b[584..588].copy_from_slice(&20u32.to_be_bytes());
        b[592..600].copy_from_slice(&0x2000u64.to_be_bytes());
        let c = checksum(&b, 36);
        b[36..40].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn fields_locators_and_names() {
        let h = parse(&header(2 << 20), 512).unwrap();
        assert!(h.checksum_ok);
        assert_eq!((h.table_offset, h.max_entries, h.block_size), (1536, 33, 2 << 20));
        assert_eq!(h.parent_unique_id, [9; 16]);
        assert_eq!(h.parent_timestamp, 1234);
        assert_eq!(h.parent_name, "b\u{e4}se.vhd");
        assert_eq!(h.locators, vec![Locator { code: *b"W2ru", len: 20, offset: 0x2000, entry_at: 512 + 576 }]);
        assert_eq!(bitmap_len(2 << 20), 512);
        assert_eq!(bitmap_len(512), 512);
        assert_eq!(bitmap_len(1 << 31), 512 * 1024);
    }

    #[test]
    fn bad_headers_name_the_field() {
        for bs in [0, 256, 3 << 20, 1000] {
            let e = parse(&header(bs), 512).unwrap_err();
            assert!(e.to_string().contains("power of two") && e.offset() == Some(512 + 32), "{bs}: {e}");
        }
        let e = parse(&[0u8; LEN], 512).unwrap_err();
        assert!(e.to_string().contains("cxsparse") && e.offset() == Some(512), "{e}");
        assert!(parse(&header(4096)[..100], 0).is_err());
    }

    #[test]
    fn locator_paths() {
        let le: Vec<u8> = ".\\b\u{e4}se.vhd\0".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert_eq!(locator_path(b"W2ru", &le).unwrap(), ".\\b\u{e4}se.vhd");
        assert_eq!(locator_path(b"W2ku", &le).unwrap(), ".\\b\u{e4}se.vhd");
        assert_eq!(locator_path(b"MacX", b"file://./base%20one.vhd").unwrap(), "./base one.vhd");
        assert_eq!(locator_path(b"MacX", b"file:///srv/vms/base.vhd\0\0").unwrap(), "/srv/vms/base.vhd");
        assert_eq!(locator_path(b"MacX", b"file://localhost/srv/b.vhd").unwrap(), "/srv/b.vhd");
        assert_eq!(locator_path(b"MacX", b"file://./100%zz").unwrap(), "./100%zz");
        assert_eq!(locator_path(b"Wi2r", b".\\base.vhd\0junk").unwrap(), ".\\base.vhd");
        assert_eq!(locator_path(b"Mac ", b"alias"), None);
        assert_eq!(locator_path(b"W2ru", &[0, 0]), None);
        // An unpaired surrogate decodes lossily, an odd trailing byte is ignored.
        assert_eq!(decode_utf16_lossy(&[0x00, 0xd8, b'a', 0, 7], true), "\u{fffd}a");
        assert_eq!(decode_utf16_lossy(&[0xd8, 0x00, 0, b'a'], false), "\u{fffd}a");
    }
}
