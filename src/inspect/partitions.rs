//! MBR and GPT partition tables, and disks that are one bare filesystem.
//!
//! Own code rather than `mbrman`/`gptman` (the crates `dependencies.md` §8 tested on good
//! images): inspection reads hostile images, and gptman 3.1.1 sizes a `Vec` from the header's
//! 32-bit entry count and multiplies `partition_entry_lba * sector_size` unchecked
//! (`src/lib.rs:221-224`), and mbrman follows an EBR chain as long as it climbs. Here every
//! count is bounded and every offset checked; the parsers are pure (bytes in) so they fuzz.
//!
//! Layouts (UEFI 2.10 §5.2–5.3): MBR at LBA 0 — boot code 0..440, four 16-byte entries at 446
//! (`status`, CHS, `type` at +4, CHS, `first LBA` u32 at +8, `sectors` u32 at +12), `55 AA` at
//! 510. GPT header at LBA 1 — `EFI PART`, revision, header size (+12), header CRC32 (+16),
//! entries LBA (+72), entry count (+80), entry size (+84), entries CRC32 (+88); each entry:
//! type GUID (0), unique GUID (16), first LBA (32), last LBA inclusive (40), attributes (48),
//! UTF-16LE name (56..128).

use super::{Disk, Error, ErrorKind, Result};

/// Sector size assumed for MBR and GPT (512e and 512n disks; 4Kn is not read).
pub const SECTOR: u64 = 512;
/// Most GPT entries read (the usual array holds 128).
pub const MAX_GPT_ENTRIES: u32 = 1024;
/// Most logical partitions followed in an MBR extended partition.
pub const MAX_LOGICAL: usize = 64;

/// How the disk is laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// A DOS partition table.
    Mbr,
    /// A GUID partition table.
    Gpt,
    /// No table: the disk is one filesystem (an xend `sda1`-style image).
    Bare,
    /// Nothing recognised.
    #[default]
    Unknown,
}

/// What a partition holds, by its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartKind {
    /// Linux filesystem (MBR 0x83, GPT Linux data).
    Linux,
    /// Linux swap.
    Swap,
    /// LVM physical volume.
    Lvm,
    /// EFI system partition.
    Esp,
    /// GPT BIOS boot partition (GRUB's core image).
    BiosBoot,
    /// NTFS / FAT / Microsoft basic data.
    Windows,
    /// MBR extended partition (its logical partitions are listed separately).
    Extended,
    /// The whole disk is the filesystem.
    WholeDisk,
    /// Anything else.
    Unknown,
}

/// One partition.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Partition {
    /// Linux numbering: 1–4 primary, 5… logical; GPT entry index + 1; 0 for a bare filesystem.
    pub number: u32,
    /// Byte offset on the disk.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// What it holds.
    pub kind: PartKind,
    /// The raw type: `0x83` or a GPT type GUID.
    pub type_id: String,
    /// MBR active flag.
    pub bootable: bool,
}

impl Partition {
    /// `partition 2`, or `whole disk`.
    pub fn describe(&self) -> String {
        if self.kind == PartKind::WholeDisk {
            "whole disk".into()
        } else {
            format!("partition {}", self.number)
        }
    }
}

/// A disk's layout.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Table {
    /// The scheme.
    pub scheme: Scheme,
    /// Partitions in table order.
    pub partitions: Vec<Partition>,
    /// The MBR holds boot code (bytes 0..440 are not all zero).
    pub mbr_boot_code: bool,
}

impl Table {
    /// True when the disk has a GPT BIOS boot partition.
    pub fn has_bios_boot(&self) -> bool {
        self.partitions.iter().any(|p| p.kind == PartKind::BiosBoot)
    }
}

const GPT_ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const GPT_BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";
const GPT_LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
const GPT_LINUX_ROOT_X86_64: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
const GPT_LVM: &str = "E6D6D379-F507-44C2-A23C-238F2A3DF928";
const GPT_SWAP: &str = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F";
const GPT_MS_BASIC: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";

