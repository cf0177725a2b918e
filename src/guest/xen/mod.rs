//! What xm, xl and SXP configs share: option values, disk and vif specs, and the mapping from
//! Xen option names to the [`Guest`] model.
//!
//! ```text
//!   xm.rs (Python literals) ─┐
//!   xl.rs (libxlu grammar)  ─┴─► Opts { key → XVal } ──build──► Guest
//!   sxp.rs ── its own keys ──────── uses parse_xm_disk / parse_vif ──┘
//! ```

pub mod pyeval;
pub mod sxp;
pub mod xl;
pub mod xm;

use super::error::{GuestError, Result};
use super::model::{
    boot_order, format_hint, normalize_mac, partition_of, Boot, Cdrom, Controller, Disk, DiskSource, Firmware, Guest,
    Memory, Nic, ScsiModel, Severity, SourceKind, Vcpus, MIB,
};

/// A config value after the dialect's own evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum XVal {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float (xm only).
    Float(f64),
    /// A list.
    List(Vec<XVal>),
}

impl XVal {
    fn describe(&self) -> String {
        match self {
            XVal::Str(s) => format!("{s:?}"),
            XVal::Int(i) => i.to_string(),
            XVal::Float(f) => f.to_string(),
            XVal::List(_) => "a list".into(),
        }
    }
}

/// The options of a config, in file order, with the line each was set on.
#[derive(Clone, Debug, Default)]
pub struct Opts {
    /// (key, value, line).
    pub vals: Vec<(String, XVal, usize)>,
}

impl Opts {
    /// The value of `key` (the last assignment wins).
    pub fn get(&self, key: &str) -> Option<&XVal> {
        self.entry(key).map(|(v, _)| v)
    }

    fn entry(&self, key: &str) -> Option<(&XVal, usize)> {
        self.vals.iter().rev().find(|(k, _, _)| k == key).map(|(_, v, l)| (v, *l))
    }

    fn err(&self, key: &str, msg: String) -> GuestError {
        let e = GuestError::invalid(format!("{key}: {msg}"));
        match self.line_of(key) {
            Some(l) => e.at_line(l),
            None => e,
        }
    }

    /// A string option (numbers are converted, as xm and xl both allow).
    pub fn str(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(XVal::Str(s)) => Ok(Some(s.clone())),
            Some(XVal::Int(i)) => Ok(Some(i.to_string())),
            Some(XVal::Float(f)) => Ok(Some(f.to_string())),
            Some(XVal::List(_)) => Err(self.err(key, "expected a string, found a list".into())),
        }
    }

    /// An integer option; numeric strings accepted (`memory = "512"`), with strtol base 0.
    pub fn int(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(XVal::Int(i)) => Ok(Some(*i)),
            Some(XVal::Float(f)) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9e15 => Ok(Some(*f as i64)),
            Some(XVal::Str(s)) => {
                parse_c_int(s.trim()).map(Some).ok_or_else(|| self.err(key, format!("expected a number, found {s:?}")))
            }
            Some(other) => Err(self.err(key, format!("expected a number, found {}", other.describe()))),
        }
    }

    /// A boolean option: 1/0, yes/no, true/false, on/off.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(XVal::Int(i)) => Ok(Some(*i != 0)),
            Some(XVal::Float(f)) => Ok(Some(*f != 0.0)),
            Some(XVal::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "1" | "yes" | "y" | "true" | "on" => Ok(Some(true)),
                "0" | "no" | "n" | "false" | "off" | "" => Ok(Some(false)),
                other => match parse_c_int(other) {
                    Some(i) => Ok(Some(i != 0)),
                    None => Err(self.err(key, format!("expected a boolean, found {s:?}"))),
                },
            },
            Some(XVal::List(l)) => Ok(Some(!l.is_empty())),
        }
    }

    /// A list of strings; a single string counts as a one-element list.
    pub fn str_list(&self, key: &str) -> Result<Vec<String>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(XVal::List(items)) => items
                .iter()
                .map(|v| match v {
                    XVal::Str(s) => Ok(s.clone()),
                    XVal::Int(i) => Ok(i.to_string()),
                    other => Err(self.err(key, format!("list items must be strings, found {}", other.describe()))),
                })
                .collect(),
            Some(XVal::Str(s)) => Ok(vec![s.clone()]),
            Some(other) => Err(self.err(key, format!("expected a list, found {}", other.describe()))),
        }
    }

    fn line_of(&self, key: &str) -> Option<usize> {
        self.entry(key).map(|(_, l)| l).filter(|&l| l > 0)
    }
}

