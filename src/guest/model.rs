//! The guest model every config parser produces and the XVA writer consumes.
//!
//! ```text
//!   xm / xl / SXP / VMX / OVF ──parse──► Guest ──plan::vm_spec──► VmSpec (ova.xml)
//!                                          └── notes: what the target will not get
//! ```
//!
//! Plain data, no I/O. Sizes are bytes. Paths are kept as the source wrote them until
//! [`crate::guest::load`] resolves them (path maps, the config's directory, OVA members).

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// Which kind of definition a guest came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// xm / xend Python config (`/etc/xen/NAME`).
    Xm,
    /// xl config (`xl.cfg(5)`).
    Xl,
    /// xend s-expression (`config.sxp`, `xm list -l`).
    Sxp,
    /// VMware `.vmx`.
    Vmx,
    /// OVF descriptor.
    Ovf,
    /// OVA archive (OVF + disks in a tar).
    Ova,
    /// No definition: bare disk images (`xva convert --disk`), with xva.py's defaults. Not a
    /// kind that can be detected or asked for, so not in [`SourceKind::ALL`].
    Disks,
}

impl SourceKind {
    /// Every kind, for `--source-type` help and detection tests.
    pub const ALL: [SourceKind; 6] =
        [SourceKind::Xm, SourceKind::Xl, SourceKind::Sxp, SourceKind::Vmx, SourceKind::Ovf, SourceKind::Ova];

    /// The short name (`xm`, `xl`, `sxp`, `vmx`, `ovf`, `ova`).
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Xm => "xm",
            SourceKind::Xl => "xl",
            SourceKind::Sxp => "sxp",
            SourceKind::Vmx => "vmx",
            SourceKind::Ovf => "ovf",
            SourceKind::Ova => "ova",
            SourceKind::Disks => "disks",
        }
    }

    /// The definition kind called `name` (case-insensitive; one of [`SourceKind::ALL`]).
    pub fn from_name(name: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How much a note matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record: the source had it, the target does not need it.
    Info,
    /// The converted VM may behave differently; read before starting it.
    Warning,
    /// The converted VM will probably not start or not work as the source did without action.
    Important,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Important => "IMPORTANT",
        })
    }
}

/// Something the source had that the target will not, or a decision the conversion made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Note {
    /// How much it matters.
    pub severity: Severity,
    /// What, in one or two sentences, including what to do about it.
    pub message: String,
}

/// Memory sizes in bytes, satisfying `static_min ≤ dynamic_min ≤ dynamic_max ≤ static_max`
/// once built by [`Memory::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// Lowest size the VM may be given.
    pub static_min: u64,
    /// Lowest balloon target.
    pub dynamic_min: u64,
    /// Highest balloon target (the size it boots with).
    pub dynamic_max: u64,
    /// Highest size the VM may be given.
    pub static_max: u64,
}

/// One MiB.
pub const MIB: u64 = 1 << 20;

impl Memory {
    /// A VM with `target` bytes and, when the source said so, a larger maximum (`maxmem`).
    /// `max` below `target` is raised to `target`.
    pub fn new(target: u64, max: Option<u64>) -> Memory {
        let max = max.unwrap_or(target).max(target);
        Memory { static_min: target, dynamic_min: target, dynamic_max: target, static_max: max }
    }

    /// The four values from explicit numbers (SXP's Xen-API keys), re-ordered so that the
    /// constraints hold: each value is clamped into the range its neighbours allow.
    pub fn from_parts(static_min: u64, dynamic_min: u64, dynamic_max: u64, static_max: u64) -> Memory {
        let static_max = static_max.max(dynamic_max).max(1);
        let dynamic_max = if dynamic_max == 0 { static_max } else { dynamic_max };
        let dynamic_min = if dynamic_min == 0 { dynamic_max } else { dynamic_min.min(dynamic_max) };
        let static_min = static_min.min(dynamic_min);
        Memory { static_min, dynamic_min, dynamic_max, static_max }
    }

    /// Whether the xapi constraint holds.
    pub fn is_valid(&self) -> bool {
        self.static_min <= self.dynamic_min
            && self.dynamic_min <= self.dynamic_max
            && self.dynamic_max <= self.static_max
            && self.static_max > 0
    }
}

/// Virtual CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Vcpus {
    /// `VCPUs_max`, at least 1.
    pub max: u32,
    /// `VCPUs_at_startup`, `1 ..= max`.
    pub at_startup: u32,
}

