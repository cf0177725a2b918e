//! Direct-kernel PV guests (`kernel=` in a Xen config): the kernel and ramdisk must be on the
//! host. Their local copies are found as the guest loader finds disks; on the host they go to
//! a new directory under the guest-kernel directory, copied with ssh/scp
//! ([`KernelOptions::upload`]) or with the commands shown to the user.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::guest::load::map_path;
use crate::xapi::full_message;
use crate::xapi::kernel::{self, is_safe_remote_path, Remote};
use crate::xapi::session::Session;
use crate::xva::records::{Boot, VmSpec};

use crate::plan::{Error, ErrorKind, Events, Plan, Result};

/// Environment variable holding the password: never passed on to ssh/scp.
pub const PASSWORD_ENV: &str = "XVA_PASSWORD";

/// What to do with a direct kernel.
#[derive(Clone, Debug, Default)]
pub struct KernelOptions {
    /// Copy the files with ssh/scp (otherwise the commands are shown).
    pub upload: bool,
    /// The host's guest-kernel directory (default from the host's xapi version).
    pub dir: Option<String>,
    /// User for ssh/scp (default: the login user).
    pub ssh_user: Option<String>,
    /// `--path-map OLD=NEW`: where the source dom0's files are read here.
    pub path_map: Vec<(PathBuf, PathBuf)>,
}

/// One file of a direct-kernel guest.
#[derive(Debug)]
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

/// The local files of a direct-kernel guest, found by [`kernel_files`].
#[derive(Debug)]
pub struct KernelFiles(Vec<KernelFile>);

/// Where a direct-kernel guest's files went (or must go) on the host.
#[derive(Clone, Debug)]
pub struct PlacedKernel {
    /// The directory on the host.
    pub dir: String,
    /// The files' paths on the host.
    pub files: Vec<String>,
    /// Whether they were copied (otherwise the user was told how).
    pub uploaded: bool,
}

/// [`PlacedKernel`] and how to reach it.
pub(super) struct Placed {
    remote: Remote,
    dir: String,
    files: Vec<String>,
    pub(super) uploaded: bool,
}

/// The kernel and ramdisk of a direct-kernel PV guest, resolved as the guest loader resolves
/// disks: the longest `--path-map` prefix, else the path itself when absolute, else relative to
/// the config's directory. `None` for every other guest. With [`KernelOptions::upload`] the
/// files must be readable; [`KernelOptions::dir`] is checked here too (before any connection).
pub fn kernel_files(plan: &Plan, ko: &KernelOptions, events: &dyn Events) -> Result<Option<KernelFiles>> {
    if let Some(d) = &ko.dir {
        if !is_safe_remote_path(d.trim_end_matches('/')) {
            return Err(Error::usage(format!(
                "--kernel-dir {d:?}: give an absolute directory made of letters, digits and . _ + - \
                 (for example {} or {})",
                kernel::CURRENT_DIR,
                kernel::OLD_DIR
            )));
        }
    }
    let Boot::Pv { bootloader, kernel, ramdisk, .. } = &plan.vm.boot else {
        if ko.upload {
            events.message("note: --upload-kernel: this VM does not boot a kernel from the host; nothing to copy");
        }
        return Ok(None);
    };
    if !bootloader.is_empty() || kernel.is_empty() {
        if ko.upload {
            events.message(&format!("note: --upload-kernel: this VM boots through {bootloader}; nothing to copy"));
        }
        return Ok(None);
    }
    let config_dir = plan.source.config_dir().map(PathBuf::from);
    let mut files = Vec::new();
    for (what, written, name) in [("kernel", kernel, kernel::KERNEL_NAME), ("ramdisk", ramdisk, kernel::RAMDISK_NAME)] {
        if written.is_empty() {
            continue;
        }
        let (mapped, was_mapped) = map_path(Path::new(written), &ko.path_map);
        let resolved = if was_mapped || mapped.is_absolute() {
            mapped
        } else {
            config_dir.clone().unwrap_or_default().join(mapped)
        };
        let local = std::path::absolute(&resolved).unwrap_or(resolved);
        let readable = std::fs::File::open(&local).and_then(|f| f.metadata()).map(|m| m.is_file());
        if ko.upload && !matches!(readable, Ok(true)) {
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
            return Err(Error::input(format!(
                "cannot read the {what} {} ({what} = {written:?} in the config): {why}{hint}",
                local.display()
            )));
        }
        files.push(KernelFile { what, written: written.clone(), present: matches!(readable, Ok(true)), local, name });
    }
    Ok(Some(KernelFiles(files)))
}

