//! End-to-end tests of the real `docker-credential-lockbox` binary.
//!
//! Each test gets its own HOME, DOCKER_CONFIG and XDG_RUNTIME_DIR and runs the binary
//! with a cleared environment (`common::TestEnv`). Covered here: protocol conformance
//! byte for byte against `docs/PROTOCOL.md` (whose tables record the official
//! helpers' exact bytes); lookup of other spellings; the locked
//! vault; every kind of slot (passphrase, age, ssh-ed25519, ssh-rsa) and wrong keys;
//! `init` and `status`; malformed input and damaged vault files that must leave the
//! file untouched; concurrent writers and readers; SIGKILL during writes; file modes.
//! Every `TestEnv` checks when dropped that no secret reached stderr or the vault.
use crate::common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::thread;
use std::time::Duration;

use age::secrecy::ExposeSecret;
use common::*;
use serde_json::Value;

/// Most bytes the binary reads from stdin (`protocol::MAX_INPUT`).
const MAX_INPUT: usize = 1 << 20;

fn get_answer(server: &str, username: &str, secret: &str) -> String {
    // Built by hand (not by an encoder) so the expectation is visibly Go's shape.
    format!("{{\"ServerURL\":\"{server}\",\"Username\":\"{username}\",\"Secret\":\"{secret}\"}}\n")
}

fn json(out: &Out) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

// ---------------------------------------------------------------------------------
// 1. Protocol conformance
// ---------------------------------------------------------------------------------

#[test]
fn fresh_home_list_get_erase_version() {
    let env = TestEnv::new();
    // No vault at all: `list` is `{}`, `get` is not-found, `erase` succeeds.
    env.run(&["list"], "")
        .assert_quiet_ok()
        .assert_stdout("{}\n");
    env.run(&["get"], "registry.example.com")
        .assert_code(1)
        .assert_stdout(NOT_FOUND);
    env.run(&["erase"], "registry.example.com")
        .assert_quiet_ok()
        .assert_stdout("");
    env.run(&["version"], "")
        .assert_quiet_ok()
        .assert_stdout(&format!(
            "docker-credential-lockbox (docker-credential-lockbox) v{}\n",
            env!("CARGO_PKG_VERSION")
        ));
    // None of these created anything.
    assert!(!env.path("docker/lockbox").exists());
    // `store` before `init` (a first `docker login`) says what to do, in one line,
    // and leaves nothing behind.
    let out = env.run(
        &["store"],
        store_json("h.example", "u", "before-init-secret"),
    );
    let line = out.assert_error_line();
    assert!(line.contains("init"), "{out}");
    assert!(!env.path("docker/lockbox").exists(), "{out}");
    // An initialized vault with no entries lists as `{}`, not `null`.
    env.init_passphrase();
    env.run(&["list"], "")
        .assert_quiet_ok()
        .assert_stdout("{}\n");
    env.run(&["list"], "unused")
        .assert_quiet_ok()
        .assert_stdout("{}\n");
}

