//! Reading an XVA back: decompression and a strict tar member reader; the types in which
//! xapi's import loop (`validate::import_loop`) hands out the disks it reconstructs.
//!
//! ```text
//!   bytes ─► detect 1F 8B (gzip) / 28 B5 2F FD (zstd) / plain ─► tar headers ─► members
//!   members ─► validate::import_loop (Stream_vdi.recv_all_vdi) ─► ImportVisitor:
//!                  DiskRange::Data { disk, offset, bytes } / DiskRange::Zeros { disk, offset, len }
//! ```
//!
//! The tar parser reads headers the way xapi's ocaml-tar 2.x `HeaderReader` does
//! (`xva-format-and-xapi-import.md` §2.1): header checksum verified, numeric fields octal
//! (NUL/space padded), V7 / ustar / GNU magic, `prefix` used only with a `ustar` magic, PAX `x`
//! records applied to the next header, PAX `g` skipped, GNU `L` long names applied, GNU `K`
//! returned as an ordinary member (ocaml-tar does not know it), one zero block skipped and two
//! in a row ending the archive. It records every extension it meets so that the validator can
//! warn about them. Member data is streamed: nothing larger than one read buffer is held.
//! Header blocks are decoded by the one tar decoder, [`crate::tar::decode()`] in strict mode.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read};
use std::rc::Rc;

use crate::tar::{self, HeaderError, Mode};
pub use crate::tar::{HeaderFormat, BLOCK, MAX_EXTENSION};

/// Buffer size for streaming member data (one xapi chunk).
pub const READ_CHUNK: usize = 1 << 20;

/// gzip magic.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// zstd frame magic.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How the tar stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip (one or more members).
    Gzip,
    /// zstd (one or more frames).
    Zstd,
}

impl Compression {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// A tar extension met while reading one member's headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extension {
    /// A PAX `x` header applied to this member.
    PaxLocal,
    /// A PAX `g` global header (skipped).
    PaxGlobal,
    /// A GNU `L` long-name header applied to this member.
    GnuLongName,
    /// The ustar `prefix` field was used to build the name.
    Prefix,
    /// A single all-zero block was skipped before this header.
    ZeroBlock,
}

impl Extension {
    /// What it is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Extension::PaxLocal => "a PAX extended header ('x')",
            Extension::PaxGlobal => "a PAX global header ('g')",
            Extension::GnuLongName => "a GNU long-name header ('L')",
            Extension::Prefix => "the ustar prefix field",
            Extension::ZeroBlock => "a lone zero block before the header",
        }
    }
}

/// One tar member as ocaml-tar hands it to xapi.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Name (with PAX `path`, GNU `L` or ustar `prefix` applied).
    pub name: String,
    /// Data size in bytes.
    pub size: u64,
    /// Type flag byte (`b'0'`, `0`, `b'5'` …).
    pub typeflag: u8,
    /// Offset of the first header block belonging to this member (extension headers included)
    /// in the uncompressed tar stream.
    pub header_offset: u64,
    /// Offset of the member's data in the uncompressed tar stream.
    pub data_offset: u64,
    /// Header magic.
    pub format: HeaderFormat,
    /// Extensions used.
    pub extensions: Vec<Extension>,
}

impl Member {
    /// Whether the type flag is a regular file (`0` or NUL).
    pub fn is_regular(&self) -> bool {
        matches!(self.typeflag, b'0' | 0)
    }
}

/// How the archive ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Two zero blocks.
    ZeroBlocks,
    /// End of input where a header was expected, after `zero_blocks` (0 or 1) zero blocks.
    Eof {
        /// Zero blocks seen right before the end of input.
        zero_blocks: u8,
    },
}

/// Where an I/O error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoSide {
    /// Reading the input itself (file, pipe, socket).
    Input,
    /// The gzip or zstd decoder (corrupt compressed data).
    Decompress,
}

/// A tar-level failure.
#[derive(Debug)]
#[non_exhaustive]
pub enum TarError {
    /// An I/O error from the input or the decoder.
    Io {
        /// Input or decoder.
        side: IoSide,
        /// Uncompressed stream offset.
        offset: u64,
        /// The error.
        source: io::Error,
    },
    /// The stream ended inside a header, member data or padding.
    Truncated {
        /// Uncompressed stream offset of the end.
        offset: u64,
        /// What was being read.
        what: &'static str,
    },
    /// Header checksum mismatch.
    BadChecksum {
        /// Header offset.
        offset: u64,
        /// The checksum field as stored (parsed), if it parsed.
        stored: Option<u64>,
        /// The unsigned byte sum.
        computed: u64,
    },
    /// A numeric field is not octal (base-256 included: ocaml-tar reads octal only).
    BadNumber {
        /// Header offset.
        offset: u64,
        /// Field name.
        field: &'static str,
        /// The raw field, lossily decoded.
        raw: String,
        /// Whether the field is base-256 encoded (high bit set).
        base256: bool,
    },
    /// A PAX or GNU long-name record is malformed or too large.
    BadExtension {
        /// Header offset.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
}

impl TarError {
    /// Uncompressed stream offset of the problem.
    pub fn offset(&self) -> u64 {
        match self {
            TarError::Io { offset, .. }
            | TarError::Truncated { offset, .. }
            | TarError::BadChecksum { offset, .. }
            | TarError::BadNumber { offset, .. }
            | TarError::BadExtension { offset, .. } => *offset,
        }
    }

