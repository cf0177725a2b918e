//! OVA archives read in place: the tar is indexed once (ustar, GNU long names, PAX `path`), and
//! each disk is described as a byte range of the OVA file so that it can be opened as a
//! `xva_backends::Window` — no extraction, no temporary copy. The `.mf` manifest
//! (`SHA1(name)= hex` / `SHA256(name)= hex`) is checked by streaming each member through a
//! [`Verifier`].
//!
//! Header parsing ([`parse_header`]) and manifest parsing ([`parse_manifest`]) are pure; only
//! [`index_file`] and [`verify_member`] read the file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha1::Digest as _;

use super::error::{ErrorKind, GuestError, Result};

/// Tar block size.
pub const BLOCK: u64 = 512;
/// Most members indexed.
pub const MAX_MEMBERS: usize = 100_000;
/// Longest GNU long name / PAX header read.
const MAX_META: u64 = 1 << 20;

/// One regular file in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Name in the archive.
    pub name: String,
    /// Offset of the data in the OVA file.
    pub offset: u64,
    /// Length of the data.
    pub len: u64,
}

/// The archive's regular files, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OvaIndex {
    /// Members in archive order.
    pub members: Vec<Member>,
}

impl OvaIndex {
    /// The member called `name` (a leading `./` is ignored).
    pub fn get(&self, name: &str) -> Option<&Member> {
        let want = name.trim_start_matches("./");
        self.members.iter().find(|m| m.name.trim_start_matches("./") == want)
    }

    /// The first `.ovf` member.
    pub fn ovf(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.name.to_ascii_lowercase().ends_with(".ovf"))
    }

    /// The first `.mf` member.
    pub fn manifest(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.name.to_ascii_lowercase().ends_with(".mf"))
    }
}

/// A parsed tar header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// `name`, with the ustar `prefix` joined.
    pub name: String,
    /// Data size.
    pub size: u64,
    /// Type flag (`0`/NUL regular, `5` directory, `L` GNU long name, `x`/`g` PAX …).
    pub typeflag: u8,
}

fn octal(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        // GNU base-256.
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let s: String = field.iter().take_while(|&&b| b != 0).map(|&b| b as char).collect();
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Parses one 512-byte header block; `Ok(None)` for an all-zero block (end of archive).
pub fn parse_header(block: &[u8]) -> Result<Option<Header>> {
    if block.len() != BLOCK as usize {
        return Err(GuestError::invalid("short tar header"));
    }
    if block.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let stored =
        octal(&block[148..156]).ok_or_else(|| GuestError::invalid("tar header checksum field is not octal"))?;
    let sum: u64 =
        block.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) }).sum();
    if sum != stored {
        return Err(GuestError::invalid("tar header checksum mismatch: not a tar archive, or a corrupt one"));
    }
    let size = octal(&block[124..136]).ok_or_else(|| GuestError::invalid("tar header size field is not a number"))?;
    let mut name = cstr(&block[0..100]);
    if &block[257..262] == b"ustar" {
        let prefix = cstr(&block[345..500]);
        if !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
    }
    Ok(Some(Header { name, size, typeflag: block[156] }))
}

/// Whether `head` (the first 512 bytes of a file) is a tar header.
pub fn looks_like_tar(head: &[u8]) -> bool {
    head.len() >= 512 && matches!(parse_header(&head[..512]), Ok(Some(_)))
}

fn pax_path(data: &[u8]) -> Option<String> {
    // records: "LEN key=value\n"
    let text = String::from_utf8_lossy(data);
    for rec in text.split('\n') {
        let Some((_, kv)) = rec.split_once(' ') else { continue };
        if let Some(p) = kv.strip_prefix("path=") {
            return Some(p.to_string());
        }
    }
    None
}

fn read_at(f: &File, path: &Path, buf: &mut [u8], off: u64) -> Result<()> {
    f.read_exact_at(buf, off).map_err(|e| GuestError::io(format!("reading the OVA at offset {off}"), path, e))
}

