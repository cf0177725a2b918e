//! The one integration-test binary: each module runs the real `xva` binary in temp dirs.

mod util;

// xva convert: options, output safety, errors, zero-chunk handling
mod convert;
// xva convert SOURCE: guest definitions to XVA, overrides
mod convert_source;
// xva info / xva map against qemu-img (the oracle), raw images
mod qemu_oracle;
// VMDK: xva map/info/convert against qemu-img on chains, flat, split and stream disks
mod vmdk;
// VHDX: convert → verify → extract against qemu-img and the spec builder (logs, differencing)
mod vhdx;
// qcow2: convert → verify → extract, map and info against qemu-img, a tap:qcow2: guest
mod qcow2;
// VHD: convert/verify/extract of dynamic, fixed and differencing disks; map against qemu-img
mod vhd;
// xva verify / xva extract: validator exit codes and messages, sparse extraction, round trips
mod validate;
// xva convert --server: uploads against a XenAPI test server (faults, cleanup, TLS pinning)
mod fake_xapi;
mod upload;
// boot advisories: guest disks built with mke2fs -d, inspect and convert
mod advise;
// xva inspect: guest definitions (xm, xl, SXP, VMX, OVF, OVA), bad configs
mod guest;
// no panic reaches the user: closed stdout, panicking print macros, the panic hook
mod no_panic;
