//! The agent's token cache: registry credentials minted from sealed sources, kept in
//! memory until shortly before they expire (`docs/AGENT.md` "Minting").
//!
//! - **Keyed by the vault, the server and the source's MAC**, so a changed definition
//!   (another command, another endpoint, a new secret: a new MAC) never hits a token
//!   minted from the old one. The server verifies the MAC with the held key before it
//!   asks anything of this cache.
//! - **When a token is served** is [`sources::freshness`]: well within its life it is
//!   answered at once; in its refresh window it is answered at once *and* one
//!   background mint starts; in its last quarter (5 min at most) it is never served.
//! - **One mint at a time per source.** Requests for a source being minted wait for
//!   that mint: their connections are parked here (at most [`MAX_WAITING`]) and all
//!   answered when it finishes. At most [`MAX_MINTS`] mints run at once.
//! - **Mints never block the agent's loop.** Each runs on its own thread; it sends its
//!   result on a channel and writes one byte to a socket pair that is in the loop's
//!   poll set. A mint whose thread has not answered [`GIVE_UP`] after it started (its
//!   kind's own deadline is [`sources::MINT_DEADLINE`]) is answered as failed.
//! - **Failures are not cached**: the next request mints again. A failed background
//!   refresh is not retried for [`REFRESH_RETRY`].
//! - **Locked means no token**: the server drops a vault's tokens (wiped: they are
//!   [`SecretString`]s) when its key is locked, expires or the agent quits, and a mint
//!   still running for it is forgotten (its result is wiped when it arrives).
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};

use crate::agent::access_log::Peer;
use crate::agent::proto::{AgentError, TokenStatus};
use crate::error::MintError;
use crate::sources::{self, Freshness, Minted};
use crate::vault::source::SourceDef;

/// Most mints running at once (threads; a forgotten one counts until it ends).
pub const MAX_MINTS: usize = 8;
/// Most requests waiting for mints at once.
pub const MAX_WAITING: usize = 256;
/// A failed background refresh of a source is not tried again before this.
pub const REFRESH_RETRY: Duration = Duration::from_secs(30);
/// How long a mint's thread may take before its waiters are told it failed: the
/// kind's own deadline and a margin (the thread is then forgotten, not waited for).
pub const GIVE_UP: Duration = Duration::from_secs(sources::MINT_DEADLINE.as_secs() + 5);
/// The longest a client waits for a `mint` answer: a mint's [`GIVE_UP`] and a
/// margin, well under the 60 s after which BuildKit cancels a credential callback.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(GIVE_UP.as_secs() + 10);

/// Which cached token: the vault, the source's server URL, its definition's MAC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct TokenKey {
    /// The vault's public key.
    pub public_key: String,
    /// The source's server URL, as stored.
    pub server: String,
    /// The definition's MAC (verified before the key is made).
    pub mac: [u8; 32],
}

/// A token as it is answered.
pub(super) struct Token {
    /// The username the registry expects.
    pub username: String,
    /// The secret, wiped on drop.
    pub secret: SecretString,
    /// When it expires (Unix seconds), if its issuer said.
    pub expires_at: Option<u64>,
}

/// A cached token.
struct Cached {
    token: Token,
    minted_at: u64,
    expires_at: u64,
}

/// How a waiting request is answered once its mint is done.
#[derive(Debug, Clone)]
pub(super) enum Answer {
    /// `minted`, on the owner's socket.
    Minted,
    /// `credentials`, on the forward `name`'s socket.
    Credentials {
        /// The forward's name.
        forward: String,
    },
}

/// A connection waiting for a mint.
pub(super) struct Waiter {
    /// The client's connection, its request read.
    pub conn: UnixStream,
    /// Who asked.
    pub peer: Peer,
    /// What to answer.
    pub answer: Answer,
}

/// A mint running, with the requests waiting for it.
struct Flight {
    id: u64,
    kind: String,
    started: Duration,
    waiters: Vec<Waiter>,
}

/// What a mint's thread sends back.
struct Finished {
    id: u64,
    result: Result<Minted, MintError>,
}

/// A mint that ended (or was given up on), with the requests to answer.
pub(super) struct Done {
    /// Which source.
    pub key: TokenKey,
    /// The requests that waited for it.
    pub waiters: Vec<Waiter>,
    /// The token, or why there is none.
    pub result: Result<Token, AgentError>,
}

/// The cache and the mints running.
#[derive(Default)]
pub(super) struct Tokens {
    cache: HashMap<TokenKey, Cached>,
    flights: HashMap<TokenKey, Flight>,
    /// When a mint of a source last failed (Unix seconds): no background refresh
    /// before [`REFRESH_RETRY`] after.
    failed: HashMap<TokenKey, u64>,
    /// Threads not yet ended (forgotten ones included).
    running: usize,
    next_id: u64,
    channel: Option<Channel>,
}

