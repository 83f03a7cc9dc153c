//! `rotate`: renew an entry's secret in place through its rotation provider
//! (`src/rotate/`), and finish a rotation a crash interrupted.
//!
//! **Nothing lost.** A provider revokes the old secret as it makes the new one, so the
//! new one is sealed into the vault (an atomic, durable write) before anything else
//! happens with it:
//!
//! - GitLab makes the new token: it is written the moment its answer has been read.
//!   (A connection lost after GitLab rotated and before its answer arrived loses the
//!   token for any client: GitLab shows a token once. `docs/BUILD_SERVER.md` says
//!   what to do then.)
//! - For Harbor lockbox makes the new secret: it is written as the entry's pending
//!   secret *before* Harbor is asked to switch to it. The next `rotate` finds it and
//!   asks whether Harbor already holds it (a refresh to itself, authenticated with
//!   it): then it becomes the entry's secret. Refused, it is given up only once Harbor
//!   is seen to accept the old one (a disabled or expired robot refuses both: then
//!   both are kept and `rotate` fails), and the rotation starts again with a fresh
//!   secret. A pending secret is never sent as a
//!   new one, so one planted in the file cannot become the robot's.
//!
//! **No lock across the network.** The vault's lock is not held while a provider is
//! asked (up to three calls of up to 20 s for Harbor), so a concurrent `store` (which
//! waits 10 s for the lock) never fails for a rotation. Before each write `rotate` takes
//! the lock again (waiting up to 120 s once a provider has switched) and checks the
//! entry: the same username, the same rotation settings and still the old secret (a
//! `docker login` storing the same secret again counts as unchanged). Then the new
//! secret is written. Otherwise a concurrent store is newer and wins: GitLab's new
//! token is dropped (the store replaced the old one anyway), Harbor's new secret is
//! kept beside the stored one as pending for the same username (the next `rotate`
//! keeps whichever Harbor accepts), and `rotate` fails saying so. A key rotated
//! meanwhile (`passwd`) cannot open the entry to compare: same username and settings
//! suffice then. `get` reads the file and answers the secret in force until the new
//! one is written.
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use clap::Args;

use super::{KeyOpts, entry_opener};
use crate::config::Settings;
use crate::error::Error;
use crate::exit::Exit;
use crate::file::{LOCK_TIMEOUT, LockGuard, VaultPath};
use crate::messages;
use crate::rotate::{Http, gitlab, harbor};
use crate::vault::crypto::EntryOpener;
use crate::vault::meta::{Provider, Standing, rfc3339, standing, unix_now};
use crate::vault::{Entry, Vault, View};

/// `rotate`
#[derive(Debug, Args)]
pub struct Opts {
    /// The registry whose credential to renew (as stored, or any spelling `get`
    /// would find it by).
    #[arg(required_unless_present = "due", conflicts_with = "due")]
    registry: Option<String>,
    /// Renew every entry with a rotation provider that expires within the window
    /// (LOCKBOX_EXPIRY_WARN_DAYS, else 14 days) or whose last rotation was
    /// interrupted (for a daily timer).
    #[arg(long)]
    due: bool,
    /// GitLab: the new token's lifetime in days (GitLab allows at most 365, or 400
    /// from GitLab 17.6 on an instance that allows it).
    #[arg(long, value_name = "DAYS", default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=400))]
    days: u32,
    #[command(flatten)]
    key: KeyOpts,
}

