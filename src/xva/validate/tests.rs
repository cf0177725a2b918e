//! Tests of the validator, end to end and rule by rule.

use super::*;
use crate::xva::reader::testtar::*;
use sha2::Digest as _;

const HVM: &str = include_str!("../../../testdata/xva/spec-6a-hvm.ova.xml");
const PV: &str = include_str!("../../../testdata/xva/spec-6b-pv.ova.xml");
const GIB10: u64 = 10 << 30;

fn rules(f: &[Finding]) -> Vec<(char, u8)> {
    f.iter().map(|f| (f.severity.letter(), f.rule)).collect()
}

/// ova.xml with the 6.a example's disk resized to `size`.
fn hvm_sized(size: u64) -> String {
    HVM.replace(
        "<name>virtual_size</name><value>10737418240</value>",
        &format!("<name>virtual_size</name><value>{size}</value>"),
    )
}

/// An XVA: ova.xml + a 3-chunk disk Ref:2 of 2 MiB + 5 bytes, chunk 1 omitted (zeros).
fn xva_with(xml: &str) -> Vec<u8> {
    let mut t = Vec::new();
    file(&mut t, "ova.xml", xml.as_bytes());
    chunk(&mut t, "Ref:2/00000000", &vec![1u8; 1 << 20]);
    chunk(&mut t, "Ref:2/00000002", &[2u8; 5]);
    end(&mut t);
    t
}

fn good() -> Vec<u8> {
    xva_with(&hvm_sized((2 << 20) + 5))
}

fn verify(t: &[u8]) -> VerifyReport {
    verify_reader(t, &VerifyOptions::default()).unwrap()
}

/// Runs the validator over ova.xml = 6.a with `from` replaced by `to` and returns findings.
fn hvm_edit(from: &str, to: &str) -> Vec<Finding> {
    assert!(HVM.contains(from), "{from}");
    let mut f = Vec::new();
    check_ova_xml(HVM.replace(from, to).as_bytes(), &mut f);
    f
}

fn has(f: &[Finding], sev: char, rule: u8) -> bool {
    f.iter().any(|x| x.severity.letter() == sev && x.rule == rule)
}

#[test]
fn spec_examples_validate_clean() {
    for (name, xml) in [("6.a", HVM), ("6.b", PV)] {
        let mut f = Vec::new();
        let h = check_ova_xml(xml.as_bytes(), &mut f).unwrap();
        assert!(f.is_empty(), "{name}: {f:#?}");
        assert_eq!(h.export_vsn, 2);
        assert_eq!(h.xapi_version, Some((1, 1)));
        let s = h.streamed.unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].id.as_str(), s[0].virtual_size), ("Ref:2", GIB10));
    }
}

#[test]
fn a_good_stream_verifies_clean_with_the_right_digest() {
    let r = verify(&good());
    assert!(r.violations.is_empty(), "{:#?}", r.violations);
    assert!(r.complete);
    assert_eq!(r.vm_names, ["web01"]);
    let d = &r.disks[0];
    assert_eq!((d.chunks, d.zero_gaps, d.complete), (2, 1, true));
    let mut disk = vec![1u8; 1 << 20];
    disk.extend(vec![0u8; 1 << 20]);
    disk.extend([2u8; 5]);
    let want: [u8; 32] = sha2::Sha256::digest(&disk).into();
    assert_eq!(d.sha256, Some(want));
}

#[test]
fn rule01_gzip_and_zstd_inputs_are_read() {
    use std::io::Write;
    let t = good();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&t).unwrap();
    let r = verify(&gz.finish().unwrap());
    assert_eq!(r.compression, Compression::Gzip);
    assert!(r.is_ok() && r.violations.is_empty(), "{:?}", r.violations);
    let r = verify(&zstd::encode_all(&t[..], 3).unwrap());
    assert_eq!(r.compression, Compression::Zstd);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.disks[0].sha256, verify(&t).disks[0].sha256);
    // not a tar at all
    let r = verify(b"hello world, this is not a tar file");
    assert!(has(&r.violations, 'E', 2) || has(&r.violations, 'E', 1), "{:?}", r.violations);
    // a corrupt gzip body
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&t).unwrap();
    let mut bad = gz.finish().unwrap();
    bad.truncate(bad.len() / 2);
    let r = verify(&bad);
    assert!(!r.is_ok(), "{:?}", r.violations);
}

