//! Commands that move credentials in and out and manage the vault's keys: `import`,
//! `export`, `passwd`, `recipients list|add|remove`. None of them needs a registry
//! password again; all writes go through the vault's locked, atomic update.
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use age::secrecy::{ExposeSecret, SecretString};
use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use crate::agent_client::Agent;
use crate::cli::{KeyOpts, kdf_params, open_key};
use crate::config::Settings;
use crate::crypto::Recipient;
use crate::dockerconfig::{DockerConfig, Found};
use crate::error::{Error, Usage};
use crate::exit::Exit;
use crate::file::Location;
use crate::keys::{self, EntryOpener};
use crate::keysource::{self, AgentUse, KeyFlags, NeverPrompt, Terminal};
use crate::messages;
use crate::rotation::Handover;
use crate::vault::{Slot, Vault};

/// Largest output read from another helper (`import --from-helper`).
const MAX_HELPER_OUTPUT: usize = 4 << 20;

/// `import`
#[derive(Debug, Args)]
pub struct ImportOpts {
    /// The Docker config to read and rewrite (default: $DOCKER_CONFIG/config.json,
    /// else ~/.docker/config.json).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Also copy every entry out of another credential helper
    /// (`docker-credential-NAME list` and `get`), e.g. pass or secretservice.
    #[arg(long, value_name = "NAME")]
    from_helper: Option<String>,
    /// Show what would be imported (registries and usernames, never secrets) and
    /// change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Leave `credsStore` as it is.
    #[arg(long)]
    no_set_store: bool,
    /// Go on although the config names another credsStore or credHelpers, or has
    /// entries that cannot be read (those are left as they are).
    #[arg(long)]
    force: bool,
}

/// `export`
#[derive(Debug, Args)]
pub struct ExportOpts {
    /// Merge the entries into this Docker config (and drop `credsStore: lockbox`)
    /// instead of printing them.
    #[arg(long, value_name = "PATH")]
    to_config: Option<PathBuf>,
    #[command(flatten)]
    key: KeyOpts,
}

/// `passwd`
#[derive(Debug, Args)]
pub struct PasswdOpts {
    /// Open the vault with an age identity file or SSH key instead of the old
    /// passphrase.
    #[arg(long, value_name = "FILE")]
    identity_file: Option<PathBuf>,
    /// Read the current passphrase from FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "identity_file")]
    old_passphrase_file: Option<PathBuf>,
    /// Read the new passphrase from FILE instead of asking twice on the terminal.
    #[arg(long, value_name = "FILE")]
    new_passphrase_file: Option<PathBuf>,
}

