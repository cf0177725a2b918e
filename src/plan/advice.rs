//! Before the first byte moves: inspect every disk (`inspect`) and judge the result (`advise`).

use std::sync::Arc;

use crate::advise::{self, Advisory, DiskView, Target};
use crate::backends::BlockReader;
use crate::guest::Guest;
use crate::inspect::{self, chain_text, DiskFacts};

/// What inspection and the rules found, per disk and as a whole.
#[derive(Clone, Debug, Default)]
pub struct Advice {
    /// Per disk, in VDI order: the facts, or why the disk could not be inspected.
    pub disks: Vec<Result<DiskFacts, String>>,
    /// The advisories, worst first.
    pub advisories: Vec<Advisory>,
}

/// Inspects `readers` (the boot disk first) and applies every rule for `target`.
pub fn advise(guest: &Guest, readers: &[Arc<dyn BlockReader>], target: &Target) -> Advice {
    let disks: Vec<Result<DiskFacts, String>> = readers
        .iter()
        .map(|r| inspect::inspect_disk(r.clone(), inspect::DEFAULT_BUDGET).map_err(|e| chain_text(&e)))
        .collect();
    let views: Vec<DiskView<'_>> = readers
        .iter()
        .zip(&disks)
        .map(|(r, d)| DiskView { size: r.virtual_size(), facts: d.as_ref().map_err(String::as_str) })
        .collect();
    let advisories = advise::advise(guest, &views, target);
    Advice { disks, advisories }
}
