//! A small client for the transit secrets engine of OpenBao (and HashiCorp Vault, which
//! speaks the same transit API): `encrypt`, `decrypt` and reading a key's settings —
//! what an OpenBao slot needs (`docs/FORMAT.md`, `docs/FLEET.md` "OpenBao transit").
//!
//! This module owns the trust boundary of that slot. A vault file can be written by
//! someone else, and its slots MAC can only be checked after a slot opened, so nothing
//! here ever comes from the file except a mount name, a key name and a ciphertext, each
//! validated before use:
//!
//! - the server address comes only from the host (`LOCKBOX_OPENBAO_ADDR`, else
//!   `BAO_ADDR`, else `VAULT_ADDR`), and so does the token ([`find_token`]): a planted
//!   slot cannot make the helper send the host's token anywhere but the host's server;
//! - plain `http://` only to `127.0.0.1`, `[::1]` or `localhost`; TLS is rustls with the
//!   `ring` provider, trusting the host's CA file (`LOCKBOX_OPENBAO_CACERT`, else
//!   `BAO_CACERT`, else `VAULT_CACERT`) or the system bundle; a namespace, too, is a
//!   host setting (`LOCKBOX_OPENBAO_NAMESPACE`, else `BAO_NAMESPACE`/`VAULT_NAMESPACE`);
//! - redirects are never followed (the token header would go along), a proxy is used
//!   only when `LOCKBOX_OPENBAO_PROXY` names one (never `HTTPS_PROXY` & co.), and every
//!   call has a connect and a total timeout, so a dead server is an error, not a hang;
//! - response bodies are bounded and parsed by pure functions ([`parse_encrypt`],
//!   [`parse_decrypt`], [`parse_key_info`], [`check_status`]) that a fuzz target drives.
//!
//! Nothing here prints or prompts; errors are one [`OpenBaoError`] each, whose text
//! says what to do next and never holds the token or a plaintext.
//!
//! The folder (floor 5 in `src/lib.rs`: it imports the vault core, never `identity`,
//! `config` or `agent`): this file holds the client and the vault key through transit;
//! `settings.rs` the host settings, `token.rs` the tokens, `response.rs` the parsers
//! of answers. The mount and key name rules live beside the slot, in
//! `src/vault/slot.rs`.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use age::secrecy::ExposeSecret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

mod response;
mod settings;
mod token;

pub use response::*;
pub use settings::*;
pub use token::*;

pub use crate::error::OpenBaoError;
use crate::sanitize::{sanitize, shorten};
use crate::vault::Slot;
use crate::vault::crypto::VaultKey;
// The name rules sit beside the slot they validate (`src/vault/slot.rs`); these paths
// stay for the client's callers.
pub use crate::vault::slot::{
    MAX_CIPHERTEXT, MAX_KEY_NAME, MAX_MOUNT, validate_ciphertext, validate_key_name, validate_mount,
};

/// The header OpenBao and Vault read the token from.
const TOKEN_HEADER: &str = "X-Vault-Token";
/// The header that selects a namespace (OpenBao 2.3+, Vault Enterprise, HCP Vault).
const NAMESPACE_HEADER: &str = "X-Vault-Namespace";
/// Most time to open the connection (capped by the total).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Shorthand for this module's results.
pub type Result<T, E = OpenBaoError> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------------
// The client

/// A transit client for one server and one token.
pub struct Client {
    agent: ureq::Agent,
    addr: Address,
    token: Token,
    timeout: Duration,
    namespace: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr.as_str())
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// Reads PEM certificates from `path`.
fn load_ca(var: &'static str, path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let bad = |reason: String| OpenBaoError::CaFile {
        var,
        path: path.to_owned(),
        reason,
    };
    use crate::secret_io::{Accept, open, reason};
    let file = open(path, Accept::RegularFile).map_err(|e| bad(reason("cannot open it", &e)))?;
    // CA bundles are a few hundred KiB; 16 MiB is far above any real one.
    let mut pem = Vec::new();
    file.take(16 << 20)
        .read_to_end(&mut pem)
        .map_err(|e| bad(reason("cannot read it", &e)))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(_) => return Err(bad("it is not a PEM certificate file".into())),
        }
    }
    if certs.is_empty() {
        return Err(bad("it holds no PEM certificate".into()));
    }
    Ok(certs)
}

