//! The `docker-credential-lockbox` binary: everything lives in the library.
//!
//! `no_main`: every helper call is a new process, and std's start-up before `main`
//! includes a stack-overflow handler whose set-up reads `/proc/self/maps`, about a
//! twentieth of a `get` (docs/PERFORMANCE.md). [`lockbox::cli::start_process`] does the
//! rest of what std does there (standard descriptors, SIGPIPE); what std does after
//! `main` is kept: a panic exits with 101, and `std::process::exit` flushes stdout.
// Not for the unit-test build of this file, whose `main` is the test harness.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
use std::ffi::{c_char, c_int};

/// Called by the C runtime (glibc passes the arguments to std through its
/// initializers too, so `std::env::args_os` works as usual).
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    lockbox::cli::start_process();
    // Before anything is written: `ulimit -f` must give an error line, not a silent death.
    lockbox::file::catch_file_size_signal();
    let code = std::panic::catch_unwind(lockbox::cli::main).map_or(101, |e| e.code());
    std::process::exit(i32::from(code))
}
