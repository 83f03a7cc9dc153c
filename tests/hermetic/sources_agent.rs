//! The agent's token cache for sealed sources, through the real binary: `get` of an
//! `exec` source with an unlocked agent (one mint for fifty concurrent gets, a hanging
//! mint given up while the agent serves others, refresh ahead of expiry and never a
//! stale token, a planted or altered source refused before anything runs, lock drops
//! the tokens), a forward handed the minted token (never the source), and `status`.
//! Each test has its own world and agent (stopped at the end); the vault is made
//! through the library (`source add` is a CLI of its own) with an age identity, which
//! `unlock --identity-file` opens.
use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use common::{BIN, World};
use lockbox::file::VaultPath;
use lockbox::vault::Vault;
use lockbox::vault::crypto::{Recipient, VaultKey};

const SOURCE: &str = "reg.example";
const STATIC: &str = "static.example";
const STATIC_SECRET: &str = "static-s3cret-7d1e";

/// A world whose vault holds a static entry and an exec source whose script is
/// `mint.sh` (written by each test), unlocked in its own agent.
struct Env {
    world: World,
    key: VaultKey,
}

impl Env {
    /// The world with `script` as the source's command body (`sh`; it counts its runs
    /// in `runs`, one line each, before the body runs).
    fn unlocked(body: &str) -> Env {
        let world = World::new();
        let key = VaultKey::generate();
        let id = age::x25519::Identity::generate();
        let recipient = Recipient::parse(&id.to_public().to_string()).unwrap();
        let slot = Vault::age_slot(&key, &recipient, "test".into()).unwrap();
        let mut vault = Vault::new(&key, vec![slot]);
        let secret = SecretString::from(STATIC_SECRET.to_owned());
        vault.store(STATIC, "ci", &secret).unwrap();
        let env = Env { world, key };
        env.write_script("mint.sh", body);
        let params = env.params("mint.sh");
        let none = SecretString::from(String::new());
        vault
            .add_source(&env.key, SOURCE, "<minted>", "exec", params, &none)
            .unwrap();
        VaultPath::new(env.world.vault_path())
            .create(&vault, true)
            .unwrap();
        let identity = env.world.path("keys/id.txt");
        fs::write(&identity, id.to_string().expose_secret()).unwrap();
        fs::set_permissions(&identity, fs::Permissions::from_mode(0o600)).unwrap();
        let identity = identity.to_str().unwrap().to_owned();
        env.ok(&["unlock", "--identity-file", &identity]);
        env
    }

    /// The `exec` parameters running the world's `name`.
    fn params(&self, name: &str) -> BTreeMap<String, String> {
        let argv = vec![self.world.path(name).to_str().unwrap().to_owned()];
        BTreeMap::from([(
            "command".to_owned(),
            lockbox::sources::exec::command_param(&argv),
        )])
    }

    /// Writes the script `name`: a PATH of its own (the agent's environment is
    /// empty), one line per run in `runs`, then `body`.
    fn write_script(&self, name: &str, body: &str) {
        let path = self.world.path(name);
        let runs = self.runs_file();
        let text = format!(
            "#!/bin/sh\nPATH=/usr/bin:/bin\necho $$ >> '{}'\n{body}\n",
            runs.display()
        );
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn runs_file(&self) -> PathBuf {
        self.world.path("runs")
    }

    /// How many times the source's command ran.
    fn runs(&self) -> usize {
        fs::read_to_string(self.runs_file()).map_or(0, |t| t.lines().count())
    }

    /// The binary in the world, which trusts the vault's key to run sources (the
    /// vault was made through the library, so no `init` wrote the trust file).
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.world.command(BIN);
        c.args(args)
            .env("LOCKBOX_TRUSTED_VAULT_KEYS", self.key.public().to_string());
        c
    }

    fn spawn(&self, args: &[&str], stdin: &str) -> Child {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        child
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        common::output_within(self.spawn(args, stdin), Duration::from_secs(60))
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args, "");
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        out
    }

    /// `get` of `server`: the secret it answered.
    fn get(&self, server: &str) -> String {
        let out = self.run(&["get"], server);
        assert!(out.status.success(), "get {server}: {}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["Secret"].as_str().unwrap().to_owned()
    }

    fn status_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.run(&["status", "--json"], "").stdout).unwrap()
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

