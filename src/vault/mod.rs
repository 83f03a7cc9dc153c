//! The vault in memory: its public key, its slots and its entries, and the versioned
//! text format they are read from and written to (`docs/FORMAT.md`).
//!
//! The trust core (floor 4 in `src/lib.rs`): nothing here prints, prompts, runs a
//! process, talks to the network or touches the file system; [`crate::file`] does I/O,
//! and a slot kind's backend (`src/identity/`, `src/openbao/`) comes in only through
//! the [`Rewrap`] hook. The folder:
//!
//! - this file: the model ([`Vault`], [`Entry`], [`View`]), store/erase/lookup,
//!   rotation, the canonical writer;
//! - [`crypto`]: the vault key, entry seal/open, passphrase wrapping, recipients;
//! - [`slot`]: each slot kind's fields, checks and description;
//! - [`format`](mod@format): versions and bounds;
//! - `parse`: the one parser.
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use age::secrecy::SecretString;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::docker::server_url;
use crate::error::{Error, Result};

pub mod crypto;
pub mod format;
pub mod meta;
mod parse;
pub mod slot;
pub mod source;
use crypto::{EntryOpener, KdfParams, Recipient, VaultKey};
use format::fits_b64;
use meta::{Metadata, Rotation};
use parse::{RawMeta, RawSlot, Sink, b64};
use slot::{SlotV1, check_slot, check_slot_set, check_versions, slot_from_raw};
use source::SourceDef;

pub use format::{
    FORMAT_VERSION, MAX_FORMAT_VERSION, METADATA_FORMAT_VERSION, OPENBAO_FORMAT_VERSION,
    PLUGIN_FORMAT_VERSION, SOURCES_FORMAT_VERSION, bounds,
};
pub use slot::{NoBackend, Rewrap, Slot};

/// One stored credential. The secret is the age ciphertext; only a [`VaultKey`] opens it.
///
/// Readers get an entry's credential through [`Entry::open`] (or [`RawEntry::open`]),
/// never from its fields: an entry of another kind (a source the agent mints
/// short-lived tokens from) or with metadata (an expiry) is then a field here, its
/// bytes in the writer and the parser, and a branch of `open`, not an edit in every
/// front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The username, in the clear (as in Docker's own `auths` markers).
    pub username: String,
    /// The age ciphertext of the bound secret (`docs/FORMAT.md` "Entry plaintext").
    pub secret: Vec<u8>,
    /// Its expiry, rotation settings and pending secret (format version 3).
    pub meta: Metadata,
}

impl Entry {
    /// The credential of this entry, stored under `server`, opened by `opener`. A
    /// source's sealed secret is never a registry credential: it is refused here with
    /// [`Error::SourceNotStatic`] and opened only by [`Entry::open_source`].
    pub fn open(&self, server: &str, opener: &dyn EntryOpener) -> Result<SecretString> {
        if self.meta.source.is_some() {
            return Err(Error::SourceNotStatic(server.to_owned()));
        }
        opener.open_entry(server, &self.username, &self.secret)
    }

    /// A source's definition and sealed secret, its MAC checked by `opener` first
    /// ([`SourceDef::verify`]); `None` for a static entry.
    pub fn open_source(
        &self,
        server: &str,
        opener: &dyn EntryOpener,
    ) -> Result<Option<(&SourceDef, SecretString)>> {
        let Some(def) = &self.meta.source else {
            return Ok(None);
        };
        def.verify(opener, server, &self.username, &self.secret)?;
        let secret = opener.open_source_secret(server, &self.username, &self.secret)?;
        Ok(Some((def, secret)))
    }
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
            slot.transcript(&mut |bytes| field(&mut t, bytes));
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

    /// Makes an age slot for `key`, for a recipient age encrypts to natively (X25519,
    /// SSH, tag); a plugin recipient needs [`Self::age_slot_with`] and its backend.
    pub fn age_slot(key: &VaultKey, recipient: &Recipient, label: String) -> Result<Slot> {
        Self::age_slot_with(key, recipient, label, &NoBackend)
    }

