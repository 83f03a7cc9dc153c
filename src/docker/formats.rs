//! The formats `export --format` writes, as pure functions from decrypted entries to
//! bytes; `export` (the command) opens the vault, picks the entries and prints.
//!
//! | format | what | for |
//! |---|---|---|
//! | `docker-config` | `{"auths":{…}}`, indented; `auth` (base64 `user:password`) or `identitytoken` | Docker's `config.json` (the default, as before) |
//! | `dockerconfigjson` | one line, `username`, `password` and `auth` per registry | the payload of a `kubernetes.io/dockerconfigjson` Secret |
//! | `k8s-secret` | a Secret manifest in JSON (`kubectl apply -f -` reads JSON) | Kubernetes `imagePullSecrets` |
//! | `docker-auth-config` | one line, `auth` fields only | `DOCKER_AUTH_CONFIG` (Docker CLI 28.3+, docker/cli#6008; GitLab runners) |
//! | `containers-auth` | `{"auths":{…}}`, indented, keys as containers/image writes them (`docker.io`, no scheme) | podman, skopeo, buildah `auth.json` |
//!
//! The `.dockerconfigjson` payload is, as JSON values, what `kubectl create secret
//! docker-registry NAME --docker-server=S --docker-username=U --docker-password=P`
//! makes (kubectl's `handleDockerCfgJSONContent`: `username`, `password`, `auth`;
//! no `email` when none is given), tested against the real kubectl in
//! `tests/system/fleet.rs`.
//!
//! Identity tokens (`<token>` entries) exist only in the Docker and containers
//! formats; the others leave them out and say so ([`Rendered::left_out`]).
//!
//! Everything is written into a wiped buffer that grows by copying into a new wiped
//! buffer ([`Wiped`]), so no unwiped copy of a secret is left behind.
use std::collections::BTreeMap;

use age::secrecy::{ExposeSecret, SecretString};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use crate::docker::config_json::TOKEN_USERNAME;
use crate::{docker::go_json, docker::server_url};

/// An export format (`export --format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Docker's config.json `auths` (the default).
    #[default]
    DockerConfig,
    /// A Kubernetes `kubernetes.io/dockerconfigjson` Secret manifest (JSON); needs
    /// `--name`.
    K8sSecret,
    /// The Secret's `.dockerconfigjson` payload alone, one line.
    Dockerconfigjson,
    /// One line for the `DOCKER_AUTH_CONFIG` variable.
    DockerAuthConfig,
    /// A containers `auth.json` (podman, skopeo, buildah).
    ContainersAuth,
}

/// One decrypted entry.
pub struct Cred<'a> {
    /// The vault key (Docker's server URL).
    pub server: &'a str,
    /// The username (`<token>` for an identity token).
    pub username: &'a str,
    /// The password or token.
    pub secret: SecretString,
}

/// The Secret's name and namespace (`k8s-secret`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    /// `metadata.name`, a DNS subdomain.
    pub name: String,
    /// `metadata.namespace`, a DNS label; none leaves it to `kubectl apply -n`.
    pub namespace: Option<String>,
}

/// What [`render`] made.
pub struct Rendered {
    /// The bytes to print, ending in a newline.
    pub bytes: Zeroizing<Vec<u8>>,
    /// Entries left out, with why (no secret in either).
    pub left_out: Vec<(String, &'static str)>,
}

/// Why an identity token is left out of a format that has no field for it.
pub const TOKEN_LEFT_OUT: &str =
    "an identity token, which this format cannot carry (only a username and password)";
/// Why a second spelling of one registry is left out of `containers-auth`.
pub const DUPLICATE_LEFT_OUT: &str =
    "another spelling of a registry already written (auth.json has one key per registry)";
/// Why a key with no host is left out of `containers-auth`.
pub const NO_HOST_LEFT_OUT: &str = "it names no registry host";

/// Picks the vault keys for `--registry` values, each matched as `get` matches a
/// server URL (exact, then the normalised form: [`server_url::find`]). With no value,
/// every key. `Err` names the first value that matches nothing.
pub fn select_registries<'a>(
    wanted: &[String],
    keys: impl IntoIterator<Item = &'a str> + Clone,
) -> Result<Vec<&'a str>, String> {
    if wanted.is_empty() {
        return Ok(keys.into_iter().collect());
    }
    let mut chosen = Vec::new();
    for w in wanted {
        let key = server_url::find(w, keys.clone()).ok_or_else(|| w.clone())?;
        if !chosen.contains(&key) {
            chosen.push(key);
        }
    }
    chosen.sort_unstable();
    Ok(chosen)
}