/// A script body answering `tok-RUN-EXPIRY`, expiring `life` seconds from when it
/// answers, after sleeping `sleep` seconds (on its first run) and `later` (after).
fn token_body(life: u64, sleep: &str, later: &str) -> String {
    format!(
        r#"n=$(wc -l < "$(dirname "$0")/runs" | tr -d ' ')
if [ "$n" -gt 1 ]; then sleep {later}; else sleep {sleep}; fi
exp=$(( $(date +%s) + {life} ))
printf '{{"Username":"AWS","Secret":"tok-%s-%s","ExpiresAt":"%s"}}\n' "$n" "$exp" "$(date -u -d "@$exp" +%Y-%m-%dT%H:%M:%SZ)""#
    )
}

/// The run number and expiry (Unix seconds) in a token of [`token_body`].
fn token_parts(token: &str) -> (usize, u64) {
    let mut parts = token.split('-').skip(1);
    let run = parts.next().unwrap().parse().unwrap();
    let exp = parts.next().unwrap().parse().unwrap();
    (run, exp)
}

/// Whether `pid` is a live process (a zombie is not).
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next())
        })
        .flatten()
        .is_some_and(|state| !matches!(state, 'Z' | 'X'))
}

#[test]
fn fifty_concurrent_gets_cause_one_mint_and_get_one_answer() {
    let env = Env::unlocked(&token_body(3600, "1", "0"));
    let children: Vec<Child> = (0..50).map(|_| env.spawn(&["get"], SOURCE)).collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| common::output_within(c, Duration::from_secs(60)))
        .collect();
    for out in &outputs {
        assert!(out.status.success(), "{}", text(out));
        assert_eq!(out.stdout, outputs[0].stdout, "{}", text(out));
    }
    let v: serde_json::Value = serde_json::from_slice(&outputs[0].stdout).unwrap();
    assert_eq!(v["Username"], "AWS");
    assert_eq!(token_parts(v["Secret"].as_str().unwrap()).0, 1);
    assert_eq!(env.runs(), 1, "one mint for all fifty");
}

#[test]
fn a_hanging_mint_is_given_up_while_the_agent_serves_others_and_its_group_is_killed() {
    let env = Env::unlocked("sleep 1000 &\necho $! > \"$(dirname \"$0\")/child\"\nwait");
    let hanging = env.spawn(&["get"], SOURCE);
    assert!(
        eventually(Duration::from_secs(20), || env.world.path("child").exists()
            && env.runs() == 1),
        "the mint never started"
    );
    let shell: u32 = fs::read_to_string(env.runs_file())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let sleeper: u32 = fs::read_to_string(env.world.path("child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(shell) && alive(sleeper));
    // Meanwhile the agent answers a static get (and a status).
    assert_eq!(env.get(STATIC), STATIC_SECRET);
    env.ok(&["status"]);
    let out = common::output_within(hanging, Duration::from_secs(60));
    assert!(!out.status.success(), "{}", text(&out));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("the exec source for reg.example could not mint a credential"),
        "{}",
        text(&out)
    );
    assert!(!all.contains("credentials not found"), "{}", text(&out));
    let line = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        line.trim_end().lines().count(),
        1,
        "one line: {}",
        text(&out)
    );
    assert!(
        eventually(Duration::from_secs(10), || !alive(shell) && !alive(sleeper)),
        "the command's process group outlived its deadline"
    );
    assert_eq!(env.runs(), 1);
}

#[test]
fn a_token_is_refreshed_ahead_of_expiry_served_meanwhile_and_never_served_stale() {
    // 16 s tokens: served for 8 s, refreshed in the background from then, never
    // served in their last 4 s. A refresh takes 2 s.
    let (life, stale_margin) = (16, 4);
    let env = Env::unlocked(&token_body(life, "0", "2"));
    let get = |env: &Env| {
        let asked = common::unix_now();
        let token = env.get(SOURCE);
        let (run, exp) = token_parts(&token);
        // Whatever the timing: never a token within its stale margin when asked.
        assert!(exp > asked + stale_margin - 1, "{token} served at {asked}");
        run
    };
    assert_eq!(get(&env), 1);
    let token_at =
        |env: &Env, field: &str| env.status_json()["sources"][0]["token"][field].as_u64();
    let refresh_at = token_at(&env, "refresh_at").expect("status shows the agent's token");
    assert!(eventually(Duration::from_secs(30), || common::unix_now() >= refresh_at));
    // In its refresh window: the cached token answers, and a mint starts behind it.
    assert_eq!(get(&env), 1);
    assert!(
        eventually(Duration::from_secs(30), || env.runs() == 2),
        "no background refresh"
    );
    assert!(eventually(Duration::from_secs(10), || token_at(
        &env,
        "minted_at"
    )
    .is_some_and(|m| m >= refresh_at)));
    assert_eq!(get(&env), 2, "the refreshed token, from the cache");
    assert_eq!(env.runs(), 2);
    // Past its stale point with no get in between: minted anew, never served.
    let stale_at = token_at(&env, "stale_at").unwrap();
    assert!(eventually(Duration::from_secs(30), || common::unix_now() >= stale_at));
    assert_eq!(get(&env), 3);
    assert_eq!(env.runs(), 3);
}

