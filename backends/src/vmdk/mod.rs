//! VMDK: VMware virtual disks — descriptor files, hosted sparse (monolithic and split), flat,
//! streamOptimized, ESXi `vmfs` flat disks, and `vmfsSparse` (COWD) / seSparse snapshot deltas.
//!
//! ```text
//!   name.vmdk ── KDMV file ──────────── one sparse extent (+ embedded descriptor: CID, parent)
//!            └── text descriptor ─┬─ FLAT / VMFS "x-flat.vmdk" START   flat.rs
//!                                 ├─ SPARSE "x-s001.vmdk"  (KDMV)      sparse.rs ─┐
//!                                 ├─ VMFSSPARSE "x-delta.vmdk" (COWD)  cowd.rs   ─┼─ grains.rs
//!                                 ├─ SESPARSE "x-sesparse.vmdk"        sesparse.rs┘
//!                                 └─ ZERO / NOACCESS                   zeros
//!   parentFileNameHint ──► parent layer (opened through the open policy; CID checked)
//! ```
//!
//! This layer reports its own extents only (`block_status`); unallocated grains fall through to
//! the parent in the generic resolver (`crate::chain`). Raw-device disks (RDM, `fullDevice`,
//! `partitionedDevice`) are refused with a message saying what they point at. See
//! `docs/formats/vmdk.md` and `disk-formats.md` §1.2.

pub mod cowd;
pub mod descriptor;
pub mod grains;
pub mod sesparse;
pub mod sparse;

#[cfg(any(test, feature = "testutil"))]
pub mod build;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::descriptor::{Access, Descriptor, ExtentLine, ExtentType, NO_PARENT_CID};
use self::grains::GrainMap;
use crate::cache::{LayerCache, TABLE_CACHE_BYTES};
use crate::error::{CheckedExt, Error, ErrorKind, Result};
use crate::flat::Flat;
use crate::format::{Confidence, ProbeInput};
use crate::parent::{self, LayerId, ParentRef};
use crate::policy::OpenCtx;
use crate::probe;
use crate::reader::Format;
use crate::reader::{Allocation, BlockReader, Extent};
use crate::source::{read_vec, ByteSource};

/// The registry entry for VMDK.
pub static FORMAT: Format = Format {
    name: "vmdk",
    title: "VMDK",
    readable: true,
    description: "VMware VMDK: monolithic/split sparse and flat, streamOptimized, ESXi vmfs, \
                  vmfsSparse (COWD) and seSparse snapshot deltas",
    probe: probe_vmdk,
    open: |src, ctx| Ok(Box::new(VmdkReader::open(src, ctx)?)),
};

/// createTypes whose data lives on a device or LUN, not in files we can read.
const DEVICE_TYPES: &[&str] = &[
    "vmfsRaw",
    "vmfsRDM",
    "vmfsRawDeviceMap",
    "vmfsRDMP",
    "vmfsPassthroughRawDeviceMap",
    "fullDevice",
    "partitionedDevice",
];

fn probe_vmdk(input: &ProbeInput<'_>) -> Confidence {
    let h = input.head;
    if h.starts_with(sparse::MAGIC) || h.starts_with(cowd::MAGIC) {
        return Confidence::CERTAIN;
    }
    if sesparse::has_magic(h) && h.len() >= 16 && crate::le::u64(h, 8) == sesparse::VERSION {
        return Confidence::CERTAIN;
    }
    if looks_like_descriptor(h, input.len) {
        return Confidence::LIKELY;
    }
    Confidence::NO
}

/// A text descriptor: `# Disk DescriptorFile` first, or a `createType=` line near the start.
fn looks_like_descriptor(head: &[u8], len: u64) -> bool {
    if len > descriptor::MAX_DESCRIPTOR_LEN as u64 || head.is_empty() {
        return false;
    }
    let head = &head[..head.len().min(4096)];
    let head = &head[..head.iter().position(|&b| b == 0).unwrap_or(head.len())];
    let text = String::from_utf8_lossy(head);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.get(..21).is_some_and(|s| s.eq_ignore_ascii_case("# Disk DescriptorFile")) {
        return true;
    }
    text.lines().any(|l| l.trim().split_once('=').is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("createType")))
}

