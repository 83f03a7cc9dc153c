//! The `aws-ecr` source: an IAM access key (optionally assuming a role with it first)
//! mints an ECR registry password with `GetAuthorizationToken`.
//!
//! - Parameters: `region` (`eu-west-1`), `access-key-id`, optional `role-arn`, optional
//!   `endpoint` (one URL for both ECR and STS, as a local emulator serves them; its
//!   path must be `/`), optional `sts-endpoint` (STS alone).
//! - Secret: the secret access key.
//! - With `role-arn`: STS `AssumeRole` (query API, `POST` form to
//!   `https://sts.{region}.amazonaws.com/`), whose session credentials then sign the
//!   ECR call (`X-Amz-Security-Token`). The session lives an hour and is not kept.
//!   (In the China regions the hosts end in `amazonaws.com.cn`.)
//! - ECR: `POST https://api.ecr.{region}.amazonaws.com/` with
//!   `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken` and
//!   body `{}`, signed with SigV4 (`sigv4.rs`). The answer's
//!   `authorizationData[0].authorizationToken` is base64 of `AWS:password`; its
//!   `expiresAt` (epoch seconds, maybe fractional) is when the password stops working
//!   (12 hours on).
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use age::secrecy::{ExposeSecret, SecretString};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use super::answer::{self, check_names, check_url_param, fail, plain_value, xml_text};
use super::sigv4::{self, Credentials};
use super::types::{Minted, Params};
use crate::error::MintError;
use crate::http::{self, Answer, Http};
use crate::messages;
use crate::vault::meta::MAX_EXPIRES_AT;

/// The kind's name in `source add` and in errors.
pub const KIND: &str = "aws-ecr";
const REQUIRED: &[&str] = &["region", "access-key-id"];
const OPTIONAL: &[&str] = &["role-arn", "endpoint", "sts-endpoint"];
const ECR_TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";
/// Longest secret access key accepted (AWS's are 40 characters).
const MAX_SECRET_KEY: usize = 256;

/// Checks the parameters at `source add`.
pub fn check(params: &Params) -> Result<(), String> {
    check_names(params, REQUIRED, OPTIONAL)?;
    let region = &params["region"];
    if !plain_value(region, "-", 32) || region.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(messages::source_param_form(
            "region",
            messages::FORM_AWS_REGION,
        ));
    }
    if !plain_value(&params["access-key-id"], "", 128) {
        return Err(messages::source_param_form(
            "access-key-id",
            messages::FORM_AWS_KEY_ID,
        ));
    }
    if let Some(arn) = params.get("role-arn")
        && !(arn.starts_with("arn:") && plain_value(arn, "+=,.@_:/-", 2048))
    {
        return Err(messages::source_param_form(
            "role-arn",
            messages::FORM_AWS_ROLE_ARN,
        ));
    }
    for name in ["endpoint", "sts-endpoint"] {
        check_url_param(params, name)?;
        if let Some(url) = params.get(name)
            && http::path_of(url) != "/"
        {
            return Err(messages::source_param_form(
                name,
                messages::FORM_AWS_ENDPOINT,
            ));
        }
    }
    Ok(())
}

/// Checks the secret access key at `source add`: 1 to 256 printable ASCII characters
/// without spaces.
pub fn check_secret(secret: &SecretString) -> Result<(), String> {
    answer::check_one_line_secret(
        secret,
        MAX_SECRET_KEY,
        messages::SECRET_NAME_AWS,
        messages::SECRET_AWS,
    )
}