    /// Makes an age slot for `key`: `rewrap` first (a plugin recipient's plugin runs
    /// there, `src/identity/`), else the core wraps natively.
    pub fn age_slot_with(
        key: &VaultKey,
        recipient: &Recipient,
        label: String,
        rewrap: &dyn Rewrap,
    ) -> Result<Slot> {
        let slot = Slot::Age {
            label,
            recipient: recipient.canonical(),
            wrapped: Vec::new(),
        };
        if let Some(made) = rewrap.rewrap(&slot, key)? {
            return Ok(made);
        }
        let Slot::Age {
            label,
            recipient: canonical,
            ..
        } = slot
        else {
            unreachable!("made as an age slot above")
        };
        Ok(Slot::Age {
            label,
            recipient: canonical,
            wrapped: key.wrap_natively(recipient)?,
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
    ///
    /// The expiry is the new secret's own when it carries one (a JWT's `exp`); else
    /// the entry's date is kept: `docker login` stores the same secret again after
    /// every login, and dropping a date there would silence the warning it exists for
    /// (a stale date can at most warn early; `expiry set` corrects it). Rotation
    /// settings and a pending rotation secret are kept when the username is the same
    /// (they are about the account; their MAC and seal bind the username): a Harbor
    /// robot may already hold the pending secret, and `rotate` keeps it only if Harbor
    /// accepts it.
    pub fn store(&mut self, server: &str, username: &str, secret: &SecretString) -> Result<()> {
        use age::secrecy::ExposeSecret;
        if self
            .entries
            .get(server)
            .is_some_and(|e| e.meta.source.is_some())
        {
            return Err(Error::SourceNotStatic(server.to_owned()));
        }
        let ciphertext = crypto::seal_entry(&self.public, server, username, secret)?;
        let (kept_date, rotation, pending) = match self.entries.remove(server) {
            Some(old) => {
                let same_account = old.username == username;
                (
                    old.meta.expires_at,
                    old.meta.rotation.filter(|_| same_account),
                    old.meta.pending.filter(|_| same_account),
                )
            }
            None => (None, None, None),
        };
        let meta = Metadata {
            expires_at: meta::jwt_expiry(secret.expose_secret()).or(kept_date),
            rotation,
            pending,
            source: None,
        };
        self.entries.insert(
            server.to_owned(),
            Entry {
                username: username.to_owned(),
                secret: ciphertext,
                meta,
            },
        );
        Ok(())
    }

    /// Adds (or replaces) the source `server`: `secret` sealed like an entry's, the
    /// definition authenticated by `opener` (the vault key, or the agent holding it;
    /// [`SourceDef::new`]). The key is checked against this vault first. A static
    /// entry of the same server URL is refused: removing a credential is `erase`'s.
    pub fn add_source(
        &mut self,
        opener: &dyn EntryOpener,
        server: &str,
        username: &str,
        kind: &str,
        params: BTreeMap<String, String>,
        secret: &SecretString,
    ) -> Result<()> {
        // Any spelling of the registry (`lookup`'s normalized match) counts: a static
        // entry beside a source would answer for it unseen.
        if let Some((key, _)) = self.lookup(server).filter(|(_, e)| e.meta.source.is_none()) {
            return Err(Error::StaticEntryExists(key.to_owned()));
        }
        let sealed = crypto::seal_source_secret(&self.public, server, username, secret)?;
        let def = SourceDef::new(opener, server, username, kind, params, &sealed)?;
        // A definition the opener MACed for another vault would not verify here.
        def.verify(opener, server, username, &sealed)?;
        self.entries.insert(
            server.to_owned(),
            Entry {
                username: username.to_owned(),
                secret: sealed,
                meta: Metadata {
                    source: Some(def),
                    ..Metadata::default()
                },
            },
        );
        Ok(())
    }

    /// Removes the source `request` refers to; returns its exact server URL. A static
    /// entry is not a source and stays.
    pub fn remove_source(&mut self, request: &str) -> Result<String> {
        let key = self.key_of(request)?;
        if self.entries[&key].meta.source.is_none() {
            return Err(Error::NoSuchSource(request.to_owned()));
        }
        self.entries.remove(&key);
        Ok(key)
    }

    /// The exact key of the entry `request` refers to ([`Self::lookup`]).
    fn key_of(&self, request: &str) -> Result<String> {
        self.lookup(request)
            .map(|(k, _)| k.to_owned())
            .ok_or_else(|| Error::NoSuchEntry(request.to_owned()))
    }

    /// Sets (or with `None` clears) the expiry of the entry `request` refers to;
    /// returns its exact server URL. Needs no key: the expiry is not authenticated.
    pub fn set_expiry(&mut self, request: &str, expires_at: Option<u64>) -> Result<String> {
        let key = self.key_of(request)?;
        if expires_at.is_some_and(|t| t > meta::MAX_EXPIRES_AT) {
            return Err(Error::LimitExceeded(
                "the expiry is after the year 9999".into(),
            ));
        }
        if let Some(e) = self.entries.get_mut(&key) {
            e.meta.expires_at = expires_at;
        }
        Ok(key)
    }

    /// Sets (or with `None` clears) the rotation settings of the entry `request`
    /// refers to, made by `make` from its exact server URL and username (a MAC needs
    /// the key); returns the exact server URL.
    pub fn set_rotation(
        &mut self,
        request: &str,
        make: impl FnOnce(&str, &str) -> Result<Option<Rotation>>,
    ) -> Result<String> {
        let key = self.key_of(request)?;
        if let Some(e) = self.entries.get_mut(&key) {
            if e.meta.source.is_some() {
                return Err(Error::SourceNotStatic(key));
            }
            e.meta.rotation = make(&key, &e.username)?;
        }
        Ok(key)
    }

    /// Seals `secret` as the pending rotation secret of the entry `server` (exact),
    /// or clears it with `None`.
    pub fn set_pending(&mut self, server: &str, secret: Option<&SecretString>) -> Result<()> {
        let e = self
            .entries
            .get_mut(server)
            .ok_or_else(|| Error::NoSuchEntry(server.to_owned()))?;
        if e.meta.source.is_some() {
            return Err(Error::SourceNotStatic(server.to_owned()));
        }
        e.meta.pending = match secret {
            Some(s) => Some(crypto::seal_entry(&self.public, server, &e.username, s)?),
            None => None,
        };
        Ok(())
    }

    /// Replaces the secret of the entry `server` (exact) with a rotation's new one and
    /// its expiry, clearing the pending secret and keeping the rotation settings.
    pub fn finish_rotation(
        &mut self,
        server: &str,
        secret: &SecretString,
        expires_at: Option<u64>,
    ) -> Result<()> {
        let e = self
            .entries
            .get_mut(server)
            .ok_or_else(|| Error::NoSuchEntry(server.to_owned()))?;
        if e.meta.source.is_some() {
            return Err(Error::SourceNotStatic(server.to_owned()));
        }
        e.secret = crypto::seal_entry(&self.public, server, &e.username, secret)?;
        e.meta.pending = None;
        e.meta.expires_at = expires_at.filter(|&t| t <= meta::MAX_EXPIRES_AT);
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
        let Some(wanted) = server_url::normalize(server) else {
            return false;
        };
        let before = self.entries.len();
        let mut buf = String::new();
        self.entries
            .retain(|k, _| !(server_url::normalize_into(k, &mut buf) && buf == wanted));
        self.entries.len() != before
    }

    /// The entry `request` refers to: the exact key, else the byte-least key with the
    /// same normalized form ([`server_url::find`]).
    pub fn lookup(&self, request: &str) -> Option<(&str, &Entry)> {
        if let Some((k, e)) = self.entries.get_key_value(request) {
            return Some((k.as_str(), e));
        }
        let key = server_url::find(request, self.entries.keys().map(String::as_str))?;
        self.entries
            .get_key_value(key)
            .map(|(k, e)| (k.as_str(), e))
    }

    /// Adds an age slot unless one for the same recipient exists; returns whether it
    /// was added. `rewrap` wraps for a plugin recipient ([`Self::age_slot_with`]).
    pub fn add_recipient(
        &mut self,
        key: &VaultKey,
        recipient: &Recipient,
        label: String,
        rewrap: &dyn Rewrap,
    ) -> Result<bool> {
        self.check_key(key)?;
        let wanted = Slot::Age {
            label: String::new(),
            recipient: recipient.canonical(),
            wrapped: Vec::new(),
        };
        if self.slots.iter().any(|s| s.same_target(&wanted)) {
            return Ok(false);
        }
        self.slots
            .push(Self::age_slot_with(key, recipient, label, rewrap)?);
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
            .filter(|(_, s)| s.is_named(which, canonical.as_deref()))
            .map(|(i, _)| i)
            .collect()
    }

    /// Rotates the vault's key pair, so nobody who held the old key (or a removed
    /// slot) can open any later version of the file: a new key, every kept slot
    /// re-wrapped, the slots at `remove` dropped, a new passphrase slot added first if
    /// `new_passphrase` is given (`passwd`), and every entry re-encrypted. Refuses to
    /// leave no slot. Returns the new key.
    ///
    /// Each kept slot goes to `rewrap` first (the key pipeline's hook: a plugin run, a
    /// transit `encrypt`); what it leaves, the core re-wraps ([`Slot::rewrap_in_core`]:
    /// a passphrase slot needs `passphrase`, its cost kept). A slot neither can
    /// re-wrap is refused, never dropped, and nothing has changed when this fails.
    pub fn rotate(
        &mut self,
        old: &VaultKey,
        remove: &[usize],
        passphrase: Option<&SecretString>,
        new_passphrase: Option<(&SecretString, KdfParams)>,
        rewrap: &dyn Rewrap,
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
            slots.push(match rewrap.rewrap(slot, &new)? {
                Some(made) => made,
                None => slot.rewrap_in_core(&new, &self.public, passphrase)?,
            });
        }
        let mut entries = BTreeMap::new();
        for (server, e) in &self.entries {
            if let Some(d) = &e.meta.source {
                entries.insert(
                    server.clone(),
                    Self::reseal_source(old, &new, server, e, d)?,
                );
                continue;
            }
            let secret = old.open_entry(server, &e.username, &e.secret)?;
            let secret = SecretString::from(secret.as_str().to_owned());
            let pending = match &e.meta.pending {
                Some(p) => {
                    let p = old.open_entry(server, &e.username, p)?;
                    let p = SecretString::from(p.as_str().to_owned());
                    Some(crypto::seal_entry(&new.public(), server, &e.username, &p)?)
                }
                None => None,
            };
            // Rotation MACs are keyed from the vault key: made again with the new one.
            let rotation = match &e.meta.rotation {
                Some(r) => {
                    r.verify(old, server, &e.username)?;
                    Some(Rotation::new(
                        &new,
                        server,
                        &e.username,
                        r.provider.clone(),
                        r.api.clone(),
                    )?)
                }
                None => None,
            };
            entries.insert(
                server.clone(),
                Entry {
                    username: e.username.clone(),
                    secret: crypto::seal_entry(&new.public(), server, &e.username, &secret)?,
                    meta: Metadata {
                        expires_at: e.meta.expires_at,
                        rotation,
                        pending,
                        source: None,
                    },
                },
            );
        }
        self.public = new.public();
        self.slots = slots;
        self.entries = entries;
        self.seal_slots(&new);
        Ok(new)
    }

    /// A source entry sealed and MACed again under `new` (a rotation): its definition
    /// verified under `old` first.
    fn reseal_source(
        old: &VaultKey,
        new: &VaultKey,
        server: &str,
        e: &Entry,
        def: &SourceDef,
    ) -> Result<Entry> {
        def.verify(old, server, &e.username, &e.secret)?;
        let secret = old.open_source_secret(server, &e.username, &e.secret)?;
        let secret = SecretString::from(secret.as_str().to_owned());
        let sealed = crypto::seal_source_secret(&new.public(), server, &e.username, &secret)?;
        let params = def.params.clone();
        let source = SourceDef::new(new, server, &e.username, &def.kind, params, &sealed)?;
        Ok(Entry {
            username: e.username.clone(),
            secret: sealed,
            meta: Metadata {
                expires_at: e.meta.expires_at,
                source: Some(source),
                ..Metadata::default()
            },
        })
    }

    /// Drops, before a key rotation ([`Self::rotate`]), every source entry and every
    /// entry's rotation settings that fail their MAC under `key` and every pending
    /// secret `key` cannot open:
    /// anyone who can write the file can plant one, and it must neither block the key
    /// rotation nor be MACed or sealed again with the new key. Returns one warning line
    /// per entry touched.
    pub fn drop_unverified_rotation(&mut self, key: &VaultKey) -> Vec<String> {
        let mut warnings = Vec::new();
        // A source that fails its MAC was planted or altered: its sealed secret is not
        // the owner's, so the whole entry goes, never MACed again with the new key.
        self.entries.retain(|server, e| {
            let planted = e
                .meta
                .source
                .as_ref()
                .is_some_and(|d| d.verify(key, server, &e.username, &e.secret).is_err());
            if planted {
                warnings.push(crate::messages::source_dropped(server));
            }
            !planted
        });
        for (server, e) in &mut self.entries {
            let user = e.username.as_str();
            let bad_settings = e
                .meta
                .rotation
                .as_ref()
                .is_some_and(|r| r.verify(key, server, user).is_err());
            let bad_pending =
                e.meta.pending.as_ref().is_some_and(|p| {
                    crypto::EntryOpener::open_entry(key, server, user, p).is_err()
                });
            if bad_settings {
                e.meta.rotation = None;
            }
            if bad_pending {
                e.meta.pending = None;
            }
            if bad_settings || bad_pending {
                warnings.push(crate::messages::rotation_dropped(
                    server,
                    bad_settings,
                    bad_pending,
                ));
            }
        }
        warnings
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

    /// Opens the private key through the OpenBao slots, in file order: `open` is given
    /// each slot's mount, key name and ciphertext (and does the transit call). The first
    /// key it returns is checked against the slots MAC; when none opens, the first
    /// error is returned, and [`Error::NoOpenBaoSlot`] when there is no such slot.
    pub fn open_with_openbao(
        &self,
        mut open: impl FnMut(&str, &str, &str) -> Result<VaultKey>,
    ) -> Result<VaultKey> {
        let mut first_error = None;
        for slot in &self.slots {
            if let Slot::OpenBao {
                mount,
                key,
                ciphertext,
                ..
            } = slot
            {
                match open(mount, key, ciphertext) {
                    Ok(k) => return self.verified(k),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        Err(first_error.unwrap_or(Error::NoOpenBaoSlot))
    }

    /// Whether the vault has an OpenBao slot.
    pub fn has_openbao_slot(&self) -> bool {
        self.slots.iter().any(|s| matches!(s, Slot::OpenBao { .. }))
    }

    /// The age slots as (recipient text, wrapped key), in file order: what the
    /// identity backend opens (`identity::open_vault`).
    pub fn age_slots(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.slots.iter().filter_map(|s| match s {
            Slot::Age {
                recipient, wrapped, ..
            } => Some((recipient.as_str(), wrapped.as_slice())),
            _ => None,
        })
    }

    /// `key`, opened from one of this vault's slots outside the core (a plugin), once
    /// the slots MAC verifies with it ([`Error::SlotsTampered`] when not).
    pub fn verify_opened(&self, key: VaultKey) -> Result<VaultKey> {
        self.verified(key)
    }

    /// Whether the vault has an age slot for a plugin or tag recipient.
    pub fn has_plugin_slot(&self) -> bool {
        self.slots.iter().any(|s| {
            matches!(s, Slot::Age { recipient, .. }
                if slot::slot_kind(recipient) != slot::SlotKind::Native)
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

    /// Parses and validates a vault file's bytes, decoding every entry. `path` is only
    /// used in errors. [`View::parse`] checks exactly the same and decodes no entry.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let raw = parse::file(bytes, Decoded::default(), path)?;
        let mut vault =
            Self::from_raw_header(raw.version, raw.public_key, raw.slots, &raw.slots_mac, path)?;
        vault.entries = raw.entries.0;
        Ok(vault)
    }

    /// The public key, slots and MAC of a file as read; no entries.
    fn from_raw_header(
        version: u64,
        public_key: Cow<'_, str>,
        raw_slots: Vec<RawSlot<'_>>,
        slots_mac: &str,
        path: &Path,
    ) -> Result<Self> {
        let bad = |reason: String| Error::corrupt(path, reason);
        let public = age::x25519::Recipient::from_str(&public_key)
            .map_err(|_| bad("public_key is not an age X25519 public key".into()))?;
        let slots = raw_slots
            .into_iter()
            .map(|raw| slot_from_raw(raw, &bad))
            .collect::<Result<Vec<_>>>()?;
        check_slot_set(&slots).map_err(bad)?;
        check_versions(&slots, version).map_err(bad)?;
        let mac: [u8; 32] = b64(&bad, "slots_mac", slots_mac, 32)?
            .try_into()
            .map_err(|_| bad("slots_mac is not 32 bytes".into()))?;
        Ok(Vault {
            public,
            slots,
            mac,
            entries: BTreeMap::new(),
        })
    }

    /// Checks every bound of the format on the vault in memory, as [`Vault::parse`]
    /// checks a file, so what passes is a file this build reads back: a writer calls
    /// this instead of parsing the bytes it is about to write. A bound broken is
    /// [`Error::LimitExceeded`] (or [`Error::ExcessiveWork`] for Argon2id costs).
    pub fn check_bounds(&self) -> Result<()> {
        let limit = |reason: String| Error::LimitExceeded(reason);
        check_slot_set(&self.slots).map_err(limit)?;
        for (i, slot) in self.slots.iter().enumerate() {
            check_slot(i, slot, &limit)?;
        }
        if self.entries.len() > bounds::MAX_ENTRIES {
            return Err(limit(format!("more than {} entries", bounds::MAX_ENTRIES)));
        }
        for (server, e) in &self.entries {
            parse::check_names(server, &e.username).map_err(limit)?;
            if !fits_b64(e.secret.len(), bounds::MAX_ENTRY_CIPHERTEXT) {
                return Err(limit("secret is too long".into()));
            }
            if e.meta.expires_at.is_some_and(|t| t > meta::MAX_EXPIRES_AT) {
                return Err(limit("an expiry is after the year 9999".into()));
            }
            if let Some(r) = &e.meta.rotation {
                meta::check_api_url(&r.api).map_err(limit)?;
                meta::Provider::from_parts(r.provider.kind(), r.provider.robot_id())
                    .map_err(limit)?;
            }
            if e.meta
                .pending
                .as_ref()
                .is_some_and(|p| !fits_b64(p.len(), bounds::MAX_ENTRY_CIPHERTEXT))
            {
                return Err(limit("pending secret is too long".into()));
            }
        }
        Ok(())
    }

    /// The bytes a writer writes: [`Self::check_bounds`], then [`Self::to_bytes`]. The
    /// vault is never parsed again for the check (a `store` parses the file once).
    pub fn to_file_bytes(&self) -> Result<Vec<u8>> {
        self.check_bounds()?;
        let bytes = self.to_bytes();
        // Tests (debug builds) also parse what is written: the in-memory check and the
        // parser must never disagree.
        debug_assert!(
            Self::parse(&bytes, Path::new("new vault")).is_ok(),
            "check_bounds passed a vault that does not parse"
        );
        Ok(bytes)
    }

    /// The version this vault is written as: 4 when it holds a source, else 3 when an
    /// entry has metadata (an expiry, rotation settings, a pending secret), else 2 when it holds an OpenBao
    /// slot or an age slot for a plugin or tag recipient, else 1, so a vault without
    /// them still opens with older builds.
    pub fn format_version(&self) -> u64 {
        let slots = self
            .slots
            .iter()
            .map(Slot::min_version)
            .fold(FORMAT_VERSION, u64::max);
        if self.entries.values().any(|e| e.meta.source.is_some()) {
            slots.max(SOURCES_FORMAT_VERSION)
        } else if self.entries.values().any(|e| !e.meta.is_empty()) {
            slots.max(METADATA_FORMAT_VERSION)
        } else {
            slots
        }
    }

    /// Adds an OpenBao slot holding `ciphertext` (from [`crate::openbao::seal_vault_key`]
    /// for this vault's key) unless one for the same mount and key exists; returns
    /// whether it was added.
    pub fn add_openbao(
        &mut self,
        key: &VaultKey,
        label: String,
        mount: &str,
        transit_key: &str,
        ciphertext: String,
    ) -> Result<bool> {
        self.add_slot(
            key,
            Slot::OpenBao {
                label,
                mount: mount.to_owned(),
                key: transit_key.to_owned(),
                ciphertext,
            },
        )
    }

    /// Adds `slot`, made by its backend for this vault's `key`, unless a slot with the
    /// same target exists ([`Slot::same_target`]); returns whether it was added. The
    /// way in for a slot kind whose wrapping is all its backend's.
    pub fn add_slot(&mut self, key: &VaultKey, slot: Slot) -> Result<bool> {
        self.check_key(key)?;
        if self.slots.iter().any(|s| s.same_target(&slot)) {
            return Ok(false);
        }
        self.slots.push(slot);
        self.seal_slots(key);
        Ok(true)
    }

    /// The file bytes (`docs/FORMAT.md` "Canonical output"): compact JSON with each
    /// slot and each entry on a line of its own, so a change diffs as the lines it
    /// touched, and a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let entries: usize = self
            .entries
            .iter()
            .map(|(k, e)| k.len() + e.username.len() + e.secret.len().div_ceil(3) * 4 + 40)
            .sum();
        let mut out = Vec::with_capacity(256 + 512 * self.slots.len() + entries);
        let version = self.format_version();
        out.extend_from_slice(format!("{{\"lockbox\":{version},\"public_key\":").as_bytes());
        json_str(&mut out, &self.public.to_string());
        out.extend_from_slice(b",\"slots\":[");
        for (i, slot) in self.slots.iter().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
            // Serializing plain strings and numbers into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, &SlotV1::from(slot));
        }
        out.extend_from_slice(b"\n],\"slots_mac\":");
        json_str(&mut out, &B64.encode(self.mac));
        out.extend_from_slice(b",\"entries\":{");
        for (i, (server, e)) in self.entries.iter().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
            json_str(&mut out, server);
            out.extend_from_slice(b":{\"username\":");
            json_str(&mut out, &e.username);
            out.extend_from_slice(b",\"secret\":\"");
            let start = out.len();
            out.resize(start + e.secret.len().div_ceil(3) * 4, 0);
            let n = B64.encode_slice(&e.secret, &mut out[start..]).unwrap_or(0);
            out.truncate(start + n);
            out.push(b'"');
            write_meta(&mut out, &e.meta);
            out.push(b'}');
        }
        out.extend_from_slice(b"\n}}\n");
        out
    }
}

/// An entry's metadata members, in the canonical order `expires_at`, `rotate`,
/// `pending`, `source`, each only when present (`docs/FORMAT.md` "Entry metadata").
fn write_meta(out: &mut Vec<u8>, m: &Metadata) {
    if let Some(t) = m.expires_at {
        out.extend_from_slice(format!(",\"expires_at\":{t}").as_bytes());
    }
    if let Some(r) = &m.rotation {
        out.extend_from_slice(b",\"rotate\":{\"kind\":");
        json_str(out, r.provider.kind());
        out.extend_from_slice(b",\"api\":");
        json_str(out, &r.api);
        if let Some(id) = r.provider.robot_id() {
            out.extend_from_slice(format!(",\"robot_id\":{id}").as_bytes());
        }
        out.extend_from_slice(b",\"mac\":");
        json_str(out, &B64.encode(r.mac));
        out.push(b'}');
    }
    if let Some(p) = &m.pending {
        out.extend_from_slice(b",\"pending\":");
        json_str(out, &B64.encode(p));
    }
    if let Some(src) = &m.source {
        out.extend_from_slice(b",\"source\":{\"kind\":");
        json_str(out, &src.kind);
        out.extend_from_slice(b",\"params\":{");
        for (i, (name, value)) in src.params.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_str(out, name);
            out.push(b':');
            json_str(out, value);
        }
        out.extend_from_slice(b"},\"mac\":");
        json_str(out, &B64.encode(src.mac));
        out.push(b'}');
    }
}

/// `text` as a JSON string, escaped as serde_json escapes (FORMAT.md "Canonical output").
fn json_str(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Two entries with one server URL.
const DUPLICATE_ENTRY: &str = "two entries have the same server URL";

/// The sink of [`Vault::parse`]: every entry decoded into the map.
#[derive(Default)]
struct Decoded(BTreeMap<String, Entry>);

impl<'de> Sink<'de> for Decoded {
    fn entry(
        &mut self,
        server: Cow<'de, str>,
        username: Cow<'de, str>,
        secret: Cow<'de, str>,
        meta: RawMeta<'de>,
    ) -> std::result::Result<(), String> {
        if self.0.contains_key(server.as_ref()) {
            return Err(DUPLICATE_ENTRY.into());
        }
        let decode = |text: &str, what: &str| {
            B64.decode(text.as_bytes())
                .map_err(|_| format!("{what} is not base64"))
        };
        let secret = decode(&secret, "secret")?;
        let pending = match &meta.pending {
            Some(p) => Some(decode(p, "pending")?),
            None => None,
        };
        self.0.insert(
            server.into_owned(),
            Entry {
                username: username.into_owned(),
                secret,
                meta: Metadata {
                    expires_at: meta.expires_at,
                    rotation: meta.rotation.map(|r| *r),
                    pending,
                    source: meta.source.map(|s| *s),
                },
            },
        );
        Ok(())
    }
}

/// A vault file read for `get` and `list`: every bound of the format checked over the
/// whole file exactly as [`Vault::parse`] checks it (entry count, lengths, each
/// secret's base64, duplicates), the slots decoded (a key source needs them), and the
/// entries kept as the file's text. Nothing is decoded, and nothing copied except a
/// string written with escapes, for an entry that is not asked for.
#[derive(Debug)]
pub struct View<'a> {
    vault: Vault,
    entries: Vec<RawEntry<'a>>,
    /// Whether any entry is a source, noted while parsing: a static `get` pays no
    /// scan for sources.
    sources: bool,
}

/// One entry of a [`View`]: the file's text, its secret still base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry<'a> {
    server: Cow<'a, str>,
    username: Cow<'a, str>,
    secret: Cow<'a, str>,
    meta: RawMeta<'a>,
}

impl RawEntry<'_> {
    /// The server URL, exactly as stored.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// When the secret expires, as Unix seconds (not authenticated: a hint).
    pub fn expires_at(&self) -> Option<u64> {
        self.meta.expires_at
    }

    /// The rotation provider's kind, if one is set (not verified here).
    pub fn rotation_kind(&self) -> Option<&'static str> {
        self.meta.rotation.as_ref().map(|r| r.provider.kind())
    }

    /// Whether a rotation left a pending secret (`lockbox rotate` finishes it).
    pub fn has_pending(&self) -> bool {
        self.meta.pending.is_some()
    }

    /// The age ciphertext, decoded now.
    pub fn secret(&self) -> Vec<u8> {
        // The parser checked that this is base64 the decoder takes; were it not, an
        // empty ciphertext fails to open as a tampered entry, never as another answer.
        B64.decode(self.secret.as_bytes()).unwrap_or_default()
    }

    /// The source this entry mints from, if it is one (not verified here: see
    /// [`RawEntry::open_source`]).
    pub fn source(&self) -> Option<&SourceDef> {
        self.meta.source.as_deref()
    }

    /// The credential of this entry, opened by `opener` (as [`Entry::open`]: a
    /// source is refused).
    pub fn open(&self, opener: &dyn EntryOpener) -> Result<SecretString> {
        if self.meta.source.is_some() {
            return Err(Error::SourceNotStatic(self.server().to_owned()));
        }
        opener.open_entry(self.server(), self.username(), &self.secret())
    }

    /// A source's definition and sealed secret, its MAC checked by `opener` first
    /// (as [`Entry::open_source`]); `None` for a static entry.
    pub fn open_source(
        &self,
        opener: &dyn EntryOpener,
    ) -> Result<Option<(&SourceDef, SecretString)>> {
        let Some(def) = self.meta.source.as_deref() else {
            return Ok(None);
        };
        let sealed = self.secret();
        def.verify(opener, self.server(), self.username(), &sealed)?;
        let secret = opener.open_source_secret(self.server(), self.username(), &sealed)?;
        Ok(Some((def, secret)))
    }
}

/// The sink of [`View::parse`]: entries kept in file order, noting whether that order
/// is already the canonical one (then no sort is needed and no duplicate is possible).
struct Kept<'a> {
    entries: Vec<RawEntry<'a>>,
    sorted: bool,
    /// Whether an entry is a source ([`View::lookup`] then looks for it first).
    sources: bool,
}

