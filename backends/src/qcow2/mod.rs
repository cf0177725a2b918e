//! qcow2 (versions 2 and 3) and qcow (version 1, including Xen blktap's variant): QEMU's
//! copy-on-write images. Pure parsers and decoders; the reader follows.

pub mod compressed;
pub mod header;
pub mod mapping;
pub mod qcow1;

#[cfg(any(test, feature = "testutil"))]
pub mod build;
