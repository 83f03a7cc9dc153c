//! Identities that need more than their text to be used, and opening age slots with
//! them:
//!
//! - **passphrase-protected identities**: an encrypted OpenSSH key (ssh-ed25519,
//!   ssh-rsa; `ssh-keygen -N`) and an age identity file encrypted with a passphrase
//!   (`age -p`, binary or armored with `-a`; rage's encrypted identities). The
//!   passphrase comes from an [`Ask`]: the terminal (with retries), a file, or
//!   [`NeverAsk`] for protocol actions, which answers with one line saying to run
//!   `unlock` instead of prompting;
//! - **age plugin identities** (`AGE-PLUGIN-NAME-1…`, for `age-plugin-NAME` in `PATH`)
//!   and the recipients that need them: plugin recipients (`age1NAME1…`) and tag
//!   recipients (`age1tag1…`, `age1tagpq1…`, which age encrypts to natively but only a
//!   plugin can open).
//!
//! Parsing ([`parse`]) never runs a plugin and never asks unless the text is
//! encrypted: the `identity_parse` fuzz target calls it with [`NeverAsk`]. A plugin
//! runs only in [`open_age_slots`], once per plugin name, and only when the vault has a
//! slot whose recipient that plugin could open (a plugin recipient of that name, or a
//! tag recipient): never one run, nor one PIN prompt, per slot. Its stanzas from every
//! such slot go to it in one request; the file key it returns is tried against those
//! slots' header MACs. A plugin runs through lockbox's own protocol client
//! ([`plugin_client`]), its output and time bounded: [`PLUGIN_GET_TIMEOUT`] on `get`,
//! [`PLUGIN_PERSON_TIMEOUT`] of its own time in a command for people.
//!
//! Work read from a file is bounded before it is done: the scrypt work factor of an
//! encrypted age identity ([`MAX_SCRYPT_LOG_N`]) and the bcrypt rounds of an encrypted
//! OpenSSH key ([`MAX_BCRYPT_ROUNDS`]).
pub mod command;
pub mod plugin_client;
pub mod recipient;

use std::io::{Cursor, Read};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use age_core::format::{FileKey, Stanza};
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::identity::plugin_client::PluginFailure;
use crate::vault::crypto::{PluginRecipient, Recipient, VaultKey};
use crate::vault::slot::{SlotKind, slot_kind};
use crate::vault::{Rewrap, Slot, Vault};

/// Largest identity text read (a file, a variable, a command's output), bytes.
pub const MAX_IDENTITY_BYTES: usize = 64 * 1024;
/// Largest scrypt work factor (log2 N) accepted from an `age -p` identity file: 2^20
/// takes 1 GiB and a few seconds, the same bound as the vault's Argon2id memory. age
/// itself writes 18.
pub const MAX_SCRYPT_LOG_N: u8 = 20;
/// Most bcrypt-pbkdf rounds accepted from an encrypted OpenSSH key (`ssh-keygen -a`;
/// its default is 16), about ten seconds here.
pub const MAX_BCRYPT_ROUNDS: u32 = 1024;
/// How long a plugin may take on `get` (a protocol action, where nobody can answer a
/// prompt) before lockbox gives up on it.
pub const PLUGIN_GET_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a plugin may take in a command for people (`unlock`, `exec`, `export`,
/// `passwd`, `init`, `recipients`), not counting the time a person spends answering
/// what it asked on the terminal (a PIN): the clock stops while lockbox's prompt is
/// open.
pub const PLUGIN_PERSON_TIMEOUT: Duration = Duration::from_secs(60);
/// Tries a person gets at a passphrase on the terminal.
pub const TERMINAL_TRIES: u32 = 3;

/// Where the passphrase of a protected identity comes from.
pub trait Ask {
    /// The passphrase for `what` (the identity's source, e.g. a path), or `None` when
    /// this context never asks (protocol actions).
    fn passphrase(&self, what: &str) -> Result<Option<SecretString>>;
    /// How many tries a wrong passphrase gets.
    fn tries(&self) -> u32;
}

/// Never asks: protocol actions, and the fuzz target.
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverAsk;

impl Ask for NeverAsk {
    fn passphrase(&self, _: &str) -> Result<Option<SecretString>> {
        Ok(None)
    }
    fn tries(&self) -> u32 {
        1
    }
}

/// Asks on the controlling terminal (`/dev/tty`, never stdin), [`TERMINAL_TRIES`] times.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminalAsk;

impl Ask for TerminalAsk {
    fn passphrase(&self, what: &str) -> Result<Option<SecretString>> {
        let prompt = format!("Passphrase for {}: ", crate::messages::sanitize(what));
        let text = rpassword::prompt_password(prompt).map_err(|e| Error::BadIdentity {
            source_name: what.to_owned(),
            reason: format!("cannot ask for its passphrase on the terminal: {e}"),
        })?;
        Ok(Some(SecretString::from(text)))
    }
    fn tries(&self) -> u32 {
        TERMINAL_TRIES
    }
}

/// Reads the passphrase from a file (one trailing newline dropped), once.
#[derive(Debug, Clone)]
pub struct FileAsk(pub PathBuf);

impl Ask for FileAsk {
    fn passphrase(&self, _: &str) -> Result<Option<SecretString>> {
        crate::secret_io::read_passphrase_file(&self.0).map(Some)
    }
    fn tries(&self) -> u32 {
        1
    }
}

/// Identities read from one or more sources, not yet used.
#[derive(Default)]
pub struct Identities {
    /// X25519 and SSH identities (passphrase-protected ones already decrypted).
    pub native: Vec<Box<dyn age::Identity + Send + Sync>>,
    /// Plugin identities: text only until [`open_age_slots`] runs their plugin.
    pub plugins: Vec<age::plugin::Identity>,
}

impl Identities {
    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.native.is_empty() && self.plugins.is_empty()
    }

    /// Adds another source's identities (they combine: every one is tried).
    pub fn extend(&mut self, other: Identities) {
        self.native.extend(other.native);
        self.plugins.extend(other.plugins);
    }
}

