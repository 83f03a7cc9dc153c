//! The slots of a vault, one place per kind: each kind's fields, its checks (for the
//! parser and for writers), its description, the format version it needs and how it is
//! written. What a slot kind *does* (running a plugin, a transit call) lives in its
//! backend (`src/identity/`, `src/openbao/`), which imports this, never the reverse.
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;

use age::secrecy::SecretString;

use super::crypto::{self, KdfParams, PassphraseWrap, Recipient, VaultKey};
use super::format::{
    FORMAT_VERSION, OPENBAO_FORMAT_VERSION, PLUGIN_FORMAT_VERSION, bounds, fits_b64,
};
use super::parse::{RawSlot, b64};
use crate::error::{Error, OpenBaoError, Result};
use crate::sanitize::{sanitize, shorten};

/// A way to open the vault's private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Argon2id + XChaCha20-Poly1305 under a passphrase.
    Passphrase(PassphraseWrap),
    /// The private key age-encrypted to one recipient.
    Age {
        /// A person-chosen name (an SSH key's comment by default).
        label: String,
        /// The recipient, `age1…` or `ssh-… AAAA…`.
        recipient: String,
        /// The age ciphertext of the private key.
        wrapped: Vec<u8>,
    },
    /// The private key wrapped by an OpenBao (or Vault) transit key. Only the mount, the
    /// key name and the ciphertext: the server address and the token come from the host
    /// (`src/openbao/mod.rs`), never from the file.
    OpenBao {
        /// A person-chosen name (`MOUNT/KEY` by default).
        label: String,
        /// The transit mount path, e.g. `transit`.
        mount: String,
        /// The transit key name (a `derived=true` key).
        key: String,
        /// The transit ciphertext, `vault:vN:…`, bound to the vault's public key.
        ciphertext: String,
    },
}

impl Slot {
    /// A short description for `status` and `init`, never secret.
    pub fn describe(&self) -> String {
        match self {
            Slot::Passphrase(w) => format!(
                "passphrase (argon2id m={} MiB t={} p={})",
                w.params.m_cost_kib / 1024,
                w.params.t_cost,
                w.params.p_cost
            ),
            Slot::Age {
                label, recipient, ..
            } => match slot_kind(recipient) {
                SlotKind::Plugin(name) => format!("age plugin {name} \"{label}\""),
                SlotKind::Tag => format!("age tag \"{label}\""),
                SlotKind::Native => {
                    let kind = recipient.split_whitespace().next().unwrap_or("age");
                    let kind = if kind.starts_with("age1") {
                        "x25519"
                    } else {
                        kind
                    };
                    format!("age {kind} \"{label}\"")
                }
            },
            Slot::OpenBao {
                label, mount, key, ..
            } => format!("openbao transit {mount}/{key} \"{label}\""),
        }
    }
}

/// The one hook through which a slot kind's backend wraps a vault key into a slot: a
/// plugin recipient's plugin run (`src/identity/`), a transit `encrypt` for an OpenBao
/// slot (`src/openbao/`). The key pipeline builds it (`keysource::rotation`); the core
/// asks it first for every slot it makes or re-wraps, and wraps passphrase slots and
/// natively wrapped age slots itself.
pub trait Rewrap {
    /// `slot` made again for `key`: the same kind, label and target, a new wrapped key.
    /// `Ok(None)`: this slot is not the hook's to wrap.
    fn rewrap(&self, slot: &Slot, key: &VaultKey) -> Result<Option<Slot>>;
}

/// A hook that wraps nothing: only what the core wraps itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBackend;

impl Rewrap for NoBackend {
    fn rewrap(&self, _: &Slot, _: &VaultKey) -> Result<Option<Slot>> {
        Ok(None)
    }
}

impl Slot {
    /// The format version this slot needs (`docs/FORMAT.md` "Versions"): 2 for an
    /// OpenBao slot or an age slot for a plugin or tag recipient, else 1.
    pub fn min_version(&self) -> u64 {
        match self {
            Slot::OpenBao { .. } => OPENBAO_FORMAT_VERSION,
            Slot::Age { recipient, .. } if slot_kind(recipient) != SlotKind::Native => {
                PLUGIN_FORMAT_VERSION
            }
            _ => FORMAT_VERSION,
        }
    }

