//! Spec builders for qcow2 and qcow v1 files, including what qemu-img cannot write: Xen
//! blktap's qcow v1 (with and without its big-endian-L1 flag), zero clusters with a host
//! offset, extended L2 subclusters chosen one by one, zstd clusters of several frames, and
//! damaged headers.
//!
//! Each builder takes the raw virtual-disk bytes and a per-cluster choice and lays the file out
//! from the format description (`disk-formats.md` §1.3), not from the reader's code. What a
//! reader returns is compared with [`expected`], computed from the same raw bytes and choices.
//! Bytes of a host cluster that the image says are not data (unallocated or zero subclusters,
//! zero clusters with an offset) are filled with `0xEE`, so a reader that reads them is caught.

use std::io::Write;

use super::header::{
    Compression, AUTOCLEAR_DATA_FILE_RAW, EXT_BACKING_FORMAT, EXT_DATA_FILE, EXT_FEATURE_NAMES, INCOMPAT_COMPRESSION,
    INCOMPAT_DATA_FILE, INCOMPAT_EXTENDED_L2, MAGIC,
};
use super::mapping::{L2E_COMPRESSED, L2E_ZERO, OFLAG_COPIED, SUBCLUSTERS, V1_COMPRESSED};
use super::qcow1::{self, EXTHDR_L1_BIG_ENDIAN, XEN_MAGIC};

/// What the builder does with one subcluster of an extended-L2 cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubSpec {
    /// Neither bit: the parent shows through.
    Unallocated,
    /// The zero bit.
    Zero,
    /// The allocation bit, with the raw bytes.
    Data,
}

/// What the builder does with one cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterSpec {
    /// L2 entry 0: the parent shows through (a whole L2 table of these is not written).
    Unallocated,
    /// The zero flag without a host cluster (v3; for v1, same as `Unallocated`).
    Zero,
    /// The zero flag with a host cluster full of `0xEE` (a preallocated zero cluster).
    ZeroAlloc,
    /// A plain data cluster with the raw bytes.
    Data,
    /// A compressed cluster (zlib or zstd as the options say).
    Compressed,
    /// Extended L2 only: one choice per subcluster.
    Sub([SubSpec; SUBCLUSTERS as usize]),
}

/// Options of [`qcow2`].
#[derive(Clone, Debug)]
pub struct Qcow2Opts {
    /// 2 or 3.
    pub version: u32,
    /// log2 of the cluster size.
    pub cluster_bits: u32,
    /// 128-bit L2 entries.
    pub extended_l2: bool,
    /// Compression of `Compressed` clusters.
    pub compression: Compression,
    /// zstd only: split each cluster into this many frames.
    pub zstd_frames: usize,
    /// Backing file name and format.
    pub backing: Option<(String, Option<String>)>,
    /// External data file name; data clusters then go to [`Built::data`] at their guest offset.
    pub data_file: Option<String>,
    /// Set the "raw external data" autoclear bit.
    pub data_file_raw: bool,
    /// `crypt_method` field.
    pub crypt_method: u32,
    /// More incompatible bits to set (dirty, corrupt, unknown ones).
    pub incompatible_extra: u64,
    /// More feature-name table entries: (type, bit, name).
    pub extra_feature_names: Vec<(u8, u8, String)>,
}

impl Default for Qcow2Opts {
    fn default() -> Qcow2Opts {
        Qcow2Opts {
            version: 3,
            cluster_bits: 16,
            extended_l2: false,
            compression: Compression::Zlib,
            zstd_frames: 1,
            backing: None,
            data_file: None,
            data_file_raw: false,
            crypt_method: 0,
            incompatible_extra: 0,
            extra_feature_names: Vec::new(),
        }
    }
}

/// A built image: the qcow2 file, and its external data file when there is one.
#[derive(Clone, Debug)]
pub struct Built {
    /// The image file.
    pub image: Vec<u8>,
    /// The external data file.
    pub data: Option<Vec<u8>>,
}

/// The header cluster of an image of `size` bytes with these options, its L1 table at
/// cluster 1.
#[derive(Clone, Debug)]
pub struct HeaderSpec {
    opts: Qcow2Opts,
    size: u64,
    l1_offset: u64,
    l1_size: u32,
}

fn l2_bits(o: &Qcow2Opts) -> u32 {
    o.cluster_bits - if o.extended_l2 { 4 } else { 3 }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

fn ext(out: &mut Vec<u8>, ty: u32, data: &[u8]) {
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(8) * 8, 0);
}

