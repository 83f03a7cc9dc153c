//! `passwd`: add or change the passphrase slot (and rotate the vault key).
use std::path::PathBuf;

use clap::Args;

use super::{ask_new_passphrase, kdf_params, open_key};
use crate::agent::handover::Handover;
use crate::config::Settings;
use crate::error::Error;
use crate::exit::Exit;
use crate::keysource::{self, KeyFlags};
use crate::messages;
use crate::secret_io;

/// `passwd`
#[derive(Debug, Args)]
pub struct Opts {
    /// Open the vault with an age identity file or SSH key instead of the old
    /// passphrase.
    #[arg(long, value_name = "FILE")]
    identity_file: Option<PathBuf>,
    /// Read the current passphrase from FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "identity_file")]
    old_passphrase_file: Option<PathBuf>,
    /// The passphrase of a passphrase-protected identity (ssh-keygen -N, age -p), from
    /// FILE instead of the terminal; one try. For --identity-file, LOCKBOX_IDENTITY and
    /// LOCKBOX_IDENTITY_FILE.
    #[arg(long, value_name = "FILE")]
    identity_passphrase_file: Option<PathBuf>,
    /// Read the new passphrase from FILE instead of asking twice on the terminal.
    #[arg(long, value_name = "FILE")]
    new_passphrase_file: Option<PathBuf>,
    /// An OpenBao token that may encrypt with the vault's transit key, from FILE: the
    /// new vault key is re-wrapped for its OpenBao slot.
    #[arg(long, value_name = "FILE")]
    openbao_token_file: Option<PathBuf>,
}

/// `passwd`: add or change the passphrase slot.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    let has_passphrase = keysource::has_passphrase_slot(&vault);
    // Every OpenBao slot is kept and re-wrapped: the token is found before anything.
    let rewrap = keysource::rotation(&vault, &[], settings, o.openbao_token_file.as_deref())?;
    let flags = KeyFlags {
        passphrase_file: o.old_passphrase_file.clone(),
        identity_file: o.identity_file.clone(),
        identity_passphrase_file: o.identity_passphrase_file.clone(),
        ..KeyFlags::default()
    };
    let key = match open_key(&vault, settings, &flags) {
        Ok(opened) => opened.key,
        // Nothing opened it and there is no passphrase slot to ask for: say how.
        Err(Error::NoPassphraseSlot | Error::Locked) if !has_passphrase => {
            return Err(Error::PasswdNeedsIdentity);
        }
        Err(e) => return Err(e),
    };
    let new = match &o.new_passphrase_file {
        Some(f) => {
            let p = secret_io::read_passphrase_file(f)?;
            super::warn_if_weak(&p);
            p
        }
        None => ask_new_passphrase()?,
    };
    let params = kdf_params(settings)?;
    let old_public = key.public().to_string();
    // A new passphrase also gets a new vault key: an old copy of the file and the old
    // passphrase open nothing stored from now on.
    // An agent holding the old key gets the new one before the rename (docs/AGENT.md).
    let mut handover = Handover::new(&old_public);
    let mut dropped = Vec::new();
    let rotated = path.update_with(
        |v| {
            let passphrase_slots: Vec<usize> = v
                .slots()
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_passphrase())
                .map(|(i, _)| i)
                .collect();
            dropped = v.drop_unverified_rotation(&key);
            v.rotate(&key, &passphrase_slots, None, Some((&new, params)), &rewrap)
                .map(|k| (k, true))
        },
        |new_key| handover.give_new_key(new_key),
    );
    match rotated {
        Ok(new_key) => {
            handover.retire_old_key(&key);
            super::carry_trust(settings, &old_public, &new_key.public().to_string());
        }
        Err(e) => {
            handover.undo();
            return Err(e);
        }
    }
    for w in dropped {
        eprintln!("{}", messages::sanitize(&w));
    }
    crate::outln!("{}", messages::passwd_done(has_passphrase));
    Ok(Exit::Ok)
}
