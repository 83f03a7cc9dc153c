//! The hermetic suites: the built binary alone, in private temporary worlds (harness:
//! `tests/common`). No daemon, no network, no system set-up; the only outside tools are
//! everyday ones (`age-keygen`, `ssh-keygen`, `script`, `bash`, `man`), and the few tests
//! that check a second uid do so through `setpriv` when run as root. Run them alone with
//! `cargo nextest run --test hermetic` (one module: `… --test hermetic cli::`).
//!
//! One test binary per group of suites, not one per file: each binary links the whole
//! crate, and linking dominated a clean build of the tests.
#[path = "../common/mod.rs"]
mod common;

mod agent;
mod api_fakes;
mod cli;
mod doctor;
mod expiry;
mod forward;
mod fuzz_seeds;
mod hostile;
mod ship;
mod snapshots;
mod sources_agent;
mod sources_cli;
mod sources_get;
mod vault_parse;
