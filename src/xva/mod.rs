//! The XVA format: writing it (`ova.xml` + chunked disks in a tar stream) and reading and
//! validating it the way xapi's importer does.
//!
//! ```text
//!   VmSpec ──records──► ova.xml (xmlrpc::Value) ─┐
//!   disks (BlockReader) ──writer──► chunks ──────┴─► tar stream ─► file / HTTP body
//!   tar stream ──reader──► members ──validate──► violations, disk digests, extract
//! ```
//! Spec: `xva-format-and-xapi-import.md` (shared specs), summarised in `docs/formats/xva.md`.

/// Size of a chunk: what xapi's exporter writes, and what its importer assumes for omitted ones.
pub const CHUNK: u64 = 1 << 20;

pub mod records;
pub mod writer;

// Reading side: tar/XVA reading, validation, extraction (ova.xml is parsed by crate::xmlrpc).
pub mod reader;
pub mod validate;
