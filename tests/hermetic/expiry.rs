//! Expiry (`expiry set`, `check`, the `get` warning, `doctor`, kubelet's
//! cacheDuration) and rotation (`rotate` against loopback fakes of the GitLab and
//! Harbor APIs, `api_fakes.rs`), with a SIGKILL at every step of a rotation.
//!
//! Dates are relative to now with whole days of margin: no assertion depends on how
//! long a command takes.
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::api_fakes::Fake;
use crate::common::manage::{Env, Identity, Run};
use crate::common::{rfc3339, unix_now as now};

/// A JWT with a real `exp` claim (RFC 7519 NumericDate); the signature is not checked.
fn jwt(exp: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"iss":"https://ci.example","sub":"project_path:g/p","aud":"registry","iat":{},"exp":{exp}}}"#,
        exp - 3600
    ));
    format!("{header}.{payload}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk")
}

/// A vault with one entry, and the owner's identity.
fn with_entry(server: &str, username: &str, secret: &str) -> (Env, Identity) {
    let (env, owner) = Env::with_vault();
    env.store(server, username, secret);
    (env, owner)
}

/// `lockbox ARGS` with the owner's identity (the key).
fn keyed(env: &Env, owner: &Identity, args: &[&str]) -> Run {
    env.lockbox_with(args, &[("LOCKBOX_IDENTITY_FILE", &owner.file)], b"")
}

fn get(env: &Env, owner: &Identity, server: &str) -> Run {
    env.lockbox_with(
        &["get"],
        &[("LOCKBOX_IDENTITY_FILE", &owner.file)],
        server.as_bytes(),
    )
}

fn secret_of(run: &Run) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run}"));
    v["Secret"].as_str().unwrap().to_owned()
}

fn check_json(env: &Env) -> serde_json::Value {
    let r = env.lockbox(&["check", "--json"]);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"))
}

#[test]
fn get_warns_on_stderr_within_the_window_and_stdout_is_unchanged() {
    let (env, owner) = with_entry("reg.example", "ci", "s3cret-value");
    let before = get(&env, &owner, "reg.example");
    before.ok();
    assert_eq!(before.stderr, "", "{before}");
    // Set by hand while locked (no key variable): the expiry is not authenticated.
    let soon = rfc3339(now() + 3 * 86_400 + 7200);
    env.lockbox(&["expiry", "set", "reg.example", &soon])
        .ok()
        .prints(&["reg.example expires at"]);
    assert!(env.vault_bytes().starts_with(b"{\"lockbox\":3,"));
    let warned = get(&env, &owner, "reg.example");
    warned.ok();
    assert_eq!(
        warned.stdout, before.stdout,
        "stdout must be byte-identical"
    );
    assert_eq!(warned.stderr.lines().count(), 1, "{warned}");
    warned.says(&["the credential for reg.example expires in 3 days", &soon]);
    // Outside a smaller window: no line.
    let quiet = env.lockbox_with(
        &["get"],
        &[
            ("LOCKBOX_IDENTITY_FILE", &owner.file),
            ("LOCKBOX_EXPIRY_WARN_DAYS", Path::new("2")),
        ],
        b"reg.example",
    );
    quiet.ok();
    assert_eq!(quiet.stderr, "", "{quiet}");
    // Expired: still answered (the registry decides), with its own line.
    env.lockbox(&["expiry", "set", "reg.example", "2020-01-01"])
        .ok();
    let expired = get(&env, &owner, "reg.example");
    expired.ok().says(&["expired at 2020-01-01T00:00:00Z"]);
    assert_eq!(expired.stdout, before.stdout);
    // `none` clears it, and the vault is version 1 again.
    env.lockbox(&["expiry", "set", "reg.example", "none"]).ok();
    assert!(env.vault_bytes().starts_with(b"{\"lockbox\":1,"));
    assert_eq!(get(&env, &owner, "reg.example").stderr, "");
}