/// `recipients`
#[derive(Debug, Subcommand)]
pub enum RecipientsCommand {
    /// List the vault's slots.
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Add age slots: `age1…`, `ssh-ed25519 …`, `ssh-rsa …`, or files of them
    /// (GitHub-style authorized_keys files work).
    Add {
        /// Recipients to add.
        recipients: Vec<String>,
        /// Add every recipient in FILE (one per line, `#` comments, authorized_keys
        /// options allowed).
        #[arg(long, value_name = "FILE")]
        file: Vec<PathBuf>,
        /// Label for the new slot(s) (default: the SSH key comment, or the key).
        #[arg(long)]
        label: Option<String>,
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

fn config_path(explicit: &Option<PathBuf>, location: &Location) -> Result<PathBuf, Error> {
    match explicit {
        Some(p) => Ok(p.clone()),
        None => Ok(location.docker_config_dir()?.join("config.json")),
    }
}

/// `import`: plaintext auths (and, optionally, another helper's entries) into the
/// vault in one locked write, read back and verified, then config.json rewritten
/// without them and with `credsStore` set.
pub fn import(o: ImportOpts, settings: &Settings) -> Result<Exit, Error> {
    let location = &settings.location;
    let path = location.resolve()?;
    let vault = path.read_existing()?;
    let mut config = DockerConfig::read(&config_path(&o.config, location)?)?;
    let cfg_path = config.path.display().to_string();
    let scan = config.scan();
    // Only what came from config.json is scrubbed from it.
    let scrub: Vec<String> = scan.found.iter().map(|f| f.server.clone()).collect();
    if !o.force {
        if let Some(store) = config.creds_store()
            && store != crate::dockerconfig::STORE_NAME
            && Some(store) != o.from_helper.as_deref()
        {
            return Err(config_error(&config, messages::import_other_store(store)));
        }
        // Registries routed to lockbox itself (as podman and skopeo need) are fine.
        let mut helpers = config.cred_helpers();
        helpers.retain(|(_, h)| h != crate::dockerconfig::STORE_NAME);
        if !helpers.is_empty() {
            let list: Vec<String> = helpers.iter().map(|(r, h)| format!("{r} → {h}")).collect();
            return Err(config_error(
                &config,
                messages::import_cred_helpers(&list.join(", ")),
            ));
        }
        if !scan.invalid.is_empty() {
            let list: Vec<String> = scan
                .invalid
                .iter()
                .map(|(r, why)| format!("{r}: {why}"))
                .collect();
            return Err(config_error(
                &config,
                messages::import_invalid(&list.join("; ")),
            ));
        }
    }
    let mut found = scan.found;
    if let Some(helper) = &o.from_helper {
        let mut from_helper = read_helper(helper)?;
        // The first copy of a registry wins. With `credsStore` naming the helper, Docker
        // has been reading the helper and plaintext beside it is a leftover; otherwise
        // the plaintext is what Docker has been using.
        if config.creds_store() == Some(helper.as_str()) {
            from_helper.append(&mut found);
            found = from_helper;
        } else {
            found.append(&mut from_helper);
        }
    }

    // When Docker already reads from lockbox, the vault is the live copy and wins over
    // a stale plaintext one. Otherwise Docker has been using the plaintext (e.g. after
    // `export --to-config` and a new `docker login`): it replaces the vault's entry,
    // or the newer password would be scrubbed and lost.
    let vault_is_live = config.creds_store() == Some(crate::dockerconfig::STORE_NAME);
    let mut to_store: Vec<&Found> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut out = String::new();
    for f in &found {
        let in_vault = vault.entries().contains_key(&f.server);
        if !seen.insert(f.server.clone()) {
            out.push_str(&format!(
                "  keep   {} (found twice; the first wins)\n",
                f.server
            ));
        } else if in_vault && vault_is_live {
            out.push_str(&format!("  keep   {} (already in the vault)\n", f.server));
        } else {
            let verb = if in_vault { "update" } else { "import" };
            out.push_str(&format!("  {verb} {} as {}\n", f.server, f.username));
            to_store.push(f);
        }
    }
    let set_store =
        !o.no_set_store && config.creds_store() != Some(crate::dockerconfig::STORE_NAME);

    if o.dry_run {
        let mut plan = format!("Plan for {cfg_path} → {}:\n", path.vault.display());
        plan.push_str(&out);
        if !scrub.is_empty() {
            plan.push_str(&format!(
                "  remove the plaintext of {} entr{} from config.json\n",
                scrub.len(),
                plural_y(scrub.len())
            ));
        }
        if set_store {
            plan.push_str("  set \"credsStore\": \"lockbox\"\n");
        }
        if found.is_empty() && !set_store {
            plan.push_str("  nothing to do\n");
        }
        print!("{}", sanitize_lines(&plan));
        return Ok(Exit::Ok);
    }

    if !to_store.is_empty() {
        path.update(|v| {
            for f in &to_store {
                v.store(&f.server, &f.username, &f.secret)?;
            }
            Ok(((), true))
        })?;
        verify_imported(&path.read_existing()?, &to_store, settings)?;
    }
    for server in &scrub {
        config.scrub(server);
    }
    if set_store {
        config.set_store();
    }
    let changed = config.is_changed();
    if changed {
        config.write()?;
    }
    let mut summary = String::new();
    if !to_store.is_empty() {
        summary.push_str(&format!(
            "Imported {} credential{} into {}:\n{out}",
            to_store.len(),
            if to_store.len() == 1 { "" } else { "s" },
            path.vault.display()
        ));
    } else if !found.is_empty() {
        summary.push_str(&out);
    }
    if changed {
        summary.push_str(&format!(
            "Rewrote {cfg_path}: no plaintext credentials left{}.\n",
            if set_store {
                ", credsStore is lockbox"
            } else {
                ""
            }
        ));
    } else if to_store.is_empty() {
        summary.push_str("Nothing to do: no plaintext credentials and credsStore already set.\n");
    }
    print!("{}", sanitize_lines(&summary));
    Ok(Exit::Ok)
}

fn plural_y(n: usize) -> &'static str {
    if n == 1 { "y" } else { "ies" }
}

fn sanitize_lines(text: &str) -> String {
    text.lines().map(|l| messages::sanitize(l) + "\n").collect()
}

fn config_error(config: &DockerConfig, reason: String) -> Error {
    Error::Config {
        path: config.path.clone(),
        reason,
    }
}

/// Checks that every stored entry is in the file as written, and, when a key is at
/// hand without prompting (identity variable or agent), that it decrypts to the secret.
fn verify_imported(vault: &Vault, stored: &[&Found], settings: &Settings) -> Result<(), Error> {
    let list = keysource::sources(
        &settings.keys,
        &KeyFlags::default(),
        Some((Agent::for_user(), AgentUse::Verified)),
    );
    let opener = keysource::open_entries(vault, &list, &NeverPrompt)
        .ok()
        .map(|(o, _)| o);
    for f in stored {
        let ok = match vault.entries().get(&f.server) {
            Some(e) if e.username == f.username => match &opener {
                Some(o) => o
                    .open_entry(&f.server, &e.username, &e.secret)
                    .is_ok_and(|s| s.as_str() == f.secret.expose_secret()),
                None => true,
            },
            _ => false,
        };
        if !ok {
            return Err(Error::ImportVerifyFailed(f.server.clone()));
        }
    }
    Ok(())
}

/// Reads every entry out of `docker-credential-NAME` (`list`, then `get` for each).
fn read_helper(name: &str) -> Result<Vec<Found>, Error> {
    if name.is_empty() || name.contains('/') || name == crate::dockerconfig::STORE_NAME {
        return Err(Usage::BadHelperName(name.to_owned()).into());
    }
    let program = format!("docker-credential-{name}");
    let failed = |action, detail: &str| Error::HelperFailed {
        program: program.clone(),
        action,
        detail: detail.to_owned(),
    };
    let list = run_helper(&program, "list", b"")?.map_err(|f| f.into_error(&program, "list"))?;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&list)
        .map_err(|_| failed("list", "its answer is not a JSON object"))?;
    let mut found = Vec::new();
    for server in map.keys() {
        let out = match run_helper(&program, "get", server.as_bytes())? {
            Ok(out) => out,
            // The protocol's not-found answer (an entry listed but gone since): skip it.
            // Compared as Go clients compare it, on the helper's own output.
            Err(f) if f.is_not_found() => continue,
            Err(f) => return Err(f.into_error(&program, "get")),
        };
        #[derive(serde::Deserialize)]
        struct Creds {
            #[serde(rename = "Username")]
            username: String,
            #[serde(rename = "Secret")]
            secret: Zeroizing<String>,
        }
        let creds: Creds = serde_json::from_slice(&out)
            .map_err(|_| failed("get", "its answer is not credentials JSON"))?;
        // Old pass versions answer a missing entry with empty credentials (dch#220).
        if creds.username.is_empty() {
            continue;
        }
        found.push(Found {
            server: server.clone(),
            username: creds.username,
            secret: SecretString::from(creds.secret.as_str().to_owned()),
        });
    }
    Ok(found)
}

