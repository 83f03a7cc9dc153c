//! The commands for people, one file per verb. Each file holds its clap options
//! (`Opts`) and `run(opts, settings) -> Result<Exit>`; pure planners sit beside them
//! with unit tests. This module holds what several commands share: the key options,
//! opening the key through [`crate::keysource`], asking for a new passphrase, and the
//! Argon2id cost of a new passphrase slot.
//!
//! Commands never build agent requests (they call [`crate::agent::client::Agent`]'s
//! functions) and never read the environment (they get [`Settings`]).
use std::path::PathBuf;
use std::time::Instant;

use age::secrecy::{ExposeSecret, SecretString};
use clap::Args;

use crate::config::Settings;
use crate::error::Error;
use crate::keysource::{self, KeyFlags, Terminal};
use crate::messages;
use crate::vault::Vault;
use crate::vault::crypto::KdfParams;

pub mod check;
pub mod completions;
pub mod doctor;
pub mod exec;
pub mod expiry;
pub mod export;
pub mod forward;
pub mod import;
pub mod init;
pub mod lock;
pub mod log;
pub mod passwd;
pub mod recipients;
pub mod rotate;
pub mod status;
pub mod unimport;
pub mod unlock;

/// How a command that needs the vault's private key gets it.
#[derive(Debug, Args, Default)]
pub struct KeyOpts {
    /// Read the vault's passphrase from FILE instead of the terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Open the vault with an age identity file or SSH private key (a
    /// passphrase-protected one too: ssh-keygen -N, age -p).
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_file")]
    pub identity_file: Option<PathBuf>,
    /// The passphrase of a passphrase-protected identity (ssh-keygen -N, age -p), from
    /// FILE instead of the terminal; one try. For --identity-file, LOCKBOX_IDENTITY and
    /// LOCKBOX_IDENTITY_FILE.
    #[arg(long, value_name = "FILE")]
    pub identity_passphrase_file: Option<PathBuf>,
    /// Open the vault with the identity a command prints (run by /bin/sh -c, no
    /// terminal, 15 s at most): systemd-creds decrypt …, clevis decrypt < …, bao read ….
    #[arg(long, value_name = "CMD")]
    pub identity_cmd: Option<std::ffi::OsString>,
    /// Open the vault through its OpenBao transit slot, with the token of
    /// --openbao-token-file, else LOCKBOX_OPENBAO_TOKEN_FILE, LOCKBOX_OPENBAO_TOKEN,
    /// BAO_TOKEN, VAULT_TOKEN or ~/.vault-token (the server is LOCKBOX_OPENBAO_ADDR, else
    /// BAO_ADDR/VAULT_ADDR).
    #[arg(long)]
    pub openbao: bool,
    /// The OpenBao token for --openbao, recipients add --openbao-mount and the re-wrap
    /// of the OpenBao slot when recipients remove rotates the key, from FILE.
    #[arg(long, value_name = "FILE")]
    pub openbao_token_file: Option<PathBuf>,
}

impl KeyOpts {
    /// The flags, for [`keysource::sources`].
    pub fn flags(&self) -> KeyFlags {
        KeyFlags {
            identity_file: self.identity_file.clone(),
            passphrase_file: self.passphrase_file.clone(),
            identity_cmd: self.identity_cmd.clone(),
            identity_passphrase_file: self.identity_passphrase_file.clone(),
            openbao: self.openbao,
            openbao_token_file: self.openbao_token_file.clone(),
        }
    }
}

/// Opens the vault's key for a command for people: the key flags, the environment,
/// then the terminal ([`keysource`]; the agent never gives out a key).
pub fn open_key(
    vault: &Vault,
    settings: &Settings,
    flags: &KeyFlags,
) -> Result<keysource::KeyOpened, Error> {
    check_identity_passphrase_file(settings, flags)?;
    let list = keysource::sources(&settings.keys, flags, None);
    keysource::open_key(vault, &list, &Terminal)
}

/// An opener of entries (and maker of keyed MACs) for a command for people: the key
/// flags, the environment, an agent that holds this vault's key (it never gives the
/// key out, but opens entries and makes MACs), then the terminal.
pub fn entry_opener(
    vault: &Vault,
    settings: &Settings,
    k: &KeyOpts,
) -> Result<Box<dyn crate::vault::crypto::EntryOpener>, Error> {
    let flags = k.flags();
    check_identity_passphrase_file(settings, &flags)?;
    let list = keysource::sources(
        &settings.keys,
        &flags,
        Some((
            crate::agent::client::Agent::for_requests(settings),
            keysource::AgentUse::Verified,
        )),
    );
    keysource::open_entries(vault, &list, &Terminal).map(|(o, _)| o)
}

/// `--identity-passphrase-file` with no identity source it could be for is a usage
/// error, not silently unused: it is easily taken for the vault's own passphrase
/// (`--passphrase-file`). With an identity that turns out not to be encrypted it is
/// harmless (never read), so one script line serves both kinds of key.
pub fn check_identity_passphrase_file(settings: &Settings, flags: &KeyFlags) -> Result<(), Error> {
    let any_identity = flags.identity_file.is_some()
        || settings.keys.identity.is_some()
        || settings.keys.identity_file.is_some();
    if flags.identity_passphrase_file.is_some() && !any_identity {
        return Err(crate::error::Usage::IdentityPassphraseWithoutIdentity.into());
    }
    Ok(())
}

