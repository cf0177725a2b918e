//! Formats `xva` recognises but cannot read yet: VHD, VHDX.
//!
//! Without these entries such an image would fall through to raw, and its metadata would be
//! converted as if it were the guest's disk — silent garbage. Each entry probes the format's
//! magic and refuses to open with an [`ErrorKind::Unsupported`](crate::ErrorKind) error that
//! says what the file is and what to do. `--format raw` still forces a raw read.
//!
//! When a real reader lands, its line in [`FORMATS`](crate::FORMATS) (in `lib.rs`) replaces
//! the entry from here in place, keeping the probe order; nothing else lists these formats
//! (`--help`, errors and tests ask [`probe::readable`](crate::probe::readable) and
//! [`probe::recognised`](crate::probe::recognised)).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{Confidence, ProbeInput};
use crate::policy::OpenCtx;
use crate::reader::BlockReader;
use crate::reader::Format;
use crate::source::ByteSource;

/// The VHDX file type identifier at offset 0.
const VHDX_MAGIC: &[u8; 8] = b"vhdxfile";
/// The VHD footer cookie: at offset 0 (copy of the footer in dynamic and differencing disks)
/// or in the last 512 bytes (every VHD; the only copy in a fixed disk).
const VHD_COOKIE: &[u8; 8] = b"conectix";

/// CERTAIN when the file starts with `magic`.
fn magic_at_start(input: &ProbeInput<'_>, magic: &[u8]) -> Confidence {
    if input.head.starts_with(magic) {
        Confidence::CERTAIN
    } else {
        Confidence::NO
    }
}

fn refuse(src: Arc<dyn ByteSource>, what: &str) -> Result<Box<dyn BlockReader>> {
    Err(Error::unsupported(format!(
        "this is a {what} image, which xva cannot read yet; convert it to raw first \
         (`qemu-img convert -O raw IMAGE disk.raw`), or pass --format raw if it really is a raw disk"
    ))
    .with_path(src.path()))
}

/// VHDX.
pub static VHDX: Format = Format {
    name: "vhdx",
    title: "VHDX",
    readable: false,
    description: "Hyper-V VHDX image (recognised, not readable yet)",
    probe: |input: &ProbeInput<'_>| magic_at_start(input, VHDX_MAGIC),
    open: |src, _ctx: &OpenCtx<'_>| refuse(src, "VHDX"),
};

/// VHD (fixed, dynamic, differencing).
pub static VHD: Format = Format {
    name: "vhd",
    title: "VHD",
    readable: false,
    description: "Virtual PC / Hyper-V / XenServer VHD image (recognised, not readable yet)",
    probe: |input: &ProbeInput<'_>| {
        if input.head.starts_with(VHD_COOKIE) {
            Confidence::CERTAIN
        } else if input.tail.len() == 512 && input.tail.starts_with(VHD_COOKIE) {
            // A fixed VHD: raw data followed by the footer.
            Confidence::LIKELY
        } else {
            Confidence::NO
        }
    },
    open: |src, _ctx: &OpenCtx<'_>| refuse(src, "VHD"),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::probe_input;
    use std::path::Path;

    fn probe(head: &[u8], tail: &[u8]) -> &'static str {
        probe_input(&ProbeInput { head, tail, len: 4096, path: Path::new("x") }).0.name
    }

    #[test]
    fn magics_are_recognised_and_refused() {
        assert_eq!(probe(b"QFI\xfb\0\0\0\x03", b""), "qcow2");
        assert_eq!(probe(b"vhdxfile", b""), "vhdx");
        assert_eq!(probe(b"conectix", b""), "vhd");
        let mut tail = vec![0u8; 512];
        tail[..8].copy_from_slice(b"conectix");
        assert_eq!(probe(&[0u8; 512], &tail), "vhd");
        assert_eq!(probe(&[0u8; 512], &[0u8; 512]), "raw");
        let src: Arc<dyn ByteSource> = Arc::new(crate::MemSource::new(b"vhdxfile".to_vec(), "disk.vhdx"));
        let policy = crate::OpenPolicy::default();
        let e = (VHDX.open)(src, &OpenCtx::new(&policy)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
        assert!(e.to_string().contains("disk.vhdx") && e.to_string().contains("qemu-img convert"), "{e}");
    }
}
