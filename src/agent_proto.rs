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
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The protocol version. Bumped on any incompatible change to [`Request`]/[`Response`].
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest frame, bytes: a decrypt request carries one entry ciphertext (≤ ~1.1 MiB,
/// base64-encoded); a secret answer of 1 MiB of control characters escapes to 6 MiB.
pub const MAX_FRAME: usize = 8 << 20;
/// The socket's file name inside the agent directory.
pub const SOCKET_NAME: &str = "agent.sock";

/// Secret text in a frame: wiped on drop, and `Debug` never shows it (so a frame can be
/// debug-printed safely). On the wire it is a plain JSON string.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(pub Zeroizing<String>);

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
    /// Hold this vault private key (`AGE-SECRET-KEY-1…`) for `timeout_secs`, replacing
    /// any earlier deadline for the same vault.
    AddKey {
        /// The vault's private key text.
        secret_key: SecretText,
        /// Seconds to hold it.
        timeout_secs: u64,
    },
    /// Decrypt one entry of the vault whose public key is `public_key`.
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
    /// Is this vault unlocked, and for how long?
    Status {
        /// The vault's public key.
        public_key: String,
    },
    /// Forget one vault's key, or every key when `public_key` is `None`.
    Lock {
        /// The vault's public key, or `None` for all.
        public_key: Option<String>,
    },
    /// Wipe every key and exit.
    Quit,
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
    },
    /// Done.
    Ok,
    /// A decrypted secret.
    Secret {
        /// The entry's secret.
        secret: SecretText,
    },
    /// Answer to [`Request::Status`].
    Status {
        /// Whether this vault's key is held.
        unlocked: bool,
        /// Seconds until it is forgotten (0 when locked).
        expires_in_secs: u64,
        /// How many vault keys the agent holds.
        keys: usize,
        /// Whether the agent is non-dumpable (no core dumps, no same-uid ptrace).
        non_dumpable: bool,
        /// Whether the agent's memory is locked against swap.
        memory_locked: bool,
        /// The agent's process id.
        pid: u32,
    },
    /// Answer to [`Request::Lock`]: keys still held.
    Locked {
        /// Keys still held after the lock.
        remaining: usize,
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
    #[error("agent speaks protocol version {agent}")]
    VersionMismatch {
        /// The agent's version.
        agent: u32,
    },
    /// The agent holds no key for that vault.
    #[error("not unlocked")]
    NotUnlocked,
    /// The entry did not decrypt or its binding did not match.
    #[error("entry does not open")]
    DecryptFailed,
    /// The key sent with `add_key` is not a valid vault key.
    #[error("bad key")]
    BadKey,
    /// The peer is not the agent's user.
    #[error("forbidden")]
    Forbidden,
    /// The request could not be parsed.
    #[error("bad request")]
    BadRequest,
}

/// Writes one frame. The buffer is wiped after sending (frames carry secrets).
pub fn write_frame<T: Serialize>(w: &mut impl Write, value: &T, capacity: usize) -> Result<()> {
    // Reserve up front so the buffer never reallocates and leaves an unwiped copy.
    let mut buf = Zeroizing::new(Vec::with_capacity(capacity.max(256)));
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

/// The directory holding the agent socket: `$XDG_RUNTIME_DIR/lockbox`, else
/// `/tmp/lockbox-<uid>`.
pub fn agent_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("lockbox"),
        None => PathBuf::from(format!(
            "/tmp/lockbox-{}",
            rustix::process::getuid().as_raw()
        )),
    }
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
                secret_key: SecretText(Zeroizing::new("AGE-SECRET-KEY-1X".into())),
                timeout_secs: 5,
            },
        };
        assert!(!format!("{req:?}").contains("AGE-SECRET-KEY"), "{req:?}");
        let answer = Response::Secret {
            secret: SecretText(Zeroizing::new("hunter2".into())),
        };
        assert!(!format!("{answer:?}").contains("hunter2"), "{answer:?}");
        write_frame(&mut buf, &req, 0).unwrap();
        let back: RequestFrame =
            serde_json::from_slice(&read_frame(&mut &buf[..]).unwrap()).unwrap();
        assert!(matches!(
            back.request,
            Request::AddKey {
                timeout_secs: 5,
                ..
            }
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
        fn status_frame_roundtrip(unlocked in any::<bool>(), secs in any::<u64>(), keys in 0usize..100) {
            let mut buf = Vec::new();
            let resp = Response::Status { unlocked, expires_in_secs: secs, keys, non_dumpable: true, memory_locked: false, pid: 7 };
            write_frame(&mut buf, &resp, 0).unwrap();
            let back: Response = serde_json::from_slice(&read_frame(&mut &buf[..]).unwrap()).unwrap();
            match back {
                Response::Status { unlocked: u, expires_in_secs: s, keys: k, .. } => {
                    prop_assert_eq!((u, s, k), (unlocked, secs, keys));
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
