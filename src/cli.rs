//! The command line: dispatch between the protocol actions (exactly one argument, as
//! clients exec us) and the commands for people (`init`, `status`, …), parsed by clap.
//!
//! Raw options (clap structs) are kept apart from what the library needs; human
//! output goes to stdout, human errors to stderr with the next step to take.
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use age::secrecy::{ExposeSecret, SecretString};
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::agent_client::{Agent, LockOutcome};
use crate::config::Settings;
use crate::crypto::{KdfParams, Recipient, VaultKey};
use crate::error::{Error, Usage};
use crate::exit::Exit;
use crate::keys;
use crate::keysource::{self, AgentUse, KeyFlags, Terminal, Verdict};
use crate::messages;
use crate::protocol::{self, Action};
use crate::vault::{Slot, Vault};

const PROTOCOL_HELP: &str = "\
Credential-helper protocol (run by Docker and other clients, one action per call):
  store    read {\"ServerURL\",\"Username\",\"Secret\"} JSON on stdin and save it
  get      read a server URL on stdin, print its credentials as JSON
  erase    read a server URL on stdin, remove its credentials
  list     print {\"<server URL>\":\"<username>\",…}
  version  print the version line

Environment:
  LOCKBOX_VAULT            the vault file (default: $DOCKER_CONFIG/lockbox/vault.json,
                           else ~/.docker/lockbox/vault.json)
  LOCKBOX_IDENTITY         age identity text that opens the vault (CI secrets)
  LOCKBOX_IDENTITY_FILE    an age identity file or unencrypted SSH private key
  LOCKBOX_PASSPHRASE_FILE  a file holding the passphrase (slow: Argon2id every call)
  LOCKBOX_ARGON2_PARAMS    m_cost_kib,t_cost,p_cost for new passphrase slots (tests)
  XDG_RUNTIME_DIR          where the agent socket lives (else /tmp/lockbox-<uid>)

Where the key comes from (every command, in this order; docs/KEYS.md):
  1. --identity-file / --passphrase-file given to the command
  2. LOCKBOX_IDENTITY   3. LOCKBOX_IDENTITY_FILE   4. LOCKBOX_PASSPHRASE_FILE
  5. the agent started by `unlock`
  6. the terminal (commands for people only; protocol actions never prompt)
A flag that fails is an error. A variable or agent that does not apply to this vault
(its identity matches no slot, the vault has no slot of its kind, the agent does not
hold this vault) is passed over; one that is broken (unreadable, unparsable, wrong
passphrase) is an error. When nothing opens the vault, `get` fails at once with
\"lockbox is locked\".";

/// A Docker credential helper that keeps registry credentials in an encrypted vault.
#[derive(Debug, Parser)]
#[command(name = "docker-credential-lockbox", version, after_help = PROTOCOL_HELP)]
pub struct Opts {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the vault, with a passphrase slot and/or age recipient slots.
    Init(InitOpts),
    /// Open the vault once and let an agent hold its key for a while, so `get` works
    /// without a prompt (before builds).
    Unlock(UnlockOpts),
    /// Make the agent forget this vault's key (or every key with --all).
    Lock(LockOpts),
    /// Show the vault: path, slots, entries, and whether it is unlocked. Exits 0 when
    /// `get` can open it, 3 when it is locked.
    Status(StatusOpts),
    /// Move the plaintext auths of Docker's config.json (or another helper's entries)
    /// into the vault, remove them from config.json and set credsStore.
    Import(crate::manage::ImportOpts),
    /// Print the entries as plaintext Docker auths (the way out; explicit).
    Export(crate::manage::ExportOpts),
    /// Add or change the passphrase slot.
    Passwd(crate::manage::PasswdOpts),
    /// Manage the age slots (people, CI keys, SSH host keys).
    #[command(subcommand)]
    Recipients(crate::manage::RecipientsCommand),
    /// Print a shell completion script: `completions bash > /etc/bash_completion.d/lockbox`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The agent process itself (started by `unlock`).
    #[command(hide = true)]
    Agent(AgentOpts),
}

#[derive(Debug, Args)]
struct UnlockOpts {
    #[command(flatten)]
    key: KeyOpts,
    /// How long the agent holds the key: 15m, 1h, 8h… (at most 7 days).
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_TIMEOUT)]
    timeout: String,
}

