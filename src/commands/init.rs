//! `init`: create the vault with a passphrase slot and/or age recipient slots.
use std::path::PathBuf;

use clap::Args;

use super::{ask_new_passphrase, kdf_params};
use crate::config::Settings;
use crate::docker::config_json::DockerConfig;
use crate::error::{Error, Usage};
use crate::exit::Exit;
use crate::identity::recipient::{parse_recipient_arg, read_recipients_file, require_plugins};
use crate::messages;
use crate::secret_io;
use crate::vault::crypto::VaultKey;
use crate::vault::{Slot, Vault};

/// `init`
#[derive(Debug, Args)]
pub struct Opts {
    /// Add a passphrase slot; the passphrase is asked twice on the terminal.
    #[arg(long)]
    passphrase: bool,
    /// Add a passphrase slot with the passphrase read from FILE (one trailing newline
    /// is dropped), for scripts.
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase")]
    passphrase_file: Option<PathBuf>,
    /// Add an age slot for RECIPIENT: `age1…`, `ssh-ed25519 …`, `ssh-rsa …`, an age
    /// plugin's recipient (`age1NAME1…`, wrapped by running age-plugin-NAME) or a tag
    /// recipient (`age1tag1…`). Repeatable.
    #[arg(long, value_name = "RECIPIENT")]
    recipient: Vec<String>,
    /// The label of the age slot of the --recipient in the same position (the first
    /// --label names the first --recipient, …); default: an SSH key's comment, else
    /// empty. Repeatable.
    #[arg(long, value_name = "LABEL", requires = "recipient")]
    label: Vec<String>,
    /// Add an age slot for every recipient in FILE (one per line, `#` comments).
    #[arg(long, value_name = "FILE")]
    recipients_file: Vec<PathBuf>,
    /// Replace an existing vault (its entries are lost).
    #[arg(long)]
    force: bool,
}

/// Runs `init`.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    if o.label.len() > o.recipient.len() {
        return Err(Usage::TooManyLabels.into());
    }
    let mut recipients = Vec::new();
    for (i, r) in o.recipient.iter().enumerate() {
        let (recipient, default_label) = parse_recipient_arg(r)?;
        let label = o.label.get(i).cloned().unwrap_or(default_label);
        recipients.push((recipient, label));
    }
    for file in &o.recipients_file {
        recipients.extend(read_recipients_file(file)?);
    }
    require_plugins(&recipients)?;
    // Before any question: a person must not type a new passphrase twice to learn
    // that the vault exists (and, without a terminal, hear "no terminal" instead).
    if !o.force && path.read()?.is_some() {
        return Err(Error::AlreadyExists(path.vault.clone()));
    }
    let passphrase = if o.passphrase {
        Some(ask_new_passphrase()?)
    } else if let Some(file) = &o.passphrase_file {
        let p = secret_io::read_passphrase_file(file)?;
        super::warn_if_weak(&p);
        Some(p)
    } else {
        None
    };
    if passphrase.is_none() && recipients.is_empty() {
        return Err(Usage::InitNeedsSlot.into());
    }
    let key = VaultKey::generate();
    let mut slots = Vec::new();
    if let Some(p) = &passphrase {
        slots.push(Vault::passphrase_slot(&key, p, kdf_params(settings)?)?);
    }
    for (recipient, label) in &recipients {
        slots.push(Vault::age_slot_with(
            &key,
            recipient,
            label.clone(),
            &crate::keysource::new_slots(),
        )?);
    }
    let vault = Vault::new(&key, slots);
    path.create(&vault, o.force)?;
    // Whoever makes a vault trusts it to run the sources they add to it.
    super::trust_vault_key(settings, &vault.public().to_string());
    let described: Vec<String> = vault.slots().iter().map(Slot::describe).collect();
    crate::outln!(
        "{}",
        messages::init_done(
            &messages::sanitize(&path.vault.display().to_string()),
            &messages::sanitize(&described.join(", ")),
            &messages::sanitize(&next_step(settings))
        )
    );
    Ok(Exit::Ok)
}

/// What to do after `init`, from what config.json already holds: `docker login` when
/// credsStore already names lockbox, else `import` (which sets it, and moves any
/// plaintext credentials first).
fn next_step(settings: &Settings) -> String {
    let Ok(dir) = settings.location.docker_config_dir() else {
        return messages::init_next_import("config.json");
    };
    let path = dir.join("config.json");
    let shown = path.display().to_string();
    match DockerConfig::read(&path) {
        Ok(c) if c.creds_store() == Some(crate::docker::config_json::STORE_NAME) => {
            messages::init_next_login(&shown)
        }
        Ok(c) => match c.scan().found.len() {
            0 => messages::init_next_import(&shown),
            n => messages::init_next_import_plaintext(&shown, n),
        },
        Err(_) => messages::init_next_import(&shown),
    }
}
