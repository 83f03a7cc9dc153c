//! Loopback fakes of the two registry APIs `lockbox rotate` calls, built from their
//! public API documentation (no GitLab or Harbor can run here), kept small:
//!
//! - **GitLab**, "Personal access tokens API" → "Rotate a personal access token":
//!   `POST /api/v4/personal_access_tokens/self/rotate`, the token in `PRIVATE-TOKEN`,
//!   an optional `expires_at` (`YYYY-MM-DD`) in the JSON body; `200` with the new
//!   token's `token` and `expires_at`, the old token revoked at once; `401` for a token
//!   that is revoked or unknown; `400` for a date that is not one. Also `GET
//!   /api/v4/personal_access_tokens/self` (`200` for an active token, else `401`).
//! - **Harbor**, v2.0 swagger, "Refresh the robot secret": `PATCH
//!   /api/v2.0/robots/{robot_id}` with `{"secret": …}` and HTTP basic auth as the
//!   robot; `200` with `{"secret": …}`, the old secret refused from then on; `400` for
//!   a secret outside Harbor's rule (8 to 128 characters, upper, lower, digit); `401`
//!   for wrong credentials; `404` for another robot id. `GET /api/v2.0/robots/{id}`:
//!   the robot with `expires_at` (Unix seconds).
//!
//! One thread per fake on 127.0.0.1, one connection at a time (`Connection: close`),
//! every read bounded, stopped on drop (a flag and a last connection to wake it).
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// Which API a fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Gitlab,
    Harbor,
}

/// What a fake holds.
#[derive(Debug, Default)]
pub struct State {
    /// The one credential it accepts now (GitLab token, Harbor robot secret).
    pub current: String,
    /// Credentials it accepted once and refuses now.
    pub revoked: Vec<String>,
    /// The Harbor robot's name (`robot$…`) and id.
    pub robot: (String, u64),
    /// The robot's (or the token's) expiry, as the API reports it.
    pub expires_at: Option<String>,
    /// Every request: `METHOD PATH`.
    pub requests: Vec<String>,
    /// How many tokens it has made.
    pub made: u32,
    /// How long to wait before answering (to let a concurrent client meet a rotation).
    pub delay: Duration,
    /// GitLab: the `expires_at` its rotate answer carries instead of the date asked
    /// for (a date in another shape, to test the parser's fallback).
    pub answer_expires_at: Option<serde_json::Value>,
    /// Harbor: a refresh sets a secret of the fake's own making, not the one sent
    /// (and answers with it), as Harbor does for a refresh without a secret.
    pub makes_its_own: bool,
    /// Harbor: the robot is disabled (every request 401, whatever the secret).
    pub disabled: bool,
    /// Requests received (counted before `hold` and `delay`).
    pub received: u32,
    /// While set, a request waits before it is handled (at most 30 s), so a test can
    /// act while `rotate` waits for the answer.
    pub hold: bool,
}

/// A running fake.
pub struct Fake {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Fake {
    /// A GitLab accepting `token`.
    pub fn gitlab(token: &str) -> Fake {
        Self::start(
            Api::Gitlab,
            State {
                current: token.into(),
                ..State::default()
            },
        )
    }

    /// A Harbor whose robot `name` (id `id`) has `secret` and expires at `expires_at`.
    pub fn harbor(name: &str, id: u64, secret: &str, expires_at: u64) -> Fake {
        Self::start(
            Api::Harbor,
            State {
                current: secret.into(),
                robot: (name.into(), id),
                expires_at: Some(expires_at.to_string()),
                ..State::default()
            },
        )
    }

