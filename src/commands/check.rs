//! `check`: the entries that have expired or expire within a window, for people,
//! cron, CI and monitoring (an exit status, JSON, a Prometheus textfile). Reads only
//! what is in the clear: works while the vault is locked, never asks for a key.
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use clap::Args;

use crate::config::Settings;
use crate::error::{Error, Usage};
use crate::exit::Exit;
use crate::messages;
use crate::vault::View;
use crate::vault::meta::{Standing, rfc3339, standing, unix_now};

/// `check`
#[derive(Debug, Args)]
pub struct Opts {
    /// The warning window: 14d, 36h, 2w… (default: LOCKBOX_EXPIRY_WARN_DAYS days, else
    /// 14 days).
    #[arg(long, value_name = "DURATION")]
    within: Option<String>,
    /// Print every entry as JSON for scripts.
    #[arg(long)]
    json: bool,
    /// Also write node_exporter's textfile format to FILE (replaced atomically; name
    /// it *.prom in the textfile collector's directory).
    #[arg(long, value_name = "FILE")]
    prometheus: Option<std::path::PathBuf>,
}

/// One entry as `check` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The server URL as stored.
    pub server: String,
    /// The username.
    pub username: String,
    /// The expiry, Unix seconds.
    pub expires_at: Option<u64>,
    /// How it stands.
    pub standing: Standing,
    /// The rotation provider's kind.
    pub rotate: Option<&'static str>,
    /// Whether a rotation is unfinished.
    pub pending: bool,
}

impl Row {
    fn state(&self) -> &'static str {
        match (self.standing, self.expires_at) {
            (Standing::Expired(_), _) => "expired",
            (Standing::Expiring(_), _) => "expiring",
            (Standing::Fine, Some(_)) => "ok",
            (Standing::Fine, None) => "no-expiry",
        }
    }
}

/// Every entry of `view` at `now` with a window of `within` seconds.
pub fn rows(view: &View<'_>, now: u64, within: u64) -> Vec<Row> {
    view.entries()
        .iter()
        .map(|e| Row {
            server: e.server().to_owned(),
            username: e.username().to_owned(),
            expires_at: e.expires_at(),
            standing: standing(e.expires_at(), now, within),
            rotate: e.rotation_kind(),
            pending: e.has_pending(),
        })
        .collect()
}

/// The exit status for `rows`: 5 when one has expired, else 4 when one expires within
/// the window, else 0.
pub fn exit_for(rows: &[Row]) -> Exit {
    if rows
        .iter()
        .any(|r| matches!(r.standing, Standing::Expired(_)))
    {
        Exit::Expired
    } else if rows
        .iter()
        .any(|r| matches!(r.standing, Standing::Expiring(_)))
    {
        Exit::Expiring
    } else {
        Exit::Ok
    }
}

/// The window in seconds: `--within`, else the setting.
fn window(o: &Opts, settings: &Settings) -> Result<u64, Error> {
    match &o.within {
        Some(text) => humantime::parse_duration(text.trim())
            .ok()
            .filter(|d| *d <= Duration::from_secs(3650 * 86_400))
            .map(|d| d.as_secs())
            .ok_or_else(|| Usage::Expiry(messages::sanitize(&messages::bad_within(text))).into()),
        None => {
            let (days, bad) = settings.expiry_warn_days();
            if let Some(b) = bad {
                eprintln!("{}", messages::sanitize(&b));
            }
            Ok(days * 86_400)
        }
    }
}

/// Runs `check`.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit, Error> {
    let within = window(&o, settings)?;
    let path = settings.location.resolve()?;
    let bytes = path.read_bytes()?.ok_or_else(|| {
        if settings.location.vault.is_some() {
            Error::NamedVaultMissing(path.vault.clone())
        } else {
            Error::NotInitialized(path.vault.clone())
        }
    })?;
    let view = View::parse(&bytes, &path.vault)?;
    let now = unix_now();
    let rows = rows(&view, now, within);
    if let Some(file) = &o.prometheus {
        write_atomically(file, prometheus(&rows, now).as_bytes())?;
    }
    if o.json {
        crate::outln!("{}", json(&rows, now, within));
    } else {
        crate::out!("{}", super::sanitize_lines(&text(&rows, within)));
    }
    Ok(exit_for(&rows))
}

