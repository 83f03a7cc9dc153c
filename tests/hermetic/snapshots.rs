//! Snapshot tests of what a person sees: `--help`, every subcommand's help, and the
//! errors of the commands for people, each with its exact stdout, stderr and exit code
//! (`tests/snapshots/<case>.txt`).
//!
//! Every run is in its own [`World`] with a cleared environment, `COLUMNS=100` (help
//! is wrapped to the terminal width), and a new session, so there is no controlling
//! terminal and a prompt fails at once instead of waiting. The world's temporary
//! directory is redacted as `[ROOT]`, and the random keys of a vault as
//! `[PUBLIC_KEY]` / `[RECIPIENT]`, so the files do not flake.
//!
//! To update after a deliberate change: `SNAPSHOTS=overwrite cargo nextest run --test
//! hermetic snapshots::`, then read the diff.
use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use age::secrecy::ExposeSecret;
use common::{BIN, FAST_KDF, Group, Input, RUN_LIMIT, World, run_bounded};
use snapbox::{Assert, Data, Redactions};

/// One world with optional vault and keys, and the values to redact.
struct Case {
    world: World,
    redactions: Vec<(&'static str, String)>,
}

impl Case {
    fn new() -> Self {
        let world = World::new();
        let root = world.root().to_str().unwrap().to_owned();
        Case {
            world,
            redactions: vec![("[ROOT]", root)],
        }
    }

    fn path(&self, rel: &str) -> String {
        self.world.path(rel).to_str().unwrap().to_owned()
    }

    /// Writes a key file under `keys/` and returns its path.
    fn key_file(&self, name: &str, text: &str) -> String {
        let p = self.world.keys_dir().join(name);
        fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    }

    /// A fresh age identity's (secret, public) texts.
    fn identity() -> (String, String) {
        let id = age::x25519::Identity::generate();
        (
            id.to_string().expose_secret().to_owned(),
            id.to_public().to_string(),
        )
    }

    /// `init` with the given slot options; the vault's keys are redacted from then on.
    fn init(&mut self, args: &[&str]) {
        let mut all = vec!["init"];
        all.extend_from_slice(args);
        let out = self.run(&all, &[("LOCKBOX_ARGON2_PARAMS", FAST_KDF)]);
        assert!(out.status.success(), "init failed: {}", out.what);
        let vault: serde_json::Value =
            serde_json::from_slice(&fs::read(self.world.vault_path()).unwrap()).unwrap();
        self.redactions.push((
            "[PUBLIC_KEY]",
            vault["public_key"].as_str().unwrap().to_owned(),
        ));
    }

    /// A vault with a passphrase slot; returns the passphrase file.
    fn with_passphrase(&mut self) -> String {
        let pass = self.key_file("pass", "snapshot passphrase\n");
        self.init(&["--passphrase-file", &pass]);
        pass
    }

    /// A vault with one age slot; returns the identity file and the recipient.
    fn with_identity(&mut self, also_passphrase: bool) -> (String, String) {
        let (secret, public) = Self::identity();
        let id = self.key_file("id", &secret);
        let recipients = self.key_file("recipients", &format!("{public} \n"));
        self.redactions.push(("[RECIPIENT]", public.clone()));
        let pass = self.key_file("pass", "snapshot passphrase\n");
        let mut args = vec!["--recipients-file", recipients.as_str()];
        if also_passphrase {
            args.extend(["--passphrase-file", pass.as_str()]);
        }
        self.init(&args);
        (id, public)
    }

