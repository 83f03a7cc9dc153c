//! The protocol suite's driver (`tests/hermetic/cli.rs`): a [`TestEnv`] runs the binary in a
//! [`World`] with a cleared environment, bounds every run in time, checks every run
//! for a panic, and when dropped checks that no secret it was told about ever reached
//! stderr, stdout (other than a successful `get`'s answer) or any file the binary
//! wrote, in any of the forms of [`secret_needles`].
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use super::{At, BIN, FAST_KDF, MIN_TRACKED, World, secret_needles, store_json, wait_bounded};

/// The protocol's fixed lines, with their newline, as clients read them.
pub const NOT_FOUND: &str = "credentials not found in native keychain\n";
pub const MISSING_URL: &str = "no credentials server URL\n";
pub const MISSING_USER: &str = "no credentials username\n";
pub const USAGE: &str = "Usage: docker-credential-lockbox <store|get|erase|list|version>\n";
/// How the locked error starts (DESIGN.md "Where the key comes from").
pub const LOCKED_PREFIX: &str = "lockbox is locked";
/// The passphrase `init_passphrase` uses.
pub const PASSPHRASE: &str = "correct horse battery staple 7f3a";
/// Bound on one run: far above any normal run, so only a hang reaches it.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// What one run produced.
#[derive(Clone)]
pub struct Out {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = |b: &[u8]| {
            let s = String::from_utf8_lossy(b);
            if s.len() > 2000 {
                let head: String = s.chars().take(2000).collect();
                format!("{head}… ({} bytes)", b.len())
            } else {
                s.into_owned()
            }
        };
        write!(
            f,
            "{:?} → {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args,
            self.status,
            cut(&self.stdout),
            cut(&self.stderr)
        )
    }
}

impl Out {
    /// The exit code; a death by signal fails the test.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {self}"))
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Exit `code`, or a failure that shows the whole run.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), code, "unexpected exit status: {self}");
        self
    }

    /// Exit 0 and nothing on stderr: the normal protocol paths.
    pub fn assert_quiet_ok(&self) -> &Self {
        self.assert_code(0);
        assert!(self.stderr.is_empty(), "stderr must be empty: {self}");
        self
    }

    /// Exactly `expected` on stdout.
    pub fn assert_stdout(&self, expected: &str) -> &Self {
        assert_eq!(
            self.stdout_str(),
            expected,
            "stdout differs (bytes: {:?}): {self}",
            self.stdout
        );
        self
    }

    /// Stdout is exactly one non-empty line ending in `\n`; returns it without the `\n`.
    pub fn one_line(&self) -> String {
        let s = self.stdout_str();
        let body = s
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("stdout must end with one newline: {self}"));
        assert!(!body.is_empty(), "stdout line is empty: {self}");
        assert!(
            !body.contains('\n') && !body.contains('\r'),
            "stdout must be one line: {self}"
        );
        body.to_owned()
    }

    /// Exit 1 with one clear line on stdout that is neither the not-found text nor
    /// the locked text: the shape of every protocol failure that is not "no entry".
    pub fn assert_error_line(&self) -> String {
        self.assert_code(1);
        let line = self.one_line();
        assert_ne!(
            format!("{line}\n"),
            NOT_FOUND,
            "must not look like no credentials: {self}"
        );
        line
    }
}

/// One test's private world.
pub struct TestEnv {
    world: World,
    log: Mutex<Vec<Out>>,
    secrets: Mutex<Vec<String>>,
    pass_file: Mutex<Option<PathBuf>>,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> Self {
        TestEnv {
            world: World::new(),
            log: Mutex::new(Vec::new()),
            secrets: Mutex::new(Vec::new()),
            pass_file: Mutex::new(None),
        }
    }

    /// A path inside the test's directory.
    pub fn path(&self, p: &str) -> PathBuf {
        self.world.path(p)
    }

    /// The world this test runs in.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// Where keys and passphrase files go (not scanned for leaks: they hold secrets).
    pub fn keys_dir(&self) -> PathBuf {
        self.world.keys_dir()
    }

    /// The default vault: `$DOCKER_CONFIG/lockbox/vault.json`.
    pub fn vault_path(&self) -> PathBuf {
        self.world.vault_path()
    }

    pub fn vault_bytes(&self) -> Vec<u8> {
        fs::read(self.vault_path()).at("read the vault", self.vault_path())
    }

