//! The `exec` source: a program run as the user that prints the registry credential,
//! shaped like AWS's `credential_process`. The escape hatch for everything the other
//! kinds do not mint from (a vendor CLI, a CI job token).
//!
//! - **What runs.** `command`, a JSON array of the program (an absolute path, resolved
//!   from `PATH` by `source add`) and its arguments, run directly (no shell) in a new
//!   session, killed with its process group at [`super::MINT_DEADLINE`]
//!   ([`crate::child`]). The definition is MACed with the vault key, so a command
//!   planted in the vault file is refused before it runs.
//! - **What it gets.** The source's sealed secret on stdin when there is one
//!   (`--secret-file`), else nothing; the environment lockbox was started with, minus
//!   lockbox's own key settings and the agent's socket.
//! - **What it prints.** One JSON object: `{"Username": …, "Secret": …, "ExpiresAt":
//!   "RFC 3339"}` (`ExpiresAt` optional; without it nothing is cached), at most
//!   [`MAX_OUTPUT`] bytes. A failure is one line with its exit status and the last
//!   line of its stderr, never its stdout.
use std::process::Command;
use std::time::{Duration, SystemTime};

use age::secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::types::{Minted, Params};
use crate::child::{Child, Isolation, Options, StderrTo};
use crate::error::MintError;

/// Most bytes the program may print on stdout.
pub const MAX_OUTPUT: usize = 64 * 1024;
/// Most arguments (the program included).
pub const MAX_ARGS: usize = 256;

/// What the command never inherits beyond lockbox's key settings
/// ([`crate::child::hide_key_settings`]): the agent's socket (the command mints one
/// credential; it has no business with the key the agent holds).
const HIDDEN_VARS: &[&str] = &["LOCKBOX_AGENT_SOCKET"];

/// The command of `params`, as stored: a JSON array of strings.
pub fn command_of(params: &Params) -> Result<Vec<String>, String> {
    let text = params
        .get("command")
        .ok_or_else(|| crate::messages::SOURCE_EXEC_NO_COMMAND.to_owned())?;
    let argv: Vec<String> = serde_json::from_str(text)
        .map_err(|_| crate::messages::SOURCE_EXEC_BAD_COMMAND.to_owned())?;
    if argv.is_empty() || argv.len() > MAX_ARGS || argv.iter().any(|a| a.contains('\0')) {
        return Err(crate::messages::SOURCE_EXEC_BAD_COMMAND.to_owned());
    }
    if !argv[0].starts_with('/') {
        return Err(crate::messages::SOURCE_EXEC_NOT_ABSOLUTE.to_owned());
    }
    Ok(argv)
}

/// The `command` parameter for `argv`.
pub fn command_param(argv: &[String]) -> String {
    // A Vec<String> always serializes.
    serde_json::to_string(argv).unwrap_or_default()
}

/// Checks the parameters: `command` (required), `username` (optional).
pub fn check(params: &Params) -> Result<(), String> {
    if let Some(other) = params
        .keys()
        .find(|k| !matches!(k.as_str(), "command" | "username"))
    {
        return Err(crate::messages::source_param_unknown(
            other,
            &["command"],
            &["username"],
        ));
    }
    command_of(params).map(|_| ())
}

/// Any secret (or none) is given to the command as it is.
pub fn check_secret(_secret: &SecretString) -> Result<(), String> {
    Ok(())
}

/// What the command prints.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: Zeroizing<String>,
    #[serde(rename = "ExpiresAt", default)]
    expires_at: Option<String>,
    /// `credential_process`'s version field, accepted and ignored.
    #[serde(rename = "Version", default)]
    _version: Option<serde_json::Value>,
}

