//! The vault on disk: where it lives, the sidecar lock, bounded reads and atomic,
//! durable writes (`docs/FORMAT.md` "On disk").
//!
//! Writers hold an exclusive lock on `<vault>.lock` around the whole
//! read-modify-write; the vault itself is replaced by rename, so its inode cannot carry
//! the lock. Readers (`get`, `list`) take no lock: a rename is atomic, so they see the
//! old file or the new one.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::vault::Vault;

/// Largest vault file read, bytes. A hostile or runaway file is refused, not slurped.
pub const MAX_VAULT_BYTES: u64 = 64 << 20;
/// Longest wait for another writer's lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the vault and its lock live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultPath {
    /// The vault file.
    pub vault: PathBuf,
    /// The sidecar lock file.
    pub lock: PathBuf,
}

/// The environment variables that choose the vault, read once.
#[derive(Debug, Default, Clone)]
pub struct Location {
    /// `LOCKBOX_VAULT`
    pub vault: Option<PathBuf>,
    /// `DOCKER_CONFIG`
    pub docker_config: Option<PathBuf>,
    /// `HOME`
    pub home: Option<PathBuf>,
}

impl Location {
    /// Reads `LOCKBOX_VAULT`, `DOCKER_CONFIG` and `HOME`; empty values count as unset.
    pub fn from_env() -> Self {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Location {
            vault: var("LOCKBOX_VAULT"),
            docker_config: var("DOCKER_CONFIG"),
            home: var("HOME"),
        }
    }

    /// The Docker config directory: `$DOCKER_CONFIG`, else `~/.docker`.
    pub fn docker_config_dir(&self) -> Result<PathBuf> {
        match (&self.docker_config, &self.home) {
            (Some(d), _) => Ok(d.clone()),
            (None, Some(h)) => Ok(h.join(".docker")),
            (None, None) => Err(Error::NoHome),
        }
    }

    /// `LOCKBOX_VAULT`, else `lockbox/vault.json` in the Docker config directory.
    pub fn resolve(&self) -> Result<VaultPath> {
        let vault = match &self.vault {
            Some(v) => v.clone(),
            None => self.docker_config_dir()?.join("lockbox").join("vault.json"),
        };
        // A vault path that is a symlink (say, into a checked-out repository) is
        // followed: a write replaces the file it points at rather than the link, and
        // every spelling of one vault shares one lock file.
        let vault = match fs::symlink_metadata(&vault) {
            Ok(meta) if meta.file_type().is_symlink() => {
                fs::canonicalize(&vault).map_err(|e| Error::io("follow the symlink", &vault, e))?
            }
            _ => vault,
        };
        Ok(VaultPath::new(vault))
    }
}

impl VaultPath {
    /// The paths for a vault file.
    pub fn new(vault: PathBuf) -> Self {
        let mut lock = vault.clone().into_os_string();
        lock.push(".lock");
        VaultPath {
            vault,
            lock: PathBuf::from(lock),
        }
    }

    fn dir(&self) -> &Path {
        match self.vault.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// Reads and validates the vault; `None` if there is no file.
    pub fn read(&self) -> Result<Option<Vault>> {
        let file = match File::open(&self.vault) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &self.vault, e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_VAULT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("read", &self.vault, e))?;
        if bytes.len() as u64 > MAX_VAULT_BYTES {
            return Err(Error::corrupt(
                &self.vault,
                format!("larger than {MAX_VAULT_BYTES} bytes"),
            ));
        }
        Vault::parse(&bytes, &self.vault).map(Some)
    }

    /// Reads the vault, which must exist.
    pub fn read_existing(&self) -> Result<Vault> {
        self.read()?
            .ok_or_else(|| Error::NotInitialized(self.vault.clone()))
    }

    /// Creates the vault's directory (0700) if it is missing.
    pub fn create_dir(&self) -> Result<()> {
        let dir = self.dir();
        if dir.is_dir() {
            return Ok(());
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("create the directory", dir, e))
    }

    /// Takes the exclusive writer lock, waiting at most [`LOCK_TIMEOUT`].
    pub fn lock(&self) -> Result<LockGuard> {
        self.lock_with_timeout(LOCK_TIMEOUT)
    }

    /// [`Self::lock`] with another bound (tests).
    pub fn lock_with_timeout(&self, timeout: Duration) -> Result<LockGuard> {
        lock_file(&self.lock, timeout)
    }

