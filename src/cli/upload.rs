//! `xva convert … --server HOST`: stream the XVA straight into a XenServer / XCP-ng host.
//!
//! ```text
//!   login (HOST_IS_SLAVE → master) → SR, network → task.create
//!     → PUT /import (200 before the body) → tar stream → poll the task
//!     → success + VM ref: print the VM's uuid   |   failure / Ctrl-C: cancel, destroy, report
//!   session.logout always (the session is a guard)
//! ```
//! Success is decided by the task only: xapi's HTTP 200 is sent before it reads the body
//! (`xva-format-and-xapi-import.md` §8.1). xva.py believed that 200; this does not.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args as ClapArgs;
use serde_json::json;

use xva::guest::load::map_path;
use xva::xapi::http::{is_cancelled, Endpoint, Scheme, Transport};
use xva::xapi::import::{self, Request};
use xva::xapi::kernel::{self, is_safe_remote_path, Remote};
use xva::xapi::lookup::Sr;
use xva::xapi::session::{Client, Secret, Session};
use xva::xapi::task::{result_refs, Status};
use xva::xapi::tls::{self, Fingerprint, Trust};
use xva::xapi::{self, full_message, XapiError};
use xva::xva::records::{self, DEFAULT_NETWORK};
use xva::xva::writer::{self, WriteError};

use super::convert::{write_options, Args, Prepared};
use super::exit::{coded, Exit};
use super::output::{human_bytes, sanitize};
use super::{progress, signals};

/// Environment variable holding the password.
pub const PASSWORD_ENV: &str = "XVA_PASSWORD";

/// Upload options (part of `xva convert`).
#[derive(ClapArgs, Debug, Clone, Default)]
#[command(next_help_heading = "Upload to a host (instead of -o)")]
pub struct UploadArgs {
    /// Stream the XVA into this XenServer / XCP-ng host instead of writing a file: HOST,
    /// HOST:PORT or https://HOST[:PORT] (http:// needs --allow-http). A pool member redirects to
    /// its master.
    #[arg(short = 's', long, value_name = "HOST[:PORT]", conflicts_with = "output")]
    pub server: Option<String>,

    /// User to log in as.
    #[arg(long, visible_alias = "username", default_value = "root", value_name = "USER")]
    pub user: String,

    /// Read the password from the first line of this file. Otherwise it comes from $XVA_PASSWORD
    /// or a prompt on the terminal.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// The password itself (xva.py's flag). Visible to every user of this machine (ps); prefer
    /// $XVA_PASSWORD, --password-file or the prompt.
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,

    /// SR to import into, by name or uuid (default: the pool's default SR).
    #[arg(long, value_name = "NAME|UUID")]
    pub sr: Option<String>,

    /// Keep the interfaces' MAC addresses (imports with restore=true; the XVA's UUIDs are fresh).
    #[arg(long)]
    pub restore_macs: bool,

    /// Start the VM once it is imported.
    #[arg(long)]
    pub start: bool,

    /// Retry a failed upload up to N times, each from the beginning (imports cannot resume).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub retry: u32,

    /// Trust the host's certificate by its SHA-256 fingerprint (SHA256:AB:CD:…), as hosts use
    /// self-signed certificates. On the host: `openssl x509 -noout -fingerprint -sha256 -in
    /// /etc/xensource/xapi-ssl.pem`. Repeatable.
    #[arg(long, value_name = "SHA256:…")]
    pub fingerprint: Vec<String>,

    /// Accept any certificate: the connection is encrypted but the host is not authenticated.
    #[arg(long, conflicts_with = "fingerprint")]
    pub insecure: bool,

    /// Allow plain http:// (password and disks travel unencrypted).
    #[arg(long)]
    pub allow_http: bool,

    /// xva.py's flag: plain HTTP on port 80 (implies --allow-http).
    #[arg(long)]
    pub no_ssl: bool,

    /// Direct-kernel PV guests (kernel= in a Xen config): copy the kernel and ramdisk (read here,
    /// after --path-map) to the host with ssh/scp, using your keys or agent (never the
    /// password), and point PV_kernel/PV_ramdisk at them. Without it the commands are printed.
    #[arg(long, requires = "server", conflicts_with = "output")]
    pub upload_kernel: bool,

