//! `forward create|list|revoke|run`: registry logins inside containers, through a
//! socket of the agent that may only `get` and `list` some registries of one vault
//! (`docs/BUILD_SERVER.md` "Forwards", `docs/AGENT.md` "Forwards"). The vault and its
//! key never enter the container: the static binary there asks the socket.
//!
//! `forward run -- docker run …` opens a forward tied to itself (the agent ends it
//! when this process exits, however it exits, and at its TTL at the latest), adds the
//! mounts and variables to the `run`, runs it, and revokes the forward when it exits.
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::agent::client::Agent;
use crate::agent::forward::{FORWARD_SOCKET, FORWARDS_DIR, MAX_NAME, MAX_SOCKET_PATH, valid_name};
use crate::agent::forward_client::ForwardRequest;
use crate::agent::proto::{ForwardInfo, MAX_TIMEOUT, MIN_TIMEOUT};
use crate::config::Settings;
use crate::config::var::FORWARD_SOCKET as FORWARD_VAR;
use crate::docker::server_url;
use crate::error::{Error, ForwardError, Result, Usage};
use crate::exit::Exit;
use crate::messages;

/// Where the forward's directory is mounted in the container.
pub const MOUNT_DIR: &str = "/run/lockbox-forward";
/// Where `forward run` mounts the binary (on PATH in common images).
pub const BIN_MOUNT: &str = "/usr/local/bin/docker-credential-lockbox";
/// Where `forward run` mounts the generated Docker config directory.
pub const CONFIG_MOUNT: &str = "/run/lockbox-docker";

