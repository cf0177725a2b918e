//! xapi's import loop: a transcription of its chunk loop (`Stream_vdi.recv_all_vdi`,
//! `xva-format-and-xapi-import.md` §5.3) including the global `F` (length of the very first
//! chunk of the import), the string comparison of counters and the gap arithmetic; it reports
//! what xapi would reject or corrupt as [`Finding`]s and hands the reconstructed disks to an
//! [`ImportVisitor`].
//!
//! ```text
//!   XvaReader members ─► import_loop ─► Finding (rules 5, 23–27, 29)
//!                                    └─► ImportVisitor: DiskRange::Data / DiskRange::Zeros
//! ```

use std::fmt;
use std::io::{self, Read};

use sha1::Digest as _;

use super::finding::{Finding, Severity};
use crate::xmlrpc::parse::ocaml_int64_of_string;
use crate::xva::reader::{
    DiskRange, Extension, ImportVisitor, IoSide, Member, StreamedVdi, TarError, XvaReader, READ_CHUNK,
};
use crate::xva::CHUNK;

/// What the loop saw for one disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskLoopStats {
    /// Data members read (zero-length ones included).
    pub chunks: u64,
    /// Zero-length (keep-alive) data members.
    pub dummy_chunks: u64,
    /// Runs of omitted chunks.
    pub zero_gaps: u64,
    /// Omitted chunks in all.
    pub zero_chunks: u64,
    /// Bytes placed (data and gaps): where the next byte would go.
    pub written: u64,
    /// `.checksum` members.
    pub sha1_members: u64,
    /// `.xxhash` members.
    pub xxhash_members: u64,
    /// The loop reached `virtual_size` for this disk.
    pub complete: bool,
}

/// What the whole loop saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoopOutcome {
    /// `F`: length of the first data member of the import.
    pub first_chunk_len: Option<u64>,
    /// Per disk, in read order (only disks the loop got to).
    pub disks: Vec<DiskLoopStats>,
    /// The loop stopped on an error that makes reading on meaningless.
    pub stopped: bool,
}

/// Why the loop could not go on for reasons that are not the XVA's fault.
#[derive(Debug)]
pub enum LoopError {
    /// The input could not be read.
    Input(TarError),
    /// The visitor failed (e.g. writing the extracted disk).
    Visitor(io::Error),
}

impl fmt::Display for LoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoopError::Input(e) => write!(f, "{e}"),
            LoopError::Visitor(_) => write!(f, "could not store the disk data"),
        }
    }
}

impl std::error::Error for LoopError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoopError::Input(e) => e.source(),
            LoopError::Visitor(e) => Some(e),
        }
    }
}

/// Largest checksum member body read (real ones are 16 or 40 bytes).
const MAX_CHECKSUM_BODY: u64 = 4096;

/// The Finding for a tar error met while reading `what`.
pub fn tar_finding(e: &TarError, member: Option<&str>) -> Finding {
    let rule = match e {
        TarError::Io { side: IoSide::Decompress, .. } => 1,
        _ => 2,
    };
    Finding::new(Severity::Error, rule, member, Some(e.offset()), e.to_string())
}

/// Findings for the tar facts of one member (rule 4 extensions, non-regular type flags).
pub fn member_findings(m: &Member, out: &mut Vec<Finding>) {
    for ext in &m.extensions {
        let (sev, rule, msg) = match ext {
            Extension::ZeroBlock => (
                Severity::Warning,
                2,
                "a single all-zero block precedes this header; ocaml-tar skips one, other readers end the archive there".to_string(),
            ),
            e => (
                Severity::Warning,
                4,
                format!(
                    "uses {}; current xapi understands it, older xapi is untested — write plain ustar/V7 headers",
                    e.describe()
                ),
            ),
        };
        out.push(Finding::new(sev, rule, Some(&m.name), Some(m.header_offset), msg));
    }
    if m.typeflag == b'K' {
        out.push(Finding::new(
            Severity::Warning,
            4,
            Some(&m.name),
            Some(m.header_offset),
            "GNU long-link header ('K'): ocaml-tar does not understand it and reads it as a file",
        ));
    }
}

/// Which checksum a member holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ck {
    Sha1,
    Xx,
}

/// OCaml `int_of_string` on 64-bit: like `Int64.of_string` but 63-bit.
fn ocaml_int_of_string(s: &str) -> Option<i64> {
    let v = ocaml_int64_of_string(s)?;
    if (-(1i64 << 62)..(1i64 << 62)).contains(&v) {
        Some(v)
    } else {
        None
    }
}

