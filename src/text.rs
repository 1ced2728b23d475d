//! The sanitiser: untrusted text (message bodies, names, notes from other
//! machines) made safe to show to a terminal, a model or a shell reader —
//! controls and invisible characters escaped, one-line cells, quoting. A
//! leaf: it imports nothing of ours.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for characters that must never reach a terminal or a model raw: C0
/// and C1 controls (but newline and tab), DEL, the bidirectional overrides
/// that can make text read differently from what it is, the Unicode line and
/// paragraph separators (which some readers treat as newlines), and the
/// invisible ones that can hide text: zero-width and direction marks
/// (U+200B–U+200F, U+2060–U+2064, U+061C, U+180E, U+FEFF) and the tag
/// characters (U+E0000–U+E007F), which spell out ASCII nobody sees.
fn is_dangerous(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(
            c,
            '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2060}'..='\u{2064}'
                | '\u{061c}'
                | '\u{180e}'
                | '\u{feff}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

/// Windows line ends (and lone CRs) as plain newlines, so that a body
/// written on Windows shows as lines, not `\x0d` at the end of each.
pub fn normalize_newlines(s: &str) -> Cow<'_, str> {
    if s.contains('\r') {
        Cow::Owned(s.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Shows dangerous characters escaped (`\x1b`, `\u{202e}`); everything else,
/// newlines and tabs included, stays as it is.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    let s = normalize_newlines(s);
    if !s.chars().any(is_dangerous) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_dangerous(c) {
            if (c as u32) < 0x80 {
                let _ = write!(out, "\\x{:02x}", c as u32);
            } else {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A single-line rendering of untrusted text for a structural line, in
/// double quotes: quotes, backslashes, newlines, tabs and controls escaped.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut buf = [0u8; 4];
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&escape_controls(c.encode_utf8(&mut buf))),
        }
    }
    out.push('"');
    out
}

/// One character as `quoted` shows it.
pub fn quoted_char(c: char) -> String {
    quoted(c.encode_utf8(&mut [0u8; 4]))
}

/// One line of untrusted text for a table cell: escaped, newlines shown as
/// `⏎`, cut to `max` characters.
pub fn cell(s: &str, max: usize) -> String {
    let one_line: String = escape_controls(s)
        .chars()
        .map(|c| match c {
            '\n' => '⏎',
            '\t' => ' ',
            c => c,
        })
        .collect();
    clip(&one_line, max)
}

/// Cuts to at most `max` characters, marking the cut with `…`.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// A project or resource name as a command argument: bare when it is plain,
/// quoted otherwise (and always free of controls).
pub fn shell_word(s: &str) -> String {
    let shown = cell(s, 80);
    if !shown.is_empty()
        && shown
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '@'))
    {
        shown
    } else {
        shell_quote(&shown)
    }
}

/// One shell word, whatever the text: single quotes, and `'\''` for a quote.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_but_newlines_and_tabs_kept() {
        assert_eq!(
            escape_controls("a\x1b[31mb\n\tc\u{7f}"),
            "a\\x1b[31mb\n\tc\\x7f"
        );
        assert_eq!(escape_controls("x\u{202e}y\u{9b}"), "x\\u{202e}y\\u{9b}");
        assert!(matches!(escape_controls("plain ✓"), Cow::Borrowed(_)));
        // Invisible characters that could hide instructions.
        for c in [
            '\u{200b}',
            '\u{200f}',
            '\u{2060}',
            '\u{2064}',
            '\u{061c}',
            '\u{180e}',
            '\u{feff}',
            '\u{e0000}',
            '\u{e0041}',
            '\u{e007f}',
        ] {
            let shown = escape_controls(&format!("a{c}b")).into_owned();
            assert_eq!(shown, format!("a\\u{{{:x}}}b", c as u32));
        }
        // CRLF and lone CR are plain newlines.
        assert_eq!(escape_controls("one\r\ntwo\rthree"), "one\ntwo\nthree");
    }
}