#[test]
fn check_reports_every_entry_while_locked_with_its_exit_code() {
    let (env, _owner) = with_entry("fine.example", "u", "a");
    env.store("nodate.example", "u", "b");
    let far = now() + 90 * 86_400;
    env.lockbox(&["expiry", "set", "fine.example", &rfc3339(far)])
        .ok();
    let r = env.lockbox(&["check"]);
    assert_eq!(r.code(), 0, "{r}");
    r.prints(&["No entry expires within 14 days."]);
    // An entry learned from a JWT's exp at store, 5 days out: exit 4.
    let exp = now() + 5 * 86_400;
    env.store("jwt.example", "u", &jwt(exp));
    let r = env.lockbox(&["check"]);
    assert_eq!(r.code(), 4, "{r}");
    r.prints(&["expiring jwt.example", &rfc3339(exp)]);
    assert!(!r.stdout.contains("fine.example"), "{r}");
    // A wider window takes in the far one too.
    let r = env.lockbox(&["check", "--within", "100d"]);
    assert_eq!(r.code(), 4, "{r}");
    r.prints(&["fine.example"]);
    // An expired one: exit 5.
    env.lockbox(&["expiry", "set", "nodate.example", "2021-06-01"])
        .ok();
    assert_eq!(env.lockbox(&["check"]).code(), 5);
    let j = check_json(&env);
    let entries = j["entries"].as_array().unwrap();
    let by = |s: &str| entries.iter().find(|e| e["server"] == s).unwrap().clone();
    assert_eq!(by("jwt.example")["expires_at"], exp);
    assert_eq!(by("jwt.example")["state"], "expiring");
    assert_eq!(by("fine.example")["state"], "ok");
    assert_eq!(by("fine.example")["expires"], rfc3339(far));
    assert_eq!(by("nodate.example")["state"], "expired");
    assert_eq!(j["within_seconds"], 14 * 86_400);
    // A bad window is a usage error.
    let r = env.lockbox(&["check", "--within", "soon"]);
    assert_eq!(r.code(), 2, "{r}");
    r.says(&["--within soon"]);
}

#[test]
fn a_store_keeps_the_date_unless_the_secret_brings_its_own() {
    let soon = now() + 3 * 86_400;
    let (env, _owner) = with_entry("reg.example", "u", &jwt(soon));
    assert_eq!(check_json(&env)["entries"][0]["state"], "expiring");
    // `docker login` stores again after every login, often the same secret: a token
    // without a date of its own keeps the entry's date.
    env.store("reg.example", "u", "opaque-token");
    assert_eq!(check_json(&env)["entries"][0]["expires_at"], soon);
    // A JWT brings its own.
    let later = now() + 60 * 86_400;
    env.store("reg.example", "u", &jwt(later));
    assert_eq!(check_json(&env)["entries"][0]["expires_at"], later);
    // Erased and stored anew: no date.
    env.lockbox_with(&["erase"], &[], b"reg.example").ok();
    env.store("reg.example", "u", "opaque-token");
    assert_eq!(
        check_json(&env)["entries"][0]["expires_at"],
        serde_json::Value::Null
    );
    assert!(env.vault_bytes().starts_with(b"{\"lockbox\":1,"));
}

#[test]
fn expiry_set_refuses_what_it_cannot_use() {
    let (env, owner) = with_entry("reg.example", "u", "a");
    let r = env.lockbox(&["expiry", "set", "reg.example", "31/01/2027"]);
    assert_eq!(r.code(), 2, "{r}");
    r.says(&["'31/01/2027' is not a date"]);
    env.lockbox(&["expiry", "set", "other.example", "2027-01-31"])
        .fails()
        .says(&["no entry for other.example"]);
    let r = env.lockbox(&["expiry", "set", "reg.example"]);
    assert_eq!(r.code(), 2, "{r}");
    let r = keyed(
        &env,
        &owner,
        &["expiry", "set", "reg.example", "--rotate", "harbor-robot"],
    );
    assert_eq!(r.code(), 2, "{r}");
    r.says(&["--robot-id"]);
    keyed(
        &env,
        &owner,
        &[
            "expiry",
            "set",
            "reg.example",
            "--rotate",
            "gitlab-pat",
            "--api",
            "http://gitlab.example",
        ],
    )
    .fails()
    .says(&["plain http:// is allowed only for 127.0.0.1"]);
    // Setting a provider needs the key: without one it fails and says how to give it.
    env.lockbox(&["expiry", "set", "reg.example", "--rotate", "gitlab-pat"])
        .fails()
        .says(&["open it with an age identity"]);
    assert!(
        env.vault_bytes().starts_with(b"{\"lockbox\":1,"),
        "nothing written"
    );
}