    /// Whether the input itself failed (not a property of the XVA).
    pub fn is_input_error(&self) -> bool {
        matches!(self, TarError::Io { side: IoSide::Input, .. })
    }
}

impl fmt::Display for TarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TarError::Io { side: IoSide::Input, offset, .. } => write!(f, "read error at tar offset {offset}"),
            TarError::Io { side: IoSide::Decompress, offset, source } => {
                write!(f, "compressed data is corrupt at tar offset {offset}: {source}")
            }
            TarError::Truncated { offset, what } => {
                write!(f, "stream ends at offset {offset} inside {what}")
            }
            TarError::BadChecksum { offset, stored, computed } => match stored {
                Some(s) => write!(
                    f,
                    "tar header at offset {offset}: checksum field says {s:o} (octal), header sums to {computed:o}"
                ),
                None => write!(
                    f,
                    "tar header at offset {offset}: checksum field is not octal (header sums to {computed:o})"
                ),
            },
            TarError::BadNumber { offset, field, raw, base256 } => {
                if *base256 {
                    write!(
                        f,
                        "tar header at offset {offset}: {field} field is base-256 encoded; xapi's tar reader reads octal only"
                    )
                } else {
                    write!(f, "tar header at offset {offset}: {field} field {raw:?} is not octal")
                }
            }
            TarError::BadExtension { offset, detail } => {
                write!(f, "tar extension header at offset {offset}: {detail}")
            }
        }
    }
}

impl std::error::Error for TarError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TarError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Counts raw bytes and remembers whether the input itself failed.
struct Tap<R> {
    inner: R,
    failed: Rc<Cell<bool>>,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count.set(self.count.get().saturating_add(n as u64));
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed.set(true);
                }
                Err(e)
            }
        }
    }
}

type Head<R> = io::Chain<io::Cursor<Vec<u8>>, Tap<R>>;

enum Inner<R: Read> {
    Plain(Head<R>),
    Gzip(Box<flate2::read::MultiGzDecoder<Head<R>>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, io::BufReader<Head<R>>>>),
}

impl<R: Read> Read for Inner<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Inner::Plain(r) => r.read(buf),
            Inner::Gzip(r) => r.read(buf),
            Inner::Zstd(r) => r.read(buf),
        }
    }
}

/// Reads the members of an XVA (a tar stream, maybe gzip- or zstd-compressed) from any reader.
pub struct XvaReader<R: Read> {
    inner: Inner<R>,
    compression: Compression,
    input_failed: Rc<Cell<bool>>,
    raw_count: Rc<Cell<u64>>,
    /// Uncompressed offset.
    pos: u64,
    /// Unread data bytes of the current member.
    remaining: u64,
    /// Padding after the current member's data.
    padding: u64,
    end: Option<End>,
}

