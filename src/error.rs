//! The library's error type: everything below the front ends (vault, crypto, file,
//! keys). Each variant maps in exactly one place ([`Error::message`]) to the text a
//! person or a client sees, and in one place ([`Error::exit_code`]) to an exit code.
use std::io;
use std::path::PathBuf;

use crate::{exit, messages};

/// An error from the vault, its file, its crypto or a key source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No vault file exists where a write (or `status`) needs one.
    #[error("no vault at {}", .0.display())]
    NotInitialized(PathBuf),
    /// `init` found a vault and was not told to replace it.
    #[error("a vault exists at {}", .0.display())]
    AlreadyExists(PathBuf),
    /// An operating-system call failed.
    #[error("{what} {}: {source}", path.display())]
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
    #[error("{} is {kind}", path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is instead ("a FIFO", "a symbolic link"…).
        kind: &'static str,
    },
    /// The vault file does not parse or does not validate.
    #[error("vault {} is damaged: {reason}", path.display())]
    Corrupt {
        /// The vault file.
        path: PathBuf,
        /// What is wrong, without any secret.
        reason: String,
    },
    /// The vault file has a format version this build does not know.
    #[error("unsupported vault version {version}")]
    UnsupportedVersion {
        /// The vault file.
        path: PathBuf,
        /// The version found.
        version: u64,
    },
    /// Another process held the lock for longer than the bounded wait.
    #[error("lock wait timed out")]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        secs: u64,
    },
    /// Argon2id parameters read from a file are over the bounds.
    #[error("excessive KDF work")]
    ExcessiveWork,
    /// No key source is available to open the vault.
    #[error("locked")]
    Locked,
    /// The passphrase opened no slot.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// A passphrase was given but the vault has no passphrase slot.
    #[error("no passphrase slot")]
    NoPassphraseSlot,
    /// Identities were given but none opens an age slot.
    #[error("no matching identity")]
    NoMatchingIdentity,
    /// Identities were given but the vault has no age slot.
    #[error("no age slot")]
    NoAgeSlot,
    /// A slot opened, but the key inside is not this vault's key.
    #[error("slot key does not match the vault public key")]
    KeyMismatch,
    /// The slots MAC does not match: slots were changed without the vault key.
    #[error("slots tampered")]
    SlotsTampered,
    /// An entry's ciphertext does not open, or is bound to another entry.
    #[error("entry for {0} does not open")]
    EntryTampered(String),
    /// An identity source (environment variable or file) is unusable.
    #[error("bad identity in {source_name}: {reason}")]
    BadIdentity {
        /// Where the identity came from (`LOCKBOX_IDENTITY`, a path…).
        source_name: String,
        /// Why it cannot be used (never the key text).
        reason: String,
    },
    /// A recipient string does not parse (the text is not shown when it is a
    /// private key).
    #[error("bad recipient")]
    BadRecipient(String),
    /// A line of a recipients file does not parse.
    #[error("bad recipient on line {line} of {}", file.display())]
    BadRecipientLine {
        /// The recipients file.
        file: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// The line (not shown when it is a private key).
        text: String,
    },
    /// Neither HOME nor DOCKER_CONFIG nor LOCKBOX_VAULT is set.
    #[error("no home directory")]
    NoHome,
    /// The agent directory is not private to this user: refused, never fixed.
    #[error("unsafe agent directory {}: {reason}", path.display())]
    AgentUnsafeDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The agent answered something unexpected, or the connection failed midway.
    #[error("agent protocol: {0}")]
    AgentProtocol(String),
    /// The agent could not be started.
    #[error("agent start: {0}")]
    AgentStart(String),
    /// A change would make the vault exceed a bound of the format; nothing was written.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// Docker's config.json cannot be used as it is.
    #[error("config {}: {reason}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, and what to do (never a secret).
        reason: String,
    },
    /// The command line (or a setting standing in for it) is not usable.
    #[error("usage: {0}")]
    Usage(String),
    /// Encryption failed (the age encryptor or the AEAD refused).
    #[error("encryption failed: {0}")]
    Encrypt(String),
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
            Error::BadRecipient(r) => messages::bad_recipient(r),
            Error::BadRecipientLine { file, line, text } => {
                messages::bad_recipient_line(&file.display().to_string(), *line, text)
            }
            Error::NoHome => messages::NO_HOME.to_owned(),
            Error::AgentUnsafeDir { path, reason } => {
                messages::agent_unsafe_dir(&path.display().to_string(), reason)
            }
            Error::AgentProtocol(detail) => messages::agent_protocol(detail),
            Error::AgentStart(detail) => messages::agent_start(detail),
            Error::Usage(text) => text.clone(),
            Error::LimitExceeded(reason) => messages::limit_exceeded(reason),
            Error::Config { path, reason } => {
                messages::config_problem(&path.display().to_string(), reason)
            }
            Error::Encrypt(reason) => format!("encryption failed: {reason}"),
        };
        messages::sanitize(&text)
    }

    /// The exit code for commands for people (protocol actions always exit 1).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Locked => exit::LOCKED,
            Error::Usage(_) => exit::USAGE,
            _ => exit::FAILURE,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
