//! `age-plugin-lockboxtest`: an age plugin for lockbox's tests only. It is NOT secure
//! and never shipped: its recipient holds the same 32 bytes as its identity, and a
//! stanza is the file key XORed with them. What it is for is the plugin protocol as
//! lockbox drives it:
//!
//! - every run appends one line to `$LOCKBOX_TEST_PLUGIN_LOG` (when set): the state
//!   machine and, for identity-v1, the number of stanzas it was given, so a test can
//!   count how often lockbox started a plugin;
//! - it logs `inherited NAME` for each of `LOCKBOX_IDENTITY`, `LOCKBOX_OPENBAO_TOKEN`
//!   and `AGEDEBUG` found in its environment, which lockbox must not pass on;
//! - a key generated with `--pin` asks for a PIN (`1234`) through the client's
//!   callbacks before it unwraps anything, as hardware plugins do;
//! - a key generated with `--hang` never answers an unwrap, to test deadlines (it
//!   exits when its client goes away, or after two minutes).
//!
//! `age-plugin-lockboxtest --generate [--pin] [--hang]` prints an identity file with
//! the recipient in a `# recipient:` comment, as real plugins do.
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};

use age_core::format::{FILE_KEY_BYTES, FileKey, Stanza};
use age_core::secrecy::ExposeSecret;
use age_plugin::identity::{self, IdentityPluginV1};
use age_plugin::recipient::{self, RecipientPluginV1};
use age_plugin::{Callbacks, PluginHandler, print_new_identity, run_state_machine};

const NAME: &str = "lockboxtest";
const STANZA_TAG: &str = "lockboxtest";
const FLAG_PIN: u8 = 1;
const FLAG_HANG: u8 = 2;
const PIN: &str = "1234";
const KEY_LEN: usize = 33; // flags, then 32 bytes