/// Runs `rotate`.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    let servers = match &o.registry {
        Some(r) => vec![r.clone()],
        None => {
            let due = due(&path, settings)?;
            if due.is_empty() {
                let (days, _) = settings.expiry_warn_days();
                crate::outln!("{}", messages::nothing_due(days));
                return Ok(Exit::Ok);
            }
            due
        }
    };
    let opener = entry_opener(&vault, settings, &o.key)?;
    let opened_for = vault.public().to_string();
    let mut failed = None;
    for server in &servers {
        match rotate_one(&path, server, opener.as_ref(), &opened_for, o.days) {
            Ok(lines) => {
                for l in lines {
                    crate::outln!("{}", messages::sanitize(&l));
                }
            }
            // With --due, one failure does not stop the others; the first is the error.
            Err(e) if o.due => {
                eprintln!("{}{}", messages::ERROR_PREFIX, e.message());
                failed.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    match failed {
        Some(_) => Ok(Exit::Failure),
        None => Ok(Exit::Ok),
    }
}

/// The entries `--due` renews: a rotation provider and an expiry within the window,
/// or a pending secret.
fn due(path: &VaultPath, settings: &Settings) -> Result<Vec<String>, Error> {
    let bytes = path.read_bytes()?.unwrap_or_default();
    let view = View::parse(&bytes, &path.vault)?;
    let (days, _) = settings.expiry_warn_days();
    let now = unix_now();
    Ok(view
        .entries()
        .iter()
        .filter(|e| e.rotation_kind().is_some())
        .filter(|e| {
            e.has_pending() || standing(e.expires_at(), now, days * 86_400) != Standing::Fine
        })
        .map(|e| e.server().to_owned())
        .collect())
}

/// How long `rotate` waits for the vault's lock to write what a provider answered: far
/// longer than a writer's usual wait, since giving up could lose a new secret the
/// provider already switched to.
const COMMIT_LOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// The entry as `rotate` found it before any network call.
struct Seen {
    /// Its exact server URL.
    server: String,
    /// The entry.
    entry: Entry,
    /// Its secret, opened.
    old: SecretString,
    /// The public key `opener` was opened for.
    opened_for: String,
}

/// How the entry stands when `rotate` comes back, under the lock, to write.
enum Now {
    /// Same account, same rotation settings, and the secret expected.
    Same,
    /// Stored again meanwhile with another secret, username or settings.
    Replaced,
    /// Erased meanwhile.
    Gone,
}

/// Rotates one entry; the lines to print. `opened_for` is the public key of the vault
/// `opener` was opened for. The network calls are made without the vault's lock
/// (module docs): it is taken again, and the entry checked, before each write.
fn rotate_one(
    path: &VaultPath,
    request: &str,
    opener: &dyn EntryOpener,
    opened_for: &str,
    days: u32,
) -> Result<Vec<String>, Error> {
    // The file is replaced atomically: a read needs no lock.
    let vault = path.read_existing()?;
    // A `passwd` since the key was opened: the settings' MAC would fail with the old
    // key, a false alarm of tampering.
    if vault.public().to_string() != opened_for {
        return Err(changed());
    }
    let (server, entry) = vault
        .lookup(request)
        .map(|(k, e)| (k.to_owned(), e.clone()))
        .ok_or_else(|| Error::NoSuchEntry(request.to_owned()))?;
    let rotation = entry
        .meta
        .rotation
        .clone()
        .ok_or_else(|| Error::NoRotation(server.clone()))?;
    // Before the secret goes anywhere: the settings are the vault key's.
    rotation.verify(opener, &server, &entry.username)?;
    let old = entry.open(&server, opener)?;
    let kind = rotation.provider.kind();
    let http = Http::new(&rotation.api, kind, &server)?;
    let seen = Seen {
        server,
        entry,
        old,
        opened_for: opened_for.to_owned(),
    };
    let mut lines = Vec::new();
    let expires_at = match rotation.provider {
        Provider::GitlabPat => gitlab_rotation(path, &seen, opener, &http, days)?,
        Provider::HarborRobot { robot_id } => {
            let (expires_at, recovered) = harbor_rotation(path, &seen, opener, &http, robot_id)?;
            if recovered {
                lines.push(messages::rotation_recovered(&seen.server));
            }
            expires_at
        }
    };
    debug_kill_at("after-store");
    lines.push(messages::rotated(
        &seen.server,
        kind,
        expires_at.map(rfc3339).as_deref(),
    ));
    Ok(lines)
}

/// Takes the vault's lock (waiting at most `wait`) and reads the vault: how the entry
/// stands against `seen`, holding `expect` as its secret.
fn relock(
    path: &VaultPath,
    seen: &Seen,
    expect: &SecretString,
    opener: &dyn EntryOpener,
    wait: Duration,
) -> Result<(LockGuard, Vault, Now), Error> {
    let guard = path.lock_with_timeout(wait)?;
    let vault = path.read_existing()?;
    let settings = |e: &Entry| {
        e.meta
            .rotation
            .as_ref()
            .map(|r| (r.provider.clone(), r.api.clone()))
    };
    let now = match vault.entries().get(&seen.server) {
        None => Now::Gone,
        Some(e) if e.username != seen.entry.username || settings(e) != settings(&seen.entry) => {
            Now::Replaced
        }
        Some(e) if vault.public().to_string() == seen.opened_for => {
            // The ciphertext seen holds `seen.old`; another one is opened to compare. One
            // that does not open (a locked agent, a planted ciphertext) is no newer
            // secret: the rotation's wins.
            if e.secret == seen.entry.secret && expect.expose_secret() == seen.old.expose_secret() {
                Now::Same
            } else {
                match e.open(&seen.server, opener) {
                    Ok(s) if s.expose_secret() != expect.expose_secret() => Now::Replaced,
                    _ => Now::Same,
                }
            }
        }
        // The key was rotated meanwhile (`passwd`, `recipients`), so the secret cannot
        // be opened to compare: same account, same settings, and the rotation's secret
        // is the account's newest.
        Some(_) => Now::Same,
    };
    Ok((guard, vault, now))
}

/// The GitLab half of [`rotate_one`]: the new token's expiry.
fn gitlab_rotation(
    path: &VaultPath,
    seen: &Seen,
    opener: &dyn EntryOpener,
    http: &Http,
    days: u32,
) -> Result<Option<u64>, Error> {
    let server = seen.server.as_str();
    let expires_on = rfc3339(unix_now() + u64::from(days) * 86_400)[..10].to_owned();
    debug_kill_at("before-request");
    let renewed = gitlab::rotate(http, &seen.old, &expires_on)?;
    // The old token is revoked now: the new one is sealed before anything else.
    let (guard, mut vault, now) = relock(path, seen, &seen.old, opener, COMMIT_LOCK_TIMEOUT)?;
    match now {
        Now::Same => {
            vault.finish_rotation(server, &renewed.secret, renewed.expires_at)?;
            path.write(&guard, &vault)?;
        }
        // A store meanwhile is newer than this rotation: it wins.
        Now::Replaced | Now::Gone => {
            return Err(Error::Rotate(messages::rotation_overtaken(server, false)));
        }
    }
    drop(guard);
    if renewed.date_unread {
        eprintln!(
            "{}",
            messages::sanitize(&messages::rotated_date_unread(server))
        );
    }
    Ok(renewed.expires_at)
}

/// The Harbor half of [`rotate_one`]: the new secret's expiry, and whether an
/// interrupted rotation was finished.
fn harbor_rotation(
    path: &VaultPath,
    seen: &Seen,
    opener: &dyn EntryOpener,
    http: &Http,
    robot_id: u64,
) -> Result<(Option<u64>, bool), Error> {
    let (server, user) = (seen.server.as_str(), seen.entry.username.as_str());
    let recovered = harbor_recover(seen, opener, http, robot_id)?;
    let was_recovered = recovered.is_some();
    let new = match recovered {
        Some(new) => new,
        None => {
            let new = harbor::new_secret();
            debug_kill_at("before-pending");
            // Sealed and durable before Harbor hears of it, if nobody (another
            // `rotate`, a `store`) changed the entry since it was read.
            let (guard, mut vault, now) = relock(path, seen, &seen.old, opener, LOCK_TIMEOUT)?;
            let pending = vault.entries().get(server).map(|e| &e.meta.pending);
            if !matches!(now, Now::Same) || pending != Some(&seen.entry.meta.pending) {
                return Err(changed());
            }
            vault.set_pending(server, Some(&new))?;
            path.write(&guard, &vault)?;
            drop(guard);
            debug_kill_at("before-request");
            match harbor::refresh(http, robot_id, user, &seen.old, &new)? {
                // Harbor named another secret than the one sent: that one it holds.
                harbor::Refreshed::Done(answered) => answered.unwrap_or(new),
                harbor::Refreshed::Refused => {
                    let path = harbor::robot_path(robot_id);
                    return Err(http.error(&path, messages::HARBOR_OLD_REFUSED));
                }
            }
        }
    };
    debug_kill_at("after-request");
    // Harbor holds `new` now: it is sealed before anything else is asked.
    let (guard, mut vault, now) = relock(path, seen, &seen.old, opener, COMMIT_LOCK_TIMEOUT)?;
    match now {
        Now::Same => vault.finish_rotation(server, &new, seen.entry.meta.expires_at)?,
        // Stored again meanwhile: that secret stays, and `new` (which Harbor holds)
        // stays beside it as pending, so the next `rotate` keeps whichever Harbor
        // accepts.
        Now::Replaced
            if vault
                .entries()
                .get(server)
                .is_some_and(|e| e.username == user) =>
        {
            vault.set_pending(server, Some(&new))?;
            path.write(&guard, &vault)?;
            return Err(Error::Rotate(messages::rotation_overtaken(server, true)));
        }
        Now::Replaced | Now::Gone => {
            return Err(Error::Rotate(messages::rotation_overtaken(server, false)));
        }
    }
    path.write(&guard, &vault)?;
    drop(guard);
    // The robot's expiry does not change with its secret; read it when Harbor lets this
    // robot, else keep the one known.
    let known = seen.entry.meta.expires_at;
    let expires_at = harbor::expires_at(http, robot_id, user, &new).unwrap_or(known);
    if expires_at != known {
        let (guard, mut vault, now) = relock(path, seen, &new, opener, LOCK_TIMEOUT)?;
        if let Now::Same = now {
            vault.set_expiry(server, expires_at)?;
            path.write(&guard, &vault)?;
        }
    }
    Ok((expires_at, was_recovered))
}

/// An interrupted Harbor rotation: its pending secret if Harbor already holds it (a
/// refresh to itself, authenticated with it). Never sent as a *new* secret: a
/// pending secret planted in the file (anyone can seal one to the public key) would
/// become the robot's.
fn harbor_recover(
    seen: &Seen,
    opener: &dyn EntryOpener,
    http: &Http,
    robot_id: u64,
) -> Result<Option<SecretString>, Error> {
    let (server, user) = (seen.server.as_str(), seen.entry.username.as_str());
    let Some(p) = &seen.entry.meta.pending else {
        return Ok(None);
    };
    let candidate = opener.open_entry(server, user, p)?;
    match harbor::refresh(http, robot_id, user, &candidate, &candidate)? {
        harbor::Refreshed::Done(answered) => Ok(Some(answered.unwrap_or(candidate))),
        // A 401 does not prove Harbor holds the old secret: a disabled or expired
        // robot refuses every secret. The pending one (perhaps the only one Harbor
        // accepts) is given up only once the old one works.
        harbor::Refreshed::Refused => {
            if !harbor::accepts(http, robot_id, user, &seen.old)? {
                let path = harbor::robot_path(robot_id);
                return Err(http.error(&path, messages::HARBOR_BOTH_REFUSED));
            }
            Ok(None)
        }
    }
}

/// The vault's key or the entry changed since `rotate` read it; nothing was sent.
fn changed() -> Error {
    Error::Rotate(messages::VAULT_CHANGED_WHILE_ROTATING.to_owned())
}

/// A fault hook for the crash tests, in debug builds only: with
/// `LOCKBOX_DEBUG_KILL_AT=STEP` the process sends itself SIGKILL at that step
/// (`before-pending`, `before-request`, `after-request`, `after-store`). Release
/// builds compile it out.
fn debug_kill_at(step: &str) {
    #[cfg(not(debug_assertions))]
    let _ = step;
    #[cfg(debug_assertions)]
    if std::env::var_os("LOCKBOX_DEBUG_KILL_AT").is_some_and(|v| v == step) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}
