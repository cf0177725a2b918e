//! A XenAPI test server that plays xapi's part in an import (`xva-format-and-xapi-import.md`
//! §8.1, §9, §10), bound to 127.0.0.1 only.
//!
//! * XML-RPC `POST /`: session, pool, SR, network, PIF, host, task, VM, VBD, VDI calls with
//!   xapi's response shapes and error codes.
//! * `PUT /import`: checks the session, refuses `Transfer-Encoding` (403 + task error), answers
//!   `200` + `task-id` *before* reading the body, reads the tar with the library's validator
//!   (the same rules as `xva verify`), rebuilds the disks in memory, and records the result in
//!   the task the client passed.
//! * Fault switches ([`Faults`]) for the cases an import must survive or report.
//!
//! Pool-member behaviour without a second address: requests whose `Host` header names
//! `127.0.0.1` are "the member"; `localhost` is "the master" / the host that sees the SR.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use sha2::Digest as _;

use xva::xmlrpc::method::{failure_response, parse_method_call, success_response, XapiError};
use xva::xmlrpc::Value;
use xva::xva::reader::{DiskRange, ImportVisitor, StreamedVdi};
use xva::xva::validate::{verify_with_visitor, Severity, VerifyOptions};

pub const USER: &str = "root";
pub const PASSWORD: &str = "s3cret-PW-xyz";

