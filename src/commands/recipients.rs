//! `recipients list|add|remove`: the vault's age slots; removing one rotates the key.
//! Also the parsing of recipient arguments and recipients files, which `init` shares.
use std::path::PathBuf;

use clap::Subcommand;

use super::{KeyOpts, open_key};
use crate::agent::handover::Handover;
use crate::config::Settings;
use crate::error::{Error, Usage};
use crate::exit::Exit;
use crate::file::VaultPath;
use crate::identity::recipient::{parse_recipient_line, read_recipients_file, require_plugins};
use crate::keysource::{self, Terminal};
use crate::messages;
use crate::vault::{Slot, Vault};

/// `recipients`
#[derive(Debug, Subcommand)]
pub enum Opts {
    /// List the vault's slots.
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Add age slots: `age1…`, `ssh-ed25519 …`, `ssh-rsa …`, an age plugin's
    /// recipient (`age1NAME1…`, wrapped by running age-plugin-NAME) or a tag recipient
    /// (`age1tag1…`), or files of them (GitHub-style authorized_keys files work); or an
    /// OpenBao transit slot (--openbao-mount, --openbao-key).
    Add {
        /// Recipients to add.
        recipients: Vec<String>,
        /// Add every recipient in FILE (one per line, `#` comments, authorized_keys
        /// options allowed).
        #[arg(long, value_name = "FILE")]
        file: Vec<PathBuf>,
        /// Label for the new slot(s) (default: the SSH key comment, or the key;
        /// MOUNT/KEY for an OpenBao slot).
        #[arg(long)]
        label: Option<String>,
        /// Add an OpenBao transit slot: the transit mount (e.g. transit). The server
        /// and token come from this host (LOCKBOX_OPENBAO_ADDR, --openbao-token-file).
        #[arg(long, value_name = "MOUNT", requires = "openbao_key", conflicts_with_all = ["recipients", "file"])]
        openbao_mount: Option<String>,
        /// The transit key for --openbao-mount, created with derived=true.
        #[arg(long, value_name = "KEY", requires = "openbao_mount")]
        openbao_key: Option<String>,
        #[allow(missing_docs)]
        #[command(flatten)]
        key: KeyOpts,
    },
    /// Remove the age slot(s) with this label or recipient, and rotate the vault key
    /// so the removed key cannot open any later version of the vault.
    Remove {
        /// A slot label, or its recipient.
        which: String,
        #[allow(missing_docs)]
        #[command(flatten)]
        key: KeyOpts,
    },
}

/// `recipients …`
pub fn run(cmd: Opts, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    match cmd {
        Opts::List { json } => list(&vault, json),
        Opts::Add {
            label,
            openbao_mount: Some(mount),
            openbao_key: Some(transit_key),
            key,
            ..
        } => add_openbao(&path, &vault, settings, &mount, &transit_key, label, &key),
        Opts::Add {
            recipients,
            file,
            label,
            key,
            ..
        } => add(&path, &vault, settings, (&recipients, &file), label, &key),
        Opts::Remove { which, key } => remove(&path, &vault, settings, which, &key),
    }
}

/// `recipients list [--json]`.
fn list(vault: &Vault, json: bool) -> Result<Exit, Error> {
    if json {
        let slots: Vec<serde_json::Value> = vault.slots().iter().map(Slot::list_json).collect();
        crate::outln!("{}", serde_json::Value::Array(slots));
    } else {
        for s in vault.slots() {
            crate::outln!("{}", s.list_line());
        }
    }
    Ok(Exit::Ok)
}

/// `recipients add RECIPIENT… [--file FILE…]`: the recipients of the arguments, then
/// of the files.
fn add(
    path: &VaultPath,
    vault: &Vault,
    settings: &Settings,
    (recipients, files): (&[String], &[PathBuf]),
    label: Option<String>,
    key: &KeyOpts,
) -> Result<Exit, Error> {
    let mut parsed = Vec::new();
    for r in recipients {
        match parse_recipient_line(r)? {
            Some(p) => parsed.push(p),
            None => return Err(Error::BadRecipient(r.clone())),
        }
    }
    for f in files {
        parsed.extend(read_recipients_file(f)?);
    }
    if parsed.is_empty() {
        return Err(Usage::NoRecipients.into());
    }
    require_plugins(&parsed)?;
    let vault_key = open_key(vault, settings, &key.flags())?.key;
    let rewrap = keysource::new_slots();
    let added = path.update(|v| {
        let mut added = Vec::new();
        for (r, default_label) in &parsed {
            let l = label.clone().unwrap_or_else(|| default_label.clone());
            if v.add_recipient(&vault_key, r, l.clone(), &rewrap)? {
                added.push(l);
            }
        }
        let changed = !added.is_empty();
        Ok((added, changed))
    })?;
    crate::outln!(
        "{}",
        messages::sanitize(&messages::recipients_added(&added))
    );
    Ok(Exit::Ok)
}

