//! XML-RPC as XenAPI speaks it: `methodCall` out, `methodResponse` in, and the XenAPI envelope
//! inside every response (`xva-format-and-xapi-import.md` §9.2):
//!
//! ```text
//!   <methodResponse><params><param><value><struct>
//!     Status = "Success", Value = <the result>                 -> Ok(Value)
//!     Status = "Failure", ErrorDescription = [CODE, param, …]  -> Err(XapiError { code, params })
//!   </struct></value></param></params></methodResponse>
//!   <methodResponse><fault>…</fault></methodResponse>        -> Err(fault)  (not sent by xapi)
//! ```
//!
//! Requests are written with the same serializer as `ova.xml` ([`Value::to_xml`]). Responses come
//! from the network and are untrusted: the parser is total (every input gives a value or an
//! error, never a panic), nesting is capped at [`MAX_DEPTH`] and the caller bounds the body size.
//! It accepts what any XML-RPC server sends (typed and untyped scalars, `<string>`, `<i4>`,
//! `<int>`, `<i8>`, `<boolean>`, `<double>`, `<dateTime.iso8601>`, `<base64>` and `<nil/>` kept as
//! text); the stricter ocaml-rpc-faithful parser for `ova.xml` is [`super::parse`]. Both read
//! through the one lexer (`lexer.rs`).

use std::fmt;

use super::lexer::{Lexer, Signal};
use super::value::{escape_into, Value};

/// Deepest element nesting accepted in a response (XenAPI records need about 10).
pub const MAX_DEPTH: usize = 64;

/// A failure reported by xapi: `ErrorDescription = [code, params…]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XapiError {
    /// The error code (`SESSION_AUTHENTICATION_FAILED`, `HOST_IS_SLAVE`, `IMPORT_ERROR`, …).
    pub code: String,
    /// The parameters, in order.
    pub params: Vec<String>,
}

impl XapiError {
    /// An error with `code` and `params`.
    pub fn new(code: impl Into<String>, params: impl IntoIterator<Item = impl Into<String>>) -> XapiError {
        XapiError { code: code.into(), params: params.into_iter().map(Into::into).collect() }
    }
}

impl fmt::Display for XapiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)?;
        if !self.params.is_empty() {
            write!(f, " [{}]", self.params.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for XapiError {}

/// A response that is not a well-formed XML-RPC / XenAPI response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MalformedResponse(pub String);

impl fmt::Display for MalformedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed XML-RPC: {}", self.0)
    }
}

impl std::error::Error for MalformedResponse {}

/// What a response decodes to when it is not a success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// xapi answered `Status = Failure`.
    Xapi(XapiError),
    /// The server answered something that is not a XenAPI response.
    Malformed(MalformedResponse),
}

impl From<MalformedResponse> for CallError {
    fn from(e: MalformedResponse) -> Self {
        CallError::Malformed(e)
    }
}

/// The body of a `methodCall`.
pub fn method_call(method: &str, params: &[Value]) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version=\"1.0\"?><methodCall><methodName>");
    escape_into(method, &mut out);
    out.push_str("</methodName><params>");
    for p in params {
        out.push_str("<param>");
        p.write_xml(&mut out);
        out.push_str("</param>");
    }
    out.push_str("</params></methodCall>");
    out
}

/// A `methodResponse` carrying `value`.
pub fn method_response(value: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\"?><methodResponse><params><param>");
    value.write_xml(&mut out);
    out.push_str("</param></params></methodResponse>");
    out
}

/// The XenAPI success envelope around `value`, as a complete response body.
pub fn success_response(value: Value) -> String {
    method_response(&Value::record([("Status", Value::str("Success")), ("Value", value)]))
}

/// The XenAPI failure envelope, as a complete response body.
pub fn failure_response(err: &XapiError) -> String {
    let mut desc = vec![Value::str(&err.code)];
    desc.extend(err.params.iter().map(Value::str));
    method_response(&Value::record([("Status", Value::str("Failure")), ("ErrorDescription", Value::Array(desc))]))
}

/// Decodes a `methodResponse` body down to the XenAPI result.
pub fn decode_response(body: &[u8]) -> Result<Value, CallError> {
    let v = parse_method_response(body)?;
    unwrap_envelope(v)
}

