//! The client side of the age plugin protocol (C2SP age-plugin: the `identity-v1`
//! state machine to unwrap a file key, `recipient-v1` to wrap one), run through
//! [`crate::child`] so that a plugin, like every other program lockbox reads, is
//! bounded:
//!
//! - each line it writes is at most [`MAX_LINE`] bytes (a stanza line, a message, a
//!   request text; the longest real ones, post-quantum tagged stanzas, are about
//!   2 KiB), refused as soon as that many bytes came without a newline;
//! - all it writes in one run is at most [`MAX_OUTPUT`] bytes;
//! - the run has a deadline (the caller's), whose clock stops while a person is being
//!   asked on the terminal for what the plugin requested;
//! - it starts in a new session (no controlling terminal, its own process group) in
//!   `/`, its stderr goes to `/dev/null` (as age does), and it is killed with its whole
//!   process group at the deadline, on any error, or 2 s after it said `done` if it is
//!   still there. It dies with lockbox.
//!
//! The environment it gets is lockbox's, which `main` already trimmed
//! (`config::var::FORGOTTEN`: `LOCKBOX_IDENTITY`, `LOCKBOX_OPENBAO_TOKEN`, `AGEDEBUG`).
//!
//! Unknown commands from the plugin are answered `unsupported` (the spec's rule, which
//! is what makes grease work); lockbox sends no grease itself.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use age::secrecy::ExposeSecret;
use age_core::format::{FileKey, Stanza};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use zeroize::Zeroizing;

use crate::child::{Child, Failure, Isolation, Options, StderrTo};

/// Longest line accepted from a plugin, bytes (without its newline).
pub const MAX_LINE: usize = 8 * 1024;
/// Most a plugin may write in one run, bytes.
pub const MAX_OUTPUT: usize = 64 * 1024;
/// How long a plugin may take to exit by itself after it said `done`.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// Body lines are wrapped at this many base64 characters.
const COLUMNS: usize = 64;

/// Why a plugin run gave nothing.
#[derive(Debug)]
pub enum PluginFailure {
    /// `age-plugin-NAME` is not in `PATH` (or the name is not a valid plugin name).
    Missing,
    /// Running it failed: it could not start, timed out, wrote too much or too long a
    /// line, or exited before it answered.
    Run(Failure),
    /// It wrote something that is not the protocol.
    Protocol(&'static str),
    /// It reported errors (their messages, sanitized, first lines).
    Reported(Vec<String>),
}

/// Finds `age-plugin-NAME` in `PATH` as age does; `None` if the name is not a valid
/// plugin name or there is no such executable file.
pub fn find(name: &str) -> Option<PathBuf> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.' | b'_'));
    if !valid {
        return None;
    }
    let binary = format!("age-plugin-{name}");
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(&binary))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One run of a plugin: the process and the protocol framing over it.
struct Run {
    child: Child,
}

impl Run {
    fn start(name: &str, state_machine: &str, timeout: Duration) -> Result<Run, PluginFailure> {
        let path = find(name).ok_or(PluginFailure::Missing)?;
        let mut cmd = Command::new(path);
        cmd.arg(format!("--age-plugin={state_machine}"))
            .current_dir("/");
        let options = Options {
            isolation: Isolation::Session,
            stdin: true,
            stderr: StderrTo::Null,
            timeout,
            max_stdout: MAX_OUTPUT,
        };
        let child = Child::spawn(cmd, &options).map_err(PluginFailure::Run)?;
        Ok(Run { child })
    }

    fn send(&mut self, tag: &str, args: &[&str], body: &[u8]) -> Result<(), PluginFailure> {
        let bytes = encode_stanza(tag, args, body);
        self.child.write_all(&bytes).map_err(PluginFailure::Run)
    }

    /// Reads one stanza: its header line, then body lines up to the first short one.
    fn receive(&mut self) -> Result<Stanza, PluginFailure> {
        let mut raw = self.child.read_line(MAX_LINE).map_err(PluginFailure::Run)?;
        if !raw.starts_with(b"-> ") {
            return Err(PluginFailure::Protocol("a line that is not a stanza"));
        }
        loop {
            let line = self.child.read_line(MAX_LINE).map_err(PluginFailure::Run)?;
            let short = line.len() - 1 < COLUMNS;
            crate::child::extend_wiped(&mut raw, &line);
            if line.len() - 1 > COLUMNS {
                return Err(PluginFailure::Protocol(
                    "a stanza body line over 64 columns",
                ));
            }
            if short {
                break;
            }
        }
        match age_core::format::read::age_stanza(&raw) {
            Ok((&[], stanza)) => Ok(stanza.into()),
            _ => Err(PluginFailure::Protocol("a malformed stanza")),
        }
    }

