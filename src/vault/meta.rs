//! Entry metadata (format version 3, `docs/FORMAT.md` "Entry metadata"): an entry's
//! expiry, its rotation settings and a rotation's pending secret. All of it is beside
//! the entry in the clear, so that monitoring reads it while the vault is locked.
//!
//! - **The expiry is not authenticated.** Someone who can write the vault file can at
//!   most make lockbox warn too early or too late (`docs/THREAT_MODEL.md`); the secret
//!   never depends on it.
//! - **The rotation settings are.** They say where the entry's current secret is sent
//!   to be exchanged for a new one, so a planted or edited provider could send it
//!   anywhere: a keyed MAC in [`MacDomain::Rotation`] binds the provider, its API URL
//!   and the robot id to the server URL and username, and only a holder of the vault
//!   key can make one. It is checked before any secret is sent.
//! - **The pending secret** is a rotation's new secret, sealed to the vault's public
//!   key like any secret and bound to the same server URL and username: written
//!   durably before the provider is asked to switch to it, so a crash never loses it.
//!
//! Pure but for [`unix_now`]: no file system or network here. The JWT reader takes the payload's
//! `exp` without checking any signature (an expiry is a hint, not a trust decision).
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

use super::crypto::{EntryOpener, MacDomain};
use super::source::SourceDef;
use crate::error::{Error, Result};

/// The latest expiry the format holds: 9999-12-31T23:59:59Z, as Unix seconds.
pub const MAX_EXPIRES_AT: u64 = 253_402_300_799;
/// Longest rotation API URL, bytes.
pub const MAX_API_URL: usize = crate::http::MAX_URL;
/// Largest Harbor robot id (JSON's exact integers: 2^53 − 1).
pub const MAX_ROBOT_ID: u64 = (1 << 53) - 1;
/// Longest secret a JWT payload is looked into, bytes (a JWT is a few KiB).
const MAX_JWT: usize = 64 * 1024;

/// An entry's metadata. Empty for every entry of a version 1 or 2 vault.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// When the secret stops working, as Unix seconds (at most [`MAX_EXPIRES_AT`]).
    pub expires_at: Option<u64>,
    /// Who renews the secret, authenticated by the vault key.
    pub rotation: Option<Rotation>,
    /// A rotation's new secret, sealed like the entry's, until the provider has
    /// switched to it (`lockbox rotate`).
    pub pending: Option<Vec<u8>>,
    /// The source this entry's sealed secret mints registry credentials from
    /// (format version 4), authenticated by the vault key.
    pub source: Option<SourceDef>,
}

impl Metadata {
    /// Whether there is nothing to write (the entry fits versions 1 and 2).
    pub fn is_empty(&self) -> bool {
        self.expires_at.is_none()
            && self.rotation.is_none()
            && self.pending.is_none()
            && self.source.is_none()
    }
}

/// A rotation provider: the registry's API that renews the secret in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// A GitLab personal, project or group access token rotating itself
    /// (`POST /api/v4/personal_access_tokens/self/rotate`).
    GitlabPat,
    /// A Harbor robot account's secret, refreshed (`PATCH /api/v2.0/robots/{id}`).
    HarborRobot {
        /// The robot's id in Harbor.
        robot_id: u64,
    },
}

impl Provider {
    /// The kind as written in the file and on the command line.
    pub fn kind(&self) -> &'static str {
        match self {
            Provider::GitlabPat => "gitlab-pat",
            Provider::HarborRobot { .. } => "harbor-robot",
        }
    }

    /// The provider of `kind` (with `robot_id` for Harbor, none for GitLab).
    pub fn from_parts(kind: &str, robot_id: Option<u64>) -> std::result::Result<Self, String> {
        match (kind, robot_id) {
            ("gitlab-pat", None) => Ok(Provider::GitlabPat),
            ("gitlab-pat", Some(_)) => Err("a gitlab-pat rotation has no robot id".into()),
            ("harbor-robot", Some(id)) if (1..=MAX_ROBOT_ID).contains(&id) => {
                Ok(Provider::HarborRobot { robot_id: id })
            }
            ("harbor-robot", Some(_)) => Err("the robot id is out of range".into()),
            ("harbor-robot", None) => Err("a harbor-robot rotation needs a robot id".into()),
            _ => Err("unknown rotation provider".into()),
        }
    }

    /// The robot id, for Harbor.
    pub fn robot_id(&self) -> Option<u64> {
        match self {
            Provider::GitlabPat => None,
            Provider::HarborRobot { robot_id } => Some(*robot_id),
        }
    }
}

/// An entry's rotation settings and their MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Who renews the secret.
    pub provider: Provider,
    /// The API's base URL (`https://host[:port][/path]`, or `http://` to loopback),
    /// checked by [`check_api_url`].
    pub api: String,
    /// HMAC-SHA256 in [`MacDomain::Rotation`] over [`Rotation::transcript`].
    pub mac: [u8; 32],
}

