//! Read throughput of a disk through the library (resolved extents, data ranges read in 1 MiB
//! pieces into a sink): the reader alone, without checksums or tar. Used by
//! `scripts/bench-vmdk.sh`:
//!
//!   cargo bench -p xva-backends --bench read -- DISK        (RUNS=3 by default; best run printed)

use std::time::Instant;

use xva_backends::{open, OpenOptions};

fn main() {
    let path = std::env::args_os()
        .nth(1)
        .or_else(|| std::env::var_os("XVA_BENCH_DISK"))
        .expect("usage: cargo bench -p xva-backends --bench read -- DISK");
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let mut best = f64::MAX;
    let mut data = 0u64;
    for _ in 0..runs {
        let t = Instant::now();
        let r = open(path.as_ref(), &OpenOptions::default()).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut sum = 0u64;
        data = 0;
        for m in r.extents(0..r.virtual_size()) {
            let m = m.unwrap();
            if !m.data {
                continue;
            }
            let mut off = m.start;
            while off < m.start + m.len {
                let n = (m.start + m.len - off).min(buf.len() as u64) as usize;
                r.read_exact_at(&mut buf[..n], off).unwrap();
                sum = sum.wrapping_add(buf[n / 2] as u64);
                off += n as u64;
                data += n as u64;
            }
        }
        std::hint::black_box(sum);
        best = best.min(t.elapsed().as_secs_f64());
        let _ = r.virtual_size();
    }
    println!("BENCH seconds={best:.3} data_bytes={data}");
}
