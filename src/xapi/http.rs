//! A deliberately small HTTP/1.x client over TCP or TLS, enough for XML-RPC `POST /` and the
//! import `PUT`: one request per connection (`Connection: close`), request heads written by hand
//! (no `Transfer-Encoding`, no `Expect`), response heads and bodies read with hard size limits.
//!
//! Why not an HTTP library: xapi answers `PUT /import` with `200` *before* reading the body,
//! refuses chunked bodies, and never sends `100 Continue` (`xva-format-and-xapi-import.md` §8.1);
//! a client that waits for a response only after the body, or frames the body, gets it wrong.
//!
//! Every socket operation waits at most one second at a time, so a cancel flag (Ctrl-C) is
//! noticed even while the peer is stalled, and a stall longer than the configured limit fails.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::tls::Seen;
use super::Error;

/// Largest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest XML-RPC response body accepted (a big pool's `*.get_all_records`).
pub const MAX_BODY: usize = 64 << 20;

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (port 80); only with `--allow-http`.
    Http,
    /// HTTP over TLS (port 443).
    Https,
}

/// Where a host listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Scheme.
    pub scheme: Scheme,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// Parses `HOST`, `HOST:PORT`, `[V6]:PORT`, optionally prefixed with `https://` or `http://`
    /// (a trailing `/` is ignored). Without a scheme, `default` is used.
    pub fn parse(s: &str, default: Scheme) -> Result<Endpoint, String> {
        let (scheme, rest) = if let Some(r) = s.strip_prefix("https://") {
            (Scheme::Https, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (Scheme::Http, r)
        } else if s.contains("://") {
            return Err(format!("{s:?}: only http:// and https:// are understood"));
        } else {
            (default, s)
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(format!("{s:?}: give a host name or address with an optional port, nothing else"));
        }
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, tail) = v6.split_once(']').ok_or_else(|| format!("{s:?}: missing ']'"))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => parse_port(p, s)?,
                None if tail.is_empty() => default_port,
                None => return Err(format!("{s:?}: unexpected {tail:?} after the address")),
            };
            (h.to_string(), port)
        } else if rest.matches(':').count() > 1 {
            (rest.to_string(), default_port) // a bare IPv6 address
        } else if let Some((h, p)) = rest.split_once(':') {
            (h.to_string(), parse_port(p, s)?)
        } else {
            (rest.to_string(), default_port)
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{s:?} is not a host name"));
        }
        Ok(Endpoint { scheme, host, port })
    }

    /// The same host and port with another host name (xapi's `HOST_IS_SLAVE` names the master
    /// by address; a `302` names the host that sees the SR).
    pub fn with_host(&self, host: &str) -> Endpoint {
        Endpoint { host: host.to_string(), ..self.clone() }
    }

    /// `host:port` for the `Host` header (`[v6]:port` for IPv6).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{s}://{}", self.authority())
    }
}

fn parse_port(p: &str, whole: &str) -> Result<u16, String> {
    p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| format!("{whole:?}: {p:?} is not a port"))
}

/// How to connect: TLS configuration and time limits.
#[derive(Clone, Debug)]
pub struct Transport {
    /// TLS configuration (for `https` endpoints).
    pub tls: Arc<ClientConfig>,
    /// Where the verifier records a rejected certificate.
    pub seen: Arc<Seen>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Longest time the peer may make no progress while we read or write.
    pub stall_timeout: Duration,
}

/// A TCP socket that waits at most a second per operation, checking a cancel flag and a stall
/// limit in between.
#[derive(Debug)]
pub struct Socket {
    tcp: TcpStream,
    cancel: Option<&'static AtomicBool>,
    stall: Duration,
}

fn cancelled_error() -> io::Error {
    // Not ErrorKind::Interrupted: write_all and read_exact retry on that, forever.
    io::Error::other(Cancelled)
}

/// The marker inside the `io::Error` a cancelled operation returns.
#[derive(Debug)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Cancelled {}

/// True if `e` came from the cancel flag.
pub fn is_cancelled(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<Cancelled>())
}

