//! The XVA validator: every rule of `xva-format-and-xapi-import.md` §12, checked the way xapi's
//! importer would meet the file.
//!
//! ```text
//!   input ─► XvaReader (rule 1, 2, 4) ─► first member ova.xml (3)
//!         ─► xmlrpc::parse (7, 11, 13) ─► header checks (8–22) ─► streamed VDIs in read order (18)
//!         ─► reader::import_loop (5, 23–27, 29) ─► trailing members, end of archive (5, 6, 9)
//! ```
//!
//! Severities: **E** xapi rejects the import; **C** xapi accepts it but the disk is corrupted
//! or data misplaced; **W** a compatibility or portability risk. Rule 28 (omitted chunks really
//! were zero in the source) cannot be checked from the file. Reading stops at the first error
//! that makes further reading meaningless (a broken tar header, an unparsable ova.xml, a chunk
//! out of order); warnings are collected throughout.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::reader::{
    import_loop, member_findings, tar_finding, Compression, DiskRange, End, ImportVisitor, LoopError, StreamedVdi,
    XvaReader,
};
use crate::xmlrpc::parse::{self as rpc_parse, ocaml_float_of_string, ocaml_int64_of_string, NoteKind};
use crate::xmlrpc::Value;

/// Largest `ova.xml` read (real ones are tens of KiB).
pub const MAX_OVA_XML: u64 = 64 << 20;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// E: xapi rejects the import.
    Error,
    /// C: xapi imports it but the disk is corrupted or data misplaced.
    Corruption,
    /// W: a compatibility or portability risk.
    Warning,
}

impl Severity {
    /// `E`, `C` or `W`.
    pub fn letter(self) -> char {
        match self {
            Severity::Error => 'E',
            Severity::Corruption => 'C',
            Severity::Warning => 'W',
        }
    }
}

/// One rule violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Severity.
    pub severity: Severity,
    /// Rule number in §12 (1–29).
    pub rule: u8,
    /// The tar member concerned, if any.
    pub member: Option<String>,
    /// Byte offset in the uncompressed tar stream, if known.
    pub offset: Option<u64>,
    /// What is wrong (and what xapi does about it).
    pub message: String,
}

impl Finding {
    /// A finding.
    pub fn new(
        severity: Severity,
        rule: u8,
        member: Option<&str>,
        offset: Option<u64>,
        message: impl Into<String>,
    ) -> Finding {
        Finding { severity, rule, member: member.map(str::to_string), offset, message: message.into() }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rule {}", self.severity.letter(), self.rule)?;
        if let Some(m) = &self.member {
            write!(f, " {m}")?;
        }
        if let Some(o) = self.offset {
            write!(f, " @{o}")?;
        }
        write!(f, ": {}", self.message)
    }
}

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

/// SHA-256 per disk over `virtual_size` bytes, then forwards to the caller's visitor.
struct Hashing<'a> {
    on: bool,
    sizes: Vec<u64>,
    cur: Option<(usize, sha2::Sha256, u64)>,
    digests: Vec<Option<[u8; 32]>>,
    zeros: Vec<u8>,
    next: &'a mut dyn ImportVisitor,
}

impl<'a> Hashing<'a> {
    fn new(on: bool, vdis: &[StreamedVdi], next: &'a mut dyn ImportVisitor) -> Self {
        Hashing {
            on,
            sizes: vdis.iter().map(|v| v.virtual_size).collect(),
            cur: None,
            digests: vec![None; vdis.len()],
            zeros: if on { vec![0u8; 1 << 20] } else { Vec::new() },
            next,
        }
    }

    /// Hashes `len` zero bytes.
    fn zero(&mut self, mut len: u64) {
        if let Some((_, h, pos)) = self.cur.as_mut() {
            *pos = pos.saturating_add(len);
            while len > 0 {
                let n = len.min(self.zeros.len() as u64) as usize;
                h.update(&self.zeros[..n]);
                len -= n as u64;
            }
        }
    }

    /// How much of a range at `offset` of `len` bytes lies within the disk.
    fn within(&self, disk: usize, offset: u64, len: u64) -> u64 {
        let size = self.sizes.get(disk).copied().unwrap_or(0);
        size.saturating_sub(offset).min(len)
    }
}

impl ImportVisitor for Hashing<'_> {
    fn begin_disk(&mut self, disk: usize, vdi: &StreamedVdi) -> io::Result<()> {
        if self.on {
            self.cur = Some((disk, sha2::Sha256::new(), 0));
        }
        self.next.begin_disk(disk, vdi)
    }

    fn range(&mut self, range: DiskRange<'_>) -> io::Result<()> {
        if self.on {
            match range {
                DiskRange::Data { disk, offset, bytes } => {
                    let n = self.within(disk, offset, bytes.len() as u64) as usize;
                    if let Some((_, h, pos)) = self.cur.as_mut() {
                        h.update(&bytes[..n]);
                        *pos = pos.saturating_add(n as u64);
                    }
                }
                DiskRange::Zeros { disk, offset, len } => {
                    let n = self.within(disk, offset, len);
                    self.zero(n);
                }
            }
        }
        self.next.range(range)
    }

    fn end_disk(&mut self, disk: usize, written: u64) -> io::Result<()> {
        if self.on {
            let size = self.sizes.get(disk).copied().unwrap_or(0);
            let pos = self.cur.as_ref().map_or(0, |c| c.2);
            self.zero(size.saturating_sub(pos));
            if let Some((d, h, _)) = self.cur.take() {
                if let Some(slot) = self.digests.get_mut(d) {
                    *slot = Some(h.finalize().into());
                }
            }
        }
        self.next.end_disk(disk, written)
    }
}

// ---------------------------------------------------------------------------------------------
// ova.xml checks.

/// A streamed VDI as found in ova.xml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamedDisk {
    /// Id.
    pub id: String,
    /// `name_label`.
    pub name_label: String,
    /// `virtual_size`.
    pub virtual_size: u64,
}

/// What the stream phase needs from ova.xml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// `export_vsn` (missing = 0; unparsable counts as 0 too, with an E).
    pub export_vsn: i64,
    /// `(xapi_major, xapi_minor)` when both parse.
    pub xapi_version: Option<(i64, i64)>,
    /// VM `name_label`s.
    pub vm_names: Vec<String>,
    /// Streamed VDIs in read order (rule 18); `None` if one has no usable `virtual_size`.
    pub streamed: Option<Vec<StreamedDisk>>,
}

/// Checks an ova.xml document on its own (rules 7–22). `None` when it cannot be parsed far
/// enough to know the disks.
pub fn check_ova_xml(xml: &[u8], findings: &mut Vec<Finding>) -> Option<Header> {
    check_ova_xml_at(xml, 0, findings)
}

const OVA: Option<&str> = Some("ova.xml");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Str,
    Int,
    Bool,
    Double,
    Date,
    Map,
    Set,
    Ref,
    Enum(&'static [&'static str]),
}

/// A field: name, type, and which of HEAD / 1.249 / 1.14 / 1.9.50 require it (`R`) (§4).
type Field = (&'static str, Ty, &'static str);

const POWER: &[&str] = &["Halted", "Paused", "Running", "Suspended"];
const AFTER_SHUTDOWN: &[&str] = &["destroy", "restart"];
const AFTER_CRASH: &[&str] =
    &["destroy", "coredump_and_destroy", "restart", "coredump_and_restart", "preserve", "rename_restart"];
const DOMAIN_TYPE: &[&str] = &["hvm", "pv", "pv_in_pvh", "pvh", "unspecified"];
const VBD_MODE: &[&str] = &["RO", "RW"];
const VBD_TYPE: &[&str] = &["CD", "Disk", "Floppy"];
const VDI_TYPE: &[&str] = &[
    "system",
    "user",
    "ephemeral",
    "suspend",
    "crashdump",
    "ha_statefile",
    "metadata",
    "redo_log",
    "rrd",
    "pvs_cache",
    "cbt_metadata",
];