/// How a command that needs the vault's private key gets it.
#[derive(Debug, Args, Default)]
pub struct KeyOpts {
    /// Read the passphrase from FILE instead of the terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Open the vault with an age identity file or unencrypted SSH private key.
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_file")]
    pub identity_file: Option<PathBuf>,
}

impl KeyOpts {
    /// The flags, for [`keysource::sources`].
    pub fn flags(&self) -> KeyFlags {
        KeyFlags {
            identity_file: self.identity_file.clone(),
            passphrase_file: self.passphrase_file.clone(),
        }
    }
}

/// Opens the vault's key for a command for people: the key flags, the environment,
/// then the terminal ([`keysource`]; the agent never gives out a key).
pub(crate) fn open_key(
    vault: &Vault,
    settings: &Settings,
    flags: &KeyFlags,
) -> Result<keysource::KeyOpened, Error> {
    let list = keysource::sources(&settings.keys, flags, None);
    keysource::open_key(vault, &list, &Terminal)
}

#[derive(Debug, Args)]
struct LockOpts {
    /// Forget every vault's key and stop the agent.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Args)]
struct AgentOpts {
    #[arg(long)]
    socket: PathBuf,
}

/// How long `unlock` holds a key unless told otherwise: long enough for a working
/// session of builds, short enough that a forgotten unlock does not keep the key in
/// memory overnight.
pub const DEFAULT_TIMEOUT: &str = "1h";

#[derive(Debug, Args)]
struct InitOpts {
    /// Add a passphrase slot; the passphrase is asked twice on the terminal.
    #[arg(long)]
    passphrase: bool,
    /// Add a passphrase slot with the passphrase read from FILE (one trailing newline
    /// is dropped), for scripts.
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase")]
    passphrase_file: Option<PathBuf>,
    /// Add an age slot for RECIPIENT: `age1…`, `ssh-ed25519 …` or `ssh-rsa …`.
    /// Repeatable.
    #[arg(long, value_name = "RECIPIENT")]
    recipient: Vec<String>,
    /// Add an age slot for every recipient in FILE (one per line, `#` comments).
    #[arg(long, value_name = "FILE")]
    recipients_file: Vec<PathBuf>,
    /// Replace an existing vault (its entries are lost).
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct StatusOpts {
    /// Print JSON for scripts.
    #[arg(long, conflicts_with = "quiet")]
    json: bool,
    /// Print nothing; only the exit status tells (0 unlocked, 3 locked).
    #[arg(long, short)]
    quiet: bool,
    /// Try the key sources (runs Argon2id for a passphrase file) instead of only
    /// describing them.
    #[arg(long)]
    check: bool,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // The one place the environment is read (`config`).
    let settings = Settings::from_env();
    // The protocol path comes first and stays minimal: every helper call is a new
    // process, so its start-up cost is the product's speed.
    match args.get(1).map(|a| a.to_str()) {
        None => {
            println!("{}", messages::USAGE);
            return Exit::Failure.into();
        }
        Some(Some(word)) => {
            if let Some(action) = Action::from_arg(word) {
                if args.len() != 2 {
                    // As the Go helpers: exactly one argument, else usage on stdout.
                    println!("{}", messages::USAGE);
                    return Exit::Failure.into();
                }
                return protocol::main(action, &settings).into();
            }
            if !word.starts_with('-') && !is_command(word) {
                println!("{}", messages::sanitize(&messages::unknown_action(word)));
                eprintln!("{}", messages::UNKNOWN_ACTION_HINT);
                return Exit::Failure.into();
            }
        }
        Some(None) => {}
    }
    let opts = match Opts::try_parse_from(&args) {
        Ok(o) => o,
        Err(e) => {
            // clap quotes the argument it could not place; never a private key.
            if e.use_stderr() && messages::is_private_key(&e.render().to_string()) {
                eprintln!(
                    "{}{}",
                    messages::ERROR_PREFIX,
                    messages::PRIVATE_KEY_NOT_RECIPIENT
                );
            } else {
                let _ = e.print();
            }
            return if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            }
            .into();
        }
    };
    match run(opts, &settings) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("{}{}", messages::ERROR_PREFIX, e.message());
            e.exit().into()
        }
    }
}

