//! The `azure-acr` source: an Entra ID (Azure AD) app's client secret mints an ACR
//! refresh token, which `docker login` takes as the password of the zero GUID.
//!
//! - Parameters: `tenant`, `client-id`, optional `authority` (default
//!   `https://login.microsoftonline.com`; sovereign clouds have their own), optional
//!   `endpoint` (the base URL of the registry's `/oauth2/exchange`, default
//!   `https://{registry}`).
//! - Secret: the client secret.
//! - First the client-credentials grant at `{authority}/{tenant}/oauth2/v2.0/token`
//!   (scope `https://management.azure.com/.default`) gives an Entra access token; then
//!   ACR's `POST {endpoint}/oauth2/exchange` (`grant_type=access_token`, `service`,
//!   `tenant`, `access_token`) trades it for a registry refresh token (about 3 hours),
//!   whose JWT `exp` is its expiry.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use age::secrecy::{ExposeSecret, SecretString};

use super::answer::{self, check_names, check_url_param, fail, plain_value};
use super::types::{Minted, Params};
use crate::error::MintError;
use crate::http::Http;
use crate::messages;
use crate::vault::meta::jwt_expiry;

/// The kind's name in `source add` and in errors.
pub const KIND: &str = "azure-acr";
/// Entra ID's public-cloud authority.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The scope the ACR exchange accepts an Entra token of.
pub const SCOPE: &str = "https://management.azure.com/.default";
/// The username ACR expects with a refresh token.
pub const USERNAME: &str = super::types::ACR_REFRESH_USERNAME;
const REQUIRED: &[&str] = &["tenant", "client-id"];
const OPTIONAL: &[&str] = &["authority", "endpoint"];
/// Longest client secret accepted (Entra's are 40 characters).
const MAX_SECRET: usize = 1024;

/// Checks the parameters at `source add`.
pub fn check(params: &Params) -> Result<(), String> {
    check_names(params, REQUIRED, OPTIONAL)?;
    if !plain_value(&params["tenant"], "-.", 256) {
        return Err(messages::source_param_form(
            "tenant",
            messages::FORM_AZURE_TENANT,
        ));
    }
    if !plain_value(&params["client-id"], "-", 256) {
        return Err(messages::source_param_form(
            "client-id",
            messages::FORM_AZURE_CLIENT_ID,
        ));
    }
    check_url_param(params, "authority")?;
    check_url_param(params, "endpoint")
}

/// Checks the client secret at `source add`: one line of printable ASCII.
pub fn check_secret(secret: &SecretString) -> Result<(), String> {
    answer::check_one_line_secret(
        secret,
        MAX_SECRET,
        messages::SECRET_NAME_AZURE,
        messages::SECRET_ONE_LINE,
    )
}

/// Mints an ACR refresh token for `registry` (a host such as `myreg.azurecr.io`).
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
    let tenant = params["tenant"].as_str();
    let authority = params
        .get("authority")
        .map_or(DEFAULT_AUTHORITY, String::as_str)
        .trim_end_matches('/');
    let url = format!("{authority}/{tenant}/oauth2/v2.0/token");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", params["client-id"].as_str()),
        ("client_secret", secret.expose_secret()),
        ("scope", SCOPE),
    ];
    let answer = http
        .post_form(&url, &form, deadline)
        .map_err(|d| fail(KIND, registry, &url, d))?;
    let entra = answer::token(&answer, "access_token", now, &[secret.expose_secret()])
        .map_err(|d| fail(KIND, registry, &url, d))?;
    let host = registry_host(registry);
    let base = params
        .get("endpoint")
        .cloned()
        .unwrap_or_else(|| format!("https://{host}"));
    let url = format!("{}/oauth2/exchange", base.trim_end_matches('/'));
    let form = [
        ("grant_type", "access_token"),
        ("service", host),
        ("tenant", tenant),
        ("access_token", entra.token.expose_secret()),
    ];
    let answer = http
        .post_form(&url, &form, deadline)
        .map_err(|d| fail(KIND, registry, &url, d))?;
    let sent = [secret.expose_secret(), entra.token.expose_secret()];
    let refresh = answer::token(&answer, "refresh_token", now, &sent)
        .map_err(|d| fail(KIND, registry, &url, d))?;
    let expires_at =
        jwt_expiry(refresh.token.expose_secret()).map(|s| UNIX_EPOCH + Duration::from_secs(s));
    Ok(Minted {
        username: USERNAME.to_owned(),
        secret: refresh.token,
        expires_at,
    })
}

/// The host (and port) of a registry name, without a scheme or a path.
fn registry_host(registry: &str) -> &str {
    let rest = registry
        .strip_prefix("https://")
        .or_else(|| registry.strip_prefix("http://"))
        .unwrap_or(registry);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> Params {
        kv.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn parameters_and_secrets_are_checked() {
        let base = [
            ("tenant", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("client-id", "04b07795-8ddb-461a-bbee-02f9e1bf7b46"),
        ];
        assert_eq!(check(&params(&base)), Ok(()));
        let with = |extra: (&str, &str)| {
            let mut p = params(&base);
            p.insert(extra.0.into(), extra.1.into());
            check(&p)
        };
        assert!(with(("tenant", "contoso.onmicrosoft.com")).is_ok());
        assert!(with(("authority", "https://login.microsoftonline.us")).is_ok());
        assert!(with(("endpoint", "http://127.0.0.1:8080")).is_ok());
        for bad in [
            ("tenant", "a/b"),
            ("client-id", "x y"),
            ("authority", "http://login.example"),
            ("endpoint", "https://a/?q"),
            ("region", "x"),
        ] {
            assert!(with(bad).is_err(), "{bad:?}");
        }
        assert!(check(&params(&base[..1])).is_err());
        assert!(check_secret(&SecretString::from("abc~DEF.123".to_owned())).is_ok());
        assert!(check_secret(&SecretString::from("a b".to_owned())).is_err());
        assert!(check_secret(&SecretString::from(String::new())).is_err());
    }

    #[test]
    fn registry_hosts() {
        assert_eq!(registry_host("myreg.azurecr.io"), "myreg.azurecr.io");
        assert_eq!(
            registry_host("https://myreg.azurecr.io/v2/"),
            "myreg.azurecr.io"
        );
        assert_eq!(registry_host("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn a_plain_http_authority_is_refused_before_the_secret_is_sent() {
        let http = Http::new(Duration::from_secs(1));
        let p = params(&[
            ("tenant", "t"),
            ("client-id", "c"),
            ("authority", "http://login.example"),
        ]);
        let e = mint(
            "r.azurecr.io",
            &p,
            &SecretString::from("s".to_owned()),
            &http,
            SystemTime::now(),
        )
        .err()
        .unwrap();
        assert_eq!(e.endpoint, messages::SOURCE_SETTINGS);
        assert!(e.detail.ends_with(messages::URL_PLAIN_HTTP), "{e}");
    }
}