impl Vcpus {
    /// `at_startup` vCPUs online out of `max` (both clamped so that `1 ≤ at_startup ≤ max`).
    pub fn new(max: u32, at_startup: u32) -> Vcpus {
        let max = max.max(1);
        Vcpus { max, at_startup: at_startup.clamp(1, max) }
    }
}

/// HVM firmware: shared with the XVA records (see [`crate::vm`]).
pub use crate::vm::Firmware;

/// How the guest boots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Boot {
    /// Fully virtualised with emulated firmware.
    Hvm {
        /// BIOS or UEFI.
        firmware: Firmware,
        /// UEFI Secure Boot was on in the source.
        secure_boot: bool,
        /// Boot order letters as xapi wants them (`c` disk, `d` CD, `n` network), e.g. `cd`.
        order: String,
    },
    /// Paravirtualised, booted by a bootloader in dom0 that reads the guest disk (pygrub).
    PvBootloader {
        /// The bootloader the source named (`/usr/bin/pygrub`, `pygrub`, `pvgrub64`...).
        bootloader: String,
        /// Extra bootloader arguments.
        bootloader_args: String,
        /// Kernel command line passed through (`root=` + `extra`).
        args: String,
    },
    /// Paravirtualised with a kernel and ramdisk stored in dom0 (outside the guest disk).
    PvKernel {
        /// Kernel path on the source host.
        kernel: String,
        /// Ramdisk path on the source host.
        ramdisk: Option<String>,
        /// Kernel command line.
        args: String,
    },
}

impl Boot {
    /// Default HVM boot: BIOS, no Secure Boot, disk then CD.
    pub fn hvm_bios() -> Boot {
        Boot::Hvm { firmware: Firmware::Bios, secure_boot: false, order: "cd".into() }
    }

    /// Whether this is a PV boot mode.
    pub fn is_pv(&self) -> bool {
        !matches!(self, Boot::Hvm { .. })
    }
}

/// Platform flags as the source stated them; `None` = the source did not say (the mapping to
/// the XVA applies defaults: acpi, apic, pae on; viridian on for Windows).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Platform {
    /// ACPI tables.
    pub acpi: Option<bool>,
    /// Local APIC / MP tables.
    pub apic: Option<bool>,
    /// PAE.
    pub pae: Option<bool>,
    /// NX bit exposed.
    pub nx: Option<bool>,
    /// Hyper-V enlightenments.
    pub viridian: Option<bool>,
    /// RTC offset from UTC in seconds (`rtc_timeoffset`).
    pub timeoffset: Option<i64>,
    /// RTC keeps local time (Windows habit; `localtime = 1`).
    pub localtime: Option<bool>,
}

/// The storage controller a disk hung off in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Controller {
    /// Xen paravirtual block device (`xvd*`, or a Xen config's vdev in general).
    Xen,
    /// IDE / ATA.
    Ide,
    /// SCSI with an adapter model.
    Scsi(ScsiModel),
    /// SATA (AHCI).
    Sata,
    /// NVMe.
    Nvme,
}

/// SCSI adapter models seen in VMware sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScsiModel {
    /// Not stated.
    Unknown,
    /// LSI Logic parallel.
    LsiLogic,
    /// BusLogic.
    BusLogic,
    /// LSI Logic SAS (`lsisas1068`).
    LsiSas,
    /// VMware paravirtual (`pvscsi`).
    Pvscsi,
}

/// Where a disk's bytes live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DiskSource {
    /// A file or block device (as written in the config until `load` resolves it).
    Path {
        /// The path.
        path: PathBuf,
    },
    /// A member of an OVA archive, read in place as a window of the OVA file.
    OvaMember(OvaMember),
    /// A disk exported in chunks (`ovftool --chunkSize`: `disk.vmdk.000000000`, `.000000001`…),
    /// read as the concatenation of the byte ranges, in order (OVA members, or whole files next
    /// to an `.ovf` with `offset` 0).
    Chunks {
        /// The parts in order.
        parts: Vec<OvaMember>,
    },
    /// A device produced by a dom0 block script (`iscsi:`, `drbd:`, `nbd:`): not readable
    /// from a file; the user must supply the data (`--disk` or `--path-map`).
    Script {
        /// The script (`iscsi`, `drbd`, `nbd`, `enbd`, or a `script=` value).
        script: String,
        /// What the script was given.
        target: String,
    },
}

/// A disk image stored inside an OVA: open it as
/// `xva_backends::Window::new(file, offset, len, ova.join(name))`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OvaMember {
    /// The OVA file.
    pub ova: PathBuf,
    /// The member's name in the tar.
    pub name: String,
    /// Byte offset of the member's data in the OVA file.
    pub offset: u64,
    /// Length of the member's data.
    pub len: u64,
}

