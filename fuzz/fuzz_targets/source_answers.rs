//! Answers of the token and AWS endpoints the sealed sources mint from
//! (`lockbox::sources`). The input is `[status hi][status lo] body`. Checks:
//!
//! - the OAuth2 token reader (`access_token`, `refresh_token`), the ECR and the STS
//!   `AssumeRole` readers and the failure line never panic;
//! - every error is one line without control characters, short, and never holds the
//!   secret the request sent (a fixed needle, also planted in the seeds);
//! - an accepted token is printable ASCII of at most `MAX_TOKEN` bytes; an ECR
//!   credential has a printable username and password.
#![no_main]

use secrecy::ExposeSecret;
use libfuzzer_sys::fuzz_target;
use lockbox::http::Answer;
use lockbox::sources::answer::{MAX_TOKEN, status_detail, token};
use lockbox::sources::aws::{ecr_token, session_of};
use zeroize::Zeroizing;

/// Stands for a secret the request carried.
const SENT: &str = "SENT-s3cr3t-value";

fn check_error(text: &str) {
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(text.chars().count() < 400, "{} chars", text.chars().count());
    assert!(!text.contains(SENT), "{text:?}");
}

fn printable(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data {
        [hi, lo, body @ ..] => (u16::from_be_bytes([*hi, *lo]), body),
        _ => return,
    };
    let answer = Answer {
        status,
        body: Zeroizing::new(body.to_vec()),
    };
    let now = std::time::SystemTime::UNIX_EPOCH;
    for field in ["access_token", "refresh_token"] {
        match token(&answer, field, now, &[SENT]) {
            Ok(t) => {
                let s = t.token.expose_secret();
                assert!(printable(s) && s.len() <= MAX_TOKEN);
            }
            Err(e) => check_error(&e),
        }
    }
    match ecr_token(&answer) {
        Ok(m) => assert!(printable(&m.username) && printable(m.secret.expose_secret())),
        Err(e) => check_error(&e),
    }
    if let Err(e) = session_of(&answer) {
        check_error(&e);
    }
    check_error(&status_detail(&answer, &[SENT]));
});
