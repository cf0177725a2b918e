//! The VMDK text descriptor: a pure parser, bytes in, [`Descriptor`] out.
//!
//! ```text
//!   # Disk DescriptorFile                 header:  version, encoding, CID, parentCID,
//!   version=1                                      createType, parentFileNameHint, ...
//!   CID=6a0d58fa
//!   createType="twoGbMaxExtentSparse"
//!   RW 4192256 SPARSE "test-s001.vmdk"    extents: ACCESS SECTORS TYPE ["FILE" [START [..]]]
//!   RDONLY 2048 ZERO
//!   ddb.adapterType = "ide"               disk database: every ddb.* key, kept verbatim
//! ```
//!
//! Sections are recognised by content, not by their comment headers (VirtualBox writes
//! `# The disk Data Base`, others omit the headers). Lines end in LF or CRLF; keys are
//! case-insensitive; values may be quoted. The text is decoded with the declared `encoding=`
//! (UTF-8, windows-1252, GBK, Big5, Shift_JIS, anything else encoding_rs knows), or as UTF-8
//! (lossily) when no encoding is declared or it is unknown. An embedded descriptor (inside a
//! KDMV file) ends at its first NUL byte. See `disk-formats.md` §1.2.2.

use std::fmt;

use crate::error::{Error, Result};

/// Largest descriptor we parse (qemu caps descriptor reads at 1 MiB too).
pub const MAX_DESCRIPTOR_LEN: usize = 1 << 20;

/// `parentCID` value meaning "no parent".
pub const NO_PARENT_CID: u32 = 0xffff_ffff;

/// How an extent may be accessed (first field of an extent line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `RW`: read-write.
    ReadWrite,
    /// `RDONLY`: read-only (ovftool writes these; reads normally).
    ReadOnly,
    /// `NOACCESS`: must not be read (unselected partitions of a raw-device disk); reads as zeros.
    NoAccess,
}

impl Access {
    fn parse(s: &str) -> Option<Access> {
        match s.to_ascii_uppercase().as_str() {
            "RW" => Some(Access::ReadWrite),
            "RDONLY" => Some(Access::ReadOnly),
            "NOACCESS" => Some(Access::NoAccess),
            _ => None,
        }
    }

    /// The keyword as written in descriptors.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadWrite => "RW",
            Access::ReadOnly => "RDONLY",
            Access::NoAccess => "NOACCESS",
        }
    }
}

/// The type of an extent (third field of an extent line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtentType {
    /// `FLAT`: raw bytes in a file, from a start sector.
    Flat,
    /// `SPARSE`: a hosted sparse file (KDMV), or COWD (sniffed by magic).
    Sparse,
    /// `ZERO`: reads as zeros, no file.
    Zero,
    /// `VMFS`: ESXi flat file (FLAT at offset 0).
    Vmfs,
    /// `VMFSSPARSE`: ESXi COWD delta ("redo log").
    VmfsSparse,
    /// `SESPARSE`: ESXi space-efficient sparse delta.
    SeSparse,
    /// `VMFSRDM`: raw device mapping (points at a LUN).
    VmfsRdm,
    /// `VMFSRAW`: raw device (points at a LUN).
    VmfsRaw,
    /// Anything else, as written.
    Other(String),
}

impl ExtentType {
    fn parse(s: &str) -> ExtentType {
        match s.to_ascii_uppercase().as_str() {
            "FLAT" => ExtentType::Flat,
            "SPARSE" => ExtentType::Sparse,
            "ZERO" => ExtentType::Zero,
            "VMFS" => ExtentType::Vmfs,
            "VMFSSPARSE" => ExtentType::VmfsSparse,
            "SESPARSE" => ExtentType::SeSparse,
            "VMFSRDM" => ExtentType::VmfsRdm,
            "VMFSRAW" => ExtentType::VmfsRaw,
            _ => ExtentType::Other(s.to_string()),
        }
    }
}

