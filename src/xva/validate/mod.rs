//! The XVA validator: every rule of `xva-format-and-xapi-import.md` §12, checked the way xapi's
//! importer would meet the file.
//!
//! ```text
//!   input ─► XvaReader (rule 1, 2, 4) ─► first member ova.xml (3)
//!         ─► xmlrpc::parse (7, 11, 13) ─► header checks (8–22) ─► streamed VDIs in read order (18)
//!         ─► import_loop (5, 23–27, 29) ─► trailing members, end of archive (5, 6, 9)
//! ```
//!
//! Severities: **E** xapi rejects the import; **C** xapi accepts it but the disk is corrupted
//! or data misplaced; **W** a compatibility or portability risk. Rule 28 (omitted chunks really
//! were zero in the source) cannot be checked from the file. Reading stops at the first error
//! that makes further reading meaningless (a broken tar header, an unparsable ova.xml, a chunk
//! out of order); warnings are collected throughout.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::reader::{Compression, End, ImportVisitor, StreamedVdi, XvaReader};

mod finding;
mod hashing;
pub mod import_loop;
mod ova_xml;

pub use finding::{Finding, Severity};
use hashing::Hashing;
pub use import_loop::{import_loop, member_findings, tar_finding, DiskLoopStats, LoopError, LoopOutcome};
use ova_xml::check_ova_xml_at;
pub use ova_xml::{check_ova_xml, Header, StreamedDisk};

/// Largest `ova.xml` read (real ones are tens of KiB).
pub const MAX_OVA_XML: u64 = 64 << 20;

/// What to compute besides the rules.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// SHA-256 of every reconstructed disk (zero gaps included). Costs a pass over
    /// `virtual_size` bytes per disk, holes included.
    pub compute_sha256: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions { compute_sha256: true }
    }
}

/// One streamed disk as xapi would import it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskReport {
    /// VDI id in ova.xml.
    pub id: String,
    /// VDI `name_label`.
    pub name_label: String,
    /// `virtual_size` in bytes.
    pub virtual_size: u64,
    /// Data members read.
    pub chunks: u64,
    /// Runs of omitted (zero) chunks.
    pub zero_gaps: u64,
    /// Omitted chunks in all.
    pub zero_chunks: u64,
    /// Zero-length keep-alive chunks.
    pub dummy_chunks: u64,
    /// `.xxhash` checksum members (the rest are `.checksum`).
    pub xxhash_members: u64,
    /// All chunks up to `virtual_size` were read.
    pub complete: bool,
    /// SHA-256 of the whole reconstructed disk, `virtual_size` bytes (when asked for and
    /// complete).
    pub sha256: Option<[u8; 32]>,
}

/// The result of verifying an XVA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Rule violations, in the order found.
    pub violations: Vec<Finding>,
    /// Streamed disks in xapi's read order.
    pub disks: Vec<DiskReport>,
    /// Compression of the input.
    pub compression: Compression,
    /// `export_vsn` from ova.xml (missing = 0).
    pub export_vsn: Option<i64>,
    /// `(xapi_major, xapi_minor)` from ova.xml.
    pub xapi_version: Option<(i64, i64)>,
    /// `name_label` of each VM object.
    pub vm_names: Vec<String>,
    /// `F`, the first chunk's length.
    pub first_chunk_len: Option<u64>,
    /// Uncompressed tar bytes read.
    pub tar_bytes: u64,
    /// Input bytes read.
    pub input_bytes: u64,
    /// The whole archive was read (no stopping error).
    pub complete: bool,
}

impl VerifyReport {
    fn new(compression: Compression) -> Self {
        VerifyReport {
            violations: Vec::new(),
            disks: Vec::new(),
            compression,
            export_vsn: None,
            xapi_version: None,
            vm_names: Vec::new(),
            first_chunk_len: None,
            tar_bytes: 0,
            input_bytes: 0,
            complete: false,
        }
    }

    /// Findings of one severity.
    pub fn of(&self, s: Severity) -> impl Iterator<Item = &Finding> {
        self.violations.iter().filter(move |f| f.severity == s)
    }

