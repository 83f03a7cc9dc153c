//! The identities of `src/identities.rs` with real parts: encrypted SSH keys from
//! `ssh-keygen -N`, `age -p` identity files (typed on a pty, as age reads the
//! passphrase from the terminal), lockbox's own terminal prompt on a pty, and age
//! plugins through the test plugin `tests/plugin` (`age-plugin-lockboxtest`).
//!
//! Tests that need the test plugin in `PATH`, or a pty, re-run one ignored test of
//! this binary in a child process with that environment (setting `PATH` in this
//! process would race with the other test threads). Each such pair is an outer test
//! that must pass and an `inner_…` test it runs; the inner test checks its own
//! preconditions so it cannot pass vacuously.
use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use age::secrecy::SecretString;
use common::plugin::TAG_RECIPIENT;
use common::{TestEnv, require_tool, ssh_keygen};
use lockbox::identity::{
    AgeSlot, FileAsk, NeverAsk, PluginCallbacks, TerminalAsk, WrapToRecipient, WrapWithPlugin,
    open_age_slots, parse,
};
use lockbox::vault::crypto::{PluginRecipient, Recipient, VaultKey};

const PASS: &str = "test passphrase 91c2";

/// Runs `inner` of this binary in a child with the test plugin first in `PATH` and
/// `LOCKBOX_TEST_PLUGIN_LOG` set, through `wrapper` (a shell line in which "$LB_RUN"
/// runs it).
fn run_inner(inner: &str, wrapper: &str, stdin: &[u8]) {
    let path = format!(
        "{}:{}",
        common::plugin::dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = tempfile::NamedTempFile::new().unwrap();
    let exe = std::env::current_exe().unwrap();
    // The test's full name in this binary: its module path without the crate.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let run = format!(
        "'{}' --exact '{module}::{inner}' --include-ignored --test-threads 1 --nocapture",
        exe.display()
    );
    // Nothing of this process's environment but what the inner test needs: the
    // developer's own DOCKER_*/LOCKBOX_*/HOME never reach it, nor the plugin it runs.
    let mut child = Command::new("/bin/sh");
    child.env_clear();
    for keep in ["CI", "TMPDIR", "RUST_BACKTRACE", "LOCKBOX_TEST_TOOLS"] {
        if let Some(v) = std::env::var_os(keep) {
            child.env(keep, v);
        }
    }
    let mut child = child
        .arg("-c")
        .arg(wrapper)
        .env("LB_RUN", &run)
        .env("SHELL", "/bin/sh")
        .env("PATH", path)
        .env(common::plugin::BIN_VAR, common::plugin::binary())
        .env("LOCKBOX_TEST_PLUGIN_LOG", log.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{inner} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The plugin runs the test plugin logged (one line per run).
fn plugin_runs() -> Vec<String> {
    let path = std::env::var_os("LOCKBOX_TEST_PLUGIN_LOG").expect("run by the outer test");
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn in_plugin_env() {
    assert!(
        std::env::var_os("LOCKBOX_TEST_PLUGIN_LOG").is_some(),
        "precondition: run by the outer test, with the plugin in PATH"
    );
}

// ---------------------------------------------------------------------------------
// Encrypted OpenSSH keys (ssh-keygen -N)

fn ssh_slot_roundtrip(kind: &str) {
    if !require_tool("ssh-keygen", "openssh-client") {
        return;
    }
    let env = TestEnv::new();
    let (file, public) = ssh_keygen(&env, kind, &format!("id_{kind}"), "t@host", PASS);
    let key = VaultKey::generate();
    let recipient = Recipient::parse(&public).unwrap();
    let wrapped = key.wrap_to_recipient(&recipient).unwrap();
    let text = fs::read(&file).unwrap();

    // A protocol action never asks: one line that says to run unlock.
    let e = parse(&text, &file.display().to_string(), &NeverAsk)
        .err()
        .unwrap();
    let msg = e.message();
    assert!(
        msg.contains("passphrase") && msg.contains("unlock"),
        "{msg}"
    );
    assert!(!msg.contains("credentials not found"), "{msg}");

    // From a file: right and wrong.
    let pass_file = env.path("pass");
    fs::write(&pass_file, format!("{PASS}\n")).unwrap();
    let ids = parse(&text, "key", &FileAsk(pass_file.clone())).unwrap();
    let slots = [AgeSlot {
        recipient: &recipient.canonical(),
        wrapped: &wrapped,
    }];
    let opened = open_age_slots(&slots, &ids, &key.public(), &PluginCallbacks::never(), None)
        .unwrap()
        .unwrap();
    assert_eq!(opened.public().to_string(), key.public().to_string());
    fs::write(&pass_file, "wrong\n").unwrap();
    let e = parse(&text, "key", &FileAsk(pass_file)).err().unwrap();
    assert!(e.message().contains("wrong passphrase"), "{}", e.message());
}

#[test]
fn encrypted_ssh_ed25519_key_opens_its_slot() {
    ssh_slot_roundtrip("ed25519");
}

#[test]
fn encrypted_ssh_rsa_key_opens_its_slot() {
    ssh_slot_roundtrip("rsa");
}

#[test]
fn encrypted_ssh_key_with_hostile_bcrypt_rounds_is_refused_before_work() {
    if !require_tool("ssh-keygen", "openssh-client") {
        return;
    }
    let env = TestEnv::new();
    let (file, _) = ssh_keygen(&env, "ed25519", "slow", "t", PASS);
    // Rewrite its bcrypt rounds (PROTOCOL.key: magic, cipher, kdfname, kdfoptions =
    // salt + u32 rounds) from ssh-keygen's 16 to 5000: a hostile or mistaken file.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = fs::read_to_string(&file).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut blob = b64.decode(body).unwrap();
    let mut at = b"openssh-key-v1\0".len();
    let skip = |blob: &[u8], at: &mut usize| {
        let len = u32::from_be_bytes(blob[*at..*at + 4].try_into().unwrap()) as usize;
        *at += 4 + len;
    };
    skip(&blob, &mut at); // cipher
    skip(&blob, &mut at); // kdfname
    at += 4; // kdfoptions length
    skip(&blob, &mut at); // salt
    assert_eq!(
        &blob[at..at + 4],
        &16u32.to_be_bytes(),
        "ssh-keygen's default rounds"
    );
    blob[at..at + 4].copy_from_slice(&5000u32.to_be_bytes());
    let mut hostile = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in b64.encode(&blob).as_bytes().chunks(70) {
        hostile.push_str(std::str::from_utf8(chunk).unwrap());
        hostile.push('\n');
    }
    hostile.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    fs::write(&file, hostile).unwrap();
    let pass_file = env.path("pass");
    fs::write(&pass_file, PASS).unwrap();
    let e = parse(&fs::read(&file).unwrap(), "slow", &FileAsk(pass_file))
        .err()
        .unwrap();
    assert!(
        e.message().contains("5000 bcrypt rounds"),
        "{}",
        e.message()
    );
}

// ---------------------------------------------------------------------------------
// age -p identity files, made by the real age on a pty

/// `age -p [-a]` of an identity file; age reads the passphrase twice from the terminal.
fn age_p(env: &TestEnv, plain: &Path, armor: bool) -> PathBuf {
    let out_file = env.path(if armor { "id.age.asc" } else { "id.age" });
    let cmd = format!(
        "age -p {} -o '{}' '{}'",
        if armor { "-a" } else { "" },
        out_file.display(),
        plain.display()
    );
    // script forwards its stdin to the pty where age asks; a short pause lets age
    // open the terminal before the lines arrive (bounded: two sleeps).
    let wrapper = format!(
        "(sleep 1; printf '%s\\n' '{PASS}'; sleep 1; printf '%s\\n' '{PASS}'; sleep 1) | script -qec \"$0\" /dev/null"
    );
    let out = Command::new("/bin/sh")
        .env_clear()
        .env("PATH", common::test_path())
        .arg("-c")
        .arg(&wrapper)
        .arg(&cmd)
        .env("SHELL", "/bin/sh")
        .output()
        .unwrap();
    assert!(
        out.status.success() && out_file.exists(),
        "age -p failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out_file
}

fn age_p_roundtrip(armor: bool) {
    if !require_tool("age", "age") || !require_tool("script", "bsdutils") {
        return;
    }
    let env = TestEnv::new();
    let (plain, recipient, _) = common::age_keygen(&env, "id.txt");
    let encrypted = age_p(&env, &plain, armor);
    let text = fs::read(&encrypted).unwrap();
    if armor {
        assert!(text.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
    }
    let e = parse(&text, "id.age", &NeverAsk).err().unwrap();
    assert!(e.message().contains("unlock"), "{}", e.message());

    let pass_file = env.path("pass");
    fs::write(&pass_file, format!("{PASS}\n")).unwrap();
    let ids = parse(&text, "id.age", &FileAsk(pass_file.clone())).unwrap();
    assert_eq!(ids.native.len(), 1);
    let key = VaultKey::generate();
    let wrapped = key
        .wrap_to_recipient(&Recipient::parse(&recipient).unwrap())
        .unwrap();
    let slots = [AgeSlot {
        recipient: &recipient,
        wrapped: &wrapped,
    }];
    assert!(
        open_age_slots(&slots, &ids, &key.public(), &PluginCallbacks::never(), None)
            .unwrap()
            .is_some()
    );
    fs::write(&pass_file, "nope").unwrap();
    let e = parse(&text, "id.age", &FileAsk(pass_file)).err().unwrap();
    assert!(e.message().contains("wrong passphrase"), "{}", e.message());
}

#[test]
fn age_p_identity_file_binary() {
    age_p_roundtrip(false);
}

#[test]
fn age_p_identity_file_armored() {
    age_p_roundtrip(true);
}

#[test]
fn age_encrypted_to_a_key_is_not_taken_for_a_passphrase_file() {
    let key = VaultKey::generate();
    let wrapped = key
        .wrap_to_recipient(&Recipient::X25519(
            age::x25519::Identity::generate().to_public(),
        ))
        .unwrap();
    let e = parse(&wrapped, "f", &NeverAsk).err().unwrap();
    assert!(
        e.message().contains("not encrypted with a passphrase"),
        "{}",
        e.message()
    );
}

#[test]
fn hostile_scrypt_work_factor_is_refused() {
    // An age -p file whose scrypt work factor is 2^30 (made here with the age crate at
    // 2^10 and its header rewritten: the MAC then fails, but the bound is checked
    // before any scrypt work, which is what this pins).
    let mut r = age::scrypt::Recipient::new(SecretString::from(PASS.to_owned()));
    r.set_work_factor(10);
    let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
    let mut out = Vec::new();
    let mut w = enc.wrap_output(&mut out).unwrap();
    std::io::Write::write_all(&mut w, b"AGE-SECRET-KEY-1\n").unwrap();
    w.finish().unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let line = text.lines().find(|l| l.starts_with("-> scrypt ")).unwrap();
    let hostile = text.replacen(line, &line.replace(" 10", " 30"), 1);
    let dir = tempfile::tempdir().unwrap();
    let pass_file = dir.path().join("p");
    fs::write(&pass_file, PASS).unwrap();
    let e = parse(hostile.as_bytes(), "f", &FileAsk(pass_file))
        .err()
        .unwrap();
    assert!(e.message().contains("work factor 30"), "{}", e.message());
}

// ---------------------------------------------------------------------------------
// lockbox's own prompt on a terminal, with a retry

#[test]
fn terminal_prompt_retries_after_a_wrong_passphrase() {
    if !require_tool("script", "bsdutils") || !require_tool("ssh-keygen", "openssh-client") {
        return;
    }
    run_inner(
        "inner_terminal_prompt",
        &format!(
            "(sleep 2; printf 'wrong\\n'; sleep 2; printf '%s\\n' '{PASS}'; sleep 1) | script -qec \"$LB_RUN\" /dev/null"
        ),
        b"",
    );
}

#[test]
#[ignore = "run by terminal_prompt_retries_after_a_wrong_passphrase, on a pty"]
fn inner_terminal_prompt() {
    assert!(
        fs::File::open("/dev/tty").is_ok(),
        "precondition: a terminal"
    );
    let env = TestEnv::new();
    let (file, _) = ssh_keygen(&env, "ed25519", "id", "t", "test passphrase 91c2");
    let ids = parse(&fs::read(&file).unwrap(), "id", &TerminalAsk).unwrap();
    assert_eq!(ids.native.len(), 1);
}

// ---------------------------------------------------------------------------------
// age plugins, through the test plugin

#[test]
fn plugin_recipient_roundtrip_runs_the_plugin_once_over_all_its_slots() {
    run_inner("inner_plugin_roundtrip", "eval \"exec $LB_RUN\"", b"");
}

#[test]
#[ignore = "run by plugin_recipient_roundtrip_runs_the_plugin_once_over_all_its_slots"]
fn inner_plugin_roundtrip() {
    in_plugin_env();
    let key = VaultKey::generate();
    let (id_a, rcpt_a) = common::plugin::key(&[]);
    let (_, rcpt_b) = common::plugin::key(&[]);
    let (_, rcpt_c) = common::plugin::key(&[]);
    let x = age::x25519::Identity::generate().to_public();
    let mut slots_data = vec![(
        x.to_string(),
        key.wrap_to_recipient(&Recipient::X25519(x)).unwrap(),
    )];
    for r in [&rcpt_b, &rcpt_c, &rcpt_a] {
        let pr = PluginRecipient::parse(r).unwrap().unwrap();
        slots_data.push((
            pr.canonical(),
            pr.wrap(&key, PluginCallbacks::never()).unwrap(),
        ));
    }
    let tag = PluginRecipient::parse(TAG_RECIPIENT).unwrap().unwrap();
    slots_data.push((
        tag.canonical(),
        tag.wrap(&key, PluginCallbacks::never()).unwrap(),
    ));
    assert_eq!(
        plugin_runs(),
        vec!["recipient-v1"; 3],
        "one run per recipient added"
    );

    let slots: Vec<AgeSlot<'_>> = slots_data
        .iter()
        .map(|(r, w)| AgeSlot {
            recipient: r,
            wrapped: w,
        })
        .collect();
    let ids = parse(
        format!("{id_a}\n").as_bytes(),
        "LOCKBOX_IDENTITY",
        &NeverAsk,
    )
    .unwrap();
    let opened = open_age_slots(
        &slots,
        &ids,
        &key.public(),
        &PluginCallbacks::never(),
        Some(Duration::from_secs(30)),
    )
    .unwrap()
    .expect("the plugin identity opens its slot");
    assert_eq!(opened.public().to_string(), key.public().to_string());
    // One identity-v1 run for the three plugin slots and the tag slot, not one per
    // slot: one file of their stanzas (each age file also carries a grease stanza).
    let runs = plugin_runs();
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert!(
        runs[3].starts_with("identity-v1 files=1 stanzas="),
        "{runs:?}"
    );
    let stanzas: usize = runs[3].rsplit('=').next().unwrap().parse().unwrap();
    assert!(
        stanzas >= 4,
        "every candidate slot's stanza was sent: {runs:?}"
    );
}

#[test]
fn plugin_is_not_run_for_a_vault_without_a_slot_it_could_open() {
    run_inner("inner_plugin_not_run", "eval \"exec $LB_RUN\"", b"");
}

#[test]
#[ignore = "run by plugin_is_not_run_for_a_vault_without_a_slot_it_could_open"]
fn inner_plugin_not_run() {
    in_plugin_env();
    let key = VaultKey::generate();
    let (id_a, _) = common::plugin::key(&[]);
    let x = age::x25519::Identity::generate().to_public();
    let wrapped = key
        .wrap_to_recipient(&Recipient::X25519(x.clone()))
        .unwrap();
    let r = x.to_string();
    let slots = [AgeSlot {
        recipient: &r,
        wrapped: &wrapped,
    }];
    let ids = parse(id_a.as_bytes(), "id", &NeverAsk).unwrap();
    let opened = open_age_slots(&slots, &ids, &key.public(), &PluginCallbacks::never(), None);
    assert!(opened.unwrap().is_none());
    assert!(plugin_runs().is_empty(), "{:?}", plugin_runs());
}

#[test]
fn plugin_pin_in_a_protocol_action_says_to_run_unlock() {
    run_inner("inner_plugin_pin_refused", "eval \"exec $LB_RUN\"", b"");
}

#[test]
#[ignore = "run by plugin_pin_in_a_protocol_action_says_to_run_unlock"]
fn inner_plugin_pin_refused() {
    in_plugin_env();
    let key = VaultKey::generate();
    let (id, rcpt) = common::plugin::key(&["--pin"]);
    let pr = PluginRecipient::parse(&rcpt).unwrap().unwrap();
    let wrapped = pr.wrap(&key, PluginCallbacks::never()).unwrap();
    let r = pr.canonical();
    let slots = [AgeSlot {
        recipient: &r,
        wrapped: &wrapped,
    }];
    let ids = parse(id.as_bytes(), "id", &NeverAsk).unwrap();
    let cb = PluginCallbacks::never();
    let e = open_age_slots(
        &slots,
        &ids,
        &key.public(),
        &cb,
        Some(Duration::from_secs(30)),
    )
    .err()
    .unwrap();
    assert!(cb.refused());
    let msg = e.message();
    assert!(
        msg.contains("age-plugin-lockboxtest") && msg.contains("unlock"),
        "{msg}"
    );
}

#[test]
fn plugin_pin_on_a_terminal_is_asked_for() {
    if !require_tool("script", "bsdutils") {
        return;
    }
    run_inner(
        "inner_plugin_pin_terminal",
        "(sleep 2; printf '1234\\n'; sleep 1) | script -qec \"$LB_RUN\" /dev/null",
        b"",
    );
}

#[test]
#[ignore = "run by plugin_pin_on_a_terminal_is_asked_for, on a pty"]
fn inner_plugin_pin_terminal() {
    in_plugin_env();
    assert!(
        fs::File::open("/dev/tty").is_ok(),
        "precondition: a terminal"
    );
    let key = VaultKey::generate();
    let (id, rcpt) = common::plugin::key(&["--pin"]);
    let pr = PluginRecipient::parse(&rcpt).unwrap().unwrap();
    let wrapped = pr.wrap(&key, PluginCallbacks::terminal()).unwrap();
    let r = pr.canonical();
    let slots = [AgeSlot {
        recipient: &r,
        wrapped: &wrapped,
    }];
    let ids = parse(id.as_bytes(), "id", &NeverAsk).unwrap();
    let opened = open_age_slots(
        &slots,
        &ids,
        &key.public(),
        &PluginCallbacks::terminal(),
        None,
    )
    .unwrap()
    .unwrap();
    assert_eq!(opened.public().to_string(), key.public().to_string());
}

#[test]
fn a_hanging_plugin_is_given_up_at_the_deadline() {
    run_inner("inner_plugin_hangs", "eval \"exec $LB_RUN\"", b"");
}

#[test]
#[ignore = "run by a_hanging_plugin_is_given_up_at_the_deadline"]
fn inner_plugin_hangs() {
    in_plugin_env();
    let key = VaultKey::generate();
    let (id, rcpt) = common::plugin::key(&["--hang"]);
    let pr = PluginRecipient::parse(&rcpt).unwrap().unwrap();
    let wrapped = pr.wrap(&key, PluginCallbacks::never()).unwrap();
    let r = pr.canonical();
    let slots = [AgeSlot {
        recipient: &r,
        wrapped: &wrapped,
    }];
    let ids = parse(id.as_bytes(), "id", &NeverAsk).unwrap();
    let e = open_age_slots(
        &slots,
        &ids,
        &key.public(),
        &PluginCallbacks::never(),
        Some(Duration::from_secs(1)),
    )
    .err()
    .unwrap();
    assert!(
        e.message().contains("did not answer within 1 s"),
        "{}",
        e.message()
    );
}

#[test]
fn a_missing_plugin_is_a_clear_error() {
    // No PATH games needed: no age-plugin-lockboxtest is in this process's PATH.
    let key = VaultKey::generate();
    let (id, rcpt) = common::plugin::key(&[]);
    let pr = PluginRecipient::parse(&rcpt).unwrap().unwrap();
    let e = pr.wrap(&key, PluginCallbacks::never()).err().unwrap();
    assert!(e.message().contains("not in PATH"), "{}", e.message());
    // Opening: a slot for the plugin (its stanza made by hand is enough to be tried).
    let tag = PluginRecipient::parse(TAG_RECIPIENT).unwrap().unwrap();
    let wrapped = tag.wrap(&key, PluginCallbacks::never()).unwrap();
    let slots = [AgeSlot {
        recipient: TAG_RECIPIENT,
        wrapped: &wrapped,
    }];
    let ids = parse(id.as_bytes(), "id", &NeverAsk).unwrap();
    let e = open_age_slots(&slots, &ids, &key.public(), &PluginCallbacks::never(), None)
        .err()
        .unwrap();
    assert!(
        e.message().contains("age-plugin-lockboxtest"),
        "{}",
        e.message()
    );
    assert!(!e.message().contains(id.as_str()));
}

// ---------------------------------------------------------------------------------
// End to end with the binary: the vault an encrypted SSH key was made for

/// Issue 12's new user: `init --recipient "$(cat ~/.ssh/id_ed25519.pub)"` with a
/// passphrase-protected key. `get` never asks (one line saying to run unlock, never
/// the not-found text); `unlock --identity-file` asks on the terminal, and then `get`
/// works through the agent even with `LOCKBOX_IDENTITY_FILE` still naming the key.
#[test]
fn encrypted_ssh_key_opens_the_vault_it_was_made_for() {
    if !require_tool("ssh-keygen", "openssh-client") || !require_tool("script", "bsdutils") {
        return;
    }
    let env = TestEnv::new();
    let (private, public) = ssh_keygen(&env, "ed25519", "id_ed25519", "me@laptop", PASS);
    env.track_secret(PASS);
    env.run(&["init", "--recipient", &public], "")
        .assert_code(0);
    env.store("enc.example", "u", "encrypted-key-secret-1");
    let key_path = private.to_str().unwrap();
    let id_var = [("LOCKBOX_IDENTITY_FILE", key_path)];

    let out = env.run_env(&["get"], "enc.example", &id_var);
    out.assert_code(1);
    let line = out.stdout_str();
    assert!(
        line.contains("protected by a passphrase") && line.contains("unlock"),
        "{out}"
    );
    assert!(!line.contains("credentials not found"), "{out}");
    assert_eq!(line.lines().count(), 1, "{out}");

    // unlock on a pty: the passphrase typed once.
    let out = env.run_program(
        "/bin/sh",
        &[
            "-c",
            &format!(
                "(sleep 1; printf '%s\\n' '{PASS}'; sleep 3) | script -qec \"$0 unlock --identity-file $1\" /dev/null"
            ),
            common::BIN,
            key_path,
        ],
        &[("SHELL", "/bin/sh")],
    );
    assert!(out.status.success(), "{out}");
    let out = env.run_env(&["get"], "enc.example", &id_var);
    out.assert_quiet_ok();
    assert!(out.stdout_str().contains("encrypted-key-secret-1"), "{out}");
    env.run(&["lock"], "").assert_code(0);
}

/// `LOCKBOX_IDENTITY_CMD` end to end: `get` opens the vault with what the command
/// prints; a failing command is one line on stdout, exit 1, its stderr relayed on
/// stderr; after `unlock --identity-cmd` the agent answers and the command is not run.
#[test]
fn identity_command_end_to_end() {
    let env = TestEnv::new();
    let (file, recipient, _) = common::age_keygen(&env, "id.txt");
    env.run(&["init", "--recipient", &recipient], "")
        .assert_code(0);
    env.store("cmd.example", "u", "identity-command-secret-1");
    let marker = env.path("ran");
    let cmd = format!("touch '{}'; cat '{}'", marker.display(), file.display());
    let out = env.run_env(&["get"], "cmd.example", &[("LOCKBOX_IDENTITY_CMD", &cmd)]);
    out.assert_quiet_ok();
    assert!(
        out.stdout_str().contains("identity-command-secret-1"),
        "{out}"
    );
    assert!(marker.exists());

    let out = env.run_env(
        &["get"],
        "cmd.example",
        &[("LOCKBOX_IDENTITY_CMD", "echo 'vault sealed' >&2; exit 2")],
    );
    out.assert_code(1);
    assert_eq!(out.stdout_str().lines().count(), 1, "{out}");
    assert!(
        out.stdout_str()
            .contains("exited with status 2: vault sealed"),
        "{out}"
    );
    assert!(!out.stdout_str().contains("credentials not found"), "{out}");
    assert!(
        out.stderr_str().contains("identity command: vault sealed"),
        "{out}"
    );

    let out = env.run(
        &[
            "unlock",
            "--identity-cmd",
            &format!("cat '{}'", file.display()),
        ],
        "",
    );
    out.assert_code(0);
    fs::remove_file(&marker).unwrap();
    let out = env.run_env(&["get"], "cmd.example", &[("LOCKBOX_IDENTITY_CMD", &cmd)]);
    out.assert_quiet_ok();
    assert!(
        !marker.exists(),
        "the agent held the key: the command must not run"
    );
    env.run(&["lock"], "").assert_code(0);
}

// ---------------------------------------------------------------------------------
// --identity-passphrase-file: the passphrase of an encrypted identity from a file

/// Runs the binary in a new session (no controlling terminal: a prompt would fail at
/// once, so a pass proves the passphrase came from the file).
fn no_tty(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> common::Out {
    let mut all = vec!["-w", common::BIN];
    all.extend_from_slice(args);
    env.run_program("setsid", &all, vars)
}

/// A passphrase file in `keys/` holding `text` and a newline (dropped when read).
fn pass_file(env: &TestEnv, name: &str, text: &str) -> String {
    let p = env.keys_dir().join(name);
    fs::write(&p, format!("{text}\n")).unwrap();
    p.to_str().unwrap().to_owned()
}

/// `unlock --identity-file KEY --identity-passphrase-file FILE` with no terminal, then
/// `get` through the agent with no identity variable at all.
fn unlock_with_passphrase_file(env: &TestEnv, key: &Path, recipient: &str) {
    env.track_secret(PASS);
    env.run(&["init", "--recipient", recipient], "")
        .assert_code(0);
    env.store("pf.example", "u", "passphrase-file-secret-1");
    let pass = pass_file(env, "id-pass", PASS);
    let key = key.to_str().unwrap();
    let out = no_tty(
        env,
        &[
            "unlock",
            "--identity-file",
            key,
            "--identity-passphrase-file",
            &pass,
        ],
        &[],
    );
    out.assert_code(0);
    assert!(out.stdout_str().starts_with("Unlocked "), "{out}");
    let out = env.run(&["get"], "pf.example");
    out.assert_quiet_ok();
    assert!(
        out.stdout_str().contains("passphrase-file-secret-1"),
        "{out}"
    );
    env.run(&["lock"], "").assert_code(0);
}

#[test]
fn unlock_with_identity_passphrase_file_ssh_ed25519() {
    if !require_tool("ssh-keygen", "openssh-client") || !require_tool("setsid", "util-linux") {
        return;
    }
    let env = TestEnv::new();
    let (key, public) = ssh_keygen(&env, "ed25519", "id_ed25519", "me@host", PASS);
    unlock_with_passphrase_file(&env, &key, &public);
}

#[test]
fn unlock_with_identity_passphrase_file_ssh_rsa() {
    if !require_tool("ssh-keygen", "openssh-client") || !require_tool("setsid", "util-linux") {
        return;
    }
    let env = TestEnv::new();
    let (key, public) = ssh_keygen(&env, "rsa", "id_rsa", "me@host", PASS);
    unlock_with_passphrase_file(&env, &key, &public);
}

fn unlock_age_p_with_passphrase_file(armor: bool) {
    if !require_tool("age", "age")
        || !require_tool("script", "bsdutils")
        || !require_tool("setsid", "util-linux")
    {
        return;
    }
    let env = TestEnv::new();
    let (plain, recipient, _) = common::age_keygen(&env, "id.txt");
    let encrypted = age_p(&env, &plain, armor);
    fs::remove_file(&plain).unwrap();
    unlock_with_passphrase_file(&env, &encrypted, &recipient);
}

#[test]
fn unlock_with_identity_passphrase_file_age_p_binary() {
    unlock_age_p_with_passphrase_file(false);
}

#[test]
fn unlock_with_identity_passphrase_file_age_p_armored() {
    unlock_age_p_with_passphrase_file(true);
}

/// A wrong passphrase in the file: one try, one line on stderr naming the identity,
/// exit 1, neither passphrase printed, nothing unlocked. The same through
/// `LOCKBOX_IDENTITY_FILE` (an ambient source that applies but fails is the error).
#[test]
fn wrong_identity_passphrase_file_is_one_line_and_exit_1() {
    if !require_tool("ssh-keygen", "openssh-client") || !require_tool("setsid", "util-linux") {
        return;
    }
    let env = TestEnv::new();
    let (key, public) = ssh_keygen(&env, "ed25519", "id_ed25519", "me@host", PASS);
    env.track_secret(PASS);
    env.run(&["init", "--recipient", &public], "")
        .assert_code(0);
    env.store("pf.example", "u", "passphrase-file-secret-2");
    let wrong_text = "wrong passphrase text 5e1";
    env.track_secret(wrong_text);
    let wrong = pass_file(&env, "wrong-pass", wrong_text);
    let key = key.to_str().unwrap();
    for (args, vars) in [
        (
            vec![
                "unlock",
                "--identity-file",
                key,
                "--identity-passphrase-file",
                &wrong,
            ],
            vec![],
        ),
        (
            vec!["unlock", "--identity-passphrase-file", &wrong],
            vec![("LOCKBOX_IDENTITY_FILE", key)],
        ),
    ] {
        let out = no_tty(&env, &args, &vars);
        out.assert_code(1);
        assert_eq!(out.stdout_str(), "", "{out}");
        let err = out.stderr_str();
        assert_eq!(err.lines().count(), 1, "{out}");
        assert!(
            err.contains(&format!("the identity in {key}")) && err.contains("wrong passphrase"),
            "{out}"
        );
        assert!(!err.contains(wrong_text) && !err.contains(PASS), "{out}");
    }
    // Nothing was unlocked.
    let out = env.run(&["get"], "pf.example");
    out.assert_code(1);
    assert!(out.stdout_str().starts_with(common::LOCKED_PREFIX), "{out}");
    // A passphrase file that cannot be read names the flag and the identity.
    let missing = env.keys_dir().join("absent");
    let out = no_tty(
        &env,
        &[
            "unlock",
            "--identity-file",
            key,
            "--identity-passphrase-file",
            missing.to_str().unwrap(),
        ],
        &[],
    );
    out.assert_code(1);
    let err = out.stderr_str();
    assert!(
        err.contains("--identity-passphrase-file") && err.contains(key),
        "{out}"
    );
}

/// The flag with no identity source is a usage error (exit 2, one line that points at
/// --passphrase-file for the vault's own passphrase); with an identity that is not
/// encrypted it is harmless: never read (here it does not even exist).
#[test]
fn identity_passphrase_file_without_an_encrypted_identity() {
    let env = TestEnv::new();
    let (plain, recipient, _) = common::age_keygen(&env, "id.txt");
    env.run(&["init", "--recipient", &recipient], "")
        .assert_code(0);
    let absent = env.keys_dir().join("absent");
    let absent = absent.to_str().unwrap();
    let out = no_tty(&env, &["unlock", "--identity-passphrase-file", absent], &[]);
    out.assert_code(2);
    let err = out.stderr_str();
    assert_eq!(err.lines().count(), 1, "{out}");
    assert!(
        err.contains("no identity is given") && err.contains("--passphrase-file"),
        "{out}"
    );
    let plain = plain.to_str().unwrap();
    let out = no_tty(
        &env,
        &[
            "unlock",
            "--identity-file",
            plain,
            "--identity-passphrase-file",
            absent,
        ],
        &[],
    );
    out.assert_code(0);
    let out = no_tty(
        &env,
        &["unlock", "--identity-passphrase-file", absent],
        &[("LOCKBOX_IDENTITY_FILE", plain)],
    );
    out.assert_code(0);
    env.run(&["lock"], "").assert_code(0);
}

/// Every command for people that takes --identity-file takes the flag too: `export`,
/// `exec`, `recipients add`, `recipients remove`, `passwd` open the vault an encrypted
/// SSH key was made for, with no terminal.
#[test]
fn every_identity_file_command_takes_the_identity_passphrase_file() {
    if !require_tool("ssh-keygen", "openssh-client") || !require_tool("setsid", "util-linux") {
        return;
    }
    let env = TestEnv::new();
    let (key, public) = ssh_keygen(&env, "ed25519", "id_ed25519", "me@host", PASS);
    env.track_secret(PASS);
    env.run(&["init", "--recipient", &public], "")
        .assert_code(0);
    env.store("all.example", "u", "passphrase-file-secret-3");
    let pass = pass_file(&env, "id-pass", PASS);
    let key = key.to_str().unwrap();
    let with = ["--identity-file", key, "--identity-passphrase-file", &pass];
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&with);
        no_tty(&env, &all, &[("LOCKBOX_ARGON2_PARAMS", common::FAST_KDF)])
    };

    let out = run(&["export"]);
    out.assert_code(0);
    assert!(out.stdout_str().contains("all.example"), "{out}");

    // CMD's `get` answer goes to keys/ (the one place a secret may sit in a test).
    let got = env.keys_dir().join("got");
    let script = format!(
        "echo all.example | docker-credential-lockbox get > '{}'",
        got.display()
    );
    let mut exec: Vec<&str> = vec!["exec"];
    exec.extend_from_slice(&with);
    exec.extend_from_slice(&["--", "sh", "-c", &script]);
    let out = no_tty(&env, &exec, &[]);
    out.assert_code(0);
    let answer = fs::read_to_string(&got).unwrap();
    assert!(answer.contains("passphrase-file-secret-3"), "{answer}");

    let (_, other, _) = common::age_keygen(&env, "other.txt");
    run(&["recipients", "add", &other, "--label", "other"]).assert_code(0);
    run(&["recipients", "remove", "other"]).assert_code(0);

    let new_pass = pass_file(&env, "new-pass", "a new vault passphrase 3c9");
    env.track_secret("a new vault passphrase 3c9");
    run(&["passwd", "--new-passphrase-file", &new_pass]).assert_code(0);
    let out = env.run_env(
        &["get"],
        "all.example",
        &[("LOCKBOX_PASSPHRASE_FILE", &new_pass)],
    );
    out.assert_quiet_ok();
}
