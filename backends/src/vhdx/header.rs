//! Pure parsers for the VHDX header section and metadata: bytes in, typed values out.
//!
//! ```text
//!   0       file type identifier  "vhdxfile" + creator (UTF-16LE)
//!   64 KiB  header 1  ┐ "head", CRC-32C, sequence number: the valid one with the higher
//!   128 KiB header 2  ┘ sequence number is active
//!   192 KiB region table 1 ┐ "regi": BAT and metadata regions (unknown required regions refused)
//!   256 KiB region table 2 ┘
//!   metadata region: "metadata" table → file parameters, virtual disk size, sector sizes,
//!                    page 83 id, parent locator (unknown required items refused)
//! ```
//!
//! Every function checks the lengths and values it reads and returns an error saying what was
//! wrong; callers attach the file and offset. See `disk-formats.md` §1.5.

use crate::error::{Error, Result};
use crate::le;

use super::crc;

/// A GUID in the on-disk (Microsoft mixed-endian) byte order.
pub type Guid = [u8; 16];

/// The all-zero GUID (no log, no parent linkage).
pub const ZERO_GUID: Guid = [0; 16];

const fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (optionally in braces) into on-disk order.
pub const fn parse_guid(s: &[u8]) -> Option<Guid> {
    let (start, len) = if s.len() == 38 && s[0] == b'{' && s[37] == b'}' { (1, 36) } else { (0, s.len()) };
    if len != 36 {
        return None;
    }
    let mut text = [0u8; 16];
    let mut i = 0;
    let mut n = 0;
    while i < 36 {
        let c = s[start + i];
        if i == 8 || i == 13 || i == 18 || i == 23 {
            if c != b'-' {
                return None;
            }
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (hex(c), hex(s[start + i + 1])) else {
            return None;
        };
        text[n] = hi << 4 | lo;
        n += 1;
        i += 2;
    }
    // First three fields little-endian.
    Some([
        text[3], text[2], text[1], text[0], text[5], text[4], text[7], text[6], text[8], text[9], text[10], text[11],
        text[12], text[13], text[14], text[15],
    ])
}

const fn g(s: &str) -> Guid {
    match parse_guid(s.as_bytes()) {
        Some(g) => g,
        None => panic!("bad GUID constant"),
    }
}

/// Formats a GUID in the usual upper-case text form.
pub fn guid_string(g: &Guid) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{}",
        le::u32(g, 0),
        le::u16(g, 4),
        le::u16(g, 6),
        g[8],
        g[9],
        g[10..].iter().map(|b| format!("{b:02X}")).collect::<String>()
    )
}

