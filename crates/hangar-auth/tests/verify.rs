//! Behaviour of `verify` and `parse`: time limits, scope checks, error order,
//! malformed input. Requests are signed with the crate's own primitives (their
//! correctness is established by tests/aws_suite.rs and tests/botocore.rs).

use std::cell::Cell;

use hangar_auth::{
    AuthError, EMPTY_SHA256_HEX, ParsedAuth, RequestParts, SecretKey, UriEncoding,
    canonical_request, chunk_string_to_sign, format_amz_date, parse, sign, signing_key,
    string_to_sign, verify,
};
use sha2::{Digest, Sha256};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const KEY: &str = "AKIAHANGARTEST000001";
const SECRET: &str = "hangar-test-secret/0123456789+abcdefghij";
const T0: OffsetDateTime = datetime!(2026-03-14 15:09:26 UTC);
const HOST: &str = "127.0.0.1:8773";
const BODY: &str = "Action=DescribeImages&Version=2016-11-15&ImageId.1=ami-1";

fn body_hash() -> String {
    hex::encode(Sha256::digest(BODY.as_bytes()))
}

/// An owned request that can be borrowed as `RequestParts`.
#[derive(Clone)]
struct Req {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    payload: Option<String>,
}

impl Req {
    fn with<R>(&self, f: impl FnOnce(&RequestParts<'_>) -> R) -> R {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        f(&RequestParts {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &headers,
            payload_sha256_hex: self.payload.as_deref(),
        })
    }

    fn header(&mut self, name: &str, value: &str) -> &mut Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn remove_header(&mut self, name: &str) -> &mut Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }
}

struct Scope<'a> {
    date: OffsetDateTime,
    scope_date: Option<&'a str>,
    region: &'a str,
    service: &'a str,
    key: &'a str,
    secret: &'a str,
    signed_headers: &'a [&'a str],
}

impl Default for Scope<'_> {
    fn default() -> Self {
        Self {
            date: T0,
            scope_date: None,
            region: "us-east-1",
            service: "ec2",
            key: KEY,
            secret: SECRET,
            signed_headers: &["content-type", "host", "x-amz-date"],
        }
    }
}

fn auth_for(s: &Scope<'_>, presigned: bool, expires: Option<u64>) -> ParsedAuth {
    let day = format_amz_date(s.date)[..8].to_owned();
    ParsedAuth {
        access_key_id: s.key.to_owned(),
        scope_date: s.scope_date.map_or(day, str::to_owned),
        region: s.region.to_owned(),
        service: s.service.to_owned(),
        signed_headers: s.signed_headers.iter().map(|h| (*h).to_owned()).collect(),
        signature: String::new(),
        amz_date: s.date,
        presigned,
        expires_secs: expires,
    }
}

fn signature(req: &Req, auth: &ParsedAuth, encoding: UriEncoding, secret: &str) -> String {
    let creq = req.with(|r| canonical_request(r, auth, encoding)).unwrap();
    let key = signing_key(
        &SecretKey::new(secret),
        &auth.scope_date,
        &auth.region,
        &auth.service,
    );
    sign(&key, &string_to_sign(auth, &creq))
}

/// An EC2 POST signed in the Authorization header.
fn header_signed(s: &Scope<'_>) -> Req {
    let mut req = Req {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: vec![
            ("Host".into(), HOST.into()),
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded; charset=utf-8".into(),
            ),
            ("X-Amz-Date".into(), format_amz_date(s.date)),
        ],
        payload: Some(body_hash()),
    };
    sign_header(&mut req, s, UriEncoding::Double);
    req
}

fn sign_header(req: &mut Req, s: &Scope<'_>, encoding: UriEncoding) {
    let auth = auth_for(s, false, None);
    let sig = signature(req, &auth, encoding, s.secret);
    req.remove_header("authorization");
    req.header(
        "Authorization",
        &format!(
            "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={sig}",
            s.key,
            auth.scope(),
            s.signed_headers.join(";")
        ),
    );
}

