//! Process-wide OS state: the only `unsafe` in the crate (turning file-descriptor
//! numbers found in `/proc/self/fd` into descriptors, to keep inherited descriptors out
//! of the agent; a `pre_exec` hook that ties `exec`'s command to its parent's life; the
//! pre-exec step of an identity command's child, [`isolate_child`]; removing secret
//! variables from the environment once read, [`forget_env`]; what std's start-up does
//! before `main`, which the binary does itself, [`start_process`]; glibc's allocator
//! settings for `get`, [`tune_allocator_for_one_request`]) and the disposition of
//! `SIGXFSZ`.
//!
//! Why it matters: Go's `cmd.Output()` waits until every holder of the helper's stdout
//! pipe closes it. An agent that inherited Docker's pipe (or any other descriptor its
//! caller forgot to mark close-on-exec) would make Docker wait forever.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::AtomicBool;

use rustix::fs::{Dir, Mode, OFlags};
use rustix::io::{FdFlags, fcntl_setfd};

/// The open descriptors above stderr, read from `/proc/self/fd`, not counting the
/// directory descriptor used to read them (closed again before this returns).
fn open_fds_above_stderr() -> Vec<RawFd> {
    let Ok(dirfd) = rustix::fs::open(
        "/proc/self/fd",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return Vec::new();
    };
    let own = dirfd.as_raw_fd();
    let Ok(mut dir) = Dir::new(dirfd) else {
        return Vec::new();
    };
    let mut fds = Vec::new();
    // Bounded: a process has at most RLIMIT_NOFILE descriptors.
    while let Some(Ok(entry)) = dir.read() {
        if let Some(fd) = entry
            .file_name()
            .to_str()
            .ok()
            .and_then(|n| n.parse::<RawFd>().ok())
            && fd > 2
            && fd != own
        {
            fds.push(fd);
        }
    }
    fds
}

/// Marks every descriptor above stderr close-on-exec, so a child started next (the
/// agent) inherits only stdin, stdout and stderr. Call while single-threaded.
pub fn cloexec_inherited_fds() {
    for fd in open_fds_above_stderr() {
        // SAFETY: `fd` was listed as open in /proc/self/fd a moment ago, the directory
        // descriptor used to list it is excluded, and nothing has been opened or closed
        // since (the caller is single-threaded here); the borrow lasts only this call.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let _ = fcntl_setfd(borrowed, FdFlags::CLOEXEC);
    }
}

/// Closes every descriptor above stderr. Called first thing in the agent, before it
/// opens anything of its own, so nothing it inherited stays open.
pub fn close_inherited_fds() {
    for fd in open_fds_above_stderr() {
        // SAFETY: the agent owns no descriptor above stderr yet (this runs before it
        // opens any), so these are all inherited ones nobody in this process uses;
        // `close` ignores errors, so a descriptor closed meanwhile is harmless.
        unsafe { rustix::io::close(fd) };
    }
}

/// Catches `SIGXFSZ` for the rest of the process, so a write past `RLIMIT_FSIZE`
/// (`ulimit -f`) fails with `EFBIG` and takes the normal error path (one line, temp
/// file removed, vault untouched) instead of killing the helper silently with a
/// partial file behind it. Idempotent; call before the first write.
///
/// Caught, not ignored, on purpose: `execve` resets a caught signal to its default
/// but keeps an ignored one, so every child (`import --from-helper`'s helper, the
/// agent, identity plugins, `exec`'s command) starts with the default disposition
/// without any spawn site having to restore it. The handler only sets a flag nobody
/// reads, which is async-signal-safe.
pub fn catch_file_size_signal() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only for the signals signal-hook forbids (SIGKILL, SIGSTOP, SIGSEGV…),
        // which SIGXFSZ is not; should it ever fail, the default (death) stays.
        let _ = signal_hook::flag::register(
            signal_hook::consts::SIGXFSZ,
            Arc::new(AtomicBool::new(false)),
        );
    });
}

/// What std's runtime does before `main` on Unix, done by the binary's own `main`
/// (`src/main.rs` is `no_main`), minus the stack-overflow handler, whose set-up reads
/// and parses `/proc/self/maps` (glibc's `pthread_getattr_np` for the main thread):
/// about 0.07 ms of every helper call on the machine measured (docs/PERFORMANCE.md).
///
/// 1. stdin, stdout and stderr, when closed, are opened on `/dev/null`, so a file the
///    process opens later can never be written as if it were stdout (std does the
///    same, with the same `poll`; abort when `/dev/null` cannot be opened);
/// 2. SIGPIPE is ignored, so a write to a closed pipe is an `EPIPE` error the code
///    handles (`src/output.rs`) rather than death. std still resets it to the default
///    in every child it spawns, as before.
///
/// Without the handler, a stack overflow ends the process with SIGSEGV instead of
/// std's message and SIGABRT: a crash either way, and no input reaches one (inputs
/// are bounded, the JSON parsers limit their depth).
pub fn start_process() {
    for fd in closed_standard_fds() {
        // SAFETY: opens /dev/null from a constant C string; no pointer is kept.
        let opened = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0) };
        // The lowest free number is `fd`: the smaller ones are open, or were opened
        // here a moment ago.
        if opened != fd {
            std::process::abort();
        }
    }
    // SAFETY: sets a signal's disposition to SIG_IGN; no handler code is installed.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
        std::process::abort();
    }
}

