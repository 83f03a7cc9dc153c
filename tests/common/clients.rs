//! What the real-client tests share: the tool policy (skip locally, fail in CI), a
//! bounded way to run a client, a per-test environment (temp `HOME`, `DOCKER_CONFIG`
//! with `credsStore: lockbox`, a vault opened by a fresh age identity, a bin directory
//! that puts the helper on `PATH`), the CNCF distribution registry on 127.0.0.1 with
//! htpasswd auth, a stand-in Docker daemon for the one CLI path that needs one, a real
//! Docker daemon (`dockerd`, as root, in a temp dir) for the end-to-end suite, a helper
//! wrapper that logs which actions clients ran, and tiny image tarballs.
//!
//! Every process started here is stopped by its PID (its process group on a timeout),
//! and every wait is bounded ([`run_bounded`]). Built on the harness core ([`World`]).
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{At, FAST_KDF, Group, World, run_bounded};
pub use super::{BIN, Input, ci, require, require_tools, which};

/// How long one client command may take before it is killed and the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A finished command.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    /// For assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` in its own process group with `input` on stdin, capturing stdout and
/// stderr. Past [`COMMAND_TIMEOUT`] the whole group (the client and any helper it
/// started) is killed and the test fails with what was printed so far.
pub fn run(cmd: Command, input: Input<'_>) -> Output {
    let f = run_bounded(cmd, input, Group::Own, COMMAND_TIMEOUT);
    Output {
        status: f.status,
        stdout: String::from_utf8_lossy(&f.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&f.stderr).into_owned(),
    }
}

/// One test's world: temp `HOME`, `DOCKER_CONFIG` (`{"credsStore":"lockbox"}` and a
/// vault opened by a fresh age identity), `XDG_RUNTIME_DIR`, and a bin directory whose
/// `docker-credential-lockbox` is the binary under test.
pub struct ClientEnv {
    world: World,
    identity: String,
}

impl ClientEnv {
    /// Needs `age-keygen` (checked by the caller).
    pub fn new() -> Self {
        Self::with_slots(None)
    }

    /// Like [`ClientEnv::new`], and the vault also gets a passphrase slot for
    /// `passphrase` (cheap Argon2id), kept in [`ClientEnv::passphrase_file`] for
    /// `unlock --passphrase-file`.
    pub fn with_passphrase(passphrase: &str) -> Self {
        Self::with_slots(Some(passphrase))
    }

    fn with_slots(passphrase: Option<&str>) -> Self {
        let world = World::with_prefix("lockbox-rc-");
        let key_file = world.keys_dir().join("age-identity.txt");
        let mut keygen = Command::new("age-keygen");
        keygen.arg("-o").arg(&key_file);
        let keygen = run(keygen, Input::Closed);
        assert!(keygen.ok(), "age-keygen: {}", keygen.describe());
        let identity = fs::read_to_string(&key_file).at("read the age identity", &key_file);
        let recipient = identity
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .expect("age-keygen writes the public key as a comment")
            .to_owned();

        let env = ClientEnv { world, identity };
        fs::write(env.config_json(), "{\"credsStore\":\"lockbox\"}\n")
            .at("write config.json", env.config_json());
        let mut init = env.command(BIN, false);
        init.args(["init", "--recipient", &recipient]);
        if let Some(p) = passphrase {
            fs::write(env.passphrase_file(), format!("{p}\n"))
                .at("write the passphrase", env.passphrase_file());
            fs::set_permissions(env.passphrase_file(), fs::Permissions::from_mode(0o600))
                .at("chmod the passphrase file", env.passphrase_file());
            init.arg("--passphrase-file")
                .arg(env.passphrase_file())
                .env("LOCKBOX_ARGON2_PARAMS", FAST_KDF);
        }
        let init = run(init, Input::Closed);
        assert!(init.ok(), "init: {}", init.describe());
        assert!(
            env.vault().is_file(),
            "init made no vault at {:?}",
            env.vault()
        );
        env
    }

