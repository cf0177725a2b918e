//! How a layer names its parent and how the chain checks that it found the right one.
//!
//! ```text
//!   child layer ── ParentRef { name, field, format, expect } ──► open_parent
//!                                                                  │ candidates(name): as written,
//!                                                                  │ or the base name next to the child
//!                                                                  │ policy, depth, loop checks
//!                                                                  ▼
//!                                         parent layer ── identity() ──► check_link(expect)
//! ```
//!
//! Each format states what identifies a layer ([`LayerId`]: a VMDK `CID`, a VHD unique id and
//! time stamp, a VHDX DataWriteGuid) and what a child expects of its parent; the comparison is
//! done here, once, for every format. `OpenPolicy::ignore_parent_mismatch` turns it off.
//!
//! Names stored in images come from other systems: `/vmfs/volumes/ds1/vm/base.vmdk`,
//! `C:\vms\base.vhd`, `..\base.vmdk`; [`candidates`] turns them into names the open policy can
//! judge, and [`decode_utf16le`] (strict) and [`decode_utf16_lossy`] read the UTF-16 names of
//! VHD/VHDX parent locators and headers.

use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::policy::{OpenCtx, OpenPolicy};
use crate::probe::open_source;
use crate::reader::BlockReader;
use crate::reader::Format;
pub use crate::reader::LayerId;
use crate::source::{ByteSource, FileSource};

/// Checks that `parent` is what the child at `child` expects (`expect`), unless the policy
/// ignores mismatches. A parent that states no identity of that kind is accepted (it is in
/// another format, or too old to have one).
pub fn check_link(child: &Path, expect: &LayerId, parent: &dyn BlockReader, policy: &OpenPolicy) -> Result<()> {
    if policy.ignore_parent_mismatch {
        return Ok(());
    }
    match parent.identity() {
        Some(have) if have.same_kind(expect) && have != *expect => Err(Error::corrupt(format!(
            "snapshot chain is broken: this delta expects its parent {} to have {expect}, but the \
             parent has {have} (the parent was modified after the snapshot was taken). Pass \
             --ignore-parent-mismatch (formerly --ignore-cid) to read the chain anyway",
            parent.path().display()
        ))
        .with_path(child)),
        _ => Ok(()),
    }
}

/// Names to try for a parent name stored in an image, in order: as written (relative to the
/// child's directory, or absolute), and for an absolute path its base name in the child's
/// directory (the image was moved from where it was made). A Windows path (`C:\vms\base.vhd`,
/// `..\base.vmdk`) can only mean its base name in the child's directory.
pub fn candidates(name: &str) -> Vec<String> {
    let b = name.as_bytes();
    let windows = name.contains('\\') || (b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic());
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name).to_string();
    if windows {
        vec![base]
    } else if name.starts_with('/') {
        vec![name.to_string(), base]
    } else {
        vec![name.to_string()]
    }
}

/// Decodes a UTF-16LE name (a VHD or VHDX parent locator), up to the first NUL; errors (naming
/// `what`) on an odd length or an unpaired surrogate.
pub fn decode_utf16le(bytes: &[u8], what: &str) -> Result<String> {
    if !bytes.len().is_multiple_of(2) {
        return Err(Error::corrupt(format!("{what}: UTF-16 text of odd length {}", bytes.len())));
    }
    char::decode_utf16(utf16_units(bytes, true))
        .collect::<std::result::Result<String, _>>()
        .map_err(|e| Error::corrupt(format!("{what}: invalid UTF-16 ({e})")))
}

/// Decodes UTF-16 (little- or big-endian) up to the first NUL; unpaired surrogates become
/// U+FFFD (libyal found them in real VHD images); a trailing odd byte is ignored.
pub fn decode_utf16_lossy(bytes: &[u8], little_endian: bool) -> String {
    char::decode_utf16(utf16_units(bytes, little_endian)).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)).collect()
}

/// The UTF-16 code units of `bytes` up to the first NUL (a trailing odd byte is dropped).
fn utf16_units(bytes: &[u8], little_endian: bool) -> impl Iterator<Item = u16> + '_ {
    bytes
        .chunks_exact(2)
        .map(move |c| if little_endian { u16::from_le_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], c[1]]) })
        .take_while(|&u| u != 0)
}

/// How a layer names its parent.
#[derive(Clone, Debug)]
pub struct ParentRef<'a> {
    /// The name as the image stores it (`parentFileNameHint`, a backing file, a locator).
    pub name: &'a str,
    /// What the image calls the name, for messages (`parentFileNameHint`, `backing file`).
    pub field: &'a str,
    /// The parent's format, when the child says; otherwise it is probed.
    pub format: Option<&'static Format>,
    /// What the child expects of the parent's [`BlockReader::identity`].
    pub expect: Option<LayerId>,
}

/// Opens the parent `r` names for the image at `child`: tries the [`candidates`] for its name
/// through the open policy, the depth limit and loop detection, then checks the link.
pub fn open_parent(ctx: &OpenCtx<'_>, child: &Path, r: &ParentRef<'_>) -> Result<Box<dyn BlockReader>> {
    let cands = candidates(r.name);
    let mut last = None;
    for (i, c) in cands.iter().enumerate() {
        match ctx.policy.resolve(child, c, "parent") {
            Ok(_) => {
                let parent = open_resolved(ctx, child, c, r.format)?;
                if let Some(want) = &r.expect {
                    check_link(child, want, parent.as_ref(), ctx.policy)?;
                }
                return Ok(parent);
            }
            Err(e) if i + 1 < cands.len() => last = Some(e),
            Err(e) => {
                let msg = if c != r.name {
                    format!("{} {:?}: looked for {c:?} in the disk's directory: {}", r.field, r.name, e.message())
                } else {
                    e.message().to_string()
                };
                let _ = last.take();
                let mut out = Error::new(e.kind(), msg).with_path(child);
                if let Some(p) = e.path() {
                    out = out.with_path(p);
                }
                return Err(out);
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::invalid(format!("empty {}", r.field)).with_path(child)))
}

/// Opens the file `name` (already accepted by the policy) as the parent of `referrer`.
fn open_resolved(
    ctx: &OpenCtx<'_>,
    referrer: &Path,
    name: &str,
    format: Option<&'static Format>,
) -> Result<Box<dyn BlockReader>> {
    let child_ctx = ctx.descend(referrer)?;
    let path = ctx.policy.resolve(referrer, name, "parent")?;
    child_ctx.check_loop(&path, referrer)?;
    let src: Arc<dyn ByteSource> = Arc::new(FileSource::open(&path)?);
    open_source(src, format, &child_ctx).map_err(|e| {
        if e.kind() == crate::ErrorKind::Io && e.path().is_none() {
            e.with_path(&path)
        } else {
            e
        }
    })
}

#[cfg(test)]
#[path = "parent_tests.rs"]
mod tests;
