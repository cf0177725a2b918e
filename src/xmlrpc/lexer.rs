//! The one XML scanner under both XML-RPC parsers: it produces the signals of the Xmlm pull
//! parser that ocaml-rpc reads with (`El_start`, `El_end`, `Data`). Comments and processing
//! instructions are skipped; character data, CDATA sections and references are merged; line
//! ends are normalised; end tags must match; elements nest at most [`MAX_DEPTH`] deep.
//!
//! ```text
//!   text ─► Lexer ─► Start(name) / End(name) / Data(text) ─┬─► parse   (ova.xml, ocaml-rpc rules)
//!                                                          └─► method  (XenAPI responses, lenient)
//! ```
//!
//! Total: every input gives signals or a [`ParseError`] with a byte offset, never a panic.

use std::fmt;

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
    /// `<nil/>` or `<base64>`: valid XML-RPC without a [`Value`](super::value::Value) variant.
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

/// An Xmlm signal.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Signal {
    /// A start tag (`<name …>`, or the first half of `<name/>`).
    Start(String),
    /// The end of the open element, named.
    End(String),
    /// Character data, references and CDATA merged (never empty).
    Data(String),
}

/// The scanner: signals one at a time, with one of look-ahead.
pub(super) struct Lexer<'a> {
    s: &'a str,
    /// Byte offset of the next unread character.
    pub(super) pos: usize,
    /// Open element names.
    stack: Vec<String>,
    /// A look-ahead signal and its offset.
    peeked: Option<(usize, Signal)>,
    /// The root element has been closed.
    done: bool,
    /// A pending end signal for an empty-element tag.
    pending_end: bool,
    root_seen: bool,
    /// A DOCTYPE was skipped.
    pub(super) saw_doctype: bool,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(s: &'a str) -> Result<Self, ParseError> {
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
    pub(super) fn has_trailing_content(&self) -> bool {
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

    pub(super) fn peek(&mut self) -> Result<Option<&Signal>, ParseError> {
        if self.peeked.is_none() {
            let at = self.pos;
            if let Some(sig) = self.scan()? {
                self.peeked = Some((at, sig));
            }
        }
        Ok(self.peeked.as_ref().map(|(_, s)| s))
    }

    /// The offset of the next signal.
    pub(super) fn offset(&self) -> usize {
        self.peeked.as_ref().map(|(o, _)| *o).unwrap_or(self.pos)
    }

    pub(super) fn next(&mut self) -> Result<(usize, Signal), ParseError> {
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
            return Ok(Some(Signal::End(self.close_current())));
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

    /// Pops the open element; returns its name.
    fn close_current(&mut self) -> String {
        let name = self.stack.pop().unwrap_or_default();
        if self.stack.is_empty() {
            self.done = true;
        }
        name
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
        Ok(Signal::End(self.close_current()))
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