/// The BAT region.
pub const REGION_BAT: Guid = g("2DC27766-F623-4200-9D64-115E9BFD4A08");
/// The metadata region.
pub const REGION_METADATA: Guid = g("8B7CA206-4790-4B9A-B8FE-575F050F886E");
/// Metadata item: file parameters (block size, flags).
pub const ITEM_FILE_PARAMETERS: Guid = g("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
/// Metadata item: virtual disk size.
pub const ITEM_VIRTUAL_DISK_SIZE: Guid = g("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
/// Metadata item: virtual disk id (SCSI page 83).
pub const ITEM_PAGE83: Guid = g("BECA12AB-B2E6-4523-93EF-C309E000C746");
/// Metadata item: logical sector size.
pub const ITEM_LOGICAL_SECTOR: Guid = g("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
/// Metadata item: physical sector size.
pub const ITEM_PHYSICAL_SECTOR: Guid = g("CDA348C7-445D-4471-9CC9-E9885251C556");
/// Metadata item: parent locator.
pub const ITEM_PARENT_LOCATOR: Guid = g("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");
/// The one parent locator type (VHDX parents).
pub const LOCATOR_TYPE_VHDX: Guid = g("B04AEFB7-D19E-4A81-B789-25B8E9445913");

/// Offsets of the header section.
pub const HEADER1_OFFSET: u64 = 64 << 10;
/// Header 2.
pub const HEADER2_OFFSET: u64 = 128 << 10;
/// Region table 1.
pub const REGION1_OFFSET: u64 = 192 << 10;
/// Region table 2.
pub const REGION2_OFFSET: u64 = 256 << 10;
/// Bytes a header's checksum covers.
pub const HEADER_LEN: usize = 4096;
/// Bytes a region table's checksum covers (and the metadata table's size).
pub const TABLE_LEN: usize = 64 << 10;
/// The file type identifier's signature.
pub const FILE_MAGIC: &[u8; 8] = b"vhdxfile";
/// 1 MiB: the unit of region and log offsets and lengths, and of BAT file offsets.
pub const MIB: u64 = 1 << 20;
/// Largest virtual disk [MS-VHDX] allows (64 TiB).
pub const MAX_DISK: u64 = 64 << 40;
/// Most entries a region or metadata table may hold.
pub const MAX_TABLE_ENTRIES: u32 = 2047;

/// The creator string of the file type identifier (informational).
pub fn creator(ident: &[u8]) -> Option<String> {
    let b = ident.get(8..8 + 512)?;
    crate::parent::decode_utf16le(b, "creator").ok().filter(|s| !s.is_empty())
}

/// One header (64 or 128 KiB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Sequence number: the valid header with the higher one is active.
    pub sequence: u64,
    /// Changes whenever the file is opened for writing.
    pub file_write_guid: Guid,
    /// Changes whenever visible data changes; a child's `parent_linkage`.
    pub data_write_guid: Guid,
    /// Non-zero: the log may hold updates that must be replayed.
    pub log_guid: Guid,
    /// Log format version (0).
    pub log_version: u16,
    /// File format version (1).
    pub version: u16,
    /// Log length in bytes (a multiple of 1 MiB).
    pub log_length: u32,
    /// Log offset in bytes (a multiple of 1 MiB).
    pub log_offset: u64,
}

/// Parses and checks one header (signature, checksum, versions, log placement).
pub fn parse_header(b: &[u8]) -> Result<Header> {
    if b.len() < HEADER_LEN {
        return Err(Error::invalid(format!("header: only {} bytes", b.len())));
    }
    let b = &b[..HEADER_LEN];
    if &b[..4] != b"head" {
        return Err(Error::invalid("header: no \"head\" signature"));
    }
    let stored = le::u32(b, 4);
    let computed = crc::structure(b, 4);
    if stored != computed {
        return Err(Error::corrupt(format!("header: CRC-32C mismatch (stored {stored:08x}, computed {computed:08x})")));
    }
    let h = Header {
        sequence: le::u64(b, 8),
        file_write_guid: b[16..32].try_into().unwrap_or(ZERO_GUID),
        data_write_guid: b[32..48].try_into().unwrap_or(ZERO_GUID),
        log_guid: b[48..64].try_into().unwrap_or(ZERO_GUID),
        log_version: le::u16(b, 64),
        version: le::u16(b, 66),
        log_length: le::u32(b, 68),
        log_offset: le::u64(b, 72),
    };
    if h.version != 1 {
        return Err(Error::unsupported(format!("header: VHDX version {} (only version 1 is defined)", h.version)));
    }
    if h.log_version != 0 {
        return Err(Error::unsupported(format!("header: log version {} (only version 0 is defined)", h.log_version)));
    }
    if !(h.log_length as u64).is_multiple_of(MIB) || !h.log_offset.is_multiple_of(MIB) {
        return Err(Error::invalid(format!(
            "header: the log ({} bytes at {:#x}) is not in whole MiB",
            h.log_length, h.log_offset
        )));
    }
    if h.log_length > 0 && h.log_offset < MIB {
        return Err(Error::invalid(format!("header: the log at {:#x} overlaps the header section", h.log_offset)));
    }
    Ok(h)
}

/// Chooses the active header from the two copies: the valid one with the higher sequence
/// number. Errors only when neither is valid, naming both problems.
pub fn choose_header(h1: Result<Header>, h2: Result<Header>) -> Result<(Header, u8)> {
    match (h1, h2) {
        (Ok(a), Ok(b)) => Ok(if b.sequence > a.sequence { (b, 2) } else { (a, 1) }),
        (Ok(a), Err(_)) => Ok((a, 1)),
        (Err(_), Ok(b)) => Ok((b, 2)),
        (Err(e1), Err(e2)) => Err(Error::new(
            e1.kind(),
            format!(
                "neither header is valid: header 1 (at {HEADER1_OFFSET:#x}): {}; header 2 (at \
                 {HEADER2_OFFSET:#x}): {}",
                e1.message(),
                e2.message()
            ),
        )),
    }
}

/// A region (BAT or metadata) of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Byte offset in the file (a multiple of 1 MiB, at least 1 MiB).
    pub offset: u64,
    /// Length in bytes (a multiple of 1 MiB).
    pub length: u64,
}

/// The regions the reader needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regions {
    /// The block allocation table.
    pub bat: Region,
    /// The metadata region.
    pub metadata: Region,
}

