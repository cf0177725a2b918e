//! Fuzz the initramfs scanner (cpio newc archives, gzip/zstd layers, zero padding).
//! Seed corpus: small `find . | cpio -o -H newc | gzip` archives and dracut images' first MiB.
//! Errors are fine; panics and hangs are bugs (entry, padding and decompressed-size caps).
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    let _ = xva::inspect::cpio::scan(data);
});