    /// The age identity text that opens the vault.
    pub fn identity_text(&self) -> &str {
        &self.identity
    }

    /// The passphrase of a [`ClientEnv::with_passphrase`] vault.
    pub fn passphrase_file(&self) -> PathBuf {
        self.world.keys_dir().join("passphrase.txt")
    }

    /// Replaces `docker-credential-lockbox` in the bin directory by a shell script that
    /// appends one line per call to [`ClientEnv::helper_calls`]'s log — the action, and
    /// for `get` and `erase` the server URL it was asked for — then `exec`s the helper
    /// under test. stdout and stderr are the client's own; for `list`, `store` and
    /// `version` so is stdin (the script never touches it: `list` must not read it).
    /// For `get` and `erase` the script copies stdin byte for byte to a file, logs it,
    /// and hands the helper that file, already unlinked, as its stdin.
    pub fn trace_helper(&self) {
        let script = self.path("bin").join("docker-credential-lockbox");
        fs::remove_file(&script).at("remove the helper link", &script);
        write_trace_wrapper(&script, &self.calls_log(), self.world.root());
    }

    fn calls_log(&self) -> PathBuf {
        self.path("helper-calls.log")
    }

    /// The calls the [`ClientEnv::trace_helper`] wrapper logged since the last time
    /// this was asked (`"list"`, `"get 127.0.0.1:5000"`, `"store"`, …); clears the log.
    pub fn helper_calls(&self) -> Vec<String> {
        let text = fs::read_to_string(self.calls_log()).unwrap_or_default();
        let _ = fs::remove_file(self.calls_log());
        text.lines().map(str::to_owned).collect()
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.world.path(p)
    }

    /// The world this test runs in.
    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn docker_config(&self) -> PathBuf {
        self.path("docker")
    }

    pub fn config_json(&self) -> PathBuf {
        self.docker_config().join("config.json")
    }

    pub fn vault(&self) -> PathBuf {
        self.docker_config().join("lockbox/vault.json")
    }

    pub fn vault_bytes(&self) -> Vec<u8> {
        fs::read(self.vault()).at("read the vault", self.vault())
    }

    /// Makes `docker-credential-<name>` in the bin directory run the helper under test.
    pub fn link_helper(&self, name: &str) {
        symlink(
            BIN,
            self.path("bin").join(format!("docker-credential-{name}")),
        )
        .at(
            "symlink the helper",
            self.path("bin").join(format!("docker-credential-{name}")),
        );
    }

    /// `program` with this test's environment and nothing inherited: the bin directory
    /// first on `PATH`, temp `HOME`/`DOCKER_CONFIG`/`XDG_RUNTIME_DIR`, a `DOCKER_HOST`
    /// socket that does not exist, and the age identity in `LOCKBOX_IDENTITY` only when
    /// `unlocked`.
    pub fn command(&self, program: impl AsRef<OsStr>, unlocked: bool) -> Command {
        let mut c = self.world.command(program);
        c.env(
            "DOCKER_HOST",
            format!("unix://{}", self.path("no-daemon.sock").display()),
        )
        .env("DOCKER_CLI_HINTS", "false")
        .env("NO_COLOR", "1");
        if unlocked {
            c.env("LOCKBOX_IDENTITY", &self.identity);
        }
        c
    }

    /// The helper itself.
    pub fn lockbox(&self, args: &[&str], unlocked: bool, input: Input<'_>) -> Output {
        let mut c = self.command(BIN, unlocked);
        c.args(args);
        run(c, input)
    }