/// `forward`
#[derive(Debug, Subcommand)]
pub enum Opts {
    /// Open a forward: a socket for a container or job that may only get (and list)
    /// the named registries' credentials, until --ttl or revoke. Prints what to mount
    /// and set.
    Create(CreateOpts),
    /// Show the open forwards: name, registries, time left, gets served.
    List {
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// End a forward now (its socket is removed).
    Revoke {
        /// The forward's name.
        name: String,
    },
    /// Run one `docker run …` or `podman run …` with a forward mounted into it;
    /// the forward ends when the command exits (or this process dies).
    Run(RunOpts),
}

/// What a forward grants.
#[derive(Debug, Args)]
pub struct Grant {
    /// A registry whose credentials the forward hands out (repeat for more); others
    /// answer not-found in the container.
    #[arg(long = "registry", value_name = "REGISTRY", required = true)]
    registries: Vec<String>,
    /// How long the forward lives at most (1s to 7d).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    ttl: String,
    /// A uid admitted besides yours and root: the container's user as the host (the
    /// agent) sees it — the same number for a rootful container, the mapped one for
    /// a user namespace; a refused process is told it.
    #[arg(long, value_name = "UID")]
    uid: Option<u32>,
}

/// `forward create`
#[derive(Debug, Args)]
pub struct CreateOpts {
    /// Its name (1-64 of letters, digits, '_', '.', '-').
    name: String,
    #[command(flatten)]
    grant: Grant,
    /// Print the forward as JSON.
    #[arg(long)]
    json: bool,
}

/// `forward run`
#[derive(Debug, Args)]
pub struct RunOpts {
    #[command(flatten)]
    grant: Grant,
    /// The forward's name (default: run-PID).
    #[arg(long)]
    name: Option<String>,
    /// The static docker-credential-lockbox to mount (default: this one, if static).
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// The docker or podman command, after `--`: `-- docker run [OPTIONS] IMAGE …`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// Runs `forward …`.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit> {
    match o {
        Opts::Create(c) => {
            let info = open(settings, &c.name, &c.grant, false)?;
            if c.json {
                crate::outln!(
                    "{}",
                    serde_json::to_string_pretty(&info).unwrap_or_default()
                );
            } else {
                crate::outln!("{}", created_text(&info));
            }
            Ok(Exit::Ok)
        }
        Opts::List { json } => {
            let forwards = Agent::for_user().forwards()?;
            if json {
                crate::outln!(
                    "{}",
                    serde_json::to_string_pretty(&forwards).unwrap_or_default()
                );
            } else if forwards.is_empty() {
                crate::outln!("{}", messages::NO_FORWARDS);
            } else {
                for f in &forwards {
                    crate::outln!("{}", list_line(f));
                }
            }
            Ok(Exit::Ok)
        }
        Opts::Revoke { name } => {
            Agent::for_user().forward_revoke(&name)?;
            crate::outln!("{}", messages::sanitize(&messages::forward_revoked(&name)));
            Ok(Exit::Ok)
        }
        Opts::Run(r) => run_command(r, settings),
    }
}

fn usage(text: String) -> Error {
    Error::Usage(Usage::Forward(text))
}

/// The registries, normalized, and the TTL, checked.
fn grant_values(g: &Grant) -> Result<(Vec<String>, Duration)> {
    let mut registries = Vec::new();
    for r in &g.registries {
        let n = server_url::normalize(r.trim())
            .ok_or_else(|| usage(messages::bad_forward_registry(&messages::sanitize(r))))?;
        if !registries.contains(&n) {
            registries.push(n);
        }
    }
    let ttl = humantime::parse_duration(&g.ttl)
        .ok()
        .filter(|d| (MIN_TIMEOUT..=MAX_TIMEOUT).contains(d))
        .ok_or_else(|| usage(messages::bad_forward_ttl(&messages::sanitize(&g.ttl))))?;
    Ok((registries, ttl))
}

/// Opens a forward of this vault on this user's agent.
fn open(settings: &Settings, name: &str, g: &Grant, tie_to_me: bool) -> Result<ForwardInfo> {
    if !valid_name(name) {
        return Err(usage(messages::bad_forward_name(MAX_NAME)));
    }
    let (registries, ttl) = grant_values(g)?;
    let agent = Agent::for_user();
    let socket = agent
        .dir()
        .join(FORWARDS_DIR)
        .join(name)
        .join(FORWARD_SOCKET);
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(usage(messages::forward_socket_too_long(
            &messages::sanitize(&socket.display().to_string()),
            MAX_SOCKET_PATH,
        )));
    }
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    // The agent reads the vault from its own working directory: never a relative path.
    let vault_file = std::path::absolute(&path.vault)
        .map_err(|e| Error::io("resolve", path.vault.clone(), e))?;
    agent.forward_create(ForwardRequest {
        name: name.to_owned(),
        registries,
        ttl,
        uid: g.uid,
        vault: vault_file,
        public_key: vault.public().to_string(),
        tie_to_me,
        // Decided here, in the owner's environment (the agent has none): whether
        // the forward may mint from this vault's sources.
        sources_trusted: settings.trust().allows(&vault.public().to_string()),
    })
}

fn socket_dir(info: &ForwardInfo) -> String {
    Path::new(&info.socket)
        .parent()
        .map_or_else(String::new, |d| d.display().to_string())
}

fn created_text(info: &ForwardInfo) -> String {
    use messages::sanitize as clean;
    let ttl = humantime::format_duration(Duration::from_secs(info.expires_in_secs)).to_string();
    // Each value is made terminal-safe; the text's own line breaks stay.
    messages::forward_created(
        &clean(&info.name),
        &clean(&info.registries.join(", ")),
        &ttl,
        &clean(&socket_dir(info)),
        &format!("{MOUNT_DIR}:ro"),
        FORWARD_VAR,
        &format!("{MOUNT_DIR}/{FORWARD_SOCKET}"),
    )
}

fn list_line(f: &ForwardInfo) -> String {
    let mut extra = String::new();
    if let Some(uid) = f.uid {
        extra.push_str(&format!("\tuid {uid}"));
    }
    if f.tied {
        extra.push_str("\ttied to its creator");
    }
    let left = humantime::format_duration(Duration::from_secs(f.expires_in_secs)).to_string();
    messages::forward_line(
        &messages::sanitize(&f.name),
        &messages::sanitize(&f.registries.join(",")),
        &left,
        f.gets,
        &extra,
    )
}

