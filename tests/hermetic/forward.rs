//! Forwards, through the real binary and on the wire: `forward create|list|revoke|run`,
//! the helper acting through `LOCKBOX_FORWARD_SOCKET` (as inside a container), every
//! request a forward socket must refuse, another uid refused unless named, the end of
//! a forward (revoke, TTL, lock, its creator's death), and the access log (the right
//! peer, never a secret). Each test has its own world and agent, stopped at the end.
use crate::common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{BIN, FAST_KDF, World};

const NOT_FOUND_LINE: &str = "credentials not found in native keychain\n";
const SECRET: &str = "fwd-s3cret-value-9f2c";
const OTHER_SECRET: &str = "other-s3cret-value-41aa";

struct Env {
    world: World,
}

impl Env {
    /// A world with a vault holding ghcr.io (SECRET) and other.example (OTHER_SECRET),
    /// unlocked.
    fn unlocked() -> Self {
        let world = World::new();
        fs::write(world.path("keys/pass"), "correct horse battery staple\n").unwrap();
        let env = Env { world };
        let pass = env.world.path("keys/pass");
        let pass = pass.to_str().unwrap();
        env.ok(&["init", "--passphrase-file", pass], "");
        env.ok(&["store"], &common::store_json("ghcr.io", "ci", SECRET));
        env.ok(
            &["store"],
            &common::store_json("other.example", "o", OTHER_SECRET),
        );
        env.ok(&["unlock", "--passphrase-file", pass], "");
        env
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.world.command(BIN);
        c.args(args).env("LOCKBOX_ARGON2_PARAMS", FAST_KDF);
        c
    }

    fn run_with(&self, mut c: Command, stdin: &str) -> Output {
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        // Above the 40 s a `get` in a container waits for the agent (a source's mint).
        common::output_within(child, Duration::from_secs(60))
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        self.run_with(self.cmd(args), stdin)
    }

    fn ok(&self, args: &[&str], stdin: &str) -> Output {
        let out = self.run(args, stdin);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        out
    }

    /// A protocol action as the helper in a container runs it: only the forward
    /// socket in its environment (no HOME, no DOCKER_CONFIG, no agent directory).
    fn inside(&self, socket: &Path, action: &str, stdin: &str) -> Output {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("LOCKBOX_FORWARD_SOCKET", socket)
            .env("HOME", self.world.path("nowhere"))
            .arg(action);
        self.run_with(c, stdin)
    }

    fn socket(&self, name: &str) -> PathBuf {
        self.world
            .agent_dir()
            .join("forwards")
            .join(name)
            .join("forward.sock")
    }

    fn forwards(&self) -> serde_json::Value {
        serde_json::from_slice(&self.ok(&["forward", "list", "--json"], "").stdout).unwrap()
    }

