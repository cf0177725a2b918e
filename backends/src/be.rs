//! Big-endian fields of on-disk structures (VHD footers, dynamic headers and BATs).
//!
//! The same contract as [`crate::le`]: the readers never panic, and bytes past the end of the
//! slice read as zero. Callers check a structure's length once (with an error naming the file
//! and offset) before reading its fields.

use crate::le::bytes;

/// The big-endian `u16` at byte `at` of `b`.
pub fn u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(bytes(b, at))
}

/// The big-endian `u32` at byte `at` of `b`.
pub fn u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes(b, at))
}

/// The big-endian `u64` at byte `at` of `b`.
pub fn u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes(b, at))
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_read_big_endian_and_never_panic() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(super::u16(&b, 0), 0x0102);
        assert_eq!(super::u32(&b, 1), 0x0203_0405);
        assert_eq!(super::u64(&b, 1), 0x0203_0405_0607_0809);
        assert_eq!(super::u32(&b, 7), 0x0809_0000, "short: zero-padded");
        assert_eq!(super::u64(&b, 100), 0);
        assert_eq!(super::u32(&b, usize::MAX), 0);
    }
}
