//! The plan layer: from a source (a guest definition, or bare disks) and the user's overrides
//! to a [`Plan`] — the opened disk chains, the VM record, the notes — and from a plan to an XVA
//! file ([`file`]) or into a host ([`upload`]).
//!
//! ```text
//!   guest definition ─┐  prepare()                      ┌─► file::write: temporary file
//!   or --disk files  ─┼──────────► Plan ────────────────┤     (output.rs) → fsync → rename
//!   + Overrides      ─┘  (Guest, disks, VmSpec,         └─► upload::upload: login, SR, task,
//!                         ova.xml, notes)                     PUT, retry, cleanup
//! ```
//!
//! This is the one layer that sees both the source model ([`crate::guest`]) and the XVA side
//! ([`crate::xva`], [`crate::xapi`]): `guest` knows nothing of XVA, `xapi` nothing of disks.
//! What the user should see while it works goes through [`Events`], which the caller
//! implements (the command line prints, draws a progress bar).

pub mod advice;
pub mod error;
pub mod file;
pub mod output;
pub mod spec;
pub mod upload;

#[cfg(test)]
mod golden;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::advise::{Advisory, Target};
use crate::backends::{BlockReader, OpenOptions};
use crate::guest::{self, Guest, LoadOptions, Note};
use crate::vm::Firmware;
use crate::xapi::full_message;
use crate::xva::records::{self, Boot, Memory, VifSpec, VmSpec};
use crate::xva::writer::DiskSource;

pub use error::{Error, ErrorKind, Result};
pub use spec::vm_spec;

/// What a conversion reads.
#[derive(Clone, Debug)]
pub enum Source {
    /// A guest definition (xm, xl, SXP, VMX, OVF, OVA) and how to load it.
    Guest {
        /// The definition's path.
        path: PathBuf,
        /// How to read it.
        load: LoadOptions,
    },
    /// Bare disk images (`--disk`), the first one booting.
    Disks(Vec<PathBuf>),
}

impl Source {
    /// The guest definition's directory (where relative kernel paths are read), if any.
    pub fn config_dir(&self) -> Option<&Path> {
        match self {
            Source::Guest { path, .. } => path.parent(),
            Source::Disks(_) => None,
        }
    }
}

/// What the user asked to change, over the source's values (`xva convert`'s options).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Replacement disks, the first one booting (with a guest definition), in order.
    pub disks: Vec<PathBuf>,
    /// VM name.
    pub name: Option<String>,
    /// VM description.
    pub description: Option<String>,
    /// Memory in MiB.
    pub memory_mib: Option<u64>,
    /// vCPUs.
    pub vcpus: Option<u32>,
    /// Boot HVM (a PV guest is switched to HVM with BIOS).
    pub hvm: bool,
    /// Boot PV through pygrub.
    pub pv: bool,
    /// PV kernel arguments.
    pub pv_args: Option<String>,
    /// HVM firmware.
    pub firmware: Option<Firmware>,
    /// UEFI Secure Boot on.
    pub secure_boot: bool,
    /// ACPI off.
    pub no_acpi: bool,
    /// Local APIC off.
    pub no_apic: bool,
    /// PAE off.
    pub no_pae: bool,
    /// NX on.
    pub nx: bool,
    /// Viridian on (`Some(true)`) or off (`Some(false)`).
    pub viridian: Option<bool>,
    /// An empty CD drive.
    pub cdrom: bool,
    /// Replacement interfaces: `auto` or a MAC each; `Some(vec![])` = no interface at all.
    pub vifs: Option<Vec<String>>,
    /// Network for every interface, by name on the target host.
    pub network: Option<String>,
    /// The target the advisories are for (default: the newest XCP-ng).
    pub target: Option<Target>,
}

/// What the caller shows the user while the plan layer works.
pub trait Events: Sync {
    /// A message, worded in full without the program's name (`warning: …`, `note: …`).
    fn message(&self, text: &str);
    /// A note of the guest definition (what the target will not get, decisions taken).
    fn note(&self, note: &Note) {
        self.message(&format!("{}: {}", note.severity, note.message));
    }
    /// The XVA stream starts: `total` bytes of disks, for `what` (`converting`, `uploading`).
    fn begin(&self, _what: &str, _total: u64) {}
    /// Bytes of the disks streamed so far.
    fn progress(&self, _done: u64) {}
    /// The XVA stream ended (written, or stopped).
    fn end(&self) {}
    /// A finding of the boot advisories (shown before the first byte moves).
    fn advisory(&self, a: &Advisory) {
        self.message(&format!("advice: {a}"));
    }
    /// The host's own import progress, 0.0 to 1.0 (polled after the stream).
    fn host_progress(&self, _fraction: f64) {}
    /// The host's import finished (the last [`Events::host_progress`] is done).
    fn host_done(&self) {}
}

