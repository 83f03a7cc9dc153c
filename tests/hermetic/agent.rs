//! The unlock agent, driven through the real binary: unlock → protocol through the
//! agent → lock; timeouts; two vaults; pipes a Go client waits on; socket-directory
//! and peer checks; non-dumpability. Each test has its own HOME, DOCKER_CONFIG and
//! XDG_RUNTIME_DIR and agent directory (a `common::World`), so its own agent, which a
//! guard stops at the end.
use crate::common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{BIN, FAST_KDF, World};
const LOCKED_LINE: &str =
    "lockbox is locked: run 'docker-credential-lockbox unlock' or set LOCKBOX_IDENTITY\n";
const NOT_FOUND_LINE: &str = "credentials not found in native keychain\n";
const PASSPHRASE: &str = "correct horse battery staple";

struct Env {
    world: World,
    vault: Option<PathBuf>,
}

impl Env {
    fn new() -> Self {
        let world = World::new();
        fs::write(world.path("pass"), format!("{PASSPHRASE}\n")).unwrap();
        Env { world, vault: None }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.world.path(p)
    }

    fn agent_dir(&self) -> PathBuf {
        self.world.agent_dir()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.world.command(BIN);
        c.args(args).env("LOCKBOX_ARGON2_PARAMS", FAST_KDF);
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
    common::output_within(child, Duration::from_secs(30))
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
    common::require(cond, what, "it (see scripts/test.sh)")
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
    // Open the way through the file system so only SO_PEERCRED stands in between.
    for p in [env.world.root(), &env.path("run"), &env.agent_dir()] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o711)).unwrap();
    }
    let sock = env.agent_dir().join("agent.sock");
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o666)).unwrap();
    let answer = raw_request_as_nobody(&sock, r#"{"v":2,"request":"status"}"#);
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
    let root = env.world.root();
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
            .env("LOCKBOX_AGENT_DIR", root.join("run/lockbox"))
            .env("LOCKBOX_ARGON2_PARAMS", FAST_KDF)
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

/// Polls `cond` every 100 ms, at most `limit`; whether it became true.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn idle_timeout_slides_with_use_and_never_past_the_absolute_one() {
    let env = Env::new();
    env.init();
    env.store("h", "u", "p");
    assert!(
        env.unlock(&["--idle", "3s", "--timeout", "1h"])
            .status
            .success()
    );
    // Used every 300 ms for 6 s: twice the idle timeout, and still unlocked.
    for _ in 0..20 {
        assert!(
            stdout(&env.run(&["get"], "h")).contains("\"p\""),
            "the idle deadline did not move on with use"
        );
        thread::sleep(Duration::from_millis(300));
    }
    // Left alone (status does not count as use), it goes at its idle deadline, long
    // before the absolute one.
    assert!(eventually(
        Duration::from_secs(15),
        || env.status_json()["unlocked"] == false
    ));
    assert_eq!(stdout(&env.run(&["get"], "h")), LOCKED_LINE);
    // Used all the time, it still goes at the absolute deadline.
    assert!(
        env.unlock(&["--idle", "1h", "--timeout", "2s"])
            .status
            .success()
    );
    assert!(eventually(Duration::from_secs(15), || stdout(
        &env.run(&["get"], "h")
    ) == LOCKED_LINE));
    let bad = env.unlock(&["--idle", "0s"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--idle"), "{}", stderr(&bad));
}

#[test]
fn near_expiry_warning_on_stderr_stdout_unchanged() {
    let env = Env::new();
    env.init();
    env.store("h", "u", "p&<");
    assert!(env.unlock(&[]).status.success());
    let calm = env.run(&["get"], "h");
    assert!(calm.status.success());
    assert_eq!(stderr(&calm), "", "no warning with hours left");
    assert!(env.unlock(&["--timeout", "4m"]).status.success());
    let warned = env.run(&["get"], "h");
    assert!(warned.status.success());
    assert_eq!(warned.stdout, calm.stdout, "stdout must be byte-identical");
    let err = stderr(&warned);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("warning") && err.contains("--timeout") && err.contains("unlock"),
        "{err}"
    );
    assert!(!err.contains("p&<"));
    // An idle deadline under 5 minutes says so, and points at --idle.
    assert!(env.unlock(&["--idle", "2m"]).status.success());
    let idle = env.run(&["get"], "h");
    assert_eq!(idle.stdout, calm.stdout);
    assert!(stderr(&idle).contains("--idle"), "{}", stderr(&idle));
    // Unlock again sets new deadlines: the warning is gone.
    assert!(env.unlock(&["--timeout", "8h"]).status.success());
    assert_eq!(stderr(&env.run(&["get"], "h")), "");
}

#[test]
fn status_lists_every_held_vault_with_both_times() {
    let mut env = Env::new();
    let a = env.path("a.json");
    let b = env.path("b.json");
    env.vault = Some(a.clone());
    env.init();
    assert!(
        env.unlock(&["--idle", "10m", "--timeout", "2h"])
            .status
            .success()
    );
    env.vault = Some(b.clone());
    env.init();
    assert!(
        env.unlock(&["--idle", "20m", "--timeout", "3h"])
            .status
            .success()
    );
    let status = env.status_json();
    let vaults = status["agent"]["vaults"].as_array().unwrap().clone();
    assert_eq!(vaults.len(), 2, "{status}");
    let labels: Vec<&str> = vaults
        .iter()
        .map(|v| v["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, [a.to_str().unwrap(), b.to_str().unwrap()]);
    let idle_a = vaults[0]["idle_left_secs"].as_u64().unwrap();
    let idle_b = vaults[1]["idle_left_secs"].as_u64().unwrap();
    let abs_b = vaults[1]["timeout_left_secs"].as_u64().unwrap();
    assert!((500..=600).contains(&idle_a), "{status}");
    assert!((1100..=1200).contains(&idle_b) && (10_000..=10_800).contains(&abs_b));
    let text = stdout(&env.run(&["status"], ""));
    assert!(text.contains("holds 2 vault key(s)"), "{text}");
    assert!(text.contains(a.to_str().unwrap()) && text.contains(b.to_str().unwrap()));
    // A vault the agent does not hold still lists the ones it does.
    env.vault = Some(a.clone());
    assert!(env.run(&["lock"], "").status.success());
    let text = stdout(&env.run(&["status"], ""));
    assert!(text.contains("holds 1 vault key(s)"), "{text}");
    assert!(text.contains(&format!("  {} for ", b.display())), "{text}");
}

/// Regression (issue 15 item 8): a same-uid client trickling one byte every 500 ms
/// never trips a per-read timeout; with one deadline per request the agent drops it
/// after 2 s and the owner's `get` (which waits up to 5 s) is answered.
fn trickle(socket: &Path) -> thread::JoinHandle<()> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    thread::spawn(move || {
        let _ = s.write_all(&1000u32.to_be_bytes());
        for _ in 0..30 {
            if s.write_all(b" ").is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(500));
        }
    })
}

#[test]
fn a_trickling_client_cannot_hold_the_agent() {
    let env = Env::new();
    env.init();
    env.store("h", "u", "p");
    assert!(env.unlock(&[]).status.success());
    let t = trickle(&env.agent_dir().join("agent.sock"));
    thread::sleep(Duration::from_millis(200));
    let get = env.run(&["get"], "h");
    assert!(
        stdout(&get).contains("\"p\""),
        "{}{}",
        stdout(&get),
        stderr(&get)
    );
    t.join().unwrap();
}

#[test]
fn a_trickling_client_cannot_hold_an_exec_server() {
    let env = Env::new();
    env.init();
    env.store("h", "u", "p");
    let pass = env.path("pass");
    let script = format!(
        "{BIN} get <<EOF >/dev/null || exit 9\nh\nEOF\necho \"$LOCKBOX_AGENT_SOCKET\" > {dir}/sock; \
         while [ ! -e {dir}/go ]; do sleep 0.1; done; {BIN} get <<EOF\nh\nEOF",
        dir = env.path("").display()
    );
    let child = env
        .cmd(&[
            "exec",
            "--passphrase-file",
            pass.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(20), || env
        .path("sock")
        .exists()));
    let sock = fs::read_to_string(env.path("sock")).unwrap();
    let t = trickle(Path::new(sock.trim()));
    thread::sleep(Duration::from_millis(200));
    fs::write(env.path("go"), "").unwrap();
    let out = bounded_output(child);
    assert!(
        stdout(&out).contains("\"p\""),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    t.join().unwrap();
}

/// `exec` with the passphrase file and `script` run by `sh -c`.
fn exec_sh(env: &Env, script: &str, vars: &[(&str, &str)]) -> std::process::Child {
    let pass = env.path("pass");
    let mut c = env.cmd(&[
        "exec",
        "--passphrase-file",
        pass.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        script,
    ]);
    for (k, v) in vars {
        c.env(k, v);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn exec_serves_its_command_and_forgets_the_key_when_it_exits() {
    let env = Env::new();
    env.init();
    env.store("h", "u", "s3cr3t-exec");
    // The command and its children get the secret; the environment is scrubbed.
    let script = format!(
        "printf h | {BIN} get; echo; env; echo \"SOCK=$LOCKBOX_AGENT_SOCKET\"; \
         sh -c 'printf h | {BIN} get' >/dev/null && echo child-ok; {BIN} status --quiet; echo status=$?"
    );
    let key_file = env.path("pass");
    let out = bounded_output(exec_sh(
        &env,
        &script,
        &[
            ("LOCKBOX_IDENTITY_FILE", "/nonexistent/id"),
            ("LOCKBOX_IDENTITY_CMD", "false"),
            ("LOCKBOX_PASSPHRASE_FILE", key_file.to_str().unwrap()),
        ],
    ));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("\"Secret\":\"s3cr3t-exec\""), "{text}");
    assert!(text.contains("child-ok"), "{text}");
    assert!(text.contains("status=0"), "{text}");
    for hidden in ["LOCKBOX_IDENTITY", "LOCKBOX_PASSPHRASE_FILE"] {
        assert!(
            !text.lines().any(|l| l.starts_with(hidden)),
            "{hidden} reached the command: {text}"
        );
    }
    assert!(!text.contains(PASSPHRASE));
    let sock = text
        .lines()
        .find_map(|l| l.strip_prefix("SOCK="))
        .unwrap()
        .to_owned();
    assert!(
        sock.starts_with(env.agent_dir().to_str().unwrap()),
        "{sock}"
    );
    // Gone with the command: no socket, no directory, and a get naming it is locked.
    assert!(!Path::new(&sock).exists());
    assert!(!Path::new(&sock).parent().unwrap().exists());
    let mut c = env.cmd(&["get"]);
    c.env("LOCKBOX_AGENT_SOCKET", &sock);
    let get = {
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"h").unwrap();
        bounded_output(child)
    };
    assert_eq!(stdout(&get), LOCKED_LINE);
    // No agent was started for the user.
    assert!(!env.agent_dir().join("agent.sock").exists());
}

#[test]
fn exec_returns_the_exit_status_and_128_plus_the_signal() {
    let env = Env::new();
    env.init();
    let out = bounded_output(exec_sh(&env, "exit 7", &[]));
    assert_eq!(out.status.code(), Some(7));
    let out = bounded_output(exec_sh(&env, "kill -TERM $$", &[]));
    assert_eq!(out.status.code(), Some(128 + 15));
    let missing = env.run(
        &[
            "exec",
            "--passphrase-file",
            env.path("pass").to_str().unwrap(),
            "--",
            "/nonexistent/cmd",
        ],
        "",
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("/nonexistent/cmd"),
        "{}",
        stderr(&missing)
    );
    // Nothing before `--` is a command.
    assert_eq!(env.run(&["exec"], "").status.code(), Some(2));
}

#[test]
fn exec_forwards_signals_to_its_command() {
    let env = Env::new();
    env.init();
    let ready = env.path("ready");
    let script = format!(
        "trap 'exit 42' USR1; : > {}; while :; do sleep 0.1; done",
        ready.display()
    );
    let child = exec_sh(&env, &script, &[]);
    assert!(eventually(Duration::from_secs(20), || ready.exists()));
    Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status()
        .unwrap();
    let out = bounded_output(child);
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
}

#[test]
fn exec_killed_by_sigkill_leaves_no_usable_key() {
    let env = Env::new();
    env.init();
    env.store("h", "u", "p");
    let info = env.path("info");
    let script = format!(
        "echo \"$$ $LOCKBOX_AGENT_SOCKET\" > {}.tmp; mv {0}.tmp {0}; sleep 60",
        info.display()
    );
    let mut child = exec_sh(&env, &script, &[]);
    assert!(eventually(Duration::from_secs(20), || info.exists()));
    let text = fs::read_to_string(&info).unwrap();
    let (cmd_pid, sock) = text.trim().split_once(' ').unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The command dies with it (PR_SET_PDEATHSIG).
    assert!(
        eventually(Duration::from_secs(10), || !Path::new(&format!(
            "/proc/{cmd_pid}"
        ))
        .exists()
            || fs::read_to_string(format!("/proc/{cmd_pid}/stat"))
                .is_ok_and(|s| s.contains(") Z"))),
        "the command outlived exec"
    );
    let mut c = env.cmd(&["get"]);
    c.env("LOCKBOX_AGENT_SOCKET", sock);
    let mut g = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    g.stdin.take().unwrap().write_all(b"h").unwrap();
    assert_eq!(stdout(&bounded_output(g)), LOCKED_LINE);
    // The next exec sweeps the leftover directory.
    let out = bounded_output(exec_sh(&env, "true", &[]));
    assert!(out.status.success());
    assert!(
        !Path::new(sock).parent().unwrap().exists(),
        "leftover not swept"
    );
}

/// The sweep asks the socket, not the pid: an `exec` from another PID namespace that
/// shares `/tmp` names a pid that may exist here (pid 1 always does).
#[test]
fn exec_sweeps_a_dead_socket_whatever_its_pid_and_spares_a_socketless_live_pid() {
    let env = Env::new();
    env.init();
    let dir = env.agent_dir();
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let dead = dir.join("exec-1-0");
    fs::create_dir(&dead).unwrap();
    // A bound socket whose listener is gone: connecting is refused.
    drop(std::os::unix::net::UnixListener::bind(dead.join("agent.sock")).unwrap());
    let binding = dir.join("exec-1-1"); // pid 1 exists; no socket yet
    fs::create_dir(&binding).unwrap();
    let out = bounded_output(exec_sh(&env, "true", &[]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !dead.exists(),
        "a refusing socket's directory was not swept"
    );
    assert!(binding.exists(), "a live pid without a socket was swept");
}

/// A foreground agent, killed when the test ends however it ends.
struct AgentChild(std::process::Child);

impl Drop for AgentChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An agent whose systemd credential does not open the vault is passed over like one
/// without its key: `LOCKBOX_IDENTITY_CMD`, after it in the order, still opens the
/// vault (as `status` says it would), and without the command the credential's failure
/// is the error: never "locked", never the not-found text.
#[test]
fn a_failing_agent_credential_passes_the_turn_to_the_identity_command() {
    use age::secrecy::ExposeSecret as _;
    let env = Env::new();
    let owner = age::x25519::Identity::generate();
    let id_file = env.path("owner.txt");
    fs::write(&id_file, owner.to_string().expose_secret()).unwrap();
    let out = env.run(&["init", "--recipient", &owner.to_public().to_string()], "");
    assert!(out.status.success(), "{}", stderr(&out));
    env.store("h", "u", "p");
    let creds = env.path("creds");
    fs::create_dir(&creds).unwrap();
    let stranger = age::x25519::Identity::generate();
    fs::write(
        creds.join("lockbox-identity"),
        stranger.to_string().expose_secret(),
    )
    .unwrap();
    let agent = AgentChild(
        env.cmd(&["agent", "--foreground"])
            .env("CREDENTIALS_DIRECTORY", &creds)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sock = env.agent_dir().join("agent.sock");
    assert!(eventually(Duration::from_secs(20), || sock.exists()));

    let out = env.run(&["get"], "h");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let line = stdout(&out);
    assert!(line.contains("credential"), "{line}");
    assert_ne!(line, LOCKED_LINE);
    assert_ne!(line, NOT_FOUND_LINE);

    let cmd = format!("cat {}", id_file.display());
    let mut c = env.cmd(&["get"]);
    c.env("LOCKBOX_IDENTITY_CMD", &cmd);
    let mut g = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    g.stdin.take().unwrap().write_all(b"h").unwrap();
    let out = bounded_output(g);
    assert!(out.status.success(), "{} {}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("\"p\""), "{}", stdout(&out));

    let mut c = env.cmd(&["status", "--check"]);
    c.env("LOCKBOX_IDENTITY_CMD", &cmd);
    let out = bounded_output(
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(out.status.success(), "{} {}", stdout(&out), stderr(&out));
    drop(agent);
}

#[test]
fn foreground_agent_serves_unlock_never_exits_alone_and_stops_on_sigterm() {
    let env = Env::new();
    env.init();
    env.store("h", "u", "p");
    let mut agent = env
        .cmd(&["agent", "--foreground"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sock = env.agent_dir().join("agent.sock");
    assert!(eventually(Duration::from_secs(20), || sock.exists()));
    // A second foreground agent refuses to start beside it.
    let second = env.run(&["agent", "--foreground"], "");
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains("already serves"),
        "{}",
        stderr(&second)
    );
    // Past the background agent's 30 s start-up grace with no key: still there.
    thread::sleep(Duration::from_secs(32));
    assert!(
        agent.try_wait().unwrap().is_none(),
        "the foreground agent exited by itself"
    );
    assert!(env.unlock(&[]).status.success());
    let st = env.status_json();
    assert_eq!(
        st["agent"]["pid"].as_u64().unwrap(),
        u64::from(agent.id()),
        "{st}"
    );
    assert_eq!(st["agent"]["mode"], "foreground");
    assert!(stdout(&env.run(&["get"], "h")).contains("\"p\""));
    // Its last key locked: still there.
    assert!(env.run(&["lock"], "").status.success());
    thread::sleep(Duration::from_millis(300));
    assert!(
        agent.try_wait().unwrap().is_none(),
        "exited when its last key went"
    );
    assert!(env.unlock(&[]).status.success());
    // A forward of the foreground agent: its gets are logged on stderr too, and it
    // ends with the agent (its socket and directory removed).
    assert!(
        env.run(&["forward", "create", "fg", "--registry", "h"], "")
            .status
            .success()
    );
    let forward = env.agent_dir().join("forwards/fg/forward.sock");
    let inside = Command::new(common::BIN)
        .env_clear()
        .env("LOCKBOX_FORWARD_SOCKET", &forward)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    inside.stdin.as_ref().unwrap().write_all(b"h").unwrap();
    assert!(stdout(&bounded_output(inside)).contains("\"p\""));
    Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    let out = {
        let (tx, rx) = mpsc::channel();
        let stderr_pipe = agent.stderr.take().unwrap();
        thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut { stderr_pipe }, &mut s);
            let _ = tx.send(s);
        });
        let status = agent.wait().unwrap();
        (status, rx.recv_timeout(Duration::from_secs(10)).unwrap())
    };
    assert_eq!(out.0.code(), Some(0), "{}", out.1);
    assert!(!sock.exists(), "the socket is removed");
    assert!(
        !forward.parent().unwrap().exists(),
        "the forward is removed"
    );
    let log = out.1;
    for event in [
        "started on",
        "unlocked ",
        "locked ",
        "stopping on a signal",
        "stopped",
        "gave h of ",
        "through owner",
        "forward fg opened for h",
        "through forward:fg",
    ] {
        assert!(log.contains(event), "no {event:?} line in {log}");
    }
    assert!(
        log.lines().all(|l| l.starts_with("lockbox-agent: ")),
        "{log}"
    );
    assert!(!log.contains(PASSPHRASE) && !log.contains("AGE-SECRET-KEY"));
    assert_eq!(stdout(&env.run(&["get"], "h")), LOCKED_LINE);
}
