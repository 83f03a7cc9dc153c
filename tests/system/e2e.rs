//! End to end with a real Docker daemon: Debian's `dockerd` (run as root, all of its
//! state in a temp dir, API on a private Unix socket), the CNCF distribution registry on
//! 127.0.0.1 with htpasswd auth, the machine's Docker CLI, docker-py
//! (`tests/common/dockerpy_e2e.py`) and skopeo, every credential through the built
//! helper.
//!
//! `docker_daemon_end_to_end` starts one registry and one daemon and runs the same
//! phases twice: with the vault opened by an age identity (`LOCKBOX_IDENTITY`), then by
//! the agent after `unlock --passphrase-file` (no identity variable; its own
//! `XDG_RUNTIME_DIR`; `lock --all` at the end). A wrapper around the helper logs which
//! actions the clients ran (`ClientEnv::trace_helper`), so each phase shows the
//! credentials came through it.
//!
//! Then, on the same daemon, the reboot of docs/BUILD_SERVER.md section 5
//! (`build_user_pulls_after_a_reboot`): a `useradd` build user, given the test daemon's
//! socket through its group (never the system's `/var/run/docker.sock`), has a vault
//! whose one slot is an age identity root sealed with `systemd-creds encrypt
//! --with-key=host`; with that credential decrypted for the user's agent as systemd's
//! `LoadCredentialEncrypted=` would (systemd is not PID 1 here, so root's `systemd-creds
//! decrypt` stands in), the user's `docker pull` from `env -i` works with nobody typing,
//! and is refused once the agent got SIGTERM. This makes a user and uses its real agent
//! directory `/tmp/lockbox-<uid>`, so the test runs in the `uid-rule` serial group
//! (`.config/nextest.toml`).
//!
//! Needs `docker` (the CLI), `dockerd` (Debian package docker.io), root, `docker-registry`,
//! `htpasswd` (apache2-utils), `age-keygen` (age), `skopeo`, and a Python with the
//! `docker` package (`LOCKBOX_TEST_PYTHON`, default `python3`); the reboot phase also
//! `systemd-creds` (systemd), `setpriv` and `flock` (util-linux) and `useradd` (passwd).
//! A missing tool, or no root, skips with a note (a missing docker-py or reboot tool
//! skips only its phase) — or fails when `CI` is set. `scripts/test.sh` installs them.
use crate::common;

use common::clients;
use common::users::TestUser;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clients::{ClientEnv, Dockerd, Input, Output, Registry, assert_config_has_no_secret};

const USER: &str = "e2e-user";
const PASSWORD: &str = "e2e-Lockbox-pw-7";
const PASSPHRASE: &str = "correct horse battery e2e";
const LOCKED: &str =
    "lockbox is locked: run 'docker-credential-lockbox unlock' or set LOCKBOX_IDENTITY";

/// The file in every test image.
const IMAGE_FILE: (&str, &[u8]) = ("hello.txt", b"hello from the lockbox e2e suite\n");

/// stdout and stderr together: what the person at the terminal sees.
fn seen(out: &Output) -> String {
    format!("{}{}", out.stdout, out.stderr)
}

/// The registry refused the daemon for want of credentials.
fn auth_refused(out: &Output) -> bool {
    let text = seen(out);
    [
        "no basic auth credentials",
        "unauthorized",
        "authentication required",
    ]
    .iter()
    .any(|s| text.contains(s))
}

fn python() -> String {
    std::env::var("LOCKBOX_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn python_has_docker(python: &str) -> bool {
    if clients::which(python).is_none() && !Path::new(python).is_file() {
        return false;
    }
    let mut c = Command::new(python);
    c.args(["-c", "import docker"])
        .env_clear()
        .env("PATH", common::test_path());
    clients::run(c, Input::Closed).ok()
}

// ---------------------------------------------------------------------------------
// The Docker daemon
// ---------------------------------------------------------------------------------

#[test]
fn docker_daemon_end_to_end() {
    if !clients::require_tools(&[
        ("docker", "docker.io (the Docker CLI)"),
        ("docker-registry", "docker-registry"),
        ("htpasswd", "apache2-utils"),
        ("age-keygen", "age"),
    ]) || !clients::require(
        clients::dockerd_path().is_some(),
        "dockerd",
        "Debian package docker.io",
    ) || !clients::require_root("docker_daemon_end_to_end")
    {
        return;
    }
    let python = python();
    let dockerpy = clients::require(
        python_has_docker(&python),
        &format!("{python} with the docker module (the docker-py phase)"),
        "PyPI package docker (pip install docker==7.1.0) and set LOCKBOX_TEST_PYTHON",
    )
    .then_some(python);
    let reboot = clients::require_tools(&[
        ("systemd-creds", "systemd"),
        ("setpriv", "util-linux"),
        ("useradd", "passwd"),
        ("flock", "util-linux"),
    ]);

    let started = Instant::now();
    let registry = Registry::start(USER, PASSWORD);
    assert!(
        registry.refuses_anonymous(),
        "the registry must have htpasswd auth on"
    );
    let mut daemon = Dockerd::start();
    eprintln!(
        "e2e: dockerd {} at {}, registry at {} ({:.1?})",
        daemon.version,
        daemon.host(),
        registry.address(),
        started.elapsed()
    );
    for key in [Key::Identity, Key::Agent] {
        let t = Instant::now();
        Pass::new(key, &daemon, &registry).run(dockerpy.as_deref());
        eprintln!("e2e: {key:?} pass done in {:.1?}", t.elapsed());
    }
    let t = Instant::now();
    for agent in [false, true] {
        super::sources_e2e::exec_source_pushes_and_pulls_twice(
            &daemon, &registry, USER, PASSWORD, agent,
        );
    }
    super::sources_e2e::oauth2_source_through_the_agent(&daemon, &registry, USER, PASSWORD);
    eprintln!("e2e: sources phase done in {:.1?}", t.elapsed());
    if reboot {
        let t = Instant::now();
        build_user_pulls_after_a_reboot(&daemon, &registry);
        eprintln!("e2e: reboot phase done in {:.1?}", t.elapsed());
    }
    let forced = daemon.stop();
    assert!(
        forced.is_empty(),
        "dockerd did not shut down cleanly; killed: {forced:?}"
    );
    eprintln!("e2e: total {:.1?}", started.elapsed());
}

/// What opens the vault for `get` in a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// `LOCKBOX_IDENTITY` in the client's environment.
    Identity,
    /// The agent, after `unlock --passphrase-file`; no key variable anywhere.
    Agent,
}

