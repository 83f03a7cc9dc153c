//! `doctor`: checks this user's set-up the way Docker will meet it, and says for each
//! finding what it is, why it matters and the command that fixes it.
//!
//! Errors (exit 1) are what makes Docker not use lockbox, or leaves a secret readable:
//! `credsStore` not lockbox, plaintext `auths`, the helper not on `PATH`, no vault or
//! one with loose modes or another owner, an unreadable config or vault, an agent
//! directory refused. Warnings (exit 0) are what works but may surprise: a locked vault
//! (`get` fails fast with "lockbox is locked" until `unlock`), no `credsStore` while
//! `credHelpers` names lockbox for some registries, `credHelpers` sending
//! some registries to another helper, `DOCKER_AUTH_CONFIG` set, the helper missing from
//! sudo's `secure_path`, another `docker-credential-lockbox` first on `PATH`. What
//! cannot be checked as this user (sudoers unreadable) is reported as such, neither.
//!
//! Facts it relies on (from the Docker CLI source, docker/cli `cli/config/configfile/
//! file.go`): `credHelpers[host]` wins over `credsStore` for that host; with neither,
//! Docker keeps passwords in `config.json` (or picks `pass`/`secretservice` when their
//! helper is installed and the file holds no auth); `DOCKER_AUTH_CONFIG` (Docker CLI
//! 28.3+) wraps whatever store is chosen and wins on every read of the registries it
//! names. A `DOCKER_AUTH_ORDER` / `auth_config_order` switch was proposed
//! (docker/cli#6171) but is not in the CLI's source as of 2026-08, so it is not
//! checked. The report texts live here, next to the check that produces each.
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::agent::client::Agent;
use crate::config::Settings;
use crate::docker::config_json::DockerConfig;
use crate::error::Error;
use crate::exit::Exit;
use crate::file::Location;
use crate::keysource::{self, AgentUse, KeyFlags};
use crate::messages::{BIN, sanitize};
use crate::outln;

/// `doctor`'s options.
#[derive(Debug, Args)]
pub struct DoctorOpts {
    /// Print JSON for scripts: {"findings":[{"check","level","what","why","fix"}],…}.
    #[arg(long)]
    json: bool,
    /// The sudoers file whose `secure_path` is checked.
    #[arg(long, value_name = "FILE", default_value = "/etc/sudoers")]
    sudoers: PathBuf,
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Fine.
    Ok,
    /// Could not be checked as this user; says how to check it.
    Unchecked,
    /// Works, but may surprise (exit status stays 0).
    Warning,
    /// Docker will not use lockbox as meant, or a secret is exposed (exit 1).
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Unchecked => "unchecked",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One thing doctor found.
#[derive(Debug, Clone)]
pub struct Finding {
    /// A stable name for scripts: `creds-store`, `plaintext-auths`, …
    pub check: &'static str,
    /// How bad it is.
    pub level: Level,
    /// What was found.
    pub what: String,
    /// Why it matters (empty when all is well).
    pub why: String,
    /// The command (or edit) that fixes it.
    pub fix: Option<String>,
}

fn finding(check: &'static str, level: Level, what: impl Into<String>) -> Finding {
    Finding {
        check,
        level,
        what: what.into(),
        why: String::new(),
        fix: None,
    }
}

impl Finding {
    fn why(mut self, why: impl Into<String>) -> Self {
        self.why = why.into();
        self
    }
    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// The helpers whose names say they would keep credentials somewhere else: HashiCorp
/// Vault's `docker-credential-vault`, `pass`, the desktop keyring.
fn known_other(helper: &str) -> Option<&'static str> {
    match helper {
        "vault" => Some("HashiCorp Vault's docker-credential-vault"),
        "pass" => Some("docker-credential-pass (GnuPG + pass)"),
        "secretservice" => Some("docker-credential-secretservice (the desktop keyring over D-Bus)"),
        "desktop" => Some("Docker Desktop's helper"),
        _ => None,
    }
}

/// Runs every check and prints the report; exit 1 when any finding is an error.
pub fn run(o: DoctorOpts, settings: &Settings) -> Result<Exit, Error> {
    let env = Env {
        path: settings.doctor.path.clone(),
        docker_auth_config: settings
            .doctor
            .docker_auth_config
            .clone()
            .filter(|v| !v.trim().is_empty()),
        uid: rustix::process::getuid().as_raw(),
    };
    let findings = check_all(settings, &env, &o.sudoers);
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    let warnings = findings
        .iter()
        .filter(|f| f.level == Level::Warning)
        .count();
    if o.json {
        let list: Vec<serde_json::Value> = findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "check": f.check, "level": f.level.name(), "what": f.what,
                    "why": f.why, "fix": f.fix,
                })
            })
            .collect();
        let v = serde_json::json!({ "findings": list, "errors": errors, "warnings": warnings });
        outln!("{v}");
    } else {
        let mut text = String::new();
        for f in &findings {
            text.push_str(&format!("{:<10}{}\n", f.level.name(), sanitize(&f.what)));
            if !f.why.is_empty() {
                text.push_str(&format!("{:<10}why: {}\n", "", sanitize(&f.why)));
            }
            if let Some(fix) = &f.fix {
                text.push_str(&format!("{:<10}fix: {}\n", "", sanitize(fix)));
            }
        }
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        text.push_str(&format!(
            "{}, {}\n",
            plural(errors, "error"),
            plural(warnings, "warning")
        ));
        crate::output::write(text.as_bytes())?;
    }
    Ok(if errors > 0 { Exit::Failure } else { Exit::Ok })
}

