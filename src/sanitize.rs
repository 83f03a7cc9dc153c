//! Making outside text safe to show: control characters (terminal escapes among them)
//! replaced, long server-provided text cut. A leaf (floor 0 in `src/lib.rs`): plain
//! strings in and out.

/// Longest server-provided text quoted in an error, characters.
pub const MAX_DETAIL: usize = 300;

/// Replaces control characters (terminal escapes among them, C1 included) and the
/// bidirectional formatting characters (which reorder what a terminal shows) so that
/// an error text built from a hostile server URL or path cannot drive the terminal,
/// disguise itself or break the one-line protocol framing.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if unsafe_to_show(c) { '\u{FFFD}' } else { c })
        .collect()
}

/// Whether `c` is a control character or a bidirectional formatting character.
fn unsafe_to_show(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `json` (serialized JSON) with every control and bidirectional formatting
/// character that is still raw written as a `\uXXXX` escape: the same value to a
/// JSON reader, nothing a terminal acts on. Such characters can only be inside
/// strings (JSON's own syntax is ASCII), and all are in the BMP.
pub fn escape_json_controls(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if unsafe_to_show(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
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
        // C1 (CSI) and a right-to-left override.
        assert_eq!(sanitize("a\u{9b}2Jb\u{202E}c"), "a\u{FFFD}2Jb\u{FFFD}c");
    }

    #[test]
    fn json_keeps_its_value_with_c1_and_bidi_characters_escaped() {
        let value = serde_json::json!({"exe": "/x\u{9b}31m\u{202E}gpj.exe", "n": "ü\n"});
        let raw = serde_json::to_string(&value).unwrap();
        let escaped = escape_json_controls(&raw);
        assert!(escaped.contains(r"\u009b31m\u202egpj"), "{escaped}");
        assert!(escaped.chars().all(|c| !unsafe_to_show(c)), "{escaped}");
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back, value);
    }
}
