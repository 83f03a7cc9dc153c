//! The `gcp` source: a Google service-account key mints an OAuth2 access token with the
//! JWT-bearer grant (RFC 7523; Google's "Using OAuth 2.0 for server to server
//! applications"), which Artifact Registry and GCR take as the password of
//! `oauth2accesstoken`.
//!
//! - Parameters: optional `token-uri` (default `https://oauth2.googleapis.com/token`).
//!   The key file's own `token_uri` is never used as an endpoint: the key file is the
//!   secret, not part of the authenticated definition, and a URL in it would choose
//!   where the signed assertion goes.
//! - Secret: the key file's bytes (JSON with `client_email`, `private_key`: PEM
//!   PKCS#8 RSA, `private_key_id`).
//! - The assertion: an RS256 JWT signed with `ring`, header `kid` = `private_key_id`,
//!   claims `iss` = `client_email`, `scope` = cloud-platform, `aud` = the token URI,
//!   `iat` = now, `exp` = now + 1 hour. `POST` form `grant_type=…jwt-bearer&assertion=…`;
//!   the answer's `access_token` and `expires_in`.
use std::time::{SystemTime, UNIX_EPOCH};

use age::secrecy::{ExposeSecret, SecretString};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use zeroize::Zeroizing;

use super::answer::{self, check_names, check_url_param, fail};
use super::types::{Minted, Params};
use crate::error::MintError;
use crate::http::Http;
use crate::messages;

/// The kind's name in `source add` and in errors.
pub const KIND: &str = "gcp";
/// Google's token endpoint.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The scope asked: what `gcloud auth print-access-token` gets, and what Artifact
/// Registry and GCR accept.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The registry username for an access token.
pub const USERNAME: &str = "oauth2accesstoken";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The assertion's life, seconds (Google's most).
const LIFE: u64 = 3600;
/// Largest key file, bytes (Google's are about 2.3 KiB).
const MAX_KEY_FILE: usize = 64 * 1024;
const OPTIONAL: &[&str] = &["token-uri"];

/// Checks the parameters at `source add`.
pub fn check(params: &Params) -> Result<(), String> {
    check_names(params, &[], OPTIONAL)?;
    check_url_param(params, "token-uri")
}

/// Checks the key file at `source add`: JSON of a service account whose RSA key
/// `ring` reads.
pub fn check_secret(secret: &SecretString) -> Result<(), String> {
    Key::parse(secret).map(|_| ())
}

/// Mints an access token for `registry`.
pub fn mint(
    registry: &str,
    params: &Params,
    secret: &SecretString,
    http: &Http,
    now: SystemTime,
) -> Result<Minted, MintError> {
    // The definition was checked at `source add` and verified since; checked again
    // so a value that slipped through is one line, never a panic.
    check(params).map_err(|d| fail(KIND, registry, messages::SOURCE_SETTINGS, d))?;
    let deadline = http.deadline();
    let url = params
        .get("token-uri")
        .map_or(DEFAULT_TOKEN_URI, String::as_str);
    let key = Key::parse(secret).map_err(|d| fail(KIND, registry, url, d))?;
    let jwt = key
        .assertion(url, now)
        .map_err(|d| fail(KIND, registry, url, d))?;
    let answer = http
        .post_form(url, &[("grant_type", GRANT), ("assertion", &jwt)], deadline)
        .map_err(|d| fail(KIND, registry, url, d))?;
    let token = answer::token(&answer, "access_token", now, &[&jwt])
        .map_err(|d| fail(KIND, registry, url, d))?;
    Ok(Minted {
        username: USERNAME.to_owned(),
        secret: token.token,
        expires_at: token.expires_at,
    })
}

/// The fields of a key file that are read.
#[derive(serde::Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<Zeroizing<String>>,
    private_key_id: Option<String>,
}

/// A service account's key, read.
struct Key {
    email: String,
    key_id: Option<String>,
    pair: ring::signature::RsaKeyPair,
}

impl Key {
    fn parse(secret: &SecretString) -> Result<Key, String> {
        let bad = |reason: &str| messages::source_secret_bad(messages::SECRET_NAME_GCP, reason);
        let text = secret.expose_secret();
        if text.len() > MAX_KEY_FILE {
            return Err(bad(messages::KEY_FILE_TOO_LARGE));
        }
        let file: KeyFile =
            serde_json::from_str(text).map_err(|_| bad(messages::KEY_FILE_NOT_JSON))?;
        if file.kind.as_deref().is_some_and(|k| k != "service_account") {
            return Err(bad(messages::KEY_FILE_NOT_SERVICE_ACCOUNT));
        }
        let email = file
            .client_email
            .filter(|e| e.contains('@') && answer::plain_value(e, "@.-_+", 320))
            .ok_or_else(|| bad(messages::KEY_FILE_NO_EMAIL))?;
        let key_id = file
            .private_key_id
            .filter(|k| answer::plain_value(k, "-_", 256));
        let pem = file
            .private_key
            .ok_or_else(|| bad(messages::KEY_FILE_NO_KEY))?;
        let der = pkcs8_der(&pem).ok_or_else(|| bad(messages::KEY_FILE_NOT_PKCS8))?;
        let pair = ring::signature::RsaKeyPair::from_pkcs8(&der)
            .map_err(|_| bad(messages::KEY_FILE_NOT_RSA))?;
        Ok(Key {
            email,
            key_id,
            pair,
        })
    }

