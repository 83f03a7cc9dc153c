//! The vault's cryptography, specified in `docs/FORMAT.md`:
//!
//! - the vault key pair is an age X25519 identity ([`VaultKey`]);
//! - each entry's secret is age-encrypted to the vault's public key, with the server URL
//!   and username inside the plaintext so a ciphertext moved to another entry fails
//!   ([`seal_entry`], [`VaultKey::open_entry`]);
//! - a passphrase slot wraps the private key with XChaCha20-Poly1305 under an Argon2id
//!   key ([`VaultKey::wrap_with_passphrase`]);
//! - an age slot age-encrypts the private key to one X25519, SSH or tag recipient
//!   ([`VaultKey::wrap_natively`]); a plugin recipient is data here
//!   ([`PluginRecipient`]), and running its plugin is the identity backend's;
//! - the [`EntryOpener`] seam: whatever opens entries, a [`VaultKey`] in this process
//!   or an agent that decrypts on request so the key never leaves it.
//!
//! Part of the core (floor 4, `src/lib.rs`): no file system, network, processes or
//! prompts.
use std::io::{Read, Write};
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::Mac as _;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Domain separation for entry plaintexts (`docs/FORMAT.md` "Entry plaintext").
const ENTRY_MAGIC: &[u8] = b"lockbox-entry-v1\0";
/// The first bytes of a source's sealed secret: never accepted where an entry's
/// credential is opened, so deleting a source's definition from the file does not turn
/// its cloud credential into a registry password (`docs/FORMAT.md` "Sources").
const SOURCE_MAGIC: &[u8] = b"lockbox-source-secret-v1\0";
/// Associated data prefix of the passphrase slot; the vault's public key follows.
const PASSPHRASE_AAD: &[u8] = b"lockbox-passphrase-slot-v1\0";

/// Bounds on Argon2id parameters read from a file, so a hostile vault cannot make the
/// helper allocate gigabytes or work for minutes (cf. age's `ExcessiveWork`).
pub mod kdf_bounds {
    /// Most memory, in KiB (1 GiB).
    pub const MAX_M_COST_KIB: u32 = 1 << 20;
    /// Least memory accepted, in KiB: Argon2's own minimum for one lane.
    pub const MIN_M_COST_KIB: u32 = 8;
    /// Most passes.
    pub const MAX_T_COST: u32 = 16;
    /// Most total work: memory × passes, in KiB (2 GiB·pass, a few seconds here).
    pub const MAX_WORK_KIB: u64 = 2 << 20;
    /// Most lanes.
    pub const MAX_P_COST: u32 = 8;
    /// Salt length range, bytes.
    pub const SALT_LEN: std::ops::RangeInclusive<usize> = 16..=64;
}

/// Length of an XChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 24;
/// Length of the salt `init` chooses.
pub const SALT_LEN: usize = 32;

/// Argon2id cost parameters of a passphrase slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// Checks the bounds of [`kdf_bounds`].
    pub fn check(&self) -> Result<()> {
        use kdf_bounds::*;
        let ok = (1..=MAX_P_COST).contains(&self.p_cost)
            && (1..=MAX_T_COST).contains(&self.t_cost)
            && self.m_cost_kib >= MIN_M_COST_KIB.max(8 * self.p_cost)
            && self.m_cost_kib <= MAX_M_COST_KIB
            && u64::from(self.m_cost_kib) * u64::from(self.t_cost) <= MAX_WORK_KIB;
        if ok {
            Ok(())
        } else {
            Err(Error::ExcessiveWork)
        }
    }

    fn argon2(&self) -> Result<argon2::Argon2<'static>> {
        self.check()?;
        let params = argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|_| Error::ExcessiveWork)?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }

    /// Derives the 32-byte wrapping key.
    pub fn derive(&self, passphrase: &SecretString, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let mut key = Zeroizing::new([0u8; 32]);
        self.argon2()?
            .hash_password_into(passphrase.expose_secret().as_bytes(), salt, &mut key[..])
            .map_err(|e| Error::Encrypt(format!("argon2id: {e}")))?;
        Ok(key)
    }
}

/// Fills a buffer from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    OsRng.fill_bytes(&mut b);
    b
}

/// A sealed passphrase slot: everything `docs/FORMAT.md` stores for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassphraseWrap {
    /// Argon2id parameters.
    pub params: KdfParams,
    /// Argon2id salt.
    pub salt: Vec<u8>,
    /// XChaCha20-Poly1305 nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The wrapped private key, with its 16-byte tag.
    pub wrapped: Vec<u8>,
}

