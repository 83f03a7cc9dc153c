//! `import`, `export`, `passwd` and `recipients` end to end, on the real binary, each
//! test in its own temporary HOME / DOCKER_CONFIG / XDG_RUNTIME_DIR with a cleared
//! environment (harness: `tests/common/manage.rs`).
//!
//! Import runs on fixture configs as Docker writes them (tab indent, no final newline,
//! `<` `>` `&` as `\u` escapes) and as people write them (other indents, unknown keys,
//! `username`/`password` fields), and checks the rewritten file byte for byte, the
//! vault's contents (opened with an age identity), that no form of any secret is left
//! in any file, and that no temporary file is left. The real Docker CLI then reads the
//! result and `docker logout` erases from the vault.
//!
//! Tools: `docker` (the Docker CLI, no daemon), `ssh-keygen` (openssh-client),
//! `docker-credential-pass` (golang-docker-credential-helpers) with `pass` (pass) and
//! `gpg`/`gpgconf` (gnupg); `scripts/test.sh` unpacks pass and docker-credential-pass
//! into `target/test-tools/` (never system-wide), first on the tests' PATH. A test whose tool is missing prints `skipped: …` on stderr
//! and passes, or fails naming the Debian package when `CI` is set.
use crate::common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use common::manage::{Env, auth, decode_auth, inode, need};

/// A config.json exactly as Docker writes it (Go's `json.MarshalIndent(…, "", "\t")`:
/// tabs, `\u003c`-style escapes, no final newline), with every kind of entry.
const DOCKER_STYLE_BEFORE: &str = "{
\t\"auths\": {
\t\t\"colon.example\": {
\t\t\t\"auth\": \"ZGVwbG95OnBhOnNzOncwcmQ6d2l0aC1jb2xvbnMtOTE=\"
\t\t},
\t\t\"https://index.docker.io/v1/\": {
\t\t\t\"auth\": \"asO8cmdlbjpww6Rzc3fDtnJkLcO8bsOvY8O4ZMOpLfCflJEtNDI=\"
\t\t},
\t\t\"marker.example\": {},
\t\t\"token.example\": {
\t\t\t\"identitytoken\": \"eyJhbGciOiJSUzI1NiJ9.tok\\u0026en-77\"
\t\t}
\t},
\t\"HttpHeaders\": {
\t\t\"User-Agent\": \"ci \\u003cbot\\u003e\"
\t},
\t\"psFormat\": \"table {{.ID}}\\t{{.Names}}\",
\t\"currentContext\": \"default\"
}";

/// The same file after `import`: entries emptied, `credsStore` added, nothing else
/// changed by a single byte.
const DOCKER_STYLE_AFTER: &str = "{
\t\"auths\": {
\t\t\"colon.example\": {},
\t\t\"https://index.docker.io/v1/\": {},
\t\t\"marker.example\": {},
\t\t\"token.example\": {}
\t},
\t\"HttpHeaders\": {
\t\t\"User-Agent\": \"ci \\u003cbot\\u003e\"
\t},
\t\"psFormat\": \"table {{.ID}}\\t{{.Names}}\",
\t\"currentContext\": \"default\",
\t\"credsStore\": \"lockbox\"
}";

/// The credentials in [`DOCKER_STYLE_BEFORE`]: a password with colons (split at the
/// first), unicode in user and password, an identity token with `&` in it.
const COLON: (&str, &str, &str) = ("colon.example", "deploy", "pa:ss:w0rd:with-colons-91");
const HUB: (&str, &str, &str) = (
    "https://index.docker.io/v1/",
    "jürgen",
    "pässwörd-ünïcødé-🔑-42",
);
const TOKEN: (&str, &str, &str) = ("token.example", "<token>", "eyJhbGciOiJSUzI1NiJ9.tok&en-77");

/// The fixture's `auth` values really are the credentials above.
#[test]
fn fixture_matches_its_credentials() {
    assert!(DOCKER_STYLE_BEFORE.contains(&auth(COLON.1, COLON.2)));
    assert!(DOCKER_STYLE_BEFORE.contains(&auth(HUB.1, HUB.2)));
}

#[test]
fn import_of_a_docker_written_config_changes_only_the_entries() {
    let (env, owner) = Env::with_vault();
    env.write_config(DOCKER_STYLE_BEFORE);

    let r = env.lockbox(&["import"]);
    r.ok().prints(&[
        "Imported 3 credentials",
        "import colon.example as deploy",
        "import https://index.docker.io/v1/ as jürgen",
        "import token.example as <token>",
        "credsStore is lockbox",
    ]);
    assert_eq!(env.config_text(), DOCKER_STYLE_AFTER);
    let mode = fs::metadata(env.config_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the file's mode is kept");

    // Every secret is in the vault and opens with the identity.
    for (server, user, secret) in [COLON, HUB, TOKEN] {
        assert_eq!(
            env.get_with(server, &owner.file),
            Ok((user.to_owned(), secret.to_owned())),
            "{server}"
        );
    }
    assert_eq!(env.list().len(), 3, "the {{}} marker is not an entry");
    // Podman and skopeo ask for docker.io: the normalized lookup finds Hub's entry.
    assert_eq!(
        env.get_with("docker.io", &owner.file),
        Ok((HUB.1.to_owned(), HUB.2.to_owned()))
    );

    env.assert_no_secret(&[(COLON.1, COLON.2), (HUB.1, HUB.2), ("", TOKEN.2)]);
    env.assert_docker_dir_is(&[]);

    // Idempotent: a second import finds nothing and writes nothing.
    let (config_inode, vault) = (inode(&env.config_path()), env.vault_bytes());
    env.lockbox(&["import"]).ok().prints(&["Nothing to do"]);
    assert_eq!(env.config_text(), DOCKER_STYLE_AFTER);
    assert_eq!(
        inode(&env.config_path()),
        config_inode,
        "config.json rewritten"
    );
    assert_eq!(env.vault_bytes(), vault, "vault rewritten");
}

/// With a key at hand (here LOCKBOX_IDENTITY) import also decrypts what it wrote
/// before it touches config.json.
#[test]
fn import_verifies_with_the_identity_when_one_is_set() {
    let (env, owner) = Env::with_vault();
    env.write_config(DOCKER_STYLE_BEFORE);
    let mut c = env.command(common::manage::BIN);
    c.args(["import"]).env("LOCKBOX_IDENTITY", &owner.secret);
    common::manage::run(c, b"").ok();
    assert_eq!(env.config_text(), DOCKER_STYLE_AFTER);
    assert_eq!(
        env.get_with(COLON.0, &owner.file),
        Ok((COLON.1.to_owned(), COLON.2.to_owned()))
    );
}

/// A hand-written file: four-space indent, a final newline, `username`/`password`
/// fields, an entry with only an email, unknown keys of every JSON type, a raw `&`
/// (so the file is not Go-escaped and stays as it is), keys in a non-Docker order.
#[test]
fn import_of_a_hand_written_config_keeps_its_formatting_and_unknown_keys() {
    let before = r#"{
    "experimental": "enabled",
    "auths": {
        "fields.example": {
            "username": "fielduser",
            "password": "field-pass-Ω-1&2",
            "email": "ops@example.com"
        },
        "email-only.example": {
            "email": "x@example.com"
        }
    },
    "proxies": {
        "default": {
            "httpProxy": "http://proxy.example:3128",
            "noProxy": "localhost,127.0.0.1&more"
        }
    },
    "list": [
        1,
        2.5,
        null,
        true,
        "a"
    ],
    "empty": [],
    "zzz-last": {}
}
"#;
    let after = r#"{
    "experimental": "enabled",
    "auths": {
        "fields.example": {},
        "email-only.example": {
            "email": "x@example.com"
        }
    },
    "proxies": {
        "default": {
            "httpProxy": "http://proxy.example:3128",
            "noProxy": "localhost,127.0.0.1&more"
        }
    },
    "list": [
        1,
        2.5,
        null,
        true,
        "a"
    ],
    "empty": [],
    "zzz-last": {},
    "credsStore": "lockbox"
}
"#;
    let (env, owner) = Env::with_vault();
    env.write_config(before);
    env.lockbox(&["import"])
        .ok()
        .prints(&["import fields.example as fielduser"]);
    assert_eq!(env.config_text(), after);
    assert_eq!(
        env.get_with("fields.example", &owner.file),
        Ok(("fielduser".into(), "field-pass-Ω-1&2".into()))
    );
    assert_eq!(env.list().len(), 1);
    env.assert_no_secret(&[("fielduser", "field-pass-Ω-1&2")]);
    env.assert_docker_dir_is(&[]);
}