    pub fn write_vault(&self, bytes: &[u8]) {
        fs::write(self.vault_path(), bytes).at("write", self.vault_path());
    }

    /// The vault file parsed as JSON.
    pub fn vault_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.vault_bytes()).expect("the vault is JSON")
    }

    /// Remembers `secret`: it must never show up where secrets must not be.
    pub fn track_secret(&self, secret: &str) {
        if secret.len() >= MIN_TRACKED {
            self.secrets.lock().unwrap().push(secret.to_owned());
        }
    }

    /// A command for `program` with a cleared environment.
    pub fn command(&self, program: &str, args: &[&str], vars: &[(&str, &str)]) -> Command {
        let mut c = self.world.command(program);
        c.args(args);
        for (k, v) in vars {
            c.env(k, v);
        }
        c
    }

    /// Starts the binary with piped stdio; the caller writes stdin (or keeps it open).
    pub fn spawn(&self, args: &[&str], vars: &[(&str, &str)]) -> Child {
        self.command(BIN, args, vars)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .at("run", BIN)
    }

    /// Runs the binary with `stdin` and no extra variables.
    pub fn run(&self, args: &[&str], stdin: impl AsRef<[u8]>) -> Out {
        self.run_env(args, stdin, &[])
    }

    /// Runs the binary with `stdin` and extra environment variables.
    pub fn run_env(&self, args: &[&str], stdin: impl AsRef<[u8]>, vars: &[(&str, &str)]) -> Out {
        let child = self.spawn(args, vars);
        self.finish(args, child, Some(stdin.as_ref().to_vec()), RUN_LIMIT)
    }

    /// Runs another program (a shell wrapper) in the same environment.
    pub fn run_program(&self, program: &str, args: &[&str], vars: &[(&str, &str)]) -> Out {
        let child = self
            .command(program, args, vars)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .at("run", program);
        self.finish(args, child, Some(Vec::new()), RUN_LIMIT)
    }

    /// Feeds `stdin` (if given, then closes it), collects the output while waiting at
    /// most `limit`, logs the run and checks it did not panic. With `stdin` `None`
    /// the child's stdin stays as it is (open, if the caller kept the pipe).
    pub fn finish(
        &self,
        args: &[&str],
        mut child: Child,
        stdin: Option<Vec<u8>>,
        limit: Duration,
    ) -> Out {
        let writer = stdin.map(|data| {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            // The child may exit without reading everything (oversized input): a
            // broken pipe here is expected, not an error.
            thread::spawn(move || {
                let _ = pipe.write_all(&data);
            })
        });
        let collect = |mut r: Box<dyn Read + Send>| {
            thread::spawn(move || {
                let mut b = Vec::new();
                let _ = r.read_to_end(&mut b);
                b
            })
        };
        let out_reader = collect(Box::new(child.stdout.take().expect("stdout piped")));
        let err_reader = collect(Box::new(child.stderr.take().expect("stderr piped")));
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let Some(status) = wait_bounded(&mut child, limit) else {
            panic!("{args:?} did not finish within {limit:?}; it was killed");
        };
        drop(child);
        if let Some(w) = writer {
            let _ = w.join();
        }
        let out = Out {
            args,
            status,
            stdout: out_reader.join().unwrap(),
            stderr: err_reader.join().unwrap(),
        };
        let err = out.stderr_str();
        assert!(
            !err.contains("panicked") && out.status.code() != Some(101),
            "the binary panicked: {out}"
        );
        self.log.lock().unwrap().push(out.clone());
        out
    }

    /// `init` with a passphrase slot (cheap Argon2id) and nothing else; later
    /// [`TestEnv::get`] opens the vault with `LOCKBOX_PASSPHRASE_FILE`.
    pub fn init_passphrase(&self) -> PathBuf {
        let file = self.keys_dir().join("passphrase");
        fs::write(&file, format!("{PASSPHRASE}\n")).at("write", &file);
        self.track_secret(PASSPHRASE);
        let out = self.run_env(
            &["init", "--passphrase-file", file.to_str().unwrap()],
            "",
            &[("LOCKBOX_ARGON2_PARAMS", FAST_KDF)],
        );
        out.assert_code(0);
        *self.pass_file.lock().unwrap() = Some(file.clone());
        file
    }

    /// `store` that must succeed quietly; the secret is tracked.
    pub fn store(&self, server: &str, username: &str, secret: &str) {
        self.track_secret(secret);
        self.run(&["store"], store_json(server, username, secret))
            .assert_quiet_ok()
            .assert_stdout("");
    }

    /// `get` with the passphrase file of [`TestEnv::init_passphrase`].
    pub fn get(&self, server: &str) -> Out {
        let file = self
            .pass_file
            .lock()
            .unwrap()
            .clone()
            .expect("init_passphrase first");
        self.run_env(
            &["get"],
            server,
            &[("LOCKBOX_PASSPHRASE_FILE", file.to_str().unwrap())],
        )
    }

    /// `list`, which must succeed, as a JSON object.
    pub fn list(&self) -> serde_json::Map<String, serde_json::Value> {
        let out = self.run(&["list"], "");
        out.assert_quiet_ok();
        match serde_json::from_slice(&out.stdout) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => panic!("list is not a JSON object: {out}"),
        }
    }

    /// Checks that no tracked secret appears on any run's stderr, on any run's stdout
    /// except a successful `get`'s answer, or in any file under the test directory
    /// outside `keys/` — plaintext or base64 at any alignment.
    pub fn assert_no_secret_leaks(&self) {
        let secrets = self.secrets.lock().unwrap();
        let log = self.log.lock().unwrap();
        let files = self.world.files();
        for secret in secrets.iter() {
            for out in log.iter() {
                assert!(
                    !String::from_utf8_lossy(&out.stderr).contains(secret.as_str()),
                    "a secret reached stderr of {:?}",
                    out.args
                );
                // Runs whose job is to print credentials: a successful `get`,
                // `kubelet-credential-provider` or `export`.
                let get_answer = out.status.success()
                    && (out.args == ["get"]
                        || matches!(
                            out.args.first().map(String::as_str),
                            Some("kubelet-credential-provider" | "export")
                        ));
                assert!(
                    get_answer || !String::from_utf8_lossy(&out.stdout).contains(secret.as_str()),
                    "a secret reached stdout of {:?}",
                    out.args
                );
            }
            if let Some((path, what)) = super::find_secret(&files, &secret_needles(None, secret)) {
                panic!("{} holds {what}", path.display());
            }
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // After a failure the first message is the one that matters.
        if !thread::panicking() {
            self.assert_no_secret_leaks();
        }
    }
}