impl Client {
    /// A client for `settings.addr`. Reads the CA file (or the system bundle) for an
    /// `https://` address.
    pub fn new(settings: &Settings, token: Token) -> Result<Client> {
        let roots = if settings.addr.plain {
            Vec::new()
        } else if let Some(ca) = &settings.ca_file {
            load_ca(ca.var, &ca.path)?
        } else {
            let system = SYSTEM_CA_BUNDLES
                .iter()
                .map(Path::new)
                .find(|p| p.is_file())
                .ok_or_else(|| OpenBaoError::CaFile {
                    var: "system",
                    path: PathBuf::from(SYSTEM_CA_BUNDLES[0]),
                    reason: "no system CA bundle found: set LOCKBOX_OPENBAO_CACERT to the server's CA file".into(),
                })?;
            load_ca("system", system)?
        };
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let proxy = match &settings.proxy {
            None => None,
            Some(p) => Some(ureq::Proxy::new(p).map_err(|_| OpenBaoError::BadSetting {
                var: "LOCKBOX_OPENBAO_PROXY",
                reason: "it is not a proxy URL ureq can use".into(),
            })?),
        };
        let config = ureq::Agent::config_builder()
            // ureq's default reads HTTPS_PROXY & co.; only an explicit setting counts.
            .proxy(proxy)
            // 0: a 3xx is returned to us (and refused), never followed with the token.
            .max_redirects(0)
            .http_status_as_error(false)
            .https_only(!settings.addr.plain)
            .timeout_global(Some(settings.timeout))
            .timeout_connect(Some(CONNECT_TIMEOUT.min(settings.timeout)))
            .user_agent(concat!(
                "docker-credential-lockbox/",
                env!("CARGO_PKG_VERSION")
            ))
            // No pooled connection outlives a call worth keeping: one process, few calls.
            .max_idle_connections(1)
            .tls_config(tls)
            .build();
        Ok(Client {
            agent: config.new_agent(),
            addr: settings.addr.clone(),
            token,
            timeout: settings.timeout,
            namespace: settings.namespace.clone(),
        })
    }

    /// The server.
    pub fn addr(&self) -> &Address {
        &self.addr
    }

    /// Whether the HTTP agent uses a proxy (tests pin that the environment's is not).
    pub fn uses_proxy(&self) -> bool {
        self.agent.config().proxy().is_some()
    }