    /// `list`, parsed.
    pub fn list(&self) -> serde_json::Map<String, serde_json::Value> {
        let out = self.lockbox(&["list"], false, Input::Closed);
        assert!(out.ok(), "list: {}", out.describe());
        match serde_json::from_str(&out.stdout) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => panic!("list printed no JSON object: {}", out.describe()),
        }
    }

    /// `get` with the identity: `Some((username, secret))`, `None` when not found.
    pub fn get(&self, server: &str) -> Option<(String, String)> {
        let out = self.lockbox(&["get"], true, Input::Bytes(server.as_bytes()));
        if !out.ok() {
            assert_eq!(
                out.stdout,
                "credentials not found in native keychain\n",
                "get {server}: {}",
                out.describe()
            );
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("get {server} printed no JSON ({e}): {}", out.describe()));
        assert_eq!(v["ServerURL"], server, "get echoes the server URL");
        Some((
            v["Username"].as_str().expect("Username").to_owned(),
            v["Secret"].as_str().expect("Secret").to_owned(),
        ))
    }
}

/// Writes the [`ClientEnv::trace_helper`] wrapper at `script` (mode 0755): it logs
/// each call to `log` and keeps its copy of `get`/`erase` stdin in `tmp_dir` (both
/// writable by whoever runs the client), then runs the helper under test. For a client
/// run as another user too (`tests/system/e2e.rs`, the build user after a reboot).
pub fn write_trace_wrapper(script: &Path, log: &Path, tmp_dir: &Path) {
    let text = TRACE_WRAPPER
        .replace("@LOG@", &log.display().to_string())
        .replace("@DIR@", &tmp_dir.display().to_string())
        .replace("@BIN@", BIN);
    fs::write(script, text).at("write the helper wrapper", script);
    fs::set_permissions(script, fs::Permissions::from_mode(0o755)).at("chmod the wrapper", script);
}

/// The [`ClientEnv::trace_helper`] script (paths have no `'` in them: temp dirs and the
/// cargo target directory).
const TRACE_WRAPPER: &str = r#"#!/bin/sh
log='@LOG@'
case "$1" in
get|erase)
  tmp=$(mktemp '@DIR@/stdin.XXXXXX') || exit 1
  cat >"$tmp" || exit 1
  printf '%s %s\n' "$1" "$(cat "$tmp")" >>"$log"
  exec 3<"$tmp"
  rm -f "$tmp"
  exec '@BIN@' "$@" <&3 3<&-
  ;;
esac
printf '%s\n' "$1" >>"$log"
exec '@BIN@' "$@"
"#;

/// The CNCF distribution registry (`docker-registry serve`) on 127.0.0.1 at a free port,
/// with htpasswd (bcrypt) auth for one user, storage and log in its own temp dir.
/// Dropping it kills the process by PID and reaps it.
pub struct Registry {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Needs `docker-registry` and `htpasswd` (checked by the caller).
    pub fn start(user: &str, password: &str) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("lockbox-registry-")
            .tempdir()
            .expect("temp dir");
        let mut htpasswd = Command::new("htpasswd");
        htpasswd.args(["-Bbn", user, password]);
        let htpasswd = run(htpasswd, Input::Closed);
        assert!(htpasswd.ok(), "htpasswd: {}", htpasswd.describe());
        fs::write(dir.path().join("htpasswd"), htpasswd.stdout)
            .at("write htpasswd", dir.path().join("htpasswd"));
        fs::create_dir(dir.path().join("storage"))
            .at("create storage dir", dir.path().join("storage"));

