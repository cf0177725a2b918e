//! Spec builders for VMDK files qemu-img cannot write: VMware-layout streamOptimized (GD at
//! the end, footer, GT/GD/EOS markers), hosted sparse with chosen zeroed grains and a
//! redundant GD, COWD (vmfsSparse) deltas and seSparse deltas.
//!
//! Each builder takes the raw virtual-disk bytes and a per-grain choice, and lays the file out
//! from the format description (`disk-formats.md` §1.2), not from the reader's code: what a
//! reader returns can be compared with the raw bytes (and the choices) it was built from.

use std::io::Write;

/// What a builder does with one grain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrainSpec {
    /// Not stored: the parent shows through (GTE 0).
    Unallocated,
    /// Stored as an explicit zero (KDMV GTE 1 with the zeroed-grain flag, seSparse zero).
    Zero,
    /// Stored with the raw bytes.
    Data,
}

/// Options of [`sparse`].
#[derive(Clone, Debug)]
pub struct SparseOpts {
    /// Grain size in sectors (default 128 = 64 KiB).
    pub grain_sectors: u64,
    /// Entries per grain table (default 512).
    pub gtes: u32,
    /// VMware streamOptimized layout: compressed grains with markers, GD at the end, footer.
    pub stream: bool,
    /// Write a redundant GD (hosted layout only).
    pub rgd: bool,
    /// Embedded descriptor text.
    pub descriptor: Option<String>,
}

