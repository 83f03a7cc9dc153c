//! Hostile files and faults (issue 15): regression tests on the real binary, each named
//! after the bug it pins — a file-size limit, FIFOs where files should be, a symlinked
//! lock file, writers killed mid-write, a key rotation under a running agent.
//!
//! The writer tests use two debug-build hooks of `src/file.rs`:
//! `LOCKBOX_DEBUG_TEMP_FILE=named|anonymous` (force the named-file fallback, or forbid
//! it) and `LOCKBOX_DEBUG_PAUSE_BEFORE_RENAME=FILE` (a complete new vault waits for
//! FILE to disappear before it replaces the old one), so a kill or a `get` lands in
//! the window that matters every time instead of by chance.
//!
//! Round three (issue 20, section 8 below) adds `LOCKBOX_DEBUG_PIPE_WAIT_MS`, the
//! debug-build override of `secret_io::PIPE_WAIT` (60 s), so the FIFO table's rows for
//! pipe-friendly inputs wait 1 s instead of a minute; strace's fault injection for the
//! killed `export`; and `prlimit` for the unbounded read.
use crate::common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{BIN, FAST_KDF, Out, PASSPHRASE, TestEnv, require_tool, store_json};

/// A bound for runs that used to hang forever: far above a normal run.
const HANG_LIMIT: Duration = Duration::from_secs(20);
/// The user the non-root tests run as when the suite runs as root (as CI does).
const TEST_USER: &str = "lockbox-hostile";

