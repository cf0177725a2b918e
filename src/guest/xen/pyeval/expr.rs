//! Expressions: literals, names bound earlier, `+ - * / // % **` and unary minus, with
//! Python's precedence; everything else is refused with the construct named.

use super::lexer::{describe, Tok};
use super::ops::{binop, overflow, type_err};
use super::{refuse, Eval, Value, MAX_DEPTH, MAX_STR};
use crate::guest::error::{GuestError, Result};

impl Eval<'_> {
    // Expression grammar (Python precedence, the subset we evaluate):
    //   expr   := term (('+'|'-') term)*
    //   term   := unary (('*'|'/'|'//'|'%') unary)*
    //   unary  := ('-'|'+') unary | power
    //   power  := atom ['**' unary]
    pub(super) fn expr(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(GuestError::syntax(self.line(), "expression nested too deeply"));
        }
        let line = self.line();
        if let Tok::Name(n) = self.peek() {
            if matches!(n.as_str(), "lambda" | "not") {
                return Err(refuse(line, &format!("the `{n}` operator")));
            }
        }
        let mut v = self.term(depth + 1)?;
        loop {
            let op = match self.peek() {
                Tok::Op(o @ ("+" | "-")) => *o,
                Tok::Op(o @ ("==" | "!=" | "<" | ">" | "<=" | ">=" | "<>" | "&" | "|" | "^" | "<<" | ">>")) => {
                    return Err(refuse(self.line(), &format!("the `{o}` operator")));
                }
                Tok::Name(n) if matches!(n.as_str(), "if" | "and" | "or" | "in" | "is" | "not" | "for") => {
                    return Err(refuse(self.line(), &format!("the `{n}` operator")));
                }
                _ => return Ok(v),
            };
            self.pos += 1;
            let r = self.term(depth + 1)?;
            v = binop(op, v, r, line)?;
        }
    }

    fn term(&mut self, depth: usize) -> Result<Value> {
        let line = self.line();
        let mut v = self.unary(depth + 1)?;
        loop {
            let op = match self.peek() {
                Tok::Op(o @ ("*" | "/" | "//" | "%")) => *o,
                _ => return Ok(v),
            };
            self.pos += 1;
            let r = self.unary(depth + 1)?;
            v = binop(op, v, r, line)?;
        }
    }

    fn unary(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(GuestError::syntax(self.line(), "expression nested too deeply"));
        }
        let line = self.line();
        if self.eat_op("-") {
            let v = self.unary(depth + 1)?;
            return match v {
                Value::Int(i) => i.checked_neg().map(Value::Int).ok_or_else(|| overflow(line)),
                Value::Float(f) => Ok(Value::Float(-f)),
                Value::Bool(b) => Ok(Value::Int(-i64::from(b))),
                other => Err(type_err(line, "unary -", &other, None)),
            };
        }
        if self.eat_op("+") {
            let v = self.unary(depth + 1)?;
            return match v {
                Value::Int(_) | Value::Float(_) => Ok(v),
                Value::Bool(b) => Ok(Value::Int(i64::from(b))),
                other => Err(type_err(line, "unary +", &other, None)),
            };
        }
        if self.eat_op("~") {
            return Err(refuse(line, "the `~` operator"));
        }
        let base = self.atom(depth + 1)?;
        if self.eat_op("**") {
            let e = self.unary(depth + 1)?;
            return binop("**", base, e, line);
        }
        Ok(base)
    }

    fn atom(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(GuestError::syntax(self.line(), "expression nested too deeply"));
        }
        let line = self.line();
        let v = match self.next() {
            Tok::Int(i) => Value::Int(i),
            Tok::Float(f) => Value::Float(f),
            Tok::Str(s) => {
                let mut s = s;
                while let Tok::Str(more) = self.peek().clone() {
                    self.pos += 1;
                    s.push_str(&more);
                    if s.len() > MAX_STR {
                        return Err(GuestError::invalid("string too long").at_line(line));
                    }
                }
                Value::Str(s)
            }
            Tok::Name(n) => {
                if matches!(self.peek(), Tok::Op("(")) {
                    return Err(refuse(line, &format!("a call of {n}()")));
                }
                self.lookup(&n, line)?
            }
            Tok::Op("[") => {
                let items = self.items("]", depth)?;
                Value::List(items)
            }
            Tok::Op("(") => {
                if self.eat_op(")") {
                    Value::Tuple(Vec::new())
                } else {
                    let first = self.expr(depth + 1)?;
                    if self.eat_op(")") {
                        first
                    } else if self.eat_op(",") {
                        let mut items = vec![first];
                        items.extend(self.items(")", depth)?);
                        Value::Tuple(items)
                    } else {
                        return Err(GuestError::syntax(
                            self.line(),
                            format!("expected ')' or ',', found {}", describe(self.peek())),
                        ));
                    }
                }
            }
            Tok::Op("{") => {
                let mut pairs = Vec::new();
                loop {
                    if self.eat_op("}") {
                        break;
                    }
                    let k = self.expr(depth + 1)?;
                    self.expect_op(":")?;
                    let v = self.expr(depth + 1)?;
                    pairs.push((k, v));
                    if !self.eat_op(",") {
                        self.expect_op("}")?;
                        break;
                    }
                }
                Value::Dict(pairs)
            }
            Tok::Op("`") => return Err(refuse(line, "backquote repr")),
            other => return Err(GuestError::syntax(line, format!("expected a value, found {}", describe(&other)))),
        };
        // Postfix forms we do not evaluate.
        match self.peek() {
            Tok::Op("(") => Err(refuse(line, "a call")),
            Tok::Op(".") => {
                let what = match self.toks.get(self.pos + 1).map(|t| &t.tok) {
                    Some(Tok::Name(m)) => format!("the method or attribute .{m}"),
                    _ => "attribute access".to_string(),
                };
                Err(refuse(line, &what))
            }
            Tok::Op("[") => Err(refuse(line, "subscripting or slicing")),
            _ => Ok(v),
        }
    }

    /// Comma-separated expressions up to `close` (trailing comma allowed).
    fn items(&mut self, close: &str, depth: usize) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        loop {
            if self.eat_op(close) {
                return Ok(out);
            }
            out.push(self.expr(depth + 1)?);
            if matches!(self.peek(), Tok::Name(n) if n == "for") {
                return Err(refuse(self.line(), "a list comprehension"));
            }
            if !self.eat_op(",") {
                self.expect_op(close)?;
                return Ok(out);
            }
        }
    }
}
