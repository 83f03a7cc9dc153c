//! docker-credential-lockbox: a Docker credential helper that keeps registry
//! credentials in an encrypted vault file.
//!
//! The crate is a library that holds all logic, so tests and fuzz targets can call it,
//! and a thin binary (`src/main.rs`).
//!
//! # Floors
//!
//! Each file sits on a floor and imports only from the floors below it: never up,
//! never between two families of one floor (`messages` may use `sanitize`; a command
//! file only `commands/mod.rs` among its siblings), never in a cycle. The trust core
//! (`vault/`: the format and its crypto) names nothing at the edge; backends import
//! the core, never the reverse. This table is the data of the layer test
//! (`src/layers.rs`), which fails on a module missing from it or an import it forbids.
//!
//! | floor | modules | what they own |
//! |---|---|---|
//! | 0 | `exit`, `sanitize`, `sys`, `messages` | leaves: exit codes, terminal-safe text, the only `unsafe`, every user-facing string (plain values in) |
//! | 1 | `error` | the failure types (`Error`, `OpenBaoError`, `CredentialFailure`), each mapped once to its message and exit code |
//! | 2 | `secret_io`, `output`, `assets`, `child` | bounded wiped reads of secrets, stdout for people (EPIPE → 141), completions and man pages, running another program bounded (deadline, output, kill) |
//! | 2.5 | `http` | the one HTTPS client of the network backends and the rule for the URLs a secret may be sent to (loopback-only plain HTTP, no proxies, no redirects, a deadline, bounded answers) |
//! | 3 | `docker` | other tools' formats, pure and fuzzed: server URLs, Go JSON, config.json, export formats |
//! | 4 | `vault` | the core: model, crypto, slots, entry metadata, format numbers, the parser; no file system, network, processes or prompts |
//! | 4.5 | `file` | the vault on disk: paths, the sidecar lock, atomic durable writes |
//! | 5 | `identity`, `openbao`, `sources`, `rotate` | backends that reach outside the process: identities and plugins, the transit client, the sealed sources that mint registry credentials, the registry APIs that rotate a stored secret |
//! | 6 | `config` | the settings, read from the environment once |
//! | 7 | `agent` | wire types, client, server, the credential vault, the hand-over |
//! | 8 | `keysource` | the key pipeline: sources, their order and failure rule, the re-wrap hook |
//! | 9 | `protocol`, `kubelet`, `commands` | front ends: the helper protocol, the kubelet plugin, the commands for people |
//! | 10 | `cli` | the clap surface and dispatch |
//!
//! The vault format is specified in `docs/FORMAT.md`; the helper protocol as this crate
//! implements it in `docs/PROTOCOL.md`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod assets;
pub mod child;
pub mod cli;
pub mod commands;
pub mod config;
pub mod docker;
pub mod error;
pub mod exit;
pub mod file;
pub mod http;
pub mod identity;
pub mod keysource;
pub mod kubelet;
pub mod messages;
pub mod openbao;
pub mod output;
pub mod protocol;
pub mod rotate;
pub mod sanitize;
pub mod secret_io;
pub mod sources;
mod sys;
pub mod vault;

#[cfg(test)]
mod layers;

pub use error::Error;