/// Reads the layout of `disk`: GPT (behind a protective MBR), MBR, or a bare ext filesystem.
pub fn read_table(disk: &Disk) -> Result<Table> {
    if disk.len() < SECTOR {
        return Ok(Table::default());
    }
    let mut lba0 = [0u8; 512];
    disk.read_at(&mut lba0, 0)?;
    let Some(mbr) = parse_mbr(&lba0) else {
        return bare(disk);
    };
    let boot_code = lba0[..440].iter().any(|&b| b != 0);
    if mbr.iter().any(|e| e.kind == 0xEE) {
        if disk.len() < 2 * SECTOR {
            return Err(Error::new(ErrorKind::Corrupt, "protective MBR on a disk too small for a GPT header"));
        }
        let mut hdr = [0u8; 512];
        disk.read_at(&mut hdr, SECTOR)?;
        let h = parse_gpt_header(&hdr)?;
        let bytes = u64::from(h.count) * u64::from(h.entry_size);
        let at = h.entries_lba.checked_mul(SECTOR).ok_or_else(|| corrupt("GPT entry array LBA overflows"))?;
        let entries = disk.read_vec(at, bytes as usize)?;
        if entries.len() as u64 != bytes {
            return Err(corrupt(format!("GPT entry array at byte {at} runs past the end of the disk")));
        }
        if crc32(&entries) != h.entries_crc {
            return Err(corrupt("GPT entry array CRC32 does not match its header"));
        }
        let partitions = parse_gpt_entries(&entries, h.entry_size, disk.len())?;
        return Ok(Table { scheme: Scheme::Gpt, partitions, mbr_boot_code: boot_code });
    }
    let mut partitions = Vec::new();
    for (i, e) in mbr.iter().enumerate() {
        if e.kind == 0 || e.sectors == 0 {
            continue;
        }
        let p = mbr_partition(i as u32 + 1, e, 0, disk.len())?;
        if p.kind == PartKind::Extended {
            logical(disk, u64::from(e.first_lba), &mut partitions)?;
        }
        partitions.push(p);
    }
    partitions.sort_by_key(|p| p.number);
    Ok(Table { scheme: Scheme::Mbr, partitions, mbr_boot_code: boot_code })
}

/// A disk without a table: a bare ext filesystem (superblock magic at byte 1080), a bare NTFS
/// or BitLocker volume (OEM id), or nothing.
fn bare(disk: &Disk) -> Result<Table> {
    if let Some(t) = super::boot_sector_type(disk)?.filter(|t| *t != "fat") {
        let whole = Partition {
            number: 0,
            start: 0,
            len: disk.len(),
            kind: PartKind::WholeDisk,
            type_id: t.into(),
            bootable: false,
        };
        return Ok(Table { scheme: Scheme::Bare, partitions: vec![whole], mbr_boot_code: false });
    }
    if disk.len() >= 2048 {
        let mut m = [0u8; 2];
        disk.read_at(&mut m, 1080)?;
        let head = disk.read_vec(0, 2048)?;
        let pv = (0..4).any(|i| &head[i * 512..i * 512 + 8] == b"LABELONE");
        if m == [0x53, 0xEF] || pv {
            let whole = Partition {
                number: 0,
                start: 0,
                len: disk.len(),
                kind: PartKind::WholeDisk,
                type_id: if pv { "lvm2" } else { "ext" }.into(),
                bootable: false,
            };
            return Ok(Table { scheme: Scheme::Bare, partitions: vec![whole], mbr_boot_code: false });
        }
    }
    Ok(Table::default())
}

fn corrupt(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupt, what)
}

/// One MBR entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MbrEntry {
    /// Status byte (0x80 = active).
    pub status: u8,
    /// Partition type.
    pub kind: u8,
    /// First LBA (relative to the table's base).
    pub first_lba: u32,
    /// Length in sectors.
    pub sectors: u32,
}

/// The four entries of an MBR or EBR sector, or `None` when the sector is not one: no `55 AA`,
/// a status byte other than 0/0x80, or a FAT/NTFS boot sector (which also ends in `55 AA`).
pub fn parse_mbr(sector: &[u8]) -> Option<[MbrEntry; 4]> {
    if sector.len() < 512 || sector[510..512] != [0x55, 0xAA] {
        return None;
    }
    if &sector[3..11] == b"NTFS    "
        || &sector[3..11] == b"-FVE-FS-"
        || &sector[82..87] == b"FAT32"
        || &sector[54..59] == b"FAT1"
    {
        return None;
    }
    let mut out = [MbrEntry { status: 0, kind: 0, first_lba: 0, sectors: 0 }; 4];
    for (i, e) in out.iter_mut().enumerate() {
        let b = &sector[446 + 16 * i..462 + 16 * i];
        if b[0] != 0 && b[0] != 0x80 {
            return None;
        }
        *e = MbrEntry { status: b[0], kind: b[4], first_lba: le32(&b[8..]), sectors: le32(&b[12..]) };
    }
    Some(out)
}

