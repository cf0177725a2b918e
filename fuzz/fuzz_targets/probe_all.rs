//! Probe and open arbitrary bytes as every format, then read what opens; decode them as a
//! parent name (UTF-16LE locator text, name candidates).
//! Seed corpus: any small image made with `qemu-img convert -O <fmt>`.
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    let src = xva_backends::MemSource::new(data.to_vec(), "fuzz.img");
    let _ = xva_backends::probe::detect(&src);
    xva_fuzz::open_and_read_all(data);
    if let Ok(name) = xva_backends::parent::decode_utf16le(data, "fuzz locator") {
        let _ = xva_backends::parent::candidates(&name);
    }
    if let Ok(name) = std::str::from_utf8(data) {
        let _ = xva_backends::parent::candidates(name);
    }
});