/// Indexes the tar at `path`.
pub fn index_file(path: &Path) -> Result<OvaIndex> {
    let f = File::open(path).map_err(|e| GuestError::io("opening the OVA", path, e))?;
    let len = f.metadata().map_err(|e| GuestError::io("reading the OVA's size", path, e))?.len();
    let mut idx = OvaIndex::default();
    let mut off = 0u64;
    let mut long_name: Option<String> = None;
    let mut block = [0u8; 512];
    while off.checked_add(BLOCK).is_some_and(|e| e <= len) {
        read_at(&f, path, &mut block, off)?;
        let Some(h) = parse_header(&block).map_err(|e| {
            GuestError::new(ErrorKind::Invalid, format!("{} (header at offset {off})", e.message())).in_file(path)
        })?
        else {
            break;
        };
        let data = off + BLOCK;
        let end = data.checked_add(h.size).filter(|&e| e <= len).ok_or_else(|| {
            GuestError::invalid(format!(
                "member {:?} of {} bytes runs past the end of the OVA (truncated download?)",
                h.name, h.size
            ))
            .in_file(path)
        })?;
        match h.typeflag {
            b'L' | b'x' => {
                if h.size > MAX_META {
                    return Err(GuestError::invalid("oversized tar metadata header").in_file(path));
                }
                let mut buf = vec![0u8; h.size as usize];
                read_at(&f, path, &mut buf, data)?;
                long_name = if h.typeflag == b'L' { Some(cstr(&buf)) } else { pax_path(&buf).or(long_name) };
            }
            b'0' | 0 | b'7' => {
                if idx.members.len() >= MAX_MEMBERS {
                    return Err(GuestError::invalid("too many members in the OVA").in_file(path));
                }
                idx.members.push(Member { name: long_name.take().unwrap_or(h.name), offset: data, len: h.size });
            }
            _ => {
                long_name = None;
            }
        }
        let padded = end
            .checked_add(BLOCK - 1)
            .map(|e| e / BLOCK * BLOCK)
            .ok_or_else(|| GuestError::invalid("tar offset overflow").in_file(path))?;
        off = padded;
    }
    if idx.members.is_empty() {
        return Err(GuestError::invalid("the OVA holds no files").in_file(path));
    }
    Ok(idx)
}

/// A manifest digest algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// SHA-1 (OVF 1.x).
    Sha1,
    /// SHA-256 (OVF 2.x, newer VMware).
    Sha256,
}

/// One manifest line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Algorithm.
    pub algo: Algo,
    /// File name.
    pub name: String,
    /// Expected digest, lower-case hex.
    pub digest: String,
}

/// Parses a `.mf` manifest: `SHA1(name)= hex` / `SHA256(name)= hex` lines.
pub fn parse_manifest(text: &str) -> Result<Vec<ManifestEntry>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        let bad = || GuestError::invalid(format!("manifest line {:?} is not ALGO(name)= digest", l)).at_line(i + 1);
        let (algo_name, rest) = l.split_once('(').ok_or_else(bad)?;
        let (name, digest) = rest.rsplit_once(")=").ok_or_else(bad)?;
        let algo = match algo_name.trim().to_ascii_uppercase().as_str() {
            "SHA1" => Algo::Sha1,
            "SHA256" => Algo::Sha256,
            other => {
                return Err(GuestError::unsupported(format!("manifest digest {other} is not supported (SHA1, SHA256)"))
                    .at_line(i + 1))
            }
        };
        let digest = digest.trim().to_ascii_lowercase();
        let want = if algo == Algo::Sha1 { 40 } else { 64 };
        if digest.len() != want || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        out.push(ManifestEntry { algo, name: name.to_string(), digest });
    }
    Ok(out)
}

/// Streaming digest check: feed the member's bytes in order, then [`Verifier::finish`].
pub struct Verifier {
    name: String,
    expected: String,
    state: State,
}

enum State {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Verifier {
    /// A checker for `entry`.
    pub fn new(entry: &ManifestEntry) -> Verifier {
        Verifier {
            name: entry.name.clone(),
            expected: entry.digest.clone(),
            state: match entry.algo {
                Algo::Sha1 => State::Sha1(sha1::Sha1::new()),
                Algo::Sha256 => State::Sha256(sha2::Sha256::new()),
            },
        }
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Sha1(h) => h.update(data),
            State::Sha256(h) => h.update(data),
        }
    }

