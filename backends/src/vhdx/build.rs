//! Builds VHDX files from a description, for tests and fuzz seeds (the `testutil` feature).
//!
//! Written from [MS-VHDX] and `disk-formats.md` §1.5, independently of the reader: the
//! expected contents of a built disk are the block contents given in the [`Spec`], so a test
//! compares the reader against the spec, not against itself. Layout of a built file:
//!
//! ```text
//!   0       identifier, headers (64/128 KiB), region tables (192/256 KiB)
//!   1 MiB   metadata region (1 MiB): table, items from 64 KiB
//!   2 MiB   log region (4 MiB; empty unless Spec::log)
//!   6 MiB   BAT region (whole MiB)
//!   then    payload blocks and sector bitmaps, in the order the spec lists them
//! ```
//!
//! With [`Spec::log`], the updates of the logged blocks (their BAT page and data sectors) exist
//! only in the log: the file itself holds the BAT page from before and, where the data goes,
//! sectors starting with 8 bytes of 0xEE filler, so only a correct replay reads the spec's
//! contents.

use super::crc;
use super::header::{self, Guid};
use crate::testutil::utf16le;

/// What a payload block holds.
#[derive(Clone, Debug)]
pub enum Block {
    /// FULLY_PRESENT with these bytes (padded with zeros to the block size).
    Data(Vec<u8>),
    /// PARTIALLY_PRESENT (differencing disks): `data` (padded), and one flag per logical
    /// sector of the block: true = this file, false = the parent.
    Partial {
        /// Block contents (sectors flagged false are filled with 0xCC, never read).
        data: Vec<u8>,
        /// Per-sector presence.
        sectors: Vec<bool>,
    },
    /// A raw BAT state with offset 0 (ZERO = 2, UNMAPPED = 3, UNDEFINED = 1, reserved 4, ...).
    State(u64),
    /// A raw BAT entry (for broken files).
    Entry(u64),
}

/// The log to write (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct LogSpec {
    /// Payload blocks whose BAT entries and data only the log holds.
    pub logged: Vec<u64>,
    /// Appends a further entry with the next sequence number and a broken checksum that would,
    /// if replayed, write 0x77 over the first logged sector.
    pub torn_tail: bool,
    /// Added to the file length in the entries' FlushedFileOffset (a truncated file).
    pub flushed_extra: u64,
    /// Writes a log GUID in the header but no valid entry.
    pub empty: bool,
}

/// A VHDX file to build.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Virtual disk size (a multiple of the logical sector size).
    pub virtual_size: u64,
    /// Block size (power of two, 1–256 MiB).
    pub block_size: u32,
    /// 512 or 4096.
    pub logical_sector: u32,
    /// LeaveBlocksAllocated.
    pub fixed: bool,
    /// Blocks by payload block number; unlisted blocks are NOT_PRESENT (or zero data when fixed).
    pub blocks: Vec<(u64, Block)>,
    /// Parent locator entries (key, value); `Some` makes a differencing disk.
    pub parent: Option<Vec<(String, String)>>,
    /// The header's DataWriteGuid.
    pub data_write_guid: Guid,
    /// A log to replay.
    pub log: Option<LogSpec>,
    /// An extra region (GUID, required).
    pub extra_region: Option<(Guid, bool)>,
    /// An extra metadata item (GUID, required).
    pub extra_item: Option<(Guid, bool)>,
}

impl Spec {
    /// A dynamic disk of `virtual_size` bytes with 1 MiB blocks and 512-byte sectors.
    pub fn dynamic(virtual_size: u64) -> Spec {
        Spec {
            virtual_size,
            block_size: 1 << 20,
            logical_sector: 512,
            fixed: false,
            blocks: Vec::new(),
            parent: None,
            data_write_guid: guid(1),
            log: None,
            extra_region: None,
            extra_item: None,
        }
    }

