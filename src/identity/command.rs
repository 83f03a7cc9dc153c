//! The identity command: `LOCKBOX_IDENTITY_CMD` or `unlock --identity-cmd CMD` names a
//! command whose standard output is an age identity (or an unencrypted SSH private
//! key), such as `systemd-creds decrypt /etc/lockbox/identity.cred -`,
//! `clevis decrypt < /etc/lockbox/identity.jwe` or `bao read -field=identity kv/ci`.
//! This module runs it and hands back what it printed; parsing that is the caller's.
//!
//! # How the command line is parsed: `/bin/sh -c CMD`
//!
//! The text is given to `/bin/sh -c` unchanged, not split into words by lockbox. The
//! commands people use here need a shell: `clevis decrypt < file` is a redirection, and
//! `op read "op://vault/item/field"` or a path with spaces needs the quoting every
//! operator already knows, which a word-splitting rule of our own would only imitate.
//! It gives no one more power: the text comes only from the environment or the command
//! line of the person running lockbox, who can run any command anyway, and never from
//! the vault file (a vault must not be able to make lockbox run anything).
//!
//! # How it runs
//!
//! - stdin is `/dev/null`; the child starts in a new session (`setsid`), so it has no
//!   controlling terminal and nothing in it can prompt on `/dev/tty`; it leads its own
//!   process group, which is killed (SIGKILL) at the deadline, grandchildren included.
//! - SIGPIPE and SIGXFSZ are back to their default dispositions in the child, and
//!   descriptors above stderr are close-on-exec (see `sys::isolate_child`).
//! - `LOCKBOX_IDENTITY` (a secret) and `LOCKBOX_IDENTITY_CMD` (so a command that runs
//!   lockbox cannot recurse) are removed from its environment.
//! - stdout is read into a wiped buffer, refused past [`MAX_OUTPUT`] bytes.
//! - stderr is never inherited: Docker reads the helper's stderr through a pipe and
//!   waits for every holder to close it, so a daemon the command leaves behind holding
//!   it would hang Docker. It goes through a pipe of ours; the first [`MAX_STDERR`]
//!   bytes are kept for the caller to relay, the rest is read and dropped.
//! - Reading stops when the command exits (whatever it left running may keep the pipes
//!   open: we drain what is already there and close our ends) or at the deadline.
//! - The deadline is [`DEFAULT_TIMEOUT`], well under the 60 s BuildKit gives a
//!   credential helper, so a hung command fails with its own message first.
//!
//! # Cost
//!
//! `get` runs the command each time it needs the key and nothing cheaper opened the
//! vault: the command's own time is added to every `get` (`systemd-creds decrypt` of a
//! host-key credential is a few milliseconds; clevis with tang is a network round trip;
//! a KMS is whatever it costs). `docs/PERFORMANCE.md` has measured numbers. To pay it
//! once, `unlock --identity-cmd CMD` and let the agent hold the key.
use std::ffi::{OsStr, OsString};
use std::io;
use std::process::Command;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::child::{Child, Isolation, Options, StderrTo};
pub use crate::child::{Failure, MAX_STDERR, Stderr};
use crate::error::Error;

/// How long the command may run before its process group is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest output accepted, bytes (the bound on identity files too).
pub const MAX_OUTPUT: usize = 64 * 1024;
/// The shell that runs the command.
const SHELL: &str = "/bin/sh";

/// An identity command and where it was configured.
#[derive(Debug, Clone)]
pub struct IdentityCommand {
    /// The command text, run as `/bin/sh -c TEXT`.
    pub command: OsString,
    /// Where it came from, for messages: `LOCKBOX_IDENTITY_CMD` or `--identity-cmd`.
    pub origin: String,
    /// When its process group is killed.
    pub timeout: Duration,
}

/// What a command that succeeded printed.
pub struct Output {
    /// Its standard output, the identity text.
    pub stdout: Zeroizing<Vec<u8>>,
    /// Its standard error, bounded.
    pub stderr: Stderr,
}

/// Writes every line of `stderr` to `out`, each prefixed with `identity command: `.
pub fn relay(stderr: &Stderr, out: &mut dyn io::Write) {
    for line in stderr.lines() {
        let _ = writeln!(out, "identity command: {line}");
    }
}

