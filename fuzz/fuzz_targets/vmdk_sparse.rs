//! Sparse VMDK extents on arbitrary bytes: opened as a KDMV file (hosted sparse or
//! streamOptimized, embedded descriptor included), as a COWD extent and as an seSparse extent,
//! then walked and read through the chain resolver. Errors are fine; panics, hangs and
//! unbounded allocations are bugs.
//! Seed corpus: small files from `qemu-img convert -O vmdk -o subformat=monolithicSparse|
//! streamOptimized` and from `xva_backends::vmdk::build::{sparse, cowd, sesparse}`.
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    use std::sync::Arc;
    use xva_backends::vmdk::{cowd, sesparse, FORMAT};
    use xva_backends::{ByteSource, MemSource, OpenCtx, OpenPolicy};
    let src: Arc<dyn ByteSource> = Arc::new(MemSource::new(data.to_vec(), "fuzz.vmdk"));
    let policy = OpenPolicy::default();
    let ctx = OpenCtx::new(&policy);
    if let Ok(reader) = (FORMAT.open)(src.clone(), &ctx) {
        xva_fuzz::read_all(reader.as_ref());
    }
    for map in [cowd::open(src.clone()), sesparse::open(src)].into_iter().flatten() {
        let cap = map.capacity();
        let mut off = 0;
        let mut buf = vec![0u8; 1 << 16];
        for _ in 0..10_000 {
            if off >= cap {
                break;
            }
            let Ok((n, alloc)) = map.status(off, cap - off) else { break };
            if alloc == xva_backends::Allocation::Data {
                let k = n.min(buf.len() as u64) as usize;
                let _ = map.read(&mut buf[..k], off);
            }
            off += n;
        }
    }
});
