//! VHD: Virtual PC / Hyper-V (generation 1) / XenServer virtual disks (`disk-formats.md` §1.4).
//! The pure parsers come first: the footer and the dynamic disk header with its locators.

pub mod dynamic;
pub mod footer;