const SSH_BEGIN: &[u8] = b"-----BEGIN";
const AGE_ARMOR_BEGIN: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
const AGE_BINARY_BEGIN: &[u8] = b"age-encryption.org/v1\n";

/// Parses identity text: age identities and plugin identities, one per line (`#`
/// comments and blank lines skipped), an OpenSSH / PEM private key (ssh-ed25519,
/// ssh-rsa), or an `age -p` encrypted identity file holding age or plugin identities.
/// Keys that are passphrase-protected are decrypted here, asking `ask`. No plugin runs.
/// `source_name` names the source in errors; no error contains key material.
pub fn parse(text: &[u8], source_name: &str, ask: &dyn Ask) -> Result<Identities> {
    let bad = |reason: &str| bad(source_name, reason);
    if text.len() > MAX_IDENTITY_BYTES {
        return Err(bad(&format!("larger than {MAX_IDENTITY_BYTES} bytes")));
    }
    let start = text.trim_ascii_start();
    let ids = if start.starts_with(AGE_ARMOR_BEGIN) || text.starts_with(AGE_BINARY_BEGIN) {
        let plain = decrypt_age_identity_file(text, source_name, ask)?;
        parse_lines(&plain, source_name, "the decrypted identity file")?
    } else if text.windows(SSH_BEGIN.len()).any(|w| w == SSH_BEGIN) {
        parse_ssh(text, source_name, ask)?
    } else {
        parse_lines(text, source_name, "it")?
    };
    if ids.is_empty() {
        return Err(bad("it holds no identity"));
    }
    Ok(ids)
}

fn bad(source_name: &str, reason: &str) -> Error {
    Error::BadIdentity {
        source_name: source_name.to_owned(),
        reason: reason.to_owned(),
    }
}

/// One identity per line: `AGE-SECRET-KEY-1…` or `AGE-PLUGIN-NAME-1…`.
fn parse_lines(text: &[u8], source_name: &str, what: &str) -> Result<Identities> {
    let text = std::str::from_utf8(text)
        .map_err(|_| bad(source_name, &format!("{what} is not UTF-8 text")))?;
    let mut ids = Identities::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Ok(id) = age::x25519::Identity::from_str(line) {
            ids.native.push(Box::new(id));
        } else if let Ok(id) = age::plugin::Identity::from_str(line) {
            ids.plugins.push(id);
        } else {
            // The line number, never the line: it may be a mistyped key.
            return Err(bad(
                source_name,
                &format!(
                    "line {} of {what} is not an age identity (AGE-SECRET-KEY-1…, AGE-PLUGIN-…) or an SSH private key",
                    n + 1
                ),
            ));
        }
    }
    Ok(ids)
}

/// Asks for a passphrase up to `ask.tries()` times, handing each to `attempt`, which
/// answers `Ok(Some(value))`, `Ok(None)` for a wrong passphrase, or an error.
fn with_passphrase<T>(
    source_name: &str,
    ask: &dyn Ask,
    mut attempt: impl FnMut(SecretString) -> Result<Option<T>>,
) -> Result<T> {
    for n in 0..ask.tries().max(1) {
        let Some(passphrase) = ask.passphrase(source_name)? else {
            return Err(Error::IdentityNeedsPassphrase {
                source_name: source_name.to_owned(),
            });
        };
        if let Some(value) = attempt(passphrase)? {
            return Ok(value);
        }
        if n + 1 < ask.tries() {
            eprintln!(
                "lockbox: wrong passphrase for {}; try again",
                crate::messages::sanitize(source_name)
            );
        }
    }
    Err(bad(source_name, "wrong passphrase"))
}