    /// A fake `docker-credential-NAME` on the world's PATH.
    fn helper(&self, name: &str, script: &str) {
        let p = self
            .world
            .bin_dir()
            .join(format!("docker-credential-{name}"));
        fs::write(&p, script).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn run(&self, args: &[&str], vars: &[(&str, &str)]) -> common::Finished {
        let mut c = self.world.command(BIN);
        c.args(args).env("COLUMNS", "100");
        for (k, v) in vars {
            c.env(k, v);
        }
        run_bounded(c, Input::Closed, Group::NewSession, RUN_LIMIT)
    }

    /// Runs `args` and compares the whole result with `tests/snapshots/<name>.txt`.
    fn snap(&self, name: &str, args: &[&str], vars: &[(&str, &str)]) {
        let out = self.run(args, vars);
        let code = out
            .status
            .code()
            .unwrap_or_else(|| panic!("{name}: killed by a signal"));
        let mut shown = String::from("$ docker-credential-lockbox");
        for a in args {
            shown.push(' ');
            shown.push_str(a);
        }
        let actual = format!(
            "{shown}\nexit: {code}\n--- stdout\n{}--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!actual.contains("panicked"), "{actual}");
        let mut redactions = Redactions::new();
        for (placeholder, value) in &self.redactions {
            redactions.insert(placeholder, value.clone()).unwrap();
        }
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots")
            .join(format!("{name}.txt"));
        Assert::new()
            .action_env("SNAPSHOTS")
            .redact_with(redactions)
            .eq(actual, Data::read_from(&file, None));
    }
}

/// Every visible subcommand path, from the same clap definition the binary parses with,
/// so a new subcommand without a snapshot fails here.
fn subcommand_paths(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_owned());
        out.push(path.clone());
        subcommand_paths(sub, &path, out);
    }
}

#[test]
fn help_of_every_command() {
    use clap::CommandFactory;
    let c = Case::new();
    c.snap("help", &["--help"], &[]);
    let mut paths = Vec::new();
    subcommand_paths(&lockbox::cli::Opts::command(), &[], &mut paths);
    assert!(paths.len() >= 12, "{paths:?}");
    for path in paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        c.snap(&format!("help-{}", path.join("-")), &args, &[]);
    }
}

/// A private key that must never be echoed (never used to open anything).
const PRIVATE_KEY: &str =
    "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSHL4MPJ";

#[test]
fn command_line_mistakes() {
    let c = Case::new();
    c.snap("no-arguments", &[], &[]);
    c.snap("unknown-action", &["frobnicate"], &[]);
    c.snap("unknown-flag", &["init", "--bogus"], &[]);
    c.snap("private-key-as-argument", &["init", PRIVATE_KEY], &[]);
    c.snap("completions-unknown-shell", &["completions", "tcsh"], &[]);
    c.snap("init-needs-a-slot", &["init"], &[]);
    c.snap("unlock-bad-timeout", &["unlock", "--timeout", "0s"], &[]);
    // Issue 24, item 9: a mistyped command gets the nearest one, as a flag does.
    c.snap("typo-unlok", &["unlok"], &[]);
    c.snap("typo-stauts", &["stauts"], &[]);
    c.snap("typo-doctr", &["doctr"], &[]);
    c.snap("typo-recipient-list", &["recipient", "list"], &[]);
}

#[test]
fn errors_without_a_vault() {
    let c = Case::new();
    c.snap("status-no-vault", &["status"], &[]);
    c.snap("lock-no-vault", &["lock"], &[]);
    c.snap("export-no-vault", &["export"], &[]);
    c.snap(
        "init-bad-recipient",
        &["init", "--recipient", "age1notarecipient"],
        &[],
    );
    c.snap(
        "init-private-key-as-recipient",
        &["init", "--recipient", PRIVATE_KEY],
        &[],
    );
    c.snap(
        "init-passphrase-no-terminal",
        &["init", "--passphrase"],
        &[],
    );
    let absent = c.path("keys/absent");
    c.snap(
        "init-missing-passphrase-file",
        &["init", "--passphrase-file", &absent],
        &[],
    );
    let pass = c.key_file("pass", "pw\n");
    c.snap(
        "init-bad-argon2-params",
        &["init", "--passphrase-file", &pass],
        &[("LOCKBOX_ARGON2_PARAMS", "64,1")],
    );
    let list = c.key_file("list", "# fleet\ngarbage here\n");
    c.snap(
        "init-bad-recipients-file-line",
        &["init", "--recipients-file", &list],
        &[],
    );
    // Neither HOME nor DOCKER_CONFIG nor LOCKBOX_VAULT.
    c.snap(
        "status-no-home",
        &["status"],
        &[("HOME", ""), ("DOCKER_CONFIG", "")],
    );
}

