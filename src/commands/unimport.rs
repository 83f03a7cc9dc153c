//! `unimport`: the way back before lockbox is removed. The vault's credentials go where
//! Docker keeps them without a helper (plaintext `auths` in config.json, warned) or
//! into another helper (`--to-helper NAME`); `credsStore: lockbox`, the `credHelpers`
//! that name lockbox and the containers drop-in of `import` are removed, so Docker,
//! podman and skopeo no longer run a helper that is about to go.
//!
//! Nothing is lost on a crash: the other helper is written first, then config.json in
//! one atomic write (owner and mode kept), then the drop-in is removed; the vault is
//! never changed. Running it again after a crash finishes the job.
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use age::secrecy::ExposeSecret;
use clap::Args;

use super::KeyOpts;
use crate::agent::client::Agent;
use crate::config::Settings;
use crate::docker::config_json::{DockerConfig, STORE_NAME};
use crate::error::{Error, Usage};
use crate::exit::Exit;
use crate::keysource::{self, AgentUse, Terminal};
use crate::messages;

/// `unimport`
#[derive(Debug, Args)]
pub struct Opts {
    /// The Docker config to rewrite (default: $DOCKER_CONFIG/config.json, else
    /// ~/.docker/config.json).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Store the credentials in `docker-credential-NAME` (pass, secretservice, …) and
    /// set credsStore to NAME, instead of writing them into config.json in plaintext.
    #[arg(long, value_name = "NAME")]
    to_helper: Option<String>,
    #[command(flatten)]
    key: KeyOpts,
}

/// Runs `unimport`.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit, Error> {
    let location = &settings.location;
    if let Some(name) = &o.to_helper
        && (name.is_empty() || name.contains('/') || name == STORE_NAME)
    {
        // `Usage::Export` is the usage error that carries its own text.
        return Err(Usage::Export(messages::UNIMPORT_TO_ITSELF.to_owned()).into());
    }
    let cfg_path = match &o.config {
        Some(p) => p.clone(),
        None => location.docker_config_dir()?.join("config.json"),
    };
    let mut config = DockerConfig::read(&cfg_path)?;
    let path = location.resolve()?;
    let vault = path.read()?;

    let creds = open_all(&o, settings, vault.as_ref())?;

    let to = match &o.to_helper {
        Some(name) => {
            let program = format!("docker-credential-{name}");
            for (server, username, secret) in &creds {
                store_in_helper(&program, server, username, secret.expose_secret())?;
            }
            config.set_store_to(name);
            format!("into {program}, and credsStore is now \"{name}\"")
        }
        None => {
            if !creds.is_empty() {
                eprintln!("{}", messages::UNIMPORT_PLAINTEXT_WARNING);
            }
            for (server, username, secret) in &creds {
                config.put_auth(
                    server,
                    crate::docker::config_json::plaintext_entry(username, secret.expose_secret()),
                );
            }
            config.unset_store();
            format!(
                "into {} (plaintext, as Docker keeps them without a helper)",
                config.path.display()
            )
        }
    };
    let mut undone = Vec::new();
    let helpers = config.remove_lockbox_cred_helpers();
    if !helpers.is_empty() {
        undone.push(format!(
            "Removed credHelpers → lockbox for {}.",
            helpers.join(", ")
        ));
    }
    let changed = config.is_changed();
    if changed {
        config.write()?;
        if o.to_helper.is_none() {
            undone.push(format!(
                "Removed \"credsStore\": \"lockbox\" from {}.",
                config.path.display()
            ));
        }
    }
    if o.config.is_none()
        && let Some(home) = &location.home
        && let Some(p) = crate::docker::containers::remove(home)?
    {
        undone.push(format!(
            "Removed {} (podman, skopeo and buildah use their own auth.json again).",
            p.display()
        ));
    }
    if creds.is_empty() && !changed && undone.is_empty() {
        crate::outln!("{}", messages::UNIMPORT_NOTHING);
        return Ok(Exit::Ok);
    }
    crate::out!(
        "{}",
        super::sanitize_lines(&messages::unimported(
            creds.len(),
            &to,
            &undone,
            &path.vault.display().to_string()
        ))
    );
    Ok(Exit::Ok)
}

/// The credentials, opened (the key flags, the environment, the agent, else the
/// terminal, as `export`); none for a missing or empty vault.
fn open_all(
    o: &Opts,
    settings: &Settings,
    vault: Option<&crate::vault::Vault>,
) -> Result<Vec<(String, String, age::secrecy::SecretString)>, Error> {
    let mut creds: Vec<(String, String, age::secrecy::SecretString)> = Vec::new();
    if let Some(vault) = vault.filter(|v| !v.entries().is_empty()) {
        let flags = o.key.flags();
        super::check_identity_passphrase_file(settings, &flags)?;
        let list = keysource::sources(
            &settings.keys,
            &flags,
            Some((Agent::for_requests(settings), AgentUse::Verified)),
        );
        let (opener, _) = keysource::open_entries(vault, &list, &Terminal)?;
        for (server, e) in vault.entries() {
            if e.meta.source.is_some() {
                // A source's secret is a cloud credential, not a registry password:
                // never written out as one. It stays in the vault, which is kept.
                eprintln!(
                    "{}",
                    messages::sanitize(&messages::unimport_source_kept(server))
                );
                continue;
            }
            let secret = opener.open_entry(server, &e.username, &e.secret)?;
            creds.push((server.clone(), e.username.clone(), secret));
        }
    }
    Ok(creds)
}

/// `docker-credential-NAME store` with one entry on stdin (never in argv or the
/// environment; the payload in wiped memory); its stdout is discarded, its stderr is
/// the person's.
fn store_in_helper(program: &str, server: &str, username: &str, secret: &str) -> Result<(), Error> {
    let failed = |detail: String| Error::HelperFailed {
        program: program.to_owned(),
        action: "store",
        detail: messages::helper_store_failed(server, &detail),
    };
    // The same JSON `get` answers with, which is what `store` reads.
    let payload = crate::docker::go_json::credentials(server, username, secret);
    let mut child = Command::new(program)
        .arg("store")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                Error::HelperNotFound {
                    program: program.to_owned(),
                    action: "store",
                }
            }
            _ => failed(e.to_string()),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&payload)
            .map_err(|e| failed(e.to_string()))?;
    }
    let status = child.wait().map_err(|e| failed(e.to_string()))?;
    if !status.success() {
        return Err(failed(status.to_string()));
    }
    Ok(())
}