/// Ways the server misbehaves (all off by default).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Logins on the member (`Host: 127.0.0.1`) fail with `HOST_IS_SLAVE localhost`.
    pub host_is_slave: bool,
    /// `PUT /import` on the member answers `302` to `localhost`.
    pub redirect: bool,
    /// Flip a byte inside the first chunk's data on arrival (a checksum failure).
    pub corrupt: bool,
    /// Drop the connection after this many body bytes, for the first `drop_times` imports.
    pub drop_after: Option<u64>,
    /// How many imports the drop applies to.
    pub drop_times: usize,
    /// Sleep this long every 256 KiB read.
    pub slow: Option<Duration>,
    /// Read the whole body, create the VM and its disks, then fail the task and leave them.
    pub fail_after_body: bool,
    /// Stop reading after the last chunk of this many disks and reset the connection (xapi
    /// does not read the end-of-archive blocks). 0 = off.
    pub close_after_disks: usize,
    /// The pool has no default SR.
    pub no_default_sr: bool,
    /// Put the password the client sent into the authentication error (a hostile host).
    pub echo_password: bool,
    /// Benchmark mode: read the body into a sink (no validation, nothing kept) and succeed.
    pub sink: bool,
    /// In sink mode, keep the body (in `State::body`).
    pub keep_body: bool,
    /// `software_version["xapi"]` of the master (default: `24.39`, with `xapi_build` 24.39.1).
    pub xapi_version: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Task {
    pub label: String,
    pub status: String,
    pub progress: f64,
    pub result: String,
    pub error: Vec<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Vm {
    pub uuid: String,
    pub name: String,
    pub import_task: String,
    pub vdis: Vec<String>,
}

#[derive(Debug, Default)]
pub struct State {
    pub faults: Faults,
    pub sessions_opened: usize,
    pub sessions: Vec<String>,
    pub tasks: BTreeMap<String, Task>,
    pub vms: BTreeMap<String, Vm>,
    /// VDI ref → (name, content).
    pub vdis: BTreeMap<String, (String, Vec<u8>)>,
    /// Every request line and header block seen on `PUT /import`.
    pub import_heads: Vec<String>,
    /// Every XML-RPC method called, in order (no parameters: they hold the password).
    pub calls: Vec<String>,
    /// Every password sent at login.
    pub passwords: Vec<String>,
    pub imports: usize,
    pub started_vms: Vec<String>,
    pub last_import_violations: Vec<String>,
    /// Body bytes read in sink mode.
    pub sunk_bytes: u64,
    /// The body, in sink mode with `keep_body`.
    pub body: Vec<u8>,
    /// The `ova.xml` of every import that got that far, in order.
    pub ova_xml: Vec<String>,
    counter: u64,
}

impl State {
    fn fresh(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("OpaqueRef:{kind}-{:04}", self.counter)
    }
}

/// The running server.
pub struct FakeXapi {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    /// DER of the TLS certificate, when serving TLS.
    pub cert_der: Option<Vec<u8>>,
    done: Arc<(Mutex<bool>, Condvar)>,
}

pub const SR_REF: &str = "OpaqueRef:sr-local";
pub const SR_UUID: &str = "0bd07c9e-4c33-4f0a-8e7e-0a5c4a4b3e0e";
pub const SR_NAME: &str = "Local storage";
pub const ISO_SR_REF: &str = "OpaqueRef:sr-iso";
pub const NET_REF: &str = "OpaqueRef:net-mgmt";
pub const NET_NAME: &str = "Pool-wide network associated with eth0";

impl FakeXapi {
    /// Plain HTTP.
    pub fn start(faults: Faults) -> FakeXapi {
        Self::start_inner(faults, None)
    }

    /// TLS with a freshly generated self-signed certificate.
    pub fn start_tls(faults: Faults) -> FakeXapi {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let der = ck.cert.der().to_vec();
        let key = PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(der.clone())], key)
            .unwrap();
        Self::start_inner(faults, Some((Arc::new(config), der)))
    }

    fn start_inner(faults: Faults, tls: Option<(Arc<ServerConfig>, Vec<u8>)>) -> FakeXapi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State { faults, ..State::default() }));
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let st = state.clone();
        let config = tls.as_ref().map(|(c, _)| c.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(tcp) = conn else { continue };
                let st = st.clone();
                let config = config.clone();
                std::thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(Duration::from_secs(60)));
                    let raw = tcp.try_clone().unwrap();
                    match config {
                        Some(c) => {
                            let Ok(conn) = ServerConnection::new(c) else { return };
                            let mut s = StreamOwned::new(conn, tcp);
                            let _ = serve(&mut s, &raw, port, &st);
                        }
                        None => {
                            let mut s = tcp;
                            let _ = serve(&mut s, &raw, port, &st);
                        }
                    }
                });
            }
        });
        FakeXapi { port, state, cert_der: tls.map(|(_, d)| d), done }
    }

    /// `127.0.0.1:port` (the member when faults redirect).
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The certificate's fingerprint as `SHA256:AB:…`.
    pub fn fingerprint(&self) -> String {
        let d: [u8; 32] = sha2::Sha256::digest(self.cert_der.as_ref().unwrap()).into();
        let hex: Vec<String> = d.iter().map(|b| format!("{b:02X}")).collect();
        format!("SHA256:{}", hex.join(":"))
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

// ---------------------------------------------------------------------------------------------

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    head_text: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    /// "member" or "master", from the Host header.
    fn on_master(&self) -> bool {
        self.header("host").is_some_and(|h| h.starts_with("localhost"))
    }
}

fn read_request(s: &mut impl Read) -> io::Result<Request> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 || buf.len() > 65536 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no request"));
        }
        buf.push(b[0]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Request { method, path, headers, head_text: text })
}

fn respond(s: &mut impl Write, status: &str, headers: &[(&str, String)], body: &[u8]) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    s.flush()
}

