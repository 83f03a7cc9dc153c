//! The agent's wire types and the timeout policy, shared by the agent and its clients
//! (`docs/AGENT.md` is the specification); where the socket lives and how frames
//! travel is `src/agent/socket.rs`.
//!
//! One request per connection: the client sends one frame, the agent answers one frame
//! and closes. A frame is a 4-byte big-endian length and that many bytes of JSON, at
//! most [`MAX_FRAME`]. Requests carry the protocol version `v`; an agent
//! answers a request of another version with [`AgentError::VersionMismatch`] (and obeys
//! `quit` from any version), so `unlock` can tell an agent from another build apart and
//! replace it. Errors are typed ([`AgentError`]), never bare strings.
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A wire type that lives in the error layer, so that `Error` can carry it without
/// naming the agent (`src/lib.rs`, floors).
pub use crate::error::CredentialFailure;

// The timeout policy: how long a key may be held, and `unlock`'s defaults.

/// Shortest a key may be held.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest a key may be held.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// `unlock`'s idle timeout unless told otherwise: rbw's default lock timeout. Longer
/// than gpg-agent's 10 min because a build asks only at its pulls and its push, and
/// one long step in between (a compile) must not lose the key before the push.
pub const DEFAULT_IDLE: &str = "1h";
/// `unlock`'s absolute timeout unless told otherwise: a working day of builds, after
/// gpg-agent's max-cache-ttl (2 h) stretched for a build server; a forgotten unlock
/// still does not keep the key overnight.
pub const DEFAULT_TIMEOUT: &str = "8h";
/// The protocol version. Bumped on any incompatible change to [`Request`]/[`Response`]
/// (2: idle and absolute deadlines, vault labels, status of every held vault, the
/// time left in every secret answer, `unsupported`).
pub const PROTOCOL_VERSION: u32 = 2;
/// Largest frame, bytes: a decrypt request carries one entry ciphertext (≤ ~1.1 MiB,
/// base64-encoded); a secret answer of 1 MiB of control characters escapes to 6 MiB.
pub const MAX_FRAME: usize = 8 << 20;

/// Secret text in a frame: a [`SecretString`] (wiped on drop, read only through
/// [`SecretText::expose_secret`]), and `Debug` never shows it, so a frame can be
/// debug-printed safely. On the wire it is a plain JSON string.
pub struct SecretText(SecretString);

impl SecretText {
    /// Wraps a copy of `text` (the caller wipes its own copy).
    pub fn new(text: &str) -> Self {
        SecretText(SecretString::from(text.to_owned()))
    }

    /// The text; every read is an `expose_secret` call, so grep finds it.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// The secret, to keep as one.
    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

impl Serialize for SecretText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose_secret())
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Into wiped memory first; `new` copies it at its exact length.
        let text = Zeroizing::new(String::deserialize(d)?);
        Ok(SecretText::new(&text))
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// A request, with the protocol version.
#[derive(Debug, Serialize, Deserialize)]
pub struct RequestFrame {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub v: u32,
    /// What is asked.
    pub request: Request,
}

/// Only the version, to answer a frame of another version.
#[derive(Deserialize)]
pub struct VersionProbe {
    /// The sender's protocol version.
    pub v: u32,
    /// The request, if it is one every version understands.
    #[serde(default)]
    pub request: Option<serde_json::Value>,
}

