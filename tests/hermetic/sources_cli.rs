//! Sealed sources from the command line (`source add|list|remove`, issue 21): the
//! definitions, their secrets (from files or stdin, never argv, never printed), the
//! key they need, and what happens to a source someone planted or altered in the
//! vault file (refused, its command never run). The `exec` kind stands for all: its
//! command is a shell line that leaves a marker file when it runs.
use std::fs;
use std::path::Path;

use crate::common::manage::{Env, Identity, Run};

/// `lockbox ARGS` with the owner's identity (the key) in the environment.
fn keyed(env: &Env, owner: &Identity, args: &[&str]) -> Run {
    keyed_in(env, owner, args, b"")
}

/// [`keyed`] with `stdin`.
fn keyed_in(env: &Env, owner: &Identity, args: &[&str], stdin: &[u8]) -> Run {
    env.lockbox_with(args, &[("LOCKBOX_IDENTITY_FILE", &owner.file)], stdin)
}

/// A shell line that leaves `marker` and prints a credential (what an `exec` source
/// runs): `marker` exists only if it ran.
fn minting_line(marker: &Path, secret: &str) -> String {
    format!(
        "touch '{}'; printf '%s' '{{\"Username\":\"minted-user\",\"Secret\":\"{secret}\"}}'",
        marker.display()
    )
}

/// Adds an exec source for `registries` that runs [`minting_line`].
fn add_exec(env: &Env, owner: &Identity, registries: &[&str], marker: &Path) -> Run {
    let line = minting_line(marker, "minted-secret");
    let mut args = vec!["source", "add", "exec"];
    for r in registries {
        args.extend(["--registry", r]);
    }
    args.extend(["--", "sh", "-c", &line]);
    keyed(env, owner, &args)
}

fn list_json(env: &Env, owner: Option<&Identity>) -> serde_json::Value {
    let args = ["source", "list", "--json"];
    let r = match owner {
        Some(o) => keyed(env, o, &args),
        None => env.lockbox(&args),
    };
    r.ok();
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"))
}