impl Socket {
    fn patient<T>(&mut self, mut op: impl FnMut(&mut TcpStream) -> io::Result<T>) -> io::Result<T> {
        let started = Instant::now();
        loop {
            if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(cancelled_error());
            }
            match op(&mut self.tcp) {
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if started.elapsed() >= self.stall {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the host made no progress for {} s", self.stall.as_secs()),
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.patient(|t| t.read(buf))
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.patient(|t| t.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One connection to a host, plain or TLS.
#[derive(Debug)]
pub enum Conn {
    /// Plain TCP.
    Plain(Socket),
    /// TLS.
    Tls(Box<StreamOwned<ClientConnection, Socket>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl Conn {
    /// Ends the request body: TLS `close_notify`, then a TCP half-close, so a server that reads
    /// to the end of the stream sees the end.
    pub fn finish_body(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.tcp.shutdown(Shutdown::Write),
            Conn::Tls(s) => {
                s.conn.send_close_notify();
                s.flush()?;
                s.sock.tcp.shutdown(Shutdown::Write)
            }
        }
    }
}

impl Transport {
    /// Opens a connection to `ep`. `cancel` makes reads and writes on it stop when set.
    pub fn connect(&self, ep: &Endpoint, cancel: Option<&'static AtomicBool>) -> Result<Conn, Error> {
        let io_err = |source: io::Error| Error::Connect { endpoint: ep.to_string(), source };
        let addrs: Vec<_> = (ep.host.as_str(), ep.port).to_socket_addrs().map_err(io_err)?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address");
        let mut tcp = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, self.connect_timeout) {
                Ok(t) => {
                    tcp = Some(t);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let tcp = tcp.ok_or_else(|| io_err(last))?;
        let tick = Some(Duration::from_secs(1));
        tcp.set_read_timeout(tick).map_err(io_err)?;
        tcp.set_write_timeout(tick).map_err(io_err)?;
        let _ = tcp.set_nodelay(true);
        let sock = Socket { tcp, cancel, stall: self.stall_timeout };
        match ep.scheme {
            Scheme::Http => Ok(Conn::Plain(sock)),
            Scheme::Https => {
                let name = ServerName::try_from(ep.host.clone())
                    .map_err(|e| Error::Protocol(format!("{:?} cannot be used as a TLS server name: {e}", ep.host)))?;
                let conn = ClientConnection::new(self.tls.clone(), name)
                    .map_err(|e| Error::Protocol(format!("TLS setup failed: {e}")))?;
                let mut s = StreamOwned::new(conn, sock);
                while s.conn.is_handshaking() {
                    if let Err(e) = s.conn.complete_io(&mut s.sock) {
                        if let Some((fingerprint, why)) = self.seen.rejected() {
                            return Err(Error::Untrusted { endpoint: ep.to_string(), fingerprint, why });
                        }
                        return Err(Error::Tls { endpoint: ep.to_string(), source: e });
                    }
                }
                Ok(Conn::Tls(Box::new(s)))
            }
        }
    }
}

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Reads a response head byte by byte (so nothing after it is consumed), at most [`MAX_HEAD`].
pub fn read_head(r: &mut impl Read) -> io::Result<Head> {
    let mut buf = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && !buf.ends_with(b"\n\n") {
        if buf.len() >= MAX_HEAD {
            return Err(invalid(format!("response head longer than {MAX_HEAD} bytes")));
        }
        match r.read(&mut byte)? {
            0 if buf.is_empty() => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the host closed the connection without answering",
                ))
            }
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the host closed the connection mid-answer")),
            _ => buf.push(byte[0]),
        }
    }
    parse_head(&buf)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Parses `HTTP/1.x NNN reason` and the header lines.
pub fn parse_head(buf: &[u8]) -> io::Result<Head> {
    let text = String::from_utf8_lossy(buf);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        let shown: String = status_line.chars().take(60).collect();
        return Err(invalid(format!("not an HTTP response: {shown:?}")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| invalid("bad HTTP status line".into()))?;
    let reason = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(invalid("malformed HTTP header line".into()));
        };
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Head { status, reason, headers })
}

/// Reads a response body per the head (`Content-Length`, chunked, or to EOF), at most `limit`.
pub fn read_body(r: &mut impl Read, head: &Head, limit: usize) -> io::Result<Vec<u8>> {
    let too_big = || invalid(format!("response body larger than {limit} bytes"));
    if head.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        loop {
            let line = read_line(r, 1024)?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size =
                usize::from_str_radix(size_text, 16).map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailers until an empty line.
                while !read_line(r, 8192)?.is_empty() {}
                return Ok(out);
            }
            if out.len().saturating_add(size) > limit {
                return Err(too_big());
            }
            let start = out.len();
            out.resize(start + size, 0);
            r.read_exact(&mut out[start..])?;
            read_line(r, 2)?;
        }
    }
    if let Some(len) = head.header("content-length") {
        let n: usize = len.parse().map_err(|_| invalid(format!("bad Content-Length {len:?}")))?;
        if n > limit {
            return Err(too_big());
        }
        let mut out = vec![0u8; n];
        r.read_exact(&mut out)?;
        return Ok(out);
    }
    let mut out = Vec::new();
    r.take(limit as u64 + 1).read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(too_big());
    }
    Ok(out)
}

fn read_line(r: &mut impl Read, max: usize) -> io::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        r.read_exact(&mut b)?;
        if b[0] == b'\n' {
            break;
        }
        if line.len() > max {
            return Err(invalid("chunk framing line too long".into()));
        }
        line.push(b[0]);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("xs1", Scheme::Https).unwrap();
        assert_eq!((e.scheme, e.host.as_str(), e.port), (Scheme::Https, "xs1", 443));
        let e = Endpoint::parse("http://10.0.0.2:8080/", Scheme::Https).unwrap();
        assert_eq!((e.scheme, e.host.as_str(), e.port), (Scheme::Http, "10.0.0.2", 8080));
        let e = Endpoint::parse("[fe80::1]:444", Scheme::Https).unwrap();
        assert_eq!((e.host.as_str(), e.port, e.authority()), ("fe80::1", 444, "[fe80::1]:444".to_string()));
        let e = Endpoint::parse("fe80::1", Scheme::Http).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("fe80::1", 80));
        for bad in ["", "xs1:0", "xs1:99999", "ftp://x", "a/b", "user@x", "x y", "[::1"] {
            assert!(Endpoint::parse(bad, Scheme::Https).is_err(), "{bad:?}");
        }
        assert_eq!(e.with_host("m").authority(), "m:80");
    }

    #[test]
    fn heads_and_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\ntask-id: OpaqueRef:1\r\n\r\nrest";
        let mut r = &raw[..];
        let h = read_head(&mut r).unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.header("task-id"), Some("OpaqueRef:1"));
        assert_eq!(r, b"rest");
        let chunked =
            Head { status: 200, reason: "OK".into(), headers: vec![("transfer-encoding".into(), "chunked".into())] };
        let mut r = &b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"[..];
        assert_eq!(read_body(&mut r, &chunked, 100).unwrap(), b"abcde");
        let mut r = &b"ffffffff\r\n"[..];
        assert!(read_body(&mut r, &chunked, 100).is_err());
        let sized = Head { status: 200, reason: "OK".into(), headers: vec![("content-length".into(), "1000".into())] };
        assert!(read_body(&mut &b"x"[..], &sized, 100).is_err());
        let eof = Head { status: 200, reason: "OK".into(), headers: vec![] };
        assert_eq!(read_body(&mut &b"xyz"[..], &eof, 3).unwrap(), b"xyz");
        assert!(read_body(&mut &b"wxyz"[..], &eof, 3).is_err());
        assert!(read_head(&mut &b"SSH-2.0-OpenSSH\r\n\r\n"[..]).is_err());
        assert!(read_head(&mut &b""[..]).is_err());
        assert!(read_head(&mut &vec![b'a'; MAX_HEAD + 10][..]).is_err());
        assert_eq!(query_escape("OpaqueRef:a b&c"), "OpaqueRef:a%20b%26c");
    }
}
