//! Answers of an OpenBao/Vault transit server (`lockbox::openbao`). The input is
//! `[status hi][status lo] body`. Checks:
//!
//! - `check_status`, `parse_encrypt`, `parse_decrypt` and `parse_key_info` never panic;
//! - every error they return is one line without control characters, and short;
//! - an accepted ciphertext passes `validate_ciphertext` (so it can go into a slot);
//! - an accepted plaintext is at most `MAX_PLAINTEXT` bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockbox::openbao::{
    MAX_PLAINTEXT, OpenBaoError, Origin, check_status, parse_decrypt, parse_encrypt,
    parse_key_info, validate_ciphertext,
};

const ORIGIN: Origin<'static> = Origin {
    addr: "https://bao.example:8200",
    path: "transit/decrypt/hosts",
    token_source: "LOCKBOX_OPENBAO_TOKEN_FILE",
};

fn check_error(e: OpenBaoError) {
    let text = e.to_string();
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(text.chars().count() < 1200, "{} chars", text.chars().count());
}

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data {
        [hi, lo, body @ ..] => (u16::from_be_bytes([*hi, *lo]), body),
        _ => return,
    };
    let location = body.split(|b| *b == b'\n').next();
    if let Err(e) = check_status(status, location, body, ORIGIN) {
        check_error(e);
    }
    match parse_encrypt(body, ORIGIN) {
        Ok(ciphertext) => assert!(validate_ciphertext(&ciphertext)),
        Err(e) => check_error(e),
    }
    match parse_decrypt(body, ORIGIN) {
        Ok(plaintext) => assert!(plaintext.len() <= MAX_PLAINTEXT),
        Err(e) => check_error(e),
    }
    match parse_key_info(body, ORIGIN) {
        Ok(info) => assert!(!info.key_type.chars().any(char::is_control)),
        Err(e) => check_error(e),
    }
});
