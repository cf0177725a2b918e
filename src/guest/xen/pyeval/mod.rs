//! A restricted evaluator for the Python 2 that xm/xend configs are written in.
//!
//! xm ran `/etc/xen/NAME` with `execfile`; we never execute it. What is evaluated: assignments
//! (`a = …`, `a = b = …`, `a += …`) of literals — strings in every quoting (single, double,
//! triple, raw/unicode prefixes, adjacent concatenation, `\` continuation), ints (decimal, hex,
//! Python 2 octal `0755`, `0o755`, `L` suffix), floats, `True`/`False`/`None`, lists, tuples,
//! dicts — names bound earlier in the file, `%` formatting, `+ - * / // % **` and unary minus.
//! Code is never run: `import`, compound statements (`if`, `for`…), `def` blocks and calls are
//! skipped, and the names they could set become *unknown* ([`Evaluated::unknown`]); the caller
//! refuses the config only if it needs one of them, with the line and the construct. A variable
//! given with `--set NAME=VALUE` (xm's `xm create NAME=VALUE`, also what `xm_vars.var` asks for)
//! wins over the file. `raise`, `exec`, `globals()` and friends, item/attribute assignments, and
//! calls when a skipped function uses `global` are refused outright.
//!
//! Recursion is bounded ([`MAX_DEPTH`]) and every number is checked, so no input panics.
//!
//! ```text
//!   text ──lexer.rs──► tokens ──stmt.rs──► Evaluated { vars, remarks, unknown }
//!                                  │ right-hand sides
//!                                  └──► expr.rs ──► ops.rs (+ - * / // % **) ──► format.rs (str % args)
//! ```
//! The evaluator's state (token cursor, environment) and the public entry points are here.

use std::collections::BTreeMap;

use crate::guest::error::{ErrorKind, GuestError, Result};

mod expr;
mod format;
mod lexer;
mod ops;
mod stmt;
#[cfg(test)]
mod tests;

use lexer::{describe, lex, Tok, Token};

/// Deepest nesting of expressions / brackets accepted.
pub const MAX_DEPTH: usize = 64;
/// Longest string a `*` repetition or `%` format may build.
const MAX_STR: usize = 1 << 20;

/// A Python value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `int` / `long` (bounded to i64 here).
    Int(i64),
    /// `float`.
    Float(f64),
    /// `str`.
    Str(String),
    /// `bool`.
    Bool(bool),
    /// `None`.
    None,
    /// `list`.
    List(Vec<Value>),
    /// `tuple`.
    Tuple(Vec<Value>),
    /// `dict` (insertion order).
    Dict(Vec<(Value, Value)>),
}

impl Value {
    /// Python's type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bool(_) => "bool",
            Value::None => "NoneType",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
        }
    }

    /// `str()` of the value.
    pub fn to_py_str(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Float(f) => py_float(*f),
            Value::Str(s) => s.clone(),
            Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            Value::None => "None".into(),
            other => other.repr(),
        }
    }

    /// `repr()` of the value.
    pub fn repr(&self) -> String {
        match self {
            Value::Str(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
            Value::List(v) => format!("[{}]", v.iter().map(Value::repr).collect::<Vec<_>>().join(", ")),
            Value::Tuple(v) if v.len() == 1 => format!("({},)", v[0].repr()),
            Value::Tuple(v) => format!("({})", v.iter().map(Value::repr).collect::<Vec<_>>().join(", ")),
            Value::Dict(v) => format!(
                "{{{}}}",
                v.iter().map(|(k, x)| format!("{}: {}", k.repr(), x.repr())).collect::<Vec<_>>().join(", ")
            ),
            other => other.to_py_str(),
        }
    }
}

fn py_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// The outcome of evaluating a file: the names bound at the end, in first-binding order, and
/// things worth a note.
#[derive(Debug, Default)]
pub struct Evaluated {
    /// Names and values, in order of first binding.
    pub vars: Vec<(String, Value)>,
    /// (line, remark) for skipped constructs.
    pub remarks: Vec<(usize, String)>,
    /// Names whose value depends on code xva does not run: (name, line of the assignment,
    /// why). Harmless unless the caller needs the name; then the cause is the error to report.
    pub unknown: Vec<(String, usize, GuestError)>,
}

impl Evaluated {
    /// The value bound to `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

// ---------------------------------------------------------------------------------------------
// The evaluator's state: a token cursor and the environment. Statements are in `stmt.rs`,
// expressions in `expr.rs`, operators in `ops.rs`, `%` formatting in `format.rs`.

struct Eval<'a> {
    toks: Vec<Token>,
    pos: usize,
    env: BTreeMap<String, Value>,
    order: Vec<String>,
    /// Names supplied on the command line: they win over the file.
    fixed: &'a BTreeMap<String, Value>,
    remarks: Vec<(usize, String)>,
    /// Names of functions defined (and skipped).
    functions: Vec<String>,
    /// A skipped function body contains `global`: a call could rebind names.
    defs_with_global: bool,
    /// Names whose value is unknown: name → (assignment line, root cause).
    poisoned: BTreeMap<String, (usize, GuestError)>,
}

