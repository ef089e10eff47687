//! SigV4 signing of EC2 Query requests (`POST /` with a form body), built on
//! hangar-auth's pure functions: the canonical request is produced by the
//! same code the server verifies with, so a signature this client makes is
//! one the server accepts.

use anyhow::{Context, anyhow};
use bytes::Bytes;
use hangar_auth::{ParsedAuth, RequestParts, SecretKey, UriEncoding};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::Full;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// What botocore sends for EC2 Query requests.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The EC2 Query API version the server accepts.
pub const EC2_VERSION: &str = "2016-11-15";

/// One account's credentials.
#[derive(Clone)]
pub struct Credentials {
    pub account_id: String,
    pub access_key_id: String,
    pub secret: SecretKey,
}

/// Signs requests for one account, region and host. Caches the derived
/// signing key per day and service, as the AWS SDKs do.
#[derive(Clone)]
pub struct Signer {
    credentials: Credentials,
    region: String,
    host: String,
    cached_key: Option<(String, String, [u8; 32])>,
}

/// A signed request, ready to be sent any number of times while its date is
/// within the 15 minutes the server tolerates.
#[derive(Clone)]
pub struct Prepared {
    method: Method,
    uri: http::Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Prepared {
    /// A fresh `http::Request` carrying the signed headers and body. Cheap:
    /// the body and the header values are reference-counted.
    pub fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

impl Signer {
    pub fn new(credentials: Credentials, region: &str, host: &str) -> Self {
        Self {
            credentials,
            region: region.to_string(),
            host: host.to_string(),
            cached_key: None,
        }
    }

    pub fn account_id(&self) -> &str {
        &self.credentials.account_id
    }

    fn key_for(&mut self, scope_date: &str, service: &str) -> [u8; 32] {
        if let Some((date, cached_service, key)) = &self.cached_key
            && date == scope_date
            && cached_service == service
        {
            return *key;
        }
        let key =
            hangar_auth::signing_key(&self.credentials.secret, scope_date, &self.region, service);
        self.cached_key = Some((scope_date.to_string(), service.to_string(), key));
        key
    }

    /// Signs an EC2 Query request: `POST /` with `form` as the body.
    pub fn sign(
        &mut self,
        form: impl Into<Bytes>,
        now: OffsetDateTime,
    ) -> anyhow::Result<Prepared> {
        self.sign_request(
            &Method::POST,
            "/",
            "ec2",
            FORM_CONTENT_TYPE,
            &[],
            form.into(),
            now,
        )
    }

    /// Signs any request without a query string; `extra_headers` (lower-case
    /// names) are sent and signed along with content-type, host and
    /// x-amz-date.
    #[allow(clippy::too_many_arguments)]
    pub fn sign_request(
        &mut self,
        method: &Method,
        path: &str,
        service: &str,
        content_type: &str,
        extra_headers: &[(&str, &str)],
        body: Bytes,
        now: OffsetDateTime,
    ) -> anyhow::Result<Prepared> {
        self.sign_spec(
            &RequestSpec {
                method,
                path,
                query: "",
                service,
                content_type,
                extra_headers,
                payload_sha256_hex: None,
            },
            body,
            now,
        )
    }

    /// Signs any request. `spec.query` is the raw query string, sent as
    /// given (its values already percent-encoded); the signature covers its
    /// canonical form. When `spec.payload_sha256_hex` is given it must be
    /// the body's SHA-256 (saves hashing a large body twice).
    pub fn sign_spec(
        &mut self,
        spec: &RequestSpec<'_>,
        body: Bytes,
        now: OffsetDateTime,
    ) -> anyhow::Result<Prepared> {
        let amz_date = hangar_auth::format_amz_date(now);
        let scope_date = amz_date[..8].to_string();
        let payload_hash = match spec.payload_sha256_hex {
            Some(hash) => hash.to_string(),
            None => hex::encode(Sha256::digest(&body)),
        };
        let host = self.host.clone();
        let mut header_pairs: Vec<(&str, &str)> = vec![
            ("content-type", spec.content_type),
            ("host", host.as_str()),
            ("x-amz-date", amz_date.as_str()),
        ];
        header_pairs.extend_from_slice(spec.extra_headers);
        header_pairs.sort_by(|a, b| a.0.cmp(b.0));
        let signed_headers: Vec<String> = header_pairs
            .iter()
            .map(|(name, _)| (*name).to_string())
            .collect();
        let parts = RequestParts {
            method: spec.method.as_str(),
            path: spec.path,
            query: spec.query,
            headers: &header_pairs,
            payload_sha256_hex: Some(&payload_hash),
        };
        let mut auth = ParsedAuth {
            access_key_id: self.credentials.access_key_id.clone(),
            scope_date: scope_date.clone(),
            region: self.region.clone(),
            service: spec.service.into(),
            signed_headers,
            signature: String::new(),
            amz_date: hangar_auth::parse_amz_date(&amz_date)
                .ok_or_else(|| anyhow!("cannot reparse {amz_date}"))?,
            presigned: false,
            expires_secs: None,
        };
        let canonical = hangar_auth::canonical_request(&parts, &auth, UriEncoding::Double)
            .map_err(|error| anyhow!("canonical request: {error}"))?;
        let string_to_sign = hangar_auth::string_to_sign(&auth, &canonical);
        let key = self.key_for(&scope_date, spec.service);
        auth.signature = hangar_auth::sign(&key, &string_to_sign);
        let authorization = format!(
            "{} Credential={}/{}, SignedHeaders={}, Signature={}",
            hangar_auth::ALGORITHM,
            auth.access_key_id,
            auth.scope(),
            auth.signed_headers.join(";"),
            auth.signature
        );

        let mut headers = HeaderMap::with_capacity(header_pairs.len() + 1);
        for (name, value) in &header_pairs {
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).context("header name")?,
                HeaderValue::from_str(value).context("header value")?,
            );
        }
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&authorization)?);
        let uri = if spec.query.is_empty() {
            spec.path.to_string()
        } else {
            format!("{}?{}", spec.path, spec.query)
        };
        Ok(Prepared {
            method: spec.method.clone(),
            uri: uri.parse().context("request path")?,
            headers,
            body,
        })
    }
}

