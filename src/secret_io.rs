//! Bounded reads of secrets into wiped memory: stdin, identity, passphrase and
//! credential files, the regular-file check. A leaf of plumbing (floor 2 in
//! `src/lib.rs`): it knows files and byte limits, no key or vault type. Which source
//! is read when is decided in `keysource`; what the bytes mean, in `identity`.
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use age::secrecy::SecretString;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::messages;

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

/// Reads a small secret file into wiped memory. It may be a pipe (`<(pass show …)`,
/// `/dev/fd/N`, a FIFO with a writer), read within [`PIPE_WAIT`]; anything else that
/// is not a regular file is refused at once.
pub fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    read_bounded(path, Accept::FileOrPipe)
}

/// Reads systemd's credential file (`$CREDENTIALS_DIRECTORY/lockbox-identity`) into
/// wiped memory. Unlike an identity file, which may be a pipe a person made
/// (`<(pass show …)`), the credential is always a regular file that systemd wrote: so
/// anything else (a FIFO, a device, a symlink planted where a hand-set
/// `CREDENTIALS_DIRECTORY` points) is refused at once, instead of blocking `get`, or
/// the single-threaded agent and every peer.
pub fn read_credential_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    read_bounded(path, Accept::RegularFileNoLink)
}

/// The whole of the file at `path`, at most [`MAX_KEY_FILE`] bytes, in wiped memory.
fn read_bounded(path: &Path, accept: Accept) -> Result<Zeroizing<Vec<u8>>> {
    let file = open(path, accept).map_err(|e| bad_file(path, reason("cannot open it", &e)))?;
    let buf = read_wiped(file, MAX_KEY_FILE as usize)
        .map_err(|e| bad_file(path, reason("cannot read it", &e)))?;
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

/// Reads a source's secret (`source add --secret-access-key-file` and the like): a
/// file or a pipe as a key file is read ([`read_key_file`]), or stdin for `-` — never
/// a terminal, where what is typed is echoed and a paste stays in the scrollback. At
/// most [`MAX_KEY_FILE`] bytes, into wiped memory; one trailing newline (LF or CRLF)
/// is dropped (`echo secret > file`); the rest must be UTF-8 and not empty.
pub fn read_secret_input(path: &Path) -> Result<SecretString> {
    use std::io::IsTerminal as _;
    let bad = |reason: String| Error::BadSecretFile {
        path: path.to_owned(),
        reason,
    };
    let bytes = if path.as_os_str() == "-" {
        let stdin = io::stdin();
        if stdin.is_terminal() {
            return Err(bad(messages::SECRET_STDIN_IS_TERMINAL.into()));
        }
        let buf = read_wiped(stdin.lock(), MAX_KEY_FILE as usize)
            .map_err(|e| bad(reason("cannot read stdin", &e)))?;
        if buf.len() as u64 > MAX_KEY_FILE {
            return Err(bad(format!("larger than {MAX_KEY_FILE} bytes")));
        }
        buf
    } else {
        read_key_file(path).map_err(|e| match e {
            Error::BadIdentity { reason, .. } => bad(reason),
            other => other,
        })?
    };
    let mut text: &[u8] = &bytes;
    if let Some(t) = text.strip_suffix(b"\n") {
        text = t.strip_suffix(b"\r").unwrap_or(t);
    }
    let text = std::str::from_utf8(text).map_err(|_| bad("it is not UTF-8 text".into()))?;
    if text.is_empty() {
        return Err(bad("it is empty".into()));
    }
    Ok(SecretString::from(text.to_owned()))
}

// --- The one open for file inputs (issue 20 finding 2) -------------------------------
//
// [`open`] opens with `O_NONBLOCK` (so opening a FIFO never waits for its writer) and
// checks what it opened with `fstat`. A regular file is read as it is. Anything else
// is refused at once with one line naming what it is — except a pipe where a pipe is a
// documented input ([`Accept::FileOrPipe`]: key, passphrase and recipients files, which
// people give as `<(pass show …)`, `/dev/fd/N`, `/dev/stdin` or a FIFO with a writer):
// that is read with one deadline for the whole read, [`PIPE_WAIT`]. The vault file is
// read through it too (`file.rs`); only its lock and temporary file, which are
// created and written, have their own opens there (O_NONBLOCK, fstat,
// [`ensure_regular`]).

/// The longest a pipe named as a key, passphrase or recipients file may take to
/// deliver all of its bytes: generous, since a person may be typing a PIN into the
/// program on its other end (`<(pass show …)` asks gpg's pinentry).
pub const PIPE_WAIT: Duration = Duration::from_secs(60);

/// What an input may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Only a regular file (a symbolic link to one is followed): config.json, OpenBao
    /// token and CA files, sudoers.
    RegularFile,
    /// Only a regular file, and not through a symbolic link: the systemd credential,
    /// which systemd always writes as a file.
    RegularFileNoLink,
    /// A regular file or a pipe, read within [`PIPE_WAIT`]: key, passphrase and
    /// recipients files.
    FileOrPipe,
}

