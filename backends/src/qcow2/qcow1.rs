//! qcow version 1, and the extension Xen's blktap (`tools/blktap/drivers/block-qcow.c`)
//! writes after its header.
//!
//! ```text
//!   0  magic "QFI\xfb"  4 version = 1  8 backing_file_offset  16 backing_file_size  20 mtime
//!  24  size            32 cluster_bits (u8)  33 l2_bits (u8)  34 padding
//!  36  crypt_method    40 l1_table_offset                     (48 bytes, big-endian)
//!  blktap: 48 xmagic "XEN\xfb"  52 cksum  56 min_cluster_alloc  60 flags   (big-endian)
//! ```
//!
//! The L1 table has `ceil(size / (cluster_size << l2_bits))` entries. blktap's extension is
//! only recognised when the L1 table is 4 KiB-aligned (as blktap checks). When its `flags`
//! lack [`EXTHDR_L1_BIG_ENDIAN`], the L1 table is stored in the host's byte order —
//! little-endian, as Xen ran on x86 — and blktap converted it in place on the next open; we
//! never write, so it is converted in memory. `cksum` is the first 32 bits (read as a
//! little-endian word) of the MD5 of the L1 table in big-endian form; a mismatch means tapdisk
//! did not close the image (it updates the checksum on close) and is reported, not fatal.
//! qemu-img knows nothing of the extension and reads a little-endian L1 table wrongly.

use crate::error::{Error, Result};
use crate::qcow2::header::{be32, be64, MAGIC};

/// Length of the qcow v1 header.
pub const HEADER_LEN: usize = 48;
/// `XEN\xfb`: blktap's extension magic.
pub const XEN_MAGIC: &[u8; 4] = b"XEN\xfb";
/// blktap flag: the image file is sparse.
pub const EXTHDR_SPARSE_FILE: u32 = 0x01;
/// blktap flag: the L1 table is big-endian (absent in images older tapdisks wrote).
pub const EXTHDR_L1_BIG_ENDIAN: u32 = 0x02;
/// Largest L1 table read (as for qcow2): 32 MiB.
pub const MAX_L1_BYTES: u64 = 32 << 20;

/// blktap's header extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blktap {
    /// MD5-derived checksum of the big-endian L1 table.
    pub cksum: u32,
    /// Clusters allocated at once.
    pub min_cluster_alloc: u32,
    /// `EXTHDR_*` flags.
    pub flags: u32,
}

impl Blktap {
    /// The L1 table is stored big-endian.
    pub fn l1_big_endian(&self) -> bool {
        self.flags & EXTHDR_L1_BIG_ENDIAN != 0
    }
}

/// A parsed qcow v1 header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Byte offset of the backing file name (0: none).
    pub backing_file_offset: u64,
    /// Length of the backing file name.
    pub backing_file_size: u32,
    /// Modification time of the backing file.
    pub mtime: u32,
    /// Virtual size in bytes.
    pub size: u64,
    /// log2 of the cluster size (9 to 16).
    pub cluster_bits: u32,
    /// log2 of the entries per L2 table (6 to 13).
    pub l2_bits: u32,
    /// 0 none, 1 AES.
    pub crypt_method: u32,
    /// Byte offset of the L1 table.
    pub l1_table_offset: u64,
    /// blktap's extension, when present.
    pub blktap: Option<Blktap>,
}

impl Header {
    /// L1 entries the virtual size needs.
    pub fn l1_entries(&self) -> u64 {
        self.size.div_ceil(1 << (self.cluster_bits + self.l2_bits))
    }

    /// Why the image cannot be read, if it cannot (encryption).
    pub fn refusal(&self) -> Option<Error> {
        (self.crypt_method != 0).then(|| {
            Error::unsupported(format!(
                "encrypted qcow image (crypt_method {}, AES) not supported: xva cannot decrypt images",
                self.crypt_method
            ))
            .at(36)
        })
    }
}

