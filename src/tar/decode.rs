//! The one tar header decoder, in two modes.
//!
//! ```text
//!   Byte layout (POSIX.1-1988 ustar; V7 uses the first 257 bytes):
//!     0 name[100]  100 mode[8]  108 uid[8]  116 gid[8]  124 size[12]  136 mtime[12]
//!     148 chksum[8]  156 typeflag  157 linkname[100]  257 magic[6]  263 version[2]
//!     265 uname[32]  297 gname[32]  329 devmajor[8]  337 devminor[8]  345 prefix[155]
//! ```
//!
//! [`Mode::Strict`] reads a header the way xapi's ocaml-tar 2.x `HeaderReader` does
//! (`xva-format-and-xapi-import.md` §2.1): the checksum, size, mode, uid, gid and mtime fields
//! must all be octal (NUL/space padded, base-256 refused), and `prefix` counts only with a POSIX
//! `ustar\0` magic. [`Mode::Lenient`] reads what archivers write into OVAs: numbers may be GNU
//! base-256, only the checksum and size are looked at, and `prefix` counts with any magic that
//! starts with `ustar`. Both verify the header checksum. Neither allocates more than a name.

use std::fmt;

use super::write::BLOCK;

/// Largest PAX or GNU long-name record read (they only carry a name or a few fields).
pub const MAX_EXTENSION: u64 = 1 << 20;

/// How much of the format to accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// xapi's rules: what an XVA must satisfy.
    Strict,
    /// What `tar` and OVA exporters write: base-256 numbers, GNU `ustar ` magic with a prefix.
    Lenient,
}

/// The magic of a tar header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderFormat {
    /// No magic (what xapi itself writes).
    V7,
    /// POSIX `ustar\0` `00`.
    Ustar,
    /// GNU `ustar ` ` \0`.
    Gnu,
}

/// The fields of one header block that readers use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawHeader {
    /// `name`, with `prefix` joined when the mode counts it.
    pub name: String,
    /// Data size in bytes.
    pub size: u64,
    /// Type flag byte (`b'0'`/NUL regular, `5` directory, `L` GNU long name, `x`/`g` PAX …).
    pub typeflag: u8,
    /// Header magic.
    pub format: HeaderFormat,
    /// The `prefix` field was joined to the name.
    pub prefix_used: bool,
}

/// Why a header block was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The checksum field does not match the block.
    BadChecksum {
        /// The checksum field as stored (parsed), if it parsed.
        stored: Option<u64>,
        /// The unsigned byte sum, checksum field counted as spaces.
        computed: u64,
    },
    /// A numeric field cannot be read in this mode.
    BadNumber {
        /// Field name (`size`, `mode`, …).
        field: &'static str,
        /// The raw field, lossily decoded.
        raw: String,
        /// Whether the field is base-256 encoded (high bit set).
        base256: bool,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::BadChecksum { stored: Some(s), computed } => {
                write!(f, "checksum field says {s:o} (octal), header sums to {computed:o}")
            }
            HeaderError::BadChecksum { stored: None, computed } => {
                write!(f, "checksum field is not octal (header sums to {computed:o})")
            }
            HeaderError::BadNumber { field, raw, base256: false } => write!(f, "{field} field {raw:?} is not octal"),
            HeaderError::BadNumber { field, base256: true, .. } => write!(f, "{field} field is base-256 encoded"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Decodes and checks one 512-byte header block. An all-zero block is the caller's business
/// (it is not a header: it fails the checksum).
pub fn decode(b: &[u8; BLOCK], mode: Mode) -> Result<RawHeader, HeaderError> {
    let computed: u64 =
        b.iter().enumerate().map(|(i, &c)| if (148..156).contains(&i) { 32 } else { u64::from(c) }).sum();
    let stored = number(&b[148..156], "checksum", mode).ok();
    if stored != Some(computed) {
        return Err(HeaderError::BadChecksum { stored, computed });
    }
    let size = number(&b[124..136], "size", mode)?;
    if mode == Mode::Strict {
        number(&b[100..108], "mode", mode)?;
        number(&b[108..116], "uid", mode)?;
        number(&b[116..124], "gid", mode)?;
        number(&b[136..148], "mtime", mode)?;
    }
    let format = if &b[257..263] == b"ustar\0" {
        HeaderFormat::Ustar
    } else if &b[257..265] == b"ustar  \0" {
        HeaderFormat::Gnu
    } else {
        HeaderFormat::V7
    };
    let prefix_counts = match mode {
        Mode::Strict => format == HeaderFormat::Ustar,
        Mode::Lenient => &b[257..262] == b"ustar",
    };
    let mut name = cstr(&b[0..100]);
    let prefix_used = prefix_counts && b[345] != 0;
    if prefix_used {
        name = format!("{}/{name}", cstr(&b[345..500]));
    }
    Ok(RawHeader { name, size, typeflag: b[156], format, prefix_used })
}

/// A numeric field. Strict (ocaml-tar): NULs become spaces, trim, then octal (empty = 0);
/// base-256 refused. Lenient: GNU base-256, or octal up to the first NUL (empty = 0).
fn number(field: &[u8], name: &'static str, mode: Mode) -> Result<u64, HeaderError> {
    let bad =
        |base256| HeaderError::BadNumber { field: name, raw: String::from_utf8_lossy(field).into_owned(), base256 };
    let base256 = field.first().is_some_and(|&b| b & 0x80 != 0);
    match mode {
        Mode::Strict if base256 => Err(bad(true)),
        Mode::Strict => {
            let s: Vec<u8> = field.iter().map(|&b| if b == 0 { b' ' } else { b }).collect();
            let mut v: u64 = 0;
            for &c in s.trim_ascii() {
                if !(b'0'..=b'7').contains(&c) {
                    return Err(bad(false));
                }
                v = v.checked_mul(8).and_then(|v| v.checked_add(u64::from(c - b'0'))).ok_or_else(|| bad(false))?;
            }
            Ok(v)
        }
        Mode::Lenient if base256 => {
            let mut v: u64 = u64::from(field[0] & 0x7f);
            for &b in &field[1..] {
                v = v.checked_mul(256).and_then(|v| v.checked_add(u64::from(b))).ok_or_else(|| bad(true))?;
            }
            Ok(v)
        }
        Mode::Lenient => {
            let s: String = field.iter().take_while(|&&b| b != 0).map(|&b| char::from(b)).collect();
            let s = s.trim();
            if s.is_empty() {
                return Ok(0);
            }
            u64::from_str_radix(s, 8).map_err(|_| bad(false))
        }
    }
}

/// A NUL-terminated (or full-width) field as text, lossily decoded.
fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The name carried by a GNU `L` long-name record (up to its first NUL).
pub fn long_name(data: &[u8]) -> String {
    cstr(data)
}

/// PAX records, strictly: `"<len> <key>=<value>\n"` each, the length counting the whole record.
/// The error says what is malformed.
pub fn pax_records(data: &[u8]) -> Result<Vec<(String, String)>, &'static str> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest.iter().position(|&c| c == b' ').ok_or("PAX record without a length")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("PAX record length is not a number")?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err("PAX record length does not match its content");
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec.iter().position(|&c| c == b'=').ok_or("PAX record without '='")?;
        out.push((
            String::from_utf8_lossy(&rec[..eq]).into_owned(),
            String::from_utf8_lossy(&rec[eq + 1..]).into_owned(),
        ));
        rest = &rest[len..];
    }
    Ok(out)
}

