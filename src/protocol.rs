//! The Docker credential-helper protocol front end: `store`, `get`, `erase`, `list`,
//! `version`, byte for byte as the official helpers behave
//! (specified in `docs/PROTOCOL.md`).
//!
//! Errors are one line on stdout with exit status 1 — that is where clients read them.
//! Protocol actions never prompt, and `list` never reads stdin.
use std::io::{Read, Write};

use age::secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use zeroize::Zeroizing;

use crate::config::Settings;
use crate::error::{Error, ForwardError};
use crate::exit::Exit;
use crate::file::VaultPath;
use crate::keysource;
use crate::sources;
use crate::vault::View;
use crate::{docker::go_json, messages};

/// Most bytes read from stdin for one action (about 1 MiB).
pub const MAX_INPUT: usize = crate::secret_io::MAX_STDIN;

/// A protocol action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Save credentials.
    Store,
    /// Print credentials.
    Get,
    /// Remove credentials.
    Erase,
    /// Print server URL → username.
    List,
    /// Print the version line.
    Version,
}

impl Action {
    /// The action named by a command-line word.
    pub fn from_arg(arg: &str) -> Option<Self> {
        Some(match arg {
            "store" => Action::Store,
            "get" => Action::Get,
            "erase" => Action::Erase,
            "list" => Action::List,
            "version" => Action::Version,
            _ => return None,
        })
    }
}

/// Why an action failed; [`ProtocolError::line`] is the stdout text, and `Display`
/// prints that same line (one rendering per variant).
#[derive(Debug)]
#[non_exhaustive]
pub enum ProtocolError {
    /// No entry for the server.
    NotFound,
    /// No vault at the default path: no entry for any server. The same stdout line as
    /// [`ProtocolError::NotFound`]; `get` also says on stderr where it looked.
    NoVault(std::path::PathBuf),
    /// Empty server URL.
    MissingServerUrl,
    /// Empty username on `store`.
    MissingUsername,
    /// More than [`MAX_INPUT`] bytes on stdin.
    InputTooLarge,
    /// The `store` payload is not a JSON object of strings.
    InvalidJson(String),
    /// Reading stdin failed.
    Stdin(std::io::Error),
    /// The vault or a key source failed.
    Vault(Error),
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line())
    }
}

impl std::error::Error for ProtocolError {}

impl From<Error> for ProtocolError {
    fn from(e: Error) -> Self {
        ProtocolError::Vault(e)
    }
}

impl ProtocolError {
    /// The one line printed on stdout (without the newline).
    pub fn line(&self) -> String {
        match self {
            ProtocolError::NotFound | ProtocolError::NoVault(_) => messages::NOT_FOUND.to_owned(),
            ProtocolError::MissingServerUrl => messages::MISSING_SERVER_URL.to_owned(),
            ProtocolError::MissingUsername => messages::MISSING_USERNAME.to_owned(),
            ProtocolError::InputTooLarge => messages::input_too_large(MAX_INPUT),
            ProtocolError::InvalidJson(d) => messages::sanitize(&messages::invalid_store_json(d)),
            ProtocolError::Stdin(e) => messages::sanitize(&format!("cannot read stdin: {e}")),
            ProtocolError::Vault(e) => e.message(),
        }
    }
}

/// The `store` payload. Keys match case-insensitively and unknown keys are ignored,
/// as Go's `encoding/json` does; `null` leaves a field empty.
/// `Debug` is safe: the secret prints as `[REDACTED]`.
#[derive(Default, Debug)]
pub struct StoreRequest {
    /// `ServerURL`
    pub server_url: String,
    /// `Username`
    pub username: String,
    /// `Secret`
    pub secret: SecretString,
}

impl<'de> serde::Deserialize<'de> for StoreRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StoreRequest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StoreRequest, A::Error> {
                let mut req = StoreRequest::default();
                while let Some(key) = map.next_key::<String>()? {
                    let field = if key.eq_ignore_ascii_case("ServerURL") {
                        0
                    } else if key.eq_ignore_ascii_case("Username") {
                        1
                    } else if key.eq_ignore_ascii_case("Secret") {
                        2
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                        continue;
                    };
                    let value: Option<Zeroizing<String>> =
                        map.next_value::<Option<String>>()?.map(Zeroizing::new);
                    let Some(value) = value else { continue };
                    match field {
                        0 => req.server_url = value.to_string(),
                        1 => req.username = value.to_string(),
                        _ => req.secret = SecretString::from(value.to_string()),
                    }
                }
                Ok(req)
            }
        }
        d.deserialize_map(V)
    }
}