impl<R: Read> fmt::Debug for XvaReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XvaReader")
            .field("compression", &self.compression)
            .field("pos", &self.pos)
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl<R: Read> XvaReader<R> {
    /// Wraps `input`, detecting compression from its first bytes.
    pub fn new(input: R) -> Result<Self, TarError> {
        let failed = Rc::new(Cell::new(false));
        let count = Rc::new(Cell::new(0));
        let mut tap = Tap { inner: input, failed: failed.clone(), count: count.clone() };
        let mut head = Vec::with_capacity(4);
        let mut buf = [0u8; 4];
        while head.len() < 4 {
            match tap.read(&mut buf[..4 - head.len()]) {
                Ok(0) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(TarError::Io { side: IoSide::Input, offset: 0, source }),
            }
        }
        let compression = if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else {
            Compression::None
        };
        let chained = io::Cursor::new(head).chain(tap);
        let inner = match compression {
            Compression::None => Inner::Plain(chained),
            Compression::Gzip => Inner::Gzip(Box::new(flate2::read::MultiGzDecoder::new(chained))),
            Compression::Zstd => match zstd::stream::read::Decoder::new(chained) {
                Ok(d) => Inner::Zstd(Box::new(d)),
                Err(source) => return Err(TarError::Io { side: IoSide::Decompress, offset: 0, source }),
            },
        };
        Ok(XvaReader {
            inner,
            compression,
            input_failed: failed,
            raw_count: count,
            pos: 0,
            remaining: 0,
            padding: 0,
            end: None,
        })
    }

    /// The detected compression.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Bytes consumed from the uncompressed tar stream so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes read from the input (compressed side) so far.
    pub fn raw_bytes(&self) -> u64 {
        self.raw_count.get()
    }

    /// How the archive ended, once [`next_member`](Self::next_member) returned `None`.
    pub fn end(&self) -> Option<End> {
        self.end
    }

    fn io_err(&self, source: io::Error) -> TarError {
        let side = if self.input_failed.get() || self.compression == Compression::None {
            IoSide::Input
        } else {
            IoSide::Decompress
        };
        TarError::Io { side, offset: self.pos, source }
    }

    /// Reads into `buf` until full or end of input; returns the count.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => {
                    n += k;
                    self.pos = self.pos.saturating_add(k as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_err(e)),
            }
        }
        Ok(n)
    }

    fn skip(&mut self, mut n: u64, what: &'static str) -> Result<(), TarError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            let got = self.fill(&mut buf[..want])?;
            if got == 0 {
                return Err(TarError::Truncated { offset: self.pos, what });
            }
            n -= got as u64;
        }
        Ok(())
    }

    /// Reads member data into `buf`; returns 0 at the end of the member's data.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = self.remaining.min(buf.len() as u64) as usize;
        let got = self.fill(&mut buf[..want])?;
        if got == 0 {
            return Err(TarError::Truncated { offset: self.pos, what: "member data" });
        }
        self.remaining -= got as u64;
        Ok(got)
    }

    /// Reads the rest of the current member's data, keeping at most `limit` bytes; returns the
    /// kept bytes and whether everything was kept.
    pub fn read_data_to_vec(&mut self, limit: u64) -> Result<(Vec<u8>, bool), TarError> {
        let keep = self.remaining.min(limit);
        // Grow as data arrives: a header may claim far more than the input holds.
        let mut v = Vec::with_capacity(keep.min(READ_CHUNK as u64) as usize);
        let mut buf = [0u8; 8192];
        while (v.len() as u64) < keep {
            let want = (keep - v.len() as u64).min(buf.len() as u64) as usize;
            let n = self.read_data(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            v.extend_from_slice(&buf[..n]);
        }
        let all = self.remaining == 0;
        let rest = self.remaining;
        self.skip(rest, "member data")?;
        self.remaining = 0;
        Ok((v, all))
    }

    fn finish_member(&mut self) -> Result<(), TarError> {
        let rest = self.remaining;
        self.skip(rest, "member data")?;
        self.remaining = 0;
        let pad = self.padding;
        self.skip(pad, "the padding after member data")?;
        self.padding = 0;
        Ok(())
    }

    /// Reads one raw header block; `None` at a clean end of input.
    fn read_block(&mut self) -> Result<Option<[u8; BLOCK]>, TarError> {
        let mut b = [0u8; BLOCK];
        let n = self.fill(&mut b)?;
        if n == 0 {
            return Ok(None);
        }
        if n < BLOCK {
            return Err(TarError::Truncated { offset: self.pos, what: "a tar header" });
        }
        Ok(Some(b))
    }

    /// Skips the rest of the current member and reads the next header. `None` at the end of
    /// the archive (see [`end`](Self::end)).
    pub fn next_member(&mut self) -> Result<Option<Member>, TarError> {
        if self.end.is_some() {
            return Ok(None);
        }
        self.finish_member()?;
        let mut extensions = Vec::new();
        let mut long_name: Option<String> = None;
        let mut pax_path: Option<String> = None;
        let mut pax_size: Option<u64> = None;
        let mut first_offset: Option<u64> = None;
        let mut zero_blocks = 0u8;
        loop {
            let offset = self.pos;
            let Some(block) = self.read_block()? else {
                if first_offset.is_some() {
                    return Err(TarError::Truncated {
                        offset: self.pos,
                        what: "a member (extension header without its file header)",
                    });
                }
                self.end = Some(End::Eof { zero_blocks });
                return Ok(None);
            };
            if block.iter().all(|&b| b == 0) {
                zero_blocks += 1;
                if zero_blocks >= 2 {
                    self.end = Some(End::ZeroBlocks);
                    return Ok(None);
                }
                continue;
            }
            if zero_blocks == 1 {
                extensions.push(Extension::ZeroBlock);
                zero_blocks = 0;
            }
            first_offset.get_or_insert(offset);
            let h = parse_header(&block, offset)?;
            match h.typeflag {
                b'x' | b'g' | b'L' => {
                    if h.size > MAX_EXTENSION {
                        return Err(TarError::BadExtension {
                            offset,
                            detail: format!("{} bytes is too large for an extension record", h.size),
                        });
                    }
                    self.remaining = h.size;
                    self.padding = pad_of(h.size);
                    let (data, _) = self.read_data_to_vec(MAX_EXTENSION)?;
                    let pad = self.padding;
                    self.skip(pad, "the padding after an extension record")?;
                    self.padding = 0;
                    match h.typeflag {
                        b'x' => {
                            extensions.push(Extension::PaxLocal);
                            let records = tar::decode::pax_records(&data)
                                .map_err(|d| TarError::BadExtension { offset, detail: d.to_string() })?;
                            for (k, v) in records {
                                match k.as_str() {
                                    "path" => pax_path = Some(v),
                                    "size" => {
                                        pax_size = Some(v.parse::<u64>().map_err(|_| TarError::BadExtension {
                                            offset,
                                            detail: format!("PAX size {v:?} is not a number"),
                                        })?)
                                    }
                                    _ => {}
                                }
                            }
                        }
                        b'g' => extensions.push(Extension::PaxGlobal),
                        _ => {
                            extensions.push(Extension::GnuLongName);
                            long_name = Some(tar::decode::long_name(&data));
                        }
                    }
                    continue;
                }
                _ => {}
            }
            let mut name = h.name;
            if h.prefix_used {
                extensions.push(Extension::Prefix);
            }
            if let Some(n) = long_name.take() {
                name = n;
            }
            if let Some(p) = pax_path.take() {
                name = p;
            }
            let size = pax_size.take().unwrap_or(h.size);
            self.remaining = size;
            self.padding = pad_of(size);
            return Ok(Some(Member {
                name,
                size,
                typeflag: h.typeflag,
                header_offset: first_offset.unwrap_or(offset),
                data_offset: self.pos,
                format: h.format,
                extensions,
            }));
        }
    }

    /// Reads and discards everything left in the input after the end of the archive; returns
    /// the number of bytes and whether any was non-zero.
    pub fn drain(&mut self) -> Result<(u64, bool), TarError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        let mut nonzero = false;
        loop {
            let n = self.fill(&mut buf)?;
            if n == 0 {
                return Ok((total, nonzero));
            }
            total = total.saturating_add(n as u64);
            nonzero |= buf[..n].iter().any(|&b| b != 0);
        }
    }
}

