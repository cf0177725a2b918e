//! NTFS through the `ntfs` crate (the decision of `dependencies.md` §8): the few root-directory
//! files that tell a Windows volume's state without the registry — `boot.ini` (Windows
//! 2000/XP/2003, and GPLPV's `/gplpv` switch) and the first bytes of `hiberfil.sys`
//! (hibernated or Fast Startup: the volume must not be converted). Reads are bounded and go
//! through the budgeted [`Disk`] window.

use std::io::{self, Read, Seek, SeekFrom};

use ntfs::indexes::NtfsFileNameIndex;
use ntfs::{Ntfs, NtfsFile, NtfsReadSeek};

use super::{Disk, Error, ErrorKind, Result};

/// Largest `boot.ini` read.
const MAX_BOOT_INI: usize = 64 << 10;

/// What the root directory of a Windows volume says.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WindowsFacts {
    /// `boot.ini` (lossily decoded), on Windows before Vista.
    pub boot_ini: Option<String>,
    /// The first four bytes of `hiberfil.sys` are `hibr`/`HIBR`/`wake`: hibernated, or shut
    /// down with Fast Startup.
    pub hibernated: bool,
}

/// A `Read + Seek` cursor over a window, as the `ntfs` crate wants.
struct Cursor {
    disk: Disk,
    pos: u64,
}

impl Read for Cursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.disk.len().saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        self.disk.read_at(&mut buf[..n], self.pos).map_err(io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Cursor {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.disk.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

fn ntfs_error(what: &str, e: ntfs::NtfsError) -> Error {
    Error::new(ErrorKind::Corrupt, format!("NTFS: {what}: {e}"))
}

/// Reads the facts of the NTFS volume in `win`.
pub fn facts(win: Disk) -> Result<WindowsFacts> {
    let mut c = Cursor { disk: win, pos: 0 };
    let mut fs = Ntfs::new(&mut c).map_err(|e| ntfs_error("opening the volume", e))?;
    fs.read_upcase_table(&mut c).map_err(|e| ntfs_error("reading $UpCase", e))?;
    let root = fs.root_directory(&mut c).map_err(|e| ntfs_error("opening the root directory", e))?;
    let boot_ini =
        root_file(&fs, &mut c, &root, "boot.ini", MAX_BOOT_INI)?.map(|b| String::from_utf8_lossy(&b).into_owned());
    let hiber = root_file(&fs, &mut c, &root, "hiberfil.sys", 4)?;
    let hibernated = hiber.is_some_and(|h| {
        let h = h.to_ascii_lowercase();
        h == b"hibr" || h == b"wake"
    });
    Ok(WindowsFacts { boot_ini, hibernated })
}

/// The first `max` bytes of the root-directory file `name` (case-insensitive), or `None`.
fn root_file(fs: &Ntfs, c: &mut Cursor, root: &NtfsFile<'_>, name: &str, max: usize) -> Result<Option<Vec<u8>>> {
    let index = root.directory_index(c).map_err(|e| ntfs_error("reading the root index", e))?;
    let mut finder = index.finder();
    let Some(entry) = NtfsFileNameIndex::find(&mut finder, fs, c, name) else { return Ok(None) };
    let file = entry.and_then(|e| e.to_file(fs, c)).map_err(|e| ntfs_error(&format!("opening \\{name}"), e))?;
    let Some(item) = file.data(c, "") else { return Ok(None) };
    let item = item.map_err(|e| ntfs_error(&format!("\\{name} $DATA"), e))?;
    let attr = item.to_attribute().map_err(|e| ntfs_error(&format!("\\{name} $DATA"), e))?;
    let mut value = attr.value(c).map_err(|e| ntfs_error(&format!("\\{name} $DATA"), e))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < max {
        let n = value.read(c, &mut buf).map_err(|e| ntfs_error(&format!("reading \\{name}"), e))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n.min(max - out.len())]);
    }
    Ok(Some(out))
}
