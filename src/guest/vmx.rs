//! VMware `.vmx` (and `.vmsd`) files.
//!
//! Grammar (after `libguestfs/virt-v2v:input/VMX.ml` and `libvirt/libvirt:src/vmx/vmx.c`):
//! one `key = "value"` per line (unquoted values tolerated), `#` comments, CR-LF tolerated;
//! keys are case-insensitive and dot-namespaced (`scsi0:0.fileName`); `|XX` is the byte 0xXX;
//! `.encoding` names the charset of the whole file; `NS.present = "FALSE"` disables `NS` and
//! everything under it. Unparsable lines are skipped with a note; a duplicate key keeps the
//! first value.
//!
//! Disks are ordered like virt-v2v: SCSI, NVMe, SATA, IDE, each by (controller, unit); SCSI
//! unit 7 is the controller itself and is skipped; CD images and host CD drives become CD
//! drives.

use std::collections::BTreeMap;

use encoding_rs::Encoding;

use super::error::{GuestError, Result};
use super::model::{
    Boot, Cdrom, Controller, Disk, DiskSource, Firmware, Guest, Memory, Nic, OsFamily, ScsiModel, Severity, Snapshot,
    SourceKind, Vcpus, MIB,
};
use super::osmap::vmware_os;

/// A parsed key/value file: lower-cased key → (value, line).
#[derive(Clone, Debug, Default)]
pub struct Vmx {
    /// Values by lower-case key.
    pub entries: BTreeMap<String, (String, usize)>,
    /// Remarks made while reading (skipped lines, duplicates, charset).
    pub remarks: Vec<String>,
}

impl Vmx {
    /// The value of `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(&key.to_ascii_lowercase()).map(|(v, _)| v.as_str())
    }

    /// A boolean (`TRUE`/`FALSE`, case-insensitive; `1`/`0`, `yes`/`no`).
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)?.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        }
    }

    /// Whether namespace `ns` (e.g. `scsi0:1`) and every namespace above it (`scsi0`) are not
    /// disabled with `present = "FALSE"`.
    pub fn present(&self, ns: &str) -> bool {
        let mut cur = ns.to_string();
        loop {
            if self.bool(&format!("{cur}.present")) == Some(false) {
                return false;
            }
            // scsi0:1 → scsi0; a.b → a
            match cur.rfind([':', '.']) {
                Some(i) => cur.truncate(i),
                None => return true,
            }
        }
    }

    /// A set key with line, for messages.
    pub fn line(&self, key: &str) -> Option<usize> {
        self.entries.get(&key.to_ascii_lowercase()).map(|(_, l)| *l)
    }
}

/// Decodes the bytes of a `.vmx`/`.vmsd`: the `.encoding` line picks the charset
/// (default UTF-8; invalid UTF-8 without one falls back to windows-1252 with a remark).
pub fn decode(bytes: &[u8]) -> (String, Option<String>) {
    let mut label: Option<String> = None;
    for line in bytes.split(|&b| b == b'\n') {
        let l = String::from_utf8_lossy(line);
        let t = l.trim();
        if let Some((k, v)) = t.split_once('=') {
            if k.trim().eq_ignore_ascii_case(".encoding") {
                label = Some(v.trim().trim_matches('"').to_string());
                break;
            }
        }
    }
    let enc = label.as_deref().and_then(|l| Encoding::for_label(l.as_bytes()));
    match enc {
        Some(e) => {
            let (text, _, _) = e.decode(bytes);
            (text.into_owned(), None)
        }
        None => match std::str::from_utf8(bytes) {
            Ok(s) => (
                s.trim_start_matches('\u{feff}').to_string(),
                label.map(|l| format!("unknown .encoding {l:?}; read as UTF-8")),
            ),
            Err(_) => {
                let (text, _, _) = encoding_rs::WINDOWS_1252.decode(bytes);
                (text.into_owned(), Some("not valid UTF-8 and no usable .encoding; read as windows-1252".into()))
            }
        },
    }
}

