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
//! authenticated rotation settings name (`src/vault/meta.rs`), never through a proxy
//! (`HTTPS_PROXY` & co. are not read), never after a redirect (not followed), plain
//! HTTP only to loopback (the settings' check), TLS by rustls with `ring` and the
//! system CA bundle — the same client settings as `src/openbao/`, whose client this
//! floor may not import (one family per backend, `src/lib.rs`). Every call has a
//! connect and a total timeout; answers are bounded and read into wiped memory.
//!
//! Nothing here prints or prompts; failures are [`Error::Rotate`] lines that name the
//! provider, the registry and the endpoint, never a secret.
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::messages;
use crate::sanitize::{sanitize, shorten};

pub mod gitlab;
pub mod harbor;

/// Most time for one call, connection included (the vault's lock is not held during
/// a call: `src/commands/rotate.rs`).
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// Most time to open the connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read, bytes: these answers are a few hundred bytes.
pub const MAX_RESPONSE: usize = 64 * 1024;
/// The system CA bundles tried, in order (as `src/openbao/`).
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
];

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

/// An answer: its status and bounded body.
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body, at most [`MAX_RESPONSE`] bytes, wiped on drop.
    pub body: Zeroizing<Vec<u8>>,
}

/// A client for one provider's API base URL, for one entry.
pub struct Http {
    agent: ureq::Agent,
    api: String,
    kind: &'static str,
    server: String,
}

impl Http {
    /// A client for `api` (already checked by `vault::meta::check_api_url`), for the
    /// `kind` rotation of `server` (both only used in errors).
    pub fn new(api: &str, kind: &'static str, server: &str) -> Result<Http, Error> {
        let plain = api
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("http://"));
        let roots = if plain { Vec::new() } else { system_roots() };
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let config = ureq::Agent::config_builder()
            // ureq's default reads HTTPS_PROXY & co.: never here.
            .proxy(None)
            // A 3xx is refused, never followed with the secret.
            .max_redirects(0)
            .http_status_as_error(false)
            .https_only(!plain)
            .timeout_global(Some(TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .user_agent(concat!(
                "docker-credential-lockbox/",
                env!("CARGO_PKG_VERSION")
            ))
            .max_idle_connections(1)
            .tls_config(tls)
            .build();
        Ok(Http {
            agent: config.new_agent(),
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
        let result = match (method, body) {
            ("GET", None) => {
                let mut r = self.agent.get(&url);
                for (k, v) in headers {
                    r = r.header(*k, *v);
                }
                r.call()
            }
            (_, body) => {
                let mut r = match method {
                    "PATCH" => self.agent.patch(&url),
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.post(&url),
                }
                .header("Content-Type", "application/json");
                for (k, v) in headers {
                    r = r.header(*k, *v);
                }
                r.send(body.unwrap_or_default())
            }
        };
        let response = result.map_err(|e| self.error(path, &transport(&e)))?;
        let status = response.status().as_u16();
        let reader = response.into_body().into_reader();
        let body = crate::secret_io::read_wiped(reader.take(MAX_RESPONSE as u64 + 1), MAX_RESPONSE)
            .map_err(|e| self.error(path, &e.to_string()))?;
        if body.len() > MAX_RESPONSE {
            return Err(self.error(path, "the answer is too large"));
        }
        Ok(Answer { status, body })
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

/// A transport failure in words, without the URL's secrets (there are none in it).
fn transport(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => format!("no answer within {} s", TIMEOUT.as_secs()),
        ureq::Error::HostNotFound => "the host name does not resolve".into(),
        other => other.to_string(),
    }
}

/// The system CA bundle's certificates (none found: no HTTPS server is trusted, and
/// the call fails with a certificate error that says so).
fn system_roots() -> Vec<ureq::tls::Certificate<'static>> {
    let Some(path) = SYSTEM_CA_BUNDLES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
    else {
        return Vec::new();
    };
    let Ok(file) = crate::secret_io::open(path, crate::secret_io::Accept::RegularFile) else {
        return Vec::new();
    };
    let mut pem = Vec::new();
    if file.take(16 << 20).read_to_end(&mut pem).is_err() {
        return Vec::new();
    }
    ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect()
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
