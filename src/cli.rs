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

use crate::agent_client::Agent;
use crate::agent_proto::{Request, Response};
use crate::crypto::{KdfParams, Recipient, VaultKey};
use crate::error::Error;
use crate::file::Location;
use crate::keys::{self, KeyEnv};
use crate::protocol::{self, Action};
use crate::vault::{Slot, Vault};
use crate::{exit, messages};

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
  XDG_RUNTIME_DIR          where the agent socket lives (else /tmp/lockbox-<uid>)

Without a key variable, `get` asks the agent started by `unlock`; when nothing can
open the vault it fails at once with \"lockbox is locked\" — never a prompt.";

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

/// The vault key, and the passphrase if that is what opened it.
pub struct Opened {
    /// The vault's key.
    pub key: VaultKey,
    /// The passphrase, when a passphrase opened it (re-wrapping needs it).
    pub passphrase: Option<SecretString>,
}

/// Opens the vault's private key: `--identity-file`, `--passphrase-file`, the
/// `LOCKBOX_*` variables, else the passphrase from the terminal (never stdin).
pub(crate) fn open_key(vault: &Vault, k: &KeyOpts) -> Result<Opened, Error> {
    if let Some(file) = &k.identity_file {
        let text = keys::read_key_file(file)?;
        let ids = keys::parse_identities(&text, &file.display().to_string())?;
        return Ok(Opened {
            key: vault.open_with_identities(&ids)?,
            passphrase: None,
        });
    }
    let env = KeyEnv::from_env()?;
    let passphrase = if let Some(file) = &k.passphrase_file {
        keys::read_passphrase_file(file)?
    } else if env.identity.is_some() || env.identity_file.is_some() {
        return Ok(Opened {
            key: env.open(vault)?,
            passphrase: None,
        });
    } else if let Some(file) = &env.passphrase_file {
        keys::read_passphrase_file(file)?
    } else {
        if !vault
            .slots()
            .iter()
            .any(|s| matches!(s, Slot::Passphrase(_)))
        {
            return Err(Error::NoPassphraseSlot);
        }
        prompt_passphrase(messages::PROMPT_UNLOCK)?
    };
    Ok(Opened {
        key: vault.open_with_passphrase(&passphrase)?,
        passphrase: Some(passphrase),
    })
}