/// `credsStore: lockbox` already set (in the middle of the file): it stays where it is;
/// a plaintext entry for a registry already in the vault is scrubbed, and the vault's
/// entry (what Docker has been reading) is kept.
#[test]
fn import_scrubs_stale_plaintext_when_the_vault_is_already_in_use() {
    let (env, owner) = Env::with_vault();
    env.store("reg.example", "alice", "vault-pass-current-1");
    let before = format!(
        "{{\n  \"auths\": {{\n    \"reg.example\": {{\n      \"auth\": \"{}\"\n    }}\n  }},\n  \"credsStore\": \"lockbox\",\n  \"detachKeys\": \"ctrl-e,e\"\n}}\n",
        auth("alice", "plaintext-pass-stale-2")
    );
    env.write_config(&before);
    env.lockbox(&["import"])
        .ok()
        .prints(&["keep   reg.example (already in the vault)"]);
    assert_eq!(
        env.config_text(),
        "{\n  \"auths\": {\n    \"reg.example\": {}\n  },\n  \"credsStore\": \"lockbox\",\n  \"detachKeys\": \"ctrl-e,e\"\n}\n"
    );
    assert_eq!(
        env.get_with("reg.example", &owner.file),
        Ok(("alice".into(), "vault-pass-current-1".into()))
    );
    env.assert_no_secret(&[("alice", "plaintext-pass-stale-2")]);
}

/// Regression: without `credsStore: lockbox` Docker has been using the plaintext, so it
/// is the newer copy (here: `export --to-config`, then a new `docker login` that wrote
/// the file). Import used to keep the vault's old password and scrub the new one.
#[test]
fn import_after_export_to_config_keeps_the_newer_plaintext_password() {
    let (env, owner) = Env::with_vault();
    env.store("reg.example", "alice", "old-password-1111");
    env.store("other.example", "bob", "bob-password-2222");
    env.write_config("{\n\t\"credsStore\": \"lockbox\"\n}");
    env.lockbox(&[
        "export",
        "--to-config",
        env.config_path().to_str().unwrap(),
        "--identity-file",
        owner.file.to_str().unwrap(),
    ])
    .ok()
    .says(&["PLAINTEXT"])
    .prints(&[
        "Wrote 2 credential(s)",
        "removed \"credsStore\": \"lockbox\"",
    ]);
    let mut config = env.config_json();
    assert!(config.get("credsStore").is_none());
    // What `docker login reg.example` with the file store writes.
    config["auths"]["reg.example"]["auth"] = auth("alice", "new-password-3333").into();
    env.write_config(&serde_json::to_string_pretty(&config).unwrap());

    env.lockbox(&["import"])
        .ok()
        .prints(&["update reg.example as alice", "update other.example as bob"]);
    assert_eq!(
        env.get_with("reg.example", &owner.file),
        Ok(("alice".into(), "new-password-3333".into()))
    );
    assert_eq!(
        env.get_with("other.example", &owner.file),
        Ok(("bob".into(), "bob-password-2222".into()))
    );
    env.assert_no_secret(&[
        ("alice", "new-password-3333"),
        ("alice", "old-password-1111"),
        ("bob", "bob-password-2222"),
    ]);
}

#[test]
fn import_dry_run_shows_registries_and_usernames_and_changes_nothing() {
    let (env, _) = Env::with_vault();
    env.write_config(DOCKER_STYLE_BEFORE);
    let vault = env.vault_bytes();
    let r = env.lockbox(&["import", "--dry-run"]);
    r.ok().prints(&[
        "import colon.example as deploy",
        "import https://index.docker.io/v1/ as jürgen",
        "import token.example as <token>",
        "remove the plaintext of 3 entries",
        "set \"credsStore\": \"lockbox\"",
    ]);
    for (_, user, secret) in [COLON, HUB, TOKEN] {
        for text in [&r.stdout, &r.stderr] {
            assert!(!text.contains(secret), "a secret in the plan: {r}");
            assert!(
                !text.contains(&auth(user, secret)),
                "an auth in the plan: {r}"
            );
        }
    }
    assert_eq!(env.config_text(), DOCKER_STYLE_BEFORE);
    assert_eq!(env.vault_bytes(), vault);
    env.assert_docker_dir_is(&[]);
}

#[test]
fn import_no_set_store_and_config_path_through_a_symlink() {
    let (env, owner) = Env::with_vault();
    // --config names a symlink: the file it points to is rewritten, the link stays.
    fs::create_dir(env.path("elsewhere")).unwrap();
    let real = env.path("elsewhere/real.json");
    fs::write(&real, DOCKER_STYLE_BEFORE).unwrap();
    let link = env.path("elsewhere/link.json");
    symlink(&real, &link).unwrap();
    env.lockbox(&[
        "import",
        "--no-set-store",
        "--config",
        link.to_str().unwrap(),
    ])
    .ok();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let text = fs::read_to_string(&real).unwrap();
    assert_eq!(
        text,
        DOCKER_STYLE_AFTER.replace(",\n\t\"credsStore\": \"lockbox\"", "")
    );
    assert_eq!(
        env.tree("elsewhere"),
        ["link.json", "real.json"].map(String::from).into()
    );
    assert_eq!(
        env.get_with(TOKEN.0, &owner.file),
        Ok((TOKEN.1.to_owned(), TOKEN.2.to_owned()))
    );
    assert!(
        !env.config_path().exists(),
        "DOCKER_CONFIG's config.json untouched"
    );
}

