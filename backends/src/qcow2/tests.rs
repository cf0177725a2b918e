//! Reader tests over images built by `build.rs` in memory: every cluster kind, every flavour,
//! and damaged files.

use super::build::{self, BlktapOpts, ClusterSpec, Qcow1Opts, Qcow2Opts, SubSpec};
use super::*;
use crate::error::ErrorKind;
use crate::policy::OpenPolicy;
use crate::reader::Allocation;
use crate::source::MemSource;

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Half noise, half compressible text.
            if (i / 3000) % 2 == 0 {
                (x >> 24) as u8
            } else {
                b"qcow2 "[i % 6]
            }
        })
        .collect()
}

fn open_mem(bytes: Vec<u8>) -> Result<Qcow2Reader> {
    let src: Arc<dyn ByteSource> = Arc::new(MemSource::new(bytes, "t.qcow2"));
    let policy = OpenPolicy::default();
    Qcow2Reader::open(src, &OpenCtx::new(&policy))
}

fn read_all(r: &dyn BlockReader) -> Result<Vec<u8>> {
    let mut out = vec![0u8; r.virtual_size() as usize];
    r.read_exact_at(&mut out, 0)?;
    Ok(out)
}

/// Reads whole, in odd pieces, and checks the map against the spec.
fn check(r: &Qcow2Reader, want: &[u8]) {
    let d: &dyn BlockReader = r;
    assert_eq!(d.virtual_size(), want.len() as u64);
    let got = read_all(d).unwrap();
    if got != want {
        let i = got.iter().zip(want).position(|(a, b)| a != b).unwrap();
        panic!("bytes differ first at {i}: got {:#x}, want {:#x}", got[i], want[i]);
    }
    let mut off = 0usize;
    let mut step = 1usize;
    while off < want.len() {
        let n = step.min(want.len() - off);
        let mut b = vec![0xAAu8; n];
        d.read_exact_at(&mut b, off as u64).unwrap();
        assert!(b == want[off..off + n], "read of {n} at {off}");
        off += n;
        step = step * 3 + 511;
    }
}

fn pattern(c: u64) -> ClusterSpec {
    match c % 7 {
        0 | 5 => ClusterSpec::Data,
        1 => ClusterSpec::Zero,
        2 => ClusterSpec::Unallocated,
        3 => ClusterSpec::Compressed,
        4 => ClusterSpec::ZeroAlloc,
        _ => ClusterSpec::Compressed,
    }
}

#[test]
fn every_cluster_kind_in_v2_and_v3_at_every_cluster_size() {
    for (version, cb, size) in [
        (3, 16, (3 << 20) + 1536),
        (2, 16, 3 << 20),
        (3, 9, 300_000),
        (3, 12, (1 << 20) + 7),
        (2, 12, 200_000),
        (3, 21, (5 << 20) + 3 * 512),
    ] {
        let raw = noise(cb as u64 * 10 + version as u64, size);
        let o = Qcow2Opts { version, cluster_bits: cb, ..Default::default() };
        let f = build::qcow2(&raw, &pattern, &o).image;
        let r = open_mem(f).unwrap_or_else(|e| panic!("v{version} cb {cb}: {e}"));
        check(&r, &build::expected(&raw, &pattern, cb, None));
        // The map says what the spec says, coalesced.
        let d: &dyn BlockReader = &r;
        for m in d.extents(0..d.virtual_size()) {
            let m = m.unwrap();
            let c = m.start >> cb;
            match pattern(c) {
                ClusterSpec::Data | ClusterSpec::Compressed => assert!(m.data && !m.zero, "{m:?}"),
                ClusterSpec::Zero | ClusterSpec::ZeroAlloc => assert!(m.zero && m.present, "{m:?}"),
                ClusterSpec::Unallocated => assert!(!m.present, "{m:?}"),
                ClusterSpec::Sub(_) => unreachable!(),
            }
        }
    }
}

#[test]
fn zstd_clusters_with_several_frames() {
    let raw = noise(3, (2 << 20) + 512);
    for frames in [1, 3] {
        let o = Qcow2Opts { compression: header::Compression::Zstd, zstd_frames: frames, ..Default::default() };
        let spec = |c: u64| if c % 3 == 1 { ClusterSpec::Data } else { ClusterSpec::Compressed };
        let r = open_mem(build::qcow2(&raw, &spec, &o).image).unwrap();
        check(&r, &raw);
        assert!(r.details().iter().any(|(k, v)| k == "compression_type" && v == "zstd"));
    }
}