/// Parses and checks a region table (64 KiB): signature, checksum, entry count, placement;
/// refuses unknown regions marked required, by GUID.
pub fn parse_regions(b: &[u8]) -> Result<Regions> {
    if b.len() < TABLE_LEN {
        return Err(Error::invalid(format!("region table: only {} bytes", b.len())));
    }
    let b = &b[..TABLE_LEN];
    if &b[..4] != b"regi" {
        return Err(Error::invalid("region table: no \"regi\" signature"));
    }
    let stored = le::u32(b, 4);
    let computed = crc::structure(b, 4);
    if stored != computed {
        return Err(Error::corrupt(format!(
            "region table: CRC-32C mismatch (stored {stored:08x}, computed {computed:08x})"
        )));
    }
    let count = le::u32(b, 8);
    if count > MAX_TABLE_ENTRIES {
        return Err(Error::invalid(format!("region table: {count} entries (at most {MAX_TABLE_ENTRIES})")));
    }
    let (mut bat, mut meta) = (None, None);
    for i in 0..count as usize {
        let e = &b[16 + i * 32..16 + i * 32 + 32];
        let id: Guid = e[..16].try_into().unwrap_or(ZERO_GUID);
        let offset = le::u64(e, 16);
        let length = le::u32(e, 24) as u64;
        let required = le::u32(e, 28) & 1 != 0;
        let slot = if id == REGION_BAT {
            &mut bat
        } else if id == REGION_METADATA {
            &mut meta
        } else if required {
            return Err(Error::unsupported(format!(
                "region table entry {i}: unknown region {} is marked required; this reader does not \
                 know what it means, so it cannot read the disk safely",
                guid_string(&id)
            )));
        } else {
            continue;
        };
        if slot.is_some() {
            return Err(Error::invalid(format!("region table: region {} appears twice", guid_string(&id))));
        }
        if offset < MIB || !offset.is_multiple_of(MIB) || length == 0 || !length.is_multiple_of(MIB) {
            return Err(Error::invalid(format!(
                "region table entry {i}: region {} at {offset:#x}, {length} bytes, is not in whole MiB \
                 after the header section",
                guid_string(&id)
            )));
        }
        *slot = Some(Region { offset, length });
    }
    match (bat, meta) {
        (Some(bat), Some(metadata)) => Ok(Regions { bat, metadata }),
        (None, _) => Err(Error::invalid("region table: no BAT region")),
        (_, None) => Err(Error::invalid("region table: no metadata region")),
    }
}

/// One entry of the metadata table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemRef {
    /// Item GUID.
    pub id: Guid,
    /// Offset from the start of the metadata region.
    pub offset: u32,
    /// Length in bytes.
    pub length: u32,
    /// Flags: bit 0 IsUser, bit 1 IsVirtualDisk, bit 2 IsRequired.
    pub flags: u32,
}