    fn transport_error(&self, e: ureq::Error) -> OpenBaoError {
        let addr = self.addr.as_str().to_owned();
        match e {
            ureq::Error::Timeout(_) => OpenBaoError::Timeout {
                addr,
                secs: self.timeout.as_secs().max(1),
            },
            ureq::Error::HostNotFound => OpenBaoError::Connect {
                addr,
                detail: "the host name does not resolve".into(),
            },
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                OpenBaoError::Timeout {
                    addr,
                    secs: self.timeout.as_secs().max(1),
                }
            }
            other => {
                let mut detail = sanitize(&shorten(&other.to_string()));
                if detail.contains("certificate") {
                    detail.push_str(
                        " (set LOCKBOX_OPENBAO_CACERT to the CA file that signed the server's certificate)",
                    );
                }
                OpenBaoError::Connect { addr, detail }
            }
        }
    }

    /// One call: `body` `None` is a GET. Returns the body of a 2xx answer (bounded,
    /// in wiped memory); any other status is its [`check_status`] error.
    fn call(&self, path: &str, body: Option<&[u8]>) -> Result<Zeroizing<Vec<u8>>> {
        let url = format!("{}/v1/{path}", self.addr.as_str());
        let token = self.token.expose_secret();
        let namespace = self.namespace.as_deref();
        let result = match body {
            None => {
                let mut request = self.agent.get(&url).header(TOKEN_HEADER, token);
                if let Some(ns) = namespace {
                    request = request.header(NAMESPACE_HEADER, ns);
                }
                request.call()
            }
            Some(b) => {
                let mut request = self
                    .agent
                    .post(&url)
                    .header(TOKEN_HEADER, token)
                    .header("Content-Type", "application/json");
                if let Some(ns) = namespace {
                    request = request.header(NAMESPACE_HEADER, ns);
                }
                request.send(b)
            }
        };
        let response = result.map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.as_bytes().to_vec());
        let reader = response.into_body().into_reader();
        let bytes =
            crate::secret_io::read_wiped(reader.take(MAX_RESPONSE as u64 + 1), MAX_RESPONSE)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::TimedOut => OpenBaoError::Timeout {
                        addr: self.addr.as_str().to_owned(),
                        secs: self.timeout.as_secs().max(1),
                    },
                    _ => OpenBaoError::Connect {
                        addr: self.addr.as_str().to_owned(),
                        detail: sanitize(&shorten(&e.to_string())),
                    },
                })?;
        let origin = self.origin(path);
        if bytes.len() > MAX_RESPONSE {
            return Err(bad_response(origin, "the answer is too large"));
        }
        check_status(status, location.as_deref(), &bytes, origin)?;
        Ok(bytes)
    }

    fn origin<'a>(&'a self, path: &'a str) -> Origin<'a> {
        Origin {
            addr: self.addr.as_str(),
            path,
            token_source: self.token.source(),
        }
    }

    /// `GET MOUNT/keys/KEY`: the key's settings (needs `read` on that path).
    pub fn key_info(&self, mount: &str, key: &str) -> Result<KeyInfo> {
        validate_mount(mount)?;
        validate_key_name(key)?;
        let path = format!("{mount}/keys/{key}");
        let body = self.call(&path, None)?;
        parse_key_info(&body, self.origin(&path))
    }

    /// `POST MOUNT/encrypt/KEY` with `plaintext` and `context`: the ciphertext.
    pub fn encrypt(
        &self,
        mount: &str,
        key: &str,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<String> {
        validate_mount(mount)?;
        validate_key_name(key)?;
        let path = format!("{mount}/encrypt/{key}");
        let plaintext_b64 = Zeroizing::new(B64.encode(plaintext));
        let request = Zeroizing::new(
            serde_json::json!({"plaintext": plaintext_b64.as_str(), "context": B64.encode(context)})
                .to_string(),
        );
        let body = self.call(&path, Some(request.as_bytes()))?;
        parse_encrypt(&body, self.origin(&path))
    }

    /// `POST MOUNT/decrypt/KEY` with `ciphertext` and `context`: the plaintext, in
    /// wiped memory. The one call a host's token needs (policy: `update` on
    /// `MOUNT/decrypt/KEY`).
    pub fn decrypt(
        &self,
        mount: &str,
        key: &str,
        ciphertext: &str,
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        validate_mount(mount)?;
        validate_key_name(key)?;
        if !validate_ciphertext(ciphertext) {
            return Err(bad_response(
                self.origin(mount),
                "the slot's ciphertext is not PREFIX:vN:BASE64",
            ));
        }
        let path = format!("{mount}/decrypt/{key}");
        let request = serde_json::json!({"ciphertext": ciphertext, "context": B64.encode(context)})
            .to_string();
        let body = self.call(&path, Some(request.as_bytes()))?;
        parse_decrypt(&body, self.origin(&path))
    }

    /// Encrypts `plaintext` for a slot, and proves the result is bound to `context`
    /// before anyone relies on it: the key must be `derived=true` (a non-derived key
    /// ignores `context` silently), the ciphertext must decrypt to `plaintext` with
    /// `context`, and a decrypt with `wrong_context` must be refused by the server.
    /// Needs `read` on `MOUNT/keys/KEY` and `update` on encrypt and decrypt.
    pub fn encrypt_bound(
        &self,
        mount: &str,
        key: &str,
        plaintext: &[u8],
        context: &[u8],
        wrong_context: &[u8],
    ) -> Result<String> {
        // Read first: an encrypt on a missing key would create one (transit's upsert).
        let info = self.key_info(mount, key)?;
        if !info.derived {
            return Err(OpenBaoError::NotDerived {
                mount: mount.to_owned(),
                key: key.to_owned(),
            });
        }
        let ciphertext = self.encrypt(mount, key, plaintext, context)?;
        let back = self.decrypt(mount, key, &ciphertext, context)?;
        if back.as_slice() != plaintext {
            return Err(bad_response(
                self.origin(mount),
                "decrypting the new ciphertext did not give back the plaintext",
            ));
        }
        match self.decrypt(mount, key, &ciphertext, wrong_context) {
            Ok(_) => Err(OpenBaoError::ContextIgnored {
                mount: mount.to_owned(),
                key: key.to_owned(),
            }),
            // The server refused the wrong context: the binding holds.
            Err(OpenBaoError::Refused { status: 400, .. }) => Ok(ciphertext),
            Err(other) => Err(other),
        }
    }
}