    /// Asks the person through `ask` with the clock stopped.
    fn with_person<T>(&mut self, ask: impl FnOnce() -> T) -> T {
        self.child.pause();
        let answer = ask();
        self.child.resume();
        answer
    }

    /// Answers one of the commands both state machines share (`msg`, `confirm`,
    /// `request-public`, `request-secret`) or an unknown one (`unsupported`);
    /// `Ok(false)` if `stanza` is none of them.
    fn answer_common<C: age::Callbacks>(
        &mut self,
        stanza: &Stanza,
        callbacks: &C,
        errors: &mut Vec<String>,
        known: &[&str],
    ) -> Result<bool, PluginFailure> {
        let text = || String::from_utf8_lossy(&stanza.body).into_owned();
        match stanza.tag.as_str() {
            "msg" => {
                callbacks.display_message(&text());
                self.send("ok", &[], &[])?;
            }
            "confirm" => {
                let decode = |s: &String| {
                    STANDARD_NO_PAD
                        .decode(s)
                        .ok()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                };
                let yes = stanza.args.first().map(decode);
                let no = stanza.args.get(1).map(decode);
                match (yes, no) {
                    (Some(Some(yes)), None) => {
                        let answer = self.with_person(|| callbacks.confirm(&text(), &yes, None));
                        self.reply_confirm(answer)?;
                    }
                    (Some(Some(yes)), Some(Some(no))) => {
                        let answer =
                            self.with_person(|| callbacks.confirm(&text(), &yes, Some(&no)));
                        self.reply_confirm(answer)?;
                    }
                    _ => {
                        errors.push("a confirm request it sent is malformed".to_owned());
                        self.send("fail", &[], &[])?;
                    }
                }
            }
            "request-public" => {
                match self.with_person(|| callbacks.request_public_string(&text())) {
                    Some(value) => self.send("ok", &[], value.as_bytes())?,
                    None => self.send("fail", &[], &[])?,
                }
            }
            "request-secret" => match self.with_person(|| callbacks.request_passphrase(&text())) {
                Some(secret) => self.send("ok", &[], secret.expose_secret().as_bytes())?,
                None => self.send("fail", &[], &[])?,
            },
            tag if known.contains(&tag) => return Ok(false),
            // Grease, or a command of a later version: the spec's answer.
            _ => self.send("unsupported", &[], &[])?,
        }
        Ok(true)
    }

    fn reply_confirm(&mut self, answer: Option<bool>) -> Result<(), PluginFailure> {
        match answer {
            Some(true) => self.send("ok", &["yes"], &[]),
            Some(false) => self.send("ok", &["no"], &[]),
            None => self.send("fail", &[], &[]),
        }
    }

    /// Ends the run: the plugin may exit by itself for a moment, then its group is
    /// killed and it is reaped.
    fn close(self) {
        let _ = self.child.close(EXIT_GRACE);
    }
}

/// An error the plugin reported: its message, first line, sanitized.
fn reported(stanza: &Stanza) -> String {
    let text = String::from_utf8_lossy(&stanza.body);
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut line = crate::messages::sanitize(line.trim());
    if line.chars().count() > 200 {
        line = line.chars().take(200).collect::<String>() + "…";
    }
    if line.is_empty() {
        let kind = stanza.args.first().map_or("", String::as_str);
        line = crate::messages::sanitize(&format!("an error of kind {kind}"));
    }
    line
}

/// Runs plugin `name` (`identity-v1`) with `identities` (their text) over `stanzas`,
/// all sent as one file: the file key it unwrapped, `None` if it unwrapped none and
/// reported nothing.
pub fn unwrap<C: age::Callbacks>(
    name: &str,
    identities: &[Zeroizing<String>],
    stanzas: &[Stanza],
    callbacks: &C,
    timeout: Duration,
) -> Result<Option<FileKey>, PluginFailure> {
    let mut run = Run::start(name, "identity-v1", timeout)?;
    for identity in identities {
        run.send("add-identity", &[identity.as_str()], &[])?;
    }
    for stanza in stanzas {
        let mut args: Vec<&str> = vec!["0", &stanza.tag];
        args.extend(stanza.args.iter().map(String::as_str));
        run.send("recipient-stanza", &args, &stanza.body)?;
    }
    run.send("done", &[], &[])?;

    let mut file_key = None;
    let mut errors = Vec::new();
    loop {
        let stanza = run.receive()?;
        if stanza.tag == "done" {
            break;
        }
        if run.answer_common(&stanza, callbacks, &mut errors, &["file-key", "error"])? {
            continue;
        }
        match stanza.tag.as_str() {
            "file-key" => {
                // One file was sent: only index 0, once, of the right length.
                if stanza.args.len() == 1
                    && stanza.args[0] == "0"
                    && file_key.is_none()
                    && stanza.body.len() == 16
                {
                    file_key = Some(FileKey::init_with_mut(|k| k.copy_from_slice(&stanza.body)));
                    run.send("ok", &[], &[])?;
                } else {
                    run.send("fail", &[], &[])?;
                }
            }
            _ => {
                errors.push(reported(&stanza));
                run.send("ok", &[], &[])?;
            }
        }
    }
    run.close();
    match file_key {
        Some(key) => Ok(Some(key)),
        None if errors.is_empty() => Ok(None),
        None => Err(PluginFailure::Reported(errors)),
    }
}

