//! The qcow2 header (versions 2 and 3) and its extensions: bytes in, [`Header`] out.
//!
//! ```text
//!   0  magic "QFI\xfb"   4 version   8 backing_file_offset   16 backing_file_size
//!  20  cluster_bits     24 size     32 crypt_method          36 l1_size
//!  40  l1_table_offset  48 refcount_table_offset            56 refcount_table_clusters
//!  60  nb_snapshots     64 snapshots_offset
//!  v3: 72 incompatible  80 compatible  88 autoclear  96 refcount_order  100 header_length
//!      104 compression_type (when header_length > 104)
//!  then extensions: u32 type, u32 length, data, padding to 8 bytes; type 0 ends the list
//! ```
//!
//! Every field is big-endian. The parser checks every field a reader relies on and says which
//! one is wrong; what the reader refuses (encryption, unknown incompatible features, the
//! corrupt bit) is decided by [`Header::refusal`], so `xva info` can still describe such files.
//! Spec: `disk-formats.md` §1.3.1 (from qemu's `docs/interop/qcow2.txt`).

use crate::error::{Error, Result};

/// `QFI\xfb`, shared by qcow (version 1) and qcow2 (versions 2 and 3).
pub const MAGIC: &[u8; 4] = b"QFI\xfb";
/// Length of a version 2 header; extensions start right after it.
pub const V2_HEADER_LEN: usize = 72;
/// Minimum length of a version 3 header.
pub const V3_HEADER_LEN: usize = 104;
/// Smallest cluster: 512 bytes.
pub const MIN_CLUSTER_BITS: u32 = 9;
/// Largest cluster qemu creates or opens: 2 MiB.
pub const MAX_CLUSTER_BITS: u32 = 21;
/// Longest backing file name qemu accepts.
pub const MAX_BACKING_NAME: u32 = 1023;
/// qemu's cap on the L1 table: 32 MiB (4 Mi entries).
pub const MAX_L1_BYTES: u64 = 32 << 20;

/// Incompatible feature bit 0: refcounts may be stale (the mapping is valid; reading is fine).
pub const INCOMPAT_DIRTY: u64 = 1 << 0;
/// Incompatible feature bit 1: metadata may be inconsistent.
pub const INCOMPAT_CORRUPT: u64 = 1 << 1;
/// Incompatible feature bit 2: guest data lives in an external data file.
pub const INCOMPAT_DATA_FILE: u64 = 1 << 2;
/// Incompatible feature bit 3: the compression type field is not zlib.
pub const INCOMPAT_COMPRESSION: u64 = 1 << 3;
/// Incompatible feature bit 4: L2 entries are 128 bits with a subcluster bitmap.
pub const INCOMPAT_EXTENDED_L2: u64 = 1 << 4;
/// The incompatible bits this reader understands.
pub const INCOMPAT_KNOWN: u64 =
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTENDED_L2;
/// Autoclear bit 1: the external data file is a valid raw image by itself.
pub const AUTOCLEAR_DATA_FILE_RAW: u64 = 1 << 1;

/// Header extension: end of the list.
pub const EXT_END: u32 = 0;
/// Header extension: the backing file's format name (`raw`, `qcow2`, `vmdk`, ...).
pub const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// Header extension: names of feature bits, 48-byte entries (type u8, bit u8, name [46]).
pub const EXT_FEATURE_NAMES: u32 = 0x6803_f857;
/// Header extension: persistent dirty bitmaps (not needed for reading).
pub const EXT_BITMAPS: u32 = 0x2385_2875;
/// Header extension: full disk encryption (LUKS) header pointer.
pub const EXT_CRYPTO: u32 = 0x0537_be77;
/// Header extension: the external data file's name.
pub const EXT_DATA_FILE: u32 = 0x4441_5441;

/// How compressed clusters are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Raw deflate (no zlib header), 4 KiB window.
    Zlib,
    /// One or more zstd frames.
    Zstd,
}

/// What kind of feature a feature-name table entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureKind {
    /// `incompatible_features` (0).
    Incompatible,
    /// `compatible_features` (1).
    Compatible,
    /// `autoclear_features` (2).
    Autoclear,
}

/// One entry of the feature-name table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureName {
    /// Which feature field the bit belongs to.
    pub kind: FeatureKind,
    /// Bit number (0..63).
    pub bit: u8,
    /// The name, as the image spells it.
    pub name: String,
}