    /// Its fields in the slots MAC transcript (`docs/FORMAT.md` "Slots MAC"), in order.
    pub(super) fn transcript(&self, field: &mut dyn FnMut(&[u8])) {
        match self {
            Slot::Passphrase(w) => {
                field(b"passphrase");
                field(KDF_ARGON2ID.as_bytes());
                for n in [w.params.m_cost_kib, w.params.t_cost, w.params.p_cost] {
                    field(n.to_string().as_bytes());
                }
                field(&w.salt);
                field(&w.nonce);
                field(&w.wrapped);
            }
            Slot::Age {
                label,
                recipient,
                wrapped,
            } => {
                field(b"age");
                field(label.as_bytes());
                field(recipient.as_bytes());
                field(wrapped);
            }
            Slot::OpenBao {
                label,
                mount,
                key,
                ciphertext,
            } => {
                field(b"openbao");
                field(label.as_bytes());
                field(mount.as_bytes());
                field(key.as_bytes());
                field(ciphertext.as_bytes());
            }
        }
    }

    /// Whether this is the passphrase slot (`passwd` replaces it).
    pub fn is_passphrase(&self) -> bool {
        matches!(self, Slot::Passphrase(_))
    }

    /// Whether `which` names this slot for `recipients remove`: its label, or for an
    /// age slot its recipient as given or in `canonical` form.
    pub fn is_named(&self, which: &str, canonical: Option<&str>) -> bool {
        match self {
            Slot::Age {
                label, recipient, ..
            } => label == which || Some(recipient.as_str()) == canonical || recipient == which,
            Slot::OpenBao { label, .. } => label == which,
            Slot::Passphrase(_) => false,
        }
    }

    /// Whether `other` opens through the same thing as this slot (one slot per
    /// recipient, one per transit mount and key): adding it again changes nothing.
    pub fn same_target(&self, other: &Slot) -> bool {
        match (self, other) {
            (Slot::Age { recipient: a, .. }, Slot::Age { recipient: b, .. }) => a == b,
            (
                Slot::OpenBao {
                    mount: m1, key: k1, ..
                },
                Slot::OpenBao {
                    mount: m2, key: k2, ..
                },
            ) => m1 == m2 && k1 == k2,
            _ => false,
        }
    }

    /// The slot as `status --json` shows it (never secret).
    pub fn status_json(&self) -> serde_json::Value {
        match self {
            Slot::Passphrase(w) => serde_json::json!({
                "type": "passphrase", "kdf": "argon2id",
                "m_cost_kib": w.params.m_cost_kib, "t_cost": w.params.t_cost, "p_cost": w.params.p_cost,
            }),
            other => other.list_json(),
        }
    }

    /// The slot as `recipients list --json` shows it (never secret).
    pub fn list_json(&self) -> serde_json::Value {
        match self {
            Slot::Passphrase(_) => serde_json::json!({"type": "passphrase"}),
            Slot::Age {
                label, recipient, ..
            } => serde_json::json!({"type": "age", "label": label, "recipient": recipient}),
            Slot::OpenBao {
                label, mount, key, ..
            } => serde_json::json!({"type": "openbao", "label": label, "mount": mount, "key": key}),
        }
    }

    /// The slot as one line of `recipients list`, each field sanitized on its own (the
    /// tab between them is no escape).
    pub fn list_line(&self) -> String {
        match self {
            Slot::Passphrase(_) => "passphrase".to_owned(),
            Slot::Age {
                label, recipient, ..
            } => format!("{}\t{}", sanitize(label), sanitize(recipient)),
            Slot::OpenBao {
                label, mount, key, ..
            } => format!(
                "{}\topenbao transit {}/{}",
                sanitize(label),
                sanitize(mount),
                sanitize(key)
            ),
        }
    }
}

/// The format version a file states must be one its slots allow (a version-1 reader
/// refuses these slots, so a version-1 file holding one was not written by lockbox).
pub(super) fn check_versions(slots: &[Slot], version: u64) -> std::result::Result<(), String> {
    if version < OPENBAO_FORMAT_VERSION && slots.iter().any(|s| matches!(s, Slot::OpenBao { .. })) {
        return Err(format!(
            "an OpenBao slot in a version-{version} file (it needs version {OPENBAO_FORMAT_VERSION})"
        ));
    }
    if version < PLUGIN_FORMAT_VERSION
        && let Some(i) = slots
            .iter()
            .position(|s| matches!(s, Slot::Age { .. }) && s.min_version() > version)
    {
        return Err(format!(
            "slot {i}: a plugin or tag recipient in a version-{version} file (it needs version {PLUGIN_FORMAT_VERSION})"
        ));
    }
    Ok(())
}