fn is_command(word: &str) -> bool {
    word == "help" || Opts::command().find_subcommand(word).is_some()
}

fn run(opts: Opts, settings: &Settings) -> Result<Exit, Error> {
    match opts.command {
        Command::Init(o) => init(o, settings),
        Command::Unlock(o) => unlock(o, settings),
        Command::Lock(o) => lock(o, settings),
        Command::Status(o) => status(o, settings),
        Command::Import(o) => crate::manage::import(o, settings),
        Command::Export(o) => crate::manage::export(o, settings),
        Command::Passwd(o) => crate::manage::passwd(o, settings),
        Command::Recipients(c) => crate::manage::recipients(c, settings),
        Command::Completions { shell } => {
            let mut cmd = Opts::command();
            clap_complete::generate(shell, &mut cmd, messages::BIN, &mut std::io::stdout());
            Ok(Exit::Ok)
        }
        Command::Agent(o) => crate::agent::run(&o.socket).map(|()| Exit::Ok),
    }
}

fn init(o: InitOpts, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    let mut recipients = Vec::new();
    for r in &o.recipient {
        recipients.push(parse_recipient_line(r)?);
    }
    for file in &o.recipients_file {
        recipients.extend(crate::manage::read_recipients_file(file)?);
    }
    let passphrase = if o.passphrase {
        Some(ask_new_passphrase()?)
    } else if let Some(file) = &o.passphrase_file {
        Some(keys::read_passphrase_file(file)?)
    } else {
        None
    };
    if passphrase.is_none() && recipients.is_empty() {
        return Err(Usage::InitNeedsSlot.into());
    }
    if !o.force && path.read()?.is_some() {
        return Err(Error::AlreadyExists(path.vault.clone()));
    }
    let key = VaultKey::generate();
    let mut slots = Vec::new();
    if let Some(p) = &passphrase {
        slots.push(Vault::passphrase_slot(&key, p, kdf_params(settings)?)?);
    }
    for (recipient, label) in &recipients {
        slots.push(Vault::age_slot(&key, recipient, label.clone())?);
    }
    let vault = Vault::new(&key, slots);
    path.create(&vault, o.force)?;
    let described: Vec<String> = vault.slots().iter().map(Slot::describe).collect();
    println!(
        "{}",
        messages::init_done(
            &messages::sanitize(&path.vault.display().to_string()),
            &messages::sanitize(&described.join(", "))
        )
    );
    Ok(Exit::Ok)
}

/// A recipient and its label (see [`crate::manage::parse_recipient_line`]).
fn parse_recipient_line(line: &str) -> Result<(Recipient, String), Error> {
    crate::manage::parse_recipient_line(line)?.ok_or_else(|| Error::BadRecipient(line.to_owned()))
}

/// Asks for a new passphrase twice on the terminal.
pub(crate) fn ask_new_passphrase() -> Result<SecretString, Error> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(SecretString::from)
            .map_err(|_| Error::NoTerminalForNewPassphrase)
    };
    let first = ask(messages::PROMPT_NEW)?;
    if first.expose_secret().is_empty() {
        return Err(Error::EmptyPassphrase);
    }
    let second = ask(messages::PROMPT_CONFIRM)?;
    if first.expose_secret() != second.expose_secret() {
        return Err(Error::PassphraseMismatch);
    }
    Ok(first)
}

/// The Argon2id cost for a new passphrase slot: calibrated to about 0.75 s on this
/// machine (t=3, p=1, memory scaled between 64 MiB and 512 MiB), or the values in
/// `LOCKBOX_ARGON2_PARAMS` (`m_cost_kib,t_cost,p_cost`) for tests and slow machines.
pub(crate) fn kdf_params(settings: &Settings) -> Result<KdfParams, Error> {
    match settings.kdf_override()? {
        Some(params) => {
            eprintln!("{}", messages::WEAK_KDF_WARNING);
            Ok(params)
        }
        None => Ok(calibrate()),
    }
}

