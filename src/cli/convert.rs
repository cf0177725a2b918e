//! `xva convert`: disks (and VM settings) in, an XVA file out.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args as ClapArgs, ValueEnum};
use serde_json::json;

use xva::backends::BlockReader;
use xva::xva::records::{self, Boot, DiskSpec, Firmware, Memory, Platform, VifSpec, VmSpec};
use xva::xva::writer::{self, ChecksumKind, DiskSource, WriteError, WriteOptions};

use super::exit::{coded, Exit};
use super::open::OpenArgs;
use super::outfile::{output_io_error, PendingOutput};
use super::output::{human_bytes, sanitize};
use super::{progress, signals};

pub const AFTER_HELP: &str = "\
Examples:
  xva convert /etc/xen/web01 -o web01.xva                       (xm/xl config, SXP, .vmx, .ovf, .ova)
  xva convert web01.vmx --memory 4096 --hvm -o web01.xva        (command-line values override)
  xva convert --disk web01.img --name web01 --memory 2048 --vcpus 2 -o web01.xva
  xva convert -d /dev/vg0/web01-root -d /dev/vg0/web01-data -n web01 --pv -o web01.xva
  xva -d web01.img -n web01 -m 2048 -v 2 -f web01.xva          (xva.py's spelling)

With a SOURCE, the VM settings and disks come from the guest definition (see `xva inspect`);
any option given here overrides it, and --disk replaces its disks. Without one, the first
--disk is the boot disk (userdevice 0). Zero blocks are never written, and ranges a
disk image reports as holes are never read. The XVA is written to a hidden temporary file in
the output directory and appears under its name only when complete.";

/// Convert a guest (a config, .vmx, .ovf or .ova) or disks into an XVA file.
#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Guest definition: an xm/xend or xl config, config.sxp, .vmx, .ovf or .ova (detected by
    /// content; --source-type overrides).
    #[arg(value_name = "SOURCE")]
    pub source: Option<PathBuf>,

    /// The guest definition, as xva.py's -c/--config spelled it.
    #[arg(short = 'c', long = "config", value_name = "FILE", conflicts_with = "source")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub src: super::inspect::SourceArgs,

    /// Convert a VMware VM that looks running (lock files, .vmem): its disks may be inconsistent.
    #[arg(long)]
    pub force_running: bool,

    /// Disk image or block device (repeatable; the first is the boot disk). With a SOURCE,
    /// replaces the disks it names.
    #[arg(short = 'd', long = "disk", value_name = "PATH", required_unless_present_any = ["source", "config"])]
    pub disks: Vec<PathBuf>,

    /// Output XVA file.
    #[arg(
        short = 'o',
        long = "output",
        visible_alias = "filename",
        short_alias = 'f',
        value_name = "FILE",
        required_unless_present = "server"
    )]
    pub output: Option<PathBuf>,

    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,

    /// VM name (default: the first disk's file name without extension).
    #[arg(short = 'n', long)]
    pub name: Option<String>,

    /// VM description.
    #[arg(long)]
    pub description: Option<String>,

    /// Memory in MiB (default without a SOURCE: 256).
    #[arg(short = 'm', long, value_name = "MiB")]
    pub memory: Option<u64>,

    /// Number of virtual CPUs (default without a SOURCE: 1).
    #[arg(short = 'v', long, value_name = "N")]
    pub vcpus: Option<u32>,

    /// Hardware-virtualised guest (the default).
    #[arg(long, visible_alias = "is-hvm", conflicts_with = "pv")]
    pub hvm: bool,

    /// Paravirtualised guest booting through pygrub. XenServer 8 and XCP-ng 8.3 cannot start
    /// PV guests; prefer --hvm when the disk has its own bootloader.
    #[arg(long, visible_alias = "is-pv")]
    pub pv: bool,

    /// Kernel arguments for a PV guest (passed through pygrub).
    #[arg(short = 'a', long = "args", value_name = "ARGS")]
    pub pv_args: Option<String>,

    /// HVM firmware (default: the source's, or bios).
    #[arg(long, value_enum)]
    pub firmware: Option<FirmwareArg>,

    /// Enable UEFI Secure Boot (UEFI guests only).
    #[arg(long)]
    pub secure_boot: bool,

    /// Disable ACPI.
    #[arg(long)]
    pub no_acpi: bool,
    /// Disable the local APIC.
    #[arg(long)]
    pub no_apic: bool,
    /// Disable PAE.
    #[arg(long)]
    pub no_pae: bool,
    /// Enable the NX (no-execute) bit.
    #[arg(long)]
    pub nx: bool,
    /// Enable Viridian (Hyper-V) enlightenments; recommended for Windows guests.
    #[arg(long, conflicts_with = "no_viridian")]
    pub viridian: bool,
    /// Disable Viridian (the default; accepted for xva.py command lines).
    #[arg(long)]
    pub no_viridian: bool,

    /// Add an empty CD drive (userdevice 3).
    #[arg(long)]
    pub cdrom: bool,

    /// Add a network interface: `auto` for a generated MAC, or a MAC address (repeatable).
    /// Default: one interface with a generated MAC. A given MAC is kept only when the host
    /// imports with restore mode.
    #[arg(long = "vif", value_name = "auto|MAC")]
    pub vifs: Vec<String>,

    /// No network interface at all.
    #[arg(long, conflicts_with = "vifs")]
    pub no_vif: bool,

    /// Network for the interfaces, by name on the target host (default: "Pool-wide network
    /// associated with eth0", or the one matching the source's xenbrN bridge).
    #[arg(long)]
    pub network: Option<String>,

    /// Checksum members: sha1 works with every XenServer; xxhash needs xapi 1.170 or later
    /// (Citrix Hypervisor 8.1+, XCP-ng 8.1+) and is cheaper.
    #[arg(long, value_enum, default_value_t = ChecksumArg::Sha1)]
    pub checksum: ChecksumArg,

    /// Worker threads for reading and hashing (default: one per CPU).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,

    /// Print a machine-readable summary (JSON) on standard output when done.
    #[arg(long)]
    pub json: bool,

    /// After writing, read the XVA back as xapi would and prove each disk's SHA-256 equals the
    /// digest taken while reading the source.
    #[arg(long)]
    pub verify: bool,

    /// Accepted for xva.py command lines; zero chunks are always omitted.
    #[arg(long, hide = true)]
    pub sparse: bool,

    #[command(flatten)]
    pub open: OpenArgs,

    #[command(flatten)]
    pub upload: Box<super::upload::UploadArgs>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FirmwareArg {
    Bios,
    Uefi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ChecksumArg {
    Sha1,
    Xxhash,
}

/// Opens every disk, reporting all failures at once.
fn open_disks(paths: &[PathBuf], open: &OpenArgs) -> anyhow::Result<Vec<Box<dyn BlockReader>>> {
    let mut readers = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match open.open(p) {
            Ok(r) => readers.push(r),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    match errors.len() {
        0 => Ok(readers),
        1 => Err(coded(Exit::Input, errors.remove(0))),
        n => Err(coded(Exit::Input, format!("{n} disks cannot be opened:\n  {}", errors.join("\n  ")))),
    }
}

/// The VM description for bare disks (no SOURCE): xva.py's defaults.
fn bare_vm_spec(args: &Args, readers: &[Box<dyn BlockReader>]) -> VmSpec {
    let name = args.disks[0].file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "Unnamed".into());
    let boot = if args.pv { Boot::pv_pygrub("") } else { Boot::hvm_bios() };
    let userdevices = VmSpec::userdevices(readers.len(), args.cdrom);
    let disks = readers
        .iter()
        .zip(&userdevices)
        .enumerate()
        .map(|(i, (r, &u))| DiskSpec {
            name: format!("{name} disk {i}"),
            virtual_size: r.virtual_size(),
            userdevice: u,
            bootable: i == 0,
            read_only: false,
        })
        .collect();
    let vifs = vec![VifSpec {
        device: 0,
        mac: None,
        network: records::DEFAULT_NETWORK.into(),
        bridge: records::DEFAULT_BRIDGE.into(),
    }];
    VmSpec {
        name,
        description: String::new(),
        memory: Memory::fixed(256 << 20),
        vcpus_max: 1,
        vcpus_at_startup: 1,
        boot,
        platform: Platform::default(),
        disks,
        cdrom: args.cdrom,
        vifs,
    }
}

/// Disks opened and the VM record made, before the command-line overrides.
struct Opened {
    readers: Vec<Box<dyn BlockReader>>,
    vm: VmSpec,
    labels: Vec<String>,
}

/// Loads the guest definition, applies the command-line changes that must happen before the
/// disks are opened (boot mode, replacement disks, a CD drive), opens the disks and maps the
/// guest to a VM record. The definition's notes go to standard error.
fn guest_vm_spec(source: &Path, args: &Args) -> anyhow::Result<Opened> {
    use xva::guest;
    let lo = super::inspect::load_options(&args.src, args.force_running, &args.open);
    let mut g = guest::load(source, &lo).map_err(super::inspect::input_error)?;
    if args.hvm {
        g.force_hvm();
    } else if args.pv && !g.boot.is_pv() {
        g.boot = guest::Boot::PvBootloader {
            bootloader: "pygrub".into(),
            bootloader_args: String::new(),
            args: String::new(),
        };
        g.note(guest::Severity::Warning, "boot mode changed from HVM to PV (pygrub) by --pv");
    }
    if !args.disks.is_empty() {
        g.disks = args
            .disks
            .iter()
            .enumerate()
            .map(|(i, p)| guest::Disk {
                source: guest::DiskSource::Path { path: p.clone() },
                format: None,
                bootable: i == 0,
                read_only: false,
                controller: guest::Controller::Xen,
                device: format!("--disk {}", i + 1),
                partition: None,
                capacity: None,
            })
            .collect();
    }
    if args.cdrom && g.cdroms.is_empty() {
        g.cdroms.push(guest::Cdrom { media: None, device: "--cdrom".into() });
    }
    let readers = g.open_disks(&args.open.options()?).map_err(super::inspect::input_error)?;
    let sizes: Vec<u64> = readers.iter().map(|r| r.virtual_size()).collect();
    let vm = g.to_vm_spec(&sizes).map_err(super::inspect::input_error)?;
    for n in &g.notes {
        eprintln!("xva: {}: {}", n.severity, sanitize(&n.message));
    }
    let labels = g.disks.iter().map(super::inspect::describe_source).collect();
    Ok(Opened { readers, vm, labels })
}

/// Applies the command-line values that override the VM record.
fn apply_overrides(vm: &mut VmSpec, args: &Args) -> anyhow::Result<()> {
    if let Some(n) = &args.name {
        vm.name = n.clone();
    }
    if let Some(d) = &args.description {
        vm.description = d.clone();
    }
    if let Some(mib) = args.memory {
        let bytes = mib
            .checked_mul(1 << 20)
            .filter(|&m| m > 0)
            .ok_or_else(|| coded(Exit::Usage, format!("--memory {mib} MiB is not a usable memory size")))?;
        vm.memory = Memory::fixed(bytes);
    }
    if let Some(n) = args.vcpus {
        vm.vcpus_max = n;
        vm.vcpus_at_startup = n;
    }
    match &mut vm.boot {
        Boot::Hvm { firmware, secure_boot, .. } => {
            if let Some(f) = args.firmware {
                *firmware = match f {
                    FirmwareArg::Bios => Firmware::Bios,
                    FirmwareArg::Uefi => Firmware::Uefi,
                };
            }
            if args.secure_boot {
                *secure_boot = true;
            }
            if *secure_boot && *firmware != Firmware::Uefi {
                return Err(coded(Exit::Usage, "--secure-boot needs UEFI firmware (--firmware uefi)"));
            }
        }
        Boot::Pv { args: kernel_args, .. } => {
            if args.firmware.is_some() || args.secure_boot {
                return Err(coded(Exit::Usage, "--firmware and --secure-boot apply to HVM guests, this one is PV"));
            }
            if let Some(a) = &args.pv_args {
                *kernel_args = a.clone();
            }
        }
    }
    let p = &mut vm.platform;
    p.acpi &= !args.no_acpi;
    p.apic &= !args.no_apic;
    p.pae &= !args.no_pae;
    p.nx |= args.nx;
    if args.viridian {
        p.viridian = true;
    } else if args.no_viridian {
        p.viridian = false;
    }
    if args.no_vif {
        vm.vifs.clear();
    } else if !args.vifs.is_empty() {
        vm.vifs = args
            .vifs
            .iter()
            .enumerate()
            .map(|(i, v)| VifSpec {
                device: i as u32,
                mac: (v != "auto").then(|| v.clone()),
                network: records::DEFAULT_NETWORK.into(),
                bridge: records::DEFAULT_BRIDGE.into(),
            })
            .collect();
    }
    if let Some(net) = &args.network {
        for v in &mut vm.vifs {
            v.network = net.clone();
        }
    }
    vm.check().map_err(|e| coded(Exit::Usage, e.to_string()))
}

/// Everything a conversion needs before the first byte is written: the opened disks, the VM
/// description and its `ova.xml`. Shared by file output and upload.
pub struct Prepared {
    /// The disks, in VDI order.
    pub readers: Vec<Box<dyn BlockReader>>,
    /// The VM description.
    pub vm: VmSpec,
    /// `ova.xml`.
    pub xml: String,
    /// VDI ids, one per disk.
    pub ids: Vec<String>,
    /// Where each disk comes from, for messages.
    pub labels: Vec<String>,
}

impl Prepared {
    /// The writer's view of the disks.
    pub fn sources(&self) -> Vec<DiskSource<'_>> {
        self.readers.iter().zip(&self.ids).map(|(r, id)| DiskSource { id, reader: r.as_ref() }).collect()
    }

    /// Sum of the disks' virtual sizes.
    pub fn total_size(&self) -> u64 {
        self.readers.iter().map(|r| r.virtual_size()).sum()
    }
}