/// Each unusable config is refused with a clear reason and nothing changes.
#[test]
fn import_refuses_what_it_cannot_use_and_changes_nothing() {
    let good = auth("gooduser", "good-secret-5150");
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "invalid JSON",
            format!("{{\"auths\": {{\"good.example\": {{\"auth\": \"{good}\"}},}}}}"),
            vec!["is not valid JSON (line 1, column", "nothing was changed"],
        ),
        (
            "top level not an object",
            format!("[{{\"auth\": \"{good}\"}}]"),
            vec!["top level is not a JSON object"],
        ),
        (
            "invalid base64",
            format!(
                "{{\"auths\": {{\"good.example\": {{\"auth\": \"{good}\"}}, \"bad.example\": {{\"auth\": \"%%%not-base64%%%\"}}}}}}"
            ),
            vec!["bad.example: its auth is not base64", "--force"],
        ),
        (
            "no colon",
            format!(
                "{{\"auths\": {{\"good.example\": {{\"auth\": \"{good}\"}}, \"bad.example\": {{\"auth\": \"{}\"}}}}}}",
                common::manage::b64("nocolon-user")
            ),
            vec!["bad.example: its auth"],
        ),
        (
            "auth not a string",
            format!(
                "{{\"auths\": {{\"good.example\": {{\"auth\": \"{good}\"}}, \"bad.example\": {{\"auth\": 4242, \"password\": \"typed-pass-31\"}}}}}}"
            ),
            vec!["bad.example: its auth is not a string"],
        ),
        (
            "password without username",
            format!(
                "{{\"auths\": {{\"good.example\": {{\"auth\": \"{good}\"}}, \"bad.example\": {{\"password\": \"lonely-pass-77\"}}}}}}"
            ),
            vec!["bad.example: a password without a username"],
        ),
        (
            "another credsStore",
            format!(
                "{{\"auths\": {{\"good.example\": {{\"auth\": \"{good}\"}}}}, \"credsStore\": \"desktop\"}}"
            ),
            vec![
                "\"credsStore\": \"desktop\"",
                "import --from-helper desktop",
                "--force",
            ],
        ),
        (
            "credHelpers",
            format!(
                "{{\"auths\": {{\"good.example\": {{\"auth\": \"{good}\"}}}}, \"credHelpers\": {{\"gcr.io\": \"gcloud\"}}}}"
            ),
            vec!["credHelpers", "gcr.io → gcloud", "--force"],
        ),
    ];
    for (what, config, messages) in cases {
        let (env, _) = Env::with_vault();
        env.write_config(&config);
        let vault = env.vault_bytes();
        let r = env.lockbox(&["import"]);
        r.fails().says(&messages).says(&["nothing was changed"]);
        assert!(r.stdout.is_empty(), "{what}: {r}");
        assert_eq!(env.config_text(), config, "{what}: config.json changed");
        assert_eq!(env.vault_bytes(), vault, "{what}: the vault changed");
        assert!(env.list().is_empty(), "{what}");
        env.assert_docker_dir_is(&[]);
        // A dry run says the same.
        env.lockbox(&["import", "--dry-run"])
            .fails()
            .says(&messages);
    }

    // No vault yet: "run init", and config.json untouched.
    let env = Env::new();
    let config = format!("{{\"auths\": {{\"good.example\": {{\"auth\": \"{good}\"}}}}}}");
    env.write_config(&config);
    env.lockbox(&["import"]).fails().says(&["init"]);
    assert_eq!(env.config_text(), config);
    assert_eq!(env.tree("docker"), ["config.json".to_owned()].into());
}

/// `credHelpers` that route registries to lockbox itself (the way podman and skopeo
/// are pointed at it, docs/MIGRATION.md) are no reason to refuse.
#[test]
fn import_accepts_cred_helpers_that_name_lockbox() {
    let (env, owner) = Env::with_vault();
    let config = format!(
        "{{\n\t\"auths\": {{\n\t\t\"reg.example\": {{\n\t\t\t\"auth\": \"{}\"\n\t\t}}\n\t}},\n\t\"credHelpers\": {{\n\t\t\"docker.io\": \"lockbox\"\n\t}}\n}}",
        auth("ivan", "ivan-secret-31")
    );
    env.write_config(&config);
    env.lockbox(&["import"]).ok();
    assert_eq!(
        env.config_text(),
        "{\n\t\"auths\": {\n\t\t\"reg.example\": {}\n\t},\n\t\"credHelpers\": {\n\t\t\"docker.io\": \"lockbox\"\n\t},\n\t\"credsStore\": \"lockbox\"\n}"
    );
    assert_eq!(
        env.get_with("reg.example", &owner.file),
        Ok(("ivan".into(), "ivan-secret-31".into()))
    );
    // One more helper that is not lockbox: refused again, naming only that one.
    let (env, _) = Env::with_vault();
    let config = config.replace(
        "\"docker.io\": \"lockbox\"",
        "\"docker.io\": \"lockbox\",\n\t\t\"gcr.io\": \"gcloud\"",
    );
    env.write_config(&config);
    let r = env.lockbox(&["import"]);
    r.fails().says(&["gcr.io → gcloud"]);
    assert!(!r.stderr.contains("docker.io →"), "{r}");
    assert_eq!(env.config_text(), config);
}

/// --force imports what can be read and leaves the rest exactly as it was.
#[test]
fn import_force_leaves_unreadable_entries_and_other_helpers_alone() {
    let (env, owner) = Env::with_vault();
    let config = format!(
        "{{\n\t\"auths\": {{\n\t\t\"bad.example\": {{\n\t\t\t\"auth\": \"%%%not-base64%%%\"\n\t\t}},\n\t\t\"good.example\": {{\n\t\t\t\"auth\": \"{}\"\n\t\t}}\n\t}},\n\t\"credsStore\": \"desktop\",\n\t\"credHelpers\": {{\n\t\t\"gcr.io\": \"gcloud\"\n\t}}\n}}",
        auth("gooduser", "good-secret-5150")
    );
    env.write_config(&config);
    env.lockbox(&["import", "--force"]).ok();
    assert_eq!(
        env.config_text(),
        "{\n\t\"auths\": {\n\t\t\"bad.example\": {\n\t\t\t\"auth\": \"%%%not-base64%%%\"\n\t\t},\n\t\t\"good.example\": {}\n\t},\n\t\"credsStore\": \"lockbox\",\n\t\"credHelpers\": {\n\t\t\"gcr.io\": \"gcloud\"\n\t}\n}"
    );
    assert_eq!(
        env.get_with("good.example", &owner.file),
        Ok(("gooduser".into(), "good-secret-5150".into()))
    );
    assert_eq!(env.list().len(), 1);
    env.assert_no_secret(&[("gooduser", "good-secret-5150")]);
}

// --- the real Docker CLI ----------------------------------------------------------------