#[test]
fn errors_with_a_passphrase_vault() {
    let mut c = Case::new();
    let pass = c.with_passphrase();
    let wrong = c.key_file("wrong", "not the passphrase\n");
    let (other, _) = Case::identity();
    let other = c.key_file("other-id", &other);
    c.snap(
        "init-vault-exists",
        &["init", "--passphrase-file", &pass],
        &[],
    );
    // Issue 24, item 9: said before any question, so also without a terminal.
    c.snap(
        "init-passphrase-vault-exists",
        &["init", "--passphrase"],
        &[],
    );
    c.snap("status-locked", &["status"], &[]);
    c.snap(
        "status-check-wrong-passphrase",
        &["status", "--check"],
        &[("LOCKBOX_PASSPHRASE_FILE", &wrong)],
    );
    c.snap("unlock-no-terminal", &["unlock"], &[]);
    c.snap(
        "unlock-wrong-passphrase",
        &["unlock", "--passphrase-file", &wrong],
        &[],
    );
    c.snap(
        "unlock-identity-without-age-slot",
        &["unlock", "--identity-file", &other],
        &[],
    );
    c.snap("export-no-terminal", &["export"], &[]);
    c.snap(
        "passwd-new-passphrase-no-terminal",
        &["passwd", "--old-passphrase-file", &pass],
        &[],
    );
    c.snap("recipients-add-nothing", &["recipients", "add"], &[]);
    c.snap("recipients-add-bad", &["recipients", "add", "nope"], &[]);
    c.snap(
        "recipients-add-private-key",
        &["recipients", "add", PRIVATE_KEY],
        &[],
    );
    c.snap(
        "recipients-remove-unknown",
        &["recipients", "remove", "nobody"],
        &[],
    );
    // An agent directory that is not private: refused, never fixed.
    let dir = c.world.path("run/lockbox");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    c.snap(
        "unlock-unsafe-agent-directory",
        &["unlock", "--passphrase-file", &pass],
        &[],
    );
    c.snap("status-unsafe-agent-directory", &["status"], &[]);
}

