//! Run the whole XVA validator (decompression, tar headers, ova.xml, xapi's chunk loop) over an
//! arbitrary byte stream. Errors and findings are fine; panics and hangs are bugs.
//! Seed corpus: small XVAs from `xva convert --disk <tiny.raw> -o seed.xva` (plain, and
//! compressed with `gzip`/`zstd`).
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    // No SHA-256: a header claiming a huge disk would otherwise hash zeros for minutes.
    let opts = xva::xva::validate::VerifyOptions { compute_sha256: false };
    let _ = xva::xva::validate::verify_reader(data, &opts);
});
