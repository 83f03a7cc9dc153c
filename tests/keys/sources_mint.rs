//! The network kinds of the sealed sources (`src/sources/`), called through the library
//! against real local servers (`tests/common/token_servers.rs`):
//!
//! - `aws-ecr` against moto with its IAM checks on: a good key mints, a wrong secret
//!   gets `SignatureDoesNotMatch` in one line, a key without a policy `AccessDenied`,
//!   and AssumeRole then ECR with the session;
//! - `gcp`, `azure-acr`, `oauth2` against `tests/common/token_server.py`, which checks
//!   the RS256 signature, `aud`, `iss`, `exp`, the client secret, the exchange's fields;
//! - the client's rules with tiny servers: a hanging endpoint is given up within the
//!   deadline, a redirect is not followed, an answer over the bound is not read.
use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use age::secrecy::{ExposeSecret, SecretString};
use lockbox::http::Http;
use lockbox::sources::{self, MintError, Minted, Params, aws, azure, gcp, oauth2};

use crate::common::token_servers::{Moto, TokenServer, rsa_key_pair, service_account_json};

fn params(kv: &[(&str, &str)]) -> Params {
    kv.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn http() -> Http {
    Http::new(Duration::from_secs(20))
}

/// A failure's one line: names the endpoint, holds none of `secrets`.
fn one_line(e: &MintError, endpoint: &str, secrets: &[&str]) -> String {
    let line = e.to_string();
    assert_eq!(e.endpoint, endpoint, "{line}");
    assert!(line.contains(endpoint), "{line}");
    assert!(!line.contains('\n'), "{line}");
    for s in secrets {
        assert!(!line.contains(s), "a secret in: {line}");
    }
    line
}

fn minted(r: Result<Minted, MintError>) -> Minted {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn aws_ecr_against_moto_with_iam_checks() {
    let Some(moto) = Moto::start() else { return };
    let c = &moto.creds;
    let registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    let base = params(&[
        ("region", "eu-west-1"),
        ("access-key-id", &c.access_key_id),
        ("endpoint", &moto.url()),
    ]);
    assert_eq!(aws::check(&base), Ok(()));
    let now = SystemTime::now();
    let good = secret(&c.secret_access_key);
    let m = minted(aws::mint(registry, &base, &good, &http(), now));
    assert_eq!(m.username, "AWS");
    // moto's password and its fixed expiry (2015-01-01, as moto answers).
    assert_eq!(m.secret.expose_secret(), "123456789012-auth-token");
    assert_eq!(
        m.expires_at,
        Some(UNIX_EPOCH + Duration::from_secs(1_420_070_400))
    );

    // A wrong secret: moto computes the signature and refuses it.
    let wrong = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYWRONGKEY";
    let e = aws::mint(registry, &base, &secret(wrong), &http(), now)
        .err()
        .unwrap();
    let line = one_line(&e, &moto.url(), &[wrong]);
    assert!(line.contains("HTTP 403 SignatureDoesNotMatch"), "{line}");
    assert!(
        line.starts_with("the aws-ecr source for 123456789012.dkr.ecr"),
        "{line}"
    );

    // A key whose user may do nothing: IAM refuses the action.
    let nobody = params(&[
        ("region", "eu-west-1"),
        ("access-key-id", &c.nobody_key_id),
        ("endpoint", &moto.url()),
    ]);
    let e = aws::mint(registry, &nobody, &secret(&c.nobody_secret), &http(), now)
        .err()
        .unwrap();
    let line = one_line(&e, &moto.url(), &[&c.nobody_secret]);
    assert!(line.contains("AccessDenied"), "{line}");

    // AssumeRole first, then ECR signed with the session's key and token.
    let mut role = base.clone();
    role.insert("role-arn".into(), c.role_arn.clone());
    assert_eq!(aws::check(&role), Ok(()));
    let m = minted(aws::mint(registry, &role, &good, &http(), now));
    assert_eq!(m.username, "AWS");
    assert_eq!(m.secret.expose_secret(), "123456789012-auth-token");
    let e = aws::mint(registry, &role, &secret(wrong), &http(), now)
        .err()
        .unwrap();
    let line = one_line(&e, &moto.url(), &[wrong]);
    assert!(line.contains("SignatureDoesNotMatch"), "{line}");
    // The dispatcher reaches the same code.
    let m = sources::network::mint_http("aws-ecr", registry, &base, &good, &http(), now)
        .unwrap()
        .unwrap();
    assert_eq!(m.secret.expose_secret(), "123456789012-auth-token");
    assert!(sources::network::mint_http("exec", registry, &base, &good, &http(), now).is_none());
}

#[test]
fn gcp_jwt_bearer_against_a_token_server_that_verifies_the_assertion() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = rsa_key_pair(dir.path());
    let email = "pusher@lockbox-test.iam.gserviceaccount.com";
    let Some(server) = TokenServer::start(
        "gcp",
        &[("public.pem", public.as_bytes())],
        &[
            "--client-email",
            email,
            "--key-id",
            "k1",
            "--expires-in",
            "1800",
        ],
    ) else {
        return;
    };
    let url = format!("{}/token", server.url());
    let p = params(&[("token-uri", &url)]);
    let key = secret(&service_account_json(email, "k1", &private));
    assert_eq!(sources::network::check_http("gcp", &p, &key), Some(Ok(())));
    let now = SystemTime::now();
    let m = minted(gcp::mint("europe-docker.pkg.dev", &p, &key, &http(), now));
    assert_eq!(m.username, "oauth2accesstoken");
    assert_eq!(m.expires_at, Some(now + Duration::from_secs(1800)));
    let count = server.count();
    assert_eq!((count.requests, count.issued), (1, 1));
    assert_eq!(m.secret.expose_secret(), count.tokens[0]);

    // Another key under the same name: the signature does not verify.
    let (other, _) = rsa_key_pair(dir.path());
    let forged = secret(&service_account_json(email, "k1", &other));
    let e = gcp::mint("europe-docker.pkg.dev", &p, &forged, &http(), now)
        .err()
        .unwrap();
    let line = one_line(&e, &url, &["PRIVATE KEY"]);
    assert!(
        line.ends_with("HTTP 400 invalid_grant: Invalid JWT Signature."),
        "{line}"
    );
    // Another issuer, or a clock two hours slow (exp past): refused.
    let stranger = secret(&service_account_json(
        "x@y.iam.gserviceaccount.com",
        "k1",
        &private,
    ));
    let e = gcp::mint("r", &p, &stranger, &http(), now).err().unwrap();
    assert!(one_line(&e, &url, &[]).contains("invalid_grant: Invalid JWT: InvalidIssuerError"));
    let slow = now - Duration::from_secs(7200);
    let e = gcp::mint("r", &p, &key, &http(), slow).err().unwrap();
    assert!(one_line(&e, &url, &[]).contains("ExpiredSignatureError"));
    let count = server.count();
    assert_eq!((count.requests, count.issued), (4, 1));
}

#[test]
fn azure_client_credentials_then_the_acr_exchange() {
    let client_secret = "azure~Client.Secret-0123456789";
    let registry = "lockboxtest.azurecr.io";
    let Some(server) = TokenServer::start(
        "azure",
        &[("client_secret", client_secret.as_bytes())],
        &[
            "--tenant",
            "t-1",
            "--client-id",
            "c-1",
            "--registry",
            registry,
        ],
    ) else {
        return;
    };
    let p = params(&[
        ("tenant", "t-1"),
        ("client-id", "c-1"),
        ("authority", &server.url()),
        ("endpoint", &server.url()),
    ]);
    assert_eq!(azure::check(&p), Ok(()));
    let m = minted(azure::mint(
        registry,
        &p,
        &secret(client_secret),
        &http(),
        SystemTime::now(),
    ));
    assert_eq!(m.username, "00000000-0000-0000-0000-000000000000");
    let count = server.count();
    assert_eq!((count.requests, count.issued), (2, 1));
    let by_get: serde_json::Value = serde_json::from_str(&crate::common::token_servers::http_get(
        server.port,
        "/count",
    ))
    .unwrap();
    assert_eq!(by_get["tokens"][0], count.tokens[0].as_str());
    assert_eq!(m.secret.expose_secret(), count.tokens[0]);
    let exp = lockbox::vault::meta::jwt_expiry(&count.tokens[0]).unwrap();
    assert_eq!(m.expires_at, Some(UNIX_EPOCH + Duration::from_secs(exp)));

    let token_url = format!("{}/t-1/oauth2/v2.0/token", server.url());
    let e = azure::mint(
        registry,
        &p,
        &secret("wrong-secret-value"),
        &http(),
        SystemTime::now(),
    )
    .err()
    .unwrap();
    let line = one_line(&e, &token_url, &["wrong-secret-value", client_secret]);
    assert!(
        line.contains("HTTP 401 invalid_client: AADSTS7000215"),
        "{line}"
    );
    // Asked for another registry: the exchange refuses the service.
    let exchange = format!("{}/oauth2/exchange", server.url());
    let e = azure::mint(
        "other.azurecr.io",
        &p,
        &secret(client_secret),
        &http(),
        SystemTime::now(),
    )
    .err()
    .unwrap();
    let line = one_line(&e, &exchange, &[client_secret]);
    assert!(
        line.contains("HTTP 400 invalid_request: wrong service"),
        "{line}"
    );
}

#[test]
fn oauth2_refresh_grant_and_a_rotating_server() {
    let refresh = "rt-first-refresh-token-0123456789";
    let Some(server) = TokenServer::start(
        "oauth2",
        &[("refresh_token", refresh.as_bytes())],
        &["--client-id", "docker", "--expires-in", "300"],
    ) else {
        return;
    };
    let url = format!("{}/token", server.url());
    let p = params(&[
        ("token-url", &url),
        ("client-id", "docker"),
        ("username", "ci-bot"),
    ]);
    assert_eq!(oauth2::check(&p), Ok(()));
    let now = SystemTime::now();
    let m = minted(oauth2::mint(
        "registry.example",
        &p,
        &secret(refresh),
        &http(),
        now,
    ));
    assert_eq!(m.username, "ci-bot");
    assert_eq!(m.expires_at, Some(now + Duration::from_secs(300)));
    assert_eq!(m.secret.expose_secret(), server.count().tokens[0]);
    // A fixed access token (an end-to-end test's htpasswd password) is handed out as is.
    std::fs::write(
        server.dir.path().join("access_token"),
        "at-fixed-for-htpasswd",
    )
    .unwrap();
    let m = minted(oauth2::mint(
        "registry.example",
        &p,
        &secret(refresh),
        &http(),
        now,
    ));
    assert_eq!(m.secret.expose_secret(), "at-fixed-for-htpasswd");
    let wrong = "rt-not-the-refresh-token";
    let e = oauth2::mint("registry.example", &p, &secret(wrong), &http(), now)
        .err()
        .unwrap();
    let line = one_line(&e, &url, &[wrong, refresh]);
    assert!(line.contains("HTTP 400 invalid_grant"), "{line}");

    // A server that rotates: the new refresh token comes back, the old one is dead.
    let Some(rotating) = TokenServer::start(
        "oauth2",
        &[("refresh_token", refresh.as_bytes())],
        &["--client-id", "docker", "--rotate"],
    ) else {
        return;
    };
    let url = format!("{}/token", rotating.url());
    let p = params(&[("token-url", &url), ("client-id", "docker")]);
    let (m, next) = oauth2::mint_rotating("r", &p, &secret(refresh), &http(), now).unwrap();
    assert_eq!(m.username, "oauth2accesstoken");
    let next = next.expect("the rotated refresh token");
    let on_server = std::fs::read_to_string(rotating.dir.path().join("refresh_token")).unwrap();
    assert_eq!(next.expose_secret(), on_server.trim());
    assert!(oauth2::mint("r", &p, &secret(refresh), &http(), now).is_err());
    assert!(oauth2::mint("r", &p, &next, &http(), now).is_ok());
}

#[test]
fn a_hanging_token_endpoint_is_given_up_within_the_deadline() {
    let Some(server) = TokenServer::start(
        "oauth2",
        &[("refresh_token", b"rt-hang")],
        &["--client-id", "docker", "--delay", "30"],
    ) else {
        return;
    };
    let url = format!("{}/token", server.url());
    let p = params(&[("token-url", &url), ("client-id", "docker")]);
    let http = Http::new(Duration::from_secs(1));
    let e = oauth2::mint("r", &p, &secret("rt-hang"), &http, SystemTime::now())
        .err()
        .unwrap();
    let line = one_line(&e, &url, &["rt-hang"]);
    assert!(line.ends_with("no answer within 1 s"), "{line}");
}

/// A server on 127.0.0.1 that answers each of at most `n` connections with
/// `response`, in a thread: it reads the whole request first (headers and
/// `Content-Length` body) and drains the socket before closing, so the client never
/// meets a reset instead of the answer.
fn canned(response: Vec<u8>, n: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            read_request(&mut s);
            let _ = s.write_all(&response);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = s.read_to_end(&mut Vec::new());
        }
    });
    format!("http://127.0.0.1:{port}/token")
}