/// What one extent of the disk is backed by.
#[derive(Debug)]
enum ExtData {
    Flat(Flat),
    /// ZERO extents and NOACCESS extents (the latter are never opened).
    Zero,
    Sparse(GrainMap),
}

#[derive(Debug)]
struct Ext {
    start: u64,
    len: u64,
    data: ExtData,
}

/// A VMDK layer: its extents, its descriptor facts, and its parent.
#[derive(Debug)]
pub struct VmdkReader {
    path: PathBuf,
    size: u64,
    extents: Vec<Ext>,
    parent: Option<Box<dyn BlockReader>>,
    cid: Option<u32>,
    expects: Option<LayerId>,
    details: Vec<(String, String)>,
}

impl VmdkReader {
    /// Opens a VMDK from `src` (a KDMV file or a text descriptor) with its parent chain.
    pub fn open(src: Arc<dyn ByteSource>, ctx: &OpenCtx<'_>) -> Result<VmdkReader> {
        let path = src.path().to_path_buf();
        let len = src.len();
        if len < 4 {
            return Err(Error::invalid(format!("not a VMDK: the file is only {len} bytes")).with_path(&path));
        }
        let head = read_vec(src.as_ref(), 0, len.min(16) as usize, "VMDK magic")?;
        if head.starts_with(sparse::MAGIC) {
            return Self::open_kdmv(src, ctx);
        }
        if head.starts_with(cowd::MAGIC) || sesparse::has_magic(&head) {
            return Err(Error::unsupported(
                "this is the data file of an ESXi snapshot delta (COWD or seSparse); open the \
                 descriptor file that names it instead (NAME-000001.vmdk, not \
                 NAME-000001-delta.vmdk or NAME-000001-sesparse.vmdk): it says which disk is \
                 the parent",
            )
            .with_path(&path));
        }
        if len > descriptor::MAX_DESCRIPTOR_LEN as u64 {
            return Err(Error::invalid(format!(
                "not a VMDK: no KDMV, COWD or seSparse magic, and at {len} bytes too large for a \
                 text descriptor"
            ))
            .with_path(&path));
        }
        let raw = read_vec(src.as_ref(), 0, len as usize, "descriptor")?;
        let desc = descriptor::parse(&raw).map_err(|e| e.with_path(&path))?;
        if desc.extents.is_empty() {
            return Err(Error::invalid(
                "not a VMDK descriptor: it lists no extents (lines like `RW 2048 FLAT \"x-flat.vmdk\" 0`)",
            )
            .with_path(&path));
        }
        Self::open_described(desc, &path, ctx, None)
    }

    fn open_kdmv(src: Arc<dyn ByteSource>, ctx: &OpenCtx<'_>) -> Result<VmdkReader> {
        let path = src.path().to_path_buf();
        let h = sparse::read_header(src.as_ref())?;
        let raw_desc = sparse::embedded_descriptor(src.as_ref(), &h)?;
        let desc = match &raw_desc {
            Some(b) => descriptor::parse(b).map_err(|e| e.with_path(&path))?,
            None => Descriptor::default(),
        };
        if h.capacity == 0 && raw_desc.is_some() && !desc.extents.is_empty() {
            // A descriptor stored in a KDMV shell (qemu's vmdk_open_vmdk4 does the same).
            return Self::open_described(desc, &path, ctx, None);
        }
        let map = sparse::open(src, &h)?;
        let mut facts = vec![
            ("sparseVersion".to_string(), h.version.to_string()),
            ("grainSize".to_string(), map.grain_size().to_string()),
            ("compressed".to_string(), if map.compressed() { "deflate" } else { "no" }.to_string()),
        ];
        if h.unclean_shutdown != 0 {
            facts.push(("warning".into(), "the disk was not closed cleanly (uncleanShutdown set)".into()));
        }
        let ext = Ext { start: 0, len: map.capacity(), data: ExtData::Sparse(map) };
        Self::open_described(desc, &path, ctx, Some((ext, facts)))
    }

