//! The agent's server: the keys it holds with their deadlines, the vault it serves
//! from a systemd credential, and one method per request (`hello`, `add_key`,
//! `decrypt`, `status`, `lock`, `quit`), each asked of the socket's
//! [`Policy`] first. The process around it (start, signals, the poll loop) is
//! `src/agent/mod.rs`.
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::agent::access_log::{AccessLog, Peer, Record, exe_of};
use crate::agent::credential::{CredentialVault, Reopen, credential_name};
use crate::agent::forward::{Forwards, Spec};
use crate::agent::policy::Policy;
use crate::agent::proto::{
    AgentError, AgentMode, CredentialFailure, HeldVault, PROTOCOL_VERSION, Request, RequestFrame,
    Response, SecretText, VersionProbe,
};
use crate::agent::proto::{MAX_TIMEOUT, MIN_TIMEOUT};
use crate::agent::socket::{Deadline, REQUEST_DEADLINE, read_frame, write_frame};
use crate::agent::tokens::{Answer, Done, Token, TokenKey, Tokens, Waiter, unix_now};
use crate::error::Error;
use crate::vault::crypto::{EntryOpener, MacDomain, VaultKey};
use crate::vault::source::SourceDef;
use age::secrecy::{ExposeSecret, SecretString};

/// Longest label kept (a vault path); anything longer is cut.
const MAX_LABEL: usize = 4096;
/// `exec`'s key has no deadline: it lives as long as the command.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// How long a forward's peer has to send its request: its client writes it at once,
/// so this only bounds what an idle connection costs the agent's one loop.
pub const FORWARD_DEADLINE: Duration = Duration::from_millis(250);

/// Time since boot, suspend included (CLOCK_BOOTTIME): a key's timeout counts the
/// hours a laptop spent asleep.
pub(super) fn now() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

struct Held {
    key: VaultKey,
    label: String,
    idle: Duration,
    idle_deadline: Duration,
    deadline: Duration,
}

impl Held {
    fn until(&self) -> Duration {
        self.idle_deadline.min(self.deadline)
    }
}

/// The keys and the request handling, shared by every mode.
pub struct Server {
    keys: HashMap<String, Held>,
    /// Whether memory is locked against swap (`harden`).
    pub(super) memory_locked: bool,
    /// Set by `quit` (or a signal): the loop ends.
    pub(super) quit: bool,
    mode: AgentMode,
    /// The vault reopened from the systemd credential (foreground only).
    credential: Option<CredentialVault>,
    /// The last outcome of a reopen, so the log says each change once, not every `get`.
    credential_state: Option<Option<CredentialFailure>>,
    /// The forward sockets (none for `exec`).
    forwards: Forwards,
    /// Where every secret handed out is recorded.
    access: Option<AccessLog>,
    /// The forward whose connection was served last ([`Server::serve_ready`]).
    last_forward: Option<String>,
    /// Tokens minted from sealed sources, and the mints running (`agent/tokens.rs`).
    tokens: Tokens,
}

/// What a request gets: an answer now, or a wait for the mint of a source (the
/// connection is parked and answered when the mint ends).
pub(super) enum Reply {
    /// The answer.
    Now(Response),
    /// Park the connection until the mint of this source ends, then answer so.
    Wait(TokenKey, Answer),
}

#[cfg(test)]
impl Reply {
    /// The answer of a reply that does not wait.
    fn answer(self) -> Response {
        match self {
            Reply::Now(r) => r,
            Reply::Wait(..) => panic!("the request waits for a mint"),
        }
    }
}

/// A source entry as a request names it: everything the vault file holds of it.
struct SourceAsk<'a> {
    public_key: &'a str,
    server: &'a str,
    username: &'a str,
    sealed: &'a [u8],
    def: &'a SourceDef,
}

/// The keys this agent serves (held or from the credential) as an [`EntryOpener`],
/// for a forward's `get`; the agent's refusal of a failed open is kept.
struct ServedOpener<'a> {
    server: RefCell<&'a mut Server>,
    public_key: &'a str,
    refusal: RefCell<Option<AgentError>>,
}

impl ServedOpener<'_> {
    fn refused(&self, e: AgentError) -> Error {
        let err = Error::AgentProtocol(e.to_string());
        *self.refusal.borrow_mut() = Some(e);
        err
    }
}

impl EntryOpener for ServedOpener<'_> {
    fn open_entry(
        &self,
        server: &str,
        username: &str,
        ciphertext: &[u8],
    ) -> crate::error::Result<SecretString> {
        let answer =
            self.server
                .borrow_mut()
                .decrypt_bytes(self.public_key, server, username, ciphertext);
        match answer {
            Response::Secret { secret, .. } => Ok(secret.into_secret()),
            Response::Error(e) => Err(self.refused(e)),
            _ => Err(self.refused(AgentError::DecryptFailed)),
        }
    }

    fn keyed_mac(&self, domain: MacDomain, transcript: &[u8]) -> crate::error::Result<[u8; 32]> {
        let mac = self
            .server
            .borrow_mut()
            .keyed_mac_bytes(self.public_key, domain, transcript);
        mac.map_err(|e| self.refused(e))
    }
}

impl Server {
    /// An empty server of `mode`; `memory_locked` is what [`super::harden`] returned.
    pub fn new(mode: AgentMode, memory_locked: bool) -> Self {
        Server {
            keys: HashMap::new(),
            memory_locked,
            quit: false,
            mode,
            credential: None,
            credential_state: None,
            forwards: Forwards::default(),
            access: None,
            last_forward: None,
            tokens: Tokens::default(),
        }
    }

    /// Records every secret handed out in `<agent_dir>/access.log` from now on.
    pub fn log_access_in(&mut self, agent_dir: &std::path::Path) {
        self.access = Some(AccessLog::in_dir(agent_dir));
    }

    /// Lets this agent open forwards under `<agent_dir>/forwards` (removing what a
    /// killed agent left there), and records accesses there too.
    pub fn open_forwards_in(&mut self, agent_dir: &std::path::Path) {
        self.forwards = Forwards::in_agent_dir(agent_dir);
        self.log_access_in(agent_dir);
    }

    /// Serves `vault` from its credential from now on: tries it once and logs the
    /// outcome in one line (a credential that fails is no reason not to start: keys
    /// `unlock` hands over are served all the same, and the next decrypt tries again).
    pub fn serve_from_credential(&mut self, vault: CredentialVault) {
        let (status, detail) = vault.check();
        self.credential = Some(vault);
        self.note_credential(status.error, detail.as_ref());
    }

    /// Logs a change in whether the credential opens its vault.
    fn note_credential(&mut self, now: Option<CredentialFailure>, detail: Option<&Error>) {
        if self.credential_state == Some(now) {
            return;
        }
        self.credential_state = Some(now);
        let Some(c) = &self.credential else { return };
        let label = crate::messages::sanitize(&c.label());
        match (now, detail) {
            (None, _) => self.log(&format!(
                "serves {label} from the systemd credential {} (reopened at every decrypt, nothing cached)",
                credential_name()
            )),
            (Some(_), Some(e)) => self.log(&format!(
                "the systemd credential does not open {label}: {}; get for it fails until it does (unlocked keys are still served)",
                e.message()
            )),
            (Some(why), None) => self.log(&format!(
                "the systemd credential does not open {label} ({why:?})"
            )),
        }
    }