#[test]
fn doctor_lists_expiring_and_expired_entries() {
    let (env, owner) = with_entry("soon.example", "u", "a");
    env.store("gone.example", "u", "b");
    env.lockbox(&[
        "expiry",
        "set",
        "soon.example",
        &rfc3339(now() + 4 * 86_400),
    ])
    .ok();
    env.lockbox(&["expiry", "set", "gone.example", "2022-02-02"])
        .ok();
    let r = keyed(&env, &owner, &["doctor", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
    let expiry: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "expiry")
        .map(|f| f["what"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expiry.len(), 2, "{r}");
    assert!(
        expiry
            .iter()
            .any(|w| w.starts_with("soon.example: the credential expires at")),
        "{expiry:?}"
    );
    assert!(
        expiry
            .iter()
            .any(|w| w == "gone.example: the credential expired at 2022-02-02T00:00:00Z"),
        "{expiry:?}"
    );
}

#[test]
fn kubelet_cache_never_outlives_the_entry() {
    let (env, owner) = with_entry("reg.example", "u", "a");
    let request = br#"{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"reg.example/app:1"}"#;
    let answer = |env: &Env| -> serde_json::Value {
        let r = env.lockbox_with(
            &["kubelet-credential-provider"],
            &[("LOCKBOX_IDENTITY_FILE", &owner.file)],
            request,
        );
        r.ok();
        serde_json::from_str(&r.stdout).unwrap()
    };
    assert_eq!(answer(&env)["cacheDuration"], "5m0s");
    // Two minutes left: at most that (a Go duration of under 2m1s).
    env.lockbox(&["expiry", "set", "reg.example", &rfc3339(now() + 120)])
        .ok();
    let d = answer(&env)["cacheDuration"].as_str().unwrap().to_owned();
    assert!(
        d == "2m0s" || d.starts_with("1m") || d.ends_with('s') && !d.contains('m'),
        "{d}"
    );
    env.lockbox(&["expiry", "set", "reg.example", "2020-01-01"])
        .ok();
    assert_eq!(answer(&env)["cacheDuration"], "0s");
}

// ---------------------------------------------------------------------------------
// Rotation

const GITLAB: &str = "gitlab.example";
const HARBOR: &str = "harbor.example";
const ROBOT: &str = "robot$ci";

/// A vault holding a GitLab token, its provider set to `fake`.
fn gitlab_vault(fake: &Fake) -> (Env, Identity) {
    let (env, owner) = with_entry(GITLAB, "ci", "glpat-old");
    keyed(
        &env,
        &owner,
        &[
            "expiry",
            "set",
            GITLAB,
            "--rotate",
            "gitlab-pat",
            "--api",
            &fake.url(),
        ],
    )
    .ok()
    .prints(&["gitlab.example is rotated by gitlab-pat through http://127.0.0.1:"]);
    (env, owner)
}

/// A vault holding a Harbor robot secret, its provider set to `fake`.
fn harbor_vault(fake: &Fake) -> (Env, Identity) {
    let (env, owner) = with_entry(HARBOR, ROBOT, "OldSecret1");
    keyed(
        &env,
        &owner,
        &[
            "expiry",
            "set",
            HARBOR,
            "--rotate",
            "harbor-robot",
            "--robot-id",
            "12",
            "--api",
            &fake.url(),
        ],
    )
    .ok();
    (env, owner)
}

#[test]
fn rotate_renews_a_gitlab_token_in_place() {
    let fake = Fake::gitlab("glpat-old");
    let (env, owner) = gitlab_vault(&fake);
    let r = keyed(&env, &owner, &["rotate", GITLAB, "--days", "30"]);
    r.ok().prints(&["Rotated gitlab.example (gitlab-pat)"]);
    let held = secret_of(&get(&env, &owner, GITLAB));
    assert!(held.starts_with("glpat-rotated"), "{held}");
    assert!(fake.accepts(&held));
    assert!(!fake.accepts("glpat-old"), "the old token is revoked");
    // The expiry is the answer's: 30 days out, at midnight UTC.
    let j = check_json(&env);
    let exp = j["entries"][0]["expires_at"].as_u64().unwrap();
    assert!(
        exp > now() + 28 * 86_400 && exp <= now() + 31 * 86_400,
        "{j}"
    );
    assert_eq!(exp % 86_400, 0);
    // Setting the provider asked when the token expires; the rotation is one call.
    assert_eq!(
        fake.requests(),
        [
            "GET /api/v4/personal_access_tokens/self",
            "POST /api/v4/personal_access_tokens/self/rotate"
        ]
    );
    // The secret never reaches stdout or stderr of rotate.
    assert!(!r.stdout.contains(&held) && !r.stderr.contains(&held));
}

/// GitLab has revoked the old token when its answer arrives: an `expires_at` lockbox
/// cannot read only costs the date (with a warning), never the new token.
#[test]
fn a_gitlab_answer_with_an_unreadable_date_keeps_the_new_token() {
    let fake = Fake::gitlab("glpat-old");
    fake.state.lock().unwrap().answer_expires_at = Some(serde_json::json!("15.08.2027"));
    let (env, owner) = gitlab_vault(&fake);
    keyed(&env, &owner, &["rotate", GITLAB])
        .ok()
        .says(&["expiry date was unreadable"]);
    let held = secret_of(&get(&env, &owner, GITLAB));
    assert!(held.starts_with("glpat-rotated"), "{held}");
    assert!(
        fake.accepts(&held),
        "the registry refuses what lockbox holds"
    );
}

/// A refresh answered with another secret than the one sent: Harbor holds that one,
/// so lockbox keeps it.
#[test]
fn a_harbor_answer_naming_its_own_secret_is_the_one_kept() {
    let fake = Fake::harbor(ROBOT, 12, "OldSecret1", now() + 100 * 86_400);
    fake.state.lock().unwrap().makes_its_own = true;
    let (env, owner) = harbor_vault(&fake);
    keyed(&env, &owner, &["rotate", HARBOR]).ok();
    let held = secret_of(&get(&env, &owner, HARBOR));
    assert!(held.starts_with("Harbor1made"), "{held}");
    assert!(
        fake.accepts(&held),
        "the registry refuses what lockbox holds"
    );
}

#[test]
fn rotate_refreshes_a_harbor_robot_secret_and_reads_its_expiry() {
    let exp = now() + 200 * 86_400;
    let fake = Fake::harbor(ROBOT, 12, "OldSecret1", exp);
    let (env, owner) = harbor_vault(&fake);
    // Setting the provider read the robot's expiry from Harbor.
    assert_eq!(check_json(&env)["entries"][0]["expires_at"], exp);
    keyed(&env, &owner, &["rotate", HARBOR])
        .ok()
        .prints(&["Rotated harbor.example (harbor-robot)"]);
    let held = secret_of(&get(&env, &owner, HARBOR));
    assert_ne!(held, "OldSecret1");
    assert!(fake.accepts(&held));
    assert_eq!(check_json(&env)["entries"][0]["expires_at"], exp);
    assert_eq!(
        fake.requests(),
        [
            "GET /api/v2.0/robots/12",
            "PATCH /api/v2.0/robots/12",
            "GET /api/v2.0/robots/12"
        ]
    );
}

#[test]
fn rotate_due_renews_only_what_is_due() {
    let fake = Fake::gitlab("glpat-old");
    let (env, owner) = gitlab_vault(&fake);
    // GitLab says the token does not expire: not due.
    keyed(&env, &owner, &["rotate", "--due"])
        .ok()
        .prints(&["Nothing to rotate"]);
    assert_eq!(fake.requests(), ["GET /api/v4/personal_access_tokens/self"]);
    env.lockbox(&["expiry", "set", GITLAB, &rfc3339(now() + 2 * 86_400)])
        .ok();
    keyed(&env, &owner, &["rotate", "--due"])
        .ok()
        .prints(&["Rotated gitlab.example"]);
    assert!(fake.accepts(&secret_of(&get(&env, &owner, GITLAB))));
    // Renewed for 90 days: not due any more, and check is quiet.
    keyed(&env, &owner, &["rotate", "--due"])
        .ok()
        .prints(&["Nothing to rotate"]);
    assert_eq!(env.lockbox(&["check"]).code(), 0);
}

/// `rotate --due` renews a Harbor robot whose expiry falls within the window, and
/// leaves one that does not alone.
#[test]
fn rotate_due_refreshes_a_harbor_robot_only_when_due() {
    // The robot expires in 200 days: not due.
    let fake = Fake::harbor(ROBOT, 12, "OldSecret1", now() + 200 * 86_400);
    let (env, owner) = harbor_vault(&fake);
    keyed(&env, &owner, &["rotate", "--due"])
        .ok()
        .prints(&["Nothing to rotate"]);
    assert_eq!(fake.requests(), ["GET /api/v2.0/robots/12"]);
    assert_eq!(secret_of(&get(&env, &owner, HARBOR)), "OldSecret1");
    // Within the window: refreshed, and the registry accepts what lockbox holds.
    env.lockbox(&["expiry", "set", HARBOR, &rfc3339(now() + 2 * 86_400)])
        .ok();
    keyed(&env, &owner, &["rotate", "--due"])
        .ok()
        .prints(&["Rotated harbor.example (harbor-robot)"]);
    let held = secret_of(&get(&env, &owner, HARBOR));
    assert_ne!(held, "OldSecret1");
    assert!(fake.accepts(&held));
    assert!(!fake.accepts("OldSecret1"));
    // The robot's own expiry was read back: not due any more.
    keyed(&env, &owner, &["rotate", "--due"])
        .ok()
        .prints(&["Nothing to rotate"]);
}

#[test]
fn rotation_settings_written_without_the_key_send_nothing() {
    let fake = Fake::gitlab("glpat-old");
    let evil = Fake::gitlab("anything");
    let (env, owner) = gitlab_vault(&fake);
    let before = fake.requests();
    // Someone who can write the vault file points the provider elsewhere.
    let text = String::from_utf8(env.vault_bytes()).unwrap();
    let changed = text.replace(&fake.url(), &evil.url());
    assert_ne!(changed, text);
    std::fs::write(env.vault_path(), changed).unwrap();
    keyed(&env, &owner, &["rotate", GITLAB])
        .fails()
        .says(&["rotation settings of gitlab.example were not made with this vault's key"]);
    assert!(evil.requests().is_empty(), "the old token went nowhere");
    assert_eq!(fake.requests(), before);
    // A date edited the same way is only a (false) warning, as THREAT_MODEL.md says.
}

/// Rotation settings a vault writer edited never block a key rotation: dropped with
/// a warning, never MACed again with the new key.
#[test]
fn a_key_rotation_drops_edited_rotation_settings_with_a_warning() {
    let fake = Fake::gitlab("glpat-old");
    let evil = Fake::gitlab("anything");
    let (env, owner) = gitlab_vault(&fake);
    let other = env.identity("other");
    keyed(&env, &owner, &["recipients", "add", &other.recipient]).ok();
    let text = String::from_utf8(env.vault_bytes()).unwrap();
    std::fs::write(env.vault_path(), text.replace(&fake.url(), &evil.url())).unwrap();
    keyed(&env, &owner, &["recipients", "remove", &other.recipient])
        .ok()
        .says(&["dropped the rotation settings of gitlab.example"]);
    keyed(&env, &owner, &["rotate", GITLAB])
        .fails()
        .says(&["gitlab.example has no rotation provider"]);
    assert_eq!(secret_of(&get(&env, &owner, GITLAB)), "glpat-old");
    assert!(evil.requests().is_empty());
}

/// A pending secret planted in the file (anyone can seal one to the public key) is
/// never sent to Harbor as the robot's new secret: only one Harbor already holds is
/// kept, and the rotation starts over with a fresh secret of lockbox's own.
#[test]
fn a_planted_pending_secret_never_becomes_the_robots() {
    let fake = Fake::harbor(ROBOT, 12, "OldSecret1", now() + 100 * 86_400);
    let (env, owner) = harbor_vault(&fake);
    // Plant: a pending secret sealed to this vault's public key, whose plaintext the
    // attacker knows. Made here through a copy of the vault whose rotation against
    // another fake is killed once that fake holds the new secret.
    let copy = Env::new();
    std::fs::create_dir_all(copy.vault_path().parent().unwrap()).unwrap();
    std::fs::copy(env.vault_path(), copy.vault_path()).unwrap();
    let other = Fake::harbor(ROBOT, 12, "OldSecret1", 0);
    keyed(
        &copy,
        &owner,
        &[
            "expiry",
            "set",
            HARBOR,
            "--rotate",
            "harbor-robot",
            "--robot-id",
            "12",
            "--api",
            &other.url(),
        ],
    )
    .ok();
    killed_at(&copy, &owner, HARBOR, "after-request");
    let planted_secret = other.state.lock().unwrap().current.clone();
    assert_ne!(planted_secret, "OldSecret1");
    let planted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(copy.vault_path()).unwrap()).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&env.vault_bytes()).unwrap();
    v["entries"][HARBOR]["pending"] = planted["entries"][HARBOR]["pending"].clone();
    v["lockbox"] = 3.into();
    std::fs::write(env.vault_path(), v.to_string()).unwrap();
    keyed(&env, &owner, &["rotate", HARBOR]).ok();
    let held = secret_of(&get(&env, &owner, HARBOR));
    assert!(fake.accepts(&held));
    assert_ne!(
        held, planted_secret,
        "the planted secret became the robot's"
    );
    assert!(!fake.accepts(&planted_secret));
}