/// An `age -p` encrypted identity file (binary or armored): the identity text inside.
fn decrypt_age_identity_file(
    text: &[u8],
    source_name: &str,
    ask: &dyn Ask,
) -> Result<Zeroizing<Vec<u8>>> {
    let not_passphrase = || {
        bad(
            source_name,
            "it is an age-encrypted file, but not encrypted with a passphrase (age -p)",
        )
    };
    let open = || {
        age::Decryptor::new_buffered(age::armor::ArmoredReader::new(Cursor::new(text)))
            .map_err(|_| bad(source_name, "it is not a well-formed age-encrypted file"))
    };
    if !open()?.is_scrypt() {
        return Err(not_passphrase());
    }
    with_passphrase(source_name, ask, |passphrase| {
        let mut identity = age::scrypt::Identity::new(passphrase);
        identity.set_max_work_factor(MAX_SCRYPT_LOG_N);
        let mut reader = match open()?.decrypt(std::iter::once(&identity as &dyn age::Identity)) {
            Ok(r) => r,
            Err(age::DecryptError::DecryptionFailed) => return Ok(None),
            Err(age::DecryptError::ExcessiveWork { required, .. }) => {
                return Err(bad(
                    source_name,
                    &format!(
                        "its scrypt work factor {required} is over lockbox's bound of {MAX_SCRYPT_LOG_N}"
                    ),
                ));
            }
            Err(_) => return Err(bad(source_name, "it does not decrypt")),
        };
        let plain =
            crate::secret_io::read_wiped(&mut reader, MAX_IDENTITY_BYTES).map_err(|_| {
                bad(
                    source_name,
                    "it does not decrypt (damaged after the header)",
                )
            })?;
        if plain.len() > MAX_IDENTITY_BYTES {
            return Err(bad(source_name, "the decrypted identity file is too large"));
        }
        Ok(Some(plain))
    })
}

/// An OpenSSH or PEM private key; an encrypted one is decrypted with a passphrase.
fn parse_ssh(text: &[u8], source_name: &str, ask: &dyn Ask) -> Result<Identities> {
    let unreadable = || bad(source_name, "not an SSH private key lockbox can read");
    let text = crate::vault::crypto::ssh_guard::private_key_for_age(text).ok_or_else(unreadable)?;
    let identity =
        age::ssh::Identity::from_buffer(Cursor::new(&text[..]), None).map_err(|_| unreadable())?;
    let identity = match identity {
        age::ssh::Identity::Unencrypted(_) => identity,
        age::ssh::Identity::Encrypted(key) => {
            check_bcrypt_rounds(&text, source_name)?;
            let key = with_passphrase(source_name, ask, |passphrase| {
                match key.decrypt(passphrase) {
                    Ok(key) => Ok(Some(key)),
                    Err(_) => Ok(None),
                }
            })?;
            age::ssh::Identity::Unencrypted(key)
        }
        age::ssh::Identity::Unsupported(_) => {
            return Err(bad(source_name, "this kind of SSH key is not supported"));
        }
    };
    Ok(Identities {
        native: vec![Box::new(identity)],
        plugins: Vec::new(),
    })
}

/// Refuses an encrypted OpenSSH key whose bcrypt-pbkdf rounds are over
/// [`MAX_BCRYPT_ROUNDS`] before any work is done (`PROTOCOL.key`: magic, cipher,
/// kdfname, kdfoptions = string salt + u32 rounds).
fn check_bcrypt_rounds(armored: &[u8], source_name: &str) -> Result<()> {
    fn string(input: &[u8]) -> Option<(&[u8], &[u8])> {
        let (len, rest) = input.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        (len <= rest.len()).then(|| rest.split_at(len))
    }
    let encoded: Zeroizing<Vec<u8>> = Zeroizing::new(
        armored
            .split(|&b| b == b'\n')
            .filter(|l| !l.starts_with(b"-----"))
            .flatten()
            .copied()
            .collect(),
    );
    let rounds = (|| {
        let blob = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(&encoded[..])
                .ok()?,
        );
        let rest = blob.strip_prefix(b"openssh-key-v1\0")?;
        let (_cipher, rest) = string(rest)?;
        let (kdf, rest) = string(rest)?;
        let (options, _) = string(rest)?;
        if kdf != b"bcrypt" {
            return Some(0);
        }
        let (_salt, rest) = string(options)?;
        Some(u32::from_be_bytes(*rest.first_chunk::<4>()?))
    })();
    match rounds {
        Some(r) if r <= MAX_BCRYPT_ROUNDS => Ok(()),
        Some(r) => Err(bad(
            source_name,
            &format!("its {r} bcrypt rounds are over lockbox's bound of {MAX_BCRYPT_ROUNDS}"),
        )),
        None => Err(bad(source_name, "not an SSH private key lockbox can read")),
    }
}

