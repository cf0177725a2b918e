//! The VHDX log, replayed in memory: the source file is never written.
//!
//! ```text
//!   log (circular, log_offset .. + log_length)
//!     entry = header "loge" (64 B) + descriptors (32 B: "zero" / "desc") + data sectors ("data", 4 KiB)
//!   search: every 4 KiB slot that starts a valid entry (signature, CRC-32C, log GUID, sequence
//!           numbers of descriptors and data sectors) → take the entry with the highest sequence
//!           number whose tail starts an unbroken run of consecutive entries ending at it
//!   replay: the run, tail → head, into an Overlay (zeroed ranges + 4 KiB sectors) over the file
//! ```
//!
//! [`Overlay`] is a [`ByteSource`]: BAT, metadata and payload are read through it. Its memory is
//! bounded by [`MAX_OVERLAY`]; the search is bounded by [`SCAN_BUDGET`] bytes checksummed.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::le;
use crate::source::{read_vec, ByteSource};

use super::crc;
use super::header::{Guid, Header};

/// Log sector size.
pub const SECTOR: u64 = 4096;
/// Most bytes of data sectors a replayed sequence may hold (they are kept in memory).
pub const MAX_OVERLAY: u64 = 128 << 20;
/// Most log bytes the search checksums before giving up (a log of overlapping entries would
/// otherwise take quadratic time).
pub const SCAN_BUDGET: u64 = 4 << 30;

/// Most steps the search takes from entry to entry, all heads together.
pub const MAX_WALK: u64 = 1 << 22;

/// A validated log entry.
#[derive(Clone, Debug)]
struct Entry {
    /// Offset in the log.
    at: u64,
    length: u64,
    tail: u64,
    sequence: u64,
    flushed_file_offset: u64,
    last_file_offset: u64,
}

/// What an entry asks to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Zero `len` bytes at file offset `at`.
    Zero {
        /// File offset.
        at: u64,
        /// Length in bytes.
        len: u64,
    },
    /// Write 4 KiB at file offset `at`.
    Data {
        /// File offset.
        at: u64,
        /// The sector's bytes.
        bytes: Box<[u8]>,
    },
}

/// The result of a log search.
#[derive(Debug)]
pub struct Replay {
    /// The writes, in order.
    pub writes: Vec<Write>,
    /// Sequence numbers of the first and last entries replayed.
    pub sequences: (u64, u64),
    /// Entries replayed.
    pub entries: usize,
    /// The file must be at least this long (else it was truncated).
    pub flushed_file_offset: u64,
    /// The file is treated as at least this long.
    pub last_file_offset: u64,
}

struct Log<'a> {
    src: &'a dyn ByteSource,
    offset: u64,
    length: u64,
    guid: Guid,
    budget: u64,
}