struct Pass<'a> {
    key: Key,
    env: ClientEnv,
    daemon: &'a Dockerd,
    server: String,
}

/// `lock --all` when a pass ends, however it ends: the agent stops.
struct AgentGuard<'a>(&'a ClientEnv);

impl Drop for AgentGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.lockbox(&["lock", "--all"], false, Input::Closed);
    }
}

impl<'a> Pass<'a> {
    fn new(key: Key, daemon: &'a Dockerd, registry: &Registry) -> Self {
        let env = ClientEnv::with_passphrase(PASSPHRASE);
        env.trace_helper();
        Pass {
            key,
            env,
            daemon,
            server: registry.address(),
        }
    }

    fn run(&self, dockerpy: Option<&str>) {
        let _agent = (self.key == Key::Agent).then(|| {
            self.unlock();
            AgentGuard(&self.env)
        });
        self.wrong_password_stores_nothing();
        self.login_stores_in_the_vault();
        self.login_reuses_stored_credentials();
        self.push_and_pull();
        self.classic_build_pulls_with_list_and_get();
        if let Some(python) = dockerpy {
            self.dockerpy(python);
        }
        self.wrong_password_keeps_the_entry();
        self.logout_erases();
        self.locked_vault();
        self.finish();
    }

    fn step(&self, what: &str) {
        eprintln!("e2e: {:?}: {what}", self.key);
    }

    fn image(&self, name: &str) -> String {
        format!("{}/e2e/{name}", self.server)
    }

    /// The Docker CLI on the daemon, with the pass's key unless `locked`.
    fn docker_cmd(&self, args: &[&str], locked: bool) -> Command {
        let mut c = self
            .env
            .command("docker", self.key == Key::Identity && !locked);
        c.env("DOCKER_HOST", self.daemon.host()).args(args);
        c
    }

    fn docker(&self, args: &[&str], input: Input<'_>) -> Output {
        clients::run(self.docker_cmd(args, false), input)
    }

    /// The Docker CLI with no key anywhere (the agent, if any, locked by the caller).
    fn docker_locked(&self, args: &[&str]) -> Output {
        clients::run(self.docker_cmd(args, true), Input::Closed)
    }

    fn lockbox(&self, args: &[&str], input: Input<'_>) -> Output {
        self.env.lockbox(args, self.key == Key::Identity, input)
    }

    /// `get` with the pass's key: `Some((username, secret))`, `None` when not found.
    fn get(&self) -> Option<(String, String)> {
        let out = self.lockbox(&["get"], Input::Bytes(self.server.as_bytes()));
        if !out.ok() {
            assert_eq!(
                out.stdout,
                "credentials not found in native keychain\n",
                "{}",
                out.describe()
            );
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("get prints JSON");
        Some((
            v["Username"].as_str().expect("Username").to_owned(),
            v["Secret"].as_str().expect("Secret").to_owned(),
        ))
    }

    fn stored(&self) -> Option<(String, String)> {
        Some((USER.to_owned(), PASSWORD.to_owned()))
    }

    /// The helper calls since the last look; each of `want` must be among them.
    fn calls(&self, what: &str, want: &[&str]) -> Vec<String> {
        let calls = self.env.helper_calls();
        for w in want {
            assert!(
                calls.iter().any(|c| c == w),
                "{what}: the helper was not called with {w:?}; calls: {calls:?}"
            );
        }
        calls
    }

    fn login(&self, password: &str, locked: bool) -> Output {
        let c = self.docker_cmd(
            &["login", "-u", USER, "--password-stdin", &self.server],
            locked,
        );
        clients::run(c, Input::Bytes(format!("{password}\n").as_bytes()))
    }

    fn image_id(&self, reference: &str) -> Option<String> {
        let out = self.docker(
            &["image", "inspect", "--format", "{{.Id}}", reference],
            Input::Closed,
        );
        out.ok().then(|| out.stdout.trim().to_owned())
    }

    fn remove_images(&self, references: &[&str]) {
        for r in references {
            if self.image_id(r).is_some() {
                let out = self.docker(&["rmi", "--force", r], Input::Closed);
                assert!(out.ok(), "docker rmi {r}: {}", out.describe());
            }
            assert_eq!(self.image_id(r), None, "{r} is still there");
        }
    }

    /// `docker import` of a one-file rootfs as `reference`; its image ID.
    fn import(&self, reference: &str) -> String {
        let tarball = self.env.path("rootfs.tar");
        fs::write(&tarball, clients::tar(&[IMAGE_FILE])).expect("write the rootfs tarball");
        let out = self.docker(
            &["import", tarball.to_str().expect("utf-8 path"), reference],
            Input::Closed,
        );
        assert!(out.ok(), "docker import: {}", out.describe());
        let id = out.stdout.trim().to_owned();
        assert_eq!(self.image_id(reference).as_deref(), Some(id.as_str()));
        id
    }

    // --- phases ----------------------------------------------------------------------

    fn unlock(&self) {
        self.step("unlock --passphrase-file (the agent holds the key)");
        let pass_file = self.env.passphrase_file();
        let out = self.env.lockbox(
            &[
                "unlock",
                "--passphrase-file",
                pass_file.to_str().expect("utf-8 path"),
                "--timeout",
                "30m",
            ],
            false,
            Input::Closed,
        );
        assert!(out.ok(), "unlock: {}", out.describe());
        let status = self
            .env
            .lockbox(&["status", "--json"], false, Input::Closed);
        assert!(status.ok(), "status after unlock: {}", status.describe());
        let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("status --json");
        assert_eq!(v["key_source"], "agent", "{v}");
    }

    fn wrong_password_stores_nothing(&self) {
        self.step("docker login with a wrong password stores nothing");
        let before = self.env.vault_bytes();
        let out = self.login("not-the-password", false);
        assert!(!out.ok(), "a wrong password logged in: {}", out.describe());
        assert!(seen(&out).contains("401"), "{}", out.describe());
        assert_eq!(
            self.env.vault_bytes(),
            before,
            "a refused login changed the vault"
        );
        assert!(self.env.list().is_empty());
        let calls = self.calls("refused login", &[]);
        assert!(
            !calls.iter().any(|c| c == "store"),
            "a refused login stored: {calls:?}"
        );
    }

    fn login_stores_in_the_vault(&self) {
        self.step("docker login -u … --password-stdin");
        let out = self.login(PASSWORD, false);
        assert!(out.ok(), "docker login: {}", out.describe());
        assert!(out.stdout.contains("Login Succeeded"), "{}", out.describe());
        assert!(
            !seen(&out).contains("stored unencrypted"),
            "the CLI did not use the helper: {}",
            out.describe()
        );
        self.calls("docker login", &["store"]);
        let list = self.env.list();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[&self.server], USER, "stored under host:port");
        assert_eq!(self.get(), self.stored());
        assert_config_has_no_secret(&self.env.config_json(), USER, PASSWORD);
    }