    /// The disk's contents as the spec describes them (zeros where the parent shows through).
    pub fn expected(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.virtual_size as usize];
        let bs = self.block_size as usize;
        for (b, blk) in &self.blocks {
            let at = *b as usize * bs;
            let n = bs.min(out.len().saturating_sub(at));
            if let Block::Data(d) = blk {
                let k = d.len().min(n);
                out[at..at + k].copy_from_slice(&d[..k]);
            }
            if let Block::Partial { data, sectors } = blk {
                let lss = self.logical_sector as usize;
                for (s, present) in sectors.iter().enumerate() {
                    let (lo, hi) = (s * lss, ((s + 1) * lss).min(n));
                    if *present && lo < hi {
                        let k = data.len().clamp(lo, hi);
                        out[at + lo..at + k].copy_from_slice(&data[lo..k]);
                    }
                }
            }
        }
        out
    }
}

/// A GUID made from a number (distinct numbers, distinct GUIDs).
pub fn guid(n: u32) -> Guid {
    let mut g = [0x5Au8; 16];
    g[..4].copy_from_slice(&n.to_le_bytes());
    g
}

const MIB: usize = 1 << 20;
const META_AT: usize = MIB;
const LOG_AT: usize = 2 * MIB;
const LOG_LEN: usize = 4 * MIB;
const BAT_AT: usize = LOG_AT + LOG_LEN;
const LOG_GUID: Guid = [0x42; 16];

fn put(f: &mut [u8], at: usize, b: &[u8]) {
    f[at..at + b.len()].copy_from_slice(b);
}

fn seal(f: &mut [u8], at: usize, len: usize) {
    f[at + 4..at + 8].fill(0);
    let c = crc::crc32c(&f[at..at + len]);
    put(f, at + 4, &c.to_le_bytes());
}

