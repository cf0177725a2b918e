//! Test fixtures built from the specs, byte by byte: MBR/EBR/GPT disks and a small ext2
//! filesystem (1 KiB blocks, one group, block-mapped files) holding a given tree. Nothing here
//! shares code with the readers, so the expected values are computed independently.

use std::sync::Arc;

use super::{Budget, Disk};
use crate::backends::raw::RawReader;
use crate::backends::{BlockReader, MemSource};

/// CRC-32/IEEE, table-driven (the reader's is bitwise).
fn crc32(data: &[u8]) -> u32 {
    let table: Vec<u32> =
        (0..256u32).map(|n| (0..8).fold(n, |c, _| if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 })).collect();
    !data.iter().fold(!0u32, |c, &b| table[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8))
}

/// A reader over `bytes`.
pub(crate) fn mem_reader(bytes: Vec<u8>) -> Arc<dyn BlockReader> {
    Arc::new(RawReader::new(Arc::new(MemSource::new(bytes, "test.img"))).unwrap())
}

/// A budgeted window over `bytes`.
pub(crate) fn mem_disk(bytes: Vec<u8>) -> Disk {
    Disk::new(mem_reader(bytes), Budget::new(1 << 30))
}

/// A disk image under construction.
pub(crate) struct DiskBuilder {
    img: Vec<u8>,
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// GUID text → on-disk bytes (first three fields little-endian).
fn guid_bytes(s: &str) -> [u8; 16] {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let raw: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&[raw[3], raw[2], raw[1], raw[0]]);
    b[4..6].copy_from_slice(&[raw[5], raw[4]]);
    b[6..8].copy_from_slice(&[raw[7], raw[6]]);
    b[8..].copy_from_slice(&raw[8..]);
    b
}

impl DiskBuilder {
    pub(crate) fn new(size: usize) -> DiskBuilder {
        DiskBuilder { img: vec![0; size] }
    }

    /// Writes a DOS table at LBA 0: `(type, first LBA, sectors, active)`.
    pub(crate) fn mbr(&mut self, parts: &[(u8, u32, u32, bool)]) {
        self.table_at(0, &parts.iter().map(|&(t, f, n, a)| (t, f, n, a)).collect::<Vec<_>>());
    }

    /// An EBR at `lba`: one logical `(type, first LBA relative to the EBR, sectors)`, and a
    /// link to the next EBR when there are more.
    pub(crate) fn ebr(&mut self, lba: u32, logical: &[(u8, u32, u32)]) {
        let (t, f, n) = logical[0];
        self.table_at(lba as usize * 512, &[(t, f, n, false)]);
    }

    /// An EBR with raw entries `(type, first, sectors)`.
    pub(crate) fn ebr_raw(&mut self, lba: u32, entries: &[(u8, u32, u32)]) {
        let e: Vec<_> = entries.iter().map(|&(t, f, n)| (t, f, n, false)).collect();
        self.table_at(lba as usize * 512, &e);
    }

    fn table_at(&mut self, at: usize, parts: &[(u8, u32, u32, bool)]) {
        for (i, &(t, first, n, active)) in parts.iter().enumerate() {
            let e = at + 446 + 16 * i;
            self.img[e] = if active { 0x80 } else { 0 };
            self.img[e + 4] = t;
            put32(&mut self.img, e + 8, first);
            put32(&mut self.img, e + 12, n);
        }
        self.img[at + 510] = 0x55;
        self.img[at + 511] = 0xAA;
    }

    /// A protective MBR and a GPT with 128 entries at LBA 2: `(type GUID, first, last)`.
    pub(crate) fn gpt(&mut self, parts: &[(&str, u64, u64)]) {
        let sectors = (self.img.len() / 512) as u32;
        self.table_at(0, &[(0xEE, 1, sectors - 1, false)]);
        let mut entries = vec![0u8; 128 * 128];
        for (i, &(ty, first, last)) in parts.iter().enumerate() {
            let e = &mut entries[128 * i..128 * (i + 1)];
            e[..16].copy_from_slice(&guid_bytes(ty));
            e[16] = i as u8 + 1;
            put64(e, 32, first);
            put64(e, 40, last);
        }
        let mut h = vec![0u8; 92];
        h[..8].copy_from_slice(b"EFI PART");
        put32(&mut h, 8, 0x0001_0000);
        put32(&mut h, 12, 92);
        put64(&mut h, 24, 1);
        put64(&mut h, 32, u64::from(sectors) - 1);
        put64(&mut h, 40, 34);
        put64(&mut h, 48, u64::from(sectors) - 34);
        put64(&mut h, 72, 2);
        put32(&mut h, 80, 128);
        put32(&mut h, 84, 128);
        put32(&mut h, 88, crc32(&entries));
        let c = crc32(&h);
        put32(&mut h, 16, c);
        self.img[512..604].copy_from_slice(&h);
        self.img[1024..1024 + entries.len()].copy_from_slice(&entries);
    }