/// A copy of an error (GuestError is not Clone: it may carry a boxed source).
fn copy_err(e: &GuestError) -> GuestError {
    let c = GuestError::new(e.kind(), e.message());
    match e.line() {
        Some(l) => c.at_line(l),
        None => c,
    }
}

/// What to say when refusing.
const HOW: &str = "xva evaluates literals only; supply the value with --set NAME=VALUE, \
    or give a copy of the config with the code replaced by literal values";

fn refuse(line: usize, construct: &str) -> GuestError {
    GuestError::new(ErrorKind::Refused, format!("{construct} needs a Python interpreter; {HOW}")).at_line(line)
}

/// Errors that only make the assigned names unknown (the file is still well-formed).
fn recoverable(e: &GuestError) -> bool {
    matches!(e.kind(), ErrorKind::Refused | ErrorKind::Invalid)
}

/// Evaluates `src`. `fixed` are command-line variables (`--set`), which win over the file.
pub fn evaluate(src: &str, fixed: &BTreeMap<String, Value>) -> Result<Evaluated> {
    let toks = lex(src)?;
    let mut ev = Eval {
        toks,
        pos: 0,
        env: BTreeMap::new(),
        order: Vec::new(),
        fixed,
        remarks: Vec::new(),
        functions: Vec::new(),
        defs_with_global: false,
        poisoned: BTreeMap::new(),
    };
    for (k, v) in fixed {
        ev.env.insert(k.clone(), v.clone());
        ev.order.push(k.clone());
    }
    ev.file()?;
    let vars = ev.order.iter().filter_map(|n| ev.env.get(n).map(|v| (n.clone(), v.clone()))).collect();
    let mut unknown: Vec<(String, usize, GuestError)> =
        ev.poisoned.iter().map(|(n, (l, e))| (n.clone(), *l, copy_err(e))).collect();
    unknown.sort_by_key(|(_, l, _)| *l);
    Ok(Evaluated { vars, remarks: ev.remarks, unknown })
}

impl Eval<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].tok
    }
    fn line(&self) -> usize {
        self.toks[self.pos.min(self.toks.len() - 1)].line
    }
    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Tok::Op(o) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_op(&mut self, op: &str) -> Result<()> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(GuestError::syntax(self.line(), format!("expected {op:?}, found {}", describe(self.peek()))))
        }
    }

    /// Marks `name` as having a value xva does not know, because of `cause`.
    fn poison(&mut self, name: String, line: usize, cause: GuestError) {
        if self.fixed.contains_key(&name) {
            return;
        }
        self.env.remove(&name);
        self.poisoned.insert(name, (line, cause));
    }

    fn bind(&mut self, name: String, v: Value) {
        if self.fixed.contains_key(&name) {
            return; // command line wins, as with `xm create NAME=VALUE`
        }
        self.poisoned.remove(&name);
        if !self.env.contains_key(&name) {
            self.order.push(name.clone());
        }
        self.env.insert(name, v);
    }

    fn lookup(&self, name: &str, line: usize) -> Result<Value> {
        if let Some(v) = self.env.get(name) {
            return Ok(v.clone());
        }
        if let Some((_, cause)) = self.poisoned.get(name) {
            return Err(copy_err(cause));
        }
        match name {
            "True" => Ok(Value::Bool(true)),
            "False" => Ok(Value::Bool(false)),
            "None" => Ok(Value::None),
            "xm_vars" | "xm_file" | "xm_help" | "os" | "sys" => Err(refuse(line, &format!("using `{name}`"))),
            _ if self.functions.iter().any(|f| f == name) => Err(refuse(line, &format!("using the function `{name}`"))),
            _ => Err(GuestError::new(
                ErrorKind::Invalid,
                format!(
                    "name {name:?} is not defined earlier in the file; if `xm create` was given \
                     it on its command line, pass --set {name}=VALUE"
                ),
            )
            .at_line(line)),
        }
    }
}

/// Parses a `--set` value: a Python literal if it is one, else the raw text as a string.
pub fn parse_cli_value(text: &str) -> Value {
    let empty = BTreeMap::new();
    if let Ok(e) = evaluate(&format!("__v = {text}\n"), &empty) {
        if let Some(v) = e.get("__v") {
            return v.clone();
        }
    }
    Value::Str(text.to_string())
}
