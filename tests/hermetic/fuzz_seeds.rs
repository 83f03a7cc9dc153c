//! The fuzz seeds carry their own expectations in their names (as age's test vectors
//! do): under `fuzz/seeds/<target>/`, a file named `fail_*` or `regress_*` must be
//! refused by what its target parses, and every other seed must be accepted. A seed
//! that once crashed a target but is valid input gets a plain name
//! (`server_url/port_leaves_scheme`). A target directory this test does not know fails
//! it, so a new target's seeds are never left unchecked.
use std::fs;
use std::path::{Path, PathBuf};

use lockbox::identity::{NeverAsk, parse as parse_identities};
use lockbox::protocol::{StoreRequest, server_from_input};
use lockbox::vault::crypto::parse_entry_plaintext;
use lockbox::vault::{Vault, View};

/// Whether `target`'s parser accepts `data`, as its fuzz target reads it.
fn accepts(target: &str, seed_name: &str, data: &[u8]) -> bool {
    let path = Path::new("seed.json");
    match target {
        "vault_parse" => {
            let full = Vault::parse(data, path).is_ok();
            let view = View::parse(data, path).is_ok();
            assert_eq!(full, view, "Vault::parse and View::parse disagree");
            full
        }
        "store_request" => StoreRequest::parse(data).is_ok(),
        // The target's second half reads `glob*` seeds as pattern NUL name for the
        // glob matcher; every other seed is a request.
        "kubelet_request" if seed_name.starts_with("glob") => data.contains(&0),
        "kubelet_request" => lockbox::kubelet::Request::parse(data).is_ok(),
        "server_url" => server_from_input(data).is_ok(),
        "identity_parse" => parse_identities(data, "seed", &NeverAsk).is_ok(),
        "entry_plaintext" => {
            // The target's framing: [server len][user len] server user plaintext.
            let [server_len, user_len, rest @ ..] = data else {
                return false;
            };
            let (server, rest) = rest.split_at(usize::from(*server_len).min(rest.len()));
            let (user, plain) = rest.split_at(usize::from(*user_len).min(rest.len()));
            let (server, user) = (
                String::from_utf8_lossy(server),
                String::from_utf8_lossy(user),
            );
            parse_entry_plaintext(plain, &server, &user).is_some()
        }
        "openbao_response" => {
            // The target's framing: [status hi][status lo] body. Accepted: a success
            // status whose body some transit parser reads.
            use lockbox::openbao::{
                Origin, check_status, parse_decrypt, parse_encrypt, parse_key_info,
            };
            let [hi, lo, body @ ..] = data else {
                return false;
            };
            let origin = Origin {
                addr: "https://bao.example:8200",
                path: "transit/decrypt/hosts",
                token_source: "seed",
            };
            check_status(u16::from_be_bytes([*hi, *lo]), None, body, origin).is_ok()
                && (parse_encrypt(body, origin).is_ok()
                    || parse_decrypt(body, origin).is_ok()
                    || parse_key_info(body, origin).is_ok())
        }
        "source_answers" => {
            // The target's framing: [status hi][status lo] body. Accepted: a success
            // whose body a source's reader takes (a token, an ECR or STS answer).
            use lockbox::http::Answer;
            use lockbox::sources::answer::token;
            use lockbox::sources::aws::{ecr_token, session_of};
            let [hi, lo, body @ ..] = data else {
                return false;
            };
            let answer = Answer {
                status: u16::from_be_bytes([*hi, *lo]),
                body: zeroize::Zeroizing::new(body.to_vec()),
            };
            let now = std::time::SystemTime::UNIX_EPOCH;
            answer.ok()
                && (token(&answer, "access_token", now, &[]).is_ok()
                    || token(&answer, "refresh_token", now, &[]).is_ok()
                    || ecr_token(&answer).is_ok()
                    || session_of(&answer).is_ok())
        }
        other => panic!("fuzz/seeds/{other}: no expectation known for this target; add it here"),
    }
}

#[test]
fn fuzz_seeds_meet_the_expectations_their_names_state() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut checked = 0;
    let mut wrong = Vec::new();
    let mut targets: Vec<_> = fs::read_dir(&root)
        .expect("fuzz/seeds")
        .map(|e| e.unwrap().path())
        .collect();
    targets.sort();
    for dir in targets {
        let target = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let mut seeds: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        seeds.sort();
        for seed in seeds {
            let name = seed.file_name().unwrap().to_str().unwrap().to_owned();
            let must_fail = name.starts_with("fail_") || name.starts_with("regress_");
            let data = fs::read(&seed).unwrap();
            if accepts(&target, &name, &data) == must_fail {
                wrong.push(format!(
                    "{target}/{name}: {}",
                    if must_fail {
                        "accepted, must be refused"
                    } else {
                        "refused, must be accepted"
                    }
                ));
            }
            checked += 1;
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(checked >= 40, "only {checked} seeds found");
}
