//! Transit answers, bounded and parsed by pure functions (fuzzed:
//! `fuzz/fuzz_targets/openbao_response.rs`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::OpenBaoError;
use crate::sanitize::{sanitize, shorten};
use crate::vault::slot::validate_ciphertext;

/// Shorthand for this module's results.
type Result<T, E = OpenBaoError> = std::result::Result<T, E>;

/// Largest response body read, bytes. Transit answers are well under 1 KiB for a
/// 74-byte key; the bound keeps a hostile or broken server from filling memory.
pub const MAX_RESPONSE: usize = 64 * 1024;
/// Largest plaintext accepted back from `decrypt`, bytes (the vault key is 74).
pub const MAX_PLAINTEXT: usize = 1024;

/// A transit key's settings, as far as lockbox needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// `derived=true`: the key derives a per-context key, so `context` binds.
    pub derived: bool,
    /// The key type (`aes256-gcm96`, …).
    pub key_type: String,
    /// The newest key version.
    pub latest_version: u64,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: Option<T>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    errors: Vec<String>,
}

#[derive(Deserialize)]
struct EncryptData {
    ciphertext: String,
}

#[derive(Deserialize)]
struct DecryptData {
    plaintext: Zeroizing<String>,
}

#[derive(Deserialize)]
struct KeyData {
    // Required: a body without them is not a key's settings, and a missing `derived`
    // must not read as anything.
    derived: bool,
    #[serde(rename = "type")]
    key_type: String,
    #[serde(default)]
    latest_version: u64,
}

/// Where an answer came from, for its errors.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The server, as [`crate::openbao::Address::as_str`].
    pub addr: &'a str,
    /// The API path, `MOUNT/decrypt/KEY`.
    pub path: &'a str,
    /// Where the token came from.
    pub token_source: &'a str,
}

/// The server's `errors`, joined, sanitized and shortened; the status text when none.
fn error_detail(status: u16, body: &[u8]) -> String {
    let errors = serde_json::from_slice::<ErrorEnvelope>(body)
        .map(|e| e.errors)
        .unwrap_or_default();
    let joined = errors
        .iter()
        // Multi-line texts ("1 error occurred:\n\t* permission denied") become one line.
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|e| !e.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let text = if joined.is_empty() {
        format!("HTTP {status}")
    } else {
        joined
    };
    sanitize(&shorten(&text))
}

/// Maps a non-success status to its error; `Ok` for 2xx. `location` is the redirect
/// target, if the answer had one.
pub fn check_status(
    status: u16,
    location: Option<&[u8]>,
    body: &[u8],
    origin: Origin<'_>,
) -> Result<()> {
    let addr = origin.addr.to_owned();
    let path = origin.path.to_owned();
    match status {
        200..=299 => Ok(()),
        300..=399 => Err(OpenBaoError::Redirect {
            addr,
            location: sanitize(&shorten(&String::from_utf8_lossy(
                location.unwrap_or(b"(no Location)"),
            ))),
        }),
        401 | 403 => Err(OpenBaoError::Denied {
            addr,
            token_source: origin.token_source.to_owned(),
            path,
            detail: error_detail(status, body),
        }),
        404 => Err(OpenBaoError::NotFound { addr, path }),
        503 => Err(OpenBaoError::Unavailable {
            addr,
            detail: error_detail(status, body),
        }),
        _ => Err(OpenBaoError::Refused {
            addr,
            path,
            status,
            detail: error_detail(status, body),
        }),
    }
}

pub(super) fn bad_response(origin: Origin<'_>, reason: impl Into<String>) -> OpenBaoError {
    OpenBaoError::BadResponse {
        addr: origin.addr.to_owned(),
        path: origin.path.to_owned(),
        reason: reason.into(),
    }
}

fn data<T: serde::de::DeserializeOwned>(body: &[u8], origin: Origin<'_>) -> Result<T> {
    if body.len() > MAX_RESPONSE {
        return Err(bad_response(origin, "the answer is too large"));
    }
    let envelope: Envelope<T> = serde_json::from_slice(body).map_err(|e| {
        bad_response(
            origin,
            format!("not the transit JSON ({})", e.classify_name()),
        )
    })?;
    envelope
        .data
        .ok_or_else(|| bad_response(origin, "the answer has no data"))
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        // Never the error's own text: it can quote the body, and a decrypt body holds
        // the plaintext.
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected fields or types",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// The ciphertext of a successful `encrypt` answer, validated.
pub fn parse_encrypt(body: &[u8], origin: Origin<'_>) -> Result<String> {
    let d: EncryptData = data(body, origin)?;
    if !validate_ciphertext(&d.ciphertext) {
        return Err(bad_response(
            origin,
            "the ciphertext is not PREFIX:vN:BASE64",
        ));
    }
    Ok(d.ciphertext)
}

/// The plaintext of a successful `decrypt` answer (base64 decoded), in wiped memory.
pub fn parse_decrypt(body: &[u8], origin: Origin<'_>) -> Result<Zeroizing<Vec<u8>>> {
    let d: DecryptData = data(body, origin)?;
    if d.plaintext.len() > MAX_PLAINTEXT.div_ceil(3) * 4 {
        return Err(bad_response(origin, "the plaintext is too long"));
    }
    let plaintext = B64
        .decode(d.plaintext.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| bad_response(origin, "the plaintext is not base64"))?;
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(bad_response(origin, "the plaintext is too long"));
    }
    Ok(plaintext)
}

/// The settings in a successful `keys/NAME` answer.
pub fn parse_key_info(body: &[u8], origin: Origin<'_>) -> Result<KeyInfo> {
    let d: KeyData = data(body, origin)?;
    Ok(KeyInfo {
        derived: d.derived,
        key_type: sanitize(&shorten(&d.key_type)),
        latest_version: d.latest_version,
    })
}
