//! The agent: a background process of the same binary that holds vault private keys
//! for a while and decrypts entries on request, so the keys never leave it
//! (`docs/AGENT.md`).
//!
//! Lifecycle, after git credential-cache and rbw: `unlock` starts it (never `get`); it
//! detaches (`setsid`), closes every inherited descriptor, makes itself non-dumpable,
//! locks its memory against swap, binds its socket, prints one ready line on stdout and
//! points stdin/stdout at `/dev/null`. It serves one request per connection on a single
//! thread, answers only peers of its own uid (`SO_PEERCRED`), sleeps exactly until the
//! next key's deadline, and exits when it holds no key, on `quit`, or on
//! SIGTERM/SIGINT/SIGHUP — wiping the keys ([`VaultKey`] zeroes on drop) and removing
//! its socket.
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustix::event::{PollFd, PollFlags, poll};

use crate::agent_proto::{
    AgentError, PROTOCOL_VERSION, Request, RequestFrame, Response, SecretText, VersionProbe,
    read_frame, write_frame,
};
use crate::crypto::VaultKey;
use crate::error::{Error, Result};

/// Shortest a key may be held.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest a key may be held.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// An agent that received no key this long after starting exits.
const STARTUP_GRACE: Duration = Duration::from_secs(30);
/// The agent wakes at least this often, so a deadline passed while the machine was
/// suspended is noticed soon after it resumes (poll's timeout does not count suspend).
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// With RLIMIT_MEMLOCK below this, locking all future memory could make a large
/// request fail to allocate and kill the agent; then nothing is locked (and `status`
/// says so).
const MLOCK_FUTURE_MIN_LIMIT: u64 = 256 << 20;
/// How long one client may take to send its request.
const CLIENT_IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Time since boot, suspend included (CLOCK_BOOTTIME): a key's timeout counts the
/// hours a laptop spent asleep.
fn now() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

struct Held {
    key: VaultKey,
    deadline: Duration,
}

struct State {
    keys: HashMap<String, Held>,
    memory_locked: bool,
    quit: bool,
}

/// Runs the agent on `socket` (the hidden `agent` subcommand). Returns when it exits.
pub fn run(socket: &Path) -> Result<()> {
    // Before anything is opened: nothing inherited stays open (Docker's stdout pipe
    // among the candidates), and we leave the caller's session and terminal.
    crate::sys::close_inherited_fds();
    let _ = rustix::process::setsid();
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    // Keep keys out of swap. Locking future memory too is only safe with room under
    // RLIMIT_MEMLOCK (8 MiB by default for users): past it, allocations fail and the
    // agent would die. ONFAULT locks pages as they are touched, not whole mappings.
    use rustix::mm::MlockAllFlags;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Memlock).current;
    let memory_locked = limit.is_none_or(|l| l >= MLOCK_FUTURE_MIN_LIMIT)
        && rustix::mm::mlockall(
            MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT,
        )
        .is_ok();

    let (signal_rx, signal_tx) =
        UnixStream::pair().map_err(|e| Error::AgentStart(format!("signal pipe: {e}")))?;
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        let tx = signal_tx
            .try_clone()
            .map_err(|e| Error::AgentStart(format!("signal pipe: {e}")))?;
        signal_hook::low_level::pipe::register(sig, tx)
            .map_err(|e| Error::AgentStart(format!("signal handler: {e}")))?;
    }

    // `unlock` checked that no live agent answers here, so a file left is stale.
    let _ = fs::remove_file(socket);
    let listener =
        UnixListener::bind(socket).map_err(|e| Error::io("bind the agent socket", socket, e))?;
    fs::set_permissions(socket, fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("restrict", socket, e))?;
    let bound_ino = fs::symlink_metadata(socket).map(|m| m.ino()).ok();
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("configure", socket, e))?;

    // The ready line, then let go of the caller's pipes.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "ok").and_then(|()| stdout.flush());
    if let Ok(null) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }

    let mut state = State {
        keys: HashMap::new(),
        memory_locked,
        quit: false,
    };
    let started = now();
    let mut had_keys = false;
    loop {
        let now = now();
        state.keys.retain(|_, h| h.deadline > now);
        had_keys |= !state.keys.is_empty();
        if state.quit || (state.keys.is_empty() && (had_keys || now >= started + STARTUP_GRACE)) {
            break;
        }
        let next = state
            .keys
            .values()
            .map(|h| h.deadline)
            .min()
            .unwrap_or(started + STARTUP_GRACE);
        let wait = next.saturating_sub(now).min(MAX_SLEEP);
        let timeout = rustix::event::Timespec::try_from(wait).unwrap_or(rustix::event::Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        let mut fds = [
            PollFd::new(&listener, PollFlags::IN),
            PollFd::new(&signal_rx, PollFlags::IN),
        ];
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
        if !fds[1].revents().is_empty() {
            break;
        }
        if fds[0].revents().contains(PollFlags::IN) {
            // Bounded: the listener is non-blocking, so this drains what is queued.
            while let Ok((conn, _)) = listener.accept() {
                serve_one(conn, &mut state);
                if state.quit {
                    break;
                }
            }
        }
    }
    // Keys are wiped as they drop; remove the socket only if it is still ours.
    state.keys.clear();
    if bound_ino.is_some() && fs::symlink_metadata(socket).map(|m| m.ino()).ok() == bound_ino {
        let _ = fs::remove_file(socket);
    }
    Ok(())
}

