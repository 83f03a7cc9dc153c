//! `import`: move the plaintext auths of Docker's config.json (and, optionally, another
//! helper's entries) into the vault, then scrub them from config.json and set
//! `credsStore`. Which copy of a registry wins is decided by the pure [`plan`].
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use age::secrecy::{ExposeSecret, SecretString};
use clap::Args;
use zeroize::Zeroizing;

use super::sanitize_lines;
use crate::agent::client::Agent;
use crate::config::Settings;
use crate::docker::config_json::{DockerConfig, Found, Scan};
use crate::error::{Error, Usage};
use crate::exit::Exit;
use crate::file::{Location, VaultPath};
use crate::keysource::{self, AgentUse, KeyFlags, NeverPrompt};
use crate::messages;
use crate::vault::Vault;

/// Largest output read from another helper (`import --from-helper`).
const MAX_HELPER_OUTPUT: usize = 4 << 20;
/// How long one action of another helper may take (`import --from-helper`): generous,
/// as `pass` may be waiting for a person at a pinentry.
const HELPER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `import`
#[derive(Debug, Args)]
pub struct Opts {
    /// The Docker config to read and rewrite (default: $DOCKER_CONFIG/config.json,
    /// else ~/.docker/config.json).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Also copy every entry out of another credential helper
    /// (`docker-credential-NAME list` and `get`), e.g. pass or secretservice.
    #[arg(long, value_name = "NAME")]
    from_helper: Option<String>,
    /// Show what would be imported (registries and usernames, never secrets) and
    /// change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Leave `credsStore` as it is, and do not set up podman, skopeo and buildah.
    #[arg(long)]
    no_set_store: bool,
    /// Go on although the config names another credsStore or credHelpers, or has
    /// entries that cannot be read (those are left as they are).
    #[arg(long)]
    force: bool,
}

/// The home directory whose containers tools `import` sets up: not with
/// `--no-set-store`, not for a `--config` other than the user's own, not without `HOME`.
fn containers_home(o: &Opts, location: &Location) -> Option<PathBuf> {
    if o.no_set_store || o.config.is_some() {
        return None;
    }
    location.home.clone()
}

fn config_path(explicit: &Option<PathBuf>, location: &Location) -> Result<PathBuf, Error> {
    match explicit {
        Some(p) => Ok(p.clone()),
        None => Ok(location.docker_config_dir()?.join("config.json")),
    }
}

/// `import`: plaintext auths (and, optionally, another helper's entries) into the
/// vault in one locked write, read back and verified, then config.json rewritten
/// without them and with `credsStore` set.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit, Error> {
    let location = &settings.location;
    let path = location.resolve()?;
    let vault = path.read_existing()?;
    let mut config = DockerConfig::read(&config_path(&o.config, location)?)?;
    // A config named with --config must exist: a mistyped path would otherwise be
    // created (with its directory) and the import reported done, while the real file
    // keeps its plaintext. Only the default config.json may be new.
    if o.config.is_some() && !config.existed {
        return Err(config_error(
            &config,
            messages::CONFIG_NAMED_MISSING.to_owned(),
        ));
    }
    let cfg_path = config.path.display().to_string();
    let scan = config.scan();
    // Only what came from config.json is scrubbed from it.
    let scrub: Vec<String> = scan.found.iter().map(|f| f.server.clone()).collect();
    if !o.force {
        refuse_other_routes(&o, &config, &scan)?;
    }
    let from_helper = match &o.from_helper {
        Some(name) => Some(FromHelper {
            name: name.as_str(),
            found: read_helper(name)?,
        }),
        None => None,
    };
    let in_vault: BTreeSet<&str> = vault.entries().keys().map(String::as_str).collect();
    let plan = plan(scan.found, from_helper, &in_vault, config.creds_store());
    let found = &plan.rows;
    let to_store: Vec<&Found> = plan.to_store().collect();
    let out = plan_lines(found);
    let set_store =
        !o.no_set_store && config.creds_store() != Some(crate::docker::config_json::STORE_NAME);

    if o.dry_run {
        let containers = containers_home(&o, location)
            .map(|h| crate::docker::containers::drop_in_path(&h))
            .filter(|p| !p.exists());
        let text = dry_run_text(
            &cfg_path,
            &path,
            &out,
            scrub.len(),
            set_store,
            containers.as_deref(),
        );
        crate::out!("{}", sanitize_lines(&text));
        return Ok(Exit::Ok);
    }

    if !to_store.is_empty() {
        path.update(|v| {
            for f in &to_store {
                v.store(&f.server, &f.username, &f.secret)?;
            }
            Ok(((), true))
        })?;
        verify_imported(&path.read_existing()?, &to_store, settings)?;
    }
    for server in &scrub {
        config.scrub(server);
    }
    if set_store {
        config.set_store();
    }
    let changed = config.is_changed();
    if changed {
        config.write()?;
    }
    // After config.json: podman, skopeo and buildah ignore credsStore.
    let containers = match containers_home(&o, location) {
        Some(home) => Some(crate::docker::containers::set_up(&home)?),
        None => None,
    };
    let summary = summary(
        &cfg_path,
        &path,
        &out,
        to_store.len(),
        changed,
        set_store,
        containers,
    );
    crate::out!("{}", sanitize_lines(&summary));
    Ok(Exit::Ok)
}

