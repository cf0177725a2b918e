//! `xva verify` (in progress).

use clap::Args as ClapArgs;
use std::path::PathBuf;

/// Check an XVA file the way xapi's importer will.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The XVA file (plain, gzip- or zstd-compressed).
    pub file: PathBuf,
}

pub fn run(_args: Args) -> anyhow::Result<super::exit::Exit> {
    anyhow::bail!("xva verify is not implemented yet")
}