/// Events nobody sees.
pub struct Quiet;

impl Events for Quiet {
    fn message(&self, _text: &str) {}
}

/// Everything a conversion needs before the first byte is written: the model, the opened
/// disks, the VM record and its `ova.xml`. Shared by file output and upload.
pub struct Plan {
    /// What was read.
    pub source: Source,
    /// The guest (for bare disks, the one made from them), after the overrides that shape
    /// its disks and boot mode.
    pub guest: Guest,
    /// The disks, in VDI order.
    pub readers: Vec<Arc<dyn BlockReader>>,
    /// What inspecting the disks found, and the advisories.
    pub advice: advice::Advice,
    /// The VM record.
    pub vm: VmSpec,
    /// `ova.xml`.
    pub xml: String,
    /// VDI ids, one per disk.
    pub ids: Vec<String>,
    /// Where each disk comes from, for messages.
    pub labels: Vec<String>,
}

impl Plan {
    /// The writer's view of the disks.
    pub fn sources(&self) -> Vec<DiskSource<'_>> {
        self.readers.iter().zip(&self.ids).map(|(r, id)| DiskSource { id, reader: r.as_ref() }).collect()
    }

    /// Sum of the disks' virtual sizes.
    pub fn total_size(&self) -> u64 {
        self.readers.iter().map(|r| r.virtual_size()).sum()
    }

    /// The notes of the guest definition.
    pub fn notes(&self) -> &[Note] {
        &self.guest.notes
    }

    /// Bytes the allocation maps say must be read: an upper bound of the chunk data written.
    pub fn data_bytes(&self) -> Result<u64> {
        let mut total = 0u64;
        for r in &self.readers {
            for m in r.extents(0..r.virtual_size()) {
                let m =
                    m.map_err(|e| Error::context(format!("reading the allocation map of {}", r.path().display()), e))?;
                if m.data {
                    total = total.saturating_add(m.len);
                }
            }
        }
        Ok(total)
    }
}

/// Opens and checks everything (all disk errors reported at once): the guest definition or the
/// bare disks, then the overrides. The definition's notes go to `events` once the VM record is
/// made, before the overrides are checked.
pub fn prepare(source: Source, ov: &Overrides, open: &OpenOptions, events: &dyn Events) -> Result<Plan> {
    let (guest, readers, mut vm, labels) = match &source {
        Source::Guest { path, load } => {
            let mut g = guest::load(path, load).map_err(input_error)?;
            shape_guest(&mut g, ov);
            let readers = g.open_disks(open).map_err(input_error)?;
            let sizes: Vec<u64> = readers.iter().map(|r| r.virtual_size()).collect();
            let vm = vm_spec(&g, &sizes).map_err(input_error)?;
            for n in &g.notes {
                events.note(n);
            }
            let labels = g.disks.iter().map(describe_source).collect();
            (g, readers, vm, labels)
        }
        Source::Disks(paths) => {
            let readers = open_disks(paths, open)?;
            let g = bare_guest(paths, ov);
            let sizes: Vec<u64> = readers.iter().map(|r| r.virtual_size()).collect();
            let vm = spec::vm_spec_unchecked(&g, &sizes).map_err(input_error)?;
            (g, readers, vm, paths.iter().map(|p| p.display().to_string()).collect())
        }
    };
    apply_overrides(&mut vm, ov)?;
    let readers: Vec<Arc<dyn BlockReader>> = readers.into_iter().map(Arc::from).collect();
    let advice = advice::advise(&guest, &readers, &ov.target.unwrap_or_default());
    for a in &advice.advisories {
        events.advisory(a);
    }
    let xml = records::ova_xml(&vm).map_err(|e| Error::usage(e.to_string()))?;
    let ids = (0..readers.len()).map(records::vdi_id).collect();
    Ok(Plan { source, guest, readers, advice, vm, xml, ids, labels })
}

/// A guest-definition error as an `Input` error (its message only, as always).
fn input_error(e: guest::GuestError) -> Error {
    Error::input(e.to_string())
}

