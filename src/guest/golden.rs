//! Golden tests over the fixture configs in `testdata/configs/` (all written for xva; see
//! `testdata/README.md`), bad-input tests, and property tests that no input panics a parser.

use proptest::prelude::*;

use super::error::ErrorKind;
use super::model::*;
use super::{ovf, sxp, vmx, xen, xl, xm};

macro_rules! fixture {
    ($p:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/configs/", $p))
    };
}
macro_rules! fixture_bytes {
    ($p:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/configs/", $p))
    };
}

fn path_of(d: &Disk) -> String {
    match &d.source {
        DiskSource::Path { path } => path.display().to_string(),
        DiskSource::Script { script, target } => format!("{script}:{target}"),
        DiskSource::OvaMember(m) => m.name.clone(),
        DiskSource::Chunks { parts } => format!("{} chunks", parts.len()),
    }
}

fn has_note(g: &Guest, sev: Severity, needle: &str) -> bool {
    g.notes.iter().any(|n| n.severity == sev && n.message.contains(needle))
}

#[test]
fn xm_xmexample2_with_set() {
    let g = xm::parse_with(fixture!("xm/xmexample2"), &[("vmid".into(), "3".into())]).unwrap();
    assert_eq!(g.name, "VM3");
    assert_eq!(g.memory, Memory::new(128 * MIB, None));
    assert_eq!(g.vcpus, Vcpus::new(1, 1));
    assert_eq!(
        g.boot,
        Boot::PvKernel {
            kernel: "/boot/vmlinuz-2.6.18-xenU".into(),
            ramdisk: Some("/boot/initrd-2.6.18-xenU.img".into()),
            args: "root=/dev/sda1 ro 4 VMID=3 usr=/dev/sda6".into(),
        }
    );
    let devs: Vec<_> = g.disks.iter().map(|d| (path_of(d), d.device.as_str(), d.read_only)).collect();
    assert_eq!(devs, [("/dev/sda10".to_string(), "sda1", false), ("/dev/sda6".to_string(), "sda6", true)]);
    assert_eq!(g.disks[0].partition, Some(1));
    assert_eq!(g.nics[0].mac.as_deref(), Some("aa:00:00:00:00:03"));
    assert_eq!(g.nics[0].network.as_deref(), Some("xenbr0"));
    assert!(has_note(&g, Severity::Important, "PV guest"));
    assert!(has_note(&g, Severity::Warning, "direct kernel boot"));
    assert!(has_note(&g, Severity::Warning, "partitions"));
    // Without --set the file cannot be evaluated, and the error says how to proceed.
    let e = xm::parse(fixture!("xm/xmexample2")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused);
    assert_eq!(e.line(), Some(16));
    assert!(e.to_string().contains("--set vmid="), "{e}");
}

#[test]
fn xm_hvm_windows() {
    let g = xm::parse(fixture!("xm/win2008-hvm")).unwrap();
    assert_eq!(g.name, "win2008");
    assert_eq!(g.uuid.as_deref(), Some("8d4a5e1c-3b1a-4c52-9a0b-5f2f0c2d7e11"));
    assert_eq!(g.memory, Memory::new(2048 * MIB, Some(4096 * MIB)));
    assert_eq!(g.vcpus, Vcpus::new(2, 2));
    assert_eq!(g.boot, Boot::Hvm { firmware: Firmware::Bios, secure_boot: false, order: "dc".into() });
    assert_eq!(
        g.platform,
        Platform {
            acpi: Some(true),
            apic: Some(true),
            pae: Some(true),
            nx: None,
            viridian: Some(true),
            timeoffset: Some(3600),
            localtime: Some(true),
        }
    );
    let devs: Vec<_> = g.disks.iter().map(|d| (path_of(d), d.device.clone(), d.controller)).collect();
    assert_eq!(
        devs,
        [
            ("/dev/vg0/win2008-c".into(), "hda".to_string(), Controller::Ide),
            ("/srv/xen/win2008-data.img".into(), "hdb".into(), Controller::Ide)
        ]
    );
    assert!(g.disks[0].bootable && !g.disks[1].bootable);
    assert_eq!(g.cdroms.len(), 1);
    assert_eq!(g.cdroms[0].media.as_deref(), Some("/srv/iso/en_windows_server_2008_r2.iso"));
    assert_eq!(
        g.nics,
        [Nic { mac: Some("00:16:3e:5a:01:02".into()), network: Some("xenbr1".into()), model: Some("e1000".into()) }]
    );
    assert!(has_note(&g, Severity::Warning, "pci"));
    assert!(has_note(&g, Severity::Warning, "hpet (bool)"));
    assert!(has_note(&g, Severity::Warning, "cpuid (tuple)"));
    assert!(has_note(&g, Severity::Info, "not imported"));
    assert!(!g.boot.is_pv());
}

