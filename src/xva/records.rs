//! The VM description an XVA carries, and its `ova.xml`.
//!
//! [`VmSpec`] is plain data: what the guest is (name, memory, vCPUs, boot mode, platform flags,
//! disks, CD drive, network interfaces). [`ova_xml`] turns it into the XML-RPC value tree xapi
//! imports, with **every field any xapi version requires** (the union of the columns of
//! `xva-format-and-xapi-import.md` §4), so one file imports on XenServer 6.x as well as on
//! XCP-ng 8.3.
//!
//! Object ids: the VM is `Ref:0`, the SR `Ref:1`; disk `i` gets the VDI id `Ref:d{i:03}` so that
//! xapi's bytewise order of ids (the order it reads disk data in) is the disks' order.

use crate::xmlrpc::Value;

/// The largest number of disks one VM can have (userdevice 0–254, less the CD's slot).
pub const MAX_DISKS: usize = 254;

/// How the guest boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    /// Hardware virtualisation with emulated firmware.
    Hvm {
        /// BIOS or UEFI.
        firmware: Firmware,
        /// UEFI Secure Boot (ignored with BIOS).
        secure_boot: bool,
        /// Boot order: `c` disk, `d` CD, `n` network (xapi's `HVM_boot_params.order`).
        order: String,
    },
    /// Paravirtualised: a bootloader inside the guest (pygrub) or a kernel from the host.
    Pv {
        /// `pygrub`, or empty for direct kernel boot.
        bootloader: String,
        /// Path of the kernel on the host (direct boot).
        kernel: String,
        /// Path of the initial ramdisk on the host (direct boot).
        ramdisk: String,
        /// Kernel command line.
        args: String,
    },
}

impl Boot {
    /// HVM with BIOS, booting from disk then CD.
    pub fn hvm_bios() -> Boot {
        Boot::Hvm { firmware: Firmware::Bios, secure_boot: false, order: "cd".into() }
    }

    /// PV through pygrub.
    pub fn pv_pygrub(args: impl Into<String>) -> Boot {
        Boot::Pv { bootloader: "pygrub".into(), kernel: String::new(), ramdisk: String::new(), args: args.into() }
    }

    /// True for HVM.
    pub fn is_hvm(&self) -> bool {
        matches!(self, Boot::Hvm { .. })
    }
}

/// HVM firmware: shared with the guest model (see [`crate::vm`]).
pub use crate::vm::Firmware;

/// Platform flags (`VM.platform`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// ACPI tables.
    pub acpi: bool,
    /// Local APIC.
    pub apic: bool,
    /// PAE paging.
    pub pae: bool,
    /// No-execute bit.
    pub nx: bool,
    /// Hyper-V enlightenments (Windows guests).
    pub viridian: bool,
    /// RTC offset from UTC in seconds (`timeoffset`); `None` leaves it out.
    pub timeoffset: Option<i64>,
    /// Further `platform` keys, written as given.
    pub extra: Vec<(String, String)>,
}

impl Default for Platform {
    fn default() -> Platform {
        Platform {
            acpi: true,
            apic: true,
            pae: true,
            nx: false,
            viridian: false,
            timeoffset: Some(0),
            extra: Vec::new(),
        }
    }
}

/// Memory sizes in bytes; must satisfy `static_min ≤ dynamic_min ≤ dynamic_max ≤ static_max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// `memory_static_min`.
    pub static_min: u64,
    /// `memory_dynamic_min`.
    pub dynamic_min: u64,
    /// `memory_dynamic_max` (also the target).
    pub dynamic_max: u64,
    /// `memory_static_max`.
    pub static_max: u64,
}

impl Memory {
    /// A fixed memory size: all four values equal.
    pub fn fixed(bytes: u64) -> Memory {
        Memory { static_min: bytes, dynamic_min: bytes, dynamic_max: bytes, static_max: bytes }
    }
}

/// One disk of the VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    /// The VDI's name.
    pub name: String,
    /// Exact size in bytes.
    pub virtual_size: u64,
    /// The VBD's position (`userdevice`), unique within the VM.
    pub userdevice: u32,
    /// Boot disk.
    pub bootable: bool,
    /// Attach read-only.
    pub read_only: bool,
}

