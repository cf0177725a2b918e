//! Fuzz xend s-expressions (config.sxp, `xm list -l`).
//! Seed corpus: `testdata/configs/sxp/`.
//! Errors are fine; panics and hangs are bugs (bounded recursion, checked numbers).
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = xva::guest::sxp::parse(s);
    }
});
