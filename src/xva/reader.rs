//! Reading an XVA back: decompression, a strict tar header parser, and xapi's import loop.
//!
//! ```text
//!   bytes ─► detect 1F 8B (gzip) / 28 B5 2F FD (zstd) / plain ─► tar headers ─► members
//!   members ─► import_loop (Stream_vdi.recv_all_vdi) ─► visitor: Data { disk, offset, bytes }
//!                                                               Zeros { disk, offset, len }
//! ```
//!
//! The tar parser reads headers the way xapi's ocaml-tar 2.x `HeaderReader` does
//! (`xva-format-and-xapi-import.md` §2.1): header checksum verified, numeric fields octal
//! (NUL/space padded), V7 / ustar / GNU magic, `prefix` used only with a `ustar` magic, PAX `x`
//! records applied to the next header, PAX `g` skipped, GNU `L` long names applied, GNU `K`
//! returned as an ordinary member (ocaml-tar does not know it), one zero block skipped and two
//! in a row ending the archive. It records every extension it meets so that the validator can
//! warn about them. Member data is streamed: nothing larger than one read buffer is held.
//!
//! [`import_loop`] is a transcription of xapi's chunk loop (§5.3) including the global `F`
//! (length of the very first chunk of the import), the string comparison of counters and the
//! gap arithmetic; it reports what xapi would reject or corrupt as [`Finding`]s.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read};
use std::rc::Rc;

use sha1::Digest as _;

use super::validate::{Finding, Severity};
use crate::xmlrpc::parse::ocaml_int64_of_string;

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
// The import loop.

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

/// What the loop saw for one disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskLoopStats {
    /// Data members read (zero-length ones included).
    pub chunks: u64,
    /// Zero-length (keep-alive) data members.
    pub dummy_chunks: u64,
    /// Runs of omitted chunks.
    pub zero_gaps: u64,
    /// Omitted chunks in all.
    pub zero_chunks: u64,
    /// Bytes placed (data and gaps): where the next byte would go.
    pub written: u64,
    /// `.checksum` members.
    pub sha1_members: u64,
    /// `.xxhash` members.
    pub xxhash_members: u64,
    /// The loop reached `virtual_size` for this disk.
    pub complete: bool,
}

/// What the whole loop saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoopOutcome {
    /// `F`: length of the first data member of the import.
    pub first_chunk_len: Option<u64>,
    /// Per disk, in read order (only disks the loop got to).
    pub disks: Vec<DiskLoopStats>,
    /// The loop stopped on an error that makes reading on meaningless.
    pub stopped: bool,
}

/// Why the loop could not go on for reasons that are not the XVA's fault.
#[derive(Debug)]
pub enum LoopError {
    /// The input could not be read.
    Input(TarError),
    /// The visitor failed (e.g. writing the extracted disk).
    Visitor(io::Error),
}

impl fmt::Display for LoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoopError::Input(e) => write!(f, "{e}"),
            LoopError::Visitor(_) => write!(f, "could not store the disk data"),
        }
    }
}

impl std::error::Error for LoopError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoopError::Input(e) => e.source(),
            LoopError::Visitor(e) => Some(e),
        }
    }
}

/// Largest checksum member body read (real ones are 16 or 40 bytes).
const MAX_CHECKSUM_BODY: u64 = 4096;

/// The Finding for a tar error met while reading `what`.
pub fn tar_finding(e: &TarError, member: Option<&str>) -> Finding {
    let rule = match e {
        TarError::Io { side: IoSide::Decompress, .. } => 1,
        _ => 2,
    };
    Finding::new(Severity::Error, rule, member, Some(e.offset()), e.to_string())
}