/// What [`open`] refused: the reason a caller's one-line error gives, and what the
/// file is when it is not a regular file.
#[derive(Debug)]
struct Refused(String, Option<&'static str>);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refused(kind: io::ErrorKind, text: String) -> io::Error {
    io::Error::new(kind, Refused(text, None))
}

/// What the file [`open`] refused is ("a FIFO (named pipe)", "a directory", …), when
/// it refused it for not being a regular file.
pub fn refused_kind(e: &io::Error) -> Option<&'static str> {
    e.get_ref()
        .and_then(|r| r.downcast_ref::<Refused>())
        .and_then(|r| r.1)
}

/// The reason to show for an error of [`open`] or of reading an [`Input`]: the
/// refusal itself ("it is a FIFO (named pipe), not a regular file"), or `what` and
/// the system's error ("cannot open it: Permission denied").
pub fn reason(what: &str, e: &io::Error) -> String {
    match e.get_ref().and_then(|r| r.downcast_ref::<Refused>()) {
        Some(r) => r.0.clone(),
        None => format!("{what}: {e}"),
    }
}

/// An opened input: a regular file, or a pipe read against its deadline.
#[derive(Debug)]
pub struct Input {
    file: File,
    deadline: Option<(Instant, Duration)>,
}

impl Input {
    /// The opened file's metadata (its owner, for callers that check it).
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.file.metadata()
    }

    /// The file's length when it is a regular file (a hint for the reader).
    pub fn len_hint(&self) -> u64 {
        match self.deadline {
            None => self.file.metadata().map_or(0, |m| m.len()),
            Some(_) => 0,
        }
    }
}

/// The name of what `t` is, for "… is KIND, not a regular file".
pub fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_fifo() {
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
    }
}

/// Opens `path` for reading: never waits in `open`, and refuses what `accept` does not
/// allow. Symbolic links are followed (`/dev/stdin`) unless `accept` says otherwise.
/// A missing file is an error of kind `NotFound`, for callers to whom that means
/// "none".
pub fn open(path: &Path, accept: Accept) -> io::Result<Input> {
    use rustix::fs::OFlags;
    let mut flags = OFlags::NONBLOCK | OFlags::CLOEXEC;
    if accept == Accept::RegularFileNoLink {
        flags |= OFlags::NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
                && accept == Accept::RegularFileNoLink
            {
                refused(io::ErrorKind::InvalidInput, messages::input_is_a_link())
            } else {
                e
            }
        })?;
    let t = file.metadata()?.file_type();
    if t.is_file() {
        return Ok(Input {
            file,
            deadline: None,
        });
    }
    if t.is_fifo() && accept == Accept::FileOrPipe {
        let wait = pipe_wait();
        return Ok(Input {
            file,
            deadline: Some((Instant::now() + wait, wait)),
        });
    }
    let kind = kind_of(t);
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        Refused(messages::not_a_regular_input(kind), Some(kind)),
    ))
}

fn pipe_wait() -> Duration {
    // Debug builds (tests) only: the FIFO table would otherwise wait a minute a row.
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("LOCKBOX_DEBUG_PIPE_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Duration::from_millis(ms);
    }
    PIPE_WAIT
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some((until, wait)) = self.deadline else {
            return self.file.read(buf);
        };
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(refused(
                    io::ErrorKind::TimedOut,
                    messages::pipe_silent(wait.as_secs().max(1)),
                ));
            }
            // A FIFO that no writer has opened yet is not readable (Linux reports
            // neither data nor hang-up before a first writer), so this waits for one.
            let ts = Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: 0,
            });
            let mut fds = [PollFd::new(&self.file, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }
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
    let t = file
        .metadata()
        .map_err(|e| Error::io("inspect", path, e))?
        .file_type();
    if t.is_file() {
        return Ok(());
    }
    let kind = kind_of(t);
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

    /// A pipe whose writer already wrote and exited (`<(cat file)` after `cat` is
    /// done) is read to its end at once: Linux reports the hang-up of an anonymous
    /// pipe, so the bounded wait never waits out its deadline on it.
    #[test]
    fn a_finished_pipe_is_read_to_its_end_without_waiting() {
        use std::io::Write as _;
        use std::os::fd::AsRawFd;
        let (reader, mut writer) = io::pipe().unwrap();
        writer.write_all(b"pipe-data\n").unwrap();
        drop(writer);
        let path = format!("/proc/self/fd/{}", reader.as_raw_fd());
        // Were the hang-up not seen, this would fail after PIPE_WAIT with the
        // deadline's error, not pass.
        let input = open(Path::new(&path), Accept::FileOrPipe).unwrap();
        let got = read_wiped(input, 1024).unwrap();
        assert_eq!(&got[..], b"pipe-data\n");
        // Refused where only a regular file will do, naming what it is.
        let e = open(Path::new(&path), Accept::RegularFile).unwrap_err();
        assert_eq!(refused_kind(&e), Some("a FIFO (named pipe)"));
        assert!(
            reason("cannot open it", &e).contains("is a FIFO (named pipe), not a regular file")
        );
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