/// The way back from the mints' threads to the loop.
struct Channel {
    results: mpsc::Receiver<Finished>,
    sender: mpsc::Sender<Finished>,
    wake_rx: UnixStream,
    wake_tx: UnixStream,
}

impl Channel {
    fn new() -> std::io::Result<Channel> {
        let (wake_rx, wake_tx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        // A full buffer already wakes the loop: a thread never blocks on it.
        wake_tx.set_nonblocking(true)?;
        let (sender, results) = mpsc::channel();
        Ok(Channel {
            results,
            sender,
            wake_rx,
            wake_tx,
        })
    }
}

/// Unix seconds now (the issuers' expiries are wall-clock times).
pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn mint_error(kind: &str, registry: &str, detail: String) -> AgentError {
    AgentError::MintFailed(MintError {
        kind: kind.to_owned(),
        registry: registry.to_owned(),
        endpoint: "-".to_owned(),
        detail,
    })
}

impl Tokens {
    /// The cached token of `key` if it may be served now, with whether a refresh
    /// should start; a stale one is dropped (wiped) here.
    pub fn lookup(&mut self, key: &TokenKey, now: u64) -> Option<(Token, bool)> {
        let cached = self.cache.get(key)?;
        let refresh = match sources::freshness(cached.minted_at, Some(cached.expires_at), now) {
            Freshness::Serve => false,
            Freshness::ServeAndRefresh => true,
            Freshness::Stale => {
                self.cache.remove(key);
                return None;
            }
        };
        let t = &cached.token;
        let token = Token {
            username: t.username.clone(),
            secret: SecretString::from(t.secret.expose_secret().to_owned()),
            expires_at: t.expires_at,
        };
        Some((token, refresh))
    }

    /// Whether a mint of `key` is running.
    pub fn minting(&self, key: &TokenKey) -> bool {
        self.flights.contains_key(key)
    }

    /// Whether a background refresh of `key` may start now: none running, room for
    /// a mint, and no failure in the last [`REFRESH_RETRY`].
    pub fn may_refresh(&self, key: &TokenKey, now: u64) -> bool {
        !self.minting(key)
            && self.running < MAX_MINTS
            && self
                .failed
                .get(key)
                .is_none_or(|&at| now >= at + REFRESH_RETRY.as_secs())
    }

    /// Whether another request may wait for a mint.
    pub fn may_wait(&self) -> bool {
        self.waiting() < MAX_WAITING
    }

    /// How many requests wait for mints.
    pub fn waiting(&self) -> usize {
        self.flights.values().map(|f| f.waiters.len()).sum()
    }

    /// The error for a request that finds no room.
    pub fn busy() -> AgentError {
        AgentError::MintBusy {
            mints: MAX_MINTS as u32,
            waiting: MAX_WAITING as u32,
        }
    }