/// What doctor checks besides the files (from [`Settings`] and the process).
struct Env {
    path: Option<std::ffi::OsString>,
    /// Wiped when dropped: it holds credentials.
    docker_auth_config: Option<zeroize::Zeroizing<String>>,
    uid: u32,
}

fn check_all(settings: &Settings, env: &Env, sudoers: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    config_checks(&settings.location, &mut out);
    auth_config_check(env, &mut out);
    let on_path = path_check(env, &mut out);
    sudo_check(sudoers, on_path.as_deref(), &mut out);
    copies_check(env, sudoers, &mut out);
    containers_check(settings, env, &mut out);
    vault_checks(settings, env, &mut out);
    out
}

/// Every `docker-credential-lockbox` that `docker` (PATH) or `sudo docker` (sudo's
/// secure_path) can run, in that order, one per file: a `cargo install` copy first on
/// PATH can shadow the package's /usr/bin one, and `sudo` then runs the other.
fn copies(env: &Env, sudoers: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut dirs: Vec<(PathBuf, &'static str)> = env
        .path
        .as_ref()
        .map(|p| std::env::split_paths(p).map(|d| (d, "PATH")).collect())
        .unwrap_or_default();
    if let Some(secure) = read_sudoers(sudoers).ok().and_then(|t| secure_path(&t)) {
        dirs.extend(secure.into_iter().map(|d| (d, "sudo's secure_path")));
    }
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut out = Vec::new();
    for (dir, via) in dirs {
        let p = dir.join(BIN);
        if !is_executable(&p) {
            continue;
        }
        let real = fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if seen.contains(&real) {
            continue;
        }
        seen.push(real);
        out.push((p, via));
    }
    out
}

/// The version line a copy prints (`docker-credential-lockbox version`), run with an
/// empty environment and a few seconds at most; `None` when it gives none.
fn version_of(program: &Path) -> Option<String> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .arg("version")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut text = String::new();
    child
        .stdout
        .take()?
        .take(4096)
        .read_to_string(&mut text)
        .ok()?;
    let line = text.lines().next()?.trim().to_owned();
    (!line.is_empty()).then_some(line)
}

fn copies_check(env: &Env, sudoers: &Path, out: &mut Vec<Finding>) {
    let found = copies(env, sudoers);
    if found.len() < 2 {
        return;
    }
    let described: Vec<(String, Option<String>)> = found
        .iter()
        .map(|(p, via)| {
            let version = version_of(p);
            (
                format!(
                    "{} ({}, on {via})",
                    p.display(),
                    version.as_deref().unwrap_or("no version line")
                ),
                version,
            )
        })
        .collect();
    let list: Vec<&str> = described.iter().map(|(d, _)| d.as_str()).collect();
    let first = &described[0].1;
    if first.is_some() && described.iter().all(|(_, v)| v == first) {
        out.push(finding(
            "helper-copies",
            Level::Ok,
            format!(
                "{} copies of {BIN}, all the same version: {}",
                list.len(),
                list.join("; ")
            ),
        ));
        return;
    }
    out.push(
        finding(
            "helper-copies",
            Level::Warning,
            format!("copies of {BIN} of different versions: {}", list.join("; ")),
        )
        .why(
            "docker runs the first one on PATH, sudo docker the first on secure_path, and other users and services their own PATH's: an older copy may not open a newer vault or talk to the agent",
        )
        .fix(
            "keep one: `cargo uninstall docker-credential-lockbox` removes the ~/.cargo/bin copy, `dpkg -S PATH` tells whether the package owns a copy; then `hash -r`",
        ),
    );
}

