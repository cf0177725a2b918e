//! The VMDK descriptor parser and the text-descriptor probe on arbitrary bytes.
//! Seed corpus: the descriptors qemu-img writes (`qemu-img create -f vmdk -o
//! subformat=monolithicFlat d.vmdk 1M`, then `d.vmdk`), plus the Workstation/ESXi samples in
//! `backends/src/vmdk/descriptor.rs` tests.
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    use xva_backends::vmdk::descriptor;
    if let Ok(d) = descriptor::parse(data) {
        let _ = d.total_sectors();
        let _ = d.has_parent();
        let _ = d.ddb("adapterType");
    }
    let src = xva_backends::MemSource::new(data.to_vec(), "fuzz.vmdk");
    let _ = xva_backends::probe::detect(&src);
});
