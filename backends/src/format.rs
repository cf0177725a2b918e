//! The registry's vocabulary: what a format entry is ([`Format`]), what a probe sees
//! ([`ProbeInput`]) and how sure it is ([`Confidence`]).
//!
//! The list of formats and the openers live in [`crate::probe`]; this module names no format,
//! so the reader interface and the formats themselves can depend on it without depending on
//! every other format.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::error::Result;
use crate::policy::OpenCtx;
use crate::reader::BlockReader;
use crate::source::ByteSource;

/// How many bytes of the start of a file probes see.
pub const HEAD_LEN: usize = 64 * 1024;
/// How many bytes of the end of a file probes see.
pub const TAIL_LEN: usize = 512;

/// How sure a probe is that a file is in its format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Confidence(pub u8);

impl Confidence {
    /// Not this format.
    pub const NO: Confidence = Confidence(0);
    /// Anything could be this format (raw).
    pub const FALLBACK: Confidence = Confidence(1);
    /// A heuristic match (a text descriptor, a footer at the end of the file).
    pub const LIKELY: Confidence = Confidence(50);
    /// A magic number and a sane header.
    pub const CERTAIN: Confidence = Confidence(100);
}

/// What a probe sees of a file.
#[derive(Debug)]
pub struct ProbeInput<'a> {
    /// The first bytes of the file (up to [`HEAD_LEN`]; fewer if the file is shorter).
    pub head: &'a [u8],
    /// The last bytes of the file (up to [`TAIL_LEN`]).
    pub tail: &'a [u8],
    /// The length of the file.
    pub len: u64,
    /// The path of the file.
    pub path: &'a Path,
}

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
