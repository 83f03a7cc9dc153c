//! `crypto::parse_entry_plaintext`, the binding check on a decrypted entry, on arbitrary
//! bytes. Input framing: byte 0 is the server's length, byte 1 the username's, then the
//! server and username bytes (invalid UTF-8 replaced), then the plaintext to the end.
//!
//! Checks: it never panics; when it accepts, the plaintext is exactly what
//! `entry_plaintext` makes for that server, username and secret (the encoding is
//! canonical: no other bytes are bound to the same entry); and the server and username
//! always round-trip through `entry_plaintext` → `parse_entry_plaintext`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockbox::vault::crypto::{entry_plaintext, parse_entry_plaintext};

fuzz_target!(|data: &[u8]| {
    let [server_len, user_len, rest @ ..] = data else {
        return;
    };
    let (server, rest) = rest.split_at(usize::from(*server_len).min(rest.len()));
    let (user, plain) = rest.split_at(usize::from(*user_len).min(rest.len()));
    let server = String::from_utf8_lossy(server);
    let user = String::from_utf8_lossy(user);

    if let Some(secret) = parse_entry_plaintext(plain, &server, &user) {
        assert_eq!(&entry_plaintext(&server, &user, secret)[..], plain);
    }

    // The other direction, with the plaintext's bytes (made text) as the secret.
    let secret = String::from_utf8_lossy(plain);
    let sealed = entry_plaintext(&server, &user, &secret);
    assert_eq!(
        parse_entry_plaintext(&sealed, &server, &user),
        Some(&*secret)
    );
    if server != user {
        assert_eq!(parse_entry_plaintext(&sealed, &user, &server), None);
    }
});
