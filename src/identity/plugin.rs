//! Age plugins and the slots they open: one run per plugin over every slot it could
//! open ([`open_age_slots`]), wrapping a vault key for a plugin recipient
//! ([`WrapWithPlugin`], [`WrapToRecipient`], the [`PluginRewrap`] hook), how a plugin
//! may talk to a person ([`PluginCallbacks`]), and opening a vault's age slots
//! ([`open_vault`]). Parsing identity text is `src/identity/mod.rs`, which hands its
//! result over as [`Identities`].
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use age_core::format::{FileKey, Stanza};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::identity::plugin_client::PluginFailure;
use crate::vault::crypto::{PluginRecipient, Recipient, VaultKey};
use crate::vault::slot::{SlotKind, slot_kind};
use crate::vault::{Rewrap, Slot, Vault};

/// How long a plugin may take on `get` (a protocol action, where nobody can answer a
/// prompt) before lockbox gives up on it.
pub const PLUGIN_GET_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a plugin may take in a command for people (`unlock`, `exec`, `export`,
/// `passwd`, `init`, `recipients`), not counting the time a person spends answering
/// what it asked on the terminal (a PIN): the clock stops while lockbox's prompt is
/// open.
pub const PLUGIN_PERSON_TIMEOUT: Duration = Duration::from_secs(60);

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
        // Refused for want of a person: "not mine" (`keysource::Refusal::NotMine`),
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
