//! `xva convert --server`: the real CLI against the XenAPI test server (`fake_xapi.rs`).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::fake_xapi::{vm_field, FakeXapi, Faults, PASSWORD, SR_NAME, SR_UUID};
use crate::util::{pattern, sparse_file, stderr, TestDir};

const MIB: u64 = 1 << 20;

/// Two disks with data scattered over them, zero chunks between.
fn two_disks(dir: &TestDir) -> (Vec<u8>, Vec<u8>) {
    let a = dir.join("web01-root.img");
    let b = dir.join("web01-data.img");
    sparse_file(&a, 5 * MIB + 123, &[(0, 4096), (MIB + 7, 300_000), (3 * MIB, MIB as usize), (5 * MIB, 123)]);
    sparse_file(&b, 3 * MIB, &[(2 * MIB + 512, 70_000)]);
    (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap())
}

fn xva(dir: &TestDir, args: &[&str], password: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xva"));
    c.arg("convert").args(args).current_dir(dir.path()).env_remove("XVA_PASSWORD").env("XVA_POLL_MS", "20");
    if let Some(p) = password {
        c.env("XVA_PASSWORD", p);
    }
    c
}

fn upload(dir: &TestDir, server: &str, extra: &[&str], password: Option<&str>) -> Output {
    let mut args = vec!["-d", "web01-root.img", "-d", "web01-data.img", "-n", "web01", "--server", server];
    args.extend_from_slice(extra);
    xva(dir, &args, password).output().unwrap()
}

fn http(x: &FakeXapi) -> String {
    format!("http://{}", x.addr())
}

/// Nothing left on the host: no task, no session, and no VM unless `vms` are expected.
fn assert_clean(x: &FakeXapi, vms: usize) {
    x.with(|s| {
        assert!(s.tasks.is_empty(), "tasks left: {:?}", s.tasks);
        assert!(s.sessions.is_empty(), "sessions left open: {:?}", s.sessions);
        assert_eq!(s.vms.len(), vms, "VMs: {:?}", s.vms);
        assert_eq!(s.vdis.len(), vms * 2, "VDIs left");
    });
}

fn assert_no_password(out: &Output, password: &str) {
    for (what, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(!String::from_utf8_lossy(text).contains(password), "password in {what}");
    }
}

#[test]
fn multi_disk_import_rebuilds_identical_disks() {
    let dir = TestDir::new();
    let (a, b) = two_disks(&dir);
    let x = FakeXapi::start(Faults::default());
    let out = upload(&dir, &http(&x), &["--allow-http", "--start"], Some(PASSWORD));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("plain HTTP"), "{err}");
    assert!(err.contains("imported VM \"web01\" into SR \"Local storage\""), "{err}");
    assert_no_password(&out, PASSWORD);
    let uuid = String::from_utf8(out.stdout.clone()).unwrap().trim().to_string();
    x.with(|s| {
        assert_eq!(s.vms.len(), 1);
        let (vm_ref, vm) = s.vms.iter().next().unwrap();
        assert_eq!(vm.uuid, uuid);
        assert_eq!(vm.name, "web01");
        assert_eq!(s.started_vms, std::slice::from_ref(vm_ref));
        let disks: Vec<&(String, Vec<u8>)> = vm.vdis.iter().map(|v| &s.vdis[v]).collect();
        assert_eq!(disks[0].0, "Ref:d000");
        assert!(disks[0].1 == a, "disk 0 differs");
        assert!(disks[1].1 == b, "disk 1 differs");
        // The request xapi saw: HTTP/1.0 PUT, our task, the SR, no framing, no Expect.
        let head = &s.import_heads[0];
        assert!(head.starts_with("PUT /import?session_id=OpaqueRef:session-"), "{head}");
        assert!(head.contains("&task_id=OpaqueRef:task-") && head.contains("&restore=false&force=false"), "{head}");
        assert!(head.contains("&sr_id=OpaqueRef:sr-local") && head.contains(" HTTP/1.0\r\n"), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(!lower.contains("transfer-encoding") && !lower.contains("expect:"), "{head}");
        assert!(s.calls.contains(&"PIF.get_management".to_string()), "management network looked up");
        assert_eq!(s.passwords, [PASSWORD]);
    });
    assert_clean(&x, 1);
}