use Ty::*;

const VM_FIELDS: &[Field] = &[
    ("uuid", Str, "RRRR"),
    ("name_label", Str, "----"),
    ("name_description", Str, "----"),
    ("power_state", Enum(POWER), "-RRR"),
    ("user_version", Int, "RRRR"),
    ("is_a_template", Bool, "RRRR"),
    ("suspend_VDI", Ref, "-RRR"),
    ("suspend_SR", Ref, "----"),
    ("resident_on", Ref, "RRRR"),
    ("affinity", Ref, "RRRR"),
    ("memory_static_max", Int, "RRRR"),
    ("memory_dynamic_max", Int, "RRRR"),
    ("memory_dynamic_min", Int, "RRRR"),
    ("memory_static_min", Int, "RRRR"),
    ("memory_target", Int, "----"),
    ("memory_overhead", Int, "----"),
    ("VCPUs_params", Map, "RRRR"),
    ("VCPUs_max", Int, "RRRR"),
    ("VCPUs_at_startup", Int, "RRRR"),
    ("actions_after_shutdown", Enum(AFTER_SHUTDOWN), "RRRR"),
    ("actions_after_reboot", Enum(AFTER_SHUTDOWN), "RRRR"),
    ("actions_after_crash", Enum(AFTER_CRASH), "RRRR"),
    ("VBDs", Set, "----"),
    ("VIFs", Set, "----"),
    ("consoles", Set, "----"),
    ("crash_dumps", Set, "----"),
    ("VTPMs", Set, "----"),
    ("PV_bootloader", Str, "RRRR"),
    ("PV_kernel", Str, "RRRR"),
    ("PV_ramdisk", Str, "RRRR"),
    ("PV_args", Str, "RRRR"),
    ("PV_bootloader_args", Str, "RRRR"),
    ("PV_legacy_args", Str, "RRRR"),
    ("HVM_boot_policy", Str, "RRRR"),
    ("HVM_boot_params", Map, "RRRR"),
    ("HVM_shadow_multiplier", Double, "----"),
    ("platform", Map, "RRRR"),
    ("PCI_bus", Str, "RRRR"),
    ("other_config", Map, "RRRR"),
    ("domid", Int, "RRRR"),
    ("domarch", Str, "RRRR"),
    ("last_boot_CPU_flags", Map, "-RRR"),
    ("is_control_domain", Bool, "RRRR"),
    ("metrics", Ref, "RRRR"),
    ("guest_metrics", Ref, "RRRR"),
    ("recommendations", Str, "RRRR"),
    ("parent", Ref, "----"),
    ("has_vendor_device", Bool, "----"),
    ("generation_id", Str, "----"),
    ("domain_type", Enum(DOMAIN_TYPE), "----"),
    ("tags", Set, "----"),
    ("NVRAM", Map, "----"),
    ("xenstore_data", Map, "----"),
    ("is_a_snapshot", Bool, "----"),
    ("snapshot_of", Ref, "----"),
    ("snapshot_time", Date, "----"),
    ("ha_always_run", Bool, "----"),
    ("bios_strings", Map, "----"),
    ("start_delay", Int, "----"),
    ("shutdown_delay", Int, "----"),
    ("order", Int, "----"),
];

const VBD_FIELDS: &[Field] = &[
    ("uuid", Str, "RRRR"),
    ("VM", Ref, "RRRR"),
    ("VDI", Ref, "RRRR"),
    ("device", Str, "-RRR"),
    ("userdevice", Str, "RRRR"),
    ("bootable", Bool, "RRRR"),
    ("mode", Enum(VBD_MODE), "RRRR"),
    ("type", Enum(VBD_TYPE), "RRRR"),
    ("unpluggable", Bool, "----"),
    ("storage_lock", Bool, "RRRR"),
    ("empty", Bool, "RRRR"),
    ("other_config", Map, "RRRR"),
    ("currently_attached", Bool, "-RRR"),
    ("status_code", Int, "RRRR"),
    ("status_detail", Str, "RRRR"),
    ("runtime_properties", Map, "RRRR"),
    ("qos_algorithm_type", Str, "RRRR"),
    ("qos_algorithm_params", Map, "RRRR"),
    ("qos_supported_algorithms", Set, "RRRR"),
    ("metrics", Ref, "-RRR"),
];

const VDI_FIELDS: &[Field] = &[
    ("uuid", Str, "RRRR"),
    ("name_label", Str, "----"),
    ("name_description", Str, "----"),
    ("SR", Ref, "RRRR"),
    ("VBDs", Set, "----"),
    ("virtual_size", Int, "RRRR"),
    ("physical_utilisation", Int, "RRRR"),
    ("type", Enum(VDI_TYPE), "RRRR"),
    ("sharable", Bool, "RRRR"),
    ("read_only", Bool, "RRRR"),
    ("other_config", Map, "RRRR"),
    ("storage_lock", Bool, "RRRR"),
    ("managed", Bool, "RRRR"),
    ("missing", Bool, "RRRR"),
    ("parent", Ref, "RRRR"),
    ("location", Str, "----"),
    ("sm_config", Map, "----"),
    ("xenstore_data", Map, "----"),
    ("tags", Set, "----"),
];

const SR_FIELDS: &[Field] = &[
    ("uuid", Str, "RRRR"),
    ("name_label", Str, "----"),
    ("name_description", Str, "----"),
    ("VDIs", Set, "----"),
    ("PBDs", Set, "----"),
    ("virtual_allocation", Int, "RRRR"),
    ("physical_utilisation", Int, "RRRR"),
    ("physical_size", Int, "RRRR"),
    ("type", Str, "RRRR"),
    ("content_type", Str, "RRRR"),
    ("shared", Bool, "RRRR"),
    ("other_config", Map, "RRRR"),
];

const VIF_FIELDS: &[Field] = &[
    ("uuid", Str, "RRRR"),
    ("device", Str, "RRRR"),
    ("network", Ref, "RRRR"),
    ("VM", Ref, "RRRR"),
    ("MAC", Str, "RRRR"),
    ("MAC_autogenerated", Bool, "----"),
    ("MTU", Int, "RRRR"),
    ("other_config", Map, "RRRR"),
    ("currently_attached", Bool, "-RRR"),
    ("status_code", Int, "RRRR"),
    ("status_detail", Str, "RRRR"),
    ("runtime_properties", Map, "RRRR"),
    ("qos_algorithm_type", Str, "RRRR"),
    ("qos_algorithm_params", Map, "RRRR"),
    ("qos_supported_algorithms", Set, "RRRR"),
    ("metrics", Ref, "-RRR"),
];

const NETWORK_FIELDS: &[Field] = &[
    ("uuid", Str, "RRRR"),
    ("name_label", Str, "----"),
    ("name_description", Str, "----"),
    ("VIFs", Set, "----"),
    ("PIFs", Set, "----"),
    ("bridge", Str, "--RR"),
    ("other_config", Map, "RRRR"),
];

/// Classes xapi knows (others are ignored), §3.2.
const KNOWN_CLASSES: &[&str] = &[
    "VM",
    "VBD",
    "VDI",
    "SR",
    "VIF",
    "network",
    "VM_metrics",
    "VM_guest_metrics",
    "host",
    "GPU_group",
    "VGPU",
    "VGPU_type",
    "PVS_site",
    "PVS_proxy",
    "VTPM",
];

fn fields_of(class: &str) -> Option<&'static [Field]> {
    Some(match class {
        "VM" => VM_FIELDS,
        "VBD" => VBD_FIELDS,
        "VDI" => VDI_FIELDS,
        "SR" => SR_FIELDS,
        "VIF" => VIF_FIELDS,
        "network" => NETWORK_FIELDS,
        _ => return None,
    })
}

/// An object of the export.
struct Obj<'a> {
    class: &'a str,
    id: &'a str,
    snap: &'a Value,
}

