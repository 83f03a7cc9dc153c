//! The client side of the agent protocol: `get` asks the agent to decrypt, `unlock`
//! starts it and hands it a key, `lock` and `status` query it.
//!
//! `get` never starts an agent and never waits for one: no directory or no socket is
//! [`Error::Locked`] at once. Which agent: this uid's ([`Agent::for_user`]), except
//! under `exec`, whose private socket arrives in `LOCKBOX_AGENT_SOCKET`
//! ([`Agent::for_requests`]). Every connection checks the directory and the peer's uid
//! before a byte is sent.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use age::secrecy::SecretString;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::agent::proto::{
    AgentError, AgentMode, CredentialStatus, HeldVault, PROTOCOL_VERSION, Request, RequestFrame,
    Response, SecretText, TokenStatus,
};
use crate::agent::socket::{self, Deadline, PeerTrouble, receive_frame, send_frame};
use crate::error::{Error, Result};
use crate::vault::crypto::VaultKey;
use crate::vault::crypto::{EntryOpener, MacDomain, MintedCredential, SourceRequest};

/// How long a client waits for the agent's answer, request and answer together.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// `get` warns on stderr when the key has less than this left.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(5 * 60);
/// How long `unlock` waits for a new agent's ready line.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection target: the agent's socket.
#[derive(Debug, Clone)]
pub struct Agent {
    socket: PathBuf,
}

impl Agent {
    /// The agent of this user (`socket::socket_path`): what `unlock`, `lock`
    /// and `agent --foreground` talk to.
    pub fn for_user() -> Self {
        Agent {
            socket: socket::socket_path(),
        }
    }

    /// The agent that answers requests here: `exec`'s private socket when
    /// `LOCKBOX_AGENT_SOCKET` names one, else this user's.
    pub fn for_requests(settings: &crate::config::Settings) -> Self {
        match &settings.agent_socket {
            Some(s) => Agent { socket: s.clone() },
            None => Self::for_user(),
        }
    }