/// A pending secret refused with 401 is given up only once the old secret is proven
/// to work: a disabled robot refuses both, and the pending one (here the only secret
/// Harbor will accept again) is kept.
#[test]
fn a_pending_secret_refused_by_a_disabled_robot_is_kept() {
    let fake = Fake::harbor(ROBOT, 12, "OldSecret1", now() + 100 * 86_400);
    let (env, owner) = harbor_vault(&fake);
    killed_at(&env, &owner, HARBOR, "after-request");
    let harbors = fake.state.lock().unwrap().current.clone();
    fake.state.lock().unwrap().disabled = true;
    keyed(&env, &owner, &["rotate", HARBOR])
        .fails()
        .says(&["HTTP 401 for both the stored secret and the pending one"]);
    assert_eq!(check_json(&env)["entries"][0]["rotation_pending"], true);
    // Enabled again: the kept pending secret is the robot's, and the next run keeps it.
    fake.state.lock().unwrap().disabled = false;
    keyed(&env, &owner, &["rotate", HARBOR])
        .ok()
        .prints(&["Finished the interrupted rotation of harbor.example"]);
    let held = secret_of(&get(&env, &owner, HARBOR));
    assert_eq!(held, harbors);
    assert!(fake.accepts(&held));
}

#[test]
fn rotate_of_an_entry_without_a_provider_says_how_to_set_one() {
    let (env, owner) = with_entry("reg.example", "u", "a");
    keyed(&env, &owner, &["rotate", "reg.example"])
        .fails()
        .says(&[
            "reg.example has no rotation provider",
            "--rotate gitlab-pat",
        ]);
}

