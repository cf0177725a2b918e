//! VMDK reader tests against files on disk.
//!
//! * `qemu`: images written by qemu-img / qemu-io (every subformat qemu writes, delta chains,
//!   odd sizes, split disks, > 4 GiB). The full read must equal `qemu-img convert -O raw` and
//!   the resolved map must equal `qemu-img map --output=json`. These tests need qemu-img and
//!   qemu-io and FAIL when they are missing (install qemu-utils); they never skip.
//! * `handmade`: files qemu-img cannot write, built by `xva_backends::vmdk::build` from raw
//!   bytes; the expected contents are those raw bytes (and, where qemu can read the format,
//!   qemu as a second opinion).
//! * `bad` (in `vmdk_bad.rs`): broken inputs give clear errors, never panics or hangs.

use std::fs;
use std::path::Path;

use xva_backends::vmdk::build::{self, GrainSpec, SeGrain, SparseOpts};
use xva_backends::{open, BlockReader, ErrorKind, OpenOptions, OpenPolicy};

mod common;

use common::{base_raw, make_raw, noise, open_default, our_map, p, qemu_img, ODD};

fn qemu_io(path: &Path, cmds: &[&str]) {
    common::qemu_io("vmdk", path, cmds)
}

fn assert_like_qemu(path: &Path) {
    common::assert_like_qemu("vmdk", path)
}

// ---------------------------------------------------------------------------------------------
mod qemu {
    use super::*;

    fn convert(sub: &str, extra: &[&str], size: u64) {
        let dir = tempfile::tempdir().unwrap();
        let raw = base_raw(dir.path(), size);
        let out = dir.path().join(format!("{sub}.vmdk"));
        let opt = format!("subformat={sub}");
        let mut args = vec!["convert", "-f", "raw", "-O", "vmdk", "-o", &opt];
        args.extend_from_slice(extra);
        args.push(p(&raw));
        args.push(p(&out));
        qemu_img(&args);
        assert_like_qemu(&out);
        let src = xva_backends::FileSource::open(&out).unwrap();
        assert_eq!(xva_backends::probe::detect(&src).unwrap().0.name, "vmdk", "{sub} probes as vmdk");
        // And the bytes are the original raw bytes, too.
        let r = open_default(&out);
        let want = fs::read(&raw).unwrap();
        let mut got = vec![0u8; want.len()];
        r.read_exact_at(&mut got, 0).unwrap();
        assert!(got == want, "{sub}: content differs from the source raw file");
    }

    #[test]
    fn monolithic_sparse() {
        convert("monolithicSparse", &[], ODD);
    }

    #[test]
    fn monolithic_sparse_zeroed_grain() {
        convert("monolithicSparse", &["-o", "zeroed_grain=on"], ODD);
    }

    #[test]
    fn monolithic_flat() {
        convert("monolithicFlat", &[], ODD);
    }

    #[test]
    fn two_gb_max_extent_sparse_and_flat_small() {
        convert("twoGbMaxExtentSparse", &[], ODD);
        convert("twoGbMaxExtentFlat", &[], ODD);
    }

    #[test]
    fn stream_optimized() {
        convert("streamOptimized", &[], ODD);
    }

    #[test]
    fn tiny_odd_disk() {
        // 1000 sectors: less than one grain table, a partial last grain.
        convert("monolithicSparse", &[], 1000 * 512);
        convert("streamOptimized", &[], 1000 * 512);
    }