/// The vault's key pair. Only code that has opened a slot holds one; the private half
/// is zeroed when dropped (x25519-dalek's `StaticSecret`).
pub struct VaultKey {
    identity: age::x25519::Identity,
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultKey")
            .field("public", &self.public().to_string())
            .finish_non_exhaustive()
    }
}

impl VaultKey {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        VaultKey {
            identity: age::x25519::Identity::generate(),
        }
    }

    /// Parses the private key text (`AGE-SECRET-KEY-1…`) found inside a slot and checks
    /// that it is the key of the vault whose public key is `expected`.
    pub fn from_slot_plaintext(text: &[u8], expected: &age::x25519::Recipient) -> Result<Self> {
        let text = std::str::from_utf8(text).map_err(|_| Error::KeyMismatch)?;
        let identity = age::x25519::Identity::from_str(text).map_err(|_| Error::KeyMismatch)?;
        if identity.to_public().to_string() != expected.to_string() {
            return Err(Error::KeyMismatch);
        }
        Ok(VaultKey { identity })
    }

    /// Parses a private key handed to the agent by `unlock`.
    pub fn from_secret_text(text: &str) -> Result<Self> {
        age::x25519::Identity::from_str(text)
            .map(|identity| VaultKey { identity })
            .map_err(|_| Error::KeyMismatch)
    }

    /// The private key text, to hand to the agent over its socket or to OpenBao's
    /// transit `encrypt` for an OpenBao slot (`openbao::seal_vault_key`). Nothing else
    /// may call this: every use can be found with grep.
    pub fn export_secret(&self) -> SecretString {
        self.identity.to_string()
    }

    /// The vault's public key, to which entries are encrypted.
    pub fn public(&self) -> age::x25519::Recipient {
        self.identity.to_public()
    }

    /// Wraps the private key under a passphrase (a passphrase slot).
    pub fn wrap_with_passphrase(
        &self,
        passphrase: &SecretString,
        params: KdfParams,
    ) -> Result<PassphraseWrap> {
        let salt = random_bytes::<SALT_LEN>().to_vec();
        let nonce = random_bytes::<NONCE_LEN>();
        let key = params.derive(passphrase, &salt)?;
        let aad = passphrase_aad(&self.public());
        let secret = self.export_secret();
        let wrapped = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key[..]))
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Encrypt("xchacha20-poly1305".into()))?;
        Ok(PassphraseWrap {
            params,
            salt,
            nonce,
            wrapped,
        })
    }

    /// Opens a passphrase slot.
    pub fn unwrap_with_passphrase(
        wrap: &PassphraseWrap,
        passphrase: &SecretString,
        vault_public: &age::x25519::Recipient,
    ) -> Result<Self> {
        let key = wrap.params.derive(passphrase, &wrap.salt)?;
        let aad = passphrase_aad(vault_public);
        let plain = Zeroizing::new(
            XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key[..]))
                .decrypt(
                    XNonce::from_slice(&wrap.nonce),
                    Payload {
                        msg: &wrap.wrapped,
                        aad: &aad,
                    },
                )
                .map_err(|_| Error::WrongPassphrase)?,
        );
        Self::from_slot_plaintext(&plain, vault_public)
    }

    /// Wraps the private key to an age recipient that age encrypts to natively
    /// (X25519, SSH, tag). A plugin recipient needs its plugin run, which is the
    /// identity backend's (`identity::WrapToRecipient`), never the core's.
    pub fn wrap_natively(&self, recipient: &Recipient) -> Result<Vec<u8>> {
        match recipient {
            Recipient::X25519(r) => self.wrap_to(r),
            Recipient::Ssh(r) => self.wrap_to(r),
            Recipient::Plugin(PluginRecipient::Tag(r)) => self.wrap_to(r),
            Recipient::Plugin(PluginRecipient::TagPq(r)) => self.wrap_to(r.as_ref()),
            Recipient::Plugin(PluginRecipient::Plugin(r)) => Err(Error::Encrypt(
                crate::messages::plugin_needs_backend(r.plugin()),
            )),
        }
    }

    /// Wraps the private key to any age recipient: a plugin's or a tag recipient
    /// (`src/identity/mod.rs`), which [`Recipient`] does not hold.
    pub fn wrap_to(&self, recipient: &dyn age::Recipient) -> Result<Vec<u8>> {
        let secret = self.export_secret();
        age_encrypt(recipient, secret.expose_secret().as_bytes())
    }

    /// Tries to open an age slot with the given identities. `Ok(None)` means none of
    /// them is this slot's key, so the caller can go on to the next slot.
    pub fn unwrap_with_identities(
        wrapped: &[u8],
        identities: &[Box<dyn age::Identity + Send + Sync>],
        vault_public: &age::x25519::Recipient,
    ) -> Result<Option<Self>> {
        let decryptor = match age::Decryptor::new_buffered(wrapped) {
            Ok(d) => d,
            Err(_) => return Ok(None),
        };
        let ids = identities.iter().map(|i| i.as_ref() as &dyn age::Identity);
        let mut reader = match decryptor.decrypt(ids) {
            Ok(r) => r,
            Err(age::DecryptError::NoMatchingKeys) => return Ok(None),
            Err(_) => return Err(Error::KeyMismatch),
        };
        // Not `file::read_wiped` (crypto sits below file): the plaintext, a 74-byte
        // key line, fits the reservation, so `read_to_end` never reallocates and leaves
        // no unwiped copy; a longer one is refused by the parse below.
        let mut plain = Zeroizing::new(Vec::with_capacity(128));
        reader
            .read_to_end(&mut plain)
            .map_err(|_| Error::KeyMismatch)?;
        Self::from_slot_plaintext(&plain, vault_public).map(Some)
    }

    /// Decrypts an entry and checks it is bound to `server` and `username`.
    pub fn open_entry(
        &self,
        server: &str,
        username: &str,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<String>> {
        self.open_bound(ENTRY_MAGIC, server, username, ciphertext)
    }

    /// Decrypts a source's sealed secret ([`seal_source_secret`]) and checks its
    /// binding; an entry's credential is refused here, as a source's secret is by
    /// [`Self::open_entry`].
    pub fn open_source_secret(
        &self,
        server: &str,
        username: &str,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<String>> {
        self.open_bound(SOURCE_MAGIC, server, username, ciphertext)
    }

    fn open_bound(
        &self,
        magic: &[u8],
        server: &str,
        username: &str,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<String>> {
        let tampered = || Error::EntryTampered(server.to_owned());
        let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(|_| tampered())?;
        let mut reader = decryptor
            .decrypt(std::iter::once(&self.identity as &dyn age::Identity))
            .map_err(|_| tampered())?;
        // The plaintext is shorter than the ciphertext, so this reservation is never
        // outgrown and `read_to_end` never leaves an unwiped copy behind.
        let mut plain = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
        reader.read_to_end(&mut plain).map_err(|_| tampered())?;
        let secret = parse_bound(magic, &plain, server, username).ok_or_else(tampered)?;
        Ok(Zeroizing::new(secret.to_owned()))
    }
}

/// What a MAC keyed from the vault key authenticates (`docs/FORMAT.md` "Keyed MACs").
/// Each domain has its own key, so a MAC made for one can never pass for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacDomain {
    /// The public key and the slots (`slots_mac`).
    Slots,
    /// A sealed source's whole definition: only a holder of the key may add one.
    Source,
    /// An entry's rotation settings: where its old secret may be sent.
    Rotation,
    /// The key of the token cache file a process without an agent keeps
    /// (`docs/SOURCES.md` "The caches"): a MAC of a fixed text in this domain is the
    /// cache's encryption key, so only the vault key opens it.
    TokenCache,
}

impl MacDomain {
    /// The domain tag hashed with the private key text into this domain's MAC key.
    fn tag(self) -> &'static [u8] {
        match self {
            MacDomain::Slots => b"lockbox-slots-mac-v1\0",
            MacDomain::Source => b"lockbox-source-mac-v1\0",
            MacDomain::Rotation => b"lockbox-rotation-mac-v1\0",
            MacDomain::TokenCache => b"lockbox-token-cache-v1\0",
        }
    }

    /// The name of a domain the agent computes MACs for (`docs/AGENT.md` `keyed_mac`).
    /// `Slots` is not one: the slots MAC is made only where the key itself is held;
    /// nor is `TokenCache`, whose MAC is a key that never leaves the agent.
    pub fn wire_name(self) -> Option<&'static str> {
        match self {
            MacDomain::Slots | MacDomain::TokenCache => None,
            MacDomain::Source => Some("source"),
            MacDomain::Rotation => Some("rotation"),
        }
    }

    /// The domain a wire name names; `None` for anything else (and for `Slots`).
    pub fn from_wire_name(name: &str) -> Option<MacDomain> {
        [MacDomain::Source, MacDomain::Rotation]
            .into_iter()
            .find(|d| d.wire_name() == Some(name))
    }
}

