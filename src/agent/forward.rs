//! Forward sockets: the agent's sockets for a container or a job (`forward create`).
//! Each lives in a directory of its own, `<agent dir>/forwards/NAME/forward.sock`, so
//! that directory is what a container mounts; its rules are a [`Policy::Forward`]. A
//! forward ends at its TTL, on `forward_revoke`, on `lock`, when the process that
//! created it with `tie_to_peer` exits (a pidfd the agent polls), and when the agent
//! ends: its socket and directory are removed then (`docs/AGENT.md` "Forwards").
use std::collections::BTreeMap;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, Uid};

use super::policy::Policy;
use super::proto::{AgentError, ForwardInfo, MAX_TIMEOUT, MIN_TIMEOUT};
use super::socket::BoundSocket;

/// The directory of every forward, inside the agent directory.
pub const FORWARDS_DIR: &str = "forwards";
/// The socket's name inside a forward's directory.
pub const FORWARD_SOCKET: &str = "forward.sock";
/// Longest forward name.
pub const MAX_NAME: usize = 64;
/// Most forwards open at once (each is a socket the agent polls).
pub const MAX_FORWARDS: usize = 64;
/// Longest path a Unix socket may be bound at (`sun_path` less its final NUL).
pub const MAX_SOCKET_PATH: usize = 107;
/// Most registries in one forward.
pub const MAX_REGISTRIES: usize = 64;

/// Whether `name` may name a forward: 1 to [`MAX_NAME`] of `[A-Za-z0-9_.-]`, not
/// starting with a dot (it is a directory name, and shows in logs).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// What `forward_create` asks for.
#[derive(Debug)]
pub struct Spec {
    /// The name.
    pub name: String,
    /// The registries, normalized.
    pub registries: Vec<String>,
    /// Its time to live.
    pub ttl: Duration,
    /// A uid let in besides the owner's and root.
    pub uid: Option<u32>,
    /// The vault file.
    pub vault: PathBuf,
    /// The vault's public key.
    pub public_key: String,
    /// The creator's pid, when the forward is to end with it.
    pub tie_to: Option<u32>,
    /// Whether its creator trusts the vault's key to run sources.
    pub sources_trusted: bool,
}

struct Forward {
    policy: Policy,
    bound: BoundSocket,
    dir: PathBuf,
    gets: u64,
    /// The creator's pidfd: readable once it has exited.
    creator: Option<OwnedFd>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        // The socket goes with `bound` (dropped after this), then the empty directory.
        let _ = fs::remove_file(self.dir.join(FORWARD_SOCKET));
        let _ = fs::remove_dir(&self.dir);
    }
}

/// The forwards of one agent.
#[derive(Default)]
pub struct Forwards {
    /// `<agent dir>/forwards`; `None`: this agent opens no forwards (`exec`).
    dir: Option<PathBuf>,
    open: BTreeMap<String, Forward>,
}

impl Forwards {
    /// The forwards of the agent whose directory is `agent_dir`. What a killed agent
    /// left there is removed: no live forward is anyone else's.
    pub fn in_agent_dir(agent_dir: &Path) -> Self {
        let dir = agent_dir.join(FORWARDS_DIR);
        if let Ok(m) = fs::symlink_metadata(&dir) {
            if m.is_dir() && m.uid() == rustix::process::getuid().as_raw() {
                let _ = fs::remove_dir_all(&dir);
            } else {
                let _ = fs::remove_file(&dir);
            }
        }
        Forwards {
            dir: Some(dir),
            open: BTreeMap::new(),
        }
    }

