//! Real clients, run for real against the built helper: the Docker CLI logging in to
//! and out of the CNCF distribution registry (127.0.0.1, htpasswd auth), and docker-py's
//! credential store (`tests/common/dockerpy_store.py`). No daemon and no root needed;
//! `tests/system/e2e.rs` adds a real `dockerd` (push, pull, build), docker-py's client and
//! skopeo.
//!
//! Needs `docker` (the CLI; no daemon), `docker-registry`, `htpasswd` (apache2-utils),
//! `age-keygen` (age) and a Python with the `docker` package (`LOCKBOX_TEST_PYTHON`,
//! default `python3`). A missing tool skips the test with a note, or fails it when `CI`
//! is set. `.ci/run` installs them all.
use crate::common;

use common::clients;

use std::path::Path;
use std::process::Command;

use clients::{ClientEnv, FakeDaemon, Input, Output, Registry, assert_config_has_no_secret};

const USER: &str = "tester";
const PASSWORD: &str = "hunter2-Lockbox-pw";

/// The tools every Docker CLI test needs.
fn docker_tools() -> bool {
    clients::require_tools(&[
        ("docker", "docker.io (the Docker CLI)"),
        ("docker-registry", "docker-registry"),
        ("htpasswd", "apache2-utils"),
        ("age-keygen", "age"),
    ])
}

fn docker(env: &ClientEnv, args: &[&str], unlocked: bool, input: Input<'_>) -> Output {
    let mut c = env.command("docker", unlocked);
    c.args(args);
    clients::run(c, input)
}

fn login_with_password(env: &ClientEnv, server: &str, password: &str, unlocked: bool) -> Output {
    docker(
        env,
        &["login", "-u", USER, "--password-stdin", server],
        unlocked,
        Input::Bytes(format!("{password}\n").as_bytes()),
    )
}

fn logout(env: &ClientEnv, server: &str, unlocked: bool) -> Output {
    docker(env, &["logout", server], unlocked, Input::Closed)
}

/// What the CLI prints when a login would go to the plaintext file store.
const PLAINTEXT_WARNING: &str = "stored unencrypted";

#[test]
fn docker_login_stores_in_the_vault_and_logout_erases() {
    if !docker_tools() {
        return;
    }
    let registry = Registry::start(USER, PASSWORD);
    let env = ClientEnv::new();
    let server = registry.address();

    // A refused login stores nothing.
    let before = env.vault_bytes();
    let out = login_with_password(&env, &server, "not-the-password", true);
    assert!(!out.ok(), "a wrong password logged in: {}", out.describe());
    assert!(
        out.stderr.contains("401 Unauthorized"),
        "{}",
        out.describe()
    );
    assert_eq!(
        env.vault_bytes(),
        before,
        "a refused login changed the vault"
    );
    assert!(env.list().is_empty());

    // Login: the CLI checks the password with the registry itself (no daemon) and
    // hands it to the helper.
    let out = login_with_password(&env, &server, PASSWORD, true);
    assert!(out.ok(), "docker login: {}", out.describe());
    assert!(out.stdout.contains("Login Succeeded"), "{}", out.describe());
    assert!(
        !out.stderr.contains(PLAINTEXT_WARNING),
        "the CLI did not use the helper: {}",
        out.describe()
    );
    let list = env.list();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[&server], USER, "the CLI stores under host:port");
    assert_eq!(
        env.get(&server),
        Some((USER.to_owned(), PASSWORD.to_owned()))
    );
    assert!(registry.accepts(USER, PASSWORD));
    assert_config_has_no_secret(&env.config_json(), USER, PASSWORD);

    // A wrong password for a stored server is refused and leaves the entry alone.
    let before = env.vault_bytes();
    let out = login_with_password(&env, &server, "not-the-password", true);
    assert!(!out.ok(), "a wrong password logged in: {}", out.describe());
    assert_eq!(
        env.vault_bytes(),
        before,
        "a refused login changed the vault"
    );
    assert_eq!(
        env.get(&server),
        Some((USER.to_owned(), PASSWORD.to_owned()))
    );

    // Logout erases (the CLI tries four spellings; one is enough and none may warn).
    let out = logout(&env, &server, true);
    assert!(out.ok(), "docker logout: {}", out.describe());
    assert!(
        !out.stderr.contains("could not erase"),
        "{}",
        out.describe()
    );
    assert!(env.list().is_empty(), "logout left {:?}", env.list());
    assert_eq!(env.get(&server), None);
    assert_config_has_no_secret(&env.config_json(), USER, PASSWORD);

    // Logging out again is not an error either (erase of an absent entry succeeds).
    let out = logout(&env, &server, true);
    assert!(out.ok(), "second docker logout: {}", out.describe());
}

