//! `get` of a sealed source without an agent (`LOCKBOX_IDENTITY_FILE`, as CI runs):
//! the answer is minted and byte-exact, the `<vault>.tokens` cache makes one mint for
//! many `get`s (in a row and at once), a token is refreshed before it goes stale, a
//! failed mint is never "not found", and a planted or altered source is refused with
//! nothing run. The sources are `exec` scripts that count their runs.
use std::path::Path;

use crate::common::manage::{Env, Identity, Run};
use crate::common::sources::{add_source, exec_params, runs, script};

const REG: &str = "minted.example";

fn get(env: &Env, owner: &Identity, server: &str) -> Run {
    env.lockbox_with(
        &["get"],
        &[("LOCKBOX_IDENTITY_FILE", &owner.file)],
        server.as_bytes(),
    )
}

/// A vault with an `exec` source for [`REG`] whose script answers `tok-N` (N its run
/// number) valid for `life` seconds; the script's run counter.
fn with_exec(life: u64, extra: &str) -> (Env, Identity, std::path::PathBuf) {
    let (env, owner) = Env::with_vault();
    let (program, counter) = script(
        &env,
        "mint",
        &format!(
            r#"{extra}
n=$(wc -l < '{c}' | tr -d ' ')
exp=$(date -u -d "@$(( $(date +%s) + {life} ))" +%Y-%m-%dT%H:%M:%SZ)
printf '{{"Username":"ci","Secret":"tok-%s","ExpiresAt":"%s"}}' "$n" "$exp""#,
            c = env.path("mint.runs").display()
        ),
    );
    add_source(
        &env,
        &owner,
        REG,
        "<minted>",
        "exec",
        &exec_params(&program, &[]),
        "",
    );
    (env, owner, counter)
}

#[test]
fn a_source_answers_byte_exact_and_twenty_gets_in_a_row_mint_once() {
    let (env, owner, counter) = with_exec(3600, "");
    let first = get(&env, &owner, REG);
    first.ok();
    assert_eq!(
        first.stdout,
        format!("{{\"ServerURL\":\"{REG}\",\"Username\":\"ci\",\"Secret\":\"tok-1\"}}\n"),
        "{first}"
    );
    for _ in 0..19 {
        assert_eq!(get(&env, &owner, REG).stdout, first.stdout);
    }
    assert_eq!(runs(&counter), 1);
    // The cache is sealed: no token in the clear anywhere in the world.
    let cache = Path::new(&format!("{}.tokens", env.vault_path().display())).to_owned();
    assert!(cache.exists(), "{:?}", env.world().files());
    env.assert_no_secret(&[("ci", "tok-1")]);
    // `list` shows the source with its stored username.
    assert_eq!(env.list().get(REG).map(String::as_str), Some("<minted>"));
}

