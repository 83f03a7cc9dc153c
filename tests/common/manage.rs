//! The driver of the commands-for-people suite (`tests/system/manage.rs`): an [`Env`] is one
//! test's [`World`]; every command runs with a cleared environment plus the world's
//! variables and the cheap Argon2id cost, in a new session so it has no controlling
//! terminal (a prompt fails at once instead of waiting for a person), and bounded in
//! time ([`run_bounded`]). Scripted credential helpers go in `bin/`.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use age::secrecy::ExposeSecret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{At, Group, Input, World, run_bounded, secret_needles};
pub use super::{BIN, FAST_KDF, which};

/// Bound on one command: far above any normal run, so only a hang reaches it.
const LIMIT: Duration = Duration::from_secs(120);

/// What one command did.
pub struct Run {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` → {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what, self.status, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// The exit code; death by a signal fails the test.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {self}"))
    }

    /// Exit 0, or a failure showing the whole run.
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code(), 0, "expected success: {self}");
        self
    }

    /// A non-zero exit (and no panic).
    pub fn fails(&self) -> &Self {
        assert_ne!(self.code(), 0, "expected a failure: {self}");
        assert!(!self.stderr.contains("panicked"), "panic: {self}");
        self
    }

    /// Stderr contains every one of `parts`.
    pub fn says(&self, parts: &[&str]) -> &Self {
        for p in parts {
            assert!(self.stderr.contains(p), "stderr lacks {p:?}: {self}");
        }
        self
    }

    /// Stdout contains every one of `parts`.
    pub fn prints(&self, parts: &[&str]) -> &Self {
        for p in parts {
            assert!(self.stdout.contains(p), "stdout lacks {p:?}: {self}");
        }
        self
    }
}

/// The harness's missing-tool policy for every `(tool, Debian package)`.
pub fn need(tools: &[(&str, &str)]) -> bool {
    super::require_tools(tools)
}

/// Runs `cmd` in a new session with `stdin` (empty: /dev/null), capturing its output.
/// Past [`LIMIT`] the whole process group is killed and the test fails.
pub fn run(cmd: Command, stdin: &[u8]) -> Run {
    let input = if stdin.is_empty() {
        Input::Closed
    } else {
        Input::Bytes(stdin)
    };
    let f = run_bounded(cmd, input, Group::NewSession, LIMIT);
    Run {
        what: f.what,
        status: f.status,
        stdout: String::from_utf8_lossy(&f.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&f.stderr).into_owned(),
    }
}

/// An age identity in `keys/`.
pub struct Identity {
    /// The identity file (`AGE-SECRET-KEY-1…`).
    pub file: PathBuf,
    /// Its text.
    pub secret: String,
    /// Its recipient, `age1…`.
    pub recipient: String,
}

/// One test's private world.
pub struct Env {
    world: World,
}

impl Env {
    pub fn new() -> Self {
        Env {
            world: World::new(),
        }
    }

    /// A new world with a vault whose one slot is the age identity `owner`.
    pub fn with_vault() -> (Self, Identity) {
        let env = Env::new();
        let owner = env.identity("owner");
        env.lockbox(&["init", "--recipient", &owner.recipient]).ok();
        (env, owner)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.world.path(rel)
    }

    /// The world this test runs in.
    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn docker_dir(&self) -> PathBuf {
        self.path("docker")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("docker/config.json")
    }

    pub fn vault_path(&self) -> PathBuf {
        self.path("docker/lockbox/vault.json")
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.path("bin")
    }

    /// `program` with a cleared environment: the world's variables (PATH with bin/
    /// first, HOME, DOCKER_CONFIG, XDG_RUNTIME_DIR) and the cheap Argon2id cost, in
    /// HOME.
    pub fn command(&self, program: &str) -> Command {
        let mut c = self.world.command(program);
        c.env("LOCKBOX_ARGON2_PARAMS", FAST_KDF)
            .current_dir(self.path("home"));
        c
    }

    /// The binary under test with `args`, no stdin.
    pub fn lockbox(&self, args: &[&str]) -> Run {
        self.lockbox_with(args, &[], b"")
    }

    /// The binary under test with `args`, extra variables and stdin.
    pub fn lockbox_with(&self, args: &[&str], vars: &[(&str, &Path)], stdin: &[u8]) -> Run {
        let mut c = self.command(BIN);
        c.args(args);
        for (k, v) in vars {
            c.env(k, v);
        }
        run(c, stdin)
    }

    /// Any program with `args` and extra variables.
    pub fn tool(&self, program: &str, args: &[&str], vars: &[(&str, &Path)], stdin: &[u8]) -> Run {
        let mut c = self.command(program);
        c.args(args);
        for (k, v) in vars {
            c.env(k, v);
        }
        run(c, stdin)
    }

    /// A new age identity, written to `keys/NAME.txt`.
    pub fn identity(&self, name: &str) -> Identity {
        let id = age::x25519::Identity::generate();
        let secret = id.to_string().expose_secret().to_owned();
        let file = self.path(&format!("keys/{name}.txt"));
        fs::write(&file, format!("{secret}\n")).at("write", &file);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).at("chmod", &file);
        Identity {
            file,
            secret,
            recipient: id.to_public().to_string(),
        }
    }

    /// A file in `keys/` holding `text`.
    pub fn key_file(&self, name: &str, text: &str) -> PathBuf {
        let file = self.path(&format!("keys/{name}"));
        fs::write(&file, text).at("write", &file);
        file
    }

    /// An unencrypted SSH key pair made by ssh-keygen: (private key file, public line).
    pub fn ssh_key(&self, name: &str, kind: &str, comment: &str) -> (PathBuf, String) {
        let file = self.path(&format!("keys/{name}"));
        let mut args = vec!["-q", "-t", kind, "-N", "", "-C", comment, "-f"];
        let f = file.to_str().expect("utf-8 path").to_owned();
        args.push(&f);
        if kind == "rsa" {
            args.extend(["-b", "2048"]);
        }
        self.tool("ssh-keygen", &args, &[], b"").ok();
        let public = fs::read_to_string(format!("{f}.pub")).at("read", format!("{f}.pub"));
        (file, public.trim().to_owned())
    }

    /// `store` through the protocol.
    pub fn store(&self, server: &str, username: &str, secret: &str) {
        let input =
            serde_json::json!({"ServerURL": server, "Username": username, "Secret": secret});
        self.lockbox_with(&["store"], &[], input.to_string().as_bytes())
            .ok();
    }

    /// `get` with `LOCKBOX_IDENTITY_FILE=file`: the username and secret, or the error line.
    pub fn get_with(&self, server: &str, file: &Path) -> Result<(String, String), String> {
        self.get_env(server, "LOCKBOX_IDENTITY_FILE", file)
    }

    /// `get` with one key variable set to `value`.
    pub fn get_env(
        &self,
        server: &str,
        var: &str,
        value: &Path,
    ) -> Result<(String, String), String> {
        let r = self.lockbox_with(&["get"], &[(var, value)], server.as_bytes());
        if r.code() != 0 {
            return Err(r.stdout.trim().to_owned());
        }
        let v: serde_json::Value =
            serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
        Ok((
            v["Username"].as_str().unwrap().to_owned(),
            v["Secret"].as_str().unwrap().to_owned(),
        ))
    }

    /// `list` through the protocol.
    pub fn list(&self) -> BTreeMap<String, String> {
        let r = self.lockbox(&["list"]);
        r.ok();
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"))
    }

    pub fn write_config(&self, text: &str) {
        fs::write(self.config_path(), text).at("write", self.config_path());
        fs::set_permissions(self.config_path(), fs::Permissions::from_mode(0o600))
            .at("chmod", self.config_path());
    }

    pub fn config_text(&self) -> String {
        fs::read_to_string(self.config_path()).at("read", self.config_path())
    }

    pub fn config_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.config_text()).expect("config.json is JSON")
    }

    pub fn vault_bytes(&self) -> Vec<u8> {
        fs::read(self.vault_path()).at("read the vault", self.vault_path())
    }

    pub fn vault_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.vault_bytes()).expect("the vault is JSON")
    }

    /// The vault's public key.
    pub fn public_key(&self) -> String {
        self.vault_json()["public_key"].as_str().unwrap().to_owned()
    }

    /// Every file and directory under `rel`, as paths relative to it.
    pub fn tree(&self, rel: &str) -> BTreeSet<String> {
        fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
            for e in fs::read_dir(dir).at("list", dir) {
                let p = e.unwrap().path();
                out.insert(p.strip_prefix(base).unwrap().display().to_string());
                if p.is_dir() && !p.is_symlink() {
                    walk(base, &p, out);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.path(rel), &self.path(rel), &mut out);
        out
    }

    /// What a Docker config directory holds after `import`: config.json and the vault
    /// with its lock file, and no temporary file of any kind.
    pub fn assert_docker_dir_is(&self, expected: &[&str]) {
        let mut want: BTreeSet<String> = [
            "config.json",
            "lockbox",
            "lockbox/vault.json",
            "lockbox/vault.json.lock",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        want.extend(expected.iter().map(|s| s.to_string()));
        assert_eq!(
            self.tree("docker"),
            want,
            "leftover or missing files in DOCKER_CONFIG"
        );
    }

    /// `grep -r` for every secret, in every form it could take in a file (raw, JSON
    /// escaped as Go and serde write it, and the base64 of `user:secret` and of the
    /// secret alone), over every directory the binary or a client could write: the
    /// Docker config directory, HOME, XDG_RUNTIME_DIR and bin/.
    pub fn assert_no_secret(&self, creds: &[(&str, &str)]) {
        let needles: Vec<(String, String)> = creds
            .iter()
            .flat_map(|(user, secret)| secret_needles(Some(user), secret))
            .collect();
        let mut files = Vec::new();
        for dir in ["docker", "home", "run", "bin"] {
            for rel in self.tree(dir) {
                let p = self.path(dir).join(&rel);
                // bin/docker-credential-lockbox links to the binary, not written here.
                if !p.is_dir() && !p.is_symlink() {
                    files.push(p);
                }
            }
        }
        if let Some((path, what)) = super::find_secret(&files, &needles) {
            panic!("{what} is in {}", path.display());
        }
    }

    /// A scripted credential helper `docker-credential-NAME` in bin/: `list` answers
    /// every server of `entries` (with its username, or `ghost` for `None`), `get`
    /// answers the credentials of the `Some` ones and "credentials not found in native
    /// keychain" (exit 1) for the rest. Every call's action is appended to the
    /// returned log file.
    pub fn fake_helper(&self, name: &str, entries: &[(&str, Option<(&str, &str)>)]) -> PathBuf {
        let dir = self.path(&format!("helper-{name}"));
        fs::create_dir(&dir).at("create", &dir);
        let mut list = serde_json::Map::new();
        let mut cases = String::new();
        for (i, (server, creds)) in entries.iter().enumerate() {
            assert!(!server.contains('\''), "the script quotes servers with ''");
            let user = creds.map_or("ghost", |(u, _)| u);
            list.insert(server.to_string(), user.into());
            if let Some((u, s)) = creds {
                let answer = serde_json::json!({"ServerURL": server, "Username": u, "Secret": s});
                fs::write(dir.join(format!("{i}.json")), answer.to_string())
                    .at("write", dir.join(format!("{i}.json")));
                cases.push_str(&format!("    '{server}') cat \"$dir/{i}.json\" ;;\n"));
            }
        }
        fs::write(
            dir.join("list.json"),
            serde_json::Value::Object(list).to_string(),
        )
        .at("write", dir.join("list.json"));
        let script = format!(
            "#!/bin/sh\n\
             # A scripted credential helper: list and get answered from files.\n\
             dir='{dir}'\n\
             echo \"$1\" >> \"$dir/calls\"\n\
             case \"$1\" in\n\
             list) cat \"$dir/list.json\" ;;\n\
             get)\n\
             \x20   server=$(cat)\n\
             \x20   case \"$server\" in\n\
             {cases}\
             \x20   *) echo 'credentials not found in native keychain'; exit 1 ;;\n\
             \x20   esac ;;\n\
             *) echo \"unsupported action: $1\"; exit 1 ;;\n\
             esac\n",
            dir = dir.display()
        );
        let file = self.bin_dir().join(format!("docker-credential-{name}"));
        fs::write(&file, script).at("write", &file);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).at("chmod", &file);
        dir.join("calls")
    }
}

/// Standard base64 with padding.
pub fn b64(text: &str) -> String {
    STANDARD.encode(text)
}

/// Docker's `auth` value for `user:secret`.
pub fn auth(user: &str, secret: &str) -> String {
    STANDARD.encode(format!("{user}:{secret}"))
}

/// Decodes an `auth` value into (user, secret), split at the first colon.
pub fn decode_auth(auth: &str) -> (String, String) {
    let raw = String::from_utf8(STANDARD.decode(auth).expect("base64")).expect("utf-8");
    let (u, s) = raw.split_once(':').expect("user:secret");
    (u.to_owned(), s.to_owned())
}

/// The inode of a file: unchanged means it was not rewritten.
pub fn inode(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).at("stat", p).ino()
}