    /// Three 2 GiB extents with data straddling both boundaries (qemu splits at 4 194 304
    /// sectors).
    fn split(sub: &str) {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("split.vmdk");
        qemu_img(&["create", "-q", "-f", "vmdk", "-o", &format!("subformat={sub}"), p(&img), "4097M"]);
        qemu_io(
            &img,
            &[
                "write -P 0x11 0 65536",
                "write -P 0x22 2147479552 8192",
                "write -P 0x33 4294966784 1024",
                "write -P 0x44 4294967296 1048576",
                "write -P 0x55 3221225984 3000",
            ],
        );
        let files = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 4, "descriptor + 3 extents");
        assert_like_qemu(&img);
        let r = open_default(&img);
        assert_eq!(r.details().iter().filter(|(k, _)| k.starts_with("extent")).count(), 3);
    }

    #[test]
    fn three_extent_split_sparse() {
        split("twoGbMaxExtentSparse");
    }

    #[test]
    fn three_extent_split_flat() {
        split("twoGbMaxExtentFlat");
    }

    #[test]
    fn sparse_disk_larger_than_4_gib() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("big.vmdk");
        qemu_img(&["create", "-q", "-f", "vmdk", p(&img), "6145M"]);
        qemu_io(
            &img,
            &[
                "write -P 0x61 4294901760 131072",
                "write -P 0x62 5368709120 4096",
                "write -P 0x63 6442450944 1048576",
                "write -P 0x64 1024 512",
            ],
        );
        assert_like_qemu(&img);
    }

    /// base (monolithicSparse from raw) ← delta1 (zeroed_grain=on) ← delta2.
    #[test]
    fn delta_chain_with_zeroes_over_parent_data_and_partial_grains() {
        let dir = tempfile::tempdir().unwrap();
        let raw = base_raw(dir.path(), ODD);
        let base = dir.path().join("disk.vmdk");
        qemu_img(&["convert", "-f", "raw", "-O", "vmdk", p(&raw), p(&base)]);
        let d1 = dir.path().join("disk-000001.vmdk");
        qemu_img(&["create", "-q", "-f", "vmdk", "-o", "zeroed_grain=on", "-b", "disk.vmdk", "-F", "vmdk", p(&d1)]);
        // Data, zeroes over the parent's data (whole grains → GTE 1, and a partial grain),
        // and partial-grain writes (copy-on-write of the rest of the grain from the parent).
        let blocks = make_raw(&dir.path().join("scratch.raw"), ODD, ODD);
        let (b0, _) = blocks[0];
        let (b5, _) = blocks[5];
        let cmds = [
            format!("write -P 0xaa {} 65536", 1 << 20),
            format!("write -z {} 131072", b0 / 65536 * 65536),
            format!("write -z {} 1024", b5 + 512),
            "write -P 0xbb 5120 3000".to_string(),
            format!("write -P 0xcc {} 70000", ODD - 70000),
        ];
        let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
        qemu_io(&d1, &cmds);
        assert_like_qemu(&d1);
        let d2 = dir.path().join("disk-000002.vmdk");
        qemu_img(&["create", "-q", "-f", "vmdk", "-b", "disk-000001.vmdk", "-F", "vmdk", p(&d2)]);
        qemu_io(&d2, &["write -P 0xdd 100000 200000", "write -z 30000000 65536"]);
        assert_like_qemu(&d2);
        let r = open_default(&d2);
        assert_eq!(r.layers().len(), 3);
        // The explicit zeroes of delta1 hide the base's data.
        let d1r = open_default(&d1);
        let m: Vec<_> = d1r
            .extents(0..d1r.virtual_size())
            .map(|m| m.unwrap())
            .filter(|m| m.depth == 0 && m.zero && m.present)
            .collect();
        assert!(!m.is_empty(), "zeroed grains are reported as explicit zeros");
    }

    #[test]
    fn delta_over_a_flat_base_and_a_stream_base() {
        for sub in ["monolithicFlat", "streamOptimized"] {
            let dir = tempfile::tempdir().unwrap();
            let raw = base_raw(dir.path(), ODD);
            let base = dir.path().join("b.vmdk");
            qemu_img(&["convert", "-f", "raw", "-O", "vmdk", "-o", &format!("subformat={sub}"), p(&raw), p(&base)]);
            let d = dir.path().join("b-000001.vmdk");
            qemu_img(&["create", "-q", "-f", "vmdk", "-b", "b.vmdk", "-F", "vmdk", p(&d)]);
            qemu_io(&d, &["write -P 0x77 700000 300000"]);
            assert_like_qemu(&d);
        }
    }

    #[test]
    fn cid_mismatch_is_refused_unless_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("b.vmdk");
        qemu_img(&["create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", p(&base), "4M"]);
        let d = dir.path().join("d.vmdk");
        qemu_img(&["create", "-q", "-f", "vmdk", "-b", "b.vmdk", "-F", "vmdk", p(&d)]);
        let r = open(&d, &OpenOptions::default()).unwrap();
        // The typed link: the delta expects exactly what its parent says it is.
        let parent_id = r.parent().unwrap().identity();
        assert!(matches!(parent_id, Some(xva_backends::LayerId::VmdkCid(_))), "{parent_id:?}");
        assert_eq!(r.expected_parent(), parent_id);
        assert_eq!(r.parent().unwrap().expected_parent(), None, "the base has no parent");
        let text = fs::read_to_string(&base).unwrap();
        let cid_line = text.lines().find(|l| l.starts_with("CID=")).unwrap();
        fs::write(&base, text.replace(cid_line, "CID=0badc0de")).unwrap();
        let e = open(&d, &OpenOptions::default()).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("CID") && s.contains("0badc0de"), "{s}");
        assert!(s.contains("d.vmdk") && s.contains("b.vmdk"), "{s}");
        assert!(s.contains("--ignore-cid"), "{s}");
        let opts = OpenOptions {
            policy: OpenPolicy { ignore_parent_mismatch: true, ..Default::default() },
            ..Default::default()
        };
        assert!(open(&d, &opts).is_ok());
    }

    #[test]
    fn info_details() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("i.vmdk");
        qemu_img(&["create", "-q", "-f", "vmdk", "-o", "adapter_type=lsilogic,hwversion=6", p(&img), "10M"]);
        let r = open_default(&img);
        let d = r.details();
        let get = |k: &str| d.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        assert_eq!(get("createType"), Some("monolithicSparse"));
        assert_eq!(get("ddb.adapterType"), Some("lsilogic"));
        assert_eq!(get("ddb.virtualHWVersion"), Some("6"));
        assert_eq!(get("grainSize"), Some("65536"));
        assert_eq!(get("CID").map(str::len), Some(8));
        assert_eq!(r.format().name, "vmdk");
    }
}