/// C `strtol(s, NULL, 0)` for a whole string: `0x` hex, leading-`0` octal, optional sign.
pub fn parse_c_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if body.is_empty() {
        return None;
    }
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(&body[1..], 8).ok()?
    } else {
        body.parse::<i64>().ok()?
    };
    if neg {
        v.checked_neg()
    } else {
        Some(v)
    }
}

/// Which Xen tool's rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// xm / xend.
    Xm,
    /// xl.
    Xl,
}

/// A disk entry after parsing a spec, before it becomes a [`Disk`] or [`Cdrom`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DiskEntry {
    /// Path/device, `""` for an empty drive.
    pub target: String,
    /// Format hint.
    pub format: Option<String>,
    /// Virtual device (`xvda`, `hdc`, `sda1`).
    pub vdev: String,
    /// CD-ROM.
    pub cdrom: bool,
    /// Read-only.
    pub read_only: bool,
    /// Block script (`block-iscsi`, or the xm prefix `iscsi`).
    pub script: Option<String>,
    /// `w!`: shared writable.
    pub shared_write: bool,
    /// Backend domain, when not dom0.
    pub backend: Option<String>,
}

/// Bytes from MiB, checked.
pub fn mib(key: &str, v: i64) -> Result<u64> {
    if v <= 0 {
        return Err(GuestError::invalid(format!("{key} must be positive, found {v}")));
    }
    (v as u64)
        .checked_mul(MIB)
        .filter(|&b| b <= (1u64 << 52))
        .ok_or_else(|| GuestError::invalid(format!("{key} = {v} MiB is too large")))
}

/// Parses an xm disk spec `uname,dev,mode[,backend[,protocol]]` (`create.py: preprocess_disk`,
/// `blkif.py: parse_uname`).
pub fn parse_xm_disk(spec: &str) -> Result<DiskEntry> {
    let fields: Vec<&str> = spec.split(',').collect();
    if !(3..=5).contains(&fields.len()) {
        return Err(GuestError::invalid(format!(
            "disk {spec:?}: expected 'uname,dev,mode[,backend[,protocol]]' (3 to 5 fields), \
             found {}",
            fields.len()
        )));
    }
    let uname = fields[0].trim();
    let mut dev = fields[1].trim();
    let mode = fields[2].trim();
    let mut e = DiskEntry::default();
    if let Some(b) = fields.get(3).map(|s| s.trim()).filter(|s| !s.is_empty() && *s != "0") {
        e.backend = Some(b.to_string());
    }
    // dev: [ioemu:]name[:cdrom|:disk]
    if let Some(r) = dev.strip_prefix("ioemu:") {
        dev = r;
    }
    if let Some(r) = dev.strip_suffix(":cdrom") {
        dev = r;
        e.cdrom = true;
    } else if let Some(r) = dev.strip_suffix(":disk") {
        dev = r;
    }
    if dev.is_empty() {
        return Err(GuestError::invalid(format!("disk {spec:?}: no device name")));
    }
    e.vdev = dev.to_string();
    match mode {
        "r" | "ro" => e.read_only = true,
        "w" | "rw" => {}
        "w!" => e.shared_write = true,
        other => {
            return Err(GuestError::invalid(format!("disk {spec:?}: unknown mode {other:?} (expected r, w or w!)")))
        }
    }
    if e.cdrom {
        e.read_only = true;
    }
    if uname.is_empty() {
        if !e.cdrom {
            return Err(GuestError::invalid(format!(
                "disk {spec:?}: an empty uname is only allowed for a CD drive (dev:cdrom)"
            )));
        }
        return Ok(e);
    }
    let Some((typ, rest)) = uname.split_once(':') else {
        // No prefix: xend treated it as a file path.
        e.target = uname.to_string();
        return Ok(e);
    };
    match typ {
        "phy" => {
            e.target = if rest.starts_with('/') { rest.to_string() } else { format!("/dev/{rest}") };
            e.format = Some("raw".into());
        }
        "file" => {
            e.target = rest.to_string();
            e.format = Some("raw".into());
        }
        "tap" | "tap2" => {
            // tap:TYPE:PATH, tap:tapdisk:TYPE:PATH, tap:ioemu:TYPE:PATH, tap2:tapdisk:vhd:PATH
            let mut r = rest;
            if let Some(x) = r.strip_prefix("tapdisk:").or_else(|| r.strip_prefix("ioemu:")) {
                r = x;
            }
            let Some((sub, path)) = r.split_once(':') else {
                return Err(GuestError::invalid(format!(
                    "disk {spec:?}: {typ}: needs a type and a path ({typ}:aio:/path)"
                )));
            };
            match sub {
                "aio" | "sync" | "qcow" | "qcow2" | "vmdk" | "vhd" => {
                    e.format = format_hint(sub);
                }
                "ram" => {
                    return Err(GuestError::unsupported(format!(
                        "disk {spec:?}: tap:ram is a RAM disk with no image to convert"
                    )))
                }
                other => {
                    return Err(GuestError::invalid(format!(
                        "disk {spec:?}: unknown {typ}: disk type {other:?} (known: aio, sync, \
                         qcow, qcow2, vmdk, vhd)"
                    )))
                }
            }
            e.target = path.to_string();
        }
        "iscsi" | "drbd" | "nbd" | "enbd" => {
            e.script = Some(typ.to_string());
            e.target = rest.to_string();
        }
        other => {
            return Err(GuestError::invalid(format!(
                "disk {spec:?}: unknown disk prefix {other:?}: (known: phy:, file:, tap:, tap2:, \
                 iscsi:, drbd:, nbd:)"
            )))
        }
    }
    if e.target.is_empty() {
        return Err(GuestError::invalid(format!("disk {spec:?}: empty path")));
    }
    Ok(e)
}

