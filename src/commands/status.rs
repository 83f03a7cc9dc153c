//! `status`: the vault, its slots and entries, and the key sources `get` would use —
//! described without trying them, or tried with `--check` ([`crate::keysource`]).
use std::io::Write;

use clap::Args;

use std::time::Duration;

use crate::agent::client::{Agent, AgentStatus};
use crate::agent::proto::TokenStatus;
use crate::config::Settings;
use crate::error::Error;
use crate::exit::Exit;
use crate::file::VaultPath;
use crate::keysource::{self, AgentUse, KeyFlags, Verdict};
use crate::messages;
use crate::vault::{Slot, Vault};

/// `status`
#[derive(Debug, Args)]
pub struct Opts {
    /// Print JSON for scripts.
    #[arg(long, conflicts_with = "quiet")]
    json: bool,
    /// Print nothing; only the exit status tells (0 unlocked, 3 locked).
    #[arg(long, short)]
    quiet: bool,
    /// Try the key sources (runs Argon2id for a passphrase file) instead of only
    /// describing them.
    #[arg(long)]
    check: bool,
    /// Also show (and with --check, try) the OpenBao slot with a person's token
    /// (BAO_TOKEN, VAULT_TOKEN, ~/.vault-token), as unlock --openbao would.
    #[arg(long)]
    openbao: bool,
    /// The OpenBao token for --openbao from FILE.
    #[arg(long, value_name = "FILE")]
    openbao_token_file: Option<std::path::PathBuf>,
}

/// What `status` found: the sources as `get` would try them, what opens the vault.
struct Report {
    /// Every source but the terminal, with what can be said of it.
    described: Vec<keysource::Description>,
    /// What the agent holds, when it holds this vault's key.
    held: Option<crate::agent::client::Held>,
    /// The source that is (or, with `--check`, was) the way in.
    source: Option<String>,
    /// Why nothing opens it, when something says.
    error: Option<String>,
}

impl Report {
    fn unlocked(&self) -> bool {
        self.source.is_some() && self.error.is_none()
    }
}

/// Runs `status`.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    let report = find(&o, settings, &vault)?;
    let agent = if o.quiet {
        None
    } else {
        Agent::for_requests(settings).status_all().ok().flatten()
    };
    let code = if report.unlocked() {
        Exit::Ok
    } else {
        Exit::Locked
    };
    if o.quiet {
        return Ok(code);
    }
    let mut out = std::io::stdout().lock();
    let io_err = |e| Error::io("write", "stdout", e);
    if o.json {
        let mut v = json(&o, &path, &vault, &report);
        v["sources"] = sources_json(&vault, agent.as_ref());
        writeln!(out, "{v}").map_err(io_err)?;
        return Ok(code);
    }
    let mut text = text(&o, settings, &path, &vault, &report, agent.as_ref());
    text.push_str(&sources_text(&vault, agent.as_ref()));
    let clean: String = text.lines().map(|l| messages::sanitize(l) + "\n").collect();
    out.write_all(clean.as_bytes()).map_err(io_err)?;
    Ok(code)
}

