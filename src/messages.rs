//! Every user-facing string: the protocol's fixed texts, errors, hints and prompts.
//!
//! The rule for where text lives (checked by `src/layers.rs`): a string a person or a
//! client may see is a constant or a function here, taking plain values (`&str`,
//! numbers, std types), never a crate type, so this leaf imports nothing but
//! `sanitize`. An error type's text is one of them: `Error::message` calls them, and an
//! `#[error]` attribute, where a type has one, is `#[error("{}", crate::messages::…)]`
//! or `transparent`, never a literal of its own.
//!
//! The protocol constants are compared byte for byte by clients
//! (`docker-credential-helpers/credentials/error.go`); never add context to them.

/// Binary name, as clients exec it.
pub const BIN: &str = "docker-credential-lockbox";

/// A `get` for a server with no entry. Go clients compare it exactly after trimming,
/// docker-py as a substring: anything added breaks "not logged in" detection.
pub const NOT_FOUND: &str = "credentials not found in native keychain";
/// `store`, `get` or `erase` without a server URL.
pub const MISSING_SERVER_URL: &str = "no credentials server URL";
/// `store` without a username.
pub const MISSING_USERNAME: &str = "no credentials username";
/// No action given: printed on stdout, exit 1, as the Go helpers do.
pub const USAGE: &str = "Usage: docker-credential-lockbox <store|get|erase|list|version>";

