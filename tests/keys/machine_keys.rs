//! Keys a server has, with the real parts: an age identity sealed by
//! `systemd-creds encrypt --with-key=host`, by `--with-key=tpm2` against a software TPM
//! (`swtpm` on 127.0.0.1, started and stopped by PID, a fresh one per test: without a
//! resource manager swtpm runs out of session slots after a few calls), and by clevis
//! to a `tang` server (Debian's tang 11 has no listener of its own: it runs behind
//! `socat` on 127.0.0.1). Each is read back through the identity command
//! (`src/identity_cmd.rs`), parsed (`src/identities.rs`) and must open the vault's
//! slot; each failure must be one clear line naming the tool's own complaint.
//!
//! Also as a non-root user (`setpriv` to uid 65534): systemd 252 lets only root
//! decrypt a host-key credential, which is why a build user's unattended path is a
//! system unit with `LoadCredentialEncrypted=` (docs), and this pins the failure it
//! meets otherwise.
//!
//! And that path end to end (`uid_rule_*`, serial with the other tests that make
//! users): after a "reboot", a `useradd` build user's foreground agent, started with
//! the credential systemd would decrypt for it (host key, or TPM2 on swtpm), answers
//! the user's `get` and a skopeo pull in another environment with nobody typing; it
//! keeps answering across a rotation, fails clearly when the credential is removed or
//! does not parse, and stops cleanly on SIGTERM.
use crate::common;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use age::secrecy::ExposeSecret;
use common::require_tool;
use common::users::TestUser;
use lockbox::identity::command::IdentityCommand;
use lockbox::identity::{
    AgeSlot, NeverAsk, PluginCallbacks, WrapToRecipient, open_age_slots, parse,
};
use lockbox::vault::crypto::{Recipient, VaultKey};

