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

use std::fmt;

use super::rpc_value::Value;

/// Maximum element nesting depth accepted (ova.xml needs about 16).
pub const MAX_DEPTH: usize = 128;

/// A parse failure at a byte offset of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the input where the problem was found.
    pub offset: usize,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

/// What went wrong while parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The input is not valid UTF-8 (the only encoding accepted here).
    NotUtf8,
    /// The XML declaration names an encoding other than UTF-8 / US-ASCII.
    UnsupportedEncoding(String),
    /// Malformed XML (the detail says what).
    Syntax(String),
    /// An entity reference other than the five predefined ones or a valid character reference.
    BadReference(String),
    /// A character not allowed in XML 1.0.
    IllegalChar(u32),
    /// End tag does not match the open element.
    MismatchedEndTag {
        /// Name of the open element.
        open: String,
        /// Name in the end tag.
        found: String,
    },
    /// The input ended inside the document.
    UnexpectedEof,
    /// Elements nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// ocaml-rpc expected one thing and got another (`got`, `expected` as in its messages).
    Unexpected {
        /// What was found.
        got: String,
        /// What ocaml-rpc wanted.
        expected: String,
    },
    /// `<int>`/`<i4>`/`<i8>` body not accepted by OCaml's `Int64.of_string`.
    BadInt(String),
    /// `<double>` body not accepted by OCaml's `float_of_string`.
    BadDouble(String),
    /// `<nil/>` or `<base64>`: valid XML-RPC without a [`Value`] variant.
    UnsupportedType(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: ", self.offset)?;
        match &self.kind {
            ParseErrorKind::NotUtf8 => write!(f, "not valid UTF-8"),
            ParseErrorKind::UnsupportedEncoding(e) => {
                write!(f, "unsupported encoding {e:?} (only UTF-8 is read)")
            }
            ParseErrorKind::Syntax(s) => write!(f, "malformed XML: {s}"),
            ParseErrorKind::BadReference(r) => {
                write!(f, "unknown entity or bad character reference &{r};")
            }
            ParseErrorKind::IllegalChar(c) => {
                write!(f, "character U+{c:04X} is not allowed in XML")
            }
            ParseErrorKind::MismatchedEndTag { open, found } => {
                write!(f, "end tag </{found}> does not close <{open}>")
            }
            ParseErrorKind::UnexpectedEof => write!(f, "unexpected end of input"),
            ParseErrorKind::TooDeep => write!(f, "elements nested deeper than {MAX_DEPTH}"),
            ParseErrorKind::Unexpected { got, expected } => {
                write!(f, "got {got} while {expected} was expected")
            }
            ParseErrorKind::BadInt(s) => write!(f, "{s:?} is not an integer (Int64.of_string)"),
            ParseErrorKind::BadDouble(s) => write!(f, "{s:?} is not a float (float_of_string)"),
            ParseErrorKind::UnsupportedType(t) => {
                write!(f, "XML-RPC type <{t}> is not supported in ova.xml")
            }
        }
    }
}

impl std::error::Error for ParseError {}

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

// ---------------------------------------------------------------------------------------------
// The Xmlm-like scanner.

/// An Xmlm signal.
#[derive(Clone, Debug, PartialEq)]
enum Signal {
    Start(String),
    End,
    Data(String),
}