    /// The agent at `socket`.
    pub fn at(socket: PathBuf) -> Self {
        Agent { socket }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The agent directory (the socket's).
    pub fn dir(&self) -> &Path {
        self.socket.parent().unwrap_or(Path::new("/"))
    }

    /// Connects, or `Ok(None)` when no agent listens (no directory, no socket, or a
    /// stale socket). An unsafe directory is an error, not "no agent". With the
    /// stream comes the pid of the process listening (0 when unknown).
    fn connect(&self) -> Result<Option<(UnixStream, u32)>> {
        if !socket::check_agent_dir(self.dir(), false)? {
            return Ok(None);
        }
        let stream = match UnixStream::connect(&self.socket) {
            Ok(s) => s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(Error::io("connect to the agent at", &self.socket, e)),
        };
        // The agent must be ours too: never hand a ciphertext or a key to a socket
        // another user put there.
        let cred = rustix::net::sockopt::socket_peercred(stream.as_fd())
            .map_err(|e| Error::AgentProtocol(format!("peer credentials: {e}")))?;
        if cred.uid != rustix::process::getuid() {
            return Err(Error::AgentUnsafeDir {
                path: self.socket.clone(),
                reason: "the process listening there belongs to another user".into(),
            });
        }
        let pid = cred.pid.as_raw_nonzero().get() as u32;
        Ok(Some((stream, pid)))
    }

    /// Sends one request; `Ok(None)` when no agent is running.
    pub fn request(&self, request: Request) -> Result<Option<Response>> {
        self.request_as(PROTOCOL_VERSION, request)
    }

    fn request_as(&self, v: u32, request: Request) -> Result<Option<Response>> {
        self.request_within(v, request, IO_TIMEOUT)
    }

    /// [`Agent::request_as`], waiting up to `limit` for the answer (`mint` waits
    /// for a mint: [`crate::agent::tokens::CLIENT_DEADLINE`]).
    fn request_within(
        &self,
        v: u32,
        request: Request,
        limit: Duration,
    ) -> Result<Option<Response>> {
        let frame = RequestFrame { v, request };
        // A connection closed or reset without an answer means the agent went away
        // while this request waited (`lock --all` or its last deadline ended it, it was
        // killed): asked once more on a new connection, a live agent answers and a
        // gone one is absent — no agent, so "locked", never a protocol error (issue 20
        // finding 9). An agent that stays silent is named, for `unlock` to replace.
        for _ in 0..2 {
            let Some((stream, pid)) = self.connect()? else {
                return Ok(None);
            };
            let silent = Error::AgentNotAnswering {
                pid,
                secs: limit.as_secs(),
            };
            let mut io = Deadline::new(&stream, limit);
            let answer = match send_frame(&mut io, &frame)? {
                Ok(()) => receive_frame(&mut io)?,
                Err(t) => Err(t),
            };
            match answer {
                Ok(bytes) => {
                    return serde_json::from_slice(&bytes)
                        .map(Some)
                        .map_err(|_| Error::AgentProtocol("unreadable answer".into()));
                }
                Err(PeerTrouble::Silent) => return Err(silent),
                Err(PeerTrouble::Gone) => {}
            }
        }
        Ok(None)
    }

    /// Whether an agent of this protocol version answers; one of another version is
    /// told to quit (every version obeys `quit`), and then counts as absent.
    pub fn ensure_compatible(&self) -> Result<bool> {
        match self.request(Request::Hello)? {
            None => Ok(false),
            Some(Response::Hello { .. }) => Ok(true),
            Some(Response::Error(AgentError::VersionMismatch { agent })) => {
                let _ = self.request_as(agent, Request::Quit);
                let _ = std::fs::remove_file(&self.socket);
                Ok(false)
            }
            Some(other) => Err(unexpected(&other)),
        }
    }

    /// Serializes `unlock`s: two at once would each start an agent, and the one whose
    /// socket was replaced would hold its key unreachable until its timeout.
    pub fn start_lock(&self) -> Result<crate::file::LockGuard> {
        socket::check_agent_dir(self.dir(), true)?;
        crate::file::lock_file(&self.dir().join("unlock.lock"), crate::file::LOCK_TIMEOUT)
    }

    /// Starts an agent (the caller checked none answers) and waits for its ready line.
    pub fn start(&self) -> Result<()> {
        socket::check_agent_dir(self.dir(), true)?;
        let exe = std::env::current_exe().map_err(|e| Error::AgentStart(e.to_string()))?;
        // Only stdin, stdout and stderr reach the agent, and none of them is the
        // caller's: the key goes over the socket afterwards, never argv or environment.
        crate::sys::cloexec_inherited_fds();
        let mut child = Command::new(exe)
            .arg("agent")
            .arg("--socket")
            .arg(&self.socket)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::AgentStart(e.to_string()))?;
        let Some(stdout) = child.stdout.take() else {
            return Err(Error::AgentStart("no pipe to the agent".into()));
        };
        let mut line = String::new();
        if wait_readable(&stdout, START_TIMEOUT) {
            // The ready line is "ok\n": read a few bytes at most, never an unbounded line.
            let _ = BufReader::new(stdout.take(16)).read_line(&mut line);
        }
        if line.trim() != "ok" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::AgentStart(
                "it did not report ready; check the socket directory".into(),
            ));
        }
        // The agent runs on, in its own session; it is reaped by init when we exit.
        Ok(())
    }

    /// Hands `key` to the agent: forgotten after `idle` unused, after `timeout` at the
    /// latest; `label` (the vault path) names it in `status` and logs.
    pub fn add_key(
        &self,
        key: &VaultKey,
        label: &str,
        idle: Duration,
        timeout: Duration,
    ) -> Result<()> {
        use age::secrecy::ExposeSecret;
        let secret = key.export_secret();
        let request = Request::AddKey {
            secret_key: SecretText::new(secret.expose_secret()),
            label: label.to_owned(),
            idle_secs: idle.as_secs(),
            timeout_secs: timeout.as_secs(),
        };
        match self.request(request)? {
            Some(Response::Ok) => Ok(()),
            None => Err(Error::AgentStart("the agent went away".into())),
            Some(other) => Err(unexpected(&other)),
        }
    }

    /// For `agent --foreground`: takes the `unlock` lock and fails when any agent
    /// already answers here; the guard keeps `unlock` from starting one meanwhile.
    pub fn claim_for_foreground(&self) -> Result<crate::file::LockGuard> {
        let guard = self.start_lock()?;
        if let Some(pid) = self.live_pid()? {
            return Err(Error::AgentStart(format!(
                "another lockbox agent (pid {pid}) already serves {}; stop it first",
                self.socket.display()
            )));
        }
        Ok(guard)
    }

    /// The pid of an agent that answers here (of any version; 0 when it does not say),
    /// or `None` when none does.
    pub fn live_pid(&self) -> Result<Option<u32>> {
        Ok(match self.request(Request::Hello)? {
            None => None,
            Some(Response::Hello { pid, .. }) => Some(pid),
            Some(_) => Some(0),
        })
    }

    /// What the agent holds, or `None` when no agent of this version answers.
    pub fn status_all(&self) -> Result<Option<AgentStatus>> {
        Ok(match self.request(Request::Status)? {
            Some(Response::Status {
                vaults,
                non_dumpable,
                memory_locked,
                pid,
                mode,
                credential,
                tokens,
            }) => Some(AgentStatus {
                vaults,
                non_dumpable,
                memory_locked,
                pid,
                mode,
                credential,
                tokens,
            }),
            _ => None,
        })
    }
}

