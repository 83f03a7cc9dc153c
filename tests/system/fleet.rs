//! Fleets, end to end on the real binary (harness: `tests/common`): the kubelet
//! credential provider against golden request/response files (`tests/golden/kubelet/`,
//! shaped after the upstream v1 types; see `src/kubelet.rs` for the versions
//! followed), with the node's SSH host key as the key source and no `HOME`; and
//! `export --format`, checked against the real `kubectl` (the Secret) and `skopeo`
//! (the containers auth.json), and a golden file from docker/cli#6008
//! (`DOCKER_AUTH_CONFIG`).
//!
//! Tools: `ssh-keygen` (openssh-client), `kubectl` (this image's kubectl 1.32; on a
//! clean Debian, `kubernetes-client`), `skopeo`, `script` (util-linux, for a terminal).
//! A missing tool fails the test under `CI`, else the test says `skipped:` and passes.
use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use serde_json::{Value, json};

/// The credentials of the golden files.
const CREDS: [(&str, &str, &str); 5] = [
    ("https://index.docker.io/v1/", "hubuser", "hub-pass-4417"),
    ("ghcr.io", "octo", "ghcr-pass-7781"),
    ("ghcr.io/team", "team-bot", "team-pass-3391"),
    ("registry.example.com:5000", "ci", "port-pass-9006"),
    ("quay.io", "<token>", "quay-identity-token-2718"),
];

/// A node: a vault opened by the node's SSH host key (ed25519), holding [`CREDS`].
struct Node {
    env: TestEnv,
    host_key: PathBuf,
}

impl Node {
    /// `None` (after the missing-tool policy) without `ssh-keygen`.
    fn new() -> Option<Self> {
        let env = TestEnv::new();
        if !require_tool("ssh-keygen", "openssh-client") {
            return None;
        }
        let (host_key, public) =
            ssh_keygen(&env, "ed25519", "ssh_host_ed25519_key", "root@node-1", "");
        env.run(&["init", "--recipient", &public], "")
            .assert_code(0);
        for (server, user, secret) in CREDS {
            env.store(server, user, secret);
        }
        Some(Node { env, host_key })
    }

