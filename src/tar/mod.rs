//! Tar headers, written and read. A leaf: it imports nothing from the crate, so the XVA code
//! (`xva::writer`, `xva::reader`) and the OVA reader (`guest::ova`) share it.
//!
//! ```text
//!   write::header() / write_member()  ── the one writer: plain ustar, what every XVA member gets
//!   decode::decode(block, Mode) ── the one reader of a 512-byte header block:
//!        Mode::Strict   xapi's ocaml-tar rules (octal only, every numeric field checked)
//!        Mode::Lenient  what `tar` writes for OVAs (GNU base-256 sizes, any `ustar` magic)
//!   decode::pax_records / pax_path / long_name ── the bodies of PAX `x` and GNU `L` headers
//! ```

pub mod decode;
pub mod write;

pub use decode::{decode, HeaderError, HeaderFormat, Mode, RawHeader, MAX_EXTENSION};
pub use write::{header, member_len, padding, write_member, BLOCK, END, MAX_MEMBER};
