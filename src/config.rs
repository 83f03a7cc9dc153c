//! Settings: the environment variables lockbox reads, read once at the edge.
//!
//! [`Settings::from_env`] is called once, in `cli::main`, for protocol actions and
//! commands for people alike; everything below takes the value it is handed and never
//! reads `std::env` for these variables (fd's "Opts → Config"). Tests build settings
//! with [`Settings::from_vars`] from a closure, so they never mutate the process
//! environment.
//!
//! Raw command-line options stay in the clap structs of `cli`; what a command needs of
//! them is passed as plain values (for keys: `keysource::KeyFlags`).
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::file::Location;
use crate::vault::crypto::KdfParams;

/// The warning window when `LOCKBOX_EXPIRY_WARN_DAYS` is not set: two weeks, so a
/// weekly job still sees a warning before the date.
pub const DEFAULT_EXPIRY_WARN_DAYS: u64 = 14;

/// Every setting that comes from the environment.
#[derive(Default)]
pub struct Settings {
    /// Where the vault and Docker's config are (`LOCKBOX_VAULT`, `DOCKER_CONFIG`, `HOME`).
    pub location: Location,
    /// The key sources named by the environment (`docs/KEYS.md`).
    pub keys: KeySettings,
    /// `LOCKBOX_ARGON2_PARAMS`, as given (parsed by [`Settings::kdf_override`] only
    /// where a passphrase slot is made, so a bad value never breaks `get`).
    pub argon2_params: Option<String>,
    /// `LOCKBOX_KUBELET_CACHE_DURATION`, as given (parsed by `kubelet-credential-provider`
    /// only).
    pub kubelet_cache_duration: Option<String>,
    /// `LOCKBOX_AGENT_SOCKET`: `exec`'s private agent, set for its command only.
    pub agent_socket: Option<PathBuf>,
    /// `LOCKBOX_EXPIRY_WARN_DAYS`, as given (read by [`Settings::expiry_warn_days`]).
    pub expiry_warn_days: Option<String>,
    /// `LOCKBOX_FORWARD_SOCKET`: inside a container, the host agent's forward socket;
    /// the protocol actions then ask it and read no vault and no key.
    pub forward_socket: Option<PathBuf>,
    /// What `doctor` looks at (`PATH`, `DOCKER_AUTH_CONFIG`); nothing else reads it.
    pub doctor: DoctorSettings,
    /// `SUDO_USER`: who ran `sudo` (for root's `get` without a vault, which then
    /// points to `docs/BUILD_SERVER.md` instead of `init`).
    pub sudo_user: Option<String>,
    /// `LOCKBOX_TRUSTED_VAULT_KEYS`, as given (read by [`Settings::trust`]).
    pub trusted_vault_keys: Option<String>,
    /// `XDG_CONFIG_HOME`: where the trust file is (else `HOME/.config`).
    pub config_home: Option<PathBuf>,
}

/// The environment as `doctor` checks it: where Docker will look for the helper, and
/// the variable that shadows every helper in Docker CLI 28.3+.
#[derive(Default)]
pub struct DoctorSettings {
    /// `PATH`.
    pub path: Option<OsString>,
    /// `DOCKER_AUTH_CONFIG` (it holds credentials: only its registry names are shown).
    pub docker_auth_config: Option<Zeroizing<String>>,
}

