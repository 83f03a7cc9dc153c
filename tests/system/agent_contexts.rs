//! The agent's socket rule with real uids: `unlock` in one context of a user and `get`
//! in every other context of that user meet (no `XDG_RUNTIME_DIR`, another one,
//! `env -i`, `sudo -u`, `su -c`, `setpriv --reuid`, after the runtime directory was
//! removed); another uid does not; the shipped units verify and their `ExecStart=`,
//! run the way systemd would run it, serves the user.
//!
//! These tests create users (`useradd`, as root) and use the real per-uid directory
//! `/tmp/lockbox-<uid>` of those users, never `LOCKBOX_AGENT_DIR`: that is the rule
//! under test. They run serially (`.config/nextest.toml`, group `uid-rule`) and check
//! that the directory of the uid running the tests was not touched.
use crate::common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::BIN;
use common::users::TestUser;
const LOCKED_LINE: &str =
    "lockbox is locked: run 'docker-credential-lockbox unlock' or set LOCKBOX_IDENTITY\n";
const SECRET: &str = "ctx-secret-4b1d";
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Root and the tools; in CI their absence fails the test, elsewhere it is skipped.
fn require(tools: &[&str]) -> bool {
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if root && missing.is_empty() {
        return true;
    }
    let what = format!("root (is root: {root}) and the tools {missing:?}");
    assert!(
        std::env::var_os("CI").is_none_or(|v| v.is_empty()),
        "CI needs {what} (scripts/test.sh installs sudo, util-linux, passwd, systemd)"
    );
    eprintln!("skipped: needs {what}");
    false
}

/// `program` run from a root login shell's environment, as an operator would type it,
/// never the test runner's own (whose `DOCKER_CONFIG`, `LOCKBOX_*`, `HOME` or
/// `XDG_RUNTIME_DIR` `su` would carry into the user): `PATH`, root's `HOME`, `USER`,
/// `LOGNAME`, `SHELL`, and root's `XDG_RUNTIME_DIR` of a login session.
fn root_shell(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("HOME", "/root")
        .env("USER", "root")
        .env("LOGNAME", "root")
        .env("SHELL", "/bin/sh")
        .env("XDG_RUNTIME_DIR", "/run/user/0");
    c
}

