//! Read throughput of a disk through the library (resolved extents, data ranges read in 1 MiB
//! pieces into a sink): the reader alone, without checksums or tar. Used by
//! `scripts/bench-image.sh` (`bench-vmdk.sh`, `bench-qcow2.sh`):
//!
//!   cargo bench -p xva-backends --bench read -- DISK        (RUNS=3 by default; best run printed)
//!
//! A read never starts threads of its own; like `xva convert`'s workers, the bench reads
//! different 1 MiB pieces on several threads at once (THREADS, default: one per CPU; THREADS=1
//! measures one caller).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use xva_backends::{open, OpenOptions};

const PIECE: u64 = 1 << 20;

fn main() {
    let path = std::env::args_os()
        .nth(1)
        .or_else(|| std::env::var_os("XVA_BENCH_DISK"))
        .expect("usage: cargo bench -p xva-backends --bench read -- DISK");
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
        .max(1);
    let mut best = f64::MAX;
    let mut data = 0u64;
    for _ in 0..runs {
        let t = Instant::now();
        let r = open(path.as_ref(), &OpenOptions::default()).unwrap();
        // The data ranges, cut into pieces of at most 1 MiB.
        let mut pieces = Vec::new();
        for m in r.extents(0..r.virtual_size()) {
            let m = m.unwrap();
            if !m.data {
                continue;
            }
            let mut off = m.start;
            while off < m.start + m.len {
                let n = (m.start + m.len - off).min(PIECE);
                pieces.push((off, n as usize));
                off += n;
            }
        }
        let next = AtomicUsize::new(0);
        let sum = AtomicU64::new(0);
        let bytes = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let mut buf = vec![0u8; PIECE as usize];
                    while let Some(&(off, n)) = pieces.get(next.fetch_add(1, Ordering::Relaxed)) {
                        r.read_exact_at(&mut buf[..n], off).unwrap();
                        sum.fetch_add(buf[n / 2] as u64, Ordering::Relaxed);
                        bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                });
            }
        });
        std::hint::black_box(sum.load(Ordering::Relaxed));
        data = bytes.load(Ordering::Relaxed);
        best = best.min(t.elapsed().as_secs_f64());
        let _ = r.virtual_size();
    }
    println!("BENCH seconds={best:.3} data_bytes={data}");
}