impl Log<'_> {
    /// `len` bytes of the log from `at`, wrapping at its end.
    fn read(&self, at: u64, len: u64) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len as usize);
        let mut pos = at % self.length;
        while (out.len() as u64) < len {
            let n = (len - out.len() as u64).min(self.length - pos);
            out.extend(read_vec(self.src, self.offset + pos, n as usize, "log entry")?);
            pos = (pos + n) % self.length;
        }
        Ok(out)
    }

    /// The entry at `at`, if a valid one starts there.
    fn entry(&mut self, at: u64) -> Result<Option<(Entry, Vec<Write>)>> {
        let h = self.read(at, 64)?;
        if &h[..4] != b"loge" || h[32..48] != self.guid {
            return Ok(None);
        }
        let length = le::u32(&h, 8) as u64;
        let tail = le::u32(&h, 12) as u64;
        let sequence = le::u64(&h, 16);
        let count = le::u32(&h, 24) as u64;
        if length == 0 || !length.is_multiple_of(SECTOR) || length > self.length || sequence == 0 {
            return Ok(None);
        }
        if !tail.is_multiple_of(SECTOR) || tail >= self.length {
            return Ok(None);
        }
        let desc_bytes = (64 + 32 * count).div_ceil(SECTOR) * SECTOR;
        if desc_bytes > length {
            return Ok(None);
        }
        if self.budget < length {
            return Err(Error::corrupt(format!(
                "the log is too damaged to search (more than {SCAN_BUDGET} bytes checked)"
            )));
        }
        self.budget -= length;
        let b = self.read(at, length)?;
        if le::u32(&b, 4) != crc::structure(&b, 4) {
            return Ok(None);
        }
        let mut writes = Vec::new();
        let mut data_at = desc_bytes;
        for i in 0..count as usize {
            let d = &b[64 + i * 32..96 + i * 32];
            if le::u64(d, 24) != sequence {
                return Ok(None);
            }
            let file_offset = le::u64(d, 16);
            if !file_offset.is_multiple_of(SECTOR) {
                return Ok(None);
            }
            match &d[..4] {
                b"zero" => {
                    let len = le::u64(d, 8);
                    if !len.is_multiple_of(SECTOR) || file_offset.checked_add(len).is_none() {
                        return Ok(None);
                    }
                    writes.push(Write::Zero { at: file_offset, len });
                }
                b"desc" => {
                    if data_at + SECTOR > length {
                        return Ok(None);
                    }
                    let s = &b[data_at as usize..(data_at + SECTOR) as usize];
                    let seq = (le::u32(s, 4) as u64) << 32 | le::u32(s, 4092) as u64;
                    if &s[..4] != b"data" || seq != sequence || file_offset.checked_add(SECTOR).is_none() {
                        return Ok(None);
                    }
                    let mut bytes = vec![0u8; SECTOR as usize].into_boxed_slice();
                    bytes[..8].copy_from_slice(&d[8..16]);
                    bytes[8..4092].copy_from_slice(&s[8..4092]);
                    bytes[4092..].copy_from_slice(&d[4..8]);
                    writes.push(Write::Data { at: file_offset, bytes });
                    data_at += SECTOR;
                }
                _ => return Ok(None),
            }
        }
        let e = Entry {
            at,
            length,
            tail,
            sequence,
            flushed_file_offset: le::u64(&h, 48),
            last_file_offset: le::u64(&h, 56),
        };
        Ok(Some((e, writes)))
    }
}

/// Searches the log `header` describes for the valid sequence with the highest sequence number.
/// `Ok(None)`: no valid sequence (or no log at all).
pub fn search(src: &dyn ByteSource, header: &Header) -> Result<Option<Replay>> {
    if header.log_guid == super::header::ZERO_GUID || header.log_length == 0 {
        return Ok(None);
    }
    let length = header.log_length as u64;
    let end = header.log_offset.saturating_add(length);
    if end > src.len() {
        return Err(Error::corrupt(format!(
            "the log ({length} bytes at {:#x}) ends past the end of the file ({} bytes): the file is truncated",
            header.log_offset,
            src.len()
        ))
        .at(header.log_offset));
    }
    let mut log = Log { src, offset: header.log_offset, length, guid: header.log_guid, budget: SCAN_BUDGET };
    // Every slot where a valid entry starts.
    let mut found: BTreeMap<u64, Entry> = BTreeMap::new();
    for at in (0..length).step_by(SECTOR as usize) {
        if let Some((e, _)) = log.entry(at)? {
            found.insert(at, e);
        }
    }
    let mut heads: Vec<&Entry> = found.values().collect();
    heads.sort_by_key(|e| std::cmp::Reverse(e.sequence));
    let slots = length / SECTOR;
    // Each head's walk is at most `slots` steps; bound the total so that a log full of
    // short runs cannot take quadratic time.
    let mut steps: u64 = 0;
    for head in heads {
        // Walk from the head's tail to the head through consecutive entries.
        let mut run = Vec::new();
        let mut at = head.tail;
        let mut ok = false;
        for _ in 0..=slots {
            steps += 1;
            if steps > MAX_WALK {
                return Err(Error::corrupt(format!(
                    "the log is too damaged to search (more than {MAX_WALK} steps through its entries)"
                ))
                .at(header.log_offset));
            }
            let Some(e) = found.get(&at) else { break };
            if let Some(prev) = run.last() {
                if e.sequence != found[prev].sequence + 1 {
                    break;
                }
            }
            run.push(at);
            if e.at == head.at {
                ok = e.sequence == head.sequence;
                break;
            }
            at = (at + e.length) % length;
        }
        if !ok {
            continue;
        }
        let mut writes = Vec::new();
        let mut data = 0u64;
        for at in &run {
            let (_, w) = log.entry(*at)?.ok_or_else(|| Error::corrupt("log entry changed while it was read"))?;
            data += w.iter().filter(|w| matches!(w, Write::Data { .. })).count() as u64 * SECTOR;
            if data > MAX_OVERLAY {
                return Err(Error::unsupported(format!(
                    "the log holds more than {} MiB of updates to replay; replaying it in memory is \
                     refused (replay it on a copy with `qemu-img check -r all COPY.vhdx`)",
                    MAX_OVERLAY >> 20
                ))
                .at(header.log_offset));
            }
            writes.extend(w);
        }
        let first = found[&run[0]].sequence;
        return Ok(Some(Replay {
            writes,
            sequences: (first, head.sequence),
            entries: run.len(),
            flushed_file_offset: head.flushed_file_offset,
            last_file_offset: head.last_file_offset,
        }));
    }
    Ok(None)
}