impl HeaderSpec {
    /// The header of an image of `size` bytes, L1 at cluster 1 with as many entries as needed.
    pub fn from_opts(o: &Qcow2Opts, size: u64) -> HeaderSpec {
        let span = 1u64 << (o.cluster_bits + l2_bits(o));
        HeaderSpec { opts: o.clone(), size, l1_offset: 1 << o.cluster_bits, l1_size: size.div_ceil(span) as u32 }
    }

    /// The first cluster of the file.
    pub fn bytes(&self) -> Vec<u8> {
        let o = &self.opts;
        let cs = 1usize << o.cluster_bits;
        let mut h = vec![0u8; if o.version == 2 { 72 } else { 112 }];
        h[0..4].copy_from_slice(MAGIC);
        put32(&mut h, 4, o.version);
        put32(&mut h, 20, o.cluster_bits);
        put64(&mut h, 24, self.size);
        put32(&mut h, 32, o.crypt_method);
        put32(&mut h, 36, self.l1_size);
        put64(&mut h, 40, self.l1_offset);
        if o.version == 3 {
            let mut incompat = o.incompatible_extra;
            if o.extended_l2 {
                incompat |= INCOMPAT_EXTENDED_L2;
            }
            if o.data_file.is_some() {
                incompat |= INCOMPAT_DATA_FILE;
            }
            if o.compression == Compression::Zstd {
                incompat |= INCOMPAT_COMPRESSION;
                h[104] = 1;
            }
            put64(&mut h, 72, incompat);
            put64(&mut h, 88, if o.data_file_raw { AUTOCLEAR_DATA_FILE_RAW } else { 0 });
            put32(&mut h, 96, 4);
            put32(&mut h, 100, 112);
        }
        if let Some((_, Some(fmt))) = &o.backing {
            ext(&mut h, EXT_BACKING_FORMAT, fmt.as_bytes());
        }
        if let Some(d) = &o.data_file {
            ext(&mut h, EXT_DATA_FILE, d.as_bytes());
        }
        if o.version == 3 {
            let mut names: Vec<(u8, u8, String)> = [
                (0, 0, "dirty bit"),
                (0, 1, "corrupt bit"),
                (0, 2, "external data file"),
                (0, 3, "compression type"),
                (0, 4, "extended L2 entries"),
                (1, 0, "lazy refcounts"),
                (2, 0, "bitmaps"),
                (2, 1, "raw external data"),
            ]
            .iter()
            .map(|&(t, b, n)| (t, b, n.to_string()))
            .collect();
            names.extend(o.extra_feature_names.iter().cloned());
            let mut table = Vec::new();
            for (t, b, n) in names {
                let mut e = vec![0u8; 48];
                e[0] = t;
                e[1] = b;
                e[2..2 + n.len().min(46)].copy_from_slice(&n.as_bytes()[..n.len().min(46)]);
                table.extend_from_slice(&e);
            }
            ext(&mut h, EXT_FEATURE_NAMES, &table);
        }
        h.extend_from_slice(&[0u8; 8]); // end of extensions
        if let Some((name, _)) = &o.backing {
            let at = h.len() as u64;
            put64(&mut h, 8, at);
            put32(&mut h, 16, name.len() as u32);
            h.extend_from_slice(name.as_bytes());
        }
        assert!(h.len() <= cs, "header does not fit in the first cluster");
        h.resize(cs, 0);
        h
    }
}

/// The raw bytes of cluster `c` (zero-padded past the end of the disk).
fn cluster_bytes(raw: &[u8], c: u64, cs: usize) -> Vec<u8> {
    let s = (c as usize * cs).min(raw.len());
    let e = (s + cs).min(raw.len());
    let mut v = raw[s..e].to_vec();
    v.resize(cs, 0);
    v
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(data).expect("in memory");
    z.finish().expect("in memory")
}

fn zstd_frames(data: &[u8], frames: usize) -> Vec<u8> {
    let per = data.len().div_ceil(frames.max(1));
    data.chunks(per).flat_map(|c| zstd::bulk::compress(c, 3).expect("in memory")).collect()
}

fn align(f: &mut Vec<u8>, to: usize) {
    f.resize(f.len().div_ceil(to) * to, 0);
}