/// podman, skopeo and buildah ignore credsStore: they use lockbox when a registries.conf
/// (drop-in) says `credential-helpers = ["lockbox"]`, which `import` writes.
fn containers_check(settings: &Settings, env: &Env, out: &mut Vec<Finding>) {
    let tools: Vec<&str> = ["podman", "skopeo", "buildah"]
        .into_iter()
        .filter(|t| {
            env.path
                .as_ref()
                .is_some_and(|p| std::env::split_paths(p).any(|d| is_executable(&d.join(t))))
        })
        .collect();
    let home = settings.location.home.as_deref();
    let effective = crate::docker::containers::effective_helpers(home);
    match &effective {
        Some((file, helpers)) if helpers.iter().any(|h| h == "lockbox") => out.push(finding(
            "containers",
            Level::Ok,
            format!(
                "podman, skopeo and buildah use lockbox (credential-helpers in {})",
                file.display()
            ),
        )),
        _ if tools.is_empty() => {}
        _ => {
            let drop_in = home.map(crate::docker::containers::drop_in_path);
            let what = match &effective {
                Some((file, helpers)) => format!(
                    "{} installed and not using lockbox: credential-helpers is [{}] in {}",
                    tools.join(", "),
                    helpers.join(", "),
                    file.display()
                ),
                None => format!(
                    "{} installed and not using lockbox: no registries.conf names it",
                    tools.join(", ")
                ),
            };
            out.push(
                finding("containers", Level::Warning, what)
                    .why(
                        "they ignore credsStore: their login writes the password in plaintext into auth.json, and their pulls do not find what docker login stored (unless credHelpers in an auth file names lockbox per registry, docs/MIGRATION.md section 6)",
                    )
                    .fix(match drop_in.filter(|p| p.exists()) {
                        Some(p) => format!(
                            "edit {} to say credential-helpers = [\"lockbox\"]",
                            p.display()
                        ),
                        None => format!("{BIN} import   (writes ~/{})", crate::docker::containers::DROP_IN),
                    }),
            );
        }
    }
}

fn config_checks(location: &Location, out: &mut Vec<Finding>) {
    let dir = match location.docker_config_dir() {
        Ok(d) => d,
        Err(e) => {
            out.push(
                finding("docker-config", Level::Error, e.message())
                    .fix("set HOME or DOCKER_CONFIG"),
            );
            return;
        }
    };
    let path = dir.join("config.json");
    let shown = path.display().to_string();
    let config = match DockerConfig::read(&path) {
        Ok(c) => c,
        Err(e) => {
            out.push(
                finding("docker-config", Level::Error, e.message())
                    .why("Docker cannot read it either: every docker command fails or ignores it")
                    .fix(format!("repair or move away {shown}")),
            );
            return;
        }
    };
    creds_store_check(&config, &shown, out);
    cred_helpers_check(&config, &shown, out);
    plaintext_check(&config, &shown, out);
}

/// Whether Docker sends credentials to lockbox (`credsStore`).
fn creds_store_check(config: &DockerConfig, shown: &str, out: &mut Vec<Finding>) {
    let import = format!("{BIN} import");
    match config.creds_store() {
        Some("lockbox") => out.push(finding(
            "creds-store",
            Level::Ok,
            format!("credsStore is \"lockbox\" in {shown}"),
        )),
        Some(other) => {
            let what = known_other(other)
                .map_or_else(|| format!("docker-credential-{other}"), str::to_owned);
            out.push(
                finding(
                    "creds-store",
                    Level::Error,
                    format!("credsStore is \"{other}\" in {shown}, not \"lockbox\""),
                )
                .why(format!(
                    "Docker keeps and reads credentials with {what}; lockbox is never asked"
                ))
                .fix(format!(
                    "{BIN} import --from-helper {other}   (copies its entries into the vault and sets credsStore)"
                )),
            );
        }
        None if config.cred_helpers().iter().any(|(_, h)| h == "lockbox") => out.push(
            finding(
                "creds-store",
                Level::Warning,
                format!("no credsStore in {shown}; credHelpers sends some registries to lockbox"),
            )
            .why("docker login to any other registry writes its password base64-encoded into config.json")
            .fix(format!("{import}   (sets credsStore for every registry)")),
        ),
        None => out.push(
            finding(
                "creds-store",
                Level::Error,
                format!("no credsStore in {shown}"),
            )
            .why(
                "docker login writes passwords base64-encoded into config.json (or Docker picks \
                     pass/secretservice on its own when their helper is installed)",
            )
            .fix(format!(
                "{import}   (moves any plaintext auths and sets credsStore)"
            )),
        ),
    }
}

