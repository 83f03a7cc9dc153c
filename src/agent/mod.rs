//! The agent: a process of the same binary that holds vault private keys for a while
//! and decrypts entries on request, so the keys never leave it (`docs/AGENT.md`).
//!
//! Three ways to run it, one [`Server`]:
//! - **background** (started by `unlock`, after git credential-cache and rbw): it
//!   detaches (`setsid`), closes every inherited descriptor, binds its socket, prints
//!   one ready line, and exits when it holds no key (or holds none 30 s after start);
//! - **foreground** (`agent --foreground`, for a service manager): no fork, one log
//!   line per event on stderr, and it never exits by itself — only on SIGTERM, SIGINT,
//!   SIGHUP or `quit`;
//! - **exec** (`exec -- CMD`, in `commands::exec`): one key for one command's life.
//!
//! Every mode makes itself non-dumpable, locks its memory against swap when the limit
//! allows, serves one request per connection on a single thread with one deadline per
//! request, answers only peers of its own uid (`SO_PEERCRED`), and sleeps exactly until
//! the next key's deadline. Keys are forgotten at their idle deadline (moved on by
//! every decrypt) or their absolute one, whichever comes first; [`VaultKey`](crate::vault::crypto::VaultKey) zeroes on
//! drop.
//!
//! A foreground agent started with a systemd credential also serves one vault with no
//! key held at all: it reopens that vault from the credential at each decrypt
//! ([`crate::agent::credential`]).
//!
//! Each socket's rules are its [`policy::Policy`]: the owner's socket, and the forward
//! sockets of [`forward`] (`forward create`), which admit root and a named uid too and
//! serve only `forward_get`/`forward_list`; `Server::serve_ready` serves one
//! connection per socket per wake-up, the owner's first. Every secret handed out is
//! one line of the access log ([`access_log`]). Tokens minted from sealed sources are
//! cached beside the held keys ([`tokens`]); their mints run on threads of their own,
//! which wake the loop when they end.
pub mod access_log;
pub mod client;
pub mod credential;
pub mod forward;
pub mod forward_client;
pub mod handover;
pub mod policy;
pub mod proto;
mod server;
pub mod socket;
pub mod tokens;

pub use proto::{DEFAULT_IDLE, DEFAULT_TIMEOUT, MAX_TIMEOUT, MIN_TIMEOUT};
pub use server::Server;
use server::now;
pub use socket::BoundSocket;

use std::fs;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::agent::credential::{CredentialVault, credential_name};
use crate::agent::proto::{AgentMode, PROTOCOL_VERSION};
use crate::agent::socket::MAX_SLEEP;
use crate::error::{Error, Result};

/// An agent that received no key this long after starting exits (background only).
const STARTUP_GRACE: Duration = Duration::from_secs(30);
/// With RLIMIT_MEMLOCK below this, locking all future memory could make a large
/// request fail to allocate and kill the agent; then nothing is locked (and `status`
/// says so).
const MLOCK_FUTURE_MIN_LIMIT: u64 = 256 << 20;

/// Makes this process non-dumpable (no core dumps, no same-uid ptrace or
/// `/proc/PID/mem`) and locks its memory against swap when RLIMIT_MEMLOCK leaves room.
/// Returns whether memory is locked.
pub fn harden() -> bool {
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    // Locking future memory too is only safe with room under RLIMIT_MEMLOCK (8 MiB by
    // default for users): past it, allocations fail and the agent would die. ONFAULT
    // locks pages as they are touched, not whole mappings.
    use rustix::mm::MlockAllFlags;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Memlock).current;
    limit.is_none_or(|l| l >= MLOCK_FUTURE_MIN_LIMIT)
        && rustix::mm::mlockall(
            MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT,
        )
        .is_ok()
}

