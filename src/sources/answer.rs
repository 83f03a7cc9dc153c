//! What the network kinds share: their parameter checks, the reading of OAuth2 token
//! answers (Google, Azure, a refresh-token grant) and the one-line failure built from a
//! status and a service's error code, never from a whole body. Public for the fuzz
//! target `source_answers` (`fuzz/README.md`), which reads hostile answers with them.
use std::time::{Duration, SystemTime};

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::types::Params;
use crate::error::MintError;
use crate::http::{self, Answer};
use crate::messages;
use crate::sanitize::sanitize;

/// Longest error code quoted from a service (`SignatureDoesNotMatch`, `invalid_grant`).
const MAX_CODE: usize = 64;
/// Longest error description quoted from a service.
const MAX_DESCRIPTION: usize = 160;
/// Longest token accepted from a token endpoint, bytes (Azure's run to a few KiB).
pub const MAX_TOKEN: usize = 64 * 1024;
/// Longest life a token endpoint may claim, seconds (a year: a longer one is not
/// believed and the token is kept as if it had an hour).
const MAX_EXPIRES_IN: u64 = 366 * 86_400;

/// Fails unless `params` has every one of `required` and nothing but those and
/// `optional`, each value non-empty and at most [`http::MAX_URL`] bytes of printable
/// ASCII.
pub fn check_names(params: &Params, required: &[&str], optional: &[&str]) -> Result<(), String> {
    for name in required {
        if !params.contains_key(*name) {
            return Err(messages::source_param_missing(name));
        }
    }
    for (name, value) in params {
        if !required.contains(&name.as_str()) && !optional.contains(&name.as_str()) {
            return Err(messages::source_param_unknown(name, required, optional));
        }
        if value.is_empty()
            || value.len() > http::MAX_URL
            || !value.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(messages::source_param_bad(name));
        }
    }
    Ok(())
}

/// The parameter `name`'s value, if it is a URL that passes [`http::check_url`].
pub fn check_url_param(params: &Params, name: &str) -> Result<(), String> {
    match params.get(name) {
        Some(url) => {
            http::check_url(url).map_err(|reason| messages::source_param_url(name, &reason))
        }
        None => Ok(()),
    }
}

/// Checks a one-line secret at `source add`: 1 to `max` printable ASCII characters
/// without spaces; else the kind's refusal naming `name` and the expected `form`.
pub fn check_one_line_secret(
    secret: &SecretString,
    max: usize,
    name: &str,
    form: &str,
) -> Result<(), String> {
    let s = secret.expose_secret();
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(crate::messages::source_secret_bad(name, form));
    }
    Ok(())
}