/// Refuses an import that would leave credentials routed past lockbox, or entries it
/// cannot read (`--force` goes on anyway).
fn refuse_other_routes(o: &Opts, config: &DockerConfig, scan: &Scan) -> Result<(), Error> {
    if let Some(store) = config.creds_store()
        && store != crate::docker::config_json::STORE_NAME
        && Some(store) != o.from_helper.as_deref()
    {
        return Err(config_error(config, messages::import_other_store(store)));
    }
    // Registries routed to lockbox itself (as podman and skopeo need) are fine.
    let mut helpers = config.cred_helpers();
    helpers.retain(|(_, h)| h != crate::docker::config_json::STORE_NAME);
    if !helpers.is_empty() {
        let list: Vec<String> = helpers.iter().map(|(r, h)| format!("{r} → {h}")).collect();
        return Err(config_error(
            config,
            messages::import_cred_helpers(&list.join(", ")),
        ));
    }
    if !scan.invalid.is_empty() {
        let list: Vec<String> = scan
            .invalid
            .iter()
            .map(|(r, why)| format!("{r}: {why}"))
            .collect();
        return Err(config_error(
            config,
            messages::import_invalid(&list.join("; ")),
        ));
    }
    Ok(())
}

/// One line per credential found, with what is done with it.
fn plan_lines(found: &[(Found, Decision)]) -> String {
    let mut out = String::new();
    for (f, decision) in found {
        out.push_str(&match decision {
            Decision::Duplicate => format!("  keep   {} (found twice; the first wins)\n", f.server),
            Decision::KeepVault => format!("  keep   {} (already in the vault)\n", f.server),
            Decision::Update => format!("  update {} as {}\n", f.server, f.username),
            Decision::Import => format!("  import {} as {}\n", f.server, f.username),
        });
    }
    out
}

/// `import --dry-run`: the plan, nothing written.
fn dry_run_text(
    cfg_path: &str,
    path: &VaultPath,
    out: &str,
    scrub: usize,
    set_store: bool,
    containers: Option<&std::path::Path>,
) -> String {
    let mut plan = format!("Plan for {cfg_path} → {}:\n", path.vault.display());
    plan.push_str(out);
    if scrub > 0 {
        plan.push_str(&format!(
            "  remove the plaintext of {} entr{} from config.json\n",
            scrub,
            plural_y(scrub)
        ));
    }
    if set_store {
        plan.push_str("  set \"credsStore\": \"lockbox\"\n");
    }
    if let Some(p) = containers {
        plan.push_str(&format!(
            "  {}\n",
            messages::containers_plan(&p.display().to_string())
        ));
    }
    if out.is_empty() && !set_store && containers.is_none() {
        plan.push_str("  nothing to do\n");
    }
    plan
}

/// What `import` did.
fn summary(
    cfg_path: &str,
    path: &VaultPath,
    out: &str,
    stored: usize,
    changed: bool,
    set_store: bool,
    containers: Option<crate::docker::containers::SetUp>,
) -> String {
    let mut summary = String::new();
    if stored > 0 {
        summary.push_str(&format!(
            "Imported {} credential{} into {}:\n{out}",
            stored,
            if stored == 1 { "" } else { "s" },
            path.vault.display()
        ));
    } else if !out.is_empty() {
        summary.push_str(out);
    }
    if changed {
        summary.push_str(&format!(
            "Rewrote {cfg_path}: no plaintext credentials left{}.\n",
            if set_store {
                ", credsStore is lockbox"
            } else {
                ""
            }
        ));
    }
    use crate::docker::containers::SetUp;
    let wrote_drop_in = match containers {
        Some(SetUp::Wrote(p)) => {
            summary.push_str(&messages::containers_set_up(&p.display().to_string()));
            summary.push('\n');
            true
        }
        Some(SetUp::Other(p)) => {
            summary.push_str(&messages::containers_other(&p.display().to_string()));
            summary.push('\n');
            false
        }
        _ => false,
    };
    if !changed && stored == 0 && !wrote_drop_in {
        summary.push_str("Nothing to do: no plaintext credentials and credsStore already set.\n");
    }
    summary
}