impl Slot {
    /// This slot made again for `new` by the core, in a rotation, once its backend
    /// passed ([`Rewrap`]): a passphrase slot with `passphrase` (proved against the
    /// vault's `old_public` key first, its cost kept), an age slot wrapped natively.
    /// An OpenBao slot needs a transit call: without one the rotation is refused
    /// ([`Error::RotateOpenBao`]) rather than drop the slot.
    pub fn rewrap_in_core(
        &self,
        new: &VaultKey,
        old_public: &age::x25519::Recipient,
        passphrase: Option<&SecretString>,
    ) -> Result<Slot> {
        Ok(match self {
            Slot::Passphrase(w) => {
                let p = passphrase.ok_or(Error::RotateNeedsPassphrase)?;
                // Proves the passphrase is the slot's before re-wrapping with it.
                VaultKey::unwrap_with_passphrase(w, p, old_public)?;
                Slot::Passphrase(new.wrap_with_passphrase(p, w.params)?)
            }
            Slot::Age {
                label, recipient, ..
            } => {
                let recipient = Recipient::parse(recipient)?;
                Slot::Age {
                    label: label.clone(),
                    recipient: recipient.canonical(),
                    wrapped: new.wrap_natively(&recipient)?,
                }
            }
            Slot::OpenBao { label, .. } => return Err(Error::RotateOpenBao(label.clone())),
        })
    }
}

/// Format version 1's slot objects, as written (`docs/FORMAT.md`); the parser reads
/// them through [`slot_from_raw`].
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(super) enum SlotV1 {
    Passphrase {
        kdf: &'static str,
        m_cost_kib: u32,
        t_cost: u32,
        p_cost: u32,
        salt: String,
        nonce: String,
        wrapped: String,
    },
    Age {
        label: String,
        recipient: String,
        wrapped: String,
    },
    /// Version 2 only.
    Openbao {
        label: String,
        mount: String,
        key: String,
        ciphertext: String,
    },
}

pub(super) const KDF_ARGON2ID: &str = "argon2id";

impl From<&Slot> for SlotV1 {
    fn from(slot: &Slot) -> Self {
        match slot {
            Slot::Passphrase(w) => SlotV1::Passphrase {
                kdf: KDF_ARGON2ID,
                m_cost_kib: w.params.m_cost_kib,
                t_cost: w.params.t_cost,
                p_cost: w.params.p_cost,
                salt: B64.encode(&w.salt),
                nonce: B64.encode(w.nonce),
                wrapped: B64.encode(&w.wrapped),
            },
            Slot::Age {
                label,
                recipient,
                wrapped,
            } => SlotV1::Age {
                label: label.clone(),
                recipient: recipient.clone(),
                wrapped: B64.encode(wrapped),
            },
            Slot::OpenBao {
                label,
                mount,
                key,
                ciphertext,
            } => SlotV1::Openbao {
                label: label.clone(),
                mount: mount.clone(),
                key: key.clone(),
                ciphertext: ciphertext.clone(),
            },
        }
    }
}