impl VaultKey {
    /// HMAC-SHA256 over `transcript` (the public key and slots, `docs/FORMAT.md`
    /// "Slots MAC"), keyed with SHA-256 of a domain tag and the private key text.
    pub fn slots_mac(&self, transcript: &[u8]) -> [u8; 32] {
        self.keyed_mac(MacDomain::Slots, transcript)
    }

    /// Checks a slots MAC in constant time.
    pub fn verify_slots_mac(&self, transcript: &[u8], mac: &[u8]) -> bool {
        self.keyed_hmac(MacDomain::Slots, transcript)
            .verify_slice(mac)
            .is_ok()
    }

    /// HMAC-SHA256 over `transcript` with the key of `domain`: SHA-256 of the domain's
    /// tag and the private key text (`docs/FORMAT.md` "Keyed MACs").
    pub fn keyed_mac(&self, domain: MacDomain, transcript: &[u8]) -> [u8; 32] {
        self.keyed_hmac(domain, transcript)
            .finalize()
            .into_bytes()
            .into()
    }

    fn keyed_hmac(&self, domain: MacDomain, transcript: &[u8]) -> hmac::Hmac<sha2::Sha256> {
        use sha2::Digest;
        let secret = self.export_secret();
        let mut h = sha2::Sha256::new();
        h.update(domain.tag());
        h.update(secret.expose_secret().as_bytes());
        let key = Zeroizing::new(<[u8; 32]>::from(h.finalize()));
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&key[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(transcript);
        mac
    }
}

/// Compares two MACs in constant time (in the length of the expected one).
pub fn macs_equal(expected: &[u8; 32], got: &[u8]) -> bool {
    got.len() == expected.len()
        && expected
            .iter()
            .zip(got)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn passphrase_aad(public: &age::x25519::Recipient) -> Vec<u8> {
    let mut aad = PASSPHRASE_AAD.to_vec();
    aad.extend_from_slice(public.to_string().as_bytes());
    aad
}

/// Encrypts an entry's secret to the vault's public key, binding server and username.
pub fn seal_entry(
    vault_public: &age::x25519::Recipient,
    server: &str,
    username: &str,
    secret: &SecretString,
) -> Result<Vec<u8>> {
    let plain = entry_plaintext(server, username, secret.expose_secret());
    age_encrypt(vault_public, &plain)
}

/// Seals a source's secret for `server`/`username` to the vault's public key, as
/// [`seal_entry`] but under its own magic, which [`VaultKey::open_entry`] refuses.
pub fn seal_source_secret(
    vault_public: &age::x25519::Recipient,
    server: &str,
    username: &str,
    secret: &SecretString,
) -> Result<Vec<u8>> {
    let plain = bound_plaintext(SOURCE_MAGIC, server, username, secret.expose_secret());
    age_encrypt(vault_public, &plain)
}

/// `docs/FORMAT.md` "Entry plaintext": magic, u32-BE length + server, u32-BE length +
/// username, then the secret to the end.
pub fn entry_plaintext(server: &str, username: &str, secret: &str) -> Zeroizing<Vec<u8>> {
    bound_plaintext(ENTRY_MAGIC, server, username, secret)
}

/// A bound plaintext under `magic` (an entry's or a source's).
fn bound_plaintext(magic: &[u8], server: &str, username: &str, secret: &str) -> Zeroizing<Vec<u8>> {
    let mut p = Zeroizing::new(Vec::with_capacity(
        magic.len() + 8 + server.len() + username.len() + secret.len(),
    ));
    p.extend_from_slice(magic);
    for field in [server, username] {
        // Inputs are bounded to 1 MiB long before this, so the length fits in u32.
        p.extend_from_slice(&(field.len() as u32).to_be_bytes());
        p.extend_from_slice(field.as_bytes());
    }
    p.extend_from_slice(secret.as_bytes());
    p
}

/// The inverse of [`entry_plaintext`]: the secret, if the plaintext is well formed and
/// bound to exactly this server and username.
pub fn parse_entry_plaintext<'a>(plain: &'a [u8], server: &str, username: &str) -> Option<&'a str> {
    parse_bound(ENTRY_MAGIC, plain, server, username)
}

