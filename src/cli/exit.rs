//! Exit codes, documented in `xva --help` and `docs/guide.md`.

use std::process::ExitCode;

/// What `xva` exits with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything worked.
    Success = 0,
    /// An error not covered below.
    Failure = 1,
    /// Bad command line (clap uses 2 as well).
    Usage = 2,
    /// A source (disk image, config) is missing, unreadable, unsupported or corrupt.
    Input = 3,
    /// The output could not be written (exists, directory missing, disk full, ...).
    Output = 4,
    /// A check failed: `xva verify` found a violation, or `--verify` found a digest mismatch.
    Verify = 5,
    /// The host refused or failed the import (`--server`): login refused, certificate not
    /// trusted, SR missing, the import task failed, the connection broke, the kernel copy failed.
    Host = 6,
    /// Interrupted by SIGINT or SIGTERM; partial output removed.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// The text appended to `xva --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    other error
  2    bad command line
  3    a source (disk image, config) is missing, unreadable, unsupported or corrupt
  4    the output could not be written (exists, directory missing, disk full); nothing is left
       under the output name
  5    a check failed (xva verify found a violation, --verify found a digest mismatch)
  6    the host refused or failed the import (--server: login refused, certificate not
       trusted, SR missing, import task failed, connection broke); what it left is removed
  130  interrupted (SIGINT/SIGTERM); partial output removed";

/// An error that carries its exit code; other errors are classified by their cause.
#[derive(Debug)]
pub struct Coded {
    /// The exit code to use.
    pub exit: Exit,
    /// The message.
    pub message: String,
}

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// An error with exit code `exit`.
pub fn coded(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Coded { exit, message: message.into() })
}

/// The exit code for an error: its own code, or one derived from the first known cause.
pub fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(c) = cause.downcast_ref::<Coded>() {
            return c.exit;
        }
        if let Some(e) = cause.downcast_ref::<xva::plan::Error>() {
            match plan_exit(e.kind) {
                Some(exit) => return exit,
                None => continue,
            }
        }
        if cause.downcast_ref::<xva::backends::Error>().is_some()
            || cause.downcast_ref::<xva::guest::GuestError>().is_some()
        {
            return Exit::Input;
        }
    }
    Exit::Failure
}

/// The exit code for a plan-layer error kind; `None` when its cause decides.
fn plan_exit(kind: xva::plan::ErrorKind) -> Option<Exit> {
    use xva::plan::ErrorKind as K;
    Some(match kind {
        K::Usage => Exit::Usage,
        K::Input => Exit::Input,
        K::Output => Exit::Output,
        K::Verify => Exit::Verify,
        K::Host => Exit::Host,
        K::Interrupted => Exit::Interrupted,
        K::Other => Exit::Failure,
        K::FromCause => return None,
    })
}
