//! Parse arbitrary bytes as ova.xml (ocaml-rpc's XML-RPC rules), then run the ova.xml rules of
//! the validator over whatever parses. Errors are fine; panics and hangs are bugs.
//! Seed corpus: `testdata/xva/*.ova.xml` and any `ova.xml` pulled out of an XVA with `tar x`.
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = xva::xmlrpc::parse::parse(data) {
        // The writer's output must parse back to the same value.
        let again = xva::xmlrpc::parse::parse_str(&parsed.value.to_xml());
        assert!(again.is_ok(), "re-serialised value does not parse");
    }
    let mut findings = Vec::new();
    let _ = xva::xva::validate::check_ova_xml(data, &mut findings);
});
