//! Other tools' formats, pure and fuzzed (floor 3 in `src/lib.rs`): Docker's server
//! URLs and lookup rules, Go-identical JSON, `~/.docker/config.json`, and the formats
//! `export` writes, and the containers tools' registries.conf drop-in. Nothing here
//! knows the vault, its keys or the agent.
pub mod config_json;
pub mod containers;
pub mod formats;
pub mod go_json;
pub mod server_url;
