//! W rules. Only what needs no NTFS or registry reading yet: W11 (BitLocker, from the volume
//! boot record's OEM id). The HAL and boot-driver rules (W1–W6) need the SYSTEM hive.

use super::{Advisory, DiskView, Severity};

/// W11.
pub fn rules(disks: &[DiskView<'_>]) -> Vec<Advisory> {
    let locked: Vec<String> = disks
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.facts.ok().map(|f| (i, f)))
        .flat_map(|(i, f)| {
            f.filesystems
                .iter()
                .filter(|fs| fs.fs_type == "bitlocker")
                .map(move |fs| format!("disk {i} {}", fs.location))
        })
        .collect();
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