fn bounded(child: Child, limit: Duration) -> Output {
    common::output_within(child, limit)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What the test runner's own agent directory looks like, to prove it untouched.
fn snapshot(dir: &Path) -> Option<(u64, i64, Vec<String>)> {
    let m = fs::symlink_metadata(dir).ok()?;
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    Some((m.ino(), m.mtime(), names))
}

/// A user made for one test (`common::users`), its agent stopped when dropped.
struct User(TestUser);

impl std::ops::Deref for User {
    type Target = TestUser;
    fn deref(&self) -> &TestUser {
        &self.0
    }
}

impl User {
    fn new(tag: &str) -> User {
        User(TestUser::new("lbx", tag))
    }

    /// `setpriv --reuid` with exactly `vars` (plus PATH and HOME unless given).
    fn setpriv(&self, vars: &[(&str, &str)], args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .args(["env", "-i"]);
        if !vars.iter().any(|(k, _)| *k == "PATH") {
            c.arg(format!("PATH={SYSTEM_PATH}"));
        }
        if !vars.iter().any(|(k, _)| *k == "HOME") {
            c.arg(format!("HOME={}", self.home().display()));
        }
        for (k, v) in vars {
            c.arg(format!("{k}={v}"));
        }
        c.arg(BIN).args(args);
        c
    }

    fn run(&self, mut c: Command, stdin: &str) -> Output {
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        bounded(child, Duration::from_secs(60))
    }

    /// init (cheap Argon2id) with a passphrase file in the home, and one entry.
    fn init_vault(&self) -> String {
        let pass = self.home().join("pass");
        fs::write(&pass, "user passphrase\n").unwrap();
        self.chown(&pass);
        let pass = pass.display().to_string();
        let kdf = [("LOCKBOX_ARGON2_PARAMS", "1024,1,1")];
        let out = self.run(
            self.setpriv(&kdf, &["init", "--passphrase-file", &pass]),
            "",
        );
        assert!(out.status.success(), "init: {}", text(&out.stderr));
        let store =
            serde_json::json!({"ServerURL": "reg.example", "Username": "u", "Secret": SECRET});
        let out = self.run(self.setpriv(&[], &["store"]), &store.to_string());
        assert!(out.status.success(), "store: {}", text(&out.stdout));
        pass
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // Then `TestUser` removes the agent directory and the user.
        let _ = self.run(self.setpriv(&[], &["lock", "--all"]), "");
    }
}

fn assert_got_secret(what: &str, out: &Output) {
    assert!(
        out.status.success() && text(&out.stdout).contains(SECRET),
        "{what}: get did not reach the agent: {} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn uid_rule_unlock_and_get_meet_in_every_context_of_the_user() {
    if !require(&["useradd", "userdel", "setpriv", "sudo", "su", "flock"]) {
        return;
    }
    let own = PathBuf::from(format!(
        "/tmp/lockbox-{}",
        rustix::process::getuid().as_raw()
    ));
    let before = snapshot(&own);
    let a = User::new("a");
    let pass = a.init_vault();
    // Unlock from a "login": XDG_RUNTIME_DIR as pam_systemd makes it.
    let runtime = a.root.path().join("run-user");
    fs::create_dir(&runtime).unwrap();
    std::os::unix::fs::chown(&runtime, Some(a.uid), Some(a.gid)).unwrap();
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    let login = [("XDG_RUNTIME_DIR", runtime.to_str().unwrap())];
    let out = a.run(
        a.setpriv(&login, &["unlock", "--passphrase-file", &pass]),
        "",
    );
    assert!(out.status.success(), "unlock: {}", text(&out.stderr));
    assert!(a.agent_dir().join("agent.sock").exists());
    assert!(
        !runtime.join("lockbox").exists(),
        "nothing under XDG_RUNTIME_DIR"
    );

    // cron: env -i with PATH and HOME only.
    assert_got_secret("env -i", &a.run(a.setpriv(&[], &["get"]), "reg.example"));
    // Another runtime directory (skopeo, podman, another session).
    let other = [("XDG_RUNTIME_DIR", "/tmp/elsewhere-not-there")];
    assert_got_secret(
        "other XDG",
        &a.run(a.setpriv(&other, &["get"]), "reg.example"),
    );
    // sudo -u (sudo resets the environment), from a root shell's environment.
    let mut sudo = root_shell("sudo");
    sudo.args(["-u", &a.name, "-H", BIN, "get"]);
    assert_got_secret("sudo -u", &a.run(sudo, "reg.example"));
    // su USER -c, which keeps what a root shell's environment holds (its
    // XDG_RUNTIME_DIR among it), but never the test runner's.
    let mut su = root_shell("su");
    su.args(["-s", "/bin/sh", &a.name, "-c", &format!("{BIN} get")]);
    assert_got_secret("su -c", &a.run(su, "reg.example"));
    // The login ended: logind removed /run/user/<uid>.
    fs::remove_dir_all(&runtime).unwrap();
    assert_got_secret(
        "after logout",
        &a.run(a.setpriv(&login, &["get"]), "reg.example"),
    );
    let st = a.run(a.setpriv(&[], &["status", "--json"]), "");
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["unlocked"], true, "{st}");

    // Another uid finds its own (absent) agent, never this one.
    let b = User::new("b");
    b.init_vault();
    let out = b.run(b.setpriv(&[], &["get"]), "reg.example");
    assert_eq!(text(&out.stdout), LOCKED_LINE);
    // Pointed at A's directory explicitly, it is refused (A's, mode 0700).
    let dir_a = a.agent_dir().display().to_string();
    let out = b.run(
        b.setpriv(&[("LOCKBOX_AGENT_DIR", &dir_a)], &["get"]),
        "reg.example",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("refusing the lockbox agent directory")
            || text(&out.stdout).contains("Permission denied"),
        "{}",
        text(&out.stdout)
    );
    assert!(!text(&out.stdout).contains(SECRET));
    // Root is another uid too: its helper does not use A's agent even when pointed there.
    let mut as_root = Command::new(BIN);
    as_root
        .arg("get")
        .env_clear()
        .env("PATH", SYSTEM_PATH)
        .env("HOME", b.home())
        .env("LOCKBOX_VAULT", a.home().join(".docker/lockbox/vault.json"))
        .env("LOCKBOX_AGENT_DIR", &dir_a);
    let out = a.run(as_root, "reg.example");
    assert!(
        text(&out.stdout).contains("owned by another user"),
        "{}",
        text(&out.stdout)
    );
    drop(b);
    drop(a);
    assert_eq!(
        snapshot(&own),
        before,
        "the runner's own {own:?} was touched"
    );
}

/// The `ExecStart=` of a unit file, with the installed binary path replaced by the
/// built one.
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart=");
    line.split_whitespace()
        .map(|w| w.replace("/usr/bin/docker-credential-lockbox", BIN))
        .collect()
}

