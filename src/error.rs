//! The library's error type: the vault, crypto, file, key sources and the commands for
//! people. Each variant maps in exactly one place ([`Error::message`]) to the text a
//! person or a client sees — `Display` is that text, so the two cannot drift apart —
//! and in one place ([`Error::exit`]) to an exit code.
use std::io;
use std::path::PathBuf;

use crate::exit::Exit;
use crate::messages;

/// An error from the vault, its file, its crypto, a key source or a command.
///
/// `Display` prints [`Error::message`]; there are no `#[error]` attributes, so every
/// rendering lives in that one function.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No vault file exists where a write (or `status`) needs one.
    NotInitialized(PathBuf),
    /// `LOCKBOX_VAULT` names a file that does not exist (a typo must not look like
    /// "no credentials": Docker would pull anonymously).
    NamedVaultMissing(PathBuf),
    /// `init` found a vault and was not told to replace it.
    AlreadyExists(PathBuf),
    /// An operating-system call failed.
    Io {
        /// What was being done, as a verb phrase ("read", "create").
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The vault, its lock or its temporary file is something other than a regular
    /// file (a FIFO, a device, a directory, a symlink where none may be): refused
    /// before any read or write could block or be redirected.
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is instead ("a FIFO", "a symbolic link"…).
        kind: &'static str,
    },
    /// The vault file does not parse or does not validate.
    Corrupt {
        /// The vault file.
        path: PathBuf,
        /// What is wrong, without any secret.
        reason: String,
    },
    /// The vault file has a format version this build does not know.
    UnsupportedVersion {
        /// The vault file.
        path: PathBuf,
        /// The version found.
        version: u64,
    },
    /// Another process held the lock for longer than the bounded wait.
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        secs: u64,
    },
    /// Argon2id parameters read from a file are over the bounds.
    ExcessiveWork,
    /// No key source is available to open the vault.
    Locked,
    /// The passphrase opened no slot.
    WrongPassphrase,
    /// A passphrase was given but the vault has no passphrase slot.
    NoPassphraseSlot,
    /// Identities were given but none opens an age slot.
    NoMatchingIdentity,
    /// Identities were given but the vault has no age slot.
    NoAgeSlot,
    /// A slot opened, but the key inside is not this vault's key.
    KeyMismatch,
    /// The slots MAC does not match: slots were changed without the vault key.
    SlotsTampered,
    /// An entry's ciphertext does not open, or is bound to another entry.
    EntryTampered(String),
    /// An identity source (environment variable or file) is unusable.
    BadIdentity {
        /// Where the identity came from (`LOCKBOX_IDENTITY`, a path…).
        source_name: String,
        /// Why it cannot be used (never the key text).
        reason: String,
    },
    /// A passphrase file (`--passphrase-file`, `LOCKBOX_PASSPHRASE_FILE`,
    /// `--identity-passphrase-file`…) cannot be read or holds no passphrase.
    BadPassphraseFile {
        /// The file.
        path: PathBuf,
        /// Why (never the file's content).
        reason: String,
    },
    /// A recipient string does not parse (the text is not shown when it is a
    /// private key).
    BadRecipient(String),
    /// A line of a recipients file does not parse.
    BadRecipientLine {
        /// The recipients file.
        file: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// The line (not shown when it is a private key).
        text: String,
    },
    /// Neither HOME nor DOCKER_CONFIG nor LOCKBOX_VAULT is set.
    NoHome,
    /// The agent directory is not private to this user: refused, never fixed.
    AgentUnsafeDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The agent answered something unexpected, or the connection failed midway.
    AgentProtocol(String),
    /// The agent accepted the connection and said nothing before the deadline (it is
    /// stopped, frozen or hung).
    AgentNotAnswering {
        /// Its process id (the socket's peer), 0 when unknown.
        pid: u32,
        /// How long the client waited.
        secs: u64,
    },
    /// The agent could not be started.
    AgentStart(String),
    /// A forward failed (inside a container, or `forward` on the host).
    Forward(ForwardError),
    /// The agent serves this vault from its systemd credential, which did not open it.
    AgentCredential {
        /// Why (the agent's log has the details).
        reason: CredentialFailure,
    },
    /// A change would make the vault exceed a bound of the format; nothing was written.
    LimitExceeded(String),
    /// Docker's config.json cannot be used as it is.
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, and what to do (never a secret).
        reason: String,
    },
    /// Encryption failed (the age encryptor or the AEAD refused).
    Encrypt(String),
    /// `LOCKBOX_ARGON2_PARAMS` is not `m_cost_kib,t_cost,p_cost`.
    BadArgon2Params,
    /// A passphrase is needed to open the vault, and there is no terminal to ask.
    NoTerminal,
    /// A new passphrase is needed, and there is no terminal to ask.
    NoTerminalForNewPassphrase,
    /// The new passphrase is empty.
    EmptyPassphrase,
    /// The two typed passphrases differ.
    PassphraseMismatch,
    /// A new passphrase under the recommended length that the person did not confirm.
    WeakPassphraseDeclined,
    /// `passwd` on a vault without a passphrase slot, with no identity to open it.
    PasswdNeedsIdentity,
    /// A rotation must re-wrap the passphrase slot, and no passphrase was available.
    RotateNeedsPassphrase,
    /// An identity is protected by a passphrase and this caller never asks (protocol
    /// actions): an ambient source falls through to the agent (`src/identity/mod.rs`).
    IdentityNeedsPassphrase {
        /// Where the identity came from (a variable, a path).
        source_name: String,
    },
    /// A rotation would have to re-wrap an OpenBao slot (named by its label), which
    /// this build does not do.
    RotateOpenBao(String),
    /// A rotation would have to re-wrap a plugin slot whose plugin is not in `PATH`
    /// here; checked before anything is asked or written.
    RotatePlugin {
        /// The plugin's name (`age-plugin-NAME`).
        plugin: String,
        /// The slot's label.
        label: String,
    },
    /// An age plugin asked for an answer (a PIN, a confirmation) where nobody can give
    /// one (protocol actions): an ambient source falls through to the agent.
    PluginNeedsAnswer {
        /// The plugin's name (`age-plugin-NAME`).
        plugin: String,
    },
    /// An OpenBao source was asked, and the vault has no OpenBao slot.
    NoOpenBaoSlot,
    /// Talking to OpenBao failed (`src/openbao/mod.rs`); its text is one line. Boxed: it is
    /// larger than every other variant.
    OpenBao(Box<OpenBaoError>),
    /// A sealed source could not mint a registry credential (`src/sources/`): never
    /// not-found, so a failed mint never turns into an anonymous pull. Boxed like
    /// `OpenBao`.
    Mint(Box<MintError>),
    /// The change would leave the vault with no slot.
    LastSlot,
    /// A slot index that the vault does not have (a caller's bug, never a person's).
    NoSuchSlot(usize),
    /// `recipients remove` of a label or recipient no slot has.
    NoSuchRecipient(String),
    /// An imported entry did not read back as written.
    ImportVerifyFailed(String),
    /// Another credential helper could not be run (`import --from-helper`).
    HelperNotFound {
        /// `docker-credential-NAME`
        program: String,
        /// The action it was run for.
        action: &'static str,
    },
    /// Another credential helper failed or answered something unusable.
    HelperFailed {
        /// `docker-credential-NAME`
        program: String,
        /// The action asked of it (`list`, `get`).
        action: &'static str,
        /// What went wrong, already shortened and never holding credentials.
        detail: String,
    },
    /// No entry for the registry a command for people named (`expiry`, `rotate`).
    NoSuchEntry(String),
    /// An entry's rotation settings fail their MAC: written by someone without the
    /// vault key; nothing is sent anywhere.
    RotationTampered(String),
    /// `rotate` of an entry without rotation settings.
    NoRotation(String),
    /// A source's definition fails its MAC: planted or altered by someone without the
    /// vault key; its secret was not opened, nothing was sent and no command run.
    SourceTampered(String),
    /// A credential asked of (or a store or erase aimed at) a source entry, whose
    /// sealed secret is not a registry credential.
    SourceNotStatic(String),
    /// `source add` over a static entry of the same server URL.
    StaticEntryExists(String),
    /// `source remove` of a server URL with no source.
    NoSuchSource(String),
    /// A source's secret file (`source add --…-file`) cannot be read or holds no
    /// usable secret.
    BadSecretFile {
        /// The file as given (`-` for stdin).
        path: PathBuf,
        /// Why (never the file's content).
        reason: String,
    },
    /// A source in a vault whose public key is not trusted to run sources here.
    SourceUntrusted {
        /// The source's server URL.
        server: String,
        /// The vault's public key.
        public_key: String,
    },
    /// Trusting a vault key with neither `XDG_CONFIG_HOME` nor `HOME` set.
    NoTrustFile,
    /// A rotation provider failed (its text is one line, never a secret).
    Rotate(String),
    /// A command-line mistake the parser cannot see (exit 2).
    Usage(Usage),
}

