//! What is generated from the clap definition for people and packages: shell completion
//! scripts (`completions SHELL`) and man pages (the hidden `generate-assets DIR` that
//! `scripts/package.sh` runs on the built binary).
//!
//! Both names are covered: `docker-credential-lockbox`, which Docker runs, and the short
//! `lockbox` people type (a symlink; the binary answers to either, as clap takes the
//! name it prints from argv\[0\]).
//!
//! Bash: clap_complete's bash generator spells a subcommand's state two ways when the
//! binary name has a hyphen — the dispatch loop turns `-` into `__`, the case arms turn
//! it into `__subcmd__` (clap-rs/clap#6421, #6529) — so no arm matches and nothing past
//! the first word completes. The script is therefore generated for the hyphen-free name
//! `lockbox` (its first word is matched as `$1`, whatever the command is called) and
//! registered for both names.
use std::io;
use std::path::Path;

use clap_complete::Shell;

use crate::error::Error;
use crate::messages::BIN;

/// The short name: `/usr/bin/lockbox` is a symlink to the binary.
pub const SHORT: &str = "lockbox";

/// The completion script for `shell`, for both names. `cmd` is the clap definition
/// (handed in by `cli`, so this module does not import it).
pub fn completion(cmd: &clap::Command, shell: Shell) -> Result<Vec<u8>, Error> {
    let broken = |what: &str| {
        Error::io(
            "generate",
            format!("{shell} completions"),
            io::Error::other(format!("clap_complete's output changed: {what}")),
        )
    };
    Ok(match shell {
        Shell::Bash => {
            let text = text(cmd, shell, SHORT);
            // `complete -F _lockbox … lockbox` (two variants, by bash version).
            let tail = format!(" {SHORT}\n");
            let mut out = String::with_capacity(text.len() + 64);
            let mut registered = 0;
            for line in text.split_inclusive('\n') {
                if line.trim_start().starts_with("complete -F ") && line.ends_with(&tail) {
                    out.push_str(&line[..line.len() - 1]);
                    out.push_str(&format!(" {BIN}\n"));
                    registered += 1;
                } else {
                    out.push_str(line);
                }
            }
            if registered == 0 {
                return Err(broken("no `complete -F` line"));
            }
            out.into_bytes()
        }
        Shell::Zsh => {
            // `#compdef NAME` and `compdef _NAME NAME` take several names.
            let text = text(cmd, shell, BIN);
            let first = format!("#compdef {BIN}\n");
            let last = format!("compdef _{BIN} {BIN}\n");
            if !text.starts_with(&first) || !text.contains(&last) {
                return Err(broken("no #compdef/compdef line"));
            }
            text.replacen(&first, &format!("#compdef {BIN} {SHORT}\n"), 1)
                .replacen(&last, &format!("compdef _{BIN} {BIN} {SHORT}\n"), 1)
                .into_bytes()
        }
        // Fish (and the others) complete per command name: one block for each.
        _ => {
            let mut out = text(cmd, shell, BIN);
            out.push_str(&text(cmd, shell, SHORT));
            out.into_bytes()
        }
    })
}

fn text(cmd: &clap::Command, shell: Shell, name: &str) -> String {
    let mut cmd = cmd.clone();
    let mut buf = Vec::new();
    // Into memory: clap_complete panics when its writer fails (a closed stdout).
    clap_complete::generate(shell, &mut cmd, name, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Writes what a package installs into `dir`, in the layout of the system directories:
///
/// - `man1/`: `docker-credential-lockbox.1` and one page per visible subcommand
///   (`docker-credential-lockbox-unlock.1`, …), from clap_mangen, and the subcommand
///   pages again under the short name (`lockbox-unlock.1`, …);
/// - `bash/docker-credential-lockbox`, `zsh/_docker-credential-lockbox`,
///   `fish/docker-credential-lockbox.fish`: the scripts of [`completion`].
///
/// The aliases for the short name (`lockbox.1`, `bash/lockbox`, `fish/lockbox.fish`) are
/// symlinks the package makes; zsh needs none (`#compdef` names both).
pub fn generate(cmd: &clap::Command, dir: &Path) -> Result<(), Error> {
    let io_err = |what: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::io(what, p, e)
    };
    let man = dir.join("man1");
    for sub in ["man1", "bash", "zsh", "fish"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(io_err("create", &d))?;
    }
    clap_mangen::generate_to(cmd.clone(), &man).map_err(io_err("write", &man))?;
    // The pages people look for by the name they type: `man lockbox-unlock`. Only the
    // subcommands' pages: `lockbox.1` is the package's link to the main page.
    let mut short = cmd
        .clone()
        .name(SHORT)
        .bin_name(SHORT)
        .display_name(SHORT)
        .disable_help_subcommand(true);
    short.build();
    for sub in short.get_subcommands().filter(|s| !s.is_hide_set()) {
        clap_mangen::generate_to(sub.clone(), &man).map_err(io_err("write", &man))?;
    }
    for (shell, file) in [
        (Shell::Bash, format!("bash/{BIN}")),
        (Shell::Zsh, format!("zsh/_{BIN}")),
        (Shell::Fish, format!("fish/{BIN}.fish")),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, completion(cmd, shell)?).map_err(io_err("write", &path))?;
    }
    Ok(())
}
