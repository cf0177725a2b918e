//! From the guest model to the XVA's VM record ([`crate::xva::records::VmSpec`]).
//!
//! HVM: `BIOS order` with the source's firmware; platform flags from the source, defaulting to
//! acpi/apic/pae on, viridian (and nx) on for Windows. PV: `pygrub` for any bootloader the
//! source used, or direct kernel boot with the dom0 paths (the kernel must be placed on the
//! target host; the notes say so). Disks keep the model's order (boot disk first, userdevice
//! 0, skipping 3 when there is a CD drive); CD drives collapse into one empty RO CD at
//! userdevice 3; VIFs keep the source MACs.

use crate::guest::{Boot, Firmware, Guest, GuestError};
use crate::xva::records::{self, DiskSpec, VifSpec, VmSpec};

/// The VM record for `guest`, with `disk_sizes[i]` the virtual size in bytes of
/// `guest.disks[i]` (read from the opened image), checked as xapi would.
pub fn vm_spec(guest: &Guest, disk_sizes: &[u64]) -> Result<VmSpec, GuestError> {
    let vm = vm_spec_unchecked(guest, disk_sizes)?;
    vm.check().map_err(|e| GuestError::invalid(e.to_string()))?;
    Ok(vm)
}

/// [`vm_spec`] without the final check (the plan checks after the overrides).
pub(crate) fn vm_spec_unchecked(g: &Guest, disk_sizes: &[u64]) -> Result<VmSpec, GuestError> {
    if disk_sizes.len() != g.disks.len() {
        return Err(GuestError::invalid(format!("{} disk sizes given for {} disks", disk_sizes.len(), g.disks.len())));
    }
    let windows = g.is_windows();
    let boot = match &g.boot {
        Boot::Hvm { firmware, secure_boot, order } => records::Boot::Hvm {
            firmware: *firmware,
            secure_boot: *secure_boot && *firmware == Firmware::Uefi,
            order: order.clone(),
        },
        Boot::PvBootloader { args, .. } => records::Boot::Pv {
            bootloader: "pygrub".into(),
            kernel: String::new(),
            ramdisk: String::new(),
            args: args.clone(),
        },
        Boot::PvKernel { kernel, ramdisk, args } => records::Boot::Pv {
            bootloader: String::new(),
            kernel: kernel.clone(),
            ramdisk: ramdisk.clone().unwrap_or_default(),
            args: args.clone(),
        },
    };
    let p = &g.platform;
    let platform = records::Platform {
        acpi: p.acpi.unwrap_or(true),
        apic: p.apic.unwrap_or(true),
        pae: p.pae.unwrap_or(true),
        nx: p.nx.unwrap_or(windows),
        viridian: p.viridian.unwrap_or(windows),
        timeoffset: Some(p.timeoffset.unwrap_or(0)),
        extra: Vec::new(),
    };
    let cdrom = !g.cdroms.is_empty();
    let userdevices = VmSpec::userdevices(g.disks.len(), cdrom);
    let disks = g
        .disks
        .iter()
        .zip(disk_sizes)
        .zip(&userdevices)
        .map(|((d, &size), &u)| DiskSpec {
            name: format!("{} {}", g.name, d.device),
            virtual_size: size,
            userdevice: u,
            bootable: d.bootable,
            read_only: d.read_only,
        })
        .collect();
    let vifs = g
        .nics
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (network, bridge) = target_network(n.network.as_deref());
            VifSpec { device: i as u32, mac: n.mac.clone(), network, bridge }
        })
        .collect();
    let m = g.memory;
    let vm = VmSpec {
        name: g.name.clone(),
        description: g.description.clone(),
        memory: records::Memory {
            static_min: m.static_min,
            dynamic_min: m.dynamic_min,
            dynamic_max: m.dynamic_max,
            static_max: m.static_max,
        },
        vcpus_max: g.vcpus.max,
        vcpus_at_startup: g.vcpus.at_startup,
        boot,
        platform,
        disks,
        cdrom,
        vifs,
    };
    Ok(vm)
}

/// The target network for a source bridge/network name: `xenbrN` → the pool-wide network of
/// `ethN` (XenServer's naming), anything else → the default network.
fn target_network(source: Option<&str>) -> (String, String) {
    if let Some(n) = source.and_then(|s| s.strip_prefix("xenbr")) {
        if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            return (format!("Pool-wide network associated with eth{n}"), format!("xenbr{n}"));
        }
    }
    (records::DEFAULT_NETWORK.to_string(), records::DEFAULT_BRIDGE.to_string())
}
