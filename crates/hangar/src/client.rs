//! A small EC2 client for the client commands: one HTTP/1.1 connection per
//! request (http, or https through rustls), EC2 Query POSTs signed with
//! hangar-auth's SigV4 functions (the code the server verifies with), and
//! replies read into a tiny XML tree (`hangar_external::xml`).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use hangar_auth::{ParsedAuth, RequestParts, SecretKey, UriEncoding};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::net::TcpStream;

use crate::awsconfig::Credentials;

/// What botocore sends for EC2 Query requests.
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// The EC2 Query API version.
const EC2_VERSION: &str = "2016-11-15";
/// How long one request may take, connection included: a hung endpoint
/// must not hang the command.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// The system CA bundle used for https when no bundle is named.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// A parsed endpoint URL (`http://host:port[/base]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub https: bool,
    /// Host name or address, without brackets for IPv6.
    pub host: String,
    pub port: u16,
    /// The `Host` header value (port omitted when it is the scheme's default).
    pub authority: String,
    /// Path prefix, `""` or `/something` (no trailing slash).
    pub base_path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            bail!("invalid endpoint URL {url:?}: it must start with http:// or https://");
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], rest[at..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
            bail!("invalid endpoint URL {url:?}");
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| anyhow!("invalid endpoint URL {url:?}"))?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => bail!("invalid endpoint URL {url:?}"),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .map_err(|_| anyhow!("invalid port in endpoint URL {url:?}"))?,
            None => default_port,
        };
        Ok(Self {
            https,
            host,
            port,
            authority: authority.to_string(),
            base_path: path.to_string(),
        })
    }

    fn url(&self) -> String {
        format!(
            "{}://{}{}",
            if self.https { "https" } else { "http" },
            self.authority,
            self.base_path
        )
    }
}

/// An HTTP answer: status and whole body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }
}

/// Sends requests to one endpoint.
pub struct Http {
    endpoint: Endpoint,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Http {
    /// `ca_bundle`: the CAs to trust for https (else the system bundle).
    pub fn new(endpoint: Endpoint, ca_bundle: Option<&Path>) -> anyhow::Result<Self> {
        let tls = if endpoint.https {
            Some(tls_connector(ca_bundle)?)
        } else {
            None
        };
        Ok(Self { endpoint, tls })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends one request (path relative to the endpoint's base path) and
    /// reads the whole answer, within [`REQUEST_TIMEOUT`].
    pub async fn send(&self, request: Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.send_now(request)).await {
            Ok(answer) => answer,
            Err(_) => bail!(
                "no answer from the endpoint URL {:?} within {} s",
                self.endpoint.url(),
                REQUEST_TIMEOUT.as_secs()
            ),
        }
    }

    async fn send_now(&self, mut request: Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        let path = format!("{}{}", self.endpoint.base_path, request.uri());
        *request.uri_mut() = path.parse().context("request path")?;
        request.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_str(&self.endpoint.authority)?,
        );
        let url = self.endpoint.url();
        let address = (self.endpoint.host.as_str(), self.endpoint.port);
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("could not connect to the endpoint URL {url:?}"))?;
        stream.set_nodelay(true)?;
        match &self.tls {
            None => exchange(TokioIo::new(stream), request, &url).await,
            Some(connector) => {
                let name = rustls_pki_types::ServerName::try_from(self.endpoint.host.clone())
                    .with_context(|| format!("invalid host name in {url:?}"))?;
                let stream = connector
                    .connect(name, stream)
                    .await
                    .with_context(|| format!("TLS handshake with {url:?} failed"))?;
                exchange(TokioIo::new(stream), request, &url).await
            }
        }
    }
}

async fn exchange<IO>(io: IO, request: Request<Full<Bytes>>, url: &str) -> anyhow::Result<Answer>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .with_context(|| format!("HTTP/1.1 handshake with {url:?} failed"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .with_context(|| format!("no answer from {url:?}"))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Answer {
        status: parts.status,
        body,
    })
}

fn tls_connector(ca_bundle: Option<&Path>) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let path = match ca_bundle {
        Some(path) => path.to_path_buf(),
        None => SYSTEM_CA_BUNDLES
            .iter()
            .map(Path::new)
            .find(|path| path.exists())
            .ok_or_else(|| {
                anyhow!("no CA bundle found for https: set AWS_CA_BUNDLE or pass --ca-bundle")
            })?
            .to_path_buf(),
    };
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(&path)
        .with_context(|| format!("cannot read the CA bundle {}", path.display()))?;
    for certificate in certificates {
        let certificate =
            certificate.with_context(|| format!("bad PEM in the CA bundle {}", path.display()))?;
        // A bundle may hold certificates rustls cannot use; skip those.
        let _ = roots.add(certificate);
    }
    if roots.is_empty() {
        bail!("no usable certificate in the CA bundle {}", path.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A plain request without a body (for the `/_hangar/*` routes).
pub fn plain(method: Method, path_and_query: &str) -> anyhow::Result<Request<Full<Bytes>>> {
    Ok(Request::builder()
        .method(method)
        .uri(path_and_query)
        .body(Full::new(Bytes::new()))?)
}

/// An EC2 error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Error {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Ec2Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "An error occurred ({}) (HTTP {}): {}",
            self.code, self.status, self.message
        )
    }
}