/// Findings for the tar facts of one member (rule 4 extensions, non-regular type flags).
pub fn member_findings(m: &Member, out: &mut Vec<Finding>) {
    for ext in &m.extensions {
        let (sev, rule, msg) = match ext {
            Extension::ZeroBlock => (
                Severity::Warning,
                2,
                "a single all-zero block precedes this header; ocaml-tar skips one, other readers end the archive there".to_string(),
            ),
            e => (
                Severity::Warning,
                4,
                format!(
                    "uses {}; current xapi understands it, older xapi is untested — write plain ustar/V7 headers",
                    e.describe()
                ),
            ),
        };
        out.push(Finding::new(sev, rule, Some(&m.name), Some(m.header_offset), msg));
    }
    if m.typeflag == b'K' {
        out.push(Finding::new(
            Severity::Warning,
            4,
            Some(&m.name),
            Some(m.header_offset),
            "GNU long-link header ('K'): ocaml-tar does not understand it and reads it as a file",
        ));
    }
}

/// Which checksum a member holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ck {
    Sha1,
    Xx,
}

/// OCaml `int_of_string` on 64-bit: like `Int64.of_string` but 63-bit.
fn ocaml_int_of_string(s: &str) -> Option<i64> {
    let v = ocaml_int64_of_string(s)?;
    if (-(1i64 << 62)..(1i64 << 62)).contains(&v) {
        Some(v)
    } else {
        None
    }
}

