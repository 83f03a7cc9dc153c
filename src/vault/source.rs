//! A sealed source's definition (format version 4, `docs/FORMAT.md` "Sources"): the
//! kind, its parameters and a keyed MAC over all of it.
//!
//! A source is an entry whose sealed secret is not a registry credential but the
//! long-lived credential a registry token is minted from (AWS keys, a service-account
//! key, a client secret, a refresh token; nothing for a command). Its definition says
//! where that secret is sent, or which program runs as the user, so unlike a static
//! entry it is **authenticated**: an HMAC in [`MacDomain::Source`] binds the kind, every
//! parameter, the server URL, the username and a hash of the sealed secret, and only a
//! holder of the vault key can make one. Anyone who can write the vault file can still
//! plant an entry (it needs only `public_key`); a planted or altered *source* fails its
//! MAC and is refused before its secret is opened or its command run.
//!
//! The core checks only the shape (names, sizes); what a kind's parameters mean is
//! `src/sources/`.
use std::collections::BTreeMap;

use sha2::Digest as _;

use super::crypto::{EntryOpener, MacDomain};
use crate::error::{Error, Result};

/// Longest kind name, bytes.
pub const MAX_KIND: usize = 32;
/// Most parameters of one source.
pub const MAX_PARAMS: usize = 32;
/// Longest parameter name, bytes.
pub const MAX_PARAM_NAME: usize = 64;
/// Longest parameter value, bytes (an `exec` command line, a URL).
pub const MAX_PARAM_VALUE: usize = 16 * 1024;

/// A source's definition as stored beside its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDef {
    /// The kind: `aws-ecr`, `gcp`, `azure-acr`, `oauth2`, `exec`.
    pub kind: String,
    /// Its parameters, by name (never secret).
    pub params: BTreeMap<String, String>,
    /// HMAC-SHA256 in [`MacDomain::Source`] over [`SourceDef::transcript`].
    pub mac: [u8; 32],
}

/// A name the format accepts for a kind or a parameter: `[a-z0-9-]`, starting with a
/// letter, at most `max` bytes.
fn is_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Checks a definition's shape: the kind's and parameters' names, their count and
/// sizes, and that values are printable text (no control characters: they are shown
/// by `source list` and `status`).
pub fn check_shape(
    kind: &str,
    params: &BTreeMap<String, String>,
) -> std::result::Result<(), String> {
    if !is_name(kind, MAX_KIND) {
        return Err("a source's kind is not a name of [a-z0-9-]".into());
    }
    if params.len() > MAX_PARAMS {
        return Err(format!("a source has more than {MAX_PARAMS} parameters"));
    }
    for (name, value) in params {
        if !is_name(name, MAX_PARAM_NAME) {
            return Err("a source parameter's name is not a name of [a-z0-9-]".into());
        }
        if value.len() > MAX_PARAM_VALUE {
            return Err(format!(
                "a source parameter is over {MAX_PARAM_VALUE} bytes"
            ));
        }
        if value.chars().any(char::is_control) {
            return Err("a source parameter holds a control character".into());
        }
    }
    Ok(())
}

