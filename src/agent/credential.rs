//! The vault a foreground agent opens from systemd's credential
//! (`$CREDENTIALS_DIRECTORY/lockbox-identity`, a unit's `LoadCredentialEncrypted=`):
//! `docs/AGENT.md`, "Serving a vault from a systemd credential".
//!
//! The credential is the unlock, so nothing is cached: for each decrypt of a vault
//! the agent holds no key for, it reads the vault file (the parser and bounds every
//! `get` uses, [`View::parse`]; readers take no lock), and only when the request names
//! that vault's public key does it read the credential (bounded, into wiped memory, a
//! regular file only, no symlink, never waited on: [`secret_io::read_credential_file`]),
//! parse it with the one identity parser and no way to ask
//! ([`identity::parse_identities`]), open the slot, decrypt, and drop the key. A rotated
//! vault or a replaced credential is therefore used at the next request, and a removed
//! one fails at once; the price is one file read, one parse and one X25519 unwrap per
//! `get` (`docs/PERFORMANCE.md`).
use std::path::{Path, PathBuf};

use crate::agent::proto::{CredentialFailure, CredentialStatus};
use crate::config::{Settings, var};
use crate::error::{Error, Result};
use crate::file::VaultPath;
use crate::identity;
use crate::secret_io;
use crate::vault::View;
use crate::vault::crypto::VaultKey;

/// The vault an agent serves from a credential, and where the credential is.
#[derive(Debug, Clone)]
pub struct CredentialVault {
    credential: PathBuf,
    vault: VaultPath,
}

/// What a reopen found.
pub enum Reopen {
    /// The request is not for this vault (or its file cannot be read, so nothing
    /// says it is): the agent answers as for any key it does not hold.
    NotThisVault,
    /// The credential opened the vault: this key, to use once and drop.
    Opened(VaultKey),
    /// The request is for this vault, and the credential did not open it.
    Failed(CredentialFailure, Error),
}

/// How the credential is named in errors and the log (never its content).
pub fn credential_name() -> String {
    format!("${}/{}", var::CREDENTIALS_DIRECTORY, var::CREDENTIAL_NAME)
}

impl CredentialVault {
    /// The vault this agent serves from its credential, when the credential exists at
    /// start (`None`: no `CREDENTIALS_DIRECTORY`, or no `lockbox-identity` in it). The
    /// vault is the one the agent's own settings select; it may be absent yet.
    pub fn at_start(settings: &Settings) -> Option<Result<Self>> {
        let credential = settings
            .keys
            .credentials_dir
            .as_ref()?
            .join(var::CREDENTIAL_NAME);
        if std::fs::symlink_metadata(&credential).is_err() {
            return None;
        }
        Some(
            settings
                .location
                .resolve()
                .map(|vault| CredentialVault { credential, vault }),
        )
    }

    /// For tests and callers that know both paths.
    pub fn new(credential: PathBuf, vault: PathBuf) -> Self {
        CredentialVault {
            credential,
            vault: VaultPath::new(vault),
        }
    }

    /// The vault's path, as `status` and the log name it.
    pub fn label(&self) -> String {
        self.vault.vault.display().to_string()
    }

    /// The credential file.
    pub fn credential(&self) -> &Path {
        &self.credential
    }

    /// The vault's public key now, or why the file cannot be read.
    pub fn public_key(&self) -> Result<String> {
        let bytes = self
            .vault
            .read_bytes()?
            .ok_or_else(|| Error::NotInitialized(self.vault.vault.clone()))?;
        Ok(View::parse(&bytes, &self.vault.vault)?
            .vault()
            .public()
            .to_string())
    }

    /// Opens the vault's key from the credential if `public_key` is this vault's.
    pub fn open_for(&self, public_key: &str) -> Reopen {
        let bytes = match self.vault.read_bytes() {
            Ok(Some(b)) => b,
            Ok(None) | Err(_) => return Reopen::NotThisVault,
        };
        let view = match View::parse(&bytes, &self.vault.vault) {
            Ok(v) => v,
            Err(_) => return Reopen::NotThisVault,
        };
        if view.vault().public().to_string() != public_key {
            return Reopen::NotThisVault;
        }
        match self.open(&view) {
            Ok(key) => Reopen::Opened(key),
            Err((why, e)) => Reopen::Failed(why, e),
        }
    }

    /// Tries the credential now (the start-up line and `status`); the key is dropped.
    pub fn check(&self) -> (CredentialStatus, Option<Error>) {
        let (public_key, outcome) = match self.vault.read_bytes() {
            Ok(Some(bytes)) => match View::parse(&bytes, &self.vault.vault) {
                Ok(view) => (
                    Some(view.vault().public().to_string()),
                    self.open(&view).map(drop),
                ),
                Err(e) => (None, Err((CredentialFailure::VaultUnreadable, e))),
            },
            Ok(None) => (
                None,
                Err((
                    CredentialFailure::VaultUnreadable,
                    Error::NotInitialized(self.vault.vault.clone()),
                )),
            ),
            Err(e) => (None, Err((CredentialFailure::VaultUnreadable, e))),
        };
        let (error, detail) = match outcome {
            Ok(()) => (None, None),
            Err((why, e)) => (Some(why), Some(e)),
        };
        (
            CredentialStatus {
                label: self.label(),
                public_key,
                error,
            },
            detail,
        )
    }