/// Docker reads the imported config without a complaint, and `docker logout` (which
/// runs `docker-credential-lockbox erase` from PATH) removes entries from the vault.
#[test]
fn docker_logout_erases_imported_entries_from_the_vault() {
    if !need(&[("docker", "docker.io (the Docker CLI)")]) {
        return;
    }
    let (env, owner) = Env::with_vault();
    env.write_config(DOCKER_STYLE_BEFORE);
    env.lockbox(&["import"]).ok();

    let docker = |args: &[&str]| env.tool("docker", args, &[], b"");
    let r = docker(&["logout", "colon.example"]);
    r.ok()
        .prints(&["Removing login credentials for colon.example"]);
    assert!(
        !r.stderr.contains("WARNING") && !r.stderr.contains("rror"),
        "{r}"
    );
    assert!(!env.list().contains_key("colon.example"));
    assert!(env.config_json()["auths"].get("colon.example").is_none());

    // No argument: Docker Hub, stored as https://index.docker.io/v1/.
    let r = docker(&["logout"]);
    r.ok();
    assert!(
        !r.stderr.contains("WARNING") && !r.stderr.contains("rror"),
        "{r}"
    );
    assert_eq!(
        env.list().keys().collect::<Vec<_>>(),
        [TOKEN.0],
        "only the token entry is left"
    );
    assert_eq!(
        env.get_with(TOKEN.0, &owner.file),
        Ok((TOKEN.1.to_owned(), TOKEN.2.to_owned()))
    );
    let config = env.config_json();
    assert_eq!(config["credsStore"], "lockbox", "Docker kept the store");
    assert_eq!(config["auths"][TOKEN.0], serde_json::json!({}));
    env.assert_no_secret(&[(COLON.1, COLON.2), (HUB.1, HUB.2), ("", TOKEN.2)]);
}

/// A file really written by Docker (here by `docker context use`, which saves the
/// whole config) round-trips byte for byte apart from the entries and `credsStore`.
#[test]
fn a_config_written_by_docker_round_trips_byte_for_byte() {
    if !need(&[("docker", "docker.io (the Docker CLI)")]) {
        return;
    }
    let (env, owner) = Env::with_vault();
    let docker = |args: &[&str]| env.tool("docker", args, &[], b"");
    docker(&[
        "context",
        "create",
        "lockbox-test",
        "--docker",
        "host=tcp://127.0.0.1:9",
    ])
    .ok();
    // Docker rewrites what it is given: sorted auths, its own key order and escapes.
    let docker_writes = |text: &str| {
        env.write_config(text);
        docker(&["context", "use", "lockbox-test"]).ok();
        env.config_text()
    };
    let entries = |a: &str, b: &str| {
        format!(
            r#"{{"psFormat": "table {{{{.ID}}}} <&>", "auths": {{"z.example:5000": {a}, "a.example": {b}, "m.example": {{}}}}, "detachKeys": "ctrl-e,e"}}"#
        )
    };
    let with_secrets = docker_writes(&entries(
        &format!(r#"{{"auth": "{}"}}"#, auth("zed", "zed-pass:with:colons-1")),
        r#"{"identitytoken": "a-token-<&>-2"}"#,
    ));
    let scrubbed = docker_writes(&entries("{}", "{}"));
    assert!(with_secrets.contains("\\u003c") && !with_secrets.ends_with('\n'));

    env.write_config(&with_secrets);
    env.lockbox(&["import"]).ok();
    let expected = format!(
        "{},\n\t\"credsStore\": \"lockbox\"\n}}",
        scrubbed
            .strip_suffix("\n}")
            .expect("Docker's closing brace")
    );
    assert_eq!(env.config_text(), expected);
    assert_eq!(
        env.get_with("z.example:5000", &owner.file),
        Ok(("zed".into(), "zed-pass:with:colons-1".into()))
    );
    assert_eq!(
        env.get_with("a.example", &owner.file),
        Ok(("<token>".into(), "a-token-<&>-2".into()))
    );
    // Docker reads it back without a complaint.
    let r = docker(&["context", "use", "lockbox-test"]);
    r.ok();
    assert!(!r.stderr.contains("WARNING"), "{r}");
    env.assert_no_secret(&[("zed", "zed-pass:with:colons-1"), ("", "a-token-<&>-2")]);
    // What `docker context create` made is Docker's; the rest is ours, and no more.
    fs::remove_dir_all(env.path("docker/contexts")).unwrap();
    env.assert_docker_dir_is(&[]);
}

// --- import --from-helper ---------------------------------------------------------------

#[test]
fn import_from_a_scripted_helper() {
    let (env, owner) = Env::with_vault();
    let calls = env.fake_helper(
        "fake",
        &[
            (
                "https://index.docker.io/v1/",
                Some(("<token>", "hub-token-3141")),
            ),
            ("reg.example:5000", Some(("carol", "carol-pa:ss-Ω-2718"))),
            // Listed but gone by the time of `get`: skipped, not an error.
            ("vanished.example", None),
        ],
    );
    // credsStore names that helper: no --force needed, and it is switched to lockbox.
    // Docker has been reading the helper, so a plaintext entry beside it is a stale
    // leftover: the helper's copy wins and the plaintext is scrubbed.
    env.write_config(&format!(
        "{{\n\t\"auths\": {{\n\t\t\"reg.example:5000\": {{\n\t\t\t\"auth\": \"{}\"\n\t\t}}\n\t}},\n\t\"credsStore\": \"fake\"\n}}",
        auth("carol", "stale-carol-pass-0")
    ));
    env.lockbox(&["import", "--from-helper", "fake", "--dry-run"])
        .ok()
        .prints(&[
            "import https://index.docker.io/v1/ as <token>",
            "import reg.example:5000 as carol",
            "keep   reg.example:5000 (found twice; the first wins)",
        ]);
    assert!(env.list().is_empty(), "a dry run stored something");

    let r = env.lockbox(&["import", "--from-helper", "fake"]);
    r.ok().prints(&["Imported 2 credentials"]);
    assert!(!r.stdout.contains("vanished"), "{r}");
    assert_eq!(
        env.get_with("https://index.docker.io/v1/", &owner.file),
        Ok(("<token>".into(), "hub-token-3141".into()))
    );
    assert_eq!(
        env.get_with("reg.example:5000", &owner.file),
        Ok(("carol".into(), "carol-pa:ss-Ω-2718".into()))
    );
    assert_eq!(env.list().len(), 2);
    assert_eq!(
        env.config_text(),
        "{\n\t\"auths\": {\n\t\t\"reg.example:5000\": {}\n\t},\n\t\"credsStore\": \"lockbox\"\n}"
    );
    let log = fs::read_to_string(&calls).unwrap();
    assert_eq!(log.lines().filter(|l| *l == "list").count(), 2, "{log}");
    assert_eq!(log.lines().filter(|l| *l == "get").count(), 6, "{log}");
    env.assert_no_secret(&[
        ("", "hub-token-3141"),
        ("carol", "carol-pa:ss-Ω-2718"),
        ("carol", "stale-carol-pass-0"),
    ]);

    // Again: everything is in the vault already, nothing changes.
    let vault = env.vault_bytes();
    env.lockbox(&["import", "--from-helper", "fake"])
        .ok()
        .prints(&["keep   reg.example:5000 (already in the vault)"]);
    assert_eq!(env.vault_bytes(), vault);
}

/// Without `credsStore`, Docker has been using the plaintext: it wins over the
/// helper's copy of the same registry.
#[test]
fn import_from_a_helper_keeps_the_plaintext_docker_was_using() {
    let (env, owner) = Env::with_vault();
    env.fake_helper("fake", &[("reg.example", Some(("old", "helper-copy-1")))]);
    env.write_config(&format!(
        "{{\"auths\": {{\"reg.example\": {{\"auth\": \"{}\"}}}}}}",
        auth("new", "plaintext-live-2")
    ));
    env.lockbox(&["import", "--from-helper", "fake"])
        .ok()
        .prints(&["import reg.example as new", "(found twice; the first wins)"]);
    assert_eq!(
        env.get_with("reg.example", &owner.file),
        Ok(("new".into(), "plaintext-live-2".into()))
    );
    env.assert_no_secret(&[("new", "plaintext-live-2")]);
}

#[test]
fn import_from_a_failing_or_missing_helper_changes_nothing() {
    let (env, _) = Env::with_vault();
    let config = format!(
        "{{\"auths\": {{\"a.example\": {{\"auth\": \"{}\"}}}}}}",
        auth("a", "a-secret-9999")
    );
    env.write_config(&config);
    let vault = env.vault_bytes();

    env.lockbox(&["import", "--from-helper", "absent"])
        .fails()
        .says(&["docker-credential-absent list"]);
    // A helper whose `list` fails: its error line is shown.
    let script = env.bin_dir().join("docker-credential-broken");
    fs::write(
        &script,
        "#!/bin/sh\necho 'error getting credentials - err: exit status 2'\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    env.lockbox(&["import", "--from-helper", "broken"])
        .fails()
        .says(&["docker-credential-broken list", "exit status 2"]);
    // A broken helper that prints credentials and then fails: they are not echoed,
    // whether as JSON or with "secret" in another case somewhere in the text.
    for answer in [
        r#"{"ServerURL":"l.example","Username":"u","Secret":"leaky-secret-8086"}"#,
        r#"oops: "secret": "leaky-secret-8086""#,
    ] {
        let script = env.bin_dir().join("docker-credential-leaky");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\ncase \"$1\" in\nlist) echo '{{\"l.example\":\"u\"}}' ;;\n*) echo '{answer}'; exit 3 ;;\nesac\n"
            ),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let r = env.lockbox(&["import", "--from-helper", "leaky"]);
        r.fails()
            .says(&["docker-credential-leaky get", "exit status: 3", "not shown"]);
        assert!(!r.stderr.contains("leaky-secret-8086"), "{r}");
        assert!(!r.stdout.contains("leaky-secret-8086"), "{r}");
    }
    // A helper that answers something else than JSON.
    let script = env.bin_dir().join("docker-credential-garbage");
    fs::write(&script, "#!/bin/sh\necho 'hello'\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    env.lockbox(&["import", "--from-helper", "garbage"])
        .fails()
        .says(&["not a JSON object"]);
    for bad in ["", "../x", "lockbox"] {
        env.lockbox(&["import", "--from-helper", bad]).fails();
    }
    assert_eq!(env.config_text(), config);
    assert_eq!(env.vault_bytes(), vault);
}

/// Stops the gpg-agent a test's GNUPGHOME started (it outlives gpg and pass).
struct GpgAgent<'a>(&'a Env, &'a Path);

impl Drop for GpgAgent<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .tool("gpgconf", &["--kill", "all"], &[("GNUPGHOME", self.1)], b"");
    }
}

