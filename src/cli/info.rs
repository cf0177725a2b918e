//! `xva info`: what a disk image is, how big, how much of it holds data, and its chain.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use serde_json::json;

use super::exit::Exit;
use super::map::Style;
use super::open::OpenArgs;
use super::output::{human_bytes, sanitize};
use crate::cli::output::outln;

/// Show a disk image's format, virtual size, allocated bytes and chain.
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

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let reader = args.open.open(&args.disk)?;
    let size = reader.virtual_size();
    let mut allocated = 0u64;
    for m in reader.extents(0..size) {
        let m = m?;
        if m.data {
            allocated += m.len;
        }
    }
    let mut layers = Vec::new();
    for (depth, layer) in reader.layers().into_iter().enumerate() {
        let file_size = std::fs::metadata(layer.path()).map(|m| m.len()).ok();
        layers.push(json!({
            "depth": depth,
            "path": layer.path().display().to_string(),
            "format": layer.format().name,
            "virtual_size": layer.virtual_size(),
            "data_bytes": layer.layer_data_bytes()?,
            "file_size": file_size,
            "details": layer.details().into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect::<serde_json::Map<_, _>>(),
        }));
    }
    if args.output == Style::Json {
        let v = json!({
            "path": args.disk.display().to_string(),
            "format": reader.format().name,
            "virtual_size": size,
            "allocated_bytes": allocated,
            "chain": layers,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(Exit::Success);
    }
    outln!("image:          {}", sanitize(&args.disk.display().to_string()))?;
    outln!("format:         {}", reader.format().name)?;
    outln!("virtual size:   {} ({size} bytes)", human_bytes(size))?;
    outln!("allocated:      {} ({allocated} bytes that must be read)", human_bytes(allocated))?;
    outln!("chain:          {} layer(s)", layers.len())?;
    for l in &layers {
        outln!(
            "  [{}] {} ({}, {} of data in this layer)",
            l["depth"],
            sanitize(l["path"].as_str().unwrap_or("")),
            l["format"].as_str().unwrap_or(""),
            human_bytes(l["data_bytes"].as_u64().unwrap_or(0)),
        )?;
        if let Some(details) = l["details"].as_object() {
            for (k, v) in details {
                outln!("      {k}: {}", sanitize(v.as_str().unwrap_or("")))?;
            }
        }
    }
    Ok(Exit::Success)
}
