//! `xva`: move Xen and VMware guests to XenServer / XCP-ng.
pub use xva_backends as backends;
