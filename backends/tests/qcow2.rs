//! qcow2 and qcow reader tests against files on disk.
//!
//! * `qemu`: images written by qemu-img / qemu-io over a matrix (v2/v3; 512 B, 64 KiB and
//!   2 MiB clusters; zlib and zstd compression; extended L2 with single-subcluster writes;
//!   external data files, raw and not; chains three deep with zeroes over parent data and
//!   partial clusters; qcow2 over a raw and over a VMDK base; odd sizes; > 4 GiB sparse; qcow
//!   v1). The full read must equal `qemu-img convert -O raw` and the resolved map must equal
//!   `qemu-img map --output=json`. These tests need qemu-img and qemu-io and FAIL when they
//!   are missing (install qemu-utils); they never skip.
//! * `handmade`: blktap qcow v1 files and damaged images built by
//!   `xva_backends::qcow2::build`, compared with contents computed from the raw bytes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use xva_backends::qcow2::build::{self, BlktapOpts, ClusterSpec, Qcow1Opts, Qcow2Opts};
use xva_backends::{open, BlockReader, ErrorKind, OpenOptions, OpenPolicy};

mod common;

use common::{assert_like_qemu, base_raw, noise, open_default, our_map, p, qemu_img, qemu_io, qemu_map, run_in, ODD};

// ---------------------------------------------------------------------------------------------
mod qemu {
    use super::*;

    /// `qemu-img convert -O qcow2 -o OPTS` of the odd-sized raw file, checked against qemu and
    /// against the raw file itself.
    fn convert(opts: &str, extra: &[&str]) {
        let dir = tempfile::tempdir().unwrap();
        let raw = base_raw(dir.path(), ODD);
        let out = dir.path().join("c.qcow2");
        let mut args = vec!["convert", "-f", "raw", "-O", "qcow2"];
        if !opts.is_empty() {
            args.extend_from_slice(&["-o", opts]);
        }
        args.extend_from_slice(extra);
        args.push(p(&raw));
        args.push(p(&out));
        qemu_img(&args);
        assert_like_qemu("qcow2", &out);
        let src = xva_backends::FileSource::open(&out).unwrap();
        assert_eq!(xva_backends::probe::detect(&src).unwrap().0.name, "qcow2");
        let r = open_default(&out);
        let want = fs::read(&raw).unwrap();
        let mut got = vec![0u8; want.len()];
        r.read_exact_at(&mut got, 0).unwrap();
        assert!(got == want, "{opts} {extra:?}: content differs from the source raw file");
    }

    #[test]
    fn v3_and_v2() {
        convert("", &[]);
        convert("compat=0.10", &[]);
    }

    #[test]
    fn cluster_sizes_512_and_2m() {
        convert("cluster_size=512", &[]);
        convert("cluster_size=2M", &[]);
        convert("compat=0.10,cluster_size=4096", &[]);
    }

    #[test]
    fn compressed_zlib_and_zstd() {
        convert("", &["-c"]);
        convert("compression_type=zstd", &["-c"]);
        convert("cluster_size=2M,compression_type=zstd", &["-c"]);
        convert("compat=0.10,cluster_size=4096", &["-c"]);
    }

    #[test]
    fn extended_l2() {
        convert("extended_l2=on", &[]);
        convert("extended_l2=on,cluster_size=2M", &[]);
    }

