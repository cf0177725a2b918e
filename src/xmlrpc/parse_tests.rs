//! Tests of the ocaml-rpc parser.

use super::*;

fn p(s: &str) -> Value {
    match parse(s.as_bytes()) {
        Ok(v) => v.value,
        Err(e) => panic!("{s:?}: {e}"),
    }
}

fn e(s: &str) -> ParseErrorKind {
    match parse(s.as_bytes()) {
        Ok(v) => panic!("{s:?} parsed as {:?}", v.value),
        Err(e) => e.kind,
    }
}

#[test]
fn untyped_and_empty_values_are_strings() {
    assert_eq!(p("<value>abc</value>"), Value::str("abc"));
    assert_eq!(p("<value/>"), Value::str(""));
    assert_eq!(p("<value></value>"), Value::str(""));
    assert_eq!(p("<value><string/></value>"), Value::str(""));
    assert_eq!(p("<value><value/></value>"), Value::str(""));
    assert_eq!(p("<?xml version=\"1.0\"?>\n<value>x</value>"), Value::str("x"));
}

#[test]
fn whitespace_rules_follow_ocaml_rpc() {
    // inside a scalar: kept
    assert_eq!(p("<value> x </value>"), Value::str(" x "));
    assert_eq!(p("<value>  </value>"), Value::str("  "));
    // between elements: skipped
    assert_eq!(p("<value>\n <int>7</int>\n</value>"), Value::Int(7));
    assert_eq!(
        p("<value><struct>\n <member> <name>k</name> <value>v</value> </member>\n</struct></value>"),
        Value::record([("k", Value::str("v"))])
    );
    // <name> keeps whitespace; noted
    let r = parse(b"<value><struct><member><name> k </name><value>v</value></member></struct></value>").unwrap();
    assert_eq!(r.value, Value::record([(" k ", Value::str("v"))]));
    assert!(matches!(r.notes[0].kind, NoteKind::NameWhitespace(_)));
    // text mixed with an element is an error
    assert!(matches!(e("<value>ab<int>1</int></value>"), ParseErrorKind::Unexpected { .. }));
}

#[test]
fn booleans_are_true_only_for_exactly_1() {
    assert_eq!(p("<value><boolean>1</boolean></value>"), Value::Bool(true));
    assert_eq!(p("<value><boolean>0</boolean></value>"), Value::Bool(false));
    for body in ["true", " 1 ", "01", "yes"] {
        let r = parse(format!("<value><boolean>{body}</boolean></value>").as_bytes()).unwrap();
        assert_eq!(r.value, Value::Bool(false), "{body}");
        assert_eq!(r.notes[0].kind, NoteKind::BoolBody(body.to_string()));
    }
    assert!(matches!(e("<value><boolean/></value>"), ParseErrorKind::Unexpected { .. }));
}

#[test]
fn integers_doubles_dates() {
    assert_eq!(p("<value><int>-5</int></value>"), Value::Int(-5));
    assert_eq!(p("<value><i4>0x10</i4></value>"), Value::Int(16));
    assert_eq!(p("<value><i8>1_000</i8></value>"), Value::Int(1000));
    assert_eq!(e("<value><int> 5</int></value>"), ParseErrorKind::BadInt(" 5".into()));
    assert_eq!(
        e("<value><int>9223372036854775808</int></value>"),
        ParseErrorKind::BadInt("9223372036854775808".into())
    );
    assert_eq!(ocaml_int64_of_string("-9223372036854775808"), Some(i64::MIN));
    assert_eq!(ocaml_int64_of_string("0xffffffffffffffff"), Some(-1));
    assert_eq!(ocaml_int64_of_string(""), None);
    assert_eq!(ocaml_int64_of_string("-"), None);
    assert_eq!(ocaml_int64_of_string("_1"), None);
    assert_eq!(p("<value><double>1</double></value>"), Value::Double(1.0));
    assert!(matches!(e("<value><double>x</double></value>"), ParseErrorKind::BadDouble(_)));
    assert_eq!(
        p("<value><dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601></value>"),
        Value::DateTime("19700101T00:00:00Z".into())
    );
}