/// A hard disk of the guest, in target order (index 0 is the boot disk).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Disk {
    /// Where the data is.
    pub source: DiskSource,
    /// Image format hint from the config (`raw`, `qcow2`, `vhd`, `vmdk`...), if any.
    pub format: Option<String>,
    /// Boot disk.
    pub bootable: bool,
    /// Attached read-only in the source.
    pub read_only: bool,
    /// Source controller.
    pub controller: Controller,
    /// Source device name: `xvda`, `sda1`, `hda`, `scsi0:1`, `nvme0:0`, OVF `disk/vmdisk1`...
    pub device: String,
    /// The source device is a partition (`sda1`, `xvda2`): XenServer VBDs are whole disks.
    pub partition: Option<u32>,
    /// Capacity the config states (OVF `capacity`), to cross-check the image.
    pub capacity: Option<u64>,
}

/// A CD/DVD drive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cdrom {
    /// ISO image or host device the source had inserted (not imported).
    pub media: Option<String>,
    /// Source device name (`hdc`, `ide1:0`, ...).
    pub device: String,
}

/// A network interface, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Nic {
    /// MAC as `aa:bb:cc:dd:ee:ff` (lower case), if the source fixed one.
    pub mac: Option<String>,
    /// Bridge (Xen) or network name (VMware/OVF).
    pub network: Option<String>,
    /// NIC model (`e1000`, `vmxnet3`, `rtl8139`, `netfront`...).
    pub model: Option<String>,
}

/// Operating-system hint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OsHint {
    /// What the source said (`windows9-64`, `windows7Server64Guest`, `linux`...).
    pub source_id: String,
    /// OS family.
    pub family: OsFamily,
    /// Human name, e.g. `Windows Server 2016`.
    pub name: String,
    /// 64-bit.
    pub bits64: bool,
}

/// Broad OS family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OsFamily {
    /// Microsoft Windows.
    Windows,
    /// Linux.
    Linux,
    /// BSD.
    Bsd,
    /// Solaris.
    Solaris,
    /// Anything else.
    Other,
}

/// A snapshot listed in a VMware `.vmsd`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// `snapshotN.uid`.
    pub uid: u64,
    /// `snapshotN.parent` uid.
    pub parent: Option<u64>,
    /// Display name.
    pub name: String,
    /// The running state descends from this snapshot.
    pub current: bool,
    /// Disks as of the snapshot: (node, fileName).
    pub disks: Vec<(String, String)>,
}

/// A guest as its source defined it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Guest {
    /// Which definition it came from.
    pub source_kind: SourceKind,
    /// VM name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Source UUID, if stated.
    pub uuid: Option<String>,
    /// Windows VM-Generation ID from the source, if stated.
    pub generation_id: Option<String>,
    /// Memory.
    pub memory: Memory,
    /// vCPUs.
    pub vcpus: Vcpus,
    /// Boot mode.
    pub boot: Boot,
    /// Platform flags.
    pub platform: Platform,
    /// Hard disks in target order.
    pub disks: Vec<Disk>,
    /// CD drives (the target gets one empty drive if there is any).
    pub cdroms: Vec<Cdrom>,
    /// NICs in order.
    pub nics: Vec<Nic>,
    /// OS hint.
    pub os: Option<OsHint>,
    /// Snapshot tree (VMware).
    pub snapshots: Vec<Snapshot>,
    /// What could not be carried over, and decisions taken.
    pub notes: Vec<Note>,
}

