//! `exec -- CMD ARGS…`: the vault open for exactly one command's life (after
//! `aws-vault exec`, `op run`, `sops exec-env`).
//!
//! The key stays in this process, which serves it on a private socket
//! (`<agent dir>/exec-<pid>-<n>/agent.sock`, the directory 0700) named to CMD in
//! `LOCKBOX_AGENT_SOCKET`; CMD's `get` asks it as it would ask the agent. CMD's
//! environment loses the identity and passphrase variables, and the one of
//! `BAO_TOKEN`/`VAULT_TOKEN` whose token `--openbao` used, so CMD and its children cannot
//! bypass `exec` or keep the identity through the environment. Files are another
//! matter: a file named with `--identity-file`, `--passphrase-file` or
//! `--openbao-token-file` (or `~/.vault-token`) stays readable by CMD, which runs as the
//! same user; `exec` does not hide files. Signals sent to `exec` are forwarded to
//! CMD; CMD's exit status is returned (128+N when it dies of signal N). When CMD
//! exits the key is wiped and the socket and its directory removed. When `exec` is
//! SIGKILLed the key dies with its memory, the socket left behind refuses every
//! connection, and CMD gets SIGTERM (`PR_SET_PDEATHSIG`); the next `exec` sweeps the
//! leftover directory.
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Args;
use rustix::event::{PollFd, PollFlags, poll};
use rustix::process::{Pid, Signal};

use super::{KeyOpts, open_key};
use crate::agent::proto::AgentMode;
use crate::agent::socket::{self, AGENT_SOCKET_VAR, SOCKET_NAME};
use crate::agent::{BoundSocket, Server, harden, signal_pipe};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::exit::Exit;

/// Signals passed on to CMD. Stop signals are left to the terminal's job control.
const FORWARDED: [i32; 7] = [
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
    signal_hook::consts::SIGQUIT,
    signal_hook::consts::SIGUSR1,
    signal_hook::consts::SIGUSR2,
    signal_hook::consts::SIGWINCH,
];
/// A backstop wake-up: CMD's exit also arrives as SIGCHLD.
const POLL_BACKSTOP: Duration = Duration::from_secs(1);

/// `exec`'s options.
#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    key: KeyOpts,
    /// The command to run and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// Runs `exec`; returns CMD's exit status.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit> {
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    let opened = open_key(&vault, settings, &o.key.flags())?;
    let token_var = openbao_token_var(&opened.source, settings);
    let key = opened.key;

    let dir = socket::agent_dir();
    socket::check_agent_dir(&dir, true)?;
    sweep_leftovers(&dir);
    let private = make_private_dir(&dir)?;
    let result = serve_command(&o.command, key, &path.vault, &private, token_var);
    let _ = fs::remove_dir_all(&private);
    result
}

/// The variable (`BAO_TOKEN` or `VAULT_TOKEN`) whose token `--openbao` opened the vault
/// with, if it was one: CMD does not get it (it could open the vault itself with it,
/// during and after `exec`). The other variables stay: CMD may need its own token.
fn openbao_token_var(source: &str, settings: &Settings) -> Option<&'static str> {
    // The name of the `--openbao` source without --openbao-token-file
    // (`keysource::OpenBao::name`); with the flag, the token came from a file.
    if source != "--openbao" {
        return None;
    }
    let lookup = |name: &str| settings.keys.openbao_var(name);
    let scope = crate::openbao::TokenScope::Person {
        flag: None,
        home: settings.keys.home.as_deref(),
    };
    // The same lookup that found the token a moment ago: no network, no prompt.
    let token = crate::openbao::find_token(&lookup, scope).ok()??;
    ["BAO_TOKEN", "VAULT_TOKEN"]
        .into_iter()
        .find(|v| token.source() == *v)
}