/// What the agent says about one vault it holds (`status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Seconds until the agent forgets the key unless it is used.
    pub expires_in_secs: u64,
    /// The agent's process id.
    pub pid: u32,
    /// Whether the agent is non-dumpable.
    pub non_dumpable: bool,
    /// Whether the agent's memory is locked against swap.
    pub memory_locked: bool,
    /// Which kind of agent.
    pub mode: AgentMode,
    /// This vault's label and both deadlines.
    pub vault: HeldVault,
    /// Every vault the agent holds, this one included.
    pub all: Vec<HeldVault>,
    /// Whether the agent holds no key for it but reopens it from its systemd
    /// credential at every decrypt (then `vault`'s times are zero: there is no
    /// deadline).
    pub credential: bool,
}

/// What `lock` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// No agent was running.
    NoAgent,
    /// The agent forgot the key(s).
    Locked,
    /// An agent of another build was found and stopped, so every key is gone.
    StoppedOtherBuild,
    /// The agent forgot what it held, but it opens this vault (its label) from its
    /// systemd credential, which `lock` cannot take away.
    CredentialStays(String),
}

/// The agent requests commands make ("actions", in rbw's words): commands call these
/// and never build a [`Request`] themselves.
impl Agent {
    /// Whether the agent holds the key of the vault `public_key`, and for how long.
    /// `Ok(None)`: no agent, or it does not hold that key.
    pub fn status(&self, public_key: &str) -> Result<Option<Held>> {
        let Some(st) = self.status_all()? else {
            return Ok(None);
        };
        Ok(st
            .vault(public_key)
            .cloned()
            .map(|vault| st.held(vault, false)))
    }

    /// Whether the agent can decrypt for the vault `public_key`: it holds the key
    /// ([`Agent::status`]), or it opens that vault from its systemd credential and the
    /// credential opens it now. A credential that does not open it is
    /// [`Error::AgentCredential`]. Rotations use [`Agent::status`] instead: a vault
    /// served from the credential needs no key handed over.
    pub fn serves(&self, public_key: &str) -> Result<Option<Held>> {
        let Some(st) = self.status_all()? else {
            return Ok(None);
        };
        if let Some(vault) = st.vault(public_key).cloned() {
            return Ok(Some(st.held(vault, false)));
        }
        let Some(c) = st
            .credential
            .as_ref()
            .filter(|c| c.public_key.as_deref() == Some(public_key))
        else {
            return Ok(None);
        };
        if let Some(reason) = c.error {
            return Err(Error::AgentCredential { reason });
        }
        let vault = HeldVault {
            public_key: public_key.to_owned(),
            label: c.label.clone(),
            idle_secs: 0,
            idle_left_secs: 0,
            timeout_left_secs: 0,
        };
        Ok(Some(st.held(vault, true)))
    }