struct Lexer<'a> {
    s: &'a str,
    pos: usize,
    /// Open element names.
    stack: Vec<String>,
    /// A look-ahead signal and its offset.
    peeked: Option<(usize, Signal)>,
    /// The root element has been closed.
    done: bool,
    /// A pending end signal for an empty-element tag.
    pending_end: bool,
    root_seen: bool,
    saw_doctype: bool,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Result<Self, ParseError> {
        let mut lx = Lexer {
            s,
            pos: 0,
            stack: Vec::new(),
            peeked: None,
            done: false,
            pending_end: false,
            root_seen: false,
            saw_doctype: false,
        };
        if lx.rest().starts_with('\u{feff}') {
            lx.pos += '\u{feff}'.len_utf8();
        }
        if lx.rest().starts_with("<?xml") && lx.rest()[5..].starts_with(|c: char| c.is_ascii_whitespace() || c == '?') {
            lx.xml_decl()?;
        }
        Ok(lx)
    }

    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    fn err<T>(&self, offset: usize, kind: ParseErrorKind) -> Result<T, ParseError> {
        Err(ParseError { offset, kind })
    }

    fn syntax<T>(&self, offset: usize, msg: &str) -> Result<T, ParseError> {
        self.err(offset, ParseErrorKind::Syntax(msg.to_string()))
    }

    /// Whether anything other than whitespace, comments and PIs follows the root.
    fn has_trailing_content(&self) -> bool {
        let mut r = self.rest();
        loop {
            r = r.trim_start_matches([' ', '\t', '\n', '\r']);
            if r.is_empty() {
                return false;
            }
            if let Some(t) = r.strip_prefix("<!--") {
                match t.find("-->") {
                    Some(i) => r = &t[i + 3..],
                    None => return true,
                }
            } else if r.starts_with("<?") {
                match r.find("?>") {
                    Some(i) => r = &r[i + 2..],
                    None => return true,
                }
            } else {
                return true;
            }
        }
    }

    fn xml_decl(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let Some(end) = self.rest().find("?>") else {
            return self.err(start, ParseErrorKind::UnexpectedEof);
        };
        let body = &self.rest()[5..end];
        if let Some(i) = body.find("encoding") {
            let after = body[i + 8..].trim_start();
            if let Some(after) = after.strip_prefix('=') {
                let after = after.trim_start();
                let q = after.chars().next();
                if let Some(q @ ('"' | '\'')) = q {
                    let v = &after[1..];
                    let enc = v.split(q).next().unwrap_or("");
                    let lower = enc.to_ascii_lowercase();
                    if !matches!(lower.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
                        return self.err(start, ParseErrorKind::UnsupportedEncoding(enc.to_string()));
                    }
                }
            }
        }
        self.pos += end + 2;
        Ok(())
    }

    fn peek(&mut self) -> Result<Option<&Signal>, ParseError> {
        if self.peeked.is_none() {
            let at = self.pos;
            if let Some(sig) = self.scan()? {
                self.peeked = Some((at, sig));
            }
        }
        Ok(self.peeked.as_ref().map(|(_, s)| s))
    }

    /// The offset of the next signal.
    fn offset(&self) -> usize {
        self.peeked.as_ref().map(|(o, _)| *o).unwrap_or(self.pos)
    }

    fn next(&mut self) -> Result<(usize, Signal), ParseError> {
        if let Some(p) = self.peeked.take() {
            return Ok(p);
        }
        let at = self.pos;
        match self.scan()? {
            Some(s) => Ok((at, s)),
            None => self.err(at, ParseErrorKind::UnexpectedEof),
        }
    }

    /// Produces the next signal; `None` only after the root element is closed.
    fn scan(&mut self) -> Result<Option<Signal>, ParseError> {
        if self.pending_end {
            self.pending_end = false;
            self.close_current();
            return Ok(Some(Signal::End));
        }
        if self.done {
            return Ok(None);
        }
        if self.stack.is_empty() {
            // Prolog: whitespace, comments, PIs, one DOCTYPE before the root.
            loop {
                let r = self.rest();
                let t = r.trim_start_matches([' ', '\t', '\n', '\r']);
                self.pos += r.len() - t.len();
                if t.is_empty() {
                    return self.err(self.pos, ParseErrorKind::UnexpectedEof);
                }
                if t.starts_with("<!--") {
                    self.comment()?;
                } else if t.starts_with("<?") {
                    self.pi()?;
                } else if t.starts_with("<!DOCTYPE") && !self.root_seen {
                    self.doctype()?;
                } else if t.starts_with('<') && !t.starts_with("</") && !t.starts_with("<!") {
                    return self.start_tag().map(Some);
                } else {
                    return self.syntax(self.pos, "expected the root element");
                }
            }
        }
        // Element content: merge character data, references and CDATA across comments/PIs.
        let mut data = String::new();
        loop {
            let r = self.rest();
            if r.is_empty() {
                return self.err(self.pos, ParseErrorKind::UnexpectedEof);
            }
            if r.starts_with("<!--") {
                self.comment()?;
            } else if let Some(body) = r.strip_prefix("<![CDATA[") {
                let Some(end) = body.find("]]>") else {
                    return self.err(self.pos, ParseErrorKind::UnexpectedEof);
                };
                self.push_chars(&body[..end], self.pos + 9, &mut data)?;
                self.pos += 9 + end + 3;
            } else if r.starts_with("<?") {
                self.pi()?;
            } else if r.starts_with('<') {
                if !data.is_empty() {
                    return Ok(Some(Signal::Data(data)));
                }
                if r.starts_with("</") {
                    return self.end_tag().map(Some);
                }
                if r.starts_with("<!") {
                    return self.syntax(self.pos, "markup declaration inside an element");
                }
                return self.start_tag().map(Some);
            } else if r.starts_with('&') {
                self.reference(&mut data)?;
            } else {
                let end = r.find(['<', '&']).unwrap_or(r.len());
                let chunk = &r[..end];
                if let Some(i) = chunk.find("]]>") {
                    return self.syntax(self.pos + i, "\"]]>\" in character data");
                }
                self.push_chars(chunk, self.pos, &mut data)?;
                self.pos += end;
            }
        }
    }

    /// Appends text with XML line-end normalisation, rejecting illegal characters.
    fn push_chars(&self, chunk: &str, at: usize, out: &mut String) -> Result<(), ParseError> {
        let mut prev_cr = false;
        for (i, c) in chunk.char_indices() {
            if !is_xml_char(c) {
                return self.err(at + i, ParseErrorKind::IllegalChar(c as u32));
            }
            match c {
                '\r' => {
                    out.push('\n');
                    prev_cr = true;
                    continue;
                }
                '\n' if prev_cr => {}
                c => out.push(c),
            }
            prev_cr = false;
        }
        Ok(())
    }

    fn reference(&mut self, out: &mut String) -> Result<(), ParseError> {
        let at = self.pos;
        let r = self.rest();
        let Some(end) = r.as_bytes()[..r.len().min(64)].iter().position(|&b| b == b';') else {
            return self.err(at, ParseErrorKind::BadReference(r.chars().skip(1).take(16).collect()));
        };
        let name = &r[1..end];
        let c = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => {
                let num = if let Some(h) = name.strip_prefix("#x") {
                    u32::from_str_radix(h, 16)
                        .ok()
                        .filter(|_| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
                } else if let Some(d) = name.strip_prefix('#') {
                    d.parse::<u32>().ok().filter(|_| d.bytes().all(|b| b.is_ascii_digit()))
                } else {
                    None
                };
                num.and_then(char::from_u32).filter(|&c| is_xml_char(c))
            }
        };
        match c {
            Some(c) => {
                out.push(c);
                self.pos += end + 1;
                Ok(())
            }
            None => self.err(at, ParseErrorKind::BadReference(name.to_string())),
        }
    }

    fn comment(&mut self) -> Result<(), ParseError> {
        let at = self.pos;
        let body = &self.rest()[4..];
        match body.find("--") {
            Some(i) if body[i..].starts_with("-->") => {
                self.pos += 4 + i + 3;
                Ok(())
            }
            Some(i) => self.syntax(at + 4 + i, "\"--\" inside a comment"),
            None => self.err(at, ParseErrorKind::UnexpectedEof),
        }
    }

    fn pi(&mut self) -> Result<(), ParseError> {
        let at = self.pos;
        let r = self.rest();
        let target_end = r[2..].find(|c: char| c.is_ascii_whitespace() || c == '?').map(|i| i + 2).unwrap_or(r.len());
        let target = &r[2..target_end];
        if target.is_empty() || !is_name(target) {
            return self.syntax(at, "bad processing instruction");
        }
        if target.eq_ignore_ascii_case("xml") {
            return self.syntax(at, "XML declaration not at the start of the document");
        }
        match r.find("?>") {
            Some(i) => {
                self.pos += i + 2;
                Ok(())
            }
            None => self.err(at, ParseErrorKind::UnexpectedEof),
        }
    }

    fn doctype(&mut self) -> Result<(), ParseError> {
        let at = self.pos;
        let r = self.rest();
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        for (i, c) in r.char_indices().skip(9) {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '[') => depth += 1,
                (None, ']') => depth = depth.saturating_sub(1),
                (None, '>') if depth == 0 => {
                    self.pos += i + 1;
                    self.saw_doctype = true;
                    return Ok(());
                }
                _ => {}
            }
        }
        self.err(at, ParseErrorKind::UnexpectedEof)
    }

    fn start_tag(&mut self) -> Result<Signal, ParseError> {
        let at = self.pos;
        let r = self.rest();
        let name_end =
            r[1..].find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/').map(|i| i + 1).unwrap_or(r.len());
        let name = &r[1..name_end];
        if !is_name(name) {
            return self.syntax(at, "bad element name");
        }
        if name.contains(':') {
            return self.syntax(at, "namespace prefixes are not supported");
        }
        // Attributes: name = "value" | 'value', ignored but checked for form.
        let mut i = name_end;
        let bytes = r.as_bytes();
        let mut seen: Vec<&str> = Vec::new();
        loop {
            let ws_start = i;
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
                i += 1;
            }
            if i >= bytes.len() {
                return self.err(at, ParseErrorKind::UnexpectedEof);
            }
            if r[i..].starts_with("/>") {
                self.pos += i + 2;
                self.open(name.to_string(), at)?;
                self.pending_end = true;
                return Ok(Signal::Start(name.to_string()));
            }
            if bytes[i] == b'>' {
                self.pos += i + 1;
                self.open(name.to_string(), at)?;
                return Ok(Signal::Start(name.to_string()));
            }
            if i == ws_start {
                return self.syntax(at + i, "expected whitespace before an attribute");
            }
            let an_end = r[i..]
                .find(|c: char| c.is_ascii_whitespace() || c == '=' || c == '>' || c == '/')
                .map(|k| k + i)
                .unwrap_or(r.len());
            let an = &r[i..an_end];
            if !is_name(an) {
                return self.syntax(at + i, "bad attribute name");
            }
            if seen.contains(&an) {
                return self.syntax(at + i, "duplicate attribute");
            }
            seen.push(an);
            i = an_end;
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
                i += 1;
            }
            if i >= bytes.len() || bytes[i] != b'=' {
                return self.syntax(at + i, "expected '=' after an attribute name");
            }
            i += 1;
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
                i += 1;
            }
            let Some(&q) = bytes.get(i) else {
                return self.err(at, ParseErrorKind::UnexpectedEof);
            };
            if q != b'"' && q != b'\'' {
                return self.syntax(at + i, "attribute value must be quoted");
            }
            let Some(len) = r[i + 1..].find(q as char) else {
                return self.err(at, ParseErrorKind::UnexpectedEof);
            };
            let val = &r[i + 1..i + 1 + len];
            if val.contains('<') {
                return self.syntax(at + i, "'<' in an attribute value");
            }
            i = i + 1 + len + 1;
        }
    }

    fn open(&mut self, name: String, at: usize) -> Result<(), ParseError> {
        if self.stack.len() >= MAX_DEPTH {
            return self.err(at, ParseErrorKind::TooDeep);
        }
        self.stack.push(name);
        self.root_seen = true;
        Ok(())
    }

    fn close_current(&mut self) {
        self.stack.pop();
        if self.stack.is_empty() {
            self.done = true;
        }
    }

    fn end_tag(&mut self) -> Result<Signal, ParseError> {
        let at = self.pos;
        let r = self.rest();
        let Some(gt) = r.find('>') else {
            return self.err(at, ParseErrorKind::UnexpectedEof);
        };
        let name = r[2..gt].trim_end_matches([' ', '\t', '\n', '\r']);
        let open = self.stack.last().cloned().unwrap_or_default();
        if name != open {
            return self.err(at, ParseErrorKind::MismatchedEndTag { open, found: name.to_string() });
        }
        self.pos += gt + 1;
        self.close_current();
        Ok(Signal::End)
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r')
        || ('\u{20}'..='\u{d7ff}').contains(&c)
        || ('\u{e000}'..='\u{fffd}').contains(&c)
        || ('\u{10000}'..='\u{10ffff}').contains(&c)
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.' | '\u{b7}'))
}

// ---------------------------------------------------------------------------------------------
// ocaml-rpc's Xmlrpc.Parser, transcribed.

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
        Signal::End => "an end tag".to_string(),
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
                (_, Signal::End) => return Ok(()),
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
            (at, Signal::End) => Ok((at, String::new())),
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
            Some(Signal::End) => Ok(true),
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
            Some(Signal::End) => Value::String(String::new()),
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
mod tests {
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
}
