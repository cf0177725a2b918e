//! The only I/O layer of `guest`: read a definition, detect its kind by content, parse it
//! with the pure parsers, then resolve every disk the way the source host would.
//!
//! ```text
//!   path ─read─► bytes ─detect─► xm | xl | sxp | vmx | ovf | ova(tar index → .ovf member)
//!          parse ─► Guest ─resolve─► --path-map, config dir, OVA members; missing files
//!                                    listed all at once; VMX/OVF names confined to their dir
//! ```

use std::path::{Component, Path, PathBuf};

use super::error::{ErrorKind, GuestError, Result};
use super::model::{DiskSource, Guest, OvaMember, Severity, SourceKind};
use super::{ova, ovf, sxp, vmx, xl, xm};

/// Largest config file read (configs are small; this bounds a wrong argument).
pub const MAX_CONFIG: u64 = 16 << 20;
/// Most chunks one chunked disk may have.
pub const MAX_CHUNKS: usize = 100_000;

/// `file.000000000`, `file.000000001`… next to where `file` would be, if the first exists.
fn chunk_files(file: &Path) -> Option<Vec<OvaMember>> {
    let mut parts = Vec::new();
    while parts.len() < MAX_CHUNKS {
        let mut name = file.as_os_str().to_os_string();
        name.push(format!(".{:09}", parts.len()));
        let p = PathBuf::from(name);
        let Ok(meta) = std::fs::metadata(&p) else { break };
        parts.push(OvaMember {
            name: p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            ova: p,
            offset: 0,
            len: meta.len(),
        });
    }
    (!parts.is_empty()).then_some(parts)
}

/// How to load a guest definition.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--source-type`: skip detection.
    pub source_type: Option<SourceKind>,
    /// `--set KEY=VALUE` (xm variables, xl settings, VMX keys).
    pub set: Vec<(String, String)>,
    /// `--path-map OLD=NEW`: disk paths starting with OLD are read from NEW instead.
    pub path_map: Vec<(PathBuf, PathBuf)>,
    /// `--force`: convert a VMware VM that looks running (lock files, `.vmem`).
    pub force: bool,
    /// Do not stream OVA members through the manifest check (the caller will, or the user
    /// said so).
    pub skip_manifest: bool,
    /// Allow VMX/OVF disk names outside the definition's directory.
    pub allow_any_path: bool,
    /// Do not fail on missing disk files (for `inspect` of a config whose disks are elsewhere).
    pub allow_missing: bool,
}

