//! Stream hashing: the SHA-256 of every reconstructed disk over its `virtual_size` bytes
//! (omitted chunks and the tail past the last chunk hashed as zeros), computed while the import
//! loop runs and forwarded to the caller's visitor.

use std::io;

use sha2::Digest as _;

use crate::xva::reader::{DiskRange, ImportVisitor, StreamedVdi};

/// SHA-256 per disk over `virtual_size` bytes, then forwards to the caller's visitor.
pub(super) struct Hashing<'a> {
    on: bool,
    sizes: Vec<u64>,
    cur: Option<(usize, sha2::Sha256, u64)>,
    pub(super) digests: Vec<Option<[u8; 32]>>,
    zeros: Vec<u8>,
    next: &'a mut dyn ImportVisitor,
}

impl<'a> Hashing<'a> {
    pub(super) fn new(on: bool, vdis: &[StreamedVdi], next: &'a mut dyn ImportVisitor) -> Self {
        Hashing {
            on,
            sizes: vdis.iter().map(|v| v.virtual_size).collect(),
            cur: None,
            digests: vec![None; vdis.len()],
            zeros: if on { vec![0u8; 1 << 20] } else { Vec::new() },
            next,
        }
    }

    /// Hashes `len` zero bytes.
    fn zero(&mut self, mut len: u64) {
        if let Some((_, h, pos)) = self.cur.as_mut() {
            *pos = pos.saturating_add(len);
            while len > 0 {
                let n = len.min(self.zeros.len() as u64) as usize;
                h.update(&self.zeros[..n]);
                len -= n as u64;
            }
        }
    }

    /// How much of a range at `offset` of `len` bytes lies within the disk.
    fn within(&self, disk: usize, offset: u64, len: u64) -> u64 {
        let size = self.sizes.get(disk).copied().unwrap_or(0);
        size.saturating_sub(offset).min(len)
    }
}

impl ImportVisitor for Hashing<'_> {
    fn begin_disk(&mut self, disk: usize, vdi: &StreamedVdi) -> io::Result<()> {
        if self.on {
            self.cur = Some((disk, sha2::Sha256::new(), 0));
        }
        self.next.begin_disk(disk, vdi)
    }

    fn range(&mut self, range: DiskRange<'_>) -> io::Result<()> {
        if self.on {
            match range {
                DiskRange::Data { disk, offset, bytes } => {
                    let n = self.within(disk, offset, bytes.len() as u64) as usize;
                    if let Some((_, h, pos)) = self.cur.as_mut() {
                        h.update(&bytes[..n]);
                        *pos = pos.saturating_add(n as u64);
                    }
                }
                DiskRange::Zeros { disk, offset, len } => {
                    let n = self.within(disk, offset, len);
                    self.zero(n);
                }
            }
        }
        self.next.range(range)
    }

    fn end_disk(&mut self, disk: usize, written: u64) -> io::Result<()> {
        if self.on {
            let size = self.sizes.get(disk).copied().unwrap_or(0);
            let pos = self.cur.as_ref().map_or(0, |c| c.2);
            self.zero(size.saturating_sub(pos));
            if let Some((d, h, _)) = self.cur.take() {
                if let Some(slot) = self.digests.get_mut(d) {
                    *slot = Some(h.finalize().into());
                }
            }
        }
        self.next.end_disk(disk, written)
    }
}