/// An EC2 GET presigned in the query string.
fn presigned(s: &Scope<'_>, expires: u64) -> Req {
    let auth = auth_for(s, true, Some(expires));
    let query = format!(
        "Action=DescribeImages&Version=2016-11-15&X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential={}%2F{}&X-Amz-Date={}&X-Amz-Expires={expires}\
         &X-Amz-SignedHeaders={}",
        s.key,
        auth.scope().replace('/', "%2F"),
        format_amz_date(s.date),
        s.signed_headers.join("%3B"),
    );
    let mut req = Req {
        method: "GET".into(),
        path: "/".into(),
        query,
        headers: vec![("Host".into(), HOST.into())],
        payload: Some(EMPTY_SHA256_HEX.into()),
    };
    let sig = signature(&req, &auth, UriEncoding::Double, s.secret);
    req.query.push_str(&format!("&X-Amz-Signature={sig}"));
    req
}

fn check(req: &Req, now: OffsetDateTime) -> Result<ParsedAuth, AuthError> {
    check_with(req, "ec2", UriEncoding::Double, now)
}

fn check_with(
    req: &Req,
    service: &str,
    encoding: UriEncoding,
    now: OffsetDateTime,
) -> Result<ParsedAuth, AuthError> {
    req.with(|r| {
        verify(
            r,
            service,
            encoding,
            now,
            &|region| region == "us-east-1" || region == "eu-west-1",
            &|id| (id == KEY).then(|| SecretKey::new(SECRET)),
        )
    })
}

fn expired(r: Result<ParsedAuth, AuthError>) -> bool {
    matches!(r, Err(AuthError::RequestExpired { .. }))
}

fn presigned_scope() -> Scope<'static> {
    Scope {
        signed_headers: &["host"],
        ..Scope::default()
    }
}

// ---------------------------------------------------------------- success

#[test]
fn header_and_presigned_requests_verify() {
    let auth = check(&header_signed(&Scope::default()), T0).unwrap();
    assert_eq!(auth.access_key_id, KEY);
    assert_eq!(auth.region, "us-east-1");
    assert_eq!(auth.service, "ec2");
    assert_eq!(auth.scope_date, "20260314");
    assert_eq!(auth.amz_date, T0);
    assert!(!auth.presigned);
    assert_eq!(auth.expires_secs, None);
    assert_eq!(auth.signed_headers, ["content-type", "host", "x-amz-date"]);

    let auth = check(&presigned(&presigned_scope(), 300), T0).unwrap();
    assert!(auth.presigned);
    assert_eq!(auth.expires_secs, Some(300));
    assert_eq!(auth.signed_headers, ["host"]);
}

// ---------------------------------------------------------------- clock skew

#[test]
fn header_skew_within_15_minutes_is_accepted_both_ways() {
    let req = header_signed(&Scope::default());
    for minutes in [-15, -14, -1, 0, 1, 14, 15] {
        check(&req, T0 + Duration::minutes(minutes))
            .unwrap_or_else(|e| panic!("now = T0 + {minutes} min: {e}"));
    }
}

#[test]
fn header_skew_over_15_minutes_is_request_expired_both_ways() {
    let req = header_signed(&Scope::default());
    // Request 16 minutes old.
    let err = check(&req, T0 + Duration::minutes(16)).unwrap_err();
    let AuthError::RequestExpired { detail } = &err else {
        panic!("{err:?}")
    };
    assert!(detail.contains("20260314T150926Z"), "{detail}");
    // Request 16 minutes in the future.
    assert!(expired(check(&req, T0 - Duration::minutes(16))));
    // Just past the limit.
    assert!(expired(check(
        &req,
        T0 + Duration::minutes(15) + Duration::seconds(1)
    )));
    assert!(expired(check(
        &req,
        T0 - Duration::minutes(15) - Duration::seconds(1)
    )));
}

#[test]
fn date_header_is_accepted_without_x_amz_date() {
    let mut req = header_signed(&Scope::default());
    req.remove_header("x-amz-date")
        .header("Date", "Sat, 14 Mar 2026 15:09:26 GMT");
    let s = Scope {
        signed_headers: &["content-type", "date", "host"],
        ..Scope::default()
    };
    sign_header(&mut req, &s, UriEncoding::Double);
    let auth = check(&req, T0 + Duration::minutes(3)).unwrap();
    assert_eq!(auth.amz_date, T0);
    assert!(expired(check(&req, T0 + Duration::minutes(16))));
}