/// Opens every bare disk, reporting all failures at once.
fn open_disks(paths: &[PathBuf], open: &OpenOptions) -> Result<Vec<Box<dyn BlockReader>>> {
    let mut readers = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match crate::backends::open(p, open) {
            Ok(r) => readers.push(r),
            Err(e) => errors.push(format!("cannot open disk {}: {}", p.display(), full_message(&e))),
        }
    }
    match errors.len() {
        0 => Ok(readers),
        1 => Err(Error::input(errors.remove(0))),
        n => Err(Error::input(format!("{n} disks cannot be opened:\n  {}", errors.join("\n  ")))),
    }
}

/// The guest of bare disks (no definition): xva.py's defaults — named after the first disk,
/// 256 MiB, 1 vCPU, HVM BIOS (or PV through pygrub), one interface with a generated MAC.
fn bare_guest(paths: &[PathBuf], ov: &Overrides) -> Guest {
    let mut g = Guest::new(guest::SourceKind::Disks);
    g.name = paths
        .first()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "Unnamed".into());
    g.memory = guest::Memory::new(256 * guest::MIB, None);
    if ov.pv {
        g.boot = pygrub();
    }
    g.disks = command_line_disks(paths, |i| format!("disk {i}"));
    if ov.cdrom {
        g.cdroms.push(guest::Cdrom { media: None, device: "--cdrom".into() });
    }
    g.nics.push(guest::Nic { mac: None, network: None, model: None });
    g
}

fn pygrub() -> guest::Boot {
    guest::Boot::PvBootloader { bootloader: "pygrub".into(), bootloader_args: String::new(), args: String::new() }
}

/// Disks named on the command line, the first one booting.
fn command_line_disks(paths: &[PathBuf], device: impl Fn(usize) -> String) -> Vec<guest::Disk> {
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| guest::Disk {
            source: guest::DiskSource::Path { path: p.clone() },
            format: None,
            bootable: i == 0,
            read_only: false,
            controller: guest::Controller::Xen,
            device: device(i),
            partition: None,
            capacity: None,
        })
        .collect()
}

/// The overrides that must change the guest before its disks are opened: boot mode,
/// replacement disks, a CD drive.
fn shape_guest(g: &mut Guest, ov: &Overrides) {
    if ov.hvm {
        g.force_hvm();
    } else if ov.pv && !g.boot.is_pv() {
        g.boot = pygrub();
        g.note(guest::Severity::Warning, "boot mode changed from HVM to PV (pygrub) by --pv");
    }
    if !ov.disks.is_empty() {
        g.disks = command_line_disks(&ov.disks, |i| format!("--disk {}", i + 1));
    }
    if ov.cdrom && g.cdroms.is_empty() {
        g.cdroms.push(guest::Cdrom { media: None, device: "--cdrom".into() });
    }
}

/// Applies the overrides that change the VM record, and checks the result.
fn apply_overrides(vm: &mut VmSpec, ov: &Overrides) -> Result<()> {
    if let Some(n) = &ov.name {
        vm.name = n.clone();
    }
    if let Some(d) = &ov.description {
        vm.description = d.clone();
    }
    if let Some(mib) = ov.memory_mib {
        let bytes = mib
            .checked_mul(1 << 20)
            .filter(|&m| m > 0)
            .ok_or_else(|| Error::usage(format!("--memory {mib} MiB is not a usable memory size")))?;
        vm.memory = Memory::fixed(bytes);
    }
    if let Some(n) = ov.vcpus {
        vm.vcpus_max = n;
        vm.vcpus_at_startup = n;
    }
    match &mut vm.boot {
        Boot::Hvm { firmware, secure_boot, .. } => {
            if let Some(f) = ov.firmware {
                *firmware = f;
            }
            if ov.secure_boot {
                *secure_boot = true;
            }
            if *secure_boot && *firmware != Firmware::Uefi {
                return Err(Error::usage("--secure-boot needs UEFI firmware (--firmware uefi)"));
            }
        }
        Boot::Pv { args: kernel_args, .. } => {
            if ov.firmware.is_some() || ov.secure_boot {
                return Err(Error::usage("--firmware and --secure-boot apply to HVM guests, this one is PV"));
            }
            if let Some(a) = &ov.pv_args {
                *kernel_args = a.clone();
            }
        }
    }
    let p = &mut vm.platform;
    p.acpi &= !ov.no_acpi;
    p.apic &= !ov.no_apic;
    p.pae &= !ov.no_pae;
    p.nx |= ov.nx;
    if let Some(v) = ov.viridian {
        p.viridian = v;
    }
    if let Some(vifs) = &ov.vifs {
        vm.vifs = vifs
            .iter()
            .enumerate()
            .map(|(i, v)| VifSpec {
                device: i as u32,
                mac: (v != "auto").then(|| v.clone()),
                network: records::DEFAULT_NETWORK.into(),
                bridge: records::DEFAULT_BRIDGE.into(),
            })
            .collect();
    }
    if let Some(net) = &ov.network {
        for v in &mut vm.vifs {
            v.network = net.clone();
        }
    }
    vm.check().map_err(|e| Error::usage(e.to_string()))
}

