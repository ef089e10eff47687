//! botocore as an oracle: requests signed by botocore's SigV4 signers
//! (tests/gen_botocore_vectors.py -> tests/botocore_vectors.json) must verify,
//! with the same canonical request botocore built.

use hangar_auth::{
    AuthError, RequestParts, SecretKey, UriEncoding, canonical_request, parse, parse_amz_date,
    verify,
};
use serde_json::Value;
use time::Duration;

#[derive(Clone)]
struct Case {
    name: String,
    service: String,
    region: String,
    encoding: UriEncoding,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body_sha256: String,
    canonical_request: String,
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string '{key}'"))
        .to_owned()
}

fn load() -> (Value, Vec<Case>) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/botocore_vectors.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: s(c, "name"),
            service: s(c, "service"),
            region: s(c, "region"),
            encoding: match c["encoding"].as_str() {
                Some("double") => UriEncoding::Double,
                Some("single") => UriEncoding::Single,
                other => panic!("bad encoding {other:?}"),
            },
            method: s(c, "method"),
            path: s(c, "path"),
            query: s(c, "query"),
            headers: c["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_owned(),
                        h[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
            body_sha256: s(c, "body_sha256"),
            canonical_request: s(c, "canonical_request"),
        })
        .collect();
    (doc, cases)
}

fn check(
    case: &Case,
    query: &str,
    headers: &[(String, String)],
    secret: &str,
    access_key: &str,
    now: time::OffsetDateTime,
) -> Result<hangar_auth::ParsedAuth, AuthError> {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let req = RequestParts {
        method: &case.method,
        path: &case.path,
        query,
        headers: &headers,
        payload_sha256_hex: Some(&case.body_sha256),
    };
    let secret = secret.to_owned();
    let access_key = access_key.to_owned();
    verify(
        &req,
        &case.service,
        case.encoding,
        now,
        &|r| r == "us-east-1" || r == "eu-west-1",
        &move |id| (id == access_key).then(|| SecretKey::new(secret.clone())),
    )
}

/// Changes the last hex digit of the signature, wherever it is.
fn tamper(case: &Case) -> (String, Vec<(String, String)>) {
    let flip = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        let last = b.last_mut().unwrap();
        *last = if *last == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).unwrap()
    };
    let mut headers = case.headers.clone();
    let mut query = case.query.clone();
    if let Some(h) = headers
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
    {
        h.1 = flip(&h.1);
    } else {
        assert!(query.contains("X-Amz-Signature="), "{}", case.name);
        let (before, sig) = query.split_once("X-Amz-Signature=").unwrap();
        let (sig, after) = sig.split_once('&').map_or((sig, ""), |(a, b)| (a, b));
        query = format!(
            "{before}X-Amz-Signature={}{}{after}",
            flip(sig),
            if after.is_empty() { "" } else { "&" }
        );
    }
    (query, headers)
}

#[test]
fn botocore_signed_requests_verify() {
    let (doc, cases) = load();
    let key = s(&doc, "access_key_id");
    let secret = s(&doc, "secret_access_key");
    let signed_at = parse_amz_date(&s(&doc, "now")).unwrap();
    let now = signed_at + Duration::minutes(1);
    assert!(cases.len() >= 8);

    let mut presigned = 0;
    for case in &cases {
        let name = &case.name;
        let auth = check(case, &case.query, &case.headers, &secret, &key, now)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(auth.access_key_id, key);
        assert_eq!(auth.region, case.region, "{name}");
        assert_eq!(auth.service, case.service, "{name}");
        assert_eq!(auth.amz_date, signed_at, "{name}");
        presigned += usize::from(auth.presigned);

        // Same canonical request as botocore.
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let req = RequestParts {
            method: &case.method,
            path: &case.path,
            query: &case.query,
            headers: &headers,
            payload_sha256_hex: Some(&case.body_sha256),
        };
        let creq = canonical_request(&req, &parse(&req).unwrap(), case.encoding).unwrap();
        assert_eq!(creq, case.canonical_request, "{name}");

        // Tampered signature, wrong secret, wrong encoding (where it matters).
        let (q, h) = tamper(case);
        assert_eq!(
            check(case, &q, &h, &secret, &key, now),
            Err(AuthError::SignatureDoesNotMatch),
            "{name}: tampered"
        );
        assert_eq!(
            check(
                case,
                &case.query,
                &case.headers,
                "not-the-secret",
                &key,
                now
            ),
            Err(AuthError::SignatureDoesNotMatch),
            "{name}: wrong secret"
        );
        assert_eq!(
            check(case, &case.query, &case.headers, &secret, "AKIAOTHER", now),
            Err(AuthError::InvalidAccessKey(key.clone())),
            "{name}: unknown key"
        );
    }
    assert!(presigned >= 3);
}

#[test]
fn s3_paths_are_not_normalised_nor_double_encoded() {
    let (doc, cases) = load();
    let key = s(&doc, "access_key_id");
    let secret = s(&doc, "secret_access_key");
    let now = parse_amz_date(&s(&doc, "now")).unwrap();
    for name in [
        "s3-get-key-with-dot-segments",
        "s3-get-key-with-spaces-and-unicode",
    ] {
        let case = cases.iter().find(|c| c.name == name).unwrap();
        let double = Case {
            encoding: UriEncoding::Double,
            ..case.clone()
        };
        assert_eq!(
            check(&double, &case.query, &case.headers, &secret, &key, now),
            Err(AuthError::SignatureDoesNotMatch),
            "{name}"
        );
    }
}

#[test]
fn body_must_match_declared_content_sha256() {
    let (doc, cases) = load();
    let key = s(&doc, "access_key_id");
    let secret = s(&doc, "secret_access_key");
    let now = parse_amz_date(&s(&doc, "now")).unwrap();
    let case = cases
        .iter()
        .find(|c| c.name == "s3-put-signed-payload")
        .unwrap();
    let mut other = Case {
        body_sha256: hangar_auth::EMPTY_SHA256_HEX.to_owned(),
        ..case.clone()
    };
    assert_eq!(
        check(&other, &case.query, &case.headers, &secret, &key, now),
        Err(AuthError::SignatureDoesNotMatch)
    );
    other.body_sha256 = case.body_sha256.to_uppercase();
    check(&other, &case.query, &case.headers, &secret, &key, now).unwrap();
}

#[test]
fn ec2_body_is_covered_by_the_signature() {
    let (doc, cases) = load();
    let key = s(&doc, "access_key_id");
    let secret = s(&doc, "secret_access_key");
    let now = parse_amz_date(&s(&doc, "now")).unwrap();
    let case = cases
        .iter()
        .find(|c| c.name == "ec2-describe-images-post")
        .unwrap();
    let other = Case {
        body_sha256: hangar_auth::EMPTY_SHA256_HEX.to_owned(),
        ..case.clone()
    };
    assert_eq!(
        check(&other, &case.query, &case.headers, &secret, &key, now),
        Err(AuthError::SignatureDoesNotMatch)
    );
}