/// Wrapping a vault key for a plugin or tag recipient (the recipient is data in the
/// core, `vault::crypto::PluginRecipient`; running its plugin is this backend's).
pub trait WrapWithPlugin {
    /// Wraps the vault key into a new slot for this recipient. A plugin recipient
    /// runs its plugin (which may talk to the person through `callbacks`); a missing
    /// plugin is a clear error.
    fn wrap(&self, key: &VaultKey, callbacks: PluginCallbacks) -> Result<Vec<u8>>;
}

impl WrapWithPlugin for PluginRecipient {
    fn wrap(&self, key: &VaultKey, callbacks: PluginCallbacks) -> Result<Vec<u8>> {
        match self {
            PluginRecipient::Tag(r) => key.wrap_to(r),
            PluginRecipient::TagPq(r) => key.wrap_to(r.as_ref()),
            PluginRecipient::Plugin(r) => {
                let timeout = if callbacks.interactive {
                    PLUGIN_PERSON_TIMEOUT
                } else {
                    PLUGIN_GET_TIMEOUT
                };
                let wrapper = PluginWrap {
                    name: r.plugin(),
                    recipient: r.to_string(),
                    callbacks,
                    timeout,
                    failure: std::sync::Mutex::new(None),
                };
                key.wrap_to(&wrapper).map_err(|e| {
                    let failure = wrapper.failure.lock().ok().and_then(|mut f| f.take());
                    match failure {
                        Some(PluginFailure::Missing) => missing_plugin(r.plugin()),
                        Some(f) => Error::Encrypt(crate::messages::plugin_wrap_failed(
                            r.plugin(),
                            &plugin_reason(&f, timeout),
                        )),
                        None => match e {
                            Error::Encrypt(detail) => {
                                Error::Encrypt(crate::messages::plugin_wrap_failed(
                                    r.plugin(),
                                    &first_line(&detail),
                                ))
                            }
                            other => other,
                        },
                    }
                })
            }
        }
    }
}

/// Wrapping a vault key to any age recipient, running a plugin recipient's plugin
/// with terminal callbacks: slots are only made by commands for people (`init`,
/// `recipients add`, a rotation), never by a protocol action.
pub trait WrapToRecipient {
    /// The age ciphertext of the key for `recipient` (an age slot's `wrapped`).
    fn wrap_to_recipient(&self, recipient: &Recipient) -> Result<Vec<u8>>;
}

impl WrapToRecipient for VaultKey {
    fn wrap_to_recipient(&self, recipient: &Recipient) -> Result<Vec<u8>> {
        match recipient {
            Recipient::Plugin(r) => r.wrap(self, PluginCallbacks::terminal()),
            native => self.wrap_natively(native),
        }
    }
}

/// A plugin recipient as age's encryptor sees it: wrapping runs lockbox's own plugin
/// client ([`crate::identity::plugin_client::wrap`]); a failure is kept for the error message.
struct PluginWrap<'a> {
    name: &'a str,
    recipient: String,
    callbacks: PluginCallbacks,
    timeout: Duration,
    failure: std::sync::Mutex<Option<PluginFailure>>,
}

impl age::Recipient for PluginWrap<'_> {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> std::result::Result<(Vec<Stanza>, std::collections::HashSet<String>), age::EncryptError>
    {
        crate::identity::plugin_client::wrap(
            self.name,
            &self.recipient,
            file_key,
            &self.callbacks,
            self.timeout,
        )
        .map_err(|f| {
            let text = plugin_reason(&f, self.timeout);
            if let Ok(mut slot) = self.failure.lock() {
                *slot = Some(f);
            }
            age::EncryptError::Io(std::io::Error::other(text))
        })
    }
}

/// The one-line reason of a plugin run that failed (after `age-plugin-NAME: `).
fn plugin_reason(f: &PluginFailure, timeout: Duration) -> String {
    use crate::child::Failure;
    match f {
        PluginFailure::Missing => "the plugin is not in PATH".to_owned(),
        PluginFailure::Run(Failure::TimedOut { .. }) => {
            crate::messages::plugin_timed_out(timeout.as_secs())
        }
        PluginFailure::Run(run) => run.reason(),
        PluginFailure::Protocol(what) => crate::messages::plugin_protocol_error(what),
        PluginFailure::Reported(errors) => {
            crate::messages::plugin_failed(errors.first().map_or("", String::as_str))
        }
    }
}