#[test]
fn import_errors() {
    let mut c = Case::new();
    c.with_passphrase();
    let config = c.world.config_path();
    fs::write(&config, r#"{"credsStore": "desktop"}"#).unwrap();
    c.snap("import-other-creds-store", &["import"], &[]);
    fs::write(&config, r#"{"credHelpers": {"gcr.io": "gcloud"}}"#).unwrap();
    c.snap("import-cred-helpers", &["import"], &[]);
    fs::write(&config, r#"{"auths": {"bad.example": {"auth": "!!!"}}}"#).unwrap();
    c.snap("import-unreadable-auth", &["import"], &[]);
    fs::write(&config, "{}").unwrap();
    c.snap(
        "import-bad-helper-name",
        &["import", "--from-helper", "a/b"],
        &[],
    );
    c.snap(
        "unimport-to-itself",
        &["unimport", "--to-helper", "lockbox"],
        &[],
    );
    c.snap(
        "import-helper-not-found",
        &["import", "--from-helper", "absent"],
        &[],
    );
    c.helper(
        "broken",
        "#!/bin/sh\necho 'error getting credentials - err: exit status 2'\nexit 1\n",
    );
    c.snap(
        "import-helper-exits-1",
        &["import", "--from-helper", "broken"],
        &[],
    );
    c.helper("garbage", "#!/bin/sh\necho hello\n");
    c.snap(
        "import-helper-answers-garbage",
        &["import", "--from-helper", "garbage"],
        &[],
    );
}

#[test]
fn errors_with_an_identity_vault() {
    let mut c = Case::new();
    let (id, recipient) = c.with_identity(false);
    let (other, _) = Case::identity();
    c.snap("unlock-nothing-opens-an-age-vault", &["unlock"], &[]);
    c.snap("passwd-needs-an-identity", &["passwd"], &[]);
    // The passphrase of an encrypted identity, with no identity: a usage error, not
    // silently unused (it is easily taken for the vault's --passphrase-file).
    let pass = c.key_file("identity-pass", "not used\n");
    c.snap(
        "unlock-identity-passphrase-without-identity",
        &["unlock", "--identity-passphrase-file", &pass],
        &[],
    );
    c.snap(
        "export-identity-does-not-match",
        &["export"],
        &[("LOCKBOX_IDENTITY", &other)],
    );
    c.snap(
        "recipients-remove-last-slot",
        &["recipients", "remove", &recipient, "--identity-file", &id],
        &[],
    );
}

#[test]
fn errors_with_identity_and_passphrase() {
    let mut c = Case::new();
    let (id, recipient) = c.with_identity(true);
    c.snap(
        "recipients-remove-needs-the-passphrase",
        &["recipients", "remove", &recipient, "--identity-file", &id],
        &[],
    );
}

#[test]
fn damaged_and_newer_vaults() {
    let mut c = Case::new();
    c.with_passphrase();
    fs::write(c.world.vault_path(), "{not json").unwrap();
    c.snap("status-damaged-vault", &["status"], &[]);
    fs::write(c.world.vault_path(), r#"{"lockbox": 99}"#).unwrap();
    c.snap("status-newer-vault", &["status"], &[]);
}

#[test]
fn expiry_check_and_rotate_mistakes() {
    let mut c = Case::new();
    let (id, _) = c.with_identity(false);
    let mut store = c.world.command(BIN);
    store.arg("store");
    let input = br#"{"ServerURL":"reg.example","Username":"ci","Secret":"snapshot-secret"}"#;
    let stored = run_bounded(store, Input::Bytes(input), Group::NewSession, RUN_LIMIT);
    assert!(stored.status.success());
    c.snap(
        "expiry-set-bad-date",
        &["expiry", "set", "reg.example", "31/01/2027"],
        &[],
    );
    c.snap(
        "expiry-set-no-entry",
        &["expiry", "set", "other.example", "2027-01-31"],
        &[],
    );
    c.snap("expiry-set-nothing", &["expiry", "set", "reg.example"], &[]);
    c.snap("check-bad-within", &["check", "--within", "soon"], &[]);
    c.snap(
        "expiry-set-date",
        &["expiry", "set", "reg.example", "2020-01-31"],
        &[],
    );
    c.snap("check-expired", &["check"], &[]);
    c.snap(
        "rotate-no-provider",
        &["rotate", "reg.example", "--identity-file", &id],
        &[],
    );
    c.snap(
        "expiry-set-plain-http",
        &[
            "expiry",
            "set",
            "reg.example",
            "--rotate",
            "gitlab-pat",
            "--api",
            "http://gitlab.example",
            "--identity-file",
            &id,
        ],
        &[],
    );
}

#[test]
fn source_mistakes() {
    let mut c = Case::new();
    let (id, _) = c.with_identity(false);
    let mut store = c.world.command(BIN);
    store.arg("store");
    let input = br#"{"ServerURL":"reg.example","Username":"ci","Secret":"snapshot-secret"}"#;
    let stored = run_bounded(store, Input::Bytes(input), Group::NewSession, RUN_LIMIT);
    assert!(stored.status.success());
    c.snap("source-list-none", &["source", "list"], &[]);
    c.snap(
        "source-add-program-not-found",
        &[
            "source",
            "add",
            "exec",
            "--registry",
            "r.example",
            "--",
            "no-such-tool",
        ],
        &[],
    );
    c.snap(
        "source-add-over-a-stored-credential",
        &[
            "source",
            "add",
            "exec",
            "--registry",
            "https://reg.example",
            "--identity-file",
            &id,
            "--",
            "/bin/true",
        ],
        &[],
    );
    let absent = c.path("keys/absent");
    c.snap(
        "source-add-missing-secret-file",
        &[
            "source",
            "add",
            "exec",
            "--registry",
            "r.example",
            "--secret-file",
            &absent,
            "--",
            "/bin/true",
        ],
        &[],
    );
    c.snap(
        "source-add-no-terminal",
        &[
            "source",
            "add",
            "exec",
            "--registry",
            "r.example",
            "--",
            "/bin/true",
        ],
        &[],
    );
    c.snap(
        "source-remove-a-stored-credential",
        &["source", "remove", "reg.example"],
        &[],
    );
    c.snap(
        "source-trust-another-key",
        &[
            "source",
            "trust",
            "--public-key",
            "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
        ],
        &[],
    );
}
