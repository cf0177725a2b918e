//! What xm, xl and SXP configs share: option values ([`XVal`], [`Opts`]), C-style integers, and
//! the pieces in the files below.
//!
//! ```text
//!   xm.rs (Python literals, via pyeval/) ─┐
//!   xl.rs (libxlu grammar)               ─┴─► Opts { key → XVal } ──mapping::build──► Guest
//!   sxp.rs ── its own keys ──────────────────── uses disk::parse_xm_disk / vif::parse_vif ──┘
//! ```
//!
//! - `xm.rs`, `xl.rs`, `sxp.rs`: one parser per config dialect; `pyeval/`: the restricted
//!   Python-literal evaluator behind xm;
//! - `disk.rs`: the disk-spec grammars (xm `phy:`/`file:`/`tap:` unames, xl's key=value spec)
//!   and how a parsed entry becomes a disk or CD drive;
//! - `vif.rs`: the vif spec;
//! - `mapping.rs`: Xen option names → the [`Guest`](crate::guest::Guest) model.
//!
//! The public paths stay flat (`xen::parse_xl_disk`, `xen::build`, ...): the files are an
//! implementation detail.

mod disk;
mod mapping;
pub mod pyeval;
pub mod sxp;
mod vif;
pub mod xl;
pub mod xm;

pub use disk::{add_disk, controller_of, parse_xl_disk, parse_xm_disk, DiskEntry};
pub use mapping::{build, READ_KEYS};
pub use vif::parse_vif;

use super::error::{GuestError, Result};
use super::model::MIB;

/// A config value after the dialect's own evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum XVal {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float (xm only).
    Float(f64),
    /// A list.
    List(Vec<XVal>),
}

impl XVal {
    fn describe(&self) -> String {
        match self {
            XVal::Str(s) => format!("{s:?}"),
            XVal::Int(i) => i.to_string(),
            XVal::Float(f) => f.to_string(),
            XVal::List(_) => "a list".into(),
        }
    }
}

/// The options of a config, in file order, with the line each was set on.
#[derive(Clone, Debug, Default)]
pub struct Opts {
    /// (key, value, line).
    pub vals: Vec<(String, XVal, usize)>,
}

impl Opts {
    /// The value of `key` (the last assignment wins).
    pub fn get(&self, key: &str) -> Option<&XVal> {
        self.entry(key).map(|(v, _)| v)
    }

    fn entry(&self, key: &str) -> Option<(&XVal, usize)> {
        self.vals.iter().rev().find(|(k, _, _)| k == key).map(|(_, v, l)| (v, *l))
    }

    fn err(&self, key: &str, msg: String) -> GuestError {
        let e = GuestError::invalid(format!("{key}: {msg}"));
        match self.line_of(key) {
            Some(l) => e.at_line(l),
            None => e,
        }
    }

    /// A string option (numbers are converted, as xm and xl both allow).
    pub fn str(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(XVal::Str(s)) => Ok(Some(s.clone())),
            Some(XVal::Int(i)) => Ok(Some(i.to_string())),
            Some(XVal::Float(f)) => Ok(Some(f.to_string())),
            Some(XVal::List(_)) => Err(self.err(key, "expected a string, found a list".into())),
        }
    }

    /// An integer option; numeric strings accepted (`memory = "512"`), with strtol base 0.
    pub fn int(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(XVal::Int(i)) => Ok(Some(*i)),
            Some(XVal::Float(f)) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9e15 => Ok(Some(*f as i64)),
            Some(XVal::Str(s)) => {
                parse_c_int(s.trim()).map(Some).ok_or_else(|| self.err(key, format!("expected a number, found {s:?}")))
            }
            Some(other) => Err(self.err(key, format!("expected a number, found {}", other.describe()))),
        }
    }

    /// A boolean option: 1/0, yes/no, true/false, on/off.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(XVal::Int(i)) => Ok(Some(*i != 0)),
            Some(XVal::Float(f)) => Ok(Some(*f != 0.0)),
            Some(XVal::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "1" | "yes" | "y" | "true" | "on" => Ok(Some(true)),
                "0" | "no" | "n" | "false" | "off" | "" => Ok(Some(false)),
                other => match parse_c_int(other) {
                    Some(i) => Ok(Some(i != 0)),
                    None => Err(self.err(key, format!("expected a boolean, found {s:?}"))),
                },
            },
            Some(XVal::List(l)) => Ok(Some(!l.is_empty())),
        }
    }

    /// A list of strings; a single string counts as a one-element list.
    pub fn str_list(&self, key: &str) -> Result<Vec<String>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(XVal::List(items)) => items
                .iter()
                .map(|v| match v {
                    XVal::Str(s) => Ok(s.clone()),
                    XVal::Int(i) => Ok(i.to_string()),
                    other => Err(self.err(key, format!("list items must be strings, found {}", other.describe()))),
                })
                .collect(),
            Some(XVal::Str(s)) => Ok(vec![s.clone()]),
            Some(other) => Err(self.err(key, format!("expected a list, found {}", other.describe()))),
        }
    }

    fn line_of(&self, key: &str) -> Option<usize> {
        self.entry(key).map(|(_, l)| l).filter(|&l| l > 0)
    }
}

/// C `strtol(s, NULL, 0)` for a whole string: `0x` hex, leading-`0` octal, optional sign.
pub fn parse_c_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if body.is_empty() {
        return None;
    }
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(&body[1..], 8).ok()?
    } else {
        body.parse::<i64>().ok()?
    };
    if neg {
        v.checked_neg()
    } else {
        Some(v)
    }
}

/// Which Xen tool's rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// xm / xend.
    Xm,
    /// xl.
    Xl,
}

/// Bytes from MiB, checked.
pub fn mib(key: &str, v: i64) -> Result<u64> {
    if v <= 0 {
        return Err(GuestError::invalid(format!("{key} must be positive, found {v}")));
    }
    (v as u64)
        .checked_mul(MIB)
        .filter(|&b| b <= (1u64 << 52))
        .ok_or_else(|| GuestError::invalid(format!("{key} = {v} MiB is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_ints() {
        assert_eq!(parse_c_int("0x10"), Some(16));
        assert_eq!(parse_c_int("010"), Some(8));
        assert_eq!(parse_c_int("-5"), Some(-5));
        assert_eq!(parse_c_int("5k"), None);
    }
}