/// What a client asks of the agent ("actions", in rbw's words). Externally tagged, so
/// serde never buffers a secret in an intermediate, unwiped value.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Who are you? Answered with [`Response::Hello`].
    Hello,
    /// Hold this vault private key (`AGE-SECRET-KEY-1…`): forgotten after `idle_secs`
    /// without a decrypt, and after `timeout_secs` at the latest. Replaces any earlier
    /// key and deadlines for the same vault.
    AddKey {
        /// The vault's private key text.
        secret_key: SecretText,
        /// What to call the vault in `status` and logs (its path); never trusted.
        label: String,
        /// Seconds without use after which the key is forgotten.
        idle_secs: u64,
        /// Seconds after which the key is forgotten, used or not.
        timeout_secs: u64,
    },
    /// Decrypt one entry of the vault whose public key is `public_key`; a success
    /// extends that key's idle deadline.
    Decrypt {
        /// The vault's public key (`age1…`), naming which held key to use.
        public_key: String,
        /// The entry's server URL (bound into the ciphertext).
        server: String,
        /// The entry's username (bound into the ciphertext).
        username: String,
        /// The entry's age ciphertext, base64.
        ciphertext: String,
    },
    /// The MAC of `transcript` in `domain` (`"source"` or `"rotation"`), keyed from
    /// the vault key of `public_key` (`docs/FORMAT.md` "Keyed MACs"): how `source add`
    /// and `rotate` bind a definition to the vault while the agent holds the key. A
    /// compatible addition within protocol 2 (`docs/AGENT.md` "Versions").
    KeyedMac {
        /// The vault's public key (`age1…`), naming which held key to use.
        public_key: String,
        /// The MAC's domain, by its wire name.
        domain: String,
        /// The bytes to authenticate, base64.
        transcript: String,
    },
    /// Every held vault, with its deadlines, and the agent's protections.
    Status,
    /// Forget one vault's key, or every key when `public_key` is `None`.
    Lock {
        /// The vault's public key, or `None` for all.
        #[serde(default)]
        public_key: Option<String>,
    },
    /// Wipe every key and exit.
    Quit,
    /// Open a forward socket (`docs/AGENT.md` "Forwards"; a compatible addition
    /// within protocol 2): `get` and `list` of `registries` of one vault for peers of
    /// the owner's uid, root and `uid`, until `ttl_secs` from now at most. Owner's
    /// socket only.
    ForwardCreate {
        /// The forward's name: `[A-Za-z0-9_.-]`, 1 to 64 characters, not starting
        /// with a dot; also its directory's name.
        name: String,
        /// The registries it serves, normalized (`docker::server_url::normalize`).
        registries: Vec<String>,
        /// Seconds until it ends by itself (clamped like a key's timeout).
        ttl_secs: u64,
        /// A uid admitted besides the owner's and root.
        #[serde(default)]
        uid: Option<u32>,
        /// The vault file the forward reads its entries from.
        vault: String,
        /// That vault's public key, which the agent must hold (or serve).
        public_key: String,
        /// End the forward when the process that asked for it exits.
        #[serde(default)]
        tie_to_peer: bool,
        /// Whether the creator trusts this vault's key to run sources (its
        /// `sources::trust`, which the agent cannot read: it has no environment);
        /// without it the forward answers no source (a compatible addition within
        /// protocol 2, `false` when absent).
        #[serde(default)]
        sources_trusted: bool,
    },
    /// Every open forward (owner's socket only).
    Forwards,
    /// End a forward now (owner's socket only).
    ForwardRevoke {
        /// Its name.
        name: String,
    },
    /// On a forward socket: the credentials of `server`, if the forward grants its
    /// registry (answered `credentials`, else `not_found`).
    ForwardGet {
        /// The server URL, as the client asked for it.
        server: String,
    },
    /// On a forward socket: server URL → username of the entries it grants.
    ForwardList,
    /// The registry credential of a sealed source of the vault `public_key`: from the
    /// agent's token cache, or minted now (`docs/AGENT.md` "Minting"; a compatible
    /// addition within protocol 2). Everything the vault file holds of the source is
    /// sent; the agent verifies its MAC with the held key before it opens the secret.
    /// Owner's socket only.
    Mint {
        /// The vault's public key (`age1…`), naming which held key to use.
        public_key: String,
        /// The entry's server URL, exactly as stored.
        server: String,
        /// The entry's username.
        username: String,
        /// The sealed secret (the entry's age ciphertext), base64.
        sealed: String,
        /// The definition's kind.
        kind: String,
        /// Its parameters.
        params: std::collections::BTreeMap<String, String>,
        /// Its MAC, base64.
        mac: String,
    },
}

