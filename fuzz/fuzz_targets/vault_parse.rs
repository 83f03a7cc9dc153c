//! `Vault::parse` on arbitrary bytes: it never panics, and whatever it accepts is written
//! back in a canonical form that parses again to the same vault and the same bytes
//! (parse → write → same bytes), so a `store` never silently changes what it kept.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lockbox::vault::Vault;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.json");
    let Ok(vault) = Vault::parse(data, path) else {
        return;
    };
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