impl Obj<'_> {
    fn what(&self) -> String {
        format!("{} {}", self.class, self.id)
    }
    fn str(&self, k: &str) -> Option<&str> {
        match self.snap.get(k) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }
    fn int(&self, k: &str) -> Option<i64> {
        match self.snap.get(k) {
            Some(Value::Int(i)) => Some(*i),
            Some(Value::String(s)) => ocaml_int64_of_string(s),
            _ => None,
        }
    }
    fn bool(&self, k: &str) -> Option<bool> {
        match self.snap.get(k) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }
    /// Enum value, lower-cased (xapi matches case-insensitively).
    fn enum_lc(&self, k: &str) -> Option<String> {
        self.str(k).map(str::to_ascii_lowercase)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Int(_) => "an <int>",
        Value::Bool(_) => "a <boolean>",
        Value::Double(_) => "a <double>",
        Value::DateTime(_) => "a <dateTime.iso8601>",
        Value::Struct(_) => "a <struct>",
        Value::Array(_) => "an <array>",
    }
}

/// ISO 8601 as xapi's `Date.of_string` takes it: `YYYYMMDDTHH:MM:SS` or `YYYY-MM-DDTHH:MM:SS`,
/// optional fraction, optional `Z` or `±HH:MM` / `±HHMM`.
fn is_iso8601(s: &str) -> bool {
    let Some((date, time)) = s.split_once('T') else {
        return false;
    };
    let d: String = date.chars().filter(|&c| c != '-').collect();
    if d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()) || (date.len() != 8 && date.len() != 10) {
        return false;
    }
    let (clock, tz) = match time.find(['Z', '+', '-']) {
        Some(i) => (&time[..i], &time[i..]),
        None => (time, ""),
    };
    let clock = clock.split('.').next().unwrap_or("");
    let c: Vec<&str> = clock.split(':').collect();
    let clock_ok = c.len() == 3 && c.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()));
    let tz_ok =
        tz.is_empty() || tz == "Z" || (tz.len() >= 3 && tz[1..].bytes().all(|b| b.is_ascii_digit() || b == b':'));
    clock_ok && tz_ok
}

/// Rule 11/12 type check of one field value; pushes findings.
fn check_type(obj: &Obj<'_>, name: &str, ty: Ty, v: &Value, out: &mut Vec<Finding>) {
    let bad = |out: &mut Vec<Finding>, rule: u8, msg: String| {
        out.push(Finding::new(Severity::Error, rule, OVA, None, format!("{}: {name}: {msg}", obj.what())));
    };
    match (ty, v) {
        (Str | Ref, Value::String(_)) => {}
        (Str | Ref, v) => bad(out, 11, format!("must be a string, is {}", type_name(v))),
        (Int, Value::Int(_)) => {}
        (Int, Value::String(s)) if ocaml_int64_of_string(s).is_some() => {}
        (Int, Value::String(s)) => bad(out, 11, format!("{s:?} is not a 64-bit integer")),
        (Int, v) => bad(out, 11, format!("must be an integer, is {}", type_name(v))),
        (Bool, Value::Bool(_)) => {}
        (Bool, v) => bad(
            out,
            11,
            format!(
                "must be <boolean>0</boolean> or <boolean>1</boolean>, is {} (xapi fails with \"Expected bool\")",
                type_name(v)
            ),
        ),
        (Double, Value::Double(_) | Value::Int(_)) => {}
        (Double, Value::String(s)) if ocaml_float_of_string(s).is_some() => {}
        (Double, v) => bad(out, 11, format!("must be a <double>, is {}", type_name(v))),
        (Date, Value::DateTime(s) | Value::String(s)) if is_iso8601(s) => {}
        (Date, v) => bad(out, 11, format!("must be an ISO 8601 date, is {}", type_name(v))),
        (Map, Value::Struct(m)) => {
            if let Some((k, v)) = m.iter().find(|(_, v)| !matches!(v, Value::String(_))) {
                bad(out, 11, format!("map values must be strings; {k:?} is {}", type_name(v)));
            }
        }
        (Map, v) => bad(out, 11, format!("must be a <struct> map, is {}", type_name(v))),
        (Set, Value::Array(items)) => {
            if let Some(v) = items.iter().find(|v| !matches!(v, Value::String(_))) {
                bad(out, 11, format!("set elements must be strings, one is {}", type_name(v)));
            }
        }
        (Set, v) => bad(out, 11, format!("must be an <array>, is {}", type_name(v))),
        (Enum(vals), Value::String(s)) => {
            if !vals.iter().any(|e| e.eq_ignore_ascii_case(s)) {
                bad(out, 12, format!("{s:?} is not one of {} (xapi fails the import)", vals.join(", ")));
            }
        }
        (Enum(_), v) => bad(out, 11, format!("must be a string, is {}", type_name(v))),
    }
}

fn note_finding(n: &rpc_parse::Note, base: u64) -> Option<Finding> {
    let path = n.path.join(".");
    let (sev, rule, msg) = match &n.kind {
        NoteKind::BoolBody(b) => {
            (Severity::Warning, 11, format!("{path}: <boolean> body {b:?} is neither 0 nor 1; xapi reads it as false"))
        }
        NoteKind::ScalarWhitespace(s) => {
            (Severity::Warning, 13, format!("{path}: value {s:?} has leading/trailing whitespace, which xapi keeps"))
        }
        NoteKind::NameWhitespace(s) => {
            (Severity::Warning, 13, format!("member name {s:?} has whitespace, which becomes part of the key"))
        }
        NoteKind::TrailingContent => {
            (Severity::Warning, 7, "content after the root <value> element is ignored by xapi".to_string())
        }
        _ => return None,
    };
    Some(Finding::new(sev, rule, OVA, Some(base + n.offset as u64), msg))
}