    /// Decrypts an entry of the credential's vault, if that is the vault asked for.
    fn decrypt_from_credential(
        &mut self,
        public_key: &str,
        server: &str,
        username: &str,
        ciphertext: &[u8],
    ) -> Response {
        let Some(c) = &self.credential else {
            return Response::Error(AgentError::NotUnlocked);
        };
        match c.open_for(public_key) {
            Reopen::NotThisVault => Response::Error(AgentError::NotUnlocked),
            Reopen::Opened(key) => {
                self.note_credential(None, None);
                // The key lives for this one entry and is wiped as it drops here.
                match key.open_entry(server, username, ciphertext) {
                    Ok(secret) => Response::Secret {
                        secret: SecretText::new(&secret),
                        expires_in_secs: None,
                        absolute: false,
                    },
                    Err(_) => Response::Error(AgentError::DecryptFailed),
                }
            }
            Reopen::Failed(reason, e) => {
                self.note_credential(Some(reason), Some(&e));
                Response::Error(AgentError::CredentialFailed { reason })
            }
        }
    }

    /// The label of the credential's vault when `public_key` names it (`None`: any)
    /// and the credential opens it now: what a `lock` cannot lock. A credential that
    /// opens nothing leaves nothing open, so `lock` need not say it stays.
    fn credential_label_for(&self, public_key: Option<&str>) -> Option<String> {
        let c = self.credential.as_ref()?;
        let (status, _) = c.check();
        if status.error.is_some() {
            return None;
        }
        match public_key {
            None => Some(c.label()),
            Some(p) => (status.public_key.as_deref() == Some(p)).then(|| c.label()),
        }
    }

    /// Holds `key` under its own public key, replacing any earlier key and deadlines.
    pub fn hold(&mut self, key: VaultKey, label: &str, idle: Duration, timeout: Duration) {
        let now = now();
        let deadline = now + timeout;
        let label: String = label.chars().take(MAX_LABEL).collect();
        self.log(&format!(
            "unlocked {} for {} idle, {} at most",
            crate::messages::sanitize(&label),
            humantime::format_duration(idle.min(timeout)),
            humantime::format_duration(timeout)
        ));
        self.keys.insert(
            key.public().to_string(),
            Held {
                key,
                label,
                idle,
                idle_deadline: (now + idle).min(deadline),
                deadline,
            },
        );
    }

    /// Holds `key` with no deadline (`exec`).
    pub fn hold_forever(&mut self, key: VaultKey, label: &str) {
        self.hold(key, label, FOREVER, FOREVER);
    }

    /// Whether a `quit` was received.
    pub fn quit_requested(&self) -> bool {
        self.quit
    }