/// Another helper's entries, read by `--from-helper NAME`.
pub struct FromHelper<'a> {
    /// The helper's suffix (`pass` for `docker-credential-pass`).
    pub name: &'a str,
    /// Its entries, in its `list` order.
    pub found: Vec<Found>,
}

/// What happens to one registry found in config.json or the helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not in the vault: stored.
    Import,
    /// In the vault, and this copy is the one Docker has been using: replaces it.
    Update,
    /// In the vault, which Docker already reads (`credsStore` is lockbox): kept.
    KeepVault,
    /// A second copy of a registry already decided: the first wins.
    Duplicate,
}

/// The import plan: every candidate with its decision, in the order considered.
pub struct Plan {
    /// Each candidate and what happens to it.
    pub rows: Vec<(Found, Decision)>,
}

impl Plan {
    /// The candidates to write into the vault.
    pub fn to_store(&self) -> impl Iterator<Item = &Found> {
        self.rows
            .iter()
            .filter(|(_, d)| matches!(d, Decision::Import | Decision::Update))
            .map(|(f, _)| f)
    }
}

/// Which copy of a registry wins (pure; `tests` below pin every rule):
///
/// 1. The first copy of a registry wins. With `credsStore` naming the helper, Docker
///    has been reading the helper, and plaintext beside it is a leftover: the
///    helper's copies come first. Otherwise the plaintext is what Docker has been
///    using, and comes first.
/// 2. When Docker already reads from lockbox (`credsStore` is lockbox), the vault is
///    the live copy and keeps its entry over a stale plaintext one.
/// 3. Otherwise a copy replaces the vault's entry (after `export --to-config` and a new
///    `docker login`, the newer password would else be scrubbed and lost).
pub fn plan(
    found_in_config: Vec<Found>,
    from_helper: Option<FromHelper<'_>>,
    vault_entries: &BTreeSet<&str>,
    creds_store: Option<&str>,
) -> Plan {
    let mut candidates = found_in_config;
    if let Some(helper) = from_helper {
        let mut from = helper.found;
        if creds_store == Some(helper.name) {
            from.append(&mut candidates);
            candidates = from;
        } else {
            candidates.append(&mut from);
        }
    }
    let vault_is_live = creds_store == Some(crate::docker::config_json::STORE_NAME);
    let mut seen = BTreeSet::new();
    let rows = candidates
        .into_iter()
        .map(|f| {
            let in_vault = vault_entries.contains(f.server.as_str());
            let decision = if !seen.insert(f.server.clone()) {
                Decision::Duplicate
            } else if in_vault && vault_is_live {
                Decision::KeepVault
            } else if in_vault {
                Decision::Update
            } else {
                Decision::Import
            };
            (f, decision)
        })
        .collect();
    Plan { rows }
}

fn plural_y(n: usize) -> &'static str {
    if n == 1 { "y" } else { "ies" }
}

fn config_error(config: &DockerConfig, reason: String) -> Error {
    Error::Config {
        path: config.path.clone(),
        reason,
    }
}

/// Checks that every stored entry is in the file as written, and, when a key is at
/// hand without prompting (identity variable or agent), that it decrypts to the secret.
fn verify_imported(vault: &Vault, stored: &[&Found], settings: &Settings) -> Result<(), Error> {
    let list = keysource::sources(
        &settings.keys,
        &KeyFlags::default(),
        Some((Agent::for_requests(settings), AgentUse::Verified)),
    );
    let opener = keysource::open_entries(vault, &list, &NeverPrompt)
        .ok()
        .map(|(o, _)| o);
    for f in stored {
        let ok = match vault.entries().get(&f.server) {
            Some(e) if e.username == f.username => match &opener {
                Some(o) => e
                    .open(&f.server, o.as_ref())
                    .is_ok_and(|s| s.expose_secret() == f.secret.expose_secret()),
                None => true,
            },
            _ => false,
        };
        if !ok {
            return Err(Error::ImportVerifyFailed(f.server.clone()));
        }
    }
    Ok(())
}

