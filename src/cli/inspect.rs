//! `xva inspect`: read a guest definition (xm, xl, SXP, VMX, OVF, OVA) or bare disks and print
//! the plan — the VM record, every disk (format, chain, virtual and allocated size), CD drives,
//! NICs, snapshots, every note, and the boot advisories read from the guest's own disks —
//! without writing anything.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args as ClapArgs;
use serde_json::json;

use anyhow::Context;
use xva::backends::BlockReader;
use xva::guest::{self, Boot, Guest, GuestError};
use xva::plan::advice::{self, Advice};
use xva::plan::describe_source;

use super::exit::{coded, Exit};
use super::map::Style;
use super::open::OpenArgs;
use super::output::{human_bytes, sanitize};
use super::source::{input_error, load_options, SourceArgs};
use crate::cli::output::outln;

/// Show what `xva convert` would make of a guest definition.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The guest definition: an xm/xl config, config.sxp, .vmx, .ovf or .ova.
    #[arg(required_unless_present = "disks", conflicts_with = "disks")]
    pub source: Option<PathBuf>,
    /// Bare disk images instead of a definition (the first one boots), as `xva convert --disk`.
    #[arg(short = 'd', long = "disk", value_name = "PATH")]
    pub disks: Vec<PathBuf>,
    /// Output style.
    #[arg(long, value_enum, default_value_t = Style::Human)]
    pub output: Style,
    #[command(flatten)]
    pub src: SourceArgs,
    /// Inspect a VMware VM that looks running (lock files, .vmem).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub open: OpenArgs,
    /// The target the boot advisories are for: xcp-ng-8.3 (default), xenserver-8,
    /// citrix-8.2, xenserver-7.1, xenserver-6.5.
    #[arg(long, value_name = "NAME", value_parser = super::source::parse_target)]
    pub target: Option<xva::advise::Target>,
}

/// Opens disk `d` of a guest: a file or block device, or a window of an OVA.
pub fn open_disk(d: &guest::Disk, open: &OpenArgs) -> anyhow::Result<Box<dyn BlockReader>> {
    let opts = open.options()?;
    guest::open_disk(d, &opts).with_context(|| format!("cannot open disk {}", describe_source(d)))
}

struct DiskInfo {
    /// What the definition says that the image contradicts.
    checks: Vec<String>,
    format: Option<&'static str>,
    virtual_size: Option<u64>,
    allocated: Option<u64>,
    chain: Vec<String>,
    error: Option<String>,
    /// The opened disk, for inspection.
    reader: Option<Arc<dyn BlockReader>>,
}

fn disk_info(d: &guest::Disk, open: &OpenArgs) -> DiskInfo {
    match open_disk(d, open) {
        Ok(r) => {
            let size = r.virtual_size();
            let mut allocated = 0u64;
            let mut ok = true;
            for m in r.extents(0..size) {
                match m {
                    Ok(m) if m.data => allocated += m.len,
                    Ok(_) => {}
                    Err(_) => {
                        ok = false;
                        break;
                    }
                }
            }
            let mut checks = Vec::new();
            if let Some(h) = d.format.as_deref() {
                let declared = guest::declared_format(Some(h)).ok().flatten().map(|f| f.name);
                if declared.is_some_and(|n| n != r.format().name) {
                    checks.push(format!("the definition says {h}, the image is {}", r.format().name));
                }
            }
            if open.format.is_none() {
                checks.extend(guest::declared_raw_mismatch(d));
            }
            if let Some(c) = d.capacity.filter(|&c| c != size) {
                checks.push(format!("the definition says {c} bytes, the image holds {size}"));
            }
            DiskInfo {
                checks,
                format: Some(r.format().name),
                virtual_size: Some(size),
                allocated: ok.then_some(allocated),
                chain: r.layers().iter().map(|l| l.path().display().to_string()).collect(),
                error: None,
                reader: Some(Arc::from(r)),
            }
        }
        Err(e) => DiskInfo {
            checks: Vec::new(),
            format: None,
            virtual_size: None,
            allocated: None,
            chain: Vec::new(),
            error: Some(format!("{e:#}")),
            reader: None,
        },
    }
}

fn boot_text(b: &Boot) -> String {
    match b {
        Boot::Hvm { firmware, secure_boot, order } => format!(
            "HVM, {} firmware{}, boot order {order}",
            firmware.as_str().to_uppercase(),
            if *secure_boot { " with Secure Boot" } else { "" }
        ),
        Boot::PvBootloader { bootloader, args, .. } => {
            format!("PV via bootloader {bootloader} (xapi: pygrub), args {args:?}")
        }
        Boot::PvKernel { kernel, ramdisk, args } => format!(
            "PV direct kernel {kernel}{}, args {args:?}",
            ramdisk.as_ref().map(|r| format!(" + ramdisk {r}")).unwrap_or_default()
        ),
    }
}