/// Turns one slot as read into a typed slot: one arm per `type`. A new kind of slot (an
/// age plugin recipient, an OpenBao transit key) is one more arm here, one more variant
/// of [`Slot`] and `SlotV1`, its transcript in `slots_transcript`, its checks in
/// [`check_slot`] — and a format version of its own (FORMAT.md "Versions").
pub(super) fn slot_from_raw(mut raw: RawSlot<'_>, bad: &dyn Fn(String) -> Error) -> Result<Slot> {
    let i = raw.index;
    let kind = raw.text("type").map_err(bad)?;
    let slot = match kind.as_ref() {
        "passphrase" => {
            let kdf = raw.text("kdf").map_err(bad)?;
            let params = KdfParams {
                m_cost_kib: raw.u32("m_cost_kib").map_err(bad)?,
                t_cost: raw.u32("t_cost").map_err(bad)?,
                p_cost: raw.u32("p_cost").map_err(bad)?,
            };
            let (salt, nonce, wrapped) = (
                raw.text("salt").map_err(bad)?,
                raw.text("nonce").map_err(bad)?,
                raw.text("wrapped").map_err(bad)?,
            );
            raw.finish().map_err(bad)?;
            if kdf != KDF_ARGON2ID {
                return Err(bad(format!("slot {i}: unknown kdf")));
            }
            params.check()?;
            let salt = b64(bad, "salt", &salt, *crypto::kdf_bounds::SALT_LEN.end())?;
            let nonce: [u8; crypto::NONCE_LEN] = b64(bad, "nonce", &nonce, crypto::NONCE_LEN)?
                .try_into()
                .map_err(|_| bad(format!("slot {i}: nonce length")))?;
            let wrapped = b64(bad, "wrapped", &wrapped, bounds::MAX_PASSPHRASE_WRAPPED)?;
            Slot::Passphrase(PassphraseWrap {
                params,
                salt,
                nonce,
                wrapped,
            })
        }
        "age" => {
            let (label, recipient, wrapped) = (
                raw.text("label").map_err(bad)?,
                raw.text("recipient").map_err(bad)?,
                raw.text("wrapped").map_err(bad)?,
            );
            raw.finish().map_err(bad)?;
            Slot::Age {
                label: label.into_owned(),
                recipient: recipient.into_owned(),
                wrapped: b64(bad, "wrapped", &wrapped, bounds::MAX_AGE_WRAPPED)?,
            }
        }
        "openbao" => {
            let (label, mount, key, ciphertext) = (
                raw.text("label").map_err(bad)?,
                raw.text("mount").map_err(bad)?,
                raw.text("key").map_err(bad)?,
                raw.text("ciphertext").map_err(bad)?,
            );
            raw.finish().map_err(bad)?;
            Slot::OpenBao {
                label: label.into_owned(),
                mount: mount.into_owned(),
                key: key.into_owned(),
                ciphertext: ciphertext.into_owned(),
            }
        }
        _ => return Err(bad(format!("slot {i}: unknown type"))),
    };
    check_slot(i, &slot, bad)?;
    Ok(slot)
}

/// The bounds on the set of slots, for the parser and for writers.
pub(super) fn check_slot_set(slots: &[Slot]) -> std::result::Result<(), String> {
    if slots.is_empty() {
        return Err("the vault has no slots".into());
    }
    if slots.len() > bounds::MAX_SLOTS {
        return Err(format!("more than {} slots", bounds::MAX_SLOTS));
    }
    // `passwd` manages "the" passphrase; several would each cost a full Argon2id run
    // on every passphrase attempt before the slots MAC could be checked.
    let passphrases = slots
        .iter()
        .filter(|s| matches!(s, Slot::Passphrase(_)))
        .count();
    if passphrases > bounds::MAX_PASSPHRASE_SLOTS {
        return Err("more than one passphrase slot".into());
    }
    Ok(())
}

/// The bounds on one slot, for the parser (after decoding) and for writers.
pub(super) fn check_slot(i: usize, slot: &Slot, bad: &dyn Fn(String) -> Error) -> Result<()> {
    match slot {
        Slot::Passphrase(w) => {
            w.params.check()?;
            if !crypto::kdf_bounds::SALT_LEN.contains(&w.salt.len()) {
                return Err(bad(format!("slot {i}: salt length")));
            }
            if !fits_b64(w.wrapped.len(), bounds::MAX_PASSPHRASE_WRAPPED) {
                return Err(bad("wrapped is too long".into()));
            }
            if w.wrapped.len() < 16 {
                return Err(bad(format!("slot {i}: wrapped key too short")));
            }
        }
        Slot::Age {
            label,
            recipient,
            wrapped,
        } => {
            if label.len() > bounds::MAX_LABEL || recipient.len() > bounds::MAX_RECIPIENT {
                return Err(bad(format!("slot {i}: label or recipient too long")));
            }
            Recipient::parse(recipient)
                .map_err(|_| bad(format!("slot {i}: recipient does not parse")))?;
            if !fits_b64(wrapped.len(), bounds::MAX_AGE_WRAPPED) {
                return Err(bad("wrapped is too long".into()));
            }
        }
        Slot::OpenBao {
            label,
            mount,
            key,
            ciphertext,
        } => {
            if label.len() > bounds::MAX_LABEL {
                return Err(bad(format!("slot {i}: label too long")));
            }
            // The names go into a request path: the same checks as `recipients add`.
            validate_mount(mount)
                .map_err(|_| bad(format!("slot {i}: mount is not a valid OpenBao mount")))?;
            validate_key_name(key)
                .map_err(|_| bad(format!("slot {i}: key is not a valid transit key name")))?;
            if !validate_ciphertext(ciphertext) {
                return Err(bad(format!(
                    "slot {i}: ciphertext is not a transit ciphertext"
                )));
            }
        }
    }
    Ok(())
}

/// Longest key name, bytes.
pub const MAX_KEY_NAME: usize = 128;
/// Longest mount path, bytes.
pub const MAX_MOUNT: usize = 128;
/// Largest ciphertext accepted from a server or a vault file, bytes.
pub const MAX_CIPHERTEXT: usize = 4 * 1024;

