//! The agent's wire protocol and socket location, shared by the agent and its clients
//! (`docs/AGENT.md` is the specification).
//!
//! One request per connection: the client sends one frame, the agent answers one frame
//! and closes. A frame is a 4-byte big-endian length and that many bytes of JSON, at
//! most [`MAX_FRAME`]. Requests carry the protocol version `v`; an agent
//! answers a request of another version with [`AgentError::VersionMismatch`] (and obeys
//! `quit` from any version), so `unlock` can tell an agent from another build apart and
//! replace it. Errors are typed ([`AgentError`]), never bare strings.
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use age::secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A wire type that lives in the error layer, so that `Error` can carry it without
/// naming the agent (`src/lib.rs`, floors).
pub use crate::error::CredentialFailure;
use crate::error::{Error, Result};

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
/// The socket's file name inside the agent directory.
pub const SOCKET_NAME: &str = "agent.sock";
/// The one override of the agent directory (tests, benchmarks, isolated setups).
pub const AGENT_DIR_VAR: &str = "LOCKBOX_AGENT_DIR";
/// The private socket `exec` passes to its command (the documented exception to "the
/// socket location never comes from the environment").
pub const AGENT_SOCKET_VAR: &str = crate::config::var::AGENT_SOCKET;
/// How long one request may take to arrive, and its answer to leave, in all: one
/// deadline per request, not per `read()`, so a trickling client cannot hold the
/// single-threaded agent (issue 15 item 8).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

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

/// A socket whose reads and writes all share one deadline: each call gets only the
/// time that is left, so a peer sending one byte at a time cannot stretch a request.
pub struct Deadline<'a> {
    stream: &'a UnixStream,
    until: Instant,
}

impl<'a> Deadline<'a> {
    /// `stream` with `limit` from now.
    pub fn new(stream: &'a UnixStream, limit: Duration) -> Self {
        Deadline {
            stream,
            until: Instant::now() + limit,
        }
    }

    fn left(&self) -> io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request deadline passed",
            ));
        }
        Ok(left)
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        (&*self.stream).read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        (&*self.stream).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts the bytes a serialization writes, without keeping them.
struct Counter(usize);

impl Write for Counter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes one frame. The buffer is wiped after sending (frames carry secrets).
pub fn write_frame<T: Serialize>(w: &mut impl Write, value: &T) -> Result<()> {
    // The frame's exact size, measured by serializing once into a counter: the buffer
    // is then reserved once, never reallocates, and so leaves no unwiped copy behind.
    // The owner of the buffer computes this, not each caller.
    let mut size = Counter(0);
    serde_json::to_writer(&mut size, value).map_err(|e| Error::AgentProtocol(e.to_string()))?;
    let mut buf = Zeroizing::new(Vec::with_capacity(4 + size.0));
    buf.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut *buf, value).map_err(|e| Error::AgentProtocol(e.to_string()))?;
    let len =
        u32::try_from(buf.len() - 4).map_err(|_| Error::AgentProtocol("frame too large".into()))?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    w.write_all(&buf)
        .and_then(|()| w.flush())
        .map_err(|e| Error::AgentProtocol(format!("write: {e}")))
}

/// Reads one frame (bounded by [`MAX_FRAME`]) into wiped memory.
pub fn read_frame(r: &mut impl Read) -> Result<Zeroizing<Vec<u8>>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(|e| Error::AgentProtocol(format!("read: {e}")))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(Error::AgentProtocol(format!(
            "frame of {len} bytes is over the limit"
        )));
    }
    let mut buf = Zeroizing::new(vec![0u8; len]);
    r.read_exact(&mut buf)
        .map_err(|e| Error::AgentProtocol(format!("read: {e}")))?;
    Ok(buf)
}

/// The directory holding the agent socket: `/tmp/lockbox-<uid>` (the real uid), or
/// `$LOCKBOX_AGENT_DIR` when set. A function of the uid, not of `XDG_RUNTIME_DIR` or
/// `TMPDIR`, so cron, runner services, `sudo -u`, `env -i` and a session that logged
/// out all find the agent a login unlocked (`docs/AGENT.md`, "Where it is").
pub fn agent_dir() -> PathBuf {
    match std::env::var_os(AGENT_DIR_VAR).filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => uid_dir(rustix::process::getuid().as_raw()),
    }
}

/// The agent directory of `uid` without an override.
pub fn uid_dir(uid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/lockbox-{uid}"))
}

/// The agent socket path.
pub fn socket_path() -> PathBuf {
    agent_dir().join(SOCKET_NAME)
}

