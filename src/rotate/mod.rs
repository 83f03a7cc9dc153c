//! Rotation providers: the registry APIs that renew a stored secret in place
//! (`lockbox rotate`, `docs/BUILD_SERVER.md` "Rotation"). One file per provider, each
//! a pure request builder and response parser over the small client here:
//!
//! - `gitlab.rs`: a GitLab access token rotating itself
//!   (`POST /api/v4/personal_access_tokens/self/rotate`, GitLab 16.10+): GitLab makes
//!   the new token, revokes the old one and answers with the new one and its date;
//! - `harbor.rs`: a Harbor robot account's secret refreshed to one lockbox makes
//!   (`PATCH /api/v2.0/robots/{id}`), so the new secret is sealed in the vault before
//!   Harbor is asked to switch, and a crash at any point is recovered.
//!
//! The trust boundary is the old secret: it is sent only to the API URL the entry's
//! authenticated rotation settings name (`src/vault/meta.rs`), through the client of
//! `src/http.rs` (shared with the sealed sources): never through a proxy
//! (`HTTPS_PROXY` & co. are not read), never after a redirect (not followed), plain
//! HTTP only to loopback, TLS by rustls with `ring` and the system CA bundle. Every
//! call has a connect and a total timeout; answers are bounded ([`MAX_RESPONSE`]) and
//! read into wiped memory.
//!
//! Nothing here prints or prompts; failures are [`Error::Rotate`] lines that name the
//! provider, the registry and the endpoint, never a secret.
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::Error;
pub use crate::http::Answer;
use crate::messages;
use crate::sanitize::{sanitize, shorten};

pub mod gitlab;
pub mod harbor;

/// Most time for one call, connection included (the vault's lock is not held during
/// a call: `src/commands/rotate.rs`).
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// Largest answer read, bytes: these answers are a few hundred bytes.
pub const MAX_RESPONSE: usize = 64 * 1024;

/// A renewed credential.
pub struct Renewed {
    /// The new secret.
    pub secret: age::secrecy::SecretString,
    /// When it expires, as the provider says (Unix seconds).
    pub expires_at: Option<u64>,
    /// The provider's answer named an expiry that is not a date (the credential is
    /// kept all the same; the caller warns).
    pub date_unread: bool,
}

/// A client for one provider's API base URL, for one entry.
pub struct Http {
    client: crate::http::Http,
    api: String,
    kind: &'static str,
    server: String,
}

impl Http {
    /// A client for `api` (already checked by `vault::meta::check_api_url`), for the
    /// `kind` rotation of `server` (both only used in errors).
    pub fn new(api: &str, kind: &'static str, server: &str) -> Result<Http, Error> {
        Ok(Http {
            client: crate::http::Http::new(TIMEOUT),
            api: api.trim_end_matches('/').to_owned(),
            kind,
            server: server.to_owned(),
        })
    }

    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    /// A one-line error for a call to `path`.
    pub fn error(&self, path: &str, detail: &str) -> Error {
        Error::Rotate(messages::rotate_failed(
            self.kind,
            &self.server,
            &self.url(path),
            &sanitize(&shorten(detail)),
        ))
    }

    /// One call: `method` to `path` with `headers` and an optional JSON body. A
    /// transport failure is an error; any status is an [`Answer`].
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Answer, Error> {
        let url = self.url(path);
        let mut all = Vec::with_capacity(headers.len() + 1);
        if method != "GET" {
            all.push(("Content-Type", "application/json"));
        }
        all.extend_from_slice(headers);
        let answer = self
            .client
            .send(method, &url, &all, body, self.client.deadline())
            .map_err(|e| self.error(path, &e))?;
        if answer.body.len() > MAX_RESPONSE {
            return Err(self.error(path, "the answer is too large"));
        }
        Ok(answer)
    }

    /// The error for an answer that is not a success: its status and its body,
    /// shortened and sanitized, with every one of `sent` (the secrets the request
    /// carried) cut out should the server have echoed one. A 2xx body is never
    /// quoted: a success may carry a new secret.
    pub fn status_error(&self, path: &str, answer: &Answer, sent: &[&SecretString]) -> Error {
        if (200..300).contains(&answer.status) {
            return self.error(path, &messages::unexpected_success(answer.status));
        }
        let mut text = Zeroizing::new(String::from_utf8_lossy(&answer.body).into_owned());
        for secret in sent {
            let s = secret.expose_secret();
            if !s.is_empty() && text.contains(s) {
                text = Zeroizing::new(text.replace(s, "[redacted]"));
            }
        }
        let hint = match answer.status {
            301..=308 => " (a redirect: give the final URL with --api)",
            401 => " (the credential was refused)",
            403 => " (the credential may not do this: check its scopes or permissions)",
            404 => " (no such endpoint or robot: check --api and --robot-id)",
            _ => "",
        };
        self.error(
            path,
            &format!("HTTP {}{hint}: {}", answer.status, text.trim()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_never_quote_a_success_and_cut_out_the_secrets_sent() {
        let http = Http::new("http://127.0.0.1:9", "harbor-robot", "reg.example").unwrap();
        let old = SecretString::from("OldSecret1".to_owned());
        let answer = |status, body: &str| Answer {
            status,
            body: Zeroizing::new(body.as_bytes().to_vec()),
        };
        let success = http
            .status_error("/x", &answer(202, r#"{"secret":"Fresh1secret"}"#), &[&old])
            .message();
        assert!(success.contains("HTTP 202"), "{success}");
        assert!(!success.contains("Fresh1secret"), "{success}");
        let refused = http
            .status_error("/x", &answer(400, "bad: OldSecret1 is wrong"), &[&old])
            .message();
        assert!(refused.contains("bad: [redacted] is wrong"), "{refused}");
    }
}