    /// E findings.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.of(Severity::Error)
    }

    /// C findings.
    pub fn corruptions(&self) -> impl Iterator<Item = &Finding> {
        self.of(Severity::Corruption)
    }

    /// W findings.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.of(Severity::Warning)
    }

    /// No E and no C finding.
    pub fn is_ok(&self) -> bool {
        self.violations.iter().all(|f| f.severity == Severity::Warning)
    }
}

/// Verification could not be carried out (the input, not the XVA, is at fault).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The file could not be opened.
    #[error("cannot open {}", path.display())]
    Open {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading the input failed.
    #[error(transparent)]
    Read(super::reader::TarError),
    /// The visitor (e.g. disk extraction) failed.
    #[error("could not store the disk data")]
    Visitor(#[source] io::Error),
}

/// Verifies the XVA file at `path`.
pub fn verify_path(path: &Path, opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    let f = std::fs::File::open(path).map_err(|source| VerifyError::Open { path: path.to_path_buf(), source })?;
    verify_reader(io::BufReader::with_capacity(1 << 20, f), opts)
}

/// Verifies an XVA read from `r` (a file, stdin, an HTTP body).
pub fn verify_reader(r: impl Read, opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    verify_with_visitor(r, opts, &mut super::reader::NoVisitor)
}

/// Verifies an XVA and hands the reconstructed disks to `visitor` (used by `xva extract`).
pub fn verify_with_visitor(
    r: impl Read,
    opts: &VerifyOptions,
    visitor: &mut dyn ImportVisitor,
) -> Result<VerifyReport, VerifyError> {
    let mut rd = match XvaReader::new(r) {
        Ok(rd) => rd,
        Err(e) if e.is_input_error() => return Err(VerifyError::Read(e)),
        Err(e) => {
            let mut rep = VerifyReport::new(Compression::None);
            rep.violations.push(tar_finding(&e, None));
            return Ok(rep);
        }
    };
    let mut rep = VerifyReport::new(rd.compression());
    let res = verify_inner(&mut rd, opts, visitor, &mut rep);
    rep.tar_bytes = rd.position();
    rep.input_bytes = rd.raw_bytes();
    res.map(|()| rep)
}

macro_rules! read_or_stop {
    ($e:expr, $rep:expr, $member:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) if e.is_input_error() => return Err(VerifyError::Read(e)),
            Err(e) => {
                $rep.violations.push(tar_finding(&e, $member));
                return Ok(());
            }
        }
    };
}