/// Undoes `|XX` escapes.
pub fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'|' && i + 2 < b.len() {
            if let Some(h) = v.get(i + 1..i + 3).filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit())) {
                out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Parses the text of a `.vmx` or `.vmsd`.
pub fn parse_kv(text: &str) -> Vmx {
    let mut vmx = Vmx::default();
    let mut skipped = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end_matches('\r').trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            skipped.push(line);
            continue;
        };
        let k = k.trim();
        if k.is_empty() || k.contains([' ', '\t']) {
            skipped.push(line);
            continue;
        }
        let v = v.trim();
        let v = if let Some(inner) = v.strip_prefix('"') {
            match inner.strip_suffix('"') {
                Some(x) => x,
                None => {
                    skipped.push(line);
                    continue;
                }
            }
        } else {
            v
        };
        let key = k.to_ascii_lowercase();
        if vmx.entries.contains_key(&key) {
            vmx.remarks.push(format!("line {line}: duplicate key {k}; the first value is kept"));
            continue;
        }
        vmx.entries.insert(key, (unescape(v), line));
    }
    if !skipped.is_empty() {
        let list: Vec<String> = skipped.iter().take(10).map(|l| l.to_string()).collect();
        vmx.remarks.push(format!(
            "unparsable line(s) skipped: {}{}",
            list.join(", "),
            if skipped.len() > 10 { ", …" } else { "" }
        ));
    }
    vmx
}

/// Bus order for disks (virt-v2v: SCSI, NVMe, SATA, IDE).
fn bus_rank(bus: &str) -> u8 {
    match bus {
        "scsi" => 0,
        "nvme" => 1,
        "sata" => 2,
        _ => 3,
    }
}

