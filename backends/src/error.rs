//! One error type for every block reader: a kind, the context it happened in, and the cause.
//!
//! Callers branch on [`ErrorKind`] (an unsupported feature is not corruption, and neither is an
//! I/O error); people read the [`Display`](fmt::Display) form, which names the file, the offset
//! and what was wrong. `Display` never repeats the source: reporters walk
//! [`std::error::Error::source`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely, so that callers can decide what to do.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The operating system refused or failed an operation.
    Io,
    /// The file is not what the format says it should be (bad magic, impossible header field).
    InvalidFormat,
    /// The image is well-formed but uses a feature this reader does not support.
    Unsupported,
    /// The image's metadata is inconsistent (a table points past the end of the file, ...).
    Corrupt,
    /// A read outside the virtual disk was asked for.
    OutOfBounds,
    /// An image names another file (backing file, extent, parent) that the open policy refuses.
    RefusedReference,
    /// A file an image names does not exist.
    MissingFile,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Io => "I/O error",
            ErrorKind::InvalidFormat => "invalid image",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Corrupt => "corrupt image",
            ErrorKind::OutOfBounds => "out of bounds",
            ErrorKind::RefusedReference => "refused reference",
            ErrorKind::MissingFile => "missing file",
        }
    }
}

/// An error from a block reader: kind + context + optional boxed cause.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    path: Option<PathBuf>,
    offset: Option<u64>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// A new error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), path: None, offset: None, source: None }
    }

    /// Shorthand for an [`ErrorKind::InvalidFormat`] error.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidFormat, message)
    }

    /// `offset` is at or past a layer's virtual size `size` (a status query out of range):
    /// `OutOfBounds`, naming the layer's file.
    pub fn past_virtual_size(offset: u64, size: u64, path: impl AsRef<Path>) -> Error {
        Error::new(ErrorKind::OutOfBounds, format!("offset {offset} is past the virtual size {size}")).with_path(path)
    }

    /// A read of `len` bytes at `offset` ends past a layer's virtual size `size`:
    /// `OutOfBounds`, naming the layer's file.
    pub fn read_past_virtual_size(len: u64, offset: u64, size: u64, path: impl AsRef<Path>) -> Error {
        Error::new(ErrorKind::OutOfBounds, format!("read of {len} bytes at {offset} is past the virtual size {size}"))
            .with_path(path)
    }

    /// Shorthand for an [`ErrorKind::Corrupt`] error.
    pub fn corrupt(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Corrupt, message)
    }

    /// Shorthand for an [`ErrorKind::Unsupported`] error.
    pub fn unsupported(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unsupported, message)
    }

    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, err: io::Error) -> Error {
        Error::new(ErrorKind::Io, what).with_source(err)
    }

    /// Attach the file the error is about (kept if one is already set: the innermost wins).
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Error {
        if self.path.is_none() {
            self.path = Some(path.as_ref().to_path_buf());
        }
        self
    }

    /// Attach the byte offset in the file the error is about (innermost wins).
    pub fn at(mut self, offset: u64) -> Error {
        if self.offset.is_none() {
            self.offset = Some(offset);
        }
        self
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        self.source = Some(source.into());
        self
    }

    /// The coarse kind of the error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The file the error is about, if known.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The byte offset in [`Error::path`] the error is about, if known.
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The message without context.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        write!(f, "{}: {}", self.kind.as_str(), self.message)?;
        if let Some(offset) = self.offset {
            write!(f, " (at byte offset {offset:#x})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Checked arithmetic on header-derived numbers: overflow becomes [`ErrorKind::InvalidFormat`].
pub trait CheckedExt: Sized {
    /// `self + rhs`, or an error naming `what`.
    fn add_or(self, rhs: Self, what: &str) -> Result<Self>;
    /// `self * rhs`, or an error naming `what`.
    fn mul_or(self, rhs: Self, what: &str) -> Result<Self>;
}

impl CheckedExt for u64 {
    fn add_or(self, rhs: u64, what: &str) -> Result<u64> {
        self.checked_add(rhs).ok_or_else(|| Error::invalid(format!("{what} overflows: {self} + {rhs}")))
    }
    fn mul_or(self, rhs: u64, what: &str) -> Result<u64> {
        self.checked_mul(rhs).ok_or_else(|| Error::invalid(format!("{what} overflows: {self} * {rhs}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_path_kind_and_offset_but_not_source() {
        let e = Error::corrupt("grain table past end of file")
            .at(0x200)
            .with_path("/tmp/a.vmdk")
            .with_source(io::Error::other("inner cause"));
        let s = e.to_string();
        assert_eq!(s, "/tmp/a.vmdk: corrupt image: grain table past end of file (at byte offset 0x200)");
        assert!(!s.contains("inner cause"));
        assert_eq!(std::error::Error::source(&e).unwrap().to_string(), "inner cause");
    }

    #[test]
    fn innermost_context_wins() {
        let e = Error::invalid("x").with_path("inner").at(1).with_path("outer").at(2);
        assert_eq!(e.path().unwrap(), Path::new("inner"));
        assert_eq!(e.offset(), Some(1));
    }

    #[test]
    fn checked_ops() {
        assert_eq!(3u64.add_or(4, "a").unwrap(), 7);
        assert_eq!(u64::MAX.add_or(1, "grain offset").unwrap_err().kind(), ErrorKind::InvalidFormat);
        assert!(u64::MAX.mul_or(2, "b").unwrap_err().to_string().contains("b overflows"));
    }
}
