//! Streaming to a host vs writing a file (issue 5's target: upload <= 1.1 x file), run by
//! `scripts/bench-upload.sh`: a disk of `XVA_BENCH_GIB` GiB (default 4) with 25 % data, written
//! to a file vs streamed over loopback to the XenAPI test server in sink mode. Prints both times
//! and their ratio, and the largest resident set of any xva run.
//!
//!   cargo bench --bench upload          (XVA_BENCH_GIB=1 for a quick run)

#[path = "../tests/cli/util.rs"]
mod util;

#[path = "../tests/cli/fake_xapi.rs"]
mod fake_xapi;

use std::process::Command;
use std::time::Instant;

use fake_xapi::{FakeXapi, Faults, PASSWORD};
use util::{pattern, stderr, TestDir};

const MIB: u64 = 1 << 20;

fn xva(dir: &TestDir, args: &[&str], password: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xva"));
    c.arg("convert").args(args).current_dir(dir.path()).env_remove("XVA_PASSWORD").env("XVA_POLL_MS", "20");
    if let Some(p) = password {
        c.env("XVA_PASSWORD", p);
    }
    c
}

fn http(x: &FakeXapi) -> String {
    format!("http://{}", x.addr())
}

fn main() {
    let gib: u64 = std::env::var("XVA_BENCH_GIB").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    let dir = TestDir::new();
    let size = gib << 30;
    // 25 % data: every fourth 4 MiB stretch holds pseudo-random bytes, the rest are holes.
    let stretch = 4 * MIB;
    let f = std::fs::File::create(dir.join("bench.img")).unwrap();
    f.set_len(size).unwrap();
    let block = pattern(42, stretch as usize);
    {
        use std::os::unix::fs::FileExt;
        let mut off = 0;
        while off < size {
            f.write_all_at(&block, off).unwrap();
            off += 4 * stretch;
        }
        f.sync_all().unwrap();
    }
    drop(f);
    let time = |args: &[&str]| {
        let t = Instant::now();
        let out = xva(&dir, args, Some(PASSWORD)).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        t.elapsed().as_secs_f64()
    };
    // Warm the page cache once so both runs read from memory alike.
    time(&["-d", "bench.img", "-o", "warm.xva", "--force"]);
    std::fs::remove_file(dir.join("warm.xva")).unwrap();
    let mut file_runs = Vec::new();
    let mut upload_runs = Vec::new();
    let x = FakeXapi::start(Faults { sink: true, ..Faults::default() });
    let server = http(&x);
    for _ in 0..3 {
        file_runs.push(time(&["-d", "bench.img", "-o", "bench.xva", "--force"]));
        let xva_len = std::fs::metadata(dir.join("bench.xva")).unwrap().len();
        std::fs::remove_file(dir.join("bench.xva")).unwrap();
        upload_runs.push(time(&["-d", "bench.img", "--server", &server, "--allow-http"]));
        x.with(|s| assert_eq!(s.sunk_bytes, xva_len, "the streamed body is as long as the file"));
    }
    // Largest resident set of any xva run so far (bounded memory: no queue grows with the disk).
    // SAFETY: getrusage fills the zeroed struct we own.
    let max_rss_kib = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru.ru_maxrss
    };
    println!("bench: largest xva resident set {} MiB", max_rss_kib / 1024);
    let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    let (f, u) = (best(&file_runs), best(&upload_runs));
    println!(
        "bench: {gib} GiB disk, 25 % data; file {f:.2} s (runs {file_runs:.2?}), upload {u:.2} s (runs {upload_runs:.2?}); ratio {:.3}",
        u / f
    );
}