        // A free port can be taken between our probe and the registry's bind; then the
        // registry exits at once and we try another.
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            fs::write(&config, registry_config(dir.path(), port)).at("write config.yml", &config);
            let log = fs::File::create(dir.path().join("registry.log"))
                .at("create", dir.path().join("registry.log"));
            // By its path: env_clear leaves the lookup to this process's PATH, which
            // does not have the tools scripts/test.sh unpacked.
            let mut cmd = Command::new(
                super::which("docker-registry").expect("docker-registry (checked by the caller)"),
            );
            cmd.arg("serve")
                .arg(&config)
                .env_clear() // REGISTRY_* variables would override the config
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log);
            stop_with_parent(&mut cmd);
            let mut child = cmd.spawn().at("start", cmd.get_program());
            if wait_ready(&mut child, port) {
                return Registry { child, port, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        panic!("the registry did not start; its last log:\n{log}");
    }

    /// `host:port` as clients name it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether the registry accepts these credentials (`GET /v2/` with basic auth).
    pub fn accepts(&self, user: &str, password: &str) -> bool {
        registry_status(self.port, Some((user, password))) == Some(200)
    }

    /// Whether the registry refuses a request with no credentials (htpasswd auth on).
    pub fn refuses_anonymous(&self) -> bool {
        registry_status(self.port, None) == Some(401)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

/// Polls `GET /v2/` until it answers 401 (our registry, auth on), the process exits,
/// or 20 s pass.
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().expect("wait for the registry").is_some() {
            return false;
        }
        if registry_status(port, None) == Some(401) {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a probe port on 127.0.0.1")
        .port()
}

fn registry_config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: \"{d}/storage\"
  delete:
    enabled: true
http:
  addr: \"127.0.0.1:{port}\"
  secret: \"lockbox-test-{port}\"
auth:
  htpasswd:
    realm: lockbox-test
    path: \"{d}/htpasswd\"
"
    )
}

/// The status code of `GET /v2/` on the registry, `None` when it does not answer.
fn registry_status(port: u16, auth: Option<(&str, &str)>) -> Option<u16> {
    let addr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut req = format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    if let Some((u, p)) = auth {
        req += &format!(
            "Authorization: Basic {}\r\n",
            BASE64.encode(format!("{u}:{p}"))
        );
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(s.take(4096)).read_line(&mut line).ok()?;
    line.split(' ').nth(1)?.parse().ok()
}

/// A request `docker login` made to the stand-in daemon's `/auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonLogin {
    pub username: String,
    pub password: String,
    pub server: String,
}

/// A stand-in for the Docker daemon on a Unix socket, just enough for `docker login`
/// with stored credentials, which (unlike a login with `-u`) has no client-side
/// fallback in Docker CLI 28 and always asks the daemon (`POST /auth`). It checks the
/// credentials against the real registry, as dockerd would, and records them.
pub struct FakeDaemon {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub logins: Arc<Mutex<Vec<DaemonLogin>>>,
}

impl FakeDaemon {
    pub fn start(socket: PathBuf, registry_port: u16) -> FakeDaemon {
        let listener = UnixListener::bind(&socket).expect("bind the stand-in daemon socket");
        let stop = Arc::new(AtomicBool::new(false));
        let logins = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, logins) = (stop.clone(), logins.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        let _ = serve_daemon_request(conn, registry_port, &logins);
                    }
                }
            })
        };
        FakeDaemon {
            socket,
            stop,
            thread: Some(thread),
            logins,
        }
    }

    /// `DOCKER_HOST` for it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One HTTP/1.1 request per connection (`Connection: close` on every answer).
