//! Byte-addressed storage under a format: a file, a block device, a slice of a file, or memory.
//!
//! ```text
//!   BlockReader (format layer: raw, vmdk, ...)
//!        │ read_exact_at(buf, offset)      positional, &self, no cursor
//!   ByteSource ── FileSource  (pread on a read-only fd; regular file or block device)
//!              ├─ Window      (a byte range of another source: an OVA member, an LV slice)
//!              ├─ Concat      (several sources one after the other: a chunked OVA disk)
//!              └─ MemSource   (tests and fuzzing)
//! ```

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Byte-addressed, read-only storage.
pub trait ByteSource: Send + Sync + fmt::Debug {
    /// Length in bytes.
    fn len(&self) -> u64;

    /// True when the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` completely from `offset` or fails (a short source is an error).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// The path used in messages and to resolve names the image contains.
    fn path(&self) -> &Path;

    /// The underlying file when this source is a whole regular file (used for hole detection).
    fn as_file(&self) -> Option<&FileSource> {
        None
    }
}

/// Reads `len` bytes at `offset` of `src`, with an error naming the file and the offset.
pub fn read_vec(src: &dyn ByteSource, offset: u64, len: usize, what: &str) -> Result<Vec<u8>> {
    let end = offset.checked_add(len as u64);
    if end.is_none_or(|end| end > src.len()) {
        return Err(Error::corrupt(format!(
            "{what} ({len} bytes) lies past the end of the file ({} bytes)",
            src.len()
        ))
        .at(offset)
        .with_path(src.path()));
    }
    let mut buf = vec![0u8; len];
    src.read_exact_at(&mut buf, offset)
        .map_err(|e| Error::io(format!("reading {what}"), e).at(offset).with_path(src.path()))?;
    Ok(buf)
}

/// What kind of file a [`FileSource`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file; holes can be found with `SEEK_DATA`/`SEEK_HOLE`.
    Regular,
    /// A block device (LVM logical volume, disk, loop device); sized with `BLKGETSIZE64`.
    BlockDevice,
}

/// A file or block device opened read-only.
pub struct FileSource {
    file: File,
    path: PathBuf,
    len: u64,
    kind: FileKind,
}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("kind", &self.kind)
            .finish()
    }
}

impl FileSource {
    /// Opens `path` read-only. Directories, sockets and the like are refused.
    pub fn open(path: &Path) -> Result<FileSource> {
        let file = File::open(path).map_err(|e| {
            let kind =
                if e.kind() == io::ErrorKind::NotFound { crate::ErrorKind::MissingFile } else { crate::ErrorKind::Io };
            Error::new(kind, "cannot open for reading").with_source(e).with_path(path)
        })?;
        let meta = file.metadata().map_err(|e| Error::io("cannot stat", e).with_path(path))?;
        let ft = meta.file_type();
        let (kind, len) = if ft.is_file() {
            (FileKind::Regular, meta.len())
        } else if ft.is_block_device() {
            (
                FileKind::BlockDevice,
                block_device_size(&file).map_err(|e| {
                    Error::io("cannot read the size of the block device (BLKGETSIZE64)", e).with_path(path)
                })?,
            )
        } else if ft.is_dir() {
            return Err(Error::invalid("is a directory, not a disk image").with_path(path));
        } else {
            return Err(Error::invalid("is neither a regular file nor a block device").with_path(path));
        };
        Ok(FileSource { file, path: path.to_path_buf(), len, kind })
    }

    /// Regular file or block device.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// `lseek(SEEK_DATA)` or `lseek(SEEK_HOLE)` from `offset`: the next data or hole offset,
    /// `None` when no data follows (`ENXIO`). The fd's position is not used by our positional
    /// reads, so moving it is harmless.
    pub fn seek_data_hole(&self, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
        use std::os::fd::AsRawFd;
        let off = libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: lseek takes a valid open fd (owned by `self.file`, alive for the call) and
        // plain integers; it touches no memory of ours.
        let r = unsafe { libc::lseek(self.file.as_raw_fd(), off, whence) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                return Ok(None);
            }
            return Err(e);
        }
        Ok(Some(r as u64))
    }
}

impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, offset)
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn as_file(&self) -> Option<&FileSource> {
        Some(self)
    }
}

/// `ioctl(BLKGETSIZE64)`: the size in bytes of a block device (its `st_size` is 0).
fn block_device_size(file: &File) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    // _IOR(0x12, 114, size_t)
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes exactly one u64 through the pointer, which points to a live,
    // properly aligned u64 on our stack; the fd is owned by `file` and open for the whole call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64 as _, &mut size as *mut u64) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

/// A byte range `[start, start + len)` of another source, seen as a source of its own
/// (a VMDK inside an OVA, a partition of a disk).
#[derive(Debug)]
pub struct Window {
    inner: Arc<dyn ByteSource>,
    start: u64,
    len: u64,
    path: PathBuf,
}

impl Window {
    /// The range `[start, start + len)` of `inner`; `path` names it in messages.
    pub fn new(inner: Arc<dyn ByteSource>, start: u64, len: u64, path: PathBuf) -> Result<Window> {
        let end = start.checked_add(len).filter(|&e| e <= inner.len()).ok_or_else(|| {
            Error::corrupt(format!("window of {len} bytes at {start} lies past the end ({} bytes)", inner.len()))
                .with_path(inner.path())
        })?;
        let _ = end;
        Ok(Window { inner, start, len, path })
    }
}

