//! C rules: decided from the guest definition and the disk sizes alone (`advisories.md` §6).

use super::{needs_hvm, Advisory, DiskView, Severity, Target};
use crate::guest::{Boot, Guest};

/// vCPUs an untrusted XCP-ng 8.3 guest may have.
const MAX_VCPUS: u32 = 32;
/// Interfaces per VM.
const MAX_NICS: usize = 16;

/// C3, C4, C5, C10, C12.
pub fn rules(guest: &Guest, disks: &[DiskView<'_>], target: &Target) -> Vec<Advisory> {
    let mut out = Vec::new();
    if guest.boot.is_pv() && !target.pv {
        out.push(Advisory {
            code: "C3",
            severity: Severity::Block,
            message: format!("PV guests do not run on {}; the guest must boot as HVM", target.name),
            evidence: format!("the definition boots PV ({})", boot_word(&guest.boot)),
            fix: "convert with --hvm if the guest disk has its own kernel and bootloader (see the L rules), \
                  or choose a target that runs PV (--target xenserver-7.1)"
                .into(),
        });
    }
    if let Boot::PvKernel { kernel, .. } = &guest.boot {
        out.push(Advisory {
            code: "C4",
            severity: if needs_hvm(guest, target) { Severity::Block } else { Severity::Warn },
            message: "the kernel and initrd live in the source dom0, not on the guest disk".into(),
            evidence: format!("kernel = {kernel:?}"),
            fix: "install a kernel and a bootloader inside the guest before converting (for HVM), or copy the \
                  kernel to /var/lib/xcp/guest/ on every pool host (legacy PV)"
                .into(),
        });
    }
    let parts: Vec<&str> = guest.disks.iter().filter(|d| d.partition.is_some()).map(|d| d.device.as_str()).collect();
    if !parts.is_empty() {
        out.push(Advisory {
            code: "C5",
            severity: Severity::Block,
            message: "XenServer VBDs are whole disks: a partition image appears as a disk without a partition table"
                .into(),
            evidence: format!("partition device(s) {}", parts.join(", ")),
            fix: "build a whole-disk image with a partition table and a bootloader inside the guest first, \
                  then fix fstab and root= (L5)"
                .into(),
        });
    }
    let big: Vec<String> = disks
        .iter()
        .enumerate()
        .filter(|(_, d)| d.size > target.max_vdi)
        .map(|(i, d)| format!("disk {i}: {} bytes", d.size))
        .collect();
    if !big.is_empty() {
        out.push(Advisory {
            code: "C10",
            severity: Severity::Block,
            message: "disks over 2 TiB do not fit a VHD-based SR".into(),
            evidence: big.join(", "),
            fix: "import into a QCOW2 SR (XCP-ng 8.3), or shrink the disk in the guest first".into(),
        });
    }
    let mut limits = Vec::new();
    if guest.vcpus.max > MAX_VCPUS {
        limits.push(format!("{} vCPUs (untrusted guests: at most {MAX_VCPUS})", guest.vcpus.max));
    }
    if guest.nics.len() > MAX_NICS {
        limits.push(format!("{} NICs (at most {MAX_NICS})", guest.nics.len()));
    }
    if !limits.is_empty() {
        out.push(Advisory {
            code: "C12",
            severity: Severity::Warn,
            message: "the guest exceeds the target's supported limits".into(),
            evidence: limits.join(", "),
            fix: "lower with --vcpus, or drop interfaces with --vif".into(),
        });
    }
    out
}

fn boot_word(b: &Boot) -> String {
    match b {
        Boot::Hvm { .. } => "HVM".into(),
        Boot::PvBootloader { bootloader, .. } => format!("bootloader {bootloader}"),
        Boot::PvKernel { .. } => "direct kernel".into(),
    }
}