#[test]
fn containers_and_entities() {
    assert_eq!(p("<value><array><data/></array></value>"), Value::Array(vec![]));
    assert_eq!(p("<value><array></array></value>"), Value::Array(vec![]));
    assert_eq!(p("<value><struct/></value>"), Value::Struct(vec![]));
    assert_eq!(
        p("<value><array><data><value>a</value><value><int>1</int></value></data></array></value>"),
        Value::Array(vec![Value::str("a"), Value::Int(1)])
    );
    assert_eq!(p("<value>a &amp; &lt;b&gt; &#65;&#x42;</value>"), Value::str("a & <b> AB"));
    assert_eq!(p("<value><![CDATA[<x>]]>y</value>"), Value::str("<x>y"));
    assert_eq!(p("<value>a\r\nb\rc</value>"), Value::str("a\nb\nc"));
    assert_eq!(p("<value>a<!-- c -->b</value>"), Value::str("ab"));
    assert!(matches!(e("<value>&nbsp;</value>"), ParseErrorKind::BadReference(_)));
    assert!(matches!(e("<value>&#0;</value>"), ParseErrorKind::BadReference(_)));
    assert!(matches!(e("<value>\u{1}</value>"), ParseErrorKind::IllegalChar(1)));
}

#[test]
fn structural_errors_have_positions() {
    let err = parse(b"<value><struct><member><name>a</name><value>1</value></membr></struct></value>").unwrap_err();
    assert!(matches!(err.kind, ParseErrorKind::MismatchedEndTag { .. }));
    assert_eq!(err.offset, 53); // the `</membr>`
    assert!(matches!(e("<struct/>"), ParseErrorKind::Unexpected { .. }));
    assert_eq!(e("<value>abc"), ParseErrorKind::UnexpectedEof);
    assert_eq!(e(""), ParseErrorKind::UnexpectedEof);
    assert_eq!(parse(b"<value>\xff</value>").unwrap_err().kind, ParseErrorKind::NotUtf8);
    assert!(matches!(e("<value><foo>1</foo></value>"), ParseErrorKind::Unexpected { .. }));
    assert!(matches!(e("<value><nil/></value>"), ParseErrorKind::UnsupportedType(_)));
    assert!(matches!(
        e("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><value/>"),
        ParseErrorKind::UnsupportedEncoding(_)
    ));
    let deep = "<value><array><data>".repeat(100);
    assert_eq!(e(&deep), ParseErrorKind::TooDeep);
}

#[test]
fn trailing_content_is_ignored_but_noted() {
    let r = parse(b"<value>x</value> junk").unwrap();
    assert_eq!(r.value, Value::str("x"));
    assert_eq!(r.notes[0].kind, NoteKind::TrailingContent);
    let r = parse(b"<value>x</value>\n<!-- c -->\n").unwrap();
    assert!(r.notes.is_empty());
}

#[test]
fn never_panics_on_mangled_input() {
    // Multi-byte characters next to every kind of markup, cut and spliced at every byte.
    let base = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY é \"ü\">]><value><struct>\
                <member><name>ü</name><value>&amp;é&#233;<![CDATA[€]]><!--é--></value></member>\
                <member><name>b</name><value><array><data><value><boolean>é</boolean></value>\
                </data></array></value></member></struct></value>";
    let b = base.as_bytes();
    for i in 0..b.len() {
        let _ = parse(&b[..i]);
        let _ = parse(&b[i..]);
        let mut m = b.to_vec();
        m[i] = b'&';
        let _ = parse(&m);
        m[i] = 0xc3;
        let _ = parse(&m);
        m[i] = b'<';
        let _ = parse(&m);
    }
    let _ = parse("<value>&ééééééééééééééééééééééééééééééééééééééééééééééééé;</value>".as_bytes());
    let _ = parse("<?xml ?><value/>".as_bytes());
    let _ = parse("<?xml encoding=\"é".as_bytes());
}

#[test]
fn round_trips_the_writer() {
    let v = Value::record([
        ("a", Value::refs(["Ref:1", "x & y"])),
        ("b", Value::string_map([("k", "v")])),
        ("c", Value::Bool(true)),
        ("d", Value::Double(1.5)),
        ("e", Value::DateTime("19700101T00:00:00Z".into())),
        ("f", Value::empty_map()),
        ("g", Value::str("")),
    ]);
    assert_eq!(p(&v.to_xml()), v);
    // Int is written untyped, so it comes back as a string.
    assert_eq!(p(&Value::Int(-1).to_xml()), Value::str("-1"));
}