// ---------------------------------------------------------------- presigned expiry

#[test]
fn presigned_expiry() {
    let req = presigned(&presigned_scope(), 300);
    check(&req, T0 + Duration::seconds(300)).unwrap();
    // Long after: beyond the 15 minute skew but within X-Amz-Expires is fine.
    let long = presigned(&presigned_scope(), 7 * 24 * 3600);
    check(&long, T0 + Duration::days(6)).unwrap();
    check(&long, T0 + Duration::days(7)).unwrap();
    assert!(expired(check(
        &long,
        T0 + Duration::days(7) + Duration::seconds(1)
    )));

    let err = check(&req, T0 + Duration::seconds(301)).unwrap_err();
    let AuthError::RequestExpired { detail } = &err else {
        panic!("{err:?}")
    };
    assert!(detail.contains("300"), "{detail}");
}

#[test]
fn presigned_in_the_future() {
    let req = presigned(&presigned_scope(), 3600);
    check(&req, T0 - Duration::minutes(14)).unwrap();
    assert!(expired(check(&req, T0 - Duration::minutes(16))));
}

#[test]
fn presigned_expires_must_be_1_to_604800() {
    for (expires, ok) in [(0, false), (1, true), (604_800, true), (604_801, false)] {
        let req = presigned(&presigned_scope(), expires);
        let got = check(&req, T0);
        if ok {
            got.unwrap();
        } else {
            assert!(
                matches!(got, Err(AuthError::IncompleteSignature(ref m)) if m.contains("X-Amz-Expires")),
                "{expires}: {got:?}"
            );
        }
    }
    let mut req = presigned(&presigned_scope(), 300);
    req.query = req.query.replace("X-Amz-Expires=300", "X-Amz-Expires=abc");
    assert!(matches!(
        check(&req, T0),
        Err(AuthError::IncompleteSignature(_))
    ));
    req.query = req.query.replace("&X-Amz-Expires=abc", "");
    assert!(matches!(
        check(&req, T0),
        Err(AuthError::IncompleteSignature(_))
    ));
}

// ---------------------------------------------------------------- scope

#[test]
fn wrong_service() {
    let s = Scope {
        service: "s3",
        ..Scope::default()
    };
    assert_eq!(
        check(&header_signed(&s), T0),
        Err(AuthError::WrongService {
            expected: "ec2".into(),
            got: "s3".into()
        })
    );
}

#[test]
fn region_not_allowed() {
    let s = Scope {
        region: "mars-north-1",
        ..Scope::default()
    };
    assert_eq!(
        check(&header_signed(&s), T0),
        Err(AuthError::UnknownRegion("mars-north-1".into()))
    );
    let s = Scope {
        region: "eu-west-1",
        ..Scope::default()
    };
    check(&header_signed(&s), T0).unwrap();
}

#[test]
fn unknown_access_key() {
    let s = Scope {
        key: "AKIAUNKNOWN",
        ..Scope::default()
    };
    assert_eq!(
        check(&header_signed(&s), T0),
        Err(AuthError::InvalidAccessKey("AKIAUNKNOWN".into()))
    );
}

#[test]
fn wrong_secret() {
    let s = Scope {
        secret: "some-other-secret",
        ..Scope::default()
    };
    assert_eq!(
        check(&header_signed(&s), T0),
        Err(AuthError::SignatureDoesNotMatch)
    );
}

#[test]
fn scope_date_must_be_the_request_day() {
    let s = Scope {
        scope_date: Some("20260313"),
        ..Scope::default()
    };
    assert!(matches!(
        check(&header_signed(&s), T0),
        Err(AuthError::MalformedDate(_))
    ));
    let s = Scope {
        scope_date: Some("20260313"),
        ..presigned_scope()
    };
    assert!(matches!(
        check(&presigned(&s, 60), T0),
        Err(AuthError::MalformedDate(_))
    ));
}

