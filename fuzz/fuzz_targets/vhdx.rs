//! VHDX on arbitrary bytes: the pure parsers (headers, region table, metadata table and items,
//! parent locator) on the input itself, then the whole reader — log search and replay, BAT,
//! sector bitmaps — on the file the input describes: the input as is when it starts with
//! `vhdxfile`, else the compact patch encoding of `xva_backends::vhdx::build::encode` (a VHDX is
//! at least 3 MiB, mostly zeros). Errors are fine; panics, hangs and unbounded allocations are
//! bugs.
//! Seed corpus: `fuzz/corpus/vhdx/` (written by `XVA_WRITE_SEEDS=1 cargo test -p xva-backends
//! --test vhdx fuzz_seeds`: dynamic with every block state, a dirty log with a torn tail, a
//! differencing disk, 4 KiB sectors).
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    use std::sync::Arc;
    use xva_backends::vhdx::{build, header, VhdxReader};
    use xva_backends::{ByteSource, MemSource, OpenCtx, OpenPolicy};
    let _ = header::parse_header(data);
    let _ = header::parse_regions(data);
    if let Ok(items) = header::parse_metadata_table(data, data.len() as u64) {
        let _ = header::parse_metadata(&items, data);
    }
    let _ = header::parse_locator(data);
    let file = if data.starts_with(header::FILE_MAGIC) { Some(data.to_vec()) } else { build::decode(data) };
    let Some(file) = file else { return };
    let src: Arc<dyn ByteSource> = Arc::new(MemSource::new(file, "fuzz.vhdx"));
    let policy = OpenPolicy::default();
    if let Ok(reader) = VhdxReader::open(src, &OpenCtx::new(&policy)) {
        xva_fuzz::read_all(&reader);
    }
});
