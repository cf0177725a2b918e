//! Linux facts from one ext filesystem (a root or a separate `/boot`): the distribution, the
//! kernels and what each can drive (config, `modules.builtin`, initramfs contents), the device
//! names in fstab / crypttab / bootloader configs, and console settings.
//!
//! Everything is read by path with bounded sizes; a file that cannot be read becomes a line in
//! `problems` and inspection goes on.

use std::collections::{BTreeMap, BTreeSet};

use super::cpio::{self, Initramfs};
use super::ext::Fs;

/// Largest initramfs image scanned.
pub const MAX_INITRAMFS: u64 = 512 << 20;
/// Most kernels examined on one filesystem.
pub const MAX_KERNELS: usize = 16;

/// Modules that let a kernel find its root disk on the target: Xen PV block, libata PIIX, and
/// the old IDE PIIX driver (RHEL ≤ 5, SLES ≤ 10).
pub const BOOT_DRIVERS: &[(&str, &str)] =
    &[("xen_blkfront", "CONFIG_XEN_BLKDEV_FRONTEND"), ("ata_piix", "CONFIG_ATA_PIIX"), ("piix", "CONFIG_BLK_DEV_PIIX")];

/// One kernel found in `/boot`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Kernel {
    /// Its path on the filesystem (`/boot/vmlinuz-5.14.0`).
    pub path: String,
    /// The version (the file name after `vmlinuz-`).
    pub version: String,
    /// Xen-PV-only: `CONFIG_X86_XEN=y`/`CONFIG_X86_64_XEN=y` (xenified 2.6.18), or with no
    /// config, a name ending in `xen`.
    pub xen_only: bool,
    /// The config file read (`/boot/config-<version>`), if any.
    pub config: Option<String>,
    /// [`BOOT_DRIVERS`] built in (`=y`) by the config or `modules.builtin`.
    pub builtin: BTreeSet<String>,
    /// The initramfs image, if one was found.
    pub initramfs: Option<String>,
    /// What it holds (when it could be read).
    pub initramfs_facts: Option<Initramfs>,
}

/// A device name found in a config file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeviceRef {
    /// The file (`/etc/fstab`).
    pub file: String,
    /// Line number, from 1.
    pub line: usize,
    /// The name (`/dev/sda1`).
    pub device: String,
}

/// What a Linux filesystem says.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinuxFacts {
    /// The filesystem is a root (`/etc` with `fstab` or `os-release`).
    pub is_root: bool,
    /// `PRETTY_NAME` of `/etc/os-release`, or the first line of `/etc/*-release`.
    pub distro: Option<String>,
    /// Kernels (in `/boot` of a root, or at the top of a separate `/boot`).
    pub kernels: Vec<Kernel>,
    /// Module directories (`/lib/modules/<version>`) and the [`BOOT_DRIVERS`] their
    /// `modules.builtin` lists: a root's view of kernels that may live on another filesystem.
    pub modules_builtin: BTreeMap<String, BTreeSet<String>>,
    /// Kernel device names in fstab, crypttab, bootloader configs and `device.map`.
    pub device_names: Vec<DeviceRef>,
    /// Xen PV consoles (`xvc0`, `hvc0`) in `console=` or inittab gettys.
    pub pv_consoles: Vec<DeviceRef>,
    /// Bootloader configs present.
    pub bootloader_configs: Vec<String>,
    /// VMware tooling: tools installed, VMware storage/NIC drivers named in module configs
    /// (`file` or `file:line text`).
    pub vmware: Vec<String>,
    /// What pins interfaces to the old NICs: persistent-net rules, `HWADDR=` lines.
    pub nic_pinning: Vec<String>,
    /// `lvm.conf` `filter` / `global_filter` lines naming kernel devices.
    pub lvm_filters: Vec<String>,
    /// Module versions whose `modules.dep` lists `xen-platform-pci` (PV-on-HVM drivers: the
    /// kernel's own, or kmod-xenpv / xen-kmp for old kernels).
    pub pv_on_hvm: BTreeSet<String>,
    /// Bootloader configs that use BootLoaderSpec entries (`blscfg`), which pygrub cannot read.
    pub blscfg: Vec<String>,
}

/// Files whose presence says VMware Tools / open-vm-tools are installed.
const VMWARE_FILES: &[&str] =
    &["/etc/vmware-tools", "/usr/bin/vmtoolsd", "/usr/bin/vmware-toolbox-cmd", "/etc/init.d/vmware-tools"];
/// VMware virtual hardware drivers, as module names.
const VMWARE_DRIVERS: &[&str] = &["vmw_pvscsi", "mptspi", "mptsas", "mptscsih", "buslogic", "vmxnet", "vmxnet3"];

