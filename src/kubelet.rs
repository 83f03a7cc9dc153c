//! `kubelet-credential-provider`: the kubelet image credential provider plugin
//! protocol (`credentialprovider.kubelet.k8s.io/v1`, and `v1beta1`, which has the same
//! shape), so a Kubernetes node pulls with the credentials of its vault.
//!
//! kubelet runs the plugin named in its `CredentialProviderConfig` with the config's
//! `args` and `env`, writes one `CredentialProviderRequest` on stdin and reads one
//! `CredentialProviderResponse` from stdout; on a non-zero exit it logs stderr and
//! pulls without the plugin's credentials. The upstream texts followed here:
//!
//! - the API types, `k8s.io/kubelet` `pkg/apis/credentialprovider/v1/types.go` (and
//!   `v1beta1`) at commit 63b3249724f7d89a8aa48f9acb3811f193c9aa68 (v0.37 line,
//!   Kubernetes 1.37 development; the fields are unchanged since 1.26);
//! - kubernetes.io, "Configure a kubelet image credential provider"
//!   (`content/en/docs/tasks/administer-cluster/kubelet-credential-provider.md`,
//!   kubernetes/website 1410d6f8342f463b56efc7b1081a8d1ae28590c5);
//! - kubelet's use of the answer, `pkg/credentialprovider/plugin/plugin.go`
//!   (kubernetes/kubernetes 01302639f593c742911309f5942ca2d683da871b): the cache key
//!   of `cacheKeyType: Registry` is the image's first path segment, `cacheDuration: 0`
//!   means "do not cache", the answer must carry the request's `apiVersion`;
//! - the matching of `auth` keys to images, `pkg/credentialprovider/keyring.go`
//!   (`URLsMatchStr`, `URLsMatch`, `isDefaultRegistryMatch`, `BasicDockerKeyring`),
//!   ported below in [`matching`] with the cases of its `keyring_test.go` as unit tests.
//!
//! What this module decides (docs/FLEET.md says it to operators):
//!
//! - **Which entries answer an image.** kubelet caches a `Registry` answer for every
//!   image of that registry, so the answer holds every vault entry of the image's
//!   registry (host and port, compared with the helper's normalised lookup,
//!   [`crate::docker::server_url::normalize`]), each keyed by the registry as the image spells
//!   it plus the entry's path. kubelet then picks the most specific key whose path is a
//!   prefix of the image's path — the same choice `get` makes for Docker.
//! - **What is left out.** Identity tokens (`<token>` entries: kubelet passes only a
//!   username and password) and Docker Desktop's own `…/v1/access-token` and
//!   `…/v1/refresh-token` keys, which are not registry logins.
//! - **Sources.** A sealed source's registry is answered with the token minted for it
//!   ([`crate::sources::credential_for`], the same path and caches as `get`), and the
//!   answer's `cacheDuration` is cut to the token's served life
//!   ([`cache_within_token`]).
//! - **Errors.** An image of no known registry is exit 0 with no `auth` (kubelet pulls
//!   anonymously, as it would without the plugin). A locked, missing or damaged vault
//!   is a non-zero exit with one line on stderr, never an empty answer: a locked node
//!   must not look like "no credentials". A malformed request is exit 2.
//! - **Secrets.** `serviceAccountToken` (kubelet 1.33+) is skipped by the parser
//!   without being kept; no input is ever quoted back except the image name and the
//!   apiVersion, sanitized. The answer is built in wiped memory. The plugin never
//!   prompts and never starts an agent: the key comes from the environment (the
//!   config's `env:`), else an agent that is already unlocked.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use zeroize::Zeroizing;

use crate::config::Settings;
use crate::docker::config_json::TOKEN_USERNAME;
use crate::error::Error;
use crate::exit::Exit;
use crate::vault::View;
use crate::{docker::go_json, docker::server_url, keysource, messages, sources};

/// The v1 API group/version (Kubernetes 1.26+).
pub const API_V1: &str = "credentialprovider.kubelet.k8s.io/v1";
/// The v1beta1 API group/version (Kubernetes 1.24–1.25; same fields as v1).
pub const API_V1BETA1: &str = "credentialprovider.kubelet.k8s.io/v1beta1";
/// The request's `kind`.
pub const REQUEST_KIND: &str = "CredentialProviderRequest";

/// How long kubelet may cache an answer unless told otherwise. Short, because after
/// `lock`, a password rotation or an entry's removal kubelet keeps using what it
/// cached until then; and cheap to renew, because a call is one process start and a
/// few decryptions on the node itself (no network, unlike cloud providers' plugins,
/// whose 12h suits tokens that are costly to mint).
pub const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(5 * 60);
/// The longest `cacheDuration` accepted: a node should not keep serving credentials a
/// day after its vault was locked or rotated.
pub const MAX_CACHE_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// The variable that sets the cache duration (the flag wins).
pub const CACHE_DURATION_ENV: &str = crate::config::var::KUBELET_CACHE_DURATION;

/// Longest image reference accepted (Docker's own limit on a name is 255 bytes per
/// component; whole references past a few KiB are not images).
const MAX_IMAGE: usize = 4096;

/// Docker Desktop's OAuth bookkeeping keys, in normalised form: not registry logins.
const DESKTOP_KEYS: [&str; 2] = ["docker.io/v1/access-token", "docker.io/v1/refresh-token"];

/// Why the provider failed; [`KubeletError::message`] is the stderr line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeletError {
    /// The request is not a `CredentialProviderRequest` this plugin can answer.
    #[error("{}", crate::messages::kubelet_error_bad_request(_0))]
    BadRequest(String),
    /// More than [`crate::secret_io::MAX_STDIN`] bytes on stdin.
    #[error("{}", crate::messages::KUBELET_ERROR_TOO_LARGE)]
    TooLarge,
    /// Reading stdin failed.
    #[error("{}", crate::messages::kubelet_error_stdin(_0))]
    Stdin(std::io::Error),
    /// `--cache-duration` or its variable is not a duration this plugin accepts.
    #[error("{}", crate::messages::KUBELET_ERROR_BAD_CACHE_DURATION)]
    BadCacheDuration(String),
    /// The vault or its key.
    #[error(transparent)]
    Vault(#[from] Error),
}