/// The real `docker-credential-pass` with a throwaway GnuPG key and password store.
#[test]
fn import_from_docker_credential_pass() {
    if !need(&[
        // Unpacked privately into target/test-tools by scripts/test.sh.
        (
            "docker-credential-pass",
            "golang-docker-credential-helpers (scripts/test.sh)",
        ),
        ("pass", "pass (scripts/test.sh)"),
        ("gpg", "gnupg"),
        ("gpgconf", "gnupg"),
    ]) {
        return;
    }
    let (env, owner) = Env::with_vault();
    let gnupg = env.path("gnupg");
    fs::create_dir(&gnupg).unwrap();
    fs::set_permissions(&gnupg, fs::Permissions::from_mode(0o700)).unwrap();
    let store = env.path("password-store");
    let vars: [(&str, &Path); 2] = [("GNUPGHOME", &gnupg), ("PASSWORD_STORE_DIR", &store)];
    let _agent = GpgAgent(&env, &gnupg);
    env.tool(
        "gpg",
        &[
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "test@example.com",
            "default",
            "default",
            "never",
        ],
        &vars,
        b"",
    )
    .ok();
    let keys = env.tool(
        "gpg",
        &[
            "--batch",
            "--with-colons",
            "--list-secret-keys",
            "test@example.com",
        ],
        &vars,
        b"",
    );
    keys.ok();
    let fpr = keys
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .and_then(|l| l.split(':').find(|f| !f.is_empty()))
        .expect("a fingerprint")
        .to_owned();
    env.tool("pass", &["init", &fpr], &vars, b"").ok();
    let entries = [
        ("https://reg.example:5000", "dave", "dave-pa:ss wörd-1618"),
        (
            "https://index.docker.io/v1/",
            "<token>",
            "pass-hub-token-1414",
        ),
    ];
    for (server, user, secret) in entries {
        let input = serde_json::json!({"ServerURL": server, "Username": user, "Secret": secret});
        env.tool(
            "docker-credential-pass",
            &["store"],
            &vars,
            input.to_string().as_bytes(),
        )
        .ok();
    }

    env.lockbox_with(&["import", "--from-helper", "pass"], &vars, b"")
        .ok()
        .prints(&["Imported 2 credentials"]);
    for (server, user, secret) in entries {
        assert_eq!(
            env.get_with(server, &owner.file),
            Ok((user.to_owned(), secret.to_owned())),
            "{server}"
        );
    }
    let config = env.config_json();
    assert_eq!(config, serde_json::json!({"credsStore": "lockbox"}));
    let mode = fs::metadata(env.config_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "a new config.json is private");
    // A copy, not a move: pass keeps its entries until you erase them.
    let list = env.tool("docker-credential-pass", &["list"], &vars, b"");
    list.ok();
    assert!(list.stdout.contains("reg.example:5000"), "{list}");
    env.assert_no_secret(&[
        ("dave", "dave-pa:ss wörd-1618"),
        ("", "pass-hub-token-1414"),
    ]);
}

// --- export -----------------------------------------------------------------------------

#[test]
fn export_prints_docker_auths_only_when_the_vault_is_open() {
    let (env, owner) = Env::with_vault();
    let creds = [
        ("reg.example:5000", "eve", "eve-pa:ss-Ω-1"),
        ("https://index.docker.io/v1/", "<token>", "hub-token-2"),
        ("ghcr.io", "ünï", "ghcr-secret-3"),
    ];
    for (s, u, p) in creds {
        env.store(s, u, p);
    }

    // Locked (no key variable, no agent, no terminal): refused, nothing printed.
    let r = env.lockbox(&["export"]);
    r.fails().says(&["LOCKBOX_IDENTITY"]);
    assert!(r.stdout.is_empty(), "{r}");

    for r in [
        env.lockbox(&["export", "--identity-file", owner.file.to_str().unwrap()]),
        env.lockbox_with(&["export"], &[("LOCKBOX_IDENTITY_FILE", &owner.file)], b""),
    ] {
        r.ok().says(&["warning", "PLAINTEXT"]);
        let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
        let auths = doc["auths"].as_object().expect("auths");
        assert_eq!(auths.len(), 3, "{r}");
        assert_eq!(doc.as_object().unwrap().len(), 1, "only auths: {r}");
        for (server, user, secret) in creds {
            let entry = &auths[server];
            if user == "<token>" {
                assert_eq!(entry, &serde_json::json!({"identitytoken": secret}));
            } else {
                let a = entry["auth"].as_str().expect("auth");
                assert_eq!(decode_auth(a), (user.to_owned(), secret.to_owned()));
            }
        }
        for (_, _, secret) in creds {
            assert!(!r.stderr.contains(secret), "a secret on stderr: {r}");
        }
    }

    // A wrong identity opens nothing and prints nothing.
    let other = env.identity("stranger");
    let r = env.lockbox(&["export", "--identity-file", other.file.to_str().unwrap()]);
    r.fails().says(&["none of the given identities"]);
    assert!(r.stdout.is_empty());
}