#[test]
fn an_altered_or_planted_source_is_refused_and_nothing_runs() {
    let env = Env::unlocked(&token_body(3600, "0", "0"));
    env.write_script("evil.sh", "touch \"$(dirname \"$0\")/evil-ran\"");
    let tampered = |env: &Env| {
        let out = env.run(&["get"], SOURCE);
        assert!(!out.status.success(), "{}", text(&out));
        let all = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            all.contains("the source for reg.example was not made with this vault's key"),
            "{}",
            text(&out)
        );
        assert!(!env.runs_file().exists() && !env.world.path("evil-ran").exists());
    };
    // Altered: the command edited in the file.
    let path = env.world.vault_path();
    let original = fs::read_to_string(&path).unwrap();
    fs::write(&path, original.replace("mint.sh", "evil.sh")).unwrap();
    tampered(&env);
    // Planted: a whole source made with another key (a writer of the file has only
    // the public key).
    fs::write(&path, &original).unwrap();
    let mut vault = VaultPath::new(path.clone()).read_existing().unwrap();
    vault.remove_source(SOURCE).unwrap();
    let attacker = VaultKey::generate();
    let none = SecretString::from(String::new());
    vault
        .add_source(
            &attacker,
            SOURCE,
            "<minted>",
            "exec",
            env.params("evil.sh"),
            &none,
        )
        .unwrap();
    VaultPath::new(path).create(&vault, true).unwrap();
    tampered(&env);
}

#[test]
fn lock_drops_the_tokens_and_status_shows_them_while_cached() {
    let env = Env::unlocked(&token_body(3600, "0", "0"));
    assert_eq!(token_parts(&env.get(SOURCE)).0, 1);
    assert_eq!(token_parts(&env.get(SOURCE)).0, 1);
    assert_eq!(env.runs(), 1);
    let status = String::from_utf8(env.ok(&["status"]).stdout).unwrap();
    assert!(
        status.contains("sources:\n  reg.example (exec): minted by the agent"),
        "{status}"
    );
    let json = env.status_json();
    let token = &json["sources"][0]["token"];
    assert!(
        token["expires_at"].as_u64().unwrap() > common::unix_now(),
        "{json}"
    );
    assert!(
        !json.to_string().contains("tok-"),
        "status never shows a token"
    );
    env.ok(&["lock"]);
    let status = String::from_utf8(env.run(&["status"], "").stdout).unwrap();
    assert!(
        status.contains("reg.example (exec): not cached in an agent"),
        "{status}"
    );
    let identity = env.world.path("keys/id.txt");
    env.ok(&["unlock", "--identity-file", identity.to_str().unwrap()]);
    assert_eq!(
        token_parts(&env.get(SOURCE)).0,
        2,
        "minted again after the lock"
    );
    assert_eq!(env.runs(), 2);
}

#[test]
fn a_forward_gets_the_minted_token_never_the_source_and_the_access_log_has_it() {
    let env = Env::unlocked(&token_body(3600, "0", "0"));
    env.ok(&[
        "forward",
        "create",
        "ci",
        "--registry",
        SOURCE,
        "--ttl",
        "10m",
    ]);
    let inside = |name: &str| {
        let socket = env
            .world
            .agent_dir()
            .join(format!("forwards/{name}/forward.sock"));
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("LOCKBOX_FORWARD_SOCKET", &socket)
            .env("HOME", env.world.path("nowhere"))
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(SOURCE.as_bytes())
            .unwrap();
        common::output_within(child, Duration::from_secs(60))
    };
    // A forward whose creator does not trust the vault's key answers no source.
    let mut untrusted = env.cmd(&["forward", "create", "untrusted", "--registry", SOURCE]);
    untrusted.env_remove("LOCKBOX_TRUSTED_VAULT_KEYS");
    let out = common::output_within(
        untrusted
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = inside("untrusted");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("did not trust this vault's key"),
        "{}",
        text(&out)
    );
    assert_eq!(env.runs(), 0);
    let out = inside("ci");
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = v["Secret"].as_str().unwrap().to_owned();
    assert_eq!(token_parts(&token).0, 1);
    assert_eq!(v["Username"], "AWS");
    // The owner's get is answered from the same cache.
    assert_eq!(env.get(SOURCE), token);
    assert_eq!(env.runs(), 1);
    let log = fs::read_to_string(env.world.agent_dir().join("access.log")).unwrap();
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let through = |socket: &str| {
        records
            .iter()
            .any(|r| r["registry"] == SOURCE && r["socket"] == socket)
    };
    assert!(through("forward:ci") && through("owner"), "{log}");
    assert!(!log.contains(&token), "the log never holds the token");
    assert_eq!(
        env.world.find_secret(&common::secret_needles(None, &token)),
        None
    );
}

