//! `xva convert … --server HOST`: the upload options, checked and turned into the library's
//! [`UploadOptions`]; the password (flag, file, environment or a prompt); the result printed.
//! The orchestration (login, SR, task, PUT, retry, cleanup, the kernel) is
//! [`xva::plan::upload`].

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;
use serde_json::json;

use xva::plan::upload::{self, Imported, KernelOptions, Outcome, UploadOptions, PASSWORD_ENV};
use xva::plan::Plan;
use xva::xapi::http::{Endpoint, Scheme};
use xva::xapi::session::Secret;
use xva::xapi::tls::{Fingerprint, Trust};
use xva::xva::writer::WriteOptions;

use super::exit::{coded, Exit};
use super::output::{human_bytes, sanitize};
use super::progress::Report;
use crate::cli::output::{errln, outln};

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

/// What `xva convert` passes on besides the upload options.
pub struct Request {
    /// `--output` was given too.
    pub output_given: bool,
    /// `--verify`.
    pub verify: bool,
    /// `--json`.
    pub json: bool,
    /// `--network`.
    pub network: Option<String>,
    /// `--path-map`.
    pub path_map: Vec<(PathBuf, PathBuf)>,
}

/// Streams the plan into the host named by `--server`.
pub fn run(
    up: &UploadArgs,
    req: Request,
    plan: &Plan,
    write: &WriteOptions<'static>,
    report: &Report,
) -> anyhow::Result<Exit> {
    let server = up.server.as_deref().unwrap_or_default();
    if req.output_given {
        return Err(coded(Exit::Usage, "give either --output or --server, not both"));
    }
    if req.verify {
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
        errln!("xva: warning: using plain HTTP to {endpoint}; the password and the disks are not encrypted");
    }
    let opts = UploadOptions {
        server: server.to_string(),
        endpoint,
        trust: trust(up)?,
        user: up.user.clone(),
        sr: up.sr.clone(),
        network: req.network,
        restore_macs: up.restore_macs,
        start: up.start,
        retry: up.retry,
        stall_timeout: Duration::from_secs(stall_seconds()),
        poll_interval: poll_interval(),
        kernel: KernelOptions {
            upload: up.upload_kernel,
            dir: up.kernel_dir.clone(),
            ssh_user: up.ssh_user.clone(),
            path_map: req.path_map,
        },
    };
    let kernel = upload::kernel_files(plan, &opts.kernel, report)?;
    let password = password(up)?;
    match upload::upload(plan, &opts, kernel, password, write, report)? {
        Outcome::Imported(done) => finish(req.json, &plan.vm.name, &done),
        Outcome::Interrupted => Ok(Exit::Interrupted),
    }
}

fn poll_interval() -> Duration {
    let ms = std::env::var("XVA_POLL_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000u64);
    Duration::from_millis(ms.clamp(10, 10_000))
}

/// Seconds the host may stall a read or write (default 300; `XVA_STALL_TIMEOUT` for tests).
fn stall_seconds() -> u64 {
    std::env::var("XVA_STALL_TIMEOUT").ok().and_then(|s| s.parse().ok()).filter(|&s| s > 0).unwrap_or(300)
}

fn trust(up: &UploadArgs) -> anyhow::Result<Trust> {
    if up.insecure {
        errln!(
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
        errln!(
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

fn finish(json: bool, name: &str, done: &Imported) -> anyhow::Result<Exit> {
    let Imported { server, vm_uuid: uuid, sr, tar_bytes, elapsed, started, kernel, .. } = done;
    if json {
        let v = json!({
            "server": server,
            "vm": name,
            "vm_uuid": uuid,
            "sr": {"name": sr.name, "uuid": sr.uuid},
            "tar_bytes": tar_bytes,
            "duration_seconds": elapsed.as_secs_f64(),
            "started": started,
            "kernel": kernel.as_ref().map(|p| json!({
                "dir": p.dir,
                "files": p.files,
                "uploaded": p.uploaded,
            })),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        let secs = elapsed.as_secs_f64().max(1e-6);
        errln!(
            "imported VM {:?} into SR {:?} on {}: {} streamed in {:.1} s ({}/s){}",
            sanitize(name),
            sanitize(&sr.name),
            server,
            human_bytes(*tar_bytes),
            secs,
            human_bytes((*tar_bytes as f64 / secs) as u64),
            if *started { "; started" } else { "" }
        );
        outln!("{}", sanitize(uuid))?;
    }
    std::io::stdout().flush().ok();
    Ok(Exit::Success)
}