impl<'de> Sink<'de> for Kept<'de> {
    fn entry(
        &mut self,
        server: Cow<'de, str>,
        username: Cow<'de, str>,
        secret: Cow<'de, str>,
        meta: RawMeta<'de>,
    ) -> std::result::Result<(), String> {
        if let Some(last) = self.entries.last() {
            match last.server.as_bytes().cmp(server.as_bytes()) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Err(DUPLICATE_ENTRY.into()),
                std::cmp::Ordering::Greater => self.sorted = false,
            }
        }
        self.sources |= meta.source.is_some();
        self.entries.push(RawEntry {
            server,
            username,
            secret,
            meta,
        });
        Ok(())
    }
}

impl<'a> View<'a> {
    /// Parses and validates a vault file's bytes as [`Vault::parse`] does, without
    /// decoding any entry. `path` is only used in errors.
    pub fn parse(bytes: &'a [u8], path: &Path) -> Result<Self> {
        let sink = Kept {
            entries: Vec::new(),
            sorted: true,
            sources: false,
        };
        let raw = parse::file(bytes, sink, path)?;
        let vault =
            Vault::from_raw_header(raw.version, raw.public_key, raw.slots, &raw.slots_mac, path)?;
        let Kept {
            mut entries,
            sorted,
            sources,
        } = raw.entries;
        if !sorted {
            // A file written by hand: sort, and only then can duplicates be seen.
            entries.sort_unstable_by(|a, b| a.server.cmp(&b.server));
            if entries.windows(2).any(|w| w[0].server == w[1].server) {
                return Err(Error::corrupt(path, DUPLICATE_ENTRY));
            }
        }
        Ok(View {
            vault,
            entries,
            sources,
        })
    }

