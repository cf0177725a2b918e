//! Parses an XML-RPC value (`ova.xml`, XML-RPC responses) the way xapi does.
//!
//! xapi reads `ova.xml` with ocaml-rpc's `Xmlrpc.of_string` over the Xmlm pull parser
//! (`xva-format-and-xapi-import.md` §3.1). This module is a small XML scanner that produces the
//! same signals as Xmlm (`El_start`, `El_end`, `Data`; comments and processing instructions
//! skipped, character data, CDATA sections and references merged, line ends normalised), and a
//! transcription of ocaml-rpc's `Parser` on top of it, quirks included:
//!
//! ```text
//!   <value>text</value>        -> String "text"         (untyped value = string)
//!   <value/>, <value></value>  -> String ""
//!   <value> x </value>         -> String " x "          (whitespace inside scalars is kept)
//!   <value> <int>1</int> </value> -> Int 1              (whitespace-only text between elements skipped)
//!   <boolean>1</boolean>       -> true; any other body (also "true", " 1 ") -> false
//!   <int/>, <boolean/>         -> error                 (only string/array/struct/value may be empty)
//! ```
//!
//! `<nil/>` and `<base64>` are valid XML-RPC but have no [`Value`] variant (xapi's exports never
//! contain them); they are reported as [`ParseErrorKind::UnsupportedType`].
//!
//! The parser is total: every input gives a value or a [`ParseError`] with a byte offset. Element
//! nesting is capped at [`MAX_DEPTH`]. What xapi accepts silently but the validator should warn
//! about (non-`0`/`1` boolean bodies, whitespace around scalars and member names, content after
//! the root) is returned as [`Note`]s.

use super::lexer::{Lexer, Signal};
pub use super::lexer::{ParseError, ParseErrorKind, MAX_DEPTH};
use super::value::Value;

/// Something xapi accepts without complaint that a validator should still point out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Byte offset in the input.
    pub offset: usize,
    /// Struct member names from the root down to the value (`["objects", "snapshot", "empty"]`,
    /// array positions are not included, as in ocaml-rpc's callback path).
    pub path: Vec<String>,
    /// What was seen.
    pub kind: NoteKind,
}

/// The kinds of [`Note`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoteKind {
    /// `<boolean>` body other than `0` or `1` (xapi reads it as false unless it is `1`).
    BoolBody(String),
    /// A string scalar with leading or trailing whitespace (kept verbatim by xapi).
    ScalarWhitespace(String),
    /// A struct member name with leading or trailing whitespace (becomes part of the key).
    NameWhitespace(String),
    /// Content after the root element (xapi stops reading at the root's end tag).
    TrailingContent,
    /// A DOCTYPE declaration (skipped).
    Doctype,
}

/// A parsed document: the value and the notes.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    /// The root value.
    pub value: Value,
    /// Things xapi tolerates but that deserve a warning.
    pub notes: Vec<Note>,
}

/// Parses a complete XML-RPC `<value>` document (ova.xml).
pub fn parse(input: &[u8]) -> Result<Parsed, ParseError> {
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => return Err(ParseError { offset: e.valid_up_to(), kind: ParseErrorKind::NotUtf8 }),
    };
    parse_str(text)
}

/// Parses a complete XML-RPC `<value>` document from text.
pub fn parse_str(text: &str) -> Result<Parsed, ParseError> {
    let mut p = Parser { lx: Lexer::new(text)?, notes: Vec::new(), path: Vec::new(), depth: 0 };
    let value = p.value()?;
    if p.lx.has_trailing_content() {
        p.notes.push(Note { offset: p.lx.pos, path: Vec::new(), kind: NoteKind::TrailingContent });
    }
    if p.lx.saw_doctype {
        p.notes.push(Note { offset: 0, path: Vec::new(), kind: NoteKind::Doctype });
    }
    Ok(Parsed { value, notes: p.notes })
}