/// Runs xapi's chunk loop (`Stream_vdi.recv_all_vdi`, §5.3) over the members following
/// ova.xml, for `vdis` in read order. `export_vsn > 0` enables the checksum checks, as in
/// xapi. Violations go to `findings`; the visitor receives the reconstructed disks.
pub fn import_loop<R: Read>(
    rd: &mut XvaReader<R>,
    vdis: &[StreamedVdi],
    export_vsn: i64,
    visitor: &mut dyn ImportVisitor,
    findings: &mut Vec<Finding>,
) -> Result<LoopOutcome, LoopError> {
    let mut out = LoopOutcome::default();
    let mut f: Option<u64> = None;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut warned_xxhash = false;
    macro_rules! stop {
        ($finding:expr) => {{
            findings.push($finding);
            out.stopped = true;
            return Ok(out);
        }};
    }
    macro_rules! next {
        ($ctx:expr) => {
            match rd.next_member() {
                Ok(m) => m,
                Err(e) if e.is_input_error() => return Err(LoopError::Input(e)),
                Err(e) => stop!(tar_finding(&e, $ctx)),
            }
        };
    }
    for (di, vdi) in vdis.iter().enumerate() {
        visitor.begin_disk(di, vdi).map_err(LoopError::Visitor)?;
        out.disks.push(DiskLoopStats::default());
        let size = i128::from(vdi.virtual_size);
        let mut last_suffix = String::from("-1");
        let mut last_num: i64 = -1;
        let mut first_num: Option<i64> = None;
        let mut offset: i128 = 0;
        let mut written: u64 = 0;
        let mut warned_width = false;
        while size - offset > 0 {
            let Some(m) = next!(None) else {
                stop!(Finding::new(
                    Severity::Error,
                    26,
                    None,
                    Some(rd.position()),
                    format!(
                        "the archive ends after {offset} of the {} bytes of VDI {}: its last chunk is missing (xapi reads until virtual_size is reached)",
                        vdi.virtual_size, vdi.id
                    ),
                ));
            };
            member_findings(&m, findings);
            let here = Some(m.header_offset);
            if m.typeflag == b'5' {
                stop!(Finding::new(
                    Severity::Error,
                    5,
                    Some(&m.name),
                    here,
                    "directory entry where a chunk of VDI was expected; xapi reads it as a chunk and fails (\"Invalid XVA file\")",
                ));
            }
            if !m.is_regular() && m.typeflag != b'K' {
                findings.push(Finding::new(
                    Severity::Warning,
                    5,
                    Some(&m.name),
                    here,
                    format!(
                        "type flag {:?} is not a regular file; xapi does not check it, other tools will",
                        char::from(m.typeflag)
                    ),
                ));
            }
            let fl = *f.get_or_insert(m.size);
            if out.first_chunk_len.is_none() {
                out.first_chunk_len = Some(fl);
                if fl == 0 {
                    findings.push(Finding::new(
                        Severity::Corruption,
                        26,
                        Some(&m.name),
                        here,
                        "the first chunk of the import is empty, so F = 0: xapi will count every omitted chunk as 0 bytes",
                    ));
                } else if fl < super::CHUNK && vdi.virtual_size > fl {
                    findings.push(Finding::new(
                        Severity::Warning,
                        26,
                        Some(&m.name),
                        here,
                        format!(
                            "the first chunk is {fl} bytes, not 1 MiB: xapi sizes every omitted chunk of every disk by it (F = {fl})"
                        ),
                    ));
                }
            }
            let Some(rest) = m.name.strip_prefix(vdi.id.as_str()) else {
                stop!(Finding::new(
                    Severity::Error,
                    5,
                    Some(&m.name),
                    here,
                    format!(
                        "expected a chunk of VDI {} (streamed VDI {} of {}, read in bytewise id order); xapi fails with \"Invalid XVA file\"",
                        vdi.id,
                        di + 1,
                        vdis.len()
                    ),
                ));
            };
            let mut chars = rest.chars();
            let sep = chars.next();
            let suffix = chars.as_str();
            if sep.is_none() {
                stop!(Finding::new(
                    Severity::Error,
                    23,
                    Some(&m.name),
                    here,
                    "chunk name has no counter after the VDI id",
                ));
            }
            if sep != Some('/') {
                findings.push(Finding::new(
                    Severity::Warning,
                    23,
                    Some(&m.name),
                    here,
                    format!("chunk name should be {}/<counter>", vdi.id),
                ));
            }
            if suffix.as_bytes() <= last_suffix.as_bytes() {
                stop!(Finding::new(
                    Severity::Error,
                    23,
                    Some(&m.name),
                    here,
                    format!(
                        "chunk counter {suffix:?} does not follow {last_suffix:?} in string order; xapi fails with \"Invalid XVA file\""
                    ),
                ));
            }
            let Some(num) = ocaml_int_of_string(suffix) else {
                stop!(Finding::new(
                    Severity::Error,
                    23,
                    Some(&m.name),
                    here,
                    format!("chunk counter {suffix:?} is not an integer"),
                ));
            };
            let eight_digits = suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_digit());
            if !warned_width && !eight_digits {
                warned_width = true;
                findings.push(Finding::new(
                    Severity::Warning,
                    23,
                    Some(&m.name),
                    here,
                    format!(
                        "chunk counter {suffix:?} is not 8 decimal digits (%08d); xapi compares counters as strings"
                    ),
                ));
            }
            first_num.get_or_insert(num);
            let gap = i128::from(num) - i128::from(last_num) - 1;
            let skipped = gap * i128::from(fl);
            if gap > 0 {
                let len = u64::try_from(skipped).ok().filter(|&l| written.checked_add(l).is_some());
                let Some(len) = len else {
                    stop!(Finding::new(
                        Severity::Error,
                        26,
                        Some(&m.name),
                        here,
                        format!("a gap of {gap} chunks of {fl} bytes overflows the disk offset"),
                    ));
                };
                if len > 0 {
                    visitor.range(DiskRange::Zeros { disk: di, offset: written, len }).map_err(LoopError::Visitor)?;
                }
                written += len;
                if let Some(s) = out.disks.last_mut() {
                    s.zero_gaps += 1;
                    s.zero_chunks = s.zero_chunks.saturating_add(gap as u64);
                }
            } else if gap < 0 {
                findings.push(Finding::new(
                    Severity::Corruption,
                    23,
                    Some(&m.name),
                    here,
                    format!(
                        "chunk counter {num} is numerically below the previous {last_num} although it sorts after it (variable-width counters): xapi's offset arithmetic goes wrong"
                    ),
                ));
            }
            // Data.
            let mut sha1 = sha1::Sha1::new();
            let mut xx = xxhash_rust::xxh64::Xxh64::new(0);
            loop {
                let n = match rd.read_data(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.is_input_error() => return Err(LoopError::Input(e)),
                    Err(e) => stop!(tar_finding(&e, Some(&m.name))),
                };
                if n == 0 {
                    break;
                }
                let bytes = &buf[..n];
                sha1.update(bytes);
                xx.update(bytes);
                visitor.range(DiskRange::Data { disk: di, offset: written, bytes }).map_err(LoopError::Visitor)?;
                written = written.saturating_add(n as u64);
            }
            if let Some(s) = out.disks.last_mut() {
                s.chunks += 1;
                if m.size == 0 {
                    s.dummy_chunks += 1;
                }
                s.written = written;
            }
            if m.size == 0 {
                findings.push(Finding::new(
                    Severity::Warning,
                    29,
                    Some(&m.name),
                    here,
                    "zero-length chunk: a legal keep-alive that consumes a counter value",
                ));
            }
            // Checksum member.
            let Some(ck) = next!(Some(&m.name)) else {
                stop!(Finding::new(
                    Severity::Error,
                    24,
                    Some(&m.name),
                    Some(rd.position()),
                    "the archive ends where this chunk's checksum member was expected",
                ));
            };
            member_findings(&ck, findings);
            let (kind, base) = if let Some(b) = ck.name.strip_suffix(".xxhash") {
                (Ck::Xx, b)
            } else if let Some(b) = ck.name.strip_suffix(".checksum") {
                (Ck::Sha1, b)
            } else {
                stop!(Finding::new(
                    Severity::Error,
                    24,
                    Some(&ck.name),
                    Some(ck.header_offset),
                    format!(
                        "expected {}.checksum or {}.xxhash after the chunk; xapi fails with \"Found unsupported checksum file\"",
                        m.name, m.name
                    ),
                ));
            };
            if let Some(s) = out.disks.last_mut() {
                match kind {
                    Ck::Sha1 => s.sha1_members += 1,
                    Ck::Xx => s.xxhash_members += 1,
                }
            }
            if kind == Ck::Xx && !warned_xxhash {
                warned_xxhash = true;
                findings.push(Finding::new(
                    Severity::Warning,
                    25,
                    Some(&ck.name),
                    Some(ck.header_offset),
                    ".xxhash checksums need xapi >= 1.170 (Citrix Hypervisor 8.1 / XCP-ng 8.1 or later); .checksum (SHA-1) works everywhere",
                ));
            }
            if export_vsn > 0 {
                if base != m.name {
                    stop!(Finding::new(
                        Severity::Error,
                        24,
                        Some(&ck.name),
                        Some(ck.header_offset),
                        format!("checksum member does not belong to the chunk {}", m.name),
                    ));
                }
                let (body, _) = match rd.read_data_to_vec(MAX_CHECKSUM_BODY) {
                    Ok(b) => b,
                    Err(e) if e.is_input_error() => return Err(LoopError::Input(e)),
                    Err(e) => stop!(tar_finding(&e, Some(&ck.name))),
                };
                let expected = match kind {
                    Ck::Sha1 => crate::hex::lower(&sha1.finalize()),
                    Ck::Xx => format!("{:016X}", xx.digest()),
                };
                if body != expected.as_bytes() {
                    let got = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
                    let hint = if got.eq_ignore_ascii_case(&expected) {
                        match kind {
                            Ck::Sha1 => " (right digest, wrong case: xapi compares byte for byte and wants lowercase)",
                            Ck::Xx => " (right digest, wrong case: xapi compares byte for byte and wants uppercase)",
                        }
                    } else if got.trim_end() == expected {
                        " (trailing whitespace: xapi compares byte for byte)"
                    } else {
                        ""
                    };
                    findings.push(Finding::new(
                        Severity::Error,
                        25,
                        Some(&ck.name),
                        Some(ck.data_offset),
                        format!("checksum is {got:?}, the chunk's is {expected:?}{hint}"),
                    ));
                }
            }
            offset += skipped + i128::from(m.size);
            if offset < size && m.size != fl && m.size != 0 {
                findings.push(Finding::new(
                    Severity::Corruption,
                    26,
                    Some(&m.name),
                    here,
                    format!(
                        "chunk is {} bytes but not the last of its VDI; every chunk but the last must be F = {fl} bytes, or later gaps land at wrong offsets",
                        m.size
                    ),
                ));
            }
            last_suffix = suffix.to_string();
            last_num = num;
        }
        if offset > size {
            findings.push(Finding::new(
                Severity::Corruption,
                26,
                None,
                None,
                format!(
                    "the chunks of VDI {} supply {offset} bytes, {} more than its virtual_size {}: xapi writes the surplus past the end of the new VDI",
                    vdi.id,
                    offset - size,
                    vdi.virtual_size
                ),
            ));
        }
        if let Some(n) = first_num.filter(|&n| n != 0) {
            findings.push(Finding::new(
                Severity::Warning,
                27,
                None,
                None,
                format!("VDI {}: the first chunk present has counter {n}, not 0 (the format requires the first and last chunks)", vdi.id),
            ));
        }
        if let Some(s) = out.disks.last_mut() {
            s.complete = true;
            s.written = written;
        }
        visitor.end_disk(di, written).map_err(LoopError::Visitor)?;
    }
    Ok(out)
}