    /// The vault's public key and slots: what a key source needs to open it. Its
    /// [`Vault::entries`] is empty; this view's entries are [`View::entries`].
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// The entries, sorted by the byte order of their server URLs.
    pub fn entries(&self) -> &[RawEntry<'a>] {
        &self.entries
    }

    /// The entry `request` refers to, as [`Vault::lookup`] finds it: the exact key
    /// (a binary search), else the byte-least key with the same normalized form — but
    /// a source of the same normalized form first, if there is one.
    pub fn lookup(&self, request: &str) -> Option<&RawEntry<'a>> {
        let at = |key: &str| {
            self.entries
                .binary_search_by(|e| e.server.as_ref().cmp(key))
                .ok()
        };
        if self.sources {
            // A source answers for every spelling of its registry: an entry planted
            // under another spelling must not answer in its place.
            let sources = self.entries.iter().filter(|e| e.meta.source.is_some());
            let key = server_url::find(request, sources.map(|e| e.server.as_ref()));
            if let Some(i) = key.and_then(at) {
                return Some(&self.entries[i]);
            }
        }
        if let Some(i) = at(request) {
            return Some(&self.entries[i]);
        }
        let key = server_url::find(request, self.entries.iter().map(|e| e.server.as_ref()))?;
        at(key).map(|i| &self.entries[i])
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

