//! `export`: the entries as plaintext Docker `auths`, printed or merged into a config
//! (the way out; explicit).
use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use zeroize::Zeroizing;

use super::KeyOpts;
use crate::agent_client::Agent;
use crate::config::Settings;
use crate::dockerconfig::DockerConfig;
use crate::error::Error;
use crate::exit::Exit;
use crate::keys::EntryOpener;
use crate::keysource::{self, AgentUse, Terminal};
use crate::messages;
use crate::vault::Vault;

/// `export`
#[derive(Debug, Args)]
pub struct Opts {
    /// Merge the entries into this Docker config (and drop `credsStore: lockbox`)
    /// instead of printing them.
    #[arg(long, value_name = "PATH")]
    to_config: Option<PathBuf>,
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
    let list = keysource::sources(
        &settings.keys,
        &k.flags(),
        Some((Agent::for_user(), AgentUse::Verified)),
    );
    keysource::open_entries(vault, &list, &Terminal).map(|(o, _)| o)
}

/// `export`: the entries as plaintext Docker `auths`, explicitly.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    let opener = export_opener(&vault, settings, &o.key)?;
    let mut auths = serde_json::Map::new();
    for (server, e) in vault.entries() {
        let secret = opener.open_entry(server, &e.username, &e.secret)?;
        auths.insert(
            server.clone(),
            crate::dockerconfig::plaintext_entry(&e.username, &secret),
        );
    }
    match &o.to_config {
        None => {
            eprintln!("{}", messages::EXPORT_WARNING);
            let doc = serde_json::json!({ "auths": auths });
            let mut text = Zeroizing::new(serde_json::to_string_pretty(&doc).unwrap_or_default());
            text.push('\n');
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .map_err(|e| Error::io("write", "stdout", e))?;
        }
        Some(p) => {
            let mut config = DockerConfig::read(p)?;
            for (server, entry) in &auths {
                config.put_auth(server, entry.clone());
            }
            let unset = config.unset_store();
            config.write()?;
            eprintln!("{}", messages::EXPORT_WARNING);
            crate::outln!(
                "{}",
                messages::sanitize(&messages::exported_to(
                    &config.path.display().to_string(),
                    auths.len(),
                    unset
                ))
            );
        }
    }
    Ok(Exit::Ok)
}