    /// Forgets every key (they are wiped as they drop) and ends every forward.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.forwards.clear();
        self.drop_tokens(None);
    }

    /// Forgets the tokens of the vault `public_key` (of every vault with `None`) and
    /// tells the requests waiting for their mints that the vault is locked.
    fn drop_tokens(&mut self, public_key: Option<&str>) {
        for w in self.tokens.drop_vault(public_key) {
            answer_parked(&w.conn, &Response::Error(AgentError::NotUnlocked));
        }
    }

    /// Drops every key whose deadline has passed.
    /// Whether any key is held.
    pub(super) fn holds_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    pub(super) fn expire(&mut self) {
        let now = now();
        let expired: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, h)| h.until() <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for public in expired {
            self.drop_tokens(Some(&public));
            if let Some(h) = self.keys.remove(&public) {
                let why = if h.deadline <= h.idle_deadline {
                    "its timeout"
                } else {
                    "idle"
                };
                self.log(&format!(
                    "expired {} ({why})",
                    crate::messages::sanitize(&h.label)
                ));
            }
        }
        for (name, why) in self.forwards.expire(now) {
            self.log(&format!("forward {name} ended ({why})"));
        }
        self.tokens.prune(unix_now());
    }

    pub(super) fn next_deadline(&self) -> Option<Duration> {
        [
            self.keys.values().map(Held::until).min(),
            self.forwards.next_deadline(),
            self.tokens.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Sleeps until a connection on the owner's socket or a forward's, a forward's
    /// creator exits, a signal, or `wait` passes; `Ok(true)` when a signal came.
    pub(super) fn wait(
        &self,
        owner: &UnixListener,
        signals: &UnixStream,
        wait: Duration,
    ) -> crate::error::Result<bool> {
        use rustix::event::{PollFd, PollFlags, poll};
        let wait = wait.min(crate::agent::socket::MAX_SLEEP);
        let timeout = rustix::event::Timespec::try_from(wait).unwrap_or(rustix::event::Timespec {
            tv_sec: crate::agent::socket::MAX_SLEEP.as_secs() as i64,
            tv_nsec: 0,
        });
        let mut fds = vec![
            PollFd::new(signals, PollFlags::IN),
            PollFd::new(owner, PollFlags::IN),
        ];
        fds.extend(self.forwards.poll_fds());
        fds.extend(self.mint_poll_fds());
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::AgentStart(format!("poll: {e}"))),
        }
        Ok(!fds[0].revents().is_empty())
    }

    /// Serves what one wake-up found queued: at most one connection per listener —
    /// the owner's first, then each forward's in turn, starting after the one served
    /// last — with the owner's socket checked again and the deadlines applied between
    /// two forward connections. A peer that floods a forward socket with connections
    /// (idle ones cost [`FORWARD_DEADLINE`] each) so never holds the loop: the owner's
    /// `get`, `forward revoke` and `lock` get through between any two of them.
    pub(super) fn serve_ready(&mut self, owner: &UnixListener) {
        self.finish_mints();
        self.serve_next(owner, &Policy::Owner);
        let listeners = self.forwards.listeners_after(self.last_forward.as_deref());
        for (name, listener, policy) in listeners {
            if self.quit {
                return;
            }
            self.expire();
            // Revoked or ended by a request served in this round.
            if !self.forwards.is_open(&name) {
                continue;
            }
            if self.serve_next(&listener, &policy) {
                self.last_forward = Some(name);
                if !self.quit {
                    self.serve_next(owner, &Policy::Owner);
                }
            }
        }
    }

    /// Accepts and serves one queued connection of `listener` (non-blocking);
    /// whether there was one.
    fn serve_next(&mut self, listener: &UnixListener, policy: &Policy) -> bool {
        match listener.accept() {
            Ok((conn, _)) => {
                self.serve_one(conn, policy);
                true
            }
            Err(_) => false,
        }
    }

    /// One log line on stderr, in the foreground mode only (elsewhere stderr is
    /// `/dev/null` or the command's). Never a secret: labels and counts only.
    pub(super) fn log(&self, line: &str) {
        if self.mode == AgentMode::Foreground {
            let _ = writeln!(std::io::stderr(), "lockbox-agent: {line}");
        }
    }

    /// Accepts and serves every queued connection of the owner's socket (the listener
    /// is non-blocking): `exec`'s agent, which has no forwards.
    pub fn accept_all(&mut self, listener: &UnixListener) {
        // Bounded by what is queued: accept fails with EAGAIN once it is drained.
        while self.serve_next(listener, &Policy::Owner) {
            if self.quit {
                break;
            }
        }
    }

    fn serve_one(&mut self, conn: UnixStream, policy: &Policy) {
        let _ = conn.set_nonblocking(false);
        // One deadline for the whole request and its answer (issue 15 item 8); a
        // forward's peer (a container) gets a short one: its client sends at once.
        let limit = match policy {
            Policy::Forward { .. } => FORWARD_DEADLINE,
            _ => REQUEST_DEADLINE,
        };
        let mut io = Deadline::new(&conn, limit);
        let own_uid = rustix::process::getuid();
        let peer = rustix::net::sockopt::socket_peercred(conn.as_fd()).ok();
        let who = Peer {
            pid: peer.map(|c| c.pid.as_raw_nonzero().get() as u32),
            uid: peer.map(|c| c.uid.as_raw()),
        };
        let response = match peer {
            Some(cred) if policy.admits(Some(cred.uid), own_uid) => match read_frame(&mut io) {
                Err(_) => return,
                // Its client gave up (it timed out while this agent was stopped or
                // busy, and said so): a `lock` or `quit` it already reported as
                // failed must not happen now.
                Ok(_) if hung_up(&conn) => {
                    self.log("dropped a request whose client had hung up");
                    return;
                }
                Ok(bytes) => match self.handle_reply(&bytes, policy, who) {
                    Reply::Now(response) => response,
                    Reply::Wait(key, answer) => {
                        let waiter = Waiter {
                            conn,
                            peer: who,
                            answer,
                        };
                        match self.tokens.park(&key, waiter) {
                            Ok(()) => return,
                            Err(w) => {
                                answer_parked(&w.conn, &Response::Error(Tokens::busy()));
                                return;
                            }
                        }
                    }
                },
            },
            _ => {
                self.log(&format!(
                    "refused a peer of uid {}",
                    peer.map_or_else(|| "unknown".to_owned(), |c| c.uid.as_raw().to_string())
                ));
                match (policy, peer) {
                    // A container's process is told the uid the host sees it as,
                    // the one `--uid` takes.
                    (Policy::Forward { .. }, Some(c)) => Response::Error(AgentError::PeerRefused {
                        uid: c.uid.as_raw(),
                    }),
                    _ => Response::Error(AgentError::Forbidden),
                }
            }
        };
        match policy {
            // The answer gets its own short deadline: the request's may have gone on
            // reading the vault. It is small, so the socket's buffer takes it at once.
            Policy::Forward { .. } => {
                let _ = write_frame(&mut Deadline::new(&conn, FORWARD_DEADLINE), &response);
            }
            _ => {
                let _ = write_frame(&mut io, &response);
            }
        }
    }

    /// One request frame in, its answer out (a request that must wait for a mint is
    /// told it is busy: for callers with no connection to park).
    #[cfg(test)]
    fn handle(&mut self, bytes: &[u8], policy: &Policy, peer: Peer) -> Response {
        match self.handle_reply(bytes, policy, peer) {
            Reply::Now(response) => response,
            Reply::Wait(..) => Response::Error(Tokens::busy()),
        }
    }

    /// One request frame in, its answer (or a wait for a mint) out: the frame
    /// checked, then one method per request.
    fn handle_reply(&mut self, bytes: &[u8], policy: &Policy, peer: Peer) -> Reply {
        let request = match self.frame(bytes, policy) {
            Ok(request) => request,
            Err(answer) => return Reply::Now(answer),
        };
        if !policy.allows(&request) {
            return Reply::Now(Response::Error(AgentError::Forbidden));
        }
        // A deadline may have passed while the machine slept: check it on use too.
        self.expire();
        if let Policy::Forward { name, .. } = policy {
            // Ended (revoked, locked, its TTL) since this connection was queued.
            if !self.forwards.is_open(name) {
                return Reply::Now(Response::Error(AgentError::ForwardEnded));
            }
        }
        match request {
            Request::ForwardGet { server } => self.forward_get(policy, &server, peer),
            Request::Mint {
                public_key,
                server,
                username,
                sealed,
                kind,
                params,
                mac,
            } => {
                let (Ok(sealed), Some(mac)) = (
                    B64.decode(sealed.as_bytes()),
                    B64.decode(mac.as_bytes())
                        .ok()
                        .and_then(|m| <[u8; 32]>::try_from(m.as_slice()).ok()),
                ) else {
                    return Reply::Now(Response::Error(AgentError::BadRequest));
                };
                let def = SourceDef { kind, params, mac };
                let ask = SourceAsk {
                    public_key: &public_key,
                    server: &server,
                    username: &username,
                    sealed: &sealed,
                    def: &def,
                };
                let reply = self.source_token(&ask, Answer::Minted);
                if let Reply::Now(answer) = &reply {
                    self.record(answer, &public_key, &server, &self.socket_name(), peer);
                }
                reply
            }
            other => Reply::Now(self.handle_request(other, policy, peer)),
        }
    }

    /// The requests answered at once.
    fn handle_request(&mut self, request: Request, policy: &Policy, peer: Peer) -> Response {
        match request {
            Request::Hello => self.hello(),
            Request::AddKey { .. } if self.mode == AgentMode::Exec => {
                Response::Error(AgentError::Unsupported)
            }
            Request::AddKey {
                secret_key,
                label,
                idle_secs,
                timeout_secs,
            } => self.add_key(&secret_key, &label, idle_secs, timeout_secs),
            Request::Decrypt {
                public_key,
                server,
                username,
                ciphertext,
            } => {
                let answer = self.decrypt(&public_key, &server, &username, &ciphertext);
                self.record(&answer, &public_key, &server, &self.socket_name(), peer);
                answer
            }
            // A command under `exec` holds the key for its run only: it may not make a
            // source or rotation setting that would act for it after the run.
            Request::KeyedMac { .. } if self.mode == AgentMode::Exec => {
                Response::Error(AgentError::Unsupported)
            }
            Request::KeyedMac {
                public_key,
                domain,
                transcript,
            } => self.keyed_mac(&public_key, &domain, &transcript),
            Request::Status => self.status(),
            Request::Lock { public_key } => self.lock(public_key),
            Request::Quit => {
                self.quit_now();
                Response::Ok
            }
            Request::ForwardCreate {
                name,
                registries,
                ttl_secs,
                uid,
                vault,
                public_key,
                tie_to_peer,
                sources_trusted,
            } => self.forward_create(Spec {
                name,
                registries,
                ttl: Duration::from_secs(ttl_secs),
                uid,
                vault: vault.into(),
                public_key,
                tie_to: if tie_to_peer { peer.pid } else { None },
                sources_trusted,
            }),
            Request::Forwards => Response::Forwards {
                forwards: self.forwards.infos(now()),
            },
            Request::ForwardRevoke { name } => {
                if self.forwards.revoke(&name) {
                    self.log(&format!("forward {name} revoked"));
                    Response::Ok
                } else {
                    Response::Error(AgentError::NoSuchForward)
                }
            }
            Request::ForwardList => self.forward_list(policy),
            // Answered by `handle_reply`.
            Request::ForwardGet { .. } | Request::Mint { .. } => {
                Response::Error(AgentError::BadRequest)
            }
        }
    }

    /// What the access log calls the owner's socket in this mode.
    fn socket_name(&self) -> String {
        match self.mode {
            AgentMode::Exec => "exec".to_owned(),
            _ => "owner".to_owned(),
        }
    }

    /// The label of the vault of `public_key`: the one `unlock` gave, or the
    /// credential's.
    fn label_of(&self, public_key: &str) -> String {
        match (self.keys.get(public_key), &self.credential) {
            (Some(h), _) => h.label.clone(),
            (None, Some(c)) => c.label(),
            (None, None) => public_key.to_owned(),
        }
    }

    /// Records a secret handed out in the access log (and, foreground, on stderr):
    /// only when `answer` carries one, and never the secret.
    fn record(&self, answer: &Response, public_key: &str, server: &str, socket: &str, peer: Peer) {
        if !matches!(
            answer,
            Response::Secret { .. } | Response::Credentials { .. } | Response::Minted { .. }
        ) {
            return;
        }
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let record = Record {
            time,
            vault: self.label_of(public_key),
            registry: server.to_owned(),
            socket: socket.to_owned(),
            pid: peer.pid,
            uid: peer.uid,
            exe: peer.pid.and_then(exe_of),
        };
        let shown = |v: Option<u32>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
        self.log(&crate::messages::sanitize(&format!(
            "gave {} of {} to pid {} uid {} ({}) through {}",
            record.registry,
            record.vault,
            shown(record.pid),
            shown(record.uid),
            record.exe.as_deref().unwrap_or("executable unknown"),
            record.socket
        )));
        if let Some(Err(e)) = self.access.as_ref().map(|log| log.append(&record)) {
            self.log(&format!("could not write the access log: {e}"));
        }
    }

    /// `forward_create`: the vault's key must be held (or served from the credential).
    fn forward_create(&mut self, spec: Spec) -> Response {
        let served = self.keys.contains_key(&spec.public_key)
            || self
                .credential
                .as_ref()
                .is_some_and(|c| !matches!(c.open_for(&spec.public_key), Reopen::NotThisVault));
        if !served {
            return Response::Error(AgentError::NotUnlocked);
        }
        match self.forwards.create(spec, now()) {
            Ok(info) => {
                self.log(&crate::messages::sanitize(&format!(
                    "forward {} opened for {} ({} s)",
                    info.name,
                    info.registries.join(", "),
                    info.expires_in_secs
                )));
                Response::Forward(Box::new(info))
            }
            Err(e) => Response::Error(e),
        }
    }

    /// The forward's vault, read and parsed now (so a `store` on the host is seen at
    /// once), if it is still the vault the forward was made for.
    fn forward_vault(policy: &Policy) -> Result<(Vec<u8>, String), AgentError> {
        let Policy::Forward {
            vault, public_key, ..
        } = policy
        else {
            return Err(AgentError::Forbidden);
        };
        let bytes = match crate::file::VaultPath::new(vault.clone()).read_bytes() {
            Ok(Some(b)) => b,
            _ => return Err(AgentError::VaultUnreadable),
        };
        Ok((bytes, public_key.clone()))
    }

    /// `forward_get`: the owner's lookup, then the forward's registries. A source is
    /// answered with its minted token, from the cache or after its mint (the
    /// forward never sees the source's secret).
    fn forward_get(&mut self, policy: &Policy, server: &str, peer: Peer) -> Reply {
        let (bytes, public_key) = match Self::forward_vault(policy) {
            Ok(v) => v,
            Err(e) => return Reply::Now(Response::Error(e)),
        };
        let Policy::Forward { name, vault, .. } = policy else {
            return Reply::Now(Response::Error(AgentError::Forbidden));
        };
        let Ok(view) = crate::vault::View::parse(&bytes, vault) else {
            return Reply::Now(Response::Error(AgentError::VaultUnreadable));
        };
        if view.vault().public().to_string() != public_key {
            return Reply::Now(Response::Error(AgentError::VaultUnreadable));
        }
        let Some(entry) = view.lookup(server).filter(|e| policy.grants(e.server())) else {
            return Reply::Now(Response::Error(AgentError::NotFound));
        };
        if let Some(def) = entry.source() {
            // The creator's environment decided whether this vault may run sources.
            if !matches!(
                policy,
                Policy::Forward {
                    sources_trusted: true,
                    ..
                }
            ) {
                let answer = Response::Error(AgentError::SourceUntrusted);
                return Reply::Now(answer);
            }
            let sealed = entry.secret();
            let ask = SourceAsk {
                public_key: &public_key,
                server: entry.server(),
                username: entry.username(),
                sealed: &sealed,
                def,
            };
            let answer = Answer::Credentials {
                forward: name.clone(),
            };
            let reply = self.source_token(&ask, answer);
            if let Reply::Now(answer) = &reply {
                self.record_forward(answer, &public_key, entry.server(), name, peer);
            }
            return reply;
        }
        // Through `RawEntry::open`, as every reader opens an entry: an entry of
        // another kind is a branch there, never a ciphertext handed out raw here.
        let opener = ServedOpener {
            server: RefCell::new(self),
            public_key: &public_key,
            refusal: RefCell::new(None),
        };
        let answer = match entry.open(&opener) {
            Ok(secret) => Response::Credentials {
                username: entry.username().to_owned(),
                secret: SecretText::new(secret.expose_secret()),
            },
            Err(_) => Response::Error(
                opener
                    .refusal
                    .into_inner()
                    .unwrap_or(AgentError::DecryptFailed),
            ),
        };
        self.record_forward(&answer, &public_key, entry.server(), name, peer);
        Reply::Now(answer)
    }

    /// [`Server::record`] of a forward's answer, and its count of gets.
    fn record_forward(
        &mut self,
        answer: &Response,
        public_key: &str,
        server: &str,
        name: &str,
        peer: Peer,
    ) {
        self.record(answer, public_key, server, &format!("forward:{name}"), peer);
        if matches!(answer, Response::Credentials { .. }) {
            self.forwards.count_get(name);
        }
    }

    /// The registry credential of a source: its MAC verified with the vault's key
    /// first (a use of the key, like a decrypt), then the cached token, or a mint
    /// the request waits for (joining the one running, if any).
    fn source_token(&mut self, ask: &SourceAsk<'_>, how: Answer) -> Reply {
        let def = ask.def;
        let t = SourceDef::transcript(ask.server, ask.username, &def.kind, &def.params, ask.sealed);
        let mac = match self.keyed_mac_bytes(ask.public_key, MacDomain::Source, &t) {
            Ok(m) => m,
            Err(e) => return Reply::Now(Response::Error(e)),
        };
        if !crate::vault::crypto::macs_equal(&mac, &def.mac) {
            self.log(&crate::messages::sanitize(&format!(
                "refused the source for {}: it fails its MAC",
                ask.server
            )));
            return Reply::Now(Response::Error(AgentError::SourceTampered));
        }
        let key = TokenKey {
            public_key: ask.public_key.to_owned(),
            server: ask.server.to_owned(),
            mac: def.mac,
        };
        let now = unix_now();
        if let Some((token, refresh)) = self.tokens.lookup(&key, now) {
            if refresh && self.tokens.may_refresh(&key, now) {
                // Best effort: a refresh that cannot start now leaves the token
                // served until its stale point, and a later request tries again.
                let _ = self.start_mint(&key, ask);
            }
            return Reply::Now(token_response(&how, &token, self.key_left(ask.public_key)));
        }
        if !self.tokens.may_wait() {
            return Reply::Now(Response::Error(Tokens::busy()));
        }
        if !self.tokens.minting(&key)
            && let Err(e) = self.start_mint(&key, ask)
        {
            return Reply::Now(Response::Error(e));
        }
        Reply::Wait(key, how)
    }

    /// Seconds the held key of `public_key` has left unless used, and whether that is
    /// its absolute deadline; `None` with no deadline (`exec`, the credential's vault).
    fn key_left(&self, public_key: &str) -> (Option<u64>, bool) {
        match self.keys.get(public_key) {
            Some(held) if self.mode != AgentMode::Exec => (
                Some(held.until().saturating_sub(now()).as_secs()),
                held.deadline <= held.idle_deadline,
            ),
            _ => (None, false),
        }
    }

    /// Opens the source's sealed secret with the vault's key (held, or the
    /// credential's) and starts its mint. The secret goes only to the mint's thread.
    fn start_mint(&mut self, key: &TokenKey, ask: &SourceAsk<'_>) -> Result<(), AgentError> {
        let open = |k: &VaultKey| {
            k.open_source_secret(ask.server, ask.username, ask.sealed)
                .map(|plain| SecretString::from(plain.as_str().to_owned()))
                .map_err(|_| AgentError::DecryptFailed)
        };
        let secret = match self.keys.get(ask.public_key) {
            Some(held) => open(&held.key)?,
            None => match self.credential.as_ref().map(|c| c.open_for(ask.public_key)) {
                Some(Reopen::Opened(k)) => open(&k)?,
                Some(Reopen::Failed(reason, _)) => {
                    return Err(AgentError::CredentialFailed { reason });
                }
                Some(Reopen::NotThisVault) | None => return Err(AgentError::NotUnlocked),
            },
        };
        self.tokens.start(key, ask.def, secret, now())?;
        self.log(&crate::messages::sanitize(&format!(
            "minting for {} of {}",
            ask.server,
            self.label_of(ask.public_key)
        )));
        Ok(())
    }

    /// What a serve loop polls besides its sockets for the mints of sources: the
    /// wake-up of a mint's thread, and the hang-up of each request waiting for one.
    pub fn mint_poll_fds(&self) -> Vec<rustix::event::PollFd<'_>> {
        self.tokens.poll_fds()
    }

    /// Answers the requests whose mints ended (or were given up on), after dropping
    /// the parked connections whose clients hung up.
    pub fn finish_mints(&mut self) {
        self.tokens.drop_hung_up(hung_up);
        for done in self.tokens.finish(now(), unix_now()) {
            self.log_mint(&done);
            for w in done.waiters {
                let key = self.key_left(&done.key.public_key);
                let mut response = match &done.result {
                    Ok(token) => token_response(&w.answer, token, key),
                    Err(e) => Response::Error(e.clone()),
                };
                match &w.answer {
                    Answer::Minted => {
                        answer_parked(&w.conn, &response);
                        let socket = self.socket_name();
                        let key = &done.key;
                        self.record(&response, &key.public_key, &key.server, &socket, w.peer);
                    }
                    Answer::Credentials { forward } => {
                        // Revoked, locked or past its TTL while it waited.
                        if !self.forwards.is_open(forward) {
                            response = Response::Error(AgentError::ForwardEnded);
                        }
                        answer_parked(&w.conn, &response);
                        let key = &done.key;
                        self.record_forward(
                            &response,
                            &key.public_key,
                            &key.server,
                            forward,
                            w.peer,
                        );
                    }
                }
            }
        }
    }

    /// The foreground log's line for an ended mint (never the token).
    fn log_mint(&self, done: &Done) {
        let label = self.label_of(&done.key.public_key);
        let line = match &done.result {
            Ok(t) => format!(
                "minted for {} of {} (expires {}), answered {} waiting",
                done.key.server,
                label,
                t.expires_at
                    .map_or_else(|| "never".to_owned(), |e| format!("at {e}")),
                done.waiters.len()
            ),
            Err(e) => format!("the mint for {} of {} failed: {e}", done.key.server, label),
        };
        self.log(&crate::messages::sanitize(&line));
    }

    /// `forward_list`: the entries the forward grants; no key needed.
    fn forward_list(&mut self, policy: &Policy) -> Response {
        let (bytes, public_key) = match Self::forward_vault(policy) {
            Ok(v) => v,
            Err(e) => return Response::Error(e),
        };
        let Policy::Forward { vault, .. } = policy else {
            return Response::Error(AgentError::Forbidden);
        };
        let Ok(view) = crate::vault::View::parse(&bytes, vault) else {
            return Response::Error(AgentError::VaultUnreadable);
        };
        if view.vault().public().to_string() != public_key {
            return Response::Error(AgentError::VaultUnreadable);
        }
        Response::Entries {
            entries: view
                .entries()
                .iter()
                .filter(|e| policy.grants(e.server()))
                .map(|e| (e.server().to_owned(), e.username().to_owned()))
                .collect(),
        }
    }

    /// The request of a frame of this protocol version; else the answer already: a
    /// `quit` of another version is obeyed, anything else of another version gets our
    /// version, and what does not parse is a bad request.
    fn frame(&mut self, bytes: &[u8], policy: &Policy) -> std::result::Result<Request, Response> {
        let quit = |server: &mut Self| {
            if policy.allows(&Request::Quit) {
                server.quit_now();
                Response::Ok
            } else {
                Response::Error(AgentError::Forbidden)
            }
        };
        let frame: RequestFrame = match serde_json::from_slice(bytes) {
            Ok(f) => f,
            Err(_) => {
                // Another version's frame: obey `quit`, report our version otherwise.
                return Err(match serde_json::from_slice::<VersionProbe>(bytes) {
                    Ok(p) if p.v != PROTOCOL_VERSION => {
                        if p.request.as_ref().and_then(|r| r.as_str()) == Some("quit") {
                            quit(self)
                        } else {
                            Response::Error(AgentError::VersionMismatch {
                                agent: PROTOCOL_VERSION,
                            })
                        }
                    }
                    _ => Response::Error(AgentError::BadRequest),
                });
            }
        };
        if frame.v != PROTOCOL_VERSION {
            if matches!(frame.request, Request::Quit) {
                return Err(quit(self));
            }
            return Err(Response::Error(AgentError::VersionMismatch {
                agent: PROTOCOL_VERSION,
            }));
        }
        Ok(frame.request)
    }

    /// `hello`: who we are.
    fn hello(&self) -> Response {
        Response::Hello {
            pid: std::process::id(),
            build: env!("CARGO_PKG_VERSION").to_owned(),
            mode: self.mode,
        }
    }

    /// `add_key`: hold a vault key, its deadlines clamped.
    fn add_key(
        &mut self,
        secret_key: &SecretText,
        label: &str,
        idle_secs: u64,
        timeout_secs: u64,
    ) -> Response {
        let Ok(key) = VaultKey::from_secret_text(secret_key.expose_secret()) else {
            return Response::Error(AgentError::BadKey);
        };
        let clamp = |s: u64| Duration::from_secs(s).clamp(MIN_TIMEOUT, MAX_TIMEOUT);
        self.hold(key, label, clamp(idle_secs), clamp(timeout_secs));
        Response::Ok
    }

    /// `decrypt`: one entry, with a held key (its idle deadline moved on) or else the
    /// credential's vault.
    fn decrypt(
        &mut self,
        public_key: &str,
        server: &str,
        username: &str,
        ciphertext: &str,
    ) -> Response {
        let Ok(ciphertext) = B64.decode(ciphertext.as_bytes()) else {
            return Response::Error(AgentError::BadRequest);
        };
        self.decrypt_bytes(public_key, server, username, &ciphertext)
    }

    /// [`Server::decrypt`] of a decoded ciphertext.
    fn decrypt_bytes(
        &mut self,
        public_key: &str,
        server: &str,
        username: &str,
        ciphertext: &[u8],
    ) -> Response {
        let exec = self.mode == AgentMode::Exec;
        // A key `unlock` handed over first; else the credential's vault.
        let Some(held) = self.keys.get_mut(public_key) else {
            return self.decrypt_from_credential(public_key, server, username, ciphertext);
        };
        match held.key.open_entry(server, username, ciphertext) {
            Ok(secret) => {
                // Use moves the idle deadline on, never past the absolute one.
                let now = now();
                held.idle_deadline = (now + held.idle).min(held.deadline);
                Response::Secret {
                    secret: SecretText::new(&secret),
                    expires_in_secs: (!exec).then(|| held.until().saturating_sub(now).as_secs()),
                    absolute: held.deadline <= held.idle_deadline,
                }
            }
            Err(_) => Response::Error(AgentError::DecryptFailed),
        }
    }

    /// `keyed_mac`: a MAC in the `source` or `rotation` domain with a held key (or
    /// the credential's); a use like a decrypt, so it moves the idle deadline on.
    fn keyed_mac(&mut self, public_key: &str, domain: &str, transcript: &str) -> Response {
        let (Some(domain), Ok(transcript)) = (
            MacDomain::from_wire_name(domain),
            B64.decode(transcript.as_bytes()),
        ) else {
            return Response::Error(AgentError::BadRequest);
        };
        match self.keyed_mac_bytes(public_key, domain, &transcript) {
            Ok(mac) => Response::Mac {
                mac: B64.encode(mac),
            },
            Err(e) => Response::Error(e),
        }
    }

    /// [`Server::keyed_mac`] of a decoded transcript.
    fn keyed_mac_bytes(
        &mut self,
        public_key: &str,
        domain: MacDomain,
        transcript: &[u8],
    ) -> Result<[u8; 32], AgentError> {
        if let Some(held) = self.keys.get_mut(public_key) {
            let now = now();
            held.idle_deadline = (now + held.idle).min(held.deadline);
            return Ok(held.key.keyed_mac(domain, transcript));
        }
        let Some(c) = &self.credential else {
            return Err(AgentError::NotUnlocked);
        };
        match c.open_for(public_key) {
            Reopen::NotThisVault => Err(AgentError::NotUnlocked),
            Reopen::Opened(key) => {
                self.note_credential(None, None);
                Ok(key.keyed_mac(domain, transcript))
            }
            Reopen::Failed(reason, e) => {
                self.note_credential(Some(reason), Some(&e));
                Err(AgentError::CredentialFailed { reason })
            }
        }
    }

    /// `status`: what is held, and the credential's vault as it is now.
    fn status(&mut self) -> Response {
        let now = now();
        let mut vaults: Vec<HeldVault> = self
            .keys
            .iter()
            .map(|(public, h)| HeldVault {
                public_key: public.clone(),
                label: h.label.clone(),
                idle_secs: h.idle.as_secs(),
                idle_left_secs: h.idle_deadline.saturating_sub(now).as_secs(),
                timeout_left_secs: h.deadline.saturating_sub(now).as_secs(),
            })
            .collect();
        vaults.sort_by(|a, b| a.label.cmp(&b.label));
        let credential = self.credential.as_ref().map(CredentialVault::check);
        if let Some((status, detail)) = &credential {
            self.note_credential(status.error, detail.as_ref());
        }
        Response::Status {
            vaults,
            // Asked of the kernel now, not remembered from start-up.
            non_dumpable: rustix::process::dumpable_behavior()
                .is_ok_and(|d| d == rustix::process::DumpableBehavior::NotDumpable),
            memory_locked: self.memory_locked,
            pid: std::process::id(),
            mode: self.mode,
            credential: credential.map(|(status, _)| status),
            tokens: self.tokens.status(),
        }
    }

    /// `lock`: forget one vault's key, or every key.
    fn lock(&mut self, public_key: Option<String>) -> Response {
        let credential = self.credential_label_for(public_key.as_deref());
        for name in self.forwards.revoke_vault(public_key.as_deref()) {
            self.log(&format!("forward {name} ended (lock)"));
        }
        self.drop_tokens(public_key.as_deref());
        match public_key {
            Some(p) => {
                if let Some(h) = self.keys.remove(&p) {
                    self.log(&format!("locked {}", crate::messages::sanitize(&h.label)));
                }
            }
            None => {
                if !self.keys.is_empty() {
                    self.log(&format!("locked every vault ({})", self.keys.len()));
                }
                self.keys.clear();
            }
        }
        Response::Locked {
            remaining: self.keys.len(),
            credential,
        }
    }

    fn quit_now(&mut self) {
        self.log("quit requested; wiping every key");
        self.keys.clear();
        self.forwards.clear();
        self.drop_tokens(None);
        self.quit = true;
    }
}