    /// Runs the provider as kubelet would: the config's `env:` only (LOCKBOX_VAULT and
    /// the key source) — no HOME, no DOCKER_CONFIG, no XDG_RUNTIME_DIR — plus `vars`.
    fn provider(&self, args: &[&str], request: &[u8], vars: &[(&str, &str)]) -> Out {
        let mut all = vec!["kubelet-credential-provider"];
        all.extend_from_slice(args);
        let vault = self.env.vault_path();
        let mut cmd = self.env.command(BIN, &all, &[]);
        cmd.env_remove("HOME")
            .env_remove("DOCKER_CONFIG")
            .env_remove("XDG_RUNTIME_DIR")
            .env("LOCKBOX_VAULT", &vault)
            .env("LOCKBOX_IDENTITY_FILE", &self.host_key);
        for (k, v) in vars {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the provider");
        self.env
            .finish(&all, child, Some(request.to_vec()), RUN_LIMIT)
    }
}

fn golden(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// The failure shape kubelet logs: non-zero, nothing on stdout, one line on stderr.
fn assert_one_line_failure(out: &Out, code: i32) -> String {
    out.assert_code(code);
    assert!(out.stdout.is_empty(), "stdout must stay empty: {out}");
    let err = out.stderr_str();
    assert_eq!(err.lines().count(), 1, "one line on stderr: {out}");
    err
}

// --- kubelet-credential-provider --------------------------------------------------

#[test]
fn kubelet_golden_requests_get_golden_responses() {
    let Some(node) = Node::new() else { return };
    node.env
        .track_secret("eyJhbGciOiJSUzI1NiJ9.sa-token-secret-5150.sig");
    for case in [
        "v1-hub",
        "v1-paths",
        "v1beta1-port",
        "v1-service-account",
        "v1-unknown-registry",
    ] {
        let request = golden(&format!("kubelet/{case}.request.json"));
        let out = node.provider(&[], &request, &[]);
        out.assert_code(0);
        assert!(out.stderr.is_empty(), "{case}: {out}");
        assert_eq!(
            json_of(&out.stdout),
            json_of(&golden(&format!("kubelet/{case}.response.json"))),
            "{case}"
        );
        assert_eq!(
            out.stdout.iter().filter(|b| **b == b'\n').count(),
            1,
            "{case}: one line"
        );
    }
}

#[test]
fn kubelet_hub_images_in_every_spelling_find_the_hub_entry() {
    let Some(node) = Node::new() else { return };
    for image in [
        "docker.io/library/nginx",
        "docker.io/bitnami/redis",
        "index.docker.io/library/busybox",
        "registry-1.docker.io/library/alpine",
    ] {
        let request = json!({
            "kind": "CredentialProviderRequest",
            "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
            "image": image,
        });
        let out = node.provider(&[], request.to_string().as_bytes(), &[]);
        out.assert_code(0);
        let auth = &json_of(&out.stdout)["auth"];
        let registry = image.split('/').next().unwrap();
        assert_eq!(
            auth,
            &json!({registry: {"username": "hubuser", "password": "hub-pass-4417"}}),
            "{image}"
        );
    }
}

#[test]
fn kubelet_cache_duration_flag_and_variable() {
    let Some(node) = Node::new() else { return };
    let request = golden("kubelet/v1-hub.request.json");
    let duration = |args: &[&str], vars: &[(&str, &str)]| {
        let out = node.provider(args, &request, vars);
        out.assert_code(0);
        json_of(&out.stdout)["cacheDuration"].clone()
    };
    assert_eq!(duration(&[], &[]), "5m0s");
    assert_eq!(duration(&["--cache-duration", "0"], &[]), "0s");
    assert_eq!(
        duration(&[], &[("LOCKBOX_KUBELET_CACHE_DURATION", "1h")]),
        "1h0m0s"
    );
    assert_eq!(
        duration(
            &["--cache-duration", "90s"],
            &[("LOCKBOX_KUBELET_CACHE_DURATION", "1h")]
        ),
        "1m30s"
    );
    for (args, vars) in [
        (&["--cache-duration", "25h"][..], &[][..]),
        (&["--cache-duration", "1.5s"], &[]),
        (&[], &[("LOCKBOX_KUBELET_CACHE_DURATION", "soon")]),
    ] {
        let out = node.provider(args, &request, vars);
        let err = assert_one_line_failure(&out, 2);
        assert!(err.contains("cache duration"), "{out}");
    }
}

#[test]
fn kubelet_locked_vault_fails_loudly_but_unknown_registries_need_no_key() {
    let Some(node) = Node::new() else { return };
    // No key source at all (kubelet's env without LOCKBOX_IDENTITY_FILE), no agent.
    let run_dir = node.env.path("run");
    let locked = [
        ("LOCKBOX_IDENTITY_FILE", ""),
        ("XDG_RUNTIME_DIR", run_dir.to_str().unwrap()),
    ];
    let out = node.provider(&[], &golden("kubelet/v1-hub.request.json"), &locked);
    // The key pipeline's own "cannot open" line (for this age-only vault it names the
    // identity variables; 3 when it says "locked"), never an empty answer.
    let code = if out.stderr_str().starts_with(LOCKED_PREFIX) {
        3
    } else {
        1
    };
    let err = assert_one_line_failure(&out, code);
    assert!(err.contains("LOCKBOX_IDENTITY"), "{out}");
    assert!(!err.contains("not found"), "{out}");
    // The registry the vault does not know is answered, with no auth, while locked.
    let out = node.provider(
        &[],
        &golden("kubelet/v1-unknown-registry.request.json"),
        &locked,
    );
    out.assert_code(0);
    assert_eq!(
        json_of(&out.stdout),
        json_of(&golden("kubelet/v1-unknown-registry.response.json"))
    );
    // A key that opens nothing is an error too, never an empty answer.
    let (other, _) = ssh_keygen(&node.env, "ed25519", "stranger", "x@y", "");
    let out = node.provider(
        &[],
        &golden("kubelet/v1-paths.request.json"),
        &[("LOCKBOX_IDENTITY_FILE", other.to_str().unwrap())],
    );
    assert_one_line_failure(&out, 1);
    // The locked runs never started an agent: nothing appeared in their runtime dir.
    assert_eq!(fs::read_dir(&run_dir).unwrap().count(), 0);
}

#[test]
fn kubelet_missing_or_damaged_vault_is_an_error() {
    let Some(node) = Node::new() else { return };
    let request = golden("kubelet/v1-unknown-registry.request.json");
    let missing = node.env.path("docker/lockbox/nope.json");
    let out = node.provider(
        &[],
        &request,
        &[("LOCKBOX_VAULT", missing.to_str().unwrap())],
    );
    let err = assert_one_line_failure(&out, 1);
    assert!(err.contains("nope.json"), "{out}");
    let bytes = node.env.vault_bytes();
    node.env.write_vault(&bytes[..bytes.len() / 2]);
    let out = node.provider(&[], &request, &[]);
    assert_one_line_failure(&out, 1);
    // Without LOCKBOX_VAULT and without HOME there is no vault to find: say so.
    let out = node.provider(&[], &request, &[("LOCKBOX_VAULT", "")]);
    assert_one_line_failure(&out, 1);
}

#[test]
fn kubelet_malformed_requests_are_refused_without_echoing_the_token() {
    let Some(node) = Node::new() else { return };
    let token = "eyJhbGciOiJSUzI1NiJ9.leaky-token-8086.sig";
    node.env.track_secret(token);
    let v1 = "credentialprovider.kubelet.k8s.io/v1";
    for bad in [
        String::new(),
        "{".into(),
        "[]".into(),
        json!({"image": "nginx"}).to_string(),
        json!({"apiVersion": "credentialprovider.kubelet.k8s.io/v1alpha1", "image": "nginx"})
            .to_string(),
        json!({"apiVersion": v1, "kind": "CredentialProviderResponse", "image": "nginx"})
            .to_string(),
        json!({"apiVersion": v1, "serviceAccountToken": token}).to_string(),
        format!(r#"{{"apiVersion":"{v1}","image":"a","serviceAccountToken":"{token}" x}}"#),
        format!(r#"{{"apiVersion":"{v1}","image":["{token}"]}}"#),
        format!(r#"{{"apiVersion":"{v1}","image":"a\u001b[2Jb"}}"#),
    ] {
        let out = node.provider(&[], bad.as_bytes(), &[]);
        let err = assert_one_line_failure(&out, 2);
        assert!(err.contains("CredentialProviderRequest"), "{out}");
        assert!(!err.contains('\u{1b}'), "{out}");
    }
    // Bounded input: past 1 MiB it stops reading and refuses.
    let mut huge = format!(r#"{{"apiVersion":"{v1}","image":"ghcr.io/a","x":""#).into_bytes();
    huge.resize(2 << 20, b'a');
    let out = node.provider(&[], &huge, &[]);
    let err = assert_one_line_failure(&out, 2);
    assert!(err.contains("larger than"), "{out}");
}

// --- export --format ----------------------------------------------------------------

/// Runs a tool with the test's environment, bounded, without logging it in the
/// harness (its stdout holds test credentials on purpose): (status ok, stdout, stderr).
fn tool(env: &TestEnv, program: &str, args: &[&str]) -> (bool, Vec<u8>, String) {
    let mut child = env
        .command(program, args, &[])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let status = wait_bounded(&mut child, RUN_LIMIT).unwrap_or_else(|| panic!("{program} hung"));
    let mut out = Vec::new();
    let mut err = Vec::new();
    use std::io::Read as _;
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_end(&mut err).unwrap();
    (
        status.success(),
        out,
        String::from_utf8_lossy(&err).into_owned(),
    )
}

fn export(node: &Node, args: &[&str]) -> Out {
    let mut all = vec!["export", "--identity-file", node.host_key.to_str().unwrap()];
    all.extend_from_slice(args);
    node.env.run(&all, "")
}

fn dockerconfigjson_of(secret: &Value) -> Value {
    let data = secret["data"][".dockerconfigjson"]
        .as_str()
        .expect("data..dockerconfigjson");
    json_of(&B64.decode(data).expect("base64"))
}

#[test]
fn export_k8s_secret_is_what_kubectl_makes() {
    let Some(node) = Node::new() else { return };
    if !require_tool("kubectl", "kubernetes-client") {
        return;
    }
    for (server, user, secret) in CREDS.iter().filter(|c| c.1 != "<token>") {
        for namespace in [None, Some("ci-builds")] {
            let mut ours = vec![
                "--format",
                "k8s-secret",
                "--name",
                "regcred",
                "--registry",
                server,
            ];
            // kubectl is given the password in argv here: a throwaway test credential.
            let server_arg = format!("--docker-server={server}");
            let user_arg = format!("--docker-username={user}");
            let pass_arg = format!("--docker-password={secret}");
            let mut theirs = vec![
                "create",
                "secret",
                "docker-registry",
                "regcred",
                &server_arg,
                &user_arg,
                &pass_arg,
                "--dry-run=client",
                "-o",
                "json",
            ];
            if let Some(ns) = namespace {
                ours.extend(["--namespace", ns]);
                theirs.extend(["-n", ns]);
            }
            let out = export(&node, &ours);
            out.assert_code(0);
            assert!(out.stderr_str().contains("PLAINTEXT"), "{out}");
            let mine = json_of(&out.stdout);
            let (ok, stdout, stderr) = tool(&node.env, "kubectl", &theirs);
            assert!(ok, "kubectl failed: {stderr}");
            let mut kubectl = json_of(&stdout);
            // The payload, as JSON values: the point of the comparison.
            assert_eq!(
                dockerconfigjson_of(&mine),
                dockerconfigjson_of(&kubectl),
                "{server}"
            );
            // And the manifest around it, apart from kubectl's null timestamp.
            kubectl["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("creationTimestamp");
            let strip = |mut v: Value| {
                v["data"][".dockerconfigjson"] = json!("…");
                v
            };
            assert_eq!(strip(mine), strip(kubectl), "{server} {namespace:?}");
        }
    }
    // The whole vault in one Secret: every registry, the identity token left out.
    let out = export(&node, &["--format", "k8s-secret", "--name", "all"]);
    out.assert_code(0);
    assert!(out.stderr_str().contains("left out quay.io"), "{out}");
    let auths = dockerconfigjson_of(&json_of(&out.stdout))["auths"].clone();
    assert_eq!(auths.as_object().unwrap().len(), 4, "{auths}");
    // The bare payload is the same JSON, on one line.
    let out = export(&node, &["--format", "dockerconfigjson"]);
    out.assert_code(0);
    assert_eq!(out.stdout_str().lines().count(), 1);
    assert_eq!(json_of(&out.stdout)["auths"], auths);
}

#[test]
fn export_docker_auth_config_matches_the_docker_cli_6008_example() {
    let env = TestEnv::new();
    let (id, recipient, _) = age_keygen(&env, "owner");
    env.run(&["init", "--recipient", &recipient], "")
        .assert_code(0);
    env.store("https://index.docker.io/v1/", "hi", "):dckr_pat_hello");
    env.store("ghcr.io", "<token>", "ghcr-identity-token-31");
    let out = env.run(
        &[
            "export",
            "--format",
            "docker-auth-config",
            "--identity-file",
            id.to_str().unwrap(),
        ],
        "",
    );
    out.assert_code(0);
    assert_eq!(out.stdout, golden("docker-auth-config.6008.txt"));
    assert!(out.stderr_str().contains("left out ghcr.io"), "{out}");
}

#[test]
fn export_containers_auth_is_read_by_skopeo() {
    let Some(node) = Node::new() else { return };
    if !require_tool("skopeo", "skopeo") {
        return;
    }
    let out = export(&node, &["--format", "containers-auth"]);
    out.assert_code(0);
    let doc = json_of(&out.stdout);
    assert_eq!(
        doc["auths"]["quay.io"],
        json!({"identitytoken": "quay-identity-token-2718"})
    );
    assert!(
        doc["auths"].get("docker.io").is_some(),
        "Hub is keyed docker.io: {doc}"
    );
    // auth.json lives in keys/ (the one place a test may leave a secret in a file).
    let authfile = node.env.keys_dir().join("auth.json");
    fs::write(&authfile, &out.stdout).unwrap();
    let authfile = authfile.to_str().unwrap();
    for (registry, user) in [
        ("docker.io", "hubuser"),
        ("ghcr.io", "octo"),
        ("registry.example.com:5000", "ci"),
    ] {
        let (ok, stdout, stderr) = tool(
            &node.env,
            "skopeo",
            &["login", "--get-login", "--authfile", authfile, registry],
        );
        assert!(ok, "skopeo --get-login {registry}: {stderr}");
        assert_eq!(String::from_utf8_lossy(&stdout).trim(), user, "{registry}");
    }
    // --registry picks entries as `get` does.
    let out = export(
        &node,
        &[
            "--format",
            "containers-auth",
            "--registry",
            "docker.io",
            "--registry",
            "https://ghcr.io/",
        ],
    );
    out.assert_code(0);
    let keys: Vec<String> = json_of(&out.stdout)["auths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["ghcr.io", "docker.io"]);
}

#[test]
fn export_refuses_a_terminal_and_bad_combinations() {
    let Some(node) = Node::new() else { return };
    if !require_tool("script", "util-linux") {
        return;
    }
    let id = node.host_key.to_str().unwrap();
    // `script` gives the command a terminal for its stdout.
    let cmd = format!("{BIN} export --identity-file {id}");
    let out = node
        .env
        .run_program("script", &["-qec", &cmd, "/dev/null"], &[]);
    assert_ne!(out.code(), 0, "{out}");
    assert!(
        out.stdout_str().contains("refusing to print plaintext"),
        "{out}"
    );
    let cmd = format!("{BIN} export --allow-terminal --registry ghcr.io --identity-file {id}");
    let (ok, stdout, _) = tool(&node.env, "script", &["-qec", &cmd, "/dev/null"]);
    assert!(ok);
    assert!(String::from_utf8_lossy(&stdout).contains(&B64.encode("octo:ghcr-pass-7781")));

    let config = node.env.path("docker/config.json");
    for (args, says) in [
        (&["--format", "k8s-secret"][..], "needs --name"),
        (
            &["--format", "k8s-secret", "--name", "Bad_Name"],
            "not a valid Secret name",
        ),
        (
            &[
                "--format",
                "k8s-secret",
                "--name",
                "ok",
                "--namespace",
                "a.b",
            ],
            "not a valid namespace",
        ),
        (&["--name", "x"], "go with --format k8s-secret"),
        (
            &["--registry", "nowhere.example"],
            "no entry in the vault matches --registry nowhere.example",
        ),
        (
            &[
                "--format",
                "containers-auth",
                "--to-config",
                config.to_str().unwrap(),
            ],
            "--format docker-config only",
        ),
    ] {
        let out = export(&node, args);
        out.assert_code(2);
        assert!(out.stdout.is_empty(), "{out}");
        assert!(out.stderr_str().contains(says), "{args:?}: {out}");
    }
    // --to-config with --registry merges only that registry.
    export(
        &node,
        &[
            "--to-config",
            config.to_str().unwrap(),
            "--registry",
            "ghcr.io",
        ],
    )
    .assert_code(0);
    let merged: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    let keys: Vec<&String> = merged["auths"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["ghcr.io"]);
    // The merged plaintext file was the point of that run; remove it before the
    // harness looks for secrets in files.
    fs::remove_file(&config).unwrap();
}