/// What [`Signer::sign_spec`] signs, besides the body.
pub struct RequestSpec<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    /// Raw query string (no `?`), values percent-encoded; "" for none.
    pub query: &'a str,
    pub service: &'a str,
    pub content_type: &'a str,
    /// Lower-case names, sent and signed.
    pub extra_headers: &'a [(&'a str, &'a str)],
    /// The body's SHA-256 in hex when the caller already has it.
    pub payload_sha256_hex: Option<&'a str>,
}

/// Percent-encodes a form value (AWS rule: only unreserved bytes kept).
pub fn encode(value: &str) -> String {
    hangar_auth::uri_encode(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signature made here verifies with hangar-auth's verifier, which is
    /// what the server runs.
    #[test]
    fn signatures_verify() {
        let credentials = Credentials {
            account_id: "111111111111".into(),
            access_key_id: "AKIAEXAMPLEALICE0001".into(),
            secret: SecretKey::new("alice-secret-key-0001"),
        };
        let mut signer = Signer::new(credentials.clone(), "us-east-1", "127.0.0.1:8773");
        let now = OffsetDateTime::now_utc();
        let form = "Action=DescribeImages&Version=2016-11-15&Owner.1=self";
        let prepared = signer.sign(form, now).unwrap();
        let request = prepared.request();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_string()))
            .collect();
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let hash = hex::encode(Sha256::digest(form.as_bytes()));
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &refs,
            payload_sha256_hex: Some(&hash),
        };
        let lookup =
            |key: &str| (key == "AKIAEXAMPLEALICE0001").then(|| credentials.secret.clone());
        let verified = hangar_auth::verify(
            &parts,
            "ec2",
            UriEncoding::Double,
            now,
            &|region| region == "us-east-1",
            &lookup,
        )
        .unwrap();
        assert_eq!(verified.access_key_id, "AKIAEXAMPLEALICE0001");
    }
}