/// Parses an xl disk spec (`xl-disk-configuration(5)`, lexer `libxlu_disk_l.l`).
pub fn parse_xl_disk(spec: &str) -> Result<DiskEntry> {
    let err = |what: &str, tok: &str| GuestError::invalid(format!("disk {spec:?}: {what} at {tok:?}"));
    let mut e = DiskEntry::default();
    let mut target: Option<String> = None;
    let mut format_set = false;
    let mut had_depr_prefix = false;
    let mut vdev: Option<String> = None;
    let mut access_set = false;
    let mut cdrom = false;
    let mut access_ro: Option<bool> = None;
    let mut empty_format = false;
    let set_access = |v: &str| -> Result<bool> {
        match v {
            "r" | "ro" => Ok(true),
            "rw" | "w" | "" => Ok(false),
            other => {
                Err(GuestError::invalid(format!("disk {spec:?}: unknown value for access {other:?} (r, ro, w, rw)")))
            }
        }
    };
    let set_format = |v: &str, e: &mut DiskEntry, empty: &mut bool| -> Result<()> {
        match v {
            "" | "raw" => e.format = Some("raw".into()),
            "qcow" | "qcow2" | "vhd" | "qed" => e.format = Some(v.into()),
            "empty" => {
                *empty = true;
                e.format = None;
            }
            other => return Err(GuestError::invalid(format!("disk {spec:?}: unknown value for format {other:?}"))),
        }
        Ok(())
    };
    let mut rest = spec;
    while !rest.is_empty() {
        // Whitespace before a parameter is ignored (only when something follows it).
        let trimmed = rest.trim_start_matches([' ', '\t', '\n']);
        if trimmed.is_empty() {
            // trailing whitespace: flex's `.` rule → positional? It matches [^=,]+ as a
            // positional parameter of blanks; treat as nothing.
            break;
        }
        rest = trimmed;
        if let Some(t) = rest.strip_prefix("target=") {
            target = Some(t.strip_suffix(',').unwrap_or(t).to_string());
            break;
        }
        let (tok, after) = match rest.find(',') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        // Keyed parameters and flags (whole tokens).
        if let Some((k, v)) = tok.split_once('=') {
            match k {
                "format" => {
                    set_format(v, &mut e, &mut empty_format)?;
                    format_set = true;
                }
                "devtype" => match v {
                    "cdrom" => cdrom = true,
                    "disk" => cdrom = false,
                    _ => return Err(err("unknown value for type", tok)),
                },
                "access" => access_ro = Some(set_access(v)?),
                "backend" => e.backend = Some(v.to_string()),
                "backendtype" => {
                    if !matches!(v, "phy" | "tap" | "qdisk" | "standalone") {
                        return Err(err("unknown value for backendtype", tok));
                    }
                }
                "specification" => {
                    if !matches!(v, "xen" | "virtio") {
                        return Err(err("unknown value for specification", tok));
                    }
                }
                "vdev" => vdev = Some(v.to_string()),
                "script" => e.script = Some(v.to_string()),
                "colo-host" | "colo-port" | "colo-export" | "active-disk" | "hidden-disk" => {}
                "grant_usage" if v == "0" || v == "1" => {}
                _ => {
                    let is_ident = k.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                        && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                    return Err(err(if is_ident { "unknown parameter" } else { "bad disk syntax" }, tok));
                }
            }
            rest = after;
            continue;
        }
        match tok {
            "cdrom" => {
                cdrom = true;
                rest = after;
                continue;
            }
            "direct-io-safe" | "discard" | "no-discard" | "colo" | "no-colo" | "trusted" | "untrusted" => {
                rest = after;
                continue;
            }
            _ => {}
        }
        // Deprecated prefixes: `word:` consumed alone, lexing continues after the colon.
        if let Some(colon) = tok.find(':') {
            let word = &tok[..colon];
            let next = tok.as_bytes().get(colon + 1).copied();
            let is_word = word.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if is_word {
                let known = match word {
                    "raw" | "qcow" | "qcow2" | "vhd" => {
                        set_format(word, &mut e, &mut empty_format)?;
                        format_set = true;
                        true
                    }
                    "iscsi" | "nbd" | "enbd" | "drbd" => {
                        e.script = Some(format!("block-{word}"));
                        true
                    }
                    "tapdisk" | "tap" | "tap2" | "aio" | "ioemu" | "file" | "phy" => true,
                    _ => false,
                };
                if known {
                    had_depr_prefix = true;
                    rest = &rest[colon + 1..];
                    continue;
                }
                if next.is_none_or(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit())) {
                    return Err(GuestError::invalid(format!(
                        "disk {spec:?}: unknown deprecated disk prefix {:?} (xl accepts raw: \
                         qcow: qcow2: vhd: iscsi: nbd: enbd: drbd: and ignores tap: tap2: \
                         tapdisk: aio: ioemu: file: phy:)",
                        format!("{word}:")
                    )));
                }
            }
        }
        // Positional parameter.
        if target.is_none() {
            target = Some(tok.to_string());
        } else if !had_depr_prefix && !format_set {
            let t = target.as_deref().unwrap_or("");
            if t.is_empty() && tok.contains(':') {
                let (v, dt) = tok.rsplit_once(':').unwrap_or((tok, ""));
                vdev = Some(v.to_string());
                match dt {
                    "cdrom" => cdrom = true,
                    "disk" => cdrom = false,
                    _ => return Err(err("unknown deprecated type", dt)),
                }
                empty_format = true;
            } else {
                set_format(tok, &mut e, &mut empty_format)?;
            }
            format_set = true;
        } else if vdev.is_none() {
            if let Some((v, dt)) = tok.rsplit_once(':') {
                vdev = Some(v.to_string());
                match dt {
                    "cdrom" => cdrom = true,
                    "disk" => cdrom = false,
                    _ => return Err(err("unknown deprecated type", dt)),
                }
            } else {
                vdev = Some(tok.to_string());
            }
        } else if !access_set {
            access_set = true;
            access_ro = Some(set_access(tok)?);
        } else {
            return Err(err("too many positional parameters", tok));
        }
        rest = after;
    }
    let Some(vdev) = vdev.filter(|v| !v.is_empty()) else {
        return Err(GuestError::invalid(format!("disk {spec:?}: no vdev (the virtual device name, e.g. xvda)")));
    };
    e.vdev = vdev;
    e.target = target.unwrap_or_default();
    e.cdrom = cdrom;
    e.read_only = access_ro.unwrap_or(cdrom) || cdrom;
    if e.format.is_none() && !empty_format {
        e.format = Some("raw".into());
    }
    if empty_format || e.target.is_empty() {
        e.format = None;
        if !cdrom {
            return Err(GuestError::invalid(format!("disk {spec:?}: an empty target is only allowed for a CD drive")));
        }
        e.target.clear();
    }
    Ok(e)
}