fn serve_daemon_request(
    conn: UnixStream,
    registry_port: u16,
    logins: &Mutex<Vec<DaemonLogin>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(conn.try_clone()?.take(1 << 20));
    let mut request_line = String::new();
    r.read_line(&mut request_line)?;
    let mut content_length = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            content_length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; content_length.min(1 << 16)];
    r.read_exact(&mut body)?;

    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, json) = if path.ends_with("/_ping") {
        (200, String::new())
    } else if method == "POST" && path.ends_with("/auth") {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let field = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        let login = DaemonLogin {
            username: field("username"),
            password: field("password"),
            server: field("serveraddress"),
        };
        let ok =
            registry_status(registry_port, Some((&login.username, &login.password))) == Some(200);
        logins.lock().expect("logins").push(login);
        if ok {
            (
                200,
                r#"{"Status":"Login Succeeded","IdentityToken":""}"#.to_owned(),
            )
        } else {
            (
                401,
                r#"{"message":"the registry refused these credentials"}"#.to_owned(),
            )
        }
    } else {
        (
            404,
            format!(r#"{{"message":"not in the test stand-in: {method} {path}"}}"#),
        )
    };
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let (ctype, body) = if path.ends_with("/_ping") {
        (
            "text/plain",
            if method == "HEAD" { "" } else { "OK" }.to_owned(),
        )
    } else {
        ("application/json", json)
    };
    let mut w = conn;
    write!(
        w,
        "HTTP/1.1 {status} {reason}\r\nApi-Version: 1.47\r\nOstype: linux\r\n\
         Content-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()?;
    let _ = w.shutdown(Shutdown::Write);
    Ok(())
}

/// Fails unless `config.json` is free of the secret: not the password, not base64 of
/// `user:password`, and no credential-bearing key (`auth`, `password`, `identitytoken`,
/// `registrytoken`) with a value anywhere.
pub fn assert_config_has_no_secret(config: &Path, user: &str, password: &str) {
    let text = fs::read_to_string(config).at("read config.json", config);
    assert!(
        !text.contains(password),
        "config.json holds the password:\n{text}"
    );
    let b64 = BASE64.encode(format!("{user}:{password}"));
    assert!(
        !text.contains(&b64),
        "config.json holds base64(user:password):\n{text}"
    );
    let value: serde_json::Value = serde_json::from_str(&text).expect("config.json is JSON");
    fn walk(v: &serde_json::Value, text: &str) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = k.to_ascii_lowercase();
                    let secret_key = ["auth", "password", "identitytoken", "registrytoken"]
                        .contains(&key.as_str());
                    let empty = v.is_null() || v.as_str().is_some_and(str::is_empty);
                    assert!(
                        !secret_key || empty,
                        "config.json has a value for {k:?}:\n{text}"
                    );
                    walk(v, text);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, text)),
            _ => {}
        }
    }
    walk(&value, &text);
}

/// A server started with this gets SIGTERM when the test dies without running its
/// Drop (killed, say). The signal follows the thread that started the server: the
/// test's own, which outlives it.
fn stop_with_parent(cmd: &mut Command) {
    // SAFETY: only an async-signal-safe prctl(2) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
                .map_err(std::io::Error::from)
        });
    }
}

/// Whether this process runs as root (dockerd needs it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The root policy for tests that start `dockerd`: as root, go on; otherwise fail in CI
/// and say what was skipped elsewhere.
pub fn require_root(what: &str) -> bool {
    if !is_root() {
        assert!(
            !ci(),
            "{what} starts dockerd, which needs root, and CI must run it: run the tests as root"
        );
        eprintln!("skipped: {what} starts dockerd, which needs root (run the tests as root)");
    }
    is_root()
}

