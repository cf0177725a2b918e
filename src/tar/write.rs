//! The one tar writer, for what an XVA needs: xapi's reader (ocaml-tar) checks each header's
//! checksum and reads sizes as 12-byte octal; it needs no directory entries and must not see any (a `Ref:1/` entry would be taken for a
//! chunk). We emit typeflag `0`, mode 0644, uid/gid 0, empty user and group names, mtime 0, no
//! PAX or GNU extension records and never the `prefix` field (`xva-format-and-xapi-import.md`
//! §2.3). Member names are at most 100 bytes.

use std::io;

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// The largest member size a 12-byte octal field can hold (8 GiB − 1).
pub const MAX_MEMBER: u64 = 0o77777777777;

/// A ustar header for a regular file `name` of `size` bytes.
pub fn header(name: &str, size: u64) -> io::Result<[u8; BLOCK]> {
    if name.is_empty() || name.len() > 100 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tar member name {name:?} must be 1..=100 bytes"),
        ));
    }
    if size > MAX_MEMBER {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tar member {name} is too large ({size} bytes)"),
        ));
    }
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o644); // mode
    octal(&mut h[108..116], 0); // uid
    octal(&mut h[116..124], 0); // gid
    octal(&mut h[124..136], size); // size
    octal(&mut h[136..148], 0); // mtime
    h[156] = b'0'; // typeflag: regular file
    h[257..263].copy_from_slice(b"ustar\0"); // magic
    h[263..265].copy_from_slice(b"00"); // version
                                        // checksum: sum of all bytes with the checksum field read as eight spaces
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let field = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(field.as_bytes());
    Ok(h)
}

/// Writes `value` as zero-padded octal filling `field` but its last byte (a NUL).
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

/// Bytes of padding after a member of `size` bytes.
pub fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// Bytes a member of `size` bytes takes in the archive, header included.
pub fn member_len(size: u64) -> u64 {
    BLOCK as u64 + size + padding(size) as u64
}

/// The end-of-archive marker: two zero blocks.
pub const END: [u8; 2 * BLOCK] = [0u8; 2 * BLOCK];

/// Writes one member (header, data, padding).
pub fn write_member(out: &mut impl io::Write, name: &str, data: &[u8]) -> io::Result<()> {
    out.write_all(&header(name, data.len() as u64)?)?;
    out.write_all(data)?;
    out.write_all(&[0u8; BLOCK][..padding(data.len() as u64)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_and_checksum() {
        let h = header("Ref:d000/00000000", 1048576).unwrap();
        assert_eq!(&h[..17], b"Ref:d000/00000000");
        assert_eq!(&h[124..136], b"00004000000\0");
        assert_eq!(h[156], b'0');
        assert_eq!(&h[257..265], b"ustar\x0000");
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        let mut copy = h;
        copy[148..156].fill(b' ');
        assert_eq!(stored, copy.iter().map(|&b| u32::from(b)).sum::<u32>());
        assert!(header("", 1).is_err());
        assert!(header(&"x".repeat(101), 1).is_err());
        assert!(header("a", MAX_MEMBER + 1).is_err());
    }

    #[test]
    fn padding_and_lengths() {
        assert_eq!(padding(0), 0);
        assert_eq!(padding(1), 511);
        assert_eq!(padding(512), 0);
        assert_eq!(member_len(40), 1024);
        let mut v = Vec::new();
        write_member(&mut v, "ova.xml", b"abc").unwrap();
        assert_eq!(v.len(), 1024);
    }
}
