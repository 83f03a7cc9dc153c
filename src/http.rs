//! The one small HTTPS client of the network backends (the sealed sources in
//! `src/sources/`; the rule for the URLs they and the rotation settings may name).
//!
//! What holds for every request, because a request carries a secret or a credential
//! made from one (`docs/THREAT_MODEL.md` "Sources"):
//!
//! - `https://` to any host, plain `http://` only to `127.0.0.1`, `[::1]` or
//!   `localhost` ([`check_url`], checked again before each request);
//! - no proxy: `HTTPS_PROXY` & co. are never read;
//! - no redirect: a 3xx is an answer like any other, never followed with the secret;
//! - TLS by rustls with `ring` and the system CA bundle (read once per process);
//! - a deadline for the whole request, connection included, that the caller gives
//!   (one deadline for all the requests of one mint: [`Http::deadline`]);
//! - answers bounded ([`MAX_BODY`]) and read into memory that is wiped on drop;
//! - failures are one plain line without the URL's or the body's secrets: the caller
//!   names the endpoint, and quotes a service's error code, never a whole body.
//!
//! The bodies sent are built by the callers into wiped buffers ([`form_encode`]).
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use zeroize::Zeroizing;

use crate::messages;
use crate::sanitize::{sanitize, shorten};

/// Largest answer read, bytes (token answers are a few kilobytes).
pub const MAX_BODY: usize = 1 << 20;
/// Most time to open a connection (within the request's deadline).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest URL accepted anywhere, bytes.
pub const MAX_URL: usize = 2048;
/// The system CA bundles tried, in order (as `src/openbao/`).
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
];

/// What RFC 3986 leaves unreserved stays, everything else is `%XX`: the encoding of
/// `application/x-www-form-urlencoded` bodies (a space as `%20`, which every decoder
/// reads) and of SigV4's canonical strings.
pub const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An answer: its status and bounded body.
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body, at most [`MAX_BODY`] bytes, wiped on drop.
    pub body: Zeroizing<Vec<u8>>,
}

impl Answer {
    /// A 2xx status.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The client: one ureq agent with the settings above. Cheap to share; the CA bundle
/// is read once per process.
pub struct Http {
    agent: ureq::Agent,
    timeout: Duration,
}

impl Http {
    /// A client whose requests each end within `timeout`, or within the deadline a
    /// caller gives for several ([`Http::deadline`]).
    pub fn new(timeout: Duration) -> Http {
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::new_with_certs(system_roots()))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let config = ureq::Agent::config_builder()
            // ureq's default reads HTTPS_PROXY & co.: never here.
            .proxy(None)
            // A 3xx is an answer, never followed with the secret.
            .max_redirects(0)
            .http_status_as_error(false)
            // Plain http:// only to loopback: `check_url` before every request.
            .https_only(false)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(CONNECT_TIMEOUT.min(timeout)))
            .user_agent(concat!(
                "docker-credential-lockbox/",
                env!("CARGO_PKG_VERSION")
            ))
            .max_idle_connections(1)
            .tls_config(tls)
            .build();
        Http {
            agent: config.new_agent(),
            timeout,
        }
    }

    /// The time each request is given.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The deadline of a series of requests that starts now (one mint: an AssumeRole
    /// then the ECR call share it).
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// `GET url` with `headers`, ending by `deadline`.
    pub fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<Answer, String> {
        self.send("GET", url, headers, None, deadline)
    }

    /// `POST url` with `headers` (the content type among them) and `body`, ending by
    /// `deadline`.
    pub fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<Answer, String> {
        self.send("POST", url, headers, Some(body), deadline)
    }

    /// `method` (`GET`, `POST`, `PUT` or `PATCH`; anything else is a `POST`) to `url`
    /// with `headers` and, but for `GET`, `body` (empty when `None`), ending by
    /// `deadline`. A transport failure is an error; any status is an [`Answer`].
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        deadline: Instant,
    ) -> Result<Answer, String> {
        let left = self.left(url, deadline)?;
        let host = host_header(url);
        let result = if method == "GET" {
            let mut r = self.agent.get(url).header("Host", &host);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.config().timeout_global(Some(left)).build().call()
        } else {
            let mut r = match method {
                "PATCH" => self.agent.patch(url),
                "PUT" => self.agent.put(url),
                _ => self.agent.post(url),
            }
            .header("Host", &host);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            let r = r.config().timeout_global(Some(left)).build();
            r.send(body.unwrap_or_default())
        };
        self.finish(result)
    }

    /// `POST url` of an `application/x-www-form-urlencoded` body of `fields`, ending
    /// by `deadline`. The body is built in wiped memory.
    pub fn post_form(
        &self,
        url: &str,
        fields: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<Answer, String> {
        let body = form_encode(fields);
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Accept", "application/json"),
        ];
        self.post(url, &headers, body.as_bytes(), deadline)
    }

    /// The time left before `deadline` for a request to `url`, which must pass
    /// [`check_url`].
    fn left(&self, url: &str, deadline: Instant) -> Result<Duration, String> {
        check_url(url)?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(messages::http_timeout(self.timeout.as_secs()));
        }
        Ok(left)
    }

    /// The answer of a request, its body bounded and wiped.
    fn finish(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, String> {
        let response = result.map_err(|e| self.transport(&e))?;
        let status = response.status().as_u16();
        let reader = response.into_body().into_reader();
        let body = crate::secret_io::read_wiped(reader.take(MAX_BODY as u64 + 1), MAX_BODY)
            .map_err(|e| sanitize(&shorten(&e.to_string())))?;
        if body.len() > MAX_BODY {
            return Err(messages::http_too_large(status, MAX_BODY));
        }
        Ok(Answer { status, body })
    }

    /// A transport failure in words (there is no secret in a URL these clients ask).
    fn transport(&self, e: &ureq::Error) -> String {
        match e {
            ureq::Error::Timeout(_) => messages::http_timeout(self.timeout.as_secs()),
            ureq::Error::HostNotFound => messages::HTTP_HOST_NOT_FOUND.into(),
            other => {
                let text = sanitize(&shorten(&other.to_string()));
                if text.contains("invalid peer certificate") {
                    messages::http_untrusted(&text)
                } else {
                    text
                }
            }
        }
    }
}