/// The `version` action's line: `<name> (<package>) <version>`, the upstream shape.
pub fn version_line() -> String {
    format!(
        "{BIN} (docker-credential-lockbox) v{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// An action this helper does not know.
pub fn unknown_action(action: &str) -> String {
    format!("{BIN}: unknown action: {action}")
}

/// Hint on stderr after an unknown action.
pub const UNKNOWN_ACTION_HINT: &str =
    "run 'docker-credential-lockbox --help' for the commands and protocol actions";

/// The line on stderr after an unknown word that is close to a command or action
/// (`unlok`, `stauts`, `recipient`); clap's own wording for flags.
pub fn did_you_mean(word: &str) -> String {
    format!("  tip: a similar command exists: '{word}'")
}

/// Bare `lockbox` (no argument): stdout keeps the protocol's usage line; this goes to
/// stderr, for the person who typed it.
pub const NO_ARGUMENTS_HINT: &str = "docker-credential-lockbox is run by Docker with one protocol action; the commands for people (init, unlock, status, doctor, import, …) are listed by 'docker-credential-lockbox --help'";

/// `get` at the default path, and no vault there: stdout says not-found (there are no
/// credentials); this one line goes to stderr, which Docker shows, so "no basic auth
/// credentials" is not all a person sees.
pub fn get_no_vault(path: &str, user: &str) -> String {
    format!(
        "lockbox: no vault at {path} for {user}, so no credentials: create one with 'docker-credential-lockbox init --passphrase' (then 'docker login'), or set LOCKBOX_VAULT to the vault you meant"
    )
}

/// [`get_no_vault`] when root runs the helper on behalf of a `sudo` user.
pub fn get_no_vault_sudo(path: &str, sudo_user: &str) -> String {
    format!(
        "lockbox: no vault at {path} for root: 'sudo docker' runs the helper as root, with root's config and vault, not {sudo_user}'s; run docker without sudo (the docker group), or see BUILD_SERVER.md, \"sudo docker\" (/usr/share/doc/docker-credential-lockbox/docs/ or docs/ of the source)"
    )
}

/// `get` found an entry but no key source is available. Deliberately not the not-found
/// text: a locked vault must never look like "no credentials" (a silent anonymous pull).
pub const LOCKED: &str =
    "lockbox is locked: run 'docker-credential-lockbox unlock' or set LOCKBOX_IDENTITY";

/// Prefix of the error for input over the bound.
pub fn input_too_large(limit: usize) -> String {
    format!("input is larger than {limit} bytes; lockbox refuses it")
}

/// The `store` payload is not the JSON object clients send.
pub fn invalid_store_json(detail: &str) -> String {
    format!(
        "invalid credentials JSON on stdin ({detail}); expected {{\"ServerURL\":…,\"Username\":…,\"Secret\":…}}"
    )
}

/// There is no vault yet where a write needs one.
pub fn not_initialized(path: &str) -> String {
    format!("no lockbox vault at {path}: run 'docker-credential-lockbox init' first")
}

/// `import --config PATH` names a file that does not exist.
pub const CONFIG_NAMED_MISSING: &str = "it does not exist; check the path given to --config (import creates only the default config.json)";

/// A retry follows: the two new passphrases differed.
pub const PASSPHRASES_DIFFER: &str = "the passphrases did not match";
/// A retry follows: the new passphrase was empty.
pub const PASSPHRASE_IS_EMPTY: &str = "the passphrase is empty";

/// A new passphrase was empty, mistyped or declined: the attempt that follows.
pub fn try_again(attempt: usize, of: usize) -> String {
    format!("try again ({attempt} of {of})")
}

/// A new passphrase shorter than `min` characters.
pub fn weak_passphrase(min: usize) -> String {
    format!(
        "warning: this passphrase is shorter than {min} characters; anyone who gets a copy of the vault file can try passphrases offline (four or more random words are better)"
    )
}

/// The question after [`weak_passphrase`] on a terminal.
pub const USE_WEAK_PASSPHRASE: &str = "Use it anyway? [y/N] ";

/// Every attempt at a new passphrase ended with a weak one not confirmed.
pub const WEAK_PASSPHRASE_DECLINED: &str =
    "no passphrase was chosen (a short one was not confirmed); nothing was changed";

/// `LOCKBOX_VAULT` names a missing file.
pub fn named_vault_missing(path: &str) -> String {
    format!(
        "LOCKBOX_VAULT names {path}, which does not exist: check the path, or create the vault with 'docker-credential-lockbox init'"
    )
}

/// A vault already exists and `init` was not forced.
pub fn already_exists(path: &str) -> String {
    format!(
        "a lockbox vault already exists at {path}; pass --force to replace it (its entries are lost)"
    )
}

/// The vault, its lock or its temporary file is not a regular file.
pub fn not_regular_file(path: &str, kind: &str) -> String {
    format!(
        "{path} is {kind}, not a regular file, so lockbox will not open it; move it away (or set LOCKBOX_VAULT to the vault file) and try again"
    )
}

/// A file named as an input (not the vault) is not a regular file: the reason in its
/// one-line error.
pub fn not_a_regular_input(kind: &str) -> String {
    format!("it is {kind}, not a regular file")
}

/// A pipe named as a key, passphrase or recipients file did not finish in time.
pub fn pipe_silent(secs: u64) -> String {
    format!(
        "it is a FIFO (named pipe) or pipe, and its writer did not finish within {secs} s (lockbox waits that long for a pipe)"
    )
}

/// The systemd credential is a symbolic link.
pub fn input_is_a_link() -> String {
    "it is a symbolic link; systemd writes the credential as a file".to_owned()
}

/// The vault file could not be parsed or validated.
pub fn corrupt(path: &str, reason: &str) -> String {
    format!(
        "the lockbox vault at {path} is damaged ({reason}); it was left untouched — restore it from a backup or move it away"
    )
}

/// A vault format version this build does not know.
pub fn unsupported_version(path: &str, version: u64) -> String {
    format!(
        "the lockbox vault at {path} has format version {version}, which this build does not understand; upgrade docker-credential-lockbox"
    )
}

/// Waiting for another process's lock took too long.
pub fn lock_timeout(path: &str, secs: u64) -> String {
    format!(
        "timed out after {secs}s waiting for the lock on {path}; another docker-credential-lockbox still holds it — try again"
    )
}

/// An I/O failure, with what was being done.
pub fn io(what: &str, path: &str, err: &std::io::Error) -> String {
    // EFBIG: the new file is larger than RLIMIT_FSIZE allows (SIGXFSZ is caught).
    if err.raw_os_error() == Some(27) {
        return format!(
            "could not {what} {path}: {err}; the file-size limit (ulimit -f) is below its new size — raise it and try again"
        );
    }
    format!("could not {what} {path}: {err}")
}

/// Argon2id parameters over the bound.
pub const EXCESSIVE_WORK: &str = "the vault's passphrase slot asks for more Argon2id work than lockbox allows; the file may be hostile";

/// No slot opened with the passphrase.
pub const WRONG_PASSPHRASE: &str = "wrong passphrase: it does not open this vault";
/// The vault has no passphrase slot but a passphrase was given.
pub const NO_PASSPHRASE_SLOT: &str = "this vault has no passphrase slot; open it with an age identity (LOCKBOX_IDENTITY or LOCKBOX_IDENTITY_FILE)";
/// No age slot opened with the identities.
pub const NO_MATCHING_IDENTITY: &str = "none of the given identities opens this vault: check LOCKBOX_IDENTITY / LOCKBOX_IDENTITY_FILE against 'docker-credential-lockbox status'";
/// The vault has no age slot but identities were given.
pub const NO_AGE_SLOT: &str =
    "this vault has no age slots; open it with its passphrase (LOCKBOX_PASSPHRASE_FILE)";
/// A slot opened but the key inside does not belong to this vault.
pub const KEY_MISMATCH: &str = "a slot of this vault holds a key that does not match the vault's public key; the file has been tampered with";

/// The slots MAC does not verify.
pub const SLOTS_TAMPERED: &str = "the vault's slots were changed by someone who does not hold its key (the slots MAC does not match); the file has been tampered with — restore it from a backup";

/// An entry failed to decrypt or its binding does not match.
pub fn entry_tampered(server: &str) -> String {
    format!(
        "the entry for {server} does not decrypt with this vault's key or was moved from another entry; store it again with 'docker login'"
    )
}

/// An identity source could not be used.
pub fn bad_identity(source: &str, reason: &str) -> String {
    format!("cannot use the identity in {source}: {reason}")
}

/// A passphrase file could not be used.
pub fn bad_passphrase_file(path: &str, reason: &str) -> String {
    format!("cannot use the passphrase file {path}: {reason}")
}

/// Whether text given where a public key belongs is a private key (an age identity
/// or a PEM/OpenSSH private key block): such text is never repeated back.
pub fn is_private_key(text: &str) -> bool {
    // Bech32 may be written in either case; PEM armor is always upper case.
    // An age plugin identity (`AGE-PLUGIN-…`) may hold key material too.
    let upper = text.to_ascii_uppercase();
    upper.contains("AGE-SECRET-KEY-1")
        || upper.contains("AGE-PLUGIN-")
        || text.contains("PRIVATE KEY-----")
}

/// A private key was given where a recipient belongs.
pub const PRIVATE_KEY_NOT_RECIPIENT: &str = "that is a private key, not a recipient; give its public key instead (age-keygen -y FILE, or ssh-keygen -y -f FILE) and keep the private key out of command lines and recipient files";

/// A recipient string could not be parsed. A private key is not quoted back.
///
/// The text is never repeated: what is not a recipient may be a line of a private key
/// (line 5 of an OpenSSH ed25519 key holds its seed).
pub fn bad_recipient(recipient: &str) -> String {
    if is_private_key(recipient) {
        return PRIVATE_KEY_NOT_RECIPIENT.to_owned();
    }
    format!(
        "a recipient argument is not a recipient lockbox can use ({NOT_REPEATED}); {EXPECTED_RECIPIENT}"
    )
}

/// A line of a recipients file could not be parsed; like [`bad_recipient`], the line
/// is never repeated.
pub fn bad_recipient_line(file: &str, line: usize, recipient: &str) -> String {
    if is_private_key(recipient) {
        return format!("line {line} of {file}: {PRIVATE_KEY_NOT_RECIPIENT}");
    }
    format!(
        "line {line} of {file} is not a recipient lockbox can use ({NOT_REPEATED}); {EXPECTED_RECIPIENT}"
    )
}

const NOT_REPEATED: &str = "its text is not shown: it could be part of a private key";
const EXPECTED_RECIPIENT: &str = "expected an age public key (age1…), an age plugin or tag recipient (age1NAME1…, age1tag1…), 'ssh-ed25519 …' or 'ssh-rsa …'";

/// A file is over its size bound (the reason in an I/O error).
pub fn larger_than(limit: usize) -> String {
    format!("larger than {limit} bytes")
}

/// A text file is not UTF-8 (the reason in an I/O error).
pub const NOT_UTF8: &str = "it is not UTF-8 text";

/// Neither the home directory nor `DOCKER_CONFIG` nor `LOCKBOX_VAULT` is known.
pub const NO_HOME: &str =
    "cannot find the Docker config directory: set HOME, DOCKER_CONFIG or LOCKBOX_VAULT";

/// `init` without any slot.
pub const INIT_NEEDS_SLOT: &str = "init needs at least one way to open the vault: --passphrase, --passphrase-file FILE, --recipient KEY or --recipients-file FILE";

/// The passphrase is empty.
pub const EMPTY_PASSPHRASE: &str = "the passphrase is empty; choose a non-empty passphrase";

/// Interactive passphrase entry without a terminal.
pub const NO_TERMINAL: &str =
    "no terminal to ask for the passphrase; use --passphrase-file FILE in scripts";

/// The two typed passphrases differ.
pub const PASSPHRASE_MISMATCH: &str = "the passphrases did not match; nothing was changed";

/// Prompt for a new passphrase.
pub const PROMPT_NEW: &str = "New lockbox passphrase: ";
/// Prompt for the confirmation.
pub const PROMPT_CONFIRM: &str = "Repeat the passphrase: ";

/// `LOCKBOX_ARGON2_PARAMS` does not parse.
pub const BAD_ARGON2_PARAMS: &str =
    "LOCKBOX_ARGON2_PARAMS must be m_cost_kib,t_cost,p_cost (three whole numbers, like 65536,3,1)";

/// Encryption failed.
pub fn encrypt_failed(reason: &str) -> String {
    format!("encryption failed: {reason}")
}

/// A slot index the vault does not have (a bug in the caller, not the person).
pub fn no_such_slot(index: usize) -> String {
    format!("the vault has no slot number {index}; nothing was changed")
}

/// Warning printed when `LOCKBOX_ARGON2_PARAMS` weakens the passphrase slot.
pub const WEAK_KDF_WARNING: &str = "warning: LOCKBOX_ARGON2_PARAMS overrides the calibrated Argon2id cost; a cheaper KDF makes guessing the passphrase cheaper";

/// After `init`: what to do next.
pub fn init_done(path: &str, slots: &str, next: &str) -> String {
    format!("Created the lockbox vault at {path}\nSlots: {slots}\n\nNext: {next}")
}

/// `init`'s next step when config.json already names lockbox.
pub fn init_next_login(config: &str) -> String {
    format!("run 'docker login' (credsStore is already \"lockbox\" in {config}).")
}

/// `init`'s next step when config.json holds plaintext credentials.
pub fn init_next_import_plaintext(config: &str, n: usize) -> String {
    format!(
        "run 'docker-credential-lockbox import' to move the {n} plaintext credential{} in {config} into the vault (it sets \"credsStore\": \"lockbox\" too).",
        if n == 1 { "" } else { "s" }
    )
}

/// `init`'s next step otherwise.
pub fn init_next_import(config: &str) -> String {
    format!(
        "run 'docker-credential-lockbox import' (it sets \"credsStore\": \"lockbox\" in {config}), then 'docker login'."
    )
}

/// `init --label` given more often than `--recipient`.
pub const TOO_MANY_LABELS: &str =
    "more --label than --recipient: each --label names the --recipient in the same position";

/// The agent directory is not private.
pub fn agent_unsafe_dir(path: &str, reason: &str) -> String {
    format!(
        "refusing the lockbox agent directory {path}: {reason}; remove it (or make it yours with mode 0700) and run 'docker-credential-lockbox unlock' again"
    )
}

/// The agent answered something unexpected.
pub fn agent_protocol(detail: &str) -> String {
    format!(
        "the lockbox agent did not answer as expected ({detail}); run 'docker-credential-lockbox unlock' again (it replaces the agent)"
    )
}

/// The agent accepted a request and did not answer in time.
pub fn agent_not_answering(pid: u32, secs: u64) -> String {
    format!(
        "the lockbox agent (pid {pid}) did not answer within {secs} s (is it stopped, frozen or in a debugger?); run 'docker-credential-lockbox unlock' again: it ends an agent that does not answer and starts a new one"
    )
}

/// `unlock` ended an agent that did not answer (stderr).
pub fn agent_replaced(pid: u32, secs: u64) -> String {
    format!(
        "the lockbox agent (pid {pid}) did not answer within {secs} s; ended it and started a new one"
    )
}

/// The agent could not be started.
pub fn agent_start(detail: &str) -> String {
    format!("could not start the lockbox agent: {detail}")
}

/// Prompt for the passphrase at `unlock`.
pub const PROMPT_UNLOCK: &str = "lockbox passphrase: ";

/// No terminal for `unlock`. `su USER -c CMD` gives CMD no terminal (util-linux su
/// detaches it unless --pty), which is the usual way to meet this.
pub const UNLOCK_NO_TERMINAL: &str = "no terminal to ask for the passphrase; use --passphrase-file FILE, --identity-file FILE or LOCKBOX_IDENTITY, or run it with a terminal ('su USER -c' gives the command none: 'su --pty - USER -c …' or 'sudo -iu USER …')";

/// A wrong passphrase typed on the terminal, before the next try (as sudo says it).
pub const WRONG_PASSPHRASE_TRY_AGAIN: &str = "wrong passphrase, try again";

/// `--identity-passphrase-file` with nothing it could be the passphrase of.
pub const IDENTITY_PASSPHRASE_WITHOUT_IDENTITY: &str = "--identity-passphrase-file is the passphrase of a passphrase-protected identity, and no identity is given: add --identity-file FILE (or set LOCKBOX_IDENTITY_FILE); the vault's own passphrase is --passphrase-file FILE";

/// An encrypted identity (SSH key, `age -p` file) met where nothing may prompt.
pub fn identity_needs_passphrase(source: &str) -> String {
    format!(
        "the identity in {source} is protected by a passphrase, and protocol actions never ask for it: run 'docker-credential-lockbox unlock' on a terminal (it asks once and the agent holds the key; in a script, unlock --identity-passphrase-file FILE)"
    )
}

/// After `unlock`: the idle and the absolute timeout.
pub fn unlocked(path: &str, idle: &str, timeout: &str) -> String {
    format!(
        "Unlocked {path} for {idle} after its last use, {timeout} at the latest. Lock it again with 'docker-credential-lockbox lock'."
    )
}

/// `get` through the agent, when the key has less than 5 minutes left (stderr only).
pub fn expiry_warning(left: &str, absolute: bool) -> String {
    if absolute {
        format!(
            "lockbox: warning: the agent forgets this vault's key in {left} (its --timeout); run 'docker-credential-lockbox unlock' again to set new deadlines"
        )
    } else {
        format!(
            "lockbox: warning: the agent forgets this vault's key in {left} unless it is used again (its --idle); run 'docker-credential-lockbox unlock' with a longer --idle to keep it longer"
        )
    }
}

/// After `lock`.
pub fn locked_now(what: &str) -> String {
    format!("Locked {what}.")
}

/// `lock` with no agent running.
pub const NO_AGENT: &str = "No lockbox agent is running; nothing was unlocked.";

/// The shipped unit of this user's foreground agent, as a person types it: `$(id -un)`
/// is the user running the command, whose agent it is (the agent answers only its uid).
const AGENT_UNIT: &str = "\"lockbox-agent@$(id -un)\"";

/// `lock` of a vault the agent opens from its systemd credential (`all`: `lock --all`,
/// whose held keys are gone): no key it could forget keeps that vault open.
pub fn lock_credential(all: bool, label: &str) -> String {
    let done = if all {
        "the agent forgot every key it held, but "
    } else {
        ""
    };
    format!(
        "{done}the agent opens {label} from its systemd credential at every get, which 'lock' cannot lock: stop the agent to end that (sudo systemctl stop {AGENT_UNIT})"
    )
}

/// Why an agent's systemd credential does not open its vault, and what to do.
/// `why` is the reason's wire name (`error::CredentialFailure::name`); a name this
/// build does not know reads as "other".
pub fn credential_failure(why: &str) -> String {
    let (what, next) = match why {
        "missing" => (
            "the credential file is gone",
            format!("restart the agent's service (sudo systemctl restart {AGENT_UNIT})"),
        ),
        "unreadable" => (
            "the agent cannot read the credential file",
            format!("check the unit's LoadCredentialEncrypted= line and restart it (sudo systemctl restart {AGENT_UNIT})"),
        ),
        "bad_identity" => (
            "the credential is not an age identity or an unencrypted SSH key",
            format!("seal one with 'systemd-creds encrypt --name=lockbox-identity' (docs/BUILD_SERVER.md) and restart the service (sudo systemctl restart {AGENT_UNIT})"),
        ),
        "no_matching_slot" => (
            "its identity opens none of the vault's slots",
            "add its recipient to the vault: docker-credential-lockbox recipients add \"$(age-keygen -y IDENTITY)\"".to_owned(),
        ),
        "tampered" => (
            "a slot opened but the vault's slots do not verify",
            "check the vault file (docker-credential-lockbox status)".to_owned(),
        ),
        "vault_unreadable" => (
            "the agent cannot read the vault file",
            "check that the agent's user and environment (HOME, DOCKER_CONFIG, LOCKBOX_VAULT) name this vault".to_owned(),
        ),
        _ => (
            "the agent (a newer build) gave a reason this build does not know",
            "see the agent's log, or upgrade this build to match it".to_owned(),
        ),
    };
    format!("{what}; {next}; the agent's log says more (journalctl -u {AGENT_UNIT})")
}

/// `get` through an agent whose systemd credential did not open the vault.
pub fn agent_credential(why: &str) -> String {
    format!(
        "the lockbox agent serves this vault from its systemd credential ($CREDENTIALS_DIRECTORY/lockbox-identity), which does not open it: {}",
        credential_failure(why)
    )
}

/// `--timeout`/`--idle` (`flag`) that does not parse or is out of range.
pub fn bad_timeout(flag: &str, text: &str) -> String {
    format!("invalid {flag} {text:?}: give a duration between 1s and 7days, like 15m, 1h or 8h")
}

/// `recipients remove` of every slot.
pub const LAST_SLOT: &str = "refusing to remove the last slot: nobody could open the vault any more; add another recipient or a passphrase first";

/// `--openbao` on a vault without an OpenBao slot.
pub const NO_OPENBAO_SLOT: &str = "this vault has no OpenBao slot: add one with recipients add --openbao-mount MOUNT --openbao-key KEY";

/// A rotation (`recipients remove`, `passwd`) must re-wrap an OpenBao slot, and no
/// token was found.
pub fn rotate_openbao(label: &str) -> String {
    format!(
        "refusing to rotate the vault key: the OpenBao slot {} must be re-wrapped through transit with a token that may encrypt, and none was given; nothing was changed. Pass --openbao-token-file FILE (or set LOCKBOX_OPENBAO_TOKEN_FILE, BAO_TOKEN or VAULT_TOKEN)",
        sanitize(label)
    )
}

/// A rotation (`recipients remove`, `passwd`) must re-wrap a plugin slot, and its
/// plugin is not in `PATH` on this host.
pub fn rotate_plugin(plugin: &str, label: &str) -> String {
    format!(
        "refusing to rotate the vault key: rotation needs age-plugin-{} on this host: every slot is re-wrapped for the new key, and the slot {:?} is that plugin's; nothing was changed. Install age-plugin-{} (in PATH) and run the command again",
        sanitize(plugin),
        sanitize(label),
        sanitize(plugin)
    )
}

/// An age plugin asked for a PIN or a confirmation in a protocol action.
pub fn plugin_needs_answer(plugin: &str) -> String {
    format!(
        "age-plugin-{} needs an answer (a PIN, a confirmation), and protocol actions never ask: run 'docker-credential-lockbox unlock' on a terminal (it asks once and the agent holds the key)",
        sanitize(plugin)
    )
}

/// Rotation needs the passphrase to re-wrap the passphrase slot.
pub const ROTATE_NEEDS_PASSPHRASE: &str = "removing a recipient rotates the vault key, and the passphrase slot must be re-wrapped: give the passphrase on the terminal, with --passphrase-file FILE, or in LOCKBOX_PASSPHRASE_FILE";

/// config.json cannot be used as it is.
pub fn config_problem(path: &str, reason: &str) -> String {
    format!("cannot use the Docker config {path}: {reason}; nothing was changed")
}

/// A config.json of another user, and not root: it is not rewritten (the new file
/// would belong to this user).
pub fn config_of_another_user(owner: u32, me: u32) -> String {
    format!(
        "it belongs to uid {owner}, and this command runs as uid {me}: rewriting it would hand it to uid {me}; run the command as its owner (or as root, which keeps the owner)"
    )
}

/// `import` with another credsStore configured.
pub fn import_other_store(store: &str) -> String {
    format!(
        "it sets \"credsStore\": \"{store}\", so its credentials live in docker-credential-{store}: copy them with 'import --from-helper {store}', or pass --force to switch to lockbox anyway"
    )
}

/// `import` with credHelpers configured.
pub fn import_cred_helpers(list: &str) -> String {
    format!(
        "its credHelpers send these registries to other helpers, which keep serving them: {list}; pass --force to import the rest"
    )
}

/// `import` with unreadable entries.
pub fn import_invalid(list: &str) -> String {
    format!(
        "some auths entries cannot be read ({list}); fix them, or pass --force to import the rest and leave these as they are"
    )
}

/// Reading back an imported entry failed.
pub fn import_verify_failed(server: &str) -> String {
    format!(
        "the entry for {server} did not read back as written; config.json was not changed — run import again"
    )
}

/// `--from-helper` with an unusable name.
pub fn bad_helper_name(name: &str) -> String {
    format!("--from-helper {name:?}: give the helper's suffix, like pass or secretservice")
}

/// Another helper could not be started: not on PATH, or not executable.
pub fn helper_not_found(program: &str, action: &str) -> String {
    format!(
        "cannot run '{program} {action}': it is not on PATH or not executable; install that credential helper, or check the name given to --from-helper"
    )
}

/// Another helper failed.
pub fn helper_failed(program: &str, action: &str, detail: &str) -> String {
    format!("'{program} {action}' failed: {detail}")
}

/// `export` prints secrets.
pub const EXPORT_WARNING: &str = "warning: this output holds your registry credentials in PLAINTEXT (base64 is not encryption); keep it away from logs and shared files";

/// After `export --to-config`.
pub fn exported_to(path: &str, n: usize, unset: bool) -> String {
    format!(
        "Wrote {n} credential(s) in plaintext to {path}{}.",
        if unset {
            " and removed \"credsStore\": \"lockbox\""
        } else {
            ""
        }
    )
}

/// `passwd` on a vault without a passphrase slot and no identity.
pub const PASSWD_NEEDS_IDENTITY: &str = "this vault has no passphrase slot yet: open it with --identity-file FILE (or LOCKBOX_IDENTITY) to add one";

/// After `passwd`.
pub fn passwd_done(changed: bool) -> String {
    if changed {
        "Changed the vault's passphrase.".into()
    } else {
        "Added a passphrase slot to the vault.".into()
    }
}

/// A line of a recipients file with a key type age cannot use.
pub fn skipped_key(line: &str) -> String {
    let kind = line
        .split_whitespace()
        .find(|f| f.contains('-'))
        .unwrap_or("?");
    format!("skipped a {kind} key: age recipients are age1…, ssh-ed25519 and ssh-rsa")
}

/// `recipients add` with nothing to add.
pub const NO_RECIPIENTS: &str =
    "no recipients given: pass age1… / 'ssh-ed25519 …' / 'ssh-rsa …' or --file FILE";

/// After `recipients add`.
pub fn recipients_added(labels: &[String]) -> String {
    if labels.is_empty() {
        "Nothing added: every recipient already has a slot.".into()
    } else {
        format!("Added {} slot(s): {}", labels.len(), labels.join(", "))
    }
}

/// `recipients remove` of an unknown label.
pub fn no_such_recipient(which: &str) -> String {
    if is_private_key(which) {
        return PRIVATE_KEY_NOT_RECIPIENT.to_owned();
    }
    format!(
        "no age slot has the label or recipient {which:?}; see 'docker-credential-lockbox recipients list'"
    )
}

/// After `recipients remove`.
pub fn recipients_removed(which: &str, n: usize) -> String {
    format!(
        "Removed {n} slot(s) for {which:?} and rotated the vault key: every entry is re-encrypted, so the removed key cannot open this or any later version of the vault."
    )
}

/// A change would break a bound of the format.
pub fn limit_exceeded(reason: &str) -> String {
    format!(
        "refusing the change, the vault would break a limit of its format ({reason}); nothing was written"
    )
}

/// Prefix for human errors on stderr.
pub const ERROR_PREFIX: &str = "docker-credential-lockbox: error: ";

pub use crate::sanitize::sanitize;

// ---------------------------------------------------------------------------------
// Programs lockbox runs (src/child.rs): the identity command, another credential
// helper, age plugins. Each is a reason, completed by the caller's "cannot use …".

/// Its stderr was longer than what is kept.
pub fn child_stderr_dropped(kept: usize) -> String {
    format!("(more than {kept} bytes; the rest was dropped)")
}

/// It could not be started.
pub fn child_spawn_failed(error: &str) -> String {
    format!("it could not be started: {error}")
}

/// Reading from it, writing to it or waiting for it failed.
pub fn child_io_failed(error: &str) -> String {
    format!("reading its output failed: {error}")
}

/// It ran past its deadline.
pub fn child_timed_out(seconds: f64) -> String {
    format!("it did not finish within {seconds} s and was killed")
}

/// It exited with a failure status.
pub fn child_exit_code(code: i32) -> String {
    format!("it exited with status {code}")
}

/// It was killed by a signal.
pub fn child_exit_signal(signal: i32) -> String {
    format!("it was killed by signal {signal}")
}

/// It failed some other way.
pub fn child_exit_other(status: &str) -> String {
    format!("it failed ({status})")
}

/// It wrote more than its bound.
pub fn child_too_large(limit: usize) -> String {
    format!("it printed more than {limit} bytes")
}

/// It wrote a line longer than its bound.
pub fn child_line_too_long(limit: usize) -> String {
    format!("it wrote a line longer than {limit} bytes, which is not the age plugin protocol")
}

/// It succeeded but printed nothing.
pub const CHILD_EMPTY: &str = "it printed nothing";

/// It closed its output (or exited) while an answer was awaited.
pub const CHILD_CLOSED: &str = "it exited (or closed its output) before it answered";

/// An age plugin that did not answer within its deadline.
pub fn plugin_timed_out(seconds: u64) -> String {
    format!("it did not answer within {seconds} s and was stopped")
}

/// An age plugin that wrote something else than the protocol.
pub fn plugin_protocol_error(what: &str) -> String {
    format!("it does not speak the age plugin protocol ({what})")
}

/// An age plugin that reported a failure.
pub fn plugin_failed(message: &str) -> String {
    format!("it failed: {message}")
}

/// An age plugin that could not wrap the key.
pub fn plugin_wrap_failed(plugin: &str, reason: &str) -> String {
    format!("age-plugin-{plugin} could not wrap the key: {reason}")
}

/// Another credential helper that did not answer within its deadline.
pub fn helper_timed_out(seconds: u64) -> String {
    format!(
        "it did not answer within {seconds} s and was stopped (is it waiting for a prompt nobody can see, such as a pinentry without a terminal?)"
    )
}

/// A plugin recipient's slot asked of the vault core, which never runs a plugin (only
/// a programming error reaches this: commands pass the identity backend's hook).
pub fn plugin_needs_backend(plugin: &str) -> String {
    format!(
        "a slot for an age-plugin-{plugin} recipient is made by running the plugin, which this caller did not offer"
    )
}

// ---------------------------------------------------------------------------------
// OpenBao (`error::OpenBaoError`)

/// The text of [`crate::error::OpenBaoError::NoAddress`].
pub const OPENBAO_NO_ADDRESS: &str =
    "no OpenBao address: set LOCKBOX_OPENBAO_ADDR (or BAO_ADDR / VAULT_ADDR) to https://HOST:8200";

/// The text of [`crate::error::OpenBaoError::BadAddress`].
pub fn openbao_bad_address(var: &str, reason: &str) -> String {
    format!("{var} is not usable: {reason}")
}

/// The text of [`crate::error::OpenBaoError::NoToken`].
pub fn openbao_no_token(hint: &str) -> String {
    format!("no OpenBao token: {hint}")
}

/// The text of [`crate::error::OpenBaoError::BadToken`].
pub fn openbao_bad_token(source_name: &str, reason: &str) -> String {
    format!("OpenBao token from {source_name} is not usable: {reason}")
}

/// The text of [`crate::error::MintError`].
pub fn mint_failed(kind: &str, registry: &str, endpoint: &str, detail: &str) -> String {
    format!(
        "the {kind} source for {} could not mint a credential from {}: {}",
        sanitize(registry),
        sanitize(endpoint),
        sanitize(detail)
    )
}

/// The text of [`crate::error::OpenBaoError::BadName`].
pub fn openbao_bad_name(what: &str, name: &str, reason: &str) -> String {
    format!("bad OpenBao {what} {name:?}: {reason}")
}

/// The text of [`crate::error::OpenBaoError::BadSetting`].
pub fn openbao_bad_setting(var: &str, reason: &str) -> String {
    format!("{var} is not usable: {reason}")
}

/// The text of [`crate::error::OpenBaoError::CaFile`].
pub fn openbao_ca_file(var: &str, path: &std::path::Path, reason: &str) -> String {
    format!(
        "OpenBao CA file {} (from {var}) is not usable: {reason}",
        path.display()
    )
}

/// The text of [`crate::error::OpenBaoError::Connect`].
pub fn openbao_connect(addr: &str, detail: &str) -> String {
    format!("cannot reach OpenBao at {addr}: {detail}")
}

/// The text of [`crate::error::OpenBaoError::Timeout`].
pub fn openbao_timeout(addr: &str, secs: u64) -> String {
    format!(
        "OpenBao at {addr} did not answer within {secs} s (LOCKBOX_OPENBAO_TIMEOUT sets the limit)"
    )
}

/// The text of [`crate::error::OpenBaoError::Redirect`].
pub fn openbao_redirect(addr: &str, location: &str) -> String {
    format!(
        "OpenBao at {addr} redirected to {location}; lockbox never follows a redirect (the token would go along): point LOCKBOX_OPENBAO_ADDR at the active node"
    )
}

/// The text of [`crate::error::OpenBaoError::Denied`].
pub fn openbao_denied(addr: &str, token_source: &str, path: &str, detail: &str) -> String {
    format!(
        "OpenBao at {addr} refused the token from {token_source} for {path} ({detail}): the token is revoked, expired or its policy does not allow it; get a new token"
    )
}

/// The text of [`crate::error::OpenBaoError::NotFound`].
pub fn openbao_not_found(addr: &str, path: &str) -> String {
    format!(
        "OpenBao at {addr} has no {path} (404): check the transit mount name and that transit is enabled there"
    )
}

/// The text of [`crate::error::OpenBaoError::Unavailable`].
pub fn openbao_unavailable(addr: &str, detail: &str) -> String {
    format!("OpenBao at {addr} is unavailable (503: {detail}): it may be sealed; try again later")
}

/// The text of [`crate::error::OpenBaoError::Refused`].
pub fn openbao_refused(addr: &str, path: &str, status: u16, detail: &str) -> String {
    format!("OpenBao at {addr} refused {path} ({status}: {detail})")
}

/// The text of [`crate::error::OpenBaoError::BadResponse`].
pub fn openbao_bad_response(addr: &str, path: &str, reason: &str) -> String {
    format!("OpenBao at {addr} sent an answer lockbox cannot read for {path}: {reason}")
}

/// The text of [`crate::error::OpenBaoError::NotDerived`].
pub fn openbao_not_derived(mount: &str, key: &str) -> String {
    format!(
        "transit key {mount}/keys/{key} was not created with derived=true, so it cannot bind the ciphertext to this vault: create one with 'bao write -f {mount}/keys/NAME derived=true'"
    )
}

/// The text of [`crate::error::OpenBaoError::KeyMismatch`].
pub fn openbao_key_mismatch(mount: &str, key: &str) -> String {
    format!(
        "the key OpenBao returned for {mount}/keys/{key} is not this vault's key: the slot was made for another vault"
    )
}

/// The text of [`crate::error::OpenBaoError::ContextIgnored`].
pub fn openbao_context_ignored(mount: &str, key: &str) -> String {
    format!(
        "OpenBao decrypted with a wrong context for {mount}/keys/{key}: it does not bind ciphertexts to a vault, so no slot was added"
    )
}

// ---------------------------------------------------------------------------------
// the agent's failures (`agent::proto::AgentError`)

/// The text of [`crate::agent::proto::AgentError::VersionMismatch`].
pub fn agent_error_version_mismatch(agent: u32) -> String {
    format!("agent speaks protocol version {agent}")
}

/// The text of [`crate::agent::proto::AgentError::NotUnlocked`].
pub const AGENT_ERROR_NOT_UNLOCKED: &str = "not unlocked";

/// The text of [`crate::agent::proto::AgentError::DecryptFailed`].
pub const AGENT_ERROR_DECRYPT_FAILED: &str = "entry does not open";

/// The text of [`crate::agent::proto::AgentError::BadKey`].
pub const AGENT_ERROR_BAD_KEY: &str = "bad key";

/// The text of [`crate::agent::proto::AgentError::Forbidden`].
pub const AGENT_ERROR_FORBIDDEN: &str = "forbidden";

/// The text of [`crate::agent::proto::AgentError::PeerRefused`].
pub fn agent_error_peer_refused(uid: u32) -> String {
    format!("uid {uid} is not admitted")
}

/// The text of [`crate::agent::proto::AgentError::TooManyForwards`].
pub fn agent_error_too_many_forwards(max: u32) -> String {
    format!(
        "the agent has {max} forwards open, the most it keeps; revoke one first ('lockbox forward list', 'lockbox forward revoke NAME')"
    )
}

/// The text of [`crate::agent::proto::AgentError::ForwardSocket`].
pub fn agent_error_forward_socket(reason: &str) -> String {
    format!("the agent could not open the forward's socket: {reason}")
}

/// `forward create` whose socket path would be longer than a Unix socket's path may be.
pub fn forward_socket_too_long(path: &str, max: usize) -> String {
    format!(
        "the forward's socket would be {path}, longer than the {max} bytes a socket's path may have; use a shorter forward name or a shorter XDG_RUNTIME_DIR"
    )
}

/// The text of [`crate::agent::proto::AgentError::BadRequest`].
pub const AGENT_ERROR_BAD_REQUEST: &str = "bad request";

/// The text of [`crate::agent::proto::AgentError::Unsupported`].
pub const AGENT_ERROR_UNSUPPORTED: &str =
    "not supported by this agent (an exec server holds one key for one command)";

/// The text of [`crate::agent::proto::AgentError::CredentialFailed`].
pub fn agent_error_credential_failed(reason: &str) -> String {
    format!("the systemd credential does not open the vault ({reason})")
}

// ---------------------------------------------------------------------------------
// the kubelet plugin's failures (`kubelet::KubeletError`, its `Display`; the stderr line is `message()`)

/// The text of [`crate::kubelet::KubeletError::BadRequest`].
pub fn kubelet_error_bad_request(v0: &str) -> String {
    format!("bad request: {v0}")
}

/// The text of [`crate::kubelet::KubeletError::TooLarge`].
pub const KUBELET_ERROR_TOO_LARGE: &str = "request too large";

/// The text of [`crate::kubelet::KubeletError::Stdin`].
pub fn kubelet_error_stdin(v0: &std::io::Error) -> String {
    format!("stdin: {v0}")
}

/// The text of [`crate::kubelet::KubeletError::BadCacheDuration`].
pub const KUBELET_ERROR_BAD_CACHE_DURATION: &str = "bad cache duration";
/// `unimport`: the warning before plaintext is written into config.json.
pub const UNIMPORT_PLAINTEXT_WARNING: &str = "warning: unimport writes your registry credentials into config.json in PLAINTEXT (base64 is not encryption), where Docker keeps them without a helper; to keep them encrypted, move them into another helper instead: unimport --to-helper NAME";

/// `unimport`'s summary: where the credentials went and what was undone.
pub fn unimported(n: usize, to: &str, undone: &[String], vault: &str) -> String {
    let mut text = format!(
        "Moved {n} credential{} {to}.\n",
        if n == 1 { "" } else { "s" }
    );
    for u in undone {
        text.push_str(&format!("{u}\n"));
    }
    text.push_str(&format!(
        "The vault {vault} is left as it was (remove it when you no longer need it). Docker no longer runs lockbox: the package can be removed."
    ));
    text
}

/// `unimport` on a config that never pointed at lockbox, with nothing to move.
pub const UNIMPORT_NOTHING: &str =
    "Nothing to do: config.json does not use lockbox and the vault holds no credentials.";

/// `unimport --to-helper` naming lockbox itself, or no helper name.
pub const UNIMPORT_TO_ITSELF: &str = "--to-helper NAME: give another credential helper's suffix, like pass or secretservice (not lockbox)";

/// A helper refused `store` during `unimport --to-helper` (the detail of
/// [`helper_failed`]).
pub fn helper_store_failed(server: &str, detail: &str) -> String {
    format!(
        "{detail}, for {server}; config.json and the vault are unchanged (entries it stored before stay in it)"
    )
}

/// `import --dry-run`: the containers drop-in it would write.
pub fn containers_plan(path: &str) -> String {
    format!("write {path} (podman, skopeo and buildah use lockbox too)")
}

/// `import` wrote the containers drop-in.
pub fn containers_set_up(path: &str) -> String {
    format!("Wrote {path}: podman, skopeo and buildah use lockbox too (they ignore credsStore).")
}

/// `import` found a drop-in of that name that says something else.
pub fn containers_other(path: &str) -> String {
    format!(
        "Left {path} as it is: it does not say credential-helpers = [\"lockbox\"], so podman, skopeo and buildah may not use lockbox (docs/MIGRATION.md, section 6)."
    )
}

// ---------------------------------------------------------------------------------
// Expiry and rotation (`expiry`, `check`, `rotate`, the `get` warning)

/// A command for people named a registry the vault has no entry for.
pub fn no_such_entry(server: &str) -> String {
    format!(
        "no entry for {server} in the vault: 'docker-credential-lockbox list' shows what it holds"
    )
}

/// An entry's rotation settings fail their MAC.
pub fn rotation_tampered(server: &str) -> String {
    format!(
        "the rotation settings of {server} were not made with this vault's key (someone edited the vault file); nothing was sent: set them again with 'lockbox expiry set {server} --rotate …'"
    )
}

/// `source add` of a kind this build does not mint from.
pub fn unknown_source_kind(kind: &str, kinds: &[&str]) -> String {
    format!(
        "unknown source kind {}: this build knows {}",
        sanitize(kind),
        kinds.join(", ")
    )
}

/// An `exec` source without its command.
pub const SOURCE_EXEC_NO_COMMAND: &str =
    "an exec source needs its command: lockbox source add exec --registry R -- COMMAND [ARGS…]";
/// An `exec` source's command that is not a JSON array of strings.
pub const SOURCE_EXEC_BAD_COMMAND: &str =
    "an exec source's command must be a program and its arguments (at most 256, no NUL bytes)";
/// An `exec` source's program that is not an absolute path.
pub const SOURCE_EXEC_NOT_ABSOLUTE: &str =
    "an exec source's program must be an absolute path ('source add' resolves it from PATH)";
/// An `exec` command's stdout that is not the expected JSON.
pub const SOURCE_EXEC_BAD_ANSWER: &str = "the command did not print {\"Username\": …, \"Secret\": …, \"ExpiresAt\": …} as JSON (its output is not shown: it may hold a secret)";
/// An `exec` command's answer with an empty username or secret.
pub const SOURCE_EXEC_EMPTY_ANSWER: &str = "the command answered an empty Username or Secret";
/// An `exec` command's `ExpiresAt` that is not an RFC 3339 time.
pub const SOURCE_EXEC_BAD_EXPIRY: &str =
    "the command's ExpiresAt is not an RFC 3339 time in UTC such as 2030-01-31T12:00:00Z";

/// A source whose definition fails its MAC (`get`, `source list`, `doctor`).
pub fn source_tampered(server: &str) -> String {
    format!(
        "the source for {server} was not made with this vault's key (someone planted or edited it in the vault file); nothing was sent and no command run: remove it with 'lockbox source remove {server}' and add it again"
    )
}

/// A store, erase or plain open aimed at a source entry.
pub fn source_not_static(server: &str) -> String {
    format!(
        "{server} is a sealed source: its credential is minted on 'get', never stored, erased or shown as is; 'lockbox source remove {server}' removes it"
    )
}

/// `source add` over a static entry.
pub fn static_entry_exists(server: &str) -> String {
    format!(
        "{server} already has a stored credential: erase it first ('docker logout {server}') to put a source in its place"
    )
}

/// A source in a vault whose key is not trusted here.
pub fn source_untrusted(server: &str, public_key: &str) -> String {
    format!(
        "the source for {server} is in a vault whose key ({public_key}) is not trusted to run sources on this machine, so nothing was run or sent: if that is your vault's key (a vault file someone replaced has another one), run 'lockbox source trust', or set LOCKBOX_TRUSTED_VAULT_KEYS={public_key} where the job is configured"
    )
}

/// The trust file could not be written (`init`, a rotation).
pub fn trust_not_recorded(reason: &str) -> String {
    format!(
        "note: this vault's key is not recorded as trusted to run sources ({reason}); 'lockbox source trust' does it later"
    )
}

/// `source trust` (or `init`) with nowhere to keep the trust file.
pub const NO_TRUST_FILE: &str = "neither XDG_CONFIG_HOME nor HOME is set, so there is no trust file: set LOCKBOX_TRUSTED_VAULT_KEYS to the vault's public key instead";

/// `source remove` of a registry without a source.
pub fn no_such_source(server: &str) -> String {
    format!("no source for {server} in the vault ('lockbox source list' shows them)")
}

/// `unimport` leaves a source in the vault.
pub fn unimport_source_kept(server: &str) -> String {
    format!(
        "not moved: {server} is a sealed source (its secret is the cloud credential tokens are minted from, not a registry password); it stays in the vault — set up that registry's own credential helper for it"
    )
}

/// A rotation (`passwd`, `recipients remove`) dropped a source that failed its MAC.
pub fn source_dropped(server: &str) -> String {
    format!(
        "dropped the source for {server}: it was not made with this vault's key (someone planted or edited it in the vault file)"
    )
}

/// A source's secret file that cannot be used (`source add --…-file`).
pub fn bad_secret_file(path: &std::path::Path, reason: &str) -> String {
    format!(
        "cannot use {} as the source's secret: {reason}",
        path.display()
    )
}

/// `--…-file -` while stdin is a terminal.
pub const SECRET_STDIN_IS_TERMINAL: &str = "stdin is a terminal, where a typed or pasted secret is echoed and kept in the scrollback: pipe it in (… | lockbox source add … --…-file -) or name a file";

/// `source add` with a `--registry` that is empty or holds a control character.
pub const SOURCE_BAD_REGISTRY: &str =
    "--registry needs a registry host (myreg.example.com, or a URL), without control characters";

/// `source add exec` whose program is not found or not executable.
pub fn source_program_not_found(program: &str) -> String {
    format!(
        "{}: no executable file of that name (a name without a slash is looked up in PATH; the source keeps the absolute path found)",
        sanitize(program)
    )
}

/// `source remove` of a registry that holds a stored credential, not a source.
pub fn source_remove_static(server: &str) -> String {
    format!("{server} holds a stored credential, not a source: 'docker logout {server}' removes it")
}

/// `source add exec` whose program's path is not UTF-8 (it is stored as JSON text).
pub fn source_program_not_utf8(program: &str) -> String {
    format!("{}: its path is not UTF-8 text", sanitize(program))
}

/// `source add`: one line per registry.
pub fn source_added(server: &str, kind: &str, username: &str, replaced: bool) -> String {
    let verb = if replaced { "replaced" } else { "added" };
    format!("{verb} the {kind} source for {server} (username {username})")
}

/// `source add exec` of a program named without its full path: what runs, once.
pub fn source_runs(program: &str) -> String {
    format!(
        "it runs {program}: the definition names that file, found now and never looked up again"
    )
}

/// `source remove`.
pub fn source_removed(server: &str) -> String {
    format!("removed the source for {server}")
}

/// `export` of a source's registry: what was exported is a minted token.
pub fn exported_token(server: &str, expires_at: Option<&str>) -> String {
    match expires_at {
        Some(t) => format!(
            "note: {server} is a sealed source: exported a token minted now, which expires at {t} (export again then)"
        ),
        None => format!(
            "note: {server} is a sealed source: exported a token minted now; its issuer gave no expiry"
        ),
    }
}

/// `source trust`: the key recorded (or already there).
pub fn vault_key_trusted(public_key: &str, vault: &str, new: bool) -> String {
    let how = if new {
        "now trusted"
    } else {
        "already trusted"
    };
    format!("the key of {vault}, {public_key}, is {how} to run sources on this machine")
}

/// `source trust --public-key` that is not the vault's key.
pub fn trust_key_differs(expected: &str, actual: &str) -> String {
    format!(
        "the vault's public key is {actual}, not {}: nothing was trusted (was the vault file replaced?)",
        sanitize(expected.trim())
    )
}

/// `source list`: whether this vault may run its sources here.
pub fn vault_key_standing(public_key: &str, trusted: bool) -> String {
    if trusted {
        format!("vault key {public_key}: trusted to run sources here")
    } else {
        format!(
            "vault key {public_key}: NOT trusted to run sources here, so get refuses them ('lockbox source trust' after checking the key, or LOCKBOX_TRUSTED_VAULT_KEYS)"
        )
    }
}

/// `source list`: a source's first line.
pub fn source_line(server: &str, kind: &str, username: &str, standing: &str) -> String {
    format!("{server}  {kind}  username {username}  {standing}\n")
}

/// `source list`: a definition that verifies.
pub const SOURCE_VERIFIED: &str = "verified";
/// `source list`: a definition that does not.
pub const SOURCE_SHOWN_TAMPERED: &str = "TAMPERED (get refuses it)";
/// `source list`: a definition not checked, for want of a key.
pub const SOURCE_UNVERIFIED: &str = "unverified (locked)";

/// `source list`: one parameter, indented; an endpoint override says so.
pub fn source_param_line(name: &str, value: &str, overrides: bool) -> String {
    let note = if overrides {
        "  (endpoint override)"
    } else {
        ""
    };
    format!("    {name}: {value}{note}\n")
}

/// `source list` with no source.
pub const NO_SOURCES: &str =
    "no sources in the vault ('lockbox source add KIND --registry R …' adds one)";

/// `source list`: why definitions were not verified, when the key source failed.
pub fn sources_not_verified(reason: &str) -> String {
    format!("warning: the sources' definitions were not verified: {reason}")
}

/// `rotate` of an entry without rotation settings.
pub fn no_rotation(server: &str) -> String {
    format!(
        "{server} has no rotation provider: set one with 'lockbox expiry set {server} --rotate gitlab-pat' (or harbor-robot --robot-id N)"
    )
}

/// `get`'s stderr line for an entry within the warning window.
pub fn get_expiring(server: &str, when: &str, days: u64) -> String {
    let left = match days {
        0 => "today".to_owned(),
        1 => "in 1 day".to_owned(),
        n => format!("in {n} days"),
    };
    format!(
        "lockbox: the credential for {server} expires {left} ({when}): renew it ('lockbox rotate {server}', or store a new one with docker login)"
    )
}

/// `get`'s stderr line for an expired entry (the secret is still answered).
pub fn get_expired(server: &str, when: &str) -> String {
    format!(
        "lockbox: the credential for {server} expired at {when}; the registry will likely refuse it: store a new one with docker login (or 'lockbox rotate {server}')"
    )
}

/// `LOCKBOX_EXPIRY_WARN_DAYS` that is not a whole number of days.
pub fn bad_warn_days(text: &str) -> String {
    format!(
        "LOCKBOX_EXPIRY_WARN_DAYS={text} is not a number of days (0 to 3650); using the default of 14"
    )
}

/// `expiry set` with a date that does not parse.
pub fn bad_expiry_date(text: &str) -> String {
    format!(
        "'{text}' is not a date: give YYYY-MM-DD, an RFC 3339 time (2027-01-31T12:00:00Z) or 'none'"
    )
}

/// `check --within` that does not parse.
pub fn bad_within(text: &str) -> String {
    format!("--within {text}: give a duration such as 14d, 36h or 2w")
}

/// `expiry set` done.
pub fn expiry_set(server: &str, when: Option<&str>) -> String {
    match when {
        Some(w) => format!("{server} expires at {w}."),
        None => format!("{server} has no expiry now."),
    }
}

/// `expiry set --rotate` done.
pub fn rotation_set(server: &str, kind: &str, api: &str) -> String {
    format!("{server} is rotated by {kind} through {api}.")
}

/// `expiry set --rotate` read the expiry from the provider's API.
pub fn expiry_learned(server: &str, when: Option<&str>) -> String {
    match when {
        Some(w) => format!("{server} expires at {w} (from the registry's API)."),
        None => format!("{server} does not expire, says the registry's API."),
    }
}

/// `expiry set --rotate` could not read the expiry (the provider is set all the same).
pub fn expiry_not_learned(error: &str) -> String {
    format!(
        "warning: the expiry could not be read from the registry's API ({error}); the provider is set: fix --api or the credential, or set the date with 'lockbox expiry set REGISTRY DATE'"
    )
}

/// `expiry set --no-rotate` done.
pub fn rotation_cleared(server: &str) -> String {
    format!("{server} has no rotation provider now.")
}

/// `expiry set` with nothing to set.
pub const EXPIRY_SET_NOTHING: &str =
    "nothing to set: give a date (YYYY-MM-DD or 'none'), --rotate KIND or --no-rotate";

/// `expiry set --rotate` with no API URL and a server URL that names no host.
pub fn no_default_api(server: &str) -> String {
    format!("{server} names no host to reach its API at: give --api https://HOST")
}

/// A rotation's API URL refused.
pub fn bad_api_url(reason: &str) -> String {
    format!("--api: {reason}")
}

/// `rotate` finished one entry.
pub fn rotated(server: &str, kind: &str, when: Option<&str>) -> String {
    match when {
        Some(w) => format!("Rotated {server} ({kind}); the new credential expires at {w}."),
        None => format!("Rotated {server} ({kind})."),
    }
}

/// `rotate`: the provider's answer named an expiry that is not a date.
pub fn rotated_date_unread(server: &str) -> String {
    format!(
        "lockbox: warning: the new credential of {server} is stored, but the provider's expiry date was unreadable; set it with 'docker-credential-lockbox expiry set {server} YYYY-MM-DD'"
    )
}

/// `rotate` found a pending secret and recovered it.
pub fn rotation_recovered(server: &str) -> String {
    format!("Finished the interrupted rotation of {server}.")
}

/// `rotate --due` with nothing due.
pub fn nothing_due(days: u64) -> String {
    format!("Nothing to rotate: no entry with a rotation provider expires within {days} days.")
}

/// A provider answered with a success status lockbox does not expect (its body, which
/// may hold a secret, is not quoted).
pub fn unexpected_success(status: u16) -> String {
    format!("HTTP {status}, a success this API does not document (its answer is not shown)")
}

/// A URL a secret would be sent to is too long (`http::check_url`).
pub const URL_TOO_LONG: &str = "the API URL is too long";
/// A URL with a space, a control or a non-ASCII character.
pub const URL_NOT_PRINTABLE: &str = "the API URL must be printable ASCII without spaces";
/// A URL that is neither `https://` nor `http://`.
pub const URL_SCHEME: &str = "the API URL must start with https:// (or http:// for 127.0.0.1)";
/// A URL with user info, a query or a fragment.
pub const URL_EXTRAS: &str = "the API URL may not hold user info, a query or a fragment";
/// A URL without a host.
pub const URL_NO_HOST: &str = "the API URL has no host";
/// A URL whose port is not a number.
pub const URL_BAD_PORT: &str = "the API URL's port is not a number";
/// A plain `http://` URL to a host that is not loopback.
pub const URL_PLAIN_HTTP: &str = "plain http:// is allowed only for 127.0.0.1, [::1] and localhost (a secret would cross the network in the clear): use https://";
/// An HTTP request that found no name for its host.
pub const HTTP_HOST_NOT_FOUND: &str = "the host name does not resolve";

/// An HTTP request that did not end within its deadline.
pub fn http_timeout(secs: u64) -> String {
    format!("no answer within {secs} s")
}

/// A TLS handshake that refused the server's certificate (`detail`: rustls's reason).
pub fn http_untrusted(detail: &str) -> String {
    format!(
        "the server's TLS certificate is not trusted ({detail}): check the URL, and that its CA is in the system's CA bundle"
    )
}

/// An HTTP answer over the size bound (not read further).
pub fn http_too_large(status: u16, max: usize) -> String {
    format!(
        "HTTP {status} with an answer over {} KiB (not read)",
        max / 1024
    )
}

/// A source without a parameter its kind needs (`source add`).
pub fn source_param_missing(name: &str) -> String {
    format!("--{name} is needed for this kind of source")
}

/// A source parameter its kind does not take.
pub fn source_param_unknown(name: &str, required: &[&str], optional: &[&str]) -> String {
    let all: Vec<String> = required
        .iter()
        .chain(optional)
        .map(|n| format!("--{n}"))
        .collect();
    format!(
        "--{} is not a setting of this kind of source (it takes {})",
        sanitize(name),
        all.join(", ")
    )
}

/// A source parameter that is empty, too long or not printable ASCII.
pub fn source_param_bad(name: &str) -> String {
    format!(
        "--{} must be 1 to 2048 printable ASCII characters without spaces",
        sanitize(name)
    )
}

/// A source parameter that is a URL no secret may be sent to.
pub fn source_param_url(name: &str, reason: &str) -> String {
    format!("--{name}: {reason}")
}

/// A source parameter whose value is not of its form (`--region eu-west-1`).
pub fn source_param_form(name: &str, form: &str) -> String {
    format!("--{name} must be {form}")
}

/// A source's secret that is not usable for its kind (`source add`).
pub fn source_secret_bad(what: &str, reason: &str) -> String {
    format!("the {what} is not usable: {reason}")
}

/// `--region`"s form.
pub const FORM_AWS_REGION: &str = "an AWS region name such as eu-west-1";
/// `--access-key-id`"s form.
pub const FORM_AWS_KEY_ID: &str = "an AWS access key ID (letters and digits, such as AKIA…)";
/// `--role-arn`"s form.
pub const FORM_AWS_ROLE_ARN: &str = "a role ARN such as arn:aws:iam::123456789012:role/NAME";
/// `--endpoint`/`--sts-endpoint`'s form for `aws-ecr`.
pub const FORM_AWS_ENDPOINT: &str = "a URL whose path is / (an AWS API's base URL)";
/// Why a secret access key is refused.
pub const SECRET_AWS: &str = "it must be one line of printable ASCII (AWS's are 40 characters)";
/// `--tenant`"s form.
pub const FORM_AZURE_TENANT: &str = "a tenant ID (a GUID) or a tenant domain name";
/// `--client-id`"s form for `azure-acr`.
pub const FORM_AZURE_CLIENT_ID: &str = "an application (client) ID, a GUID";
/// Why a client secret is refused.
pub const SECRET_ONE_LINE: &str = "it must be one line of printable ASCII";
/// `--username`"s form for `oauth2`.
pub const FORM_REGISTRY_USERNAME: &str = "a registry username (without a colon)";
/// Why a refresh token is refused.
pub const SECRET_REFRESH_TOKEN: &str = "it must be one line of printable ASCII, at most 16 KiB";
/// A service-account key file over the bound.
pub const KEY_FILE_TOO_LARGE: &str = "it is over 64 KiB";
/// A service-account key file that is not JSON of the shape.
pub const KEY_FILE_NOT_JSON: &str = "it is not the JSON of a service-account key";
/// A key file of another type (an `authorized_user`"s).
pub const KEY_FILE_NOT_SERVICE_ACCOUNT: &str = "its type is not service_account";
/// A key file without a usable `client_email`.
pub const KEY_FILE_NO_EMAIL: &str = "it has no usable client_email";
/// A key file without `private_key`.
pub const KEY_FILE_NO_KEY: &str = "it has no private_key";
/// A `private_key` that is not PEM PKCS#8.
pub const KEY_FILE_NOT_PKCS8: &str = "its private_key is not a PEM PKCS#8 key";
/// A `private_key` ring does not take as RSA.
pub const KEY_FILE_NOT_RSA: &str =
    "its private_key is not an RSA key ring accepts (2048 to 8192 bits)";
/// The `aws-ecr` secret, as errors name it.
pub const SECRET_NAME_AWS: &str = "secret access key";
/// The `gcp` secret, as errors name it.
pub const SECRET_NAME_GCP: &str = "service-account key file";
/// The `azure-acr` secret, as errors name it.
pub const SECRET_NAME_AZURE: &str = "client secret";
/// The `oauth2` secret, as errors name it.
pub const SECRET_NAME_OAUTH2: &str = "refresh token";
/// What an unusable STS answer lacks.
pub const AWS_WHAT_ASSUME_ROLE: &str = "AssumeRole credentials";
/// What an unusable ECR answer lacks.
pub const AWS_WHAT_ECR: &str = "authorizationData";

/// A non-2xx answer of a token or API endpoint, with the service's error code and a
/// short description when it gave them.
pub fn http_status_detail(status: u16, code: Option<&str>, description: Option<&str>) -> String {
    let hint = match status {
        301..=308 => " (a redirect, not followed: give the final URL)",
        _ => "",
    };
    match (code, description) {
        (Some(c), Some(d)) => format!("HTTP {status}{hint} {c}: {d}"),
        (Some(c), None) => format!("HTTP {status}{hint} {c}"),
        (None, Some(d)) => format!("HTTP {status}{hint}: {d}"),
        (None, None) => format!("HTTP {status}{hint}"),
    }
}

/// A 2xx answer of a token endpoint that is not JSON of the expected shape.
pub fn token_answer_unreadable(status: u16) -> String {
    format!("HTTP {status}, but the answer is not an OAuth2 token answer (JSON)")
}

/// A token answer without the field wanted.
pub fn token_answer_missing(status: u16, field: &str) -> String {
    format!("HTTP {status}, but the answer has no {field}")
}

/// A token answer whose token is empty, too long or not printable ASCII.
pub fn token_answer_bad(status: u16, field: &str) -> String {
    format!("HTTP {status}, but the answer's {field} is not a usable token")
}

/// The endpoint named when a source's settings fail their check at mint time.
pub const SOURCE_SETTINGS: &str = "its settings (nothing was sent)";

/// `ring` could not sign a JWT (it fails only on a broken random source).
pub const JWT_SIGN_FAILED: &str = "the JWT could not be signed (the system's random source failed)";

/// An AWS answer that is not the expected shape.
pub fn aws_answer_bad(status: u16, what: &str) -> String {
    format!("HTTP {status}, but the answer holds no usable {what}")
}

/// `passwd`/`recipients remove`: rotation settings that fail their MAC or a pending
/// secret that does not open were dropped before the key rotation.
pub fn rotation_dropped(server: &str, settings: bool, pending: bool) -> String {
    let what = match (settings, pending) {
        (true, true) => "rotation settings and pending secret",
        (true, false) => "rotation settings",
        _ => "pending rotation secret",
    };
    format!(
        "lockbox: warning: dropped the {what} of {server}: not made with this vault's key (someone edited the vault file); set them again with 'docker-credential-lockbox expiry set {server} --rotate …' if they were yours"
    )
}

/// `rotate`: Harbor refused the entry's secret for the refresh.
pub const HARBOR_OLD_REFUSED: &str = "HTTP 401 (the stored secret was refused)";

/// `rotate`: the entry was stored again or erased while its provider was asked;
/// `kept_pending`: the new secret stays beside it as pending (Harbor).
pub fn rotation_overtaken(server: &str, kept_pending: bool) -> String {
    if kept_pending {
        format!(
            "{server} was stored again while it was being rotated: the stored secret is kept, and the new one Harbor holds is kept beside it as pending; run 'docker-credential-lockbox rotate {server}' to keep whichever Harbor accepts"
        )
    } else {
        format!(
            "{server} was stored again or erased while it was being rotated: what was stored is kept and the provider's new credential was dropped (revoke it in the registry if it is not used)"
        )
    }
}

/// `rotate`: the vault's key or the entry changed under it (a concurrent `passwd`,
/// `recipients`, `store` or `rotate`); nothing was sent.
pub const VAULT_CHANGED_WHILE_ROTATING: &str = "the vault changed while rotating (a passwd, recipients, store or another rotate meanwhile); run it again";

/// `rotate`: Harbor refused both the entry's secret and an interrupted rotation's
/// pending one (both kept).
pub const HARBOR_BOTH_REFUSED: &str = "HTTP 401 for both the stored secret and the pending one of an interrupted rotation (a disabled or expired robot?); both are kept: make Harbor accept the robot again, then run rotate again";

/// A provider answered with an error status.
pub fn rotate_failed(kind: &str, server: &str, endpoint: &str, detail: &str) -> String {
    format!(
        "{kind} rotation of {server} failed at {endpoint}: {detail}; the vault still holds the credential that was in use"
    )
}

/// `check`: nothing expires within the window.
pub fn check_all_fine(days: u64) -> String {
    format!("No entry expires within {days} days.")
}

/// `check`: one line per entry that needs attention.
pub fn check_line(server: &str, state: &str, when: &str) -> String {
    format!("{state:<8} {server}  {when}")
}

// ---------------------------------------------------------------------------------
// forwards (`forward`, `log`, and the helper inside a container; docs/BUILD_SERVER.md)

/// The text of [`crate::agent::proto::AgentError::NoSuchForward`].
pub const AGENT_ERROR_NO_SUCH_FORWARD: &str = "no forward of that name";

/// The text of [`crate::agent::proto::AgentError::ForwardExists`].
pub const AGENT_ERROR_FORWARD_EXISTS: &str = "a forward of that name is already open";

/// The text of [`crate::agent::proto::AgentError::ForwardEnded`].
pub const AGENT_ERROR_FORWARD_ENDED: &str = "the forward has ended";

/// An agent built before the `mint` request, asked for a source's token (the detail
/// of [`agent_protocol`], which says to run `unlock` again).
pub const AGENT_CANNOT_MINT: &str =
    "it is from an older build that cannot mint from sealed sources";

/// A forward's `get` of a source whose vault key was not trusted to run sources when
/// the forward was created.
pub const FORWARD_SOURCE_UNTRUSTED: &str = "the host did not trust this vault's key to run sources when the forward was created: run 'lockbox source trust' on the host, then create the forward again";

/// `status` of a source no agent holds a token for.
pub const SOURCE_NOT_CACHED: &str = "not cached in an agent (the next get mints)";

/// The text of [`crate::agent::proto::AgentError::SourceTampered`] (the client
/// reports [`source_tampered`] with the server instead).
pub const AGENT_ERROR_SOURCE_TAMPERED: &str =
    "the source was not made with this vault's key; nothing was minted";

/// The text of [`crate::agent::proto::AgentError::MintBusy`].
pub fn agent_error_mint_busy(mints: u32, waiting: u32) -> String {
    format!(
        "the lockbox agent is busy minting ({mints} mints at once, {waiting} requests waiting for them); try again in a moment"
    )
}

/// What a mint failure names as its endpoint when the agent refused to mint (busy).
pub const MINT_ENDPOINT_AGENT: &str = "the lockbox agent";
/// What a mint failure names as its endpoint when a forward refused a source.
pub const MINT_ENDPOINT_FORWARD: &str = "the forward";
/// The kind a container's client names in a mint failure (it does not know it).
pub const MINT_KIND_UNKNOWN: &str = "source";

/// A mint whose code panicked (a bug): reported as a failed mint.
pub const MINT_PANICKED: &str = "the mint failed inside lockbox (a bug; please report it)";

/// A mint the agent gave up on: its kind ran past its own deadline.
pub fn mint_gave_up(secs: u64) -> String {
    format!("no answer within {secs} s; the agent gave up on it")
}

/// The text of [`crate::agent::proto::AgentError::VaultUnreadable`].
pub const AGENT_ERROR_VAULT_UNREADABLE: &str =
    "the forward's vault cannot be read, or is no longer the vault it was made for";

/// Inside a container: the forward socket is gone or refuses connections. Never the
/// not-found line, which would turn a private pull into a silent anonymous one.
pub fn forward_gone(socket: &str) -> String {
    format!(
        "lockbox forward: no forward answers at {socket} (revoked, past its TTL, ended by 'lockbox lock', or the host's agent stopped); open a new one on the host with 'lockbox forward create' or 'lockbox forward run'"
    )
}

/// Inside a container: the vault on the host is locked.
pub const FORWARD_HOST_LOCKED: &str =
    "lockbox forward: the vault on the host is locked; run 'lockbox unlock' on the host";

/// Inside a container: the forward does not let this uid in.
pub fn forward_refused(uid: u32) -> String {
    format!(
        "lockbox forward: the forward does not admit uid {uid} (this process's uid as the host sees it); on the host, create it with '--uid {uid}' (it admits the owner's uid and root otherwise)"
    )
}

/// Inside a container: the forward socket took the connection but did not answer.
pub fn forward_silent(socket: &str, secs: u64) -> String {
    format!(
        "lockbox forward: the host's lockbox agent did not answer within {secs} s at {socket} (it is busy or stopped); try again, and if it persists, check the agent on the host ('lockbox status')"
    )
}

/// Inside a container: the forward socket could not be opened for lack of permission
/// (the file system in between refuses this uid: an older agent's 0700 directory, or
/// a mount the container's user cannot enter). Never the not-found or gone text.
pub fn forward_denied(socket: &str, uid: u32) -> String {
    format!(
        "lockbox forward: permission denied opening {socket}: the forward does not admit this uid (uid {uid} in here); on the host, create it with '--uid' and this process's uid as the host sees it, and mount its directory into the container"
    )
}

/// Inside a container: `store` (a `docker login`) through a read-only forward.
pub const FORWARD_STORE: &str = "credentials are managed on the host: run 'docker login' there (this container's lockbox forward is read-only)";

/// The text of [`crate::error::ForwardError::VaultUnreadable`].
pub const FORWARD_VAULT_UNREADABLE: &str = "lockbox forward: the vault on the host cannot be read or was replaced by another vault; open a new forward on the host";

/// `forward revoke` of an unknown name.
pub fn no_such_forward(name: &str) -> String {
    format!("no forward named {name} is open; 'lockbox forward list' shows the open ones")
}

/// `forward create` of a name already open.
pub fn forward_exists(name: &str) -> String {
    format!(
        "a forward named {name} is already open: revoke it first ('lockbox forward revoke {name}') or pick another name"
    )
}

/// `forward create` with a name that cannot be a directory name.
pub fn bad_forward_name(max: usize) -> String {
    format!(
        "a forward's name is 1 to {max} letters, digits, '_', '.' or '-', not starting with '.'"
    )
}

/// `forward` with a registry that has no host.
pub fn bad_forward_registry(registry: &str) -> String {
    format!(
        "--registry {registry}: not a registry (give a host such as ghcr.io or registry.example.com:5000)"
    )
}

/// `forward` with a `--ttl` that does not parse or is out of range.
pub fn bad_forward_ttl(text: &str) -> String {
    format!("--ttl {text}: give a duration from 1s to 7d, such as 30m or 1h")
}

/// `forward run` whose command is not a `docker run` or `podman run`.
pub const FORWARD_RUN_NOT_RUN: &str = "forward run wraps one 'docker run …' or 'podman run …' command (after --); for other runners, use 'lockbox forward create' and the recipes in docs/BUILD_SERVER.md";

/// `forward run` with a path `--mount`'s comma-separated syntax would misread.
pub fn forward_mount_path(path: &str) -> String {
    format!(
        "{path} cannot be mounted with 'docker run --mount': it holds a ',', '\"' or a line break; move it (or use --binary, LOCKBOX_AGENT_DIR) to a path without"
    )
}

/// `forward run` from a binary that is not statically linked.
pub fn forward_not_static(path: &str) -> String {
    format!(
        "{path} is dynamically linked (a 'cargo install' build?) and may not run in a minimal image: pass a static one with --binary PATH — the .deb's /usr/bin/docker-credential-lockbox, or one built with +crt-static as README \"Installing without a Rust toolchain\" shows"
    )
}

/// `forward create`: what to mount and set in the container.
pub fn forward_created(
    name: &str,
    registries: &str,
    ttl: &str,
    dir: &str,
    mount: &str,
    var: &str,
    socket: &str,
) -> String {
    format!(
        "Forward {name} is open for {ttl}: get and list of {registries}.\n\
         In the container, mount its directory and name its socket:\n  \
         -v {dir}:{mount}\n  \
         -e {var}={socket}\n\
         and put the static docker-credential-lockbox on PATH with {{\"credsStore\":\"lockbox\"}} in the container's Docker config (docs/BUILD_SERVER.md, \"Forwards\").\n\
         End it sooner with 'lockbox forward revoke {name}'."
    )
}

/// `forward list` with nothing open.
pub const NO_FORWARDS: &str = "No forward is open.";

/// One line of `forward list`.
pub fn forward_line(name: &str, registries: &str, expires: &str, gets: u64, extra: &str) -> String {
    format!("{name}\t{registries}\tends in {expires}\t{gets} get(s){extra}")
}

/// `forward revoke` done.
pub fn forward_revoked(name: &str) -> String {
    format!("Revoked the forward {name}.")
}

/// `log` with no record.
pub const LOG_EMPTY: &str = "The access log has no entry (yet).";

/// One line of `log`.
pub fn log_line(time: &str, socket: &str, registry: &str, vault: &str, peer: &str) -> String {
    format!("{time}  {socket}  {registry}  {vault}  {peer}")
}

/// `log` found lines it could not read.
pub fn log_unreadable_lines(n: usize) -> String {
    format!("warning: {n} line(s) of the access log could not be read and were skipped")
}

/// An agent built before forwards answers `bad_request` to their requests.
pub const FORWARD_AGENT_TOO_OLD: &str = "the running agent is from an older build without forwards; run 'docker-credential-lockbox lock --all', then 'unlock' (a new agent starts)";

/// `log --since` that does not parse.
pub fn bad_since(text: &str) -> String {
    format!("--since {text}: give a duration such as 30m, 1h or 2d")
}