#[test]
fn a_refused_token_is_an_error_and_the_vault_keeps_it() {
    let fake = Fake::gitlab("some-other-token");
    let (env, owner) = gitlab_vault(&fake);
    // Setting the provider already said so (a warning: the provider is set).
    let r = keyed(
        &env,
        &owner,
        &[
            "expiry",
            "set",
            GITLAB,
            "--rotate",
            "gitlab-pat",
            "--api",
            &fake.url(),
        ],
    );
    r.ok().says(&[
        "the expiry could not be read from the registry's API",
        "HTTP 401",
    ]);
    assert!(!r.stderr.contains("glpat-old"), "{r}");
    let r = keyed(&env, &owner, &["rotate", GITLAB]);
    r.fails().says(&[
        "gitlab-pat rotation of gitlab.example failed",
        "HTTP 401",
        "[redacted]",
        "still holds",
    ]);
    // The fake echoes the token it was sent: lockbox cuts it out.
    assert!(!r.stderr.contains("glpat-old"), "{r}");
    assert_eq!(secret_of(&get(&env, &owner, GITLAB)), "glpat-old");
}

/// The daily timer's path: no identity in the environment, the agent that `unlock`
/// gave the key makes the rotation MAC and opens the secret (it never gives the key
/// out: `docs/AGENT.md`, `keyed_mac`).
#[test]
fn rotation_works_through_the_agent() {
    let fake = Fake::gitlab("glpat-old");
    let (env, owner) = with_entry(GITLAB, "ci", "glpat-old");
    let file = owner.file.to_str().unwrap();
    env.lockbox(&["unlock", "--identity-file", file]).ok();
    struct Locked<'a>(&'a Env);
    impl Drop for Locked<'_> {
        fn drop(&mut self) {
            self.0.lockbox(&["lock", "--all"]);
        }
    }
    let _lock = Locked(&env);
    env.lockbox(&[
        "expiry",
        "set",
        GITLAB,
        "--rotate",
        "gitlab-pat",
        "--api",
        &fake.url(),
    ])
    .ok();
    env.lockbox(&["rotate", "--due"])
        .ok()
        .prints(&["Nothing to rotate"]);
    env.lockbox(&["expiry", "set", GITLAB, &rfc3339(now() + 86_400)])
        .ok();
    env.lockbox(&["rotate", "--due"])
        .ok()
        .prints(&["Rotated gitlab.example"]);
    let held = secret_of(&env.lockbox_with(&["get"], &[], GITLAB.as_bytes()));
    assert!(fake.accepts(&held));
    // After a key rotation the settings are MACed with the new key and still work.
    env.lockbox(&["lock", "--all"]).ok();
    let other = env.identity("other");
    keyed(&env, &owner, &["recipients", "add", &other.recipient]).ok();
    keyed(
        &env,
        &owner,
        &[
            "recipients",
            "remove",
            &owner.recipient,
            "--identity-file",
            &other.file.to_string_lossy(),
        ],
    )
    .ok();
    keyed(&env, &other, &["rotate", GITLAB]).ok();
    assert!(fake.accepts(&secret_of(&get(&env, &other, GITLAB))));
}