#[test]
fn json_summary_and_sr_by_name_or_uuid() {
    let dir = TestDir::new();
    two_disks(&dir);
    let x = FakeXapi::start(Faults { no_default_sr: true, ..Faults::default() });
    let out = upload(&dir, &http(&x), &["--allow-http"], Some(PASSWORD));
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("no default SR; name one with --sr"), "{}", stderr(&out));
    assert_clean(&x, 0);
    for sr in [SR_NAME, SR_UUID] {
        let out = upload(&dir, &http(&x), &["--allow-http", "--sr", sr, "--json"], Some(PASSWORD));
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["sr"]["uuid"], SR_UUID);
        assert_eq!(v["vm"], "web01");
        assert!(v["vm_uuid"].as_str().unwrap().len() == 36);
    }
    let out = upload(&dir, &http(&x), &["--allow-http", "--sr", "ISO library"], Some(PASSWORD));
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("is an ISO library"), "{}", stderr(&out));
    let out = upload(&dir, &http(&x), &["--allow-http", "--sr", "nope"], Some(PASSWORD));
    assert!(stderr(&out).contains("no SR named \"nope\""), "{}", stderr(&out));
    assert_clean(&x, 2);
}

#[test]
fn pool_member_sends_us_to_the_master() {
    let dir = TestDir::new();
    two_disks(&dir);
    let x = FakeXapi::start(Faults { host_is_slave: true, ..Faults::default() });
    let out = upload(&dir, &http(&x), &["--allow-http"], Some(PASSWORD));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a pool member; logging in to the pool master http://localhost:"));
    x.with(|s| assert!(s.import_heads[0].contains("Host: localhost:"), "{}", s.import_heads[0]));
    assert_clean(&x, 1);
}

#[test]
fn redirect_to_the_host_that_sees_the_sr_is_followed_once() {
    let dir = TestDir::new();
    let (a, _) = two_disks(&dir);
    let x = FakeXapi::start(Faults { redirect: true, ..Faults::default() });
    let out = upload(&dir, &http(&x), &["--allow-http"], Some(PASSWORD));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("redirected the import to http://localhost:"), "{}", stderr(&out));
    x.with(|s| {
        assert_eq!(s.import_heads.len(), 2);
        // The session id travels again (cookies and credentials are not in the Location).
        assert!(s.import_heads[1].contains("session_id=OpaqueRef:session-"));
        let vm = s.vms.values().next().unwrap();
        assert!(s.vdis[&vm.vdis[0]].1 == a);
    });
    assert_clean(&x, 1);
}

