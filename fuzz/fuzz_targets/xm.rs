//! Fuzz xm/xend configs: the restricted Python-literal evaluator and the xm mapping.
//! Seed corpus: `testdata/configs/xm/` (and `xm/bad/`).
//! Errors are fine; panics and hangs are bugs (bounded recursion, checked numbers).
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = xva::guest::xm::parse(s);
        let _ = xva::guest::xm::parse_with(s, &[("vmid".into(), "1".into())]);
    }
});
