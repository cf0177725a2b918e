//! The probe's vocabulary: what a probe sees of a file ([`ProbeInput`]) and how sure it is
//! ([`Confidence`]). A format's registry entry ([`crate::reader::Format`]) lives with the
//! reader interface it opens; the list of formats and the openers live in [`crate::probe`].
//! This module names no format, so the formats can depend on it without depending on each
//! other.

use std::path::Path;

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