impl ByteSource for Window {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the window"));
        }
        self.inner.read_exact_at(buf, self.start + offset)
    }
    fn path(&self) -> &Path {
        &self.path
    }
}

/// Byte sources read one after the other as one (a disk stored as several chunks, such as an
/// OVA's `disk.vmdk.000000000`, `disk.vmdk.000000001`, ...).
#[derive(Debug)]
pub struct Concat {
    /// (start offset, part), sorted by start.
    parts: Vec<(u64, Arc<dyn ByteSource>)>,
    len: u64,
    path: PathBuf,
}

impl Concat {
    /// The concatenation of `parts`, named `path` in messages.
    pub fn new(parts: Vec<Arc<dyn ByteSource>>, path: PathBuf) -> Result<Concat> {
        let mut out = Vec::with_capacity(parts.len());
        let mut len = 0u64;
        for p in parts {
            let l = p.len();
            out.push((len, p));
            len = len.checked_add(l).ok_or_else(|| Error::invalid("chunked disk larger than 2^64 bytes"))?;
        }
        Ok(Concat { parts: out, len, path })
    }
}

impl ByteSource for Concat {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.len) {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the chunked disk"));
        }
        // First part holding `offset`.
        let mut i = self.parts.partition_point(|(start, _)| *start <= offset).saturating_sub(1);
        let mut done = 0usize;
        while done < buf.len() {
            let Some((start, part)) = self.parts.get(i) else {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunked disk ended early"));
            };
            let pos = offset + done as u64;
            let within = pos - start;
            let n = (part.len() - within).min((buf.len() - done) as u64) as usize;
            if n > 0 {
                part.read_exact_at(&mut buf[done..done + n], within)?;
                done += n;
            }
            i += 1;
        }
        Ok(())
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// Bytes in memory, for tests and fuzzing.
#[derive(Clone)]
pub struct MemSource {
    data: Arc<[u8]>,
    path: PathBuf,
}

impl fmt::Debug for MemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemSource").field("path", &self.path).field("len", &self.data.len()).finish()
    }
}

impl MemSource {
    /// `data` named `name` in messages.
    pub fn new(data: impl Into<Vec<u8>>, name: impl Into<PathBuf>) -> MemSource {
        MemSource { data: data.into().into(), path: name.into() }
    }
}

impl ByteSource for MemSource {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start.checked_add(buf.len()).ok_or(io::ErrorKind::UnexpectedEof)?;
        let src = self.data.get(start..end).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_and_window_reads_are_exact() {
        let mem: Arc<dyn ByteSource> = Arc::new(MemSource::new((0u8..=255).collect::<Vec<_>>(), "mem"));
        let mut b = [0u8; 4];
        mem.read_exact_at(&mut b, 10).unwrap();
        assert_eq!(b, [10, 11, 12, 13]);
        assert!(mem.read_exact_at(&mut b, 253).is_err());
        let w = Window::new(mem.clone(), 100, 10, "w".into()).unwrap();
        w.read_exact_at(&mut b, 6).unwrap();
        assert_eq!(b, [106, 107, 108, 109]);
        assert!(w.read_exact_at(&mut b, 7).is_err());
        assert!(Window::new(mem, 250, 10, "w".into()).is_err());
    }

    #[test]
    fn concat_reads_across_parts() {
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let parts: Vec<Arc<dyn ByteSource>> = vec![
            Arc::new(MemSource::new(data[..300].to_vec(), "a")),
            Arc::new(MemSource::new(Vec::new(), "empty")),
            Arc::new(MemSource::new(data[300..301].to_vec(), "b")),
            Arc::new(MemSource::new(data[301..].to_vec(), "c")),
        ];
        let c = Concat::new(parts, PathBuf::from("disk.vmdk")).unwrap();
        assert_eq!(c.len(), 1000);
        assert_eq!(c.path(), Path::new("disk.vmdk"));
        for (off, len) in [(0usize, 1000usize), (299, 3), (300, 1), (301, 699), (999, 1), (0, 0), (1000, 0)] {
            let mut buf = vec![0u8; len];
            c.read_exact_at(&mut buf, off as u64).unwrap();
            assert_eq!(&buf[..], &data[off..off + len], "{off}+{len}");
        }
        let mut buf = [0u8; 2];
        assert!(c.read_exact_at(&mut buf, 999).is_err());
        assert!(c.read_exact_at(&mut buf, u64::MAX).is_err());
        let empty = Concat::new(Vec::new(), PathBuf::from("none")).unwrap();
        assert!(empty.is_empty());
        assert!(empty.read_exact_at(&mut [0u8; 1], 0).is_err());
        empty.read_exact_at(&mut [], 0).unwrap();
    }

    #[test]
    fn read_vec_checks_bounds() {
        let mem = MemSource::new(vec![1u8; 16], "m.img");
        assert_eq!(read_vec(&mem, 8, 8, "table").unwrap(), vec![1u8; 8]);
        let e = read_vec(&mem, 12, 8, "grain table").unwrap_err();
        assert!(e.to_string().contains("m.img"), "{e}");
        assert!(e.to_string().contains("grain table"), "{e}");
        assert!(read_vec(&mem, u64::MAX, 8, "x").is_err());
    }

    #[test]
    fn file_source_refuses_directories_and_reports_missing() {
        let dir = tempfile::tempdir().unwrap();
        let e = FileSource::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        let e = FileSource::open(&dir.path().join("nope")).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::MissingFile);
    }
}
