//! Real users for the suites that run lockbox as someone other than root (CI runs as
//! root, which reads every file and hides what bites a build user): made with
//! `useradd`, removed with `userdel` and their agent directory when dropped. The
//! suites run them in the serial `uid-rule` group (`.config/nextest.toml`); `useradd`
//! and `userdel` also take a lock of their own, since other test binaries may be
//! changing `/etc/passwd` at the same moment.
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::At;

/// The lock every test binary takes around `useradd`/`userdel`.
const USERADD_LOCK: &str = "/tmp/lockbox-test-useradd.lock";

/// A user made for one test: its home (`ROOT/home`, 0700, its own) under a temporary
/// directory others may traverse (0755), where a suite keeps what the user may use.
pub struct TestUser {
    /// The login name: `PREFIX<pid>TAG`.
    pub name: String,
    /// Its uid (never 0).
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// The temporary directory holding its home.
    pub root: tempfile::TempDir,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl TestUser {
    /// Creates the user `PREFIX<pid>TAG` (`prefix` names the suite, short: user names
    /// are at most 32 bytes), with its home in a new temporary directory.
    pub fn new(prefix: &str, tag: &str) -> TestUser {
        let root = tempfile::Builder::new()
            .prefix("lockbox-user-")
            .tempdir()
            .expect("a temporary directory for the user");
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755))
            .at("chmod the user's directory", root.path());
        let name = format!("{prefix}{}{tag}", std::process::id());
        let home = root.path().join("home");
        fs::create_dir(&home).at("create the user's home", &home);
        let out = Command::new("flock")
            .args([USERADD_LOCK, "useradd", "-M", "-U", "-s", "/bin/sh", "-d"])
            .arg(&home)
            .arg(&name)
            .stdin(Stdio::null())
            .output()
            .at("run", "flock … useradd");
        assert!(out.status.success(), "useradd: {}", text(&out.stderr));
        let id = |flag: &str| -> u32 {
            let o = Command::new("id")
                .args([flag, &name])
                .stdin(Stdio::null())
                .output()
                .at("run", "id");
            text(&o.stdout).trim().parse().expect("id prints a number")
        };
        let user = TestUser {
            uid: id("-u"),
            gid: id("-g"),
            name,
            root,
        };
        assert_ne!(user.uid, 0, "useradd made a root user");
        user.chown(&home);
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).at("chmod home", &home);
        user
    }

    /// Its home directory.
    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// Its real agent directory, `/tmp/lockbox-<uid>` (a function of the uid alone).
    pub fn agent_dir(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/lockbox-{}", self.uid))
    }

    /// Gives `path` to the user (and its group).
    pub fn chown(&self, path: &Path) {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(self.agent_dir());
        let _ = Command::new("flock")
            .args([USERADD_LOCK, "userdel", &self.name])
            .stdin(Stdio::null())
            .output();
    }
}
