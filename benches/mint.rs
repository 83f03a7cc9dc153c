//! Mint latency of the sealed sources' network kinds (`docs/PERFORMANCE.md`): SigV4
//! signing alone, then each kind's whole `mint` against the local servers of the tests
//! (`tests/common/token_server.py`, moto), each iteration with a new client as a `get`
//! that mints has (a new connection; the CA bundle is read once per process).
//!
//! Run: `LOCKBOX_TEST_PYTHON=/tmp/lockbox-venv/bin/python cargo bench --bench mint`
//! (the venv of `scripts/test.sh`). Without that Python the server benchmarks are left
//! out with a note. Nothing here asserts a timing; the numbers are for people, and the
//! servers' own time (Python) is in them.
use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use age::secrecy::SecretString;
use criterion::{Criterion, criterion_group, criterion_main};
use lockbox::http::Http;
use lockbox::sources::{Params, aws, azure, gcp, oauth2, sigv4};

/// A server process, killed by its PID when dropped.
struct Server {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("LOCKBOX_TEST_PYTHON").map(PathBuf::from);
    if p.is_none() {
        eprintln!("mint benchmarks against servers left out: set LOCKBOX_TEST_PYTHON");
    }
    p
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/common")
        .join(name)
}

/// `token_server.py --kind kind` with `files` in its directory; its port.
fn token_server(kind: &str, files: &[(&str, &[u8])], args: &[&str]) -> Option<(Server, u16)> {
    let python = python()?;
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let child = Command::new(python)
        .arg(script("token_server.py"))
        .args(["--kind", kind, "--dir"])
        .arg(dir.path())
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let port_file = dir.path().join("port");
    let server = Server { child, _dir: dir };
    for _ in 0..600 {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            return Some((server, port));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("token_server.py --kind {kind} did not start within 30 s");
}

fn params(kv: &[(&str, &str)]) -> Params {
    kv.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
}

fn sign(c: &mut Criterion) {
    let credentials = sigv4::Credentials {
        access_key_id: "AKIDEXAMPLE",
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token: None,
    };
    let headers = [
        (
            "X-Amz-Target",
            "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
        ),
        ("Content-Type", "application/x-amz-json-1.1"),
    ];
    let request = sigv4::Request {
        method: "POST",
        host: "api.ecr.eu-west-1.amazonaws.com",
        path: "/",
        headers: &headers,
        body: b"{}",
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    c.bench_function("sigv4_sign_ecr", |b| {
        b.iter(|| sigv4::sign(black_box(&request), &credentials, "eu-west-1", "ecr", now))
    });
}

fn mint_oauth2(c: &mut Criterion) {
    let Some((_server, port)) = token_server(
        "oauth2",
        &[("refresh_token", b"rt-bench")],
        &["--client-id", "docker"],
    ) else {
        return;
    };
    let url = format!("http://127.0.0.1:{port}/token");
    let p = params(&[("token-url", &url), ("client-id", "docker")]);
    let secret = SecretString::from("rt-bench".to_owned());
    c.bench_function("mint_oauth2", |b| {
        b.iter(|| {
            let http = Http::new(Duration::from_secs(20));
            oauth2::mint("r", &p, &secret, &http, SystemTime::now()).unwrap()
        })
    });
}

fn mint_gcp(c: &mut Criterion) {
    let Some(dir) = python().map(|_| tempfile::tempdir().unwrap()) else {
        return;
    };
    let key = dir.path().join("k.pem");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "openssl genpkey");
    let public = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .output()
        .unwrap()
        .stdout;
    let email = "bench@lockbox-test.iam.gserviceaccount.com";
    let Some((_server, port)) = token_server(
        "gcp",
        &[("public.pem", &public)],
        &["--client-email", email, "--key-id", "k1"],
    ) else {
        return;
    };
    let file = serde_json::json!({
        "type": "service_account",
        "private_key_id": "k1",
        "private_key": std::fs::read_to_string(&key).unwrap(),
        "client_email": email,
    });
    let secret = SecretString::from(file.to_string());
    let p = params(&[("token-uri", &format!("http://127.0.0.1:{port}/token"))]);
    c.bench_function("mint_gcp", |b| {
        b.iter(|| {
            let http = Http::new(Duration::from_secs(20));
            gcp::mint(
                "europe-docker.pkg.dev",
                &p,
                &secret,
                &http,
                SystemTime::now(),
            )
            .unwrap()
        })
    });
}

fn mint_azure(c: &mut Criterion) {
    let registry = "lockboxtest.azurecr.io";
    let Some((_server, port)) = token_server(
        "azure",
        &[("client_secret", b"azure-bench-secret")],
        &["--tenant", "t", "--client-id", "c", "--registry", registry],
    ) else {
        return;
    };
    let base = format!("http://127.0.0.1:{port}");
    let p = params(&[
        ("tenant", "t"),
        ("client-id", "c"),
        ("authority", &base),
        ("endpoint", &base),
    ]);
    let secret = SecretString::from("azure-bench-secret".to_owned());
    c.bench_function("mint_azure_acr", |b| {
        b.iter(|| {
            let http = Http::new(Duration::from_secs(20));
            azure::mint(registry, &p, &secret, &http, SystemTime::now()).unwrap()
        })
    });
}

fn mint_aws(c: &mut Criterion) {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&python)
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "9")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server {
        child,
        _dir: tempfile::tempdir().unwrap(),
    };
    let up = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "moto did not start within 60 s");
    let url = format!("http://127.0.0.1:{port}/");
    let out = dir.path().join("creds.json");
    let ok = Command::new(&python)
        .arg(script("moto_setup.py"))
        .arg(&url)
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "moto_setup.py");
    let creds: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let secret = SecretString::from(creds["secret_access_key"].as_str().unwrap().to_owned());
    let base = params(&[
        ("region", "eu-west-1"),
        ("access-key-id", creds["access_key_id"].as_str().unwrap()),
        ("endpoint", &url),
    ]);
    let mut role = base.clone();
    role.insert(
        "role-arn".into(),
        creds["role_arn"].as_str().unwrap().into(),
    );
    let registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    for (name, p) in [("mint_aws_ecr", &base), ("mint_aws_ecr_assume_role", &role)] {
        c.bench_function(name, |b| {
            b.iter(|| {
                let http = Http::new(Duration::from_secs(20));
                aws::mint(registry, p, &secret, &http, SystemTime::now()).unwrap()
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = sign, mint_oauth2, mint_gcp, mint_azure, mint_aws
}
criterion_main!(benches);
