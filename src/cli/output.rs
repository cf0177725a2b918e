//! Printing for people and for programs.

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
