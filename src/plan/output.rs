//! Output files that appear under their final name only when complete.
//!
//! Data goes to a hidden temporary file in the target directory (same file system, so the
//! final step is an atomic rename or link). Dropping a [`PendingOutput`] that was not
//! committed removes the temporary file: an error, a panic or a signal that unwinds through
//! the caller leaves nothing behind. `xva convert` and `xva extract` both write through it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why an output file could not be created or completed. Every variant means nothing is left
/// under the target name.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The target has no file name (`/`, `..`).
    #[error("output {} is not a file name", target.display())]
    NotAFileName { target: PathBuf },
    /// The directory that would hold the target does not exist.
    #[error("output directory {} does not exist", dir.display())]
    NoDirectory { dir: PathBuf },
    /// The target is a directory.
    #[error("output {} is a directory", target.display())]
    IsDirectory { target: PathBuf },
    /// The target exists and overwriting was not asked for.
    #[error("output {} exists; pass --force to replace it", target.display())]
    Exists { target: PathBuf },
    /// The temporary file (or, when linking, the target) could not be created.
    #[error("cannot create {}: {error}", path.display())]
    Create { path: PathBuf, error: io::Error },
    /// Writing or syncing the data failed; disk full is said plainly.
    #[error("{}", write_message(target, error))]
    Write { target: PathBuf, error: io::Error },
    /// The finished temporary file could not be renamed over the target.
    #[error("cannot rename {} to {}", tmp.display(), target.display())]
    Rename { tmp: PathBuf, target: PathBuf, source: io::Error },
    /// The target appeared while the data was written, and overwriting was not asked for.
    #[error("output {} appeared while writing; pass --force to replace it", target.display())]
    Appeared { target: PathBuf },
}

fn write_message(target: &Path, e: &io::Error) -> String {
    if is_disk_full(e) {
        format!("no space left on the device holding {} (ENOSPC); the partial file was removed", target.display())
    } else {
        format!("cannot write {}: {e}", target.display())
    }
}

/// Whether `e` says the file system is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == io::ErrorKind::StorageFull
}

impl From<OutputError> for super::Error {
    /// Exit-code wise an output error, except a failed final rename: an unexpected I/O error,
    /// classified by its cause.
    fn from(e: OutputError) -> super::Error {
        match e {
            OutputError::Rename { tmp, target, source } => {
                super::Error::context(format!("cannot rename {} to {}", tmp.display(), target.display()), source)
            }
            e => super::Error::new(super::ErrorKind::Output, e.to_string()),
        }
    }
}

impl OutputError {
    /// A write error on the output `target` (see [`OutputError::Write`]).
    pub fn write(e: io::Error, target: &Path) -> OutputError {
        OutputError::Write { target: target.to_path_buf(), error: e }
    }
}

/// A temporary file that becomes `target` on [`PendingOutput::commit`].
#[derive(Debug)]
pub struct PendingOutput {
    tmp: PathBuf,
    target: PathBuf,
    file: Option<File>,
    overwrite: bool,
}

impl PendingOutput {
    /// Checks `target` can be created (parent exists, no file there unless `overwrite`) and
    /// creates the temporary file next to it.
    pub fn create(target: &Path, overwrite: bool) -> Result<PendingOutput, OutputError> {
        let name = target.file_name().ok_or_else(|| OutputError::NotAFileName { target: target.to_path_buf() })?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(OutputError::NoDirectory { dir });
        }
        if target.is_dir() {
            return Err(OutputError::IsDirectory { target: target.to_path_buf() });
        }
        if !overwrite && target.symlink_metadata().is_ok() {
            return Err(OutputError::Exists { target: target.to_path_buf() });
        }
        let tmp = dir.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|error| OutputError::Create { path: tmp.clone(), error })?;
        Ok(PendingOutput { tmp, target: target.to_path_buf(), file: Some(file), overwrite })
    }

    /// The final name.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The temporary file's name.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file is open until commit")
    }

    /// A writer over the temporary file that asks the kernel to start writing back every
    /// [`WRITEBACK_WINDOW`] bytes as they are written, so the final fsync has little left to do
    /// and the page cache does not fill with dirty pages of a multi-GB file.
    pub fn writer(&mut self) -> EarlyWriteback<'_> {
        EarlyWriteback { file: self.file(), written: 0, flushed: 0 }
    }

    /// Flushes the data to stable storage and moves the file to its final name.
    pub fn commit(mut self) -> Result<(), OutputError> {
        let file = self.file.take().expect("file is open until commit");
        file.sync_all().map_err(|e| OutputError::write(e, &self.target))?;
        drop(file);
        if self.overwrite {
            std::fs::rename(&self.tmp, &self.target).map_err(|source| OutputError::Rename {
                tmp: self.tmp.clone(),
                target: self.target.clone(),
                source,
            })?;
        } else {
            // link(2) fails if the target appeared meanwhile: never clobber without --force.
            std::fs::hard_link(&self.tmp, &self.target).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    OutputError::Appeared { target: self.target.clone() }
                } else {
                    OutputError::Create { path: self.target.clone(), error: e }
                }
            })?;
            let _ = std::fs::remove_file(&self.tmp);
        }
        self.tmp = PathBuf::new();
        Ok(())
    }
}

/// How much is written before writeback of it is started.
pub const WRITEBACK_WINDOW: u64 = 32 << 20;

/// See [`PendingOutput::writer`].
pub struct EarlyWriteback<'a> {
    file: &'a mut File,
    written: u64,
    flushed: u64,
}

impl Write for EarlyWriteback<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.flushed >= WRITEBACK_WINDOW {
            use std::os::fd::AsRawFd;
            let (start, len) = (self.flushed, self.written - self.flushed);
            // SAFETY: sync_file_range only takes a valid fd (owned by `self.file`) and
            // integers. It is a hint: an error (say, a file system without support) is ignored,
            // since the fsync at commit makes the data durable anyway.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    start as libc::off64_t,
                    len as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.flushed = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for PendingOutput {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn commit_and_drop() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("out.xva");
        let mut p = PendingOutput::create(&t, false).unwrap();
        p.file().write_all(b"x").unwrap();
        assert!(!t.exists());
        p.commit().unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"x");
        assert!(PendingOutput::create(&t, false).is_err(), "no overwrite without force");
        let p = PendingOutput::create(&t, true).unwrap();
        drop(p);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "temporary file removed");
        assert!(PendingOutput::create(&d.path().join("nodir/out.xva"), false).is_err());
    }
}
