//! GitLab: an access token rotating itself, as GitLab's REST API documents it
//! ("Personal access tokens API", "Rotate a personal access token", GitLab 16.10+):
//!
//! - `POST /api/v4/personal_access_tokens/self/rotate`, authenticated with the token
//!   itself in the `PRIVATE-TOKEN` header (scope `api` or `self_rotate`), with an
//!   optional `expires_at` (`YYYY-MM-DD`; GitLab refuses dates past its maximum
//!   lifetime with 400);
//! - `200 OK` with the new token's `token` and `expires_at` (`YYYY-MM-DD`, the token
//!   stops working at 00:00 UTC that day); the old token is revoked at once;
//! - `401` for a token that is expired, revoked or wrong, `403` for one without the
//!   scope, `400` for a bad date.
//!
//! GitLab makes the new token: if the answer is lost in flight (the connection drops
//! after GitLab rotated), no client can recover it; lockbox seals it into the vault
//! the moment the answer has been read (`src/commands/rotate.rs`).
use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::{Http, Renewed};
use crate::error::Error;
use crate::vault::meta::parse_date;

/// The endpoint, below the API's base URL.
pub const ROTATE_PATH: &str = "/api/v4/personal_access_tokens/self/rotate";
/// The header GitLab reads a token from.
pub const TOKEN_HEADER: &str = "PRIVATE-TOKEN";

/// The request body: the new token's expiry date.
pub fn request_body(expires_on: &str) -> Vec<u8> {
    serde_json::json!({ "expires_at": expires_on })
        .to_string()
        .into_bytes()
}

/// The new token and its expiry from a `200` answer. The token comes first: GitLab
/// has revoked the old one already, so any token that arrived is kept (the answer is
/// bounded by [`super::MAX_RESPONSE`], far below the vault's entry bound), and an
/// expiry that is missing or not a date only makes [`Renewed::expires_at`] `None`
/// with [`Renewed::date_unread`] set (the caller warns).
pub fn parse_answer(body: &[u8]) -> Result<Renewed, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<Zeroizing<String>>,
        #[serde(default)]
        expires_at: serde_json::Value,
    }
    let a: Answer = serde_json::from_slice(body)
        .map_err(|_| "the answer is not the JSON GitLab documents".to_owned())?;
    let token = a
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "the answer holds no token".to_owned())?;
    let (expires_at, date_unread) = match &a.expires_at {
        serde_json::Value::Null => (None, false),
        serde_json::Value::String(d) => match parse_date(d) {
            Some(t) => (Some(t), false),
            None => (None, true),
        },
        _ => (None, true),
    };
    Ok(Renewed {
        secret: SecretString::from(token.as_str().to_owned()),
        expires_at,
        date_unread,
    })
}

/// The endpoint that describes the token it is called with.
pub const SELF_PATH: &str = "/api/v4/personal_access_tokens/self";

/// The token's `expires_at` from a `GET /personal_access_tokens/self` answer.
pub fn parse_self(body: &[u8]) -> Result<Option<u64>, String> {
    #[derive(serde::Deserialize)]
    struct Info {
        expires_at: Option<String>,
    }
    let info: Info = serde_json::from_slice(body)
        .map_err(|_| "the answer is not the JSON GitLab documents".to_owned())?;
    match info.expires_at {
        None => Ok(None),
        Some(d) => parse_date(&d)
            .map(Some)
            .ok_or_else(|| "the answer's expires_at is not a date".to_owned()),
    }
}

/// When `token` expires, as GitLab says (`GET /api/v4/personal_access_tokens/self`).
pub fn expires_at(http: &Http, token: &SecretString) -> Result<Option<u64>, Error> {
    let answer = http.call(
        "GET",
        SELF_PATH,
        &[(TOKEN_HEADER, token.expose_secret())],
        None,
    )?;
    if answer.status != 200 {
        return Err(http.status_error(SELF_PATH, &answer, &[token]));
    }
    parse_self(&answer.body).map_err(|r| http.error(SELF_PATH, &r))
}

/// Rotates `old` through `http`, asking for a token that expires on `expires_on`.
pub fn rotate(http: &Http, old: &SecretString, expires_on: &str) -> Result<Renewed, Error> {
    let answer = http.call(
        "POST",
        ROTATE_PATH,
        &[(TOKEN_HEADER, old.expose_secret())],
        Some(&request_body(expires_on)),
    )?;
    // Any success: GitLab may have revoked the old token, so a token in it is kept.
    if !(200..300).contains(&answer.status) {
        return Err(http.status_error(ROTATE_PATH, &answer, &[old]));
    }
    parse_answer(&answer.body).map_err(|r| http.error(ROTATE_PATH, &r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_answer_parses() {
        // The example answer of GitLab's "Rotate a personal access token".
        let body = br#"{"id":42,"name":"Rotated Token","revoked":false,"created_at":"2023-08-01T15:00:00.000Z","description":"Test Token","scopes":["api"],"user_id":1337,"last_used_at":null,"active":true,"expires_at":"2023-08-15","token":"s3cr3t"}"#;
        let r = parse_answer(body).unwrap();
        assert_eq!(r.secret.expose_secret(), "s3cr3t");
        assert_eq!(r.expires_at, Some(1_692_057_600));
        assert!(!r.date_unread);
        let no_date = parse_answer(br#"{"token":"t","expires_at":null}"#).unwrap();
        assert_eq!(no_date.expires_at, None);
        assert!(!no_date.date_unread);
        // The old token is revoked: a bad date or a long token never drops the new one.
        for odd in [
            &br#"{"token":"t","expires_at":"soon"}"#[..],
            br#"{"token":"t","expires_at":20230815}"#,
        ] {
            let r = parse_answer(odd).unwrap();
            assert_eq!((r.secret.expose_secret(), r.expires_at), ("t", None));
            assert!(r.date_unread);
        }
        let long = format!(r#"{{"token":"{}"}}"#, "a".repeat(10_000));
        assert_eq!(
            parse_answer(long.as_bytes())
                .unwrap()
                .secret
                .expose_secret()
                .len(),
            10_000
        );
        for bad in [
            &br#"{"expires_at":"2023-08-15"}"#[..],
            br#"{"token":""}"#,
            b"<html>",
        ] {
            assert!(parse_answer(bad).is_err());
        }
        assert_eq!(
            request_body("2027-01-31"),
            br#"{"expires_at":"2027-01-31"}"#
        );
    }
}
