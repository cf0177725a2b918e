//! `xva extract`: write one disk of an XVA out as a sparse raw image, rebuilt exactly as
//! xapi's importer would write it.
//!
//! The disk is written through the same [`PendingOutput`] as `xva convert`: a temporary file in
//! the target directory, sized to `virtual_size` with `set_len` (so omitted chunks and all-zero
//! chunk contents stay holes), filled with positional writes, synced and moved to the final name
//! only when the whole XVA verified without an E violation. On any failure the temporary file
//! is removed and nothing is left under the final name.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;

use clap::Args as ClapArgs;

use xva::plan::output::{OutputError, PendingOutput};
use xva::xva::reader::{DiskRange, ImportVisitor, StreamedVdi};
use xva::xva::validate::{self, VerifyOptions};

use super::exit::{coded, Exit};
use super::output::sanitize;
use super::verify::{finding_line, verify_error};
use crate::cli::output::errln;

/// Write a disk of an XVA file out as a sparse raw image.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The XVA file (plain, gzip- or zstd-compressed).
    pub file: PathBuf,
    /// Which disk, in xapi's read order (0 = first; `xva verify` lists them).
    #[arg(long, default_value_t = 0)]
    pub disk: usize,
    /// The raw image to write.
    #[arg(short = 'o', long = "output", value_name = "DISK.raw")]
    pub output: PathBuf,
    /// Replace the output if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Writes one disk's ranges into a file; all-zero data is left as holes.
struct DiskWriter<'a> {
    want: usize,
    file: &'a File,
    size: Option<u64>,
    seen: bool,
}

impl ImportVisitor for DiskWriter<'_> {
    fn begin_disk(&mut self, disk: usize, vdi: &StreamedVdi) -> io::Result<()> {
        if disk == self.want {
            self.file.set_len(vdi.virtual_size)?;
            self.size = Some(vdi.virtual_size);
            self.seen = true;
        }
        Ok(())
    }

    fn range(&mut self, range: DiskRange<'_>) -> io::Result<()> {
        let DiskRange::Data { disk, offset, bytes } = range else {
            return Ok(()); // zero gaps stay holes
        };
        let Some(size) = self.size.filter(|_| disk == self.want) else {
            return Ok(());
        };
        // Bytes past virtual_size (an overrun) are not part of the disk.
        let n = size.saturating_sub(offset).min(bytes.len() as u64) as usize;
        let mut i = 0;
        // Write only the non-zero 4 KiB blocks so zero content stays sparse.
        const B: usize = 4096;
        while i < n {
            let into = ((offset + i as u64) % B as u64) as usize;
            let end = (i + B - into).min(n);
            let part = &bytes[i..end];
            if part.iter().any(|&b| b != 0) {
                self.file.write_all_at(part, offset + i as u64)?;
            }
            i = end;
        }
        Ok(())
    }

    fn end_disk(&mut self, disk: usize, _written: u64) -> io::Result<()> {
        if disk == self.want {
            self.size = None;
        }
        Ok(())
    }
}

/// An output error in `xva extract`'s words (exit 4, or 1 for a failed rename).
fn output_error(e: OutputError) -> anyhow::Error {
    let msg = match &e {
        OutputError::IsDirectory { target } => format!("{} is a directory", target.display()),
        OutputError::Exists { target } => format!("{} exists; use --force to replace it", target.display()),
        OutputError::Appeared { target } => {
            format!("{} appeared meanwhile; use --force to replace it", target.display())
        }
        OutputError::Rename { target, source, .. } => format!("renaming to {}: {source}", target.display()),
        _ => e.to_string(),
    };
    coded(Exit::Output, msg)
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let out = &args.output;
    let mut pending = PendingOutput::create(out, args.force).map_err(output_error)?;
    let tmp = pending.temp_path().to_path_buf();
    let file: &File = pending.file();
    let mut writer = DiskWriter { want: args.disk, file, size: None, seen: false };
    let input =
        File::open(&args.file).map_err(|e| coded(Exit::Input, format!("cannot open {}: {e}", args.file.display())))?;
    let report = validate::verify_with_visitor(
        io::BufReader::with_capacity(1 << 20, input),
        &VerifyOptions { compute_sha256: true },
        &mut writer,
    );
    let report = match report {
        Ok(r) => r,
        Err(validate::VerifyError::Visitor(e)) => {
            return Err(coded(Exit::Output, format!("writing {}: {e}", tmp.display())))
        }
        Err(e) => return Err(verify_error(e, &args.file)),
    };
    for f in &report.violations {
        errln!("{}", finding_line(f));
    }
    if report.errors().next().is_some() {
        return Err(coded(
            Exit::Verify,
            format!("{}: xapi would reject this XVA (see the E findings above); nothing written", args.file.display()),
        ));
    }
    let Some(disk) = report.disks.get(args.disk).filter(|_| writer.seen) else {
        return Err(coded(
            Exit::Usage,
            format!("--disk {}: the file streams {} disk(s)", args.disk, report.disks.len()),
        ));
    };
    if !disk.complete {
        return Err(coded(Exit::Verify, format!("disk {} is incomplete; nothing written", args.disk)));
    }
    pending.commit().map_err(|e| match e {
        OutputError::Write { error, .. } => coded(Exit::Output, format!("syncing {}: {error}", tmp.display())),
        e => output_error(e),
    })?;
    errln!(
        "wrote {} ({} bytes, sha256 {}){}",
        sanitize(&out.display().to_string()),
        disk.virtual_size,
        disk.sha256.map(|s| xva::hex::lower(&s)).unwrap_or_default(),
        if report.corruptions().next().is_some() {
            "; note: the C findings above mean xapi would import a damaged disk, and so is this one"
        } else {
            ""
        }
    );
    Ok(Exit::Success)
}
