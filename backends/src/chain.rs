//! The one chain resolver: every format's parent semantics live here and nowhere else.
//!
//! ```text
//!   layer 0 (top)   block_status ─ Data ──────────► read this layer
//!                                ├ Zero ──────────► zeros (hides the parent)
//!                                └ Unallocated ─┐
//!   layer 1         block_status ◄──────────────┘  (past a shorter parent's end: zeros)
//!   ...                                            (no parent: zeros)
//! ```
//!
//! The resolved answer for a range is a [`Mapping`], whose fields match `qemu-img map
//! --output=json` (`depth`, `present`, `zero`, `data`) so the two can be compared directly.

use std::ops::Range;

use crate::error::{Error, ErrorKind, Result};
use crate::reader::{Allocation, BlockReader, Extent, Stored};

/// Calls `block_status` and checks the driver's answer, so a buggy or confused driver cannot
/// make the resolver loop forever or read outside the range.
pub(crate) fn checked_status(r: &dyn BlockReader, offset: u64, max_len: u64) -> Result<Extent> {
    let ext = r.block_status(offset, max_len)?;
    if ext.start != offset || ext.len == 0 {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "{} driver answered a status query at {offset} with the range {}+{}",
                r.format().name,
                ext.start,
                ext.len
            ),
        )
        .with_path(r.path()));
    }
    Ok(Extent { len: ext.len.min(max_len), ..ext })
}

fn out_of_bounds(r: &dyn BlockReader, offset: u64, len: u64) -> Error {
    Error::read_past_virtual_size(len, offset, r.virtual_size(), r.path())
}

/// Reads `buf.len()` bytes at `offset` of the chain whose top layer is `r`.
pub(crate) fn read_resolved(r: &dyn BlockReader, buf: &mut [u8], offset: u64) -> Result<()> {
    let len = buf.len() as u64;
    match offset.checked_add(len) {
        Some(end) if end <= r.virtual_size() => {}
        _ => return Err(out_of_bounds(r, offset, len)),
    }
    let mut pos = 0usize;
    while pos < buf.len() {
        let off = offset + pos as u64;
        let want = (buf.len() - pos) as u64;
        let ext = checked_status(r, off, want)?;
        let n = ext.len as usize;
        let part = &mut buf[pos..pos + n];
        match ext.alloc {
            Allocation::Data => r.read_layer(part, off)?,
            Allocation::Zero { .. } => part.fill(0),
            Allocation::Unallocated => match r.parent() {
                None => part.fill(0),
                Some(p) => {
                    let psize = p.virtual_size();
                    let from_parent = psize.saturating_sub(off).min(n as u64) as usize;
                    if from_parent > 0 {
                        read_resolved(p, &mut part[..from_parent], off)?;
                    }
                    part[from_parent..].fill(0);
                }
            },
        }
        pos += n;
    }
    Ok(())
}

/// The fully resolved status at `offset`: which layer answers and what it says.
pub fn resolve_status(r: &dyn BlockReader, offset: u64, max_len: u64) -> Result<Mapping> {
    let ext = checked_status(r, offset, max_len)?;
    let here = |present, zero, data| Mapping {
        start: offset,
        len: ext.len,
        depth: 0,
        present,
        zero,
        data,
        offset: None,
        compressed: false,
    };
    let stored = |mut m: Mapping| -> Result<Mapping> {
        match r.stored(offset)? {
            Some(Stored::At(at)) => m.offset = Some(at),
            Some(Stored::Compressed) => m.compressed = true,
            None => {}
        }
        Ok(m)
    };
    Ok(match ext.alloc {
        Allocation::Data => stored(here(true, false, true))?,
        Allocation::Zero { explicit: true } => stored(here(true, true, false))?,
        Allocation::Zero { .. } => here(true, true, false),
        Allocation::Unallocated => match r.parent() {
            Some(p) if offset < p.virtual_size() => {
                let mut m = resolve_status(p, offset, ext.len.min(p.virtual_size() - offset))?;
                m.depth += 1;
                m
            }
            _ => here(false, true, false),
        },
    })
}

/// The resolving view of a chain: what consumers call on its top layer.
impl dyn BlockReader + '_ {
    /// Reads virtual-disk bytes, resolving unallocated ranges through the parent chain.
    /// Fills `buf` completely or fails; a read past the virtual size is an error.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        read_resolved(self, buf, offset)
    }

    /// Coalesced, fully resolved extents over `range` (clamped to the virtual size).
    pub fn extents(&self, range: Range<u64>) -> Extents<'_> {
        Extents::new(self, range)
    }

    /// The layers of the chain, this one first.
    pub fn layers(&self) -> Vec<&dyn BlockReader> {
        let mut out = vec![self];
        let mut cur: &dyn BlockReader = self;
        while let Some(p) = cur.parent() {
            out.push(p);
            cur = p;
        }
        out
    }

    /// Bytes this layer alone holds as data (not zero, not unallocated).
    pub fn layer_data_bytes(&self) -> Result<u64> {
        let size = self.virtual_size();
        let mut off = 0;
        let mut total = 0u64;
        while off < size {
            let ext = checked_status(self, off, size - off)?;
            if ext.alloc == Allocation::Data {
                total += ext.len;
            }
            off += ext.len;
        }
        Ok(total)
    }
}

