//! The XML-RPC value tree that `ova.xml` (and XenAPI calls) are made of, and its serializer.
//!
//! The serializer writes exactly what ocaml-rpc's parser reads back unchanged
//! (`xva-format-and-xapi-import.md` §3.1): no whitespace inside scalars, `<boolean>` bodies `0`
//! or `1`, integers as untyped strings (what xapi writes, and what every xapi parser accepts),
//! `<double>` for floats, and text escaped (`&`, `<`, `>`, `"`) with control characters other
//! than TAB, LF and CR dropped.

use std::fmt::Write as _;

/// An XML-RPC value. Structs keep their member order (xapi matches members by name).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string (`<value>text</value>`).
    String(String),
    /// An integer, written untyped as xapi does (`<value>42</value>`).
    Int(i64),
    /// A boolean (`<boolean>1</boolean>`).
    Bool(bool),
    /// A float (`<double>1</double>`).
    Double(f64),
    /// A date (`<dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601>`), kept as text.
    DateTime(String),
    /// A struct: `(name, value)` members in order.
    Struct(Vec<(String, Value)>),
    /// An array.
    Array(Vec<Value>),
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// A struct from `(name, value)` pairs.
    pub fn record<K: Into<String>>(members: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Struct(members.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A string→string map (xapi's `(string -> string) map`).
    pub fn string_map<K: Into<String>, V: Into<String>>(members: impl IntoIterator<Item = (K, V)>) -> Value {
        Value::Struct(members.into_iter().map(|(k, v)| (k.into(), Value::String(v.into()))).collect())
    }

    /// An array of strings (a set of references).
    pub fn refs<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::Array(items.into_iter().map(|s| Value::String(s.into())).collect())
    }

    /// An empty struct `{}`.
    pub fn empty_map() -> Value {
        Value::Struct(Vec::new())
    }

    /// The member `name` of a struct.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(m) => m.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::DateTime(s) => Some(s),
            _ => None,
        }
    }

    /// Serializes as a single `<value>` element (no XML declaration, no whitespace).
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write_xml(&mut out);
        out
    }

    /// Appends the `<value>` element to `out`.
    pub fn write_xml(&self, out: &mut String) {
        match self {
            Value::String(s) if s.is_empty() => out.push_str("<value/>"),
            Value::String(s) => {
                out.push_str("<value>");
                escape_into(s, out);
                out.push_str("</value>");
            }
            Value::Int(i) => {
                let _ = write!(out, "<value>{i}</value>");
            }
            Value::Bool(b) => {
                let _ = write!(out, "<value><boolean>{}</boolean></value>", u8::from(*b));
            }
            Value::Double(d) => {
                let _ = write!(out, "<value><double>{}</double></value>", format_double(*d));
            }
            Value::DateTime(s) => {
                out.push_str("<value><dateTime.iso8601>");
                escape_into(s, out);
                out.push_str("</dateTime.iso8601></value>");
            }
            Value::Struct(members) if members.is_empty() => out.push_str("<value><struct/></value>"),
            Value::Struct(members) => {
                out.push_str("<value><struct>");
                for (k, v) in members {
                    out.push_str("<member><name>");
                    escape_into(k, out);
                    out.push_str("</name>");
                    v.write_xml(out);
                    out.push_str("</member>");
                }
                out.push_str("</struct></value>");
            }
            Value::Array(items) if items.is_empty() => out.push_str("<value><array><data/></array></value>"),
            Value::Array(items) => {
                out.push_str("<value><array><data>");
                for v in items {
                    v.write_xml(out);
                }
                out.push_str("</data></array></value>");
            }
        }
    }
}

/// `%.16g`-like rendering: integral values without a fraction (`1`), others shortest-exact.
fn format_double(d: f64) -> String {
    if d.is_finite() && d.fract() == 0.0 && d.abs() < 1e16 {
        format!("{}", d as i64)
    } else {
        format!("{d}")
    }
}

/// Escapes XML text the way xapi's writer does: `&<>"` as entities, control characters other
/// than TAB, LF and CR dropped (they cannot appear in XML 1.0).
pub fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_written_the_way_xapi_reads_them() {
        assert_eq!(Value::str("").to_xml(), "<value/>");
        assert_eq!(Value::str("a & <b>").to_xml(), "<value>a &amp; &lt;b&gt;</value>");
        assert_eq!(Value::str("bell\u{7}tab\t").to_xml(), "<value>belltab\t</value>");
        assert_eq!(Value::Int(-1).to_xml(), "<value>-1</value>");
        assert_eq!(Value::Bool(true).to_xml(), "<value><boolean>1</boolean></value>");
        assert_eq!(Value::Bool(false).to_xml(), "<value><boolean>0</boolean></value>");
        assert_eq!(Value::Double(1.0).to_xml(), "<value><double>1</double></value>");
        assert_eq!(Value::Double(1.5).to_xml(), "<value><double>1.5</double></value>");
    }

    #[test]
    fn containers() {
        assert_eq!(Value::empty_map().to_xml(), "<value><struct/></value>");
        assert_eq!(Value::refs(Vec::<String>::new()).to_xml(), "<value><array><data/></array></value>");
        let v = Value::record([("a", Value::refs(["Ref:1"])), ("b", Value::string_map([("k", "v")]))]);
        assert_eq!(
            v.to_xml(),
            "<value><struct><member><name>a</name><value><array><data><value>Ref:1</value></data></array></value></member>\
             <member><name>b</name><value><struct><member><name>k</name><value>v</value></member></struct></value></member></struct></value>"
        );
        assert_eq!(v.get("a"), Some(&Value::refs(["Ref:1"])));
        assert_eq!(v.get("b").unwrap().get("k").unwrap().as_str(), Some("v"));
    }
}
