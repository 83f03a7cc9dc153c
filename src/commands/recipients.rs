//! `recipients list|add|remove`: the vault's age slots; removing one rotates the key.
//! Also the parsing of recipient arguments and recipients files, which `init` shares.
use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{KeyOpts, open_key};
use crate::config::Settings;
use crate::crypto::Recipient;
use crate::error::{Error, Usage};
use crate::exit::Exit;
use crate::keysource::{self, Terminal};
use crate::messages;
use crate::rotation::Handover;
use crate::vault::Slot;

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

/// A recipient and its label (see [`parse_recipient_line`]).
pub fn parse_recipient_arg(line: &str) -> Result<(Recipient, String), Error> {
    parse_recipient_line(line)?.ok_or_else(|| Error::BadRecipient(line.to_owned()))
}

/// Parses one line of a recipients or authorized_keys file: options before the key
/// type are skipped; `Ok(None)` for blank lines, comments and key types age cannot
/// use (reported by the caller).
pub fn parse_recipient_line(line: &str) -> Result<Option<(Recipient, String)>, Error> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let fields: Vec<&str> = line.split_whitespace().collect();
    if let Some(i) = fields
        .iter()
        .position(|f| *f == "ssh-ed25519" || *f == "ssh-rsa")
    {
        let Some(blob) = fields.get(i + 1) else {
            return Err(Error::BadRecipient(line.to_owned()));
        };
        let text = format!("{} {blob}", fields[i]);
        let recipient = Recipient::parse(&text)?;
        let comment = fields[i + 2..].join(" ");
        let label = if comment.is_empty() {
            recipient.canonical()
        } else {
            comment
        };
        return Ok(Some((recipient, label)));
    }
    if let Some(age) = fields.iter().find(|f| f.starts_with("age1")) {
        let recipient = Recipient::parse(age)?;
        return Ok(Some((recipient.clone(), recipient.canonical())));
    }
    if fields
        .iter()
        .any(|f| f.starts_with("ssh-") || f.starts_with("ecdsa-") || f.starts_with("sk-"))
    {
        return Ok(None);
    }
    Err(Error::BadRecipient(line.to_owned()))
}

/// Reads a recipients or authorized_keys file (`init --recipients-file`,
/// `recipients add --file`): key types age cannot use are skipped with a warning on
/// stderr, as `ssh-keygen`-style files often mix them in; anything else unreadable is
/// an error naming the line.
pub fn read_recipients_file(file: &Path) -> Result<Vec<(Recipient, String)>, Error> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io("read", file, e))?;
    let mut parsed = Vec::new();
    for (number, line) in text.lines().map(str::trim).enumerate() {
        let parsed_line = parse_recipient_line(line).map_err(|e| match e {
            Error::BadRecipient(text) => Error::BadRecipientLine {
                file: file.to_owned(),
                line: number + 1,
                text,
            },
            other => other,
        })?;
        match parsed_line {
            Some(p) => parsed.push(p),
            None if !line.is_empty() && !line.starts_with('#') => {
                eprintln!("{}", messages::sanitize(&messages::skipped_key(line)));
            }
            None => {}
        }
    }
    Ok(parsed)
}