/// A tiny tar/XVA builder for tests: headers can be broken on purpose.
#[cfg(test)]
pub(crate) mod testtar {
    use super::BLOCK;

    /// Header fields that tests tweak.
    #[derive(Clone, Debug)]
    pub struct H {
        pub name: String,
        pub size: u64,
        pub typeflag: u8,
        pub ustar: bool,
        pub prefix: String,
        pub bad_checksum: bool,
        pub base256_size: bool,
    }

    impl H {
        pub fn new(name: &str, size: u64) -> H {
            H {
                name: name.to_string(),
                size,
                typeflag: b'0',
                ustar: true,
                prefix: String::new(),
                bad_checksum: false,
                base256_size: false,
            }
        }

        pub fn bytes(&self) -> [u8; BLOCK] {
            let mut h = [0u8; BLOCK];
            h[..self.name.len()].copy_from_slice(self.name.as_bytes());
            h[100..108].copy_from_slice(b"0000644\0");
            h[108..116].copy_from_slice(b"0000000\0");
            h[116..124].copy_from_slice(b"0000000\0");
            if self.base256_size {
                h[124] = 0x80;
                h[128..136].copy_from_slice(&self.size.to_be_bytes());
            } else {
                h[124..136].copy_from_slice(format!("{:011o}\0", self.size).as_bytes());
            }
            h[136..148].copy_from_slice(b"00000000000\0");
            h[156] = self.typeflag;
            if self.ustar {
                h[257..263].copy_from_slice(b"ustar\0");
                h[263..265].copy_from_slice(b"00");
                h[345..345 + self.prefix.len()].copy_from_slice(self.prefix.as_bytes());
            }
            h[148..156].fill(b' ');
            let mut sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
            if self.bad_checksum {
                sum += 1;
            }
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            h
        }
    }

