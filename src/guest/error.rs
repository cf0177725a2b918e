//! One error type for the config parsers and the loader: a kind, where (file, line), the
//! construct at fault, and a message that says how to proceed.

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong, coarsely.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text does not follow the format's grammar (unterminated string, stray token).
    Syntax,
    /// Well-formed, but a construct we will not evaluate (Python code in an xm config).
    Refused,
    /// A value is impossible (unknown disk prefix, huge size, bad MAC, missing key).
    Invalid,
    /// A feature this converter does not handle.
    Unsupported,
    /// Reading a file failed.
    Io,
    /// Disk files the config names are missing.
    MissingFiles,
    /// A manifest digest does not match.
    Digest,
    /// The VM is running (VMware lock files) and `--force` was not given.
    Running,
}

/// An error from a config parser or the loader.
#[derive(Debug)]
pub struct GuestError {
    kind: ErrorKind,
    file: Option<PathBuf>,
    line: Option<usize>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result alias.
pub type Result<T, E = GuestError> = std::result::Result<T, E>;

impl GuestError {
    /// A new error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> GuestError {
        GuestError { kind, file: None, line: None, message: message.into(), source: None }
    }

    /// A syntax error at `line` (1-based).
    pub fn syntax(line: usize, message: impl Into<String>) -> GuestError {
        GuestError::new(ErrorKind::Syntax, message).at_line(line)
    }

    /// An invalid value.
    pub fn invalid(message: impl Into<String>) -> GuestError {
        GuestError::new(ErrorKind::Invalid, message)
    }

    /// An unsupported feature.
    pub fn unsupported(message: impl Into<String>) -> GuestError {
        GuestError::new(ErrorKind::Unsupported, message)
    }

    /// An I/O error while doing `what` on `path`.
    pub fn io(what: impl Into<String>, path: &Path, err: std::io::Error) -> GuestError {
        GuestError::new(ErrorKind::Io, what).in_file(path).with_source(err)
    }

    /// Sets the line (innermost wins).
    pub fn at_line(mut self, line: usize) -> GuestError {
        if self.line.is_none() {
            self.line = Some(line);
        }
        self
    }

    /// Sets the file (innermost wins).
    pub fn in_file(mut self, file: impl AsRef<Path>) -> GuestError {
        if self.file.is_none() {
            self.file = Some(file.as_ref().to_path_buf());
        }
        self
    }

    /// Attaches the cause.
    pub fn with_source(mut self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> GuestError {
        self.source = Some(source.into());
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The line, if known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The file, if known.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The message without location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(p), Some(l)) => write!(f, "{}:{l}: ", p.display())?,
            (Some(p), None) => write!(f, "{}: ", p.display())?,
            (None, Some(l)) => write!(f, "line {l}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for GuestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}