    fn open(&self, view: &View<'_>) -> std::result::Result<VaultKey, (CredentialFailure, Error)> {
        let text = match std::fs::symlink_metadata(&self.credential) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err((
                    CredentialFailure::Missing,
                    Error::BadIdentity {
                        source_name: credential_name(),
                        reason: format!("{} is gone", self.credential.display()),
                    },
                ));
            }
            _ => secret_io::read_credential_file(&self.credential)
                .map_err(|e| (CredentialFailure::Unreadable, e))?,
        };
        // A unit has nobody at a terminal: an encrypted identity is refused, never asked.
        let ids = identity::parse_identities(&text, &credential_name())
            .map_err(|e| (CredentialFailure::BadIdentity, e))?;
        drop(text);
        view.vault().open_with_identities(&ids).map_err(|e| {
            let why = match e {
                Error::NoMatchingIdentity | Error::NoAgeSlot => CredentialFailure::NoMatchingSlot,
                Error::BadIdentity { .. } | Error::IdentityNeedsPassphrase { .. } => {
                    CredentialFailure::BadIdentity
                }
                _ => CredentialFailure::Tampered,
            };
            (why, e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::Vault;
    use crate::vault::crypto::Recipient;
    use age::secrecy::ExposeSecret;

    struct Fixture {
        dir: tempfile::TempDir,
        key: VaultKey,
        identity: String,
    }

    impl Fixture {
        /// A vault on disk with one age slot, and its identity as the credential.
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let id = age::x25519::Identity::generate();
            let key = VaultKey::generate();
            let f = Fixture {
                dir,
                key,
                identity: format!("{}\n", id.to_string().expose_secret()),
            };
            f.write_vault(&id.to_public().to_string());
            std::fs::write(f.cred(), &f.identity).unwrap();
            f
        }

        fn write_vault(&self, recipient: &str) {
            let slot = Vault::age_slot(
                &self.key,
                &Recipient::parse(recipient).unwrap(),
                "build-01".into(),
            )
            .unwrap();
            VaultPath::new(self.vault_path())
                .create(&Vault::new(&self.key, vec![slot]), true)
                .unwrap();
        }

        fn vault_path(&self) -> PathBuf {
            self.dir.path().join("vault.json")
        }

        fn cred(&self) -> PathBuf {
            self.dir.path().join("lockbox-identity")
        }

        fn served(&self) -> CredentialVault {
            CredentialVault::new(self.cred(), self.vault_path())
        }

        fn public(&self) -> String {
            self.key.public().to_string()
        }
    }

    /// The failure's kind; its message never holds a key (the one of the fixture).
    fn failure(r: Reopen) -> CredentialFailure {
        match r {
            Reopen::Failed(why, e) => {
                let m = e.message();
                let mut rest = m.as_str();
                while let Some(i) = rest.find("AGE-SECRET-KEY-1") {
                    rest = &rest[i + "AGE-SECRET-KEY-1".len()..];
                    assert!(rest.starts_with('…'), "{m}");
                }
                why
            }
            Reopen::Opened(_) => panic!("opened"),
            Reopen::NotThisVault => panic!("not this vault"),
        }
    }

    #[test]
    fn the_credential_opens_its_vault_and_only_for_that_public_key() {
        let f = Fixture::new();
        let c = f.served();
        match c.open_for(&f.public()) {
            Reopen::Opened(k) => assert_eq!(k.public().to_string(), f.public()),
            _ => panic!("did not open"),
        }
        let other = VaultKey::generate().public().to_string();
        assert!(matches!(c.open_for(&other), Reopen::NotThisVault));
        let (st, detail) = c.check();
        assert_eq!(st.error, None, "{detail:?}");
        assert_eq!(st.public_key.as_deref(), Some(f.public().as_str()));
    }

    #[test]
    fn nothing_is_cached_a_changed_credential_or_vault_is_seen_at_once() {
        let f = Fixture::new();
        let c = f.served();
        assert!(matches!(c.open_for(&f.public()), Reopen::Opened(_)));
        std::fs::remove_file(f.cred()).unwrap();
        assert_eq!(failure(c.open_for(&f.public())), CredentialFailure::Missing);
        std::fs::write(f.cred(), "not a key\n").unwrap();
        assert_eq!(
            failure(c.open_for(&f.public())),
            CredentialFailure::BadIdentity
        );
        // Another identity: it opens no slot.
        let other = age::x25519::Identity::generate();
        std::fs::write(f.cred(), other.to_string().expose_secret()).unwrap();
        assert_eq!(
            failure(c.open_for(&f.public())),
            CredentialFailure::NoMatchingSlot
        );
        // The vault re-made for that identity (a rotation of its slots): opens again.
        f.write_vault(&other.to_public().to_string());
        assert!(matches!(c.open_for(&f.public()), Reopen::Opened(_)));
        // No vault file: no request can be said to be for it.
        std::fs::remove_file(f.vault_path()).unwrap();
        assert!(matches!(c.open_for(&f.public()), Reopen::NotThisVault));
        let (st, detail) = c.check();
        assert_eq!(st.error, Some(CredentialFailure::VaultUnreadable));
        assert!(matches!(detail, Some(Error::NotInitialized(_))));
    }

    #[test]
    fn a_huge_credential_is_refused_bounded() {
        let f = Fixture::new();
        std::fs::write(f.cred(), vec![b'A'; (secret_io::MAX_KEY_FILE + 1) as usize]).unwrap();
        assert_eq!(
            failure(f.served().open_for(&f.public())),
            CredentialFailure::Unreadable
        );
    }
}