fn serve<S: Read + Write>(s: &mut S, raw: &TcpStream, port: u16, st: &Mutex<State>) -> io::Result<()> {
    let req = read_request(s)?;
    match (req.method.as_str(), req.path.split('?').next().unwrap_or_default()) {
        ("POST", "/") | ("POST", "/RPC2") => {
            let len: usize = req.header("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
            let mut body = vec![0u8; len.min(300 * 1024)];
            s.read_exact(&mut body)?;
            let answer = match parse_method_call(&body) {
                Ok((method, params)) => rpc(&req, &method, &params, st),
                Err(e) => failure_response(&XapiError::new("XMLRPC_UNMARSHAL_FAILURE", [e.to_string()])),
            };
            respond(s, "200 OK", &[("Content-Type", "text/xml".into())], answer.as_bytes())
        }
        ("PUT", "/import") => import(s, raw, port, &req, st),
        _ => respond(s, "404 Not Found", &[], b""),
    }
}

fn ok(v: Value) -> String {
    success_response(v)
}

fn fail(code: &str, params: &[&str]) -> String {
    failure_response(&XapiError::new(code, params.iter().copied()))
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn rpc(req: &Request, method: &str, params: &[Value], st: &Mutex<State>) -> String {
    let mut g = st.lock().unwrap();
    g.calls.push(method.to_string());
    let arg = |i: usize| params.get(i).map(s).unwrap_or_default();
    if method == "session.login_with_password" {
        let (user, pw) = (arg(0), arg(1));
        g.passwords.push(pw.clone());
        if g.faults.host_is_slave && !req.on_master() {
            return fail("HOST_IS_SLAVE", &["localhost"]);
        }
        if user != USER || pw != PASSWORD {
            let shown = if g.faults.echo_password { pw } else { "Authentication failure".into() };
            return fail("SESSION_AUTHENTICATION_FAILED", &[&user, &shown]);
        }
        let r = g.fresh("session");
        g.sessions.push(r.clone());
        g.sessions_opened += 1;
        return ok(Value::str(r));
    }
    let session = arg(0);
    if !g.sessions.contains(&session) {
        return fail("SESSION_INVALID", &[&session]);
    }
    let a1 = arg(1);
    match method {
        "session.logout" => {
            g.sessions.retain(|x| *x != session);
            ok(Value::str(""))
        }
        "pool.get_all" => ok(Value::refs(["OpaqueRef:pool"])),
        "pool.get_default_SR" => ok(Value::str(if g.faults.no_default_sr { "OpaqueRef:NULL" } else { SR_REF })),
        "pool.get_master" => ok(Value::str("OpaqueRef:host-master")),
        "host.get_software_version" if a1 == "OpaqueRef:host-master" => ok(match &g.faults.xapi_version {
            Some(v) => Value::string_map([("xapi", v.as_str()), ("product_brand", "XenServer")]),
            None => Value::string_map([("xapi", "24.39"), ("xapi_build", "24.39.1"), ("product_brand", "XCP-ng")]),
        }),
        "host.get_software_version" => fail("HANDLE_INVALID", &["host", &a1]),
        "host.get_PIFs" => ok(Value::refs(["OpaqueRef:pif-eth1", "OpaqueRef:pif-eth0"])),
        "PIF.get_management" => ok(Value::Bool(a1 == "OpaqueRef:pif-eth0")),
        "PIF.get_network" => ok(Value::str(NET_REF)),
        "network.get_name_label" => ok(Value::str(NET_NAME)),
        "network.get_bridge" => ok(Value::str("xenbr0")),
        "network.get_by_name_label" => ok(Value::refs(if a1 == NET_NAME { vec![NET_REF] } else { vec![] })),
        "SR.get_by_uuid" if a1 == SR_UUID => ok(Value::str(SR_REF)),
        "SR.get_by_uuid" => fail("UUID_INVALID", &["SR", &a1]),
        "SR.get_by_name_label" => ok(Value::refs(match a1.as_str() {
            SR_NAME => vec![SR_REF],
            "ISO library" => vec![ISO_SR_REF],
            _ => vec![],
        })),
        "SR.get_uuid" => ok(Value::str(if a1 == SR_REF { SR_UUID } else { "6c1c2b0e-0000-0000-0000-000000000000" })),
        "SR.get_name_label" => ok(Value::str(if a1 == SR_REF { SR_NAME } else { "ISO library" })),
        "SR.get_content_type" => ok(Value::str(if a1 == SR_REF { "user" } else { "iso" })),
        "task.create" => {
            let r = g.fresh("task");
            g.tasks.insert(r.clone(), Task { label: a1, status: "pending".into(), ..Task::default() });
            ok(Value::str(r))
        }
        "task.get_status"
        | "task.get_progress"
        | "task.get_result"
        | "task.get_error_info"
        | "task.cancel"
        | "task.destroy" => {
            let Some(t) = g.tasks.get_mut(&a1) else { return fail("HANDLE_INVALID", &["task", &a1]) };
            match method {
                "task.get_status" => ok(Value::str(&t.status)),
                "task.get_progress" => ok(Value::Double(t.progress)),
                "task.get_result" => ok(Value::str(&t.result)),
                "task.get_error_info" => ok(Value::refs(t.error.clone())),
                "task.cancel" => {
                    if t.status == "pending" {
                        t.status = "cancelled".into();
                    }
                    ok(Value::str(""))
                }
                _ => {
                    g.tasks.remove(&a1);
                    ok(Value::str(""))
                }
            }
        }
        "VM.get_uuid" => match g.vms.get(&a1) {
            Some(vm) => ok(Value::str(&vm.uuid)),
            None => fail("HANDLE_INVALID", &["VM", &a1]),
        },
        "VM.start" => {
            g.started_vms.push(a1);
            ok(Value::str(""))
        }
        "VM.get_all_records" => ok(Value::Struct(
            g.vms
                .iter()
                .map(|(r, vm)| {
                    (
                        r.clone(),
                        Value::record([
                            ("uuid", Value::str(&vm.uuid)),
                            ("name_label", Value::str(&vm.name)),
                            ("other_config", Value::string_map([("import_task", vm.import_task.as_str())])),
                        ]),
                    )
                })
                .collect(),
        )),
        "VM.get_VBDs" => match g.vms.get(&a1) {
            Some(vm) => ok(Value::refs(vm.vdis.iter().map(|v| v.replace("vdi", "vbd")))),
            None => fail("HANDLE_INVALID", &["VM", &a1]),
        },
        "VBD.get_type" => ok(Value::str("Disk")),
        "VBD.get_VDI" => ok(Value::str(a1.replace("vbd", "vdi"))),
        "VM.destroy" => {
            g.vms.remove(&a1);
            ok(Value::str(""))
        }
        "VDI.destroy" => {
            g.vdis.remove(&a1);
            ok(Value::str(""))
        }
        _ => fail("MESSAGE_METHOD_UNKNOWN", &[method]),
    }
}

fn query(path: &str, key: &str) -> Option<String> {
    let q = path.split_once('?')?.1;
    q.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v.replace("%3A", ":"))
}

/// Rebuilds disks from the validator's callbacks.
struct Rebuild {
    disks: Vec<(String, Vec<u8>)>,
    remaining: usize,
    stop_after_last: bool,
}

impl ImportVisitor for Rebuild {
    fn begin_disk(&mut self, _disk: usize, vdi: &StreamedVdi) -> io::Result<()> {
        self.disks.push((vdi.id.clone(), vec![0u8; vdi.virtual_size as usize]));
        Ok(())
    }
    fn range(&mut self, range: DiskRange<'_>) -> io::Result<()> {
        if let DiskRange::Data { disk, offset, bytes } = range {
            let d = &mut self.disks[disk].1;
            let start = (offset as usize).min(d.len());
            let end = (start + bytes.len()).min(d.len());
            d[start..end].copy_from_slice(&bytes[..end - start]);
        }
        Ok(())
    }
    fn end_disk(&mut self, _disk: usize, _written: u64) -> io::Result<()> {
        self.remaining = self.remaining.saturating_sub(1);
        if self.remaining == 0 && self.stop_after_last {
            return Err(io::Error::other("all disks read; xapi stops reading here"));
        }
        Ok(())
    }
}

/// The body as the server reads it: fault injection between the socket and the validator.
struct Body<'a, S: Read> {
    inner: &'a mut S,
    pos: u64,
    corrupt_at: Option<u64>,
    drop_at: Option<u64>,
    slow: Option<Duration>,
    next_nap: u64,
    /// The first bytes read (ova.xml is the first member).
    head: Vec<u8>,
}