const KNOWN_ITEMS: [Guid; 6] = [
    ITEM_FILE_PARAMETERS,
    ITEM_VIRTUAL_DISK_SIZE,
    ITEM_PAGE83,
    ITEM_LOGICAL_SECTOR,
    ITEM_PHYSICAL_SECTOR,
    ITEM_PARENT_LOCATOR,
];

/// Parses the metadata table (the first 64 KiB of the metadata region of `region_len` bytes):
/// the entries it lists, each checked to lie inside the region; unknown required items refused.
pub fn parse_metadata_table(b: &[u8], region_len: u64) -> Result<Vec<ItemRef>> {
    if b.len() < TABLE_LEN {
        return Err(Error::invalid(format!("metadata table: only {} bytes", b.len())));
    }
    if &b[..8] != b"metadata" {
        return Err(Error::invalid("metadata table: no \"metadata\" signature"));
    }
    let count = le::u16(b, 10) as u32;
    if count > MAX_TABLE_ENTRIES {
        return Err(Error::invalid(format!("metadata table: {count} entries (at most {MAX_TABLE_ENTRIES})")));
    }
    let mut out: Vec<ItemRef> = Vec::new();
    for i in 0..count as usize {
        let e = &b[32 + i * 32..32 + i * 32 + 32];
        let it = ItemRef {
            id: e[..16].try_into().unwrap_or(ZERO_GUID),
            offset: le::u32(e, 16),
            length: le::u32(e, 20),
            flags: le::u32(e, 24),
        };
        let name = guid_string(&it.id);
        if !KNOWN_ITEMS.contains(&it.id) {
            if it.flags & 4 != 0 {
                return Err(Error::unsupported(format!(
                    "metadata item {name} (entry {i}) is unknown and marked required; this reader does \
                     not know what it means, so it cannot read the disk safely"
                )));
            }
            continue;
        }
        if out.iter().any(|o| o.id == it.id) {
            return Err(Error::invalid(format!("metadata table: item {name} appears twice")));
        }
        let end = it.offset as u64 + it.length as u64;
        if it.length > 0 && ((it.offset as usize) < TABLE_LEN || end > region_len || it.length as u64 > MIB) {
            return Err(Error::invalid(format!(
                "metadata item {name}: {} bytes at {:#x} of the metadata region ({region_len} bytes) \
                 do not fit after the table",
                it.length, it.offset
            )));
        }
        out.push(it);
    }
    Ok(out)
}

/// The metadata items the reader uses, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Payload block size (a power of two, 1–256 MiB).
    pub block_size: u32,
    /// LeaveBlocksAllocated: a fixed disk.
    pub leave_allocated: bool,
    /// HasParent: a differencing disk.
    pub has_parent: bool,
    /// Virtual disk size in bytes.
    pub virtual_size: u64,
    /// Logical sector size (512 or 4096).
    pub logical_sector: u32,
    /// Physical sector size (512 or 4096), when given.
    pub physical_sector: Option<u32>,
    /// SCSI page 83 id, when given.
    pub page83: Option<Guid>,
    /// Parent locator entries (key, value), when given.
    pub locator: Option<Vec<(String, String)>>,
}

fn item<'a>(items: &[ItemRef], region: &'a [u8], id: &Guid, want: usize) -> Result<Option<&'a [u8]>> {
    let Some(it) = items.iter().find(|i| i.id == *id) else {
        return Ok(None);
    };
    let start = it.offset as usize;
    let bytes = region.get(start..start + it.length as usize).ok_or_else(|| {
        Error::invalid(format!("metadata item {}: past the end of the metadata region", guid_string(id)))
    })?;
    if bytes.len() < want {
        return Err(Error::invalid(format!("metadata item {}: {} bytes, needs {want}", guid_string(id), bytes.len())));
    }
    Ok(Some(bytes))
}

fn required<'a>(v: Option<&'a [u8]>, what: &str) -> Result<&'a [u8]> {
    v.ok_or_else(|| Error::invalid(format!("the metadata region has no {what} item")))
}

