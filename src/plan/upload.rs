//! A plan streamed straight into a XenServer / XCP-ng host.
//!
//! ```text
//!   login (HOST_IS_SLAVE → master) → SR, network → task.create
//!     → PUT /import (200 before the body) → tar stream → poll the task
//!     → success + VM ref: the VM's uuid   |   failure / cancel: cancel, destroy, report
//!   session.logout always (the session is a guard)
//! ```
//! Success is decided by the task only: xapi's HTTP 200 is sent before it reads the body
//! (`xva-format-and-xapi-import.md` §8.1). xva.py believed that 200; this does not.
//!
//! The retry policy lives here too: an attempt that failed in a way another try can fix
//! (connection, a task that broke off) is repeated from the beginning with fresh UUIDs, up to
//! [`UploadOptions::retry`] times; whatever an attempt left on the host is removed first.
//! Direct-kernel PV guests get their kernel placed ([`kernel`]).

mod kernel;

use std::time::{Duration, Instant};

use crate::xapi::http::{is_cancelled, Endpoint, Transport};
use crate::xapi::import::{self, Request};
use crate::xapi::lookup::Sr;
use crate::xapi::session::{Client, Secret, Session};
use crate::xapi::task::{result_refs, Status};
use crate::xapi::tls::{self, Trust};
use crate::xapi::{self, full_message, XapiError};
use crate::xva::records::{self, VmSpec, DEFAULT_NETWORK};
use crate::xva::writer::{self, WriteError, WriteOptions};

use super::{Error, ErrorKind, Events, Plan, Result};

pub use kernel::{kernel_files, KernelFiles, KernelOptions, PlacedKernel, PASSWORD_ENV};

/// Where and how to import.
#[derive(Clone, Debug)]
pub struct UploadOptions {
    /// The host as the user named it (for messages).
    pub server: String,
    /// Where the host listens.
    pub endpoint: Endpoint,
    /// Which certificates to accept.
    pub trust: Trust,
    /// User to log in as.
    pub user: String,
    /// SR by name or uuid; `None` = the pool's default SR.
    pub sr: Option<String>,
    /// Network for the interfaces by name; `None` (or the default name) = the management
    /// network.
    pub network: Option<String>,
    /// Import with restore=true (keeps the MACs).
    pub restore_macs: bool,
    /// Start the VM once imported.
    pub start: bool,
    /// Further attempts after a failure that may pass.
    pub retry: u32,
    /// Longest time the host may stall a read or write.
    pub stall_timeout: Duration,
    /// How often the import task is polled.
    pub poll_interval: Duration,
    /// Direct-kernel PV guests.
    pub kernel: KernelOptions,
}

/// A VM imported.
#[derive(Debug)]
pub struct Imported {
    /// The host the session ended up on (the pool master).
    pub server: String,
    /// The VM's reference.
    pub vm_ref: String,
    /// The VM's uuid.
    pub vm_uuid: String,
    /// The SR it went into.
    pub sr: Sr,
    /// Bytes of tar stream sent.
    pub tar_bytes: u64,
    /// Wall time of the successful attempt.
    pub elapsed: Duration,
    /// Whether it was started.
    pub started: bool,
    /// Where a direct-kernel guest's kernel went.
    pub kernel: Option<PlacedKernel>,
}

/// How an upload ended (errors aside).
#[derive(Debug)]
pub enum Outcome {
    /// The VM exists on the host.
    Imported(Box<Imported>),
    /// Stopped by the cancel flag; what the import left was removed (or reported).
    Interrupted,
}

/// What one import attempt ended with.
enum Attempt {
    /// The VM exists: its reference and uuid.
    Imported { vm: String, uuid: String, tar_bytes: u64, elapsed: Duration },
    /// Interrupted; cleanup done.
    Interrupted,
    /// Failed; `retry` says whether trying again can help.
    Failed { error: Error, retry: bool },
}

