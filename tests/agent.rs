//! The unlock agent, driven through the real binary: unlock → protocol through the
//! agent → lock; timeouts; two vaults; pipes a Go client waits on; socket-directory
//! and peer checks; non-dumpability. Each test has its own HOME, DOCKER_CONFIG and
//! XDG_RUNTIME_DIR, so its own agent, which a guard stops at the end.
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_docker-credential-lockbox");
const LOCKED_LINE: &str =
    "lockbox is locked: run 'docker-credential-lockbox unlock' or set LOCKBOX_IDENTITY\n";
const NOT_FOUND_LINE: &str = "credentials not found in native keychain\n";
const PASSPHRASE: &str = "correct horse battery staple";

struct Env {
    dir: tempfile::TempDir,
    vault: Option<PathBuf>,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["home", "docker", "run"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        fs::set_permissions(dir.path().join("run"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(dir.path().join("pass"), format!("{PASSPHRASE}\n")).unwrap();
        Env { dir, vault: None }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn agent_dir(&self) -> PathBuf {
        self.path("run/lockbox")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("LOCKBOX_AGENT_DIR", self.agent_dir())
            .env("LOCKBOX_ARGON2_PARAMS", "1024,1,1");
        if let Some(v) = &self.vault {
            c.env("LOCKBOX_VAULT", v);
        }
        c
    }

    /// Runs with `stdin` and returns the output, bounded in time.
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .cmd(args)
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
        bounded_output(child)
    }

    fn init(&self) {
        let pass = self.path("pass");
        let out = self.run(&["init", "--passphrase-file", pass.to_str().unwrap()], "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn unlock(&self, extra: &[&str]) -> Output {
        let pass = self.path("pass");
        let mut args = vec!["unlock", "--passphrase-file", pass.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.run(&args, "")
    }

    fn store(&self, server: &str, user: &str, secret: &str) {
        let json = serde_json::json!({"ServerURL": server, "Username": user, "Secret": secret});
        let out = self.run(&["store"], &json.to_string());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    fn status_json(&self) -> serde_json::Value {
        let out = self.run(&["status", "--json"], "");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Stop this test's agent, whatever happened.
        let _ = self.vault.take();
        let _ = self
            .cmd(&["lock", "--all"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `Command::output` in a thread, so a helper that leaves a pipe open (as a leaked
/// agent would) fails the test instead of hanging it.
fn bounded_output(child: std::process::Child) -> Output {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the command (or something holding its stdout/stderr) did not finish in 30 s")
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A tool a test needs: in CI its absence fails the test; elsewhere the test says
/// what it skipped.
fn require(cond: bool, what: &str) -> bool {
    if !cond {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "CI needs {what}"
        );
        eprintln!("skipped: {what}");
    }
    cond
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[test]
fn protocol_through_the_agent_then_lock() {
    let env = Env::new();
    env.init();
    env.store("127.0.0.1:5000", "alice", "s3cret&<x>");
    env.store("https://index.docker.io/v1/", "<token>", "idtoken");

    let locked = env.run(&["get"], "127.0.0.1:5000");
    assert_eq!(stdout(&locked), LOCKED_LINE);
    assert_eq!(locked.status.code(), Some(1));

    let out = env.unlock(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("for 1h after its last use, 8h at the latest"),
        "{}",
        stdout(&out)
    );

    let get = env.run(&["get"], "127.0.0.1:5000\n");
    assert_eq!(
        stdout(&get),
        "{\"ServerURL\":\"127.0.0.1:5000\",\"Username\":\"alice\",\"Secret\":\"s3cret\\u0026\\u003cx\\u003e\"}\n"
    );
    assert!(get.status.success());
    assert_eq!(stderr(&get), "");
    let hub = env.run(&["get"], "docker.io");
    assert_eq!(
        stdout(&hub),
        "{\"ServerURL\":\"docker.io\",\"Username\":\"\\u003ctoken\\u003e\",\"Secret\":\"idtoken\"}\n"
    );
    let missing = env.run(&["get"], "nowhere.example");
    assert_eq!(stdout(&missing), NOT_FOUND_LINE);
    assert_eq!(missing.status.code(), Some(1));
    let empty = env.run(&["get"], "  \n");
    assert_eq!(stdout(&empty), "no credentials server URL\n");
    assert_eq!(
        stdout(&env.run(&["list"], "")),
        "{\"127.0.0.1:5000\":\"alice\",\"https://index.docker.io/v1/\":\"\\u003ctoken\\u003e\"}\n"
    );
    // Stores made while unlocked are readable through the agent at once.
    env.store("new.example", "bob", "pw2");
    assert!(stdout(&env.run(&["get"], "new.example")).contains("\"pw2\""));
    assert!(env.run(&["erase"], "new.example").status.success());
    assert_eq!(stdout(&env.run(&["get"], "new.example")), NOT_FOUND_LINE);

    let status = env.status_json();
    assert_eq!(status["unlocked"], true);
    assert_eq!(status["key_source"], "agent");
    assert!(status["agent"]["expires_in_secs"].as_u64().unwrap() > 3500);
    assert!(status["agent"]["timeout_left_secs"].as_u64().unwrap() > 7 * 3600);
    assert_eq!(env.run(&["status", "--quiet"], "").status.code(), Some(0));

    let lock = env.run(&["lock"], "");
    assert!(lock.status.success(), "{}", stderr(&lock));
    let after = env.run(&["get"], "127.0.0.1:5000");
    assert_eq!(
        stdout(&after),
        LOCKED_LINE,
        "locked must never look like not-found"
    );
    assert_eq!(after.status.code(), Some(1));
    // Also on stderr, for the person: Docker CLI 28 discards `get` errors on pull.
    assert_eq!(stderr(&after), LOCKED_LINE);
    assert_eq!(env.run(&["status", "--quiet"], "").status.code(), Some(3));
    assert_eq!(env.status_json()["unlocked"], false);
}

#[test]
fn timeout_expiry_relocks_and_unlock_again_extends() {
    let env = Env::new();
    env.init();
    env.store("h", "u", "p");
    assert!(env.unlock(&["--timeout", "1s"]).status.success());
    let mut relocked = false;
    for _ in 0..50 {
        if stdout(&env.run(&["get"], "h")) == LOCKED_LINE {
            relocked = true;
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(relocked, "the key outlived its 1 s timeout by 5 s");
    // The agent exits when it holds nothing; the next unlock starts a fresh one.
    assert!(env.unlock(&["--timeout", "2s"]).status.success());
    assert!(env.unlock(&["--timeout", "8h"]).status.success());
    let expires = env.status_json()["agent"]["timeout_left_secs"]
        .as_u64()
        .unwrap();
    assert!(expires > 7 * 3600, "unlock again did not extend: {expires}");
    thread::sleep(Duration::from_millis(2500));
    assert!(stdout(&env.run(&["get"], "h")).contains("\"p\""));
}

#[test]
fn bad_timeouts_are_refused() {
    let env = Env::new();
    env.init();
    for t in ["0s", "8days", "soon"] {
        let out = env.unlock(&["--timeout", t]);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(stderr(&out).contains("--timeout"), "{}", stderr(&out));
    }
    assert!(!env.agent_dir().join("agent.sock").exists());
}

#[test]
fn two_vaults_in_one_agent() {
    let mut env = Env::new();
    let a = env.path("a.json");
    let b = env.path("b.json");
    for v in [&a, &b] {
        env.vault = Some(v.clone());
        env.init();
        env.store("h", "u", v.file_name().unwrap().to_str().unwrap());
        assert!(env.unlock(&[]).status.success());
    }
    let pid_b = env.status_json()["agent"]["pid"].clone();
    env.vault = Some(a.clone());
    assert_eq!(
        env.status_json()["agent"]["pid"],
        pid_b,
        "one agent holds both"
    );
    assert!(stdout(&env.run(&["get"], "h")).contains("\"a.json\""));
    assert!(env.run(&["lock"], "").status.success());
    assert_eq!(stdout(&env.run(&["get"], "h")), LOCKED_LINE);
    env.vault = Some(b);
    assert!(stdout(&env.run(&["get"], "h")).contains("\"b.json\""));
}

#[test]
fn output_capture_returns_promptly() {
    // Go's cmd.Output() waits for EOF on stdout; `bounded_output` fails after 30 s if
    // the agent kept a pipe of unlock (or of get/store/list) open.
    let env = Env::new();
    env.init();
    assert!(env.unlock(&["--timeout", "1h"]).status.success());
    env.store("h", "u", "p");
    assert!(env.run(&["get"], "h").status.success());
    assert!(env.run(&["list"], "").status.success());
    // Unlocking again with an agent already running must not leak into it either.
    assert!(env.unlock(&["--timeout", "1h"]).status.success());
}

#[test]
fn agent_inherits_no_descriptor() {
    let env = Env::new();
    env.init();
    assert!(env.unlock(&[]).status.success());
    let pid = env.status_json()["agent"]["pid"].as_u64().unwrap();
    let mut targets = Vec::new();
    for fd in fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let fd = fd.unwrap();
        targets.push(fs::read_link(fd.path()).unwrap().display().to_string());
    }
    for t in &targets {
        assert!(
            t == "/dev/null" || t.starts_with("socket:"),
            "agent holds {t}: {targets:?}"
        );
    }
    // Neither argv nor the environment carries a secret.
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
    for hay in [&cmdline, &environ] {
        let text = String::from_utf8_lossy(hay);
        assert!(!text.contains(PASSPHRASE) && !text.contains("AGE-SECRET-KEY"));
    }
    assert!(environ.is_empty(), "the agent's environment is cleared");
}

#[test]
fn wrong_passphrase_starts_nothing() {
    let env = Env::new();
    env.init();
    env.store("h", "u", "p");
    fs::write(env.path("bad"), "wrong\n").unwrap();
    let bad = env.path("bad");
    let out = env.run(&["unlock", "--passphrase-file", bad.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("wrong passphrase"),
        "{}",
        stderr(&out)
    );
    assert!(!env.agent_dir().join("agent.sock").exists());
    assert_eq!(stdout(&env.run(&["get"], "h")), LOCKED_LINE);
}

#[test]
fn loose_socket_directory_is_refused_not_fixed() {
    let env = Env::new();
    env.init();
    env.store("h", "u", "p");
    fs::create_dir(env.agent_dir()).unwrap();
    fs::set_permissions(env.agent_dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let out = env.unlock(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("refusing the lockbox agent directory"),
        "{}",
        stderr(&out)
    );
    let get = env.run(&["get"], "h");
    assert_eq!(get.status.code(), Some(1));
    assert!(
        stdout(&get).starts_with("refusing the lockbox agent directory"),
        "{}",
        stdout(&get)
    );
    assert_eq!(
        fs::metadata(env.agent_dir()).unwrap().permissions().mode() & 0o777,
        0o755,
        "the directory must be left as it was"
    );
}

#[test]
fn socket_directory_of_another_owner_is_refused() {
    if !require(is_root(), "root, to chown a directory to another user") {
        return;
    }
    let env = Env::new();
    env.init();
    fs::create_dir(env.agent_dir()).unwrap();
    fs::set_permissions(env.agent_dir(), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(env.agent_dir(), Some(65534), Some(65534)).unwrap();
    let out = env.unlock(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("owned by another user"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn stale_socket_is_replaced() {
    let env = Env::new();
    env.init();
    env.store("h", "u", "p");
    fs::create_dir(env.agent_dir()).unwrap();
    fs::set_permissions(env.agent_dir(), fs::Permissions::from_mode(0o700)).unwrap();
    let sock = env.agent_dir().join("agent.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists(), "a stale socket file is left behind");
    // With the stale socket, get is locked (not an error, not a hang).
    assert_eq!(stdout(&env.run(&["get"], "h")), LOCKED_LINE);
    let out = env.unlock(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&env.run(&["get"], "h")).contains("\"p\""));
}

/// Sends one raw frame to a socket as user `nobody` and returns the answer's JSON.
fn raw_request_as_nobody(socket: &Path, json: &str) -> String {
    let script = r#"
use IO::Socket::UNIX;
$SIG{PIPE} = 'IGNORE'; # the agent may answer and close before reading the request
my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect: $!";
my $body = $ARGV[1];
print $s pack("N", length($body)) . $body;
my $len; read($s, $len, 4) == 4 or die "no answer";
my $n = unpack("N", $len); my $ans; read($s, $ans, $n);
print $ans;
"#;
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "perl",
            "-e",
            script,
        ])
        .arg(socket)
        .arg(json)
        .output()
        .unwrap();
    assert!(out.status.success(), "perl client: {}", stderr(&out));
    stdout(&out)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn peer_of_another_uid_is_refused() {
    if !require(
        is_root() && have("setpriv") && have("perl"),
        "root, setpriv and perl",
    ) {
        return;
    }
    let env = Env::new();
    env.init();
    env.store("h", "u", "p");
    assert!(env.unlock(&[]).status.success());
    let public = env.status_json()["public_key"].as_str().unwrap().to_owned();
    // Open the way through the file system so only SO_PEERCRED stands in between.
    for p in [env.dir.path(), &env.path("run"), &env.agent_dir()] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o711)).unwrap();
    }
    let sock = env.agent_dir().join("agent.sock");
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o666)).unwrap();
    let answer = raw_request_as_nobody(
        &sock,
        &r#"{"v":2,"request":"status"}"#.to_owned(),
    );
    assert_eq!(answer, r#"{"error":"forbidden"}"#);
    // The same request from our own uid is answered.
    fs::set_permissions(env.agent_dir(), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(env.status_json()["unlocked"], true);
}

#[test]
fn agent_is_not_dumpable() {
    if !require(
        is_root() && have("setpriv"),
        "root and setpriv, to run the agent as another user",
    ) {
        return;
    }
    // Run init and unlock as `nobody`: a non-dumpable process's /proc files belong
    // to root, so a same-uid process can neither ptrace it nor read its memory.
    let env = Env::new();
    let root = env.dir.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    for entry in ["home", "docker", "run", "pass"] {
        std::os::unix::fs::chown(root.join(entry), Some(65534), Some(65534)).unwrap();
    }
    let as_nobody = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args(args)
            .env_clear()
            .env("HOME", root.join("home"))
            .env("DOCKER_CONFIG", root.join("docker"))
            .env("XDG_RUNTIME_DIR", root.join("run"))
            .env("LOCKBOX_ARGON2_PARAMS", "1024,1,1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        bounded_output(c.spawn().unwrap())
    };
    let pass = root.join("pass");
    let pass = pass.to_str().unwrap();
    let init = as_nobody(&["init", "--passphrase-file", pass]);
    assert!(init.status.success(), "{}", stderr(&init));
    let unlock = as_nobody(&["unlock", "--passphrase-file", pass]);
    assert!(unlock.status.success(), "{}", stderr(&unlock));
    let status: serde_json::Value =
        serde_json::from_slice(&as_nobody(&["status", "--json"]).stdout).unwrap();
    let pid = status["agent"]["pid"].as_u64().unwrap();
    assert_eq!(status["agent"]["non_dumpable"], true);
    let mem_owner = fs::metadata(format!("/proc/{pid}/mem")).unwrap().uid();
    let status_owner = fs::metadata(format!("/proc/{pid}")).unwrap().uid();
    assert_eq!(status_owner, 65534, "the agent runs as nobody");
    assert_eq!(
        mem_owner, 0,
        "a dumpable process's /proc/PID/mem belongs to its user"
    );
    // Contrast: an ordinary process of the same user is dumpable.
    let mut sleeper = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sleep",
            "5",
        ])
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(200));
    let plain_owner = fs::metadata(format!("/proc/{}/mem", sleeper.id()))
        .unwrap()
        .uid();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(plain_owner, 65534);
    let lock = as_nobody(&["lock", "--all"]);
    assert!(lock.status.success());
}
