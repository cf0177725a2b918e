//! Formats `xva` recognises but cannot read yet: VirtualBox VDI, QED, Parallels.
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

/// VirtualBox VDI: the image signature at offset 0x40 (little-endian 0xbeda107f), after a
/// 64-byte text line ("<<< Oracle VM VirtualBox Disk Image >>>" or older wordings).
const VDI_SIGNATURE_OFFSET: usize = 0x40;
const VDI_SIGNATURE: [u8; 4] = 0xbeda_107f_u32.to_le_bytes();
/// QEMU Enhanced Disk: `QED\0` at offset 0.
const QED_MAGIC: &[u8; 4] = b"QED\0";
/// Parallels / Virtuozzo: one of two 16-byte signatures at offset 0.
const PARALLELS_MAGICS: [&[u8; 16]; 2] = [b"WithoutFreeSpace", b"WithouFreSpacExt"];

/// CERTAIN when the file starts with `magic`.
fn magic_at_start(input: &ProbeInput<'_>, magic: &[u8]) -> Confidence {
    if input.head.starts_with(magic) {
        Confidence::CERTAIN
    } else {
        Confidence::NO
    }
}

fn refuse(src: Arc<dyn ByteSource>, what: &str, name: &str) -> Result<Box<dyn BlockReader>> {
    Err(Error::unsupported(format!(
        "this is a {what} image (format `{name}`), which xva cannot read yet; convert it to raw first \
         (`qemu-img convert -O raw IMAGE disk.raw`), or pass --format raw if it really is a raw disk"
    ))
    .with_path(src.path()))
}

/// VirtualBox VDI.
pub static VDI: Format = Format {
    name: "vdi",
    title: "VirtualBox VDI",
    readable: false,
    description: "VirtualBox VDI image (recognised, not readable yet)",
    probe: |input: &ProbeInput<'_>| {
        let sig = input.head.get(VDI_SIGNATURE_OFFSET..VDI_SIGNATURE_OFFSET + 4);
        if sig == Some(&VDI_SIGNATURE[..]) {
            Confidence::CERTAIN
        } else {
            Confidence::NO
        }
    },
    open: |src, _ctx: &OpenCtx<'_>| refuse(src, "VirtualBox VDI", "vdi"),
};

/// QED.
pub static QED: Format = Format {
    name: "qed",
    title: "QED",
    readable: false,
    description: "QEMU Enhanced Disk image (recognised, not readable yet)",
    probe: |input: &ProbeInput<'_>| magic_at_start(input, QED_MAGIC),
    open: |src, _ctx: &OpenCtx<'_>| refuse(src, "QED", "qed"),
};

/// Parallels / Virtuozzo.
pub static PARALLELS: Format = Format {
    name: "parallels",
    title: "Parallels",
    readable: false,
    description: "Parallels / Virtuozzo disk image (recognised, not readable yet)",
    probe: |input: &ProbeInput<'_>| {
        PARALLELS_MAGICS.iter().map(|m| magic_at_start(input, &m[..])).max().unwrap_or(Confidence::NO)
    },
    open: |src, _ctx: &OpenCtx<'_>| refuse(src, "Parallels", "parallels"),
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
        let mut vdi = vec![0u8; 512];
        vdi[0x40..0x44].copy_from_slice(&VDI_SIGNATURE);
        assert_eq!(probe(&vdi, b""), "vdi");
        assert_eq!(probe(b"QED\0\0\0\x01\0", b""), "qed");
        assert_eq!(probe(b"WithoutFreeSpace\x02\0\0\0", b""), "parallels");
        assert_eq!(probe(b"WithouFreSpacExt\x02\0\0\0", b""), "parallels");
        assert_eq!(probe(b"QED", b""), "raw");
        let src: Arc<dyn ByteSource> = Arc::new(crate::MemSource::new(vdi, "disk.vdi"));
        let policy = crate::OpenPolicy::default();
        let e = (VDI.open)(src, &OpenCtx::new(&policy)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
        assert!(e.to_string().contains("disk.vdi") && e.to_string().contains("qemu-img convert"), "{e}");
    }
}
