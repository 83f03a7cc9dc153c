//! The dispatcher of the network kinds (`aws-ecr`, `gcp`, `azure-acr`, `oauth2`): the
//! get path and `source add` call these two, and handle the other kinds (`exec`)
//! themselves. (A file of its own, not the folder's root, which every kind imports
//! its types from: the layer test forbids the cycle.)
use std::time::SystemTime;

use age::secrecy::SecretString;

use super::types::{Minted, Params};
use super::{aws, azure, gcp, oauth2};
use crate::error::MintError;
use crate::http::Http;

/// The kinds that mint over HTTPS (`exec` runs a command instead).
pub const HTTP_KINDS: &[&str] = &[aws::KIND, gcp::KIND, azure::KIND, oauth2::KIND];

/// Mints with the network kind `kind` (`aws-ecr`, `gcp`, `azure-acr`, `oauth2`); `None`
/// for any other kind. `registry` is the host asked; `params` and `secret` come from a
/// source whose definition has been verified; every request ends within `http`'s
/// timeout of the call (one deadline for all the requests of the mint).
pub fn mint_http(
    kind: &str,
    registry: &str,
    params: &Params,
    secret: &SecretString,
    http: &Http,
    now: SystemTime,
) -> Option<Result<Minted, MintError>> {
    let mint = match kind {
        aws::KIND => aws::mint,
        gcp::KIND => gcp::mint,
        azure::KIND => azure::mint,
        oauth2::KIND => oauth2::mint,
        _ => return None,
    };
    Some(mint(registry, params, secret, http, now))
}

/// Checks a network kind's parameters and secret at `source add` (the parameters first:
/// one line, never the secret); `None` for any other kind.
pub fn check_http(
    kind: &str,
    params: &Params,
    secret: &SecretString,
) -> Option<Result<(), String>> {
    type Check = fn(&Params) -> Result<(), String>;
    type CheckSecret = fn(&SecretString) -> Result<(), String>;
    let (check, check_secret): (Check, CheckSecret) = match kind {
        aws::KIND => (aws::check, aws::check_secret),
        gcp::KIND => (gcp::check, gcp::check_secret),
        azure::KIND => (azure::check, azure::check_secret),
        oauth2::KIND => (oauth2::check, oauth2::check_secret),
        _ => return None,
    };
    Some(check(params).and_then(|()| check_secret(secret)))
}