/// Runs `xva inspect`.
pub fn run(args: Args) -> anyhow::Result<Exit> {
    let (source, g) = match &args.source {
        Some(p) => (p.clone(), guest::load(p, &load_options(&args.src, args.force, &args.open)).map_err(input_error)?),
        None => {
            // The guest `xva convert --disk` would make of the same disks.
            let src = xva::plan::Source::Disks(args.disks.clone());
            let ov = xva::plan::Overrides::default();
            let plan = xva::plan::prepare(src, &ov, &args.open.options()?, &xva::plan::Quiet)?;
            (args.disks[0].clone(), plan.guest)
        }
    };
    let infos: Vec<DiskInfo> = g.disks.iter().map(|d| disk_info(d, &args.open)).collect();
    let sizes: Option<Vec<u64>> = infos.iter().map(|i| i.virtual_size).collect();
    let spec = sizes.as_ref().map(|s| xva::plan::vm_spec(&g, s));
    // Inspection needs every disk (rules look at the boot disk and across disks).
    let target = args.target.unwrap_or_default();
    let readers: Option<Vec<Arc<dyn BlockReader>>> = infos.iter().map(|i| i.reader.clone()).collect();
    let advice = readers.map(|r| advice::advise(&g, &r, &target)).unwrap_or_default();
    if args.output == Style::Json {
        print_json(&source, &g, &infos, spec, &advice, &target)?;
    } else {
        print_human(&source, &g, &infos, spec)?;
        print_advice(&advice, &target)?;
    }
    let unreadable = infos.iter().filter(|i| i.error.is_some()).count();
    if unreadable > 0 {
        return Err(coded(Exit::Input, format!("{unreadable} disk(s) cannot be opened; the conversion would fail")));
    }
    Ok(Exit::Success)
}

fn print_json(
    source: &Path,
    g: &Guest,
    infos: &[DiskInfo],
    spec: Option<Result<xva::xva::records::VmSpec, GuestError>>,
    advice: &Advice,
    target: &xva::advise::Target,
) -> anyhow::Result<()> {
    let mut v = serde_json::to_value(g)?;
    let disks: Vec<serde_json::Value> = g
        .disks
        .iter()
        .zip(infos)
        .enumerate()
        .map(|(i, (d, info))| {
            json!({
                "index": i,
                "device": d.device,
                "source": describe_source(d),
                "format_hint": d.format,
                "format": info.format,
                "virtual_size": info.virtual_size,
                "allocated_bytes": info.allocated,
                "chain": info.chain,
                "checks": info.checks,
                "error": info.error,
                "inspection": match advice.disks.get(i) {
                    Some(Ok(f)) => json!(f),
                    Some(Err(e)) => json!({"error": e}),
                    None => json!(null),
                },
            })
        })
        .collect();
    let record = match spec {
        Some(Ok(s)) => json!({
            "name": s.name,
            "memory": {"static_min": s.memory.static_min, "dynamic_min": s.memory.dynamic_min,
                       "dynamic_max": s.memory.dynamic_max, "static_max": s.memory.static_max},
            "vcpus_max": s.vcpus_max,
            "vcpus_at_startup": s.vcpus_at_startup,
            "domain_type": if s.boot.is_hvm() { "hvm" } else { "pv" },
            "platform": {"acpi": s.platform.acpi, "apic": s.platform.apic, "pae": s.platform.pae,
                         "nx": s.platform.nx, "viridian": s.platform.viridian,
                         "timeoffset": s.platform.timeoffset},
            "disks": s.disks.iter().map(|d| json!({"userdevice": d.userdevice, "bootable": d.bootable,
                         "read_only": d.read_only, "virtual_size": d.virtual_size})).collect::<Vec<_>>(),
            "cdrom": s.cdrom,
            "vifs": s.vifs.iter().map(|x| json!({"device": x.device, "mac": x.mac, "network": x.network})).collect::<Vec<_>>(),
        }),
        Some(Err(e)) => json!({"error": e.to_string()}),
        None => json!(null),
    };
    if let Some(o) = v.as_object_mut() {
        o.insert("path".into(), json!(source.display().to_string()));
        o.insert("disk_images".into(), json!(disks));
        o.insert("vm_record".into(), record);
        o.insert("target".into(), json!(target.name));
        o.insert("advisories".into(), json!(advice.advisories));
    }
    outln!("{}", serde_json::to_string_pretty(&v)?)?;
    Ok(())
}

