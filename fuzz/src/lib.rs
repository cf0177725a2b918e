//! Shared glue for the fuzz targets.
//!
//! Under `cargo fuzz` (`--cfg fuzzing`) [`fuzz_target!`] is libFuzzer's. In a normal build it
//! expands to a `main` that runs the body once over each file named on the command line, so
//! every target compiles (and can replay a crash or a corpus) on stable Rust without libFuzzer.

#[cfg(fuzzing)]
pub use libfuzzer_sys::fuzz_target;

/// Stable stand-in for libFuzzer's macro: `main` feeds each argument file to the body.
#[cfg(not(fuzzing))]
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:block) => {
        fn main() {
            for path in std::env::args_os().skip(1) {
                let bytes = std::fs::read(&path).expect("read input file");
                let $data: &[u8] = &bytes;
                $body
            }
        }
    };
}

/// Opens `data` as an image of every registered format and reads it whole through the chain
/// resolver, as `xva` would. Errors are fine; panics and hangs are bugs.
pub fn open_and_read_all(data: &[u8]) {
    use std::sync::Arc;
    use xva_backends::{probe, ByteSource, MemSource, OpenCtx, OpenPolicy};
    let src: Arc<dyn ByteSource> = Arc::new(MemSource::new(data.to_vec(), "fuzz.img"));
    let policy = OpenPolicy::default();
    let ctx = OpenCtx::new(&policy);
    for format in probe::FORMATS {
        let Ok(reader) = (format.open)(src.clone(), &ctx) else { continue };
        read_all(reader.as_ref());
    }
}

/// Walks the extents of `reader` and reads its first 64 MiB of data ranges, bounded so that
/// a header claiming a huge disk cannot make one input run for minutes.
pub fn read_all(reader: &dyn xva_backends::BlockReader) {
    let size = reader.virtual_size();
    let mut budget: u64 = 64 << 20;
    let mut buf = vec![0u8; 1 << 20];
    for m in reader.extents(0..size).take(100_000) {
        let Ok(m) = m else { return };
        if !m.data {
            continue;
        }
        let mut off = m.start;
        while off < m.start + m.len && budget > 0 {
            let n = (m.start + m.len - off).min(buf.len() as u64).min(budget);
            if reader.read_exact_at(&mut buf[..n as usize], off).is_err() {
                return;
            }
            off += n;
            budget -= n;
        }
    }
}

/// Inspects `data` as a whole disk, as `xva inspect` does (with a small read budget).
pub fn inspect_all(data: &[u8]) {
    use std::sync::Arc;
    use xva_backends::raw::RawReader;
    use xva_backends::{BlockReader, MemSource};
    let Ok(r) = RawReader::new(Arc::new(MemSource::new(data.to_vec(), "fuzz.img"))) else { return };
    let r: Arc<dyn BlockReader> = Arc::new(r);
    let _ = xva::inspect::inspect_disk(r, 16 << 20);
}
