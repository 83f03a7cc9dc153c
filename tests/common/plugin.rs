//! The test plugin (`tests/plugin`, `age-plugin-lockboxtest`: its own crate, never
//! shipped) for the suites that drive age plugins: built once per test binary, and
//! its keys.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A tag recipient (`age1tag1…`): age encrypts to it natively, only a plugin opens it.
pub const TAG_RECIPIENT: &str =
    "age1tag1qt8lw0ual6avlwmwatk888yqnmdamm7xfd0wak53ut6elz5c4swx2yqdj4e";

/// Builds the test plugin once (its own crate and lock file); its path.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--manifest-path"])
            .arg(root.join("tests/plugin/Cargo.toml"))
            .stdin(Stdio::null())
            .status()
            .expect("run cargo to build tests/plugin");
        assert!(status.success(), "building tests/plugin failed");
        root.join("tests/plugin/target/debug/age-plugin-lockboxtest")
    })
}

/// The directory holding the built plugin (to put first in a `PATH`).
pub fn dir() -> &'static Path {
    binary().parent().expect("the plugin is in a directory")
}

/// A new test-plugin key (`--generate`, with `--pin` or `--hang` in `flags`):
/// (identity line, recipient).
pub fn key(flags: &[&str]) -> (String, String) {
    let out = Command::new(binary())
        .arg("--generate")
        .args(flags)
        .stdin(Stdio::null())
        .output()
        .expect("run the test plugin");
    assert!(
        out.status.success(),
        "age-plugin-lockboxtest --generate failed"
    );
    let text = String::from_utf8(out.stdout).expect("the plugin prints text");
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# recipient: "))
        .expect("a recipient comment")
        .to_owned();
    let identity = text
        .lines()
        .find(|l| l.starts_with("AGE-PLUGIN-"))
        .expect("an identity line")
        .to_owned();
    (identity, recipient)
}