/// Whether the ELF image `bytes` (its start: header and program headers) needs a
/// dynamic loader (`PT_INTERP`); `None` when it is not a 64-bit little-endian ELF.
pub fn needs_loader(bytes: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if bytes.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(bytes.get(o..o + 2)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let kind = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        if kind == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

/// The binary to mount: `--binary`, else this one; refused when it is not static.
fn static_binary(given: Option<&Path>) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_owned(),
        None => std::env::current_exe().map_err(|e| Error::io("find", "this executable", e))?,
    };
    let mut head = Vec::new();
    fs::File::open(&path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .map_err(|e| Error::io("read", &path, e))?;
    match needs_loader(&head) {
        Some(false) => Ok(path),
        _ => Err(usage(messages::forward_not_static(&messages::sanitize(
            &path.display().to_string(),
        )))),
    }
}

/// Where in `command` (`docker …`/`podman …`) the `run` word is: after it go the
/// added options. `docker container run` counts; global options before it do too.
pub fn run_position(command: &[OsString]) -> Option<usize> {
    let program = Path::new(command.first()?).file_name()?.to_str()?;
    if !matches!(program, "docker" | "podman") {
        return None;
    }
    let words: Vec<Option<&str>> = command.iter().map(|a| a.to_str()).collect();
    let mut i = 1;
    while i < words.len() {
        match words[i] {
            Some("run") => return Some(i),
            Some("container") if words.get(i + 1) == Some(&Some("run")) => return Some(i + 1),
            // Global options with a value (docker: --context, -H/--host, --config,
            // -l/--log-level; podman: --url, --connection): skip the value too.
            Some(
                "--context" | "-c" | "-H" | "--host" | "--config" | "-l" | "--log-level" | "--url"
                | "--connection",
            ) => i += 2,
            Some(w) if w.starts_with('-') => i += 1,
            _ => return None,
        }
    }
    None
}

/// The options `forward run` adds after `run`: the forward's directory, the binary
/// and a Docker config naming it (`--mount type=bind,…`: a `:` in a path cannot
/// split it as it would `-v`'s), and the two variables. A path holding a character
/// that `--mount`'s comma-separated syntax reads (`,`, `"`, a line break) is refused.
pub fn injected(forward_dir: &Path, binary: &Path, config_dir: &Path) -> Result<Vec<OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let mount = |host: &Path, inside: &str, ro: bool| -> Result<[OsString; 2]> {
        if host
            .as_os_str()
            .as_bytes()
            .iter()
            .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
        {
            return Err(usage(messages::forward_mount_path(&messages::sanitize(
                &host.display().to_string(),
            ))));
        }
        let mut v = OsString::from("type=bind,src=");
        v.push(host.as_os_str());
        v.push(format!(
            ",dst={inside}{}",
            if ro { ",readonly" } else { "" }
        ));
        Ok(["--mount".into(), v])
    };
    let mut args = Vec::new();
    args.extend(mount(forward_dir, MOUNT_DIR, true)?);
    args.extend(mount(binary, BIN_MOUNT, true)?);
    // Writable: `docker logout` in the container rewrites config.json.
    args.extend(mount(config_dir, CONFIG_MOUNT, false)?);
    args.push("-e".into());
    args.push(format!("{FORWARD_VAR}={MOUNT_DIR}/{FORWARD_SOCKET}").into());
    args.push("-e".into());
    args.push(format!("DOCKER_CONFIG={CONFIG_MOUNT}").into());
    Ok(args)
}

/// The generated Docker config directory of one `forward run`, removed on drop.
struct ConfigDir(PathBuf);

