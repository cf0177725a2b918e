//! VHD on arbitrary bytes: the footer and dynamic-header parsers, the locator decoders, then
//! the whole reader (footer search, BAT, sector bitmaps, parent locators) walked and read
//! through the chain resolver. Errors are fine; panics, hangs and unbounded allocations are bugs.
//! Seed corpus (`fuzz/corpus/vhd/`): `qemu-img create -f vpc [-o subformat=fixed|force_size=on]
//! d.vhd 64K|1M`, and `xva_backends::vhd::build::sparse` differencing disks (W2ru, MacX and
//! W2ku locators) and a 511-byte-footer disk.
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    use std::sync::Arc;
    use xva_backends::vhd::{dynamic, footer, FORMAT};
    use xva_backends::{ByteSource, MemSource, OpenCtx, OpenPolicy};
    if let Ok(f) = footer::parse(data) {
        let _ = f.virtual_size();
    }
    if let Ok(h) = dynamic::parse(data, 0) {
        for l in &h.locators {
            let at = (l.offset as usize).min(data.len());
            let end = at.saturating_add(l.len as usize).min(data.len());
            let _ = dynamic::locator_path(&l.code, &data[at..end]);
        }
    }
    let src: Arc<dyn ByteSource> = Arc::new(MemSource::new(data.to_vec(), "fuzz.vhd"));
    let policy = OpenPolicy::default();
    let ctx = OpenCtx::new(&policy);
    if let Ok(reader) = (FORMAT.open)(src, &ctx) {
        xva_fuzz::read_all(reader.as_ref());
    }
});
