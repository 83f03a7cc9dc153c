//! The key sources with their real parts (harness: `tests/common`): encrypted SSH keys
//! and `age -p` files on a pty, age plugins through the test plugin `tests/plugin`,
//! machine keys (`systemd-creds` host key and TPM2 on `swtpm`, clevis to `tang`), the
//! OpenBao transit slot against a real `bao server -dev`, the sealed sources' network
//! kinds minting from moto and loopback token servers, and the key flows as build
//! users made with `useradd` (root). `scripts/test.sh` installs what they need; a
//! missing tool skips with a note, or fails when `CI` is set. Run them alone with
//! `cargo nextest run --test keys`.
#[path = "../common/mod.rs"]
mod common;

mod identities;
mod machine_keys;
mod nonroot_keys;
mod openbao;
mod plugins;
mod sources_get_http;
mod sources_mint;