/// OCaml's `Int64.of_string`: optional `-`/`+`, optional `0x`/`0o`/`0b`/`0u` prefix, digits and
/// `_` (not first). Decimal must fit `i64`; other bases may use all 64 bits (wrapping, as OCaml
/// does). No surrounding whitespace.
pub fn ocaml_int64_of_string(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (neg, rest) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let (radix, digits, signed_dec) = if rest.len() >= 2 && rest[0] == b'0' {
        match rest[1] {
            b'x' | b'X' => (16u32, &rest[2..], false),
            b'o' | b'O' => (8, &rest[2..], false),
            b'b' | b'B' => (2, &rest[2..], false),
            b'u' | b'U' => (10, &rest[2..], false),
            _ => (10, rest, true),
        }
    } else {
        (10, rest, true)
    };
    if digits.first().is_none_or(|&c| c == b'_') {
        return None;
    }
    let mut acc: u64 = 0;
    for &c in digits {
        if c == b'_' {
            continue;
        }
        let d = (c as char).to_digit(radix)?;
        acc = acc.checked_mul(u64::from(radix))?.checked_add(u64::from(d))?;
    }
    if signed_dec {
        let limit = if neg { 1u64 << 63 } else { (1u64 << 63) - 1 };
        if acc > limit {
            return None;
        }
    }
    // Two's-complement reinterpretation and wrapping negation, as OCaml's Int64.of_string.
    let v = acc as i64;
    Some(if neg { v.wrapping_neg() } else { v })
}

/// OCaml's `float_of_string` (approximation): decimal or special (`nan`, `inf`, `infinity`)
/// forms with optional sign and `_` separators; no surrounding whitespace.
pub fn ocaml_float_of_string(s: &str) -> Option<f64> {
    if s.is_empty() || s.starts_with('_') || s.trim() != s {
        return None;
    }
    let cleaned: String = s.chars().filter(|&c| c != '_').collect();
    cleaned.parse::<f64>().ok()
}

struct Parser<'a> {
    lx: Lexer<'a>,
    notes: Vec<Note>,
    path: Vec<String>,
    depth: usize,
}

/// ocaml-rpc's `is_empty`: only space, LF and TAB count (CR is already normalised to LF).
fn is_empty(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'\n' | b' ' | b'\t'))
}

fn describe(sig: &Signal) -> String {
    match sig {
        Signal::Start(t) => format!("<{t}>"),
        Signal::End(_) => "an end tag".to_string(),
        Signal::Data(d) => {
            let short: String = d.chars().take(40).collect();
            format!("text {short:?}")
        }
    }
}

