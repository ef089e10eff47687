//! The S3 slice on the wire, built on the `s3s` protocol crate.
//!
//! `s3s` parses each request into one typed input per operation, verifies
//! SigV4 (through [`auth::AccountAuth`], which looks secrets up in the
//! configured accounts) and writes replies and errors in S3's XML shapes.
//! [`ops::HangarS3`] implements its `S3` trait: it establishes the caller,
//! converts the typed input into the domain's, calls `hangar-core`, and
//! converts back. Operations it does not implement keep `s3s`'s
//! `NotImplemented`.
//!
//! Addressing is path-style only: no `S3Host` is configured, so the bucket
//! is always the first path segment, whatever the `Host` header says.
//!
//! Dev mode (no accounts configured): no secret is known, so nothing can be
//! verified. [`Gateway::handle`] reads the access key and region from the
//! `Authorization` header (or presigned query) as `hangar-auth` parses them,
//! removes the signature so `s3s` sees an unsigned request, and hands the
//! caller to the operations in the request's extensions. A request without
//! any signature stays anonymous and is refused with `AccessDenied`.

pub mod auth;
mod chunked;
pub mod embedded;
mod error;
pub mod ops;
mod pump;

use std::sync::Arc;

use bytes::Bytes;
use hangar_auth::{AuthError, RequestParts, SecretKey};
use hangar_blocks::objects::ObjectFiles;
use hangar_core::{Caller, Hangar};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Error, S3ErrorCode};

pub use s3s::Body;

/// One configured account, as the S3 layer needs it.
pub struct S3Account {
    pub account_id: String,
    pub access_key_id: String,
    pub secret: SecretKey,
}

/// How callers are established.
pub enum Mode {
    /// SigV4 verified against these accounts.
    Strict(Vec<S3Account>),
    /// Nothing verified; the access key names the account when it is a
    /// 12-digit ID, else `default_account` is used.
    Dev { default_account: String },
}

/// Marks a request that arrived over TLS: the server inserts it into the
/// request's extensions, and bucket policies read it as
/// `aws:SecureTransport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecureTransport;

/// The caller dev mode read from an unverified signature.
#[derive(Debug, Clone)]
pub(crate) struct DevCaller(pub Caller);

/// What the server calls: one per process.
pub struct Gateway {
    service: S3Service,
    dev_default_account: Option<String>,
    regions: Vec<String>,
    /// Set when the deployment keeps its buckets in an external S3 store
    /// (`[buckets] backend = "external"`): every request is refused, naming
    /// the store (see [`Gateway::refuse_for_external_store`]).
    external_store: Option<String>,
}

/// Query parameters of a presigned URL, removed in dev mode.
const PRESIGN_PARAMETERS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

impl Gateway {
    pub fn new(hangar: Arc<Hangar>, files: ObjectFiles, mode: Mode, regions: Vec<String>) -> Self {
        let (accounts, dev_default_account) = match mode {
            Mode::Strict(accounts) => (accounts, None),
            Mode::Dev { default_account } => (Vec::new(), Some(default_account)),
        };
        let dev_mode = dev_default_account.is_some();
        let s3 = ops::HangarS3::new(hangar, files, &accounts, regions.clone(), dev_mode);
        let mut builder = S3ServiceBuilder::new(s3);
        if !dev_mode {
            builder.set_auth(auth::AccountAuth::new(accounts));
            // Unsigned requests reach the operations, which decide (bucket
            // policies can make a bucket public).
            builder.set_access(ops::OperationsDecide);
        }
        // The domain owns the bucket name rules: let every name through the
        // path parser so that `hangar-core` gives the one answer.
        builder.set_validation(ops::AnyBucketName);
        Self {
            service: builder.build(),
            dev_default_account,
            regions,
            external_store: None,
        }
    }

