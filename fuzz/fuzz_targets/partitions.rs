//! Fuzz the MBR/EBR/GPT reader and the bare-filesystem check over an in-memory disk: the
//! pure parsers first, then `read_table` as inspection calls it.
//! Seed corpus: the first 64 KiB of real disks (`dd if=disk.raw bs=64k count=1`), and the
//! `partitions.rs` test builders' output. Errors are fine; panics, hangs and huge allocations
//! are bugs.
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    use xva::inspect::partitions;
    let _ = partitions::parse_mbr(data);
    let _ = partitions::parse_gpt_header(data);
    let _ = partitions::parse_gpt_entries(data, 128, u64::MAX);
    xva_fuzz::inspect_all(data);
});