    fn login_reuses_stored_credentials(&self) {
        self.step("docker login with no -u reuses the stored credentials");
        let out = self.docker(&["login", &self.server], Input::Closed);
        assert!(out.ok(), "docker login (stored): {}", out.describe());
        assert!(
            seen(&out).contains(&format!(
                "Authenticating with existing credentials... [Username: {USER}]"
            )),
            "{}",
            out.describe()
        );
        assert!(out.stdout.contains("Login Succeeded"), "{}", out.describe());
        self.calls("docker login (stored)", &[&format!("get {}", self.server)]);
        assert_eq!(self.env.list().len(), 1);
        assert_eq!(self.get(), self.stored());
        assert_config_has_no_secret(&self.env.config_json(), USER, PASSWORD);
    }

    fn push_and_pull(&self) {
        let base = self.image("base:1");
        self.remove_images(&[&base]);
        self.step("docker import, push, rmi, pull");
        let id = self.import(&base);
        let out = self.docker(&["push", &base], Input::Closed);
        assert!(out.ok(), "docker push: {}", out.describe());
        self.calls("docker push", &[&format!("get {}", self.server)]);

        self.remove_images(&[&base]);
        // htpasswd auth is on: with no credentials the daemon is refused.
        let mut anonymous = self.daemon.cli();
        anonymous.args(["pull", &base]);
        let out = clients::run(anonymous, Input::Closed);
        assert!(!out.ok(), "an anonymous pull succeeded: {}", out.describe());
        assert!(auth_refused(&out), "{}", out.describe());
        assert_eq!(self.image_id(&base), None);

        let out = self.docker(&["pull", &base], Input::Closed);
        assert!(out.ok(), "docker pull: {}", out.describe());
        self.calls("docker pull", &[&format!("get {}", self.server)]);
        assert_eq!(self.image_id(&base), Some(id), "pulled another image");
    }

    fn write_build_context(&self) -> PathBuf {
        let ctx = self.env.path("build");
        fs::create_dir_all(&ctx).expect("create the build context");
        fs::write(
            ctx.join("Dockerfile"),
            format!(
                "FROM {}\nLABEL org.example.lockbox-e2e=\"classic builder\"\n",
                self.image("base:1")
            ),
        )
        .expect("write the Dockerfile");
        ctx
    }

    fn classic_build(&self, locked: bool) -> Output {
        let ctx = self.write_build_context();
        let built = self.image("built:1");
        let mut c = self.docker_cmd(
            &["build", "-t", &built, ctx.to_str().expect("utf-8 path")],
            locked,
        );
        c.env("DOCKER_BUILDKIT", "0");
        clients::run(c, Input::Closed)
    }

    /// The classic builder sends every stored credential with the build (`list`, then
    /// `get` for each entry); the daemon pulls `FROM` with the one for the registry.
    fn classic_build_pulls_with_list_and_get(&self) {
        let (base, built) = (self.image("base:1"), self.image("built:1"));
        self.remove_images(&[&base, &built]);
        self.step("DOCKER_BUILDKIT=0 docker build, FROM the registry");
        let out = self.classic_build(false);
        assert!(out.ok(), "docker build: {}", out.describe());
        assert!(
            out.stdout.contains("Successfully tagged"),
            "{}",
            out.describe()
        );
        let get = format!("get {}", self.server);
        let calls = self.calls("classic build", &["list", &get]);
        let (list_at, get_at) = (
            calls.iter().position(|c| c == "list"),
            calls.iter().position(|c| *c == get),
        );
        assert!(list_at < get_at, "list then get: {calls:?}");
        assert!(
            self.image_id(&base).is_some(),
            "the daemon did not pull FROM"
        );
        assert!(self.image_id(&built).is_some());
    }

    fn dockerpy(&self, python: &str) {
        self.step("docker-py: credentials.Store, auth, pull and push through the daemon");
        let image = self.image("py:1");
        self.remove_images(&[&image]);
        self.import(&image);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/dockerpy_e2e.py");
        let mut c = self.env.command(python, self.key == Key::Identity);
        c.arg(script).args([
            &self.server,
            self.daemon.socket().to_str().expect("utf-8 path"),
            &self.image("py"),
            "1",
            USER,
            PASSWORD,
        ]);
        // stdin stays open and silent: docker-py's `list` hands it to the helper, which
        // must not read it.
        let out = clients::run(c, Input::HeldOpen);
        eprintln!("{}", out.stdout.trim_end());
        assert!(out.ok(), "docker-py: {}", out.describe());
        let last = out.stdout.lines().last().unwrap_or("");
        assert!(last.ends_with(" passed, 0 failed"), "{}", out.describe());
        let get = format!("get {}", self.server);
        self.calls(
            "docker-py",
            &["list", &get, "store", &format!("erase {}", self.server)],
        );
        assert_eq!(self.get(), self.stored());
        self.remove_images(&[&image]);
    }

    fn wrong_password_keeps_the_entry(&self) {
        self.step("docker login with a wrong password keeps the stored entry");
        let before = self.env.vault_bytes();
        let out = self.login("not-the-password", false);
        assert!(!out.ok(), "a wrong password logged in: {}", out.describe());
        assert_eq!(
            self.env.vault_bytes(),
            before,
            "a refused login changed the vault"
        );
        assert_eq!(self.get(), self.stored());
        self.env.helper_calls();
    }