fn mbr_partition(number: u32, e: &MbrEntry, base_lba: u64, disk_len: u64) -> Result<Partition> {
    let start = (base_lba + u64::from(e.first_lba)) * SECTOR;
    let len = u64::from(e.sectors) * SECTOR;
    if start.checked_add(len).is_none_or(|end| end > disk_len) {
        return Err(corrupt(format!(
            "MBR partition {number} (sectors {}+{}) runs past the end of the disk ({disk_len} bytes)",
            base_lba + u64::from(e.first_lba),
            e.sectors
        )));
    }
    let kind = match e.kind {
        0x83 => PartKind::Linux,
        0x82 => PartKind::Swap,
        0x8E => PartKind::Lvm,
        0xEF => PartKind::Esp,
        0x05 | 0x0F | 0x85 => PartKind::Extended,
        0x07 | 0x0B | 0x0C | 0x0E | 0x06 | 0x04 | 0x01 | 0x27 => PartKind::Windows,
        _ => PartKind::Unknown,
    };
    Ok(Partition { number, start, len, kind, type_id: format!("0x{:02x}", e.kind), bootable: e.status == 0x80 })
}

/// Follows the EBR chain of the extended partition at `ext_lba`: at most [`MAX_LOGICAL`] links,
/// each strictly after the one before.
fn logical(disk: &Disk, ext_lba: u64, out: &mut Vec<Partition>) -> Result<()> {
    let mut rel = 0u64;
    for n in 0..MAX_LOGICAL {
        let ebr_lba = ext_lba + rel;
        let at = ebr_lba.checked_mul(SECTOR).filter(|&a| a + SECTOR <= disk.len());
        let Some(at) = at else {
            return Err(corrupt(format!("EBR at sector {ebr_lba} lies past the end of the disk")));
        };
        let mut s = [0u8; 512];
        disk.read_at(&mut s, at)?;
        let Some(e) = parse_mbr(&s) else {
            return if n == 0 { Ok(()) } else { Err(corrupt(format!("EBR at sector {ebr_lba} has no signature"))) };
        };
        if e[0].kind != 0 && e[0].sectors != 0 {
            out.push(mbr_partition(5 + n as u32, &e[0], ebr_lba, disk.len())?);
        }
        let next = u64::from(e[1].first_lba);
        if e[1].kind == 0 || next == 0 {
            return Ok(());
        }
        if next <= rel {
            return Err(corrupt(format!("EBR chain at sector {ebr_lba} points backwards")));
        }
        rel = next;
    }
    Err(corrupt(format!("more than {MAX_LOGICAL} logical partitions")))
}

/// The fields of a GPT header that inspection uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GptHeader {
    /// First LBA of the entry array.
    pub entries_lba: u64,
    /// Number of entries.
    pub count: u32,
    /// Bytes per entry.
    pub entry_size: u32,
    /// CRC32 of the entry array.
    pub entries_crc: u32,
}

/// Parses and checks the GPT header sector (signature, size, CRC32, bounded entry count).
pub fn parse_gpt_header(s: &[u8]) -> Result<GptHeader> {
    if s.len() < 92 || &s[..8] != b"EFI PART" {
        return Err(corrupt("protective MBR but no GPT header (\"EFI PART\") at LBA 1"));
    }
    let size = le32(&s[12..]) as usize;
    if !(92..=s.len()).contains(&size) {
        return Err(corrupt(format!("GPT header size {size} is not between 92 and {}", s.len())));
    }
    let mut h = s[..size].to_vec();
    h[16..20].fill(0);
    if crc32(&h) != le32(&s[16..]) {
        return Err(corrupt("GPT header CRC32 does not match"));
    }
    let count = le32(&s[80..]);
    let entry_size = le32(&s[84..]);
    if count > MAX_GPT_ENTRIES {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("GPT with {count} entries (at most {MAX_GPT_ENTRIES} read)"),
        ));
    }
    if !(128..=4096).contains(&entry_size) || !entry_size.is_multiple_of(8) {
        return Err(corrupt(format!("GPT entry size {entry_size} (128, 256, ... expected)")));
    }
    Ok(GptHeader { entries_lba: le64(&s[72..]), count, entry_size, entries_crc: le32(&s[88..]) })
}

