//! `log [--since D] [--json]`: the agent's access log — who got which registry's
//! credentials, when, through which socket (`docs/AGENT.md` "The access log").
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;

use crate::agent::access_log::{Record, read_all};
use crate::agent::socket;
use crate::config::Settings;
use crate::error::{Error, Result, Usage};
use crate::exit::Exit;
use crate::messages;

/// `log`
#[derive(Debug, Args)]
pub struct Opts {
    /// Only entries of the last DURATION (30m, 1h, 2d).
    #[arg(long, value_name = "DURATION")]
    since: Option<String>,
    /// One JSON object per line, as the agent wrote it.
    #[arg(long)]
    json: bool,
}

/// Runs `log`.
pub fn run(o: Opts, _settings: &Settings) -> Result<Exit> {
    let since = match &o.since {
        None => 0,
        Some(text) => {
            let d = humantime::parse_duration(text).map_err(|_| {
                Error::Usage(Usage::Forward(messages::bad_since(&messages::sanitize(
                    text,
                ))))
            })?;
            now_secs().saturating_sub(d.as_secs())
        }
    };
    let dir = socket::agent_dir();
    // A directory someone else made (or left loose) is refused, not read: its log
    // could be anyone's story. None yet: nothing was logged.
    let (records, bad) = if socket::check_agent_dir(&dir, false)? {
        read_all(&dir)?
    } else {
        (Vec::new(), 0)
    };
    if bad > 0 {
        eprintln!("{}", messages::log_unreadable_lines(bad));
    }
    let shown: Vec<&Record> = records.iter().filter(|r| r.time >= since).collect();
    if shown.is_empty() && !o.json {
        crate::outln!("{}", messages::LOG_EMPTY);
    }
    for r in shown {
        if o.json {
            // The exe path and registry come from the peer: C1 and bidi characters
            // are escaped (the same value to a JSON reader, nothing to a terminal).
            let json = serde_json::to_string(r).unwrap_or_default();
            crate::outln!("{}", crate::sanitize::escape_json_controls(&json));
        } else {
            crate::outln!("{}", line(r));
        }
    }
    Ok(Exit::Ok)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One record for people: its time in UTC, the socket, the registry, the vault and
/// the peer.
pub fn line(r: &Record) -> String {
    let time = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(r.time));
    let num = |v: Option<u32>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
    let peer = format!(
        "pid {} uid {} {}",
        num(r.pid),
        num(r.uid),
        r.exe.as_deref().unwrap_or("-")
    );
    let clean = messages::sanitize;
    messages::log_line(
        &time.to_string(),
        &clean(&r.socket),
        &clean(&r.registry),
        &clean(&r.vault),
        &clean(&peer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_time_socket_registry_vault_and_peer() {
        let r = Record {
            time: 0,
            vault: "/v\x1b[31m".into(),
            registry: "ghcr.io".into(),
            socket: "forward:ci".into(),
            pid: Some(7),
            uid: None,
            exe: Some("/usr/bin/docker".into()),
        };
        let l = line(&r);
        assert!(
            l.starts_with("1970-01-01T00:00:00Z  forward:ci  ghcr.io  /v"),
            "{l}"
        );
        assert!(l.ends_with("pid 7 uid ? /usr/bin/docker"), "{l}");
        assert!(!l.contains('\x1b'), "{l}");
    }
}
