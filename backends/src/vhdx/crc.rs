//! CRC-32C (Castagnoli), the checksum of every VHDX header, region table and log entry.
//!
//! Reflected polynomial `0x82F63B78`, initial value and final xor `0xFFFFFFFF`; a 256-entry table
//! computed at compile time (the checksummed structures are at most 64 KiB, read once at open,
//! plus the log when it is replayed).

const POLY: u32 = 0x82F6_3B78;

const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Continues a CRC-32C over `bytes`; start from `0` (the pre- and post-inversion are inside).
pub fn update(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c = TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// CRC-32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    update(0, bytes)
}

/// CRC-32C of a VHDX structure whose own checksum field (4 bytes at `field`) counts as zero.
pub fn structure(bytes: &[u8], field: usize) -> u32 {
    let end = (field + 4).min(bytes.len());
    let field = field.min(end);
    let c = update(0, &bytes[..field]);
    let c = update(c, &[0u8; 4][..end - field]);
    update(c, &bytes[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // RFC 3720 (iSCSI) appendix B.4 and the usual "123456789" check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&inc), 0x46DD_794E);
        assert_eq!(crc32c(b""), 0);
        assert_eq!(update(crc32c(b"1234"), b"56789"), crc32c(b"123456789"));
    }

    #[test]
    fn the_checksum_field_counts_as_zero() {
        let mut b = b"headXXXXrest of it".to_vec();
        let want = {
            let mut z = b.clone();
            z[4..8].fill(0);
            crc32c(&z)
        };
        assert_eq!(structure(&b, 4), want);
        b[4..8].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(structure(&b, 4), want);
        assert_eq!(structure(&b[..6], 4), crc32c(&[b'h', b'e', b'a', b'd', 0, 0]));
    }
}
