//! xm / xend configuration files (`/etc/xen/NAME`): Python 2, evaluated by the restricted
//! literal evaluator in [`super::pyeval`], then mapped like `xm create` did.
//!
//! xm quirks kept: only `str`, `list`, `int` and `float` values take effect (booleans, tuples,
//! dicts and `None` are dropped — with a note here, silently in xm); numeric strings are
//! numbers; command-line variables (`--set NAME=VALUE`, xm's `NAME=VALUE`) win over the file.

use std::collections::BTreeMap;

use super::pyeval::{self, Value};
use crate::guest::error::{GuestError, Result};
use crate::guest::model::{Guest, Severity};
use crate::guest::xen::{self, Dialect, Opts, XVal};

/// Parses an xm config with no command-line variables.
pub fn parse(text: &str) -> Result<Guest> {
    parse_with(text, &[])
}

/// Parses an xm config; `set` are `NAME=VALUE` pairs as given to `xm create` (or `--set`).
pub fn parse_with(text: &str, set: &[(String, String)]) -> Result<Guest> {
    if text.trim_start().starts_with('<') {
        return Err(GuestError::unsupported("this is an XML (Xen-API) domain config, not an xm config"));
    }
    let mut fixed = BTreeMap::new();
    for (k, v) in set {
        fixed.insert(k.clone(), pyeval::parse_cli_value(v));
    }
    let ev = pyeval::evaluate(text, &fixed)?;
    // Code xva does not run may only decide names the conversion does not need.
    let mut unneeded = Vec::new();
    for (name, line, cause) in &ev.unknown {
        if xen::READ_KEYS.contains(&name.as_str()) {
            let msg = format!("{} (needed for `{name}`, line {line})", cause.message());
            let e = GuestError::new(cause.kind(), msg);
            return Err(match cause.line() {
                Some(l) => e.at_line(l),
                None => e.at_line(*line),
            });
        }
        unneeded.push(format!("{name} (line {line})"));
    }
    let mut opts = Opts::default();
    let mut dropped = Vec::new();
    for (name, value) in &ev.vars {
        let line = line_of_binding(text, name);
        match value {
            Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::List(_) => {
                opts.vals.push((name.clone(), to_xval(value), line));
            }
            other => dropped.push(format!("{name} ({})", other.type_name())),
        }
    }
    let mut g = xen::build(&opts, Dialect::Xm)?;
    for (line, remark) in ev.remarks {
        g.note(Severity::Info, format!("line {line}: {remark}"));
    }
    if !unneeded.is_empty() {
        g.note(
            Severity::Info,
            format!("set by code xva does not run, and not needed for the conversion: {}", unneeded.join(", ")),
        );
    }
    if !dropped.is_empty() {
        g.note(
            Severity::Warning,
            format!("ignored like xm ignores them (only str, list, int and float take effect): {}", dropped.join(", ")),
        );
    }
    g.finish();
    Ok(g)
}

fn to_xval(v: &Value) -> XVal {
    match v {
        Value::Str(s) => XVal::Str(s.clone()),
        Value::Int(i) => XVal::Int(*i),
        Value::Float(f) => XVal::Float(*f),
        Value::Bool(b) => XVal::Int(i64::from(*b)),
        Value::None => XVal::Str(String::new()),
        Value::List(l) | Value::Tuple(l) => XVal::List(l.iter().map(to_xval).collect()),
        Value::Dict(_) => XVal::Str(v.repr()),
    }
}

/// The line of the last top-level `name =` in the text (for messages), 0 if not found.
fn line_of_binding(text: &str, name: &str) -> usize {
    let mut found = 0;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim_start();
        if l.len() != t.len() {
            continue;
        }
        if let Some(rest) = t.strip_prefix(name) {
            let rest = rest.trim_start();
            if rest.starts_with('=') && !rest.starts_with("==") || rest.starts_with("+=") {
                found = i + 1;
            }
        }
    }
    found
}
