//! Sealed sources: a long-lived credential kept in the vault (AWS keys, a Google
//! service-account key, an Azure client secret, an OAuth2 refresh token, or a command)
//! from which `get` mints the short-lived registry credential (`docs/FORMAT.md`
//! "Sources", `docs/BUILD_SERVER.md`).
//!
//! Not built yet (issue 21): so far the folder holds only the types its kinds will
//! share. The plan: one file per kind, each a pure request builder and a response
//! parser over one small HTTP client shared with `openbao/`, plus `check` for
//! `source add`. Every kind will have the same two functions:
//!
//! ```text
//! pub fn check(params: &Params) -> Result<(), String>;
//! pub fn mint(params: &Params, secret: &[u8], http: &Http, now: SystemTime)
//!     -> Result<Minted, MintError>;
//! ```
//!
//! The folder sits on floor 5 (`src/lib.rs`), beside `identity/` and `openbao/`: it
//! imports the vault core and the plumbing below it, never `identity`, `openbao`,
//! `config` or `agent`.
use std::collections::BTreeMap;
use std::time::SystemTime;

use age::secrecy::SecretString;

pub use crate::error::MintError;

mod answer;
pub mod aws;
pub mod azure;
pub mod gcp;
pub mod network;
pub mod oauth2;
pub mod sigv4;

/// A source's parameters as stored in its authenticated definition: names as the
/// `source add` flags without their dashes (`region`, `access-key-id`, `role-arn`,
/// `endpoint`, `token-uri`, `tenant`, `client-id`, `authority`, `token-url`,
/// `username`, …), values as given. Never secret: secrets are sealed apart.
pub type Params = BTreeMap<String, String>;

/// A registry credential minted from a source.
pub struct Minted {
    /// The username the registry expects (`AWS`, `oauth2accesstoken`, the zero GUID
    /// for an ACR refresh token, or what the source says).
    pub username: String,
    /// The short-lived secret.
    pub secret: SecretString,
    /// When it stops working, when the issuer says.
    pub expires_at: Option<SystemTime>,
}