    /// Compares the digest; a mismatch is an [`ErrorKind::Digest`] error.
    pub fn finish(self) -> Result<()> {
        let got: String = match self.state {
            State::Sha1(h) => hex(&h.finalize()),
            State::Sha256(h) => hex(&h.finalize()),
        };
        if got == self.expected {
            Ok(())
        } else {
            Err(GuestError::new(
                ErrorKind::Digest,
                format!(
                    "{}: digest mismatch: the manifest says {}, the data hashes to {got}; the \
                     OVA is corrupt or was modified",
                    self.name, self.expected
                ),
            ))
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Streams `member` of the OVA at `path` through a [`Verifier`] for `entry`.
pub fn verify_member(path: &Path, member: &Member, entry: &ManifestEntry) -> Result<()> {
    let f = File::open(path).map_err(|e| GuestError::io("opening the OVA", path, e))?;
    let mut v = Verifier::new(entry);
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < member.len {
        let n = (member.len - done).min(buf.len() as u64) as usize;
        read_at(&f, path, &mut buf[..n], member.offset + done)?;
        v.update(&buf[..n]);
        done += n as u64;
    }
    v.finish().map_err(|e| e.in_file(path))
}

/// Reads a (small) member whole, for the `.ovf` and `.mf`.
pub fn read_member(path: &Path, member: &Member, limit: u64) -> Result<Vec<u8>> {
    if member.len > limit {
        return Err(GuestError::invalid(format!(
            "{} is {} bytes; more than {limit} is not plausible",
            member.name, member.len
        ))
        .in_file(path));
    }
    let f = File::open(path).map_err(|e| GuestError::io("opening the OVA", path, e))?;
    let mut buf = vec![0u8; member.len as usize];
    read_at(&f, path, &mut buf, member.offset)?;
    Ok(buf)
}

/// Test and fixture helper: a ustar archive of `(name, data)` members, as `tar` writes it.
pub fn build_tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in members {
        let mut h = [0u8; 512];
        let n = name.as_bytes();
        h[..n.len().min(100)].copy_from_slice(&n[..n.len().min(100)]);
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// SHA-256 of `data` as lower-case hex (for building manifests in tests).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&sha2::Sha256::digest(data))
}

/// SHA-1 of `data` as lower-case hex.
pub fn sha1_hex(data: &[u8]) -> String {
    hex(&sha1::Sha1::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_roundtrip_and_manifest() {
        let disk = vec![7u8; 1500];
        let tar = build_tar(&[("vm.ovf", b"<x/>"), ("vm-disk1.vmdk", &disk)]);
        assert!(looks_like_tar(&tar));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vm.ova");
        std::fs::write(&p, &tar).unwrap();
        let idx = index_file(&p).unwrap();
        assert_eq!(idx.members.len(), 2);
        let m = idx.get("./vm-disk1.vmdk").unwrap();
        assert_eq!((m.offset, m.len), (1536, 1500));
        assert_eq!(&tar[m.offset as usize..][..4], &[7, 7, 7, 7]);
        let mf = format!("SHA256(vm-disk1.vmdk)= {}\nSHA1(vm.ovf)= {}\n", sha256_hex(&disk), sha1_hex(b"<x/>"));
        let entries = parse_manifest(&mf).unwrap();
        verify_member(&p, m, &entries[0]).unwrap();
        verify_member(&p, idx.get("vm.ovf").unwrap(), &entries[1]).unwrap();
        let mut wrong = entries[0].clone();
        wrong.digest = "0".repeat(64);
        let e = verify_member(&p, m, &wrong).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Digest);
        assert!(parse_manifest("MD5(x)= 00").is_err());
        assert!(parse_manifest("SHA1(x)= zz").is_err());
    }

    #[test]
    fn headers_never_panic() {
        assert!(parse_header(&[0u8; 10]).is_err());
        assert_eq!(parse_header(&[0u8; 512]).unwrap(), None);
        let mut junk = [b'7'; 512];
        junk[148] = b'x';
        assert!(parse_header(&junk).is_err());
        assert!(!looks_like_tar(b"hello"));
    }
}