/// `fields` as an `application/x-www-form-urlencoded` body, in wiped memory.
pub fn form_encode(fields: &[(&str, &str)]) -> Zeroizing<String> {
    let size = fields
        .iter()
        .map(|(k, v)| 3 * (k.len() + v.len()) + 2)
        .sum();
    let mut body = Zeroizing::new(String::with_capacity(size));
    for (k, v) in fields {
        if !body.is_empty() {
            body.push('&');
        }
        body.extend(utf8_percent_encode(k, ENCODE));
        body.push('=');
        body.extend(utf8_percent_encode(v, ENCODE));
    }
    body
}

/// The URL's `host[:port]` as sent in `Host` (and signed by SigV4): lowercase, the
/// scheme's default port left out. `url` has passed [`check_url`].
pub fn host_header(url: &str) -> String {
    let lower = url.to_ascii_lowercase();
    let (rest, default) = match lower.strip_prefix("https://") {
        Some(rest) => (rest, ":443"),
        None => (lower.strip_prefix("http://").unwrap_or(&lower), ":80"),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    authority
        .strip_suffix(default)
        .unwrap_or(authority)
        .to_owned()
}

/// The URL's path (`/` when it has none). `url` has passed [`check_url`].
pub fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// Checks a URL a secret (or a credential made from one) is sent to: `https://` to
/// any host, `http://` only to `127.0.0.1`, `[::1]` or `localhost` (the secret would
/// cross the network in the clear); no user info, query or fragment; at most
/// [`MAX_URL`] bytes of printable ASCII. The rule of the rotation settings' API URL
/// (`vault::meta::check_api_url`) and of every source endpoint.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL {
        return Err(messages::URL_TOO_LONG.into());
    }
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(messages::URL_NOT_PRINTABLE.into());
    }
    let lower = url.to_ascii_lowercase();
    let (plain, rest) = if let Some(rest) = lower.strip_prefix("https://") {
        (false, rest)
    } else if let Some(rest) = lower.strip_prefix("http://") {
        (true, rest)
    } else {
        return Err(messages::URL_SCHEME.into());
    };
    if rest.contains(['?', '#', '@', '\\']) {
        return Err(messages::URL_EXTRAS.into());
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().map(|h| format!("[{h}]")),
        None => authority.split(':').next().map(str::to_owned),
    }
    .unwrap_or_default();
    if host.is_empty() || host == "[]" {
        return Err(messages::URL_NO_HOST.into());
    }
    let port_ok = match authority.strip_prefix(&host) {
        Some("") => true,
        Some(p) => p
            .strip_prefix(':')
            .is_some_and(|n| !n.is_empty() && n.parse::<u16>().is_ok()),
        None => false,
    };
    if !port_ok {
        return Err(messages::URL_BAD_PORT.into());
    }
    if plain && !matches!(host.as_str(), "127.0.0.1" | "[::1]" | "localhost") {
        return Err(messages::URL_PLAIN_HTTP.into());
    }
    Ok(())
}