/// Bytes as a short human figure: `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Where disk `d` of a guest is, for messages.
pub fn describe_source(d: &guest::Disk) -> String {
    match &d.source {
        guest::DiskSource::Path { path } => path.display().to_string(),
        guest::DiskSource::OvaMember(m) => format!("{}:{} (bytes {}..+{})", m.ova.display(), m.name, m.offset, m.len),
        guest::DiskSource::Chunks { parts } => format!(
            "{} chunk(s): {}{}",
            parts.len(),
            parts.first().map(|m| m.ova.join(&m.name).display().to_string()).unwrap_or_default(),
            if parts.len() > 1 { " …" } else { "" }
        ),
        guest::DiskSource::Script { script, target } => format!("{script}:{target}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(dir: &Path, name: &str, size: u64) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p).unwrap().set_len(size).unwrap();
        p
    }

    #[test]
    fn bare_disks_make_a_guest_with_xva_py_defaults() {
        let d = tempfile::tempdir().unwrap();
        let paths = vec![disk(d.path(), "web01.img", 1 << 20), disk(d.path(), "data.img", 2 << 20)];
        let plan = prepare(Source::Disks(paths), &Overrides::default(), &OpenOptions::default(), &Quiet).unwrap();
        assert_eq!(plan.guest.source_kind, guest::SourceKind::Disks);
        assert!(plan.notes().is_empty());
        let vm = &plan.vm;
        assert_eq!(vm.name, "web01");
        assert_eq!(vm.memory, Memory::fixed(256 << 20));
        assert_eq!((vm.vcpus_max, vm.vcpus_at_startup), (1, 1));
        assert_eq!(vm.boot, Boot::hvm_bios());
        assert_eq!(vm.platform, records::Platform::default());
        let disks: Vec<_> =
            vm.disks.iter().map(|d| (d.name.as_str(), d.virtual_size, d.userdevice, d.bootable)).collect();
        assert_eq!(disks, [("web01 disk 0", 1 << 20, 0, true), ("web01 disk 1", 2 << 20, 1, false)]);
        assert!(!vm.cdrom);
        assert_eq!(vm.vifs.len(), 1);
        assert_eq!((vm.vifs[0].network.as_str(), vm.vifs[0].mac.as_ref()), (records::DEFAULT_NETWORK, None));
        assert_eq!(plan.ids, [records::vdi_id(0), records::vdi_id(1)]);
        assert_eq!(plan.total_size(), 3 << 20);
        assert!(plan.xml.contains("web01"));
    }

    #[test]
    fn overrides_apply_and_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let paths = vec![disk(d.path(), "a.img", 1 << 20)];
        let ov = Overrides {
            pv: true,
            pv_args: Some("console=hvc0".into()),
            name: Some("b".into()),
            vcpus: Some(2),
            cdrom: true,
            vifs: Some(vec![]),
            ..Overrides::default()
        };
        let plan = prepare(Source::Disks(paths.clone()), &ov, &OpenOptions::default(), &Quiet).unwrap();
        assert_eq!(plan.vm.boot, Boot::pv_pygrub("console=hvc0"));
        assert_eq!((plan.vm.name.as_str(), plan.vm.vcpus_max), ("b", 2));
        assert!(plan.vm.cdrom && plan.vm.vifs.is_empty());
        let refuse = |ov: Overrides| {
            let e = prepare(Source::Disks(paths.clone()), &ov, &OpenOptions::default(), &Quiet).err().unwrap();
            assert_eq!(e.kind, ErrorKind::Usage, "{e}");
            e.to_string()
        };
        assert!(refuse(Overrides { secure_boot: true, ..Overrides::default() }).contains("--firmware uefi"));
        assert!(refuse(Overrides { memory_mib: Some(0), ..Overrides::default() }).contains("--memory 0"));
        let e = prepare(Source::Disks(vec![d.path().join("missing.img")]), &ov, &OpenOptions::default(), &Quiet)
            .err()
            .unwrap();
        assert_eq!(e.kind, ErrorKind::Input);
        assert!(e.to_string().starts_with("cannot open disk "), "{e}");
    }
}