/// What went wrong, in one line that never holds the command's stdout.
pub fn reason(f: &Failure) -> String {
    match f {
        Failure::Spawn(e) => format!("it could not be started ({SHELL}): {e}"),
        Failure::TooLarge { .. } => format!("{}, which is no identity", f.reason()),
        Failure::Exited { .. }
        | Failure::TimedOut { .. }
        | Failure::Io(_)
        | Failure::LineTooLong { .. }
        | Failure::Closed { .. }
        | Failure::Empty { .. } => f.reason(),
    }
}

impl IdentityCommand {
    /// A command from `origin` with the default deadline.
    pub fn new(command: impl Into<OsString>, origin: impl Into<String>) -> Self {
        IdentityCommand {
            command: command.into(),
            origin: origin.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The name of this source in messages: `the identity command (ORIGIN)`.
    pub fn source_name(&self) -> String {
        format!("the identity command ({})", self.origin)
    }

    /// Runs the command and returns its output, or the one-line error of the library
    /// ([`Error::BadIdentity`] naming this source), never the not-found text.
    pub fn run_for_identity(&self) -> Result<Output, (Error, Option<Stderr>)> {
        self.run().map_err(|f| {
            let err = Error::BadIdentity {
                source_name: self.source_name(),
                reason: reason(&f),
            };
            (err, f.stderr().cloned())
        })
    }

    /// Runs the command as the module documentation says.
    pub fn run(&self) -> Result<Output, Failure> {
        self.run_from(Command::new(SHELL))
    }

    /// Runs the command on `cmd`, a `Command` for [`SHELL`] (tests give it an
    /// environment of their own).
    fn run_from(&self, mut cmd: Command) -> Result<Output, Failure> {
        cmd.arg("-c")
            .arg(&self.command)
            .env_remove("LOCKBOX_IDENTITY")
            .env_remove("LOCKBOX_IDENTITY_CMD");
        let options = Options {
            isolation: Isolation::Session,
            stdin: false,
            stderr: StderrTo::Keep,
            timeout: self.timeout,
            max_stdout: MAX_OUTPUT,
        };
        let mut child = Child::spawn(cmd, &options)?;
        // On an error, dropping `child` kills its group and reaps it.
        let (stdout, stderr, status) = child.finish()?;
        if !status.success() {
            return Err(Failure::Exited { status, stderr });
        }
        if stdout.iter().all(u8::is_ascii_whitespace) {
            return Err(Failure::Empty { stderr });
        }
        Ok(Output { stdout, stderr })
    }
}

/// The command text of `LOCKBOX_IDENTITY_CMD` as configured; empty counts as unset.
pub fn from_env_value(value: Option<&OsStr>) -> Option<IdentityCommand> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| IdentityCommand::new(v, "LOCKBOX_IDENTITY_CMD"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    fn cmd(text: &str) -> IdentityCommand {
        IdentityCommand::new(text, "test")
    }

    #[test]
    fn stdout_is_returned_and_stderr_kept() {
        let out = cmd("printf 'AGE-SECRET-KEY-1X\\n'; echo warn >&2")
            .run()
            .unwrap();
        assert_eq!(&out.stdout[..], b"AGE-SECRET-KEY-1X\n");
        assert_eq!(out.stderr.lines(), vec!["warn".to_owned()]);
    }

    #[test]
    fn shell_syntax_works_redirect_and_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("id with space");
        std::fs::write(&file, "AGE-SECRET-KEY-1Y\n").unwrap();
        let out = cmd(&format!("cat < '{}'", file.display())).run().unwrap();
        assert_eq!(&out.stdout[..], b"AGE-SECRET-KEY-1Y\n");
    }

    #[test]
    fn failure_status_is_one_line_with_the_last_stderr_line() {
        let f = cmd("echo first >&2; echo 'tang: unreachable' >&2; exit 3")
            .run()
            .err()
            .unwrap();
        assert_eq!(f.reason(), "it exited with status 3: tang: unreachable");
        let (e, _) = cmd("exit 1").run_for_identity().err().unwrap();
        let msg = e.message();
        assert!(!msg.contains(crate::messages::NOT_FOUND), "{msg}");
        assert!(!msg.contains('\n'));
        assert!(msg.contains("the identity command (test)"), "{msg}");
    }

    /// Runs one ignored test of this binary through `wrapper` (a shell line in which
    /// `$LB_EXE` is this test binary and `$LB_TEST` the test's name, passed in the
    /// environment so that `script -c` sees them too) and checks it passed.
    fn run_inner(wrapper: &str, test: &str) {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(SHELL)
            .arg("-c")
            .arg(wrapper)
            .env("LB_EXE", &exe)
            .env("LB_TEST", test)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("1 passed"), "{text}");
    }