/// A self-pipe that becomes readable on each of `signals`.
pub fn signal_pipe(signals: &[i32]) -> Result<UnixStream> {
    let (rx, tx) =
        UnixStream::pair().map_err(|e| Error::AgentStart(format!("signal pipe: {e}")))?;
    for &sig in signals {
        let tx = tx
            .try_clone()
            .map_err(|e| Error::AgentStart(format!("signal pipe: {e}")))?;
        signal_hook::low_level::pipe::register(sig, tx)
            .map_err(|e| Error::AgentStart(format!("signal handler: {e}")))?;
    }
    Ok(rx)
}

const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
];

/// Runs the background agent on `socket` (the hidden `agent --socket` that `unlock`
/// starts). Returns when it exits.
pub fn run(socket: &Path) -> Result<()> {
    // Before anything is opened: nothing inherited stays open (Docker's stdout pipe
    // among the candidates), and we leave the caller's session and terminal.
    crate::sys::close_inherited_fds();
    let _ = rustix::process::setsid();
    let memory_locked = harden();
    let signals = signal_pipe(&STOP_SIGNALS)?;
    // `unlock` checked that no live agent answers here, so a file left is stale.
    let bound = BoundSocket::bind(socket)?;

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

    let mut server = Server::new(AgentMode::Background, memory_locked);
    if let Some(dir) = socket.parent() {
        server.open_forwards_in(dir);
    }
    let started = now();
    let mut had_keys = false;
    loop {
        server.expire();
        let now = now();
        had_keys |= server.holds_keys();
        if server.quit || (!server.holds_keys() && (had_keys || now >= started + STARTUP_GRACE)) {
            break;
        }
        let next = server.next_deadline().unwrap_or(started + STARTUP_GRACE);
        match server.wait(&bound.listener, &signals, next.saturating_sub(now)) {
            Ok(false) => {
                server.serve_ready(&bound.listener);
            }
            Ok(true) | Err(_) => break,
        }
    }
    server.clear();
    drop(bound);
    Ok(())
}

/// `agent --foreground`: the agent for a service manager, on `socket` (this user's).
/// `claim` makes sure no other agent serves there and returns a guard that keeps
/// `unlock` from starting one until the socket is bound
/// (`client::Agent::claim_for_foreground`). No fork, no start-up grace, no exit
/// when the last key goes; SIGTERM, SIGINT or SIGHUP wipe the keys, remove the socket
/// and return `Ok`.
///
/// `credential`: the vault to serve from `$CREDENTIALS_DIRECTORY/lockbox-identity`
/// ([`CredentialVault::at_start`]); an error there (no `HOME` to find the vault by) is
/// logged and the agent starts without it.
pub fn run_foreground<G>(
    socket: &Path,
    claim: impl FnOnce() -> Result<G>,
    credential: Option<Result<CredentialVault>>,
) -> Result<()> {
    let mut server = Server::new(AgentMode::Foreground, harden());
    let signals = signal_pipe(&STOP_SIGNALS)?;
    let bound = {
        let _claimed = claim()?;
        BoundSocket::bind(socket)?
    };
    // Only once the socket is ours: what is left under forwards/ is a dead agent's.
    if let Some(dir) = socket.parent() {
        server.open_forwards_in(dir);
    }
    server.log(&format!(
        "started on {} (pid {}, protocol {PROTOCOL_VERSION}, memory locked: {})",
        crate::messages::sanitize(&socket.display().to_string()),
        std::process::id(),
        server.memory_locked
    ));
    match credential {
        Some(Ok(vault)) => server.serve_from_credential(vault),
        Some(Err(e)) => server.log(&format!(
            "the systemd credential {} is set, but no vault to serve with it: {}",
            credential_name(),
            e.message()
        )),
        None => {}
    }
    loop {
        server.expire();
        if server.quit {
            break;
        }
        let wait = server
            .next_deadline()
            .map_or(MAX_SLEEP, |d| d.saturating_sub(now()));
        match server.wait(&bound.listener, &signals, wait) {
            Ok(false) => {
                server.serve_ready(&bound.listener);
            }
            Ok(true) => {
                server.log("stopping on a signal; wiping every key");
                break;
            }
            Err(e) => {
                server.clear();
                return Err(e);
            }
        }
    }
    server.clear();
    drop(bound);
    server.log("stopped");
    Ok(())
}
