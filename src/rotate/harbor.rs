//! Harbor: a robot account's secret refreshed, as Harbor's v2.0 REST API (its
//! swagger, `api/v2.0/swagger.yaml`) documents it:
//!
//! - `PATCH /api/v2.0/robots/{robot_id}` with `{"secret": "…"}` ("Refresh the robot
//!   secret"): with a secret, Harbor sets that one (it must have 8 to 128 characters
//!   with an upper- and a lower-case letter and a digit); `200` with `{"secret": …}`;
//!   the old secret stops working at once; `401`/`403`/`404` as usual;
//! - `GET /api/v2.0/robots/{robot_id}`: the robot, with `expires_at` (Unix seconds,
//!   `-1` for never).
//!
//! lockbox authenticates as the robot itself (HTTP basic auth with the entry's
//! username, `robot$…`, and its secret), which needs a robot that may update robots
//! (Harbor 2.2+ permission `robot: update`, or an admin-made system robot).
//!
//! lockbox makes the new secret, so it is sealed in the vault as pending before Harbor
//! hears of it; after a crash the next `rotate` asks Harbor to refresh the pending
//! secret to itself, authenticated with it: accepted, Harbor holds it and lockbox keeps
//! it; refused, and the old secret accepted (an authenticated `GET`), Harbor still
//! holds the old one and the rotation starts over; both refused, both are kept.
use age::secrecy::{ExposeSecret, SecretString};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use super::Http;
use crate::error::Error;
use crate::vault::crypto::random_bytes;

/// The robot's path below the API's base URL.
pub fn robot_path(robot_id: u64) -> String {
    format!("/api/v2.0/robots/{robot_id}")
}

