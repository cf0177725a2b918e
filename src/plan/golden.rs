//! Golden tests of the guest → VM record mapping over the fixture configs in
//! `testdata/configs/` (moved here from `guest/golden.rs` with the mapping), rendering
//! `ova.xml` through the records.

use crate::guest::{xm, Guest, Severity, MIB};
use crate::xva::records;

use super::spec::vm_spec;

macro_rules! fixture {
    ($p:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/configs/", $p))
    };
}

fn has_note(g: &Guest, sev: Severity, needle: &str) -> bool {
    g.notes.iter().any(|n| n.severity == sev && n.message.contains(needle))
}

#[test]
fn vm_spec_mapping() {
    let g = xm::parse(fixture!("xm/win2008-hvm")).unwrap();
    let spec = vm_spec(&g, &[10 << 30, 20 << 30]).unwrap();
    assert_eq!(spec.name, "win2008");
    assert_eq!(spec.memory.static_max, 4096 * MIB);
    assert_eq!(spec.memory.dynamic_max, 2048 * MIB);
    assert!(spec.cdrom);
    assert_eq!(spec.disks.iter().map(|d| d.userdevice).collect::<Vec<_>>(), [0, 1]);
    assert!(spec.platform.viridian && spec.platform.acpi);
    assert_eq!(spec.platform.timeoffset, Some(3600));
    assert_eq!(spec.vifs[0].mac.as_deref(), Some("00:16:3e:5a:01:02"));
    assert_eq!(spec.vifs[0].network, "Pool-wide network associated with eth1");
    records::ova_xml(&spec).unwrap();
    let mut g = xm::parse(fixture!("xm/web01-pygrub")).unwrap();
    let spec = vm_spec(&g, &[1 << 30, 1 << 30, 1 << 29]).unwrap();
    assert!(matches!(&spec.boot, records::Boot::Pv { bootloader, .. } if bootloader == "pygrub"));
    assert!(vm_spec(&g, &[1]).is_err());
    g.force_hvm();
    assert!(!g.boot.is_pv());
    assert!(!has_note(&g, Severity::Important, "PV guest"));
}
