//! No panic reaches the user: a closed stdout ends quietly with exit code 0 (as `ls | head`
//! does), the binary never prints through the panicking macros, and a panic that remains is
//! reported as an internal error with exit code 1.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{sparse_file, stderr, TestDir};

/// How many times each command runs with its stdout closed early.
const ITERATIONS: usize = 50;

/// A directory with a raw disk, an XVA made from it and a guest config using it.
fn fixture() -> TestDir {
    let t = TestDir::new();
    let blocks: Vec<(u64, usize)> = (0..64).map(|i| (i * (128 << 10), 4096)).collect();
    sparse_file(&t.join("d.img"), 8 << 20, &blocks);
    t.xva_ok(["convert", "--disk", "d.img", "-o", "x.xva"]);
    std::fs::write(
        t.join("g.cfg"),
        format!(
            "name = \"g\"\ntype = \"hvm\"\nmemory = 512\nvcpus = 1\ndisk = [ '{},raw,xvda,rw' ]\n",
            t.join("d.img").display()
        ),
    )
    .unwrap();
    t
}

/// Runs `xva args` with stdout a pipe whose read end is dropped after reading `keep` bytes
/// (0: at once); asserts exit code 0 and no panic message.
fn closed_stdout(t: &TestDir, args: &[&str], keep: usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xva"))
        .args(args)
        .current_dir(t.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run xva");
    let mut stdout = child.stdout.take().unwrap();
    if keep > 0 {
        let mut buf = vec![0u8; keep];
        let _ = stdout.read(&mut buf);
    }
    drop(stdout);
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{args:?} (kept {keep} bytes) panicked:\n{err}");
    assert!(!err.contains("internal error"), "{args:?} (kept {keep} bytes):\n{err}");
    assert_eq!(status.code(), Some(0), "{args:?} (kept {keep} bytes): {status}\nstderr:\n{err}");
}

fn closed_stdout_many(args: &[&str]) {
    let t = fixture();
    // The full output first, so a command that fails anyway is not mistaken for a pass.
    let full = t.xva_ok(args);
    assert!(full.len() > 16, "{args:?} printed too little to test: {full:?}");
    for i in 0..ITERATIONS {
        closed_stdout(&t, args, [0, 1, 16][i % 3]);
    }
}

#[test]
fn info_with_stdout_closed() {
    closed_stdout_many(&["info", "d.img"]);
    closed_stdout_many(&["info", "d.img", "--output", "json"]);
}

#[test]
fn verify_with_stdout_closed() {
    closed_stdout_many(&["verify", "x.xva"]);
}

#[test]
fn map_json_with_stdout_closed() {
    closed_stdout_many(&["map", "d.img", "--output", "json"]);
}

#[test]
fn inspect_json_with_stdout_closed() {
    closed_stdout_many(&["inspect", "g.cfg", "--output", "json"]);
    closed_stdout_many(&["inspect", "g.cfg"]);
}

/// A panic is an internal error with exit code 1, not Rust's `panicked at` and 101.
#[cfg(debug_assertions)]
#[test]
fn panic_is_an_internal_error() {
    let t = TestDir::new();
    let out = Command::new(env!("CARGO_BIN_EXE_xva"))
        .args(["info", "nothing.img"])
        .env("XVA_DEBUG_PANIC", "1")
        .env_remove("RUST_BACKTRACE")
        .current_dir(t.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
    assert!(err.contains("xva: internal error: XVA_DEBUG_PANIC is set"), "stderr:\n{err}");
    assert!(err.contains("please report it"), "stderr:\n{err}");
    assert!(!err.contains("panicked"), "stderr:\n{err}");
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The lines of `src` (comments stripped) that print through a macro that panics when the
/// stream is closed, or unwrap/expect a write to stdout or stderr.
fn panicking_prints(src: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (n, line) in src.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let bad_macro = ["println!", "print!", "eprintln!", "eprint!"].iter().any(|m| {
            code.match_indices(m).any(|(i, _)| {
                let before = code[..i].chars().next_back();
                let word_start = !before.is_some_and(|c| c.is_alphanumeric() || c == '_');
                word_start && code[i + m.len()..].trim_start().starts_with(['(', '[', '{'])
            })
        });
        let unwrapped_std = (code.contains("stdout()") || code.contains("stderr()"))
            && (code.contains(".unwrap()") || code.contains(".expect("));
        if bad_macro || unwrapped_std {
            found.push(format!("{}: {}", n + 1, line.trim()));
        }
    }
    found
}

#[test]
fn the_binary_never_prints_through_panicking_macros() {
    // The scanner itself catches each form, so it cannot pass by missing them.
    for bad in [
        "println!(\"x\");",
        "    print!(\"{}\", 1);",
        "eprintln!(\"x\")",
        "eprint! (\"x\")",
        "std::io::stdout().write_all(b\"x\").unwrap();",
        "writeln!(std::io::stderr(), \"x\").expect(\"stderr\");",
    ] {
        assert_eq!(panicking_prints(bad).len(), 1, "the scanner misses {bad:?}");
    }
    for good in ["outln!(\"x\")?;", "errln!(\"x\");", "// println!(\"x\")", "let sprint = 1; sprint!(x);"] {
        assert!(panicking_prints(good).is_empty(), "the scanner flags {good:?}");
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("src/main.rs")];
    rust_files(&root.join("src/cli"), &mut files);
    let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for must in ["main.rs", "mod.rs", "info.rs", "verify.rs", "inspect.rs", "map.rs", "convert.rs", "output.rs"] {
        assert!(names.iter().any(|n| n == must), "src/cli scan did not find {must}: {names:?}");
    }
    let mut bad = Vec::new();
    let mut helper_uses = 0;
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        helper_uses += src.matches("outln!(").count();
        for l in panicking_prints(&src) {
            bad.push(format!("{}:{l}", f.strip_prefix(root).unwrap().display()));
        }
    }
    assert!(
        bad.is_empty(),
        "print through outln!/errln! (src/cli/output.rs), which return or ignore io errors instead of panicking:\n{}",
        bad.join("\n")
    );
    assert!(helper_uses > 20, "stdout is expected to go through outln! ({helper_uses} uses found)");
    // The helper returns the write's io::Result (so a closed pipe reaches `is_broken_pipe`).
    let output = std::fs::read_to_string(root.join("src/cli/output.rs")).unwrap();
    assert!(output.contains("writeln!(std::io::stdout(), $($arg)*)\n"), "outln! must return writeln!'s io::Result");
}