/// Runs plugin `name` (`recipient-v1`) to wrap `file_key` to `recipient`: the stanzas
/// and labels it returned.
pub fn wrap<C: age::Callbacks>(
    name: &str,
    recipient: &str,
    file_key: &FileKey,
    callbacks: &C,
    timeout: Duration,
) -> Result<(Vec<Stanza>, HashSet<String>), PluginFailure> {
    let mut run = Run::start(name, "recipient-v1", timeout)?;
    run.send("add-recipient", &[recipient], &[])?;
    run.send("extension-labels", &[], &[])?;
    run.send("wrap-file-key", &[], file_key.expose_secret())?;
    run.send("done", &[], &[])?;

    let mut stanzas = Vec::new();
    let mut labels = None;
    let mut errors = Vec::new();
    loop {
        let mut stanza = run.receive()?;
        if stanza.tag == "done" {
            break;
        }
        if run.answer_common(
            &stanza,
            callbacks,
            &mut errors,
            &["recipient-stanza", "labels", "error"],
        )? {
            continue;
        }
        match stanza.tag.as_str() {
            "recipient-stanza" => {
                if stanza.args.len() >= 2 && stanza.args[0] == "0" {
                    stanza.args.remove(0);
                    stanza.tag = stanza.args.remove(0);
                    stanzas.push(stanza);
                } else {
                    errors.push("it wrapped to a file lockbox did not give it".to_owned());
                }
                run.send("ok", &[], &[])?;
            }
            "labels" => {
                let set: HashSet<String> = stanza.args.iter().cloned().collect();
                if labels.is_some() || set.len() != stanza.args.len() {
                    errors.push("it sent labels twice or a label twice".to_owned());
                } else {
                    labels = Some(set);
                }
                run.send("ok", &[], &[])?;
            }
            _ => {
                errors.push(reported(&stanza));
                run.send("ok", &[], &[])?;
            }
        }
    }
    run.close();
    match (stanzas.is_empty(), errors.is_empty()) {
        (false, true) => Ok((stanzas, labels.unwrap_or_default())),
        (true, true) => Err(PluginFailure::Protocol("it returned no stanza")),
        _ => Err(PluginFailure::Reported(errors)),
    }
}

/// One stanza as the protocol frames it: `-> TAG ARGS…\n`, then the body in base64
/// without padding, 64 columns a line, ending with a short (maybe empty) line.
fn encode_stanza(tag: &str, args: &[&str], body: &[u8]) -> Zeroizing<Vec<u8>> {
    let encoded = Zeroizing::new(STANDARD_NO_PAD.encode(body));
    let mut out = Zeroizing::new(Vec::with_capacity(
        8 + tag.len() + args.iter().map(|a| a.len() + 1).sum::<usize>() + encoded.len() * 65 / 64,
    ));
    out.extend_from_slice(b"-> ");
    out.extend_from_slice(tag.as_bytes());
    for arg in args {
        out.push(b' ');
        out.extend_from_slice(arg.as_bytes());
    }
    out.push(b'\n');
    let mut chunks = encoded.as_bytes().chunks(COLUMNS);
    loop {
        match chunks.next() {
            Some(chunk) => {
                out.extend_from_slice(chunk);
                out.push(b'\n');
                if chunk.len() < COLUMNS {
                    break;
                }
            }
            None => {
                out.push(b'\n');
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_are_framed_as_the_spec_says() {
        assert_eq!(&encode_stanza("done", &[], &[])[..], b"-> done\n\n");
        assert_eq!(
            &encode_stanza("ok", &["yes"], b"hi")[..],
            b"-> ok yes\naGk\n"
        );
        // 48 bytes are exactly 64 columns: an empty line ends the body.
        let framed = encode_stanza("x", &[], &[0u8; 48]);
        assert!(framed.ends_with(b"AAAA\n\n"));
        let parsed: Stanza = age_core::format::read::age_stanza(&framed)
            .unwrap()
            .1
            .into();
        assert_eq!(parsed.body, vec![0u8; 48]);
    }

    #[test]
    fn plugin_names_are_checked_before_any_lookup() {
        assert!(find("../../bin/sh").is_none());
        assert!(find("").is_none());
    }
}
