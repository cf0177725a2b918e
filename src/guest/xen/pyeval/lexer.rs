//! The tokenizer: Python 2 logical lines, indentation, numbers and every string quoting.

use super::MAX_DEPTH;
use crate::guest::error::{GuestError, Result};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
    Op(&'static str),
    Newline,
    /// Indentation (columns) of the logical line that starts here.
    Indent(usize),
    Eof,
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) line: usize,
}

const OPS: &[&str] = &[
    "**=", "//=", ">>=", "<<=", "**", "//", "==", "!=", "<=", ">=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=",
    "<<", ">>", "<>", "+", "-", "*", "/", "%", "(", ")", "[", "]", "{", "}", ",", ":", ".", ";", "=", "<", ">", "&",
    "|", "^", "~", "@", "`",
];

pub(super) fn lex(src: &str) -> Result<Vec<Token>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0usize;
    let mut line = 1usize;
    let mut depth = 0usize; // bracket nesting: newlines inside are not logical line ends
    let mut at_line_start = true;
    while i < b.len() {
        if at_line_start && depth == 0 {
            // Measure indentation; skip blank and comment-only lines.
            let mut col = 0usize;
            let mut j = i;
            while j < b.len() && (b[j] == b' ' || b[j] == b'\t' || b[j] == b'\x0c') {
                col = if b[j] == b'\t' { (col / 8 + 1) * 8 } else { col + 1 };
                j += 1;
            }
            if j >= b.len() {
                break;
            }
            if b[j] == b'\n' || b[j] == b'\r' || b[j] == b'#' {
                // blank / comment line
                while j < b.len() && b[j] != b'\n' {
                    j += 1;
                }
                if j < b.len() {
                    j += 1;
                    line += 1;
                }
                i = j;
                continue;
            }
            out.push(Token { tok: Tok::Indent(col), line });
            i = j;
            at_line_start = false;
            continue;
        }
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\x0c' | b'\r' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'\n' => {
                line += 1;
                i += 1;
                if depth == 0 {
                    out.push(Token { tok: Tok::Newline, line: line - 1 });
                    at_line_start = true;
                }
            }
            b'\\' => {
                // explicit line continuation
                let mut j = i + 1;
                if j < b.len() && b[j] == b'\r' {
                    j += 1;
                }
                if j < b.len() && b[j] == b'\n' {
                    i = j + 1;
                    line += 1;
                } else {
                    return Err(GuestError::syntax(line, "stray backslash outside a string"));
                }
            }
            b'0'..=b'9' => {
                let (tok, n) = lex_number(&src[i..], line)?;
                out.push(Token { tok, line });
                i += n;
            }
            b'.' if i + 1 < b.len() && b[i + 1].is_ascii_digit() => {
                let (tok, n) = lex_number(&src[i..], line)?;
                out.push(Token { tok, line });
                i += n;
            }
            c if c == b'_' || c.is_ascii_alphabetic() || c >= 0x80 => {
                let start = i;
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric() || b[i] >= 0x80) {
                    i += 1;
                }
                let word = &src[start..i];
                // String prefix?
                let lower = word.to_ascii_lowercase();
                if i < b.len()
                    && (b[i] == b'\'' || b[i] == b'"')
                    && matches!(lower.as_str(), "r" | "u" | "b" | "ur" | "br" | "ru" | "rb")
                {
                    let raw = lower.contains('r');
                    let (s, n, lines) = lex_string(&src[i..], raw, line)?;
                    out.push(Token { tok: Tok::Str(s), line });
                    i += n;
                    line += lines;
                } else {
                    out.push(Token { tok: Tok::Name(word.to_string()), line });
                }
            }
            b'\'' | b'"' => {
                let (s, n, lines) = lex_string(&src[i..], false, line)?;
                out.push(Token { tok: Tok::Str(s), line });
                i += n;
                line += lines;
            }
            _ => {
                let rest = &src[i..];
                let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) else {
                    let ch = rest.chars().next().unwrap_or('?');
                    return Err(GuestError::syntax(line, format!("unexpected character {ch:?}")));
                };
                match *op {
                    "(" | "[" | "{" => {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return Err(GuestError::syntax(line, "brackets nested too deeply"));
                        }
                    }
                    ")" | "]" | "}" => depth = depth.saturating_sub(1),
                    _ => {}
                }
                out.push(Token { tok: Tok::Op(op), line });
                i += op.len();
            }
        }
    }
    if depth > 0 {
        return Err(GuestError::syntax(line, "unclosed bracket at end of file"));
    }
    out.push(Token { tok: Tok::Newline, line });
    out.push(Token { tok: Tok::Eof, line });
    Ok(out)
}

