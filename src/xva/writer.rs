//! Writes an XVA: `ova.xml`, then each disk as 1 MiB chunks with a checksum member after each.
//!
//! ```text
//!   planner ──jobs (bounded)──► worker × N ──results──► writer (this thread)
//!   extents(): which chunks      read + zero check       reorders by sequence, writes tar
//!   hold data at all             + SHA-1 / XXH64         members, SHA-256 of each disk
//!        ▲                            │  buffers come from a fixed pool, so memory is
//!        └── a chunk with no data     │  bounded whatever the disk size
//!            is never read            ▼
//! ```
//!
//! Rules kept (`xva-format-and-xapi-import.md` §5): disks in the bytewise order of their VDI
//! ids; chunk names `{id}/{counter:08}`; the first and the last chunk of each disk always
//! written (xapi stops reading a disk only when it has seen `virtual_size` bytes); a chunk that
//! is all zeros otherwise omitted — without reading it when the allocation map says it holds
//! no data, after an in-memory check otherwise; the last chunk exactly `size − offset` bytes.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha1::Digest as _;

use super::CHUNK;
use crate::backends::{self, BlockReader, Mapping};
use crate::tar;

/// The largest chunk counter that fits `%08d`: disks up to ~95 TiB.
pub const MAX_CHUNKS: u64 = 100_000_000;

/// Which checksum member follows each chunk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChecksumKind {
    /// `.checksum`: 40 lowercase hex digits of SHA-1. Every xapi accepts it.
    #[default]
    Sha1,
    /// `.xxhash`: 16 uppercase hex digits of XXH64 (seed 0). Needs xapi ≥ 1.170
    /// (Citrix Hypervisor 8.1, XCP-ng 8.1 and later); much cheaper to compute.
    Xxhash,
}

impl ChecksumKind {
    /// The member name extension.
    pub fn extension(self) -> &'static str {
        match self {
            ChecksumKind::Sha1 => "checksum",
            ChecksumKind::Xxhash => "xxhash",
        }
    }

    /// The checksum body for `data`, exactly as xapi compares it.
    pub fn body(self, data: &[u8]) -> String {
        match self {
            ChecksumKind::Sha1 => crate::hex::lower(&sha1::Sha1::digest(data)),
            ChecksumKind::Xxhash => format!("{:016X}", xxhash_rust::xxh64::xxh64(data, 0)),
        }
    }
}

/// One disk to write.
#[derive(Clone, Copy, Debug)]
pub struct DiskSource<'a> {
    /// The VDI id in `ova.xml` (disks must be given in bytewise order of their ids).
    pub id: &'a str,
    /// The disk.
    pub reader: &'a dyn BlockReader,
}

/// How to write.
#[derive(Clone, Debug)]
pub struct WriteOptions<'a> {
    /// Checksum member kind.
    pub checksum: ChecksumKind,
    /// Worker threads that read and hash chunks (0 = one per CPU).
    pub threads: usize,
    /// Compute the SHA-256 of each whole disk as read from the source (costs a serial pass).
    pub disk_sha256: bool,
    /// Set from a signal handler to stop early.
    pub cancel: Option<&'a AtomicBool>,
}

impl Default for WriteOptions<'_> {
    fn default() -> Self {
        WriteOptions { checksum: ChecksumKind::Sha1, threads: 0, disk_sha256: false, cancel: None }
    }
}

/// What was written for one disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskStats {
    /// VDI id.
    pub id: String,
    /// Virtual size in bytes.
    pub virtual_size: u64,
    /// Bytes the allocation map calls data, which were read from the source (zero and
    /// unallocated ranges are never read).
    pub bytes_read: u64,
    /// Chunks written.
    pub chunks_written: u64,
    /// Chunks omitted because they are all zeros.
    pub chunks_skipped: u64,
    /// SHA-256 of the whole disk as read, when asked for.
    pub sha256: Option<[u8; 32]>,
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteSummary {
    /// Per disk, in order.
    pub disks: Vec<DiskStats>,
    /// Bytes of tar stream written.
    pub tar_bytes: u64,
    /// Wall time.
    pub duration: Duration,
}

/// Why writing stopped.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A source disk could not be read.
    #[error("reading disk {disk}")]
    Read {
        /// Index of the disk.
        disk: usize,
        /// The reader's error.
        #[source]
        source: backends::Error,
    },
    /// The output could not be written.
    #[error("writing the XVA")]
    Write(#[source] io::Error),
    /// The description cannot be written as an XVA.
    #[error("{0}")]
    Invalid(String),
    /// Stopped by the cancel flag.
    #[error("interrupted")]
    Cancelled,
}