    /// The host's guest-kernel directory; each VM gets a new subdirectory (default, from the
    /// host's xapi version: /var/lib/xcp/guest from 23.9 on, /boot/guest before).
    #[arg(long, value_name = "DIR", requires = "server", conflicts_with = "output")]
    pub kernel_dir: Option<String>,

    /// User for ssh/scp with --upload-kernel (default: --user).
    #[arg(long, value_name = "USER", requires = "server", conflicts_with = "output")]
    pub ssh_user: Option<String>,
}

/// What one import attempt ended with.
enum Attempt {
    /// The VM exists: its reference and uuid.
    Imported { vm: String, uuid: String, tar_bytes: u64, elapsed: Duration },
    /// Interrupted; cleanup done.
    Interrupted,
    /// Failed; `retry` says whether trying again can help.
    Failed { error: anyhow::Error, retry: bool },
}

/// Streams the prepared conversion into the host named by `--server`.
pub fn run(args: &Args, prepared: Prepared) -> anyhow::Result<Exit> {
    let up = &args.upload;
    let server = up.server.as_deref().unwrap_or_default();
    if args.output.is_some() {
        return Err(coded(Exit::Usage, "give either --output or --server, not both"));
    }
    if args.verify {
        return Err(coded(Exit::Usage, "--verify reads a written file back; it cannot be used with --server"));
    }
    let default_scheme = if up.no_ssl { Scheme::Http } else { Scheme::Https };
    let endpoint = Endpoint::parse(server, default_scheme).map_err(|e| coded(Exit::Usage, e))?;
    if endpoint.scheme == Scheme::Http && !(up.allow_http || up.no_ssl) {
        return Err(coded(
            Exit::Usage,
            format!("{endpoint} is plain HTTP: the password and the disks would travel unencrypted; add --allow-http if that is intended"),
        ));
    }
    if up.no_ssl && server.starts_with("https://") {
        return Err(coded(Exit::Usage, "--no-ssl contradicts an https:// server"));
    }
    if endpoint.scheme == Scheme::Http {
        eprintln!("xva: warning: using plain HTTP to {endpoint}; the password and the disks are not encrypted");
    }
    let trust = trust(up)?;
    let kernel = kernel_files(args, &prepared.vm)?;
    let password = password(up)?;
    let (tls, seen) = tls::client_config(trust).context("setting up TLS")?;
    let transport = Transport {
        tls,
        seen,
        connect_timeout: Duration::from_secs(30),
        stall_timeout: Duration::from_secs(stall_seconds()),
    };

    signals::install();
    let client = Client { transport, endpoint };
    let session = Session::login(client, &up.user, &password, &mut |master| {
        eprintln!("xva: {server} is a pool member; logging in to the pool master {master}");
    })
    .map_err(|e| host_error(e, "logging in"))?;
    drop(password);

    let sr = match &up.sr {
        Some(s) => session.find_sr(s).map_err(|e| host_error(e, "finding the SR"))?,
        None => session.default_sr().map_err(|e| host_error(e, "finding the pool's default SR"))?.ok_or_else(|| {
            coded(Exit::Host, "the pool has no default SR; name one with --sr NAME|UUID (`xe sr-list` shows them)")
        })?,
    };

    let mut vm = prepared.vm.clone();
    if !vm.vifs.is_empty() {
        let net = match args.network.as_deref() {
            None | Some(DEFAULT_NETWORK) => {
                session.management_network().map_err(|e| host_error(e, "finding the management network"))?
            }
            Some(name) => Some(session.find_network(name).map_err(|e| host_error(e, "finding the network"))?),
        };
        if let Some(net) = net {
            for v in &mut vm.vifs {
                v.network = net.name.clone();
                v.bridge = net.bridge.clone();
            }
        }
    }
    if up.restore_macs && vm.vifs.iter().all(|v| v.mac.is_none()) {
        eprintln!("xva: note: --restore-macs without --vif MAC: the interfaces get generated MACs anyway");
    }

    // Before the first byte is streamed: the record must name where the kernel will be.
    let placed = match &kernel {
        Some(files) => Some(place_kernel(up, &session, files, &mut vm)?),
        None => None,
    };
    match import_all(args, &prepared, &session, &sr, &vm) {
        Ok(Some(Attempt::Imported { vm: vm_ref, uuid, tar_bytes, elapsed })) => {
            finish(args, &session, &vm, &sr, &vm_ref, &uuid, tar_bytes, elapsed, placed.as_ref())
        }
        other => {
            // No VM: the copied kernel serves nothing.
            if let Some(p) = placed.as_ref().filter(|p| p.uploaded) {
                remove_kernel(p);
            }
            match other {
                Err(e) => Err(e),
                _ => Ok(Exit::Interrupted),
            }
        }
    }
}