/// A helper that ran and exited non-zero: its status and (wiped) stdout.
struct HelperExit {
    status: std::process::ExitStatus,
    out: Zeroizing<Vec<u8>>,
}

impl HelperExit {
    /// Whether it answered the protocol's not-found line.
    fn is_not_found(&self) -> bool {
        self.out.trim_ascii() == messages::NOT_FOUND.as_bytes()
    }

    fn into_error(self, program: &str, action: &'static str) -> Error {
        Error::HelperFailed {
            program: program.to_owned(),
            action,
            detail: failure_detail(&self.out, self.status),
        }
    }
}

/// Runs one action of another helper. The outer error: it could not be run at all;
/// the inner one: it ran and failed.
fn run_helper(
    program: &str,
    action: &'static str,
    input: &[u8],
) -> Result<Result<Zeroizing<Vec<u8>>, HelperExit>, Error> {
    let failed = |e: std::io::Error| Error::HelperFailed {
        program: program.to_owned(),
        action,
        detail: e.to_string(),
    };
    let mut child = Command::new(program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                Error::HelperNotFound {
                    program: program.to_owned(),
                    action,
                }
            }
            _ => failed(e),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let mut out = Zeroizing::new(Vec::new());
    if let Some(stdout) = child.stdout.take() {
        out = crate::file::read_wiped(stdout, MAX_HELPER_OUTPUT).map_err(failed)?;
    }
    let status = child.wait().map_err(failed)?;
    if out.len() > MAX_HELPER_OUTPUT {
        return Err(failed(std::io::Error::other(format!(
            "its output is larger than {MAX_HELPER_OUTPUT} bytes"
        ))));
    }
    if !status.success() {
        return Ok(Err(HelperExit { status, out }));
    }
    Ok(Ok(out))
}

/// What to show of a failed helper's stdout: its first line, shortened — unless it
/// looks like credentials (a broken helper may print them and then fail), which are
/// never echoed.
fn failure_detail(out: &[u8], status: std::process::ExitStatus) -> String {
    const MAX_CHARS: usize = 200;
    // Decided on the bytes, before any (unwiped) text copy of them is made.
    if looks_like_credentials(out) {
        return format!("{status}; its output is not shown because it may hold credentials");
    }
    let text = String::from_utf8_lossy(out);
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        None => status.to_string(),
        Some(line) if line.chars().count() > MAX_CHARS => {
            format!("{}…", line.chars().take(MAX_CHARS).collect::<String>())
        }
        Some(line) => line.to_owned(),
    }
}

