//! L rules: decided from the Linux filesystems `inspect` read (`advisories.md` §4, §6).

use std::collections::BTreeSet;

use super::{needs_hvm, Advisory, DiskView, Severity, Target};
use crate::guest::{Boot, Guest};
use crate::inspect::linux::{version_triple, Kernel, BOOT_DRIVERS};
use crate::inspect::{FsFacts, LinuxFacts, Scheme};
use crate::vm::Firmware;

/// Most evidence items quoted in one advisory.
const MAX_EVIDENCE: usize = 6;

/// A rule that fires on any evidence line of one `LinuxFacts` list: id, message, fix, the list.
type EvidenceRule = (&'static str, &'static str, String, fn(&LinuxFacts) -> &Vec<String>);

/// A Linux filesystem and where it is.
struct Found<'a> {
    disk: usize,
    fs: &'a FsFacts,
    linux: &'a LinuxFacts,
}

impl Found<'_> {
    fn at(&self) -> String {
        format!("disk {} {}", self.disk, self.fs.location)
    }
}

/// L1, L2, L3, L5, L6, L7, L8, L9, L10, L11, L13, L14.
pub fn rules(guest: &Guest, disks: &[DiskView<'_>], target: &Target) -> Vec<Advisory> {
    let mut out = Vec::new();
    let mut found = Vec::new();
    for (disk, d) in disks.iter().enumerate() {
        let Ok(facts) = d.facts else { continue };
        for fs in &facts.filesystems {
            if fs.needs_recovery {
                out.push(Advisory {
                    code: "L14",
                    severity: Severity::Warn,
                    message:
                        "the filesystem was not cleanly unmounted; its journal was replayed in memory to inspect it"
                            .into(),
                    evidence: format!("disk {disk} {}: ext needs_recovery", fs.location),
                    fix: "shut the guest down cleanly before converting".into(),
                });
            }
            if let Some(linux) = &fs.linux {
                found.push(Found { disk, fs, linux });
            }
        }
    }
    if found.is_empty() {
        return out;
    }
    let hvm = needs_hvm(guest, target);
    let kernels: Vec<(&Found<'_>, &Kernel)> =
        found.iter().flat_map(|f| f.linux.kernels.iter().map(move |k| (f, k))).collect();
    let root = found.iter().find(|f| f.linux.is_root);
    if hvm && kernels.is_empty() {
        if let Some(r) = root {
            out.push(Advisory {
                code: "L2",
                severity: Severity::Block,
                message: "the guest has no kernel of its own (it was booted from a kernel in dom0)".into(),
                evidence: format!("{}: no vmlinuz-* in /boot, and no separate /boot holds one", r.at()),
                fix: "install a kernel and a bootloader in the guest before converting".into(),
            });
        }
    }
    if hvm && !kernels.is_empty() && kernels.iter().all(|(_, k)| k.xen_only) {
        out.push(Advisory {
            code: "L1",
            severity: Severity::Block,
            message: "only Xen-PV-only kernels are installed: they cannot boot as HVM".into(),
            evidence: list(kernels.iter().map(|(f, k)| {
                format!("{}: {} ({})", f.at(), k.path, k.config.as_deref().map_or("name ends in xen".into(), |c| format!("{c}: CONFIG_X86_XEN / CONFIG_X86_64_XEN=y")))
            })),
            fix: "install a non-Xen kernel in the source first (e.g. the distribution's plain `kernel` package) and make it the default".into(),
        });
    }
    if hvm {
        out.extend(bootloader(guest, disks, &found));
    }
    let devices: Vec<String> = found
        .iter()
        .flat_map(|f| {
            f.linux.device_names.iter().map(move |d| format!("{} {}:{} {}", f.at(), d.file, d.line, d.device))
        })
        .collect();
    if !devices.is_empty() {
        let uuids =
            list(found.iter().filter(|f| !f.fs.uuid.is_empty()).map(|f| format!("{}: UUID={}", f.at(), f.fs.uuid)));
        out.push(Advisory {
            code: "L5",
            severity: Severity::Warn,
            message: "kernel device names change on the target (xvd* with PV drivers, sd*/hd* without)".into(),
            evidence: list(devices.into_iter()),
            fix: format!(
                "refer to filesystems by UUID= or LABEL= in fstab, crypttab and root= before converting ({uuids})"
            ),
        });
    }
    out.extend(initramfs(&found, &kernels));
    if hvm {
        out.extend(old_kernels(&found, &kernels));
    }
    if !hvm && matches!(guest.boot, Boot::PvBootloader { .. }) {
        out.extend(pygrub(&found));
    }
    let simple: [EvidenceRule; 3] = [
        (
            "L6",
            "LVM filters name the old disks: the volume group may not be found",
            "widen filter/global_filter in /etc/lvm/lvm.conf (e.g. accept \"a|.*|\") and rebuild the initramfs before converting".into(),
            |l| &l.lvm_filters,
        ),
        (
            "L10",
            "VMware tooling and drivers are configured; they are useless on the target",
            "uninstall VMware Tools / open-vm-tools and remove VMware drivers (vmw_pvscsi, mptspi, vmxnet3) from module configs; install the XCP-ng guest tools".into(),
            |l| &l.vmware,
        ),
        (
            "L11",
            "interface names or MACs are pinned to the old NICs",
            "keep the MACs (--vif MAC), or remove persistent-net rules and HWADDR= lines before converting".into(),
            |l| &l.nic_pinning,
        ),
    ];
    for (code, message, fix, field) in simple {
        let ev: Vec<String> =
            found.iter().flat_map(|f| field(f.linux).iter().map(move |e| format!("{} {e}", f.at()))).collect();
        if !ev.is_empty() {
            out.push(Advisory {
                code,
                severity: Severity::Warn,
                message: message.into(),
                evidence: list(ev.into_iter()),
                fix,
            });
        }
    }
    let consoles: Vec<String> = found
        .iter()
        .flat_map(|f| f.linux.pv_consoles.iter().map(move |d| format!("{} {}:{} {}", f.at(), d.file, d.line, d.device)))
        .collect();
    if hvm && !consoles.is_empty() {
        out.push(Advisory {
            code: "L9",
            severity: Severity::Warn,
            message: "the console is the Xen PV console, which an HVM guest may not have".into(),
            evidence: list(consoles.into_iter()),
            fix: "add console=tty0 (and console=ttyS0) to the kernel command line and a getty on tty1".into(),
        });
    }
    out
}

/// L3: the boot disk must carry BIOS boot code (HVM BIOS boots the disk, not pygrub).
fn bootloader(guest: &Guest, disks: &[DiskView<'_>], found: &[Found<'_>]) -> Option<Advisory> {
    let firmware = match &guest.boot {
        Boot::Hvm { firmware, .. } => *firmware,
        _ => Firmware::Bios,
    };
    if firmware != Firmware::Bios || !found.iter().any(|f| f.disk == 0) {
        return None;
    }
    let facts = disks.first()?.facts.ok()?;
    let t = &facts.table;
    let evidence = match t.scheme {
        Scheme::Bare => "disk 0 is a bare filesystem: no partition table, no boot code".to_string(),
        Scheme::Mbr if !t.mbr_boot_code => "disk 0: MBR bytes 0-439 are all zero (no boot code)".into(),
        Scheme::Gpt if !t.has_bios_boot() => "disk 0: GPT without a BIOS boot partition".into(),
        _ => return None,
    };
    Some(Advisory {
        code: "L3",
        severity: Severity::Block,
        message: "the boot disk is not bootable by BIOS (pygrub read the bootloader config directly)".into(),
        evidence,
        fix: "run grub-install on the boot disk inside the guest (and give it a partition table if it has none) \
              before converting"
            .into(),
    })
}

/// What a kernel can use to reach its root disk on the target.
enum Drivers {
    Some,
    None(String),
    Unknown,
}

fn drivers(k: &Kernel, found: &[Found<'_>]) -> Drivers {
    let wanted: BTreeSet<&str> = BOOT_DRIVERS.iter().map(|(m, _)| *m).collect();
    let mut have: BTreeSet<String> = k.builtin.clone();
    for f in found {
        if let Some(b) = f.linux.modules_builtin.get(&k.version) {
            have.extend(b.iter().cloned());
        }
    }
    if let Some(i) = &k.initramfs_facts {
        have.extend(i.modules.iter().cloned());
    }
    if have.iter().any(|m| wanted.contains(m.as_str())) {
        return Drivers::Some;
    }
    let config = k.config.as_deref().map(|c| format!("{c} builds none in")).unwrap_or_else(|| "no config".into());
    match (&k.initramfs, &k.initramfs_facts) {
        (Some(path), Some(i)) if i.unsupported.is_none() => {
            Drivers::None(format!("{path} ({}) holds no xen-blkfront, ata_piix or piix; {config}", i.layers.join("+")))
        }
        (None, _) if k.config.is_some() => Drivers::None(format!("no initramfs for {}; {config}", k.version)),
        _ => Drivers::Unknown,
    }
}

/// L7: the initramfs (or the kernel itself) must drive the target's disks.
fn initramfs(found: &[Found<'_>], kernels: &[(&Found<'_>, &Kernel)]) -> Option<Advisory> {
    let usable: Vec<&(&Found<'_>, &Kernel)> = kernels.iter().filter(|(_, k)| !k.xen_only).collect();
    let candidates: Vec<&(&Found<'_>, &Kernel)> = if usable.is_empty() { kernels.iter().collect() } else { usable };
    let mut missing = Vec::new();
    let mut fine = 0;
    for (f, k) in &candidates {
        match drivers(k, found) {
            Drivers::Some | Drivers::Unknown => fine += 1,
            Drivers::None(why) => missing.push(format!("{}: {why}", f.at())),
        }
    }
    if missing.is_empty() {
        return None;
    }
    Some(Advisory {
        code: "L7",
        severity: if fine == 0 { Severity::Block } else { Severity::Warn },
        message: if fine == 0 {
            "root will not be found after migration: no kernel can drive the target's disks".into()
        } else {
            "some kernels cannot drive the target's disks (root not found if they boot)".into()
        },
        evidence: list(missing.into_iter()),
        fix: "in the guest, before export: dracut --add-drivers \"xen-blkfront xen-netfront\" --force \
              (or mkinitrd --with=xen-blkfront --with=ata_piix on older systems)"
            .into(),
    })
}

/// L8: every usable kernel predates upstream PV-on-HVM (2.6.36) and has no PV-on-HVM modules.
fn old_kernels(found: &[Found<'_>], kernels: &[(&Found<'_>, &Kernel)]) -> Option<Advisory> {
    let usable: Vec<&(&Found<'_>, &Kernel)> = kernels.iter().filter(|(_, k)| !k.xen_only).collect();
    let pv_on_hvm = |v: &str| found.iter().any(|f| f.linux.pv_on_hvm.contains(v));
    let old = |k: &Kernel| version_triple(&k.version).is_some_and(|t| t < (2, 6, 36)) && !pv_on_hvm(&k.version);
    if usable.is_empty() || !usable.iter().all(|(_, k)| old(k)) {
        return None;
    }
    Some(Advisory {
        code: "L8",
        severity: Severity::Warn,
        message: "the kernel predates PV-on-HVM (2.6.36): only emulated IDE and rtl8139, slowly".into(),
        evidence: list(usable.iter().map(|(f, k)| {
            format!("{}: {} (no xen-platform-pci in /lib/modules/{}/modules.dep)", f.at(), k.path, k.version)
        })),
        fix: "install the distribution's PV-on-HVM drivers (kmod-xenpv, xen-kmp) or a newer kernel".into(),
    })
}

/// L13 (legacy PV targets, pygrub): BootLoaderSpec entries, ext4 `metadata_csum` on `/boot`.
fn pygrub(found: &[Found<'_>]) -> Option<Advisory> {
    let mut ev: Vec<String> =
        found.iter().flat_map(|f| f.linux.blscfg.iter().map(move |p| format!("{} {p}: blscfg", f.at()))).collect();
    let boot = found.iter().find(|f| !f.linux.kernels.is_empty());
    if let Some(b) = boot.filter(|b| b.fs.metadata_csum) {
        ev.push(format!("{}: ext4 metadata_csum", b.at()));
    }
    if ev.is_empty() {
        return None;
    }
    Some(Advisory {
        code: "L13",
        severity: Severity::Warn,
        message: "pygrub may not boot this guest".into(),
        evidence: list(ev.into_iter()),
        fix: "convert to HVM (--hvm), or give pygrub a plain grub.cfg / menu.lst on a /boot without metadata_csum"
            .into(),
    })
}

/// At most [`MAX_EVIDENCE`] items, `; `-joined, with a count of the rest.
fn list(items: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = items.collect();
    let mut s = all.iter().take(MAX_EVIDENCE).cloned().collect::<Vec<_>>().join("; ");
    if all.len() > MAX_EVIDENCE {
        s.push_str(&format!("; and {} more", all.len() - MAX_EVIDENCE));
    }
    s
}