// ---------------------------------------------------------------------------------
// The vault key through transit

/// The transit `context` that binds a slot's ciphertext to its vault: the vault's
/// public key text (`age1…`), as `docs/FORMAT.md` specifies. With a `derived=true` key
/// the server derives a per-context key, so a ciphertext copied into another vault's
/// file does not open there.
pub fn vault_context(public: &age::x25519::Recipient) -> Vec<u8> {
    public.to_string().into_bytes()
}

/// Wraps the vault key with transit `encrypt` under `mount`/`key`, bound to the vault's
/// public key, and proves the binding (see [`Client::encrypt_bound`]; the wrong context
/// is a fresh random vault's public key). Returns the ciphertext a slot stores.
pub fn seal_vault_key(
    client: &Client,
    mount: &str,
    key: &str,
    vault_key: &VaultKey,
) -> Result<String> {
    let secret = vault_key.export_secret();
    let plaintext = Zeroizing::new(secret.expose_secret().as_bytes().to_vec());
    let other = VaultKey::generate().public();
    client.encrypt_bound(
        mount,
        key,
        &plaintext,
        &vault_context(&vault_key.public()),
        &vault_context(&other),
    )
}

/// Opens a slot's ciphertext with transit `decrypt` and checks that the key inside is
/// the key of the vault whose public key is `public`. The caller still verifies the
/// slots MAC with the key before trusting the rest of the file.
pub fn open_vault_key(
    client: &Client,
    mount: &str,
    key: &str,
    ciphertext: &str,
    public: &age::x25519::Recipient,
) -> Result<VaultKey> {
    let plaintext = client.decrypt(mount, key, ciphertext, &vault_context(public))?;
    VaultKey::from_slot_plaintext(&plaintext, public).map_err(|_| OpenBaoError::KeyMismatch {
        mount: mount.to_owned(),
        key: key.to_owned(),
    })
}