/// `recipients …`
pub fn run(cmd: Opts, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    match cmd {
        Opts::List { json } => {
            if json {
                let slots: Vec<serde_json::Value> = vault
                    .slots()
                    .iter()
                    .map(|s| match s {
                        Slot::Passphrase(_) => serde_json::json!({"type": "passphrase"}),
                        Slot::Age { label, recipient, .. } => {
                            serde_json::json!({"type": "age", "label": label, "recipient": recipient})
                        }
                        Slot::OpenBao { label, mount, key, .. } => {
                            serde_json::json!({"type": "openbao", "label": label, "mount": mount, "key": key})
                        }
                    })
                    .collect();
                crate::outln!("{}", serde_json::Value::Array(slots));
            } else {
                for s in vault.slots() {
                    // Each field sanitized on its own: the tab between them is no escape.
                    let line = match s {
                        Slot::Passphrase(_) => "passphrase".to_owned(),
                        Slot::Age {
                            label, recipient, ..
                        } => format!(
                            "{}\t{}",
                            messages::sanitize(label),
                            messages::sanitize(recipient)
                        ),
                        Slot::OpenBao {
                            label, mount, key, ..
                        } => format!(
                            "{}\topenbao transit {}/{}",
                            messages::sanitize(label),
                            messages::sanitize(mount),
                            messages::sanitize(key)
                        ),
                    };
                    crate::outln!("{line}");
                }
            }
            Ok(Exit::Ok)
        }
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
        } => {
            let mut parsed = Vec::new();
            for r in &recipients {
                match parse_recipient_line(r)? {
                    Some(p) => parsed.push(p),
                    None => return Err(Error::BadRecipient(r.clone())),
                }
            }
            for f in &file {
                parsed.extend(read_recipients_file(f)?);
            }
            if parsed.is_empty() {
                return Err(Usage::NoRecipients.into());
            }
            require_plugins(&parsed)?;
            let vault_key = open_key(&vault, settings, &key.flags())?.key;
            let added = path.update(|v| {
                let mut added = Vec::new();
                for (r, default_label) in &parsed {
                    let l = label.clone().unwrap_or_else(|| default_label.clone());
                    if v.add_recipient(&vault_key, r, l.clone())? {
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
        Opts::Remove { which, key } => {
            let removing = vault.find_recipient(&which);
            if removing.is_empty() {
                return Err(Error::NoSuchRecipient(which));
            }
            let client = rotation_client(
                &vault,
                &removing,
                settings,
                key.openbao_token_file.as_deref(),
            )?;
            let rewrap = client.as_ref().map(rewrap_with);
            let opened = open_key(&vault, settings, &key.flags())?;
            let old = opened.key;
            // Opened with an identity: the passphrase slot is re-wrapped, so the
            // passphrase is still needed (LOCKBOX_PASSPHRASE_FILE, else the terminal).
            let passphrase =
                keysource::rewrap_passphrase(&vault, opened.passphrase, &settings.keys, &Terminal)?;
            let old_public = old.public().to_string();
            let mut handover = Handover::new(&old_public);
            let rotated = path.update_with(
                |v| {
                    let slots = v.find_recipient(&which);
                    if slots.is_empty() {
                        return Err(Error::NoSuchRecipient(which.clone()));
                    }
                    let new = v.rotate_with(
                        &old,
                        &slots,
                        passphrase.as_ref(),
                        None,
                        rewrap
                            .as_ref()
                            .map(|f| f as crate::vault::OpenBaoRewrap<'_>),
                    )?;
                    Ok(((slots.len(), new), true))
                },
                |(_, new_key)| handover.give_new_key(new_key),
            );
            let removed = match rotated {
                Ok((removed, _)) => {
                    handover.retire_old_key(&old);
                    removed
                }
                Err(e) => {
                    handover.undo();
                    return Err(e);
                }
            };
            crate::outln!(
                "{}",
                messages::sanitize(&messages::recipients_removed(&which, removed))
            );
            Ok(Exit::Ok)
        }
    }
}

/// `recipients add --openbao-mount MOUNT --openbao-key KEY`: the vault key wrapped with
/// transit `encrypt`, bound to this vault (`openbao::seal_vault_key` refuses a key that
/// is not `derived=true` or ignores the context), added under the vault lock.
fn add_openbao(
    path: &crate::file::VaultPath,
    vault: &crate::vault::Vault,
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

/// Checks that the plugin of every plugin recipient about to be added is in `PATH`,
/// before anything is asked or written (`init`, `recipients add`).
pub fn require_plugins(recipients: &[(Recipient, String)]) -> Result<(), Error> {
    for (r, _) in recipients {
        if let Some(name) = r.needs_plugin() {
            crate::identities::require_plugin(name)?;
        }
    }
    Ok(())
}

/// What a rotation (`passwd`, `recipients remove`) needs from this host, found before
/// anything is asked or written. Every kept plugin slot is re-wrapped by running its
/// plugin: one not in `PATH` is [`Error::RotatePlugin`] (tag slots wrap natively).
/// Then the transit client the kept OpenBao slots are re-wrapped with: `None` when no
/// kept slot is an OpenBao slot; no token is [`Error::RotateOpenBao`].
pub fn rotation_client(
    vault: &crate::vault::Vault,
    removed: &[usize],
    settings: &Settings,
    token_file: Option<&Path>,
) -> Result<Option<crate::openbao::Client>, Error> {
    use crate::identities::{SlotKind, require_plugin, slot_kind};
    use crate::openbao::{self, TokenScope};
    for (i, slot) in vault.slots().iter().enumerate() {
        if let Slot::Age {
            label, recipient, ..
        } = slot
            && !removed.contains(&i)
            && let SlotKind::Plugin(plugin) = slot_kind(recipient)
            && require_plugin(&plugin).is_err()
        {
            return Err(Error::RotatePlugin {
                plugin,
                label: label.clone(),
            });
        }
    }
    let Some(label) = vault.slots().iter().enumerate().find_map(|(i, s)| match s {
        Slot::OpenBao { label, .. } if !removed.contains(&i) => Some(label.clone()),
        _ => None,
    }) else {
        return Ok(None);
    };
    let lookup = |name: &str| settings.keys.openbao_var(name);
    let scope = TokenScope::Person {
        flag: token_file,
        home: settings.keys.home.as_deref(),
    };
    let Some(token) = openbao::find_token(&lookup, scope)? else {
        return Err(Error::RotateOpenBao(label));
    };
    let bao = openbao::Settings::from_lookup(&lookup)?;
    Ok(Some(openbao::Client::new(&bao, token)?))
}

/// The re-wrapper [`crate::vault::Vault::rotate_with`] takes, for `client`.
pub fn rewrap_with(
    client: &crate::openbao::Client,
) -> impl Fn(&str, &str, &crate::crypto::VaultKey) -> Result<String, Error> + '_ {
    move |mount, key, new| Ok(crate::openbao::seal_vault_key(client, mount, key, new)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_comment_becomes_label() {
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@laptop";
        let (_, label) = parse_recipient_arg(line).unwrap();
        assert_eq!(label, "alice@laptop");
    }
}