fn lex_number(s: &str, line: usize) -> Result<(Tok, usize)> {
    let b = s.as_bytes();
    let mut n = 0;
    while n < b.len() && (b[n].is_ascii_alphanumeric() || b[n] == b'.' || b[n] == b'_') {
        // exponent sign
        n += 1;
        if n < b.len()
            && (b[n] == b'+' || b[n] == b'-')
            && (b[n - 1] == b'e' || b[n - 1] == b'E')
            && !(s.starts_with("0x") || s.starts_with("0X"))
        {
            n += 1;
        }
    }
    let text = &s[..n];
    let bad = || GuestError::syntax(line, format!("invalid number {text:?}"));
    let t = text.trim_end_matches(['L', 'l']);
    let lower = t.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        Some(i64::from_str_radix(h, 16))
    } else if let Some(o) = lower.strip_prefix("0o") {
        Some(i64::from_str_radix(o, 8))
    } else if let Some(bn) = lower.strip_prefix("0b") {
        Some(i64::from_str_radix(bn, 2))
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit()) {
        Some(i64::from_str_radix(&lower[1..], 8)) // Python 2 octal: 0755
    } else if lower.bytes().all(|c| c.is_ascii_digit()) {
        Some(lower.parse::<i64>())
    } else {
        None
    };
    match int {
        Some(Ok(v)) => Ok((Tok::Int(v), n)),
        Some(Err(e)) => {
            if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
                Err(GuestError::syntax(line, format!("number {text} is too large")))
            } else {
                Err(bad())
            }
        }
        None => {
            if t.len() != text.len() {
                return Err(bad());
            }
            let f: f64 = lower.parse().map_err(|_| bad())?;
            if !f.is_finite() {
                return Err(bad());
            }
            Ok((Tok::Float(f), n))
        }
    }
}

/// Lexes one string literal starting at a quote. Returns (value, bytes consumed, newlines).
fn lex_string(s: &str, raw: bool, line: usize) -> Result<(String, usize, usize)> {
    let b = s.as_bytes();
    let q = b[0];
    let triple = b.len() >= 3 && b[1] == q && b[2] == q;
    let qlen = if triple { 3 } else { 1 };
    let mut i = qlen;
    let mut out = String::new();
    let mut lines = 0usize;
    let unterminated = |lines: usize| {
        GuestError::syntax(
            line,
            format!(
                "unterminated string (opened on line {line}{})",
                if lines > 0 { ", runs to the end of the file" } else { "" }
            ),
        )
    };
    loop {
        if i >= b.len() {
            return Err(unterminated(lines));
        }
        let c = b[i];
        if c == q && (!triple || (i + 2 < b.len() && b[i + 1] == q && b[i + 2] == q)) {
            return Ok((out, i + qlen, lines));
        }
        if c == b'\n' {
            if !triple {
                return Err(GuestError::syntax(line, "unterminated string: end of line inside a quoted string"));
            }
            lines += 1;
            out.push('\n');
            i += 1;
            continue;
        }
        if c == b'\\' && i + 1 < b.len() {
            let e = b[i + 1];
            if raw {
                // Raw strings keep the backslash, but an escaped quote does not end the string.
                if e == b'\n' {
                    lines += 1;
                }
                out.push('\\');
                let ch = s[i + 1..].chars().next().unwrap_or('\\');
                out.push(ch);
                i += 1 + ch.len_utf8();
                continue;
            }
            i += 2;
            match e {
                b'\n' => lines += 1,
                b'\r' => {
                    if i < b.len() && b[i] == b'\n' {
                        i += 1;
                    }
                    lines += 1;
                }
                b'\\' => out.push('\\'),
                b'\'' => out.push('\''),
                b'"' => out.push('"'),
                b'a' => out.push('\x07'),
                b'b' => out.push('\x08'),
                b'f' => out.push('\x0c'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'v' => out.push('\x0b'),
                b'x' => {
                    let hex = s.get(i..i + 2).filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                    let Some(hex) = hex else {
                        return Err(GuestError::syntax(line, "invalid \\x escape in string"));
                    };
                    let v = u8::from_str_radix(hex, 16).unwrap_or(b'?');
                    out.push(char::from(v));
                    i += 2;
                }
                b'0'..=b'7' => {
                    let mut v = u32::from(e - b'0');
                    let mut k = 0;
                    while k < 2 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                        v = v * 8 + u32::from(b[i] - b'0');
                        i += 1;
                        k += 1;
                    }
                    out.push(char::from_u32(v & 0xff).unwrap_or('?'));
                }
                _ => {
                    out.push('\\');
                    let ch = s[i - 1..].chars().next().unwrap_or('\\');
                    out.push(ch);
                    i += ch.len_utf8() - 1;
                }
            }
            continue;
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
}

pub(super) fn describe(t: &Tok) -> String {
    match t {
        Tok::Name(n) => format!("name {n:?}"),
        Tok::Int(i) => format!("number {i}"),
        Tok::Float(f) => format!("number {f}"),
        Tok::Str(_) => "a string".into(),
        Tok::Op(o) => format!("{o:?}"),
        Tok::Newline => "end of line".into(),
        Tok::Indent(_) => "indentation".into(),
        Tok::Eof => "end of file".into(),
    }
}