fn check_ova_xml_at(xml: &[u8], base: u64, out: &mut Vec<Finding>) -> Option<Header> {
    let e = |out: &mut Vec<Finding>, rule: u8, msg: String| {
        out.push(Finding::new(Severity::Error, rule, OVA, Some(base), msg));
    };
    let w = |out: &mut Vec<Finding>, rule: u8, msg: String| {
        out.push(Finding::new(Severity::Warning, rule, OVA, Some(base), msg));
    };
    // Rule 7.
    let parsed = match rpc_parse::parse(xml) {
        Ok(p) => p,
        Err(err) => {
            out.push(Finding::new(
                Severity::Error,
                7,
                OVA,
                Some(base + err.offset as u64),
                format!("ova.xml does not parse as xapi parses it: {err}"),
            ));
            return None;
        }
    };
    out.extend(parsed.notes.iter().filter_map(|n| note_finding(n, base)));
    let root = &parsed.value;
    // Rule 8.
    if !matches!(root, Value::Struct(_)) {
        e(out, 8, format!("the root value must be a <struct>, is {}", type_name(root)));
        return None;
    }
    let version = root.get("version");
    let objects = root.get("objects");
    let mut fatal = false;
    if !matches!(version, Some(Value::Struct(_))) {
        e(out, 8, "the top-level struct has no \"version\" struct".into());
        fatal = true;
    }
    let Some(Value::Array(objects)) = objects else {
        e(out, 8, "the top-level struct has no \"objects\" array".into());
        return None;
    };
    // Rule 9.
    let mut export_vsn = 0i64;
    let mut xapi_version = None;
    if let Some(v @ Value::Struct(_)) = version {
        for k in ["hostname", "date", "product_version", "product_brand", "build_number"] {
            match v.get(k) {
                Some(Value::String(_)) => {}
                Some(other) => e(out, 9, format!("version.{k} must be a string, is {}", type_name(other))),
                None => e(out, 9, format!("version.{k} is missing (\"Failed to find key '{k}' in version data\")")),
            }
        }
        let int = |k: &str| match v.get(k) {
            Some(Value::Int(i)) => Ok(Some(*i)),
            Some(Value::String(s)) => ocaml_int64_of_string(s).map(Some).ok_or(()),
            Some(_) => Err(()),
            None => Ok(None),
        };
        let major = int("xapi_major");
        let minor = int("xapi_minor");
        match (major, minor) {
            (Ok(Some(a)), Ok(Some(b))) => {
                xapi_version = Some((a, b));
                if (a, b) > (1, 1) {
                    w(out, 9, format!("xapi_major.xapi_minor is {a}.{b}: hosts whose xapi is older refuse the import (IMPORT_INCOMPATIBLE_VERSION); 1.1 reaches every host"));
                }
            }
            (a, b) => {
                for (k, r) in [("xapi_major", a), ("xapi_minor", b)] {
                    match r {
                        Ok(Some(_)) => {}
                        Ok(None) => e(out, 9, format!("version.{k} is missing")),
                        Err(()) => e(out, 9, format!("version.{k} is not an integer")),
                    }
                }
            }
        }
        match int("export_vsn") {
            Ok(Some(n)) => export_vsn = n,
            Ok(None) => export_vsn = 0,
            Err(()) => e(out, 9, "version.export_vsn is not an integer".into()),
        }
        if export_vsn == 0 {
            e(out, 9, "export_vsn is 0 (or missing): current xapi cannot read such a stream; write 2".into());
        } else if export_vsn != 2 {
            w(out, 9, format!("export_vsn is {export_vsn}; xapi writes 2"));
        }
    }
    // Objects (rule 8), ids (rule 14), fields (10–12).
    let mut objs: Vec<Obj<'_>> = Vec::new();
    let mut seen_ids: HashSet<&str> = HashSet::new();
    for (i, o) in objects.iter().enumerate() {
        if !matches!(o, Value::Struct(_)) {
            e(out, 8, format!("objects[{i}] must be a <struct>, is {}", type_name(o)));
            fatal = true;
            continue;
        }
        let class = match o.get("class") {
            Some(Value::String(s)) => s.as_str(),
            _ => {
                e(out, 8, format!("objects[{i}] has no string \"class\""));
                fatal = true;
                continue;
            }
        };
        let id = match o.get("id") {
            Some(Value::String(s)) => s.as_str(),
            _ => {
                e(out, 8, format!("objects[{i}] ({class}) has no string \"id\""));
                fatal = true;
                continue;
            }
        };
        let Some(snap) = o.get("snapshot") else {
            e(out, 8, format!("objects[{i}] ({class} {id}) has no \"snapshot\""));
            fatal = true;
            continue;
        };
        if !KNOWN_CLASSES.contains(&class) {
            w(
                out,
                8,
                format!(
                    "objects[{i}]: class {class:?} is unknown to xapi and ignored (class names are case-sensitive)"
                ),
            );
            continue;
        }
        if !seen_ids.insert(id) {
            e(out, 14, format!("object id {id:?} is used more than once; xapi silently uses the first"));
            continue;
        }
        let Some(fields) = fields_of(class) else {
            continue;
        };
        if !matches!(snap, Value::Struct(_)) {
            e(out, 8, format!("{class} {id}: snapshot must be a <struct>, is {}", type_name(snap)));
            fatal = true;
            continue;
        }
        let obj = Obj { class, id, snap };
        for &(name, ty, req) in fields {
            match snap.get(name) {
                Some(v) => check_type(&obj, name, ty, v, out),
                None if req.starts_with('R') => e(
                    out,
                    10,
                    format!("{}: required field {name} is missing (\"Field {name} not present in rpc\")", obj.what()),
                ),
                None if req.contains('R') => {
                    w(out, 10, format!("{}: field {name} is missing; xapi versions before HEAD require it", obj.what()))
                }
                None => {}
            }
        }
        for k in ["allowed_operations", "current_operations"] {
            let non_empty = match snap.get(k) {
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::Struct(m)) => !m.is_empty(),
                _ => false,
            };
            if non_empty {
                w(out, 12, format!("{}: {k} is not empty; emit it empty as xapi's exporter does (enum members differ between versions)", obj.what()));
            }
        }
        objs.push(obj);
    }
    if fatal {
        return None;
    }
    let by_id: HashMap<&str, &Obj<'_>> = objs.iter().map(|o| (o.id, o)).collect();
    let of_class = |c: &'static str| objs.iter().filter(move |o| o.class == c);
    let is = |id: &str, class: &str| by_id.get(id).is_some_and(|o| o.class == class);
    let vm_names: Vec<String> = of_class("VM").map(|o| o.str("name_label").unwrap_or("").to_string()).collect();
    // Rule 15: references.
    for vbd in of_class("VBD") {
        if let Some(vm) = vbd.str("VM") {
            if !is(vm, "VM") {
                e(
                    out,
                    15,
                    format!(
                        "{}: VM {vm:?} is not a VM object of this export (IMPORT_ERROR_FAILED_TO_FIND_OBJECT)",
                        vbd.what()
                    ),
                );
            }
        }
    }
    for vif in of_class("VIF") {
        let migrate = matches!(vif.snap.get("other_config"), Some(Value::Struct(m)) if m.iter().any(|(k, _)| k.contains("storage_migrate") || k.contains("storage-migrate")));
        if migrate {
            continue;
        }
        if let Some(vm) = vif.str("VM") {
            if !is(vm, "VM") {
                e(out, 15, format!("{}: VM {vm:?} is not a VM object of this export", vif.what()));
            }
        }
        if let Some(n) = vif.str("network") {
            if !is(n, "network") {
                e(out, 15, format!("{}: network {n:?} is not a network object of this export", vif.what()));
            }
        }
    }
    for vdi in of_class("VDI") {
        if let Some(sr) = vdi.str("SR") {
            if !is(sr, "SR") {
                e(
                    out,
                    15,
                    format!(
                        "{}: SR {sr:?} is not an SR object of this export (IMPORT_ERROR_FAILED_TO_FIND_OBJECT)",
                        vdi.what()
                    ),
                );
            }
        }
    }
    // Rules 16, 17.
    let mut userdevices: BTreeMap<(&str, String), &str> = BTreeMap::new();
    for vbd in of_class("VBD") {
        let ty = vbd.enum_lc("type").unwrap_or_default();
        let mode = vbd.enum_lc("mode").unwrap_or_default();
        let vdi_id = vbd.str("VDI").unwrap_or("");
        let vdi = by_id.get(vdi_id).filter(|o| o.class == "VDI");
        if ty == "disk" && vdi.is_none() {
            w(
                out,
                16,
                format!("{}: Disk VBD whose VDI {vdi_id:?} is not in the export; xapi silently drops it", vbd.what()),
            );
        }
        if ty == "cd" && mode == "rw" {
            e(out, 17, format!("{}: a CD VBD must be mode RO", vbd.what()));
        }
        if vbd.bool("empty") == Some(true) && ty != "cd" {
            e(out, 17, format!("{}: only CD VBDs may be empty", vbd.what()));
        }
        if let Some(vdi) = vdi {
            if mode == "rw" && vdi.bool("read_only") == Some(true) {
                e(out, 17, format!("{}: RW VBD on read-only VDI {}", vbd.what(), vdi.id));
            }
            if let Some(t) = vdi.enum_lc("type") {
                if matches!(t.as_str(), "ha_statefile" | "redo_log" | "cbt_metadata") {
                    e(out, 17, format!("{}: VBD.create refuses VDI {} of type {t}", vbd.what(), vdi.id));
                }
            }
        }
        if let Some(ud) = vbd.str("userdevice") {
            let ok = ud.parse::<u32>().ok().filter(|n| *n <= 254 && (ud == "0" || !ud.starts_with('0'))).is_some();
            if !ok && ud != "autodetect" {
                e(out, 17, format!("{}: userdevice {ud:?} is not a number 0..254", vbd.what()));
            }
            let vm = vbd.str("VM").unwrap_or("");
            if ok {
                if let Some(prev) = userdevices.insert((vm, ud.to_string()), vbd.id) {
                    e(out, 17, format!("{}: userdevice {ud} is already used by VBD {prev} of the same VM", vbd.what()));
                }
            }
        }
    }
    // Rules 19, 20.
    for vm in of_class("VM") {
        let what = vm.what();
        let m = |k| vm.int(k);
        if let (Some(smin), Some(dmin), Some(dmax), Some(smax)) =
            (m("memory_static_min"), m("memory_dynamic_min"), m("memory_dynamic_max"), m("memory_static_max"))
        {
            if !(smin <= dmin && dmin <= dmax && dmax <= smax) {
                w(out, 19, format!("{what}: memory must satisfy static_min <= dynamic_min <= dynamic_max <= static_max (MEMORY_CONSTRAINT_VIOLATION at VM.start)"));
            }
        }
        if let (Some(max), Some(start)) = (m("VCPUs_max"), m("VCPUs_at_startup")) {
            if max < 1 || start < 1 || start > max {
                w(out, 19, format!("{what}: need VCPUs_max >= 1 and 1 <= VCPUs_at_startup <= VCPUs_max"));
            }
        }
        if let Some(v) = vm.snap.get("HVM_shadow_multiplier") {
            let f = match v {
                Value::Double(d) => Some(*d),
                Value::Int(i) => Some(*i as f64),
                Value::String(s) => ocaml_float_of_string(s),
                _ => None,
            };
            if f.is_some_and(|f| f < 1.0) {
                w(out, 19, format!("{what}: HVM_shadow_multiplier must be >= 1"));
            }
        }
        let hvm = vm.str("HVM_boot_policy").is_some_and(|p| !p.is_empty());
        let crash = vm.enum_lc("actions_after_crash").unwrap_or_default();
        if crash == "rename_restart" || (hvm && crash.starts_with("coredump")) {
            w(out, 19, format!("{what}: actions_after_crash {crash} is rejected at VM.start"));
        }
        if let Some(dt) = vm.enum_lc("domain_type") {
            let consistent = match dt.as_str() {
                "hvm" => hvm,
                "pv" | "pvh" | "pv_in_pvh" => !hvm,
                _ => true,
            };
            if !consistent {
                w(
                    out,
                    20,
                    format!(
                        "{what}: domain_type {dt} does not match HVM_boot_policy {:?}",
                        vm.str("HVM_boot_policy").unwrap_or("")
                    ),
                );
            }
        }
        if !hvm {
            let bl = vm.str("PV_bootloader").unwrap_or("");
            let kernel = vm.str("PV_kernel").unwrap_or("");
            if !bl.is_empty() && !kernel.is_empty() {
                w(out, 20, format!("{what}: PV_bootloader is set, so PV_kernel {kernel:?} is ignored"));
            } else if bl.is_empty() && !kernel.is_empty() {
                w(out, 20, format!("{what}: direct kernel boot: {kernel:?} must exist on the host in its allowed directory (cannot be checked offline)"));
            } else if bl.is_empty() && kernel.is_empty() {
                w(out, 20, format!("{what}: PV guest with neither PV_bootloader nor PV_kernel cannot boot"));
            }
        }
    }
    // Rules 21, 22.
    for vif in of_class("VIF") {
        if vif.str("MAC").is_some_and(|m| !m.is_empty()) {
            w(out, 21, format!("{}: MAC is set but a normal import (restore=false) regenerates it", vif.what()));
        }
    }
    for net in of_class("network") {
        let nl = net.str("name_label").unwrap_or("");
        let br = net.str("bridge").unwrap_or("");
        if nl.is_empty() && br.is_empty() {
            w(
                out,
                22,
                format!(
                    "{}: neither name_label nor bridge is set; xapi will create a new internal network",
                    net.what()
                ),
            );
        }
    }
    // Rule 18: streamed set in read order.
    let mut streamed_ids: Vec<&str> = Vec::new();
    for vdi in of_class("VDI") {
        let by_vbd =
            of_class("VBD").any(|b| b.str("VDI") == Some(vdi.id) && b.enum_lc("type").is_some_and(|t| t != "cd"));
        let suspend = vdi.enum_lc("type").as_deref() == Some("suspend");
        let sr_ok = vdi
            .str("SR")
            .and_then(|sr| by_id.get(sr))
            .filter(|o| o.class == "SR")
            .is_some_and(|sr| sr.str("content_type") != Some("iso"));
        if (by_vbd || suspend) && sr_ok {
            streamed_ids.push(vdi.id);
        }
    }
    streamed_ids.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut streamed = Some(Vec::new());
    for id in streamed_ids {
        let Some(vdi) = by_id.get(id) else { continue };
        match vdi.int("virtual_size").and_then(|s| u64::try_from(s).ok()) {
            Some(vs) => {
                if let Some(s) = streamed.as_mut() {
                    s.push(StreamedDisk {
                        id: id.to_string(),
                        name_label: vdi.str("name_label").unwrap_or("").to_string(),
                        virtual_size: vs,
                    });
                }
            }
            None => {
                if vdi.int("virtual_size").is_some() {
                    e(out, 11, format!("{}: virtual_size is negative", vdi.what()));
                }
                streamed = None;
            }
        }
    }
    Some(Header { export_vsn, xapi_version, vm_names, streamed })
}