impl Rotation {
    /// The bytes the MAC covers (`docs/FORMAT.md` "Rotation MAC"): each field as a
    /// u32-BE length and its bytes — a tag, the server URL, the username, the kind,
    /// the API URL and the robot id in decimal (empty for GitLab).
    pub fn transcript(server: &str, username: &str, provider: &Provider, api: &str) -> Vec<u8> {
        let id = provider
            .robot_id()
            .map(|n| n.to_string())
            .unwrap_or_default();
        let mut t = Vec::with_capacity(64 + server.len() + username.len() + api.len());
        for field in [
            "lockbox-rotation-v1",
            server,
            username,
            provider.kind(),
            api,
            id.as_str(),
        ] {
            // Every field is bounded far below 4 GiB (server and username 1 MiB).
            t.extend_from_slice(&(field.len() as u32).to_be_bytes());
            t.extend_from_slice(field.as_bytes());
        }
        t
    }

    /// Settings for the entry `server`/`username`, authenticated by `opener` (the
    /// vault key, or the agent holding it).
    pub fn new(
        opener: &dyn EntryOpener,
        server: &str,
        username: &str,
        provider: Provider,
        api: String,
    ) -> Result<Rotation> {
        check_api_url(&api).map_err(Error::LimitExceeded)?;
        let mac = opener.keyed_mac(
            MacDomain::Rotation,
            &Self::transcript(server, username, &provider, &api),
        )?;
        Ok(Rotation { provider, api, mac })
    }

    /// Fails with [`Error::RotationTampered`] unless the MAC is the vault key's for
    /// these settings on the entry `server`/`username`: checked before the entry's
    /// secret is sent anywhere.
    pub fn verify(&self, opener: &dyn EntryOpener, server: &str, username: &str) -> Result<()> {
        let t = Self::transcript(server, username, &self.provider, &self.api);
        if opener.verify_keyed_mac(MacDomain::Rotation, &t, &self.mac)? {
            Ok(())
        } else {
            Err(Error::RotationTampered(server.to_owned()))
        }
    }
}

/// Checks a rotation API URL: `https://` to any host, `http://` only to `127.0.0.1`,
/// `[::1]` or `localhost` (the old secret would cross the network in the clear); no
/// user info, query or fragment; at most [`MAX_API_URL`] bytes of printable ASCII.
pub fn check_api_url(url: &str) -> std::result::Result<(), String> {
    // One rule for every URL a secret is sent to: the rotation API's and the sources'.
    crate::http::check_url(url)
}

/// The API URL a provider uses by default: `https://` and the registry's host (and
/// port) from the entry's server URL; `None` when the server URL names no host.
pub fn default_api(server: &str) -> Option<String> {
    let rest = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let authority = rest.split('/').next()?.to_ascii_lowercase();
    let url = format!("https://{authority}");
    check_api_url(&url).ok().map(|()| url)
}

/// The `exp` claim of a JWT-shaped secret (three base64url parts, the middle one a
/// JSON object), as Unix seconds; `None` for anything else. The signature is not
/// checked: the expiry is only a hint for warnings (`docs/FORMAT.md` "Entry
/// metadata").
pub fn jwt_expiry(secret: &str) -> Option<u64> {
    if secret.len() > MAX_JWT {
        return None;
    }
    let mut parts = secret.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.is_empty() {
        return None;
    }
    let json = B64URL.decode(payload.trim_end_matches('=')).ok()?;
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<serde_json::Number>,
    }
    let claims: Claims = serde_json::from_slice(&json).ok()?;
    let exp = claims.exp?;
    // NumericDate may carry a fraction (RFC 7519 §2); whole seconds are enough.
    let secs = exp
        .as_u64()
        .or_else(|| exp.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))?;
    (secs <= MAX_EXPIRES_AT).then_some(secs)
}

/// The clock as Unix seconds (0 before 1970). The core reads no other clock; callers
/// pass the time in.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `secs` as RFC 3339 UTC (`2027-01-31T00:00:00Z`), for people and JSON.
pub fn rfc3339(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.min(MAX_EXPIRES_AT));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A date (`2027-01-31`, midnight UTC) or an RFC 3339 time as Unix seconds.
pub fn parse_date(text: &str) -> Option<u64> {
    let t = text.trim();
    let full = if t.len() == 10 {
        format!("{t}T00:00:00Z")
    } else {
        t.to_owned()
    };
    let when = humantime::parse_rfc3339_weak(&full).ok()?;
    let secs = when.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    (secs <= MAX_EXPIRES_AT).then_some(secs)
}

/// How an expiry stands at `now` with a warning window of `within` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    /// No expiry, or later than the window.
    Fine,
    /// Within the window: it expires in this many seconds.
    Expiring(u64),
    /// Expired this many seconds ago (0: this very second).
    Expired(u64),
}