/// `export --to-config` then `import`: the way out and back in loses nothing.
#[test]
fn export_to_config_then_import_round_trips() {
    let (env, owner) = Env::with_vault();
    env.store("reg.example", "frank", "frank-secret-1");
    env.store("https://index.docker.io/v1/", "<token>", "frank-token-2");
    env.write_config("{\n\t\"auths\": {\n\t\t\"reg.example\": {}\n\t},\n\t\"credsStore\": \"lockbox\",\n\t\"psFormat\": \"x\"\n}");
    let id = owner.file.to_str().unwrap();
    env.lockbox(&[
        "export",
        "--to-config",
        env.config_path().to_str().unwrap(),
        "--identity-file",
        id,
    ])
    .ok();
    let config = env.config_json();
    assert!(config.get("credsStore").is_none());
    assert_eq!(
        decode_auth(config["auths"]["reg.example"]["auth"].as_str().unwrap()),
        ("frank".into(), "frank-secret-1".into())
    );
    assert_eq!(
        config["auths"]["https://index.docker.io/v1/"]["identitytoken"],
        "frank-token-2"
    );
    env.lockbox(&["import"]).ok();
    assert_eq!(
        env.config_text(),
        "{\n\t\"auths\": {\n\t\t\"reg.example\": {},\n\t\t\"https://index.docker.io/v1/\": {}\n\t},\n\t\"psFormat\": \"x\",\n\t\"credsStore\": \"lockbox\"\n}"
    );
    assert_eq!(
        env.get_with("reg.example", &owner.file),
        Ok(("frank".into(), "frank-secret-1".into()))
    );
    env.assert_no_secret(&[("frank", "frank-secret-1"), ("", "frank-token-2")]);
}

// --- the containers tools and the way back (issue 24, items 6 and 7) ------------------

/// Where `import` sets up podman, skopeo and buildah: a registries.conf drop-in in the
/// world's HOME.
fn drop_in(env: &Env) -> std::path::PathBuf {
    env.path("home/.config/containers/registries.conf.d/50-lockbox.conf")
}

/// `import` also writes the containers drop-in; `unimport` moves every credential back
/// into config.json as Docker writes plaintext auths, removes credsStore, the
/// credHelpers that name lockbox and the drop-in, keeps everything else, the file's
/// mode and (as root) its owner, and leaves the vault as it was.
#[test]
fn import_sets_up_the_containers_tools_and_unimport_undoes_everything() {
    let (env, owner) = Env::with_vault();
    env.write_config(DOCKER_STYLE_BEFORE);
    env.lockbox(&["import"])
        .ok()
        .prints(&["podman, skopeo and buildah use lockbox too"]);
    let text = fs::read_to_string(drop_in(&env)).unwrap();
    assert!(
        text.lines()
            .any(|l| l == "credential-helpers = [\"lockbox\"]"),
        "{text}"
    );
    // Already there: a second import changes nothing.
    env.lockbox(&["import"]).ok().prints(&["Nothing to do"]);

    // A registry routed to lockbox and one to another helper, and a mode and owner
    // that are not the defaults.
    let mut config = env.config_json();
    config["credHelpers"] = serde_json::json!({"ghcr.io": "lockbox", "gcr.io": "gcloud"});
    env.write_config(&serde_json::to_string_pretty(&config).unwrap());
    fs::set_permissions(env.config_path(), fs::Permissions::from_mode(0o640)).unwrap();
    let root = rustix::process::geteuid().is_root();
    if root {
        std::os::unix::fs::chown(env.config_path(), Some(65534), Some(65534)).unwrap();
    }
    let vault = env.vault_bytes();

    let id = owner.file.to_str().unwrap();
    let r = env.lockbox(&["unimport", "--identity-file", id]);
    r.ok().prints(&[
        "Moved 3 credentials into",
        "Removed credHelpers → lockbox for ghcr.io.",
        "Removed \"credsStore\": \"lockbox\"",
        "50-lockbox.conf (podman, skopeo and buildah use their own auth.json again)",
        "Docker no longer runs lockbox",
    ]);
    assert!(r.stderr.contains("PLAINTEXT"), "{r}");
    let config = env.config_json();
    assert!(config.get("credsStore").is_none(), "{config:#}");
    assert_eq!(
        config["credHelpers"],
        serde_json::json!({"gcr.io": "gcloud"})
    );
    assert_eq!(config["HttpHeaders"]["User-Agent"], "ci <bot>");
    for (server, user, secret) in [COLON, HUB] {
        assert_eq!(
            decode_auth(config["auths"][server]["auth"].as_str().unwrap()),
            (user.to_owned(), secret.to_owned()),
            "{server}"
        );
    }
    assert_eq!(config["auths"][TOKEN.0]["identitytoken"], TOKEN.2);
    assert_eq!(config["auths"]["marker.example"], serde_json::json!({}));
    let meta = fs::metadata(env.config_path()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640, "mode kept");
    if root {
        use std::os::unix::fs::MetadataExt;
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "owner kept");
    }
    assert!(!drop_in(&env).exists());
    assert_eq!(env.vault_bytes(), vault, "the vault is left as it was");
    // No temporary file left beside config.json.
    env.assert_docker_dir_is(&[]);

    // Run again (as after a crash): the same file, nothing else to undo.
    let before = env.config_text();
    env.lockbox(&["unimport", "--identity-file", id])
        .ok()
        .prints(&["Moved 3 credentials into"]);
    assert_eq!(env.config_text(), before);
}

