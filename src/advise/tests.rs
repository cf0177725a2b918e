//! Rules over hand-built guests: each expected advisory appears with its evidence, and no other.

use super::*;
use crate::guest::{self, Boot, Guest, SourceKind};
use crate::inspect::cpio::tests::{gzip, newc};
use crate::inspect::testdisk::{mem_reader, DiskBuilder, Ext2, Node};
use crate::inspect::{inspect_disk, DiskFacts, DEFAULT_BUDGET};

const FSTAB_UUID: &[u8] = b"UUID=1111 / ext4 defaults 1 1\n";

fn hvm_guest() -> Guest {
    let mut g = Guest::new(SourceKind::Disks);
    g.boot = Boot::hvm_bios();
    g
}

fn pv_guest() -> Guest {
    let mut g = Guest::new(SourceKind::Xl);
    g.boot = Boot::PvBootloader { bootloader: "pygrub".into(), bootloader_args: String::new(), args: String::new() };
    g
}

/// A root filesystem with one kernel `version`, its config and initramfs, and `extra` nodes.
fn root(version: &str, config: &[u8], initrd: Option<&[u8]>, fstab: &[u8], extra: &[Node<'_>]) -> Vec<u8> {
    let k = format!("/boot/vmlinuz-{version}");
    let c = format!("/boot/config-{version}");
    let i = format!("/boot/initramfs-{version}.img");
    let mut nodes = vec![
        Node::Dir("/etc"),
        Node::Dir("/boot"),
        Node::File("/etc/fstab", fstab),
        Node::File("/etc/os-release", b"NAME=Test\nPRETTY_NAME=\"Test Linux 9\"\n"),
    ];
    if !version.is_empty() {
        nodes.push(Node::File(&k, b"kernel"));
        nodes.push(Node::File(&c, config));
        if let Some(data) = initrd {
            nodes.push(Node::File(&i, data));
        }
    }
    for n in extra {
        nodes.push(match *n {
            Node::Dir(p) => Node::Dir(p),
            Node::File(p, d) => Node::File(p, d),
            Node::Symlink(p, t) => Node::Symlink(p, t),
        });
    }
    Ext2::new(2048).build(&nodes, false)
}

/// `fs` as partition 1 of an MBR disk, with or without boot code.
fn mbr_disk(fs: &[u8], boot_code: bool) -> DiskFacts {
    let mut b = DiskBuilder::new(4 << 20);
    b.mbr(&[(0x83, 2048, (fs.len() / 512) as u32, true)]);
    if boot_code {
        b.boot_code();
    }
    b.place(2048 * 512, fs);
    let f = inspect_disk(mem_reader(b.finish()), DEFAULT_BUDGET).unwrap();
    assert!(f.problems.is_empty(), "{:?}", f.problems);
    f
}

fn run(g: &Guest, facts: &DiskFacts, target: &str) -> Vec<Advisory> {
    let view = DiskView { size: 4 << 20, facts: Ok(facts) };
    advise(g, &[view], &Target::by_name(target).unwrap())
}

fn codes(a: &[Advisory]) -> Vec<(&'static str, Severity)> {
    a.iter().map(|a| (a.code, a.severity)).collect()
}

fn good_initrd() -> Vec<u8> {
    gzip(&newc(&["usr/lib/modules/5.14.0/kernel/drivers/block/xen-blkfront.ko.xz", "init"]))
}

#[test]
fn a_healthy_hvm_guest_has_no_advisories() {
    let fs = root("5.14.0", b"CONFIG_XEN_BLKDEV_FRONTEND=m\n", Some(&good_initrd()), FSTAB_UUID, &[]);
    let a = run(&hvm_guest(), &mbr_disk(&fs, true), "xcp-ng-8.3");
    assert!(a.is_empty(), "{a:#?}");
}

#[test]
fn an_el5_xen_pv_guest_on_a_new_target() {
    let initrd = gzip(&newc(&["lib/ext3.ko", "lib/xenblk.ko"]));
    let fs = root(
        "2.6.18-398.el5xen",
        b"CONFIG_X86_64_XEN=y\n",
        Some(&initrd),
        b"/dev/sda1 / ext3 defaults 1 1\n/dev/hda2 /var ext3 defaults 0 0\n",
        &[
            Node::Dir("/boot/grub"),
            Node::File("/boot/grub/menu.lst", b"kernel /vmlinuz ro root=/dev/sda1 console=xvc0\n"),
        ],
    );
    let facts = mbr_disk(&fs, false);
    let a = run(&pv_guest(), &facts, "xcp-ng-8.3");
    assert_eq!(
        codes(&a),
        vec![
            ("C3", Severity::Block),
            ("L1", Severity::Block),
            ("L3", Severity::Block),
            ("L7", Severity::Block),
            ("L5", Severity::Warn),
            ("L9", Severity::Warn),
        ]
    );
    let by = |c: &str| a.iter().find(|x| x.code == c).unwrap();
    assert!(by("L1").evidence.contains("/boot/vmlinuz-2.6.18-398.el5xen"), "{}", by("L1").evidence);
    assert!(by("L3").evidence.contains("all zero"));
    assert!(by("L7").evidence.contains("/boot/initramfs-2.6.18-398.el5xen.img (gzip)"), "{}", by("L7").evidence);
    assert!(by("L7").fix.contains("dracut --add-drivers \"xen-blkfront xen-netfront\""));
    assert_eq!(
        by("L5").evidence,
        "disk 0 partition 1 /etc/fstab:1 /dev/sda1; disk 0 partition 1 /etc/fstab:2 /dev/hda2; \
         disk 0 partition 1 /boot/grub/menu.lst:1 /dev/sda1"
    );
    assert!(by("L5").fix.contains("UUID=11111111-1111-1111-1111-111111111111"));
    assert!(by("L9").evidence.ends_with("/boot/grub/menu.lst:1 xvc0"));
    // On a target that still runs PV, only what matters to PV is left.
    let a = run(&pv_guest(), &facts, "xenserver-7.1");
    assert_eq!(codes(&a), vec![("L7", Severity::Block), ("L5", Severity::Warn)]);
}

#[test]
fn no_kernel_and_dom0_kernel() {
    let fs = root("", b"", None, FSTAB_UUID, &[]);
    let mut g = pv_guest();
    g.boot = Boot::PvKernel { kernel: "/boot/vmlinuz-dom0".into(), ramdisk: None, args: String::new() };
    let a = run(&g, &mbr_disk(&fs, true), "xcp-ng-8.3");
    assert_eq!(codes(&a), vec![("C3", Severity::Block), ("C4", Severity::Block), ("L2", Severity::Block)]);
    let a = run(&g, &mbr_disk(&fs, true), "xenserver-6.5");
    assert_eq!(codes(&a), vec![("C4", Severity::Warn)]);
}

#[test]
fn initramfs_without_drivers_but_config_builtin_is_fine() {
    let bare = gzip(&newc(&["lib/ext4.ko"]));
    let fs = root("6.1.0", b"CONFIG_ATA_PIIX=y\n", Some(&bare), FSTAB_UUID, &[]);
    assert!(run(&hvm_guest(), &mbr_disk(&fs, true), "xcp-ng-8.3").is_empty());
    let fs = root("6.1.0", b"CONFIG_ATA_PIIX=m\n", Some(&bare), FSTAB_UUID, &[]);
    let a = run(&hvm_guest(), &mbr_disk(&fs, true), "xcp-ng-8.3");
    assert_eq!(codes(&a), vec![("L7", Severity::Block)]);
    // modules.builtin of the root counts too.
    let fs = root(
        "6.1.0",
        b"",
        Some(&bare),
        FSTAB_UUID,
        &[
            Node::Dir("/lib"),
            Node::Dir("/lib/modules"),
            Node::Dir("/lib/modules/6.1.0"),
            Node::File("/lib/modules/6.1.0/modules.builtin", b"kernel/drivers/block/xen-blkfront.ko\n"),
        ],
    );
    assert!(run(&hvm_guest(), &mbr_disk(&fs, true), "xcp-ng-8.3").is_empty());
}

#[test]
fn bare_filesystem_and_gpt_without_bios_boot() {
    let fs = root("6.1.0", b"CONFIG_ATA_PIIX=y\n", None, FSTAB_UUID, &[]);
    let facts = inspect_disk(mem_reader(fs.clone()), DEFAULT_BUDGET).unwrap();
    let a = run(&hvm_guest(), &facts, "xcp-ng-8.3");
    assert_eq!(codes(&a), vec![("L3", Severity::Block)]);
    assert!(a[0].evidence.contains("bare filesystem"));
    let mut b = DiskBuilder::new(4 << 20);
    b.gpt(&[("0FC63DAF-8483-4772-8E79-3D69D8477DE4", 2048, 2048 + fs.len() as u64 / 512 - 1)]);
    b.place(2048 * 512, &fs);
    let facts = inspect_disk(mem_reader(b.finish()), DEFAULT_BUDGET).unwrap();
    let a = run(&hvm_guest(), &facts, "xcp-ng-8.3");
    assert_eq!(codes(&a), vec![("L3", Severity::Block)]);
    assert!(a[0].evidence.contains("BIOS boot partition"));
}

#[test]
fn config_rules_need_no_disk() {
    let mut g = hvm_guest();
    g.vcpus = guest::Vcpus::new(64, 64);
    g.disks.push(guest::Disk {
        source: guest::DiskSource::Path { path: "sda1.img".into() },
        format: None,
        bootable: true,
        read_only: false,
        controller: guest::Controller::Xen,
        device: "xvda1".into(),
        partition: Some(1),
        capacity: None,
    });
    let view = DiskView { size: 3 << 40, facts: Err("not inspected") };
    let a = advise(&g, &[view], &Target::default());
    assert_eq!(codes(&a), vec![("C5", Severity::Block), ("C10", Severity::Block), ("C12", Severity::Warn)]);
    assert_eq!(a[2].evidence, "64 vCPUs (untrusted guests: at most 32)");
}

#[test]
fn targets_are_named_and_default_is_newest() {
    assert_eq!(Target::default().name, "xcp-ng-8.3");
    assert!(Target::by_name("XenServer-7.1").unwrap().pv);
    assert!(Target::by_name("nope").is_none());
    let names: std::collections::BTreeSet<_> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names.len(), TARGETS.len());
}