impl Default for SparseOpts {
    fn default() -> SparseOpts {
        SparseOpts { grain_sectors: 128, gtes: 512, stream: false, rgd: false, descriptor: None }
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn pad_to_sector(f: &mut Vec<u8>) {
    let n = f.len().div_ceil(512) * 512;
    f.resize(n, 0);
}
fn sectors(bytes: u64) -> u64 {
    bytes.div_ceil(512)
}

/// The raw bytes of grain `g` (zero-padded at the end of the disk).
fn grain_bytes(raw: &[u8], g: u64, grain: usize) -> Vec<u8> {
    let s = g as usize * grain;
    let e = (s + grain).min(raw.len());
    let mut v = raw[s..e].to_vec();
    v.resize(grain, 0);
    v
}

/// A 512-byte KDMV header.
#[allow(clippy::too_many_arguments)]
fn kdmv_header(
    version: u32,
    flags: u32,
    capacity: u64,
    grain: u64,
    desc: (u64, u64),
    gtes: u32,
    rgd: u64,
    gd: u64,
    overhead: u64,
    compress: u16,
) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[0..4].copy_from_slice(b"KDMV");
    put32(&mut h, 4, version);
    put32(&mut h, 8, flags);
    put64(&mut h, 12, capacity);
    put64(&mut h, 20, grain);
    put64(&mut h, 28, desc.0);
    put64(&mut h, 36, desc.1);
    put32(&mut h, 44, gtes);
    put64(&mut h, 48, rgd);
    put64(&mut h, 56, gd);
    put64(&mut h, 64, overhead);
    h[73..77].copy_from_slice(b"\n \r\n");
    h[77..79].copy_from_slice(&compress.to_le_bytes());
    h
}

/// Builds a KDMV file holding `raw` (a multiple of 512 bytes), grain by grain as `spec` says.
pub fn sparse(raw: &[u8], spec: &dyn Fn(u64) -> GrainSpec, o: &SparseOpts) -> Vec<u8> {
    assert!(raw.len().is_multiple_of(512), "capacity is in sectors");
    let cap = raw.len() as u64 / 512;
    let grain = (o.grain_sectors * 512) as usize;
    let n_grains = cap.div_ceil(o.grain_sectors);
    let n_gts = n_grains.div_ceil(o.gtes as u64);
    let gt_sectors = sectors(o.gtes as u64 * 4);
    let gd_sectors = sectors(n_gts * 4);
    let desc_sectors = 20u64;
    let desc = o.descriptor.as_deref().unwrap_or("");
    assert!(desc.len() <= 20 * 512);
    let mut gts = vec![0u32; (n_gts * o.gtes as u64) as usize];
    let zeroed = (0..n_grains).any(|g| spec(g) == GrainSpec::Zero);
    if o.stream {
        let flags = 1
            | super::sparse::FLAG_COMPRESSED
            | super::sparse::FLAG_MARKERS
            | if zeroed { super::sparse::FLAG_ZEROED_GRAIN } else { 0 };
        let overhead = 128u64;
        let mut f = kdmv_header(
            3,
            flags,
            cap,
            o.grain_sectors,
            if desc.is_empty() { (0, 0) } else { (1, desc_sectors) },
            o.gtes,
            0,
            super::sparse::GD_AT_END,
            overhead,
            1,
        );
        f.extend_from_slice(desc.as_bytes());
        f.resize((overhead * 512) as usize, 0);
        for g in 0..n_grains {
            match spec(g) {
                GrainSpec::Unallocated => {}
                GrainSpec::Zero => gts[g as usize] = 1,
                GrainSpec::Data => {
                    gts[g as usize] = (f.len() / 512) as u32;
                    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                    z.write_all(&grain_bytes(raw, g, grain)).unwrap();
                    let c = z.finish().unwrap();
                    f.extend_from_slice(&(g * o.grain_sectors).to_le_bytes());
                    f.extend_from_slice(&(c.len() as u32).to_le_bytes());
                    f.extend_from_slice(&c);
                    pad_to_sector(&mut f);
                }
            }
        }
        let marker = |f: &mut Vec<u8>, val: u64, ty: u32| {
            let mut m = vec![0u8; 512];
            put64(&mut m, 0, val);
            put32(&mut m, 12, ty);
            f.extend_from_slice(&m);
        };
        let mut gd = vec![0u32; n_gts as usize];
        for t in 0..n_gts as usize {
            let entries = &gts[t * o.gtes as usize..(t + 1) * o.gtes as usize];
            if entries.iter().all(|&e| e == 0) {
                continue;
            }
            marker(&mut f, gt_sectors, super::sparse::MARKER_GT);
            gd[t] = (f.len() / 512) as u32;
            for e in entries {
                f.extend_from_slice(&e.to_le_bytes());
            }
            pad_to_sector(&mut f);
        }
        marker(&mut f, gd_sectors, super::sparse::MARKER_GD);
        let gd_at = (f.len() / 512) as u64;
        for e in &gd {
            f.extend_from_slice(&e.to_le_bytes());
        }
        pad_to_sector(&mut f);
        marker(&mut f, 1, super::sparse::MARKER_FOOTER);
        f.extend_from_slice(&kdmv_header(
            3,
            flags,
            cap,
            o.grain_sectors,
            if desc.is_empty() { (0, 0) } else { (1, desc_sectors) },
            o.gtes,
            0,
            gd_at,
            overhead,
            1,
        ));
        marker(&mut f, 0, super::sparse::MARKER_EOS);
        return f;
    }
    // Hosted layout: header, descriptor, [RGD, RGTs], GD, GTs, grains.
    let mut next = 1 + desc_sectors;
    let tables = gd_sectors + n_gts * gt_sectors;
    let rgd_at = if o.rgd {
        let at = next;
        next += tables;
        at
    } else {
        0
    };
    let gd_at = next;
    next += tables;
    let overhead = next.div_ceil(o.grain_sectors) * o.grain_sectors;
    let mut data = Vec::new();
    for g in 0..n_grains {
        match spec(g) {
            GrainSpec::Unallocated => {}
            GrainSpec::Zero => gts[g as usize] = 1,
            GrainSpec::Data => {
                gts[g as usize] = (overhead + data.len() as u64 / 512) as u32;
                data.extend_from_slice(&grain_bytes(raw, g, grain));
            }
        }
    }
    let flags =
        1 | if o.rgd { super::sparse::FLAG_RGD } else { 0 } | if zeroed { super::sparse::FLAG_ZEROED_GRAIN } else { 0 };
    let mut f = kdmv_header(
        if zeroed { 2 } else { 1 },
        flags,
        cap,
        o.grain_sectors,
        if desc.is_empty() { (0, 0) } else { (1, desc_sectors) },
        o.gtes,
        rgd_at,
        gd_at,
        overhead,
        0,
    );
    f.extend_from_slice(desc.as_bytes());
    f.resize(((1 + desc_sectors) * 512) as usize, 0);
    let write_tables = |f: &mut Vec<u8>, at: u64| {
        assert_eq!(f.len() as u64, at * 512);
        let gts_at = at + gd_sectors;
        for t in 0..n_gts {
            f.extend_from_slice(&((gts_at + t * gt_sectors) as u32).to_le_bytes());
        }
        pad_to_sector(f);
        for t in 0..n_gts as usize {
            for e in &gts[t * o.gtes as usize..(t + 1) * o.gtes as usize] {
                f.extend_from_slice(&e.to_le_bytes());
            }
            pad_to_sector(f);
        }
    };
    if o.rgd {
        write_tables(&mut f, rgd_at);
    }
    write_tables(&mut f, gd_at);
    f.resize((overhead * 512) as usize, 0);
    f.extend_from_slice(&data);
    f
}

/// Builds a COWD (vmfsSparse) file holding the grains of `raw` that `spec` says are data
/// (COWD has no zeroed grains: [`GrainSpec::Zero`] is not allowed).
pub fn cowd(raw: &[u8], grain_sectors: u32, spec: &dyn Fn(u64) -> GrainSpec) -> Vec<u8> {
    assert!(raw.len().is_multiple_of(512));
    let cap = (raw.len() / 512) as u32;
    let grain = grain_sectors as usize * 512;
    let n_grains = (cap as u64).div_ceil(grain_sectors as u64);
    let n_gts = n_grains.div_ceil(4096);
    let gd_at = 4u64;
    let gd_sectors = sectors(n_gts * 4);
    let gt_sectors = 32u64; // 4096 entries × 4 bytes
    let mut f = vec![0u8; 2048];
    f[0..4].copy_from_slice(b"COWD");
    put32(&mut f, 4, 1);
    put32(&mut f, 8, 3);
    put32(&mut f, 12, cap);
    put32(&mut f, 16, grain_sectors);
    put32(&mut f, 20, gd_at as u32);
    put32(&mut f, 24, n_gts as u32);
    let gts_at = gd_at + gd_sectors;
    for t in 0..n_gts {
        f.extend_from_slice(&((gts_at + t * gt_sectors) as u32).to_le_bytes());
    }
    pad_to_sector(&mut f);
    let mut gts = vec![0u32; (n_gts * 4096) as usize];
    let mut next = gts_at + n_gts * gt_sectors;
    let mut data = Vec::new();
    for g in 0..n_grains {
        match spec(g) {
            GrainSpec::Unallocated => {}
            GrainSpec::Zero => panic!("COWD has no zeroed grains"),
            GrainSpec::Data => {
                gts[g as usize] = next as u32;
                next += grain_sectors as u64;
                data.extend_from_slice(&grain_bytes(raw, g, grain));
            }
        }
    }
    put32(&mut f, 28, next as u32);
    for e in &gts {
        f.extend_from_slice(&e.to_le_bytes());
    }
    f.extend_from_slice(&data);
    f
}

/// What an seSparse grain is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeGrain {
    /// GTE 0: the parent shows through.
    Unallocated,
    /// Type 1: unmapped by the guest (reads as zeros).
    Unmapped,
    /// Type 2: zero.
    Zero,
    /// Type 3: allocated, stored in the grain area.
    Data,
}