/// Where Debian's `dockerd` is: on `PATH`, else in the sbin directories a non-login
/// root shell may leave off it.
pub fn dockerd_path() -> Option<PathBuf> {
    which("dockerd").or_else(|| {
        ["/usr/sbin/dockerd", "/usr/bin/dockerd", "/sbin/dockerd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    })
}

/// How long the daemon may take to answer after it starts, and to exit on SIGTERM.
const DOCKERD_START: Duration = Duration::from_secs(60);
const DOCKERD_STOP: Duration = Duration::from_secs(30);

/// A real Docker daemon (Debian's `dockerd`), as root, all of its state in a short temp
/// dir (`/tmp/lbx-XXXXXX`: a Unix socket path must stay under 108 bytes): its API on
/// `unix://…/docker.sock` only, `--data-root`, `--exec-root`, `--pidfile` and an empty
/// `--config-file` there, the vfs storage driver, and no bridge, iptables, IP forwarding
/// or masquerading. Registries on 127.0.0.0/8 are plain HTTP to it by default.
///
/// [`Dockerd::stop`] (or drop) sends SIGTERM to its PID, waits a bounded time, then
/// SIGKILL; afterwards every process it had started (its containerd) that is still
/// alive is killed by PID too.
pub struct Dockerd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub version: String,
}

impl Dockerd {
    /// Needs root and `dockerd` (checked by the caller). Waits (bounded) until
    /// `docker version` answers through the socket.
    pub fn start() -> Dockerd {
        let dir = tempfile::Builder::new()
            .prefix("lbx-")
            .tempdir_in("/tmp")
            .expect("temp dir for dockerd");
        let socket = dir.path().join("docker.sock");
        assert!(
            socket.as_os_str().len() < 100,
            "socket path too long for a Unix socket: {socket:?}"
        );
        fs::write(dir.path().join("daemon.json"), "{}\n")
            .at("write daemon.json", dir.path().join("daemon.json"));
        fs::create_dir(dir.path().join("cli"))
            .at("create the CLI config dir", dir.path().join("cli"));
        fs::write(dir.path().join("cli/config.json"), "{}\n")
            .at("write config.json", dir.path().join("cli/config.json"));
        let log = fs::File::create(dir.path().join("dockerd.log"))
            .at("create", dir.path().join("dockerd.log"));
        let d = dir.path().display();
        let mut cmd = Command::new(dockerd_path().expect("dockerd (checked by the caller)"));
        cmd.arg(format!("--config-file={d}/daemon.json"))
            .arg(format!("--host=unix://{d}/docker.sock"))
            .arg(format!("--data-root={d}/data"))
            .arg(format!("--exec-root={d}/exec"))
            .arg(format!("--pidfile={d}/docker.pid"))
            .args([
                "--storage-driver=vfs",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
            ])
            // Nothing from the test's environment: no proxies, no DOCKER_* settings.
            // Debian's containerd, runc and docker-init are found on this PATH (first
            // where scripts/test.sh unpacked them).
            .env_clear()
            .env(
                "PATH",
                super::path_with_test_tools("/usr/sbin:/usr/bin:/sbin:/bin".as_ref()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        stop_with_parent(&mut cmd);
        let child = cmd.spawn().at("start", cmd.get_program());
        let mut daemon = Dockerd {
            child: Some(child),
            dir,
            version: String::new(),
        };

        let deadline = Instant::now() + DOCKERD_START;
        loop {
            let child = daemon.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("wait for dockerd") {
                panic!(
                    "dockerd exited ({status}) at start; its log:\n{}",
                    daemon.log()
                );
            }
            let mut c = daemon.cli();
            c.args(["version", "--format", "{{.Server.Version}}"]);
            let out = run(c, Input::Closed);
            if out.ok() {
                daemon.version = out.stdout.trim().to_owned();
                return daemon;
            }
            if Instant::now() >= deadline {
                panic!(
                    "dockerd did not answer in {DOCKERD_START:?}: {}\nits log:\n{}",
                    out.describe(),
                    daemon.log()
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// `DOCKER_HOST` for it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// Lets the members of group `gid` use this daemon's API, the way the `docker`
    /// group does on a host: the socket `root:gid` 0660, and its directory 0711 (others
    /// may pass through to the socket, not list what is there). Only this test daemon's
    /// socket; undone by [`Dockerd::unshare_socket`].
    pub fn share_socket(&self, gid: u32) {
        fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o711))
            .at("chmod the daemon's directory", self.dir.path());
        std::os::unix::fs::chown(self.socket(), Some(0), Some(gid))
            .at("chown the daemon's socket", self.socket());
        fs::set_permissions(self.socket(), fs::Permissions::from_mode(0o660))
            .at("chmod the daemon's socket", self.socket());
    }

    /// The socket root's alone again and the directory 0700, as [`Dockerd::start`] left
    /// them.
    pub fn unshare_socket(&self) {
        let _ = std::os::unix::fs::chown(self.socket(), Some(0), Some(0));
        let _ = fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o700));
    }

    /// The Docker CLI talking to this daemon, with an empty config of its own (no
    /// credentials) and nothing inherited: `PATH` and a `HOME` of its own only.
    pub fn cli(&self) -> Command {
        let mut c = Command::new("docker");
        c.env_clear()
            .env("PATH", super::test_path())
            .env("HOME", self.dir.path().join("cli"))
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .env("DOCKER_CLI_HINTS", "false");
        c
    }

    /// Stops the daemon (SIGTERM, a bounded wait, then SIGKILL) and then kills, by PID,
    /// whatever it had started that is still alive. Returns what had to be killed:
    /// empty after a clean shutdown.
    pub fn stop(&mut self) -> Vec<String> {
        let Some(mut child) = self.child.take() else {
            return Vec::new();
        };
        let mut forced = Vec::new();
        let pid = rustix::process::Pid::from_child(&child);
        let family = descendants(pid.as_raw_nonzero().get());
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + DOCKERD_STOP;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() >= deadline {
                forced.push(format!(
                    "dockerd {pid:?} (ignored SIGTERM for {DOCKERD_STOP:?})"
                ));
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        // Its containerd normally stops with it; give it a moment, then make sure.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let alive: Vec<_> = family
                .iter()
                .filter(|(p, start)| start_time(*p) == Some(*start))
                .collect();
            if alive.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for (p, start) in alive {
                    forced.push(format!("{} (pid {p}, left after dockerd)", comm(*p)));
                    if start_time(*p) == Some(*start)
                        && let Some(p) = rustix::process::Pid::from_raw(*p)
                    {
                        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                    }
                }
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        forced
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let forced = self.stop();
        if !forced.is_empty() {
            eprintln!("dockerd cleanup had to kill: {forced:?}");
        }
    }
}

/// Field `n` (1-based, as in proc(5)) of `/proc/PID/stat`, counting after the command
/// name (which may hold spaces and parentheses).
fn stat_field(pid: i32, n: usize) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(n - 3)?.parse().ok()
}

/// When `pid` started (clock ticks since boot): tells a process from a later one that
/// reused its PID.
fn start_time(pid: i32) -> Option<u64> {
    stat_field(pid, 22)
}

fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

/// Every live descendant of `root`, each with its start time.
fn descendants(root: i32) -> Vec<(i32, u64)> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok())
                && let (Some(ppid), Some(start)) = (stat_field(pid, 4), start_time(pid))
            {
                parent_of.push((pid, ppid as i32, start));
            }
        }
    }
    let mut found: Vec<(i32, u64)> = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(pid, ppid, start) in &parent_of {
            if ppid == p && !found.iter().any(|(f, _)| *f == pid) {
                found.push((pid, start));
                frontier.push(pid);
            }
        }
    }
    found
}

