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
mod common;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use age::secrecy::ExposeSecret;
use common::require_tool;
use lockbox::crypto::{Recipient, VaultKey};
use lockbox::identities::{AgeSlot, NeverAsk, PluginCallbacks, open_age_slots, parse};
use lockbox::identity_cmd::IdentityCommand;

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
    run_ok(Command::new("/usr/libexec/tangd-keygen").arg(&db));
    for _ in 0..10 {
        let port = free_port();
        let mut child = Command::new("socat")
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
            .arg(format!("EXEC:/usr/libexec/tangd {}", db.display()))
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
            Command::new("systemd-creds")
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
        "systemd-creds decrypt {device} --name=lockbox-identity {} -",
        shell_quote(&cred)
    ))
    .unwrap();

    // Another TPM (a copied disk or VM image on other hardware) cannot unseal it.
    drop(tpm);
    let other = swtpm(f.dir.path());
    let e = f
        .open_with(&format!(
            "systemd-creds decrypt --tpm2-device=swtpm:host=127.0.0.1,port={} --name=lockbox-identity {} -",
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
    assert!(
        Path::new("/usr/libexec/tangd").exists()
            || std::env::var_os("CI").is_none_or(|v| v.is_empty()),
        "CI is set and tangd is missing: install the Debian package `tang`"
    );
    if !Path::new("/usr/libexec/tangd").exists() {
        eprintln!("skipped: tangd not installed (Debian package `tang`)");
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