fn pad_of(size: u64) -> u64 {
    tar::padding(size) as u64
}

/// Decodes one header block by xapi's rules; errors carry the header's stream offset.
fn parse_header(b: &[u8; BLOCK], offset: u64) -> Result<tar::RawHeader, TarError> {
    tar::decode(b, Mode::Strict).map_err(|e| match e {
        HeaderError::BadChecksum { stored, computed } => TarError::BadChecksum { offset, stored, computed },
        HeaderError::BadNumber { field, raw, base256 } => TarError::BadNumber { offset, field, raw, base256 },
    })
}

// ---------------------------------------------------------------------------------------------
// What the import loop hands out.

/// A VDI in xapi's read order (sorted bytewise by id; rule 18), with its `virtual_size`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamedVdi {
    /// The export-local id (`Ref:2`).
    pub id: String,
    /// `virtual_size` from ova.xml.
    pub virtual_size: u64,
}

/// A range of a reconstructed disk.
#[derive(Debug, PartialEq, Eq)]
pub enum DiskRange<'a> {
    /// Bytes from a chunk, written at `offset`.
    Data {
        /// Disk index in read order.
        disk: usize,
        /// Byte offset in the disk (may run past `virtual_size` on overrun).
        offset: u64,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// Omitted chunks: zeros (xapi seeks on thin SRs, writes zeros otherwise).
    Zeros {
        /// Disk index in read order.
        disk: usize,
        /// Byte offset in the disk.
        offset: u64,
        /// Length in bytes (gap × F).
        len: u64,
    },
}

/// Receives the reconstructed disks, in stream order (offsets only grow within a disk).
pub trait ImportVisitor {
    /// A disk starts.
    fn begin_disk(&mut self, _disk: usize, _vdi: &StreamedVdi) -> io::Result<()> {
        Ok(())
    }
    /// A range of the disk.
    fn range(&mut self, range: DiskRange<'_>) -> io::Result<()>;
    /// The disk's chunks are all read; `written` = bytes placed (data and gaps).
    fn end_disk(&mut self, _disk: usize, _written: u64) -> io::Result<()> {
        Ok(())
    }
}

/// A visitor that ignores everything.
#[derive(Debug, Default)]
pub struct NoVisitor;

impl ImportVisitor for NoVisitor {
    fn range(&mut self, _range: DiskRange<'_>) -> io::Result<()> {
        Ok(())
    }
}

/// A tiny tar/XVA builder for tests: headers can be broken on purpose.
#[cfg(test)]
#[path = "testtar.rs"]
pub(crate) mod testtar;

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