#[test]
fn exec_mints_for_its_command_through_the_same_cache() {
    let env = Env::unlocked(&token_body(3600, "0", "0"));
    let identity = env.world.path("keys/id.txt");
    let script = format!("echo {SOURCE} | {BIN} get; echo {SOURCE} | {BIN} get");
    let out = env.run(
        &[
            "exec",
            "--identity-file",
            identity.to_str().unwrap(),
            "--",
            "/bin/sh",
            "-c",
            &script,
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", text(&out));
    assert_eq!(lines[0], lines[1]);
    assert_eq!(token_parts(lines[0]["Secret"].as_str().unwrap()).0, 1);
    assert_eq!(env.runs(), 1, "exec's own server minted once");
}

#[test]
fn a_token_through_an_agent_about_to_forget_the_key_warns_on_stderr_only() {
    let env = Env::unlocked(&token_body(3600, "0", "0"));
    let identity = env.world.path("keys/id.txt");
    let identity = identity.to_str().unwrap();
    env.ok(&["unlock", "--identity-file", identity, "--timeout", "2m"]);
    let out = env.run(&["get"], SOURCE);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(token_parts(v["Secret"].as_str().unwrap()).0, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("lockbox: warning: the agent forgets this vault's key in ")
            && stderr.contains("(its --timeout)"),
        "{}",
        text(&out)
    );
}

/// Not a test: writes the world `docs/PERFORMANCE.md` times the token cache in
/// ("A `get` from the agent's token cache"), into `$LOCKBOX_BENCH_DIR`: `vault.json`
/// with a static entry, an `exec` source (`mint.sh`, a token of one hour) and one
/// whose token has no expiry (`uncached.sh`: every get mints), and
/// `id.txt`, the identity that unlocks it. Run it with `--run-ignored only`.
#[test]
#[ignore = "writes a benchmark's world; run by hand"]
fn bench_world() {
    let Some(dir) = std::env::var_os("LOCKBOX_BENCH_DIR").map(PathBuf::from) else {
        panic!("set LOCKBOX_BENCH_DIR to an empty directory");
    };
    let key = VaultKey::generate();
    let id = age::x25519::Identity::generate();
    let recipient = Recipient::parse(&id.to_public().to_string()).unwrap();
    let slot = Vault::age_slot(&key, &recipient, "bench".into()).unwrap();
    let mut vault = Vault::new(&key, vec![slot]);
    let secret = SecretString::from(STATIC_SECRET.to_owned());
    vault.store(STATIC, "ci", &secret).unwrap();
    let script = dir.join("mint.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nPATH=/usr/bin:/bin\necho $$ >> '{}'\n{}\n",
            dir.join("runs").display(),
            token_body(3600, "0", "0").replace("$(dirname \"$0\")", &dir.display().to_string())
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let argv = vec![script.to_str().unwrap().to_owned()];
    let params = BTreeMap::from([(
        "command".to_owned(),
        lockbox::sources::exec::command_param(&argv),
    )]);
    let none = SecretString::from(String::new());
    vault
        .add_source(&key, SOURCE, "<minted>", "exec", params, &none)
        .unwrap();
    // A token without an expiry is never cached: every get of it mints.
    let uncached = dir.join("uncached.sh");
    let body = r#"echo '{"Username":"AWS","Secret":"uncached-token"}'"#;
    fs::write(&uncached, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&uncached, fs::Permissions::from_mode(0o755)).unwrap();
    let argv = vec![uncached.to_str().unwrap().to_owned()];
    let params = BTreeMap::from([(
        "command".to_owned(),
        lockbox::sources::exec::command_param(&argv),
    )]);
    vault
        .add_source(&key, "uncached.example", "<minted>", "exec", params, &none)
        .unwrap();
    VaultPath::new(dir.join("vault.json"))
        .create(&vault, true)
        .unwrap();
    let identity = dir.join("id.txt");
    fs::write(&identity, id.to_string().expose_secret()).unwrap();
    fs::set_permissions(&identity, fs::Permissions::from_mode(0o600)).unwrap();
}