    /// Builds the reader from a descriptor; `single` is the KDMV extent of a one-file disk
    /// (whose embedded extent lines are then only informational, as in qemu).
    fn open_described(
        desc: Descriptor,
        path: &Path,
        ctx: &OpenCtx<'_>,
        single: Option<(Ext, Vec<(String, String)>)>,
    ) -> Result<VmdkReader> {
        let mut details = Vec::new();
        if let Some(ct) = &desc.create_type {
            details.push(("createType".to_string(), ct.clone()));
            if let Some(t) = DEVICE_TYPES.iter().find(|t| t.eq_ignore_ascii_case(ct)) {
                return Err(refuse_device(&desc, t).with_path(path));
            }
        }
        let (extents, size) = match single {
            Some((ext, facts)) => {
                details.extend(facts);
                let size = ext.len;
                (vec![ext], size)
            }
            None => open_extents(&desc, path, ctx, &mut details)?,
        };
        if size == 0 {
            return Err(Error::invalid("the disk is empty (capacity 0)").with_path(path));
        }
        for (k, v) in [
            ("version", desc.version.map(|v| v.to_string())),
            ("encoding", desc.encoding.clone()),
            ("CID", desc.cid.map(|c| format!("{c:08x}"))),
            ("parentCID", desc.parent_cid.map(|c| format!("{c:08x}"))),
            ("parentFileNameHint", desc.parent_hint.clone()),
        ] {
            if let Some(v) = v {
                details.push((k.to_string(), v));
            }
        }
        details.extend(desc.other.iter().cloned());
        details.extend(desc.ddb.iter().cloned());
        let expects = expected_parent(&desc);
        let parent = if desc.has_parent() {
            let hint = desc.parent_hint.as_deref().ok_or_else(|| {
                Error::invalid(format!(
                    "the descriptor says parentCID={:08x} but has no parentFileNameHint, so \
                     the parent disk cannot be found",
                    desc.parent_cid.unwrap_or(0)
                ))
                .with_path(path)
            })?;
            let link = ParentRef { name: hint, field: "parentFileNameHint", format: Some(&FORMAT), expect: expects };
            Some(parent::open_parent(ctx, path, &link)?)
        } else {
            None
        };
        Ok(VmdkReader { path: path.to_path_buf(), size, extents, parent, cid: desc.cid, expects, details })
    }

    /// The descriptor's content id, if it has one.
    pub fn cid(&self) -> Option<u32> {
        self.cid
    }

    fn ext_at(&self, offset: u64) -> Result<&Ext> {
        let i = self.extents.partition_point(|e| e.start + e.len <= offset);
        self.extents.get(i).ok_or_else(|| Error::past_virtual_size(offset, self.size, &self.path))
    }
}

/// `parentCID` of a child must equal its parent's `CID` (VMware refuses such a chain, and qemu
/// fails every read that reaches the parent); `ffffffff` means "no parent".
fn expected_parent(desc: &Descriptor) -> Option<LayerId> {
    desc.parent_cid.filter(|&c| c != NO_PARENT_CID).map(LayerId::VmdkCid)
}

fn refuse_device(desc: &Descriptor, what: &str) -> Error {
    let targets: Vec<String> =
        desc.extents.iter().filter_map(|e| e.file.as_ref().map(|f| format!("{f:?} ({})", e.kind))).collect();
    Error::unsupported(format!(
        "createType {what:?} is a raw-device disk: its data lives on {}, not in a disk file. \
         Copy the device into a virtual disk first (on ESXi: `vmkfstools -i disk.vmdk -d thin \
         copy.vmdk`; elsewhere: `dd` the device into a raw image) and convert that",
        if targets.is_empty() { "a host device".to_string() } else { targets.join(", ") }
    ))
}