    /// With metadata preallocation every cluster is allocated; qemu then asks the file system
    /// which allocated clusters are holes and reports those as zero. We report them as data
    /// (the writer finds the zeros in memory): the bytes must agree, and every range qemu calls
    /// data must be data for us too.
    #[test]
    fn preallocated_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let raw = base_raw(dir.path(), ODD);
        let img = dir.path().join("pre.qcow2");
        qemu_img(&["convert", "-f", "raw", "-O", "qcow2", "-o", "preallocation=metadata", p(&raw), p(&img)]);
        let r = open_default(&img);
        let want = fs::read(&raw).unwrap();
        let mut got = vec![0u8; want.len()];
        r.read_exact_at(&mut got, 0).unwrap();
        assert!(got == want, "content differs from the source raw file");
        let ours = our_map(r.as_ref());
        for q in qemu_map("qcow2", &img).into_iter().filter(|q| q.5) {
            assert!(ours.iter().any(|o| o.5 && o.0 <= q.0 && q.0 + q.1 <= o.0 + o.1), "qemu data {q:?} vs {ours:?}");
        }
    }

    /// Extended L2 overlay: single-subcluster data, a zeroed subcluster over parent data,
    /// a zeroed whole cluster, and a partial subcluster (copy-on-write within the subcluster).
    #[test]
    fn extended_l2_overlay_with_subcluster_writes() {
        let dir = tempfile::tempdir().unwrap();
        let raw = base_raw(dir.path(), 8 << 20);
        let base = dir.path().join("base.qcow2");
        qemu_img(&["convert", "-f", "raw", "-O", "qcow2", p(&raw), p(&base)]);
        let top = dir.path().join("top.qcow2");
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "extended_l2=on,cluster_size=128k",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            p(&top),
        ]);
        qemu_io(
            "qcow2",
            &top,
            &[
                "write -P 0x11 4096 4096",
                "write -P 0x22 139264 4096",
                "write -z 0 4096",
                "write -z 262144 131072",
                "write -P 0x33 401408 1000",
                "write -z -u 1048576 8192",
            ],
        );
        assert_like_qemu("qcow2", &top);
    }

    /// base (v3 from raw) ← mid ← top: data, zeroes over parent data (whole clusters and
    /// partial ones), discards, writes straddling clusters; the top is larger than the base.
    #[test]
    fn chain_three_deep_with_zeroes_over_parent_data() {
        let dir = tempfile::tempdir().unwrap();
        let raw = base_raw(dir.path(), ODD);
        let base = dir.path().join("base.qcow2");
        qemu_img(&["convert", "-f", "raw", "-O", "qcow2", p(&raw), p(&base)]);
        let mid = dir.path().join("mid.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", p(&mid)]);
        qemu_io(
            "qcow2",
            &mid,
            &["write -P 0xab 0 1M", "write -P 0xcd 10M 3M", "write -z 20M 1M", "write -P 0x12 30000000 70000"],
        );
        let top = dir.path().join("top.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", p(&top), "80M"]);
        qemu_io(
            "qcow2",
            &top,
            &[
                "write -P 0xef 512k 1M",
                "write -z 10M 1M",
                "write -z -u 11M 2M",
                "write -z 5000 3000",
                "write -P 0x55 40000000 4097",
                "discard 30000000 65536",
                "write -P 0x66 70M 100k",
            ],
        );
        assert_like_qemu("qcow2", &mid);
        assert_like_qemu("qcow2", &top);
        let r = open_default(&top);
        assert_eq!(r.layers().len(), 3);
        assert_eq!(r.virtual_size(), 80 << 20);
    }

    #[test]
    fn v2_chain() {
        let dir = tempfile::tempdir().unwrap();
        let raw = base_raw(dir.path(), ODD);
        let base = dir.path().join("base.qcow2");
        qemu_img(&["convert", "-f", "raw", "-O", "qcow2", "-o", "compat=0.10", p(&raw), p(&base)]);
        let top = dir.path().join("top.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-b", "base.qcow2", "-F", "qcow2", p(&top)]);
        qemu_io("qcow2", &top, &["write -P 0x77 700000 300000", "write -z 3M 64k"]);
        assert_like_qemu("qcow2", &top);
    }

    /// A qcow2 over a raw base (one overlay with `write -z`) and over a VMDK base.
    #[test]
    fn qcow2_over_raw_and_over_vmdk() {
        let dir = tempfile::tempdir().unwrap();
        let raw = base_raw(dir.path(), ODD);
        let top = dir.path().join("over-raw.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", p(&top)]);
        qemu_io("qcow2", &top, &["write -P 0x44 1M 100k", "write -z 0 64k", "write -z 32M 2M"]);
        assert_like_qemu("qcow2", &top);
        let top2 = dir.path().join("over-over-raw.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", "-b", "over-raw.qcow2", "-F", "qcow2", p(&top2)]);
        qemu_io("qcow2", &top2, &["write -P 0x45 2M 10k"]);
        assert_like_qemu("qcow2", &top2);
        let vmdk = dir.path().join("base.vmdk");
        qemu_img(&["convert", "-f", "raw", "-O", "vmdk", p(&raw), p(&vmdk)]);
        let top3 = dir.path().join("over-vmdk.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", "-b", "base.vmdk", "-F", "vmdk", p(&top3)]);
        qemu_io("qcow2", &top3, &["write -P 0x46 5M 70000", "write -z 6M 1M"]);
        assert_like_qemu("qcow2", &top3);
        let r = open_default(&top3);
        assert_eq!(r.layers()[1].format().name, "vmdk");
    }

    #[test]
    fn external_data_file_raw_and_not_raw() {
        let dir = tempfile::tempdir().unwrap();
        let raw = base_raw(dir.path(), ODD);
        let img = dir.path().join("ext-raw.qcow2");
        run_in(
            dir.path(),
            "qemu-img",
            &["convert", "-f", "raw", "-O", "qcow2", "-o", "data_file=ext-raw.data,data_file_raw=on", p(&raw), p(&img)],
        );
        assert_like_qemu("qcow2", &img);
        let img2 = dir.path().join("ext.qcow2");
        run_in(dir.path(), "qemu-img", &["create", "-q", "-f", "qcow2", "-o", "data_file=ext.data", p(&img2), "32M"]);
        qemu_io("qcow2", &img2, &["write -P 0x61 0 100k", "write -P 0x62 10M 64k", "write -z 20M 1M"]);
        assert_like_qemu("qcow2", &img2);
        let d = open_default(&img2).details();
        assert!(d.iter().any(|(k, v)| k == "data_file" && v == "ext.data"), "{d:?}");
    }

    #[test]
    fn sparse_disk_larger_than_4_gib() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("big.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", p(&img), "6145M"]);
        qemu_io(
            "qcow2",
            &img,
            &[
                "write -P 0x61 4294901760 131072",
                "write -P 0x62 5368709120 4096",
                "write -P 0x63 6442450944 1048576",
                "write -P 0x64 1024 512",
            ],
        );
        assert_like_qemu("qcow2", &img);
    }

    #[test]
    fn qcow_v1() {
        let dir = tempfile::tempdir().unwrap();
        let raw = base_raw(dir.path(), ODD);
        let img = dir.path().join("v1.qcow");
        qemu_img(&["convert", "-f", "raw", "-O", "qcow", p(&raw), p(&img)]);
        assert_like_qemu("qcow", &img);
        // A v1 overlay over a raw base (no backing format recorded: the base is probed).
        let top = dir.path().join("v1-top.qcow");
        qemu_img(&["create", "-q", "-f", "qcow", "-b", "base.raw", "-F", "raw", p(&top)]);
        qemu_io("qcow", &top, &["write -P 0x71 100000 5000"]);
        assert_like_qemu("qcow", &top);
    }

    /// A dirty image (lazy refcounts, qemu-io killed before it closed the image) is read.
    #[test]
    fn dirty_image_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("dirty.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", p(&img), "16M"]);
        let _ = Command::new("qemu-io")
            .args(["-f", "qcow2", "-c", "write -P 0x5a 1M 64k", "-c", "abort", p(&img)])
            .output()
            .expect("qemu-io");
        let head = fs::read(&img).unwrap();
        assert_eq!(head[79] & 1, 1, "qemu-io abort left the dirty bit set");
        assert_like_qemu("qcow2", &img);
        let d = open_default(&img).details();
        assert!(d.iter().any(|(k, v)| k == "warning" && v.contains("dirty")), "{d:?}");
    }

    #[test]
    fn internal_snapshots_are_listed_and_the_active_state_read() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("snap.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", p(&img), "16M"]);
        qemu_io("qcow2", &img, &["write -P 0x01 0 1M"]);
        qemu_img(&["snapshot", "-c", "before-upgrade", p(&img)]);
        qemu_io("qcow2", &img, &["write -P 0x02 512k 1M"]);
        assert_like_qemu("qcow2", &img);
        let d = open_default(&img).details();
        assert!(d.iter().any(|(k, v)| k == "snapshot1" && v.contains("before-upgrade")), "{d:?}");
    }

    #[test]
    fn luks_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("luks.qcow2");
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "--object",
            "secret,id=s0,data=abc123",
            "-o",
            "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10",
            p(&img),
            "4M",
        ]);
        let e = open(&img, &OpenOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("encrypted qcow2 not supported (LUKS)"), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
/// `offset` and `compressed` too: entry by entry, our map (coalesced only where qemu coalesces:
/// same flags and contiguous offsets) equals `qemu-img map --output=json` for qcow2-only chains.
mod offsets {
    use super::*;

    type Entry = (u64, u64, u32, bool, bool, bool, Option<u64>, bool);

    /// The value of `"key": value` in one line of qemu's JSON map, if present.
    fn get<'a>(line: &'a str, key: &str) -> Option<&'a str> {
        let k = format!("\"{key}\":");
        let rest = line[line.find(&k)? + k.len()..].trim_start();
        Some(rest[..rest.find([',', '}'])?].trim())
    }

    fn qemu_entries(path: &Path) -> (Vec<Entry>, bool) {
        let out = run_in(path.parent().unwrap(), "qemu-img", &["map", "--output=json", "-f", "qcow2", p(path)]);
        let lines: Vec<&str> = out.lines().filter(|l| l.contains("\"start\"")).collect();
        // qemu before 8.2 does not print `compressed`.
        let has_compressed = lines.iter().all(|l| get(l, "compressed").is_some());
        let entries = lines
            .iter()
            .map(|l| {
                let flag = |k: &str| get(l, k) == Some("true");
                let num = |k: &str| get(l, k).map(|v| v.parse::<u64>().unwrap());
                (
                    num("start").unwrap(),
                    num("length").unwrap(),
                    num("depth").unwrap() as u32,
                    flag("present"),
                    flag("zero"),
                    flag("data"),
                    num("offset"),
                    flag("compressed"),
                )
            })
            .collect();
        (entries, has_compressed)
    }

    fn assert_same_entries(path: &Path) {
        let r = open_default(path);
        let (theirs, has_compressed) = qemu_entries(path);
        let ours: Vec<Entry> = r
            .extents(0..r.virtual_size())
            .map(|m| m.unwrap())
            .map(|m| (m.start, m.len, m.depth, m.present, m.zero, m.data, m.offset, m.compressed && has_compressed))
            .collect();
        assert_eq!(ours, theirs, "map entries of {}", path.display());
    }

    #[test]
    fn offsets_and_compressed_match_qemu() {
        let dir = tempfile::tempdir().unwrap();
        let raw = base_raw(dir.path(), ODD);
        let plain = dir.path().join("plain.qcow2");
        qemu_img(&["convert", "-f", "raw", "-O", "qcow2", p(&raw), p(&plain)]);
        assert_same_entries(&plain);
        let comp = dir.path().join("comp.qcow2");
        qemu_img(&["convert", "-c", "-f", "raw", "-O", "qcow2", p(&raw), p(&comp)]);
        assert_same_entries(&comp);
        // Zeroes written over allocated clusters keep their host cluster (offset shown).
        let z = dir.path().join("z.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", p(&z), "8M"]);
        qemu_io(
            "qcow2",
            &z,
            &["write -P 0x11 0 1M", "write -z 128k 128k", "write -z -u 512k 64k", "write -P 0x12 3M 100k"],
        );
        assert_same_entries(&z);
        // A chain of qcow2 layers with data, zeroes and discards at every level.
        let mid = dir.path().join("mid.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", "-b", "comp.qcow2", "-F", "qcow2", p(&mid)]);
        qemu_io("qcow2", &mid, &["write -P 0xab 0 1M", "write -z 20M 1M", "write -P 0x12 30000000 70000"]);
        let top = dir.path().join("top.qcow2");
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "extended_l2=on,cluster_size=128k",
            "-b",
            "mid.qcow2",
            "-F",
            "qcow2",
            p(&top),
        ]);
        qemu_io("qcow2", &top, &["write -P 0xef 4096 4096", "write -z 10M 8192", "write -P 0x55 40000000 4097"]);
        assert_same_entries(&mid);
        assert_same_entries(&top);
    }
}