/// Builds a qcow2 image of `raw.len()` bytes, cluster by cluster as `spec` says.
pub fn qcow2(raw: &[u8], spec: &dyn Fn(u64) -> ClusterSpec, o: &Qcow2Opts) -> Built {
    let size = raw.len() as u64;
    let cs = 1usize << o.cluster_bits;
    let hs = HeaderSpec::from_opts(o, size);
    let mut f = hs.bytes();
    let l1_size = hs.l1_size as usize;
    f.resize(cs + (l1_size * 8).div_ceil(cs) * cs, 0);
    let per_table = 1usize << l2_bits(o);
    let words = if o.extended_l2 { 2 } else { 1 };
    let n_clusters = size.div_ceil(cs as u64);
    let mut data = o.data_file.as_ref().map(|_| vec![0u8; size as usize]);
    for t in 0..l1_size {
        let first = (t * per_table) as u64;
        let last = (first + per_table as u64).min(n_clusters);
        if (first..last).all(|c| spec(c) == ClusterSpec::Unallocated) {
            continue;
        }
        align(&mut f, cs);
        let table_at = f.len();
        put64(&mut f[cs..], t * 8, table_at as u64 | OFLAG_COPIED);
        f.resize(table_at + cs, 0);
        let mut entries = vec![0u64; per_table * words];
        for c in first..last {
            let i = (c - first) as usize * words;
            let bytes = cluster_bytes(raw, c, cs);
            // A host cluster: in the data file at the guest offset, or appended to the image.
            let mut host = |content: &[u8], f: &mut Vec<u8>| -> u64 {
                match &mut data {
                    Some(d) => {
                        let at = c as usize * cs;
                        let end = (at + cs).min(d.len());
                        d[at..end].copy_from_slice(&content[..end - at]);
                        at as u64
                    }
                    None => {
                        align(f, cs);
                        let at = f.len();
                        f.extend_from_slice(content);
                        at as u64
                    }
                }
            };
            let copied = if o.data_file.is_some() { OFLAG_COPIED } else { 0 };
            match spec(c) {
                ClusterSpec::Unallocated => {}
                ClusterSpec::Zero => entries[i] = L2E_ZERO,
                ClusterSpec::ZeroAlloc => entries[i] = host(&vec![0xEE; cs], &mut f) | L2E_ZERO | copied,
                ClusterSpec::Data => entries[i] = host(&bytes, &mut f) | OFLAG_COPIED,
                ClusterSpec::Compressed => {
                    let c = match o.compression {
                        Compression::Zlib => deflate(&bytes),
                        Compression::Zstd => zstd_frames(&bytes, o.zstd_frames),
                    };
                    let at = f.len() as u64;
                    let x = 62 - (o.cluster_bits - 8);
                    let sectors = ((at % 512) + c.len() as u64).div_ceil(512);
                    if sectors > 1 << (o.cluster_bits - 8) {
                        // Does not compress enough for the descriptor: stored plain, as qemu does.
                        entries[i] = host(&bytes, &mut f) | OFLAG_COPIED;
                    } else {
                        f.extend_from_slice(&c);
                        entries[i] = L2E_COMPRESSED | ((sectors - 1) << x) | at;
                    }
                }
                ClusterSpec::Sub(subs) => {
                    let sub = cs / SUBCLUSTERS as usize;
                    let mut content = vec![0xEE; cs];
                    let (mut alloc, mut zero) = (0u32, 0u32);
                    for (s, k) in subs.iter().enumerate() {
                        match k {
                            SubSpec::Unallocated => {}
                            SubSpec::Zero => zero |= 1 << s,
                            SubSpec::Data => {
                                alloc |= 1 << s;
                                content[s * sub..(s + 1) * sub].copy_from_slice(&bytes[s * sub..(s + 1) * sub]);
                            }
                        }
                    }
                    if alloc != 0 {
                        entries[i] = host(&content, &mut f) | OFLAG_COPIED;
                    }
                    entries[i + 1] = alloc as u64 | (zero as u64) << 32;
                }
            }
        }
        for (k, e) in entries.iter().enumerate() {
            put64(&mut f, table_at + k * 8, *e);
        }
    }
    Built { image: f, data }
}

/// What a reader must return for an image built by [`qcow2`] (or [`qcow1`]) from `raw` and
/// `spec`, over `parent` (the resolved bytes of the backing file; shorter: zeros past its end).
pub fn expected(raw: &[u8], spec: &dyn Fn(u64) -> ClusterSpec, cluster_bits: u32, parent: Option<&[u8]>) -> Vec<u8> {
    let cs = 1usize << cluster_bits;
    let below = |i: usize| parent.and_then(|p| p.get(i).copied()).unwrap_or(0);
    (0..raw.len())
        .map(|i| match spec((i / cs) as u64) {
            ClusterSpec::Unallocated => below(i),
            ClusterSpec::Zero | ClusterSpec::ZeroAlloc => 0,
            ClusterSpec::Data | ClusterSpec::Compressed => raw[i],
            ClusterSpec::Sub(subs) => match subs[(i % cs) / (cs / SUBCLUSTERS as usize)] {
                SubSpec::Unallocated => below(i),
                SubSpec::Zero => 0,
                SubSpec::Data => raw[i],
            },
        })
        .collect()
}