#[cfg(test)]
mod tests {
    use super::super::reader::testtar::*;
    use super::*;

    const HVM: &str = include_str!("../../testdata/xva/spec-6a-hvm.ova.xml");
    const PV: &str = include_str!("../../testdata/xva/spec-6b-pv.ova.xml");
    const GIB10: u64 = 10 << 30;

    fn rules(f: &[Finding]) -> Vec<(char, u8)> {
        f.iter().map(|f| (f.severity.letter(), f.rule)).collect()
    }

    /// ova.xml with the 6.a example's disk resized to `size`.
    fn hvm_sized(size: u64) -> String {
        HVM.replace(
            "<name>virtual_size</name><value>10737418240</value>",
            &format!("<name>virtual_size</name><value>{size}</value>"),
        )
    }

    /// An XVA: ova.xml + a 3-chunk disk Ref:2 of 2 MiB + 5 bytes, chunk 1 omitted (zeros).
    fn xva_with(xml: &str) -> Vec<u8> {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", xml.as_bytes());
        chunk(&mut t, "Ref:2/00000000", &vec![1u8; 1 << 20]);
        chunk(&mut t, "Ref:2/00000002", &[2u8; 5]);
        end(&mut t);
        t
    }

    fn good() -> Vec<u8> {
        xva_with(&hvm_sized((2 << 20) + 5))
    }

    fn verify(t: &[u8]) -> VerifyReport {
        verify_reader(t, &VerifyOptions::default()).unwrap()
    }

    /// Runs the validator over ova.xml = 6.a with `from` replaced by `to` and returns findings.
    fn hvm_edit(from: &str, to: &str) -> Vec<Finding> {
        assert!(HVM.contains(from), "{from}");
        let mut f = Vec::new();
        check_ova_xml(HVM.replace(from, to).as_bytes(), &mut f);
        f
    }

    fn has(f: &[Finding], sev: char, rule: u8) -> bool {
        f.iter().any(|x| x.severity.letter() == sev && x.rule == rule)
    }

    #[test]
    fn spec_examples_validate_clean() {
        for (name, xml) in [("6.a", HVM), ("6.b", PV)] {
            let mut f = Vec::new();
            let h = check_ova_xml(xml.as_bytes(), &mut f).unwrap();
            assert!(f.is_empty(), "{name}: {f:#?}");
            assert_eq!(h.export_vsn, 2);
            assert_eq!(h.xapi_version, Some((1, 1)));
            let s = h.streamed.unwrap();
            assert_eq!(s.len(), 1);
            assert_eq!((s[0].id.as_str(), s[0].virtual_size), ("Ref:2", GIB10));
        }
    }

