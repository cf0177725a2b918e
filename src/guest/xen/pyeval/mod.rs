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

use std::collections::BTreeMap;

use crate::guest::error::{ErrorKind, GuestError, Result};

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
// Lexer

#[derive(Clone, Debug, PartialEq)]
enum Tok {
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
struct Token {
    tok: Tok,
    line: usize,
}

const OPS: &[&str] = &[
    "**=", "//=", ">>=", "<<=", "**", "//", "==", "!=", "<=", ">=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=",
    "<<", ">>", "<>", "+", "-", "*", "/", "%", "(", ")", "[", "]", "{", "}", ",", ":", ".", ";", "=", "<", ">", "&",
    "|", "^", "~", "@", "`",
];

fn lex(src: &str) -> Result<Vec<Token>> {
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

// ---------------------------------------------------------------------------------------------
// Parser + evaluator

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

    fn file(&mut self) -> Result<()> {
        loop {
            match self.peek().clone() {
                Tok::Eof => return Ok(()),
                Tok::Newline => {
                    self.pos += 1;
                }
                Tok::Indent(col) => {
                    self.pos += 1;
                    if col > 0 {
                        return Err(GuestError::syntax(
                            self.line(),
                            "unexpected indentation (only top-level assignments are read)",
                        ));
                    }
                    self.statement_line()?;
                }
                _ => self.statement_line()?,
            }
        }
    }

    /// One logical line: statements separated by `;`.
    fn statement_line(&mut self) -> Result<()> {
        loop {
            self.statement()?;
            if self.eat_op(";") {
                if matches!(self.peek(), Tok::Newline | Tok::Eof) {
                    break;
                }
                continue;
            }
            break;
        }
        match self.peek() {
            Tok::Newline => {
                self.pos += 1;
                Ok(())
            }
            Tok::Eof => Ok(()),
            other => {
                Err(GuestError::syntax(self.line(), format!("unexpected {} after the statement", describe(other))))
            }
        }
    }

    fn statement(&mut self) -> Result<()> {
        let line = self.line();
        let Tok::Name(first) = self.peek().clone() else {
            return Err(match self.peek() {
                Tok::Str(_) => {
                    // A bare string (docstring) is a no-op expression statement.
                    let _ = self.expr(0)?;
                    return Ok(());
                }
                other => GuestError::syntax(line, format!("unexpected {}", describe(other))),
            });
        };
        match first.as_str() {
            "def" => return self.skip_def(line),
            "if" | "for" | "while" | "try" | "with" | "class" => return self.skip_block(line, &first),
            "elif" | "else" | "except" | "finally" => {
                return Err(GuestError::syntax(line, format!("`{first}` without the statement it continues")))
            }
            "return" | "yield" | "lambda" => {
                return Err(GuestError::syntax(line, format!("`{first}` outside a function")))
            }
            "raise" => return Err(refuse(line, "the `raise` statement (xm create would fail here)")),
            "exec" => return Err(refuse(line, "the `exec` statement")),
            "import" | "from" => return self.skip_import(line),
            "print" | "global" | "assert" | "pass" => {
                let what = first.clone();
                self.skip_to_stmt_end();
                if what != "pass" {
                    self.remarks.push((line, format!("`{what}` statement not evaluated")));
                }
                return Ok(());
            }
            "del" => {
                self.pos += 1;
                let mut names = Vec::new();
                while !self.at_stmt_end() {
                    if let Tok::Name(n) = self.next() {
                        names.push(n);
                    }
                }
                for n in names {
                    let cause = refuse(line, &format!("`del {n}`"));
                    self.poison(n, line, cause);
                }
                return Ok(());
            }
            "xm_vars" => return self.xm_vars(line),
            _ => {}
        }
        // Assignment chain: NAME (= NAME)* = expr, or NAME op= expr
        let mut targets = Vec::new();
        loop {
            let save = self.pos;
            if let Tok::Name(n) = self.peek().clone() {
                self.pos += 1;
                if self.eat_op("=") {
                    targets.push(n);
                    continue;
                }
                for (op, bin) in [("+=", "+"), ("-=", "-"), ("*=", "*"), ("%=", "%")] {
                    if targets.is_empty() && self.eat_op(op) {
                        if self.fixed.contains_key(&n) {
                            self.skip_to_stmt_end();
                            return Ok(());
                        }
                        let r = self.expr(0).and_then(|rhs| {
                            let cur = self.lookup(&n, line)?;
                            binop(bin, cur, rhs, line)
                        });
                        match r {
                            Ok(v) => self.bind(n, v),
                            Err(e) if recoverable(&e) => {
                                self.skip_to_stmt_end();
                                self.poison(n, line, e);
                            }
                            Err(e) => return Err(e),
                        }
                        return Ok(());
                    }
                }
            }
            self.pos = save;
            break;
        }
        if targets.is_empty() {
            return self.expression_statement(line, &first);
        }
        if targets.iter().all(|t| self.fixed.contains_key(t)) {
            // The command line gives the value: the right-hand side is not needed.
            self.skip_to_stmt_end();
            return Ok(());
        }
        let value = match self.expr(0) {
            Ok(v) => v,
            Err(e) if recoverable(&e) => {
                self.skip_to_stmt_end();
                for t in targets {
                    self.poison(t, line, copy_err(&e));
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if matches!(self.peek(), Tok::Op(",")) {
            self.skip_to_stmt_end();
            for t in targets {
                self.poison(t, line, refuse(line, "a tuple without brackets"));
            }
            return Ok(());
        }
        for t in targets {
            self.bind(t, value.clone());
        }
        Ok(())
    }

    fn at_stmt_end(&self) -> bool {
        matches!(self.peek(), Tok::Newline | Tok::Eof | Tok::Op(";"))
    }

    /// Moves to the end of the current simple statement (brackets never hold a Newline).
    fn skip_to_stmt_end(&mut self) {
        while !self.at_stmt_end() {
            self.pos += 1;
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

    /// A statement that is an expression (a call...) or assigns to something other than
    /// plain names.
    fn expression_statement(&mut self, line: usize, first: &str) -> Result<()> {
        let start = self.pos;
        self.skip_to_stmt_end();
        let toks: Vec<Tok> = self.toks[start..self.pos].iter().map(|t| t.tok.clone()).collect();
        let mut depth = 0usize;
        let mut assign_at = None;
        for (i, t) in toks.iter().enumerate() {
            match t {
                Tok::Op("(" | "[" | "{") => depth += 1,
                Tok::Op(")" | "]" | "}") => depth = depth.saturating_sub(1),
                Tok::Op("=" | "+=" | "-=" | "*=" | "/=" | "%=" | "//=" | "**=" | "|=" | "&=" | "^=") if depth == 0 => {
                    assign_at = Some(i);
                    break;
                }
                Tok::Name(n)
                    if matches!(
                        n.as_str(),
                        "globals"
                            | "locals"
                            | "vars"
                            | "exec"
                            | "eval"
                            | "execfile"
                            | "setattr"
                            | "__import__"
                            | "__builtins__"
                            | "reload"
                    ) =>
                {
                    return Err(refuse(line, &format!("using `{n}`")));
                }
                _ => {}
            }
        }
        if let Some(i) = assign_at {
            // `a, b = …` binds plain names to values we do not compute; anything else
            // (`x[0] = …`, `os.environ['A'] = …`) changes state we cannot follow.
            let lhs = &toks[..i];
            let plain = lhs.iter().all(|t| matches!(t, Tok::Name(_) | Tok::Op("," | "(" | ")" | "[" | "]")));
            if !plain || lhs.iter().any(|t| matches!(t, Tok::Op("[")) && !matches!(lhs.first(), Some(Tok::Op("[")))) {
                return Err(refuse(line, &format!("an assignment to an item or attribute of `{first}`")));
            }
            for t in lhs {
                if let Tok::Name(n) = t {
                    let cause = refuse(line, &format!("the tuple assignment to `{n}`"));
                    self.poison(n.clone(), line, cause);
                }
            }
            return Ok(());
        }
        if self.defs_with_global {
            return Err(refuse(
                line,
                &format!("the statement starting with `{first}` (a function defined here rebinds globals)"),
            ));
        }
        let construct = match toks.get(1) {
            Some(Tok::Op("(")) => format!("a call of {first}()"),
            Some(Tok::Op(".")) => format!("an expression using {first}.…"),
            _ => format!("the expression statement starting with {first:?}"),
        };
        self.remarks.push((line, format!("{construct} not evaluated")));
        Ok(())
    }

    /// Skips an `import`/`from` statement; the names it binds become unknown.
    fn skip_import(&mut self, line: usize) -> Result<()> {
        let is_from = matches!(self.peek(), Tok::Name(n) if n == "from");
        self.pos += 1;
        let start = self.pos;
        self.skip_to_stmt_end();
        let toks: Vec<Tok> = self.toks[start..self.pos].iter().map(|t| t.tok.clone()).collect();
        // Names bound: `import a.b as c, d` → c, d; `from m import a as b, c` → b, c.
        let list: &[Tok] = if is_from {
            match toks.iter().position(|t| matches!(t, Tok::Name(n) if n == "import")) {
                Some(i) => &toks[i + 1..],
                None => return Err(GuestError::syntax(line, "`from` without `import`")),
            }
        } else {
            &toks
        };
        let mut bound = Vec::new();
        let mut module = String::new();
        for item in list.split(|t| matches!(t, Tok::Op(","))) {
            let names: Vec<&String> = item
                .iter()
                .filter_map(|t| match t {
                    Tok::Name(n) => Some(n),
                    _ => None,
                })
                .collect();
            if module.is_empty() {
                module = names.first().map(|s| s.to_string()).unwrap_or_default();
            }
            let alias = match item.iter().position(|t| matches!(t, Tok::Name(n) if n == "as")) {
                Some(i) => match item.get(i + 1) {
                    Some(Tok::Name(n)) => Some(n.clone()),
                    _ => None,
                },
                None => names.first().map(|s| s.to_string()),
            };
            bound.extend(alias);
        }
        for n in &bound {
            let cause = refuse(line, &format!("using the module or name `{n}` imported here"));
            self.poison(n.clone(), line, cause);
        }
        self.remarks.push((line, format!("import not evaluated ({})", bound.join(", "))));
        Ok(())
    }

    /// Skips a compound statement (`if`/`for`/`while`/`try`/`with`/`class`, with its
    /// `elif`/`else`/`except`/`finally` clauses); every name it could bind becomes unknown.
    fn skip_block(&mut self, line: usize, kw: &str) -> Result<()> {
        let start = self.pos;
        // Header line, then indented lines and continuation clauses.
        loop {
            while !matches!(self.peek(), Tok::Newline | Tok::Eof) {
                self.pos += 1;
            }
            if matches!(self.peek(), Tok::Eof) {
                break;
            }
            self.pos += 1; // the Newline
            match (self.peek(), self.toks.get(self.pos + 1).map(|t| &t.tok)) {
                (Tok::Indent(c), _) if *c > 0 => continue,
                (Tok::Indent(0), Some(Tok::Name(n)))
                    if matches!(n.as_str(), "elif" | "else" | "except" | "finally") =>
                {
                    continue
                }
                _ => break,
            }
        }
        let toks: Vec<Tok> = self.toks[start..self.pos].iter().map(|t| t.tok.clone()).collect();
        let mut bound: Vec<String> = Vec::new();
        let mut depth = 0usize;
        let mut stmt_start = true;
        let mut i = 0;
        while i < toks.len() {
            let t = &toks[i];
            match t {
                Tok::Op("(" | "[" | "{") => depth += 1,
                Tok::Op(")" | "]" | "}") => depth = depth.saturating_sub(1),
                _ => {}
            }
            if let Tok::Name(n) = t {
                match n.as_str() {
                    "as" | "def" | "class" | "global" | "del" => {
                        if let Some(Tok::Name(m)) = toks.get(i + 1) {
                            bound.push(m.clone());
                        }
                    }
                    "for" | "import" => {
                        let mut j = i + 1;
                        while let Some(tt) = toks.get(j) {
                            match tt {
                                Tok::Name(m) if m == "in" => break,
                                Tok::Name(m) if m != "as" => bound.push(m.clone()),
                                Tok::Op(",") | Tok::Op("(") | Tok::Op(")") | Tok::Op(".") | Tok::Name(_) => {}
                                _ => break,
                            }
                            j += 1;
                        }
                    }
                    _ if stmt_start && depth == 0 => {
                        // NAME (, NAME)* (= | op=)
                        let mut j = i;
                        let mut names = Vec::new();
                        while let Some(Tok::Name(m)) = toks.get(j) {
                            names.push(m.clone());
                            if matches!(toks.get(j + 1), Some(Tok::Op(","))) {
                                j += 2;
                            } else {
                                j += 1;
                                break;
                            }
                        }
                        if matches!(
                            toks.get(j),
                            Some(Tok::Op("=" | "+=" | "-=" | "*=" | "/=" | "%=" | "//=" | "**=" | "|=" | "&=" | "^="))
                        ) {
                            bound.extend(names);
                        }
                    }
                    _ => {}
                }
            }
            stmt_start =
                matches!(t, Tok::Indent(_) | Tok::Newline | Tok::Op(";")) || (matches!(t, Tok::Op(":")) && depth == 0);
            i += 1;
        }
        bound.sort();
        bound.dedup();
        for n in &bound {
            let cause = GuestError::new(
                ErrorKind::Refused,
                format!(
                    "{n} is set inside the `{kw}` statement, which needs a Python interpreter; \
                     pass --set {n}=VALUE with the value xm would compute, or give a copy of the \
                     config with literal values"
                ),
            )
            .at_line(line);
            self.poison(n.clone(), line, cause);
        }
        self.remarks.push((
            line,
            if bound.is_empty() {
                format!("`{kw}` statement not evaluated")
            } else {
                format!("`{kw}` statement not evaluated (it sets {})", bound.join(", "))
            },
        ));
        // statement_line expects a newline or EOF next.
        if self.pos > 0 && matches!(self.toks[self.pos - 1].tok, Tok::Newline) {
            self.pos -= 1;
        }
        Ok(())
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

    /// `def f(...):` followed by an indented block: skipped.
    fn skip_def(&mut self, line: usize) -> Result<()> {
        self.pos += 1;
        let name = match self.next() {
            Tok::Name(n) => n,
            other => {
                return Err(GuestError::syntax(
                    line,
                    format!("expected a function name after def, found {}", describe(&other)),
                ))
            }
        };
        // skip to the end of the logical line
        while !matches!(self.peek(), Tok::Newline | Tok::Eof) {
            self.pos += 1;
        }
        if matches!(self.peek(), Tok::Newline) {
            self.pos += 1;
        }
        // skip indented lines
        while let Tok::Indent(col) = self.peek() {
            if *col == 0 {
                break;
            }
            self.pos += 1;
            while !matches!(self.peek(), Tok::Newline | Tok::Eof) {
                if matches!(self.peek(), Tok::Name(n) if n == "global") {
                    self.defs_with_global = true;
                }
                self.pos += 1;
            }
            if matches!(self.peek(), Tok::Newline) {
                self.pos += 1;
            }
        }
        // The Indent(0) of the next statement is consumed by file(); put the cursor before it.
        self.remarks.push((line, format!("function {name}() defined in the config was not evaluated")));
        self.functions.push(name);
        // statement_line expects a newline or EOF next: fake one by stepping back onto the
        // newline we consumed.
        if self.pos > 0 && matches!(self.toks[self.pos - 1].tok, Tok::Newline) {
            self.pos -= 1;
        }
        Ok(())
    }

    /// `xm_vars.var('NAME', ...)`, `xm_vars.check()`: accepted when `--set` gave the names.
    fn xm_vars(&mut self, line: usize) -> Result<()> {
        self.pos += 1;
        if !self.eat_op(".") {
            return Err(refuse(line, "using `xm_vars`"));
        }
        let method = match self.next() {
            Tok::Name(n) => n,
            _ => return Err(refuse(line, "using `xm_vars`")),
        };
        self.expect_op("(")?;
        let first_arg = match self.peek().clone() {
            Tok::Str(s) => Some(s),
            _ => None,
        };
        // Skip the arguments without evaluating them (they are help texts and check functions).
        let mut depth = 1usize;
        while depth > 0 {
            match self.next() {
                Tok::Op("(") | Tok::Op("[") | Tok::Op("{") => depth += 1,
                Tok::Op(")") | Tok::Op("]") | Tok::Op("}") => depth -= 1,
                Tok::Eof => return Err(GuestError::syntax(line, "unclosed xm_vars call")),
                _ => {}
            }
        }
        match (method.as_str(), first_arg) {
            ("check", _) => Ok(()),
            ("var", Some(name)) => {
                if self.fixed.contains_key(&name) {
                    self.remarks.push((line, format!("xm_vars variable {name} taken from --set")));
                    Ok(())
                } else {
                    let cause = GuestError::new(
                        ErrorKind::Refused,
                        format!(
                            "the config expects `xm create` to be given {name}=VALUE \
                             (xm_vars.var); pass --set {name}=VALUE"
                        ),
                    )
                    .at_line(line);
                    self.poison(name, line, cause);
                    Ok(())
                }
            }
            _ => Err(refuse(line, &format!("calling xm_vars.{method}()"))),
        }
    }

    // Expression grammar (Python precedence, the subset we evaluate):
    //   expr   := term (('+'|'-') term)*
    //   term   := unary (('*'|'/'|'//'|'%') unary)*
    //   unary  := ('-'|'+') unary | power
    //   power  := atom ['**' unary]
    fn expr(&mut self, depth: usize) -> Result<Value> {
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

fn describe(t: &Tok) -> String {
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

fn overflow(line: usize) -> GuestError {
    GuestError::invalid("integer overflow in arithmetic").at_line(line)
}

fn type_err(line: usize, op: &str, a: &Value, b: Option<&Value>) -> GuestError {
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

fn binop(op: &str, a: Value, b: Value, line: usize) -> Result<Value> {
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

/// Python 2 `str % args`.
fn percent_format(fmt: &str, args: &Value, line: usize) -> Result<String> {
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
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if "-+ #0".contains(f) {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() {
                width.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() {
                    p.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Like xm: any name left unknown is an error.
    fn strict(src: &str) -> Result<Evaluated> {
        let e = evaluate(src, &BTreeMap::new())?;
        if let Some((_, _, c)) = e.unknown.first() {
            return Err(copy_err(c));
        }
        Ok(e)
    }

    fn ev(src: &str) -> Evaluated {
        evaluate(src, &BTreeMap::new()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn strings_in_every_quoting() {
        let e = ev(concat!(
            "a = 'x' \"y\" '''z\nz''' r'\\d' u'u'\n",
            "b = \"one\\\n two\"\n",
            "c = 'tab\\there\\x41\\101'\n",
            "d = \\\n  'cont'\n",
            "e = ('impl'\n   'icit')  # comment\n",
            "f = \"\"\"it's \"q\" \"\"\"\n",
        ));
        assert_eq!(e.get("a"), Some(&Value::Str("xyz\nz\\du".into())));
        assert_eq!(e.get("b"), Some(&Value::Str("one two".into())));
        assert_eq!(e.get("c"), Some(&Value::Str("tab\thereAA".into())));
        assert_eq!(e.get("d"), Some(&Value::Str("cont".into())));
        assert_eq!(e.get("e"), Some(&Value::Str("implicit".into())));
        assert_eq!(e.get("f"), Some(&Value::Str("it's \"q\" ".into())));
    }

    #[test]
    fn numbers_and_arithmetic() {
        let e = ev("a = 0x10 + 010 + 0o10 + 10L\nb = 7 / 2\nc = -7 / 2\nd = 7 % -3\ne = 2 ** 10\nf = 1.5 * 2\ng = 512 * 1024\nh = a; i = b + 1\n");
        assert_eq!(e.get("a"), Some(&Value::Int(16 + 8 + 8 + 10)));
        assert_eq!(e.get("b"), Some(&Value::Int(3)));
        assert_eq!(e.get("c"), Some(&Value::Int(-4)));
        assert_eq!(e.get("d"), Some(&Value::Int(-2)));
        assert_eq!(e.get("e"), Some(&Value::Int(1024)));
        assert_eq!(e.get("f"), Some(&Value::Float(3.0)));
        assert_eq!(e.get("h"), Some(&Value::Int(42)));
        assert_eq!(e.get("i"), Some(&Value::Int(4)));
    }

    #[test]
    fn percent_formatting() {
        let e = ev("vmid = 3\nname = 'VM%d' % vmid\ndisk = ['phy:sda%d,sda1,w' % (7+vmid), 'x']\ns = '%s-%03d-%x-%r-%%' % ('a', 5, 255, 'q')\nm = '%(a)s/%(b)d' % {'a': 'x', 'b': 2}\n");
        assert_eq!(e.get("name"), Some(&Value::Str("VM3".into())));
        assert_eq!(
            e.get("disk"),
            Some(&Value::List(vec![Value::Str("phy:sda10,sda1,w".into()), Value::Str("x".into())]))
        );
        assert_eq!(e.get("s"), Some(&Value::Str("a-005-ff-'q'-%".into())));
        assert_eq!(e.get("m"), Some(&Value::Str("x/2".into())));
    }

    #[test]
    fn refusals_name_line_and_construct() {
        for (src, line, what) in [
            ("a = 1\nimport os\n", 2, "import"),
            ("a = 1\n\nif a:\n  b = 2\n", 3, "`if`"),
            ("a = os.path.join('a')\n", 1, "os"),
            ("a = len([])\n", 1, "call of len"),
            ("a = [1][0]\n", 1, "subscript"),
            ("a = 'x'.upper()\n", 1, ".upper"),
            ("xm_vars.var('vmid')\n", 1, "--set vmid="),
            ("a = b\n", 1, "--set b="),
        ] {
            let err = strict(src).unwrap_err();
            assert_eq!(err.line(), Some(line), "{src}: {err}");
            assert!(err.to_string().contains(what), "{src}: {err}");
        }
    }

    #[test]
    fn def_skipped_and_xm_vars_from_set() {
        let src = "def vmid_check(var, val):\n    val = int(val)\n    if val <= 0:\n        raise ValueError\n    return val\n\nxm_vars.var('vmid', use='id', check=vmid_check)\nxm_vars.check()\nname = 'VM%d' % vmid\n";
        let mut fixed = BTreeMap::new();
        fixed.insert("vmid".to_string(), parse_cli_value("2"));
        let e = evaluate(src, &fixed).unwrap();
        assert_eq!(e.get("name"), Some(&Value::Str("VM2".into())));
        assert!(!e.remarks.is_empty());
        let err = strict("def f():\n  return 1\na = f()\n").unwrap_err();
        assert_eq!(err.line(), Some(3));
    }

    #[test]
    fn unterminated_strings() {
        let err = strict("a = 'abc\n").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Syntax);
        assert!(err.to_string().contains("unterminated"), "{err}");
        let err = strict("x = 1\na = '''abc\n\n").unwrap_err();
        assert_eq!(err.line(), Some(2));
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(strict("a = 99999999999999999999\n").is_err());
        assert!(strict("a = 2 ** 64\n").is_err());
        assert!(strict("a = 'x' * 100000000\n").is_err());
        assert!(strict("a = 1 / 0\n").is_err());
        let deep = format!("a = {}1{}\n", "(".repeat(500), ")".repeat(500));
        assert!(strict(&deep).is_err());
    }
}
