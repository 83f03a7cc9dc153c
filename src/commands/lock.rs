//! `lock`: make the agent forget this vault's key, or every key.
use clap::Args;

use crate::agent::client::{Agent, LockOutcome};
use crate::config::Settings;
use crate::error::Error;
use crate::exit::Exit;
use crate::messages;

/// `lock`
#[derive(Debug, Args)]
pub struct Opts {
    /// Forget every vault's key and stop the agent.
    #[arg(long)]
    all: bool,
}

/// Runs `lock`.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit, Error> {
    let (public_key, what) = if o.all {
        (None, "every vault".to_owned())
    } else {
        let path = settings.location.resolve()?;
        let vault = path.read_existing()?;
        (
            Some(vault.public().to_string()),
            messages::sanitize(&path.vault.display().to_string()),
        )
    };
    match Agent::for_requests(settings).lock(public_key.as_deref())? {
        LockOutcome::NoAgent => crate::outln!("{}", messages::NO_AGENT),
        LockOutcome::Locked => crate::outln!("{}", messages::locked_now(&what)),
        LockOutcome::StoppedOtherBuild => crate::outln!("{}", messages::locked_now("every vault")),
        // Said on stderr with exit 1: the vault asked for is still open to every `get`.
        LockOutcome::CredentialStays(label) => {
            let line = messages::lock_credential(o.all, &messages::sanitize(&label));
            eprintln!("{}{line}", messages::ERROR_PREFIX);
            return Ok(Exit::Failure);
        }
    }
    Ok(Exit::Ok)
}