fn log(line: &str) {
    if let Some(path) = std::env::var_os("LOCKBOX_TEST_PLUGIN_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// The stanza argument naming a key: four bytes of it, hex (lets the plugin skip
/// stanzas of other keys without asking for a PIN, as tagged hardware stanzas do).
fn key_tag(key: &[u8]) -> String {
    key[29..33].iter().map(|b| format!("{b:02x}")).collect()
}

fn wrap(key: &[u8], file_key: &FileKey) -> Stanza {
    let body = file_key
        .expose_secret()
        .iter()
        .zip(&key[1..])
        .map(|(a, b)| a ^ b)
        .collect();
    Stanza {
        tag: STANZA_TAG.to_owned(),
        args: vec![key_tag(key)],
        body,
    }
}

struct Handler;

impl PluginHandler for Handler {
    type RecipientV1 = Recipients;
    type IdentityV1 = Identities;

    fn recipient_v1(self) -> io::Result<Recipients> {
        log("recipient-v1");
        Ok(Recipients(Vec::new()))
    }

    fn identity_v1(self) -> io::Result<Identities> {
        Ok(Identities(Vec::new()))
    }
}

struct Recipients(Vec<Vec<u8>>);

impl RecipientPluginV1 for Recipients {
    fn add_recipient(
        &mut self,
        index: usize,
        _: &str,
        bytes: &[u8],
    ) -> Result<(), recipient::Error> {
        if bytes.len() != KEY_LEN {
            return Err(recipient::Error::Recipient {
                index,
                message: "not a lockboxtest recipient".into(),
            });
        }
        self.0.push(bytes.to_vec());
        Ok(())
    }

    fn add_identity(&mut self, index: usize, _: &str, _: &[u8]) -> Result<(), recipient::Error> {
        Err(recipient::Error::Identity {
            index,
            message: "encrypting to identities is not supported".into(),
        })
    }

    fn labels(&mut self) -> HashSet<String> {
        HashSet::new()
    }

    fn wrap_file_keys(
        &mut self,
        file_keys: Vec<FileKey>,
        _: impl Callbacks<recipient::Error>,
    ) -> io::Result<Result<Vec<Vec<Stanza>>, Vec<recipient::Error>>> {
        Ok(Ok(file_keys
            .iter()
            .map(|fk| self.0.iter().map(|k| wrap(k, fk)).collect())
            .collect()))
    }
}

struct Identities(Vec<Vec<u8>>);

impl IdentityPluginV1 for Identities {
    fn add_identity(&mut self, index: usize, _: &str, bytes: &[u8]) -> Result<(), identity::Error> {
        if bytes.len() != KEY_LEN {
            return Err(identity::Error::Identity {
                index,
                message: "not a lockboxtest identity".into(),
            });
        }
        self.0.push(bytes.to_vec());
        Ok(())
    }

    fn unwrap_file_keys(
        &mut self,
        files: Vec<Vec<Stanza>>,
        mut callbacks: impl Callbacks<identity::Error>,
    ) -> io::Result<HashMap<usize, Result<FileKey, Vec<identity::Error>>>> {
        let stanzas: usize = files.iter().map(Vec::len).sum();
        log(&format!(
            "identity-v1 files={} stanzas={stanzas}",
            files.len()
        ));
        let mut out = HashMap::new();
        for (file_index, stanzas) in files.iter().enumerate() {
            for stanza in stanzas {
                if stanza.tag != STANZA_TAG || stanza.body.len() != FILE_KEY_BYTES {
                    continue;
                }
                let Some(key) = self
                    .0
                    .iter()
                    .find(|k| stanza.args.first() == Some(&key_tag(k)))
                else {
                    continue;
                };
                if key[0] & FLAG_HANG != 0 {
                    hang();
                }
                if key[0] & FLAG_PIN != 0 {
                    match callbacks.request_secret("Enter the lockboxtest PIN")? {
                        Ok(pin) if pin.expose_secret() == PIN => {}
                        Ok(_) => {
                            out.insert(
                                file_index,
                                Err(vec![identity::Error::Internal {
                                    message: "wrong PIN".into(),
                                }]),
                            );
                            break;
                        }
                        Err(_) => {
                            out.insert(
                                file_index,
                                Err(vec![identity::Error::Internal {
                                    message: "a PIN is needed and the client cannot ask for one"
                                        .into(),
                                }]),
                            );
                            break;
                        }
                    }
                }
                let file_key = FileKey::init_with_mut(|fk| {
                    for (i, b) in fk.iter_mut().enumerate() {
                        *b = stanza.body[i] ^ key[1 + i];
                    }
                });
                out.insert(file_index, Ok(file_key));
                break;
            }
        }
        Ok(out)
    }
}

/// Never answers: waits until the client gives up on it (its stdin closes when the
/// client exits, e.g. `get` past its deadline), at most two minutes, then exits, so a
/// test never leaves a plugin behind for long.
fn hang() -> ! {
    log("hang");
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = io::stdin().lock().read_to_end(&mut sink);
        log("hang: stdin closed");
        std::process::exit(3);
    });
    std::thread::sleep(std::time::Duration::from_secs(120));
    std::process::exit(3);
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(machine) = args.iter().find_map(|a| a.strip_prefix("--age-plugin=")) {
        // What a plugin must not inherit from lockbox: the identity text, the OpenBao
        // token, and age's debug switch (which copies the file key to stderr).
        for name in ["LOCKBOX_IDENTITY", "LOCKBOX_OPENBAO_TOKEN", "AGEDEBUG"] {
            if std::env::var_os(name).is_some() {
                log(&format!("inherited {name}"));
            }
        }
        return run_state_machine(machine, Handler);
    }
    if args.first().map(String::as_str) == Some("--generate") {
        let mut key = [0u8; KEY_LEN];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key[1..])?;
        for a in &args[1..] {
            match a.as_str() {
                "--pin" => key[0] |= FLAG_PIN,
                "--hang" => key[0] |= FLAG_HANG,
                other => {
                    eprintln!("unknown flag {other}");
                    std::process::exit(2);
                }
            }
        }
        print_new_identity(NAME, &key, &key);
        return Ok(());
    }
    eprintln!(
        "usage: age-plugin-lockboxtest --generate [--pin] [--hang]  (a test plugin: insecure)"
    );
    std::process::exit(2);
}