/// Parses a qcow v1 header (and blktap's extension) from the first bytes of the file.
pub fn parse(buf: &[u8], file_len: u64) -> Result<Header> {
    if buf.len() < HEADER_LEN {
        return Err(Error::invalid(format!("qcow header cut off: {} bytes", buf.len())).at(0));
    }
    if &buf[0..4] != MAGIC || be32(buf, 4) != 1 {
        return Err(Error::invalid("not a qcow version 1 image").at(0));
    }
    let h = Header {
        backing_file_offset: be64(buf, 8),
        backing_file_size: be32(buf, 16),
        mtime: be32(buf, 20),
        size: be64(buf, 24),
        cluster_bits: buf[32] as u32,
        l2_bits: buf[33] as u32,
        crypt_method: be32(buf, 36),
        l1_table_offset: be64(buf, 40),
        blktap: None,
    };
    if !(9..=16).contains(&h.cluster_bits) {
        return Err(Error::invalid(format!(
            "cluster_bits {}: qcow clusters are 512 bytes to 64 KiB (bits 9 to 16)",
            h.cluster_bits
        ))
        .at(32));
    }
    if !(6..=13).contains(&h.l2_bits) {
        return Err(Error::invalid(format!("l2_bits {}: must be 6 to 13", h.l2_bits)).at(33));
    }
    if h.size > 1 << 62 {
        return Err(Error::invalid(format!("virtual size of {} bytes is beyond any real disk", h.size)).at(24));
    }
    let l1_bytes = h.l1_entries() * 8;
    if l1_bytes > MAX_L1_BYTES {
        return Err(
            Error::invalid(format!("an L1 table of {l1_bytes} bytes (at most 32 MiB) for {} bytes", h.size)).at(24)
        );
    }
    if h.l1_table_offset.checked_add(l1_bytes).is_none_or(|e| e > file_len) {
        return Err(Error::corrupt(format!(
            "L1 table ({} entries) lies past the end of the file ({file_len} bytes)",
            h.l1_entries()
        ))
        .at(h.l1_table_offset));
    }
    if h.backing_file_offset != 0 && h.backing_file_size > crate::qcow2::header::MAX_BACKING_NAME {
        return Err(Error::invalid(format!("backing file name of {} bytes (at most 1023)", h.backing_file_size)).at(16));
    }
    let blktap = (h.l1_table_offset.is_multiple_of(4096) && buf.len() >= HEADER_LEN + 16 && &buf[48..52] == XEN_MAGIC)
        .then(|| Blktap { cksum: be32(buf, 52), min_cluster_alloc: be32(buf, 56), flags: be32(buf, 60) });
    Ok(Header { blktap, ..h })
}

/// Decodes the raw L1 table bytes as blktap would: big-endian, or little-endian for old
/// tapdisk images (extension present without [`EXTHDR_L1_BIG_ENDIAN`]).
pub fn decode_l1(raw: &[u8], h: &Header) -> Vec<u64> {
    let le = h.blktap.is_some_and(|b| !b.l1_big_endian());
    raw.chunks_exact(8)
        .map(|c| {
            let b: [u8; 8] = c.try_into().expect("8 bytes");
            if le {
                u64::from_le_bytes(b)
            } else {
                u64::from_be_bytes(b)
            }
        })
        .collect()
}

/// blktap's L1 checksum of decoded entries: MD5 of the big-endian table, first word read
/// little-endian.
pub fn l1_checksum(l1: &[u64]) -> u32 {
    let mut bytes = Vec::with_capacity(l1.len() * 8);
    for e in l1 {
        bytes.extend_from_slice(&e.to_be_bytes());
    }
    let d = md5(&bytes);
    u32::from_le_bytes(d[0..4].try_into().expect("4 bytes"))
}