/// `rotate` in the background, with the owner's key.
fn rotate_in_background(
    env: &Env,
    owner: &Identity,
    args: &[&str],
) -> std::thread::JoinHandle<Run> {
    let mut rotate = env.command(crate::common::BIN);
    rotate.args(args).env("LOCKBOX_IDENTITY_FILE", &owner.file);
    std::thread::spawn(move || crate::common::manage::run(rotate, b""))
}

/// A `store` of another entry and `get`s while a rotation waits for the API (held
/// until they are done, far past a writer's 10 s wait for the lock were it held):
/// the vault's lock is not held across the network, so the store succeeds, nothing is
/// lost, and `get` answers the old secret until the new one is written.
#[test]
fn stores_and_gets_during_a_rotation_lose_nothing() {
    let fake = Fake::gitlab("glpat-old");
    let (env, owner) = gitlab_vault(&fake);
    let next = fake.hold();
    let rotation = rotate_in_background(&env, &owner, &["rotate", GITLAB]);
    fake.wait_for_requests(next);
    env.store("other.example", "u", "other-secret");
    assert_eq!(secret_of(&get(&env, &owner, GITLAB)), "glpat-old");
    // `docker login` storing the same secret again is no change to the rotation.
    env.store(GITLAB, "ci", "glpat-old");
    fake.release();
    rotation.join().unwrap().ok();
    let held = secret_of(&get(&env, &owner, GITLAB));
    assert!(held.starts_with("glpat-rotated"), "{held}");
    assert!(fake.accepts(&held));
    assert_eq!(
        secret_of(&get(&env, &owner, "other.example")),
        "other-secret"
    );
}