/// Unwraps `{Status, Value | ErrorDescription}`.
pub fn unwrap_envelope(v: Value) -> Result<Value, CallError> {
    let Value::Struct(mut members) = v else {
        return Err(
            MalformedResponse("the response is not a XenAPI result struct (not a XenAPI server?)".into()).into()
        );
    };
    let mut take = |name: &str| members.iter().position(|(k, _)| k == name).map(|i| members.swap_remove(i).1);
    let status = match take("Status") {
        Some(Value::String(s)) => s,
        _ => return Err(MalformedResponse("the response has no Status member (not a XenAPI server?)".into()).into()),
    };
    match status.as_str() {
        "Success" => {
            take("Value").ok_or_else(|| MalformedResponse("Status is Success but there is no Value".into()).into())
        }
        "Failure" => {
            let desc = match take("ErrorDescription") {
                Some(Value::Array(items)) => items.iter().map(scalar_text).collect::<Vec<_>>(),
                Some(other) => vec![scalar_text(&other)],
                None => Vec::new(),
            };
            let mut it = desc.into_iter();
            let code = it.next().unwrap_or_else(|| "UNKNOWN_ERROR".into());
            Err(CallError::Xapi(XapiError { code, params: it.collect() }))
        }
        other => Err(MalformedResponse(format!("unknown Status {other:?}")).into()),
    }
}

/// A scalar rendered as text (for error parameters, which xapi sends as strings).
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) | Value::DateTime(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Double(d) => d.to_string(),
        other => other.to_xml(),
    }
}

/// Parses a `methodResponse`: the single parameter's value, or the fault as an error.
pub fn parse_method_response(body: &[u8]) -> Result<Value, MalformedResponse> {
    let text = std::str::from_utf8(body).map_err(|e| MalformedResponse(format!("not UTF-8 ({e})")))?;
    let mut p = Parser::new(text)?;
    p.expect_start("methodResponse")?;
    match p.next_start()?.as_str() {
        "params" => {
            p.expect_start("param")?;
            p.expect_start("value")?;
            let v = p.value_after_open()?;
            p.close("param")?;
            p.close("params")?;
            p.close("methodResponse")?;
            Ok(v)
        }
        "fault" => {
            p.expect_start("value")?;
            let v = p.value_after_open()?;
            let code = v.get("faultCode").map(scalar_text).unwrap_or_default();
            let msg = v.get("faultString").map(scalar_text).unwrap_or_default();
            Err(MalformedResponse(format!("XML-RPC fault {code}: {msg}")))
        }
        other => Err(MalformedResponse(format!("<{other}> where <params> or <fault> was expected"))),
    }
}

/// Parses a `methodCall` (used by test servers and the fuzz target): method name and parameters.
pub fn parse_method_call(body: &[u8]) -> Result<(String, Vec<Value>), MalformedResponse> {
    let text = std::str::from_utf8(body).map_err(|e| MalformedResponse(format!("not UTF-8 ({e})")))?;
    let mut p = Parser::new(text)?;
    p.expect_start("methodCall")?;
    p.expect_start("methodName")?;
    let name = p.text_until_end("methodName")?;
    let mut params = Vec::new();
    match p.next_tag()? {
        Tag::End(n) if n == "methodCall" => return Ok((name, params)),
        Tag::Start(n) if n == "params" => {}
        Tag::Start(n) | Tag::End(n) => return Err(MalformedResponse(format!("unexpected <{n}> in methodCall"))),
    }
    loop {
        match p.next_tag()? {
            Tag::Start(n) if n == "param" => {
                p.expect_start("value")?;
                params.push(p.value_after_open()?);
                p.close("param")?;
            }
            Tag::End(n) if n == "params" => break,
            Tag::Start(n) | Tag::End(n) => return Err(MalformedResponse(format!("unexpected <{n}> in params"))),
        }
    }
    p.close("methodCall")?;
    Ok((name, params))
}

/// Parses a lone `<value>` document (what `task.get_result` returns, as a string).
pub fn parse_value(text: &str) -> Result<Value, MalformedResponse> {
    let mut p = Parser::new(text)?;
    p.expect_start("value")?;
    p.value_after_open()
}

enum Tag {
    Start(String),
    End(String),
}

/// The lenient XML-RPC reader over the shared [`Lexer`].
struct Parser<'a> {
    lx: Lexer<'a>,
    depth: usize,
}