/// `recipients remove WHICH`: a rotation without the slots `which` names, the agent's
/// key handed over.
fn remove(
    path: &VaultPath,
    vault: &Vault,
    settings: &Settings,
    which: String,
    key: &KeyOpts,
) -> Result<Exit, Error> {
    let removing = vault.find_recipient(&which);
    if removing.is_empty() {
        return Err(Error::NoSuchRecipient(which));
    }
    let rewrap = keysource::rotation(
        vault,
        &removing,
        settings,
        key.openbao_token_file.as_deref(),
    )?;
    let opened = open_key(vault, settings, &key.flags())?;
    let old = opened.key;
    // Opened with an identity: the passphrase slot is re-wrapped, so the
    // passphrase is still needed (LOCKBOX_PASSPHRASE_FILE, else the terminal).
    let passphrase =
        keysource::rewrap_passphrase(vault, opened.passphrase, &settings.keys, &Terminal)?;
    let old_public = old.public().to_string();
    let mut handover = Handover::new(&old_public);
    let mut dropped = Vec::new();
    let rotated = path.update_with(
        |v| {
            let slots = v.find_recipient(&which);
            if slots.is_empty() {
                return Err(Error::NoSuchRecipient(which.clone()));
            }
            dropped = v.drop_unverified_rotation(&old);
            let new = v.rotate(&old, &slots, passphrase.as_ref(), None, &rewrap)?;
            Ok(((slots.len(), new), true))
        },
        |(_, new_key)| handover.give_new_key(new_key),
    );
    let removed = match rotated {
        Ok((removed, new_key)) => {
            handover.retire_old_key(&old);
            super::carry_trust(settings, &old_public, &new_key.public().to_string());
            removed
        }
        Err(e) => {
            handover.undo();
            return Err(e);
        }
    };
    for w in dropped {
        eprintln!("{}", messages::sanitize(&w));
    }
    crate::outln!(
        "{}",
        messages::sanitize(&messages::recipients_removed(&which, removed))
    );
    Ok(Exit::Ok)
}

/// `recipients add --openbao-mount MOUNT --openbao-key KEY`: the vault key wrapped with
/// transit `encrypt`, bound to this vault (`openbao::seal_vault_key` refuses a key that
/// is not `derived=true` or ignores the context), added under the vault lock.
fn add_openbao(
    path: &VaultPath,
    vault: &Vault,
    settings: &Settings,
    mount: &str,
    transit_key: &str,
    label: Option<String>,
    key: &KeyOpts,
) -> Result<Exit, Error> {
    use crate::openbao::{self, TokenScope};
    openbao::validate_mount(mount)?;
    openbao::validate_key_name(transit_key)?;
    // The server and the token are checked before anything is asked on the terminal.
    let lookup = |name: &str| settings.keys.openbao_var(name);
    let bao = openbao::Settings::from_lookup(&lookup)?;
    let scope = TokenScope::Person {
        flag: key.openbao_token_file.as_deref(),
        home: settings.keys.home.as_deref(),
    };
    let token = openbao::find_token(&lookup, scope)?.ok_or_else(|| openbao::no_token(scope))?;
    let client = openbao::Client::new(&bao, token)?;
    // The token file is the one to encrypt with, not a way to open this vault.
    let flags = keysource::KeyFlags {
        openbao: false,
        openbao_token_file: None,
        ..key.flags()
    };
    let vault_key = open_key(vault, settings, &flags)?.key;
    let ciphertext = openbao::seal_vault_key(&client, mount, transit_key, &vault_key)?;
    let label = label.unwrap_or_else(|| format!("{mount}/{transit_key}"));
    let added = path.update(|v| {
        let added = v.add_openbao(&vault_key, label.clone(), mount, transit_key, ciphertext)?;
        Ok((added, added))
    })?;
    let added = if added { vec![label] } else { Vec::new() };
    println!(
        "{}",
        messages::sanitize(&messages::recipients_added(&added))
    );
    Ok(Exit::Ok)
}