/// Reads one HTTP request (at most 64 KiB) from `s`.
fn read_request(s: &mut std::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while buf.len() < 64 * 1024 {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

#[test]
fn redirects_are_not_followed_and_huge_answers_not_read() {
    let p = |url: &str| params(&[("token-url", url), ("client-id", "docker")]);
    let url = canned(
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:9/steal\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
        1,
    );
    let e = oauth2::mint("r", &p(&url), &secret("rt-x1"), &http(), SystemTime::now())
        .err()
        .unwrap();
    let line = one_line(&e, &url, &["rt-x1"]);
    assert!(
        line.contains("HTTP 307 (a redirect, not followed"),
        "{line}"
    );

    let mut huge = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 2097152\r\n\r\n".to_vec();
    huge.extend(std::iter::repeat_n(b' ', 2 << 20));
    let url = canned(huge, 1);
    let e = oauth2::mint("r", &p(&url), &secret("rt-x2"), &http(), SystemTime::now())
        .err()
        .unwrap();
    let line = one_line(&e, &url, &["rt-x2"]);
    assert!(line.contains("over 1024 KiB"), "{line}");
}

#[test]
fn https_to_a_server_whose_certificate_no_system_ca_signed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (Debian package openssl)");
    assert!(status.success(), "openssl req -x509");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("refresh_token", b"rt-tls-1".to_vec()),
        ("cert.pem", std::fs::read(&cert).unwrap()),
        ("key.pem", std::fs::read(&key).unwrap()),
    ];
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (*n, c.as_slice())).collect();
    let Some(server) = TokenServer::start("oauth2", &files, &["--client-id", "docker", "--tls"])
    else {
        return;
    };
    let url = format!("https://127.0.0.1:{}/token", server.port);
    let p = params(&[("token-url", &url), ("client-id", "docker")]);
    let e = oauth2::mint("r", &p, &secret("rt-tls-1"), &http(), SystemTime::now())
        .err()
        .unwrap();
    let line = one_line(&e, &url, &["rt-tls-1"]);
    assert!(
        line.contains("the server's TLS certificate is not trusted"),
        "{line}"
    );
    assert!(line.contains("UnknownIssuer"), "{line}");
    // Nothing reached the server's handler: the TLS handshake failed first.
    assert_eq!(server.count().requests, 0);
}
