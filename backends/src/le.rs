//! Little-endian fields of on-disk structures (VMDK headers and tables, and the like).
//!
//! The readers never panic: bytes past the end of the slice read as zero. Callers check a
//! structure's length once (with an error naming the file and offset) before reading its fields.

/// `N` bytes of `b` at `at`, zero-padded past the end of `b`.
pub(crate) fn bytes<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = b.get(at..) {
        let n = src.len().min(N);
        out[..n].copy_from_slice(&src[..n]);
    }
    out
}

/// The little-endian `u16` at byte `at` of `b`.
pub fn u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes(b, at))
}

/// The little-endian `u32` at byte `at` of `b`.
pub fn u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes(b, at))
}

/// The little-endian `u64` at byte `at` of `b`.
pub fn u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes(b, at))
}

/// Decodes a table of little-endian entries of `width` bytes (4 or 8; anything else reads as
/// 8) into `u64`s; a trailing partial entry is ignored.
pub fn entries(raw: &[u8], width: usize) -> Vec<u64> {
    let width = if width == 4 { 4 } else { 8 };
    raw.chunks_exact(width).map(|c| if width == 4 { u32(c, 0) as u64 } else { u64(c, 0) }).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_read_little_endian_and_never_panic() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(super::u16(&b, 0), 0x0201);
        assert_eq!(super::u32(&b, 1), 0x0504_0302);
        assert_eq!(super::u64(&b, 1), 0x0908_0706_0504_0302);
        assert_eq!(super::u32(&b, 7), 0x0908, "short: zero-padded");
        assert_eq!(super::u64(&b, 100), 0);
        assert_eq!(super::u32(&b, usize::MAX), 0);
        assert_eq!(super::entries(&b, 4), vec![0x0403_0201, 0x0807_0605]);
        assert_eq!(super::entries(&b, 8), vec![0x0807_0605_0403_0201]);
    }
}
