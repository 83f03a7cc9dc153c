//! The test plugin (`tests/plugin`, `age-plugin-lockboxtest`: its own crate, never
//! shipped) for the suites that drive age plugins: built by cargo once per test process
//! (cargo locks its build directory, so test processes building it at once wait for
//! each other, and a fresh build is a no-op), found where cargo says it put it, and its
//! keys.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A tag recipient (`age1tag1…`): age encrypts to it natively, only a plugin opens it.
pub const TAG_RECIPIENT: &str =
    "age1tag1qt8lw0ual6avlwmwatk888yqnmdamm7xfd0wak53ut6elz5c4swx2yqdj4e";

/// The plugin's binary target (tests/plugin/Cargo.toml).
const NAME: &str = "age-plugin-lockboxtest";

/// The variable by which a test process hands the built plugin to a test it re-runs in a
/// child (or a script to the tests): when set, the plugin is that file, unbuilt.
pub const BIN_VAR: &str = "LOCKBOX_TEST_PLUGIN_BIN";

/// The test plugin's path: [`BIN_VAR`] when set, else built once (its own crate and
/// lock file).
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os(BIN_VAR).filter(|v| !v.is_empty()) {
        Some(given) => {
            let path = PathBuf::from(given);
            assert!(
                path.is_file(),
                "{BIN_VAR} is {}, which is not a file (unset it to have the tests build the plugin)",
                path.display()
            );
            path
        }
        None => build(),
    })
}

/// `cargo build` of tests/plugin, wherever cargo puts it (`CARGO_TARGET_DIR`, a
/// `build.target-dir` setting, or `tests/plugin/target`): the path is the `executable`
/// of cargo's `compiler-artifact` message for the plugin.
fn build() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plugin/Cargo.toml");
    let cargo = env!("CARGO");
    let mut child = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {cargo} to build {}: {e}", manifest.display()));
    let mut messages = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut messages)
        .unwrap_or_else(|e| panic!("read the messages of {cargo} build: {e}"));
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("wait for {cargo} build: {e}"));
    assert!(
        status.success(),
        "`{cargo} build --manifest-path {}` failed ({status}); its errors are above",
        manifest.display()
    );
    let path = messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == NAME)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| {
            panic!(
                "`{cargo} build --manifest-path {}` named no executable for {NAME}",
                manifest.display()
            )
        });
    assert!(
        path.is_file(),
        "cargo says it built {NAME} at {}, but there is no file there",
        path.display()
    );
    path
}

/// The directory holding the built plugin (to put first in a `PATH`).
pub fn dir() -> &'static Path {
    binary().parent().expect("the plugin is in a directory")
}

/// A new test-plugin key (`--generate`, with `--pin` or `--hang` in `flags`):
/// (identity line, recipient).
pub fn key(flags: &[&str]) -> (String, String) {
    let bin = binary();
    let out = Command::new(bin)
        .arg("--generate")
        .args(flags)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run the test plugin {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{} --generate failed: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
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
