//! The mapping from Xen option names to the [`Guest`] model, shared by xm (after evaluation)
//! and xl (after parsing): memory, vCPUs, boot mode, platform flags, disks, NICs, and notes for
//! the settings that cannot be carried over.

use super::{add_disk, mib, parse_vif, parse_xl_disk, parse_xm_disk, Dialect, Opts, XVal};
use crate::guest::error::{GuestError, Result};
use crate::guest::model::{boot_order, Boot, Firmware, Guest, Memory, Nic, Severity, SourceKind, Vcpus};

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