    const INNER: &str = "\"$LB_EXE\" --exact \"$LB_TEST\" --include-ignored --test-threads 1";

    /// Runs [`no_terminal_in_the_child`] on a pty that is its controlling terminal.
    #[test]
    fn stdin_is_dev_null_and_there_is_no_terminal() {
        run_inner(
            &format!("SHELL=/bin/sh exec script -qec '{INNER}' /dev/null"),
            "identity::command::tests::no_terminal_in_the_child",
        );
    }

    #[test]
    #[ignore = "run by stdin_is_dev_null_and_there_is_no_terminal, on a pty"]
    fn no_terminal_in_the_child() {
        assert!(
            std::fs::File::open("/dev/tty").is_ok(),
            "precondition: this process has a controlling terminal"
        );
        // `read` gets EOF at once from /dev/null; /dev/tty cannot be opened without a
        // controlling terminal (setsid).
        let out = cmd("if read x; then echo got; else echo eof; fi; \
                       if (: </dev/tty) 2>/dev/null; then echo tty; else echo notty; fi")
        .run()
        .unwrap();
        assert_eq!(&out.stdout[..], b"eof\nnotty\n");
    }

    #[test]
    fn own_session_and_process_group() {
        // Fields 5 and 6 of /proc/PID/stat are the process group and the session.
        let out = cmd("cut -d' ' -f5,6 /proc/$$/stat; echo $$").run().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "{text}");
        assert_eq!(fields[0], fields[2], "process group id is its pid: {text}");
        assert_eq!(fields[1], fields[2], "session id is its pid: {text}");
    }

    /// The signals ignored by the process whose /proc status is `text`.
    fn ignored(text: &str) -> u64 {
        let line = text.lines().find(|l| l.starts_with("SigIgn:")).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    }

    const XFSZ_TEST: &str = "identity::command::tests::child_gets_default_sigpipe_and_sigxfsz";

    /// Runs [`XFSZ_TEST`] in a copy of this test binary that ignores SIGXFSZ and
    /// SIGPIPE, as lockbox does (ignored dispositions survive exec).
    #[test]
    fn ignored_signals_in_lockbox_are_default_in_the_child() {
        run_inner(&format!("trap '' XFSZ PIPE; exec {INNER}"), XFSZ_TEST);
    }

    #[test]
    #[ignore = "run by ignored_signals_in_lockbox_are_default_in_the_child"]
    fn child_gets_default_sigpipe_and_sigxfsz() {
        let own = ignored(&std::fs::read_to_string("/proc/self/status").unwrap());
        let out = cmd("cat /proc/self/status").run().unwrap();
        let child = ignored(&String::from_utf8_lossy(&out.stdout));
        for sig in [libc::SIGPIPE, libc::SIGXFSZ] {
            let bit = 1u64 << (sig - 1);
            assert_ne!(
                own & bit,
                0,
                "precondition: this process ignores signal {sig}"
            );
            assert_eq!(child & bit, 0, "signal {sig} still ignored in the child");
        }
    }

    #[test]
    fn secrets_are_not_in_its_environment() {
        // The parent's environment is given on the Command (setting the test process's
        // own would race with other tests); the variables must not reach the child,
        // while others still do.
        let mut base = Command::new(SHELL);
        base.env("LOCKBOX_IDENTITY", "AGE-SECRET-KEY-1SECRET")
            .env("LOCKBOX_IDENTITY_CMD", "recurse")
            .env("OTHER", "kept");
        let out = cmd("echo \"${LOCKBOX_IDENTITY-unset} ${LOCKBOX_IDENTITY_CMD-unset} $OTHER\"")
            .run_from(base)
            .unwrap();
        assert_eq!(&out.stdout[..], b"unset unset kept\n");
    }

    /// Whether process `pid` is gone or a zombie (dead, waiting to be reaped).
    fn dead(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .unwrap()
                .trim_start()
                .starts_with('Z'),
        }
    }

    /// Waits, bounded, for process `pid` to die.
    fn dies(pid: &str) -> bool {
        (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(25));
            dead(pid)
        })
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let mut c = cmd(&format!(
            "sleep 3600 & echo $! > '{}'; wait",
            pidfile.display()
        ));
        c.timeout = Duration::from_millis(500);
        let f = c.run().err().unwrap();
        assert!(matches!(f, Failure::TimedOut { .. }), "{f:?}");
        assert!(
            f.reason().contains("did not finish within 0.5 s"),
            "{}",
            f.reason()
        );
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        assert!(
            dies(pid.trim()),
            "the grandchild in the group outlived the deadline"
        );
    }

    #[test]
    fn a_daemon_holding_stdout_and_stderr_does_not_hang_us() {
        // The grandchild leaves the group (setsid) so it is not killed, and holds both
        // pipes for an hour; the command itself exits at once. Waiting for the pipes
        // would end at the deadline in TimedOut, so success is the proof.
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("daemon");
        let c = cmd(&format!(
            "echo AGE-SECRET-KEY-1Z; setsid sh -c 'echo $$ > \"{}\"; exec sleep 3600' & exit 0",
            pidfile.display()
        ));
        let result = c.run();
        let pid = (0..200)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(25));
                std::fs::read_to_string(&pidfile)
                    .ok()
                    .filter(|p| p.ends_with('\n'))
            })
            .unwrap();
        let pid = pid.trim();
        let _ = Command::new("kill").arg(pid).status();
        let out = result.unwrap();
        assert_eq!(&out.stdout[..], b"AGE-SECRET-KEY-1Z\n");
        assert!(dies(pid));
    }

    #[test]
    fn a_megabyte_of_output_is_refused() {
        let f = cmd("head -c 1048576 /dev/zero | tr '\\0' a")
            .run()
            .err()
            .unwrap();
        assert!(matches!(f, Failure::TooLarge { .. }), "{f:?}");
        assert!(f.reason().contains("more than 65536 bytes"));
    }

    #[test]
    fn exactly_the_limit_is_accepted() {
        let out = cmd(&format!("head -c {MAX_OUTPUT} /dev/zero | tr '\\0' a"))
            .run()
            .unwrap();
        assert_eq!(out.stdout.len(), MAX_OUTPUT);
    }

    #[test]
    fn stderr_flood_is_bounded_and_does_not_block_the_child() {
        let out = cmd("head -c 1048576 /dev/zero | tr '\\0' e >&2; echo ok")
            .run()
            .unwrap();
        assert_eq!(&out.stdout[..], b"ok\n");
        let lines = out.stderr.lines();
        assert!(lines.last().unwrap().contains("the rest was dropped"));
        assert!(lines.iter().map(String::len).sum::<usize>() < MAX_STDERR + 100);
    }

    #[test]
    fn nothing_printed_and_signals_are_failures() {
        assert!(matches!(cmd("true").run(), Err(Failure::Empty { .. })));
        let f = cmd("kill -TERM $$").run().err().unwrap();
        assert_eq!(f.reason(), "it was killed by signal 15");
    }

    #[test]
    fn stderr_escapes_are_sanitized() {
        let f = cmd("printf '\\033[2Jbad\\n' >&2; exit 2")
            .run()
            .err()
            .unwrap();
        assert!(!f.reason().contains('\u{1b}'));
        assert!(f.reason().ends_with("\u{FFFD}[2Jbad"), "{}", f.reason());
    }

    #[test]
    fn empty_env_value_is_unset() {
        assert!(from_env_value(Some(OsStr::new(""))).is_none());
        assert!(from_env_value(None).is_none());
        let c = from_env_value(Some(OsStr::new("true"))).unwrap();
        assert_eq!(c.origin, "LOCKBOX_IDENTITY_CMD");
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
    }
}
