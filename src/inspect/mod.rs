//! Read-only inspection of a guest's disks: partition tables, filesystems and the files that
//! decide whether the guest boots on the target — through the disk's [`BlockReader`], with no
//! mount, no root and no change to the source.
//!
//! ```text
//!   BlockReader ─► Disk (byte window + read budget) ─► partitions::read_table (MBR, GPT, bare)
//!                                                   └► ext::Fs (ext4-view) per partition
//!                                                        └► linux::facts: kernels, configs,
//!                                                           fstab, grub, initramfs modules
//! ```
//!
//! Every read goes through a [`Disk`] window that refuses reads past its end and counts bytes
//! against a shared [`Budget`]: a hostile or huge image can make inspection fail, never make it
//! read the whole disk. Facts are plain data; the rules that judge them live in `advise`.

pub mod cpio;
pub mod ext;
pub mod linux;
pub mod lvm;
pub mod ntfs;
pub mod partitions;

#[cfg(test)]
pub(crate) mod testdisk;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::backends::BlockReader;

pub use linux::LinuxFacts;
pub use partitions::{PartKind, Partition, Scheme, Table};

/// Bytes one disk's inspection may read by default: the metadata of a 100 GiB guest is a few
/// MiB; initramfs images are granted on top of this, each up to its size (at most
/// [`linux::MAX_INITRAMFS`]), and their scan stops at the first boot driver found.
pub const DEFAULT_BUDGET: u64 = 64 << 20;

/// What went wrong while inspecting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The disk could not be read.
    Io,
    /// A structure on the disk is inconsistent.
    Corrupt,
    /// A structure is valid but not read by `xva` (say, an ext4 feature ext4-view refuses).
    Unsupported,
    /// The read budget is spent.
    Budget,
}

/// An inspection error: what was being read, where, and why.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct Error {
    /// The kind.
    pub kind: ErrorKind,
    what: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error of `kind` saying `what`.
    pub fn new(kind: ErrorKind, what: impl Into<String>) -> Error {
        Error { kind, what: what.into(), source: None }
    }

    /// The same, caused by `source`.
    pub fn with_source(
        kind: ErrorKind,
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error { kind, what: what.into(), source: Some(source.into()) }
    }
}

/// Result of inspection.
pub type Result<T> = std::result::Result<T, Error>;

/// Bytes left to read for one disk's inspection, shared by every window of it.
#[derive(Debug)]
pub struct Budget {
    limit: AtomicU64,
    used: AtomicU64,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Budget> {
        Arc::new(Budget { limit: AtomicU64::new(limit), used: AtomicU64::new(0) })
    }

    /// Allows `n` more bytes (a file about to be streamed, already bounded by the caller).
    pub fn grant(&self, n: u64) {
        self.limit.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes read so far.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self, n: u64) -> Result<()> {
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        let limit = self.limit.load(Ordering::Relaxed);
        if before.saturating_add(n) > limit {
            return Err(Error::new(ErrorKind::Budget, format!("inspection read budget of {limit} bytes spent")));
        }
        Ok(())
    }
}

/// A byte range of a disk (the whole disk, or one partition), read-only and budgeted.
#[derive(Clone)]
pub struct Disk {
    reader: Arc<dyn BlockReader>,
    base: u64,
    len: u64,
    budget: Arc<Budget>,
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disk").field("base", &self.base).field("len", &self.len).finish()
    }
}

impl Disk {
    /// The whole of `reader`, reading at most `budget` bytes.
    pub fn new(reader: Arc<dyn BlockReader>, budget: Arc<Budget>) -> Disk {
        let len = reader.virtual_size();
        Disk { reader, base: 0, len, budget }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty window.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offset of this window on the disk.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The budget this window reads against.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// The window `start..start+len` of this one (refused if it does not fit).
    pub fn window(&self, start: u64, len: u64) -> Result<Disk> {
        if start.checked_add(len).is_none_or(|e| e > self.len) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("range {start}+{len} lies outside the {} bytes at disk offset {}", self.len, self.base),
            ));
        }
        Ok(Disk { reader: self.reader.clone(), base: self.base + start, len, budget: self.budget.clone() })
    }

    /// Fills `buf` from `offset` of this window.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let n = buf.len() as u64;
        if offset.checked_add(n).is_none_or(|e| e > self.len) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "read of {n} bytes at {offset} past the end ({} bytes) of the range at disk offset {}",
                    self.len, self.base
                ),
            ));
        }
        self.budget.take(n)?;
        let at = self.base + offset;
        self.reader
            .read_exact_at(buf, at)
            .map_err(|e| Error::with_source(ErrorKind::Io, format!("reading {n} bytes at disk offset {at}"), e))
    }

    /// `len` bytes from `offset`, or fewer when the window ends first.
    pub fn read_vec(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let avail = self.len.saturating_sub(offset).min(len as u64) as usize;
        let mut v = vec![0; avail];
        self.read_at(&mut v, offset)?;
        Ok(v)
    }
}

