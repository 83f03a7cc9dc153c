//! Making outside text safe to show: control characters (terminal escapes among them)
//! replaced, long server-provided text cut. A leaf (floor 0 in `src/lib.rs`): plain
//! strings in and out.

/// Longest server-provided text quoted in an error, characters.
pub const MAX_DETAIL: usize = 300;

/// Replaces control characters (terminal escapes among them) so that an error text
/// built from a hostile server URL or path cannot drive the terminal or break the
/// one-line protocol framing.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// `text` cut to [`MAX_DETAIL`] characters, with `…` when it was longer.
pub fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_DETAIL {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(MAX_DETAIL).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_removes_escapes_and_newlines() {
        assert_eq!(
            sanitize("a\x1b[2Jb\nc\td"),
            "a\u{FFFD}[2Jb\u{FFFD}c\u{FFFD}d"
        );
        assert_eq!(sanitize("plain ü"), "plain ü");
    }
}