/// A parsed qcow2 header with its extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// 2 or 3.
    pub version: u32,
    /// Byte offset of the backing file name (0: none).
    pub backing_file_offset: u64,
    /// Length of the backing file name.
    pub backing_file_size: u32,
    /// The backing file name, when there is one.
    pub backing_file: Option<String>,
    /// log2 of the cluster size.
    pub cluster_bits: u32,
    /// Virtual disk size in bytes.
    pub size: u64,
    /// 0 none, 1 AES-CBC, 2 LUKS.
    pub crypt_method: u32,
    /// Entries in the active L1 table.
    pub l1_size: u32,
    /// Byte offset of the active L1 table.
    pub l1_table_offset: u64,
    /// Byte offset of the refcount table (not used for reading).
    pub refcount_table_offset: u64,
    /// Clusters of the refcount table (not used for reading).
    pub refcount_table_clusters: u32,
    /// Number of internal snapshots.
    pub nb_snapshots: u32,
    /// Byte offset of the snapshot table.
    pub snapshots_offset: u64,
    /// Incompatible feature bits (v2: 0).
    pub incompatible: u64,
    /// Compatible feature bits (v2: 0).
    pub compatible: u64,
    /// Autoclear feature bits (v2: 0).
    pub autoclear: u64,
    /// log2 of the refcount width in bits (v2: 4).
    pub refcount_order: u32,
    /// Header length in bytes (v2: 72).
    pub header_length: u32,
    /// Compression of compressed clusters.
    pub compression: Compression,
    /// Backing format name from the extension.
    pub backing_format: Option<String>,
    /// External data file name from the extension.
    pub data_file: Option<String>,
    /// The feature-name table.
    pub feature_names: Vec<FeatureName>,
    /// A full-disk-encryption header extension is present.
    pub has_crypto_ext: bool,
    /// A bitmaps extension is present.
    pub has_bitmaps_ext: bool,
}

/// The qcow headers' big-endian fields, through the shared readers (which never panic).
pub(crate) use crate::be::{u32 as be32, u64 as be64};

fn bad(msg: impl Into<String>, at: usize) -> Error {
    Error::invalid(msg).at(at as u64)
}

/// Text of a name field: UTF-8 (lossy), without trailing NULs.
fn name_text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl Header {
    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// L2 entries carry a subcluster bitmap.
    pub fn extended_l2(&self) -> bool {
        self.incompatible & INCOMPAT_EXTENDED_L2 != 0
    }

    /// Guest data lives in an external data file.
    pub fn has_data_file(&self) -> bool {
        self.incompatible & INCOMPAT_DATA_FILE != 0
    }

    /// Refcounts may be stale (readable).
    pub fn dirty(&self) -> bool {
        self.incompatible & INCOMPAT_DIRTY != 0
    }

    /// Metadata may be inconsistent.
    pub fn corrupt(&self) -> bool {
        self.incompatible & INCOMPAT_CORRUPT != 0
    }

    /// The image's own name for feature `bit` of `kind`, if its table has one.
    pub fn feature_name(&self, kind: FeatureKind, bit: u8) -> Option<&str> {
        self.feature_names.iter().find(|f| f.kind == kind && f.bit == bit).map(|f| f.name.as_str())
    }

    /// Why this image cannot be read, if it cannot: encryption, incompatible features this
    /// reader does not know (named from the image's feature table), or the corrupt bit
    /// (unless `allow_corrupt`). The dirty bit is fine: only refcounts may be stale.
    pub fn refusal(&self, allow_corrupt: bool) -> Option<Error> {
        if self.crypt_method != 0 || self.has_crypto_ext {
            let what = match self.crypt_method {
                1 => "AES-CBC (legacy qcow2 encryption)".to_string(),
                2 => "LUKS".to_string(),
                0 => "a full-disk-encryption header".to_string(),
                n => format!("unknown method {n}"),
            };
            return Some(Error::unsupported(format!(
                "encrypted qcow2 not supported ({what}): xva cannot decrypt images; decrypt it first \
                 (`qemu-img convert --object secret,id=s0,file=KEYFILE --image-opts \
                 driver=qcow2,file.filename=IMAGE,encrypt.key-secret=s0 -O qcow2 plain.qcow2`)"
            )));
        }
        let unknown = self.incompatible & !INCOMPAT_KNOWN;
        if unknown != 0 {
            let names: Vec<String> = (0..64u8)
                .filter(|b| unknown & (1 << b) != 0)
                .map(|b| match self.feature_name(FeatureKind::Incompatible, b) {
                    Some(n) => format!("{n} (bit {b})"),
                    None => format!("unnamed feature (bit {b})"),
                })
                .collect();
            return Some(
                Error::unsupported(format!(
                    "unsupported qcow2 incompatible feature{}: {}; a newer qemu-img may convert it \
                     (`qemu-img convert -O raw`)",
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", ")
                ))
                .at(72),
            );
        }
        if self.corrupt() && !allow_corrupt {
            return Some(
                Error::corrupt(
                    "the image's corrupt bit is set (qemu found inconsistent metadata and stopped \
                     writing to it); check and repair it with `qemu-img check -r all` on a copy, or \
                     pass --allow-corrupt to read it anyway",
                )
                .at(72),
            );
        }
        None
    }
}

