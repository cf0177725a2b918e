//! The import rules of `docs/architecture.md`, checked on the source text.
//!
//! Each top-level module of the `xva` library (`src/<module>/` or `src/<module>.rs`) may use only
//! the modules listed for it in [`ALLOWED`]: the layers point downward
//! (`cli → plan → guest / xva / xapi → backends`), peers do not use each other, and leaves
//! (`xmlrpc`, `tar`, ...) use nothing else of the crate. A module missing from the table fails
//! the test, so a new module has to be placed in the layering on purpose.
//!
//! `cli` is the binary (`src/main.rs` declares it), so the library cannot name a cli type at
//! all; `backends` is a separate crate that does not depend on `xva` (checked on its manifest).
//! Comments are ignored (doc links may name any item); test modules are checked like the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Every module of `src/`, and the crate modules it may use (`backends` is the re-exported
/// `xva-backends` crate).
const ALLOWED: &[(&str, &[&str])] = &[
    ("cli", &["plan", "advise", "inspect", "guest", "xva", "xapi", "xmlrpc", "tar", "hex", "vm", "backends"]),
    ("plan", &["advise", "inspect", "guest", "xva", "xapi", "xmlrpc", "tar", "hex", "vm", "backends"]),
    ("guest", &["tar", "hex", "vm", "backends"]),
    ("inspect", &["backends"]),
    ("advise", &["guest", "inspect", "vm"]),
    ("xva", &["xmlrpc", "tar", "hex", "vm", "backends"]),
    ("xapi", &["xmlrpc", "hex"]),
    ("xmlrpc", &[]),
    ("tar", &[]),
    ("hex", &[]),
    ("vm", &[]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules of `src/`: directories and files other than lib.rs / main.rs.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let mut mods = BTreeMap::new();
    for entry in fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else if name == "lib" || name == "main" || path.extension().is_none_or(|e| e != "rs") {
            continue;
        } else {
            files.push(path);
        }
        mods.entry(name).or_insert_with(Vec::new).extend(files);
    }
    mods
}

/// Source text without `//` comments (line and doc comments) and string literals' contents
/// left as they are (no module path is written inside a string in this code base).
fn code_of(text: &str) -> String {
    text.lines().map(|l| l.split_once("//").map_or(l, |(code, _)| code)).collect::<Vec<_>>().join("\n")
}

