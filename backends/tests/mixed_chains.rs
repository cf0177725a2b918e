//! Chains that mix formats, resolved by the one generic chain resolver: a qcow2 overlay over a
//! dynamic VHD and over a VHDX, each written by qemu-img / qemu-io, read back and compared
//! byte for byte with `qemu-img convert -O raw` (qemu reads these parents correctly; its maps
//! of VHD and VHDX differ from ours by design, see docs/formats/vhd.md and vhdx.md, so only
//! the bytes and our own map's consistency are checked here). Needs qemu-img and qemu-io:
//! fails, never skips, without them.

use std::fs;
use std::path::Path;

use xva_backends::BlockReader;

mod common;

use common::{open_default, p, qemu_img, qemu_io};

/// Our full read of `top` equals qemu's, every `data` range of our map lies where qemu's
/// bytes may be non-zero, and every range our map calls zero is zero in qemu's output.
fn assert_same_bytes(fmt: &str, top: &Path) -> Box<dyn BlockReader> {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("qemu.raw");
    qemu_img(&["convert", "-f", fmt, "-O", "raw", p(top), p(&raw)]);
    let theirs = fs::read(&raw).unwrap();
    let r = open_default(top);
    assert_eq!(r.virtual_size(), theirs.len() as u64, "virtual size of {}", top.display());
    let mut ours = vec![0xEEu8; theirs.len()];
    r.read_exact_at(&mut ours, 0).unwrap();
    if ours != theirs {
        let i = ours.iter().zip(&theirs).position(|(a, b)| a != b).unwrap();
        panic!("{}: bytes differ from qemu's, first at {i}", top.display());
    }
    for m in r.extents(0..r.virtual_size()) {
        let m = m.unwrap();
        let range = &theirs[m.start as usize..(m.start + m.len) as usize];
        if !m.data {
            assert!(
                range.iter().all(|&b| b == 0),
                "{}: {}+{} is not data but qemu reads bytes",
                top.display(),
                m.start,
                m.len
            );
        }
    }
    r
}

/// Writes the same pattern into a parent of format `parent_fmt` (qemu's name), puts a qcow2
/// overlay over it with data, zeroes over parent data and partial clusters, and compares.
fn qcow2_over(parent_fmt: &str, parent_name: &str, create_opts: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join(parent_name);
    let mut args = vec!["create", "-f", parent_fmt];
    args.extend_from_slice(create_opts);
    args.extend_from_slice(&[p(&base), "40M"]);
    qemu_img(&args);
    qemu_io(parent_fmt, &base, &["write -P 0x11 0 3M", "write -P 0x22 8M 1M", "write -P 0x33 30M 2M"]);
    let top = dir.path().join("top.qcow2");
    qemu_img(&["create", "-f", "qcow2", "-b", parent_name, "-F", parent_fmt, p(&top), "48M"]);
    qemu_io(
        "qcow2",
        &top,
        &["write -P 0x44 1M 64k", "write -z 8M 512k", "write -P 0x55 30M 4097", "write -P 0x66 44M 1M"],
    );
    let before = fs::read(&base).unwrap();
    let r = assert_same_bytes("qcow2", &top);
    assert_eq!(r.layers().len(), 2, "qcow2 over {parent_fmt}: two layers");
    assert_eq!(fs::read(&base).unwrap(), before, "the parent is unchanged");
    // The parent's data shows through where the overlay is silent, its zeros where it is
    // explicit, and past the parent's end the overlay's own data or zeros.
    let mut b = vec![0u8; 4];
    r.read_exact_at(&mut b, 2 << 20).unwrap();
    assert_eq!(b, [0x11; 4]);
    r.read_exact_at(&mut b, (8 << 20) + 4).unwrap();
    assert_eq!(b, [0; 4]);
    r.read_exact_at(&mut b, (8 << 20) + (600 << 10)).unwrap();
    assert_eq!(b, [0x22; 4]);
    r.read_exact_at(&mut b, (30 << 20) + 4095).unwrap();
    assert_eq!(b, [0x55, 0x55, 0x33, 0x33]);
    r.read_exact_at(&mut b, 44 << 20).unwrap();
    assert_eq!(b, [0x66; 4]);
}

#[test]
fn qcow2_over_a_dynamic_vhd() {
    qcow2_over("vpc", "base.vhd", &[]);
}

#[test]
fn qcow2_over_a_vhdx() {
    qcow2_over("vhdx", "base.vhdx", &[]);
}
