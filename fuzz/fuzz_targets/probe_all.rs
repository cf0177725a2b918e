//! Probe and open arbitrary bytes as every format, then read what opens.
//! Seed corpus: any small image made with `qemu-img convert -O <fmt>`.
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    let src = xva_backends::MemSource::new(data.to_vec(), "fuzz.img");
    let _ = xva_backends::probe::detect(&src);
    xva_fuzz::open_and_read_all(data);
});
