//! Sealed sources through a real Docker daemon (a phase of
//! `e2e::docker_daemon_end_to_end`, on its daemon and htpasswd registry): the vault
//! holds no registry password, only a source; `docker push` and two `docker pull`s
//! get a minted credential through the helper, and the source minted once (the second
//! and third `get` came from the token cache) — an `exec` source once without an agent
//! (the cache file beside the vault) and once through an unlocked agent (its token
//! cache in memory), then an `oauth2` source added with `lockbox source add` and
//! minted by the agent from the loopback token server (asked once).
use std::fs;

use crate::common;
use common::clients::{self, ClientEnv, Dockerd, Input, Registry};
use common::sources::{add_source_to, exec_params, runs, script_in};
use common::token_servers::TokenServer;

/// The passphrase of the agent phase's vault.
const PASSPHRASE: &str = "correct horse battery sources";

/// The file in the phase's image.
const IMAGE_FILE: (&str, &[u8]) = ("minted.txt", b"pulled with a minted credential\n");

/// The `exec` source: a script that answers the registry's user and password, valid
/// for an hour, counting its runs. The vault has no entry for the registry but this.
/// `agent`: the helper has no key of its own, an agent unlocked with the identity
/// mints and caches (no cache file is written); else the helper has the identity.
pub fn exec_source_pushes_and_pulls_twice(
    daemon: &Dockerd,
    registry: &Registry,
    user: &str,
    password: &str,
    agent: bool,
) {
    let env = ClientEnv::new();
    env.trace_helper();
    let server = registry.address();
    let dir = env.path("");
    let (program, counter) = script_in(
        &dir,
        "mint",
        &format!(
            r#"exp=$(date -u -d "@$(( $(date +%s) + 3600 ))" +%Y-%m-%dT%H:%M:%SZ)
printf '{{"Username":"{user}","Secret":"{password}","ExpiresAt":"%s"}}' "$exp""#
        ),
    );
    add_source_to(
        &env.vault(),
        env.identity_text(),
        (&server, "<minted>", "exec"),
        &exec_params(&program, &[]),
        "",
    );
    // Whatever happens below, the agent this phase starts is stopped.
    struct LockAll<'a>(&'a ClientEnv);
    impl Drop for LockAll<'_> {
        fn drop(&mut self) {
            let _ = self.0.lockbox(&["lock", "--all"], false, Input::Closed);
        }
    }
    let _stop = agent.then(|| LockAll(&env));
    if agent {
        let identity = env.world().keys_dir().join("age-identity.txt");
        let identity = identity.to_str().expect("utf-8 path");
        let out = env.lockbox(
            &["unlock", "--identity-file", identity],
            false,
            Input::Closed,
        );
        assert!(out.ok(), "unlock: {}", out.describe());
    }
    let docker = |args: &[&str]| {
        let mut c = env.command("docker", !agent);
        c.env("DOCKER_HOST", daemon.host()).args(args);
        clients::run(c, Input::Closed)
    };
    let image = format!("{server}/e2e/minted:1");
    let tarball = env.path("minted-rootfs.tar");
    fs::write(&tarball, clients::tar(&[IMAGE_FILE])).expect("write the rootfs tarball");
    let out = docker(&["import", tarball.to_str().expect("utf-8 path"), &image]);
    assert!(out.ok(), "docker import: {}", out.describe());
    let out = docker(&["push", &image]);
    assert!(
        out.ok(),
        "docker push with a minted credential: {}",
        out.describe()
    );
    assert_eq!(runs(&counter), 1, "the push minted once");
    for round in 1..=2 {
        let out = docker(&["rmi", "--force", &image]);
        assert!(out.ok(), "docker rmi: {}", out.describe());
        let out = docker(&["pull", &image]);
        assert!(out.ok(), "docker pull {round}: {}", out.describe());
    }
    assert_eq!(
        runs(&counter),
        1,
        "both pulls were answered from the token cache, no new mint"
    );
    let calls = env.helper_calls();
    let gets = calls
        .iter()
        .filter(|c| **c == format!("get {server}"))
        .count();
    assert!(
        gets >= 3,
        "the push and both pulls asked the helper: {calls:?}"
    );
    let cache_file = env.vault().with_file_name("vault.json.tokens");
    if agent {
        // The agent's cache answered: its status shows the token, no file has it.
        let out = env.lockbox(&["status", "--json"], false, Input::Closed);
        let status: serde_json::Value = serde_json::from_str(&out.stdout).expect("status --json");
        assert!(
            status["sources"][0]["token"]["expires_at"].is_u64(),
            "{status}"
        );
        assert!(!cache_file.exists(), "the agent writes no cache file");
    }
    // The registry password is nowhere in the world but the script that prints it.
    let files: Vec<_> = env
        .world()
        .files()
        .into_iter()
        .filter(|f| f != &program)
        .collect();
    let needles = common::secret_needles(Some(user), password);
    assert_eq!(common::find_secret(&files, &needles), None);
}