/// Builds the file.
pub fn build(spec: &Spec) -> Vec<u8> {
    let bs = spec.block_size as u64;
    let lss = spec.logical_sector as u64;
    let chunk_ratio = (1u64 << 23) * lss / bs;
    let payload = spec.virtual_size.div_ceil(bs);
    let diff = spec.parent.is_some();
    let entries =
        if diff { payload.div_ceil(chunk_ratio) * (chunk_ratio + 1) } else { payload + (payload - 1) / chunk_ratio };
    let bat_len = ((entries * 8) as usize).div_ceil(MIB).max(1) * MIB;
    let mut bat = vec![0u64; entries as usize];
    // Allocate blocks.
    let mut next = BAT_AT + bat_len;
    let mut data: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut bitmaps: std::collections::BTreeMap<u64, (usize, Vec<u8>)> = Default::default();
    let mut list = spec.blocks.clone();
    if spec.fixed {
        for b in 0..payload {
            if !list.iter().any(|(x, _)| *x == b) {
                list.push((b, Block::Data(Vec::new())));
            }
        }
        list.sort_by_key(|(b, _)| *b);
    }
    for (b, blk) in &list {
        let slot = (b + b / chunk_ratio) as usize;
        match blk {
            Block::Data(d) | Block::Partial { data: d, .. } => {
                let mut bytes = d.clone();
                bytes.resize(bs as usize, 0);
                let state = if let Block::Partial { sectors, .. } = blk {
                    for (s, p) in sectors.iter().enumerate() {
                        let lo = s * lss as usize;
                        if !p && lo < bytes.len() {
                            let hi = (lo + lss as usize).min(bytes.len());
                            bytes[lo..hi].fill(0xCC);
                        }
                    }
                    let c = b / chunk_ratio;
                    let bm = bitmaps.entry(c).or_insert_with(|| {
                        let at = next;
                        next += MIB;
                        (at, vec![0u8; MIB])
                    });
                    let spb = bs / lss;
                    for (s, p) in sectors.iter().enumerate() {
                        if *p {
                            let bit = (b % chunk_ratio) * spb + s as u64;
                            bm.1[(bit / 8) as usize] |= 1 << (bit % 8);
                        }
                    }
                    7
                } else {
                    6
                };
                bat[slot] = next as u64 | state;
                data.push((next, bytes));
                next += bs as usize;
            }
            Block::State(s) => bat[slot] = *s,
            Block::Entry(e) => bat[slot] = *e,
        }
    }
    for (c, (at, _)) in bitmaps.iter().filter(|_| diff) {
        bat[(c * (chunk_ratio + 1) + chunk_ratio) as usize] = *at as u64 | 6;
    }
    let mut f = vec![0u8; next];
    // Identifier, headers.
    put(&mut f, 0, header::FILE_MAGIC);
    put(&mut f, 8, &utf16le("xva-backends vhdx::build"));
    let logged = spec.log.as_ref().is_some_and(|l| !l.logged.is_empty() || l.empty);
    for (i, at) in [header::HEADER1_OFFSET as usize, header::HEADER2_OFFSET as usize].into_iter().enumerate() {
        put(&mut f, at, b"head");
        put(&mut f, at + 8, &(10 + i as u64).to_le_bytes());
        put(&mut f, at + 16, &guid(100));
        put(&mut f, at + 32, &spec.data_write_guid);
        if logged {
            put(&mut f, at + 48, &LOG_GUID);
        }
        put(&mut f, at + 66, &1u16.to_le_bytes());
        put(&mut f, at + 68, &(LOG_LEN as u32).to_le_bytes());
        put(&mut f, at + 72, &(LOG_AT as u64).to_le_bytes());
        seal(&mut f, at, header::HEADER_LEN);
    }
    // Region tables.
    for at in [header::REGION1_OFFSET as usize, header::REGION2_OFFSET as usize] {
        put(&mut f, at, b"regi");
        let mut regions =
            vec![(header::REGION_BAT, BAT_AT, bat_len, true), (header::REGION_METADATA, META_AT, MIB, true)];
        if let Some((g, req)) = spec.extra_region {
            regions.push((g, LOG_AT, MIB, req));
        }
        put(&mut f, at + 8, &(regions.len() as u32).to_le_bytes());
        for (i, (g, off, len, req)) in regions.iter().enumerate() {
            let e = at + 16 + i * 32;
            put(&mut f, e, g);
            put(&mut f, e + 16, &(*off as u64).to_le_bytes());
            put(&mut f, e + 24, &(*len as u32).to_le_bytes());
            put(&mut f, e + 28, &(*req as u32).to_le_bytes());
        }
        seal(&mut f, at, header::TABLE_LEN);
    }
    // Metadata.
    let mut items: Vec<(Guid, Vec<u8>, u32)> = vec![
        (
            header::ITEM_FILE_PARAMETERS,
            [spec.block_size.to_le_bytes(), (spec.fixed as u32 | (diff as u32) << 1).to_le_bytes()].concat(),
            4,
        ),
        (header::ITEM_VIRTUAL_DISK_SIZE, spec.virtual_size.to_le_bytes().to_vec(), 6),
        (header::ITEM_PAGE83, guid(7).to_vec(), 6),
        (header::ITEM_LOGICAL_SECTOR, spec.logical_sector.to_le_bytes().to_vec(), 6),
        (header::ITEM_PHYSICAL_SECTOR, 4096u32.to_le_bytes().to_vec(), 6),
    ];
    if let Some(kv) = &spec.parent {
        let mut loc = header::LOCATOR_TYPE_VHDX.to_vec();
        loc.extend(0u16.to_le_bytes());
        loc.extend((kv.len() as u16).to_le_bytes());
        let mut strings: Vec<u8> = Vec::new();
        let base = 20 + kv.len() * 12;
        for (k, v) in kv {
            let (k, v) = (utf16le(k), utf16le(v));
            let ko = base + strings.len();
            strings.extend(&k);
            let vo = base + strings.len();
            strings.extend(&v);
            loc.extend((ko as u32).to_le_bytes());
            loc.extend((vo as u32).to_le_bytes());
            loc.extend((k.len() as u16).to_le_bytes());
            loc.extend((v.len() as u16).to_le_bytes());
        }
        loc.extend(strings);
        items.push((header::ITEM_PARENT_LOCATOR, loc, 4));
    }
    if let Some((g, req)) = spec.extra_item {
        items.push((g, vec![1, 2, 3, 4], if req { 4 } else { 0 }));
    }
    put(&mut f, META_AT, b"metadata");
    put(&mut f, META_AT + 10, &(items.len() as u16).to_le_bytes());
    let mut at = 64 << 10;
    for (i, (g, bytes, flags)) in items.iter().enumerate() {
        let e = META_AT + 32 + i * 32;
        put(&mut f, e, g);
        put(&mut f, e + 16, &(at as u32).to_le_bytes());
        put(&mut f, e + 20, &(bytes.len() as u32).to_le_bytes());
        put(&mut f, e + 24, &flags.to_le_bytes());
        put(&mut f, META_AT + at, bytes);
        at += bytes.len().div_ceil(8) * 8;
    }
    // BAT, data, bitmaps.
    for (i, e) in bat.iter().enumerate() {
        put(&mut f, BAT_AT + i * 8, &e.to_le_bytes());
    }
    for (at, bytes) in &data {
        put(&mut f, *at, bytes);
    }
    for (at, bm) in bitmaps.values() {
        put(&mut f, *at, bm);
    }
    if let Some(l) = &spec.log {
        write_log(&mut f, spec, l, &list, chunk_ratio);
    }
    f
}

