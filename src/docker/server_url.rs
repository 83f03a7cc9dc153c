//! Server URL matching: exact first, then one documented normalized form.
//!
//! Keys are opaque strings: `get` first looks for the exact key. On a miss it compares
//! normalized forms (README "Lookup"), so the spellings different clients use for the
//! same registry find each other:
//!
//! - the scheme (`http://`, `https://`) is ignored,
//! - the host is case-folded and a default port (`:443`, `:80`) dropped,
//! - trailing slashes are ignored,
//! - Docker Hub's spellings `https://index.docker.io/v1/`, `index.docker.io`,
//!   `docker.io` and `registry-1.docker.io` are one registry.
//!
//! Any other path is kept, so `https://index.docker.io/v1/access-token` or
//! `host/org/repo` never collapses into another key.

/// Docker Hub's hosts, folded together.
const HUB_HOSTS: [&str; 3] = ["index.docker.io", "docker.io", "registry-1.docker.io"];

/// The normalized form of a server key, or `None` when it has no host.
pub fn normalize(key: &str) -> Option<String> {
    let mut out = String::new();
    normalize_into(key, &mut out).then_some(out)
}

/// [`normalize`] into a buffer the caller reuses, so comparing many keys allocates
/// nothing (a host that is not ASCII is the exception). Returns whether `key` has a
/// normalized form; `out` holds it then.
pub fn normalize_into(key: &str, out: &mut String) -> bool {
    out.clear();
    // Repeated so that normalize(normalize(k)) == normalize(k) even for odd keys.
    let mut rest = key;
    while let Some(r) = strip_prefix_ignore_case(rest, "https://")
        .or_else(|| strip_prefix_ignore_case(rest, "http://"))
    {
        rest = r;
    }
    let (hostport, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if hostport.is_ascii() {
        out.extend(hostport.chars().map(|c| c.to_ascii_lowercase()));
    } else {
        // Unicode lowercasing of the whole host, as `str::to_lowercase` does it (its
        // final-sigma rule looks at the neighbours of each character).
        out.push_str(&hostport.to_lowercase());
    }
    while let Some(port) = [":443", ":80"].into_iter().find(|p| out.ends_with(p)) {
        out.truncate(out.len() - port.len());
    }
    if out.is_empty() {
        return false;
    }
    let path = path.trim_end_matches('/');
    if HUB_HOSTS.contains(&out.as_str()) {
        out.clear();
        out.push_str("docker.io");
        if !matches!(path, "" | "/v1") {
            out.push_str(path);
        }
        return true;
    }
    out.push_str(path);
    // Dropping a port can leave a host that is a scheme's name, spelling a new scheme
    // with the path (`https::443//h` → `https://h`): normalize that as well, so the
    // result is always a fixed point.
    if strip_prefix_ignore_case(out, "https://").is_some()
        || strip_prefix_ignore_case(out, "http://").is_some()
    {
        let again = std::mem::take(out);
        return normalize_into(&again, out);
    }
    true
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Finds the key that `request` refers to among `keys`: the exact key if present, else
/// the byte-least key with the same normalized form (the order of `keys` does not
/// matter). Keys are normalized only when no key is exact, into one reused buffer.
pub fn find<'a, I>(request: &str, keys: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str> + Clone,
{
    if let Some(exact) = keys.clone().into_iter().find(|k| *k == request) {
        return Some(exact);
    }
    let mut wanted = String::new();
    if !normalize_into(request, &mut wanted) {
        return None;
    }
    let mut buf = String::new();
    keys.into_iter()
        .filter(|k| normalize_into(k, &mut buf) && buf == wanted)
        .min_by(|a, b| a.as_bytes().cmp(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hub_spellings_fold() {
        for k in [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
            "https://registry-1.docker.io",
            "HTTPS://Index.Docker.IO/v1",
            "docker.io:443",
        ] {
            assert_eq!(normalize(k).as_deref(), Some("docker.io"), "{k}");
        }
    }

    #[test]
    fn paths_never_collapse() {
        assert_eq!(
            normalize("https://index.docker.io/v1/access-token").as_deref(),
            Some("docker.io/v1/access-token")
        );
        assert_ne!(normalize("ghcr.io/org/repo"), normalize("ghcr.io"));
        assert_ne!(normalize("host:5000"), normalize("host"));
    }

    #[test]
    fn scheme_port_slash_case() {
        assert_eq!(
            normalize("https://Registry.Example.com/").as_deref(),
            Some("registry.example.com")
        );
        assert_eq!(
            normalize("http://registry.example.com:80").as_deref(),
            Some("registry.example.com")
        );
        assert_eq!(
            normalize("registry.example.com:5000").as_deref(),
            Some("registry.example.com:5000")
        );
        assert_eq!(normalize("https://").as_deref(), None);
        assert_eq!(normalize("/path").as_deref(), None);
    }

    #[test]
    fn find_prefers_exact_then_byte_order() {
        let keys = ["https://host", "http://host", "host/org"];
        assert_eq!(find("https://host", keys), Some("https://host"));
        assert_eq!(find("host", keys), Some("http://host"));
        assert_eq!(find("host/org", keys), Some("host/org"));
        assert_eq!(find("host/other", keys), None);
        assert_eq!(
            find(
                "docker.io",
                [
                    "https://index.docker.io/v1/",
                    "https://index.docker.io/v1/access-token"
                ]
            ),
            Some("https://index.docker.io/v1/")
        );
    }

    /// Regression: `https::443//h` normalized to `https://h`, which normalizes to `h`;
    /// found by the `server_url` fuzz target.
    #[test]
    fn normalize_is_idempotent_when_dropping_a_port_leaves_a_scheme() {
        for (key, want) in [
            (
                "https::443//ir//docker.io/v1/https://iregistryker.io",
                Some("ir//docker.io/v1/https://iregistryker.io"),
            ),
            ("HTTP::80//Host/x", Some("host/x")),
            ("https::443///x", None),
            ("https::443/x", Some("https:/x")),
        ] {
            let n = normalize(key);
            assert_eq!(n.as_deref(), want, "{key}");
            if let Some(n) = n {
                assert_eq!(normalize(&n), Some(n.clone()), "{key}");
            }
        }
    }

    proptest! {
        #[test]
        fn normalize_is_idempotent(s in "\\PC{0,40}") {
            if let Some(n) = normalize(&s) {
                prop_assert_eq!(normalize(&n), Some(n.clone()));
            }
        }

        #[test]
        fn exact_always_wins(keys in proptest::collection::vec("[a-zA-Z:/.]{1,12}", 1..6), i in 0usize..6) {
            let k = keys[i % keys.len()].clone();
            prop_assert_eq!(find(&k, keys.iter().map(String::as_str)), Some(k.as_str()));
        }
    }
}
