//! Text for one line of a terminal, a log or a Kubernetes condition.
//!
//! Messages from wasmtime span lines (with source context), and text from a
//! plugin is untrusted: it may carry `\r` or escape sequences that would
//! rewrite what an operator sees. This module is the one choke point for
//! such text: every string a plugin controls (a log line, a finding's
//! message and field, a child's kind and name, a plugin's metadata, an
//! error quoting any of them) is printed or stored through [`Untrusted`]
//! (its `Display` writes [`one_line`]'s text) or, for text that keeps its
//! lines (captured stdout), [`lines`]. Everything cut to a size goes through
//! [`truncate`] or [`shorten`], which never split a character.

/// What a control character becomes: U+FFFD, visible and never
/// interpreted by a terminal.
pub const REPLACEMENT: char = '\u{fffd}';

/// One line, safe for a terminal: each line is trimmed, empty lines are
/// dropped, the rest are joined with ` | `; a tab becomes a space and every
/// other control character (C0, DEL, C1: ESC and CSI included) becomes
/// [`REPLACEMENT`]. The same text as [`Untrusted`] displays.
///
/// ```
/// use tessera_types::text::one_line;
/// assert_eq!(one_line("  error: bad\r\n\n  at line 3\n"), "error: bad | at line 3");
/// assert_eq!(one_line("\x1b]0;title\x07"), "\u{fffd}]0;title\u{fffd}");
/// assert_eq!(one_line("\ngot\tthis"), "got this");
/// ```
pub fn one_line(text: &str) -> String {
    Untrusted(text).to_string()
}

/// Text a plugin controls, to be shown: its `Display` writes it as
/// [`one_line`] does (one line, no control character), so that it can go
/// straight into `format!` and `writeln!` without building a copy first.
///
/// ```
/// use tessera_types::text::Untrusted;
/// let name = "web\x1b[2J\ndigest: forged";
/// assert_eq!(
///     format!("child ({})", Untrusted(name)),
///     "child (web\u{fffd}[2J | digest: forged)"
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

impl std::fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        let mut first = true;
        for line in self.0.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !std::mem::take(&mut first) {
                f.write_str(" | ")?;
            }
            for c in line.chars() {
                f.write_char(printable(c))?;
            }
        }
        Ok(())
    }
}

/// Multi-line text a plugin controls (what it wrote to stdout or stderr, a
/// failure report quoting it), line by line: each line as it is, blank ones
/// included, but with its control characters replaced as [`one_line`]
/// replaces them, so that the caller can prefix or indent each one.
///
/// ```
/// use tessera_types::text::lines;
/// let out: Vec<String> = lines("a\r\n\n  \x1b[2Jb\n").collect();
/// assert_eq!(out, ["a", "", "  \u{fffd}[2Jb"]);
/// ```
pub fn lines(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .map(|line| line.chars().map(printable).collect())
}

/// JSON text with DEL and the C1 controls escaped (`\u007f`, `\u009b`):
/// JSON requires only those below U+0020 to be escaped, so serializers
/// write these raw, and some terminals act on them. They can only be inside
/// strings, so escaping them leaves the same JSON value.
///
/// ```
/// use tessera_types::text::json_for_terminal;
/// let json = serde_json::json!({"m": "a\u{9b}31m\u{7f}"}).to_string();
/// let safe = json_for_terminal(&json);
/// assert_eq!(safe, r#"{"m":"a\u009b31m\u007f"}"#);
/// assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap()["m"], "a\u{9b}31m\u{7f}");
/// ```
pub fn json_for_terminal(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if ('\u{7f}'..='\u{9f}').contains(&c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// A character as it may be shown: a tab is a space, any other control
/// character is [`REPLACEMENT`].
fn printable(c: char) -> char {
    match c {
        '\t' => ' ',
        c if c.is_control() => REPLACEMENT,
        c => c,
    }
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

    /// No C0 control (but the newlines a caller puts between lines), no
    /// DEL, no C1 control (CSI, OSC, ...): the bytes a terminal acts on.
    fn is_inert(text: &str) -> bool {
        !text.chars().any(char::is_control)
    }

    #[test]
    fn untrusted_and_lines_never_keep_a_control_character() {
        let hostile =
            "ok\u{1b}]0;pwned\u{7}\u{1b}[2J\r\ndigest: sha256:forged\u{7f}\u{9b}31m\u{85}\u{0}";
        let shown = Untrusted(hostile).to_string();
        assert!(is_inert(&shown), "{shown:?}");
        assert_eq!(shown, one_line(hostile));
        let kept: Vec<String> = lines(hostile).collect();
        // `\r\n` ends a line; a lone `\r` is replaced.
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(kept.iter().all(|l| is_inert(l)), "{kept:?}");
        assert!(kept[1].starts_with("digest: "), "{kept:?}");
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