/// Asks once on the terminal (rpassword reads /dev/tty, never stdin).
pub(crate) fn prompt_passphrase(prompt: &str) -> Result<SecretString, Error> {
    rpassword::prompt_password(prompt)
        .map(SecretString::from)
        .map_err(|_| usage_error(messages::UNLOCK_NO_TERMINAL))
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
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // The protocol path comes first and stays minimal: every helper call is a new
    // process, so its start-up cost is the product's speed.
    match args.get(1).map(|a| a.to_str()) {
        None => {
            println!("{}", messages::USAGE);
            return exit::code(exit::FAILURE);
        }
        Some(Some(word)) => {
            if let Some(action) = Action::from_arg(word) {
                if args.len() != 2 {
                    // As the Go helpers: exactly one argument, else usage on stdout.
                    println!("{}", messages::USAGE);
                    return exit::code(exit::FAILURE);
                }
                return exit::code(protocol::main(action));
            }
            if !word.starts_with('-') && !is_command(word) {
                println!("{}", messages::sanitize(&messages::unknown_action(word)));
                eprintln!("{}", messages::UNKNOWN_ACTION_HINT);
                return exit::code(exit::FAILURE);
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
            return exit::code(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    match run(opts) {
        Ok(code) => exit::code(code),
        Err(e) => {
            eprintln!("{}{}", messages::ERROR_PREFIX, e.message());
            exit::code(e.exit_code())
        }
    }
}

fn is_command(word: &str) -> bool {
    word == "help" || Opts::command().find_subcommand(word).is_some()
}

fn run(opts: Opts) -> Result<u8, Error> {
    let location = Location::from_env();
    match opts.command {
        Command::Init(o) => init(o, &location),
        Command::Unlock(o) => unlock(o, &location),
        Command::Lock(o) => lock(o, &location),
        Command::Status(o) => status(o, &location),
        Command::Import(o) => crate::manage::import(o, &location),
        Command::Export(o) => crate::manage::export(o, &location),
        Command::Passwd(o) => crate::manage::passwd(o, &location),
        Command::Recipients(c) => crate::manage::recipients(c, &location),
        Command::Completions { shell } => {
            let mut cmd = Opts::command();
            clap_complete::generate(shell, &mut cmd, messages::BIN, &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Agent(o) => crate::agent::run(&o.socket).map(|()| exit::OK),
    }
}

fn init(o: InitOpts, location: &Location) -> Result<u8, Error> {
    let path = location.resolve()?;
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
        return Err(usage_error(messages::INIT_NEEDS_SLOT));
    }
    if !o.force && path.read()?.is_some() {
        return Err(Error::AlreadyExists(path.vault.clone()));
    }
    let key = VaultKey::generate();
    let mut slots = Vec::new();
    if let Some(p) = &passphrase {
        slots.push(Vault::passphrase_slot(&key, p, kdf_params()?)?);
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
    Ok(exit::OK)
}

/// A recipient and its label (see [`crate::manage::parse_recipient_line`]).
fn parse_recipient_line(line: &str) -> Result<(Recipient, String), Error> {
    crate::manage::parse_recipient_line(line)?.ok_or_else(|| Error::BadRecipient(line.to_owned()))
}

fn usage_error(text: &str) -> Error {
    Error::Usage(text.to_owned())
}

pub(crate) fn ask_new_passphrase() -> Result<SecretString, Error> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(SecretString::from)
            .map_err(|_| usage_error(messages::NO_TERMINAL))
    };
    let first = ask(messages::PROMPT_NEW)?;
    if first.expose_secret().is_empty() {
        return Err(usage_error(messages::EMPTY_PASSPHRASE));
    }
    let second = ask(messages::PROMPT_CONFIRM)?;
    if first.expose_secret() != second.expose_secret() {
        return Err(usage_error(messages::PASSPHRASE_MISMATCH));
    }
    Ok(first)
}

/// The Argon2id cost for a new passphrase slot: calibrated to about 0.75 s on this
/// machine (t=3, p=1, memory scaled between 64 MiB and 512 MiB), or the values in
/// `LOCKBOX_ARGON2_PARAMS` (`m_cost_kib,t_cost,p_cost`) for tests and slow machines.
pub(crate) fn kdf_params() -> Result<KdfParams, Error> {
    if let Some(text) = std::env::var_os("LOCKBOX_ARGON2_PARAMS") {
        let text = text.to_string_lossy();
        let nums: Vec<u32> = text
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect();
        let [m_cost_kib, t_cost, p_cost] = nums[..] else {
            return Err(usage_error(
                "LOCKBOX_ARGON2_PARAMS must be m_cost_kib,t_cost,p_cost",
            ));
        };
        let params = KdfParams {
            m_cost_kib,
            t_cost,
            p_cost,
        };
        params.check()?;
        eprintln!("{}", messages::WEAK_KDF_WARNING);
        return Ok(params);
    }
    Ok(calibrate())
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
    let bad = || usage_error(&messages::bad_timeout(text));
    let d = humantime::parse_duration(text).map_err(|_| bad())?;
    if d < crate::agent::MIN_TIMEOUT || d > crate::agent::MAX_TIMEOUT {
        return Err(bad());
    }
    Ok(d)
}

fn unlock(o: UnlockOpts, location: &Location) -> Result<u8, Error> {
    let timeout = parse_timeout(&o.timeout)?;
    let path = location.resolve()?;
    let vault = path.read_existing()?;
    let Opened { key, .. } = open_key(&vault, &o.key)?;
    let agent = Agent::for_user();
    let _serialized = agent.start_lock()?;
    if !agent.ensure_compatible()? {
        agent.start()?;
    }
    agent.add_key(&key, timeout)?;
    println!(
        "{}",
        messages::unlocked(
            &messages::sanitize(&path.vault.display().to_string()),
            &humantime::format_duration(timeout).to_string()
        )
    );
    Ok(exit::OK)
}

fn lock(o: LockOpts, location: &Location) -> Result<u8, Error> {
    let agent = Agent::for_user();
    let (public_key, what) = if o.all {
        (None, "every vault".to_owned())
    } else {
        let path = location.resolve()?;
        let vault = path.read_existing()?;
        (
            Some(vault.public().to_string()),
            messages::sanitize(&path.vault.display().to_string()),
        )
    };
    match agent.request(Request::Lock { public_key }, 0)? {
        None => println!("{}", messages::NO_AGENT),
        Some(Response::Locked { .. }) => println!("{}", messages::locked_now(&what)),
        // An agent of another build: stop it (every version obeys `quit`).
        Some(Response::Error(crate::agent_proto::AgentError::VersionMismatch { .. })) => {
            agent.ensure_compatible()?;
            println!("{}", messages::locked_now("every vault"));
        }
        Some(_) => return Err(Error::AgentProtocol("unexpected answer to lock".into())),
    }
    Ok(exit::OK)
}

/// Where `get` would find the key right now.
enum KeyState {
    /// An identity or passphrase variable opens the vault.
    Env(&'static str),
    /// A variable is set but does not open the vault.
    EnvFails(&'static str, String),
    /// The agent holds the key.
    Agent {
        expires_in_secs: u64,
        pid: u32,
        non_dumpable: bool,
        memory_locked: bool,
    },
    /// Nothing opens it.
    Locked,
}

fn key_state(vault: &Vault) -> Result<KeyState, Error> {
    let env = KeyEnv::from_env()?;
    if env.is_set() {
        let var = if env.identity.is_some() {
            "LOCKBOX_IDENTITY"
        } else if env.identity_file.is_some() {
            "LOCKBOX_IDENTITY_FILE"
        } else {
            "LOCKBOX_PASSPHRASE_FILE"
        };
        return Ok(match env.open(vault) {
            Ok(_) => KeyState::Env(var),
            Err(e) => KeyState::EnvFails(var, e.message()),
        });
    }
    let request = Request::Status {
        public_key: vault.public().to_string(),
    };
    Ok(match Agent::for_user().request(request, 0)? {
        Some(Response::Status {
            unlocked: true,
            expires_in_secs,
            pid,
            non_dumpable,
            memory_locked,
            ..
        }) => KeyState::Agent {
            expires_in_secs,
            pid,
            non_dumpable,
            memory_locked,
        },
        _ => KeyState::Locked,
    })
}

fn status(o: StatusOpts, location: &Location) -> Result<u8, Error> {
    let path = location.resolve()?;
    let vault = path.read_existing()?;
    let state = key_state(&vault)?;
    let code = match state {
        KeyState::Env(_) | KeyState::Agent { .. } => exit::OK,
        KeyState::EnvFails(..) | KeyState::Locked => exit::LOCKED,
    };
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
        let (unlocked, source, error) = match &state {
            KeyState::Env(var) => (true, Some(*var), None),
            KeyState::EnvFails(var, e) => (false, Some(*var), Some(e.clone())),
            KeyState::Agent { .. } => (true, Some("agent"), None),
            KeyState::Locked => (false, None, None),
        };
        let agent = match &state {
            KeyState::Agent {
                expires_in_secs,
                pid,
                non_dumpable,
                memory_locked,
            } => serde_json::json!({
                "pid": pid, "expires_in_secs": expires_in_secs,
                "non_dumpable": non_dumpable, "memory_locked": memory_locked,
            }),
            _ => serde_json::Value::Null,
        };
        let v = serde_json::json!({
            "vault": path.vault,
            "format": crate::vault::FORMAT_VERSION,
            "public_key": vault.public().to_string(),
            "slots": slots,
            "entries": vault.entries().len(),
            "unlocked": unlocked,
            "key_source": source,
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
    text.push_str(&match &state {
        KeyState::Env(var) => format!("unlocked:   yes, by {var}\n"),
        KeyState::EnvFails(var, e) => format!("unlocked:   no — {var} is set but fails: {e}\n"),
        KeyState::Agent {
            expires_in_secs,
            pid,
            ..
        } => format!(
            "unlocked:   yes, by the agent (pid {pid}) for {}\n",
            humantime::format_duration(Duration::from_secs(*expires_in_secs))
        ),
        KeyState::Locked => {
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
