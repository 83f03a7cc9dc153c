//! `get` through the binary for each network kind of sealed source, without an agent
//! (`LOCKBOX_IDENTITY_FILE`, as CI runs), against the real local servers of
//! `sources_mint.rs`: the answer is the minted token, byte-exact with the registry's
//! username; a second `get` is served from the sealed `<vault>.tokens` cache (the
//! server asked once); neither the source's secret nor the token is anywhere in the
//! clear afterwards; a refused credential is one line naming the endpoint, never
//! "credentials not found". And once through an unlocked agent, which mints and
//! caches in its own memory.
use crate::common::manage::{Env, Identity, Run};
use crate::common::sources::add_source;
use crate::common::token_servers::{Moto, TokenServer, rsa_key_pair, service_account_json};

fn get(env: &Env, owner: &Identity, server: &str) -> Run {
    env.lockbox_with(
        &["get"],
        &[("LOCKBOX_IDENTITY_FILE", &owner.file)],
        server.as_bytes(),
    )
}

fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
}

/// The `get` answer for `server`, `username`, `secret`, as the helper protocol writes
/// it (the tokens here need no JSON escaping).
fn answer(server: &str, username: &str, secret: &str) -> String {
    format!("{{\"ServerURL\":\"{server}\",\"Username\":\"{username}\",\"Secret\":\"{secret}\"}}\n")
}

/// Two `get`s of `server`: both answer `username` and the one token `issued` gives
/// (called after the first), and `issued` says the server handed out one token.
fn two_gets_one_mint(
    env: &Env,
    owner: &Identity,
    server: &str,
    username: &str,
    issued: impl Fn() -> Vec<String>,
) -> String {
    let first = get(env, owner, server);
    first.ok();
    let tokens = issued();
    assert_eq!(tokens.len(), 1, "{first}");
    assert_eq!(first.stdout, answer(server, username, &tokens[0]));
    let second = get(env, owner, server);
    assert_eq!(second.stdout, first.stdout, "{second}");
    assert_eq!(issued().len(), 1, "the second get minted again");
    tokens[0].clone()
}

#[test]
fn oauth2_source_get_is_minted_cached_and_leaves_no_secret() {
    let refresh = "rt-get-e2e-0123456789abcdef";
    let Some(server) = TokenServer::start(
        "oauth2",
        &[("refresh_token", refresh.as_bytes())],
        &["--client-id", "docker", "--expires-in", "3600"],
    ) else {
        return;
    };
    let (env, owner) = Env::with_vault();
    let reg = "registry.example.com";
    let url = format!("{}/token", server.url());
    let params = pairs(&[("token-url", &url), ("client-id", "docker")]);
    add_source(
        &env,
        &owner,
        reg,
        "oauth2accesstoken",
        "oauth2",
        &params,
        refresh,
    );
    let token = two_gets_one_mint(&env, &owner, reg, "oauth2accesstoken", || {
        server.count().tokens
    });
    env.assert_no_secret(&[
        ("oauth2accesstoken", refresh),
        ("oauth2accesstoken", &token),
    ]);
}

#[test]
fn gcp_source_get_is_minted_and_cached() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = rsa_key_pair(dir.path());
    let email = "pusher@lockbox-test.iam.gserviceaccount.com";
    let Some(server) = TokenServer::start(
        "gcp",
        &[("public.pem", public.as_bytes())],
        &["--client-email", email, "--key-id", "k1"],
    ) else {
        return;
    };
    let (env, owner) = Env::with_vault();
    let reg = "europe-docker.pkg.dev";
    let params = pairs(&[("token-uri", &format!("{}/token", server.url()))]);
    let key = service_account_json(email, "k1", &private);
    add_source(&env, &owner, reg, "oauth2accesstoken", "gcp", &params, &key);
    let token = two_gets_one_mint(&env, &owner, reg, "oauth2accesstoken", || {
        server.count().tokens
    });
    // The key (its PEM lines are long enough to be found) and the token: nowhere.
    let pem_line = private.lines().nth(1).unwrap();
    env.assert_no_secret(&[("k", pem_line), ("oauth2accesstoken", &token)]);
}

#[test]
fn azure_acr_source_get_answers_the_zero_guid_and_the_refresh_token() {
    let client_secret = "azure~get.e2e-secret-0123456789";
    let reg = "lockboxtest.azurecr.io";
    let Some(server) = TokenServer::start(
        "azure",
        &[("client_secret", client_secret.as_bytes())],
        &["--tenant", "t-1", "--client-id", "c-1", "--registry", reg],
    ) else {
        return;
    };
    let (env, owner) = Env::with_vault();
    let params = pairs(&[
        ("tenant", "t-1"),
        ("client-id", "c-1"),
        ("authority", &server.url()),
        ("endpoint", &server.url()),
    ]);
    let guid = "00000000-0000-0000-0000-000000000000";
    add_source(&env, &owner, reg, guid, "azure-acr", &params, client_secret);
    let token = two_gets_one_mint(&env, &owner, reg, guid, || server.count().tokens);
    env.assert_no_secret(&[(guid, client_secret), (guid, &token)]);
}