/// The key sources the environment names, in the order `docs/KEYS.md` gives.
#[derive(Default)]
pub struct KeySettings {
    /// `LOCKBOX_IDENTITY`: age identity text (or an unencrypted SSH private key),
    /// kept in wiped memory.
    pub identity: Option<Zeroizing<Vec<u8>>>,
    /// `LOCKBOX_IDENTITY_FILE`: a file of age identities or an SSH private key.
    pub identity_file: Option<PathBuf>,
    /// `LOCKBOX_PASSPHRASE_FILE`: a file holding the passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// `LOCKBOX_IDENTITY_CMD`: a command (run by `/bin/sh -c`) that prints an identity;
    /// run last, only when nothing cheaper opened the vault (`src/identity/command.rs`).
    pub identity_cmd: Option<OsString>,
    /// `CREDENTIALS_DIRECTORY`, set by systemd for a unit with `LoadCredential=` or
    /// `LoadCredentialEncrypted=`: its `lockbox-identity` file is a source.
    pub credentials_dir: Option<PathBuf>,
    /// The OpenBao variables ([`crate::openbao::ENV_VARS`]) that are set and not empty,
    /// read through [`KeySettings::openbao_var`].
    pub openbao_env: Vec<(&'static str, OsString)>,
    /// `HOME`, for `~/.vault-token` (commands for people only).
    pub home: Option<PathBuf>,
}

impl KeySettings {
    /// One OpenBao variable as read at start-up: the [`crate::openbao::Lookup`] that
    /// module's functions take.
    pub fn openbao_var(&self, name: &str) -> Option<OsString> {
        self.openbao_env
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    /// Whether `get` may use an OpenBao slot: the user opted in with
    /// `LOCKBOX_OPENBAO_TOKEN` or `LOCKBOX_OPENBAO_TOKEN_FILE` (an ambient
    /// `~/.vault-token` never turns a `get` into a network call).
    pub fn openbao_opted_in(&self) -> bool {
        self.openbao_env
            .iter()
            .any(|(n, _)| *n == "LOCKBOX_OPENBAO_TOKEN" || *n == "LOCKBOX_OPENBAO_TOKEN_FILE")
    }
}

/// The variable names, for help text, status and errors.
pub mod var {
    /// The vault file.
    pub const VAULT: &str = "LOCKBOX_VAULT";
    /// Identity text.
    pub const IDENTITY: &str = "LOCKBOX_IDENTITY";
    /// Identity file.
    pub const IDENTITY_FILE: &str = "LOCKBOX_IDENTITY_FILE";
    /// `LOCKBOX_OPENBAO_TOKEN`: an OpenBao token, in the variable itself.
    pub const OPENBAO_TOKEN: &str = "LOCKBOX_OPENBAO_TOKEN";
    /// age's debug switch: with `AGEDEBUG=plugin`, age-core copies every plugin
    /// message to stderr, the file key of a slot among them.
    pub const AGEDEBUG: &str = "AGEDEBUG";
    /// The variables removed from this process's environment once [`super::Settings`]
    /// has read it, so no child inherits them: the two whose value is a secret, and
    /// `AGEDEBUG`. age plugins are started by the `age` crate with the whole
    /// environment and no hook to trim it; every other child is trimmed as well.
    pub const FORGOTTEN: [&str; 3] = [IDENTITY, OPENBAO_TOKEN, AGEDEBUG];
    /// Passphrase file.
    pub const PASSPHRASE_FILE: &str = "LOCKBOX_PASSPHRASE_FILE";
    /// Identity command.
    pub const IDENTITY_CMD: &str = "LOCKBOX_IDENTITY_CMD";
    /// systemd's credentials directory (set for a unit with credentials).
    pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";
    /// The credential's name in it.
    pub const CREDENTIAL_NAME: &str = crate::child::IDENTITY_CREDENTIAL;
    /// Argon2id cost override.
    pub const ARGON2_PARAMS: &str = "LOCKBOX_ARGON2_PARAMS";
    /// kubelet-credential-provider's cacheDuration.
    pub const KUBELET_CACHE_DURATION: &str = "LOCKBOX_KUBELET_CACHE_DURATION";
    /// `exec`'s private agent socket.
    pub const AGENT_SOCKET: &str = "LOCKBOX_AGENT_SOCKET";
    /// How many days before an entry expires `get`, `doctor`, `check` and `rotate
    /// --due` start to act.
    pub const EXPIRY_WARN_DAYS: &str = "LOCKBOX_EXPIRY_WARN_DAYS";
    /// A forward socket of the host's agent, inside a container.
    pub const FORWARD_SOCKET: &str = "LOCKBOX_FORWARD_SOCKET";
    /// The vault public keys trusted to run sources, beside the trust file.
    pub const TRUSTED_VAULT_KEYS: &str = "LOCKBOX_TRUSTED_VAULT_KEYS";
}

impl Settings {
    /// Reads the process environment (the one place that does).
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// Builds settings from `lookup` (a variable name → its value); empty values count
    /// as unset, as a shell's `VAR= cmd` means "not set" to a person.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<OsString>) -> Self {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let path = |name: &str| get(name).map(PathBuf::from);
        Settings {
            location: Location {
                vault: path(var::VAULT),
                docker_config: path("DOCKER_CONFIG"),
                home: path("HOME"),
            },
            keys: KeySettings {
                // Bytes, not a String: age parses bytes, and a value that is not UTF-8
                // is reported by the identity parser, naming the variable.
                identity: get(var::IDENTITY).map(|v| Zeroizing::new(v.into_vec())),
                identity_file: path(var::IDENTITY_FILE),
                passphrase_file: path(var::PASSPHRASE_FILE),
                identity_cmd: get(var::IDENTITY_CMD),
                credentials_dir: path(var::CREDENTIALS_DIRECTORY),
                openbao_env: crate::openbao::ENV_VARS
                    .iter()
                    .filter_map(|&name| get(name).map(|v| (name, v)))
                    .collect(),
                home: path("HOME"),
            },
            argon2_params: get(var::ARGON2_PARAMS).map(|v| v.to_string_lossy().into_owned()),
            kubelet_cache_duration: get(var::KUBELET_CACHE_DURATION)
                .map(|v| v.to_string_lossy().into_owned()),
            agent_socket: path(var::AGENT_SOCKET),
            expiry_warn_days: get(var::EXPIRY_WARN_DAYS).map(|v| v.to_string_lossy().into_owned()),
            forward_socket: path(var::FORWARD_SOCKET),
            doctor: DoctorSettings {
                path: get("PATH"),
                docker_auth_config: get("DOCKER_AUTH_CONFIG")
                    .map(|v| Zeroizing::new(v.to_string_lossy().into_owned())),
            },
            sudo_user: get("SUDO_USER").map(|v| v.to_string_lossy().into_owned()),
            trusted_vault_keys: get(var::TRUSTED_VAULT_KEYS)
                .map(|v| v.to_string_lossy().into_owned()),
            config_home: path("XDG_CONFIG_HOME").filter(|p| p.is_absolute()),
        }
    }