    /// Replaces the vault atomically and durably: a new 0600 file created exclusively
    /// beside the old one, written, fsynced, renamed over the old one, and the directory
    /// fsynced. A crash at any point leaves the old vault or the new one. The caller
    /// holds the lock, which is why one fixed temporary name is enough.
    pub fn write(&self, lock: &LockGuard, vault: &Vault) -> Result<()> {
        let bytes = vault.to_bytes();
        // Never write a file this build would refuse to read: the bounds are checked on
        // read, so check the new bytes the same way before they replace the old ones.
        if bytes.len() as u64 > MAX_VAULT_BYTES {
            return Err(Error::LimitExceeded(format!(
                "the vault would be larger than {MAX_VAULT_BYTES} bytes"
            )));
        }
        if let Err(e) = Vault::parse(&bytes, &self.vault) {
            return Err(match e {
                Error::Corrupt { reason, .. } => Error::LimitExceeded(reason),
                other => other,
            });
        }
        self.write_bytes(lock, &bytes)
    }

    fn write_bytes(&self, _lock: &LockGuard, bytes: &[u8]) -> Result<()> {
        let mut tmp = self.vault.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let create = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
        };
        let mut file = match create() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Left by a writer that died; we hold the lock, so nobody else owns it.
                fs::remove_file(&tmp).map_err(|e| Error::io("remove the stale", &tmp, e))?;
                create()
            }
            other => other,
        }
        .map_err(|e| Error::io("create", &tmp, e))?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&tmp, &self.vault));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("write", &self.vault, e));
        }
        File::open(self.dir())
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("sync the directory of", &self.vault, e))
    }

    /// Locked read-modify-write of an existing vault. `change` returns whether it
    /// changed anything; nothing is written otherwise. A vault that does not parse and
    /// validate is never overwritten: the read fails first.
    pub fn update<T>(&self, change: impl FnOnce(&mut Vault) -> Result<(T, bool)>) -> Result<T> {
        // No vault yet (a first `docker login` before `init`): say "run init" rather
        // than fail on the lock file in a directory that does not exist, and create
        // nothing. A vault created meanwhile is found by the locked read below.
        if matches!(fs::symlink_metadata(&self.vault), Err(e) if e.kind() == io::ErrorKind::NotFound)
        {
            return Err(Error::NotInitialized(self.vault.clone()));
        }
        let guard = self.lock()?;
        let mut vault = self.read_existing()?;
        let (out, changed) = change(&mut vault)?;
        if changed {
            self.write(&guard, &vault)?;
        }
        Ok(out)
    }

    /// Creates a new vault file (or, with `force`, replaces one), under the lock.
    pub fn create(&self, vault: &Vault, force: bool) -> Result<()> {
        self.create_dir()?;
        let guard = self.lock()?;
        if !force && fs::symlink_metadata(&self.vault).is_ok() {
            return Err(Error::AlreadyExists(self.vault.clone()));
        }
        self.write(&guard, vault)
    }
}

/// Reads at most `limit + 1` bytes into memory that is wiped when dropped, growing by
/// copying into a fresh wiped buffer (never `Vec`'s own reallocation, which would
/// leave an unwiped copy behind) and starting small, so a short input touches few
/// pages: zeroize wipes a buffer's whole capacity, and a 1 MiB reservation cost every
/// `get` about 250 page faults. The caller compares the length with `limit`.
pub fn read_wiped(mut input: impl Read, limit: usize) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(4096.min(limit + 1)));
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() > limit {
                return Ok(buf);
            }
            let mut bigger =
                Zeroizing::new(Vec::with_capacity((buf.capacity() * 4).min(limit + 1)));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        let start = buf.len();
        let room = buf.capacity() - start;
        buf.resize(start + room, 0);
        let n = loop {
            match input.read(&mut buf[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        buf.truncate(start + n);
        if n == 0 {
            return Ok(buf);
        }
    }
}

/// Takes an exclusive lock on `path` (created 0600 if missing), waiting at most
/// `timeout` with a short backoff, then failing with a clear error.
pub fn lock_file(path: &Path, timeout: Duration) -> Result<LockGuard> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("open the lock file", path, e))?;
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(LockGuard { _file: file }),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => return Err(Error::io("lock", path, e)),
        }
        if start.elapsed() >= timeout {
            return Err(Error::LockTimeout {
                path: path.to_owned(),
                secs: timeout.as_secs(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

/// Holds the writer lock until dropped (closing the file releases it).
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reader that hands out at most `chunk` bytes a call, as pipes do.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest! {
        #[test]
        fn read_wiped_reads_everything_up_to_the_limit(len in 0usize..70_000, chunk in 1usize..9000) {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let limit = 50_000;
            let got = read_wiped(Trickle { data: &data, chunk }, limit).unwrap();
            if len <= limit {
                prop_assert_eq!(&got[..], &data[..]);
            } else {
                prop_assert!(got.len() > limit);
                prop_assert_eq!(&got[..], &data[..got.len()]);
            }
        }
    }
}