/// A store of another secret while the entry is being rotated is newer and wins; the
/// rotation says so and fails.
#[test]
fn a_store_during_a_gitlab_rotation_wins_and_is_said() {
    let fake = Fake::gitlab("glpat-old");
    let (env, owner) = gitlab_vault(&fake);
    let next = fake.hold();
    let rotation = rotate_in_background(&env, &owner, &["rotate", GITLAB]);
    fake.wait_for_requests(next);
    env.store(GITLAB, "ci", "glpat-by-hand");
    fake.release();
    rotation
        .join()
        .unwrap()
        .fails()
        .says(&["gitlab.example was stored again or erased while it was being rotated"]);
    assert_eq!(secret_of(&get(&env, &owner, GITLAB)), "glpat-by-hand");
}

/// A store of another secret while Harbor is asked to switch: the stored secret stays
/// and the new one Harbor holds is kept beside it as pending; the next `rotate` keeps
/// the one Harbor accepts.
#[test]
fn a_store_during_a_harbor_rotation_keeps_both_secrets() {
    let fake = Fake::harbor(ROBOT, 12, "OldSecret1", now() + 100 * 86_400);
    let (env, owner) = harbor_vault(&fake);
    let next = fake.hold();
    let rotation = rotate_in_background(&env, &owner, &["rotate", HARBOR]);
    fake.wait_for_requests(next);
    env.store(HARBOR, ROBOT, "ByHand1secret");
    fake.release();
    rotation
        .join()
        .unwrap()
        .fails()
        .says(&["the new one Harbor holds is kept beside it as pending"]);
    assert_eq!(secret_of(&get(&env, &owner, HARBOR)), "ByHand1secret");
    assert_eq!(check_json(&env)["entries"][0]["rotation_pending"], true);
    keyed(&env, &owner, &["rotate", HARBOR])
        .ok()
        .prints(&["Finished the interrupted rotation of harbor.example"]);
    let held = secret_of(&get(&env, &owner, HARBOR));
    assert!(
        fake.accepts(&held),
        "the registry refuses what lockbox holds"
    );
}

/// A key rotation (`recipients remove`) while `rotate --due` waits for the first entry's
/// API: the first entry's new token is written all the same (sealed to the new key),
/// and the second is not sent anywhere, with "run it again", never the tampering alarm.
#[test]
fn a_key_rotated_during_rotate_is_said_and_loses_nothing() {
    let fake = Fake::gitlab("glpat-old");
    let second = Fake::gitlab("glpat-second");
    let (env, owner) = gitlab_vault(&fake);
    let b = "gitlab.example2";
    env.store(b, "ci", "glpat-second");
    let url = second.url();
    keyed(
        &env,
        &owner,
        &["expiry", "set", b, "--rotate", "gitlab-pat", "--api", &url],
    )
    .ok();
    let soon = rfc3339(now() + 86_400);
    for server in [GITLAB, b] {
        keyed(&env, &owner, &["expiry", "set", server, &soon]).ok();
    }
    let other = env.identity("other");
    keyed(&env, &owner, &["recipients", "add", &other.recipient]).ok();
    let next = fake.hold();
    let rotation = rotate_in_background(&env, &owner, &["rotate", "--due"]);
    fake.wait_for_requests(next);
    keyed(&env, &owner, &["recipients", "remove", &other.recipient]).ok();
    fake.release();
    let r = rotation.join().unwrap();
    r.fails()
        .says(&["the vault changed while rotating"])
        .prints(&["Rotated gitlab.example (gitlab-pat)"]);
    assert!(!r.stderr.contains("not made with this vault's key"), "{r}");
    assert!(fake.accepts(&secret_of(&get(&env, &owner, GITLAB))));
    assert_eq!(secret_of(&get(&env, &owner, b)), "glpat-second");
    assert!(
        !second.requests().iter().any(|r| r.starts_with("POST")),
        "the second token was sent to be rotated"
    );
}

