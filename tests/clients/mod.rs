//! What the real-client tests share: the tool policy (skip locally, fail in CI), a
//! bounded way to run a client, a per-test environment (temp `HOME`, `DOCKER_CONFIG`
//! with `credsStore: lockbox`, a vault opened by a fresh age identity, a bin directory
//! that puts the helper on `PATH`), the CNCF distribution registry on 127.0.0.1 with
//! htpasswd auth, and a stand-in Docker daemon for the one CLI path that needs one.
//!
//! Every process started here is stopped by its PID (its process group on a timeout),
//! and every wait is bounded.
#![allow(dead_code)] // each test binary uses its own part of this module

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

/// The helper under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_docker-credential-lockbox");

/// How long one client command may take before it is killed and the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// True when running in CI (`CI` set to any non-empty value): a missing tool is then
/// a failure, not a skip.
pub fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// The tool policy: `present` or, when a tool is missing, fail in CI and say what was
/// skipped elsewhere. Returns whether the test can go on.
pub fn require(present: bool, tool: &str, install: &str) -> bool {
    if !present {
        assert!(
            !ci(),
            "{tool} is not installed, and CI must run this test: install {install}"
        );
        eprintln!("skipped: {tool} not installed (install {install})");
    }
    present
}

/// `name` looked up on `PATH`, as a shell would.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Every tool named here, each with the Debian package that provides it; false (after
/// [`require`]) at the first one missing.
pub fn require_tools(tools: &[(&str, &str)]) -> bool {
    tools.iter().all(|(tool, pkg)| {
        require(
            which(tool).is_some(),
            tool,
            &format!("Debian package {pkg}"),
        )
    })
}

/// What a client's stdin is.
pub enum Input<'a> {
    /// `/dev/null`: not a terminal, immediate end of file.
    Closed,
    /// These bytes, then end of file.
    Bytes(&'a [u8]),
    /// A pipe that stays open and silent until the process exits: whatever reads it
    /// would wait forever (and the timeout would say so).
    HeldOpen,
}

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
pub fn run(mut cmd: Command, input: Input<'_>) -> Output {
    // Program and arguments only: the environment holds the test's age identity.
    let what = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    cmd.process_group(0)
        .stdin(match input {
            Input::Closed => Stdio::null(),
            Input::Bytes(_) | Input::HeldOpen => Stdio::piped(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut stdin = child.stdin.take();
    if let (Input::Bytes(bytes), Some(mut pipe)) = (input, stdin.take()) {
        // The client reads all of stdin before it does anything, and the input is
        // small, so writing it here cannot fill the pipe while the client waits on us.
        // A client that does not read it at all closes its end: ignore that error.
        let _ = pipe.write_all(bytes);
    }
    let out = reader(child.stdout.take().expect("piped stdout"));
    let err = reader(child.stderr.take().expect("piped stderr"));

    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the client") {
            break status;
        }
        if Instant::now() >= deadline {
            // Not reaped yet, so the group id is still ours.
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(&child),
                rustix::process::Signal::KILL,
            );
            let _ = child.wait();
            let (o, e) = (collect(out), collect(err));
            panic!(
                "{what} did not finish in {COMMAND_TIMEOUT:?}; killed.\n--- stdout ---\n{o}--- stderr ---\n{e}"
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    Output {
        status,
        stdout: collect(out),
        stderr: collect(err),
    }
}

type Reader = mpsc::Receiver<Vec<u8>>;

fn reader(mut pipe: impl Read + Send + 'static) -> Reader {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// The text of a pipe, once every writer has closed it. A process left behind holding
/// the pipe (a helper that did not close its stdout) fails the test instead of hanging.
fn collect(rx: Reader) -> String {
    let bytes = rx.recv_timeout(Duration::from_secs(10)).expect(
        "a pipe stayed open 10 s after the client exited: something it started still holds it",
    );
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One test's world: temp `HOME`, `DOCKER_CONFIG` (`{"credsStore":"lockbox"}` and a
/// vault opened by a fresh age identity), `XDG_RUNTIME_DIR`, and a bin directory whose
/// `docker-credential-lockbox` is the binary under test.
pub struct ClientEnv {
    dir: tempfile::TempDir,
    identity: String,
}

impl ClientEnv {
    /// Needs `age-keygen` (checked by the caller).
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("lockbox-rc-")
            .tempdir()
            .expect("temp dir");
        for d in ["home", "docker", "run", "bin"] {
            fs::create_dir(dir.path().join(d)).expect("create test dir");
        }
        fs::set_permissions(dir.path().join("run"), fs::Permissions::from_mode(0o700))
            .expect("chmod run dir");
        let key_file = dir.path().join("age-identity.txt");
        let mut keygen = Command::new("age-keygen");
        keygen.arg("-o").arg(&key_file);
        let keygen = run(keygen, Input::Closed);
        assert!(keygen.ok(), "age-keygen: {}", keygen.describe());
        let identity = fs::read_to_string(&key_file).expect("read the age identity");
        let recipient = identity
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .expect("age-keygen writes the public key as a comment")
            .to_owned();

        let env = ClientEnv { dir, identity };
        env.link_helper("lockbox");
        fs::write(env.config_json(), "{\"credsStore\":\"lockbox\"}\n").expect("write config.json");
        let init = env.lockbox(&["init", "--recipient", &recipient], false, Input::Closed);
        assert!(init.ok(), "init: {}", init.describe());
        assert!(
            env.vault().is_file(),
            "init made no vault at {:?}",
            env.vault()
        );
        env
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
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
        fs::read(self.vault()).expect("read the vault")
    }

    /// Makes `docker-credential-<name>` in the bin directory run the helper under test.
    pub fn link_helper(&self, name: &str) {
        symlink(
            BIN,
            self.path("bin").join(format!("docker-credential-{name}")),
        )
        .expect("symlink the helper");
    }

    /// `program` with this test's environment: the bin directory first on `PATH`, temp
    /// `HOME`/`DOCKER_CONFIG`/`XDG_RUNTIME_DIR`, a `DOCKER_HOST` socket that does not
    /// exist, no inherited `DOCKER_*`/`LOCKBOX_*`/proxy variables, and the age identity
    /// in `LOCKBOX_IDENTITY` only when `unlocked`.
    pub fn command(&self, program: impl AsRef<OsStr>, unlocked: bool) -> Command {
        let mut c = Command::new(program);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            let lower = k.to_ascii_lowercase();
            if k.starts_with("DOCKER_") || k.starts_with("LOCKBOX_") || lower.ends_with("_proxy") {
                c.env_remove(&*k);
            }
        }
        let mut path = vec![self.path("bin")];
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        c.env("PATH", std::env::join_paths(path).expect("PATH"))
            .env("HOME", self.path("home"))
            .env("DOCKER_CONFIG", self.docker_config())
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env(
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
        fs::write(dir.path().join("htpasswd"), htpasswd.stdout).expect("write htpasswd");
        fs::create_dir(dir.path().join("storage")).expect("create storage dir");

        // A free port can be taken between our probe and the registry's bind; then the
        // registry exits at once and we try another.
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            fs::write(&config, registry_config(dir.path(), port)).expect("write config.yml");
            let log = fs::File::create(dir.path().join("registry.log")).expect("log file");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .env_clear() // REGISTRY_* variables would override the config
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
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
    let text = fs::read_to_string(config).expect("read config.json");
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