impl StoreRequest {
    /// Parses the stdin of `store`: the first JSON value (trailing bytes are ignored,
    /// as Go's `json.Decoder` does); invalid UTF-8 becomes U+FFFD as in Go.
    pub fn parse(input: &[u8]) -> Result<Self, ProtocolError> {
        let text: Zeroizing<String> = Zeroizing::new(String::from_utf8_lossy(input).into_owned());
        if text.trim().is_empty() {
            return Err(ProtocolError::InvalidJson("stdin is empty".into()));
        }
        let mut de = serde_json::Deserializer::from_str(&text);
        let req = <StoreRequest as serde::Deserialize>::deserialize(&mut de)
            .map_err(|e| ProtocolError::InvalidJson(describe_json_error(&e)))?;
        if req.server_url.is_empty() {
            return Err(ProtocolError::MissingServerUrl);
        }
        if req.username.is_empty() {
            return Err(ProtocolError::MissingUsername);
        }
        Ok(req)
    }
}

/// What is wrong with the JSON, by category and position only: serde_json's own
/// messages can quote the input (`invalid type: string "…"`), which may be a secret.
fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Eof => "unexpected end of input",
        Category::Syntax => "syntax error",
        Category::Data => "expected an object whose ServerURL, Username and Secret are strings",
        Category::Io => "read error",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// Reads at most [`MAX_INPUT`] bytes of stdin into wiped memory.
pub fn read_input(input: impl Read) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    let buf = crate::secret_io::read_wiped(input, MAX_INPUT).map_err(ProtocolError::Stdin)?;
    if buf.len() > MAX_INPUT {
        return Err(ProtocolError::InputTooLarge);
    }
    Ok(buf)
}

/// The server URL of `get`/`erase`: stdin, trimmed of surrounding whitespace.
pub fn server_from_input(input: &[u8]) -> Result<String, ProtocolError> {
    let text = String::from_utf8_lossy(input);
    let server = text.trim();
    if server.is_empty() {
        return Err(ProtocolError::MissingServerUrl);
    }
    Ok(server.to_owned())
}

/// Runs one action: reads `stdin` (not for `list`/`version`), returns the stdout bytes.
pub fn run(
    action: Action,
    stdin: impl Read,
    settings: &Settings,
) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    if let Some(socket) = &settings.forward_socket {
        return run_forwarded(action, stdin, socket);
    }
    let location = &settings.location;
    match action {
        Action::Version => Ok(Zeroizing::new(
            format!("{}\n", messages::version_line()).into_bytes(),
        )),
        Action::List => {
            let path = location.resolve()?;
            let out = match path.read_bytes()? {
                None if location.vault.is_some() => return Err(named_missing(&path)),
                None => go_json::string_map([]),
                // A view: every bound checked, no secret decoded (list prints none).
                Some(bytes) => {
                    let view = View::parse(&bytes, &path.vault)?;
                    go_json::string_map(view.entries().iter().map(|e| (e.server(), e.username())))
                }
            };
            Ok(Zeroizing::new(out))
        }
        Action::Get => {
            let input = read_input(stdin)?;
            let server = server_from_input(&input)?;
            let path = location.resolve()?;
            get(&path, location.vault.is_some(), &server, settings)
        }
        Action::Erase => {
            let input = read_input(stdin)?;
            let server = server_from_input(&input)?;
            let path = location.resolve()?;
            // No vault, no entry: erase of an absent entry succeeds (docker logout tries
            // four spellings; podman treats a failure as an error).
            // A source is removed by `lockbox source remove`: a `docker logout` must not
            // lose the long-lived credential it holds.
            let erase = |v: &mut crate::vault::Vault| match v.lookup(&server) {
                Some((key, e)) if e.meta.source.is_some() => {
                    Err(Error::SourceNotStatic(key.to_owned()))
                }
                _ => Ok(((), v.erase(&server))),
            };
            match path.update(erase) {
                Ok(()) => Ok(Zeroizing::new(Vec::new())),
                Err(Error::NotInitialized(_)) if location.vault.is_some() => {
                    Err(named_missing(&path))
                }
                Err(Error::NotInitialized(_)) => Ok(Zeroizing::new(Vec::new())),
                Err(e) => Err(e.into()),
            }
        }
        Action::Store => {
            let input = read_input(stdin)?;
            let req = StoreRequest::parse(&input)?;
            drop(input);
            let path = location.resolve()?;
            path.update(|v| {
                v.store(&req.server_url, &req.username, &req.secret)
                    .map(|()| ((), true))
            })
            .map_err(|e| match e {
                Error::NotInitialized(_) if location.vault.is_some() => named_missing(&path),
                e => e.into(),
            })?;
            Ok(Zeroizing::new(Vec::new()))
        }
    }
}