#[test]
fn extended_l2_subclusters() {
    let raw = noise(4, 20 * 65536 + 4096);
    let spec = |c: u64| {
        let mut s = [SubSpec::Unallocated; 32];
        for (i, x) in s.iter_mut().enumerate() {
            *x = match (i as u64 + c) % 5 {
                0 | 3 => SubSpec::Data,
                1 => SubSpec::Zero,
                _ => SubSpec::Unallocated,
            };
        }
        match c % 6 {
            0 => ClusterSpec::Compressed,
            1 => ClusterSpec::Unallocated,
            2 => ClusterSpec::Sub([SubSpec::Zero; 32]),
            _ => ClusterSpec::Sub(s),
        }
    };
    let o = Qcow2Opts { extended_l2: true, ..Default::default() };
    let r = open_mem(build::qcow2(&raw, &spec, &o).image).unwrap();
    check(&r, &build::expected(&raw, &spec, 16, None));
    // A subcluster-granular map: in cluster 3, subcluster i is data when (i + 3) % 5 is 0 or 3.
    let e = r.block_status(3 * 65536, 65536).unwrap();
    assert_eq!((e.len, e.alloc), (2048, Allocation::Data));
    let e = r.block_status(3 * 65536 + 2048, 65536).unwrap();
    assert_eq!((e.len, e.alloc), (2048, Allocation::Unallocated));
}

#[test]
fn qcow_v1_and_blktap_with_both_byte_orders() {
    let raw = noise(5, (3 << 20) + 512);
    let spec = |c: u64| match c % 4 {
        0 => ClusterSpec::Data,
        1 => ClusterSpec::Unallocated,
        2 => ClusterSpec::Compressed,
        _ => ClusterSpec::Data,
    };
    let want = build::expected(&raw, &spec, 12, None);
    for blktap in [
        None,
        Some(BlktapOpts { big_endian_flag: true, good_checksum: true }),
        Some(BlktapOpts { big_endian_flag: false, good_checksum: true }),
        Some(BlktapOpts { big_endian_flag: false, good_checksum: false }),
    ] {
        let o = Qcow1Opts { blktap, ..Default::default() };
        let r = open_mem(build::qcow1(&raw, &spec, &o)).unwrap_or_else(|e| panic!("{blktap:?}: {e}"));
        check(&r, &want);
        let details = r.details();
        let tap = details.iter().find(|(k, _)| k == "blktap").map(|(_, v)| v.clone());
        match blktap {
            None => assert!(tap.is_none()),
            Some(b) => {
                let tap = tap.unwrap();
                assert_eq!(tap.contains("little-endian"), !b.big_endian_flag, "{tap}");
                assert_eq!(tap.contains("checksum ok"), b.good_checksum, "{tap}");
                assert_eq!(details.iter().any(|(k, _)| k == "warning"), !b.good_checksum);
            }
        }
    }
    // Small clusters and small L2 tables.
    let o = Qcow1Opts { cluster_bits: 9, l2_bits: 6, ..Default::default() };
    let raw = noise(6, 100_000);
    let r = open_mem(build::qcow1(&raw, &spec, &o)).unwrap();
    check(&r, &build::expected(&raw, &spec, 9, None));
}

#[test]
fn dirty_images_are_read_and_say_so() {
    let raw = noise(7, 1 << 20);
    let o = Qcow2Opts { incompatible_extra: header::INCOMPAT_DIRTY, ..Default::default() };
    let r = open_mem(build::qcow2(&raw, &|_| ClusterSpec::Data, &o).image).unwrap();
    check(&r, &raw);
    assert!(r.details().iter().any(|(k, v)| k == "warning" && v.contains("dirty")));
}

#[test]
fn refusals_name_the_file() {
    let raw = noise(8, 1 << 20);
    for (o, kind, text) in [
        (
            Qcow2Opts { incompatible_extra: header::INCOMPAT_CORRUPT, ..Default::default() },
            ErrorKind::Corrupt,
            "corrupt bit",
        ),
        (Qcow2Opts { crypt_method: 2, ..Default::default() }, ErrorKind::Unsupported, "LUKS"),
        (Qcow2Opts { crypt_method: 1, version: 2, ..Default::default() }, ErrorKind::Unsupported, "AES"),
        (
            Qcow2Opts {
                incompatible_extra: 1 << 5,
                extra_feature_names: vec![(0, 5, "shiny new thing".into())],
                ..Default::default()
            },
            ErrorKind::Unsupported,
            "shiny new thing (bit 5)",
        ),
    ] {
        let e = open_mem(build::qcow2(&raw, &|_| ClusterSpec::Data, &o).image).unwrap_err();
        assert_eq!(e.kind(), kind, "{e}");
        let s = e.to_string();
        assert!(s.contains(text) && s.contains("t.qcow2"), "{s}");
    }
    let v1 = build::qcow1(&raw, &|_| ClusterSpec::Data, &Qcow1Opts::default());
    let mut enc = v1.clone();
    enc[36..40].copy_from_slice(&1u32.to_be_bytes());
    assert_eq!(open_mem(enc).unwrap_err().kind(), ErrorKind::Unsupported);
}