impl KubeletError {
    /// The one line for stderr (kubelet logs it), without the newline.
    pub fn message(&self) -> String {
        let text = match self {
            KubeletError::BadRequest(why) => {
                format!("kubelet-credential-provider: not a CredentialProviderRequest: {why}")
            }
            KubeletError::TooLarge => format!(
                "kubelet-credential-provider: the request is larger than {} bytes",
                crate::secret_io::MAX_STDIN
            ),
            KubeletError::Stdin(e) => {
                format!("kubelet-credential-provider: cannot read stdin: {e}")
            }
            KubeletError::BadCacheDuration(text) => format!(
                "kubelet-credential-provider: the cache duration {text:?} is not a whole number of seconds between 0s and 24h (e.g. 5m, 1h; set by --cache-duration or {CACHE_DURATION_ENV})"
            ),
            KubeletError::Vault(e) => e.message(),
        };
        messages::sanitize(&text)
    }

    /// The exit status: 2 for a request or flag kubelet's config got wrong, 3 for a
    /// locked vault (as `status`), 1 otherwise.
    pub fn exit(&self) -> Exit {
        match self {
            KubeletError::BadRequest(_)
            | KubeletError::TooLarge
            | KubeletError::BadCacheDuration(_) => Exit::Usage,
            KubeletError::Vault(Error::Locked) => Exit::Locked,
            _ => Exit::Failure,
        }
    }
}

/// The fields of a `CredentialProviderRequest` this plugin uses.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// The request's apiVersion, one of [`API_V1`], [`API_V1BETA1`]; the answer
    /// carries the same.
    pub api_version: &'static str,
    /// The image being pulled, as kubelet passes it (normalised by kubelet, e.g.
    /// `docker.io/library/nginx`; no tag or digest).
    pub image: String,
}

/// The request as read, before validation. `serviceAccountToken`,
/// `serviceAccountAnnotations` and any other field are skipped without being kept.
#[derive(Default)]
struct RawRequest {
    api_version: Option<String>,
    kind: Option<String>,
    image: Option<String>,
}

impl<'de> serde::Deserialize<'de> for RawRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRequest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRequest, A::Error> {
                let mut req = RawRequest::default();
                while let Some(key) = map.next_key::<String>()? {
                    // Field names are case-sensitive, as Kubernetes' own JSON decoder
                    // (sigs.k8s.io/json) reads them; a repeated field is refused
                    // rather than guessed at.
                    let slot = match key.as_str() {
                        "apiVersion" => &mut req.api_version,
                        "kind" => &mut req.kind,
                        "image" => &mut req.image,
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    if slot.is_some() {
                        return Err(de::Error::custom("a repeated field"));
                    }
                    *slot = map.next_value::<Option<String>>()?;
                }
                Ok(req)
            }
        }
        d.deserialize_map(V)
    }
}

impl Request {
    /// Parses and checks the request: one JSON object (trailing whitespace only),
    /// `apiVersion` v1 or v1beta1, `kind` `CredentialProviderRequest` when present,
    /// and a non-empty `image` without whitespace or control characters.
    pub fn parse(input: &[u8]) -> Result<Self, KubeletError> {
        let bad = |why: String| KubeletError::BadRequest(why);
        if input.iter().all(u8::is_ascii_whitespace) {
            return Err(bad("stdin is empty".into()));
        }
        let mut de = serde_json::Deserializer::from_slice(input);
        let raw = <RawRequest as serde::Deserialize>::deserialize(&mut de)
            .and_then(|r| de.end().map(|()| r))
            .map_err(|e| bad(describe_json_error(&e)))?;
        let api_version = match raw.api_version.as_deref() {
            Some(API_V1) => API_V1,
            Some(API_V1BETA1) => API_V1BETA1,
            None => return Err(bad("it has no apiVersion".into())),
            Some(other) => {
                return Err(bad(format!(
                    "apiVersion {:?} is not supported (use {API_V1} or {API_V1BETA1})",
                    shorten(other)
                )));
            }
        };
        if let Some(kind) = raw.kind.as_deref()
            && kind != REQUEST_KIND
        {
            return Err(bad(format!(
                "kind {:?} is not {REQUEST_KIND}",
                shorten(kind)
            )));
        }
        let image = raw.image.unwrap_or_default();
        if image.is_empty() {
            return Err(bad("it names no image".into()));
        }
        if image.len() > MAX_IMAGE {
            return Err(bad(format!("the image is longer than {MAX_IMAGE} bytes")));
        }
        if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(format!(
                "the image {:?} has whitespace or control characters",
                shorten(&image)
            )));
        }
        Ok(Request { api_version, image })
    }
}

/// At most 100 characters of `s`, for error messages.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(100).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// What is wrong with the JSON, by category and position only: serde_json's messages
/// can quote the input, which may hold the service account token.
fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Eof => "unexpected end of input",
        Category::Syntax => "a JSON syntax error",
        Category::Data => {
            "expected one object whose apiVersion, kind and image are strings, each once"
        }
        Category::Io => "a read error",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// The registry an image is pulled from, spelled as kubelet will match it.
///
/// As Docker's reference grammar (which kubelet's image parsing follows): the first
/// path segment is a registry when it has a `.` or `:`, is `localhost`, or has an
/// upper-case letter; otherwise the image is on Docker Hub, and kubelet's fallback
/// for such names looks for the key `index.docker.io` (`isDefaultRegistryMatch`).
pub fn image_registry(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            first
        }
        _ => "index.docker.io",
    }
}

/// The host (and port) part of a normalised key, and its path (`""` or `/…`).
fn split_normalized(n: &str) -> (&str, &str) {
    match n.find('/') {
        Some(i) => n.split_at(i),
        None => (n, ""),
    }
}