fn serve_command(
    command: &[OsString],
    key: crate::vault::crypto::VaultKey,
    vault: &Path,
    private: &Path,
    token_var: Option<&str>,
) -> Result<Exit> {
    let socket = private.join(SOCKET_NAME);
    let mut server = Server::new(AgentMode::Exec, harden());
    // Its gets go into the user's access log, beside the agent's (`socket` "exec").
    if let Some(agent_dir) = private.parent() {
        server.log_access_in(agent_dir);
    }
    server.hold_forever(key, &vault.display().to_string());
    let forwards: Vec<(i32, UnixStream)> = FORWARDED
        .iter()
        .map(|&sig| signal_pipe(&[sig]).map(|p| (sig, p)))
        .collect::<Result<_>>()?;
    let chld = signal_pipe(&[signal_hook::consts::SIGCHLD])?;
    for (_, p) in &forwards {
        let _ = p.set_nonblocking(true);
    }
    let _ = chld.set_nonblocking(true);
    let bound = BoundSocket::bind(&socket)?;

    // clap requires at least one word after `--`.
    let Some((program, args)) = command.split_first() else {
        return Ok(Exit::Usage);
    };
    let mut cmd = Command::new(program);
    cmd.args(args).env(AGENT_SOCKET_VAR, &socket);
    if let Some(var) = token_var {
        cmd.env_remove(var);
    }
    // systemd's credentials directory is a key source too when it holds lockbox's
    // identity; then CMD does not get it (other credentials in it go with it: a unit
    // that needs them for CMD should load them in a second unit, or not use `exec`).
    crate::child::hide_key_settings(&mut cmd);
    crate::sys::die_with_parent(&mut cmd, Signal::TERM);
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io("run the command", PathBuf::from(program), e))?;
    let child_pid = Pid::from_raw(child.id() as i32);

    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("wait for", program, e))?
        {
            break status;
        }
        let timeout =
            rustix::event::Timespec::try_from(POLL_BACKSTOP).unwrap_or(rustix::event::Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
        let mut fds: Vec<PollFd> = vec![
            PollFd::new(&bound.listener, PollFlags::IN),
            PollFd::new(&chld, PollFlags::IN),
        ];
        fds.extend(forwards.iter().map(|(_, p)| PollFd::new(p, PollFlags::IN)));
        // A source's mint ending, or a request waiting for one hanging up.
        fds.extend(server.mint_poll_fds());
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::AgentStart(format!("poll: {e}"))),
        }
        drop(fds);
        server.finish_mints();
        drain(&chld);
        for (sig, pipe) in &forwards {
            if drain(pipe)
                && let (Some(child_pid), Some(sig)) = (child_pid, Signal::from_named_raw(*sig))
            {
                let _ = rustix::process::kill_process(child_pid, sig);
            }
        }
        server.accept_all(&bound.listener);
    };
    server.clear();
    drop(bound);
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Command(u8::try_from(code).unwrap_or(1)),
        (None, Some(sig)) => Exit::Command(u8::try_from(128 + sig).unwrap_or(1)),
        (None, None) => Exit::Failure,
    })
}

/// Empties a signal pipe; whether anything was in it.
fn drain(pipe: &UnixStream) -> bool {
    let mut buf = [0u8; 64];
    let mut any = false;
    // Bounded: the pipe is non-blocking, and a pipe holds at most a few bytes per signal.
    for _ in 0..64 {
        match (&*pipe).read(&mut buf) {
            Ok(n) if n > 0 => any = true,
            _ => break,
        }
    }
    any
}

/// Creates `<dir>/exec-<pid>-<n>`, mode 0700, inside the checked agent directory.
fn make_private_dir(dir: &Path) -> Result<PathBuf> {
    let pid = std::process::id();
    let mut last = None;
    for n in 0..100u32 {
        let private = dir.join(format!("exec-{pid}-{n}"));
        match fs::DirBuilder::new().mode(0o700).create(&private) {
            Ok(()) => return Ok(private),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(Error::io("create", private, e)),
        }
    }
    Err(Error::io(
        "create a private directory in",
        dir,
        last.unwrap_or_else(|| std::io::Error::other("no free name")),
    ))
}

/// Removes the directories of `exec`s that are gone (SIGKILLed: they could not clean
/// up). "Gone" is decided by the socket when there is one: a socket file that refuses
/// connections has no server, whatever the pid says (a pid from another PID namespace
/// sharing `/tmp` means nothing here). Without a socket (an `exec` between creating
/// its directory and binding, or one killed in between) the pid decides, and a
/// directory whose pid exists is left alone: a leftover costs nothing.
fn sweep_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("exec-"))
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && leftover_is_gone(&entry.path(), pid) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether the `exec` that made `private` (named for `pid`) is gone. The connect is
/// non-blocking, so a stopped `exec` whose backlog is full (it would make a blocking
/// connect wait) counts as alive. A refusal is asked twice, 100 ms apart: between
/// `bind` and `listen` a live `exec`'s socket refuses too, for a moment.
fn leftover_is_gone(private: &Path, pid: u32) -> bool {
    use rustix::io::Errno;
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let socket = private.join(SOCKET_NAME);
    let probe = || -> std::result::Result<(), Errno> {
        let addr = SocketAddrUnix::new(socket.as_path())?;
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::connect(&fd, &addr)
    };
    let refused = || matches!(probe(), Err(Errno::CONNREFUSED));
    match probe() {
        // A server (or a full backlog: a stopped one); connecting costs it one empty
        // request.
        Ok(()) | Err(Errno::AGAIN | Errno::INPROGRESS) => false,
        Err(Errno::CONNREFUSED) => {
            std::thread::sleep(std::time::Duration::from_millis(100));
            refused()
        }
        Err(_) => !Path::new(&format!("/proc/{pid}")).exists(),
    }
}