/// blktap's extension for [`qcow1`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlktapOpts {
    /// Set `EXTHDR_L1_BIG_ENDIAN` and store the L1 table big-endian; otherwise store it
    /// little-endian, as old tapdisks did.
    pub big_endian_flag: bool,
    /// Store the right L1 checksum (otherwise a wrong one, as after a tapdisk crash).
    pub good_checksum: bool,
}

/// Options of [`qcow1`].
#[derive(Clone, Debug)]
pub struct Qcow1Opts {
    /// log2 of the cluster size (9 to 16).
    pub cluster_bits: u32,
    /// log2 of the entries per L2 table (6 to 13).
    pub l2_bits: u32,
    /// Backing file name.
    pub backing: Option<String>,
    /// Write blktap's extension.
    pub blktap: Option<BlktapOpts>,
}

impl Default for Qcow1Opts {
    fn default() -> Qcow1Opts {
        Qcow1Opts { cluster_bits: 12, l2_bits: 9, backing: None, blktap: None }
    }
}

/// Builds a qcow v1 image (optionally in blktap's layout) of `raw.len()` bytes. `Zero`
/// clusters do not exist in v1 and are written as unallocated; `Sub` is not allowed.
pub fn qcow1(raw: &[u8], spec: &dyn Fn(u64) -> ClusterSpec, o: &Qcow1Opts) -> Vec<u8> {
    let size = raw.len() as u64;
    let cs = 1usize << o.cluster_bits;
    let per_table = 1usize << o.l2_bits;
    let l1_size = size.div_ceil((cs * per_table) as u64) as usize;
    let mut f = vec![0u8; 64];
    f[0..4].copy_from_slice(MAGIC);
    put32(&mut f, 4, 1);
    put64(&mut f, 24, size);
    f[32] = o.cluster_bits as u8;
    f[33] = o.l2_bits as u8;
    if let Some(name) = &o.backing {
        put64(&mut f, 8, 64);
        put32(&mut f, 16, name.len() as u32);
        f.extend_from_slice(name.as_bytes());
    }
    align(&mut f, 4096);
    let l1_at = f.len();
    put64(&mut f, 40, l1_at as u64);
    f.resize(l1_at + l1_size * 8, 0);
    let mut l1 = vec![0u64; l1_size];
    let n_clusters = size.div_ceil(cs as u64);
    for (t, l1e) in l1.iter_mut().enumerate() {
        let first = (t * per_table) as u64;
        let last = (first + per_table as u64).min(n_clusters);
        if (first..last).all(|c| matches!(spec(c), ClusterSpec::Unallocated | ClusterSpec::Zero)) {
            continue;
        }
        align(&mut f, cs);
        let table_at = f.len();
        *l1e = table_at as u64;
        f.resize(table_at + per_table * 8, 0);
        for c in first..last {
            let bytes = cluster_bytes(raw, c, cs);
            let e = match spec(c) {
                ClusterSpec::Unallocated | ClusterSpec::Zero => 0,
                ClusterSpec::Data | ClusterSpec::ZeroAlloc => {
                    let bytes = if spec(c) == ClusterSpec::Data { bytes } else { vec![0u8; cs] };
                    align(&mut f, cs);
                    let at = f.len() as u64;
                    f.extend_from_slice(&bytes);
                    at
                }
                ClusterSpec::Compressed => {
                    let z = deflate(&bytes);
                    let at = f.len() as u64;
                    if z.len() < cs {
                        f.extend_from_slice(&z);
                        V1_COMPRESSED | (z.len() as u64) << (63 - o.cluster_bits) | at
                    } else {
                        align(&mut f, cs);
                        let at = f.len() as u64;
                        f.extend_from_slice(&bytes);
                        at
                    }
                }
                ClusterSpec::Sub(_) => panic!("qcow v1 has no subclusters"),
            };
            put64(&mut f, table_at + (c - first) as usize * 8, e);
        }
    }
    let le = o.blktap.is_some_and(|b| !b.big_endian_flag);
    for (i, e) in l1.iter().enumerate() {
        let b = if le { e.to_le_bytes() } else { e.to_be_bytes() };
        f[l1_at + i * 8..l1_at + i * 8 + 8].copy_from_slice(&b);
    }
    if let Some(b) = o.blktap {
        f[48..52].copy_from_slice(XEN_MAGIC);
        let ck = qcow1::l1_checksum(&l1);
        put32(&mut f, 52, if b.good_checksum { ck } else { ck ^ 0x5a5a });
        put32(&mut f, 56, 1);
        put32(&mut f, 60, qcow1::EXTHDR_SPARSE_FILE | if b.big_endian_flag { EXTHDR_L1_BIG_ENDIAN } else { 0 });
    }
    f
}
