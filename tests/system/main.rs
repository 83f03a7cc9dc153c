//! The suites that drive the machine's real clients, daemons and users (harness:
//! `tests/common`): `import`/`export`/`passwd`/`recipients` with the Docker CLI and
//! `docker-credential-pass`; the Docker CLI and docker-py against the CNCF registry;
//! a real `dockerd` end to end; the kubelet provider and `export` against `kubectl` and
//! `skopeo`; the agent's socket rule in every context of a `useradd` user (`su`, `sudo`,
//! `setpriv`, `env -i`). Needs root for the users and the daemon. `scripts/test.sh`
//! installs what they need; a missing tool skips with a note, or fails when `CI` is
//! set. Run them alone with `cargo nextest run --test system`.
#[path = "../common/mod.rs"]
mod common;

mod agent_contexts;
mod e2e;
mod expiry;
mod fleet;
mod forward_container;
mod manage;
mod real_clients;
mod sources_e2e;
