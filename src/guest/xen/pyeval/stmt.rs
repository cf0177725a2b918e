//! Statements: top-level assignments are evaluated; imports, compound statements, `def`
//! blocks and calls are skipped, and the names they could bind become unknown.

use super::lexer::{describe, Tok};
use super::ops::binop;
use super::{copy_err, recoverable, refuse, Eval};
use crate::guest::error::{ErrorKind, GuestError, Result};

impl Eval<'_> {
    pub(super) fn file(&mut self) -> Result<()> {
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
}
