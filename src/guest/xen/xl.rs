//! xl configuration files (`xl.cfg(5)`), with the libxlu grammar (`libxlu_cfg_l.l`,
//! `libxlu_cfg_y.y`):
//!
//! ```text
//! file       := stmt* assignment?
//! stmt       := assignment endstmt | endstmt
//! assignment := IDENT '=' value | IDENT '+=' value
//! endstmt    := NEWLINE | ';'
//! value      := STRING | NUMBER | '[' nl* (value nl* (',' nl* value nl*)* ','? nl*)? ']'
//! IDENT      := [a-z][._0-9a-z]*        NUMBER := [0-9][0-9a-fx]*   (strtol base 0)
//! STRING     := '…' | "…"  with \" \' \\ \a \b \f \n \r \t \v \xHH \NNN (base 10, as xl)
//! comment    := '#' to end of line
//! ```
//! Any of `+ - . ( ) :` outside a string means the file is Python (an xm config) and is
//! refused the way xl refuses it.

use crate::guest::error::{ErrorKind, GuestError, Result};
use crate::guest::model::Guest;
use crate::guest::xen::{self, parse_c_int, Dialect, Opts, XVal};

/// Deepest list nesting accepted.
const MAX_DEPTH: usize = 32;

/// Parses an xl config.
pub fn parse(text: &str) -> Result<Guest> {
    parse_with(text, &[])
}

/// Parses an xl config, then applies `set` (`KEY=VALUE`, the value in xl syntax or a bare
/// string) over it.
pub fn parse_with(text: &str, set: &[(String, String)]) -> Result<Guest> {
    let mut opts = parse_opts(text)?;
    for (k, v) in set {
        let val = parse_opts(&format!("{k} = {v}\n"))
            .ok()
            .and_then(|o| o.vals.into_iter().next().map(|(_, v, _)| v))
            .unwrap_or_else(|| XVal::Str(v.clone()));
        opts.vals.push((k.clone(), val, 0));
    }
    let mut g = xen::build(&opts, Dialect::Xl)?;
    g.finish();
    Ok(g)
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Number(String),
    Str(String),
    Eq,
    PlusEq,
    Comma,
    Open,
    Close,
    Semi,
    Newline,
    Eof,
}

fn python(line: usize, ch: char) -> GuestError {
    GuestError::new(
        ErrorKind::Syntax,
        format!(
            "unexpected {ch:?}: this config looks like it contains Python code, which xl does \
             not accept (\"Arbitrary Python is no longer supported\"); if it is an xm config, \
             use --source-type xm"
        ),
    )
    .at_line(line)
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'\n' => {
                out.push((Tok::Newline, line));
                line += 1;
                i += 1;
            }
            b'=' => {
                out.push((Tok::Eq, line));
                i += 1;
            }
            b'+' if b.get(i + 1) == Some(&b'=') => {
                out.push((Tok::PlusEq, line));
                i += 2;
            }
            b',' => {
                out.push((Tok::Comma, line));
                i += 1;
            }
            b'[' => {
                out.push((Tok::Open, line));
                i += 1;
            }
            b']' => {
                out.push((Tok::Close, line));
                i += 1;
            }
            b';' => {
                out.push((Tok::Semi, line));
                i += 1;
            }
            b'a'..=b'z' => {
                let s = i;
                while i < b.len()
                    && (b[i].is_ascii_lowercase() || b[i].is_ascii_digit() || b[i] == b'.' || b[i] == b'_')
                {
                    i += 1;
                }
                out.push((Tok::Ident(src[s..i].to_string()), line));
            }
            b'0'..=b'9' => {
                let s = i;
                while i < b.len() && (b[i].is_ascii_digit() || (b'a'..=b'f').contains(&b[i]) || b[i] == b'x') {
                    i += 1;
                }
                out.push((Tok::Number(src[s..i].to_string()), line));
            }
            b'\'' | b'"' => {
                let (s, n) = lex_string(&src[i..], line)?;
                out.push((Tok::Str(s), line));
                i += n;
            }
            // xl's likely_python set is `+ - . ( ) :`; `%`, `*` and `/` outside a string are
            // Python too (xl reports a bare syntax error for them).
            b'+' | b'-' | b'.' | b'(' | b')' | b':' | b'%' | b'*' | b'/' => return Err(python(line, c as char)),
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                let hint = if ch.is_ascii_uppercase() || ch == '_' { " (xl setting names are lower case)" } else { "" };
                return Err(GuestError::syntax(line, format!("unexpected character {ch:?}{hint}")));
            }
        }
    }
    out.push((Tok::Newline, line));
    out.push((Tok::Eof, line));
    Ok(out)
}