fn calibrate() -> KdfParams {
    const TARGET_SECS: f64 = 0.75;
    const T_COST: u32 = 3;
    const MIN_KIB: u32 = 64 * 1024;
    const MAX_KIB: u32 = 512 * 1024;
    let pw = SecretString::from("calibration".to_owned());
    let params = |m_cost_kib: u32| KdfParams {
        m_cost_kib,
        t_cost: T_COST,
        p_cost: 1,
    };
    // Seconds one derivation takes, or None if Argon2 refuses.
    let time = |p: KdfParams| {
        let start = Instant::now();
        p.derive(&pw, &[0u8; 16])
            .ok()
            .map(|_| start.elapsed().as_secs_f64().max(1e-3))
    };
    // Argon2's cost is about linear in memory × passes; memory bandwidth and page
    // faults bend that, so measure at the minimum, scale, then measure once more.
    let mut m = MIN_KIB;
    for _ in 0..2 {
        let Some(secs) = time(params(m)) else {
            return params(MIN_KIB);
        };
        let scaled = (f64::from(m) * TARGET_SECS / secs) as u64;
        m = (scaled.clamp(u64::from(MIN_KIB), u64::from(MAX_KIB)) as u32) / 1024 * 1024;
    }
    params(m)
}

fn parse_timeout(text: &str) -> Result<Duration, Error> {
    let bad = || Error::from(Usage::BadTimeout(text.to_owned()));
    let d = humantime::parse_duration(text).map_err(|_| bad())?;
    if d < crate::agent::MIN_TIMEOUT || d > crate::agent::MAX_TIMEOUT {
        return Err(bad());
    }
    Ok(d)
}

fn unlock(o: UnlockOpts, settings: &Settings) -> Result<Exit, Error> {
    let timeout = parse_timeout(&o.timeout)?;
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    let opened = open_key(&vault, settings, &o.key.flags())?;
    Agent::for_user().unlock(&opened.key, timeout)?;
    println!(
        "{}",
        messages::unlocked(
            &messages::sanitize(&path.vault.display().to_string()),
            &humantime::format_duration(timeout).to_string()
        )
    );
    Ok(Exit::Ok)
}

fn lock(o: LockOpts, settings: &Settings) -> Result<Exit, Error> {
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
    match Agent::for_user().lock(public_key.as_deref())? {
        LockOutcome::NoAgent => println!("{}", messages::NO_AGENT),
        LockOutcome::Locked => println!("{}", messages::locked_now(&what)),
        LockOutcome::StoppedOtherBuild => println!("{}", messages::locked_now("every vault")),
    }
    Ok(Exit::Ok)
}

