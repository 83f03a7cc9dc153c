//! Docker's `config.json`: reading its plaintext `auths`, scrubbing them, pointing
//! `credsStore` at lockbox, and writing it back atomically with every other key, value
//! and order kept (`import`), and the way back out (`export`).
//!
//! Nothing here prints; the CLI (`manage`) turns what it finds into words.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, STANDARD_NO_PAD as B64_NO_PAD};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Largest config.json read.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// The `credsStore` value that selects lockbox.
pub const STORE_NAME: &str = "lockbox";
/// The username Docker uses for identity tokens.
pub const TOKEN_USERNAME: &str = "<token>";
/// What Go's `encoding/json` (so Docker) writes as `\u` escapes.
const GO_ESCAPED: [char; 5] = ['<', '>', '&', '\u{2028}', '\u{2029}'];

/// A config.json in memory, with the indentation it was written with.
pub struct DockerConfig {
    /// The file (symlinks resolved, as Docker follows them).
    pub path: PathBuf,
    /// Whether it existed.
    pub existed: bool,
    root: Map<String, Value>,
    indent: Vec<u8>,
    /// Docker writes no final newline; a hand-edited file usually has one.
    final_newline: bool,
    /// Docker (Go's `encoding/json`) writes `<`, `>`, `&`, U+2028 and U+2029 as `\u`
    /// escapes; serde_json writes them raw. Escaped unless the file has one raw.
    go_escapes: bool,
    original: Zeroizing<Vec<u8>>,
}

/// One plaintext credential found in `auths`.
pub struct Found {
    /// The `auths` key.
    pub server: String,
    /// The username (`<token>` for an identity token).
    pub username: String,
    /// The password or token.
    pub secret: SecretString,
}

/// What `import` found in `auths`.
#[derive(Default)]
pub struct Scan {
    /// Entries with a usable secret.
    pub found: Vec<Found>,
    /// Entries with a secret that cannot be read (bad base64, no colon, …), with why.
    pub invalid: Vec<(String, &'static str)>,
    /// Entries that hold no secret (`{}` markers).
    pub markers: Vec<String>,
}

impl DockerConfig {
    /// Reads `path`; a missing file is an empty config. Invalid JSON or a top level
    /// that is not an object is an error, and nothing is changed.
    pub fn read(path: &Path) -> Result<Self> {
        let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let mut bytes = Zeroizing::new(Vec::new());
        let existed = match crate::secret_io::open(&path, crate::secret_io::Accept::RegularFile) {
            Ok(f) => {
                // config.json holds base64 passwords: read into wiped memory that grows
                // by copying, never by an unwiped reallocation.
                bytes = crate::secret_io::read_wiped(f, MAX_CONFIG_BYTES as usize)
                    .map_err(|e| Error::io("read", &path, e))?;
                if bytes.len() as u64 > MAX_CONFIG_BYTES {
                    return Err(Error::Config {
                        path,
                        reason: format!("larger than {MAX_CONFIG_BYTES} bytes"),
                    });
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                let reason = crate::secret_io::reason("cannot open it", &e);
                return Err(Error::Config { path, reason });
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let root = if existed && !bytes.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(Error::Config {
                        path,
                        reason: "its top level is not a JSON object".into(),
                    });
                }
                Err(e) => {
                    return Err(Error::Config {
                        path,
                        reason: format!(
                            "it is not valid JSON (line {}, column {})",
                            e.line(),
                            e.column()
                        ),
                    });
                }
            }
        } else {
            Map::new()
        };
        let indent = detect_indent(&bytes);
        // Kept as found, so a file Docker wrote round-trips byte for byte apart from
        // what import changes (and a second import finds nothing to rewrite).
        let final_newline = !existed || bytes.is_empty() || bytes.ends_with(b"\n");
        let go_escapes = std::str::from_utf8(&bytes).is_ok_and(|t| !t.contains(GO_ESCAPED));
        Ok(DockerConfig {
            path,
            existed,
            root,
            indent,
            final_newline,
            go_escapes,
            original: bytes,
        })
    }

    /// The `credsStore` value, if any.
    pub fn creds_store(&self) -> Option<&str> {
        self.root.get("credsStore").and_then(Value::as_str)
    }