#[test]
fn malformed_or_missing_date() {
    let mut req = header_signed(&Scope::default());
    req.remove_header("x-amz-date")
        .header("X-Amz-Date", "2026-03-14T15:09:26Z");
    assert!(matches!(check(&req, T0), Err(AuthError::MalformedDate(_))));
    req.remove_header("x-amz-date")
        .header("Date", "yesterday at noon");
    assert!(matches!(check(&req, T0), Err(AuthError::MalformedDate(_))));
    req.remove_header("date");
    assert!(matches!(
        check(&req, T0),
        Err(AuthError::IncompleteSignature(m)) if m.contains("X-Amz-Date")
    ));
}

// ---------------------------------------------------------------- parse errors

#[test]
fn host_must_be_signed() {
    let s = Scope {
        signed_headers: &["content-type", "x-amz-date"],
        ..Scope::default()
    };
    // Sign by hand: canonical_request refuses to build without host.
    let req = header_signed(&Scope::default());
    let mut req = req.clone();
    req.remove_header("authorization").header(
        "Authorization",
        &format!(
            "AWS4-HMAC-SHA256 Credential={KEY}/20260314/us-east-1/ec2/aws4_request, \
             SignedHeaders={}, Signature={}",
            s.signed_headers.join(";"),
            "0".repeat(64)
        ),
    );
    assert!(matches!(
        check(&req, T0),
        Err(AuthError::IncompleteSignature(m)) if m.contains("Host")
    ));
    let auth = auth_for(&s, false, None);
    assert!(matches!(
        req.with(|r| canonical_request(r, &auth, UriEncoding::Double)),
        Err(AuthError::IncompleteSignature(_))
    ));

    let mut req = presigned(&presigned_scope(), 60);
    req.query = req
        .query
        .replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=x-foo");
    assert!(matches!(
        check(&req, T0),
        Err(AuthError::IncompleteSignature(_))
    ));
}

#[test]
fn missing_authentication() {
    let mut req = header_signed(&Scope::default());
    req.remove_header("authorization");
    assert_eq!(check(&req, T0), Err(AuthError::MissingAuthenticationToken));
    // A query with other X-Amz-* parameters but no X-Amz-Algorithm.
    req.query = "X-Amz-Signature=abc&X-Amz-Date=20260314T150926Z".into();
    assert_eq!(check(&req, T0), Err(AuthError::MissingAuthenticationToken));
}

#[test]
fn unsupported_algorithms() {
    let mut req = header_signed(&Scope::default());
    req.remove_header("authorization").header(
        "Authorization",
        "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",
    );
    assert_eq!(
        check(&req, T0),
        Err(AuthError::UnsupportedAlgorithm("AWS".into()))
    );
    req.remove_header("authorization").header(
        "Authorization",
        "AWS4-ECDSA-P256-SHA256 Credential=AKID/20260314/ec2/aws4_request, \
         SignedHeaders=host, Signature=00",
    );
    assert_eq!(
        check(&req, T0),
        Err(AuthError::UnsupportedAlgorithm(
            "AWS4-ECDSA-P256-SHA256".into()
        ))
    );
    let mut req = presigned(&presigned_scope(), 60);
    req.query = req.query.replace(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Algorithm=AWS4-HMAC-SHA512",
    );
    assert_eq!(
        check(&req, T0),
        Err(AuthError::UnsupportedAlgorithm("AWS4-HMAC-SHA512".into()))
    );
}

fn with_authorization(value: &str) -> Req {
    let mut req = header_signed(&Scope::default());
    req.remove_header("authorization")
        .header("Authorization", value);
    req
}

fn incomplete(req: &Req) -> String {
    match check(req, T0) {
        Err(AuthError::IncompleteSignature(m)) => m,
        other => panic!("expected IncompleteSignature, got {other:?}"),
    }
}

