//! AWS Signature Version 4 for the two calls the `aws-ecr` source makes (STS
//! `AssumeRole` and ECR `GetAuthorizationToken`), written out by hand from AWS's
//! specification ("Create a signed AWS API request", docs.aws.amazon.com/IAM) rather
//! than by linking the AWS SDK. Checked in the tests below against the `aws-sigv4`
//! crate (a dev-dependency only) on 30 requests, and against the POST cases of AWS's
//! signature test suite that crate ships.
//!
//! Only what these calls need: a `POST` to the path `/` with no query, the headers
//! given (all signed) and a body; the signature goes in `Authorization`. The signing
//! key and every intermediate HMAC are wiped when dropped.
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// The credentials a request is signed with.
pub struct Credentials<'a> {
    /// `AKIA…` (long-lived) or `ASIA…` (a session's).
    pub access_key_id: &'a str,
    /// The secret access key.
    pub secret_access_key: &'a str,
    /// A session's token (after `AssumeRole`), sent as `X-Amz-Security-Token`.
    pub session_token: Option<&'a str>,
}

/// What is signed of a request.
pub struct Request<'a> {
    /// `POST`.
    pub method: &'a str,
    /// The `Host` header as sent (`api.ecr.eu-west-1.amazonaws.com`, `127.0.0.1:5000`).
    pub host: &'a str,
    /// The path, `/` for these APIs (it is signed as given: no characters to encode).
    pub path: &'a str,
    /// The other headers sent, every one signed (names in any case).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// The headers to add to `request` so AWS accepts it for `service` in `region` at
/// `time`: `X-Amz-Date`, `X-Amz-Security-Token` with a session, and `Authorization`.
/// The values are wiped when dropped (the session token is a credential).
pub fn sign(
    request: &Request<'_>,
    credentials: &Credentials<'_>,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Vec<(&'static str, Zeroizing<String>)> {
    let (date, stamp) = amz_date(time);
    let mut added: Vec<(&'static str, Zeroizing<String>)> =
        vec![("X-Amz-Date", Zeroizing::new(stamp.clone()))];
    if let Some(token) = credentials.session_token {
        added.push(("X-Amz-Security-Token", Zeroizing::new(token.to_owned())));
    }
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), canonical_value(v)))
        .chain([("host".to_owned(), canonical_value(request.host))])
        .chain(
            added
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), canonical_value(v))),
        )
        .collect();
    headers.sort();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let mut canonical = Zeroizing::new(format!("{}\n{}\n\n", request.method, request.path));
    for (k, v) in &headers {
        canonical.push_str(k);
        canonical.push(':');
        canonical.push_str(v);
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed);
    canonical.push('\n');
    canonical.push_str(&hex(&Sha256::digest(request.body)));
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(credentials.secret_access_key, &date, region, service);
    let signature = hex(&hmac(&key, to_sign.as_bytes()));
    added.push((
        "Authorization",
        Zeroizing::new(format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            credentials.access_key_id
        )),
    ));
    added
}

/// The signing key: the secret, then the date, region, service and `aws4_request`,
/// each an HMAC-SHA256 keyed by the one before.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Zeroizing<Vec<u8>> {
    let first = Zeroizing::new(format!("AWS4{secret}"));
    let mut key = hmac(first.as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    key
}

fn hmac(key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    Zeroizing::new(mac.finalize().into_bytes().to_vec())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A header value as signed: trimmed, runs of spaces made one.
fn canonical_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `time` as SigV4's date (`20261206`) and time stamp (`20261206T205300Z`).
pub fn amz_date(time: SystemTime) -> (String, String) {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days);
    let date = format!("{y:04}{m:02}{d:02}");
    let stamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    (date, stamp)
}

