//! `xva convert`: the tar it writes is what xapi reads, nothing is left behind on failure.

use std::collections::BTreeMap;
use std::process::Command;

use sha1::Digest as _;

use crate::util::{self, members, sparse_file, stderr, Member, TestDir};

/// Rebuilds the disks the way xapi's import loop does (`xva-format-and-xapi-import.md` §5.3),
/// given the VDI virtual sizes; checks names, order and checksums on the way.
fn rebuild(members: &[Member], sizes: &[u64]) -> Vec<Vec<u8>> {
    assert_eq!(members[0].name, "ova.xml");
    let mut it = members[1..].iter();
    let mut first_len: Option<usize> = None;
    let mut disks = Vec::new();
    for (d, &size) in sizes.iter().enumerate() {
        let id = format!("Ref:d{d:03}");
        let mut disk = Vec::with_capacity(size as usize);
        let mut last: i64 = -1;
        while (disk.len() as u64) < size {
            let chunk = it.next().unwrap_or_else(|| panic!("disk {d} ends early at {}", disk.len()));
            let sum = it.next().expect("checksum member");
            let suffix =
                chunk.name.strip_prefix(&format!("{id}/")).unwrap_or_else(|| panic!("{} not in {id}", chunk.name));
            assert_eq!(suffix.len(), 8, "{}", chunk.name);
            let n: i64 = suffix.parse().unwrap();
            assert!(n > last, "counter increases");
            let f = *first_len.get_or_insert(chunk.data.len());
            disk.resize(disk.len() + (n - last - 1) as usize * f, 0);
            disk.extend_from_slice(&chunk.data);
            assert_eq!(sum.name, format!("{}.checksum", chunk.name));
            let want: String = sha1::Sha1::digest(&chunk.data).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(String::from_utf8(sum.data.clone()).unwrap(), want);
            last = n;
        }
        assert_eq!(disk.len() as u64, size, "disk {d} has exactly its virtual size");
        disks.push(disk);
    }
    assert!(it.next().is_none(), "nothing after the last disk");
    disks
}