#[test]
fn store_get_erase_exact_bytes() {
    let env = TestEnv::new();
    env.init_passphrase();
    let hub = "https://index.docker.io/v1/";
    env.run(
        &["store"],
        format!(r#"{{"ServerURL":"{hub}","Username":"u","Secret":"s"}}"#),
    )
    .assert_quiet_ok()
    .assert_stdout("");
    env.get(hub)
        .assert_quiet_ok()
        .assert_stdout(&get_answer(hub, "u", "s"));
    // Surrounding whitespace and CRLF are trimmed; ServerURL echoes the trimmed request.
    env.get(&format!("  {hub}\r\n"))
        .assert_quiet_ok()
        .assert_stdout(&get_answer(hub, "u", "s"));
    env.get(&format!("\t{hub}\n"))
        .assert_quiet_ok()
        .assert_stdout(&get_answer(hub, "u", "s"));
    env.run(&["list"], "")
        .assert_quiet_ok()
        .assert_stdout(&format!("{{\"{hub}\":\"u\"}}\n"));
    env.run(&["erase"], format!("{hub}\r\n"))
        .assert_quiet_ok()
        .assert_stdout("");
    // Missing entry: exactly the not-found line, exit 1, nothing on stderr.
    env.get(hub).assert_code(1).assert_stdout(NOT_FOUND);
    assert!(env.get(hub).stderr.is_empty());
    env.get("never-stored.example")
        .assert_code(1)
        .assert_stdout(NOT_FOUND);
    // Erasing an absent entry succeeds, quietly, and does not rewrite the vault.
    let before = env.vault_bytes();
    env.run(&["erase"], hub).assert_quiet_ok().assert_stdout("");
    assert_eq!(env.vault_bytes(), before);
    env.run(&["list"], "")
        .assert_quiet_ok()
        .assert_stdout("{}\n");
    // Empty or all-whitespace server: `no credentials server URL`.
    for empty in ["", " ", "\n", "\r\n", " \t\r\n "] {
        env.get(empty).assert_code(1).assert_stdout(MISSING_URL);
        env.run(&["erase"], empty)
            .assert_code(1)
            .assert_stdout(MISSING_URL);
    }
}

#[test]
fn store_validation_matches_the_reference() {
    let env = TestEnv::new();
    env.init_passphrase();
    let exact = [
        ("{}", MISSING_URL),
        (r#"{"Username":"u","Secret":"s"}"#, MISSING_URL),
        (
            r#"{"ServerURL":"","Username":"u","Secret":"s"}"#,
            MISSING_URL,
        ),
        (r#"{"ServerURL":null,"Username":"u"}"#, MISSING_URL),
        (r#"{"ServerURL":"h","Secret":"s"}"#, MISSING_USER),
        (
            r#"{"ServerURL":"h","Username":"","Secret":"s"}"#,
            MISSING_USER,
        ),
    ];
    for (input, expected) in exact {
        env.run(&["store"], input)
            .assert_code(1)
            .assert_stdout(expected);
    }
    // Where Go prints an artifact of its JSON decoder, lockbox prints its own clear
    // line: exit 1, one line, not the Go text, not the input.
    let go_artifacts = [
        ("", "EOF"),
        ("{", "unexpected EOF"),
        (
            "hello",
            "invalid character 'h' looking for beginning of value",
        ),
        (
            "[]",
            "json: cannot unmarshal array into Go value of type credentials.Credentials",
        ),
    ];
    for (input, go_text) in go_artifacts {
        let out = env.run(&["store"], input);
        let line = out.assert_error_line();
        assert_ne!(line, go_text, "{out}");
        // "" and "{" are substrings of any line that shows the expected JSON shape.
        if input.len() > 1 {
            assert!(!line.contains(input), "the error echoes the input: {out}");
        }
    }
    env.run(&["list"], "")
        .assert_quiet_ok()
        .assert_stdout("{}\n");
}

#[test]
fn store_accepts_what_go_accepts() {
    let env = TestEnv::new();
    env.init_passphrase();
    let accepted = [
        // Pretty-printed, multi-line, CRLF line ends.
        (
            "{\r\n  \"ServerURL\": \"pretty.example\",\r\n  \"Username\": \"u1\",\r\n  \"Secret\": \"pretty-secret-1\"\r\n}\r\n",
            "pretty.example",
            "u1",
            "pretty-secret-1",
        ),
        // Unknown fields, of any JSON type, are ignored.
        (
            r#"{"Extra":1,"ServerURL":"unknown.example","Nested":{"a":[1,{"b":null}]},"Username":"u2","Secret":"unknown-secret-2","More":"x"}"#,
            "unknown.example",
            "u2",
            "unknown-secret-2",
        ),
        // Keys match case-insensitively, as Go's encoding/json does.
        (
            r#"{"serverurl":"lower.example","username":"u3","secret":"lower-secret-3"}"#,
            "lower.example",
            "u3",
            "lower-secret-3",
        ),
        (
            r#"{"SERVERURL":"upper.example","USERNAME":"u4","SECRET":"upper-secret-4"}"#,
            "upper.example",
            "u4",
            "upper-secret-4",
        ),
        // No Secret, or a null one: accepted, and `get` answers an empty Secret.
        (
            r#"{"ServerURL":"nosecret.example","Username":"u5"}"#,
            "nosecret.example",
            "u5",
            "",
        ),
        (
            r#"{"ServerURL":"nullsecret.example","Username":"u6","Secret":null}"#,
            "nullsecret.example",
            "u6",
            "",
        ),
        // Trailing bytes after the first JSON value are ignored (json.Decoder).
        (
            r#"{"ServerURL":"trailing.example","Username":"u7","Secret":"trailing-secret-7"} and more"#,
            "trailing.example",
            "u7",
            "trailing-secret-7",
        ),
    ];
    for (input, server, user, secret) in accepted {
        env.track_secret(secret);
        env.run(&["store"], input)
            .assert_quiet_ok()
            .assert_stdout("");
        env.get(server)
            .assert_quiet_ok()
            .assert_stdout(&get_answer(server, user, secret));
    }
    // A 200 KiB secret on one line (Go's Scanner would fail at 64 KiB).
    let big: String = (0..200 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let big = format!("BIG-{big}");
    env.store("big.example", "biguser", &big);
    env.get("big.example")
        .assert_quiet_ok()
        .assert_stdout(&get_answer("big.example", "biguser", &big));
}

#[test]
fn get_escapes_like_go() {
    let env = TestEnv::new();
    env.init_passphrase();
    let server = "https://r.example/<a&b>";
    let secret = "a&b<c>\u{2028}\u{2029}\"\\\n\t\u{1} é 漢 end-of-escaping-secret";
    env.track_secret(secret);
    env.run(&["store"], store_json(server, "<token>", secret))
        .assert_quiet_ok();
    let expected = "{\"ServerURL\":\"https://r.example/\\u003ca\\u0026b\\u003e\",\
                    \"Username\":\"\\u003ctoken\\u003e\",\
                    \"Secret\":\"a\\u0026b\\u003cc\\u003e\\u2028\\u2029\\\"\\\\\\n\\t\\u0001 é 漢 end-of-escaping-secret\"}\n";
    env.get(server).assert_quiet_ok().assert_stdout(expected);
    // Map keys and values of `list` are escaped the same way.
    env.run(&["list"], "")
        .assert_quiet_ok()
        .assert_stdout("{\"https://r.example/\\u003ca\\u0026b\\u003e\":\"\\u003ctoken\\u003e\"}\n");
}

#[test]
fn identity_token_round_trips() {
    let env = TestEnv::new();
    env.init_passphrase();
    let token = "eyJhbGciOiJSUzI1NiJ9.identity-token-payload.sig";
    env.store("https://index.docker.io/v1/", "<token>", token);
    let out = env.get("https://index.docker.io/v1/");
    out.assert_quiet_ok().assert_stdout(&get_answer(
        "https://index.docker.io/v1/",
        "\\u003ctoken\\u003e",
        token,
    ));
    let v = json(&out);
    assert_eq!(v["Username"], "<token>");
    assert_eq!(v["Secret"], token);
    let mut fields: Vec<&String> = v.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        ["Secret", "ServerURL", "Username"],
        "no extra fields (docker-py compares the dict exactly)"
    );
}

#[test]
fn list_is_sorted_by_bytes() {
    let env = TestEnv::new();
    env.init_passphrase();
    for (i, server) in ["b", "é.example", "~tilde", "a", "Z", "https://z", "B"]
        .into_iter()
        .enumerate()
    {
        env.store(server, &format!("user{i}"), &format!("list-secret-{i}"));
    }
    env.run(&["list"], "").assert_quiet_ok().assert_stdout(
        "{\"B\":\"user6\",\"Z\":\"user4\",\"a\":\"user3\",\"b\":\"user0\",\"https://z\":\"user5\",\"~tilde\":\"user2\",\"é.example\":\"user1\"}\n",
    );
    // The same server stored again: one entry, the newest store wins.
    env.store("a", "newer", "list-secret-newer");
    assert_eq!(env.list()["a"], "newer");
    env.get("a")
        .assert_quiet_ok()
        .assert_stdout(&get_answer("a", "newer", "list-secret-newer"));
}

#[test]
fn list_never_reads_stdin() {
    let env = TestEnv::new();
    env.init_passphrase();
    env.store("h.example", "u", "never-read-secret");
    // A stdin pipe that is never written nor closed (docker-py passes its own stdin,
    // which may be a terminal): `list` must answer anyway. A helper that read stdin
    // would block until the bound and fail the test.
    let child = env.spawn(&["list"], &[]);
    let out = env.finish(&["list"], child, None, Duration::from_secs(15));
    out.assert_quiet_ok()
        .assert_stdout("{\"h.example\":\"u\"}\n");
}

#[test]
fn oversized_input_is_refused_with_one_line() {
    let env = TestEnv::new();
    env.init_passphrase();
    env.store("keep.example", "u", "keep-this-secret");
    let before = env.vault_bytes();
    let filler = "x".repeat(MAX_INPUT);
    let too_big = format!(r#"{{"ServerURL":"big.example","Username":"u","Secret":"{filler}"}}"#);
    for action in ["store", "get", "erase"] {
        let out = env.run(&[action], &too_big);
        let line = out.assert_error_line();
        assert!(!line.contains("xxxxxxxx"), "echoes the input: {out}");
        assert_eq!(env.vault_bytes(), before, "{action} changed the vault");
    }
    // Exactly the bound is still accepted.
    let head = r#"{"ServerURL":"edge.example","Username":"u","Secret":""#;
    let secret = "y".repeat(MAX_INPUT - head.len() - 2);
    let payload = format!("{head}{secret}\"}}");
    assert_eq!(payload.len(), MAX_INPUT);
    env.track_secret(&secret);
    env.run(&["store"], &payload).assert_quiet_ok();
    env.get("edge.example")
        .assert_quiet_ok()
        .assert_stdout(&get_answer("edge.example", "u", &secret));
}

/// Issue 24, item 5: with `credsStore: lockbox` and no vault, Docker shows only "no
/// basic auth credentials". stdout stays the protocol's not-found line; one stderr line
/// (which Docker passes on) says where no vault is and what to do: `init`, or for root
/// under sudo, BUILD_SERVER.md. `list`, `erase` and `store` are as they were.
#[test]
fn get_without_a_vault_says_so_on_stderr_only() {
    let env = TestEnv::new();
    let vault = env.path("docker/lockbox/vault.json");
    let root = rustix::process::getuid().is_root();
    let out = env.run(&["get"], "registry.example.com");
    out.assert_code(1).assert_stdout(NOT_FOUND);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{out}");
    assert!(
        err.contains(&format!("no vault at {}", vault.display())),
        "{out}"
    );
    assert!(err.contains("docker-credential-lockbox init"), "{out}");
    assert!(
        err.contains(if root {
            "for root"
        } else {
            "for this user (uid "
        }),
        "{out}"
    );
    // Root under sudo: the vault of root is not the one meant.
    let out = env.run_env(&["get"], "registry.example.com", &[("SUDO_USER", "alice")]);
    out.assert_code(1).assert_stdout(NOT_FOUND);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{out}");
    if root {
        assert!(err.contains("BUILD_SERVER.md"), "{out}");
        assert!(err.contains("not alice's"), "{out}");
    } else {
        assert!(err.contains("init"), "{out}");
    }
    // The other actions are unchanged: quiet.
    env.run(&["list"], "")
        .assert_quiet_ok()
        .assert_stdout("{}\n");
    env.run(&["erase"], "registry.example.com")
        .assert_quiet_ok();
    // With a vault, a missing entry is the plain not-found, nothing on stderr.
    env.init_passphrase();
    let out = env.run(&["get"], "registry.example.com");
    out.assert_code(1).assert_stdout(NOT_FOUND);
    assert!(out.stderr.is_empty(), "{out}");
}

#[test]
fn usage_and_unknown_actions() {
    let env = TestEnv::new();
    env.run(&[], "").assert_code(1).assert_stdout(USAGE);
    for args in [
        &["get", "extra"][..],
        &["store", "a", "b"],
        &["list", "x"],
        &["erase", "--", "x"],
    ] {
        env.run(args, "h").assert_code(1).assert_stdout(USAGE);
    }
    env.run(&["frobnicate"], "")
        .assert_code(1)
        .assert_stdout("docker-credential-lockbox: unknown action: frobnicate\n");
    // An action word with terminal escapes cannot reach the terminal or split the line.
    let out = env.run(&["\x1b]0;owned\x07\nsecond"], "");
    out.assert_code(1);
    let line = out.one_line();
    assert!(!line.contains('\x1b') && !line.contains('\x07'), "{out}");
}

#[test]
fn help_and_version_flags() {
    let env = TestEnv::new();
    let out = env.run(&["--help"], "");
    out.assert_code(0);
    let help = out.stdout_str();
    for word in ["store", "get", "erase", "list", "version", "init", "status"] {
        assert!(help.contains(word), "--help does not mention {word}: {out}");
    }
    let out = env.run(&["--version"], "");
    out.assert_code(0);
    assert!(
        out.stdout_str().contains(env!("CARGO_PKG_VERSION")),
        "{out}"
    );
    // `init --help` is there too.
    let out = env.run(&["init", "--help"], "");
    out.assert_code(0);
    assert!(out.stdout_str().contains("--passphrase-file"), "{out}");
}

// ---------------------------------------------------------------------------------
// 2. Lookup
// ---------------------------------------------------------------------------------

#[test]
fn lookup_folds_spellings_but_never_paths() {
    let env = TestEnv::new();
    env.init_passphrase();
    env.store("https://index.docker.io/v1/", "hubuser", "hub-secret-1");
    env.store("https://registry.example.com", "reguser", "reg-secret-2");
    // Docker Hub's spellings find the Hub entry; ServerURL echoes the request.
    for spelling in [
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "https://index.docker.io/v1",
        "https://INDEX.docker.io/v1/",
    ] {
        env.get(spelling)
            .assert_quiet_ok()
            .assert_stdout(&get_answer(spelling, "hubuser", "hub-secret-1"));
    }
    for spelling in [
        "registry.example.com",
        "registry.example.com:443",
        "http://registry.example.com/",
        "Registry.Example.COM",
    ] {
        env.get(spelling)
            .assert_quiet_ok()
            .assert_stdout(&get_answer(spelling, "reguser", "reg-secret-2"));
    }
    // More path, or another port, is another key.
    for other in [
        "https://index.docker.io/v1/access-token",
        "https://index.docker.io/v1/refresh-token",
        "docker.io/library/alpine",
        "registry.example.com/org/repo",
        "registry.example.com:5000",
        "example.com",
    ] {
        env.get(other).assert_code(1).assert_stdout(NOT_FOUND);
    }
    // And the other way round: path-bearing keys are never found by the bare host.
    let env = TestEnv::new();
    env.init_passphrase();
    env.store(
        "https://index.docker.io/v1/access-token",
        "tok",
        "access-token-secret",
    );
    env.store("host.example/org/repo", "repouser", "repo-secret-3");
    for bare in [
        "https://index.docker.io/v1/",
        "docker.io",
        "host.example",
        "host.example/org",
    ] {
        env.get(bare).assert_code(1).assert_stdout(NOT_FOUND);
    }
    env.get("https://index.docker.io/v1/access-token")
        .assert_quiet_ok()
        .assert_stdout(&get_answer(
            "https://index.docker.io/v1/access-token",
            "tok",
            "access-token-secret",
        ));
    env.get("https://host.example/org/repo/")
        .assert_quiet_ok()
        .assert_stdout(&get_answer(
            "https://host.example/org/repo/",
            "repouser",
            "repo-secret-3",
        ));
}

#[test]
fn exact_key_beats_normalized() {
    let env = TestEnv::new();
    env.init_passphrase();
    env.store("https://host.example", "https-user", "exact-secret-https");
    env.store("host.example", "bare-user", "exact-secret-bare");
    env.store("http://host.example", "http-user", "exact-secret-http");
    for (key, user, secret) in [
        ("https://host.example", "https-user", "exact-secret-https"),
        ("host.example", "bare-user", "exact-secret-bare"),
        ("http://host.example", "http-user", "exact-secret-http"),
    ] {
        env.get(key)
            .assert_quiet_ok()
            .assert_stdout(&get_answer(key, user, secret));
    }
    // A spelling none of them has exactly finds one of them.
    let v = json(env.get("HOST.example").assert_quiet_ok());
    assert!(
        ["https-user", "bare-user", "http-user"].contains(&v["Username"].as_str().unwrap()),
        "{v}"
    );
}

#[test]
fn erase_of_another_spelling_keeps_path_keys() {
    let env = TestEnv::new();
    env.init_passphrase();
    env.store("https://index.docker.io/v1/", "hub", "erase-hub-secret");
    env.store(
        "https://index.docker.io/v1/access-token",
        "tok",
        "erase-access-secret",
    );
    // podman logout docker.io removes what docker login stored.
    env.run(&["erase"], "docker.io").assert_quiet_ok();
    let list = env.list();
    assert!(
        !list.contains_key("https://index.docker.io/v1/"),
        "{list:?}"
    );
    assert!(
        list.contains_key("https://index.docker.io/v1/access-token"),
        "{list:?}"
    );
}

// ---------------------------------------------------------------------------------
// 3. Locked
// ---------------------------------------------------------------------------------

#[test]
fn locked_vault_is_not_not_found() {
    let env = TestEnv::new();
    env.init_passphrase();
    // store, erase and list need no key.
    env.store("locked.example", "u", "locked-secret-1");
    env.store("other.example", "u2", "locked-secret-2");
    env.run(&["erase"], "other.example").assert_quiet_ok();
    env.run(&["list"], "")
        .assert_quiet_ok()
        .assert_stdout("{\"locked.example\":\"u\"}\n");
    // An entry exists but nothing opens the vault: the locked line, never not-found.
    let out = env.run(&["get"], "locked.example");
    let line = out.assert_error_line();
    assert!(line.starts_with(LOCKED_PREFIX), "{out}");
    // The same through another spelling of the stored key.
    let out = env.run(&["get"], "https://locked.example/");
    assert!(out.assert_error_line().starts_with(LOCKED_PREFIX), "{out}");
    // No entry while locked: plain not-found (docker login then prompts).
    env.run(&["get"], "missing.example")
        .assert_code(1)
        .assert_stdout(NOT_FOUND);
    // Empty key variables count as unset: still locked, not an error about them.
    let out = env.run_env(
        &["get"],
        "locked.example",
        &[("LOCKBOX_IDENTITY", ""), ("LOCKBOX_PASSPHRASE_FILE", "")],
    );
    assert!(out.assert_error_line().starts_with(LOCKED_PREFIX), "{out}");
}

// ---------------------------------------------------------------------------------
// 4. Slots
// ---------------------------------------------------------------------------------

#[test]
fn passphrase_slot_round_trip() {
    let env = TestEnv::new();
    let pass = env.init_passphrase();
    env.store("p.example", "u", "passphrase-slot-secret");
    env.run_env(
        &["get"],
        "p.example",
        &[("LOCKBOX_PASSPHRASE_FILE", pass.to_str().unwrap())],
    )
    .assert_quiet_ok()
    .assert_stdout(&get_answer("p.example", "u", "passphrase-slot-secret"));
    // The same passphrase without the trailing newline, or with CRLF, opens it too.
    for (name, content) in [
        ("p-bare", PASSPHRASE.to_owned()),
        ("p-crlf", format!("{PASSPHRASE}\r\n")),
    ] {
        let f = env.keys_dir().join(name);
        fs::write(&f, content).unwrap();
        env.run_env(
            &["get"],
            "p.example",
            &[("LOCKBOX_PASSPHRASE_FILE", f.to_str().unwrap())],
        )
        .assert_quiet_ok();
    }
}

#[test]
fn age_slot_round_trip() {
    if !require_tool("age-keygen", "age") {
        return;
    }
    let env = TestEnv::new();
    let (file, recipient, key) = age_keygen(&env, "age.txt");
    env.run(&["init", "--recipient", &recipient], "")
        .assert_code(0);
    env.store("age.example", "u", "age-slot-secret");
    let expected = get_answer("age.example", "u", "age-slot-secret");
    let whole_file = fs::read_to_string(&file).unwrap();
    for vars in [
        [("LOCKBOX_IDENTITY", key.as_str())],
        [("LOCKBOX_IDENTITY", whole_file.as_str())],
        [("LOCKBOX_IDENTITY_FILE", file.to_str().unwrap())],
    ] {
        env.run_env(&["get"], "age.example", &vars)
            .assert_quiet_ok()
            .assert_stdout(&expected);
    }
    let status = json(
        env.run_env(
            &["status", "--json"],
            "",
            &[("LOCKBOX_IDENTITY_FILE", file.to_str().unwrap())],
        )
        .assert_code(0),
    );
    assert_eq!(status["slots"][0]["type"], "age");
    assert_eq!(status["slots"][0]["recipient"], recipient.as_str());
}

fn ssh_round_trip(kind: &str) {
    if !require_tool("ssh-keygen", "openssh-client") {
        return;
    }
    let env = TestEnv::new();
    let comment = format!("ci-{kind}@build-host");
    let (private, public) = ssh_keygen(&env, kind, &format!("id_{kind}"), &comment, "");
    let id_var = [("LOCKBOX_IDENTITY_FILE", private.to_str().unwrap())];
    // Via --recipient "$(cat key.pub)".
    env.run(&["init", "--recipient", &public], "")
        .assert_code(0);
    env.store("ssh.example", "u", &format!("ssh-{kind}-secret-one"));
    env.run_env(&["get"], "ssh.example", &id_var)
        .assert_quiet_ok()
        .assert_stdout(&get_answer(
            "ssh.example",
            "u",
            &format!("ssh-{kind}-secret-one"),
        ));
    let status = json(
        env.run_env(&["status", "--json"], "", &id_var)
            .assert_code(0),
    );
    assert_eq!(status["slots"][0]["label"], comment.as_str(), "{status}");
    assert_eq!(status["unlocked"], true);
    // Via --recipients-file, with comments, blank lines and, as in a host's
    // authorized_keys, a key type age cannot use: skipped with a warning, as
    // `recipients add --file` does.
    let list = env.keys_dir().join("recipients");
    fs::write(
        &list,
        format!(
            "# the fleet\n\necdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY= old-host\n{public}\n   \n# end\n"
        ),
    )
    .unwrap();
    let out = env.run(
        &[
            "init",
            "--force",
            "--recipients-file",
            list.to_str().unwrap(),
        ],
        "",
    );
    out.assert_code(0);
    assert!(
        out.stderr_str()
            .contains("skipped a ecdsa-sha2-nistp256 key: age recipients are"),
        "{out}"
    );
    env.store("ssh2.example", "u2", &format!("ssh-{kind}-secret-two"));
    env.run_env(&["get"], "ssh2.example", &id_var)
        .assert_quiet_ok()
        .assert_stdout(&get_answer(
            "ssh2.example",
            "u2",
            &format!("ssh-{kind}-secret-two"),
        ));
}

#[test]
fn ssh_ed25519_slot_round_trip() {
    ssh_round_trip("ed25519");
}

#[test]
fn ssh_rsa_slot_round_trip() {
    ssh_round_trip("rsa");
}

#[test]
fn two_slots_each_open_the_vault() {
    if !require_tool("age-keygen", "age") {
        return;
    }
    let env = TestEnv::new();
    let (file, recipient, _) = age_keygen(&env, "age.txt");
    let pass = env.keys_dir().join("pass");
    fs::write(&pass, "two-slot passphrase\n").unwrap();
    env.track_secret("two-slot passphrase");
    env.run_env(
        &[
            "init",
            "--passphrase-file",
            pass.to_str().unwrap(),
            "--recipient",
            &recipient,
        ],
        "",
        &[("LOCKBOX_ARGON2_PARAMS", FAST_KDF)],
    )
    .assert_code(0);
    env.store("two.example", "u", "two-slots-secret");
    let expected = get_answer("two.example", "u", "two-slots-secret");
    env.run_env(
        &["get"],
        "two.example",
        &[("LOCKBOX_PASSPHRASE_FILE", pass.to_str().unwrap())],
    )
    .assert_quiet_ok()
    .assert_stdout(&expected);
    env.run_env(
        &["get"],
        "two.example",
        &[("LOCKBOX_IDENTITY_FILE", file.to_str().unwrap())],
    )
    .assert_quiet_ok()
    .assert_stdout(&expected);
    let status = json(env.run(&["status", "--json"], "").assert_code(3));
    let kinds: Vec<&str> = status["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["passphrase", "age"]);
}

#[test]
fn wrong_keys_fail_cleanly() {
    let env = TestEnv::new();
    // Keys made in-process so this test never skips: a vault with a passphrase slot
    // and an age slot, and a stranger's identity.
    let owner = age::x25519::Identity::generate();
    let stranger = age::x25519::Identity::generate();
    let stranger_key = stranger.to_string().expose_secret().to_owned();
    env.track_secret(&stranger_key);
    let pass = env.keys_dir().join("pass");
    fs::write(&pass, "the right passphrase\n").unwrap();
    env.track_secret("the right passphrase");
    env.run_env(
        &[
            "init",
            "--passphrase-file",
            pass.to_str().unwrap(),
            "--recipient",
            &owner.to_public().to_string(),
        ],
        "",
        &[("LOCKBOX_ARGON2_PARAMS", FAST_KDF)],
    )
    .assert_code(0);
    env.store("w.example", "u", "wrong-keys-secret");
    let before = env.vault_bytes();

    let wrong_pass = env.keys_dir().join("wrong");
    fs::write(&wrong_pass, "the wrong passphrase\n").unwrap();
    env.track_secret("the wrong passphrase");
    let empty_pass = env.keys_dir().join("empty");
    fs::write(&empty_pass, "").unwrap();
    let junk_file = env.keys_dir().join("junk");
    fs::write(&junk_file, "this is no key at all\n").unwrap();
    let missing = env.keys_dir().join("does-not-exist");
    let cases: [(&str, &str, &str); 6] = [
        (
            "LOCKBOX_PASSPHRASE_FILE",
            wrong_pass.to_str().unwrap(),
            "wrong passphrase",
        ),
        (
            "LOCKBOX_PASSPHRASE_FILE",
            empty_pass.to_str().unwrap(),
            "empty",
        ),
        (
            "LOCKBOX_IDENTITY",
            &stranger_key,
            "none of the given identities",
        ),
        (
            "LOCKBOX_IDENTITY",
            "AGE-SECRET-KEY-1NOTAKEY",
            "cannot use the identity",
        ),
        (
            "LOCKBOX_IDENTITY_FILE",
            junk_file.to_str().unwrap(),
            "cannot use the identity",
        ),
        (
            "LOCKBOX_IDENTITY_FILE",
            missing.to_str().unwrap(),
            "cannot use the identity",
        ),
    ];
    for (var, value, says) in cases {
        let out = env.run_env(&["get"], "w.example", &[(var, value)]);
        let line = out.assert_error_line();
        assert!(!line.starts_with(LOCKED_PREFIX), "{out}");
        assert!(line.contains(says), "expected {says:?}: {out}");
        assert!(!line.contains(&stranger_key), "{out}");
        assert_eq!(env.vault_bytes(), before, "{var} changed the vault");
    }
    // The right keys still work afterwards.
    let owner_key = owner.to_string().expose_secret().to_owned();
    env.track_secret(&owner_key);
    env.run_env(&["get"], "w.example", &[("LOCKBOX_IDENTITY", &owner_key)])
        .assert_quiet_ok();

    // A vault with only a passphrase slot says so when given an identity.
    let env2 = TestEnv::new();
    env2.init_passphrase();
    env2.store("w.example", "u", "wrong-keys-secret-2");
    env2.track_secret(&stranger_key);
    let out = env2.run_env(
        &["get"],
        "w.example",
        &[("LOCKBOX_IDENTITY", &stranger_key)],
    );
    assert!(out.assert_error_line().contains("no age slots"), "{out}");
}

#[test]
fn passphrase_protected_ssh_key_is_a_clear_error() {
    if !require_tool("ssh-keygen", "openssh-client") {
        return;
    }
    let env = TestEnv::new();
    let (private, public) = ssh_keygen(
        &env,
        "ed25519",
        "id_locked",
        "locked@host",
        "key-passphrase-9",
    );
    env.track_secret("key-passphrase-9");
    env.run(&["init", "--recipient", &public], "")
        .assert_code(0);
    env.store("sshp.example", "u", "ssh-protected-secret");
    let before = env.vault_bytes();
    let out = env.run_env(
        &["get"],
        "sshp.example",
        &[("LOCKBOX_IDENTITY_FILE", private.to_str().unwrap())],
    );
    // `get` never asks: it says to run unlock (which asks; tests/keys/identities.rs).
    let line = out.assert_error_line();
    assert!(
        line.contains("protected by a passphrase") && line.contains("unlock"),
        "{out}"
    );
    assert!(!line.starts_with(LOCKED_PREFIX), "{out}");
    assert_eq!(env.vault_bytes(), before);
}

#[test]
fn init_refuses_to_replace_without_force() {
    let env = TestEnv::new();
    let pass = env.init_passphrase();
    env.store("keep.example", "u", "init-keep-secret");
    let before = env.vault_bytes();
    let out = env.run_env(
        &["init", "--passphrase-file", pass.to_str().unwrap()],
        "",
        &[("LOCKBOX_ARGON2_PARAMS", FAST_KDF)],
    );
    assert_ne!(out.code(), 0, "{out}");
    assert!(out.stderr_str().contains("--force"), "{out}");
    assert_eq!(env.vault_bytes(), before);
    // With --force: a new vault (new key, no entries); the old passphrase is gone.
    let new_pass = env.keys_dir().join("new-pass");
    fs::write(&new_pass, "a brand new passphrase\n").unwrap();
    env.track_secret("a brand new passphrase");
    env.run_env(
        &[
            "init",
            "--force",
            "--passphrase-file",
            new_pass.to_str().unwrap(),
        ],
        "",
        &[("LOCKBOX_ARGON2_PARAMS", FAST_KDF)],
    )
    .assert_code(0);
    assert_ne!(env.vault_bytes(), before);
    env.run(&["list"], "")
        .assert_quiet_ok()
        .assert_stdout("{}\n");
    // `status` alone tries nothing (no Argon2id); `--check` tries the passphrase.
    let out = env.run_env(
        &["status", "--json", "--check"],
        "",
        &[("LOCKBOX_PASSPHRASE_FILE", pass.to_str().unwrap())],
    );
    out.assert_code(3);
    assert!(
        json(&out)["error"]
            .as_str()
            .unwrap()
            .contains("wrong passphrase"),
        "{out}"
    );
    env.run_env(
        &["status", "--quiet"],
        "",
        &[("LOCKBOX_PASSPHRASE_FILE", new_pass.to_str().unwrap())],
    )
    .assert_code(0);
}

#[test]
fn init_without_slots_names_the_options() {
    let env = TestEnv::new();
    let out = env.run(&["init"], "");
    assert_ne!(out.code(), 0, "{out}");
    let err = out.stderr_str();
    for option in [
        "--passphrase",
        "--passphrase-file",
        "--recipient",
        "--recipients-file",
    ] {
        assert!(err.contains(option), "does not name {option}: {out}");
    }
    assert!(!env.vault_path().exists());
    // A recipient that is not one is refused clearly, and nothing is created.
    let out = env.run(&["init", "--recipient", "age1notarecipient"], "");
    assert_ne!(out.code(), 0, "{out}");
    assert!(out.stderr_str().contains("not a recipient"), "{out}");
    assert!(!env.vault_path().exists());
}

#[test]
fn status_human_and_json() {
    let env = TestEnv::new();
    // Before init: a clear error naming `init`.
    let out = env.run(&["status"], "");
    assert_ne!(out.code(), 0, "{out}");
    assert!(out.stderr_str().contains("init"), "{out}");

    let pass = env.init_passphrase();
    env.store("one.example", "u1", "status-secret-1");
    env.store("two.example", "u2", "status-secret-2");
    let vault = env.vault_path();
    let vault = vault.to_str().unwrap();

    let out = env.run(&["status"], "");
    out.assert_code(3);
    let text = out.stdout_str();
    assert!(text.contains(vault), "{out}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("entries") && l.trim_end().ends_with(" 2")),
        "{out}"
    );
    assert!(text.contains("passphrase"), "{out}");

    let key = [("LOCKBOX_PASSPHRASE_FILE", pass.to_str().unwrap())];
    let out = env.run_env(&["status", "--json"], "", &key);
    out.assert_code(0);
    let v = json(&out);
    assert_eq!(v["vault"], vault);
    assert_eq!(v["entries"], 2);
    assert_eq!(v["slots"].as_array().unwrap().len(), 1);
    assert_eq!(v["slots"][0]["type"], "passphrase");
    assert_eq!(v["slots"][0]["m_cost_kib"], 64);
    assert_eq!(v["unlocked"], true);
    assert_eq!(v["key_source"], "LOCKBOX_PASSPHRASE_FILE");
    assert!(v["public_key"].as_str().unwrap().starts_with("age1"), "{v}");

    let v = json(env.run(&["status", "--json"], "").assert_code(3));
    assert_eq!(v["unlocked"], false);
    env.run(&["status", "--quiet"], "")
        .assert_code(3)
        .assert_stdout("");
}

#[test]
fn lockbox_vault_variable_chooses_the_file() {
    let env = TestEnv::new();
    let other = env.path("elsewhere/v.json");
    let pass = env.keys_dir().join("pass");
    fs::write(&pass, "elsewhere passphrase\n").unwrap();
    let vars = [
        ("LOCKBOX_VAULT", other.to_str().unwrap()),
        ("LOCKBOX_ARGON2_PARAMS", FAST_KDF),
        ("LOCKBOX_PASSPHRASE_FILE", pass.to_str().unwrap()),
    ];
    env.run_env(
        &["init", "--passphrase-file", pass.to_str().unwrap()],
        "",
        &vars,
    )
    .assert_code(0);
    env.track_secret("elsewhere-secret");
    env.run_env(
        &["store"],
        store_json("e.example", "u", "elsewhere-secret"),
        &vars,
    )
    .assert_quiet_ok();
    env.run_env(&["get"], "e.example", &vars)
        .assert_quiet_ok()
        .assert_stdout(&get_answer("e.example", "u", "elsewhere-secret"));
    assert!(other.is_file());
    assert!(!env.vault_path().exists());
    env.run(&["list"], "")
        .assert_quiet_ok()
        .assert_stdout("{}\n");
}

// ---------------------------------------------------------------------------------
// 5. Malformed input never changes the vault
// ---------------------------------------------------------------------------------

#[test]
fn malformed_input_never_changes_the_vault() {
    let env = TestEnv::new();
    env.init_passphrase();
    env.store("keep.example", "keeper", "malformed-keep-secret");
    let before = env.vault_bytes();
    let bad_store: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b" \n\t\r\n".to_vec(),
        b"{".to_vec(),
        b"hello".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"\"just a string\"".to_vec(),
        b"42".to_vec(),
        b"{}".to_vec(),
        br#"{"ServerURL":"keep.example"}"#.to_vec(),
        br#"{"Username":"u"}"#.to_vec(),
        br#"{"ServerURL":1,"Username":"u"}"#.to_vec(),
        br#"{"ServerURL":"keep.example","Username":["u"]}"#.to_vec(),
        br#"{"ServerURL":"keep.example","Username":"u","Secret":{"a":1}}"#.to_vec(),
        br#"{"ServerURL":"keep.example","Username":"u","Secret":"s""#.to_vec(),
        br#"{"ServerURL":"keep.example","Username":"u","Secret":"s",}"#.to_vec(),
        b"{\"ServerURL\":\"keep.example\",\"Username\":\"u\",\"Secret\":\"a\x00b\"}".to_vec(),
        b"\xff\xfe\x00\x01binary".to_vec(),
        b"\x1b[2J{\"ServerURL\"".to_vec(),
        format!(
            r#"{{"ServerURL":"keep.example","Username":"u","Secret":"{}"}}"#,
            "z".repeat(MAX_INPUT)
        )
        .into_bytes(),
    ];
    for input in &bad_store {
        let out = env.run(&["store"], input);
        out.assert_code(1);
        let line = out.one_line();
        assert!(!line.contains('\x1b'), "{out}");
        assert_eq!(
            env.vault_bytes(),
            before,
            "store of {:?} changed the vault",
            String::from_utf8_lossy(&input[..input.len().min(80)])
        );
    }
    for action in ["get", "erase"] {
        for input in [&b""[..], b"   \r\n", &vec![b'h'; MAX_INPUT + 1]] {
            env.run(&[action], input).assert_error_line();
            assert_eq!(env.vault_bytes(), before, "{action} changed the vault");
        }
    }
    // Nothing was lost along the way.
    env.get("keep.example")
        .assert_quiet_ok()
        .assert_stdout(&get_answer(
            "keep.example",
            "keeper",
            "malformed-keep-secret",
        ));
}

#[test]
fn bad_json_errors_never_echo_a_secret() {
    let env = TestEnv::new();
    env.init_passphrase();
    let secret = "hunter2-do-not-echo";
    env.track_secret(secret);
    for input in [
        format!(r#"{{"ServerURL":"h","Username":"u","Secret":"{secret}" oops}}"#),
        format!(r#"{{"ServerURL":"h","Username":"u","Secret":["{secret}"]}}"#),
        format!(r#""{secret}""#),
        format!(r#"{{"{secret}":1"#),
        format!(r#"{{"ServerURL":"h","Username":"u","Secret":"{secret}"#),
    ] {
        let out = env.run(&["store"], &input);
        assert!(!out.assert_error_line().contains(secret), "{out}");
    }
}

// ---------------------------------------------------------------------------------
// 6. Tampered and truncated vault files
// ---------------------------------------------------------------------------------

/// A damaged vault is refused by every action, with one line, and `store`/`erase`
/// leave it byte for byte as it is: the vault never overwrites what it could not
/// parse and verify.
fn assert_refused_and_kept(env: &TestEnv, says: &str) {
    let before = env.vault_bytes();
    let expect = |out: Out| {
        let line = out.assert_error_line();
        assert!(line.contains(says), "expected {says:?}: {out}");
        assert!(!line.starts_with(LOCKED_PREFIX), "{out}");
    };
    expect(env.get("a.example"));
    expect(env.run(&["get"], "a.example"));
    expect(env.run(&["list"], ""));
    env.track_secret("store-after-damage");
    expect(env.run(
        &["store"],
        store_json("new.example", "u", "store-after-damage"),
    ));
    expect(env.run(
        &["store"],
        store_json("a.example", "u", "store-after-damage"),
    ));
    expect(env.run(&["erase"], "a.example"));
    assert_eq!(env.vault_bytes(), before, "the damaged vault was rewritten");
    assert!(!env.path("docker/lockbox/vault.json.tmp").exists());
}

/// A vault with entries `a.example` and `b.example`.
fn two_entry_vault() -> TestEnv {
    let env = TestEnv::new();
    env.init_passphrase();
    env.store("a.example", "alice", "tamper-secret-alice");
    env.store("b.example", "bob", "tamper-secret-bob");
    env
}

fn rewrite_vault(env: &TestEnv, change: impl FnOnce(&mut Value)) {
    let mut v = env.vault_json();
    change(&mut v);
    env.write_vault(&serde_json::to_vec_pretty(&v).unwrap());
}

#[test]
fn truncated_vault_is_refused_and_kept() {
    let full = {
        let env = two_entry_vault();
        env.vault_bytes()
    };
    for cut in [0, 1, full.len() / 3, full.len() / 2, full.len() - 3] {
        let env = two_entry_vault();
        env.write_vault(&full[..cut]);
        assert_refused_and_kept(&env, "damaged");
    }
    // Not JSON at all, and JSON of the wrong shape.
    for junk in [
        &b"\x00\x01\x02garbage"[..],
        b"[]",
        b"{\"lockbox\":1}",
        b"null",
    ] {
        let env = two_entry_vault();
        env.write_vault(junk);
        assert_refused_and_kept(&env, "damaged");
    }
}

#[test]
fn flipped_secret_character_fails_that_entry() {
    // A different valid base64 character: the file parses, the ciphertext does not
    // open. Only that entry fails; it is never reported as not-found.
    let env = two_entry_vault();
    rewrite_vault(&env, |v| {
        let s = v["entries"]["a.example"]["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut b = s.into_bytes();
        let i = b.len() / 2;
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        v["entries"]["a.example"]["secret"] = Value::String(String::from_utf8(b).unwrap());
    });
    let out = env.get("a.example");
    let line = out.assert_error_line();
    assert!(line.contains("a.example"), "names the entry: {out}");
    assert!(!line.starts_with(LOCKED_PREFIX), "{out}");
    env.get("b.example")
        .assert_quiet_ok()
        .assert_stdout(&get_answer("b.example", "bob", "tamper-secret-bob"));
    // Without the key a writer cannot tell a tampered ciphertext (the design's
    // public-key layout): storing another entry keeps the bad one as it is, and
    // storing that entry again — what the error tells the user to do — repairs it.
    let tampered = env.vault_json()["entries"]["a.example"]["secret"].clone();
    env.store("c.example", "carol", "tamper-secret-carol");
    assert_eq!(env.vault_json()["entries"]["a.example"]["secret"], tampered);
    env.get("a.example").assert_error_line();
    env.store("a.example", "alice", "tamper-secret-alice-2");
    env.get("a.example")
        .assert_quiet_ok()
        .assert_stdout(&get_answer("a.example", "alice", "tamper-secret-alice-2"));

    // A character that is not base64 at all: the whole file is refused and kept.
    let env = two_entry_vault();
    rewrite_vault(&env, |v| {
        let s = v["entries"]["a.example"]["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut b = s.into_bytes();
        let i = b.len() / 2;
        b[i] = b'!';
        v["entries"]["a.example"]["secret"] = Value::String(String::from_utf8(b).unwrap());
    });
    assert_refused_and_kept(&env, "damaged");
}

#[test]
fn swapped_secrets_fail_their_binding() {
    let env = two_entry_vault();
    rewrite_vault(&env, |v| {
        let a = v["entries"]["a.example"]["secret"].take();
        let b = v["entries"]["b.example"]["secret"].take();
        v["entries"]["a.example"]["secret"] = b;
        v["entries"]["b.example"]["secret"] = a;
    });
    for (server, other_secret) in [
        ("a.example", "tamper-secret-bob"),
        ("b.example", "tamper-secret-alice"),
    ] {
        let out = env.get(server);
        let line = out.assert_error_line();
        assert!(line.contains(server), "{out}");
        assert!(!out.stdout_str().contains(other_secret), "{out}");
    }
    // Moving a username onto another entry fails the same way.
    let env = two_entry_vault();
    rewrite_vault(&env, |v| {
        v["entries"]["a.example"]["username"] = Value::String("mallory".into());
    });
    assert!(
        env.get("a.example")
            .assert_error_line()
            .contains("a.example")
    );
    // And so does a renamed entry (its ciphertext is bound to the old server URL).
    let env = two_entry_vault();
    rewrite_vault(&env, |v| {
        let e = v["entries"]
            .as_object_mut()
            .unwrap()
            .remove("a.example")
            .unwrap();
        v["entries"]["evil.example"] = e;
    });
    assert!(
        env.get("evil.example")
            .assert_error_line()
            .contains("evil.example")
    );
}

#[test]
fn hostile_argon2_params_are_refused() {
    for (field, value) in [
        ("m_cost_kib", Value::from(u32::MAX)),
        ("m_cost_kib", Value::from(64u32 << 20)),
        ("t_cost", Value::from(u32::MAX)),
        ("p_cost", Value::from(u32::MAX)),
        ("m_cost_kib", Value::from(0u32)),
    ] {
        let env = two_entry_vault();
        rewrite_vault(&env, |v| v["slots"][0][field] = value.clone());
        // The process bound (common::RUN_LIMIT) is what makes "fast" checkable here
        // without asserting a duration: an attempt at the work would not finish.
        assert_refused_and_kept(&env, "Argon2id");
    }
    // Out of u32 range is not even a valid number for the field.
    let env = two_entry_vault();
    rewrite_vault(&env, |v| {
        v["slots"][0]["m_cost_kib"] = Value::from(u64::MAX)
    });
    assert_refused_and_kept(&env, "damaged");
}

#[test]
fn newer_format_version_says_upgrade() {
    let env = two_entry_vault();
    // This build reads 1 to 4 (2: an OpenBao or plugin slot, 3: entry metadata, 4:
    // sources); 5 is newer.
    rewrite_vault(&env, |v| v["lockbox"] = Value::from(5));
    assert_refused_and_kept(&env, "upgrade");
    // A newer format may have another shape altogether.
    let env = two_entry_vault();
    env.write_vault(br#"{"lockbox": 7, "something": "else"}"#);
    assert_refused_and_kept(&env, "upgrade");
}

// ---------------------------------------------------------------------------------
// 7. Concurrency and crash safety
// ---------------------------------------------------------------------------------

#[test]
fn concurrent_stores_lose_nothing() {
    let env = TestEnv::new();
    env.init_passphrase();
    const N: usize = 16;
    // Start every writer before waiting on any.
    let children: Vec<_> = (0..N)
        .map(|i| {
            let secret = format!("concurrent-secret-{i:02}");
            env.track_secret(&secret);
            let mut child = env.spawn(&["store"], &[]);
            let mut stdin = child.stdin.take().unwrap();
            stdin
                .write_all(
                    store_json(&format!("r{i:02}.example"), &format!("user{i}"), &secret)
                        .as_bytes(),
                )
                .unwrap();
            drop(stdin);
            child
        })
        .collect();
    for child in children {
        env.finish(&["store"], child, None, RUN_LIMIT)
            .assert_quiet_ok()
            .assert_stdout("");
    }
    let list = env.list();
    assert_eq!(list.len(), N, "{list:?}");
    for i in 0..N {
        assert_eq!(list[&format!("r{i:02}.example")], format!("user{i}"));
    }
    for i in [0, N / 2, N - 1] {
        env.get(&format!("r{i:02}.example"))
            .assert_quiet_ok()
            .assert_stdout(&get_answer(
                &format!("r{i:02}.example"),
                &format!("user{i}"),
                &format!("concurrent-secret-{i:02}"),
            ));
    }
}

#[test]
fn readers_during_writes_see_a_whole_vault() {
    let env = TestEnv::new();
    env.init_passphrase();
    let values = ["race-secret-value-A", "race-secret-value-B"];
    env.store("race.example", "racer", values[0]);
    env.track_secret(values[1]);
    const ROUNDS: usize = 12;
    thread::scope(|s| {
        s.spawn(|| {
            for i in 0..ROUNDS {
                env.store("race.example", "racer", values[i % 2]);
                // Growing the file too, so old and new differ in size.
                env.store(
                    &format!("filler{i}.example"),
                    "f",
                    &format!("filler-secret-{i:02}"),
                );
            }
        });
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    let out = env.get("race.example");
                    out.assert_quiet_ok();
                    let v = json(&out);
                    assert!(values.contains(&v["Secret"].as_str().unwrap()), "{out}");
                }
            });
        }
        s.spawn(|| {
            for _ in 0..ROUNDS {
                let list = env.list();
                assert_eq!(list["race.example"], "racer");
            }
        });
    });
    assert_eq!(env.list().len(), ROUNDS + 1);
}

#[test]
fn sigkill_during_store_never_breaks_the_vault() {
    let env = TestEnv::new();
    env.init_passphrase();
    env.store("base.example", "u", "crash-base-secret");
    const ITERATIONS: u64 = 30;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..ITERATIONS {
        // 12 KiB secrets: bigger writes widen the window, and the payload still fits
        // in the pipe buffer, so it is written before the kill.
        let secret = format!("crash-secret-{i:02}-{}", "k".repeat(12 * 1024));
        env.track_secret(&secret);
        let mut child = env.spawn(&["store"], &[]);
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(store_json(&format!("crash{i:02}.example"), "u", &secret).as_bytes())
            .unwrap();
        drop(stdin);
        // A varying delay of 0–8 ms: before, during and after the write.
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        thread::sleep(Duration::from_micros((seed >> 33) % 8_000));
        let _ = child.kill(); // SIGKILL; fails harmlessly if it already exited
        let status = wait_bounded(&mut child, RUN_LIMIT).expect("reaped");
        let mut stderr = Vec::new();
        std::io::Read::read_to_end(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        let stderr = String::from_utf8_lossy(&stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains(&secret),
            "{status}: {stderr}"
        );
        // Whatever the moment, the vault is the old one or the new one.
        let list = env.list();
        assert!(list.contains_key("base.example"), "{list:?}");
    }
    // A stale temporary file (a writer killed between create and rename) does not
    // stop the next store; plant one too, to be sure the path is exercised.
    fs::write(env.path("docker/lockbox/vault.json.tmp"), b"{\"half\": ").unwrap();
    fs::set_permissions(
        env.path("docker/lockbox/vault.json.tmp"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    env.store("after.example", "u", "crash-after-secret");
    assert!(!env.path("docker/lockbox/vault.json.tmp").exists());
    // Every entry that made it opens to exactly what was stored.
    let list = env.list();
    assert!(list.contains_key("after.example"));
    for i in 0..ITERATIONS {
        let server = format!("crash{i:02}.example");
        if list.contains_key(&server) {
            let secret = format!("crash-secret-{i:02}-{}", "k".repeat(12 * 1024));
            env.get(&server)
                .assert_quiet_ok()
                .assert_stdout(&get_answer(&server, "u", &secret));
        }
    }
}

// ---------------------------------------------------------------------------------
// 8. File modes
// ---------------------------------------------------------------------------------

#[test]
fn vault_file_and_directory_modes() {
    let env = TestEnv::new();
    let pass = env.keys_dir().join("pass");
    fs::write(&pass, "modes passphrase\n").unwrap();
    env.track_secret("modes passphrase");
    // Under umask 000, so the modes are the binary's choice, not the umask's.
    let umask0 = ["-c", "umask 000 && exec \"$0\" \"$@\"", BIN];
    let with = |args: &[&str]| -> Vec<String> {
        umask0.iter().chain(args).map(|s| (*s).to_owned()).collect()
    };
    let args = with(&["init", "--passphrase-file", pass.to_str().unwrap()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.run_program("sh", &args, &[("LOCKBOX_ARGON2_PARAMS", FAST_KDF)])
        .assert_code(0);
    let mode = |p: &str| fs::metadata(env.path(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("docker/lockbox"), 0o700);
    assert_eq!(mode("docker/lockbox/vault.json"), 0o600);
    assert_eq!(mode("docker/lockbox/vault.json.lock"), 0o600);
    // A store replaces the file by rename: the new file is 0600 too.
    let mut child = env
        .command(
            "sh",
            &with(&["store"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            &[],
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    env.track_secret("modes-secret-1");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(store_json("m.example", "u", "modes-secret-1").as_bytes())
        .unwrap();
    env.finish(&["sh", "store"], child, None, RUN_LIMIT)
        .assert_quiet_ok();
    assert_eq!(env.list().len(), 1);
    assert_eq!(mode("docker/lockbox/vault.json"), 0o600);
    assert_eq!(mode("docker/lockbox"), 0o700);
}

// ---------------------------------------------------------------------------------
// 9. Secrets never printed
// ---------------------------------------------------------------------------------

#[test]
fn secrets_never_reach_stderr_or_the_vault_file() {
    // Every TestEnv runs this check when dropped; here it is run explicitly after
    // a session that goes through every action and error path with one secret.
    let env = TestEnv::new();
    let pass = env.init_passphrase();
    let secret = "sup3r-s3cret-value-that-must-stay-inside";
    env.store("s.example", "u", secret);
    env.get("s.example").assert_quiet_ok();
    env.run(&["get"], "s.example").assert_error_line();
    env.run(&["list"], "").assert_quiet_ok();
    env.run(&["status"], "").assert_code(3);
    env.run_env(
        &["status", "--json"],
        "",
        &[("LOCKBOX_PASSPHRASE_FILE", pass.to_str().unwrap())],
    )
    .assert_code(0);
    env.run(
        &["store"],
        format!(r#"{{"ServerURL":"s.example","Username":"u","Secret":"{secret}"#),
    )
    .assert_error_line();
    env.run(
        &["store"],
        format!(r#"{{"ServerURL":"","Username":"u","Secret":"{secret}"}}"#),
    )
    .assert_code(1)
    .assert_stdout(MISSING_URL);
    env.run(&["erase"], "s.example").assert_quiet_ok();
    let text = String::from_utf8(env.vault_bytes()).unwrap();
    assert!(!text.contains(secret));
    env.assert_no_secret_leaks();
}

#[test]
fn a_vault_path_that_is_a_symlink_is_followed_not_replaced() {
    let env = TestEnv::new();
    env.init_passphrase();
    env.store("first.example", "u1", "symlink-secret-1");
    // The vault moves into a "repository"; the default path becomes a link to it.
    let repo = env.path("repo");
    fs::create_dir(&repo).unwrap();
    let target = repo.join("vault.json");
    fs::rename(env.vault_path(), &target).unwrap();
    std::os::unix::fs::symlink(&target, env.vault_path()).unwrap();

    env.store("second.example", "u2", "symlink-secret-2");
    let link = fs::symlink_metadata(env.vault_path()).unwrap();
    assert!(
        link.file_type().is_symlink(),
        "the link was replaced by a file"
    );
    // The write went to the target, under the target's lock, with the vault's mode.
    let written: Value = serde_json::from_slice(&fs::read(&target).unwrap()).unwrap();
    assert_eq!(
        written["entries"].as_object().unwrap().len(),
        2,
        "{written}"
    );
    assert_eq!(
        fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(repo.join("vault.json.lock").exists());
    env.get("second.example")
        .assert_quiet_ok()
        .assert_stdout(&get_answer("second.example", "u2", "symlink-secret-2"));
    // The same vault through LOCKBOX_VAULT naming the target.
    let by_target = [("LOCKBOX_VAULT", target.to_str().unwrap())];
    env.run_env(&["list"], "", &by_target)
        .assert_quiet_ok()
        .assert_stdout("{\"first.example\":\"u1\",\"second.example\":\"u2\"}\n");

    // A link to nowhere is named in the error, and nothing is created.
    fs::remove_file(&target).unwrap();
    let out = env.run(
        &["store"],
        store_json("third.example", "u3", "symlink-secret-3"),
    );
    assert_eq!(out.code(), 1, "{out}");
    assert!(
        out.stdout_str().contains("could not follow the symlink"),
        "{out}"
    );
    assert!(!target.exists());
    assert!(
        fs::symlink_metadata(env.vault_path())
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_private_key_given_as_a_recipient_is_refused_and_never_echoed() {
    if !require_tool("age-keygen", "age") || !require_tool("ssh-keygen", "openssh-client") {
        return;
    }
    let env = TestEnv::new();
    // The easy mistakes: age-keygen's output file, its secret line, an SSH private key.
    let (identity_file, _, secret_line) = age_keygen(&env, "id.txt");
    let ssh_key = env.keys_dir().join("ssh_key");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
        .arg(&ssh_key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ssh_text = fs::read_to_string(&ssh_key).unwrap();
    let ssh_body = ssh_text.lines().nth(1).expect("a base64 line").to_owned();
    env.track_secret(&ssh_body);

    let identity = identity_file.to_str().unwrap();
    let ssh = ssh_key.to_str().unwrap();
    let attempts: [(&[&str], &str); 4] = [
        (&["init", "--recipients-file", identity], "line 3 of "),
        (&["init", "--recipient", &secret_line], ""),
        (&["init", "--recipients-file", ssh], "line 1 of "),
        (&["init", "--recipient", &ssh_text], ""),
    ];
    for (args, location) in attempts {
        let out = env.run(args, "");
        // A PEM block starts with dashes, so the argument parser refuses it (2).
        assert!([1, 2].contains(&out.code()), "{out}");
        let err = out.stderr_str();
        assert!(err.contains(location), "{out}");
        assert!(
            err.contains("that is a private key, not a recipient"),
            "{out}"
        );
        assert!(
            !err.contains("SECRET-KEY") && !err.contains("PRIVATE KEY"),
            "{out}"
        );
        assert!(!env.vault_path().exists());
    }
    // Removing "by" a private key does not repeat it either.
    env.init_passphrase();
    let out = env.run(&["recipients", "remove", &secret_line], "");
    assert_ne!(out.code(), 0, "{out}");
    assert!(out.stderr_str().contains("that is a private key"), "{out}");
    env.assert_no_secret_leaks();
}

/// `unlock` on a terminal, the lines fed to its pty by `script` a second apart
/// (bounded: one sleep a line, then two seconds for the agent to start).
fn unlock_on_a_pty(env: &TestEnv, lines: &[&str]) -> Out {
    let mut feed = String::from("(");
    for line in lines {
        feed.push_str(&format!("sleep 1; printf '%s\\n' '{line}'; "));
    }
    feed.push_str("sleep 2) | script -qec \"$0 unlock\" /dev/null");
    env.run_program("/bin/sh", &["-c", &feed, BIN], &[("SHELL", "/bin/sh")])
}

/// Issue 24 item 9: a person gets three tries at the vault's passphrase on a
/// terminal. Two wrong ones and then the right one unlock; three wrong ones fail and
/// start no agent.
#[test]
fn unlock_on_a_terminal_gives_three_tries() {
    if !require_tool("script", "bsdutils") {
        return;
    }
    let env = TestEnv::new();
    env.init_passphrase();
    env.store("h.example", "u", "three-tries-secret-6021");

    let out = unlock_on_a_pty(&env, &["wrong one", "wrong two", "wrong three"]);
    assert!(!out.status.success(), "{out}");
    assert_eq!(
        out.stdout_str().matches("lockbox passphrase:").count(),
        3,
        "{out}"
    );
    assert_eq!(out.stdout_str().matches("try again").count(), 2, "{out}");
    let get = env.run(&["get"], "h.example");
    assert!(get.stdout_str().contains("lockbox is locked"), "{get}");

    let out = unlock_on_a_pty(&env, &["wrong one", "wrong two", PASSPHRASE]);
    assert!(out.status.success(), "{out}");
    let get = env.run(&["get"], "h.example");
    get.assert_quiet_ok();
    assert!(
        get.stdout_str().contains("three-tries-secret-6021"),
        "{get}"
    );
    env.run(&["lock"], "").assert_code(0);
}