#[test]
fn bad_credentials_are_reported_without_the_password() {
    let dir = TestDir::new();
    two_disks(&dir);
    let x = FakeXapi::start(Faults { echo_password: true, ..Faults::default() });
    let wrong = "wr0ng-Pass-987";
    let out = upload(&dir, &http(&x), &["--allow-http"], Some(wrong));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("refused the user name or password") && err.contains("SESSION_AUTHENTICATION_FAILED"));
    assert_no_password(&out, wrong);
    x.with(|s| assert_eq!(s.passwords, [wrong]));
    assert_clean(&x, 0);

    // The password file and --password (warned about) work too; nothing is printed of them.
    let pwfile = dir.join("pw");
    std::fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
    let out = upload(&dir, &http(&x), &["--allow-http", "--password-file", pwfile.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_password(&out, PASSWORD);
    let out = upload(&dir, &http(&x), &["--allow-http", "--password", PASSWORD], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("--password is visible to other users"));
    assert_no_password(&out, PASSWORD);
    // No password source and no terminal: a usage error, before any connection.
    let out = upload(&dir, &http(&x), &["--allow-http"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no password"), "{}", stderr(&out));
}

#[test]
fn plain_http_needs_consent() {
    let dir = TestDir::new();
    two_disks(&dir);
    let x = FakeXapi::start(Faults::default());
    let out = upload(&dir, &http(&x), &[], Some(PASSWORD));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("add --allow-http"), "{}", stderr(&out));
    x.with(|s| assert!(s.calls.is_empty()));
    // xva.py's --no-ssl means plain HTTP.
    let out = upload(&dir, &x.addr(), &["--no-ssl"], Some(PASSWORD));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn checksum_failure_is_reported_and_cleaned_up() {
    let dir = TestDir::new();
    two_disks(&dir);
    let x = FakeXapi::start(Faults { corrupt: true, ..Faults::default() });
    let out = upload(&dir, &http(&x), &["--allow-http"], Some(PASSWORD));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("the host refused the import: IMPORT_ERROR"), "{err}");
    assert!(err.to_lowercase().contains("checksum"), "{err}");
    assert_clean(&x, 0);
}

#[test]
fn mid_stream_drop_fails_and_retry_starts_over() {
    let dir = TestDir::new();
    let (a, _) = two_disks(&dir);
    let faults = Faults { drop_after: Some(MIB + MIB / 2), drop_times: 1, ..Faults::default() };
    let x = FakeXapi::start(faults.clone());
    let out = upload(&dir, &http(&x), &["--allow-http"], Some(PASSWORD));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("IMPORT_ERROR_PREMATURE_EOF"), "{err}");
    assert_clean(&x, 0);

    let x = FakeXapi::start(faults);
    let out = upload(&dir, &http(&x), &["--allow-http", "--retry", "2"], Some(PASSWORD));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("retrying the upload from the beginning (attempt 2 of 3)"), "{err}");
    x.with(|s| {
        assert_eq!(s.imports, 2);
        let vm = s.vms.values().next().unwrap();
        assert!(s.vdis[&vm.vdis[0]].1 == a);
    });
    assert_clean(&x, 1);
}

#[test]
fn slow_reader_and_early_close_after_the_last_chunk_succeed() {
    let dir = TestDir::new();
    let (_, b) = two_disks(&dir);
    let x = FakeXapi::start(Faults { slow: Some(Duration::from_millis(30)), ..Faults::default() });
    let out = upload(&dir, &http(&x), &["--allow-http"], Some(PASSWORD));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_clean(&x, 1);

    let x = FakeXapi::start(Faults { close_after_disks: 2, ..Faults::default() });
    let out = upload(&dir, &http(&x), &["--allow-http"], Some(PASSWORD));
    assert!(out.status.success(), "{}", stderr(&out));
    x.with(|s| {
        let vm = s.vms.values().next().unwrap();
        assert!(s.vdis[&vm.vdis[1]].1 == b);
    });
    assert_clean(&x, 1);
}

#[test]
fn task_failing_after_the_body_destroys_what_the_import_left() {
    let dir = TestDir::new();
    two_disks(&dir);
    let x = FakeXapi::start(Faults { fail_after_body: true, ..Faults::default() });
    let out = upload(&dir, &http(&x), &["--allow-http"], Some(PASSWORD));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("IMPORT_ERROR [Field suspend_VDI not present in rpc]"), "{err}");
    assert!(err.contains("destroyed the partly imported VM"), "{err}");
    x.with(|s| {
        assert!(s.calls.contains(&"VM.destroy".to_string()));
        assert!(s.calls.contains(&"VDI.destroy".to_string()));
    });
    assert_clean(&x, 0);
}

#[test]
fn ctrl_c_cancels_the_task_and_logs_out() {
    let dir = TestDir::new();
    let big = dir.join("big.img");
    sparse_file(&big, 24 * MIB, &[(0, 24 * MIB as usize)]);
    let x = FakeXapi::start(Faults { slow: Some(Duration::from_millis(100)), ..Faults::default() });
    let child = xva(&dir, &["-d", "big.img", "--server", &http(&x), "--allow-http"], Some(PASSWORD))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    // Whatever happens below, the child does not outlive the test.
    let _reaper = Reaper(pid);
    let t0 = Instant::now();
    while x.with(|s| s.imports) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "the import never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    x.with(|s| assert!(s.calls.contains(&"task.cancel".to_string()) || s.calls.contains(&"task.destroy".to_string())));
    assert_clean(&x, 0);
}

