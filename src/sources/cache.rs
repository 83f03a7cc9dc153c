//! The token cache of a process without an agent (`docs/SOURCES.md` "The caches"):
//! a file beside the vault, `<vault>.tokens`, that only the vault key opens, so a CI
//! job's hundred `get`s with `LOCKBOX_IDENTITY` mint once.
//!
//! - **Sealed.** XChaCha20-Poly1305 under a key that is a keyed MAC of the vault key
//!   in [`MacDomain::TokenCache`] (a domain the agent never computes for a client);
//!   a file that does not open (another vault's, planted, damaged) is ignored and
//!   replaced.
//! - **Keyed by definition.** Each token is stored under its server URL with the
//!   source's MAC: a changed definition never reuses an old token.
//! - **One mint at a time.** A miss takes `<vault>.tokens.lock` and reads again
//!   under it before minting, so parallel `get`s wait for one mint instead of each
//!   minting; a hit takes no lock (the file is replaced by rename, never rewritten).
//! - **Best effort.** A cache that cannot be read or written (a read-only directory)
//!   costs a mint per `get`, never a failure: the answer does not depend on it.
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::policy::{Freshness, freshness};
use crate::file::{LockGuard, lock_file};
use crate::secret_io;
use crate::vault::crypto::{EntryOpener, MacDomain, MintedCredential, random_bytes};

/// Largest cache file read, bytes.
const MAX_FILE: usize = 1 << 20;
/// Most tokens kept; the ones expiring first go beyond it.
const MAX_TOKENS: usize = 256;
/// What the cache key is the MAC of, and the AEAD's associated data.
const LABEL: &[u8] = b"lockbox-token-cache-v1";

/// The cache file of the vault at `vault`.
pub fn path_for(vault: &Path) -> PathBuf {
    let mut p = vault.as_os_str().to_owned();
    p.push(".tokens");
    PathBuf::from(p)
}

/// One cached token.
#[derive(Serialize, Deserialize)]
struct Token {
    /// The source's MAC (base64), so a changed definition misses.
    mac: String,
    username: String,
    secret: Zeroizing<String>,
    minted_at: u64,
    expires_at: u64,
}

#[derive(Serialize, Deserialize, Default)]
struct Tokens {
    tokens: BTreeMap<String, Token>,
}

/// A vault's token cache file, opened with its key.
pub struct Cache {
    path: PathBuf,
    key: Zeroizing<[u8; 32]>,
}

impl Cache {
    /// The cache beside `vault`, keyed by `opener`; `None` when the opener computes no
    /// cache key (the agent: it caches in memory).
    pub fn new(vault: &Path, opener: &dyn EntryOpener) -> Option<Cache> {
        let key = opener.keyed_mac(MacDomain::TokenCache, LABEL).ok()?;
        Some(Cache {
            path: path_for(vault),
            key: Zeroizing::new(key),
        })
    }

    /// The token cached for `server` under the definition `mac`, if it is still
    /// served at `now` ([`freshness`]).
    pub fn get(&self, server: &str, mac: &[u8; 32], now: u64) -> Option<MintedCredential> {
        let all = self.read()?;
        let t = all.tokens.get(server)?;
        if t.mac != B64.encode(mac)
            || freshness(t.minted_at, Some(t.expires_at), now) == Freshness::Stale
        {
            return None;
        }
        Some(MintedCredential {
            username: t.username.clone(),
            secret: SecretString::from(t.secret.as_str().to_owned()),
            expires_at: Some(t.expires_at),
        })
    }

    /// Takes the cache's lock (waiting at most `wait`), or `None` when it cannot be had.
    pub fn lock(&self, wait: Duration) -> Option<LockGuard> {
        let mut p = self.path.as_os_str().to_owned();
        p.push(".lock");
        lock_file(Path::new(&p), wait).ok()
    }