fn serve_one(mut conn: UnixStream, state: &mut State) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(CLIENT_IO_TIMEOUT));
    let _ = conn.set_write_timeout(Some(CLIENT_IO_TIMEOUT));
    let own_uid = rustix::process::getuid();
    let peer_ok = rustix::net::sockopt::socket_peercred(conn.as_fd())
        .map(|cred| cred.uid == own_uid)
        .unwrap_or(false);
    let response = if !peer_ok {
        Response::Error(AgentError::Forbidden)
    } else {
        match read_frame(&mut conn) {
            Err(_) => return,
            Ok(bytes) => handle(&bytes, state),
        }
    };
    let capacity = match &response {
        // Worst-case JSON escaping is 6 bytes per byte; reserve it all up front.
        Response::Secret { secret } => secret.0.len() * 6 + 64,
        _ => 512,
    };
    let _ = write_frame(&mut conn, &response, capacity);
}

fn handle(bytes: &[u8], state: &mut State) -> Response {
    let frame: RequestFrame = match serde_json::from_slice(bytes) {
        Ok(f) => f,
        Err(_) => {
            // Another version's frame: obey `quit`, report our version otherwise.
            return match serde_json::from_slice::<VersionProbe>(bytes) {
                Ok(p) if p.v != PROTOCOL_VERSION => {
                    if p.request.as_ref().and_then(|r| r.as_str()) == Some("quit") {
                        state.quit = true;
                        Response::Ok
                    } else {
                        Response::Error(AgentError::VersionMismatch {
                            agent: PROTOCOL_VERSION,
                        })
                    }
                }
                _ => Response::Error(AgentError::BadRequest),
            };
        }
    };
    if frame.v != PROTOCOL_VERSION {
        if matches!(frame.request, Request::Quit) {
            state.quit = true;
            return Response::Ok;
        }
        return Response::Error(AgentError::VersionMismatch {
            agent: PROTOCOL_VERSION,
        });
    }
    match frame.request {
        Request::Hello => Response::Hello {
            pid: std::process::id(),
            build: env!("CARGO_PKG_VERSION").to_owned(),
        },
        Request::AddKey {
            secret_key,
            timeout_secs,
        } => {
            let Ok(key) = VaultKey::from_secret_text(&secret_key.0) else {
                return Response::Error(AgentError::BadKey);
            };
            let timeout = Duration::from_secs(timeout_secs).clamp(MIN_TIMEOUT, MAX_TIMEOUT);
            state.keys.insert(
                key.public().to_string(),
                Held {
                    key,
                    deadline: now() + timeout,
                },
            );
            Response::Ok
        }
        Request::Decrypt {
            public_key,
            server,
            username,
            ciphertext,
        } => {
            // A deadline may have passed while the machine slept: check it on use too.
            let Some(held) = state.keys.get(&public_key).filter(|h| h.deadline > now()) else {
                return Response::Error(AgentError::NotUnlocked);
            };
            let Ok(ciphertext) = B64.decode(ciphertext.as_bytes()) else {
                return Response::Error(AgentError::BadRequest);
            };
            match held.key.open_entry(&server, &username, &ciphertext) {
                Ok(secret) => Response::Secret {
                    secret: SecretText(secret),
                },
                Err(_) => Response::Error(AgentError::DecryptFailed),
            }
        }
        Request::Status { public_key } => {
            let held = state.keys.get(&public_key).filter(|h| h.deadline > now());
            Response::Status {
                unlocked: held.is_some(),
                expires_in_secs: held.map_or(0, |h| h.deadline.saturating_sub(now()).as_secs()),
                keys: state.keys.len(),
                // Asked of the kernel now, not remembered from start-up.
                non_dumpable: rustix::process::dumpable_behavior()
                    .is_ok_and(|d| d == rustix::process::DumpableBehavior::NotDumpable),
                memory_locked: state.memory_locked,
                pid: std::process::id(),
            }
        }
        Request::Lock { public_key } => {
            match public_key {
                Some(p) => {
                    state.keys.remove(&p);
                }
                None => state.keys.clear(),
            }
            Response::Locked {
                remaining: state.keys.len(),
            }
        }
        Request::Quit => {
            state.quit = true;
            Response::Ok
        }
    }
}