/// The lines for people: the entries that need attention, or that none does.
pub fn text(rows: &[Row], within: u64) -> String {
    let mut out = String::new();
    for r in rows.iter().filter(|r| r.standing != Standing::Fine) {
        let when = r.expires_at.map(rfc3339).unwrap_or_default();
        out.push_str(&messages::check_line(&r.server, r.state(), &when));
        out.push('\n');
    }
    for r in rows.iter().filter(|r| r.pending) {
        out.push_str(&messages::check_line(
            &r.server,
            "pending",
            "rotate it again",
        ));
        out.push('\n');
    }
    if out.is_empty() {
        out = messages::check_all_fine(within / 86_400) + "\n";
    }
    out
}

/// The JSON for scripts: every entry, its expiry and state.
pub fn json(rows: &[Row], now: u64, within: u64) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "server": r.server,
                "username": r.username,
                "expires_at": r.expires_at,
                "expires": r.expires_at.map(rfc3339),
                "state": r.state(),
                "rotate": r.rotate,
                "rotation_pending": r.pending,
            })
        })
        .collect();
    serde_json::json!({ "now": now, "within_seconds": within, "entries": entries })
}

/// A Prometheus label value: backslash, double quote and line feed escaped (the text
/// exposition format).
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// node_exporter's textfile format: one gauge sample per entry with an expiry (its
/// Unix time), and when this check ran. The registry is the only label (it is unique):
/// the file is world-readable (mode 0644), so no username and never a secret.
pub fn prometheus(rows: &[Row], now: u64) -> String {
    let mut out = String::from(
        "# HELP lockbox_credential_expiry_timestamp_seconds When the stored registry credential expires (Unix time).\n\
         # TYPE lockbox_credential_expiry_timestamp_seconds gauge\n",
    );
    for r in rows {
        if let Some(t) = r.expires_at {
            out.push_str(&format!(
                "lockbox_credential_expiry_timestamp_seconds{{registry=\"{}\"}} {t}\n",
                label(&r.server),
            ));
        }
    }
    out.push_str(
        "# HELP lockbox_check_timestamp_seconds When lockbox check last wrote this file (Unix time).\n\
         # TYPE lockbox_check_timestamp_seconds gauge\n",
    );
    out.push_str(&format!("lockbox_check_timestamp_seconds {now}\n"));
    out
}

/// Writes `bytes` to `file` by a temporary file beside it (a dot name the textfile
/// collector skips), flushed to disk and renamed over it: a scrape never sees half a
/// file. Mode 0644: node_exporter runs as another user.
fn write_atomically(file: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let name = file
        .file_name()
        .ok_or_else(|| Error::io("write", file, std::io::ErrorKind::InvalidInput.into()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = file.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        // Explicitly, whatever the umask: node_exporter reads it as another user.
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("write", file, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(server: &str, expires_at: Option<u64>, now: u64) -> Row {
        Row {
            server: server.into(),
            username: "u".into(),
            expires_at,
            standing: standing(expires_at, now, 14 * 86_400),
            rotate: None,
            pending: false,
        }
    }

    #[test]
    fn exit_codes_follow_the_worst_entry() {
        let now = 1_000_000_000;
        let fine = row("a", Some(now + 30 * 86_400), now);
        let none = row("b", None, now);
        let soon = row("c", Some(now + 86_400), now);
        let gone = row("d", Some(now - 1), now);
        assert_eq!(exit_for(&[fine.clone(), none.clone()]), Exit::Ok);
        assert_eq!(exit_for(&[fine.clone(), soon.clone()]), Exit::Expiring);
        assert_eq!(exit_for(&[soon, gone, fine]), Exit::Expired);
        assert_eq!(exit_for(&[]), Exit::Ok);
    }

    #[test]
    fn prometheus_labels_are_escaped_and_entries_without_expiry_left_out() {
        let now = 1_000_000_000;
        let text = prometheus(
            &[
                row("a\"b\\c\nd", Some(now + 5), now),
                row("no-date", None, now),
            ],
            now,
        );
        assert!(text.contains(
            "lockbox_credential_expiry_timestamp_seconds{registry=\"a\\\"b\\\\c\\nd\"} 1000000005\n"
        ));
        assert!(!text.contains("username"), "the file is world-readable");
        assert!(!text.contains("no-date"));
        assert!(text.ends_with("lockbox_check_timestamp_seconds 1000000000\n"));
    }

    #[test]
    fn text_names_what_needs_attention() {
        let now = 1_000_000_000;
        let t = text(&[row("fine", Some(now + 90 * 86_400), now)], 14 * 86_400);
        assert_eq!(t, "No entry expires within 14 days.\n");
        let t = text(&[row("gone", Some(now - 1), now)], 14 * 86_400);
        assert!(t.starts_with("expired  gone  2001-09-09T01:46:39Z"), "{t}");
    }
}