// ---------------------------------------------------------------------------------------------
mod handmade {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    fn read_all(r: &dyn BlockReader) -> Vec<u8> {
        let mut v = vec![0xEEu8; r.virtual_size() as usize];
        r.read_exact_at(&mut v, 0).unwrap();
        v
    }

    /// Xen blktap qcow v1 files, with and without the big-endian-L1 flag. qemu reads the
    /// big-endian one like we do; the old little-endian one only we read right.
    #[test]
    fn blktap_qcow_v1_both_byte_orders() {
        let dir = tempfile::tempdir().unwrap();
        let raw = noise(21, (6 << 20) + 512);
        let spec = |c: u64| match c % 5 {
            0 | 3 => ClusterSpec::Data,
            1 => ClusterSpec::Compressed,
            _ => ClusterSpec::Unallocated,
        };
        let want = build::expected(&raw, &spec, 12, None);
        for be in [true, false] {
            let o = Qcow1Opts {
                blktap: Some(BlktapOpts { big_endian_flag: be, good_checksum: true }),
                ..Default::default()
            };
            let path = write(dir.path(), &format!("tap-{be}.img"), &build::qcow1(&raw, &spec, &o));
            let r = open_default(&path);
            assert!(read_all(r.as_ref()) == want, "blktap be={be}");
            // qemu-img as a second opinion: right for the big-endian variant; for the old one it
            // returns wrong bytes (or, depending on the version, fails).
            let qemu = dir.path().join("q.raw");
            let out = Command::new("qemu-img")
                .args(["convert", "-f", "qcow", "-O", "raw", p(&path), p(&qemu)])
                .output()
                .expect("qemu-img is required (apt-get install qemu-utils)");
            let right = out.status.success() && fs::read(&qemu).unwrap() == want;
            assert_eq!(right, be, "qemu-img reads only the big-endian variant right");
        }
    }

