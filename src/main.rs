//! The `docker-credential-lockbox` binary: everything lives in the library.
use std::process::ExitCode;

fn main() -> ExitCode {
    lockbox::cli::main()
}
