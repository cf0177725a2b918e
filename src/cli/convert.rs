//! `xva convert` (in progress).

use clap::Args as ClapArgs;

pub const AFTER_HELP: &str = "";

/// Convert disks into an XVA file.
#[derive(ClapArgs, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<super::exit::Exit> {
    anyhow::bail!("not yet")
}