/// Why `name` is not a valid Secret name (an RFC 1123 DNS subdomain: at most 253
/// characters of `a-z`, `0-9`, `-`, `.`, starting and ending alphanumeric), if not.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    let ok =
        !name.is_empty() && name.len() <= 253 && name.split('.').all(|label| dns_label(label, 253));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid Secret name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
        ))
    }
}

/// Why `ns` is not a valid namespace (an RFC 1123 DNS label, at most 63), if not.
pub fn check_namespace(ns: &str) -> Result<(), String> {
    if dns_label(ns, 63) {
        Ok(())
    } else {
        Err(format!(
            "{ns:?} is not a valid namespace: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
        ))
    }
}

fn dns_label(s: &str, max: usize) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter().all(|&c| alnum(c) || c == b'-')
}

/// A wiped output buffer that grows by copying into a new wiped buffer, so the old
/// allocation is zeroed, never just freed.
pub struct Wiped(Zeroizing<Vec<u8>>);

impl Wiped {
    fn new() -> Self {
        Wiped(Zeroizing::new(Vec::with_capacity(4096)))
    }

    fn reserve(&mut self, extra: usize) {
        let need = self.0.len() + extra;
        if need > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(need.max(self.0.capacity() * 2)));
            bigger.extend_from_slice(&self.0);
            self.0 = bigger; // the old buffer is zeroed as it drops
        }
    }

    fn raw(&mut self, b: &[u8]) {
        self.reserve(b.len());
        self.0.extend_from_slice(b);
    }

    /// A JSON string, escaped as Go's `encoding/json` does (as Docker writes).
    fn string(&mut self, s: &str) {
        self.reserve(2 + s.len() * 6);
        go_json::push_string(&mut self.0, s);
    }

    fn indent(&mut self, level: usize) {
        self.raw(b"\n");
        for _ in 0..level {
            self.raw(b"  ");
        }
    }

    fn into_inner(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

/// base64 of `user:password`, in wiped memory.
fn auth_field(username: &str, secret: &str) -> Zeroizing<String> {
    let pair = Zeroizing::new(format!("{username}:{secret}"));
    let mut out = Zeroizing::new(String::with_capacity(pair.len().div_ceil(3) * 4));
    B64.encode_string(pair.as_bytes(), &mut out);
    out
}

/// One object member: `"key":value` for the fields given, in order; `pretty` puts
/// each on its own line at `level`.
fn object(out: &mut Wiped, fields: &[(&str, &str)], pretty: Option<usize>) {
    out.raw(b"{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.raw(b",");
        }
        if let Some(level) = pretty {
            out.indent(level + 1);
        }
        out.string(k);
        out.raw(if pretty.is_some() { b": " } else { b":" });
        out.string(v);
    }
    if let Some(level) = pretty {
        out.indent(level);
    }
    out.raw(b"}");
}