/// A new robot secret: `Lb1` and 32 random letters and digits (about 190 bits), so
/// Harbor's rule (upper, lower, digit, 8 to 128) always holds.
pub fn new_secret() -> SecretString {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = Zeroizing::new(String::from("Lb1"));
    while out.len() < 35 {
        for b in random_bytes::<64>() {
            // 62 · 4 = 248: rejecting 248..=255 keeps every character equally likely.
            if b < 248 && out.len() < 35 {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    SecretString::from(out.as_str().to_owned())
}

/// The `Authorization` header for `username`:`secret`.
fn basic(username: &str, secret: &SecretString) -> Zeroizing<String> {
    let pair = Zeroizing::new(format!("{username}:{}", secret.expose_secret()));
    Zeroizing::new(format!("Basic {}", B64.encode(pair.as_bytes())))
}

/// The refresh's request body.
pub fn request_body(secret: &SecretString) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(
        serde_json::json!({ "secret": secret.expose_secret() })
            .to_string()
            .into_bytes(),
    )
}

/// How a refresh went.
pub enum Refreshed {
    /// Harbor holds the new secret now: the one sent, or (`Some`) the different one
    /// its answer names.
    Done(Option<SecretString>),
    /// Harbor refused the credential used to authenticate (401).
    Refused,
}

/// Asks Harbor to set robot `robot_id`'s secret to `new`, authenticated as
/// `username` with `auth`.
pub fn refresh(
    http: &Http,
    robot_id: u64,
    username: &str,
    auth: &SecretString,
    new: &SecretString,
) -> Result<Refreshed, Error> {
    let path = robot_path(robot_id);
    let header = basic(username, auth);
    let answer = http.call(
        "PATCH",
        &path,
        &[("Authorization", header.as_str())],
        Some(&request_body(new)),
    )?;
    match answer.status {
        200..=299 => Ok(Refreshed::Done(answered_secret(&answer.body, new))),
        401 => Ok(Refreshed::Refused),
        _ => Err(http.status_error(&path, &answer, &[auth, new])),
    }
}

/// The secret a refresh's answer names (`{"secret": …}`) when it is not empty and not
/// `sent`: Harbor holds that one then, and it is the one to keep.
pub fn answered_secret(body: &[u8], sent: &SecretString) -> Option<SecretString> {
    #[derive(serde::Deserialize)]
    struct Answer {
        secret: Option<Zeroizing<String>>,
    }
    let a: Answer = serde_json::from_slice(body).ok()?;
    a.secret
        .filter(|s| !s.is_empty() && s.as_str() != sent.expose_secret())
        .map(|s| SecretString::from(s.as_str().to_owned()))
}

/// The robot's expiry from a `GET` answer: `None` for `-1` (never) or no member.
pub fn parse_robot(body: &[u8]) -> Result<Option<u64>, String> {
    #[derive(serde::Deserialize)]
    struct Robot {
        expires_at: Option<i64>,
    }
    let r: Robot = serde_json::from_slice(body)
        .map_err(|_| "the answer is not the robot JSON Harbor documents".to_owned())?;
    Ok(r.expires_at
        .and_then(|t| u64::try_from(t).ok())
        .filter(|&t| t <= crate::vault::meta::MAX_EXPIRES_AT))
}

/// Whether Harbor accepts `secret` as the robot's: an authenticated `GET` of the robot
/// answered with anything but 401 (a 403 is an authenticated robot without `robot:
/// read`). Other statuses are errors.
pub fn accepts(
    http: &Http,
    robot_id: u64,
    username: &str,
    secret: &SecretString,
) -> Result<bool, Error> {
    let path = robot_path(robot_id);
    let header = basic(username, secret);
    let answer = http.call("GET", &path, &[("Authorization", header.as_str())], None)?;
    match answer.status {
        200..=299 | 403 => Ok(true),
        401 => Ok(false),
        _ => Err(http.status_error(&path, &answer, &[secret])),
    }
}

/// The robot's expiry, read with its (new) secret.
pub fn expires_at(
    http: &Http,
    robot_id: u64,
    username: &str,
    secret: &SecretString,
) -> Result<Option<u64>, Error> {
    let path = robot_path(robot_id);
    let header = basic(username, secret);
    let answer = http.call("GET", &path, &[("Authorization", header.as_str())], None)?;
    if answer.status != 200 {
        return Err(http.status_error(&path, &answer, &[secret]));
    }
    parse_robot(&answer.body).map_err(|r| http.error(&path, &r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_secrets_meet_harbors_rule_and_differ() {
        let a = new_secret();
        let b = new_secret();
        let s = a.expose_secret();
        assert_eq!(s.len(), 35);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(s.chars().any(|c| c.is_ascii_uppercase()));
        assert!(s.chars().any(|c| c.is_ascii_lowercase()));
        assert!(s.chars().any(|c| c.is_ascii_digit()));
        assert_ne!(s, b.expose_secret());
    }

    #[test]
    fn robot_answers() {
        assert_eq!(
            parse_robot(br#"{"id":3,"name":"robot$ci","expires_at":1801353600,"duration":30}"#),
            Ok(Some(1_801_353_600))
        );
        assert_eq!(parse_robot(br#"{"id":3,"expires_at":-1}"#), Ok(None));
        assert_eq!(parse_robot(br#"{"id":3}"#), Ok(None));
        assert!(parse_robot(b"[]").is_err());
    }

    #[test]
    fn a_refresh_answer_naming_another_secret_is_kept() {
        let sent = SecretString::from("Sent1secret".to_owned());
        let other = answered_secret(br#"{"secret":"Other1secret"}"#, &sent).unwrap();
        assert_eq!(other.expose_secret(), "Other1secret");
        for same in [
            &br#"{"secret":"Sent1secret"}"#[..],
            br#"{"secret":""}"#,
            br#"{}"#,
            b"",
        ] {
            assert!(answered_secret(same, &sent).is_none());
        }
    }

    #[test]
    fn basic_auth_is_rfc7617() {
        let h = basic("robot$ci", &SecretString::from("pw".to_owned()));
        assert_eq!(h.as_str(), "Basic cm9ib3QkY2k6cHc=");
    }
}