/// The `oauth2` source, added with `lockbox source add`, served by the agent after
/// `unlock` (no key variable anywhere): the loopback token server (which checks the
/// refresh grant) hands out the registry's password as the access token; a push and
/// two pulls ask it once, all three answered from the agent's token cache after the
/// first mint.
pub fn oauth2_source_through_the_agent(
    daemon: &Dockerd,
    registry: &Registry,
    user: &str,
    password: &str,
) {
    let tokens = TokenServer::start(
        "oauth2",
        &[
            ("refresh_token", b"e2e-refresh-token-1".as_slice()),
            ("access_token", password.as_bytes()),
        ],
        &["--client-id", "lockbox-e2e", "--expires-in", "3600"],
    )
    .expect("the token server needs Python with pyjwt[crypto] (LOCKBOX_TEST_PYTHON)");
    let env = ClientEnv::with_passphrase(PASSPHRASE);
    env.trace_helper();
    let server = registry.address();
    let refresh = env.path("refresh-token");
    fs::write(&refresh, "e2e-refresh-token-1\n").expect("write the refresh token");
    let pass_file = env.passphrase_file();
    let unlock = env.lockbox(
        &[
            "unlock",
            "--passphrase-file",
            path_str(&pass_file),
            "--timeout",
            "30m",
        ],
        false,
        Input::Closed,
    );
    assert!(unlock.ok(), "unlock: {}", unlock.describe());
    let _agent = LockOnDrop(&env);
    let token_url = format!("{}/token", tokens.url());
    let add = env.lockbox(
        &[
            "source",
            "add",
            "oauth2",
            "--registry",
            &server,
            "--token-url",
            &token_url,
            "--client-id",
            "lockbox-e2e",
            "--refresh-token-file",
            path_str(&refresh),
            "--username",
            user,
        ],
        false,
        Input::Closed,
    );
    assert!(add.ok(), "source add oauth2: {}", add.describe());
    fs::remove_file(&refresh).expect("remove the refresh token file");
    let docker = |args: &[&str]| {
        let mut c = env.command("docker", false);
        c.env("DOCKER_HOST", daemon.host()).args(args);
        clients::run(c, Input::Closed)
    };
    let image = format!("{server}/e2e/oauth2:1");
    let tarball = env.path("oauth2-rootfs.tar");
    fs::write(&tarball, clients::tar(&[IMAGE_FILE])).expect("write the rootfs tarball");
    let out = docker(&["import", path_str(&tarball), &image]);
    assert!(out.ok(), "docker import: {}", out.describe());
    let out = docker(&["push", &image]);
    assert!(
        out.ok(),
        "docker push through the agent's mint: {}",
        out.describe()
    );
    for round in 1..=2 {
        let out = docker(&["rmi", "--force", &image]);
        assert!(out.ok(), "docker rmi: {}", out.describe());
        let out = docker(&["pull", &image]);
        assert!(out.ok(), "docker pull {round}: {}", out.describe());
    }
    let count = tokens.count();
    assert_eq!(
        count.requests, 1,
        "one refresh grant for a push and two pulls: {count:?}"
    );
    let calls = env.helper_calls();
    let gets = calls
        .iter()
        .filter(|c| **c == format!("get {server}"))
        .count();
    assert!(
        gets >= 3,
        "the push and both pulls asked the helper: {calls:?}"
    );
    // Neither the refresh token nor the password is in any file of the world.
    let files = env.world().files();
    for (u, s) in [(None, "e2e-refresh-token-1"), (Some(user), password)] {
        let needles = common::secret_needles(u, s);
        assert_eq!(common::find_secret(&files, &needles), None);
    }
}

fn path_str(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `lock --all` when the phase ends, however it ends: the agent stops.
struct LockOnDrop<'a>(&'a ClientEnv);

impl Drop for LockOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.lockbox(&["lock", "--all"], false, Input::Closed);
    }
}
