//! XenAPI client: XML-RPC calls and the HTTP `PUT /import` that streams an XVA into a host.
//!
//! ```text
//!   http (TCP / TLS, hand-written HTTP/1.x) ─► crate::xmlrpc::method (methodCall / methodResponse envelope)
//!        │                                         ─► session (login, HOST_IS_SLAVE, logout guard)
//!        │                                              ─► task, lookup (pool / SR / network / VM)
//!        └──────────────────────────────────────────► import (PUT /import: head first, then body)
//! ```
//! This module consumes a byte stream (whatever writes the XVA) and never sees a disk format.
//! Spec: `xva-format-and-xapi-import.md` §8–§10.

pub mod http;
pub mod import;
pub mod kernel;
pub mod lookup;
pub mod session;
pub mod task;
pub mod tls;

use std::io;

pub use crate::xmlrpc::XapiError;

/// Why talking to a host failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No TCP connection (name resolution, refused, unreachable, timeout).
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// The host.
        endpoint: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed for another reason than an untrusted certificate.
    #[error("TLS handshake with {endpoint} failed")]
    Tls {
        /// The host.
        endpoint: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The host's certificate was rejected; its fingerprint is given so the user can check it.
    #[error("the TLS certificate of {endpoint} is not trusted: {why}; its SHA-256 fingerprint is {fingerprint}")]
    Untrusted {
        /// The host.
        endpoint: String,
        /// The rejected certificate's fingerprint.
        fingerprint: tls::Fingerprint,
        /// Why it was rejected.
        why: String,
    },
    /// Reading or writing an established connection failed.
    #[error("{what} ({endpoint})")]
    Io {
        /// What was being done.
        what: String,
        /// The host.
        endpoint: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The host answered with an HTTP status we cannot use.
    #[error("{endpoint} answered HTTP {status} {reason}{detail}")]
    Http {
        /// The host.
        endpoint: String,
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
        /// Extra detail (`: …`), possibly empty.
        detail: String,
    },
    /// An object named on the command line does not exist or is ambiguous or unusable.
    #[error("{0}")]
    Lookup(String),
    /// The host answered something that is not XenAPI.
    #[error("unexpected answer from the host: {0}")]
    Protocol(String),
    /// xapi reported a failure.
    #[error("{method} failed")]
    Xapi {
        /// The call (or `import` for the import task).
        method: String,
        /// xapi's error code and parameters.
        #[source]
        error: XapiError,
    },
    /// Stopped by the cancel flag.
    #[error("interrupted")]
    Cancelled,
}

impl Error {
    /// xapi's error, if this is one.
    pub fn xapi(&self) -> Option<&XapiError> {
        match self {
            Error::Xapi { error, .. } => Some(error),
            _ => None,
        }
    }

    /// xapi's error code, if this is an xapi error.
    pub fn code(&self) -> Option<&str> {
        self.xapi().map(|e| e.code.as_str())
    }
}

/// `e` and all its sources, joined with `: ` (for messages that embed an error).
pub fn full_message(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