/// `unimport --to-helper NAME` stores every entry in that helper (on its stdin) and
/// points credsStore at it: no plaintext in config.json. A helper that fails leaves
/// config.json as it was.
#[test]
fn unimport_to_another_helper() {
    let (env, owner) = Env::with_vault();
    env.store("reg.example", "frank", "frank-secret-1");
    env.write_config("{\n\t\"credsStore\": \"lockbox\"\n}");
    let id = owner.file.to_str().unwrap();
    let stored = env.path("keys/stored.jsonl");
    let script = |name: &str, body: &str| {
        let p = env.bin_dir().join(format!("docker-credential-{name}"));
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("broken", "cat >/dev/null; exit 3");
    env.lockbox(&["unimport", "--to-helper", "broken", "--identity-file", id])
        .fails()
        .says(&[
            "docker-credential-broken store",
            "for reg.example",
            "unchanged",
        ]);
    assert_eq!(env.config_json()["credsStore"], "lockbox");
    env.lockbox(&["unimport", "--to-helper", "lockbox"])
        .fails()
        .says(&["--to-helper NAME"]);

    script(
        "recorder",
        &format!("[ \"$1\" = store ] || exit 9\ncat >> {}", stored.display()),
    );
    env.lockbox(&["unimport", "--to-helper", "recorder", "--identity-file", id])
        .ok()
        .prints(&["Moved 1 credential into docker-credential-recorder, and credsStore is now \"recorder\""]);
    assert_eq!(
        fs::read_to_string(&stored).unwrap(),
        "{\"ServerURL\":\"reg.example\",\"Username\":\"frank\",\"Secret\":\"frank-secret-1\"}\n"
    );
    assert_eq!(env.config_text(), "{\n\t\"credsStore\": \"recorder\"\n}");
}

// --- passwd -----------------------------------------------------------------------------

/// Every stored entry opens with the key variable `var=value`.
fn assert_all_open(env: &Env, creds: &[(&str, &str, &str)], var: &str, value: &Path) {
    for (server, user, secret) in creds {
        assert_eq!(
            env.get_env(server, var, value),
            Ok((user.to_string(), secret.to_string())),
            "{server} with {var}={}",
            value.display()
        );
    }
}

const ENTRIES: [(&str, &str, &str); 3] = [
    ("reg.example:5000", "grace", "grace-pa:ss-1"),
    ("https://index.docker.io/v1/", "<token>", "grace-token-2"),
    ("ghcr.io", "grâce", "grace-ghcr-3"),
];

fn store_all(env: &Env) {
    for (s, u, p) in ENTRIES {
        env.store(s, u, p);
    }
}

#[test]
fn passwd_adds_then_changes_the_passphrase_and_rotates_the_key() {
    let (env, owner) = Env::with_vault();
    store_all(&env);
    let pw1 = env.key_file("pw1", "first passphrase 1\n");
    let pw2 = env.key_file("pw2", "second passphrase 2\n");
    let wrong = env.key_file("wrong", "not it\n");
    let (pw1s, pw2s, wrongs) = (
        pw1.to_str().unwrap(),
        pw2.to_str().unwrap(),
        wrong.to_str().unwrap(),
    );

    // No passphrase slot yet and no identity: told what to do; nothing changes.
    let before = env.vault_bytes();
    env.lockbox(&["passwd", "--new-passphrase-file", pw1s])
        .fails()
        .says(&["no passphrase slot", "--identity-file"]);
    assert_eq!(env.vault_bytes(), before);

    // Add one, opening with the identity.
    let first_key = env.public_key();
    env.lockbox(&[
        "passwd",
        "--identity-file",
        owner.file.to_str().unwrap(),
        "--new-passphrase-file",
        pw1s,
    ])
    .ok()
    .prints(&["Added a passphrase slot"]);
    let added = env.vault_bytes();
    assert_ne!(env.public_key(), first_key, "passwd rotates the key");
    assert_all_open(&env, &ENTRIES, "LOCKBOX_PASSPHRASE_FILE", &pw1);
    assert_all_open(&env, &ENTRIES, "LOCKBOX_IDENTITY_FILE", &owner.file);

    // A wrong old passphrase changes nothing.
    env.lockbox(&[
        "passwd",
        "--old-passphrase-file",
        wrongs,
        "--new-passphrase-file",
        pw2s,
    ])
    .fails()
    .says(&["wrong passphrase"]);
    assert_eq!(env.vault_bytes(), added);

    // Change it: the old passphrase opens nothing any more, the new one and the
    // identity open everything, and there is still exactly one passphrase slot.
    env.lockbox(&[
        "passwd",
        "--old-passphrase-file",
        pw1s,
        "--new-passphrase-file",
        pw2s,
    ])
    .ok()
    .prints(&["Changed the vault's passphrase"]);
    assert_all_open(&env, &ENTRIES, "LOCKBOX_PASSPHRASE_FILE", &pw2);
    assert_all_open(&env, &ENTRIES, "LOCKBOX_IDENTITY_FILE", &owner.file);
    assert!(
        env.get_env(ENTRIES[0].0, "LOCKBOX_PASSPHRASE_FILE", &pw1)
            .unwrap_err()
            .contains("wrong passphrase")
    );
    let slots = env.vault_json()["slots"].clone();
    let kinds: Vec<&str> = slots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["passphrase", "age"]);

    // The old passphrase still opens the old copy's key, but that key opens none of
    // the new file's entries: splice the new entries into the old file.
    let hybrid = splice_entries(&added, &env.vault_bytes());
    fs::write(env.vault_path(), hybrid).unwrap();
    let err = env
        .get_env(ENTRIES[0].0, "LOCKBOX_PASSPHRASE_FILE", &pw1)
        .unwrap_err();
    assert!(err.contains("does not decrypt"), "{err}");
}

/// The file `old` with the entries of `new`.
fn splice_entries(old: &[u8], new: &[u8]) -> Vec<u8> {
    let mut old: serde_json::Value = serde_json::from_slice(old).unwrap();
    let new: serde_json::Value = serde_json::from_slice(new).unwrap();
    old["entries"] = new["entries"].clone();
    serde_json::to_vec_pretty(&old).unwrap()
}

// --- recipients -------------------------------------------------------------------------

#[test]
fn recipients_add_age_ssh_and_authorized_keys_files() {
    if !need(&[("ssh-keygen", "openssh-client")]) {
        return;
    }
    let (env, owner) = Env::with_vault();
    store_all(&env);
    let id = owner.file.to_str().unwrap();
    let ci = env.identity("ci");
    let (laptop, laptop_pub) = env.ssh_key("laptop", "ed25519", "alice@laptop");
    let (host1, host1_pub) = env.ssh_key("host1", "ed25519", "root@host1");
    let (host2, host2_pub) = env.ssh_key("host2", "rsa", "root@host2");
    let (_, ecdsa_pub) = env.ssh_key("old", "ecdsa", "root@legacy");

    // A bare age recipient with a label, an ssh-ed25519 line (its comment is the label).
    let before = env.public_key();
    env.lockbox(&[
        "recipients",
        "add",
        &ci.recipient,
        "--label",
        "ci",
        "--identity-file",
        id,
    ])
    .ok()
    .prints(&["Added 1 slot(s): ci"]);
    env.lockbox(&["recipients", "add", &laptop_pub, "--identity-file", id])
        .ok()
        .prints(&["alice@laptop"]);
    assert_eq!(env.public_key(), before, "adding does not rotate");

    // A GitHub-style authorized_keys file: comments, blank lines, an options prefix with
    // a quoted space, ssh-rsa, and key types age cannot use (skipped with a note).
    let hosts = env.key_file(
        "hosts.pub",
        &format!(
            "# fleet\n\nno-port-forwarding,command=\"echo hi there\" {host1_pub}\n{host2_pub}\n{ecdsa_pub}\nsk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t yubikey\n"
        ),
    );
    let r = env.lockbox(&[
        "recipients",
        "add",
        "--file",
        hosts.to_str().unwrap(),
        "--identity-file",
        id,
    ]);
    r.ok()
        .prints(&["Added 2 slot(s): root@host1, root@host2"])
        .says(&[
            "skipped a ecdsa-sha2-nistp256 key",
            "skipped a sk-ssh-ed25519@openssh.com key",
        ]);
    assert!(!r.stderr.contains("AAAA"), "key material in a note: {r}");

    // Adding again adds nothing.
    env.lockbox(&[
        "recipients",
        "add",
        "--file",
        hosts.to_str().unwrap(),
        "--identity-file",
        id,
    ])
    .ok()
    .prints(&["Nothing added"]);

    let list = env.lockbox(&["recipients", "list"]);
    list.ok();
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{list}");
    assert_eq!(
        lines[1],
        format!("ci\t{}", ci.recipient),
        "tab-separated: {list}"
    );
    assert!(
        lines[2].starts_with("alice@laptop\tssh-ed25519 AAAA"),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.lockbox(&["recipients", "list", "--json"]).stdout).unwrap();
    let labels: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels[1..],
        ["ci", "alice@laptop", "root@host1", "root@host2"]
    );

    // Every slot opens every entry: age, SSH ed25519 and SSH RSA private keys.
    for key in [&owner.file, &ci.file, &laptop, &host1, &host2] {
        assert_all_open(&env, &ENTRIES, "LOCKBOX_IDENTITY_FILE", key);
    }
    let mut c = env.command(common::manage::BIN);
    c.arg("get").env("LOCKBOX_IDENTITY", &ci.secret);
    let r = common::manage::run(c, ENTRIES[0].0.as_bytes());
    r.ok().prints(&[ENTRIES[0].2]);

    // Not a recipient: refused, nothing changed.
    let before = env.vault_bytes();
    env.lockbox(&["recipients", "add", "hunter2", "--identity-file", id])
        .fails()
        .says(&["not a recipient"]);
    let (_, ecdsa_pub) = env.ssh_key("old2", "ecdsa", "x");
    env.lockbox(&["recipients", "add", &ecdsa_pub, "--identity-file", id])
        .fails();
    // A key that is not the vault's opens nothing and adds nothing.
    let stranger = env.identity("stranger");
    env.lockbox(&[
        "recipients",
        "add",
        &stranger.recipient,
        "--identity-file",
        stranger.file.to_str().unwrap(),
    ])
    .fails()
    .says(&["none of the given identities"]);
    assert_eq!(env.vault_bytes(), before);
}

