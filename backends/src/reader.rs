//! The block-reader interface every disk format implements.
//!
//! A format describes **its own layer only**: how large the virtual disk is, what each byte
//! range of this layer holds ([`BlockReader::block_status`]), and how to decode the ranges it
//! holds data for ([`BlockReader::read_layer`]). Parent chains are resolved once, generically, in
//! [`crate::chain`], which also holds the resolving methods consumers use on `dyn BlockReader`
//! ([`read_exact_at`](trait.BlockReader.html#method.read_exact_at),
//! [`extents`](trait.BlockReader.html#method.extents)).

use std::fmt;
use std::path::Path;

use std::sync::Arc;

use crate::error::Result;
use crate::format::{Confidence, ProbeInput};
use crate::policy::OpenCtx;
use crate::source::ByteSource;

/// Opens a layer in a format from its bytes; parents are opened through the context.
pub type OpenFn = fn(Arc<dyn ByteSource>, &OpenCtx<'_>) -> Result<Box<dyn BlockReader>>;

/// A registry entry: the format's name, its probe and its opener.
pub struct Format {
    /// Short name, as given to `--format` and shown by `xva info` (`raw`, `vmdk`, ...).
    pub name: &'static str,
    /// How prose names what this format reads, for `--help` (`VMDK`, `raw files, block
    /// devices / LVM volumes`).
    pub title: &'static str,
    /// One line for `--help` and docs.
    pub description: &'static str,
    /// False for a format that is recognised (so it is never read as raw) but refused with
    /// advice; such formats are not offered to `--format` in `--help`.
    pub readable: bool,
    /// How sure the format is that a file is its own; never fails.
    pub probe: fn(&ProbeInput<'_>) -> Confidence,
    /// Opens a file of this format.
    pub open: OpenFn,
}

impl fmt::Debug for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// What one layer says about a byte range (QEMU's block status, imago's shallow mapping).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocation {
    /// The bytes live in this layer (perhaps compressed; `read_layer` decodes them).
    Data,
    /// The range reads as zeros and hides any parent. `explicit` when the format says so
    /// (a zeroed grain, a ZERO extent) rather than the file system (a hole in a raw file).
    Zero {
        /// True when the image format itself marks the range as zero.
        explicit: bool,
    },
    /// This layer is silent: the parent's bytes show through, or zeros when there is none.
    Unallocated,
}

/// A byte range of one layer and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// First byte of the range in the virtual disk.
    pub start: u64,
    /// Length in bytes, at least 1.
    pub len: u64,
    /// What the layer holds there.
    pub alloc: Allocation,
}

/// Where a layer keeps the bytes of a range (the `offset` and `compressed` fields of
/// `qemu-img map --output=json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Plainly, from this byte offset of the file the layer reads its data from.
    At(u64),
    /// Compressed: there is no offset to show.
    Compressed,
}

/// What identifies a layer to the children that name it as their parent. A child stores the
/// value it expects; [`check_link`](crate::parent::check_link) compares it with what the parent says of itself.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerId {
    /// VMDK: the descriptor's content id `CID`; a child stores it as `parentCID`.
    VmdkCid(u32),
    /// VHD: the footer's unique id and time stamp; a differencing child stores them as its
    /// header's parent unique id and parent time stamp.
    Vhd {
        /// Footer unique id (16 bytes, as stored).
        unique_id: [u8; 16],
        /// Footer time stamp (seconds since 2000-01-01 UTC).
        timestamp: u32,
    },
    /// VHDX: the header's DataWriteGuid; a child's parent locator stores it as
    /// `parent_linkage`.
    VhdxDataWriteGuid([u8; 16]),
}

impl LayerId {
    /// True when `other` is the same kind of identity (so the two can be compared).
    pub fn same_kind(&self, other: &LayerId) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// Formats 16 bytes as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`; `mixed_endian` for a Microsoft
/// GUID (first three fields little-endian), otherwise in stored order.
fn uuid_string(b: &[u8; 16], mixed_endian: bool) -> String {
    let mut o = *b;
    if mixed_endian {
        o[0..4].reverse();
        o[4..6].reverse();
        o[6..8].reverse();
    }
    let hex = |r: std::ops::Range<usize>| o[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("{}-{}-{}-{}-{}", hex(0..4), hex(4..6), hex(6..8), hex(8..10), hex(10..16))
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerId::VmdkCid(c) => write!(f, "CID {c:08x}"),
            LayerId::Vhd { unique_id, timestamp } => {
                write!(f, "unique id {} and time stamp {timestamp}", uuid_string(unique_id, false))
            }
            LayerId::VhdxDataWriteGuid(g) => write!(f, "DataWriteGuid {}", uuid_string(g, true)),
        }
    }
}

/// A read-only virtual disk layer. Implementations are `Send + Sync` and use positional reads,
/// so one reader can serve several threads at once.
pub trait BlockReader: Send + Sync + fmt::Debug {
    /// The format's registry entry.
    fn format(&self) -> &'static Format;

    /// Size of the virtual disk in bytes.
    fn virtual_size(&self) -> u64;

    /// The file this layer was opened from (for messages and `xva info`).
    fn path(&self) -> &Path;

    /// What this layer holds at `offset`. The answer starts at `offset` and covers at least one
    /// byte; `max_len` (≥ 1, not past the virtual size) is a hint for how far to look.
    fn block_status(&self, offset: u64, max_len: u64) -> Result<Extent>;

    /// Reads bytes of a range that [`block_status`](BlockReader::block_status) reported as
    /// [`Allocation::Data`] in this layer. The resolver never calls it for other ranges.
    fn read_layer(&self, buf: &mut [u8], offset: u64) -> Result<()>;

    /// Where this layer keeps the bytes at `offset`, a range [`block_status`] reported as data
    /// or as an explicit zero with storage behind it, for `xva map`. A format that answers must
    /// end its `block_status` runs where the answer stops being contiguous (as qemu splits its
    /// map). `None`: the format does not say.
    ///
    /// [`block_status`]: BlockReader::block_status
    fn stored(&self, offset: u64) -> Result<Option<Stored>> {
        let _ = offset;
        Ok(None)
    }

    /// The layer under this one, if any.
    fn parent(&self) -> Option<&dyn BlockReader> {
        None
    }

    /// What identifies this layer to a child that names it as its parent (a VMDK's `CID`, a
    /// VHD's unique id and time stamp, a VHDX's DataWriteGuid); `None` when the format has none.
    fn identity(&self) -> Option<LayerId> {
        None
    }

    /// What this layer expects of its parent's [`identity`](BlockReader::identity) (a VMDK's
    /// `parentCID`); checked when the chain is opened, see [`crate::parent::check_link`].
    fn expected_parent(&self) -> Option<LayerId> {
        None
    }

    /// Format-specific facts for `xva info` (subformat, cluster size, CID, adapter type, ...).
    fn details(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Compile-time check that the trait objects are shareable between threads.
#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync + ?Sized>() {}
    is::<dyn BlockReader>();
    is::<Box<dyn BlockReader>>();
    is::<dyn crate::ByteSource>();
}