/// Writes `response` to a parked connection, with a short deadline of its own: the
/// answer is small, and a client that does not read it is not waited for.
fn answer_parked(conn: &UnixStream, response: &Response) {
    let _ = write_frame(&mut Deadline::new(conn, FORWARD_DEADLINE), response);
}

/// The answer of a token: `minted` on the owner's socket (with the time the vault's
/// key has left, `key`, for `get`'s near-expiry warning), `credentials` on a
/// forward's.
fn token_response(how: &Answer, token: &Token, key: (Option<u64>, bool)) -> Response {
    let secret = SecretText::new(token.secret.expose_secret());
    match how {
        Answer::Minted => Response::Minted {
            username: token.username.clone(),
            secret,
            expires_at: token.expires_at,
            key_expires_in_secs: key.0,
            key_absolute: key.1,
        },
        Answer::Credentials { .. } => Response::Credentials {
            username: token.username.clone(),
            secret,
        },
    }
}

/// Whether the peer of `conn` has closed its end (poll reports `POLLHUP` only once
/// both directions are shut: a client still waiting for its answer never has).
fn hung_up(conn: &UnixStream) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let now = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let mut fds = [PollFd::new(conn, PollFlags::empty())];
    matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
        && fds[0].revents().contains(PollFlags::HUP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::VaultPath;
    use crate::vault::Vault;
    use crate::vault::crypto::Recipient;
    use age::secrecy::{ExposeSecret, SecretString};
    use std::collections::BTreeMap;
    use std::fs;

    /// One request through the server as the socket would carry it.
    fn ask(server: &mut Server, request: Request) -> serde_json::Value {
        let frame = serde_json::to_vec(&RequestFrame {
            v: PROTOCOL_VERSION,
            request,
        })
        .unwrap();
        serde_json::to_value(server.handle(&frame, &Policy::Owner, Peer::default())).unwrap()
    }

    /// A vault on disk with one entry and one age slot, and a foreground server serving
    /// it from a credential file holding that slot's identity.
    fn served() -> (tempfile::TempDir, Server, VaultKey, String) {
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let key = VaultKey::generate();
        let slot = Vault::age_slot(
            &key,
            &Recipient::parse(&id.to_public().to_string()).unwrap(),
            "build-01".into(),
        )
        .unwrap();
        let mut vault = Vault::new(&key, vec![slot]);
        vault
            .store(
                "reg.example",
                "ci",
                &SecretString::from("s3cret".to_owned()),
            )
            .unwrap();
        let ciphertext = B64.encode(&vault.entries()["reg.example"].secret);
        let path = dir.path().join("vault.json");
        VaultPath::new(path.clone()).create(&vault, true).unwrap();
        let cred = dir.path().join("lockbox-identity");
        fs::write(&cred, id.to_string().expose_secret()).unwrap();
        let mut server = Server::new(AgentMode::Foreground, false);
        server.serve_from_credential(CredentialVault::new(cred, path));
        (dir, server, key, ciphertext)
    }

    fn decrypt(public_key: &str, ciphertext: &str) -> Request {
        Request::Decrypt {
            public_key: public_key.to_owned(),
            server: "reg.example".into(),
            username: "ci".into(),
            ciphertext: ciphertext.to_owned(),
        }
    }

    #[test]
    fn a_forward_get_opens_the_entry_through_the_served_opener_and_keeps_its_refusal() {
        let (dir, mut server, key, _) = served();
        let policy = Policy::Forward {
            name: "ci".into(),
            registries: vec!["reg.example".into()],
            expires: FOREVER,
            uid: None,
            vault: dir.path().join("vault.json"),
            public_key: key.public().to_string(),
            sources_trusted: false,
        };
        let got = serde_json::to_value(
            server
                .forward_get(&policy, "reg.example", Peer::default())
                .answer(),
        )
        .unwrap();
        assert_eq!(got["credentials"]["username"], "ci", "{got}");
        assert_eq!(got["credentials"]["secret"], "s3cret", "{got}");
        // The credential gone: the opener's own refusal comes back, not a decrypt failure.
        fs::remove_file(dir.path().join("lockbox-identity")).unwrap();
        let refused = serde_json::to_value(
            server
                .forward_get(&policy, "reg.example", Peer::default())
                .answer(),
        )
        .unwrap();
        assert!(
            refused["error"]["credential_failed"].is_object(),
            "{refused}"
        );
    }

    #[test]
    fn keyed_macs_come_from_the_served_key_in_the_source_and_rotation_domains_only() {
        let (_dir, mut server, key, _) = served();
        let public = key.public().to_string();
        let mac = |server: &mut Server, domain: &str| {
            ask(
                server,
                Request::KeyedMac {
                    public_key: public.clone(),
                    domain: domain.into(),
                    transcript: B64.encode(b"definition"),
                },
            )
        };
        for domain in [MacDomain::Source, MacDomain::Rotation] {
            let answer = mac(&mut server, domain.wire_name().unwrap());
            let want = B64.encode(key.keyed_mac(domain, b"definition"));
            assert_eq!(answer["mac"]["mac"], want.as_str(), "{answer}");
        }
        assert_ne!(
            key.keyed_mac(MacDomain::Source, b"definition"),
            key.keyed_mac(MacDomain::Rotation, b"definition")
        );
        for domain in ["slots", "Source", ""] {
            assert_eq!(
                mac(&mut server, domain),
                serde_json::json!({"error": "bad_request"})
            );
        }
    }

    #[test]
    fn a_vault_served_from_the_credential_decrypts_with_no_key_held_and_no_deadline() {
        let (dir, mut server, key, ct) = served();
        let public = key.public().to_string();
        let answer = ask(&mut server, decrypt(&public, &ct));
        assert_eq!(answer["secret"]["secret"], "s3cret", "{answer}");
        assert_eq!(answer["secret"]["expires_in_secs"], serde_json::Value::Null);
        assert!(server.keys.is_empty(), "nothing is held after the request");
        // Another vault's key: as before, not unlocked.
        let other = VaultKey::generate().public().to_string();
        assert_eq!(
            ask(&mut server, decrypt(&other, &ct)),
            serde_json::json!({"error": "not_unlocked"})
        );
        // status shows it; lock of it (or of all) says it stays.
        let st = ask(&mut server, Request::Status);
        assert_eq!(st["status"]["credential"]["public_key"], public.as_str());
        assert_eq!(st["status"]["credential"]["error"], serde_json::Value::Null);
        assert_eq!(st["status"]["vaults"], serde_json::json!([]));
        let label = dir.path().join("vault.json").display().to_string();
        for lock in [Some(public.clone()), None] {
            let answer = ask(&mut server, Request::Lock { public_key: lock });
            assert_eq!(answer["locked"]["credential"], label.as_str(), "{answer}");
        }
        let answer = ask(
            &mut server,
            Request::Lock {
                public_key: Some(other),
            },
        );
        assert_eq!(answer, serde_json::json!({"locked": {"remaining": 0}}));
        // Still served after every lock; a removed credential is a typed error.
        assert!(ask(&mut server, decrypt(&public, &ct))["secret"].is_object());
        fs::remove_file(dir.path().join("lockbox-identity")).unwrap();
        assert_eq!(
            ask(&mut server, decrypt(&public, &ct)),
            serde_json::json!({"error": {"credential_failed": {"reason": "missing"}}})
        );
    }

    #[test]
    fn a_held_key_is_asked_before_the_credential() {
        let (dir, mut server, key, ct) = served();
        let public = key.public().to_string();
        fs::write(dir.path().join("lockbox-identity"), "garbage").unwrap();
        assert_eq!(
            ask(&mut server, decrypt(&public, &ct)),
            serde_json::json!({"error": {"credential_failed": {"reason": "bad_identity"}}})
        );
        // The credential is broken, but `unlock` handed over the key: that answers,
        // with its deadline; `lock` of it forgets the key, and says nothing stays open
        // (the broken credential opens nothing).
        server.hold(key, "v", Duration::from_secs(60), Duration::from_secs(600));
        let answer = ask(&mut server, decrypt(&public, &ct));
        assert_eq!(answer["secret"]["secret"], "s3cret", "{answer}");
        assert!(answer["secret"]["expires_in_secs"].as_u64().unwrap() > 0);
        let answer = ask(
            &mut server,
            Request::Lock {
                public_key: Some(public.clone()),
            },
        );
        assert_eq!(answer["locked"]["remaining"], 0, "{answer}");
        assert!(answer["locked"].get("credential").is_none(), "{answer}");
    }

    /// A vault key holding an exec source for `reg.example` that runs `script` with
    /// `/bin/sh -c`, and the `mint` request for it (with `alter` applied to it).
    fn source_request(
        key: &VaultKey,
        script: &str,
        alter: impl Fn(&mut SourceDef),
    ) -> impl Fn() -> Request {
        let mut vault = Vault::new(key, vec![]);
        let argv = ["/bin/sh", "-c", script].map(str::to_owned);
        let params = BTreeMap::from([(
            "command".to_owned(),
            crate::sources::exec::command_param(&argv),
        )]);
        let empty = SecretString::from(String::new());
        vault
            .add_source(key, "reg.example", "<minted>", "exec", params, &empty)
            .unwrap();
        let entry = &vault.entries()["reg.example"];
        let mut def = entry.meta.source.clone().unwrap();
        alter(&mut def);
        let sealed = B64.encode(&entry.secret);
        let public_key = key.public().to_string();
        move || Request::Mint {
            public_key: public_key.clone(),
            server: "reg.example".into(),
            username: "<minted>".into(),
            sealed: sealed.clone(),
            kind: def.kind.clone(),
            params: def.params.clone(),
            mac: B64.encode(def.mac),
        }
    }

    /// Sends `request` on a new connection the server serves (it may park it).
    fn send(server: &mut Server, request: Request) -> UnixStream {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let frame = serde_json::to_vec(&RequestFrame {
            v: PROTOCOL_VERSION,
            request,
        })
        .unwrap();
        (&ours)
            .write_all(&(frame.len() as u32).to_be_bytes())
            .unwrap();
        (&ours).write_all(&frame).unwrap();
        server.serve_one(theirs, &Policy::Owner);
        ours
    }

    /// The answer on `conn`, letting the server end its mints meanwhile (bounded:
    /// 40 s at most, in 20 ms steps).
    fn answer_on(server: &mut Server, conn: &UnixStream) -> serde_json::Value {
        use rustix::event::{PollFd, PollFlags, poll};
        let step = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 20_000_000,
        };
        for _ in 0..2000 {
            let mut fds = [PollFd::new(conn, PollFlags::IN)];
            if matches!(poll(&mut fds, Some(&step)), Ok(n) if n > 0) {
                break;
            }
            server.finish_mints();
        }
        let mut len = [0u8; 4];
        let mut r = conn;
        std::io::Read::read_exact(&mut r, &mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        std::io::Read::read_exact(&mut r, &mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    fn counting_script(dir: &std::path::Path, body: &str) -> (String, std::path::PathBuf) {
        let count = dir.join("runs");
        let script = format!("echo run >> '{}'; {body}", count.display());
        (script, count)
    }

    fn runs(count: &std::path::Path) -> usize {
        fs::read_to_string(count).map_or(0, |t| t.lines().count())
    }

    fn held_server(key: &VaultKey) -> Server {
        let mut server = Server::new(AgentMode::Background, false);
        let copy = VaultKey::from_secret_text(key.export_secret().expose_secret()).unwrap();
        server.hold(
            copy,
            "v",
            Duration::from_secs(600),
            Duration::from_secs(600),
        );
        server
    }

    fn in_an_hour() -> String {
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(3600))
            .to_string()
    }

    #[test]
    fn requests_for_a_source_being_minted_share_its_one_mint_and_then_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let key = VaultKey::generate();
        let (script, count) = counting_script(
            dir.path(),
            &format!(
                r#"sleep 0.3; echo '{{"Username":"AWS","Secret":"tok-1","ExpiresAt":"{}"}}'"#,
                in_an_hour()
            ),
        );
        let request = source_request(&key, &script, |_| {});
        let mut server = held_server(&key);
        let conns: Vec<UnixStream> = (0..5).map(|_| send(&mut server, request())).collect();
        for conn in &conns {
            let answer = answer_on(&mut server, conn);
            assert_eq!(answer["minted"]["secret"], "tok-1", "{answer}");
            assert_eq!(answer["minted"]["username"], "AWS", "{answer}");
        }
        assert_eq!(runs(&count), 1);
        // From the cache now: answered at once (`handle` parks nothing), nothing run.
        let frame = serde_json::to_vec(&RequestFrame {
            v: PROTOCOL_VERSION,
            request: request(),
        })
        .unwrap();
        let answer =
            serde_json::to_value(server.handle(&frame, &Policy::Owner, Peer::default())).unwrap();
        assert_eq!(answer["minted"]["secret"], "tok-1", "{answer}");
        assert_eq!(runs(&count), 1);
        let st = ask(&mut server, Request::Status);
        let tokens = &st["status"]["tokens"];
        assert_eq!(tokens[0]["server"], "reg.example", "{st}");
        assert!(
            !st.to_string().contains("tok-1"),
            "status never shows a token"
        );
        // Locked: the token is gone, and nothing is served.
        ask(&mut server, Request::Lock { public_key: None });
        assert!(server.tokens.status().is_empty());
        let conn = send(&mut server, request());
        let answer = answer_on(&mut server, &conn);
        assert_eq!(answer, serde_json::json!({"error": "not_unlocked"}));
        assert_eq!(runs(&count), 1);
    }

    #[test]
    fn an_altered_source_is_refused_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let key = VaultKey::generate();
        let (script, count) = counting_script(dir.path(), "echo '{}'");
        let other = format!("{script}; touch '{}'", dir.path().join("x").display());
        let argv = ["/bin/sh", "-c", &other].map(str::to_owned);
        let request = source_request(&key, &script, |def| {
            def.params
                .insert("command".into(), crate::sources::exec::command_param(&argv));
        });
        let mut server = held_server(&key);
        let conn = send(&mut server, request());
        let answer = answer_on(&mut server, &conn);
        assert_eq!(answer, serde_json::json!({"error": "source_tampered"}));
        assert_eq!(runs(&count), 0);
        assert!(!count.exists());
    }

    #[test]
    fn a_failed_mint_answers_every_waiter_and_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let key = VaultKey::generate();
        let (script, count) = counting_script(dir.path(), "sleep 0.2; echo nope >&2; exit 3");
        let request = source_request(&key, &script, |_| {});
        let mut server = held_server(&key);
        let conns: Vec<UnixStream> = (0..2).map(|_| send(&mut server, request())).collect();
        for conn in &conns {
            let answer = answer_on(&mut server, conn);
            let failed = &answer["error"]["mint_failed"];
            assert_eq!(failed["kind"], "exec", "{answer}");
            assert_eq!(failed["registry"], "reg.example", "{answer}");
            assert_eq!(failed["endpoint"], "/bin/sh", "{answer}");
        }
        assert_eq!(runs(&count), 1);
        let conn = send(&mut server, request());
        let answer = answer_on(&mut server, &conn);
        assert!(answer["error"]["mint_failed"].is_object(), "{answer}");
        assert_eq!(
            runs(&count),
            2,
            "a failure is not cached: the next request mints"
        );
    }

    #[test]
    fn a_waiting_request_whose_client_hangs_up_is_dropped_and_the_mint_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let key = VaultKey::generate();
        let (script, count) = counting_script(
            dir.path(),
            &format!(
                r#"sleep 2; echo '{{"Username":"u","Secret":"tok","ExpiresAt":"{}"}}'"#,
                in_an_hour()
            ),
        );
        let request = source_request(&key, &script, |_| {});
        let mut server = held_server(&key);
        let gone = send(&mut server, request());
        let stays = send(&mut server, request());
        assert_eq!(server.tokens.waiting(), 2);
        drop(gone);
        server.finish_mints();
        assert_eq!(server.tokens.waiting(), 1, "the hung-up request is dropped");
        let answer = answer_on(&mut server, &stays);
        assert_eq!(answer["minted"]["secret"], "tok", "{answer}");
        assert_eq!(runs(&count), 1);
    }
}
