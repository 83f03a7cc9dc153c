//! The vault in memory: its public key, its slots and its entries, and the versioned
//! text format they are read from and written to (`docs/FORMAT.md`).
//!
//! Nothing here prints, prompts or touches the file system; [`crate::file`] does I/O.
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use age::secrecy::SecretString;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::crypto::{self, KdfParams, PassphraseWrap, Recipient, VaultKey};
use crate::error::{Error, Result};
use crate::serverurl;

/// The format version this build reads and writes.
pub const FORMAT_VERSION: u64 = 1;

/// Bounds checked on every field read from a file (`docs/FORMAT.md` "Bounds").
pub mod bounds {
    /// Most slots in one vault.
    pub const MAX_SLOTS: usize = 64;
    /// Most entries in one vault.
    pub const MAX_ENTRIES: usize = 10_000;
    /// Longest slot label, bytes.
    pub const MAX_LABEL: usize = 256;
    /// Longest recipient text, bytes (an ssh-rsa 16384-bit key is about 2.8 KB).
    pub const MAX_RECIPIENT: usize = 8 * 1024;
    /// Longest wrapped key in an age slot, bytes (an ssh-rsa stanza is below 3 KB).
    pub const MAX_AGE_WRAPPED: usize = 16 * 1024;
    /// Longest wrapped key in a passphrase slot, bytes (74-byte key + 16-byte tag).
    pub const MAX_PASSPHRASE_WRAPPED: usize = 256;
    /// Longest server URL or username, bytes: the whole protocol input is 1 MiB.
    pub const MAX_KEY: usize = 1 << 20;
    /// Longest entry ciphertext, bytes: a 1 MiB secret plus age's overhead.
    pub const MAX_ENTRY_CIPHERTEXT: usize = (1 << 20) + 64 * 1024;
}

/// A way to open the vault's private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Argon2id + XChaCha20-Poly1305 under a passphrase.
    Passphrase(PassphraseWrap),
    /// The private key age-encrypted to one recipient.
    Age {
        /// A person-chosen name (an SSH key's comment by default).
        label: String,
        /// The recipient, `age1…` or `ssh-… AAAA…`.
        recipient: String,
        /// The age ciphertext of the private key.
        wrapped: Vec<u8>,
    },
}

impl Slot {
    /// A short description for `status` and `init`, never secret.
    pub fn describe(&self) -> String {
        match self {
            Slot::Passphrase(w) => format!(
                "passphrase (argon2id m={} MiB t={} p={})",
                w.params.m_cost_kib / 1024,
                w.params.t_cost,
                w.params.p_cost
            ),
            Slot::Age {
                label, recipient, ..
            } => {
                let kind = recipient.split_whitespace().next().unwrap_or("age");
                let kind = if kind.starts_with("age1") {
                    "x25519"
                } else {
                    kind
                };
                format!("age {kind} \"{label}\"")
            }
        }
    }
}

/// One stored credential. The secret is the age ciphertext; only a [`VaultKey`] opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The username, in the clear (as in Docker's own `auths` markers).
    pub username: String,
    /// The age ciphertext of the bound secret (`docs/FORMAT.md` "Entry plaintext").
    pub secret: Vec<u8>,
}

/// The whole vault.
#[derive(Debug, Clone)]
pub struct Vault {
    public: age::x25519::Recipient,
    slots: Vec<Slot>,
    /// HMAC over the public key and slots, keyed from the vault key: only a holder
    /// of the key can add, change or remove slots undetected.
    mac: [u8; 32],
    entries: BTreeMap<String, Entry>,
}

impl Vault {
    /// A new, empty vault for `key` with the given slots.
    pub fn new(key: &VaultKey, slots: Vec<Slot>) -> Self {
        let mut v = Vault {
            public: key.public(),
            slots,
            mac: [0; 32],
            entries: BTreeMap::new(),
        };
        v.seal_slots(key);
        v
    }

