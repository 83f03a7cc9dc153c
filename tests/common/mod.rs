//! The one harness of every integration-test suite.
//!
//! Each test binary (`tests/<binary>/main.rs`) includes it once (`#[path =
//! "../common/mod.rs"] mod common;`), its suites `use crate::common;`, and all build
//! on the same core, defined here:
//!
//! - [`World`]: one test's private world in a temporary directory — `home/` (HOME),
//!   `docker/` (DOCKER_CONFIG, so the default vault is `docker/lockbox/vault.json`),
//!   `run/` (XDG_RUNTIME_DIR, 0700, no agent; `run/lockbox` is LOCKBOX_AGENT_DIR), `keys/` (identities and passphrase files:
//!   the only place a secret may sit in plaintext) and `bin/` (first on PATH, with
//!   `docker-credential-lockbox` linked to the binary under test). Commands run with a
//!   cleared environment plus those variables, so the developer's Docker config, vault
//!   or agent never leaks in.
//! - [`run_bounded`]: every process runs in its own process group with a deadline; past
//!   it the whole group is killed and the test fails.
//! - [`require_tool`]: the one missing-tool policy — a missing tool fails the test when
//!   `CI` is set, and is a visible `skipped:` line elsewhere.
//! - [`secret_needles`] and [`find_secret`]: the no-secret-leaked-anywhere scan (plaintext,
//!   JSON and Go escapes, base64 at every alignment), used by every suite.
//! - [`FAST_KDF`]: the one cheap Argon2id cost for passphrase slots in tests.
//!
//! On top of it, one module per way of driving the binary: [`protocol`] (`TestEnv`,
//! byte-exact protocol runs, leak check on drop), [`manage`] (`Env`, the commands for
//! people with scripted helpers), [`clients`] (`ClientEnv`, real clients, registries and
//! daemons). `protocol`'s items are re-exported here, as the conformance suite uses them
//! unqualified.
#![allow(dead_code, unused_imports)] // each test binary uses a different part of the harness

pub mod clients;
pub mod manage;
pub mod plugin;
pub mod protocol;
pub mod sources;
pub mod token_servers;
pub mod users;

pub use protocol::*;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_docker-credential-lockbox");

/// The one cheap Argon2id cost (`m_cost_kib,t_cost,p_cost`) for passphrase slots in
/// tests (the binary warns about it on stderr, as it should).
pub const FAST_KDF: &str = "64,1,1";

/// Secrets shorter than this are not searched for at every base64 alignment: their
/// middle part would be too short to tell from chance.
pub const MIN_TRACKED: usize = 8;

/// An I/O result that panics naming what it did and the path it did it on (the
/// harness's errors always say which file: never a bare `Os { code: 2, … }`).
pub trait At<T> {
    /// The value, or a panic `WHAT PATH: ERROR`.
    fn at(self, what: &str, path: impl AsRef<Path>) -> T;
}

impl<T> At<T> for std::io::Result<T> {
    #[track_caller]
    fn at(self, what: &str, path: impl AsRef<Path>) -> T {
        self.unwrap_or_else(|e| panic!("{what} {}: {e}", path.as_ref().display()))
    }
}

/// True when running in CI (`CI` set to a non-empty value).
pub fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Where `scripts/test.sh` unpacks the Debian packages the tests need but that must not
/// be installed system-wide (`pass`, `docker-credential-pass`, tangd, the registry,
/// dockerd and its containerd and runc, the TPM2 libraries): `LOCKBOX_TEST_TOOLS`, else
/// `target/test-tools/root` when a previous run of the script left it.
pub fn test_tools_root() -> Option<PathBuf> {
    std::env::var_os("LOCKBOX_TEST_TOOLS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/root");
            d.is_dir().then_some(d)
        })
}

/// `system_path` (say `/usr/libexec/tangd`) in [`test_tools_root`] when it is there,
/// else the system's own.
pub fn test_tool_file(system_path: &str) -> PathBuf {
    test_tools_root()
        .map(|root| root.join(system_path.trim_start_matches('/')))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(system_path))
}