/// L6, L10, L11 evidence from a root filesystem.
fn vmware_net_lvm(fs: &Fs, problems: &mut Vec<String>, f: &mut LinuxFacts) {
    f.vmware.extend(VMWARE_FILES.iter().filter(|p| fs.exists(p)).map(|p| p.to_string()));
    for file in ["/etc/modprobe.conf", "/etc/sysconfig/kernel", "/etc/conf.modules"] {
        for (n, line) in text(fs, problems, file).unwrap_or_default().lines().enumerate() {
            let l = line.trim();
            let named = l
                .split(|c: char| c.is_whitespace() || c == '"' || c == '=')
                .any(|w| VMWARE_DRIVERS.contains(&w.to_ascii_lowercase().as_str()));
            if !l.starts_with('#') && named {
                f.vmware.push(format!("{file}:{} {l}", n + 1));
            }
        }
    }
    let rules = "/etc/udev/rules.d/70-persistent-net.rules";
    if text(fs, problems, rules)
        .is_some_and(|t| t.lines().any(|l| !l.trim_start().starts_with('#') && l.contains("SUBSYSTEM")))
    {
        f.nic_pinning.push(rules.into());
    }
    let dir = "/etc/sysconfig/network-scripts";
    for name in fs.list(dir).unwrap_or_default().iter().filter(|n| n.starts_with("ifcfg-")).take(32) {
        let path = format!("{dir}/{name}");
        for (n, line) in text(fs, problems, &path).unwrap_or_default().lines().enumerate() {
            if line.trim().starts_with("HWADDR=") {
                f.nic_pinning.push(format!("{path}:{} {}", n + 1, line.trim()));
            }
        }
    }
    let lvm = "/etc/lvm/lvm.conf";
    for (n, line) in text(fs, problems, lvm).unwrap_or_default().lines().enumerate() {
        let l = line.trim();
        let key = l.split(|c: char| c.is_whitespace() || c == '=').next().unwrap_or("");
        let names_device = ["/dev/sd", "/dev/hd", "/dev/xvd", "/dev/vd", "/dev/cciss", "sd[", "hd[", "xvd[", "vd["]
            .iter()
            .any(|d| l.contains(d));
        if (key == "filter" || key == "global_filter") && names_device {
            f.lvm_filters.push(format!("{lvm}:{} {l}", n + 1));
        }
    }
}

const GRUB_CONFIGS: &[&str] = &[
    "boot/grub/menu.lst",
    "boot/grub/grub.conf",
    "boot/grub/grub.cfg",
    "boot/grub2/grub.cfg",
    "boot/grub/device.map",
    "boot/grub2/device.map",
    "boot/extlinux/extlinux.conf",
    "boot/syslinux/syslinux.cfg",
];

