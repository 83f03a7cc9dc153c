//! The vault on disk: where it lives, the sidecar lock, bounded reads and atomic,
//! durable writes (`docs/FORMAT.md` "On disk").
//!
//! Writers hold an exclusive lock on `<vault>.lock` around the whole
//! read-modify-write; the vault itself is replaced by rename, so its inode cannot carry
//! the lock. Readers (`get`, `list`) take no lock: a rename is atomic, so they see the
//! old file or the new one.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::secret_io::{self, ensure_regular};
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

/// The settings that choose the vault (read from the environment once, by
/// `config::Settings`).
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
        match self.read_bytes()? {
            None => Ok(None),
            Some(bytes) => Vault::parse(&bytes, &self.vault).map(Some),
        }
    }

    /// The vault file's bytes, at most [`MAX_VAULT_BYTES`]; `None` if there is no file.
    pub fn read_bytes(&self) -> Result<Option<Vec<u8>>> {
        // The one open for inputs (O_NONBLOCK, then fstat): opening a FIFO planted at
        // the vault path would otherwise wait for a writer forever (and Docker with
        // it); anything but a regular file is refused before a single read.
        let file = match secret_io::open(&self.vault, secret_io::Accept::RegularFile) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(match secret_io::refused_kind(&e) {
                    Some(kind) => Error::NotRegularFile {
                        path: self.vault.clone(),
                        kind,
                    },
                    None => Error::io("read", &self.vault, e),
                });
            }
        };
        // Sized from the file's length (one byte more to see the end): `take` hides
        // the length from `read_to_end`, which then grew the buffer from nothing in
        // 14–20 reads and copies.
        let hint = file.len_hint().min(MAX_VAULT_BYTES) as usize;
        let mut bytes = Vec::with_capacity(hint + 1);
        file.take(MAX_VAULT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("read", &self.vault, e))?;
        if bytes.len() as u64 > MAX_VAULT_BYTES {
            return Err(Error::corrupt(
                &self.vault,
                format!("larger than {MAX_VAULT_BYTES} bytes"),
            ));
        }
        Ok(Some(bytes))
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

    /// Replaces the vault atomically and durably (`docs/FORMAT.md` "Writing"): the new
    /// bytes go into an anonymous `O_TMPFILE` in the vault's directory (a 0600 file
    /// created exclusively beside the old one where the file system has no
    /// `O_TMPFILE`), which is fsynced, linked as `<vault>.tmp`, renamed over the old
    /// vault, and the directory fsynced. A crash at any point leaves the old vault or
    /// the new one; a killed writer leaves a `<vault>.tmp` only in the instant between
    /// link and rename (or, on the fallback, at any point after its creation). The
    /// caller holds the lock, which is why one fixed temporary name is enough.
    pub fn write(&self, lock: &LockGuard, vault: &Vault) -> Result<()> {
        self.write_then(lock, vault, &mut || {})
    }

    /// [`Self::write`], calling `before_rename` once the new file is complete and
    /// durable but before it replaces the old one (still under the lock). A rotation
    /// hands the new key to the agent there, so no reader ever finds a vault whose
    /// key the agent lacks. It may be called twice when the anonymous temporary file
    /// cannot be linked and the write falls back to a named one.
    pub fn write_then(
        &self,
        lock: &LockGuard,
        vault: &Vault,
        before_rename: &mut dyn FnMut(),
    ) -> Result<()> {
        // Never write a file this build would refuse to read: every bound is checked on
        // the vault in memory (no second parse), the size here.
        let bytes = vault.to_file_bytes()?;
        if bytes.len() as u64 > MAX_VAULT_BYTES {
            return Err(Error::LimitExceeded(format!(
                "the vault would be larger than {MAX_VAULT_BYTES} bytes"
            )));
        }
        self.write_bytes(lock, &bytes, before_rename)
    }

    fn tmp_path(&self) -> PathBuf {
        let mut tmp = self.vault.clone().into_os_string();
        tmp.push(".tmp");
        PathBuf::from(tmp)
    }

    fn write_bytes(
        &self,
        _lock: &LockGuard,
        bytes: &[u8],
        before_rename: &mut dyn FnMut(),
    ) -> Result<()> {
        // Past `ulimit -f`, the write must fail with EFBIG, not kill us mid-file.
        catch_file_size_signal();
        let tmp = self.tmp_path();
        let mode = temp_mode();
        let done = mode != TempMode::Named
            && self.write_anonymous(&tmp, bytes, before_rename, mode == TempMode::Anonymous)?;
        if !done {
            self.write_named(&tmp, bytes, before_rename)?;
        }
        File::open(self.dir())
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("sync the directory of", &self.vault, e))
    }

    /// The `O_TMPFILE` path: `Ok(false)` when this file system or kernel cannot do it
    /// (nothing was left behind), so the caller falls back to a named file — unless
    /// `strict` (a debug-build test switch), which makes that an error instead.
    fn write_anonymous(
        &self,
        tmp: &Path,
        bytes: &[u8],
        before_rename: &mut dyn FnMut(),
        strict: bool,
    ) -> Result<bool> {
        use rustix::fs::{AtFlags, CWD, Mode, OFlags};
        use rustix::io::Errno;
        let dir = self.dir();
        let unsupported = |what: &'static str, e: Errno| {
            if strict {
                Err(Error::io(what, dir, e.into()))
            } else {
                Ok(false)
            }
        };
        // Not O_EXCL: that would forbid ever linking the file into place.
        let fd = match rustix::fs::open(
            dir,
            OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        ) {
            Ok(fd) => fd,
            // No O_TMPFILE here: EISDIR from kernels that predate it (the flag
            // contains O_DIRECTORY), EOPNOTSUPP from file systems without it.
            Err(e @ (Errno::ISDIR | Errno::OPNOTSUPP | Errno::INVAL)) => {
                return unsupported("create an anonymous temporary file in", e);
            }
            Err(e) => return Err(Error::io("create a temporary file in", dir, e.into())),
        };
        let mut file = File::from(fd);
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("write", &self.vault, e))?;
        before_rename();
        debug_pause("LOCKBOX_DEBUG_PAUSE_BEFORE_RENAME");
        // linkat through /proc with AT_SYMLINK_FOLLOW, not AT_EMPTY_PATH: the latter
        // needs CAP_DAC_READ_SEARCH, which an ordinary user lacks.
        let fd_path = format!("/proc/self/fd/{}", file.as_raw_fd());
        let link = || rustix::fs::linkat(CWD, &fd_path, CWD, tmp, AtFlags::SYMLINK_FOLLOW);
        let linked = match link() {
            // Left by a writer that died between link and rename (or on the named
            // path); we hold the lock, so nobody else owns it.
            Err(Errno::EXIST) => {
                fs::remove_file(tmp).map_err(|e| Error::io("remove the stale", tmp, e))?;
                link()
            }
            other => other,
        };
        match linked {
            Ok(()) => {}
            // No /proc mounted, or a kernel that refuses the link: nothing was
            // linked, so nothing is left behind.
            Err(e @ (Errno::NOENT | Errno::PERM | Errno::ACCESS | Errno::XDEV)) => {
                return unsupported("link the temporary file into", e);
            }
            Err(e) => return Err(Error::io("link the temporary file into", dir, e.into())),
        }
        if let Err(e) = fs::rename(tmp, &self.vault) {
            let _ = fs::remove_file(tmp);
            return Err(Error::io("write", &self.vault, e));
        }
        debug_pause("LOCKBOX_DEBUG_PAUSE_AFTER_RENAME");
        Ok(true)
    }

    /// The fallback: a named 0600 file created with `O_EXCL`.
    fn write_named(&self, tmp: &Path, bytes: &[u8], before_rename: &mut dyn FnMut()) -> Result<()> {
        let create = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(nonblock().bits() as i32)
                .open(tmp)
        };
        let mut file = match create() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Left by a writer that died; we hold the lock, so nobody else owns it.
                // (O_EXCL never opens what is there, FIFO or symlink: it is unlinked.)
                fs::remove_file(tmp).map_err(|e| Error::io("remove the stale", tmp, e))?;
                create()
            }
            other => other,
        }
        .map_err(|e| Error::io("create", tmp, e))?;
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        let written = written.and_then(|()| {
            before_rename();
            debug_pause("LOCKBOX_DEBUG_PAUSE_BEFORE_RENAME");
            fs::rename(tmp, &self.vault)
        });
        if let Err(e) = written {
            let _ = fs::remove_file(tmp);
            return Err(Error::io("write", &self.vault, e));
        }
        debug_pause("LOCKBOX_DEBUG_PAUSE_AFTER_RENAME");
        Ok(())
    }

    /// Locked read-modify-write of an existing vault. `change` returns whether it
    /// changed anything; nothing is written otherwise. A vault that does not parse and
    /// validate is never overwritten: the read fails first.
    pub fn update<T>(&self, change: impl FnOnce(&mut Vault) -> Result<(T, bool)>) -> Result<T> {
        self.update_with(change, |_| {})
    }

    /// [`Self::update`], calling `before_rename` with the change's result once the new
    /// vault is complete and durable, still under the lock, before it replaces the old
    /// one (see [`Self::write_then`]; it may run twice). Not called when nothing
    /// changed.
    pub fn update_with<T>(
        &self,
        change: impl FnOnce(&mut Vault) -> Result<(T, bool)>,
        mut before_rename: impl FnMut(&T),
    ) -> Result<T> {
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
            self.write_then(&guard, &vault, &mut || before_rename(&out))?;
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

/// Makes a write past `RLIMIT_FSIZE` fail with `EFBIG` instead of killing the process
/// (`SIGXFSZ` is caught for good; children still start with its default). The binary
/// calls it first thing; every vault write calls it too.
pub fn catch_file_size_signal() {
    crate::sys::catch_file_size_signal();
}

/// Takes an exclusive lock on `path` (created 0600 if missing), waiting at most
/// `timeout` with a short backoff, then failing with a clear error. The lock file is
/// never followed if it is a symlink (a planted `<vault>.lock -> /etc/…` must not make
/// a root helper create or open that file) and must be a regular file.
pub fn lock_file(path: &Path, timeout: Duration) -> Result<LockGuard> {
    use rustix::fs::OFlags;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags((OFlags::NOFOLLOW | nonblock()).bits() as i32)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => Error::NotRegularFile {
                path: path.to_owned(),
                kind: "a symbolic link",
            },
            _ => Error::io("open the lock file", path, e),
        })?;
    ensure_regular(&file, path)?;
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

