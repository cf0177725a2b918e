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
//! Formats are listed, in probe order, in [`probe::FORMATS`]. Files an image names (backing
//! files, extents, parents) are opened only through [`policy::OpenPolicy`].
//!
//! Every reader is `Send + Sync` and reads with positional `&self` calls, so one reader can be
//! shared by several threads.

#![warn(missing_docs)]

pub mod chain;
pub mod error;
pub mod policy;
pub mod probe;
pub mod qcow2;
pub mod raw;
pub mod reader;
pub mod recognised;
pub mod source;
pub mod vmdk;

#[cfg(any(test, feature = "testutil"))]
pub mod testutil;

pub use chain::Mapping;
pub use error::{Error, ErrorKind, Result};
pub use policy::{OpenCtx, OpenPolicy};
pub use probe::{open, Confidence, Format, OpenOptions, FORMATS};
pub use reader::{Allocation, BlockReader, Extent};
pub use source::{ByteSource, FileSource, MemSource, Window};
