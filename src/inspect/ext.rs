//! ext2/3/4 through `ext4-view` (the decision of `dependencies.md` §8): ext3 block maps, ext4
//! extents, htree directories, metadata checksums, symlinks, and the journal replayed in memory
//! when the filesystem was not cleanly unmounted. `ext4-view` promises no panics and no endless
//! loops on invalid data; reads reach it through a budgeted [`Disk`] window.
//!
//! What this adds: detection (superblock magic `0xEF53` at byte 1080) so non-ext partitions are
//! skipped quietly, the `needs_recovery` flag (`s_feature_incompat` bit 0x4), the type name from
//! the feature bits, and reads bounded by size before anything is allocated.

use std::io::Read;

use ext4_view::{Ext4, Ext4Error, Ext4Read};

use super::{chain_text, Disk, Error, ErrorKind, Result};

/// Largest file read whole (configs, fstab, grub.cfg).
pub const MAX_SMALL_FILE: u64 = 4 << 20;
/// Most directory entries listed from one directory.
pub const MAX_DIR_ENTRIES: usize = 4096;

/// `s_feature_compat`: has a journal (ext3/ext4).
const COMPAT_HAS_JOURNAL: u32 = 0x4;
/// `s_feature_ro_compat`: metadata checksums (ext4).
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
/// `s_feature_incompat`: the journal needs recovery.
const INCOMPAT_RECOVER: u32 = 0x4;
/// `s_feature_incompat`: extents (ext4).
const INCOMPAT_EXTENTS: u32 = 0x40;
/// `s_feature_incompat`: 64-bit block numbers (ext4).
const INCOMPAT_64BIT: u32 = 0x80;
/// `s_feature_incompat`: flexible block groups (ext4).
const INCOMPAT_FLEX_BG: u32 = 0x200;

struct Reader(Disk);

impl Ext4Read for Reader {
    fn read(
        &mut self,
        start: u64,
        dst: &mut [u8],
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.0.read_at(dst, start)?)
    }
}

/// An opened ext2/3/4 filesystem.
pub struct Fs {
    fs: Ext4,
    budget: std::sync::Arc<super::Budget>,
    compat: u32,
    incompat: u32,
    ro_compat: u32,
}

impl std::fmt::Debug for Fs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fs").field("type", &self.fs_type()).finish()
    }
}

impl Fs {
    /// Opens the filesystem in `disk`, or `None` when the window holds no ext superblock.
    pub fn open(disk: Disk) -> Result<Option<Fs>> {
        if disk.len() < 2048 {
            return Ok(None);
        }
        let mut sb = [0u8; 1024];
        disk.read_at(&mut sb, 1024)?;
        if sb[56..58] != [0x53, 0xEF] {
            return Ok(None);
        }
        let word = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
        let (compat, incompat, ro_compat) = (word(0x5c), word(0x60), word(0x64));
        let budget = disk.budget().clone();
        let fs = Ext4::load(Box::new(Reader(disk))).map_err(|e| ext_error("opening the ext filesystem", e))?;
        Ok(Some(Fs { fs, budget, compat, incompat, ro_compat }))
    }

    /// `ext2`, `ext3` or `ext4`, from the feature bits.
    pub fn fs_type(&self) -> &'static str {
        if self.incompat & (INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG) != 0 {
            "ext4"
        } else if self.compat & COMPAT_HAS_JOURNAL != 0 {
            "ext3"
        } else {
            "ext2"
        }
    }

    /// The journal needs recovery: the filesystem was not cleanly unmounted (`ext4-view`
    /// replays it in memory; the source is not changed).
    pub fn needs_recovery(&self) -> bool {
        self.incompat & INCOMPAT_RECOVER != 0
    }

    /// `s_feature_ro_compat` bit 0x400: metadata checksums.
    pub fn metadata_csum(&self) -> bool {
        self.ro_compat & RO_COMPAT_METADATA_CSUM != 0
    }

    /// The filesystem UUID.
    pub fn uuid(&self) -> String {
        self.fs.uuid().to_string()
    }

    /// The label.
    pub fn label(&self) -> String {
        self.fs.label().to_str().map(str::to_owned).unwrap_or_default()
    }

    /// True if `path` exists (following symlinks); errors read as "no".
    pub fn exists(&self, path: &str) -> bool {
        self.fs.exists(path).unwrap_or(false)
    }

    /// A regular file of at most `max` bytes, following symlinks; `Ok(None)` when it does not
    /// exist.
    pub fn read_file(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let meta = match self.fs.metadata(path) {
            Ok(m) => m,
            Err(Ext4Error::NotFound) => return Ok(None),
            Err(e) => return Err(ext_error(&format!("looking up {path}"), e)),
        };
        if meta.is_dir() {
            return Ok(None);
        }
        if meta.len() > max {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{path} holds {} bytes, more than the {max} read", meta.len()),
            ));
        }
        self.fs.read(path).map(Some).map_err(|e| ext_error(&format!("reading {path}"), e))
    }

    /// A text file, lossily decoded; `Ok(None)` when absent.
    pub fn read_text(&self, path: &str) -> Result<Option<String>> {
        Ok(self.read_file(path, MAX_SMALL_FILE)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// The names in directory `path` (without `.` and `..`); empty when it does not exist.
    pub fn list(&self, path: &str) -> Result<Vec<String>> {
        let dir = match self.fs.read_dir(path) {
            Ok(d) => d,
            Err(Ext4Error::NotFound | Ext4Error::NotADirectory) => return Ok(Vec::new()),
            Err(e) => return Err(ext_error(&format!("listing {path}"), e)),
        };
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| ext_error(&format!("listing {path}"), e))?;
            let name = entry.file_name();
            let Ok(name) = name.as_str() else { continue };
            if name == "." || name == ".." {
                continue;
            }
            if names.len() == MAX_DIR_ENTRIES {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("{path} holds more than {MAX_DIR_ENTRIES} entries"),
                ));
            }
            names.push(name.to_owned());
        }
        names.sort();
        Ok(names)
    }

    /// A streaming reader of the file at `path` (for initramfs images) when it holds at most
    /// `max` bytes; its length is added to the read budget (plus 1/16 for its block maps).
    pub fn open_stream(&self, path: &str, max: u64) -> Result<impl Read + '_> {
        let f = self.fs.open(path).map_err(|e| ext_error(&format!("opening {path}"), e))?;
        let len = f.metadata().len();
        if len > max {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{path} holds {len} bytes, more than the {max} scanned"),
            ));
        }
        self.budget.grant(len + len / 16);
        Ok(f)
    }
}

fn ext_error(what: &str, e: Ext4Error) -> Error {
    let kind = match &e {
        Ext4Error::Incompatible(_) => ErrorKind::Unsupported,
        Ext4Error::Io(inner) => match inner.downcast_ref::<Error>() {
            Some(x) => x.kind,
            None => ErrorKind::Io,
        },
        _ => ErrorKind::Corrupt,
    };
    let text = match &e {
        Ext4Error::Io(inner) => chain_text(inner.as_ref()),
        other => other.to_string(),
    };
    Error::new(kind, format!("{what}: {text}"))
}
