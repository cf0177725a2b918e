//! How to read a guest definition: the options `xva inspect` and `xva convert SOURCE` share,
//! and their conversion to the library's [`LoadOptions`].

use std::path::PathBuf;

use clap::Args as ClapArgs;

use xva::guest::{self, GuestError, LoadOptions, SourceKind};

use super::exit::{coded, Exit};
use super::open::OpenArgs;

/// How to read a guest definition (shared by `inspect` and `convert SOURCE`).
#[derive(ClapArgs, Debug, Clone, Default)]
pub struct SourceArgs {
    /// What SOURCE is, instead of detecting it by content: xm, xl, sxp, vmx, ovf, ova.
    #[arg(long, value_name = "TYPE", value_parser = parse_kind)]
    pub source_type: Option<SourceKind>,
    /// Supply or override a value: an xm variable (as `xm create NAME=VALUE`), an xl setting or
    /// a VMX key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub set: Vec<(String, String)>,
    /// Read disks whose path starts with OLD from NEW instead (repeatable), when the files were
    /// copied away from the source host.
    #[arg(long = "path-map", value_name = "OLD=NEW", value_parser = parse_pair)]
    pub path_map: Vec<(String, String)>,
    /// Skip the OVA manifest check (it reads the whole OVA once).
    #[arg(long)]
    pub no_manifest_check: bool,
}

fn parse_kind(s: &str) -> Result<SourceKind, String> {
    SourceKind::from_name(s).ok_or_else(|| format!("unknown source type {s:?}; one of xm, xl, sxp, vmx, ovf, ova"))
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    guest::load::split_pair(s).ok_or_else(|| format!("expected KEY=VALUE, found {s:?}"))
}

/// The load options for a guest definition; `force` accepts a VM that looks running.
pub fn load_options(src: &SourceArgs, force: bool, open: &OpenArgs) -> LoadOptions {
    LoadOptions {
        source_type: src.source_type,
        set: src.set.clone(),
        path_map: src.path_maps(),
        force,
        skip_manifest: src.no_manifest_check,
        allow_any_path: open.allow_any_path,
        allow_missing: false,
    }
}

/// A guest-definition error as an `Input` (exit 3) error.
pub fn input_error(e: GuestError) -> anyhow::Error {
    coded(Exit::Input, e.to_string())
}

impl SourceArgs {
    /// `--path-map` as paths.
    pub fn path_maps(&self) -> Vec<(PathBuf, PathBuf)> {
        self.path_map.iter().map(|(a, b)| (PathBuf::from(a), PathBuf::from(b))).collect()
    }
}

/// `--target NAME`: one of the advisory targets.
pub fn parse_target(s: &str) -> Result<xva::advise::Target, String> {
    xva::advise::Target::by_name(s).ok_or_else(|| {
        let names: Vec<&str> = xva::advise::TARGETS.iter().map(|t| t.name).collect();
        format!("unknown target {s:?}; one of {}", names.join(", "))
    })
}