    /// Refuses every S3 request with `NotImplemented` (501), naming
    /// `store`: with external buckets the embedded ones are not served,
    /// because their object files live on one node while several nodes
    /// answer the endpoint; clients use the external store directly.
    pub fn refuse_for_external_store(mut self, store: String) -> Self {
        self.external_store = Some(store);
        self
    }

    /// Serves one S3 request.
    pub async fn handle<B>(&self, request: Request<B>, request_id: &str) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = request.into_parts();
        let (body, requested) = request_body(&parts, body);
        let mut response = self.handle_parts(parts, body, request_id).await;
        if requested.is_some_and(|requested| !requested.get()) {
            // Answered without asking for the body: the client may or may
            // not send it now, so the connection cannot be reused (pump.rs).
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    async fn handle_parts(
        &self,
        mut parts: http::request::Parts,
        body: Body,
        request_id: &str,
    ) -> Response<Body> {
        if let Some(store) = &self.external_store {
            // Dropped through the pump: a small body is drained, so the
            // client reads the error rather than a reset.
            drop(body);
            return error_response(
                S3Error::with_message(
                    S3ErrorCode::NotImplemented,
                    format!(
                        "This deployment keeps its buckets in an external S3 store ({store}); use it directly"
                    ),
                ),
                request_id,
            );
        }
        if let Some(default_account) = &self.dev_default_account {
            match self.dev_caller(&parts, default_account) {
                Ok(Some(caller)) => {
                    strip_signature(&mut parts);
                    parts.extensions.insert(DevCaller(caller));
                    if let Some(decoded_length) = dev_chunked_length(&parts) {
                        let trailers = ops::DevTrailers::default();
                        let decoded =
                            chunked::DecodedBody::new(body, decoded_length, trailers.0.clone());
                        unchunk_headers(&mut parts, decoded_length);
                        parts.extensions.insert(trailers);
                        let stream: s3s::stream::DynByteStream = Box::pin(decoded);
                        let request = Request::from_parts(parts, Body::from(stream));
                        return self.serve(request, request_id).await;
                    }
                }
                Ok(None) => {}
                Err(error) => return error_response(error, request_id),
            }
        }
        let request = Request::from_parts(parts, body);
        self.serve(request, request_id).await
    }

    async fn serve(&self, request: Request<Body>, request_id: &str) -> Response<Body> {
        let mut response = match self.service.call(request).await {
            Ok(response) => response,
            Err(error) => {
                tracing::error!(request_id, ?error, "s3 request failed");
                return error_response(
                    S3Error::with_message(
                        S3ErrorCode::InternalError,
                        "We encountered an internal error. Please try again.",
                    ),
                    request_id,
                );
            }
        };
        set_request_id(&mut response, request_id);
        response
    }

    /// Dev mode: the caller named by the (unverified) signature, `None` for
    /// an unsigned request.
    fn dev_caller(
        &self,
        parts: &http::request::Parts,
        default_account: &str,
    ) -> Result<Option<Caller>, S3Error> {
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let header_refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let request_parts = RequestParts {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &header_refs,
            payload_sha256_hex: None,
        };
        let parsed = match hangar_auth::parse(&request_parts) {
            Ok(parsed) => parsed,
            Err(AuthError::MissingAuthenticationToken) => return Ok(None),
            Err(error) => {
                return Err(S3Error::with_message(
                    S3ErrorCode::AuthorizationHeaderMalformed,
                    error.to_string(),
                ));
            }
        };
        if parsed.service != "s3" {
            return Err(S3Error::with_message(
                S3ErrorCode::AuthorizationHeaderMalformed,
                format!(
                    "The authorization header is malformed; the service '{}' is wrong; expecting 's3'",
                    parsed.service
                ),
            ));
        }
        if !self.regions.iter().any(|region| region == &parsed.region) {
            return Err(error::unknown_region(&parsed.region));
        }
        let account_id = if hangar_core::ids::is_account_id(&parsed.access_key_id) {
            parsed.access_key_id
        } else {
            default_account.to_owned()
        };
        Ok(Some(Caller {
            account_id,
            region: parsed.region,
        }))
    }
}

/// The request's body for `s3s`: through the pump (see [`pump`]) when the
/// request has one.
fn request_body<B>(parts: &http::request::Parts, body: B) -> (Body, Option<pump::Requested>)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let length: Option<u64> = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok());
    let chunked = parts.headers.contains_key(http::header::TRANSFER_ENCODING);
    let body = Body::http_body_unsync(body);
    let expect_continue = parts
        .headers
        .get(http::header::EXPECT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("100-continue"));
    if length.is_some_and(|length| length > 0) || chunked {
        pump::pumped(body, length, expect_continue)
    } else {
        (body, None)
    }
}