/// [`parse_entry_plaintext`] under `magic`.
fn parse_bound<'a>(magic: &[u8], plain: &'a [u8], server: &str, username: &str) -> Option<&'a str> {
    let mut rest = plain.strip_prefix(magic)?;
    for field in [server, username] {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if tail.len() < len || &tail[..len] != field.as_bytes() {
            return None;
        }
        rest = &tail[len..];
    }
    std::str::from_utf8(rest).ok()
}

fn age_encrypt(recipient: &dyn age::Recipient, plain: &[u8]) -> Result<Vec<u8>> {
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient))
        .map_err(|e| Error::Encrypt(e.to_string()))?;
    let mut out = Vec::with_capacity(plain.len() + 256);
    let mut w = enc
        .wrap_output(&mut out)
        .map_err(|e| Error::Encrypt(e.to_string()))?;
    w.write_all(plain)
        .and_then(|()| w.finish().map(|_| ()))
        .map_err(|e| Error::Encrypt(e.to_string()))?;
    Ok(out)
}

/// A recipient an age slot can be made for.
#[derive(Clone)]
pub enum Recipient {
    /// `age1…`
    X25519(age::x25519::Recipient),
    /// `ssh-ed25519 …` or `ssh-rsa …`
    Ssh(age::ssh::Recipient),
    /// A plugin recipient (`age1NAME1…`) or a tag recipient (`age1tag1…`,
    /// `age1tagpq1…`): a vault holding one is format version 2 (`docs/FORMAT.md`).
    Plugin(PluginRecipient),
}