/// Chooses the vault entries that answer `image`: `(auth key, vault key)` pairs, in
/// the auth keys' byte order.
///
/// Every entry of the image's registry is chosen (see the module docs for why), keyed
/// by the registry as [`image_registry`] spells it plus the entry's path, with a
/// leading `/v1` or `/v2` dropped as kubelet's keyring drops it. When several vault
/// keys give one auth key (`https://ghcr.io` and `ghcr.io`), the one spelled exactly
/// as the auth key wins, else the first in byte order — [`server_url::find`]'s rule.
pub fn select<'a>(
    image: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, &'a str)> {
    let registry = image_registry(image);
    let Some(wanted) = server_url::normalize(registry) else {
        return Vec::new();
    };
    let mut chosen: BTreeMap<String, &'a str> = BTreeMap::new();
    for (key, username) in entries {
        if username == TOKEN_USERNAME {
            continue;
        }
        let Some(n) = server_url::normalize(key) else {
            continue;
        };
        if DESKTOP_KEYS.contains(&n.as_str()) {
            continue;
        }
        let (host, path) = split_normalized(&n);
        if host != wanted {
            continue;
        }
        let path = match path {
            "/v1" | "/v2" => "",
            p if p.starts_with("/v1/") || p.starts_with("/v2/") => &p[3..],
            p => p,
        };
        let auth_key = format!("{registry}{path}");
        match chosen.get(&auth_key) {
            Some(held) if *held == auth_key.as_str() => {}
            Some(held) if key != auth_key && held.as_bytes() < key.as_bytes() => {}
            _ => {
                chosen.insert(auth_key, key);
            }
        }
    }
    chosen.into_iter().collect()
}

/// `d` as Go's `time.Duration.String()` writes whole seconds (`0s`, `45s`, `5m0s`,
/// `1h0m0s`), which is what `metav1.Duration` reads.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Parses a cache duration (`5m`, `1h`, `0s`, `300s`): whole seconds, at most
/// [`MAX_CACHE_DURATION`]. `0` tells kubelet not to cache at all.
pub fn parse_cache_duration(text: &str) -> Result<Duration, KubeletError> {
    let bad = || KubeletError::BadCacheDuration(shorten(text));
    let t = text.trim();
    let d = if t == "0" {
        Duration::ZERO
    } else {
        humantime::parse_duration(t).map_err(|_| bad())?
    };
    if d.subsec_nanos() != 0 || d > MAX_CACHE_DURATION {
        return Err(bad());
    }
    Ok(d)
}

/// The cache duration: the flag, else [`CACHE_DURATION_ENV`] (as read into
/// `settings`), else the default.
pub fn cache_duration(flag: Option<&str>, settings: &Settings) -> Result<Duration, KubeletError> {
    match flag.or(settings.kubelet_cache_duration.as_deref()) {
        Some(text) => parse_cache_duration(text),
        None => Ok(DEFAULT_CACHE_DURATION),
    }
}

/// `cache`, shortened so that kubelet's cache never outlives an entry it answers with:
/// at most the seconds left until `expires_at` (0, "do not cache", once expired).
pub fn cache_within_expiry(cache: Duration, expires_at: Option<u64>, now: u64) -> Duration {
    match expires_at {
        Some(t) => cache.min(Duration::from_secs(t.saturating_sub(now))),
        None => cache,
    }
}

/// Writes the response: `kind`, `apiVersion`, `cacheKeyType`, `cacheDuration` and,
/// when there is any, `auth`. Compact JSON and a newline, in a wiped buffer reserved
/// once at its worst-case size so no unwiped copy is left by a reallocation.
pub fn render_response(
    api_version: &str,
    cache: Duration,
    auth: &[(String, String, SecretString)],
) -> Zeroizing<Vec<u8>> {
    let worst: usize = auth
        .iter()
        .map(|(k, u, p)| 40 + (k.len() + u.len() + p.expose_secret().len()) * 6)
        .sum();
    let mut out = Zeroizing::new(Vec::with_capacity(256 + api_version.len() * 6 + worst));
    out.extend_from_slice(b"{\"kind\":\"CredentialProviderResponse\",\"apiVersion\":");
    go_json::push_string(&mut out, api_version);
    out.extend_from_slice(b",\"cacheKeyType\":\"Registry\",\"cacheDuration\":");
    go_json::push_string(&mut out, &go_duration(cache));
    if !auth.is_empty() {
        out.extend_from_slice(b",\"auth\":{");
        for (i, (key, username, password)) in auth.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            go_json::push_string(&mut out, key);
            out.extend_from_slice(b":{\"username\":");
            go_json::push_string(&mut out, username);
            out.extend_from_slice(b",\"password\":");
            go_json::push_string(&mut out, password.expose_secret());
            out.push(b'}');
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"}\n");
    out
}

/// Answers one request read from `stdin`: the response bytes, or why not.
pub fn run(
    stdin: impl Read,
    settings: &Settings,
    cache: Duration,
) -> Result<Zeroizing<Vec<u8>>, KubeletError> {
    let input = crate::secret_io::read_wiped(stdin, crate::secret_io::MAX_STDIN)
        .map_err(KubeletError::Stdin)?;
    if input.len() > crate::secret_io::MAX_STDIN {
        return Err(KubeletError::TooLarge);
    }
    let request = Request::parse(&input)?;
    drop(input);
    let path = settings.location.resolve()?;
    // A node whose vault is missing is misconfigured: say so in kubelet's log rather
    // than answer "no credentials" and let every private pull fail as anonymous.
    let bytes = path
        .read_bytes()?
        .ok_or_else(|| Error::NotInitialized(path.vault.clone()))?;
    let view = View::parse(&bytes, &path.vault)?;
    let chosen = select(
        &request.image,
        view.entries().iter().map(|e| (e.server(), e.username())),
    );
    let mut auth = Vec::with_capacity(chosen.len());
    let mut cache = cache;
    if !chosen.is_empty() {
        // Only now is a key needed: an image of a registry the vault does not know is
        // answered (with no auth) even while the vault is locked.
        // The environment's key sources, then an agent already unlocked; never a
        // prompt, never an agent started.
        let opener = keysource::for_get(view.vault(), settings)?;
        let public_key = view.vault().public().to_string();
        let place = sources::Place {
            vault: Some(&path.vault),
            public_key: &public_key,
            trust: &settings.trust(),
        };
        let now = crate::vault::meta::unix_now();
        for (auth_key, vault_key) in chosen {
            // The exact key `select` chose.
            let Some(entry) = view.lookup(vault_key) else {
                continue;
            };
            // A static entry's secret, or a token minted from a source (and cached
            // as `get` caches it): kubelet never caches it past its expiry.
            let answer = sources::credential_for(entry, opener.as_ref(), &place)?;
            cache = match entry.source() {
                Some(_) => cache_within_token(cache, answer.expires_at, now),
                None => cache_within_expiry(cache, answer.expires_at, now),
            };
            auth.push((auth_key, answer.username, answer.secret));
        }
    }
    Ok(render_response(request.api_version, cache, &auth))
}

