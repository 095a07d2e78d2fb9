//! Text for one line of a terminal, a log or a Kubernetes condition.
//!
//! Messages from wasmtime span lines (with source context), and text from a
//! plugin is untrusted: it may carry `\r` or escape sequences that would
//! rewrite what an operator sees. Everything Tessera prints or stores as a
//! one-line message goes through [`one_line`]; everything it cuts to a size
//! goes through [`truncate`] or [`shorten`], which never split a character.

/// What a control character becomes: U+FFFD, visible and never
/// interpreted by a terminal.
pub const REPLACEMENT: char = '\u{fffd}';

/// One line, safe for a terminal: each line is trimmed, empty lines are
/// dropped, the rest are joined with ` | `; a tab becomes a space and every
/// other control character becomes [`REPLACEMENT`].
///
/// ```
/// use tessera_types::text::one_line;
/// assert_eq!(one_line("  error: bad\r\n\n  at line 3\n"), "error: bad | at line 3");
/// assert_eq!(one_line("\x1b]0;title\x07"), "\u{fffd}]0;title\u{fffd}");
/// assert_eq!(one_line("\ngot\tthis"), "got this");
/// ```
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if !out.is_empty() {
            out.push_str(" | ");
        }
        out.extend(line.chars().map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => REPLACEMENT,
            c => c,
        }));
    }
    out
}

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a
/// character boundary.
///
/// ```
/// use tessera_types::text::truncate;
/// assert_eq!(truncate("héllo", 2), "h");
/// assert_eq!(truncate("héllo", 3), "hé");
/// assert_eq!(truncate("hi", 10), "hi");
/// ```
pub fn truncate(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` cut to at most `max_bytes` bytes (on a character boundary) with
/// `...` added when anything was cut, for messages with a size limit.
///
/// ```
/// use tessera_types::text::shorten;
/// assert_eq!(shorten("abcdef", 3), "abc...");
/// assert_eq!(shorten("abc", 3), "abc");
/// ```
pub fn shorten(text: &str, max_bytes: usize) -> String {
    let kept = truncate(text, max_bytes);
    if kept.len() == text.len() {
        text.to_string()
    } else {
        format!("{kept}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_never_keeps_a_control_character() {
        let hostile = "ok\u{1b}[2K\rdigest: sha256:forged\u{7}\u{9b}31m\u{0}";
        let line = one_line(hostile);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_message_starting_with_a_newline_is_not_empty() {
        assert_eq!(one_line("\n\nthe real message"), "the real message");
    }

    #[test]
    fn truncate_on_char_boundaries() {
        let text = "ααα";
        for max in 0..=text.len() + 1 {
            let cut = truncate(text, max);
            assert!(cut.len() <= max);
            assert!(text.starts_with(cut));
        }
    }
}
