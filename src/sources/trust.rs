//! Which vaults may run sources on this machine: their public keys, pinned outside the
//! vault file (`docs/SOURCES.md` "Trusted vault keys").
//!
//! A source's MAC proves the definition was made with the vault's key — but a vault
//! opened by an age identity can be forged whole by anyone who can write the file (new
//! slots wrapping their own key to your public recipients, `docs/THREAT_MODEL.md`
//! section E), and then its sources verify under the forger's key. A static entry of
//! such a vault answers a planted password; a source would run a command as you or
//! send requests where the forger says. So a source is used only in a vault whose
//! public key is trusted here:
//!
//! - listed in `LOCKBOX_TRUSTED_VAULT_KEYS` (CI, fleet hosts: set where the key's
//!   holder configures the job, not beside the vault file), or
//! - listed in the trust file, `$XDG_CONFIG_HOME/lockbox/trusted-vault-keys` (else
//!   `~/.config/…`), which `init`, `source add`, a key rotation of a trusted vault and
//!   `source trust` write. A trust file that someone else could write (not owned by
//!   this user, or writable by group or others) is not read.
use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::secret_io;

/// Largest trust file read, bytes.
const MAX_FILE: usize = 64 * 1024;

/// The trusted vault keys: the variable's, and the trust file's (read when asked).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    listed: BTreeSet<String>,
    file: Option<PathBuf>,
}

impl Trust {
    /// The keys of `listed` (separated by white space or commas) and those of `file`.
    pub fn new(listed: Option<&str>, file: Option<PathBuf>) -> Trust {
        let listed = listed
            .unwrap_or_default()
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect();
        Trust { listed, file }
    }

    /// The trust file, if there is a place for one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Whether the vault with `public_key` may run sources here.
    pub fn allows(&self, public_key: &str) -> bool {
        self.listed.contains(public_key)
            || self
                .file
                .as_deref()
                .is_some_and(|f| read_keys(f).contains(public_key))
    }

    /// Fails with [`Error::SourceUntrusted`] unless [`Self::allows`] `public_key`.
    pub fn check(&self, server: &str, public_key: &str) -> Result<()> {
        if self.allows(public_key) {
            Ok(())
        } else {
            Err(Error::SourceUntrusted {
                server: server.to_owned(),
                public_key: public_key.to_owned(),
            })
        }
    }

    /// Adds `public_key` to the trust file (created 0600 in a 0700 directory); returns
    /// whether it was new.
    pub fn record(&self, public_key: &str) -> Result<bool> {
        let Some(file) = &self.file else {
            return Err(Error::NoTrustFile);
        };
        if read_keys(file).contains(public_key) {
            return Ok(false);
        }
        if let Some(dir) = file.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io("create the directory", dir, e))?;
        }
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(file)
            .map_err(|e| Error::io("open the trust file", file, e))?;
        writeln!(f, "{public_key}").map_err(|e| Error::io("write the trust file", file, e))?;
        Ok(true)
    }
}

/// The keys a trust file lists (one per line, `#` comments); none when it is missing,
/// unreadable, or someone else could have written it.
fn read_keys(file: &Path) -> BTreeSet<String> {
    let Ok(input) = secret_io::open(file, secret_io::Accept::RegularFileNoLink) else {
        return BTreeSet::new();
    };
    let mine = input
        .metadata()
        .is_ok_and(|m| m.uid() == rustix::process::geteuid().as_raw() && m.mode() & 0o022 == 0);
    if !mine {
        return BTreeSet::new();
    }
    let Ok(bytes) = secret_io::read_wiped(input, MAX_FILE) else {
        return BTreeSet::new();
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn keys_come_from_the_variable_or_a_file_only_this_user_can_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lockbox/trusted-vault-keys");
        let trust = Trust::new(Some(" age1aaa,age1bbb "), Some(file.clone()));
        assert!(trust.allows("age1aaa") && trust.allows("age1bbb"));
        assert!(!trust.allows("age1ccc"));
        assert!(matches!(
            trust.check("r", "age1ccc"),
            Err(Error::SourceUntrusted { .. })
        ));
        assert!(trust.record("age1ccc").unwrap());
        assert!(!trust.record("age1ccc").unwrap());
        assert!(trust.allows("age1ccc"));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&file), mode(file.parent().unwrap())), (0o600, 0o700));
        // Writable by the group: not read at all.
        fs::set_permissions(&file, fs::Permissions::from_mode(0o620)).unwrap();
        assert!(!trust.allows("age1ccc"));
        // Comments and blank lines.
        fs::write(&file, "# mine\n\nage1ddd  # the CI vault\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(trust.allows("age1ddd"));
        assert!(!Trust::new(None, None).allows("age1ddd"));
    }
}
