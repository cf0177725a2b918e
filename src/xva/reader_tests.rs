//! Tests of the tar member reader.

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
