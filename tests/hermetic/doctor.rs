//! `doctor` through the real binary: a healthy set-up is all `ok` (exit 0); each
//! problem is its finding with the right level and a fix; a locked vault is a warning
//! (exit 0); a missing helper on PATH is an error; sudo's `secure_path` is checked, or
//! said to be uncheckable as a user who cannot read sudoers; no secret from config.json
//! or `DOCKER_AUTH_CONFIG` is ever printed.
use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use common::manage::{BIN, Env, Run, auth, run};
use serde_json::Value;

/// `doctor --json --sudoers SUDOERS` with extra variables.
fn doctor(env: &Env, sudoers: &Path, vars: &[(&str, &Path)]) -> (Run, Value) {
    let r = env.lockbox_with(
        &["doctor", "--json", "--sudoers", sudoers.to_str().unwrap()],
        vars,
        b"",
    );
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
    (r, v)
}

/// The findings of `check`, as (level, what, fix).
fn findings(v: &Value, check: &str) -> Vec<(String, String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .map(|f| {
            (
                f["level"].as_str().unwrap().to_owned(),
                f["what"].as_str().unwrap().to_owned(),
                f["fix"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn level(v: &Value, check: &str) -> String {
    let f = findings(v, check);
    assert_eq!(f.len(), 1, "one {check} finding: {v:#}");
    f[0].0.clone()
}

/// A sudoers file whose secure_path holds the test's bin/ (so the helper is found).
fn sudoers_with(env: &Env, dirs: &str) -> std::path::PathBuf {
    let p = env.path("keys/sudoers");
    fs::write(
        &p,
        format!("Defaults\tenv_reset\nDefaults\tsecure_path=\"{dirs}\"\nroot ALL=(ALL:ALL) ALL\n"),
    )
    .unwrap();
    p
}

#[test]
fn a_healthy_setup_is_all_ok() {
    let (env, owner) = Env::with_vault();
    env.write_config(
        "{\n\t\"auths\": {\n\t\t\"reg.example\": {}\n\t},\n\t\"credsStore\": \"lockbox\"\n}",
    );
    let sudoers = sudoers_with(&env, &format!("/usr/sbin:{}", env.bin_dir().display()));
    // The containers tools set up as `import` does (a fake skopeo on PATH, so the
    // check runs whatever the host has), and only this world's bin/ on PATH, so a
    // copy of the helper installed on the host is not this test's business.
    fake_tool(&env, "skopeo");
    let drop_in = env.path("home/.config/containers/registries.conf.d/50-lockbox.conf");
    fs::create_dir_all(drop_in.parent().unwrap()).unwrap();
    fs::write(&drop_in, "credential-helpers = [\"lockbox\"]\n").unwrap();
    let (r, v) = doctor(
        &env,
        &sudoers,
        &[
            ("LOCKBOX_IDENTITY_FILE", &owner.file),
            ("PATH", &env.bin_dir()),
        ],
    );
    assert_eq!(r.code(), 0, "{r}");
    for check in [
        "creds-store",
        "plaintext-auths",
        "helper-on-path",
        "sudo-secure-path",
        "containers",
        "vault",
        "unlocked",
    ] {
        assert_eq!(level(&v, check), "ok", "{check}: {v:#}");
    }
    assert_eq!(v["errors"], 0);
    assert_eq!(v["warnings"], 0);
    // The human form says the same, with a summary line.
    let human = env.lockbox_with(
        &["doctor", "--sudoers", sudoers.to_str().unwrap()],
        &[
            ("LOCKBOX_IDENTITY_FILE", &owner.file),
            ("PATH", &env.bin_dir()),
        ],
        b"",
    );
    human.ok().prints(&[
        "ok        credsStore is \"lockbox\"",
        "0 errors, 0 warnings",
    ]);
}

#[test]
fn every_problem_is_a_finding_with_a_fix_and_no_secret_is_printed() {
    let (env, _owner) = Env::with_vault();
    let secret = "doctor-plain-Secret-9931";
    let env_secret = "doctor-env-Secret-5150";
    env.write_config(
        &serde_json::json!({
            "auths": {"reg.example:5000": {"auth": auth("dora", secret)}, "ok.example": {}},
            "credsStore": "pass",
            "credHelpers": {"vault.example": "vault", "mine.example": "lockbox"},
        })
        .to_string(),
    );
    fs::set_permissions(env.vault_path(), fs::Permissions::from_mode(0o644)).unwrap();
    let auth_config = env.key_file(
        "auth-config",
        &serde_json::json!({"auths": {"ci.example": {"auth": auth("ci", env_secret)}}}).to_string(),
    );
    let sudoers = sudoers_with(&env, "/usr/local/sbin:/usr/sbin:/sbin");
    // DOCKER_AUTH_CONFIG holds JSON, so it is passed through a small wrapper.
    let mut c = env.command("sh");
    c.args([
        "-c",
        "DOCKER_AUTH_CONFIG=$(cat \"$1\") exec \"$0\" doctor --json --sudoers \"$2\"",
        BIN,
        auth_config.to_str().unwrap(),
        sudoers.to_str().unwrap(),
    ]);
    let r = run(c, b"");
    assert_eq!(r.code(), 1, "errors exit 1: {r}");
    for text in [&r.stdout, &r.stderr] {
        for s in [secret, env_secret] {
            assert!(!text.contains(s), "a secret was printed: {r}");
        }
    }
    let v: Value = serde_json::from_str(&r.stdout).unwrap();

    let store = findings(&v, "creds-store");
    assert_eq!(store[0].0, "error");
    assert!(store[0].1.contains("\"pass\""), "{store:?}");
    assert!(
        store[0].2.contains("import --from-helper pass"),
        "{store:?}"
    );

    let helpers = findings(&v, "cred-helpers");
    assert_eq!(
        helpers.len(),
        1,
        "lockbox's own credHelpers entry is fine: {helpers:?}"
    );
    assert_eq!(helpers[0].0, "warning");
    assert!(helpers[0].1.contains("vault.example"), "{helpers:?}");

    let plain = findings(&v, "plaintext-auths");
    assert_eq!(plain[0].0, "error");
    assert!(plain[0].1.contains("reg.example:5000") && !plain[0].1.contains("ok.example"));
    assert_eq!(plain[0].2, "docker-credential-lockbox import");

    let dac = findings(&v, "docker-auth-config");
    assert_eq!(dac[0].0, "warning");
    assert!(dac[0].1.contains("ci.example"), "{dac:?}");

    let modes = findings(&v, "vault-modes");
    assert_eq!(modes[0].0, "error");
    assert!(modes[0].1.contains("0644"), "{modes:?}");
    assert!(modes[0].2.starts_with("chmod 600 "), "{modes:?}");

    let sudo = findings(&v, "sudo-secure-path");
    assert_eq!(sudo[0].0, "warning", "{sudo:?}");

    // No key anywhere: locked is a warning.
    assert_eq!(level(&v, "unlocked"), "warning");
    assert_eq!(v["errors"], 3, "{v:#}");
}

#[test]
fn locked_is_a_warning_and_unlocked_says_for_how_long() {
    let (env, owner) = Env::with_vault();
    env.write_config("{\"credsStore\": \"lockbox\"}");
    let sudoers = env.path("keys/no-sudoers");
    let (r, v) = doctor(&env, &sudoers, &[]);
    assert_eq!(r.code(), 0, "warnings only: {r}");
    let unlocked = findings(&v, "unlocked");
    assert_eq!(unlocked[0].0, "warning");
    assert!(
        unlocked[0].1.contains("no agent holds its key"),
        "{unlocked:?}"
    );
    assert!(unlocked[0].2.contains("unlock"), "{unlocked:?}");

    env.lockbox(&[
        "unlock",
        "--identity-file",
        owner.file.to_str().unwrap(),
        "--timeout",
        "2h",
    ])
    .ok();
    let (r, v) = doctor(&env, &sudoers, &[]);
    env.lockbox(&["lock", "--all"]).ok();
    assert_eq!(r.code(), 0, "{r}");
    let unlocked = findings(&v, "unlocked");
    assert_eq!(unlocked[0].0, "ok", "{unlocked:?}");
    assert!(
        unlocked[0].1.starts_with("unlocked by the agent (pid ") && unlocked[0].1.contains(" for "),
        "{unlocked:?}"
    );
}

/// An executable `name` in the world's bin/ (a stand-in for a tool doctor looks for).
fn fake_tool(env: &Env, name: &str) {
    let p = env.bin_dir().join(name);
    fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Issue 24, item 6: skopeo ignores credsStore; with skopeo (or podman, buildah) on
/// PATH and no registries.conf naming lockbox, doctor warns and names `import`, which
/// writes the drop-in; then the check is ok.
#[test]
fn containers_tools_not_using_lockbox_are_a_warning_that_import_fixes() {
    let (env, _owner) = Env::with_vault();
    env.write_config("{\"credsStore\": \"lockbox\"}");
    fake_tool(&env, "podman");
    let only_bin: &[(&str, &Path)] = &[("PATH", &env.bin_dir())];
    let (_, v) = doctor(&env, Path::new("/nonexistent"), only_bin);
    let f = findings(&v, "containers");
    assert_eq!(f.len(), 1, "{v:#}");
    assert_eq!(f[0].0, "warning");
    assert!(
        f[0].1.contains("podman installed and not using lockbox"),
        "{f:?}"
    );
    assert!(f[0].2.contains("docker-credential-lockbox import"), "{f:?}");
    env.lockbox_with(&["import"], only_bin, b"").ok();
    let (_, v) = doctor(&env, Path::new("/nonexistent"), only_bin);
    assert_eq!(level(&v, "containers"), "ok", "{v:#}");
    // Without any of the tools and without the drop-in there is nothing to say.
    let env = Env::new();
    let (_, v) = doctor(&env, Path::new("/nonexistent"), &[("PATH", &env.bin_dir())]);
    assert!(findings(&v, "containers").is_empty(), "{v:#}");
}

/// Issue 24, item 8: a `cargo install` copy first on PATH and the package's on sudo's
/// secure_path, of different versions, are flagged with both versions; copies of the
/// same version are fine.
#[test]
fn copies_of_the_helper_of_different_versions_are_flagged() {
    let env = Env::new();
    env.write_config("{\"credsStore\": \"lockbox\"}");
    let old = env.path("old-bin");
    fs::create_dir_all(&old).unwrap();
    let copy = old.join("docker-credential-lockbox");
    fs::write(
        &copy,
        "#!/bin/sh\n[ \"$1\" = version ] && echo 'docker-credential-lockbox (docker-credential-lockbox) v0.0.1'\n",
    )
    .unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    let new_version = format!("v{}", env!("CARGO_PKG_VERSION"));
    let path = std::env::join_paths([old.clone(), env.bin_dir()]).unwrap();
    let check = |vars: &[(&str, &Path)], sudoers: &Path| {
        let (_, v) = doctor(&env, sudoers, vars);
        let f = findings(&v, "helper-copies");
        assert_eq!(f.len(), 1, "{v:#}");
        f[0].clone()
    };
    // Both on PATH, the old one first.
    let (level, what, fix) = check(&[("PATH", Path::new(&path))], Path::new("/nonexistent"));
    assert_eq!(level, "warning");
    assert!(what.contains("different versions"), "{what}");
    assert!(
        what.contains(&format!(
            "{} (docker-credential-lockbox (docker-credential-lockbox) v0.0.1, on PATH)",
            copy.display()
        )),
        "{what}"
    );
    assert!(what.contains(&new_version), "{what}");
    assert!(fix.contains("cargo uninstall"), "{fix}");
    // One on PATH, the other only on sudo's secure_path.
    let sudoers = sudoers_with(&env, old.to_str().unwrap());
    let (level, what, _) = check(&[("PATH", &env.bin_dir())], &sudoers);
    assert_eq!(level, "warning");
    assert!(what.contains("on sudo's secure_path"), "{what}");
    // A second copy of the same build is no problem.
    fs::copy(env!("CARGO_BIN_EXE_docker-credential-lockbox"), &copy).unwrap();
    let (level, what, _) = check(&[("PATH", Path::new(&path))], Path::new("/nonexistent"));
    assert_eq!(level, "ok", "{what}");
    // A single copy: no finding at all.
    let (_, v) = doctor(&env, Path::new("/nonexistent"), &[("PATH", &env.bin_dir())]);
    assert!(findings(&v, "helper-copies").is_empty(), "{v:#}");
}

#[test]
fn no_helper_on_path_and_no_vault_are_errors() {
    let env = Env::new();
    env.write_config("{\"credsStore\": \"lockbox\"}");
    let mut c = env.command(BIN);
    c.args(["doctor", "--json", "--sudoers", "/nonexistent/sudoers"])
        .env("PATH", "/usr/bin:/bin");
    let r = run(c, b"");
    assert_eq!(r.code(), 1, "{r}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(level(&v, "helper-on-path"), "error");
    assert_eq!(level(&v, "vault"), "error");
    assert!(findings(&v, "vault")[0].2.contains("init"));

    // LOCKBOX_VAULT naming a missing file: the finding says it may be a typo.
    let missing = env.path("typo/vault.json");
    let (r, v) = doctor(
        &env,
        Path::new("/nonexistent"),
        &[("LOCKBOX_VAULT", &missing)],
    );
    assert_eq!(r.code(), 1);
    assert!(
        findings(&v, "vault")[0].2.contains("LOCKBOX_VAULT"),
        "{v:#}"
    );
}

/// As a user who cannot read sudoers, the check says so instead of guessing.
#[test]
fn unreadable_sudoers_is_unchecked_not_ok() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let sudoers = dir.path().join("sudoers");
    fs::write(&sudoers, "Defaults secure_path=\"/usr/bin\"\n").unwrap();
    fs::set_permissions(&sudoers, fs::Permissions::from_mode(0o000)).unwrap();
    let mut c = env.command(BIN);
    c.args(["doctor", "--json", "--sudoers", sudoers.to_str().unwrap()]);
    if rustix::process::getuid().is_root() {
        // Root reads anything: run as nobody (the rest of its checks fail on the
        // root-owned temp dirs, which is not what this test looks at).
        c.uid(65534).gid(65534);
    }
    let r = run(c, b"");
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
    let sudo = findings(&v, "sudo-secure-path");
    assert_eq!(sudo[0].0, "unchecked", "{sudo:?}");
    assert!(
        sudo[0].1.contains("cannot be checked as this user"),
        "{sudo:?}"
    );
}

/// credHelpers naming lockbox without credsStore: a warning, not an error.
#[test]
fn cred_helpers_for_lockbox_without_creds_store_is_a_warning() {
    let (env, owner) = Env::with_vault();
    env.write_config("{\"credHelpers\": {\"reg.example\": \"lockbox\"}}");
    let (r, v) = doctor(
        &env,
        Path::new("/nonexistent"),
        &[("LOCKBOX_IDENTITY_FILE", &owner.file)],
    );
    assert_eq!(r.code(), 0, "{r}");
    assert_eq!(level(&v, "creds-store"), "warning");
    assert!(findings(&v, "cred-helpers").is_empty());
}