/// The import, retried as `--retry` says: `Some(Imported)`, `None` when interrupted, or the
/// last attempt's error.
fn import_all(
    args: &Args,
    prepared: &Prepared,
    session: &Session,
    sr: &Sr,
    vm: &records::VmSpec,
) -> anyhow::Result<Option<Attempt>> {
    let attempts = args.upload.retry.saturating_add(1);
    let mut last = None;
    for attempt in 1..=attempts {
        if attempt > 1 {
            eprintln!("xva: retrying the upload from the beginning (attempt {attempt} of {attempts})");
        }
        // Fresh UUIDs per attempt: a half-imported earlier attempt cannot collide with this one.
        let xml = records::ova_xml(vm).map_err(|e| coded(Exit::Usage, e.to_string()))?;
        match attempt_import(args, prepared, session, sr, &xml) {
            done @ Attempt::Imported { .. } => return Ok(Some(done)),
            Attempt::Interrupted => return Ok(None),
            Attempt::Failed { error, retry } => {
                if !retry || attempt == attempts {
                    return Err(error);
                }
                eprintln!("xva: {}", sanitize(&format!("{error:#}")));
                last = Some(error);
            }
        }
    }
    Err(last.unwrap_or_else(|| coded(Exit::Failure, "no import attempt was made")))
}

/// One file of a direct-kernel guest.
struct KernelFile {
    /// `kernel` or `ramdisk` (the config's setting).
    what: &'static str,
    /// The dom0 path the config names.
    written: String,
    /// Where it is read here (after `--path-map`), absolute.
    local: PathBuf,
    /// Whether `local` exists.
    present: bool,
    /// File name on the host.
    name: &'static str,
}

/// Where a direct-kernel guest's files went (or must go) on the host.
struct Placed {
    remote: Remote,
    dir: String,
    files: Vec<PlacedFile>,
    uploaded: bool,
}

struct PlacedFile {
    remote: String,
}

