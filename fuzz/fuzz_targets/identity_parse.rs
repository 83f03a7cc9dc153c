//! `keys::parse_identities` (the text of `LOCKBOX_IDENTITY` or an identity file: age
//! identities or an SSH private key) on arbitrary bytes: it never panics, and when it
//! accepts the text it returns at least one identity.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockbox::keys::parse_identities;

fuzz_target!(|data: &[u8]| {
    if let Ok(ids) = parse_identities(data, "fuzz") {
        assert!(!ids.is_empty());
    }
});