/// The controller a Xen vdev name implies (for the record only).
pub fn controller_of(vdev: &str) -> Controller {
    if vdev.starts_with("hd") {
        Controller::Ide
    } else if vdev.starts_with("sd") {
        Controller::Scsi(ScsiModel::Unknown)
    } else {
        Controller::Xen
    }
}

/// Adds a parsed disk entry to the guest as a disk or a CD drive.
pub fn add_disk(g: &mut Guest, e: DiskEntry) {
    if e.cdrom {
        g.cdroms.push(Cdrom { media: (!e.target.is_empty()).then(|| e.target.clone()), device: e.vdev.clone() });
        return;
    }
    if e.shared_write {
        g.note(
            Severity::Warning,
            format!("disk {} was shared writable (w!) in the source; the XVA gets a private copy", e.vdev),
        );
    }
    if let Some(b) = &e.backend {
        g.note(Severity::Info, format!("disk {} was served by backend domain {b:?}; the target uses dom0", e.vdev));
    }
    let source = match &e.script {
        Some(s) => {
            g.note(
                Severity::Warning,
                format!(
                    "disk {} comes from the block script {s:?} ({}) in the source dom0: xva \
                     cannot read it; copy the device to a file and pass --disk, or map it with \
                     --path-map",
                    e.vdev, e.target
                ),
            );
            DiskSource::Script { script: s.clone(), target: e.target.clone() }
        }
        None => DiskSource::Path { path: e.target.clone().into() },
    };
    g.disks.push(Disk {
        source,
        format: e.format.clone(),
        bootable: false,
        read_only: e.read_only,
        controller: controller_of(&e.vdev),
        partition: partition_of(&e.vdev),
        device: e.vdev,
        capacity: None,
    });
}