/// A file with a replayed log laid over it, in memory.
#[derive(Debug)]
pub struct Overlay {
    inner: Arc<dyn ByteSource>,
    len: u64,
    /// Zeroed ranges `[start, end)`, applied before the sectors.
    zeros: Vec<(u64, u64)>,
    /// 4 KiB sectors written by the log (after the last zeroing that covered them).
    sectors: BTreeMap<u64, Box<[u8]>>,
}

impl Overlay {
    /// Lays `replay` over `inner`.
    pub fn new(inner: Arc<dyn ByteSource>, replay: Replay) -> Overlay {
        let mut zeros = Vec::new();
        let mut sectors: BTreeMap<u64, Box<[u8]>> = BTreeMap::new();
        let mut len = inner.len().max(replay.last_file_offset);
        for w in replay.writes {
            match w {
                Write::Zero { at, len: n } => {
                    let end = at + n;
                    let gone: Vec<u64> = sectors.range(at..end).map(|(k, _)| *k).collect();
                    for k in gone {
                        sectors.remove(&k);
                    }
                    if n > 0 {
                        zeros.push((at, end));
                    }
                    len = len.max(end);
                }
                Write::Data { at, bytes } => {
                    len = len.max(at + SECTOR);
                    sectors.insert(at, bytes);
                }
            }
        }
        Overlay { inner, len, zeros, sectors }
    }
}

impl ByteSource for Overlay {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the file"))?;
        let inner_end = self.inner.len().clamp(offset, end);
        let n = (inner_end - offset) as usize;
        if n > 0 {
            self.inner.read_exact_at(&mut buf[..n], offset)?;
        }
        buf[n..].fill(0);
        for &(zs, ze) in &self.zeros {
            let (s, e) = (zs.max(offset), ze.min(end));
            if s < e {
                buf[(s - offset) as usize..(e - offset) as usize].fill(0);
            }
        }
        for (&at, bytes) in self.sectors.range(offset.saturating_sub(SECTOR - 1)..end) {
            let (s, e) = (at.max(offset), (at + SECTOR).min(end));
            if s < e {
                buf[(s - offset) as usize..(e - offset) as usize]
                    .copy_from_slice(&bytes[(s - at) as usize..(e - at) as usize]);
            }
        }
        Ok(())
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemSource;

    #[test]
    fn the_overlay_applies_zeros_then_later_sectors() {
        let inner: Arc<dyn ByteSource> = Arc::new(MemSource::new(vec![1u8; 5 * 4096], "f"));
        let writes = vec![
            Write::Data { at: 0, bytes: vec![2u8; 4096].into() },
            Write::Zero { at: 0, len: 8192 },
            Write::Data { at: 4096, bytes: vec![3u8; 4096].into() },
            Write::Data { at: 6 * 4096, bytes: vec![4u8; 4096].into() },
        ];
        let r = Replay { writes, sequences: (1, 1), entries: 1, flushed_file_offset: 0, last_file_offset: 8 * 4096 };
        let o = Overlay::new(inner, r);
        assert_eq!(o.len(), 8 * 4096);
        let mut b = vec![9u8; 8 * 4096];
        o.read_exact_at(&mut b, 0).unwrap();
        assert!(b[..4096].iter().all(|&x| x == 0));
        assert!(b[4096..8192].iter().all(|&x| x == 3));
        assert!(b[8192..5 * 4096].iter().all(|&x| x == 1));
        assert!(b[5 * 4096..6 * 4096].iter().all(|&x| x == 0));
        assert!(b[6 * 4096..7 * 4096].iter().all(|&x| x == 4));
        let mut s = [0u8; 10];
        o.read_exact_at(&mut s, 4094).unwrap();
        assert_eq!(s, [0, 0, 3, 3, 3, 3, 3, 3, 3, 3]);
        assert!(o.read_exact_at(&mut s, 8 * 4096 - 5).is_err());
    }
}