fn status(o: StatusOpts, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    // What `get` would use: no flags, never a prompt.
    let list = keysource::sources(
        &settings.keys,
        &KeyFlags::default(),
        Some((Agent::for_user(), AgentUse::Verified)),
    );
    let described = keysource::describe(&vault, &list);
    // The terminal is for people; `get` never reaches it, so status does not show it.
    let described: Vec<_> = described
        .into_iter()
        .filter(|d| d.name != "terminal")
        .collect();
    let held = described.iter().find_map(|d| match &d.verdict {
        Verdict::Ready(h) => Some(h.clone()),
        _ => None,
    });
    // Without --check: the first source that is set and not ruled out is the way in.
    // With --check: the one that really opened it, or the error.
    let (source, error): (Option<String>, Option<String>) = if o.check {
        match keysource::check(&vault, &list) {
            Ok(name) => (Some(name), None),
            Err((name, e)) => (name, Some(e.message())),
        }
    } else {
        let way_in = described
            .iter()
            .find(|d| matches!(d.verdict, Verdict::Ready(_) | Verdict::Untried));
        (way_in.map(|d| d.name.clone()), None)
    };
    let unlocked = source.is_some() && error.is_none();
    let code = if unlocked { Exit::Ok } else { Exit::Locked };
    if o.quiet {
        return Ok(code);
    }
    let mut out = std::io::stdout().lock();
    let io_err = |e| Error::io("write", "stdout", e);
    if o.json {
        let slots: Vec<serde_json::Value> = vault
            .slots()
            .iter()
            .map(|s| match s {
                Slot::Passphrase(w) => serde_json::json!({
                    "type": "passphrase", "kdf": "argon2id",
                    "m_cost_kib": w.params.m_cost_kib, "t_cost": w.params.t_cost, "p_cost": w.params.p_cost,
                }),
                Slot::Age { label, recipient, .. } => serde_json::json!({
                    "type": "age", "label": label, "recipient": recipient,
                }),
            })
            .collect();
        let sources: Vec<serde_json::Value> = described
            .iter()
            .map(|d| {
                let (state, reason) = match &d.verdict {
                    Verdict::Untried => ("untried", None),
                    Verdict::Ready(_) => ("ready", None),
                    Verdict::NotApplicable(e) => ("not_applicable", Some(e.message())),
                };
                serde_json::json!({
                    "name": d.name, "origin": d.origin.as_str(), "state": state, "reason": reason,
                })
            })
            .collect();
        let agent = match &held {
            Some(h) => serde_json::json!({
                "pid": h.pid, "expires_in_secs": h.expires_in_secs,
                "non_dumpable": h.non_dumpable, "memory_locked": h.memory_locked,
            }),
            None => serde_json::Value::Null,
        };
        let v = serde_json::json!({
            "vault": path.vault,
            "format": crate::vault::FORMAT_VERSION,
            "public_key": vault.public().to_string(),
            "slots": slots,
            "entries": vault.entries().len(),
            "unlocked": unlocked,
            "checked": o.check,
            "key_source": source,
            "key_sources": sources,
            "agent": agent,
            "error": error,
        });
        writeln!(out, "{v}").map_err(io_err)?;
        return Ok(code);
    }
    let mut text = format!(
        "vault:      {}\nformat:     {}\npublic key: {}\nentries:    {}\nslots:      {}\n",
        path.vault.display(),
        crate::vault::FORMAT_VERSION,
        vault.public(),
        vault.entries().len(),
        vault.slots().len(),
    );
    for (i, slot) in vault.slots().iter().enumerate() {
        text.push_str(&format!("  {}. {}\n", i + 1, slot.describe()));
    }
    text.push_str("key sources, in the order get tries them:\n");
    for d in &described {
        let state = match &d.verdict {
            Verdict::Untried => "set (not tried; 'status --check' tries it)".to_owned(),
            Verdict::Ready(h) => format!(
                "holds the key (pid {}) for {}",
                h.pid,
                humantime::format_duration(Duration::from_secs(h.expires_in_secs))
            ),
            Verdict::NotApplicable(Error::Locked) => "does not hold this vault's key".to_owned(),
            Verdict::NotApplicable(e) => format!("does not apply: {}", e.message()),
        };
        text.push_str(&format!("  {}: {state}\n", d.name));
    }
    text.push_str(&match (&source, &error) {
        (Some(name), None) if o.check => format!("unlocked:   yes, by {name} (checked)\n"),
        (Some(name), None) => format!("unlocked:   yes, by {name}\n"),
        (Some(name), Some(e)) => format!("unlocked:   no — {name} fails: {e}\n"),
        (None, Some(e)) => format!("unlocked:   no — {e}\n"),
        (None, None) => {
            "unlocked:   no (run 'docker-credential-lockbox unlock' or set LOCKBOX_IDENTITY)\n"
                .to_owned()
        }
    });
    let clean: String = text.lines().map(|l| messages::sanitize(l) + "\n").collect();
    out.write_all(clean.as_bytes()).map_err(io_err)?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_valid() {
        Opts::command().debug_assert();
    }

    #[test]
    fn ssh_comment_becomes_label() {
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@laptop";
        let (_, label) = parse_recipient_line(line).unwrap();
        assert_eq!(label, "alice@laptop");
    }
}