    /// Starts minting `key` from the verified `def` and its opened `secret` on a
    /// thread of its own; `started` is the agent's clock (boot time).
    pub fn start(
        &mut self,
        key: &TokenKey,
        def: &SourceDef,
        secret: SecretString,
        started: Duration,
    ) -> Result<(), AgentError> {
        if self.running >= MAX_MINTS {
            return Err(Self::busy());
        }
        if self.channel.is_none() {
            let channel =
                Channel::new().map_err(|e| mint_error(&def.kind, &key.server, e.to_string()))?;
            self.channel = Some(channel);
        }
        let Some(channel) = &self.channel else {
            return Err(Self::busy());
        };
        let wake = channel
            .wake_tx
            .try_clone()
            .map_err(|e| mint_error(&def.kind, &key.server, e.to_string()))?;
        let sender = channel.sender.clone();
        self.next_id += 1;
        let id = self.next_id;
        let (registry, def_owned) = (key.server.clone(), def.clone());
        let spawned = std::thread::Builder::new()
            .name("lockbox-mint".into())
            .spawn(move || {
                // A panic in a kind is a failed mint, never a mint that never ends
                // (its waiters would wait for GIVE_UP, its slot would stay taken).
                let minted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    sources::mint(&registry, &def_owned, &secret)
                }));
                drop(secret);
                let result = minted.unwrap_or_else(|_| {
                    Err(MintError {
                        kind: def_owned.kind.clone(),
                        registry: registry.clone(),
                        endpoint: "-".to_owned(),
                        detail: crate::messages::MINT_PANICKED.to_owned(),
                    })
                });
                let _ = sender.send(Finished { id, result });
                let _ = (&wake).write(&[1]);
            });
        if let Err(e) = spawned {
            return Err(mint_error(&def.kind, &key.server, e.to_string()));
        }
        self.running += 1;
        self.flights.insert(
            key.clone(),
            Flight {
                id,
                kind: def.kind.clone(),
                started,
                waiters: Vec::new(),
            },
        );
        Ok(())
    }

    /// Parks `waiter` until the mint of `key` ends (the caller checked
    /// [`Tokens::may_wait`] and that the mint runs); gives it back otherwise.
    pub fn park(&mut self, key: &TokenKey, waiter: Waiter) -> Result<(), Waiter> {
        if !self.may_wait() {
            return Err(waiter);
        }
        match self.flights.get_mut(key) {
            Some(f) => {
                f.waiters.push(waiter);
                Ok(())
            }
            None => Err(waiter),
        }
    }

    /// What the loop polls: the wake-up socket (readable) and every parked
    /// connection (for its hang-up).
    pub fn poll_fds(&self) -> Vec<rustix::event::PollFd<'_>> {
        use rustix::event::{PollFd, PollFlags};
        let mut fds = Vec::new();
        if let Some(c) = &self.channel {
            fds.push(PollFd::new(&c.wake_rx, PollFlags::IN));
        }
        for f in self.flights.values() {
            for w in &f.waiters {
                fds.push(PollFd::new(&w.conn, PollFlags::empty()));
            }
        }
        fds
    }

    /// The ended mints: each finished thread's result (cached when it expires late
    /// enough), and the mints running past [`GIVE_UP`] at `clock` (boot time).
    pub fn finish(&mut self, clock: Duration, now: u64) -> Vec<Done> {
        let mut done = Vec::new();
        if let Some(c) = &self.channel {
            // Drain the wake-ups (bounded: one byte per ended thread at most).
            let mut buf = [0u8; 64];
            for _ in 0..1024 {
                match (&c.wake_rx).read(&mut buf) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
            let finished: Vec<Finished> = c.results.try_iter().collect();
            for f in finished {
                self.running = self.running.saturating_sub(1);
                if let Some(d) = self.ended(f, now) {
                    done.push(d);
                }
            }
        }
        let late: Vec<TokenKey> = self
            .flights
            .iter()
            .filter(|(_, f)| clock >= f.started + GIVE_UP)
            .map(|(k, _)| k.clone())
            .collect();
        for key in late {
            if let Some(f) = self.flights.remove(&key) {
                self.failed.insert(key.clone(), now);
                let why = crate::messages::mint_gave_up(GIVE_UP.as_secs());
                done.push(Done {
                    result: Err(mint_error(&f.kind, &key.server, why)),
                    key,
                    waiters: f.waiters,
                });
            }
        }
        done
    }

    /// One thread's result: for its flight, unless that was forgotten (locked,
    /// given up), when the result is dropped (wiped) unanswered.
    fn ended(&mut self, f: Finished, now: u64) -> Option<Done> {
        let key = self
            .flights
            .iter()
            .find(|(_, flight)| flight.id == f.id)
            .map(|(k, _)| k.clone())?;
        let flight = self.flights.remove(&key)?;
        let result = match f.result {
            Ok(minted) => {
                self.failed.remove(&key);
                let expires_at = minted.expires_at_secs();
                let token = Token {
                    username: minted.username,
                    secret: minted.secret,
                    expires_at,
                };
                if let Some(exp) = expires_at
                    && sources::freshness(now, Some(exp), now) != Freshness::Stale
                {
                    let kept = Token {
                        username: token.username.clone(),
                        secret: SecretString::from(token.secret.expose_secret().to_owned()),
                        expires_at,
                    };
                    self.cache.insert(
                        key.clone(),
                        Cached {
                            token: kept,
                            minted_at: now,
                            expires_at: exp,
                        },
                    );
                }
                Ok(token)
            }
            Err(e) => {
                self.failed.insert(key.clone(), now);
                Err(AgentError::MintFailed(e))
            }
        };
        Some(Done {
            key,
            waiters: flight.waiters,
            result,
        })
    }

    /// Drops the parked connections whose clients hung up (they gave up waiting).
    pub fn drop_hung_up(&mut self, hung_up: impl Fn(&UnixStream) -> bool) {
        for f in self.flights.values_mut() {
            f.waiters.retain(|w| !hung_up(&w.conn));
        }
    }

    /// Forgets the tokens of the vault `public_key` (every vault with `None`): the
    /// cache entries are wiped, running mints forgotten; returns the requests that
    /// waited for them, to be told the vault is locked.
    pub fn drop_vault(&mut self, public_key: Option<&str>) -> Vec<Waiter> {
        let ours = |k: &TokenKey| public_key.is_none_or(|p| k.public_key == p);
        self.cache.retain(|k, _| !ours(k));
        self.failed.retain(|k, _| !ours(k));
        let gone: Vec<TokenKey> = self.flights.keys().filter(|k| ours(k)).cloned().collect();
        gone.into_iter()
            .filter_map(|k| self.flights.remove(&k))
            .flat_map(|f| f.waiters)
            .collect()
    }

    /// Drops tokens past their expiry, so they are not kept in memory unused.
    pub fn prune(&mut self, now: u64) {
        self.cache.retain(|_, c| c.expires_at > now);
    }

    /// When the loop must wake to give up on a mint (boot time).
    pub fn next_deadline(&self) -> Option<Duration> {
        self.flights.values().map(|f| f.started + GIVE_UP).min()
    }

    /// Every cached token, for `status` (never a secret), sorted by server.
    pub fn status(&self) -> Vec<TokenStatus> {
        let mut all: Vec<TokenStatus> = self
            .cache
            .iter()
            .map(|(k, c)| {
                let life = c.expires_at.saturating_sub(c.minted_at);
                TokenStatus {
                    public_key: k.public_key.clone(),
                    server: k.server.clone(),
                    minted_at: c.minted_at,
                    expires_at: c.expires_at,
                    refresh_at: c.expires_at - sources::refresh_margin(life),
                    stale_at: c.expires_at - sources::stale_margin(life),
                }
            })
            .collect();
        all.sort_by(|a, b| (&a.server, &a.public_key).cmp(&(&b.server, &b.public_key)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(server: &str) -> TokenKey {
        TokenKey {
            public_key: "age1test".into(),
            server: server.into(),
            mac: [7; 32],
        }
    }

    fn put(tokens: &mut Tokens, k: &TokenKey, minted_at: u64, expires_at: u64) {
        tokens.cache.insert(
            k.clone(),
            Cached {
                token: Token {
                    username: "u".into(),
                    secret: SecretString::from("tok".to_owned()),
                    expires_at: Some(expires_at),
                },
                minted_at,
                expires_at,
            },
        );
    }

    #[test]
    fn a_cached_token_is_served_refreshed_ahead_and_dropped_when_stale() {
        let mut t = Tokens::default();
        let k = key("reg.example");
        put(&mut t, &k, 1000, 1008);
        let (tok, refresh) = t.lookup(&k, 1001).unwrap();
        assert_eq!(tok.secret.expose_secret(), "tok");
        assert!(!refresh);
        assert!(t.lookup(&k, 1004).unwrap().1, "in its refresh window");
        assert!(t.lookup(&k, 1006).is_none(), "stale: never served");
        assert!(t.cache.is_empty(), "and dropped");
        // Another definition (MAC) of the same server never hits it.
        put(&mut t, &k, 1000, 1008);
        let other = TokenKey { mac: [8; 32], ..k };
        assert!(t.lookup(&other, 1001).is_none());
    }

    #[test]
    fn a_failed_refresh_is_not_tried_again_for_a_while() {
        let mut t = Tokens::default();
        let k = key("reg.example");
        assert!(t.may_refresh(&k, 1000));
        t.failed.insert(k.clone(), 1000);
        assert!(!t.may_refresh(&k, 1000 + REFRESH_RETRY.as_secs() - 1));
        assert!(t.may_refresh(&k, 1000 + REFRESH_RETRY.as_secs()));
    }

    #[test]
    fn locking_a_vault_drops_only_its_tokens() {
        let mut t = Tokens::default();
        let k = key("reg.example");
        let other = TokenKey {
            public_key: "age1other".into(),
            ..k.clone()
        };
        put(&mut t, &k, 1000, 5000);
        put(&mut t, &other, 1000, 5000);
        assert!(t.drop_vault(Some("age1test")).is_empty());
        assert!(t.lookup(&k, 1001).is_none());
        assert!(t.lookup(&other, 1001).is_some());
        t.drop_vault(None);
        assert!(t.cache.is_empty());
        let st = {
            put(&mut t, &k, 1000, 1000 + 12 * 3600);
            t.status()
        };
        assert_eq!(st[0].refresh_at, 1000 + 12 * 3600 - 900);
        assert_eq!(st[0].stale_at, 1000 + 12 * 3600 - 300);
    }

    #[test]
    fn the_client_waits_longer_than_a_mint_and_less_than_buildkit() {
        const { assert!(GIVE_UP.as_secs() > sources::MINT_DEADLINE.as_secs()) };
        const { assert!(CLIENT_DEADLINE.as_secs() > GIVE_UP.as_secs()) };
        const { assert!(CLIENT_DEADLINE.as_secs() <= 45) };
    }
}