fn lex_string(s: &str, line: usize) -> Result<(String, usize)> {
    let b = s.as_bytes();
    let q = b[0];
    let mut i = 1;
    let mut out: Vec<u8> = Vec::new();
    loop {
        let Some(&c) = b.get(i) else {
            return Err(GuestError::syntax(line, "unterminated string at end of file"));
        };
        if c == b'\n' {
            return Err(GuestError::syntax(line, "unterminated string: end of line inside quotes"));
        }
        if c == q {
            return Ok((String::from_utf8_lossy(&out).into_owned(), i + 1));
        }
        if c == b'\\' {
            let Some(&e) = b.get(i + 1) else {
                return Err(GuestError::syntax(line, "unterminated string at end of file"));
            };
            i += 2;
            match e {
                b'"' | b'\'' | b'\\' => out.push(e),
                b'a' => out.push(7),
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'v' => out.push(11),
                b'x' => {
                    let h = s.get(i..i + 2).filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                    let Some(h) = h else {
                        return Err(GuestError::syntax(line, "invalid \\x escape"));
                    };
                    out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
                    i += 2;
                }
                b'0'..=b'9' => {
                    // xl's quirk: "\NNN" is read in base 10 (1-3 digits).
                    let mut v: u32 = u32::from(e - b'0');
                    let mut k = 1;
                    while k < 3 && i < b.len() && b[i].is_ascii_digit() {
                        v = v * 10 + u32::from(b[i] - b'0');
                        i += 1;
                        k += 1;
                    }
                    if v > 255 {
                        return Err(GuestError::syntax(line, "numeric escape out of range"));
                    }
                    out.push(v as u8);
                }
                b'\n' => return Err(GuestError::syntax(line, "unterminated string: newline in string")),
                other => return Err(GuestError::syntax(line, format!("invalid escape \\{} in string", other as char))),
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
}

struct P {
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

impl P {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].0
    }
    fn line(&self) -> usize {
        self.toks[self.pos.min(self.toks.len() - 1)].1
    }
    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn skip_nl(&mut self) {
        while matches!(self.peek(), Tok::Newline) {
            self.pos += 1;
        }
    }
    fn value(&mut self, depth: usize) -> Result<XVal> {
        if depth > MAX_DEPTH {
            return Err(GuestError::syntax(self.line(), "lists nested too deeply"));
        }
        let line = self.line();
        match self.bump() {
            Tok::Str(s) => Ok(XVal::Str(s)),
            Tok::Number(n) => Ok(match parse_c_int(&n) {
                Some(i) => XVal::Int(i),
                None => XVal::Str(n),
            }),
            Tok::Open => {
                let mut items = Vec::new();
                self.skip_nl();
                loop {
                    if matches!(self.peek(), Tok::Close) {
                        self.pos += 1;
                        return Ok(XVal::List(items));
                    }
                    items.push(self.value(depth + 1)?);
                    self.skip_nl();
                    match self.bump() {
                        Tok::Comma => self.skip_nl(),
                        Tok::Close => return Ok(XVal::List(items)),
                        other => {
                            return Err(GuestError::syntax(
                                self.line(),
                                format!("expected ',' or ']' in a list, found {}", describe(&other)),
                            ))
                        }
                    }
                }
            }
            other => Err(GuestError::syntax(
                line,
                format!("expected a value (string, number or list), found {}", describe(&other)),
            )),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("name {s:?}"),
        Tok::Number(n) => format!("number {n}"),
        Tok::Str(_) => "a string".into(),
        Tok::Eq => "'='".into(),
        Tok::PlusEq => "'+='".into(),
        Tok::Comma => "','".into(),
        Tok::Open => "'['".into(),
        Tok::Close => "']'".into(),
        Tok::Semi => "';'".into(),
        Tok::Newline => "end of line".into(),
        Tok::Eof => "end of file".into(),
    }
}

/// Parses the settings of an xl config, in order.
pub fn parse_opts(text: &str) -> Result<Opts> {
    let mut p = P { toks: lex(text)?, pos: 0 };
    let mut opts = Opts::default();
    loop {
        let line = p.line();
        match p.bump() {
            Tok::Eof => return Ok(opts),
            Tok::Newline | Tok::Semi => continue,
            Tok::Ident(name) => {
                let add = match p.bump() {
                    Tok::Eq => false,
                    Tok::PlusEq => true,
                    other => {
                        return Err(GuestError::syntax(
                            line,
                            format!("expected '=' or '+=' after {name:?}, found {}", describe(&other)),
                        ))
                    }
                };
                let v = p.value(0)?;
                match p.peek() {
                    Tok::Newline | Tok::Semi | Tok::Eof => {}
                    other => {
                        return Err(GuestError::syntax(
                            p.line(),
                            format!("expected end of line after the value of {name:?}, found {}", describe(other)),
                        ))
                    }
                }
                let v = if add {
                    match (opts.get(&name).cloned(), v) {
                        (Some(XVal::List(mut a)), XVal::List(b)) => {
                            a.extend(b);
                            XVal::List(a)
                        }
                        (Some(XVal::Str(a)), XVal::Str(b)) => XVal::Str(a + &b),
                        (None, v) => v,
                        (Some(_), _) => {
                            return Err(GuestError::invalid(format!(
                                "{name} += needs the same kind of value (list or string) as before"
                            ))
                            .at_line(line))
                        }
                    }
                } else {
                    v
                };
                opts.vals.push((name, v, line));
            }
            other => {
                return Err(GuestError::syntax(line, format!("expected a setting name, found {}", describe(&other))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        let o = parse_opts(
            "name = \"a\\x41\\065\" ; memory = 0x200\nvcpus=010 # octal\ndisk = [ 'x',\n  \"y\",\n]\nvif = [[ 'n' ], ]\ndisk += ['z']\nlast = 'no newline'",
        )
        .unwrap();
        assert_eq!(o.get("name"), Some(&XVal::Str("aAA".into())));
        assert_eq!(o.get("memory"), Some(&XVal::Int(512)));
        assert_eq!(o.get("vcpus"), Some(&XVal::Int(8)));
        assert_eq!(
            o.get("disk"),
            Some(&XVal::List(vec![XVal::Str("x".into()), XVal::Str("y".into()), XVal::Str("z".into())]))
        );
        assert_eq!(o.get("last"), Some(&XVal::Str("no newline".into())));
    }

    #[test]
    fn python_is_refused() {
        for src in ["name = 'VM%d' % 1\n", "memory = 256 + 256\n", "import os\n", "x = f(1)\n"] {
            let e = parse_opts(src).unwrap_err();
            assert!(e.to_string().contains("Python") || e.kind() == ErrorKind::Syntax, "{src}: {e}");
        }
        let e = parse_opts("Name = 'x'\n").unwrap_err();
        assert!(e.to_string().contains("lower case"), "{e}");
        let e = parse_opts("a = 1\nb = 'open\n").unwrap_err();
        assert_eq!(e.line(), Some(2));
        let deep = format!("a = {}{}\n", "[".repeat(100), "]".repeat(100));
        assert!(parse_opts(&deep).is_err());
    }
}