/// Opens and checks everything the command line names (all disk errors reported at once):
/// the guest definition or the bare disks, then the command-line overrides.
pub fn prepare(args: &Args) -> anyhow::Result<Prepared> {
    args.open.options()?; // a bad --format is a usage error, not one per disk
    let Opened { readers, mut vm, labels } = match args.source.as_ref().or(args.config.as_ref()) {
        Some(source) => guest_vm_spec(source, args)?,
        None => {
            let readers = open_disks(&args.disks, &args.open)?;
            let vm = bare_vm_spec(args, &readers);
            Opened { readers, vm, labels: args.disks.iter().map(|p| p.display().to_string()).collect() }
        }
    };
    apply_overrides(&mut vm, args)?;
    let xml = records::ova_xml(&vm).map_err(|e| coded(Exit::Usage, e.to_string()))?;
    let ids = (0..readers.len()).map(records::vdi_id).collect();
    Ok(Prepared { readers, vm, xml, ids, labels })
}

/// Writer options from the command line.
pub fn write_options(args: &Args) -> WriteOptions<'static> {
    WriteOptions {
        checksum: match args.checksum {
            ChecksumArg::Sha1 => ChecksumKind::Sha1,
            ChecksumArg::Xxhash => ChecksumKind::Xxhash,
        },
        threads: args.threads,
        disk_sha256: args.json || args.verify,
        cancel: Some(&signals::CANCEL),
    }
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    // From here on SIGINT/SIGTERM only set a flag: no signal can kill us between creating the
    // temporary file and removing it.
    signals::install();
    // Everything that can be checked is checked before the first byte is written.
    let prepared = prepare(&args)?;
    if args.upload.server.is_some() {
        return super::upload::run(&args, prepared);
    }
    let output = args.output.clone().ok_or_else(|| coded(Exit::Usage, "--output FILE or --server HOST is required"))?;
    let mut pending = PendingOutput::create(&output, args.force)?;
    let data_bytes = estimate_data_bytes(&prepared.readers)?;
    warn_if_short_of_space(&output, data_bytes);

    let Prepared { vm, xml, .. } = &prepared;
    let sources = prepared.sources();
    let total = prepared.total_size();
    let bar = progress::Bar::new(total, !args.json, "converting");
    let opts = write_options(&args);
    let started = Instant::now();
    let result = writer::write_xva(&mut pending.writer(), xml, &sources, &opts, &|done| bar.set(done));
    bar.finish();
    let summary = match result {
        Ok(s) => s,
        Err(WriteError::Cancelled) => {
            drop(pending);
            eprintln!("xva: interrupted; {} was not written", output.display());
            return Ok(Exit::Interrupted);
        }
        Err(WriteError::Write(e)) => return Err(output_io_error(e, &output)),
        Err(WriteError::Read { disk, source }) => {
            return Err(anyhow::Error::new(source)
                .context(format!("reading disk {}", prepared.labels[disk]))
                .context(coded(Exit::Input, format!("{} was not written", output.display()))));
        }
        Err(e @ WriteError::Invalid(_)) => return Err(coded(Exit::Usage, e.to_string())),
    };
    pending.commit()?;
    let elapsed = started.elapsed();

    let verified = if args.verify { Some(verify_written(&output, &summary)?) } else { None };

    if args.json {
        let disks: Vec<_> = summary
            .disks
            .iter()
            .zip(&prepared.labels)
            .map(|(d, label)| {
                json!({
                    "source": label,
                    "vdi": d.id,
                    "virtual_size": d.virtual_size,
                    "bytes_read": d.bytes_read,
                    "chunks_written": d.chunks_written,
                    "chunks_skipped": d.chunks_skipped,
                    "sha256": d.sha256.map(|h| xva::hex::lower(&h)),
                })
            })
            .collect();
        let v = json!({
            "output": output.display().to_string(),
            "vm": vm.name,
            "tar_bytes": summary.tar_bytes,
            "bytes_read": summary.disks.iter().map(|d| d.bytes_read).sum::<u64>(),
            "chunks_written": summary.disks.iter().map(|d| d.chunks_written).sum::<u64>(),
            "chunks_skipped": summary.disks.iter().map(|d| d.chunks_skipped).sum::<u64>(),
            "duration_seconds": elapsed.as_secs_f64(),
            "verified": verified,
            "disks": disks,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let read: u64 = summary.disks.iter().map(|d| d.bytes_read).sum();
        let written: u64 = summary.disks.iter().map(|d| d.chunks_written).sum();
        let skipped: u64 = summary.disks.iter().map(|d| d.chunks_skipped).sum();
        let secs = elapsed.as_secs_f64().max(1e-6);
        eprintln!(
            "wrote {} ({}): VM {:?}, {} disk(s), {} virtual, {} read, {written} chunks written, {skipped} zero chunks omitted, {:.1} s ({}/s)",
            sanitize(&output.display().to_string()),
            human_bytes(summary.tar_bytes),
            sanitize(&vm.name),
            summary.disks.len(),
            human_bytes(total),
            human_bytes(read),
            secs,
            human_bytes((read as f64 / secs) as u64),
        );
        if verified == Some(true) {
            eprintln!("verified: every disk's SHA-256 in the XVA equals the source's");
        }
    }
    Ok(Exit::Success)
}

/// Bytes the allocation maps say must be read: an upper bound of the chunk data written.
fn estimate_data_bytes(readers: &[Box<dyn BlockReader>]) -> anyhow::Result<u64> {
    let mut total = 0u64;
    for r in readers {
        for m in r.extents(0..r.virtual_size()) {
            let m = m.with_context(|| format!("reading the allocation map of {}", r.path().display()))?;
            if m.data {
                total = total.saturating_add(m.len);
            }
        }
    }
    Ok(total)
}

/// Warns (does not fail: zero blocks inside data ranges are not written) when the output file
/// system has less room than the data the disks hold.
fn warn_if_short_of_space(output: &Path, data_bytes: u64) {
    let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: statvfs fills the zeroed struct we own; the path is a valid NUL-terminated string.
    let free = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return;
        }
        st.f_bavail as u64 * st.f_frsize as u64
    };
    if free < data_bytes {
        eprintln!(
            "xva: warning: {} has {} free, the disks hold up to {} of data; the write may run out of space",
            dir.display(),
            human_bytes(free),
            human_bytes(data_bytes)
        );
    }
}

