//! VMDK reader tests against broken files (the qemu and handmade tests are in `vmdk.rs`).
//!
//! * `bad`: broken inputs give clear errors, never panics or hangs.

use std::fs;
use std::path::{Path, PathBuf};

use xva_backends::vmdk::build::{self, GrainSpec, SparseOpts};
use xva_backends::{open, ErrorKind, OpenOptions, OpenPolicy};

mod common;

use common::{base_raw, noise, p, qemu_img};

// ---------------------------------------------------------------------------------------------
mod bad {
    use super::*;

    fn err(path: &Path) -> xva_backends::Error {
        // As `--format vmdk`: a file cut to a few bytes no longer probes as VMDK.
        let opts = OpenOptions { format: Some(&xva_backends::vmdk::FORMAT), ..Default::default() };
        match open(path, &opts) {
            Err(e) => e,
            Ok(r) => {
                // Some damage only shows when reading.
                let mut buf = vec![0u8; 1 << 20];
                let mut off = 0;
                while off < r.virtual_size() {
                    let n = (r.virtual_size() - off).min(buf.len() as u64) as usize;
                    if let Err(e) = r.read_exact_at(&mut buf[..n], off) {
                        return e;
                    }
                    off += n as u64;
                }
                panic!("{} opened and read without error", path.display());
            }
        }
    }

    fn qemu_sparse(dir: &Path, sub: &str) -> PathBuf {
        let raw = base_raw(dir, 4 << 20);
        let out = dir.join(format!("{sub}.vmdk"));
        qemu_img(&["convert", "-f", "raw", "-O", "vmdk", "-o", &format!("subformat={sub}"), p(&raw), p(&out)]);
        out
    }