fn xml_err(e: impl fmt::Display) -> MalformedResponse {
    MalformedResponse(e.to_string())
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Parser<'a>, MalformedResponse> {
        Ok(Parser { lx: Lexer::new(text).map_err(xml_err)?, depth: 0 })
    }

    fn signal(&mut self) -> Result<Signal, MalformedResponse> {
        self.lx.next().map(|(_, s)| s).map_err(xml_err)
    }

    fn enter(&mut self) -> Result<(), MalformedResponse> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(MalformedResponse(format!("elements nested deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    /// The next start or end tag, skipping whitespace (comments and declarations never reach
    /// here: the lexer skips them).
    fn next_tag(&mut self) -> Result<Tag, MalformedResponse> {
        loop {
            match self.signal()? {
                Signal::Start(n) => {
                    self.enter()?;
                    return Ok(Tag::Start(n));
                }
                Signal::End(n) => {
                    self.depth = self.depth.saturating_sub(1);
                    return Ok(Tag::End(n));
                }
                Signal::Data(t) if t.trim().is_empty() => {}
                Signal::Data(t) => {
                    let s: String = t.chars().take(40).collect();
                    return Err(MalformedResponse(format!("unexpected text {s:?}")));
                }
            }
        }
    }

    fn next_start(&mut self) -> Result<String, MalformedResponse> {
        match self.next_tag()? {
            Tag::Start(n) => Ok(n),
            Tag::End(n) => Err(MalformedResponse(format!("unexpected </{n}>"))),
        }
    }

    fn expect_start(&mut self, want: &str) -> Result<(), MalformedResponse> {
        let n = self.next_start()?;
        if n == want {
            Ok(())
        } else {
            Err(MalformedResponse(format!("<{n}> where <{want}> was expected")))
        }
    }

    fn close(&mut self, want: &str) -> Result<(), MalformedResponse> {
        match self.next_tag()? {
            Tag::End(n) if n == want => Ok(()),
            Tag::End(n) => Err(MalformedResponse(format!("</{n}> where </{want}> was expected"))),
            Tag::Start(n) => Err(MalformedResponse(format!("<{n}> where </{want}> was expected"))),
        }
    }

    /// Text content up to the end tag `name` (entities and CDATA resolved; no child elements).
    fn text_until_end(&mut self, name: &str) -> Result<String, MalformedResponse> {
        let mut s = String::new();
        loop {
            match self.signal()? {
                Signal::Data(t) => s.push_str(&t),
                Signal::End(n) => {
                    self.depth = self.depth.saturating_sub(1);
                    return if n == name {
                        Ok(s)
                    } else {
                        Err(MalformedResponse(format!("</{n}> where </{name}> was expected")))
                    };
                }
                Signal::Start(n) => return Err(MalformedResponse(format!("<{n}> inside <{name}>"))),
            }
        }
    }

    /// The value whose `<value>` start tag has just been read, up to and including `</value>`.
    fn value_after_open(&mut self) -> Result<Value, MalformedResponse> {
        // Untyped text, or whitespace then one typed element.
        let mut text = String::new();
        loop {
            match self.signal()? {
                Signal::Data(t) => text.push_str(&t),
                Signal::End(n) => {
                    self.depth = self.depth.saturating_sub(1);
                    if n != "value" {
                        return Err(MalformedResponse("mismatched </value>".into()));
                    }
                    return Ok(Value::String(text));
                }
                Signal::Start(ty) => {
                    if !text.trim().is_empty() {
                        return Err(MalformedResponse("text and an element inside one <value>".into()));
                    }
                    self.enter()?;
                    let v = self.typed(&ty)?;
                    self.close("value")?;
                    return Ok(v);
                }
            }
        }
    }

    /// The body of a typed element `<ty>` whose start tag was just read, up to `</ty>`.
    fn typed(&mut self, ty: &str) -> Result<Value, MalformedResponse> {
        Ok(match ty {
            "string" | "base64" => Value::String(self.text_until_end(ty)?),
            "dateTime.iso8601" => Value::DateTime(self.text_until_end(ty)?),
            "int" | "i4" | "i8" => {
                let t = self.text_until_end(ty)?;
                Value::Int(t.trim().parse().map_err(|_| MalformedResponse(format!("{t:?} is not an integer")))?)
            }
            "boolean" => {
                let t = self.text_until_end(ty)?;
                Value::Bool(t.trim() == "1")
            }
            "double" => {
                let t = self.text_until_end(ty)?;
                Value::Double(t.trim().parse().map_err(|_| MalformedResponse(format!("{t:?} is not a double")))?)
            }
            "nil" => {
                self.text_until_end(ty)?;
                Value::String(String::new())
            }
            "struct" => {
                let mut members = Vec::new();
                loop {
                    match self.next_tag()? {
                        Tag::Start(n) if n == "member" => {
                            self.expect_start("name")?;
                            let name = self.text_until_end("name")?;
                            self.expect_start("value")?;
                            let v = self.value_after_open()?;
                            self.close("member")?;
                            members.push((name, v));
                        }
                        Tag::End(n) if n == "struct" => break,
                        Tag::Start(n) | Tag::End(n) => {
                            return Err(MalformedResponse(format!("unexpected <{n}> in <struct>")))
                        }
                    }
                }
                Value::Struct(members)
            }
            "array" => {
                self.expect_start("data")?;
                let mut items = Vec::new();
                loop {
                    match self.next_tag()? {
                        Tag::Start(n) if n == "value" => items.push(self.value_after_open()?),
                        Tag::End(n) if n == "data" => break,
                        Tag::Start(n) | Tag::End(n) => {
                            return Err(MalformedResponse(format!("unexpected <{n}> in <array>")))
                        }
                    }
                }
                self.close("array")?;
                Value::Array(items)
            }
            other => return Err(MalformedResponse(format!("unknown XML-RPC type <{other}>"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_is_written_as_xapi_reads_it() {
        let body = method_call("session.login_with_password", &[Value::str("root"), Value::str("a<b")]);
        assert_eq!(
            body,
            "<?xml version=\"1.0\"?><methodCall><methodName>session.login_with_password</methodName><params>\
             <param><value>root</value></param><param><value>a&lt;b</value></param></params></methodCall>"
        );
        let (m, p) = parse_method_call(body.as_bytes()).unwrap();
        assert_eq!(m, "session.login_with_password");
        assert_eq!(p, vec![Value::str("root"), Value::str("a<b")]);
    }

    #[test]
    fn xapi_success_and_failure() {
        let ok = "<?xml version=\"1.0\"?>\n<methodResponse>\n<params>\n<param>\n<value><struct>\
                  <member><name>Status</name><value>Success</value></member>\
                  <member><name>Value</name><value>OpaqueRef:5d2c</value></member>\
                  </struct></value>\n</param>\n</params>\n</methodResponse>\n";
        assert_eq!(decode_response(ok.as_bytes()), Ok(Value::str("OpaqueRef:5d2c")));
        let fail = failure_response(&XapiError::new("HOST_IS_SLAVE", ["192.0.2.7"]));
        assert_eq!(
            decode_response(fail.as_bytes()),
            Err(CallError::Xapi(XapiError::new("HOST_IS_SLAVE", ["192.0.2.7"])))
        );
        let round = success_response(Value::refs(["OpaqueRef:a", "OpaqueRef:b"]));
        assert_eq!(decode_response(round.as_bytes()), Ok(Value::refs(["OpaqueRef:a", "OpaqueRef:b"])));
    }

    #[test]
    fn typed_scalars_and_empties() {
        let v = parse_value(
            "<value><struct><member><name>a</name><value><i4>-3</i4></value></member>\
             <member><name>b</name><value><boolean>1</boolean></value></member>\
             <member><name>c</name><value><double>0.5</double></value></member>\
             <member><name>d</name><value/></member>\
             <member><name>e</name><value><string>x &amp; &#65;</string></value></member>\
             <member><name>f</name><value><array><data/></array></value></member>\
             <member><name>g</name><value><struct/></value></member></struct></value>",
        )
        .unwrap();
        assert_eq!(v.get("a"), Some(&Value::Int(-3)));
        assert_eq!(v.get("b"), Some(&Value::Bool(true)));
        assert_eq!(v.get("c"), Some(&Value::Double(0.5)));
        assert_eq!(v.get("d"), Some(&Value::str("")));
        assert_eq!(v.get("e"), Some(&Value::str("x & A")));
        assert_eq!(v.get("f"), Some(&Value::Array(vec![])));
        assert_eq!(v.get("g"), Some(&Value::Struct(vec![])));
    }

    #[test]
    fn responses_read_through_the_shared_lexer() {
        // Declaration, comments, CRLF line ends, CDATA and references between and inside values.
        let body = "<?xml version=\"1.0\"?>\r\n<!-- x --><methodResponse><params><param><value><struct>\r\n\
                    <member><name>Status</name><value>Success</value></member>\r\n\
                    <member><name>Value</name><value><![CDATA[a<b]]>&amp;c\r\nd</value></member>\
                    </struct></value></param></params></methodResponse>";
        assert_eq!(decode_response(body.as_bytes()), Ok(Value::str("a<b&c\nd")));
        assert_eq!(parse_value("<value><nil/></value>"), Ok(Value::str("")));
        assert_eq!(parse_value("<value><base64>QQ==</base64></value>"), Ok(Value::str("QQ==")));
        assert_eq!(parse_value("<value><int> 7 </int></value>"), Ok(Value::Int(7)));
    }

    #[test]
    fn hostile_responses_are_errors_not_panics() {
        for bad in [
            "",
            "<methodResponse>",
            "<methodResponse><params><param><value><struct><member><name>x</name></member></struct></value></param></params></methodResponse>",
            "<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>4</int></value></member></struct></value></fault></methodResponse>",
            "<methodResponse><params><param><value><int>zz</int></value></param></params></methodResponse>",
            "<methodResponse><params><param><value>&bogus;</value></param></params></methodResponse>",
            "<html>502 Bad Gateway</html>",
            "\u{0}\u{ff}",
        ] {
            assert!(decode_response(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let deep = "<value><array><data>".repeat(200);
        assert!(parse_value(&deep).is_err());
        // A struct without Status is not XenAPI.
        let other = method_response(&Value::record([("x", Value::str("y"))]));
        assert!(matches!(decode_response(other.as_bytes()), Err(CallError::Malformed(_))));
        // Invalid UTF-8.
        assert!(decode_response(b"<methodResponse>\xff</methodResponse>").is_err());
    }
}
