//! The key flows as a build user, not root: CI runs as root, and root reads every
//! file whatever its mode, which hides exactly the failures that bite a build user.
//!
//! Each test creates fresh users (`useradd`, as root), makes their keys as them
//! (`ssh-keygen`, `age-keygen` run through `setpriv`), and runs the binary as them
//! with `setpriv --reuid/--regid/--init-groups` and `env -i` (a clean environment: a
//! `HOME` the user owns, and only the variables each step names). The agent is the
//! user's real one, in its per-uid directory `/tmp/lockbox-<uid>` (never
//! `LOCKBOX_AGENT_DIR`): `get` from `env -i` with only `HOME` set must find it. The
//! tests run one at a time (`.config/nextest.toml`, group `uid-rule`), and every user,
//! its agent and its directory are removed when the test ends.
//!
//! Needs root (for `useradd`) and the tools; when they are missing the test fails
//! under `CI=true` and elsewhere prints `skipped: …` with the reason.
use crate::common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::users::TestUser;
use common::{BIN, Finished, Group, Input, run_bounded};

const PASS: &str = "build user key passphrase 6d0e";
const SECRET: &str = "nonroot-secret-8a41";
const SERVER: &str = "build.example";
/// Far above any normal run (Argon2id is not used here), so only a hang reaches it.
const LIMIT: Duration = Duration::from_secs(60);

