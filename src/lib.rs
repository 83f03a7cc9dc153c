//! docker-credential-lockbox: a Docker credential helper that keeps registry
//! credentials in an encrypted vault file.
//!
//! The crate is a library that holds all logic, so tests and fuzz targets can call it,
//! and a thin binary (`src/main.rs`). Data flows one way:
//!
//! ```text
//! protocol / cli  (front ends: parse input, print output, map errors)
//!      │
//!   keys          (where the vault key comes from: identity, passphrase file, agent)
//!   agent_client ─ agent_proto ─ agent   (the unlock agent, its socket protocol)
//!      │
//!   vault         (the entries and slots, in memory; never prints or prompts)
//!      │
//!   crypto        (entry seal/open, Argon2id + XChaCha20-Poly1305, age slots)
//!   file          (paths, the sidecar lock, atomic durable writes)
//! ```
//!
//! The vault format is specified in `docs/FORMAT.md`; the helper protocol as this crate
//! implements it in `docs/PROTOCOL.md`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod agent_client;
pub mod agent_proto;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod dockerconfig;
pub mod error;
pub mod exit;
pub mod file;
pub mod gojson;
pub mod keys;
pub mod keysource;
pub mod manage;
pub mod messages;
pub mod protocol;
pub mod rotation;
pub mod serverurl;
mod sys;
pub mod vault;

pub use error::Error;
