//! Where the vault key comes from: one pipeline, one order, one failure rule, for
//! every caller (`get`, `unlock`, `export`, `passwd`, `recipients add|remove`,
//! `status`, `import`'s read-back). `docs/KEYS.md` is the specification.
//!
//! The order: the command-line flags (`--identity-file`, `--passphrase-file`,
//! `--identity-cmd`, `--openbao`), then `LOCKBOX_IDENTITY`, `LOCKBOX_IDENTITY_FILE`, the
//! systemd credential, `LOCKBOX_PASSPHRASE_FILE`, the OpenBao slot (only when
//! `LOCKBOX_OPENBAO_TOKEN[_FILE]` is set), then the agent, `LOCKBOX_IDENTITY_CMD`, then
//! the terminal (only when the caller's [`Callbacks`] may prompt).
//!
//! The failure rule, per source:
//! - it opens the vault: done;
//! - an **explicit** source (a flag the user typed for this command) that fails in any
//!   way is the error;
//! - an **ambient** source (the environment, the agent, the terminal) that *does not
//!   apply to this vault* falls through to the next one. "Does not apply" is exactly:
//!   its identities match no age slot, or the vault has no slot of its kind (no age
//!   slot for an identity, no passphrase slot for a passphrase), or it has nothing to
//!   give (no agent, or an agent without this vault's key, or one whose systemd
//!   credential does not open it; a terminal the caller may not use). See
//!   [`Refusal`];
//! - an ambient source that applies but fails (a file that cannot be read or does not
//!   parse, a wrong passphrase, a tampered slot) is the error: a broken setting is
//!   reported, never papered over by the next source.
//!
//! When every source falls through, the error is the first reason an ambient source
//! gave that is more telling than "locked" (say, "none of the given identities opens
//! this vault"), else [`Error::Locked`].
//!
//! A source is a [`KeySource`]: it says who it is ([`KeySource::name`],
//! [`KeySource::origin`]), describes itself without trying anything
//! ([`KeySource::describe`]: no Argon2id, no command, no network — what `status`
//! shows), and opens the key ([`KeySource::open_key`]) or just the entries
//! ([`KeySource::open_entries`], which the agent can do without giving out the key).
//! New sources (an identity command, systemd credentials, encrypted identities that ask
//! through the [`Callbacks`], plugins, an OpenBao transit slot) are new implementations
//! placed in [`sources`].
use std::path::PathBuf;

use age::secrecy::SecretString;

use crate::agent::client::{Agent, AgentOpener, Held};
use crate::config::{KeySettings, Settings, var};
use crate::error::{Error, Result};
use crate::identity::command::IdentityCommand;
use crate::messages;
use crate::secret_io;
use crate::vault::crypto::EntryOpener;
use crate::vault::crypto::VaultKey;
use crate::vault::{Slot, Vault};

/// The key options a command for people was given on its command line.
#[derive(Debug, Default, Clone)]
pub struct KeyFlags {
    /// `--identity-file FILE`
    pub identity_file: Option<PathBuf>,
    /// `--passphrase-file FILE` (`passwd --old-passphrase-file FILE`)
    pub passphrase_file: Option<PathBuf>,
    /// `--identity-cmd CMD`
    pub identity_cmd: Option<std::ffi::OsString>,
    /// `--identity-passphrase-file FILE`: the passphrase of the passphrase-protected
    /// identities of `--identity-file`, `LOCKBOX_IDENTITY` and `LOCKBOX_IDENTITY_FILE`,
    /// read instead of asked (one try).
    pub identity_passphrase_file: Option<PathBuf>,
    /// `--openbao`: open through the vault's OpenBao slot with a person's token.
    pub openbao: bool,
    /// `--openbao-token-file FILE` (implies `--openbao`).
    pub openbao_token_file: Option<PathBuf>,
}

/// Whether the user named a source for this command or it is simply there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag: any failure is an error.
    Explicit,
    /// The environment, the agent, the terminal: falls through when it does not apply.
    Ambient,
}

impl Origin {
    /// `explicit` / `ambient`, for `status --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Explicit => "explicit",
            Origin::Ambient => "ambient",
        }
    }
}

/// How a source asks a person for something (age's `Callbacks` is the model): the
/// library never prompts by itself.
pub trait Callbacks {
    /// The passphrase, asked with `prompt`. `Ok(None)`: this caller never asks
    /// (protocol actions), so the source does not apply.
    fn request_passphrase(&self, prompt: &str) -> Result<Option<SecretString>>;

    /// Whether this caller can ask a person at all. When it cannot (protocol actions),
    /// a vault that nothing opened is "locked", whatever slots it has: a hint about a
    /// prompt that will never come would only confuse.
    fn interactive(&self) -> bool {
        true
    }

    /// How many times a person may type the vault's passphrase before the command
    /// gives up (sudo and ssh allow three).
    fn passphrase_tries(&self) -> u32 {
        1
    }
}

/// For protocol actions and anything unattended: never prompts, so a vault nothing
/// else opens is "locked".
pub struct NeverPrompt;

impl Callbacks for NeverPrompt {
    fn request_passphrase(&self, _prompt: &str) -> Result<Option<SecretString>> {
        Ok(None)
    }

    fn interactive(&self) -> bool {
        false
    }
}

/// For commands for people: asks on the terminal (rpassword reads `/dev/tty`, never
/// stdin).
pub struct Terminal;

impl Callbacks for Terminal {
    fn request_passphrase(&self, prompt: &str) -> Result<Option<SecretString>> {
        rpassword::prompt_password(prompt)
            .map(|p| Some(SecretString::from(p)))
            .map_err(|_| Error::NoTerminal)
    }

    fn passphrase_tries(&self) -> u32 {
        crate::identity::TERMINAL_TRIES
    }
}

/// The vault key, and the passphrase when that is what opened it (re-wrapping the
/// passphrase slot during a rotation needs it).
pub struct KeyOpened {
    /// The vault's key.
    pub key: VaultKey,
    /// The passphrase, when a passphrase opened it.
    pub passphrase: Option<SecretString>,
    /// Which source opened it ([`KeySource::name`]).
    pub source: String,
}

/// What `status` can say of a source without trying it.
#[derive(Debug)]
pub enum Verdict {
    /// Set, and nothing visible rules it out; only trying tells (`status --check`).
    Untried,
    /// It holds this vault's key now (the agent said so, which costs no work).
    Ready(Held),
    /// It does not apply to this vault, and why.
    NotApplicable(Error),
    /// It cannot be asked at all (an agent directory that is not private): an error
    /// whatever the vault.
    Broken(Error),
}

/// One source as `status` shows it.
#[derive(Debug)]
pub struct Description {
    /// [`KeySource::name`]
    pub name: String,
    /// [`KeySource::origin`]
    pub origin: Origin,
    /// What can be seen without trying.
    pub verdict: Verdict,
}

