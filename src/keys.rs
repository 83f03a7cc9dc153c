//! Key material in files and text: reading identity and passphrase files into wiped
//! memory, and parsing age identities and SSH private keys. Which source is used when
//! is decided in `keysource`, not here.
//!
//! The seam for the agent is [`EntryOpener`]: whatever opens entries — a [`VaultKey`]
//! in this process, or an agent that decrypts on request so the key never leaves it.
use std::fs::File;
use std::path::Path;

use age::secrecy::SecretString;
use zeroize::Zeroizing;

use crate::crypto::VaultKey;
use crate::error::{Error, Result};

/// Largest identity or passphrase file read, bytes.
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// Opens entry ciphertexts. Implemented by [`VaultKey`] and by the agent client.
///
/// The secret comes back as a [`SecretString`] and stays one until the one place that
/// writes it (`get`'s answer, `export`'s output, the kubelet answer, the agent's
/// reply frame), so `grep expose_secret` finds every access.
pub trait EntryOpener {
    /// Decrypts the entry for `server`/`username`, checking its binding.
    fn open_entry(&self, server: &str, username: &str, ciphertext: &[u8]) -> Result<SecretString>;
}

impl EntryOpener for VaultKey {
    fn open_entry(&self, server: &str, username: &str, ciphertext: &[u8]) -> Result<SecretString> {
        let plain = VaultKey::open_entry(self, server, username, ciphertext)?;
        // `to_owned` allocates exactly the length, so the box conversion inside
        // `SecretString::from` does not reallocate; `plain` is wiped on drop.
        Ok(SecretString::from(plain.as_str().to_owned()))
    }
}

/// An unusable identity file, named by its path.
fn bad_file(path: &Path, reason: String) -> Error {
    Error::BadIdentity {
        source_name: path.display().to_string(),
        reason,
    }
}

/// Reads a small secret file into wiped memory.
pub fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let file = File::open(path).map_err(|e| bad_file(path, format!("cannot open it: {e}")))?;
    read_bounded(file, path)
}

/// Reads systemd's credential file (`$CREDENTIALS_DIRECTORY/lockbox-identity`) into
/// wiped memory. Unlike an identity file, which may be a pipe a person made
/// (`<(pass show …)`), the credential is always a regular file that systemd wrote: so
/// it is opened `O_NONBLOCK | O_NOFOLLOW` and anything else (a FIFO, a device, a
/// symlink planted where a hand-set `CREDENTIALS_DIRECTORY` points) is refused at
/// once, instead of blocking `get`, or the single-threaded agent and every peer.
pub fn read_credential_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                let why = "it is a symbolic link; systemd writes the credential as a file";
                bad_file(path, why.into())
            } else {
                bad_file(path, format!("cannot open it: {e}"))
            }
        })?;
    crate::file::ensure_regular(&file, path)?;
    read_bounded(file, path)
}

/// The whole of `file` (opened from `path`), at most [`MAX_KEY_FILE`] bytes, in wiped
/// memory.
fn read_bounded(file: File, path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let buf = crate::file::read_wiped(file, MAX_KEY_FILE as usize)
        .map_err(|e| bad_file(path, format!("cannot read it: {e}")))?;
    if buf.len() as u64 > MAX_KEY_FILE {
        return Err(bad_file(path, format!("larger than {MAX_KEY_FILE} bytes")));
    }
    Ok(buf)
}

/// Reads a passphrase file: its content without one trailing newline (LF or CRLF).
pub fn read_passphrase_file(path: &Path) -> Result<SecretString> {
    let bad = |reason: String| Error::BadPassphraseFile {
        path: path.to_owned(),
        reason,
    };
    let bytes = read_key_file(path).map_err(|e| match e {
        Error::BadIdentity { reason, .. } => bad(reason),
        other => other,
    })?;
    let mut text: &[u8] = &bytes;
    if let Some(t) = text.strip_suffix(b"\n") {
        text = t.strip_suffix(b"\r").unwrap_or(t);
    }
    let text = std::str::from_utf8(text).map_err(|_| bad("the passphrase is not UTF-8".into()))?;
    if text.is_empty() {
        return Err(bad("it is empty".into()));
    }
    Ok(SecretString::from(text.to_owned()))
}