#[test]
fn bitlocker_volume_in_a_partition_and_bare() {
    let mut vbr = vec![0u8; 4096];
    vbr[3..11].copy_from_slice(b"-FVE-FS-");
    vbr[510] = 0x55;
    vbr[511] = 0xAA;
    let mut b = DiskBuilder::new(4 << 20);
    b.mbr(&[(0x07, 2048, 8, true)]);
    b.boot_code();
    b.place(2048 * 512, &vbr);
    let facts = inspect_disk(mem_reader(b.finish()), DEFAULT_BUDGET).unwrap();
    let a = run(&hvm_guest(), &facts, "xcp-ng-8.3");
    assert_eq!(codes(&a), vec![("W11", Severity::Block)]);
    assert_eq!(a[0].evidence, "disk 0 partition 1: boot sector OEM id -FVE-FS-");
    let facts = inspect_disk(mem_reader(vbr.clone()), DEFAULT_BUDGET).unwrap();
    assert_eq!(facts.table.scheme, crate::inspect::Scheme::Bare);
    assert_eq!(codes(&run(&hvm_guest(), &facts, "xcp-ng-8.3")), vec![("W11", Severity::Block)]);
    // A plain NTFS volume is recognised and says nothing yet.
    vbr[3..11].copy_from_slice(b"NTFS    ");
    let facts = inspect_disk(mem_reader(vbr), DEFAULT_BUDGET).unwrap();
    assert_eq!(facts.filesystems[0].fs_type, "ntfs");
    assert!(run(&hvm_guest(), &facts, "xcp-ng-8.3").is_empty());
}