    /// Appends a member (header, data, padding).
    pub fn member(out: &mut Vec<u8>, h: &H, data: &[u8]) {
        out.extend_from_slice(&h.bytes());
        out.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        out.extend(std::iter::repeat_n(0u8, pad));
    }

    /// Appends a regular member.
    pub fn file(out: &mut Vec<u8>, name: &str, data: &[u8]) {
        member(out, &H::new(name, data.len() as u64), data);
    }

    /// Appends a chunk and its `.checksum` member.
    pub fn chunk(out: &mut Vec<u8>, name: &str, data: &[u8]) {
        file(out, name, data);
        let ck = crate::xva::writer::ChecksumKind::Sha1.body(data);
        file(out, &format!("{name}.checksum"), ck.as_bytes());
    }

    /// Appends the end-of-archive marker.
    pub fn end(out: &mut Vec<u8>) {
        out.extend_from_slice(&[0u8; 2 * BLOCK]);
    }
}

#[cfg(test)]
mod tests {
    use super::testtar::*;
    use super::*;

    fn members(bytes: &[u8]) -> Result<(Vec<Member>, Option<End>), TarError> {
        let mut rd = XvaReader::new(bytes)?;
        let mut v = Vec::new();
        while let Some(m) = rd.next_member()? {
            v.push(m);
        }
        Ok((v, rd.end()))
    }