/// The kernel and ramdisk of a direct-kernel PV guest, resolved as the guest loader resolves
/// disks: the longest `--path-map` prefix, else the path itself when absolute, else relative to
/// the config's directory. `None` for every other guest. With `--upload-kernel` the files must
/// be readable; `--kernel-dir` is checked here too (before any connection).
fn kernel_files(args: &Args, vm: &records::VmSpec) -> anyhow::Result<Option<Vec<KernelFile>>> {
    let up = &args.upload;
    if let Some(d) = &up.kernel_dir {
        if !is_safe_remote_path(d.trim_end_matches('/')) {
            return Err(coded(
                Exit::Usage,
                format!(
                    "--kernel-dir {d:?}: give an absolute directory made of letters, digits and . _ + - \
                     (for example {} or {})",
                    kernel::CURRENT_DIR,
                    kernel::OLD_DIR
                ),
            ));
        }
    }
    let records::Boot::Pv { bootloader, kernel, ramdisk, .. } = &vm.boot else {
        if up.upload_kernel {
            eprintln!("xva: note: --upload-kernel: this VM does not boot a kernel from the host; nothing to copy");
        }
        return Ok(None);
    };
    if !bootloader.is_empty() || kernel.is_empty() {
        if up.upload_kernel {
            eprintln!("xva: note: --upload-kernel: this VM boots through {bootloader}; nothing to copy");
        }
        return Ok(None);
    }
    let maps: Vec<(PathBuf, PathBuf)> =
        args.src.path_map.iter().map(|(a, b)| (PathBuf::from(a), PathBuf::from(b))).collect();
    let config_dir = args.source.as_ref().or(args.config.as_ref()).and_then(|p| p.parent()).map(PathBuf::from);
    let mut files = Vec::new();
    for (what, written, name) in [("kernel", kernel, kernel::KERNEL_NAME), ("ramdisk", ramdisk, kernel::RAMDISK_NAME)] {
        if written.is_empty() {
            continue;
        }
        let (mapped, was_mapped) = map_path(Path::new(written), &maps);
        let resolved = if was_mapped || mapped.is_absolute() {
            mapped
        } else {
            config_dir.clone().unwrap_or_default().join(mapped)
        };
        let local = std::path::absolute(&resolved).unwrap_or(resolved);
        let readable = std::fs::File::open(&local).and_then(|f| f.metadata()).map(|m| m.is_file());
        if up.upload_kernel && !matches!(readable, Ok(true)) {
            let why = match readable {
                Ok(_) => "not a regular file".to_string(),
                Err(e) => e.to_string(),
            };
            let hint = match Path::new(written).parent() {
                Some(d) if !was_mapped => {
                    format!("; copy it from the source dom0 and name where with --path-map {}=DIR", d.display())
                }
                _ => String::new(),
            };
            return Err(coded(
                Exit::Input,
                format!("cannot read the {what} {} ({what} = {written:?} in the config): {why}{hint}", local.display()),
            ));
        }
        files.push(KernelFile { what, written: written.clone(), present: matches!(readable, Ok(true)), local, name });
    }
    Ok(Some(files))
}

/// Decides the host directory, points `PV_kernel`/`PV_ramdisk` at it, and copies the files
/// (`--upload-kernel`) or prints the commands that do.
fn place_kernel(
    up: &UploadArgs,
    session: &Session,
    files: &[KernelFile],
    vm: &mut records::VmSpec,
) -> anyhow::Result<Placed> {
    let version = match session.xapi_version() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("xva: warning: cannot read the host's xapi version: {}", sanitize(&full_message(&e)));
            None
        }
    };
    let base = match (&up.kernel_dir, version) {
        (Some(d), _) => d.trim_end_matches('/').to_string(),
        (None, Some(v)) => v.kernel_dir().to_string(),
        (None, None) => {
            eprintln!(
                "xva: warning: the host's xapi version is unknown; using {} (xapi 23.9 and later); \
                 pass --kernel-dir {} for Citrix Hypervisor 8.2, XCP-ng 8.2 and older",
                kernel::CURRENT_DIR,
                kernel::OLD_DIR
            );
            kernel::CURRENT_DIR.to_string()
        }
    };
    if let Some(v) = version.filter(|v| base != v.kernel_dir()) {
        eprintln!("xva: warning: --kernel-dir {base}: xapi {v} boots direct kernels only from {}/", v.kernel_dir());
    }
    let dir = format!("{base}/{}", uuid::Uuid::new_v4());
    let placed_files: Vec<PlacedFile> =
        files.iter().map(|f| PlacedFile { remote: format!("{dir}/{}", f.name) }).collect();
    if let records::Boot::Pv { kernel: k, ramdisk: r, .. } = &mut vm.boot {
        for (f, p) in files.iter().zip(&placed_files) {
            match f.what {
                "kernel" => *k = p.remote.clone(),
                _ => *r = p.remote.clone(),
            }
        }
    }
    let remote = Remote {
        user: up.ssh_user.clone().unwrap_or_else(|| up.user.clone()),
        host: session.endpoint().host.clone(),
        scrub_env: vec![PASSWORD_ENV.to_string()],
    };
    let mkdir = remote.ssh(&["mkdir", "-p", &dir]);
    let copies: Vec<kernel::Cmd> =
        files.iter().zip(&placed_files).map(|(f, p)| remote.scp(&f.local, &p.remote)).collect();
    let mut placed = Placed { remote, dir, files: placed_files, uploaded: false };
    let pv_note = match version {
        Some(v) if !v.runs_pv() => {
            format!("this host (xapi {v}: XenServer 8 / XCP-ng 8.3) cannot start PV guests at all")
        }
        _ => "current XenServer 8 and XCP-ng 8.3 cannot start PV guests at all".to_string(),
    };
    let pv_note = format!(
        "xva: warning: {pv_note}; if the guest disk has its own kernel and bootloader, convert with --hvm instead"
    );
    if !up.upload_kernel {
        let mut text = format!(
            "xva: this VM boots a kernel stored on the host (direct kernel boot); its PV_kernel{} \
             point{} into {}/. Copy the files there before starting the VM (or rerun with \
             --upload-kernel):\n    {}",
            if files.len() > 1 { " and PV_ramdisk" } else { "" },
            if files.len() > 1 { "" } else { "s" },
            placed.dir,
            mkdir.shown
        );
        for (f, c) in files.iter().zip(&copies) {
            text.push_str(&format!("\n    {}", c.shown));
            if !f.present {
                text.push_str(&format!(
                    "    # not found here: the {what} {:?} of the source dom0 (--path-map OLD=NEW)",
                    f.written,
                    what = f.what
                ));
            }
        }
        text.push_str("\n  Every pool member that may start the VM needs the same files.");
        eprintln!("{}", sanitize(&text));
        eprintln!("{pv_note}");
        return Ok(placed);
    }
    let step = |c: &kernel::Cmd| placed.remote.run(c);
    let result = step(&mkdir).and_then(|()| copies.iter().try_for_each(step));
    if let Err(e) = result {
        if signals::CANCEL.load(Ordering::Relaxed) {
            remove_kernel(&placed);
            return Err(coded(Exit::Interrupted, "interrupted while copying the kernel; nothing was imported"));
        }
        remove_kernel(&placed);
        return Err(coded(
            Exit::Host,
            format!(
                "copying the kernel to {} failed: {}\n  nothing was imported. ssh and scp run without a \
                 password (BatchMode): they need your key or agent and the host in known_hosts \
                 (--ssh-user USER logs in as another user); or copy the files yourself, as printed \
                 without --upload-kernel",
                placed.remote.destination(),
                sanitize(&e)
            ),
        ));
    }
    placed.uploaded = true;
    eprintln!(
        "xva: copied the {} to {}:{}/; every other pool member that may start the VM needs the same files",
        files.iter().map(|f| f.what).collect::<Vec<_>>().join(" and "),
        placed.remote.destination(),
        placed.dir
    );
    eprintln!("{pv_note}");
    Ok(placed)
}

