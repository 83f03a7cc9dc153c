//! `completions bash|zsh|fish`: a shell completion script for both names, generated
//! from the same clap definition as the parser (`src/assets.rs` says how, and why bash's
//! is generated for the hyphen-free name). The definition is handed in by `cli`, so
//! this module does not import it.
use crate::error::Error;
use crate::exit::Exit;

/// Writes the completion script for `shell` to stdout.
pub fn run(command: &clap::Command, shell: clap_complete::Shell) -> Result<Exit, Error> {
    crate::output::write(&crate::assets::completion(command, shell)?)?;
    Ok(Exit::Ok)
}