/// One action inside a container, through the host agent's forward socket
/// (`LOCKBOX_FORWARD_SOCKET`, docs/BUILD_SERVER.md "Forwards"): `get` and `list` ask
/// it; `store` fails (credentials are managed on the host); `erase` succeeds and
/// changes nothing, so a `docker logout` in a job does not fail it. No vault, key or
/// agent is read or started here.
pub fn run_forwarded(
    action: Action,
    stdin: impl Read,
    socket: &std::path::Path,
) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    let forward = crate::agent::forward_client::ForwardClient::at(socket);
    match action {
        Action::Version => Ok(Zeroizing::new(
            format!("{}\n", messages::version_line()).into_bytes(),
        )),
        Action::List => {
            let entries = forward.list()?;
            Ok(Zeroizing::new(go_json::string_map(
                entries.iter().map(|(s, u)| (s.as_str(), u.as_str())),
            )))
        }
        Action::Get => {
            let input = read_input(stdin)?;
            let server = server_from_input(&input)?;
            let (username, secret) = forward.get(&server)?.ok_or(ProtocolError::NotFound)?;
            Ok(go_json::credentials(
                &server,
                &username,
                secret.expose_secret(),
            ))
        }
        Action::Erase => {
            let input = read_input(stdin)?;
            server_from_input(&input)?;
            Ok(Zeroizing::new(Vec::new()))
        }
        Action::Store => {
            // Read (and wipe) what the client sends, so it never sees a broken pipe.
            drop(read_input(stdin)?);
            Err(ProtocolError::Vault(Error::Forward(ForwardError::Store)))
        }
    }
}

/// A vault `LOCKBOX_VAULT` names explicitly and that does not exist is an error for
/// every action: a typo must not read as "no credentials" (Docker would pull
/// anonymously) or an empty list (`docker build` would send none). Only the default
/// path may be missing (docs/FORMAT.md, "Reading").
fn named_missing(path: &VaultPath) -> ProtocolError {
    ProtocolError::Vault(Error::NamedVaultMissing(path.vault.clone()))
}

fn get(
    path: &VaultPath,
    named: bool,
    server: &str,
    settings: &Settings,
) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    // Without a vault at the default path there are no credentials: not-found lets
    // `docker login` prompt, and its `store` then says to run `init`.
    let bytes = match path.read_bytes()? {
        Some(b) => b,
        None if named => return Err(named_missing(path)),
        None => return Err(ProtocolError::NoVault(path.vault.clone())),
    };
    // The whole file is checked; only the entry answered is decoded (FORMAT.md
    // "What a get validates").
    let view = View::parse(&bytes, &path.vault)?;
    let entry = view.lookup(server).ok_or(ProtocolError::NotFound)?;
    // Only now is a key needed: a locked vault with no matching entry is plain
    // not-found, a locked vault with one is the locked error — never not-found.
    let opener = keysource::for_get(view.vault(), settings)?;
    if entry.source().is_some() {
        // A sealed source: a token minted (or cached) for it, never its own secret.
        let public_key = view.vault().public().to_string();
        let place = sources::Place {
            vault: Some(&path.vault),
            public_key: &public_key,
            trust: &settings.trust(),
        };
        let answer = sources::credential_for(entry, opener.as_ref(), &place)?;
        return Ok(go_json::credentials(
            server,
            &answer.username,
            answer.secret.expose_secret(),
        ));
    }
    let secret = entry.open(opener.as_ref())?;
    warn_if_expiring(server, entry.expires_at(), settings);
    // The one place `get` reads the secret: into the answer's wiped buffer.
    Ok(go_json::credentials(
        server,
        entry.username(),
        secret.expose_secret(),
    ))
}

/// One stderr line when the entry answered expires within the warning window or has
/// expired (its secret is answered all the same: the registry decides). stdout is
/// untouched; Docker passes a helper's stderr through to the person.
fn warn_if_expiring(server: &str, expires_at: Option<u64>, settings: &Settings) {
    use crate::vault::meta::{Standing, rfc3339, standing, unix_now};
    let Some(t) = expires_at else { return };
    let (days, bad_setting) = settings.expiry_warn_days();
    let line = match standing(Some(t), unix_now(), days * 86_400) {
        Standing::Fine => return,
        Standing::Expiring(left) => messages::get_expiring(server, &rfc3339(t), left / 86_400),
        Standing::Expired(_) => messages::get_expired(server, &rfc3339(t)),
    };
    let mut err = std::io::stderr().lock();
    if let Some(b) = bad_setting {
        let _ = writeln!(err, "{}", messages::sanitize(&b));
    }
    let _ = writeln!(err, "{}", messages::sanitize(&line));
}