/// Command-line mistakes found after parsing: the only errors that exit 2.
#[derive(Debug)]
#[non_exhaustive]
pub enum Usage {
    /// `init` without any slot.
    InitNeedsSlot,
    /// `unlock --timeout`/`--idle` (the flag, the text) that does not parse or is out
    /// of range.
    BadTimeout(&'static str, String),
    /// `import --from-helper` with an unusable name.
    BadHelperName(String),
    /// `recipients add` with nothing to add.
    NoRecipients,
    /// `export` options that do not go together, or a value they refuse (the text
    /// says which and what to do).
    Export(String),
    /// `init` with more `--label`s than `--recipient`s.
    TooManyLabels,
    /// `forward` options it refuses (the text says which and what to do).
    Forward(String),
    /// `--identity-passphrase-file` with no identity source (flag or variable).
    IdentityPassphraseWithoutIdentity,
    /// `expiry`, `check` or `rotate` options or values they refuse (the text says
    /// which and what to do).
    Expiry(String),
    /// `source add` options or values it refuses (the text says which and what to
    /// do).
    Source(String),
}

impl Usage {
    /// The one line shown for a refused invocation (exit 2).
    pub fn message(&self) -> String {
        match self {
            Usage::InitNeedsSlot => messages::INIT_NEEDS_SLOT.to_owned(),
            Usage::BadTimeout(flag, text) => messages::bad_timeout(flag, text),
            Usage::BadHelperName(name) => messages::bad_helper_name(name),
            Usage::NoRecipients => messages::NO_RECIPIENTS.to_owned(),
            Usage::Export(text)
            | Usage::Expiry(text)
            | Usage::Forward(text)
            | Usage::Source(text) => text.clone(),
            Usage::TooManyLabels => messages::TOO_MANY_LABELS.to_owned(),
            Usage::IdentityPassphraseWithoutIdentity => {
                messages::IDENTITY_PASSPHRASE_WITHOUT_IDENTITY.to_owned()
            }
        }
    }
}

/// How a forward failed (`docs/BUILD_SERVER.md` "Forwards").
#[derive(Debug)]
#[non_exhaustive]
pub enum ForwardError {
    /// Inside a container: no forward answers at the socket (revoked, past its TTL,
    /// ended by `lock`, or the host's agent stopped). Never not-found.
    Gone(PathBuf),
    /// Inside a container: the socket took the connection, but no answer came within
    /// the seconds given (the host's agent is busy or stopped). Never "gone".
    Silent(PathBuf, u64),
    /// Inside a container: the vault on the host is locked.
    HostLocked,
    /// Inside a container: the forward does not let this uid in.
    Refused(u32),
    /// Inside a container: the socket could not be opened (EACCES), with the uid
    /// this process has in here.
    Denied(PathBuf, u32),
    /// Inside a container: `store` through a forward, which is read-only.
    Store,
    /// The forward's vault on the host cannot be read, or is now another vault.
    VaultUnreadable,
    /// `forward revoke` of a name no forward has.
    NoSuch(String),
    /// `forward create` of a name already open.
    Exists(String),
    /// `forward create` the agent could not do (too many open, its socket): the line.
    NotOpened(String),
}

impl ForwardError {
    /// The one line shown (and, inside a container, printed as the protocol error).
    pub fn message(&self) -> String {
        match self {
            ForwardError::Gone(socket) => messages::forward_gone(&socket.display().to_string()),
            ForwardError::Silent(socket, secs) => {
                messages::forward_silent(&socket.display().to_string(), *secs)
            }
            ForwardError::HostLocked => messages::FORWARD_HOST_LOCKED.to_owned(),
            ForwardError::Refused(uid) => messages::forward_refused(*uid),
            ForwardError::Denied(socket, uid) => {
                messages::forward_denied(&socket.display().to_string(), *uid)
            }
            ForwardError::Store => messages::FORWARD_STORE.to_owned(),
            ForwardError::VaultUnreadable => messages::FORWARD_VAULT_UNREADABLE.to_owned(),
            ForwardError::NoSuch(name) => messages::no_such_forward(name),
            ForwardError::Exists(name) => messages::forward_exists(name),
            ForwardError::NotOpened(line) => line.clone(),
        }
    }
}

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Corrupt`].
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The one-line text shown to a person and, for protocol actions, printed on
    /// stdout. It says what to do next and never contains a secret. Control characters
    /// are replaced so a hostile path or URL cannot drive the terminal.
    pub fn message(&self) -> String {
        let text = match self {
            Error::NotInitialized(p) => messages::not_initialized(&p.display().to_string()),
            Error::NamedVaultMissing(p) => messages::named_vault_missing(&p.display().to_string()),
            Error::AlreadyExists(p) => messages::already_exists(&p.display().to_string()),
            Error::Io { what, path, source } => {
                messages::io(what, &path.display().to_string(), source)
            }
            Error::NotRegularFile { path, kind } => {
                messages::not_regular_file(&path.display().to_string(), kind)
            }
            Error::Corrupt { path, reason } => {
                messages::corrupt(&path.display().to_string(), reason)
            }
            Error::UnsupportedVersion { path, version } => {
                messages::unsupported_version(&path.display().to_string(), *version)
            }
            Error::LockTimeout { path, secs } => {
                messages::lock_timeout(&path.display().to_string(), *secs)
            }
            Error::ExcessiveWork => messages::EXCESSIVE_WORK.to_owned(),
            Error::Locked => messages::LOCKED.to_owned(),
            Error::WrongPassphrase => messages::WRONG_PASSPHRASE.to_owned(),
            Error::NoPassphraseSlot => messages::NO_PASSPHRASE_SLOT.to_owned(),
            Error::NoMatchingIdentity => messages::NO_MATCHING_IDENTITY.to_owned(),
            Error::NoAgeSlot => messages::NO_AGE_SLOT.to_owned(),
            Error::KeyMismatch => messages::KEY_MISMATCH.to_owned(),
            Error::SlotsTampered => messages::SLOTS_TAMPERED.to_owned(),
            Error::EntryTampered(server) => messages::entry_tampered(server),
            Error::BadIdentity {
                source_name,
                reason,
            } => messages::bad_identity(source_name, reason),
            Error::BadPassphraseFile { path, reason } => {
                messages::bad_passphrase_file(&path.display().to_string(), reason)
            }
            Error::BadRecipient(r) => messages::bad_recipient(r),
            Error::BadRecipientLine { file, line, text } => {
                messages::bad_recipient_line(&file.display().to_string(), *line, text)
            }
            Error::NoHome => messages::NO_HOME.to_owned(),
            Error::AgentUnsafeDir { path, reason } => {
                messages::agent_unsafe_dir(&path.display().to_string(), reason)
            }
            Error::AgentProtocol(detail) => messages::agent_protocol(detail),
            Error::AgentNotAnswering { pid, secs } => messages::agent_not_answering(*pid, *secs),
            Error::AgentStart(detail) => messages::agent_start(detail),
            Error::Forward(e) => e.message(),
            Error::AgentCredential { reason } => messages::agent_credential(reason.name()),
            Error::LimitExceeded(reason) => messages::limit_exceeded(reason),
            Error::Config { path, reason } => {
                messages::config_problem(&path.display().to_string(), reason)
            }
            Error::Encrypt(reason) => messages::encrypt_failed(reason),
            Error::BadArgon2Params => messages::BAD_ARGON2_PARAMS.to_owned(),
            Error::NoTerminal => messages::UNLOCK_NO_TERMINAL.to_owned(),
            Error::NoTerminalForNewPassphrase => messages::NO_TERMINAL.to_owned(),
            Error::EmptyPassphrase => messages::EMPTY_PASSPHRASE.to_owned(),
            Error::PassphraseMismatch => messages::PASSPHRASE_MISMATCH.to_owned(),
            Error::WeakPassphraseDeclined => messages::WEAK_PASSPHRASE_DECLINED.to_owned(),
            Error::PasswdNeedsIdentity => messages::PASSWD_NEEDS_IDENTITY.to_owned(),
            Error::RotateNeedsPassphrase => messages::ROTATE_NEEDS_PASSPHRASE.to_owned(),
            Error::IdentityNeedsPassphrase { source_name } => {
                messages::identity_needs_passphrase(source_name)
            }
            Error::LastSlot => messages::LAST_SLOT.to_owned(),
            Error::RotateOpenBao(label) => messages::rotate_openbao(label),
            Error::RotatePlugin { plugin, label } => messages::rotate_plugin(plugin, label),
            Error::PluginNeedsAnswer { plugin } => messages::plugin_needs_answer(plugin),
            Error::OpenBao(e) => e.to_string(),
            Error::Mint(e) => e.to_string(),
            Error::NoOpenBaoSlot => messages::NO_OPENBAO_SLOT.to_owned(),
            Error::NoSuchSlot(i) => messages::no_such_slot(*i),
            Error::NoSuchRecipient(which) => messages::no_such_recipient(which),
            Error::ImportVerifyFailed(server) => messages::import_verify_failed(server),
            Error::HelperNotFound { program, action } => {
                messages::helper_not_found(program, action)
            }
            Error::HelperFailed {
                program,
                action,
                detail,
            } => messages::helper_failed(program, action, detail),
            Error::NoSuchEntry(server) => messages::no_such_entry(server),
            Error::RotationTampered(server) => messages::rotation_tampered(server),
            Error::NoRotation(server) => messages::no_rotation(server),
            Error::SourceTampered(server) => messages::source_tampered(server),
            Error::SourceNotStatic(server) => messages::source_not_static(server),
            Error::StaticEntryExists(server) => messages::static_entry_exists(server),
            Error::NoSuchSource(server) => messages::no_such_source(server),
            Error::BadSecretFile { path, reason } => messages::bad_secret_file(path, reason),
            Error::SourceUntrusted { server, public_key } => {
                messages::source_untrusted(server, public_key)
            }
            Error::NoTrustFile => messages::NO_TRUST_FILE.to_owned(),
            Error::Rotate(detail) => detail.clone(),
            Error::Usage(u) => u.message(),
        };
        messages::sanitize(&text)
    }

    /// The exit code for commands for people (protocol actions always exit 1).
    pub fn exit(&self) -> Exit {
        match self {
            Error::Locked => Exit::Locked,
            Error::Usage(_) => Exit::Usage,
            _ => Exit::Failure,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<OpenBaoError> for Error {
    fn from(e: OpenBaoError) -> Self {
        Error::OpenBao(Box::new(e))
    }
}

impl From<Usage> for Error {
    fn from(u: Usage) -> Self {
        Error::Usage(u)
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<MintError> for Error {
    fn from(e: MintError) -> Self {
        Error::Mint(Box::new(e))
    }
}

/// Why a sealed source minted no credential: one line naming the source's kind and
/// registry, the endpoint asked (or the command run) and the HTTP status or error.
/// Never holds a secret: `detail` is built from statuses and sanitized, shortened
/// server text.
///
/// It travels as it is in the agent's `mint_failed` answer (`docs/AGENT.md`), so the
/// client rebuilds the same line the agent's mint gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{}", crate::messages::mint_failed(kind, registry, endpoint, detail))]
pub struct MintError {
    /// The source's kind (`aws-ecr`, `gcp`, `azure-acr`, `oauth2`, `exec`).
    pub kind: String,
    /// The registry the source answers for (the one asked).
    pub registry: String,
    /// The URL asked, or the command run (its program name).
    pub endpoint: String,
    /// What happened: an HTTP status and the server's error code, a timeout, a parse
    /// failure.
    pub detail: String,
}

/// What went wrong talking to OpenBao. Each text is one line that says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenBaoError {
    /// No address variable is set.
    #[error("{}", crate::messages::OPENBAO_NO_ADDRESS)]
    NoAddress,
    /// The address does not parse or is not allowed.
    #[error("{}", crate::messages::openbao_bad_address(var, reason))]
    BadAddress {
        /// The variable it came from.
        var: &'static str,
        /// Why.
        reason: String,
    },
    /// No token is available.
    #[error("{}", crate::messages::openbao_no_token(hint))]
    NoToken {
        /// Which sources were looked at.
        hint: &'static str,
    },
    /// A token source is unusable.
    #[error("{}", crate::messages::openbao_bad_token(source_name, reason))]
    BadToken {
        /// The variable or file.
        source_name: String,
        /// Why (never the token).
        reason: String,
    },
    /// A mount or key name is not allowed.
    #[error("{}", crate::messages::openbao_bad_name(what, name, reason))]
    BadName {
        /// "mount" or "key name".
        what: &'static str,
        /// The name (never secret).
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A host setting other than the address is unusable.
    #[error("{}", crate::messages::openbao_bad_setting(var, reason))]
    BadSetting {
        /// The variable.
        var: &'static str,
        /// Why.
        reason: String,
    },
    /// The CA file cannot be used.
    #[error("{}", crate::messages::openbao_ca_file(var, path, reason))]
    CaFile {
        /// The variable that named it (or "system").
        var: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The server could not be reached, or TLS failed.
    #[error("{}", crate::messages::openbao_connect(addr, detail))]
    Connect {
        /// The server.
        addr: String,
        /// What failed.
        detail: String,
    },
    /// The call took longer than the timeout.
    #[error("{}", crate::messages::openbao_timeout(addr, *secs))]
    Timeout {
        /// The server.
        addr: String,
        /// The limit.
        secs: u64,
    },
    /// The server answered with a redirect, which is never followed.
    #[error("{}", crate::messages::openbao_redirect(addr, location))]
    Redirect {
        /// The server.
        addr: String,
        /// Where it pointed (sanitized, shortened).
        location: String,
    },
    /// 401/403: the token is revoked, expired or lacks the policy.
    #[error(
        "{}",
        crate::messages::openbao_denied(addr, token_source, path, detail)
    )]
    Denied {
        /// The server.
        addr: String,
        /// Where the token came from (a variable or file name, never the token).
        token_source: String,
        /// The API path (mount/op/key).
        path: String,
        /// The server's words.
        detail: String,
    },
    /// 404: no such mount or route.
    #[error("{}", crate::messages::openbao_not_found(addr, path))]
    NotFound {
        /// The server.
        addr: String,
        /// The API path.
        path: String,
    },
    /// 503: sealed, standby or in maintenance.
    #[error("{}", crate::messages::openbao_unavailable(addr, detail))]
    Unavailable {
        /// The server.
        addr: String,
        /// The server's words.
        detail: String,
    },
    /// Any other non-success answer (400 for a ciphertext that does not open, a
    /// missing key, a bad request).
    #[error("{}", crate::messages::openbao_refused(addr, path, *status, detail))]
    Refused {
        /// The server.
        addr: String,
        /// The API path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The server's words.
        detail: String,
    },
    /// A success answer that is not what the transit API returns.
    #[error("{}", crate::messages::openbao_bad_response(addr, path, reason))]
    BadResponse {
        /// The server.
        addr: String,
        /// The API path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key was not created with `derived=true`: `context` would be ignored.
    #[error("{}", crate::messages::openbao_not_derived(mount, key))]
    NotDerived {
        /// The mount.
        mount: String,
        /// The key.
        key: String,
    },
    /// The key OpenBao returned is not the key of this vault.
    #[error("{}", crate::messages::openbao_key_mismatch(mount, key))]
    KeyMismatch {
        /// The mount.
        mount: String,
        /// The key.
        key: String,
    },
    /// A decrypt with a wrong context succeeded: the server ignores `context`.
    #[error("{}", crate::messages::openbao_context_ignored(mount, key))]
    ContextIgnored {
        /// The mount.
        mount: String,
        /// The key.
        key: String,
    },
}

/// Why a foreground agent could not open the vault it serves from its systemd credential
/// (`$CREDENTIALS_DIRECTORY/lockbox-identity`). Typed, never free text: the details
/// (a path, the parser's complaint) go to the agent's log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CredentialFailure {
    /// The credential file is gone (removed after the agent started).
    Missing,
    /// The credential file could not be read (permissions, too large).
    Unreadable,
    /// It is not an identity usable with nobody typing (not an age identity or an
    /// unencrypted SSH key; a passphrase-protected or plugin identity).
    BadIdentity,
    /// It is an identity, but it opens none of the vault's slots (its recipient was
    /// removed, or it was never added).
    NoMatchingSlot,
    /// A slot opened, but the slots MAC or the key inside did not verify.
    Tampered,
    /// The agent could not read or parse the vault file.
    VaultUnreadable,
    /// A reason this build does not know (from a newer agent): read as this, so a
    /// reason added later is a compatible addition (`docs/AGENT.md`, "Versions").
    #[serde(other)]
    Other,
}

impl CredentialFailure {
    /// Its name on the wire (`docs/AGENT.md`), which is also how `messages` is told
    /// which one it is: messages take plain values, no crate types.
    pub fn name(self) -> &'static str {
        match self {
            CredentialFailure::Missing => "missing",
            CredentialFailure::Unreadable => "unreadable",
            CredentialFailure::BadIdentity => "bad_identity",
            CredentialFailure::NoMatchingSlot => "no_matching_slot",
            CredentialFailure::Tampered => "tampered",
            CredentialFailure::VaultUnreadable => "vault_unreadable",
            CredentialFailure::Other => "other",
        }
    }
}