#[test]
fn incomplete_authorization_headers() {
    let cred = format!("Credential={KEY}/20260314/us-east-1/ec2/aws4_request");
    let sig = format!("Signature={}", "ab".repeat(32));
    let m = incomplete(&with_authorization(&format!(
        "AWS4-HMAC-SHA256 {cred}, SignedHeaders=host"
    )));
    assert!(m.contains("'Signature'"), "{m}");
    let m = incomplete(&with_authorization(&format!(
        "AWS4-HMAC-SHA256 SignedHeaders=host, {sig}"
    )));
    assert!(m.contains("'Credential'"), "{m}");
    let m = incomplete(&with_authorization(&format!(
        "AWS4-HMAC-SHA256 {cred}, {sig}"
    )));
    assert!(m.contains("'SignedHeaders'"), "{m}");
    let m = incomplete(&with_authorization("AWS4-HMAC-SHA256"));
    assert!(
        m.contains("'Credential'") && m.contains("'Signature'"),
        "{m}"
    );
    // Bad credential scopes.
    for bad in [
        format!("Credential={KEY}/20260314/us-east-1/ec2"),
        format!("Credential={KEY}/20260314/us-east-1/ec2/aws5_request"),
        format!("Credential={KEY}/20260314//ec2/aws4_request"),
        format!("Credential={KEY}/20260314/us-east-1/ec2/aws4_request/x"),
    ] {
        incomplete(&with_authorization(&format!(
            "AWS4-HMAC-SHA256 {bad}, SignedHeaders=host, {sig}"
        )));
    }
    // Garbage components, duplicates, empty header names.
    incomplete(&with_authorization(&format!(
        "AWS4-HMAC-SHA256 {cred}, SignedHeaders=host, {sig}, Foo"
    )));
    incomplete(&with_authorization(&format!(
        "AWS4-HMAC-SHA256 {cred}, SignedHeaders=host, {sig}, {sig}"
    )));
    incomplete(&with_authorization(&format!(
        "AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;;x-amz-date, {sig}"
    )));
    // Two Authorization headers.
    let mut req = header_signed(&Scope::default());
    req.header("authorization", "AWS4-HMAC-SHA256 x");
    incomplete(&req);
}

#[test]
fn authorization_header_parsing_is_lenient_about_spacing_and_order() {
    let req = header_signed(&Scope::default());
    let value = req
        .headers
        .iter()
        .find(|(n, _)| n == "Authorization")
        .unwrap()
        .1
        .clone();
    let (algo, rest) = value.split_once(' ').unwrap();
    let mut parts: Vec<&str> = rest.split(", ").collect();
    parts.reverse();
    for joined in [parts.join(","), parts.join(" ,  ")] {
        let mut req = req.clone();
        req.remove_header("authorization")
            .header("authorization", &format!("  {algo}   {joined} "));
        check(&req, T0).unwrap();
    }
}

#[test]
fn incomplete_presigned_queries() {
    let req = presigned(&presigned_scope(), 60);
    for param in [
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Expires",
    ] {
        let mut r = req.clone();
        r.query = r
            .query
            .split('&')
            .filter(|p| !p.starts_with(&format!("{param}=")))
            .collect::<Vec<_>>()
            .join("&");
        let m = incomplete(&r);
        assert!(m.contains("X-Amz-Expires"), "{param}: {m}");
    }
    // Duplicated parameter.
    let mut r = req.clone();
    r.query.push_str("&X-Amz-Date=20260314T150926Z");
    incomplete(&r);
    // Malformed date.
    let mut r = req.clone();
    r.query = r
        .query
        .replace("X-Amz-Date=20260314T150926Z", "X-Amz-Date=20260314");
    assert!(matches!(check(&r, T0), Err(AuthError::MalformedDate(_))));
}

#[test]
fn header_and_query_auth_together_are_refused() {
    let mut req = header_signed(&Scope::default());
    req.query = presigned(&presigned_scope(), 60).query;
    let m = incomplete(&req);
    assert!(m.contains("Only one auth mechanism"), "{m}");
}

// ---------------------------------------------------------------- check order

