//! The host's OpenBao settings (address, CA, proxy, timeout, namespace), read once
//! through a lookup, never from a vault file.
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::OpenBaoError;
use crate::vault::slot::{MAX_MOUNT, check_segment};

/// Shorthand for this module's results.
type Result<T, E = OpenBaoError> = std::result::Result<T, E>;

/// Default total time for one call, connect included (`LOCKBOX_OPENBAO_TIMEOUT`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// System CA bundles, tried in order when no CA file is set (Debian/Ubuntu/Alpine,
/// Fedora/RHEL, openSUSE).
pub(super) const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
];

/// A way to read one environment variable: `std::env::var_os` in the binary, a map in
/// tests, so settings are read once, in one place.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// Every environment variable this module reads: `src/config.rs` takes a snapshot of
/// these once, so the settings are read from the environment in one place.
pub const ENV_VARS: &[&str] = &[
    "LOCKBOX_OPENBAO_ADDR",
    "BAO_ADDR",
    "VAULT_ADDR",
    "LOCKBOX_OPENBAO_CACERT",
    "BAO_CACERT",
    "VAULT_CACERT",
    "LOCKBOX_OPENBAO_PROXY",
    "LOCKBOX_OPENBAO_TIMEOUT",
    "LOCKBOX_OPENBAO_NAMESPACE",
    "BAO_NAMESPACE",
    "VAULT_NAMESPACE",
    "LOCKBOX_OPENBAO_TOKEN",
    "LOCKBOX_OPENBAO_TOKEN_FILE",
    "BAO_TOKEN",
    "VAULT_TOKEN",
];

pub(super) fn non_empty(lookup: Lookup<'_>, name: &str) -> Option<OsString> {
    lookup(name).filter(|v| !v.is_empty())
}

/// The server address: scheme, host, port. Never read from a vault file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `https://host:port` (or `http://` for loopback), no trailing slash.
    base: String,
    /// Whether this is plain HTTP (allowed for loopback only).
    pub(super) plain: bool,
}

impl Address {
    /// Parses `https://HOST[:PORT][/]` or, for `127.0.0.1`, `[::1]` and `localhost`
    /// only, `http://…`. `var` names the variable in errors. No user info, path, query
    /// or fragment: nothing that could change where the request goes.
    pub fn parse(text: &str, var: &'static str) -> Result<Address> {
        let bad = |reason: &str| OpenBaoError::BadAddress {
            var,
            reason: reason.to_owned(),
        };
        let (plain, rest) = if let Some(rest) = strip_prefix_ci(text, "https://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ci(text, "http://") {
            (true, rest)
        } else {
            return Err(bad(
                "it must start with https:// (or http:// for 127.0.0.1)",
            ));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(bad("it has no host"));
        }
        if authority.contains(['/', '?', '#', '@', '\\', '%'])
            || authority
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad(
                "only scheme://HOST[:PORT] is accepted (no path, user info, query or fragment)",
            ));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| bad("the host or port is malformed"))?;
        if let Some(port) = port
            && (port.is_empty()
                || port.len() > 5
                || !port.bytes().all(|b| b.is_ascii_digit())
                || port.parse::<u16>().is_err())
        {
            return Err(bad("the port is not a number from 0 to 65535"));
        }
        let host_lower = host.to_ascii_lowercase();
        if plain && !matches!(host_lower.as_str(), "127.0.0.1" | "[::1]" | "localhost") {
            return Err(bad(
                "plain http:// is allowed only for 127.0.0.1, [::1] and localhost (the token would cross the network in the clear): use https://",
            ));
        }
        let scheme = if plain { "http" } else { "https" };
        let base = match port {
            Some(port) => format!("{scheme}://{host_lower}:{port}"),
            None => format!("{scheme}://{host_lower}"),
        };
        Ok(Address { base, plain })
    }

    /// `scheme://host:port`, for messages and requests.
    pub fn as_str(&self) -> &str {
        &self.base
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Splits `host[:port]` or `[v6][:port]`; `None` when malformed.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let host = &authority[..=end];
        let inner = &host[1..host.len() - 1];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        return match &authority[end + 1..] {
            "" => Some((host, None)),
            rest => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    ok.then_some((host, port))
}

/// Where the CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSource {
    /// The variable that named the file, or `"system"` for the system bundle.
    pub var: &'static str,
    /// The PEM file.
    pub path: PathBuf,
}

