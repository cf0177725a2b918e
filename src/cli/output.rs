//! Printing for people and for programs.
//!
//! The binary never prints with `println!`/`print!`/`eprintln!`/`eprint!`: those panic when
//! the stream is closed (`xva info disk | head -1`). Standard output goes through [`outln!`]
//! which returns the write's `io::Result`, so a closed pipe travels up as an
//! `io::Error` of kind `BrokenPipe` and `cli::main` ends quietly with exit code 0. Standard
//! error goes through [`errln!`] and [`err!`], which ignore write errors: there is nowhere
//! left to report them. `tests/cli/no_panic.rs` checks that the macros are not used.

/// `println!` to standard output, returning the write's `std::io::Result<()>`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}

/// `eprintln!` that ignores a failed write (a closed standard error has no one to tell).
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that ignores a failed write.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

pub(crate) use {err, errln, outln};

/// Replaces control characters (escape sequences from a hostile VM name or path) with `?`,
/// keeping newlines and tabs.
pub fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_control() && c != '\n' && c != '\t' { '?' } else { c }).collect()
}

/// Bytes as a short human figure: `1.5 GiB` (the library's wording).
pub use xva::plan::human_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_and_formats() {
        assert_eq!(sanitize("a\x1b[2Jb\nc"), "a?[2Jb\nc");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}