#[test]
fn vmware_tools_pinned_nics_and_lvm_filters() {
    let fs = root(
        "5.14.0",
        b"CONFIG_ATA_PIIX=y\n",
        None,
        FSTAB_UUID,
        &[
            Node::Dir("/etc/vmware-tools"),
            Node::File(
                "/etc/modprobe.conf",
                b"alias eth0 vmxnet3\nalias scsi_hostadapter mptspi\n# alias x vmw_pvscsi\n",
            ),
            Node::Dir("/etc/udev"),
            Node::Dir("/etc/udev/rules.d"),
            Node::File(
                "/etc/udev/rules.d/70-persistent-net.rules",
                b"SUBSYSTEM==\"net\", ATTR{address}==\"00:50:56:aa:bb:cc\", NAME=\"eth0\"\n",
            ),
            Node::Dir("/etc/sysconfig"),
            Node::Dir("/etc/sysconfig/network-scripts"),
            Node::File("/etc/sysconfig/network-scripts/ifcfg-eth0", b"DEVICE=eth0\nHWADDR=00:50:56:AA:BB:CC\n"),
            Node::Dir("/etc/lvm"),
            Node::File(
                "/etc/lvm/lvm.conf",
                b"devices {\n  # filter = [ \"a|/dev/sda|\" ]\n  filter = [ \"a|/dev/sda2|\", \"r|.*|\" ]\n}\n",
            ),
        ],
    );
    let a = run(&hvm_guest(), &mbr_disk(&fs, true), "xcp-ng-8.3");
    assert_eq!(codes(&a), vec![("L6", Severity::Warn), ("L10", Severity::Warn), ("L11", Severity::Warn)]);
    let p1 = "disk 0 partition 1";
    assert_eq!(a[0].evidence, format!("{p1} /etc/lvm/lvm.conf:3 filter = [ \"a|/dev/sda2|\", \"r|.*|\" ]"));
    assert_eq!(
        a[1].evidence,
        format!("{p1} /etc/vmware-tools; {p1} /etc/modprobe.conf:1 alias eth0 vmxnet3; {p1} /etc/modprobe.conf:2 alias scsi_hostadapter mptspi")
    );
    assert_eq!(
        a[2].evidence,
        format!("{p1} /etc/udev/rules.d/70-persistent-net.rules; {p1} /etc/sysconfig/network-scripts/ifcfg-eth0:2 HWADDR=00:50:56:AA:BB:CC")
    );
}