/// Registries `credHelpers` sends to another helper.
fn cred_helpers_check(config: &DockerConfig, shown: &str, out: &mut Vec<Finding>) {
    for (registry, helper) in config.cred_helpers() {
        if helper == "lockbox" {
            continue;
        }
        let what = known_other(&helper)
            .map_or_else(|| format!("docker-credential-{helper}"), str::to_owned);
        out.push(
            finding(
                "cred-helpers",
                Level::Warning,
                format!("credHelpers sends {registry} to \"{helper}\""),
            )
            .why(format!(
                "for that registry {what} wins over credsStore, so lockbox is not used there"
            ))
            .fix(format!(
                "{BIN} import --from-helper {helper}, then delete \"{registry}\" from credHelpers in {shown}"
            )),
        );
    }
}

/// Plaintext credentials left in `auths`, and entries that cannot be read.
fn plaintext_check(config: &DockerConfig, shown: &str, out: &mut Vec<Finding>) {
    let import = format!("{BIN} import");
    let scan = config.scan();
    if !scan.found.is_empty() {
        let names: Vec<&str> = scan.found.iter().map(|f| f.server.as_str()).collect();
        out.push(
            finding(
                "plaintext-auths",
                Level::Error,
                format!(
                    "{} plaintext credential(s) in the auths of {shown}: {}",
                    names.len(),
                    names.join(", ")
                ),
            )
            .why(
                "anyone who can read the file or a backup of it has them; Docker stops reading \
                 them once a helper is set, but never deletes them",
            )
            .fix(import.clone()),
        );
    } else {
        out.push(finding(
            "plaintext-auths",
            Level::Ok,
            format!("no plaintext credentials in {shown}"),
        ));
    }
    if !scan.invalid.is_empty() {
        let names: Vec<String> = scan
            .invalid
            .iter()
            .map(|(s, why)| format!("{s} ({why})"))
            .collect();
        out.push(
            finding(
                "plaintext-auths",
                Level::Warning,
                format!("auths entries that cannot be read: {}", names.join(", ")),
            )
            .why("they may still hold a secret in some form; import cannot move them")
            .fix(format!(
                "edit {shown} and remove them (or docker logout each)"
            )),
        );
    }
}

fn auth_config_check(env: &Env, out: &mut Vec<Finding>) {
    let Some(value) = &env.docker_auth_config else {
        return;
    };
    // Only the registry names are read (the values, which hold the secrets, are
    // skipped by the parser and never kept or shown).
    #[derive(serde::Deserialize)]
    struct Names {
        auths: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
    }
    let registries: Vec<String> = serde_json::from_str::<Names>(value.as_str())
        .map(|n| n.auths.into_keys().collect())
        .unwrap_or_default();
    let which = if registries.is_empty() {
        "(no registries could be read from it)".to_owned()
    } else {
        format!("for {}", registries.join(", "))
    };
    out.push(
        finding(
            "docker-auth-config",
            Level::Warning,
            format!("DOCKER_AUTH_CONFIG is set in this environment {which}"),
        )
        .why(
            "Docker CLI 28.3 and newer answer every read of those registries from it, before any \
             credential helper, so lockbox is not asked for them (the GitLab runner sets it for jobs)",
        )
        .fix("unset DOCKER_AUTH_CONFIG (in GitLab CI: remove the CI/CD variable) and keep those credentials in the vault"),
    );
}

/// The first `docker-credential-lockbox` on `PATH` (the lookup Docker does), reported.
fn path_check(env: &Env, out: &mut Vec<Finding>) -> Option<PathBuf> {
    let found = env.path.as_ref().and_then(|p| {
        std::env::split_paths(p)
            .map(|d| d.join(BIN))
            .find(|p| is_executable(p))
    });
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| fs::canonicalize(p).ok());
    match &found {
        None => out.push(
            finding("helper-on-path", Level::Error, format!("{BIN} is not on PATH"))
                .why("Docker runs docker-credential-<credsStore> from PATH; without it every docker login, pull and push fails")
                .fix(match &me {
                    Some(me) => format!("sudo install -m 755 {} /usr/local/bin/{BIN}", me.display()),
                    None => format!("install {BIN} into /usr/local/bin"),
                }),
        ),
        Some(p) => {
            let real = fs::canonicalize(p).ok();
            if me.is_some() && real != me {
                out.push(
                    finding(
                        "helper-on-path",
                        Level::Warning,
                        format!(
                            "PATH finds {} first, not this binary ({})",
                            p.display(),
                            me.as_deref().unwrap_or(Path::new("?")).display()
                        ),
                    )
                    .why("Docker runs the one on PATH, which may be an older build")
                    .fix(format!("{} version; remove or replace the one you do not want", p.display())),
                );
            } else {
                out.push(finding(
                    "helper-on-path",
                    Level::Ok,
                    format!("{BIN} on PATH is {}", p.display()),
                ));
            }
        }
    }
    found
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `Defaults secure_path=…` in a sudoers text: the last one wins, as in sudo. Lines
/// may quote the value; `Defaults:user` and other qualified forms are ignored.
pub fn secure_path(sudoers: &str) -> Option<Vec<PathBuf>> {
    let mut found = None;
    for line in sudoers.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("Defaults") else {
            continue;
        };
        if !rest.starts_with([' ', '\t']) {
            continue;
        }
        let rest = rest.trim_start();
        let Some(value) = rest.strip_prefix("secure_path") else {
            continue;
        };
        let Some(value) = value.trim_start().strip_prefix('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        found = Some(
            value
                .split(':')
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .collect(),
        );
    }
    found
}