/// The host's OpenBao settings, read once from the environment. Nothing in it comes
/// from a vault file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server.
    pub addr: Address,
    /// The CA file named by a variable; `None`: the system bundle.
    pub ca_file: Option<CaSource>,
    /// A proxy, only when `LOCKBOX_OPENBAO_PROXY` asks for one.
    pub proxy: Option<String>,
    /// Total time for one call.
    pub timeout: Duration,
    /// The namespace, from `LOCKBOX_OPENBAO_NAMESPACE` (else `BAO_NAMESPACE`, else
    /// `VAULT_NAMESPACE`): a host setting, like the address.
    pub namespace: Option<String>,
}

impl Settings {
    /// Reads `LOCKBOX_OPENBAO_ADDR` (else `BAO_ADDR`, else `VAULT_ADDR`),
    /// `LOCKBOX_OPENBAO_CACERT` (else `BAO_CACERT`, else `VAULT_CACERT`),
    /// `LOCKBOX_OPENBAO_PROXY` and `LOCKBOX_OPENBAO_TIMEOUT` (e.g. `10s`).
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Settings> {
        let text = |var: &'static str| -> Result<Option<String>> {
            non_empty(lookup, var)
                .map(|v| {
                    v.into_string().map_err(|_| OpenBaoError::BadSetting {
                        var,
                        reason: "it is not UTF-8".into(),
                    })
                })
                .transpose()
        };
        let mut addr = None;
        for var in ["LOCKBOX_OPENBAO_ADDR", "BAO_ADDR", "VAULT_ADDR"] {
            if let Some(v) = text(var)? {
                addr = Some(Address::parse(&v, var)?);
                break;
            }
        }
        let addr = addr.ok_or(OpenBaoError::NoAddress)?;
        let ca_file = ["LOCKBOX_OPENBAO_CACERT", "BAO_CACERT", "VAULT_CACERT"]
            .into_iter()
            .find_map(|var| {
                non_empty(lookup, var).map(|p| CaSource {
                    var,
                    path: PathBuf::from(p),
                })
            });
        let proxy = text("LOCKBOX_OPENBAO_PROXY")?;
        if let Some(p) = &proxy {
            if addr.plain {
                return Err(OpenBaoError::BadSetting {
                    var: "LOCKBOX_OPENBAO_PROXY",
                    reason: "a proxy is refused with a plain http:// address (the token would reach the proxy in the clear)".into(),
                });
            }
            if !(strip_prefix_ci(p, "http://").is_some()
                || strip_prefix_ci(p, "https://").is_some())
            {
                return Err(OpenBaoError::BadSetting {
                    var: "LOCKBOX_OPENBAO_PROXY",
                    reason: "it must be an http:// or https:// proxy URL".into(),
                });
            }
        }
        let mut namespace = None;
        for var in [
            "LOCKBOX_OPENBAO_NAMESPACE",
            "BAO_NAMESPACE",
            "VAULT_NAMESPACE",
        ] {
            if let Some(ns) = text(var)? {
                // Same characters as a mount path: it goes into a header.
                let ns = ns.trim_matches('/').to_owned();
                if ns.len() > MAX_MOUNT || ns.split('/').any(|seg| check_segment(seg).is_err()) {
                    return Err(OpenBaoError::BadSetting {
                        var,
                        reason: "a namespace is NAME or NAME/NAME of ASCII letters, digits, '.', '_', '-'".into(),
                    });
                }
                namespace = Some(ns);
                break;
            }
        }
        let timeout = match text("LOCKBOX_OPENBAO_TIMEOUT")? {
            None => DEFAULT_TIMEOUT,
            Some(t) => {
                let d = humantime::parse_duration(&t).map_err(|e| OpenBaoError::BadSetting {
                    var: "LOCKBOX_OPENBAO_TIMEOUT",
                    reason: format!("{e} (write e.g. 10s)"),
                })?;
                if d.is_zero() || d > Duration::from_secs(600) {
                    return Err(OpenBaoError::BadSetting {
                        var: "LOCKBOX_OPENBAO_TIMEOUT",
                        reason: "it must be more than 0 and at most 10m".into(),
                    });
                }
                d
            }
        };
        Ok(Settings {
            addr,
            ca_file,
            proxy,
            timeout,
            namespace,
        })
    }
}