fn verify_inner<R: Read>(
    rd: &mut XvaReader<R>,
    opts: &VerifyOptions,
    visitor: &mut dyn ImportVisitor,
    rep: &mut VerifyReport,
) -> Result<(), VerifyError> {
    // Rule 3: the first member is exactly ova.xml.
    let first = read_or_stop!(rd.next_member(), rep, None);
    let Some(first) = first else {
        rep.violations.push(Finding::new(
            Severity::Error,
            1,
            None,
            Some(0),
            "not a tar stream: no member found (empty input or end-of-archive first)",
        ));
        return Ok(());
    };
    member_findings(&first, &mut rep.violations);
    if first.name != "ova.xml" {
        rep.violations.push(Finding::new(
            Severity::Error,
            3,
            Some(&first.name),
            Some(first.header_offset),
            "the first member must be named exactly \"ova.xml\" (no ./, no directory); xapi rejects the file",
        ));
        return Ok(());
    }
    if first.size > MAX_OVA_XML {
        rep.violations.push(Finding::new(
            Severity::Error,
            7,
            Some("ova.xml"),
            Some(first.header_offset),
            format!("ova.xml is {} bytes; this validator reads at most {MAX_OVA_XML}", first.size),
        ));
        return Ok(());
    }
    let (xml, _) = read_or_stop!(rd.read_data_to_vec(MAX_OVA_XML), rep, Some("ova.xml"));
    let header = check_ova_xml_at(&xml, first.data_offset, &mut rep.violations);
    let Some(header) = header else {
        return Ok(());
    };
    rep.export_vsn = Some(header.export_vsn);
    rep.xapi_version = header.xapi_version;
    rep.vm_names = header.vm_names.clone();
    let Some(streamed) = header.streamed else {
        // A streamed VDI has no usable virtual_size: its chunks cannot be followed.
        return Ok(());
    };
    if header.export_vsn == 0 {
        // Already an E (rule 9); xapi's loop would then read checksum bodies as headers.
        return Ok(());
    }
    let vdis: Vec<StreamedVdi> =
        streamed.iter().map(|s| StreamedVdi { id: s.id.clone(), virtual_size: s.virtual_size }).collect();
    let mut hashing = Hashing::new(opts.compute_sha256, &vdis, visitor);
    let outcome = match import_loop(rd, &vdis, header.export_vsn, &mut hashing, &mut rep.violations) {
        Ok(o) => o,
        Err(LoopError::Input(e)) => return Err(VerifyError::Read(e)),
        Err(LoopError::Visitor(e)) => return Err(VerifyError::Visitor(e)),
    };
    rep.first_chunk_len = outcome.first_chunk_len;
    for (i, s) in streamed.iter().enumerate() {
        let st = outcome.disks.get(i).cloned().unwrap_or_default();
        let sha256 = if st.complete { hashing.digests.get(i).copied().flatten() } else { None };
        rep.disks.push(DiskReport {
            id: s.id.clone(),
            name_label: s.name_label.clone(),
            virtual_size: s.virtual_size,
            chunks: st.chunks,
            zero_gaps: st.zero_gaps,
            zero_chunks: st.zero_chunks,
            dummy_chunks: st.dummy_chunks,
            xxhash_members: st.xxhash_members,
            complete: st.complete,
            sha256,
        });
    }
    if outcome.stopped {
        return Ok(());
    }
    // After the last streamed chunk: xapi reads nothing more (except the export_vsn 1 table).
    let mut trailing = 0u64;
    let mut first_trailing = true;
    loop {
        let m = match rd.next_member() {
            Ok(m) => m,
            Err(e) if e.is_input_error() => return Err(VerifyError::Read(e)),
            Err(e) => {
                let mut f = tar_finding(&e, None);
                f.severity = Severity::Warning;
                f.message.push_str(" (after the data xapi reads, so it does not matter to xapi)");
                rep.violations.push(f);
                return Ok(());
            }
        };
        let Some(m) = m else { break };
        if first_trailing && header.export_vsn == 1 {
            first_trailing = false;
            continue; // the checksum table of export_vsn 1
        }
        first_trailing = false;
        trailing += 1;
        if trailing <= 5 {
            member_findings(&m, &mut rep.violations);
            rep.violations.push(Finding::new(
                Severity::Warning,
                5,
                Some(&m.name),
                Some(m.header_offset),
                "member after the last streamed chunk: xapi ignores it (chunks of a VDI that is not streamed, or junk)",
            ));
        }
    }
    if trailing > 5 {
        rep.violations.push(Finding::new(
            Severity::Warning,
            5,
            None,
            None,
            format!("{} more trailing members ignored", trailing - 5),
        ));
    }
    if header.export_vsn == 1 && first_trailing {
        rep.violations.push(Finding::new(
            Severity::Error,
            9,
            None,
            Some(rd.position()),
            "export_vsn is 1 but the trailing checksum-table member is missing",
        ));
    }
    match rd.end() {
        Some(End::ZeroBlocks) => {}
        _ => rep.violations.push(Finding::new(
            Severity::Warning,
            6,
            None,
            Some(rd.position()),
            "the archive does not end with two zero blocks (xapi does not need them; tar and other tools do)",
        )),
    }
    match rd.drain() {
        Ok(_) => {}
        Err(e) if e.is_input_error() => return Err(VerifyError::Read(e)),
        Err(e) => {
            let mut f = tar_finding(&e, None);
            f.severity = Severity::Warning;
            f.message.push_str(" (after the end of the archive)");
            rep.violations.push(f);
            return Ok(());
        }
    }
    rep.complete = true;
    Ok(())
}

#[cfg(test)]
mod tests;