/// Parses `KEY=VALUE` / `OLD=NEW` command-line pairs.
pub fn split_pair(s: &str) -> Option<(String, String)> {
    let (k, v) = s.split_once('=')?;
    (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
}

/// Which kind of definition `bytes` (from `path`) is, by content; the extension breaks ties.
pub fn detect(bytes: &[u8], path: &Path) -> Option<SourceKind> {
    if ova::looks_like_tar(bytes) {
        return Some(SourceKind::Ova);
    }
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('<') {
        return (t.contains("Envelope") || ext == "ovf").then_some(SourceKind::Ovf);
    }
    // SXP: the first token (after comments) is '('.
    let first = t.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
    if first.is_some_and(|l| l.starts_with('(')) {
        return Some(SourceKind::Sxp);
    }
    let kv = vmx::parse_kv(&text);
    let vmx_keys =
        [".encoding", "config.version", "virtualhw.version", "displayname", "guestos", "memsize", "numvcpus"];
    let vmx_hits = vmx_keys.iter().filter(|k| kv.entries.contains_key(**k)).count();
    if ext == "vmx" || vmx_hits >= 2 || kv.entries.keys().any(|k| k.contains(':') && k.contains('.')) {
        return Some(SourceKind::Vmx);
    }
    first?;
    // Valid libxlu grammar → xl (a literal-only xm file is valid xl too and means the same);
    // otherwise Python → xm.
    match xl::parse_opts(&text) {
        Ok(o) if !o.vals.is_empty() => Some(SourceKind::Xl),
        _ => Some(SourceKind::Xm),
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| GuestError::io("cannot read the definition", path, e))?;
    if meta.is_dir() {
        return Err(GuestError::invalid("is a directory, not a guest definition").in_file(path));
    }
    if meta.len() > MAX_CONFIG {
        // Only an OVA may be big: read its head for detection.
        let f = std::fs::File::open(path).map_err(|e| GuestError::io("cannot open", path, e))?;
        let mut head = vec![0u8; 512];
        use std::os::unix::fs::FileExt;
        f.read_exact_at(&mut head, 0).map_err(|e| GuestError::io("cannot read", path, e))?;
        return Ok(head);
    }
    std::fs::read(path).map_err(|e| GuestError::io("cannot read the definition", path, e))
}

/// Reads and parses the guest definition at `path`, resolving its disks.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Guest> {
    let bytes = read_limited(path)?;
    let kind = match opts.source_type {
        Some(k) => k,
        None => detect(&bytes, path).ok_or_else(|| {
            GuestError::invalid(
                "cannot tell what kind of guest definition this is (xm, xl, SXP, VMX, OVF or \
                 OVA); pass --source-type",
            )
            .in_file(path)
        })?,
    };
    if !opts.set.is_empty() && !matches!(kind, SourceKind::Xm | SourceKind::Xl | SourceKind::Vmx) {
        return Err(GuestError::unsupported(format!("--set applies to xm, xl and VMX configs, not to {kind}")));
    }
    let text = || -> Result<String> {
        String::from_utf8(bytes.clone()).or_else(|e| {
            // Xen configs are ASCII in practice; accept Latin-1 bytes rather than failing.
            let (t, _, _) = encoding_rs::WINDOWS_1252.decode(e.as_bytes());
            Ok(t.into_owned())
        })
    };
    let mut g = match kind {
        SourceKind::Xm => xm::parse_with(&text()?, &opts.set),
        SourceKind::Xl => match xl::parse_with(&text()?, &opts.set) {
            // Detection picked xl for a literal-only file; an xm-only construct (tap:vmdk:, w!)
            // means it was an xm config after all.
            Err(e) if opts.source_type.is_none() && e.kind() == ErrorKind::Invalid => {
                xm::parse_with(&text()?, &opts.set).map_err(|_| e)
            }
            r => r,
        },
        SourceKind::Sxp => sxp::parse(&text()?),
        SourceKind::Vmx => {
            if opts.set.is_empty() {
                vmx::parse(&bytes)
            } else {
                // --set wins: the key/value reader keeps the first value, so the overrides go
                // first (as UTF-8, with the file decoded from its own charset).
                let (t, _) = vmx::decode(&bytes);
                let mut s = String::from(".encoding = \"UTF-8\"\n");
                for (k, v) in &opts.set {
                    s.push_str(&format!("{k} = \"{v}\"\n"));
                }
                s.push_str(&t);
                vmx::parse(s.as_bytes())
            }
        }
        SourceKind::Ovf => ovf::parse(&text()?),
        SourceKind::Ova => return load_ova(path, opts),
        SourceKind::Disks => return Err(GuestError::unsupported("bare disks are not a guest definition")),
    }
    .map_err(|e| e.in_file(path))?;
    if g.name.is_empty() {
        g.name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "imported".into());
        g.note(Severity::Info, format!("no name in the definition; using {:?}", g.name));
    }
    if kind == SourceKind::Vmx {
        vmware_extras(path, opts, &mut g)?;
    }
    resolve_paths(path, kind, opts, &mut g)?;
    Ok(g)
}

/// Lock files and the snapshot tree next to a `.vmx`.
fn vmware_extras(path: &Path, opts: &LoadOptions, g: &mut Guest) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut running = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten().take(10_000) {
            let n = e.file_name().to_string_lossy().to_string();
            let lower = n.to_ascii_lowercase();
            if lower.ends_with(".lck") || lower.ends_with(".vmem") {
                running.push(n);
            }
        }
    }
    if !running.is_empty() {
        running.sort();
        if !opts.force {
            return Err(GuestError::new(
                ErrorKind::Running,
                format!(
                    "the VM looks running or suspended ({} present); shut it down in VMware \
                     first, or pass --force to convert the disks as they are now",
                    running.join(", ")
                ),
            )
            .in_file(path));
        }
        g.note(
            Severity::Warning,
            format!(
                "converted with --force although the VM looks running ({}); the disks may be \
                 inconsistent",
                running.join(", ")
            ),
        );
    }
    let vmsd = path.with_extension("vmsd");
    if let Ok(meta) = std::fs::metadata(&vmsd) {
        if meta.len() <= MAX_CONFIG {
            let bytes = std::fs::read(&vmsd).map_err(|e| GuestError::io("cannot read", &vmsd, e))?;
            g.snapshots = vmx::parse_vmsd(&bytes).map_err(|e| e.in_file(&vmsd))?;
            if !g.snapshots.is_empty() {
                g.note(
                    Severity::Info,
                    format!(
                        "{} snapshot(s) in {}; the current state (the disks the .vmx names) is \
                         converted; snapshots themselves are not",
                        g.snapshots.len(),
                        vmsd.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                    ),
                );
            }
        }
    }
    Ok(())
}

