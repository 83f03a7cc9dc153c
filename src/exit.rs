//! Exit codes, in one place.
//!
//! The credential-helper protocol knows only 0 and 1 (every failure, including "not
//! found"), so protocol actions use those two. Commands for people add `USAGE` for
//! command-line mistakes (as clap does) and `LOCKED` so scripts can tell a locked vault
//! from other failures (`status --quiet`).
use std::process::ExitCode;

/// Success.
pub const OK: u8 = 0;
/// Any failure of a protocol action, and a general failure of a command.
pub const FAILURE: u8 = 1;
/// The command line could not be understood.
pub const USAGE: u8 = 2;
/// The vault exists but no key to open it is available.
pub const LOCKED: u8 = 3;

/// Converts one of the codes above into an [`ExitCode`].
pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}