/// `{"auths":{key: entry, …}}`; `entry` gives each credential's fields, `None` to
/// leave it out. `pretty`: two-space indent as `export` has always printed.
fn auths(out: &mut Wiped, entries: &[(String, Vec<(&str, &str)>)], pretty: bool) {
    let level = |l: usize| pretty.then_some(l);
    out.raw(b"{");
    if pretty {
        out.indent(1);
    }
    out.string("auths");
    out.raw(if pretty { b": {" } else { b":{" });
    for (i, (key, fields)) in entries.iter().enumerate() {
        if i > 0 {
            out.raw(b",");
        }
        if pretty {
            out.indent(2);
        }
        out.string(key);
        out.raw(if pretty { b": " } else { b":" });
        object(out, fields, level(2));
    }
    if pretty && !entries.is_empty() {
        out.indent(1);
    }
    out.raw(b"}");
    if pretty {
        out.indent(0);
    }
    out.raw(b"}");
}

/// The `.dockerconfigjson` payload without its newline, and what was left out.
fn dockerconfigjson(creds: &[Cred<'_>]) -> (Zeroizing<Vec<u8>>, Vec<(String, &'static str)>) {
    let mut left_out = Vec::new();
    let mut encoded = Vec::new();
    for c in creds {
        if c.username == TOKEN_USERNAME {
            left_out.push((c.server.to_owned(), TOKEN_LEFT_OUT));
            continue;
        }
        encoded.push((c, auth_field(c.username, c.secret.expose_secret())));
    }
    let entries: Vec<(String, Vec<(&str, &str)>)> = encoded
        .iter()
        .map(|(c, a)| {
            (
                c.server.to_owned(),
                vec![
                    ("username", c.username),
                    ("password", c.secret.expose_secret()),
                    ("auth", a.as_str()),
                ],
            )
        })
        .collect();
    let mut out = Wiped::new();
    auths(&mut out, &entries, false);
    (out.into_inner(), left_out)
}

