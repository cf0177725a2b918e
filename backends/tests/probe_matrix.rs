//! The probe matrix: an image of every format qemu-img writes is recognised as exactly its own
//! format (the recognised-but-unreadable ones included, so they never fall through to raw).
//! The cases say how qemu-img writes each format; the names they expect are the registry's, and
//! every format of the registry must have a case. Needs qemu-img; fails, never skips, without it.

use std::path::Path;
use std::process::Command;

use xva_backends::{probe, FileSource};

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img is required for this test (apt-get install -y qemu-utils)");
    assert!(out.status.success(), "qemu-img {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn detect(path: &Path) -> &'static str {
    probe::detect(&FileSource::open(path).unwrap()).unwrap().0.name
}

#[test]
fn every_format_is_recognised_as_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.raw");
    qemu_img(&["create", "-f", "raw", base.to_str().unwrap(), "4M"]);
    let cases: &[(&str, &[&str], &str)] = &[
        ("a.qcow2", &["-O", "qcow2"], "qcow2"),
        ("a-v2.qcow2", &["-O", "qcow2", "-o", "compat=0.10"], "qcow2"),
        ("a.qcow", &["-O", "qcow"], "qcow2"),
        ("sparse.vmdk", &["-O", "vmdk"], "vmdk"),
        ("flat.vmdk", &["-O", "vmdk", "-o", "subformat=monolithicFlat"], "vmdk"),
        ("split.vmdk", &["-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse"], "vmdk"),
        ("stream.vmdk", &["-O", "vmdk", "-o", "subformat=streamOptimized"], "vmdk"),
        ("dyn.vhd", &["-O", "vpc"], "vhd"),
        ("fixed.vhd", &["-O", "vpc", "-o", "subformat=fixed"], "vhd"),
        ("a.vhdx", &["-O", "vhdx"], "vhdx"),
        ("a.vdi", &["-O", "vdi"], "vdi"),
        ("a.qed", &["-O", "qed"], "qed"),
        ("a.parallels", &["-O", "parallels"], "parallels"),
        ("copy.raw", &["-O", "raw"], "raw"),
    ];
    for f in xva_backends::FORMATS {
        assert!(cases.iter().any(|(_, _, want)| *want == f.name), "no probe-matrix case for format {}", f.name);
    }
    for (name, opts, want) in cases {
        assert!(probe::by_name(want).is_some(), "{want} is not a registered format");
        let out = dir.path().join(name);
        let mut args = vec!["convert", "-f", "raw"];
        args.extend_from_slice(opts);
        args.push(base.to_str().unwrap());
        args.push(out.to_str().unwrap());
        qemu_img(&args);
        assert_eq!(detect(&out), *want, "{name}");
    }
    assert_eq!(detect(&base), "raw");
}