/// The facts of `fs`, or `None` when it looks like neither a root nor a `/boot`.
pub fn facts(fs: &Fs, problems: &mut Vec<String>) -> Option<LinuxFacts> {
    let is_root = fs.exists("/etc/fstab") || fs.exists("/etc/os-release");
    let boot = if is_root { "/boot" } else { "" };
    let mut f = LinuxFacts { is_root, ..LinuxFacts::default() };
    let boot_names = fs.list(if is_root { "/boot" } else { "/" }).unwrap_or_else(|e| {
        problems.push(e.to_string());
        Vec::new()
    });
    let has_kernel = boot_names.iter().any(|n| kernel_version(n).is_some());
    if !is_root && !has_kernel && !fs.exists("/grub") && !fs.exists("/grub2") {
        return None;
    }
    if is_root {
        f.distro = text(fs, problems, "/etc/os-release").and_then(|t| os_release_name(&t)).or_else(|| {
            ["/etc/redhat-release", "/etc/SuSE-release", "/etc/debian_version"]
                .iter()
                .find_map(|p| text(fs, problems, p).and_then(|t| t.lines().next().map(|l| l.trim().to_string())))
        });
        for (file, field) in [("/etc/fstab", 0usize), ("/etc/crypttab", 1)] {
            if let Some(t) = text(fs, problems, file) {
                scan_table(file, &t, field, &mut f.device_names);
            }
        }
        if let Some(t) = text(fs, problems, "/etc/default/grub") {
            scan_words("/etc/default/grub", &t, &mut f);
        }
        if let Some(t) = text(fs, problems, "/etc/inittab") {
            for (i, line) in t.lines().enumerate() {
                let l = line.trim_start();
                if !l.starts_with('#') && l.contains("getty") {
                    for c in ["xvc0", "hvc0"] {
                        if l.split_whitespace().any(|w| w == c) {
                            f.pv_consoles.push(DeviceRef {
                                file: "/etc/inittab".into(),
                                line: i + 1,
                                device: c.into(),
                            });
                        }
                    }
                }
            }
        }
        vmware_net_lvm(fs, problems, &mut f);
        for v in fs.list("/lib/modules").unwrap_or_default().into_iter().take(MAX_KERNELS) {
            let path = format!("/lib/modules/{v}/modules.builtin");
            let built = text(fs, problems, &path).map(|t| builtin_drivers(&t)).unwrap_or_default();
            let dep = format!("/lib/modules/{v}/modules.dep");
            if text(fs, problems, &dep)
                .is_some_and(|t| t.contains("xen-platform-pci") || t.contains("xen_platform_pci"))
            {
                f.pv_on_hvm.insert(v.clone());
            }
            f.modules_builtin.insert(v, built);
        }
    }
    for rel in GRUB_CONFIGS {
        let path = if is_root { format!("/{rel}") } else { format!("/{}", rel.trim_start_matches("boot/")) };
        if let Some(t) = text(fs, problems, &path) {
            f.bootloader_configs.push(path.clone());
            if t.lines().any(|l| l.trim() == "blscfg") {
                f.blscfg.push(path.clone());
            }
            scan_words(&path, &t, &mut f);
        }
    }
    for name in boot_names.iter().filter(|n| kernel_version(n).is_some()).take(MAX_KERNELS) {
        let version = kernel_version(name).unwrap_or_default().to_string();
        let mut k = Kernel { path: format!("{boot}/{name}"), version: version.clone(), ..Kernel::default() };
        let config_path = format!("{boot}/config-{version}");
        if let Some(c) = text(fs, problems, &config_path) {
            let (xen_only, builtin) = read_config(&c);
            k.xen_only = xen_only;
            k.builtin = builtin;
            k.config = Some(config_path);
        } else {
            k.xen_only = version.ends_with("xen");
        }
        let candidates = [
            format!("initramfs-{version}.img"),
            format!("initrd-{version}.img"),
            format!("initrd.img-{version}"),
            format!("initrd-{version}"),
            format!("initrd-{version}.gz"),
        ];
        if let Some(img) = candidates.iter().find(|c| boot_names.contains(c)) {
            let path = format!("{boot}/{img}");
            let wanted: Vec<&str> = BOOT_DRIVERS.iter().map(|(m, _)| *m).collect();
            match fs.open_stream(&path, MAX_INITRAMFS).and_then(|r| cpio::scan_until(r, &wanted)) {
                Ok(i) => k.initramfs_facts = Some(i),
                Err(e) => problems.push(format!("{path}: {e}")),
            }
            k.initramfs = Some(path);
        }
        f.kernels.push(k);
    }
    Some(f)
}

/// `2.6.18-398.el5xen` → (2, 6, 18); `None` when the version does not start with numbers.
pub fn version_triple(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>());
    Some((it.next()?.ok()?, it.next()?.ok()?, it.next().and_then(Result::ok).unwrap_or(0)))
}

/// A text file, or `None` (absent, or unreadable: then a line in `problems`).
fn text(fs: &Fs, problems: &mut Vec<String>, path: &str) -> Option<String> {
    fs.read_text(path).unwrap_or_else(|e| {
        problems.push(e.to_string());
        None
    })
}

/// `vmlinuz-5.14.0-70.el9.x86_64` → `5.14.0-70.el9.x86_64` (also `vmlinux-`, `kernel-`).
pub fn kernel_version(name: &str) -> Option<&str> {
    ["vmlinuz-", "vmlinux-"].iter().find_map(|p| name.strip_prefix(p)).filter(|v| !v.is_empty())
}

fn os_release_name(t: &str) -> Option<String> {
    t.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
        .filter(|v| !v.is_empty())
}

/// Whether a kernel config is Xen-PV-only, and which [`BOOT_DRIVERS`] it builds in.
pub fn read_config(c: &str) -> (bool, BTreeSet<String>) {
    let mut xen_only = false;
    let mut builtin = BTreeSet::new();
    for line in c.lines() {
        let Some((key, val)) = line.trim().split_once('=') else { continue };
        if (key == "CONFIG_X86_XEN" || key == "CONFIG_X86_64_XEN") && val == "y" {
            xen_only = true;
        }
        if val == "y" {
            if let Some((m, _)) = BOOT_DRIVERS.iter().find(|(_, k)| *k == key) {
                builtin.insert((*m).to_string());
            }
        }
    }
    (xen_only, builtin)
}