#[test]
fn round_trip_sizes_and_first_last_chunks() {
    let t = TestDir::new();
    let mb = 1usize << 20;
    for (i, size) in [1usize, 512, mb - 1, mb, mb + 1, 3 * mb + 7].into_iter().enumerate() {
        let src = t.join(&format!("d{i}.raw"));
        // data only in the middle: first and last chunks are zero but must still be written
        let blocks: Vec<(u64, usize)> =
            if size > 2 * mb { vec![(mb as u64 + 5, 1000)] } else { vec![(0, size.min(300))] };
        sparse_file(&src, size as u64, &blocks);
        let out = t.join(&format!("d{i}.xva"));
        t.xva_ok(["convert", "--disk", src.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        let m = members(&out);
        let disks = rebuild(&m, &[size as u64]);
        assert_eq!(disks[0], std::fs::read(&src).unwrap(), "size {size}");
        let chunk_names: Vec<&str> = m.iter().skip(1).step_by(2).map(|m| m.name.as_str()).collect();
        let n = size.div_ceil(mb);
        assert_eq!(chunk_names.first().unwrap(), &"Ref:d000/00000000");
        assert_eq!(chunk_names.last().unwrap(), &format!("Ref:d000/{:08}", n - 1).as_str());
        if size > 2 * mb {
            assert_eq!(chunk_names.len(), 3, "first, the data chunk and last; zero chunk 2 omitted: {chunk_names:?}");
        }
    }
}

#[test]
fn multi_disk_order_flags_and_vm_record() {
    let t = TestDir::new();
    let mut sizes = Vec::new();
    let mut args: Vec<String> = vec!["convert".into()];
    // 11 disks: "Ref:d010" must come after "Ref:d009" (xapi reads in bytewise id order)
    for i in 0..11u64 {
        let p = t.join(&format!("disk{i}.img"));
        let size = (1 << 20) + i * 4096;
        sparse_file(&p, size, &[(i * 512, 512)]);
        sizes.push(size);
        args.extend(["--disk".into(), p.to_string_lossy().into_owned()]);
    }
    args.extend(
        [
            "-o",
            "vm.xva",
            "--name",
            "web01 <test>",
            "--memory",
            "512",
            "--vcpus",
            "3",
            "--no-acpi",
            "--nx",
            "--viridian",
            "--cdrom",
        ]
        .map(String::from),
    );
    args.extend(["--vif", "00:16:3e:01:02:03", "--vif", "auto"].map(String::from));
    t.xva_ok(&args);
    let m = members(&t.join("vm.xva"));
    let disks = rebuild(&m, &sizes);
    for (i, d) in disks.iter().enumerate() {
        assert_eq!(d, &std::fs::read(t.join(&format!("disk{i}.img"))).unwrap());
    }
    let xml = String::from_utf8(m[0].data.clone()).unwrap();
    for want in [
        "<member><name>name_label</name><value>web01 &lt;test&gt;</value></member>",
        "<member><name>memory_static_max</name><value>536870912</value></member>",
        "<member><name>VCPUs_max</name><value>3</value></member>",
        "<member><name>acpi</name><value>false</value></member>",
        "<member><name>nx</name><value>true</value></member>",
        "<member><name>viridian</name><value>true</value></member>",
        "<member><name>apic</name><value>true</value></member>",
        "<member><name>HVM_boot_policy</name><value>BIOS order</value></member>",
        "<member><name>MAC</name><value>00:16:3e:01:02:03</value></member>",
        "<member><name>type</name><value>CD</value></member>",
        "<member><name>xapi_major</name><value>1</value></member>",
        "<member><name>export_vsn</name><value>2</value></member>",
    ] {
        assert!(xml.contains(want), "ova.xml lacks {want}");
    }
    // userdevice 3 is the CD: the fourth disk gets 4
    let userdevices: Vec<&str> =
        xml.match_indices("<name>userdevice</name><value>").map(|(i, p)| &xml[i + p.len()..][..2]).collect();
    assert!(userdevices.contains(&"3<"), "{userdevices:?}");
    assert_eq!(userdevices.iter().filter(|u| **u == "3<").count(), 1);
}

#[test]
fn xva_py_spellings_and_pv() {
    let t = TestDir::new();
    sparse_file(&t.join("root.img"), 2 << 20, &[(4096, 100)]);
    // no subcommand, xva.py flags
    let out = t.xva([
        "-d",
        "root.img",
        "-n",
        "pv01",
        "-m",
        "1024",
        "-v",
        "2",
        "--is-pv",
        "--sparse",
        "--no-viridian",
        "-f",
        "pv01.xva",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = members(&t.join("pv01.xva"));
    let xml = String::from_utf8(m[0].data.clone()).unwrap();
    assert!(xml.contains("<name>PV_bootloader</name><value>pygrub</value>"));
    assert!(xml.contains("<name>HVM_boot_policy</name><value/>"));
    assert!(xml.contains("<name>domain_type</name><value>pv</value>"));
    assert!(xml.contains("<name>memory_dynamic_max</name><value>1073741824</value>"));
    assert!(xml.contains("<name>VCPUs_at_startup</name><value>2</value>"));
}

#[test]
fn json_summary_reports_counts_and_source_digest() {
    let t = TestDir::new();
    let p = t.join("d.raw");
    sparse_file(&p, 8 << 20, &[(3 << 20, 4096), (5 << 20, 2 << 20)]);
    let stdout = t.xva_ok(["convert", "-d", "d.raw", "-o", "d.xva", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["chunks_written"], 5, "{v}"); // 0, 3, 5, 6, 7 (last)
    assert_eq!(v["chunks_skipped"], 3);
    assert_eq!(v["disks"][0]["sha256"], util::sha256_file(&p));
    assert_eq!(v["disks"][0]["virtual_size"], 8 << 20);
    // holes are not read: far less than the virtual size
    assert!(v["bytes_read"].as_u64().unwrap() < 4 << 20, "{v}");
    assert_eq!(std::fs::metadata(t.join("d.xva")).unwrap().len(), v["tar_bytes"].as_u64().unwrap());
}

#[test]
fn xxhash_checksums() {
    let t = TestDir::new();
    sparse_file(&t.join("d.raw"), 1 << 20, &[(0, 100)]);
    t.xva_ok(["convert", "-d", "d.raw", "-o", "d.xva", "--checksum", "xxhash"]);
    let m = members(&t.join("d.xva"));
    assert_eq!(m[2].name, "Ref:d000/00000000.xxhash");
    let body = String::from_utf8(m[2].data.clone()).unwrap();
    assert_eq!(body, format!("{:016X}", xxhash_rust::xxh64::xxh64(&m[1].data, 0)));
}

#[test]
fn refuses_to_overwrite_without_force() {
    let t = TestDir::new();
    sparse_file(&t.join("d.raw"), 4096, &[(0, 10)]);
    std::fs::write(t.join("out.xva"), b"precious").unwrap();
    let out = t.xva(["convert", "-d", "d.raw", "-o", "out.xva"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(t.join("out.xva")).unwrap(), b"precious");
    t.xva_ok(["convert", "-d", "d.raw", "-o", "out.xva", "--force"]);
    assert_ne!(std::fs::read(t.join("out.xva")).unwrap(), b"precious");
    assert_eq!(t.files(), ["d.raw", "out.xva"], "no temporary files left");
}

#[test]
fn clear_errors_before_anything_is_written() {
    let t = TestDir::new();
    sparse_file(&t.join("ok.raw"), 4096, &[(0, 10)]);
    std::fs::write(t.join("empty.raw"), b"").unwrap();
    // every missing disk is named at once
    let out = t.xva(["convert", "-d", "ok.raw", "-d", "missing1.img", "-d", "missing2.img", "-o", "o.xva"]);
    assert_eq!(out.status.code(), Some(3));
    let e = stderr(&out);
    assert!(e.contains("missing1.img") && e.contains("missing2.img"), "{e}");
    // size 0
    let out = t.xva(["convert", "-d", "empty.raw", "-o", "o.xva"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("size 0"), "{}", stderr(&out));
    // output directory missing
    let out = t.xva(["convert", "-d", "ok.raw", "-o", "nodir/o.xva"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    // unknown format
    let out = t.xva(["convert", "-d", "ok.raw", "--format", "nope", "-o", "o.xva"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("known formats"), "{}", stderr(&out));
    // a directory is not a disk
    std::fs::create_dir(t.join("adir")).unwrap();
    let out = t.xva(["convert", "-d", "adir", "-o", "o.xva"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("directory"), "{}", stderr(&out));
    // bad VM settings
    let out = t.xva(["convert", "-d", "ok.raw", "--vcpus", "0", "-o", "o.xva"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = t.xva(["convert", "-d", "ok.raw", "--vif", "zz:zz", "-o", "o.xva"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let mut files = t.files();
    files.retain(|f| f != "adir");
    assert_eq!(files, ["empty.raw", "ok.raw"], "nothing written");
}

#[test]
fn disk_full_is_reported_and_the_partial_file_removed() {
    // A 2 MiB tmpfs in a private mount namespace (works unprivileged through a user namespace).
    let t = TestDir::new();
    sparse_file(&t.join("d.raw"), 8 << 20, &[(0, 8 << 20)]);
    std::fs::create_dir(t.join("small")).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs small || exit 99; {} convert -d d.raw -o small/out.xva; echo \"exit=$?\"; ls -A small",
        env!("CARGO_BIN_EXE_xva")
    );
    let out = Command::new("unshare")
        .args(["-r", "-m", "sh", "-c", &script])
        .current_dir(t.path())
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("exit=99") && out.status.code() != Some(99), "could not mount a tmpfs: {}", stderr(&out));
    assert!(stdout.contains("exit=4"), "stdout: {stdout}\nstderr: {}", stderr(&out));
    assert!(stderr(&out).contains("no space left"), "{}", stderr(&out));
    let listing: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("exit=")).collect();
    assert!(listing.is_empty(), "partial file left: {listing:?}");
}

#[test]
fn sigint_removes_the_partial_file() {
    let t = TestDir::new();
    // fully allocated data, one worker, and a SHA-256 pass: slow enough to interrupt
    let p = t.join("big.raw");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&p).unwrap();
        let block = util::pattern(7, 1 << 20);
        for _ in 0..512 {
            f.write_all(&block).unwrap();
        }
    }
    let child = Command::new(env!("CARGO_BIN_EXE_xva"))
        .args(["convert", "-d", "big.raw", "-o", "big.xva", "--threads", "1", "--json"])
        .current_dir(t.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the temporary file exists, then interrupt
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !t.files().iter().any(|f| f.contains(".partial-")) {
        assert!(std::time::Instant::now() < deadline, "conversion never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        // finished before the signal landed: the output must then be complete
        assert!(t.join("big.xva").exists());
        return;
    }
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert_eq!(t.files(), ["big.raw"], "no partial or final file");
}

#[test]
fn three_gib_sparse_disk_reads_only_its_data() {
    let t = TestDir::new();
    let size = 3u64 << 30;
    let blocks = [(0u64, 4096usize), ((1u64 << 30) + 12345, 3 << 20), (size - 1000, 1000)];
    sparse_file(&t.join("big.raw"), size, &blocks);
    let stdout = t.xva_ok(["convert", "-d", "big.raw", "-o", "big.xva", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["bytes_read"].as_u64().unwrap() < 16 << 20, "{v}");
    assert_eq!(v["chunks_written"], 6, "{v}"); // 0, 1024..1027, 3071
    assert_eq!(v["disks"][0]["sha256"], util::sha256_file(&t.join("big.raw")));
    let m = members(&t.join("big.xva"));
    let mut by_name = BTreeMap::new();
    for x in &m {
        by_name.insert(x.name.clone(), x.data.len());
    }
    assert_eq!(by_name["Ref:d000/00003071"], 1 << 20);
    assert!(by_name.contains_key("Ref:d000/00001027"));
}

/// Detaches a loop device when the test ends, whatever happens.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

#[test]
fn block_device_is_sized_with_the_ioctl_and_read_whole() {
    // An LVM logical volume is a device-mapper block device; a loop device behaves the same
    // way for us (st_size 0, no SEEK_DATA). Needs root and loop devices, as CI has.
    let t = TestDir::new();
    let img = t.join("lv.img");
    sparse_file(&img, (5 << 20) + 4096, &[(0, 512), (3 << 20, 4096)]);
    let out =
        Command::new("losetup").args(["-f", "--show", "-r", img.to_str().unwrap()]).output().expect("run losetup");
    assert!(out.status.success(), "this test needs root and loop devices (losetup): {}", stderr(&out));
    let dev = Loop(String::from_utf8(out.stdout).unwrap().trim().to_string());
    let info: serde_json::Value = serde_json::from_str(&t.xva_ok(["info", "--output", "json", &dev.0])).unwrap();
    assert_eq!(info["virtual_size"], (5 << 20) + 4096);
    assert_eq!(info["chain"][0]["details"]["storage"], "block device");
    assert_eq!(info["allocated_bytes"], (5 << 20) + 4096, "a block device has no allocation map");
    let json = t.xva_ok(["convert", "-d", &dev.0, "-o", "lv.xva", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["chunks_written"], 3, "chunks 0, 3 and the last; zero chunks found in memory: {v}");
    assert_eq!(v["chunks_skipped"], 3);
    let m = members(&t.join("lv.xva"));
    assert_eq!(rebuild(&m, &[(5 << 20) + 4096])[0], std::fs::read(&img).unwrap());
}

#[test]
fn verify_flag_proves_the_digests() {
    let t = TestDir::new();
    sparse_file(&t.join("a.raw"), (3 << 20) + 17, &[(100, 5000), (2 << 20, 1 << 20)]);
    sparse_file(&t.join("b.raw"), 4096, &[(0, 4096)]);
    let stdout = t.xva_ok(["convert", "-d", "a.raw", "-d", "b.raw", "-o", "ab.xva", "--verify", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["disks"][0]["sha256"], util::sha256_file(&t.join("a.raw")));
    assert_eq!(v["disks"][1]["sha256"], util::sha256_file(&t.join("b.raw")));
    let out = t.xva(["convert", "-d", "a.raw", "-o", "a.xva", "--verify"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("verified"), "{}", stderr(&out));
}
