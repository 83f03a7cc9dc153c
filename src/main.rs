//! The `docker-credential-lockbox` binary: everything lives in the library.
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before anything is written: `ulimit -f` must give an error line, not a silent death.
    lockbox::file::catch_file_size_signal();
    lockbox::cli::main()
}