/// A value of letters, digits and `extra` only, 1 to `max` bytes.
pub fn plain_value(value: &str, extra: &str, max: usize) -> bool {
    !value.is_empty()
        && value.len() <= max
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

/// A failed mint of `kind` for `registry` at `endpoint`.
pub fn fail(kind: &str, registry: &str, endpoint: &str, detail: impl Into<String>) -> MintError {
    MintError {
        kind: kind.to_owned(),
        registry: registry.to_owned(),
        endpoint: endpoint.to_owned(),
        detail: detail.into(),
    }
}

/// A token endpoint's answer.
pub struct Token {
    /// `access_token` (or the asked field).
    pub token: SecretString,
    /// `expires_in` added to the time of the request.
    pub expires_at: Option<SystemTime>,
    /// A new `refresh_token`, when the server rotates them.
    pub refresh_token: Option<SecretString>,
}

/// The JSON fields of a token answer that are read.
#[derive(serde::Deserialize)]
struct TokenFields {
    access_token: Option<Zeroizing<String>>,
    refresh_token: Option<Zeroizing<String>>,
    expires_in: Option<serde_json::Value>,
}

/// Reads an OAuth2 token answer (RFC 6749 §5.1): `field` (`access_token` or
/// `refresh_token`) must be a non-empty string of at most [`MAX_TOKEN`] printable
/// ASCII bytes; `expires_in` is seconds as a number or a numeric string. A non-2xx
/// answer is [`status_detail`]'s line, with `sent` cut out.
pub fn token(
    answer: &Answer,
    field: &str,
    now: SystemTime,
    sent: &[&str],
) -> Result<Token, String> {
    if !answer.ok() {
        return Err(status_detail(answer, sent));
    }
    let fields: TokenFields = serde_json::from_slice(&answer.body)
        .map_err(|_| messages::token_answer_unreadable(answer.status))?;
    let (wanted, other) = if field == "refresh_token" {
        (fields.refresh_token, None)
    } else {
        (fields.access_token, fields.refresh_token)
    };
    let Some(value) = wanted else {
        return Err(messages::token_answer_missing(answer.status, field));
    };
    if value.is_empty() || value.len() > MAX_TOKEN || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(messages::token_answer_bad(answer.status, field));
    }
    let secs = match fields.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    let expires_at = secs
        .filter(|s| *s <= MAX_EXPIRES_IN)
        .map(|s| now + Duration::from_secs(s));
    Ok(Token {
        token: SecretString::from(value.as_str().to_owned()),
        expires_at,
        refresh_token: other
            .filter(|r| !r.is_empty() && r.len() <= MAX_TOKEN)
            .map(|r| SecretString::from(r.as_str().to_owned())),
    })
}

/// The one line of a non-2xx answer: `HTTP 400 invalid_grant: Invalid JWT Signature.`
/// The code and a short description are read from OAuth2's `error` /
/// `error_description`, AWS's JSON `__type` / `message` or XML `<Code>` / `<Message>`;
/// nothing else of the body is quoted, and every one of `sent` (the secrets the
/// request carried) is cut out of the description should the server echo one. A
/// redirect says so.
pub fn status_detail(answer: &Answer, sent: &[&str]) -> String {
    let (code, description) = error_code(&answer.body);
    let description = description.map(|d| {
        let mut d = Zeroizing::new(d);
        for secret in sent.iter().filter(|s| !s.is_empty()) {
            if d.contains(secret) {
                d = Zeroizing::new(d.replace(secret, "[redacted]"));
            }
        }
        d
    });
    let code = code
        .filter(|c| {
            plain_value(c, "_-.:#/", MAX_CODE)
                && !sent.iter().any(|s| !s.is_empty() && c.contains(s))
        })
        .map(|c| c.rsplit('#').next().unwrap_or_default().to_owned());
    let description = description.map(|d| short(&d));
    messages::http_status_detail(answer.status, code.as_deref(), description.as_deref())
}

/// A description cut to [`MAX_DESCRIPTION`] characters and made one safe line.
fn short(text: &str) -> String {
    let mut s: String = text.trim().chars().take(MAX_DESCRIPTION).collect();
    if text.trim().chars().count() > MAX_DESCRIPTION {
        s.push('…');
    }
    sanitize(&s)
}

/// A service's error code and description, from JSON (OAuth2, AWS JSON) or XML
/// (AWS query APIs).
fn error_code(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Fields {
        error: Option<serde_json::Value>,
        error_description: Option<String>,
        #[serde(rename = "__type")]
        kind: Option<String>,
        message: Option<String>,
        #[serde(rename = "Message")]
        message_upper: Option<String>,
    }
    if let Ok(f) = serde_json::from_slice::<Fields>(body) {
        let code = match f.error {
            Some(serde_json::Value::String(s)) => Some(s),
            // Some servers nest it: {"error": {"code": …, "message": …}}.
            Some(serde_json::Value::Object(o)) => o
                .get("code")
                .or_else(|| o.get("status"))
                .and_then(|c| c.as_str())
                .map(str::to_owned),
            _ => None,
        };
        let description = f.error_description.or(f.message).or(f.message_upper);
        return (code.or(f.kind), description);
    }
    let text = String::from_utf8_lossy(body);
    (xml_text(&text, "Code"), xml_text(&text, "Message"))
}