/// A vault key with one age slot, and the identity text that opens it.
struct Fixture {
    key: VaultKey,
    recipient: String,
    wrapped: Vec<u8>,
    identity: String,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let id = age::x25519::Identity::generate();
        let key = VaultKey::generate();
        let recipient = id.to_public().to_string();
        let wrapped = key
            .wrap_to_recipient(&Recipient::X25519(id.to_public()))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        Fixture {
            key,
            recipient,
            wrapped,
            identity: format!("{}\n", id.to_string().expose_secret()),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The plaintext identity, written for a sealing tool to read, then removed.
    fn with_plain<T>(&self, f: impl FnOnce(&Path) -> T) -> T {
        let plain = self.path("identity.txt");
        fs::write(&plain, &self.identity).unwrap();
        let out = f(&plain);
        fs::remove_file(&plain).unwrap();
        out
    }

    /// Runs `command` as an identity command and opens the slot with its output.
    fn open_with(&self, command: &str) -> Result<(), String> {
        let out = IdentityCommand::new(command, "test")
            .run_for_identity()
            .map_err(|(e, _)| e.message())?;
        let ids = parse(&out.stdout, "the identity command", &NeverAsk).map_err(|e| e.message())?;
        let slots = [AgeSlot {
            recipient: &self.recipient,
            wrapped: &self.wrapped,
        }];
        let key = open_age_slots(
            &slots,
            &ids,
            &self.key.public(),
            &PluginCallbacks::never(),
            None,
        )
        .map_err(|e| e.message())?
        .ok_or("no slot opened")?;
        assert_eq!(key.public().to_string(), self.key.public().to_string());
        Ok(())
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Root is needed (systemd-creds' host key, useradd-free uid switches). Under CI a
/// missing precondition fails; elsewhere the test says so and returns.
fn require_root(why: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none_or(|v| v.is_empty()),
        "CI is set and this test needs root: {why}"
    );
    eprintln!("skipped: needs root ({why})");
    false
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server process on 127.0.0.1, stopped by PID when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port the OS says is free now (bound to port 0, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits, bounded, until something listens on `port`.
fn wait_listening(child: &mut Child, port: u16) -> bool {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// A fresh software TPM (its own state directory) on two free ports.
fn swtpm(dir: &Path) -> Server {
    for _ in 0..10 {
        let port = free_port();
        if TcpListener::bind(("127.0.0.1", port + 1)).is_err() {
            continue; // the control port is taken
        }
        let state = dir.join(format!("tpm-{port}"));
        fs::create_dir_all(&state).unwrap();
        let mut child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start swtpm");
        if wait_listening(&mut child, port) {
            return Server { child, port };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("swtpm did not start on any port tried");
}

/// A tang server (fresh keys in `dir`) behind socat on a free port.
fn tang(dir: &Path) -> Server {
    let db = dir.join("tang-db");
    fs::create_dir_all(&db).unwrap();
    run_ok(Command::new(common::test_tool_file("/usr/libexec/tangd-keygen")).arg(&db));
    let tangd = common::test_tool_file("/usr/libexec/tangd");
    for _ in 0..10 {
        let port = free_port();
        let mut child = Command::new("socat")
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
            .arg(format!("EXEC:{} {}", tangd.display(), db.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat");
        if wait_listening(&mut child, port) {
            return Server { child, port };
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("socat/tangd did not start on any port tried");
}

/// `systemd-creds`, with the TPM2 libraries scripts/test.sh unpacked privately (if it
/// did) on `LD_LIBRARY_PATH`: it loads them only for `--tpm2-device`.
fn systemd_creds() -> Command {
    let mut c = Command::new("systemd-creds");
    if let Some(lib) = common::test_tools_lib() {
        c.env("LD_LIBRARY_PATH", lib);
    }
    c
}

/// [`systemd_creds`] for an identity command line.
fn systemd_creds_line() -> String {
    match common::test_tools_lib() {
        Some(lib) => format!("env LD_LIBRARY_PATH={} systemd-creds", shell_quote(&lib)),
        None => "systemd-creds".to_owned(),
    }
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

#[test]
fn systemd_creds_host_key_credential_opens_the_vault() {
    if !require_tool("systemd-creds", "systemd") || !require_root("systemd-creds --with-key=host") {
        return;
    }
    let f = Fixture::new();
    let cred = f.path("lockbox-identity.cred");
    f.with_plain(|plain| {
        run_ok(
            Command::new("systemd-creds")
                .args(["encrypt", "--with-key=host", "--name=lockbox-identity"])
                .arg(plain)
                .arg(&cred),
        )
    });
    assert!(
        !fs::read(&cred)
            .unwrap()
            .windows(14)
            .any(|w| w == b"AGE-SECRET-KEY")
    );
    f.open_with(&format!(
        "systemd-creds decrypt --name=lockbox-identity {} -",
        shell_quote(&cred)
    ))
    .unwrap();

    // A credential sealed under another name is refused by systemd-creds: one line
    // with its own complaint, not the not-found text.
    let e = f
        .open_with(&format!(
            "systemd-creds decrypt --name=other {} -",
            shell_quote(&cred)
        ))
        .err()
        .unwrap();
    assert!(
        e.contains("the identity command (test)") && e.contains("exited with status"),
        "{e}"
    );
    assert!(
        !e.contains("credentials not found") && !e.contains('\n'),
        "{e}"
    );
}

#[test]
fn systemd_creds_host_key_credential_as_a_build_user_fails_clearly() {
    if !require_tool("systemd-creds", "systemd")
        || !require_tool("setpriv", "util-linux")
        || !require_root("to seal with the host key and switch to uid 65534")
    {
        return;
    }
    let f = Fixture::new();
    let cred = f.path("lockbox-identity.cred");
    f.with_plain(|plain| {
        run_ok(
            Command::new("systemd-creds")
                .args(["encrypt", "--with-key=host", "--name=lockbox-identity"])
                .arg(plain)
                .arg(&cred),
        )
    });
    fs::set_permissions(&cred, fs::Permissions::from_mode(0o644)).unwrap();
    // systemd 252: only root can read the host key, so an unprivileged user cannot
    // decrypt; the docs send build users to a system unit's LoadCredentialEncrypted=.
    let e = f
        .open_with(&format!(
            "setpriv --reuid=65534 --regid=65534 --clear-groups systemd-creds decrypt --name=lockbox-identity {} -",
            shell_quote(&cred)
        ))
        .err()
        .unwrap();
    assert!(
        e.contains("exited with status") && e.contains("Permission denied"),
        "{e}"
    );
    assert!(
        !e.contains("credentials not found") && !e.contains('\n'),
        "{e}"
    );
}

#[test]
fn systemd_creds_tpm2_credential_opens_the_vault_with_swtpm() {
    if !require_tool("systemd-creds", "systemd") || !require_tool("swtpm", "swtpm") {
        return;
    }
    let f = Fixture::new();
    let tpm = swtpm(f.dir.path());
    let device = format!("--tpm2-device=swtpm:host=127.0.0.1,port={}", tpm.port);
    let cred = f.path("lockbox-identity.cred");
    f.with_plain(|plain| {
        run_ok(
            systemd_creds()
                .args([
                    "encrypt",
                    "--with-key=tpm2",
                    &device,
                    "--name=lockbox-identity",
                ])
                .arg(plain)
                .arg(&cred),
        )
    });
    f.open_with(&format!(
        "{} decrypt {device} --name=lockbox-identity {} -",
        systemd_creds_line(),
        shell_quote(&cred)
    ))
    .unwrap();

    // Another TPM (a copied disk or VM image on other hardware) cannot unseal it.
    drop(tpm);
    let other = swtpm(f.dir.path());
    let e = f
        .open_with(&format!(
            "{} decrypt --tpm2-device=swtpm:host=127.0.0.1,port={} --name=lockbox-identity {} -",
            systemd_creds_line(),
            other.port,
            shell_quote(&cred)
        ))
        .err()
        .unwrap();
    assert!(e.contains("exited with status"), "{e}");
    assert!(
        !e.contains("credentials not found") && !e.contains('\n'),
        "{e}"
    );
}

#[test]
fn clevis_tang_sealed_identity_opens_the_vault_while_tang_answers() {
    if !require_tool("clevis", "clevis")
        || !require_tool("socat", "socat")
        || !require_tool("jose", "jose")
    {
        return;
    }
    // scripts/test.sh unpacks tangd privately (Debian's `tang` would enable tangd.socket).
    let tangd = common::test_tool_file("/usr/libexec/tangd");
    if !common::require(
        tangd.exists(),
        "tangd",
        "it with scripts/test.sh (it unpacks Debian's tang-common privately)",
    ) {
        return;
    }
    let f = Fixture::new();
    let server = tang(f.dir.path());
    let jwe = f.path("identity.jwe");
    f.with_plain(|plain| {
        let out = Command::new("clevis")
            .args(["encrypt", "tang"])
            .arg(format!(r#"{{"url":"http://127.0.0.1:{}"}}"#, server.port))
            .arg("-y")
            .stdin(fs::File::open(plain).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::write(&jwe, out.stdout).unwrap();
    });
    let command = format!("clevis decrypt < {}", shell_quote(&jwe));
    f.open_with(&command).unwrap();

    // Off the network (tang stopped): one clear line with clevis's own complaint.
    drop(server);
    let e = f.open_with(&command).err().unwrap();
    assert!(
        e.contains("exited with status") && e.contains("communicating with server"),
        "{e}"
    );
    assert!(
        !e.contains("credentials not found") && !e.contains('\n'),
        "{e}"
    );
}

#[test]
fn identity_command_printing_garbage_is_a_clear_error() {
    let f = Fixture::new();
    let e = f.open_with("echo 'not a key'").err().unwrap();
    assert!(e.contains("line 1") && !e.contains("not a key"), "{e}");
    // An unencrypted SSH key is accepted as output too, and a wrong key opens nothing.
    let e = f
        .open_with(&format!(
            "echo {}",
            age::x25519::Identity::generate()
                .to_string()
                .expose_secret()
        ))
        .err()
        .unwrap();
    assert_eq!(e, "no slot opened");
}

/// The build user's unattended path, as far as it can run without systemd as PID 1:
/// root seals the identity to the host key; what systemd does for a unit with
/// `LoadCredentialEncrypted=lockbox-identity:…` (decrypt into a directory only the
/// unit's user can read, and set `CREDENTIALS_DIRECTORY`) is done here by root with
/// `systemd-creds decrypt`; then `get` runs as uid 65534 (not root, its own files 0600)
/// and opens the vault from the credential, with nobody typing. A credential that is
/// missing from the directory is passed over, and `get` then fails in one line (never
/// the not-found text).
#[test]
fn systemd_credential_directory_opens_the_vault_for_a_build_user() {
    if !require_tool("systemd-creds", "systemd")
        || !require_tool("setpriv", "util-linux")
        || !require_root("to seal with the host key and switch to uid 65534")
    {
        return;
    }
    const UID: u32 = 65534;
    let f = Fixture::new();
    let root = f.dir.path();
    let home = root.join("home");
    let creds = root.join("credentials");
    fs::create_dir_all(home.join(".docker")).unwrap();
    fs::create_dir_all(&creds).unwrap();
    let bin = env!("CARGO_BIN_EXE_docker-credential-lockbox");
    let as_user = |args: &[&str], stdin: &str, creds_dir: Option<&Path>| {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={UID}"),
            &format!("--regid={UID}"),
            "--clear-groups",
            bin,
        ])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", root.join("run"));
        if let Some(d) = creds_dir {
            c.env("CREDENTIALS_DIRECTORY", d);
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
        }
        common::output_within(child, std::time::Duration::from_secs(120))
    };
    for d in [&home, &home.join(".docker"), &creds] {
        std::os::unix::fs::chown(d, Some(UID), Some(UID)).unwrap();
    }
    fs::create_dir_all(root.join("run")).unwrap();
    std::os::unix::fs::chown(root.join("run"), Some(UID), Some(UID)).unwrap();
    fs::set_permissions(root.join("run"), fs::Permissions::from_mode(0o700)).unwrap();

    // The build user makes the vault for the machine's identity and stores a login.
    let out = as_user(&["init", "--recipient", &f.recipient], "", None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let login = r#"{"ServerURL":"build.example","Username":"ci","Secret":"credential-secret-7"}"#;
    let out = as_user(&["store"], login, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Root seals the identity; "systemd" decrypts it for the unit.
    let cred = f.path("lockbox-identity.cred");
    f.with_plain(|plain| {
        run_ok(
            Command::new("systemd-creds")
                .args(["encrypt", "--with-key=host", "--name=lockbox-identity"])
                .arg(plain)
                .arg(&cred),
        )
    });
    let target = creds.join("lockbox-identity");
    run_ok(
        Command::new("systemd-creds")
            .args(["decrypt", "--name=lockbox-identity"])
            .arg(&cred)
            .arg(&target),
    );
    std::os::unix::fs::chown(&target, Some(UID), Some(UID)).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o400)).unwrap();

    let out = as_user(&["get"], "build.example", Some(&creds));
    let stdout = String::from_utf8_lossy(&out.stdout);

    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("credential-secret-7"), "{stdout}");

    // Another unit (no such credential in its directory): locked, not not-found.
    let empty = root.join("other-unit");
    fs::create_dir_all(&empty).unwrap();
    let out = as_user(&["get"], "build.example", Some(&empty));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(!stdout.contains("credentials not found"), "{stdout}");
}

// ---------------------------------------------------------------------------------
// The reboot scenario: the foreground agent started with a systemd credential serves
// a NON-ROOT build user's vault with nobody typing (docs/BUILD_SERVER.md, section 5).
// These create users (`useradd`) and use their real per-uid agent directories, so they
// run in the `uid-rule` serial group (`.config/nextest.toml`, tests named `uid_rule_*`).
// ---------------------------------------------------------------------------------

const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const REG_USER: &str = "builder";
const REG_PASSWORD: &str = "reg-pass-9f3c2a71";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A build user made for one test (`common::users`: `useradd`, home in a temp dir),
/// removed with its agent directory when dropped.
struct BuildUser(TestUser);

impl std::ops::Deref for BuildUser {
    type Target = TestUser;
    fn deref(&self) -> &TestUser {
        &self.0
    }
}

impl BuildUser {
    fn new(tag: &str) -> BuildUser {
        BuildUser(TestUser::new("lbc", tag))
    }

    fn socket(&self) -> PathBuf {
        self.agent_dir().join("agent.sock")
    }

    /// `program` as this user with `env -i` and exactly PATH, HOME and `vars`: what
    /// cron or a runner service gives a build (no CREDENTIALS_DIRECTORY).
    fn cmd(&self, vars: &[(&str, &str)], program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .args(["env", "-i"])
            .arg(format!("HOME={}", self.home().display()));
        if !vars.iter().any(|(k, _)| *k == "PATH") {
            c.arg(format!("PATH={SYSTEM_PATH}"));
        }
        for (k, v) in vars {
            c.arg(format!("{k}={v}"));
        }
        c.arg(program).args(args);
        c
    }

    fn lockbox(&self, args: &[&str]) -> Command {
        self.cmd(&[], common::BIN, args)
    }

    fn run(&self, mut c: Command, stdin: &str) -> std::process::Output {
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
        }
        common::output_within(child, Duration::from_secs(120))
    }

    fn ok(&self, c: Command, stdin: &str) -> std::process::Output {
        let out = self.run(c, stdin);
        assert!(
            out.status.success(),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    /// The unit's `ExecStart=` (`agent --foreground`) the way systemd runs the template
    /// for this user: its uid and groups, an environment of PATH, HOME, USER, LOGNAME,
    /// SHELL, and CREDENTIALS_DIRECTORY from `LoadCredentialEncrypted=`. Waits
    /// (bounded) for its socket.
    fn start_agent(&self, credentials: &Path) -> AgentProcess {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .args(["env", "-i"])
            .arg(format!("PATH={SYSTEM_PATH}"))
            .arg(format!("HOME={}", self.home().display()))
            .arg(format!("USER={}", self.name))
            .arg(format!("LOGNAME={}", self.name))
            .arg("SHELL=/bin/sh")
            .arg(format!("CREDENTIALS_DIRECTORY={}", credentials.display()))
            .args([common::BIN, "agent", "--foreground"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        let mut agent = AgentProcess { child: Some(child) };
        for _ in 0..200 {
            if self.socket().exists() {
                return agent;
            }
            if let Some(Ok(Some(_))) = agent.child.as_mut().map(|c| c.try_wait()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = agent.stop();
        panic!("the agent did not bind its socket: {}", text(&out.stderr));
    }
}

/// The foreground agent, stopped by PID (SIGTERM, as `systemctl stop` does) at the
/// latest when dropped.
struct AgentProcess {
    child: Option<Child>,
}

impl AgentProcess {
    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, then its exit status and log (bounded).
    fn stop(&mut self) -> std::process::Output {
        let child = self.child.take().unwrap();
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        );
        common::output_within(child, Duration::from_secs(20))
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// How the test seals the identity: `--with-key=host`, or `--with-key=tpm2` on swtpm.
enum Seal {
    Host,
    Tpm2(Server),
}

impl Seal {
    fn args(&self, encrypt: bool) -> Vec<String> {
        match self {
            Seal::Host if encrypt => vec!["--with-key=host".into()],
            Seal::Host => vec![],
            Seal::Tpm2(tpm) => {
                let device = format!("--tpm2-device=swtpm:host=127.0.0.1,port={}", tpm.port);
                if encrypt {
                    vec!["--with-key=tpm2".into(), device]
                } else {
                    vec![device]
                }
            }
        }
    }
}

/// skopeo as the build user, with an auth file naming lockbox in `credHelpers`
/// (containers/image ignores `credsStore`) and the helper on its PATH.
fn skopeo_as(u: &BuildUser, server: &str, args: &[&str]) -> std::process::Output {
    let bin = u.root.path().join("bin");
    if !bin.exists() {
        fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(common::BIN, bin.join("docker-credential-lockbox")).unwrap();
        let auth = u.home().join("auth.json");
        fs::write(
            &auth,
            serde_json::json!({ "credHelpers": { server: "lockbox" } }).to_string(),
        )
        .unwrap();
        let policy = u.home().join("policy.json");
        fs::write(
            &policy,
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        u.chown(&auth);
        u.chown(&policy);
    }
    let path = format!("{}:{SYSTEM_PATH}", bin.display());
    let auth = u.home().join("auth.json").display().to_string();
    let policy = u.home().join("policy.json").display().to_string();
    let mut all = vec!["--policy", &policy];
    all.extend_from_slice(args);
    u.run(
        u.cmd(
            &[("PATH", &path), ("REGISTRY_AUTH_FILE", &auth)],
            "skopeo",
            &all,
        ),
        "",
    )
}

/// After a reboot: no agent, nothing decrypted; the sealed credential in root's
/// credstore. Then what systemd does at the unit's start, the agent, and the build.
fn credential_agent_after_a_reboot(seal: Seal) {
    use common::clients::{Registry, docker_archive};
    let u = BuildUser::new("c");
    let home = u.home().display().to_string();
    let pass = u.home().join("pass");
    fs::write(&pass, "a person's passphrase\n").unwrap();
    u.chown(&pass);
    let pass = pass.display().to_string();
    let registry = Registry::start(REG_USER, REG_PASSWORD);
    let server = registry.address();

    // Root pushes an image for the build to pull (its own credentials, argv is fine
    // for a test registry).
    let (archive, _) = docker_archive("ci/base:1", "hello.txt", b"pulled through the agent\n");
    let archive_path = u.root.path().join("image.tar");
    fs::write(&archive_path, archive).unwrap();
    let remote = format!("docker://{server}/ci/base:1");
    let policy = u.root.path().join("root-policy.json");
    fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    run_ok(
        Command::new("skopeo")
            .env_clear()
            .env("PATH", common::test_path())
            .arg("--policy")
            .arg(&policy)
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("--dest-creds={REG_USER}:{REG_PASSWORD}"))
            .arg(format!("docker-archive:{}", archive_path.display()))
            .arg(&remote)
            .env("HOME", u.root.path()),
    );

    // The build user's vault: a person's passphrase slot and the registry login.
    u.ok(
        u.cmd(
            &[("LOCKBOX_ARGON2_PARAMS", common::FAST_KDF)],
            common::BIN,
            &["init", "--passphrase-file", &pass],
        ),
        "",
    );
    u.ok(
        u.lockbox(&["store"]),
        &common::store_json(&server, REG_USER, REG_PASSWORD),
    );

    // The machine's identity (age-keygen, in a directory only root can enter), added
    // as a slot of the build user's vault.
    let secret_dir = tempfile::tempdir().unwrap();
    let id_file = secret_dir.path().join("lockbox-identity.txt");
    run_ok(Command::new("age-keygen").arg("-o").arg(&id_file));
    let recipient = text(
        &Command::new("age-keygen")
            .arg("-y")
            .arg(&id_file)
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_owned();
    u.ok(
        u.lockbox(&[
            "recipients",
            "add",
            &recipient,
            "--label",
            "build-01",
            "--passphrase-file",
            &pass,
        ]),
        "",
    );
    // Root seals it (`/etc/credstore.encrypted/lockbox-identity` on a real host); the
    // plaintext is removed.
    let sealed = secret_dir.path().join("lockbox-identity.cred");
    let mut encrypt = systemd_creds();
    encrypt
        .arg("encrypt")
        .args(seal.args(true))
        .arg("--name=lockbox-identity")
        .arg(&id_file)
        .arg(&sealed);
    run_ok(&mut encrypt);
    fs::remove_file(&id_file).unwrap();
    assert!(!common::contains(
        &fs::read(&sealed).unwrap(),
        b"AGE-SECRET-KEY"
    ));

    // The reboot: nothing of the user runs, nothing is decrypted anywhere.
    assert!(!u.socket().exists());
    let locked = u.run(u.lockbox(&["get"]), &server);
    assert_eq!(text(&locked.stdout).lines().next(), Some(LOCKED_LINE));

    // What systemd does at the unit's start for `LoadCredentialEncrypted=
    // lockbox-identity:…`: as root, decrypt into a fresh directory that only the unit's
    // user (and root) can read, and set CREDENTIALS_DIRECTORY for the unit's process.
    // systemd is not PID 1 in the test machine, so `systemd-creds decrypt` (the same
    // decryption, with the same host key or TPM) stands in for it. systemd makes
    // /run/credentials/UNIT root's with an ACL that lets the unit's user read, or
    // chowns it to that user where ACLs are unavailable; this is the chown form: the
    // directory 0700 and the file 0400, owned by the build user, nothing for others.
    let creds = u.root.path().join("credentials/lockbox-agent@c.service");
    fs::create_dir_all(&creds).unwrap();
    fs::set_permissions(&creds, fs::Permissions::from_mode(0o700)).unwrap();
    u.chown(&creds);
    let cred_file = creds.join("lockbox-identity");
    let mut decrypt = systemd_creds();
    decrypt
        .arg("decrypt")
        .args(seal.args(false))
        .arg("--name=lockbox-identity")
        .arg(&sealed)
        .arg(&cred_file);
    run_ok(&mut decrypt);
    u.chown(&cred_file);
    fs::set_permissions(&cred_file, fs::Permissions::from_mode(0o400)).unwrap();
    drop(seal); // a TPM is not needed after the unit started

    let mut agent = u.start_agent(&creds);

    // The build, in another environment (env -i: no CREDENTIALS_DIRECTORY, no key
    // variable), with nobody typing: the agent answers.
    let out = u.ok(u.lockbox(&["get"]), &server);
    assert!(
        text(&out.stdout).contains(REG_PASSWORD),
        "{}",
        text(&out.stdout)
    );
    // A real client: skopeo pulls the image with the credentials through lockbox.
    let oci = u.home().join("pulled");
    let pulled = skopeo_as(
        &u,
        &server,
        &[
            "copy",
            "--src-tls-verify=false",
            &remote,
            &format!("oci:{}:base", oci.display()),
        ],
    );
    assert!(
        pulled.status.success(),
        "skopeo pull as the build user: {}{}\nregistry log: {}",
        text(&pulled.stdout),
        text(&pulled.stderr),
        registry.log()
    );
    assert!(oci.join("index.json").exists());

    // status says where the key comes from; the agent holds none.
    let st = u.ok(u.lockbox(&["status", "--json"]), "");
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["unlocked"], true, "{st}");
    assert_eq!(st["agent"]["opens_from_credential"], true, "{st}");
    assert_eq!(st["agent"]["vaults"], serde_json::json!([]), "{st}");
    let st = u.ok(u.lockbox(&["status"]), "");
    assert!(
        text(&st.stdout).contains("agent: opens from the systemd credential"),
        "{}",
        text(&st.stdout)
    );

    // Keys `unlock` hands over work as before, for another vault too, beside it.
    let other_vault = u.home().join("release-vault.json").display().to_string();
    let other = [("LOCKBOX_VAULT", other_vault.as_str())];
    u.ok(
        u.cmd(
            &[other[0], ("LOCKBOX_ARGON2_PARAMS", common::FAST_KDF)],
            common::BIN,
            &["init", "--passphrase-file", &pass],
        ),
        "",
    );
    u.ok(
        u.cmd(&other, common::BIN, &["store"]),
        &common::store_json("release.example", "rel", "release-secret-5d1e"),
    );
    let locked = u.run(u.cmd(&other, common::BIN, &["get"]), "release.example");
    assert_eq!(text(&locked.stdout).lines().next(), Some(LOCKED_LINE));
    u.ok(
        u.cmd(&other, common::BIN, &["unlock", "--passphrase-file", &pass]),
        "",
    );
    let out = u.ok(u.cmd(&other, common::BIN, &["get"]), "release.example");
    assert!(text(&out.stdout).contains("release-secret-5d1e"));
    let out = u.ok(u.lockbox(&["get"]), &server);
    assert!(text(&out.stdout).contains(REG_PASSWORD));
    u.ok(u.cmd(&other, common::BIN, &["lock"]), "");

    // lock cannot lock it, and says what to do.
    let out = u.run(u.lockbox(&["lock"]), "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("systemctl stop \"lockbox-agent@$(id -un)\""),
        "{}",
        text(&out.stderr)
    );
    u.ok(u.lockbox(&["get"]), &server);

    // Rotation: a slot added, then another removed (a new vault key): the agent opens
    // the rotated vault at once, no restart.
    let before = fs::read_to_string(u.home().join(".docker/lockbox/vault.json")).unwrap();
    let other = age::x25519::Identity::generate().to_public().to_string();
    u.ok(
        u.lockbox(&[
            "recipients",
            "add",
            &other,
            "--label",
            "laptop",
            "--passphrase-file",
            &pass,
        ]),
        "",
    );
    u.ok(
        u.lockbox(&["recipients", "remove", "laptop", "--passphrase-file", &pass]),
        "",
    );
    let after = fs::read_to_string(u.home().join(".docker/lockbox/vault.json")).unwrap();
    let public =
        |v: &str| serde_json::from_str::<serde_json::Value>(v).unwrap()["public_key"].clone();
    assert_ne!(
        public(&before),
        public(&after),
        "recipients remove rotates the key"
    );
    let out = u.ok(u.lockbox(&["get"]), &server);
    assert!(text(&out.stdout).contains(REG_PASSWORD));

    // The credential gone: a clear error naming it, one line, never not-found or locked.
    fs::remove_file(&cred_file).unwrap();
    let out = u.run(u.lockbox(&["get"]), &server);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("systemd credential") && stdout.contains("the credential file is gone"),
        "{stdout}"
    );
    assert!(!stdout.contains("credentials not found") && !stdout.contains("is locked"));
    let st = u.run(u.lockbox(&["status"]), "");
    assert_eq!(st.status.code(), Some(3), "{}", text(&st.stdout));
    assert!(
        text(&st.stdout).contains(
            "unlocked:   no — the lockbox agent serves this vault from its systemd credential"
        ),
        "{}",
        text(&st.stdout)
    );

    // systemctl stop: SIGTERM, exit 0, socket gone; the log names no secret.
    assert!(agent.pid() > 0);
    let out = agent.stop();
    let log = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(!u.socket().exists());
    assert!(
        log.contains(&format!(
            "serves {home}/.docker/lockbox/vault.json from the systemd credential"
        )),
        "{log}"
    );
    assert!(
        !log.contains(REG_PASSWORD) && !log.contains("AGE-SECRET-KEY-1Q"),
        "{log}"
    );

    // A credential that does not parse: one line at start, the agent still serves keys
    // `unlock` hands over, and `get` of its vault without one is a clear error.
    fs::write(&cred_file, "not an identity\n").unwrap();
    u.chown(&cred_file);
    let mut agent = u.start_agent(&creds);
    let out = u.run(u.lockbox(&["get"]), &server);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("the credential is not an age identity"),
        "{stdout}"
    );
    assert!(!stdout.contains("credentials not found"), "{stdout}");
    u.ok(u.lockbox(&["unlock", "--passphrase-file", &pass]), "");
    u.ok(u.lockbox(&["get"]), &server);
    let out = agent.stop();
    let log = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("the systemd credential does not open"))
        .collect();
    assert_eq!(complaints.len(), 1, "one line, not one per get: {log}");
    assert!(
        !log.contains("not an identity"),
        "the credential's text is not logged: {log}"
    );
    drop(registry);
}

/// The lines a locked `get` prints first.
const LOCKED_LINE: &str =
    "lockbox is locked: run 'docker-credential-lockbox unlock' or set LOCKBOX_IDENTITY";

fn require_reboot_tools() -> bool {
    common::require_tools(&[
        ("systemd-creds", "systemd"),
        ("setpriv", "util-linux"),
        ("useradd", "passwd"),
        ("flock", "util-linux"),
        ("age-keygen", "age"),
        ("skopeo", "skopeo"),
        ("docker-registry", "docker-registry"),
        ("htpasswd", "apache2-utils"),
    ]) && require_root("to seal credentials and create a build user")
}

#[test]
fn uid_rule_host_sealed_credential_serves_the_build_user_after_a_reboot() {
    if !require_reboot_tools() {
        return;
    }
    credential_agent_after_a_reboot(Seal::Host);
}

#[test]
fn uid_rule_tpm2_sealed_credential_serves_the_build_user_after_a_reboot() {
    if !require_reboot_tools() || !require_tool("swtpm", "swtpm") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tpm = swtpm(dir.path());
    credential_agent_after_a_reboot(Seal::Tpm2(tpm));
}