/// Reads and checks the items from `region` (the whole metadata region's bytes, or at least up
/// to the last item).
pub fn parse_metadata(items: &[ItemRef], region: &[u8]) -> Result<Metadata> {
    let fp = required(item(items, region, &ITEM_FILE_PARAMETERS, 8)?, "file parameters")?;
    let block_size = le::u32(fp, 0);
    let flags = le::u32(fp, 4);
    if !block_size.is_power_of_two() || !(MIB as u32..=256 << 20).contains(&block_size) {
        return Err(Error::invalid(format!(
            "file parameters: block size {block_size} is not a power of two from 1 MiB to 256 MiB"
        )));
    }
    let lss = le::u32(required(item(items, region, &ITEM_LOGICAL_SECTOR, 4)?, "logical sector size")?, 0);
    if lss != 512 && lss != 4096 {
        return Err(Error::invalid(format!("logical sector size {lss} (512 or 4096)")));
    }
    let pss = match item(items, region, &ITEM_PHYSICAL_SECTOR, 4)? {
        Some(b) => {
            let v = le::u32(b, 0);
            if v != 512 && v != 4096 {
                return Err(Error::invalid(format!("physical sector size {v} (512 or 4096)")));
            }
            Some(v)
        }
        None => None,
    };
    let size = le::u64(required(item(items, region, &ITEM_VIRTUAL_DISK_SIZE, 8)?, "virtual disk size")?, 0);
    if size == 0 || size > MAX_DISK || !size.is_multiple_of(lss as u64) {
        return Err(Error::invalid(format!(
            "virtual disk size {size} is not a non-zero multiple of the {lss}-byte logical sector up to 64 TiB"
        )));
    }
    let page83 = item(items, region, &ITEM_PAGE83, 16)?.map(|b| b[..16].try_into().unwrap_or(ZERO_GUID));
    let has_parent = flags & 2 != 0;
    let locator = match item(items, region, &ITEM_PARENT_LOCATOR, 20)? {
        Some(b) => Some(parse_locator(b)?),
        None => None,
    };
    if has_parent && locator.is_none() {
        return Err(Error::invalid("a differencing disk (HasParent) without a parent locator item"));
    }
    Ok(Metadata {
        block_size,
        leave_allocated: flags & 1 != 0,
        has_parent,
        virtual_size: size,
        logical_sector: lss,
        physical_sector: pss,
        page83,
        locator,
    })
}