/// A place the vault key may come from.
pub trait KeySource {
    /// How the source is named to a person: a variable, a flag, `agent`, `terminal`.
    fn name(&self) -> String;
    /// Explicit or ambient (the failure rule).
    fn origin(&self) -> Origin;
    /// What can be said without trying: no key derivation, no command, no network.
    fn describe(&self, vault: &Vault) -> Verdict;
    /// The vault key itself, for commands that re-wrap slots or hand the key over.
    fn open_key(&self, vault: &Vault, callbacks: &dyn Callbacks) -> Tried<KeyOpened>;
    /// Something that opens entries (`get`, `export`); the key, unless the source can
    /// decrypt without giving it out (the agent).
    fn open_entries(
        &self,
        vault: &Vault,
        callbacks: &dyn Callbacks,
    ) -> Tried<Box<dyn EntryOpener>> {
        Ok(Box::new(self.open_key(vault, callbacks)?.key))
    }
}

/// Why a source did not open the vault, typed by the source itself: "not mine" (as
/// age's `Identity` answers `None` for a stanza it cannot open) or broken. The failure
/// rule reads only this, so a new source says which of its own errors mean "not mine"
/// where it makes them, and no list of error variants is kept here.
#[derive(Debug)]
pub enum Refusal {
    /// This vault is not this source's to open (no slot of its kind, no key of its,
    /// nobody to ask): an ambient source is passed over; the error says why.
    NotMine(Error),
    /// The source is there and failed: always the error.
    Failed(Error),
}

impl Refusal {
    /// The error, whichever it is.
    pub fn into_error(self) -> Error {
        match self {
            Refusal::NotMine(e) | Refusal::Failed(e) => e,
        }
    }
}

/// A failure the source did not mark as "not mine".
impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Failed(e)
    }
}

/// What trying a source gives.
pub type Tried<T> = std::result::Result<T, Refusal>;

/// Identities that open none of the vault's slots, or need a person or a plugin's
/// answer that nobody can give here: not this source's vault.
fn identity_refusal(e: Error) -> Refusal {
    match e {
        Error::NoMatchingIdentity
        | Error::NoAgeSlot
        | Error::IdentityNeedsPassphrase { .. }
        | Error::PluginNeedsAnswer { .. } => Refusal::NotMine(e),
        e => Refusal::Failed(e),
    }
}

/// A vault without a passphrase slot is not a passphrase's.
fn passphrase_refusal(e: Error) -> Refusal {
    match e {
        Error::NoPassphraseSlot => Refusal::NotMine(e),
        e => Refusal::Failed(e),
    }
}

/// The agent does not hold this vault, or serves it from its systemd credential,
/// which fails: a reason worth showing, but a later source (the identity command, the
/// terminal) may still open the vault, as `status` also judges.
fn agent_refusal(e: Error) -> Refusal {
    match e {
        Error::Locked | Error::AgentCredential { .. } => Refusal::NotMine(e),
        e => Refusal::Failed(e),
    }
}

/// How the agent is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentUse {
    /// `get`: no status round trip; the decrypt answer itself says "not unlocked".
    Lazy,
    /// Commands for people and `status --check`: ask first, so a later source (the
    /// terminal) can be used when the agent does not hold the key.
    Verified,
}

/// The sources in order (`docs/KEYS.md`, "The order"): flags, `LOCKBOX_IDENTITY`,
/// `LOCKBOX_IDENTITY_FILE`, the systemd credential, `LOCKBOX_PASSPHRASE_FILE`, the
/// OpenBao slot (opted in), the agent, `LOCKBOX_IDENTITY_CMD`, the terminal.
/// `agent` is `None` where no agent may be asked (unit tests).
pub fn sources<'a>(
    settings: &'a KeySettings,
    flags: &KeyFlags,
    agent: Option<(Agent, AgentUse)>,
) -> Vec<Box<dyn KeySource + 'a>> {
    let mut list: Vec<Box<dyn KeySource + 'a>> = Vec::new();
    let ask_file = flags.identity_passphrase_file.as_ref();
    if let Some(path) = &flags.identity_file {
        list.push(Box::new(IdentityFile {
            path: path.clone(),
            origin: Origin::Explicit,
            name: format!("--identity-file {}", path.display()),
            ask_file: ask_file.cloned(),
        }));
    }
    if let Some(path) = &flags.passphrase_file {
        list.push(Box::new(PassphraseFile {
            path: path.clone(),
            origin: Origin::Explicit,
            name: format!("--passphrase-file {}", path.display()),
        }));
    }
    if let Some(cmd) = &flags.identity_cmd {
        list.push(Box::new(IdentityCmd {
            cmd: IdentityCommand::new(cmd.clone(), "--identity-cmd"),
            origin: Origin::Explicit,
        }));
    }
    if flags.openbao || flags.openbao_token_file.is_some() {
        list.push(Box::new(OpenBao {
            settings,
            token_file: flags.openbao_token_file.clone(),
            origin: Origin::Explicit,
        }));
    }
    if let Some(text) = &settings.identity {
        list.push(Box::new(IdentityText {
            text,
            ask_file: ask_file.cloned(),
        }));
    }
    if let Some(path) = &settings.identity_file {
        list.push(Box::new(IdentityFile {
            path: path.clone(),
            origin: Origin::Ambient,
            name: var::IDENTITY_FILE.to_owned(),
            ask_file: ask_file.cloned(),
        }));
    }
    // systemd's credential: after the identity variables (a person's explicit setting
    // wins over the unit's), before the passphrase file (no Argon2id).
    if let Some(dir) = &settings.credentials_dir {
        list.push(Box::new(Credential {
            path: dir.join(var::CREDENTIAL_NAME),
        }));
    }
    if let Some(path) = &settings.passphrase_file {
        list.push(Box::new(PassphraseFile {
            path: path.clone(),
            origin: Origin::Ambient,
            name: var::PASSPHRASE_FILE.to_owned(),
        }));
    }
    // The OpenBao slot with the token the user opted in with for unattended use
    // (never `~/.vault-token`, `BAO_TOKEN`: those are a person's, for `--openbao`).
    // After the local sources (a network round trip), before the agent.
    if settings.openbao_opted_in() {
        list.push(Box::new(OpenBao {
            settings,
            token_file: None,
            origin: Origin::Ambient,
        }));
    }
    if let Some((agent, how)) = agent {
        list.push(Box::new(AgentSource { agent, how }));
    }
    // Last before the terminal: it runs a process (and maybe a network round trip) on
    // every call, so only when nothing cheaper opened the vault.
    if let Some(cmd) = &settings.identity_cmd {
        list.push(Box::new(IdentityCmd {
            cmd: IdentityCommand::new(cmd.clone(), var::IDENTITY_CMD),
            origin: Origin::Ambient,
        }));
    }
    list.push(Box::new(TerminalSource));
    list
}

/// A failure of the pipeline: the error, and the source that gave it (`None` when
/// every source was passed over).
type Failure<'s> = (Option<&'s dyn KeySource>, Error);

