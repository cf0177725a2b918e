//! `PUT /import`: the request that carries an XVA into a host (`xva-format-and-xapi-import.md`
//! §8.1, §10).
//!
//! ```text
//!   PUT /import?session_id=…&task_id=…&restore=…&force=false[&sr_id=…] HTTP/1.0
//!   (no Transfer-Encoding: xapi refuses it; no Expect: xapi never sends 100)
//!   ◄── HTTP/1.1 200 OK + task-id, sent before xapi reads anything      → stream the tar
//!   ◄── 302 Found, Location: https://<host that sees the SR>/import?…  → same request there, once
//!   ◄── 401 / 403 / 400 / 500                                            → error, nothing sent
//!   tar bytes …, then close_notify + half-close (the end of the body when no length was sent)
//! ```
//! The HTTP status says nothing about the import itself; the caller polls the task.

use std::io::{self, Write};
use std::sync::atomic::AtomicBool;

use super::http::{query_escape, read_body, read_head, Conn, Endpoint, Head};
use super::session::Session;
use super::Error;

/// What to import, and how.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// Our task (`task.create`), which xapi completes but does not destroy.
    pub task: &'a str,
    /// The SR reference; `None` = the pool's default SR.
    pub sr: Option<&'a str>,
    /// `restore=true`: keep the VM's, VBDs' and VIFs' UUIDs and the VIFs' MACs.
    pub restore: bool,
    /// An exact body length, if known (xapi does not need one for an uncompressed XVA).
    pub content_length: Option<u64>,
}

impl Request<'_> {
    /// The path and query.
    pub fn path(&self, session: &str) -> String {
        let mut p = format!(
            "/import?session_id={}&task_id={}&restore={}&force=false",
            query_escape(session),
            query_escape(self.task),
            self.restore
        );
        if let Some(sr) = self.sr {
            p.push_str("&sr_id=");
            p.push_str(&query_escape(sr));
        }
        p
    }
}

/// An accepted import: write the XVA into it, then call [`Upload::finish`].
#[derive(Debug)]
pub struct Upload {
    conn: Conn,
    /// The host that accepted the body (differs from the session's after a `302`).
    pub endpoint: Endpoint,
    /// The `task-id` header of the `200`, if any.
    pub task_header: Option<String>,
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.conn.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.conn.flush()
    }
}

impl Upload {
    /// Ends the body: flush, TLS close_notify, TCP half-close.
    pub fn finish(mut self) -> io::Result<()> {
        self.conn.flush()?;
        self.conn.finish_body()
    }
}

/// Sends the request head and reads xapi's answer; on `200` the connection is ready for the
/// body. One `302` is followed (with the same session id: cookies and credentials are not in
/// the `Location`). `cancel` stops the body writes when set.
pub fn start(session: &Session, req: &Request<'_>, cancel: Option<&'static AtomicBool>) -> Result<Upload, Error> {
    let path = req.path(session.reference());
    let transport = &session.client().transport;
    let mut ep = session.endpoint().clone();
    for hop in 0..2 {
        let mut conn = transport.connect(&ep, cancel)?;
        let io = |what: &str, source| Error::Io { what: what.to_string(), endpoint: ep.to_string(), source };
        let mut head = format!(
            "PUT {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: xva/{}\r\nConnection: close\r\n",
            ep.authority(),
            env!("CARGO_PKG_VERSION")
        );
        if let Some(n) = req.content_length {
            head.push_str(&format!("Content-Length: {n}\r\n"));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes()).and_then(|()| conn.flush()).map_err(|e| io("sending the import request", e))?;
        let answer = read_head(&mut conn).map_err(|e| io("reading the answer to the import request", e))?;
        match answer.status {
            200 => {
                let task_header = answer.header("task-id").map(str::to_string);
                return Ok(Upload { conn, endpoint: ep, task_header });
            }
            301 | 302 | 303 | 307 if hop == 0 => {
                let location = answer.header("location").unwrap_or_default();
                ep = redirect_target(&ep, location)?;
            }
            _ => return Err(refused(&ep, &answer, &mut conn)),
        }
    }
    Err(Error::Protocol("the import was redirected twice".into()))
}

/// The endpoint a `Location` names: its host and port, our scheme (never downgraded to http).
fn redirect_target(from: &Endpoint, location: &str) -> Result<Endpoint, Error> {
    let rest = location.strip_prefix("https://").or_else(|| location.strip_prefix("http://")).ok_or_else(|| {
        Error::Protocol(format!("redirect to {:?}, which is not an http(s) URL", super::session::short(location)))
    })?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let explicit_port = authority.rsplit_once(':').is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        && !authority.ends_with(']');
    let mut ep = Endpoint::parse(authority, from.scheme)
        .map_err(|e| Error::Protocol(format!("redirect to an unusable address: {e}")))?;
    ep.scheme = from.scheme;
    if !explicit_port {
        ep.port = from.port;
    }
    Ok(ep)
}

/// An error for a non-200 answer, with what little the body says.
fn refused(ep: &Endpoint, head: &Head, conn: &mut Conn) -> Error {
    let body = read_body(conn, head, 4096).unwrap_or_default();
    let text: String = String::from_utf8_lossy(&body).chars().filter(|c| !c.is_control()).take(200).collect();
    let hint = match head.status {
        401 => " (the session was not accepted)",
        403 => " (permission denied, or the request was refused)",
        400 => " (the SR cannot take the import, or the pool is being upgraded)",
        500 => " (no usable SR? check the pool's default SR or pass one)",
        _ => "",
    };
    let detail = if text.trim().is_empty() { hint.to_string() } else { format!("{hint}: {}", text.trim()) };
    Error::Http { endpoint: ep.to_string(), status: head.status, reason: head.reason.clone(), detail }
}

#[cfg(test)]
mod tests {
    use super::super::http::Scheme;
    use super::*;

    #[test]
    fn paths() {
        let r = Request { task: "OpaqueRef:t", sr: Some("OpaqueRef:s"), restore: true, content_length: None };
        assert_eq!(
            r.path("OpaqueRef:x"),
            "/import?session_id=OpaqueRef:x&task_id=OpaqueRef:t&restore=true&force=false&sr_id=OpaqueRef:s"
        );
        let r = Request { sr: None, restore: false, ..r };
        assert!(r.path("s").ends_with("restore=false&force=false"));
    }

    #[test]
    fn redirects_keep_scheme_and_port() {
        let from = Endpoint::parse("https://master:4443", Scheme::Https).unwrap();
        let to = redirect_target(&from, "https://10.0.0.9/import?session_id=a").unwrap();
        assert_eq!((to.scheme, to.host.as_str(), to.port), (Scheme::Https, "10.0.0.9", 4443));
        let to = redirect_target(&from, "http://10.0.0.9:8443/import").unwrap();
        assert_eq!((to.scheme, to.port), (Scheme::Https, 8443));
        assert!(redirect_target(&from, "/import").is_err());
        assert!(redirect_target(&from, "ftp://x/").is_err());
    }
}
