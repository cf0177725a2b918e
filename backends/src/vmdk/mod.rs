//! VMDK: VMware virtual disks (descriptor files, hosted sparse, streamOptimized, ESXi deltas).

pub mod descriptor;