/// The crate modules `code` names: `crate::m`, `xva::m` (from the binary), and `backends` for
/// `xva_backends` / `crate::backends`.
fn used_modules(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    if code.contains("xva_backends") {
        used.insert("backends".to_string());
    }
    for prefix in ["crate::", "xva::"] {
        for (i, _) in code.match_indices(prefix) {
            // A path start only: not `foo_xva::` nor the `xva::` inside `crate::xva::`.
            let before = code[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &code[i + prefix.len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if name == "backends" || known.contains(&name) {
                used.insert(name);
            }
        }
    }
    // `use crate::{a, b::c}` groups.
    for prefix in ["crate::{", "xva::{"] {
        for (i, _) in code.match_indices(prefix) {
            let rest = &code[i + prefix.len()..];
            let group = rest.split('}').next().unwrap_or("");
            for item in group.split(',') {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if name == "backends" || known.contains(&name) {
                    used.insert(name);
                }
            }
        }
    }
    used
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let mods = modules();
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut problems = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, files) in &mods {
        let Some(ok) = allowed.get(module.as_str()) else {
            problems.push(format!("src/{module}: not in the layering table of tests/layers.rs"));
            continue;
        };
        for file in files {
            let code = code_of(&fs::read_to_string(file).unwrap());
            for used in used_modules(&code, &known) {
                if used == *module {
                    continue;
                }
                graph.entry(module.clone()).or_default().insert(used.clone());
                if !ok.contains(&used.as_str()) {
                    let rel = file.strip_prefix(src()).unwrap_or(file);
                    problems.push(format!("src/{}: {module} uses {used}", rel.display()));
                }
            }
        }
    }
    assert!(problems.is_empty(), "import rules broken:\n{}", problems.join("\n"));
    // The table itself must be acyclic (a module never reaches itself).
    for (module, _) in ALLOWED {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = allowed[module].to_vec();
        while let Some(m) = todo.pop() {
            assert_ne!(m, *module, "the layering table has a cycle through {module}");
            if seen.insert(m) {
                todo.extend(allowed.get(m).copied().unwrap_or(&[]));
            }
        }
    }
}

/// Pairs of sibling modules of one directory that use each other: siblings may depend one
/// way only. Checked in every module directory of `src/` and among the top-level modules of
/// `backends/src/`.
#[test]
fn no_two_sibling_modules_use_each_other() {
    let mut problems = Vec::new();
    for entry in fs::read_dir(src()).unwrap() {
        let dir = entry.unwrap().path();
        if dir.is_dir() {
            let top = dir.file_name().unwrap().to_string_lossy().into_owned();
            // From `src/m/a.rs` a sibling is `super::b`, from `src/m/a/x.rs` `super::super::b`.
            let prefixes =
                |depth: usize| vec!["super::".repeat(depth), format!("crate::{top}::"), format!("xva::{top}::")];
            problems.extend(mutual_pairs(&dir, &prefixes));
        }
    }
    let backends = Path::new(env!("CARGO_MANIFEST_DIR")).join("backends/src");
    problems.extend(mutual_pairs(&backends, &|_| vec!["crate::".to_string()]));
    assert!(problems.is_empty(), "sibling modules that use each other:\n{}", problems.join("\n"));
}

/// The pairs of modules directly in `dir` (files or sub-directories, `mod.rs` and `lib.rs`
/// aside) that name each other through one of `prefixes(depth)`, depth being how deep the
/// naming file sits below `dir`.
fn mutual_pairs(dir: &Path, prefixes: &dyn Fn(usize) -> Vec<String>) -> Vec<String> {
    let stem = |p: &Path| p.file_stem().unwrap().to_string_lossy().into_owned();
    let children: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    let names: BTreeSet<String> = children.iter().map(|p| stem(p)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for child in &children {
        let from = stem(child);
        if from == "mod" || from == "lib" {
            continue;
        }
        let mut files = Vec::new();
        if child.is_dir() {
            rust_files(child, &mut files);
        } else if child.extension().is_some_and(|x| x == "rs") {
            files.push(child.clone());
        }
        for f in files {
            let code = code_of(&fs::read_to_string(&f).unwrap());
            let depth = f.strip_prefix(dir).unwrap().components().count();
            for prefix in prefixes(depth) {
                for (i, _) in code.match_indices(prefix.as_str()) {
                    let rest = &code[i + prefix.len()..];
                    let items: Vec<&str> = match rest.strip_prefix('{') {
                        Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
                        None => vec![rest],
                    };
                    for item in items {
                        let name: String =
                            item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        if name != from && names.contains(&name) {
                            edges.entry(from.clone()).or_default().insert(name);
                        }
                    }
                }
            }
        }
    }
    let mut pairs = Vec::new();
    for (a, bs) in &edges {
        for b in bs {
            if a < b && edges.get(b).is_some_and(|x| x.contains(a)) {
                let rel = dir.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(dir);
                pairs.push(format!("{}: {a} and {b} use each other", rel.display()));
            }
        }
    }
    pairs
}

#[test]
fn backends_does_not_depend_on_xva() {
    let manifest = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("backends/Cargo.toml")).unwrap();
    let deps = manifest.split("[dependencies]").nth(1).unwrap_or("");
    let deps = deps.split("\n[").next().unwrap_or("");
    assert!(
        !deps.lines().any(|l| l.trim_start().starts_with("xva ") || l.trim_start().starts_with("xva=")),
        "backends/Cargo.toml depends on the xva crate:\n{deps}"
    );
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("backends/src"), &mut files);
    for file in files {
        let code = code_of(&fs::read_to_string(&file).unwrap());
        assert!(!code.contains("xva::"), "{} names the xva crate", file.display());
    }
}

#[test]
fn the_checker_sees_imports() {
    let known: BTreeSet<String> = ["guest", "xva", "plan"].iter().map(|s| s.to_string()).collect();
    let used = used_modules("use crate::{guest::Guest, xva::records};\nuse xva_backends::Format;", &known);
    assert_eq!(used, ["backends", "guest", "xva"].iter().map(|s| s.to_string()).collect());
    let used = used_modules(&code_of("// crate::plan is mentioned only in a comment\nlet x = 1;"), &known);
    assert!(used.is_empty(), "{used:?}");
    let used = used_modules(&code_of("let p = crate::plan::run(); // xva::guest"), &known);
    assert_eq!(used, ["plan".to_string()].into_iter().collect());
    // `guest` here is an item of `xva`, not the crate's `guest` module.
    let used = used_modules("use crate::xva::guest;", &known);
    assert_eq!(used, ["xva".to_string()].into_iter().collect());
}
