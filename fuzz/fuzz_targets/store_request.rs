//! `StoreRequest::parse` (the stdin of `store`) on arbitrary bytes: it never panics;
//! what it accepts has a non-empty server URL and username; what it refuses is reported
//! as exactly one line (the protocol's error goes on stdout, one line).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockbox::protocol::StoreRequest;

fuzz_target!(|data: &[u8]| {
    match StoreRequest::parse(data) {
        Ok(req) => {
            assert!(!req.server_url.is_empty(), "accepted an empty ServerURL");
            assert!(!req.username.is_empty(), "accepted an empty Username");
        }
        Err(e) => {
            let line = e.line();
            assert!(!line.is_empty());
            assert!(
                !line.contains(['\n', '\r']),
                "error is not one line: {line:?}"
            );
        }
    }
});