impl SourceDef {
    /// The bytes the MAC covers (`docs/FORMAT.md` "Source MAC"): each field as a u32-BE
    /// length and its bytes — a tag, the server URL, the username, the kind, the number
    /// of parameters in decimal, each parameter's name and value in name order, and the
    /// SHA-256 of the sealed secret's bytes.
    pub fn transcript(
        server: &str,
        username: &str,
        kind: &str,
        params: &BTreeMap<String, String>,
        sealed: &[u8],
    ) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, bytes: &[u8]) {
            // Every field is bounded far below 4 GiB (server and username 1 MiB).
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        let mut t = Vec::with_capacity(160 + server.len() + username.len());
        field(&mut t, b"lockbox-source-v1");
        field(&mut t, server.as_bytes());
        field(&mut t, username.as_bytes());
        field(&mut t, kind.as_bytes());
        field(&mut t, params.len().to_string().as_bytes());
        for (name, value) in params {
            field(&mut t, name.as_bytes());
            field(&mut t, value.as_bytes());
        }
        field(&mut t, &sha2::Sha256::digest(sealed));
        t
    }

    /// A definition for the entry `server`/`username` whose sealed secret is `sealed`,
    /// authenticated by `opener` (the vault key, or the agent holding it).
    pub fn new(
        opener: &dyn EntryOpener,
        server: &str,
        username: &str,
        kind: &str,
        params: BTreeMap<String, String>,
        sealed: &[u8],
    ) -> Result<SourceDef> {
        check_shape(kind, &params).map_err(Error::LimitExceeded)?;
        let t = Self::transcript(server, username, kind, &params, sealed);
        let mac = opener.keyed_mac(MacDomain::Source, &t)?;
        Ok(SourceDef {
            kind: kind.to_owned(),
            params,
            mac,
        })
    }

    /// Fails with [`Error::SourceTampered`] unless the MAC is the vault key's for this
    /// definition on the entry `server`/`username` with the sealed secret `sealed`:
    /// checked before the secret is opened, sent anywhere or a command run.
    pub fn verify(
        &self,
        opener: &dyn EntryOpener,
        server: &str,
        username: &str,
        sealed: &[u8],
    ) -> Result<()> {
        let t = Self::transcript(server, username, &self.kind, &self.params, sealed);
        if opener.verify_keyed_mac(MacDomain::Source, &t, &self.mac)? {
            Ok(())
        } else {
            Err(Error::SourceTampered(server.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::crypto::VaultKey;

    fn params() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("region".to_owned(), "eu-west-1".to_owned()),
            ("access-key-id".to_owned(), "AKIAEXAMPLE".to_owned()),
        ])
    }

    #[test]
    fn only_the_vault_key_makes_a_definition_that_verifies_and_every_field_is_bound() {
        let key = VaultKey::generate();
        let other = VaultKey::generate();
        let s = "123.dkr.ecr.eu-west-1.amazonaws.com";
        let def = SourceDef::new(&key, s, "AWS", "aws-ecr", params(), b"sealed").unwrap();
        def.verify(&key, s, "AWS", b"sealed").unwrap();
        let refused = |r: Result<()>| assert!(matches!(r, Err(Error::SourceTampered(_))));
        refused(def.verify(&other, s, "AWS", b"sealed"));
        refused(def.verify(&key, "evil.example", "AWS", b"sealed"));
        refused(def.verify(&key, s, "root", b"sealed"));
        refused(def.verify(&key, s, "AWS", b"sealeD"));
        let mut kind = def.clone();
        kind.kind = "exec".into();
        refused(kind.verify(&key, s, "AWS", b"sealed"));
        let mut endpoint = def.clone();
        endpoint
            .params
            .insert("endpoint".into(), "https://evil.example".into());
        refused(endpoint.verify(&key, s, "AWS", b"sealed"));
        let mut value = def.clone();
        value.params.insert("region".into(), "us-east-1".into());
        refused(value.verify(&key, s, "AWS", b"sealed"));
    }

    #[test]
    fn the_transcript_cannot_be_shifted_between_names_and_values() {
        let a = BTreeMap::from([("ab".to_owned(), "c".to_owned())]);
        let b = BTreeMap::from([("a".to_owned(), "bc".to_owned())]);
        assert_ne!(
            SourceDef::transcript("s", "u", "exec", &a, b""),
            SourceDef::transcript("s", "u", "exec", &b, b"")
        );
    }

    #[test]
    fn shapes_outside_the_bounds_are_refused() {
        assert!(check_shape("aws-ecr", &params()).is_ok());
        assert!(check_shape("AWS", &params()).is_err());
        assert!(check_shape("", &params()).is_err());
        let bad_name = BTreeMap::from([("Region".to_owned(), "x".to_owned())]);
        assert!(check_shape("exec", &bad_name).is_err());
        let control = BTreeMap::from([("region".to_owned(), "a\u{1b}[2J".to_owned())]);
        assert!(check_shape("exec", &control).is_err());
        let long = BTreeMap::from([("command".to_owned(), "x".repeat(MAX_PARAM_VALUE + 1))]);
        assert!(check_shape("exec", &long).is_err());
        let many: BTreeMap<_, _> = (0..=MAX_PARAMS)
            .map(|i| (format!("p{i}"), String::new()))
            .collect();
        assert!(check_shape("exec", &many).is_err());
    }
}
