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
use crate::tar;

/// Tar block size.
pub const BLOCK: u64 = tar::BLOCK as u64;
/// Most members indexed.
pub const MAX_MEMBERS: usize = 100_000;

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

/// Parses one 512-byte header block; `Ok(None)` for an all-zero block (end of archive).
pub fn parse_header(block: &[u8]) -> Result<Option<Header>> {
    let Ok(block) = <&[u8; tar::BLOCK]>::try_from(block) else {
        return Err(GuestError::invalid("short tar header"));
    };
    if block.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    match tar::decode(block, tar::Mode::Lenient) {
        Ok(h) => Ok(Some(Header { name: h.name, size: h.size, typeflag: h.typeflag })),
        Err(tar::HeaderError::BadChecksum { stored: None, .. }) => {
            Err(GuestError::invalid("tar header checksum field is not octal"))
        }
        Err(tar::HeaderError::BadChecksum { .. }) => {
            Err(GuestError::invalid("tar header checksum mismatch: not a tar archive, or a corrupt one"))
        }
        Err(tar::HeaderError::BadNumber { .. }) => Err(GuestError::invalid("tar header size field is not a number")),
    }
}

/// Whether `head` (the first 512 bytes of a file) is a tar header.
pub fn looks_like_tar(head: &[u8]) -> bool {
    head.len() >= 512 && matches!(parse_header(&head[..512]), Ok(Some(_)))
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
                if h.size > tar::MAX_EXTENSION {
                    return Err(GuestError::invalid("oversized tar metadata header").in_file(path));
                }
                let mut buf = vec![0u8; h.size as usize];
                read_at(&f, path, &mut buf, data)?;
                long_name = if h.typeflag == b'L' {
                    Some(tar::decode::long_name(&buf))
                } else {
                    tar::decode::pax_path(&buf).or(long_name)
                };
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
            State::Sha1(h) => crate::hex::lower(&h.finalize()),
            State::Sha256(h) => crate::hex::lower(&h.finalize()),
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

/// Test and fixture helper: a ustar archive of `(name, data)` members, as `tar` writes it
/// (headers from the one tar writer, [`crate::tar::header`]). Names are cut to 100 bytes;
/// members the writer refuses (an empty name, 8 GiB or more) are left out.
pub fn build_tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in members {
        let mut cut = name.len().min(100);
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        let _ = tar::write_member(&mut out, &name[..cut], data);
    }
    out.extend_from_slice(&tar::END);
    out
}

/// SHA-256 of `data` as lower-case hex (for building manifests in tests).
pub fn sha256_hex(data: &[u8]) -> String {
    crate::hex::lower(&sha2::Sha256::digest(data))
}

/// SHA-1 of `data` as lower-case hex.
pub fn sha1_hex(data: &[u8]) -> String {
    crate::hex::lower(&sha1::Sha1::digest(data))
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
