//! Writing to stdout for the commands for people, and what a closed stdout means.
//!
//! `println!` panics when stdout is a pipe whose reader has gone (`lockbox completions
//! bash | head -c1`; Rust ignores SIGPIPE, so the write fails with EPIPE). Every command
//! writes through [`outln!`](crate::outln) / [`write()`] instead, which turn the failure
//! into an [`Error::Io`] on `stdout`; [`closed`] recognises it and the front end exits
//! quietly with [`crate::exit::Exit::BrokenPipe`] (141), the status a shell shows for a
//! writer that the same pipe killed with SIGPIPE, as `cat` or the Go credential helpers
//! would be: under `set -o pipefail` a cut-short `export` is noticed, and a script that
//! truncates on purpose already treats 141 that way. Protocol actions keep to the
//! protocol's 0/1 (`src/protocol.rs` exits 1 when its answer cannot be written).
use std::io::{self, Write};
use std::path::Path;

use crate::error::Error;

/// `println!` for a command whose function returns `Result<_, Error>`: a failed write
/// (above all a closed pipe) returns the error with `?`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write(format!("{}\n", format_args!($($arg)*)).as_bytes())?
    };
}

/// `print!` likewise, without the newline.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format!($($arg)*).as_bytes())?
    };
}

/// Writes `bytes` to stdout and flushes.
pub fn write(bytes: &[u8]) -> Result<(), Error> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("write", "stdout", e))
}

/// Whether `e` is stdout's reader having gone away (EPIPE).
pub fn closed(e: &Error) -> bool {
    matches!(e, Error::Io { path, source, .. }
        if path == Path::new("stdout") && source.kind() == io::ErrorKind::BrokenPipe)
}

/// The same test on a bare I/O error (clap's own `--help` output).
pub fn closed_io(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}
