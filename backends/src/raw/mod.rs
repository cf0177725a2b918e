//! Raw disks: regular files (xend `file:`/`tap:aio:` images) and block devices (LVM logical
//! volumes, `phy:` disks).
//!
//! The virtual disk is the file. Holes in a regular file are found with
//! `lseek(SEEK_DATA/SEEK_HOLE)` and reported as zero, so they are never read. A block device
//! has no such map (`SEEK_DATA` answers `EINVAL`): it is reported as data throughout and its
//! zero blocks are found in memory by the consumer. The file is only ever opened read-only.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::format::{Confidence, ProbeInput};
use crate::policy::OpenCtx;
use crate::reader::Format;
use crate::reader::{Allocation, BlockReader, Extent};
use crate::source::{ByteSource, FileKind};

/// The registry entry for raw images.
pub static FORMAT: Format = Format {
    name: "raw",
    title: "raw files, block devices / LVM volumes",
    readable: true,
    description: "raw disk image, sparse file or block device (LVM logical volume)",
    probe: |_: &ProbeInput<'_>| Confidence::FALLBACK,
    open: |src, _ctx: &OpenCtx<'_>| Ok(Box::new(RawReader::new(src)?)),
};

/// A raw image over any byte source.
#[derive(Debug)]
pub struct RawReader {
    src: Arc<dyn ByteSource>,
    holes: bool,
    /// Recently found runs of data or holes. `SEEK_HOLE` walks the extent tree from the
    /// offset to the next hole (often the end of the file), so asking again for every chunk
    /// of a fully allocated file would cost time quadratic in its size.
    runs: Mutex<RunCache>,
}

/// A few whole runs (`start..end`, data or not), most recent first.
#[derive(Debug, Default)]
struct RunCache {
    runs: [Option<(u64, u64, bool)>; 4],
}

impl RunCache {
    fn find(&self, offset: u64) -> Option<(u64, u64, bool)> {
        self.runs.iter().flatten().copied().find(|&(s, e, _)| s <= offset && offset < e)
    }

    fn insert(&mut self, run: (u64, u64, bool)) {
        self.runs.rotate_right(1);
        self.runs[0] = Some(run);
    }
}

impl RawReader {
    /// Reads `src` as a raw disk. An empty source is refused: a disk of size 0 is a mistake.
    pub fn new(src: Arc<dyn ByteSource>) -> Result<RawReader> {
        if src.is_empty() {
            return Err(Error::invalid("the disk is empty (size 0)").with_path(src.path()));
        }
        let holes = src.as_file().is_some_and(|f| f.kind() == FileKind::Regular);
        Ok(RawReader { src, holes, runs: Mutex::new(RunCache::default()) })
    }

    /// `SEEK_DATA`/`SEEK_HOLE` on the underlying file.
    fn seek(&self, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
        self.src.as_file().expect("holes are only looked for in files").seek_data_hole(offset, whence)
    }
}

impl BlockReader for RawReader {
    fn format(&self) -> &'static Format {
        &FORMAT
    }

    fn virtual_size(&self) -> u64 {
        self.src.len()
    }

    fn path(&self) -> &Path {
        self.src.path()
    }

    fn block_status(&self, offset: u64, max_len: u64) -> Result<Extent> {
        let size = self.src.len();
        let end = offset.saturating_add(max_len).min(size);
        if offset >= end {
            return Err(Error::new(crate::ErrorKind::OutOfBounds, format!("status query at {offset} past the end"))
                .with_path(self.path()));
        }
        let data = Extent { start: offset, len: end - offset, alloc: Allocation::Data };
        if !self.holes {
            return Ok(data);
        }
        let cached = self.runs.lock().ok().and_then(|c| c.find(offset));
        // The whole run containing `offset`: (start, end, is_data).
        let run = match cached {
            Some(run) => Ok(run),
            None => (|| -> io::Result<(u64, u64, bool)> {
                let run = match self.seek(offset, libc::SEEK_DATA)? {
                    None => (offset, size, false),
                    Some(d) if d > offset => (offset, d.min(size), false),
                    Some(_) => {
                        (offset, self.seek(offset, libc::SEEK_HOLE)?.unwrap_or(size).clamp(offset + 1, size), true)
                    }
                };
                if let Ok(mut c) = self.runs.lock() {
                    c.insert(run);
                }
                Ok(run)
            })(),
        };
        let status = run.map(|(_, run_end, is_data)| {
            let alloc = if is_data { Allocation::Data } else { Allocation::Zero { explicit: false } };
            Extent { start: offset, len: run_end.min(end) - offset, alloc }
        });
        match status {
            Ok(e) => Ok(e),
            // A file system without hole support: everything is data.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(data),
            Err(e) => Err(Error::io("looking for holes (SEEK_DATA/SEEK_HOLE)", e).at(offset).with_path(self.path())),
        }
    }

    fn read_layer(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.src
            .read_exact_at(buf, offset)
            .map_err(|e| Error::io(format!("reading {} bytes", buf.len()), e).at(offset).with_path(self.path()))
    }

    fn details(&self) -> Vec<(String, String)> {
        let kind = match self.src.as_file().map(|f| f.kind()) {
            Some(FileKind::Regular) => "regular file",
            Some(FileKind::BlockDevice) => "block device",
            None => "byte range",
        };
        vec![("storage".into(), kind.into())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FileSource, MemSource};
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn holes_are_zero_and_data_is_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.raw");
        let mut f = std::fs::File::create(&p).unwrap();
        f.set_len(8 << 20).unwrap();
        f.seek(SeekFrom::Start(3 << 20)).unwrap();
        f.write_all(&[7u8; 5000]).unwrap();
        drop(f);
        let r = RawReader::new(Arc::new(FileSource::open(&p).unwrap())).unwrap();
        let r: &dyn BlockReader = &r;
        let ext: Vec<_> = r.extents(0..8 << 20).map(|m| m.unwrap()).collect();
        let data: Vec<_> = ext.iter().filter(|m| m.data).collect();
        assert_eq!(data.len(), 1, "{ext:?}");
        assert!(data[0].start <= 3 << 20 && data[0].start + data[0].len >= (3 << 20) + 5000);
        assert!(data[0].len < 1 << 20, "holes are found: {ext:?}");
        let mut buf = vec![1u8; 10000];
        r.read_exact_at(&mut buf, (3 << 20) - 100).unwrap();
        assert!(buf[..100].iter().all(|&b| b == 0));
        assert!(buf[100..5100].iter().all(|&b| b == 7));
        assert!(buf[5100..].iter().all(|&b| b == 0));
    }

    #[test]
    fn empty_disk_is_refused_and_memory_is_all_data() {
        assert!(RawReader::new(Arc::new(MemSource::new(Vec::new(), "e"))).is_err());
        let r = RawReader::new(Arc::new(MemSource::new(vec![0u8; 100], "m"))).unwrap();
        let r: &dyn BlockReader = &r;
        let ext: Vec<_> = r.extents(0..100).map(|m| m.unwrap()).collect();
        assert_eq!(ext.len(), 1);
        assert!(ext[0].data && ext[0].len == 100);
    }
}
