//! The types every source kind shares.
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use age::secrecy::SecretString;

/// A source's parameters as stored in its authenticated definition: names as the
/// `source add` flags without their dashes (`region`, `access-key-id`, `role-arn`,
/// `endpoint`, `token-uri`, `tenant`, `client-id`, `authority`, `token-url`,
/// `username`, `command`), values as given. Never secret: secrets are sealed apart.
pub type Params = BTreeMap<String, String>;

/// The longest a mint may take, every request or the command included: well under
/// the 60 s after which BuildKit cancels a credential callback, with room for the
/// agent's round trip.
pub const MINT_DEADLINE: Duration = Duration::from_secs(25);

/// The kinds this build mints from, as `source add` names them.
pub const KINDS: &[&str] = &["aws-ecr", "gcp", "azure-acr", "oauth2", "exec"];

/// A registry credential minted from a source (its `Debug` shows no secret).
#[derive(Debug)]
pub struct Minted {
    /// The username the registry expects (`AWS`, `oauth2accesstoken`, the zero GUID
    /// for an ACR refresh token, or what the source says).
    pub username: String,
    /// The short-lived secret.
    pub secret: SecretString,
    /// When it stops working, when the issuer says.
    pub expires_at: Option<SystemTime>,
}

impl Minted {
    /// The expiry as Unix seconds, if the issuer gave one.
    pub fn expires_at_secs(&self) -> Option<u64> {
        self.expires_at
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
    }
}

/// The username ACR expects with a refresh token.
pub const ACR_REFRESH_USERNAME: &str = "00000000-0000-0000-0000-000000000000";