    fn logout_erases(&self) {
        self.step("docker logout, then a pull is refused");
        let out = self.docker(&["logout", &self.server], Input::Closed);
        assert!(out.ok(), "docker logout: {}", out.describe());
        assert!(
            !seen(&out).contains("could not erase"),
            "{}",
            out.describe()
        );
        self.calls("docker logout", &[&format!("erase {}", self.server)]);
        assert!(
            self.env.list().is_empty(),
            "logout left {:?}",
            self.env.list()
        );
        assert_eq!(self.get(), None);
        assert_config_has_no_secret(&self.env.config_json(), USER, PASSWORD);

        let base = self.image("base:1");
        self.remove_images(&[&base, &self.image("built:1")]);
        let out = self.docker(&["pull", &base], Input::Closed);
        assert!(
            !out.ok(),
            "a pull after logout succeeded: {}",
            out.describe()
        );
        assert!(auth_refused(&out), "{}", out.describe());
        assert_eq!(self.image_id(&base), None);
    }

    /// An entry stored, no key (no identity, no agent): `docker pull` and the classic
    /// build fail, and the person sees lockbox's locked message — not a silent
    /// anonymous pull, not a hang, not "no credentials". Docker CLI 28 ignores the
    /// failed `get` on both paths and asks the registry with no credentials (refused:
    /// htpasswd auth is on), so the message reaches the person only because the helper
    /// also writes it to stderr, which the CLI passes through.
    fn locked_vault(&self) {
        self.step("locked: login and list work, pull and build fail with the locked message");
        let out = self.login(PASSWORD, true);
        assert!(out.ok(), "locked docker login: {}", out.describe());
        assert_eq!(self.env.list()[&self.server], USER);
        if self.key == Key::Agent {
            let out = self.env.lockbox(&["lock"], false, Input::Closed);
            assert!(out.ok(), "lock: {}", out.describe());
        }
        let status = self
            .env
            .lockbox(&["status", "--quiet"], false, Input::Closed);
        assert_eq!(status.status.code(), Some(3), "{}", status.describe());
        self.env.helper_calls();

        let base = self.image("base:1");
        let out = self.docker_locked(&["pull", &base]);
        assert!(!out.ok(), "a locked pull succeeded: {}", out.describe());
        assert!(
            seen(&out).contains(LOCKED),
            "the locked message did not reach the person: {}",
            out.describe()
        );
        self.calls("locked pull", &[&format!("get {}", self.server)]);
        assert_eq!(self.image_id(&base), None);

        let out = self.classic_build(true);
        assert!(!out.ok(), "a locked build succeeded: {}", out.describe());
        assert!(
            seen(&out).contains(LOCKED),
            "the locked message did not reach the person: {}",
            out.describe()
        );
        self.calls("locked build", &["list", &format!("get {}", self.server)]);
        assert_eq!(self.image_id(&base), None);

        // The key back: what was stored while locked works.
        if self.key == Key::Agent {
            self.unlock();
        }
        let out = self.docker(&["pull", &base], Input::Closed);
        assert!(out.ok(), "docker pull after unlock: {}", out.describe());
        assert!(self.image_id(&base).is_some());
    }

    fn finish(&self) {
        self.step("clean up");
        let out = self.docker(&["logout", &self.server], Input::Closed);
        assert!(out.ok(), "docker logout: {}", out.describe());
        assert!(self.env.list().is_empty());
        self.remove_images(&[&self.image("base:1"), &self.image("built:1")]);
        if self.key == Key::Agent {
            self.stop_agent();
        }
    }

    fn stop_agent(&self) {
        self.step("lock --all stops the agent");
        let status = self
            .env
            .lockbox(&["status", "--json"], false, Input::Closed);
        let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("status --json");
        let pid = v["agent"]["pid"].as_u64().expect("the agent's pid") as i32;
        let out = self.env.lockbox(&["lock", "--all"], false, Input::Closed);
        assert!(out.ok(), "lock --all: {}", out.describe());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                Instant::now() < deadline,
                "the agent (pid {pid}) still runs 10 s after lock --all"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = self
            .env
            .lockbox(&["status", "--quiet"], false, Input::Closed);
        assert_eq!(status.status.code(), Some(3), "{}", status.describe());
    }
}

// ---------------------------------------------------------------------------------
// After a reboot: a build user's `docker pull`, from a host-sealed credential
// ---------------------------------------------------------------------------------

/// The image the build user pulls (root pushes it).
const BUILD_IMAGE: &str = "e2e/reboot:1";
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A build user made for the phase (`useradd`, home 0700 in a temp dir others may pass
/// through), with a bin directory holding the tracing helper wrapper. Dropping it
/// removes the user and its agent directory `/tmp/lockbox-<uid>`.
struct BuildUser(TestUser);

impl std::ops::Deref for BuildUser {
    type Target = TestUser;
    fn deref(&self) -> &TestUser {
        &self.0
    }
}

impl BuildUser {
    fn new() -> BuildUser {
        use std::os::unix::fs::PermissionsExt;
        let u = BuildUser(TestUser::new("lbe", ""));
        let docker = u.docker_config();
        fs::create_dir(&docker).expect("create ~/.docker");
        fs::set_permissions(&docker, fs::Permissions::from_mode(0o700)).expect("chmod ~/.docker");
        u.chown(&docker);
        fs::write(docker.join("config.json"), "{\"credsStore\":\"lockbox\"}\n")
            .expect("write config.json");
        u.chown(&docker.join("config.json"));
        let bin = u.root.path().join("bin");
        fs::create_dir(&bin).expect("create the bin directory");
        clients::write_trace_wrapper(
            &bin.join("docker-credential-lockbox"),
            &u.calls_log(),
            &u.home(),
        );
        u
    }

    fn docker_config(&self) -> PathBuf {
        self.home().join(".docker")
    }

    fn calls_log(&self) -> PathBuf {
        self.home().join("helper-calls.log")
    }

    /// The helper calls the user's clients made since the last look; clears the log.
    fn helper_calls(&self) -> Vec<String> {
        let text = fs::read_to_string(self.calls_log()).unwrap_or_default();
        let _ = fs::remove_file(self.calls_log());
        text.lines().map(str::to_owned).collect()
    }

    /// The user's real agent socket (a function of the uid only).
    fn agent_socket(&self) -> PathBuf {
        self.agent_dir().join("agent.sock")
    }

    /// `program` as this user from `env -i` with exactly HOME, PATH (the wrapper's bin
    /// directory first), DOCKER_HOST (the test daemon) and DOCKER_CONFIG: what cron or
    /// a runner service gives a build. No key variable, no CREDENTIALS_DIRECTORY.
    fn command(&self, daemon: &Dockerd, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .args(["env", "-i"])
            .arg(format!("HOME={}", self.home().display()))
            .arg(format!(
                "PATH={}:{}",
                self.root.path().join("bin").display(),
                // the docker CLI where scripts/test.sh unpacked it, if it did
                common::path_with_test_tools(SYSTEM_PATH.as_ref()).to_string_lossy()
            ))
            .arg(format!("DOCKER_HOST={}", daemon.host()))
            .arg(format!("DOCKER_CONFIG={}", self.docker_config().display()))
            .arg(program)
            .args(args);
        c
    }

    fn run(&self, daemon: &Dockerd, program: &str, args: &[&str], input: Input<'_>) -> Output {
        clients::run(self.command(daemon, program, args), input)
    }
}

/// The daemon's socket open to the build user's group while the phase runs.
struct SharedSocket<'a>(&'a Dockerd);

