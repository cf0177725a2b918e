//! Spec builders for VHD files qemu-img cannot write: differencing disks with each kind of parent
//! locator, dynamic disks with sector bitmaps that leave sectors out, a pre-2004 511-byte
//! footer, and a disk with only the footer copy at offset 0 (a VHD inside a larger volume).
//!
//! Each builder takes the raw virtual-disk bytes and a per-sector choice, and lays the file out
//! from the format description (`disk-formats.md` §1.4), not from the reader's code:
//!
//! ```text
//!   [footer copy 512][dynamic header 1024][BAT, padded][locator data, a sector each]
//!   [bitmap|block] for every block with a stored sector ...  [footer 512 (or 511)]
//! ```
//!
//! What a reader returns can then be compared with bytes computed from the raw inputs alone.

/// Where the builder writes the footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FooterAt {
    /// At the end (512 bytes), with the copy at offset 0 in dynamic disks: what everyone writes.
    Both,
    /// Only the copy at offset 0; the file ends in 4 KiB of zeros (as inside a larger LV).
    StartOnly,
    /// At the end with only 511 bytes (pre-2004 Virtual PC), and the copy at offset 0.
    Short511,
}

/// The parent link of a differencing disk.
#[derive(Clone, Debug)]
pub struct Parent {
    /// The parent footer's unique id the child expects.
    pub unique_id: [u8; 16],
    /// The parent footer's time stamp the child expects.
    pub timestamp: u32,
    /// The header's parent unicode name (stored UTF-16 BE).
    pub unicode_name: String,
    /// Parent locators: platform code and platform data (use [`utf16le`], or UTF-8 for `MacX`).
    pub locators: Vec<([u8; 4], Vec<u8>)>,
}

/// Options of the builders.
#[derive(Clone, Debug)]
pub struct Opts {
    /// Block size (a power of two; qemu and Hyper-V use 2 MiB).
    pub block_size: u32,
    /// Creator application; `tap\0` (XenServer) is sized by current size in every qemu.
    pub creator: [u8; 4],
    /// Footer unique id.
    pub unique_id: [u8; 16],
    /// Footer time stamp.
    pub timestamp: u32,
    /// Makes a differencing disk.
    pub parent: Option<Parent>,
    /// Footer placement.
    pub footer: FooterAt,
    /// The byte written in the data area of stored blocks for sectors whose bitmap bit is clear
    /// (a dynamic disk's reader must still return zeros there).
    pub unset_fill: u8,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            block_size: 64 * 1024,
            creator: *b"tap\0",
            unique_id: [0x11; 16],
            timestamp: 0x2e00_0000,
            parent: None,
            footer: FooterAt::Both,
            unset_fill: 0,
        }
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}
/// Stores the one's complement of the byte sum of `b` (checksum field still zero) at `at`.
fn seal(b: &mut [u8], at: usize) {
    let sum: u32 = b.iter().map(|&x| x as u32).sum();
    put32(b, at, !sum);
}
fn pad(f: &mut Vec<u8>) {
    f.resize(f.len().div_ceil(512) * 512, 0);
}

/// UTF-16 LE bytes of `s` (W2ru / W2ku locators).
pub use crate::testutil::utf16le;

/// CHS geometry for `size` bytes, by the algorithm of the VHD specification.
pub fn geometry(size: u64) -> (u16, u8, u8) {
    let ts = (size / 512).min(65535 * 16 * 255);
    let (spt, heads, cth) = if ts >= 65535 * 16 * 63 {
        (255, 16, ts / 255)
    } else {
        let (mut spt, mut cth) = (17, ts / 17);
        let mut heads = cth.div_ceil(1024);
        heads = heads.max(4);
        if cth >= heads * 1024 || heads > 16 {
            spt = 31;
            heads = 16;
            cth = ts / spt;
        }
        if cth >= heads * 1024 {
            spt = 63;
            heads = 16;
            cth = ts / spt;
        }
        (spt, heads, cth)
    };
    ((cth / heads) as u16, heads as u8, spt as u8)
}

/// A 512-byte footer (`disk_type` 2, 3 or 4) for a disk of `size` bytes.
pub fn footer(disk_type: u32, size: u64, data_offset: u64, o: &Opts) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[..8].copy_from_slice(b"conectix");
    put32(&mut b, 8, 2);
    put32(&mut b, 12, 0x0001_0000);
    put64(&mut b, 16, data_offset);
    put32(&mut b, 24, o.timestamp);
    b[28..32].copy_from_slice(&o.creator);
    put32(&mut b, 32, 0x0001_0000);
    b[36..40].copy_from_slice(b"Wi2k");
    put64(&mut b, 40, size);
    put64(&mut b, 48, size);
    let (c, h, s) = geometry(size);
    b[56..58].copy_from_slice(&c.to_be_bytes());
    b[58] = h;
    b[59] = s;
    put32(&mut b, 60, disk_type);
    b[68..84].copy_from_slice(&o.unique_id);
    seal(&mut b, 64);
    b
}

