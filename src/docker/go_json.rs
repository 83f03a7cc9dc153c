//! JSON output byte-identical to Go's `encoding/json` `Encoder`, which every official
//! helper uses: compact, `<` `>` `&` written as `\u003c` `\u003e` `\u0026`, U+2028 and
//! U+2029 escaped, `\b` `\f` `\n` `\r` `\t` short forms (Go ≥ 1.22), other control
//! characters as `\u00XX`, everything else raw UTF-8.
//!
//! Output buffers that hold a secret are [`Zeroizing`] so the bytes are wiped once
//! printed.
use zeroize::Zeroizing;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string literal, escaped as Go does.
pub fn push_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            _ => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// The `get` answer: `{"ServerURL":…,"Username":…,"Secret":…}` and a newline.
pub fn credentials(server_url: &str, username: &str, secret: &str) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(
        // Worst-case escaping is 6 bytes per input byte (`\u00XX`): reserving it all
        // means the buffer never reallocates and leaves an unwiped copy behind.
        48 + (server_url.len() + username.len() + secret.len()) * 6,
    ));
    out.extend_from_slice(b"{\"ServerURL\":");
    push_string(&mut out, server_url);
    out.extend_from_slice(b",\"Username\":");
    push_string(&mut out, username);
    out.extend_from_slice(b",\"Secret\":");
    push_string(&mut out, secret);
    out.extend_from_slice(b"}\n");
    out
}

/// The `list` answer: an object from server URL to username, keys in byte order (Go
/// sorts map keys), `{}` when empty, and a newline.
pub fn string_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut pairs: Vec<_> = pairs.into_iter().collect();
    pairs.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = Vec::with_capacity(2 + pairs.len() * 48);
    out.push(b'{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_string(&mut out, k);
        out.push(b':');
        push_string(&mut out, v);
    }
    out.extend_from_slice(b"}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(s: &str) -> String {
        let mut v = Vec::new();
        push_string(&mut v, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_like_go() {
        assert_eq!(enc("<token>"), r#""\u003ctoken\u003e""#);
        assert_eq!(enc("a&b"), r#""a\u0026b""#);
        assert_eq!(enc("\u{2028}\u{2029}"), r#""\u2028\u2029""#);
        assert_eq!(enc("q\"b\\"), r#""q\"b\\""#);
        assert_eq!(
            enc("\n\r\t\u{8}\u{c}\u{1}\u{1f}"),
            r#""\n\r\t\b\f\u0001\u001f""#
        );
        assert_eq!(enc("\u{7f}é😀"), "\"\u{7f}é😀\"");
    }

    #[test]
    fn credentials_shape() {
        let out = credentials("https://index.docker.io/v1/", "<token>", "s");
        assert_eq!(
            &out[..],
            b"{\"ServerURL\":\"https://index.docker.io/v1/\",\"Username\":\"\\u003ctoken\\u003e\",\"Secret\":\"s\"}\n"
        );
    }

    #[test]
    fn map_sorted_and_empty() {
        assert_eq!(string_map([]), b"{}\n");
        assert_eq!(
            string_map([("b", "2"), ("a", "1")]),
            b"{\"a\":\"1\",\"b\":\"2\"}\n"
        );
    }

    proptest! {
        // encode → decode: any string survives a round trip through a JSON parser.
        #[test]
        fn roundtrip_through_serde(s in any::<String>()) {
            let encoded = enc(&s);
            let back: String = serde_json::from_str(&encoded).unwrap();
            prop_assert_eq!(back, s);
        }

        #[test]
        fn credentials_roundtrip(a in any::<String>(), b in any::<String>(), c in any::<String>()) {
            let out = credentials(&a, &b, &c);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(v["ServerURL"].as_str().unwrap(), a.as_str());
            prop_assert_eq!(v["Username"].as_str().unwrap(), b.as_str());
            prop_assert_eq!(v["Secret"].as_str().unwrap(), c.as_str());
            prop_assert_eq!(out.iter().filter(|&&x| x == b'\n').count(), 1);
        }
    }
}