impl Recipient {
    /// Parses `age1…` (X25519, a plugin's or a tag recipient), `ssh-ed25519 AAAA…
    /// [comment]` or `ssh-rsa AAAA… [comment]`. Never runs a plugin.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.starts_with("age1") {
            if let Ok(r) = age::x25519::Recipient::from_str(text) {
                return Ok(Recipient::X25519(r));
            }
            return match PluginRecipient::parse(text) {
                Some(r) => r.map(Recipient::Plugin),
                None => Err(Error::BadRecipient(text.to_owned())),
            };
        }
        if text.starts_with("ssh-") {
            if ssh_guard::recipient_panics_age(text) {
                return Err(Error::BadRecipient(text.to_owned()));
            }
            return age::ssh::Recipient::from_str(text)
                .map(Recipient::Ssh)
                .map_err(|_| Error::BadRecipient(text.to_owned()));
        }
        Err(Error::BadRecipient(text.to_owned()))
    }

    /// The canonical text stored in the slot (`age1…`, or `ssh-… AAAA…` without the comment).
    pub fn canonical(&self) -> String {
        match self {
            Recipient::X25519(r) => r.to_string(),
            Recipient::Ssh(r) => r.to_string(),
            Recipient::Plugin(r) => r.canonical(),
        }
    }

    /// Whether wrapping to it runs a plugin (`age1NAME1…`; tag recipients are native).
    pub fn needs_plugin(&self) -> Option<&str> {
        match self {
            Recipient::Plugin(PluginRecipient::Plugin(r)) => Some(r.plugin()),
            _ => None,
        }
    }
}

/// Refuses, before age sees them, the SSH keys that make age 0.12.1 panic instead of
/// failing to parse: its `mpint` reader (`ssh.rs`, `read_ssh::mpint`) indexes past the
/// end of a non-empty integer whose bytes are all zero. An `ssh-rsa` recipient in a
/// vault file or an RSA key in an identity file can carry one (found by the
/// `vault_parse` and `identity_parse` fuzz targets). RFC 4251 §5 writes zero as the
/// empty string, so no valid key is refused. These walk the bytes age would read as
/// `mpint`s and stop quietly wherever age itself would fail; drop them once age no
/// longer panics (`fuzz/seeds/*/regress_zero_mpint_*` replay the inputs).
pub(crate) mod ssh_guard {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    use zeroize::Zeroizing;

    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// An SSH `string`: u32-BE length and that many bytes.
    fn string(input: &[u8]) -> Option<(&[u8], &[u8])> {
        let (len, rest) = input.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        (len <= rest.len()).then(|| rest.split_at(len))
    }

    /// Whether `input` is `string "ssh-rsa"` followed by `count` mpints, one of which
    /// age would panic on before any of them fails to parse.
    fn rsa_zero_mpint(input: &[u8], count: usize) -> bool {
        let Some((b"ssh-rsa", mut rest)) = string(input) else {
            return false;
        };
        for _ in 0..count {
            let Some((mpint, tail)) = string(rest) else {
                return false;
            };
            if !mpint.is_empty() && mpint.iter().all(|&b| b == 0) {
                return true;
            }
            rest = tail;
        }
        false
    }

    /// `ssh-rsa <base64> [comment]`, read as age reads it: the base64 alphabet up to the
    /// first other character, decoded without padding.
    pub(crate) fn recipient_panics_age(text: &str) -> bool {
        let Some(rest) = text.strip_prefix("ssh-rsa ") else {
            return false;
        };
        let end = rest.find(|c| !ALPHABET.contains(c)).unwrap_or(rest.len());
        STANDARD_NO_PAD
            .decode(&rest[..end])
            .is_ok_and(|blob| rsa_zero_mpint(&blob, 2))
    }