/// Moves the logged blocks' updates into the log (see the module docs).
fn write_log(f: &mut [u8], spec: &Spec, l: &LogSpec, list: &[(u64, Block)], chunk_ratio: u64) {
    const S: usize = 4096;
    if l.empty {
        return;
    }
    let bs = spec.block_size as usize;
    // Entry 1: the logged blocks' data sectors (zero descriptors for all-zero sectors).
    let mut e1: Vec<(usize, Option<Vec<u8>>)> = Vec::new();
    let mut bat_pages = std::collections::BTreeSet::new();
    for b in &l.logged {
        let slot = (b + b / chunk_ratio) as usize;
        let entry = u64::from_le_bytes(f[BAT_AT + slot * 8..BAT_AT + slot * 8 + 8].try_into().unwrap());
        let at = (entry & !0xF_FFFF) as usize;
        assert!(list.iter().any(|(x, _)| x == b), "logged block {b} is not in the spec");
        if at != 0 {
            for s in (at..at + bs).step_by(S) {
                let sector = f[s..s + S].to_vec();
                e1.push((s, if sector.iter().all(|&x| x == 0) { None } else { Some(sector) }));
                f[s..s + S].fill(0);
                f[s..s + 8].fill(0xEE);
            }
        }
        bat_pages.insert((BAT_AT + slot * 8) / S * S);
    }
    // Entry 2: the BAT pages as they should be; the file keeps them with the logged entries
    // NOT_PRESENT.
    let e2: Vec<(usize, Option<Vec<u8>>)> = bat_pages.iter().map(|&p| (p, Some(f[p..p + S].to_vec()))).collect();
    for b in &l.logged {
        let slot = (b + b / chunk_ratio) as usize;
        f[BAT_AT + slot * 8..BAT_AT + slot * 8 + 8].fill(0);
    }
    let file_len = f.len() as u64;
    let mut at = 0usize;
    let seq0 = 1000u64;
    // At most 100 descriptors an entry (qemu 10.0.2 refuses entries whose descriptors spill
    // past the first 4 KiB sector, 126 descriptors, with EINVAL — measured).
    let mut entries: Vec<Vec<(usize, Option<Vec<u8>>)>> = e1.chunks(100).map(<[_]>::to_vec).collect();
    entries.push(e2);
    if l.torn_tail {
        let first = entries[0].first().map(|(s, _)| *s).unwrap_or(BAT_AT);
        entries.push(vec![(first, Some(vec![0x77; S]))]);
    }
    let n = entries.len();
    for (i, writes) in entries.into_iter().enumerate() {
        let seq = seq0 + i as u64;
        let data_count = writes.iter().filter(|w| w.1.is_some()).count();
        let desc_len = (64 + 32 * writes.len()).div_ceil(S) * S;
        let len = desc_len + data_count * S;
        let mut e = vec![0u8; len];
        put(&mut e, 0, b"loge");
        put(&mut e, 8, &(len as u32).to_le_bytes());
        put(&mut e, 12, &0u32.to_le_bytes()); // tail: the first entry
        put(&mut e, 16, &seq.to_le_bytes());
        put(&mut e, 24, &(writes.len() as u32).to_le_bytes());
        put(&mut e, 32, &LOG_GUID);
        put(&mut e, 48, &(file_len + l.flushed_extra).to_le_bytes());
        put(&mut e, 56, &file_len.to_le_bytes());
        let mut d_at = desc_len;
        for (k, (off, sector)) in writes.iter().enumerate() {
            let d = 64 + k * 32;
            match sector {
                None => {
                    put(&mut e, d, b"zero");
                    put(&mut e, d + 8, &(S as u64).to_le_bytes());
                }
                Some(bytes) => {
                    put(&mut e, d, b"desc");
                    put(&mut e, d + 4, &bytes[4092..]);
                    put(&mut e, d + 8, &bytes[..8]);
                    put(&mut e, d_at, b"data");
                    put(&mut e, d_at + 4, &((seq >> 32) as u32).to_le_bytes());
                    put(&mut e, d_at + 8, &bytes[8..4092]);
                    put(&mut e, d_at + 4092, &(seq as u32).to_le_bytes());
                    d_at += S;
                }
            }
            put(&mut e, d + 16, &(*off as u64).to_le_bytes());
            put(&mut e, d + 24, &seq.to_le_bytes());
        }
        seal(&mut e, 0, len);
        if l.torn_tail && i + 1 == n {
            e[len - 1] ^= 0xFF;
        }
        assert!(at + len <= LOG_LEN, "the log entries do not fit in the 4 MiB log");
        put(f, LOG_AT + at, &e);
        at += len;
    }
}