impl<'a> SharedSocket<'a> {
    fn new(daemon: &'a Dockerd, gid: u32) -> Self {
        daemon.share_socket(gid);
        SharedSocket(daemon)
    }
}

impl Drop for SharedSocket<'_> {
    fn drop(&mut self) {
        self.0.unshare_socket();
    }
}

/// `lockbox-agent@USER.service`'s `ExecStart=` (`agent --foreground`) run the way
/// systemd runs the template: the user's uid and groups, PATH, HOME, USER, LOGNAME,
/// SHELL, and CREDENTIALS_DIRECTORY. Its output goes to a log file (the journal).
/// Stopped by PID: SIGTERM in [`CredentialAgent::stop`], SIGKILL when dropped.
struct CredentialAgent {
    child: Option<std::process::Child>,
    log: PathBuf,
}

impl CredentialAgent {
    fn start(u: &BuildUser, credentials: &Path) -> CredentialAgent {
        let log = u.root.path().join("agent.log");
        let file = fs::File::create(&log).expect("create the agent's log");
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
            .arg(format!("CREDENTIALS_DIRECTORY={}", credentials.display()))
            .args([clients::BIN, "agent", "--foreground"])
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().expect("the agent's log"))
            .stderr(file);
        let mut agent = CredentialAgent {
            child: Some(c.spawn().expect("start the agent")),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !u.agent_socket().exists() {
            let child = agent.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("wait for the agent") {
                panic!("the agent exited ({status}): {}", agent.log());
            }
            assert!(
                Instant::now() < deadline,
                "the agent bound no socket in 20 s: {}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        agent
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `systemctl stop`: SIGTERM to its PID; its exit status (bounded wait).
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        );
        common::wait_bounded(&mut child, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("the agent ignored SIGTERM for 20 s: {}", self.log()))
    }
}

impl Drop for CredentialAgent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// docs/BUILD_SERVER.md, section 5, on a real Docker daemon: after a reboot a build
/// user's `docker pull` works with nobody typing, from an age identity root sealed with
/// `systemd-creds encrypt --with-key=host`.
///
/// A `useradd` user who may use the test daemon's socket (its group, as the `docker`
/// group would) makes a vault whose one slot is the machine's identity and logs in with
/// `docker login` (storing needs no key). Root seals the identity and removes the
/// plaintext. systemd is not PID 1 here, so what it does at the unit's start for
/// `LoadCredentialEncrypted=lockbox-identity:…` — decrypt into a 0700 directory of the
/// unit's user and set CREDENTIALS_DIRECTORY — root does with `systemd-creds decrypt`;
/// the agent then runs as the user the way the unit does (no `unlock`). The user's
/// `docker pull` from `env -i` gets the credentials through the helper and the agent;
/// after SIGTERM to the agent the same pull is refused by the registry, with lockbox's
/// locked message passed through by the CLI (not a silent anonymous pull).
fn build_user_pulls_after_a_reboot(daemon: &Dockerd, registry: &Registry) {
    let step = |what: &str| eprintln!("e2e: reboot: {what}");
    let server = registry.address();
    let image = format!("{server}/{BUILD_IMAGE}");
    let get = format!("get {server}");

    step("root pushes the image the build pulls");
    let admin = Pass::new(Key::Identity, daemon, registry);
    let out = admin.login(PASSWORD, false);
    assert!(out.ok(), "root's docker login: {}", out.describe());
    admin.remove_images(&[&image]);
    let id = admin.import(&image);
    let out = admin.docker(&["push", &image], Input::Closed);
    assert!(out.ok(), "root's docker push: {}", out.describe());
    admin.remove_images(&[&image]);
    let out = admin.docker(&["logout", &server], Input::Closed);
    assert!(out.ok(), "root's docker logout: {}", out.describe());

    step("a build user with the daemon's socket, a vault for the machine's identity");
    let u = BuildUser::new();
    let _socket = SharedSocket::new(daemon, u.gid);
    // The machine's identity, in a directory only root can enter.
    let secret_dir = tempfile::tempdir().expect("temp dir for the identity");
    let id_file = secret_dir.path().join("lockbox-identity.txt");
    let mut keygen = Command::new("age-keygen");
    keygen.arg("-o").arg(&id_file);
    let out = clients::run(keygen, Input::Closed);
    assert!(out.ok(), "age-keygen: {}", out.describe());
    let mut public = Command::new("age-keygen");
    public.arg("-y").arg(&id_file);
    let out = clients::run(public, Input::Closed);
    assert!(out.ok(), "age-keygen -y: {}", out.describe());
    let recipient = out.stdout.trim().to_owned();
    let out = u.run(
        daemon,
        clients::BIN,
        &["init", "--recipient", &recipient],
        Input::Closed,
    );
    assert!(out.ok(), "init as the build user: {}", out.describe());

    step("docker login as the build user, no key anywhere");
    let out = u.run(
        daemon,
        "docker",
        &["login", "-u", USER, "--password-stdin", &server],
        Input::Bytes(format!("{PASSWORD}\n").as_bytes()),
    );
    assert!(
        out.ok(),
        "docker login as the build user: {}",
        out.describe()
    );
    assert!(out.stdout.contains("Login Succeeded"), "{}", out.describe());
    assert!(
        !seen(&out).contains("stored unencrypted"),
        "the CLI did not use the helper: {}",
        out.describe()
    );
    let calls = u.helper_calls();
    assert!(calls.iter().any(|c| c == "store"), "{calls:?}");
    assert_config_has_no_secret(&u.docker_config().join("config.json"), USER, PASSWORD);
    let out = u.run(daemon, clients::BIN, &["list"], Input::Closed);
    assert!(out.ok(), "list: {}", out.describe());
    let list: serde_json::Value = serde_json::from_str(&out.stdout).expect("list prints JSON");
    assert_eq!(list, serde_json::json!({ &server: USER }));

    step("root seals the identity to the host key; the plaintext is removed");
    let sealed = secret_dir.path().join("lockbox-identity.cred");
    let mut encrypt = Command::new("systemd-creds");
    encrypt
        .args(["encrypt", "--with-key=host", "--name=lockbox-identity"])
        .arg(&id_file)
        .arg(&sealed);
    let out = clients::run(encrypt, Input::Closed);
    assert!(out.ok(), "systemd-creds encrypt: {}", out.describe());
    fs::remove_file(&id_file).expect("remove the plaintext identity");
    let sealed_bytes = fs::read(&sealed).expect("read the sealed credential");
    assert!(!common::contains(&sealed_bytes, b"AGE-SECRET-KEY"));

    step("the reboot: the unit's credential decrypted, its agent started as the user");
    assert!(!u.agent_socket().exists(), "an agent of the user runs");
    let creds = u
        .root
        .path()
        .join(format!("credentials/lockbox-agent@{}.service", u.name));
    fs::create_dir_all(&creds).expect("create the credentials directory");
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&creds, fs::Permissions::from_mode(0o700))
            .expect("chmod the credentials directory");
        u.chown(&creds);
        let cred_file = creds.join("lockbox-identity");
        let mut decrypt = Command::new("systemd-creds");
        decrypt
            .args(["decrypt", "--name=lockbox-identity"])
            .arg(&sealed)
            .arg(&cred_file);
        let out = clients::run(decrypt, Input::Closed);
        assert!(out.ok(), "systemd-creds decrypt: {}", out.describe());
        u.chown(&cred_file);
        fs::set_permissions(&cred_file, fs::Permissions::from_mode(0o400))
            .expect("chmod the credential");
    }
    let mut agent = CredentialAgent::start(&u, &creds);

    step("docker pull as the build user, nobody typing");
    assert_eq!(admin.image_id(&image), None);
    let out = u.run(daemon, "docker", &["pull", &image], Input::Closed);
    assert!(
        out.ok(),
        "docker pull as the build user: {}\nagent log:\n{}",
        out.describe(),
        agent.log()
    );
    let calls = u.helper_calls();
    assert!(
        calls.contains(&get),
        "the pull did not ask lockbox: {calls:?}"
    );
    assert_eq!(admin.image_id(&image), Some(id), "pulled another image");
    let out = u.run(daemon, clients::BIN, &["status", "--json"], Input::Closed);
    assert!(out.ok(), "status: {}", out.describe());
    let status: serde_json::Value = serde_json::from_str(&out.stdout).expect("status --json");
    assert_eq!(status["agent"]["opens_from_credential"], true, "{status}");
    assert_eq!(status["agent"]["vaults"], serde_json::json!([]), "{status}");
    admin.remove_images(&[&image]);

    step("the agent stopped (SIGTERM): the same pull is refused, with the locked message");
    let status = agent.stop();
    let log = agent.log();
    assert!(status.success(), "the agent exited {status}: {log}");
    assert!(!u.agent_socket().exists(), "the agent left its socket");
    assert!(
        !log.contains(PASSWORD) && !log.contains("AGE-SECRET-KEY"),
        "the agent logged a secret: {log}"
    );
    let out = u.run(daemon, "docker", &["pull", &image], Input::Closed);
    assert!(
        !out.ok(),
        "a pull with no agent succeeded: {}",
        out.describe()
    );
    assert!(auth_refused(&out), "{}", out.describe());
    assert!(
        seen(&out).contains(LOCKED),
        "the locked message did not reach the build user: {}",
        out.describe()
    );
    let calls = u.helper_calls();
    assert!(
        calls.contains(&get),
        "the pull did not ask lockbox: {calls:?}"
    );
    assert_eq!(admin.image_id(&image), None);
}