/// Parses a parent locator item: its type and key/value pairs (UTF-16LE, no NUL).
pub fn parse_locator(b: &[u8]) -> Result<Vec<(String, String)>> {
    let ty: Guid = b.get(..16).and_then(|s| s.try_into().ok()).unwrap_or(ZERO_GUID);
    if ty != LOCATOR_TYPE_VHDX {
        return Err(Error::unsupported(format!("parent locator of unknown type {}", guid_string(&ty))));
    }
    let count = le::u16(b, 18) as usize;
    if 20 + count * 12 > b.len() {
        return Err(Error::invalid(format!("parent locator: {count} entries do not fit in its {} bytes", b.len())));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let e = &b[20 + i * 12..32 + i * 12];
        let text = |off: u32, len: u16, what: &str| -> Result<String> {
            let s = b.get(off as usize..off as usize + len as usize).ok_or_else(|| {
                Error::invalid(format!("parent locator entry {i}: {what} ({len} bytes at {off}) past the item"))
            })?;
            crate::parent::decode_utf16le(s, &format!("parent locator entry {i} {what}"))
        };
        let key = text(le::u32(e, 0), le::u16(e, 8), "key")?;
        let value = text(le::u32(e, 4), le::u16(e, 10), "value")?;
        out.push((key, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_round_trip_in_mixed_endian_order() {
        assert_eq!(&REGION_BAT[..4], &[0x66, 0x77, 0xC2, 0x2D]);
        assert_eq!(&REGION_BAT[4..8], &[0x23, 0xF6, 0x00, 0x42]);
        assert_eq!(&REGION_BAT[8..], &[0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08]);
        assert_eq!(guid_string(&REGION_BAT), "2DC27766-F623-4200-9D64-115E9BFD4A08");
        assert_eq!(parse_guid(b"{2dc27766-f623-4200-9d64-115e9bfd4a08}"), Some(REGION_BAT));
        for bad in [&b"2DC27766-F623-4200-9D64-115E9BFD4A0"[..], b"2DC27766xF623-4200-9D64-115E9BFD4A08", b"{}", b""] {
            assert_eq!(parse_guid(bad), None);
        }
    }

    fn header(seq: u64) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[..4].copy_from_slice(b"head");
        b[8..16].copy_from_slice(&seq.to_le_bytes());
        b[66..68].copy_from_slice(&1u16.to_le_bytes());
        let c = crc::crc32c(&b);
        b[4..8].copy_from_slice(&c.to_le_bytes());
        b
    }

    #[test]
    fn the_valid_header_with_the_higher_sequence_wins() {
        let (a, b) = (header(5), header(7));
        let pick = |x: &[u8], y: &[u8]| choose_header(parse_header(x), parse_header(y)).map(|(h, i)| (h.sequence, i));
        assert_eq!(pick(&a, &b).unwrap(), (7, 2));
        assert_eq!(pick(&b, &a).unwrap(), (7, 1));
        let mut bad = b.clone();
        bad[100] ^= 1;
        assert_eq!(pick(&a, &bad).unwrap(), (5, 1));
        let mut bad1 = a.clone();
        bad1[0] = b'x';
        let e = pick(&bad1, &bad).unwrap_err().to_string();
        assert!(e.contains("header 1") && e.contains("signature") && e.contains("CRC-32C"), "{e}");
    }

    #[test]
    fn unknown_required_regions_and_items_are_refused_by_name() {
        let mut t = vec![0u8; TABLE_LEN];
        t[..4].copy_from_slice(b"regi");
        t[8] = 3;
        let ent = |t: &mut Vec<u8>, i: usize, id: Guid, off: u64, req: u32| {
            let e = 16 + i * 32;
            t[e..e + 16].copy_from_slice(&id);
            t[e + 16..e + 24].copy_from_slice(&off.to_le_bytes());
            t[e + 24..e + 28].copy_from_slice(&(MIB as u32).to_le_bytes());
            t[e + 28..e + 32].copy_from_slice(&req.to_le_bytes());
        };
        ent(&mut t, 0, REGION_BAT, 2 * MIB, 1);
        ent(&mut t, 1, REGION_METADATA, 3 * MIB, 1);
        let other = parse_guid(b"11111111-2222-3333-4444-555555555555").unwrap();
        ent(&mut t, 2, other, 4 * MIB, 0);
        let fix = |t: &mut Vec<u8>| {
            t[4..8].fill(0);
            let c = crc::crc32c(t);
            t[4..8].copy_from_slice(&c.to_le_bytes());
        };
        fix(&mut t);
        let r = parse_regions(&t).unwrap();
        assert_eq!(r.bat, Region { offset: 2 * MIB, length: MIB });
        ent(&mut t, 2, other, 4 * MIB, 1);
        fix(&mut t);
        let e = parse_regions(&t).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
        assert!(e.to_string().contains("11111111-2222-3333-4444-555555555555"), "{e}");

        let mut m = vec![0u8; TABLE_LEN];
        m[..8].copy_from_slice(b"metadata");
        m[10] = 1;
        m[32..48].copy_from_slice(&other);
        m[48..52].copy_from_slice(&(64u32 << 10).to_le_bytes());
        m[52..56].copy_from_slice(&8u32.to_le_bytes());
        assert!(parse_metadata_table(&m, MIB).unwrap().is_empty());
        m[56] = 4;
        let e = parse_metadata_table(&m, MIB).unwrap_err();
        assert!(e.to_string().contains("11111111-2222-3333-4444-555555555555"), "{e}");
    }
}