/// Reads every entry out of `docker-credential-NAME` (`list`, then `get` for each).
fn read_helper(name: &str) -> Result<Vec<Found>, Error> {
    if name.is_empty() || name.contains('/') || name == crate::docker::config_json::STORE_NAME {
        return Err(Usage::BadHelperName(name.to_owned()).into());
    }
    let program = format!("docker-credential-{name}");
    let failed = |action, detail: &str| Error::HelperFailed {
        program: program.clone(),
        action,
        detail: detail.to_owned(),
    };
    let list = run_helper(&program, "list", b"")?.map_err(|f| f.into_error(&program, "list"))?;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&list)
        .map_err(|_| failed("list", "its answer is not a JSON object"))?;
    let mut found = Vec::new();
    for server in map.keys() {
        let out = match run_helper(&program, "get", server.as_bytes())? {
            Ok(out) => out,
            // The protocol's not-found answer (an entry listed but gone since): skip it.
            // Compared as Go clients compare it, on the helper's own output.
            Err(f) if f.is_not_found() => continue,
            Err(f) => return Err(f.into_error(&program, "get")),
        };
        #[derive(serde::Deserialize)]
        struct Creds {
            #[serde(rename = "Username")]
            username: String,
            #[serde(rename = "Secret")]
            secret: Zeroizing<String>,
        }
        let creds: Creds = serde_json::from_slice(&out)
            .map_err(|_| failed("get", "its answer is not credentials JSON"))?;
        // Old pass versions answer a missing entry with empty credentials (dch#220).
        if creds.username.is_empty() {
            continue;
        }
        found.push(Found {
            server: server.clone(),
            username: creds.username,
            secret: SecretString::from(creds.secret.as_str().to_owned()),
        });
    }
    Ok(found)
}

/// A helper that ran and exited non-zero: its status and (wiped) stdout.
struct HelperExit {
    status: std::process::ExitStatus,
    out: Zeroizing<Vec<u8>>,
}

impl HelperExit {
    /// Whether it answered the protocol's not-found line.
    fn is_not_found(&self) -> bool {
        self.out.trim_ascii() == messages::NOT_FOUND.as_bytes()
    }

    fn into_error(self, program: &str, action: &'static str) -> Error {
        Error::HelperFailed {
            program: program.to_owned(),
            action,
            detail: failure_detail(&self.out, self.status),
        }
    }
}

/// Runs one action of another helper, bounded ([`crate::child`]): at most
/// [`MAX_HELPER_OUTPUT`] bytes and [`HELPER_TIMEOUT`], after which it is killed. It
/// keeps the terminal and stderr (a helper such as `pass` may ask for a passphrase
/// through a pinentry). The outer error: it could not be run at all, or not within
/// bounds; the inner one: it ran and failed.
fn run_helper(
    program: &str,
    action: &'static str,
    input: &[u8],
) -> Result<Result<Zeroizing<Vec<u8>>, HelperExit>, Error> {
    use crate::child::{Child, Failure, Isolation, Options, StderrTo};
    let failed = |detail: String| Error::HelperFailed {
        program: program.to_owned(),
        action,
        detail,
    };
    let mut cmd = Command::new(program);
    cmd.arg(action);
    let options = Options {
        isolation: Isolation::Terminal,
        stdin: true,
        stderr: StderrTo::Inherit,
        timeout: HELPER_TIMEOUT,
        max_stdout: MAX_HELPER_OUTPUT,
    };
    let mut child = Child::spawn(cmd, &options).map_err(|f| match f {
        Failure::Spawn(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            Error::HelperNotFound {
                program: program.to_owned(),
                action,
            }
        }
        f => failed(f.reason()),
    })?;
    let reason = |f: Failure| match f {
        Failure::TimedOut { .. } => messages::helper_timed_out(HELPER_TIMEOUT.as_secs()),
        Failure::TooLarge { .. } => {
            format!("its output is larger than {MAX_HELPER_OUTPUT} bytes")
        }
        f => f.reason(),
    };
    match child.write_all(input) {
        // A helper that exits without reading all of it: its status tells.
        Ok(()) | Err(Failure::Closed { .. }) => {}
        Err(f) => return Err(failed(reason(f))),
    }
    child.close_stdin();
    // On an error, dropping `child` kills it and reaps it.
    let (out, _, status) = child.finish().map_err(|f| failed(reason(f)))?;
    if !status.success() {
        return Ok(Err(HelperExit { status, out }));
    }
    Ok(Ok(out))
}