// ---------------------------------------------------------------------------------------------
mod handmade {
    use super::*;

    fn raw_bytes(size: usize, seed: u64) -> Vec<u8> {
        let mut v = vec![0u8; size];
        for (i, chunk) in v.chunks_mut(4096).enumerate() {
            if i % 3 != 1 {
                chunk.copy_from_slice(&noise(seed + i as u64, chunk.len()));
            }
        }
        v
    }

    fn read_all(r: &dyn BlockReader) -> Vec<u8> {
        let mut v = vec![0xEEu8; r.virtual_size() as usize];
        r.read_exact_at(&mut v, 0).unwrap();
        v
    }

    /// A VMware-layout streamOptimized file (GD at the end, footer, GT/GD/EOS markers, the
    /// descriptor embedded as ovftool writes it). qemu reads it too: second opinion.
    #[test]
    fn vmware_stream_optimized() {
        let dir = tempfile::tempdir().unwrap();
        let raw = raw_bytes((9 << 20) + 1536, 7);
        let desc = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n\
                    createType=\"streamOptimized\"\n\n# Extent description\n\
                    RDONLY 18435 SPARSE \"disk1.vmdk\"\n\n# The Disk Data Base\n#DDB\n\n\
                    ddb.adapterType = \"lsilogic\"\nddb.virtualHWVersion = \"4\"\n";
        let spec = |g: u64| {
            if g % 4 == 2 {
                GrainSpec::Unallocated
            } else {
                GrainSpec::Data
            }
        };
        let file = build::sparse(
            &raw,
            &spec,
            &SparseOpts { stream: true, descriptor: Some(desc.into()), ..Default::default() },
        );
        let path = dir.path().join("disk1.vmdk");
        fs::write(&path, &file).unwrap();
        let r = open_default(&path);
        let mut want = raw.clone();
        for (g, chunk) in want.chunks_mut(65536).enumerate() {
            if spec(g as u64) == GrainSpec::Unallocated {
                chunk.fill(0);
            }
        }
        assert_eq!(read_all(r.as_ref()), want);
        let d = r.details();
        assert!(d.contains(&("compressed".into(), "deflate".into())), "{d:?}");
        assert!(d.contains(&("ddb.adapterType".into(), "lsilogic".into())));
        assert_like_qemu(&path);
    }