impl fmt::Display for ExtentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExtentType::Flat => "FLAT",
            ExtentType::Sparse => "SPARSE",
            ExtentType::Zero => "ZERO",
            ExtentType::Vmfs => "VMFS",
            ExtentType::VmfsSparse => "VMFSSPARSE",
            ExtentType::SeSparse => "SESPARSE",
            ExtentType::VmfsRdm => "VMFSRDM",
            ExtentType::VmfsRaw => "VMFSRAW",
            ExtentType::Other(s) => s,
        })
    }
}

/// One extent line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtentLine {
    /// Access mode.
    pub access: Access,
    /// Size of the extent in 512-byte sectors.
    pub sectors: u64,
    /// Extent type.
    pub kind: ExtentType,
    /// File name (decoded), absent for `ZERO` extents.
    pub file: Option<String>,
    /// Start sector in the file (`FLAT` only; 0 when absent).
    pub start_sector: u64,
    /// Line number in the descriptor (1-based), for messages.
    pub line: usize,
}

/// A parsed descriptor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// `version=` (1, 2 or 3).
    pub version: Option<u32>,
    /// `encoding=` as written.
    pub encoding: Option<String>,
    /// `CID=`: content id.
    pub cid: Option<u32>,
    /// `parentCID=`; [`NO_PARENT_CID`] means none.
    pub parent_cid: Option<u32>,
    /// `createType=`, unquoted.
    pub create_type: Option<String>,
    /// `parentFileNameHint=`, decoded.
    pub parent_hint: Option<String>,
    /// The extent lines, in order.
    pub extents: Vec<ExtentLine>,
    /// Every `ddb.*` key with its unquoted value, in file order (key as written).
    pub ddb: Vec<(String, String)>,
    /// Other `key=value` header lines (isNativeSnapshot, changeTrackPath, ...).
    pub other: Vec<(String, String)>,
}

impl Descriptor {
    /// True when this descriptor names a parent (`parentCID` other than `ffffffff`, or a
    /// `parentFileNameHint`).
    pub fn has_parent(&self) -> bool {
        self.parent_cid.is_some_and(|c| c != NO_PARENT_CID) || self.parent_hint.is_some()
    }