fn unit_text(name: &str) -> String {
    fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contrib/systemd")
            .join(name),
    )
    .unwrap()
}

#[test]
fn uid_rule_the_template_units_command_serves_its_user() {
    if !require(&["useradd", "userdel", "setpriv", "sudo", "flock"]) {
        return;
    }
    let unit = unit_text("lockbox-agent@.service");
    for hiding in ["PrivateTmp=", "ProtectHome=", "ProtectSystem=strict"] {
        assert!(
            !unit.lines().any(|l| l.starts_with(hiding)),
            "the unit must not hide the socket: {hiding}"
        );
    }
    assert!(unit.contains("User=%i"));
    let own = PathBuf::from(format!(
        "/tmp/lockbox-{}",
        rustix::process::getuid().as_raw()
    ));
    let before = snapshot(&own);
    let u = User::new("u");
    let pass = u.init_vault();
    // As systemd runs a system service with User=: that user's uid and groups, and
    // an environment of PATH, HOME, USER, LOGNAME and SHELL only.
    let argv = exec_start(&unit);
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={}", u.uid))
        .arg(format!("--regid={}", u.gid))
        .arg("--init-groups")
        .args(["env", "-i"])
        .arg(format!("PATH={SYSTEM_PATH}"))
        .arg(format!("HOME={}", u.home().display()))
        .arg(format!("USER={}", u.name))
        .arg(format!("LOGNAME={}", u.name))
        .arg("SHELL=/bin/sh")
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let agent = c.spawn().unwrap();
    let sock = u.agent_dir().join("agent.sock");
    let start = Instant::now();
    while !sock.exists() && start.elapsed() < Duration::from_secs(20) {
        thread::sleep(Duration::from_millis(100));
    }
    assert!(sock.exists(), "the unit's command did not bind {sock:?}");
    // The operator unlocks with sudo -u; the build (cron-like) gets.
    let mut sudo = root_shell("sudo");
    sudo.args([
        "-u",
        &u.name,
        "-H",
        BIN,
        "unlock",
        "--passphrase-file",
        &pass,
    ]);
    let out = u.run(sudo, "");
    assert!(out.status.success(), "unlock: {}", text(&out.stderr));
    assert_got_secret("cron", &u.run(u.setpriv(&[], &["get"]), "reg.example"));
    let st = u.run(u.setpriv(&[], &["status", "--json"]), "");
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["agent"]["mode"], "foreground", "{st}");
    assert_eq!(
        st["agent"]["pid"].as_u64(),
        Some(u64::from(agent.id())),
        "{st}"
    );
    // systemctl stop: SIGTERM, exit 0, socket gone.
    Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    let out = bounded(agent, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!sock.exists());
    assert!(!text(&out.stderr).contains(SECRET));
    drop(u);
    assert_eq!(
        snapshot(&own),
        before,
        "the runner's own {own:?} was touched"
    );
}

