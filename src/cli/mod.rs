//! The command line: argument definitions, one module per subcommand, error reporting.

pub mod convert;
pub mod exit;
pub mod extract;
pub mod info;
pub mod inspect;
pub mod map;
pub mod open;
pub mod output;
pub mod progress;
pub mod signals;
pub mod source;
pub mod upload;
pub mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cli::output::errln;
use exit::Exit;

/// Move Xen and VMware guests to XenServer / XCP-ng.
///
/// The long description (`xva --help`) is [`long_about`], which lists the disk formats from
/// the format registry.
#[derive(Parser, Debug)]
#[command(
    name = "xva",
    version,
    long_about = long_about(),
    after_help = exit::EXIT_CODES_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// `xva --help`'s description; the disk formats come from the registry.
fn long_about() -> String {
    format!(
        "Move Xen and VMware guests to XenServer / XCP-ng.\n\n\
         xva reads a guest's definition (xm/xend or xl config, SXP, VMware .vmx, OVF/OVA) and its \
         disks ({}) and writes an XVA file that `xe vm-import`, XenCenter and XCP-ng Center import, \
         or streams it straight into a host. Sources are opened read-only and never modified.",
        open::disk_formats_prose()
    )
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Convert a guest (config, .vmx, .ovf/.ova) or disks into an XVA file, or into a host.
    #[command(after_help = convert::AFTER_HELP)]
    Convert(Box<convert::Args>),
    /// Show a disk image's format, size, allocation and chain.
    Info(info::Args),
    /// Show what a guest definition (xm, xl, SXP, VMX, OVF, OVA) or bare disks would convert to,
    /// and what in the guest's own disks would stop it booting on the target (advisories).
    Inspect(inspect::Args),
    /// Print a disk image's allocation map (like `qemu-img map`).
    Map(map::Args),
    /// Check an XVA file the way xapi's importer will.
    Verify(verify::Args),
    /// Write one disk of an XVA file out as a sparse raw image.
    Extract(extract::Args),
}

/// Runs [`run`] under the panic hook: a panic (a bug) ends as `xva: internal error: ...` and
/// exit code 1, after unwinding has run the destructors that remove partial output.
pub fn main() -> ExitCode {
    install_panic_hook();
    std::panic::catch_unwind(run).unwrap_or_else(|_| Exit::Failure.into())
}

/// Replaces Rust's panic message (`thread 'main' panicked at ...`, exit code 101) with one
/// that says it is a bug in `xva`; `RUST_BACKTRACE=1` adds the backtrace.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with no message".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        errln!("xva: internal error: {}{at}", output::sanitize(&what));
        errln!(
            "xva: this is a bug in xva {}; please report it with the command line and this message",
            env!("CARGO_PKG_VERSION")
        );
        let bt = std::backtrace::Backtrace::capture();
        if bt.status() == std::backtrace::BacktraceStatus::Captured {
            errln!("{bt}");
        }
    }));
}

/// Parses the command line, runs the command, prints any error once and maps it to an exit code.
fn run() -> ExitCode {
    // Debug builds only: lets the test suite reach the panic hook.
    #[cfg(debug_assertions)]
    if std::env::var_os("XVA_DEBUG_PANIC").is_some() {
        panic!("XVA_DEBUG_PANIC is set");
    }
    // xva.py spellings that clap cannot express as aliases of a subcommand's flags: a bare
    // `xva -d disk.img -n name ...` (no subcommand) means `xva convert ...`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(first) = args.get(1).and_then(|a| a.to_str()) {
        if first.starts_with('-') && !matches!(first, "-h" | "--help" | "-V" | "--version") {
            args.insert(1, "convert".into());
        }
    }
    let cli = Cli::parse_from(args);
    let result = match cli.command {
        Command::Convert(a) => convert::run(*a),
        Command::Info(a) => info::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Map(a) => map::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Extract(a) => extract::run(a),
    };
    match result {
        Ok(code) => code.into(),
        Err(err) => {
            if is_broken_pipe(&err) {
                return Exit::Success.into();
            }
            errln!("xva: error: {}", output::sanitize(&format!("{err:#}")));
            exit::classify(&err).into()
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}