/// sudoers' text, through the one open for inputs (a FIFO there must not hang
/// doctor), at most 1 MiB: far above any real sudoers.
fn read_sudoers(sudoers: &Path) -> std::io::Result<String> {
    let f = crate::secret_io::open(sudoers, crate::secret_io::Accept::RegularFile)?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(f, 1 << 20), &mut text)?;
    Ok(text)
}

fn sudo_check(sudoers: &Path, on_path: Option<&Path>, out: &mut Vec<Finding>) {
    let shown = sudoers.display();
    let text = match read_sudoers(sudoers) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            out.push(finding(
                "sudo-secure-path",
                Level::Ok,
                format!("no {shown}: sudo is not set up here"),
            ));
            return;
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            out.push(
                finding(
                    "sudo-secure-path",
                    Level::Unchecked,
                    format!("sudo's secure_path cannot be checked as this user: {shown} is readable only by root"),
                )
                .why(format!("`sudo docker …` finds helpers only on secure_path; {BIN} must be in one of its directories"))
                .fix("sudo grep secure_path /etc/sudoers /etc/sudoers.d/*   (or: sudo docker-credential-lockbox doctor)"),
            );
            return;
        }
        Err(e) => {
            out.push(finding(
                "sudo-secure-path",
                Level::Unchecked,
                format!(
                    "cannot read {shown}: {}",
                    crate::secret_io::reason("cannot open it", &e)
                ),
            ));
            return;
        }
    };
    let Some(dirs) = secure_path(&text) else {
        out.push(finding(
            "sudo-secure-path",
            Level::Ok,
            format!("{shown} sets no secure_path: sudo keeps PATH"),
        ));
        return;
    };
    let joined = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    if let Some(d) = dirs.iter().find(|d| is_executable(&d.join(BIN))) {
        out.push(finding(
            "sudo-secure-path",
            Level::Ok,
            format!("{BIN} is in sudo's secure_path ({})", d.display()),
        ));
    } else {
        out.push(
            finding(
                "sudo-secure-path",
                Level::Warning,
                format!("{BIN} is not in sudo's secure_path ({joined})"),
            )
            .why("`sudo docker login/pull/push` cannot run the helper (and uses root's ~/.docker/config.json)")
            .fix(match on_path {
                Some(p) => format!("sudo ln -s {} /usr/local/bin/{BIN}   (or install the .deb)", p.display()),
                None => format!("install {BIN} into /usr/local/bin or /usr/bin"),
            }),
        );
    }
}

fn vault_checks(settings: &Settings, env: &Env, out: &mut Vec<Finding>) {
    let location = &settings.location;
    let path = match location.resolve() {
        Ok(p) => p,
        Err(e) => {
            out.push(finding("vault", Level::Error, e.message()));
            return;
        }
    };
    let shown = path.vault.display().to_string();
    let meta = match fs::metadata(&path.vault) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let named = location.vault.is_some();
            out.push(
                finding("vault", Level::Error, format!("no vault at {shown}"))
                    .why(if named {
                        "LOCKBOX_VAULT names a file that does not exist (a typo?): nothing can be stored or read"
                    } else {
                        "docker login cannot store anything until the vault exists"
                    })
                    .fix(if named {
                        "fix LOCKBOX_VAULT, or create it: docker-credential-lockbox init --passphrase".to_owned()
                    } else {
                        format!("{BIN} init --passphrase   (or --recipient age1…)")
                    }),
            );
            return;
        }
        Err(e) => {
            out.push(finding(
                "vault",
                Level::Error,
                Error::io("read", &path.vault, e).message(),
            ));
            return;
        }
    };
    let mut modes_ok = true;
    if meta.uid() != env.uid {
        modes_ok = false;
        out.push(
            finding(
                "vault-modes",
                Level::Error,
                format!(
                    "{shown} belongs to uid {}, not to you (uid {})",
                    meta.uid(),
                    env.uid
                ),
            )
            .why("another user can replace your credentials, or you cannot write them")
            .fix(format!("sudo chown {} {shown}", env.uid)),
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        modes_ok = false;
        out.push(
            finding("vault-modes", Level::Error, format!("{shown} has mode {mode:04o}"))
                .why("others can read it: usernames and server URLs are plain, and a weak passphrase can be attacked offline")
                .fix(format!("chmod 600 {shown}")),
        );
    }
    if let Some(dir) = path.vault.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dm) = fs::metadata(dir)
    {
        let dmode = dm.permissions().mode() & 0o777;
        if dmode & 0o022 != 0 {
            modes_ok = false;
            out.push(
                finding("vault-modes", Level::Error, format!("{} has mode {dmode:04o}", dir.display()))
                    .why("others can create or replace files beside the vault (its lock, its replacement)")
                    .fix(format!("chmod 700 {}", dir.display())),
            );
        }
    }
    let vault = match path.read_existing() {
        Ok(v) => v,
        Err(e) => {
            out.push(
                finding("vault", Level::Error, e.message())
                    .why("no credential can be read or stored until it opens"),
            );
            return;
        }
    };
    out.push(finding(
        "vault",
        Level::Ok,
        format!(
            "vault {shown}: {} entries, {} slot(s){}",
            vault.entries().len(),
            vault.slots().len(),
            if modes_ok { ", modes ok" } else { "" }
        ),
    ));
    contents_checks(&vault, settings, out);
}

