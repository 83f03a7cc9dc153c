//! Exit codes, in one place.
//!
//! The credential-helper protocol knows only 0 and 1 (every failure, including "not
//! found"), so protocol actions use those two. Commands for people add
//! [`Exit::Usage`] for command-line mistakes (as clap does) and [`Exit::Locked`] so
//! scripts can tell a locked vault from other failures (`status --quiet`).
use std::process::ExitCode;

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok,
    /// Any failure of a protocol action, and a general failure of a command.
    Failure,
    /// The command line could not be understood.
    Usage,
    /// The vault exists but no key to open it is available.
    Locked,
    /// `check`: an entry expires within the window (none has expired).
    Expiring,
    /// `check`: an entry has expired.
    Expired,
    /// `exec`: its command's own status (128+N when it died of signal N).
    Command(u8),
    /// stdout's reader went away (EPIPE) while a command for people was writing: a
    /// quiet exit with the status of a writer killed by SIGPIPE (128 + 13); see
    /// `src/output.rs`.
    BrokenPipe,
}

impl Exit {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Locked => 3,
            Exit::Expiring => 4,
            Exit::Expired => 5,
            Exit::Command(code) => code,
            Exit::BrokenPipe => 141,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}
