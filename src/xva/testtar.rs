//! A tiny tar/XVA builder for tests: headers can be broken on purpose.

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
