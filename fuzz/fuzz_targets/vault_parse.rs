//! `Vault::parse` on arbitrary bytes: it never panics, and whatever it accepts is written
//! back in a canonical form that parses again to the same vault and the same bytes
//! (parse → write → same bytes), so a `store` never silently changes what it kept.
//! `View::parse` (what `get` and `list` read) accepts exactly what `Vault::parse`
//! accepts, lists the same entries and finds the same one for each key.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lockbox::vault::{Vault, View};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.json");
    let view = View::parse(data, path);
    let Ok(vault) = Vault::parse(data, path) else {
        assert!(view.is_err(), "View::parse accepted what Vault::parse refuses");
        return;
    };
    let view = view.expect("View::parse refused what Vault::parse accepts");
    assert_eq!(view.entries().len(), vault.entries().len());
    for (e, (k, full)) in view.entries().iter().zip(vault.entries()) {
        assert_eq!((e.server(), e.username()), (k.as_str(), full.username.as_str()));
        assert_eq!(e.secret(), full.secret);
        assert_eq!(e.expires_at(), full.meta.expires_at);
        assert_eq!(e.has_pending(), full.meta.pending.is_some());
        let found = view.lookup(k).map(|e| e.server());
        assert_eq!(found, vault.lookup(k).map(|(k, _)| k));
    }
    assert_eq!(view.vault().slots(), vault.slots());
    let bytes = vault.to_bytes();
    let again = Vault::parse(&bytes, path).expect("a vault we wrote must parse again");
    assert_eq!(again.public().to_string(), vault.public().to_string());
    assert_eq!(again.slots(), vault.slots());
    assert_eq!(again.entries(), vault.entries());
    assert!(
        again.to_bytes() == bytes,
        "parse → write → parse → write changed the bytes"
    );
});