/// A tar archive (ustar) of regular files, mode 0644, owned by root, fixed mtime.
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    fn octal(field: &mut [u8], value: u64) {
        let text = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    }
    let mut out = Vec::new();
    for (name, data) in files {
        assert!(name.len() < 100, "tar name too long: {name}");
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], 1_700_000_000);
        h[148..156].fill(b' ');
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// A one-layer image in `docker save` form (what skopeo's `docker-archive:` reads),
/// tagged `repo_tag`, whose only file is `name` holding `content`. Returns the archive
/// and the layer's diff ID (`sha256:…` of the uncompressed layer tar), which every
/// copy of the image keeps in its config.
pub fn docker_archive(repo_tag: &str, name: &str, content: &[u8]) -> (Vec<u8>, String) {
    let layer = tar(&[(name, content)]);
    let diff_id = sha256_digest(&layer);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "docker-credential-lockbox e2e test"}],
    })
    .to_string();
    let config_name = format!(
        "{}.json",
        sha256_digest(config.as_bytes()).trim_start_matches("sha256:")
    );
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [repo_tag],
        "Layers": ["layer.tar"],
    }])
    .to_string();
    let archive = tar(&[
        ("manifest.json", manifest.as_bytes()),
        (&config_name, config.as_bytes()),
        ("layer.tar", &layer),
    ]);
    (archive, diff_id)
}