#[test]
fn rule02_bad_header_checksum() {
    let mut t = good();
    t[0] = b'O'; // "Ova.xml": the stored checksum no longer matches
    let r = verify(&t);
    assert_eq!(rules(&r.violations), [('E', 2)], "{:?}", r.violations);
    assert_eq!(r.violations[0].offset, Some(0));
}

#[test]
fn rule02_truncated_member_data() {
    let t = good();
    let r = verify(&t[..t.len() / 2]);
    assert!(has(&r.violations, 'E', 2), "{:?}", r.violations);
}

#[test]
fn rule03_first_member_must_be_ova_xml() {
    let mut t = Vec::new();
    file(&mut t, "./ova.xml", HVM.as_bytes());
    end(&mut t);
    let r = verify(&t);
    assert_eq!(rules(&r.violations), [('E', 3)]);
}

#[test]
fn rule04_pax_header_is_warned() {
    let xml = hvm_sized(5);
    let mut t = Vec::new();
    let body = b"16 path=ova.xml\n";
    let mut h = H::new("PaxHeader/ova.xml", body.len() as u64);
    h.typeflag = b'x';
    member(&mut t, &h, body);
    file(&mut t, "ova.xml", xml.as_bytes());
    chunk(&mut t, "Ref:2/00000000", b"12345");
    end(&mut t);
    let r = verify(&t);
    assert_eq!(rules(&r.violations), [('W', 4)], "{:?}", r.violations);
}

#[test]
fn rule04_prefix_field_is_warned() {
    let xml = hvm_sized(5);
    let mut t = Vec::new();
    file(&mut t, "ova.xml", xml.as_bytes());
    let mut h = H::new("00000000", 5);
    h.prefix = "Ref:2".into();
    member(&mut t, &h, b"12345");
    file(&mut t, "Ref:2/00000000.checksum", crate::xva::writer::ChecksumKind::Sha1.body(b"12345").as_bytes());
    end(&mut t);
    let r = verify(&t);
    assert_eq!(rules(&r.violations), [('W', 4)], "{:?}", r.violations);
}

#[test]
fn rule05_directory_entry() {
    let mut t = Vec::new();
    file(&mut t, "ova.xml", hvm_sized(5).as_bytes());
    let mut h = H::new("Ref:2/", 0);
    h.typeflag = b'5';
    member(&mut t, &h, b"");
    chunk(&mut t, "Ref:2/00000000", b"12345");
    end(&mut t);
    let r = verify(&t);
    assert!(has(&r.violations, 'E', 5), "{:?}", r.violations);
    assert!(!r.complete);
}

#[test]
fn rule05_extra_file_and_trailing_junk() {
    let mut t = Vec::new();
    file(&mut t, "ova.xml", hvm_sized(5).as_bytes());
    file(&mut t, "README", b"hi");
    let r = verify(&t);
    assert!(has(&r.violations, 'E', 5), "{:?}", r.violations);

    let mut t = Vec::new();
    file(&mut t, "ova.xml", hvm_sized(5).as_bytes());
    chunk(&mut t, "Ref:2/00000000", b"12345");
    file(&mut t, "junk", b"x");
    end(&mut t);
    let r = verify(&t);
    assert_eq!(rules(&r.violations), [('W', 5)], "{:?}", r.violations);
}

#[test]
fn rule06_missing_end_of_archive() {
    let t = good();
    let r = verify(&t[..t.len() - 1024]);
    assert_eq!(rules(&r.violations), [('W', 6)], "{:?}", r.violations);
    assert!(r.is_ok());
}

#[test]
fn rule07_malformed_xml() {
    let f = hvm_edit("</struct></value></member>\n    </struct></value>\n    <value><struct>\n      <member><name>class</name><value>VBD", "</struct></value></member>\n    </strct></value>\n    <value><struct>\n      <member><name>class</name><value>VBD");
    assert_eq!(rules(&f), [('E', 7)], "{f:?}");
    let r = verify(&xva_with("<value><struct></value>"));
    assert_eq!(rules(&r.violations), [('E', 7)]);
    assert!(r.violations[0].offset.unwrap() > 512);
}

#[test]
fn rule08_structure() {
    let mut f = Vec::new();
    check_ova_xml(b"<value><array><data/></array></value>", &mut f);
    assert_eq!(rules(&f), [('E', 8)]);
    let f = hvm_edit("<name>objects</name>", "<name>objekts</name>");
    assert_eq!(rules(&f), [('E', 8)]);
    let f = hvm_edit(
        "<member><name>class</name><value>network</value></member>",
        "<member><name>class</name><value>Network</value></member>",
    );
    assert!(has(&f, 'W', 8), "{f:?}");
}