/// One resolved range of the virtual disk, with the fields of `qemu-img map --output=json`
/// (`offset` and `compressed` where the answering layer's format says, see
/// [`BlockReader::stored`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// Index of the layer that answers (0 = top); for ranges no layer holds, the lowest layer
    /// consulted, as qemu reports it.
    pub depth: u32,
    /// Some layer holds the range (data, or zeros it vouches for).
    pub present: bool,
    /// The range reads as zeros without reading data.
    pub zero: bool,
    /// The range must be read (it may still contain zeros).
    pub data: bool,
    /// Where the answering layer keeps the range in its file, when its format says.
    pub offset: Option<u64>,
    /// The answering layer keeps the range compressed.
    pub compressed: bool,
}

impl Mapping {
    /// True when `other` starts where this ends and says the same thing.
    pub fn joins(&self, other: &Mapping) -> bool {
        self.start + self.len == other.start
            && self.depth == other.depth
            && self.present == other.present
            && self.zero == other.zero
            && self.data == other.data
            && self.compressed == other.compressed
            && match (self.offset, other.offset) {
                (None, None) => true,
                (Some(a), Some(b)) => a.checked_add(self.len) == Some(b),
                _ => false,
            }
    }
}

/// Iterator over coalesced resolved extents of a range; see `dyn BlockReader::extents`.
pub struct Extents<'a> {
    reader: &'a dyn BlockReader,
    pos: u64,
    end: u64,
    pending: Option<Mapping>,
    failed: bool,
}

impl<'a> Extents<'a> {
    pub(crate) fn new(reader: &'a dyn BlockReader, range: Range<u64>) -> Extents<'a> {
        let end = range.end.min(reader.virtual_size());
        Extents { reader, pos: range.start.min(end), end, pending: None, failed: false }
    }
}

impl Iterator for Extents<'_> {
    type Item = Result<Mapping>;

    fn next(&mut self) -> Option<Result<Mapping>> {
        if self.failed {
            return None;
        }
        loop {
            if self.pos >= self.end {
                return self.pending.take().map(Ok);
            }
            let m = match resolve_status(self.reader, self.pos, self.end - self.pos) {
                Ok(m) => m,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            };
            self.pos += m.len;
            match &mut self.pending {
                Some(p) if p.joins(&m) => p.len += m.len,
                Some(p) => {
                    let out = *p;
                    self.pending = Some(m);
                    return Some(Ok(out));
                }
                None => self.pending = Some(m),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Layer, MemLayer};

    /// base: 0..8 data "B", 8..16 zero, 16..24 unallocated (size 24)
    /// top (size 40): 0..4 unalloc, 4..12 data "T", 12..20 unalloc, 20..24 zero, 24..40 unalloc
    fn chain() -> MemLayer {
        let base = MemLayer::new(24, b'B', &[(0, 8, Layer::Data), (8, 8, Layer::Zero), (16, 8, Layer::Unalloc)], None);
        MemLayer::new(
            40,
            b'T',
            &[
                (0, 4, Layer::Unalloc),
                (4, 8, Layer::Data),
                (12, 8, Layer::Unalloc),
                (20, 4, Layer::Zero),
                (24, 16, Layer::Unalloc),
            ],
            Some(Box::new(base)),
        )
    }

    #[test]
    fn reads_resolve_through_the_chain() {
        let top = chain();
        let r: &dyn BlockReader = &top;
        let mut buf = vec![0xEEu8; 40];
        r.read_exact_at(&mut buf, 0).unwrap();
        let mut want = vec![0u8; 40];
        want[0..4].fill(b'B');
        want[4..12].fill(b'T');
        // 12..16 parent zero, 16..20 parent unallocated, 20..24 explicit zero, 24.. past parent end
        assert_eq!(buf, want);
        // Odd reads agree with the whole read.
        for off in 0..40u64 {
            for len in 0..(40 - off) {
                let mut b = vec![0xEEu8; len as usize];
                r.read_exact_at(&mut b, off).unwrap();
                assert_eq!(b, want[off as usize..(off + len) as usize]);
            }
        }
        assert_eq!(r.read_exact_at(&mut [0u8; 2], 39).unwrap_err().kind(), ErrorKind::OutOfBounds);
        assert_eq!(r.read_exact_at(&mut [0u8; 2], u64::MAX).unwrap_err().kind(), ErrorKind::OutOfBounds);
    }

    #[test]
    fn extents_match_qemu_semantics() {
        let top = chain();
        let r: &dyn BlockReader = &top;
        let got: Vec<_> = r
            .extents(0..40)
            .map(|m| m.unwrap())
            .map(|m| (m.start, m.len, m.depth, m.present, m.zero, m.data))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 4, 1, true, false, true),
                (4, 8, 0, true, false, true),
                (12, 4, 1, true, true, false),
                (16, 4, 1, false, true, false),
                (20, 4, 0, true, true, false),
                (24, 16, 0, false, true, false),
            ]
        );
        // Sub-ranges are clamped and still coalesced.
        let got: Vec<_> = r.extents(5..100).map(|m| m.unwrap()).map(|m| (m.start, m.len)).collect();
        assert_eq!(got[0], (5, 7));
        assert_eq!(got.last().unwrap(), &(24, 16));
    }

    #[test]
    fn a_driver_that_answers_nonsense_is_an_error_not_a_hang() {
        let bad = MemLayer::broken(16);
        let r: &dyn BlockReader = &bad;
        assert!(r.read_exact_at(&mut [0u8; 4], 0).is_err());
        let all: Vec<_> = r.extents(0..16).collect();
        assert_eq!(all.len(), 1);
        assert!(all[0].is_err());
    }
}