fn print_human(
    source: &Path,
    g: &Guest,
    infos: &[DiskInfo],
    spec: Option<Result<xva::xva::records::VmSpec, GuestError>>,
) -> std::io::Result<()> {
    let s = |t: &str| sanitize(t);
    outln!("source:       {} ({})", s(&source.display().to_string()), g.source_kind)?;
    outln!("name:         {}", s(&g.name))?;
    if !g.description.is_empty() {
        outln!("description:  {}", s(&g.description.replace('\n', " / ")))?;
    }
    if let Some(os) = &g.os {
        outln!("os:           {} ({})", s(&os.name), s(&os.source_id))?;
    }
    let m = g.memory;
    if m.static_max == m.dynamic_max {
        outln!("memory:       {}", human_bytes(m.dynamic_max))?;
    } else {
        outln!("memory:       {} (maximum {})", human_bytes(m.dynamic_max), human_bytes(m.static_max))?;
    }
    outln!("vcpus:        {} (max {})", g.vcpus.at_startup, g.vcpus.max)?;
    outln!("boot:         {}", s(&boot_text(&g.boot)))?;
    if let Some(Ok(spec)) = &spec {
        let p = &spec.platform;
        outln!(
            "platform:     acpi={} apic={} pae={} nx={} viridian={} timeoffset={}",
            p.acpi,
            p.apic,
            p.pae,
            p.nx,
            p.viridian,
            p.timeoffset.unwrap_or(0)
        )?;
    }
    outln!("disks:        {}", g.disks.len())?;
    let userdevices = xva::xva::records::VmSpec::userdevices(g.disks.len(), !g.cdroms.is_empty());
    for (i, (d, info)) in g.disks.iter().zip(infos).enumerate() {
        outln!(
            "  [{i}] userdevice {}{}{}  {} ({:?})",
            userdevices.get(i).copied().unwrap_or(0),
            if d.bootable { ", bootable" } else { "" },
            if d.read_only { ", read-only" } else { "" },
            s(&d.device),
            d.controller
        )?;
        outln!("      source: {}", s(&describe_source(d)))?;
        match &info.error {
            Some(e) => outln!("      cannot open: {}", s(e))?,
            None => {
                outln!(
                    "      format: {}, virtual size {} ({} bytes), allocated {}",
                    info.format.unwrap_or("?"),
                    human_bytes(info.virtual_size.unwrap_or(0)),
                    info.virtual_size.unwrap_or(0),
                    info.allocated.map(human_bytes).unwrap_or_else(|| "?".into())
                )?;
                if info.chain.len() > 1 {
                    outln!("      chain:  {}", s(&info.chain.join(" -> ")))?;
                }
                for c in &info.checks {
                    outln!("      check:  {}", s(c))?;
                }
            }
        }
    }
    for c in &g.cdroms {
        outln!(
            "cd drive:     {} {}",
            s(&c.device),
            c.media.as_ref().map(|m| format!("(had {}; imported empty)", s(m))).unwrap_or_else(|| "(empty)".into())
        )?;
    }
    for (i, n) in g.nics.iter().enumerate() {
        outln!(
            "nic {i}:        mac {}, network {}, model {}",
            n.mac.as_deref().unwrap_or("(generated)"),
            s(n.network.as_deref().unwrap_or("-")),
            s(n.model.as_deref().unwrap_or("-"))
        )?;
    }
    for sn in &g.snapshots {
        outln!(
            "snapshot:     {} {:?}{}{}",
            sn.uid,
            s(&sn.name),
            sn.parent.map(|p| format!(" (parent {p})")).unwrap_or_default(),
            if sn.current { " [current]" } else { "" }
        )?;
    }
    if let Some(Err(e)) = &spec {
        outln!("vm record:    INVALID: {}", s(&e.to_string()))?;
    }
    if g.notes.is_empty() {
        outln!("notes:        none")?;
    } else {
        outln!("notes:")?;
        let mut notes = g.notes.clone();
        notes.sort_by_key(|n| std::cmp::Reverse(n.severity));
        for n in notes {
            outln!("  {:<9} {}", n.severity.to_string(), s(&n.message))?;
        }
    }
    Ok(())
}

/// The advisories, after the notes; nothing at all when there are none.
fn print_advice(advice: &Advice, target: &xva::advise::Target) -> std::io::Result<()> {
    if advice.advisories.is_empty() {
        return Ok(());
    }
    let s = |t: &str| sanitize(t);
    outln!("advisories:   (target {})", target.name)?;
    for a in &advice.advisories {
        outln!("  {:<5} {:<4} {}", a.severity.to_string(), a.code, s(&a.message))?;
        outln!("             evidence: {}", s(&a.evidence))?;
        outln!("             fix: {}", s(&a.fix))?;
    }
    Ok(())
}