/// The standing of `expires_at` at `now` (Unix seconds) with a window of `within`.
pub fn standing(expires_at: Option<u64>, now: u64, within: u64) -> Standing {
    match expires_at {
        None => Standing::Fine,
        Some(t) if t <= now => Standing::Expired(now - t),
        Some(t) if t - now <= within => Standing::Expiring(t - now),
        Some(_) => Standing::Fine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::crypto::VaultKey;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.sig",
            B64URL.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            B64URL.encode(payload)
        )
    }

    #[test]
    fn jwt_exp_is_read_and_anything_else_is_none() {
        assert_eq!(
            jwt_expiry(&jwt(r#"{"exp":1800000000,"sub":"x"}"#)),
            Some(1_800_000_000)
        );
        assert_eq!(
            jwt_expiry(&jwt(r#"{"exp":1800000000.5}"#)),
            Some(1_800_000_000)
        );
        for not in [
            jwt(r#"{"sub":"x"}"#),
            jwt(r#"{"exp":"soon"}"#),
            jwt(r#"{"exp":-5}"#),
            jwt(r#"{"exp":99999999999999}"#),
            jwt("not json"),
            "glpat-abcdefghijklmnop".to_owned(),
            "a.b".to_owned(),
            "a..c".to_owned(),
            "a.b.c.d".to_owned(),
            "".to_owned(),
        ] {
            assert_eq!(jwt_expiry(&not), None, "{not}");
        }
    }

    #[test]
    fn api_urls() {
        for ok in [
            "https://gitlab.example.com",
            "https://gitlab.example.com:8443/gitlab",
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:99/x",
            "HTTPS://Host",
        ] {
            assert_eq!(check_api_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://gitlab.example.com",
            "http://127.0.0.1.evil.com",
            "ftp://x",
            "https://",
            "https://user:pw@host",
            "https://host?x=1",
            "https://host#f",
            "https://host:port",
            "https://host:",
            "https://ho st",
            "https://host/\u{1b}[2J",
        ] {
            assert!(check_api_url(bad).is_err(), "{bad}");
        }
        assert!(check_api_url(&format!("https://h/{}", "a".repeat(MAX_API_URL))).is_err());
    }

    #[test]
    fn default_api_is_the_registry_host_over_https() {
        assert_eq!(
            default_api("registry.gitlab.com").as_deref(),
            Some("https://registry.gitlab.com")
        );
        assert_eq!(
            default_api("http://Harbor.Example:8443/v2/").as_deref(),
            Some("https://harbor.example:8443")
        );
        assert_eq!(default_api("https:///x"), None);
    }

    #[test]
    fn rotation_mac_binds_every_field() {
        let key = VaultKey::generate();
        let r = Rotation::new(
            &key,
            "h",
            "u",
            Provider::HarborRobot { robot_id: 7 },
            "https://h".into(),
        )
        .unwrap();
        r.verify(&key, "h", "u").unwrap();
        assert!(r.verify(&key, "h2", "u").is_err());
        assert!(r.verify(&key, "h", "u2").is_err());
        assert!(r.verify(&VaultKey::generate(), "h", "u").is_err());
        for changed in [
            Rotation {
                api: "https://evil".into(),
                ..r.clone()
            },
            Rotation {
                provider: Provider::HarborRobot { robot_id: 8 },
                ..r.clone()
            },
            Rotation {
                provider: Provider::GitlabPat,
                ..r.clone()
            },
        ] {
            assert!(matches!(
                changed.verify(&key, "h", "u"),
                Err(Error::RotationTampered(_))
            ));
        }
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("2027-01-31"), Some(1_801_353_600));
        assert_eq!(parse_date("2027-01-31T12:00:00Z"), Some(1_801_396_800));
        assert_eq!(rfc3339(1_801_353_600), "2027-01-31T00:00:00Z");
        for bad in ["2027-13-01", "tomorrow", "", "10000-01-01", "2027-01-31T"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn standings() {
        assert_eq!(standing(None, 100, 10), Standing::Fine);
        assert_eq!(standing(Some(200), 100, 10), Standing::Fine);
        assert_eq!(standing(Some(105), 100, 10), Standing::Expiring(5));
        assert_eq!(standing(Some(110), 100, 10), Standing::Expiring(10));
        assert_eq!(standing(Some(100), 100, 10), Standing::Expired(0));
        assert_eq!(standing(Some(40), 100, 10), Standing::Expired(60));
    }

    #[test]
    fn providers() {
        assert_eq!(
            Provider::from_parts("gitlab-pat", None),
            Ok(Provider::GitlabPat)
        );
        assert_eq!(
            Provider::from_parts("harbor-robot", Some(3)),
            Ok(Provider::HarborRobot { robot_id: 3 })
        );
        assert!(Provider::from_parts("harbor-robot", None).is_err());
        assert!(Provider::from_parts("harbor-robot", Some(0)).is_err());
        assert!(Provider::from_parts("harbor-robot", Some(MAX_ROBOT_ID + 1)).is_err());
        assert!(Provider::from_parts("gitlab-pat", Some(1)).is_err());
        assert!(Provider::from_parts("github", None).is_err());
    }
}
