//! Sealed sources: a long-lived credential kept in the vault (AWS keys, a Google
//! service-account key, an Azure client secret, an OAuth2 refresh token, or a command)
//! from which `get` mints the short-lived registry credential (`docs/FORMAT.md`
//! "Sources", `docs/SOURCES.md`).
//!
//! One file per kind. The network kinds are a pure request builder and a response
//! parser over [`crate::http`]; `exec` runs a program through [`crate::child`]. Every
//! kind has the same three functions, dispatched here by the kind's name:
//!
//! ```text
//! pub fn check(params: &Params) -> Result<(), String>;           // at `source add`
//! pub fn check_secret(secret: &SecretString) -> Result<(), String>;
//! pub fn mint(registry, params, secret, …) -> Result<Minted, MintError>;
//! ```
//!
//! What is *not* here: the definition's authentication (`vault/source.rs`: the kind
//! and parameters are MACed with the vault key and verified before anything here
//! runs), the caches (the agent's memory, `agent/tokens.rs`; without an agent, the
//! file of `file/tokens.rs`), and the policy of when a cached token is still served
//! ([`freshness`], which both caches share).
//!
//! The folder sits on floor 5 (`src/lib.rs`), beside `identity/` and `openbao/`: it
//! imports the vault core and the plumbing below it, never `identity`, `openbao`,
//! `config` or `agent`.

use std::path::Path;

use age::secrecy::SecretString;

pub use crate::error::MintError;
use crate::error::Result;
use crate::vault::RawEntry;
use crate::vault::crypto::{EntryOpener, MintedCredential, SourceRequest};
use crate::vault::meta::unix_now;
use crate::vault::source::SourceDef;

pub mod answer;
pub mod aws;
pub mod azure;
pub mod cache;
pub mod exec;
pub mod gcp;
pub mod network;
pub mod oauth2;
mod policy;
pub mod sigv4;
pub mod trust;
mod types;
pub use policy::{Freshness, freshness, refresh_margin, stale_margin};
pub use types::{ACR_REFRESH_USERNAME, KINDS, MINT_DEADLINE, Minted, Params};

/// Checks a new source's kind, parameters and secret before it is sealed
/// (`source add`): unknown kinds and parameters, missing ones, URL rules, a secret
/// of the wrong shape.
pub fn check(kind: &str, params: &Params, secret: &SecretString) -> Result<(), String> {
    match kind {
        "exec" => exec::check(params).and_then(|()| exec::check_secret(secret)),
        _ => network::check_http(kind, params, secret)
            .unwrap_or_else(|| Err(crate::messages::unknown_source_kind(kind, KINDS))),
    }
}

/// The username a source of `kind` answers with, stored in its entry so `list`
/// shows it before any mint (a command's own answer may differ; its `--username`, or
/// `<minted>`, is what `list` shows).
pub fn stored_username(kind: &str, params: &Params) -> String {
    let given = params.get("username").filter(|u| !u.is_empty());
    match (kind, given) {
        (_, Some(u)) => u.clone(),
        ("aws-ecr", None) => "AWS".into(),
        ("gcp" | "oauth2", None) => "oauth2accesstoken".into(),
        ("azure-acr", None) => ACR_REFRESH_USERNAME.into(),
        _ => "<minted>".into(),
    }
}

/// Mints a credential for `registry` from the verified definition `def` and its
/// opened secret, within [`MINT_DEADLINE`].
pub fn mint(registry: &str, def: &SourceDef, secret: &SecretString) -> Result<Minted, MintError> {
    if def.kind == "exec" {
        return exec::mint(registry, &def.params, secret, MINT_DEADLINE);
    }
    let http = crate::http::Http::new(MINT_DEADLINE);
    let now = std::time::SystemTime::now();
    network::mint_http(&def.kind, registry, &def.params, secret, &http, now).unwrap_or_else(|| {
        Err(MintError {
            kind: def.kind.clone(),
            registry: registry.to_owned(),
            endpoint: "-".into(),
            detail: crate::messages::unknown_source_kind(&def.kind, KINDS),
        })
    })
}

/// Where a source's entry is: its vault file (the token cache file sits beside it) and
/// public key, and the keys trusted to run sources here.
pub struct Place<'a> {
    /// The vault file, for the token cache beside it; `None`: no cache file.
    pub vault: Option<&'a Path>,
    /// The vault's public key.
    pub public_key: &'a str,
    /// The vault keys trusted to run sources ([`trust`]).
    pub trust: &'a trust::Trust,
}

/// The credential `entry` answers with: a static entry's secret, opened; a source's
/// token — once its vault's key is trusted here ([`trust`]) — from the holder of the
/// key when it mints ([`EntryOpener::mint_source`]: the agent and its token cache),
/// else minted here after the definition verified, kept in the cache file beside the
/// vault file (`<vault>.tokens`, [`cache`]). Every front end (`get`, the kubelet
/// plugin, `export`) answers through here.
pub fn credential_for(
    entry: &RawEntry,
    opener: &dyn EntryOpener,
    place: &Place,
) -> Result<MintedCredential> {
    let Some(def) = entry.source() else {
        return Ok(MintedCredential {
            username: entry.username().to_owned(),
            secret: entry.open(opener)?,
            expires_at: entry.expires_at(),
        });
    };
    place.trust.check(entry.server(), place.public_key)?;
    let (server, username, sealed) = (entry.server(), entry.username(), entry.secret());
    let request = SourceRequest {
        server,
        username,
        sealed: &sealed,
        kind: &def.kind,
        params: &def.params,
        mac: &def.mac,
    };
    if let Some(answer) = opener.mint_source(&request) {
        return answer;
    }
    // Before the secret is opened, anything sent or any command run.
    def.verify(opener, server, username, &sealed)?;
    let file = place.vault.and_then(|v| cache::Cache::new(v, opener));
    if let Some(hit) = file
        .as_ref()
        .and_then(|c| c.get(server, &def.mac, unix_now()))
    {
        return Ok(hit);
    }
    // A miss: one mint at a time across processes; whoever waited reads again.
    // The wait plus a mint stays under BuildKit's 60 s: whoever holds the lock is
    // done within its own mint's deadline, and a wait that runs out mints anyway.
    let _lock = file.as_ref().and_then(|c| c.lock(LOCK_WAIT));
    if let Some(hit) = file
        .as_ref()
        .and_then(|c| c.get(server, &def.mac, unix_now()))
    {
        return Ok(hit);
    }
    let secret = opener.open_source_secret(server, username, &sealed)?;
    let now = unix_now();
    let minted = mint(server, def, &secret)?;
    let answer = MintedCredential {
        expires_at: minted.expires_at_secs(),
        username: minted.username,
        secret: minted.secret,
    };
    if let Some(c) = &file {
        c.put(server, &def.mac, &answer, now);
    }
    Ok(answer)
}

/// How long a `get` waits for another process's mint before minting itself.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_usernames_follow_each_registrys_convention() {
        let none = Params::new();
        assert_eq!(stored_username("aws-ecr", &none), "AWS");
        assert_eq!(stored_username("gcp", &none), "oauth2accesstoken");
        assert_eq!(stored_username("azure-acr", &none), ACR_REFRESH_USERNAME);
        assert_eq!(stored_username("exec", &none), "<minted>");
        let given = Params::from([("username".to_owned(), "ci".to_owned())]);
        assert_eq!(stored_username("oauth2", &given), "ci");
    }
}