/// One network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VifSpec {
    /// The VIF's device number (0–15).
    pub device: u32,
    /// MAC address `aa:bb:cc:dd:ee:ff`, or `None` for a generated one. xapi keeps a given MAC
    /// only when importing with `restore=true`.
    pub mac: Option<String>,
    /// Network to attach to, by name (xapi maps by `name_label`, then by bridge).
    pub network: String,
    /// Bridge to match when no network of that name exists.
    pub bridge: String,
}

/// The network most hosts have: the management network's default name.
pub const DEFAULT_NETWORK: &str = "Pool-wide network associated with eth0";
/// Its bridge.
pub const DEFAULT_BRIDGE: &str = "xenbr0";

/// Everything the XVA says about the VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSpec {
    /// `name_label`.
    pub name: String,
    /// `name_description`.
    pub description: String,
    /// Memory sizes.
    pub memory: Memory,
    /// `VCPUs_max`.
    pub vcpus_max: u32,
    /// `VCPUs_at_startup`.
    pub vcpus_at_startup: u32,
    /// Boot mode.
    pub boot: Boot,
    /// Platform flags.
    pub platform: Platform,
    /// Disks, in the order their data is written.
    pub disks: Vec<DiskSpec>,
    /// An empty CD drive at userdevice 3.
    pub cdrom: bool,
    /// Network interfaces.
    pub vifs: Vec<VifSpec>,
}

/// A VM description that cannot be imported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid VM description: {0}")]
pub struct SpecError(pub String);

/// The userdevice of the empty CD drive.
pub const CD_USERDEVICE: u32 = 3;

impl VmSpec {
    /// Userdevices for `n` disks: 0, 1, 2, then 4, 5, … when slot 3 holds the CD.
    pub fn userdevices(n: usize, cdrom: bool) -> Vec<u32> {
        (0u32..).filter(|&u| !(cdrom && u == CD_USERDEVICE)).take(n).collect()
    }