#[test]
fn xm_pv_pygrub() {
    let g = xm::parse(fixture!("xm/web01-pygrub")).unwrap();
    assert_eq!(g.name, "web01");
    assert_eq!(g.vcpus, Vcpus::new(2, 1));
    assert_eq!(
        g.boot,
        Boot::PvBootloader {
            bootloader: "/usr/bin/pygrub".into(),
            bootloader_args: String::new(),
            args: "console=hvc0 xencons=tty".into()
        }
    );
    let devs: Vec<_> = g.disks.iter().map(|d| (path_of(d), d.format.clone())).collect();
    assert_eq!(
        devs,
        [
            ("/var/lib/xen/images/web01-root.img".into(), Some("raw".to_string())),
            ("/var/lib/xen/images/web01-data.qcow2".into(), Some("qcow2".into())),
            ("/dev/vg0/web01-swap".into(), Some("raw".into())),
        ]
    );
    assert_eq!(g.nics.len(), 2);
    assert_eq!(g.nics[1].mac, None);
    assert!(has_note(&g, Severity::Important, "XenServer 8"));
}

#[test]
fn xm_direct_kernel_partitions_and_scripts() {
    let g = xm::parse(fixture!("xm/oldpv-kernel")).unwrap();
    assert_eq!(g.memory.dynamic_max, 512 * MIB);
    assert!(matches!(&g.boot, Boot::PvKernel { kernel, args, .. }
        if kernel == "/boot/vmlinuz-2.6.32-5-xen-amd64" && args == "root=/dev/xvda2 ro console=hvc0 elevator=noop"));
    assert_eq!(g.disks.len(), 3);
    assert_eq!(g.disks[0].partition, Some(2));
    assert!(matches!(&g.disks[2].source, DiskSource::Script { script, .. } if script == "iscsi"));
    assert!(has_note(&g, Severity::Warning, "block script"));
}

#[test]
fn xm_code_that_only_sets_unneeded_names() {
    let g = xm::parse(fixture!("xm/xmexample-hvm")).unwrap();
    assert_eq!(g.name, "ExampleHVMDomain");
    assert_eq!(g.memory, Memory::new(1024 * MIB, None));
    assert!(!g.boot.is_pv());
    assert_eq!(g.disks.len(), 1);
    assert_eq!(g.cdroms.len(), 1);
    assert!(has_note(&g, Severity::Info, "arch (line 11), arch_libdir (line 12), device_model (line 24)"));
    assert!(has_note(&g, Severity::Info, "os, re"));
    // Code that decides a value the conversion needs is refused, with the line and the fix.
    let e = xm::parse(fixture!("xm/bad/memory-in-if")).unwrap_err();
    assert_eq!((e.kind(), e.line()), (ErrorKind::Refused, Some(2)));
    assert!(e.to_string().contains("--set memory="), "{e}");
    assert!(e.to_string().contains("`if`"), "{e}");
    // ...and --set supplies it.
    let g = xm::parse_with(fixture!("xm/bad/memory-in-if"), &[("memory".into(), "2048".into())]).unwrap();
    assert_eq!(g.memory.dynamic_max, 2048 * MIB);
}

#[test]
fn xm_bad_inputs() {
    let e = xm::parse(fixture!("xm/bad/unterminated")).unwrap_err();
    assert_eq!((e.kind(), e.line()), (ErrorKind::Syntax, Some(1)));
    assert!(e.to_string().contains("unterminated"));
    let e = xm::parse(fixture!("xm/bad/import")).unwrap_err();
    assert_eq!((e.kind(), e.line()), (ErrorKind::Refused, Some(1)));
    assert!(e.to_string().contains("needed for `name`"), "{e}");
    let e = xm::parse(fixture!("xm/bad/unknown-prefix")).unwrap_err();
    assert!(e.to_string().contains("unknown disk prefix \"lvm\""), "{e}");
    assert_eq!(e.line(), Some(4));
}