/// Streams `plan` into the host: logs in (`password` is dropped once it has), finds the SR and
/// network, places a direct kernel (`kernel`, from [`kernel_files`] of `opts.kernel`), imports with retries,
/// starts the VM if asked. `write.cancel` stops it at any point, with cleanup.
pub fn upload(
    plan: &Plan,
    opts: &UploadOptions,
    kernel: Option<KernelFiles>,
    password: Secret,
    write: &WriteOptions<'static>,
    events: &dyn Events,
) -> Result<Outcome> {
    let (tls, seen) = tls::client_config(opts.trust.clone()).map_err(|e| Error::context("setting up TLS", e))?;
    let transport =
        Transport { tls, seen, connect_timeout: Duration::from_secs(30), stall_timeout: opts.stall_timeout };
    let client = Client { transport, endpoint: opts.endpoint.clone() };
    let session = Session::login(client, &opts.user, &password, &mut |master| {
        events.message(&format!("{} is a pool member; logging in to the pool master {master}", opts.server));
    })
    .map_err(|e| host_error(e, "logging in"))?;
    drop(password);

    let sr = match &opts.sr {
        Some(s) => session.find_sr(s).map_err(|e| host_error(e, "finding the SR"))?,
        None => session.default_sr().map_err(|e| host_error(e, "finding the pool's default SR"))?.ok_or_else(|| {
            Error::host("the pool has no default SR; name one with --sr NAME|UUID (`xe sr-list` shows them)")
        })?,
    };

    let mut vm = plan.vm.clone();
    if !vm.vifs.is_empty() {
        let net = match opts.network.as_deref() {
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
    if opts.restore_macs && vm.vifs.iter().all(|v| v.mac.is_none()) {
        events.message("note: --restore-macs without --vif MAC: the interfaces get generated MACs anyway");
    }

    // Before the first byte is streamed: the record must name where the kernel will be.
    let placed = match &kernel {
        Some(files) => Some(kernel::place(&opts.kernel, &opts.user, &session, files, &mut vm, write.cancel, events)?),
        None => None,
    };
    let stream = Stream { plan, opts, session: &session, sr: &sr, write, events };
    match stream.import_all(&vm) {
        Ok(Some(Attempt::Imported { vm: vm_ref, uuid, tar_bytes, elapsed })) => {
            let mut started = false;
            if opts.start {
                session
                    .vm_start(&vm_ref)
                    .map_err(|e| host_error(e, &format!("the VM {uuid} was imported, but starting it")))?;
                started = true;
            }
            Ok(Outcome::Imported(Box::new(Imported {
                server: session.endpoint().to_string(),
                vm_ref,
                vm_uuid: uuid,
                sr,
                tar_bytes,
                elapsed,
                started,
                kernel: placed.map(|p| p.summary()),
            })))
        }
        other => {
            // No VM: the copied kernel serves nothing.
            if let Some(p) = placed.as_ref().filter(|p| p.uploaded) {
                p.remove(events);
            }
            match other {
                Err(e) => Err(e),
                _ => Ok(Outcome::Interrupted),
            }
        }
    }
}

/// An xapi-module error as a plan error with a helpful message.
pub fn host_error(e: xapi::Error, doing: &str) -> Error {
    let msg = match &e {
        xapi::Error::Untrusted { fingerprint, .. } => format!(
            "{doing}: {}\n  check it on the host with `openssl x509 -noout -fingerprint -sha256 -in \
             /etc/xensource/xapi-ssl.pem`, then pass --fingerprint {fingerprint}",
            full_message(&e)
        ),
        xapi::Error::Xapi { error, .. } if error.code == "SESSION_AUTHENTICATION_FAILED" => {
            format!("{doing}: the host refused the user name or password ({error})")
        }
        xapi::Error::Cancelled => return Error::new(ErrorKind::Interrupted, "interrupted"),
        _ => format!("{doing}: {}", full_message(&e)),
    };
    Error::host(msg)
}

/// One import's fixed parts.
struct Stream<'a> {
    plan: &'a Plan,
    opts: &'a UploadOptions,
    session: &'a Session,
    sr: &'a Sr,
    write: &'a WriteOptions<'static>,
    events: &'a dyn Events,
}

impl Stream<'_> {
    /// The import, retried as [`UploadOptions::retry`] says: `Some(Imported)`, `None` when
    /// interrupted, or the last attempt's error.
    fn import_all(&self, vm: &VmSpec) -> Result<Option<Attempt>> {
        let attempts = self.opts.retry.saturating_add(1);
        let mut last = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                self.events
                    .message(&format!("retrying the upload from the beginning (attempt {attempt} of {attempts})"));
            }
            // Fresh UUIDs per attempt: a half-imported earlier attempt cannot collide with this.
            let xml = records::ova_xml(vm).map_err(|e| Error::usage(e.to_string()))?;
            match self.attempt(&xml) {
                done @ Attempt::Imported { .. } => return Ok(Some(done)),
                Attempt::Interrupted => return Ok(None),
                Attempt::Failed { error, retry } => {
                    if !retry || attempt == attempts {
                        return Err(error);
                    }
                    self.events.message(&full_message(&error));
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::new(ErrorKind::Other, "no import attempt was made")))
    }

    fn cancelled(&self) -> bool {
        self.write.cancel.is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// One full try: task, PUT, body, task result. Cleans up after itself on failure.
    fn attempt(&self, xml: &str) -> Attempt {
        let (session, plan) = (self.session, self.plan);
        let failed = |error, retry| Attempt::Failed { error, retry };
        let label = format!("xva import {}", plan.vm.name);
        let task = match session.task_create(&label, "streamed by xva") {
            Ok(t) => t,
            Err(e) => return failed(host_error(e, "creating the import task"), false),
        };
        let req = Request {
            task: &task,
            sr: Some(&self.sr.reference),
            restore: self.opts.restore_macs,
            content_length: None,
        };
        let mut upload = match import::start(session, &req, self.write.cancel) {
            Ok(u) => u,
            Err(e) => {
                let retry = matches!(e, xapi::Error::Io { .. } | xapi::Error::Connect { .. });
                let left = self.cleanup(&task, false);
                if self.cancelled() {
                    self.report_left("interrupted", &left);
                    return Attempt::Interrupted;
                }
                return failed(with_left(host_error(e, "starting the import"), &left), retry);
            }
        };
        if upload.endpoint != *session.endpoint() {
            self.events
                .message(&format!("the host redirected the import to {} (the host that sees the SR)", upload.endpoint));
        }

        let sources = plan.sources();
        self.events.begin("uploading", plan.total_size());
        let started = Instant::now();
        let written = writer::write_xva(&mut upload, xml, &sources, self.write, &|done| self.events.progress(done));
        self.events.end();
        let body_error = match written {
            Ok(summary) => {
                // The host may already have closed: it stops reading after the last chunk.
                let _ = upload.finish();
                let status = self.wait(&task, None, true);
                return self.conclude(&task, status, None, summary.tar_bytes, started.elapsed());
            }
            Err(WriteError::Cancelled) => None,
            Err(WriteError::Write(e)) if is_cancelled(&e) => None,
            Err(WriteError::Read { disk, source }) => {
                drop(upload);
                let left = self.cleanup(&task, true);
                let e = Error::new(ErrorKind::Input, "the upload was abandoned")
                    .caused_by(Error::context(format!("reading disk {}", plan.labels[disk]), source));
                return failed(with_left(e, &left), false);
            }
            Err(WriteError::Invalid(m)) => {
                drop(upload);
                let left = self.cleanup(&task, true);
                return failed(with_left(Error::usage(m), &left), false);
            }
            Err(WriteError::Write(e)) => Some(e),
        };
        drop(upload);
        let Some(io_error) = body_error else {
            let left = self.cleanup(&task, true);
            self.report_left("interrupted", &left);
            return Attempt::Interrupted;
        };
        // The body broke off. The task says why (or, if xapi had everything, that it worked).
        let status = self.wait(&task, Some(Duration::from_secs(30)), false);
        self.conclude(&task, status, Some(io_error), 0, started.elapsed())
    }

    /// Polls the task; with `show`, the host's progress goes to the events.
    fn wait(&self, task: &str, limit: Option<Duration>, show: bool) -> Result<Status, xapi::Error> {
        let r = self.session.task_wait(task, self.opts.poll_interval, limit, self.write.cancel, &mut |p| {
            if show {
                self.events.host_progress(p);
            }
        });
        if show {
            self.events.host_done();
        }
        r
    }

    /// Decides an attempt from the task's final state.
    fn conclude(
        &self,
        task: &str,
        status: Result<Status, xapi::Error>,
        io_error: Option<std::io::Error>,
        tar_bytes: u64,
        elapsed: Duration,
    ) -> Attempt {
        let session = self.session;
        let broke = |e: &std::io::Error| format!("the connection broke during the upload ({e})");
        match status {
            Ok(Status::Success) => {
                let refs = session.task_result(task).map(|r| result_refs(&r)).unwrap_or_default();
                let Some(vm) = refs.into_iter().next() else {
                    let left = self.cleanup(task, true);
                    return Attempt::Failed {
                        error: with_left(Error::host("the import task succeeded but names no VM"), &left),
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
                let left = self.cleanup(task, true);
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
                Attempt::Failed { error: with_left(Error::host(msg), &left), retry }
            }
            Ok(other) => {
                let left = self.cleanup(task, true);
                let mut msg = match &other {
                    Status::Pending => "the host did not finish the import".to_string(),
                    s => format!("the import task ended as {s:?}"),
                };
                if let Some(e) = &io_error {
                    msg = format!("{}; {msg}", broke(e));
                }
                Attempt::Failed { error: with_left(Error::host(msg), &left), retry: true }
            }
            Err(xapi::Error::Cancelled) => {
                let left = self.cleanup(task, true);
                self.report_left("interrupted", &left);
                Attempt::Interrupted
            }
            Err(e) => {
                let left = self.cleanup(task, true);
                let mut err = host_error(e, "following the import task");
                if let Some(io) = &io_error {
                    err = err.wrap(broke(io));
                }
                Attempt::Failed { error: with_left(err, &left), retry: true }
            }
        }
    }

    /// Cancels the task if it still runs, destroys any VM the import left, destroys the task.
    /// Returns what is left on the host.
    fn cleanup(&self, task: &str, may_have_started: bool) -> Vec<String> {
        let session = self.session;
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
                            self.events.message(&format!("destroyed the partly imported VM {uuid} and its disks"));
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

    fn report_left(&self, what: &str, left: &[String]) {
        if left.is_empty() {
            self.events.message(&format!("{what}; nothing was left on the host"));
        } else {
            self.events.message(&format!("{what}; left on the host: {}", left.join("; ")));
        }
    }
}

fn with_left(e: Error, left: &[String]) -> Error {
    if left.is_empty() {
        e
    } else {
        e.wrap(format!("left on the host: {}", left.join("; ")))
    }
}