/// Which of stdin, stdout and stderr are closed: one `poll` (as std), or where poll
/// cannot tell, `fcntl(F_GETFD)` on each.
fn closed_standard_fds() -> Vec<libc::c_int> {
    const FDS: [libc::c_int; 3] = [0, 1, 2];
    let mut pfds = FDS.map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    loop {
        // SAFETY: `pfds` is a live array of three `pollfd`s and its length is passed
        // with it; a zero timeout never blocks; poll writes only `revents`.
        let ready = unsafe { libc::poll(pfds.as_mut_ptr(), 3, 0) };
        if ready != -1 {
            return pfds
                .iter()
                .filter(|p| p.revents & libc::POLLNVAL != 0)
                .map(|p| p.fd)
                .collect();
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EINVAL | libc::EAGAIN | libc::ENOMEM) => {
                return FDS
                    .into_iter()
                    .filter(|&fd| {
                        // SAFETY: F_GETFD on a descriptor number only reads its flags.
                        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
                        flags == -1
                            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
                    })
                    .collect();
            }
            _ => std::process::abort(),
        }
    }
}

/// Sets glibc's allocator up for a process that answers one request and exits (a
/// protocol action): blocks of 64 KiB and more come from `mmap`, and the heap keeps
/// at most 32 KiB spare (the unused top of the heap that std's start-up left is
/// handed back first). Why: each age decryption allocates a 64 KiB zeroed buffer for
/// a payload of a few hundred bytes; carved from the heap, `calloc` clears all of it
/// and touches 16 fresh pages (16 page faults, about 50 µs of a 1–2 ms `get` on a
/// VM), while from `mmap` it is already zero and only the page written is touched.
/// Not for the agent or commands for people, whose allocations live longer.
/// No effect outside glibc.
pub fn tune_allocator_for_one_request() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` and `malloc_trim` only change and trim the allocator's own
    // state, under its lock, and take plain integers; no pointer is passed. A failure
    // leaves glibc's defaults, which are correct, only slower.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
        libc::mallopt(libc::M_TOP_PAD, 32 * 1024);
        libc::malloc_trim(0);
    }
}

/// Makes the child that `cmd` starts get `signal` when this process dies, even by
/// SIGKILL (`PR_SET_PDEATHSIG`), so `exec`'s command never outlives the key it was
/// given. If this process is already gone when the child starts (its parent is no
/// longer `parent`), the child fails to start instead of running unsupervised.
pub fn die_with_parent(cmd: &mut std::process::Command, signal: rustix::process::Signal) {
    use std::os::unix::process::CommandExt;
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec and makes only
    // async-signal-safe system calls (prctl, getppid) through rustix; its errors are
    // raw OS errors, so it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(signal))?;
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::from_raw_os_error(libc_esrch()));
            }
            Ok(())
        });
    }
}

/// ESRCH ("no such process"), as a raw number without a libc dependency.
fn libc_esrch() -> i32 {
    rustix::io::Errno::SRCH.raw_os_error()
}

/// Makes the child of `cmd` start in a new session (no controlling terminal, so nothing
/// in it can open `/dev/tty` to prompt, and its own process group whose id is its pid,
/// so the whole group can be killed), with the default dispositions of SIGPIPE and
/// SIGXFSZ (ignored dispositions survive exec, and a command whose reader went away
/// must die as usual), and with every descriptor above stderr close-on-exec (one this
/// process inherited without the flag must not reach a daemon the command leaves).
pub(crate) fn isolate_child(cmd: &mut Command) {
    let hook = || -> std::io::Result<()> {
        rustix::process::setsid()
            .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))?;
        // SAFETY: this runs in the forked child before exec, where only
        // async-signal-safe calls are allowed; signal(2) and the close_range(2) syscall
        // are, and neither allocates nor takes a lock. close_range fails harmlessly
        // with ENOSYS before Linux 5.11: the descriptors then stay as they were.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
        }
        Ok(())
    };
    // SAFETY: the hook only makes async-signal-safe calls (see above) and touches no
    // memory shared with the parent.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Removes `names` from this process's environment (`config::var::FORGOTTEN`), so no
/// child inherits them. Call from `main` before any thread is started.
pub fn forget_env(names: &[&str]) {
    for name in names {
        if std::env::var_os(name).is_some() {
            // SAFETY: called at the top of `main`, after the environment was read
            // into `Settings` and before any thread exists, so nothing reads the
            // environment concurrently (std's requirement for `remove_var`).
            unsafe { std::env::remove_var(name) };
        }
    }
}