    /// The registries routed to other helpers by `credHelpers`.
    pub fn cred_helpers(&self) -> Vec<(String, String)> {
        self.root
            .get("credHelpers")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Reads every `auths` entry: `identitytoken` (stored as `<token>`), else `auth`
    /// (base64 `user:password`, split at the first colon), else `username`/`password`.
    pub fn scan(&self) -> Scan {
        let mut scan = Scan::default();
        let Some(auths) = self.root.get("auths").and_then(Value::as_object) else {
            return scan;
        };
        for (server, entry) in auths {
            let Some(entry) = entry.as_object() else {
                scan.invalid
                    .push((server.clone(), "the entry is not an object"));
                continue;
            };
            let field = |name: &str| {
                entry
                    .get(name)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            };
            if let Some((_, why)) = NOT_A_STRING.iter().find(|(name, _)| {
                entry
                    .get(*name)
                    .is_some_and(|v| !v.is_string() && !v.is_null())
            }) {
                scan.invalid.push((server.clone(), why));
            } else if let Some(token) = field("identitytoken") {
                scan.found.push(Found {
                    server: server.clone(),
                    username: TOKEN_USERNAME.into(),
                    secret: SecretString::from(token.to_owned()),
                });
            } else if let Some(auth) = field("auth") {
                match decode_auth(auth) {
                    Ok((username, secret)) => scan.found.push(Found {
                        server: server.clone(),
                        username,
                        secret,
                    }),
                    Err(why) => scan.invalid.push((server.clone(), why)),
                }
            } else if let (Some(u), Some(p)) = (field("username"), field("password")) {
                scan.found.push(Found {
                    server: server.clone(),
                    username: u.to_owned(),
                    secret: SecretString::from(p.to_owned()),
                });
            } else if field("password").is_some() || field("registrytoken").is_some() {
                scan.invalid
                    .push((server.clone(), "a password without a username"));
            } else {
                scan.markers.push(server.clone());
            }
        }
        scan
    }

    /// Makes the entry for `server` an empty `{}` marker, as Docker does with a
    /// credentials store. Returns whether anything changed.
    pub fn scrub(&mut self, server: &str) -> bool {
        let Some(entry) = self
            .root
            .get_mut("auths")
            .and_then(Value::as_object_mut)
            .and_then(|a| a.get_mut(server))
        else {
            return false;
        };
        if entry.as_object().is_some_and(Map::is_empty) {
            return false;
        }
        *entry = Value::Object(Map::new());
        true
    }

    /// Sets `"credsStore": "lockbox"` (in place if the key exists). Returns whether it
    /// changed anything.
    pub fn set_store(&mut self) -> bool {
        if self.creds_store() == Some(STORE_NAME) {
            return false;
        }
        self.root
            .insert("credsStore".into(), Value::String(STORE_NAME.into()));
        true
    }

    /// Removes `credsStore` if it selects lockbox (for `export --to-config`).
    pub fn unset_store(&mut self) -> bool {
        if self.creds_store() == Some(STORE_NAME) {
            self.root.shift_remove("credsStore");
            return true;
        }
        false
    }

    /// Sets `"credsStore": NAME` (for `unimport --to-helper NAME`). Returns whether it
    /// changed anything.
    pub fn set_store_to(&mut self, name: &str) -> bool {
        if self.creds_store() == Some(name) {
            return false;
        }
        self.root
            .insert("credsStore".into(), Value::String(name.into()));
        true
    }

    /// Removes the `credHelpers` entries that send a registry to lockbox (and the map
    /// when it is left empty), for `unimport`. Returns the registries.
    pub fn remove_lockbox_cred_helpers(&mut self) -> Vec<String> {
        let Some(map) = self
            .root
            .get_mut("credHelpers")
            .and_then(Value::as_object_mut)
        else {
            return Vec::new();
        };
        let ours: Vec<String> = map
            .iter()
            .filter(|(_, v)| v.as_str() == Some(STORE_NAME))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &ours {
            map.shift_remove(k);
        }
        if map.is_empty() && !ours.is_empty() {
            self.root.shift_remove("credHelpers");
        }
        ours
    }

    /// Puts an entry (from [`plaintext_entry`]) into `auths` (for `export --to-config`).
    pub fn put_auth(&mut self, server: &str, entry: Value) {
        let auths = self
            .root
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Some(auths) = auths.as_object_mut() {
            auths.insert(server.to_owned(), entry);
        }
    }

    /// The bytes this config would be written as.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.original.len() + 64));
        let fmt = serde_json::ser::PrettyFormatter::with_indent(&self.indent);
        let mut ser = serde_json::Serializer::with_formatter(&mut *out, fmt);
        // Serializing a Value into a Vec cannot fail.
        let _ = serde::Serialize::serialize(&self.root, &mut ser);
        if self.final_newline {
            out.push(b'\n');
        }
        let text = match std::str::from_utf8(&out) {
            Ok(t) if self.go_escapes && t.contains(GO_ESCAPED) => t,
            _ => return out,
        };
        // These characters only occur inside strings in JSON text, so escaping them
        // in the output bytes is escaping them in the strings. Sized exactly, so the
        // buffer never reallocates and leaves an unwiped copy behind.
        let extra = text.matches(GO_ESCAPED).count() * 5;
        let mut escaped = Zeroizing::new(Vec::with_capacity(out.len() + extra));
        let mut buf = [0u8; 4];
        for c in text.chars() {
            match c {
                '<' => escaped.extend_from_slice(b"\\u003c"),
                '>' => escaped.extend_from_slice(b"\\u003e"),
                '&' => escaped.extend_from_slice(b"\\u0026"),
                '\u{2028}' => escaped.extend_from_slice(b"\\u2028"),
                '\u{2029}' => escaped.extend_from_slice(b"\\u2029"),
                _ => escaped.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
            }
        }
        escaped
    }