    fn start(api: Api, state: State) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: far more connections than any test makes.
            for conn in listener.incoming().take(10_000) {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    serve(api, &s, stream);
                }
            }
        });
        Fake {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// The API's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the fake accepts `credential` now (the registry's view).
    pub fn accepts(&self, credential: &str) -> bool {
        self.state.lock().unwrap().current == credential
    }

    /// Waits (at most 30 s) until the fake has received `n` requests.
    pub fn wait_for_requests(&self, n: u32) {
        for _ in 0..600 {
            if self.state.lock().unwrap().received >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the fake received fewer than {n} requests within 30 s");
    }

    /// Holds the requests from now on (see [`State::hold`]); the count
    /// [`Self::wait_for_requests`] waits for to see the next one.
    pub fn hold(&self) -> u32 {
        let mut s = self.state.lock().unwrap();
        s.hold = true;
        s.received + 1
    }

    /// Lets held requests go on (see [`State::hold`]).
    pub fn release(&self) {
        self.state.lock().unwrap().hold = false;
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Ok(mut s) = self.state.lock() {
            s.hold = false;
        }
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request: method, path, headers (names lower-cased) and body.
type Request = (String, String, Vec<(String, String)>, Vec<u8>);

/// One request: head and body, bounded to 64 KiB.
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > 64 * 1024 || stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
        .min(64 * 1024);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some((method, path, headers, body))
}

fn respond(stream: &mut TcpStream, status: u16, body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Error",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

fn serve(api: Api, state: &Mutex<State>, mut stream: TcpStream) {
    let Some((method, path, headers, body)) = read_request(&mut stream) else {
        return;
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let delay = {
        let mut s = state.lock().unwrap();
        s.received += 1;
        s.delay
    };
    for _ in 0..600 {
        if !state.lock().unwrap().hold {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(delay);
    let mut s = state.lock().unwrap();
    s.requests.push(format!("{method} {path}"));
    let (status, answer) = match api {
        Api::Gitlab => gitlab(&mut s, &method, &path, header("private-token"), &body),
        Api::Harbor => harbor(&mut s, &method, &path, header("authorization"), &body),
    };
    drop(s);
    respond(&mut stream, status, &answer);
}

fn gitlab(
    s: &mut State,
    method: &str,
    path: &str,
    token: Option<String>,
    body: &[u8],
) -> (u16, String) {
    if token.as_deref() != Some(s.current.as_str()) {
        // Unlike GitLab, the 401 echoes the token it was sent, as a careless or hostile
        // server might: lockbox must never print it.
        let echoed = serde_json::json!({"message": "401 Unauthorized", "sent": token});
        return (401, echoed.to_string());
    }
    match (method, path) {
        ("GET", "/api/v4/personal_access_tokens/self") => {
            let answer = serde_json::json!({
                "id": 42 + s.made, "name": "ci", "revoked": false, "active": true,
                "scopes": ["api"], "expires_at": s.expires_at,
            });
            (200, answer.to_string())
        }
        ("POST", "/api/v4/personal_access_tokens/self/rotate") => {
            let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let expires_at = match req.get("expires_at").and_then(|v| v.as_str()) {
                Some(d) if d.len() == 10 && d.as_bytes()[4] == b'-' => Some(d.to_owned()),
                Some(_) => return (400, r#"{"message":"400 Bad request - expires_at"}"#.into()),
                None => None,
            };
            s.made += 1;
            let new = format!("glpat-rotated{}x{}", s.made, std::process::id());
            let old = std::mem::replace(&mut s.current, new.clone());
            s.revoked.push(old);
            s.expires_at = expires_at.clone();
            let expires_at = match &s.answer_expires_at {
                Some(v) => v.clone(),
                None => serde_json::json!(expires_at),
            };
            let answer = serde_json::json!({
                "id": 42 + s.made, "name": "ci", "revoked": false, "active": true,
                "scopes": ["api"], "user_id": 1337, "last_used_at": null,
                "created_at": "2026-12-06T00:00:00.000Z", "expires_at": expires_at, "token": new,
            });
            (200, answer.to_string())
        }
        _ => (404, r#"{"message":"404 Not Found"}"#.into()),
    }
}

fn harbor(
    s: &mut State,
    method: &str,
    path: &str,
    auth: Option<String>,
    body: &[u8],
) -> (u16, String) {
    let (name, id) = s.robot.clone();
    let expected = format!("Basic {}", B64.encode(format!("{name}:{}", s.current)));
    if s.disabled || auth.as_deref() != Some(expected.as_str()) {
        return (
            401,
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"unauthorized"}]}"#.into(),
        );
    }
    if path != format!("/api/v2.0/robots/{id}") {
        return (
            404,
            r#"{"errors":[{"code":"NOT_FOUND","message":"robot not found"}]}"#.into(),
        );
    }
    match method {
        "GET" => {
            let exp = s.expires_at.clone().unwrap_or_else(|| "-1".into());
            (
                200,
                format!(
                    r#"{{"id":{id},"name":"{name}","expires_at":{exp},"duration":30,"disable":false}}"#
                ),
            )
        }
        "PATCH" => {
            let req: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            let Some(new) = req
                .get("secret")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
            else {
                return (
                    400,
                    r#"{"errors":[{"code":"BAD_REQUEST","message":"no secret"}]}"#.into(),
                );
            };
            let ok = (8..=128).contains(&new.len())
                && new.chars().any(|c| c.is_ascii_uppercase())
                && new.chars().any(|c| c.is_ascii_lowercase())
                && new.chars().any(|c| c.is_ascii_digit());
            if !ok {
                return (
                    400,
                    r#"{"errors":[{"code":"BAD_REQUEST","message":"secret rule"}]}"#.into(),
                );
            }
            let new = if s.makes_its_own {
                s.made += 1;
                format!("Harbor{}made{}", s.made, std::process::id())
            } else {
                new
            };
            let old = std::mem::replace(&mut s.current, new.clone());
            if old != new {
                s.revoked.push(old);
            }
            (200, serde_json::json!({ "secret": new }).to_string())
        }
        _ => (405, "{}".into()),
    }
}