    #[test]
    fn a_good_stream_verifies_clean_with_the_right_digest() {
        let r = verify(&good());
        assert!(r.violations.is_empty(), "{:#?}", r.violations);
        assert!(r.complete);
        assert_eq!(r.vm_names, ["web01"]);
        let d = &r.disks[0];
        assert_eq!((d.chunks, d.zero_gaps, d.complete), (2, 1, true));
        let mut disk = vec![1u8; 1 << 20];
        disk.extend(vec![0u8; 1 << 20]);
        disk.extend([2u8; 5]);
        let want: [u8; 32] = sha2::Sha256::digest(&disk).into();
        assert_eq!(d.sha256, Some(want));
    }

    #[test]
    fn rule01_gzip_and_zstd_inputs_are_read() {
        use std::io::Write;
        let t = good();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&t).unwrap();
        let r = verify(&gz.finish().unwrap());
        assert_eq!(r.compression, Compression::Gzip);
        assert!(r.is_ok() && r.violations.is_empty(), "{:?}", r.violations);
        let r = verify(&zstd::encode_all(&t[..], 3).unwrap());
        assert_eq!(r.compression, Compression::Zstd);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.disks[0].sha256, verify(&t).disks[0].sha256);
        // not a tar at all
        let r = verify(b"hello world, this is not a tar file");
        assert!(has(&r.violations, 'E', 2) || has(&r.violations, 'E', 1), "{:?}", r.violations);
        // a corrupt gzip body
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&t).unwrap();
        let mut bad = gz.finish().unwrap();
        bad.truncate(bad.len() / 2);
        let r = verify(&bad);
        assert!(!r.is_ok(), "{:?}", r.violations);
    }

    #[test]
    fn rule02_bad_header_checksum() {
        let mut t = good();
        t[0] = b'O'; // "Ova.xml": the stored checksum no longer matches
        let r = verify(&t);
        assert_eq!(rules(&r.violations), [('E', 2)], "{:?}", r.violations);
        assert_eq!(r.violations[0].offset, Some(0));
    }

    #[test]
    fn rule02_truncated_member_data() {
        let t = good();
        let r = verify(&t[..t.len() / 2]);
        assert!(has(&r.violations, 'E', 2), "{:?}", r.violations);
    }

    #[test]
    fn rule03_first_member_must_be_ova_xml() {
        let mut t = Vec::new();
        file(&mut t, "./ova.xml", HVM.as_bytes());
        end(&mut t);
        let r = verify(&t);
        assert_eq!(rules(&r.violations), [('E', 3)]);
    }

    #[test]
    fn rule04_pax_header_is_warned() {
        let xml = hvm_sized(5);
        let mut t = Vec::new();
        let body = b"16 path=ova.xml\n";
        let mut h = H::new("PaxHeader/ova.xml", body.len() as u64);
        h.typeflag = b'x';
        member(&mut t, &h, body);
        file(&mut t, "ova.xml", xml.as_bytes());
        chunk(&mut t, "Ref:2/00000000", b"12345");
        end(&mut t);
        let r = verify(&t);
        assert_eq!(rules(&r.violations), [('W', 4)], "{:?}", r.violations);
    }

    #[test]
    fn rule04_prefix_field_is_warned() {
        let xml = hvm_sized(5);
        let mut t = Vec::new();
        file(&mut t, "ova.xml", xml.as_bytes());
        let mut h = H::new("00000000", 5);
        h.prefix = "Ref:2".into();
        member(&mut t, &h, b"12345");
        file(&mut t, "Ref:2/00000000.checksum", crate::xva::writer::ChecksumKind::Sha1.body(b"12345").as_bytes());
        end(&mut t);
        let r = verify(&t);
        assert_eq!(rules(&r.violations), [('W', 4)], "{:?}", r.violations);
    }

    #[test]
    fn rule05_directory_entry() {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", hvm_sized(5).as_bytes());
        let mut h = H::new("Ref:2/", 0);
        h.typeflag = b'5';
        member(&mut t, &h, b"");
        chunk(&mut t, "Ref:2/00000000", b"12345");
        end(&mut t);
        let r = verify(&t);
        assert!(has(&r.violations, 'E', 5), "{:?}", r.violations);
        assert!(!r.complete);
    }

    #[test]
    fn rule05_extra_file_and_trailing_junk() {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", hvm_sized(5).as_bytes());
        file(&mut t, "README", b"hi");
        let r = verify(&t);
        assert!(has(&r.violations, 'E', 5), "{:?}", r.violations);

        let mut t = Vec::new();
        file(&mut t, "ova.xml", hvm_sized(5).as_bytes());
        chunk(&mut t, "Ref:2/00000000", b"12345");
        file(&mut t, "junk", b"x");
        end(&mut t);
        let r = verify(&t);
        assert_eq!(rules(&r.violations), [('W', 5)], "{:?}", r.violations);
    }

    #[test]
    fn rule06_missing_end_of_archive() {
        let t = good();
        let r = verify(&t[..t.len() - 1024]);
        assert_eq!(rules(&r.violations), [('W', 6)], "{:?}", r.violations);
        assert!(r.is_ok());
    }

    #[test]
    fn rule07_malformed_xml() {
        let f = hvm_edit("</struct></value></member>\n    </struct></value>\n    <value><struct>\n      <member><name>class</name><value>VBD", "</struct></value></member>\n    </strct></value>\n    <value><struct>\n      <member><name>class</name><value>VBD");
        assert_eq!(rules(&f), [('E', 7)], "{f:?}");
        let r = verify(&xva_with("<value><struct></value>"));
        assert_eq!(rules(&r.violations), [('E', 7)]);
        assert!(r.violations[0].offset.unwrap() > 512);
    }

    #[test]
    fn rule08_structure() {
        let mut f = Vec::new();
        check_ova_xml(b"<value><array><data/></array></value>", &mut f);
        assert_eq!(rules(&f), [('E', 8)]);
        let f = hvm_edit("<name>objects</name>", "<name>objekts</name>");
        assert_eq!(rules(&f), [('E', 8)]);
        let f = hvm_edit(
            "<member><name>class</name><value>network</value></member>",
            "<member><name>class</name><value>Network</value></member>",
        );
        assert!(has(&f, 'W', 8), "{f:?}");
    }

    #[test]
    fn rule09_version() {
        let f = hvm_edit("<member><name>hostname</name><value>localhost</value></member>", "");
        assert_eq!(rules(&f), [('E', 9)]);
        let f = hvm_edit("<name>xapi_minor</name><value>1</value>", "<name>xapi_minor</name><value>20</value>");
        assert_eq!(rules(&f), [('W', 9)]);
        let f = hvm_edit("<name>xapi_major</name><value>1</value>", "<name>xapi_major</name><value>one</value>");
        assert_eq!(rules(&f), [('E', 9)]);
        let f = hvm_edit("<member><name>export_vsn</name><value>2</value></member>", "");
        assert_eq!(rules(&f), [('E', 9)]);
        let f = hvm_edit("<name>export_vsn</name><value>2</value>", "<name>export_vsn</name><value>1</value>");
        assert_eq!(rules(&f), [('W', 9)]);
        // export_vsn 1 without the trailing table
        let r = verify(&xva_with(
            &hvm_sized((2 << 20) + 5)
                .replace("<name>export_vsn</name><value>2</value>", "<name>export_vsn</name><value>1</value>"),
        ));
        assert_eq!(rules(&r.violations), [('W', 9), ('E', 9)], "{:?}", r.violations);
    }

    #[test]
    fn rule10_missing_required_field() {
        let f = hvm_edit("<member><name>user_version</name><value>1</value></member>", "");
        assert_eq!(rules(&f), [('E', 10)]);
        assert!(f[0].message.contains("VM Ref:0: required field user_version"), "{}", f[0].message);
        // only older versions require power_state
        let f = hvm_edit("<member><name>power_state</name><value>Halted</value></member>", "");
        assert_eq!(rules(&f), [('W', 10)]);
        // network.bridge: only 1.14 and 1.9.50
        let f = hvm_edit("<member><name>bridge</name><value>xenbr0</value></member>", "");
        assert_eq!(rules(&f), [('W', 10)]);
    }

    #[test]
    fn rule11_boolean_true_and_types() {
        let f = hvm_edit(
            "<name>is_a_template</name><value><boolean>0</boolean>",
            "<name>is_a_template</name><value><boolean>true</boolean>",
        );
        assert_eq!(rules(&f), [('W', 11)], "{f:?}");
        let f = hvm_edit(
            "<name>is_a_template</name><value><boolean>0</boolean></value>",
            "<name>is_a_template</name><value>0</value>",
        );
        assert_eq!(rules(&f), [('E', 11)]);
        let f = hvm_edit("<name>VCPUs_max</name><value>2</value>", "<name>VCPUs_max</name><value>two</value>");
        assert_eq!(rules(&f), [('E', 11)]);
        let f = hvm_edit(
            "<member><name>acpi</name><value>1</value></member>",
            "<member><name>acpi</name><value><boolean>1</boolean></value></member>",
        );
        assert_eq!(rules(&f), [('E', 11)]);
        let f =
            hvm_edit("<name>tags</name><value><array><data/></array></value>", "<name>tags</name><value>none</value>");
        assert_eq!(rules(&f), [('E', 11)]);
    }

    #[test]
    fn rule12_unknown_enum_and_operations() {
        let f = hvm_edit("<name>mode</name><value>RW</value>", "<name>mode</name><value>rw</value>");
        assert!(f.is_empty(), "case-insensitive: {f:?}");
        let f = hvm_edit("<name>mode</name><value>RW</value>", "<name>mode</name><value>ReadWrite</value>");
        assert_eq!(rules(&f), [('E', 12)]);
        let f = hvm_edit("<name>domain_type</name><value>hvm</value>", "<name>domain_type</name><value>hvm2</value>");
        assert_eq!(rules(&f), [('E', 12)]);
        let f = hvm_edit("<member><name>power_state</name>", "<member><name>allowed_operations</name><value><array><data><value>start</value></data></array></value></member><member><name>power_state</name>");
        assert_eq!(rules(&f), [('W', 12)]);
    }

    #[test]
    fn rule13_whitespace() {
        let f =
            hvm_edit("<name>name_label</name><value>web01</value>", "<name>name_label</name><value> web01 </value>");
        assert_eq!(rules(&f), [('W', 13)]);
    }

    #[test]
    fn rule14_duplicate_ids() {
        let f = hvm_edit("<member><name>id</name><value>Ref:3</value>", "<member><name>id</name><value>Ref:1</value>");
        assert!(has(&f, 'E', 14), "{f:?}");
    }

    #[test]
    fn rule15_dangling_references() {
        let f = hvm_edit(
            "<name>VM</name><value>Ref:0</value></member>\n          <member><name>VDI</name>",
            "<name>VM</name><value>Ref:7</value></member>\n          <member><name>VDI</name>",
        );
        assert_eq!(rules(&f), [('E', 15)], "{f:?}");
        let f = hvm_edit("<name>network</name><value>Ref:4</value>", "<name>network</name><value>Ref:44</value>");
        assert_eq!(rules(&f), [('E', 15)]);
        let f = hvm_edit("<name>SR</name><value>Ref:9</value>", "<name>SR</name><value>Ref:8</value>");
        assert_eq!(rules(&f), [('E', 15)]);
    }

    #[test]
    fn rule16_disk_vbd_without_exported_vdi() {
        let f = hvm_edit("<name>VDI</name><value>Ref:2</value>", "<name>VDI</name><value>OpaqueRef:NULL</value>");
        assert_eq!(rules(&f), [('W', 16)]);
    }

    #[test]
    fn rule17_vbd_create_checks() {
        let f =
            hvm_edit("<name>empty</name><value><boolean>0</boolean>", "<name>empty</name><value><boolean>1</boolean>");
        assert_eq!(rules(&f), [('E', 17)]);
        let f = hvm_edit(
            "<name>read_only</name><value><boolean>0</boolean>",
            "<name>read_only</name><value><boolean>1</boolean>",
        );
        assert_eq!(rules(&f), [('E', 17)]);
        let f = hvm_edit("<name>userdevice</name><value>0</value>", "<name>userdevice</name><value>255</value>");
        assert_eq!(rules(&f), [('E', 17)]);
        // duplicate userdevice: PV example's CD moved to userdevice 0
        let mut f = Vec::new();
        check_ova_xml(
            PV.replace("<name>userdevice</name><value>3</value>", "<name>userdevice</name><value>0</value>").as_bytes(),
            &mut f,
        );
        assert_eq!(rules(&f), [('E', 17)], "{f:?}");
        let mut f = Vec::new();
        check_ova_xml(
            PV.replace("<name>mode</name><value>RO</value>", "<name>mode</name><value>RW</value>").as_bytes(),
            &mut f,
        );
        assert_eq!(rules(&f), [('E', 17)], "{f:?}");
    }

    #[test]
    fn rule18_read_order_is_bytewise() {
        // Two disks Ref:10 and Ref:9: xapi reads Ref:10 first.
        let xml = hvm_sized(5);
        let extra = xml
            .split("<value><struct>\n      <member><name>class</name><value>VDI</value>")
            .nth(1)
            .unwrap()
            .split("</struct></value>\n    <value><struct>\n      <member><name>class</name><value>VIF")
            .next()
            .unwrap()
            .replace(
                "<value>Ref:2</value></member>\n      <member><name>snapshot",
                "<value>Ref:10</value></member>\n      <member><name>snapshot",
            );
        let extra_vdi =
            format!("<value><struct>\n      <member><name>class</name><value>VDI</value>{extra}</struct></value>\n");
        let extra_vbd = "<value><struct><member><name>class</name><value>VBD</value></member><member><name>id</name><value>Ref:11</value></member><member><name>snapshot</name><value><struct><member><name>uuid</name><value>u</value></member><member><name>VM</name><value>Ref:0</value></member><member><name>VDI</name><value>Ref:10</value></member><member><name>device</name><value/></member><member><name>userdevice</name><value>1</value></member><member><name>bootable</name><value><boolean>0</boolean></value></member><member><name>mode</name><value>RW</value></member><member><name>type</name><value>Disk</value></member><member><name>storage_lock</name><value><boolean>0</boolean></value></member><member><name>empty</name><value><boolean>0</boolean></value></member><member><name>other_config</name><value><struct/></value></member><member><name>currently_attached</name><value><boolean>0</boolean></value></member><member><name>status_code</name><value>0</value></member><member><name>status_detail</name><value/></member><member><name>runtime_properties</name><value><struct/></value></member><member><name>qos_algorithm_type</name><value/></member><member><name>qos_algorithm_params</name><value><struct/></value></member><member><name>qos_supported_algorithms</name><value><array><data/></array></value></member><member><name>metrics</name><value>OpaqueRef:NULL</value></member></struct></value></member></struct></value>\n";
        let xml = xml.replace(
            "  </data></array></value></member>\n</struct></value>",
            &format!("{extra_vdi}{extra_vbd}  </data></array></value></member>\n</struct></value>"),
        );
        let mut f = Vec::new();
        let h = check_ova_xml(xml.as_bytes(), &mut f).unwrap();
        assert!(f.is_empty(), "{f:?}");
        let ids: Vec<_> = h.streamed.unwrap().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["Ref:10", "Ref:2"]);
        // chunks written in "natural" order (Ref:2 first) are rejected
        let mut t = Vec::new();
        file(&mut t, "ova.xml", xml.as_bytes());
        chunk(&mut t, "Ref:2/00000000", b"12345");
        chunk(&mut t, "Ref:10/00000000", b"12345");
        end(&mut t);
        let r = verify(&t);
        assert_eq!(rules(&r.violations), [('E', 5)], "{:?}", r.violations);
        // CD VBD's VDIs and iso SRs are not streamed
        let iso =
            xml.replace("<name>content_type</name><value>user</value>", "<name>content_type</name><value>iso</value>");
        let mut f = Vec::new();
        assert_eq!(check_ova_xml(iso.as_bytes(), &mut f).unwrap().streamed.unwrap(), []);
    }

    #[test]
    fn rule19_memory_and_vcpus() {
        let f = hvm_edit(
            "<name>memory_static_min</name><value>1073741824</value>",
            "<name>memory_static_min</name><value>2147483648</value>",
        );
        assert_eq!(rules(&f), [('W', 19)]);
        let f =
            hvm_edit("<name>VCPUs_at_startup</name><value>2</value>", "<name>VCPUs_at_startup</name><value>3</value>");
        assert_eq!(rules(&f), [('W', 19)]);
        let f = hvm_edit(
            "<name>actions_after_crash</name><value>restart</value>",
            "<name>actions_after_crash</name><value>rename_restart</value>",
        );
        assert_eq!(rules(&f), [('W', 19)]);
    }

    #[test]
    fn rule20_boot_mode_consistency() {
        let f = hvm_edit("<name>domain_type</name><value>hvm</value>", "<name>domain_type</name><value>pv</value>");
        assert_eq!(rules(&f), [('W', 20)]);
        let mut f = Vec::new();
        check_ova_xml(
            PV.replace("<name>PV_kernel</name><value/>", "<name>PV_kernel</name><value>/boot/vmlinuz</value>")
                .as_bytes(),
            &mut f,
        );
        assert_eq!(rules(&f), [('W', 20)]);
    }

    #[test]
    fn rule21_mac_regenerated() {
        let f = hvm_edit("<name>MAC</name><value/>", "<name>MAC</name><value>aa:bb:cc:dd:ee:ff</value>");
        assert_eq!(rules(&f), [('W', 21)]);
    }

    #[test]
    fn rule22_network_without_name_or_bridge() {
        let f = hvm_edit(
            "<name>name_label</name><value>Pool-wide network associated with eth0</value>",
            "<name>name_label</name><value/>",
        )
        .into_iter()
        .collect::<Vec<_>>();
        let f2 = {
            let mut f = Vec::new();
            check_ova_xml(
                HVM.replace(
                    "<name>name_label</name><value>Pool-wide network associated with eth0</value>",
                    "<name>name_label</name><value/>",
                )
                .replace("<name>bridge</name><value>xenbr0</value>", "<name>bridge</name><value/>")
                .as_bytes(),
                &mut f,
            );
            f
        };
        assert!(f.is_empty());
        assert_eq!(rules(&f2), [('W', 22)]);
    }

    fn stream(xml_size: u64, build: impl FnOnce(&mut Vec<u8>)) -> VerifyReport {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", hvm_sized(xml_size).as_bytes());
        build(&mut t);
        end(&mut t);
        verify(&t)
    }

    #[test]
    fn rule23_chunk_out_of_order_and_bad_counters() {
        let r = stream(4 << 20, |t| {
            chunk(t, "Ref:2/00000000", &vec![1u8; 1 << 20]);
            chunk(t, "Ref:2/00000002", &vec![1u8; 1 << 20]);
            chunk(t, "Ref:2/00000001", &vec![1u8; 1 << 20]);
        });
        assert_eq!(rules(&r.violations), [('E', 23)], "{:?}", r.violations);
        let r = stream(5, |t| chunk(t, "Ref:2/0x", b"12345"));
        assert!(has(&r.violations, 'E', 23), "{:?}", r.violations);
        let r = stream(5, |t| chunk(t, "Ref:2/0", b"12345"));
        assert_eq!(rules(&r.violations), [('W', 23)], "{:?}", r.violations);
    }

    #[test]
    fn rule24_checksum_member_missing_or_unsupported() {
        let r = stream(5, |t| {
            file(t, "Ref:2/00000000", b"12345");
            file(t, "Ref:2/00000000.sha256", b"x");
        });
        assert_eq!(rules(&r.violations), [('E', 24)], "{:?}", r.violations);
        assert!(r.violations[0].message.contains("Found unsupported checksum file"));
        let r = stream(5, |t| {
            file(t, "Ref:2/00000000", b"12345");
            chunk(t, "Ref:2/00000001", b"x");
        });
        assert!(has(&r.violations, 'E', 24), "{:?}", r.violations);
    }

    #[test]
    fn rule25_checksum_case_and_xxhash() {
        let r = stream(5, |t| {
            file(t, "Ref:2/00000000", b"12345");
            let up = crate::xva::writer::ChecksumKind::Sha1.body(b"12345").to_uppercase();
            file(t, "Ref:2/00000000.checksum", up.as_bytes());
        });
        assert_eq!(rules(&r.violations), [('E', 25)], "{:?}", r.violations);
        assert!(r.violations[0].message.contains("wrong case"));
        let r = stream(5, |t| {
            file(t, "Ref:2/00000000", b"12345");
            let xx = crate::xva::writer::ChecksumKind::Xxhash.body(b"12345");
            file(t, "Ref:2/00000000.xxhash", xx.as_bytes());
        });
        assert_eq!(rules(&r.violations), [('W', 25)], "xxhash accepted + warned: {:?}", r.violations);
        assert_eq!(r.disks[0].xxhash_members, 1);
    }

    #[test]
    fn rule26_missing_last_chunk_and_overrun() {
        let r = stream(3 << 20, |t| {
            chunk(t, "Ref:2/00000000", &vec![1u8; 1 << 20]);
        });
        assert_eq!(rules(&r.violations), [('E', 26)], "{:?}", r.violations);
        assert!(!r.disks[0].complete && r.disks[0].sha256.is_none());
        let r = stream(5, |t| chunk(t, "Ref:2/00000000", &[1u8; 512]));
        assert_eq!(rules(&r.violations), [('C', 26)], "{:?}", r.violations);
        let r = stream(3 << 20, |t| {
            chunk(t, "Ref:2/00000000", &vec![1u8; 1 << 20]);
            chunk(t, "Ref:2/00000001", &vec![1u8; 1 << 19]);
            chunk(t, "Ref:2/00000003", &vec![1u8; 1 << 20]);
        });
        assert!(has(&r.violations, 'C', 26), "{:?}", r.violations);
    }

    #[test]
    fn rule27_counter_zero_missing() {
        let r = stream(2 << 20, |t| chunk(t, "Ref:2/00000001", &vec![1u8; 1 << 20]));
        assert_eq!(rules(&r.violations), [('W', 27)], "{:?}", r.violations);
        // the reconstructed disk still has its first MiB of zeros
        let mut disk = vec![0u8; 1 << 20];
        disk.extend(vec![1u8; 1 << 20]);
        assert_eq!(r.disks[0].sha256, Some(sha2::Sha256::digest(&disk).into()));
    }

    #[test]
    fn rule29_zero_length_chunk() {
        let r = stream(5, |t| {
            chunk(t, "Ref:2/00000000", b"");
            chunk(t, "Ref:2/00000001", b"12345");
        });
        // F = 0 from the dummy chunk is itself a problem
        assert!(has(&r.violations, 'W', 29), "{:?}", r.violations);
        assert!(has(&r.violations, 'C', 26), "{:?}", r.violations);
    }

    #[test]
    fn garbage_never_panics() {
        let t = good();
        for cut in [0, 1, 3, 511, 512, 513, 1000, t.len() - 1] {
            let _ = verify_reader(&t[..cut], &VerifyOptions::default());
        }
        let mut x = 0x1234_5678u32;
        for _ in 0..200 {
            let mut b = t.clone();
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x as usize % b.len();
                b[i] = (x >> 8) as u8;
            }
            let _ = verify_reader(&b[..], &VerifyOptions { compute_sha256: false });
        }
    }
}
