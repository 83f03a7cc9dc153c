//! docker-credential-lockbox: a Docker credential helper that keeps registry
//! credentials in an encrypted vault file.
//!
//! The crate is a library that holds all logic, so tests and fuzz targets can call it,
//! and a thin binary (`src/main.rs`). Files import only from the floors below them,
//! never sideways up or in a cycle (check: `grep -n 'use crate::' src -r`):
//!
//! ```text
//! cli                 clap surface + dispatch; reads the environment once (config)
//!  ├─ protocol        store/get/erase/list/version, byte for byte
//!  ├─ kubelet         kubelet's image credential provider plugin protocol
//!  └─ commands/*      one file per command for people (init, unlock, lock, exec, status,
//!      │              import, export, passwd, recipients, completions, doctor)
//!   assets            completion scripts and man pages from the clap definition
//!   output            stdout for people: a closed pipe is a quiet exit 141
//!   keysource         where the vault key comes from: one order, one failure rule
//!      │
//!   keys              identity and passphrase files, identity parsing, EntryOpener
//!   agent_client      the agent's requests as functions (status, lock, unlock, …)
//!   agent             the agent process        ─┐
//!   agent_proto       its wire protocol        ─┘ shared by agent and client
//!   dockerconfig      Docker's config.json     gojson, serverurl: pure helpers
//!   exportfmt         the formats `export` writes (pure rendering)
//!   config            the settings value (environment, read once in cli)
//!      │
//!   file              paths, the sidecar lock, atomic durable writes
//!   vault             the entries and slots, in memory; never prints or prompts
//!   crypto            entry seal/open, Argon2id + XChaCha20-Poly1305, age slots
//!      │
//!   error, exit, messages   one error type, one exit enum, every user-facing string
//! ```
//!
//! The vault format is specified in `docs/FORMAT.md`; the helper protocol as this crate
//! implements it in `docs/PROTOCOL.md`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod agent_client;
pub mod agent_credential;
pub mod agent_proto;
pub mod assets;
pub mod cli;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod dockerconfig;
pub mod error;
pub mod exit;
pub mod exportfmt;
pub mod file;
pub mod gojson;
pub mod identities;
pub mod identity_cmd;
pub mod keys;
pub mod keysource;
pub mod kubelet;
pub mod messages;
pub mod openbao;
pub mod output;
pub mod protocol;
pub mod rotation;
pub mod serverurl;
mod sys;
pub mod vault;

pub use error::Error;