/// The OpenBao backend's part of the re-wrap hook (`vault::Rewrap`, built in
/// `keysource::rotation`): an OpenBao slot's key wrapped again with transit `encrypt`;
/// every other slot is not this client's.
impl Client {
    /// `slot` re-made for `key` when it is an OpenBao slot; `Ok(None)` for any other.
    pub fn rewrap(&self, slot: &Slot, key: &VaultKey) -> crate::error::Result<Option<Slot>> {
        let Slot::OpenBao {
            label,
            mount,
            key: name,
            ..
        } = slot
        else {
            return Ok(None);
        };
        Ok(Some(Slot::OpenBao {
            label: label.clone(),
            mount: mount.clone(),
            key: name.clone(),
            ciphertext: seal_vault_key(self, mount, name, key)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    const ORIGIN: Origin<'static> = Origin {
        addr: "https://bao:8200",
        path: "transit/decrypt/k",
        token_source: "LOCKBOX_OPENBAO_TOKEN",
    };

    #[test]
    fn names_are_validated() {
        for ok in ["transit", "team/transit", "t-1.x_y"] {
            validate_mount(ok).unwrap();
        }
        for bad in [
            "",
            "/transit",
            "transit/",
            "a//b",
            "..",
            "a/../sys",
            "a b",
            "a%2f",
            "a?x",
            "sys",
            "Auth/token",
            "identity",
            "cubbyhole",
            "é",
        ] {
            assert!(validate_mount(bad).is_err(), "{bad:?}");
        }
        validate_mount(&"m".repeat(MAX_MOUNT)).unwrap();
        assert!(validate_mount(&"m".repeat(MAX_MOUNT + 1)).is_err());
        validate_key_name("lockbox-hosts").unwrap();
        for bad in ["", "a/b", ".", "..", "k\n", "k#"] {
            assert!(validate_key_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ciphertexts_are_validated() {
        assert!(validate_ciphertext("vault:v1:AAAA"));
        assert!(validate_ciphertext("vault:v12:QUJD"));
        for bad in [
            "",
            "vault:v1:",
            "vault:1:AAAA",
            "vault:v:AAAA",
            "Vault:v1:AAAA",
            "vault:v1:A A",
            "vault:v1:!!!!",
            "vault",
            ":v1:AAAA",
        ] {
            assert!(!validate_ciphertext(bad), "{bad:?}");
        }
        assert!(!validate_ciphertext(&format!(
            "vault:v1:{}",
            "A".repeat(MAX_CIPHERTEXT)
        )));
    }

    #[test]
    fn addresses_plain_http_only_for_loopback() {
        let ok = |t| Address::parse(t, "X").unwrap().as_str().to_owned();
        assert_eq!(
            ok("https://bao.example.com:8200/"),
            "https://bao.example.com:8200"
        );
        assert_eq!(ok("HTTPS://Bao.Example.com"), "https://bao.example.com");
        assert_eq!(ok("http://127.0.0.1:8200"), "http://127.0.0.1:8200");
        assert_eq!(ok("http://[::1]:8200"), "http://[::1]:8200");
        assert_eq!(ok("http://localhost:8200"), "http://localhost:8200");
        assert_eq!(ok("https://[fe80::1]:8200"), "https://[fe80::1]:8200");
        for bad in [
            "http://bao.example.com:8200",
            "http://10.0.0.1:8200",
            "http://127.0.0.2",
            "http://localhost.evil.com",
            "http://127.0.0.1@evil.com",
            "https://user@bao:8200",
            "https://bao:8200/v1/x",
            "https://bao:8200?x",
            "https://bao:99999",
            "https://bao:",
            "https://",
            "ftp://bao",
            "bao:8200",
            "https://[::1",
            "https://b ao",
        ] {
            assert!(Address::parse(bad, "X").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn settings_come_from_the_host_in_order() {
        let s = Settings::from_lookup(&lookup(&[
            ("VAULT_ADDR", "https://v:8200"),
            ("BAO_ADDR", "https://b:8200"),
            ("VAULT_CACERT", "/v.pem"),
        ]))
        .unwrap();
        assert_eq!(s.addr.as_str(), "https://b:8200");
        assert_eq!(s.ca_file.unwrap().var, "VAULT_CACERT");
        assert_eq!(s.proxy, None);
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        assert_eq!(s.namespace, None);
        let s = Settings::from_lookup(&lookup(&[
            ("LOCKBOX_OPENBAO_ADDR", "https://l:8200"),
            ("BAO_ADDR", "https://b:8200"),
            ("LOCKBOX_OPENBAO_TIMEOUT", "2s"),
        ]))
        .unwrap();
        assert_eq!(s.addr.as_str(), "https://l:8200");
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert!(matches!(
            Settings::from_lookup(&lookup(&[])),
            Err(OpenBaoError::NoAddress)
        ));
        let s = Settings::from_lookup(&lookup(&[
            ("BAO_ADDR", "https://b:8200"),
            ("VAULT_NAMESPACE", "v"),
            ("BAO_NAMESPACE", "team/ci/"),
        ]))
        .unwrap();
        assert_eq!(s.namespace.as_deref(), Some("team/ci"));
        for bad in ["a b", "a\nX-Evil: 1", "a//b", ".."] {
            assert!(
                Settings::from_lookup(&lookup(&[
                    ("BAO_ADDR", "https://b"),
                    ("BAO_NAMESPACE", bad)
                ]))
                .is_err(),
                "{bad:?}"
            );
        }
        assert!(
            Settings::from_lookup(&lookup(&[
                ("BAO_ADDR", "http://127.0.0.1:8200"),
                ("LOCKBOX_OPENBAO_PROXY", "http://proxy:3128"),
            ]))
            .is_err()
        );
    }

    #[test]
    fn no_proxy_from_the_environment() {
        // The process environment may hold HTTPS_PROXY; ureq's default would use it.
        let s = Settings::from_lookup(&lookup(&[("BAO_ADDR", "http://127.0.0.1:1")])).unwrap();
        let token = Token::new(Zeroizing::new("t".into()), "test").unwrap();
        assert!(!Client::new(&s, token).unwrap().uses_proxy());
        let s = Settings::from_lookup(&lookup(&[
            ("BAO_ADDR", "https://bao:8200"),
            ("LOCKBOX_OPENBAO_PROXY", "http://127.0.0.1:3128"),
            (
                "LOCKBOX_OPENBAO_CACERT",
                "/etc/ssl/certs/ca-certificates.crt",
            ),
        ]))
        .unwrap();
        if s.ca_file.as_ref().is_some_and(|c| c.path.is_file()) {
            let token = Token::new(Zeroizing::new("t".into()), "test").unwrap();
            assert!(Client::new(&s, token).unwrap().uses_proxy());
        }
    }

    #[test]
    fn tokens_by_scope() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".vault-token"), "hvs.home\n").unwrap();
        let home = Some(dir.path());
        let person = TokenScope::Person { flag: None, home };
        let found = |vars: &[(&str, &str)], scope| {
            find_token(&lookup(vars), scope)
                .unwrap()
                .map(|t| t.expose_secret().to_owned())
        };
        // get: ambient tokens never count.
        assert_eq!(
            found(
                &[("BAO_TOKEN", "b"), ("VAULT_TOKEN", "v")],
                TokenScope::Explicit
            ),
            None
        );
        assert_eq!(
            found(&[("LOCKBOX_OPENBAO_TOKEN", "l")], TokenScope::Explicit).as_deref(),
            Some("l")
        );
        assert_eq!(
            found(&[("BAO_TOKEN", "b"), ("VAULT_TOKEN", "v")], person).as_deref(),
            Some("b")
        );
        assert_eq!(found(&[("VAULT_TOKEN", "v")], person).as_deref(), Some("v"));
        assert_eq!(found(&[], person).as_deref(), Some("hvs.home"));
        assert_eq!(
            found(
                &[],
                TokenScope::Person {
                    flag: None,
                    home: None
                }
            ),
            None
        );
        let flag = dir.path().join("flag");
        std::fs::write(&flag, "f\r\n").unwrap();
        let with_flag = TokenScope::Person {
            flag: Some(&flag),
            home,
        };
        assert_eq!(
            found(&[("LOCKBOX_OPENBAO_TOKEN", "l")], with_flag).as_deref(),
            Some("f")
        );
        let flag_path = flag.to_str().unwrap();
        assert_eq!(
            found(
                &[("LOCKBOX_OPENBAO_TOKEN_FILE", flag_path)],
                TokenScope::Explicit
            )
            .as_deref(),
            Some("f")
        );
        assert!(
            find_token(
                &lookup(&[
                    ("LOCKBOX_OPENBAO_TOKEN", "l"),
                    ("LOCKBOX_OPENBAO_TOKEN_FILE", flag_path)
                ]),
                TokenScope::Explicit
            )
            .is_err()
        );
        for bad in ["", "\n", "a b", "a\tb", "tök"] {
            assert!(
                Token::new(Zeroizing::new(bad.into()), "x").is_err(),
                "{bad:?}"
            );
        }
        // Debug never shows the token.
        let t = Token::new(Zeroizing::new("hvs.SECRET".into()), "x").unwrap();
        assert!(!format!("{t:?}").contains("SECRET"));
    }

    #[test]
    fn answers_parse() {
        let body = br#"{"request_id":"r","data":{"ciphertext":"vault:v1:QUJD","key_version":1},"warnings":null}"#;
        assert_eq!(parse_encrypt(body, ORIGIN).unwrap(), "vault:v1:QUJD");
        let body = br#"{"data":{"plaintext":"QUJD"}}"#;
        assert_eq!(parse_decrypt(body, ORIGIN).unwrap().as_slice(), b"ABC");
        let body = br#"{"data":{"derived":true,"type":"aes256-gcm96","latest_version":2,"keys":{"1":1,"2":2}}}"#;
        assert_eq!(
            parse_key_info(body, ORIGIN).unwrap(),
            KeyInfo {
                derived: true,
                key_type: "aes256-gcm96".into(),
                latest_version: 2
            }
        );
        for bad in [
            &b"{}"[..],
            b"",
            b"null",
            br#"{"data":{"ciphertext":"x"}}"#,
            br#"{"data":null}"#,
        ] {
            assert!(parse_encrypt(bad, ORIGIN).is_err());
        }
        assert!(parse_decrypt(br#"{"data":{"plaintext":"!!"}}"#, ORIGIN).is_err());
    }

    #[test]
    fn statuses_map_to_one_line_errors() {
        let denied =
            check_status(403, None, br#"{"errors":["permission denied"]}"#, ORIGIN).unwrap_err();
        assert!(matches!(denied, OpenBaoError::Denied { .. }));
        let text = denied.to_string();
        assert!(
            text.contains("permission denied") && text.contains("LOCKBOX_OPENBAO_TOKEN"),
            "{text}"
        );
        assert!(!text.contains("not found"));
        let multi = br#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#;
        let text = check_status(403, None, multi, ORIGIN)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("(1 error occurred: * permission denied)"),
            "{text}"
        );
        let redirect =
            check_status(307, Some(b"https://other:8200/v1/x\n\x1b[2J"), b"", ORIGIN).unwrap_err();
        let text = redirect.to_string();
        assert!(!text.contains('\n') && !text.contains('\x1b'), "{text}");
        let long = format!(r#"{{"errors":["{}"]}}"#, "e".repeat(10_000));
        let text = check_status(500, None, long.as_bytes(), ORIGIN)
            .unwrap_err()
            .to_string();
        assert!(text.len() < 1000);
        assert!(matches!(
            check_status(404, None, b"", ORIGIN),
            Err(OpenBaoError::NotFound { .. })
        ));
        assert!(matches!(
            check_status(503, None, b"x", ORIGIN),
            Err(OpenBaoError::Unavailable { .. })
        ));
        assert!(matches!(
            check_status(
                400,
                None,
                br#"{"errors":["cipher: message authentication failed"]}"#,
                ORIGIN
            ),
            Err(OpenBaoError::Refused { status: 400, .. })
        ));
        check_status(204, None, b"", ORIGIN).unwrap();
    }

    /// The `openbao_response` fuzz target's checks, replayed over its committed seeds
    /// so every test run covers them (the fuzz smoke run needs cargo-fuzz).
    #[test]
    fn fuzz_seeds_keep_the_parser_invariants() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/openbao_response");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let (status, body) = (u16::from_be_bytes([data[0], data[1]]), &data[2..]);
            let one_line = |e: OpenBaoError| {
                let text = e.to_string();
                assert!(!text.chars().any(char::is_control), "{name}: {text:?}");
            };
            let status_ok = check_status(status, body.split(|b| *b == b'\n').next(), body, ORIGIN)
                .map_err(one_line)
                .is_ok();
            let parsed = [
                parse_encrypt(body, ORIGIN).map(|c| assert!(validate_ciphertext(&c))),
                parse_decrypt(body, ORIGIN).map(|p| assert!(p.len() <= MAX_PLAINTEXT)),
                parse_key_info(body, ORIGIN).map(drop),
            ]
            .into_iter()
            .filter_map(|r| r.map_err(one_line).ok())
            .count();
            // A seed named fail_* is refused by its status or by every parser.
            assert_eq!(
                name.starts_with("fail_"),
                !status_ok || parsed == 0,
                "{name}: status ok {status_ok}, parsed by {parsed}"
            );
            seen += 1;
        }
        assert!(seen >= 8, "seeds missing in {}", dir.display());
    }
}
