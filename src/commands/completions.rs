//! `completions bash|zsh|fish`: a shell completion script, generated from the same
//! clap definition as the parser (handed in by `cli`, so this module does not import
//! it).
use crate::error::Error;
use crate::exit::Exit;
use crate::messages;

/// Writes the completion script for `shell` to stdout.
pub fn run(mut command: clap::Command, shell: clap_complete::Shell) -> Result<Exit, Error> {
    clap_complete::generate(shell, &mut command, messages::BIN, &mut std::io::stdout());
    Ok(Exit::Ok)
}