    /// Opens a forward; `now` is the time since boot.
    pub fn create(&mut self, spec: Spec, now: Duration) -> Result<ForwardInfo, AgentError> {
        let Some(root) = &self.dir else {
            return Err(AgentError::Unsupported);
        };
        // The agent's working directory is not the client's: a relative path would
        // name another file.
        if !valid_name(&spec.name)
            || !spec.vault.is_absolute()
            || spec.registries.is_empty()
            || spec.registries.len() > MAX_REGISTRIES
        {
            return Err(AgentError::BadRequest);
        }
        if self.open.len() >= MAX_FORWARDS {
            return Err(AgentError::TooManyForwards {
                max: MAX_FORWARDS as u32,
            });
        }
        if self.open.contains_key(&spec.name) {
            return Err(AgentError::ForwardExists);
        }
        let creator = match spec.tie_to.and_then(|p| Pid::from_raw(p as i32)) {
            Some(pid) => Some(
                rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).map_err(
                    |e| AgentError::ForwardSocket {
                        reason: format!("cannot watch the creating process {pid:?}: {e}"),
                    },
                )?,
            ),
            None => None,
        };
        let dir = root.join(&spec.name);
        let socket = dir.join(FORWARD_SOCKET);
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(AgentError::ForwardSocket {
                reason: crate::messages::forward_socket_too_long(
                    &socket.display().to_string(),
                    MAX_SOCKET_PATH,
                ),
            });
        }
        let bound = open_socket(root, &dir).map_err(|e| AgentError::ForwardSocket {
            reason: format!("{}: {e}", dir.display()),
        })?;
        let ttl = spec.ttl.clamp(MIN_TIMEOUT, MAX_TIMEOUT);
        let forward = Forward {
            policy: Policy::Forward {
                name: spec.name.clone(),
                registries: spec.registries,
                expires: now + ttl,
                uid: spec.uid.map(Uid::from_raw),
                vault: spec.vault,
                public_key: spec.public_key,
                sources_trusted: spec.sources_trusted,
            },
            bound,
            dir,
            gets: 0,
            creator,
        };
        let info = forward.info(now);
        self.open.insert(spec.name, forward);
        Ok(info)
    }

    /// Ends the forward `name`; whether it was open.
    pub fn revoke(&mut self, name: &str) -> bool {
        self.open.remove(name).is_some()
    }

    /// Ends every forward of the vault `public_key` (`None`: every forward), as a
    /// `lock` does; returns their names.
    pub fn revoke_vault(&mut self, public_key: Option<&str>) -> Vec<String> {
        let names: Vec<String> = self
            .open
            .iter()
            .filter(|(_, f)| match (&f.policy, public_key) {
                (_, None) => true,
                (Policy::Forward { public_key: p, .. }, Some(k)) => p == k,
                _ => false,
            })
            .map(|(n, _)| n.clone())
            .collect();
        for n in &names {
            self.open.remove(n);
        }
        names
    }

    /// Ends every forward past its TTL or whose creator has exited; returns each
    /// name with why.
    pub fn expire(&mut self, now: Duration) -> Vec<(String, &'static str)> {
        let ended: Vec<(String, &'static str)> = self
            .open
            .iter()
            .filter_map(|(n, f)| {
                if f.expires() <= now {
                    Some((n.clone(), "its TTL"))
                } else if f.creator.as_ref().is_some_and(exited) {
                    Some((n.clone(), "its creator exited"))
                } else {
                    None
                }
            })
            .collect();
        for (n, _) in &ended {
            self.open.remove(n);
        }
        ended
    }

    /// The earliest TTL.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.open.values().map(Forward::expires).min()
    }

    /// Every open forward, sorted by name.
    pub fn infos(&self, now: Duration) -> Vec<ForwardInfo> {
        self.open.values().map(|f| f.info(now)).collect()
    }

    /// Whether `name` is open now.
    pub fn is_open(&self, name: &str) -> bool {
        self.open.contains_key(name)
    }

    /// Counts one secret handed out by `name`.
    pub fn count_get(&mut self, name: &str) {
        if let Some(f) = self.open.get_mut(name) {
            f.gets += 1;
        }
    }

    /// Each forward's name, listener (a duplicate, so the server may end the forward
    /// while serving it) and policy, in name order starting after `last` (round-robin).
    pub fn listeners_after(&self, last: Option<&str>) -> Vec<(String, UnixListener, Policy)> {
        let mut all: Vec<(String, UnixListener, Policy)> = self
            .open
            .iter()
            .filter_map(|(n, f)| {
                Some((
                    n.clone(),
                    f.bound.listener.try_clone().ok()?,
                    f.policy.clone(),
                ))
            })
            .collect();
        if let Some(last) = last {
            let start = all.partition_point(|(n, _, _)| n.as_str() <= last);
            all.rotate_left(start);
        }
        all
    }

    /// What the agent's poll waits on besides its own socket: every forward's
    /// listener and creator.
    pub fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds: Vec<PollFd<'_>> = self
            .open
            .values()
            .map(|f| PollFd::new(&f.bound.listener, PollFlags::IN))
            .collect();
        fds.extend(
            self.open
                .values()
                .filter_map(|f| f.creator.as_ref())
                .map(|c| PollFd::new(c, PollFlags::IN)),
        );
        fds
    }

    /// Ends every forward (the agent stops).
    pub fn clear(&mut self) {
        self.open.clear();
    }

    /// Whether any forward is open.
    pub fn any(&self) -> bool {
        !self.open.is_empty()
    }
}

