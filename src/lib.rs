//! `xva`: move Xen and VMware guests to XenServer / XCP-ng.
//!
//! ```text
//!   config + disks ─► VM model ─► plan ──────────► XVA stream ─► file or host
//!   (guest)           (guest)     (plan: VmSpec,   (xva::writer)  (plan::file, plan::upload)
//!                                  overrides)
//!                 disks are read through xva_backends (re-exported as `backends`)
//! ```

pub mod advise;
pub mod guest;
pub mod hex;
pub mod inspect;
pub mod plan;
pub mod tar;
pub mod vm;
pub mod xapi;
pub mod xmlrpc;
pub mod xva;

pub use xva_backends as backends;