#[test]
fn gets_at_once_without_an_agent_wait_for_one_mint() {
    let (env, owner, counter) = with_exec(3600, "sleep 1");
    let outs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| s.spawn(|| get(&env, &owner, REG)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &outs {
        r.ok();
        assert!(r.stdout.contains(r#""Secret":"tok-1""#), "{r}");
    }
    assert_eq!(runs(&counter), 1);
}

#[test]
fn a_token_is_minted_again_before_it_goes_stale_never_served_after() {
    // Valid for 8 s: served for its first 6, minted anew in its last 2.
    let (env, owner, counter) = with_exec(8, "");
    assert!(get(&env, &owner, REG).stdout.contains("tok-1"));
    std::thread::sleep(std::time::Duration::from_secs(7));
    let later = get(&env, &owner, REG);
    assert!(later.stdout.contains("tok-2"), "{later}");
    assert_eq!(runs(&counter), 2);
}

#[test]
fn a_failed_mint_is_one_line_and_never_not_found() {
    let (env, owner, counter) = with_exec(3600, "echo 'the vendor CLI is logged out' >&2; exit 3");
    let r = get(&env, &owner, REG);
    assert_eq!(r.code(), 1, "{r}");
    assert!(!r.stdout.contains("credentials not found"), "{r}");
    r.says(&[
        "exec source for minted.example",
        "3",
        "the vendor CLI is logged out",
    ]);
    assert_eq!(r.stdout.trim().lines().count(), 1, "{r}");
    assert_eq!(runs(&counter), 1);
}

/// The vault file with the source's definition edited by `edit`.
fn edit_source(env: &Env, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v = env.vault_json();
    edit(&mut v["entries"][REG]["source"]);
    std::fs::write(env.vault_path(), serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn an_altered_source_is_refused_and_nothing_runs() {
    let (env, owner, counter) = with_exec(3600, "");
    let (evil, evil_runs) = script(&env, "evil", "echo '{}'");
    let argv = serde_json::to_string(&[evil.display().to_string()]).unwrap();
    edit_source(&env, |s| s["params"]["command"] = argv.into());
    let r = get(&env, &owner, REG);
    assert_eq!(r.code(), 1, "{r}");
    r.says(&["the source for minted.example was not made with this vault's key"]);
    assert_eq!((runs(&counter), runs(&evil_runs)), (0, 0));
}

#[test]
fn a_planted_source_is_refused_and_nothing_runs() {
    // Someone who can write the file plants a source: they have the public key, so
    // the sealed secret opens, but they cannot make its MAC.
    let (env, owner) = Env::with_vault();
    let (evil, evil_runs) = script(&env, "evil", "echo '{}'");
    env.store(REG, "u", "placeholder");
    let argv = serde_json::to_string(&[evil.display().to_string()]).unwrap();
    let mut v = env.vault_json();
    v["lockbox"] = 4.into();
    v["entries"][REG]["source"] = serde_json::json!({
        "kind": "exec",
        "params": {"command": argv},
        "mac": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    });
    std::fs::write(env.vault_path(), serde_json::to_vec(&v).unwrap()).unwrap();
    let r = get(&env, &owner, REG);
    assert_eq!(r.code(), 1, "{r}");
    r.says(&[
        "was not made with this vault's key",
        "nothing was sent and no command run",
    ]);
    assert_eq!(runs(&evil_runs), 0);
}

#[test]
fn store_and_erase_leave_a_source_alone() {
    let (env, owner, _) = with_exec(3600, "");
    let store = env.lockbox_with(
        &["store"],
        &[],
        br#"{"ServerURL":"minted.example","Username":"u","Secret":"s"}"#,
    );
    store
        .fails()
        .prints(&["minted.example is a sealed source", "lockbox source remove"]);
    let erase = env.lockbox_with(&["erase"], &[], REG.as_bytes());
    erase.fails().prints(&["minted.example is a sealed source"]);
    assert!(get(&env, &owner, REG).stdout.contains("tok-1"));
}

#[test]
fn unimport_never_writes_a_source_secret_out_as_a_password() {
    let (env, owner, _) = with_exec(3600, "");
    let (program, _) = script(&env, "other", "echo '{}'");
    add_source(
        &env,
        &owner,
        "second.example",
        "<minted>",
        "exec",
        &exec_params(&program, &[]),
        "sealed-cloud-key",
    );
    env.store("static.example", "u", "static-secret");
    let r = env.lockbox_with(
        &["unimport"],
        &[("LOCKBOX_IDENTITY_FILE", &owner.file)],
        b"",
    );
    r.ok()
        .says(&["not moved: minted.example is a sealed source"]);
    let config = env.config_text();
    assert!(config.contains("static.example"), "{config}");
    assert!(!config.contains("minted.example"), "{config}");
    assert!(!config.contains("second.example"), "{config}");
    env.assert_no_secret(&[("<minted>", "sealed-cloud-key")]);
}

#[test]
fn a_source_stripped_of_its_definition_never_answers_its_cloud_secret() {
    // Deleting the `source` member leaves an entry that looks static; its sealed
    // secret is a source's and never opens as a registry credential.
    let (env, owner) = Env::with_vault();
    let (program, runs_file) = script(&env, "mint", "echo '{}'");
    let params = exec_params(&program, &[]);
    add_source(
        &env,
        &owner,
        REG,
        "AWS",
        "exec",
        &params,
        "cloud-secret-key",
    );
    let mut v = env.vault_json();
    v["entries"][REG].as_object_mut().unwrap().remove("source");
    v["lockbox"] = 1.into();
    std::fs::write(env.vault_path(), serde_json::to_vec(&v).unwrap()).unwrap();
    let r = get(&env, &owner, REG);
    assert_eq!(r.code(), 1, "{r}");
    assert!(!r.stdout.contains("cloud-secret-key"), "{r}");
    r.says(&["does not decrypt"]);
    let export = env.lockbox_with(&["export"], &[("LOCKBOX_IDENTITY_FILE", &owner.file)], b"");
    assert!(!export.stdout.contains("cloud-secret-key"), "{export}");
    assert_eq!(runs(&runs_file), 0);
}

#[test]
fn an_entry_planted_under_another_spelling_does_not_answer_for_a_source() {
    let (env, owner, _) = with_exec(3600, "");
    // Written while the source exists: `store` takes another spelling as its own key.
    env.store("https://minted.example", "planted", "attacker-password");
    for asked in [
        "https://minted.example",
        "minted.example",
        "http://minted.example",
    ] {
        let r = get(&env, &owner, asked);
        assert!(r.stdout.contains(r#""Secret":"tok-1""#), "{asked}: {r}");
    }
}

#[test]
fn a_source_runs_only_in_a_vault_whose_key_is_trusted_here() {
    let (env, owner, counter) = with_exec(3600, "");
    let trust_file = env.path("home/.config/lockbox/trusted-vault-keys");
    let public = env.public_key();
    // `init` trusted it.
    assert!(
        std::fs::read_to_string(&trust_file)
            .unwrap()
            .contains(&public)
    );
    std::fs::remove_file(&trust_file).unwrap();
    let r = get(&env, &owner, REG);
    assert_eq!(r.code(), 1, "{r}");
    r.says(&["is not trusted to run sources on this machine", &public]);
    assert!(!r.stdout.contains("credentials not found"), "{r}");
    assert_eq!(runs(&counter), 0);
    // The variable (CI), then the file again (`source trust` writes it).
    let pinned = env.lockbox_with(
        &["get"],
        &[
            ("LOCKBOX_IDENTITY_FILE", &owner.file),
            ("LOCKBOX_TRUSTED_VAULT_KEYS", Path::new(&public)),
        ],
        REG.as_bytes(),
    );
    assert!(pinned.stdout.contains("tok-1"), "{pinned}");
    std::fs::write(&trust_file, format!("{public}\n")).unwrap();
    assert!(get(&env, &owner, REG).stdout.contains("tok-1"));
}

#[test]
fn a_whole_forged_vault_cannot_run_its_source() {
    // THREAT_MODEL E: new key, a slot wrapping it to the owner's public recipient, a
    // matching slots MAC and a source MACed with it — consistent, and opened by the
    // owner's identity. Its key is not the one trusted here.
    use lockbox::vault::Vault;
    use lockbox::vault::crypto::{Recipient, VaultKey};
    let (env, owner) = Env::with_vault();
    let (evil, evil_runs) = script(&env, "evil", "echo '{}'");
    let forged = VaultKey::generate();
    let to_owner = Recipient::parse(&owner.recipient).unwrap();
    let slot = Vault::age_slot(&forged, &to_owner, "owner".into()).unwrap();
    let mut vault = Vault::new(&forged, vec![slot]);
    let params = exec_params(&evil, &[]).into_iter().collect();
    let secret = age::secrecy::SecretString::from(String::new());
    vault
        .add_source(&forged, REG, "<minted>", "exec", params, &secret)
        .unwrap();
    std::fs::write(env.vault_path(), vault.to_file_bytes().unwrap()).unwrap();
    let r = get(&env, &owner, REG);
    assert_eq!(r.code(), 1, "{r}");
    r.says(&["is not trusted to run sources on this machine"]);
    assert_eq!(runs(&evil_runs), 0);
}
