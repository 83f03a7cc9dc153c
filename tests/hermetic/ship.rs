//! What a person installs and types, through the real binary: the short name `lockbox`
//! (a symlink, as the package ships it), shell completions for both names driven in a
//! real bash, the generated man pages, and a closed stdout (EPIPE) as a quiet exit 141
//! for the commands for people (protocol actions keep 0/1).
use crate::common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{BIN, FAST_KDF, TestEnv, require_tool};

/// `bin/lockbox` → the binary under test.
fn short_name(env: &TestEnv) -> PathBuf {
    let dir = env.path("bin");
    fs::create_dir_all(&dir).unwrap();
    let link = dir.join("lockbox");
    symlink(BIN, &link).unwrap();
    link
}

#[test]
fn the_short_name_lockbox_unlocks_and_shows_status() {
    let env = TestEnv::new();
    let pass = env.init_passphrase();
    let lockbox = short_name(&env);
    let lockbox = lockbox.to_str().unwrap();
    let run = |args: &[&str]| {
        let child = env
            .command(lockbox, args, &[("LOCKBOX_ARGON2_PARAMS", FAST_KDF)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        env.finish(args, child, Some(Vec::new()), common::RUN_LIMIT)
    };
    let status = run(&["status"]);
    status.assert_code(3);
    assert!(status.stdout_str().contains("unlocked:   no"), "{status}");
    // Its own name in clap's usage lines.
    let bad = run(&["unlock", "--no-such-flag"]);
    bad.assert_code(2);
    assert!(bad.stderr_str().contains("Usage: lockbox unlock"), "{bad}");
    run(&["unlock", "--passphrase-file", pass.to_str().unwrap()]).assert_code(0);
    let status = run(&["status"]);
    status.assert_code(0);
    assert!(
        status.stdout_str().contains("unlocked:   yes, by agent"),
        "{status}"
    );
    run(&["lock", "--all"]).assert_code(0);
    run(&["status"]).assert_code(3);
}

/// What bash offers for `words` (the last one is being completed), after sourcing the
/// script `completions bash` printed.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prog = format!(
        "source '{}'\n\
         COMP_WORDS=({})\nCOMP_CWORD={cword}\nCOMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n\
         f=$(complete -p '{}' | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p')\n\
         [ -n \"$f\" ] || {{ echo 'no completion registered' >&2; exit 1; }}\n\
         \"$f\" '{}' '{}' '{}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words[0],
        words[0],
        words[cword],
        if cword > 0 { words[cword - 1] } else { "" },
    );
    // A clean environment: a BASH_ENV or COMP_* of the developer's would change what
    // this bash runs.
    let out = Command::new("bash")
        .env_clear()
        .env("PATH", common::test_path())
        .args(["--norc", "--noprofile", "-c", &prog])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Regression: clap_complete's script for a hyphenated name completed nothing past the
/// first word (`docker-credential-lockbox unlock --<TAB>` offered nothing).
#[test]
fn bash_completes_subcommand_options_for_both_names() {
    if !require_tool("bash", "bash") {
        return;
    }
    let env = TestEnv::new();
    let out = env.run(&["completions", "bash"], "");
    out.assert_code(0);
    let script = env.path("lockbox.bash");
    fs::write(&script, &out.stdout).unwrap();
    for name in ["docker-credential-lockbox", "lockbox"] {
        // `un` is also `unimport`; `unl` is one command.
        let first = bash_complete(&script, &[name, "unl"]);
        assert_eq!(first, ["unlock"], "{name} unl<TAB>");
        let opts = bash_complete(&script, &[name, "unlock", "--"]);
        for want in ["--timeout", "--passphrase-file", "--identity-file"] {
            assert!(
                opts.iter().any(|o| o == want),
                "{name} unlock --<TAB>: {opts:?}"
            );
        }
        let nested = bash_complete(&script, &[name, "recipients", "add", "--"]);
        assert!(nested.iter().any(|o| o == "--label"), "{name}: {nested:?}");
    }
}

#[test]
fn zsh_and_fish_scripts_name_both_commands() {
    let env = TestEnv::new();
    let zsh = env.run(&["completions", "zsh"], "");
    zsh.assert_code(0);
    assert!(
        zsh.stdout_str()
            .starts_with("#compdef docker-credential-lockbox lockbox\n"),
        "{zsh}"
    );
    let fish = env.run(&["completions", "fish"], "").stdout_str();
    assert!(fish.contains("complete -c docker-credential-lockbox "));
    assert!(fish.contains("complete -c lockbox "));
}

/// A stdout whose reader is gone before the first byte: EPIPE on the first write,
/// whatever the pipe's buffer size.
fn run_into_closed_pipe(env: &TestEnv, args: &[&str]) -> common::Out {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = env
        .command(BIN, args, &[])
        .stdin(Stdio::piped())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    // finish() wants a piped stdout to collect; give it an empty one.
    let (r, w) = std::io::pipe().unwrap();
    drop(w);
    child.stdout = Some(std::process::ChildStdout::from(std::os::fd::OwnedFd::from(
        r,
    )));
    env.finish(args, child, Some(Vec::new()), common::RUN_LIMIT)
}

/// Regression: `completions bash | head -c1` panicked (exit 101).
#[test]
fn a_closed_stdout_is_a_quiet_exit_141_for_commands_and_1_for_protocol_actions() {
    let env = TestEnv::new();
    env.init_passphrase();
    for args in [
        &["completions", "bash"][..],
        &["completions", "fish"],
        &["--help"],
        &["status"],
        &["status", "--json"],
        &["recipients", "list"],
        &["doctor"],
        &["doctor", "--json"],
    ] {
        let out = run_into_closed_pipe(&env, args);
        out.assert_code(141);
        assert_eq!(out.stderr_str(), "", "quiet: {out}");
    }
    // The protocol's only failure status.
    let out = run_into_closed_pipe(&env, &["list"]);
    out.assert_code(1);
}

#[test]
fn generate_assets_writes_man_pages_for_every_visible_subcommand_and_completions() {
    let env = TestEnv::new();
    let dir = env.path("assets");
    env.run(&["generate-assets", dir.to_str().unwrap()], "")
        .assert_code(0);
    for page in [
        "docker-credential-lockbox.1",
        "docker-credential-lockbox-init.1",
        "docker-credential-lockbox-unlock.1",
        "docker-credential-lockbox-status.1",
        "docker-credential-lockbox-recipients-add.1",
        "docker-credential-lockbox-doctor.1",
    ] {
        let text = fs::read_to_string(dir.join("man1").join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie \\n(.g .ds Aq") || text.contains(".TH "),
            "{page}"
        );
    }
    // Hidden subcommands have no page (the agent has one: service managers run it).
    assert!(dir.join("man1/docker-credential-lockbox-agent.1").exists());
    assert!(dir.join("man1/docker-credential-lockbox-exec.1").exists());
    assert!(
        !dir.join("man1/docker-credential-lockbox-generate-assets.1")
            .exists()
    );
    for f in [
        "bash/docker-credential-lockbox",
        "zsh/_docker-credential-lockbox",
        "fish/docker-credential-lockbox.fish",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    if require_tool("man", "man-db") {
        let out = Command::new("man")
            .env_clear()
            .env("PATH", common::test_path())
            .args(["-l", "-P", "cat"])
            .arg(dir.join("man1/docker-credential-lockbox-unlock.1"))
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("--timeout"), "{text}");
    }
}

/// Regression: `LOCKBOX_VAULT` naming a file that does not exist made `get` answer
/// "credentials not found", so Docker pulled anonymously. A named vault that is missing
/// is an error for every action; the default path with no vault stays "not found".
#[test]
fn a_missing_vault_named_by_lockbox_vault_is_an_error_not_not_found() {
    let env = TestEnv::new();
    let typo = env.path("docker/lockbox/vualt.json");
    let named = [("LOCKBOX_VAULT", typo.to_str().unwrap())];
    let want = format!(
        "LOCKBOX_VAULT names {}, which does not exist: check the path, or create the vault with 'docker-credential-lockbox init'\n",
        typo.display()
    );
    for (action, stdin) in [
        ("get", "reg.example".to_owned()),
        ("list", String::new()),
        ("erase", "reg.example".to_owned()),
        (
            "store",
            common::store_json("reg.example", "u", "s3cret-store-1"),
        ),
    ] {
        let out = env.run_env(&[action], &stdin, &named);
        out.assert_code(1);
        out.assert_stdout(&want);
    }
    assert!(!typo.exists(), "nothing created");
    assert!(!env.path("docker/lockbox").exists(), "no directory created");
    // The default path with no vault: as before.
    env.run(&["get"], "reg.example")
        .assert_code(1)
        .assert_stdout(common::NOT_FOUND);
    env.run(&["list"], "").assert_code(0).assert_stdout("{}\n");
    env.run(&["erase"], "reg.example").assert_code(0);
}

/// Regression: `import --config` with a mistyped path created the file and its
/// directory and reported success, while the real config kept its plaintext.
#[test]
fn import_refuses_a_config_path_that_does_not_exist() {
    use common::manage::{Env, auth};
    let (env, _owner) = Env::with_vault();
    let real = serde_json::json!({"auths": {"reg.example": {"auth": auth("u", "typo-Secret-77")}}})
        .to_string();
    env.write_config(&real);
    let vault = env.vault_bytes();
    let typo = env.path("home/.dokcer/config.json");
    env.lockbox(&["import", "--config", typo.to_str().unwrap()])
        .fails()
        .says(&["does not exist", "--config", "nothing was changed"]);
    assert!(
        !typo.exists() && !env.path("home/.dokcer").exists(),
        "nothing created"
    );
    assert_eq!(env.config_text(), real);
    assert_eq!(env.vault_bytes(), vault);
    // The default config.json may be new: import creates it with credsStore.
    fs::remove_file(env.config_path()).unwrap();
    env.lockbox(&["import"]).ok();
    assert_eq!(env.config_json()["credsStore"], "lockbox");
}

/// Regression: `init`'s "Next:" line said to add credsStore even when it was set, or
/// when the next README step (`import`) does it.
#[test]
fn init_says_the_next_step_that_fits_config_json() {
    use common::manage::{Env, auth};
    let next = |config: Option<String>| {
        let env = Env::new();
        if let Some(c) = &config {
            env.write_config(c);
        }
        let id = env.identity("owner");
        let r = env.lockbox(&["init", "--recipient", &id.recipient]);
        r.ok();
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with("Next: "))
            .unwrap_or_else(|| panic!("no Next line: {r}"))
            .to_owned();
        assert!(!line.contains("add \"credsStore\""), "{line}");
        line
    };
    let set = next(Some("{\"credsStore\": \"lockbox\"}".into()));
    assert!(
        set.starts_with("Next: run 'docker login'") && set.contains("already"),
        "{set}"
    );
    let plain = next(Some(
        serde_json::json!({"auths": {"a.example": {"auth": auth("u", "next-Secret-1")}, "b.example": {"auth": auth("v", "next-Secret-2")}}})
            .to_string(),
    ));
    assert!(
        plain.contains("'docker-credential-lockbox import' to move the 2 plaintext credentials"),
        "{plain}"
    );
    let none = next(None);
    assert!(
        none.starts_with("Next: run 'docker-credential-lockbox import' (it sets"),
        "{none}"
    );
}

/// Regression: `init --recipient` had no `--label`, so two `age1…` slots looked alike.
#[test]
fn init_labels_each_recipient_in_order() {
    use common::manage::Env;
    let env = Env::new();
    let (a, b) = (env.identity("a"), env.identity("b"));
    env.lockbox(&[
        "init",
        "--recipient",
        &a.recipient,
        "--label",
        "alice laptop",
        "--recipient",
        &b.recipient,
        "--label",
        "ci",
    ])
    .ok()
    .prints(&["alice laptop", "ci"]);
    let list = env.lockbox(&["recipients", "list"]);
    list.ok();
    assert!(
        list.stdout.contains("alice laptop") && list.stdout.contains("ci"),
        "{list}"
    );
    let vault = env.vault_json();
    let labels: Vec<&str> = vault["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["alice laptop", "ci"]);

    let env = Env::new();
    let a = env.identity("a");
    let r = env.lockbox(&[
        "init",
        "--recipient",
        &a.recipient,
        "--label",
        "x",
        "--label",
        "y",
    ]);
    assert_eq!(r.code(), 2, "{r}");
    r.says(&["more --label than --recipient"]);
    assert!(!env.vault_path().exists());
}

/// `docker-credential-lockbox ARGS` on a pseudo-terminal (`script` from bsdutils), with
/// `typed` as what the person types; the terminal's output (prompts, stdout and stderr
/// together) and the exit status.
fn on_terminal(env: &TestEnv, args: &str, typed: &str, vars: &[(&str, &str)]) -> common::Out {
    let mut all = vec![("LOCKBOX_ARGON2_PARAMS", FAST_KDF)];
    all.extend_from_slice(vars);
    let child = env
        .command(
            "script",
            &["-qec", &format!("{BIN} {args}"), "/dev/null"],
            &all,
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    env.finish(
        &[args],
        child,
        Some(typed.as_bytes().to_vec()),
        common::RUN_LIMIT,
    )
}

/// Whether `passphrase` opens the vault (`status --check` with a passphrase file).
fn opens_with(env: &TestEnv, passphrase: &str) -> bool {
    let f = env.keys_dir().join("check-pass");
    fs::write(&f, format!("{passphrase}\n")).unwrap();
    env.run_env(
        &["status", "--check"],
        "",
        &[("LOCKBOX_PASSPHRASE_FILE", f.to_str().unwrap())],
    )
    .code()
        == 0
}

/// Regression: a mistyped passphrase at `init`/`passwd` ended the command instead of
/// asking again; a one-letter passphrase was accepted without a word.
#[test]
fn new_passphrases_are_asked_again_and_short_ones_need_a_yes_on_a_terminal() {
    if !require_tool("script", "bsdutils") {
        return;
    }
    let good = "correct horse battery 42";
    // A mistyped repeat, then a good pair: created with the good one.
    let env = TestEnv::new();
    let out = on_terminal(
        &env,
        "init --passphrase",
        &format!("{good}\n{good}x\n{good}\n{good}\n"),
        &[],
    );
    out.assert_code(0);
    let screen = out.stdout_str();
    assert!(
        screen.contains("the passphrases did not match") && screen.contains("try again (2 of 3)"),
        "{out}"
    );
    assert!(opens_with(&env, good));

    // Three mistyped repeats: nothing is created.
    let env = TestEnv::new();
    let out = on_terminal(
        &env,
        "init --passphrase",
        &"one-two-three-four\nfour-three-two-one\n".repeat(3),
        &[],
    );
    out.assert_code(1);
    assert!(
        out.stdout_str()
            .contains("did not match; nothing was changed"),
        "{out}"
    );
    assert!(!env.vault_path().exists());

    // A short one: a warning and a question; "n" asks again, "y" takes it.
    let env = TestEnv::new();
    let out = on_terminal(
        &env,
        "init --passphrase",
        &format!("x\nn\n{good}\n{good}\n"),
        &[],
    );
    out.assert_code(0);
    assert!(
        out.stdout_str().contains("shorter than 12 characters")
            && out.stdout_str().contains("Use it anyway? [y/N]"),
        "{out}"
    );
    assert!(opens_with(&env, good) && !opens_with(&env, "x"));
    let env = TestEnv::new();
    on_terminal(&env, "init --passphrase", "abc\ny\nabc\n", &[]).assert_code(0);
    assert!(opens_with(&env, "abc"));

    // passwd asks again too.
    let old = env.keys_dir().join("old");
    fs::write(&old, "abc\n").unwrap();
    let new = "a much longer passphrase 7";
    let out = on_terminal(
        &env,
        &format!("passwd --old-passphrase-file {}", old.display()),
        &format!("{new}\nnope, mistyped\n{new}\n{new}\n"),
        &[],
    );
    out.assert_code(0);
    assert!(out.stdout_str().contains("try again (2 of 3)"), "{out}");
    assert!(opens_with(&env, new));
}

/// From a file (scripts) a short passphrase is warned about, never asked about.
#[test]
fn a_short_passphrase_from_a_file_is_only_warned_about() {
    let env = TestEnv::new();
    let f = env.keys_dir().join("short");
    fs::write(&f, "abc\n").unwrap();
    let out = env.run_env(
        &["init", "--passphrase-file", f.to_str().unwrap()],
        "",
        &[("LOCKBOX_ARGON2_PARAMS", FAST_KDF)],
    );
    out.assert_code(0);
    assert!(
        out.stderr_str().contains("shorter than 12 characters"),
        "{out}"
    );
    assert!(!out.stderr_str().contains("[y/N]"), "{out}");
}
