//! Unit tests of parent names and parent links.

use std::fs;
use std::path::PathBuf;

use super::*;
use crate::testutil::MemLayer;
use crate::ErrorKind;

#[test]
fn name_candidates() {
    assert_eq!(candidates("base.vmdk"), ["base.vmdk"]);
    assert_eq!(candidates("sub/base.vmdk"), ["sub/base.vmdk"]);
    assert_eq!(candidates("../base.vmdk"), ["../base.vmdk"], "the policy judges '..'");
    assert_eq!(candidates("/vmfs/volumes/ds1/vm/base.vmdk"), ["/vmfs/volumes/ds1/vm/base.vmdk", "base.vmdk"]);
    assert_eq!(candidates("C:\\VMs\\w7\\base.vmdk"), ["base.vmdk"]);
    assert_eq!(candidates("C:\\vms\\base.vhd"), ["base.vhd"]);
    assert_eq!(candidates("D:base.vmdk"), ["D:base.vmdk"]);
    assert_eq!(candidates("..\\base.vmdk"), ["base.vmdk"]);
    assert_eq!(candidates("\\\\server\\share\\base.vhdx"), ["base.vhdx"]);
    assert_eq!(candidates(""), [""]);
}

#[test]
fn utf16le_names() {
    let enc = |s: &str| s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect::<Vec<u8>>();
    assert_eq!(decode_utf16le(&enc("C:\\vms\\base.vhd"), "locator").unwrap(), "C:\\vms\\base.vhd");
    assert_eq!(decode_utf16le(&enc("dïsk€𝄞.vhdx"), "locator").unwrap(), "dïsk€𝄞.vhdx");
    let mut padded = enc("a.vhd");
    padded.extend_from_slice(&[0, 0, b'x', 0]);
    assert_eq!(decode_utf16le(&padded, "locator").unwrap(), "a.vhd", "stops at NUL");
    assert_eq!(decode_utf16le(&[], "locator").unwrap(), "");
    let e = decode_utf16le(b"abc", "parent locator").unwrap_err();
    assert!(e.to_string().contains("parent locator") && e.to_string().contains("odd"), "{e}");
    let e = decode_utf16le(&[0x00, 0xd8, b'a', 0], "locator").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
}

#[test]
fn layer_ids_display_and_compare() {
    assert_eq!(LayerId::VmdkCid(0x0bad_c0de).to_string(), "CID 0badc0de");
    let uuid: [u8; 16] = core::array::from_fn(|i| i as u8);
    assert_eq!(
        LayerId::Vhd { unique_id: uuid, timestamp: 7 }.to_string(),
        "unique id 00010203-0405-0607-0809-0a0b0c0d0e0f and time stamp 7"
    );
    assert_eq!(LayerId::VhdxDataWriteGuid(uuid).to_string(), "DataWriteGuid 03020100-0504-0706-0809-0a0b0c0d0e0f");
    assert!(LayerId::VmdkCid(1).same_kind(&LayerId::VmdkCid(2)));
    assert!(!LayerId::VmdkCid(1).same_kind(&LayerId::VhdxDataWriteGuid(uuid)));
}

/// A layer that says who it is.
#[derive(Debug)]
struct Ided(MemLayer, Option<LayerId>);

impl BlockReader for Ided {
    fn format(&self) -> &'static Format {
        self.0.format()
    }
    fn virtual_size(&self) -> u64 {
        self.0.virtual_size()
    }
    fn path(&self) -> &Path {
        Path::new("/vm/base.img")
    }
    fn block_status(&self, offset: u64, max_len: u64) -> Result<crate::Extent> {
        self.0.block_status(offset, max_len)
    }
    fn read_layer(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.0.read_layer(buf, offset)
    }
    fn identity(&self) -> Option<LayerId> {
        self.1
    }
}

#[test]
fn links_are_checked_generically() {
    let strict = OpenPolicy::default();
    let lax = OpenPolicy { ignore_parent_mismatch: true, ..Default::default() };
    let child = Path::new("/vm/delta.img");
    let parent = |id| Ided(MemLayer::new(512, 0, &[], None), id);
    let cid = LayerId::VmdkCid(0x1234_5678);
    check_link(child, &cid, &parent(Some(cid)), &strict).unwrap();
    let e = check_link(child, &cid, &parent(Some(LayerId::VmdkCid(0x0bad_c0de))), &strict).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    let s = e.to_string();
    for want in ["CID 12345678", "CID 0badc0de", "delta.img", "base.img", "--ignore-parent-mismatch", "--ignore-cid"] {
        assert!(s.contains(want), "{want}: {s}");
    }
    check_link(child, &cid, &parent(Some(LayerId::VmdkCid(1))), &lax).unwrap();
    // No identity, or one of another kind: nothing to compare.
    check_link(child, &cid, &parent(None), &strict).unwrap();
    check_link(child, &cid, &parent(Some(LayerId::VhdxDataWriteGuid([0; 16]))), &strict).unwrap();
    let vhd = |ts| LayerId::Vhd { unique_id: [9; 16], timestamp: ts };
    let e = check_link(child, &vhd(1), &parent(Some(vhd(2))), &strict).unwrap_err();
    assert!(e.to_string().contains("time stamp 2"), "{e}");
}

fn vm_dir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let vm = t.path().join("vm");
    fs::create_dir(&vm).unwrap();
    fs::write(vm.join("base.img"), vec![7u8; 1024]).unwrap();
    fs::write(vm.join("top.img"), vec![1u8; 1024]).unwrap();
    fs::write(t.path().join("outside.img"), vec![2u8; 1024]).unwrap();
    (t, vm)
}

fn open_named(top: &Path, name: &str, policy: &OpenPolicy) -> Result<Box<dyn BlockReader>> {
    let ctx = OpenCtx::new(policy);
    let r = ParentRef { name, field: "parent name", format: Some(&crate::raw::FORMAT), expect: None };
    open_parent(&ctx, top, &r)
}

#[test]
fn parents_are_found_by_name_through_the_policy() {
    let (t, vm) = vm_dir();
    let top = vm.join("top.img");
    let p = OpenPolicy::default();
    assert!(open_named(&top, "base.img", &p).unwrap().path().ends_with("vm/base.img"));
    // An absolute or Windows path from another machine: the base name next to the child.
    for name in ["/vmfs/volumes/ds1/old/base.img", "C:\\vms\\base.img", "..\\base.img"] {
        assert!(open_named(&top, name, &p).unwrap().path().ends_with("vm/base.img"), "{name}");
    }
    // An absolute path that exists but is outside: refused, then looked for next to the child.
    let outside = t.path().join("outside.img");
    let e = open_named(&top, outside.to_str().unwrap(), &p).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MissingFile);
    let s = e.to_string();
    assert!(s.contains("parent name") && s.contains("outside.img") && s.contains("top.img"), "{s}");
    // ... unless the user allows it.
    let any = OpenPolicy { allow_any: true, ..Default::default() };
    assert!(open_named(&top, outside.to_str().unwrap(), &any).unwrap().path().ends_with("outside.img"));
    let e = open_named(&top, "../outside.img", &p).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RefusedReference);
    let e = open_named(&top, "top.img", &p).unwrap_err();
    assert!(e.to_string().contains("loop"), "{e}");
    assert!(open_named(&top, "", &p).is_err());
}