/// The text of the first `<tag>…</tag>` in `xml` (no attributes, no nesting): enough
/// for AWS's answers, which are generated, flat where read, and bounded in size. XML's
/// five predefined entities are decoded; anything else is taken as it is.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    let raw = &xml[start..start + len];
    if raw.contains('<') {
        return None;
    }
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &[u8]) -> Answer {
        Answer {
            status,
            body: Zeroizing::new(body.to_vec()),
        }
    }

    const NOW: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn token_answers_good_and_odd() {
        let t = token(
            &answer(
                200,
                br#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#,
            ),
            "access_token",
            NOW,
            &[],
        )
        .unwrap();
        use age::secrecy::ExposeSecret;
        assert_eq!(t.token.expose_secret(), "ya29.x");
        assert_eq!(t.expires_at, Some(NOW + Duration::from_secs(3599)));
        assert!(t.refresh_token.is_none());
        for (body, secs) in [
            (
                &br#"{"access_token":"a","expires_in":"3600"}"#[..],
                Some(3600),
            ),
            (br#"{"access_token":"a","expires_in":3600.7}"#, Some(3600)),
            (br#"{"access_token":"a"}"#, None),
            (br#"{"access_token":"a","expires_in":-5}"#, None),
            (br#"{"access_token":"a","expires_in":99999999999}"#, None),
            (br#"{"access_token":"a","expires_in":[1]}"#, None),
        ] {
            let t = token(&answer(200, body), "access_token", NOW, &[]).unwrap();
            assert_eq!(
                t.expires_at,
                secs.map(|s| NOW + Duration::from_secs(s)),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let rotated = token(
            &answer(200, br#"{"access_token":"a","refresh_token":"r2"}"#),
            "access_token",
            NOW,
            &[],
        )
        .unwrap();
        assert_eq!(rotated.refresh_token.unwrap().expose_secret(), "r2");
    }

    #[test]
    fn hostile_token_answers_are_one_line_without_the_body() {
        let huge = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(MAX_TOKEN + 1));
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                b"not json SECRETBODY".to_vec(),
                "not an OAuth2 token answer",
            ),
            (
                br#"{"access_token":42}"#.to_vec(),
                "not an OAuth2 token answer",
            ),
            (br#"{"token":"SECRETBODY"}"#.to_vec(), "no access_token"),
            (
                br#"{"access_token":""}"#.to_vec(),
                "access_token is not a usable token",
            ),
            (
                br#"{"access_token":"a b\u001b"}"#.to_vec(),
                "access_token is not a usable token",
            ),
            (huge.into_bytes(), "access_token is not a usable token"),
            (b"[1,2]".to_vec(), "not an OAuth2 token answer"),
        ];
        for (body, want) in cases {
            let e = token(&answer(200, &body), "access_token", NOW, &[])
                .err()
                .unwrap();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("SECRETBODY"), "{e}");
            assert!(e.len() < 200 && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn error_lines_quote_the_code_and_a_short_description_only() {
        let d = status_detail(&answer(
            400,
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature.","extra":"SECRETBODY"}"#,
        ), &[]);
        assert_eq!(d, "HTTP 400 invalid_grant: Invalid JWT Signature.");
        let d = status_detail(
            &answer(
                400,
                br#"{"error":"invalid_grant","error_description":"token r3fr3sh-S3CRET expired"}"#,
            ),
            &["r3fr3sh-S3CRET"],
        );
        assert_eq!(d, "HTTP 400 invalid_grant: token [redacted] expired");
        // A code that holds a secret sent (found by the fuzz target): dropped.
        let d = status_detail(
            &answer(400, br#"{"error":"x-r3fr3sh-S3CRET-y"}"#),
            &["r3fr3sh-S3CRET"],
        );
        assert_eq!(d, "HTTP 400");
        let d = status_detail(
            &answer(
                400,
                br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
            ),
            &[],
        );
        assert_eq!(d, "HTTP 400 invalid_grant: Invalid JWT Signature.");
        let d = status_detail(&answer(
            400,
            br#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}"#,
        ), &[]);
        assert!(
            d.starts_with("HTTP 400 UnrecognizedClientException: The security token"),
            "{d}"
        );
        let xml = b"<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message></Error><RequestId>x</RequestId></ErrorResponse>";
        let d = status_detail(&answer(403, xml), &[]);
        assert!(
            d.starts_with("HTTP 403 SignatureDoesNotMatch: The request signature"),
            "{d}"
        );
        let d = status_detail(&answer(502, b"<html>SECRETBODY\n</html>"), &[]);
        assert_eq!(d, "HTTP 502");
        let d = status_detail(&answer(302, b""), &[]);
        assert!(d.contains("redirect"), "{d}");
        // A hostile code or description: dropped or cut, one line.
        let long = format!(
            r#"{{"error":"x\u001b[2J","error_description":"{}\n{}"}}"#,
            "d".repeat(500),
            "SECRETBODY"
        );
        let d = status_detail(&answer(400, long.as_bytes()), &[]);
        assert!(
            !d.contains("SECRETBODY") && !d.contains('\n') && !d.contains('\x1b'),
            "{d}"
        );
        assert!(d.len() < 250, "{d}");
    }

    #[test]
    fn xml_text_is_flat_and_bounded() {
        assert_eq!(
            xml_text("<a><B>x&amp;y</B></a>", "B").as_deref(),
            Some("x&y")
        );
        assert_eq!(xml_text("<B>x", "B"), None);
        assert_eq!(xml_text("<B><C>1</C></B>", "B"), None);
        assert_eq!(xml_text("</B>x<B>", "B"), None);
        assert_eq!(xml_text("", "B"), None);
    }

    #[test]
    fn parameter_names_and_values() {
        let p = |kv: &[(&str, &str)]| -> Params {
            kv.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
        };
        assert!(check_names(&p(&[("a", "1")]), &["a"], &["b"]).is_ok());
        assert!(check_names(&p(&[("a", "1"), ("b", "2")]), &["a"], &["b"]).is_ok());
        assert!(check_names(&p(&[]), &["a"], &[]).unwrap_err().contains("a"));
        assert!(check_names(&p(&[("a", "1"), ("c", "3")]), &["a"], &["b"]).is_err());
        assert!(check_names(&p(&[("a", "")]), &["a"], &[]).is_err());
        assert!(check_names(&p(&[("a", "x y")]), &["a"], &[]).is_err());
        assert!(check_url_param(&p(&[("u", "http://example.com")]), "u").is_err());
        assert!(check_url_param(&p(&[("u", "http://127.0.0.1:1")]), "u").is_ok());
        assert!(check_url_param(&p(&[]), "u").is_ok());
    }

    proptest::proptest! {
        // Any answer: no panic, and a failure is one short line without a secret sent.
        #[test]
        fn any_answer_is_a_token_or_one_clean_line(
            status in 100u16..600,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            echo in proptest::bool::ANY,
        ) {
            let sent = "S3cret-Sent-Value";
            let body = if echo {
                format!(r#"{{"error":"{sent}","error_description":"no {sent} here"}}"#).into_bytes()
            } else {
                body
            };
            let a = answer(status, &body);
            if let Err(e) = token(&a, "access_token", NOW, &[sent]) {
                proptest::prop_assert!(!e.contains(sent), "{}", e);
                proptest::prop_assert!(!e.contains('\n') && !e.contains('\x1b'), "{}", e);
                proptest::prop_assert!(e.chars().count() < 300, "{}", e);
            }
        }
    }
}