impl Request {
    /// Whether this request is for a forward socket (`forward_get`, `forward_list`).
    pub fn is_forward_side(&self) -> bool {
        matches!(self, Request::ForwardGet { .. } | Request::ForwardList)
    }
}

/// One open forward, as `forward_create` and `forwards` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardInfo {
    /// Its name.
    pub name: String,
    /// The registries it serves (normalized).
    pub registries: Vec<String>,
    /// Its socket's path (on the host).
    pub socket: String,
    /// Seconds until it ends.
    pub expires_in_secs: u64,
    /// The extra uid it admits, if any.
    #[serde(default)]
    pub uid: Option<u32>,
    /// The vault it serves (the path given at creation).
    pub vault: String,
    /// How many secrets it has handed out.
    pub gets: u64,
    /// Whether it ends with the process that created it.
    #[serde(default)]
    pub tied: bool,
}

/// One vault key the agent holds, as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldVault {
    /// The vault's public key.
    pub public_key: String,
    /// The label `unlock` gave (the vault path).
    pub label: String,
    /// The idle timeout, seconds.
    pub idle_secs: u64,
    /// Seconds until the key is forgotten unless used.
    pub idle_left_secs: u64,
    /// Seconds until the absolute deadline.
    pub timeout_left_secs: u64,
}

impl HeldVault {
    /// Seconds until the key is forgotten if nothing uses it.
    pub fn expires_in_secs(&self) -> u64 {
        self.idle_left_secs.min(self.timeout_left_secs)
    }
}

/// One token in the agent's cache, as `status` reports it (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStatus {
    /// The vault's public key.
    pub public_key: String,
    /// The source's server URL, as stored.
    pub server: String,
    /// When the agent minted it (Unix seconds).
    pub minted_at: u64,
    /// When it expires, as its issuer said (Unix seconds).
    pub expires_at: u64,
    /// When the agent mints the next one, ahead of its expiry (Unix seconds).
    pub refresh_at: u64,
    /// From when it is no longer served (Unix seconds).
    pub stale_at: u64,
}

/// Which kind of agent answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentMode {
    /// Started by `unlock`; exits when it holds no key.
    Background,
    /// `agent --foreground` under a service manager; exits only when stopped.
    Foreground,
    /// `exec`'s private server: one key for one command's life.
    Exec,
}

