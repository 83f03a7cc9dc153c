//! `unlock`: open the vault once and let the agent hold its key for a while.
use std::time::Duration;

use clap::Args;

use super::{KeyOpts, open_key};
use crate::agent::client::Agent;
use crate::config::Settings;
use crate::error::{Error, Usage};
use crate::exit::Exit;
use crate::messages;

/// `unlock`
#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    key: KeyOpts,
    /// Forget the key after this long without a `get`; each `get` starts it again
    /// (never past --timeout): 15m, 1h…
    #[arg(long, value_name = "DURATION", default_value = crate::agent::DEFAULT_IDLE)]
    idle: String,
    /// Forget the key this long after unlock, used or not: 1h, 8h… (at most 7 days).
    #[arg(long, value_name = "DURATION", default_value = crate::agent::DEFAULT_TIMEOUT)]
    timeout: String,
}

fn parse_timeout(flag: &'static str, text: &str) -> Result<Duration, Error> {
    let bad = || Error::from(Usage::BadTimeout(flag, text.to_owned()));
    let d = humantime::parse_duration(text).map_err(|_| bad())?;
    if d < crate::agent::MIN_TIMEOUT || d > crate::agent::MAX_TIMEOUT {
        return Err(bad());
    }
    Ok(d)
}

/// Runs `unlock`.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit, Error> {
    let idle = parse_timeout("--idle", &o.idle)?;
    let timeout = parse_timeout("--timeout", &o.timeout)?;
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    let opened = open_key(&vault, settings, &o.key.flags())?;
    // Always this user's agent, even inside `exec` (whose server takes no new key).
    let label = path.vault.display().to_string();
    Agent::for_user().unlock(&opened.key, &label, idle, timeout)?;
    crate::outln!(
        "{}",
        messages::unlocked(
            &messages::sanitize(&label),
            &humantime::format_duration(idle.min(timeout)).to_string(),
            &humantime::format_duration(timeout).to_string()
        )
    );
    Ok(Exit::Ok)
}
