//! The command line: dispatch between the protocol actions (exactly one argument, as
//! clients exec us) and the commands for people (`init`, `status`, …), parsed by clap.
//!
//! This file holds only the clap surface and the dispatch; each command for people
//! lives in its own file under `src/commands/`. The environment is read here, once
//! ([`Settings::from_env`]), and handed down. Human output goes to stdout, human
//! errors to stderr with the next step to take.
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::commands;
use crate::config::Settings;
use crate::error::Error;
use crate::exit::Exit;
use crate::messages;
use crate::protocol::{self, Action};

const PROTOCOL_HELP: &str = "\
Credential-helper protocol (run by Docker and other clients, one action per call):
  store    read {\"ServerURL\",\"Username\",\"Secret\"} JSON on stdin and save it
  get      read a server URL on stdin, print its credentials as JSON
  erase    read a server URL on stdin, remove its credentials
  list     print {\"<server URL>\":\"<username>\",…}
  version  print the version line

Environment:
  LOCKBOX_VAULT            the vault file (default: $DOCKER_CONFIG/lockbox/vault.json,
                           else ~/.docker/lockbox/vault.json)
  LOCKBOX_IDENTITY         age identity text that opens the vault (CI secrets)
  LOCKBOX_IDENTITY_FILE    an age identity file or SSH private key (a passphrase-
                           protected one: asked by commands for people, or their
                           --identity-passphrase-file FILE; never by `get`)
  LOCKBOX_IDENTITY_CMD     a command (sh -c) printing an identity: systemd-creds
                           decrypt …, clevis decrypt < … (no terminal, 15 s at most)
  LOCKBOX_PASSPHRASE_FILE  a file holding the passphrase (slow: Argon2id every call)
  LOCKBOX_ARGON2_PARAMS    m_cost_kib,t_cost,p_cost for new passphrase slots (tests)
  LOCKBOX_KUBELET_CACHE_DURATION  kubelet-credential-provider's cacheDuration (5m)
  LOCKBOX_EXPIRY_WARN_DAYS  how many days before an entry's expiry `get` warns on
                           stderr, `check` and `doctor` report it and `rotate --due`
                           renews it (14)
  LOCKBOX_OPENBAO_ADDR     the OpenBao/Vault server for an OpenBao slot (else BAO_ADDR,
                           VAULT_ADDR); LOCKBOX_OPENBAO_CACERT its CA file
  LOCKBOX_OPENBAO_TOKEN_FILE  this host's OpenBao token, in a file: lets `get` open
                           the OpenBao slot (without it or the next, `get` never
                           contacts OpenBao; docs/FLEET.md)
  LOCKBOX_OPENBAO_TOKEN    the same token as text (set one of the two, not both)
  LOCKBOX_AGENT_DIR        the agent's socket directory (default /tmp/lockbox-<uid>;
                           for tests and isolated setups)
  LOCKBOX_AGENT_SOCKET     set by `exec` for its command: its private agent
  LOCKBOX_FORWARD_SOCKET   inside a container: the host agent's forward socket
                           (`forward create`); get and list ask it, store fails,
                           erase does nothing, and no vault or key is read

Where the key comes from (every command, in this order; docs/KEYS.md):
  1. the command's flags: --identity-file, --passphrase-file, --identity-cmd,
     --openbao (--identity-passphrase-file: the passphrase of an encrypted
     identity of 1-3, for commands for people)
  2. LOCKBOX_IDENTITY
  3. LOCKBOX_IDENTITY_FILE
  4. $CREDENTIALS_DIRECTORY/lockbox-identity (systemd LoadCredentialEncrypted=)
  5. LOCKBOX_PASSPHRASE_FILE
  6. the OpenBao slot, when LOCKBOX_OPENBAO_TOKEN[_FILE] is set
  7. the agent started by `unlock` (get, export; inside `exec`, its own)
  8. LOCKBOX_IDENTITY_CMD (run only when nothing above opened the vault)
  9. the terminal (commands for people only; protocol actions never prompt)
A flag that fails is an error. A variable or agent that does not apply to this vault
(its identity matches no slot, the vault has no slot of its kind, the agent does not
hold this vault) is passed over; one that is broken (unreadable, unparsable, wrong
passphrase) is an error. When nothing opens the vault, `get` fails at once with
\"lockbox is locked\".";

/// A Docker credential helper that keeps registry credentials in an encrypted vault.
#[derive(Debug, Parser)]
#[command(name = "docker-credential-lockbox", version, after_help = PROTOCOL_HELP)]
pub struct Opts {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the vault, with a passphrase slot and/or age recipient slots.
    Init(commands::init::Opts),
    /// Open the vault once and let an agent hold its key for a while, so `get` works
    /// without a prompt (before builds).
    Unlock(commands::unlock::Opts),
    /// Make the agent forget this vault's key (or every key with --all).
    Lock(commands::lock::Opts),
    /// Open the vault for one command: `exec -- CMD ARGS…` answers `get` for CMD and
    /// its children while CMD runs, then forgets the key. Exits with CMD's status.
    Exec(commands::exec::Opts),
    /// Show the vault: path, slots, entries, and whether it is unlocked. Exits 0 when
    /// `get` can open it, 3 when it is locked.
    Status(commands::status::Opts),
    /// Check this user's set-up (config.json, PATH, sudo, the vault, the agent) and say
    /// what to fix. Exits 1 when something is wrong, 0 with only warnings.
    Doctor(commands::doctor::DoctorOpts),
    /// Move the plaintext auths of Docker's config.json (or another helper's entries)
    /// into the vault, remove them from config.json and set credsStore.
    Import(commands::import::Opts),
    /// The way back before removing lockbox: move the credentials into config.json
    /// (plaintext, as Docker keeps them without a helper) or another helper, and remove
    /// credsStore and the podman/skopeo set-up of `import`. The vault is left as it is.
    Unimport(commands::unimport::Opts),
    /// Print the entries in plaintext (the way out; explicit): Docker auths, a
    /// Kubernetes Secret, DOCKER_AUTH_CONFIG, a containers auth.json.
    Export(commands::export::Opts),
    /// Add or change the passphrase slot.
    Passwd(commands::passwd::Opts),
    /// Manage the age slots (people, CI keys, SSH host keys).
    #[command(subcommand)]
    Recipients(commands::recipients::Opts),
    /// List the entries that have expired or expire soon; exits 4 when one expires
    /// within the window, 5 when one has expired. Works while locked.
    Check(commands::check::Opts),
    /// Sealed sources: a long-lived cloud credential (AWS keys, a Google service-account
    /// key, an Azure client secret, an OAuth2 refresh token, or a command) kept in the
    /// vault, from which `get` mints the registry's short-lived token
    /// (`source add|list|remove|trust`).
    #[command(subcommand)]
    Source(commands::source::Opts),
    /// Set an entry's expiry and rotation provider.
    #[command(subcommand)]
    Expiry(commands::expiry::Opts),
    /// Renew a GitLab token or Harbor robot secret in place through the registry's
    /// API (`rotate REGISTRY`, or `rotate --due` from a daily timer).
    Rotate(commands::rotate::Opts),
    /// The kubelet image credential provider plugin: read a CredentialProviderRequest
    /// on stdin, answer with the vault's credentials for the image's registry
    /// (docs/FLEET.md). Never prompts.
    KubeletCredentialProvider(KubeletOpts),
    /// Print a shell completion script for both names (docker-credential-lockbox and
    /// lockbox): `completions bash > ~/.local/share/bash-completion/completions/lockbox`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages and completion scripts into DIR (for scripts/package.sh).
    #[command(hide = true)]
    GenerateAssets {
        /// The directory (created if missing).
        dir: PathBuf,
    },
    /// Registry logins inside containers: a socket of the agent that may only get
    /// (and list) some registries, for one container or job, until its TTL or revoke
    /// (`forward create|list|revoke|run`).
    #[command(subcommand)]
    Forward(commands::forward::Opts),
    /// Show the access log: every secret the agent handed out (time, socket, registry,
    /// vault, peer), never the secret.
    Log(commands::log::Opts),
    /// Run the agent for a service manager: `agent --foreground` (no fork, logs on
    /// stderr, stops on SIGTERM; `unlock` hands it keys).
    Agent(AgentOpts),
}

#[derive(Debug, Args)]
struct KubeletOpts {
    /// How long kubelet may cache an answer: 5m (the default), 1h, 0 for not at all;
    /// at most 24h. Default from LOCKBOX_KUBELET_CACHE_DURATION.
    #[arg(long, value_name = "DURATION")]
    cache_duration: Option<String>,
}

#[derive(Debug, Args)]
struct AgentOpts {
    /// Stay in the foreground for a service manager (systemd, runit…).
    #[arg(long, required_unless_present = "socket")]
    foreground: bool,
    /// The socket `unlock` starts a background agent on (internal).
    #[arg(long, hide = true, conflicts_with = "foreground")]
    socket: Option<PathBuf>,
}

/// What the binary does first, in place of std's start-up (`src/main.rs` is
/// `no_main`): standard descriptors and SIGPIPE as std sets them
/// (`sys::start_process`).
pub fn start_process() {
    crate::sys::start_process();
}

/// Entry point of the binary (`src/main.rs`): the exit status.
pub fn main() -> Exit {
    let args: Vec<OsString> = std::env::args_os().collect();
    // The one place the environment is read (`config`).
    let settings = Settings::from_env();
    // Read once, then gone: no child (an age plugin above all, which the `age` crate
    // starts with the whole environment) inherits a secret from it.
    crate::sys::forget_env(&crate::config::var::FORGOTTEN);
    // The protocol path comes first and stays minimal: every helper call is a new
    // process, so its start-up cost is the product's speed.
    match args.get(1).map(|a| a.to_str()) {
        None => {
            let _ = writeln!(std::io::stdout(), "{}", messages::USAGE);
            eprintln!("{}", messages::NO_ARGUMENTS_HINT);
            return Exit::Failure;
        }
        Some(Some(word)) => {
            if let Some(action) = Action::from_arg(word) {
                if args.len() != 2 {
                    // As the Go helpers: exactly one argument, else usage on stdout.
                    let _ = writeln!(std::io::stdout(), "{}", messages::USAGE);
                    return Exit::Failure;
                }
                return protocol::main(action, &settings);
            }
            if !word.starts_with('-') && !is_command(word) {
                let _ = writeln!(
                    std::io::stdout(),
                    "{}",
                    messages::sanitize(&messages::unknown_action(word))
                );
                if let Some(near) = closest_word(word) {
                    eprintln!("{}", messages::did_you_mean(&near));
                }
                eprintln!("{}", messages::UNKNOWN_ACTION_HINT);
                return Exit::Failure;
            }
        }
        Some(None) => {}
    }
    let opts = match Opts::try_parse_from(&args) {
        Ok(o) => o,
        Err(e) => {
            // clap quotes the argument it could not place; never a private key.
            if e.use_stderr() && messages::is_private_key(&e.render().to_string()) {
                eprintln!(
                    "{}{}",
                    messages::ERROR_PREFIX,
                    messages::PRIVATE_KEY_NOT_RECIPIENT
                );
            } else if e.print().is_err_and(|e| crate::output::closed_io(&e)) {
                return Exit::BrokenPipe;
            }
            return if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
        }
    };
    match run(opts, &settings) {
        Ok(code) => code,
        // A reader that stopped reading (`| head`) is no error to report.
        Err(e) if crate::output::closed(&e) => Exit::BrokenPipe,
        Err(e) => {
            eprintln!("{}{}", messages::ERROR_PREFIX, e.message());
            e.exit()
        }
    }
}

fn is_command(word: &str) -> bool {
    word == "help" || Opts::command().find_subcommand(word).is_some()
}

/// The visible command or protocol action closest to a mistyped `word` (`unlok` →
/// `unlock`, `stauts` → `status`, `recipient` → `recipients`), if one is close enough:
/// at most one edit for short words, two from five letters on. Only the known word is
/// ever printed, never what was typed (it may be a key pasted in the wrong place).
fn closest_word(word: &str) -> Option<String> {
    const ACTIONS: [&str; 5] = ["store", "get", "erase", "list", "version"];
    let cmd = Opts::command();
    let limit = if word.chars().count() >= 5 { 2 } else { 1 };
    cmd.get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name())
        .chain(ACTIONS)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

/// The optimal-string-alignment distance: insertions, deletions, substitutions and
/// swaps of two neighbours (`stauts`) each count one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

fn run(opts: Opts, settings: &Settings) -> Result<Exit, Error> {
    match opts.command {
        Command::Init(o) => commands::init::run(o, settings),
        Command::Unlock(o) => commands::unlock::run(o, settings),
        Command::Lock(o) => commands::lock::run(o, settings),
        Command::Status(o) => commands::status::run(o, settings),
        Command::Doctor(o) => commands::doctor::run(o, settings),
        Command::Import(o) => commands::import::run(o, settings),
        Command::Unimport(o) => commands::unimport::run(o, settings),
        Command::Export(o) => commands::export::run(o, settings),
        Command::Passwd(o) => commands::passwd::run(o, settings),
        Command::Recipients(c) => commands::recipients::run(c, settings),
        Command::Check(o) => commands::check::run(o, settings),
        Command::Source(o) => commands::source::run(o, settings),
        Command::Expiry(o) => commands::expiry::run(o, settings),
        Command::Rotate(o) => commands::rotate::run(o, settings),
        Command::KubeletCredentialProvider(o) => {
            Ok(crate::kubelet::main(o.cache_duration.as_deref(), settings))
        }
        Command::Completions { shell } => commands::completions::run(&Opts::command(), shell),
        Command::GenerateAssets { dir } => {
            crate::assets::generate(&Opts::command(), &dir).map(|()| Exit::Ok)
        }
        Command::Exec(o) => commands::exec::run(o, settings),
        Command::Forward(o) => commands::forward::run(o, settings),
        Command::Log(o) => commands::log::run(o, settings),
        Command::Agent(o) => match &o.socket {
            Some(socket) => crate::agent::run(socket),
            None => {
                let agent = crate::agent::client::Agent::for_user();
                crate::agent::run_foreground(
                    agent.socket(),
                    || agent.claim_for_foreground(),
                    crate::agent::credential::CredentialVault::at_start(settings),
                )
            }
        }
        .map(|()| Exit::Ok),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_valid() {
        Opts::command().debug_assert();
    }

    /// The completion scripts of the real definition (`src/assets.rs`).
    mod assets {
        use super::*;
        use crate::assets::{SHORT, completion};
        use crate::messages::BIN;
        use clap_complete::Shell;

        fn cmd() -> clap::Command {
            Opts::command()
        }

        #[test]
        fn bash_script_is_registered_for_both_names_and_its_states_agree() {
            let text = String::from_utf8(completion(&cmd(), Shell::Bash).unwrap()).unwrap();
            assert!(text.contains(&format!(" {SHORT} {BIN}\n")), "{text}");
            // The loop's state for `unlock` has a case arm of the same spelling.
            assert!(text.contains("cmd=\"lockbox__subcmd__unlock\""));
            assert!(text.contains("\n        lockbox__subcmd__unlock)\n"));
        }

        #[test]
        fn zsh_names_both() {
            let text = String::from_utf8(completion(&cmd(), Shell::Zsh).unwrap()).unwrap();
            assert!(text.starts_with(&format!("#compdef {BIN} {SHORT}\n")));
            assert!(text.contains(&format!("compdef _{BIN} {BIN} {SHORT}\n")));
        }

        /// Issue 24, item 9: `man lockbox-unlock`, the name people type.
        #[test]
        fn man_pages_exist_for_both_names() {
            let dir = tempfile::tempdir().unwrap();
            crate::assets::generate(&cmd(), dir.path()).unwrap();
            let man = dir.path().join("man1");
            for page in [
                format!("{BIN}.1"),
                format!("{BIN}-unlock.1"),
                format!("{SHORT}-unlock.1"),
                format!("{SHORT}-recipients-add.1"),
            ] {
                assert!(man.join(&page).is_file(), "no {page}");
            }
            // The short name's page names the command as people type it.
            let text = std::fs::read_to_string(man.join(format!("{SHORT}-unlock.1"))).unwrap();
            assert!(text.contains("lockbox\\-unlock"), "{text}");
            assert!(!text.contains("docker\\-credential"), "{text}");
            // lockbox.1 is the package's link, not a generated page.
            assert!(!man.join(format!("{SHORT}.1")).exists());
            // As for the long name, no pages for clap's `help` subcommands.
            let names: Vec<String> = std::fs::read_dir(&man)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(!names.iter().any(|n| n.contains("-help")), "{names:?}");
            assert_eq!(
                names.iter().filter(|n| n.starts_with("lockbox-")).count() + 1,
                names.iter().filter(|n| n.starts_with(BIN)).count(),
                "{names:?}"
            );
        }
    }

    #[test]
    fn typos_get_the_nearest_command() {
        for (typo, meant) in [
            ("unlok", "unlock"),
            ("stauts", "status"),
            ("doctr", "doctor"),
            ("recipient", "recipients"),
            ("imprt", "import"),
            ("gte", "get"),
            ("lsit", "list"),
        ] {
            assert_eq!(closest_word(typo).as_deref(), Some(meant), "{typo}");
        }
        for far in ["frobnicate", "x", "AGE-SECRET-KEY-1QYQSZ", "hello"] {
            assert_eq!(closest_word(far), None, "{far}");
        }
    }
}