#[test]
fn xl_pv() {
    let g = xl::parse(fixture!("xl/debian-pv.cfg")).unwrap();
    assert_eq!(g.name, "debian12");
    assert_eq!(g.memory, Memory::new(2048 * MIB, Some(4096 * MIB)));
    assert_eq!(g.vcpus, Vcpus::new(4, 2));
    assert_eq!(
        g.boot,
        Boot::PvBootloader {
            bootloader: "pygrub".into(),
            bootloader_args: "--kernel=/vmlinuz --ramdisk=/initrd.img".into(),
            args: "root=/dev/xvda1 ro console=hvc0\tquiet".into()
        }
    );
    let devs: Vec<_> = g.disks.iter().map(|d| (path_of(d), d.format.clone(), d.device.clone())).collect();
    assert_eq!(
        devs,
        [
            ("/srv/xen/debian12-root.img".into(), Some("raw".into()), "xvda".into()),
            ("/srv/xen/debian12 data".into(), Some("qcow2".into()), "xvdb".into()),
            ("/dev/vg0/debian12,swap".to_string(), Some("raw".to_string()), "xvdc".to_string()),
        ]
    );
    assert_eq!(g.nics[0].mac.as_deref(), Some("00:16:3e:12:34:56"));
    assert_eq!(g.nics[1].model.as_deref(), Some("rtl8139"));
}

#[test]
fn xl_hvm_uefi() {
    let g = xl::parse(fixture!("xl/win10-uefi.cfg")).unwrap();
    assert_eq!(g.boot, Boot::Hvm { firmware: Firmware::Uefi, secure_boot: false, order: "cd".into() });
    assert_eq!(g.platform.viridian, Some(true));
    assert_eq!(g.platform.nx, Some(true));
    assert_eq!(g.disks.len(), 1);
    assert_eq!(g.cdroms.len(), 2);
    assert_eq!(g.cdroms[0].media.as_deref(), Some("/srv/iso/Win10_22H2.iso"));
    assert_eq!(g.cdroms[1].media, None);
    assert!(has_note(&g, Severity::Info, "2 CD drives"));
}

#[test]
fn xl_disk_vectors_fixture() {
    for group in fixture!("xl/disk-vectors.txt").split("\n\n") {
        let specs: Vec<&str> = group.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
        let first = xen::parse_xl_disk(specs[0]).unwrap();
        for s in &specs[1..] {
            assert_eq!(xen::parse_xl_disk(s).unwrap(), first, "{s} vs {}", specs[0]);
        }
    }
}

#[test]
fn xl_bad_inputs() {
    let e = xl::parse(fixture!("xl/bad/python.cfg")).unwrap_err();
    assert!(e.to_string().contains("Python"), "{e}");
    assert_eq!(e.line(), Some(1));
    let e = xl::parse(fixture!("xl/bad/tap-vmdk.cfg")).unwrap_err();
    assert!(e.to_string().contains("unknown deprecated disk prefix"), "{e}");
    assert_eq!(e.line(), Some(3));
}

#[test]
fn sxp_xm_list_pv() {
    let g = sxp::parse(fixture!("sxp/ubuntu-pv.sxp")).unwrap();
    assert_eq!(g.name, "UbuntuPVS810");
    assert_eq!(g.memory, Memory::new(4096 * MIB, Some(4096 * MIB)));
    assert_eq!(
        g.boot,
        Boot::PvBootloader {
            bootloader: "/usr/bin/pygrub".into(),
            bootloader_args: String::new(),
            args: "root=/dev/xvda1 ro console=hvc0".into()
        }
    );
    let devs: Vec<_> = g.disks.iter().map(|d| (path_of(d), d.device.clone(), d.bootable)).collect();
    assert_eq!(
        devs,
        [("/dev/sdb7".into(), "xvda".to_string(), true), ("/srv/xen/ubuntu-data.img".into(), "xvdb".into(), false)]
    );
    assert_eq!(g.nics[0].mac.as_deref(), Some("00:16:3e:1b:8b:d2"));
    assert_eq!(g.nics[0].network.as_deref(), Some("eth0"));
}

#[test]
fn sxp_managed_prefers_xenapi_keys() {
    let g = sxp::parse(fixture!("sxp/config.sxp")).unwrap();
    assert_eq!(g.name, "win2003");
    assert_eq!(g.description, "Windows 2003 file server");
    assert_eq!(g.memory, Memory { static_min: 0, dynamic_min: 1 << 30, dynamic_max: 1 << 30, static_max: 2 << 30 });
    assert_eq!(g.vcpus, Vcpus::new(4, 2));
    assert_eq!(g.boot, Boot::Hvm { firmware: Firmware::Bios, secure_boot: false, order: "dc".into() });
    // (platform …) wins over the legacy (image (hvm (acpi 0))).
    assert_eq!(g.platform.acpi, Some(true));
    assert_eq!(g.platform.viridian, Some(false));
    assert_eq!(g.platform.localtime, Some(true));
    assert_eq!(g.disks.len(), 1);
    assert_eq!(g.cdroms.len(), 1);
    assert_eq!(g.nics[0].model.as_deref(), Some("rtl8139"));
    assert!(has_note(&g, Severity::Warning, "pci"));
}

