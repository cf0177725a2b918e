//! Tests of the evaluator.

use super::*;

/// Like xm: any name left unknown is an error.
fn strict(src: &str) -> Result<Evaluated> {
    let e = evaluate(src, &BTreeMap::new())?;
    if let Some((_, _, c)) = e.unknown.first() {
        return Err(copy_err(c));
    }
    Ok(e)
}

fn ev(src: &str) -> Evaluated {
    evaluate(src, &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn strings_in_every_quoting() {
    let e = ev(concat!(
        "a = 'x' \"y\" '''z\nz''' r'\\d' u'u'\n",
        "b = \"one\\\n two\"\n",
        "c = 'tab\\there\\x41\\101'\n",
        "d = \\\n  'cont'\n",
        "e = ('impl'\n   'icit')  # comment\n",
        "f = \"\"\"it's \"q\" \"\"\"\n",
    ));
    assert_eq!(e.get("a"), Some(&Value::Str("xyz\nz\\du".into())));
    assert_eq!(e.get("b"), Some(&Value::Str("one two".into())));
    assert_eq!(e.get("c"), Some(&Value::Str("tab\thereAA".into())));
    assert_eq!(e.get("d"), Some(&Value::Str("cont".into())));
    assert_eq!(e.get("e"), Some(&Value::Str("implicit".into())));
    assert_eq!(e.get("f"), Some(&Value::Str("it's \"q\" ".into())));
}

#[test]
fn numbers_and_arithmetic() {
    let e = ev("a = 0x10 + 010 + 0o10 + 10L\nb = 7 / 2\nc = -7 / 2\nd = 7 % -3\ne = 2 ** 10\nf = 1.5 * 2\ng = 512 * 1024\nh = a; i = b + 1\n");
    assert_eq!(e.get("a"), Some(&Value::Int(16 + 8 + 8 + 10)));
    assert_eq!(e.get("b"), Some(&Value::Int(3)));
    assert_eq!(e.get("c"), Some(&Value::Int(-4)));
    assert_eq!(e.get("d"), Some(&Value::Int(-2)));
    assert_eq!(e.get("e"), Some(&Value::Int(1024)));
    assert_eq!(e.get("f"), Some(&Value::Float(3.0)));
    assert_eq!(e.get("h"), Some(&Value::Int(42)));
    assert_eq!(e.get("i"), Some(&Value::Int(4)));
}

#[test]
fn percent_formatting() {
    let e = ev("vmid = 3\nname = 'VM%d' % vmid\ndisk = ['phy:sda%d,sda1,w' % (7+vmid), 'x']\ns = '%s-%03d-%x-%r-%%' % ('a', 5, 255, 'q')\nm = '%(a)s/%(b)d' % {'a': 'x', 'b': 2}\n");
    assert_eq!(e.get("name"), Some(&Value::Str("VM3".into())));
    assert_eq!(e.get("disk"), Some(&Value::List(vec![Value::Str("phy:sda10,sda1,w".into()), Value::Str("x".into())])));
    assert_eq!(e.get("s"), Some(&Value::Str("a-005-ff-'q'-%".into())));
    assert_eq!(e.get("m"), Some(&Value::Str("x/2".into())));
}

#[test]
fn percent_flags_width_and_precision() {
    let e = ev("s = '%.2s|%5.1f|%-4d|%+d|% 3s|' % ('abc', 3.14159, 7, 5, 'x')
");
    assert_eq!(e.get("s"), Some(&Value::Str("ab|  3.1|7   |+5|  x|".into())));
}

#[test]
fn refusals_name_line_and_construct() {
    for (src, line, what) in [
        ("a = 1\nimport os\n", 2, "import"),
        ("a = 1\n\nif a:\n  b = 2\n", 3, "`if`"),
        ("a = os.path.join('a')\n", 1, "os"),
        ("a = len([])\n", 1, "call of len"),
        ("a = [1][0]\n", 1, "subscript"),
        ("a = 'x'.upper()\n", 1, ".upper"),
        ("xm_vars.var('vmid')\n", 1, "--set vmid="),
        ("a = b\n", 1, "--set b="),
    ] {
        let err = strict(src).unwrap_err();
        assert_eq!(err.line(), Some(line), "{src}: {err}");
        assert!(err.to_string().contains(what), "{src}: {err}");
    }
}

#[test]
fn def_skipped_and_xm_vars_from_set() {
    let src = "def vmid_check(var, val):\n    val = int(val)\n    if val <= 0:\n        raise ValueError\n    return val\n\nxm_vars.var('vmid', use='id', check=vmid_check)\nxm_vars.check()\nname = 'VM%d' % vmid\n";
    let mut fixed = BTreeMap::new();
    fixed.insert("vmid".to_string(), parse_cli_value("2"));
    let e = evaluate(src, &fixed).unwrap();
    assert_eq!(e.get("name"), Some(&Value::Str("VM2".into())));
    assert!(!e.remarks.is_empty());
    let err = strict("def f():\n  return 1\na = f()\n").unwrap_err();
    assert_eq!(err.line(), Some(3));
}

#[test]
fn unterminated_strings() {
    let err = strict("a = 'abc\n").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Syntax);
    assert!(err.to_string().contains("unterminated"), "{err}");
    let err = strict("x = 1\na = '''abc\n\n").unwrap_err();
    assert_eq!(err.line(), Some(2));
}

#[test]
fn overflow_is_an_error() {
    assert!(strict("a = 99999999999999999999\n").is_err());
    assert!(strict("a = 2 ** 64\n").is_err());
    assert!(strict("a = 'x' * 100000000\n").is_err());
    assert!(strict("a = 1 / 0\n").is_err());
    let deep = format!("a = {}1{}\n", "(".repeat(500), ")".repeat(500));
    assert!(strict(&deep).is_err());
}
