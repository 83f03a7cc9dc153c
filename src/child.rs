//! Running another program with everything it can do to us bounded: the one place
//! lockbox starts a program whose output it reads (the identity command, the other
//! credential helper of `import --from-helper`, age plugins).
//!
//! - **Time**: one deadline for the whole run, checked on every read and write (each
//!   waits in `poll`, never in a blocking call). The clock can be paused while a person
//!   is being asked something on the terminal ([`Child::pause`]), so a prompt does not
//!   eat the program's time.
//! - **Memory**: stdout is counted against a total ([`Options::max_stdout`]); a line is
//!   refused past the caller's bound ([`Child::read_line`]) before it is all read; stderr,
//!   when piped, keeps its first [`MAX_STDERR`] bytes and drops the rest.
//! - **Leftovers**: with [`Isolation::Session`] the program starts in a new session
//!   (`setsid`: no controlling terminal, its own process group) and dies with lockbox
//!   (`PR_SET_PDEATHSIG`); at the deadline, on an error, or when the [`Child`] is
//!   dropped, its whole process group is killed (SIGKILL) and the program reaped. With
//!   [`Isolation::Terminal`] (a program that may need the terminal, such as
//!   `docker-credential-pass` and its pinentry) it stays in lockbox's process group and
//!   only the program itself is killed.
//! - SIGPIPE and SIGXFSZ are back to their defaults in the child and descriptors above
//!   stderr are close-on-exec (`sys::isolate_child`).
//!
//! Stdout and stderr bytes go through wiped buffers: an identity command's stdout is
//! key material, a plugin's may hold a file key.
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use zeroize::Zeroizing;

/// lockbox's own key settings (`docs/KEYS.md`), never passed on to a program lockbox
/// runs for the person: an `exec` source's command, `lockbox exec`'s command. Each is
/// a key source that comes before the agent, so a `get` in such a command (or in a
/// child it leaves behind) would open the vault itself. Every `LOCKBOX_IDENTITY*`
/// variable goes too ([`hide_key_settings`]).
pub const KEY_VARS: [&str; 3] = [
    "LOCKBOX_PASSPHRASE_FILE",
    "LOCKBOX_OPENBAO_TOKEN",
    "LOCKBOX_OPENBAO_TOKEN_FILE",
];

/// The name of lockbox's identity among systemd's credentials (`LoadCredential=`).
pub const IDENTITY_CREDENTIAL: &str = "lockbox-identity";

/// Removes lockbox's key settings from `cmd`'s environment: [`KEY_VARS`], every
/// `LOCKBOX_IDENTITY*`, and `CREDENTIALS_DIRECTORY` when it holds
/// [`IDENTITY_CREDENTIAL`] (other credentials in it go with it).
pub fn hide_key_settings(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let hidden = name
            .to_str()
            .is_some_and(|n| n.starts_with("LOCKBOX_IDENTITY") || KEY_VARS.contains(&n));
        if hidden {
            cmd.env_remove(&name);
        }
    }
    if std::env::var_os("CREDENTIALS_DIRECTORY")
        .is_some_and(|d| std::path::Path::new(&d).join(IDENTITY_CREDENTIAL).exists())
    {
        cmd.env_remove("CREDENTIALS_DIRECTORY");
    }
}

/// How much of a program's stderr is kept to relay, bytes.
pub const MAX_STDERR: usize = 4096;

/// How the program is started, and what a kill reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A new session: no controlling terminal, its own process group (killed as a
    /// whole), dies with lockbox.
    Session,
    /// Keeps lockbox's terminal and process group (it may prompt there); only the
    /// program itself is killed.
    Terminal,
}

/// Where the program's stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StderrTo {
    /// A pipe of ours; the first [`MAX_STDERR`] bytes are kept ([`Stderr`]).
    Keep,
    /// Nowhere (`/dev/null`), as age runs its plugins.
    Null,
    /// lockbox's own stderr (a command for people).
    Inherit,
}

/// The bounds of one run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How the program is started.
    pub isolation: Isolation,
    /// Whether its stdin is a pipe of ours ([`Child::write_all`]) or `/dev/null`.
    pub stdin: bool,
    /// Where its stderr goes.
    pub stderr: StderrTo,
    /// How long it may run (the clock stops while [`Child::pause`]d).
    pub timeout: Duration,
    /// The most stdout it may write in all, bytes.
    pub max_stdout: usize,
}

