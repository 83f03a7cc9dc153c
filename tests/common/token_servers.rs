//! The real and fake servers the sealed sources mint from, for any suite:
//!
//! - [`TokenServer`]: `tests/common/token_server.py --kind gcp|azure|oauth2`, loopback
//!   token endpoints that verify what Google, Entra ID/ACR and an OAuth2 server verify,
//!   and count ([`TokenServer::count`]);
//! - [`Moto`]: `python -m moto.server` (PyPI `moto[server]`) with its IAM checks on,
//!   set up by `tests/common/moto_setup.py` (a user and key allowed ECR and
//!   AssumeRole, a role, a user allowed nothing).
//!
//! Both run the Python of `LOCKBOX_TEST_PYTHON` (scripts/test.sh's venv, which has
//! `moto[server]` and `pyjwt[crypto]`), listen on 127.0.0.1 only and are stopped by PID
//! when dropped. Missing Python packages: `None` with a note, or a failure under `CI`.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{At, require};

/// The Python with the test packages: `LOCKBOX_TEST_PYTHON`, else `python3`, if it
/// imports `modules`.
pub fn python_with(modules: &str) -> Option<PathBuf> {
    let python = std::env::var_os("LOCKBOX_TEST_PYTHON")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let ok = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require(
        ok,
        &format!("Python with {modules}"),
        "the PyPI packages moto[server]==5.2.6 and pyjwt[crypto]==2.15.1 (scripts/test.sh) and set LOCKBOX_TEST_PYTHON",
    )
    .then_some(python)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/common")
        .join(name)
}

/// A child process killed by its PID (and reaped) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a token server has seen.
#[derive(Debug, serde::Deserialize)]
pub struct Count {
    /// Every POST.
    pub requests: u64,
    /// Tokens handed out.
    pub issued: u64,
    /// Those tokens, in order.
    pub tokens: Vec<String>,
}

/// `tests/common/token_server.py` on 127.0.0.1.
pub struct TokenServer {
    child: Killed,
    /// Its directory: `port`, and the secret files it was given.
    pub dir: tempfile::TempDir,
    /// Its port.
    pub port: u16,
}

impl TokenServer {
    /// Starts `--kind kind` with `files` written into its directory first (gcp:
    /// `public.pem`; azure: `client_secret`; oauth2: `refresh_token`; gcp and oauth2,
    /// optional: `access_token`, the token to hand out every time; `--tls`: `cert.pem`
    /// and `key.pem`) and `args` (say
    /// `--expires-in 60`, `--delay 5`, `--rotate`, `--client-email E`, `--key-id K`,
    /// `--client-id C`, `--tenant T`, `--registry R`). `None` when Python lacks pyjwt
    /// (outside CI).
    pub fn start(kind: &str, files: &[(&str, &[u8])], args: &[&str]) -> Option<TokenServer> {
        let python = python_with("jwt, cryptography")?;
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::write(&path, content).at("write", &path);
        }
        let child = Command::new(python)
            .arg(script("token_server.py"))
            .args(["--kind", kind, "--dir"])
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr")).unwrap(),
            ))
            .spawn()
            .expect("start tests/common/token_server.py");
        let mut child = Killed(child);
        let port_file = dir.path().join("port");
        let port = wait_for(&mut child.0, &dir.path().join("stderr"), || {
            std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse::<u16>().ok())
        });
        Some(TokenServer { child, dir, port })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its PID (to stop it early: it is also stopped when dropped).
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// What it has seen: its `count.json`, rewritten before each answer (`GET /count`
    /// answers the same over plain HTTP).
    pub fn count(&self) -> Count {
        let path = self.dir.path().join("count.json");
        let text = std::fs::read_to_string(&path).at("read", &path);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
    }
}

