//! What the peers of one socket may ask. The agent serves its owner's socket, where
//! only the owner's uid is let in and every request is allowed ([`Policy::Owner`]). A
//! socket of another kind (a forward socket into a container that may only `get`
//! some registries, read-only) is one more variant here: the server asks its socket's
//! policy about the peer and about each request before serving it, and nothing else
//! in the agent changes.
use rustix::process::Uid;

use super::proto::Request;

/// The rules of one socket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Policy {
    /// The owner's socket: peers of the agent's own uid, any request.
    Owner,
}

impl Policy {
    /// Whether a peer of `peer` uid (`None`: unknown) may talk to the agent here;
    /// `own` is the agent's uid.
    pub fn admits(&self, peer: Option<Uid>, own: Uid) -> bool {
        match self {
            Policy::Owner => peer == Some(own),
        }
    }

    /// Whether `request` may be served here.
    pub fn allows(&self, request: &Request) -> bool {
        match self {
            Policy::Owner => {
                let _ = request;
                true
            }
        }
    }
}
