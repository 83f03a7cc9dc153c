//! The containers tools (podman, skopeo, buildah: containers/image) and lockbox. They
//! ignore Docker's `credsStore`; a registries.conf drop-in saying
//! `credential-helpers = ["lockbox"]` makes them run `docker-credential-lockbox` for
//! every registry, for `login`, `logout` and pulls alike (docs/MIGRATION.md §6).
//!
//! `import` writes the drop-in, `unimport` removes it, `doctor` reads which
//! `credential-helpers` the tools will use. The user's drop-in directory is
//! `~/.config/containers/registries.conf.d`: skopeo 1.9.3 reads it under `HOME` and
//! ignores `XDG_CONFIG_HOME`. Nothing here prints.
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The drop-in, relative to the home directory.
pub const DROP_IN: &str = ".config/containers/registries.conf.d/50-lockbox.conf";

/// What `import` writes there.
pub const DROP_IN_TEXT: &str = "\
# Written by `docker-credential-lockbox import`: podman, skopeo and buildah keep
# registry credentials in the lockbox vault (docs/MIGRATION.md, section 6).
# `docker-credential-lockbox unimport` removes this file.
credential-helpers = [\"lockbox\"]
";

/// The system's main file and drop-in directory (read by [`effective_helpers`]).
const SYSTEM_CONF: &str = "/etc/containers/registries.conf";
const SYSTEM_DROP_INS: &str = "/etc/containers/registries.conf.d";
/// The user's main file (replaces the system's when it exists).
const USER_CONF: &str = ".config/containers/registries.conf";

/// The drop-in's path for the user whose home is `home`.
pub fn drop_in_path(home: &Path) -> PathBuf {
    home.join(DROP_IN)
}

/// The `credential-helpers` a registries.conf text sets at its top level, when it sets
/// it: `credential-helpers = ["a", "b"]` on one line (the only form written by hand in
/// practice and by `import`). `None` when the key is absent (or in a table).
pub fn credential_helpers(text: &str) -> Option<Vec<String>> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            // A table starts: top-level keys are over.
            break;
        }
        let Some(rest) = line.strip_prefix("credential-helpers") else {
            continue;
        };
        let Some(value) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let value = value.split('#').next().unwrap_or("").trim();
        let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) else {
            continue;
        };
        found = Some(
            inner
                .split(',')
                .map(|h| h.trim().trim_matches(['"', '\'']).to_owned())
                .filter(|h| !h.is_empty())
                .collect(),
        );
    }
    found
}

/// The `credential-helpers` the tools use: the last file that sets it wins, in the
/// order containers/image reads them — the user's registries.conf (else the system's),
/// then the system's drop-ins, then the user's, each directory in name order.
/// `None`: no file sets it (the tools' default, their own auth.json files).
pub fn effective_helpers(home: Option<&Path>) -> Option<(PathBuf, Vec<String>)> {
    let mut files = Vec::new();
    let user_conf = home.map(|h| h.join(USER_CONF));
    match &user_conf {
        Some(p) if p.is_file() => files.push(p.clone()),
        _ => files.push(PathBuf::from(SYSTEM_CONF)),
    }
    files.extend(conf_files(Path::new(SYSTEM_DROP_INS)));
    if let Some(h) = home {
        files.extend(conf_files(&h.join(DROP_IN).with_file_name("")));
    }
    let mut found = None;
    for f in files {
        // Bounded: these are small configuration files.
        let Ok(text) = read_small_text(&f) else {
            continue;
        };
        if let Some(h) = credential_helpers(&text) {
            found = Some((f, h));
        }
    }
    found
}

/// Most bytes read of one registries.conf file.
const MAX_CONF_BYTES: u64 = 1 << 20;

/// A configuration file's text, at most [`MAX_CONF_BYTES`] of it, through the one
/// open for inputs (a FIFO or device there is refused, never waited on).
fn read_small_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    crate::secret_io::open(path, crate::secret_io::Accept::RegularFile)?
        .take(MAX_CONF_BYTES)
        .read_to_string(&mut text)?;
    Ok(text)
}

