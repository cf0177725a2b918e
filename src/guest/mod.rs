//! Guest definitions: xm/xend, xl, SXP, VMware `.vmx`, OVF/OVA → one [`Guest`] model.
//!
//! ```text
//!   /etc/xen/web01 ─┐
//!   web01.cfg (xl) ─┤  detect   parse (pure, &str/&[u8] in)      load (the only I/O)
//!   config.sxp     ─┼────────►  xm / xl / sxp / vmx / ovf  ──►  Guest ──► resolve disk paths,
//!   web01.vmx      ─┤                                              --path-map, OVA members,
//!   web01.ovf/.ova ─┘                                              missing files (all at once)
//! ```
//!
//! Spec: `guest-configs.md` (shared specs); user-facing summary in `docs/guest-configs.md`.

pub mod error;
pub mod load;
pub mod model;
pub mod osmap;
pub mod ova;
pub mod ovf;
pub mod vmx;
pub mod xen;

#[cfg(test)]
mod golden;

pub use error::{ErrorKind, GuestError};
pub use load::{declared_format, declared_raw_mismatch, detect, load, open_disk, LoadOptions};
pub use model::*;
// The Xen parsers live under `xen/`; their old paths stay (`guest::xm`, `guest::pyeval`, ...).
pub use xen::{pyeval, sxp, xl, xm};