/// MD5 (RFC 1321), only for blktap's L1 checksum.
pub fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14,
        20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6,
        10, 15, 21,
    ];
    // K[i] = floor(abs(sin(i + 1)) * 2^32)
    let k: Vec<u32> = (0..64).map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32).collect();
    let mut st: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    for chunk in msg.chunks_exact(64) {
        let m: Vec<u32> = chunk.chunks_exact(4).map(|w| u32::from_le_bytes(w.try_into().expect("4"))).collect();
        let [mut a, mut b, mut c, mut d] = st;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        st[0] = st[0].wrapping_add(a);
        st[1] = st[1].wrapping_add(b);
        st[2] = st[2].wrapping_add(c);
        st[3] = st[3].wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, w) in st.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: &[u8]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn md5_known_answers() {
        assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(&md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(&md5(b"12345678901234567890123456789012345678901234567890123456789012345678901234567890")),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    fn header(cb: u8, l2b: u8, size: u64, l1_off: u64, ext: Option<(u32, u32)>) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[0..4].copy_from_slice(MAGIC);
        h[4..8].copy_from_slice(&1u32.to_be_bytes());
        h[24..32].copy_from_slice(&size.to_be_bytes());
        h[32] = cb;
        h[33] = l2b;
        h[40..48].copy_from_slice(&l1_off.to_be_bytes());
        if let Some((cksum, flags)) = ext {
            h[48..52].copy_from_slice(XEN_MAGIC);
            h[52..56].copy_from_slice(&cksum.to_be_bytes());
            h[56..60].copy_from_slice(&512u32.to_be_bytes());
            h[60..64].copy_from_slice(&flags.to_be_bytes());
        }
        h
    }

    #[test]
    fn header_fields_and_blktap_extension() {
        let b = header(12, 9, 10 << 20, 4096, None);
        let h = parse(&b, 1 << 20).unwrap();
        assert_eq!((h.cluster_bits, h.l2_bits, h.size, h.l1_entries()), (12, 9, 10 << 20, 5));
        assert!(h.blktap.is_none());
        let b = header(12, 9, 10 << 20, 4096, Some((7, EXTHDR_SPARSE_FILE)));
        let h = parse(&b, 1 << 20).unwrap();
        let x = h.blktap.unwrap();
        assert_eq!((x.cksum, x.min_cluster_alloc, x.l1_big_endian()), (7, 512, false));
        // blktap only looks for its extension when the L1 table is 4 KiB-aligned.
        let b = header(12, 9, 10 << 20, 4096 + 512, Some((7, 2)));
        assert!(parse(&b, 1 << 20).unwrap().blktap.is_none());
        // Decoding: LE without the flag, BE with it.
        let mut raw = Vec::new();
        raw.extend_from_slice(&0x3000u64.to_le_bytes());
        raw.extend_from_slice(&0u64.to_le_bytes());
        let le = parse(&header(12, 9, 1 << 20, 4096, Some((0, 0))), 1 << 20).unwrap();
        assert_eq!(decode_l1(&raw, &le), [0x3000, 0]);
        let be = parse(&header(12, 9, 1 << 20, 4096, Some((0, EXTHDR_L1_BIG_ENDIAN))), 1 << 20).unwrap();
        assert_eq!(decode_l1(&raw, &be), [0x3000u64.swap_bytes(), 0]);
    }

    #[test]
    fn bad_headers() {
        let e = |b: &[u8], len: u64| parse(b, len).unwrap_err().to_string();
        assert!(e(&header(8, 9, 1 << 20, 4096, None), 1 << 20).contains("cluster_bits"));
        assert!(e(&header(17, 9, 1 << 20, 4096, None), 1 << 20).contains("cluster_bits"));
        assert!(e(&header(12, 14, 1 << 20, 4096, None), 1 << 20).contains("l2_bits"));
        assert!(e(&header(9, 6, 1 << 60, 4096, None), 1 << 20).contains("32 MiB"));
        assert!(e(&header(12, 9, 1 << 40, 4096, None), 8192).contains("past the end"));
        assert!(e(&header(12, 9, 1 << 20, u64::MAX - 3, None), 8192).contains("past the end"));
        assert!(parse(&[0u8; 20], 20).is_err());
        let mut b = header(12, 9, 1 << 20, 4096, None);
        b[36..40].copy_from_slice(&1u32.to_be_bytes());
        assert!(parse(&b, 1 << 20).unwrap().refusal().unwrap().to_string().contains("encrypted"));
    }

    #[test]
    fn checksum_is_over_the_big_endian_table() {
        let l1 = [0x3000u64, 0, 0x9000];
        let mut be = Vec::new();
        for e in l1 {
            be.extend_from_slice(&e.to_be_bytes());
        }
        let d = md5(&be);
        assert_eq!(l1_checksum(&l1), u32::from_le_bytes([d[0], d[1], d[2], d[3]]));
        assert_ne!(l1_checksum(&l1), l1_checksum(&[0x3000, 0, 0x9001]));
    }
}
