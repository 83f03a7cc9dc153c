//! `source add|list|remove`: sealed sources, the long-lived credentials `get` mints
//! registry tokens from (`docs/FORMAT.md` "Sources", `src/vault/source.rs`).
//!
//! - `add` reads the secret from a file or stdin (never argv), checks the kind's
//!   parameters and secret ([`sources::check`]), then, with the vault's key (the
//!   agent, the key flags and variables, else a prompt, as `expiry set --rotate`),
//!   seals the secret and authenticates the whole definition under the vault's lock.
//!   An `exec` program is resolved from `PATH` to an absolute path first, so the
//!   authenticated definition names exactly the file that runs.
//! - `list` needs no key; with one available without a prompt (the key variables or
//!   the agent, as `get`) it says whether each definition verifies.
//! - `remove` needs no key: removing is always safe (as `erase`). A static entry is
//!   not a source and stays.
//! - `trust` pins this vault's public key as one that may run sources here
//!   (`src/sources/trust.rs`); `add` does it too.
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use clap::{Args, Subcommand};

use super::{KeyOpts, SourceStanding, entry_opener, source_standing};
use crate::config::Settings;
use crate::error::{Error, Usage};
use crate::exit::Exit;
use crate::messages;
use crate::sources::{self, Params};
use crate::vault::Vault;

/// `source`
#[derive(Debug, Subcommand)]
pub enum Opts {
    /// Add a source, or replace one: its secret sealed, its whole definition
    /// authenticated with the vault's key (so it needs the key: the agent, a key flag
    /// or variable, else the terminal).
    #[command(subcommand)]
    Add(Box<Kind>),
    /// List the sources: registry, kind, username, parameters, and whether each
    /// definition verifies (with a key from the environment or the agent; never a
    /// prompt).
    List(ListOpts),
    /// Remove a registry's source (needs no key; a stored credential stays).
    Remove(RemoveOpts),
    /// Trust this vault's public key to run sources on this machine (the trust file;
    /// `init` and `source add` do it too). Compare the key with the one you expect
    /// first: a vault file someone replaced has another.
    Trust(TrustOpts),
}

/// The kinds `source add` makes.
#[derive(Debug, Subcommand)]
pub enum Kind {
    /// Amazon ECR: GetAuthorizationToken signed with an access key (after STS
    /// AssumeRole with --role-arn); username AWS, 12-hour tokens.
    AwsEcr(AwsEcr),
    /// Google Artifact Registry / GCR: an access token from a service-account key
    /// (JWT-bearer grant); username oauth2accesstoken.
    Gcp(Gcp),
    /// Azure Container Registry: a client secret, then ACR's token exchange; the
    /// zero-GUID username of ACR refresh tokens.
    AzureAcr(AzureAcr),
    /// Any OAuth2 issuer: a refresh-token grant; username oauth2accesstoken unless
    /// --username.
    Oauth2(OAuth2),
    /// A command that prints {"Username","Secret","ExpiresAt"} (as AWS's
    /// credential_process): `exec --registry R -- COMMAND [ARGS…]`. It runs as you,
    /// with the secret of --secret-file on its stdin.
    Exec(Exec),
}

/// The registries of a new source.
#[derive(Debug, Args)]
pub struct Registries {
    /// The registry this source answers `get` for. Repeat it for several: one source
    /// each, the same definition.
    #[arg(long = "registry", value_name = "REGISTRY", required = true)]
    registries: Vec<String>,
}

/// `source add aws-ecr`
#[derive(Debug, Args)]
pub struct AwsEcr {
    #[command(flatten)]
    registries: Registries,
    /// The AWS region (eu-west-1).
    #[arg(long, value_name = "REGION")]
    region: String,
    /// The access key's id (AKIA…; an identifier, not a secret).
    #[arg(long, value_name = "ID")]
    access_key_id: String,
    /// The file holding the secret access key (- for stdin).
    #[arg(long, value_name = "FILE")]
    secret_access_key_file: PathBuf,
    /// Mint with this role's credentials (STS AssumeRole).
    #[arg(long, value_name = "ARN")]
    role_arn: Option<String>,
    /// Ask this URL instead of the official HTTPS endpoint (plain http:// only to a
    /// loopback address). Part of the authenticated definition.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// Ask this STS URL for --role-arn instead of the region's official STS endpoint
    /// (else --endpoint's; plain http:// only to a loopback address). Part of the
    /// authenticated definition.
    #[arg(long, value_name = "URL", requires = "role_arn")]
    sts_endpoint: Option<String>,
    #[command(flatten)]
    key: KeyOpts,
}

