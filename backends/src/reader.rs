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

use crate::error::Result;
use crate::format::Format;
use crate::parent::LayerId;

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
