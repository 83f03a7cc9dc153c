//! What the peers of one socket may ask. The agent serves its owner's socket, where
//! only the owner's uid is let in and every request is allowed ([`Policy::Owner`]),
//! and the forward sockets `forward create` opens ([`Policy::Forward`]): read-only,
//! some registries of one vault, for a container or a job (`docs/AGENT.md`
//! "Forwards"). The server asks its socket's policy about the peer and about each
//! request before serving it.
use std::path::PathBuf;
use std::time::Duration;

use rustix::process::Uid;

use super::proto::Request;
use crate::docker::server_url;

/// The rules of one socket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Policy {
    /// The owner's socket: peers of the agent's own uid, any request but the two a
    /// forward socket serves.
    Owner,
    /// A forward socket: `forward_get` and `forward_list` only, of entries whose
    /// server URL normalizes to one of `registries`, read from `vault`.
    Forward {
        /// The forward's name (in logs and `forward list`).
        name: String,
        /// The registries granted, each in its normalized form.
        registries: Vec<String>,
        /// When it ends (time since boot, as the agent's other deadlines).
        expires: Duration,
        /// A uid let in besides the owner's and root's.
        uid: Option<Uid>,
        /// The vault file its entries come from.
        vault: PathBuf,
        /// That vault's public key: a file replaced by another vault is refused.
        public_key: String,
        /// Whether its creator trusts that key to run sources (else none is
        /// answered).
        sources_trusted: bool,
    },
}

impl Policy {
    /// Whether a peer of `peer` uid (`None`: unknown) may talk to the agent here;
    /// `own` is the agent's uid. A forward also lets root in (a rootful container's
    /// root is root on the host, who can read the agent's memory anyway) and the uid
    /// it names.
    pub fn admits(&self, peer: Option<Uid>, own: Uid) -> bool {
        match self {
            Policy::Owner => peer == Some(own),
            Policy::Forward { uid, .. } => {
                peer.is_some_and(|p| p == own || p.is_root() || Some(p) == *uid)
            }
        }
    }

    /// Whether `request` may be served here.
    pub fn allows(&self, request: &Request) -> bool {
        match self {
            Policy::Owner => !request.is_forward_side(),
            Policy::Forward { .. } => request.is_forward_side(),
        }
    }

    /// Whether an entry stored under `server` is one this socket may hand out: its
    /// normalized form is one of the forward's registries (never, on the owner's
    /// socket, which has no `forward_get`).
    pub fn grants(&self, server: &str) -> bool {
        match self {
            Policy::Owner => false,
            Policy::Forward { registries, .. } => {
                server_url::normalize(server).is_some_and(|n| registries.contains(&n))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(uid: Option<u32>) -> Policy {
        Policy::Forward {
            name: "ci".into(),
            registries: vec!["ghcr.io".into(), "docker.io".into()],
            expires: Duration::from_secs(60),
            uid: uid.map(Uid::from_raw),
            vault: "/v".into(),
            public_key: "age1x".into(),
            sources_trusted: false,
        }
    }

    #[test]
    fn a_forward_admits_the_owner_root_and_its_uid_only() {
        let own = Uid::from_raw(1000);
        let p = forward(Some(2000));
        for (peer, ok) in [
            (Some(1000), true),
            (Some(0), true),
            (Some(2000), true),
            (Some(2001), false),
            (None, false),
        ] {
            assert_eq!(p.admits(peer.map(Uid::from_raw), own), ok, "{peer:?}");
        }
        assert!(!forward(None).admits(Some(Uid::from_raw(2000)), own));
        assert!(!Policy::Owner.admits(Some(Uid::from_raw(0)), own));
    }

    #[test]
    fn a_forward_serves_only_its_two_requests_and_the_owner_never_them() {
        let p = forward(None);
        let get = Request::ForwardGet { server: "h".into() };
        assert!(p.allows(&get) && p.allows(&Request::ForwardList));
        assert!(!Policy::Owner.allows(&get) && !Policy::Owner.allows(&Request::ForwardList));
        for r in [
            Request::Hello,
            Request::Status,
            Request::Quit,
            Request::Forwards,
            Request::Lock { public_key: None },
            Request::ForwardRevoke { name: "ci".into() },
            // A forward gets minted tokens through `forward_get`, never by `mint`.
            Request::Mint {
                public_key: "age1x".into(),
                server: "h".into(),
                username: "u".into(),
                sealed: String::new(),
                kind: "exec".into(),
                params: Default::default(),
                mac: String::new(),
            },
        ] {
            assert!(!p.allows(&r), "{r:?}");
            assert!(Policy::Owner.allows(&r), "{r:?}");
        }
    }

    #[test]
    fn grants_follow_the_lookup_normalization() {
        let p = forward(None);
        for s in [
            "ghcr.io",
            "https://GHCR.io:443/",
            "https://index.docker.io/v1/",
        ] {
            assert!(p.grants(s), "{s}");
        }
        for s in ["ghcr.io/org", "evil.example", "ghcr.io.evil.example", ""] {
            assert!(!p.grants(s), "{s}");
        }
        assert!(!Policy::Owner.grants("ghcr.io"));
    }
}
