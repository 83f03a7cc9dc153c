//! Sealed sources in tests: a source added to an [`Env`]'s vault through the library
//! (the same `Vault::add_source` that `lockbox source add` calls), and `exec` source
//! scripts that count their runs.
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use lockbox::identity::parse_identities;
use lockbox::sources::exec::command_param;
use lockbox::vault::Vault;

use super::manage::{Env, Identity};

/// Adds the source `server` of `kind` with `params` and the sealed `secret` to
/// `env`'s vault, keyed by `owner`.
pub fn add_source(
    env: &Env,
    owner: &Identity,
    server: &str,
    username: &str,
    kind: &str,
    params: &[(String, String)],
    secret: &str,
) {
    let source = (server, username, kind);
    add_source_to(&env.vault_path(), &owner.secret, source, params, secret);
}

/// [`add_source`] for the vault file `path` opened by the age identity text
/// `identity`; `source` is the server URL, stored username and kind.
pub fn add_source_to(
    path: &Path,
    identity: &str,
    (server, username, kind): (&str, &str, &str),
    params: &[(String, String)],
    secret: &str,
) {
    let bytes = std::fs::read(path).unwrap();
    let mut vault = Vault::parse(&bytes, path).unwrap();
    let ids = parse_identities(identity.as_bytes(), "the test identity").unwrap();
    let key = vault.open_with_identities(&ids).unwrap();
    vault
        .add_source(
            &key,
            server,
            username,
            kind,
            params.iter().cloned().collect(),
            &SecretString::from(secret.to_owned()),
        )
        .unwrap();
    std::fs::write(path, vault.to_file_bytes().unwrap()).unwrap();
}

/// An executable `/bin/sh` script `name` in the test's world running `body`, and the
/// file each of its runs appends a line to.
pub fn script(env: &Env, name: &str, body: &str) -> (PathBuf, PathBuf) {
    script_in(&env.path(""), name, body)
}

/// [`script`] in the directory `dir`.
pub fn script_in(dir: &Path, name: &str, body: &str) -> (PathBuf, PathBuf) {
    let file = dir.join(format!("{name}.sh"));
    let runs = dir.join(format!("{name}.runs"));
    std::fs::write(
        &file,
        format!("#!/bin/sh\necho run >> '{}'\n{body}\n", runs.display()),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    (file, runs)
}

/// The `exec` parameters that run `program` with `args`.
pub fn exec_params(program: &Path, args: &[&str]) -> Vec<(String, String)> {
    let mut argv = vec![program.display().to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    vec![("command".to_owned(), command_param(&argv))]
}

/// How many times a script ran.
pub fn runs(file: &Path) -> usize {
    std::fs::read_to_string(file)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}