/// `O_NONBLOCK`, for every open of a path someone else could have replaced with a FIFO.
fn nonblock() -> rustix::fs::OFlags {
    rustix::fs::OFlags::NONBLOCK
}

/// How a write makes its temporary file. Only debug builds (tests) can choose, with
/// `LOCKBOX_DEBUG_TEMP_FILE=named|anonymous`: `named` forces the fallback, `anonymous`
/// makes a missing `O_TMPFILE` an error instead of a silent fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(debug_assertions), allow(dead_code))] // only tests choose a mode
enum TempMode {
    /// `O_TMPFILE`, falling back to a named file where it is unsupported.
    Auto,
    /// `O_TMPFILE` only.
    Anonymous,
    /// The named file only.
    Named,
}

fn temp_mode() -> TempMode {
    #[cfg(debug_assertions)]
    match std::env::var_os("LOCKBOX_DEBUG_TEMP_FILE").as_deref() {
        Some(v) if v == "named" => return TempMode::Named,
        Some(v) if v == "anonymous" => return TempMode::Anonymous,
        _ => {}
    }
    TempMode::Auto
}

/// Fault hooks for tests, in debug builds only. With `VAR=FILE` the writer creates FILE
/// and waits until it is removed (60 s at most). `LOCKBOX_DEBUG_PAUSE_BEFORE_RENAME`:
/// the new vault is complete (and, in a rotation, handed to the agent) but has no name
/// yet; `LOCKBOX_DEBUG_PAUSE_AFTER_RENAME`: it has just replaced the old one, before
/// anything else happens. Release builds compile them out.
fn debug_pause(var: &str) {
    #[cfg(not(debug_assertions))]
    let _ = var;
    #[cfg(debug_assertions)]
    if let Some(marker) = std::env::var_os(var) {
        let marker = PathBuf::from(marker);
        if fs::write(&marker, std::process::id().to_string()).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(60);
            while fs::symlink_metadata(&marker).is_ok() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
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
    use crate::vault::bounds;
    use crate::vault::crypto::{Recipient, VaultKey};

    #[test]
    fn a_change_past_the_bounds_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = VaultPath::new(dir.path().join("vault.json"));
        let key = VaultKey::generate();
        let recipient = Recipient::X25519(age::x25519::Identity::generate().to_public());
        let long_label = "x".repeat(bounds::MAX_LABEL + 1);
        let v = Vault::new(
            &key,
            vec![Vault::age_slot(&key, &recipient, long_label).unwrap()],
        );
        assert!(matches!(
            path.create(&v, false),
            Err(Error::LimitExceeded(_))
        ));
        assert!(!path.vault.exists());
    }
}