/// The first PAX `path` record, leniently: lines split at `\n`, lengths not checked, malformed
/// lines skipped (what the OVA reader has always accepted).
pub fn pax_path(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    for rec in text.split('\n') {
        let Some((_, kv)) = rec.split_once(' ') else { continue };
        if let Some(p) = kv.strip_prefix("path=") {
            return Some(p.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_checksum(mut h: [u8; BLOCK]) -> [u8; BLOCK] {
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    #[test]
    fn both_modes_read_the_writers_headers() {
        let h = super::super::write::header("Ref:1/00000000", 1 << 20).unwrap();
        for mode in [Mode::Strict, Mode::Lenient] {
            let r = decode(&h, mode).unwrap();
            assert_eq!(r.name, "Ref:1/00000000");
            assert_eq!(r.size, 1 << 20);
            assert_eq!((r.typeflag, r.format, r.prefix_used), (b'0', HeaderFormat::Ustar, false));
        }
    }

    #[test]
    fn base256_sizes_only_when_lenient() {
        let mut h = super::super::write::header("disk.vmdk", 0).unwrap();
        h[124..136].fill(0);
        h[124] = 0x80;
        h[128..136].copy_from_slice(&(9u64 << 30).to_be_bytes());
        let h = with_checksum(h);
        assert_eq!(decode(&h, Mode::Lenient).unwrap().size, 9 << 30);
        assert!(matches!(decode(&h, Mode::Strict), Err(HeaderError::BadNumber { field: "size", base256: true, .. })));
    }

    #[test]
    fn gnu_prefix_counts_only_when_lenient() {
        let mut h = super::super::write::header("b", 0).unwrap();
        h[257..265].copy_from_slice(b"ustar  \0");
        h[345] = b'a';
        let h = with_checksum(h);
        assert_eq!(decode(&h, Mode::Lenient).unwrap().name, "a/b");
        let s = decode(&h, Mode::Strict).unwrap();
        assert_eq!((s.name.as_str(), s.format), ("b", HeaderFormat::Gnu));
    }

    #[test]
    fn strict_checks_every_numeric_field() {
        let mut h = super::super::write::header("a", 0).unwrap();
        h[136..148].copy_from_slice(b"0000000000x\0");
        let h = with_checksum(h);
        assert!(decode(&h, Mode::Lenient).is_ok());
        assert!(matches!(decode(&h, Mode::Strict), Err(HeaderError::BadNumber { field: "mtime", .. })));
        let mut h = super::super::write::header("a", 0).unwrap();
        h[100..108].copy_from_slice(b"000064x\0");
        let h = with_checksum(h);
        assert!(decode(&h, Mode::Lenient).is_ok());
        assert!(matches!(decode(&h, Mode::Strict), Err(HeaderError::BadNumber { field: "mode", .. })));
    }

    #[test]
    fn extension_bodies() {
        assert_eq!(pax_records(b"16 path=ova.xml\n").unwrap(), [("path".to_string(), "ova.xml".to_string())]);
        assert!(pax_records(b"99 path=x\n").is_err());
        assert_eq!(pax_path(b"99 path=x\n"), Some("x".to_string()));
        assert_eq!(pax_path(b"12 size=1\n"), None);
        assert_eq!(long_name(b"Ref:1/00000000\0junk"), "Ref:1/00000000");
    }
}