#[test]
fn checks_run_in_the_documented_order() {
    let calls = Cell::new(0);
    let run = |req: &Req, now: OffsetDateTime| {
        req.with(|r| {
            verify(
                r,
                "ec2",
                UriEncoding::Double,
                now,
                &|region| region == "us-east-1",
                &|id| {
                    calls.set(calls.get() + 1);
                    (id == KEY).then(|| SecretKey::new(SECRET))
                },
            )
        })
    };
    // Everything wrong at once: the scope date mismatch (2) wins over skew (3).
    let s = Scope {
        scope_date: Some("20200101"),
        service: "s3",
        region: "mars-north-1",
        key: "AKIAUNKNOWN",
        ..Scope::default()
    };
    let req = header_signed(&s);
    assert!(matches!(
        run(&req, T0 + Duration::hours(1)),
        Err(AuthError::MalformedDate(_))
    ));
    // Skew (3) before service (4).
    let s = Scope {
        service: "s3",
        region: "mars-north-1",
        key: "AKIAUNKNOWN",
        ..Scope::default()
    };
    assert!(expired(run(&header_signed(&s), T0 + Duration::hours(1))));
    // Service before region (4).
    assert!(matches!(
        run(&header_signed(&s), T0),
        Err(AuthError::WrongService { .. })
    ));
    // Region (4) before key lookup (5).
    let s = Scope {
        region: "mars-north-1",
        key: "AKIAUNKNOWN",
        ..Scope::default()
    };
    assert!(matches!(
        run(&header_signed(&s), T0),
        Err(AuthError::UnknownRegion(_))
    ));
    assert_eq!(calls.get(), 0, "lookup must not run before steps 1-4 pass");
    // Lookup (5) before the signature (6).
    let s = Scope {
        key: "AKIAUNKNOWN",
        secret: "whatever",
        ..Scope::default()
    };
    assert!(matches!(
        run(&header_signed(&s), T0),
        Err(AuthError::InvalidAccessKey(_))
    ));
    assert_eq!(calls.get(), 1);
}

// ---------------------------------------------------------------- payload hash

#[test]
fn payload_hash_sources() {
    // Header form without a payload hash from anywhere: refused.
    let mut req = header_signed(&Scope::default());
    req.payload = None;
    assert!(matches!(
        check(&req, T0),
        Err(AuthError::IncompleteSignature(_))
    ));

    // x-amz-content-sha256 values pass through as-is (S3).
    for declared in [
        "UNSIGNED-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    ] {
        let s = Scope {
            service: "s3",
            signed_headers: &["host", "x-amz-content-sha256", "x-amz-date"],
            ..Scope::default()
        };
        let mut req = Req {
            method: "PUT".into(),
            path: "/bucket/my%20key".into(),
            query: String::new(),
            headers: vec![
                ("host".into(), "s3.hangar.test".into()),
                ("x-amz-date".into(), format_amz_date(T0)),
                ("x-amz-content-sha256".into(), declared.into()),
            ],
            payload: None,
        };
        sign_header(&mut req, &s, UriEncoding::Single);
        let auth = req.with(parse).unwrap();
        let creq = req
            .with(|r| canonical_request(r, &auth, UriEncoding::Single))
            .unwrap();
        assert!(creq.ends_with(&format!("\n{declared}")), "{creq}");
        assert!(creq.contains("\n/bucket/my%20key\n"), "{creq}");
        check_with(&req, "s3", UriEncoding::Single, T0).unwrap();
        // The same request checked as a non-S3 service double-encodes the path.
        assert_eq!(
            check_with(&req, "s3", UriEncoding::Double, T0),
            Err(AuthError::SignatureDoesNotMatch)
        );
    }
}

#[test]
fn presigned_payload_hash_depends_on_encoding() {
    let s = presigned_scope();
    let req = presigned(&s, 60);
    let auth = req.with(parse).unwrap();
    let creq = |r: &Req, e| r.with(|p| canonical_request(p, &auth, e)).unwrap();
    assert!(creq(&req, UriEncoding::Double).ends_with(EMPTY_SHA256_HEX));
    assert!(creq(&req, UriEncoding::Single).ends_with("\nUNSIGNED-PAYLOAD"));
    let mut no_hash = req.clone();
    no_hash.payload = None;
    assert!(creq(&no_hash, UriEncoding::Double).ends_with(EMPTY_SHA256_HEX));
    check(&no_hash, T0).unwrap();
    // A presigned request with a body: the body hash is signed (botocore SigV4QueryAuth).
    let mut with_body = req.clone();
    with_body.payload = Some(body_hash());
    assert_eq!(check(&with_body, T0), Err(AuthError::SignatureDoesNotMatch));
    // The signature is not part of the canonical query.
    assert!(!creq(&req, UriEncoding::Double).contains("X-Amz-Signature"));
}