/// The private TPM2 libraries' directory, for `LD_LIBRARY_PATH` of `systemd-creds
/// --tpm2-device` (installed as packages they would pull in udev), when unpacked.
pub fn test_tools_lib() -> Option<PathBuf> {
    test_tools_root()
        .map(|root| root.join("usr/lib/x86_64-linux-gnu"))
        .filter(|d| d.is_dir())
}

/// The private bin directories ([`test_tools_root`]'s `usr/bin` and `usr/sbin`) in front
/// of `rest`, as a PATH.
pub fn path_with_test_tools(rest: &OsStr) -> OsString {
    let mut dirs: Vec<PathBuf> = test_tools_root()
        .map(|root| vec![root.join("usr/bin"), root.join("usr/sbin")])
        .unwrap_or_default();
    dirs.extend(std::env::split_paths(rest));
    std::env::join_paths(dirs).expect("PATH entries without ':'")
}

/// The PATH every test searches and gives its commands: the private tools
/// ([`path_with_test_tools`]) first, then the test process's own PATH.
pub fn test_path() -> OsString {
    let inherited =
        std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    path_with_test_tools(&inherited)
}

/// `tool` looked up on the tests' PATH ([`test_path`]), as a shell would.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = test_path();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// The missing-tool policy, for a tool found or not by any means (`present`): when it
/// is missing, the test fails under CI (naming how to install it) and elsewhere prints
/// `skipped: …` and the caller returns. Returns whether the test can go on.
pub fn require(present: bool, tool: &str, install: &str) -> bool {
    if !present {
        assert!(
            !ci(),
            "{tool} is not installed, and CI is set, so this test may not be skipped: install {install}"
        );
        eprintln!("skipped: {tool} is not installed (install {install})");
    }
    present
}

/// [`require`] for a tool on `PATH` from a Debian package.
pub fn require_tool(tool: &str, debian_package: &str) -> bool {
    require(
        which(tool).is_some(),
        tool,
        &format!("the Debian package `{debian_package}`"),
    )
}

/// [`require_tool`] for each `(tool, Debian package)`; false at the first missing one.
pub fn require_tools(tools: &[(&str, &str)]) -> bool {
    tools.iter().all(|(tool, pkg)| require_tool(tool, pkg))
}

/// One test's private world (see the module documentation).
pub struct World {
    dir: tempfile::TempDir,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// A new world under the system temp directory.
    pub fn new() -> Self {
        Self::with_prefix("lockbox-test-")
    }

    /// A new world whose directory name starts with `prefix`.
    pub fn with_prefix(prefix: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("temp dir");
        for d in ["home", "docker", "run", "keys", "bin"] {
            fs::create_dir(dir.path().join(d)).at("create a test directory", dir.path().join(d));
        }
        // An XDG_RUNTIME_DIR as systemd makes it, without an agent; keys/ is private.
        for d in ["run", "keys"] {
            fs::set_permissions(dir.path().join(d), fs::Permissions::from_mode(0o700))
                .at("chmod a test directory", dir.path().join(d));
        }
        symlink(BIN, dir.path().join("bin/docker-credential-lockbox")).at(
            "link the binary",
            dir.path().join("bin/docker-credential-lockbox"),
        );
        World { dir }
    }

    /// The world's directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the world.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `keys/`: identities and passphrase files (never scanned for leaks).
    pub fn keys_dir(&self) -> PathBuf {
        self.path("keys")
    }

    /// `bin/`, first on PATH.
    pub fn bin_dir(&self) -> PathBuf {
        self.path("bin")
    }

    /// `docker/`, the DOCKER_CONFIG.
    pub fn docker_dir(&self) -> PathBuf {
        self.path("docker")
    }

