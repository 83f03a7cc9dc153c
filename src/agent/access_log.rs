//! The access log: one JSON line per secret the agent hands out — when, which vault,
//! which registry, through which socket (the owner's, a forward's, `exec`'s) and to
//! which peer (pid, uid, executable) — never the secret (`docs/AGENT.md` "The access
//! log"). The file is `<agent dir>/access.log`, 0600; past [`MAX_LOG`] bytes it is
//! moved to `access.log.1` (replacing the one before), so the two hold at most twice
//! that. `lockbox log` reads both.
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The log's file name inside the agent directory.
pub const LOG_NAME: &str = "access.log";
/// The rotated log's file name.
pub const OLD_LOG_NAME: &str = "access.log.1";
/// Bytes after which the log is rotated.
pub const MAX_LOG: u64 = 1 << 20;

/// Who is at the other end of a connection (`SO_PEERCRED`), as a record names it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Peer {
    /// Its pid, in the agent's pid namespace.
    pub pid: Option<u32>,
    /// Its uid.
    pub uid: Option<u32>,
}

/// One secret handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// The vault (its label: the path `unlock` gave, or the forward's vault).
    pub vault: String,
    /// The entry's server URL as stored.
    pub registry: String,
    /// `owner`, `exec`, or `forward:NAME`.
    pub socket: String,
    /// The peer's pid, as the kernel gave it (`SO_PEERCRED`), in the agent's pid
    /// namespace.
    pub pid: Option<u32>,
    /// The peer's uid.
    pub uid: Option<u32>,
    /// The peer's executable (`/proc/PID/exe`), when the agent may read it.
    #[serde(default)]
    pub exe: Option<String>,
}

/// Where the agent writes its access log.
#[derive(Debug, Clone)]
pub struct AccessLog {
    path: PathBuf,
}

impl AccessLog {
    /// The log in the agent directory `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        AccessLog {
            path: dir.join(LOG_NAME),
        }
    }

    /// Appends `record` as one line, rotating first when the file is over
    /// [`MAX_LOG`]. A log that cannot be written never stops a `get`: the error is
    /// returned for the agent to say on stderr (foreground).
    pub fn append(&self, record: &Record) -> io::Result<()> {
        if fs::symlink_metadata(&self.path).is_ok_and(|m| m.len() >= MAX_LOG) {
            fs::rename(&self.path, self.path.with_file_name(OLD_LOG_NAME))?;
        }
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut file = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&self.path)?;
        // A file someone else made (the directory is ours and 0700, so only a
        // mistake) is not written to.
        if file.metadata()?.uid() != rustix::process::getuid().as_raw() {
            return Err(io::Error::other("the access log belongs to another user"));
        }
        file.write_all(&line)
    }
}

/// The most read of one log file: the agent rotates past [`MAX_LOG`], so anything
/// longer was not written by it; what is past this is not read.
const MAX_READ: u64 = 2 * MAX_LOG;

/// Every record of the log in `dir` (an agent directory the caller checked), oldest
/// first (the rotated file, then the current one); lines that do not parse are
/// skipped and counted. Each file is opened as the agent writes it: not through a
/// symbolic link, a regular file only (a FIFO is refused, never waited on), owned by
/// this user, and read up to twice [`MAX_LOG`] bytes.
pub fn read_all(dir: &Path) -> crate::error::Result<(Vec<Record>, usize)> {
    let mut records = Vec::new();
    let mut bad = 0;
    for name in [OLD_LOG_NAME, LOG_NAME] {
        let path = dir.join(name);
        let text = match read_log(&path) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => return Err(crate::error::Error::io("read", path, e)),
        };
        let text = String::from_utf8_lossy(&text);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str(line) {
                Ok(r) => records.push(r),
                Err(_) => bad += 1,
            }
        }
    }
    Ok((records, bad))
}

/// One log file's bytes, at most [`MAX_READ`]; `None` when there is none.
fn read_log(path: &Path) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let input = match crate::secret_io::open(path, crate::secret_io::Accept::RegularFileNoLink) {
        Ok(i) => i,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if input.metadata()?.uid() != rustix::process::getuid().as_raw() {
        return Err(io::Error::other("the access log belongs to another user"));
    }
    let mut bytes = Vec::new();
    input.take(MAX_READ).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// The executable of process `pid`, if this process may read it.
pub fn exe_of(pid: u32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn record(n: u64) -> Record {
        Record {
            time: n,
            vault: "/v".into(),
            registry: "ghcr.io".into(),
            socket: "forward:ci".into(),
            pid: Some(7),
            uid: Some(0),
            exe: None,
        }
    }

    #[test]
    fn lines_append_0600_and_rotate_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::in_dir(dir.path());
        log.append(&record(1)).unwrap();
        log.append(&record(2)).unwrap();
        let meta = fs::metadata(dir.path().join(LOG_NAME)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(read_all(dir.path()).unwrap().0, vec![record(1), record(2)]);
        // Over the cap: the next line starts a new file, the old one is kept once.
        let f = fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_NAME))
            .unwrap();
        f.set_len(MAX_LOG).unwrap();
        log.append(&record(3)).unwrap();
        assert_eq!(
            fs::metadata(dir.path().join(OLD_LOG_NAME)).unwrap().len(),
            MAX_LOG
        );
        let (records, bad) = read_all(dir.path()).unwrap();
        assert_eq!(records.first(), Some(&record(1)));
        assert_eq!(records.last(), Some(&record(3)));
        assert!(bad > 0, "the zero padding is not a record");
    }

    #[test]
    fn a_symlink_in_place_of_the_log_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, dir.path().join(LOG_NAME)).unwrap();
        assert!(AccessLog::in_dir(dir.path()).append(&record(1)).is_err());
        assert!(!target.exists());
    }

    /// `read_all` on another thread, bounded: a FIFO opened for reading would block.
    fn read_bounded(dir: &Path) -> crate::error::Result<(Vec<Record>, usize)> {
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = dir.to_owned();
        std::thread::spawn(move || tx.send(read_all(&dir)));
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("read_all returned (a FIFO is refused, never waited on)")
    }

    #[test]
    fn a_fifo_at_the_log_path_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            dir.path().join(LOG_NAME),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let e = read_bounded(dir.path()).unwrap_err();
        assert!(e.message().contains("FIFO"), "{}", e.message());
    }

    #[test]
    fn a_symlink_at_the_log_path_is_not_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("log");
        fs::write(
            &target,
            format!("{}\n", serde_json::to_string(&record(1)).unwrap()),
        )
        .unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(OLD_LOG_NAME)).unwrap();
        assert!(read_bounded(dir.path()).is_err());
    }

    #[test]
    fn a_log_is_read_up_to_twice_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::in_dir(dir.path());
        log.append(&record(1)).unwrap();
        let f = fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_NAME))
            .unwrap();
        f.set_len(MAX_READ).unwrap();
        // Past what the agent ever writes: not read.
        (&f).write_all(b"\n").unwrap();
        (&f).write_all(serde_json::to_string(&record(2)).unwrap().as_bytes())
            .unwrap();
        let (records, _) = read_bounded(dir.path()).unwrap();
        assert_eq!(records, vec![record(1)]);
    }
}
