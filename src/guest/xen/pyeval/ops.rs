//! Binary operators on [`Value`]s, with Python 2 semantics (int `/` floors) and checked
//! arithmetic: an overflow is an error, never a panic or a wrap.

use super::format::percent_format;
use super::{refuse, Value, MAX_STR};
use crate::guest::error::{GuestError, Result};

pub(super) fn overflow(line: usize) -> GuestError {
    GuestError::invalid("integer overflow in arithmetic").at_line(line)
}

pub(super) fn type_err(line: usize, op: &str, a: &Value, b: Option<&Value>) -> GuestError {
    let msg = match b {
        Some(b) => format!("unsupported operand types for {op}: {} and {}", a.type_name(), b.type_name()),
        None => format!("bad operand type for {op}: {}", a.type_name()),
    };
    GuestError::invalid(msg).at_line(line)
}

fn as_num(v: &Value) -> Option<Value> {
    match v {
        Value::Int(_) | Value::Float(_) => Some(v.clone()),
        Value::Bool(b) => Some(Value::Int(i64::from(*b))),
        _ => None,
    }
}

pub(super) fn binop(op: &str, a: Value, b: Value, line: usize) -> Result<Value> {
    // String / sequence operations first.
    match (op, &a, &b) {
        ("+", Value::Str(x), Value::Str(y)) => {
            if x.len() + y.len() > MAX_STR {
                return Err(GuestError::invalid("string too long").at_line(line));
            }
            return Ok(Value::Str(format!("{x}{y}")));
        }
        ("+", Value::List(x), Value::List(y)) => {
            let mut v = x.clone();
            v.extend(y.iter().cloned());
            return Ok(Value::List(v));
        }
        ("+", Value::Tuple(x), Value::Tuple(y)) => {
            let mut v = x.clone();
            v.extend(y.iter().cloned());
            return Ok(Value::Tuple(v));
        }
        ("*", Value::Str(_) | Value::List(_), Value::Int(_)) | ("*", Value::Int(_), Value::Str(_) | Value::List(_)) => {
            let (seq, n) = match (&a, &b) {
                (Value::Int(n), s) | (s, Value::Int(n)) => (s.clone(), *n),
                _ => (Value::None, 0),
            };
            let n = usize::try_from(n.max(0)).unwrap_or(0);
            return match seq {
                Value::Str(s) => {
                    if s.len().saturating_mul(n) > MAX_STR {
                        return Err(GuestError::invalid("string too long").at_line(line));
                    }
                    Ok(Value::Str(s.repeat(n)))
                }
                Value::List(l) => {
                    if l.len().saturating_mul(n) > 65536 {
                        return Err(GuestError::invalid("list too long").at_line(line));
                    }
                    let mut out = Vec::new();
                    for _ in 0..n {
                        out.extend(l.iter().cloned());
                    }
                    Ok(Value::List(out))
                }
                _ => Err(type_err(line, op, &a, Some(&b))),
            };
        }
        ("%", Value::Str(fmt), _) => return percent_format(fmt, &b, line).map(Value::Str),
        _ => {}
    }
    let (Some(x), Some(y)) = (as_num(&a), as_num(&b)) else {
        return Err(type_err(line, op, &a, Some(&b)));
    };
    match (x, y) {
        (Value::Int(x), Value::Int(y)) => int_op(op, x, y, line),
        (x, y) => {
            let f = |v: Value| match v {
                Value::Int(i) => i as f64,
                Value::Float(f) => f,
                _ => 0.0,
            };
            let (x, y) = (f(x), f(y));
            let r = match op {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" | "//" | "%" if y == 0.0 => return Err(GuestError::invalid("float division by zero").at_line(line)),
                "/" => x / y,
                "//" => (x / y).floor(),
                "%" => x - y * (x / y).floor(),
                "**" => x.powf(y),
                _ => return Err(refuse(line, &format!("the `{op}` operator"))),
            };
            if !r.is_finite() {
                return Err(overflow(line));
            }
            Ok(Value::Float(r))
        }
    }
}

fn int_op(op: &str, x: i64, y: i64, line: usize) -> Result<Value> {
    let zero = || GuestError::invalid("integer division or modulo by zero").at_line(line);
    let r = match op {
        "+" => x.checked_add(y),
        "-" => x.checked_sub(y),
        "*" => x.checked_mul(y),
        // Python 2: int / int floors.
        "/" | "//" => {
            if y == 0 {
                return Err(zero());
            }
            i64::try_from(floor_div(x as i128, y as i128)).ok()
        }
        "%" => {
            if y == 0 {
                return Err(zero());
            }
            let q = floor_div(x as i128, y as i128);
            i64::try_from(x as i128 - q * y as i128).ok()
        }
        "**" => {
            if y < 0 {
                return Ok(Value::Float((x as f64).powf(y as f64)));
            }
            u32::try_from(y).ok().and_then(|e| x.checked_pow(e))
        }
        _ => return Err(refuse(line, &format!("the `{op}` operator"))),
    };
    r.map(Value::Int).ok_or_else(|| overflow(line))
}

fn floor_div(x: i128, y: i128) -> i128 {
    let q = x / y;
    if (x % y != 0) && ((x < 0) != (y < 0)) {
        q - 1
    } else {
        q
    }
}