    /// Whether writing would change the file.
    pub fn is_changed(&self) -> bool {
        !self.existed || *self.to_bytes() != *self.original
    }

    /// Writes the config atomically and durably, keeping the old file's mode, owner
    /// and group (as Docker's own save does). The new bytes go into an anonymous
    /// `O_TMPFILE` (mode 0600) in the same directory, which is fsynced, linked as
    /// `.<name>.lockbox.tmp`, renamed over the config, and only then given the old
    /// mode; the directory is fsynced last. A crash leaves no plaintext copy, except
    /// in the instant between link and rename (or, where the file system has no
    /// `O_TMPFILE`, at any point after the named 0600 file's creation): that fixed
    /// name is removed by the next run. No backup is kept: it would be a plaintext
    /// copy. Another user's file is rewritten only by root, which keeps its owner.
    pub fn write(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::create_dir_all(dir).map_err(|e| Error::io("create the directory", dir, e))?;
        let old = fs::metadata(&self.path).ok();
        let mode = old
            .as_ref()
            .map_or(0o600, |m| m.permissions().mode() & 0o7777);
        let owner = old.as_ref().map(|m| (m.uid(), m.gid()));
        let me = rustix::process::geteuid();
        if let Some((uid, _)) = owner
            && uid != me.as_raw()
            && !me.is_root()
        {
            return Err(Error::Config {
                path: self.path.clone(),
                reason: crate::messages::config_of_another_user(uid, me.as_raw()),
            });
        }
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.lockbox.tmp"));
        let bytes = self.to_bytes();
        let fill = |file: &mut File| -> io::Result<()> {
            file.write_all(&bytes)?;
            if let Some((uid, gid)) = owner {
                // Root rewriting a user's config: the new file is the user's (still
                // 0600). As the owner, this changes nothing.
                rustix::fs::fchown(
                    &*file,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                )?;
            }
            file.sync_all()
        };
        let file = match anonymous_file(dir) {
            Some(mut file) => {
                fill(&mut file).map_err(|e| Error::io("write", &self.path, e))?;
                match link_anonymous(&file, &tmp) {
                    Ok(true) => Some(file),
                    Ok(false) => None,
                    Err(e) => return Err(Error::io("link the temporary file", &tmp, e)),
                }
            }
            None => None,
        };
        let file = match file {
            Some(f) => f,
            None => {
                // The fallback: a named 0600 file, created exclusively.
                let create = || {
                    OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                        .open(&tmp)
                };
                let mut file = match create() {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        fs::remove_file(&tmp)
                            .map_err(|e| Error::io("remove the stale", &tmp, e))?;
                        create()
                    }
                    other => other,
                }
                .map_err(|e| Error::io("create", &tmp, e))?;
                if let Err(e) = fill(&mut file) {
                    let _ = fs::remove_file(&tmp);
                    return Err(Error::io("write", &self.path, e));
                }
                file
            }
        };
        if let Err(e) = fs::rename(&tmp, &self.path) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("write", &self.path, e));
        }
        // The old mode only now, under the config's own name: the temporary file was
        // never looser than 0600.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("set the mode of", &self.path, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("sync the directory of", &self.path, e))
    }
}