    #[test]
    fn truncated_files() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["monolithicSparse", "streamOptimized"] {
            let img = qemu_sparse(dir.path(), sub);
            let full = fs::read(&img).unwrap();
            // (A stream cut only in its footer and end-of-stream marker still reads: qemu
            // writes the grain directory's position in the header.)
            let tail = if sub == "streamOptimized" { 2000 } else { 100 };
            for cut in [3usize, 100, 600, 20000, full.len() / 2, full.len() - tail] {
                let t = dir.path().join(format!("t-{sub}-{cut}.vmdk"));
                fs::write(&t, &full[..cut]).unwrap();
                let e = err(&t);
                assert!(
                    matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::InvalidFormat),
                    "{sub} cut at {cut}: {e} ({:?})",
                    e.kind()
                );
            }
        }
        // A flat extent shorter than the descriptor says.
        let flat = qemu_sparse(dir.path(), "monolithicFlat");
        let data = dir.path().join("monolithicFlat-flat.vmdk");
        let f = fs::OpenOptions::new().write(true).open(&data).unwrap();
        f.set_len(1 << 20).unwrap();
        let e = err(&flat);
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn gd_and_gt_past_eof_and_huge_grain_counts() {
        let dir = tempfile::tempdir().unwrap();
        let img = qemu_sparse(dir.path(), "monolithicSparse");
        let full = fs::read(&img).unwrap();
        let put = |at: usize, v: &[u8], name: &str| {
            let mut f = full.clone();
            f[at..at + v.len()].copy_from_slice(v);
            let t = dir.path().join(name);
            fs::write(&t, f).unwrap();
            t
        };
        // gdOffset and rgdOffset past EOF.
        let mut both = full.clone();
        both[48..56].copy_from_slice(&(1u64 << 33).to_le_bytes());
        both[56..64].copy_from_slice(&(1u64 << 33).to_le_bytes());
        let t = dir.path().join("gd.vmdk");
        fs::write(&t, both).unwrap();
        let e = err(&t);
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        assert!(e.to_string().contains("grain directory"), "{e}");
        // The first GT pointer past EOF.
        let gd = u64::from_le_bytes(full[56..64].try_into().unwrap()) as usize * 512;
        let t = put(gd, &0x7fff_fff0u32.to_le_bytes(), "gt.vmdk");
        let e = err(&t);
        assert!(e.to_string().contains("grain table"), "{e}");
        // A capacity that would need a multi-gigabyte grain directory.
        let t = put(12, &(1u64 << 52).to_le_bytes(), "huge.vmdk");
        let started = std::time::Instant::now();
        let e = err(&t);
        assert!(started.elapsed().as_secs() < 5);
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        // Absurd grain sizes and table sizes.
        let t = put(20, &(1u64 << 40).to_le_bytes(), "grain.vmdk");
        assert_eq!(err(&t).kind(), ErrorKind::InvalidFormat);
        let t = put(44, &100_000u32.to_le_bytes(), "gtes.vmdk");
        assert_eq!(err(&t).kind(), ErrorKind::InvalidFormat);
    }

    #[test]
    fn a_delta_naming_itself_is_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("self.vmdk");
        fs::write(dir.path().join("x.bin"), vec![0u8; 512]).unwrap();
        fs::write(
            &d,
            "CID=1\nparentCID=1\ncreateType=\"monolithicFlat\"\nparentFileNameHint=\"self.vmdk\"\n\
             RW 1 FLAT \"x.bin\" 0\n",
        )
        .unwrap();
        let e = err(&d);
        assert_eq!(e.kind(), ErrorKind::RefusedReference, "{e}");
        assert!(e.to_string().contains("loop"), "{e}");
        // Two files naming each other.
        let a = dir.path().join("a.vmdk");
        for (me, other) in [("a", "b"), ("b", "a")] {
            fs::write(
                dir.path().join(format!("{me}.vmdk")),
                format!(
                    "CID=1\nparentCID=1\ncreateType=\"monolithicFlat\"\n\
                     parentFileNameHint=\"{other}.vmdk\"\nRW 1 FLAT \"x.bin\" 0\n"
                ),
            )
            .unwrap();
        }
        let e = err(&a);
        assert_eq!(e.kind(), ErrorKind::RefusedReference, "{e}");
    }

    #[test]
    fn a_parent_outside_the_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let vm = dir.path().join("vm");
        fs::create_dir(&vm).unwrap();
        fs::write(dir.path().join("x.bin"), vec![0u8; 512]).unwrap();
        fs::write(
            dir.path().join("base.vmdk"),
            "CID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 1 FLAT \"x.bin\" 0\n",
        )
        .unwrap();
        fs::write(vm.join("y.bin"), vec![0u8; 512]).unwrap();
        let d = vm.join("d.vmdk");
        fs::write(
            &d,
            "CID=2\nparentCID=1\ncreateType=\"monolithicFlat\"\n\
             parentFileNameHint=\"../base.vmdk\"\nRW 1 FLAT \"y.bin\" 0\n",
        )
        .unwrap();
        let e = err(&d);
        assert_eq!(e.kind(), ErrorKind::RefusedReference, "{e}");
        assert!(e.to_string().contains("--allow-path"), "{e}");
        // An extent outside, too.
        let d2 = vm.join("d2.vmdk");
        fs::write(&d2, "createType=\"monolithicFlat\"\nRW 1 FLAT \"../x.bin\" 0\n").unwrap();
        assert_eq!(err(&d2).kind(), ErrorKind::RefusedReference);
        // Allowed explicitly: fine.
        let opts = OpenOptions {
            policy: OpenPolicy { allowed_dirs: vec![dir.path().to_path_buf()], ..Default::default() },
            ..Default::default()
        };
        assert_eq!(open(&d, &opts).unwrap().layers().len(), 2);
    }

    #[test]
    fn missing_extent_files_are_listed_together() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("s002.vmdk"), vec![0u8; 512]).unwrap();
        let d = dir.path().join("split.vmdk");
        fs::write(
            &d,
            "createType=\"twoGbMaxExtentFlat\"\nRW 1 FLAT \"s001.vmdk\" 0\n\
             RW 1 FLAT \"s002.vmdk\" 0\nRW 1 FLAT \"s003.vmdk\" 0\n",
        )
        .unwrap();
        let e = err(&d);
        assert_eq!(e.kind(), ErrorKind::MissingFile);
        let s = e.to_string();
        assert!(s.contains("s001.vmdk") && s.contains("s003.vmdk") && !s.contains("s002"), "{s}");
        assert!(s.contains("2 extent files"), "{s}");
    }

    #[test]
    fn cowd_data_file_opened_directly_says_what_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("vm-000001-delta.vmdk");
        fs::write(&f, build::cowd(&[0u8; 4096], 8, &|_| GrainSpec::Unallocated)).unwrap();
        let e = err(&f);
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("descriptor"), "{e}");
    }

    #[test]
    fn random_damage_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let raw: Vec<u8> = noise(5, 256 << 10);
        for (i, file) in [
            build::sparse(
                &raw,
                &|g| if g % 2 == 0 { GrainSpec::Data } else { GrainSpec::Zero },
                &SparseOpts { grain_sectors: 16, gtes: 8, ..Default::default() },
            ),
            build::sparse(
                &raw,
                &|_| GrainSpec::Data,
                &SparseOpts { grain_sectors: 16, gtes: 8, stream: true, ..Default::default() },
            ),
        ]
        .into_iter()
        .enumerate()
        {
            for round in 0..200u64 {
                let mut f = file.clone();
                let r = noise(round * 7 + i as u64, 16);
                for k in 0..4 {
                    let at = u32::from_le_bytes(r[k * 4..k * 4 + 4].try_into().unwrap()) as usize
                        % if round % 2 == 0 { 1024 } else { f.len() };
                    f[at] ^= r[k].max(1);
                }
                let t = dir.path().join(format!("dmg{i}.vmdk"));
                fs::write(&t, &f).unwrap();
                if let Ok(rd) = open(&t, &OpenOptions::default()) {
                    let size = rd.virtual_size().min(8 << 20);
                    let mut buf = vec![0u8; size as usize];
                    let _ = rd.read_exact_at(&mut buf, 0);
                    for m in rd.extents(0..rd.virtual_size()).take(10_000) {
                        if m.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }
}