#[test]
fn rule09_version() {
    let f = hvm_edit("<member><name>hostname</name><value>localhost</value></member>", "");
    assert_eq!(rules(&f), [('E', 9)]);
    let f = hvm_edit("<name>xapi_minor</name><value>1</value>", "<name>xapi_minor</name><value>20</value>");
    assert_eq!(rules(&f), [('W', 9)]);
    let f = hvm_edit("<name>xapi_major</name><value>1</value>", "<name>xapi_major</name><value>one</value>");
    assert_eq!(rules(&f), [('E', 9)]);
    let f = hvm_edit("<member><name>export_vsn</name><value>2</value></member>", "");
    assert_eq!(rules(&f), [('E', 9)]);
    let f = hvm_edit("<name>export_vsn</name><value>2</value>", "<name>export_vsn</name><value>1</value>");
    assert_eq!(rules(&f), [('W', 9)]);
    // export_vsn 1 without the trailing table
    let r = verify(&xva_with(
        &hvm_sized((2 << 20) + 5)
            .replace("<name>export_vsn</name><value>2</value>", "<name>export_vsn</name><value>1</value>"),
    ));
    assert_eq!(rules(&r.violations), [('W', 9), ('E', 9)], "{:?}", r.violations);
}

#[test]
fn rule10_missing_required_field() {
    let f = hvm_edit("<member><name>user_version</name><value>1</value></member>", "");
    assert_eq!(rules(&f), [('E', 10)]);
    assert!(f[0].message.contains("VM Ref:0: required field user_version"), "{}", f[0].message);
    // only older versions require power_state
    let f = hvm_edit("<member><name>power_state</name><value>Halted</value></member>", "");
    assert_eq!(rules(&f), [('W', 10)]);
    // network.bridge: only 1.14 and 1.9.50
    let f = hvm_edit("<member><name>bridge</name><value>xenbr0</value></member>", "");
    assert_eq!(rules(&f), [('W', 10)]);
}

#[test]
fn rule11_boolean_true_and_types() {
    let f = hvm_edit(
        "<name>is_a_template</name><value><boolean>0</boolean>",
        "<name>is_a_template</name><value><boolean>true</boolean>",
    );
    assert_eq!(rules(&f), [('W', 11)], "{f:?}");
    let f = hvm_edit(
        "<name>is_a_template</name><value><boolean>0</boolean></value>",
        "<name>is_a_template</name><value>0</value>",
    );
    assert_eq!(rules(&f), [('E', 11)]);
    let f = hvm_edit("<name>VCPUs_max</name><value>2</value>", "<name>VCPUs_max</name><value>two</value>");
    assert_eq!(rules(&f), [('E', 11)]);
    let f = hvm_edit(
        "<member><name>acpi</name><value>1</value></member>",
        "<member><name>acpi</name><value><boolean>1</boolean></value></member>",
    );
    assert_eq!(rules(&f), [('E', 11)]);
    let f = hvm_edit("<name>tags</name><value><array><data/></array></value>", "<name>tags</name><value>none</value>");
    assert_eq!(rules(&f), [('E', 11)]);
}

#[test]
fn rule12_unknown_enum_and_operations() {
    let f = hvm_edit("<name>mode</name><value>RW</value>", "<name>mode</name><value>rw</value>");
    assert!(f.is_empty(), "case-insensitive: {f:?}");
    let f = hvm_edit("<name>mode</name><value>RW</value>", "<name>mode</name><value>ReadWrite</value>");
    assert_eq!(rules(&f), [('E', 12)]);
    let f = hvm_edit("<name>domain_type</name><value>hvm</value>", "<name>domain_type</name><value>hvm2</value>");
    assert_eq!(rules(&f), [('E', 12)]);
    let f = hvm_edit("<member><name>power_state</name>", "<member><name>allowed_operations</name><value><array><data><value>start</value></data></array></value></member><member><name>power_state</name>");
    assert_eq!(rules(&f), [('W', 12)]);
}

#[test]
fn rule13_whitespace() {
    let f = hvm_edit("<name>name_label</name><value>web01</value>", "<name>name_label</name><value> web01 </value>");
    assert_eq!(rules(&f), [('W', 13)]);
}