/// The agent's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::Hello`].
    Hello {
        /// The agent's process id.
        pid: u32,
        /// The agent's build (crate version).
        build: String,
        /// Which kind of agent.
        mode: AgentMode,
    },
    /// Done.
    Ok,
    /// A decrypted secret.
    Secret {
        /// The entry's secret.
        secret: SecretText,
        /// Seconds until the key is forgotten unless used again (`None` for `exec`,
        /// which holds it as long as its command runs, and for a vault opened from the
        /// agent's systemd credential, which has no deadline).
        expires_in_secs: Option<u64>,
        /// Whether that is the absolute deadline (unlock again to extend it) rather
        /// than the idle one (any use extends it).
        absolute: bool,
    },
    /// Answer to [`Request::KeyedMac`]: the 32-byte MAC, base64.
    Mac {
        /// The MAC, base64.
        mac: String,
    },
    /// Answer to [`Request::Status`].
    Status {
        /// Every vault key held.
        vaults: Vec<HeldVault>,
        /// Whether the agent is non-dumpable (no core dumps, no same-uid ptrace).
        non_dumpable: bool,
        /// Whether the agent's memory is locked against swap.
        memory_locked: bool,
        /// The agent's process id.
        pid: u32,
        /// Which kind of agent.
        mode: AgentMode,
        /// The vault a foreground agent reopens from its systemd credential at every
        /// decrypt (absent otherwise, and from agents built before it existed: a
        /// compatible addition within protocol 2, `docs/AGENT.md` "Versions").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<CredentialStatus>,
        /// The tokens of sealed sources the agent caches, sorted by server (absent
        /// when none, and from agents built before the cache: a compatible addition
        /// within protocol 2).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tokens: Vec<TokenStatus>,
    },
    /// Answer to [`Request::Lock`]: keys still held.
    Locked {
        /// Keys still held after the lock.
        remaining: usize,
        /// The label of the vault the lock asked for (or, for all, the one) that this
        /// agent still opens from its systemd credential: `lock` cannot lock that one.
        /// Absent otherwise (a compatible addition within protocol 2).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<String>,
    },
    /// Answer to [`Request::ForwardCreate`].
    Forward(Box<ForwardInfo>),
    /// Answer to [`Request::Forwards`].
    Forwards {
        /// Every open forward, sorted by name.
        forwards: Vec<ForwardInfo>,
    },
    /// Answer to [`Request::ForwardGet`].
    Credentials {
        /// The entry's username.
        username: String,
        /// The entry's secret.
        secret: SecretText,
    },
    /// Answer to [`Request::Mint`]: a registry credential minted from a source.
    Minted {
        /// The username the registry expects.
        username: String,
        /// The short-lived secret.
        secret: SecretText,
        /// When it expires (Unix seconds), when its issuer said.
        expires_at: Option<u64>,
        /// Seconds until the agent forgets the vault's key unless used again, as
        /// [`Response::Secret`]'s `expires_in_secs` (absent without a deadline).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_expires_in_secs: Option<u64>,
        /// Whether that is the key's absolute deadline, as [`Response::Secret`]'s
        /// `absolute` (absent when not).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        key_absolute: bool,
    },
    /// Answer to [`Request::ForwardList`]: server URL → username.
    Entries {
        /// The entries the forward grants.
        entries: std::collections::BTreeMap<String, String>,
    },
    /// A typed failure.
    Error(AgentError),
}

