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
//! The vault's lock is held for the whole rotation (as `passwd` holds it), so a
//! concurrent `store` waits and no update is lost; `get` reads the file and answers
//! the secret in force until the new one is written.
use age::secrecy::SecretString;
use clap::Args;

use super::{KeyOpts, entry_opener};
use crate::config::Settings;
use crate::error::Error;
use crate::exit::Exit;
use crate::file::{LockGuard, VaultPath};
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

/// Rotates one entry under the vault's lock; the lines to print. `opened_for` is the
/// public key of the vault `opener` was opened for.
fn rotate_one(
    path: &VaultPath,
    request: &str,
    opener: &dyn EntryOpener,
    opened_for: &str,
    days: u32,
) -> Result<Vec<String>, Error> {
    let guard = path.lock()?;
    let mut vault = path.read_existing()?;
    // A `passwd` between opening the key and the lock: the settings' MAC would fail
    // with the old key, a false alarm of tampering.
    if vault.public().to_string() != opened_for {
        return Err(Error::VaultChangedWhileRotating);
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
    let mut lines = Vec::new();
    let expires_at = match rotation.provider {
        Provider::GitlabPat => {
            let expires_on = rfc3339(unix_now() + u64::from(days) * 86_400)[..10].to_owned();
            debug_kill_at("before-request");
            let renewed = gitlab::rotate(&http, &old, &expires_on)?;
            // The old token is revoked now: the new one is sealed before anything else.
            vault.finish_rotation(&server, &renewed.secret, renewed.expires_at)?;
            path.write(&guard, &vault)?;
            if renewed.date_unread {
                eprintln!(
                    "{}",
                    messages::sanitize(&messages::rotated_date_unread(&server))
                );
            }
            renewed.expires_at
        }
        Provider::HarborRobot { robot_id } => {
            let (expires_at, recovered) = harbor_rotation(
                path, &guard, &mut vault, &server, &entry, opener, &http, robot_id, &old,
            )?;
            if recovered {
                lines.push(messages::rotation_recovered(&server));
            }
            expires_at
        }
    };
    debug_kill_at("after-store");
    lines.push(messages::rotated(
        &server,
        kind,
        expires_at.map(rfc3339).as_deref(),
    ));
    Ok(lines)
}

/// The Harbor half of [`rotate_one`], under its lock: the new secret's expiry, and
/// whether an interrupted rotation was finished.
#[allow(clippy::too_many_arguments)]
fn harbor_rotation(
    path: &VaultPath,
    guard: &LockGuard,
    vault: &mut Vault,
    server: &str,
    entry: &Entry,
    opener: &dyn EntryOpener,
    http: &Http,
    robot_id: u64,
    old: &SecretString,
) -> Result<(Option<u64>, bool), Error> {
    let user = entry.username.as_str();
    // An interrupted rotation: its pending secret is kept only if Harbor already holds
    // it. Never sent as a *new* secret: a pending secret planted in the file (anyone
    // can seal one to the public key) would become the robot's.
    let recovered = match &entry.meta.pending {
        Some(p) => {
            let candidate = opener.open_entry(server, user, p)?;
            match harbor::refresh(http, robot_id, user, &candidate, &candidate)? {
                harbor::Refreshed::Done(answered) => Some(answered.unwrap_or(candidate)),
                // A 401 does not prove Harbor holds the old secret: a disabled or
                // expired robot refuses every secret. The pending one (perhaps the
                // only one Harbor accepts) is given up only once the old one works.
                harbor::Refreshed::Refused => {
                    if !harbor::accepts(http, robot_id, user, old)? {
                        let path = harbor::robot_path(robot_id);
                        return Err(http.error(&path, messages::HARBOR_BOTH_REFUSED));
                    }
                    None
                }
            }
        }
        None => None,
    };
    let was_recovered = recovered.is_some();
    let new = match recovered {
        Some(new) => new,
        None => {
            let new = harbor::new_secret();
            debug_kill_at("before-pending");
            // Sealed and durable before Harbor hears of it.
            vault.set_pending(server, Some(&new))?;
            path.write(guard, vault)?;
            debug_kill_at("before-request");
            match harbor::refresh(http, robot_id, user, old, &new)? {
                // Harbor named another secret than the one sent: that one it holds.
                harbor::Refreshed::Done(answered) => answered.unwrap_or(new),
                harbor::Refreshed::Refused => {
                    let path = harbor::robot_path(robot_id);
                    return Err(http.error(&path, "HTTP 401 (the stored secret was refused)"));
                }
            }
        }
    };
    debug_kill_at("after-request");
    // Harbor holds `new` now: it is sealed before anything else is asked.
    vault.finish_rotation(server, &new, entry.meta.expires_at)?;
    path.write(guard, vault)?;
    // The robot's expiry does not change with its secret; read it when Harbor lets this
    // robot, else keep the one known.
    let expires_at =
        harbor::expires_at(http, robot_id, user, &new).unwrap_or(entry.meta.expires_at);
    if expires_at != entry.meta.expires_at {
        vault.set_expiry(server, expires_at)?;
        path.write(guard, vault)?;
    }
    Ok((expires_at, was_recovered))
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