#[test]
fn recipients_remove_rotates_so_the_removed_key_opens_nothing_new() {
    if !need(&[("ssh-keygen", "openssh-client")]) {
        return;
    }
    let (env, owner) = Env::with_vault();
    store_all(&env);
    let id = owner.file.to_str().unwrap();
    let ci = env.identity("ci");
    let (host, host_pub) = env.ssh_key("host", "ed25519", "root@host");
    env.lockbox(&[
        "recipients",
        "add",
        &ci.recipient,
        "--label",
        "ci",
        "--identity-file",
        id,
    ])
    .ok();
    env.lockbox(&["recipients", "add", &host_pub, "--identity-file", id])
        .ok();
    let old = env.vault_bytes();
    let old_key = env.public_key();

    // Remove by label, opening with the owner's identity.
    env.lockbox(&["recipients", "remove", "ci", "--identity-file", id])
        .ok()
        .prints(&["Removed 1 slot(s) for \"ci\" and rotated the vault key"]);
    assert_ne!(env.public_key(), old_key, "the key pair is rotated");
    let err = env.get_with(ENTRIES[0].0, &ci.file).unwrap_err();
    assert!(err.contains("none of the given identities"), "{err}");
    for key in [&owner.file, &host] {
        assert_all_open(&env, &ENTRIES, "LOCKBOX_IDENTITY_FILE", key);
    }
    assert_eq!(env.list().len(), ENTRIES.len());
    // The removed key still opens the old copy it may have kept, but what that copy's
    // key knows decrypts none of the new entries.
    let hybrid = splice_entries(&old, &env.vault_bytes());
    let current = env.vault_bytes();
    fs::write(env.vault_path(), &hybrid).unwrap();
    let err = env.get_with(ENTRIES[0].0, &ci.file).unwrap_err();
    assert!(err.contains("does not decrypt"), "{err}");
    fs::write(env.vault_path(), &current).unwrap();

    // Remove by recipient (the public key line, comment and all).
    env.lockbox(&["recipients", "remove", &host_pub, "--identity-file", id])
        .ok();
    assert!(env.get_with(ENTRIES[0].0, &host).is_err());
    assert_all_open(&env, &ENTRIES, "LOCKBOX_IDENTITY_FILE", &owner.file);

    // An unknown label, and the last slot: refused, the file unchanged byte for byte.
    let before = env.vault_bytes();
    env.lockbox(&["recipients", "remove", "nobody", "--identity-file", id])
        .fails()
        .says(&["no age slot has the label"]);
    env.lockbox(&[
        "recipients",
        "remove",
        &owner.recipient,
        "--identity-file",
        id,
    ])
    .fails()
    .says(&["refusing to remove the last slot"]);
    assert_eq!(env.vault_bytes(), before);
    assert_all_open(&env, &ENTRIES, "LOCKBOX_IDENTITY_FILE", &owner.file);
}

/// With a passphrase slot, removal re-wraps it: the passphrase comes from
/// --passphrase-file, or LOCKBOX_PASSPHRASE_FILE when an identity opened the vault;
/// without it (and no terminal) the removal is refused with a clear reason.
#[test]
fn recipients_remove_with_a_passphrase_slot() {
    let env = Env::new();
    let owner = env.identity("owner");
    let ci = env.identity("ci");
    let pw = env.key_file("pw", "vault passphrase\n");
    let pws = pw.to_str().unwrap();
    env.lockbox(&[
        "init",
        "--passphrase-file",
        pws,
        "--recipient",
        &owner.recipient,
        "--recipient",
        &ci.recipient,
    ])
    .ok();
    store_all(&env);
    let id = owner.file.to_str().unwrap();

    let before = env.vault_bytes();
    env.lockbox(&["recipients", "remove", &ci.recipient, "--identity-file", id])
        .fails()
        .says(&[
            "passphrase slot must be re-wrapped",
            "LOCKBOX_PASSPHRASE_FILE",
        ]);
    let wrong = env.key_file("wrong", "not it\n");
    env.lockbox_with(
        &["recipients", "remove", &ci.recipient, "--identity-file", id],
        &[("LOCKBOX_PASSPHRASE_FILE", &wrong)],
        b"",
    )
    .fails()
    .says(&["wrong passphrase"]);
    assert_eq!(env.vault_bytes(), before);

    env.lockbox_with(
        &["recipients", "remove", &ci.recipient, "--identity-file", id],
        &[("LOCKBOX_PASSPHRASE_FILE", &pw)],
        b"",
    )
    .ok();
    assert!(env.get_with(ENTRIES[0].0, &ci.file).is_err());
    assert_all_open(&env, &ENTRIES, "LOCKBOX_PASSPHRASE_FILE", &pw);
    assert_all_open(&env, &ENTRIES, "LOCKBOX_IDENTITY_FILE", &owner.file);

    // Opened with the passphrase itself: the last age slot can go, the passphrase
    // slot stays and still opens everything.
    env.lockbox(&[
        "recipients",
        "remove",
        &owner.recipient,
        "--passphrase-file",
        pws,
    ])
    .ok();
    assert!(env.get_with(ENTRIES[0].0, &owner.file).is_err());
    assert_all_open(&env, &ENTRIES, "LOCKBOX_PASSPHRASE_FILE", &pw);
    assert_eq!(env.lockbox(&["recipients", "list"]).stdout, "passphrase\n");
}
