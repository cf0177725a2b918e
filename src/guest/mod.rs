//! Guest definitions (in progress).