/// `path` with the longest matching `--path-map` prefix replaced, and whether one matched.
pub fn map_path(path: &Path, maps: &[(PathBuf, PathBuf)]) -> (PathBuf, bool) {
    let mut best: Option<(&PathBuf, &PathBuf)> = None;
    for (old, new) in maps {
        if path.starts_with(old) && best.is_none_or(|(b, _)| old.components().count() > b.components().count()) {
            best = Some((old, new));
        }
    }
    match best {
        Some((old, new)) => {
            let rest = path.strip_prefix(old).unwrap_or(path);
            (new.join(rest), true)
        }
        None => (path.to_path_buf(), false),
    }
}

fn escapes(rel: &Path) -> bool {
    let mut depth = 0i32;
    for c in rel.components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            Component::Normal(_) => depth += 1,
            Component::RootDir | Component::Prefix(_) => return true,
            Component::CurDir => {}
        }
    }
    false
}

fn resolve_paths(def: &Path, kind: SourceKind, opts: &LoadOptions, g: &mut Guest) -> Result<()> {
    let dir = def.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let confined = matches!(kind, SourceKind::Vmx | SourceKind::Ovf);
    let mut missing = Vec::new();
    let mut refused = Vec::new();
    let mut relative_xen = Vec::new();
    for d in &mut g.disks {
        let DiskSource::Path { path } = &d.source else { continue };
        let written = path.clone();
        if kind == SourceKind::Vmx && written.to_string_lossy().contains('\\') {
            refused.push(format!("{} ({}): a Windows path; map it with --path-map", d.device, written.display()));
            continue;
        }
        let (mapped, was_mapped) = map_path(&written, &opts.path_map);
        let resolved = if was_mapped || mapped.is_absolute() {
            if confined && !was_mapped && !opts.allow_any_path {
                refused.push(format!(
                    "{} names {} outside the directory of {}; copy the disk next to it, or map \
                     the path with --path-map {}=NEWDIR",
                    d.device,
                    written.display(),
                    def.display(),
                    written.parent().map(|p| p.display().to_string()).unwrap_or_default()
                ));
                continue;
            }
            mapped
        } else {
            if confined && escapes(&mapped) && !opts.allow_any_path {
                refused.push(format!(
                    "{} names {} outside the directory of {}; copy the disk next to it or \
                     pass --allow-any-path",
                    d.device,
                    written.display(),
                    def.display()
                ));
                continue;
            }
            if !confined {
                relative_xen.push(written.display().to_string());
            }
            dir.join(&mapped)
        };
        if !resolved.exists() {
            if kind == SourceKind::Ovf {
                if let Some(parts) = chunk_files(&resolved) {
                    d.source = DiskSource::Chunks { parts };
                    continue;
                }
            }
            missing.push(format!("{} ({})", resolved.display(), d.device));
        }
        d.source = DiskSource::Path { path: resolved };
    }
    if !refused.is_empty() {
        return Err(GuestError::new(ErrorKind::Invalid, format!("disk path(s) refused:\n  {}", refused.join("\n  ")))
            .in_file(def));
    }
    if !relative_xen.is_empty() {
        g.note(
            Severity::Info,
            format!("relative disk path(s) {} read from the config's directory", relative_xen.join(", ")),
        );
    }
    let scripts: Vec<String> = g
        .disks
        .iter()
        .filter_map(|d| match &d.source {
            DiskSource::Script { script, target } => Some(format!("{script}:{target}")),
            _ => None,
        })
        .collect();
    if !scripts.is_empty() && !opts.allow_missing {
        missing.extend(scripts.into_iter().map(|s| format!("{s} (block script device; not readable)")));
    }
    if !missing.is_empty() {
        if opts.allow_missing {
            g.note(Severity::Warning, format!("missing disk file(s): {}", missing.join(", ")));
        } else {
            return Err(GuestError::new(
                ErrorKind::MissingFiles,
                format!(
                    "{} disk file(s) the definition names are missing:\n  {}\n(if the files \
                     were copied elsewhere, use --path-map /old/prefix=/new/prefix)",
                    missing.len(),
                    missing.join("\n  ")
                ),
            )
            .in_file(def));
        }
    }
    Ok(())
}