#[test]
fn rule14_duplicate_ids() {
    let f = hvm_edit("<member><name>id</name><value>Ref:3</value>", "<member><name>id</name><value>Ref:1</value>");
    assert!(has(&f, 'E', 14), "{f:?}");
}

#[test]
fn rule15_dangling_references() {
    let f = hvm_edit(
        "<name>VM</name><value>Ref:0</value></member>\n          <member><name>VDI</name>",
        "<name>VM</name><value>Ref:7</value></member>\n          <member><name>VDI</name>",
    );
    assert_eq!(rules(&f), [('E', 15)], "{f:?}");
    let f = hvm_edit("<name>network</name><value>Ref:4</value>", "<name>network</name><value>Ref:44</value>");
    assert_eq!(rules(&f), [('E', 15)]);
    let f = hvm_edit("<name>SR</name><value>Ref:9</value>", "<name>SR</name><value>Ref:8</value>");
    assert_eq!(rules(&f), [('E', 15)]);
}

#[test]
fn rule16_disk_vbd_without_exported_vdi() {
    let f = hvm_edit("<name>VDI</name><value>Ref:2</value>", "<name>VDI</name><value>OpaqueRef:NULL</value>");
    assert_eq!(rules(&f), [('W', 16)]);
}

#[test]
fn rule17_vbd_create_checks() {
    let f = hvm_edit("<name>empty</name><value><boolean>0</boolean>", "<name>empty</name><value><boolean>1</boolean>");
    assert_eq!(rules(&f), [('E', 17)]);
    let f = hvm_edit(
        "<name>read_only</name><value><boolean>0</boolean>",
        "<name>read_only</name><value><boolean>1</boolean>",
    );
    assert_eq!(rules(&f), [('E', 17)]);
    let f = hvm_edit("<name>userdevice</name><value>0</value>", "<name>userdevice</name><value>255</value>");
    assert_eq!(rules(&f), [('E', 17)]);
    // duplicate userdevice: PV example's CD moved to userdevice 0
    let mut f = Vec::new();
    check_ova_xml(
        PV.replace("<name>userdevice</name><value>3</value>", "<name>userdevice</name><value>0</value>").as_bytes(),
        &mut f,
    );
    assert_eq!(rules(&f), [('E', 17)], "{f:?}");
    let mut f = Vec::new();
    check_ova_xml(
        PV.replace("<name>mode</name><value>RO</value>", "<name>mode</name><value>RW</value>").as_bytes(),
        &mut f,
    );
    assert_eq!(rules(&f), [('E', 17)], "{f:?}");
}

#[test]
fn rule18_read_order_is_bytewise() {
    // Two disks Ref:10 and Ref:9: xapi reads Ref:10 first.
    let xml = hvm_sized(5);
    let extra = xml
        .split("<value><struct>\n      <member><name>class</name><value>VDI</value>")
        .nth(1)
        .unwrap()
        .split("</struct></value>\n    <value><struct>\n      <member><name>class</name><value>VIF")
        .next()
        .unwrap()
        .replace(
            "<value>Ref:2</value></member>\n      <member><name>snapshot",
            "<value>Ref:10</value></member>\n      <member><name>snapshot",
        );
    let extra_vdi =
        format!("<value><struct>\n      <member><name>class</name><value>VDI</value>{extra}</struct></value>\n");
    let extra_vbd = "<value><struct><member><name>class</name><value>VBD</value></member><member><name>id</name><value>Ref:11</value></member><member><name>snapshot</name><value><struct><member><name>uuid</name><value>u</value></member><member><name>VM</name><value>Ref:0</value></member><member><name>VDI</name><value>Ref:10</value></member><member><name>device</name><value/></member><member><name>userdevice</name><value>1</value></member><member><name>bootable</name><value><boolean>0</boolean></value></member><member><name>mode</name><value>RW</value></member><member><name>type</name><value>Disk</value></member><member><name>storage_lock</name><value><boolean>0</boolean></value></member><member><name>empty</name><value><boolean>0</boolean></value></member><member><name>other_config</name><value><struct/></value></member><member><name>currently_attached</name><value><boolean>0</boolean></value></member><member><name>status_code</name><value>0</value></member><member><name>status_detail</name><value/></member><member><name>runtime_properties</name><value><struct/></value></member><member><name>qos_algorithm_type</name><value/></member><member><name>qos_algorithm_params</name><value><struct/></value></member><member><name>qos_supported_algorithms</name><value><array><data/></array></value></member><member><name>metrics</name><value>OpaqueRef:NULL</value></member></struct></value></member></struct></value>\n";
    let xml = xml.replace(
        "  </data></array></value></member>\n</struct></value>",
        &format!("{extra_vdi}{extra_vbd}  </data></array></value></member>\n</struct></value>"),
    );
    let mut f = Vec::new();
    let h = check_ova_xml(xml.as_bytes(), &mut f).unwrap();
    assert!(f.is_empty(), "{f:?}");
    let ids: Vec<_> = h.streamed.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["Ref:10", "Ref:2"]);
    // chunks written in "natural" order (Ref:2 first) are rejected
    let mut t = Vec::new();
    file(&mut t, "ova.xml", xml.as_bytes());
    chunk(&mut t, "Ref:2/00000000", b"12345");
    chunk(&mut t, "Ref:10/00000000", b"12345");
    end(&mut t);
    let r = verify(&t);
    assert_eq!(rules(&r.violations), [('E', 5)], "{:?}", r.violations);
    // CD VBD's VDIs and iso SRs are not streamed
    let iso =
        xml.replace("<name>content_type</name><value>user</value>", "<name>content_type</name><value>iso</value>");
    let mut f = Vec::new();
    assert_eq!(check_ova_xml(iso.as_bytes(), &mut f).unwrap().streamed.unwrap(), []);
}