    /// The vault keys trusted to run sources here (`src/sources/trust.rs`): the
    /// variable's, and the trust file's, `$XDG_CONFIG_HOME/lockbox/trusted-vault-keys`
    /// (else under `HOME/.config`).
    pub fn trust(&self) -> crate::sources::trust::Trust {
        let dir = self
            .config_home
            .clone()
            .or_else(|| self.location.home.as_ref().map(|h| h.join(".config")));
        crate::sources::trust::Trust::new(
            self.trusted_vault_keys.as_deref(),
            dir.map(|d| d.join("lockbox").join("trusted-vault-keys")),
        )
    }

    /// The warning window in days: `LOCKBOX_EXPIRY_WARN_DAYS` (0 to 3650), else
    /// [`DEFAULT_EXPIRY_WARN_DAYS`]. A value that does not parse gives the default and
    /// the text to say so (never an error: a typo must not break `get`).
    pub fn expiry_warn_days(&self) -> (u64, Option<String>) {
        match &self.expiry_warn_days {
            None => (DEFAULT_EXPIRY_WARN_DAYS, None),
            Some(text) => match text.trim().parse::<u64>() {
                Ok(n) if n <= 3650 => (n, None),
                _ => (
                    DEFAULT_EXPIRY_WARN_DAYS,
                    Some(crate::messages::bad_warn_days(text)),
                ),
            },
        }
    }

    /// The Argon2id cost `LOCKBOX_ARGON2_PARAMS` asks for (`m_cost_kib,t_cost,p_cost`),
    /// checked against the format's bounds; `None` when it is not set.
    pub fn kdf_override(&self) -> Result<Option<KdfParams>> {
        let Some(text) = &self.argon2_params else {
            return Ok(None);
        };
        let nums: Vec<u32> = text
            .split(',')
            .map(|n| n.trim().parse())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::BadArgon2Params)?;
        let [m_cost_kib, t_cost, p_cost] = nums[..] else {
            return Err(Error::BadArgon2Params);
        };
        let params = KdfParams {
            m_cost_kib,
            t_cost,
            p_cost,
        };
        params.check()?;
        Ok(Some(params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Settings {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_vars(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn empty_values_are_unset() {
        let s = vars(&[
            ("LOCKBOX_IDENTITY", ""),
            ("LOCKBOX_PASSPHRASE_FILE", "/p"),
            ("HOME", ""),
        ]);
        assert!(s.keys.identity.is_none());
        assert_eq!(s.keys.passphrase_file, Some(PathBuf::from("/p")));
        assert!(s.location.home.is_none());
    }

    #[test]
    fn expiry_warn_days() {
        assert_eq!(vars(&[]).expiry_warn_days(), (14, None));
        assert_eq!(
            vars(&[("LOCKBOX_EXPIRY_WARN_DAYS", " 30 ")]).expiry_warn_days(),
            (30, None)
        );
        assert_eq!(
            vars(&[("LOCKBOX_EXPIRY_WARN_DAYS", "0")]).expiry_warn_days(),
            (0, None)
        );
        for bad in ["2w", "-1", "3651", "x"] {
            let (days, warning) = vars(&[("LOCKBOX_EXPIRY_WARN_DAYS", bad)]).expiry_warn_days();
            assert_eq!(days, 14);
            assert!(warning.unwrap().contains(bad));
        }
    }

    #[test]
    fn argon2_override_is_parsed_only_when_asked() {
        assert!(vars(&[]).kdf_override().unwrap().is_none());
        let p = vars(&[("LOCKBOX_ARGON2_PARAMS", "64, 1,1")])
            .kdf_override()
            .unwrap()
            .unwrap();
        assert_eq!((p.m_cost_kib, p.t_cost, p.p_cost), (64, 1, 1));
        for bad in ["64,1", "a,b,c", "64,1,1,1", "-1,1,1"] {
            assert!(matches!(
                vars(&[("LOCKBOX_ARGON2_PARAMS", bad)]).kdf_override(),
                Err(Error::BadArgon2Params)
            ));
        }
    }
}
