//! Fuzz xl configs (libxlu grammar) and the xl / xm disk-spec parsers.
//! Seed corpus: `testdata/configs/xl/` (disk-vectors.txt feeds the disk parsers).
//! Errors are fine; panics and hangs are bugs (bounded recursion, checked numbers).
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = xva::guest::xl::parse(s);
        for line in s.lines().take(64) {
            let _ = xva::guest::xen::parse_xl_disk(line);
            let _ = xva::guest::xen::parse_xm_disk(line);
        }
    }
});