/// The system CA bundle's certificates, read once (none found: no HTTPS server is
/// trusted, and a call fails with a certificate error that says so).
fn system_roots() -> &'static [ureq::tls::Certificate<'static>] {
    static ROOTS: OnceLock<Vec<ureq::tls::Certificate<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let Some(path) = SYSTEM_CA_BUNDLES
            .iter()
            .map(Path::new)
            .find(|p| p.is_file())
        else {
            return Vec::new();
        };
        let Ok(file) = crate::secret_io::open(path, crate::secret_io::Accept::RegularFile) else {
            return Vec::new();
        };
        let mut pem = Vec::new();
        if file.take(16 << 20).read_to_end(&mut pem).is_err() {
            return Vec::new();
        }
        ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_https_anywhere_plain_http_only_to_loopback() {
        for ok in [
            "https://api.ecr.eu-west-1.amazonaws.com/",
            "https://login.microsoftonline.com",
            "HTTPS://Example.com:8443/a/b",
            "http://127.0.0.1:5000/token",
            "http://[::1]:80",
            "http://localhost/x",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://example.com/token",
            "http://127.0.0.2/",
            "http://localhost.evil.com/",
            "http://127.0.0.1.nip.io/",
            "http://[::2]/",
            "ftp://127.0.0.1/",
            "https://user:pw@example.com/",
            "https://example.com/?a=b",
            "https://example.com/#f",
            "https://example.com:99999/",
            "https://example.com:/",
            "https:///path",
            "https://exa mple.com/",
            "https://\u{e9}.com/",
            "example.com",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url(&format!("https://h/{}", "a".repeat(MAX_URL))).is_err());
        assert_eq!(
            check_url("http://example.com/"),
            Err(messages::URL_PLAIN_HTTP.into())
        );
    }

    #[test]
    fn host_headers_and_paths_as_signed() {
        assert_eq!(host_header("https://Api.Example.com/"), "api.example.com");
        assert_eq!(host_header("https://h:443/x"), "h");
        assert_eq!(host_header("https://h:8443/x"), "h:8443");
        assert_eq!(host_header("http://127.0.0.1:80"), "127.0.0.1");
        assert_eq!(host_header("http://127.0.0.1:5000/a"), "127.0.0.1:5000");
        assert_eq!(host_header("http://[::1]:5000"), "[::1]:5000");
        assert_eq!(path_of("https://h"), "/");
        assert_eq!(path_of("https://h/"), "/");
        assert_eq!(path_of("https://h:1/a/b"), "/a/b");
    }

    #[test]
    fn forms_are_percent_encoded() {
        let body = form_encode(&[("a b", "x+y/z=&é"), ("k", "-._~")]);
        assert_eq!(&*body, "a%20b=x%2By%2Fz%3D%26%C3%A9&k=-._~");
        assert_eq!(&*form_encode(&[]), "");
    }

    #[test]
    fn a_refused_url_or_a_spent_deadline_sends_nothing() {
        let http = Http::new(Duration::from_secs(3));
        let e = http
            .get("http://192.0.2.1/", &[], http.deadline())
            .err()
            .unwrap();
        assert_eq!(e, messages::URL_PLAIN_HTTP);
        // Port 9 on loopback: nothing listens; the spent deadline answers first.
        let past = Instant::now() - Duration::from_secs(1);
        let e = http.get("http://127.0.0.1:9/", &[], past).err().unwrap();
        assert_eq!(e, messages::http_timeout(3));
    }

    proptest::proptest! {
        // encode → decode: any fields survive a form body (as a server decodes it).
        #[test]
        fn forms_round_trip(fields in proptest::collection::vec((".*", ".*"), 0..5)) {
            let refs: Vec<(&str, &str)> =
                fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let body = form_encode(&refs);
            proptest::prop_assert!(body.bytes().all(|b| b.is_ascii_graphic()));
            let decode = |t: &str| {
                percent_encoding::percent_decode_str(t).decode_utf8().unwrap().into_owned()
            };
            let back: Vec<(String, String)> = if body.is_empty() {
                Vec::new()
            } else {
                body.split('&')
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap();
                        (decode(k), decode(v))
                    })
                    .collect()
            };
            proptest::prop_assert_eq!(back, fields);
        }

        // No URL that passes the check is plain http:// to a host that is not loopback.
        #[test]
        fn plain_http_passes_only_for_loopback(host in "[a-z0-9.:\\[\\]-]{1,20}", rest in "[a-z/]{0,8}") {
            let url = format!("http://{host}/{rest}");
            if check_url(&url).is_ok() {
                let authority = host.to_ascii_lowercase();
                let h = authority.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok())
                    .map_or(authority.as_str(), |(h, _)| h);
                proptest::prop_assert!(matches!(h, "127.0.0.1" | "[::1]" | "localhost"), "{}", url);
            }
        }
    }
}
