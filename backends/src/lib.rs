//! Read-only, allocation-aware readers for virtual disk images.
//!
//! ```text
//!   consumer (xva writer, xva map, ...)
//!      │  read_exact_at / extents            resolved view of the whole chain
//!   chain resolver (chain.rs)                Unallocated → parent; past a short parent → zeros
//!      │  block_status / read_layer          one layer at a time
//!   format layer (raw/, ...)                 parses its own metadata, nothing else
//!      │  read_exact_at(buf, offset)
//!   ByteSource (source.rs)                   file, block device, window of a file, memory
//! ```
//!
//! Formats are listed, in probe order, in [`FORMATS`] (the registry's vocabulary is in
//! [`format`](mod@format)). Files an image names (backing files, extents, parents) are opened only through
//! [`policy::OpenPolicy`]; parents are found and checked by [`parent`].
//!
//! Every reader is `Send + Sync` and reads with positional `&self` calls, so one reader can be
//! shared by several threads.

#![warn(missing_docs)]

pub mod be;
pub mod cache;
pub mod chain;
pub mod error;
pub mod flat;
pub mod format;
pub mod le;
pub mod parent;
pub mod policy;
pub mod probe;
pub mod reader;
pub mod source;

// The formats: a folder each, and one line each in `FORMATS`. Adding a format: its module
// here, and its entry in `FORMATS` (replacing its `recognised` entry, if it has one).
pub mod qcow2;
pub mod raw;
pub mod recognised;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;

/// Every format, in probe order. Ties between equal confidences go to the earlier entry; raw
/// is last because it accepts anything. One line per format (kept by `rustfmt::skip`), so adding
/// a format is one line.
#[rustfmt::skip]
pub static FORMATS: &[&reader::Format] = &[
    &crate::qcow2::FORMAT,
    &crate::vmdk::FORMAT,
    &crate::vhdx::FORMAT,
    &crate::vhd::FORMAT,
    &crate::recognised::VDI,
    &crate::recognised::QED,
    &crate::recognised::PARALLELS,
    &crate::raw::FORMAT,
];

#[cfg(any(test, feature = "testutil"))]
pub mod testutil;

pub use chain::Mapping;
pub use error::{Error, ErrorKind, Result};
pub use format::{Confidence, ProbeInput};
pub use parent::ParentRef;
pub use policy::{OpenCtx, OpenPolicy};
pub use probe::{open, OpenOptions};
pub use reader::{Allocation, BlockReader, Extent, Format, LayerId, Stored};
pub use source::{ByteSource, Concat, FileSource, MemSource, Window};
