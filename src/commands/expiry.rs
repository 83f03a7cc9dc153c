//! `expiry set`: an entry's expiry (by hand; works while the vault is locked) and its
//! rotation provider (needs the key: the settings are authenticated with it,
//! `src/vault/meta.rs`).
use clap::{Args, Subcommand, ValueEnum};

use super::{KeyOpts, entry_opener};
use crate::config::Settings;
use crate::error::{Error, Usage};
use crate::exit::Exit;
use crate::messages;
use crate::vault::meta::{self, Provider, Rotation};

/// `expiry`
#[derive(Debug, Subcommand)]
pub enum Opts {
    /// Set an entry's expiry (YYYY-MM-DD, an RFC 3339 time, or none) and/or its
    /// rotation provider. The date needs no key; --rotate does.
    Set(SetOpts),
}

/// The rotation providers, as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A GitLab personal/project/group access token that rotates itself.
    GitlabPat,
    /// A Harbor robot account whose secret is refreshed.
    HarborRobot,
}

/// `expiry set`
#[derive(Debug, Args)]
pub struct SetOpts {
    /// The registry, as stored (or any spelling `get` would find it by).
    registry: String,
    /// When the credential expires: 2027-01-31 (midnight UTC), 2027-01-31T12:00:00Z,
    /// or none.
    date: Option<String>,
    /// Renew this credential in place with `lockbox rotate`: gitlab-pat or
    /// harbor-robot (with --robot-id). Without a DATE, the expiry is then read from
    /// the registry's API.
    #[arg(long, value_enum, value_name = "KIND")]
    rotate: Option<Kind>,
    /// The Harbor robot account's id (harbor-robot).
    #[arg(long, value_name = "N", requires = "rotate")]
    robot_id: Option<u64>,
    /// The API's base URL (default: https:// and the registry's host). Plain http://
    /// only to 127.0.0.1, [::1] or localhost.
    #[arg(long, value_name = "URL", requires = "rotate")]
    api: Option<String>,
    /// Remove the rotation provider.
    #[arg(long, conflicts_with = "rotate")]
    no_rotate: bool,
    #[command(flatten)]
    key: KeyOpts,
}

/// Runs `expiry`.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit, Error> {
    match o {
        Opts::Set(o) => set(o, settings),
    }
}

fn usage(text: String) -> Error {
    Usage::Expiry(messages::sanitize(&text)).into()
}

/// The date argument: `Some(None)` for `none`, `Some(Some(t))` for a date.
fn parse_date_arg(date: Option<&str>) -> Result<Option<Option<u64>>, Error> {
    match date {
        None => Ok(None),
        Some(d) if d.eq_ignore_ascii_case("none") => Ok(Some(None)),
        Some(d) => meta::parse_date(d)
            .map(|t| Some(Some(t)))
            .ok_or_else(|| usage(messages::bad_expiry_date(d))),
    }
}

fn set(o: SetOpts, settings: &Settings) -> Result<Exit, Error> {
    let date = parse_date_arg(o.date.as_deref())?;
    if date.is_none() && o.rotate.is_none() && !o.no_rotate {
        return Err(usage(messages::EXPIRY_SET_NOTHING.into()));
    }
    let provider = match o.rotate {
        None => None,
        Some(Kind::GitlabPat) if o.robot_id.is_some() => {
            return Err(usage(
                "--robot-id goes with --rotate harbor-robot only".into(),
            ));
        }
        Some(Kind::GitlabPat) => Some(Provider::GitlabPat),
        Some(Kind::HarborRobot) => {
            let id = o
                .robot_id
                .ok_or_else(|| usage("--rotate harbor-robot needs --robot-id N".into()))?;
            Some(Provider::from_parts("harbor-robot", Some(id)).map_err(usage)?)
        }
    };
    if let Some(api) = &o.api {
        meta::check_api_url(api).map_err(|r| usage(messages::bad_api_url(&r)))?;
    }
    let path = settings.location.resolve()?;
    // The key is opened before the lock is taken (it may ask on the terminal).
    let opener = match &provider {
        Some(_) => Some(entry_opener(&path.read_existing()?, settings, &o.key)?),
        None => None,
    };
    let mut lines = Vec::new();
    path.update(|v| {
        let mut server = None;
        if let Some(when) = date {
            let key = v.set_expiry(&o.registry, when)?;
            lines.push(messages::expiry_set(
                &key,
                when.map(meta::rfc3339).as_deref(),
            ));
            server = Some(key);
        }
        if o.no_rotate {
            let key = v.set_rotation(&o.registry, |_, _| Ok(None))?;
            lines.push(messages::rotation_cleared(&key));
            server = Some(key);
        }
        if let (Some(p), Some(opener)) = (provider, &opener) {
            let mut shown = None;
            let key = v.set_rotation(&o.registry, |server, username| {
                let api = match &o.api {
                    Some(a) => a.clone(),
                    None => meta::default_api(server)
                        .ok_or_else(|| usage(messages::no_default_api(server)))?,
                };
                shown = Some((p.kind(), api.clone()));
                Rotation::new(opener.as_ref(), server, username, p, api).map(Some)
            })?;
            if let Some((kind, api)) = shown {
                lines.push(messages::rotation_set(&key, kind, &api));
            }
            server = Some(key);
        }
        Ok(((), server.is_some()))
    })?;
    for line in lines {
        crate::outln!("{}", messages::sanitize(&line));
    }
    // A provider just set, no date given: ask its API when the secret in force
    // expires, so `check` and `rotate --due` know at once (and a wrong --api or
    // --robot-id shows now, not at the first rotation).
    if let (Some(opener), None) = (&opener, date) {
        learn_expiry(&path, &o.registry, opener.as_ref())?;
    }
    Ok(Exit::Ok)
}

/// Reads the entry's expiry from its provider's API and stores it; a failure is a
/// warning (the provider stays set).
fn learn_expiry(
    path: &crate::file::VaultPath,
    registry: &str,
    opener: &dyn crate::vault::crypto::EntryOpener,
) -> Result<(), Error> {
    let vault = path.read_existing()?;
    let Some((server, entry)) = vault.lookup(registry) else {
        return Ok(());
    };
    let Some(rotation) = &entry.meta.rotation else {
        return Ok(());
    };
    rotation.verify(opener, server, &entry.username)?;
    let secret = entry.open(server, opener)?;
    let http = crate::rotate::Http::new(&rotation.api, rotation.provider.kind(), server)?;
    let asked = match rotation.provider {
        Provider::GitlabPat => crate::rotate::gitlab::expires_at(&http, &secret),
        Provider::HarborRobot { robot_id } => {
            crate::rotate::harbor::expires_at(&http, robot_id, &entry.username, &secret)
        }
    };
    match asked {
        Ok(when) => {
            let server = server.to_owned();
            path.update(|v| v.set_expiry(&server, when).map(|_| ((), true)))?;
            crate::outln!(
                "{}",
                messages::sanitize(&messages::expiry_learned(
                    &server,
                    when.map(meta::rfc3339).as_deref()
                ))
            );
        }
        Err(e) => eprintln!("{}", messages::expiry_not_learned(&e.message())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_arguments() {
        assert_eq!(parse_date_arg(None).unwrap(), None);
        assert_eq!(parse_date_arg(Some("None")).unwrap(), Some(None));
        assert_eq!(
            parse_date_arg(Some("2027-01-31")).unwrap(),
            Some(Some(1_801_353_600))
        );
        assert!(matches!(
            parse_date_arg(Some("31/01/2027")),
            Err(Error::Usage(Usage::Expiry(_)))
        ));
    }
}