/// The first [`MAX_STDERR`] bytes of a program's stderr.
#[derive(Debug, Clone, Default)]
pub struct Stderr {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Stderr {
    fn push(&mut self, data: &[u8]) {
        let room = MAX_STDERR - self.bytes.len();
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
        self.truncated |= data.len() > room;
    }

    /// Its non-empty lines, with control characters replaced, ready to print.
    pub fn lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.bytes);
        let mut lines: Vec<String> = text
            .lines()
            .map(|l| crate::messages::sanitize(l.trim_end()))
            .filter(|l| !l.is_empty())
            .collect();
        if self.truncated {
            lines.push(crate::messages::child_stderr_dropped(MAX_STDERR));
        }
        lines
    }

    /// The last non-empty line, shortened: the part of a failure people read first.
    pub fn last_line(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.bytes);
        let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
        let mut line = crate::messages::sanitize(line);
        if line.chars().count() > 200 {
            line = line.chars().take(200).collect::<String>() + "…";
        }
        Some(line)
    }
}

/// Why a run ended without what the caller wanted. [`Failure::reason`] is its line.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure {
    /// The program could not be started.
    Spawn(io::Error),
    /// Reading, writing or waiting failed.
    Io(io::Error),
    /// It ran past the deadline and was killed.
    TimedOut {
        /// The deadline.
        after: Duration,
        /// What it printed on stderr.
        stderr: Stderr,
    },
    /// It exited with a failure status or was killed by a signal.
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on stderr.
        stderr: Stderr,
    },
    /// It wrote more than the bound on stdout (it was killed).
    TooLarge {
        /// The bound, bytes.
        limit: usize,
        /// What it printed on stderr.
        stderr: Stderr,
    },
    /// It wrote a line longer than the caller's bound (it was killed).
    LineTooLong {
        /// The bound, bytes.
        limit: usize,
    },
    /// It succeeded but printed nothing.
    Empty {
        /// What it printed on stderr.
        stderr: Stderr,
    },
    /// It closed its stdout (or exited) while an answer was awaited.
    Closed {
        /// What it printed on stderr.
        stderr: Stderr,
    },
}

impl Failure {
    /// What went wrong, in one line that never holds the program's stdout.
    pub fn reason(&self) -> String {
        use crate::messages as m;
        use std::os::unix::process::ExitStatusExt as _;
        let with = |base: String, stderr: &Stderr| match stderr.last_line() {
            Some(line) => format!("{base}: {line}"),
            None => base,
        };
        match self {
            Failure::Spawn(e) => m::child_spawn_failed(&e.to_string()),
            Failure::Io(e) => m::child_io_failed(&e.to_string()),
            Failure::TimedOut { after, stderr } => {
                with(m::child_timed_out(after.as_secs_f64()), stderr)
            }
            Failure::Exited { status, stderr } => {
                let base = match (status.code(), status.signal()) {
                    (Some(code), _) => m::child_exit_code(code),
                    (None, Some(sig)) => m::child_exit_signal(sig),
                    (None, None) => m::child_exit_other(&status.to_string()),
                };
                with(base, stderr)
            }
            Failure::TooLarge { limit, stderr } => with(m::child_too_large(*limit), stderr),
            Failure::LineTooLong { limit } => m::child_line_too_long(*limit),
            Failure::Closed { stderr } => with(m::CHILD_CLOSED.to_owned(), stderr),
            Failure::Empty { stderr } => with(m::CHILD_EMPTY.to_owned(), stderr),
        }
    }

    /// What it printed on stderr, if it got as far as running.
    pub fn stderr(&self) -> Option<&Stderr> {
        match self {
            Failure::Spawn(_) | Failure::Io(_) | Failure::LineTooLong { .. } => None,
            Failure::TimedOut { stderr, .. }
            | Failure::Exited { stderr, .. }
            | Failure::TooLarge { stderr, .. }
            | Failure::Closed { stderr }
            | Failure::Empty { stderr } => Some(stderr),
        }
    }
}

/// A deadline whose clock can be paused.
#[derive(Debug, Clone, Copy)]
struct Clock {
    limit: Duration,
    /// Time used before the current stretch.
    used: Duration,
    /// When the current stretch began; `None` while paused.
    since: Option<Instant>,
}

impl Clock {
    fn new(limit: Duration) -> Self {
        Clock {
            limit,
            used: Duration::ZERO,
            since: Some(Instant::now()),
        }
    }