    /// The bytes the slots MAC covers (`docs/FORMAT.md` "Slots MAC"): each field as a
    /// u32-BE length and its bytes.
    fn slots_transcript(&self) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, bytes: &[u8]) {
            // Every field is bounded far below 4 GiB when read or made.
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        let mut t = Vec::with_capacity(256 * (1 + self.slots.len()));
        field(&mut t, b"lockbox-slots-v1");
        field(&mut t, self.public.to_string().as_bytes());
        field(&mut t, self.slots.len().to_string().as_bytes());
        for slot in &self.slots {
            match slot {
                Slot::Passphrase(w) => {
                    field(&mut t, b"passphrase");
                    field(&mut t, KDF_ARGON2ID.as_bytes());
                    for n in [w.params.m_cost_kib, w.params.t_cost, w.params.p_cost] {
                        field(&mut t, n.to_string().as_bytes());
                    }
                    field(&mut t, &w.salt);
                    field(&mut t, &w.nonce);
                    field(&mut t, &w.wrapped);
                }
                Slot::Age {
                    label,
                    recipient,
                    wrapped,
                } => {
                    field(&mut t, b"age");
                    field(&mut t, label.as_bytes());
                    field(&mut t, recipient.as_bytes());
                    field(&mut t, wrapped);
                }
            }
        }
        t
    }

    /// Recomputes the slots MAC after the slots changed.
    fn seal_slots(&mut self, key: &VaultKey) {
        self.mac = key.slots_mac(&self.slots_transcript());
    }

    /// A key that opened a slot also checks the MAC: slots added or changed by
    /// someone without the key (an inert slot naming their own recipient, waiting for
    /// the next rotation) are detected before they are trusted.
    fn verified(&self, key: VaultKey) -> Result<VaultKey> {
        if key.verify_slots_mac(&self.slots_transcript(), &self.mac) {
            Ok(key)
        } else {
            Err(Error::SlotsTampered)
        }
    }

    /// Makes a passphrase slot for `key`.
    pub fn passphrase_slot(
        key: &VaultKey,
        passphrase: &SecretString,
        params: KdfParams,
    ) -> Result<Slot> {
        key.wrap_with_passphrase(passphrase, params)
            .map(Slot::Passphrase)
    }

    /// Makes an age slot for `key`.
    pub fn age_slot(key: &VaultKey, recipient: &Recipient, label: String) -> Result<Slot> {
        Ok(Slot::Age {
            label,
            recipient: recipient.canonical(),
            wrapped: key.wrap_to_recipient(recipient)?,
        })
    }

    /// The vault's public key.
    pub fn public(&self) -> &age::x25519::Recipient {
        &self.public
    }

    /// The slots, in file order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The entries, sorted by server URL.
    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.entries
    }

    /// Stores (or replaces) the entry for `server`: one entry per exact server URL, the
    /// newest store wins. Needs no secret key.
    pub fn store(&mut self, server: &str, username: &str, secret: &SecretString) -> Result<()> {
        let ciphertext = crypto::seal_entry(&self.public, server, username, secret)?;
        self.entries.insert(
            server.to_owned(),
            Entry {
                username: username.to_owned(),
                secret: ciphertext,
            },
        );
        Ok(())
    }

    /// Erases the entry `server` refers to: the exact key if present, otherwise every
    /// key with the same normalized form (so `podman logout docker.io` removes what
    /// `docker login` stored as `https://index.docker.io/v1/`). Returns whether anything
    /// was removed; erasing an absent entry is not an error.
    pub fn erase(&mut self, server: &str) -> bool {
        if self.entries.remove(server).is_some() {
            return true;
        }
        let Some(wanted) = serverurl::normalize(server) else {
            return false;
        };
        let before = self.entries.len();
        self.entries
            .retain(|k, _| serverurl::normalize(k).as_deref() != Some(wanted.as_str()));
        self.entries.len() != before
    }

    /// The entry `request` refers to (exact key first, then the normalized fallback).
    pub fn lookup(&self, request: &str) -> Option<(&str, &Entry)> {
        let key = serverurl::find(request, self.entries.keys().map(String::as_str))?;
        self.entries
            .get_key_value(key)
            .map(|(k, e)| (k.as_str(), e))
    }

    /// Adds an age slot unless one for the same recipient exists; returns whether it
    /// was added.
    pub fn add_recipient(
        &mut self,
        key: &VaultKey,
        recipient: &Recipient,
        label: String,
    ) -> Result<bool> {
        self.check_key(key)?;
        let canonical = recipient.canonical();
        if self
            .slots
            .iter()
            .any(|s| matches!(s, Slot::Age { recipient: r, .. } if *r == canonical))
        {
            return Ok(false);
        }
        self.slots.push(Self::age_slot(key, recipient, label)?);
        self.seal_slots(key);
        Ok(true)
    }

    /// The indexes of the age slots whose label or recipient is `which`.
    pub fn find_recipient(&self, which: &str) -> Vec<usize> {
        let which = which.trim();
        let canonical = Recipient::parse(which).ok().map(|r| r.canonical());
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| match s {
                Slot::Age {
                    label, recipient, ..
                } => label == which || Some(recipient) == canonical.as_ref() || recipient == which,
                Slot::Passphrase(_) => false,
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Rotates the vault's key pair, so nobody who held the old key (or a removed
    /// slot) can open any later version of the file: a new key, every kept slot
    /// re-wrapped (a passphrase slot needs `passphrase`, its cost kept), the slots at
    /// `remove` dropped, a new passphrase slot added first if `new_passphrase` is given
    /// (`passwd`), and every entry re-encrypted. Refuses to leave no slot. Returns the
    /// new key.
    pub fn rotate(
        &mut self,
        old: &VaultKey,
        remove: &[usize],
        passphrase: Option<&SecretString>,
        new_passphrase: Option<(&SecretString, KdfParams)>,
    ) -> Result<VaultKey> {
        self.check_key(old)?;
        if let Some(&i) = remove.iter().find(|&&i| i >= self.slots.len()) {
            return Err(Error::NoSuchSlot(i));
        }
        let keep: Vec<&Slot> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(i, _)| !remove.contains(i))
            .map(|(_, s)| s)
            .collect();
        if keep.is_empty() && new_passphrase.is_none() {
            return Err(Error::LastSlot);
        }
        let new = VaultKey::generate();
        let mut slots = Vec::with_capacity(keep.len() + 1);
        if let Some((p, params)) = new_passphrase {
            slots.push(Self::passphrase_slot(&new, p, params)?);
        }
        for slot in keep {
            slots.push(match slot {
                Slot::Passphrase(w) => {
                    let p = passphrase.ok_or(Error::RotateNeedsPassphrase)?;
                    // Proves the passphrase is the slot's before re-wrapping with it.
                    VaultKey::unwrap_with_passphrase(w, p, &self.public)?;
                    Self::passphrase_slot(&new, p, w.params)?
                }
                Slot::Age {
                    label, recipient, ..
                } => Self::age_slot(&new, &Recipient::parse(recipient)?, label.clone())?,
            });
        }
        let mut entries = BTreeMap::new();
        for (server, e) in &self.entries {
            let secret = old.open_entry(server, &e.username, &e.secret)?;
            let secret = SecretString::from(secret.as_str().to_owned());
            entries.insert(
                server.clone(),
                Entry {
                    username: e.username.clone(),
                    secret: crypto::seal_entry(&new.public(), server, &e.username, &secret)?,
                },
            );
        }
        self.public = new.public();
        self.slots = slots;
        self.entries = entries;
        self.seal_slots(&new);
        Ok(new)
    }

    /// Fails unless `key` is this vault's key (the vault may have been rotated by
    /// another process since the key was opened) and the slots MAC still verifies:
    /// the file is read again under the lock before a change, and a slot slipped in
    /// meanwhile must not be re-wrapped or re-sealed.
    pub fn check_key(&self, key: &VaultKey) -> Result<()> {
        if key.public().to_string() != self.public.to_string() {
            return Err(Error::KeyMismatch);
        }
        if !key.verify_slots_mac(&self.slots_transcript(), &self.mac) {
            return Err(Error::SlotsTampered);
        }
        Ok(())
    }

    /// Opens the private key with a passphrase.
    pub fn open_with_passphrase(&self, passphrase: &SecretString) -> Result<VaultKey> {
        let mut found = false;
        for slot in &self.slots {
            if let Slot::Passphrase(wrap) = slot {
                found = true;
                match VaultKey::unwrap_with_passphrase(wrap, passphrase, &self.public) {
                    Err(Error::WrongPassphrase) => continue,
                    Ok(key) => return self.verified(key),
                    Err(e) => return Err(e),
                }
            }
        }
        Err(if found {
            Error::WrongPassphrase
        } else {
            Error::NoPassphraseSlot
        })
    }

    /// Opens the private key with any of the given age identities.
    pub fn open_with_identities(
        &self,
        identities: &[Box<dyn age::Identity + Send + Sync>],
    ) -> Result<VaultKey> {
        let mut found = false;
        for slot in &self.slots {
            if let Slot::Age { wrapped, .. } = slot {
                found = true;
                if let Some(key) =
                    VaultKey::unwrap_with_identities(wrapped, identities, &self.public)?
                {
                    return self.verified(key);
                }
            }
        }
        Err(if found {
            Error::NoMatchingIdentity
        } else {
            Error::NoAgeSlot
        })
    }

    /// Parses and validates a vault file's bytes. `path` is only used in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let file: FileV1 = match serde_json::from_slice(bytes) {
            Ok(f) => f,
            Err(e) => {
                // Tell a newer format apart from a damaged file.
                if let Ok(probe) = serde_json::from_slice::<Probe>(bytes)
                    && probe.lockbox != FORMAT_VERSION
                {
                    return Err(Error::UnsupportedVersion {
                        path: path.to_owned(),
                        version: probe.lockbox,
                    });
                }
                return Err(Error::corrupt(path, format!("not a lockbox vault: {e}")));
            }
        };
        file.validate(path)
    }

    /// The file bytes: pretty JSON (diffs sanely in git) and a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let file = FileV1 {
            lockbox: FORMAT_VERSION,
            public_key: self.public.to_string(),
            slots: self.slots.iter().map(SlotV1::from).collect(),
            slots_mac: B64.encode(self.mac),
            entries: self
                .entries
                .iter()
                .map(|(k, e)| {
                    (
                        k.clone(),
                        EntryV1 {
                            username: e.username.clone(),
                            secret: B64.encode(&e.secret),
                        },
                    )
                })
                .collect(),
        };
        // Serializing plain strings and numbers into a Vec cannot fail.
        let mut out = serde_json::to_vec_pretty(&file).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// Only the version field, to tell "newer format" from "damaged".