// ---------------------------------------------------------------------------------
// skopeo (containers/image): credHelpers, not credsStore
// ---------------------------------------------------------------------------------

fn skopeo_tools() -> bool {
    clients::require_tools(&[
        ("skopeo", "skopeo"),
        ("docker-registry", "docker-registry"),
        ("htpasswd", "apache2-utils"),
        ("age-keygen", "age"),
    ])
}

/// skopeo with an auth file naming lockbox in `credHelpers` (containers/image ignores
/// `credsStore`), a policy that accepts any image, and nothing from the host's
/// containers configuration that the temp `HOME` can hide.
struct Skopeo<'a> {
    env: &'a ClientEnv,
    auth_file: PathBuf,
    policy: PathBuf,
}

impl<'a> Skopeo<'a> {
    fn new(env: &'a ClientEnv, cred_helpers: serde_json::Value) -> Self {
        let auth_file = env.path("auth.json");
        fs::write(
            &auth_file,
            serde_json::json!({ "credHelpers": cred_helpers }).to_string(),
        )
        .expect("write auth.json");
        let policy = env.path("policy.json");
        fs::write(
            &policy,
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .expect("write policy.json");
        Skopeo {
            env,
            auth_file,
            policy,
        }
    }

    fn run(&self, args: &[&str], unlocked: bool, input: Input<'_>) -> Output {
        let mut c = self.env.command("skopeo", unlocked);
        c.env("REGISTRY_AUTH_FILE", &self.auth_file)
            .arg("--policy")
            .arg(&self.policy)
            .args(args);
        clients::run(c, input)
    }

    fn login(&self, server: &str, password: &str) -> Output {
        self.run(
            &[
                "login",
                "--tls-verify=false",
                "-u",
                USER,
                "--password-stdin",
                server,
            ],
            true,
            Input::Bytes(format!("{password}\n").as_bytes()),
        )
    }
}

#[test]
fn skopeo_through_cred_helpers() {
    if !skopeo_tools() {
        return;
    }
    let registry = Registry::start(USER, PASSWORD);
    let env = ClientEnv::new();
    env.trace_helper();
    let server = registry.address();
    let get = format!("get {server}");
    let skopeo = Skopeo::new(&env, serde_json::json!({ &server: "lockbox" }));
    let remote = format!("docker://{server}/e2e/skopeo:1");

    // No entry: the helper says not found, skopeo goes anonymous, the registry refuses.
    let out = skopeo.run(
        &["inspect", "--tls-verify=false", &remote],
        true,
        Input::Closed,
    );
    assert!(!out.ok(), "{}", out.describe());
    assert!(auth_refused(&out), "{}", out.describe());
    assert!(env.helper_calls().contains(&get));

    // A refused login stores nothing.
    let before = env.vault_bytes();
    let out = skopeo.login(&server, "not-the-password");
    assert!(!out.ok(), "a wrong password logged in: {}", out.describe());
    assert_eq!(
        env.vault_bytes(),
        before,
        "a refused login changed the vault"
    );
    assert!(!env.helper_calls().iter().any(|c| c == "store"));

    // skopeo login stores through the helper named in credHelpers.
    let out = skopeo.login(&server, PASSWORD);
    assert!(out.ok(), "skopeo login: {}", out.describe());
    assert!(env.helper_calls().iter().any(|c| c == "store"));
    assert_eq!(env.list()[&server], USER);
    assert_eq!(
        env.get(&server),
        Some((USER.to_owned(), PASSWORD.to_owned()))
    );
    assert_config_has_no_secret(&skopeo.auth_file, USER, PASSWORD);

    // Push a one-file docker-archive, inspect it, pull it back into an OCI layout.
    let (archive, diff_id) = clients::docker_archive("e2e/skopeo:1", IMAGE_FILE.0, IMAGE_FILE.1);
    let archive_path = env.path("image.tar");
    fs::write(&archive_path, archive).expect("write the archive");
    let source = format!("docker-archive:{}", archive_path.display());
    let out = skopeo.run(
        &["copy", "--dest-tls-verify=false", &source, &remote],
        true,
        Input::Closed,
    );
    assert!(out.ok(), "skopeo copy (push): {}", out.describe());
    assert!(env.helper_calls().contains(&get));

    let out = skopeo.run(
        &["inspect", "--tls-verify=false", &remote],
        true,
        Input::Closed,
    );
    assert!(out.ok(), "skopeo inspect: {}", out.describe());
    let inspected: serde_json::Value = serde_json::from_str(&out.stdout).expect("inspect JSON");
    assert_eq!(
        inspected["Name"],
        format!("{server}/e2e/skopeo"),
        "{inspected}"
    );
    assert_eq!(
        inspected["Layers"].as_array().map(Vec::len),
        Some(1),
        "{inspected}"
    );
    assert!(env.helper_calls().contains(&get));
    let out = skopeo.run(
        &["inspect", "--tls-verify=false", "--config", &remote],
        true,
        Input::Closed,
    );
    assert!(out.ok(), "skopeo inspect: {}", out.describe());
    let config: serde_json::Value = serde_json::from_str(&out.stdout).expect("config JSON");
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        diff_id.as_str(),
        "{config}"
    );
    assert!(env.helper_calls().contains(&get));