    /// Makes the agent forget the key of `public_key`, or every key with `None`.
    pub fn lock(&self, public_key: Option<&str>) -> Result<LockOutcome> {
        let request = Request::Lock {
            public_key: public_key.map(str::to_owned),
        };
        match self.request(request)? {
            None => Ok(LockOutcome::NoAgent),
            Some(Response::Locked {
                credential: Some(label),
                ..
            }) => Ok(LockOutcome::CredentialStays(label)),
            Some(Response::Locked { .. }) => Ok(LockOutcome::Locked),
            // An agent of another build: stop it (every version obeys `quit`).
            Some(Response::Error(AgentError::VersionMismatch { .. })) => {
                self.ensure_compatible()?;
                Ok(LockOutcome::StoppedOtherBuild)
            }
            Some(other) => Err(unexpected(&other)),
        }
    }

    /// [`Self::ensure_compatible`], and an agent that accepts a connection but does
    /// not answer (stopped, frozen, in a debugger) is ended (SIGKILL to the socket's
    /// peer, a process of this user) and counts as absent: `unlock` replaces it, as it
    /// replaces a stale socket or another version.
    fn replace_silent(&self) -> Result<bool> {
        match self.ensure_compatible() {
            Err(Error::AgentNotAnswering { pid, secs }) => {
                let own = std::process::id();
                if pid != own
                    && let Some(p) = rustix::process::Pid::from_raw(pid as i32)
                {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
                let _ = std::fs::remove_file(&self.socket);
                let _ = writeln!(
                    std::io::stderr(),
                    "{}",
                    crate::messages::agent_replaced(pid, secs)
                );
                Ok(false)
            }
            other => other,
        }
    }

    /// `unlock`: starts an agent unless a compatible one answers (serialized with other
    /// `unlock`s), then hands it `key` with its label and deadlines.
    pub fn unlock(
        &self,
        key: &VaultKey,
        label: &str,
        idle: Duration,
        timeout: Duration,
    ) -> Result<()> {
        let _serialized = self.start_lock()?;
        // A background agent whose last key just expired exits by itself; it may
        // answer `hello` and be gone before `add_key`, or reset a connection it had
        // queued. Then it is gone: try once more, with a fresh agent.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.replace_silent().and_then(|alive| {
                if !alive {
                    self.start()?;
                }
                self.add_key(key, label, idle, timeout)
            });
            match result {
                Err(Error::AgentStart(_) | Error::AgentProtocol(_)) if attempt < 2 => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }
}

/// The answer to `status`.
#[derive(Debug, Clone)]
pub struct AgentStatus {
    /// Every vault key held, sorted by label.
    pub vaults: Vec<HeldVault>,
    /// Whether the agent is non-dumpable.
    pub non_dumpable: bool,
    /// Whether its memory is locked against swap.
    pub memory_locked: bool,
    /// Its process id.
    pub pid: u32,
    /// Which kind of agent.
    pub mode: AgentMode,
    /// The vault it opens from its systemd credential, if any.
    pub credential: Option<CredentialStatus>,
    /// The tokens of sealed sources it caches (never the tokens themselves).
    pub tokens: Vec<TokenStatus>,
}

impl AgentStatus {
    /// The held vault with public key `public`.
    pub fn vault(&self, public: &str) -> Option<&HeldVault> {
        self.vaults.iter().find(|v| v.public_key == public)
    }

    fn held(&self, vault: HeldVault, credential: bool) -> Held {
        Held {
            expires_in_secs: vault.expires_in_secs(),
            pid: self.pid,
            non_dumpable: self.non_dumpable,
            memory_locked: self.memory_locked,
            mode: self.mode,
            vault,
            all: self.vaults.clone(),
            credential,
        }
    }
}

fn wait_readable(fd: &impl AsFd, timeout: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let ts = rustix::event::Timespec::try_from(timeout).unwrap_or(rustix::event::Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    });
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    matches!(poll(&mut fds, Some(&ts)), Ok(n) if n > 0)
}

fn unexpected(response: &Response) -> Error {
    let what = match response {
        Response::Error(e) => e.to_string(),
        _ => "an answer of the wrong kind".to_owned(),
    };
    Error::AgentProtocol(what)
}

/// The near-expiry warning (`docs/AGENT.md`): one stderr line when the agent forgets
/// the key in less than [`EXPIRY_WARNING`]. stdout stays exactly the protocol's; the
/// person reads stderr, which Docker passes through.
fn warn_key_expiry(expires_in_secs: Option<u64>, absolute: bool) {
    if let Some(left) = expires_in_secs.filter(|&s| s < EXPIRY_WARNING.as_secs()) {
        let _ = writeln!(
            std::io::stderr(),
            "{}",
            crate::messages::expiry_warning(
                &humantime::format_duration(Duration::from_secs(left)).to_string(),
                absolute
            )
        );
    }
}

