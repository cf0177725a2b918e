//! Fuzz inspection of a bare NTFS volume (the `ntfs` crate behind the budgeted window: boot
//! sector, $MFT, $UpCase, the root index, `boot.ini`, `hiberfil.sys`).
//! Seed corpus: small `mkntfs -Q` images with files added by `ntfscp`. Panics are bugs.
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    let mut img = data.to_vec();
    // Keep the OEM id and signature so the input reaches the NTFS reader.
    if img.len() >= 512 {
        img[3..11].copy_from_slice(b"NTFS    ");
        img[510] = 0x55;
        img[511] = 0xAA;
    }
    xva_fuzz::inspect_all(&img);
});