/// Parses the header at the start of `buf` (the file's first bytes: at least the header and
/// its extensions, normally the first cluster). `file_len` bounds the offsets it names.
pub fn parse(buf: &[u8], file_len: u64) -> Result<Header> {
    if buf.len() < V2_HEADER_LEN {
        return Err(bad(format!("not a qcow2 image: {} bytes is shorter than a header", buf.len()), 0));
    }
    if &buf[0..4] != MAGIC {
        return Err(bad("not a qcow2 image: no QFI\\xfb magic", 0));
    }
    let version = be32(buf, 4);
    if version != 2 && version != 3 {
        return Err(Error::unsupported(format!("qcow2 version {version} (2 and 3 are read here)")).at(4));
    }
    let cluster_bits = be32(buf, 20);
    if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
        return Err(bad(
            format!("cluster_bits {cluster_bits}: clusters must be 512 bytes to 2 MiB (bits 9 to 21)"),
            20,
        ));
    }
    let cluster_size = 1u64 << cluster_bits;
    let mut h = Header {
        version,
        backing_file_offset: be64(buf, 8),
        backing_file_size: be32(buf, 16),
        backing_file: None,
        cluster_bits,
        size: be64(buf, 24),
        crypt_method: be32(buf, 32),
        l1_size: be32(buf, 36),
        l1_table_offset: be64(buf, 40),
        refcount_table_offset: be64(buf, 48),
        refcount_table_clusters: be32(buf, 56),
        nb_snapshots: be32(buf, 60),
        snapshots_offset: be64(buf, 64),
        incompatible: 0,
        compatible: 0,
        autoclear: 0,
        refcount_order: 4,
        header_length: V2_HEADER_LEN as u32,
        compression: Compression::Zlib,
        backing_format: None,
        data_file: None,
        feature_names: Vec::new(),
        has_crypto_ext: false,
        has_bitmaps_ext: false,
    };
    if version == 3 {
        if buf.len() < V3_HEADER_LEN {
            return Err(bad(format!("version 3 header cut off: only {} bytes", buf.len()), 0));
        }
        h.incompatible = be64(buf, 72);
        h.compatible = be64(buf, 80);
        h.autoclear = be64(buf, 88);
        h.refcount_order = be32(buf, 96);
        h.header_length = be32(buf, 100);
        let hl = h.header_length as usize;
        if hl < V3_HEADER_LEN || !hl.is_multiple_of(8) || hl as u64 > cluster_size {
            return Err(bad(
                format!("header_length {hl}: must be at least 104, a multiple of 8 and within the first cluster"),
                100,
            ));
        }
        if hl > buf.len() {
            return Err(bad(format!("header of {hl} bytes is cut off at {} bytes", buf.len()), 100));
        }
        if hl > V3_HEADER_LEN {
            h.compression = match buf[104] {
                0 => Compression::Zlib,
                1 => Compression::Zstd,
                t => return Err(Error::unsupported(format!("compression type {t} (known: 0 zlib, 1 zstd)")).at(104)),
            };
        }
        let flagged = h.incompatible & INCOMPAT_COMPRESSION != 0;
        if flagged != (h.compression != Compression::Zlib) {
            return Err(bad(
                "the compression-type feature bit and the compression type field disagree",
                if flagged { 72 } else { 104 },
            ));
        }
        if h.extended_l2() && cluster_bits < 14 {
            return Err(bad(
                format!("extended L2 entries need clusters of at least 16 KiB, not {cluster_size} bytes"),
                20,
            ));
        }
    }
    if h.size > (1 << 62) {
        return Err(bad(format!("virtual size of {} bytes is beyond any real disk", h.size), 24));
    }
    if !h.l1_table_offset.is_multiple_of(cluster_size) {
        return Err(bad(format!("L1 table offset {:#x} is not cluster-aligned", h.l1_table_offset), 40));
    }
    if h.l1_size as u64 * 8 > MAX_L1_BYTES {
        return Err(bad(format!("L1 table of {} entries is larger than qemu's 32 MiB limit", h.l1_size), 36));
    }
    let l1_end = h.l1_table_offset.checked_add(h.l1_size as u64 * 8);
    if h.l1_size > 0 && l1_end.is_none_or(|e| e > file_len) {
        return Err(Error::corrupt(format!(
            "L1 table ({} entries) lies past the end of the file ({file_len} bytes)",
            h.l1_size
        ))
        .at(h.l1_table_offset));
    }
    // Extensions: from the end of the header to the end of the first cluster (or of the
    // buffer, or the backing file name, whichever comes first).
    let mut ext_end = (cluster_size as usize).min(buf.len());
    if h.backing_file_offset != 0 && h.backing_file_offset < ext_end as u64 {
        ext_end = h.backing_file_offset as usize;
    }
    let area = ext_end.max(h.header_length as usize);
    parse_extensions(&mut h, &buf[..area])?;
    if h.backing_file_offset != 0 {
        let len = h.backing_file_size;
        if len > MAX_BACKING_NAME {
            return Err(bad(format!("backing file name of {len} bytes (at most {MAX_BACKING_NAME})"), 16));
        }
        let start = h.backing_file_offset;
        let end = start.checked_add(len as u64).filter(|&e| e <= cluster_size && e as usize <= buf.len());
        let Some(end) = end else {
            return Err(bad(
                format!("backing file name ({len} bytes at {start:#x}) does not lie in the first cluster"),
                8,
            ));
        };
        if len == 0 {
            return Err(bad("backing file name is empty", 16));
        }
        h.backing_file = Some(name_text(&buf[start as usize..end as usize]));
    }
    if h.has_data_file() && h.backing_file.is_some() {
        // qemu allows it, but only through command-line options; images never carry both.
    }
    Ok(h)
}

