//! Compressed clusters: raw deflate (qcow v1 and qcow2 `compression_type` 0) and zstd
//! (`compression_type` 1). Bytes in, one cluster out.
//!
//! The stored length of a compressed cluster is only sector-precise (qcow2) or may include
//! bytes of the next cluster, so both decoders stop when the cluster is full and accept input
//! left over or running out at the end (what qemu accepts: `Z_BUF_ERROR` with a full output).
//! A zstd cluster may hold several frames: the streaming decoder is run until the output is
//! full, and a frame left unfinished at that point is an error.

use crate::error::{Error, Result};

/// Inflates raw deflate data (no zlib header; qemu writes a 4 KiB window, which a 32 KiB
/// window decoder reads) into `dst`, which must be filled exactly.
pub fn inflate_raw(src: &[u8], dst: &mut [u8], z: &mut flate2::Decompress) -> Result<()> {
    z.reset(false);
    let r = z.decompress(src, dst, flate2::FlushDecompress::Finish);
    let filled = z.total_out() as usize;
    match r {
        Ok(_) if filled == dst.len() => Ok(()),
        Ok(_) => Err(Error::corrupt(format!(
            "compressed cluster inflates to {filled} bytes, {} expected (the compressed data is cut off)",
            dst.len()
        ))),
        Err(e) => Err(Error::corrupt("compressed cluster is not valid deflate data").with_source(e)),
    }
}

/// Decodes one or more zstd frames from `src` into `dst`, which must be filled exactly.
pub fn unzstd(src: &[u8], dst: &mut [u8], d: &mut zstd::stream::raw::Decoder<'static>) -> Result<()> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    d.reinit().map_err(|e| Error::corrupt("cannot reset the zstd decoder").with_source(e))?;
    let mut input = InBuffer::around(src);
    let mut output = OutBuffer::around(dst);
    let mut hint = 0usize;
    while output.pos() < output.capacity() {
        let (in_before, out_before) = (input.pos(), output.pos());
        hint = d
            .run(&mut input, &mut output)
            .map_err(|e| Error::corrupt("compressed cluster is not valid zstd data").with_source(e))?;
        if input.pos() == in_before && output.pos() == out_before {
            return Err(Error::corrupt(format!(
                "zstd-compressed cluster decodes to {} bytes, {} expected (the compressed data is cut off)",
                output.pos(),
                output.capacity()
            )));
        }
    }
    if hint != 0 {
        return Err(Error::corrupt("zstd-compressed cluster holds more data than one cluster"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"qcow2 cluster "[i % 14] ^ (i / 4096) as u8).collect()
    }

    #[test]
    fn deflate_with_trailing_bytes_and_short_input() {
        let raw = text(65536);
        let mut z = flate2::Decompress::new(false);
        let mut c = deflate(&raw);
        let mut out = vec![0u8; raw.len()];
        inflate_raw(&c, &mut out, &mut z).unwrap();
        assert_eq!(out, raw);
        // Sector padding and the next cluster's bytes after the stream are fine.
        c.extend_from_slice(&[0xAB; 700]);
        out.fill(0);
        inflate_raw(&c, &mut out, &mut z).unwrap();
        assert_eq!(out, raw);
        // Cut off: an error, not a short cluster.
        let c = deflate(&raw);
        let e = inflate_raw(&c[..c.len() / 2], &mut out, &mut z).unwrap_err();
        assert!(e.to_string().contains("cut off"), "{e}");
        assert!(inflate_raw(&[0xff; 64], &mut out, &mut z).is_err());
        // Decoder state does not leak from one cluster into the next.
        inflate_raw(&deflate(&raw), &mut out, &mut z).unwrap();
        assert_eq!(out, raw);
    }

    #[test]
    fn zstd_with_several_frames() {
        let raw = text(65536);
        let mut d = zstd::stream::raw::Decoder::new().unwrap();
        let mut c = zstd::bulk::compress(&raw[..20000], 3).unwrap();
        c.extend(zstd::bulk::compress(&raw[20000..], 3).unwrap());
        let mut out = vec![0u8; raw.len()];
        unzstd(&c, &mut out, &mut d).unwrap();
        assert_eq!(out, raw);
        // Padding after the last frame is not read.
        c.extend_from_slice(&[0u8; 300]);
        unzstd(&c, &mut out, &mut d).unwrap();
        assert_eq!(out, raw);
        // Cut off, garbage, too much data.
        let one = zstd::bulk::compress(&raw, 3).unwrap();
        assert!(unzstd(&one[..one.len() - 10], &mut out, &mut d).is_err());
        assert!(unzstd(&[0x55; 100], &mut out, &mut d).is_err());
        let big = zstd::bulk::compress(&text(65536 + 4096), 3).unwrap();
        assert!(unzstd(&big, &mut out, &mut d).unwrap_err().to_string().contains("more data"));
        unzstd(&one, &mut out, &mut d).unwrap();
        assert_eq!(out, raw);
    }
}
