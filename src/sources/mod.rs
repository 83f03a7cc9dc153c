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

mod answer;
pub mod aws;
pub mod azure;
pub mod cache;
pub mod exec;
pub mod gcp;
pub mod network;
pub mod oauth2;
pub mod sigv4;
mod types;
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

/// The credential `entry` answers with: a static entry's secret, opened; a source's
/// token, from the holder of the key when it mints ([`EntryOpener::mint_source`]:
/// the agent and its token cache), else minted here after the definition verified,
/// kept in the cache file beside the vault file `vault` (`<vault>.tokens`,
/// [`cache`]) when one is given.
/// Every front end (`get`, the kubelet plugin, `export`) answers through here.
pub fn credential_for(
    entry: &RawEntry,
    opener: &dyn EntryOpener,
    vault: Option<&Path>,
) -> Result<MintedCredential> {
    let Some(def) = entry.source() else {
        return Ok(MintedCredential {
            username: entry.username().to_owned(),
            secret: entry.open(opener)?,
            expires_at: entry.expires_at(),
        });
    };
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
    let file = vault.and_then(|v| cache::Cache::new(v, opener));
    if let Some(hit) = file
        .as_ref()
        .and_then(|c| c.get(server, &def.mac, unix_now()))
    {
        return Ok(hit);
    }
    // A miss: one mint at a time across processes; whoever waited reads again.
    let _lock = file
        .as_ref()
        .and_then(|c| c.lock(MINT_DEADLINE + std::time::Duration::from_secs(5)));
    if let Some(hit) = file
        .as_ref()
        .and_then(|c| c.get(server, &def.mac, unix_now()))
    {
        return Ok(hit);
    }
    let secret = opener.open_entry(server, username, &sealed)?;
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

/// Whether a cached token is served, served while a new one is minted, or minted
/// anew first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Well within its life: served as is.
    Serve,
    /// Served, and a new one should be minted now, ahead of its expiry (the agent
    /// does it in the background; a single process has no background).
    ServeAndRefresh,
    /// Too close to its expiry (or past it): never served.
    Stale,
}

/// How long before its expiry a token is no longer served: a quarter of its life,
/// at most 5 minutes (a pull that starts with it must not see it expire).
pub fn stale_margin(lifetime: u64) -> u64 {
    (lifetime / 4).min(300)
}

/// How long before its expiry the agent mints the next one: half of its life, at
/// most 15 minutes.
pub fn refresh_margin(lifetime: u64) -> u64 {
    (lifetime / 2).min(900)
}

/// How a token minted at `minted_at` that expires at `expires_at` (Unix seconds)
/// stands at `now`. A token without an expiry is never cached: each `get` mints.
pub fn freshness(minted_at: u64, expires_at: Option<u64>, now: u64) -> Freshness {
    let Some(expires_at) = expires_at else {
        return Freshness::Stale;
    };
    let lifetime = expires_at.saturating_sub(minted_at);
    let left = expires_at.saturating_sub(now);
    if now < minted_at || left <= stale_margin(lifetime) {
        Freshness::Stale
    } else if left <= refresh_margin(lifetime) {
        Freshness::ServeAndRefresh
    } else {
        Freshness::Serve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_served_then_refreshed_ahead_then_never_served_stale() {
        // A 12-hour ECR token.
        let (t0, life) = (1_000_000, 12 * 3600);
        assert_eq!(freshness(t0, Some(t0 + life), t0), Freshness::Serve);
        assert_eq!(
            freshness(t0, Some(t0 + life), t0 + life - 901),
            Freshness::Serve
        );
        assert_eq!(
            freshness(t0, Some(t0 + life), t0 + life - 900),
            Freshness::ServeAndRefresh
        );
        assert_eq!(
            freshness(t0, Some(t0 + life), t0 + life - 300),
            Freshness::Stale
        );
        assert_eq!(
            freshness(t0, Some(t0 + life), t0 + life + 5),
            Freshness::Stale
        );
        // An 8-second token: stale in its last 2 s, refreshed from its 4th.
        assert_eq!(freshness(t0, Some(t0 + 8), t0 + 3), Freshness::Serve);
        assert_eq!(
            freshness(t0, Some(t0 + 8), t0 + 4),
            Freshness::ServeAndRefresh
        );
        assert_eq!(freshness(t0, Some(t0 + 8), t0 + 6), Freshness::Stale);
        // No expiry, or a clock gone backwards: minted anew.
        assert_eq!(freshness(t0, None, t0), Freshness::Stale);
        assert_eq!(freshness(t0, Some(t0 + life), t0 - 10), Freshness::Stale);
    }

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