/// Mints the ECR password for `registry`.
pub fn mint(
    registry: &str,
    params: &Params,
    secret: &SecretString,
    http: &Http,
    now: SystemTime,
) -> Result<Minted, MintError> {
    // The definition was checked at `source add` and verified since; checked again
    // so a value that slipped through is one line, never a panic.
    check(params).map_err(|d| fail(KIND, registry, messages::SOURCE_SETTINGS, d))?;
    let deadline = http.deadline();
    let region = params["region"].as_str();
    let long = Credentials {
        access_key_id: &params["access-key-id"],
        secret_access_key: secret.expose_secret(),
        session_token: None,
    };
    let session = match params.get("role-arn") {
        Some(role) => {
            let url = params
                .get("sts-endpoint")
                .or_else(|| params.get("endpoint"))
                .cloned()
                .unwrap_or_else(|| format!("https://sts.{region}.{}/", domain(region)));
            let s = assume_role(http, &url, role, &long, region, now, deadline)
                .map_err(|d| fail(KIND, registry, &url, d))?;
            Some(s)
        }
        None => None,
    };
    let credentials = match &session {
        Some(s) => Credentials {
            access_key_id: &s.access_key_id,
            secret_access_key: &s.secret_access_key,
            session_token: Some(&s.session_token),
        },
        None => long,
    };
    let url = params
        .get("endpoint")
        .cloned()
        .unwrap_or_else(|| format!("https://api.ecr.{region}.{}/", domain(region)));
    let headers = [
        ("X-Amz-Target", ECR_TARGET),
        ("Content-Type", "application/x-amz-json-1.1"),
    ];
    let answer = signed_post(
        http,
        &url,
        &headers,
        b"{}",
        (&credentials, region, "ecr"),
        now,
        deadline,
    )
    .map_err(|d| fail(KIND, registry, &url, d))?;
    let mut sent = vec![secret.expose_secret()];
    if let Some(s) = &session {
        sent.extend([s.secret_access_key.as_str(), s.session_token.as_str()]);
    }
    if !answer.ok() {
        return Err(fail(
            KIND,
            registry,
            &url,
            answer::status_detail(&answer, &sent),
        ));
    }
    ecr_token(&answer).map_err(|d| fail(KIND, registry, &url, d))
}

/// The DNS suffix of the AWS partition `region` is in: the China regions have their own.
fn domain(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// A POST signed with SigV4 for (`credentials`, region, service).
fn signed_post(
    http: &Http,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    (credentials, region, service): (&Credentials<'_>, &str, &str),
    now: SystemTime,
    deadline: std::time::Instant,
) -> Result<Answer, String> {
    http::check_url(url)?;
    let host = http::host_header(url);
    let request = sigv4::Request {
        method: "POST",
        host: &host,
        path: "/",
        headers,
        body,
    };
    let added = sigv4::sign(&request, credentials, region, service, now);
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.extend(added.iter().map(|(k, v)| (*k, v.as_str())));
    all.push(("Accept", "application/json"));
    http.post(url, &all, body, deadline)
}

/// The session credentials of an assumed role, wiped on drop.
pub struct Session {
    access_key_id: Zeroizing<String>,
    secret_access_key: Zeroizing<String>,
    session_token: Zeroizing<String>,
}

/// STS `AssumeRole` of `role` with the long-lived key.
fn assume_role(
    http: &Http,
    url: &str,
    role: &str,
    long: &Credentials<'_>,
    region: &str,
    now: SystemTime,
    deadline: std::time::Instant,
) -> Result<Session, String> {
    let name = format!(
        "lockbox-{}",
        now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    );
    let body = http::form_encode(&[
        ("Action", "AssumeRole"),
        ("Version", "2011-06-15"),
        ("RoleArn", role),
        ("RoleSessionName", &name),
    ]);
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let answer = signed_post(
        http,
        url,
        &headers,
        body.as_bytes(),
        (long, region, "sts"),
        now,
        deadline,
    )?;
    if !answer.ok() {
        return Err(answer::status_detail(&answer, &[long.secret_access_key]));
    }
    session_of(&answer)
}

/// The `<Credentials>` of an `AssumeRoleResponse` (public for the fuzz target
/// `source_answers`).
pub fn session_of(answer: &Answer) -> Result<Session, String> {
    let bad = || messages::aws_answer_bad(answer.status, messages::AWS_WHAT_ASSUME_ROLE);
    let text = std::str::from_utf8(&answer.body).map_err(|_| bad())?;
    let start = text.find("<Credentials>").ok_or_else(bad)?;
    let end = text[start..].find("</Credentials>").ok_or_else(bad)? + start;
    let section = &text[start..end];
    let field = |tag: &str| {
        xml_text(section, tag)
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= answer::MAX_TOKEN
                    && v.bytes().all(|b| b.is_ascii_graphic())
            })
            .map(Zeroizing::new)
            .ok_or_else(bad)
    };
    Ok(Session {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: field("SecretAccessKey")?,
        session_token: field("SessionToken")?,
    })
}