#[test]
fn damaged_tables_and_truncation_are_reported_with_offsets() {
    let raw = noise(9, 1 << 20);
    let f = build::qcow2(&raw, &|_| ClusterSpec::Data, &Qcow2Opts::default()).image;
    // L1 entry pointing past the end of the file.
    let mut bad = f.clone();
    bad[65536..65544].copy_from_slice(&(1u64 << 40).to_be_bytes());
    let r = open_mem(bad).unwrap();
    let e = read_all(&r).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("L2 table") && e.offset() == Some(1 << 40), "{e}");
    // L2 entry pointing past the end of the file.
    let mut bad = f.clone();
    let l2 = u64::from_be_bytes(f[65536..65544].try_into().unwrap()) & mapping::L1E_OFFSET_MASK;
    bad[l2 as usize + 8..l2 as usize + 16].copy_from_slice(&(1u64 << 41).to_be_bytes());
    let e = read_all(&open_mem(bad).unwrap()).unwrap_err();
    assert!(e.to_string().contains("truncated") && e.offset() == Some(1 << 41), "{e}");
    // An unaligned L2 entry.
    let mut bad = f.clone();
    bad[l2 as usize + 8..l2 as usize + 16].copy_from_slice(&0x3_0200u64.to_be_bytes());
    let e = read_all(&open_mem(bad).unwrap()).unwrap_err();
    assert!(e.to_string().contains("not cluster-aligned"), "{e}");
    assert_eq!(e.offset(), Some(l2 + 8));
    // The file cut off in the middle of its data.
    let e = read_all(&open_mem(f[..f.len() - 70000].to_vec()).unwrap()).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    // A huge l1_size is refused before anything is allocated.
    let mut bad = f.clone();
    bad[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(open_mem(bad).unwrap_err().to_string().contains("32 MiB"));
    // A huge virtual size with a small L1 table: unallocated beyond it, no big allocation.
    let mut bad = f.clone();
    bad[24..32].copy_from_slice(&(1u64 << 50).to_be_bytes());
    let r = open_mem(bad).unwrap();
    let d: &dyn BlockReader = &r;
    let e = r.block_status(1 << 40, 1 << 45).unwrap();
    assert_eq!(e.alloc, Allocation::Unallocated);
    assert!(d.extents(0..d.virtual_size()).count() < 10);
}

#[test]
fn compressed_data_running_past_the_end_of_the_file() {
    let raw = noise(10, 4 * 65536);
    let f = build::qcow2(&raw, &|_| ClusterSpec::Compressed, &Qcow2Opts::default()).image;
    // The last cluster's sector count runs past EOF: still read (qemu does too).
    let r = open_mem(f.clone()).unwrap();
    check(&r, &raw);
    // Cut into the compressed bytes: a clear error.
    let e = read_all(&open_mem(f[..f.len() - 100].to_vec()).unwrap()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("cut off") && e.offset().is_some(), "{e}");
}

#[test]
fn the_table_cache_stays_bounded() {
    // 512-byte clusters: 64 entries per L2 table, many tables.
    let raw = noise(11, 2 << 20);
    let o = Qcow2Opts { cluster_bits: 9, ..Default::default() };
    let spec = |c: u64| if c.is_multiple_of(5) { ClusterSpec::Unallocated } else { ClusterSpec::Data };
    let f = build::qcow2(&raw, &spec, &o).image;
    let r = open_mem(f).unwrap();
    let r = Qcow2Reader {
        map: ClusterMap::new(r.map.meta_source(), r.map.data_source(), *r.map.geometry(), r.map.l1().to_vec())
            .with_cache_budget(8 * 512),
        ..r
    };
    check(&r, &build::expected(&raw, &spec, 9, None));
    assert!(r.map.cached_bytes() <= 8 * 512);
}