/// Opens every extent of a descriptor file. Missing extent files are reported all at once.
fn open_extents(
    desc: &Descriptor,
    path: &Path,
    ctx: &OpenCtx<'_>,
    details: &mut Vec<(String, String)>,
) -> Result<(Vec<Ext>, u64)> {
    let mut extents = Vec::new();
    let mut missing = Vec::new();
    let mut start = 0u64;
    for (i, line) in desc.extents.iter().enumerate() {
        details.push((format!("extent{}", i + 1), describe(line)));
        let len = line.sectors.mul_or(512, "extent size")?;
        let at_line = |e: Error| e.with_path(path);
        let data = match (&line.kind, line.access) {
            (ExtentType::VmfsRdm | ExtentType::VmfsRaw, _) => {
                return Err(at_line(refuse_device(desc, &line.kind.to_string())));
            }
            (ExtentType::Other(t), _) => {
                return Err(at_line(Error::unsupported(format!(
                    "descriptor line {}: extent type {t:?} (known: FLAT, SPARSE, ZERO, VMFS, \
                     VMFSSPARSE, SESPARSE)",
                    line.line
                ))));
            }
            (ExtentType::Zero, _) => Some(ExtData::Zero),
            (_, Access::NoAccess) => {
                details.push((
                    "warning".into(),
                    format!("extent {} is NOACCESS and reads as zeros (descriptor line {})", i + 1, line.line),
                ));
                Some(ExtData::Zero)
            }
            (kind, _) => {
                let name = line.file.as_deref().ok_or_else(|| {
                    at_line(Error::invalid(format!("descriptor line {}: {kind} extent without a file name", line.line)))
                })?;
                match probe::open_data_file(ctx.policy, path, name, "extent") {
                    Err(e) if e.kind() == ErrorKind::MissingFile => {
                        missing.push(name.to_string());
                        None
                    }
                    Err(e) => return Err(e),
                    Ok(file) => Some(open_file_extent(kind, line, file, len)?),
                }
            }
        };
        if let Some(data) = data {
            if len > 0 {
                extents.push(Ext { start, len, data });
            }
        }
        start = start.add_or(len, "virtual size")?;
    }
    // One bounded cache for all the sparse extents of this layer.
    let cache = LayerCache::new(TABLE_CACHE_BYTES);
    for e in &mut extents {
        if let ExtData::Sparse(m) = &mut e.data {
            m.share_cache(cache.clone());
        }
    }
    if !missing.is_empty() {
        return Err(Error::new(
            ErrorKind::MissingFile,
            format!(
                "the descriptor names {} extent file{} that cannot be found next to it: {}",
                missing.len(),
                if missing.len() == 1 { "" } else { "s" },
                missing.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", ")
            ),
        )
        .with_path(path));
    }
    Ok((extents, start))
}

fn describe(l: &ExtentLine) -> String {
    let mut s = format!("{} {} {}", l.access.as_str(), l.sectors, l.kind);
    if let Some(f) = &l.file {
        s.push_str(&format!(" {f:?}"));
        if matches!(l.kind, ExtentType::Flat) {
            s.push_str(&format!(" {}", l.start_sector));
        }
    }
    s
}

fn open_file_extent(kind: &ExtentType, line: &ExtentLine, file: Arc<dyn ByteSource>, len: u64) -> Result<ExtData> {
    match kind {
        ExtentType::Flat | ExtentType::Vmfs => {
            let off = line.start_sector.mul_or(512, "extent start")?;
            Ok(ExtData::Flat(Flat::new(file, off, len)?))
        }
        _ => {
            let head = read_vec(file.as_ref(), 0, file.len().min(8) as usize, "extent magic")?;
            let map = if head.starts_with(sparse::MAGIC) {
                let h = sparse::read_header(file.as_ref())?;
                sparse::open(file, &h)?
            } else if head.starts_with(cowd::MAGIC) {
                cowd::open(file)?
            } else if sesparse::has_magic(&head) {
                sesparse::open(file)?
            } else {
                return Err(Error::invalid(format!(
                    "the {kind} extent is not a sparse file (no KDMV, COWD or seSparse magic)"
                ))
                .with_path(file.path()));
            };
            Ok(ExtData::Sparse(map))
        }
    }
}