    /// [`sample`] plus an `exec` source for `ecr.example`.
    fn with_source() -> (VaultKey, Vault) {
        let (key, mut v) = sample();
        let params = BTreeMap::from([("command".to_owned(), r#"["/bin/true"]"#.to_owned())]);
        let secret = SecretString::from("cloud-secret".to_owned());
        v.add_source(&key, "ecr.example", "AWS", "exec", params, &secret)
            .unwrap();
        (key, v)
    }

    #[test]
    fn a_source_is_written_as_version_4_and_read_back_exactly() {
        use age::secrecy::ExposeSecret as _;
        let (key, v) = with_source();
        let bytes = v.to_bytes();
        assert!(bytes.starts_with(b"{\"lockbox\":4,"));
        let back = Vault::parse(&bytes, Path::new("v")).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        let e = &back.entries()["ecr.example"];
        let (def, secret) = e.open_source("ecr.example", &key).unwrap().unwrap();
        assert_eq!(def.kind, "exec");
        assert_eq!(secret.expose_secret(), "cloud-secret");
        // Its sealed secret is never handed out as a credential.
        assert!(matches!(
            e.open("ecr.example", &key),
            Err(Error::SourceNotStatic(_))
        ));
        let view = View::parse(&bytes, Path::new("v")).unwrap();
        let raw = view.lookup("ecr.example").unwrap();
        assert!(matches!(raw.open(&key), Err(Error::SourceNotStatic(_))));
        assert!(raw.open_source(&key).unwrap().is_some());
        // Removing it is back to version 1.
        let mut v = back;
        v.remove_source("ecr.example").unwrap();
        assert!(matches!(
            v.remove_source("https://index.docker.io/v1/"),
            Err(Error::NoSuchSource(_))
        ));
        assert_eq!(v.format_version(), FORMAT_VERSION);
    }

    #[test]
    fn a_rotation_seals_and_macs_a_source_again_and_drops_a_planted_one() {
        use age::secrecy::ExposeSecret as _;
        let (key, mut v) = with_source();
        let pw = SecretString::from("pw".to_owned());
        // A source planted with a MAC of another key: dropped before the rotation.
        let planter = VaultKey::generate();
        let mut planted = v.clone();
        let params = BTreeMap::from([("command".to_owned(), r#"["/bin/evil"]"#.to_owned())]);
        let secret = SecretString::from("x".to_owned());
        planted.public = planter.public();
        planted
            .add_source(&planter, "planted.example", "u", "exec", params, &secret)
            .unwrap();
        v.entries.insert(
            "planted.example".into(),
            planted.entries["planted.example"].clone(),
        );
        let warnings = v.drop_unverified_rotation(&key);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(!v.entries.contains_key("planted.example"));
        let new = v.rotate(&key, &[], Some(&pw), None, &NoBackend).unwrap();
        let e = &v.entries()["ecr.example"];
        assert!(matches!(
            e.open_source("ecr.example", &key),
            Err(Error::SourceTampered(_))
        ));
        let (_, secret) = e.open_source("ecr.example", &new).unwrap().unwrap();
        assert_eq!(secret.expose_secret(), "cloud-secret");
    }

    #[test]
    fn store_rotation_and_add_never_overwrite_the_other_kind() {
        let (key, mut v) = with_source();
        let s = SecretString::from("s".to_owned());
        assert!(matches!(
            v.store("ecr.example", "u", &s),
            Err(Error::SourceNotStatic(_))
        ));
        assert!(matches!(
            v.set_pending("ecr.example", Some(&s)),
            Err(Error::SourceNotStatic(_))
        ));
        assert!(matches!(
            v.set_rotation("ecr.example", |_, _| Ok(None)),
            Err(Error::SourceNotStatic(_))
        ));
        let params = BTreeMap::from([("command".to_owned(), r#"["/bin/true"]"#.to_owned())]);
        assert!(matches!(
            v.add_source(&key, "https://index.docker.io/v1/", "u", "exec", params, &s),
            Err(Error::StaticEntryExists(_))
        ));
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
        let newer = text.replace("\"lockbox\":1", "\"lockbox\":5");
        assert!(matches!(
            Vault::parse(newer.as_bytes(), Path::new("v")),
            Err(Error::UnsupportedVersion { version: 5, .. })
        ));
        let newer_shape = r#"{"lockbox": 7, "something": "else"}"#;
        assert!(matches!(
            Vault::parse(newer_shape.as_bytes(), Path::new("v")),
            Err(Error::UnsupportedVersion { version: 7, .. })
        ));
    }

    fn with_openbao() -> (VaultKey, Vault) {
        let (key, mut v) = sample();
        let ct = format!("vault:v1:{}", B64.encode([7u8; 48]));
        assert!(
            v.add_openbao(&key, "hosts".into(), "transit", "hosts", ct.clone())
                .unwrap()
        );
        assert!(
            !v.add_openbao(&key, "again".into(), "transit", "hosts", ct)
                .unwrap()
        );
        (key, v)
    }

    #[test]
    fn openbao_slot_is_version_2_and_roundtrips() {
        let (key, v) = with_openbao();
        assert_eq!(v.format_version(), OPENBAO_FORMAT_VERSION);
        let bytes = v.to_file_bytes().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("{\"lockbox\":2,"), "{text}");
        assert!(text.contains(r#"{"type":"openbao","label":"hosts","mount":"transit","key":"hosts","ciphertext":"vault:v1:"#));
        let back = Vault::parse(&bytes, Path::new("v")).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        back.check_key(&key).unwrap();
        assert_eq!(
            back.slots()[1].describe(),
            "openbao transit transit/hosts \"hosts\""
        );
        // Without it, the vault is version 1 again.
        let (_, plain) = sample();
        assert!(plain.to_bytes().starts_with(b"{\"lockbox\":1,"));
    }

    #[test]
    fn openbao_slot_in_version_1_is_damaged() {
        let (_, v) = with_openbao();
        let text = String::from_utf8(v.to_bytes()).unwrap();
        let v1 = text.replace("\"lockbox\":2", "\"lockbox\":1");
        assert!(matches!(
            Vault::parse(v1.as_bytes(), Path::new("v")),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            View::parse(v1.as_bytes(), Path::new("v")),
            Err(Error::Corrupt { .. })
        ));
    }

    /// A throwaway key of the test plugin (tests/plugin) and a tag recipient.
    const PLUGIN_RECIPIENT: &str =
        "age1lockboxtest1q8wa3759jdv38u7gjyhvuh8jkge9dw8xlczpq9c46lhg8gwfe6gz7lnqzd3";
    const TAG_RECIPIENT: &str =
        "age1tag1qt8lw0ual6avlwmwatk888yqnmdamm7xfd0wak53ut6elz5c4swx2yqdj4e";

    /// A vault with a passphrase slot and an age slot for `recipient` (its wrapped
    /// key made natively for the tag recipient: the parser never opens a slot).
    fn with_recipient(recipient: &str) -> (VaultKey, Vault) {
        let (key, mut v) = sample();
        let tag = Recipient::parse(TAG_RECIPIENT).unwrap();
        v.slots.push(Slot::Age {
            label: "hw".into(),
            recipient: recipient.into(),
            wrapped: key.wrap_natively(&tag).unwrap(),
        });
        v.seal_slots(&key);
        (key, v)
    }

    #[test]
    fn plugin_and_tag_slots_are_version_2_and_roundtrip() {
        for (r, shown) in [
            (PLUGIN_RECIPIENT, "age plugin lockboxtest \"hw\""),
            (TAG_RECIPIENT, "age tag \"hw\""),
        ] {
            let (key, v) = with_recipient(r);
            assert_eq!(v.format_version(), PLUGIN_FORMAT_VERSION);
            assert!(v.has_plugin_slot());
            let bytes = v.to_file_bytes().unwrap();
            assert!(bytes.starts_with(b"{\"lockbox\":2,"));
            let back = Vault::parse(&bytes, Path::new("v")).unwrap();
            assert_eq!(back.to_bytes(), bytes);
            back.check_key(&key).unwrap();
            assert_eq!(back.slots()[1].describe(), shown);
            assert!(View::parse(&bytes, Path::new("v")).is_ok());
            // Dropping the slot (a rotation) writes version 1 again.
            let mut v = back;
            v.rotate(
                &key,
                &[1],
                Some(&SecretString::from("pw".to_owned())),
                None,
                &NoBackend,
            )
            .unwrap();
            assert_eq!(v.format_version(), FORMAT_VERSION);
        }
        let (_, v) = sample();
        assert!(!v.has_plugin_slot());
        assert_eq!(v.format_version(), FORMAT_VERSION);
    }

    #[test]
    fn plugin_or_tag_slot_in_version_1_is_damaged() {
        let padded = format!(" {PLUGIN_RECIPIENT}\t");
        for r in [PLUGIN_RECIPIENT, TAG_RECIPIENT, &padded] {
            let (_, v) = with_recipient(r);
            let text = String::from_utf8(v.to_bytes()).unwrap();
            let v1 = text.replace("\"lockbox\":2", "\"lockbox\":1");
            for e in [
                Vault::parse(v1.as_bytes(), Path::new("v")).err(),
                View::parse(v1.as_bytes(), Path::new("v")).err(),
            ] {
                match e {
                    Some(Error::Corrupt { reason, .. }) => {
                        assert!(reason.contains("plugin or tag recipient"), "{reason}")
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_bad_plugin_or_tag_recipient_does_not_parse() {
        let (_, v) = with_recipient(PLUGIN_RECIPIENT);
        let text = String::from_utf8(v.to_bytes()).unwrap();
        for bad in [
            // A checksum error, a tag recipient that is no P-256 point, a bad name.
            PLUGIN_RECIPIENT.replace("lnqzd3", "lnqzd4"),
            "age1tag1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq".into(),
            "age1lock/boxtest1q8wa3759jdv38u7gjyhvuh8jkge9dw8xlczpq9c46lhg8gwfe6gz7lnqzd3".into(),
        ] {
            let t = text.replace(PLUGIN_RECIPIENT, &bad);
            match Vault::parse(t.as_bytes(), Path::new("v")) {
                Err(Error::Corrupt { reason, .. }) => {
                    assert!(
                        reason.contains("recipient does not parse"),
                        "{bad}: {reason}"
                    )
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn plugin_recipients_are_found_and_deduplicated_by_canonical_text() {
        let (_, v) = with_recipient(PLUGIN_RECIPIENT);
        assert_eq!(v.find_recipient(PLUGIN_RECIPIENT), vec![1]);
        assert_eq!(v.find_recipient(&format!("  {PLUGIN_RECIPIENT} ")), vec![1]);
        assert_eq!(v.find_recipient("hw"), vec![1]);
        let (key, mut v) = with_recipient(TAG_RECIPIENT);
        let tag = Recipient::parse(TAG_RECIPIENT).unwrap();
        assert!(
            !v.add_recipient(&key, &tag, "again".into(), &NoBackend)
                .unwrap()
        );
        assert_eq!(v.slots().len(), 2);
    }

    #[test]
    fn openbao_slot_fields_are_checked_and_maced() {
        let (_, v) = with_openbao();
        let text = String::from_utf8(v.to_bytes()).unwrap();
        for (from, to) in [
            ("\"mount\":\"transit\"", "\"mount\":\"sys\""),
            ("\"mount\":\"transit\"", "\"mount\":\"../x\""),
            ("\"key\":\"hosts\"", "\"key\":\"a/b\""),
            ("\"ciphertext\":\"vault:v1:", "\"ciphertext\":\"v1:"),
            (
                "\"key\":\"hosts\"",
                "\"key\":\"hosts\",\"addr\":\"https://evil\"",
            ),
        ] {
            let bad = text.replace(from, to);
            assert_ne!(bad, text);
            assert!(
                matches!(
                    Vault::parse(bad.as_bytes(), Path::new("v")),
                    Err(Error::Corrupt { .. })
                ),
                "{to}"
            );
        }
        // A changed key name parses, but the slots MAC no longer verifies.
        let (k, v) = with_openbao();
        let text = String::from_utf8(v.to_bytes()).unwrap();
        let moved = text.replace("\"key\":\"hosts\"", "\"key\":\"other\"");
        let back = Vault::parse(moved.as_bytes(), Path::new("v")).unwrap();
        assert!(matches!(back.check_key(&k), Err(Error::SlotsTampered)));
    }

    #[test]
    fn rotation_refuses_to_drop_an_openbao_slot() {
        let (key, mut v) = with_openbao();
        let before = v.to_bytes();
        let pw = SecretString::from("pw".to_owned());
        assert!(matches!(
            v.rotate(&key, &[], Some(&pw), None, &NoBackend),
            Err(Error::RotateOpenBao(_))
        ));
        assert_eq!(v.to_bytes(), before);
        // With a re-wrapper, the slot is kept with a new ciphertext.
        let mut w = v.clone();
        fn fake_ciphertext(k: &VaultKey) -> String {
            format!("vault:v1:{}", B64.encode(k.public().to_string()))
        }
        /// An OpenBao backend that "encrypts" to a text naming the key.
        struct FakeBao;
        impl Rewrap for FakeBao {
            fn rewrap(&self, slot: &Slot, k: &VaultKey) -> Result<Option<Slot>> {
                Ok(match slot {
                    Slot::OpenBao {
                        label, mount, key, ..
                    } => Some(Slot::OpenBao {
                        label: label.clone(),
                        mount: mount.clone(),
                        key: key.clone(),
                        ciphertext: fake_ciphertext(k),
                    }),
                    _ => None,
                })
            }
        }
        let new = w.rotate(&key, &[], Some(&pw), None, &FakeBao).unwrap();
        match &w.slots()[1] {
            Slot::OpenBao { ciphertext, .. } => assert_eq!(ciphertext, &fake_ciphertext(&new)),
            other => panic!("{other:?}"),
        }
        w.check_key(&new).unwrap();
        // Removing the OpenBao slot itself rotates fine.
        v.rotate(&key, &[1], Some(&pw), None, &NoBackend).unwrap();
        assert_eq!(v.format_version(), FORMAT_VERSION);
    }

    #[test]
    fn hostile_kdf_params_are_rejected_at_parse() {
        let (_, v) = sample();
        let text = String::from_utf8(v.to_bytes()).unwrap();
        let hostile = text.replace("\"m_cost_kib\":64", "\"m_cost_kib\":4294967295");
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
        let new = v
            .rotate(&old, &[0], None, Some((&new_pw, FAST)), &NoBackend)
            .unwrap();
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
            v.rotate(&new, &[0], None, None, &NoBackend),
            Err(Error::LastSlot)
        ));
    }

    /// Both parsers on `text`: they must agree, and a refusal is a damaged file.
    fn refused(text: &str) -> String {
        let full = Vault::parse(text.as_bytes(), Path::new("v"));
        let view = View::parse(text.as_bytes(), Path::new("v"));
        match (full, view) {
            (Err(Error::Corrupt { reason, .. }), Err(Error::Corrupt { reason: r2, .. })) => {
                assert_eq!(reason, r2, "the two parsers give different reasons");
                reason
            }
            (full, view) => panic!(
                "expected both to refuse as damaged: {:?} / {:?}",
                full.map(|_| ()),
                view.map(|_| ())
            ),
        }
    }

    fn sample_json() -> serde_json::Value {
        serde_json::from_slice(&sample().1.to_bytes()).unwrap()
    }

    #[test]
    fn regress_array_form_entries_refused() {
        let mut v = sample_json();
        let secret = v["entries"]["https://index.docker.io/v1/"]["secret"].clone();
        v["entries"]["https://index.docker.io/v1/"] = serde_json::json!(["bob", secret]);
        let reason = refused(&v.to_string());
        assert!(reason.contains("not a lockbox vault"), "{reason}");
    }

    #[test]
    fn regress_array_form_slots_and_top_level_refused() {
        let v = sample_json();
        let slot = &v["slots"][0];
        let mut as_array = v.clone();
        as_array["slots"][0] = serde_json::json!([
            slot["type"],
            slot["kdf"],
            slot["m_cost_kib"],
            slot["t_cost"],
            slot["p_cost"],
            slot["salt"],
            slot["nonce"],
            slot["wrapped"]
        ]);
        refused(&as_array.to_string());
        let top = serde_json::json!([
            v["lockbox"],
            v["public_key"],
            v["slots"],
            v["slots_mac"],
            v["entries"]
        ]);
        refused(&top.to_string());
    }

    #[test]
    fn regress_duplicate_entry_keys_refused() {
        let text = String::from_utf8(sample().1.to_bytes()).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("\"https://index.docker.io/v1/\""))
            .unwrap();
        // Sorted order, written twice in a row, and the same key after another one.
        let twice = text.replace(line, &format!("{line},\n{line}"));
        assert_eq!(refused(&twice), DUPLICATE_ENTRY);
        let other = line.replacen("https://index.docker.io/v1/", "zzz", 1);
        let unsorted = text.replace(line, &format!("{line},\n{other},\n{line}"));
        assert_eq!(refused(&unsorted), DUPLICATE_ENTRY);
        // An escaped spelling of the same key is the same key.
        let escaped = line.replacen("https:", "\\u0068ttps:", 1);
        assert_eq!(
            refused(&text.replace(line, &format!("{line},\n{escaped}"))),
            DUPLICATE_ENTRY
        );
    }

    #[test]
    fn regress_duplicate_members_refused() {
        let text = String::from_utf8(sample().1.to_bytes()).unwrap();
        let dup_top = text.replacen("{\"lockbox\":1,", "{\"lockbox\":1,\"lockbox\":1,", 1);
        assert!(refused(&dup_top).contains("twice"));
        let dup_slot = text.replacen("\"t_cost\":1,", "\"t_cost\":1,\"t_cost\":1,", 1);
        assert!(refused(&dup_slot).contains("twice"));
        let dup_entry = text.replacen(
            "{\"username\":\"bob\",",
            "{\"username\":\"bob\",\"username\":\"bob\",",
            1,
        );
        assert!(refused(&dup_entry).contains("twice"));
    }

    #[test]
    fn escaped_keys_parse_and_find() {
        let text = String::from_utf8(sample().1.to_bytes()).unwrap();
        let escaped = text.replacen("\"https://index", "\"\\u0068ttps:\\/\\/index", 1);
        let view = View::parse(escaped.as_bytes(), Path::new("v")).unwrap();
        assert_eq!(
            view.lookup("https://index.docker.io/v1/").unwrap().server(),
            "https://index.docker.io/v1/"
        );
        let full = Vault::parse(escaped.as_bytes(), Path::new("v")).unwrap();
        assert_eq!(full.to_bytes(), text.as_bytes());
    }

    #[test]
    fn regress_62_passphrase_slots_refused_at_parse() {
        let mut v = sample_json();
        let slot = v["slots"][0].clone();
        v["slots"] = serde_json::Value::Array(vec![slot; 2]);
        assert_eq!(refused(&v.to_string()), "more than one passphrase slot");
        // A writer refuses to make one as well.
        let (key, mut vault) = sample();
        vault.slots.push(vault.slots[0].clone());
        vault.seal_slots(&key);
        assert!(matches!(
            vault.to_file_bytes(),
            Err(Error::LimitExceeded(_))
        ));
    }

    #[test]
    fn regress_entry_count_stops_at_the_bound() {
        let v = sample_json();
        let secret = v["entries"]["https://index.docker.io/v1/"]["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut entries = serde_json::Map::new();
        for i in 0..=bounds::MAX_ENTRIES {
            entries.insert(
                format!("host{i:05}"),
                serde_json::json!({"username": "u", "secret": secret}),
            );
        }
        let mut over = v.clone();
        over["entries"] = serde_json::Value::Object(entries);
        assert_eq!(refused(&over.to_string()), "more than 10000 entries");
        // 65 slots: the 65th is skipped, not read, and refused.
        let mut slots = v.clone();
        let age = serde_json::json!({"type": "age", "label": "l",
            "recipient": age::x25519::Identity::generate().to_public().to_string(), "wrapped": ""});
        slots["slots"] = serde_json::Value::Array(vec![age; 64]);
        slots["slots"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!([1, {"x": []}]));
        assert_eq!(refused(&slots.to_string()), "more than 64 slots");
    }

    #[test]
    fn slot_members_are_counted_and_known() {
        let mut v = sample_json();
        v["slots"][0]["extra"] = serde_json::json!(1);
        assert!(refused(&v.to_string()).contains("unknown member"));
        for i in 0..parse::MAX_SLOT_MEMBERS {
            v["slots"][0][format!("x{i}")] = serde_json::json!(1);
        }
        assert!(refused(&v.to_string()).contains("too many members"));
        let mut v = sample_json();
        v["slots"][0]["t_cost"] = serde_json::json!("1");
        assert!(refused(&v.to_string()).contains("must be an integer"));
        v["slots"][0]["t_cost"] = serde_json::json!(1.0);
        refused(&v.to_string());
    }

    /// A JWT whose payload carries `exp` (header and signature are not looked at).
    fn jwt_with_exp(exp: u64) -> SecretString {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = URL_SAFE_NO_PAD.encode(format!("{{\"sub\":\"ci\",\"exp\":{exp}}}"));
        SecretString::from(format!("eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln"))
    }

    /// A vault whose entry `reg.example` has every metadata member.
    fn with_metadata() -> (VaultKey, Vault) {
        let (key, mut v) = sample();
        v.store("reg.example", "robot$ci", &jwt_with_exp(1_801_353_600))
            .unwrap();
        v.set_rotation("reg.example", |server, username| {
            Rotation::new(
                &key,
                server,
                username,
                meta::Provider::HarborRobot { robot_id: 12 },
                "https://reg.example".into(),
            )
            .map(Some)
        })
        .unwrap();
        v.set_pending("reg.example", Some(&SecretString::from("next".to_owned())))
            .unwrap();
        (key, v)
    }

    /// Rotation settings and a pending secret planted by a file writer (a MAC not the
    /// key's, a pending ciphertext sealed to another key) never block a key rotation,
    /// and are never MACed or sealed again with the new key.
    #[test]
    fn a_key_rotation_drops_planted_rotation_settings_and_pending_secrets() {
        let (key, mut v) = with_metadata();
        let stranger = VaultKey::generate();
        let planted = crypto::seal_entry(
            &stranger.public(),
            "reg.example",
            "robot$ci",
            &SecretString::from("attacker".to_owned()),
        )
        .unwrap();
        let e = v.entries.get_mut("reg.example").unwrap();
        e.meta.rotation.as_mut().unwrap().mac[0] ^= 1;
        e.meta.pending = Some(planted);
        // Without the drop the rotation refuses (the check this guards against).
        let pw = SecretString::from("pw".to_owned());
        assert!(
            v.clone()
                .rotate(&key, &[], Some(&pw), None, &NoBackend)
                .is_err()
        );
        let warnings = v.drop_unverified_rotation(&key);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("rotation settings and pending secret of reg.example"));
        let new = v.rotate(&key, &[], Some(&pw), None, &NoBackend).unwrap();
        let e = &v.entries()["reg.example"];
        assert_eq!((&e.meta.rotation, &e.meta.pending), (&None, &None));
        assert_eq!(e.meta.expires_at, Some(1_801_353_600));
        // Good ones are kept.
        let (key, mut v) = with_metadata();
        assert!(v.drop_unverified_rotation(&key).is_empty());
        assert!(v.entries()["reg.example"].meta.rotation.is_some());
        drop(new);
    }

    #[test]
    fn metadata_is_version_3_and_roundtrips() {
        let (key, v) = with_metadata();
        assert_eq!(v.format_version(), METADATA_FORMAT_VERSION);
        let bytes = v.to_file_bytes().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("{\"lockbox\":3,"), "{text}");
        assert!(
            text.contains(r#","expires_at":1801353600,"rotate":{"kind":"harbor-robot","api":"https://reg.example","robot_id":12,"mac":""#),
            "{text}"
        );
        let back = Vault::parse(&bytes, Path::new("v")).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        let e = &back.entries()["reg.example"];
        assert_eq!(e.meta.expires_at, Some(1_801_353_600));
        e.meta
            .rotation
            .as_ref()
            .unwrap()
            .verify(&key, "reg.example", "robot$ci")
            .unwrap();
        let pending = key
            .open_entry("reg.example", "robot$ci", e.meta.pending.as_ref().unwrap())
            .unwrap();
        assert_eq!(pending.as_str(), "next");
        let view = View::parse(&bytes, Path::new("v")).unwrap();
        let raw = view.lookup("reg.example").unwrap();
        assert_eq!(raw.expires_at(), Some(1_801_353_600));
        assert_eq!(raw.rotation_kind(), Some("harbor-robot"));
        assert!(raw.has_pending());
        // Without metadata, the vault is version 1 again.
        let mut plain = back;
        plain.set_expiry("reg.example", None).unwrap();
        plain.set_rotation("reg.example", |_, _| Ok(None)).unwrap();
        plain.set_pending("reg.example", None).unwrap();
        assert!(plain.to_bytes().starts_with(b"{\"lockbox\":1,"));
    }

    #[test]
    fn metadata_in_version_1_or_2_is_damaged() {
        let (_, v) = with_metadata();
        let text = String::from_utf8(v.to_bytes()).unwrap();
        for older in ["\"lockbox\":1", "\"lockbox\":2"] {
            let t = text.replace("\"lockbox\":3", older);
            assert!(matches!(
                Vault::parse(t.as_bytes(), Path::new("v")),
                Err(Error::Corrupt { .. })
            ));
            assert!(matches!(
                View::parse(t.as_bytes(), Path::new("v")),
                Err(Error::Corrupt { .. })
            ));
        }
        // The version after the entries (a file written by hand) is checked the same.
        let moved =
            text.replacen("\"lockbox\":3,", "", 1)
                .replacen("\n}}\n", "\n},\"lockbox\":2}\n", 1);
        assert!(matches!(
            Vault::parse(moved.as_bytes(), Path::new("v")),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn metadata_members_are_bounded_and_known() {
        let (_, v) = with_metadata();
        let text = String::from_utf8(v.to_bytes()).unwrap();
        for (from, to) in [
            ("\"expires_at\":1801353600", "\"expires_at\":253402300800"),
            ("\"expires_at\":1801353600", "\"expires_at\":-1"),
            ("\"expires_at\":1801353600", "\"expires_at\":\"2027\""),
            (
                "\"expires_at\":1801353600",
                "\"expires_at\":1,\"expires_at\":2",
            ),
            ("\"robot_id\":12", "\"robot_id\":0"),
            ("\"robot_id\":12,", ""),
            ("\"kind\":\"harbor-robot\"", "\"kind\":\"github\""),
            (
                "\"api\":\"https://reg.example\"",
                "\"api\":\"http://reg.example\"",
            ),
            ("\"mac\":\"", "\"extra\":1,\"mac\":\""),
            ("\"pending\":\"", "\"pending\":\"!"),
            ("\"username\":", "\"expiry\":1,\"username\":"),
        ] {
            let t = text.replacen(from, to, 1);
            assert_ne!(t, text, "{from}");
            assert!(
                matches!(
                    Vault::parse(t.as_bytes(), Path::new("v")),
                    Err(Error::Corrupt { .. })
                ),
                "{to}"
            );
            assert!(View::parse(t.as_bytes(), Path::new("v")).is_err(), "{to}");
        }
    }

    #[test]
    fn store_learns_a_jwt_expiry_and_keeps_the_rotation_for_the_same_username() {
        let (key, mut v) = with_metadata();
        // A new secret without a date of its own: the date kept, the rotation settings
        // and the pending secret kept (same account).
        v.store(
            "reg.example",
            "robot$ci",
            &SecretString::from("opaque".to_owned()),
        )
        .unwrap();
        let e = &v.entries()["reg.example"];
        assert_eq!(e.meta.expires_at, Some(1_801_353_600));
        assert!(e.meta.pending.is_some());
        assert!(e.meta.rotation.is_some());
        v.store("reg.example", "robot$ci", &jwt_with_exp(1_900_000_000))
            .unwrap();
        assert_eq!(
            v.entries()["reg.example"].meta.expires_at,
            Some(1_900_000_000)
        );
        // Another username: another account, so no rotation settings.
        v.store(
            "reg.example",
            "someone",
            &SecretString::from("x".to_owned()),
        )
        .unwrap();
        assert!(v.entries()["reg.example"].meta.rotation.is_none());
        assert!(v.entries()["reg.example"].meta.pending.is_none());
        // An expiry set by hand on a normalized spelling.
        assert_eq!(
            v.set_expiry("https://REG.example/", Some(5)).unwrap(),
            "reg.example"
        );
        assert!(matches!(
            v.set_expiry("nope.example", Some(5)),
            Err(Error::NoSuchEntry(_))
        ));
        drop(key);
    }

    #[test]
    fn key_rotation_re_macs_rotation_settings_and_reseals_pending() {
        let (key, mut v) = with_metadata();
        let pw = SecretString::from("pw".to_owned());
        let new = v.rotate(&key, &[], Some(&pw), None, &NoBackend).unwrap();
        let e = &v.entries()["reg.example"];
        let r = e.meta.rotation.as_ref().unwrap();
        r.verify(&new, "reg.example", "robot$ci").unwrap();
        assert!(r.verify(&key, "reg.example", "robot$ci").is_err());
        let p = new
            .open_entry("reg.example", "robot$ci", e.meta.pending.as_ref().unwrap())
            .unwrap();
        assert_eq!(p.as_str(), "next");
        assert_eq!(e.meta.expires_at, Some(1_801_353_600));
        // Finishing a rotation: the new secret, its expiry, no pending, settings kept.
        v.finish_rotation(
            "reg.example",
            &SecretString::from("next".to_owned()),
            Some(7),
        )
        .unwrap();
        let e = &v.entries()["reg.example"];
        assert_eq!(e.meta.pending, None);
        assert_eq!(e.meta.expires_at, Some(7));
        assert!(e.meta.rotation.is_some());
        assert_eq!(
            age::secrecy::ExposeSecret::expose_secret(&e.open("reg.example", &new).unwrap()),
            "next"
        );
    }

    #[test]
    fn view_agrees_with_the_full_vault() {
        let (key, mut v) = sample();
        let s = SecretString::from("t".to_owned());
        for server in [
            "http://Host:443/",
            "https://host",
            "ghcr.io/org",
            "z.example",
        ] {
            v.store(server, "u", &s).unwrap();
        }
        let bytes = v.to_bytes();
        let view = View::parse(&bytes, Path::new("v")).unwrap();
        let listed: Vec<(&str, &str)> = view
            .entries()
            .iter()
            .map(|e| (e.server(), e.username()))
            .collect();
        let want: Vec<(&str, &str)> = v
            .entries()
            .iter()
            .map(|(k, e)| (k.as_str(), e.username.as_str()))
            .collect();
        assert_eq!(listed, want);
        for request in [
            "docker.io",
            "host",
            "HOST:443",
            "ghcr.io/org/",
            "ghcr.io",
            "z.example",
            "nope",
        ] {
            let a = v
                .lookup(request)
                .map(|(k, e)| (k.to_owned(), e.secret.clone()));
            let b = view
                .lookup(request)
                .map(|e| (e.server().to_owned(), e.secret()));
            assert_eq!(a, b, "{request}");
        }
        // Several keys normalize alike: the byte-least one answers ("http://Host:443/"
        // sorts before "https://host"), in both.
        assert_eq!(view.lookup("host").unwrap().server(), "http://Host:443/");
        let e = view.lookup("docker.io").unwrap();
        assert_eq!(
            key.open_entry(e.server(), e.username(), &e.secret())
                .unwrap()
                .as_str(),
            "s1"
        );
    }

    #[test]
    fn output_is_one_line_per_slot_and_entry() {
        let (_, mut v) = sample();
        v.store("a", "u", &SecretString::from("x".to_owned()))
            .unwrap();
        let text = String::from_utf8(v.to_bytes()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert!(lines[0].starts_with("{\"lockbox\":1,\"public_key\":\"age1"));
        assert!(lines[1].starts_with("{\"type\":\"passphrase\",\"kdf\":\"argon2id\","));
        assert!(lines[2].starts_with("],\"slots_mac\":"));
        assert!(lines[3].starts_with("\"a\":{\"username\":\"u\",\"secret\":\""));
        assert_eq!(lines[5], "}}");
        // Pretty JSON (the earlier writer's) still reads, and writes back canonical.
        let pretty =
            serde_json::to_vec_pretty(&serde_json::from_str::<serde_json::Value>(&text).unwrap())
                .unwrap();
        assert_eq!(
            Vault::parse(&pretty, Path::new("v")).unwrap().to_bytes(),
            text.as_bytes()
        );
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
