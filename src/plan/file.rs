//! A plan written to an XVA file: through [`PendingOutput`] (nothing appears under the name
//! until it is complete), optionally read back the way xapi would to prove every disk arrived.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::xva::validate::{verify_path, VerifyOptions};
use crate::xva::writer::{self, WriteError, WriteOptions, WriteSummary};

use super::output::{OutputError, PendingOutput};
use super::{human_bytes, Error, ErrorKind, Events, Plan, Result};

/// Where and how to write the file.
#[derive(Clone, Debug)]
pub struct FileTarget {
    /// The XVA's name.
    pub path: PathBuf,
    /// Replace an existing file.
    pub overwrite: bool,
    /// Read the written file back and compare each disk's SHA-256 with the source's (needs
    /// `disk_sha256` in the write options).
    pub verify: bool,
}

/// A file written.
#[derive(Debug)]
pub struct Written {
    /// What the writer did.
    pub summary: WriteSummary,
    /// Wall time of the write (without the read-back).
    pub elapsed: Duration,
    /// `Some(true)` when the read-back proved every disk.
    pub verified: Option<bool>,
}

/// How writing a file ended (errors aside).
#[derive(Debug)]
pub enum Outcome {
    /// The file is complete under its name.
    Written(Written),
    /// Stopped by the cancel flag; nothing is left.
    Interrupted,
}

/// Writes `plan` to `target`. A short-of-space warning and the stream's progress go to
/// `events`.
pub fn write(plan: &Plan, target: &FileTarget, opts: &WriteOptions<'_>, events: &dyn Events) -> Result<Outcome> {
    let output = &target.path;
    let mut pending = PendingOutput::create(output, target.overwrite)?;
    warn_if_short_of_space(output, plan.data_bytes()?, events);

    let sources = plan.sources();
    events.begin("converting", plan.total_size());
    let started = Instant::now();
    let result = writer::write_xva(&mut pending.writer(), &plan.xml, &sources, opts, &|done| events.progress(done));
    events.end();
    let summary = match result {
        Ok(s) => s,
        Err(WriteError::Cancelled) => {
            drop(pending);
            events.message(&format!("interrupted; {} was not written", output.display()));
            return Ok(Outcome::Interrupted);
        }
        Err(WriteError::Write(e)) => return Err(OutputError::write(e, output).into()),
        Err(WriteError::Read { disk, source }) => {
            return Err(Error::new(ErrorKind::Input, format!("{} was not written", output.display()))
                .caused_by(Error::context(format!("reading disk {}", plan.labels[disk]), source)));
        }
        Err(e @ WriteError::Invalid(_)) => return Err(Error::usage(e.to_string())),
    };
    pending.commit()?;
    let elapsed = started.elapsed();
    let verified = if target.verify { Some(verify_written(output, &summary)?) } else { None };
    Ok(Outcome::Written(Written { summary, elapsed, verified }))
}

/// Warns (does not fail: zero blocks inside data ranges are not written) when the output file
/// system has less room than the data the disks hold.
fn warn_if_short_of_space(output: &Path, data_bytes: u64, events: &dyn Events) {
    let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: statvfs fills the zeroed struct we own; the path is a valid NUL-terminated string.
    let free = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return;
        }
        st.f_bavail as u64 * st.f_frsize as u64
    };
    if free < data_bytes {
        events.message(&format!(
            "warning: {} has {} free, the disks hold up to {} of data; the write may run out of space",
            dir.display(),
            human_bytes(free),
            human_bytes(data_bytes)
        ));
    }
}

/// Reads the finished XVA back and compares each disk's SHA-256 with the source's.
///
/// The XVA is read the way xapi's importer reads it (`xva::validate`), so a rule violation
/// fails the check as much as a digest mismatch.
fn verify_written(path: &Path, summary: &WriteSummary) -> Result<bool> {
    let failed = |m: String| Error::new(ErrorKind::Verify, m);
    let report = verify_path(path, &VerifyOptions { compute_sha256: true })
        .map_err(|e| Error::context(format!("reading back {}", path.display()), e))?;
    if let Some(f) = report.errors().chain(report.corruptions()).next() {
        return Err(failed(format!("--verify: {} does not pass xapi's rules: {f}", path.display())));
    }
    if report.disks.len() != summary.disks.len() {
        return Err(failed(format!(
            "--verify: {} holds {} disks, {} were written",
            path.display(),
            report.disks.len(),
            summary.disks.len()
        )));
    }
    for (written, read) in summary.disks.iter().zip(&report.disks) {
        let (Some(want), Some(got)) = (written.sha256, read.sha256) else {
            return Err(failed(format!("--verify: no digest for disk {}", written.id)));
        };
        if read.id != written.id || want != got {
            return Err(failed(format!(
                "--verify: disk {} differs: source SHA-256 {}, XVA SHA-256 {}",
                written.id,
                crate::hex::lower(&want),
                crate::hex::lower(&got)
            )));
        }
    }
    Ok(true)
}