impl ConfigDir {
    /// Removes what a `forward run` that was killed left behind (nothing secret: a
    /// config.json naming lockbox), once its process is gone.
    fn sweep(agent_dir: &Path) {
        let Ok(entries) = fs::read_dir(agent_dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("forward-run-")) else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    fn create(agent_dir: &Path) -> Result<Self> {
        Self::sweep(agent_dir);
        let dir = agent_dir.join(format!("forward-run-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&dir)
            .map_err(|e| Error::io("create", &dir, e))?;
        let guard = ConfigDir(dir);
        let file = guard.0.join("config.json");
        // Nothing secret: the container's user (any uid) must read it.
        fs::write(&file, "{\"credsStore\":\"lockbox\"}\n")
            .and_then(|()| fs::set_permissions(&file, fs::Permissions::from_mode(0o644)))
            .and_then(|()| fs::set_permissions(&guard.0, fs::Permissions::from_mode(0o755)))
            .map_err(|e| Error::io("write", &file, e))?;
        Ok(guard)
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Signals `forward run` passes on to its command rather than die of: the command
/// decides, and `forward run` revokes and cleans up once it has exited.
const PASSED_ON: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

/// Runs `cmd` to its end, passing on [`PASSED_ON`] signals to it.
fn run_passing_signals(cmd: &mut Command) -> std::io::Result<std::process::ExitStatus> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut pipes = Vec::new();
    for sig in PASSED_ON {
        let pipe =
            crate::agent::signal_pipe(&[sig]).map_err(|e| std::io::Error::other(e.message()))?;
        pipe.set_nonblocking(true)?;
        pipes.push((sig, pipe));
    }
    let mut child = cmd.spawn()?;
    let pid = rustix::process::Pid::from_raw(child.id() as i32);
    // Polled at most every 100 ms, so a child's exit is seen without a SIGCHLD pipe.
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        let mut fds: Vec<PollFd<'_>> = pipes
            .iter()
            .map(|(_, p)| PollFd::new(p, PollFlags::IN))
            .collect();
        let _ = poll(&mut fds, Some(&tick));
        drop(fds);
        for (sig, pipe) in &pipes {
            let mut buf = [0u8; 64];
            let mut got = false;
            // Bounded: a non-blocking pipe holds a few bytes per signal.
            for _ in 0..64 {
                match (&*pipe).read(&mut buf) {
                    Ok(n) if n > 0 => got = true,
                    _ => break,
                }
            }
            if got
                && let (Some(pid), Some(sig)) = (pid, rustix::process::Signal::from_named_raw(*sig))
            {
                let _ = rustix::process::kill_process(pid, sig);
            }
        }
    }
}

/// `forward run`: open, run, revoke; returns the command's exit status.
fn run_command(r: RunOpts, settings: &Settings) -> Result<Exit> {
    let at =
        run_position(&r.command).ok_or_else(|| usage(messages::FORWARD_RUN_NOT_RUN.to_owned()))?;
    let binary = static_binary(r.binary.as_deref())?;
    let name = r
        .name
        .clone()
        .unwrap_or_else(|| format!("run-{}", std::process::id()));
    let agent_dir = crate::agent::socket::agent_dir();
    let info = open(settings, &name, &r.grant, true)?;
    let result = (|| {
        let config = ConfigDir::create(&agent_dir)?;
        let forward_dir = PathBuf::from(socket_dir(&info));
        let mut args: Vec<OsString> = r.command[1..=at].to_vec();
        args.extend(injected(&forward_dir, &binary, &config.0)?);
        args.extend_from_slice(&r.command[at + 1..]);
        let status = run_passing_signals(Command::new(&r.command[0]).args(&args))
            .map_err(|e| Error::io("run", PathBuf::from(&r.command[0]), e))?;
        drop(config);
        use std::os::unix::process::ExitStatusExt;
        Ok(match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Command(u8::try_from(code).unwrap_or(1)),
            (None, Some(sig)) => Exit::Command(u8::try_from(128 + sig).unwrap_or(1)),
            (None, None) => Exit::Failure,
        })
    })();
    // Ended by the agent already if its TTL passed: nothing left to revoke then.
    match Agent::for_user().forward_revoke(&name) {
        Ok(()) | Err(Error::Forward(ForwardError::NoSuch(_))) => {}
        Err(e) => eprintln!("{}{}", messages::ERROR_PREFIX, e.message()),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn the_run_word_is_found_after_global_options_only() {
        for (cmd, at) in [
            ("docker run --rm alpine", Some(1)),
            ("/usr/bin/podman run x", Some(1)),
            ("docker --context ci -D run x", Some(4)),
            ("docker container run x", Some(2)),
            ("docker -H unix:///s run x", Some(3)),
            ("docker build .", None),
            ("docker ps run", None),
            ("kubectl run x", None),
            ("docker", None),
        ] {
            assert_eq!(run_position(&words(cmd)), at, "{cmd}");
        }
    }

    #[test]
    fn injected_options_mount_read_only_and_name_the_socket() {
        let args = injected(Path::new("/f:x"), Path::new("/b"), Path::new("/c")).unwrap();
        let text: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        assert_eq!(
            text,
            [
                "--mount",
                "type=bind,src=/f:x,dst=/run/lockbox-forward,readonly",
                "--mount",
                "type=bind,src=/b,dst=/usr/local/bin/docker-credential-lockbox,readonly",
                "--mount",
                "type=bind,src=/c,dst=/run/lockbox-docker",
                "-e",
                "LOCKBOX_FORWARD_SOCKET=/run/lockbox-forward/forward.sock",
                "-e",
                "DOCKER_CONFIG=/run/lockbox-docker",
            ]
        );
    }

    #[test]
    fn a_path_mount_would_misread_is_refused() {
        for bad in ["/a,b", "/a\"b", "/a\nb"] {
            let e = injected(Path::new("/f"), Path::new(bad), Path::new("/c")).unwrap_err();
            assert!(e.message().contains("cannot be mounted"), "{}", e.message());
        }
    }

    #[test]
    fn a_loader_is_found_in_the_program_headers() {
        // A minimal ELF64 header with two program headers at 64: LOAD, then INTERP.
        let mut elf = vec![0u8; 64 + 2 * 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        elf[64..68].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(
            needs_loader(&elf),
            Some(false),
            "LOAD only, while INTERP is 0"
        );
        elf[120..124].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(needs_loader(&elf), Some(true));
        assert_eq!(needs_loader(b"#!/bin/sh\n"), None);
        elf[0x38..0x3a].copy_from_slice(&9u16.to_le_bytes());
        elf[120..124].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(needs_loader(&elf), None, "headers past the end");
    }

    #[test]
    fn the_test_binary_itself_is_read() {
        // This test binary is an ELF of the host's kind: a dynamic one, as test
        // builds are, unless RUSTFLAGS made it static.
        let me = std::env::current_exe().unwrap();
        let mut head = Vec::new();
        fs::File::open(me)
            .unwrap()
            .take(64 * 1024)
            .read_to_end(&mut head)
            .unwrap();
        assert!(needs_loader(&head).is_some());
    }

    #[test]
    fn grants_are_normalized_and_ttls_bounded() {
        let g = Grant {
            registries: vec![
                "https://GHCR.io/".into(),
                "ghcr.io".into(),
                "docker.io".into(),
            ],
            ttl: "90m".into(),
            uid: None,
        };
        let (r, ttl) = grant_values(&g).unwrap();
        assert_eq!(r, ["ghcr.io", "docker.io"]);
        assert_eq!(ttl, Duration::from_secs(5400));
        for bad in ["0s", "8d", "soon"] {
            let g = Grant {
                registries: vec!["h".into()],
                ttl: bad.into(),
                uid: None,
            };
            assert!(grant_values(&g).is_err(), "{bad}");
        }
    }
}
