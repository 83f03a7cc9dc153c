//! Hostile files and faults (issue 15): regression tests on the real binary, each named
//! after the bug it pins — a file-size limit, FIFOs where files should be, a symlinked
//! lock file, writers killed mid-write, a key rotation under a running agent.
//!
//! The writer tests use two debug-build hooks of `src/file.rs`:
//! `LOCKBOX_DEBUG_TEMP_FILE=named|anonymous` (force the named-file fallback, or forbid
//! it) and `LOCKBOX_DEBUG_PAUSE_BEFORE_RENAME=FILE` (a complete new vault waits for
//! FILE to disappear before it replaces the old one), so a kill or a `get` lands in
//! the window that matters every time instead of by chance.
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
