//! Server URL handling. The input is text (invalid UTF-8 replaced); its first line is a
//! request, the other lines are the keys of a vault. Checks:
//!
//! - `server_from_input` (stdin of `get`/`erase`) never panics and returns the trimmed,
//!   non-empty text;
//! - `normalize` is idempotent on every line;
//! - `find` returns the exact key whenever it is present, and otherwise only a key with
//!   the same normalized form — the byte-least one — or nothing when none matches.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockbox::protocol::server_from_input;
use lockbox::docker::server_url::{find, normalize};

fuzz_target!(|data: &[u8]| {
    if let Ok(server) = server_from_input(data) {
        assert!(!server.is_empty());
        assert_eq!(server.trim(), server);
    }

    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let request = lines.next().unwrap_or_default();
    let keys: Vec<&str> = lines.collect();

    for line in std::iter::once(request).chain(keys.iter().copied()) {
        if let Some(n) = normalize(line) {
            assert!(!n.is_empty());
            assert_eq!(
                normalize(&n).as_deref(),
                Some(n.as_str()),
                "not idempotent: {line:?}"
            );
        }
    }

    // The exact key wins wherever it sits among the others.
    let mut with_exact = keys.clone();
    with_exact.insert(keys.len() / 2, request);
    assert_eq!(find(request, with_exact.iter().copied()), Some(request));

    let wanted = normalize(request);
    let matching = keys
        .iter()
        .copied()
        .filter(|k| wanted.is_some() && normalize(k) == wanted);
    let byte_least = matching.min_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    match find(request, keys.iter().copied()) {
        Some(found) if found == request => assert!(keys.contains(&request)),
        found => {
            assert!(!keys.contains(&request));
            assert_eq!(found, byte_least, "request {request:?}");
        }
    }
});