/// Removes what `place_kernel` copied (best effort; says what it could not remove).
fn remove_kernel(p: &Placed) {
    let mut words = vec!["rm", "-f"];
    words.extend(p.files.iter().map(|f| f.remote.as_str()));
    words.extend(["&&", "rmdir", p.dir.as_str()]);
    if let Err(e) = p.remote.run(&p.remote.ssh(&words)) {
        eprintln!(
            "xva: warning: could not remove {}:{}/ from the host: {}",
            p.remote.destination(),
            p.dir,
            sanitize(&e)
        );
    }
}

/// Seconds the host may stall a read or write (default 300; `XVA_STALL_TIMEOUT` for tests).
fn stall_seconds() -> u64 {
    std::env::var("XVA_STALL_TIMEOUT").ok().and_then(|s| s.parse().ok()).filter(|&s| s > 0).unwrap_or(300)
}

fn trust(up: &UploadArgs) -> anyhow::Result<Trust> {
    if up.insecure {
        eprintln!(
            "xva: WARNING: --insecure: the host's certificate is not checked; anyone on the path can \
             impersonate it and read the password. Prefer --fingerprint."
        );
        return Ok(Trust::Insecure);
    }
    if up.fingerprint.is_empty() {
        return Ok(Trust::System);
    }
    let pins = up
        .fingerprint
        .iter()
        .map(|f| Fingerprint::parse(f).map_err(|e| coded(Exit::Usage, e)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Trust::Pinned(pins))
}

/// The password from --password (warned), $XVA_PASSWORD, --password-file, or a prompt.
fn password(up: &UploadArgs) -> anyhow::Result<Secret> {
    if let Some(p) = &up.password {
        eprintln!(
            "xva: warning: --password is visible to other users of this machine (ps, /proc); \
             use ${PASSWORD_ENV}, --password-file or the prompt instead"
        );
        return Ok(Secret::new(p.clone()));
    }
    if let Some(path) = &up.password_file {
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
            .map_err(|e| coded(Exit::Usage, format!("cannot read the password file {}: {e}", path.display())))?;
        let line = text.lines().next().unwrap_or_default();
        return Ok(Secret::new(line.to_string()));
    }
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(Secret::new(p));
    }
    if std::io::stdin().is_terminal() {
        if let Some(p) = prompt(&format!("Password for {}: ", up.user))? {
            return Ok(Secret::new(p));
        }
    }
    Err(coded(
        Exit::Usage,
        format!("no password: set ${PASSWORD_ENV}, pass --password-file FILE, or run on a terminal to be asked"),
    ))
}