/// `source add gcp`
#[derive(Debug, Args)]
pub struct Gcp {
    #[command(flatten)]
    registries: Registries,
    /// The service account's JSON key file (- for stdin).
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// The token endpoint instead of the key file's (plain http:// only to a loopback
    /// address). Part of the authenticated definition.
    #[arg(long, value_name = "URL")]
    token_uri: Option<String>,
    #[command(flatten)]
    key: KeyOpts,
}

/// `source add azure-acr`
#[derive(Debug, Args)]
pub struct AzureAcr {
    #[command(flatten)]
    registries: Registries,
    /// The Entra ID (Azure AD) tenant id.
    #[arg(long, value_name = "TENANT")]
    tenant: String,
    /// The service principal's application (client) id.
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// The file holding the client secret (- for stdin).
    #[arg(long, value_name = "FILE")]
    client_secret_file: PathBuf,
    /// The identity authority instead of Microsoft Entra's login.microsoftonline.com (plain
    /// http:// only to a loopback address). Part of the authenticated definition.
    #[arg(long, value_name = "URL")]
    authority: Option<String>,
    /// The registry's token exchange base URL instead of https:// and the registry
    /// (plain http:// only to a loopback address). Part of the authenticated
    /// definition.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    #[command(flatten)]
    key: KeyOpts,
}

/// `source add oauth2`
#[derive(Debug, Args)]
pub struct OAuth2 {
    #[command(flatten)]
    registries: Registries,
    /// The issuer's token endpoint (https://, or http:// to a loopback address).
    #[arg(long, value_name = "URL")]
    token_url: String,
    /// The OAuth2 client id.
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// The file holding the refresh token (- for stdin).
    #[arg(long, value_name = "FILE")]
    refresh_token_file: PathBuf,
    /// The username the registry expects with the token (default oauth2accesstoken).
    #[arg(long, value_name = "USER")]
    username: Option<String>,
    #[command(flatten)]
    key: KeyOpts,
}