fn load_ova(path: &Path, opts: &LoadOptions) -> Result<Guest> {
    let idx = ova::index_file(path)?;
    let ovf_m = idx.ovf().ok_or_else(|| GuestError::invalid("the OVA holds no .ovf descriptor").in_file(path))?;
    let ovf_bytes = ova::read_member(path, ovf_m, MAX_CONFIG)?;
    let ovf_text = String::from_utf8(ovf_bytes.clone())
        .map_err(|_| GuestError::invalid(format!("{} is not UTF-8", ovf_m.name)).in_file(path))?;
    let ovf_label = path.join(&ovf_m.name);
    let mut g = ovf::parse(&ovf_text).map_err(|e| e.in_file(&ovf_label))?;
    g.source_kind = SourceKind::Ova;
    if g.name.is_empty() {
        g.name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "imported".into());
    }
    let manifest = match idx.manifest() {
        Some(m) => {
            let text = ova::read_member(path, m, MAX_CONFIG)?;
            Some(ova::parse_manifest(&String::from_utf8_lossy(&text)).map_err(|e| e.in_file(path.join(&m.name)))?)
        }
        None => {
            g.note(Severity::Warning, "the OVA has no .mf manifest: its contents cannot be verified");
            None
        }
    };
    let mut missing = Vec::new();
    for d in &mut g.disks {
        let DiskSource::Path { path: href } = &d.source else { continue };
        let name = href.to_string_lossy().into_owned();
        match idx.get(&name) {
            Some(m) => {
                d.source = DiskSource::OvaMember(OvaMember {
                    ova: path.to_path_buf(),
                    name: m.name.clone(),
                    offset: m.offset,
                    len: m.len,
                });
            }
            None => {
                // ovftool --chunkSize: name.000000000, name.000000001, … in order.
                let mut parts = Vec::new();
                while parts.len() < MAX_CHUNKS {
                    let Some(m) = idx.get(&format!("{name}.{:09}", parts.len())) else { break };
                    parts.push(OvaMember {
                        ova: path.to_path_buf(),
                        name: m.name.clone(),
                        offset: m.offset,
                        len: m.len,
                    });
                }
                if parts.is_empty() {
                    missing.push(name);
                } else {
                    d.source = DiskSource::Chunks { parts };
                }
            }
        }
    }
    if !missing.is_empty() {
        return Err(GuestError::new(
            ErrorKind::MissingFiles,
            format!("disk file(s) named by the descriptor are not in the OVA:\n  {}", missing.join("\n  ")),
        )
        .in_file(path));
    }
    if let (Some(entries), false) = (&manifest, opts.skip_manifest) {
        // Everything the manifest lists must be present and match.
        for e in entries {
            let m = idx.get(&e.name).ok_or_else(|| {
                GuestError::new(ErrorKind::Digest, format!("the manifest lists {:?}, which is not in the OVA", e.name))
                    .in_file(path)
            })?;
            ova::verify_member(path, m, e)?;
        }
        g.note(Severity::Info, format!("manifest verified ({} file(s))", entries.len()));
    }
    Ok(g)
}