/// Which identities may open a slot, read from the slot's recipient text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotKind {
    /// X25519 or SSH: native identities only.
    Native,
    /// A plugin recipient: only identities of that plugin.
    Plugin(String),
    /// A tag recipient: a plugin identity of any plugin may hold its key.
    Tag,
}

/// The kind of a slot's recipient text (cheap: a prefix and, for plugins, the name).
pub fn slot_kind(recipient: &str) -> SlotKind {
    // Trimmed as `crypto::Recipient::parse` trims: a padded plugin recipient in a file
    // must not pass for a native one (and slip into a version-1 file).
    let recipient = recipient.trim();
    if recipient.starts_with("age1tag1") || recipient.starts_with("age1tagpq1") {
        SlotKind::Tag
    } else if recipient.starts_with("age1")
        && let Ok(r) = age::plugin::Recipient::from_str(recipient)
    {
        SlotKind::Plugin(r.plugin().to_owned())
    } else {
        SlotKind::Native
    }
}

// ---------------------------------------------------------------------------------
// OpenBao slot names: they go into a request path, so the rules sit beside the slot

/// First mount-path segments that are the server's own APIs, never a transit mount: a
/// planted slot must not aim the host's token at `sys/…` or `auth/…`.
const RESERVED_MOUNTS: &[&str] = &["sys", "auth", "identity", "cubbyhole"];

/// Checks a transit mount path: one or more `/`-separated segments of ASCII letters,
/// digits, `.`, `_`, `-` (not `.` or `..`), at most [`MAX_MOUNT`] bytes, not one of the
/// server's own APIs. These are what the path of the request is built from, so nothing
/// else may pass: no `%`, `?`, `#`, spaces or traversal.
pub fn validate_mount(mount: &str) -> std::result::Result<(), OpenBaoError> {
    let bad = |reason| OpenBaoError::BadName {
        what: "mount",
        name: sanitize(&shorten(mount)),
        reason,
    };
    if mount.is_empty() || mount.len() > MAX_MOUNT {
        return Err(bad("must be 1 to 128 bytes"));
    }
    for segment in mount.split('/') {
        check_segment(segment).map_err(bad)?;
    }
    let first = mount.split('/').next().unwrap_or_default();
    if RESERVED_MOUNTS.contains(&first.to_ascii_lowercase().as_str()) {
        return Err(bad("is one of the server's own APIs, not a transit mount"));
    }
    Ok(())
}

/// Checks a transit key name: one segment as in [`validate_mount`], at most
/// [`MAX_KEY_NAME`] bytes.
pub fn validate_key_name(key: &str) -> std::result::Result<(), OpenBaoError> {
    let bad = |reason| OpenBaoError::BadName {
        what: "key name",
        name: sanitize(&shorten(key)),
        reason,
    };
    if key.is_empty() || key.len() > MAX_KEY_NAME {
        return Err(bad("must be 1 to 128 bytes"));
    }
    check_segment(key).map_err(bad)
}

/// Checks one path segment: ASCII letters, digits, `.`, `_`, `-`; neither empty nor `.` or `..`
/// (also the rule for a namespace's segments, `src/openbao/`).
pub fn check_segment(segment: &str) -> std::result::Result<(), &'static str> {
    if segment.is_empty() {
        return Err("has an empty path segment (a leading, trailing or double '/')");
    }
    if segment == "." || segment == ".." {
        return Err("may not contain '.' or '..' segments");
    }
    if !segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may hold only ASCII letters, digits, '.', '_', '-' (and '/' in a mount)");
    }
    Ok(())
}

/// Checks a transit ciphertext as stored in a slot: `PREFIX:vN:BASE64` (OpenBao and
/// Vault write `vault:v1:…`), at most [`MAX_CIPHERTEXT`] bytes.
pub fn validate_ciphertext(text: &str) -> bool {
    if text.is_empty() || text.len() > MAX_CIPHERTEXT {
        return false;
    }
    let mut parts = text.splitn(3, ':');
    let (Some(prefix), Some(version), Some(body)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let version_ok = version
        .strip_prefix('v')
        .is_some_and(|n| !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit()));
    !prefix.is_empty()
        && prefix.len() <= 16
        && prefix.bytes().all(|b| b.is_ascii_lowercase())
        && version_ok
        && !body.is_empty()
        && B64.decode(body).is_ok()
}
