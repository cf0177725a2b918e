//! Will it boot? Pure rules over the guest definition, the inspected disks and the target:
//! `advise(guest, disks, target) → [Advisory]`, each with the rule id of `advisories.md` §6,
//! a severity, a one-line message, the evidence (which file or setting said so) and the fix.
//!
//! ```text
//!   guest::Guest ─┐
//!   inspect::DiskFacts (per disk) ─┼─► config::rules (C*) ─┐
//!   Target ───────┘                ├─► linux::rules  (L*) ─┤
//!                                  └─► windows::rules (W11) ┴─► Vec<Advisory>, worst first
//! ```
//!
//! No I/O here: the facts were gathered by `inspect` before the first byte moves.

pub mod config;
pub mod linux;
pub mod windows;

use std::fmt;

use crate::guest::Guest;
use crate::inspect::DiskFacts;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// A mapping note.
    Info,
    /// Boots, but something is lost or needs a manual step.
    Warn,
    /// Will not convert or will not boot unless fixed.
    Block,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Block => "BLOCK",
        })
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Advisory {
    /// Rule id (`C3`, `L7`), as in `docs/advisories.md`.
    pub code: &'static str,
    /// Severity.
    pub severity: Severity,
    /// What will go wrong, one line.
    pub message: String,
    /// What said so: files and lines, settings.
    pub evidence: String,
    /// What the user should do.
    pub fix: String,
}

impl fmt::Display for Advisory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {} [{}] fix: {}", self.severity, self.code, self.message, self.evidence, self.fix)
    }
}

/// What the target host can run (`target-profiles.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Name given to `--target`.
    pub name: &'static str,
    /// Runs PV guests (supported or not): up to XenServer 7.x / Citrix Hypervisor 8.0 only.
    pub pv: bool,
    /// Largest VDI on a VHD SR, bytes (2 TiB − 8 MiB... xapi refuses above 2 TiB).
    pub max_vdi: u64,
}

/// The known targets, newest first; the first is the default.
pub const TARGETS: &[Target] = &[
    Target { name: "xcp-ng-8.3", pv: false, max_vdi: 2 << 40 },
    Target { name: "xenserver-8", pv: false, max_vdi: 2 << 40 },
    Target { name: "citrix-8.2", pv: false, max_vdi: 2 << 40 },
    Target { name: "xenserver-7.1", pv: true, max_vdi: 2 << 40 },
    Target { name: "xenserver-6.5", pv: true, max_vdi: 2 << 40 },
];

impl Target {
    /// The target named `name`.
    pub fn by_name(name: &str) -> Option<Target> {
        TARGETS.iter().copied().find(|t| t.name.eq_ignore_ascii_case(name))
    }
}

impl Default for Target {
    fn default() -> Target {
        TARGETS[0]
    }
}

/// One disk as the rules see it: its virtual size and what inspection found (or why not).
#[derive(Clone, Debug)]
pub struct DiskView<'a> {
    /// Virtual size in bytes.
    pub size: u64,
    /// Inspection result.
    pub facts: std::result::Result<&'a DiskFacts, &'a str>,
}

/// Every advisory for `guest` with `disks` (in VDI order, the boot disk first) on `target`,
/// worst first, then by rule id.
pub fn advise(guest: &Guest, disks: &[DiskView<'_>], target: &Target) -> Vec<Advisory> {
    let mut out = config::rules(guest, disks, target);
    out.extend(linux::rules(guest, disks, target));
    out.extend(windows::rules(disks));
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| rule_order(a.code).cmp(&rule_order(b.code))));
    out
}

/// `C3` → ('C', 3), so C10 sorts after C9.
fn rule_order(code: &str) -> (char, u32) {
    let mut c = code.chars();
    let letter = c.next().unwrap_or(' ');
    (letter, c.as_str().parse().unwrap_or(0))
}

/// The guest needs to boot as HVM on the target: it is HVM, or the target cannot run PV.
pub fn needs_hvm(guest: &Guest, target: &Target) -> bool {
    !guest.boot.is_pv() || !target.pv
}

#[cfg(test)]
mod tests;
