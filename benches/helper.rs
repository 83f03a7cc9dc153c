//! In-process benchmarks of what one helper call does (`docs/PERFORMANCE.md`).
//!
//! Every `docker build` runs `list` and then `get` per entry, each a new process, so
//! these measure the pieces of one call: parsing the vault, opening its key with an age
//! identity (the CI path), decrypting one entry, and the whole `get` / `list` actions
//! against a vault file. `scripts/bench.sh` measures whole processes.
//!
//! Run: `cargo bench --bench helper` (a few minutes on 2 cores). Nothing here asserts a
//! timing; the numbers are for people.
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lockbox::config::{KeySettings, Settings};
use lockbox::docker::go_json;
use lockbox::file::Location;
use lockbox::identity;
use lockbox::protocol::{self, Action};
use lockbox::vault::crypto::{Recipient, VaultKey};
use lockbox::vault::{Vault, View};
use zeroize::Zeroizing;

/// A vault like a real one: `n` entries with token-sized secrets, one age slot.
fn vault_with(n: usize, identity: &age::x25519::Identity) -> (VaultKey, Vault) {
    let key = VaultKey::generate();
    let slot = Vault::age_slot(&key, &Recipient::X25519(identity.to_public()), "ci".into())
        .expect("age slot");
    let mut vault = Vault::new(&key, vec![slot]);
    for i in 0..n {
        let secret = SecretString::from(format!("ghp_{i:036}"));
        vault
            .store(&server(i), &format!("user{i}"), &secret)
            .expect("store");
    }
    (key, vault)
}

fn server(i: usize) -> String {
    format!("registry{i}.example.com")
}

fn parse(c: &mut Criterion) {
    let identity = age::x25519::Identity::generate();
    // `vault_parse` decodes every entry (what `store` reads); `view_parse` checks the
    // same bounds and decodes none (what `get` and `list` read).
    for (name, n_list) in [
        ("vault_parse", [1, 200, 10_000]),
        ("view_parse", [1, 200, 10_000]),
    ] {
        let mut group = c.benchmark_group(name);
        for n in n_list {
            let bytes = vault_with(n, &identity).1.to_bytes();
            group.throughput(Throughput::Bytes(bytes.len() as u64));
            group.bench_with_input(BenchmarkId::from_parameter(n), &bytes, |b, bytes| {
                let path = Path::new("vault.json");
                if name == "vault_parse" {
                    b.iter(|| {
                        Vault::parse(black_box(bytes), path)
                            .map(|_| ())
                            .expect("parse")
                    })
                } else {
                    b.iter(|| {
                        View::parse(black_box(bytes), path)
                            .map(|_| ())
                            .expect("parse")
                    })
                }
            });
        }
        group.finish();
    }
}

fn crypto(c: &mut Criterion) {
    let identity = age::x25519::Identity::generate();
    let (key, vault) = vault_with(10, &identity);
    let (server, entry) = vault.lookup(&server(5)).expect("entry");
    c.bench_function("open_entry", |b| {
        b.iter(|| {
            key.open_entry(black_box(server), &entry.username, &entry.secret)
                .expect("open")
        })
    });

    let text = identity.to_string();
    c.bench_function("parse_identities", |b| {
        b.iter(|| {
            identity::parse_identities(black_box(text.expose_secret().as_bytes()), "bench")
                .expect("identity")
        })
    });

    let ids: Vec<Box<dyn age::Identity + Send + Sync>> = vec![Box::new(identity.clone())];
    c.bench_function("open_with_identities", |b| {
        b.iter(|| vault.open_with_identities(black_box(&ids)).expect("open"))
    });
}

/// A vault file with 10 entries in a temp directory, and the `LOCKBOX_IDENTITY` that
/// opens it (as settings, the way `cli::main` hands them to the protocol).
fn vault_file(dir: &Path) -> (PathBuf, Vec<u8>) {
    let identity = age::x25519::Identity::generate();
    let (_, vault) = vault_with(10, &identity);
    let path = dir.join("vault.json");
    std::fs::write(&path, vault.to_bytes()).expect("write vault");
    (
        path,
        identity.to_string().expose_secret().as_bytes().to_vec(),
    )
}

fn actions(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (vault, identity) = vault_file(dir.path());
    let settings = Settings {
        location: Location {
            vault: Some(vault),
            ..Location::default()
        },
        keys: KeySettings {
            identity: Some(Zeroizing::new(identity)),
            ..KeySettings::default()
        },
        ..Settings::default()
    };
    let request = format!("{}\n", server(5));
    // What `get` and `erase` do with stdin before anything else: a wiped buffer with
    // room for the whole 1 MiB bound.
    c.bench_function("read_input", |b| {
        b.iter(|| protocol::read_input(black_box(request.as_bytes())).expect("input"))
    });
    c.bench_function("run_get", |b| {
        b.iter(|| {
            protocol::run(Action::Get, black_box(request.as_bytes()), &settings).expect("get")
        })
    });
    c.bench_function("run_list", |b| {
        b.iter(|| protocol::run(Action::List, black_box(&b""[..]), &settings).expect("list"))
    });
}

fn output(c: &mut Criterion) {
    c.bench_function("gojson_credentials", |b| {
        b.iter(|| {
            go_json::credentials(
                black_box("https://index.docker.io/v1/"),
                black_box("<token>"),
                black_box("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl"),
            )
        })
    });
}

criterion_group! {
    name = benches;
    // 2 cores here: short measurement windows keep `cargo bench` to a few minutes.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = parse, crypto, actions, output
}
criterion_main!(benches);
