//! AWS Signature Version 4 verification as pure functions.
//!
//! No I/O, no async, no HTTP types: the caller hands over the parts of the
//! request it received ([`RequestParts`]), the current time, and two
//! callbacks (region allow-list and secret lookup), and gets back the parsed
//! authentication data or an [`AuthError`].
//!
//! The pieces are public so that callers (and tests) can reproduce each step:
//! [`parse`] -> [`canonical_request`] -> [`string_to_sign`] ->
//! [`signing_key`] -> [`sign`]; [`verify`] runs them all, in a fixed order.

mod canonical;
mod date;
mod error;
mod parse;
mod secret;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

pub use canonical::{EMPTY_SHA256_HEX, UNSIGNED_PAYLOAD, uri_encode};
pub use date::{format_amz_date, parse_amz_date, parse_http_date};
pub use error::AuthError;
pub use secret::SecretKey;

/// The only algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Algorithm line of the string to sign of an S3 streaming-upload chunk.
pub const CHUNK_ALGORITHM: &str = "AWS4-HMAC-SHA256-PAYLOAD";

/// Largest clock skew tolerated for header-signed requests, and how far in
/// the future a presigned URL's X-Amz-Date may lie.
pub const MAX_SKEW: Duration = Duration::minutes(15);

/// Longest validity of a presigned URL (7 days), in seconds.
pub const MAX_PRESIGN_EXPIRES_SECS: u64 = 604_800;

/// What the verifier needs from an HTTP request, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// Raw path as received, still percent-encoded, e.g. `/` or `/bucket/my%20key`.
    pub path: &'a str,
    /// Raw query string without `?`, possibly empty.
    pub query: &'a str,
    /// Header names in any case; repeated names allowed.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body when the caller computed it (EC2 always does).
    pub payload_sha256_hex: Option<&'a str>,
}

/// How the canonical URI is derived from the raw path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriEncoding {
    /// All services but S3: normalise the path, then encode it a second time.
    Double,
    /// S3: the path as received, no normalisation.
    Single,
}

/// Authentication data from the `Authorization` header or a presigned query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuth {
    /// Access key id from the credential scope.
    pub access_key_id: String,
    /// `YYYYMMDD` from the credential scope.
    pub scope_date: String,
    /// Region from the credential scope.
    pub region: String,
    /// Service from the credential scope.
    pub service: String,
    /// Signed header names, lower-cased, in the order the client listed them.
    pub signed_headers: Vec<String>,
    /// The signature the client sent (hex).
    pub signature: String,
    /// From `X-Amz-Date` (header or query), else from the `Date` header; UTC.
    pub amz_date: OffsetDateTime,
    /// True for presigned (query-string) authentication.
    pub presigned: bool,
    /// `X-Amz-Expires` of a presigned request.
    pub expires_secs: Option<u64>,
}

impl ParsedAuth {
    /// The credential scope `YYYYMMDD/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.scope_date, self.region, self.service
        )
    }
}

/// Parses the authentication data of a request.
///
/// * neither an `Authorization` header nor `X-Amz-Algorithm` in the query:
///   [`AuthError::MissingAuthenticationToken`];
/// * both: [`AuthError::IncompleteSignature`];
/// * an algorithm other than `AWS4-HMAC-SHA256` (e.g. SigV2 `AWS AKID:sig`):
///   [`AuthError::UnsupportedAlgorithm`];
/// * a part missing or malformed (including `host` absent from the signed
///   headers, or no date at all): [`AuthError::IncompleteSignature`];
/// * an unparsable date: [`AuthError::MalformedDate`].
///
/// The date comes from `X-Amz-Date` (query for presigned requests, else the
/// header), falling back to an RFC 1123 `Date` header for header-signed
/// requests. Parsing checks no time limits; [`verify`] does.
pub fn parse(req: &RequestParts<'_>) -> Result<ParsedAuth, AuthError> {
    parse::parse(req)
}

/// Builds the canonical request.
///
/// The payload hash line is the `x-amz-content-sha256` header when present
/// (`UNSIGNED-PAYLOAD`, `STREAMING-...` pass through as-is); otherwise, for
/// header-signed requests, `payload_sha256_hex` (an error if absent); for
/// presigned requests `UNSIGNED-PAYLOAD` with [`UriEncoding::Single`] (S3),
/// and `payload_sha256_hex` or the hash of the empty body with
/// [`UriEncoding::Double`] (what botocore's `SigV4QueryAuth` signs).
pub fn canonical_request(
    req: &RequestParts<'_>,
    auth: &ParsedAuth,
    encoding: UriEncoding,
) -> Result<String, AuthError> {
    canonical::build(req, auth, encoding)
}

/// `AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex sha256(canonical request)>`.
pub fn string_to_sign(auth: &ParsedAuth, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        format_amz_date(auth.amz_date),
        auth.scope(),
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Derives the SigV4 signing key:
/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &SecretKey, scope_date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut seed = Zeroizing::new(Vec::with_capacity(4 + secret.expose().len()));
    seed.extend_from_slice(b"AWS4");
    seed.extend_from_slice(secret.expose().as_bytes());
    let k_date = Zeroizing::new(hmac_sha256(&seed, scope_date.as_bytes()));
    let k_region = Zeroizing::new(hmac_sha256(&*k_date, region.as_bytes()));
    let k_service = Zeroizing::new(hmac_sha256(&*k_region, service.as_bytes()));
    hmac_sha256(&*k_service, b"aws4_request")
}