#[test]
fn rule19_memory_and_vcpus() {
    let f = hvm_edit(
        "<name>memory_static_min</name><value>1073741824</value>",
        "<name>memory_static_min</name><value>2147483648</value>",
    );
    assert_eq!(rules(&f), [('W', 19)]);
    let f = hvm_edit("<name>VCPUs_at_startup</name><value>2</value>", "<name>VCPUs_at_startup</name><value>3</value>");
    assert_eq!(rules(&f), [('W', 19)]);
    let f = hvm_edit(
        "<name>actions_after_crash</name><value>restart</value>",
        "<name>actions_after_crash</name><value>rename_restart</value>",
    );
    assert_eq!(rules(&f), [('W', 19)]);
}

#[test]
fn rule20_boot_mode_consistency() {
    let f = hvm_edit("<name>domain_type</name><value>hvm</value>", "<name>domain_type</name><value>pv</value>");
    assert_eq!(rules(&f), [('W', 20)]);
    let mut f = Vec::new();
    check_ova_xml(
        PV.replace("<name>PV_kernel</name><value/>", "<name>PV_kernel</name><value>/boot/vmlinuz</value>").as_bytes(),
        &mut f,
    );
    assert_eq!(rules(&f), [('W', 20)]);
}

#[test]
fn rule21_mac_regenerated() {
    let f = hvm_edit("<name>MAC</name><value/>", "<name>MAC</name><value>aa:bb:cc:dd:ee:ff</value>");
    assert_eq!(rules(&f), [('W', 21)]);
}

#[test]
fn rule22_network_without_name_or_bridge() {
    let f = hvm_edit(
        "<name>name_label</name><value>Pool-wide network associated with eth0</value>",
        "<name>name_label</name><value/>",
    )
    .into_iter()
    .collect::<Vec<_>>();
    let f2 = {
        let mut f = Vec::new();
        check_ova_xml(
            HVM.replace(
                "<name>name_label</name><value>Pool-wide network associated with eth0</value>",
                "<name>name_label</name><value/>",
            )
            .replace("<name>bridge</name><value>xenbr0</value>", "<name>bridge</name><value/>")
            .as_bytes(),
            &mut f,
        );
        f
    };
    assert!(f.is_empty());
    assert_eq!(rules(&f2), [('W', 22)]);
}

fn stream(xml_size: u64, build: impl FnOnce(&mut Vec<u8>)) -> VerifyReport {
    let mut t = Vec::new();
    file(&mut t, "ova.xml", hvm_sized(xml_size).as_bytes());
    build(&mut t);
    end(&mut t);
    verify(&t)
}

#[test]
fn rule23_chunk_out_of_order_and_bad_counters() {
    let r = stream(4 << 20, |t| {
        chunk(t, "Ref:2/00000000", &vec![1u8; 1 << 20]);
        chunk(t, "Ref:2/00000002", &vec![1u8; 1 << 20]);
        chunk(t, "Ref:2/00000001", &vec![1u8; 1 << 20]);
    });
    assert_eq!(rules(&r.violations), [('E', 23)], "{:?}", r.violations);
    let r = stream(5, |t| chunk(t, "Ref:2/0x", b"12345"));
    assert!(has(&r.violations, 'E', 23), "{:?}", r.violations);
    let r = stream(5, |t| chunk(t, "Ref:2/0", b"12345"));
    assert_eq!(rules(&r.violations), [('W', 23)], "{:?}", r.violations);
}