    /// Value of the `ddb.` key `name` (without the `ddb.` prefix, case-insensitive).
    pub fn ddb(&self, name: &str) -> Option<&str> {
        self.ddb
            .iter()
            .find(|(k, _)| k.len() == name.len() + 4 && k[4..].eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Virtual size in sectors: the sum of the extent sizes.
    pub fn total_sectors(&self) -> Result<u64> {
        self.extents.iter().try_fold(0u64, |acc, e| {
            acc.checked_add(e.sectors)
                .ok_or_else(|| Error::invalid(format!("descriptor extent sizes overflow at line {}", e.line)))
        })
    }
}

/// Decodes `raw` (up to its first NUL) with the encoding it declares.
///
/// Returns the text and the name of the encoding actually used.
pub fn decode(raw: &[u8]) -> (String, &'static str) {
    let raw = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
    let raw = &raw[..raw.len().min(MAX_DESCRIPTOR_LEN)];
    let label = declared_encoding(raw);
    let enc = label.and_then(|l| encoding_rs::Encoding::for_label(l.as_bytes())).unwrap_or(encoding_rs::UTF_8);
    // `decode_without_bom_handling`: a descriptor has no BOM; replacement characters only
    // appear for bytes that are invalid in the declared encoding.
    let (text, _) = enc.decode_without_bom_handling(raw);
    (text.into_owned(), enc.name())
}

/// The `encoding=` value, found on the raw bytes (the key and the label are ASCII in every
/// encoding VMware writes).
fn declared_encoding(raw: &[u8]) -> Option<String> {
    for line in raw.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        if let Some((k, v)) = line.split_once('=') {
            if k.trim().eq_ignore_ascii_case("encoding") {
                return Some(unquote(v.trim()).to_string());
            }
        }
    }
    None
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

fn parse_hex_u32(key: &str, v: &str, line: usize) -> Result<u32> {
    let t = v.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    u32::from_str_radix(t, 16)
        .map_err(|_| Error::invalid(format!("descriptor line {line}: {key}={v:?} is not a 32-bit hexadecimal number")))
}

/// Parses descriptor bytes (stopping at the first NUL, at most [`MAX_DESCRIPTOR_LEN`]).
pub fn parse(raw: &[u8]) -> Result<Descriptor> {
    let (text, _) = decode(raw);
    parse_str(&text)
}

/// Parses decoded descriptor text.
pub fn parse_str(text: &str) -> Result<Descriptor> {
    let mut d = Descriptor::default();
    for (i, line) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_ascii_whitespace().next().unwrap_or("");
        if let Some(access) = Access::parse(first) {
            if !first.contains('=') {
                d.extents.push(parse_extent(line, access, n)?);
                continue;
            }
        }
        let Some((k, v)) = line.split_once('=') else {
            // qemu skips lines it does not understand; so do we.
            continue;
        };
        let key = k.trim();
        let value = unquote(v);
        match key.to_ascii_lowercase().as_str() {
            "version" => {
                d.version =
                    Some(value.trim().parse().map_err(|_| {
                        Error::invalid(format!("descriptor line {n}: version={value:?} is not a number"))
                    })?)
            }
            "encoding" => d.encoding = Some(value.to_string()),
            "cid" => d.cid = Some(parse_hex_u32("CID", value, n)?),
            "parentcid" => d.parent_cid = Some(parse_hex_u32("parentCID", value, n)?),
            "createtype" => d.create_type = Some(value.to_string()),
            "parentfilenamehint" => {
                if !value.is_empty() {
                    d.parent_hint = Some(value.to_string())
                }
            }
            k if k.starts_with("ddb.") => d.ddb.push((key.to_string(), value.to_string())),
            _ => d.other.push((key.to_string(), value.to_string())),
        }
    }
    Ok(d)
}

/// `ACCESS SECTORS TYPE ["FILENAME" [START_SECTOR [PARTITION_UUID DEVICE_ID]]]`.
fn parse_extent(line: &str, access: Access, n: usize) -> Result<ExtentLine> {
    let bad = |what: &str| Error::invalid(format!("descriptor line {n}: {what}: {line:?}"));
    let mut rest = line;
    let word = |rest: &mut &str| -> Option<String> {
        let r = rest.trim_start();
        if r.is_empty() {
            return None;
        }
        let end = r.find(char::is_whitespace).unwrap_or(r.len());
        let w = r[..end].to_string();
        *rest = &r[end..];
        Some(w)
    };
    let _access = word(&mut rest);
    let sectors = word(&mut rest).ok_or_else(|| bad("extent line without a size"))?;
    let sectors: u64 = sectors.parse().map_err(|_| bad("extent size is not a number of sectors"))?;
    let kind = word(&mut rest).ok_or_else(|| bad("extent line without a type"))?;
    let kind = ExtentType::parse(&kind);
    let r = rest.trim_start();
    let (file, after) = if let Some(q) = r.strip_prefix('"') {
        let end = q.find('"').ok_or_else(|| bad("unterminated quoted file name"))?;
        (Some(q[..end].to_string()), &q[end + 1..])
    } else if r.is_empty() {
        (None, r)
    } else {
        // An unquoted file name (no spaces).
        let end = r.find(char::is_whitespace).unwrap_or(r.len());
        (Some(r[..end].to_string()), &r[end..])
    };
    let mut after = after;
    let start_sector = match word(&mut after) {
        None => 0,
        Some(s) => s.parse().map_err(|_| bad("extent start sector is not a number"))?,
    };
    if file.as_deref() == Some("") {
        return Err(bad("empty extent file name"));
    }
    Ok(ExtentLine { access, sectors, kind, file, start_sector, line: n })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKSTATION: &str = "# Disk DescriptorFile\r\n\
version=1\r\n\
encoding=\"UTF-8\"\r\n\
CID=6a0d58fa\r\n\
parentCID=ffffffff\r\n\
isNativeSnapshot=\"no\"\r\n\
createType=\"twoGbMaxExtentSparse\"\r\n\
\r\n\
# Extent description\r\n\
RW 4192256 SPARSE \"test-s001.vmdk\"\r\n\
RW 1048576 FLAT \"test f001.vmdk\" 0\r\n\
RDONLY 2048 ZERO\r\n\
NOACCESS 2048 FLAT \"\\\\.\\PhysicalDrive0\" 63\r\n\
\r\n\
# The Disk Data Base \r\n\
#DDB\r\n\
\r\n\
ddb.virtualHWVersion = \"4\"\r\n\
ddb.geometry.cylinders = \"16383\"\r\n\
ddb.adapterType = \"ide\"\r\n\
ddb.uuid = \"60 00 C2 9a 12 34 56 78-9a bc de f0 12 34 56 78\"\r\n";

    #[test]
    fn parses_a_workstation_descriptor_with_crlf() {
        let d = parse(WORKSTATION.as_bytes()).unwrap();
        assert_eq!(d.version, Some(1));
        assert_eq!(d.cid, Some(0x6a0d58fa));
        assert_eq!(d.parent_cid, Some(NO_PARENT_CID));
        assert!(!d.has_parent());
        assert_eq!(d.create_type.as_deref(), Some("twoGbMaxExtentSparse"));
        assert_eq!(d.extents.len(), 4);
        assert_eq!(d.extents[0].kind, ExtentType::Sparse);
        assert_eq!(d.extents[0].sectors, 4192256);
        assert_eq!(d.extents[0].file.as_deref(), Some("test-s001.vmdk"));
        assert_eq!(d.extents[1].file.as_deref(), Some("test f001.vmdk"));
        assert_eq!(d.extents[2].access, Access::ReadOnly);
        assert_eq!(d.extents[2].kind, ExtentType::Zero);
        assert_eq!(d.extents[2].file, None);
        assert_eq!(d.extents[3].access, Access::NoAccess);
        assert_eq!(d.extents[3].file.as_deref(), Some("\\\\.\\PhysicalDrive0"));
        assert_eq!(d.extents[3].start_sector, 63);
        assert_eq!(d.extents[3].line, 13);
        assert_eq!(d.ddb("adapterType"), Some("ide"));
        assert_eq!(d.ddb("ADAPTERTYPE"), Some("ide"));
        assert_eq!(d.ddb.len(), 4);
        assert_eq!(d.other, vec![("isNativeSnapshot".into(), "no".into())]);
        assert_eq!(d.total_sectors().unwrap(), 4192256 + 1048576 + 4096);
    }

    #[test]
    fn keys_are_case_insensitive_and_sections_found_by_content() {
        let d = parse(
            b"createtype=monolithicFlat\nCid=FFFFFFFE\nPARENTCID=0x12\n\
              parentFileNameHint=\"C:\\VMs\\base.vmdk\"\nrw 10 flat x.raw 5 uuid dev\n\
              DDB.AdapterType=lsilogic\n",
        )
        .unwrap();
        assert_eq!(d.create_type.as_deref(), Some("monolithicFlat"));
        assert_eq!(d.cid, Some(0xfffffffe));
        assert_eq!(d.parent_cid, Some(0x12));
        assert_eq!(d.parent_hint.as_deref(), Some("C:\\VMs\\base.vmdk"));
        assert!(d.has_parent());
        assert_eq!(d.extents[0].file.as_deref(), Some("x.raw"));
        assert_eq!(d.extents[0].start_sector, 5);
        assert_eq!(d.ddb("adaptertype"), Some("lsilogic"));
    }

    #[test]
    fn embedded_descriptor_stops_at_nul() {
        let mut raw = b"createType=\"monolithicSparse\"\nRW 8 SPARSE \"a.vmdk\"\n".to_vec();
        raw.extend_from_slice(&[0u8; 100]);
        raw.extend_from_slice(b"RW 8 SPARSE \"b.vmdk\"\n");
        let d = parse(&raw).unwrap();
        assert_eq!(d.extents.len(), 1);
    }

    #[test]
    fn declared_encodings_decode_file_names() {
        // "café" in windows-1252 is 63 61 66 e9.
        let mut raw = b"encoding=\"windows-1252\"\nRW 8 FLAT \"caf".to_vec();
        raw.push(0xe9);
        raw.extend_from_slice(b".vmdk\" 0\n");
        let d = parse(&raw).unwrap();
        assert_eq!(d.extents[0].file.as_deref(), Some("café.vmdk"));
        // Shift_JIS: "ディスク" = 83 66 83 42 83 58 83 4e.
        let mut raw = b"encoding=\"Shift_JIS\"\nRW 8 FLAT \"".to_vec();
        raw.extend_from_slice(&[0x83, 0x66, 0x83, 0x42, 0x83, 0x58, 0x83, 0x4e]);
        raw.extend_from_slice(b"-flat.vmdk\" 0\n");
        let d = parse(&raw).unwrap();
        assert_eq!(d.extents[0].file.as_deref(), Some("ディスク-flat.vmdk"));
        // GBK "磁盘" = b4 c5 c5 cc; Big5 "磁碟" = ba cf ba d0.
        let mut raw = b"encoding=\"GBK\"\nRW 8 FLAT \"".to_vec();
        raw.extend_from_slice(&[0xb4, 0xc5, 0xc5, 0xcc]);
        raw.extend_from_slice(b".vmdk\" 0\n");
        assert_eq!(parse(&raw).unwrap().extents[0].file.as_deref(), Some("磁盘.vmdk"));
        let mut raw = b"encoding=\"Big5\"\nRW 8 FLAT \"".to_vec();
        raw.extend_from_slice(&[0xba, 0xcf, 0xba, 0xd0]);
        raw.extend_from_slice(b".vmdk\" 0\n");
        assert_eq!(parse(&raw).unwrap().extents[0].file.as_deref(), Some("磁碟.vmdk"));
        // Unknown or absent encodings: lossy UTF-8.
        let d = parse(b"encoding=\"klingon\"\nRW 8 FLAT \"\xff.vmdk\" 0\n").unwrap();
        assert_eq!(d.extents[0].file.as_deref(), Some("\u{fffd}.vmdk"));
        assert_eq!(decode("CID=1\n".as_bytes()).1, "UTF-8");
    }

    #[test]
    fn bad_lines_are_clear_errors() {
        let e = parse(b"RW lots FLAT \"x\" 0\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(e.to_string().contains("size"), "{e}");
        assert!(parse(b"RW 8\n").is_err());
        assert!(parse(b"RW 8 FLAT \"unterminated\n").is_err());
        assert!(parse(b"RW 8 FLAT \"x\" minus\n").is_err());
        assert!(parse(b"RW 8 FLAT \"\" 0\n").is_err());
        let e = parse(b"CID=xyz\n").unwrap_err();
        assert!(e.to_string().contains("CID"), "{e}");
        assert!(parse(b"version=one\n").is_err());
        let d = parse(b"\n\nsome garbage line\nRW 18446744073709551615 ZERO\nRW 1 ZERO\n").unwrap();
        assert!(d.total_sectors().is_err());
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for raw in [
            &b""[..],
            b"=",
            b"\"",
            b"RW",
            b"RW ",
            b"RW 1 ",
            b"RW 1 FLAT \"",
            b"encoding=\"",
            b"\xff\xfe\r\n\r",
            b"CID=\"\"",
        ] {
            let _ = parse(raw);
        }
    }
}