fn parse_extensions(h: &mut Header, buf: &[u8]) -> Result<()> {
    let mut at = h.header_length as usize;
    loop {
        if at + 8 > buf.len() {
            // No end marker before the end of the area: v2 images may simply stop.
            return Ok(());
        }
        let ty = be32(buf, at);
        let len = be32(buf, at + 4) as usize;
        if ty == EXT_END {
            return Ok(());
        }
        let data_at = at + 8;
        let Some(data) = data_at.checked_add(len).and_then(|e| buf.get(data_at..e)) else {
            return Err(bad(format!("header extension {ty:#010x} of {len} bytes runs past the first cluster"), at));
        };
        match ty {
            EXT_BACKING_FORMAT => h.backing_format = Some(name_text(data)),
            EXT_DATA_FILE => h.data_file = Some(name_text(data)),
            EXT_CRYPTO => h.has_crypto_ext = true,
            EXT_BITMAPS => h.has_bitmaps_ext = true,
            EXT_FEATURE_NAMES => {
                for e in data.chunks_exact(48) {
                    let kind = match e[0] {
                        0 => FeatureKind::Incompatible,
                        1 => FeatureKind::Compatible,
                        2 => FeatureKind::Autoclear,
                        _ => continue,
                    };
                    h.feature_names.push(FeatureName { kind, bit: e[1], name: name_text(&e[2..48]) });
                }
            }
            _ => {}
        }
        at = data_at + len.div_ceil(8) * 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::qcow2::build::{HeaderSpec, Qcow2Opts};

    fn spec() -> Qcow2Opts {
        Qcow2Opts::default()
    }

    fn parsed(o: &Qcow2Opts) -> Header {
        let f = HeaderSpec::from_opts(o, 4 << 20).bytes();
        parse(&f, 1 << 30).unwrap()
    }

    #[test]
    fn v2_and_v3_headers_round_trip() {
        let h = parsed(&Qcow2Opts { version: 2, ..spec() });
        assert_eq!((h.version, h.cluster_bits, h.size, h.header_length), (2, 16, 4 << 20, 72));
        assert_eq!(h.compression, Compression::Zlib);
        let h = parsed(&Qcow2Opts {
            backing: Some(("base.raw".into(), Some("raw".into()))),
            compression: Compression::Zstd,
            ..spec()
        });
        assert_eq!(h.version, 3);
        assert_eq!(h.backing_file.as_deref(), Some("base.raw"));
        assert_eq!(h.backing_format.as_deref(), Some("raw"));
        assert_eq!(h.compression, Compression::Zstd);
        assert!(h.feature_names.iter().any(|f| f.name == "dirty bit"));
        let h = parsed(&Qcow2Opts { data_file: Some("d.raw".into()), data_file_raw: true, ..spec() });
        assert_eq!(h.data_file.as_deref(), Some("d.raw"));
        assert!(h.has_data_file());
        assert_ne!(h.autoclear & AUTOCLEAR_DATA_FILE_RAW, 0);
    }

    #[test]
    fn bad_fields_are_named() {
        let good = HeaderSpec::from_opts(&spec(), 4 << 20).bytes();
        let with = |at: usize, v: &[u8]| {
            let mut f = good.clone();
            f[at..at + v.len()].copy_from_slice(v);
            parse(&f, 1 << 30).unwrap_err()
        };
        let e = with(0, b"QFI\0");
        assert_eq!(e.kind(), ErrorKind::InvalidFormat);
        assert_eq!(with(4, &4u32.to_be_bytes()).kind(), ErrorKind::Unsupported);
        assert!(with(20, &8u32.to_be_bytes()).to_string().contains("cluster_bits"));
        assert!(with(20, &22u32.to_be_bytes()).to_string().contains("cluster_bits"));
        assert!(with(40, &513u64.to_be_bytes()).to_string().contains("not cluster-aligned"));
        assert!(with(36, &(5u32 << 20).to_be_bytes()).to_string().contains("32 MiB"));
        assert!(with(100, &100u32.to_be_bytes()).to_string().contains("header_length"));
        assert!(with(100, &108u32.to_be_bytes()).to_string().contains("header_length"));
        assert!(with(24, &u64::MAX.to_be_bytes()).to_string().contains("virtual size"));
        // L1 past the end of the file.
        let e = parse(&good, 4096).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        // Cut off.
        assert!(parse(&good[..50], 1 << 30).is_err());
        assert!(parse(&good[..90], 1 << 30).is_err());
        // The compression bit without a compression type.
        let e = with(72 + 7, &[INCOMPAT_COMPRESSION as u8]);
        assert!(e.to_string().contains("compression"), "{e}");
    }

    #[test]
    fn backing_names_are_bounded() {
        let long = "b".repeat(1023);
        let h = parsed(&Qcow2Opts { backing: Some((long.clone(), None)), ..spec() });
        assert_eq!(h.backing_file.as_deref(), Some(long.as_str()));
        let mut f = HeaderSpec::from_opts(&Qcow2Opts { backing: Some((long, None)), ..spec() }, 1 << 20).bytes();
        f[16..20].copy_from_slice(&1024u32.to_be_bytes());
        assert!(parse(&f, 1 << 30).unwrap_err().to_string().contains("1024"));
        f[16..20].copy_from_slice(&10u32.to_be_bytes());
        f[8..16].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(parse(&f, 1 << 50).unwrap_err().to_string().contains("first cluster"));
    }

    #[test]
    fn extensions_that_run_off_the_end_are_errors_and_unknown_ones_ignored() {
        let mut f = HeaderSpec::from_opts(&spec(), 1 << 20).bytes();
        let at = 104 + 8; // after header_length 112
        f[at..at + 4].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        f[at + 4..at + 8].copy_from_slice(&3u32.to_be_bytes());
        f[at + 16..at + 24].fill(0);
        let h = parse(&f, 1 << 30).unwrap();
        assert!(h.feature_names.is_empty());
        f[at + 4..at + 8].copy_from_slice(&(1u32 << 30).to_be_bytes());
        assert!(parse(&f, 1 << 30).unwrap_err().to_string().contains("0x12345678"));
    }

    #[test]
    fn refusals_say_what_and_why() {
        let h = parsed(&Qcow2Opts { incompatible_extra: INCOMPAT_DIRTY, ..spec() });
        assert!(h.dirty());
        assert!(h.refusal(false).is_none(), "dirty images are readable");
        let h = parsed(&Qcow2Opts { incompatible_extra: INCOMPAT_CORRUPT, ..spec() });
        let e = h.refusal(false).unwrap();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert!(e.to_string().contains("--allow-corrupt"), "{e}");
        assert!(h.refusal(true).is_none());
        let h = parsed(&Qcow2Opts { crypt_method: 2, ..spec() });
        let e = h.refusal(true).unwrap();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("encrypted qcow2 not supported (LUKS)"), "{e}");
        let h = parsed(&Qcow2Opts { crypt_method: 1, ..spec() });
        assert!(h.refusal(true).unwrap().to_string().contains("AES"));
        let h = parsed(&Qcow2Opts {
            incompatible_extra: 1 << 9 | 1 << 12,
            extra_feature_names: vec![(0, 9, "time travel".into())],
            ..spec()
        });
        let e = h.refusal(true).unwrap();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        let s = e.to_string();
        assert!(s.contains("time travel (bit 9)") && s.contains("unnamed feature (bit 12)"), "{s}");
    }
}