/// Reads a line from the controlling terminal with echo off.
fn prompt(text: &str) -> anyhow::Result<Option<String>> {
    use std::os::fd::AsRawFd;
    let Ok(mut tty) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty") else {
        return Ok(None);
    };
    let fd = tty.as_raw_fd();
    // SAFETY: tcgetattr fills a zeroed termios we own for a terminal fd we hold open.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            return Ok(None);
        }
        t
    };
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    tty.write_all(text.as_bytes())?;
    // SAFETY: sets attributes of the same fd from a termios derived from its own.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let result = loop {
        match tty.read(&mut byte) {
            Ok(0) => break Ok(()),
            Ok(_) if byte[0] == b'\n' => break Ok(()),
            Ok(_) if line.len() < 4096 => line.push(byte[0]),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => break Err(e),
            Err(e) => break Err(e),
        }
    };
    // SAFETY: restores the attributes read above on the same fd.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    result?;
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// An xapi-module error as an exit-coded error with a helpful message.
fn host_error(e: xapi::Error, doing: &str) -> anyhow::Error {
    let msg = match &e {
        xapi::Error::Untrusted { fingerprint, .. } => format!(
            "{doing}: {}\n  check it on the host with `openssl x509 -noout -fingerprint -sha256 -in \
             /etc/xensource/xapi-ssl.pem`, then pass --fingerprint {fingerprint}",
            full_message(&e)
        ),
        xapi::Error::Xapi { error, .. } if error.code == "SESSION_AUTHENTICATION_FAILED" => {
            format!("{doing}: the host refused the user name or password ({error})")
        }
        xapi::Error::Cancelled => return coded(Exit::Interrupted, "interrupted"),
        _ => format!("{doing}: {}", full_message(&e)),
    };
    coded(Exit::Host, msg)
}

/// One full try: task, PUT, body, task result. Cleans up after itself on failure.
fn attempt_import(args: &Args, prepared: &Prepared, session: &Session, sr: &Sr, xml: &str) -> Attempt {
    let failed = |error, retry| Attempt::Failed { error, retry };
    let label = format!("xva import {}", prepared.vm.name);
    let task = match session.task_create(&label, "streamed by xva") {
        Ok(t) => t,
        Err(e) => return failed(host_error(e, "creating the import task"), false),
    };
    let req = Request { task: &task, sr: Some(&sr.reference), restore: args.upload.restore_macs, content_length: None };
    let mut upload = match import::start(session, &req, Some(&signals::CANCEL)) {
        Ok(u) => u,
        Err(e) => {
            let retry = matches!(e, xapi::Error::Io { .. } | xapi::Error::Connect { .. });
            let left = cleanup(session, &task, false);
            if signals::CANCEL.load(Ordering::Relaxed) {
                report_left("interrupted", &left);
                return Attempt::Interrupted;
            }
            return failed(with_left(host_error(e, "starting the import"), &left), retry);
        }
    };
    if upload.endpoint != *session.endpoint() {
        eprintln!("xva: the host redirected the import to {} (the host that sees the SR)", upload.endpoint);
    }

    let sources = prepared.sources();
    let total = prepared.total_size();
    let bar = progress::Bar::new(total, !args.json, "uploading");
    let opts = write_options(args);
    let started = Instant::now();
    let written = writer::write_xva(&mut upload, xml, &sources, &opts, &|done| bar.set(done));
    bar.finish();
    let body_error = match written {
        Ok(summary) => {
            // The host may already have closed: it stops reading after the last chunk.
            let _ = upload.finish();
            let status = wait(session, &task, None, !args.json);
            return conclude(session, &task, status, None, summary.tar_bytes, started.elapsed());
        }
        Err(WriteError::Cancelled) => None,
        Err(WriteError::Write(e)) if is_cancelled(&e) => None,
        Err(WriteError::Read { disk, source }) => {
            drop(upload);
            let left = cleanup(session, &task, true);
            let e = anyhow::Error::new(source)
                .context(format!("reading disk {}", prepared.labels[disk]))
                .context(coded(Exit::Input, "the upload was abandoned"));
            return failed(with_left(e, &left), false);
        }
        Err(WriteError::Invalid(m)) => {
            drop(upload);
            let left = cleanup(session, &task, true);
            return failed(with_left(coded(Exit::Usage, m), &left), false);
        }
        Err(WriteError::Write(e)) => Some(e),
    };
    drop(upload);
    let Some(io_error) = body_error else {
        let left = cleanup(session, &task, true);
        report_left("interrupted", &left);
        return Attempt::Interrupted;
    };
    // The body broke off. The task says why (or, if xapi had everything, that it worked).
    let status = wait(session, &task, Some(Duration::from_secs(30)), false);
    conclude(session, &task, status, Some(io_error), 0, started.elapsed())
}