    /// Copies `bytes` to byte `at`.
    pub(crate) fn place(&mut self, at: usize, bytes: &[u8]) {
        self.img[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// Puts GRUB-like boot code in the MBR's first bytes.
    #[allow(dead_code)] // used by the advise tests
    pub(crate) fn boot_code(&mut self) {
        self.img[0] = 0xEB;
        self.img[1] = 0x63;
        self.img[2] = 0x90;
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.img
    }
}

/// A directory: its path, inode and entries (name, inode, dirent type).
type DirNode = (String, u32, Vec<(String, u32, u8)>);

/// What goes in an [`Ext2`] image.
pub(crate) enum Node<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

/// A 1 KiB-block, single-group ext2 filesystem (`filetype` feature only): superblock at 1024,
/// group descriptor table in block 2, bitmaps in 3 and 4, 64 inodes of 128 bytes in blocks
/// 5–12, data from block 13. Files use direct blocks and one indirect block.
pub(crate) struct Ext2 {
    img: Vec<u8>,
    next_block: u32,
    next_inode: u32,
    /// (path, inode) of directories, and their entries (name, inode, type).
    dirs: Vec<DirNode>,
    blocks: u32,
}

const BS: usize = 1024;
const INODES: u32 = 64;

impl Ext2 {
    pub(crate) fn new(blocks: u32) -> Ext2 {
        let mut e = Ext2 {
            img: vec![0; blocks as usize * BS],
            next_block: 13,
            next_inode: 11,
            dirs: vec![("/".into(), 2, vec![])],
            blocks,
        };
        e.inode(2, 0o040755, 0, &[]);
        e
    }

    /// Builds the tree and returns the image.
    pub(crate) fn build(mut self, nodes: &[Node<'_>], needs_recovery: bool) -> Vec<u8> {
        for n in nodes {
            match *n {
                Node::Dir(p) => {
                    let ino = self.alloc_inode();
                    self.link(p, ino, 2);
                    self.dirs.push((p.into(), ino, vec![]));
                }
                Node::File(p, data) => {
                    let ino = self.alloc_inode();
                    let blocks = self.data(data);
                    self.inode(ino, 0o100644, data.len() as u32, &blocks);
                    self.link(p, ino, 1);
                }
                Node::Symlink(p, target) => {
                    let ino = self.alloc_inode();
                    assert!(target.len() < 60);
                    let off = self.inode_off(ino);
                    put16(&mut self.img, off, 0o120777);
                    put32(&mut self.img, off + 4, target.len() as u32);
                    put16(&mut self.img, off + 26, 1);
                    self.img[off + 40..off + 40 + target.len()].copy_from_slice(target.as_bytes());
                    self.link(p, ino, 7);
                }
            }
        }
        let dirs = std::mem::take(&mut self.dirs);
        for (path, ino, entries) in &dirs {
            let parent = dirs.iter().find(|(p, ..)| *p == parent_of(path)).map(|d| d.1).unwrap_or(2);
            let mut block = vec![0u8; BS];
            let mut all = vec![(".".to_string(), *ino, 2u8), ("..".to_string(), parent, 2u8)];
            all.extend(entries.iter().cloned());
            let mut at = 0;
            for (i, (name, ino, ty)) in all.iter().enumerate() {
                let len = (8 + name.len()).div_ceil(4) * 4;
                let rec = if i + 1 == all.len() { BS - at } else { len };
                put32(&mut block, at, *ino);
                put16(&mut block, at + 4, rec as u16);
                block[at + 6] = name.len() as u8;
                block[at + 7] = *ty;
                block[at + 8..at + 8 + name.len()].copy_from_slice(name.as_bytes());
                at += rec;
            }
            let b = self.data(&block);
            let links = 2 + entries.iter().filter(|e| e.2 == 2).count() as u16;
            self.inode(*ino, 0o040755, BS as u32, &b);
            let off = self.inode_off(*ino);
            put16(&mut self.img, off + 26, links);
        }
        self.superblock(needs_recovery);
        self.img
    }

    fn alloc_inode(&mut self) -> u32 {
        let i = self.next_inode;
        self.next_inode += 1;
        assert!(i <= INODES);
        i
    }

    fn link(&mut self, path: &str, ino: u32, ty: u8) {
        let parent = parent_of(path);
        let name = path.rsplit('/').next().unwrap().to_string();
        let d = self.dirs.iter_mut().find(|d| d.0 == parent).unwrap_or_else(|| panic!("no dir {parent}"));
        d.2.push((name, ino, ty));
    }

    /// Writes `data` into fresh blocks; returns the block list (direct + indirect block last).
    fn data(&mut self, data: &[u8]) -> Vec<u32> {
        let mut list = Vec::new();
        for chunk in data.chunks(BS) {
            let b = self.next_block;
            self.next_block += 1;
            assert!(b < self.blocks, "ext2 fixture full");
            self.img[b as usize * BS..b as usize * BS + chunk.len()].copy_from_slice(chunk);
            list.push(b);
        }
        list
    }

    fn inode_off(&self, ino: u32) -> usize {
        5 * BS + (ino as usize - 1) * 128
    }

    fn inode(&mut self, ino: u32, mode: u16, size: u32, blocks: &[u32]) {
        assert!(blocks.len() <= 12 + 256);
        let mut ptrs = [0u32; 15];
        for (i, b) in blocks.iter().take(12).enumerate() {
            ptrs[i] = *b;
        }
        let mut used = blocks.len() as u32;
        if blocks.len() > 12 {
            let ind: Vec<u8> = blocks[12..].iter().flat_map(|b| b.to_le_bytes()).collect();
            let ib = self.data(&ind);
            ptrs[12] = ib[0];
            used += 1;
        }
        let off = self.inode_off(ino);
        put16(&mut self.img, off, mode);
        put32(&mut self.img, off + 4, size);
        put16(&mut self.img, off + 26, 1);
        put32(&mut self.img, off + 28, used * 2);
        for (i, p) in ptrs.iter().enumerate() {
            put32(&mut self.img, off + 40 + 4 * i, *p);
        }
    }

    fn superblock(&mut self, needs_recovery: bool) {
        let s = &mut self.img[1024..2048];
        put32(s, 0x00, INODES); // s_inodes_count
        put32(s, 0x04, self.blocks); // s_blocks_count_lo
        put32(s, 0x0C, self.blocks - self.next_block); // s_free_blocks_count_lo
        put32(s, 0x10, INODES - self.next_inode + 1); // s_free_inodes_count
        put32(s, 0x14, 1); // s_first_data_block
        put32(s, 0x18, 0); // s_log_block_size: 1 KiB
        put32(s, 0x20, 8192); // s_blocks_per_group
        put32(s, 0x24, 8192); // s_clusters_per_group
        put32(s, 0x28, INODES); // s_inodes_per_group
        put16(s, 0x38, 0xEF53); // s_magic
        put16(s, 0x3A, 1); // s_state: clean
        put32(s, 0x4C, 1); // s_rev_level: dynamic
        put32(s, 0x54, 11); // s_first_ino
        put16(s, 0x58, 128); // s_inode_size
        put32(s, 0x60, 0x2 | if needs_recovery { 0x4 } else { 0 }); // filetype (+ recover)
        s[0x68..0x78].copy_from_slice(&[0x11; 16]); // s_uuid
        s[0x78..0x80].copy_from_slice(b"rootfs\0\0"); // s_volume_name
        let g = &mut self.img[2048..2080];
        put32(g, 0, 3); // block bitmap
        put32(g, 4, 4); // inode bitmap
        put32(g, 8, 5); // inode table
        for b in 0..self.next_block as usize {
            let at = 3 * BS + b / 8;
            self.img[at] |= 1 << (b % 8);
        }
        for i in 0..(self.next_inode - 1) as usize {
            self.img[4 * BS + i / 8] |= 1 << (i % 8);
        }
    }
}

fn parent_of(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/".into(),
        Some((p, _)) => p.into(),
    }
}

/// An LVM2 PV of `size` bytes: label in sector 1, one metadata area at 4 KiB holding `meta`,
/// data from `pe_start` sectors; `data` is copied to the start of the data area.
pub(crate) fn lvm_pv(uuid: &str, meta: &str, pe_start: u64, size: usize, data: &[u8]) -> Vec<u8> {
    assert_eq!(uuid.len(), 32);
    let mut v = vec![0u8; size];
    let l = 512;
    v[l..l + 8].copy_from_slice(b"LABELONE");
    put64(&mut v, l + 8, 1);
    put32(&mut v, l + 20, 32);
    v[l + 24..l + 32].copy_from_slice(b"LVM2 001");
    let h = l + 32;
    v[h..h + 32].copy_from_slice(uuid.as_bytes());
    put64(&mut v, h + 32, size as u64);
    put64(&mut v, h + 40, pe_start * 512); // data area
                                           // zero pair at h+56, then the metadata area, then a zero pair
    put64(&mut v, h + 72, 4096);
    put64(&mut v, h + 80, 1 << 20);
    let m = 4096;
    v[m + 4..m + 20].copy_from_slice(b" LVM2 x[5A%r0N*>");
    put32(&mut v, m + 20, 1);
    put64(&mut v, m + 24, 4096);
    put64(&mut v, m + 32, 1 << 20);
    put64(&mut v, m + 40, 512);
    put64(&mut v, m + 48, meta.len() as u64);
    v[m + 512..m + 512 + meta.len()].copy_from_slice(meta.as_bytes());
    let d = pe_start as usize * 512;
    v[d..d + data.len()].copy_from_slice(data);
    v
}
