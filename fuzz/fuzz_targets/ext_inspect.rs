//! Fuzz whole-disk inspection with the input as a bare ext2/3/4 filesystem (ext4-view behind
//! the budgeted window, then the Linux facts: fstab, grub, kernels, initramfs).
//! Seed corpus: small `mkfs.ext4 -d tree fs.img 1M` images. Errors are fine; panics are bugs.
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    let mut img = data.to_vec();
    // Keep the superblock magic so the input reaches ext4-view rather than "no filesystem".
    if img.len() >= 2048 {
        img[1080] = 0x53;
        img[1081] = 0xEF;
    }
    xva_fuzz::inspect_all(&img);
});