/// What the vault holds and whether it opens: expiries, the key, the sources.
fn contents_checks(vault: &crate::vault::Vault, settings: &Settings, out: &mut Vec<Finding>) {
    expiry_check(vault, settings, out);
    key_check(vault, settings, out);
    sources_check(vault, settings, out);
}

/// Entries that have expired, expire within the warning window, or whose rotation
/// was interrupted: warnings (the credential still works until its date, or the next
/// `rotate` finishes the rotation).
fn expiry_check(vault: &crate::vault::Vault, settings: &Settings, out: &mut Vec<Finding>) {
    use crate::vault::meta::{Standing, rfc3339, standing, unix_now};
    let (days, _) = settings.expiry_warn_days();
    let now = unix_now();
    for (server, e) in vault.entries() {
        let when = e.meta.expires_at.map(rfc3339).unwrap_or_default();
        let fix = if e.meta.rotation.is_some() {
            format!("{BIN} rotate {server}")
        } else {
            format!("docker login {server}   (then {BIN} expiry set {server} DATE)")
        };
        match standing(e.meta.expires_at, now, days * 86_400) {
            Standing::Fine => {}
            Standing::Expiring(left) => out.push(
                finding(
                    "expiry",
                    Level::Warning,
                    format!("{server}: the credential expires at {when} (in {} days)", left / 86_400),
                )
                .why(format!("the registry refuses it from then on; warned {days} days before (LOCKBOX_EXPIRY_WARN_DAYS)"))
                .fix(fix.clone()),
            ),
            Standing::Expired(_) => out.push(
                finding("expiry", Level::Warning, format!("{server}: the credential expired at {when}"))
                    .why("the registry will likely refuse it: pulls and pushes fail as unauthorized")
                    .fix(fix.clone()),
            ),
        }
        if e.meta.pending.is_some() {
            out.push(
                finding("rotation-pending", Level::Warning, format!("{server}: a rotation was interrupted"))
                    .why("the registry may already hold the new secret, which get does not answer until the rotation is finished")
                    .fix(format!("{BIN} rotate {server}")),
            );
        }
    }
}

fn key_check(vault: &crate::vault::Vault, settings: &Settings, out: &mut Vec<Finding>) {
    // What `get` would use: the key variables, then the agent; never a prompt. Tried,
    // not only described (a passphrase file costs one Argon2id run).
    let agent = Agent::for_requests(settings);
    let socket = agent.socket().display().to_string();
    let list = keysource::sources(
        &settings.keys,
        &KeyFlags::default(),
        Some((agent, AgentUse::Verified)),
    );
    let list: Vec<_> = list
        .into_iter()
        .filter(|s| s.name() != "terminal")
        .collect();
    match keysource::check(vault, &list) {
        Ok(name) if name == "agent" => {
            let held = Agent::for_requests(settings).status(&vault.public().to_string());
            let what = match held {
                Ok(Some(h)) => format!(
                    "unlocked by the agent (pid {}) for {}",
                    h.pid,
                    humantime::format_duration(Duration::from_secs(h.expires_in_secs))
                ),
                _ => "unlocked by the agent".to_owned(),
            };
            out.push(finding("unlocked", Level::Ok, what));
        }
        Ok(name) => out.push(finding(
            "unlocked",
            Level::Ok,
            format!("{name} opens the vault"),
        )),
        Err((_, Error::Locked)) => out.push(
            finding(
                "unlocked",
                Level::Warning,
                format!(
                    "the vault is locked: no key variable is set and no agent holds its key (socket {socket})"
                ),
            )
            .why("get fails at once with \"lockbox is locked\" until the key is available (store, erase and list still work)")
            .fix(format!("{BIN} unlock   (or set LOCKBOX_IDENTITY_FILE for unattended use)")),
        ),
        Err((name, e)) => out.push(
            finding(
                "unlocked",
                Level::Error,
                format!(
                    "{} fails: {}",
                    name.unwrap_or_else(|| "the key source".to_owned()),
                    e.message()
                ),
            )
            .why("get tries it and fails, so Docker pulls anonymously or refuses")
            .fix(format!("fix or unset it; {BIN} status --check shows every source")),
        ),
    }
}