/// Decides the host directory, points `PV_kernel`/`PV_ramdisk` at it, and copies the files
/// ([`KernelOptions::upload`]) or tells the user the commands that do.
pub(super) fn place(
    ko: &KernelOptions,
    user: &str,
    session: &Session,
    files: &KernelFiles,
    vm: &mut VmSpec,
    cancel: Option<&AtomicBool>,
    events: &dyn Events,
) -> Result<Placed> {
    let files = &files.0;
    let version = match session.xapi_version() {
        Ok(v) => v,
        Err(e) => {
            events.message(&format!("warning: cannot read the host's xapi version: {}", full_message(&e)));
            None
        }
    };
    let base = match (&ko.dir, version) {
        (Some(d), _) => d.trim_end_matches('/').to_string(),
        (None, Some(v)) => v.kernel_dir().to_string(),
        (None, None) => {
            events.message(&format!(
                "warning: the host's xapi version is unknown; using {} (xapi 23.9 and later); \
                 pass --kernel-dir {} for Citrix Hypervisor 8.2, XCP-ng 8.2 and older",
                kernel::CURRENT_DIR,
                kernel::OLD_DIR
            ));
            kernel::CURRENT_DIR.to_string()
        }
    };
    if let Some(v) = version.filter(|v| base != v.kernel_dir()) {
        events.message(&format!(
            "warning: --kernel-dir {base}: xapi {v} boots direct kernels only from {}/",
            v.kernel_dir()
        ));
    }
    let dir = format!("{base}/{}", uuid::Uuid::new_v4());
    let remote_files: Vec<String> = files.iter().map(|f| format!("{dir}/{}", f.name)).collect();
    if let Boot::Pv { kernel: k, ramdisk: r, .. } = &mut vm.boot {
        for (f, p) in files.iter().zip(&remote_files) {
            match f.what {
                "kernel" => *k = p.clone(),
                _ => *r = p.clone(),
            }
        }
    }
    let remote = Remote {
        user: ko.ssh_user.clone().unwrap_or_else(|| user.to_string()),
        host: session.endpoint().host.clone(),
        scrub_env: vec![PASSWORD_ENV.to_string()],
    };
    let mkdir = remote.ssh(&["mkdir", "-p", &dir]);
    let copies: Vec<kernel::Cmd> = files.iter().zip(&remote_files).map(|(f, p)| remote.scp(&f.local, p)).collect();
    let mut placed = Placed { remote, dir, files: remote_files, uploaded: false };
    let pv_note = match version {
        Some(v) if !v.runs_pv() => {
            format!("this host (xapi {v}: XenServer 8 / XCP-ng 8.3) cannot start PV guests at all")
        }
        _ => "current XenServer 8 and XCP-ng 8.3 cannot start PV guests at all".to_string(),
    };
    let pv_note =
        format!("warning: {pv_note}; if the guest disk has its own kernel and bootloader, convert with --hvm instead");
    if !ko.upload {
        let mut text = format!(
            "this VM boots a kernel stored on the host (direct kernel boot); its PV_kernel{} \
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
        events.message(&text);
        events.message(&pv_note);
        return Ok(placed);
    }
    let step = |c: &kernel::Cmd| placed.remote.run(c);
    let result = step(&mkdir).and_then(|()| copies.iter().try_for_each(step));
    if let Err(e) = result {
        placed.remove(events);
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::new(
                ErrorKind::Interrupted,
                "interrupted while copying the kernel; nothing was imported",
            ));
        }
        return Err(Error::host(format!(
            "copying the kernel to {} failed: {}\n  nothing was imported. ssh and scp run without a \
             password (BatchMode): they need your key or agent and the host in known_hosts \
             (--ssh-user USER logs in as another user); or copy the files yourself, as printed \
             without --upload-kernel",
            placed.remote.destination(),
            e
        )));
    }
    placed.uploaded = true;
    events.message(&format!(
        "copied the {} to {}:{}/; every other pool member that may start the VM needs the same files",
        files.iter().map(|f| f.what).collect::<Vec<_>>().join(" and "),
        placed.remote.destination(),
        placed.dir
    ));
    events.message(&pv_note);
    Ok(placed)
}

impl Placed {
    /// What the caller reports.
    pub(super) fn summary(&self) -> PlacedKernel {
        PlacedKernel { dir: self.dir.clone(), files: self.files.clone(), uploaded: self.uploaded }
    }

    /// Removes what [`place`] copied (best effort; says what it could not remove).
    pub(super) fn remove(&self, events: &dyn Events) {
        let mut words = vec!["rm", "-f"];
        words.extend(self.files.iter().map(String::as_str));
        words.extend(["&&", "rmdir", self.dir.as_str()]);
        if let Err(e) = self.remote.run(&self.remote.ssh(&words)) {
            events.message(&format!(
                "warning: could not remove {}:{}/ from the host: {}",
                self.remote.destination(),
                self.dir,
                e
            ));
        }
    }
}