/// What inspection found on one filesystem.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FsFacts {
    /// Where the filesystem is: `partition 1`, `whole disk`.
    pub location: String,
    /// Filesystem type (`ext4`, `ext3`, `ext2`).
    pub fs_type: String,
    /// The filesystem UUID.
    pub uuid: String,
    /// The filesystem label.
    pub label: String,
    /// The journal needs recovery (ext `needs_recovery`): not cleanly shut down.
    pub needs_recovery: bool,
    /// ext4 `metadata_csum` (old pygrub / libext2fs may not open it).
    pub metadata_csum: bool,
    /// Linux facts, when the filesystem holds a Linux root or `/boot`.
    pub linux: Option<LinuxFacts>,
    /// Windows facts, for an NTFS volume.
    pub windows: Option<ntfs::WindowsFacts>,
}

/// What inspection found on one disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiskFacts {
    /// The partition table (or a bare filesystem / nothing recognised).
    pub table: Table,
    /// The filesystems read.
    pub filesystems: Vec<FsFacts>,
    /// What could not be read, one line each (inspection goes on past them).
    pub problems: Vec<String>,
    /// Bytes read from the disk.
    pub bytes_read: u64,
}

/// Inspects one disk: its partition table, then every ext2/3/4 filesystem on it. Errors that
/// stop one partition are recorded in [`DiskFacts::problems`]; only a disk whose first sectors
/// cannot be read at all is an `Err`.
pub fn inspect_disk(reader: Arc<dyn BlockReader>, budget: u64) -> Result<DiskFacts> {
    let disk = Disk::new(reader, Budget::new(budget));
    let table = partitions::read_table(&disk)?;
    let mut facts = DiskFacts { table, ..DiskFacts::default() };
    let parts = facts.table.partitions.clone();
    for p in &parts {
        if !matches!(
            p.kind,
            PartKind::Linux | PartKind::Unknown | PartKind::WholeDisk | PartKind::Windows | PartKind::Lvm
        ) {
            continue;
        }
        let location = p.describe();
        match disk.window(p.start, p.len) {
            Ok(win) => volume(win, &location, &mut facts, 0),
            Err(e) => facts.problems.push(format!("{location}: {e}")),
        }
    }
    facts.bytes_read = disk.budget().used();
    Ok(facts)
}

/// Reads one volume: a recognised boot sector (NTFS, BitLocker, FAT), an LVM2 PV (then each
/// of its linear LVs), or an ext filesystem. What cannot be read becomes a line in `problems`.
fn volume(win: Disk, location: &str, facts: &mut DiskFacts, depth: u32) {
    match boot_sector_type(&win) {
        Ok(Some(t)) => {
            let mut f = FsFacts { location: location.into(), fs_type: t.into(), ..FsFacts::default() };
            if t == "ntfs" {
                match ntfs::facts(win) {
                    Ok(w) => f.windows = Some(w),
                    Err(e) => facts.problems.push(format!("{location}: {}", chain_text(&e))),
                }
            }
            facts.filesystems.push(f);
            return;
        }
        Ok(None) => {}
        Err(e) => return facts.problems.push(format!("{location}: {e}")),
    }
    if depth == 0 {
        let mut skipped = Vec::new();
        match lvm::read_pv(&win, &mut skipped) {
            Ok(Some(lvs)) => {
                facts.problems.extend(skipped.into_iter().map(|s| format!("{location}: {s}")));
                for lv in lvs {
                    let at = format!("LV {} ({location})", lv.name);
                    match win.window(lv.start, lv.len) {
                        Ok(w) => volume(w, &at, facts, depth + 1),
                        Err(e) => facts.problems.push(format!("{at}: {e}")),
                    }
                }
                return;
            }
            Ok(None) => {}
            Err(e) => return facts.problems.push(format!("{location}: {}", chain_text(&e))),
        }
    }
    match ext::Fs::open(win) {
        Ok(None) => {}
        Ok(Some(fs)) => {
            let mut f = FsFacts {
                location: location.into(),
                fs_type: fs.fs_type().into(),
                uuid: fs.uuid(),
                label: fs.label(),
                needs_recovery: fs.needs_recovery(),
                metadata_csum: fs.metadata_csum(),
                linux: None,
                windows: None,
            };
            let mut problems = Vec::new();
            f.linux = linux::facts(&fs, &mut problems);
            facts.problems.extend(problems.into_iter().map(|p| format!("{location}: {p}")));
            facts.filesystems.push(f);
        }
        Err(e) => facts.problems.push(format!("{location}: {}", chain_text(&e))),
    }
}