/// The identity backend's [`Rewrap`]: an age slot for a plugin recipient is wrapped by
/// running its plugin with `callbacks`; every other slot is not this hook's.
#[derive(Debug, Clone, Default)]
pub struct PluginRewrap {
    /// How the plugin may talk to the person.
    pub callbacks: PluginCallbacks,
}

impl PluginRewrap {
    /// On a terminal (`init`, `recipients`, `passwd`).
    pub fn terminal() -> Self {
        PluginRewrap {
            callbacks: PluginCallbacks::terminal(),
        }
    }
}

impl Rewrap for PluginRewrap {
    fn rewrap(&self, slot: &Slot, key: &VaultKey) -> Result<Option<Slot>> {
        let Slot::Age {
            label, recipient, ..
        } = slot
        else {
            return Ok(None);
        };
        let Recipient::Plugin(r @ PluginRecipient::Plugin(_)) = Recipient::parse(recipient)? else {
            return Ok(None);
        };
        Ok(Some(Slot::Age {
            label: label.clone(),
            recipient: r.canonical(),
            wrapped: r.wrap(key, self.callbacks.clone())?,
        }))
    }
}

/// Opens `vault`'s key with `ids` ([`open_age_slots`] over its age slots: native
/// identities first, then each plugin once). `callbacks` is how a plugin may talk to
/// a person; `deadline` bounds each plugin run (`Some` where nobody can answer, e.g.
/// `get`; `None` is [`PLUGIN_PERSON_TIMEOUT`] of plugin time). The key that opened a slot is checked against the slots MAC.
pub fn open_vault(
    vault: &Vault,
    ids: &Identities,
    callbacks: &PluginCallbacks,
    deadline: Option<Duration>,
) -> Result<VaultKey> {
    let slots: Vec<AgeSlot<'_>> = vault
        .age_slots()
        .map(|(recipient, wrapped)| AgeSlot { recipient, wrapped })
        .collect();
    if slots.is_empty() {
        return Err(Error::NoAgeSlot);
    }
    match open_age_slots(&slots, ids, vault.public(), callbacks, deadline)? {
        Some(key) => vault.verify_opened(key),
        None => Err(Error::NoMatchingIdentity),
    }
}

/// Fails with the missing-plugin error unless `age-plugin-NAME` is found in `PATH`, as
/// age looks it up; runs nothing. Callers check before they ask or write anything.
pub fn require_plugin(name: &str) -> Result<()> {
    crate::identity::plugin_client::find(name)
        .map(drop)
        .ok_or_else(|| missing_plugin(name))
}

fn first_line(text: &str) -> String {
    crate::messages::sanitize(text.lines().find(|l| !l.trim().is_empty()).unwrap_or(""))
}

fn missing_plugin(name: &str) -> Error {
    Error::BadIdentity {
        source_name: format!("age-plugin-{name}"),
        reason: format!(
            "the plugin is not in PATH; install age-plugin-{name} (it is needed on every host that opens or rotates such a slot)"
        ),
    }
}

/// How a plugin may talk to the person. Implements age's callbacks: on a terminal
/// (`unlock`, `init`, `recipients add`) it shows the plugin's messages and asks for
/// what it requests (a PIN) on `/dev/tty`; otherwise (protocol actions) it answers
/// every request "no" and remembers that it did, so the error can say to run `unlock`.
#[derive(Clone, Debug, Default)]
pub struct PluginCallbacks {
    interactive: bool,
    refused: Arc<AtomicBool>,
}

impl PluginCallbacks {
    /// Callbacks that ask on the terminal.
    pub fn terminal() -> Self {
        PluginCallbacks {
            interactive: true,
            refused: Arc::default(),
        }
    }

    /// Callbacks that never ask (protocol actions).
    pub fn never() -> Self {
        PluginCallbacks::default()
    }

    /// Whether a request was refused because nobody can answer here.
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    fn refuse<T>(&self) -> Option<T> {
        self.refused.store(true, Ordering::Relaxed);
        None
    }
}

impl age::Callbacks for PluginCallbacks {
    fn display_message(&self, message: &str) {
        // A hint ("touch your key") is useful on stderr even in a protocol action.
        eprintln!("age plugin: {}", crate::messages::sanitize(message));
    }

    fn confirm(&self, message: &str, yes: &str, no: Option<&str>) -> Option<bool> {
        if !self.interactive {
            return self.refuse();
        }
        let question = format!(
            "{} [{}{}]: ",
            crate::messages::sanitize(message),
            crate::messages::sanitize(yes),
            no.map(|n| format!("/{}", crate::messages::sanitize(n)))
                .unwrap_or_default()
        );
        let answer = rpassword::prompt_password(question).ok()?;
        Some(answer.trim().eq_ignore_ascii_case(yes.trim()))
    }