/// Runs the failure rule over `sources` with `attempt`.
fn first_that_opens<'s, T>(
    sources: &'s [Box<dyn KeySource + 's>],
    mut attempt: impl FnMut(&dyn KeySource) -> Tried<T>,
) -> std::result::Result<(T, &'s dyn KeySource), Failure<'s>> {
    let mut passed_over: Option<(&dyn KeySource, Error)> = None;
    for source in sources {
        let source: &dyn KeySource = source.as_ref();
        match attempt(source) {
            Ok(t) => return Ok((t, source)),
            Err(Refusal::NotMine(e)) if source.origin() == Origin::Ambient => {
                if passed_over.is_none() && !matches!(e, Error::Locked) {
                    passed_over = Some((source, e));
                }
            }
            Err(refusal) => return Err((Some(source), refusal.into_error())),
        }
    }
    Err(match passed_over {
        Some((s, e)) => (Some(s), e),
        None => (None, Error::Locked),
    })
}

/// The vault key, from the first source that opens it.
pub fn open_key(
    vault: &Vault,
    sources: &[Box<dyn KeySource + '_>],
    callbacks: &dyn Callbacks,
) -> Result<KeyOpened> {
    first_that_opens(sources, |s| s.open_key(vault, callbacks))
        .map(|(k, _)| k)
        .map_err(|(_, e)| e)
}

/// An opener of entries, from the first source that gives one, and its name.
pub fn open_entries(
    vault: &Vault,
    sources: &[Box<dyn KeySource + '_>],
    callbacks: &dyn Callbacks,
) -> Result<(Box<dyn EntryOpener>, String)> {
    first_that_opens(sources, |s| s.open_entries(vault, callbacks))
        .map(|(o, s)| (o, s.name()))
        .map_err(|(_, e)| e)
}

/// The outcome of `status --check`: the source that opened the vault, or the error
/// and the source that gave it.
pub fn check(
    vault: &Vault,
    sources: &[Box<dyn KeySource + '_>],
) -> Result<String, (Option<String>, Error)> {
    first_that_opens(sources, |s| s.open_entries(vault, &NeverPrompt).map(drop))
        .map(|((), s)| s.name())
        .map_err(|(s, e)| (s.map(|s| s.name()), e))
}

/// Every source, described without trying it (`status`).
pub fn describe(vault: &Vault, sources: &[Box<dyn KeySource + '_>]) -> Vec<Description> {
    sources
        .iter()
        .map(|s| Description {
            name: s.name(),
            origin: s.origin(),
            verdict: s.describe(vault),
        })
        .collect()
}

/// The opener `get` uses: the environment, then the agent; never a prompt.
pub fn for_get(vault: &Vault, settings: &Settings) -> Result<Box<dyn EntryOpener>> {
    // With an identity command after it, the agent is asked first whether it holds this
    // vault (one round trip), so an agent holding only other vaults falls through to the
    // command instead of answering "locked" at decrypt time.
    let how = if settings.keys.identity_cmd.is_some() {
        AgentUse::Verified
    } else {
        AgentUse::Lazy
    };
    let list = sources(
        &settings.keys,
        &KeyFlags::default(),
        // `exec`'s private agent for its command, else this user's.
        Some((Agent::for_requests(settings), how)),
    );
    open_entries(vault, &list, &NeverPrompt).map(|(o, _)| o)
}

/// The passphrase a rotation needs to re-wrap the passphrase slot, when the key was
/// opened some other way: `LOCKBOX_PASSPHRASE_FILE`, else asked through `callbacks`.
/// `None` when the vault has no passphrase slot.
pub fn rewrap_passphrase(
    vault: &Vault,
    opened: Option<SecretString>,
    settings: &KeySettings,
    callbacks: &dyn Callbacks,
) -> Result<Option<SecretString>> {
    if opened.is_some() || !has_passphrase_slot(vault) {
        return Ok(opened);
    }
    if let Some(file) = &settings.passphrase_file {
        return secret_io::read_passphrase_file(file).map(Some);
    }
    match callbacks.request_passphrase(messages::PROMPT_UNLOCK) {
        Ok(Some(p)) => Ok(Some(p)),
        Ok(None) | Err(Error::NoTerminal) => Err(Error::RotateNeedsPassphrase),
        Err(e) => Err(e),
    }
}

/// Whether the vault has a passphrase slot.
pub fn has_passphrase_slot(vault: &Vault) -> bool {
    vault
        .slots()
        .iter()
        .any(|s| matches!(s, Slot::Passphrase(_)))
}

fn has_age_slot(vault: &Vault) -> bool {
    vault.slots().iter().any(|s| matches!(s, Slot::Age { .. }))
}

fn identity_verdict(vault: &Vault) -> Verdict {
    if has_age_slot(vault) {
        Verdict::Untried
    } else {
        Verdict::NotApplicable(Error::NoAgeSlot)
    }
}

fn passphrase_verdict(vault: &Vault) -> Verdict {
    if has_passphrase_slot(vault) {
        Verdict::Untried
    } else {
        Verdict::NotApplicable(Error::NoPassphraseSlot)
    }
}

/// Identity text as every identity source reads it (`src/identity/mod.rs`): age
/// identities, an SSH private key, and passphrase-protected ones (an encrypted OpenSSH
/// key, an `age -p` identity file), whose passphrase is asked through `callbacks`
/// (never in protocol actions: [`Error::IdentityNeedsPassphrase`], which falls through
/// to the agent), or read from `ask_file` (`--identity-passphrase-file`: one try, no
/// prompt). Plugin identities are kept as text: no plugin runs here.
fn parse_identities(
    text: &[u8],
    source_name: &str,
    callbacks: &dyn Callbacks,
    ask_file: Option<&PathBuf>,
) -> Result<crate::identity::Identities> {
    /// The pipeline's callbacks as the identity parser's way to ask.
    struct Via<'a>(&'a dyn Callbacks);
    impl crate::identity::Ask for Via<'_> {
        fn passphrase(&self, what: &str) -> Result<Option<SecretString>> {
            let prompt = format!("Passphrase for {}: ", messages::sanitize(what));
            match self.0.request_passphrase(&prompt) {
                Err(Error::NoTerminal) => Ok(None),
                other => other,
            }
        }
        fn tries(&self) -> u32 {
            crate::identity::TERMINAL_TRIES
        }
    }
    /// `--identity-passphrase-file`: read once, for one try; its errors name the
    /// identity and the flag (the file's own errors would call it an identity).
    struct FromFile<'a>(&'a PathBuf);
    impl crate::identity::Ask for FromFile<'_> {
        fn passphrase(&self, what: &str) -> Result<Option<SecretString>> {
            secret_io::read_passphrase_file(self.0)
                .map(Some)
                .map_err(|e| {
                    let why = match e {
                        Error::BadPassphraseFile { reason, .. } => reason,
                        other => other.message(),
                    };
                    Error::BadIdentity {
                        source_name: what.to_owned(),
                        reason: format!(
                            "cannot read its passphrase from --identity-passphrase-file {}: {why}",
                            self.0.display()
                        ),
                    }
                })
        }
        fn tries(&self) -> u32 {
            1
        }
    }
    match ask_file {
        Some(file) => crate::identity::parse(text, source_name, &FromFile(file)),
        None => crate::identity::parse(text, source_name, &Via(callbacks)),
    }
}

/// Opens the vault with parsed identities (`src/identity/mod.rs`: native ones first, each
/// plugin at most once). A caller that may prompt (commands for people) lets a plugin
/// ask on the terminal, unbounded; one that may not (`get`, protocol actions, units)
/// answers every plugin request "no" and gives each plugin [`PLUGIN_GET_TIMEOUT`].
///
/// [`PLUGIN_GET_TIMEOUT`]: crate::identity::PLUGIN_GET_TIMEOUT
fn open_with(
    vault: &Vault,
    ids: &crate::identity::Identities,
    callbacks: &dyn Callbacks,
) -> Result<VaultKey> {
    use crate::identity::{PLUGIN_GET_TIMEOUT, PluginCallbacks};
    if callbacks.interactive() {
        crate::identity::open_vault(vault, ids, &PluginCallbacks::terminal(), None)
    } else {
        crate::identity::open_vault(
            vault,
            ids,
            &PluginCallbacks::never(),
            Some(PLUGIN_GET_TIMEOUT),
        )
    }
}

/// `--identity-cmd CMD` or `LOCKBOX_IDENTITY_CMD`: a command whose stdout is an
/// identity (`src/identity/command.rs`: no terminal, bounded time and output, stderr
/// relayed here). Its output is not asked a passphrase for: it must be usable as is.
struct IdentityCmd {
    cmd: IdentityCommand,
    origin: Origin,
}

impl KeySource for IdentityCmd {
    fn name(&self) -> String {
        self.cmd.origin.clone()
    }
    fn origin(&self) -> Origin {
        self.origin
    }
    fn describe(&self, vault: &Vault) -> Verdict {
        identity_verdict(vault) // never runs the command
    }
    fn open_key(&self, vault: &Vault, _: &dyn Callbacks) -> Tried<KeyOpened> {
        if !has_age_slot(vault) {
            return Err(Refusal::NotMine(Error::NoAgeSlot)); // nothing it could open: not run
        }
        let out = match self.cmd.run_for_identity() {
            Ok(out) => out,
            Err((e, stderr)) => {
                if let Some(stderr) = stderr {
                    crate::identity::command::relay(&stderr, &mut std::io::stderr());
                }
                return Err(e.into());
            }
        };
        crate::identity::command::relay(&out.stderr, &mut std::io::stderr());
        let ids = parse_identities(&out.stdout, &self.cmd.source_name(), &NeverPrompt, None)
            .map_err(identity_refusal)?;
        Ok(KeyOpened {
            key: open_with(vault, &ids, &NeverPrompt).map_err(identity_refusal)?,
            passphrase: None,
            source: self.name(),
        })
    }
}

/// `$CREDENTIALS_DIRECTORY/lockbox-identity`: an identity systemd decrypted for this
/// unit (`LoadCredentialEncrypted=lockbox-identity:…`, sealed to the TPM or the host
/// key by `systemd-creds`). A directory without that file does not apply.
struct Credential {
    path: PathBuf,
}

impl KeySource for Credential {
    fn name(&self) -> String {
        format!("${}/{}", var::CREDENTIALS_DIRECTORY, var::CREDENTIAL_NAME)
    }
    fn origin(&self) -> Origin {
        Origin::Ambient
    }
    fn describe(&self, vault: &Vault) -> Verdict {
        if !self.path.exists() {
            return Verdict::NotApplicable(Error::Locked);
        }
        identity_verdict(vault)
    }
    fn open_key(&self, vault: &Vault, _: &dyn Callbacks) -> Tried<KeyOpened> {
        if !self.path.exists() {
            // This unit has no such credential.
            return Err(Refusal::NotMine(Error::Locked));
        }
        let text = secret_io::read_credential_file(&self.path)?;
        // A unit has nobody at a terminal: an encrypted identity is refused, not asked.
        let ids =
            parse_identities(&text, &self.name(), &NeverPrompt, None).map_err(identity_refusal)?;
        Ok(KeyOpened {
            key: open_with(vault, &ids, &NeverPrompt).map_err(identity_refusal)?,
            passphrase: None,
            source: self.name(),
        })
    }
}

/// An OpenBao transit slot (`src/openbao/mod.rs`). The address, CA, namespace and token come
/// from the host only; the slot gives the mount, key name and ciphertext. Explicit
/// (`--openbao`, `--openbao-token-file`): a person's tokens (`BAO_TOKEN`,
/// `VAULT_TOKEN`, `~/.vault-token`). Ambient (`LOCKBOX_OPENBAO_TOKEN[_FILE]` set): that
/// token only. A vault without an OpenBao slot is [`Error::NoOpenBaoSlot`], checked
/// before any setting is read or any connection made.
struct OpenBao<'a> {
    settings: &'a KeySettings,
    token_file: Option<PathBuf>,
    origin: Origin,
}

