//! The identity parsers on arbitrary bytes (the text of `LOCKBOX_IDENTITY`, an identity
//! file or an identity command's output): age identities, plugin identities, SSH
//! private keys, `age -p` encrypted identity files. Neither panics; when one accepts
//! the text it returns at least one identity. `identity::parse` is given
//! `NeverAsk`, so an encrypted identity is refused before any KDF work, and it never
//! runs a plugin (plugins run only when slots are opened, which this does not do).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockbox::identity::{NeverAsk, parse};
use lockbox::identity::parse_identities;

fuzz_target!(|data: &[u8]| {
    if let Ok(ids) = parse_identities(data, "fuzz") {
        assert!(!ids.is_empty());
    }
    if let Ok(ids) = parse(data, "fuzz", &NeverAsk) {
        assert!(!ids.is_empty());
    }
});