/// The format a guest definition declares for a disk (`file:`, `phy:`, `tap:aio:` and xl's
/// default are raw; `tap:qcow2:`, xl `format=`, VMX and OVF name theirs), as a registry entry.
/// A declared format is used, never a probe: a guest owns the bytes of its raw disk, and a raw
/// disk whose first sector the guest wrote as a qcow2 header must not make xva follow a backing
/// file the guest chose (qemu's CVE-2008-2004). `Ok(None)`: nothing declared (or a name that is
/// no format, such as an unknown OVF format URI): the image is probed.
pub fn declared_format(hint: Option<&str>) -> xva_backends::Result<Option<&'static xva_backends::Format>> {
    let Some(hint) = hint else { return Ok(None) };
    let name = match hint.to_ascii_lowercase().as_str() {
        "raw" => "raw",
        "qcow" | "qcow2" => "qcow2",
        "vmdk" => "vmdk",
        "vhd" | "vpc" => "vhd",
        "vhdx" => "vhdx",
        "qed" => {
            return Err(xva_backends::Error::unsupported(
                "the guest definition declares this disk as QED, which xva does not read; convert it \
                 with `qemu-img convert -f qed -O raw` first",
            ))
        }
        _ => return Ok(None),
    };
    Ok(xva_backends::probe::by_name(name))
}

/// When disk `d` is declared raw but its content looks like another format: the note that says
/// it is read as raw anyway. `None` otherwise (or when the file cannot be probed).
pub fn declared_raw_mismatch(d: &super::model::Disk) -> Option<String> {
    let DiskSource::Path { path } = &d.source else { return None };
    if !declared_format(d.format.as_deref()).ok()??.name.eq("raw") {
        return None;
    }
    let src = xva_backends::FileSource::open(path).ok()?;
    let (found, _) = xva_backends::probe::detect(&src).ok()?;
    (found.name != "raw").then(|| {
        format!(
            "{}: the definition declares {} raw, but its content looks like a {} image; it is read \
             as raw, byte for byte (a guest's own bytes never choose a format or a backing file). \
             If the definition is wrong, pass --format {}",
            d.device,
            path.display(),
            found.name,
            found.name
        )
    })
}

/// Opens disk `d` of a loaded guest with `opts`: a file or block device through
/// `xva_backends::open`, or an OVA member as a [`xva_backends::Window`] of the OVA file (read in
/// place). The format is `--format` if given, else raw for a disk the definition declares raw
/// ([`declared_format`]), else probed. A block-script device cannot be opened.
pub fn open_disk(
    d: &super::model::Disk,
    opts: &xva_backends::OpenOptions,
) -> xva_backends::Result<Box<dyn xva_backends::BlockReader>> {
    use std::sync::Arc;
    use xva_backends::{ByteSource, Concat, FileSource, OpenCtx, Window};
    // A disk declared raw is read as raw. Other declarations (a VMX's or OVF's VMDK, Xen's
    // `tap:qcow2:`) name formats whose metadata the host wrote, not the guest, so probing them
    // finds the same format; they are checked against the probe by `xva inspect`.
    let raw;
    let declared = if opts.format.is_none() { declared_format(d.format.as_deref())? } else { None };
    let opts = match declared {
        Some(f) if f.name == "raw" => {
            raw = xva_backends::OpenOptions { format: Some(f), ..opts.clone() };
            &raw
        }
        _ => opts,
    };
    match &d.source {
        DiskSource::Path { path } => xva_backends::open(path, opts),
        DiskSource::OvaMember(m) => {
            let file: Arc<dyn ByteSource> = Arc::new(FileSource::open(&m.ova)?);
            let win: Arc<dyn ByteSource> = Arc::new(Window::new(file, m.offset, m.len, m.ova.join(&m.name))?);
            let ctx = OpenCtx::new(&opts.policy);
            xva_backends::probe::open_source(win, opts.format, &ctx)
        }
        DiskSource::Chunks { parts } => {
            let mut srcs: Vec<Arc<dyn ByteSource>> = Vec::new();
            for m in parts {
                let file: Arc<dyn ByteSource> = Arc::new(FileSource::open(&m.ova)?);
                let label = if m.offset == 0 && m.len == file.len() { m.ova.clone() } else { m.ova.join(&m.name) };
                srcs.push(Arc::new(Window::new(file, m.offset, m.len, label)?));
            }
            let label = parts
                .first()
                .map(|m| {
                    let base = m.name.rsplit_once('.').map(|(b, _)| b.to_string()).unwrap_or_default();
                    if m.offset == 0 {
                        m.ova.with_file_name(base)
                    } else {
                        m.ova.join(base)
                    }
                })
                .unwrap_or_default();
            let cat: Arc<dyn ByteSource> = Arc::new(Concat::new(srcs, label)?);
            let ctx = OpenCtx::new(&opts.policy);
            xva_backends::probe::open_source(cat, opts.format, &ctx)
        }
        DiskSource::Script { script, target } => Err(xva_backends::Error::unsupported(format!(
            "{} is a {script} block-script device ({target}) on the source host; copy it to a \
             file and map it with --path-map, or pass --disk",
            d.device
        ))),
    }
}