/// Root (to create users) and the tools, under the common missing-tool policy.
fn require(tools: &[(&str, &str)]) -> bool {
    if !rustix::process::geteuid().is_root() {
        assert!(
            !common::ci(),
            "CI is set and this test needs root: it creates users (useradd) to run the key flows as them"
        );
        eprintln!("skipped: needs root, to create users (useradd) and run the key flows as them");
        return false;
    }
    common::require_tools(&[("useradd", "passwd"), ("setpriv", "util-linux")])
        && common::require_tools(tools)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A user made for one test (`common::users`: its home 0700, its own, under a
/// directory others may traverse), its agent stopped when dropped.
struct User(TestUser);

impl std::ops::Deref for User {
    type Target = TestUser;
    fn deref(&self) -> &TestUser {
        &self.0
    }
}

impl User {
    fn new(tag: &str) -> User {
        let user = User(TestUser::new("lbk", tag));
        // A bin directory on the user's PATH with the binary under its helper name,
        // for `exec`'s command (and Docker) to find.
        let bin = user.bin_dir();
        fs::create_dir(&bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(BIN, bin.join("docker-credential-lockbox")).unwrap();
        user
    }

    fn bin_dir(&self) -> PathBuf {
        self.root.path().join("bin")
    }

    /// `$HOME/rel`, as a string for arguments and variables.
    fn at(&self, rel: &str) -> String {
        self.home().join(rel).to_str().unwrap().to_owned()
    }

    /// `program args…` as this user with exactly `vars` (`env -i`), plus `HOME` and a
    /// `PATH` (the user's bin directory first) unless `vars` gives them.
    fn command(&self, vars: &[(&str, &str)], program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .args(["env", "-i"]);
        if !vars.iter().any(|(k, _)| *k == "PATH") {
            c.arg(format!(
                "PATH={}:/usr/local/bin:/usr/bin:/bin",
                self.bin_dir().display()
            ));
        }
        if !vars.iter().any(|(k, _)| *k == "HOME") {
            c.arg(format!("HOME={}", self.home().display()));
        }
        for (k, v) in vars {
            c.arg(format!("{k}={v}"));
        }
        c.arg(program).args(args);
        c
    }

    /// Runs `program` as this user in a new session (no controlling terminal: a
    /// prompt fails at once), bounded.
    fn run_program(
        &self,
        vars: &[(&str, &str)],
        program: &str,
        args: &[&str],
        stdin: &str,
    ) -> Finished {
        let input = if stdin.is_empty() {
            Input::Closed
        } else {
            Input::Bytes(stdin.as_bytes())
        };
        run_bounded(
            self.command(vars, program, args),
            input,
            Group::NewSession,
            LIMIT,
        )
    }

    /// The binary as this user.
    fn lockbox(&self, vars: &[(&str, &str)], args: &[&str], stdin: &str) -> Finished {
        self.run_program(vars, BIN, args, stdin)
    }

    /// A tool (`ssh-keygen`, `age-keygen`, `sh`) as this user; it must succeed.
    fn tool(&self, program: &str, args: &[&str]) -> Finished {
        let out = self.run_program(&[], program, args, "");
        assert!(out.status.success(), "{}", show(&out));
        out
    }

    /// A passphrase-protected ed25519 key in `~/.ssh`, made by the user: (private key
    /// path, public key line).
    fn ssh_key(&self) -> (String, String) {
        self.tool("mkdir", &["-m", "700", &self.at(".ssh")]);
        let key = self.at(".ssh/id_ed25519");
        self.tool(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                PASS,
                "-C",
                "builder@ci",
                "-f",
                &key,
            ],
        );
        let public = fs::read_to_string(format!("{key}.pub")).unwrap();
        (key, public.trim().to_owned())
    }

    /// A file in the home written by the user with `mode`.
    fn file(&self, rel: &str, content: &str, mode: u32) -> String {
        let path = self.at(rel);
        fs::write(&path, content).unwrap();
        self.chown(Path::new(&path));
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// A new age identity made by the user in its home (age-keygen writes 0600):
    /// (file, recipient).
    fn age_identity(&self, rel: &str) -> (String, String) {
        let path = self.at(rel);
        self.tool("age-keygen", &["-o", &path]);
        let recipient = fs::read_to_string(&path)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .unwrap()
            .to_owned();
        (path, recipient)
    }

    /// `init --recipient R` and one stored login, as the user.
    fn init_vault(&self, recipient: &str) {
        let out = self.lockbox(&[], &["init", "--recipient", recipient], "");
        assert!(out.status.success(), "init: {}", show(&out));
        let login = common::store_json(SERVER, "ci", SECRET);
        let out = self.lockbox(&[], &["store"], &login);
        assert!(out.status.success(), "store: {}", show(&out));
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = run_bounded(
            self.command(&[], BIN, &["lock", "--all"]),
            Input::Closed,
            Group::NewSession,
            LIMIT,
        );
        // Then `TestUser` removes the agent directory and the user.
    }
}

fn show(out: &Finished) -> String {
    format!(
        "{} → {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.what,
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// `get` answered with the stored login.
fn assert_got(what: &str, out: &Finished) {
    assert!(
        out.status.success() && text(&out.stdout).contains(SECRET),
        "{what}: {}",
        show(out)
    );
}

/// Exit 1, one line on stdout (a protocol action) or stderr (a command for people)
/// that holds every one of `needles`, and no secret anywhere.
fn assert_one_line(what: &str, out: &Finished, protocol: bool, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "{what}: {}", show(out));
    let line = text(if protocol { &out.stdout } else { &out.stderr });
    assert_eq!(line.lines().count(), 1, "{what}: {}", show(out));
    for n in needles {
        assert!(line.contains(n), "{what}: {n:?} missing: {}", show(out));
    }
    assert!(
        !line.contains("credentials not found"),
        "{what}: {}",
        show(out)
    );
    no_secret(what, out);
}

fn no_secret(what: &str, out: &Finished) {
    for s in [PASS, SECRET, "AGE-SECRET-KEY-1", "PRIVATE KEY"] {
        for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !text(bytes).contains(s),
                "{what}: {s:?} on {name}: {}",
                show(out)
            );
        }
    }
}

/// Issue 12's new user, as a build user: `init --recipient` from its own encrypted
/// SSH key; `get` with `LOCKBOX_IDENTITY_FILE` naming it says to run unlock; `unlock
/// --identity-file --identity-passphrase-file` with no terminal; then `get` from `env
/// -i` with only `HOME` reaches the user's agent in `/tmp/lockbox-<uid>`, which is the
/// user's and private.
#[test]
fn build_user_unlocks_an_encrypted_ssh_key_and_get_reaches_the_agent_from_env_i() {
    if !require(&[("ssh-keygen", "openssh-client")]) {
        return;
    }
    let u = User::new("a");
    let (key, public) = u.ssh_key();
    u.init_vault(&public);
    let pass = u.file("key-pass", &format!("{PASS}\n"), 0o600);

    let out = u.lockbox(&[("LOCKBOX_IDENTITY_FILE", &key)], &["get"], SERVER);
    assert_one_line(
        "get with an encrypted key",
        &out,
        true,
        &["protected by a passphrase", "unlock"],
    );

    let run = u.at("run");
    u.tool("mkdir", &["-m", "700", &run]);
    let out = u.lockbox(
        &[("XDG_RUNTIME_DIR", &run)],
        &[
            "unlock",
            "--identity-file",
            &key,
            "--identity-passphrase-file",
            &pass,
        ],
        "",
    );
    assert!(out.status.success(), "unlock: {}", show(&out));
    no_secret("unlock", &out);

    let dir = fs::metadata(u.agent_dir()).expect("the user's agent directory");
    assert_eq!(dir.uid(), u.uid, "the agent directory is the user's");
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);

    // Another environment: no XDG_RUNTIME_DIR, no PATH, nothing but HOME.
    let home = u.home().display().to_string();
    let out = u.lockbox(&[("HOME", &home), ("PATH", "")], &["get"], SERVER);
    assert_got("get from env -i", &out);
    let out = u.lockbox(&[], &["lock"], "");
    assert!(out.status.success(), "lock: {}", show(&out));
    let out = u.lockbox(&[], &["get"], SERVER);
    assert_one_line("get after lock", &out, true, &["lockbox is locked"]);
}

/// `LOCKBOX_IDENTITY_CMD` as a build user: a command that cats an identity file the
/// user owns opens the vault on `get`; one that cats root's 0600 file fails in one
/// line with cat's own complaint.
#[test]
fn build_user_get_with_an_identity_command() {
    if !require(&[("age-keygen", "age")]) {
        return;
    }
    let u = User::new("b");
    let (id, recipient) = u.age_identity("id.txt");
    u.init_vault(&recipient);
    let cmd = format!("cat '{id}'");
    let out = u.lockbox(&[("LOCKBOX_IDENTITY_CMD", &cmd)], &["get"], SERVER);
    assert_got("get with LOCKBOX_IDENTITY_CMD", &out);

    // root's identity, mode 0600: root could read it; the build user cannot.
    let roots = u.root.path().join("root-id.txt");
    fs::copy(&id, &roots).unwrap();
    std::os::unix::fs::chown(&roots, Some(0), Some(0)).unwrap();
    fs::set_permissions(&roots, fs::Permissions::from_mode(0o600)).unwrap();
    let cmd = format!("cat '{}'", roots.display());
    let out = u.lockbox(&[("LOCKBOX_IDENTITY_CMD", &cmd)], &["get"], SERVER);
    assert_one_line(
        "an identity command that cannot read its file",
        &out,
        true,
        &[
            "LOCKBOX_IDENTITY_CMD",
            "exited with status 1",
            "Permission denied",
        ],
    );
}

/// `LOCKBOX_IDENTITY_FILE` modes as a build user. The code's rule: lockbox reads an
/// identity file whatever its mode (as age does), so 0600 and 0644 both open the
/// vault; a file the user cannot read (root's, 0600) is one line naming it with
/// "Permission denied" — never the not-found or the locked text.
#[test]
fn build_user_identity_file_modes() {
    if !require(&[("age-keygen", "age")]) {
        return;
    }
    let u = User::new("c");
    let (id, recipient) = u.age_identity("id.txt");
    u.init_vault(&recipient);
    for mode in [0o600, 0o644] {
        fs::set_permissions(&id, fs::Permissions::from_mode(mode)).unwrap();
        let m = fs::metadata(&id).unwrap();
        assert_eq!((m.uid(), m.permissions().mode() & 0o777), (u.uid, mode));
        let out = u.lockbox(&[("LOCKBOX_IDENTITY_FILE", &id)], &["get"], SERVER);
        assert_got(&format!("LOCKBOX_IDENTITY_FILE of mode {mode:o}"), &out);
    }
    let roots = u.root.path().join("root-id.txt");
    fs::copy(&id, &roots).unwrap();
    std::os::unix::fs::chown(&roots, Some(0), Some(0)).unwrap();
    fs::set_permissions(&roots, fs::Permissions::from_mode(0o600)).unwrap();
    let roots = roots.to_str().unwrap();
    let out = u.lockbox(&[("LOCKBOX_IDENTITY_FILE", roots)], &["get"], SERVER);
    assert_one_line(
        "root's identity file",
        &out,
        true,
        &[roots, "Permission denied"],
    );
    let out = u.lockbox(&[], &["unlock", "--identity-file", roots], "");
    assert_one_line(
        "unlock --identity-file root's file",
        &out,
        false,
        &[roots, "Permission denied"],
    );
}

/// `exec --identity-file KEY --identity-passphrase-file FILE -- CMD` as a build user:
/// CMD's `get` is answered by `exec`'s private server, with no terminal and no agent.
#[test]
fn build_user_exec_with_an_encrypted_ssh_key() {
    if !require(&[("ssh-keygen", "openssh-client")]) {
        return;
    }
    let u = User::new("d");
    let (key, public) = u.ssh_key();
    u.init_vault(&public);
    let pass = u.file("key-pass", &format!("{PASS}\n"), 0o600);
    let got = u.at("got");
    let script = format!("echo {SERVER} | docker-credential-lockbox get > '{got}'");
    let out = u.lockbox(
        &[],
        &[
            "exec",
            "--identity-file",
            &key,
            "--identity-passphrase-file",
            &pass,
            "--",
            "sh",
            "-c",
            &script,
        ],
        "",
    );
    assert!(out.status.success(), "exec: {}", show(&out));
    no_secret("exec", &out);
    assert!(
        fs::read_to_string(&got).unwrap().contains(SECRET),
        "CMD's get was not answered"
    );
    // Nothing was left unlocked: exec's key died with it.
    let out = u.lockbox(&[], &["get"], SERVER);
    assert_one_line("get after exec", &out, true, &["lockbox is locked"]);
}

/// What a build user cannot do: read another user's vault, identity or passphrase
/// file. Each is one clear line with "Permission denied" naming the file, exit 1.
#[test]
fn build_user_cannot_read_another_users_vault_or_identity() {
    if !require(&[("ssh-keygen", "openssh-client")]) {
        return;
    }
    let owner = User::new("e");
    let other = User::new("f");
    let (key, public) = owner.ssh_key();
    owner.init_vault(&public);
    let pass = owner.file("key-pass", &format!("{PASS}\n"), 0o600);
    let vault = owner.at(".docker/lockbox/vault.json");
    assert!(Path::new(&vault).exists());

    // Another user's vault (behind its 0700 home): get and status.
    let out = other.lockbox(&[("LOCKBOX_VAULT", &vault)], &["get"], SERVER);
    assert_one_line(
        "get of another user's vault",
        &out,
        true,
        &["Permission denied"],
    );
    let out = other.lockbox(&[("LOCKBOX_VAULT", &vault)], &["status"], "");
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(err.contains("Permission denied"), "{}", show(&out));
    assert_eq!(err.lines().count(), 1, "{}", show(&out));

    // Its identity and its passphrase file, with the other user's own vault.
    let (_, own_public) = other.ssh_key();
    other.init_vault(&own_public);
    let out = other.lockbox(&[("LOCKBOX_IDENTITY_FILE", &key)], &["get"], SERVER);
    assert_one_line(
        "another user's identity file",
        &out,
        true,
        &[&key, "Permission denied"],
    );
    let own_key = other.at(".ssh/id_ed25519");
    let out = other.lockbox(
        &[],
        &[
            "unlock",
            "--identity-file",
            &own_key,
            "--identity-passphrase-file",
            &pass,
        ],
        "",
    );
    assert_one_line(
        "another user's passphrase file",
        &out,
        false,
        &["--identity-passphrase-file", &pass, "Permission denied"],
    );
    // The owner, for contrast, can.
    let out = owner.lockbox(
        &[],
        &[
            "unlock",
            "--identity-file",
            &key,
            "--identity-passphrase-file",
            &pass,
        ],
        "",
    );
    assert!(out.status.success(), "{}", show(&out));
}