/// A fixed VHD: the raw bytes, then the footer (placed as `o.footer` says; `StartOnly` is not a
/// fixed disk and gives the raw bytes with no footer).
pub fn fixed(raw: &[u8], o: &Opts) -> Vec<u8> {
    let mut f = raw.to_vec();
    let foot = footer(2, raw.len() as u64, u64::MAX, o);
    match o.footer {
        FooterAt::Both => f.extend_from_slice(&foot),
        FooterAt::Short511 => f.extend_from_slice(&foot[..511]),
        FooterAt::StartOnly => {}
    }
    f
}

/// A dynamic VHD (or a differencing one when `o.parent` is set) holding the sectors of `raw`
/// for which `stored(sector)` is true; a block is in the file when any of its sectors is.
/// `raw.len()` must be a multiple of 512.
pub fn sparse(raw: &[u8], stored: &dyn Fn(u64) -> bool, o: &Opts) -> Vec<u8> {
    let size = raw.len() as u64;
    let bs = o.block_size as u64;
    let spb = bs / 512;
    let entries = size.div_ceil(bs);
    let disk_type = if o.parent.is_some() { 4 } else { 3 };
    let bitmap_len = (spb.div_ceil(8)).div_ceil(512) * 512;
    let mut f = footer(disk_type, size, 512, o);
    // Dynamic header at 512, BAT at 1536.
    let mut h = vec![0u8; 1024];
    h[..8].copy_from_slice(b"cxsparse");
    h[8..16].fill(0xff);
    put64(&mut h, 16, 1536);
    put32(&mut h, 24, 0x0001_0000);
    put32(&mut h, 28, entries as u32);
    put32(&mut h, 32, o.block_size);
    let mut after_bat = 1536 + entries * 4;
    after_bat = after_bat.div_ceil(512) * 512;
    let mut locator_data = Vec::new();
    if let Some(p) = &o.parent {
        h[40..56].copy_from_slice(&p.unique_id);
        put32(&mut h, 56, p.timestamp);
        for (i, u) in p.unicode_name.encode_utf16().take(256).enumerate() {
            h[64 + 2 * i..66 + 2 * i].copy_from_slice(&u.to_be_bytes());
        }
        for (i, (code, data)) in p.locators.iter().enumerate().take(8) {
            let e = 576 + i * 24;
            let at = after_bat + locator_data.len() as u64;
            h[e..e + 4].copy_from_slice(code);
            put32(&mut h, e + 4, data.len().div_ceil(512).max(1) as u32);
            put32(&mut h, e + 8, data.len() as u32);
            put64(&mut h, e + 16, at);
            locator_data.extend_from_slice(data);
            pad(&mut locator_data);
        }
    }
    seal(&mut h, 36);
    f.extend_from_slice(&h);
    let bat_at = f.len();
    f.resize(bat_at + entries as usize * 4, 0xff);
    pad(&mut f);
    f.extend_from_slice(&locator_data);
    for b in 0..entries {
        let first = b * spb;
        let last = ((b + 1) * spb).min(size / 512);
        if !(first..last).any(stored) {
            continue;
        }
        let at = f.len() as u64;
        put32(&mut f, bat_at + b as usize * 4, (at / 512) as u32);
        let mut bitmap = vec![0u8; bitmap_len as usize];
        let mut data = vec![o.unset_fill; bs as usize];
        for s in first..last {
            let k = (s - first) as usize;
            if stored(s) {
                bitmap[k / 8] |= 0x80 >> (k % 8);
                data[k * 512..k * 512 + 512].copy_from_slice(&raw[s as usize * 512..s as usize * 512 + 512]);
            }
        }
        f.extend_from_slice(&bitmap);
        f.extend_from_slice(&data);
    }
    let foot = f[..512].to_vec();
    match o.footer {
        FooterAt::Both => f.extend_from_slice(&foot),
        FooterAt::Short511 => f.extend_from_slice(&foot[..511]),
        FooterAt::StartOnly => f.resize(f.len() + 4096, 0),
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_follows_the_spec_algorithm() {
        // disk-formats.md §1.4.1: 131 075 sectors → 963/8/17.
        assert_eq!(geometry(131_075 * 512), (963, 8, 17));
        assert_eq!(geometry(u64::MAX / 2), (65535, 16, 255));
    }

    #[test]
    fn layout() {
        let raw = vec![5u8; 3 * 64 * 1024];
        let f = sparse(&raw, &|s| s == 130, &Opts::default());
        assert_eq!(&f[..8], b"conectix");
        assert_eq!(&f[512..520], b"cxsparse");
        assert_eq!(&f[f.len() - 512..f.len() - 504], b"conectix");
        // BAT: block 1 only, right after the BAT sector.
        assert_eq!(&f[1536..1548], &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(f[2048], 0x20, "sector 2 of block 1");
    }
}