/// Signature of the compact encoding of [`encode`].
pub const PATCH_MAGIC: &[u8; 4] = b"VXP1";
/// Largest file [`decode`] makes.
pub const PATCH_MAX_LEN: usize = 64 << 20;

/// Encodes a (mostly zero) file compactly, for fuzz seeds: `VXP1`, the file length (u32 LE),
/// then records of (offset u32 LE, length u16 LE, bytes): each 512-byte run's bytes from its
/// first to its last non-zero byte.
pub fn encode(file: &[u8]) -> Vec<u8> {
    let mut out = PATCH_MAGIC.to_vec();
    out.extend((file.len() as u32).to_le_bytes());
    let mut at = 0;
    while at < file.len() {
        let end = (at + 512).min(file.len());
        let run = &file[at..end];
        if let (Some(lo), Some(hi)) = (run.iter().position(|&b| b != 0), run.iter().rposition(|&b| b != 0)) {
            out.extend(((at + lo) as u32).to_le_bytes());
            out.extend(((hi + 1 - lo) as u16).to_le_bytes());
            out.extend(&run[lo..=hi]);
        }
        at = end;
    }
    out
}

/// Decodes [`encode`]'s format (arbitrary bytes welcome: records are clipped to the file,
/// whose length is capped at [`PATCH_MAX_LEN`]); `None` without the signature.
pub fn decode(data: &[u8]) -> Option<Vec<u8>> {
    let rest = data.strip_prefix(PATCH_MAGIC)?;
    let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let mut f = vec![0u8; len.min(PATCH_MAX_LEN)];
    let mut r = &rest[4..];
    while r.len() >= 6 {
        let at = u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as usize;
        let n = (u16::from_le_bytes([r[4], r[5]]) as usize).min(r.len() - 6);
        let bytes = &r[6..6 + n];
        if let Some(dst) = f.get_mut(at..) {
            let k = dst.len().min(n);
            dst[..k].copy_from_slice(&bytes[..k]);
        }
        r = &r[6 + n..];
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compact_encoding_round_trips() {
        let mut s = Spec::dynamic(3 << 20);
        s.blocks = vec![(1, Block::Data(vec![7; 1000]))];
        let f = build(&s);
        let e = encode(&f);
        assert!(e.len() < 40_000, "{}", e.len());
        assert_eq!(decode(&e).unwrap(), f);
        assert_eq!(
            decode(b"VXP1\x10\0\0\0\x02\0\0\0\xff\xff\x01"),
            Some(vec![0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(decode(b"vhdxfile"), None);
    }
}
