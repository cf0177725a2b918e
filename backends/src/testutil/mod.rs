//! Test helpers: in-memory layers with a chosen allocation map. Public under the `testutil`
//! feature so that the `xva` crate's tests can build chains without files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::reader::Format;
use crate::reader::{Allocation, BlockReader, Extent};

/// UTF-16 LE bytes of `s`, no NUL added (what the VHD and VHDX builders write for names).
pub fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// What a [`MemLayer`] segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// Data: reads as the layer's fill byte.
    Data,
    /// Explicit zeros.
    Zero,
    /// Unallocated: the parent shows through.
    Unalloc,
}

/// An in-memory layer: segments `(start, len, kind)` covering `[0, size)`, data bytes all equal
/// to `fill`.
#[derive(Debug)]
pub struct MemLayer {
    size: u64,
    fill: u8,
    segs: Vec<(u64, u64, Layer)>,
    parent: Option<Box<dyn BlockReader>>,
    broken: bool,
    path: PathBuf,
}

/// The registry entry used by in-memory layers.
pub static MEM_FORMAT: Format = Format {
    name: "mem",
    title: "in-memory layers",
    readable: true,
    description: "in-memory test layer",
    probe: |_| crate::format::Confidence::NO,
    open: |_, _| Err(Error::unsupported("in-memory layers cannot be opened from files")),
};

impl MemLayer {
    /// A layer of `size` bytes described by `segs`.
    pub fn new(size: u64, fill: u8, segs: &[(u64, u64, Layer)], parent: Option<Box<dyn BlockReader>>) -> MemLayer {
        MemLayer { size, fill, segs: segs.to_vec(), parent, broken: false, path: PathBuf::from("mem") }
    }

    /// A layer whose `block_status` answers with an empty range (a driver bug).
    pub fn broken(size: u64) -> MemLayer {
        MemLayer { broken: true, ..MemLayer::new(size, 0, &[], None) }
    }

    fn seg(&self, offset: u64) -> Option<&(u64, u64, Layer)> {
        self.segs.iter().find(|(s, l, _)| *s <= offset && offset < s + l)
    }
}

impl BlockReader for MemLayer {
    fn format(&self) -> &'static Format {
        &MEM_FORMAT
    }
    fn virtual_size(&self) -> u64 {
        self.size
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn block_status(&self, offset: u64, max_len: u64) -> Result<Extent> {
        if self.broken {
            return Ok(Extent { start: offset, len: 0, alloc: Allocation::Data });
        }
        let (s, l, k) = *self.seg(offset).ok_or_else(|| Error::corrupt("no segment"))?;
        let alloc = match k {
            Layer::Data => Allocation::Data,
            Layer::Zero => Allocation::Zero { explicit: true },
            Layer::Unalloc => Allocation::Unallocated,
        };
        Ok(Extent { start: offset, len: (s + l - offset).min(max_len), alloc })
    }
    fn read_layer(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        match self.seg(offset) {
            Some((s, l, Layer::Data)) if offset + buf.len() as u64 <= s + l => {
                buf.fill(self.fill);
                Ok(())
            }
            _ => Err(Error::corrupt("read_layer called outside a data segment")),
        }
    }
    fn parent(&self) -> Option<&dyn BlockReader> {
        self.parent.as_deref()
    }
}