/// Failures the agent reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentError {
    /// The request's protocol version is not the agent's.
    #[error("{}", crate::messages::agent_error_version_mismatch(*agent))]
    VersionMismatch {
        /// The agent's version.
        agent: u32,
    },
    /// The agent holds no key for that vault.
    #[error("{}", crate::messages::AGENT_ERROR_NOT_UNLOCKED)]
    NotUnlocked,
    /// The entry did not decrypt or its binding did not match.
    #[error("{}", crate::messages::AGENT_ERROR_DECRYPT_FAILED)]
    DecryptFailed,
    /// The key sent with `add_key` is not a valid vault key.
    #[error("{}", crate::messages::AGENT_ERROR_BAD_KEY)]
    BadKey,
    /// The peer is not the agent's user.
    #[error("{}", crate::messages::AGENT_ERROR_FORBIDDEN)]
    Forbidden,
    /// The request could not be parsed.
    #[error("{}", crate::messages::AGENT_ERROR_BAD_REQUEST)]
    BadRequest,
    /// This agent does not do that (`exec`'s server takes no `add_key`).
    #[error("{}", crate::messages::AGENT_ERROR_UNSUPPORTED)]
    Unsupported,
    /// The peer's uid is not one the forward admits; `uid` is the uid the agent saw
    /// (the host's, whatever the container calls it). Sent on forward sockets only: a
    /// compatible addition within protocol 2 (an older agent sends `forbidden`).
    #[error("{}", crate::messages::agent_error_peer_refused(*uid))]
    PeerRefused {
        /// The peer's uid as the agent saw it (`SO_PEERCRED`).
        uid: u32,
    },
    /// A forward grants no entry for that server (a compatible addition within
    /// protocol 2, sent on forward sockets only).
    #[error("{}", crate::messages::NOT_FOUND)]
    NotFound,
    /// The agent has [`crate::agent::forward::MAX_FORWARDS`] forwards open already (a
    /// compatible addition within protocol 2; older agents send `bad_request`).
    #[error("{}", crate::messages::agent_error_too_many_forwards(*max))]
    TooManyForwards {
        /// The most forwards the agent keeps open.
        max: u32,
    },
    /// The agent could not open the forward's socket (its directory, the bind, a path
    /// too long for a socket, watching its creator); a compatible addition within
    /// protocol 2.
    #[error("{}", crate::messages::agent_error_forward_socket(reason))]
    ForwardSocket {
        /// What failed, for the person (no secret: paths and system errors).
        reason: String,
    },
    /// No forward of that name.
    #[error("{}", crate::messages::AGENT_ERROR_NO_SUCH_FORWARD)]
    NoSuchForward,
    /// A forward of that name is already open.
    #[error("{}", crate::messages::AGENT_ERROR_FORWARD_EXISTS)]
    ForwardExists,
    /// The forward ended (revoked, locked, past its TTL) while the request waited.
    #[error("{}", crate::messages::AGENT_ERROR_FORWARD_ENDED)]
    ForwardEnded,
    /// The forward's vault file could not be read, or is now another vault.
    #[error("{}", crate::messages::AGENT_ERROR_VAULT_UNREADABLE)]
    VaultUnreadable,
    /// A source's definition fails its MAC with the held key: planted or altered; its
    /// secret was not opened and nothing minted (`mint`, `forward_get`; a compatible
    /// addition within protocol 2).
    #[error("{}", crate::messages::AGENT_ERROR_SOURCE_TAMPERED)]
    SourceTampered,
    /// The source's mint failed: the same error the mint gave, rebuilt by the client
    /// as one line (a compatible addition within protocol 2).
    #[error("{}", crate::messages::mint_failed(&.0.kind, &.0.registry, &.0.endpoint, &.0.detail))]
    MintFailed(crate::error::MintError),
    /// A forward's source whose vault key its creator did not trust to run sources
    /// (a compatible addition within protocol 2).
    #[error("{}", crate::messages::FORWARD_SOURCE_UNTRUSTED)]
    SourceUntrusted,
    /// The agent already runs its most mints, or holds its most requests waiting for
    /// one (a compatible addition within protocol 2).
    #[error("{}", crate::messages::agent_error_mint_busy(*mints, *waiting))]
    MintBusy {
        /// The most mints it runs at once.
        mints: u32,
        /// The most requests it keeps waiting for mints.
        waiting: u32,
    },
    /// The request is for the vault this agent serves from its systemd credential, and
    /// the credential did not open it now (a compatible addition within protocol 2).
    #[error("{}", crate::messages::agent_error_credential_failed(&format!("{reason:?}")))]
    CredentialFailed {
        /// Why; the agent's log has the details.
        reason: CredentialFailure,
    },
}

