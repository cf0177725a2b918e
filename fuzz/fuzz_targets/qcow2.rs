//! qcow2 and qcow headers and cluster mapping on arbitrary bytes: the header parsers alone,
//! then the whole reader (v1, blktap, v2, v3, extended L2, compressed clusters) walked and read
//! through the chain resolver. Errors are fine; panics, hangs and unbounded allocations are
//! bugs.
//! Seed corpus: `fuzz/corpus/qcow2/` — small files from `xva_backends::qcow2::build` (v2/v3 with
//! every cluster kind, zstd frames, extended L2, qcow v1 and blktap in both byte orders) and one
//! from `qemu-img create -o cluster_size=512` + `qemu-io` writes.
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    use std::sync::Arc;
    use xva_backends::qcow2::{header, qcow1, FORMAT};
    use xva_backends::{ByteSource, MemSource, OpenCtx, OpenPolicy};
    if let Ok(h) = header::parse(data, data.len() as u64) {
        let _ = h.refusal(false);
    }
    if let Ok(h) = qcow1::parse(data, data.len() as u64) {
        let _ = h.refusal();
    }
    let src: Arc<dyn ByteSource> = Arc::new(MemSource::new(data.to_vec(), "fuzz.qcow2"));
    let policy = OpenPolicy::default();
    let ctx = OpenCtx::new(&policy);
    if let Ok(reader) = (FORMAT.open)(src, &ctx) {
        let _ = reader.details();
        xva_fuzz::read_all(reader.as_ref());
    }
});