impl OpenBao<'_> {
    fn scope(&self) -> crate::openbao::TokenScope<'_> {
        match self.origin {
            Origin::Explicit => crate::openbao::TokenScope::Person {
                flag: self.token_file.as_deref(),
                home: self.settings.home.as_deref(),
            },
            Origin::Ambient => crate::openbao::TokenScope::Explicit,
        }
    }
}

impl KeySource for OpenBao<'_> {
    fn name(&self) -> String {
        match (&self.origin, &self.token_file) {
            (Origin::Explicit, Some(f)) => format!("--openbao-token-file {}", f.display()),
            (Origin::Explicit, None) => "--openbao".to_owned(),
            (Origin::Ambient, _) => {
                if self.settings.openbao_var("LOCKBOX_OPENBAO_TOKEN").is_some() {
                    "OpenBao (LOCKBOX_OPENBAO_TOKEN)".to_owned()
                } else {
                    "OpenBao (LOCKBOX_OPENBAO_TOKEN_FILE)".to_owned()
                }
            }
        }
    }
    fn origin(&self) -> Origin {
        self.origin
    }
    fn describe(&self, vault: &Vault) -> Verdict {
        // No network: whether a slot is there is all that can be seen.
        if vault.has_openbao_slot() {
            Verdict::Untried
        } else {
            Verdict::NotApplicable(Error::NoOpenBaoSlot)
        }
    }
    fn open_key(&self, vault: &Vault, _: &dyn Callbacks) -> Tried<KeyOpened> {
        use crate::openbao;
        if !vault.has_openbao_slot() {
            return Err(Refusal::NotMine(Error::NoOpenBaoSlot));
        }
        let lookup = |name: &str| self.settings.openbao_var(name);
        let bao = openbao::Settings::from_lookup(&lookup).map_err(Error::from)?;
        let scope = self.scope();
        let token = openbao::find_token(&lookup, scope)
            .map_err(Error::from)?
            .ok_or_else(|| Error::from(openbao::no_token(scope)))?;
        let client = openbao::Client::new(&bao, token).map_err(Error::from)?;
        let key = vault.open_with_openbao(|mount, key, ciphertext| {
            Ok(openbao::open_vault_key(
                &client,
                mount,
                key,
                ciphertext,
                vault.public(),
            )?)
        })?;
        Ok(KeyOpened {
            key,
            passphrase: None,
            source: self.name(),
        })
    }
}

/// `LOCKBOX_IDENTITY`: identity text.
struct IdentityText<'a> {
    text: &'a [u8],
    /// `--identity-passphrase-file`, when given.
    ask_file: Option<PathBuf>,
}

impl KeySource for IdentityText<'_> {
    fn name(&self) -> String {
        var::IDENTITY.to_owned()
    }
    fn origin(&self) -> Origin {
        Origin::Ambient
    }
    fn describe(&self, vault: &Vault) -> Verdict {
        identity_verdict(vault)
    }
    fn open_key(&self, vault: &Vault, callbacks: &dyn Callbacks) -> Tried<KeyOpened> {
        let ids = parse_identities(self.text, var::IDENTITY, callbacks, self.ask_file.as_ref())
            .map_err(identity_refusal)?;
        Ok(KeyOpened {
            key: open_with(vault, &ids, callbacks).map_err(identity_refusal)?,
            passphrase: None,
            source: self.name(),
        })
    }
}

