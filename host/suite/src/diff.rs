//! Unified diffs of expected against actual text, and their colours.
//!
//! A diff is plain text in a case's outcome (and the JUnit report); colour
//! is added by `tessera test` when it prints, after the text (which quotes
//! what plugins produced) went through `tessera_types::text`, so that the
//! only escape sequences printed are these.

/// A unified diff of expected (`-`) against actual (`+`).
pub(crate) fn unified_diff(expected: &str, actual: &str) -> String {
    let diff = similar::TextDiff::from_lines(expected, actual);
    diff.unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}

/// The first line of every diff the suite runner writes.
pub const DIFF_START: &str = "--- expected";

/// The SGR colour of a line of a diff: green for an added line, red for a
/// removed one, cyan for a hunk header.
pub fn colour(line: &str) -> Option<&'static str> {
    if line.starts_with('+') && !line.starts_with("+++") {
        Some("\x1b[32m")
    } else if line.starts_with('-') && !line.starts_with("---") {
        Some("\x1b[31m")
    } else if line.starts_with("@@") {
        Some("\x1b[36m")
    } else {
        None
    }
}