/// The names in a directory.
fn listing(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Who runs the binary: this process's user, or (when that is root) an unprivileged
/// user made with `useradd`, through `setpriv`. Root hides what an ordinary user may
/// not do (linking through /proc without CAP_DAC_READ_SEARCH, for one).
#[derive(Clone, Copy)]
struct Runner {
    ids: Option<(u32, u32)>,
}

impl Runner {
    /// The binary run as an unprivileged user; `None` (skipped, outside CI only) when
    /// root lacks `useradd` or `setpriv`.
    fn unprivileged() -> Option<Runner> {
        if !is_root() {
            return Some(Runner { ids: None });
        }
        if !require_tool("useradd", "passwd") || !require_tool("setpriv", "util-linux") {
            return None;
        }
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, TEST_USER]).output().ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        // Tests run in parallel processes: another may be creating the user right now
        // (useradd then fails on its lock or on "already exists"), so look again.
        for _ in 0..50 {
            if let (Some(uid), Some(gid)) = (id("-u"), id("-g")) {
                return Some(Runner {
                    ids: Some((uid, gid)),
                });
            }
            let _ = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    TEST_USER,
                ])
                .stderr(Stdio::null())
                .status();
            thread::sleep(Duration::from_millis(100));
        }
        panic!("could not create the test user {TEST_USER} with useradd");
    }

    /// Gives the whole test directory to the runner's user.
    fn own(&self, env: &TestEnv) {
        let Some((uid, gid)) = self.ids else { return };
        fn walk(p: &Path, uid: u32, gid: u32) {
            std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
            if fs::symlink_metadata(p).unwrap().is_dir() {
                for e in fs::read_dir(p).unwrap() {
                    walk(&e.unwrap().path(), uid, gid);
                }
            }
        }
        walk(&env.path(""), uid, gid);
    }

    fn command(&self, env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> Command {
        match self.ids {
            None => env.command(BIN, args, vars),
            Some((uid, gid)) => {
                let (u, g) = (format!("--reuid={uid}"), format!("--regid={gid}"));
                let mut all = vec![u.as_str(), g.as_str(), "--clear-groups", BIN];
                all.extend_from_slice(args);
                env.command("setpriv", &all, vars)
            }
        }
    }

    fn spawn(&self, env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> Child {
        self.command(env, args, vars)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the binary")
    }

    fn run(&self, env: &TestEnv, args: &[&str], stdin: &str, vars: &[(&str, &str)]) -> Out {
        let child = self.spawn(env, args, vars);
        env.finish(args, child, Some(stdin.as_bytes().to_vec()), HANG_LIMIT)
    }

    /// `init` with a cheap passphrase slot; returns the passphrase file.
    fn init(&self, env: &TestEnv) -> PathBuf {
        let file = env.keys_dir().join("passphrase");
        fs::write(&file, format!("{PASSPHRASE}\n")).unwrap();
        env.track_secret(PASSPHRASE);
        self.own(env);
        self.run(
            env,
            &["init", "--passphrase-file", file.to_str().unwrap()],
            "",
            &[("LOCKBOX_ARGON2_PARAMS", FAST_KDF)],
        )
        .assert_code(0);
        file
    }

    fn store(&self, env: &TestEnv, server: &str, secret: &str, vars: &[(&str, &str)]) -> Out {
        env.track_secret(secret);
        self.run(env, &["store"], &store_json(server, "u", secret), vars)
    }

    fn get(&self, env: &TestEnv, server: &str, pass: &Path) -> Out {
        let pass = pass.to_str().unwrap();
        self.run(env, &["get"], server, &[("LOCKBOX_PASSPHRASE_FILE", pass)])
    }
}

fn root() -> Runner {
    Runner { ids: None }
}

/// Waits (bounded) until `path` exists: the writer reached the pause hook.
fn wait_for(path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while fs::symlink_metadata(path).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the writer exited ({status}) before it reached the pause hook");
        }
        assert!(
            Instant::now() < deadline,
            "the writer never reached the pause hook"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

// --- 1. SIGXFSZ -------------------------------------------------------------------------

/// `ulimit -f` below the new vault's size: `store` used to die of SIGXFSZ (exit 153,
/// no output, a partial `vault.json.tmp` left). Now the write fails with EFBIG through
/// the normal one-line error, nothing is left, the vault is unchanged — on both
/// temporary-file paths.
#[test]
fn file_size_limit_fails_store_with_efbig_and_leaves_no_temp_file() {
    for mode in ["auto", "anonymous", "named"] {
        let env = TestEnv::new();
        let pass = root().init(&env);
        env.store("small.example", "u", "small-secret-1234");
        let before = env.vault_bytes();
        // 8 KiB of secret makes a vault far larger than the 2 KiB limit below (reads
        // are not limited, so the old vault is still read).
        let secret = "s".repeat(8192);
        env.track_secret(&secret);
        let script = r#"ulimit -f 2 && exec "$0" store"#;
        let mut vars = vec![];
        if mode != "auto" {
            vars.push(("LOCKBOX_DEBUG_TEMP_FILE", mode));
        }
        let child = env
            .command("bash", &["-c", script, BIN], &vars)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = env.finish(
            &["store"],
            child,
            Some(store_json("big.example", "u", &secret).into_bytes()),
            HANG_LIMIT,
        );
        let line = out.assert_error_line();
        assert!(line.contains("File too large"), "{mode}: {out}");
        assert!(line.contains("ulimit -f"), "says what to do: {out}");
        assert_eq!(env.vault_bytes(), before, "{mode}: the vault changed");
        assert_eq!(
            listing(&env.path("docker/lockbox")),
            names(&["vault.json", "vault.json.lock"]),
            "{mode}: something was left behind"
        );
        // Still usable once the limit is gone.
        root().get(&env, "small.example", &pass).assert_code(0);
    }
}

/// The signal is caught, not ignored, so children do not inherit an ignored SIGXFSZ:
/// the helper `import --from-helper` runs and the agent `unlock` starts both see the
/// default disposition.
#[test]
fn file_size_signal_is_default_in_children() {
    const SIGXFSZ_BIT: u64 = 1 << (25 - 1);
    let masks = |status: &str| -> (u64, u64) {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
                .unwrap_or_else(|| panic!("no {name} in {status}"))
        };
        (field("SigIgn:"), field("SigCgt:"))
    };
    let env = TestEnv::new();
    root().init(&env);
    // A helper that records its own signal dispositions and holds nothing.
    let bin_dir = env.path("home/bin");
    fs::create_dir_all(&bin_dir).unwrap();
    let helper = bin_dir.join("docker-credential-probe");
    let record = env.path("home/probe-status");
    fs::write(
        &helper,
        format!(
            "#!/bin/sh\ncat /proc/$$/status > '{}'\necho '{{}}'\n",
            record.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = env.run_env(
        &["import", "--from-helper", "probe"],
        "",
        &[("PATH", path.as_str())],
    );
    let status = fs::read_to_string(&record).unwrap_or_else(|_| panic!("helper not run: {out}"));
    let (ignored, caught) = masks(&status);
    assert_eq!(ignored & SIGXFSZ_BIT, 0, "the helper inherited SIG_IGN");
    assert_eq!(caught & SIGXFSZ_BIT, 0, "a shell does not catch it");

    // The agent, started by `unlock` (which catches SIGXFSZ itself): what it
    // inherited is the default, whatever its own main then installs.
    let pass = env.keys_dir().join("passphrase");
    env.run_env(
        &["unlock", "--passphrase-file", pass.to_str().unwrap()],
        "",
        &[],
    )
    .assert_code(0);
    let st = env.run(&["status", "--json"], "");
    let json: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let pid = json["agent"]["pid"].as_u64().expect("an agent pid");
    let (ignored, caught) = masks(&fs::read_to_string(format!("/proc/{pid}/status")).unwrap());
    env.run(&["lock", "--all"], "").assert_code(0);
    assert_eq!(ignored & SIGXFSZ_BIT, 0, "the agent inherited SIG_IGN");
    // The agent is this binary: its own main catches the signal again.
    assert_ne!(caught & SIGXFSZ_BIT, 0, "the agent catches it itself");
}

// --- 2. FIFOs and other non-regular files -----------------------------------------------

/// A FIFO at the vault path used to hang `get`, `list`, `store` and `status` forever
/// (and a hung `store` held the writer lock). Each now refuses it at once, in one line
/// that names it and says what to do.
#[test]
fn fifo_at_vault_path_is_refused_without_hanging() {
    let env = TestEnv::new();
    fs::create_dir_all(env.path("docker/lockbox")).unwrap();
    mkfifo(&env.vault_path());
    let store = store_json("h.example", "u", "fifo-secret-1234");
    for (args, stdin) in [
        (&["get"][..], "h.example"),
        (&["list"][..], ""),
        (&["store"][..], store.as_str()),
        (&["erase"][..], "h.example"),
    ] {
        let child = env.spawn(args, &[]);
        let out = env.finish(args, child, Some(stdin.as_bytes().to_vec()), HANG_LIMIT);
        let line = out.assert_error_line();
        assert!(
            line.contains("is a FIFO") && line.contains("move it away"),
            "{out}"
        );
    }
    for args in [&["status"][..], &["unlock"][..]] {
        let child = env.spawn(args, &[]);
        let out = env.finish(args, child, Some(Vec::new()), HANG_LIMIT);
        assert_eq!(out.code(), 1, "{out}");
        assert!(
            out.stderr_str().contains("is a FIFO"),
            "names the FIFO: {out}"
        );
    }
    // The refused store released the lock at once: a writer is not kept waiting.
    fs::remove_file(env.vault_path()).unwrap();
    root().init(&env);
    env.store("h.example", "u", "after-fifo-5678");
}

/// A vault with an age slot for a fresh identity (so the systemd credential applies).
fn init_with_recipient(env: &TestEnv) {
    let id = age::x25519::Identity::generate();
    env.run(&["init", "--recipient", &id.to_public().to_string()], "")
        .assert_code(0);
}

/// The systemd credential is always a regular file systemd wrote: a FIFO (or a
/// symlink) where a hand-set `CREDENTIALS_DIRECTORY` points is refused at once, by
/// `get` and by the foreground agent, which used to block in `open` forever (the
/// agent is single-threaded: every peer, and SIGTERM, waited with it).
#[test]
fn fifo_or_symlink_at_the_credential_is_refused_without_hanging() {
    let env = TestEnv::new();
    init_with_recipient(&env);
    env.store("h.example", "u", "credential-fifo-secret-1");
    let creds = env.path("creds");
    fs::create_dir(&creds).unwrap();
    let credential = creds.join("lockbox-identity");
    mkfifo(&credential);
    let dir = creds.to_str().unwrap();
    let child = env.spawn(&["get"], &[("CREDENTIALS_DIRECTORY", dir)]);
    let out = env.finish(&["get"], child, Some(b"h.example".to_vec()), HANG_LIMIT);
    assert!(out.assert_error_line().contains("is a FIFO"), "{out}");

    // The foreground agent starts, says why the credential does not serve, and obeys
    // SIGTERM.
    let agent = env
        .command(
            BIN,
            &["agent", "--foreground"],
            &[("CREDENTIALS_DIRECTORY", dir)],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let socket = env.world().agent_dir().join("agent.sock");
    let start = Instant::now();
    while !socket.exists() && start.elapsed() < HANG_LIMIT {
        thread::sleep(Duration::from_millis(20));
    }
    let served = socket.exists();
    // SIGKILL when it never served: a blocked agent ignores SIGTERM.
    let signal = if served { "-TERM" } else { "-KILL" };
    let _ = Command::new("kill")
        .args([signal, &agent.id().to_string()])
        .status();
    let out = common::output_within(agent, HANG_LIMIT);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(served, "the agent never bound its socket: {log}");
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(!socket.exists(), "SIGTERM left the socket: {log}");
    assert!(log.contains("is a FIFO"), "{log}");

    fs::remove_file(&credential).unwrap();
    let real = env.path("identity.txt");
    fs::write(&real, "# not even the right key\n").unwrap();
    std::os::unix::fs::symlink(&real, &credential).unwrap();
    let out = env.run_env(&["get"], "h.example", &[("CREDENTIALS_DIRECTORY", dir)]);
    assert!(out.assert_error_line().contains("symbolic link"), "{out}");
}

/// Every other thing that is not a regular file at the vault path is refused too.
#[test]
fn directory_or_device_at_vault_path_is_refused() {
    let env = TestEnv::new();
    fs::create_dir_all(env.vault_path()).unwrap();
    let out = env.run(&["list"], "");
    assert!(out.assert_error_line().contains("is a directory"), "{out}");
    let out = env.run_env(&["list"], "", &[("LOCKBOX_VAULT", "/dev/zero")]);
    assert!(
        out.assert_error_line().contains("is a character device"),
        "{out}"
    );
}

/// A FIFO at the lock path is refused by every writer, without waiting.
#[test]
fn fifo_at_lock_path_is_refused_without_hanging() {
    let env = TestEnv::new();
    root().init(&env);
    let before = env.vault_bytes();
    let lock = env.path("docker/lockbox/vault.json.lock");
    fs::remove_file(&lock).unwrap();
    mkfifo(&lock);
    let child = env.spawn(&["store"], &[]);
    let out = env.finish(
        &["store"],
        child,
        Some(store_json("h.example", "u", "lock-fifo-secret-1").into_bytes()),
        HANG_LIMIT,
    );
    assert!(out.assert_error_line().contains("is a FIFO"), "{out}");
    assert_eq!(env.vault_bytes(), before);
}

/// A FIFO planted at the temporary path is never opened: it is unlinked like any
/// stale temporary file, on both paths.
#[test]
fn fifo_at_temp_path_is_replaced_not_opened() {
    for mode in ["anonymous", "named"] {
        let env = TestEnv::new();
        let pass = root().init(&env);
        let tmp = env.path("docker/lockbox/vault.json.tmp");
        mkfifo(&tmp);
        root()
            .store(
                &env,
                "h.example",
                "tmp-fifo-secret-1",
                &[("LOCKBOX_DEBUG_TEMP_FILE", mode)],
            )
            .assert_quiet_ok();
        assert!(fs::symlink_metadata(&tmp).is_err(), "{mode}: left {tmp:?}");
        assert!(
            root()
                .get(&env, "h.example", &pass)
                .stdout_str()
                .contains("tmp-fifo-secret-1")
        );
    }
}

/// Identity and passphrase files stay free to be pipes: `--passphrase-file <(…)`,
/// `/dev/fd/N`, a named FIFO with a writer.
#[test]
fn passphrase_and_identity_files_may_be_pipes() {
    let env = TestEnv::new();
    let pass = env.keys_dir().join("passphrase");
    fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
    env.track_secret(PASSPHRASE);
    // `label` is what the run is logged as (a `get` may print its secret).
    let bash = |label: &str, script: &str, stdin: &str, vars: &[(&str, &str)]| {
        let mut all = vars.to_vec();
        let p = pass.to_str().unwrap().to_owned();
        all.push(("PASS_FILE", p.as_str()));
        all.push(("LOCKBOX_ARGON2_PARAMS", FAST_KDF));
        let child = env
            .command("bash", &["-c", script, BIN], &all)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        env.finish(&[label], child, Some(stdin.as_bytes().to_vec()), HANG_LIMIT)
    };
    // Process substitution: /dev/fd/63, a pipe.
    bash(
        "init",
        r#"exec "$0" init --passphrase-file <(cat "$PASS_FILE")"#,
        "",
        &[],
    )
    .assert_code(0);
    env.store("pipe.example", "u", "pipe-secret-2468");
    // LOCKBOX_PASSPHRASE_FILE=/dev/fd/3 on a pipe.
    let out = bash(
        "get",
        r#"export LOCKBOX_PASSPHRASE_FILE=/dev/fd/3; exec "$0" get 3< <(cat "$PASS_FILE")"#,
        "pipe.example",
        &[],
    );
    out.assert_quiet_ok();
    assert!(out.stdout_str().contains("pipe-secret-2468"), "{out}");

    // A named FIFO with a writer on the other end.
    let fifo = env.keys_dir().join("pass.fifo");
    mkfifo(&fifo);
    let writer = {
        let fifo = fifo.clone();
        // Not joined if the binary never opens the FIFO: the assertion below fails
        // first, and the thread dies with the test process.
        thread::spawn(move || {
            let mut f = fs::OpenOptions::new().write(true).open(fifo).unwrap();
            let _ = writeln!(f, "{PASSPHRASE}");
        })
    };
    let out = env.run_env(
        &["get"],
        "pipe.example",
        &[("LOCKBOX_PASSPHRASE_FILE", fifo.to_str().unwrap())],
    );
    out.assert_quiet_ok();
    assert!(out.stdout_str().contains("pipe-secret-2468"), "{out}");
    writer.join().unwrap();

    // An age identity through a pipe.
    if !require_tool("age-keygen", "age") {
        return;
    }
    let (identity, recipient, _) = common::age_keygen(&env, "identity");
    env.run_env(
        &["recipients", "add", &recipient],
        "",
        &[("LOCKBOX_PASSPHRASE_FILE", pass.to_str().unwrap())],
    )
    .assert_code(0);
    let id = identity.to_str().unwrap();
    let out = bash(
        "get",
        r#"export LOCKBOX_IDENTITY_FILE=/dev/fd/3; exec "$0" get 3< <(cat "$ID_FILE")"#,
        "pipe.example",
        &[("ID_FILE", id)],
    );
    out.assert_quiet_ok();
    assert!(out.stdout_str().contains("pipe-secret-2468"), "{out}");
}

// --- 6. The lock file and symlinks ------------------------------------------------------

/// A planted `vault.json.lock -> elsewhere` used to make the helper create (as root:
/// anywhere) the file it points at. The lock is opened with O_NOFOLLOW now: a clear
/// error, nothing created, nothing written.
#[test]
fn lock_file_symlink_is_not_followed() {
    let env = TestEnv::new();
    root().init(&env);
    let before = env.vault_bytes();
    let lock = env.path("docker/lockbox/vault.json.lock");
    fs::create_dir(env.path("elsewhere")).unwrap();
    let planted = env.path("elsewhere/created-by-the-helper");
    let existing = env.path("elsewhere/existing");
    fs::write(&existing, "keep me").unwrap();
    for target in [&planted, &existing] {
        fs::remove_file(&lock).unwrap();
        std::os::unix::fs::symlink(target, &lock).unwrap();
        let out = env.run(
            &["store"],
            store_json("h.example", "u", "symlink-secret-1357"),
        );
        let line = out.assert_error_line();
        assert!(line.contains("vault.json.lock is a symbolic link"), "{out}");
        assert_eq!(env.vault_bytes(), before, "the vault changed");
    }
    assert!(
        fs::symlink_metadata(&planted).is_err(),
        "the link was followed"
    );
    assert_eq!(fs::read_to_string(&existing).unwrap(), "keep me");
    // With the link gone, writers work again (the lock is recreated).
    fs::remove_file(&lock).unwrap();
    env.store("h.example", "u", "symlink-secret-1357");
}

/// The vault path itself may still be a symlink: it is resolved first, and the lock
/// is a regular file beside the file it points at.
#[test]
fn vault_symlink_is_still_followed_with_a_real_lock() {
    let env = TestEnv::new();
    root().init(&env);
    fs::create_dir(env.path("repo")).unwrap();
    fs::rename(env.vault_path(), env.path("repo/vault.json")).unwrap();
    std::os::unix::fs::symlink(env.path("repo/vault.json"), env.vault_path()).unwrap();
    env.store("h.example", "u", "followed-secret-9753");
    assert!(
        fs::symlink_metadata(env.path("repo/vault.json.lock"))
            .unwrap()
            .is_file()
    );
    assert!(
        fs::symlink_metadata(env.vault_path())
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

// --- 7. O_TMPFILE: a killed writer leaves nothing -----------------------------------------

/// Kills `rounds` writers at the pause hook (new vault complete, old one still in
/// place) and returns how many left a `vault.json.tmp`. The vault must be the old one
/// after each kill; leftovers are removed between rounds (as the next writer would).
fn kill_writers_at_pause(env: &TestEnv, runner: Runner, mode: &str, rounds: usize) -> usize {
    let dir = env.path("docker/lockbox");
    let marker = env.path("home/paused");
    let before = env.vault_bytes();
    let mut left = 0;
    for i in 0..rounds {
        let secret = format!("killed-writer-secret-{i:04}");
        env.track_secret(&secret);
        let vars = [
            ("LOCKBOX_DEBUG_TEMP_FILE", mode),
            (
                "LOCKBOX_DEBUG_PAUSE_BEFORE_RENAME",
                marker.to_str().unwrap(),
            ),
        ];
        let mut child = runner.spawn(env, &["store"], &vars);
        child
            .stdin
            .take()
            .unwrap()
            .write_all(store_json("k.example", "u", &secret).as_bytes())
            .unwrap();
        wait_for(&marker, &mut child);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        fs::remove_file(&marker).unwrap();
        let now = listing(&dir);
        if now.contains("vault.json.tmp") {
            left += 1;
            // A copy of the vault, as sensitive as it: what the O_TMPFILE path avoids.
            fs::remove_file(dir.join("vault.json.tmp")).unwrap();
        }
        assert_eq!(
            env.vault_bytes(),
            before,
            "a killed writer changed the vault"
        );
    }
    left
}

/// A writer killed after writing its new vault used to leave it in `vault.json.tmp`
/// (176 of 1 400 SIGKILL trials). With O_TMPFILE the new vault has no name until the
/// instant before the rename. Run as an unprivileged user: linking through
/// /proc/self/fd must work without CAP_DAC_READ_SEARCH (`anonymous` mode makes a
/// fallback an error, so it cannot pass by quietly using the named file).
#[test]
fn killed_writer_leaves_no_temp_file() {
    let Some(user) = Runner::unprivileged() else {
        return;
    };
    let env = TestEnv::new();
    let pass = user.init(&env);
    user.store(
        &env,
        "a.example",
        "first-secret-1111",
        &[("LOCKBOX_DEBUG_TEMP_FILE", "anonymous")],
    )
    .assert_quiet_ok();
    let rounds = 24;
    let left = kill_writers_at_pause(&env, user, "anonymous", rounds);
    assert_eq!(
        left, 0,
        "{left} of {rounds} killed writers left a temp file"
    );
    assert_eq!(
        listing(&env.path("docker/lockbox")),
        names(&["vault.json", "vault.json.lock"])
    );
    // The same kill on the named fallback leaves the copy every time: the test sees it.
    let left = kill_writers_at_pause(&env, user, "named", 4);
    assert_eq!(left, 4, "the fallback's temp file is visible at the pause");
    // Both paths still write correctly, as this user.
    for (mode, secret) in [
        ("anonymous", "second-secret-2222"),
        ("named", "third-secret-3333"),
    ] {
        user.store(
            &env,
            "b.example",
            secret,
            &[("LOCKBOX_DEBUG_TEMP_FILE", mode)],
        )
        .assert_quiet_ok();
        let got = user.get(&env, "b.example", &pass);
        assert!(got.stdout_str().contains(secret), "{mode}: {got}");
        let meta = fs::metadata(env.vault_path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{mode}");
        if let Some((uid, _)) = user.ids {
            assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), uid);
        }
    }
    assert_eq!(
        listing(&env.path("docker/lockbox")),
        names(&["vault.json", "vault.json.lock"])
    );
}

/// SIGKILL at spread-out moments of `store` (no hook): the vault always reads back,
/// and a leftover `vault.json.tmp` (possible only between link and rename) is always
/// a complete vault, never a partial one. Prints how many were left.
#[test]
fn writers_killed_at_random_moments_leave_no_partial_file() {
    let Some(user) = Runner::unprivileged() else {
        return;
    };
    let env = TestEnv::new();
    user.init(&env);
    // Enough entries that a write takes a while.
    for i in 0..20 {
        user.store(
            &env,
            &format!("r{i}.example"),
            &format!("random-kill-{i:04}-{}", "x".repeat(2000)),
            &[],
        )
        .assert_quiet_ok();
    }
    let dir = env.path("docker/lockbox");
    let rounds = 40;
    let mut left = 0;
    for i in 0..rounds {
        let secret = format!("killed-at-random-{i:04}");
        env.track_secret(&secret);
        let mut child = user.spawn(&env, &["store"], &[]);
        child
            .stdin
            .take()
            .unwrap()
            .write_all(store_json("k.example", "u", &secret).as_bytes())
            .unwrap();
        // Spread over the life of a store (a few ms), deterministic per round.
        thread::sleep(Duration::from_micros((i as u64 * 977) % 12_000));
        let _ = child.kill();
        child.wait().unwrap();
        if listing(&dir).contains("vault.json.tmp") {
            left += 1;
            let bytes = fs::read(dir.join("vault.json.tmp")).unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .expect("a leftover temp file is a complete vault");
        }
        // The vault reads back after every kill.
        let out = user.run(&env, &["list"], "", &[]);
        out.assert_quiet_ok();
        assert!(out.stdout_str().contains("r19.example"), "{out}");
    }
    eprintln!("{left} of {rounds} writers killed at random moments left a temp file");
}

// --- 5. Key rotation under a running agent ----------------------------------------------

/// `status --json` of the vault `LOCKBOX_VAULT` names (the default one when `None`).
fn status_json(env: &TestEnv, vault: Option<&Path>) -> serde_json::Value {
    let vars: Vec<(&str, &str)> = vault
        .map(|v| vec![("LOCKBOX_VAULT", v.to_str().unwrap())])
        .unwrap_or_default();
    let out = env.run_env(&["status", "--json"], "", &vars);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("status --json: {out}"))
}

/// A `get` through the agent (no key variable), which must answer `secret`.
fn agent_get(env: &TestEnv, server: &str, secret: &str, vault: Option<&Path>, when: &str) {
    let vars: Vec<(&str, &str)> = vault
        .map(|v| vec![("LOCKBOX_VAULT", v.to_str().unwrap())])
        .unwrap_or_default();
    let out = env.run_env(&["get"], server, &vars);
    assert!(
        out.status.success() && out.stdout_str().contains(secret),
        "get {when}: {out}"
    );
}

/// Runs one rotation (`args`) paused between its write and its rename, with agent
/// `get`s during the pause and right after; then checks the deadlines: the new key has
/// the old one's, and the old key is kept only briefly.
fn rotate_under_agent(env: &TestEnv, args: &[&str], server: &str, secret: &str, round: usize) {
    let marker = env.path("home/paused");
    let after = env.path("home/renamed");
    // What a `get` that read the vault just before the rename holds: the old file.
    let old_copy = env.path(&format!("home/before-rotation-{round}.json"));
    fs::write(&old_copy, env.vault_bytes()).unwrap();
    // Both temporary-file paths hand over at the same point.
    let mode = if round.is_multiple_of(2) {
        "anonymous"
    } else {
        "named"
    };
    let vars = [
        ("LOCKBOX_DEBUG_TEMP_FILE", mode),
        ("LOCKBOX_ARGON2_PARAMS", FAST_KDF),
        (
            "LOCKBOX_DEBUG_PAUSE_BEFORE_RENAME",
            marker.to_str().unwrap(),
        ),
        ("LOCKBOX_DEBUG_PAUSE_AFTER_RENAME", after.to_str().unwrap()),
    ];
    let mut child = env.spawn(args, &vars);
    wait_for(&marker, &mut child);
    // The rotated vault is written and the agent has its key; the old file is still
    // in place, with the old key.
    agent_get(env, server, secret, None, "before the rename");
    fs::remove_file(&marker).unwrap();
    // The instant the new file is in place, before the rotation does anything more
    // (where the old code had not yet handed the new key over).
    wait_for(&after, &mut child);
    agent_get(env, server, secret, None, "right after the rename");
    fs::remove_file(&after).unwrap();
    env.finish(args, child, Some(Vec::new()), HANG_LIMIT)
        .assert_code(0);
    // After the rotation: the new file, with the new key...
    agent_get(env, server, secret, None, "after the rotation");
    // ...and a get that read the old file just before the rename still opens it.
    agent_get(env, server, secret, Some(&old_copy), "of the old file");
    let new = status_json(env, None);
    let old = status_json(env, Some(&old_copy));
    assert_ne!(new["public_key"], old["public_key"], "the key was rotated");
    assert_eq!(new["unlocked"], true, "{new}");
    let left = new["agent"]["expires_in_secs"].as_u64().unwrap();
    assert!(
        left > 3000,
        "the new key keeps the old deadline (1 h): {new}"
    );
    assert_eq!(old["unlocked"], true, "{old}");
    let grace = old["agent"]["expires_in_secs"].as_u64().unwrap();
    assert!(grace <= 10, "the old key is kept 10 s at most: {old}");
}

/// `passwd` and `recipients remove` used to rename the rotated vault into place and
/// only then hand the new key to the agent, dropping the old one at once: a `get` in
/// between said "locked" (15 of 2 985 agent gets during 30 rotations), and so did one
/// that had read the old file. Now the new key is handed over under the lock before
/// the rename, and the old one expires 10 s later.
#[test]
fn rotation_hands_the_new_key_to_the_agent_before_the_rename() {
    let env = TestEnv::new();
    let mut pass = root().init(&env);
    let (server, secret) = ("rotation.example", "rotation-secret-4242");
    env.store(server, "u", secret);
    let p = pass.to_str().unwrap().to_owned();
    env.run(&["unlock", "--passphrase-file", &p, "--timeout", "1h"], "")
        .assert_code(0);
    for round in 0..3 {
        let next = env.keys_dir().join(format!("passphrase-{round}"));
        let phrase = format!("rotated passphrase number {round}");
        fs::write(&next, format!("{phrase}\n")).unwrap();
        env.track_secret(&phrase);
        let (old, new) = (pass.to_str().unwrap(), next.to_str().unwrap());
        rotate_under_agent(
            &env,
            &[
                "passwd",
                "--old-passphrase-file",
                old,
                "--new-passphrase-file",
                new,
            ],
            server,
            secret,
            round,
        );
        pass = next;
    }
    if require_tool("age-keygen", "age") {
        let p = pass.to_str().unwrap().to_owned();
        for round in 3..5 {
            let (_, recipient, _) = common::age_keygen(&env, &format!("id-{round}"));
            let label = format!("leaver-{round}");
            env.run(
                &[
                    "recipients",
                    "add",
                    &recipient,
                    "--label",
                    &label,
                    "--passphrase-file",
                    &p,
                ],
                "",
            )
            .assert_code(0);
            rotate_under_agent(
                &env,
                &["recipients", "remove", &label, "--passphrase-file", &p],
                server,
                secret,
                round,
            );
        }
    }
    env.run(&["lock", "--all"], "").assert_code(0);
}

/// Issue 20, finding 5: `import --from-helper NAME` waited on the other helper forever
/// (its output was bounded, not its time); the realistic trigger is
/// `docker-credential-pass` waiting on a pinentry with no terminal. Now each action of
/// the helper has a generous deadline (60 s), and the one error line names the helper.
#[test]
fn import_from_a_stuck_helper_waits_forever_no_more() {
    let env = TestEnv::new();
    env.init_passphrase();
    let helper = env.world().bin_dir().join("docker-credential-stuck");
    fs::write(&helper, "#!/bin/sh\nexec sleep 3600\n").unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let out = common::run_bounded(
        env.command(
            BIN,
            &["import", "--from-helper", "stuck"],
            &[("LOCKBOX_ARGON2_PARAMS", FAST_KDF)],
        ),
        common::Input::Closed,
        common::Group::NewSession,
        Duration::from_secs(150),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.contains("warning")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("docker-credential-stuck list") && lines[0].contains("60 s"),
        "{err}"
    );
}

// --- 8. Round three (issue 20) ------------------------------------------------------------

/// How long a FIFO named for a key may stay silent in the tests below (the real bound
/// is `PIPE_WAIT` in src/secret_io.rs; debug builds take this override so the table
/// does not wait a minute a row).
const TEST_PIPE_WAIT_MS: &str = "1000";

/// One row of the FIFO table: a fresh world with a vault (passphrase, an age identity
/// and a passphrase-protected SSH key as slots, one entry), a FIFO nobody writes to,
/// and the command that used to wait on it forever.
fn fifo_row(row: &str) -> Out {
    let env = TestEnv::new();
    let fifo = env.path("input.fifo");
    let f = fifo.to_str().unwrap().to_owned();
    let pass_file = env.keys_dir().join("passphrase");
    fs::write(&pass_file, format!("{PASSPHRASE}\n")).unwrap();
    let pass = pass_file.to_str().unwrap().to_owned();
    let fresh = row.starts_with("init");
    let mut ssh = String::new();
    if !fresh {
        env.init_passphrase();
        env.store("h.example", "u", "fifo-round-three-secret");
        let (_, recipient, _) = common::age_keygen(&env, "identity");
        let (ssh_key, ssh_public) =
            common::ssh_keygen(&env, "ed25519", "sshk", "fifo@test", "ssh key passphrase");
        for r in [recipient, ssh_public] {
            env.run_env(
                &["recipients", "add", &r],
                "",
                &[("LOCKBOX_PASSPHRASE_FILE", pass.as_str())],
            )
            .assert_code(0);
        }
        ssh = ssh_key.to_str().unwrap().to_owned();
    }
    let at_home_token = env.path("home/.vault-token");
    let at_config = env.world().config_path();
    let planted = match row {
        "~/.vault-token" => at_home_token,
        "import (config.json)" | "doctor (config.json)" | "init (config.json)" => at_config,
        _ => fifo.clone(),
    };
    mkfifo(&planted);
    let kubelet_request = r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"h.example/app:1"}"#;
    let bao_add = [
        "recipients",
        "add",
        "--openbao-mount",
        "transit",
        "--openbao-key",
        "k",
    ];
    let (args, vars, stdin): (Vec<&str>, Vec<(&str, &str)>, &str) = match row {
        "LOCKBOX_IDENTITY_FILE" => (
            vec!["get"],
            vec![("LOCKBOX_IDENTITY_FILE", &f)],
            "h.example",
        ),
        "LOCKBOX_PASSPHRASE_FILE" => (
            vec!["get"],
            vec![("LOCKBOX_PASSPHRASE_FILE", &f)],
            "h.example",
        ),
        "LOCKBOX_OPENBAO_TOKEN_FILE" => (
            bao_add.to_vec(),
            vec![
                ("LOCKBOX_OPENBAO_ADDR", "http://127.0.0.1:9"),
                ("LOCKBOX_OPENBAO_TOKEN_FILE", &f),
                ("LOCKBOX_PASSPHRASE_FILE", &pass),
            ],
            "",
        ),
        "LOCKBOX_OPENBAO_CACERT" => (
            bao_add.to_vec(),
            vec![
                ("LOCKBOX_OPENBAO_ADDR", "https://127.0.0.1:9"),
                ("LOCKBOX_OPENBAO_TOKEN", "hvs.fifo-test-token-0001"),
                ("LOCKBOX_OPENBAO_CACERT", &f),
                ("LOCKBOX_PASSPHRASE_FILE", &pass),
            ],
            "",
        ),
        "~/.vault-token" => (
            bao_add.to_vec(),
            vec![
                ("LOCKBOX_OPENBAO_ADDR", "http://127.0.0.1:9"),
                ("LOCKBOX_PASSPHRASE_FILE", &pass),
            ],
            "",
        ),
        "kubelet (LOCKBOX_IDENTITY_FILE)" => (
            vec!["kubelet-credential-provider"],
            vec![("LOCKBOX_IDENTITY_FILE", &f)],
            kubelet_request,
        ),
        "import (config.json)" => (vec!["import"], vec![("LOCKBOX_PASSPHRASE_FILE", &pass)], ""),
        "doctor (config.json)" => (vec!["doctor"], vec![], ""),
        "init (config.json)" => (
            vec!["init", "--passphrase-file", &pass],
            vec![("LOCKBOX_ARGON2_PARAMS", FAST_KDF)],
            "",
        ),
        "export --to-config" => (
            vec!["export", "--to-config", &f],
            vec![("LOCKBOX_PASSPHRASE_FILE", &pass)],
            "",
        ),
        "--identity-file" => (vec!["unlock", "--identity-file", &f], vec![], ""),
        "--passphrase-file" => (vec!["unlock", "--passphrase-file", &f], vec![], ""),
        "--identity-passphrase-file" => (
            vec![
                "unlock",
                "--identity-file",
                &ssh,
                "--identity-passphrase-file",
                &f,
            ],
            vec![],
            "",
        ),
        "recipients add --file" => (
            vec!["recipients", "add", "--file", &f],
            vec![("LOCKBOX_PASSPHRASE_FILE", &pass)],
            "",
        ),
        "init --recipients-file" => (
            vec!["init", "--recipients-file", &f],
            vec![("LOCKBOX_ARGON2_PARAMS", FAST_KDF)],
            "",
        ),
        "status --check" => (
            vec!["status", "--check"],
            vec![("LOCKBOX_PASSPHRASE_FILE", &f)],
            "",
        ),
        "passwd --old-passphrase-file" => (
            vec![
                "passwd",
                "--old-passphrase-file",
                &f,
                "--new-passphrase-file",
                &pass,
            ],
            vec![],
            "",
        ),
        "passwd --new-passphrase-file" => (
            vec![
                "passwd",
                "--old-passphrase-file",
                &pass,
                "--new-passphrase-file",
                &f,
            ],
            vec![],
            "",
        ),
        other => panic!("no row {other}"),
    };
    let mut vars = vars;
    vars.push(("LOCKBOX_DEBUG_PIPE_WAIT_MS", TEST_PIPE_WAIT_MS));
    let child = env.spawn(&args, &vars);
    // The harness's bound: a run that waits on the FIFO forever is killed here and
    // the row fails.
    env.finish(&args, child, Some(stdin.as_bytes().to_vec()), HANG_LIMIT)
}

/// Issue 20 finding 2, found again after the fix: doctor read `--sudoers` twice, once
/// through the one open for inputs (the secure_path check) and once with a plain read
/// (the helper-copies check, added later), which waited on a FIFO forever. Both go
/// through one bounded read now: the run ends and names the FIFO.
#[test]
fn hostile_fifo_at_doctors_sudoers_is_refused_not_waited_on() {
    let env = TestEnv::new();
    let fifo = env.path("sudoers.fifo");
    mkfifo(&fifo);
    let args = ["doctor", "--sudoers", fifo.to_str().unwrap()];
    let child = env.spawn(&args, &[]);
    let out = env.finish(&args, child, None, HANG_LIMIT);
    let said = format!("{}{}", out.stdout_str(), out.stderr_str());
    assert!(
        said.lines()
            .any(|l| l.contains("sudoers.fifo") && l.contains("is a FIFO (named pipe)")),
        "{out}"
    );
}

/// Issue 20 finding 2: a FIFO at any file input other than the vault, its lock and its
/// temporary file used to hang the command forever (16 of 18 inputs). Each is opened
/// by one function now: where only a regular file makes sense it is refused at once
/// ("… is a FIFO (named pipe), not a regular file …"); where a pipe is a documented
/// input (key and passphrase files, recipients files: `<(…)`, `/dev/fd/N`) the wait
/// for its writer is bounded and the error names the FIFO. `init` only reads
/// config.json to suggest the next step: it succeeds and suggests `import`.
#[test]
fn hostile_fifo_at_any_file_input_is_refused_not_waited_on() {
    if !require_tool("age-keygen", "age") || !require_tool("ssh-keygen", "openssh-client") {
        return;
    }
    let rows: [&'static str; 18] = [
        "LOCKBOX_IDENTITY_FILE",
        "LOCKBOX_PASSPHRASE_FILE",
        "LOCKBOX_OPENBAO_TOKEN_FILE",
        "LOCKBOX_OPENBAO_CACERT",
        "~/.vault-token",
        "kubelet (LOCKBOX_IDENTITY_FILE)",
        "import (config.json)",
        "doctor (config.json)",
        "init (config.json)",
        "export --to-config",
        "--identity-file",
        "--passphrase-file",
        "--identity-passphrase-file",
        "recipients add --file",
        "init --recipients-file",
        "status --check",
        "passwd --old-passphrase-file",
        "passwd --new-passphrase-file",
    ];
    // Every row in its own thread (each waits on nothing but its own bound), so one
    // hang cannot hide the others; each result is reported.
    let runs: Vec<_> = rows
        .iter()
        .map(|&row| (row, thread::spawn(move || fifo_row(row))))
        .collect();
    let mut failed = Vec::new();
    for (row, run) in runs {
        match run.join() {
            Err(_) => failed.push(format!("{row}: hung (killed after {HANG_LIMIT:?})")),
            Ok(out) => {
                let said = format!("{}{}", out.stdout_str(), out.stderr_str());
                let ok = if row == "init (config.json)" {
                    out.code() == 0
                } else {
                    // One line names the FIFO and says what it is (doctor and
                    // status --check print it among their report lines).
                    out.code() != 0
                        && said.lines().any(|l| {
                            l.contains("is a FIFO (named pipe)")
                                && [".fifo", "config.json", ".vault-token"]
                                    .iter()
                                    .any(|name| l.contains(name))
                        })
                };
                if ok {
                    eprintln!("{row}: ok");
                } else {
                    failed.push(format!("{row}: {out}"));
                }
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} row(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Issue 20 finding 3: `export --to-config` killed between creating its temporary file
/// and the rename left `.<name>.lockbox-<pid>.tmp` behind: every exported credential
/// in plaintext, with the target's mode (0644 here: world-readable), under a name no
/// later run cleans. strace kills the writer at its first fsync (the new file is
/// complete, not yet renamed), every time. Nothing but the target may remain.
#[test]
fn hostile_killed_export_to_config_leaves_no_plaintext_copy() {
    if !require_tool("strace", "strace") {
        return;
    }
    let env = TestEnv::new();
    let pass = env.init_passphrase();
    let secret = "export-kill-secret-0042";
    env.store("h.example", "u", secret);
    // Under keys/, which the leak scan skips: the export is meant to hold the secret.
    let dir = env.keys_dir().join("out");
    fs::create_dir(&dir).unwrap();
    let target = dir.join("out.json");
    fs::write(&target, "{\"auths\":{}}\n").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
    let t = target.to_str().unwrap();
    let p = pass.to_str().unwrap();
    let trace = [
        "-f",
        "-qq",
        "-o",
        "/dev/null",
        "-e",
        "trace=fsync,fdatasync",
        "-e",
        "inject=fsync,fdatasync:signal=KILL:when=1",
        BIN,
        "export",
        "--to-config",
        t,
    ];
    let child = env
        .command("strace", &trace, &[("LOCKBOX_PASSPHRASE_FILE", p)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace");
    let out = env.finish(
        &["strace", "export", "--to-config"],
        child,
        None,
        HANG_LIMIT,
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "strace did not kill the export: {out}"
    );
    let left: Vec<_> = listing(&dir)
        .into_iter()
        .filter(|n| n != "out.json")
        .collect();
    let modes: Vec<_> = left
        .iter()
        .map(|n| {
            let m =
                fs::metadata(dir.join(n)).map(|m| format!("{:o}", m.permissions().mode() & 0o777));
            format!("{n} ({m:?})")
        })
        .collect();
    assert!(
        left.is_empty(),
        "a killed export left plaintext copies: {modes:?}"
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), "{\"auths\":{}}\n");
    // Not killed, the export keeps the target's mode (as Docker does).
    env.run_env(
        &["export", "--to-config", t],
        "",
        &[("LOCKBOX_PASSPHRASE_FILE", p)],
    )
    .assert_code(0);
    assert!(fs::read_to_string(&target).unwrap().contains("h.example"));
    assert_eq!(
        fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(listing(&dir), names(&["out.json"]));
}

/// Issue 20 finding 6: `import` and `export --to-config` run as root rewrote a user's
/// config.json as `root:root`, and the user's docker could no longer read it. The
/// owner and group are kept now.
#[test]
fn hostile_root_import_and_export_keep_the_config_owner() {
    use std::os::unix::fs::MetadataExt;
    if !is_root() {
        assert!(!common::ci(), "CI runs this suite as root");
        eprintln!("skipped: only root can rewrite another user's config.json");
        return;
    }
    let env = TestEnv::new();
    let pass = env.init_passphrase();
    let p = pass.to_str().unwrap();
    env.store("h.example", "u", "owner-kept-secret-01");
    let (uid, gid) = (4242, 4343);
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "alice:owner-kept-secret-02",
    );
    let config = env.world().config_path();
    fs::write(
        &config,
        format!("{{\"auths\":{{\"r.example\":{{\"auth\":\"{auth}\"}}}}}}\n"),
    )
    .unwrap();
    env.track_secret("owner-kept-secret-02");
    std::os::unix::fs::chown(&config, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
    env.run_env(&["import"], "", &[("LOCKBOX_PASSPHRASE_FILE", p)])
        .assert_code(0);
    let m = fs::metadata(&config).unwrap();
    assert!(
        !fs::read_to_string(&config).unwrap().contains(&auth),
        "import moved nothing"
    );
    let import = (m.uid(), m.gid(), m.mode() & 0o777);

    let other = env.keys_dir().join("other.json");
    fs::write(&other, "{}\n").unwrap();
    std::os::unix::fs::chown(&other, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(&other, fs::Permissions::from_mode(0o640)).unwrap();
    env.run_env(
        &["export", "--to-config", other.to_str().unwrap()],
        "",
        &[("LOCKBOX_PASSPHRASE_FILE", p)],
    )
    .assert_code(0);
    let m = fs::metadata(&other).unwrap();
    assert!(fs::read_to_string(&other).unwrap().contains("h.example"));
    let export = (m.uid(), m.gid(), m.mode() & 0o777);
    assert_eq!((import, export), ((uid, gid, 0o600), (uid, gid, 0o640)));
}

/// Issue 20 finding 6, the other side: a user who is not root and can write the
/// directory of another user's config.json (here root's) used to replace it with a
/// file of their own. The rewrite would hand the file to them, so it is refused, and
/// the file stays as it was.
#[test]
fn hostile_config_of_another_user_is_refused_not_taken_over() {
    use std::os::unix::fs::MetadataExt;
    let Some(user) = Runner::unprivileged() else {
        return;
    };
    if user.ids.is_none() {
        assert!(!common::ci(), "CI runs this suite as root");
        eprintln!("skipped: needs root to make a file of another user");
        return;
    }
    let env = TestEnv::new();
    let pass = user.init(&env);
    user.store(&env, "h.example", "another-user-secret-31", &[])
        .assert_code(0);
    let dir = env.keys_dir().join("shared");
    fs::create_dir(&dir).unwrap();
    user.own(&env);
    let target = dir.join("config.json");
    fs::write(&target, "{}\n").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
    let p = pass.to_str().unwrap();
    let out = user.run(
        &env,
        &["export", "--to-config", target.to_str().unwrap()],
        "",
        &[("LOCKBOX_PASSPHRASE_FILE", p)],
    );
    assert_eq!(out.code(), 1, "{out}");
    assert!(out.stderr_str().contains("belongs to uid 0"), "{out}");
    assert_eq!(fs::read_to_string(&target).unwrap(), "{}\n");
    assert_eq!(fs::metadata(&target).unwrap().uid(), 0);
    assert_eq!(listing(&dir), names(&["config.json"]));
}

/// Issue 20 finding 7, the bound: `recipients add --file /dev/zero` read until memory
/// ran out. A recipients file is bounded like every key file (64 KiB), and a device
/// is not a file.
#[test]
fn hostile_recipients_file_is_read_with_a_bound() {
    let env = TestEnv::new();
    let pass = env.init_passphrase();
    let p = pass.to_str().unwrap();
    let big = env.path("big.keys");
    fs::write(&big, "# comment line, no key here\n".repeat(4000)).unwrap();
    for (file, says) in [
        (big.to_str().unwrap(), "larger than 65536 bytes"),
        ("/dev/zero", "is a character device"),
    ] {
        // Under a 1 GiB address-space limit, as the repro: an unbounded read dies of
        // it instead of taking the machine's memory.
        let args = ["--as=1073741824", BIN, "recipients", "add", "--file", file];
        let child = env
            .command("prlimit", &args, &[("LOCKBOX_PASSPHRASE_FILE", p)])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prlimit");
        let out = env.finish(&args, child, None, HANG_LIMIT);
        assert_eq!(out.code(), 1, "{out}");
        assert!(out.stderr_str().contains(says), "{out}");
        assert_eq!(out.stderr_str().lines().count(), 1, "{out}");
    }
    let init = [
        "init",
        "--recipients-file",
        big.to_str().unwrap(),
        "--force",
    ];
    let out = env.run_env(&init, "", &[("LOCKBOX_ARGON2_PARAMS", FAST_KDF)]);
    assert!(
        out.stderr_str().contains("larger than 65536 bytes"),
        "{out}"
    );
}

/// Issue 20 finding 7, the quoting: an unrecognised recipient (a line of a file or an
/// argument) was echoed whole, so a line of an OpenSSH private key (line 5 of an
/// ed25519 key holds the seed) ended up in the error. It is never quoted now: the
/// error says which line or argument it was.
#[test]
fn hostile_unrecognised_recipient_line_is_never_quoted() {
    if !require_tool("ssh-keygen", "openssh-client") {
        return;
    }
    let env = TestEnv::new();
    let pass = env.init_passphrase();
    let p = pass.to_str().unwrap();
    let (key, public) = common::ssh_keygen(&env, "ed25519", "sshk", "quote@test", "");
    let text = fs::read_to_string(&key).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let file = env.keys_dir().join("mixed.keys");
    for body in &lines[1..lines.len() - 1] {
        env.track_secret(body);
        fs::write(&file, format!("{public}\n{body}\n")).unwrap();
        let vars = [("LOCKBOX_PASSPHRASE_FILE", p)];
        let by_file = env.run_env(
            &["recipients", "add", "--file", file.to_str().unwrap()],
            "",
            &vars,
        );
        let by_arg = env.run_env(&["recipients", "add", body], "", &vars);
        for (out, says) in [(by_file, "line 2"), (by_arg, "not a recipient")] {
            assert_ne!(out.code(), 0, "{out}");
            let err = out.stderr_str();
            assert!(err.contains(says), "{out}");
            // Not the line, nor any 12 characters of it.
            let chars: Vec<char> = body.chars().collect();
            for w in chars.windows(12) {
                let piece: String = w.iter().collect();
                assert!(!err.contains(&piece), "quoted {piece:?}: {out}");
            }
        }
    }
    env.assert_no_secret_leaks();
}

/// The agent's pid, from `status --json`.
fn agent_pid(env: &TestEnv) -> u32 {
    let out = env.run(&["status", "--json"], "");
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("status --json: {out}"));
    json["agent"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no agent: {out}")) as u32
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {sig} {pid}");
}

/// Stops (SIGCONT, then SIGKILL) an agent a test froze, whatever happened.
struct Thaw(u32);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

/// Issue 20 finding 4, the abandoned request: with the agent stopped (SIGSTOP, a
/// cgroup freeze, a debugger), `lock --all` gave up after its 5 s and said it failed;
/// when the agent resumed it ran that lock anyway. A request whose client has hung up
/// is dropped unread now.
#[test]
fn hostile_frozen_agent_does_not_run_a_request_its_client_gave_up() {
    let env = TestEnv::new();
    let pass = env.init_passphrase();
    let secret = "frozen-agent-secret-77";
    env.store("h.example", "u", secret);
    env.run(&["unlock", "--passphrase-file", pass.to_str().unwrap()], "")
        .assert_code(0);
    let pid = agent_pid(&env);
    let _thaw = Thaw(pid);
    signal(pid, "-STOP");
    let lock = env.run(&["lock", "--all"], "");
    assert_ne!(lock.code(), 0, "lock --all reached a stopped agent: {lock}");
    signal(pid, "-CONT");
    // This get is queued behind the abandoned lock: the agent must still hold the key.
    let out = env.run(&["get"], "h.example");
    out.assert_code(0);
    assert!(
        out.stdout_str().contains(secret),
        "the abandoned lock ran: {out}"
    );
    env.run(&["lock", "--all"], "").assert_code(0);
}

/// Issue 20 finding 4, the circular advice: `get` said "run unlock again (it replaces
/// the agent)", and `unlock` failed with the same sentence. `unlock` replaces an agent
/// that does not answer now (it ends it: its pid is the socket's peer).
#[test]
fn hostile_frozen_agent_is_replaced_by_unlock() {
    let env = TestEnv::new();
    let pass = env.init_passphrase();
    let p = pass.to_str().unwrap();
    let secret = "frozen-agent-secret-88";
    env.store("h.example", "u", secret);
    env.run(&["unlock", "--passphrase-file", p], "")
        .assert_code(0);
    let pid = agent_pid(&env);
    let _thaw = Thaw(pid);
    signal(pid, "-STOP");
    let get = env.run(&["get"], "h.example");
    assert!(get.stdout_str().contains("unlock"), "{get}");
    let unlock = env.run(&["unlock", "--passphrase-file", p], "");
    unlock.assert_code(0);
    assert!(
        unlock.stderr_str().contains(&pid.to_string()),
        "names the agent it replaced: {unlock}"
    );
    let out = env.run(&["get"], "h.example");
    out.assert_code(0);
    assert!(out.stdout_str().contains(secret), "{out}");
    assert_ne!(agent_pid(&env), pid);
    env.run(&["lock", "--all"], "").assert_code(0);
}

/// Whether `pid` sleeps in a read, recv or poll (x86_64 and aarch64 numbers).
fn blocked_in_read(pid: u32) -> bool {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/syscall")) else {
        return false;
    };
    let nr = text.split_whitespace().next().unwrap_or("");
    let reads: &[&str] = if cfg!(target_arch = "aarch64") {
        &["63", "207", "73"]
    } else {
        &["0", "45", "7", "271"]
    };
    reads.contains(&nr)
}

/// Issue 20 finding 9: gets queued on the agent when it exits (`lock --all`, its
/// deadline, SIGTERM) got "did not answer as expected (read: Connection reset by
/// peer)" or "write: Broken pipe". An agent that went away is an agent that is not
/// there: they say "lockbox is locked". Deterministic: the agent is stopped, the gets
/// queue (each waits in its read), then it ends.
#[test]
fn hostile_gets_racing_the_agent_exit_are_told_locked() {
    let env = TestEnv::new();
    let pass = env.init_passphrase();
    env.store("h.example", "u", "racing-exit-secret-9");
    env.run(&["unlock", "--passphrase-file", pass.to_str().unwrap()], "")
        .assert_code(0);
    let pid = agent_pid(&env);
    let _thaw = Thaw(pid);
    signal(pid, "-STOP");
    let mut gets = Vec::new();
    for _ in 0..4 {
        let mut child = env.spawn(&["get"], &[]);
        child.stdin.take().unwrap().write_all(b"h.example").unwrap();
        gets.push(child);
    }
    for child in &mut gets {
        let deadline = Instant::now() + HANG_LIMIT;
        while !blocked_in_read(child.id()) {
            assert!(
                child.try_wait().unwrap().is_none(),
                "a get ended before it queued"
            );
            assert!(Instant::now() < deadline, "a get never queued on the agent");
            thread::sleep(Duration::from_millis(5));
        }
    }
    // The agent ends with the gets queued and unread, as when `lock --all` or its
    // deadline ends it between its last accept and closing the socket (6 in 17 624 in
    // a storm); a kill lands there every time.
    signal(pid, "-KILL");
    for child in gets {
        let out = env.finish(&["get"], child, None, HANG_LIMIT);
        assert_eq!(out.code(), 1, "{out}");
        assert!(out.stdout_str().starts_with(common::LOCKED_PREFIX), "{out}");
    }
}