/// `cache`, shortened for a token minted from a source: at most its remaining life
/// less the margin within which no cache serves it ([`sources::stale_margin`] of that
/// remaining life), so kubelet stops using it when `get` would; 0 for a token without
/// an expiry (it is minted anew for every request, and so is kubelet's).
pub fn cache_within_token(cache: Duration, expires_at: Option<u64>, now: u64) -> Duration {
    let Some(t) = expires_at else {
        return Duration::ZERO;
    };
    let left = t.saturating_sub(now);
    cache.min(Duration::from_secs(left - sources::stale_margin(left)))
}

/// The subcommand: stdin → stdout, errors as one line on stderr. Returns the exit
/// status.
pub fn main(cache_flag: Option<&str>, settings: &Settings) -> Exit {
    let result = cache_duration(cache_flag, settings)
        .and_then(|cache| run(std::io::stdin().lock(), settings, cache));
    match result {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&out).and_then(|()| stdout.flush()) {
                Ok(()) => Exit::Ok,
                Err(e) => {
                    eprintln!(
                        "{}",
                        messages::sanitize(&format!(
                            "kubelet-credential-provider: cannot write the answer: {e}"
                        ))
                    );
                    Exit::Failure
                }
            }
        }
        Err(e) => {
            eprintln!("{}", e.message());
            e.exit()
        }
    }
}