    /// An ESXi vmfsSparse snapshot: descriptor + COWD delta over a `vmfs` flat base.
    #[test]
    fn cowd_delta_over_vmfs_base() {
        let dir = tempfile::tempdir().unwrap();
        let size = (8 << 20) + 512 * 5;
        let base = raw_bytes(size, 1);
        let top = raw_bytes(size, 2);
        let sectors = size / 512;
        fs::write(dir.path().join("vm-flat.vmdk"), &base).unwrap();
        fs::write(
            dir.path().join("vm.vmdk"),
            format!(
                "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=aaaa0001\n\
                 parentCID=ffffffff\nisNativeSnapshot=\"no\"\ncreateType=\"vmfs\"\n\n\
                 # Extent description\nRW {sectors} VMFS \"vm-flat.vmdk\"\n\n\
                 # The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\n\
                 ddb.thinProvisioned = \"1\"\n"
            ),
        )
        .unwrap();
        // 4 KiB grains; every third grain is in the delta.
        let spec = |g: u64| {
            if g.is_multiple_of(3) {
                GrainSpec::Data
            } else {
                GrainSpec::Unallocated
            }
        };
        fs::write(dir.path().join("vm-000001-delta.vmdk"), build::cowd(&top, 8, &spec)).unwrap();
        let delta = dir.path().join("vm-000001.vmdk");
        fs::write(
            &delta,
            format!(
                "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=bbbb0002\n\
                 parentCID=aaaa0001\nisNativeSnapshot=\"no\"\ncreateType=\"vmfsSparse\"\n\
                 parentFileNameHint=\"/vmfs/volumes/5f1e/vm/vm.vmdk\"\n\n\
                 # Extent description\nRW {sectors} VMFSSPARSE \"vm-000001-delta.vmdk\"\n\n\
                 # The Disk Data Base\n#DDB\n\n"
            ),
        )
        .unwrap();
        let r = open_default(&delta);
        let mut want = base.clone();
        for (g, chunk) in want.chunks_mut(4096).enumerate() {
            if spec(g as u64) == GrainSpec::Data {
                chunk.copy_from_slice(&top[g * 4096..g * 4096 + chunk.len()]);
            }
        }
        assert_eq!(read_all(r.as_ref()), want);
        assert_eq!(r.layers().len(), 2);
        // qemu reads vmfsSparse too, but not an absolute datastore hint: give it a copy with
        // a relative hint.
        let rel = dir.path().join("vm-000001-rel.vmdk");
        fs::write(&rel, fs::read_to_string(&delta).unwrap().replace("/vmfs/volumes/5f1e/vm/vm.vmdk", "vm.vmdk"))
            .unwrap();
        assert_like_qemu(&rel);
    }

    /// An seSparse snapshot over a monolithicSparse base, with zero and unmapped grains
    /// hiding base data.
    #[test]
    fn sesparse_delta() {
        let dir = tempfile::tempdir().unwrap();
        let size = (20 << 20) + 4096;
        let base = raw_bytes(size, 3);
        let top = raw_bytes(size, 4);
        let sectors = size / 512;
        fs::write(
            dir.path().join("b.vmdk"),
            build::sparse(
                &base,
                &|_| GrainSpec::Data,
                &SparseOpts {
                    descriptor: Some(format!(
                        "# Disk DescriptorFile\nversion=1\nCID=0000abcd\nparentCID=ffffffff\n\
                         createType=\"monolithicSparse\"\nRW {sectors} SPARSE \"b.vmdk\"\n"
                    )),
                    ..Default::default()
                },
            ),
        )
        .unwrap();
        let spec = |g: u64| match g % 7 {
            0 | 1 => SeGrain::Data,
            2 => SeGrain::Zero,
            3 => SeGrain::Unmapped,
            _ => SeGrain::Unallocated,
        };
        fs::write(dir.path().join("b-000001-sesparse.vmdk"), build::sesparse(&top, &spec)).unwrap();
        let delta = dir.path().join("b-000001.vmdk");
        fs::write(
            &delta,
            format!(
                "# Disk DescriptorFile\nversion=1\nCID=0000dcba\nparentCID=0000abcd\n\
                 createType=\"seSparse\"\nparentFileNameHint=\"b.vmdk\"\n\
                 RW {sectors} SESPARSE \"b-000001-sesparse.vmdk\"\n"
            ),
        )
        .unwrap();
        let r = open_default(&delta);
        let mut want = base.clone();
        for (g, chunk) in want.chunks_mut(4096).enumerate() {
            match spec(g as u64) {
                SeGrain::Data => chunk.copy_from_slice(&top[g * 4096..g * 4096 + chunk.len()]),
                SeGrain::Zero | SeGrain::Unmapped => chunk.fill(0),
                SeGrain::Unallocated => {}
            }
        }
        assert_eq!(read_all(r.as_ref()), want);
        assert_like_qemu(&delta);
    }

