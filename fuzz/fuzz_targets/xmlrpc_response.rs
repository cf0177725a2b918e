//! Parse arbitrary bytes as an XML-RPC response from a host, as `xva convert --server` does
//! with every answer, plus the task-result and head parsers. Errors are fine; panics are bugs.
//! Seed corpus: the responses in `src/xmlrpc/method.rs` tests, or any XenAPI response captured
//! with `curl -d @call.xml https://HOST/`.
#![cfg_attr(fuzzing, no_main)]

xva_fuzz::fuzz_target!(|data: &[u8]| {
    let _ = xva::xmlrpc::method::decode_response(data);
    let _ = xva::xmlrpc::method::parse_method_call(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = xva::xapi::task::result_refs(text);
    }
    let _ = xva::xapi::http::parse_head(data);
    let mut r = data;
    let _ = xva::xapi::http::read_head(&mut r);
});