/// `docker login SERVER` with no `-u` reuses what `get` returns. In Docker CLI 28 that
/// path has no client-side fallback: it always asks the daemon (`POST /auth`), so with
/// no daemon it cannot succeed; a stand-in daemon that checks the credentials with the
/// registry shows the CLI sends exactly the stored ones.
#[test]
fn docker_login_reuses_stored_credentials() {
    if !docker_tools() {
        return;
    }
    let registry = Registry::start(USER, PASSWORD);
    let env = ClientEnv::new();
    let server = registry.address();
    let out = login_with_password(&env, &server, PASSWORD, true);
    assert!(out.ok(), "docker login: {}", out.describe());

    // No daemon: the CLI still reads the stored username through `get`, then, as the
    // daemon is unreachable and stdin is not a terminal, gives up without prompting.
    // (Docker 28.2 prints this on stderr, the current source on stdout.)
    let out = docker(&env, &["login", &server], true, Input::Closed);
    let reused = format!("Authenticating with existing credentials... [Username: {USER}]");
    assert!(
        out.stdout.contains(&reused) || out.stderr.contains(&reused),
        "the CLI did not get the stored credentials: {}",
        out.describe()
    );
    assert!(!out.ok(), "{}", out.describe());
    assert!(
        out.stderr.contains("non TTY"),
        "expected the no-terminal refusal: {}",
        out.describe()
    );

    // With a daemon to ask, the stored credentials log in.
    let daemon = FakeDaemon::start(env.path("daemon.sock"), registry.port);
    let mut c = env.command("docker", true);
    c.args(["login", &server]).env("DOCKER_HOST", daemon.host());
    let out = clients::run(c, Input::Closed);
    assert!(
        out.ok(),
        "docker login with stored credentials: {}",
        out.describe()
    );
    assert!(out.stdout.contains("Login Succeeded"), "{}", out.describe());
    let logins = daemon.logins.lock().unwrap().clone();
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(logins[0].username, USER);
    assert_eq!(logins[0].password, PASSWORD);
    assert_eq!(logins[0].server, server);
    // The CLI stores what it used again; still one entry, still right, still no secret
    // in config.json.
    assert_eq!(env.list().len(), 1);
    assert_eq!(
        env.get(&server),
        Some((USER.to_owned(), PASSWORD.to_owned()))
    );
    assert_config_has_no_secret(&env.config_json(), USER, PASSWORD);
}

/// `store` and `erase` need no key: login and logout work while the vault is locked,
/// and a locked `get` never passes for "no credentials".
#[test]
fn docker_login_and_logout_work_while_locked() {
    if !docker_tools() {
        return;
    }
    let registry = Registry::start(USER, PASSWORD);
    let env = ClientEnv::new();
    let server = registry.address();

    let out = login_with_password(&env, &server, PASSWORD, false);
    assert!(out.ok(), "locked docker login: {}", out.describe());
    assert_eq!(env.list()[&server], USER);
    assert_config_has_no_secret(&env.config_json(), USER, PASSWORD);

    let locked_get = env.lockbox(&["get"], false, Input::Bytes(server.as_bytes()));
    assert!(!locked_get.ok());
    assert!(
        locked_get.stdout.starts_with("lockbox is locked"),
        "{}",
        locked_get.describe()
    );
    // The key opens what was stored while locked.
    assert_eq!(
        env.get(&server),
        Some((USER.to_owned(), PASSWORD.to_owned()))
    );

    // Reusing stored credentials needs `get`: while locked the CLI swallows the error
    // and falls back to a prompt, which it refuses without a terminal. No hang, no
    // change to the vault.
    let before = env.vault_bytes();
    let out = docker(&env, &["login", &server], false, Input::Closed);
    assert!(!out.ok(), "{}", out.describe());
    assert!(out.stderr.contains("non TTY"), "{}", out.describe());
    assert_eq!(env.vault_bytes(), before);

    let out = logout(&env, &server, false);
    assert!(out.ok(), "locked docker logout: {}", out.describe());
    assert!(env.list().is_empty(), "logout left {:?}", env.list());
}

/// docker-py's `docker.credentials.Store` and `docker.auth`, including the scenario of
/// docker-py's own `tests/integration/credentials/store_test.py`.
#[test]
fn dockerpy_credential_store() {
    let python = std::env::var("LOCKBOX_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    if !clients::require(
        clients::which("age-keygen").is_some(),
        "age-keygen",
        "Debian package age",
    ) || !clients::require(
        python_has_docker(&python),
        &format!("{python} with the docker module"),
        "PyPI package docker (pip install docker==7.1.0) and set LOCKBOX_TEST_PYTHON",
    ) {
        return;
    }
    let env = ClientEnv::new();
    // docker-py's own tests pick `secretservice` (then `pass`) from PATH: give them our
    // binary under that name, in front of any real one.
    env.link_helper("secretservice");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/dockerpy_store.py");
    let mut c = env.command(&python, true);
    c.arg(script);
    // stdin stays open and silent: docker-py's `list` hands it to the helper, which
    // must not read it.
    let out = clients::run(c, Input::HeldOpen);
    eprintln!("{}", out.stdout);
    assert!(out.ok(), "docker-py: {}", out.describe());
    let last = out.stdout.lines().last().unwrap_or("");
    assert!(
        last.ends_with(" failed") && last.contains(" passed, 0 failed"),
        "{}",
        out.describe()
    );
}

fn python_has_docker(python: &str) -> bool {
    let mut c = Command::new(python);
    c.args(["-c", "import docker"])
        .env_clear()
        .env("PATH", common::test_path());
    // A missing interpreter is a spawn error, which `run` reports by panicking; check
    // for it first so that it follows the tool policy too.
    if clients::which(python).is_none() && !Path::new(python).is_file() {
        return false;
    }
    clients::run(c, Input::Closed).ok()
}