/// Each sealed source: its definition verifies (with a key at hand without a prompt,
/// as `get` finds one), its parameters and secret pass its kind's checks, an `exec`
/// program exists and is executable, and a plain-http endpoint override (loopback
/// only, a test or a local proxy) is pointed out.
fn sources_check(vault: &crate::vault::Vault, settings: &Settings, out: &mut Vec<Finding>) {
    use crate::sources;
    let found: Vec<_> = vault
        .entries()
        .iter()
        .filter_map(|(k, e)| e.meta.source.as_ref().map(|d| (k, e, d)))
        .collect();
    if found.is_empty() {
        return;
    }
    let public_key = vault.public().to_string();
    if !settings.trust().allows(&public_key) {
        out.push(
            finding("source-trust", Level::Error, format!("this vault's key {public_key} is not trusted to run sources here"))
                .why("get refuses every source of a vault whose key is not pinned on this machine (a whole vault file can be forged)")
                .fix(format!("compare the key with the one you expect ({BIN} status), then {BIN} source trust   (or set LOCKBOX_TRUSTED_VAULT_KEYS)")),
        );
    }
    // Never a prompt, never an agent started; a failing key source was reported by
    // the key check above.
    let opener = keysource::for_get(vault, settings).ok();
    for (server, e, def) in found {
        let kind = def.kind.as_str();
        let main = match super::source_standing(opener.as_deref(), server, e) {
            super::SourceStanding::Tampered => finding("source", Level::Error, crate::messages::source_tampered(server))
                .why("a source's definition says what runs or where its secret goes; get refuses one that does not verify")
                .fix(format!("{BIN} source remove {server}   (then add it again)")),
            super::SourceStanding::Locked => {
                let params = match kind {
                    "exec" => sources::exec::check(&def.params),
                    _ => Ok(()),
                };
                match params {
                    Ok(()) => finding("source", Level::Unchecked, format!("{server}: {kind} source, its definition not verified (the vault is locked)"))
                        .fix(format!("{BIN} unlock, then {BIN} doctor")),
                    Err(t) => finding("source", Level::Error, format!("{server}: {t}"))
                        .fix(format!("{BIN} source add {kind} --registry {server} …   (again)")),
                }
            }
            super::SourceStanding::Verified => {
                let checked = match opener.as_deref().map(|o| e.open_source(server, o)) {
                    Some(Ok(Some((d, secret)))) => sources::check(&d.kind, &d.params, &secret),
                    // The agent verifies but never hands a source's secret out: the
                    // parameters alone are checked.
                    Some(Err(Error::SourceNotStatic(_))) if kind == "exec" => {
                        sources::exec::check(&def.params)
                    }
                    Some(Err(Error::SourceNotStatic(_)) | Ok(None)) | None => Ok(()),
                    Some(Err(e)) => Err(e.message()),
                };
                match checked {
                    Ok(()) => finding("source", Level::Ok, format!("{server}: {kind} source verified")),
                    Err(t) => finding("source", Level::Error, format!("{server}: {t}"))
                        .why("get cannot mint from it")
                        .fix(format!("{BIN} source add {kind} --registry {server} …   (again)")),
                }
            }
        };
        out.push(main);
        source_extras(server, def, out);
    }
}

/// The parameters of a source that hold a URL.
const URL_PARAMS: &[&str] = &[
    "endpoint",
    "sts-endpoint",
    "token-uri",
    "authority",
    "token-url",
];

