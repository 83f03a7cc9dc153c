//! OpenBao tokens: where each scope may take one from, read bounded, never shown.
use std::path::Path;

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::settings::{Lookup, non_empty};
use crate::error::OpenBaoError;

/// Shorthand for this module's results.
type Result<T, E = OpenBaoError> = std::result::Result<T, E>;

/// Longest token, bytes (OpenBao's service tokens are under 100; batch tokens longer).
pub const MAX_TOKEN: usize = 4 * 1024;

/// An OpenBao token. Read only through [`ExposeSecret`]; `Debug` shows its source only.
pub struct Token {
    secret: SecretString,
    source: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Checks a token's text: printable ASCII without spaces (it goes into an HTTP
    /// header), at most [`MAX_TOKEN`] bytes. One trailing newline (LF or CRLF) is
    /// dropped, as `~/.vault-token` and `echo > file` leave one.
    pub fn new(text: Zeroizing<String>, source: impl Into<String>) -> Result<Token> {
        let source = source.into();
        let bad = |reason: &str| OpenBaoError::BadToken {
            source_name: source.clone(),
            reason: reason.to_owned(),
        };
        let mut t: &str = &text;
        if let Some(s) = t.strip_suffix('\n') {
            t = s.strip_suffix('\r').unwrap_or(s);
        }
        if t.is_empty() {
            return Err(bad("it is empty"));
        }
        if t.len() > MAX_TOKEN {
            return Err(bad("it is longer than 4096 bytes"));
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "it holds spaces, control characters or non-ASCII bytes",
            ));
        }
        Ok(Token {
            secret: SecretString::from(t.to_owned()),
            source,
        })
    }

    /// Where it came from (a variable or file name), for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Reads a token file (bounded, into wiped memory).
    pub fn from_file(path: &Path) -> Result<Token> {
        let source = path.display().to_string();
        let bad = |reason: String| OpenBaoError::BadToken {
            source_name: source.clone(),
            reason,
        };
        use crate::secret_io::{Accept, open, reason};
        let file =
            open(path, Accept::RegularFile).map_err(|e| bad(reason("cannot open it", &e)))?;
        let bytes = crate::secret_io::read_wiped(file, MAX_TOKEN + 2)
            .map_err(|e| bad(reason("cannot read it", &e)))?;
        if bytes.len() > MAX_TOKEN + 2 {
            return Err(bad("it is longer than 4096 bytes".into()));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("it is not UTF-8".into()))?;
        Token::new(Zeroizing::new(text.to_owned()), source)
    }
}

impl ExposeSecret<str> for Token {
    fn expose_secret(&self) -> &str {
        self.secret.expose_secret()
    }
}

/// Which token sources a caller may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope<'a> {
    /// `get` (and other protocol actions): only `LOCKBOX_OPENBAO_TOKEN` or
    /// `LOCKBOX_OPENBAO_TOKEN_FILE`, an explicit opt-in. An ambient `~/.vault-token`
    /// must not turn every `get` into a network call.
    Explicit,
    /// Commands for people (`unlock --openbao`, `exec --openbao`, `recipients add`):
    /// a `--openbao-token-file` flag, then the explicit variables, then `BAO_TOKEN`,
    /// `VAULT_TOKEN` and `~/.vault-token`, as the `bao` CLI finds them.
    Person {
        /// The `--openbao-token-file` flag.
        flag: Option<&'a Path>,
        /// The home directory, for `~/.vault-token`.
        home: Option<&'a Path>,
    },
}

/// The hint in [`OpenBaoError::NoToken`] for each scope.
const EXPLICIT_HINT: &str = "set LOCKBOX_OPENBAO_TOKEN_FILE (or LOCKBOX_OPENBAO_TOKEN)";
const PERSON_HINT: &str = "pass --openbao-token-file, or set LOCKBOX_OPENBAO_TOKEN_FILE, BAO_TOKEN or VAULT_TOKEN, or log in with 'bao login' (~/.vault-token)";

/// Finds the token for `scope`; `Ok(None)` when no source is set (for `get`: the
/// transit slot is simply not tried).
pub fn find_token(lookup: Lookup<'_>, scope: TokenScope<'_>) -> Result<Option<Token>> {
    let from_var = |var: &str| -> Result<Option<Token>> {
        match non_empty(lookup, var) {
            None => Ok(None),
            Some(v) => {
                let text = v.into_string().map_err(|_| OpenBaoError::BadToken {
                    source_name: var.to_owned(),
                    reason: "it is not UTF-8".into(),
                })?;
                Token::new(Zeroizing::new(text), var).map(Some)
            }
        }
    };
    if let TokenScope::Person { flag: Some(f), .. } = scope {
        return Token::from_file(f).map(Some);
    }
    let text = non_empty(lookup, "LOCKBOX_OPENBAO_TOKEN");
    let file = non_empty(lookup, "LOCKBOX_OPENBAO_TOKEN_FILE");
    match (text, file) {
        (Some(_), Some(_)) => {
            return Err(OpenBaoError::BadToken {
                source_name: "LOCKBOX_OPENBAO_TOKEN and LOCKBOX_OPENBAO_TOKEN_FILE".into(),
                reason: "both are set; set only one".into(),
            });
        }
        (Some(_), None) => return from_var("LOCKBOX_OPENBAO_TOKEN"),
        (None, Some(path)) => return Token::from_file(Path::new(&path)).map(Some),
        (None, None) => {}
    }
    let TokenScope::Person { home, .. } = scope else {
        return Ok(None);
    };
    for var in ["BAO_TOKEN", "VAULT_TOKEN"] {
        if let Some(t) = from_var(var)? {
            return Ok(Some(t));
        }
    }
    if let Some(home) = home {
        let path = home.join(".vault-token");
        if path.exists() {
            return Token::from_file(&path).map(Some);
        }
    }
    Ok(None)
}

/// The [`OpenBaoError::NoToken`] error for a scope.
pub fn no_token(scope: TokenScope<'_>) -> OpenBaoError {
    OpenBaoError::NoToken {
        hint: match scope {
            TokenScope::Explicit => EXPLICIT_HINT,
            TokenScope::Person { .. } => PERSON_HINT,
        },
    }
}
