//! W rules decidable without the registry: W11 (BitLocker, from the volume boot record's OEM
//! id), and from the NTFS root directory W10 (`hiberfil.sys` header), W7 (`/gplpv` in
//! `boot.ini`, partly) and W12 (`boot.ini`: Windows before Vista). The HAL and boot-driver
//! rules (W1–W6) need the SYSTEM hive.

use super::{Advisory, DiskView, Severity};
use crate::inspect::ntfs::WindowsFacts;
use crate::inspect::FsFacts;

/// W7, W10, W11, W12.
pub fn rules(disks: &[DiskView<'_>]) -> Vec<Advisory> {
    let mut out = bitlocker(disks);
    let ntfs: Vec<(String, &WindowsFacts)> =
        volumes(disks).into_iter().filter_map(|(at, fs)| fs.windows.as_ref().map(|w| (at, w))).collect();
    let hibernated: Vec<String> = ntfs
        .iter()
        .filter(|(_, w)| w.hibernated)
        .map(|(at, _)| format!("{at}: \\hiberfil.sys starts with a hibernation signature"))
        .collect();
    if !hibernated.is_empty() {
        out.push(Advisory {
            code: "W10",
            severity: Severity::Block,
            message: "Windows is hibernated or was shut down with Fast Startup: the volume is in an unsafe state"
                .into(),
            evidence: hibernated.join("; "),
            fix:
                "boot the source, disable Fast Startup (powercfg /h off) and shut Windows down fully before converting"
                    .into(),
        });
    }
    let gplpv: Vec<String> = ntfs
        .iter()
        .filter_map(|(at, w)| w.boot_ini.as_ref().map(|b| (at, b)))
        .filter(|(_, b)| b.to_ascii_lowercase().contains("/gplpv"))
        .map(|(at, _)| format!("{at}: \\boot.ini has /gplpv"))
        .collect();
    if !gplpv.is_empty() {
        out.push(Advisory {
            code: "W7",
            severity: Severity::Warn,
            message: "GPLPV drivers are enabled; they conflict with the XenServer/XCP-ng PV drivers (same xenvbd/xennet names)".into(),
            evidence: gplpv.join("; "),
            fix: "remove /gplpv from boot.ini and uninstall GPLPV before converting, then install the XCP-ng guest tools".into(),
        });
    }
    let legacy: Vec<String> =
        ntfs.iter().filter(|(_, w)| w.boot_ini.is_some()).map(|(at, _)| format!("{at}: \\boot.ini")).collect();
    if !legacy.is_empty() {
        out.push(Advisory {
            code: "W12",
            severity: Severity::Info,
            message: "Windows before Vista (boot.ini): no current XenServer PV drivers; it runs on emulated IDE and rtl8139".into(),
            evidence: legacy.join("; "),
            fix: "check the HAL and the IDE boot drivers by hand until xva reads the registry (KB314082: atapi, intelide, pciide Start=0)".into(),
        });
    }
    out
}

/// Every volume inspection found, with `disk N <location>`.
fn volumes<'a>(disks: &'a [DiskView<'_>]) -> Vec<(String, &'a FsFacts)> {
    let mut out = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        if let Ok(f) = d.facts {
            out.extend(f.filesystems.iter().map(|fs| (format!("disk {i} {}", fs.location), fs)));
        }
    }
    out
}

/// W11.
fn bitlocker(disks: &[DiskView<'_>]) -> Vec<Advisory> {
    let locked: Vec<String> =
        volumes(disks).into_iter().filter(|(_, fs)| fs.fs_type == "bitlocker").map(|(at, _)| at).collect();
    if locked.is_empty() {
        return Vec::new();
    }
    vec![Advisory {
        code: "W11",
        severity: Severity::Block,
        message:
            "BitLocker-encrypted volume: it cannot be inspected, and its TPM protector will not unseal on the new VM"
                .into(),
        evidence: format!("{}: boot sector OEM id -FVE-FS-", locked.join(", ")),
        fix: "turn BitLocker off in the guest (manage-bde -off C:) and wait for decryption to finish before converting"
            .into(),
    }]
}