/// Parses a vif spec `k=v,k=v` (xm `configure_vifs`, xl `parse_nic_config`).
pub fn parse_vif(spec: &str) -> Result<Nic> {
    let mut nic = Nic { mac: None, network: None, model: None };
    for kv in spec.split(',') {
        let kv = kv.trim();
        if kv.is_empty() {
            continue;
        }
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let (k, v) = (k.trim(), v.trim());
        match k {
            "mac" => {
                nic.mac = Some(
                    normalize_mac(v)
                        .ok_or_else(|| GuestError::invalid(format!("vif {spec:?}: bad MAC address {v:?}")))?,
                )
            }
            "bridge" => nic.network = Some(v.to_string()),
            "model" => nic.model = Some(v.to_string()),
            "type" if nic.model.is_none() && v == "vif" => nic.model = Some("netfront".into()),
            _ => {}
        }
    }
    Ok(nic)
}

/// Keys [`build`] reads: an xm config whose code leaves one of these unknown is refused.
pub const READ_KEYS: &[&str] = &[
    "name",
    "uuid",
    "description",
    "memory",
    "maxmem",
    "vcpus",
    "maxvcpus",
    "vcpu_avail",
    "builder",
    "type",
    "kernel",
    "ramdisk",
    "root",
    "extra",
    "cmdline",
    "bootloader",
    "bootloader_args",
    "bootargs",
    "firmware",
    "bios",
    "acpi",
    "apic",
    "pae",
    "nx",
    "viridian",
    "localtime",
    "rtc_timeoffset",
    "boot",
    "disk",
    "vif",
    "nics",
];

const PASSTHROUGH: &[&str] = &[
    "pci",
    "vscsi",
    "vusb",
    "ioports",
    "irq",
    "irqs",
    "iomem",
    "usbdev",
    "usbctrl",
    "vtpm",
    "p9",
    "pvcalls",
    "channel",
    "dtdev",
    "vdispl",
    "vsnd",
    "vkb",
    "gfx_passthru",
    "rdm",
];

const IGNORED: &[&str] = &[
    "cpus",
    "cpus_soft",
    "cpu",
    "cpu_cap",
    "cpu_weight",
    "cpuid",
    "cpuid_check",
    "soundhw",
    "serial",
    "vnc",
    "vncunused",
    "vncdisplay",
    "vnclisten",
    "vncpasswd",
    "vncconsole",
    "sdl",
    "opengl",
    "usb",
    "usbdevice",
    "stdvga",
    "vga",
    "videoram",
    "device_model",
    "device_model_version",
    "device_model_override",
    "hap",
    "hpet",
    "timer_mode",
    "tsc_mode",
    "vpt_align",
    "nestedhvm",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_watchdog",
    "on_soft_reset",
    "keymap",
    "fda",
    "fdb",
    "monitor",
    "guest_os_type",
    "xen_platform_pci",
    "acpi_s3",
    "acpi_s4",
    "hdtype",
    "shadow_memory",
    "sched",
    "pool",
    "seclabel",
    "blkif",
    "netif",
    "tpmif",
    "localtime_offset",
    "vfb",
    "vkbd",
    "console",
    "hvmloader",
    "max_grant_frames",
    "max_maptrack_frames",
    "max_event_channels",
    "e820_host",
    "claim_mode",
    "altp2m",
    "mmio_hole",
    "gic_version",
    "vuart",
    "ms_vm_genid",
    "smbios",
    "bootentry",
    "nographic",
    "spice",
    "spiceport",
    "spicehost",
    "spicedisable_ticketing",
    "rtc_timeoffset_",
];