/// The [`BOOT_DRIVERS`] listed in a `modules.builtin`.
pub fn builtin_drivers(t: &str) -> BTreeSet<String> {
    t.lines()
        .filter_map(|l| cpio::module_name(l.trim().as_bytes()))
        .filter(|m| BOOT_DRIVERS.iter().any(|(d, _)| d == m))
        .collect()
}

/// A kernel device name: `/dev/sda1`, `/dev/hdb`, `/dev/xvda2`, `/dev/vda`, `/dev/cciss/c0d0p1`.
pub fn is_kernel_device(s: &str) -> bool {
    if s.starts_with("/dev/cciss/") {
        return true;
    }
    let Some(rest) = s.strip_prefix("/dev/") else { return false };
    let rest = ["xvd", "sd", "hd", "vd"].iter().find_map(|p| rest.strip_prefix(p));
    let Some(rest) = rest else { return false };
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    letters > 0 && rest[letters..].bytes().all(|b| b.is_ascii_digit())
}

fn scan_table(file: &str, t: &str, field: usize, out: &mut Vec<DeviceRef>) {
    for (i, line) in t.lines().enumerate() {
        let l = line.trim();
        if l.starts_with('#') {
            continue;
        }
        if let Some(dev) = l.split_whitespace().nth(field).filter(|d| is_kernel_device(d)) {
            out.push(DeviceRef { file: file.into(), line: i + 1, device: dev.into() });
        }
    }
}

/// `root=`, `resume=`, `console=` and `device.map` / grub-legacy device names in a bootloader
/// config or `/etc/default/grub`.
fn scan_words(file: &str, t: &str, f: &mut LinuxFacts) {
    for (i, line) in t.lines().enumerate() {
        let l = line.trim();
        if l.starts_with('#') {
            continue;
        }
        for w in l.split(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            let dev = w.strip_prefix("root=").or_else(|| w.strip_prefix("resume=")).unwrap_or(w);
            if is_kernel_device(dev) {
                f.device_names.push(DeviceRef { file: file.into(), line: i + 1, device: dev.into() });
            }
            if let Some(c) = w.strip_prefix("console=") {
                let c = c.split(',').next().unwrap_or("");
                if c == "xvc0" || c == "hvc0" {
                    f.pv_consoles.push(DeviceRef { file: file.into(), line: i + 1, device: c.into() });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        for d in ["/dev/sda1", "/dev/hda", "/dev/xvdb2", "/dev/vdaa", "/dev/cciss/c0d0p1"] {
            assert!(is_kernel_device(d), "{d}");
        }
        for d in ["UUID=abc", "/dev/mapper/vg-root", "/dev/sd", "/dev/sda1x", "LABEL=/", "/dev/md0", "/dev/shm"] {
            assert!(!is_kernel_device(d), "{d}");
        }
    }

    #[test]
    fn config_and_builtin() {
        let (xen, b) = read_config("# c\nCONFIG_X86_64_XEN=y\nCONFIG_ATA_PIIX=m\nCONFIG_XEN_BLKDEV_FRONTEND=y\n");
        assert!(xen);
        assert_eq!(b.into_iter().collect::<Vec<_>>(), vec!["xen_blkfront"]);
        let b = builtin_drivers("kernel/drivers/ata/ata_piix.ko\nkernel/fs/ext4/ext4.ko\n");
        assert_eq!(b.into_iter().collect::<Vec<_>>(), vec!["ata_piix"]);
        assert_eq!(kernel_version("vmlinuz-2.6.18-398.el5xen"), Some("2.6.18-398.el5xen"));
        assert_eq!(kernel_version("vmlinuz"), None);
        assert_eq!(version_triple("2.6.18-398.el5xen"), Some((2, 6, 18)));
        assert_eq!(version_triple("6.1.0-13-amd64"), Some((6, 1, 0)));
        assert_eq!(version_triple("3.10"), Some((3, 10, 0)));
        assert_eq!(version_triple("rescue"), None);
    }

    #[test]
    fn words_in_grub_and_default_grub() {
        let mut f = LinuxFacts::default();
        scan_words(
            "/boot/grub/menu.lst",
            "# root=/dev/sdz\n kernel /vmlinuz ro root=/dev/hda2 console=xvc0 resume=/dev/sdb1\n",
            &mut f,
        );
        scan_words("/etc/default/grub", "GRUB_CMDLINE_LINUX=\"root=/dev/sda1 console=hvc0,115200\"\n", &mut f);
        let devs: Vec<_> = f.device_names.iter().map(|d| (d.line, d.device.as_str())).collect();
        assert_eq!(devs, vec![(2, "/dev/hda2"), (2, "/dev/sdb1"), (1, "/dev/sda1")]);
        let cons: Vec<_> = f.pv_consoles.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(cons, vec!["xvc0", "hvc0"]);
    }
}