/// How often a person may retry a new passphrase (empty, mistyped, or weak and not
/// confirmed) before the command gives up, changing nothing.
pub const NEW_PASSPHRASE_ATTEMPTS: usize = 3;

/// Below this many characters a new passphrase draws a warning: the vault file is
/// meant to travel (committed with a CI job, copied to servers), so its passphrase
/// slot can be attacked offline, one Argon2id run per guess.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// Whether `p` is short enough to warn about.
pub fn is_weak(p: &SecretString) -> bool {
    p.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS
}

/// Warns about a weak passphrase read from a file (scripts: no question asked).
pub fn warn_if_weak(p: &SecretString) {
    if is_weak(p) {
        eprintln!("{}", messages::weak_passphrase(MIN_PASSPHRASE_CHARS));
    }
}

/// Asks for a new passphrase twice on the terminal. An empty one, two that differ, or a
/// weak one the person does not confirm is asked again, up to
/// [`NEW_PASSPHRASE_ATTEMPTS`] times.
pub fn ask_new_passphrase() -> Result<SecretString, Error> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(SecretString::from)
            .map_err(|_| Error::NoTerminalForNewPassphrase)
    };
    let mut last = Error::PassphraseMismatch;
    for attempt in 1..=NEW_PASSPHRASE_ATTEMPTS {
        let again = || {
            if attempt < NEW_PASSPHRASE_ATTEMPTS {
                eprintln!(
                    "{}",
                    messages::try_again(attempt + 1, NEW_PASSPHRASE_ATTEMPTS)
                );
            }
        };
        let first = ask(messages::PROMPT_NEW)?;
        if first.expose_secret().is_empty() {
            eprintln!("{}", messages::PASSPHRASE_IS_EMPTY);
            last = Error::EmptyPassphrase;
            again();
            continue;
        }
        if is_weak(&first) {
            eprintln!("{}", messages::weak_passphrase(MIN_PASSPHRASE_CHARS));
            if !confirm_on_terminal(messages::USE_WEAK_PASSPHRASE)? {
                last = Error::WeakPassphraseDeclined;
                again();
                continue;
            }
        }
        let second = ask(messages::PROMPT_CONFIRM)?;
        if first.expose_secret() != second.expose_secret() {
            eprintln!("{}", messages::PASSPHRASES_DIFFER);
            last = Error::PassphraseMismatch;
            again();
            continue;
        }
        return Ok(first);
    }
    Err(last)
}

/// A yes/no question on the terminal (never stdin); anything but `y`/`yes` is no.
fn confirm_on_terminal(question: &str) -> Result<bool, Error> {
    use std::io::{Read, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| Error::NoTerminalForNewPassphrase)?;
    let mut w = &tty;
    let _ = write!(w, "{question}").and_then(|()| w.flush());
    // One byte at a time up to the newline: a buffered reader would swallow what is
    // typed ahead for the passphrase prompts that follow. Bounded like any input.
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 64 {
        match (&tty).read(&mut byte) {
            Ok(1) if byte[0] != b'\n' => line.push(byte[0]),
            Ok(_) => break,
            Err(_) => return Err(Error::NoTerminalForNewPassphrase),
        }
    }
    let answer = String::from_utf8_lossy(&line).trim().to_ascii_lowercase();
    Ok(matches!(answer.as_str(), "y" | "yes"))
}

/// The Argon2id cost for a new passphrase slot: calibrated to about 0.75 s on this
/// machine (t=3, p=1, memory scaled between 64 MiB and 512 MiB), or the values in
/// `LOCKBOX_ARGON2_PARAMS` (`m_cost_kib,t_cost,p_cost`) for tests and slow machines.
pub fn kdf_params(settings: &Settings) -> Result<KdfParams, Error> {
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

/// Records `public_key` in the trust file as a vault that may run sources here
/// (`src/sources/trust.rs`). Without a place for the file (no `HOME`) nothing is
/// written; a file that cannot be written is one stderr line, never a failure.
pub fn trust_vault_key(settings: &Settings, public_key: &str) {
    match settings.trust().record(public_key) {
        Ok(_) | Err(Error::NoTrustFile) => {}
        Err(e) => eprintln!(
            "{}",
            messages::sanitize(&messages::trust_not_recorded(&e.message()))
        ),
    }
}

/// After a key rotation: the new key is trusted when the old one was.
pub fn carry_trust(settings: &Settings, old_public: &str, new_public: &str) {
    if settings.trust().allows(old_public) {
        trust_vault_key(settings, new_public);
    }
}

/// Prints `text` line by line, each sanitized (a hostile server URL or path cannot
/// drive the terminal).
pub fn sanitize_lines(text: &str) -> String {
    text.lines().map(|l| messages::sanitize(l) + "\n").collect()
}
