//! Python 2 `str % args` formatting: positional and `%(name)` conversions, flags, width and
//! precision, bounded in size.

use std::iter::Peekable;
use std::str::Chars;

use super::{Value, MAX_STR};
use crate::guest::error::{GuestError, Result};

/// Python 2 `str % args`.
pub(super) fn percent_format(fmt: &str, args: &Value, line: usize) -> Result<String> {
    let list: Vec<Value> = match args {
        Value::Tuple(v) => v.clone(),
        other => vec![other.clone()],
    };
    let dict = match args {
        Value::Dict(d) => Some(d),
        _ => None,
    };
    let mut next = 0usize;
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let bad = |m: &str| GuestError::invalid(format!("% formatting: {m}")).at_line(line);
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // %(name)
        let mut keyed: Option<Value> = None;
        if chars.peek() == Some(&'(') {
            chars.next();
            let mut key = String::new();
            loop {
                match chars.next() {
                    Some(')') => break,
                    Some(ch) => key.push(ch),
                    None => return Err(bad("unterminated %(name)")),
                }
            }
            let Some(d) = dict else {
                return Err(bad("format requires a mapping"));
            };
            let v = d
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if *s == key))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| bad(&format!("key {key:?} not in the mapping")))?;
            keyed = Some(v);
        }
        let flags = take_while(&mut chars, |f| "-+ #0".contains(*f));
        let width = take_while(&mut chars, char::is_ascii_digit);
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let p = take_while(&mut chars, char::is_ascii_digit);
            prec = Some(p.parse().map_err(|_| bad("bad precision"))?);
        }
        // length modifiers are accepted and ignored
        while matches!(chars.peek(), Some('l' | 'h' | 'L')) {
            chars.next();
        }
        let Some(conv) = chars.next() else {
            return Err(bad("incomplete format"));
        };
        if conv == '%' {
            out.push('%');
            continue;
        }
        let width: usize = if width.is_empty() { 0 } else { width.parse().map_err(|_| bad("bad width"))? };
        if width > 4096 || prec.is_some_and(|p| p > 4096) {
            return Err(bad("width or precision too large"));
        }
        let arg = match keyed {
            Some(v) => v,
            None => {
                let v = list.get(next).cloned().ok_or_else(|| bad("not enough arguments for format string"))?;
                next += 1;
                v
            }
        };
        let body = match conv {
            's' => {
                let s = arg.to_py_str();
                match prec {
                    Some(p) => s.chars().take(p).collect(),
                    None => s,
                }
            }
            'r' => arg.repr(),
            'd' | 'i' | 'u' | 'x' | 'X' | 'o' => {
                let n = match &arg {
                    Value::Int(i) => *i,
                    Value::Bool(b) => i64::from(*b),
                    Value::Float(f) if f.is_finite() && f.abs() < 9.2e18 => f.trunc() as i64,
                    other => {
                        return Err(bad(&format!("%{conv} format: a number is required, not {}", other.type_name())))
                    }
                };
                let mag = n.unsigned_abs();
                let digits = match conv {
                    'x' => format!("{mag:x}"),
                    'X' => format!("{mag:X}"),
                    'o' => format!("{mag:o}"),
                    _ => mag.to_string(),
                };
                let sign = if n < 0 {
                    "-"
                } else if flags.contains('+') {
                    "+"
                } else {
                    ""
                };
                if flags.contains('0') && !flags.contains('-') && width > sign.len() + digits.len() {
                    format!("{sign}{}{digits}", "0".repeat(width - sign.len() - digits.len()))
                } else {
                    format!("{sign}{digits}")
                }
            }
            'f' | 'F' | 'e' | 'E' | 'g' | 'G' => {
                let f = match &arg {
                    Value::Int(i) => *i as f64,
                    Value::Float(f) => *f,
                    Value::Bool(b) => f64::from(u8::from(*b)),
                    other => {
                        return Err(bad(&format!("%{conv} format: a number is required, not {}", other.type_name())))
                    }
                };
                let p = prec.unwrap_or(6);
                match conv {
                    'e' | 'E' => format!("{f:.p$e}"),
                    'g' | 'G' => format!("{f}"),
                    _ => format!("{f:.p$}"),
                }
            }
            'c' => match &arg {
                Value::Int(i) => char::from_u32(u32::try_from(*i).unwrap_or(0xfffd)).unwrap_or('\u{fffd}').to_string(),
                Value::Str(s) if s.chars().count() == 1 => s.clone(),
                _ => return Err(bad("%c requires an int or a character")),
            },
            other => return Err(bad(&format!("unsupported format character {other:?}"))),
        };
        let len = body.chars().count();
        if len < width {
            let pad = " ".repeat(width - len);
            if flags.contains('-') {
                out.push_str(&body);
                out.push_str(&pad);
            } else {
                out.push_str(&pad);
                out.push_str(&body);
            }
        } else {
            out.push_str(&body);
        }
        if out.len() > MAX_STR {
            return Err(GuestError::invalid("string too long").at_line(line));
        }
    }
    if dict.is_none() && next < list.len() {
        return Err(bad("not all arguments converted during string formatting"));
    }
    Ok(out)
}

/// Takes the leading characters of `chars` that satisfy `keep`.
fn take_while(chars: &mut Peekable<Chars<'_>>, keep: impl Fn(&char) -> bool) -> String {
    std::iter::from_fn(|| chars.next_if(&keep)).collect()
}