#[derive(Clone, Copy, Debug)]
enum Work {
    /// No data in the chunk: nothing to read.
    Skip,
    /// Read it; `force` keeps it even if it is all zeros (first and last chunk).
    Read { force: bool },
}

#[derive(Debug)]
struct Job {
    seq: u64,
    disk: usize,
    offset: u64,
    len: usize,
    /// Bytes of the chunk the allocation map calls data.
    data_len: u64,
    work: Work,
}

enum Outcome {
    Skipped { len: usize, read: u64 },
    Data { buf: Vec<u8>, len: usize, read: u64, sum: String },
}

type Planned = Result<Job, WriteError>;
type Done = (u64, Result<Outcome, WriteError>);

/// Number of chunks of a disk of `size` bytes.
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK)
}

/// Writes the whole XVA (ova.xml, every disk, end-of-archive) to `out`.
///
/// `progress` is called with the number of virtual-disk bytes done so far.
pub fn write_xva(
    out: &mut dyn Write,
    ova_xml: &str,
    disks: &[DiskSource<'_>],
    opts: &WriteOptions<'_>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteSummary, WriteError> {
    let started = Instant::now();
    for pair in disks.windows(2) {
        if pair[0].id.as_bytes() >= pair[1].id.as_bytes() {
            return Err(WriteError::Invalid(format!(
                "disk ids {:?} and {:?} are not in bytewise order; xapi would read the disks in another order",
                pair[0].id, pair[1].id
            )));
        }
    }
    for d in disks {
        let n = chunk_count(d.reader.virtual_size());
        if n == 0 {
            return Err(WriteError::Invalid(format!("disk {} has size 0", d.id)));
        }
        if n > MAX_CHUNKS {
            return Err(WriteError::Invalid(format!("disk {} is larger than an XVA can hold (~95 TiB)", d.id)));
        }
    }
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()).min(8),
        n => n.min(64),
    };
    let cancelled = || opts.cancel.is_some_and(|c| c.load(Ordering::Relaxed));
    let abort = AtomicBool::new(false);
    let stop = || abort.load(Ordering::Relaxed) || cancelled();

    let mut out = CountingWriter { inner: io::BufWriter::with_capacity(64 * 1024, out), count: 0 };
    tar::write_member(&mut out, "ova.xml", ova_xml.as_bytes()).map_err(WriteError::Write)?;

    let pool_size = threads * 2 + 2;
    let (pool_tx, pool_rx) = mpsc::sync_channel::<Vec<u8>>(pool_size);
    for _ in 0..pool_size {
        pool_tx.send(vec![0u8; CHUNK as usize]).expect("pool has room for its buffers");
    }
    let pool_rx = Mutex::new(pool_rx);
    let (job_tx, job_rx) = mpsc::sync_channel::<Planned>(threads * 2);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done>();

    let mut stats: Vec<DiskStats> = disks
        .iter()
        .map(|d| DiskStats {
            id: d.id.to_string(),
            virtual_size: d.reader.virtual_size(),
            bytes_read: 0,
            chunks_written: 0,
            chunks_skipped: 0,
            sha256: None,
        })
        .collect();
    let total_chunks: u64 = disks.iter().map(|d| chunk_count(d.reader.virtual_size())).sum();

    let result = std::thread::scope(|s| {
        s.spawn(|| plan(disks, job_tx, &stop));
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let pool_tx = pool_tx.clone();
            let (pool_rx, job_rx) = (&pool_rx, &job_rx);
            s.spawn(move || work(disks, opts.checksum, pool_rx, &pool_tx, job_rx, &done_tx, &stop));
        }
        drop(done_tx);
        let r =
            write_in_order(&mut out, disks, opts, &done_rx, &pool_tx, &mut stats, total_chunks, progress, &cancelled);
        if r.is_err() {
            abort.store(true, Ordering::Relaxed);
            // Let the workers finish: hand back every buffer so none waits for one.
            for (_, outcome) in done_rx.iter() {
                if let Ok(Outcome::Data { buf, .. }) = outcome {
                    let _ = pool_tx.send(buf);
                }
            }
        }
        r
    });
    result?;
    out.write_all(&tar::END).map_err(WriteError::Write)?;
    out.flush().map_err(WriteError::Write)?;
    Ok(WriteSummary { disks: stats, tar_bytes: out.count, duration: started.elapsed() })
}