/// The fields of a `GetAuthorizationToken` answer that are read.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct EcrAnswer {
    authorization_data: Vec<EcrData>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct EcrData {
    authorization_token: Zeroizing<String>,
    expires_at: Option<serde_json::Number>,
}

/// The registry credential in an ECR `GetAuthorizationToken` answer (public for the
/// fuzz target `source_answers`).
pub fn ecr_token(answer: &Answer) -> Result<Minted, String> {
    let bad = || messages::aws_answer_bad(answer.status, messages::AWS_WHAT_ECR);
    let parsed: EcrAnswer = serde_json::from_slice(&answer.body).map_err(|_| bad())?;
    let data = parsed.authorization_data.first().ok_or_else(bad)?;
    if data.authorization_token.len() > answer::MAX_TOKEN {
        return Err(bad());
    }
    let decoded = Zeroizing::new(
        B64.decode(data.authorization_token.trim())
            .map_err(|_| bad())?,
    );
    let text = std::str::from_utf8(&decoded).map_err(|_| bad())?;
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    if user.is_empty()
        || !user.bytes().all(|b| b.is_ascii_graphic())
        || password.is_empty()
        || !password.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(bad());
    }
    let expires_at = data
        .expires_at
        .as_ref()
        .and_then(|n| {
            n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
        })
        .filter(|s| *s <= MAX_EXPIRES_AT)
        .map(|s| UNIX_EPOCH + Duration::from_secs(s));
    Ok(Minted {
        username: user.to_owned(),
        secret: SecretString::from(password.to_owned()),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> Params {
        kv.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    fn answer(status: u16, body: &[u8]) -> Answer {
        Answer {
            status,
            body: Zeroizing::new(body.to_vec()),
        }
    }

    #[test]
    fn parameters_are_checked() {
        let base = [("region", "eu-west-1"), ("access-key-id", "AKIAEXAMPLE123")];
        assert_eq!(check(&params(&base)), Ok(()));
        let with = |extra: (&str, &str)| {
            let mut p = params(&base);
            p.insert(extra.0.into(), extra.1.into());
            check(&p)
        };
        assert!(with(("role-arn", "arn:aws:iam::123456789012:role/ci-push")).is_ok());
        assert!(with(("endpoint", "http://127.0.0.1:5000")).is_ok());
        assert!(with(("endpoint", "https://ecr.internal.example/")).is_ok());
        assert!(with(("sts-endpoint", "https://sts.internal.example")).is_ok());
        for bad in [
            ("region", "EU-WEST-1"),
            ("region", "eu_west/1"),
            ("access-key-id", "AKIA-1"),
            ("role-arn", "role/ci"),
            ("role-arn", "arn:aws:iam::1:role/a;b"),
            ("endpoint", "http://ecr.example.com"),
            ("endpoint", "https://ecr.example.com/v2"),
            ("sts-endpoint", "https://a/?x"),
            ("token-uri", "https://x"),
        ] {
            assert!(with(bad).is_err(), "{bad:?}");
        }
        assert!(check(&params(&[("region", "eu-west-1")])).is_err());
    }

    #[test]
    fn secrets_are_checked() {
        let ok = SecretString::from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned());
        assert!(check_secret(&ok).is_ok());
        for bad in ["", "two words", "a\n", &"x".repeat(300)] {
            assert!(check_secret(&SecretString::from(bad.to_owned())).is_err());
        }
    }

    #[test]
    fn ecr_answers_good_and_hostile() {
        let token = B64.encode("AWS:eyJwYXlsb2FkIjoi");
        let body = format!(
            r#"{{"authorizationData":[{{"authorizationToken":"{token}","expiresAt":1.8e9,"proxyEndpoint":"https://x"}}]}}"#
        );
        let m = ecr_token(&answer(200, body.as_bytes())).unwrap();
        assert_eq!(m.username, "AWS");
        assert_eq!(m.secret.expose_secret(), "eyJwYXlsb2FkIjoi");
        assert_eq!(
            m.expires_at,
            Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        );
        let bad_token = B64.encode("no colon");
        let empty_pw = B64.encode("AWS:");
        for body in [
            "{}".to_owned(),
            r#"{"authorizationData":[]}"#.into(),
            r#"{"authorizationData":[{"authorizationToken":42}]}"#.into(),
            r#"{"authorizationData":[{"authorizationToken":"***"}]}"#.into(),
            format!(r#"{{"authorizationData":[{{"authorizationToken":"{bad_token}"}}]}}"#),
            format!(r#"{{"authorizationData":[{{"authorizationToken":"{empty_pw}"}}]}}"#),
            "SECRETBODY".into(),
        ] {
            let e = ecr_token(&answer(200, body.as_bytes())).err().unwrap();
            assert!(
                e.contains("authorizationData") && !e.contains("SECRETBODY"),
                "{e}"
            );
        }
        // An expiry that is not a time: the password is kept without one.
        let body = format!(
            r#"{{"authorizationData":[{{"authorizationToken":"{token}","expiresAt":1e300}}]}}"#
        );
        assert_eq!(
            ecr_token(&answer(200, body.as_bytes())).unwrap().expires_at,
            None
        );
    }

    #[test]
    fn assume_role_answers_good_and_hostile() {
        let good = b"<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><AssumedRoleUser><AssumedRoleId>AROA:x</AssumedRoleId><Arn>arn:aws:sts::1:assumed-role/r/x</Arn></AssumedRoleUser><Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>s/k+1</SecretAccessKey><SessionToken>FQo&amp;G</SessionToken><Expiration>2026-12-06T22:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>";
        let s = session_of(&answer(200, good)).unwrap();
        assert_eq!(s.access_key_id.as_str(), "ASIAX");
        assert_eq!(s.secret_access_key.as_str(), "s/k+1");
        assert_eq!(s.session_token.as_str(), "FQo&G");
        for bad in [
            &b"<AccessKeyId>A</AccessKeyId><SecretAccessKey>B</SecretAccessKey>"[..],
            b"<Credentials><AccessKeyId>A</AccessKeyId></Credentials>",
            b"<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>B</SecretAccessKey><SessionToken></SessionToken></Credentials>",
            b"<Credentials><AccessKeyId>A B</AccessKeyId><SecretAccessKey>B</SecretAccessKey><SessionToken>C</SessionToken></Credentials>",
            b"\xff\xfe",
            b"",
        ] {
            assert!(session_of(&answer(200, bad)).is_err());
        }
    }

    #[test]
    fn partitions() {
        assert_eq!(domain("eu-west-1"), "amazonaws.com");
        assert_eq!(domain("us-gov-west-1"), "amazonaws.com");
        assert_eq!(domain("cn-north-1"), "amazonaws.com.cn");
    }

    #[test]
    fn a_refused_endpoint_sends_nothing() {
        let http = Http::new(Duration::from_secs(2));
        let mut p = params(&[
            ("region", "eu-west-1"),
            ("access-key-id", "AKIAEXAMPLE"),
            ("endpoint", "http://192.0.2.1/"),
        ]);
        let secret = SecretString::from("s3cr3t".to_owned());
        let e = mint(
            "1.dkr.ecr.eu-west-1.amazonaws.com",
            &p,
            &secret,
            &http,
            SystemTime::now(),
        )
        .err()
        .unwrap();
        assert_eq!(e.endpoint, messages::SOURCE_SETTINGS);
        assert!(e.detail.ends_with(messages::URL_PLAIN_HTTP), "{e}");
        p.insert("role-arn".into(), "arn:aws:iam::1:role/r".into());
        let e = mint("r", &p, &secret, &http, SystemTime::now())
            .err()
            .unwrap();
        assert!(e.detail.ends_with(messages::URL_PLAIN_HTTP), "{e}");
        // Settings without a required value: one line, not a panic.
        p.remove("region");
        let e = mint("r", &p, &secret, &http, SystemTime::now())
            .err()
            .unwrap();
        assert!(e.detail.contains("--region"), "{e}");
        assert!(!e.to_string().contains("s3cr3t"));
    }
}