    /// The private key text to hand age, or `None` for one it could panic on. An
    /// OpenSSH key (`-----BEGIN OPENSSH PRIVATE KEY-----` first, where age looks for it)
    /// is decoded here, its RSA integers checked (the `openssh-key-v1` layout of
    /// OpenSSH's `PROTOCOL.key`), and re-armored canonically, so age parses exactly the
    /// bytes that were checked rather than its own reading of odd line breaks; its armor
    /// must be well formed (ssh-keygen's always is). Other text is handed on unchanged:
    /// age reads no `mpint` in it.
    pub(crate) fn private_key_for_age(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
        const END: &str = "-----END OPENSSH PRIVATE KEY-----";
        let Some(rest) = text.strip_prefix(BEGIN.as_bytes()) else {
            return Some(Zeroizing::new(text.to_vec()));
        };
        let mut lines = rest
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        if lines.next() != Some(&b""[..]) {
            return None;
        }
        let mut encoded = Zeroizing::new(Vec::with_capacity(text.len()));
        loop {
            let line = lines.next()?;
            if line.starts_with(END.as_bytes()) {
                break;
            }
            if line.is_empty()
                || !line
                    .iter()
                    .all(|&b| b == b'=' || ALPHABET.as_bytes().contains(&b))
            {
                return None;
            }
            encoded.extend_from_slice(line);
        }
        let blob = Zeroizing::new(STANDARD.decode(&encoded[..]).ok()?);
        if openssh_rsa_zero_mpint(&blob) {
            return None;
        }
        let encoded = Zeroizing::new(STANDARD.encode(&blob[..]));
        let mut armored = Zeroizing::new(Vec::with_capacity(encoded.len() + 128));
        armored.extend_from_slice(BEGIN.as_bytes());
        for chunk in encoded.as_bytes().chunks(70) {
            armored.push(b'\n');
            armored.extend_from_slice(chunk);
        }
        armored.push(b'\n');
        armored.extend_from_slice(END.as_bytes());
        armored.push(b'\n');
        Some(armored)
    }

    /// Whether age would read a non-empty all-zero `mpint` in an `openssh-key-v1` blob:
    /// only an unencrypted key's private RSA integers are read as such.
    fn openssh_rsa_zero_mpint(blob: &[u8]) -> bool {
        let walk = || -> Option<bool> {
            let rest = blob.strip_prefix(b"openssh-key-v1\0")?;
            let (cipher, rest) = string(rest)?;
            let (kdf, rest) = string(rest)?;
            let (kdf_options, rest) = string(rest)?;
            if cipher != b"none" || kdf != b"none" || !kdf_options.is_empty() {
                return Some(false); // encrypted: age does not decrypt it here
            }
            let rest = rest.strip_prefix(b"\0\0\0\x01")?;
            let (_public, rest) = string(rest)?;
            let (private, _) = string(rest)?;
            // Two check integers, then the key.
            Some(rsa_zero_mpint(private.get(8..)?, 6))
        };
        walk().unwrap_or(false)
    }
}

/// A recipient that [`crate::vault::crypto::Recipient`] does not hold: a plugin's or a tag
/// recipient. Opening a slot made for one needs a plugin.
#[derive(Clone)]
pub enum PluginRecipient {
    /// `age1NAME1…`: wrapped by running `age-plugin-NAME`.
    Plugin(age::plugin::Recipient),
    /// `age1tag1…`: P-256 tagged, wrapped natively by age (hardware keys).
    Tag(age::tag::Recipient),
    /// `age1tagpq1…`: the post-quantum hybrid tagged recipient, wrapped natively.
    TagPq(Box<age::tagpq::Recipient>),
}

impl PluginRecipient {
    /// Parses `age1tag1…`, `age1tagpq1…` or `age1NAME1…`; `None` for any other text
    /// (X25519 and SSH recipients are [`crate::vault::crypto::Recipient`]'s).
    pub fn parse(text: &str) -> Option<Result<Self>> {
        let text = text.trim();
        let refuse = || Error::BadRecipient(text.to_owned());
        if text.starts_with("age1tagpq1") {
            return Some(
                age::tagpq::Recipient::from_str(text)
                    .map(|r| PluginRecipient::TagPq(Box::new(r)))
                    .map_err(|_| refuse()),
            );
        }
        if text.starts_with("age1tag1") {
            return Some(
                age::tag::Recipient::from_str(text)
                    .map(PluginRecipient::Tag)
                    .map_err(|_| refuse()),
            );
        }
        if text.starts_with("age1") && age::x25519::Recipient::from_str(text).is_err() {
            return age::plugin::Recipient::from_str(text)
                .ok()
                .map(|r| Ok(PluginRecipient::Plugin(r)));
        }
        None
    }

    /// The canonical text stored in the slot.
    pub fn canonical(&self) -> String {
        match self {
            PluginRecipient::Plugin(r) => r.to_string(),
            PluginRecipient::Tag(r) => r.to_string(),
            PluginRecipient::TagPq(r) => r.to_string(),
        }
    }
}

