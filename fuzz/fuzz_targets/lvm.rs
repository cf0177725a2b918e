//! Fuzz the LVM2 metadata text parser, then the input as a whole disk (label, PV header,
//! metadata area, linear LVs) through inspection.
//! Seed corpus: `vgcfgbackup` files and the first MiB of PVs. Errors are fine; panics are bugs.
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    let _ = xva::inspect::lvm::parse(&String::from_utf8_lossy(data));
    xva_fuzz::inspect_all(data);
});
