//! Fuzz OVF descriptors (namespace-aware XML), OVA manifests and tar headers.
//! Seed corpus: `testdata/configs/ovf/`.
//! Errors are fine; panics and hangs are bugs (bounded recursion, checked numbers).
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = xva::guest::ovf::parse(s);
    }
    let _ = xva::guest::ova::parse_manifest(&String::from_utf8_lossy(data));
    if data.len() >= 512 {
        let _ = xva::guest::ova::parse_header(&data[..512]);
    }
});