    /// Keeps `minted` for `server` under the definition `mac` (a token without an
    /// expiry is not kept). Called under [`Cache::lock`]; failures are ignored.
    pub fn put(&self, server: &str, mac: &[u8; 32], minted: &MintedCredential, now: u64) {
        let Some(expires_at) = minted.expires_at else {
            return;
        };
        let mut all = self.read().unwrap_or_default();
        all.tokens.retain(|_, t| t.expires_at > now);
        all.tokens.insert(
            server.to_owned(),
            Token {
                mac: B64.encode(mac),
                username: minted.username.clone(),
                secret: Zeroizing::new(minted.secret.expose_secret().to_owned()),
                minted_at: now,
                expires_at,
            },
        );
        while all.tokens.len() > MAX_TOKENS {
            let first = all
                .tokens
                .iter()
                .min_by_key(|(_, t)| t.expires_at)
                .map(|(k, _)| k.clone());
            if let Some(k) = first {
                all.tokens.remove(&k);
            }
        }
        let _ = self.write(&all);
    }

    fn aead(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&self.key[..]))
    }

    fn read(&self) -> Option<Tokens> {
        let input = secret_io::open(&self.path, secret_io::Accept::RegularFileNoLink).ok()?;
        let bytes = secret_io::read_wiped(input, MAX_FILE).ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(24);
        let plain = Zeroizing::new(
            self.aead()
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: LABEL,
                    },
                )
                .ok()?,
        );
        serde_json::from_slice(&plain).ok()
    }

    fn write(&self, all: &Tokens) -> std::io::Result<()> {
        // Room for every token escaped at its worst (6 bytes per byte), so the buffer
        // never grows and leaves no unwiped copy behind.
        let room: usize = all
            .tokens
            .iter()
            .map(|(k, t)| 6 * (k.len() + t.username.len() + t.secret.len() + t.mac.len()) + 128)
            .sum();
        let mut plain = Zeroizing::new(Vec::with_capacity(room + 64));
        serde_json::to_writer(&mut *plain, all).map_err(std::io::Error::other)?;
        let nonce: [u8; 24] = random_bytes();
        let sealed = self
            .aead()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: LABEL,
                },
            )
            .map_err(|_| std::io::Error::other("seal"))?;
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(format!(".tmp-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)?;
        let done = file
            .write_all(&nonce)
            .and_then(|()| file.write_all(&sealed))
            .and_then(|()| fs::rename(&tmp, &self.path));
        if done.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::crypto::VaultKey;

    fn minted(secret: &str, expires_at: u64) -> MintedCredential {
        MintedCredential {
            username: "u".into(),
            secret: SecretString::from(secret.to_owned()),
            expires_at: Some(expires_at),
        }
    }

    #[test]
    fn a_token_comes_back_only_for_its_key_its_definition_and_while_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault.json");
        let key = VaultKey::generate();
        let cache = Cache::new(&vault, &key).unwrap();
        let (mac, now) = ([7u8; 32], 1_000_000);
        cache.put("r.example", &mac, &minted("tok", now + 3600), now);
        let got = cache.get("r.example", &mac, now + 60).unwrap();
        assert_eq!(got.secret.expose_secret(), "tok");
        // Another definition, another server, stale, or another vault key: a miss.
        assert!(cache.get("r.example", &[8u8; 32], now + 60).is_none());
        assert!(cache.get("s.example", &mac, now + 60).is_none());
        assert!(cache.get("r.example", &mac, now + 3600 - 100).is_none());
        let other = Cache::new(&vault, &VaultKey::generate()).unwrap();
        assert!(other.get("r.example", &mac, now + 60).is_none());
        // The file holds no token in the clear, and is the owner's only.
        let bytes = fs::read(path_for(&vault)).unwrap();
        assert!(!bytes.windows(3).any(|w| w == b"tok"));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(path_for(&vault)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_or_planted_file_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let vault = dir.path().join("vault.json");
        fs::write(path_for(&vault), b"garbage that is no sealed cache at all").unwrap();
        let key = VaultKey::generate();
        let cache = Cache::new(&vault, &key).unwrap();
        assert!(cache.get("r", &[1; 32], 10).is_none());
        cache.put("r", &[1; 32], &minted("t", 10_000), 10);
        assert!(cache.get("r", &[1; 32], 11).is_some());
    }
}
