//! The `oauth2` source: an OAuth2 refresh token mints an access token with the
//! refresh-token grant (RFC 6749 §6), for registries that take one as a password
//! (a GitLab or Harbor behind an identity provider, a token-auth registry).
//!
//! - Parameters: `token-url`, `client-id`, optional `username` (default
//!   `oauth2accesstoken`).
//! - Secret: the refresh token.
//! - `POST token-url` form `grant_type=refresh_token&refresh_token=…&client_id=…`; the
//!   answer's `access_token` and `expires_in`.
//! - Rotating refresh tokens: when the answer carries a new `refresh_token`,
//!   [`mint_rotating`] returns it so the caller can seal it in place of the old one.
//!   [`mint`] (the common signature of the kinds) drops it: with a provider that
//!   revokes a refresh token once it is used, the next mint then fails with
//!   `invalid_grant`, in one line, never silently.
use std::time::SystemTime;

use age::secrecy::{ExposeSecret, SecretString};

use super::answer::{self, check_names, check_url_param, fail};
use super::types::{Minted, Params};
use crate::error::MintError;
use crate::http::Http;
use crate::messages;

/// The kind's name in `source add` and in errors.
pub const KIND: &str = "oauth2";
/// The registry username when none is given.
pub const DEFAULT_USERNAME: &str = "oauth2accesstoken";
const REQUIRED: &[&str] = &["token-url", "client-id"];
const OPTIONAL: &[&str] = &["username"];
/// Longest refresh token accepted, bytes.
const MAX_REFRESH_TOKEN: usize = 16 * 1024;

/// Checks the parameters at `source add`.
pub fn check(params: &Params) -> Result<(), String> {
    check_names(params, REQUIRED, OPTIONAL)?;
    check_url_param(params, "token-url")?;
    if let Some(user) = params.get("username")
        && user.contains(':')
    {
        return Err(messages::source_param_form(
            "username",
            messages::FORM_REGISTRY_USERNAME,
        ));
    }
    Ok(())
}

/// Checks the refresh token at `source add`: one line of printable ASCII.
pub fn check_secret(secret: &SecretString) -> Result<(), String> {
    answer::check_one_line_secret(
        secret,
        MAX_REFRESH_TOKEN,
        messages::SECRET_NAME_OAUTH2,
        messages::SECRET_REFRESH_TOKEN,
    )
}

/// Mints an access token for `registry`; a rotated refresh token in the answer is
/// dropped (see the module's notes and [`mint_rotating`]).
pub fn mint(
    registry: &str,
    params: &Params,
    secret: &SecretString,
    http: &Http,
    now: SystemTime,
) -> Result<Minted, MintError> {
    mint_rotating(registry, params, secret, http, now).map(|(minted, _)| minted)
}

/// As [`mint`], and the new refresh token when the server rotated it (a different one
/// from `secret`): the caller seals it in place of `secret`, which the server may
/// already have revoked.
pub fn mint_rotating(
    registry: &str,
    params: &Params,
    secret: &SecretString,
    http: &Http,
    now: SystemTime,
) -> Result<(Minted, Option<SecretString>), MintError> {
    // The definition was checked at `source add` and verified since; checked again
    // so a value that slipped through is one line, never a panic.
    check(params).map_err(|d| fail(KIND, registry, messages::SOURCE_SETTINGS, d))?;
    let deadline = http.deadline();
    let url = params["token-url"].as_str();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", secret.expose_secret()),
        ("client_id", params["client-id"].as_str()),
    ];
    let answer = http
        .post_form(url, &form, deadline)
        .map_err(|d| fail(KIND, registry, url, d))?;
    let token = answer::token(&answer, "access_token", now, &[secret.expose_secret()])
        .map_err(|d| fail(KIND, registry, url, d))?;
    let rotated = token
        .refresh_token
        .filter(|r| r.expose_secret() != secret.expose_secret());
    let username = params
        .get("username")
        .map_or(DEFAULT_USERNAME, String::as_str);
    Ok((
        Minted {
            username: username.to_owned(),
            secret: token.token,
            expires_at: token.expires_at,
        },
        rotated,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_secrets_are_checked() {
        let p = |kv: &[(&str, &str)]| -> Params {
            kv.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
        };
        let base = [
            ("token-url", "https://idp.example/token"),
            ("client-id", "docker"),
        ];
        assert_eq!(check(&p(&base)), Ok(()));
        assert!(check(&p(&[base[0], base[1], ("username", "robot$ci")])).is_ok());
        assert!(check(&p(&[base[0], base[1], ("username", "a:b")])).is_err());
        assert!(check(&p(&[("token-url", "http://idp.example/t"), base[1]])).is_err());
        assert!(check(&p(&[base[0]])).is_err());
        assert!(check(&p(&[base[0], base[1], ("scope", "x")])).is_err());
        assert!(check_secret(&SecretString::from("1//0g-abc".to_owned())).is_ok());
        assert!(check_secret(&SecretString::from("a\nb".to_owned())).is_err());
    }
}