/// Opens entries through the agent, for the vault with public key `public_key`.
pub struct AgentOpener {
    agent: Agent,
    public_key: String,
}

impl AgentOpener {
    /// An opener for the vault `public_key`, if the agent holds its key; otherwise
    /// [`Error::Locked`] (no agent, or an agent without this vault's key).
    pub fn connect(agent: &Agent, public_key: String) -> Result<Self> {
        let agent = agent.clone();
        // No separate status round trip: the decrypt answer says "not unlocked" itself.
        if !agent.socket.exists() {
            // Also checks the directory, so a planted socket is reported, not used.
            socket::check_agent_dir(agent.dir(), false)?;
            return Err(Error::Locked);
        }
        Ok(AgentOpener { agent, public_key })
    }
}

impl EntryOpener for AgentOpener {
    fn open_entry(&self, server: &str, username: &str, ciphertext: &[u8]) -> Result<SecretString> {
        let request = Request::Decrypt {
            public_key: self.public_key.clone(),
            server: server.to_owned(),
            username: username.to_owned(),
            ciphertext: B64.encode(ciphertext),
        };
        match self.agent.request(request)? {
            Some(Response::Secret {
                secret,
                expires_in_secs,
                absolute,
            }) => {
                warn_key_expiry(expires_in_secs, absolute);
                Ok(secret.into_secret())
            }
            None | Some(Response::Error(AgentError::NotUnlocked)) => Err(Error::Locked),
            // Never "locked" or not-found: the vault is served, and its unlock is broken.
            Some(Response::Error(AgentError::CredentialFailed { reason })) => {
                Err(Error::AgentCredential { reason })
            }
            Some(Response::Error(AgentError::DecryptFailed)) => {
                Err(Error::EntryTampered(server.to_owned()))
            }
            Some(other) => Err(unexpected(&other)),
        }
    }

    fn keyed_mac(&self, domain: MacDomain, transcript: &[u8]) -> Result<[u8; 32]> {
        let Some(name) = domain.wire_name() else {
            return Err(Error::AgentProtocol(
                "the agent computes no slots MAC".to_owned(),
            ));
        };
        let request = Request::KeyedMac {
            public_key: self.public_key.clone(),
            domain: name.to_owned(),
            transcript: B64.encode(transcript),
        };
        match self.agent.request(request)? {
            Some(Response::Mac { mac }) => B64
                .decode(mac.as_bytes())
                .ok()
                .and_then(|m| <[u8; 32]>::try_from(m.as_slice()).ok())
                .ok_or_else(|| Error::AgentProtocol("a MAC that is not 32 bytes".to_owned())),
            None | Some(Response::Error(AgentError::NotUnlocked)) => Err(Error::Locked),
            Some(Response::Error(AgentError::CredentialFailed { reason })) => {
                Err(Error::AgentCredential { reason })
            }
            // An agent of an older build of protocol 2 does not know the request.
            Some(Response::Error(AgentError::BadRequest)) => Err(Error::AgentProtocol(
                "the agent is from an older build that cannot do this; run 'docker-credential-lockbox unlock' again (it replaces the agent)".to_owned(),
            )),
            Some(other) => Err(unexpected(&other)),
        }
    }