/// Reads the finished XVA back and compares each disk's SHA-256 with the source's.
///
/// The XVA is read the way xapi's importer reads it (`xva::xva::validate`), so a rule
/// violation fails the check as much as a digest mismatch.
fn verify_written(path: &Path, summary: &writer::WriteSummary) -> anyhow::Result<bool> {
    use xva::xva::validate::{verify_path, VerifyOptions};
    let report = verify_path(path, &VerifyOptions { compute_sha256: true })
        .with_context(|| format!("reading back {}", path.display()))?;
    if let Some(f) = report.errors().chain(report.corruptions()).next() {
        return Err(coded(Exit::Verify, format!("--verify: {} does not pass xapi's rules: {f}", path.display())));
    }
    if report.disks.len() != summary.disks.len() {
        return Err(coded(
            Exit::Verify,
            format!(
                "--verify: {} holds {} disks, {} were written",
                path.display(),
                report.disks.len(),
                summary.disks.len()
            ),
        ));
    }
    for (written, read) in summary.disks.iter().zip(&report.disks) {
        let (Some(want), Some(got)) = (written.sha256, read.sha256) else {
            return Err(coded(Exit::Verify, format!("--verify: no digest for disk {}", written.id)));
        };
        if read.id != written.id || want != got {
            return Err(coded(
                Exit::Verify,
                format!(
                    "--verify: disk {} differs: source SHA-256 {}, XVA SHA-256 {}",
                    written.id,
                    xva::hex::lower(&want),
                    xva::hex::lower(&got)
                ),
            ));
        }
    }
    Ok(true)
}