/// Runs xapi's chunk loop (`Stream_vdi.recv_all_vdi`, §5.3) over the members following
/// ova.xml, for `vdis` in read order. `export_vsn > 0` enables the checksum checks, as in
/// xapi. Violations go to `findings`; the visitor receives the reconstructed disks.
pub fn import_loop<R: Read>(
    rd: &mut XvaReader<R>,
    vdis: &[StreamedVdi],
    export_vsn: i64,
    visitor: &mut dyn ImportVisitor,
    findings: &mut Vec<Finding>,
) -> Result<LoopOutcome, LoopError> {
    let mut out = LoopOutcome::default();
    let mut f: Option<u64> = None;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut warned_xxhash = false;
    macro_rules! stop {
        ($finding:expr) => {{
            findings.push($finding);
            out.stopped = true;
            return Ok(out);
        }};
    }
    macro_rules! next {
        ($ctx:expr) => {
            match rd.next_member() {
                Ok(m) => m,
                Err(e) if e.is_input_error() => return Err(LoopError::Input(e)),
                Err(e) => stop!(tar_finding(&e, $ctx)),
            }
        };
    }
    for (di, vdi) in vdis.iter().enumerate() {
        visitor.begin_disk(di, vdi).map_err(LoopError::Visitor)?;
        out.disks.push(DiskLoopStats::default());
        let size = i128::from(vdi.virtual_size);
        let mut last_suffix = String::from("-1");
        let mut last_num: i64 = -1;
        let mut first_num: Option<i64> = None;
        let mut offset: i128 = 0;
        let mut written: u64 = 0;
        let mut warned_width = false;
        while size - offset > 0 {
            let Some(m) = next!(None) else {
                stop!(Finding::new(
                    Severity::Error,
                    26,
                    None,
                    Some(rd.position()),
                    format!(
                        "the archive ends after {offset} of the {} bytes of VDI {}: its last chunk is missing (xapi reads until virtual_size is reached)",
                        vdi.virtual_size, vdi.id
                    ),
                ));
            };
            member_findings(&m, findings);
            let here = Some(m.header_offset);
            if m.typeflag == b'5' {
                stop!(Finding::new(
                    Severity::Error,
                    5,
                    Some(&m.name),
                    here,
                    "directory entry where a chunk of VDI was expected; xapi reads it as a chunk and fails (\"Invalid XVA file\")",
                ));
            }
            if !m.is_regular() && m.typeflag != b'K' {
                findings.push(Finding::new(
                    Severity::Warning,
                    5,
                    Some(&m.name),
                    here,
                    format!(
                        "type flag {:?} is not a regular file; xapi does not check it, other tools will",
                        char::from(m.typeflag)
                    ),
                ));
            }
            let fl = *f.get_or_insert(m.size);
            if out.first_chunk_len.is_none() {
                out.first_chunk_len = Some(fl);
                if fl == 0 {
                    findings.push(Finding::new(
                        Severity::Corruption,
                        26,
                        Some(&m.name),
                        here,
                        "the first chunk of the import is empty, so F = 0: xapi will count every omitted chunk as 0 bytes",
                    ));
                } else if fl < CHUNK && vdi.virtual_size > fl {
                    findings.push(Finding::new(
                        Severity::Warning,
                        26,
                        Some(&m.name),
                        here,
                        format!(
                            "the first chunk is {fl} bytes, not 1 MiB: xapi sizes every omitted chunk of every disk by it (F = {fl})"
                        ),
                    ));
                }
            }
            let Some(rest) = m.name.strip_prefix(vdi.id.as_str()) else {
                stop!(Finding::new(
                    Severity::Error,
                    5,
                    Some(&m.name),
                    here,
                    format!(
                        "expected a chunk of VDI {} (streamed VDI {} of {}, read in bytewise id order); xapi fails with \"Invalid XVA file\"",
                        vdi.id,
                        di + 1,
                        vdis.len()
                    ),
                ));
            };
            let mut chars = rest.chars();
            let sep = chars.next();
            let suffix = chars.as_str();
            if sep.is_none() {
                stop!(Finding::new(
                    Severity::Error,
                    23,
                    Some(&m.name),
                    here,
                    "chunk name has no counter after the VDI id",
                ));
            }
            if sep != Some('/') {
                findings.push(Finding::new(
                    Severity::Warning,
                    23,
                    Some(&m.name),
                    here,
                    format!("chunk name should be {}/<counter>", vdi.id),
                ));
            }
            if suffix.as_bytes() <= last_suffix.as_bytes() {
                stop!(Finding::new(
                    Severity::Error,
                    23,
                    Some(&m.name),
                    here,
                    format!(
                        "chunk counter {suffix:?} does not follow {last_suffix:?} in string order; xapi fails with \"Invalid XVA file\""
                    ),
                ));
            }
            let Some(num) = ocaml_int_of_string(suffix) else {
                stop!(Finding::new(
                    Severity::Error,
                    23,
                    Some(&m.name),
                    here,
                    format!("chunk counter {suffix:?} is not an integer"),
                ));
            };
            let eight_digits = suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_digit());
            if !warned_width && !eight_digits {
                warned_width = true;
                findings.push(Finding::new(
                    Severity::Warning,
                    23,
                    Some(&m.name),
                    here,
                    format!(
                        "chunk counter {suffix:?} is not 8 decimal digits (%08d); xapi compares counters as strings"
                    ),
                ));
            }
            first_num.get_or_insert(num);
            let gap = i128::from(num) - i128::from(last_num) - 1;
            let skipped = gap * i128::from(fl);
            if gap > 0 {
                let len = u64::try_from(skipped).ok().filter(|&l| written.checked_add(l).is_some());
                let Some(len) = len else {
                    stop!(Finding::new(
                        Severity::Error,
                        26,
                        Some(&m.name),
                        here,
                        format!("a gap of {gap} chunks of {fl} bytes overflows the disk offset"),
                    ));
                };
                if len > 0 {
                    visitor.range(DiskRange::Zeros { disk: di, offset: written, len }).map_err(LoopError::Visitor)?;
                }
                written += len;
                if let Some(s) = out.disks.last_mut() {
                    s.zero_gaps += 1;
                    s.zero_chunks = s.zero_chunks.saturating_add(gap as u64);
                }
            } else if gap < 0 {
                findings.push(Finding::new(
                    Severity::Corruption,
                    23,
                    Some(&m.name),
                    here,
                    format!(
                        "chunk counter {num} is numerically below the previous {last_num} although it sorts after it (variable-width counters): xapi's offset arithmetic goes wrong"
                    ),
                ));
            }
            // Data.
            let mut sha1 = sha1::Sha1::new();
            let mut xx = xxhash_rust::xxh64::Xxh64::new(0);
            loop {
                let n = match rd.read_data(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.is_input_error() => return Err(LoopError::Input(e)),
                    Err(e) => stop!(tar_finding(&e, Some(&m.name))),
                };
                if n == 0 {
                    break;
                }
                let bytes = &buf[..n];
                sha1.update(bytes);
                xx.update(bytes);
                visitor.range(DiskRange::Data { disk: di, offset: written, bytes }).map_err(LoopError::Visitor)?;
                written = written.saturating_add(n as u64);
            }
            if let Some(s) = out.disks.last_mut() {
                s.chunks += 1;
                if m.size == 0 {
                    s.dummy_chunks += 1;
                }
                s.written = written;
            }
            if m.size == 0 {
                findings.push(Finding::new(
                    Severity::Warning,
                    29,
                    Some(&m.name),
                    here,
                    "zero-length chunk: a legal keep-alive that consumes a counter value",
                ));
            }
            // Checksum member.
            let Some(ck) = next!(Some(&m.name)) else {
                stop!(Finding::new(
                    Severity::Error,
                    24,
                    Some(&m.name),
                    Some(rd.position()),
                    "the archive ends where this chunk's checksum member was expected",
                ));
            };
            member_findings(&ck, findings);
            let (kind, base) = if let Some(b) = ck.name.strip_suffix(".xxhash") {
                (Ck::Xx, b)
            } else if let Some(b) = ck.name.strip_suffix(".checksum") {
                (Ck::Sha1, b)
            } else {
                stop!(Finding::new(
                    Severity::Error,
                    24,
                    Some(&ck.name),
                    Some(ck.header_offset),
                    format!(
                        "expected {}.checksum or {}.xxhash after the chunk; xapi fails with \"Found unsupported checksum file\"",
                        m.name, m.name
                    ),
                ));
            };
            if let Some(s) = out.disks.last_mut() {
                match kind {
                    Ck::Sha1 => s.sha1_members += 1,
                    Ck::Xx => s.xxhash_members += 1,
                }
            }
            if kind == Ck::Xx && !warned_xxhash {
                warned_xxhash = true;
                findings.push(Finding::new(
                    Severity::Warning,
                    25,
                    Some(&ck.name),
                    Some(ck.header_offset),
                    ".xxhash checksums need xapi >= 1.170 (Citrix Hypervisor 8.1 / XCP-ng 8.1 or later); .checksum (SHA-1) works everywhere",
                ));
            }
            if export_vsn > 0 {
                if base != m.name {
                    stop!(Finding::new(
                        Severity::Error,
                        24,
                        Some(&ck.name),
                        Some(ck.header_offset),
                        format!("checksum member does not belong to the chunk {}", m.name),
                    ));
                }
                let (body, _) = match rd.read_data_to_vec(MAX_CHECKSUM_BODY) {
                    Ok(b) => b,
                    Err(e) if e.is_input_error() => return Err(LoopError::Input(e)),
                    Err(e) => stop!(tar_finding(&e, Some(&ck.name))),
                };
                let expected = match kind {
                    Ck::Sha1 => crate::hex::lower(&sha1.finalize()),
                    Ck::Xx => format!("{:016X}", xx.digest()),
                };
                if body != expected.as_bytes() {
                    let got = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
                    let hint = if got.eq_ignore_ascii_case(&expected) {
                        match kind {
                            Ck::Sha1 => " (right digest, wrong case: xapi compares byte for byte and wants lowercase)",
                            Ck::Xx => " (right digest, wrong case: xapi compares byte for byte and wants uppercase)",
                        }
                    } else if got.trim_end() == expected {
                        " (trailing whitespace: xapi compares byte for byte)"
                    } else {
                        ""
                    };
                    findings.push(Finding::new(
                        Severity::Error,
                        25,
                        Some(&ck.name),
                        Some(ck.data_offset),
                        format!("checksum is {got:?}, the chunk's is {expected:?}{hint}"),
                    ));
                }
            }
            offset += skipped + i128::from(m.size);
            if offset < size && m.size != fl && m.size != 0 {
                findings.push(Finding::new(
                    Severity::Corruption,
                    26,
                    Some(&m.name),
                    here,
                    format!(
                        "chunk is {} bytes but not the last of its VDI; every chunk but the last must be F = {fl} bytes, or later gaps land at wrong offsets",
                        m.size
                    ),
                ));
            }
            last_suffix = suffix.to_string();
            last_num = num;
        }
        if offset > size {
            findings.push(Finding::new(
                Severity::Corruption,
                26,
                None,
                None,
                format!(
                    "the chunks of VDI {} supply {offset} bytes, {} more than its virtual_size {}: xapi writes the surplus past the end of the new VDI",
                    vdi.id,
                    offset - size,
                    vdi.virtual_size
                ),
            ));
        }
        if let Some(n) = first_num.filter(|&n| n != 0) {
            findings.push(Finding::new(
                Severity::Warning,
                27,
                None,
                None,
                format!("VDI {}: the first chunk present has counter {n}, not 0 (the format requires the first and last chunks)", vdi.id),
            ));
        }
        if let Some(s) = out.disks.last_mut() {
            s.complete = true;
            s.written = written;
        }
        visitor.end_disk(di, written).map_err(LoopError::Visitor)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xva::reader::testtar::*;

    /// Records what the loop hands out.
    #[derive(Default)]
    struct Rec(Vec<String>);
    impl ImportVisitor for Rec {
        fn range(&mut self, r: DiskRange<'_>) -> io::Result<()> {
            self.0.push(match r {
                DiskRange::Data { disk, offset, bytes } => format!("D{disk}@{offset}+{}", bytes.len()),
                DiskRange::Zeros { disk, offset, len } => format!("Z{disk}@{offset}+{len}"),
            });
            Ok(())
        }
    }

    fn run(t: &[u8], vdis: &[(&str, u64)]) -> (LoopOutcome, Vec<Finding>, Vec<String>) {
        let mut rd = XvaReader::new(t).unwrap();
        let m = rd.next_member().unwrap().unwrap();
        assert_eq!(m.name, "ova.xml");
        let vdis: Vec<StreamedVdi> =
            vdis.iter().map(|(id, s)| StreamedVdi { id: id.to_string(), virtual_size: *s }).collect();
        let mut f = Vec::new();
        let mut rec = Rec::default();
        let o = import_loop(&mut rd, &vdis, 2, &mut rec, &mut f).unwrap();
        // These tests use small chunks on purpose; drop the "F is not 1 MiB" note.
        f.retain(|x| !(x.severity == Severity::Warning && x.rule == 26));
        (o, f, rec.0)
    }

    #[test]
    fn loop_tracks_gaps_with_the_global_first_chunk_length() {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", b"");
        // disk A: 3 chunks of 1024 (F = 1024), counter 1 omitted
        chunk(&mut t, "A/00000000", &[1u8; 1024]);
        chunk(&mut t, "A/00000002", &[2u8; 1000]);
        // disk B: size 2048 + 10, chunk 0 and 2 (gap of one F)
        chunk(&mut t, "B/00000000", &[3u8; 1024]);
        chunk(&mut t, "B/00000002", &[4u8; 10]);
        end(&mut t);
        let (o, f, r) = run(&t, &[("A", 3048), ("B", 2058)]);
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(o.first_chunk_len, Some(1024));
        assert_eq!(r, ["D0@0+1024", "Z0@1024+1024", "D0@2048+1000", "D1@0+1024", "Z1@1024+1024", "D1@2048+10"]);
        assert_eq!(o.disks[0].zero_gaps, 1);
        assert_eq!(o.disks[1].chunks, 2);
        assert!(o.disks.iter().all(|d| d.complete));
    }

    #[test]
    fn loop_reports_missing_last_chunk() {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", b"");
        chunk(&mut t, "A/00000000", &[1u8; 1024]);
        end(&mut t);
        let (o, f, _) = run(&t, &[("A", 4096)]);
        assert!(o.stopped);
        assert_eq!((f[0].severity, f[0].rule), (Severity::Error, 26), "{f:?}");
    }

    #[test]
    fn loop_reports_out_of_order_and_wrong_vdi() {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", b"");
        chunk(&mut t, "A/00000001", &[1u8; 1024]);
        chunk(&mut t, "A/00000000", &[1u8; 1024]);
        let (_, f, _) = run(&t, &[("A", 4096)]);
        assert_eq!(f.last().map(|f| (f.severity, f.rule)), Some((Severity::Error, 23)), "{f:?}");

        let mut t = Vec::new();
        file(&mut t, "ova.xml", b"");
        chunk(&mut t, "B/00000000", &[1u8; 1024]);
        let (_, f, _) = run(&t, &[("A", 1024)]);
        assert_eq!(f.last().map(|f| (f.severity, f.rule)), Some((Severity::Error, 5)), "{f:?}");
    }

    #[test]
    fn loop_checks_checksums() {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", b"");
        file(&mut t, "A/00000000", b"abc");
        let upper = crate::xva::writer::ChecksumKind::Sha1.body(b"abc").to_uppercase();
        file(&mut t, "A/00000000.checksum", upper.as_bytes());
        file(&mut t, "A/00000001", b"def");
        let xx = crate::xva::writer::ChecksumKind::Xxhash.body(b"def");
        file(&mut t, "A/00000001.xxhash", xx.as_bytes());
        file(&mut t, "A/00000002", b"ghi");
        file(&mut t, "A/00000002.md5", b"0");
        let (_, f, _) = run(&t, &[("A", 9)]);
        let got: Vec<_> = f.iter().map(|f| (f.severity, f.rule)).collect();
        assert_eq!(got, [(Severity::Error, 25), (Severity::Warning, 25), (Severity::Error, 24)], "{f:?}");
        assert!(f[0].message.contains("wrong case"), "{}", f[0].message);
    }

    #[test]
    fn loop_reports_overrun_and_size_mismatch_and_dummies() {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", b"");
        chunk(&mut t, "A/00000000", &[1u8; 1024]);
        chunk(&mut t, "A/00000001", b"");
        chunk(&mut t, "A/00000002", &[1u8; 512]);
        chunk(&mut t, "A/00000003", &[1u8; 1024]);
        let (_, f, _) = run(&t, &[("A", 2000)]);
        let got: Vec<_> = f.iter().map(|f| (f.severity, f.rule)).collect();
        assert_eq!(got, [(Severity::Warning, 29), (Severity::Corruption, 26), (Severity::Corruption, 26)], "{f:?}");
        assert!(f[2].message.contains("560 more"), "{}", f[2].message);
    }
}