/// Describes the sources `get` would use and finds the way in (tries it with
/// `--check`).
fn find(o: &Opts, settings: &Settings, vault: &Vault) -> Result<Report, Error> {
    // What `get` would use: no flags (but the OpenBao ones, asked for), never a prompt.
    let flags = KeyFlags {
        openbao: o.openbao,
        openbao_token_file: o.openbao_token_file.clone(),
        ..KeyFlags::default()
    };
    let list = keysource::sources(
        &settings.keys,
        &flags,
        Some((Agent::for_requests(settings), AgentUse::Verified)),
    );
    let mut described = Vec::new();
    for d in keysource::describe(vault, &list) {
        // The terminal is for people; `get` never reaches it, so status does not show it.
        if d.name == "terminal" {
            continue;
        }
        // A source that cannot be asked at all (an unsafe agent directory) is an
        // error, as it is for `get`.
        if let Verdict::Broken(e) = d.verdict {
            return Err(e);
        }
        described.push(d);
    }
    let held = described.iter().find_map(|d| match &d.verdict {
        Verdict::Ready(h) => Some(h.clone()),
        _ => None,
    });
    // Without --check: the first source that is set and not ruled out is the way in.
    // With --check: the one that really opened it, or the error.
    let (source, error): (Option<String>, Option<String>) = if o.check {
        match keysource::check(vault, &list) {
            Ok(name) => (Some(name), None),
            Err((name, e)) => (name, Some(e.message())),
        }
    } else {
        let way_in = described
            .iter()
            .find(|d| matches!(d.verdict, Verdict::Ready(_) | Verdict::Untried));
        (way_in.map(|d| d.name.clone()), None)
    };
    // Nothing opens it, and the agent serves it from a credential that fails: that is
    // the reason to show, not the generic "run unlock".
    let error = error.or_else(|| {
        source.is_none().then(|| {
            described.iter().find_map(|d| match &d.verdict {
                Verdict::NotApplicable(e @ Error::AgentCredential { .. }) => Some(e.message()),
                _ => None,
            })
        })?
    });
    Ok(Report {
        described,
        held,
        source,
        error,
    })
}

/// `status --json`.
fn json(o: &Opts, path: &VaultPath, vault: &Vault, r: &Report) -> serde_json::Value {
    let slots: Vec<serde_json::Value> = vault.slots().iter().map(Slot::status_json).collect();
    let sources: Vec<serde_json::Value> = r
        .described
        .iter()
        .map(|d| {
            let (state, reason) = match &d.verdict {
                Verdict::Untried => ("untried", None),
                Verdict::Ready(_) => ("ready", None),
                Verdict::NotApplicable(e) | Verdict::Broken(e) => {
                    ("not_applicable", Some(e.message()))
                }
            };
            serde_json::json!({
                "name": d.name, "origin": d.origin.as_str(), "state": state, "reason": reason,
            })
        })
        .collect();
    let agent = match &r.held {
        Some(h) => serde_json::json!({
            "pid": h.pid, "mode": h.mode, "expires_in_secs": h.expires_in_secs,
            "idle_left_secs": h.vault.idle_left_secs,
            "timeout_left_secs": h.vault.timeout_left_secs,
            "non_dumpable": h.non_dumpable, "memory_locked": h.memory_locked,
            "vaults": crate::agent::client::vaults_json(&h.all),
            "opens_from_credential": h.credential,
        }),
        None => serde_json::Value::Null,
    };
    serde_json::json!({
        "vault": path.vault,
        "format": vault.format_version(),
        "public_key": vault.public().to_string(),
        "slots": slots,
        "entries": vault.entries().len(),
        "unlocked": r.unlocked(),
        "checked": o.check,
        "key_source": r.source,
        "key_sources": sources,
        "agent": agent,
        "error": r.error,
    })
}

/// After the entry count, when some entry needs attention: how many expire within the
/// window and how many have expired (`check` lists them).
fn expiry_note(settings: &Settings, vault: &Vault) -> String {
    use crate::vault::meta::{Standing, standing, unix_now};
    let (days, _) = settings.expiry_warn_days();
    let now = unix_now();
    let (mut soon, mut gone) = (0, 0);
    for e in vault.entries().values() {
        match standing(e.meta.expires_at, now, days * 86_400) {
            Standing::Fine => {}
            Standing::Expiring(_) => soon += 1,
            Standing::Expired(_) => gone += 1,
        }
    }
    match (soon, gone) {
        (0, 0) => String::new(),
        _ => format!(
            " ({soon} expiring within {days} days, {gone} expired: 'lockbox check' lists them)"
        ),
    }
}