/// `--identity-file FILE` or `LOCKBOX_IDENTITY_FILE`.
struct IdentityFile {
    path: PathBuf,
    origin: Origin,
    name: String,
    /// `--identity-passphrase-file`, when given.
    ask_file: Option<PathBuf>,
}

impl KeySource for IdentityFile {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn origin(&self) -> Origin {
        self.origin
    }
    fn describe(&self, vault: &Vault) -> Verdict {
        identity_verdict(vault)
    }
    fn open_key(&self, vault: &Vault, callbacks: &dyn Callbacks) -> Tried<KeyOpened> {
        let text = secret_io::read_key_file(&self.path)?;
        let ids = parse_identities(
            &text,
            &self.path.display().to_string(),
            callbacks,
            self.ask_file.as_ref(),
        )
        .map_err(identity_refusal)?;
        Ok(KeyOpened {
            key: open_with(vault, &ids, callbacks).map_err(identity_refusal)?,
            passphrase: None,
            source: self.name(),
        })
    }
}

/// `--passphrase-file FILE` or `LOCKBOX_PASSPHRASE_FILE` (slow by design: Argon2id).
struct PassphraseFile {
    path: PathBuf,
    origin: Origin,
    name: String,
}

impl KeySource for PassphraseFile {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn origin(&self) -> Origin {
        self.origin
    }
    fn describe(&self, vault: &Vault) -> Verdict {
        passphrase_verdict(vault)
    }
    fn open_key(&self, vault: &Vault, _: &dyn Callbacks) -> Tried<KeyOpened> {
        // Checked before reading the file: a passphrase for a vault without a
        // passphrase slot does not apply, whatever the file holds.
        if !has_passphrase_slot(vault) {
            return Err(Refusal::NotMine(Error::NoPassphraseSlot));
        }
        let passphrase = secret_io::read_passphrase_file(&self.path)?;
        Ok(KeyOpened {
            key: vault
                .open_with_passphrase(&passphrase)
                .map_err(passphrase_refusal)?,
            passphrase: Some(passphrase),
            source: self.name(),
        })
    }
}

/// The agent started by `unlock`: decrypts on request, never gives out the key.
struct AgentSource {
    agent: Agent,
    how: AgentUse,
}

impl KeySource for AgentSource {
    fn name(&self) -> String {
        "agent".to_owned()
    }
    fn origin(&self) -> Origin {
        Origin::Ambient
    }
    fn describe(&self, vault: &Vault) -> Verdict {
        // Held, or opened from the agent's systemd credential (`src/agent/credential.rs`).
        match self.agent.serves(&vault.public().to_string()) {
            Ok(Some(held)) => Verdict::Ready(held),
            Ok(None) => Verdict::NotApplicable(Error::Locked),
            Err(e @ Error::AgentCredential { .. }) => Verdict::NotApplicable(e),
            Err(e) => Verdict::Broken(e),
        }
    }
    fn open_key(&self, _: &Vault, _: &dyn Callbacks) -> Tried<KeyOpened> {
        // The agent never hands a key back out: for this caller it does not apply.
        Err(Refusal::NotMine(Error::Locked))
    }
    fn open_entries(&self, vault: &Vault, _: &dyn Callbacks) -> Tried<Box<dyn EntryOpener>> {
        let public_key = vault.public().to_string();
        if self.how == AgentUse::Verified
            && self
                .agent
                .serves(&public_key)
                .map_err(agent_refusal)?
                .is_none()
        {
            return Err(Refusal::NotMine(Error::Locked));
        }
        Ok(Box::new(
            AgentOpener::connect(&self.agent, public_key).map_err(agent_refusal)?,
        ))
    }
}

/// The passphrase, asked through the caller's [`Callbacks`] (commands for people).
struct TerminalSource;

impl KeySource for TerminalSource {
    fn name(&self) -> String {
        "terminal".to_owned()
    }
    fn origin(&self) -> Origin {
        Origin::Ambient
    }
    fn describe(&self, vault: &Vault) -> Verdict {
        passphrase_verdict(vault)
    }
    fn open_key(&self, vault: &Vault, callbacks: &dyn Callbacks) -> Tried<KeyOpened> {
        // Never the "no passphrase slot" hint for a caller that cannot prompt: `get` on
        // an age-only vault with no key source is locked (DESIGN.md), not a slot problem.
        if !callbacks.interactive() {
            return Err(Refusal::NotMine(Error::Locked));
        }
        if !has_passphrase_slot(vault) {
            return Err(Refusal::NotMine(Error::NoPassphraseSlot));
        }
        let tries = callbacks.passphrase_tries().max(1);
        for attempt in 1..=tries {
            let Some(passphrase) = callbacks.request_passphrase(messages::PROMPT_UNLOCK)? else {
                return Err(Refusal::NotMine(Error::Locked));
            };
            match vault.open_with_passphrase(&passphrase) {
                Ok(key) => {
                    return Ok(KeyOpened {
                        key,
                        passphrase: Some(passphrase),
                        source: self.name(),
                    });
                }
                Err(Error::WrongPassphrase) if attempt < tries => {
                    eprintln!("{}", messages::WRONG_PASSPHRASE_TRY_AGAIN);
                }
                Err(e) => return Err(passphrase_refusal(e)),
            }
        }
        Err(Refusal::Failed(Error::WrongPassphrase))
    }
}

/// The one re-wrap hook of a rotation or a new slot ([`crate::vault::Rewrap`]): each
/// slot kind's backend, asked in turn; a kind none of them takes is the core's.
pub struct Rotation {
    plugins: crate::identity::PluginRewrap,
    openbao: Option<crate::openbao::Client>,
}

impl crate::vault::Rewrap for Rotation {
    fn rewrap(&self, slot: &Slot, key: &VaultKey) -> Result<Option<Slot>> {
        if let Some(made) = self.plugins.rewrap(slot, key)? {
            return Ok(Some(made));
        }
        match &self.openbao {
            Some(client) => client.rewrap(slot, key),
            None => Ok(None),
        }
    }
}

/// The hook for making slots with no rotation (`init`, `recipients add`): plugins run
/// on the terminal; no OpenBao slot is re-wrapped.
pub fn new_slots() -> Rotation {
    Rotation {
        plugins: crate::identity::PluginRewrap::terminal(),
        openbao: None,
    }
}

/// What a rotation (`passwd`, `recipients remove`, dropping the slots at `removed`)
/// needs from this host, found before anything is asked or written (see
/// `rotation_client`): the hook [`crate::vault::Vault::rotate`] takes.
pub fn rotation(
    vault: &Vault,
    removed: &[usize],
    settings: &Settings,
    token_file: Option<&std::path::Path>,
) -> Result<Rotation> {
    Ok(Rotation {
        plugins: crate::identity::PluginRewrap::terminal(),
        openbao: rotation_client(vault, removed, settings, token_file)?,
    })
}