#[test]
fn aws_ecr_source_get_against_moto_and_a_refused_key_in_one_line() {
    let Some(moto) = Moto::start() else { return };
    let c = &moto.creds;
    let (env, owner) = Env::with_vault();
    let reg = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    let params = pairs(&[
        ("region", "eu-west-1"),
        ("access-key-id", &c.access_key_id),
        ("endpoint", &moto.url()),
        ("role-arn", &c.role_arn),
    ]);
    add_source(
        &env,
        &owner,
        reg,
        "AWS",
        "aws-ecr",
        &params,
        &c.secret_access_key,
    );
    let run = get(&env, &owner, reg);
    run.ok();
    assert_eq!(run.stdout, answer(reg, "AWS", "123456789012-auth-token"));
    env.assert_no_secret(&[("AWS", &c.secret_access_key)]);

    // The same key id with a wrong secret: one line naming moto, never not-found.
    let other = "ecr2.dkr.ecr.eu-west-1.amazonaws.com";
    let wrong = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYWRONGKEY";
    add_source(&env, &owner, other, "AWS", "aws-ecr", &params, wrong);
    let run = get(&env, &owner, other);
    run.fails();
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(!all.contains("credentials not found"), "{run}");
    assert!(all.contains("SignatureDoesNotMatch"), "{run}");
    assert!(all.contains(&moto.url()), "{run}");
    assert!(
        !all.contains(wrong) && !all.contains(&c.secret_access_key),
        "{run}"
    );
}

#[test]
fn a_hanging_token_endpoint_fails_the_get_within_the_mint_deadline() {
    let Some(server) = TokenServer::start(
        "oauth2",
        &[("refresh_token", b"rt-hang-get")],
        &["--client-id", "docker", "--delay", "120"],
    ) else {
        return;
    };
    let (env, owner) = Env::with_vault();
    let url = format!("{}/token", server.url());
    let params = pairs(&[("token-url", &url), ("client-id", "docker")]);
    add_source(
        &env,
        &owner,
        "hang.example",
        "u",
        "oauth2",
        &params,
        "rt-hang-get",
    );
    let run = get(&env, &owner, "hang.example");
    run.fails();
    let secs = lockbox::sources::MINT_DEADLINE.as_secs();
    assert!(
        run.stdout.contains(&format!("no answer within {secs} s")),
        "{run}"
    );
}

/// The agent mints a network source: `get` with no key of its own, through an agent
/// unlocked with the owner's identity (its environment is empty: no proxy, no HOME),
/// against the loopback OAuth2 server — two `get`s, one token asked for, no cache
/// file written (the agent's cache is memory), no secret in the clear.
#[test]
fn an_unlocked_agent_mints_an_oauth2_source_once_for_two_gets() {
    let refresh = "rt-agent-e2e-0123456789abcdef";
    let Some(server) = TokenServer::start(
        "oauth2",
        &[("refresh_token", refresh.as_bytes())],
        &["--client-id", "docker", "--expires-in", "3600"],
    ) else {
        return;
    };
    let (env, owner) = Env::with_vault();
    let reg = "registry.example.com";
    let url = format!("{}/token", server.url());
    let params = pairs(&[("token-url", &url), ("client-id", "docker")]);
    let username = "oauth2accesstoken";
    add_source(&env, &owner, reg, username, "oauth2", &params, refresh);
    // Whatever happens below, the agent is stopped.
    struct LockAll<'a>(&'a Env);
    impl Drop for LockAll<'_> {
        fn drop(&mut self) {
            let _ = self.0.lockbox(&["lock", "--all"]);
        }
    }
    let _stop = LockAll(&env);
    let file = owner.file.to_str().unwrap();
    env.lockbox(&["unlock", "--identity-file", file]).ok();
    let first = env.lockbox_with(&["get"], &[], reg.as_bytes());
    first.ok();
    let tokens = server.count().tokens;
    assert_eq!(tokens.len(), 1, "{first}");
    assert_eq!(first.stdout, answer(reg, username, &tokens[0]));
    let second = env.lockbox_with(&["get"], &[], reg.as_bytes());
    assert_eq!(second.stdout, first.stdout, "{second}");
    assert_eq!(server.count().tokens.len(), 1, "the agent minted again");
    let cache = env.vault_path().with_file_name("vault.json.tokens");
    assert!(!cache.exists(), "the agent writes no cache file");
    env.assert_no_secret(&[(username, refresh), (username, &tokens[0])]);
}