/// The filesystem a volume boot record names by its OEM id (bytes 3..11): `ntfs`, `bitlocker`
/// (`-FVE-FS-`: a BitLocker-encrypted volume), `fat` (`FAT12`/`FAT16` at 54, `FAT32` at 82).
pub fn boot_sector_type(win: &Disk) -> Result<Option<&'static str>> {
    if win.len() < 512 {
        return Ok(None);
    }
    let mut s = [0u8; 512];
    win.read_at(&mut s, 0)?;
    if s[510..512] != [0x55, 0xAA] {
        return Ok(None);
    }
    Ok(match &s[3..11] {
        b"NTFS    " => Some("ntfs"),
        b"-FVE-FS-" => Some("bitlocker"),
        _ if &s[82..87] == b"FAT32" || &s[54..57] == b"FAT" => Some("fat"),
        _ => None,
    })
}

/// An error and its sources, `: `-joined.
pub fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(e), |e| e.source()).map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

#[cfg(test)]
mod tests {
    use super::cpio::tests::{gzip, newc};
    use super::testdisk::{lvm_pv, mem_reader, DiskBuilder, Ext2, Node};
    use super::*;

    const FSTAB: &[u8] = b"# <fs> <mnt>\n/dev/sda1 / ext3 defaults 1 1\nUUID=abcd /home ext4 defaults 0 2\nLABEL=SWAP swap swap defaults 0 0\n/dev/hda2 /var ext3 defaults 0 0\n";

    fn el5_root(initrd: &[u8]) -> Vec<u8> {
        let menu = b"default 0\ntitle CentOS (2.6.18-398.el5xen)\n  root (hd0,0)\n  kernel /boot/vmlinuz-2.6.18-398.el5xen ro root=/dev/sda1 console=xvc0\n  initrd /boot/initrd-2.6.18-398.el5xen.img\n";
        Ext2::new(2048).build(
            &[
                Node::Dir("/etc"),
                Node::Dir("/boot"),
                Node::Dir("/boot/grub"),
                Node::Dir("/lib"),
                Node::Dir("/lib/modules"),
                Node::Dir("/lib/modules/2.6.18-398.el5xen"),
                Node::File("/etc/fstab", FSTAB),
                Node::File("/etc/redhat-release", b"CentOS release 5.11 (Final)\n"),
                Node::File("/boot/grub/menu.lst", menu),
                Node::Symlink("/boot/grub/grub.conf", "./menu.lst"),
                Node::File("/boot/vmlinuz-2.6.18-398.el5xen", &[0x90; 3000]),
                Node::File("/boot/config-2.6.18-398.el5xen", b"CONFIG_X86_XEN=y\nCONFIG_XEN_BLKDEV_FRONTEND=m\n"),
                Node::File("/boot/initrd-2.6.18-398.el5xen.img", initrd),
                Node::File("/lib/modules/2.6.18-398.el5xen/modules.builtin", b""),
            ],
            false,
        )
    }