/// A fresh age identity made by `age-keygen`: (identity file, recipient, key line).
pub fn age_keygen(env: &TestEnv, name: &str) -> (PathBuf, String, String) {
    let file = env.keys_dir().join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&file)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .at("run", "age-keygen");
    assert!(out.status.success(), "age-keygen failed: {out:?}");
    let text = fs::read_to_string(&file).at("read", &file);
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen writes a public key comment")
        .trim()
        .to_owned();
    let key = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("an AGE-SECRET-KEY line")
        .to_owned();
    env.track_secret(&key);
    (file, recipient, key)
}

/// A fresh SSH key made by `ssh-keygen` (`kind` is `ed25519` or `rsa`), protected by
/// `passphrase` when it is not empty: (private key file, public key line).
pub fn ssh_keygen(
    env: &TestEnv,
    kind: &str,
    name: &str,
    comment: &str,
    passphrase: &str,
) -> (PathBuf, String) {
    let file = env.keys_dir().join(name);
    let mut c = Command::new("ssh-keygen");
    c.args(["-q", "-t", kind, "-N", passphrase, "-C", comment, "-f"])
        .arg(&file);
    if kind == "rsa" {
        c.args(["-b", "2048"]);
    }
    let out = c
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path("home"))
        .stdin(Stdio::null())
        .output()
        .at("run", "ssh-keygen");
    assert!(out.status.success(), "ssh-keygen failed: {out:?}");
    // A line from the middle of the private key: it must never be printed anywhere.
    let private = fs::read_to_string(&file).at("read", &file);
    if let Some(line) = private.lines().nth(2) {
        env.track_secret(line);
    }
    let mut public_file = file.clone().into_os_string();
    public_file.push(".pub");
    let public = fs::read_to_string(&public_file)
        .at("read", &public_file)
        .trim()
        .to_owned();
    (file, public)
}