/// Builds a guest from Xen options (xm after evaluation, xl after parsing).
pub fn build(opts: &Opts, dialect: Dialect) -> Result<Guest> {
    let kind = match dialect {
        Dialect::Xm => SourceKind::Xm,
        Dialect::Xl => SourceKind::Xl,
    };
    let mut g = Guest::new(kind);
    g.name = opts.str("name")?.unwrap_or_default();
    g.uuid = opts.str("uuid")?;
    g.description = opts.str("description")?.unwrap_or_default();

    // Memory (MiB).
    let memory = opts.int("memory")?.unwrap_or(128);
    let target = mib("memory", memory).map_err(|e| at(opts, "memory", e))?;
    let max = match opts.int("maxmem")? {
        Some(m) => Some(mib("maxmem", m).map_err(|e| at(opts, "maxmem", e))?),
        None => None,
    };
    g.memory = Memory::new(target, max);
    if max.is_some_and(|m| m > target) {
        g.note(Severity::Info, "maxmem > memory: the VM gets memory_static_max = maxmem and boots with memory");
    }

    // vCPUs.
    let vcpus = opts.int("vcpus")?.unwrap_or(1);
    let maxv = opts.int("maxvcpus")?.unwrap_or(vcpus);
    let to_u32 = |key: &str, v: i64| -> Result<u32> {
        u32::try_from(v)
            .ok()
            .filter(|&n| (1..=4096).contains(&n))
            .ok_or_else(|| opts.err(key, format!("must be between 1 and 4096, found {v}")))
    };
    let mut at_startup = to_u32("vcpus", vcpus)?;
    let max_v = to_u32(if opts.get("maxvcpus").is_some() { "maxvcpus" } else { "vcpus" }, maxv)?.max(at_startup);
    if let Some(mask) = opts.int("vcpu_avail")? {
        let n = (mask as u64).count_ones().max(1);
        at_startup = n.min(max_v);
    }
    g.vcpus = Vcpus::new(max_v, at_startup);

    // Boot mode.
    let builder = opts.str("builder")?.unwrap_or_default();
    let typ = opts.str("type")?.map(|t| t.to_ascii_lowercase());
    let kernel = opts.str("kernel")?.filter(|k| !k.is_empty());
    let kernel_is_hvmloader = kernel.as_deref().is_some_and(|k| k.ends_with("hvmloader"));
    let hvm = match dialect {
        Dialect::Xl => match typ.as_deref() {
            Some("hvm") => true,
            Some("pv") | Some("pvh") => false,
            Some(other) => return Err(opts.err("type", format!("unknown guest type {other:?} (pv, pvh, hvm)"))),
            // xl_parse.c: strncmp(buf, "hvm", strlen(buf)) — a prefix match.
            None => !builder.is_empty() && "hvm".starts_with(builder.as_str()),
        },
        Dialect::Xm => builder == "hvm" || kernel_is_hvmloader,
    };
    if dialect == Dialect::Xm && builder != "hvm" && kernel_is_hvmloader {
        g.note(Severity::Info, "kernel = hvmloader selects HVM firmware; treated as builder = 'hvm'");
    }
    if typ.as_deref() == Some("pvh") {
        g.note(
            Severity::Warning,
            "PVH source: described here as PV; XenServer/XCP-ng import it as PV — convert \
             with --hvm if the disk has a bootloader",
        );
    }
    let firmware = opts.str("firmware")?.map(|f| f.to_ascii_lowercase());
    let bios = opts.str("bios")?.map(|f| f.to_ascii_lowercase());
    if hvm {
        let uefi = match (firmware.as_deref(), bios.as_deref()) {
            (Some("uefi" | "ovmf"), _) | (_, Some("ovmf")) => true,
            (Some("bios" | "seabios" | "rombios") | None, _) => false,
            (Some(path), _) => {
                g.note(
                    Severity::Warning,
                    format!("custom HVM firmware {path:?} is not carried over; the VM gets BIOS"),
                );
                false
            }
        };
        if kernel.is_some() {
            g.note(
                Severity::Info,
                if kernel_is_hvmloader {
                    "kernel = hvmloader only selected the HVM firmware; ignored"
                } else {
                    "kernel is ignored for an HVM guest"
                },
            );
        }
        g.boot = Boot::Hvm {
            firmware: if uefi { Firmware::Uefi } else { Firmware::Bios },
            secure_boot: false,
            order: boot_order(&opts.str("boot")?.unwrap_or_else(|| "cd".into())),
        };
    } else {
        let args = pv_args(opts, dialect)?;
        let bootloader = opts
            .str("bootloader")?
            .filter(|b| !b.is_empty())
            .or_else(|| firmware.clone().filter(|f| f.starts_with("pvgrub")));
        let bootloader_args = match opts.get("bootloader_args") {
            Some(XVal::List(_)) => opts.str_list("bootloader_args")?.join(" "),
            _ => opts.str("bootloader_args")?.or(opts.str("bootargs")?).unwrap_or_default(),
        };
        if let Some(bl) = bootloader {
            if kernel.is_some() {
                g.note(Severity::Info, "both bootloader and kernel are set; the bootloader wins as in xm/xl");
            }
            g.boot = Boot::PvBootloader { bootloader: bl, bootloader_args, args };
        } else if let Some(k) = kernel {
            g.boot = Boot::PvKernel { kernel: k, ramdisk: opts.str("ramdisk")?.filter(|r| !r.is_empty()), args };
        } else {
            return Err(GuestError::invalid(
                "PV guest with neither a bootloader nor a kernel: set builder/type = 'hvm' \
                 for an HVM guest, or say how it boots (bootloader = 'pygrub')",
            ));
        }
    }

    // Platform flags.
    g.platform.acpi = opts.bool("acpi")?;
    g.platform.apic = opts.bool("apic")?;
    g.platform.pae = opts.bool("pae")?;
    g.platform.nx = opts.bool("nx")?;
    g.platform.viridian = opts.bool("viridian")?;
    g.platform.localtime = opts.bool("localtime")?;
    g.platform.timeoffset = opts.int("rtc_timeoffset")?;
    if dialect == Dialect::Xm && opts.get("nx").is_some() {
        g.note(Severity::Info, "nx is not an xm key (xl only); taken anyway");
    }

    // Disks.
    let disk_line = opts.line_of("disk");
    for spec in opts.str_list("disk")? {
        let parsed = match dialect {
            Dialect::Xm => parse_xm_disk(&spec),
            Dialect::Xl => parse_xl_disk(&spec),
        };
        let e = parsed.map_err(|e| match disk_line {
            Some(l) => e.at_line(l),
            None => e,
        })?;
        add_disk(&mut g, e);
    }

    // NICs.
    let vif_line = opts.line_of("vif");
    for spec in opts.str_list("vif")? {
        let nic = parse_vif(&spec).map_err(|e| match vif_line {
            Some(l) => e.at_line(l),
            None => e,
        })?;
        g.nics.push(nic);
    }
    if opts.get("vif").is_none() {
        if let Some(n) = opts.int("nics")? {
            for _ in 0..n.clamp(0, 16) {
                g.nics.push(Nic { mac: None, network: None, model: None });
            }
        }
    }

    // Pass-through and ignored keys.
    let mut ignored = Vec::new();
    for (k, v, _) in &opts.vals {
        if PASSTHROUGH.contains(&k.as_str()) {
            let empty = matches!(v, XVal::List(l) if l.is_empty()) || matches!(v, XVal::Str(s) if s.is_empty());
            if !empty {
                g.note(
                    Severity::Warning,
                    format!("{k} = {} (device pass-through / host device) cannot be carried over", short(v)),
                );
            }
        } else if IGNORED.contains(&k.as_str()) && !ignored.contains(k) {
            ignored.push(k.clone());
        }
    }
    if !ignored.is_empty() {
        g.note(Severity::Info, format!("settings not carried over: {}", ignored.join(", ")));
    }
    if let Some(cmdline) = opts.str("cmdline")? {
        if hvm && !cmdline.is_empty() {
            g.note(Severity::Info, "cmdline is ignored for an HVM guest");
        }
    }
    Ok(g)
}