impl Guest {
    /// An empty guest of `kind`: 1 vCPU, 128 MiB, HVM BIOS.
    pub fn new(kind: SourceKind) -> Guest {
        Guest {
            source_kind: kind,
            name: String::new(),
            description: String::new(),
            uuid: None,
            generation_id: None,
            memory: Memory::new(128 * MIB, None),
            vcpus: Vcpus::new(1, 1),
            boot: Boot::hvm_bios(),
            platform: Platform::default(),
            disks: Vec::new(),
            cdroms: Vec::new(),
            nics: Vec::new(),
            os: None,
            snapshots: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a note.
    pub fn note(&mut self, severity: Severity, message: impl Into<String>) {
        let message = message.into();
        if !self.notes.iter().any(|n| n.message == message) {
            self.notes.push(Note { severity, message });
        }
    }

    /// Whether the guest looks like Windows (OS hint, or viridian on).
    pub fn is_windows(&self) -> bool {
        self.os.as_ref().is_some_and(|o| o.family == OsFamily::Windows)
    }

    /// Switches a PV guest to HVM with BIOS (`--hvm`): for guests whose disk carries its own
    /// kernel and bootloader. Adds a note; does nothing for HVM guests.
    pub fn force_hvm(&mut self) {
        if !self.boot.is_pv() {
            return;
        }
        self.boot = Boot::hvm_bios();
        self.notes.retain(|n| !n.message.starts_with("this is a PV guest"));
        self.note(
            Severity::Warning,
            "converted from PV to HVM (--hvm): the guest must have a bootloader on its disk and \
             Xen PV drivers (or emulated-device drivers) in its initrd",
        );
    }

    /// Notes every parser wants once its model is complete: the PV warning, partition
    /// devices, CD drives, MACs, and a single boot disk.
    pub fn finish(&mut self) {
        if !self.disks.is_empty() && !self.disks.iter().any(|d| d.bootable) {
            // Nothing marked: the first disk in source order boots.
            self.disks[0].bootable = true;
        }
        // Exactly one bootable disk, and it goes first (userdevice 0).
        if let Some(i) = self.disks.iter().position(|d| d.bootable) {
            if i != 0 {
                let d = self.disks.remove(i);
                self.disks.insert(0, d);
            }
            for d in self.disks.iter_mut().skip(1) {
                d.bootable = false;
            }
        }
        if self.boot.is_pv() {
            self.note(
                Severity::Important,
                "this is a PV guest: XenServer 8 and XCP-ng 8.3 cannot start PV guests at all, \
                 and XenServer/XCP-ng 8.1-8.2 run them unsupported; if the guest disk carries \
                 its own kernel and bootloader, convert with --hvm",
            );
        }
        if let Boot::PvKernel { kernel, .. } = &self.boot {
            let k = kernel.clone();
            self.note(
                Severity::Warning,
                format!(
                    "direct kernel boot: kernel {k:?} (and ramdisk) live in the source dom0, not in \
                     the guest disk; they must be placed on the target host for the VM to boot"
                ),
            );
        }
        let parts: Vec<String> =
            self.disks.iter().filter(|d| d.partition.is_some()).map(|d| d.device.clone()).collect();
        if !parts.is_empty() {
            self.note(
                Severity::Warning,
                format!(
                    "source device(s) {} are partitions: XenServer VBDs are whole disks, so the \
                     guest will see each image as a whole disk (/dev/xvdX) rather than a \
                     partition; its fstab and root= may need fixing",
                    parts.join(", ")
                ),
            );
        }
        let pv_names: Vec<String> = self
            .disks
            .iter()
            .filter(|d| {
                d.partition.is_none() && self.boot.is_pv() && (d.device.starts_with("sd") || d.device.starts_with("hd"))
            })
            .map(|d| d.device.clone())
            .collect();
        if !pv_names.is_empty() {
            self.note(
                Severity::Info,
                format!("PV device name(s) {} will appear as /dev/xvd* in the target", pv_names.join(", ")),
            );
        }
        let isos: Vec<String> = self.cdroms.iter().filter_map(|c| c.media.clone()).collect();
        if !isos.is_empty() {
            self.note(
                Severity::Info,
                format!("CD media {} not imported: the VM gets an empty CD drive", isos.join(", ")),
            );
        }
        if self.cdroms.len() > 1 {
            self.note(
                Severity::Info,
                format!("{} CD drives in the source; the target gets one (userdevice 3)", self.cdroms.len()),
            );
        }
        if self.platform.localtime == Some(true) && !self.boot.is_pv() {
            self.note(
                Severity::Warning,
                "the source kept the RTC in local time (localtime = 1); XenServer keeps the RTC \
                 offset in platform:timeoffset, which is set from rtc_timeoffset only: check the \
                 guest clock after the first boot",
            );
        }
        if self.nics.iter().any(|n| n.mac.is_some()) {
            self.note(
                Severity::Info,
                "source MAC addresses are recorded in the XVA; xapi keeps them only when the \
                 import is done in restore mode (xe vm-import preserve=true)",
            );
        }
        if !self.memory.is_valid() {
            let m = self.memory;
            self.memory = Memory::from_parts(m.static_min, m.dynamic_min, m.dynamic_max, m.static_max);
        }
    }
}

/// The disk format a config's type word names (`aio` and friends are raw).
pub fn format_hint(word: &str) -> Option<String> {
    let w = word.to_ascii_lowercase();
    let f = match w.as_str() {
        "raw" | "aio" | "sync" | "file" | "phy" => "raw",
        "qcow" => "qcow",
        "qcow2" => "qcow2",
        "vhd" => "vhd",
        "vmdk" => "vmdk",
        "qed" => "qed",
        _ => return None,
    };
    Some(f.to_string())
}

/// Partition number in a Xen/Linux device name: `sda1` → 1, `xvdb12` → 12, `xvda` → None,
/// `d0p2` → 2, a raw number → None.
pub fn partition_of(dev: &str) -> Option<u32> {
    let d = dev.trim();
    if let Some(rest) = d.strip_prefix('d') {
        // dNpM
        if let Some((disk, part)) = rest.split_once('p') {
            if !disk.is_empty() && disk.bytes().all(|b| b.is_ascii_digit()) {
                return part.parse().ok().filter(|&p| p > 0);
            }
        }
    }
    for prefix in ["xvd", "sd", "hd", "vd"] {
        if let Some(rest) = d.strip_prefix(prefix) {
            let letters = rest.bytes().take_while(|b| b.is_ascii_lowercase()).count();
            if letters == 0 {
                return None;
            }
            let digits = &rest[letters..];
            if digits.is_empty() {
                return None;
            }
            return digits.parse().ok().filter(|&p| p > 0);
        }
    }
    None
}

/// Normalises a MAC to lower-case colon form; `None` if it is not 6 hex octets.
pub fn normalize_mac(mac: &str) -> Option<String> {
    let m = mac.trim();
    let parts: Vec<&str> = if m.contains(':') {
        m.split(':').collect()
    } else if m.contains('-') {
        m.split('-').collect()
    } else if m.len() == 12 {
        (0..6).filter_map(|i| m.get(i * 2..i * 2 + 2)).collect()
    } else {
        return None;
    };
    if parts.len() != 6 {
        return None;
    }
    let mut out = Vec::with_capacity(6);
    for p in parts {
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        out.push(format!("{:0>2}", p.to_ascii_lowercase()));
    }
    Some(out.join(":"))
}

/// Boot order letters xapi understands, from a Xen `boot=` value (`a` floppy and unknown
/// letters dropped; default `cd`).
pub fn boot_order(xen: &str) -> String {
    let mut out = String::new();
    for c in xen.chars() {
        let c = c.to_ascii_lowercase();
        if matches!(c, 'c' | 'd' | 'n') && !out.contains(c) {
            out.push(c);
        }
    }
    if out.is_empty() {
        "cd".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_constraints() {
        let m = Memory::new(512 * MIB, Some(1024 * MIB));
        assert!(m.is_valid());
        assert_eq!(m.static_max, 1024 * MIB);
        let m = Memory::new(512 * MIB, Some(256 * MIB));
        assert_eq!(m.static_max, 512 * MIB);
        let m = Memory::from_parts(4, 10, 8, 2);
        assert!(m.is_valid(), "{m:?}");
    }

    #[test]
    fn partitions_and_macs() {
        assert_eq!(partition_of("sda1"), Some(1));
        assert_eq!(partition_of("xvdb12"), Some(12));
        assert_eq!(partition_of("xvda"), None);
        assert_eq!(partition_of("hdc"), None);
        assert_eq!(partition_of("d0p2"), Some(2));
        assert_eq!(partition_of("51712"), None);
        assert_eq!(normalize_mac("00:16:3E:1b:8b:d2").as_deref(), Some("00:16:3e:1b:8b:d2"));
        assert_eq!(normalize_mac("00-50-56-aa-bb-cc").as_deref(), Some("00:50:56:aa:bb:cc"));
        assert_eq!(normalize_mac("00:16:3e:1b:8b"), None);
        assert_eq!(boot_order("dc"), "dc");
        assert_eq!(boot_order("a"), "cd");
    }

    #[test]
    fn finish_moves_boot_disk_first_and_warns_pv() {
        let mut g = Guest::new(SourceKind::Xm);
        g.boot =
            Boot::PvBootloader { bootloader: "pygrub".into(), bootloader_args: String::new(), args: String::new() };
        for (i, dev) in ["xvdb", "xvda1"].iter().enumerate() {
            g.disks.push(Disk {
                source: DiskSource::Path { path: format!("/d{i}").into() },
                format: None,
                bootable: i == 1,
                read_only: false,
                controller: Controller::Xen,
                device: dev.to_string(),
                partition: partition_of(dev),
                capacity: None,
            });
        }
        g.finish();
        assert_eq!(g.disks[0].device, "xvda1");
        assert!(g.notes.iter().any(|n| n.severity == Severity::Important));
        assert!(g.notes.iter().any(|n| n.message.contains("partitions")));
    }
}