impl std::error::Error for Ec2Error {}

/// Signs and sends EC2 Query requests for one account and region.
pub struct Ec2 {
    http: Http,
    credentials: Credentials,
    region: String,
}

impl Ec2 {
    pub fn new(http: Http, credentials: Credentials, region: &str) -> Self {
        Self {
            http,
            credentials,
            region: region.to_string(),
        }
    }

    pub fn http(&self) -> &Http {
        &self.http
    }

    /// Calls `action` with `params` page after page (`NextToken` from each
    /// reply's `nextToken`), handing every reply to `each`.
    pub async fn call_pages(
        &self,
        action: &str,
        params: &[(String, String)],
        mut each: impl FnMut(&Node),
    ) -> anyhow::Result<()> {
        let mut token: Option<String> = None;
        loop {
            let mut page = params.to_vec();
            if let Some(token) = token.take() {
                page.push(("NextToken".to_string(), token));
            }
            let reply = self.call(action, &page).await?;
            each(&reply);
            token = reply
                .text_of("nextToken")
                .filter(|token| !token.is_empty())
                .map(String::from);
            if token.is_none() {
                return Ok(());
            }
        }
    }

    /// Calls `action` with `params`; an EC2 error reply comes back as an
    /// [`Ec2Error`] inside the `anyhow::Error` (see [`ec2_error`]).
    pub async fn call(&self, action: &str, params: &[(String, String)]) -> anyhow::Result<Node> {
        let mut form = format!("Action={action}&Version={EC2_VERSION}");
        for (name, value) in params {
            form.push('&');
            form.push_str(&hangar_auth::uri_encode(name.as_bytes()));
            form.push('=');
            form.push_str(&hangar_auth::uri_encode(value.as_bytes()));
        }
        let path = format!("{}/", self.http.endpoint().base_path);
        let request = sign(
            &self.credentials,
            &self.region,
            &self.http.endpoint().authority,
            &path,
            Bytes::from(form),
            OffsetDateTime::now_utc(),
        )?;
        // `send` prefixes the base path again: hand it the bare path.
        let mut request = request;
        *request.uri_mut() = "/".parse()?;
        let answer = self.http.send(request).await?;
        let root = parse_xml(&answer.body).with_context(|| {
            format!(
                "{action}: unreadable reply (HTTP {}): {}",
                answer.status,
                answer.text()
            )
        })?;
        if !answer.status.is_success() {
            let error = root.find(&["Errors", "Error"]);
            let code = error
                .and_then(|e| e.text_of("Code"))
                .unwrap_or("Unknown")
                .to_string();
            let message = error
                .and_then(|e| e.text_of("Message"))
                .unwrap_or_default()
                .to_string();
            return Err(anyhow::Error::new(Ec2Error {
                status: answer.status.as_u16(),
                code,
                message,
            })
            .context(action.to_string()));
        }
        Ok(root)
    }
}

/// The EC2 error inside an error from [`Ec2::call`], if it is one.
pub fn ec2_error(error: &anyhow::Error) -> Option<&Ec2Error> {
    error.downcast_ref::<Ec2Error>()
}