fn conf_files(dir: &Path) -> Vec<PathBuf> {
    let mut list: Vec<PathBuf> = fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "conf") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    list.sort();
    list
}

/// What [`set_up`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum SetUp {
    /// Wrote the drop-in.
    Wrote(PathBuf),
    /// It was there already, naming lockbox.
    Already(PathBuf),
    /// A file of the same name says something else: left as it is.
    Other(PathBuf),
}

/// Writes the drop-in (atomically, mode 0644: it holds no secret) unless a file of that
/// name is there already.
pub fn set_up(home: &Path) -> Result<SetUp> {
    let path = drop_in_path(home);
    if let Ok(text) = read_small_text(&path) {
        return Ok(
            if credential_helpers(&text).is_some_and(|h| h == ["lockbox"]) {
                SetUp::Already(path)
            } else {
                SetUp::Other(path)
            },
        );
    }
    let dir = path.with_file_name("");
    fs::create_dir_all(&dir).map_err(|e| Error::io("create the directory", &dir, e))?;
    let tmp = dir.join(format!(".50-lockbox.conf.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(DROP_IN_TEXT.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, &path))
        .and_then(|()| File::open(&dir)?.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("write", &path, e));
    }
    Ok(SetUp::Wrote(path))
}

/// Removes the drop-in when it routes the tools to lockbox only (as `import` wrote
/// it); returns the path when it did. A file that says something else is left.
pub fn remove(home: &Path) -> Result<Option<PathBuf>> {
    let path = drop_in_path(home);
    let Ok(text) = read_small_text(&path) else {
        return Ok(None);
    };
    if credential_helpers(&text).is_none_or(|h| h != ["lockbox"]) {
        return Ok(None);
    }
    fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
    if let Some(dir) = path.parent() {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drop_in_names_lockbox() {
        assert_eq!(
            credential_helpers(DROP_IN_TEXT),
            Some(vec!["lockbox".to_owned()])
        );
    }

    #[test]
    fn credential_helpers_is_read_at_the_top_level_only() {
        assert_eq!(
            credential_helpers("unqualified-search-registries = []\n"),
            None
        );
        assert_eq!(
            credential_helpers("credential-helpers=[ 'containers-auth.json' , \"lockbox\" ] # x\n"),
            Some(vec![
                "containers-auth.json".to_owned(),
                "lockbox".to_owned()
            ])
        );
        assert_eq!(
            credential_helpers("[[registry]]\ncredential-helpers = [\"lockbox\"]\n"),
            None
        );
        // The last one wins, as in TOML a second key would be an error anyway.
        assert_eq!(
            credential_helpers("credential-helpers = [\"a\"]\ncredential-helpers = []\n"),
            Some(vec![])
        );
    }

    #[test]
    fn set_up_then_remove() {
        let home = tempfile::tempdir().unwrap();
        let path = drop_in_path(home.path());
        assert_eq!(set_up(home.path()).unwrap(), SetUp::Wrote(path.clone()));
        assert_eq!(set_up(home.path()).unwrap(), SetUp::Already(path.clone()));
        let (from, helpers) = effective_helpers(Some(home.path())).unwrap();
        assert_eq!((from, helpers), (path.clone(), vec!["lockbox".to_owned()]));
        assert_eq!(remove(home.path()).unwrap(), Some(path.clone()));
        assert!(!path.exists());
        assert_eq!(remove(home.path()).unwrap(), None);
        // Someone else's file of that name is neither replaced nor removed.
        fs::write(&path, "credential-helpers = [\"pass\"]\n").unwrap();
        assert_eq!(set_up(home.path()).unwrap(), SetUp::Other(path.clone()));
        assert_eq!(remove(home.path()).unwrap(), None);
        assert!(path.exists());
    }
}