/// Runs `action` against the process's stdin/stdout and returns the exit status: 0, or
/// 1 with the error line on stdout.
pub fn main(action: Action, settings: &Settings) -> Exit {
    if action == Action::Get {
        // The hot path: one short-lived process per call (docs/PERFORMANCE.md).
        crate::sys::tune_allocator_for_one_request();
    }
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    match run(action, stdin, settings) {
        Ok(out) => {
            if stdout
                .write_all(&out)
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return Exit::Failure;
            }
            Exit::Ok
        }
        Err(e) => {
            let line = e.line();
            let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
            // Docker CLI 28 discards `get` errors on pull, push and the classic build
            // and goes on anonymously, so the stdout line alone never reaches the
            // person. Clients pass the helper's stderr through: a `get` failure other
            // than not-found (above all "lockbox is locked") is said there too.
            match &e {
                _ if action != Action::Get => {}
                ProtocolError::NotFound => {}
                // Not-found is right (no vault, no credentials), but alone it reaches
                // the person as Docker's "no basic auth credentials": say why.
                ProtocolError::NoVault(path) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "{}",
                        messages::sanitize(&no_vault_hint(path, settings))
                    );
                }
                _ => {
                    let _ = writeln!(std::io::stderr(), "{line}");
                }
            }
            Exit::Failure
        }
    }
}

/// The stderr line of a `get` that found no vault at the default path: `init`, or for
/// root under `sudo` (`sudo docker pull` runs the helper as root), BUILD_SERVER.md.
fn no_vault_hint(path: &std::path::Path, settings: &Settings) -> String {
    let shown = path.display().to_string();
    let uid = rustix::process::getuid();
    match &settings.sudo_user {
        Some(user) if uid.is_root() => messages::get_no_vault_sudo(&shown, user),
        _ if uid.is_root() => messages::get_no_vault(&shown, "root"),
        _ => messages::get_no_vault(&shown, &format!("this user (uid {})", uid.as_raw())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn store_json_like_go() {
        let r = StoreRequest::parse(b"{\n \"serverurl\": \"h\",\n \"USERNAME\": \"u\", \"x\": [1,{}], \"Secret\": \"s\"} trailing").unwrap();
        assert_eq!(
            (
                r.server_url.as_str(),
                r.username.as_str(),
                r.secret.expose_secret()
            ),
            ("h", "u", "s")
        );
        let r = StoreRequest::parse(br#"{"ServerURL":"h","Username":"u"}"#).unwrap();
        assert_eq!(r.secret.expose_secret(), "");
        assert!(matches!(
            StoreRequest::parse(b"{}"),
            Err(ProtocolError::MissingServerUrl)
        ));
        assert!(matches!(
            StoreRequest::parse(br#"{"ServerURL":"h"}"#),
            Err(ProtocolError::MissingUsername)
        ));
        for bad in [&b""[..], b"{", b"hello", b"[]", br#"{"ServerURL":1}"#] {
            assert!(
                matches!(StoreRequest::parse(bad), Err(ProtocolError::InvalidJson(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn invalid_json_error_never_echoes_the_input() {
        for bad in [
            &br#"{"ServerURL":"h","Username":"u","Secret":"hunter2" oops}"#[..],
            br#""hunter2""#,
            br#"{"ServerURL":"h","Username":"u","Secret":["hunter2"]}"#,
            br#"{"hunter2":1"#,
        ] {
            let err = StoreRequest::parse(bad).unwrap_err();
            assert!(!err.line().contains("hunter2"), "{}", err.line());
        }
    }

    #[test]
    fn server_trimmed() {
        assert_eq!(server_from_input(b"  host\r\n").unwrap(), "host");
        assert!(matches!(
            server_from_input(b" \n\t"),
            Err(ProtocolError::MissingServerUrl)
        ));
    }

    #[test]
    fn input_bounded() {
        assert!(read_input(&vec![b'a'; MAX_INPUT][..]).is_ok());
        assert!(matches!(
            read_input(&vec![b'a'; MAX_INPUT + 1][..]),
            Err(ProtocolError::InputTooLarge)
        ));
    }
}