    /// `docker/config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.path("docker/config.json")
    }

    /// The default vault, `docker/lockbox/vault.json`.
    pub fn vault_path(&self) -> PathBuf {
        self.path("docker/lockbox/vault.json")
    }

    /// PATH for the world: `bin/` first, then [`test_path`].
    pub fn path_var(&self) -> OsString {
        let mut dirs = vec![self.bin_dir()];
        dirs.extend(std::env::split_paths(&test_path()));
        std::env::join_paths(dirs).expect("PATH")
    }

    /// Sets the world's location variables on `c` (PATH, HOME, DOCKER_CONFIG,
    /// XDG_RUNTIME_DIR, LOCKBOX_AGENT_DIR), leaving the rest of its environment as it is.
    pub fn set_location(&self, c: &mut Command) {
        c.env("PATH", self.path_var())
            .env("HOME", self.path("home"))
            .env("DOCKER_CONFIG", self.docker_dir())
            .env("XDG_RUNTIME_DIR", self.path("run"))
            // The agent's directory is a function of the uid (all tests run as one);
            // this world's own keeps parallel tests and the developer's agent apart.
            .env("LOCKBOX_AGENT_DIR", self.agent_dir());
    }

    /// This world's agent directory (`LOCKBOX_AGENT_DIR`): `run/lockbox`.
    pub fn agent_dir(&self) -> PathBuf {
        self.path("run/lockbox")
    }

    /// `program` with a cleared environment and the world's location variables.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear();
        self.set_location(&mut c);
        c
    }

    /// Every regular file under the world, except those under `keys/`.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        collect_files(self.root(), &self.keys_dir(), &mut out);
        out
    }

    /// The first file of the world (outside `keys/`) that holds one of `needles`:
    /// `(file, description of the needle)`.
    pub fn find_secret(&self, needles: &[(String, String)]) -> Option<(PathBuf, String)> {
        find_secret(&self.files(), needles)
    }
}