impl<S: Read> Read for Body<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut want = buf.len().min(64 * 1024);
        if let Some(d) = self.drop_at {
            if self.pos >= d {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "dropped by the fault switch"));
            }
            want = want.min((d - self.pos) as usize);
        }
        if let Some(nap) = self.slow {
            if self.pos >= self.next_nap {
                std::thread::sleep(nap);
                self.next_nap += 256 * 1024;
            }
        }
        let n = self.inner.read(&mut buf[..want])?;
        if let Some(c) = self.corrupt_at {
            if c >= self.pos && c < self.pos + n as u64 {
                buf[(c - self.pos) as usize] ^= 0xFF;
            }
        }
        let keep = n.min(HEAD_BYTES.saturating_sub(self.head.len()));
        self.head.extend_from_slice(&buf[..keep]);
        self.pos += n as u64;
        Ok(n)
    }
}

fn import<S: Read + Write>(s: &mut S, raw: &TcpStream, port: u16, req: &Request, st: &Mutex<State>) -> io::Result<()> {
    let (faults, session_ok, task) = {
        let mut g = st.lock().unwrap();
        g.import_heads.push(req.head_text.clone());
        let session = query(&req.path, "session_id").unwrap_or_default();
        let task = query(&req.path, "task_id").unwrap_or_default();
        (g.faults.clone(), g.sessions.contains(&session), task)
    };
    if !session_ok {
        return respond(s, "401 Unauthorized", &[("WWW-Authenticate", "Basic realm=\"VM.import\"".into())], b"");
    }
    let set_task = |status: &str, error: Vec<String>, result: String| {
        let mut g = st.lock().unwrap();
        if let Some(t) = g.tasks.get_mut(&task) {
            t.status = status.into();
            t.error = error;
            t.result = result;
            t.progress = 1.0;
        }
    };
    if req.header("transfer-encoding").is_some() {
        set_task("failure", vec!["IMPORT_ERROR_CANNOT_HANDLE_CHUNKED".into()], String::new());
        return respond(s, "403 Forbidden", &[], b"");
    }
    if req.header("expect").is_some() {
        // xapi never answers 100; a client waiting for it would hang. Record it as a failure.
        set_task("failure", vec!["IMPORT_ERROR".into(), "client sent Expect".into()], String::new());
        return respond(s, "417 Expectation Failed", &[], b"");
    }
    if faults.redirect && !req.on_master() {
        let location = format!("http://localhost:{port}{}", req.path);
        return respond(s, "302 Found", &[("Location", location)], b"");
    }
    // xapi's answer, before a byte of the body is read.
    let head = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nCache-Control: no-cache, no-store\r\ntask-id: {task}\r\n\
         content-type: application/octet-stream\r\n\r\n"
    );
    s.write_all(head.as_bytes())?;
    s.flush()?;

    let nth = {
        let mut g = st.lock().unwrap();
        g.imports += 1;
        g.imports
    };
    if faults.sink {
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n as u64;
                    if faults.keep_body {
                        st.lock().unwrap().body.extend_from_slice(&buf[..n]);
                    }
                }
            }
        }
        st.lock().unwrap().sunk_bytes = total;
        finish_ok(st, &task, &["sink".to_string()], Vec::new());
        return Ok(());
    }
    let drop_at = faults.drop_after.filter(|_| nth <= faults.drop_times);
    let mut body = Body {
        inner: s,
        pos: 0,
        corrupt_at: faults.corrupt.then_some(512 * 1024),
        drop_at,
        slow: faults.slow,
        next_nap: 0,
        head: Vec::new(),
    };
    let stop = faults.close_after_disks;
    let mut rebuild = Rebuild { disks: Vec::new(), remaining: stop, stop_after_last: stop > 0 };
    let report = verify_with_visitor(&mut body, &VerifyOptions { compute_sha256: false }, &mut rebuild);
    let reset = |raw: &TcpStream| {
        // SO_LINGER 0: the close resets the connection, as a dropped link or an early close does.
        let _ = set_linger_zero(raw);
        let _ = raw.shutdown(Shutdown::Both);
    };
    let all_read = stop > 0 && rebuild.remaining == 0;
    if let Some(xml) = first_member(&body.head, "ova.xml") {
        st.lock().unwrap().ova_xml.push(String::from_utf8_lossy(xml).into_owned());
    }
    match report {
        Ok(rep) if rep.is_ok() && !faults.fail_after_body => {
            finish_ok(st, &task, &rep.vm_names, rebuild.disks);
            Ok(())
        }
        Ok(rep) if rep.is_ok() => {
            // Leave a VM behind and fail: the client must clean up.
            let vm = finish_ok(st, &task, &rep.vm_names, rebuild.disks);
            let mut g = st.lock().unwrap();
            g.vms.get_mut(&vm).unwrap().import_task = task.clone();
            let t = g.tasks.get_mut(&task).unwrap();
            t.status = "failure".into();
            t.result.clear();
            t.error = vec!["IMPORT_ERROR".into(), "Field suspend_VDI not present in rpc".into()];
            Ok(())
        }
        Ok(rep) => {
            let first = rep.violations.iter().find(|f| f.severity != Severity::Warning).map(|f| f.to_string());
            let msgs: Vec<String> = rep.violations.iter().map(|f| f.to_string()).collect();
            st.lock().unwrap().last_import_violations = msgs;
            set_task("failure", vec!["IMPORT_ERROR".into(), first.unwrap_or_default()], String::new());
            reset(raw);
            Ok(())
        }
        Err(_) if all_read => {
            reset(raw);
            finish_ok(st, &task, &["streamed".to_string()], rebuild.disks);
            Ok(())
        }
        Err(e) => {
            set_task("failure", vec!["IMPORT_ERROR_PREMATURE_EOF".into(), e.to_string()], String::new());
            reset(raw);
            Ok(())
        }
    }
}