/// Parses age identities (`AGE-SECRET-KEY-1…` lines) or one OpenSSH / PEM private key
/// (ssh-ed25519, ssh-rsa), never asking for a passphrase: `src/identities.rs`'s parser
/// with `NeverAsk`, so there is one parser. Plugin identities are refused here (this
/// returns only identities that open slots in-process). `source_name` names the source
/// in errors; no error ever contains key material.
pub fn parse_identities(
    text: &[u8],
    source_name: &str,
) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>> {
    let ids = crate::identities::parse(text, source_name, &crate::identities::NeverAsk)?;
    if !ids.plugins.is_empty() {
        return Err(Error::BadIdentity {
            source_name: source_name.to_owned(),
            reason: "age plugin identities (AGE-PLUGIN-…) need their plugin, which this parser never runs (the key sources open them: src/keysource.rs)"
                .into(),
        });
    }
    Ok(ids.native)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// Regression: an unencrypted OpenSSH RSA private key whose modulus is a non-empty,
    /// all-zero mpint made age 0.12.1 panic (`LOCKBOX_IDENTITY_FILE` reads such keys).
    #[test]
    fn ssh_rsa_key_with_zero_mpint_is_refused_not_a_panic() {
        fn string(out: &mut Vec<u8>, bytes: &[u8]) {
            out.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
            out.extend_from_slice(bytes);
        }
        let mut private = vec![1, 2, 3, 4, 1, 2, 3, 4]; // two equal check integers
        string(&mut private, b"ssh-rsa");
        for mpint in [&[0u8][..], &[1, 0, 1], &[1], &[1], &[1], &[1]] {
            string(&mut private, mpint); // n = 00, then e, d, iqmp, p, q
        }
        string(&mut private, b"comment");
        let mut blob = b"openssh-key-v1\0".to_vec();
        for field in [&b"none"[..], b"none", b""] {
            string(&mut blob, field);
        }
        blob.extend_from_slice(&1u32.to_be_bytes());
        string(&mut blob, b"public key, not read");
        string(&mut blob, &private);
        let text = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&blob)
        );
        assert!(matches!(
            parse_identities(text.as_bytes(), "key"),
            Err(Error::BadIdentity { .. })
        ));
        // The same key with odd armor (no line break before the END line, as the
        // `identity_parse` fuzz target found): age would still read its integers.
        let odd = text.replace("\n-----END", "-----END");
        assert!(matches!(
            parse_identities(odd.as_bytes(), "key"),
            Err(Error::BadIdentity { .. })
        ));
    }

    #[test]
    fn openssh_keys_still_parse_after_re_armoring() {
        // A throwaway ssh-ed25519 key (ssh-keygen -t ed25519 -N ''), with CRLF line ends.
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\r
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\r
QyNTUxOQAAACDlMLs6Bsu2liLWoyGCI+opqAT0Q6oU8eGIz3eFuJpIuAAAAJjbUnA121Jw\r
NQAAAAtzc2gtZWQyNTUxOQAAACDlMLs6Bsu2liLWoyGCI+opqAT0Q6oU8eGIz3eFuJpIuA\r
AAAED7/VmqJz+i9uggqx5ZKgzw7DncMXqMmjpvNCp9qeqthOUwuzoGy7aWItajIYIj6imo\r
BPRDqhTx4YjPd4W4mki4AAAAEXRlc3RAbG9ja2JveC10ZXN0AQIDBA==\r
-----END OPENSSH PRIVATE KEY-----\r
";
        assert_eq!(parse_identities(key.as_bytes(), "key").unwrap().len(), 1);
    }
}