/// Opens entry ciphertexts. Implemented by [`VaultKey`] and by the agent client.
///
/// The secret comes back as a [`SecretString`] and stays one until the one place that
/// writes it (`get`'s answer, `export`'s output, the kubelet answer, the agent's
/// reply frame), so `grep expose_secret` finds every access.
pub trait EntryOpener {
    /// Decrypts the entry for `server`/`username`, checking its binding.
    fn open_entry(&self, server: &str, username: &str, ciphertext: &[u8]) -> Result<SecretString>;

    /// The MAC of `transcript` in `domain`, keyed from the vault key (`Source` and
    /// `Rotation` only: the agent computes no slots MAC).
    fn keyed_mac(&self, domain: MacDomain, transcript: &[u8]) -> Result<[u8; 32]>;

    /// Whether `mac` is the MAC of `transcript` in `domain`, compared in constant time.
    fn verify_keyed_mac(&self, domain: MacDomain, transcript: &[u8], mac: &[u8]) -> Result<bool> {
        Ok(macs_equal(&self.keyed_mac(domain, transcript)?, mac))
    }

    /// Opens a source's sealed secret ([`seal_source_secret`]) for `server`/`username`,
    /// after its definition verified. Only the key itself does: the agent never hands
    /// a source's secret to a client (it mints, [`EntryOpener::mint_source`]).
    fn open_source_secret(
        &self,
        server: &str,
        username: &str,
        ciphertext: &[u8],
    ) -> Result<SecretString> {
        let _ = (username, ciphertext);
        Err(Error::SourceNotStatic(server.to_owned()))
    }

    /// Asks the holder of the key to mint from the source `request` (the agent: it
    /// verifies the definition, mints or answers from its token cache). `None` when
    /// this opener is the key itself and the caller mints (`src/protocol.rs`).
    fn mint_source(&self, request: &SourceRequest<'_>) -> Option<Result<MintedCredential>> {
        let _ = request;
        None
    }
}

/// A source entry as the agent is asked to mint from it: everything the file holds.
#[derive(Debug, Clone, Copy)]
pub struct SourceRequest<'a> {
    /// The entry's server URL, exactly as stored.
    pub server: &'a str,
    /// The entry's username.
    pub username: &'a str,
    /// The sealed secret (age ciphertext).
    pub sealed: &'a [u8],
    /// The definition's kind, parameters and MAC (`vault::source::SourceDef`), not
    /// yet verified.
    pub kind: &'a str,
    /// Its parameters.
    pub params: &'a std::collections::BTreeMap<String, String>,
    /// Its MAC.
    pub mac: &'a [u8; 32],
}

/// A credential minted from a source, as the holder of the key answers.
pub struct MintedCredential {
    /// The username the registry expects.
    pub username: String,
    /// The short-lived secret.
    pub secret: SecretString,
    /// When it stops working (Unix seconds), when the issuer says.
    pub expires_at: Option<u64>,
}

impl EntryOpener for VaultKey {
    fn open_entry(&self, server: &str, username: &str, ciphertext: &[u8]) -> Result<SecretString> {
        let plain = VaultKey::open_entry(self, server, username, ciphertext)?;
        // `to_owned` allocates exactly the length, so the box conversion inside
        // `SecretString::from` does not reallocate; `plain` is wiped on drop.
        Ok(SecretString::from(plain.as_str().to_owned()))
    }

    fn keyed_mac(&self, domain: MacDomain, transcript: &[u8]) -> Result<[u8; 32]> {
        Ok(VaultKey::keyed_mac(self, domain, transcript))
    }

