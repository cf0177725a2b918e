//! The `xva` command: a thin layer over the `xva` library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