/// `source add exec`
#[derive(Debug, Args)]
pub struct Exec {
    #[command(flatten)]
    registries: Registries,
    /// The username `list` shows before a first mint (the command's answer is what
    /// `get` gives).
    #[arg(long, value_name = "USER")]
    username: Option<String>,
    /// A secret sealed with the source and given to the command on its stdin at each
    /// mint (- to read it from stdin).
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    #[command(flatten)]
    key: KeyOpts,
    /// The command and its arguments, after `--`. A program without a slash is
    /// looked up in PATH once, here: the source keeps the absolute path found.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// `source list`
#[derive(Debug, Args)]
pub struct ListOpts {
    /// Print JSON for scripts: {"sources":[{"registry","kind","username","params",
    /// "definition"}]}, definition one of verified, tampered, locked.
    #[arg(long)]
    json: bool,
}

/// `source trust`
#[derive(Debug, Args)]
pub struct TrustOpts {
    /// Trust the vault only if its public key is this one (age1…), for scripts.
    #[arg(long, value_name = "KEY")]
    public_key: Option<String>,
}

/// `source remove`
#[derive(Debug, Args)]
pub struct RemoveOpts {
    /// The registry, as stored (or any spelling `get` would find it by).
    registry: String,
}

/// Runs `source`.
pub fn run(o: Opts, settings: &Settings) -> Result<Exit, Error> {
    match o {
        Opts::Add(kind) => add(plan(*kind, settings)?, settings),
        Opts::List(o) => list(&o, settings),
        Opts::Remove(o) => remove(&o, settings),
        Opts::Trust(o) => trust(&o, settings),
    }
}

fn usage(text: String) -> Error {
    Usage::Source(messages::sanitize(&text)).into()
}

/// A source to add, from the options of its kind.
struct Plan {
    kind: &'static str,
    registries: Vec<String>,
    params: Params,
    secret_file: Option<PathBuf>,
    key: KeyOpts,
    /// An `exec` program named without its full path, as found: shown once.
    resolved: Option<String>,
}

/// `params` with `name` set when `value` is given.
fn put(params: &mut Params, name: &str, value: Option<String>) {
    if let Some(v) = value {
        params.insert(name.to_owned(), v);
    }
}

fn plan(kind: Kind, settings: &Settings) -> Result<Plan, Error> {
    let mut params = Params::new();
    let make = |kind, r: Registries, params, secret_file, key| Plan {
        kind,
        registries: r.registries,
        params,
        secret_file,
        key,
        resolved: None,
    };
    Ok(match kind {
        Kind::AwsEcr(o) => {
            put(&mut params, "region", Some(o.region));
            put(&mut params, "access-key-id", Some(o.access_key_id));
            put(&mut params, "role-arn", o.role_arn);
            put(&mut params, "endpoint", o.endpoint);
            put(&mut params, "sts-endpoint", o.sts_endpoint);
            let f = Some(o.secret_access_key_file);
            make("aws-ecr", o.registries, params, f, o.key)
        }
        Kind::Gcp(o) => {
            put(&mut params, "token-uri", o.token_uri);
            make("gcp", o.registries, params, Some(o.key_file), o.key)
        }
        Kind::AzureAcr(o) => {
            put(&mut params, "tenant", Some(o.tenant));
            put(&mut params, "client-id", Some(o.client_id));
            put(&mut params, "authority", o.authority);
            put(&mut params, "endpoint", o.endpoint);
            let f = Some(o.client_secret_file);
            make("azure-acr", o.registries, params, f, o.key)
        }
        Kind::Oauth2(o) => {
            put(&mut params, "token-url", Some(o.token_url));
            put(&mut params, "client-id", Some(o.client_id));
            put(&mut params, "username", o.username);
            let f = Some(o.refresh_token_file);
            make("oauth2", o.registries, params, f, o.key)
        }
        Kind::Exec(o) => {
            let mut argv = o.command;
            // `PATH` as the process was started with (read once, in `config`).
            let program = resolve_program(&argv[0], settings.doctor.path.as_deref())?;
            let resolved = (program != argv[0]).then(|| program.clone());
            argv[0] = program;
            params.insert("command".into(), sources::exec::command_param(&argv));
            put(&mut params, "username", o.username);
            let mut p = make("exec", o.registries, params, o.secret_file, o.key);
            p.resolved = resolved;
            p
        }
    })
}

/// The absolute path of `program`: as given when absolute, made absolute against
/// the working directory when it holds a slash, else the first executable file of
/// that name in the absolute directories of `path_var` (a relative `PATH` entry would
/// name a different file from another directory). Must be an executable file now.
/// Symbolic links are kept as named, so a tool updated in place (`update-alternatives`,
/// a package upgrade) keeps working: the definition names the path that runs.
pub fn resolve_program(program: &str, path_var: Option<&OsStr>) -> Result<String, Error> {
    let not_found = || usage(messages::source_program_not_found(program));
    let found = if program.contains('/') {
        let p = std::path::absolute(program).map_err(|_| not_found())?;
        is_executable(&p).then_some(p)
    } else {
        path_var.and_then(|v| {
            std::env::split_paths(v)
                .filter(|d| d.is_absolute())
                .map(|d| d.join(program))
                .find(|p| is_executable(p))
        })
    };
    let found = found.ok_or_else(not_found)?;
    found
        .into_os_string()
        .into_string()
        .map_err(|_| usage(messages::source_program_not_utf8(program)))
}

/// Whether `p` is a regular file (through links) with an execute bit.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The registries given, each once, in order; an empty one or one with a control
/// character is refused.
fn registries(given: &[String]) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::with_capacity(given.len());
    for r in given {
        if r.trim().is_empty() || r.chars().any(char::is_control) {
            return Err(usage(messages::SOURCE_BAD_REGISTRY.into()));
        }
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    Ok(out)
}

fn add(p: Plan, settings: &Settings) -> Result<Exit, Error> {
    let registries = registries(&p.registries)?;
    // The secret and the definition are checked before any key is asked for.
    let secret = match &p.secret_file {
        Some(f) => crate::secret_io::read_secret_input(f)?,
        None => SecretString::from(String::new()),
    };
    sources::check(p.kind, &p.params, &secret).map_err(usage)?;
    let username = sources::stored_username(p.kind, &p.params);
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    for r in &registries {
        refuse_static(&vault, r)?;
    }
    // The key is opened before the lock is taken (it may ask on the terminal).
    let opener = entry_opener(&vault, settings, &p.key)?;
    let lines = path.update(|v| {
        // The key was opened for the file read above: a `public_key` replaced since
        // would have the secret sealed to someone else's key.
        if v.public() != vault.public() {
            return Err(Error::KeyMismatch);
        }
        let mut lines = Vec::with_capacity(registries.len());
        for r in &registries {
            refuse_static(v, r)?;
            let replaced = match v.lookup(r).map(|(k, _)| k.to_owned()) {
                Some(k) => v.remove_source(&k).map(|_| true)?,
                None => false,
            };
            let params = p.params.clone();
            v.add_source(opener.as_ref(), r, &username, p.kind, params, &secret)?;
            lines.push(messages::source_added(r, p.kind, &username, replaced));
        }
        Ok((lines, true))
    })?;
    // Whoever adds a source with the key trusts this vault to run it here.
    super::trust_vault_key(settings, &vault.public().to_string());
    for line in lines {
        crate::outln!("{}", messages::sanitize(&line));
    }
    if let Some(program) = &p.resolved {
        crate::outln!("{}", messages::sanitize(&messages::source_runs(program)));
    }
    Ok(Exit::Ok)
}

/// A static entry answering for `registry` stays: removing a credential is `erase`'s.
fn refuse_static(vault: &Vault, registry: &str) -> Result<(), Error> {
    match vault.lookup(registry) {
        Some((k, e)) if e.meta.source.is_none() => Err(Error::StaticEntryExists(k.to_owned())),
        _ => Ok(()),
    }
}

fn trust(o: &TrustOpts, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    let key = path.read_existing()?.public().to_string();
    if let Some(expected) = &o.public_key
        && expected.trim() != key
    {
        return Err(usage(messages::trust_key_differs(expected, &key)));
    }
    let new = settings.trust().record(&key)?;
    let shown = path.vault.display().to_string();
    crate::outln!(
        "{}",
        messages::sanitize(&messages::vault_key_trusted(&key, &shown, new))
    );
    Ok(Exit::Ok)
}

fn remove(o: &RemoveOpts, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    let server = path
        .update(|v| v.remove_source(&o.registry).map(|k| (k, true)))
        .map_err(|e| match e {
            // Nothing of that name at all: say "no source", not "no entry".
            Error::NoSuchEntry(_) => Error::NoSuchSource(o.registry.clone()),
            // A stored credential: say how that one goes.
            Error::NoSuchSource(_) => usage(messages::source_remove_static(&o.registry)),
            other => other,
        })?;
    crate::outln!("{}", messages::sanitize(&messages::source_removed(&server)));
    Ok(Exit::Ok)
}

/// The parameters that point a source somewhere other than its official endpoint.
pub const OVERRIDES: &[&str] = &["endpoint", "sts-endpoint", "token-uri", "authority"];

fn list(o: &ListOpts, settings: &Settings) -> Result<Exit, Error> {
    let path = settings.location.resolve()?;
    let vault = path.read_existing()?;
    let found: Vec<_> = vault
        .entries()
        .iter()
        .filter(|(_, e)| e.meta.source.is_some())
        .collect();
    // A key only when one is at hand without a prompt, as `get` finds it.
    let opener = if found.is_empty() {
        None
    } else {
        match crate::keysource::for_get(&vault, settings) {
            Ok(o) => Some(o),
            Err(Error::Locked) => None,
            Err(e) => {
                eprintln!(
                    "{}",
                    messages::sanitize(&messages::sources_not_verified(&e.message()))
                );
                None
            }
        }
    };
    let public_key = vault.public().to_string();
    let trusted = settings.trust().allows(&public_key);
    let rows: Vec<_> = found
        .iter()
        .map(|(server, e)| (*server, *e, source_standing(opener.as_deref(), server, e)))
        .collect();
    if o.json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(server, e, s)| {
                let def = e.meta.source.as_ref().map(|d| (&d.kind, &d.params));
                let (kind, params) = def.map_or((None, None), |(k, p)| (Some(k), Some(p)));
                serde_json::json!({
                    "registry": server, "kind": kind, "username": e.username,
                    "params": params, "definition": s.name(),
                })
            })
            .collect();
        let v = serde_json::json!({
            "public_key": public_key, "trusted": trusted, "sources": list,
        });
        crate::outln!("{v}");
        return Ok(Exit::Ok);
    }
    if rows.is_empty() {
        crate::outln!("{}", messages::NO_SOURCES);
        return Ok(Exit::Ok);
    }
    let mut text = String::new();
    for (server, e, s) in &rows {
        let Some(def) = &e.meta.source else { continue };
        text.push_str(&messages::source_line(
            server,
            &def.kind,
            &e.username,
            shown(*s),
        ));
        text.push_str(&params_lines(&def.params));
    }
    text.push_str(&messages::vault_key_standing(&public_key, trusted));
    text.push('\n');
    crate::output::write(super::sanitize_lines(&text).as_bytes())?;
    Ok(Exit::Ok)
}

