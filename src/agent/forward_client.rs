//! The client side of forwards: the owner's requests to open, list and end them
//! ([`Agent::forward_create`], [`Agent::forwards`], [`Agent::forward_revoke`]), and
//! [`ForwardClient`], what the helper inside a container asks a forward socket.
//!
//! Inside the container the socket path comes from the environment and is the whole
//! capability (like `SSH_AUTH_SOCK`): the client checks no directory owner and no
//! peer uid, because the host's uids mean nothing in the container's user namespace.
//! It sends a server URL and gets credentials back; nothing it sends is a secret.
use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use age::secrecy::SecretString;

use super::client::Agent;
use super::proto::{AgentError, ForwardInfo, PROTOCOL_VERSION, Request, RequestFrame, Response};
use super::socket::{Deadline, PeerTrouble, receive_frame, send_frame};
use crate::error::{Error, ForwardError, Result};

/// How long the helper in a container waits for the forward's answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What `forward_create` needs besides the agent.
#[derive(Debug, Clone)]
pub struct ForwardRequest {
    /// The name.
    pub name: String,
    /// The registries, normalized.
    pub registries: Vec<String>,
    /// Its time to live.
    pub ttl: Duration,
    /// A uid let in besides the owner's and root.
    pub uid: Option<u32>,
    /// The vault file.
    pub vault: PathBuf,
    /// The vault's public key.
    pub public_key: String,
    /// End it when this process exits.
    pub tie_to_me: bool,
    /// Whether this vault's key is trusted here to run sources (`sources::trust`).
    pub sources_trusted: bool,
}

fn unexpected(response: &Response) -> Error {
    match response {
        // An agent of an older build of protocol 2 does not know the request.
        Response::Error(AgentError::BadRequest) => {
            Error::AgentProtocol(crate::messages::FORWARD_AGENT_TOO_OLD.to_owned())
        }
        Response::Error(e) => Error::AgentProtocol(e.to_string()),
        _ => Error::AgentProtocol("an answer of the wrong kind".to_owned()),
    }
}

impl Agent {
    /// Opens a forward. No agent, or one without this vault's key: locked.
    pub fn forward_create(&self, f: ForwardRequest) -> Result<ForwardInfo> {
        let request = Request::ForwardCreate {
            name: f.name.clone(),
            registries: f.registries,
            ttl_secs: f.ttl.as_secs(),
            uid: f.uid,
            vault: f.vault.display().to_string(),
            public_key: f.public_key,
            tie_to_peer: f.tie_to_me,
            sources_trusted: f.sources_trusted,
        };
        match self.request(request)? {
            None | Some(Response::Error(AgentError::NotUnlocked)) => Err(Error::Locked),
            Some(Response::Forward(info)) => Ok(*info),
            Some(Response::Error(AgentError::ForwardExists)) => {
                Err(Error::Forward(ForwardError::Exists(f.name)))
            }
            Some(Response::Error(e @ AgentError::TooManyForwards { .. })) => {
                Err(Error::Forward(ForwardError::NotOpened(e.to_string())))
            }
            Some(Response::Error(AgentError::ForwardSocket { reason })) => Err(Error::Forward(
                ForwardError::NotOpened(crate::messages::agent_error_forward_socket(
                    &crate::messages::sanitize(&reason),
                )),
            )),
            Some(other) => Err(unexpected(&other)),
        }
    }

    /// Every open forward (none without an agent).
    pub fn forwards(&self) -> Result<Vec<ForwardInfo>> {
        match self.request(Request::Forwards)? {
            None => Ok(Vec::new()),
            Some(Response::Forwards { forwards }) => Ok(forwards),
            Some(other) => Err(unexpected(&other)),
        }
    }

    /// Ends the forward `name`.
    pub fn forward_revoke(&self, name: &str) -> Result<()> {
        let request = Request::ForwardRevoke {
            name: name.to_owned(),
        };
        match self.request(request)? {
            Some(Response::Ok) => Ok(()),
            None | Some(Response::Error(AgentError::NoSuchForward)) => {
                Err(Error::Forward(ForwardError::NoSuch(name.to_owned())))
            }
            Some(other) => Err(unexpected(&other)),
        }
    }
}

/// The helper's side of a forward socket, inside a container.
#[derive(Debug, Clone)]
pub struct ForwardClient {
    socket: PathBuf,
}

