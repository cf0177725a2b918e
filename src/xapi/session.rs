//! XML-RPC calls to a host, and the logged-in session that owns them.
//!
//! A [`Session`] is its own guard: dropping it calls `session.logout`, so a session is closed on
//! every path out (errors, Ctrl-C cleanup) and xapi's per-originator session cap is not eaten
//! up by failed runs (`target-profiles.md` §0.6).

use std::fmt;
use std::io::Write;

use super::http::{read_body, read_head, Endpoint, Transport, MAX_BODY};
use super::{Error, XapiError};
use crate::xmlrpc::method::{decode_response, method_call, CallError};
use crate::xmlrpc::Value;

/// The `originator` sent at login (xapi caps sessions per originator).
pub const ORIGINATOR: &str = "xva";

/// A password: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// XML-RPC calls to one host, without a session.
#[derive(Clone, Debug)]
pub struct Client {
    /// How to connect.
    pub transport: Transport,
    /// Where.
    pub endpoint: Endpoint,
}

impl Client {
    /// Calls `method` with `params` (`POST /`, one connection per call).
    pub fn call(&self, method: &str, params: &[Value]) -> Result<Value, Error> {
        let ep = &self.endpoint;
        let body = method_call(method, params);
        let mut conn = self.transport.connect(ep, None)?;
        let io = |what: &str, source| Error::Io { what: format!("{what} {method}"), endpoint: ep.to_string(), source };
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nUser-Agent: xva/{}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            ep.authority(),
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        conn.write_all(head.as_bytes())
            .and_then(|()| conn.write_all(body.as_bytes()))
            .and_then(|()| conn.flush())
            .map_err(|e| io("sending", e))?;
        let head = read_head(&mut conn).map_err(|e| io("reading the answer to", e))?;
        if head.status != 200 {
            return Err(Error::Http {
                endpoint: ep.to_string(),
                status: head.status,
                reason: head.reason,
                detail: format!(" to {method}"),
            });
        }
        let body = read_body(&mut conn, &head, MAX_BODY).map_err(|e| io("reading the answer to", e))?;
        decode_response(&body).map_err(|e| match e {
            CallError::Xapi(error) => Error::Xapi { method: method.to_string(), error },
            CallError::Malformed(m) => Error::Protocol(format!("{method}: {m}")),
        })
    }
}

/// A logged-in session; logs out when dropped.
#[derive(Debug)]
pub struct Session {
    client: Client,
    reference: String,
    open: bool,
}

/// At most this many `HOST_IS_SLAVE` hops are followed.
const MAX_MASTER_HOPS: usize = 2;

impl Session {
    /// `session.login_with_password(user, password, "1.0", "xva")`. A pool member answers
    /// `HOST_IS_SLAVE <master address>`: `on_master` is told, and the login is repeated against
    /// the master (same scheme, port and trust).
    pub fn login(
        client: Client,
        user: &str,
        password: &Secret,
        on_master: &mut dyn FnMut(&Endpoint),
    ) -> Result<Session, Error> {
        let mut client = client;
        let mut hops = 0;
        loop {
            let params = [Value::str(user), Value::str(password.expose()), Value::str("1.0"), Value::str(ORIGINATOR)];
            match client.call("session.login_with_password", &params) {
                Ok(Value::String(reference)) if !reference.is_empty() => {
                    return Ok(Session { client, reference, open: true });
                }
                Ok(other) => {
                    return Err(Error::Protocol(format!(
                        "session.login_with_password returned {} instead of a session reference",
                        short(&other.to_xml())
                    )))
                }
                Err(Error::Xapi { error, .. }) if error.code == "HOST_IS_SLAVE" && hops < MAX_MASTER_HOPS => {
                    let Some(master) = error.params.first().filter(|m| !m.is_empty()) else {
                        return Err(Error::Xapi {
                            method: "session.login_with_password".into(),
                            error: XapiError::new("HOST_IS_SLAVE", Vec::<String>::new()),
                        });
                    };
                    let ep = client.endpoint.with_host(master);
                    on_master(&ep);
                    client = Client { endpoint: ep, ..client };
                    hops += 1;
                }
                Err(e) => return Err(redact(e, password)),
            }
        }
    }

    /// The host this session is logged in to (the pool master).
    pub fn endpoint(&self) -> &Endpoint {
        &self.client.endpoint
    }

    /// The connection settings.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The session reference (`OpaqueRef:…`), needed in the import URL.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// Calls `method(session, params…)`.
    pub fn call(&self, method: &str, params: &[Value]) -> Result<Value, Error> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(Value::str(&self.reference));
        all.extend_from_slice(params);
        self.client.call(method, &all)
    }

    /// Calls `method(session, params…)` and expects a string (a reference, a uuid, …).
    pub fn call_str(&self, method: &str, params: &[Value]) -> Result<String, Error> {
        match self.call(method, params)? {
            Value::String(s) => Ok(s),
            other => Err(Error::Protocol(format!("{method} returned {} instead of a string", short(&other.to_xml())))),
        }
    }

    /// Calls `method(session, params…)` and expects an array of strings (a set of references).
    pub fn call_strs(&self, method: &str, params: &[Value]) -> Result<Vec<String>, Error> {
        match self.call(method, params)? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(Error::Protocol(format!("{method} returned {} in a set", short(&other.to_xml())))),
                })
                .collect(),
            other => Err(Error::Protocol(format!("{method} returned {} instead of a set", short(&other.to_xml())))),
        }
    }

    /// `session.logout`. Also done on drop; calling it reports the result.
    pub fn logout(mut self) -> Result<(), Error> {
        self.open = false;
        self.client.call("session.logout", &[Value::str(&self.reference)]).map(|_| ())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.open {
            let _ = self.client.call("session.logout", &[Value::str(&self.reference)]);
        }
    }
}

/// At most 80 characters of `s`, for messages.
pub fn short(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Removes the password from anything the host echoed back (a hostile or buggy host could).
fn redact(e: Error, password: &Secret) -> Error {
    let pw = password.expose();
    if pw.is_empty() {
        return e;
    }
    match e {
        Error::Xapi { method, mut error } => {
            error.code = error.code.replace(pw, "***");
            for p in &mut error.params {
                *p = p.replace(pw, "***");
            }
            Error::Xapi { method, error }
        }
        Error::Protocol(m) => Error::Protocol(m.replace(pw, "***")),
        other => other,
    }
}
