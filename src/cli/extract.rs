//! `xva extract` (in progress).

use clap::Args as ClapArgs;
use std::path::PathBuf;

/// Write a disk of an XVA file out as a sparse raw image.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The XVA file (plain, gzip- or zstd-compressed).
    pub file: PathBuf,
}

pub fn run(_args: Args) -> anyhow::Result<super::exit::Exit> {
    anyhow::bail!("xva extract is not implemented yet")
}
