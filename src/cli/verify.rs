//! `xva verify`: check an XVA file the way xapi's importer will meet it.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use serde_json::json;

use xva::xva::validate::{self, Finding, VerifyError, VerifyOptions, VerifyReport};

use super::exit::{coded, Exit};
use super::map::Style;
use super::output::{human_bytes, sanitize};
use crate::cli::output::outln;

/// Check an XVA file the way xapi's importer will.
///
/// Reads the whole file (plain, gzip or zstd), checks every rule of the XVA validator (tar
/// headers, ova.xml fields and references, chunk order, checksums, sizes) and rebuilds each disk
/// as xapi would to report its SHA-256. Exits 0 when nothing would make xapi fail or corrupt a
/// disk (warnings allowed), 5 otherwise.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The XVA file (plain, gzip- or zstd-compressed).
    pub file: PathBuf,
    /// Expected SHA-256 of a disk, as `N=HEX` (disk N in read order) or `HEX` (disk 0).
    /// Repeatable; a mismatch exits 5.
    #[arg(long = "expect-sha256", value_name = "[N=]HEX")]
    pub expect_sha256: Vec<String>,
    /// Output style.
    #[arg(long, value_enum, default_value_t = Style::Human)]
    pub output: Style,
}

/// Parses `N=HEX` or `HEX`.
pub fn parse_expect(s: &str) -> anyhow::Result<(usize, [u8; 32])> {
    let (idx, hex) = match s.split_once('=') {
        Some((n, h)) => (
            n.trim()
                .parse::<usize>()
                .map_err(|_| coded(Exit::Usage, format!("--expect-sha256 {s:?}: disk index {n:?} is not a number")))?,
            h.trim(),
        ),
        None => (0, s.trim()),
    };
    let digest =
        parse_hex32(hex).ok_or_else(|| coded(Exit::Usage, format!("--expect-sha256 {s:?}: expected 64 hex digits")))?;
    Ok((idx, digest))
}

fn parse_hex32(h: &str) -> Option<[u8; 32]> {
    if h.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Turns a [`VerifyError`] into an error with the right exit code.
pub fn verify_error(e: VerifyError, path: &std::path::Path) -> anyhow::Error {
    let msg = format!("{}: {:#}", path.display(), anyhow::Error::new(e));
    coded(Exit::Input, msg)
}

/// A finding as one line.
pub fn finding_line(f: &Finding) -> String {
    sanitize(&f.to_string())
}

fn finding_json(f: &Finding) -> serde_json::Value {
    json!({
        "severity": f.severity.letter().to_string(),
        "rule": f.rule,
        "member": f.member,
        "offset": f.offset,
        "message": f.message,
    })
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    let mut expects = Vec::new();
    for e in &args.expect_sha256 {
        expects.push(parse_expect(e)?);
    }
    let opts = VerifyOptions { compute_sha256: true };
    let report = validate::verify_path(&args.file, &opts).map_err(|e| verify_error(e, &args.file))?;
    let mut mismatches = Vec::new();
    for (idx, want) in &expects {
        match report.disks.get(*idx) {
            Some(d) if d.sha256.as_ref() == Some(want) => {}
            Some(d) => mismatches.push(format!(
                "disk {idx} ({}): sha256 is {}, expected {}",
                sanitize(&d.id),
                d.sha256.map_or_else(|| "unknown (disk incomplete)".to_string(), |s| xva::hex::lower(&s)),
                xva::hex::lower(want)
            )),
            None => {
                mismatches.push(format!("disk {idx}: no such disk (the file streams {} disk(s))", report.disks.len()))
            }
        }
    }
    let ok = report.is_ok() && mismatches.is_empty();
    match args.output {
        Style::Json => print_json(&args, &report, &mismatches, ok)?,
        Style::Human => print_human(&args, &report, &mismatches, ok)?,
    }
    Ok(if ok { Exit::Success } else { Exit::Verify })
}

fn print_json(args: &Args, r: &VerifyReport, mismatches: &[String], ok: bool) -> anyhow::Result<()> {
    let v = json!({
        "file": args.file.display().to_string(),
        "ok": ok,
        "compression": r.compression.name(),
        "complete": r.complete,
        "export_vsn": r.export_vsn,
        "xapi_version": r.xapi_version.map(|(a, b)| format!("{a}.{b}")),
        "vms": r.vm_names,
        "first_chunk_len": r.first_chunk_len,
        "tar_bytes": r.tar_bytes,
        "errors": r.errors().count(),
        "corruptions": r.corruptions().count(),
        "warnings": r.warnings().count(),
        "findings": r.violations.iter().map(finding_json).collect::<Vec<_>>(),
        "disks": r.disks.iter().enumerate().map(|(i, d)| json!({
            "index": i,
            "id": d.id,
            "name_label": d.name_label,
            "virtual_size": d.virtual_size,
            "chunks": d.chunks,
            "zero_gaps": d.zero_gaps,
            "zero_chunks": d.zero_chunks,
            "dummy_chunks": d.dummy_chunks,
            "xxhash_members": d.xxhash_members,
            "complete": d.complete,
            "sha256": d.sha256.map(|s| xva::hex::lower(&s)),
        })).collect::<Vec<_>>(),
        "sha256_mismatches": mismatches,
    });
    let s = serde_json::to_string_pretty(&v).context("rendering JSON")?;
    outln!("{s}")?;
    Ok(())
}

fn print_human(args: &Args, r: &VerifyReport, mismatches: &[String], ok: bool) -> std::io::Result<()> {
    outln!(
        "{}: {} tar stream, {}",
        sanitize(&args.file.display().to_string()),
        r.compression.name(),
        human_bytes(r.tar_bytes)
    )?;
    if let Some((a, b)) = r.xapi_version {
        outln!(
            "header: xapi {a}.{b}, export_vsn {}, VM {}",
            r.export_vsn.unwrap_or(0),
            sanitize(&r.vm_names.join(", "))
        )?;
    }
    for f in &r.violations {
        outln!("{}", finding_line(f))?;
    }
    for (i, d) in r.disks.iter().enumerate() {
        outln!(
            "disk {i}: {} {:?} {} ({} bytes), {} chunk(s), {} zero gap(s){}{}",
            sanitize(&d.id),
            sanitize(&d.name_label),
            human_bytes(d.virtual_size),
            d.virtual_size,
            d.chunks,
            d.zero_gaps,
            if d.complete { "" } else { ", INCOMPLETE" },
            d.sha256.map(|s| format!(", sha256 {}", xva::hex::lower(&s))).unwrap_or_default()
        )?;
    }
    for m in mismatches {
        outln!("mismatch: {m}")?;
    }
    outln!(
        "{}: {} error(s), {} corruption(s), {} warning(s){}",
        if ok { "OK" } else { "FAILED" },
        r.errors().count(),
        r.corruptions().count(),
        r.warnings().count(),
        if mismatches.is_empty() { String::new() } else { format!(", {} sha256 mismatch(es)", mismatches.len()) }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_forms() {
        let h = "ab".repeat(32);
        assert_eq!(parse_expect(&h).unwrap(), (0, [0xab; 32]));
        assert_eq!(parse_expect(&format!("2={h}")).unwrap(), (2, [0xab; 32]));
        assert!(parse_expect("1=abc").is_err());
        assert!(parse_expect(&format!("x={h}")).is_err());
    }
}