/// Kills a child process (by its pid) when dropped; harmless once it has exited and been reaped
/// by `wait_with_output` (the pid is then only reused after the test binary's children).
struct Reaper(libc::pid_t);

impl Drop for Reaper {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // SAFETY: kill(2) on the child this test spawned, which has not been waited for.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
}

#[test]
fn tls_pinning_accepts_the_right_fingerprint_and_shows_the_host_one_otherwise() {
    let dir = TestDir::new();
    two_disks(&dir);
    let x = FakeXapi::start_tls(Faults::default());
    let fp = x.fingerprint();
    let server = format!("https://localhost:{}", x.port);
    let out = upload(&dir, &server, &["--fingerprint", &fp], Some(PASSWORD));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_clean(&x, 1);

    let wrong = format!("SHA256:{}", ["00"; 32].join(":"));
    for extra in [vec!["--fingerprint", wrong.as_str()], vec![]] {
        let out = upload(&dir, &server, &extra, Some(PASSWORD));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(6), "{err}");
        assert!(err.contains("is not trusted"), "{err}");
        assert!(err.contains(&format!("--fingerprint {fp}")), "{err}");
        x.with(|s| assert_eq!(s.passwords.len(), 1, "no password may be sent to an untrusted host"));
    }
    let out = upload(&dir, &server, &["--insecure"], Some(PASSWORD));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("WARNING: --insecure"));
}

#[test]
fn upload_flags_are_checked_first() {
    let dir = TestDir::new();
    two_disks(&dir);
    for (args, want) in [
        (vec!["--server", "a", "-o", "x.xva"], "cannot be used with"),
        (vec!["--server", "ftp://a"], "only http:// and https://"),
        (vec!["--server", "a", "--verify"], "--verify reads a written file back"),
        (vec!["--server", "a", "--fingerprint", "SHA256:12"], "not a SHA-256 fingerprint"),
        (vec!["-o", "x.xva", "--upload-kernel"], "cannot be used with"),
        (vec!["--upload-kernel"], "--server"),
    ] {
        let mut all = vec!["-d", "web01-root.img"];
        all.extend(args);
        let out = xva(&dir, &all, Some(PASSWORD)).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{all:?}");
        assert!(stderr(&out).contains(want), "{all:?}: {}", stderr(&out));
    }
    assert!(!Path::new(&dir.join("x.xva")).exists());
}

/// A direct-kernel PV guest: an xm config naming dom0 paths under /boot and /srv/xen, the kernel
/// and ramdisk "copied from the source dom0" into `dom0boot/`, the disk next to the config.
/// Returns the `--path-map` arguments that find them.
fn pv_kernel_guest(dir: &TestDir) -> Vec<String> {
    two_disks(dir);
    std::fs::write(
        dir.join("pv01.cfg"),
        "name = 'pv01'\nkernel = '/boot/vmlinuz-2.6.32-xen'\nramdisk = '/boot/initrd-2.6.32-xen.img'\n\
         root = '/dev/xvda1 ro'\nextra = 'console=hvc0'\nmemory = 256\n\
         disk = ['file:/srv/xen/web01-root.img,xvda,w', 'file:/srv/xen/web01-data.img,xvdb,w']\nvif = []\n",
    )
    .unwrap();
    std::fs::create_dir(dir.join("dom0 boot")).unwrap();
    std::fs::write(dir.join("dom0 boot/vmlinuz-2.6.32-xen"), pattern(3, 70_000)).unwrap();
    std::fs::write(dir.join("dom0 boot/initrd-2.6.32-xen.img"), pattern(4, 50_000)).unwrap();
    vec![
        "--path-map".into(),
        format!("/boot={}", dir.join("dom0 boot").display()),
        "--path-map".into(),
        format!("/srv/xen={}", dir.path().display()),
    ]
}

/// Fake `ssh` and `scp` first on PATH: each appends its argv (and a marker if $XVA_PASSWORD
/// reached it) to `ssh.log`, then acts on `remote/` as if it were the host's root. scp fails
/// for a destination containing $FAKE_SCP_FAIL.
struct FakeSsh {
    bin: std::path::PathBuf,
    log: std::path::PathBuf,
    root: std::path::PathBuf,
}