/// Checks the agent directory: a real directory (not a symlink), owned by us, with no
/// group or other access. A directory that fails is refused, never silently fixed: it
/// may be someone else's trap. With `create`, a missing directory is made 0700.
/// Returns `Ok(false)` when it is missing and `create` is false.
pub fn check_agent_dir(dir: &Path, create: bool) -> Result<bool> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if !create {
                return Ok(false);
            }
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io("create the agent directory", dir, e))?;
            fs::symlink_metadata(dir).map_err(|e| Error::io("inspect", dir, e))?
        }
        Err(e) => return Err(Error::io("inspect", dir, e)),
    };
    let unsafe_dir = |reason: &str| Error::AgentUnsafeDir {
        path: dir.to_owned(),
        reason: reason.to_owned(),
    };
    if !meta.file_type().is_dir() {
        return Err(unsafe_dir("it is not a directory (a symlink?)"));
    }
    if meta.uid() != rustix::process::getuid().as_raw() {
        return Err(unsafe_dir("it is owned by another user"));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(unsafe_dir(
            "group or others have access (it must be mode 0700)",
        ));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_roundtrip() {
        let mut buf = Vec::new();
        let req = RequestFrame {
            v: PROTOCOL_VERSION,
            request: Request::AddKey {
                secret_key: SecretText::new("AGE-SECRET-KEY-1X"),
                label: "/v".into(),
                idle_secs: 3,
                timeout_secs: 5,
            },
        };
        assert!(!format!("{req:?}").contains("AGE-SECRET-KEY"), "{req:?}");
        let answer = Response::Secret {
            secret: SecretText::new("hunter2"),
            expires_in_secs: Some(9),
            absolute: false,
        };
        assert!(!format!("{answer:?}").contains("hunter2"), "{answer:?}");
        write_frame(&mut buf, &req).unwrap();
        let back: RequestFrame =
            serde_json::from_slice(&read_frame(&mut &buf[..]).unwrap()).unwrap();
        assert!(matches!(
            back.request,
            Request::AddKey {
                idle_secs: 3,
                timeout_secs: 5,
                ..
            }
        ));
    }

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

    #[test]
    fn oversized_frame_is_refused_before_allocating() {
        let mut bytes = u32::MAX.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        assert!(read_frame(&mut &bytes[..]).is_err());
        assert!(read_frame(&mut &[0u8, 0][..]).is_err());
    }

    #[test]
    fn loose_or_foreign_dirs_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("a");
        assert!(!check_agent_dir(&d, false).unwrap());
        assert!(check_agent_dir(&d, true).unwrap());
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            check_agent_dir(&d, false),
            Err(Error::AgentUnsafeDir { .. })
        ));
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        assert!(matches!(
            check_agent_dir(&link, false),
            Err(Error::AgentUnsafeDir { .. })
        ));
    }

    proptest! {
        #[test]
        fn status_frame_roundtrip(idle in any::<u64>(), left in any::<u64>(), n in 0usize..20) {
            let mut buf = Vec::new();
            let vaults: Vec<HeldVault> = (0..n).map(|i| HeldVault {
                public_key: format!("age1{i}"), label: format!("/v/{i}\n\u{1b}"),
                idle_secs: idle, idle_left_secs: idle / 2, timeout_left_secs: left,
            }).collect();
            let resp = Response::Status { vaults: vaults.clone(), non_dumpable: true, memory_locked: false, pid: 7, mode: AgentMode::Foreground, credential: None };
            write_frame(&mut buf, &resp).unwrap();
            let back: Response = serde_json::from_slice(&read_frame(&mut &buf[..]).unwrap()).unwrap();
            match back {
                Response::Status { vaults: v, mode, .. } => {
                    prop_assert_eq!(v, vaults);
                    prop_assert_eq!(mode, AgentMode::Foreground);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }

    #[test]
    fn a_trickling_peer_gets_one_deadline_in_all() {
        // Regression (issue 15 item 8): a byte every 300 ms never hits a per-read
        // timeout of 1 s, but the request as a whole must end at its deadline.
        let (mut client, server) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = client.write_all(&64u32.to_be_bytes());
            for _ in 0..40 {
                if client.write_all(b" ").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        let started = Instant::now();
        let mut r = Deadline::new(&server, Duration::from_secs(1));
        assert!(read_frame(&mut r).is_err());
        // Not a timed assertion of speed: 40 bytes at 300 ms would take 12 s, so
        // this only tells "cut at the deadline" from "read to the end".
        assert!(started.elapsed() < Duration::from_secs(10));
        drop(server);
        writer.join().unwrap();
    }
}