    #[test]
    fn reads_members_and_end() {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", b"<value/>");
        file(&mut t, "Ref:1/00000000", &[1u8; 600]);
        end(&mut t);
        let (m, e) = members(&t).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "ova.xml");
        assert_eq!(m[0].size, 8);
        assert_eq!(m[0].header_offset, 0);
        assert_eq!(m[0].data_offset, 512);
        assert_eq!(m[1].header_offset, 1024);
        assert_eq!(m[1].size, 600);
        assert_eq!(m[1].format, HeaderFormat::Ustar);
        assert_eq!(e, Some(End::ZeroBlocks));
        // without the end marker
        let (_, e) = members(&t[..t.len() - 1024]).unwrap();
        assert_eq!(e, Some(End::Eof { zero_blocks: 0 }));
    }

    #[test]
    fn reads_the_lead_writers_headers() {
        let mut t = Vec::new();
        crate::tar::write_member(&mut t, "ova.xml", b"abc").unwrap();
        let (m, _) = members(&t).unwrap();
        assert_eq!(m[0].name, "ova.xml");
        assert_eq!(m[0].size, 3);
    }

    #[test]
    fn header_checksum_is_verified() {
        let mut t = Vec::new();
        let mut h = H::new("ova.xml", 0);
        h.bad_checksum = true;
        member(&mut t, &h, b"");
        let e = members(&t).unwrap_err();
        assert!(matches!(e, TarError::BadChecksum { offset: 0, .. }), "{e:?}");
    }

    #[test]
    fn sizes_must_be_octal() {
        let mut t = Vec::new();
        let mut h = H::new("ova.xml", 5).bytes();
        h[124..136].copy_from_slice(b"0000000009\0\0");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        t.extend_from_slice(&h);
        let e = members(&t).unwrap_err();
        assert!(matches!(e, TarError::BadNumber { field: "size", base256: false, .. }), "{e:?}");

        let mut t = Vec::new();
        let mut h = H::new("ova.xml", 5);
        h.base256_size = true;
        member(&mut t, &h, b"12345");
        let e = members(&t).unwrap_err();
        assert!(matches!(e, TarError::BadNumber { base256: true, .. }), "{e:?}");
    }

    #[test]
    fn v7_gnu_and_prefix() {
        let mut t = Vec::new();
        let mut h = H::new("ova.xml", 1);
        h.ustar = false;
        h.typeflag = 0;
        member(&mut t, &h, b"x");
        let mut h = H::new("00000000", 1);
        h.prefix = "Ref:1".into();
        member(&mut t, &h, b"y");
        let (m, _) = members(&t).unwrap();
        assert_eq!(m[0].format, HeaderFormat::V7);
        assert!(m[0].is_regular());
        assert_eq!(m[1].name, "Ref:1/00000000");
        assert_eq!(m[1].extensions, vec![Extension::Prefix]);
    }

    #[test]
    fn pax_and_gnu_long_names_apply_to_the_next_header() {
        let mut t = Vec::new();
        let body = b"16 path=ova.xml\n";
        let mut h = H::new("PaxHeader", body.len() as u64);
        h.typeflag = b'x';
        member(&mut t, &h, body);
        file(&mut t, "short", b"v");
        let mut h = H::new("././@LongLink", 15);
        h.typeflag = b'L';
        member(&mut t, &h, b"Ref:1/00000000\0");
        file(&mut t, "trunc", b"w");
        let (m, _) = members(&t).unwrap();
        assert_eq!(m[0].name, "ova.xml");
        assert_eq!(m[0].header_offset, 0);
        assert_eq!(m[0].extensions, vec![Extension::PaxLocal]);
        assert_eq!(m[1].name, "Ref:1/00000000");
        assert_eq!(m[1].extensions, vec![Extension::GnuLongName]);
    }

    #[test]
    fn truncation_is_reported() {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", &[7u8; 100]);
        let e = members(&t[..300]).unwrap_err();
        assert!(matches!(e, TarError::Truncated { .. }), "{e:?}");
        let e = members(&t[..100]).unwrap_err();
        assert!(matches!(e, TarError::Truncated { what: "a tar header", .. }), "{e:?}");
    }

    #[test]
    fn gzip_and_zstd_are_detected() {
        use std::io::Write;
        let mut t = Vec::new();
        file(&mut t, "ova.xml", b"<value/>");
        end(&mut t);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&t).unwrap();
        let gz = gz.finish().unwrap();
        let rd = XvaReader::new(&gz[..]).unwrap();
        assert_eq!(rd.compression(), Compression::Gzip);
        assert_eq!(members(&gz).unwrap().0[0].name, "ova.xml");
        let zs = zstd::encode_all(&t[..], 1).unwrap();
        assert_eq!(XvaReader::new(&zs[..]).unwrap().compression(), Compression::Zstd);
        assert_eq!(members(&zs).unwrap().0[0].name, "ova.xml");
        // corrupt compressed data is a decoder error, not an input error
        let mut bad = gz.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        bad.truncate(bad.len() - 4);
        match members(&bad) {
            Err(TarError::Io { side, .. }) => assert_eq!(side, IoSide::Decompress),
            Err(TarError::Truncated { .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    /// Records what the loop hands out.
    #[derive(Default)]
    struct Rec(Vec<String>);
    impl ImportVisitor for Rec {
        fn range(&mut self, r: DiskRange<'_>) -> io::Result<()> {
            self.0.push(match r {
                DiskRange::Data { disk, offset, bytes } => format!("D{disk}@{offset}+{}", bytes.len()),
                DiskRange::Zeros { disk, offset, len } => format!("Z{disk}@{offset}+{len}"),
            });
            Ok(())
        }
    }

    fn run(t: &[u8], vdis: &[(&str, u64)]) -> (LoopOutcome, Vec<Finding>, Vec<String>) {
        let mut rd = XvaReader::new(t).unwrap();
        let m = rd.next_member().unwrap().unwrap();
        assert_eq!(m.name, "ova.xml");
        let vdis: Vec<StreamedVdi> =
            vdis.iter().map(|(id, s)| StreamedVdi { id: id.to_string(), virtual_size: *s }).collect();
        let mut f = Vec::new();
        let mut rec = Rec::default();
        let o = import_loop(&mut rd, &vdis, 2, &mut rec, &mut f).unwrap();
        // These tests use small chunks on purpose; drop the "F is not 1 MiB" note.
        f.retain(|x| !(x.severity == Severity::Warning && x.rule == 26));
        (o, f, rec.0)
    }

    #[test]
    fn loop_tracks_gaps_with_the_global_first_chunk_length() {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", b"");
        // disk A: 3 chunks of 1024 (F = 1024), counter 1 omitted
        chunk(&mut t, "A/00000000", &[1u8; 1024]);
        chunk(&mut t, "A/00000002", &[2u8; 1000]);
        // disk B: size 2048 + 10, chunk 0 and 2 (gap of one F)
        chunk(&mut t, "B/00000000", &[3u8; 1024]);
        chunk(&mut t, "B/00000002", &[4u8; 10]);
        end(&mut t);
        let (o, f, r) = run(&t, &[("A", 3048), ("B", 2058)]);
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(o.first_chunk_len, Some(1024));
        assert_eq!(r, ["D0@0+1024", "Z0@1024+1024", "D0@2048+1000", "D1@0+1024", "Z1@1024+1024", "D1@2048+10"]);
        assert_eq!(o.disks[0].zero_gaps, 1);
        assert_eq!(o.disks[1].chunks, 2);
        assert!(o.disks.iter().all(|d| d.complete));
    }

    #[test]
    fn loop_reports_missing_last_chunk() {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", b"");
        chunk(&mut t, "A/00000000", &[1u8; 1024]);
        end(&mut t);
        let (o, f, _) = run(&t, &[("A", 4096)]);
        assert!(o.stopped);
        assert_eq!((f[0].severity, f[0].rule), (Severity::Error, 26), "{f:?}");
    }

    #[test]
    fn loop_reports_out_of_order_and_wrong_vdi() {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", b"");
        chunk(&mut t, "A/00000001", &[1u8; 1024]);
        chunk(&mut t, "A/00000000", &[1u8; 1024]);
        let (_, f, _) = run(&t, &[("A", 4096)]);
        assert_eq!(f.last().map(|f| (f.severity, f.rule)), Some((Severity::Error, 23)), "{f:?}");

        let mut t = Vec::new();
        file(&mut t, "ova.xml", b"");
        chunk(&mut t, "B/00000000", &[1u8; 1024]);
        let (_, f, _) = run(&t, &[("A", 1024)]);
        assert_eq!(f.last().map(|f| (f.severity, f.rule)), Some((Severity::Error, 5)), "{f:?}");
    }

    #[test]
    fn loop_checks_checksums() {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", b"");
        file(&mut t, "A/00000000", b"abc");
        let upper = crate::xva::writer::ChecksumKind::Sha1.body(b"abc").to_uppercase();
        file(&mut t, "A/00000000.checksum", upper.as_bytes());
        file(&mut t, "A/00000001", b"def");
        let xx = crate::xva::writer::ChecksumKind::Xxhash.body(b"def");
        file(&mut t, "A/00000001.xxhash", xx.as_bytes());
        file(&mut t, "A/00000002", b"ghi");
        file(&mut t, "A/00000002.md5", b"0");
        let (_, f, _) = run(&t, &[("A", 9)]);
        let got: Vec<_> = f.iter().map(|f| (f.severity, f.rule)).collect();
        assert_eq!(got, [(Severity::Error, 25), (Severity::Warning, 25), (Severity::Error, 24)], "{f:?}");
        assert!(f[0].message.contains("wrong case"), "{}", f[0].message);
    }

    #[test]
    fn loop_reports_overrun_and_size_mismatch_and_dummies() {
        let mut t = Vec::new();
        file(&mut t, "ova.xml", b"");
        chunk(&mut t, "A/00000000", &[1u8; 1024]);
        chunk(&mut t, "A/00000001", b"");
        chunk(&mut t, "A/00000002", &[1u8; 512]);
        chunk(&mut t, "A/00000003", &[1u8; 1024]);
        let (_, f, _) = run(&t, &[("A", 2000)]);
        let got: Vec<_> = f.iter().map(|f| (f.severity, f.rule)).collect();
        assert_eq!(got, [(Severity::Warning, 29), (Severity::Corruption, 26), (Severity::Corruption, 26)], "{f:?}");
        assert!(f[2].message.contains("560 more"), "{}", f[2].message);
    }
}