#[test]
fn tampering_with_signed_parts_is_detected() {
    let req = header_signed(&Scope::default());
    let mut r = req.clone();
    r.payload = Some(EMPTY_SHA256_HEX.into());
    assert_eq!(check(&r, T0), Err(AuthError::SignatureDoesNotMatch));
    let mut r = req.clone();
    r.remove_header("host").header("Host", "evil.example");
    assert_eq!(check(&r, T0), Err(AuthError::SignatureDoesNotMatch));
    let mut r = req.clone();
    r.query = "Action=TerminateInstances".into();
    assert_eq!(check(&r, T0), Err(AuthError::SignatureDoesNotMatch));
    let mut r = req.clone();
    r.path = "/x".into();
    assert_eq!(check(&r, T0), Err(AuthError::SignatureDoesNotMatch));
    // An unsigned header may be added or changed freely.
    let mut r = req.clone();
    r.header("User-Agent", "anything");
    check(&r, T0).unwrap();
    // Header name case and extra whitespace in values do not matter.
    let mut r = req.clone();
    for (n, v) in &mut r.headers {
        if n == "Content-Type" {
            *n = "CONTENT-TYPE".into();
            *v = format!("  {}  ", v.replace(' ', "   "));
        }
    }
    check(&r, T0).unwrap();
}

#[test]
fn signature_compare_is_exact() {
    let req = header_signed(&Scope::default());
    let value = req
        .headers
        .iter()
        .find(|(n, _)| n == "Authorization")
        .unwrap()
        .1
        .clone();
    let (head, sig) = value.rsplit_once('=').unwrap();
    for bad in [
        sig.to_uppercase(),
        sig[..63].to_owned(),
        format!("{sig}0"),
        String::from("0"),
    ] {
        let r = with_authorization(&format!("{head}={bad}"));
        assert_eq!(
            check(&r, T0),
            Err(AuthError::SignatureDoesNotMatch),
            "{bad}"
        );
    }
}

// ---------------------------------------------------------------- primitives

#[test]
fn signing_key_matches_aws_documentation() {
    // AWS General Reference, "Examples of how to derive a signing key for SigV4".
    let key = signing_key(
        &SecretKey::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        "20120215",
        "us-east-1",
        "iam",
    );
    assert_eq!(
        hex::encode(key),
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    );
}

#[test]
fn chunk_string_to_sign_matches_aws_s3_streaming_example() {
    // Amazon S3 "Signature Calculations for the Authorization Header:
    // Transferring Payload in Multiple Chunks": 65536 bytes of 'a' signed
    // after the seed signature.
    let chunk = vec![b'a'; 65536];
    let chunk_hash = hex::encode(Sha256::digest(&chunk));
    let sts = chunk_string_to_sign(
        "20130524T000000Z",
        "20130524/us-east-1/s3/aws4_request",
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        &chunk_hash,
    );
    assert_eq!(
        sts,
        "AWS4-HMAC-SHA256-PAYLOAD\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
         4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
         bf718b6f653bebc184e1479f1935b8da974d701b893afcf49e701f3e2f9f9c5a"
    );
    let key = signing_key(
        &SecretKey::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        "20130524",
        "us-east-1",
        "s3",
    );
    assert_eq!(
        sign(&key, &sts),
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
    );
}

#[test]
fn secret_key_debug_shows_no_secret() {
    let key = SecretKey::new(SECRET);
    let shown = format!("{key:?} {key} {:?}", vec![key.clone()]);
    assert!(
        !shown.contains(SECRET) && !shown.contains("hangar-test"),
        "{shown}"
    );
    assert!(shown.contains("<redacted>"));
    assert_eq!(key.expose(), SECRET);
    assert_eq!(key, SecretKey::new(SECRET));
    assert_ne!(key, SecretKey::new("other"));
}