    /// Checks what xapi would refuse at import or at VM.start.
    pub fn check(&self) -> Result<(), SpecError> {
        let e = |m: String| Err(SpecError(m));
        let m = &self.memory;
        if m.static_max == 0 {
            return e("memory must be larger than 0".into());
        }
        if !(m.static_min <= m.dynamic_min && m.dynamic_min <= m.dynamic_max && m.dynamic_max <= m.static_max) {
            return e(format!(
                "memory constraints violated: need static_min ({}) <= dynamic_min ({}) <= dynamic_max ({}) <= static_max ({})",
                m.static_min, m.dynamic_min, m.dynamic_max, m.static_max
            ));
        }
        if self.vcpus_max == 0 || self.vcpus_at_startup == 0 || self.vcpus_at_startup > self.vcpus_max {
            return e(format!(
                "need 1 <= vCPUs at startup ({}) <= vCPUs max ({})",
                self.vcpus_at_startup, self.vcpus_max
            ));
        }
        if self.disks.len() > MAX_DISKS {
            return e(format!("{} disks; a VM can have at most {MAX_DISKS}", self.disks.len()));
        }
        let mut used: Vec<u32> = self.disks.iter().map(|d| d.userdevice).collect();
        if self.cdrom {
            used.push(CD_USERDEVICE);
        }
        for (i, u) in used.iter().enumerate() {
            if *u > 254 {
                return e(format!("userdevice {u} is out of range 0..254"));
            }
            if used[..i].contains(u) {
                return e(format!("userdevice {u} is used twice"));
            }
        }
        for d in &self.disks {
            if d.virtual_size == 0 {
                return e(format!("disk {:?} has size 0", d.name));
            }
        }
        if self.vifs.len() > 16 {
            return e(format!("{} network interfaces; at most 16", self.vifs.len()));
        }
        for v in &self.vifs {
            if let Some(mac) = &v.mac {
                if !is_mac(mac) {
                    return e(format!("{mac:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
                }
            }
        }
        Ok(())
    }
}

/// True for `aa:bb:cc:dd:ee:ff` (hex digits, any case).
pub fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The VDI id of disk `i`; ids sort bytewise in disk order.
pub fn vdi_id(i: usize) -> String {
    format!("Ref:d{i:03}")
}

fn fresh_uuid() -> Value {
    Value::str(uuid::Uuid::new_v4().to_string())
}

const NULL: &str = "OpaqueRef:NULL";

/// `ova.xml` for `vm`: the `version` header and the VM, VBD, VDI, SR, VIF and network objects.
pub fn ova_xml(vm: &VmSpec) -> Result<String, SpecError> {
    vm.check()?;
    Ok(ova_value(vm).to_xml())
}

fn obj(class: &str, id: &str, snapshot: Vec<(&str, Value)>) -> Value {
    Value::record([("class", Value::str(class)), ("id", Value::str(id)), ("snapshot", Value::record(snapshot))])
}

fn ova_value(vm: &VmSpec) -> Value {
    let version = Value::record([
        ("hostname", Value::str("localhost")),
        ("date", Value::str("2024-01-01")),
        ("product_version", Value::str("")),
        ("product_brand", Value::str("")),
        ("build_number", Value::str("")),
        // (1, 1): imports on every xapi since 2009 (the host's version must be >= this).
        ("xapi_major", Value::Int(1)),
        ("xapi_minor", Value::Int(1)),
        ("export_vsn", Value::Int(2)),
    ]);
    let vm_id = "Ref:0";
    let sr_id = "Ref:1";
    let vbd_ids: Vec<String> = (0..vm.disks.len()).map(|i| format!("Ref:vbd{i:03}")).collect();
    let cd_id = "Ref:cd";
    let vif_ids: Vec<String> = (0..vm.vifs.len()).map(|i| format!("Ref:vif{i:02}")).collect();
    let net_ids: Vec<String> = (0..vm.vifs.len()).map(|i| format!("Ref:net{i:02}")).collect();

    let mut all_vbds = vbd_ids.clone();
    if vm.cdrom {
        all_vbds.push(cd_id.to_string());
    }
    let mut objects = vec![obj("VM", vm_id, vm_snapshot(vm, &all_vbds, &vif_ids))];

    for (i, d) in vm.disks.iter().enumerate() {
        objects.push(obj(
            "VBD",
            &vbd_ids[i],
            vbd_snapshot(vm_id, &vdi_id(i), d.userdevice, d.bootable, !d.read_only, false),
        ));
    }
    if vm.cdrom {
        objects.push(obj("VBD", cd_id, vbd_snapshot(vm_id, NULL, CD_USERDEVICE, false, false, true)));
    }
    for (i, d) in vm.disks.iter().enumerate() {
        objects.push(obj("VDI", &vdi_id(i), vdi_snapshot(sr_id, &vbd_ids[i], d)));
    }
    for (i, v) in vm.vifs.iter().enumerate() {
        objects.push(obj("VIF", &vif_ids[i], vif_snapshot(vm_id, &net_ids[i], v)));
        objects.push(obj(
            "network",
            &net_ids[i],
            vec![
                ("uuid", fresh_uuid()),
                ("name_label", Value::str(&v.network)),
                ("name_description", Value::str("")),
                ("VIFs", Value::refs([vif_ids[i].clone()])),
                ("PIFs", Value::refs(Vec::<String>::new())),
                ("bridge", Value::str(&v.bridge)),
                ("other_config", Value::empty_map()),
            ],
        ));
    }
    objects.push(obj(
        "SR",
        sr_id,
        vec![
            ("uuid", fresh_uuid()),
            ("name_label", Value::str("xva source")),
            ("name_description", Value::str("")),
            ("VDIs", Value::refs((0..vm.disks.len()).map(vdi_id))),
            ("PBDs", Value::refs(Vec::<String>::new())),
            ("virtual_allocation", Value::Int(0)),
            ("physical_utilisation", Value::Int(0)),
            ("physical_size", Value::Int(0)),
            ("type", Value::str("user")),
            ("content_type", Value::str("user")),
            ("shared", Value::Bool(false)),
            ("other_config", Value::empty_map()),
        ],
    ));
    Value::record([("version", version), ("objects", Value::Array(objects))])
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn vm_snapshot(vm: &VmSpec, vbds: &[String], vifs: &[String]) -> Vec<(&'static str, Value)> {
    let (pv_bootloader, pv_kernel, pv_ramdisk, pv_args, hvm_policy, hvm_params, domain_type) = match &vm.boot {
        Boot::Hvm { firmware, order, .. } => (
            "",
            "",
            "",
            "",
            "BIOS order",
            Value::string_map([("order", order.as_str()), ("firmware", firmware.as_str())]),
            "hvm",
        ),
        Boot::Pv { bootloader, kernel, ramdisk, args } => {
            (bootloader.as_str(), kernel.as_str(), ramdisk.as_str(), args.as_str(), "", Value::empty_map(), "pv")
        }
    };
    let p = &vm.platform;
    let flag = |b: bool| if b { "true" } else { "false" };
    let mut platform: Vec<(String, String)> = vec![
        ("acpi".into(), flag(p.acpi).into()),
        ("apic".into(), flag(p.apic).into()),
        ("pae".into(), flag(p.pae).into()),
        ("nx".into(), flag(p.nx).into()),
        ("viridian".into(), flag(p.viridian).into()),
    ];
    if let Some(t) = p.timeoffset {
        platform.push(("timeoffset".into(), t.to_string()));
    }
    if let Boot::Hvm { firmware: Firmware::Uefi, secure_boot, .. } = &vm.boot {
        platform.push(("secureboot".into(), flag(*secure_boot).into()));
    }
    for (k, v) in &p.extra {
        if let Some(slot) = platform.iter_mut().find(|(pk, _)| pk == k) {
            slot.1 = v.clone();
        } else {
            platform.push((k.clone(), v.clone()));
        }
    }
    let m = vm.memory;
    vec![
        ("uuid", fresh_uuid()),
        ("name_label", Value::str(&vm.name)),
        ("name_description", Value::str(&vm.description)),
        ("power_state", Value::str("Halted")),
        ("user_version", Value::Int(1)),
        ("is_a_template", Value::Bool(false)),
        ("suspend_VDI", Value::str(NULL)),
        ("suspend_SR", Value::str(NULL)),
        ("resident_on", Value::str(NULL)),
        ("affinity", Value::str(NULL)),
        ("memory_static_max", int(m.static_max)),
        ("memory_dynamic_max", int(m.dynamic_max)),
        ("memory_dynamic_min", int(m.dynamic_min)),
        ("memory_static_min", int(m.static_min)),
        ("memory_target", int(m.dynamic_max)),
        ("VCPUs_params", Value::empty_map()),
        ("VCPUs_max", Value::Int(vm.vcpus_max.into())),
        ("VCPUs_at_startup", Value::Int(vm.vcpus_at_startup.into())),
        ("actions_after_shutdown", Value::str("destroy")),
        ("actions_after_reboot", Value::str("restart")),
        ("actions_after_crash", Value::str("restart")),
        ("VBDs", Value::refs(vbds.iter().cloned())),
        ("VIFs", Value::refs(vifs.iter().cloned())),
        ("PV_bootloader", Value::str(pv_bootloader)),
        ("PV_kernel", Value::str(pv_kernel)),
        ("PV_ramdisk", Value::str(pv_ramdisk)),
        ("PV_args", Value::str(pv_args)),
        ("PV_bootloader_args", Value::str("")),
        ("PV_legacy_args", Value::str("")),
        ("HVM_boot_policy", Value::str(hvm_policy)),
        ("HVM_boot_params", hvm_params),
        ("HVM_shadow_multiplier", Value::Double(1.0)),
        ("platform", Value::string_map(platform)),
        ("PCI_bus", Value::str("")),
        ("other_config", Value::empty_map()),
        ("domid", Value::Int(-1)),
        ("domarch", Value::str("")),
        ("last_boot_CPU_flags", Value::empty_map()),
        ("is_control_domain", Value::Bool(false)),
        ("metrics", Value::str(NULL)),
        ("guest_metrics", Value::str(NULL)),
        ("recommendations", Value::str("")),
        ("tags", Value::refs(Vec::<String>::new())),
        // Present so that xapi keeps the memory settings (absent = "pre-DMC" reset).
        ("parent", Value::str(NULL)),
        ("has_vendor_device", Value::Bool(false)),
        // "0:0" asks xapi for a fresh VM generation id (Windows uses it); none for PV.
        ("generation_id", Value::str(if vm.boot.is_hvm() { "0:0" } else { "" })),
        ("domain_type", Value::str(domain_type)),
        ("NVRAM", Value::empty_map()),
    ]
}

fn vbd_snapshot(
    vm: &str,
    vdi: &str,
    userdevice: u32,
    bootable: bool,
    rw: bool,
    cd: bool,
) -> Vec<(&'static str, Value)> {
    vec![
        ("uuid", fresh_uuid()),
        ("VM", Value::str(vm)),
        ("VDI", Value::str(vdi)),
        ("device", Value::str("")),
        ("userdevice", Value::str(userdevice.to_string())),
        ("bootable", Value::Bool(bootable)),
        ("mode", Value::str(if rw { "RW" } else { "RO" })),
        ("type", Value::str(if cd { "CD" } else { "Disk" })),
        ("unpluggable", Value::Bool(cd)),
        ("storage_lock", Value::Bool(false)),
        ("empty", Value::Bool(cd)),
        ("other_config", if cd { Value::empty_map() } else { Value::string_map([("owner", "true")]) }),
    ]
    .into_iter()
    .chain(device_state())
    .collect()
}

fn vdi_snapshot(sr: &str, vbd: &str, d: &DiskSpec) -> Vec<(&'static str, Value)> {
    vec![
        ("uuid", fresh_uuid()),
        ("name_label", Value::str(&d.name)),
        ("name_description", Value::str("")),
        ("SR", Value::str(sr)),
        ("VBDs", Value::refs([vbd.to_string()])),
        ("virtual_size", int(d.virtual_size)),
        ("physical_utilisation", int(d.virtual_size)),
        ("type", Value::str(if d.bootable { "system" } else { "user" })),
        ("sharable", Value::Bool(false)),
        ("read_only", Value::Bool(d.read_only)),
        ("other_config", Value::empty_map()),
        ("storage_lock", Value::Bool(false)),
        ("managed", Value::Bool(true)),
        ("missing", Value::Bool(false)),
        ("parent", Value::str(NULL)),
        ("xenstore_data", Value::empty_map()),
        ("sm_config", Value::empty_map()),
        ("tags", Value::refs(Vec::<String>::new())),
    ]
}

fn vif_snapshot(vm: &str, net: &str, v: &VifSpec) -> Vec<(&'static str, Value)> {
    vec![
        ("uuid", fresh_uuid()),
        ("device", Value::str(v.device.to_string())),
        ("network", Value::str(net)),
        ("VM", Value::str(vm)),
        ("MAC", Value::str(v.mac.clone().unwrap_or_default().to_ascii_lowercase())),
        ("MAC_autogenerated", Value::Bool(v.mac.is_none())),
        ("MTU", Value::Int(1500)),
        ("other_config", Value::empty_map()),
    ]
    .into_iter()
    .chain(device_state())
    .collect()
}

/// The runtime fields VBDs and VIFs share: detached, no status, no QoS, no metrics.
fn device_state() -> [(&'static str, Value); 8] {
    [
        ("currently_attached", Value::Bool(false)),
        ("status_code", Value::Int(0)),
        ("status_detail", Value::str("")),
        ("runtime_properties", Value::empty_map()),
        ("qos_algorithm_type", Value::str("")),
        ("qos_algorithm_params", Value::empty_map()),
        ("qos_supported_algorithms", Value::refs(Vec::<String>::new())),
        ("metrics", Value::str(NULL)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> VmSpec {
        VmSpec {
            name: "web01 & co".into(),
            description: "converted".into(),
            memory: Memory::fixed(1 << 30),
            vcpus_max: 2,
            vcpus_at_startup: 2,
            boot: Boot::hvm_bios(),
            platform: Platform { nx: false, viridian: true, ..Default::default() },
            disks: VmSpec::userdevices(5, true)
                .into_iter()
                .enumerate()
                .map(|(i, u)| DiskSpec {
                    name: format!("d{i}"),
                    virtual_size: 1 + i as u64,
                    userdevice: u,
                    bootable: i == 0,
                    read_only: false,
                })
                .collect(),
            cdrom: true,
            vifs: vec![VifSpec {
                device: 0,
                mac: Some("00:16:3E:aa:bb:cc".into()),
                network: DEFAULT_NETWORK.into(),
                bridge: DEFAULT_BRIDGE.into(),
            }],
        }
    }

    fn objects(v: &Value) -> Vec<&Value> {
        match v.get("objects") {
            Some(Value::Array(a)) => a.iter().collect(),
            _ => panic!("no objects"),
        }
    }

    fn find<'a>(v: &'a Value, class: &str) -> Vec<&'a Value> {
        objects(v)
            .into_iter()
            .filter(|o| o.get("class").and_then(Value::as_str) == Some(class))
            .map(|o| o.get("snapshot").unwrap())
            .collect()
    }

    #[test]
    fn userdevices_skip_the_cd_slot() {
        assert_eq!(VmSpec::userdevices(5, true), vec![0, 1, 2, 4, 5]);
        assert_eq!(VmSpec::userdevices(4, false), vec![0, 1, 2, 3]);
    }

    #[test]
    fn flags_are_written_not_forgotten() {
        let v = ova_value(&sample());
        let vm = find(&v, "VM")[0];
        let platform = vm.get("platform").unwrap();
        assert_eq!(platform.get("nx").unwrap().as_str(), Some("false"));
        assert_eq!(platform.get("viridian").unwrap().as_str(), Some("true"));
        assert_eq!(platform.get("acpi").unwrap().as_str(), Some("true"));
        assert_eq!(vm.get("HVM_boot_policy").unwrap().as_str(), Some("BIOS order"));
        assert_eq!(vm.get("HVM_boot_params").unwrap().get("firmware").unwrap().as_str(), Some("bios"));
        assert_eq!(
            vm.get("VBDs"),
            Some(&Value::refs(["Ref:vbd000", "Ref:vbd001", "Ref:vbd002", "Ref:vbd003", "Ref:vbd004", "Ref:cd"]))
        );
    }

    #[test]
    fn disks_vbds_and_cd() {
        let v = ova_value(&sample());
        let vdis = find(&v, "VDI");
        assert_eq!(vdis.len(), 5);
        assert_eq!(vdis[4].get("virtual_size"), Some(&Value::Int(5)));
        let vbds = find(&v, "VBD");
        let cd = vbds.iter().find(|b| b.get("type").unwrap().as_str() == Some("CD")).unwrap();
        assert_eq!(cd.get("VDI").unwrap().as_str(), Some(NULL));
        assert_eq!(cd.get("mode").unwrap().as_str(), Some("RO"));
        assert_eq!(cd.get("userdevice").unwrap().as_str(), Some("3"));
        assert_eq!(cd.get("empty"), Some(&Value::Bool(true)));
        let boot = vbds.iter().find(|b| b.get("userdevice").unwrap().as_str() == Some("0")).unwrap();
        assert_eq!(boot.get("bootable"), Some(&Value::Bool(true)));
        // VDI ids sort bytewise in disk order even past 10 disks.
        let ids: Vec<String> = (0..12).map(vdi_id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        let vif = find(&v, "VIF")[0];
        assert_eq!(vif.get("MAC").unwrap().as_str(), Some("00:16:3e:aa:bb:cc"));
        assert_eq!(vif.get("MAC_autogenerated"), Some(&Value::Bool(false)));
    }

    #[test]
    fn pv_and_uefi() {
        let mut vm = sample();
        vm.boot = Boot::pv_pygrub("console=hvc0");
        let v = ova_value(&vm);
        let s = find(&v, "VM")[0];
        assert_eq!(s.get("PV_bootloader").unwrap().as_str(), Some("pygrub"));
        assert_eq!(s.get("PV_args").unwrap().as_str(), Some("console=hvc0"));
        assert_eq!(s.get("HVM_boot_policy").unwrap().as_str(), Some(""));
        assert_eq!(s.get("domain_type").unwrap().as_str(), Some("pv"));
        vm.boot = Boot::Hvm { firmware: Firmware::Uefi, secure_boot: true, order: "c".into() };
        let v = ova_value(&vm);
        let s = find(&v, "VM")[0];
        assert_eq!(s.get("HVM_boot_params").unwrap().get("firmware").unwrap().as_str(), Some("uefi"));
        assert_eq!(s.get("platform").unwrap().get("secureboot").unwrap().as_str(), Some("true"));
    }

    #[test]
    fn checks_refuse_what_xapi_would() {
        let ok = sample();
        assert!(ok.check().is_ok());
        let mut vm = ok.clone();
        vm.memory.dynamic_min = vm.memory.static_max + 1;
        assert!(vm.check().unwrap_err().0.contains("memory constraints"));
        let mut vm = ok.clone();
        vm.vcpus_at_startup = 3;
        assert!(vm.check().is_err());
        let mut vm = ok.clone();
        vm.disks[1].userdevice = 3;
        assert!(vm.check().unwrap_err().0.contains("used twice"));
        let mut vm = ok.clone();
        vm.vifs[0].mac = Some("nope".into());
        assert!(vm.check().is_err());
        let mut vm = ok;
        vm.disks[0].virtual_size = 0;
        assert!(vm.check().unwrap_err().0.contains("size 0"));
    }

    #[test]
    fn xml_has_no_whitespace_between_scalars_and_escapes_names() {
        let xml = ova_xml(&sample()).unwrap();
        assert!(xml.starts_with("<value><struct><member><name>version</name>"));
        assert!(xml.contains("<value>web01 &amp; co</value>"));
        assert!(!xml.contains("> <"));
    }
}