    fn no_secret_in_world(&self) {
        let mut needles = common::secret_needles(Some("ci"), SECRET);
        needles.extend(common::secret_needles(Some("o"), OTHER_SECRET));
        assert_eq!(self.world.find_secret(&needles), None);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self
            .cmd(&["lock", "--all"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}, stdout {:?}, stderr {:?}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One raw frame to `socket`, the answer's JSON text.
fn wire(socket: &Path, json: &str) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&(json.len() as u32).to_be_bytes()).unwrap();
    s.write_all(json.as_bytes()).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

/// Polls `cond` every 100 ms, at most `limit`.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

fn gone_line(socket: &Path) -> String {
    format!(
        "lockbox forward: no forward answers at {} (revoked, past its TTL, ended by 'lockbox lock', or the host's agent stopped); open a new one on the host with 'lockbox forward create' or 'lockbox forward run'\n",
        socket.display()
    )
}

#[test]
fn a_forward_serves_get_and_list_of_its_registries_only_and_logs_each_get() {
    let env = Env::unlocked();
    let out = env.ok(
        &[
            "forward",
            "create",
            "ci",
            "--registry",
            "ghcr.io",
            "--ttl",
            "10m",
        ],
        "",
    );
    let dir = env.world.agent_dir().join("forwards/ci");
    assert!(
        stdout(&out).contains(&format!("-v {}:/run/lockbox-forward:ro", dir.display())),
        "{}",
        text(&out)
    );
    assert!(stdout(&out).contains("-e LOCKBOX_FORWARD_SOCKET=/run/lockbox-forward/forward.sock"));
    // Traversable, not listable: the peer check is what refuses other uids.
    let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o711);
    let socket = env.socket("ci");

    // get: the owner's lookup rules (another spelling of the same registry).
    let got = env.inside(&socket, "get", "https://GHCR.io/\n");
    assert!(got.status.success(), "{}", text(&got));
    let creds: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(creds["Username"], "ci");
    assert_eq!(creds["Secret"], SECRET);
    // A registry the forward does not grant, though the vault holds it: not-found,
    // so public pulls go on anonymously.
    let other = env.inside(&socket, "get", "other.example");
    assert_eq!(stdout(&other), NOT_FOUND_LINE, "{}", text(&other));
    assert!(other.stderr.is_empty(), "{}", text(&other));
    let list = env.inside(&socket, "list", "");
    assert_eq!(stdout(&list), "{\"ghcr.io\":\"ci\"}\n", "{}", text(&list));
    // store fails with one line; erase succeeds and changes nothing.
    let store = env.inside(&socket, "store", &common::store_json("ghcr.io", "x", "y"));
    assert_eq!(store.status.code(), Some(1));
    assert_eq!(
        stdout(&store),
        "credentials are managed on the host: run 'docker login' there (this container's lockbox forward is read-only)\n"
    );
    let erase = env.inside(&socket, "erase", "ghcr.io");
    assert!(
        erase.status.success() && erase.stdout.is_empty(),
        "{}",
        text(&erase)
    );
    assert!(env.inside(&socket, "get", "ghcr.io").status.success());

    let forwards = env.forwards();
    assert_eq!(forwards[0]["name"], "ci");
    assert_eq!(forwards[0]["registries"], serde_json::json!(["ghcr.io"]));
    assert_eq!(forwards[0]["gets"], 2);
    assert!(forwards[0]["expires_in_secs"].as_u64().unwrap() > 500);

    // The log: each get, with the socket and the peer, never the secret.
    let log = env.ok(&["log", "--json"], "");
    let records: Vec<serde_json::Value> = stdout(&log)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{}", text(&log));
    for r in &records {
        assert_eq!(r["socket"], "forward:ci");
        assert_eq!(r["registry"], "ghcr.io");
        assert_eq!(r["uid"], rustix_uid());
        assert!(r["pid"].as_u64().unwrap() > 0);
        assert_eq!(r["exe"], fs::canonicalize(BIN).unwrap().to_str().unwrap());
        assert_eq!(r["vault"], env.world.vault_path().to_str().unwrap());
    }
    let human = stdout(&env.ok(&["log", "--since", "1h"], ""));
    assert_eq!(human.lines().count(), 2, "{human}");
    assert!(human.contains("  forward:ci  ghcr.io  "), "{human}");
    let log_file = env.world.agent_dir().join("access.log");
    assert_eq!(
        fs::metadata(&log_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    env.no_secret_in_world();
}

fn rustix_uid() -> u64 {
    use std::os::unix::fs::MetadataExt;
    u64::from(fs::metadata("/proc/self").unwrap().uid())
}

#[test]
fn a_forward_socket_refuses_every_other_request_on_the_wire() {
    let env = Env::unlocked();
    env.ok(&["forward", "create", "ci", "--registry", "ghcr.io"], "");
    let socket = env.socket("ci");
    let public = {
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(env.world.vault_path()).unwrap()).unwrap();
        v["public_key"].as_str().unwrap().to_owned()
    };
    for request in [
        r#""hello""#.to_owned(),
        r#""status""#.to_owned(),
        r#""quit""#.to_owned(),
        r#""forwards""#.to_owned(),
        r#"{"lock":{"public_key":null}}"#.to_owned(),
        r#"{"add_key":{"secret_key":"AGE-SECRET-KEY-1X","label":"x","idle_secs":9,"timeout_secs":9}}"#.to_owned(),
        format!(
            r#"{{"decrypt":{{"public_key":"{public}","server":"ghcr.io","username":"ci","ciphertext":"AAAA"}}}}"#
        ),
        format!(r#"{{"keyed_mac":{{"public_key":"{public}","domain":"source","transcript":"AA=="}}}}"#),
        r#"{"forward_revoke":{"name":"ci"}}"#.to_owned(),
        format!(
            r#"{{"forward_create":{{"name":"x","registries":["other.example"],"ttl_secs":60,"vault":"/v","public_key":"{public}"}}}}"#
        ),
    ] {
        let answer = wire(&socket, &format!(r#"{{"v":2,"request":{request}}}"#));
        assert_eq!(answer, r#"{"error":"forbidden"}"#, "{request}");
    }
    // `quit` of another version is obeyed on the owner's socket only.
    assert_eq!(
        wire(&socket, r#"{"v":1,"request":"quit"}"#),
        r#"{"error":"forbidden"}"#
    );
    // The owner's socket does not serve the forward's requests.
    let owner = env.world.agent_dir().join("agent.sock");
    assert_eq!(
        wire(
            &owner,
            r#"{"v":2,"request":{"forward_get":{"server":"ghcr.io"}}}"#
        ),
        r#"{"error":"forbidden"}"#
    );
    // Still open, still serving, and the agent still holds the key.
    assert_eq!(env.forwards()[0]["name"], "ci");
    let got = wire(
        &socket,
        r#"{"v":2,"request":{"forward_get":{"server":"ghcr.io"}}}"#,
    );
    assert!(
        got.starts_with(r#"{"credentials":{"username":"ci","#),
        "{got}"
    );
    let status = env.ok(&["status", "--json"], "");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["unlocked"], true, "{status}");
}

#[test]
fn a_forward_reads_only_its_own_vault() {
    let env = Env::unlocked();
    // A second vault, unlocked in the same agent, holding other.example.
    let second = env.world.path("docker/second.json");
    let pass = env.world.path("keys/pass");
    let with_second = |args: &[&str], stdin: &str| {
        let mut c = env.cmd(args);
        c.env("LOCKBOX_VAULT", &second);
        let out = env.run_with(c, stdin);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    };
    with_second(&["init", "--passphrase-file", pass.to_str().unwrap()], "");
    with_second(&["store"], &common::store_json("second.example", "s", "x"));
    with_second(&["unlock", "--passphrase-file", pass.to_str().unwrap()], "");
    env.ok(
        &[
            "forward",
            "create",
            "ci",
            "--registry",
            "ghcr.io",
            "--registry",
            "second.example",
        ],
        "",
    );
    let socket = env.socket("ci");
    let other = env.inside(&socket, "get", "second.example");
    assert_eq!(stdout(&other), NOT_FOUND_LINE, "{}", text(&other));
    assert_eq!(
        stdout(&env.inside(&socket, "list", "")),
        "{\"ghcr.io\":\"ci\"}\n"
    );
}

#[test]
fn revoke_ttl_and_lock_end_a_forward_with_its_own_message_never_not_found() {
    let env = Env::unlocked();
    env.ok(&["forward", "create", "a", "--registry", "ghcr.io"], "");
    let socket = env.socket("a");
    assert!(env.inside(&socket, "get", "ghcr.io").status.success());
    let revoked = env.ok(&["forward", "revoke", "a"], "");
    assert_eq!(stdout(&revoked), "Revoked the forward a.\n");
    let after = env.inside(&socket, "get", "ghcr.io");
    assert_eq!(after.status.code(), Some(1));
    assert_eq!(stdout(&after), gone_line(&socket));
    // Docker drops a get's stdout on pull: the line is on stderr too.
    assert_eq!(String::from_utf8_lossy(&after.stderr), gone_line(&socket));
    assert!(
        !socket.parent().unwrap().exists(),
        "its directory is removed"
    );
    let again = env.run(&["forward", "revoke", "a"], "");
    assert_eq!(again.status.code(), Some(1));

    // The TTL.
    env.ok(
        &[
            "forward",
            "create",
            "b",
            "--registry",
            "ghcr.io",
            "--ttl",
            "1s",
        ],
        "",
    );
    let socket = env.socket("b");
    assert!(eventually(Duration::from_secs(20), || !socket.exists()));
    assert_eq!(
        stdout(&env.inside(&socket, "get", "ghcr.io")),
        gone_line(&socket)
    );
    assert_eq!(env.forwards(), serde_json::json!([]));

    // lock (of this vault) ends its forwards.
    env.ok(&["forward", "create", "c", "--registry", "ghcr.io"], "");
    env.ok(&["lock"], "");
    let socket = env.socket("c");
    assert_eq!(
        stdout(&env.inside(&socket, "get", "ghcr.io")),
        gone_line(&socket)
    );
}

#[test]
fn create_needs_an_unlocked_vault_and_checks_its_arguments() {
    let env = Env::unlocked();
    env.ok(&["lock"], "");
    let locked = env.run(&["forward", "create", "ci", "--registry", "ghcr.io"], "");
    assert_eq!(locked.status.code(), Some(3), "{}", text(&locked));
    for (args, says) in [
        (
            vec!["forward", "create", "../x", "--registry", "h"],
            "a forward's name",
        ),
        (
            vec!["forward", "create", "x", "--registry", "h", "--ttl", "8d"],
            "--ttl 8d",
        ),
        (
            vec!["forward", "create", "x", "--registry", "https://"],
            "not a registry",
        ),
        (
            vec!["forward", "run", "--registry", "h", "--", "ls", "run"],
            "wraps one",
        ),
        (vec!["log", "--since", "soon"], "--since soon"),
    ] {
        let out = env.run(&args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{}",
            text(&out)
        );
    }
}

/// A file with an ELF header and no PT_INTERP: what `forward run` checks a binary
/// for before mounting it (this test's fake docker never runs it).
fn fake_static_binary(env: &Env) -> PathBuf {
    let mut elf = vec![0u8; 64 + 56];
    elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
    elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
    elf[64..68].copy_from_slice(&1u32.to_le_bytes());
    let path = env.world.path("keys/static-lockbox");
    fs::write(&path, elf).unwrap();
    path
}

/// A `docker` on the world's PATH that records its arguments, then asks the forward
/// (found from its own `--mount type=bind,src=DIR,dst=/run/lockbox-forward,readonly`)
/// for ghcr.io, then runs
/// `$FAKE_DOCKER_THEN`.
fn fake_docker(env: &Env) {
    let script = format!(
        r#"#!/bin/sh
printf '%s\n' "$@" > "{out}/args"
dir=$(printf '%s\n' "$@" | sed -n 's#^type=bind,src=\(.*\),dst=/run/lockbox-forward,readonly$#\1#p')
echo ghcr.io | LOCKBOX_FORWARD_SOCKET="$dir/forward.sock" "{bin}" get > "{out}/get" 2>&1
eval "$FAKE_DOCKER_THEN"
"#,
        out = env.world.root().display(),
        bin = BIN
    );
    let path = env.world.bin_dir().join("docker");
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn forward_run_mounts_the_forward_runs_the_command_and_revokes_on_exit() {
    let env = Env::unlocked();
    fake_docker(&env);
    // This test binary's lockbox is dynamic: refused, with where to get a static one.
    let dynamic = env.run(
        &[
            "forward",
            "run",
            "--registry",
            "ghcr.io",
            "--",
            "docker",
            "run",
            "img",
        ],
        "",
    );
    assert_eq!(dynamic.status.code(), Some(2), "{}", text(&dynamic));
    assert!(String::from_utf8_lossy(&dynamic.stderr).contains("--binary PATH"));

    let binary = fake_static_binary(&env);
    let mut c = env.cmd(&[
        "forward",
        "run",
        "--registry",
        "ghcr.io",
        "--name",
        "job",
        "--binary",
        binary.to_str().unwrap(),
        "--",
        "docker",
        "run",
        "--rm",
        "img",
        "cmd",
    ]);
    c.env("FAKE_DOCKER_THEN", "exit 7");
    let out = env.run_with(c, "");
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let args = fs::read_to_string(env.world.path("args")).unwrap();
    let dir = env.world.agent_dir().join("forwards/job");
    let lines: Vec<&str> = args.lines().collect();
    assert_eq!(lines[0], "run");
    assert_eq!(
        lines[1..3],
        [
            "--mount",
            &format!(
                "type=bind,src={},dst=/run/lockbox-forward,readonly",
                dir.display()
            )
        ]
    );
    assert_eq!(
        lines[3..5],
        [
            "--mount",
            &format!(
                "type=bind,src={},dst=/usr/local/bin/docker-credential-lockbox,readonly",
                binary.display()
            )
        ]
    );
    let config = env.world.agent_dir().join("forward-run-");
    assert_eq!(lines[5], "--mount");
    assert!(
        lines[6].starts_with(&format!("type=bind,src={}", config.display()))
            && lines[6].ends_with(",dst=/run/lockbox-docker"),
        "{args}"
    );
    assert_eq!(
        lines[7..11],
        [
            "-e",
            "LOCKBOX_FORWARD_SOCKET=/run/lockbox-forward/forward.sock",
            "-e",
            "DOCKER_CONFIG=/run/lockbox-docker",
        ]
    );
    assert_eq!(lines[11..], ["--rm", "img", "cmd"]);
    let got = fs::read_to_string(env.world.path("get")).unwrap();
    assert!(
        got.contains(SECRET),
        "the command got the credentials: {got}"
    );
    // Revoked on exit, the generated config removed.
    assert_eq!(env.forwards(), serde_json::json!([]));
    assert!(!dir.exists());
    let left: Vec<_> = fs::read_dir(env.world.agent_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("forward-run-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    fs::remove_file(env.world.path("get")).unwrap();
    env.no_secret_in_world();
}

#[test]
fn forward_run_killed_by_sigkill_is_revoked_by_the_agent() {
    let env = Env::unlocked();
    fake_docker(&env);
    let binary = fake_static_binary(&env);
    let mut c = env.cmd(&[
        "forward",
        "run",
        "--registry",
        "ghcr.io",
        "--name",
        "job",
        "--ttl",
        "1h",
        "--binary",
        binary.to_str().unwrap(),
        "--",
        "docker",
        "run",
        "img",
    ]);
    let marker = env.world.path("started");
    c.env(
        "FAKE_DOCKER_THEN",
        format!("touch {}; sleep 60", marker.display()),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .process_group(0);
    let mut child = c.spawn().unwrap();
    assert!(eventually(Duration::from_secs(20), || marker.exists()));
    assert_eq!(env.forwards()[0]["tied"], true);
    child.kill().unwrap();
    child.wait().unwrap();
    // Its generated config is left behind, until the next `forward run` sweeps it.
    let leftover = env
        .world
        .agent_dir()
        .join(format!("forward-run-{}", child.id()));
    assert!(leftover.join("config.json").exists());
    // The agent saw its creator die: the forward ends long before its hour.
    assert!(eventually(Duration::from_secs(20), || env.forwards()
        == serde_json::json!([])));
    assert!(!env.socket("job").exists());
    let mut again = env.cmd(&[
        "forward",
        "run",
        "--registry",
        "ghcr.io",
        "--binary",
        binary.to_str().unwrap(),
        "--",
        "docker",
        "run",
        "img",
    ]);
    again.env("FAKE_DOCKER_THEN", "true");
    assert!(env.run_with(again, "").status.success());
    assert!(!leftover.exists(), "the next forward run sweeps it");
    // The fake docker (same process group) is stopped too.
    let _ = rustix_kill_group(child.id());
    fs::remove_file(env.world.path("get")).unwrap();
}

fn rustix_kill_group(pid: u32) -> std::io::Result<()> {
    Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status()
        .map(|_| ())
}

#[test]
fn another_uid_is_refused_unless_the_forward_names_it() {
    if !common::require(
        common::clients::is_root() && common::which("setpriv").is_some(),
        "root and setpriv",
        "it (see scripts/test.sh)",
    ) {
        return;
    }
    let env = Env::unlocked();
    env.ok(
        &["forward", "create", "closed", "--registry", "ghcr.io"],
        "",
    );
    env.ok(
        &[
            "forward",
            "create",
            "open",
            "--registry",
            "ghcr.io",
            "--uid",
            "65534",
        ],
        "",
    );
    // A container's bind mount of the forward's directory skips the directories
    // above it (0700, the owner's): open those here as the mount would. The forward's
    // own directory (0711) and socket (0666) are the agent's doing, not the test's.
    let agent = env.world.agent_dir();
    for p in [
        env.world.root().to_path_buf(),
        env.world.path("run"),
        agent.clone(),
        agent.join("forwards"),
    ] {
        fs::set_permissions(&p, fs::Permissions::from_mode(0o711)).unwrap();
    }
    let closed = env.socket("closed");
    let open = env.socket("open");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for socket in [&closed, &open] {
        assert_eq!(mode(socket.parent().unwrap()), 0o711);
        assert_eq!(mode(socket), 0o666);
    }
    let as_nobody = |socket: &Path| {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "get",
        ])
        .env_clear()
        .env("LOCKBOX_FORWARD_SOCKET", socket);
        env.run_with(c, "ghcr.io")
    };
    let refused = as_nobody(&closed);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stdout(&refused),
        "lockbox forward: the forward does not admit uid 65534 (this process's uid as the host sees it); on the host, create it with '--uid 65534' (it admits the owner's uid and root otherwise)\n"
    );
    // A socket the file system keeps this uid from (an older agent's 0700
    // directory): its own line, never the gone one.
    let private = env.world.path("private");
    fs::create_dir(&private).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(private.join("forward.sock")).unwrap();
    let denied = as_nobody(&private.join("forward.sock"));
    assert_eq!(denied.status.code(), Some(1));
    assert_eq!(
        stdout(&denied),
        format!(
            "lockbox forward: permission denied opening {}: the forward does not admit this uid (uid 65534 in here); on the host, create it with '--uid' and this process's uid as the host sees it, and mount its directory into the container\n",
            private.join("forward.sock").display()
        )
    );
    let admitted = as_nobody(&open);
    assert!(admitted.status.success(), "{}", text(&admitted));
    assert!(stdout(&admitted).contains(SECRET));
    // `log` refuses a loose agent directory (its log could be anyone's): close it.
    assert_eq!(env.run(&["log"], "").status.code(), Some(1));
    fs::set_permissions(&agent, fs::Permissions::from_mode(0o700)).unwrap();
    let log = stdout(&env.ok(&["log", "--json"], ""));
    assert!(
        log.contains(r#""socket":"forward:open""#) && log.contains(r#""uid":65534"#),
        "{log}"
    );
    assert!(!log.contains("forward:closed"), "{log}");
}

/// A peer on a forward socket that opens 200 connections and sends nothing on any
/// (each one an idle request the agent has to wait out), holding them until `stop`
/// (polled every 50 ms, at most 60 s); how many it opened.
fn flood(socket: &Path, stop: &std::sync::atomic::AtomicBool) -> usize {
    let idle: Vec<UnixStream> = (0..200)
        .map_while(|_| UnixStream::connect(socket).ok())
        .collect();
    for _ in 0..1200 {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    idle.len()
}

#[test]
fn a_peer_flooding_a_forward_socket_does_not_starve_the_owner() {
    let env = Env::unlocked();
    env.ok(&["forward", "create", "flood", "--registry", "ghcr.io"], "");
    let socket = env.socket("flood");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooder = {
        let (socket, stop) = (socket.clone(), stop.clone());
        std::thread::spawn(move || flood(&socket, &stop))
    };
    // Let the queue fill, so the agent is busy with idle connections.
    std::thread::sleep(Duration::from_millis(500));
    let got = env.run(&["get"], "ghcr.io");
    let revoked = env.run(&["forward", "revoke", "flood"], "");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let made = flooder.join().unwrap();
    assert!(got.status.success(), "{}", text(&got));
    assert!(stdout(&got).contains(SECRET));
    assert!(revoked.status.success(), "{}", text(&revoked));
    assert_eq!(made, 200, "the peer flooded");
    assert_eq!(env.forwards(), serde_json::json!([]));
}

#[test]
fn log_refuses_a_fifo_or_a_symlink_at_the_log_path() {
    let env = Env::unlocked();
    let log = env.world.agent_dir().join("access.log");
    let _ = fs::remove_file(&log);
    let fifo = Command::new("mkfifo").arg(&log).status().unwrap();
    assert!(fifo.success());
    // Bounded by the harness: a FIFO opened for reading would hang the command.
    let out = env.run(&["log"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FIFO"),
        "{}",
        text(&out)
    );
    fs::remove_file(&log).unwrap();
    let elsewhere = env.world.path("elsewhere.log");
    fs::write(&elsewhere, "").unwrap();
    std::os::unix::fs::symlink(&elsewhere, &log).unwrap();
    let out = env.run(&["log"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn a_socket_path_too_long_is_refused_on_the_host_with_its_own_line() {
    let env = Env::unlocked();
    let name = "n".repeat(64);
    let socket = env.socket(&name);
    assert!(socket.as_os_str().len() > 107, "{}", socket.display());
    let out = env.run(&["forward", "create", &name, "--registry", "ghcr.io"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "the forward's socket would be {}, longer than the 107 bytes a socket's path may have; use a shorter forward name or a shorter XDG_RUNTIME_DIR",
            socket.display()
        )),
        "{}",
        text(&out)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("older build"));
    assert_eq!(env.forwards(), serde_json::json!([]));
}

#[test]
fn the_owners_gets_through_the_agent_and_exec_are_logged_too() {
    let env = Env::unlocked();
    let got = env.ok(&["get"], "ghcr.io");
    assert!(stdout(&got).contains(SECRET));
    // Not found: nothing handed out, nothing logged.
    assert_eq!(
        stdout(&env.run(&["get"], "nothing.example")),
        NOT_FOUND_LINE
    );
    let pass = env.world.path("keys/pass");
    env.ok(
        &[
            "exec",
            "--passphrase-file",
            pass.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &format!("echo other.example | {BIN} get >/dev/null"),
        ],
        "",
    );
    let log = stdout(&env.ok(&["log", "--json"], ""));
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{log}");
    assert_eq!(records[0]["socket"], "owner");
    assert_eq!(records[0]["registry"], "ghcr.io");
    assert_eq!(records[1]["socket"], "exec");
    assert_eq!(records[1]["registry"], "other.example");
    env.no_secret_in_world();
}

#[test]
fn a_relative_lockbox_vault_is_sent_absolute_and_the_agent_refuses_a_relative_one() {
    let env = Env::unlocked();
    let mut c = env.cmd(&[
        "forward",
        "create",
        "rel",
        "--registry",
        "ghcr.io",
        "--json",
    ]);
    c.current_dir(env.world.root())
        .env("LOCKBOX_VAULT", "docker/lockbox/vault.json");
    let out = env.run_with(c, "");
    assert!(out.status.success(), "{}", text(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        info["vault"],
        env.world.vault_path().display().to_string(),
        "{info}"
    );
    let got = env.inside(&env.socket("rel"), "get", "ghcr.io");
    assert!(stdout(&got).contains(SECRET), "{}", text(&got));
    // On the wire, a relative vault is refused.
    let vault: serde_json::Value =
        serde_json::from_slice(&fs::read(env.world.vault_path()).unwrap()).unwrap();
    let answer = wire(
        &env.world.agent_dir().join("agent.sock"),
        &format!(
            r#"{{"v":2,"request":{{"forward_create":{{"name":"x","registries":["ghcr.io"],"ttl_secs":60,"vault":"docker/lockbox/vault.json","public_key":{}}}}}}}"#,
            vault["public_key"]
        ),
    );
    assert_eq!(answer, r#"{"error":"bad_request"}"#);
}

#[test]
fn a_forward_that_does_not_answer_is_reported_as_such_never_as_gone() {
    let env = Env::unlocked();
    // A socket that takes connections (the kernel queues them) and never answers,
    // as an agent that is stopped does.
    let dir = env.world.path("silent");
    fs::create_dir(&dir).unwrap();
    let socket = dir.join("forward.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let out = env.inside(&socket, "get", "ghcr.io");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "lockbox forward: the host's lockbox agent did not answer within 40 s at {} (it is busy or stopped); try again, and if it persists, check the agent on the host ('lockbox status')\n",
            socket.display()
        )
    );
    assert_ne!(stdout(&out), gone_line(&socket));
}

#[test]
fn log_escapes_c1_and_bidi_characters_of_a_peers_executable() {
    let env = Env::unlocked();
    // A peer whose executable's path holds a CSI (C1) and a right-to-left override.
    let dir = env.world.path("tools\u{9b}31m\u{202e}exe");
    fs::create_dir(&dir).unwrap();
    let copy = dir.join("helper");
    fs::copy(BIN, &copy).unwrap();
    let mut c = env.world.command(&copy);
    c.arg("get");
    let got = env.run_with(c, "ghcr.io");
    assert!(got.status.success(), "{}", text(&got));
    let raw = stdout(&env.ok(&["log", "--json"], ""));
    assert!(
        !raw.contains('\u{9b}') && !raw.contains('\u{202e}'),
        "{raw:?}"
    );
    let record: serde_json::Value = serde_json::from_str(raw.lines().last().unwrap()).unwrap();
    assert_eq!(record["exe"], copy.display().to_string(), "{raw}");
    let human = stdout(&env.ok(&["log"], ""));
    assert!(
        !human.contains('\u{9b}') && !human.contains('\u{202e}'),
        "{human:?}"
    );
}

#[test]
fn forward_run_passes_sigterm_and_sigint_on_and_still_revokes_and_cleans_up() {
    let env = Env::unlocked();
    fake_docker(&env);
    let binary = fake_static_binary(&env);
    use rustix::process::Signal;
    for (sig, name) in [(Signal::TERM, "term"), (Signal::INT, "int")] {
        let marker = env.world.path(&format!("started-{name}"));
        let passed = env.world.path(&format!("passed-{name}"));
        let mut c = env.cmd(&[
            "forward",
            "run",
            "--registry",
            "ghcr.io",
            "--name",
            name,
            "--binary",
            binary.to_str().unwrap(),
            "--",
            "docker",
            "run",
            "img",
        ]);
        // The fake docker records the signal it gets, then exits 3 (bounded wait).
        c.env(
            "FAKE_DOCKER_THEN",
            format!(
                "trap 'touch {p}; exit 3' TERM INT; touch {m}; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done",
                p = passed.display(),
                m = marker.display()
            ),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
        let child = c.spawn().unwrap();
        let id = child.id();
        assert!(eventually(Duration::from_secs(20), || marker.exists()));
        // To `forward run` alone, not its process group.
        let pid = rustix::process::Pid::from_raw(id as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
        let out = common::output_within(child, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(3), "{name}: {}", text(&out));
        assert!(passed.exists(), "{name}: the command got the signal");
        assert_eq!(env.forwards(), serde_json::json!([]), "{name}: revoked");
        let config = env.world.agent_dir().join(format!("forward-run-{id}"));
        assert!(!config.exists(), "{name}: its config directory is removed");
    }
}