#[test]
fn sxp_bad_inputs() {
    let e = sxp::parse(fixture!("sxp/bad/unclosed.sxp")).unwrap_err();
    assert_eq!((e.kind(), e.line()), (ErrorKind::Syntax, Some(1)));
    let e = sxp::parse(fixture!("sxp/bad/unterminated.sxp")).unwrap_err();
    assert!(e.to_string().contains("unterminated"), "{e}");
}

#[test]
fn vmx_workstation_snapshot_chain_windows_1252() {
    let g = vmx::parse(fixture_bytes!("vmx/workstation-win7/Win7.vmx")).unwrap();
    assert_eq!(g.name, "Büro-PC Café");
    assert_eq!(g.description, "Accounting desktop\nHas a \"quoted\" note");
    assert_eq!(g.memory, Memory::new(3072 * MIB, None));
    assert_eq!(g.vcpus, Vcpus::new(2, 2));
    let os = g.os.as_ref().unwrap();
    assert_eq!((os.family, os.name.as_str()), (OsFamily::Windows, "Windows 7 (64-bit)"));
    assert_eq!(g.uuid.as_deref(), Some("564d1267-af4f-5e46-e58b-621d70c03a22"));
    assert_eq!(g.generation_id.as_deref(), Some("9910052275878964421:4533101384935567489"));
    let devs: Vec<_> = g.disks.iter().map(|d| (path_of(d), d.device.clone(), d.controller)).collect();
    assert_eq!(
        devs,
        [
            ("Win7-000002.vmdk".into(), "scsi0:0".to_string(), Controller::Scsi(ScsiModel::LsiSas)),
            ("Win7-data.vmdk".into(), "scsi0:1".into(), Controller::Scsi(ScsiModel::LsiSas)),
        ]
    );
    assert_eq!(g.cdroms[0].media.as_deref(), Some("C:\\ISO\\SW_DVD5_Office.iso"));
    assert_eq!(g.nics[0].mac.as_deref(), Some("00:0c:29:c0:3a:22"));
    assert_eq!(g.nics[0].model.as_deref(), Some("e1000"));
    assert_eq!(g.platform.viridian, Some(true));
    assert!(has_note(&g, Severity::Info, "snapshot delta"));
    assert!(has_note(&g, Severity::Info, "independent"));
    assert!(has_note(&g, Severity::Info, "sound card, USB controller"));
    let snaps = vmx::parse_vmsd(fixture_bytes!("vmx/workstation-win7/Win7.vmsd")).unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[1].name, "Vor dem Update – März");
    assert_eq!(snaps[1].parent, Some(1));
    assert!(snaps[1].current && !snaps[0].current);
    assert_eq!(snaps[0].disks, [("scsi0:0".to_string(), "Win7.vmdk".to_string())]);
}

#[test]
fn vmx_esxi_order_and_controllers() {
    let g = vmx::parse(fixture_bytes!("vmx/esxi-web01/web01.vmx")).unwrap();
    assert_eq!(g.boot, Boot::Hvm { firmware: Firmware::Uefi, secure_boot: true, order: "cd".into() });
    // SCSI (by controller, unit; unit 7 skipped), NVMe, SATA, IDE.
    let devs: Vec<_> = g.disks.iter().map(|d| (d.device.clone(), d.controller)).collect();
    assert_eq!(
        devs,
        [
            ("scsi0:0".to_string(), Controller::Scsi(ScsiModel::Pvscsi)),
            ("scsi1:0".into(), Controller::Scsi(ScsiModel::LsiLogic)),
            ("nvme0:0".into(), Controller::Nvme),
            ("ide0:0".into(), Controller::Ide),
        ]
    );
    assert_eq!(g.cdroms.len(), 1);
    assert_eq!(g.cdroms[0].media, None);
    assert_eq!(
        g.nics,
        [
            Nic {
                mac: Some("00:50:56:01:02:03".into()),
                network: Some("VM Network".into()),
                model: Some("vmxnet3".into())
            },
            Nic { mac: Some("00:50:56:aa:bb:cc".into()), network: Some("Backup".into()), model: Some("e1000e".into()) },
        ]
    );
    assert_eq!(g.os.as_ref().map(|o| o.name.as_str()), Some("Windows Server 2019 (64-bit)"));
    assert!(has_note(&g, Severity::Warning, "pvscsi"));
}

