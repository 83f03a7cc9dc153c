//! Expiry with real clients and real parsers: the Docker CLI shows `get`'s warning to
//! the person, and `check --prometheus` writes what the Prometheus project's own
//! Python client (`prometheus-client`, its text-format parser) reads back.
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::common::clients::{self, ClientEnv};
use crate::common::manage::Env;
use crate::common::{self, Input};
use crate::common::{rfc3339, unix_now as now};

/// `docker pull` asks the helper for the registry's credentials before it needs the
/// daemon (there is none here): the warning `get` writes on stderr reaches the person
/// through the CLI, and the pull still gets the credentials (the CLI's own output
/// shows it tried the daemon next, not an anonymous fallback).
#[test]
fn the_docker_cli_shows_the_expiry_warning() {
    if !clients::require_tools(&[
        ("docker", "docker.io (the Docker CLI)"),
        ("age-keygen", "age"),
    ]) {
        return;
    }
    let env = ClientEnv::new();
    let server = "registry.example:5000";
    let input = format!(r#"{{"ServerURL":"{server}","Username":"ci","Secret":"expiring-pw-1"}}"#);
    let out = env.lockbox(&["store"], false, Input::Bytes(input.as_bytes()));
    assert!(out.ok(), "store: {}", out.describe());
    let when = rfc3339(now() + 5 * 86_400 + 3600);
    let out = env.lockbox(&["expiry", "set", server, &when], false, Input::Closed);
    assert!(out.ok(), "expiry set: {}", out.describe());
    env.trace_helper();
    let mut c = env.command("docker", true);
    c.args(["pull", &format!("{server}/app:1")]);
    let out = clients::run(c, Input::Closed);
    assert!(
        out.stderr.contains(&format!(
            "lockbox: the credential for {server} expires in 5 days ({when})"
        )),
        "the warning did not reach the person: {}",
        out.describe()
    );
    assert_eq!(env.helper_calls(), [format!("get {server}")]);
    assert!(!out.stderr.contains("expiring-pw-1") && !out.stdout.contains("expiring-pw-1"));
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in family.samples:
        out.append({"family": family.name, "type": family.type, "name": s.name,
                    "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;

fn python_has_prometheus_client(python: &str) -> bool {
    if clients::which(python).is_none() && !Path::new(python).is_file() {
        return false;
    }
    let mut c = Command::new(python);
    c.args(["-c", "import prometheus_client"])
        .env_clear()
        .env("PATH", common::test_path());
    clients::run(c, Input::Closed).ok()
}

/// node_exporter's textfile format, read by a real Prometheus text parser: one gauge
/// sample per entry with an expiry, labels escaped, nothing for an entry without one,
/// no secret; the file replaced whole (a new inode, no temporary file left).
#[test]
fn check_prometheus_file_parses_with_prometheus_client() {
    let python = std::env::var("LOCKBOX_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    if !clients::require(
        python_has_prometheus_client(&python),
        &format!("{python} with the prometheus_client module"),
        "PyPI package prometheus-client (scripts/test.sh installs it) and set LOCKBOX_TEST_PYTHON",
    ) {
        return;
    }
    let (env, _owner) = Env::with_vault();
    let odd = "reg\"quoted\\.example";
    env.store("ghcr.io/org", "bot", "prom-secret-1");
    env.store(odd, "robot$ci", "prom-secret-2");
    env.store("nodate.example", "u", "prom-secret-3");
    let (a, b) = (now() + 3 * 86_400, now() + 90 * 86_400);
    env.lockbox(&["expiry", "set", "ghcr.io/org", &rfc3339(a)])
        .ok();
    env.lockbox(&["expiry", "set", odd, &rfc3339(b)]).ok();
    let dir = env.path("home/textfile");
    fs::create_dir(&dir).unwrap();
    let file = dir.join("lockbox.prom");
    let file_arg = file.to_str().unwrap();
    // Exit 4: one entry expires within 14 days; the file is written all the same.
    let r = env.lockbox(&["check", "--prometheus", file_arg]);
    assert_eq!(r.code(), 4, "{r}");
    let first_inode = fs::metadata(&file).unwrap().ino();
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o644);
    assert!(!fs::read_to_string(&file).unwrap().contains("robot$ci"));

    let mut c = env.command(&python);
    c.args(["-c", PARSE, file_arg]);
    let parsed = crate::common::manage::run(c, b"");
    parsed.ok();
    let samples: Vec<serde_json::Value> = serde_json::from_str(&parsed.stdout).unwrap();
    let expiry: Vec<&serde_json::Value> = samples
        .iter()
        .filter(|s| s["family"] == "lockbox_credential_expiry_timestamp_seconds")
        .collect();
    assert_eq!(expiry.len(), 2, "{samples:?}");
    for s in &expiry {
        assert_eq!(s["type"], "gauge");
    }
    let find = |registry: &str| {
        expiry
            .iter()
            .find(|s| s["labels"]["registry"] == registry)
            .unwrap_or_else(|| panic!("no sample for {registry}: {samples:?}"))
    };
    assert_eq!(find("ghcr.io/org")["value"].as_f64(), Some(a as f64));
    // The file is world-readable: the registry is the only label, no username.
    assert_eq!(
        find("ghcr.io/org")["labels"].as_object().map(|l| l.len()),
        Some(1)
    );
    assert_eq!(find(odd)["value"].as_f64(), Some(b as f64));
    let ran = samples
        .iter()
        .find(|s| s["name"] == "lockbox_check_timestamp_seconds")
        .expect("the run's own timestamp");
    assert!(ran["value"].as_f64().unwrap() >= (now() - 3600) as f64);
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("prom-secret") && !text.contains("nodate.example"),
        "{text}"
    );

    // Written again: replaced by rename (a new inode), nothing else left beside it.
    env.lockbox(&["expiry", "set", "ghcr.io/org", "none"]).ok();
    let r = env.lockbox(&["check", "--prometheus", file_arg]);
    assert_eq!(r.code(), 0, "{r}");
    assert_ne!(fs::metadata(&file).unwrap().ino(), first_inode);
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["lockbox.prom"]);
    assert!(!fs::read_to_string(&file).unwrap().contains("ghcr.io"));
}