#[test]
fn old_kernel_without_pv_on_hvm_and_pygrub_limits() {
    let cfg = b"CONFIG_ATA_PIIX=y\n";
    let fs = root("2.6.32-754.el6.x86_64", cfg, None, FSTAB_UUID, &[]);
    let a = run(&hvm_guest(), &mbr_disk(&fs, true), "xcp-ng-8.3");
    assert_eq!(codes(&a), vec![("L8", Severity::Warn)]);
    assert!(a[0].evidence.contains("/boot/vmlinuz-2.6.32-754.el6.x86_64"), "{}", a[0].evidence);
    let kmod = [
        Node::Dir("/lib"),
        Node::Dir("/lib/modules"),
        Node::Dir("/lib/modules/2.6.32-754.el6.x86_64"),
        Node::File(
            "/lib/modules/2.6.32-754.el6.x86_64/modules.dep",
            b"extra/xenpv/platform-pci/xen-platform-pci.ko:\n",
        ),
    ];
    let fs = root("2.6.32-754.el6.x86_64", cfg, None, FSTAB_UUID, &kmod);
    assert!(run(&hvm_guest(), &mbr_disk(&fs, true), "xcp-ng-8.3").is_empty());
    let grub = [Node::Dir("/boot/grub2"), Node::File("/boot/grub2/grub.cfg", b"insmod blscfg\nblscfg\n")];
    let fs = root("5.14.0", cfg, None, FSTAB_UUID, &grub);
    let a = run(&pv_guest(), &mbr_disk(&fs, true), "xenserver-7.1");
    assert_eq!(codes(&a), vec![("L13", Severity::Warn)]);
    assert_eq!(a[0].evidence, "disk 0 partition 1 /boot/grub2/grub.cfg: blscfg");
}