/// Walks each disk's extents and queues a job per chunk, in order.
fn plan(disks: &[DiskSource<'_>], jobs: SyncSender<Planned>, stop: &dyn Fn() -> bool) {
    let mut seq = 0u64;
    for (di, d) in disks.iter().enumerate() {
        let size = d.reader.virtual_size();
        let n = chunk_count(size);
        let mut extents = d.reader.extents(0..size);
        let mut cur: Option<Mapping> = None;
        for index in 0..n {
            if stop() {
                return;
            }
            let offset = index * CHUNK;
            let end = (offset + CHUNK).min(size);
            let mut data_len = 0u64;
            loop {
                if cur.is_none() {
                    match extents.next() {
                        Some(Ok(m)) => cur = Some(m),
                        Some(Err(e)) => {
                            send_until_stopped(&jobs, Err(WriteError::Read { disk: di, source: e }), stop);
                            return;
                        }
                        None => break,
                    }
                }
                let Some(m) = cur else { break };
                if m.start >= end {
                    break;
                }
                if m.data {
                    data_len += (m.start + m.len).min(end) - m.start.max(offset);
                }
                if m.start + m.len <= end {
                    cur = None;
                } else {
                    break;
                }
            }
            let force = index == 0 || index == n - 1;
            let work = if data_len > 0 || force { Work::Read { force } } else { Work::Skip };
            let job = Job { seq, disk: di, offset, len: (end - offset) as usize, data_len, work };
            if !send_until_stopped(&jobs, Ok(job), stop) {
                return;
            }
            seq += 1;
        }
    }
}

/// Sends unless the pipeline is stopping (then gives up rather than block forever).
fn send_until_stopped<T>(tx: &SyncSender<T>, mut item: T, stop: &dyn Fn() -> bool) -> bool {
    loop {
        match tx.try_send(item) {
            Ok(()) => return true,
            Err(mpsc::TrySendError::Disconnected(_)) => return false,
            Err(mpsc::TrySendError::Full(back)) => {
                if stop() {
                    return false;
                }
                item = back;
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

/// Receives unless the pipeline is stopping or the sender is gone.
fn recv_until_stopped<T>(rx: &Mutex<Receiver<T>>, stop: &dyn Fn() -> bool) -> Option<T> {
    let rx = rx.lock().ok()?;
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(v) => return Some(v),
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            Err(mpsc::RecvTimeoutError::Timeout) if stop() => return None,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Takes a buffer, then a job; reads, checks for zeros, hashes.
fn work(
    disks: &[DiskSource<'_>],
    checksum: ChecksumKind,
    pool_rx: &Mutex<Receiver<Vec<u8>>>,
    pool_tx: &SyncSender<Vec<u8>>,
    job_rx: &Mutex<Receiver<Planned>>,
    done: &mpsc::Sender<Done>,
    stop: &dyn Fn() -> bool,
) {
    loop {
        if stop() {
            return;
        }
        // The buffer is taken before the job, so whoever holds the oldest job can finish it.
        let Some(mut buf) = recv_until_stopped(pool_rx, stop) else {
            return;
        };
        let Some(planned) = recv_until_stopped(job_rx, stop) else {
            return;
        };
        let job = match planned {
            Ok(job) => job,
            Err(e) => {
                let _ = done.send((u64::MAX, Err(e)));
                return;
            }
        };
        let outcome = match job.work {
            Work::Skip => {
                let _ = pool_tx.send(buf);
                Ok(Outcome::Skipped { len: job.len, read: 0 })
            }
            Work::Read { force } => {
                let data = &mut buf[..job.len];
                match disks[job.disk].reader.read_exact_at(data, job.offset) {
                    Err(e) => {
                        let _ = pool_tx.send(buf);
                        Err(WriteError::Read { disk: job.disk, source: e })
                    }
                    Ok(()) if !force && is_zero(data) => {
                        let _ = pool_tx.send(buf);
                        Ok(Outcome::Skipped { len: job.len, read: job.data_len })
                    }
                    Ok(()) => {
                        let sum = checksum.body(data);
                        Ok(Outcome::Data { buf, len: job.len, read: job.data_len, sum })
                    }
                }
            }
        };
        if done.send((job.seq, outcome)).is_err() {
            return;
        }
    }
}

/// True when every byte of `data` is zero.
pub fn is_zero(data: &[u8]) -> bool {
    let (head, body, tail) = {
        // SAFETY: any bit pattern is a valid u128; align_to only reinterprets the aligned middle.
        unsafe { data.align_to::<u128>() }
    };
    head.iter().all(|&b| b == 0) && tail.iter().all(|&b| b == 0) && body.iter().all(|&w| w == 0)
}

#[allow(clippy::too_many_arguments)]
fn write_in_order(
    out: &mut CountingWriter<'_>,
    disks: &[DiskSource<'_>],
    opts: &WriteOptions<'_>,
    done_rx: &Receiver<Done>,
    pool_tx: &SyncSender<Vec<u8>>,
    stats: &mut [DiskStats],
    total_chunks: u64,
    progress: &(dyn Fn(u64) + Sync),
    cancelled: &dyn Fn() -> bool,
) -> Result<(), WriteError> {
    let mut pending: BTreeMap<u64, Outcome> = BTreeMap::new();
    let mut next = 0u64;
    // Where `next` is: disk and chunk index.
    let (mut disk, mut index) = (0usize, 0u64);
    let mut bytes_done = 0u64;
    let zeros = vec![0u8; CHUNK as usize];
    let mut sha = opts.disk_sha256.then(sha2::Sha256::new);
    let ext = opts.checksum.extension();
    while next < total_chunks {
        if cancelled() {
            return Err(WriteError::Cancelled);
        }
        let Ok((seq, outcome)) = done_rx.recv() else {
            if cancelled() {
                return Err(WriteError::Cancelled);
            }
            return Err(WriteError::Invalid("the chunk pipeline stopped early".into()));
        };
        pending.insert(seq, outcome?);
        while let Some(outcome) = pending.remove(&next) {
            let st = &mut stats[disk];
            let len = match outcome {
                Outcome::Skipped { len, read } => {
                    st.chunks_skipped += 1;
                    st.bytes_read += read;
                    if let Some(h) = &mut sha {
                        h.update(&zeros[..len]);
                    }
                    len
                }
                Outcome::Data { buf, len, read, sum } => {
                    let name = format!("{}/{index:08}", disks[disk].id);
                    let write = (|| -> io::Result<()> {
                        tar::write_member(out, &name, &buf[..len])?;
                        tar::write_member(out, &format!("{name}.{ext}"), sum.as_bytes())
                    })();
                    if let Some(h) = &mut sha {
                        h.update(&buf[..len]);
                    }
                    let _ = pool_tx.send(buf);
                    write.map_err(WriteError::Write)?;
                    st.chunks_written += 1;
                    st.bytes_read += read;
                    len
                }
            };
            bytes_done += len as u64;
            progress(bytes_done);
            next += 1;
            index += 1;
            if index == chunk_count(st.virtual_size) {
                if let Some(h) = sha.take() {
                    st.sha256 = Some(h.finalize().into());
                    sha = Some(sha2::Sha256::new());
                }
                disk += 1;
                index = 0;
            }
        }
    }
    Ok(())
}

struct CountingWriter<'a> {
    inner: io::BufWriter<&'a mut dyn Write>,
    count: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::testutil::{Layer, MemLayer};

    #[test]
    fn zero_check() {
        let mut v = vec![0u8; 4099];
        assert!(is_zero(&v));
        assert!(is_zero(&v[1..]));
        v[4098] = 1;
        assert!(!is_zero(&v));
        assert!(!is_zero(&v[3..]));
        assert!(is_zero(&v[..4098]));
    }

    #[test]
    fn checksums_are_formatted_as_xapi_compares_them() {
        assert_eq!(ChecksumKind::Sha1.body(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        // XXH64("abc", 0) = 0x44BC2CF5AD770999
        assert_eq!(ChecksumKind::Xxhash.body(b"abc"), "44BC2CF5AD770999");
    }

    /// Parses our own output just enough to list (name, size) of members.
    fn members(tar: &[u8]) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 512 <= tar.len() {
            let h = &tar[pos..pos + 512];
            if h.iter().all(|&b| b == 0) {
                break;
            }
            let name = String::from_utf8(h[..100].iter().take_while(|&&b| b != 0).copied().collect()).unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&h[124..135]).unwrap(), 8).unwrap();
            out.push((name, size));
            pos += 512 + size + tar::padding(size as u64);
        }
        out
    }

    fn run(disk: &MemLayer, threads: usize) -> (Vec<u8>, WriteSummary) {
        let mut out = Vec::new();
        let d = [DiskSource { id: "Ref:d000", reader: disk }];
        let opts = WriteOptions { threads, disk_sha256: true, ..Default::default() };
        let s = write_xva(&mut out, "<value/>", &d, &opts, &|_| {}).unwrap();
        (out, s)
    }

    #[test]
    fn first_and_last_chunks_always_zero_chunks_never() {
        let mb = CHUNK;
        // 5 MiB + 7: chunk 0 unallocated, 1 data, 2 zero, 3 data, 4 unalloc, 5 (7 bytes) unalloc
        let disk = MemLayer::new(
            5 * mb + 7,
            0xAB,
            &[
                (0, mb, Layer::Unalloc),
                (mb, mb, Layer::Data),
                (2 * mb, mb, Layer::Zero),
                (3 * mb, 10, Layer::Data),
                (3 * mb + 10, 2 * mb - 3, Layer::Unalloc),
            ],
            None,
        );
        for threads in [1, 2, 5] {
            let (tar, s) = run(&disk, threads);
            let names: Vec<_> = members(&tar);
            let want = vec![
                ("ova.xml".to_string(), 8),
                ("Ref:d000/00000000".into(), 1 << 20),
                ("Ref:d000/00000000.checksum".into(), 40),
                ("Ref:d000/00000001".into(), 1 << 20),
                ("Ref:d000/00000001.checksum".into(), 40),
                ("Ref:d000/00000003".into(), 1 << 20),
                ("Ref:d000/00000003.checksum".into(), 40),
                ("Ref:d000/00000005".into(), 7),
                ("Ref:d000/00000005.checksum".into(), 40),
            ];
            assert_eq!(names, want, "threads={threads}");
            assert_eq!(s.disks[0].chunks_written, 4);
            assert_eq!(s.disks[0].chunks_skipped, 2);
            assert_eq!(s.tar_bytes as usize, tar.len());
            assert!(tar.ends_with(&[0u8; 1024]));
            // SHA-256 of the logical disk.
            let mut whole = vec![0u8; (5 * mb + 7) as usize];
            whole[mb as usize..2 * mb as usize].fill(0xAB);
            whole[3 * mb as usize..3 * mb as usize + 10].fill(0xAB);
            let want: [u8; 32] = sha2::Sha256::digest(&whole).into();
            assert_eq!(s.disks[0].sha256, Some(want));
        }
    }

    #[test]
    fn data_ranges_that_hold_zeros_are_skipped_after_reading() {
        // Data with fill byte 0: allocated but zero, like a preallocated raw file.
        let disk = MemLayer::new(3 * CHUNK, 0, &[(0, 3 * CHUNK, Layer::Data)], None);
        let (tar, s) = run(&disk, 2);
        let names: Vec<_> = members(&tar).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "ova.xml",
                "Ref:d000/00000000",
                "Ref:d000/00000000.checksum",
                "Ref:d000/00000002",
                "Ref:d000/00000002.checksum"
            ]
        );
        assert_eq!(s.disks[0].bytes_read, 3 * CHUNK);
    }

    #[test]
    fn single_byte_disk_and_order_checks() {
        let disk = MemLayer::new(1, 7, &[(0, 1, Layer::Data)], None);
        let (tar, _) = run(&disk, 1);
        assert_eq!(members(&tar)[1], ("Ref:d000/00000000".to_string(), 1));
        let mut out = Vec::new();
        let d = [DiskSource { id: "Ref:d001", reader: &disk }, DiskSource { id: "Ref:d000", reader: &disk }];
        let e = write_xva(&mut out, "", &d, &WriteOptions::default(), &|_| {}).unwrap_err();
        assert!(e.to_string().contains("bytewise order"));
    }

    #[test]
    fn read_errors_stop_the_write_cleanly() {
        let bad = MemLayer::broken(10 * CHUNK);
        let mut out = Vec::new();
        let d = [DiskSource { id: "Ref:d000", reader: &bad }];
        let e = write_xva(&mut out, "", &d, &WriteOptions { threads: 3, ..Default::default() }, &|_| {}).unwrap_err();
        assert!(matches!(e, WriteError::Read { disk: 0, .. }), "{e:?}");
    }

    #[test]
    fn cancel_flag_stops() {
        let disk = MemLayer::new(50 * CHUNK, 1, &[(0, 50 * CHUNK, Layer::Data)], None);
        let flag = AtomicBool::new(true);
        let mut out = Vec::new();
        let d = [DiskSource { id: "Ref:d000", reader: &disk }];
        let e = write_xva(&mut out, "", &d, &WriteOptions { cancel: Some(&flag), ..Default::default() }, &|_| {})
            .unwrap_err();
        assert!(matches!(e, WriteError::Cancelled), "{e:?}");
    }
}
