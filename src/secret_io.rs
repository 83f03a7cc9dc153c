//! Bounded reads of secrets into wiped memory: stdin, identity, passphrase and
//! credential files, the regular-file check. A leaf of plumbing (floor 2 in
//! `src/lib.rs`): it knows files and byte limits, no key or vault type. Which source
//! is read when is decided in `keysource`; what the bytes mean, in `identity`.
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use age::secrecy::SecretString;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Most bytes read from stdin by a protocol action or the kubelet plugin (1 MiB).
pub const MAX_STDIN: usize = 1 << 20;

/// Largest identity or passphrase file read, bytes.
pub const MAX_KEY_FILE: u64 = 64 * 1024;

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
    ensure_regular(&file, path)?;
    read_bounded(file, path)
}

/// The whole of `file` (opened from `path`), at most [`MAX_KEY_FILE`] bytes, in wiped
/// memory.
fn read_bounded(file: File, path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let buf = read_wiped(file, MAX_KEY_FILE as usize)
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

/// Reads at most `limit + 1` bytes into memory that is wiped when dropped, growing by
/// copying into a fresh wiped buffer (never `Vec`'s own reallocation, which would
/// leave an unwiped copy behind) and starting small, so a short input touches few
/// pages: zeroize wipes a buffer's whole capacity, and a 1 MiB reservation cost every
/// `get` about 250 page faults. The caller compares the length with `limit`.
pub fn read_wiped(mut input: impl Read, limit: usize) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(4096.min(limit + 1)));
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() > limit {
                return Ok(buf);
            }
            let mut bigger =
                Zeroizing::new(Vec::with_capacity((buf.capacity() * 4).min(limit + 1)));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        let start = buf.len();
        let room = buf.capacity() - start;
        buf.resize(start + room, 0);
        let n = loop {
            match input.read(&mut buf[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        buf.truncate(start + n);
        if n == 0 {
            return Ok(buf);
        }
    }
}

/// Refuses an open file that is not a regular file, naming what it is (fstat, so it
/// is the file actually opened, not whatever the path names a moment later).
pub fn ensure_regular(file: &File, path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let t = file
        .metadata()
        .map_err(|e| Error::io("inspect", path, e))?
        .file_type();
    if t.is_file() {
        return Ok(());
    }
    let kind = if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a special file"
    };
    Err(Error::NotRegularFile {
        path: path.to_owned(),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reader that hands out at most `chunk` bytes a call, as pipes do.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest! {
        #[test]
        fn read_wiped_reads_everything_up_to_the_limit(len in 0usize..70_000, chunk in 1usize..9000) {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let limit = 50_000;
            let got = read_wiped(Trickle { data: &data, chunk }, limit).unwrap();
            if len <= limit {
                prop_assert_eq!(&got[..], &data[..]);
            } else {
                prop_assert!(got.len() > limit);
                prop_assert_eq!(&got[..], &data[..got.len()]);
            }
        }
    }
}