    /// FLAT + ZERO + RDONLY FLAT with a start offset + NOACCESS (qemu drops non-RW lines, so
    /// the expected bytes are built by hand).
    #[test]
    fn rdonly_noaccess_and_zero_extents() {
        let dir = tempfile::tempdir().unwrap();
        let a = noise(10, 4096);
        let b = noise(11, 8192);
        fs::write(dir.path().join("a.bin"), &a).unwrap();
        fs::write(dir.path().join("b.bin"), &b).unwrap();
        let path = dir.path().join("custom.vmdk");
        fs::write(
            &path,
            "# Disk DescriptorFile\r\nversion=1\r\nCID=fffffffe\r\nparentCID=ffffffff\r\n\
             createType=\"custom\"\r\nRW 8 FLAT \"a.bin\" 0\r\nRDONLY 4 ZERO\r\n\
             RDONLY 6 FLAT \"b.bin\" 10\r\nNOACCESS 3 FLAT \"\\\\.\\PhysicalDrive0\" 63\r\n",
        )
        .unwrap();
        let r = open_default(&path);
        let mut want = a.clone();
        want.extend_from_slice(&[0u8; 2048]);
        want.extend_from_slice(&b[5120..8192]);
        want.extend_from_slice(&[0u8; 1536]);
        assert_eq!(r.virtual_size(), want.len() as u64);
        assert_eq!(read_all(r.as_ref()), want);
        let map = our_map(r.as_ref());
        assert_eq!(
            map,
            vec![
                (0, 4096, 0, true, false, true),
                (4096, 2048, 0, true, true, false),
                (6144, 3072, 0, true, false, true),
                (9216, 1536, 0, true, true, false),
            ]
        );
        assert!(r.details().iter().any(|(k, v)| k == "warning" && v.contains("NOACCESS")));
    }