/// Builds an seSparse file (4 KiB grains, 4096-entry GTs) holding `raw` as `spec` says.
/// Allocated grains are stored in reverse order, so cluster numbers above 4095 exercise the
/// split encoding when the disk is large enough.
pub fn sesparse(raw: &[u8], spec: &dyn Fn(u64) -> SeGrain) -> Vec<u8> {
    assert!(raw.len().is_multiple_of(512));
    let cap = raw.len() as u64 / 512;
    let n_grains = cap.div_ceil(8);
    let n_gts = n_grains.div_ceil(4096);
    let gd_entries_per_sector = 64;
    let gd_size = n_gts.div_ceil(gd_entries_per_sector).max(1);
    // Layout (sectors): const header 0, volatile header 1, journal header 2, journal 3..11,
    // GD, GTs, grains.
    let gd_at = 11u64;
    let gts_at = gd_at + gd_size;
    let gts_size = n_gts * 64;
    let grains_at = gts_at + gts_size;
    let data_grains: Vec<u64> = (0..n_grains).filter(|&g| spec(g) == SeGrain::Data).collect();
    let mut h = vec![0u8; 512];
    let fields: [u64; 26] = [
        0xcafe_babe,
        0x0000_0002_0000_0001,
        cap,
        8,
        64,
        0,
        0,
        0,
        0,
        0,
        1,
        1, // volatile header
        2,
        1, // journal header
        3,
        8, // journal
        gd_at,
        gd_size,
        gts_at,
        gts_size,
        0,
        0, // free bitmap
        0,
        0, // backmap
        grains_at,
        data_grains.len() as u64 * 8,
    ];
    for (i, v) in fields.iter().enumerate() {
        put64(&mut h, i * 8, *v);
    }
    let mut f = h;
    let mut vh = vec![0u8; 512];
    put64(&mut vh, 0, 0xcafe_cafe);
    f.extend_from_slice(&vh);
    f.resize((gd_at * 512) as usize, 0);
    let mut gd = vec![0u64; (gd_size * 64) as usize];
    let mut gts = vec![0u64; (n_gts * 4096) as usize];
    let mut grains = vec![0u8; data_grains.len() * 4096];
    let n = data_grains.len() as u64;
    for g in 0..n_grains {
        let e = match spec(g) {
            SeGrain::Unallocated => 0,
            SeGrain::Unmapped => 0x1000_0000_0000_0000,
            SeGrain::Zero => 0x2000_0000_0000_0000,
            SeGrain::Data => {
                let idx = data_grains.iter().position(|&x| x == g).unwrap() as u64;
                let cluster = n - 1 - idx;
                let c = cluster as usize * 4096;
                grains[c..c + 4096].copy_from_slice(&grain_bytes(raw, g, 4096));
                0x3000_0000_0000_0000 | ((cluster & 0xfff) << 48) | (cluster >> 12)
            }
        };
        gts[g as usize] = e;
    }
    for t in 0..n_gts as usize {
        if gts[t * 4096..(t + 1) * 4096].iter().any(|&e| e != 0) {
            gd[t] = 0x1000_0000_0000_0000 | t as u64;
        }
    }
    for e in &gd {
        f.extend_from_slice(&e.to_le_bytes());
    }
    for e in &gts {
        f.extend_from_slice(&e.to_le_bytes());
    }
    assert_eq!(f.len() as u64, grains_at * 512);
    f.extend_from_slice(&grains);
    f
}