/// Renders `creds` (in the order given) as `format`. `meta` is needed by
/// [`Format::K8sSecret`] only (and checked by the caller).
pub fn render(format: Format, creds: &[Cred<'_>], meta: Option<&SecretMeta>) -> Rendered {
    let mut left_out = Vec::new();
    let mut out = Wiped::new();
    match format {
        Format::DockerConfig | Format::ContainersAuth | Format::DockerAuthConfig => {
            let mut fields_of = Vec::new();
            let mut seen: BTreeMap<String, &str> = BTreeMap::new();
            for c in creds {
                let key = if format == Format::ContainersAuth {
                    // containers/image keys are `registry[/namespace…]` without a
                    // scheme, Docker Hub as `docker.io`: the helper's normalised form.
                    let Some(n) = server_url::normalize(c.server) else {
                        left_out.push((c.server.to_owned(), NO_HOST_LEFT_OUT));
                        continue;
                    };
                    if seen.contains_key(&n) {
                        left_out.push((c.server.to_owned(), DUPLICATE_LEFT_OUT));
                        continue;
                    }
                    seen.insert(n.clone(), c.server);
                    n
                } else {
                    c.server.to_owned()
                };
                let token = c.username == TOKEN_USERNAME;
                if token && format == Format::DockerAuthConfig {
                    left_out.push((c.server.to_owned(), TOKEN_LEFT_OUT));
                    continue;
                }
                let value = if token {
                    Zeroizing::new(c.secret.expose_secret().to_owned())
                } else {
                    auth_field(c.username, c.secret.expose_secret())
                };
                fields_of.push((key, token, value));
            }
            let entries: Vec<(String, Vec<(&str, &str)>)> = fields_of
                .iter()
                .map(|(k, token, v)| {
                    let name = if *token { "identitytoken" } else { "auth" };
                    (k.clone(), vec![(name, v.as_str())])
                })
                .collect();
            auths(&mut out, &entries, format != Format::DockerAuthConfig);
            out.raw(b"\n");
        }
        Format::Dockerconfigjson => {
            let (payload, lo) = dockerconfigjson(creds);
            left_out = lo;
            out.raw(&payload);
            out.raw(b"\n");
        }
        Format::K8sSecret => {
            let (payload, lo) = dockerconfigjson(creds);
            left_out = lo;
            let mut data = Zeroizing::new(String::with_capacity(payload.len().div_ceil(3) * 4));
            B64.encode_string(&payload[..], &mut data);
            drop(payload);
            let meta = meta.cloned().unwrap_or(SecretMeta {
                name: String::new(),
                namespace: None,
            });
            out.raw(b"{");
            out.indent(1);
            out.raw(b"\"apiVersion\": \"v1\",");
            out.indent(1);
            out.raw(b"\"kind\": \"Secret\",");
            out.indent(1);
            out.raw(b"\"metadata\": ");
            let mut m = vec![("name", meta.name.as_str())];
            if let Some(ns) = &meta.namespace {
                m.push(("namespace", ns.as_str()));
            }
            object(&mut out, &m, Some(1));
            out.raw(b",");
            out.indent(1);
            out.raw(b"\"type\": \"kubernetes.io/dockerconfigjson\",");
            out.indent(1);
            out.raw(b"\"data\": ");
            object(&mut out, &[(".dockerconfigjson", data.as_str())], Some(1));
            out.indent(0);
            out.raw(b"}\n");
        }
    }
    Rendered {
        bytes: out.into_inner(),
        left_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn creds() -> Vec<Cred<'static>> {
        [
            ("ghcr.io", "ünï", "ghcr-secret <&>"),
            ("https://index.docker.io/v1/", "<token>", "hub-token"),
            ("reg.example:5000", "eve", "pa:ss\"w\\ord"),
        ]
        .into_iter()
        .map(|(server, username, secret)| Cred {
            server,
            username,
            secret: SecretString::from(secret.to_owned()),
        })
        .collect()
    }

    fn json_of(r: &Rendered) -> Value {
        serde_json::from_slice(&r.bytes).expect("valid JSON")
    }

    fn b64(s: &str) -> String {
        B64.encode(s)
    }

    #[test]
    fn docker_config_is_what_export_always_printed() {
        let r = render(Format::DockerConfig, &creds(), None);
        assert!(r.left_out.is_empty());
        // serde_json's pretty printer (the old export) gives the same value and layout
        // apart from Go's `\u003c`-style escapes, which Docker itself writes.
        let v = json_of(&r);
        assert_eq!(
            v,
            json!({"auths": {
                "ghcr.io": {"auth": b64("ünï:ghcr-secret <&>")},
                "https://index.docker.io/v1/": {"identitytoken": "hub-token"},
                "reg.example:5000": {"auth": b64("eve:pa:ss\"w\\ord")},
            }})
        );
        let old = serde_json::to_string_pretty(&v).unwrap() + "\n";
        assert_eq!(std::str::from_utf8(&r.bytes).unwrap(), old);
        let empty = render(Format::DockerConfig, &[], None);
        assert_eq!(&empty.bytes[..], b"{\n  \"auths\": {}\n}\n");
        assert_eq!(
            serde_json::to_string_pretty(&json!({"auths": {}})).unwrap() + "\n",
            "{\n  \"auths\": {}\n}\n"
        );
    }

    #[test]
    fn dockerconfigjson_is_kubectls_shape_and_drops_tokens() {
        let r = render(Format::Dockerconfigjson, &creds(), None);
        assert_eq!(
            r.left_out,
            [("https://index.docker.io/v1/".to_owned(), TOKEN_LEFT_OUT)]
        );
        assert_eq!(r.bytes.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(
            json_of(&r),
            json!({"auths": {
                "ghcr.io": {"username": "ünï", "password": "ghcr-secret <&>", "auth": b64("ünï:ghcr-secret <&>")},
                "reg.example:5000": {"username": "eve", "password": "pa:ss\"w\\ord", "auth": b64("eve:pa:ss\"w\\ord")},
            }})
        );
    }

    #[test]
    fn k8s_secret_manifest() {
        let meta = SecretMeta {
            name: "regcred".into(),
            namespace: Some("ci".into()),
        };
        let r = render(Format::K8sSecret, &creds(), Some(&meta));
        let v = json_of(&r);
        let payload = B64
            .decode(v["data"][".dockerconfigjson"].as_str().unwrap())
            .unwrap();
        let inner = render(Format::Dockerconfigjson, &creds(), None);
        assert_eq!(payload, inner.bytes[..inner.bytes.len() - 1]);
        let mut v = v;
        v["data"][".dockerconfigjson"] = json!("…");
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "regcred", "namespace": "ci"},
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": "…"},
            })
        );
        let no_ns = SecretMeta {
            name: "regcred".into(),
            namespace: None,
        };
        let v = json_of(&render(Format::K8sSecret, &creds(), Some(&no_ns)));
        assert_eq!(v["metadata"], json!({"name": "regcred"}));
    }

    /// The example of docker/cli#6008 ("Use `DOCKER_AUTH_CONFIG` env as credential
    /// store"), byte for byte on one line: `printf "hi:):dckr_pat_hello" | base64`.
    #[test]
    fn docker_auth_config_golden_from_docker_cli_6008() {
        let c = [Cred {
            server: "https://index.docker.io/v1/",
            username: "hi",
            secret: SecretString::from("):dckr_pat_hello".to_owned()),
        }];
        let r = render(Format::DockerAuthConfig, &c, None);
        assert_eq!(
            std::str::from_utf8(&r.bytes).unwrap(),
            include_str!("../../tests/golden/docker-auth-config.6008.txt")
        );
        let r = render(Format::DockerAuthConfig, &creds(), None);
        assert_eq!(r.left_out.len(), 1);
        let text = std::str::from_utf8(&r.bytes).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert_eq!(
            json_of(&r),
            json!({"auths": {
                "ghcr.io": {"auth": b64("ünï:ghcr-secret <&>")},
                "reg.example:5000": {"auth": b64("eve:pa:ss\"w\\ord")},
            }})
        );
    }

    #[test]
    fn containers_auth_keys_are_normalised_once() {
        let mut c = creds();
        c.push(Cred {
            server: "https://GHCR.io/",
            username: "x",
            secret: SecretString::from("other".to_owned()),
        });
        c.sort_by(|a, b| a.server.cmp(b.server));
        let r = render(Format::ContainersAuth, &c, None);
        assert_eq!(
            r.left_out,
            [("https://GHCR.io/".to_owned(), DUPLICATE_LEFT_OUT)]
        );
        assert_eq!(
            json_of(&r),
            json!({"auths": {
                "ghcr.io": {"auth": b64("ünï:ghcr-secret <&>")},
                "docker.io": {"identitytoken": "hub-token"},
                "reg.example:5000": {"auth": b64("eve:pa:ss\"w\\ord")},
            }})
        );
    }

    #[test]
    fn registries_are_picked_like_get() {
        let keys = ["ghcr.io", "https://index.docker.io/v1/", "reg.example:5000"];
        let all = select_registries(&[], keys).unwrap();
        assert_eq!(all, keys);
        let w = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            select_registries(&w(&["docker.io", "https://ghcr.io/", "ghcr.io"]), keys).unwrap(),
            ["ghcr.io", "https://index.docker.io/v1/"]
        );
        assert_eq!(
            select_registries(&w(&["ghcr.io", "quay.io"]), keys),
            Err("quay.io".to_owned())
        );
        // A path never collapses into its host, as with `get`.
        assert_eq!(
            select_registries(&w(&["ghcr.io/org"]), keys),
            Err("ghcr.io/org".to_owned())
        );
    }

    #[test]
    fn names() {
        for ok in ["regcred", "a", "reg-cred.v1", "0x"] {
            assert!(check_secret_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "RegCred", "-a", "a-", "a..b", "a_b", &"a".repeat(254)] {
            assert!(check_secret_name(bad).is_err(), "{bad}");
        }
        for ok in ["default", "ci-1"] {
            assert!(check_namespace(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a.b", "Ci", &"a".repeat(64)] {
            assert!(check_namespace(bad).is_err(), "{bad}");
        }
    }
}
