//! Flat byte ranges: raw bytes in a file from a start offset, shared by the formats that store
//! a disk that way (VMDK `FLAT`/`VMFS` extents, fixed VHD disks).
//!
//! Holes in a regular file (thin `-flat.vmdk` files, qemu's sparse flat files) are found with
//! `lseek(SEEK_DATA/SEEK_HOLE)` and reported as zeros that the file system vouches for
//! (`Zero { explicit: false }`), so they are never read.

use std::io;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::reader::Allocation;
use crate::source::{ByteSource, FileKind};

/// A flat extent: `len` bytes of `src` from `offset`.
#[derive(Debug)]
pub struct Flat {
    src: Arc<dyn ByteSource>,
    offset: u64,
    len: u64,
    holes: bool,
}

impl Flat {
    /// The extent; the file must hold all of it.
    pub fn new(src: Arc<dyn ByteSource>, offset: u64, len: u64) -> Result<Flat> {
        let end = offset.checked_add(len);
        if end.is_none_or(|e| e > src.len()) {
            return Err(Error::corrupt(format!(
                "flat extent of {len} bytes at byte {offset} does not fit in the file ({} bytes); \
                 is the file truncated?",
                src.len()
            ))
            .with_path(src.path()));
        }
        let holes = src.as_file().is_some_and(|f| f.kind() == FileKind::Regular);
        Ok(Flat { src, offset, len, holes })
    }

    /// The file.
    pub fn source(&self) -> &Arc<dyn ByteSource> {
        &self.src
    }

    fn seek(&self, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
        match self.src.as_file() {
            Some(file) => file.seek_data_hole(offset, whence),
            None => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        }
    }

    /// What the extent holds at `rel` (< len), up to `max_len` bytes.
    pub fn status(&self, rel: u64, max_len: u64) -> Result<(u64, Allocation)> {
        let n = max_len.min(self.len - rel);
        if !self.holes {
            return Ok((n, Allocation::Data));
        }
        let start = self.offset + rel;
        let end = start + n;
        let r = (|| -> io::Result<(u64, Allocation)> {
            let hole = Allocation::Zero { explicit: false };
            match self.seek(start, libc::SEEK_DATA)? {
                None => Ok((n, hole)),
                Some(d) if d > start => Ok((d.min(end) - start, hole)),
                Some(_) => {
                    let h = self.seek(start, libc::SEEK_HOLE)?.unwrap_or(end);
                    Ok((h.clamp(start + 1, end) - start, Allocation::Data))
                }
            }
        })();
        match r {
            Ok(x) => Ok(x),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok((n, Allocation::Data)),
            Err(e) => Err(Error::io("looking for holes (SEEK_DATA/SEEK_HOLE)", e).at(start).with_path(self.src.path())),
        }
    }

    /// Reads at `rel`.
    pub fn read(&self, buf: &mut [u8], rel: u64) -> Result<()> {
        let at = self.offset + rel;
        self.src.read_exact_at(buf, at).map_err(|e| {
            Error::io(format!("reading {} bytes of a flat extent", buf.len()), e).at(at).with_path(self.src.path())
        })
    }
}