/// What else a source's definition asks for: a plain-http URL, an `exec` program.
fn source_extras(server: &str, def: &crate::vault::source::SourceDef, out: &mut Vec<Finding>) {
    for name in URL_PARAMS {
        if let Some(url) = def.params.get(*name).filter(|u| u.starts_with("http://")) {
            out.push(
                finding("source-endpoint", Level::Warning, format!("{server}: the source's {name} is plain HTTP: {url}"))
                    .why("allowed only to a loopback address (a test server or a local proxy); anything on the path between sees the token"),
            );
        }
    }
    if def.kind != "exec" {
        return;
    }
    if let Ok(argv) = crate::sources::exec::command_of(&def.params) {
        let program = Path::new(&argv[0]);
        let uid = rustix::process::getuid().as_raw();
        if let Some(why) = replaceable(program, uid) {
            out.push(
                finding(
                    "source-program",
                    Level::Warning,
                    format!("{server}: the source's program {} can be replaced by someone else: {why}", program.display()),
                )
                .why("whoever replaces it runs as you at the next get, with the source's secret on its stdin")
                .fix("keep the programs of exec sources in directories only root (or you) can write, such as /usr/local/bin"),
            );
        } else if is_executable(program) {
            out.push(finding(
                "source-program",
                Level::Ok,
                format!("{server}: runs {}", program.display()),
            ));
        } else {
            out.push(
                finding(
                    "source-program",
                    Level::Error,
                    format!(
                        "{server}: the source's program {} is missing or not executable",
                        program.display()
                    ),
                )
                .why("get runs it to mint the credential and fails until it is back")
                .fix(format!(
                    "reinstall it, or {BIN} source add exec --registry {server} -- COMMAND …"
                )),
            );
        }
    }
}

/// Why someone other than root and `uid` could replace `program`, if they could: the
/// file (through links) or a directory on the way to it, as named or as resolved, is
/// owned by another user, or writable by group or others (a sticky directory, such as
/// /tmp, keeps others from replacing what they do not own).
fn replaceable(program: &Path, uid: u32) -> Option<String> {
    let mut places: Vec<PathBuf> = vec![program.to_owned()];
    let resolved = fs::canonicalize(program).ok();
    for p in std::iter::once(program).chain(resolved.as_deref()) {
        places.extend(p.ancestors().skip(1).map(Path::to_owned));
    }
    places.extend(resolved);
    places.dedup();
    places.into_iter().find_map(|p| {
        let m = fs::metadata(&p).ok()?;
        let mode = m.permissions().mode();
        let sticky = m.is_dir() && mode & 0o1000 != 0;
        if m.uid() != 0 && m.uid() != uid {
            Some(format!("{} belongs to uid {}", p.display(), m.uid()))
        } else if mode & 0o022 != 0 && !sticky {
            Some(format!("{} has mode {:04o}", p.display(), mode & 0o7777))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_endpoints_and_missing_programs_are_pointed_out() {
        use crate::vault::source::SourceDef;
        let def = |kind: &str, params: &[(&str, &str)]| SourceDef {
            kind: kind.into(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            mac: [0; 32],
        };
        let mut out = Vec::new();
        let aws = def(
            "aws-ecr",
            &[
                ("region", "eu-west-1"),
                ("endpoint", "http://127.0.0.1:5000"),
                ("sts-endpoint", "https://sts.example"),
            ],
        );
        source_extras("r.example", &aws, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            (out[0].check, out[0].level),
            ("source-endpoint", Level::Warning)
        );
        assert_eq!(
            out[0].what,
            "r.example: the source's endpoint is plain HTTP: http://127.0.0.1:5000"
        );
        let mut out = Vec::new();
        let oauth = def("oauth2", &[("token-url", "http://[::1]:8080/token")]);
        source_extras("o.example", &oauth, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        // A program others could replace is pointed out; a root-owned one is not.
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("mint");
        fs::write(&tool, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o777)).unwrap();
        let uid = rustix::process::getuid().as_raw();
        assert!(replaceable(&tool, uid).unwrap().contains("has mode 0777"));
        fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(replaceable(&tool, uid).unwrap().contains("has mode 0777"));
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        // The temporary directory's own parent (/tmp) is sticky: not a way in.
        assert_eq!(replaceable(&tool, uid), None);
        assert_eq!(replaceable(Path::new("/bin/sh"), uid), None);
        let mut out = Vec::new();
        let exec = def("exec", &[("command", r#"["/nonexistent/mint"]"#)]);
        source_extras("e.example", &exec, &mut out);
        assert_eq!(
            (out[0].check, out[0].level),
            ("source-program", Level::Error)
        );
    }

    #[test]
    fn secure_path_last_plain_defaults_line_wins() {
        let text = "# comment\nDefaults\tenv_reset\nDefaults secure_path=\"/a:/b\"\n\
                    Defaults:alice secure_path=/x\nDefaults   secure_path = /usr/local/bin:/usr/bin\n";
        assert_eq!(
            secure_path(text),
            Some(vec![
                PathBuf::from("/usr/local/bin"),
                PathBuf::from("/usr/bin")
            ])
        );
        assert_eq!(secure_path("Defaults env_reset\n"), None);
    }
}