    /// A chain of hand-built images: a zero cluster with a host offset over parent data hides
    /// it; the overlay is longer than its backing file.
    #[test]
    fn built_chain_over_a_shorter_raw_base() {
        let dir = tempfile::tempdir().unwrap();
        let base = noise(22, 1 << 20);
        write(dir.path(), "base.raw", &base);
        let raw = noise(23, 3 << 20);
        let spec = |c: u64| match c % 4 {
            0 => ClusterSpec::Unallocated,
            1 => ClusterSpec::ZeroAlloc,
            2 => ClusterSpec::Data,
            _ => ClusterSpec::Zero,
        };
        let o = Qcow2Opts { backing: Some(("base.raw".into(), Some("raw".into()))), ..Default::default() };
        let path = write(dir.path(), "top.qcow2", &build::qcow2(&raw, &spec, &o).image);
        let r = open_default(&path);
        assert_eq!(read_all(r.as_ref()), build::expected(&raw, &spec, 16, Some(&base)));
        assert_eq!(r.layers().len(), 2);
    }

    #[test]
    fn backing_references_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let vm = dir.path().join("vm");
        fs::create_dir(&vm).unwrap();
        write(dir.path(), "outside.raw", &[1u8; 65536]);
        let raw = noise(24, 1 << 20);
        let img = |name: &str, backing: &str, fmt: Option<&str>| {
            let o = Qcow2Opts { backing: Some((backing.into(), fmt.map(str::to_string))), ..Default::default() };
            write(&vm, name, &build::qcow2(&raw, &|_| ClusterSpec::Unallocated, &o).image)
        };
        // Outside the directory.
        let e = open(&img("a.qcow2", "../outside.raw", Some("raw")), &OpenOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RefusedReference, "{e}");
        // Allowed explicitly.
        let opts = OpenOptions {
            policy: OpenPolicy { allowed_dirs: vec![dir.path().to_path_buf()], ..Default::default() },
            ..Default::default()
        };
        assert_eq!(open(&vm.join("a.qcow2"), &opts).unwrap().layers().len(), 2);
        // A JSON pseudo-filename.
        let e = open(&img("j.qcow2", "json:{\"file.filename\":\"/etc/passwd\"}", None), &OpenOptions::default())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("json"), "{e}");
        // Itself, and two images naming each other.
        let e = open(&img("self.qcow2", "self.qcow2", Some("qcow2")), &OpenOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RefusedReference, "{e}");
        assert!(e.to_string().contains("loop"), "{e}");
        img("x.qcow2", "y.qcow2", None);
        let e = open(&img("y.qcow2", "x.qcow2", None), &OpenOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RefusedReference, "{e}");
        // Missing, and in a format we do not read.
        let e = open(&img("m.qcow2", "missing.raw", Some("raw")), &OpenOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingFile, "{e}");
        write(&vm, "b.raw", &[0u8; 512]);
        let e = open(&img("f.qcow2", "b.raw", Some("qed")), &OpenOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("qed"), "{e}");
        // The longest name qemu allows: 1023 bytes.
        let name = format!(".//{}/b.raw", "./".repeat(507));
        assert_eq!(name.len(), 1023);
        let r = open_default(&img("long.qcow2", &name, Some("raw")));
        assert_eq!(r.layers().len(), 2);
    }

    #[test]
    fn truncated_image_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let raw = base_raw(dir.path(), 16 << 20);
        let img = dir.path().join("t.qcow2");
        qemu_img(&["convert", "-f", "raw", "-O", "qcow2", p(&raw), p(&img)]);
        let full = fs::metadata(&img).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(&img).unwrap();
        f.set_len(full * 2 / 3).unwrap();
        let r = open_default(&img);
        let mut buf = vec![0u8; r.virtual_size() as usize];
        let e = r.read_exact_at(&mut buf, 0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        assert!(e.to_string().contains("truncated") && e.to_string().contains("t.qcow2"), "{e}");
    }
}