fn short(v: &XVal) -> String {
    let s = match v {
        XVal::List(l) => format!("[{}]", l.iter().map(short).collect::<Vec<_>>().join(", ")),
        XVal::Str(s) => format!("{s:?}"),
        other => other.describe(),
    };
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

fn at(opts: &Opts, key: &str, e: GuestError) -> GuestError {
    match opts.line_of(key) {
        Some(l) => e.at_line(l),
        None => e,
    }
}

/// The PV kernel command line: xl `cmdline` wins; else `root=ROOT EXTRA`.
fn pv_args(opts: &Opts, dialect: Dialect) -> Result<String> {
    if dialect == Dialect::Xl {
        if let Some(c) = opts.str("cmdline")? {
            return Ok(c);
        }
    }
    let mut parts = Vec::new();
    if let Some(root) = opts.str("root")?.filter(|r| !r.is_empty()) {
        let root = root.strip_prefix("root=").unwrap_or(&root).to_string();
        parts.push(format!("root={root}"));
    }
    if let Some(extra) = opts.str("extra")?.filter(|e| !e.is_empty()) {
        parts.push(extra);
    }
    Ok(parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xl_disk_equivalence_vectors() {
        let want = DiskEntry {
            target: "/dev/vg/guest-volume".into(),
            format: Some("raw".into()),
            vdev: "hda".into(),
            ..Default::default()
        };
        for spec in [
            "/dev/vg/guest-volume,,hda",
            "/dev/vg/guest-volume,raw,hda,rw",
            "format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume",
            "raw:/dev/vg/guest-volume,hda,w",
        ] {
            assert_eq!(parse_xl_disk(spec).unwrap(), want, "{spec}");
        }
        let cd = DiskEntry {
            target: "/root/image.iso".into(),
            format: Some("raw".into()),
            vdev: "hdc".into(),
            cdrom: true,
            read_only: true,
            ..Default::default()
        };
        for spec in ["/root/image.iso,,hdc,cdrom", "raw:/root/image.iso,hdc:cdrom,ro"] {
            assert_eq!(parse_xl_disk(spec).unwrap(), cd, "{spec}");
        }
        let empty = DiskEntry { vdev: "hdc".into(), cdrom: true, read_only: true, ..Default::default() };
        for spec in [",hdc:cdrom,r", "devtype=cdrom,,,hdc"] {
            assert_eq!(parse_xl_disk(spec).unwrap(), empty, "{spec}");
        }
        let iscsi =
            parse_xl_disk("iscsi:iqn.2001-05.com.equallogic:0-8a0906-23fe93404-c82797962054a96d-examplehost,xvda,w")
                .unwrap();
        assert_eq!(iscsi.script.as_deref(), Some("block-iscsi"));
        assert_eq!(iscsi.vdev, "xvda");
        assert!(iscsi.target.starts_with("iqn.2001-05.com.equallogic:0-8a"));
        let drbd = parse_xl_disk("drbd:app01,hda,w").unwrap();
        assert_eq!((drbd.script.as_deref(), drbd.target.as_str()), (Some("block-drbd"), "app01"));
        // target= eats the rest, commas included
        let t = parse_xl_disk("vdev=xvdb, format=qcow2, target=/srv/a,b.qcow2").unwrap();
        assert_eq!(t.target, "/srv/a,b.qcow2");
        assert_eq!(t.format.as_deref(), Some("qcow2"));
        // tap:aio: prefixes are stripped
        let t = parse_xl_disk("tap:aio:/srv/x.img,xvda,w").unwrap();
        assert_eq!(t.target, "/srv/x.img");
    }

    #[test]
    fn xl_disk_errors() {
        for (spec, what) in [
            ("tap:vmdk:/srv/x.vmdk,xvda,w", "unknown deprecated disk prefix"),
            ("/x,raw,xvda,w!", "access"),
            ("/x,bogus,xvda", "format"),
            ("/x,raw,xvda,rw,extra", "too many"),
            ("foo=bar,/x,,xvda", "unknown parameter"),
            ("/x", "no vdev"),
            (",,xvda", "empty target"),
        ] {
            let e = parse_xl_disk(spec).unwrap_err().to_string();
            assert!(e.contains(what), "{spec}: {e}");
        }
    }

    #[test]
    fn xm_disk_specs() {
        let d = parse_xm_disk("phy:sda7,sda1,w").unwrap();
        assert_eq!((d.target.as_str(), d.vdev.as_str()), ("/dev/sda7", "sda1"));
        let d = parse_xm_disk("tap:qcow2:/srv/a.qcow2,xvda,w").unwrap();
        assert_eq!(d.format.as_deref(), Some("qcow2"));
        let d = parse_xm_disk("tap:tapdisk:vmdk:/srv/a.vmdk,xvdb,r").unwrap();
        assert_eq!((d.format.as_deref(), d.read_only), (Some("vmdk"), true));
        let d = parse_xm_disk("tap2:tapdisk:vhd:/srv/a.vhd,xvdc,w").unwrap();
        assert_eq!(d.format.as_deref(), Some("vhd"));
        let d = parse_xm_disk(",hdc:cdrom,r").unwrap();
        assert!(d.cdrom && d.target.is_empty());
        let d = parse_xm_disk("file:/iso/x.iso,ioemu:hdc:cdrom,r").unwrap();
        assert!(d.cdrom && d.vdev == "hdc");
        let d = parse_xm_disk("phy:/dev/vg/shared,xvdd,w!").unwrap();
        assert!(d.shared_write);
        let d = parse_xm_disk("iscsi:iqn.2001-05.com.example:disk1,xvde,w").unwrap();
        assert_eq!(d.script.as_deref(), Some("iscsi"));
        for (spec, what) in [
            ("foo:/x,xvda,w", "unknown disk prefix"),
            ("phy:/x,xvda", "3 to 5"),
            ("phy:/x,xvda,z", "mode"),
            ("tap:bogus:/x,xvda,w", "unknown tap: disk type"),
            (",xvda,w", "empty uname"),
        ] {
            let e = parse_xm_disk(spec).unwrap_err().to_string();
            assert!(e.contains(what), "{spec}: {e}");
        }
    }

    #[test]
    fn vifs() {
        let n = parse_vif("mac=00:16:3E:01:02:03, bridge=xenbr0,model=e1000").unwrap();
        assert_eq!(n.mac.as_deref(), Some("00:16:3e:01:02:03"));
        assert_eq!(n.network.as_deref(), Some("xenbr0"));
        assert!(parse_vif("mac=zz").is_err());
        assert_eq!(parse_vif("").unwrap().mac, None);
        assert_eq!(parse_c_int("0x10"), Some(16));
        assert_eq!(parse_c_int("010"), Some(8));
        assert_eq!(parse_c_int("-5"), Some(-5));
        assert_eq!(parse_c_int("5k"), None);
    }
}
