//! `xva map`: the resolved allocation map of a disk image.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args as ClapArgs, ValueEnum};

use super::exit::Exit;
use super::open::OpenArgs;

/// Print a disk image's allocation map.
///
/// With `--output json` the fields are those of `qemu-img map --output=json` (start, length,
/// depth, present, zero, data, compressed, and offset where the layer's format says: qcow2),
/// one object per coalesced range, so the two can be diffed.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The disk image.
    pub disk: PathBuf,
    /// Output style.
    #[arg(long, value_enum, default_value_t = Style::Human)]
    pub output: Style,
    #[command(flatten)]
    pub open: OpenArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Style {
    Human,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let reader = args.open.open(&args.disk)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.output == Style::Human {
        writeln!(
            out,
            "{:>16} {:>16} {:>5} {:>7} {:>5} {:>5} {:>10} {:>16}",
            "start", "length", "depth", "present", "zero", "data", "compressed", "offset"
        )?;
    } else {
        write!(out, "[")?;
    }
    let mut first = true;
    for m in reader.extents(0..reader.virtual_size()) {
        let m = m?;
        match args.output {
            Style::Human => writeln!(
                out,
                "{:>#16x} {:>#16x} {:>5} {:>7} {:>5} {:>5} {:>10} {:>16}",
                m.start,
                m.len,
                m.depth,
                m.present,
                m.zero,
                m.data,
                m.compressed,
                m.offset.map(|o| format!("{o:#x}")).unwrap_or_default()
            )?,
            Style::Json => {
                if !first {
                    writeln!(out, ",")?;
                }
                write!(
                    out,
                    "{{ \"start\": {}, \"length\": {}, \"depth\": {}, \"present\": {}, \"zero\": {}, \"data\": {}, \
                     \"compressed\": {}",
                    m.start, m.len, m.depth, m.present, m.zero, m.data, m.compressed
                )?;
                if let Some(o) = m.offset {
                    write!(out, ", \"offset\": {o}")?;
                }
                write!(out, "}}")?;
            }
        }
        first = false;
    }
    if args.output == Style::Json {
        writeln!(out, "]")?;
    }
    out.flush()?;
    Ok(Exit::Success)
}