/// What a rotation (`passwd`, `recipients remove`) needs from this host, found before
/// anything is asked or written. Every kept plugin slot is re-wrapped by running its
/// plugin: one not in `PATH` is [`Error::RotatePlugin`] (tag slots wrap natively).
/// Then the transit client the kept OpenBao slots are re-wrapped with: `None` when no
/// kept slot is an OpenBao slot; no token is [`Error::RotateOpenBao`].
fn rotation_client(
    vault: &crate::vault::Vault,
    removed: &[usize],
    settings: &Settings,
    token_file: Option<&std::path::Path>,
) -> Result<Option<crate::openbao::Client>> {
    use crate::identity::require_plugin;
    use crate::openbao::{self, TokenScope};
    use crate::vault::slot::{SlotKind, slot_kind};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::crypto::{KdfParams, Recipient};
    use age::secrecy::ExposeSecret;
    use std::cell::Cell;
    use zeroize::Zeroizing;

    const FAST: KdfParams = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    struct Fixture {
        vault: Vault,
        key: VaultKey,
        identity: String,
        dir: tempfile::TempDir,
    }

    /// A vault with one age slot (and a passphrase slot when `passphrase` is given).
    fn fixture(passphrase: Option<&str>) -> Fixture {
        let key = VaultKey::generate();
        let id = age::x25519::Identity::generate();
        let mut slots = vec![
            Vault::age_slot(
                &key,
                &Recipient::parse(&id.to_public().to_string()).unwrap(),
                "ci".into(),
            )
            .unwrap(),
        ];
        if let Some(p) = passphrase {
            slots.push(
                Vault::passphrase_slot(&key, &SecretString::from(p.to_owned()), FAST).unwrap(),
            );
        }
        Fixture {
            vault: Vault::new(&key, slots),
            key,
            identity: id.to_string().expose_secret().to_owned(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    impl Fixture {
        fn file(&self, name: &str, text: &str) -> PathBuf {
            let p = self.dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    fn other_identity() -> String {
        age::x25519::Identity::generate()
            .to_string()
            .expose_secret()
            .to_owned()
    }

    fn settings(
        identity: Option<&str>,
        identity_file: Option<PathBuf>,
        pass: Option<PathBuf>,
    ) -> KeySettings {
        KeySettings {
            identity: identity.map(|t| Zeroizing::new(t.as_bytes().to_vec())),
            identity_file,
            passphrase_file: pass,
            identity_cmd: None,
            credentials_dir: None,
            openbao_env: Vec::new(),
            home: None,
        }
    }

    /// A terminal stand-in that counts its prompts.
    struct Scripted {
        answer: Option<&'static str>,
        asked: Cell<u32>,
    }
    impl Callbacks for Scripted {
        fn request_passphrase(&self, _: &str) -> Result<Option<SecretString>> {
            self.asked.set(self.asked.get() + 1);
            Ok(self.answer.map(|a| SecretString::from(a.to_owned())))
        }
    }

    /// A person at a terminal typing these answers in turn, allowed `tries`.
    struct Typing {
        answers: std::cell::RefCell<Vec<&'static str>>,
        tries: u32,
    }
    impl Callbacks for Typing {
        fn request_passphrase(&self, _: &str) -> Result<Option<SecretString>> {
            let mut a = self.answers.borrow_mut();
            Ok((!a.is_empty()).then(|| SecretString::from(a.remove(0).to_owned())))
        }
        fn passphrase_tries(&self) -> u32 {
            self.tries
        }
    }

    #[test]
    fn the_terminal_allows_three_tries_of_the_passphrase() {
        let f = fixture(Some("pw"));
        let s = settings(None, None, None);
        let typing = |answers: Vec<&'static str>, tries| Typing {
            answers: std::cell::RefCell::new(answers),
            tries,
        };
        // Third time right.
        let t = typing(vec!["no", "nope", "pw", "unused"], 3);
        let list = sources(&s, &KeyFlags::default(), None);
        assert!(open_key(&f.vault, &list, &t).is_ok());
        assert_eq!(t.answers.borrow().len(), 1, "asked three times, not four");
        // Three wrong: the error, after exactly three questions.
        let t = typing(vec!["a", "b", "c", "pw"], 3);
        assert!(matches!(
            open_key(&f.vault, &list, &t),
            Err(Error::WrongPassphrase)
        ));
        assert_eq!(t.answers.borrow().len(), 1);
        // A caller that allows one try (the default) asks once.
        let t = typing(vec!["a", "pw"], 1);
        assert!(matches!(
            open_key(&f.vault, &list, &t),
            Err(Error::WrongPassphrase)
        ));
        assert_eq!(t.answers.borrow().len(), 1);
    }

    fn opened_by(
        f: &Fixture,
        s: &KeySettings,
        flags: &KeyFlags,
        cb: &dyn Callbacks,
    ) -> Result<String> {
        let list = sources(s, flags, None);
        let k = open_key(&f.vault, &list, cb)?;
        assert_eq!(k.key.public().to_string(), f.key.public().to_string());
        Ok(k.source)
    }

    #[test]
    fn the_order_is_flags_identity_identity_file_passphrase_file_terminal() {
        let f = fixture(Some("pw"));
        let id_file = f.file("id", &f.identity);
        let pass = f.file("pass", "pw\n");
        let all = settings(Some(&f.identity), Some(id_file.clone()), Some(pass.clone()));
        let flag = KeyFlags {
            identity_file: Some(id_file.clone()),
            passphrase_file: None,
            ..KeyFlags::default()
        };
        assert_eq!(
            opened_by(&f, &all, &flag, &NeverPrompt).unwrap(),
            format!("--identity-file {}", id_file.display())
        );
        let none = KeyFlags::default();
        assert_eq!(
            opened_by(&f, &all, &none, &NeverPrompt).unwrap(),
            "LOCKBOX_IDENTITY"
        );
        let s = settings(None, Some(id_file), Some(pass.clone()));
        assert_eq!(
            opened_by(&f, &s, &none, &NeverPrompt).unwrap(),
            "LOCKBOX_IDENTITY_FILE"
        );
        let s = settings(None, None, Some(pass));
        assert_eq!(
            opened_by(&f, &s, &none, &NeverPrompt).unwrap(),
            "LOCKBOX_PASSPHRASE_FILE"
        );
        let cb = Scripted {
            answer: Some("pw"),
            asked: Cell::new(0),
        };
        assert_eq!(
            opened_by(&f, &settings(None, None, None), &none, &cb).unwrap(),
            "terminal"
        );
        assert_eq!(cb.asked.get(), 1);
    }

    #[test]
    fn openbao_is_used_only_when_opted_in_and_only_for_a_vault_with_its_slot() {
        let f = fixture(Some("pw"));
        let pass = f.file("pass", "pw");
        // ~/.vault-token and BAO_TOKEN alone: `get` gets no OpenBao source at all.
        let mut s = settings(None, None, Some(pass));
        s.openbao_env = vec![
            ("BAO_TOKEN", "t".into()),
            ("BAO_ADDR", "http://127.0.0.1:1".into()),
        ];
        s.home = Some(f.dir.path().to_owned());
        std::fs::write(f.dir.path().join(".vault-token"), "t").unwrap();
        let names: Vec<String> = sources(&s, &KeyFlags::default(), None)
            .iter()
            .map(|x| x.name())
            .collect();
        assert!(!names.iter().any(|n| n.contains("OpenBao")), "{names:?}");
        // Opted in: after the passphrase file, before the agent.
        s.openbao_env
            .push(("LOCKBOX_OPENBAO_TOKEN_FILE", "/nonexistent".into()));
        let list = sources(&s, &KeyFlags::default(), None);
        let names: Vec<String> = list.iter().map(|x| x.name()).collect();
        let ob = names
            .iter()
            .position(|n| n == "OpenBao (LOCKBOX_OPENBAO_TOKEN_FILE)");
        let pf = names.iter().position(|n| n == "LOCKBOX_PASSPHRASE_FILE");
        assert!(ob.unwrap() > pf.unwrap(), "{names:?}");
        assert_eq!(
            opened_by(&f, &s, &KeyFlags::default(), &NeverPrompt).unwrap(),
            "LOCKBOX_PASSPHRASE_FILE"
        );
        // Alone, it falls through (the token file is never read) and says why.
        let mut no_pass = settings(None, None, None);
        no_pass.openbao_env = s.openbao_env.clone();
        assert!(matches!(
            opened_by(&f, &no_pass, &KeyFlags::default(), &NeverPrompt),
            Err(Error::NoOpenBaoSlot)
        ));
        // Typed by a person, the same missing slot is the error.
        let flags = KeyFlags {
            openbao: true,
            ..KeyFlags::default()
        };
        assert!(matches!(
            opened_by(&f, &no_pass, &flags, &NeverPrompt),
            Err(Error::NoOpenBaoSlot)
        ));
    }

    #[test]
    fn an_ambient_identity_that_does_not_apply_falls_through() {
        let f = fixture(Some("pw"));
        let pass = f.file("pass", "pw");
        // Another vault's identity in the environment: the passphrase file opens it.
        let s = settings(Some(&other_identity()), None, Some(pass));
        assert_eq!(
            opened_by(&f, &s, &KeyFlags::default(), &NeverPrompt).unwrap(),
            "LOCKBOX_PASSPHRASE_FILE"
        );
        // ...and the terminal, for a person.
        let cb = Scripted {
            answer: Some("pw"),
            asked: Cell::new(0),
        };
        let s = settings(Some(&other_identity()), None, None);
        assert_eq!(
            opened_by(&f, &s, &KeyFlags::default(), &cb).unwrap(),
            "terminal"
        );
    }

    #[test]
    fn when_everything_falls_through_the_most_telling_reason_is_the_error() {
        let f = fixture(None);
        let s = settings(Some(&other_identity()), None, None);
        assert!(matches!(
            opened_by(&f, &s, &KeyFlags::default(), &NeverPrompt),
            Err(Error::NoMatchingIdentity)
        ));
        // A passphrase file for a vault with no passphrase slot does not apply either.
        let pass = f.file("pass", "pw");
        let s = settings(None, None, Some(pass));
        assert!(matches!(
            opened_by(&f, &s, &KeyFlags::default(), &NeverPrompt),
            Err(Error::NoPassphraseSlot)
        ));
        // Nothing set, nobody to ask: locked.
        let f = fixture(Some("pw"));
        assert!(matches!(
            opened_by(
                &f,
                &settings(None, None, None),
                &KeyFlags::default(),
                &NeverPrompt
            ),
            Err(Error::Locked)
        ));
    }

    #[test]
    fn an_explicit_source_that_fails_is_the_error() {
        let f = fixture(Some("pw"));
        let wrong = f.file("wrong-id", &other_identity());
        let pass = f.file("pass", "pw");
        // The environment would open it, but the flag the user typed does not.
        let s = settings(Some(&f.identity), None, Some(pass));
        let flags = KeyFlags {
            identity_file: Some(wrong),
            passphrase_file: None,
            ..KeyFlags::default()
        };
        assert!(matches!(
            opened_by(&f, &s, &flags, &NeverPrompt),
            Err(Error::NoMatchingIdentity)
        ));
        let flags = KeyFlags {
            identity_file: None,
            passphrase_file: Some(f.file("bad-pass", "not it")),
            ..KeyFlags::default()
        };
        assert!(matches!(
            opened_by(&f, &s, &flags, &NeverPrompt),
            Err(Error::WrongPassphrase)
        ));
    }

    #[test]
    fn a_broken_ambient_source_is_the_error_not_skipped() {
        let f = fixture(Some("pw"));
        let pass = f.file("pass", "pw");
        // Unparseable identity text.
        let s = settings(Some("not a key"), None, Some(pass.clone()));
        assert!(matches!(
            opened_by(&f, &s, &KeyFlags::default(), &NeverPrompt),
            Err(Error::BadIdentity { .. })
        ));
        // A missing identity file.
        let s = settings(None, Some(f.dir.path().join("absent")), Some(pass));
        assert!(matches!(
            opened_by(&f, &s, &KeyFlags::default(), &NeverPrompt),
            Err(Error::BadIdentity { .. })
        ));
        // A wrong passphrase for a vault that has a passphrase slot.
        let s = settings(None, None, Some(f.file("wrong", "nope")));
        let cb = Scripted {
            answer: Some("pw"),
            asked: Cell::new(0),
        };
        assert!(matches!(
            opened_by(&f, &s, &KeyFlags::default(), &cb),
            Err(Error::WrongPassphrase)
        ));
        assert_eq!(cb.asked.get(), 0, "no prompt after a broken setting");
    }

    #[test]
    fn describe_tries_nothing() {
        let f = fixture(None);
        // A passphrase file that does not exist: describing it must not read it, and
        // the vault has no passphrase slot, which is visible without trying.
        let s = settings(
            Some("garbage that would fail to parse"),
            None,
            Some(f.dir.path().join("absent")),
        );
        let list = sources(&s, &KeyFlags::default(), None);
        let d = describe(&f.vault, &list);
        let names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            ["LOCKBOX_IDENTITY", "LOCKBOX_PASSPHRASE_FILE", "terminal"]
        );
        assert!(matches!(d[0].verdict, Verdict::Untried));
        assert!(matches!(
            d[1].verdict,
            Verdict::NotApplicable(Error::NoPassphraseSlot)
        ));
        // --check does try, and reports the broken one.
        let (source, e) = check(&f.vault, &list).unwrap_err();
        assert_eq!(source.as_deref(), Some("LOCKBOX_IDENTITY"));
        assert!(matches!(e, Error::BadIdentity { .. }));
    }

    #[test]
    fn a_rotation_asks_for_the_passphrase_only_when_a_slot_needs_it() {
        let f = fixture(Some("pw"));
        let none = settings(None, None, None);
        let cb = Scripted {
            answer: None,
            asked: Cell::new(0),
        };
        assert!(matches!(
            rewrap_passphrase(&f.vault, None, &none, &cb),
            Err(Error::RotateNeedsPassphrase)
        ));
        let s = settings(None, None, Some(f.file("pass", "pw\n")));
        let p = rewrap_passphrase(&f.vault, None, &s, &cb).unwrap().unwrap();
        assert_eq!(p.expose_secret(), "pw");
        let f = fixture(None);
        assert!(
            rewrap_passphrase(&f.vault, None, &none, &cb)
                .unwrap()
                .is_none()
        );
        assert_eq!(cb.asked.get(), 1);
    }

    /// Regression: `get` on an age-only vault with no key source said "this vault has
    /// no passphrase slot" (the terminal source's hint) instead of the locked line.
    #[test]
    fn regress_age_only_vault_without_a_source_is_locked_for_protocol_actions() {
        let f = fixture(None);
        let keys = settings(None, None, None);
        let list = sources(&keys, &KeyFlags::default(), None);
        assert!(matches!(
            open_key(&f.vault, &list, &NeverPrompt),
            Err(Error::Locked)
        ));
        // A person at a terminal still gets the hint that says what to use instead.
        let asked = Scripted {
            answer: None,
            asked: Cell::new(0),
        };
        assert!(matches!(
            open_key(&f.vault, &list, &asked),
            Err(Error::NoPassphraseSlot)
        ));
        assert_eq!(asked.asked.get(), 0);
    }

    #[test]
    fn the_identity_command_runs_last_and_only_when_needed() {
        let f = fixture(Some("pw"));
        let marker = f.dir.path().join("ran");
        let id_file = f.file("id", &f.identity);
        let cmd = format!("touch '{}'; cat '{}'", marker.display(), id_file.display());
        let mut s = settings(None, Some(id_file.clone()), None);
        s.identity_cmd = Some(cmd.clone().into());
        // An earlier source opens the vault: the command is never run.
        assert_eq!(
            opened_by(&f, &s, &KeyFlags::default(), &NeverPrompt).unwrap(),
            "LOCKBOX_IDENTITY_FILE"
        );
        assert!(
            !marker.exists(),
            "the identity command ran though it was not needed"
        );
        // Alone, it opens the vault.
        let mut s = settings(None, None, None);
        s.identity_cmd = Some(cmd.into());
        assert_eq!(
            opened_by(&f, &s, &KeyFlags::default(), &NeverPrompt).unwrap(),
            "LOCKBOX_IDENTITY_CMD"
        );
        assert!(marker.exists());
        // An identity that matches nothing falls through to the terminal.
        let other = f.file("other", &other_identity());
        s.identity_cmd = Some(format!("cat '{}'", other.display()).into());
        let cb = Scripted {
            answer: Some("pw"),
            asked: Cell::new(0),
        };
        assert_eq!(
            opened_by(&f, &s, &KeyFlags::default(), &cb).unwrap(),
            "terminal"
        );
        // A command that fails is the error: one line, never the not-found text.
        s.identity_cmd = Some("echo 'kms: denied' >&2; exit 4".into());
        let e = opened_by(&f, &s, &KeyFlags::default(), &cb).err().unwrap();
        let msg = e.message();
        assert!(
            msg.contains("LOCKBOX_IDENTITY_CMD") && msg.contains("status 4: kms: denied"),
            "{msg}"
        );
        assert!(!msg.contains(messages::NOT_FOUND));
        // The flag is explicit and first.
        let flags = KeyFlags {
            identity_cmd: Some(format!("cat '{}'", other.display()).into()),
            ..KeyFlags::default()
        };
        let e = opened_by(
            &f,
            &settings(Some(&f.identity), None, None),
            &flags,
            &NeverPrompt,
        );
        assert!(
            matches!(e, Err(Error::NoMatchingIdentity)),
            "explicit: no fall-through"
        );
    }

    /// `f`'s identity as an `age -p` file (cheap scrypt: a test).
    fn passphrase_protected(f: &Fixture, passphrase: &str) -> Vec<u8> {
        let mut r = age::scrypt::Recipient::new(SecretString::from(passphrase.to_owned()));
        r.set_work_factor(2);
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out).unwrap();
        std::io::Write::write_all(&mut w, f.identity.as_bytes()).unwrap();
        w.finish().unwrap();
        out
    }

    #[test]
    fn the_identity_passphrase_file_opens_encrypted_identities_of_every_identity_source() {
        let f = fixture(None);
        let enc = passphrase_protected(&f, "idpw");
        let enc_file = f.dir.path().join("id.age");
        std::fs::write(&enc_file, &enc).unwrap();
        let with = |file: &str| KeyFlags {
            identity_passphrase_file: Some(f.file(file, "idpw\n")),
            ..KeyFlags::default()
        };
        // LOCKBOX_IDENTITY, LOCKBOX_IDENTITY_FILE and --identity-file, with no prompt.
        let mut text = settings(None, None, None);
        text.identity = Some(Zeroizing::new(enc.clone()));
        assert_eq!(
            opened_by(&f, &text, &with("p1"), &NeverPrompt).unwrap(),
            "LOCKBOX_IDENTITY"
        );
        let file = settings(None, Some(enc_file.clone()), None);
        assert_eq!(
            opened_by(&f, &file, &with("p2"), &NeverPrompt).unwrap(),
            "LOCKBOX_IDENTITY_FILE"
        );
        let flags = KeyFlags {
            identity_file: Some(enc_file.clone()),
            ..with("p3")
        };
        assert!(
            opened_by(&f, &settings(None, None, None), &flags, &NeverPrompt)
                .unwrap()
                .starts_with("--identity-file ")
        );
        // Without it nobody is asked here: the identity does not apply (locked).
        assert!(matches!(
            opened_by(&f, &file, &KeyFlags::default(), &NeverPrompt),
            Err(Error::IdentityNeedsPassphrase { .. })
        ));
        // A wrong one is one try, then the error (never the terminal).
        let cb = Scripted {
            answer: Some("idpw"),
            asked: Cell::new(0),
        };
        let wrong = KeyFlags {
            identity_passphrase_file: Some(f.file("bad", "nope")),
            ..KeyFlags::default()
        };
        let e = opened_by(&f, &file, &wrong, &cb).err().unwrap();
        assert!(e.message().contains("wrong passphrase"), "{}", e.message());
        assert_eq!(cb.asked.get(), 0);
        // The identity command and the credential never take it: their text must be
        // usable as is.
        let mut cmd = settings(None, None, None);
        cmd.identity_cmd = Some(format!("cat '{}'", enc_file.display()).into());
        assert!(matches!(
            opened_by(&f, &cmd, &with("p4"), &NeverPrompt),
            Err(Error::IdentityNeedsPassphrase { .. })
        ));
    }

    #[test]
    fn the_systemd_credential_is_a_source_after_the_identity_variables() {
        let f = fixture(Some("pw"));
        let dir = f.dir.path().join("creds");
        std::fs::create_dir(&dir).unwrap();
        let mut s = settings(None, None, Some(f.file("pass", "pw")));
        s.credentials_dir = Some(dir.clone());
        // No lockbox-identity in the directory: passed over.
        assert_eq!(
            opened_by(&f, &s, &KeyFlags::default(), &NeverPrompt).unwrap(),
            "LOCKBOX_PASSPHRASE_FILE"
        );
        std::fs::write(dir.join("lockbox-identity"), &f.identity).unwrap();
        assert_eq!(
            opened_by(&f, &s, &KeyFlags::default(), &NeverPrompt).unwrap(),
            "$CREDENTIALS_DIRECTORY/lockbox-identity"
        );
        // LOCKBOX_IDENTITY_FILE comes first.
        s.identity_file = Some(f.file("id", &f.identity));
        assert_eq!(
            opened_by(&f, &s, &KeyFlags::default(), &NeverPrompt).unwrap(),
            "LOCKBOX_IDENTITY_FILE"
        );
        // A credential that is not an identity is the error, not skipped.
        s.identity_file = None;
        std::fs::write(dir.join("lockbox-identity"), "garbage").unwrap();
        assert!(matches!(
            opened_by(&f, &s, &KeyFlags::default(), &NeverPrompt),
            Err(Error::BadIdentity { .. })
        ));
    }
}
