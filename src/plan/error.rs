//! The plan layer's error: a message, what kind of failure it is (the command line maps the
//! kind to an exit code), and the error that caused it.

/// What failed, as far as the user is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request contradicts itself or the VM (a usage error).
    Usage,
    /// A source (disk image, config, kernel file) is missing, unreadable, unsupported or corrupt.
    Input,
    /// The output could not be written.
    Output,
    /// A check failed: the written XVA does not read back as it was written.
    Verify,
    /// The host refused or failed the import, or could not be reached.
    Host,
    /// Stopped by the cancel flag.
    Interrupted,
    /// Anything else (an unexpected state).
    Other,
    /// No kind of its own: the message adds context, the cause decides.
    FromCause,
}

/// A plan-layer error: `message` (which may be context only), `kind`, and the cause.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// What failed.
    pub kind: ErrorKind,
    /// What to tell the user (the causes follow it, `: `-separated).
    pub message: String,
    /// The error underneath, if any.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Results of the plan layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with no cause.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), source: None }
    }

    /// `message` as context over `cause`: the kind comes from the cause.
    pub fn context(message: impl Into<String>, cause: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error { kind: ErrorKind::FromCause, message: message.into(), source: Some(Box::new(cause)) }
    }

    /// This error wrapped in `message`, keeping its kind.
    pub fn wrap(self, message: impl Into<String>) -> Error {
        Error { kind: self.kind, message: message.into(), source: Some(Box::new(self)) }
    }

    /// This error with `cause` under it.
    pub fn caused_by(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Box::new(cause));
        self
    }

    pub(crate) fn usage(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Usage, message)
    }

    pub(crate) fn input(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Input, message)
    }

    pub(crate) fn host(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Host, message)
    }
}
