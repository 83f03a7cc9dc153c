//! Hostile vault files against the real binary (issue 15 items 3 and 4): planted
//! files that once made every action spend minutes of Argon2id or hundreds of MiB
//! before refusing. Each child runs under an address-space limit (`ulimit -v`), so the
//! old behaviour cannot pass quietly: an allocation past the limit aborts the child,
//! which fails the test (deterministic, no timing involved), and a regression can never
//! run 1 GiB Argon2id passes on the shared machine.
use crate::common;

use common::{BIN, Out, RUN_LIMIT, TestEnv};
use serde_json::Value;
use std::process::Stdio;

/// Address space for one child, KiB. A debug build of the helper with a 64 MiB vault
/// in memory needs well under this; the bugs needed 222–816 MiB (and 1 GiB per
/// Argon2id pass).
const AS_LIMIT_KIB: u64 = 160 * 1024;

/// Runs the binary under `ulimit -v AS_LIMIT_KIB` with `stdin`.
fn run_limited(env: &TestEnv, args: &[&str], stdin: &str, vars: &[(&str, &str)]) -> Out {
    let script = format!("ulimit -v {AS_LIMIT_KIB} && exec \"$0\" \"$@\"");
    let mut full = vec!["-c", script.as_str(), BIN];
    full.extend_from_slice(args);
    let child = env
        .command("sh", &full, vars)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    env.finish(args, child, Some(stdin.as_bytes().to_vec()), RUN_LIMIT)
}

/// Refused with a message containing `says` (stdout for protocol actions, stderr for
/// commands for people), exit 1, and the file left as it was.
fn assert_refused(out: &Out, says: &str) {
    out.assert_code(1);
    let text = format!("{}{}", out.stdout_str(), out.stderr_str());
    assert!(text.contains("damaged"), "{out}");
    assert!(text.contains(says), "expected {says:?}: {out}");
}

fn every_action_refuses(env: &TestEnv, says: &str, vars: &[(&str, &str)]) {
    let before = env.vault_bytes();
    for (args, stdin) in [
        (&["list"][..], ""),
        (&["get"], "registry.example"),
        (
            &["store"],
            r#"{"ServerURL":"new.example","Username":"u","Secret":"s"}"#,
        ),
        (&["erase"], "registry.example"),
        (&["status"], ""),
    ] {
        assert_refused(&run_limited(env, args, stdin, vars), says);
    }
    assert_eq!(env.vault_bytes(), before, "a refused vault was rewritten");
}

/// A 64 MiB vault of 4.5 M `"k":["",""]` entries: serde took each as an entry in the
/// array form and built the whole map (816 MiB, 3–4 s) before the entry bound.
#[test]
fn regress_memory_amplification_4m_array_entries() {
    let env = TestEnv::new();
    env.init_passphrase();
    let v = env.vault_json();
    let head = format!(
        "{{\"lockbox\":1,\"public_key\":{},\"slots\":{},\"slots_mac\":{},\"entries\":{{",
        v["public_key"], v["slots"], v["slots_mac"]
    );
    let mut file = head.into_bytes();
    let mut i = 0u64;
    while file.len() < (64 << 20) - 64 {
        if i > 0 {
            file.push(b',');
        }
        file.extend_from_slice(format!("\"{i:x}\":[\"\",\"\"]").as_bytes());
        i += 1;
    }
    file.extend_from_slice(b"}}");
    assert!(i > 4_000_000, "{i} entries");
    env.write_vault(&file);
    every_action_refuses(&env, "not a lockbox vault", &[]);
}

/// The object form of the same: 1.5 M distinct entries in 64 MiB. The bound is now
/// counted while reading, so the parse stops at the 10 001st entry.
#[test]
fn regress_memory_amplification_object_entries_stop_at_the_bound() {
    let env = TestEnv::new();
    env.init_passphrase();
    let v = env.vault_json();
    let head = format!(
        "{{\"lockbox\":1,\"public_key\":{},\"slots\":{},\"slots_mac\":{},\"entries\":{{",
        v["public_key"], v["slots"], v["slots_mac"]
    );
    let mut file = head.into_bytes();
    let mut i = 0u64;
    while file.len() < (64 << 20) - 64 {
        if i > 0 {
            file.push(b',');
        }
        file.extend_from_slice(
            format!("\"{i:08x}\":{{\"username\":\"u\",\"secret\":\"\"}}").as_bytes(),
        );
        i += 1;
    }
    file.extend_from_slice(b"}}");
    assert!(i > 1_000_000, "{i} entries");
    env.write_vault(&file);
    every_action_refuses(&env, "more than 10000 entries", &[]);
}

/// 62 planted passphrase slots at m = 1 GiB, t = 2: a passphrase attempt tried every
/// one before the slots MAC could be checked, 166 s for each `get` with
/// `LOCKBOX_PASSPHRASE_FILE`, `unlock` and `status`. A vault has at most one
/// passphrase slot; more are refused when the file is parsed, before any Argon2id.
#[test]
fn regress_62_passphrase_slots_refused_at_parse() {
    let env = TestEnv::new();
    let pass = env.init_passphrase();
    env.store("registry.example", "u", "planted-slots-secret");
    let mut v = env.vault_json();
    let mut slot = v["slots"][0].clone();
    slot["m_cost_kib"] = Value::from(1u32 << 20);
    slot["t_cost"] = Value::from(2);
    v["slots"] = Value::Array(vec![slot; 62]);
    env.write_vault(&serde_json::to_vec(&v).unwrap());
    let pass = pass.to_str().unwrap();
    let vars = [("LOCKBOX_PASSPHRASE_FILE", pass)];
    every_action_refuses(&env, "more than one passphrase slot", &vars);
    let out = run_limited(&env, &["unlock", "--passphrase-file", pass], "", &[]);
    assert!(!out.status.success(), "{out}");
    assert!(
        out.stderr_str().contains("more than one passphrase slot"),
        "{out}"
    );
    // Two slots are one too many as well, even at the cheapest cost.
    let env = TestEnv::new();
    env.init_passphrase();
    let mut v = env.vault_json();
    let slot = v["slots"][0].clone();
    v["slots"] = Value::Array(vec![slot; 2]);
    env.write_vault(&serde_json::to_vec(&v).unwrap());
    every_action_refuses(&env, "more than one passphrase slot", &vars);
}

/// The same entry key twice: a first-match scan and a last-wins map would disagree
/// about which secret is meant, so the file is refused (a tightening within v1).
#[test]
fn regress_duplicate_entry_keys_refused() {
    let env = TestEnv::new();
    env.init_passphrase();
    env.store("registry.example", "u", "duplicate-key-secret");
    let text = String::from_utf8(env.vault_bytes()).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("\"registry.example\""))
        .expect("one line per entry")
        .to_owned();
    env.write_vault(text.replace(&line, &format!("{line},\n{line}")).as_bytes());
    every_action_refuses(&env, "two entries have the same server URL", &[]);
}