/// Polls the task, drawing the host's progress on a terminal.
fn wait(session: &Session, task: &str, limit: Option<Duration>, show: bool) -> Result<Status, xapi::Error> {
    let draw = show && std::io::stderr().is_terminal();
    let mut last = -1i64;
    let r = session.task_wait(task, poll_interval(), limit, Some(&signals::CANCEL), &mut |p| {
        let pct = (p * 100.0) as i64;
        if draw && pct != last {
            eprint!("\rxva: the host is importing: {pct:3}%");
            last = pct;
        }
    });
    if draw && last >= 0 {
        eprint!("\r\x1b[K");
    }
    r
}

fn poll_interval() -> Duration {
    let ms = std::env::var("XVA_POLL_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000u64);
    Duration::from_millis(ms.clamp(10, 10_000))
}

/// Decides an attempt from the task's final state.
fn conclude(
    session: &Session,
    task: &str,
    status: Result<Status, xapi::Error>,
    io_error: Option<std::io::Error>,
    tar_bytes: u64,
    elapsed: Duration,
) -> Attempt {
    let broke = |e: &std::io::Error| format!("the connection broke during the upload ({e})");
    match status {
        Ok(Status::Success) => {
            let refs = session.task_result(task).map(|r| result_refs(&r)).unwrap_or_default();
            let Some(vm) = refs.into_iter().next() else {
                let left = cleanup(session, task, true);
                return Attempt::Failed {
                    error: with_left(coded(Exit::Host, "the import task succeeded but names no VM"), &left),
                    retry: false,
                };
            };
            let _ = session.task_destroy(task);
            match session.vm_uuid(&vm) {
                Ok(uuid) => Attempt::Imported { vm, uuid, tar_bytes, elapsed },
                Err(e) => Attempt::Failed { error: host_error(e, "reading the new VM's uuid"), retry: false },
            }
        }
        Ok(Status::Failure) => {
            let info = session.task_error_info(task).unwrap_or_default();
            let mut it = info.into_iter();
            let err = XapiError { code: it.next().unwrap_or_else(|| "UNKNOWN_ERROR".into()), params: it.collect() };
            let left = cleanup(session, task, true);
            let mut msg = format!("the host refused the import: {err}");
            if let Some(e) = &io_error {
                msg.push_str(&format!("\n  ({})", broke(e)));
            }
            let retry = !matches!(
                err.code.as_str(),
                "IMPORT_INCOMPATIBLE_VERSION"
                    | "SR_OPERATION_NOT_SUPPORTED"
                    | "RBAC_PERMISSION_DENIED"
                    | "SESSION_INVALID"
            );
            Attempt::Failed { error: with_left(coded(Exit::Host, msg), &left), retry }
        }
        Ok(other) => {
            let left = cleanup(session, task, true);
            let mut msg = match &other {
                Status::Pending => "the host did not finish the import".to_string(),
                s => format!("the import task ended as {s:?}"),
            };
            if let Some(e) = &io_error {
                msg = format!("{}; {msg}", broke(e));
            }
            Attempt::Failed { error: with_left(coded(Exit::Host, msg), &left), retry: true }
        }
        Err(xapi::Error::Cancelled) => {
            let left = cleanup(session, task, true);
            report_left("interrupted", &left);
            Attempt::Interrupted
        }
        Err(e) => {
            let left = cleanup(session, task, true);
            let mut err = host_error(e, "following the import task");
            if let Some(io) = &io_error {
                err = err.context(broke(io));
            }
            Attempt::Failed { error: with_left(err, &left), retry: true }
        }
    }
}

/// Cancels the task if it still runs, destroys any VM the import left, destroys the task.
/// Returns what is left on the host.
fn cleanup(session: &Session, task: &str, may_have_started: bool) -> Vec<String> {
    let mut left = Vec::new();
    if may_have_started {
        if let Ok(s) = session.task_status(task) {
            if !s.is_final() {
                let _ = session.task_cancel(task);
                let _ = session.task_wait(
                    task,
                    Duration::from_millis(200),
                    Some(Duration::from_secs(10)),
                    None,
                    &mut |_| {},
                );
            }
        }
        match session.vms_of_import(task) {
            Ok(vms) => {
                for vm in vms {
                    let uuid = session.vm_uuid(&vm).unwrap_or_else(|_| vm.clone());
                    let not_destroyed = session.vm_destroy_with_disks(&vm);
                    if not_destroyed.is_empty() {
                        eprintln!("xva: destroyed the partly imported VM {uuid} and its disks");
                    }
                    left.extend(not_destroyed);
                }
            }
            Err(e) => left.push(format!("possibly a partly imported VM (cannot list VMs: {})", full_message(&e))),
        }
    }
    if let Err(e) = session.task_destroy(task) {
        left.push(format!("task {task} ({})", full_message(&e)));
    }
    left
}

fn with_left(e: anyhow::Error, left: &[String]) -> anyhow::Error {
    if left.is_empty() {
        e
    } else {
        e.context(format!("left on the host: {}", left.join("; ")))
    }
}

fn report_left(what: &str, left: &[String]) {
    if left.is_empty() {
        eprintln!("xva: {what}; nothing was left on the host");
    } else {
        eprintln!("xva: {what}; left on the host: {}", sanitize(&left.join("; ")));
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    args: &Args,
    session: &Session,
    spec: &records::VmSpec,
    sr: &Sr,
    vm: &str,
    uuid: &str,
    tar_bytes: u64,
    elapsed: Duration,
    placed: Option<&Placed>,
) -> anyhow::Result<Exit> {
    let name = spec.name.as_str();
    let mut started = false;
    if args.upload.start {
        session.vm_start(vm).map_err(|e| host_error(e, &format!("the VM {uuid} was imported, but starting it")))?;
        started = true;
    }
    if args.json {
        let v = json!({
            "server": session.endpoint().to_string(),
            "vm": name,
            "vm_uuid": uuid,
            "sr": {"name": sr.name, "uuid": sr.uuid},
            "tar_bytes": tar_bytes,
            "duration_seconds": elapsed.as_secs_f64(),
            "started": started,
            "kernel": placed.map(|p| json!({
                "dir": p.dir,
                "files": p.files.iter().map(|f| &f.remote).collect::<Vec<_>>(),
                "uploaded": p.uploaded,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let secs = elapsed.as_secs_f64().max(1e-6);
        eprintln!(
            "imported VM {:?} into SR {:?} on {}: {} streamed in {:.1} s ({}/s){}",
            sanitize(name),
            sanitize(&sr.name),
            session.endpoint(),
            human_bytes(tar_bytes),
            secs,
            human_bytes((tar_bytes as f64 / secs) as u64),
            if started { "; started" } else { "" }
        );
        println!("{}", sanitize(uuid));
    }
    std::io::stdout().flush().ok();
    Ok(Exit::Success)
}