/// Hex HMAC-SHA256 of the string to sign.
pub fn sign(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// String to sign of one chunk of an S3 streaming upload
/// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`):
/// `AWS4-HMAC-SHA256-PAYLOAD\n<amz date>\n<scope>\n<previous signature>\n<hex sha256("")>\n<chunk hash>`.
/// The first chunk's previous signature is the seed signature of the request.
pub fn chunk_string_to_sign(
    amz_date: &str,
    scope: &str,
    previous_signature: &str,
    chunk_sha256_hex: &str,
) -> String {
    format!(
        "{CHUNK_ALGORITHM}\n{amz_date}\n{scope}\n{previous_signature}\n{EMPTY_SHA256_HEX}\n{chunk_sha256_hex}"
    )
}

/// Verifies a SigV4-signed request. Checks, in this order:
///
/// 1. [`parse`];
/// 2. the credential scope date equals the day of the request date
///    ([`AuthError::MalformedDate`]);
/// 3. time: header-signed requests more than 15 minutes off `now` either way
///    are [`AuthError::RequestExpired`]; presigned requests need
///    `X-Amz-Expires` in `1..=604800` ([`AuthError::IncompleteSignature`]),
///    expire when `now > date + expires`, and are refused when the date is
///    more than 15 minutes in the future;
/// 4. the scope's service equals `expected_service`
///    ([`AuthError::WrongService`]) and `region_allowed(region)`
///    ([`AuthError::UnknownRegion`]);
/// 5. `lookup(access_key_id)`; `None` is [`AuthError::InvalidAccessKey`];
/// 6. constant-time comparison of the signatures
///    ([`AuthError::SignatureDoesNotMatch`]). A request whose signed
///    `x-amz-content-sha256` is a hex digest that differs from
///    `payload_sha256_hex` also fails here: the signature would not cover the
///    body actually received.
pub fn verify(
    req: &RequestParts<'_>,
    expected_service: &str,
    encoding: UriEncoding,
    now: OffsetDateTime,
    region_allowed: &dyn Fn(&str) -> bool,
    lookup: &dyn Fn(&str) -> Option<SecretKey>,
) -> Result<ParsedAuth, AuthError> {
    // (1)
    let auth = parse(req)?;

    // (2)
    let request_day = date::format_scope_date(auth.amz_date);
    if auth.scope_date != request_day {
        return Err(AuthError::MalformedDate(format!(
            "Invalid credential date '{}': it must be the day of the request date {} ({request_day})",
            auth.scope_date,
            format_amz_date(auth.amz_date),
        )));
    }

    // (3)
    check_time(&auth, now)?;

    // (4)
    if auth.service != expected_service {
        return Err(AuthError::WrongService {
            expected: expected_service.to_owned(),
            got: auth.service.clone(),
        });
    }
    if !region_allowed(&auth.region) {
        return Err(AuthError::UnknownRegion(auth.region.clone()));
    }

    // (5)
    let secret = lookup(&auth.access_key_id)
        .ok_or_else(|| AuthError::InvalidAccessKey(auth.access_key_id.clone()))?;

    // (6)
    let creq = canonical_request(req, &auth, encoding)?;
    let sts = string_to_sign(&auth, &creq);
    let key = Zeroizing::new(signing_key(
        &secret,
        &auth.scope_date,
        &auth.region,
        &auth.service,
    ));
    let expected = sign(&key, &sts);
    let signature_ok: bool = expected.as_bytes().ct_eq(auth.signature.as_bytes()).into();
    if !signature_ok || !body_hash_consistent(req) {
        return Err(AuthError::SignatureDoesNotMatch);
    }
    Ok(auth)
}

fn check_time(auth: &ParsedAuth, now: OffsetDateTime) -> Result<(), AuthError> {
    let date = auth.amz_date;
    let fmt = format_amz_date;
    let shifted = |by: Duration| now.checked_add(by).map_or_else(|| fmt(now), fmt);
    // `OffsetDateTime - OffsetDateTime` cannot overflow, unlike adding durations.
    let ahead = date - now;
    if ahead > MAX_SKEW {
        return Err(AuthError::RequestExpired {
            detail: format!(
                "Signature not yet current: {} is still later than {} ({} + 15 min.)",
                fmt(date),
                shifted(MAX_SKEW),
                fmt(now)
            ),
        });
    }
    if !auth.presigned {
        if ahead < -MAX_SKEW {
            return Err(AuthError::RequestExpired {
                detail: format!(
                    "Signature expired: {} is now earlier than {} ({} - 15 min.)",
                    fmt(date),
                    shifted(-MAX_SKEW),
                    fmt(now)
                ),
            });
        }
        return Ok(());
    }
    let expires = auth.expires_secs.unwrap_or(0);
    if !(1..=MAX_PRESIGN_EXPIRES_SECS).contains(&expires) {
        return Err(AuthError::IncompleteSignature(format!(
            "X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES_SECS} seconds, not {expires}"
        )));
    }
    let validity = Duration::seconds(i64::try_from(expires).unwrap_or(i64::MAX));
    if -ahead > validity {
        return Err(AuthError::RequestExpired {
            detail: format!(
                "Request has expired: X-Amz-Date {} + X-Amz-Expires {expires}s is earlier than {}",
                fmt(date),
                fmt(now)
            ),
        });
    }
    Ok(())
}

/// False when the client declared a hex body hash in `x-amz-content-sha256`
/// and the caller computed a different one.
fn body_hash_consistent(req: &RequestParts<'_>) -> bool {
    let declared = canonical::header_values(req.headers, "x-amz-content-sha256").next();
    match (declared.map(str::trim), req.payload_sha256_hex) {
        (Some(d), Some(actual)) if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
            d.eq_ignore_ascii_case(actual)
        }
        _ => true,
    }
}