impl Forward {
    fn expires(&self) -> Duration {
        match &self.policy {
            Policy::Forward { expires, .. } => *expires,
            _ => Duration::ZERO,
        }
    }

    fn info(&self, now: Duration) -> ForwardInfo {
        let Policy::Forward {
            name,
            registries,
            uid,
            vault,
            ..
        } = &self.policy
        else {
            unreachable!("a forward has a forward policy")
        };
        ForwardInfo {
            name: name.clone(),
            registries: registries.clone(),
            socket: self.dir.join(FORWARD_SOCKET).display().to_string(),
            expires_in_secs: self.expires().saturating_sub(now).as_secs(),
            uid: uid.map(Uid::as_raw),
            vault: vault.display().to_string(),
            gets: self.gets,
            tied: self.creator.is_some(),
        }
    }
}

/// Whether the process behind `pidfd` has exited (its pidfd is readable then).
fn exited(pidfd: &OwnedFd) -> bool {
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
}

/// Makes `root` (0700) and the forward's `dir` (0711), and binds its socket (0666).
/// The peer check (`SO_PEERCRED`) is what keeps other uids out, so a container's
/// process of a uid not admitted reaches it through its mount and is told which uid
/// the agent saw; `root` (0700) and the agent directory keep every other host user
/// from reaching the directory except through a container's mount.
fn open_socket(root: &Path, dir: &Path) -> std::io::Result<BoundSocket> {
    match fs::DirBuilder::new().mode(0o700).create(root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let m = fs::symlink_metadata(root)?;
            if !m.is_dir() || m.uid() != rustix::process::getuid().as_raw() {
                return Err(std::io::Error::other("the forwards directory is not ours"));
            }
        }
        Err(e) => return Err(e),
    }
    if let Ok(m) = fs::symlink_metadata(dir) {
        // A forward of that name is not open (checked before): what is left is stale.
        if m.is_dir() && !m.file_type().is_symlink() {
            fs::remove_dir_all(dir)?;
        } else {
            fs::remove_file(dir)?;
        }
    }
    fs::DirBuilder::new().mode(0o700).create(dir)?;
    let bound = BoundSocket::bind(&dir.join(FORWARD_SOCKET))
        .map_err(|e| std::io::Error::other(e.message()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o711))?;
    fs::set_permissions(dir.join(FORWARD_SOCKET), fs::Permissions::from_mode(0o666))?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_directory_names() {
        for ok in ["ci-42", "a", "run.7_x", &"x".repeat(MAX_NAME)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            "é",
            &"x".repeat(MAX_NAME + 1),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    fn spec(name: &str, tie_to: Option<u32>) -> Spec {
        Spec {
            name: name.into(),
            registries: vec!["ghcr.io".into()],
            ttl: Duration::from_secs(60),
            uid: None,
            vault: "/v".into(),
            public_key: "age1x".into(),
            sources_trusted: false,
            tie_to,
        }
    }

    #[test]
    fn a_forward_has_its_own_directory_and_ends_at_its_ttl_leaving_nothing() {
        let agent = tempfile::tempdir().unwrap();
        let mut f = Forwards::in_agent_dir(agent.path());
        let now = Duration::from_secs(1000);
        let info = f.create(spec("ci", None), now).unwrap();
        let dir = agent.path().join(FORWARDS_DIR).join("ci");
        assert_eq!(info.socket, dir.join(FORWARD_SOCKET).display().to_string());
        assert_eq!(info.expires_in_secs, 60);
        // The directory and socket let any uid reach the peer check (a container's
        // user reaches them through its mount); `forwards/` above stays 0700.
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o711);
        assert_eq!(mode(&dir.join(FORWARD_SOCKET)), 0o666);
        assert_eq!(mode(&agent.path().join(FORWARDS_DIR)), 0o700);
        assert_eq!(
            f.create(spec("ci", None), now),
            Err(AgentError::ForwardExists)
        );
        assert_eq!(
            f.create(spec("../x", None), now),
            Err(AgentError::BadRequest)
        );
        let relative = Spec {
            vault: "docker/lockbox/vault.json".into(),
            ..spec("rel", None)
        };
        assert_eq!(f.create(relative, now), Err(AgentError::BadRequest));
        assert!(f.expire(now + Duration::from_secs(59)).is_empty());
        assert_eq!(
            f.expire(now + Duration::from_secs(60)),
            vec![("ci".to_owned(), "its TTL")]
        );
        assert!(!dir.exists(), "the directory is removed with the forward");
    }

    #[test]
    fn each_failure_to_open_a_forward_has_its_own_error_never_bad_request() {
        let agent = tempfile::tempdir().unwrap();
        let mut f = Forwards::in_agent_dir(agent.path());
        for i in 0..MAX_FORWARDS {
            f.create(spec(&format!("f{i}"), None), Duration::ZERO)
                .unwrap();
        }
        assert_eq!(
            f.create(spec("one-more", None), Duration::ZERO),
            Err(AgentError::TooManyForwards {
                max: MAX_FORWARDS as u32
            })
        );
        f.clear();
        // A creator that is gone cannot be watched.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(matches!(
            f.create(spec("tied", Some(pid)), Duration::ZERO),
            Err(AgentError::ForwardSocket { .. })
        ));
        // A socket path past 107 bytes.
        let deep = agent.path().join("d".repeat(MAX_SOCKET_PATH));
        fs::create_dir(&deep).unwrap();
        let mut f = Forwards::in_agent_dir(&deep);
        match f.create(spec("long", None), Duration::ZERO) {
            Err(AgentError::ForwardSocket { reason }) => {
                assert!(reason.contains("107 bytes"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_tied_forward_ends_with_its_creator() {
        let agent = tempfile::tempdir().unwrap();
        let mut f = Forwards::in_agent_dir(agent.path());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        f.create(spec("tied", Some(child.id())), Duration::ZERO)
            .unwrap();
        assert!(f.expire(Duration::ZERO).is_empty());
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            f.expire(Duration::ZERO),
            vec![("tied".to_owned(), "its creator exited")]
        );
    }

    #[test]
    fn lock_ends_the_forwards_of_its_vault() {
        let agent = tempfile::tempdir().unwrap();
        let mut f = Forwards::in_agent_dir(agent.path());
        f.create(spec("a", None), Duration::ZERO).unwrap();
        let mut other = spec("b", None);
        other.public_key = "age1y".into();
        f.create(other, Duration::ZERO).unwrap();
        assert_eq!(f.revoke_vault(Some("age1y")), vec!["b".to_owned()]);
        assert!(f.is_open("a"));
        assert_eq!(f.revoke_vault(None), vec!["a".to_owned()]);
        assert!(!f.any());
    }
}