/// The `definition` of each source `source list --json` shows, by registry.
fn standings(env: &Env, owner: Option<&Identity>) -> Vec<(String, String)> {
    list_json(env, owner)["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["registry"].as_str().unwrap().to_owned(),
                s["definition"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn exec_sources_are_added_for_each_registry_listed_and_removed() {
    let (env, owner) = Env::with_vault();
    let marker = env.path("ran");
    let r = add_exec(&env, &owner, &["a.example", "b.example:5000"], &marker);
    r.ok().prints(&[
        "added the exec source for a.example (username <minted>)",
        "added the exec source for b.example:5000 (username <minted>)",
        "it runs /",
        "/sh: the definition names that file, found now and never looked up again",
    ]);
    assert!(!marker.exists(), "add ran the command: {r}");
    let v = env.vault_json();
    assert_eq!(v["lockbox"], 4, "a vault with a source is version 4");
    let command: Vec<String> = serde_json::from_str(
        v["entries"]["a.example"]["source"]["params"]["command"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(
        command[0].starts_with('/') && command[0].ends_with("/sh"),
        "{command:?}"
    );
    assert_eq!(command[1], "-c");

    // Without a key: listed, not verified. With it: verified.
    assert_eq!(
        standings(&env, None),
        pairs(&[("a.example", "locked"), ("b.example:5000", "locked")])
    );
    assert_eq!(
        standings(&env, Some(&owner)),
        pairs(&[("a.example", "verified"), ("b.example:5000", "verified")])
    );
    let json = list_json(&env, None);
    assert_eq!(json["sources"][0]["kind"], "exec");
    assert_eq!(json["sources"][0]["username"], "<minted>");
    env.lockbox(&["source", "list"]).ok().prints(&[
        "a.example  exec  username <minted>  unverified (locked)",
        "    command: [\"/",
    ]);
    // The protocol's list shows sources with their stored username.
    let listed = env.list();
    assert_eq!(
        listed.get("a.example").map(String::as_str),
        Some("<minted>")
    );
    assert_eq!(
        listed.get("b.example:5000").map(String::as_str),
        Some("<minted>")
    );

    // Remove needs no key; a second remove says there is none.
    env.lockbox(&["source", "remove", "https://b.example:5000"])
        .ok()
        .prints(&["removed the source for b.example:5000"]);
    env.lockbox(&["source", "remove", "b.example:5000"])
        .fails()
        .says(&["no source for b.example:5000 in the vault"]);
    assert_eq!(standings(&env, None), pairs(&[("a.example", "locked")]));
    env.lockbox(&["source", "remove", "a.example"]).ok();
    env.lockbox(&["source", "list"])
        .ok()
        .prints(&["no sources in the vault"]);
    assert!(!marker.exists());
}

#[test]
fn a_source_never_replaces_a_stored_credential_but_replaces_a_source() {
    let (env, owner) = Env::with_vault();
    env.store("static.example", "robot", "static-secret");
    let before = env.vault_bytes();
    let marker = env.path("ran");
    // Even among other registries: nothing is added.
    add_exec(&env, &owner, &["new.example", "static.example"], &marker)
        .fails()
        .says(&["static.example already has a stored credential"]);
    assert_eq!(env.vault_bytes(), before, "the vault changed");
    // `source remove` leaves a stored credential alone.
    env.lockbox(&["source", "remove", "static.example"])
        .fails()
        .says(&["static.example holds a stored credential, not a source: 'docker logout static.example' removes it"]);
    assert_eq!(env.vault_bytes(), before, "the vault changed");

    add_exec(&env, &owner, &["src.example"], &marker).ok();
    // Nor does a `docker login` or `docker logout` touch a source.
    let with_source = env.vault_bytes();
    let store = env.lockbox_with(
        &["store"],
        &[],
        br#"{"ServerURL":"src.example","Username":"u","Secret":"s"}"#,
    );
    store.fails().prints(&["src.example is a sealed source"]);
    env.lockbox_with(&["erase"], &[], b"https://src.example")
        .fails()
        .prints(&["src.example is a sealed source"]);
    assert_eq!(env.vault_bytes(), with_source, "the vault changed");
    let r = keyed(
        &env,
        &owner,
        &[
            "source",
            "add",
            "exec",
            "--registry",
            "https://src.example",
            "--username",
            "ci",
            "--",
            "/bin/true",
        ],
    );
    r.ok()
        .prints(&["replaced the exec source for https://src.example (username ci)"]);
    // One source, under the new spelling, with the new definition.
    let v = env.vault_json();
    let entries = v["entries"].as_object().unwrap();
    assert!(!entries.contains_key("src.example"), "{v}");
    assert_eq!(entries["https://src.example"]["username"], "ci");
    assert_eq!(
        standings(&env, Some(&owner)),
        pairs(&[("https://src.example", "verified")])
    );
}

#[test]
fn adding_a_source_needs_the_key_and_changes_nothing_without_it() {
    let (env, _owner) = Env::with_vault();
    let before = env.vault_bytes();
    // No key variable, no agent, no terminal (a new session).
    env.lockbox(&[
        "source",
        "add",
        "exec",
        "--registry",
        "r.example",
        "--",
        "/bin/true",
    ])
    .fails();
    assert_eq!(env.vault_bytes(), before);
    // A key that is not this vault's.
    let stranger = env.identity("stranger");
    keyed(
        &env,
        &stranger,
        &[
            "source",
            "add",
            "exec",
            "--registry",
            "r.example",
            "--",
            "/bin/true",
        ],
    )
    .fails();
    assert_eq!(env.vault_bytes(), before);
}

#[test]
fn secrets_come_from_a_file_or_stdin_and_are_never_shown_or_kept_in_plaintext() {
    let (env, owner) = Env::with_vault();
    let secret = "exec-source-secret-7f3a9c";
    let add = |file: &str, stdin: &[u8]| {
        keyed_in(
            &env,
            &owner,
            &[
                "source",
                "add",
                "exec",
                "--registry",
                "r.example",
                "--secret-file",
                file,
                "--",
                "/bin/cat",
            ],
            stdin,
        )
    };
    let from_stdin = add("-", format!("{secret}\n").as_bytes());
    from_stdin.ok();
    let file = env.key_file("secret", &format!("{secret}\r\n"));
    let from_file = add(file.to_str().unwrap(), b"");
    from_file.ok();
    for r in [&from_stdin, &from_file] {
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "{r}"
        );
    }
    let listed = keyed(&env, &owner, &["source", "list", "--json"]);
    assert!(!listed.stdout.contains(secret), "{listed}");
    let status = env.lockbox(&["status"]);
    assert!(!status.stdout.contains(secret), "{status}");
    env.assert_no_secret(&[("<minted>", secret)]);

    // Files that hold no usable secret.
    let empty = env.key_file("empty", "\n");
    add(empty.to_str().unwrap(), b"")
        .fails()
        .says(&["as the source's secret: it is empty"]);
    add("-", b"")
        .fails()
        .says(&["cannot use - as the source's secret: it is empty"]);
    add(env.path("keys/absent").to_str().unwrap(), b"")
        .fails()
        .says(&["keys/absent as the source's secret: cannot open it"]);
    let dir = env.path("keys");
    add(dir.to_str().unwrap(), b"")
        .fails()
        .says(&["is a directory, not a regular file"]);
    add("/dev/zero", b"")
        .fails()
        .says(&["/dev/zero as the source's secret: it is a character device"]);
    // A FIFO is read as a pipe (`<(pass show …)`), within its deadline: one whose
    // writer never comes is given up, not waited on forever.
    let fifo = env.path("keys/fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let r = env.lockbox_with(
        &[
            "source",
            "add",
            "exec",
            "--registry",
            "r.example",
            "--secret-file",
            fifo.to_str().unwrap(),
            "--",
            "/bin/cat",
        ],
        &[
            ("LOCKBOX_IDENTITY_FILE", &owner.file),
            ("LOCKBOX_DEBUG_PIPE_WAIT_MS", Path::new("200")),
        ],
        b"",
    );
    r.fails().says(&["its writer did not finish within 1 s"]);
}

/// The path of the exec program as stored in the source of `registry`.
fn stored_program(env: &Env, registry: &str) -> String {
    let v = env.vault_json();
    let command: Vec<String> = serde_json::from_str(
        v["entries"][registry]["source"]["params"]["command"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    command[0].clone()
}

#[test]
fn an_exec_program_is_stored_as_the_absolute_path_that_was_found() {
    let (env, owner) = Env::with_vault();
    let tool = env.bin_dir().join("mint-token");
    fs::write(&tool, "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
    let add = |program: &str| {
        keyed(
            &env,
            &owner,
            &[
                "source",
                "add",
                "exec",
                "--registry",
                "r.example",
                "--",
                program,
                "--flag",
            ],
        )
    };
    add("mint-token")
        .ok()
        .prints(&[&format!("it runs {}", tool.display())]);
    assert_eq!(stored_program(&env, "r.example"), tool.to_str().unwrap());
    // Relative to the working directory (HOME): made absolute.
    fs::copy(&tool, env.path("home/local-tool")).unwrap();
    add("./local-tool").ok();
    assert_eq!(
        stored_program(&env, "r.example"),
        env.path("home/local-tool").to_str().unwrap()
    );
    // Not found, or not executable: refused.
    add("no-such-tool")
        .fails()
        .says(&["no-such-tool: no executable file of that name"]);
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o644)).unwrap();
    add("mint-token")
        .fails()
        .says(&["mint-token: no executable"]);
}

/// Rewrites the vault file through its JSON (as a person or attacker with write
/// access could).
fn edit_vault(env: &Env, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut v = env.vault_json();
    edit(&mut v);
    fs::write(env.vault_path(), serde_json::to_vec(&v).unwrap()).unwrap();
}

/// `get REGISTRY` with the key: refused with the one tampered line, and the
/// source's command did not run.
fn get_is_refused_without_running(env: &Env, owner: &Identity, registry: &str, marker: &Path) {
    let r = keyed_in(env, owner, &["get"], registry.as_bytes());
    r.fails();
    assert_eq!(
        r.stdout,
        format!(
            "the source for {registry} was not made with this vault's key (someone planted or edited it in the vault file); nothing was sent and no command run: remove it with 'lockbox source remove {registry}' and add it again\n"
        ),
        "{r}"
    );
    assert!(!r.stdout.contains("minted-secret"), "{r}");
    assert!(!marker.exists(), "the command ran: {r}");
}

#[test]
fn planted_and_altered_sources_are_refused_and_their_commands_never_run() {
    let (env, owner) = Env::with_vault();
    let good = env.path("good-ran");
    add_exec(&env, &owner, &["good.example", "altered.example"], &good).ok();
    let altered_marker = env.path("altered-ran");
    let planted_marker = env.path("planted-ran");
    edit_vault(&env, |v| {
        let entries = v["entries"].as_object_mut().unwrap();
        // Altered: the command of a real source changed.
        let line = minting_line(&altered_marker, "minted-secret");
        let cmd = serde_json::to_string(&["/bin/sh", "-c", &line]).unwrap();
        entries["altered.example"]["source"]["params"]["command"] = cmd.into();
        // Planted: a whole entry by hand, its MAC made up.
        let line = minting_line(&planted_marker, "minted-secret");
        let cmd = serde_json::to_string(&["/bin/sh", "-c", &line]).unwrap();
        let mut planted = entries["good.example"].clone();
        planted["source"]["params"]["command"] = cmd.into();
        planted["source"]["mac"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
        entries.insert("planted.example".into(), planted);
    });
    assert_eq!(
        standings(&env, Some(&owner)),
        pairs(&[
            ("altered.example", "tampered"),
            ("good.example", "verified"),
            ("planted.example", "tampered"),
        ])
    );
    keyed(&env, &owner, &["source", "list"])
        .ok()
        .prints(&["planted.example  exec  username <minted>  TAMPERED (get refuses it)"]);
    get_is_refused_without_running(&env, &owner, "altered.example", &altered_marker);
    get_is_refused_without_running(&env, &owner, "planted.example", &planted_marker);
    // Removing them needs no key.
    env.lockbox(&["source", "remove", "planted.example"]).ok();
    env.lockbox(&["source", "remove", "altered.example"]).ok();
    assert_eq!(
        standings(&env, Some(&owner)),
        pairs(&[("good.example", "verified")])
    );
}

#[test]
fn a_source_in_a_file_older_than_version_4_is_refused_as_damaged() {
    let (env, owner) = Env::with_vault();
    add_exec(&env, &owner, &["r.example"], &env.path("ran")).ok();
    edit_vault(&env, |v| v["lockbox"] = 3.into());
    env.lockbox(&["source", "list"])
        .fails()
        .says(&["is damaged (a source in a version 3 file (it needs version 4))"]);
    env.lockbox(&["list"]).fails();
}

#[test]
fn a_key_rotation_keeps_sources_verified_and_drops_planted_ones() {
    let (env, owner) = Env::with_vault();
    add_exec(&env, &owner, &["r.example"], &env.path("ran")).ok();
    edit_vault(&env, |v| {
        let entries = v["entries"].as_object_mut().unwrap();
        let mut planted = entries["r.example"].clone();
        planted["source"]["mac"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
        entries.insert("planted.example".into(), planted);
    });
    let second = env.identity("second");
    keyed(&env, &owner, &["recipients", "add", &second.recipient]).ok();
    // Removing the owner's slot rotates the vault key.
    let before = env.public_key();
    keyed(&env, &second, &["recipients", "remove", &owner.recipient])
        .ok()
        .says(&["dropped the source for planted.example"]);
    assert_ne!(env.public_key(), before, "the key was not rotated");
    assert_eq!(
        standings(&env, Some(&second)),
        pairs(&[("r.example", "verified")])
    );
    // And it still mints, with the new key.
    let got = keyed_in(&env, &second, &["get"], b"r.example");
    got.ok();
    assert!(got.stdout.contains("\"Secret\":\"minted-secret\""), "{got}");
    assert_eq!(
        standings(&env, Some(&owner)),
        pairs(&[("r.example", "locked")]),
        "the removed key still verifies"
    );
}

#[test]
fn passwd_rotates_the_key_and_the_source_still_verifies_and_mints() {
    let (env, owner) = Env::with_vault();
    let marker = env.path("ran");
    add_exec(&env, &owner, &["r.example"], &marker).ok();
    let before = env.public_key();
    let new = env.key_file("new-pass", "a long new passphrase for sources\n");
    let file = owner.file.to_str().unwrap().to_owned();
    env.lockbox(&[
        "passwd",
        "--identity-file",
        &file,
        "--new-passphrase-file",
        new.to_str().unwrap(),
    ])
    .ok();
    assert_ne!(env.public_key(), before, "the key was not rotated");
    // The rotation carried the trust to the new key, and the source verifies with it.
    assert_eq!(list_json(&env, Some(&owner))["trusted"], true);
    assert_eq!(
        standings(&env, Some(&owner)),
        pairs(&[("r.example", "verified")])
    );
    let pass = [("LOCKBOX_PASSPHRASE_FILE", new.as_path())];
    let got = env.lockbox_with(&["get"], &pass, b"r.example");
    got.ok();
    assert!(got.stdout.contains("\"Secret\":\"minted-secret\""), "{got}");
}

/// Where `source add`'s other kinds find their flags: each parameter stored under its
/// flag's name, the secret never in argv.
#[test]
fn each_kind_takes_its_flags() {
    let env = Env::new();
    for (kind, needs) in [
        (
            "aws-ecr",
            &["--region", "--access-key-id", "--secret-access-key-file"][..],
        ),
        ("gcp", &["--key-file"][..]),
        (
            "azure-acr",
            &["--tenant", "--client-id", "--client-secret-file"][..],
        ),
        (
            "oauth2",
            &["--token-url", "--client-id", "--refresh-token-file"][..],
        ),
    ] {
        let r = env.lockbox(&["source", "add", kind, "--registry", "r.example"]);
        assert_eq!(r.code(), 2, "{r}");
        r.says(needs);
    }
}

/// `doctor --json`'s findings of `check`, as (level, what).
fn doctor_findings(env: &Env, owner: Option<&Identity>, check: &str) -> Vec<(String, String)> {
    let args = ["doctor", "--json"];
    let r = match owner {
        Some(o) => keyed(env, o, &args),
        None => env.lockbox(&args),
    };
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .map(|f| {
            (
                f["level"].as_str().unwrap().to_owned(),
                f["what"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn doctor_checks_each_source_its_definition_and_its_program() {
    let (env, owner) = Env::with_vault();
    let tool = env.bin_dir().join("mint-token");
    fs::write(&tool, "#!/bin/sh\nexit 0\n").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
    let add = |registry: &str| {
        keyed(
            &env,
            &owner,
            &[
                "source",
                "add",
                "exec",
                "--registry",
                registry,
                "--",
                "mint-token",
            ],
        )
        .ok();
    };
    add("a.example");
    add("b.example");
    assert_eq!(
        doctor_findings(&env, Some(&owner), "source"),
        pairs(&[
            ("ok", "a.example: exec source verified"),
            ("ok", "b.example: exec source verified"),
        ])
    );
    let runs = format!("a.example: runs {}", tool.display());
    assert!(
        doctor_findings(&env, None, "source-program").contains(&("ok".into(), runs)),
        "{:?}",
        doctor_findings(&env, None, "source-program")
    );
    // A program others could replace is pointed out.
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o777)).unwrap();
    let loose = doctor_findings(&env, None, "source-program");
    assert!(
        loose.iter().any(|(level, what)| level == "warning"
            && what.contains("can be replaced by someone else")
            && what.contains("has mode 0777")),
        "{loose:?}"
    );
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
    // Without a key: listed as unchecked, never an error.
    assert_eq!(
        doctor_findings(&env, None, "source"),
        pairs(&[
            (
                "unchecked",
                "a.example: exec source, its definition not verified (the vault is locked)"
            ),
            (
                "unchecked",
                "b.example: exec source, its definition not verified (the vault is locked)"
            ),
        ])
    );
    // Altered: an error naming it; the program gone: an error.
    edit_vault(&env, |v| {
        v["entries"]["b.example"]["source"]["params"]["command"] = "[\"/bin/true\"]".into();
    });
    fs::remove_file(&tool).unwrap();
    let found = doctor_findings(&env, Some(&owner), "source");
    assert_eq!(
        found[0],
        ("ok".into(), "a.example: exec source verified".into())
    );
    assert_eq!(found[1].0, "error");
    assert!(
        found[1]
            .1
            .contains("the source for b.example was not made with this vault's key"),
        "{found:?}"
    );
    let missing = format!(
        "a.example: the source's program {} is missing or not executable",
        tool.display()
    );
    assert!(
        doctor_findings(&env, None, "source-program").contains(&("error".into(), missing)),
        "{:?}",
        doctor_findings(&env, None, "source-program")
    );
    let r = keyed(&env, &owner, &["doctor"]);
    assert_eq!(r.code(), 1, "{r}");
}

/// Adds, through `source add exec … --secret-file -`, a source for `registry` whose
/// script answers with the secret it got on stdin (prefixed `got-`), expiring
/// `expires_in` seconds from now; the secret is `sealed`.
fn add_echoing(env: &Env, owner: &Identity, registry: &str, expires_in: u64, sealed: &str) {
    let expires = crate::common::rfc3339(crate::common::unix_now() + expires_in);
    let script = env.bin_dir().join("echo-token");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nread -r s\nprintf '{{\"Username\":\"robot\",\"Secret\":\"got-%s\",\"ExpiresAt\":\"{expires}\"}}' \"$s\"\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let args = [
        "source",
        "add",
        "exec",
        "--registry",
        registry,
        "--secret-file",
        "-",
        "--",
        "echo-token",
    ];
    keyed_in(env, owner, &args, format!("{sealed}\n").as_bytes()).ok();
}

#[test]
fn a_source_added_from_the_command_line_answers_get_with_its_sealed_secret_on_stdin() {
    let (env, owner) = Env::with_vault();
    add_echoing(&env, &owner, "r.example", 3600, "sealed-7c1e");
    let r = keyed_in(&env, &owner, &["get"], b"r.example");
    r.ok();
    assert_eq!(
        r.stdout,
        "{\"ServerURL\":\"r.example\",\"Username\":\"robot\",\"Secret\":\"got-sealed-7c1e\"}\n",
        "{r}"
    );
    env.assert_no_secret(&[("robot", "got-sealed-7c1e"), ("<minted>", "sealed-7c1e")]);
}

/// A kubelet CredentialProviderRequest for `image`, answered with the owner's key.
fn kubelet(env: &Env, owner: &Identity, image: &str) -> serde_json::Value {
    let request = serde_json::json!({
        "kind": "CredentialProviderRequest",
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
        "image": image,
    });
    let r = keyed_in(
        env,
        owner,
        &["kubelet-credential-provider"],
        request.to_string().as_bytes(),
    );
    r.ok();
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"))
}

/// A Go duration of whole minutes and seconds (`2m30s`, `45s`, `0s`) in seconds.
fn go_secs(d: &str) -> u64 {
    let (m, s) = match d.split_once('m') {
        Some((m, s)) => (m.parse::<u64>().unwrap(), s),
        None => (0, d),
    };
    m * 60 + s.trim_end_matches('s').parse::<u64>().unwrap_or(0)
}

#[test]
fn kubelet_answers_a_source_with_a_minted_token_cached_no_longer_than_it_is_served() {
    let (env, owner) = Env::with_vault();
    add_echoing(&env, &owner, "long.example", 12 * 3600, "s1");
    let v = kubelet(&env, &owner, "long.example/app:1");
    assert_eq!(v["auth"]["long.example"]["username"], "robot");
    assert_eq!(v["auth"]["long.example"]["password"], "got-s1");
    assert_eq!(v["cacheDuration"], "5m0s", "{v}");

    // 200 s left when minted: no cache serves its last quarter (50 s), nor kubelet's.
    add_echoing(&env, &owner, "short.example", 200, "s2");
    let v = kubelet(&env, &owner, "short.example/app:1");
    assert_eq!(v["auth"]["short.example"]["password"], "got-s2");
    let d = go_secs(v["cacheDuration"].as_str().unwrap());
    assert!(d > 0 && d <= 150, "{v}");
}

#[test]
fn export_of_a_source_exports_the_current_token_and_says_when_it_expires() {
    let (env, owner) = Env::with_vault();
    add_echoing(&env, &owner, "r.example", 3600, "sealed-e");
    env.store("static.example", "alice", "static-pw");
    let r = keyed(&env, &owner, &["export"]);
    r.ok().says(&[
        "note: r.example is a sealed source: exported a token minted now, which expires at 20",
    ]);
    assert_eq!(r.stderr.matches("sealed source").count(), 1, "{r}");
    let v: serde_json::Value =
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r}"));
    let auth = |server: &str| {
        use base64::Engine as _;
        let b = v["auths"][server]["auth"].as_str().unwrap();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap()
    };
    assert_eq!(auth("r.example"), "robot:got-sealed-e");
    assert_eq!(auth("static.example"), "alice:static-pw");
}

/// The trust file of the world's user (`HOME/.config/lockbox/trusted-vault-keys`).
fn trust_file(env: &Env) -> std::path::PathBuf {
    env.path("home/.config/lockbox/trusted-vault-keys")
}

#[test]
fn source_trust_pins_the_vault_key_that_add_and_list_and_doctor_speak_of() {
    let (env, owner) = Env::with_vault();
    let key = env.public_key();
    // `init` trusted it; a vault made elsewhere is not.
    assert!(fs::read_to_string(trust_file(&env)).unwrap().contains(&key));
    fs::remove_file(trust_file(&env)).unwrap();
    // `source add` trusts the vault it adds to.
    add_exec(&env, &owner, &["r.example"], &env.path("ran")).ok();
    assert!(fs::read_to_string(trust_file(&env)).unwrap().contains(&key));
    assert_eq!(list_json(&env, None)["trusted"], true);
    env.lockbox(&["source", "list"])
        .ok()
        .prints(&[&format!("vault key {key}: trusted to run sources here")]);

    fs::remove_file(trust_file(&env)).unwrap();
    assert_eq!(list_json(&env, None)["trusted"], false);
    assert_eq!(list_json(&env, None)["public_key"], key.as_str());
    env.lockbox(&["source", "list"])
        .ok()
        .prints(&[&format!("vault key {key}: NOT trusted to run sources here")]);
    let untrusted = doctor_findings(&env, None, "source-trust");
    assert_eq!(untrusted.len(), 1, "{untrusted:?}");
    assert_eq!(untrusted[0].0, "error");
    let r = keyed_in(&env, &owner, &["get"], b"r.example");
    r.fails();
    assert!(
        !env.path("ran").exists(),
        "an untrusted vault's source ran: {r}"
    );

    // A key that is not the vault's: refused, nothing written.
    let stranger = env.identity("stranger");
    env.lockbox(&["source", "trust", "--public-key", &stranger.recipient])
        .fails()
        .says(&[&format!(
            "the vault's public key is {key}, not {}",
            stranger.recipient
        )]);
    assert!(!trust_file(&env).exists());
    env.lockbox(&["source", "trust", "--public-key", &key])
        .ok()
        .prints(&[&format!(
            "{key}, is now trusted to run sources on this machine"
        )]);
    env.lockbox(&["source", "trust"])
        .ok()
        .prints(&["is already trusted"]);
    assert!(doctor_findings(&env, None, "source-trust").is_empty());
    keyed_in(&env, &owner, &["get"], b"r.example").ok();
    assert!(env.path("ran").exists());
}

/// This world's agent, stopped (`lock --all`) when dropped, whatever happened.
struct Unlocked<'a>(&'a Env);

impl Drop for Unlocked<'_> {
    fn drop(&mut self) {
        let _ = self.0.lockbox(&["lock", "--all"]);
    }
}

#[test]
fn with_the_agent_holding_the_key_add_list_doctor_and_get_need_no_key_flag() {
    let (env, owner) = Env::with_vault();
    let file = owner.file.to_str().unwrap().to_owned();
    let agent = Unlocked(&env);
    env.lockbox(&["unlock", "--identity-file", &file]).ok();
    let marker = env.path("ran");
    // No key variable, no flag: the agent makes the MAC.
    let line = minting_line(&marker, "agent-minted");
    env.lockbox(&[
        "source",
        "add",
        "exec",
        "--registry",
        "r.example",
        "--",
        "sh",
        "-c",
        &line,
    ])
    .ok();
    assert_eq!(standings(&env, None), pairs(&[("r.example", "verified")]));
    assert_eq!(
        doctor_findings(&env, None, "source"),
        pairs(&[("ok", "r.example: exec source verified")])
    );
    let r = env.lockbox_with(&["get"], &[], b"r.example");
    r.ok();
    assert!(r.stdout.contains("\"Secret\":\"agent-minted\""), "{r}");
    assert!(marker.exists());
    drop(agent);
    // Locked again: listed, not verified.
    assert_eq!(standings(&env, None), pairs(&[("r.example", "locked")]));
}

/// `source add KIND … --…-file -` with `secret` on stdin and the owner's key.
fn add_kind(env: &Env, owner: &Identity, args: &[&str], secret: &str) -> Run {
    let mut all = vec!["source", "add"];
    all.extend_from_slice(args);
    keyed_in(env, owner, &all, format!("{secret}\n").as_bytes())
}

#[test]
fn the_network_kinds_store_their_flags_as_parameters_and_refuse_bad_values() {
    let (env, owner) = Env::with_vault();
    let aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    add_kind(
        &env,
        &owner,
        &[
            "aws-ecr",
            "--registry",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "--region",
            "eu-west-1",
            "--access-key-id",
            "AKIAIOSFODNN7EXAMPLE",
            "--secret-access-key-file",
            "-",
            "--role-arn",
            "arn:aws:iam::123456789012:role/ci-push",
            "--sts-endpoint",
            "http://127.0.0.1:5000",
            "--endpoint",
            "http://127.0.0.1:5000",
        ],
        aws_secret,
    )
    .ok()
    .prints(&[
        "added the aws-ecr source for 123456789012.dkr.ecr.eu-west-1.amazonaws.com (username AWS)",
    ]);
    add_kind(
        &env,
        &owner,
        &[
            "azure-acr",
            "--registry",
            "myreg.azurecr.io",
            "--tenant",
            "11111111-2222-3333-4444-555555555555",
            "--client-id",
            "66666666-7777-8888-9999-000000000000",
            "--client-secret-file",
            "-",
        ],
        "azure-client-secret",
    )
    .ok()
    .prints(&["(username 00000000-0000-0000-0000-000000000000)"]);
    add_kind(
        &env,
        &owner,
        &[
            "oauth2",
            "--registry",
            "reg.example",
            "--token-url",
            "https://auth.example/token",
            "--client-id",
            "cli",
            "--refresh-token-file",
            "-",
            "--username",
            "bob",
        ],
        "oauth2-refresh-token",
    )
    .ok()
    .prints(&["added the oauth2 source for reg.example (username bob)"]);
    let v = env.vault_json();
    let params = |server: &str| v["entries"][server]["source"]["params"].clone();
    assert_eq!(
        params("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
        serde_json::json!({
            "access-key-id": "AKIAIOSFODNN7EXAMPLE",
            "endpoint": "http://127.0.0.1:5000",
            "region": "eu-west-1",
            "role-arn": "arn:aws:iam::123456789012:role/ci-push",
            "sts-endpoint": "http://127.0.0.1:5000",
        })
    );
    assert_eq!(
        params("myreg.azurecr.io"),
        serde_json::json!({
            "client-id": "66666666-7777-8888-9999-000000000000",
            "tenant": "11111111-2222-3333-4444-555555555555",
        })
    );
    assert_eq!(
        params("reg.example"),
        serde_json::json!({
            "client-id": "cli", "token-url": "https://auth.example/token", "username": "bob",
        })
    );
    env.assert_no_secret(&[
        ("AWS", aws_secret),
        (
            "00000000-0000-0000-0000-000000000000",
            "azure-client-secret",
        ),
        ("bob", "oauth2-refresh-token"),
    ]);
    keyed(&env, &owner, &["source", "list"]).ok().prints(&[
        "    endpoint: http://127.0.0.1:5000  (endpoint override)",
        "    sts-endpoint: http://127.0.0.1:5000  (endpoint override)",
    ]);
    let notes = doctor_findings(&env, None, "source-endpoint");
    assert_eq!(notes.len(), 2, "{notes:?}");

    // Refused before any key is asked for, nothing written.
    let before = env.vault_bytes();
    let refused = |args: &[&str], says: &str| {
        let r = env.lockbox_with(
            &[&["source", "add"][..], args].concat(),
            &[],
            b"some-secret\n",
        );
        assert_eq!(r.code(), 2, "{r}");
        r.says(&[says]);
    };
    refused(
        &[
            "aws-ecr",
            "--registry",
            "x.example",
            "--region",
            "EU",
            "--access-key-id",
            "A",
            "--secret-access-key-file",
            "-",
        ],
        "--region must be an AWS region name",
    );
    refused(
        &[
            "oauth2",
            "--registry",
            "x.example",
            "--token-url",
            "http://auth.example/token",
            "--client-id",
            "c",
            "--refresh-token-file",
            "-",
        ],
        "--token-url: plain http:// is allowed only for 127.0.0.1, [::1] and localhost",
    );
    refused(
        &["gcp", "--registry", "x.example", "--key-file", "-"],
        "the service-account key file is not usable",
    );
    assert_eq!(env.vault_bytes(), before);
}