/// Days since 1970-01-01 as a proleptic Gregorian (year, month, day): Howard
/// Hinnant's `civil_from_days`.
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The `Authorization` (and token) headers the `aws-sigv4` crate makes for the
    /// same request: the oracle.
    fn oracle(
        request: &Request<'_>,
        credentials: &Credentials<'_>,
        region: &str,
        service: &str,
        time: SystemTime,
    ) -> Vec<(String, String)> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let identity = aws_smithy_runtime_api::client::identity::Identity::from(
            aws_credential_types::Credentials::new(
                credentials.access_key_id,
                credentials.secret_access_key,
                credentials.session_token.map(str::to_owned),
                None,
                "test",
            ),
        );
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let scheme = if request.host.starts_with("127.") {
            "http"
        } else {
            "https"
        };
        let url = format!("{scheme}://{}{}", request.host, request.path);
        let headers = request
            .headers
            .iter()
            .copied()
            .chain([("host", request.host)]);
        let signable = SignableRequest::new(
            request.method,
            url,
            headers,
            SignableBody::Bytes(request.body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut out: Vec<(String, String)> = instructions
            .headers()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect();
        out.sort();
        out
    }

    fn ours(
        request: &Request<'_>,
        credentials: &Credentials<'_>,
        region: &str,
        service: &str,
        time: SystemTime,
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = sign(request, credentials, region, service, time)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn signatures_match_the_aws_sigv4_crate() {
        let long = Credentials {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token: None,
        };
        let session = Credentials {
            access_key_id: "ASIAEXAMPLE0000000",
            secret_access_key: "a/b+c=d",
            session_token: Some("FwoGZXIvYXdzEJr//////////wEaDO+token/with=odd+chars"),
        };
        let ecr_headers = [
            (
                "X-Amz-Target",
                "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
            ),
            ("Content-Type", "application/x-amz-json-1.1"),
        ];
        let sts_headers = [("Content-Type", "application/x-www-form-urlencoded")];
        let sts_body = b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fci&RoleSessionName=lockbox-1";
        /// Host, headers, body, region, service.
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            &'a [u8],
            &'a str,
            &'a str,
        );
        let cases: [Case<'_>; 5] = [
            (
                "api.ecr.eu-west-1.amazonaws.com",
                &ecr_headers,
                b"{}",
                "eu-west-1",
                "ecr",
            ),
            (
                "api.ecr.us-east-1.amazonaws.com",
                &ecr_headers,
                b"{}",
                "us-east-1",
                "ecr",
            ),
            (
                "127.0.0.1:5000",
                &ecr_headers,
                b"{}",
                "ap-southeast-2",
                "ecr",
            ),
            (
                "sts.eu-west-1.amazonaws.com",
                &sts_headers,
                sts_body,
                "eu-west-1",
                "sts",
            ),
            ("sts.amazonaws.com", &sts_headers, b"", "us-east-1", "sts"),
        ];
        let times = [
            UNIX_EPOCH + Duration::from_secs(1_440_938_160), // 2015-08-30T12:36:00Z, the suite's
            UNIX_EPOCH + Duration::from_secs(1_798_761_599), // 2026-12-31T23:59:59Z
            UNIX_EPOCH + Duration::from_secs(1_709_164_800), // 2024-02-29T00:00:00Z
        ];
        let mut compared = 0;
        for (host, headers, body, region, service) in cases {
            for credentials in [&long, &session] {
                for time in times {
                    let request = Request {
                        method: "POST",
                        host,
                        path: "/",
                        headers,
                        body,
                    };
                    let want = oracle(&request, credentials, region, service, time);
                    let got = ours(&request, credentials, region, service, time);
                    assert_eq!(got, want, "{host} {service} {time:?}");
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 30);
    }

    #[test]
    fn the_aws_signature_test_suites_post_cases() {
        // Cases of AWS's SigV4 test suite (as the aws-sigv4 crate ships it,
        // aws-signing-test-suite/v4/<case>/header-signed-request.txt): POST to `/` of
        // example.amazonaws.com, us-east-1, service `service`, 2015-08-30T12:36:00Z.
        let long = Credentials {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token: None,
        };
        let token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
        let session = Credentials {
            session_token: Some(token),
            ..long
        };
        let time = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        let scope = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
        /// The case's name, credentials, extra headers, signed headers, signature.
        type Case<'a> = (
            &'a str,
            &'a Credentials<'a>,
            &'a [(&'a str, &'a str)],
            &'a str,
            &'a str,
        );
        let cases: [Case<'_>; 3] = [
            (
                "post-vanilla",
                &long,
                &[],
                "host;x-amz-date",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
            (
                "post-header-value-case",
                &long,
                &[("My-Header1", "VALUE1")],
                "host;my-header1;x-amz-date",
                "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
            ),
            (
                "post-sts-header-before",
                &session,
                &[],
                "host;x-amz-date;x-amz-security-token",
                "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
            ),
        ];
        for (case, credentials, headers, signed, signature) in cases {
            let request = Request {
                method: "POST",
                host: "example.amazonaws.com",
                path: "/",
                headers,
                body: b"",
            };
            let added = sign(&request, credentials, "us-east-1", "service", time);
            let authorization = added
                .iter()
                .find(|(k, _)| *k == "Authorization")
                .map(|(_, v)| v.as_str())
                .unwrap();
            assert_eq!(
                authorization,
                format!(
                    "AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={signed}, Signature={signature}"
                ),
                "{case}"
            );
        }
    }

    #[test]
    fn the_suites_example_key_and_dates() {
        // The signing key of AWS's documented example ("Derive a signing key").
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        assert_eq!(
            amz_date(UNIX_EPOCH + Duration::from_secs(1_440_938_160)),
            ("20150830".into(), "20150830T123600Z".into())
        );
        assert_eq!(
            amz_date(UNIX_EPOCH),
            ("19700101".into(), "19700101T000000Z".into())
        );
        assert_eq!(
            amz_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            ("20000229".into(), "20000229T000000Z".into())
        );
    }
}