#[test]
fn shipped_units_pass_systemd_analyze_verify() {
    if !require(&["systemd-analyze"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for name in ["lockbox-agent.service", "lockbox-agent@.service"] {
        let unit = unit_text(name);
        assert!(
            unit.contains("LoadCredentialEncrypted=lockbox-identity"),
            "{name}: the hook"
        );
        fs::write(
            dir.path().join(name),
            unit.replace("/usr/bin/docker-credential-lockbox", BIN),
        )
        .unwrap();
    }
    let run = dir.path().join("run");
    fs::create_dir(&run).unwrap();
    fs::set_permissions(&run, fs::Permissions::from_mode(0o700)).unwrap();
    let verify = |user: bool, unit: &str| {
        let mut c = Command::new("systemd-analyze");
        if user {
            c.arg("--user").env("XDG_RUNTIME_DIR", &run);
        }
        c.args(["verify", "--man=no"]).arg(dir.path().join(unit));
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "systemd-analyze verify {unit}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    };
    verify(true, "lockbox-agent.service");
    verify(false, "lockbox-agent@builder.service");

    // The unattended path: the template with its credential drop-in, installed for one
    // instance (docs/BUILD_SERVER.md, section 5). systemd-analyze reads drop-ins beside
    // the unit; a broken copy proves this one is read, and the shipped one is clean.
    let dropin = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contrib/systemd/lockbox-agent@.service.d/credential.conf"),
    )
    .unwrap();
    let line = "LoadCredentialEncrypted=lockbox-identity:/etc/credstore.encrypted/lockbox-identity";
    assert!(dropin.lines().any(|l| l == line), "{dropin}");
    let d = dir.path().join("lockbox-agent@builder.service.d");
    fs::create_dir(&d).unwrap();
    let check = |text: &str| {
        fs::write(d.join("credential.conf"), text).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(dir.path().join("lockbox-agent@builder.service"))
            .output()
            .unwrap();
        (out.status.success(), text_of(&out))
    };
    let (_, complaint) = check(&dropin.replace("/etc/credstore.encrypted/", "not/absolute/"));
    assert!(complaint.contains("credential.conf"), "{complaint}");
    let (ok, complaint) = check(&dropin);
    assert!(ok && !complaint.contains("credential.conf"), "{complaint}");
}

/// The daily rotation units (docs/BUILD_SERVER.md, "Expiry and rotation"): the timer
/// starts the service, the service runs `rotate --due`, both verify as user units.
#[test]
fn rotation_timer_and_service_pass_systemd_analyze_verify() {
    if !require(&["systemd-analyze"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let service = unit_text("lockbox-rotate.service");
    assert!(
        service.contains("ExecStart=/usr/bin/docker-credential-lockbox rotate --due"),
        "{service}"
    );
    let timer = unit_text("lockbox-rotate.timer");
    assert!(timer.contains("OnCalendar=daily"), "{timer}");
    fs::write(
        dir.path().join("lockbox-rotate.service"),
        service.replace("/usr/bin/docker-credential-lockbox", BIN),
    )
    .unwrap();
    fs::write(dir.path().join("lockbox-rotate.timer"), &timer).unwrap();
    let run = dir.path().join("run");
    fs::create_dir(&run).unwrap();
    fs::set_permissions(&run, fs::Permissions::from_mode(0o700)).unwrap();
    for unit in ["lockbox-rotate.timer", "lockbox-rotate.service"] {
        let out = Command::new("systemd-analyze")
            .arg("--user")
            .env("XDG_RUNTIME_DIR", &run)
            .args(["verify", "--man=no"])
            .arg(dir.path().join(unit))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "systemd-analyze verify {unit}: {}",
            text_of(&out)
        );
        assert_eq!(text_of(&out).trim(), "", "{unit}: a complaint");
    }
    // The check reads the unit: a broken ExecStart is caught.
    fs::write(
        dir.path().join("lockbox-rotate.service"),
        service.replace("/usr/bin/docker-credential-lockbox", "relative/lockbox"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("--user")
        .env("XDG_RUNTIME_DIR", &run)
        .args(["verify", "--man=no"])
        .arg(dir.path().join("lockbox-rotate.service"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a relative ExecStart passed: {}",
        text_of(&out)
    );
}

fn text_of(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}