    fn remaining(&self) -> Duration {
        let running = self.since.map_or(Duration::ZERO, |s| s.elapsed());
        self.limit.saturating_sub(self.used + running)
    }

    fn pause(&mut self) {
        if let Some(s) = self.since.take() {
            self.used += s.elapsed();
        }
    }

    fn resume(&mut self) {
        if self.since.is_none() {
            self.since = Some(Instant::now());
        }
    }
}

/// One of the child's pipes, non-blocking, until EOF (or until we close it).
struct Pipe {
    fd: Option<OwnedFd>,
}

impl Pipe {
    fn new(fd: Option<impl Into<OwnedFd>>) -> io::Result<Self> {
        let fd = fd.map(Into::into);
        if let Some(fd) = &fd {
            let flags = rustix::fs::fcntl_getfl(fd)?;
            rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
        }
        Ok(Pipe { fd })
    }

    fn borrow(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(AsFd::as_fd)
    }

    /// Reads what is there now into `sink`, closing the pipe at EOF; at most
    /// [`DRAIN_CHUNKS`] reads, so a program that never stops writing cannot keep the
    /// caller from its deadline. `sink` may refuse more (false): `Ok(false)`.
    fn drain(&mut self, sink: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<bool> {
        let mut chunk = Zeroizing::new([0u8; 4096]);
        for _ in 0..DRAIN_CHUNKS {
            let Some(fd) = &self.fd else { break };
            match rustix::io::read(fd, &mut chunk[..]) {
                Ok(0) => self.fd = None,
                Ok(n) => {
                    if !sink(&chunk[..n]) {
                        return Ok(false);
                    }
                }
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }
}

/// Reads of one pipe per [`Pipe::drain`] call (4 KiB each).
const DRAIN_CHUNKS: usize = 16;

/// A running program, bounded as the module says; killed and reaped when dropped.
pub struct Child {
    child: std::process::Child,
    isolation: Isolation,
    stdin: Option<OwnedFd>,
    stdout: Pipe,
    stderr: Pipe,
    pidfd: Option<OwnedFd>,
    kept: Stderr,
    /// Stdout read but not yet taken by the caller.
    pending: Zeroizing<Vec<u8>>,
    /// Stdout read in all.
    total: usize,
    max_stdout: usize,
    clock: Clock,
    status: Option<ExitStatus>,
}

impl Child {
    /// Starts `cmd` with `options` (its stdio is set here).
    pub fn spawn(mut cmd: Command, options: &Options) -> Result<Child, Failure> {
        cmd.stdin(if options.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(match options.stderr {
            StderrTo::Keep => Stdio::piped(),
            StderrTo::Null => Stdio::null(),
            StderrTo::Inherit => Stdio::inherit(),
        });
        if options.isolation == Isolation::Session {
            crate::sys::isolate_child(&mut cmd);
            // setsid keeps the terminal's signals from it, so if lockbox dies first (a
            // Ctrl-C) nothing else would stop it: it dies with us.
            crate::sys::die_with_parent(&mut cmd, rustix::process::Signal::KILL);
        }
        let mut child = cmd.spawn().map_err(Failure::Spawn)?;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        Child::finish_spawn(child, options, stdin, stdout, stderr)
    }

    fn finish_spawn(
        child: std::process::Child,
        options: &Options,
        stdin: Option<std::process::ChildStdin>,
        stdout: Option<std::process::ChildStdout>,
        stderr: Option<std::process::ChildStderr>,
    ) -> Result<Child, Failure> {
        // From here a failure drops the `Child`, which kills the program.
        // A pidfd wakes the poll when the child exits; without one (kernels before
        // 5.3, or a seccomp filter that refuses it) the poll wakes every few ms.
        let pidfd = rustix::process::Pid::from_raw(child.id() as i32).and_then(|pid| {
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
        });
        let mut this = Child {
            child,
            isolation: options.isolation,
            stdin: None,
            stdout: Pipe { fd: None },
            stderr: Pipe { fd: None },
            pidfd,
            kept: Stderr::default(),
            pending: Zeroizing::new(Vec::with_capacity(1024)),
            total: 0,
            max_stdout: options.max_stdout,
            clock: Clock::new(options.timeout),
            status: None,
        };
        this.stdout = Pipe::new(stdout).map_err(Failure::Io)?;
        this.stderr = Pipe::new(stderr).map_err(Failure::Io)?;
        if let Some(stdin) = stdin {
            let fd: OwnedFd = stdin.into();
            let flags = rustix::fs::fcntl_getfl(&fd).map_err(|e| Failure::Io(e.into()))?;
            rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)
                .map_err(|e| Failure::Io(e.into()))?;
            this.stdin = Some(fd);
        }
        Ok(this)
    }

    /// Stops the clock (a person is being asked something).
    pub fn pause(&mut self) {
        self.clock.pause();
    }

    /// Starts the clock again.
    pub fn resume(&mut self) {
        self.clock.resume();
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> &Stderr {
        &self.kept
    }

    /// Closes its stdin (end of file for it).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Reads what its pipes hold now: stdout into `pending` (against the total bound;
    /// it stops early once `pending` holds more than `stop_at` bytes, so a line's own
    /// bound is met before the total's), stderr into `kept`.
    fn drain_until(&mut self, stop_at: usize) -> Result<(), Failure> {
        let (pending, total, max) = (&mut self.pending, &mut self.total, self.max_stdout);
        let mut too_large = false;
        self.stdout
            .drain(&mut |data: &[u8]| {
                if *total + data.len() > max {
                    too_large = true;
                    return false;
                }
                *total += data.len();
                extend_wiped(pending, data);
                pending.len() <= stop_at
            })
            .map_err(Failure::Io)?;
        if too_large {
            return Err(Failure::TooLarge {
                limit: max,
                stderr: self.kept.clone(),
            });
        }
        let kept = &mut self.kept;
        self.stderr
            .drain(&mut |data: &[u8]| {
                kept.push(data);
                true
            })
            .map_err(Failure::Io)?;
        Ok(())
    }

    /// [`Child::drain_until`] with no early stop.
    fn drain(&mut self) -> Result<(), Failure> {
        self.drain_until(usize::MAX)
    }

    /// Waits until one of its pipes (and `stdin` for writing, when `write`) is ready,
    /// it exits, or the deadline passes (then [`Failure::TimedOut`]).
    fn wait(&mut self, write: bool) -> Result<(), Failure> {
        let remaining = self.clock.remaining();
        if remaining.is_zero() {
            return Err(Failure::TimedOut {
                after: self.clock.limit,
                stderr: self.kept.clone(),
            });
        }
        let mut wait = remaining;
        if self.pidfd.is_none() {
            wait = wait.min(Duration::from_millis(5));
        }
        let stdin = if write {
            self.stdin.as_ref().map(AsFd::as_fd)
        } else {
            None
        };
        let mut fds: Vec<PollFd<'_>> = [
            self.stdout.borrow(),
            self.stderr.borrow(),
            self.pidfd.as_ref().map(AsFd::as_fd),
        ]
        .into_iter()
        .flatten()
        .map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN))
        .chain(stdin.map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::OUT)))
        .collect();
        if fds.is_empty() {
            std::thread::sleep(wait.min(Duration::from_millis(5)));
            return Ok(());
        }
        let ts = Timespec {
            tv_sec: wait.as_secs() as _,
            tv_nsec: wait.subsec_nanos() as _,
        };
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
            Err(e) => Err(Failure::Io(e.into())),
        }
    }

    /// Whether it has exited (reaped then, its status kept).
    fn exited(&mut self) -> Result<bool, Failure> {
        if self.status.is_none() {
            // Before reaping, kill what is left of its group: while it is a zombie its
            // pid, the group's id, cannot be reused.
            if self.has_exited_unreaped() {
                self.kill_group();
            }
            self.status = self.child.try_wait().map_err(Failure::Io)?;
        }
        Ok(self.status.is_some())
    }

    /// Whether the child has exited, without reaping it (its pidfd is readable).
    fn has_exited_unreaped(&self) -> bool {
        let Some(pidfd) = &self.pidfd else {
            return false;
        };
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
    }

    /// Writes all of `data` to its stdin within the deadline, reading its output
    /// meanwhile (a program that writes before it reads must not deadlock us).
    pub fn write_all(&mut self, mut data: &[u8]) -> Result<(), Failure> {
        while !data.is_empty() {
            let Some(fd) = &self.stdin else {
                return Err(Failure::Io(io::ErrorKind::BrokenPipe.into()));
            };
            match rustix::io::write(fd, data) {
                Ok(n) => data = &data[n..],
                Err(rustix::io::Errno::AGAIN) => {
                    self.drain()?;
                    if self.exited()? {
                        return Err(Failure::Closed {
                            stderr: self.kept.clone(),
                        });
                    }
                    self.wait(true)?;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::PIPE) => {
                    return Err(Failure::Closed {
                        stderr: self.kept.clone(),
                    });
                }
                Err(e) => return Err(Failure::Io(e.into())),
            }
        }
        Ok(())
    }

    /// The next line of its stdout, with its `\n`, at most `max_line` bytes before
    /// the `\n`: a longer one is [`Failure::LineTooLong`] as soon as that many bytes
    /// are there without one. Its stdout closing first is [`Failure::Closed`].
    pub fn read_line(&mut self, max_line: usize) -> Result<Zeroizing<Vec<u8>>, Failure> {
        loop {
            if let Some(at) = self.pending.iter().position(|&b| b == b'\n') {
                if at > max_line {
                    return Err(Failure::LineTooLong { limit: max_line });
                }
                let mut line = Zeroizing::new(Vec::with_capacity(at + 1));
                line.extend_from_slice(&self.pending[..=at]);
                self.pending.drain(..=at);
                return Ok(line);
            }
            if self.pending.len() > max_line {
                return Err(Failure::LineTooLong { limit: max_line });
            }
            if self.stdout.fd.is_none() {
                return Err(Failure::Closed {
                    stderr: self.kept.clone(),
                });
            }
            self.drain_until(max_line)?;
            if self.pending.contains(&b'\n') || self.stdout.fd.is_none() {
                continue;
            }
            if self.pending.len() > max_line {
                continue;
            }
            if self.exited()? {
                // One last drain of what is already in the pipe, then stop: whatever
                // it left running may hold the pipe open forever.
                self.drain_until(max_line)?;
                if !self.pending.contains(&b'\n') && self.pending.len() <= max_line {
                    return Err(Failure::Closed {
                        stderr: self.kept.clone(),
                    });
                }
                continue;
            }
            self.wait(false)?;
        }
    }

    /// Reads stdout until it exits (then one last drain of what is already in the
    /// pipes: anything it left running may hold them open forever) or the deadline;
    /// its output, stderr and status.
    pub fn finish(&mut self) -> Result<(Zeroizing<Vec<u8>>, Stderr, ExitStatus), Failure> {
        loop {
            let status = if self.status.is_some() {
                self.status
            } else {
                self.child.try_wait().map_err(Failure::Io)?
            };
            self.drain()?;
            if let Some(status) = status {
                // What is already in the pipe, all of it (bounded by `max_stdout`).
                loop {
                    let before = self.total;
                    self.drain()?;
                    if self.total == before {
                        break;
                    }
                }
                self.status = Some(status);
                let out = std::mem::replace(&mut self.pending, Zeroizing::new(Vec::new()));
                return Ok((out, self.kept.clone(), status));
            }
            self.wait(false)?;
        }
    }

    /// Ends the run: closes its stdin, gives it `grace` (within the deadline) to exit
    /// by itself, then kills what is left and reaps it. Its exit status, if it exited
    /// by itself.
    pub fn close(mut self, grace: Duration) -> Option<ExitStatus> {
        self.close_stdin();
        let until = Instant::now() + grace.min(self.clock.remaining());
        loop {
            let _ = self.drain();
            match self.exited() {
                Ok(true) => break,
                Ok(false) if Instant::now() < until => {
                    if self.wait(false).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
        self.status
    }

    /// Kills its process group (with [`Isolation::Session`]) and itself.
    fn kill_group(&mut self) {
        if self.isolation == Isolation::Session
            && let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32)
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Whatever happened, leave nothing of ours running or unreaped. Only while it
        // is not reaped: until then its pid, the group's id, cannot be reused.
        if self.status.is_none() {
            self.kill_group();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Appends to a wiped buffer; when it must grow, the old allocation is wiped as it is
/// dropped instead of being left to the allocator holding key bytes.
pub fn extend_wiped(buf: &mut Zeroizing<Vec<u8>>, data: &[u8]) {
    if buf.capacity() - buf.len() < data.len() {
        let want = (buf.len() + data.len()).max(buf.capacity() * 2);
        let mut bigger = Zeroizing::new(Vec::with_capacity(want));
        bigger.extend_from_slice(buf);
        *buf = bigger;
    }
    buf.extend_from_slice(data);
}