/// An anonymous 0600 file in `dir` (`O_TMPFILE`), or `None` where the kernel or file
/// system has none.
fn anonymous_file(dir: &Path) -> Option<File> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        dir,
        OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )
    .ok()
    .map(File::from)
}

/// Gives the anonymous `file` the name `tmp` (replacing one a crash left); `Ok(false)`
/// when it cannot be linked here (no /proc): nothing was named.
fn link_anonymous(file: &File, tmp: &Path) -> io::Result<bool> {
    use rustix::fs::{AtFlags, CWD};
    use rustix::io::Errno;
    use std::os::fd::AsRawFd;
    // Through /proc with AT_SYMLINK_FOLLOW: AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH.
    let fd_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    let link = || rustix::fs::linkat(CWD, &fd_path, CWD, tmp, AtFlags::SYMLINK_FOLLOW);
    let linked = match link() {
        Err(Errno::EXIST) => {
            fs::remove_file(tmp)?;
            link()
        }
        other => other,
    };
    match linked {
        Ok(()) => Ok(true),
        Err(Errno::NOENT | Errno::PERM | Errno::ACCESS | Errno::XDEV) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A Docker `auths` entry holding credentials in plaintext, as Docker writes it.
pub fn plaintext_entry(username: &str, secret: &str) -> Value {
    let mut m = Map::new();
    if username == TOKEN_USERNAME {
        m.insert("identitytoken".into(), Value::String(secret.to_owned()));
    } else {
        let pair = Zeroizing::new(format!("{username}:{secret}"));
        m.insert("auth".into(), Value::String(B64.encode(pair.as_bytes())));
    }
    Value::Object(m)
}

/// The credential fields of an `auths` entry, each with the reason given when its value
/// is not a string (Docker itself cannot load such a config).
const NOT_A_STRING: [(&str, &str); 4] = [
    ("auth", "its auth is not a string"),
    ("identitytoken", "its identitytoken is not a string"),
    ("username", "its username is not a string"),
    ("password", "its password is not a string"),
];

/// Decodes an `auth` value: base64 (padding optional) of `user:password`.
pub fn decode_auth(auth: &str) -> std::result::Result<(String, SecretString), &'static str> {
    let raw = Zeroizing::new(
        B64.decode(auth.trim())
            .or_else(|_| B64_NO_PAD.decode(auth.trim().trim_end_matches('=')))
            .map_err(|_| "its auth is not base64")?,
    );
    let text = std::str::from_utf8(&raw).map_err(|_| "its auth is not UTF-8")?;
    let (user, pass) = text
        .split_once(':')
        .ok_or("its auth has no ':' between user and password")?;
    if user.is_empty() {
        return Err("its auth has an empty username");
    }
    Ok((user.to_owned(), SecretString::from(pass.to_owned())))
}

/// The indentation of the first indented line (Docker writes tabs), else a tab.
fn detect_indent(bytes: &[u8]) -> Vec<u8> {
    for line in bytes.split(|&b| b == b'\n').skip(1) {
        let n = line
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if n > 0 {
            return line[..n].to_vec();
        }
    }
    b"\t".to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;
    use proptest::prelude::*;

    #[test]
    fn decode_auth_splits_at_first_colon() {
        let (u, p) = decode_auth(&B64.encode("bob:pa:ss")).unwrap();
        assert_eq!((u.as_str(), p.expose_secret()), ("bob", "pa:ss"));
        assert!(decode_auth("!!!").is_err());
        assert!(decode_auth(&B64.encode("nocolon")).is_err());
        assert!(decode_auth(&B64.encode(":pw")).is_err());
        let (u, _) = decode_auth(B64_NO_PAD.encode("ü:x").as_str()).unwrap();
        assert_eq!(u, "ü");
    }

    proptest! {
        #[test]
        fn plaintext_entry_roundtrip(user in "[^:]{1,20}", secret in any::<String>()) {
            prop_assume!(user != TOKEN_USERNAME);
            let v = plaintext_entry(&user, &secret);
            let (u, s) = decode_auth(v["auth"].as_str().unwrap()).unwrap();
            prop_assert_eq!(u, user);
            prop_assert_eq!(s.expose_secret(), secret.as_str());
        }
    }
}