impl Parser<'_> {
    fn unexpected<T>(&self, offset: usize, got: String, expected: &str) -> Result<T, ParseError> {
        Err(ParseError { offset, kind: ParseErrorKind::Unexpected { got, expected: expected.to_string() } })
    }

    fn note(&mut self, offset: usize, kind: NoteKind) {
        if self.notes.len() < 10_000 {
            self.notes.push(Note { offset, path: self.path.clone(), kind });
        }
    }

    fn open_tag(&mut self) -> Result<(usize, String), ParseError> {
        loop {
            match self.lx.next()? {
                (at, Signal::Start(t)) => return Ok((at, t)),
                (_, Signal::Data(d)) if is_empty(&d) => continue,
                (at, s) => return self.unexpected(at, describe(&s), "an open tag"),
            }
        }
    }

    fn close_tag(&mut self, tag: &str) -> Result<(), ParseError> {
        loop {
            match self.lx.next()? {
                (_, Signal::End(_)) => return Ok(()),
                (_, Signal::Data(d)) if is_empty(&d) => continue,
                (at, s) => return self.unexpected(at, describe(&s), &format!("</{tag}>")),
            }
        }
    }

    /// `get_data`: text, or `""` when the element ends right away.
    fn get_data(&mut self) -> Result<(usize, String), ParseError> {
        match self.lx.next()? {
            (at, Signal::Data(d)) => Ok((at, d)),
            // ocaml-rpc consumes the end tag and returns ""; the caller's close_tag then reads
            // the signal after it. Only `<name/>` gets here (typed scalars check for an empty
            // element first), and it fails there exactly as in ocaml-rpc.
            (at, Signal::End(_)) => Ok((at, String::new())),
            (at, s) => self.unexpected(at, describe(&s), "text"),
        }
    }

    fn skip_empty(&mut self) -> Result<(), ParseError> {
        while let Some(Signal::Data(d)) = self.lx.peek()? {
            if !is_empty(d) {
                break;
            }
            self.lx.next()?;
        }
        Ok(())
    }

    fn peek_is_end(&mut self) -> Result<bool, ParseError> {
        match self.lx.peek()? {
            Some(Signal::End(_)) => Ok(true),
            Some(_) => Ok(false),
            None => {
                let at = self.lx.offset();
                Err(ParseError { offset: at, kind: ParseErrorKind::UnexpectedEof })
            }
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError { offset: at, kind: ParseErrorKind::TooDeep });
        }
        Ok(())
    }

    /// `value (map_tags basic_types)`.
    fn value(&mut self) -> Result<Value, ParseError> {
        let (at, t) = self.open_tag()?;
        if t != "value" {
            return self.unexpected(at, format!("<{t}>"), "<value>");
        }
        self.enter(at)?;
        let r = match self.lx.peek()? {
            Some(Signal::End(_)) => Value::String(String::new()),
            Some(Signal::Data(_)) => {
                let (dat, d) = self.lx.next()?;
                let d = match d {
                    Signal::Data(d) => d,
                    _ => String::new(),
                };
                if is_empty(&d) && matches!(self.lx.peek()?, Some(Signal::Start(_))) {
                    self.map_tags()?
                } else {
                    if d.trim() != d {
                        self.note(dat, NoteKind::ScalarWhitespace(d.clone()));
                    }
                    Value::String(d)
                }
            }
            _ => self.map_tags()?,
        };
        self.close_tag("value")?;
        self.depth -= 1;
        Ok(r)
    }

    fn map_tags(&mut self) -> Result<Value, ParseError> {
        let (at, tag) = self.open_tag()?;
        let r = if self.peek_is_end()? {
            match tag.as_str() {
                "string" | "value" => Value::String(String::new()),
                "array" => Value::Array(Vec::new()),
                "struct" => Value::Struct(Vec::new()),
                "nil" => return Err(ParseError { offset: at, kind: ParseErrorKind::UnsupportedType(tag) }),
                _ => return self.unexpected(at, format!("empty <{tag}>"), "a non-empty element"),
            }
        } else {
            self.basic_types(at, &tag)?
        };
        self.close_tag(&tag)?;
        Ok(r)
    }

    fn basic_types(&mut self, at: usize, tag: &str) -> Result<Value, ParseError> {
        match tag {
            "int" | "i8" | "i4" => {
                let (dat, d) = self.get_data()?;
                match ocaml_int64_of_string(&d) {
                    Some(i) => Ok(Value::Int(i)),
                    None => Err(ParseError { offset: dat, kind: ParseErrorKind::BadInt(d) }),
                }
            }
            "boolean" => {
                let (dat, d) = self.get_data()?;
                if d != "0" && d != "1" {
                    self.note(dat, NoteKind::BoolBody(d.clone()));
                }
                Ok(Value::Bool(d == "1"))
            }
            "double" => {
                let (dat, d) = self.get_data()?;
                match ocaml_float_of_string(&d) {
                    Some(f) => Ok(Value::Double(f)),
                    None => Err(ParseError { offset: dat, kind: ParseErrorKind::BadDouble(d) }),
                }
            }
            "string" => {
                let (dat, d) = self.get_data()?;
                if d.trim() != d {
                    self.note(dat, NoteKind::ScalarWhitespace(d.clone()));
                }
                Ok(Value::String(d))
            }
            "dateTime.iso8601" => {
                let (_, d) = self.get_data()?;
                Ok(Value::DateTime(d))
            }
            "array" => {
                let (dat, t) = self.open_tag()?;
                if t != "data" {
                    return self.unexpected(dat, format!("<{t}>"), "<data>");
                }
                let mut items = Vec::new();
                self.skip_empty()?;
                while !self.peek_is_end()? {
                    items.push(self.value()?);
                    self.skip_empty()?;
                }
                self.close_tag("data")?;
                Ok(Value::Array(items))
            }
            "struct" => {
                let mut members = Vec::new();
                self.skip_empty()?;
                while !self.peek_is_end()? {
                    let (mat, t) = self.open_tag()?;
                    if t != "member" {
                        return self.unexpected(mat, format!("<{t}>"), "<member>");
                    }
                    let (nat, t) = self.open_tag()?;
                    if t != "name" {
                        return self.unexpected(nat, format!("<{t}>"), "<name>");
                    }
                    let (_, name) = self.get_data()?;
                    self.close_tag("name")?;
                    if name.trim() != name {
                        self.note(nat, NoteKind::NameWhitespace(name.clone()));
                    }
                    self.path.push(name.clone());
                    let v = self.value();
                    self.path.pop();
                    members.push((name, v?));
                    self.close_tag("member")?;
                    self.skip_empty()?;
                }
                Ok(Value::Struct(members))
            }
            "nil" | "base64" => Err(ParseError { offset: at, kind: ParseErrorKind::UnsupportedType(tag.to_string()) }),
            _ => self.unexpected(
                at,
                format!("<{tag}>"),
                "<int>/<i8>/<i4>/<boolean>/<double>/<string>/<dateTime.iso8601>/<array>/<struct>/<nil>",
            ),
        }
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
