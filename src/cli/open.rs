//! Options shared by every command that opens disk images.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use xva::backends::{probe, BlockReader, OpenOptions, OpenPolicy};

/// How to open disk images.
#[derive(Args, Debug, Clone, Default)]
pub struct OpenArgs {
    /// Disk image format, instead of detecting it (the list comes from the format registry).
    #[arg(long, value_name = "FORMAT", help = format_help())]
    pub format: Option<String>,
    /// Allow backing files, extents and parents inside DIR (repeatable). By default an image
    /// may only name files in its own directory.
    #[arg(long = "allow-path", value_name = "DIR")]
    pub allow_path: Vec<PathBuf>,
    /// Allow backing files, extents and parents anywhere (trust the images completely).
    #[arg(long)]
    pub allow_any_path: bool,
    /// Open snapshot chains whose parent is not the one the child expects, such as a VMDK
    /// parentCID that does not match the parent's CID (the parent was changed after the
    /// snapshot was taken: the result may be inconsistent). Also spelled --ignore-cid.
    #[arg(long, alias = "ignore-cid")]
    pub ignore_parent_mismatch: bool,
    /// Read images whose format says their metadata may be inconsistent (a qcow2 with the
    /// corrupt bit set): the result may be wrong. Repairing a copy with `qemu-img check -r all`
    /// is the better way.
    #[arg(long)]
    pub allow_corrupt: bool,
}

/// `--format`'s help: the formats the registry reads.
fn format_help() -> String {
    let names: Vec<&str> = probe::readable().iter().map(|f| f.name).collect();
    format!("Disk image format, instead of detecting it: {}", probe::or_list(&names))
}

/// What `xva --help` says xva reads: the readable formats of the registry, in prose.
pub fn disk_formats_prose() -> String {
    let titles: Vec<&str> = probe::readable().iter().map(|f| f.title).collect();
    titles.join(", ")
}

impl OpenArgs {
    /// The library's open options.
    pub fn options(&self) -> anyhow::Result<OpenOptions> {
        let format = match &self.format {
            None => None,
            Some(name) => Some(probe::by_name(name).ok_or_else(|| {
                super::exit::coded(
                    super::exit::Exit::Usage,
                    format!("unknown --format {name:?}; known formats: {}", probe::names().join(", ")),
                )
            })?),
        };
        let policy = OpenPolicy {
            allow_any: self.allow_any_path,
            allowed_dirs: self.allow_path.clone(),
            ignore_parent_mismatch: self.ignore_parent_mismatch,
            allow_corrupt: self.allow_corrupt,
            ..Default::default()
        };
        Ok(OpenOptions { format, policy })
    }

    /// Opens one disk image with these options.
    pub fn open(&self, path: &std::path::Path) -> anyhow::Result<Box<dyn BlockReader>> {
        let opts = self.options()?;
        xva::backends::open(path, &opts).with_context(|| format!("cannot open disk {}", path.display()))
    }
}
