//! `xva convert`: disks (and VM settings) in, an XVA file out.

use std::path::PathBuf;

use clap::{Args as ClapArgs, ValueEnum};
use serde_json::json;

use xva::plan::file::{self, FileTarget, Outcome};
use xva::plan::{self as planner, Overrides, Source};
use xva::vm::Firmware;
use xva::xva::writer::{ChecksumKind, WriteOptions};

use super::exit::{coded, Exit};
use super::open::OpenArgs;
use super::output::{human_bytes, sanitize};
use super::progress::Report;
use super::source::{load_options, SourceArgs};
use super::{signals, upload};
use crate::cli::output::{errln, outln};

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
    pub src: SourceArgs,

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
    #[arg(long, value_parser = parse_firmware())]
    pub firmware: Option<Firmware>,

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

    /// The target the boot advisories are for: xcp-ng-8.3 (default), xenserver-8,
    /// citrix-8.2, xenserver-7.1, xenserver-6.5.
    #[arg(long, value_name = "NAME", value_parser = super::source::parse_target)]
    pub target: Option<xva::advise::Target>,

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
    pub upload: Box<upload::UploadArgs>,
}

/// `--firmware`: the library's [`Firmware`], offered as `bios` and `uefi`.
fn parse_firmware() -> impl clap::builder::TypedValueParser<Value = Firmware> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Firmware::ALL.map(Firmware::as_str))
        .map(|s| s.parse::<Firmware>().expect("a possible value parses"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ChecksumArg {
    Sha1,
    Xxhash,
}

/// The command line's changes to the VM, as the library's [`Overrides`].
fn overrides(args: &Args) -> Overrides {
    Overrides {
        disks: args.disks.clone(),
        name: args.name.clone(),
        description: args.description.clone(),
        memory_mib: args.memory,
        vcpus: args.vcpus,
        hvm: args.hvm,
        pv: args.pv,
        pv_args: args.pv_args.clone(),
        firmware: args.firmware,
        secure_boot: args.secure_boot,
        no_acpi: args.no_acpi,
        no_apic: args.no_apic,
        no_pae: args.no_pae,
        nx: args.nx,
        viridian: if args.viridian {
            Some(true)
        } else if args.no_viridian {
            Some(false)
        } else {
            None
        },
        cdrom: args.cdrom,
        vifs: if args.no_vif {
            Some(Vec::new())
        } else if args.vifs.is_empty() {
            None
        } else {
            Some(args.vifs.clone())
        },
        network: args.network.clone(),
        target: args.target,
    }
}

/// Writer options from the command line.
fn write_options(args: &Args) -> WriteOptions<'static> {
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
    let open = args.open.options()?; // a bad --format is a usage error, not one per disk
    let source = match args.source.as_ref().or(args.config.as_ref()) {
        Some(path) => {
            Source::Guest { path: path.clone(), load: load_options(&args.src, args.force_running, &args.open) }
        }
        None => Source::Disks(args.disks.clone()),
    };
    let report = Report::new(!args.json);
    let plan = planner::prepare(source, &overrides(&args), &open, &report)?;
    let write = write_options(&args);
    if args.upload.server.is_some() {
        let req = upload::Request {
            output_given: args.output.is_some(),
            verify: args.verify,
            json: args.json,
            network: args.network.clone(),
            path_map: args.src.path_maps(),
        };
        return upload::run(&args.upload, req, &plan, &write, &report);
    }
    let output = args.output.clone().ok_or_else(|| coded(Exit::Usage, "--output FILE or --server HOST is required"))?;
    let target = FileTarget { path: output.clone(), overwrite: args.force, verify: args.verify };
    let written = match file::write(&plan, &target, &write, &report)? {
        Outcome::Written(w) => w,
        Outcome::Interrupted => return Ok(Exit::Interrupted),
    };
    let (summary, elapsed, verified) = (&written.summary, written.elapsed, written.verified);
    let vm = &plan.vm;
    let total = plan.total_size();

    if args.json {
        let disks: Vec<_> = summary
            .disks
            .iter()
            .zip(&plan.labels)
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
            "advisories": plan.advice.advisories,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        let read: u64 = summary.disks.iter().map(|d| d.bytes_read).sum();
        let written: u64 = summary.disks.iter().map(|d| d.chunks_written).sum();
        let skipped: u64 = summary.disks.iter().map(|d| d.chunks_skipped).sum();
        let secs = elapsed.as_secs_f64().max(1e-6);
        errln!(
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
            errln!("verified: every disk's SHA-256 in the XVA equals the source's");
        }
    }
    Ok(Exit::Success)
}