    let layout = env.path("oci");
    let dest = format!("oci:{}:e2e", layout.display());
    let out = skopeo.run(
        &["copy", "--src-tls-verify=false", &remote, &dest],
        true,
        Input::Closed,
    );
    assert!(out.ok(), "skopeo copy (pull): {}", out.describe());
    assert!(env.helper_calls().contains(&get));
    assert_eq!(oci_diff_ids(&layout), vec![diff_id.clone()]);

    // Locked: an error naming lockbox, not an anonymous request.
    let out = skopeo.run(
        &["inspect", "--tls-verify=false", &remote],
        false,
        Input::Closed,
    );
    assert!(!out.ok(), "a locked inspect succeeded: {}", out.describe());
    assert!(seen(&out).contains(LOCKED), "{}", out.describe());
    assert!(!auth_refused(&out), "{}", out.describe());
    env.helper_calls();

    // Through the agent, with skopeo in another XDG_RUNTIME_DIR than `unlock` had: the
    // socket is a function of the uid, so it still finds the agent.
    let identity = env.world().keys_dir().join("age-identity.txt");
    let bin = env!("CARGO_BIN_EXE_docker-credential-lockbox");
    let mut unlock = env.command(bin, false);
    unlock.arg("unlock").arg("--identity-file").arg(&identity);
    let out = clients::run(unlock, Input::Closed);
    assert!(out.ok(), "unlock: {}", out.describe());
    let other_runtime = env.path("other-run");
    fs::create_dir(&other_runtime).expect("another runtime dir");
    let mut c = env.command("skopeo", false);
    c.env("REGISTRY_AUTH_FILE", &skopeo.auth_file)
        .env("XDG_RUNTIME_DIR", &other_runtime)
        .arg("--policy")
        .arg(&skopeo.policy)
        .args(["inspect", "--tls-verify=false", &remote]);
    let out = clients::run(c, Input::Closed);
    let mut lock = env.command(bin, false);
    lock.args(["lock", "--all"]);
    let locked = clients::run(lock, Input::Closed);
    assert!(out.ok(), "skopeo through the agent: {}", out.describe());
    assert!(env.helper_calls().contains(&get));
    assert!(locked.ok(), "lock --all: {}", locked.describe());

    // skopeo logout erases through the helper, and needs no key for that.
    let out = skopeo.run(&["logout", &server], false, Input::Closed);
    assert!(out.ok(), "skopeo logout: {}", out.describe());
    assert!(
        env.helper_calls().contains(&format!("erase {server}")),
        "logout did not erase through the helper"
    );
    assert!(env.list().is_empty(), "logout left {:?}", env.list());
    assert_config_has_no_secret(&skopeo.auth_file, USER, PASSWORD);
    let out = skopeo.run(
        &["inspect", "--tls-verify=false", &remote],
        true,
        Input::Closed,
    );
    assert!(!out.ok(), "{}", out.describe());
    assert!(auth_refused(&out), "{}", out.describe());
}