/// The vault a foreground agent serves from its systemd credential, as `status` reports
/// it: the agent tried the credential when asked (no Argon2id, no network: a file read,
/// one X25519 unwrap), so this is the state now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialStatus {
    /// The vault's path (from the agent's own `LOCKBOX_VAULT`, `DOCKER_CONFIG`, `HOME`).
    pub label: String,
    /// The vault's public key as read now; `None` when the file could not be read.
    #[serde(default)]
    pub public_key: Option<String>,
    /// `None` when the credential opens the vault now; else why not.
    #[serde(default)]
    pub error: Option<CredentialFailure>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credential fields are compatible additions within protocol 2: frames of an
    /// agent without them still parse, and the new ones parse as documented.
    #[test]
    fn credential_fields_are_compatible_additions() {
        let old: Response = serde_json::from_str(
            r#"{"status":{"vaults":[],"non_dumpable":true,"memory_locked":false,"pid":1,"mode":"foreground"}}"#,
        )
        .unwrap();
        assert!(matches!(
            old,
            Response::Status {
                credential: None,
                ..
            }
        ));
        let old: Response = serde_json::from_str(r#"{"locked":{"remaining":0}}"#).unwrap();
        assert!(matches!(
            old,
            Response::Locked {
                credential: None,
                ..
            }
        ));
        let new: Response = serde_json::from_str(
            r#"{"status":{"vaults":[],"non_dumpable":true,"memory_locked":false,"pid":1,"mode":"foreground","credential":{"label":"/v","public_key":"age1x","error":"no_matching_slot"}}}"#,
        )
        .unwrap();
        let Response::Status {
            credential: Some(c),
            ..
        } = new
        else {
            panic!("no credential")
        };
        assert_eq!(c.error, Some(CredentialFailure::NoMatchingSlot));
        let e = serde_json::to_string(&Response::Error(AgentError::CredentialFailed {
            reason: CredentialFailure::Missing,
        }))
        .unwrap();
        assert_eq!(e, r#"{"error":{"credential_failed":{"reason":"missing"}}}"#);
        // Not sent when there is none, so older builds see the frames they know.
        let locked = serde_json::to_string(&Response::Locked {
            remaining: 0,
            credential: None,
        })
        .unwrap();
        assert_eq!(locked, r#"{"locked":{"remaining":0}}"#);
        // A reason a later build adds is read as `other`, not as an unreadable answer.
        let later: Response = serde_json::from_str(
            r#"{"error":{"credential_failed":{"reason":"sealed_to_another_tpm"}}}"#,
        )
        .unwrap();
        assert!(matches!(
            later,
            Response::Error(AgentError::CredentialFailed {
                reason: CredentialFailure::Other
            })
        ));
    }

    /// The token cache's frames, as docs/AGENT.md shows them; a status without
    /// `tokens` (an agent built before the cache) still parses.
    #[test]
    fn mint_frames_are_compatible_additions() {
        let request: RequestFrame = serde_json::from_str(
            r#"{"v":2,"request":{"mint":{"public_key":"age1x","server":"reg.example","username":"AWS","sealed":"c2VhbGVk","kind":"exec","params":{"command":"[\"/bin/true\"]"},"mac":"bWFj"}}}"#,
        )
        .unwrap();
        assert!(matches!(request.request, Request::Mint { .. }));
        let minted = Response::Minted {
            username: "AWS".into(),
            secret: SecretText::new("tok"),
            expires_at: Some(1_893_456_000),
            key_expires_in_secs: None,
            key_absolute: false,
        };
        assert_eq!(
            serde_json::to_string(&minted).unwrap(),
            r#"{"minted":{"username":"AWS","secret":"tok","expires_at":1893456000}}"#
        );
        let failed = Response::Error(AgentError::MintFailed(crate::error::MintError {
            kind: "exec".into(),
            registry: "reg.example".into(),
            endpoint: "/bin/sh".into(),
            detail: "exit status 3".into(),
        }));
        assert_eq!(
            serde_json::to_string(&failed).unwrap(),
            r#"{"error":{"mint_failed":{"kind":"exec","registry":"reg.example","endpoint":"/bin/sh","detail":"exit status 3"}}}"#
        );
        let tampered = serde_json::to_string(&Response::Error(AgentError::SourceTampered));
        assert_eq!(tampered.unwrap(), r#"{"error":"source_tampered"}"#);
        let status = Response::Status {
            vaults: vec![],
            non_dumpable: true,
            memory_locked: false,
            pid: 1,
            mode: AgentMode::Background,
            credential: None,
            tokens: vec![],
        };
        let text = serde_json::to_string(&status).unwrap();
        assert!(!text.contains("tokens"), "{text}");
        let old: Response = serde_json::from_str(&text).unwrap();
        assert!(matches!(old, Response::Status { tokens, .. } if tokens.is_empty()));
    }
}