    /// The agent's token for a source (`mint`): from its cache, or minted there
    /// while this request waits (at most [`crate::agent::tokens::CLIENT_DEADLINE`]).
    /// Always `Some`: the agent holds the key, so only it can open the source. No
    /// agent, or one without this vault's key, is [`Error::Locked`], as for a
    /// decrypt; an agent built before `mint` says to run `unlock` again.
    fn mint_source(&self, source: &SourceRequest<'_>) -> Option<Result<MintedCredential>> {
        let request = Request::Mint {
            public_key: self.public_key.clone(),
            server: source.server.to_owned(),
            username: source.username.to_owned(),
            sealed: B64.encode(source.sealed),
            kind: source.kind.to_owned(),
            params: source.params.clone(),
            mac: B64.encode(source.mac),
        };
        let limit = crate::agent::tokens::CLIENT_DEADLINE;
        let answer = match self.agent.request_within(PROTOCOL_VERSION, request, limit) {
            Ok(answer) => answer,
            Err(e) => return Some(Err(e)),
        };
        Some(match answer {
            Some(Response::Minted {
                username,
                secret,
                expires_at,
                key_expires_in_secs,
                key_absolute,
            }) => {
                warn_key_expiry(key_expires_in_secs, key_absolute);
                Ok(MintedCredential {
                    username,
                    secret: secret.into_secret(),
                    expires_at,
                })
            }
            // An agent built before `mint`: it cannot mint, and a source's secret
            // never leaves an agent, so only a new agent can answer.
            Some(Response::Error(AgentError::BadRequest | AgentError::Unsupported)) => Err(
                Error::AgentProtocol(crate::messages::AGENT_CANNOT_MINT.to_owned()),
            ),
            None | Some(Response::Error(AgentError::NotUnlocked)) => Err(Error::Locked),
            Some(Response::Error(AgentError::CredentialFailed { reason })) => {
                Err(Error::AgentCredential { reason })
            }
            Some(Response::Error(AgentError::SourceTampered)) => {
                Err(Error::SourceTampered(source.server.to_owned()))
            }
            Some(Response::Error(AgentError::MintFailed(e))) => Err(Error::Mint(Box::new(e))),
            // One line naming the source, as a failed mint: never not-found.
            Some(Response::Error(busy @ AgentError::MintBusy { .. })) => {
                Err(Error::Mint(Box::new(crate::error::MintError {
                    kind: source.kind.to_owned(),
                    registry: source.server.to_owned(),
                    endpoint: crate::messages::MINT_ENDPOINT_AGENT.to_owned(),
                    detail: busy.to_string(),
                })))
            }
            Some(Response::Error(AgentError::DecryptFailed)) => {
                Err(Error::EntryTampered(source.server.to_owned()))
            }
            Some(other) => Err(unexpected(&other)),
        })
    }
}

/// `status --json`'s list of every vault the agent holds.
pub fn vaults_json(vaults: &[HeldVault]) -> serde_json::Value {
    vaults
        .iter()
        .map(|v| {
            serde_json::json!({
                "label": v.label, "public_key": v.public_key, "idle_secs": v.idle_secs,
                "idle_left_secs": v.idle_left_secs, "timeout_left_secs": v.timeout_left_secs,
                "expires_in_secs": v.expires_in_secs(),
            })
        })
        .collect()
}

/// What `status` says of an agent that can decrypt for this vault: "holds the key
/// (pid N) for …", or that it opens it from its systemd credential.
pub fn serves_text(held: &Held) -> String {
    if held.credential {
        format!(
            "opens from the systemd credential (pid {}) at every get; 'lock' cannot lock it",
            held.pid
        )
    } else {
        format!(
            "holds the key (pid {}) {}",
            held.pid,
            held_times(held.mode, &held.vault)
        )
    }
}

/// "for 59m idle (at most 7h 59m)", or "while its command runs" for `exec`.
pub fn held_times(mode: AgentMode, held: &HeldVault) -> String {
    if mode == AgentMode::Exec {
        return "while its command runs".to_owned();
    }
    let f = |s: u64| humantime::format_duration(Duration::from_secs(s)).to_string();
    format!(
        "for {} unless used ({} at the latest)",
        f(held.expires_in_secs()),
        f(held.timeout_left_secs)
    )
}

/// `status`'s list of every vault the agent holds, one line each.
pub fn held_lines(status: &AgentStatus) -> String {
    let mut text = format!(
        "agent:      pid {}, holds {} vault key(s)\n",
        status.pid,
        status.vaults.len()
    );
    for v in &status.vaults {
        text.push_str(&format!("  {} {}\n", v.label, held_times(status.mode, v)));
    }
    if let Some(c) = &status.credential {
        let state = match c.error {
            None => {
                "opens from the systemd credential (no key held; 'lock' cannot lock it)".to_owned()
            }
            Some(why) => format!(
                "does not open from the systemd credential: {}",
                crate::messages::credential_failure(why.name())
            ),
        };
        text.push_str(&format!("  {} {state}\n", c.label));
    }
    text
}