/// The used entries of a GPT entry array.
pub fn parse_gpt_entries(a: &[u8], entry_size: u32, disk_len: u64) -> Result<Vec<Partition>> {
    let mut out = Vec::new();
    for (i, e) in a.chunks_exact(entry_size as usize).enumerate() {
        if e[..16].iter().all(|&b| b == 0) {
            continue;
        }
        let ty = guid(&e[..16]);
        let (first, last) = (le64(&e[32..]), le64(&e[40..]));
        let number = i as u32 + 1;
        let range = last
            .checked_sub(first)
            .and_then(|n| n.checked_add(1))
            .and_then(|n| n.checked_mul(SECTOR))
            .and_then(|len| first.checked_mul(SECTOR).map(|s| (s, len)))
            .filter(|&(s, len)| s.checked_add(len).is_some_and(|end| end <= disk_len));
        let Some((start, len)) = range else {
            return Err(corrupt(format!("GPT partition {number} (LBA {first}..={last}) does not fit the disk")));
        };
        let kind = match ty.as_str() {
            GPT_ESP => PartKind::Esp,
            GPT_BIOS_BOOT => PartKind::BiosBoot,
            GPT_LINUX | GPT_LINUX_ROOT_X86_64 => PartKind::Linux,
            GPT_LVM => PartKind::Lvm,
            GPT_SWAP => PartKind::Swap,
            GPT_MS_BASIC => PartKind::Windows,
            _ => PartKind::Unknown,
        };
        out.push(Partition { number, start, len, kind, type_id: ty, bootable: false });
    }
    Ok(out)
}

/// A GUID in its text form (first three fields little-endian).
pub fn guid(b: &[u8]) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        le32(b),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// CRC-32 (IEEE, reflected, as GPT uses).
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::testdisk::{mem_disk, DiskBuilder};

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn mbr_primary_and_logical() {
        let mut b = DiskBuilder::new(4 << 20);
        b.mbr(&[(0x83, 2048, 2048, true), (0x05, 4096, 4096, false)]);
        b.ebr(4096, &[(0x83, 2048, 512)]);
        let t = read_table(&mem_disk(b.finish())).unwrap();
        assert_eq!(t.scheme, Scheme::Mbr);
        assert!(!t.mbr_boot_code);
        let got: Vec<_> = t.partitions.iter().map(|p| (p.number, p.start, p.len, p.kind, p.bootable)).collect();
        assert_eq!(
            got,
            vec![
                (1, 2048 * 512, 2048 * 512, PartKind::Linux, true),
                (2, 4096 * 512, 4096 * 512, PartKind::Extended, false),
                (5, (4096 + 2048) * 512, 512 * 512, PartKind::Linux, false),
            ]
        );
    }

    #[test]
    fn gpt_with_esp_and_bios_boot() {
        let mut b = DiskBuilder::new(4 << 20);
        b.gpt(&[(GPT_BIOS_BOOT, 34, 2047), (GPT_ESP, 2048, 4095), (GPT_LINUX, 4096, 8000)]);
        let t = read_table(&mem_disk(b.finish())).unwrap();
        assert_eq!(t.scheme, Scheme::Gpt);
        assert!(t.has_bios_boot());
        let kinds: Vec<_> = t.partitions.iter().map(|p| (p.number, p.kind, p.start)).collect();
        assert_eq!(
            kinds,
            vec![(1, PartKind::BiosBoot, 34 * 512), (2, PartKind::Esp, 2048 * 512), (3, PartKind::Linux, 4096 * 512)]
        );
    }

    #[test]
    fn gpt_bad_crc_and_huge_count_are_errors_not_panics() {
        let mut b = DiskBuilder::new(1 << 20);
        b.gpt(&[(GPT_LINUX, 34, 100)]);
        let mut img = b.finish();
        img[512 + 88] ^= 1; // entries CRC
                            // header CRC now wrong too
        assert!(read_table(&mem_disk(img.clone())).is_err());
        let mut h = img[512..604].to_vec();
        h[80..84].copy_from_slice(&u32::MAX.to_le_bytes());
        h[16..20].fill(0);
        let c = crc32(&h);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        img[512..604].copy_from_slice(&h);
        let e = read_table(&mem_disk(img)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    }

    #[test]
    fn partition_past_the_end_and_ebr_loop() {
        let mut b = DiskBuilder::new(1 << 20);
        b.mbr(&[(0x83, 2048, 1 << 20, false)]);
        let e = read_table(&mem_disk(b.finish())).unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
        let mut b = DiskBuilder::new(1 << 20);
        b.mbr(&[(0x05, 100, 1000, false)]);
        b.ebr_raw(100, &[(0x83, 1, 10), (0x05, 0, 10)]); // next link = itself
        let t = read_table(&mem_disk(b.finish()));
        assert!(t.is_ok(), "a zero link ends the chain");
    }

    #[test]
    fn ntfs_boot_sector_is_not_an_mbr_and_empty_disk_is_unknown() {
        let mut s = vec![0u8; 512];
        s[3..11].copy_from_slice(b"NTFS    ");
        s[510] = 0x55;
        s[511] = 0xAA;
        assert!(parse_mbr(&s).is_none());
        let t = read_table(&mem_disk(vec![0; 4096])).unwrap();
        assert_eq!(t.scheme, Scheme::Unknown);
        assert!(t.partitions.is_empty());
    }
}