    fn open_source_secret(
        &self,
        server: &str,
        username: &str,
        ciphertext: &[u8],
    ) -> Result<SecretString> {
        let plain = VaultKey::open_source_secret(self, server, username, ciphertext)?;
        Ok(SecretString::from(plain.as_str().to_owned()))
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

    #[test]
    fn passphrase_wrap_roundtrip_and_wrong_passphrase() {
        let key = VaultKey::generate();
        let pw = SecretString::from("correct horse".to_owned());
        let wrap = key.wrap_with_passphrase(&pw, FAST).unwrap();
        let back = VaultKey::unwrap_with_passphrase(&wrap, &pw, &key.public()).unwrap();
        assert_eq!(back.public().to_string(), key.public().to_string());
        let bad = SecretString::from("wrong".to_owned());
        assert!(matches!(
            VaultKey::unwrap_with_passphrase(&wrap, &bad, &key.public()),
            Err(Error::WrongPassphrase)
        ));
        // A slot moved to another vault fails: the public key is in the AAD.
        let other = VaultKey::generate();
        assert!(VaultKey::unwrap_with_passphrase(&wrap, &pw, &other.public()).is_err());
    }

    #[test]
    fn excessive_work_is_refused_before_any_allocation() {
        for p in [
            KdfParams {
                m_cost_kib: u32::MAX,
                t_cost: 1,
                p_cost: 1,
            },
            KdfParams {
                m_cost_kib: 1 << 20,
                t_cost: 16,
                p_cost: 1,
            },
            KdfParams {
                m_cost_kib: 64,
                t_cost: u32::MAX,
                p_cost: 1,
            },
            KdfParams {
                m_cost_kib: 64,
                t_cost: 1,
                p_cost: 0,
            },
            KdfParams {
                m_cost_kib: 4,
                t_cost: 1,
                p_cost: 1,
            },
        ] {
            assert!(matches!(p.check(), Err(Error::ExcessiveWork)), "{p:?}");
        }
    }

    #[test]
    fn age_slot_roundtrip_and_foreign_identity() {
        let key = VaultKey::generate();
        let user = age::x25519::Identity::generate();
        let wrapped = key
            .wrap_natively(&Recipient::X25519(user.to_public()))
            .unwrap();
        let ids: Vec<Box<dyn age::Identity + Send + Sync>> = vec![Box::new(user)];
        let back = VaultKey::unwrap_with_identities(&wrapped, &ids, &key.public())
            .unwrap()
            .unwrap();
        assert_eq!(back.public().to_string(), key.public().to_string());
        let stranger: Vec<Box<dyn age::Identity + Send + Sync>> =
            vec![Box::new(age::x25519::Identity::generate())];
        assert!(
            VaultKey::unwrap_with_identities(&wrapped, &stranger, &key.public())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn entry_bound_to_server_and_username() {
        let key = VaultKey::generate();
        let s = SecretString::from("pw".to_owned());
        let ct = seal_entry(&key.public(), "host", "bob", &s).unwrap();
        assert_eq!(key.open_entry("host", "bob", &ct).unwrap().as_str(), "pw");
        assert!(key.open_entry("other", "bob", &ct).is_err());
        assert!(key.open_entry("host", "eve", &ct).is_err());
        assert!(VaultKey::generate().open_entry("host", "bob", &ct).is_err());
    }

    /// Regression: age 0.12.1 panics on an `ssh-rsa` recipient whose exponent or
    /// modulus is a non-empty, all-zero mpint; found by the `vault_parse` fuzz target.
    #[test]
    fn ssh_rsa_recipient_with_zero_mpint_is_refused_not_a_panic() {
        for text in [
            // exponent 00
            "ssh-rsa AAAAB3NzaC1yc2EAAAABAAAAAAMBAAE=",
            // modulus 00 00, with a comment
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAAgAA comment",
        ] {
            assert!(
                matches!(Recipient::parse(text), Err(Error::BadRecipient(_))),
                "{text}"
            );
        }
        let real = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDFzSL9OZ/bqIShRd4jl8s2rzfcgYvbONNoDlgmfZ/D0poqxwAtWrtvIK6luzbnMfFDHuP2GULgq8u2QXbr5IPj+EJO4+DfoxfFuanUI56T0RpNysngfn6Bcl6RlA9kJailDyJG2naIC74yWoCHdVYAae+oRpDDyVrP5uZoIEgBwDZgvNK6pWj0yc8Si1CtL2vsN3FOHI4gNutLVRP0OHh4RaHUhsVsR2uo87vmNnp80zkdmtKT29UaQF41lHQe+nOOQhisyXveviNOPI+CCnOWS0T+ruIvT8IBBK8x3GmFQHqswAMgBVp5BCBA1AkfyOFxDjuha/PvjxQHBJ/WcOzh test";
        assert!(Recipient::parse(real).is_ok());
    }

    proptest! {
        #[test]
        fn entry_plaintext_roundtrip(server in any::<String>(), user in any::<String>(), secret in any::<String>()) {
            let p = entry_plaintext(&server, &user, &secret);
            prop_assert_eq!(parse_entry_plaintext(&p, &server, &user), Some(secret.as_str()));
        }

        #[test]
        fn entry_plaintext_rejects_other_binding(server in "[a-z]{1,8}", other in "[a-z]{1,8}", secret in any::<String>()) {
            prop_assume!(server != other && server != "u");
            let p = entry_plaintext(&server, "u", &secret);
            prop_assert_eq!(parse_entry_plaintext(&p, &other, "u"), None);
            prop_assert_eq!(parse_entry_plaintext(&p, "u", &server), None);
        }

        #[test]
        fn seal_open_roundtrip(server in any::<String>(), user in any::<String>(), secret in any::<String>()) {
            let key = VaultKey::generate();
            let ct = seal_entry(&key.public(), &server, &user, &SecretString::from(secret.clone())).unwrap();
            let opened = key.open_entry(&server, &user, &ct).unwrap();
            prop_assert_eq!(opened.as_str(), secret.as_str());
        }
    }
}