/// Dev mode: the decoded length of an `aws-chunked` body (which `s3s` only
/// decodes for requests it verifies), `None` for any other body.
fn dev_chunked_length(parts: &http::request::Parts) -> Option<usize> {
    let streaming = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("STREAMING-"));
    if !streaming {
        return None;
    }
    parts
        .headers
        .get("x-amz-decoded-content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

/// Dev mode: headers of a decoded `aws-chunked` request, as if the body
/// had been sent plain.
fn unchunk_headers(parts: &mut http::request::Parts, decoded_length: usize) {
    let headers = &mut parts.headers;
    headers.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static("UNSIGNED-PAYLOAD"),
    );
    headers.insert(
        http::header::CONTENT_LENGTH,
        HeaderValue::from(decoded_length),
    );
    headers.remove(http::header::TRANSFER_ENCODING);
    let encoding: Option<String> = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(',')
                .map(str::trim)
                .filter(|token| !token.eq_ignore_ascii_case("aws-chunked") && !token.is_empty())
                .collect::<Vec<_>>()
                .join(", ")
        });
    match encoding {
        Some(rest) if !rest.is_empty() => {
            if let Ok(value) = HeaderValue::from_str(&rest) {
                headers.insert(http::header::CONTENT_ENCODING, value);
            }
        }
        _ => {
            headers.remove(http::header::CONTENT_ENCODING);
        }
    }
}

/// Removes the `Authorization` header and presigned-URL parameters, so that
/// `s3s` (which has no secrets in dev mode) sees an unsigned request.
fn strip_signature(parts: &mut http::request::Parts) {
    parts.headers.remove(http::header::AUTHORIZATION);
    let Some(query) = parts.uri.query() else {
        return;
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            !PRESIGN_PARAMETERS
                .iter()
                .any(|parameter| parameter.eq_ignore_ascii_case(name))
        })
        .collect();
    let path_and_query = if kept.is_empty() {
        parts.uri.path().to_owned()
    } else {
        format!("{}?{}", parts.uri.path(), kept.join("&"))
    };
    if let Ok(uri) = Uri::builder().path_and_query(path_and_query).build() {
        parts.uri = uri;
    }
}

fn set_request_id(response: &mut Response<Body>, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amz-request-id", value);
    }
}

/// An error rendered in S3's XML shape, outside an operation.
fn error_response(mut error: S3Error, request_id: &str) -> Response<Body> {
    error.set_request_id(request_id);
    let mut response = match error.to_http_response() {
        Ok(response) => response,
        Err(_) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    };
    set_request_id(&mut response, request_id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_mode_strips_presigned_parameters_only() {
        let request = Request::builder()
            .uri("/bucket?location&X-Amz-Signature=abc&X-Amz-Credential=k%2Fx&prefix=a")
            .header("authorization", "AWS4-HMAC-SHA256 ...")
            .body(())
            .expect("request");
        let (mut parts, ()) = request.into_parts();
        strip_signature(&mut parts);
        assert_eq!(parts.uri.to_string(), "/bucket?location&prefix=a");
        assert!(parts.headers.get("authorization").is_none());
    }
}