impl BlockReader for VmdkReader {
    fn format(&self) -> &'static Format {
        &FORMAT
    }

    fn virtual_size(&self) -> u64 {
        self.size
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn block_status(&self, offset: u64, max_len: u64) -> Result<Extent> {
        let e = self.ext_at(offset)?;
        let rel = offset - e.start;
        let max = max_len.clamp(1, e.len - rel);
        let (len, alloc) = match &e.data {
            ExtData::Flat(f) => f.status(rel, max)?,
            ExtData::Zero => (max, Allocation::Zero { explicit: true }),
            ExtData::Sparse(m) if rel >= m.capacity() => (max, Allocation::Unallocated),
            ExtData::Sparse(m) => m.status(rel, max.min(m.capacity() - rel))?,
        };
        Ok(Extent { start: offset, len, alloc })
    }

    fn read_layer(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let mut pos = 0usize;
        while pos < buf.len() {
            let off = offset + pos as u64;
            let e = self.ext_at(off)?;
            let rel = off - e.start;
            let n = ((e.len - rel) as usize).min(buf.len() - pos);
            let part = &mut buf[pos..pos + n];
            match &e.data {
                ExtData::Flat(f) => f.read(part, rel)?,
                ExtData::Zero => part.fill(0),
                ExtData::Sparse(m) => {
                    let inside = (m.capacity().saturating_sub(rel) as usize).min(n);
                    if inside > 0 {
                        m.read(&mut part[..inside], rel)?;
                    }
                    part[inside..].fill(0);
                }
            }
            pos += n;
        }
        Ok(())
    }

    fn parent(&self) -> Option<&dyn BlockReader> {
        self.parent.as_deref()
    }

    fn identity(&self) -> Option<LayerId> {
        self.cid.map(LayerId::VmdkCid)
    }

    fn expected_parent(&self) -> Option<LayerId> {
        self.expects
    }

    fn details(&self) -> Vec<(String, String)> {
        self.details.clone()
    }
}

/// Compile-time check that the reader can be shared between threads.
#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<VmdkReader>();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(head: &[u8], len: u64) -> Confidence {
        probe_vmdk(&ProbeInput { head, tail: head, len, path: Path::new("p.vmdk") })
    }

    #[test]
    fn probe_magics_and_descriptors() {
        let mut se = 0xcafe_babeu64.to_le_bytes().to_vec();
        se.extend_from_slice(&sesparse::VERSION.to_le_bytes());
        for (head, want) in [
            (&b"KDMV\x01\0\0\0"[..], Confidence::CERTAIN),
            (b"COWD\x01\0\0\0", Confidence::CERTAIN),
            (&se, Confidence::CERTAIN),
            (&se[..8], Confidence::NO),
            (b"# Disk DescriptorFile\nversion=1\n", Confidence::LIKELY),
            (b"\xef\xbb\xbf# disk descriptorfile\r\n", Confidence::LIKELY),
            (b"version=1\r\nCID=1\r\ncreateType = \"vmfs\"\r\n", Confidence::LIKELY),
            (b"version=1\nCID=1\n", Confidence::NO),
            (b"QFI\xfb\0\0\0\x03", Confidence::NO),
            (b"", Confidence::NO),
            (b"K", Confidence::NO),
        ] {
            assert_eq!(probe(head, head.len() as u64), want, "{:?}", String::from_utf8_lossy(head));
        }
        // A text descriptor is small; a large file with such text is something else.
        assert_eq!(probe(b"createType=\"x\"\n", 10 << 20), Confidence::NO);
    }
}