/// Polls `ready` every 50 ms for at most 30 s; fails naming the server's stderr when it
/// exits or never gets ready.
fn wait_for<T>(child: &mut Child, stderr: &Path, mut ready: impl FnMut() -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(v) = ready() {
            return v;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the server exited ({status}): {}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "the server was not ready within 30 s: {}",
        std::fs::read_to_string(stderr).unwrap_or_default()
    );
}

/// A plain HTTP/1.0 GET to 127.0.0.1:`port`, its body (5 s bound).
pub fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.take(1 << 20).read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// What `moto_setup.py` made.
#[derive(serde::Deserialize)]
pub struct MotoCredentials {
    /// lockbox-ci's access key ID.
    pub access_key_id: String,
    /// lockbox-ci's secret access key.
    pub secret_access_key: String,
    /// lockbox-nobody's (no policy).
    pub nobody_key_id: String,
    /// lockbox-nobody's secret.
    pub nobody_secret: String,
    /// lockbox-push, which lockbox-ci may assume.
    pub role_arn: String,
}

/// `moto_server` on 127.0.0.1 with IAM checks on after its set-up.
pub struct Moto {
    _child: Killed,
    _dir: tempfile::TempDir,
    /// Its port.
    pub port: u16,
    /// The set-up's keys.
    pub creds: MotoCredentials,
}

/// The requests `moto_setup.py` makes before every request is checked.
const MOTO_SETUP_REQUESTS: &str = "9";

impl Moto {
    /// Starts and sets up moto; `None` when Python lacks moto (outside CI).
    pub fn start() -> Option<Moto> {
        let python = python_with("moto.server, boto3")?;
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let stderr = dir.path().join("stderr");
            let child = Command::new(&python)
                .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .env("INITIAL_NO_AUTH_ACTION_COUNT", MOTO_SETUP_REQUESTS)
                .env("HOME", dir.path())
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env_remove("AWS_SESSION_TOKEN")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
                .spawn()
                .expect("start python -m moto.server");
            let mut child = Killed(child);
            // A port taken meanwhile makes moto exit: try another.
            let started = Instant::now();
            let mut up = false;
            while started.elapsed() < Duration::from_secs(60) {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    up = true;
                    break;
                }
                if let Ok(Some(_)) = child.0.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
            if !up {
                continue;
            }
            let out = dir.path().join("creds.json");
            let status = Command::new(&python)
                .arg(script("moto_setup.py"))
                .arg(format!("http://127.0.0.1:{port}"))
                .arg(&out)
                .env("HOME", dir.path())
                .stdin(Stdio::null())
                .status()
                .expect("run moto_setup.py");
            assert!(status.success(), "moto_setup.py failed");
            let creds = serde_json::from_slice(&std::fs::read(&out).at("read", &out)).unwrap();
            return Some(Moto {
                _child: child,
                _dir: dir,
                port,
                creds,
            });
        }
        panic!("moto did not start on a free port in 5 tries");
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

/// A service-account key made for this run by `openssl genpkey` (2048-bit RSA,
/// PKCS#8 PEM): (private PEM, public PEM).
pub fn rsa_key_pair(dir: &Path) -> (String, String) {
    let private = dir.join("sa-private.pem");
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&private)
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian package openssl)");
    assert!(status.success(), "openssl genpkey");
    let public = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .output()
        .expect("openssl pkey");
    assert!(public.status.success(), "openssl pkey -pubout");
    let pem = std::fs::read_to_string(&private).at("read", &private);
    std::fs::remove_file(&private).at("remove", &private);
    (pem, String::from_utf8(public.stdout).unwrap())
}

/// A Google service-account key file (JSON) for `email`, `key_id` and `private_pem`.
/// Its `token_uri` points elsewhere on purpose: lockbox must not use it.
pub fn service_account_json(email: &str, key_id: &str, private_pem: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": "lockbox-test",
        "private_key_id": key_id,
        "private_key": private_pem,
        "client_email": email,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://attacker.invalid/token",
    })
    .to_string()
}
