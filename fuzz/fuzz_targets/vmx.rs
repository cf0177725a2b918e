//! Fuzz VMware .vmx / .vmsd (bytes in: the charset comes from `.encoding`).
//! Seed corpus: `testdata/configs/vmx/**/*.vmx` and `*.vmsd`.
//! Errors are fine; panics and hangs are bugs (bounded recursion, checked numbers).
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    let _ = xva::guest::vmx::parse(data);
    let _ = xva::guest::vmx::parse_vmsd(data);
});