impl Guest {
    /// Opens every disk ([`open_disk`]), in order; all failures are reported at once. A disk
    /// declared raw whose content looks like another format gets a warning note (it is read as
    /// raw).
    pub fn open_disks(&mut self, opts: &xva_backends::OpenOptions) -> Result<Vec<Box<dyn xva_backends::BlockReader>>> {
        let mut readers = Vec::with_capacity(self.disks.len());
        let mut errors = Vec::new();
        let mut notes = Vec::new();
        for d in &self.disks {
            match open_disk(d, opts) {
                Ok(r) => {
                    if opts.format.is_none() {
                        notes.extend(declared_raw_mismatch(d));
                    }
                    readers.push(r)
                }
                Err(e) => errors.push(format!("{}: {e}", d.device)),
            }
        }
        for n in notes {
            self.note(Severity::Warning, n);
        }
        if errors.is_empty() {
            Ok(readers)
        } else {
            Err(GuestError::new(
                ErrorKind::Io,
                format!("{} disk(s) cannot be opened:\n  {}", errors.len(), errors.join("\n  ")),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_maps_and_escapes() {
        let maps = vec![
            (PathBuf::from("/vmfs/volumes"), PathBuf::from("/mnt/a")),
            (PathBuf::from("/vmfs/volumes/ds1"), PathBuf::from("/mnt/b")),
        ];
        assert_eq!(map_path(Path::new("/vmfs/volumes/ds1/x.vmdk"), &maps), (PathBuf::from("/mnt/b/x.vmdk"), true));
        assert_eq!(map_path(Path::new("/vmfs/volumes/ds2/x.vmdk"), &maps), (PathBuf::from("/mnt/a/ds2/x.vmdk"), true));
        assert!(!map_path(Path::new("/vmfs/volumesX/y"), &maps).1);
        assert!(escapes(Path::new("../x")));
        assert!(escapes(Path::new("a/../../x")));
        assert!(!escapes(Path::new("a/../x")));
    }

    #[test]
    fn declared_formats() {
        let name = |h: &str| declared_format(Some(h)).unwrap().map(|f| f.name);
        assert_eq!(name("raw"), Some("raw"));
        assert_eq!(name("QCOW"), Some("qcow2"));
        assert_eq!(name("qcow2"), Some("qcow2"));
        assert_eq!(name("vmdk"), Some("vmdk"));
        assert_eq!(name("vhd"), Some("vhd"));
        assert_eq!(name("http://example.invalid/unknown-format"), None);
        assert_eq!(declared_format(None).unwrap().map(|f| f.name), None);
        let e = declared_format(Some("qed")).unwrap_err();
        assert!(e.to_string().contains("QED"), "{e}");
    }

    #[test]
    fn detection() {
        let p = Path::new("cfg");
        assert_eq!(detect(b"name = 'x'\nmemory = 512\n", p), Some(SourceKind::Xl));
        assert_eq!(detect(b"name = 'VM%d' % 1\n", p), Some(SourceKind::Xm));
        assert_eq!(detect(b"# c\n(domain (name x))", p), Some(SourceKind::Sxp));
        assert_eq!(detect(b".encoding = \"UTF-8\"\nconfig.version = \"8\"\n", p), Some(SourceKind::Vmx));
        assert_eq!(detect(b"<?xml version='1.0'?><Envelope/>", p), Some(SourceKind::Ovf));
        assert_eq!(detect(&ova::build_tar(&[("a.ovf", b"x")]), p), Some(SourceKind::Ova));
        assert_eq!(detect(b"", p), None);
    }
}