    fn request_public_string(&self, description: &str) -> Option<String> {
        if !self.interactive {
            return self.refuse();
        }
        rpassword::prompt_password(format!("{}: ", crate::messages::sanitize(description))).ok()
    }

    fn request_passphrase(&self, description: &str) -> Option<SecretString> {
        if !self.interactive {
            return self.refuse();
        }
        rpassword::prompt_password(format!("{}: ", crate::messages::sanitize(description)))
            .ok()
            .map(SecretString::from)
    }
}

/// One age slot of a vault: its recipient text and the wrapped key.
#[derive(Debug, Clone, Copy)]
pub struct AgeSlot<'a> {
    /// The recipient, as stored.
    pub recipient: &'a str,
    /// The age-encrypted private key.
    pub wrapped: &'a [u8],
}

/// Opens the vault key from its age slots with `ids`: native identities first (cheap,
/// no process), then each plugin once, with the stanzas of every slot it could open.
/// `Ok(None)` means no identity opened any slot. `deadline` bounds each plugin run
/// (`Some` on `get`; `None` where a person may be typing a PIN:
/// [`PLUGIN_PERSON_TIMEOUT`], the clock stopped while the terminal prompt is open).
pub fn open_age_slots(
    slots: &[AgeSlot<'_>],
    ids: &Identities,
    vault_public: &age::x25519::Recipient,
    callbacks: &PluginCallbacks,
    deadline: Option<Duration>,
) -> Result<Option<VaultKey>> {
    if !ids.native.is_empty() {
        for slot in slots
            .iter()
            .filter(|s| slot_kind(s.recipient) == SlotKind::Native)
        {
            if let Some(key) =
                VaultKey::unwrap_with_identities(slot.wrapped, &ids.native, vault_public)?
            {
                return Ok(Some(key));
            }
        }
    }
    let mut names: Vec<&str> = ids.plugins.iter().map(|i| i.plugin()).collect();
    names.sort_unstable();
    names.dedup();
    let mut failure = None;
    for name in names {
        let candidates: Vec<&AgeSlot<'_>> = slots
            .iter()
            .filter(|s| match slot_kind(s.recipient) {
                SlotKind::Plugin(n) => n == name,
                SlotKind::Tag => true,
                SlotKind::Native => false,
            })
            .collect();
        if candidates.is_empty() {
            continue; // nothing this plugin could open: it is not run
        }
        match unwrap_with_plugin(name, &ids.plugins, &candidates, callbacks, deadline) {
            Ok(Some(file_key)) => {
                for slot in &candidates {
                    if let Some(key) = open_with_file_key(slot.wrapped, &file_key, vault_public)? {
                        return Ok(Some(key));
                    }
                }
            }
            Ok(None) => {}
            Err(e) => failure = Some(e),
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// The stanzas of one age file's header, without decrypting it.
fn stanzas_of(wrapped: &[u8]) -> Vec<Stanza> {
    /// Records the stanzas it is shown and opens nothing.
    struct Recorder(std::sync::Mutex<Vec<Stanza>>);
    impl age::Identity for Recorder {
        fn unwrap_stanza(
            &self,
            stanza: &Stanza,
        ) -> Option<std::result::Result<FileKey, age::DecryptError>> {
            if let Ok(mut seen) = self.0.lock() {
                seen.push(Stanza {
                    tag: stanza.tag.clone(),
                    args: stanza.args.clone(),
                    body: stanza.body.clone(),
                });
            }
            None
        }
    }
    let recorder = Recorder(std::sync::Mutex::new(Vec::new()));
    if let Ok(d) = age::Decryptor::new_buffered(wrapped) {
        let _ = d.decrypt(std::iter::once(&recorder as &dyn age::Identity));
    }
    recorder.0.into_inner().unwrap_or_default()
}

/// Runs plugin `name` once over the stanzas of all `slots`; the file key it found.
/// `deadline` bounds the run; `None` is a command for people: [`PLUGIN_PERSON_TIMEOUT`].
fn unwrap_with_plugin(
    name: &str,
    identities: &[age::plugin::Identity],
    slots: &[&AgeSlot<'_>],
    callbacks: &PluginCallbacks,
    deadline: Option<Duration>,
) -> Result<Option<FileKey>> {
    let timeout = deadline.unwrap_or(PLUGIN_PERSON_TIMEOUT);
    let ids: Vec<Zeroizing<String>> = identities
        .iter()
        .filter(|i| i.plugin() == name)
        .map(|i| Zeroizing::new(i.to_string()))
        .collect();
    let stanzas: Vec<Stanza> = slots.iter().flat_map(|s| stanzas_of(s.wrapped)).collect();
    match crate::identity::plugin_client::unwrap(name, &ids, &stanzas, callbacks, timeout) {
        Ok(key) => Ok(key),
        Err(PluginFailure::Missing) => Err(missing_plugin(name)),
        // Refused for want of a person: "does not apply" (`keysource::does_not_apply`),
        // so `get` falls through to the agent, as for a passphrase-protected identity.
        Err(_) if callbacks.refused() => Err(Error::PluginNeedsAnswer {
            plugin: name.to_owned(),
        }),
        Err(f) => Err(Error::BadIdentity {
            source_name: format!("age-plugin-{name}"),
            reason: plugin_reason(&f, timeout),
        }),
    }
}

/// Opens an age slot with a known file key; `None` if it is not that slot's key.
fn open_with_file_key(
    wrapped: &[u8],
    file_key: &FileKey,
    vault_public: &age::x25519::Recipient,
) -> Result<Option<VaultKey>> {
    struct Known<'a>(&'a FileKey);
    impl age::Identity for Known<'_> {
        fn unwrap_stanza(
            &self,
            _: &Stanza,
        ) -> Option<std::result::Result<FileKey, age::DecryptError>> {
            Some(Ok(FileKey::init_with_mut(|k| {
                k.copy_from_slice(self.0.expose_secret())
            })))
        }
    }
    let Ok(decryptor) = age::Decryptor::new_buffered(wrapped) else {
        return Ok(None);
    };
    let Ok(mut reader) = decryptor.decrypt(std::iter::once(&Known(file_key) as &dyn age::Identity))
    else {
        return Ok(None); // header MAC: another slot's key
    };
    let mut plain = Zeroizing::new(Vec::with_capacity(128));
    reader
        .read_to_end(&mut plain)
        .map_err(|_| Error::KeyMismatch)?;
    VaultKey::from_slot_plaintext(&plain, vault_public).map(Some)
}

/// Parses age identities (`AGE-SECRET-KEY-1…` lines) or one OpenSSH / PEM private key
/// (ssh-ed25519, ssh-rsa), never asking for a passphrase: [`parse`] with
/// [`NeverAsk`], so there is one parser. Plugin identities are refused here (this
/// returns only identities that open slots in-process). `source_name` names the source
/// in errors; no error ever contains key material.
pub fn parse_identities(
    text: &[u8],
    source_name: &str,
) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>> {
    let ids = parse(text, source_name, &NeverAsk)?;
    if !ids.plugins.is_empty() {
        return Err(Error::BadIdentity {
            source_name: source_name.to_owned(),
            reason: "age plugin identities (AGE-PLUGIN-…) need their plugin, which this parser never runs (the key sources open them: src/keysource.rs)"
                .into(),
        });
    }
    Ok(ids.native)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway key of the test plugin (tests/plugin), which is insecure anyway.
    const PLUGIN_ID: &str =
        "AGE-PLUGIN-LOCKBOXTEST-1Q8WA3759JDV38U7GJYHVUH8JKGE9DW8XLCZPQ9C46LHG8GWFE6GZ7HZ9SHT";
    const PLUGIN_RECIPIENT: &str =
        "age1lockboxtest1q8wa3759jdv38u7gjyhvuh8jkge9dw8xlczpq9c46lhg8gwfe6gz7lnqzd3";
    const TAG_RECIPIENT: &str =
        "age1tag1qt8lw0ual6avlwmwatk888yqnmdamm7xfd0wak53ut6elz5c4swx2yqdj4e";

    #[test]
    fn plain_age_and_plugin_lines_parse_without_running_anything() {
        let id = age::x25519::Identity::generate();
        let text = format!(
            "# created: now\r\n{}\r\n\n{PLUGIN_ID}\n",
            id.to_string().expose_secret()
        );
        let ids = parse(text.as_bytes(), "t", &NeverAsk).unwrap();
        assert_eq!(ids.native.len(), 1);
        assert_eq!(ids.plugins.len(), 1);
        assert_eq!(ids.plugins[0].plugin(), "lockboxtest");
    }

    #[test]
    fn garbage_line_names_the_line_not_the_text() {
        let e = parse(b"AGE-SECRET-KEY-1NOTAKEY\n", "t", &NeverAsk)
            .err()
            .unwrap();
        let msg = e.message();
        assert!(msg.contains("line 1"), "{msg}");
        assert!(!msg.contains("NOTAKEY"), "{msg}");
    }

    #[test]
    fn empty_is_refused() {
        assert!(parse(b"# nothing\n\n", "t", &NeverAsk).is_err());
    }

    #[test]
    fn slot_kinds() {
        let x = age::x25519::Identity::generate().to_public().to_string();
        assert_eq!(slot_kind(&x), SlotKind::Native);
        assert_eq!(slot_kind("ssh-ed25519 AAAA"), SlotKind::Native);
        assert_eq!(slot_kind(TAG_RECIPIENT), SlotKind::Tag);
        assert_eq!(
            slot_kind(PLUGIN_RECIPIENT),
            SlotKind::Plugin("lockboxtest".into())
        );
        assert!(PluginRecipient::parse(&x).is_none());
        assert!(PluginRecipient::parse("ssh-ed25519 AAAA").is_none());
        for r in [TAG_RECIPIENT, PLUGIN_RECIPIENT] {
            assert_eq!(
                PluginRecipient::parse(r).unwrap().ok().unwrap().canonical(),
                r
            );
        }
        assert!(PluginRecipient::parse("age1tag1qqqq").unwrap().is_err());
    }

    #[test]
    fn tag_recipients_wrap_natively_and_need_a_plugin_to_open() {
        let key = VaultKey::generate();
        let r = PluginRecipient::parse(TAG_RECIPIENT).unwrap().unwrap();
        let wrapped = r.wrap(&key, PluginCallbacks::never()).unwrap();
        // A native identity is not tried against it, and none opens it.
        let mut ids = Identities::default();
        ids.native.push(Box::new(age::x25519::Identity::generate()));
        let slots = [AgeSlot {
            recipient: TAG_RECIPIENT,
            wrapped: &wrapped,
        }];
        let opened = open_age_slots(&slots, &ids, &key.public(), &PluginCallbacks::never(), None);
        assert!(opened.unwrap().is_none());
    }

    #[test]
    fn a_plugin_slot_with_no_plugin_identity_runs_nothing() {
        // A plugin slot and only native identities: the slot is skipped, no lookup.
        let key = VaultKey::generate();
        let mut ids = Identities::default();
        ids.native.push(Box::new(age::x25519::Identity::generate()));
        let slots = [AgeSlot {
            recipient: PLUGIN_RECIPIENT,
            wrapped: b"not even age",
        }];
        let opened = open_age_slots(&slots, &ids, &key.public(), &PluginCallbacks::never(), None);
        assert!(opened.unwrap().is_none());
    }

    // From the former keys.rs: the in-process parser of key files.

    /// Regression: an unencrypted OpenSSH RSA private key whose modulus is a non-empty,
    /// all-zero mpint made age 0.12.1 panic (`LOCKBOX_IDENTITY_FILE` reads such keys).
    #[test]
    fn ssh_rsa_key_with_zero_mpint_is_refused_not_a_panic() {
        fn string(out: &mut Vec<u8>, bytes: &[u8]) {
            out.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
            out.extend_from_slice(bytes);
        }
        let mut private = vec![1, 2, 3, 4, 1, 2, 3, 4]; // two equal check integers
        string(&mut private, b"ssh-rsa");
        for mpint in [&[0u8][..], &[1, 0, 1], &[1], &[1], &[1], &[1]] {
            string(&mut private, mpint); // n = 00, then e, d, iqmp, p, q
        }
        string(&mut private, b"comment");
        let mut blob = b"openssh-key-v1\0".to_vec();
        for field in [&b"none"[..], b"none", b""] {
            string(&mut blob, field);
        }
        blob.extend_from_slice(&1u32.to_be_bytes());
        string(&mut blob, b"public key, not read");
        string(&mut blob, &private);
        let text = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&blob)
        );
        assert!(matches!(
            parse_identities(text.as_bytes(), "key"),
            Err(Error::BadIdentity { .. })
        ));
        // The same key with odd armor (no line break before the END line, as the
        // `identity_parse` fuzz target found): age would still read its integers.
        let odd = text.replace("\n-----END", "-----END");
        assert!(matches!(
            parse_identities(odd.as_bytes(), "key"),
            Err(Error::BadIdentity { .. })
        ));
    }

    #[test]
    fn openssh_keys_still_parse_after_re_armoring() {
        // A throwaway ssh-ed25519 key (ssh-keygen -t ed25519 -N ''), with CRLF line ends.
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\r
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\r
QyNTUxOQAAACDlMLs6Bsu2liLWoyGCI+opqAT0Q6oU8eGIz3eFuJpIuAAAAJjbUnA121Jw\r
NQAAAAtzc2gtZWQyNTUxOQAAACDlMLs6Bsu2liLWoyGCI+opqAT0Q6oU8eGIz3eFuJpIuA\r
AAAED7/VmqJz+i9uggqx5ZKgzw7DncMXqMmjpvNCp9qeqthOUwuzoGy7aWItajIYIj6imo\r
BPRDqhTx4YjPd4W4mki4AAAAEXRlc3RAbG9ja2JveC10ZXN0AQIDBA==\r
-----END OPENSSH PRIVATE KEY-----\r
";
        assert_eq!(parse_identities(key.as_bytes(), "key").unwrap().len(), 1);
    }
}