/// How much of the body is kept to find ova.xml in.
const HEAD_BYTES: usize = 1 << 20;

/// The data of the tar's first member if it is called `name` and lies within `tar`.
fn first_member<'a>(tar: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let header = tar.get(..512)?;
    let end = header[..100].iter().position(|&b| b == 0).unwrap_or(100);
    if &header[..end] != name.as_bytes() {
        return None;
    }
    let size = std::str::from_utf8(&header[124..136]).ok()?.trim_matches(|c: char| c == '\0' || c == ' ');
    let size = usize::from_str_radix(size, 8).ok()?;
    tar.get(512..512 + size)
}

/// The member `field` of the VM object's snapshot in an `ova.xml`, as text.
pub fn vm_field(ova_xml: &str, field: &str) -> Option<String> {
    let doc = xva::xmlrpc::parse::parse_str(ova_xml).ok()?.value;
    let Some(Value::Array(objects)) = doc.get("objects") else { return None };
    let vm = objects.iter().find(|o| o.get("class").and_then(Value::as_str) == Some("VM"))?;
    vm.get("snapshot")?.get(field)?.as_str().map(str::to_string)
}

fn finish_ok(st: &Mutex<State>, task: &str, names: &[String], disks: Vec<(String, Vec<u8>)>) -> String {
    let mut g = st.lock().unwrap();
    let vm = g.fresh("vm");
    let mut vdis = Vec::new();
    for (id, content) in disks {
        let r = g.fresh("vdi");
        g.vdis.insert(r.clone(), (id, content));
        vdis.push(r);
    }
    let uuid = format!("a1b2c3d4-0000-4000-8000-{:012}", g.counter);
    let name = names.first().cloned().unwrap_or_default();
    g.vms.insert(vm.clone(), Vm { uuid, name, import_task: String::new(), vdis });
    if let Some(t) = g.tasks.get_mut(task) {
        t.status = "success".into();
        t.progress = 1.0;
        t.result = format!("<value><array><data><value>{vm}</value></data></array></value>");
    }
    vm
}

fn set_linger_zero(s: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a socket we hold, with a correctly sized linger struct.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
