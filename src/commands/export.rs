//! `export`: the entries in plaintext, in one of the formats of [`crate::docker::formats`]
//! (Docker auths, a Kubernetes Secret, `DOCKER_AUTH_CONFIG`, a containers auth.json),
//! printed or merged into a Docker config (the way out; explicit). Never printed to a
//! terminal unless `--allow-terminal` says so.
use std::io::{IsTerminal as _, Write};
use std::path::PathBuf;

use age::secrecy::ExposeSecret;
use clap::Args;

use super::KeyOpts;
use crate::agent::client::Agent;
use crate::config::Settings;
use crate::docker::config_json::DockerConfig;
use crate::docker::formats::{self, Format};
use crate::error::{Error, Usage};
use crate::exit::Exit;
use crate::keysource::{self, AgentUse, Terminal};
use crate::messages;
use crate::sources;
use crate::vault::crypto::{EntryOpener, MintedCredential};
use crate::vault::{Vault, View};

/// `export`
#[derive(Debug, Args)]
pub struct Opts {
    /// Merge the entries into this Docker config (and drop `credsStore: lockbox`)
    /// instead of printing them. Only with the docker-config format; --registry
    /// limits what is merged.
    #[arg(long, value_name = "PATH")]
    to_config: Option<PathBuf>,
    /// What to print (docs/FLEET.md): Docker's auths, a Kubernetes Secret, its
    /// .dockerconfigjson payload, a DOCKER_AUTH_CONFIG line, a containers auth.json.
    #[arg(long, value_enum, default_value_t, value_name = "FORMAT")]
    format: Format,
    /// Only this registry (matched as `get` matches a server URL). Repeatable.
    #[arg(long, value_name = "REGISTRY")]
    registry: Vec<String>,
    /// The Secret's name (k8s-secret).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The Secret's namespace (k8s-secret; default: none, so `kubectl apply -n` decides).
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Print the plaintext even when stdout is a terminal (where scrollback, screen
    /// sharing and terminal logs keep it).
    #[arg(long)]
    allow_terminal: bool,
    #[command(flatten)]
    key: KeyOpts,
}

/// Something that opens entries for `export`: the key flags, the environment, the
/// agent, else the terminal ([`keysource`]).
fn export_opener(
    vault: &Vault,
    settings: &Settings,
    k: &KeyOpts,
) -> Result<Box<dyn EntryOpener>, Error> {
    let flags = k.flags();
    super::check_identity_passphrase_file(settings, &flags)?;
    let list = keysource::sources(
        &settings.keys,
        &flags,
        Some((Agent::for_requests(settings), AgentUse::Verified)),
    );
    keysource::open_entries(vault, &list, &Terminal).map(|(o, _)| o)
}

fn usage(text: String) -> Error {
    Error::Usage(Usage::Export(messages::sanitize(&text)))
}

/// The Secret's metadata for `k8s-secret`, checked; an error for options that do not
/// go with the format.
fn secret_meta(o: &Opts) -> Result<Option<formats::SecretMeta>, Error> {
    match (o.format, &o.name) {
        (Format::K8sSecret, Some(name)) => {
            formats::check_secret_name(name).map_err(usage)?;
            if let Some(ns) = &o.namespace {
                formats::check_namespace(ns).map_err(usage)?;
            }
            Ok(Some(formats::SecretMeta {
                name: name.clone(),
                namespace: o.namespace.clone(),
            }))
        }
        (Format::K8sSecret, None) => Err(usage("--format k8s-secret needs --name NAME".into())),
        _ if o.name.is_some() || o.namespace.is_some() => Err(usage(
            "--name and --namespace go with --format k8s-secret".into(),
        )),
        _ => Ok(None),
    }
}

/// The credentials of `keys`: a static entry's secret, or the token minted now from
/// a source (as `get` answers it, through the same caches; one stderr line says when
/// it expires): never a source's own secret.
fn credentials<'k>(
    view: &View,
    keys: &[&'k str],
    opener: &dyn EntryOpener,
    vault: &std::path::Path,
    settings: &Settings,
) -> Result<Vec<(&'k str, MintedCredential)>, Error> {
    let public_key = view.vault().public().to_string();
    let place = sources::Place {
        vault: Some(vault),
        public_key: &public_key,
        trust: &settings.trust(),
    };
    let mut answers = Vec::with_capacity(keys.len());
    for &server in keys {
        let Some(entry) = view.lookup(server) else {
            continue;
        };
        let answer = sources::credential_for(entry, opener, &place)?;
        if entry.source().is_some() {
            let when = answer.expires_at.map(crate::vault::meta::rfc3339);
            eprintln!(
                "{}",
                messages::sanitize(&messages::exported_token(server, when.as_deref()))
            );
        }
        answers.push((server, answer));
    }
    Ok(answers)
}

/// `export`: the entries in plaintext, explicitly.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit, Error> {
    let meta = secret_meta(&o)?;
    if o.to_config.is_some() && o.format != Format::DockerConfig {
        return Err(usage(
            "--to-config writes a Docker config.json: it goes with --format docker-config only"
                .into(),
        ));
    }
    // Checked before any key is asked for: plaintext on a terminal stays in its
    // scrollback, a screen share or a terminal log.
    if o.to_config.is_none() && !o.allow_terminal && std::io::stdout().is_terminal() {
        return Err(usage(
            "refusing to print plaintext credentials to a terminal: redirect stdout (> file, | kubectl apply -f -) or pass --allow-terminal"
                .into(),
        ));
    }
    let path = settings.location.resolve()?;
    let bytes = path
        .read_bytes()?
        .ok_or_else(|| Error::NotInitialized(path.vault.clone()))?;
    let view = View::parse(&bytes, &path.vault)?;
    let keys = formats::select_registries(&o.registry, view.entries().iter().map(|e| e.server()))
        .map_err(|r| usage(format!("no entry in the vault matches --registry {r}")))?;
    let opener = export_opener(view.vault(), settings, &o.key)?;
    let answers = credentials(&view, &keys, opener.as_ref(), &path.vault, settings)?;
    // The secrets move into the credentials; the usernames are lent.
    let (names, secrets): (Vec<(&str, String)>, Vec<_>) = answers
        .into_iter()
        .map(|(server, a)| ((server, a.username), a.secret))
        .unzip();
    let creds: Vec<formats::Cred> = names
        .iter()
        .zip(secrets)
        .map(|((server, username), secret)| formats::Cred {
            server,
            username,
            secret,
        })
        .collect();
    match &o.to_config {
        None => {
            let rendered = formats::render(o.format, &creds, meta.as_ref());
            eprintln!("{}", messages::EXPORT_WARNING);
            for (server, why) in &rendered.left_out {
                eprintln!(
                    "{}",
                    messages::sanitize(&format!("warning: left out {server}: {why}"))
                );
            }
            std::io::stdout()
                .lock()
                .write_all(&rendered.bytes)
                .map_err(|e| Error::io("write", "stdout", e))?;
        }
        Some(p) => {
            let mut config = DockerConfig::read(p)?;
            for c in &creds {
                config.put_auth(
                    c.server,
                    crate::docker::config_json::plaintext_entry(
                        c.username,
                        c.secret.expose_secret(),
                    ),
                );
            }
            let unset = config.unset_store();
            config.write()?;
            eprintln!("{}", messages::EXPORT_WARNING);
            crate::outln!(
                "{}",
                messages::sanitize(&messages::exported_to(
                    &config.path.display().to_string(),
                    creds.len(),
                    unset
                ))
            );
        }
    }
    Ok(Exit::Ok)
}