/// Runs the command within `deadline` and reads its answer.
pub fn mint(
    registry: &str,
    params: &Params,
    secret: &SecretString,
    deadline: Duration,
) -> Result<Minted, MintError> {
    let argv = command_of(params).map_err(|d| failure(registry, "-", d))?;
    let program = argv[0].clone();
    let fail = |detail: String| failure(registry, &program, detail);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    crate::child::hide_key_settings(&mut cmd);
    for var in HIDDEN_VARS {
        cmd.env_remove(var);
    }
    let given = !secret.expose_secret().is_empty();
    let options = Options {
        isolation: Isolation::Session,
        stdin: given,
        stderr: StderrTo::Keep,
        timeout: deadline,
        max_stdout: MAX_OUTPUT,
    };
    let mut child = Child::spawn(cmd, &options).map_err(|f| fail(f.reason()))?;
    if given {
        child
            .write_all(secret.expose_secret().as_bytes())
            .map_err(|f| fail(f.reason()))?;
        child.close_stdin();
    }
    // On an error, dropping `child` kills its group and reaps it.
    let (stdout, stderr, status) = child.finish().map_err(|f| fail(f.reason()))?;
    if !status.success() {
        let f = crate::child::Failure::Exited { status, stderr };
        return Err(fail(f.reason()));
    }
    let answer: Answer = serde_json::from_slice(&stdout)
        .map_err(|_| fail(crate::messages::SOURCE_EXEC_BAD_ANSWER.to_owned()))?;
    if answer.username.is_empty() || answer.secret.is_empty() {
        return Err(fail(crate::messages::SOURCE_EXEC_EMPTY_ANSWER.to_owned()));
    }
    let expires_at = match &answer.expires_at {
        // A time without its zone would be read as UTC and could keep a token past
        // its end: only UTC (`Z`) is taken.
        Some(text) if !text.ends_with(['Z', 'z']) || text.len() < 20 => {
            return Err(fail(crate::messages::SOURCE_EXEC_BAD_EXPIRY.to_owned()));
        }
        Some(text) => Some(
            crate::vault::meta::parse_date(text)
                .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
                .ok_or_else(|| fail(crate::messages::SOURCE_EXEC_BAD_EXPIRY.to_owned()))?,
        ),
        None => None,
    };
    Ok(Minted {
        username: answer.username,
        secret: SecretString::from(answer.secret.as_str().to_owned()),
        expires_at,
    })
}

fn failure(registry: &str, endpoint: &str, detail: String) -> MintError {
    MintError {
        kind: "exec".into(),
        registry: registry.to_owned(),
        endpoint: endpoint.to_owned(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(argv: &[&str]) -> Params {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        Params::from([("command".to_owned(), command_param(&argv))])
    }

    fn run(script: &str, secret: &str) -> Result<Minted, MintError> {
        mint(
            "registry.example",
            &params(&["/bin/sh", "-c", script]),
            &SecretString::from(secret.to_owned()),
            Duration::from_secs(5),
        )
    }

    #[test]
    fn a_command_answers_with_its_username_secret_and_expiry_and_reads_the_sealed_secret() {
        let m = run(
            r#"read s; printf '{"Username":"ci","Secret":"%s-token","ExpiresAt":"2030-01-01T00:00:00Z"}' "$s""#,
            "sealed\n",
        )
        .unwrap();
        assert_eq!(m.username, "ci");
        assert_eq!(m.secret.expose_secret(), "sealed-token");
        assert_eq!(m.expires_at_secs(), Some(1_893_456_000));
        let m = run(r#"echo '{"Username":"u","Secret":"s"}'"#, "").unwrap();
        assert_eq!(m.expires_at, None);
    }

    #[test]
    fn failures_are_one_line_that_never_holds_the_output() {
        let e = run(
            "echo '{\"Username\":\"u\",\"Secret\":\"hunter2\"'; exit 3",
            "",
        )
        .unwrap_err();
        assert!(e.detail.contains('3'), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = run("echo 'Secret: hunter2'", "").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = run(r#"echo '{"Username":"","Secret":"s"}'"#, "").unwrap_err();
        assert_eq!(e.endpoint, "/bin/sh");
        let e = run(
            r#"echo '{"Username":"u","Secret":"s","ExpiresAt":"soon"}'"#,
            "",
        )
        .unwrap_err();
        assert!(!e.to_string().contains("\"s\""), "{e}");
    }

    #[test]
    fn a_command_that_hangs_is_killed_at_its_deadline() {
        let started = std::time::Instant::now();
        let e = mint(
            "r",
            &params(&["/bin/sh", "-c", "sleep 30"]),
            &SecretString::from(String::new()),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(20), "{e}");
    }

    #[test]
    fn commands_are_absolute_argv_arrays_and_unknown_parameters_are_refused() {
        assert!(check(&params(&["/usr/bin/true"])).is_ok());
        assert!(check(&params(&["true"])).is_err());
        assert!(check(&Params::new()).is_err());
        let bad = Params::from([("command".to_owned(), "/bin/true --x".to_owned())]);
        assert!(check(&bad).is_err());
        let mut extra = params(&["/usr/bin/true"]);
        extra.insert("region".into(), "x".into());
        assert!(check(&extra).is_err());
    }
}