#[test]
fn reads_from_several_threads_agree() {
    let raw = noise(12, (4 << 20) + 512);
    let spec = |c: u64| if c.is_multiple_of(2) { ClusterSpec::Compressed } else { ClusterSpec::Data };
    let r = open_mem(build::qcow2(&raw, &spec, &Qcow2Opts::default()).image).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (r, raw) = (&r, &raw);
            s.spawn(move || {
                let d: &dyn BlockReader = r;
                let step = 4096 * (t + 1) + 512 * t;
                let mut off = t * 1000;
                while off < raw.len() as u64 {
                    let n = step.min(raw.len() as u64 - off) as usize;
                    let mut b = vec![0u8; n];
                    d.read_exact_at(&mut b, off).unwrap();
                    assert!(b == raw[off as usize..off as usize + n]);
                    off += n as u64;
                }
            });
        }
    });
}

#[test]
fn random_damage_never_panics() {
    let raw = noise(13, 256 << 10);
    let images = [
        build::qcow2(&raw, &pattern, &Qcow2Opts { cluster_bits: 12, ..Default::default() }).image,
        build::qcow2(
            &raw,
            &|c| if c % 2 == 0 { ClusterSpec::Sub([SubSpec::Data; 32]) } else { ClusterSpec::Compressed },
            &Qcow2Opts {
                cluster_bits: 14,
                extended_l2: true,
                compression: header::Compression::Zstd,
                ..Default::default()
            },
        )
        .image,
        build::qcow1(
            &raw,
            &pattern,
            &Qcow1Opts {
                blktap: Some(BlktapOpts { big_endian_flag: false, good_checksum: true }),
                ..Default::default()
            },
        ),
    ];
    for (i, file) in images.iter().enumerate() {
        for round in 0..150u64 {
            let mut f = file.clone();
            let r = noise(round * 7 + i as u64 + 1000, 16);
            for k in 0..4 {
                let at = u32::from_le_bytes(r[k * 4..k * 4 + 4].try_into().unwrap()) as usize
                    % if round.is_multiple_of(2) { 4096.min(f.len()) } else { f.len() };
                f[at] ^= r[k] | 1;
            }
            if let Ok(rd) = open_mem(f) {
                let d: &dyn BlockReader = &rd;
                let size = d.virtual_size().min(4 << 20);
                let mut buf = vec![0u8; size as usize];
                let _ = d.read_exact_at(&mut buf, 0);
                for m in d.extents(0..d.virtual_size()).take(10_000) {
                    if m.is_err() {
                        break;
                    }
                }
            }
        }
    }
}

#[test]
fn the_corrupt_bit_is_read_when_the_policy_allows_it() {
    let raw = noise(14, 1 << 20);
    let o = Qcow2Opts { incompatible_extra: header::INCOMPAT_CORRUPT, ..Default::default() };
    let f = build::qcow2(&raw, &|_| ClusterSpec::Data, &o).image;
    let src: Arc<dyn ByteSource> = Arc::new(MemSource::new(f, "c.qcow2"));
    let policy = OpenPolicy { allow_corrupt: true, ..Default::default() };
    let r = Qcow2Reader::open(src, &OpenCtx::new(&policy)).unwrap();
    check(&r, &raw);
    assert!(r.details().iter().any(|(k, v)| k == "warning" && v.contains("corrupt bit")));
}

/// A fuzz finding: a virtual size of 2^54 bytes with 512-byte clusters and a one-entry L1
/// table took one status step per 32 KiB L2 span past the table (2^39 steps).
#[test]
fn a_huge_disk_past_a_tiny_l1_table_maps_in_one_step() {
    let raw = noise(15, 16 << 10);
    let mut f = build::qcow2(&raw, &|_| ClusterSpec::Data, &Qcow2Opts { cluster_bits: 9, ..Default::default() }).image;
    f[24..32].copy_from_slice(&(1u64 << 54).to_be_bytes());
    f[36..40].copy_from_slice(&1u32.to_be_bytes());
    let r = open_mem(f).unwrap();
    let d: &dyn BlockReader = &r;
    let started = std::time::Instant::now();
    let all: Vec<_> = d.extents(0..d.virtual_size()).map(|m| m.unwrap()).collect();
    assert!(started.elapsed().as_secs() < 5);
    assert_eq!(all.last().unwrap().start + all.last().unwrap().len, 1 << 54);
    assert!(!all.last().unwrap().present);
}