    #[test]
    fn reads_an_mbr_disk_with_an_ext2_root() {
        let initrd = gzip(&newc(&["lib/ext3.ko", "lib/jbd.ko", "init"]));
        let fs = el5_root(&initrd);
        let mut b = DiskBuilder::new(4 << 20);
        b.mbr(&[(0x83, 2048, (fs.len() / 512) as u32, true)]);
        b.place(2048 * 512, &fs);
        let facts = inspect_disk(mem_reader(b.finish()), DEFAULT_BUDGET).unwrap();
        assert!(facts.problems.is_empty(), "{:?}", facts.problems);
        assert_eq!(facts.table.scheme, Scheme::Mbr);
        assert!(!facts.table.mbr_boot_code);
        let [f] = &facts.filesystems[..] else { panic!("{facts:?}") };
        assert_eq!((f.location.as_str(), f.fs_type.as_str(), f.label.as_str()), ("partition 1", "ext2", "rootfs"));
        assert_eq!(f.uuid, "11111111-1111-1111-1111-111111111111");
        let l = f.linux.as_ref().unwrap();
        assert!(l.is_root);
        assert_eq!(l.distro.as_deref(), Some("CentOS release 5.11 (Final)"));
        let [k] = &l.kernels[..] else { panic!("{l:?}") };
        assert!(k.xen_only);
        assert_eq!(k.initramfs.as_deref(), Some("/boot/initrd-2.6.18-398.el5xen.img"));
        let i = k.initramfs_facts.as_ref().unwrap();
        assert_eq!(i.modules.iter().cloned().collect::<Vec<_>>(), vec!["ext3", "jbd"]);
        let devs: Vec<_> = l.device_names.iter().map(|d| format!("{}:{} {}", d.file, d.line, d.device)).collect();
        assert_eq!(
            devs,
            vec![
                "/etc/fstab:2 /dev/sda1",
                "/etc/fstab:5 /dev/hda2",
                "/boot/grub/menu.lst:4 /dev/sda1",
                "/boot/grub/grub.conf:4 /dev/sda1",
            ]
        );
        assert_eq!(l.pv_consoles.len(), 2);
        assert!(facts.bytes_read < 64 << 10, "{} bytes read", facts.bytes_read);
    }

    #[test]
    fn bare_filesystem_and_budget() {
        let fs = el5_root(b"");
        let facts = inspect_disk(mem_reader(fs.clone()), DEFAULT_BUDGET).unwrap();
        assert_eq!(facts.table.scheme, Scheme::Bare);
        assert_eq!(facts.filesystems[0].location, "whole disk");
        // An empty initrd is not an error: no modules.
        assert!(facts.problems.is_empty(), "{:?}", facts.problems);
        let facts = inspect_disk(mem_reader(fs), 4096).unwrap();
        assert_eq!(facts.problems.len(), 1, "{:?}", facts.problems);
        assert!(facts.problems[0].contains("budget"), "{:?}", facts.problems);
    }

    #[test]
    fn needs_recovery_is_reported() {
        let fs = Ext2::new(256).build(&[Node::Dir("/etc"), Node::File("/etc/fstab", b"")], true);
        let facts = inspect_disk(mem_reader(fs), DEFAULT_BUDGET).unwrap();
        assert!(facts.filesystems[0].needs_recovery);
    }

    #[test]
    fn root_on_an_lvm_linear_volume() {
        let uuid = "Aaaaaabbbbccccddddeeeeffffgggggg";
        let meta = r#"rootvg {
extent_size = 8192
physical_volumes { pv0 { id = "Aaaaaa-bbbb-cccc-dddd-eeee-ffff-gggggg" pe_start = 4096 } }
logical_volumes { root { segment_count = 1
segment1 { start_extent = 0 extent_count = 1 type = "striped" stripe_count = 1 stripes = [ "pv0", 0 ] } } }
}
"#;
        let fs = Ext2::new(2048)
            .build(&[Node::Dir("/etc"), Node::File("/etc/fstab", b"/dev/xvda2 / ext3 defaults 0 0\n")], false);
        let pv = lvm_pv(uuid, meta, 4096, 6 << 20, &fs);
        let mut b = DiskBuilder::new(8 << 20);
        b.mbr(&[(0x8e, 2048, (6 << 20) / 512, false)]);
        b.place(1 << 20, &pv);
        let facts = inspect_disk(mem_reader(b.finish()), DEFAULT_BUDGET).unwrap();
        assert!(facts.problems.is_empty(), "{:?}", facts.problems);
        let [f] = &facts.filesystems[..] else { panic!("{facts:?}") };
        assert_eq!(f.location, "LV rootvg/root (partition 1)");
        let l = f.linux.as_ref().unwrap();
        assert_eq!(l.device_names[0].device, "/dev/xvda2");
        // The same PV as a whole disk (no partition table).
        let facts = inspect_disk(mem_reader(pv), DEFAULT_BUDGET).unwrap();
        assert_eq!(facts.table.scheme, Scheme::Bare);
        assert_eq!(facts.filesystems[0].location, "LV rootvg/root (whole disk)");
    }
}