#[test]
fn ovf_two_disks() {
    let g = ovf::parse(fixture!("ovf/two-disks.ovf")).unwrap();
    assert_eq!(g.name, "app01 & db");
    assert_eq!(g.description, "Application server\nowner: ops");
    assert_eq!(g.memory, Memory::new(4096 * MIB, None));
    assert_eq!(g.vcpus, Vcpus::new(2, 2));
    assert_eq!(g.boot, Boot::Hvm { firmware: Firmware::Uefi, secure_boot: true, order: "cd".into() });
    let devs: Vec<_> = g.disks.iter().map(|d| (path_of(d), d.capacity, d.device.clone())).collect();
    assert_eq!(
        devs,
        [
            ("app01-disk1.vmdk".into(), Some(16 << 30), "scsi0:0".to_string()),
            ("app01-disk2.vmdk".into(), Some(2 << 30), "scsi0:1".into()),
        ]
    );
    assert_eq!(g.disks[0].format.as_deref(), Some("vmdk"));
    assert_eq!(g.disks[0].controller, Controller::Scsi(ScsiModel::LsiSas));
    assert_eq!(g.cdroms.len(), 1);
    assert_eq!(
        g.nics,
        [Nic {
            mac: Some("00:50:56:8f:12:34".into()),
            network: Some("VM Network".into()),
            model: Some("vmxnet3".into())
        }]
    );
    assert_eq!(g.os.as_ref().map(|o| o.family), Some(OsFamily::Windows));
    assert_eq!(g.platform.viridian, Some(true));
}

#[test]
fn ovf_bad_inputs() {
    let e = ovf::parse(fixture!("ovf/bad/huge-units.ovf")).unwrap_err();
    assert!(e.to_string().contains("2^64"), "{e}");
    assert!(e.line().is_some());
    let e = ovf::parse(fixture!("ovf/bad/gzip.ovf")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("gzip"), "{e}");
    let e = ovf::parse(fixture!("ovf/bad/truncated.ovf")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Syntax);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn xm_never_panics(s in "[ -~\n\t]{0,300}") {
        let _ = xm::parse(&s);
    }

    #[test]
    fn xm_never_panics_on_pythonish(s in proptest::collection::vec(prop_oneof![
        Just("a"), Just("="), Just("'"), Just("\""), Just("'''"), Just("%"), Just("d"), Just("("),
        Just(")"), Just("["), Just("]"), Just(","), Just("\n"), Just("\\"), Just("1"), Just("0x"),
        Just("+"), Just("*"), Just("**"), Just("def"), Just(" "), Just(":"), Just("r'"), Just("{"),
        Just("}"), Just("disk"), Just("vif"), Just("memory"), Just("-"), Just("/"), Just("9999999999"),
    ], 0..60)) {
        let _ = xm::parse(&s.concat());
    }

    #[test]
    fn xl_never_panics(s in "[ -~\n\t]{0,300}") {
        let _ = xl::parse(&s);
        let _ = xen::parse_xl_disk(&s);
        let _ = xen::parse_xm_disk(&s);
    }

    #[test]
    fn sxp_never_panics(s in "[ -~\n\t()'\"\\\\]{0,300}") {
        let _ = sxp::parse(&s);
        let _ = sxp::parse(&format!("(domain {s})"));
    }

    #[test]
    fn vmx_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = super::load::detect(&b, std::path::Path::new("x.cfg"));
        let _ = super::ova::parse_manifest(&String::from_utf8_lossy(&b));
        let _ = vmx::parse(&b);
        let _ = vmx::parse_vmsd(&b);
        let mut with = b"config.version = \"8\"\nscsi0:0.fileName = \"".to_vec();
        with.extend_from_slice(&b);
        let _ = vmx::parse(&with);
    }

    #[test]
    fn ovf_never_panics(s in "[ -~\n]{0,300}") {
        let _ = ovf::parse(&s);
        let doc = fixture!("ovf/two-disks.ovf");
        let cut = s.len() % doc.len();
        if doc.is_char_boundary(cut) {
            let mut m = doc[..cut].to_string();
            m.push_str(&s);
            let _ = ovf::parse(&m);
        }
    }
}