/// `uuid.bios` hex pairs → canonical UUID text.
pub fn vmware_uuid(v: &str) -> Option<String> {
    let hex: String = v.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    if hex.len() != 32 || v.chars().any(|c| !(c.is_ascii_hexdigit() || c == ' ' || c == '-')) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

/// Parses a `.vmx` from its bytes (charset from `.encoding`).
pub fn parse(bytes: &[u8]) -> Result<Guest> {
    let (text, charset_remark) = decode(bytes);
    let vmx = parse_kv(&text);
    let looks_vmx = vmx
        .entries
        .keys()
        .any(|k| matches!(k.as_str(), "config.version" | "virtualhw.version" | "displayname" | "guestos" | "memsize"));
    if !looks_vmx {
        return Err(GuestError::invalid(
            "not a .vmx file: none of config.version, virtualHW.version, displayName, guestOS, \
             memsize is set",
        ));
    }
    let mut g = Guest::new(SourceKind::Vmx);
    if let Some(r) = charset_remark {
        g.note(Severity::Warning, r);
    }
    for r in &vmx.remarks {
        g.note(Severity::Info, r.clone());
    }
    g.name = vmx.get("displayName").unwrap_or_default().to_string();
    g.description = vmx.get("annotation").unwrap_or_default().to_string();
    let mem = match vmx.get("memsize") {
        Some(v) => v.trim().parse::<u64>().ok().filter(|&m| m > 0 && m <= 1 << 32).ok_or_else(|| {
            GuestError::invalid(format!("memsize = {v:?}: expected MiB between 1 and 2^32"))
                .at_line(vmx.line("memsize").unwrap_or(0).max(1))
        })?,
        None => 32,
    };
    g.memory = Memory::new(mem * MIB, None);
    let cpus = match vmx.get("numvcpus") {
        Some(v) => v.trim().parse::<u32>().ok().filter(|n| (1..=4096).contains(n)).ok_or_else(|| {
            GuestError::invalid(format!("numvcpus = {v:?}: expected 1 to 4096"))
                .at_line(vmx.line("numvcpus").unwrap_or(0).max(1))
        })?,
        None => 1,
    };
    g.vcpus = Vcpus::new(cpus, cpus);
    if let Some(os) = vmx.get("guestOS").filter(|s| !s.is_empty()) {
        g.os = Some(vmware_os(os));
    }
    let uefi = vmx.get("firmware").is_some_and(|f| f.trim().eq_ignore_ascii_case("efi"));
    let secure = vmx.bool("uefi.secureBoot.enabled").unwrap_or(false);
    if secure && !uefi {
        g.note(Severity::Info, "uefi.secureBoot.enabled without firmware = efi; ignored");
    }
    g.boot = Boot::Hvm {
        firmware: if uefi { Firmware::Uefi } else { Firmware::Bios },
        secure_boot: secure && uefi,
        order: "cd".into(),
    };
    g.uuid = vmx.get("uuid.bios").and_then(vmware_uuid);
    if let (Some(a), Some(b)) = (vmx.get("vm.genid"), vmx.get("vm.genidX")) {
        if let (Ok(a), Ok(b)) = (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
            g.generation_id = Some(format!("{}:{}", a as u64, b as u64));
        }
    }
    if g.is_windows() {
        g.platform.viridian = Some(true);
    }

    // Disks and CD drives.
    struct Dev {
        bus: String,
        ctrl: u32,
        unit: u32,
        ns: String,
    }
    let mut devs = Vec::new();
    for key in vmx.entries.keys() {
        let Some(ns) = key.strip_suffix(".filename") else { continue };
        let Some((busctl, unit)) = ns.split_once(':') else { continue };
        let bus = busctl.trim_end_matches(|c: char| c.is_ascii_digit());
        if !matches!(bus, "scsi" | "ide" | "sata" | "nvme") {
            continue;
        }
        let (Ok(ctrl), Ok(unit)) = (busctl[bus.len()..].parse::<u32>(), unit.parse::<u32>()) else {
            continue;
        };
        devs.push(Dev { bus: bus.to_string(), ctrl, unit, ns: ns.to_string() });
    }
    devs.sort_by_key(|d| (bus_rank(&d.bus), d.ctrl, d.unit));
    let boot_dev = vmx.get("bios.hddOrder").and_then(|o| o.split(',').next()).map(|s| s.trim().to_ascii_lowercase());
    let mut independent = Vec::new();
    let mut raw = Vec::new();
    for d in devs {
        if d.bus == "scsi" && d.unit == 7 {
            continue;
        }
        if !vmx.present(&d.ns) {
            continue;
        }
        let file = vmx.get(&format!("{}.fileName", d.ns)).unwrap_or_default().to_string();
        let dtype = vmx.get(&format!("{}.deviceType", d.ns)).unwrap_or_default().to_ascii_lowercase();
        let is_cd = dtype.contains("cdrom") || file.to_ascii_lowercase().ends_with(".iso");
        if is_cd {
            let media = match dtype.as_str() {
                "cdrom-image" | "" => (!file.is_empty()).then(|| file.clone()),
                _ => {
                    if !file.is_empty() && !file.eq_ignore_ascii_case("auto detect") {
                        g.note(Severity::Info, format!("CD drive {} was connected to the host device {file:?}", d.ns));
                    }
                    None
                }
            };
            g.cdroms.push(Cdrom { media, device: d.ns.clone() });
            continue;
        }
        if file.is_empty() {
            continue;
        }
        if matches!(dtype.as_str(), "rawdisk" | "scsi-passthru") {
            raw.push(d.ns.clone());
            continue;
        }
        let mode = vmx.get(&format!("{}.mode", d.ns)).unwrap_or_default().to_ascii_lowercase();
        if mode.starts_with("independent") {
            independent.push(format!("{} ({mode})", d.ns));
        }
        let controller = match d.bus.as_str() {
            "scsi" => Controller::Scsi(
                match vmx.get(&format!("scsi{}.virtualDev", d.ctrl)).unwrap_or_default().to_ascii_lowercase().as_str() {
                    "lsilogic" => ScsiModel::LsiLogic,
                    "buslogic" => ScsiModel::BusLogic,
                    "lsisas1068" => ScsiModel::LsiSas,
                    "pvscsi" => ScsiModel::Pvscsi,
                    _ => ScsiModel::Unknown,
                },
            ),
            "sata" => Controller::Sata,
            "nvme" => Controller::Nvme,
            _ => Controller::Ide,
        };
        if is_delta_name(&file) {
            g.note(
                Severity::Info,
                format!(
                    "{} is a snapshot delta ({file}); the whole chain is read through the \
                     VMDK parent links",
                    d.ns
                ),
            );
        }
        g.disks.push(Disk {
            source: DiskSource::Path { path: file.into() },
            format: Some("vmdk".into()),
            bootable: boot_dev.as_deref() == Some(d.ns.as_str()),
            read_only: false,
            controller,
            device: d.ns.clone(),
            partition: None,
            capacity: None,
        });
    }
    if !independent.is_empty() {
        g.note(
            Severity::Info,
            format!(
                "independent disk(s) {}: not part of snapshots; converted in their current state",
                independent.join(", ")
            ),
        );
    }
    if !raw.is_empty() {
        g.note(
            Severity::Warning,
            format!(
                "raw device / pass-through disk(s) {} cannot be converted from the .vmx; copy \
                 them to image files and pass --disk",
                raw.join(", ")
            ),
        );
    }
    if g.disks.iter().any(|d| d.controller == Controller::Scsi(ScsiModel::Pvscsi))
        && g.os.as_ref().is_some_and(|o| o.family == OsFamily::Windows)
    {
        g.note(
            Severity::Warning,
            "the Windows boot disk was on VMware paravirtual SCSI (pvscsi): the guest needs \
             Xen PV drivers or an IDE-capable boot configuration to start on XenServer",
        );
    }

    // NICs, in ethernetN order.
    let mut nic_ids: Vec<u32> = vmx
        .entries
        .keys()
        .filter_map(|k| {
            let rest = k.strip_prefix("ethernet")?;
            let (n, _) = rest.split_once('.')?;
            n.parse().ok()
        })
        .collect();
    nic_ids.sort_unstable();
    nic_ids.dedup();
    for n in nic_ids {
        let ns = format!("ethernet{n}");
        // VMware writes ethernetN.present for every NIC; leftovers without it are not NICs.
        if vmx.bool(&format!("{ns}.present")) != Some(true) {
            continue;
        }
        if !vmx.present(&ns) {
            continue;
        }
        let at = vmx.get(&format!("{ns}.addressType")).unwrap_or("generated").to_ascii_lowercase();
        let mac_text = if at == "static" {
            vmx.get(&format!("{ns}.address"))
        } else {
            vmx.get(&format!("{ns}.generatedAddress")).or(vmx.get(&format!("{ns}.address")))
        };
        let mac = match mac_text {
            Some(m) => Some(
                super::model::normalize_mac(m)
                    .ok_or_else(|| GuestError::invalid(format!("{ns}: bad MAC address {m:?}")))?,
            ),
            None => None,
        };
        let mut model = vmx.get(&format!("{ns}.virtualDev")).map(|s| s.to_ascii_lowercase());
        if model.as_deref() == Some("vmxnet") && vmx.get(&format!("{ns}.features")) == Some("15") {
            model = Some("vmxnet2".into());
        }
        let network = vmx
            .get(&format!("{ns}.networkName"))
            .or(vmx.get(&format!("{ns}.vnet")))
            .map(String::from)
            .or_else(|| vmx.get(&format!("{ns}.connectionType")).map(String::from));
        g.nics.push(Nic { mac, network, model });
    }

    let mut extras = Vec::new();
    for (ns, what) in [
        ("sound", "sound card"),
        ("usb", "USB controller"),
        ("serial0", "serial port"),
        ("parallel0", "parallel port"),
        ("floppy0", "floppy drive"),
    ] {
        if vmx.bool(&format!("{ns}.present")) == Some(true) {
            extras.push(what);
        }
    }
    if !extras.is_empty() {
        g.note(Severity::Info, format!("not carried over: {}", extras.join(", ")));
    }
    g.finish();
    Ok(g)
}

/// `disk-000002.vmdk` style snapshot delta names.
pub fn is_delta_name(file: &str) -> bool {
    let stem = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let Some(stem) = stem.strip_suffix(".vmdk").or_else(|| stem.strip_suffix(".VMDK")) else {
        return false;
    };
    match stem.rsplit_once('-') {
        Some((_, n)) => n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Parses a `.vmsd` into the snapshot tree (bounded to the snapshots the file lists).
pub fn parse_vmsd(bytes: &[u8]) -> Result<Vec<Snapshot>> {
    let (text, _) = decode(bytes);
    let kv = parse_kv(&text);
    let current: Option<u64> = kv.get("snapshot.current").and_then(|v| v.trim().parse().ok());
    let mut ids: Vec<u32> = kv
        .entries
        .keys()
        .filter_map(|k| {
            let rest = k.strip_prefix("snapshot")?;
            let (n, field) = rest.split_once('.')?;
            (field == "uid").then(|| n.parse().ok()).flatten()
        })
        .collect();
    ids.sort_unstable();
    let mut out = Vec::new();
    for n in ids {
        let p = format!("snapshot{n}");
        let Some(uid) = kv.get(&format!("{p}.uid")).and_then(|v| v.trim().parse::<u64>().ok()) else {
            return Err(GuestError::invalid(format!("{p}.uid is not a number")));
        };
        let parent = kv.get(&format!("{p}.parent")).and_then(|v| v.trim().parse().ok());
        let num_disks: u32 = kv.get(&format!("{p}.numDisks")).and_then(|v| v.trim().parse().ok()).unwrap_or(0).min(256);
        let mut disks = Vec::new();
        for m in 0..num_disks {
            let f = kv.get(&format!("{p}.disk{m}.fileName")).unwrap_or_default();
            let node = kv.get(&format!("{p}.disk{m}.node")).unwrap_or_default();
            if !f.is_empty() {
                disks.push((node.to_string(), f.to_string()));
            }
        }
        out.push(Snapshot {
            uid,
            parent,
            name: kv.get(&format!("{p}.displayName")).unwrap_or_default().to_string(),
            current: current == Some(uid),
            disks,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values() {
        let v = parse_kv(
            "#!/usr/bin/vmware\r\n.encoding = \"UTF-8\"\r\ndisplayName = \"a|22b|7Cc\"\r\nScsi0:0.FileName = \"x.vmdk\"\nbad line\nunquoted = 12\ndisplayname = \"dup\"\n",
        );
        assert_eq!(v.get("displayname"), Some("a\"b|c"));
        assert_eq!(v.get("SCSI0:0.fileName"), Some("x.vmdk"));
        assert_eq!(v.get("unquoted"), Some("12"));
        assert_eq!(v.remarks.len(), 2, "{:?}", v.remarks);
        assert_eq!(unescape("|"), "|");
        assert_eq!(unescape("a|2"), "a|2");
    }

    #[test]
    fn windows_1252_names() {
        let mut bytes = b".encoding = \"windows-1252\"\ndisplayName = \"Caf\xe9\"\nmemsize = \"64\"\n".to_vec();
        let g = parse(&bytes).unwrap();
        assert_eq!(g.name, "Café");
        bytes.truncate(0);
        bytes.extend_from_slice(b"displayName = \"Caf\xe9\"\nmemsize = \"64\"\n");
        let g = parse(&bytes).unwrap();
        assert_eq!(g.name, "Café");
        assert!(g.notes.iter().any(|n| n.message.contains("windows-1252")));
    }

    #[test]
    fn uuid_and_deltas() {
        assert_eq!(
            vmware_uuid("56 4d 12 67 af 4f 5e 46-e5 8b 62 1d 70 c0 3a 22").as_deref(),
            Some("564d1267-af4f-5e46-e58b-621d70c03a22")
        );
        assert!(is_delta_name("disk-000002.vmdk"));
        assert!(!is_delta_name("disk-flat.vmdk"));
        assert!(parse(b"hello = \"x\"\n").is_err());
        assert!(parse(b"memsize = \"99999999999999999999\"\n").is_err());
    }
}
