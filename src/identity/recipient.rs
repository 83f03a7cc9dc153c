//! Recipient arguments and files as people write them (`init --recipient`,
//! `recipients add`, an authorized_keys file): parsed into [`Recipient`]s with labels,
//! and the plugins they need found before anything is asked or written.
use std::path::Path;

use crate::error::Error;
use crate::messages;
use crate::vault::crypto::Recipient;

/// A recipient and its label (see [`parse_recipient_line`]).
pub fn parse_recipient_arg(line: &str) -> Result<(Recipient, String), Error> {
    parse_recipient_line(line)?.ok_or_else(|| Error::BadRecipient(line.to_owned()))
}

/// Parses one line of a recipients or authorized_keys file: options before the key
/// type are skipped; `Ok(None)` for blank lines, comments and key types age cannot
/// use (reported by the caller).
pub fn parse_recipient_line(line: &str) -> Result<Option<(Recipient, String)>, Error> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let fields: Vec<&str> = line.split_whitespace().collect();
    if let Some(i) = fields
        .iter()
        .position(|f| *f == "ssh-ed25519" || *f == "ssh-rsa")
    {
        let Some(blob) = fields.get(i + 1) else {
            return Err(Error::BadRecipient(line.to_owned()));
        };
        let text = format!("{} {blob}", fields[i]);
        let recipient = Recipient::parse(&text)?;
        let comment = fields[i + 2..].join(" ");
        let label = if comment.is_empty() {
            recipient.canonical()
        } else {
            comment
        };
        return Ok(Some((recipient, label)));
    }
    if let Some(age) = fields.iter().find(|f| f.starts_with("age1")) {
        let recipient = Recipient::parse(age)?;
        return Ok(Some((recipient.clone(), recipient.canonical())));
    }
    if fields
        .iter()
        .any(|f| f.starts_with("ssh-") || f.starts_with("ecdsa-") || f.starts_with("sk-"))
    {
        return Ok(None);
    }
    Err(Error::BadRecipient(line.to_owned()))
}

/// Reads a recipients or authorized_keys file (`init --recipients-file`,
/// `recipients add --file`): key types age cannot use are skipped with a warning on
/// stderr, as `ssh-keygen`-style files often mix them in; anything else unreadable is
/// an error naming the line.
pub fn read_recipients_file(file: &Path) -> Result<Vec<(Recipient, String)>, Error> {
    // Bounded like every key file: public keys are short, and a device or an
    // endless pipe must not fill memory (`--file /dev/zero`).
    let limit = crate::secret_io::MAX_KEY_FILE as usize;
    let bytes = crate::secret_io::open(file, crate::secret_io::Accept::FileOrPipe)
        .and_then(|f| crate::secret_io::read_wiped(f, limit))
        .map_err(|e| Error::io("read", file, e))?;
    if bytes.len() > limit {
        let why = messages::larger_than(limit);
        return Err(Error::io("read", file, std::io::Error::other(why)));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::io("read", file, std::io::Error::other(messages::NOT_UTF8)))?;
    let mut parsed = Vec::new();
    for (number, line) in text.lines().map(str::trim).enumerate() {
        let parsed_line = parse_recipient_line(line).map_err(|e| match e {
            Error::BadRecipient(text) => Error::BadRecipientLine {
                file: file.to_owned(),
                line: number + 1,
                text,
            },
            other => other,
        })?;
        match parsed_line {
            Some(p) => parsed.push(p),
            None if !line.is_empty() && !line.starts_with('#') => {
                eprintln!("{}", messages::sanitize(&messages::skipped_key(line)));
            }
            None => {}
        }
    }
    Ok(parsed)
}

/// Checks that the plugin of every plugin recipient about to be added is in `PATH`,
/// before anything is asked or written (`init`, `recipients add`).
pub fn require_plugins(recipients: &[(Recipient, String)]) -> Result<(), Error> {
    for (r, _) in recipients {
        if let Some(name) = r.needs_plugin() {
            super::require_plugin(name)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_comment_becomes_label() {
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@laptop";
        let (_, label) = parse_recipient_arg(line).unwrap();
        assert_eq!(label, "alice@laptop");
    }
}