impl FakeSsh {
    fn new(dir: &TestDir) -> FakeSsh {
        use std::os::unix::fs::PermissionsExt;
        let bin = dir.join("fakebin");
        let root = dir.join("remote");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        let log = dir.join("ssh.log");
        let record = format!(
            "#!/bin/sh\nlog='{}'\nroot='{}'\n{{ printf '%s' \"$(basename \"$0\")\"; for a in \"$@\"; do printf ' %s' \"$a\"; done; \
             echo; }} >> \"$log\"\n[ -n \"${{XVA_PASSWORD+x}}\" ] && echo ENV-HAS-PASSWORD >> \"$log\"\n\
             while [ \"$1\" != -- ]; do shift; done; shift\n",
            log.display(),
            root.display()
        );
        let ssh = format!(
            "{record}shift\ncmd=\nfor w in \"$@\"; do case \"$w\" in /*) cmd=\"$cmd $root$w\";; *) cmd=\"$cmd $w\";; esac; done\n\
             exec sh -c \"$cmd\"\n"
        );
        let scp = format!(
            "{record}dst=\"${{2#*:}}\"\ncase \"$dst\" in *\"${{FAKE_SCP_FAIL:-//}}\"*) \
             echo \"scp: $dst: Permission denied\" >&2; head -c 100 \"$1\" > \"$root$dst\"; exit 1;; esac\n\
             cp \"$1\" \"$root$dst\"\n"
        );
        for (name, text) in [("ssh", ssh), ("scp", scp)] {
            let p = bin.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        FakeSsh { bin, log, root }
    }

    fn path_env(&self) -> String {
        format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap_or_default())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The entries of `remote/DIR`.
    fn ls(&self, dir: &str) -> Vec<String> {
        let mut v: Vec<String> = match std::fs::read_dir(self.root.join(dir.trim_start_matches('/'))) {
            Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }
}

fn convert_pv(dir: &TestDir, ssh: &FakeSsh, server: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let maps = pv_kernel_guest(dir);
    let mut args: Vec<&str> = vec!["pv01.cfg"];
    args.extend(maps.iter().map(String::as_str));
    args.extend(["--server", server, "--allow-http"]);
    args.extend_from_slice(extra);
    let mut c = xva(dir, &args, Some(PASSWORD));
    c.env("PATH", ssh.path_env());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// `PV_kernel`, `PV_ramdisk`, `PV_bootloader` of the last import.
fn pv_fields(x: &FakeXapi) -> [String; 3] {
    x.with(|s| {
        let xml = s.ova_xml.last().expect("an ova.xml was received");
        ["PV_kernel", "PV_ramdisk", "PV_bootloader"].map(|f| vm_field(xml, f).unwrap())
    })
}

#[test]
fn direct_kernel_without_upload_prints_what_to_copy_where() {
    let dir = TestDir::new();
    let ssh = FakeSsh::new(&dir);
    let x = FakeXapi::start(Faults::default());
    let out = convert_pv(&dir, &ssh, &http(&x), &[], &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let [kernel, ramdisk, bootloader] = pv_fields(&x);
    let kdir = kernel.strip_suffix("/vmlinuz").unwrap();
    assert!(kdir.starts_with("/var/lib/xcp/guest/") && kdir.len() == "/var/lib/xcp/guest/".len() + 36, "{kernel}");
    assert_eq!(ramdisk, format!("{kdir}/initrd"));
    assert_eq!(bootloader, "");
    // Exactly what to run, with the local files (after --path-map, quoted) and the host paths.
    let local = dir.join("dom0 boot");
    for want in [
        format!("ssh root@127.0.0.1 mkdir -p {kdir}"),
        format!("scp '{}/vmlinuz-2.6.32-xen' root@127.0.0.1:{kernel}", local.display()),
        format!("scp '{}/initrd-2.6.32-xen.img' root@127.0.0.1:{ramdisk}", local.display()),
        "rerun with --upload-kernel".into(),
        "Every pool member".into(),
        "(xapi 24.39.1: XenServer 8 / XCP-ng 8.3) cannot start PV guests at all".into(),
        "convert with --hvm".into(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert_eq!(ssh.log(), "", "nothing is run without --upload-kernel");
    assert_clean(&x, 1);

    // An old host boots kernels from /boot/guest; --kernel-dir overrides the choice. (Each run
    // gets a fresh directory: pv_kernel_guest writes into it.)
    let x = FakeXapi::start(Faults { xapi_version: Some("1.20".into()), ..Faults::default() });
    let out = convert_pv(&TestDir::new(), &ssh, &http(&x), &[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(pv_fields(&x)[0].starts_with("/boot/guest/"), "{:?}", pv_fields(&x));
    assert!(stderr(&out).contains("current XenServer 8 and XCP-ng 8.3 cannot start PV guests at all"));
    let out = convert_pv(&TestDir::new(), &ssh, &http(&x), &["--kernel-dir", "/opt/kernels/"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(pv_fields(&x)[0].starts_with("/opt/kernels/"), "{:?}", pv_fields(&x));
    assert!(stderr(&out).contains("xapi 1.20.0 boots direct kernels only from /boot/guest/"), "{}", stderr(&out));
    let out = convert_pv(&TestDir::new(), &ssh, &http(&x), &["--kernel-dir", "/tmp/a b"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--kernel-dir \"/tmp/a b\""), "{}", stderr(&out));
}

#[test]
fn upload_kernel_copies_with_ssh_and_scp_before_streaming() {
    let dir = TestDir::new();
    let ssh = FakeSsh::new(&dir);
    let x = FakeXapi::start(Faults::default());
    let out = convert_pv(&dir, &ssh, &http(&x), &["--upload-kernel", "--json"], &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let [kernel, ramdisk, bootloader] = pv_fields(&x);
    let kdir = kernel.strip_suffix("/vmlinuz").unwrap().to_string();
    assert!(kdir.starts_with("/var/lib/xcp/guest/"), "{kernel}");
    assert_eq!((ramdisk.as_str(), bootloader.as_str()), (format!("{kdir}/initrd").as_str(), ""));
    let local = dir.join("dom0 boot");
    let opts = "-o BatchMode=yes -o ConnectTimeout=30 --";
    assert_eq!(
        ssh.log(),
        format!(
            "ssh {opts} root@127.0.0.1 mkdir -p {kdir}\n\
             scp -q {opts} {l}/vmlinuz-2.6.32-xen root@127.0.0.1:{kernel}\n\
             scp -q {opts} {l}/initrd-2.6.32-xen.img root@127.0.0.1:{ramdisk}\n",
            l = local.display()
        )
    );
    assert!(std::fs::read(ssh.root.join(&kernel[1..])).unwrap() == pattern(3, 70_000));
    assert!(std::fs::read(ssh.root.join(&ramdisk[1..])).unwrap() == pattern(4, 50_000));
    assert!(err.contains(&format!("copied the kernel and ramdisk to root@127.0.0.1:{kdir}/")), "{err}");
    assert!(err.contains("cannot start PV guests at all"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kernel"]["dir"], kdir.as_str());
    assert_eq!(v["kernel"]["uploaded"], true);
    assert_clean(&x, 1);

    // --ssh-user; the password reaches neither argv nor environment of ssh/scp, even when given
    // with --password.
    let dir = TestDir::new();
    let ssh = FakeSsh::new(&dir);
    let out =
        convert_pv(&dir, &ssh, &http(&x), &["--upload-kernel", "--ssh-user", "admin", "--password", PASSWORD], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = ssh.log();
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(log.lines().all(|l| l.contains("admin@127.0.0.1")), "{log}");
    assert!(!log.contains(PASSWORD) && !log.contains("ENV-HAS-PASSWORD"), "{log}");
    assert_no_password(&out, PASSWORD);
}

#[test]
fn failed_kernel_copy_or_import_exits_6_and_cleans_up() {
    // scp fails on the ramdisk: nothing is imported, the host directory is removed.
    let dir = TestDir::new();
    let ssh = FakeSsh::new(&dir);
    let x = FakeXapi::start(Faults::default());
    let out = convert_pv(&dir, &ssh, &http(&x), &["--upload-kernel"], &[("FAKE_SCP_FAIL", "/initrd")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("copying the kernel to root@127.0.0.1 failed"), "{err}");
    assert!(
        err.contains("exited with status 1: scp: /var/lib/xcp/guest/") && err.contains("Permission denied"),
        "{err}"
    );
    assert!(err.contains("nothing was imported"), "{err}");
    let log = ssh.log();
    let last = log.lines().last().unwrap();
    assert!(last.starts_with("ssh ") && last.contains(" rm -f /var/lib/xcp/guest/"), "{log}");
    assert!(last.contains("/vmlinuz ") && last.contains("/initrd && rmdir /var/lib/xcp/guest/"), "{log}");
    assert_eq!(ssh.ls("/var/lib/xcp/guest"), Vec::<String>::new(), "the host directory is removed");
    assert!(!log.contains(PASSWORD) && !log.contains("ENV-HAS-PASSWORD"), "{log}");
    x.with(|s| {
        assert_eq!(s.imports, 0);
        assert!(!s.calls.contains(&"task.create".to_string()));
    });
    assert_clean(&x, 0);

    // The copy works but the import fails: the copied files go too.
    let dir = TestDir::new();
    let ssh = FakeSsh::new(&dir);
    let x = FakeXapi::start(Faults { fail_after_body: true, ..Faults::default() });
    let out = convert_pv(&dir, &ssh, &http(&x), &["--upload-kernel"], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("the host refused the import: IMPORT_ERROR"), "{err}");
    assert_eq!(ssh.log().lines().count(), 4, "{}", ssh.log());
    assert_eq!(ssh.ls("/var/lib/xcp/guest"), Vec::<String>::new());
    assert_clean(&x, 0);

    // A kernel that is not here: an input error before anything is contacted.
    let dir = TestDir::new();
    let ssh = FakeSsh::new(&dir);
    let x = FakeXapi::start(Faults::default());
    pv_kernel_guest(&dir);
    let out = xva(
        &dir,
        &[
            "pv01.cfg",
            "--path-map",
            &format!("/srv/xen={}", dir.path().display()),
            "--server",
            &http(&x),
            "--allow-http",
            "--upload-kernel",
        ],
        Some(PASSWORD),
    )
    .env("PATH", ssh.path_env())
    .output()
    .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("cannot read the kernel /boot/vmlinuz-2.6.32-xen") && err.contains("--path-map /boot=DIR"),
        "{err}"
    );
    x.with(|s| assert!(s.calls.is_empty()));
    assert_eq!(ssh.log(), "");
}

/// The tar after its first member (ova.xml, whose UUIDs are fresh on every run).
fn after_ova_xml(tar: &[u8]) -> &[u8] {
    assert!(tar[..7] == *b"ova.xml");
    let size = usize::from_str_radix(std::str::from_utf8(&tar[124..135]).unwrap(), 8).unwrap();
    &tar[512 + size.div_ceil(512) * 512..]
}

#[test]
fn the_body_is_the_file_writers_stream() {
    let dir = TestDir::new();
    let data = pattern(7, 2 * MIB as usize);
    std::fs::write(dir.join("web01-root.img"), &data).unwrap();
    sparse_file(&dir.join("web01-data.img"), 3 * MIB, &[(MIB, 10)]);
    for checksum in ["sha1", "xxhash"] {
        let x = FakeXapi::start(Faults { sink: true, keep_body: true, ..Faults::default() });
        let out = upload(&dir, &http(&x), &["--allow-http", "--checksum", checksum], Some(PASSWORD));
        assert!(out.status.success(), "{}", stderr(&out));
        let out = xva(
            &dir,
            &[
                "-d",
                "web01-root.img",
                "-d",
                "web01-data.img",
                "-n",
                "web01",
                "-o",
                "f.xva",
                "--force",
                "--checksum",
                checksum,
            ],
            None,
        )
        .output()
        .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let file = std::fs::read(dir.join("f.xva")).unwrap();
        x.with(|s| assert!(after_ova_xml(&s.body) == after_ova_xml(&file), "{checksum}: streams differ"));
    }
}