/// What to show of a failed helper's stdout: its first line, shortened — unless it
/// looks like credentials (a broken helper may print them and then fail), which are
/// never echoed.
fn failure_detail(out: &[u8], status: std::process::ExitStatus) -> String {
    const MAX_CHARS: usize = 200;
    // Decided on the bytes, before any (unwiped) text copy of them is made.
    if looks_like_credentials(out) {
        return format!("{status}; its output is not shown because it may hold credentials");
    }
    let text = String::from_utf8_lossy(out);
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        None => status.to_string(),
        Some(line) if line.chars().count() > MAX_CHARS => {
            format!("{}…", line.chars().take(MAX_CHARS).collect::<String>())
        }
        Some(line) => line.to_owned(),
    }
}

/// JSON, or a `"Secret"` key in any case (Go's `encoding/json` matches keys that way).
/// Compares in place so no unwiped lowercase copy of the output is made.
fn looks_like_credentials(out: &[u8]) -> bool {
    out.trim_ascii_start().starts_with(b"{")
        || out
            .windows(b"\"secret\"".len())
            .any(|w| w.eq_ignore_ascii_case(b"\"secret\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(server: &str, username: &str) -> Found {
        Found {
            server: server.to_owned(),
            username: username.to_owned(),
            secret: SecretString::from(format!("{server}-{username}-secret")),
        }
    }

    fn decisions(p: &Plan) -> Vec<(&str, &str, Decision)> {
        p.rows
            .iter()
            .map(|(f, d)| (f.server.as_str(), f.username.as_str(), *d))
            .collect()
    }

    fn helper(found: Vec<Found>) -> Option<FromHelper<'static>> {
        Some(FromHelper {
            name: "pass",
            found,
        })
    }

    #[test]
    fn new_registries_are_imported_in_order() {
        let p = plan(
            vec![found("a", "u"), found("b", "v")],
            None,
            &BTreeSet::new(),
            None,
        );
        assert_eq!(
            decisions(&p),
            [("a", "u", Decision::Import), ("b", "v", Decision::Import)]
        );
        assert_eq!(p.to_store().count(), 2);
    }

    #[test]
    fn plaintext_wins_over_the_helper_unless_creds_store_names_the_helper() {
        let config = || vec![found("a", "plain")];
        let from = || helper(vec![found("a", "helper"), found("h", "only")]);
        let none = BTreeSet::new();
        // Docker has been using the plaintext (no credsStore): it comes first.
        let p = plan(config(), from(), &none, None);
        assert_eq!(
            decisions(&p),
            [
                ("a", "plain", Decision::Import),
                ("a", "helper", Decision::Duplicate),
                ("h", "only", Decision::Import)
            ]
        );
        // Docker has been reading the helper: its copy wins, the plaintext is a leftover.
        let p = plan(config(), from(), &none, Some("pass"));
        assert_eq!(
            decisions(&p),
            [
                ("a", "helper", Decision::Import),
                ("h", "only", Decision::Import),
                ("a", "plain", Decision::Duplicate)
            ]
        );
        // A credsStore naming another helper than the one imported changes nothing.
        let p = plan(config(), from(), &none, Some("secretservice"));
        assert_eq!(decisions(&p)[0], ("a", "plain", Decision::Import));
    }

    #[test]
    fn the_vault_wins_only_when_docker_already_reads_it() {
        let vault: BTreeSet<&str> = ["a"].into();
        let p = plan(
            vec![found("a", "u"), found("b", "u")],
            None,
            &vault,
            Some("lockbox"),
        );
        assert_eq!(
            decisions(&p),
            [
                ("a", "u", Decision::KeepVault),
                ("b", "u", Decision::Import)
            ]
        );
        assert_eq!(
            p.to_store().map(|f| f.server.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        // After `export --to-config` (credsStore dropped) and a new `docker login`,
        // the plaintext is newer: it replaces the vault's entry.
        let p = plan(vec![found("a", "u")], None, &vault, None);
        assert_eq!(decisions(&p), [("a", "u", Decision::Update)]);
        // With credsStore naming the helper, the helper's copy updates the vault.
        let p = plan(vec![], helper(vec![found("a", "h")]), &vault, Some("pass"));
        assert_eq!(decisions(&p), [("a", "h", Decision::Update)]);
    }

    #[test]
    fn duplicates_within_one_source_keep_the_first() {
        let p = plan(
            vec![found("a", "1"), found("a", "2")],
            None,
            &BTreeSet::new(),
            None,
        );
        assert_eq!(
            decisions(&p),
            [
                ("a", "1", Decision::Import),
                ("a", "2", Decision::Duplicate)
            ]
        );
    }
}