#[test]
fn rule24_checksum_member_missing_or_unsupported() {
    let r = stream(5, |t| {
        file(t, "Ref:2/00000000", b"12345");
        file(t, "Ref:2/00000000.sha256", b"x");
    });
    assert_eq!(rules(&r.violations), [('E', 24)], "{:?}", r.violations);
    assert!(r.violations[0].message.contains("Found unsupported checksum file"));
    let r = stream(5, |t| {
        file(t, "Ref:2/00000000", b"12345");
        chunk(t, "Ref:2/00000001", b"x");
    });
    assert!(has(&r.violations, 'E', 24), "{:?}", r.violations);
}

#[test]
fn rule25_checksum_case_and_xxhash() {
    let r = stream(5, |t| {
        file(t, "Ref:2/00000000", b"12345");
        let up = crate::xva::writer::ChecksumKind::Sha1.body(b"12345").to_uppercase();
        file(t, "Ref:2/00000000.checksum", up.as_bytes());
    });
    assert_eq!(rules(&r.violations), [('E', 25)], "{:?}", r.violations);
    assert!(r.violations[0].message.contains("wrong case"));
    let r = stream(5, |t| {
        file(t, "Ref:2/00000000", b"12345");
        let xx = crate::xva::writer::ChecksumKind::Xxhash.body(b"12345");
        file(t, "Ref:2/00000000.xxhash", xx.as_bytes());
    });
    assert_eq!(rules(&r.violations), [('W', 25)], "xxhash accepted + warned: {:?}", r.violations);
    assert_eq!(r.disks[0].xxhash_members, 1);
}

#[test]
fn rule26_missing_last_chunk_and_overrun() {
    let r = stream(3 << 20, |t| {
        chunk(t, "Ref:2/00000000", &vec![1u8; 1 << 20]);
    });
    assert_eq!(rules(&r.violations), [('E', 26)], "{:?}", r.violations);
    assert!(!r.disks[0].complete && r.disks[0].sha256.is_none());
    let r = stream(5, |t| chunk(t, "Ref:2/00000000", &[1u8; 512]));
    assert_eq!(rules(&r.violations), [('C', 26)], "{:?}", r.violations);
    let r = stream(3 << 20, |t| {
        chunk(t, "Ref:2/00000000", &vec![1u8; 1 << 20]);
        chunk(t, "Ref:2/00000001", &vec![1u8; 1 << 19]);
        chunk(t, "Ref:2/00000003", &vec![1u8; 1 << 20]);
    });
    assert!(has(&r.violations, 'C', 26), "{:?}", r.violations);
}

#[test]
fn rule27_counter_zero_missing() {
    let r = stream(2 << 20, |t| chunk(t, "Ref:2/00000001", &vec![1u8; 1 << 20]));
    assert_eq!(rules(&r.violations), [('W', 27)], "{:?}", r.violations);
    // the reconstructed disk still has its first MiB of zeros
    let mut disk = vec![0u8; 1 << 20];
    disk.extend(vec![1u8; 1 << 20]);
    assert_eq!(r.disks[0].sha256, Some(sha2::Sha256::digest(&disk).into()));
}

#[test]
fn rule29_zero_length_chunk() {
    let r = stream(5, |t| {
        chunk(t, "Ref:2/00000000", b"");
        chunk(t, "Ref:2/00000001", b"12345");
    });
    // F = 0 from the dummy chunk is itself a problem
    assert!(has(&r.violations, 'W', 29), "{:?}", r.violations);
    assert!(has(&r.violations, 'C', 26), "{:?}", r.violations);
}

#[test]
fn garbage_never_panics() {
    let t = good();
    for cut in [0, 1, 3, 511, 512, 513, 1000, t.len() - 1] {
        let _ = verify_reader(&t[..cut], &VerifyOptions::default());
    }
    let mut x = 0x1234_5678u32;
    for _ in 0..200 {
        let mut b = t.clone();
        for _ in 0..8 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let i = x as usize % b.len();
            b[i] = (x >> 8) as u8;
        }
        let _ = verify_reader(&b[..], &VerifyOptions { compute_sha256: false });
    }
}
