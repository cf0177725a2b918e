//! What the validator reports: one [`Finding`] per rule violation, with its [`Severity`].

use std::fmt;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// E: xapi rejects the import.
    Error,
    /// C: xapi imports it but the disk is corrupted or data misplaced.
    Corruption,
    /// W: a compatibility or portability risk.
    Warning,
}

impl Severity {
    /// `E`, `C` or `W`.
    pub fn letter(self) -> char {
        match self {
            Severity::Error => 'E',
            Severity::Corruption => 'C',
            Severity::Warning => 'W',
        }
    }
}

/// One rule violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Severity.
    pub severity: Severity,
    /// Rule number in §12 (1–29).
    pub rule: u8,
    /// The tar member concerned, if any.
    pub member: Option<String>,
    /// Byte offset in the uncompressed tar stream, if known.
    pub offset: Option<u64>,
    /// What is wrong (and what xapi does about it).
    pub message: String,
}

impl Finding {
    /// A finding.
    pub fn new(
        severity: Severity,
        rule: u8,
        member: Option<&str>,
        offset: Option<u64>,
        message: impl Into<String>,
    ) -> Finding {
        Finding { severity, rule, member: member.map(str::to_string), offset, message: message.into() }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rule {}", self.severity.letter(), self.rule)?;
        if let Some(m) = &self.member {
            write!(f, " {m}")?;
        }
        if let Some(o) = self.offset {
            write!(f, " @{o}")?;
        }
        write!(f, ": {}", self.message)
    }
}