/// `status` for people (not yet sanitized).
fn text(
    o: &Opts,
    settings: &Settings,
    path: &VaultPath,
    vault: &Vault,
    r: &Report,
    agent: Option<&AgentStatus>,
) -> String {
    let mut text = format!(
        "vault:      {}\nformat:     {}\npublic key: {}\nentries:    {}{}\nslots:      {}\n",
        path.vault.display(),
        vault.format_version(),
        vault.public(),
        vault.entries().len(),
        expiry_note(settings, vault),
        vault.slots().len(),
    );
    for (i, slot) in vault.slots().iter().enumerate() {
        text.push_str(&format!("  {}. {}\n", i + 1, slot.describe()));
    }
    text.push_str("key sources, in the order get tries them:\n");
    for d in &r.described {
        let state = match &d.verdict {
            Verdict::Untried if o.check => "set".to_owned(),
            Verdict::Untried => "set (not tried; 'status --check' tries it)".to_owned(),
            Verdict::Ready(h) => crate::agent::client::serves_text(h),
            Verdict::NotApplicable(Error::Locked) => "does not hold this vault's key".to_owned(),
            Verdict::NotApplicable(e) | Verdict::Broken(e) => {
                format!("does not apply: {}", e.message())
            }
        };
        text.push_str(&format!("  {}: {state}\n", d.name));
    }
    text.push_str(&match (&r.source, &r.error) {
        (Some(name), None) if o.check => format!("unlocked:   yes, by {name} (checked)\n"),
        (Some(name), None) => format!("unlocked:   yes, by {name}\n"),
        (Some(name), Some(e)) => format!("unlocked:   no — {name} fails: {e}\n"),
        (None, Some(e)) => format!("unlocked:   no — {e}\n"),
        (None, None) => {
            "unlocked:   no (run 'docker-credential-lockbox unlock' or set LOCKBOX_IDENTITY)\n"
                .to_owned()
        }
    });
    // Every vault the agent holds, this one or not (a cheap local request).
    if let Some(all) = agent {
        text.push_str(&crate::agent::client::held_lines(all));
    }
    text
}

/// The vault's sources, by server, with the agent's token of each (if it has one).
fn sources_of<'a>(
    vault: &'a Vault,
    agent: Option<&'a AgentStatus>,
) -> Vec<(&'a str, &'a str, Option<&'a TokenStatus>)> {
    let public = vault.public().to_string();
    vault
        .entries()
        .iter()
        .filter_map(|(server, e)| {
            let def = e.meta.source.as_ref()?;
            let token = agent.and_then(|a| {
                a.tokens
                    .iter()
                    .find(|t| t.public_key == public && &t.server == server)
            });
            Some((server.as_str(), def.kind.as_str(), token))
        })
        .collect()
}

/// `status --json`'s `sources`: each source's kind and the agent's token times
/// (Unix seconds; `token` is null when no agent caches one). Never a secret.
fn sources_json(vault: &Vault, agent: Option<&AgentStatus>) -> serde_json::Value {
    sources_of(vault, agent)
        .into_iter()
        .map(|(server, kind, token)| {
            let token = token.map(|t| {
                serde_json::json!({
                    "minted_at": t.minted_at, "expires_at": t.expires_at,
                    "refresh_at": t.refresh_at, "stale_at": t.stale_at,
                })
            });
            serde_json::json!({"server": server, "kind": kind, "token": token})
        })
        .collect()
}

/// `status`'s lines for the vault's sources (none when it has none, so the output
/// of a vault without sources is as it was).
fn sources_text(vault: &Vault, agent: Option<&AgentStatus>) -> String {
    let sources = sources_of(vault, agent);
    if sources.is_empty() {
        return String::new();
    }
    let now = crate::vault::meta::unix_now();
    let ago = |t: u64| humantime::format_duration(Duration::from_secs(now.saturating_sub(t)));
    let ahead = |t: u64| humantime::format_duration(Duration::from_secs(t.saturating_sub(now)));
    let mut text = String::from(
        "sources:
",
    );
    for (server, kind, token) in sources {
        let state = match token {
            None => messages::SOURCE_NOT_CACHED.to_owned(),
            Some(t) => {
                let refresh = if t.refresh_at > now {
                    format!("next refresh in {}", ahead(t.refresh_at))
                } else {
                    "refreshed at its next get".to_owned()
                };
                format!(
                    "minted by the agent {} ago, expires in {}, {refresh}",
                    ago(t.minted_at),
                    ahead(t.expires_at)
                )
            }
        };
        text.push_str(&format!("  {server} ({kind}): {state}\n"));
    }
    text
}
