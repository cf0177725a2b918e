//! The format registry's machinery: detection, lookups and the openers over the ordered list
//! [`FORMATS`] (which lives in `lib.rs`, beside the format modules, so that adding a format
//! touches one file there).
//!
//! Probing reads the first [`HEAD_LEN`] bytes and the last 512 of a file and asks every format
//! in [`FORMATS`] how sure it is. The highest confidence wins; ties go to the format listed
//! first; raw answers [`Confidence::FALLBACK`] for everything and is last. A probe never fails:
//! a short or foreign file is simply "not mine". The full order and its reasons are in
//! `docs/architecture.md` (magics first, a VHD footer at the end of the file, VMDK text
//! descriptors late, raw last).

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
pub use crate::format::{Confidence, ProbeInput, HEAD_LEN, TAIL_LEN};
use crate::policy::{OpenCtx, OpenPolicy};
use crate::reader::BlockReader;
pub use crate::reader::{Format, OpenFn};
use crate::source::{ByteSource, FileSource};
pub use crate::FORMATS;

/// The format called `name` (case-insensitive).
pub fn by_name(name: &str) -> Option<&'static Format> {
    FORMATS.iter().copied().find(|f| f.name.eq_ignore_ascii_case(name))
}

/// Names of the registered formats, for messages.
pub fn names() -> Vec<&'static str> {
    FORMATS.iter().map(|f| f.name).collect()
}

/// The formats xva reads, raw first (it is the common case), then in probe order: the list
/// `--help` and messages show.
pub fn readable() -> Vec<&'static Format> {
    let mut out: Vec<&'static Format> = FORMATS.iter().copied().filter(|f| f.readable).collect();
    out.sort_by_key(|f| f.name != "raw");
    out
}

/// The formats xva recognises but refuses to read (with advice), in probe order.
pub fn recognised() -> Vec<&'static Format> {
    FORMATS.iter().copied().filter(|f| !f.readable).collect()
}

/// `a, b or c` (`a` alone, `a or b`): how messages and `--help` list names.
pub fn or_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Asks every format about `src` and returns the most confident one, with its confidence.
pub fn detect(src: &dyn ByteSource) -> Result<(&'static Format, Confidence)> {
    let len = src.len();
    let head_len = len.min(HEAD_LEN as u64) as usize;
    let mut head = vec![0u8; head_len];
    src.read_exact_at(&mut head, 0)
        .map_err(|e| Error::io("reading the start of the file to detect its format", e).with_path(src.path()))?;
    let tail_len = len.min(TAIL_LEN as u64) as usize;
    let mut tail = vec![0u8; tail_len];
    src.read_exact_at(&mut tail, len - tail_len as u64)
        .map_err(|e| Error::io("reading the end of the file to detect its format", e).with_path(src.path()))?;
    let input = ProbeInput { head: &head, tail: &tail, len, path: src.path() };
    Ok(probe_input(&input))
}

/// The most confident format for an already-read probe input.
pub fn probe_input(input: &ProbeInput<'_>) -> (&'static Format, Confidence) {
    let mut best: (&'static Format, Confidence) = (FORMATS[FORMATS.len() - 1], Confidence::NO);
    for f in FORMATS {
        let c = (f.probe)(input);
        if c > best.1 {
            best = (f, c);
        }
    }
    best
}

/// How to open the image the user names.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// `--format`: skip probing the top image.
    pub format: Option<&'static Format>,
    /// Where implicit references may point.
    pub policy: OpenPolicy,
}

/// Opens the disk image at `path` (probing its format unless one is given) with its chain.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Box<dyn BlockReader>> {
    let src: Arc<dyn ByteSource> = Arc::new(FileSource::open(path)?);
    let ctx = OpenCtx::new(&opts.policy);
    open_source(src, opts.format, &ctx)
}

/// Opens `src` in `format`, or in the format probing finds.
pub fn open_source(
    src: Arc<dyn ByteSource>,
    format: Option<&'static Format>,
    ctx: &OpenCtx<'_>,
) -> Result<Box<dyn BlockReader>> {
    let format = match format {
        Some(f) => f,
        None => detect(src.as_ref())?.0,
    };
    (format.open)(src, ctx)
}

/// Opens a data file an image names (a VMDK extent), through the open policy.
pub fn open_data_file(policy: &OpenPolicy, referrer: &Path, name: &str, what: &str) -> Result<Arc<dyn ByteSource>> {
    let path = policy.resolve(referrer, name, what)?;
    Ok(Arc::new(FileSource::open(&path)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemSource;

    #[test]
    fn registry_invariants() {
        let names = names();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "format names are unique");
        assert_eq!(*names.last().unwrap(), "raw", "raw is the last resort");
        for f in FORMATS {
            assert_eq!(by_name(&f.name.to_uppercase()).unwrap().name, f.name);
        }
        let listed = readable().len() + recognised().len();
        assert_eq!(listed, FORMATS.len(), "every format is readable or recognised");
        assert_eq!(readable()[0].name, "raw", "raw is listed first for people");
        assert!(readable().iter().all(|f| f.readable) && recognised().iter().all(|f| !f.readable));
    }

    #[test]
    fn or_lists() {
        assert_eq!(or_list(&[]), "");
        assert_eq!(or_list(&["raw"]), "raw");
        assert_eq!(or_list(&["raw", "vmdk"]), "raw or vmdk");
        assert_eq!(or_list(&["raw", "vmdk", "vhd"]), "raw, vmdk or vhd");
    }

    #[test]
    fn probes_never_fail_on_empty_or_tiny_input() {
        for data in [&b""[..], b"\0", b"K", b"KDMV", b"QFI\xfb"] {
            let src = MemSource::new(data.to_vec(), "tiny");
            let (f, c) = detect(&src).unwrap();
            assert!(c >= Confidence::FALLBACK, "{}", f.name);
            for f in FORMATS {
                let input = ProbeInput { head: data, tail: data, len: data.len() as u64, path: Path::new("tiny") };
                let _ = (f.probe)(&input);
            }
        }
    }
}
