//! `kubelet::Request::parse` (the stdin of `kubelet-credential-provider`) on arbitrary
//! bytes: it never panics; what it accepts has a supported apiVersion and a non-empty
//! image without whitespace, and choosing entries and rendering the answer for that
//! image never panic and give one line of JSON; what it refuses is one line that never
//! quotes the request's `serviceAccountToken`. The same bytes also drive the port of kubelet's
//! glob matching (split at the first NUL into pattern and name).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockbox::kubelet::{self, Request, matching};

/// A marker the seeds put in `serviceAccountToken` (no message text contains it).
const TOKEN_MARK: &str = "sa-token-secret";

/// Whether an error for `data` must not contain [`TOKEN_MARK`]: the request's token
/// holds it, and none of the fields an error may quote (shortened) does. The fuzzer
/// found both false alarms of simpler rules: a token-like apiVersion quoted back, and
/// a token whose text is a word of the message itself.
fn must_not_quote_the_mark(data: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(data) else {
        return false;
    };
    let holds = |k: &str| {
        m.get(k)
            .and_then(|v| v.as_str())
            .is_some_and(|v| v.contains(TOKEN_MARK))
    };
    holds("serviceAccountToken") && !["apiVersion", "kind", "image"].into_iter().any(holds)
}

fuzz_target!(|data: &[u8]| {
    match Request::parse(data) {
        Ok(req) => {
            assert!(
                req.api_version == kubelet::API_V1 || req.api_version == kubelet::API_V1BETA1
            );
            assert!(!req.image.is_empty() && !req.image.contains(char::is_whitespace));
            let entries = [
                ("https://index.docker.io/v1/", "u"),
                ("ghcr.io", "u"),
                ("ghcr.io/team", "u"),
                ("registry.example.com:5000", "u"),
                (req.image.as_str(), "u"),
            ];
            let chosen = kubelet::select(&req.image, entries);
            let auth: Vec<_> = chosen
                .iter()
                .map(|(k, _)| (k.clone(), "u".to_owned(), secrecy::SecretString::from("p")))
                .collect();
            let out = kubelet::render_response(req.api_version, kubelet::DEFAULT_CACHE_DURATION, &auth);
            let v: serde_json::Value = serde_json::from_slice(&out).expect("the answer is JSON");
            assert_eq!(v["apiVersion"], req.api_version);
            assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
            let keys: Vec<&str> = chosen.iter().map(|(k, _)| k.as_str()).collect();
            let _ = matching::keyring_lookup(&keys, &req.image);
        }
        Err(e) => {
            let line = e.message();
            assert!(!line.is_empty());
            assert!(!line.contains(['\n', '\r']), "error is not one line: {line:?}");
            if must_not_quote_the_mark(data) {
                assert!(!line.contains(TOKEN_MARK), "error quotes the token: {line:?}");
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Some((pattern, name)) = text.split_once('\0')
    {
        let _ = matching::glob_match(pattern, name);
        let _ = matching::urls_match_str(pattern, name);
    }
});