/// A redirect is never followed (the token header would go along to wherever it
/// points), and the environment's proxy variables are never used: only an
/// authenticated API URL sees the secret.
#[test]
fn redirects_are_refused_and_proxies_from_the_environment_ignored() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    // A listener that counts connections: the redirect target and the "proxy".
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let trap_url = format!("http://127.0.0.1:{}", trap.local_addr().unwrap().port());
    // A one-shot server answering every request with a redirect to the trap.
    let redirector = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!(
        "http://127.0.0.1:{}",
        redirector.local_addr().unwrap().port()
    );
    let location = format!("{trap_url}/api/v4/personal_access_tokens/self/rotate");
    redirector.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        // Bounded: a client that never comes (it went to a proxy) fails the test below.
        let mut stream = None;
        for _ in 0..1000 {
            if let Ok((s, _)) = redirector.accept() {
                stream = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let Some(mut stream) = stream else { return };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
        let _ = write!(
            stream,
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    });
    let (env, owner) = with_entry(GITLAB, "ci", "glpat-old");
    // A date given: nothing is asked of the API when the provider is set.
    keyed(
        &env,
        &owner,
        &[
            "expiry",
            "set",
            GITLAB,
            "2030-01-01",
            "--rotate",
            "gitlab-pat",
            "--api",
            &api,
        ],
    )
    .ok();
    let proxy = Path::new(&trap_url);
    let r = env.lockbox_with(
        &["rotate", GITLAB],
        &[
            ("LOCKBOX_IDENTITY_FILE", &owner.file),
            ("HTTP_PROXY", proxy),
            ("http_proxy", proxy),
            ("HTTPS_PROXY", proxy),
            ("ALL_PROXY", proxy),
        ],
        b"",
    );
    server.join().unwrap();
    r.fails().says(&["HTTP 302", "a redirect"]);
    assert!(
        trap.accept().is_err(),
        "the redirect was followed or the proxy used"
    );
    assert_eq!(secret_of(&get(&env, &owner, GITLAB)), "glpat-old");
}

/// `rotate` killed by SIGKILL at `step`.
fn killed_at(env: &Env, owner: &Identity, server: &str, step: &str) {
    let r = env.lockbox_with(
        &["rotate", server],
        &[
            ("LOCKBOX_IDENTITY_FILE", &owner.file),
            ("LOCKBOX_DEBUG_KILL_AT", Path::new(step)),
        ],
        b"",
    );
    assert_eq!(r.status.signal(), Some(9), "not killed at {step}: {r}");
}

#[test]
fn a_gitlab_rotation_killed_at_any_step_loses_nothing() {
    for step in ["before-request", "after-store"] {
        let fake = Fake::gitlab("glpat-old");
        let (env, owner) = gitlab_vault(&fake);
        killed_at(&env, &owner, GITLAB, step);
        // What lockbox holds works right after the kill.
        let held = secret_of(&get(&env, &owner, GITLAB));
        assert!(
            fake.accepts(&held),
            "{step}: the registry refuses what lockbox holds"
        );
        // And the next run rotates from there.
        keyed(&env, &owner, &["rotate", GITLAB]).ok();
        let held = secret_of(&get(&env, &owner, GITLAB));
        assert!(fake.accepts(&held), "{step}: after the next run");
    }
}

#[test]
fn a_harbor_rotation_killed_at_any_step_is_recovered_by_the_next_run() {
    for step in [
        "before-pending",
        "before-request",
        "after-request",
        "after-store",
    ] {
        let fake = Fake::harbor(ROBOT, 12, "OldSecret1", now() + 100 * 86_400);
        let (env, owner) = harbor_vault(&fake);
        killed_at(&env, &owner, HARBOR, step);
        let pending = check_json(&env)["entries"][0]["rotation_pending"] == true;
        assert_eq!(
            pending,
            matches!(step, "before-request" | "after-request"),
            "{step}: the pending secret is written before Harbor is asked, cleared after"
        );
        if step == "after-request" {
            // Harbor switched, the vault still answers the old secret until the next
            // run: check and doctor say so.
            assert!(!fake.accepts(&secret_of(&get(&env, &owner, HARBOR))));
            env.lockbox(&["check"]).prints(&["pending  harbor.example"]);
        }
        // `rotate --due` picks up an interrupted rotation.
        let args: &[&str] = if pending {
            &["rotate", "--due"]
        } else {
            &["rotate", HARBOR]
        };
        let r = keyed(&env, &owner, args);
        r.ok();
        // Only a pending secret Harbor already holds is kept.
        assert_eq!(
            r.stdout
                .contains("Finished the interrupted rotation of harbor.example"),
            step == "after-request",
            "{step}: {r}"
        );
        let held = secret_of(&get(&env, &owner, HARBOR));
        assert!(
            fake.accepts(&held),
            "{step}: the registry refuses what lockbox holds"
        );
        assert_eq!(check_json(&env)["entries"][0]["rotation_pending"], false);
    }
}