impl ForwardClient {
    /// The forward at `socket` (from `LOCKBOX_FORWARD_SOCKET`).
    pub fn at(socket: &Path) -> Self {
        ForwardClient {
            socket: socket.to_owned(),
        }
    }

    /// One request, its answer awaited for at most `limit`.
    fn ask(&self, request: Request, limit: Duration) -> Result<Response> {
        let gone = || Error::Forward(ForwardError::Gone(self.socket.clone()));
        let own_uid = rustix::process::getuid().as_raw();
        // A failure to connect is "gone" (a missing socket: revoked, expired, the
        // host removed it; or one nobody listens on: the agent was killed), or
        // "denied" when the file system refuses this uid. Never not-found.
        let stream = UnixStream::connect(&self.socket).map_err(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                Error::Forward(ForwardError::Denied(self.socket.clone(), own_uid))
            } else {
                gone()
            }
        })?;
        let frame = RequestFrame {
            v: PROTOCOL_VERSION,
            request,
        };
        let mut io = Deadline::new(&stream, limit);
        // A refused peer is answered before its request is read, and the agent may
        // have closed by the time the request is written: the answer is read anyway.
        let _sent = send_frame(&mut io, &frame)?;
        let bytes = match receive_frame(&mut io)? {
            Ok(bytes) => bytes,
            // Connected, then nothing: the agent is there but busy or stopped.
            Err(PeerTrouble::Silent) => {
                return Err(Error::Forward(ForwardError::Silent(
                    self.socket.clone(),
                    limit.as_secs(),
                )));
            }
            Err(PeerTrouble::Gone) => return Err(gone()),
        };
        let answer: Response = serde_json::from_slice(&bytes)
            .map_err(|_| Error::AgentProtocol("unreadable answer".into()))?;
        match answer {
            Response::Error(AgentError::ForwardEnded) => Err(gone()),
            Response::Error(AgentError::NotUnlocked) => {
                Err(Error::Forward(ForwardError::HostLocked))
            }
            Response::Error(AgentError::PeerRefused { uid }) => {
                Err(Error::Forward(ForwardError::Refused(uid)))
            }
            // An agent of an older build names no uid: ours is the best guess.
            Response::Error(AgentError::Forbidden) => {
                Err(Error::Forward(ForwardError::Refused(own_uid)))
            }
            Response::Error(AgentError::VaultUnreadable) => {
                Err(Error::Forward(ForwardError::VaultUnreadable))
            }
            other => Ok(other),
        }
    }

    /// The username and secret stored for `server` (for a sealed source, the token
    /// the host's agent minted from it), `None` when the forward grants none. A
    /// source's mint may take up to [`crate::agent::tokens::CLIENT_DEADLINE`].
    pub fn get(&self, server: &str) -> Result<Option<(String, SecretString)>> {
        let request = Request::ForwardGet {
            server: server.to_owned(),
        };
        match self.ask(request, crate::agent::tokens::CLIENT_DEADLINE)? {
            Response::Credentials { username, secret } => {
                Ok(Some((username, secret.into_secret())))
            }
            Response::Error(AgentError::NotFound) => Ok(None),
            // Never not-found: a failed mint would turn a private pull anonymous.
            Response::Error(AgentError::MintFailed(e)) => Err(Error::Mint(Box::new(e))),
            Response::Error(AgentError::SourceTampered) => {
                Err(Error::SourceTampered(server.to_owned()))
            }
            Response::Error(AgentError::SourceUntrusted) => {
                Err(Error::Mint(Box::new(crate::error::MintError {
                    kind: crate::messages::MINT_KIND_UNKNOWN.to_owned(),
                    registry: server.to_owned(),
                    endpoint: crate::messages::MINT_ENDPOINT_FORWARD.to_owned(),
                    detail: crate::messages::FORWARD_SOURCE_UNTRUSTED.to_owned(),
                })))
            }
            Response::Error(busy @ AgentError::MintBusy { .. }) => {
                Err(Error::Mint(Box::new(crate::error::MintError {
                    kind: crate::messages::MINT_KIND_UNKNOWN.to_owned(),
                    registry: server.to_owned(),
                    endpoint: crate::messages::MINT_ENDPOINT_AGENT.to_owned(),
                    detail: busy.to_string(),
                })))
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Server URL → username of every entry the forward grants.
    pub fn list(&self) -> Result<BTreeMap<String, String>> {
        match self.ask(Request::ForwardList, IO_TIMEOUT)? {
            Response::Entries { entries } => Ok(entries),
            other => Err(unexpected(&other)),
        }
    }
}