#[derive(Deserialize)]
struct Probe {
    lockbox: u64,
}

/// Format version 1, exactly as stored (`docs/FORMAT.md`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    lockbox: u64,
    public_key: String,
    slots: Vec<SlotV1>,
    slots_mac: String,
    entries: BTreeMap<String, EntryV1>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum SlotV1 {
    Passphrase {
        kdf: String,
        m_cost_kib: u32,
        t_cost: u32,
        p_cost: u32,
        salt: String,
        nonce: String,
        wrapped: String,
    },
    Age {
        label: String,
        recipient: String,
        wrapped: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryV1 {
    username: String,
    secret: String,
}

const KDF_ARGON2ID: &str = "argon2id";

impl From<&Slot> for SlotV1 {
    fn from(slot: &Slot) -> Self {
        match slot {
            Slot::Passphrase(w) => SlotV1::Passphrase {
                kdf: KDF_ARGON2ID.to_owned(),
                m_cost_kib: w.params.m_cost_kib,
                t_cost: w.params.t_cost,
                p_cost: w.params.p_cost,
                salt: B64.encode(&w.salt),
                nonce: B64.encode(w.nonce),
                wrapped: B64.encode(&w.wrapped),
            },
            Slot::Age {
                label,
                recipient,
                wrapped,
            } => SlotV1::Age {
                label: label.clone(),
                recipient: recipient.clone(),
                wrapped: B64.encode(wrapped),
            },
        }
    }
}

fn b64(path: &Path, field: &str, text: &str, max: usize) -> Result<Vec<u8>> {
    // Check the encoded length before decoding: never allocate for an oversized field.
    if text.len() > max.div_ceil(3) * 4 {
        return Err(Error::corrupt(path, format!("{field} is too long")));
    }
    B64.decode(text)
        .map_err(|_| Error::corrupt(path, format!("{field} is not base64")))
}

impl FileV1 {
    fn validate(self, path: &Path) -> Result<Vault> {
        use bounds::*;
        let bad = |reason: String| Error::corrupt(path, reason);
        if self.lockbox != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                path: path.to_owned(),
                version: self.lockbox,
            });
        }
        let public = age::x25519::Recipient::from_str(&self.public_key)
            .map_err(|_| bad("public_key is not an age X25519 public key".into()))?;
        if self.slots.is_empty() {
            return Err(bad("the vault has no slots".into()));
        }
        if self.slots.len() > MAX_SLOTS {
            return Err(bad(format!("more than {MAX_SLOTS} slots")));
        }
        if self.entries.len() > MAX_ENTRIES {
            return Err(bad(format!("more than {MAX_ENTRIES} entries")));
        }
        let mut slots = Vec::with_capacity(self.slots.len());
        for (i, slot) in self.slots.into_iter().enumerate() {
            slots.push(match slot {
                SlotV1::Passphrase {
                    kdf,
                    m_cost_kib,
                    t_cost,
                    p_cost,
                    salt,
                    nonce,
                    wrapped,
                } => {
                    if kdf != KDF_ARGON2ID {
                        return Err(bad(format!("slot {i}: unknown kdf")));
                    }
                    let params = KdfParams {
                        m_cost_kib,
                        t_cost,
                        p_cost,
                    };
                    params.check()?;
                    let salt = b64(path, "salt", &salt, *crypto::kdf_bounds::SALT_LEN.end())?;
                    if !crypto::kdf_bounds::SALT_LEN.contains(&salt.len()) {
                        return Err(bad(format!("slot {i}: salt length")));
                    }
                    let nonce: [u8; crypto::NONCE_LEN] =
                        b64(path, "nonce", &nonce, crypto::NONCE_LEN)?
                            .try_into()
                            .map_err(|_| bad(format!("slot {i}: nonce length")))?;
                    let wrapped = b64(path, "wrapped", &wrapped, MAX_PASSPHRASE_WRAPPED)?;
                    if wrapped.len() < 16 {
                        return Err(bad(format!("slot {i}: wrapped key too short")));
                    }
                    Slot::Passphrase(PassphraseWrap {
                        params,
                        salt,
                        nonce,
                        wrapped,
                    })
                }
                SlotV1::Age {
                    label,
                    recipient,
                    wrapped,
                } => {
                    if label.len() > MAX_LABEL || recipient.len() > MAX_RECIPIENT {
                        return Err(bad(format!("slot {i}: label or recipient too long")));
                    }
                    Recipient::parse(&recipient)
                        .map_err(|_| bad(format!("slot {i}: recipient does not parse")))?;
                    let wrapped = b64(path, "wrapped", &wrapped, MAX_AGE_WRAPPED)?;
                    Slot::Age {
                        label,
                        recipient,
                        wrapped,
                    }
                }
            });
        }
        let mut entries = BTreeMap::new();
        for (server, e) in self.entries {
            if server.is_empty() || e.username.is_empty() {
                return Err(bad("an entry has an empty server URL or username".into()));
            }
            if server.len() > MAX_KEY || e.username.len() > MAX_KEY {
                return Err(bad("an entry's server URL or username is too long".into()));
            }
            let secret = b64(path, "secret", &e.secret, MAX_ENTRY_CIPHERTEXT)?;
            entries.insert(
                server,
                Entry {
                    username: e.username,
                    secret,
                },
            );
        }
        let mac: [u8; 32] = b64(path, "slots_mac", &self.slots_mac, 32)?
            .try_into()
            .map_err(|_| bad("slots_mac is not 32 bytes".into()))?;
        Ok(Vault {
            public,
            slots,
            mac,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FAST: KdfParams = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    fn sample() -> (VaultKey, Vault) {
        let key = VaultKey::generate();
        let pw = SecretString::from("pw".to_owned());
        let slot = Vault::passphrase_slot(&key, &pw, FAST).unwrap();
        let mut v = Vault::new(&key, vec![slot]);
        v.store(
            "https://index.docker.io/v1/",
            "bob",
            &SecretString::from("s1".to_owned()),
        )
        .unwrap();
        (key, v)
    }

    #[test]
    fn bytes_roundtrip_exactly() {
        let (_, v) = sample();
        let bytes = v.to_bytes();
        let back = Vault::parse(&bytes, Path::new("v")).unwrap();
        assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn newer_version_is_told_apart() {
        let (_, v) = sample();
        let text = String::from_utf8(v.to_bytes()).unwrap();
        let newer = text.replace("\"lockbox\": 1", "\"lockbox\": 2");
        assert!(matches!(
            Vault::parse(newer.as_bytes(), Path::new("v")),
            Err(Error::UnsupportedVersion { version: 2, .. })
        ));
        let newer_shape = r#"{"lockbox": 7, "something": "else"}"#;
        assert!(matches!(
            Vault::parse(newer_shape.as_bytes(), Path::new("v")),
            Err(Error::UnsupportedVersion { version: 7, .. })
        ));
    }

    #[test]
    fn hostile_kdf_params_are_rejected_at_parse() {
        let (_, v) = sample();
        let text = String::from_utf8(v.to_bytes()).unwrap();
        let hostile = text.replace("\"m_cost_kib\": 64", "\"m_cost_kib\": 4294967295");
        assert!(matches!(
            Vault::parse(hostile.as_bytes(), Path::new("v")),
            Err(Error::ExcessiveWork)
        ));
    }

    #[test]
    fn erase_exact_then_normalized() {
        let (_, mut v) = sample();
        let s = SecretString::from("x".to_owned());
        v.store("https://index.docker.io/v1/access-token", "t", &s)
            .unwrap();
        assert!(v.erase("docker.io"));
        assert!(v.lookup("https://index.docker.io/v1/").is_none());
        assert!(
            v.lookup("https://index.docker.io/v1/access-token")
                .is_some()
        );
        assert!(!v.erase("docker.io"));
    }

    #[test]
    fn swapped_entries_do_not_open() {
        let (key, mut v) = sample();
        v.store("other", "alice", &SecretString::from("s2".to_owned()))
            .unwrap();
        let a = v.entries["other"].secret.clone();
        let (_, hub) = v.lookup("docker.io").unwrap();
        assert!(key.open_entry("other", "alice", &hub.secret).is_err());
        assert_eq!(key.open_entry("other", "alice", &a).unwrap().as_str(), "s2");
    }

    #[test]
    fn slot_added_without_the_key_is_detected() {
        let (_, v) = sample();
        let mut file: serde_json::Value = serde_json::from_slice(&v.to_bytes()).unwrap();
        // An attacker who can write the file adds an inert slot for their own key,
        // hoping the next rotation wraps the new key to it.
        let attacker = age::x25519::Identity::generate().to_public().to_string();
        file["slots"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "type": "age", "label": "backup", "recipient": attacker, "wrapped": "AAAA"
            }));
        let tampered = Vault::parse(&serde_json::to_vec(&file).unwrap(), Path::new("v")).unwrap();
        let pw = SecretString::from("pw".to_owned());
        assert!(matches!(
            tampered.open_with_passphrase(&pw),
            Err(Error::SlotsTampered)
        ));
        assert!(v.open_with_passphrase(&pw).is_ok());
    }

    /// Regression: a vault whose age slot names an `ssh-rsa` recipient with an all-zero
    /// mpint made `parse` panic inside age; found by the `vault_parse` fuzz target.
    #[test]
    fn zero_mpint_ssh_recipient_is_corrupt_not_a_panic() {
        let (_, v) = sample();
        let mut file: serde_json::Value = serde_json::from_slice(&v.to_bytes()).unwrap();
        file["slots"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "type": "age", "label": "l",
                "recipient": "ssh-rsa AAAAB3NzaC1yc2EAAAABAAAAAAMBAAE=", "wrapped": "AAAA"
            }));
        assert!(matches!(
            Vault::parse(&serde_json::to_vec(&file).unwrap(), Path::new("v")),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn rotation_re_encrypts_and_drops_the_old_key() {
        let (old, mut v) = sample();
        let pw = SecretString::from("pw".to_owned());
        let new_pw = SecretString::from("new".to_owned());
        let new = v.rotate(&old, &[0], None, Some((&new_pw, FAST))).unwrap();
        assert_ne!(new.public().to_string(), old.public().to_string());
        let (server, e) = v.lookup("docker.io").unwrap();
        assert_eq!(
            new.open_entry(server, &e.username, &e.secret)
                .unwrap()
                .as_str(),
            "s1"
        );
        assert!(old.open_entry(server, &e.username, &e.secret).is_err());
        assert!(matches!(
            v.open_with_passphrase(&pw),
            Err(Error::WrongPassphrase)
        ));
        let reopened = Vault::parse(&v.to_bytes(), Path::new("v")).unwrap();
        assert!(reopened.open_with_passphrase(&new_pw).is_ok());
        // Removing the last slot without adding one is refused.
        assert!(matches!(
            v.rotate(&new, &[0], None, None),
            Err(Error::LastSlot)
        ));
    }

    #[test]
    fn a_change_past_the_bounds_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::file::VaultPath::new(dir.path().join("vault.json"));
        let key = VaultKey::generate();
        let recipient = Recipient::X25519(age::x25519::Identity::generate().to_public());
        let long_label = "x".repeat(bounds::MAX_LABEL + 1);
        let v = Vault::new(
            &key,
            vec![Vault::age_slot(&key, &recipient, long_label).unwrap()],
        );
        assert!(matches!(
            path.create(&v, false),
            Err(Error::LimitExceeded(_))
        ));
        assert!(!path.vault.exists());
    }

    proptest! {
        #[test]
        fn store_parse_roundtrip(entries in proptest::collection::btree_map("\\PC{1,20}", ("\\PC{1,10}", any::<String>()), 0..5)) {
            let key = VaultKey::generate();
            let slot = Vault::age_slot(&key, &Recipient::X25519(age::x25519::Identity::generate().to_public()), "l".into()).unwrap();
            let mut v = Vault::new(&key, vec![slot]);
            for (server, (user, secret)) in &entries {
                v.store(server, user, &SecretString::from(secret.clone())).unwrap();
            }
            let back = Vault::parse(&v.to_bytes(), Path::new("v")).unwrap();
            prop_assert_eq!(back.entries().len(), entries.len());
            for (server, (user, secret)) in &entries {
                let (k, e) = back.lookup(server).unwrap();
                prop_assert_eq!(k, server.as_str());
                prop_assert_eq!(&e.username, user);
                let opened = key.open_entry(server, user, &e.secret).unwrap();
                prop_assert_eq!(opened.as_str(), secret.as_str());
            }
        }
    }
}
