//! `unlock`: open the vault once and let the agent hold its key for a while.
use std::time::Duration;

use clap::Args;

use super::{KeyOpts, open_key};
use crate::agent_client::Agent;
use crate::config::Settings;
use crate::error::{Error, Usage};
use crate::exit::Exit;
use crate::messages;

/// How long `unlock` holds a key unless told otherwise: long enough for a working
/// session of builds, short enough that a forgotten unlock does not keep the key in
/// memory overnight.
pub const DEFAULT_TIMEOUT: &str = "1h";

/// `unlock`
#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    key: KeyOpts,
    /// How long the agent holds the key: 15m, 1h, 8h… (at most 7 days).
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_TIMEOUT)]
    timeout: String,
}

fn parse_timeout(text: &str) -> Result<Duration, Error> {
    let bad = || Error::from(Usage::BadTimeout(text.to_owned()));
    let d = humantime::parse_duration(text).map_err(|_| bad())?;
    if d < crate::agent::MIN_TIMEOUT || d > crate::agent::MAX_TIMEOUT {
        return Err(bad());
    }
    Ok(d)
}

/// Runs `unlock`.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit, Error> {
    let timeout = parse_timeout(&o.timeout)?;
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    let opened = open_key(&vault, settings, &o.key.flags())?;
    Agent::for_user().unlock(&opened.key, timeout)?;
    crate::outln!(
        "{}",
        messages::unlocked(
            &messages::sanitize(&path.vault.display().to_string()),
            &humantime::format_duration(timeout).to_string()
        )
    );
    Ok(Exit::Ok)
}