    /// The signed JWT for `aud` at `now`.
    fn assertion(&self, aud: &str, now: SystemTime) -> Result<Zeroizing<String>, String> {
        let iat = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = kid.as_str().into();
        }
        let claims = serde_json::json!({
            "iss": self.email,
            "scope": SCOPE,
            "aud": aud,
            "iat": iat,
            "exp": iat + LIFE,
        });
        let mut jwt = Zeroizing::new(format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        ));
        let mut signature = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                jwt.as_bytes(),
                &mut signature,
            )
            .map_err(|_| messages::JWT_SIGN_FAILED.to_owned())?;
        jwt.push('.');
        jwt.push_str(&B64URL.encode(&signature));
        Ok(jwt)
    }
}

/// The DER inside `-----BEGIN PRIVATE KEY-----` … `-----END PRIVATE KEY-----`.
fn pkcs8_der(pem: &str) -> Option<Zeroizing<Vec<u8>>> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let len = pem[start..].find(END)?;
    let body: Zeroizing<String> = Zeroizing::new(
        pem[start..start + len]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect(),
    );
    B64.decode(body.as_bytes()).ok().map(Zeroizing::new)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 2048-bit RSA key made for this test run only (PKCS#8, as Google's key files
    /// hold), by `openssl genpkey`: ring cannot generate RSA keys, and no private key
    /// is committed. openssl is a test dependency (`scripts/test.sh`).
    pub(crate) fn test_key_pem() -> String {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .stderr(std::process::Stdio::null())
            .output()
            .expect("openssl genpkey (Debian package openssl)");
        assert!(out.status.success(), "openssl genpkey failed");
        String::from_utf8(out.stdout).unwrap()
    }

    fn key_file(pem: &str) -> SecretString {
        SecretString::from(
            serde_json::json!({
                "type": "service_account",
                "project_id": "p",
                "private_key_id": "abc123",
                "private_key": pem,
                "client_email": "pusher@p.iam.gserviceaccount.com",
                "token_uri": "https://evil.example/token",
            })
            .to_string(),
        )
    }

    #[test]
    fn the_assertion_is_an_rs256_jwt_with_googles_claims() {
        let pem = test_key_pem();
        let secret = key_file(&pem);
        assert_eq!(check_secret(&secret), Ok(()));
        let key = Key::parse(&secret).unwrap();
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let jwt = key
            .assertion("https://oauth2.googleapis.com/token", now)
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "abc123"})
        );
        let claims: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "pusher@p.iam.gserviceaccount.com",
                "scope": SCOPE,
                "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_800_000_000u64,
                "exp": 1_800_003_600u64,
            })
        );
        // The signature verifies with the key's public half (RSASSA-PKCS1-v1_5, SHA-256).
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            key.pair.public().as_ref(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        let signature = B64URL.decode(parts[2]).unwrap();
        assert!(public.verify(signed.as_bytes(), &signature).is_ok());
        let mut tampered = signature.clone();
        tampered[0] ^= 1;
        assert!(public.verify(signed.as_bytes(), &tampered).is_err());
    }

    #[test]
    fn bad_key_files_are_refused_in_one_line() {
        let pem = test_key_pem();
        let good: serde_json::Value = serde_json::from_str(key_file(&pem).expose_secret()).unwrap();
        let with = |field: &str, value: serde_json::Value| {
            let mut v = good.clone();
            if value.is_null() {
                v.as_object_mut().unwrap().remove(field);
            } else {
                v[field] = value;
            }
            SecretString::from(v.to_string())
        };
        let cases = [
            (with("type", "authorized_user".into()), "service_account"),
            (
                with("client_email", serde_json::Value::Null),
                "client_email",
            ),
            (with("client_email", "not an email".into()), "client_email"),
            (with("private_key", serde_json::Value::Null), "private_key"),
            (
                with(
                    "private_key",
                    "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----".into(),
                ),
                "PKCS#8",
            ),
            (
                with(
                    "private_key",
                    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----".into(),
                ),
                "RSA",
            ),
            (SecretString::from("not json".to_owned()), "JSON"),
            (SecretString::from("x".repeat(MAX_KEY_FILE + 1)), "64 KiB"),
        ];
        for (secret, want) in cases {
            let e = check_secret(&secret).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("PRIVATE KEY") && !e.contains('\n'), "{e}");
        }
        // No private_key_id: the JWT simply has no kid.
        let no_kid = with("private_key_id", serde_json::Value::Null);
        assert!(Key::parse(&no_kid).unwrap().key_id.is_none());
    }

    #[test]
    fn the_key_files_token_uri_is_not_an_endpoint() {
        assert_eq!(check(&Params::new()), Ok(()));
        let p: Params = [("token-uri".to_owned(), "http://evil.example/t".to_owned())].into();
        assert!(check(&p).is_err());
        let p: Params = [("key-file".to_owned(), "x".to_owned())].into();
        assert!(check(&p).is_err());
        // Without token-uri the default is asked (here: refused before sending, the
        // URL named), never the key file's https://evil.example/token.
        let http = Http::new(std::time::Duration::from_secs(1));
        let bad = SecretString::from("{}".to_owned());
        let e = mint(
            "europe-docker.pkg.dev",
            &Params::new(),
            &bad,
            &http,
            SystemTime::now(),
        )
        .err()
        .unwrap();
        assert_eq!(e.endpoint, DEFAULT_TOKEN_URI);
    }
}