/// A port of kubelet's matching of credential keys to images
/// (`pkg/credentialprovider/keyring.go`): what kubelet does with this plugin's
/// `auth` keys, so tests can check that the answer leads kubelet to the right entry.
pub mod matching {
    /// Go's `filepath.Match` on one host label (no separators occur in a label):
    /// `*`, `?`, `[…]` classes with ranges and `^` negation, `\` escapes. `None` for a
    /// malformed pattern, which kubelet treats as no match.
    pub fn glob_match(pattern: &str, name: &str) -> Option<bool> {
        let p: Vec<char> = pattern.chars().collect();
        let n: Vec<char> = name.chars().collect();
        // Check the whole pattern first, as Go 1.16+ reports a bad pattern whatever
        // the name.
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                '[' => i = parse_class(&p, i)?.2,
                '\\' => {
                    if i + 1 >= p.len() {
                        return None;
                    }
                    i += 2;
                }
                _ => i += 1,
            }
        }
        Some(match_from(&p, &n))
    }

    /// Go's `getEsc`: one class character at `p[*i]` (a `\\` escapes the next), or
    /// `None` where Go reports `ErrBadPattern` (`-` or `]` here, or the pattern ends).
    fn class_char(p: &[char], i: &mut usize) -> Option<char> {
        let mut c = *p.get(*i)?;
        if c == '-' || c == ']' {
            return None;
        }
        if c == '\\' {
            *i += 1;
            c = *p.get(*i)?;
        }
        *i += 1;
        (*i < p.len()).then_some(c)
    }

    /// The class that starts at `p[start] == '['`: negated or not, its ranges, and
    /// the index after its `]`; `None` for a malformed class.
    #[allow(clippy::type_complexity)]
    fn parse_class(p: &[char], start: usize) -> Option<(bool, Vec<(char, char)>, usize)> {
        let mut i = start + 1;
        let negated = p.get(i) == Some(&'^');
        if negated {
            i += 1;
        }
        let mut ranges = Vec::new();
        loop {
            if p.get(i) == Some(&']') && !ranges.is_empty() {
                return Some((negated, ranges, i + 1));
            }
            let lo = class_char(p, &mut i)?;
            let mut hi = lo;
            if p.get(i) == Some(&'-') {
                i += 1;
                hi = class_char(p, &mut i)?;
            }
            ranges.push((lo, hi));
        }
    }

    /// Matches a pattern already checked by [`glob_match`]. Iterative, with one
    /// backtracking point (the last `*`): every other token matches exactly one
    /// character, so this is O(pattern × name) in the worst case. The recursive form
    /// (try every split at every `*`) was exponential in the number of stars, which a
    /// hostile vault key or image reference could use to stall the kubelet plugin
    /// (found by the `kubelet_request` fuzz target).
    fn match_from(p: &[char], n: &[char]) -> bool {
        let (mut pi, mut ni) = (0, 0);
        // Where to resume after the last `*`: (pattern index after it, name index).
        let mut resume: Option<(usize, usize)> = None;
        while ni < n.len() {
            if p.get(pi) == Some(&'*') {
                pi += 1;
                resume = Some((pi, ni));
                continue;
            }
            if let Some(next) = one_char(p, pi, n[ni]) {
                pi = next;
                ni += 1;
                continue;
            }
            match resume {
                // Let the last `*` swallow one more character and try again.
                Some((after_star, from)) => {
                    pi = after_star;
                    ni = from + 1;
                    resume = Some((after_star, from + 1));
                }
                None => return false,
            }
        }
        while p.get(pi) == Some(&'*') {
            pi += 1;
        }
        pi == p.len()
    }

    /// Whether the one-character token at `p[pi]` (not `*`) matches `c`: the index
    /// after the token, or `None`.
    fn one_char(p: &[char], pi: usize, c: char) -> Option<usize> {
        match *p.get(pi)? {
            '*' => None,
            '?' => Some(pi + 1),
            '[' => {
                let (negated, ranges, end) = parse_class(p, pi)?;
                let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                (inside != negated).then_some(end)
            }
            '\\' => (p.get(pi + 1) == Some(&c)).then_some(pi + 2),
            t => (t == c).then_some(pi + 1),
        }
    }

    /// `ParseSchemelessURL`: `https://` is put in front and Go's URL parser splits
    /// host from path. `None` where Go's parser fails (a host with characters no host
    /// may have), which kubelet treats as no match.
    pub fn parse_schemeless(s: &str) -> Option<(&str, &str)> {
        let end = s.find(['/', '?', '#']).unwrap_or(s.len());
        let (authority, rest) = s.split_at(end);
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host.chars().any(|c| c.is_control() || c == ' ' || c == '%') {
            return None;
        }
        let path = rest.split(['?', '#']).next().unwrap_or("");
        Some((host, path))
    }

    /// `SplitURL`: the host's dot-separated labels and its port (`""` when Go's
    /// `net.SplitHostPort` fails, i.e. no port or too many colons).
    pub fn split_url(host: &str) -> (Vec<&str>, &str) {
        let (h, port) = if let Some(rest) = host.strip_prefix('[') {
            match rest.split_once("]:") {
                Some((h, p)) if !p.contains([':', '[', ']']) => (h, p),
                _ => (host, ""),
            }
        } else {
            match host.split_once(':') {
                Some((h, p)) if !p.contains(':') && !h.contains(['[', ']']) => (h, p),
                _ => (host, ""),
            }
        };
        (h.split('.').collect(), port)
    }

    /// `URLsMatchStr(glob, target)`: same port, same number of host labels each
    /// matching its glob, and the glob's path a (string) prefix of the target's.
    pub fn urls_match_str(glob: &str, target: &str) -> bool {
        let (Some((g_host, g_path)), Some((t_host, t_path))) =
            (parse_schemeless(glob), parse_schemeless(target))
        else {
            return false;
        };
        let (g_parts, g_port) = split_url(g_host);
        let (t_parts, t_port) = split_url(t_host);
        if g_port != t_port || g_parts.len() != t_parts.len() || !t_path.starts_with(g_path) {
            return false;
        }
        g_parts
            .iter()
            .zip(&t_parts)
            .all(|(g, t)| glob_match(g, t) == Some(true))
    }

    /// `isDefaultRegistryMatch`: whether kubelet treats `image` as a Docker Hub image
    /// for its `index.docker.io` fallback.
    pub fn is_default_registry_match(image: &str) -> bool {
        let mut parts = image.splitn(2, '/');
        let first = parts.next().unwrap_or("");
        if first.is_empty() {
            return false;
        }
        if parts.next().is_none() {
            return true;
        }
        if first == "docker.io" || first == "index.docker.io" {
            return true;
        }
        !first.contains(['.', ':'])
    }

    /// The key `BasicDockerKeyring.Add` indexes a credential key under: scheme added
    /// when missing, then host plus path, a leading `/v1/` or `/v2/` cut to `/`, and a
    /// bare `/` dropped.
    pub fn keyring_key(loc: &str) -> Option<String> {
        let value = if loc.starts_with("https://") || loc.starts_with("http://") {
            loc.to_owned()
        } else {
            format!("https://{loc}")
        };
        let after_scheme = value.split_once("://").map_or("", |(_, r)| r);
        let (host, path) = parse_schemeless(after_scheme)?;
        let path = if path.starts_with("/v2/") || path.starts_with("/v1/") {
            &path[3..]
        } else {
            path
        };
        Some(if !path.is_empty() && path != "/" {
            format!("{host}{path}")
        } else {
            host.to_owned()
        })
    }

    /// `BasicDockerKeyring.Lookup`: the credential keys (of `keys`) that kubelet tries
    /// for `image`, in the order it tries them (its index in reverse byte order), with
    /// the `index.docker.io` fallback for Hub images.
    pub fn keyring_lookup<'a>(keys: &[&'a str], image: &str) -> Vec<&'a str> {
        let mut index: Vec<(String, &'a str)> = keys
            .iter()
            .filter_map(|k| keyring_key(k).map(|i| (i, *k)))
            .collect();
        index.sort_by(|a, b| b.0.cmp(&a.0));
        let hits: Vec<&'a str> = index
            .iter()
            .filter(|(i, _)| urls_match_str(i, image))
            .map(|(_, k)| *k)
            .collect();
        if !hits.is_empty() {
            return hits;
        }
        if is_default_registry_match(image) {
            return index
                .iter()
                .filter(|(i, _)| i == "index.docker.io")
                .map(|(_, k)| *k)
                .collect();
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::matching::*;
    use super::*;

    // --- ported from kubernetes/kubernetes pkg/credentialprovider/keyring_test.go
    // (6fbbec6ac5711b8c65a2420394b2bb2a2ccf5bff; the cases are unchanged in later
    // releases) -------------------------------------------------------------------

    /// `TestURLsMatch`.
    #[test]
    fn upstream_urls_match() {
        for (glob, target, want) in [
            ("*.kubernetes.io", "prefix.kubernetes.io", true),
            ("prefix.*.io", "prefix.kubernetes.io", true),
            ("prefix.kubernetes.*", "prefix.kubernetes.io", true),
            ("*-good.kubernetes.io", "prefix-good.kubernetes.io", true),
            ("*.kubernetes.io/blah", "prefix.kubernetes.io/blah", true),
            ("prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", true),
            (
                "*.kubernetes.io:1111/blah",
                "prefix.kubernetes.io:1111/blah",
                true,
            ),
            (
                "prefix.*.io:1111/foo",
                "prefix.kubernetes.io:1111/foo/bar",
                true,
            ),
            ("*.kubernetes.io", "kubernetes.io", false),
            ("*.*.kubernetes.io", "prefix.kubernetes.io", false),
            ("*.*.kubernetes.io", "kubernetes.io", false),
            ("kubernetes.io", "kubernetes.com", false),
            ("k*.io", "quay.io", false),
            (
                "*.kubernetes.io:1234/blah",
                "prefix.kubernetes.io:1111/blah",
                false,
            ),
            (
                "prefix.*.io/foo",
                "prefix.kubernetes.io:1111/foo/bar",
                false,
            ),
        ] {
            assert_eq!(urls_match_str(glob, target), want, "{glob} vs {target}");
        }
    }

    /// `TestDockerKeyringForGlob`: each key, looked up with `target + "/foo/bar"`.
    #[test]
    fn upstream_keyring_for_glob() {
        for (key, target) in [
            ("https://hello.kubernetes.io", "hello.kubernetes.io"),
            ("https://*.docker.io", "prefix.docker.io"),
            ("https://prefix.*.io", "prefix.docker.io"),
            ("https://prefix.docker.*", "prefix.docker.io"),
            ("https://*.docker.io/path", "prefix.docker.io/path"),
            ("https://prefix.*.io/path", "prefix.docker.io/path/subpath"),
            ("https://prefix.docker.*/path", "prefix.docker.io/path"),
            ("https://*.docker.io:8888", "prefix.docker.io:8888"),
            ("https://prefix.*.io:8888", "prefix.docker.io:8888"),
            ("https://prefix.docker.*:8888", "prefix.docker.io:8888"),
            (
                "https://*.docker.io/path:1111",
                "prefix.docker.io/path:1111",
            ),
            ("https://*.docker.io/v1/", "prefix.docker.io/path:1111"),
            ("https://*.docker.io/v2/", "prefix.docker.io/path:1111"),
            (
                "https://prefix.docker.*/path:1111",
                "prefix.docker.io/path:1111",
            ),
            ("prefix.docker.io:1111", "prefix.docker.io:1111/path"),
            ("*.docker.io:1111", "prefix.docker.io:1111/path"),
        ] {
            let image = format!("{target}/foo/bar");
            assert_eq!(keyring_lookup(&[key], &image), [key], "{key} for {image}");
        }
    }

    /// `TestKeyringMiss`.
    #[test]
    fn upstream_keyring_miss() {
        for (key, lookup) in [
            ("https://hello.kubernetes.io", "world.mesos.org/foo/bar"),
            ("https://*.docker.com", "prefix.docker.io"),
            ("https://suffix.*.io", "prefix.docker.io"),
            ("https://prefix.docker.c*", "prefix.docker.io"),
            (
                "https://prefix.*.io/path:1111",
                "prefix.docker.io/path/subpath:1111",
            ),
            ("suffix.*.io", "prefix.docker.io"),
        ] {
            let image = format!("{lookup}/foo/bar");
            assert!(
                keyring_lookup(&[key], &image).is_empty(),
                "{key} for {image}"
            );
        }
    }

    /// `TestKeyringMissWithDockerHubCredentials`, `TestKeyringHitWithUnqualifiedDockerHub`,
    /// `…UnqualifiedLibraryDockerHub`, `…QualifiedDockerHub`.
    #[test]
    fn upstream_docker_hub_fallback() {
        let hub = ["https://index.docker.io/v1/"];
        assert!(keyring_lookup(&hub, "world.mesos.org/foo/bar").is_empty());
        assert_eq!(keyring_lookup(&hub, "google/docker-registry"), hub);
        assert_eq!(keyring_lookup(&hub, "jenkins"), hub);
        assert_eq!(
            keyring_lookup(&hub, "index.docker.io/v1//google/docker-registry"),
            hub
        );
    }

    /// `TestIsDefaultRegistryMatch`.
    #[test]
    fn upstream_is_default_registry_match() {
        for (image, want) in [
            ("foo/bar", true),
            ("docker.io/foo/bar", true),
            ("index.docker.io/foo/bar", true),
            ("foo", true),
            ("", false),
            ("registry.tld/foo/bar", false),
            ("registry:5000/foo/bar", false),
            ("myhostdocker.io/foo/bar", false),
        ] {
            assert_eq!(is_default_registry_match(image), want, "{image:?}");
        }
    }

    /// `TestDockerKeyringLookup`: the deeper path first, then the host.
    #[test]
    fn upstream_keyring_lookup_order() {
        let keys = ["bar.example.com/pong", "bar.example.com"];
        for (image, want) in [
            ("bar.example.com", &["bar.example.com"][..]),
            (
                "bar.example.com/pong",
                &["bar.example.com/pong", "bar.example.com"],
            ),
            ("bar.example.com/ping", &["bar.example.com"]),
            (
                "bar.example.com/pongz",
                &["bar.example.com/pong", "bar.example.com"],
            ),
            (
                "bar.example.com/pong/pang",
                &["bar.example.com/pong", "bar.example.com"],
            ),
            ("example.com", &[]),
            ("foo.example.com", &[]),
        ] {
            assert_eq!(keyring_lookup(&keys, image), want, "{image}");
        }
    }

    /// `TestIssue3797`: a key with a scheme and `/v1/` serves the bare host.
    #[test]
    fn upstream_issue_3797() {
        let keys = ["https://quay.io/v1/"];
        for image in ["quay.io", "quay.io/foo", "quay.io/foo/bar"] {
            assert_eq!(keyring_lookup(&keys, image), keys, "{image}");
        }
    }

    #[test]
    fn glob_like_go_filepath_match() {
        for (p, n, want) in [
            ("abc", "abc", Some(true)),
            ("*", "abc", Some(true)),
            ("*c", "abc", Some(true)),
            ("a*", "a", Some(true)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
            ("ab[c]", "abc", Some(true)),
            ("ab[b-d]", "abc", Some(true)),
            ("ab[e-g]", "abc", Some(false)),
            ("ab[^c]", "abc", Some(false)),
            ("ab[^b-d]", "abe", Some(true)),
            ("a\\*b", "a*b", Some(true)),
            ("a\\*b", "ab", Some(false)),
            ("a?b", "a☺b", Some(true)),
            ("[", "a", None),
            ("[^", "a", None),
            ("a[", "a", None),
            ("[a-", "a", None),
            ("[-]", "-", None),
            ("[]a]", "]", None),
            ("[x-]", "x", None),
            ("[a-c]x", "bx", Some(true)),
            ("[\\]]", "]", Some(true)),
            ("\\", "a", None),
            ("*x", "xxx", Some(true)),
        ] {
            assert_eq!(glob_match(p, n), want, "{p:?} vs {n:?}");
        }
    }

    // --- this plugin --------------------------------------------------------------

    fn entries(keys: &[&'static str]) -> Vec<(&'static str, &'static str)> {
        keys.iter().map(|k| (*k, "user")).collect()
    }

    /// What kubelet tries first for `image` after this plugin answered it from a
    /// vault with `keys`: the vault key behind it.
    fn kubelet_pick(keys: &[&'static str], image: &str) -> Option<&'static str> {
        let chosen = select(image, entries(keys));
        let auth_keys: Vec<&str> = chosen.iter().map(|(a, _)| a.as_str()).collect();
        let first = *keyring_lookup(&auth_keys, image).first()?;
        chosen.iter().find(|(a, _)| a == first).map(|(_, v)| *v)
    }

    #[test]
    fn hub_images_find_the_hub_entry_whatever_its_spelling() {
        for hub in [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
        ] {
            let keys = [hub, "ghcr.io", "registry.example.com:5000"];
            for image in [
                "docker.io/library/nginx",
                "docker.io/bitnami/redis",
                "index.docker.io/library/nginx",
                "nginx",
                "library/nginx",
            ] {
                assert_eq!(kubelet_pick(&keys, image), Some(hub), "{hub} for {image}");
            }
        }
    }

    #[test]
    fn the_most_specific_path_wins_and_other_paths_stay_out() {
        let keys = ["ghcr.io", "ghcr.io/org-a", "https://ghcr.io/org-b/"];
        assert_eq!(
            kubelet_pick(&keys, "ghcr.io/org-a/app"),
            Some("ghcr.io/org-a")
        );
        assert_eq!(
            kubelet_pick(&keys, "ghcr.io/org-b/app"),
            Some("https://ghcr.io/org-b/")
        );
        assert_eq!(kubelet_pick(&keys, "ghcr.io/org-c/app"), Some("ghcr.io"));
        // A path-scoped entry alone never serves another path.
        assert_eq!(kubelet_pick(&["ghcr.io/org-a"], "ghcr.io/org-b/app"), None);
        // The whole registry is answered, as kubelet caches the answer per registry.
        assert_eq!(
            select("ghcr.io/org-c/app", entries(&keys))
                .into_iter()
                .map(|(a, _)| a)
                .collect::<Vec<_>>(),
            ["ghcr.io", "ghcr.io/org-a", "ghcr.io/org-b"]
        );
    }

    #[test]
    fn ports_schemes_and_case_follow_the_helpers_lookup() {
        let keys = [
            "https://Registry.Example.com",
            "registry.example.com:5000",
            "http://localhost:5001/",
        ];
        assert_eq!(
            kubelet_pick(&keys, "registry.example.com/app"),
            Some("https://Registry.Example.com")
        );
        assert_eq!(
            kubelet_pick(&keys, "registry.example.com:5000/app"),
            Some("registry.example.com:5000")
        );
        // The default port is the same registry; the answer is keyed as the image
        // spells it, so kubelet's exact port match holds.
        assert_eq!(
            select("registry.example.com:443/app", entries(&keys)),
            [(
                "registry.example.com:443".to_owned(),
                "https://Registry.Example.com"
            )]
        );
        assert_eq!(
            kubelet_pick(&keys, "registry.example.com:443/app"),
            Some("https://Registry.Example.com")
        );
        assert_eq!(
            kubelet_pick(&keys, "localhost:5001/app"),
            Some("http://localhost:5001/")
        );
        assert_eq!(kubelet_pick(&keys, "registry.example.com:5001/app"), None);
        assert_eq!(kubelet_pick(&keys, "other.example.com/app"), None);
    }

    #[test]
    fn duplicates_tokens_and_desktop_keys() {
        // `https://ghcr.io` and `ghcr.io` give one key: the exact spelling wins.
        assert_eq!(
            select(
                "ghcr.io/x",
                entries(&["https://ghcr.io", "ghcr.io", "http://ghcr.io"])
            ),
            [("ghcr.io".to_owned(), "ghcr.io")]
        );
        // Else the first in byte order.
        assert_eq!(
            select("ghcr.io/x", entries(&["https://ghcr.io", "http://ghcr.io"])),
            [("ghcr.io".to_owned(), "http://ghcr.io")]
        );
        // `/v2/` and `/v1` paths are the host, as kubelet's keyring has it.
        assert_eq!(
            select("quay.io/x", entries(&["https://quay.io/v2/"])),
            [("quay.io".to_owned(), "https://quay.io/v2/")]
        );
        let tokens = [("ghcr.io", TOKEN_USERNAME), ("quay.io", "u")];
        assert!(select("ghcr.io/x", tokens).is_empty());
        let desktop = entries(&[
            "https://index.docker.io/v1/access-token",
            "https://index.docker.io/v1/refresh-token",
        ]);
        assert!(select("docker.io/library/nginx", desktop).is_empty());
    }

    #[test]
    fn request_parsing() {
        let ok = |json: &str| Request::parse(json.as_bytes());
        assert_eq!(
            ok(r#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"docker.io/library/nginx"}"#).unwrap(),
            Request { api_version: API_V1, image: "docker.io/library/nginx".into() }
        );
        // Unknown fields (the 1.33+ service account fields among them) are skipped,
        // kind may be absent, trailing whitespace is fine.
        assert_eq!(
            ok("{\"apiVersion\":\"credentialprovider.kubelet.k8s.io/v1beta1\",\"image\":\"ghcr.io/a\",\"serviceAccountToken\":\"tok\",\"serviceAccountAnnotations\":{\"a\":\"b\"},\"future\":[1,{}]}\n").unwrap(),
            Request { api_version: API_V1BETA1, image: "ghcr.io/a".into() }
        );
        for bad in [
            "",
            " \n",
            "{",
            "[]",
            "\"x\"",
            r#"{"image":"nginx"}"#,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1alpha1","image":"nginx"}"#,
            r#"{"apiVersion":"v1","image":"nginx"}"#,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"Pod","image":"nginx"}"#,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1"}"#,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":""}"#,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":null}"#,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":7}"#,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"a b"}"#,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"a","image":"b"}"#,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"a"} {}"#,
            r#"{"APIVERSION":"credentialprovider.kubelet.k8s.io/v1","image":"a"}"#,
        ] {
            let e = ok(bad).expect_err(bad);
            assert!(matches!(e, KubeletError::BadRequest(_)), "{bad}");
            assert_eq!(e.exit(), Exit::Usage);
        }
    }

    #[test]
    fn request_errors_never_quote_the_token() {
        for bad in [
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"a","serviceAccountToken":"hunter2-token" oops}"#,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"a","serviceAccountToken":"hunter2-token","image":"b"}"#,
            r#"{"serviceAccountToken":"hunter2-token"}"#,
            r#""hunter2-token""#,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":["hunter2-token"]}"#,
        ] {
            let e = Request::parse(bad.as_bytes()).unwrap_err();
            assert!(!e.message().contains("hunter2"), "{}", e.message());
        }
    }

    /// The `kubelet_request` fuzz target's checks over its seed corpus, so they run
    /// with the unit tests even where cargo-fuzz is not installed.
    #[test]
    fn fuzz_seeds_replay() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/kubelet_request");
        let mut n = 0;
        for f in std::fs::read_dir(dir).expect("the seed corpus") {
            let data = std::fs::read(f.unwrap().path()).unwrap();
            n += 1;
            match Request::parse(&data) {
                Ok(req) => {
                    let chosen = select(&req.image, entries(&["ghcr.io", "ghcr.io/team"]));
                    let auth: Vec<_> = chosen
                        .iter()
                        .map(|(k, _)| {
                            (
                                k.clone(),
                                "u".to_owned(),
                                SecretString::from("p".to_owned()),
                            )
                        })
                        .collect();
                    let out = render_response(req.api_version, DEFAULT_CACHE_DURATION, &auth);
                    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                    assert_eq!(v["apiVersion"], req.api_version);
                }
                Err(e) => {
                    let line = e.message();
                    assert!(!line.contains(['\n', '\r']));
                    // The fuzz target's rule: the seeds' token marker, when it is in
                    // the token and in no field an error may quote, is never quoted.
                    const MARK: &str = "sa-token-secret";
                    if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(&data) {
                        let holds = |k: &str| {
                            m.get(k)
                                .and_then(|v| v.as_str())
                                .is_some_and(|v| v.contains(MARK))
                        };
                        if holds("serviceAccountToken")
                            && !["apiVersion", "kind", "image"].into_iter().any(holds)
                        {
                            assert!(!line.contains(MARK), "{line}");
                        }
                    }
                }
            }
        }
        assert!(n >= 5, "{n} seeds");
    }

    #[test]
    fn durations() {
        for (text, want) in [
            ("5m", Some("5m0s")),
            ("0", Some("0s")),
            ("0s", Some("0s")),
            ("45s", Some("45s")),
            ("90s", Some("1m30s")),
            ("1h", Some("1h0m0s")),
            ("1h 2m 3s", Some("1h2m3s")),
            ("24h", Some("24h0m0s")),
            ("24h 1s", None),
            ("1.5s", None),
            ("500ms", None),
            ("-5m", None),
            ("soon", None),
            ("", None),
        ] {
            let got = parse_cache_duration(text).ok().map(go_duration);
            assert_eq!(got.as_deref(), want, "{text:?}");
        }
        assert_eq!(go_duration(DEFAULT_CACHE_DURATION), "5m0s");
    }

    #[test]
    fn cache_never_outlives_a_minted_token_nor_its_stale_margin() {
        let five = Duration::from_secs(300);
        // A 12-hour token: the whole five minutes.
        assert_eq!(cache_within_token(five, Some(1000 + 43_200), 1000), five);
        // 400 s left: no cache serves its last 100 s.
        assert_eq!(
            cache_within_token(five, Some(1400), 1000),
            Duration::from_secs(300)
        );
        assert_eq!(
            cache_within_token(five, Some(1200), 1000),
            Duration::from_secs(150)
        );
        // Expired, or no expiry at all: not cached.
        assert_eq!(cache_within_token(five, Some(900), 1000), Duration::ZERO);
        assert_eq!(cache_within_token(five, None, 1000), Duration::ZERO);
    }

    #[test]
    fn cache_never_outlives_the_entry() {
        let five = Duration::from_secs(300);
        assert_eq!(cache_within_expiry(five, None, 1000), five);
        assert_eq!(cache_within_expiry(five, Some(2000), 1000), five);
        assert_eq!(
            cache_within_expiry(five, Some(1060), 1000),
            Duration::from_secs(60)
        );
        assert_eq!(cache_within_expiry(five, Some(1000), 1000), Duration::ZERO);
        assert_eq!(cache_within_expiry(five, Some(10), 1000), Duration::ZERO);
    }

    #[test]
    fn response_shape() {
        let auth = vec![(
            "ghcr.io".to_owned(),
            "u<".to_owned(),
            SecretString::from("p\"w".to_owned()),
        )];
        let out = render_response(API_V1, DEFAULT_CACHE_DURATION, &auth);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "kind": "CredentialProviderResponse",
                "apiVersion": API_V1,
                "cacheKeyType": "Registry",
                "cacheDuration": "5m0s",
                "auth": {"ghcr.io": {"username": "u<", "password": "p\"w"}},
            })
        );
        assert!(out.ends_with(b"}\n") && out.iter().filter(|b| **b == b'\n').count() == 1);
        let none = render_response(API_V1BETA1, Duration::ZERO, &[]);
        assert_eq!(
            std::str::from_utf8(&none).unwrap(),
            "{\"kind\":\"CredentialProviderResponse\",\"apiVersion\":\"credentialprovider.kubelet.k8s.io/v1beta1\",\"cacheKeyType\":\"Registry\",\"cacheDuration\":\"0s\"}\n"
        );
    }

    /// Regression (found by the `kubelet_request` fuzz target): the glob port tried
    /// every split at every `*`, exponential in the number of stars. Forty stars
    /// against a name they cannot match now take a moment; before, this never ended
    /// (nextest's slow-timeout is what would fail it).
    #[test]
    fn regress_glob_with_many_stars_is_not_exponential() {
        let pattern = format!("{}x", "*".repeat(40));
        let name = "m".repeat(200);
        assert_eq!(matching::glob_match(&pattern, &name), Some(false));
        assert_eq!(
            matching::glob_match(&pattern, &format!("{name}x")),
            Some(true)
        );
        assert_eq!(matching::glob_match("a*b*c", "aXXbYYc"), Some(true));
        assert_eq!(matching::glob_match("a*b*c", "aXXbYY"), Some(false));
        assert_eq!(matching::glob_match("*.[a-c]?z", "host.bqz"), Some(true));
        assert_eq!(matching::glob_match("\\*", "*"), Some(true));
        assert_eq!(matching::glob_match("\\*", "a"), Some(false));
    }
}
