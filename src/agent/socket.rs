//! The agent's socket rules: where the socket lives and who may own its directory,
//! length-prefixed frames bounded by [`MAX_FRAME`], and one deadline per request
//! ([`Deadline`]). The wire types in the frames are `src/agent/proto.rs`'s.
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use zeroize::Zeroizing;

use crate::agent::proto::MAX_FRAME;
use crate::error::{Error, Result};

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

/// Why a frame could not be exchanged, when the peer is to blame rather than the
/// frame: a client tells "the agent went away" (so it is locked) from "the agent does
/// not answer" (stopped, frozen) from a real protocol error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerTrouble {
    /// The peer closed or reset the connection (it exited, or it was killed).
    Gone,
    /// The deadline passed with the peer still connected and silent.
    Silent,
}

fn trouble(e: &io::Error) -> Option<PeerTrouble> {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => Some(PeerTrouble::Gone),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Some(PeerTrouble::Silent),
        _ => None,
    }
}

/// Writes one frame. The buffer is wiped after sending (frames carry secrets).
pub fn write_frame<T: Serialize>(w: &mut impl Write, value: &T) -> Result<()> {
    send_frame(w, value)?.map_err(|t| Error::AgentProtocol(format!("write: {t:?}")))
}

/// [`write_frame`], telling a peer that went away or stays silent from other errors.
pub fn send_frame<T: Serialize>(
    w: &mut impl Write,
    value: &T,
) -> Result<std::result::Result<(), PeerTrouble>> {
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
    match w.write_all(&buf).and_then(|()| w.flush()) {
        Ok(()) => Ok(Ok(())),
        Err(e) => match trouble(&e) {
            Some(t) => Ok(Err(t)),
            None => Err(Error::AgentProtocol(format!("write: {e}"))),
        },
    }
}

/// Reads one frame (bounded by [`MAX_FRAME`]) into wiped memory.
pub fn read_frame(r: &mut impl Read) -> Result<Zeroizing<Vec<u8>>> {
    receive_frame(r)?.map_err(|t| Error::AgentProtocol(format!("read: {t:?}")))
}

/// [`read_frame`], telling a peer that went away or stays silent from other errors.
pub fn receive_frame(
    r: &mut impl Read,
) -> Result<std::result::Result<Zeroizing<Vec<u8>>, PeerTrouble>> {
    let failed = |e: io::Error| match trouble(&e) {
        Some(t) => Ok(Err(t)),
        None => Err(Error::AgentProtocol(format!("read: {e}"))),
    };
    let mut len = [0u8; 4];
    if let Err(e) = r.read_exact(&mut len) {
        return failed(e);
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(Error::AgentProtocol(format!(
            "frame of {len} bytes is over the limit"
        )));
    }
    let mut buf = Zeroizing::new(vec![0u8; len]);
    if let Err(e) = r.read_exact(&mut buf) {
        return failed(e);
    }
    Ok(Ok(buf))
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

/// The agent wakes at least this often, so a deadline passed while the machine was
/// suspended is noticed soon after it resumes (poll's timeout does not count suspend).
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

/// A bound socket that removes itself on drop, but only while the file at its path is
/// still the one it bound (an agent that was replaced never deletes its successor's).
pub struct BoundSocket {
    /// The listener, non-blocking.
    pub listener: UnixListener,
    path: std::path::PathBuf,
    ino: Option<u64>,
}

impl BoundSocket {
    /// Removes whatever is at `path` (the caller checked no live agent answers there),
    /// binds, and makes the socket 0600.
    pub fn bind(path: &Path) -> Result<Self> {
        let _ = fs::remove_file(path);
        let listener =
            UnixListener::bind(path).map_err(|e| Error::io("bind the agent socket", path, e))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("restrict", path, e))?;
        let ino = fs::symlink_metadata(path).map(|m| m.ino()).ok();
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("configure", path, e))?;
        Ok(BoundSocket {
            listener,
            path: path.to_owned(),
            ino,
        })
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        if self.ino.is_some() && fs::symlink_metadata(&self.path).map(|m| m.ino()).ok() == self.ino
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::proto::{
        AgentMode, HeldVault, PROTOCOL_VERSION, Request, RequestFrame, Response, SecretText,
    };
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

    proptest! {
        #[test]
        fn status_frame_roundtrip(idle in any::<u64>(), left in any::<u64>(), n in 0usize..20) {
            let mut buf = Vec::new();
            let vaults: Vec<HeldVault> = (0..n).map(|i| HeldVault {
                public_key: format!("age1{i}"), label: format!("/v/{i}\n\u{1b}"),
                idle_secs: idle, idle_left_secs: idle / 2, timeout_left_secs: left,
            }).collect();
            let resp = Response::Status { vaults: vaults.clone(), non_dumpable: true, memory_locked: false, pid: 7, mode: AgentMode::Foreground, credential: None, tokens: Vec::new() };
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
}