/// What `list` shows of a definition's standing.
fn shown(s: SourceStanding) -> &'static str {
    match s {
        SourceStanding::Verified => messages::SOURCE_VERIFIED,
        SourceStanding::Tampered => messages::SOURCE_SHOWN_TAMPERED,
        SourceStanding::Locked => messages::SOURCE_UNVERIFIED,
    }
}

/// A source's parameters for people, one indented line each; an endpoint override
/// says so.
fn params_lines(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(name, value)| {
            let overrides = OVERRIDES.contains(&name.as_str());
            messages::source_param_line(name, value, overrides)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_resolve_to_absolute_executables() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("mint-tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("not-exec");
        std::fs::write(&plain, "").unwrap();
        let path = std::env::join_paths(["relative/dir", dir.path().to_str().unwrap()]).unwrap();
        assert_eq!(
            resolve_program("mint-tool", Some(&path)).unwrap(),
            tool.to_str().unwrap()
        );
        assert_eq!(
            resolve_program(tool.to_str().unwrap(), None).unwrap(),
            tool.to_str().unwrap()
        );
        assert!(resolve_program("not-exec", Some(&path)).is_err());
        assert!(resolve_program("absent", Some(&path)).is_err());
        assert!(resolve_program("mint-tool", None).is_err());
        // A relative PATH entry is never searched, even one that names the directory.
        let cwd = std::env::current_dir().unwrap();
        let up = "../".repeat(cwd.components().count() - 1);
        let rel = format!("{up}{}", dir.path().strip_prefix("/").unwrap().display());
        assert!(Path::new(&rel).join("mint-tool").exists());
        let rel = std::env::join_paths([rel]).unwrap();
        assert!(resolve_program("mint-tool", Some(&rel)).is_err());
    }

    #[test]
    fn registries_are_deduplicated_and_checked() {
        let given = vec!["a.io".to_owned(), "b.io".to_owned(), "a.io".to_owned()];
        assert_eq!(registries(&given).unwrap(), ["a.io", "b.io"]);
        assert!(registries(&[" ".to_owned()]).is_err());
        assert!(registries(&["a\u{1b}[2J".to_owned()]).is_err());
    }

    #[test]
    fn overrides_are_marked() {
        let p = BTreeMap::from([
            ("endpoint".to_owned(), "http://127.0.0.1:9".to_owned()),
            ("region".to_owned(), "eu-west-1".to_owned()),
        ]);
        assert_eq!(
            params_lines(&p),
            "    endpoint: http://127.0.0.1:9  (endpoint override)\n    region: eu-west-1\n"
        );
    }
}