    /// Two FLAT extents with sector offsets into one file, in reverse order, then an ESXi
    /// `VMFS` extent (no offset field).
    #[test]
    fn flat_extents_sharing_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = noise(14, 16 * 512);
        fs::write(dir.path().join("one.bin"), &data).unwrap();
        fs::write(dir.path().join("two-flat.vmdk"), &data[..1024]).unwrap();
        let path = dir.path().join("shared.vmdk");
        fs::write(
            &path,
            "createType=\"custom\"\nRW 6 FLAT \"one.bin\" 10\nRW 4 FLAT \"one.bin\" 2\n\
             RW 2 VMFS \"two-flat.vmdk\"\n",
        )
        .unwrap();
        let mut want = data[10 * 512..16 * 512].to_vec();
        want.extend_from_slice(&data[2 * 512..6 * 512]);
        want.extend_from_slice(&data[..1024]);
        assert_eq!(read_all(open_default(&path).as_ref()), want);
    }

    /// A Workstation descriptor in windows-1252 naming `café-flat.vmdk`.
    #[test]
    fn windows_1252_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let data = noise(12, 65536);
        fs::write(dir.path().join("café-flat.vmdk"), &data).unwrap();
        let mut desc = b"# Disk DescriptorFile\nversion=1\nencoding=\"windows-1252\"\nCID=1\n\
                         parentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 128 FLAT \"caf"
            .to_vec();
        desc.push(0xe9);
        desc.extend_from_slice(b"-flat.vmdk\" 0\n");
        let path = dir.path().join("caf.vmdk");
        fs::write(&path, &desc).unwrap();
        assert_eq!(read_all(open_default(&path).as_ref()), data);
    }

    /// A Windows-style parent hint resolves to its file name next to the child.
    #[test]
    fn windows_parent_hint() {
        let dir = tempfile::tempdir().unwrap();
        let data = noise(13, 8192);
        fs::write(dir.path().join("base-flat.vmdk"), &data).unwrap();
        fs::write(
            dir.path().join("base.vmdk"),
            "CID=11111111\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\
             RW 16 FLAT \"base-flat.vmdk\" 0\n",
        )
        .unwrap();
        let spec = |g: u64| {
            if g == 1 {
                GrainSpec::Zero
            } else {
                GrainSpec::Unallocated
            }
        };
        fs::write(
            dir.path().join("base-000001.vmdk"),
            build::sparse(
                &vec![0u8; 8192],
                &spec,
                &SparseOpts {
                    grain_sectors: 8,
                    descriptor: Some(
                        "CID=22222222\nparentCID=11111111\ncreateType=\"monolithicSparse\"\n\
                         parentFileNameHint=\"C:\\Users\\me\\VMs\\base.vmdk\"\n\
                         RW 16 SPARSE \"base-000001.vmdk\"\n"
                            .into(),
                    ),
                    ..Default::default()
                },
            ),
        )
        .unwrap();
        let r = open_default(&dir.path().join("base-000001.vmdk"));
        let mut want = data.clone();
        want[4096..].fill(0);
        assert_eq!(read_all(r.as_ref()), want);
    }

    /// A split sparse disk whose extents have VMware-style sizes that are not a multiple of
    /// the grain (each extent's sector count from the descriptor is honoured), plus a KDMV
    /// shell (capacity 0) carrying the descriptor, as qemu accepts.
    #[test]
    fn split_sparse_with_uneven_extents_and_a_descriptor_in_a_kdmv_shell() {
        let dir = tempfile::tempdir().unwrap();
        let (s1, s2) = (2040usize, 1000usize);
        let raw = raw_bytes((s1 + s2) * 512, 21);
        let spec = |g: u64| if g % 4 == 3 { GrainSpec::Unallocated } else { GrainSpec::Data };
        let opts = SparseOpts { grain_sectors: 16, gtes: 8, ..Default::default() };
        fs::write(dir.path().join("d-s001.vmdk"), build::sparse(&raw[..s1 * 512], &spec, &opts)).unwrap();
        fs::write(dir.path().join("d-s002.vmdk"), build::sparse(&raw[s1 * 512..], &spec, &opts)).unwrap();
        let desc = format!(
            "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
             createType=\"twoGbMaxExtentSparse\"\nRW {s1} SPARSE \"d-s001.vmdk\"\n\
             RW {s2} SPARSE \"d-s002.vmdk\"\n"
        );
        let mut want = raw.clone();
        for (base, len) in [(0, s1 * 512), (s1 * 512, s2 * 512)] {
            for (g, chunk) in want[base..base + len].chunks_mut(16 * 512).enumerate() {
                if spec(g as u64) == GrainSpec::Unallocated {
                    chunk.fill(0);
                }
            }
        }
        let text = dir.path().join("d.vmdk");
        fs::write(&text, &desc).unwrap();
        assert_eq!(read_all(open_default(&text).as_ref()), want);
        // Not compared with qemu: qemu-img 10.0.2 reads the rest of extent 1's last, partial
        // grain (its zero padding) in place of the first 4 KiB of extent 2.

        let shell = dir.path().join("shell.vmdk");
        fs::write(
            &shell,
            build::sparse(&[], &|_| GrainSpec::Data, &SparseOpts { descriptor: Some(desc), ..Default::default() }),
        )
        .unwrap();
        assert_eq!(read_all(open_default(&shell).as_ref()), want);
    }

    #[test]
    fn raw_device_disks_are_refused_with_what_they_point_at() {
        let dir = tempfile::tempdir().unwrap();
        for (ct, line) in [
            ("vmfsRawDeviceMap", "RW 2048 VMFSRDM \"vm-rdm.vmdk\""),
            ("fullDevice", "RW 2048 FLAT \"/dev/sdb\" 0"),
            ("custom", "RW 2048 VMFSRAW \"vml.0200\""),
        ] {
            let path = dir.path().join(format!("{ct}.vmdk"));
            fs::write(&path, format!("createType=\"{ct}\"\n{line}\n")).unwrap();
            let e = open(&path, &OpenOptions::default()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            let s = e.to_string();
            let target = line.split('"').nth(1).unwrap();
            assert!(s.contains(target), "{s}");
            assert!(s.contains("raw-device"), "{s}");
        }
    }

    #[test]
    fn probe_recognises_vmdk_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.vmdk");
        fs::write(dir.path().join("x.bin"), vec![1u8; 512]).unwrap();
        fs::write(&path, "createType=\"monolithicFlat\"\nRW 1 FLAT \"x.bin\" 0\n").unwrap();
        let src = xva_backends::FileSource::open(&path).unwrap();
        assert_eq!(xva_backends::probe::detect(&src).unwrap().0.name, "vmdk");
        let raw = dir.path().join("r.raw");
        fs::write(&raw, vec![0u8; 4096]).unwrap();
        let src = xva_backends::FileSource::open(&raw).unwrap();
        assert_eq!(xva_backends::probe::detect(&src).unwrap().0.name, "raw");
    }
}