/// Issue 24, items 6 and 7, with the real skopeo: after README's set-up (`import`)
/// skopeo uses lockbox with no configuration of its own (the registries.conf drop-in
/// `import` writes: skopeo ignores credsStore), for login, push and pull; after
/// `unimport` it still works, from the plaintext auths in config.json, and lockbox is
/// no longer run.
#[test]
fn skopeo_just_works_after_import_and_still_after_unimport() {
    if !skopeo_tools() {
        return;
    }
    let registry = Registry::start(USER, PASSWORD);
    let env = ClientEnv::new();
    env.trace_helper();
    let server = registry.address();
    let remote = format!("docker://{server}/e2e/setup:1");
    let policy = env.path("policy.json");
    fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .expect("policy");
    // skopeo as README's user runs it: no REGISTRY_AUTH_FILE, no --authfile.
    let skopeo = |args: &[&str], unlocked: bool, input: Input<'_>| {
        let mut c = env.command("skopeo", unlocked);
        c.arg("--policy").arg(&policy).args(args);
        clients::run(c, input)
    };

    let out = env.lockbox(&["import"], false, Input::Closed);
    assert!(out.ok(), "import: {}", out.describe());
    assert!(
        out.stdout
            .contains("podman, skopeo and buildah use lockbox too"),
        "{}",
        out.describe()
    );
    env.helper_calls();

    let out = skopeo(
        &[
            "login",
            "--tls-verify=false",
            "-u",
            USER,
            "--password-stdin",
            &server,
        ],
        true,
        Input::Bytes(format!("{PASSWORD}\n").as_bytes()),
    );
    assert!(out.ok(), "skopeo login: {}", out.describe());
    assert!(env.helper_calls().iter().any(|c| c == "store"));
    assert_eq!(
        env.get(&server),
        Some((USER.to_owned(), PASSWORD.to_owned()))
    );
    // Nothing in plaintext where skopeo would otherwise have put it.
    for file in [
        env.path("run/containers/auth.json"),
        env.path("home/.config/containers/auth.json"),
    ] {
        if file.exists() {
            assert_config_has_no_secret(&file, USER, PASSWORD);
        }
    }
    assert_config_has_no_secret(&env.config_json(), USER, PASSWORD);

    let (archive, _) = clients::docker_archive("e2e/setup:1", IMAGE_FILE.0, IMAGE_FILE.1);
    let archive_path = env.path("image.tar");
    fs::write(&archive_path, archive).expect("write the archive");
    let source = format!("docker-archive:{}", archive_path.display());
    let out = skopeo(
        &["copy", "--dest-tls-verify=false", &source, &remote],
        true,
        Input::Closed,
    );
    assert!(out.ok(), "skopeo copy (push): {}", out.describe());
    assert!(env.helper_calls().contains(&format!("get {server}")));

    // The way back: the credentials into config.json, the drop-in gone.
    let out = env.lockbox(&["unimport"], true, Input::Closed);
    assert!(out.ok(), "unimport: {}", out.describe());
    assert!(out.stderr.contains("PLAINTEXT"), "{}", out.describe());
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(env.config_json()).expect("config.json")).expect("JSON");
    assert!(config.get("credsStore").is_none(), "{config:#}");
    assert!(config["auths"][&server]["auth"].is_string(), "{config:#}");
    assert!(
        !env.path("home/.config/containers/registries.conf.d/50-lockbox.conf")
            .exists()
    );
    env.helper_calls();

    // Locked or not, lockbox is no longer asked: skopeo reads config.json.
    let out = skopeo(
        &["inspect", "--tls-verify=false", &remote],
        false,
        Input::Closed,
    );
    assert!(
        out.ok(),
        "skopeo inspect after unimport: {}",
        out.describe()
    );
    assert!(
        env.helper_calls().is_empty(),
        "lockbox was still run after unimport"
    );
}

/// The diff IDs in the config of the one image in an OCI layout.
fn oci_diff_ids(layout: &Path) -> Vec<String> {
    let blob = |digest: &str| -> serde_json::Value {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        let bytes = fs::read(layout.join("blobs/sha256").join(hex)).expect("read a blob");
        assert_eq!(clients::sha256_digest(&bytes), digest, "blob content");
        serde_json::from_slice(&bytes).expect("JSON blob")
    };
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index.json"))
            .expect("index JSON");
    let manifest = blob(
        index["manifests"][0]["digest"]
            .as_str()
            .expect("a manifest"),
    );
    let config = blob(manifest["config"]["digest"].as_str().expect("a config"));
    config["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .iter()
        .map(|d| d.as_str().expect("a diff id").to_owned())
        .collect()
}

/// `docker login` keeps Docker Hub under `https://index.docker.io/v1/`; containers/image
/// asks a helper for `docker.io`. The helper finds the one under the other.
#[test]
fn docker_hub_stored_by_docker_is_found_as_docker_io() {
    if !clients::require_tools(&[("age-keygen", "age")]) {
        return;
    }
    let env = ClientEnv::new();
    let store = serde_json::json!({
        "ServerURL": "https://index.docker.io/v1/",
        "Username": "hub-user",
        "Secret": "hub-secret",
    })
    .to_string();
    let out = env.lockbox(&["store"], false, Input::Bytes(store.as_bytes()));
    assert!(out.ok(), "store: {}", out.describe());
    // Exactly as containers/image's credential-helper client sends it.
    let out = env.lockbox(&["get"], true, Input::Bytes(b"docker.io"));
    assert!(out.ok(), "get docker.io: {}", out.describe());
    assert_eq!(
        out.stdout,
        "{\"ServerURL\":\"docker.io\",\"Username\":\"hub-user\",\"Secret\":\"hub-secret\"}\n"
    );

    // And through skopeo itself: `login --get-login` only asks the helper (no network).
    if !clients::require_tools(&[("skopeo", "skopeo")]) {
        return;
    }
    env.trace_helper();
    let skopeo = Skopeo::new(&env, serde_json::json!({ "docker.io": "lockbox" }));
    let out = skopeo.run(&["login", "--get-login", "docker.io"], true, Input::Closed);
    assert!(out.ok(), "skopeo login --get-login: {}", out.describe());
    assert_eq!(out.stdout.trim(), "hub-user", "{}", out.describe());
    assert_eq!(
        env.helper_calls(),
        ["get docker.io"],
        "containers/image asks for docker.io"
    );
    let out = skopeo.run(&["login", "--get-login", "docker.io"], false, Input::Closed);
    assert!(!out.ok(), "{}", out.describe());
    assert!(seen(&out).contains(LOCKED), "{}", out.describe());
}