fn collect_files(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p == skip {
            continue;
        }
        // file_type() does not follow links: bin/'s link to the binary is not ours.
        match e.file_type() {
            Ok(t) if t.is_dir() => collect_files(&p, skip, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// Every form in which `secret` could sit in a file or an output line, each with a
/// description: the raw text, JSON-escaped (as serde writes it), with Go's
/// `encoding/json` escapes, and the parts of its base64 (standard and URL-safe) that do
/// not depend on what surrounds it, at each of the three alignments. With `user`, also
/// the base64 of `user:secret` (Docker's `auth` field), which catches short secrets.
pub fn secret_needles(user: Option<&str>, secret: &str) -> Vec<(String, String)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let what = match user {
        Some(u) => format!("a form of the secret of {u}"),
        None => "a form of a secret".to_owned(),
    };
    let go = |s: &str| {
        s.replace('&', "\\u0026")
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
    };
    let json = serde_json::to_string(secret).expect("JSON string");
    let json = json[1..json.len() - 1].to_owned();
    let mut forms = vec![secret.to_owned(), go(secret), json.clone(), go(&json)];
    for pad in 0..3 {
        let mut v = vec![0u8; pad];
        v.extend_from_slice(secret.as_bytes());
        for engine in [&STANDARD, &URL_SAFE] {
            let e = engine.encode(&v);
            let start = if pad == 0 { 0 } else { 4 };
            let end = e.len().saturating_sub(4);
            if end >= start + MIN_TRACKED {
                forms.push(e[start..end].to_owned());
            }
        }
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        forms.push(engine.encode(secret));
    }
    if let Some(u) = user {
        let pair = format!("{u}:{secret}");
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            forms.push(engine.encode(&pair));
        }
    }
    forms.retain(|f| !f.is_empty());
    forms.sort();
    forms.dedup();
    forms.into_iter().map(|f| (f, what.clone())).collect()
}

/// The first of `files` that holds one of `needles`.
pub fn find_secret(files: &[PathBuf], needles: &[(String, String)]) -> Option<(PathBuf, String)> {
    for p in files {
        let Ok(bytes) = fs::read(p) else { continue };
        for (needle, what) in needles {
            if contains(&bytes, needle.as_bytes()) {
                return Some((p.clone(), format!("{what} ({needle:?})")));
            }
        }
    }
    None
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// What a process's stdin is, for [`run_bounded`].
pub enum Input<'a> {
    /// `/dev/null`: not a terminal, immediate end of file.
    Closed,
    /// These bytes, then end of file.
    Bytes(&'a [u8]),
    /// A pipe that stays open and silent until the process exits: whatever reads it
    /// would wait forever (and the deadline would say so).
    HeldOpen,
}

/// What a process did: exit status and both outputs.
pub struct Finished {
    /// `program arg…` (never the environment, which may hold an identity).
    pub what: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// How a bounded run starts its process.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Its own process group (a client and the helpers it starts die together).
    Own,
    /// A new session: no controlling terminal, so a prompt fails at once.
    NewSession,
}

/// Runs `cmd` with `input` on stdin, capturing stdout and stderr; past `limit` the whole
/// process group is killed and the test fails with what was printed so far. A pipe still
/// held open 10 s after the process exited (something it started kept it) fails too.
pub fn run_bounded(mut cmd: Command, input: Input<'_>, group: Group, limit: Duration) -> Finished {
    let what = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    match group {
        Group::Own => {
            cmd.process_group(0);
        }
        Group::NewSession => {
            // SAFETY: only setsid(2), which is async-signal-safe, runs between fork
            // and exec.
            unsafe {
                cmd.pre_exec(|| {
                    rustix::process::setsid()
                        .map(drop)
                        .map_err(std::io::Error::from)
                });
            }
        }
    }
    cmd.stdin(match input {
        Input::Closed => Stdio::null(),
        Input::Bytes(_) | Input::HeldOpen => Stdio::piped(),
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut stdin = child.stdin.take();
    let writer = match (input, stdin.take()) {
        (Input::Bytes(bytes), Some(mut pipe)) => {
            // A process that exits without reading everything closes its end: a broken
            // pipe here is expected, not an error.
            let data = bytes.to_vec();
            Some(thread::spawn(move || {
                let _ = pipe.write_all(&data);
            }))
        }
        (Input::HeldOpen, Some(pipe)) => {
            stdin = Some(pipe);
            None
        }
        _ => None,
    };
    let out = reader(child.stdout.take().expect("piped stdout"));
    let err = reader(child.stderr.take().expect("piped stderr"));
    let Some(status) = wait_bounded_group(&mut child, limit) else {
        let (o, e) = (drain(out), drain(err));
        panic!(
            "{what} did not finish in {limit:?}; killed.\n--- stdout ---\n{}--- stderr ---\n{}",
            String::from_utf8_lossy(&o),
            String::from_utf8_lossy(&e)
        );
    };
    drop(stdin);
    if let Some(w) = writer {
        let _ = w.join();
    }
    Finished {
        what,
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

/// A pipe's bytes once every writer closed it; one held open by a process left behind
/// fails the test instead of hanging it.
fn collect(rx: Reader) -> Vec<u8> {
    rx.recv_timeout(Duration::from_secs(10)).expect(
        "a pipe stayed open 10 s after the process exited: something it started still holds it",
    )
}

/// What a killed process had printed, without waiting long.
fn drain(rx: Reader) -> Vec<u8> {
    rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default()
}

/// `child`'s exit status and whole output, waiting at most `limit` for it (and for
/// anything it started that still holds its stdout or stderr); past that the test
/// fails. For suites that spawn with their own stdio set-up (`setpriv`, `sudo`, `su`).
pub fn output_within(child: Child, limit: Duration) -> std::process::Output {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| {
            panic!(
                "the command (or something holding its stdout/stderr) did not finish in {limit:?}"
            )
        })
        .expect("wait for the command")
}

/// Waits for `child` at most `limit` (short polls, no long sleeps); kills it after.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    wait_until(child, limit, |c| {
        let _ = c.kill();
    })
}

/// Like [`wait_bounded`], but a timeout kills the child's whole process group.
pub fn wait_bounded_group(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    wait_until(child, limit, |c| {
        // Not reaped yet, so the group id is still ours.
        let _ = rustix::process::kill_process_group(
            rustix::process::Pid::from_child(c),
            rustix::process::Signal::KILL,
        );
    })
}

fn wait_until(child: &mut Child, limit: Duration, kill: impl Fn(&mut Child)) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_micros(200);
    loop {
        if let Some(s) = child.try_wait().expect("wait for the child") {
            return Some(s);
        }
        if Instant::now() >= deadline {
            kill(child);
            let _ = child.wait();
            return None;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// The `store` payload clients send.
pub fn store_json(server: &str, username: &str, secret: &str) -> String {
    serde_json::json!({"ServerURL": server, "Username": username, "Secret": secret}).to_string()
}

/// Seconds since the Unix epoch, now (the tests' own clock, independent of the crate's).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// `secs` since the epoch as RFC 3339 in UTC, whole seconds (as `expiry set` takes and
/// `get`'s warning prints them).
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}