/// Signs an EC2 Query request: `POST path` with `form` as the body, signed
/// headers content-type, host, x-amz-date (and x-amz-security-token).
fn sign(
    credentials: &Credentials,
    region: &str,
    authority: &str,
    path: &str,
    form: Bytes,
    now: OffsetDateTime,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let amz_date = hangar_auth::format_amz_date(now);
    let scope_date = amz_date[..8].to_string();
    let payload_hash = hex::encode(Sha256::digest(&form));
    let mut header_pairs: Vec<(&str, &str)> = vec![
        ("content-type", FORM_CONTENT_TYPE),
        ("host", authority),
        ("x-amz-date", amz_date.as_str()),
    ];
    if let Some(token) = &credentials.session_token {
        header_pairs.push(("x-amz-security-token", token.as_str()));
    }
    header_pairs.sort_by(|a, b| a.0.cmp(b.0));
    let parts = RequestParts {
        method: "POST",
        path,
        query: "",
        headers: &header_pairs,
        payload_sha256_hex: Some(&payload_hash),
    };
    let mut auth = ParsedAuth {
        access_key_id: credentials.access_key_id.clone(),
        scope_date: scope_date.clone(),
        region: region.to_string(),
        service: "ec2".into(),
        signed_headers: header_pairs.iter().map(|(n, _)| n.to_string()).collect(),
        signature: String::new(),
        amz_date: hangar_auth::parse_amz_date(&amz_date)
            .ok_or_else(|| anyhow!("cannot reparse {amz_date}"))?,
        presigned: false,
        expires_secs: None,
    };
    let canonical = hangar_auth::canonical_request(&parts, &auth, UriEncoding::Double)
        .map_err(|error| anyhow!("canonical request: {error}"))?;
    let string_to_sign = hangar_auth::string_to_sign(&auth, &canonical);
    let secret = SecretKey::new(credentials.secret_access_key.clone());
    let key = hangar_auth::signing_key(&secret, &scope_date, region, "ec2");
    auth.signature = hangar_auth::sign(&key, &string_to_sign);
    let authorization = format!(
        "{} Credential={}/{}, SignedHeaders={}, Signature={}",
        hangar_auth::ALGORITHM,
        auth.access_key_id,
        auth.scope(),
        auth.signed_headers.join(";"),
        auth.signature
    );
    let mut builder = Request::builder().method(Method::POST).uri(path);
    for (name, value) in &header_pairs {
        builder = builder.header(*name, *value);
    }
    Ok(builder
        .header(http::header::AUTHORIZATION, authorization)
        .body(Full::new(form))?)
}

pub use hangar_external::xml::Node;

/// Parses an XML document into a [`Node`] tree (namespaces dropped, text
/// trimmed): the reader the external S3 store's documents go through too.
pub fn parse_xml(body: &[u8]) -> anyhow::Result<Node> {
    hangar_external::xml::parse(body).map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let endpoint = Endpoint::parse("http://127.0.0.1:8773").unwrap();
        assert_eq!(
            endpoint,
            Endpoint {
                https: false,
                host: "127.0.0.1".into(),
                port: 8773,
                authority: "127.0.0.1:8773".into(),
                base_path: String::new(),
            }
        );
        let endpoint = Endpoint::parse("https://ec2.example.com/base/").unwrap();
        assert_eq!(endpoint.port, 443);
        assert_eq!(endpoint.authority, "ec2.example.com");
        assert_eq!(endpoint.base_path, "/base");
        let endpoint = Endpoint::parse("http://[::1]:9000").unwrap();
        assert_eq!(endpoint.host, "::1");
        assert_eq!(endpoint.port, 9000);
        for bad in ["ftp://x", "127.0.0.1:80", "http://", "http://h:notaport"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn xml_replies_parse() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r</requestId>
  <imagesSet>
    <item><imageId>ami-1</imageId><name>a &amp; b &#x41;</name><tagSet/></item>
    <item><imageId>ami-2</imageId></item>
  </imagesSet>
  <nextToken>tok</nextToken>
</DescribeImagesResponse>"#;
        let root = parse_xml(body).unwrap();
        assert_eq!(root.name, "DescribeImagesResponse");
        let ids: Vec<_> = root
            .items("imagesSet")
            .filter_map(|item| item.text_of("imageId"))
            .collect();
        assert_eq!(ids, ["ami-1", "ami-2"]);
        let first = root.items("imagesSet").next().unwrap();
        assert_eq!(first.text_of("name"), Some("a & b A"));
        assert_eq!(first.text_of("tagSet"), Some(""));
        assert_eq!(root.text_of("nextToken"), Some("tok"));
        assert!(parse_xml(b"<a><b></a>").is_err());
    }

    /// A request signed here verifies with hangar-auth's verifier, which is
    /// what the server runs, with and without a session token.
    #[test]
    fn signatures_verify() {
        for token in [None, Some("session-token")] {
            let credentials = Credentials {
                access_key_id: "AKIAEXAMPLEALICE0001".into(),
                secret_access_key: "alice-secret".into(),
                session_token: token.map(String::from),
            };
            let now = OffsetDateTime::now_utc();
            let form = "Action=DescribeImages&Version=2016-11-15&Owner.1=self";
            let request = sign(
                &credentials,
                "us-east-1",
                "127.0.0.1:8773",
                "/",
                Bytes::from(form),
                now,
            )
            .unwrap();
            let headers: Vec<(String, String)> = request
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
                .collect();
            let refs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
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
                |key: &str| (key == "AKIAEXAMPLEALICE0001").then(|| SecretKey::new("alice-secret"));
            let verified = hangar_auth::verify(
                &parts,
                "ec2",
                UriEncoding::Double,
                now,
                &|region| region == "us-east-1",
                &lookup,
            )
            .unwrap();
            assert_eq!(
                verified
                    .signed_headers
                    .contains(&"x-amz-security-token".to_string()),
                token.is_some()
            );
        }
    }
}