/// JSON, or a `"Secret"` key in any case (Go's `encoding/json` matches keys that way).
/// Compares in place so no unwiped lowercase copy of the output is made.
fn looks_like_credentials(out: &[u8]) -> bool {
    out.trim_ascii_start().starts_with(b"{")
        || out
            .windows(b"\"secret\"".len())
            .any(|w| w.eq_ignore_ascii_case(b"\"secret\""))
}

/// Something that opens entries for `export`: the key flags, the environment, the
/// agent, else the terminal ([`keysource`]).
fn export_opener(
    vault: &Vault,
    settings: &Settings,
    k: &KeyOpts,
) -> Result<Box<dyn EntryOpener>, Error> {
    let list = keysource::sources(
        &settings.keys,
        &k.flags(),
        Some((Agent::for_user(), AgentUse::Verified)),
    );
    keysource::open_entries(vault, &list, &Terminal).map(|(o, _)| o)
}

/// `export`: the entries as plaintext Docker `auths`, explicitly.
pub fn export(o: ExportOpts, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    let opener = export_opener(&vault, settings, &o.key)?;
    let mut auths = serde_json::Map::new();
    for (server, e) in vault.entries() {
        let secret = opener.open_entry(server, &e.username, &e.secret)?;
        auths.insert(
            server.clone(),
            crate::dockerconfig::plaintext_entry(&e.username, &secret),
        );
    }
    match &o.to_config {
        None => {
            eprintln!("{}", messages::EXPORT_WARNING);
            let doc = serde_json::json!({ "auths": auths });
            let mut text = Zeroizing::new(serde_json::to_string_pretty(&doc).unwrap_or_default());
            text.push('\n');
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .map_err(|e| Error::io("write", "stdout", e))?;
        }
        Some(p) => {
            let mut config = DockerConfig::read(p)?;
            for (server, entry) in &auths {
                config.put_auth(server, entry.clone());
            }
            let unset = config.unset_store();
            config.write()?;
            eprintln!("{}", messages::EXPORT_WARNING);
            println!(
                "{}",
                messages::sanitize(&messages::exported_to(
                    &config.path.display().to_string(),
                    auths.len(),
                    unset
                ))
            );
        }
    }
    Ok(Exit::Ok)
}

/// `passwd`: add or change the passphrase slot.
pub fn passwd(o: PasswdOpts, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    let has_passphrase = keysource::has_passphrase_slot(&vault);
    let flags = KeyFlags {
        passphrase_file: o.old_passphrase_file.clone(),
        identity_file: o.identity_file.clone(),
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
        Some(f) => keys::read_passphrase_file(f)?,
        None => crate::cli::ask_new_passphrase()?,
    };
    let params = kdf_params(settings)?;
    let old_public = key.public().to_string();
    // A new passphrase also gets a new vault key: an old copy of the file and the old
    // passphrase open nothing stored from now on.
    // An agent holding the old key gets the new one before the rename (docs/AGENT.md).
    let mut handover = Handover::new(&old_public);
    let rotated = path.update_with(
        |v| {
            let passphrase_slots: Vec<usize> = v
                .slots()
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s, Slot::Passphrase(_)))
                .map(|(i, _)| i)
                .collect();
            v.rotate(&key, &passphrase_slots, None, Some((&new, params)))
                .map(|k| (k, true))
        },
        |new_key| handover.give_new_key(new_key),
    );
    match rotated {
        Ok(_) => handover.retire_old_key(&key),
        Err(e) => {
            handover.undo();
            return Err(e);
        }
    }
    println!("{}", messages::passwd_done(has_passphrase));
    Ok(Exit::Ok)
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
pub fn recipients(cmd: RecipientsCommand, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    match cmd {
        RecipientsCommand::List { json } => {
            if json {
                let slots: Vec<serde_json::Value> = vault
                    .slots()
                    .iter()
                    .map(|s| match s {
                        Slot::Passphrase(_) => serde_json::json!({"type": "passphrase"}),
                        Slot::Age { label, recipient, .. } => {
                            serde_json::json!({"type": "age", "label": label, "recipient": recipient})
                        }
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(slots));
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
                    };
                    println!("{line}");
                }
            }
            Ok(Exit::Ok)
        }
        RecipientsCommand::Add {
            recipients,
            file,
            label,
            key,
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
            println!(
                "{}",
                messages::sanitize(&messages::recipients_added(&added))
            );
            Ok(Exit::Ok)
        }
        RecipientsCommand::Remove { which, key } => {
            if vault.find_recipient(&which).is_empty() {
                return Err(Error::NoSuchRecipient(which));
            }
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
                    let new = v.rotate(&old, &slots, passphrase.as_ref(), None)?;
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
            println!(
                "{}",
                messages::sanitize(&messages::recipients_removed(&which, removed))
            );
            Ok(Exit::Ok)
        }
    }
}
