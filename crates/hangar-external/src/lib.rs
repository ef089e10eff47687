//! External buckets (`[buckets] backend = "external"`): the
//! [`ObjectBackend`] of store and restore tasks over the buckets of an
//! S3-compatible store (AWS S3, MinIO, Ceph, Garage), the one `[storage.s3]`
//! names. A store engine like `hangar-blocks`: it implements core's trait,
//! and the server wires it.
//!
//! The client is `aws-sdk-s3` (the well-kept one), built without its default
//! HTTPS client, which would bring aws-lc-rs and cmake: requests go through
//! aws-smithy-http-client's hyper client with rustls on ring, the TLS stack
//! of the rest of the tree.
//!
//! What each question asks of the store:
//!
//! - which bucket ([`ObjectBackend::bucket`]): the `[buckets.external]
//!   grants` first (an account may use only the buckets granted to it, when
//!   any grant is configured), then `GetBucketLocation` (its region; an
//!   empty constraint is `us-east-1`, `EU` is `eu-west-1`) and `HeadBucket`
//!   (it exists, the service's credentials reach it);
//! - how secure ([`ObjectBackend::security`]): `GetPublicAccessBlock` (a
//!   missing configuration counts as not blocked), `GetBucketPolicyStatus`
//!   (no policy, or a status without `IsPublic`, is not public; a store
//!   that does not answer it, such as moto, has its policy document judged
//!   by the domain's policy evaluator instead), `GetBucketEncryption` (none:
//!   a warning);
//! - the data: multipart uploads (`CreateMultipartUpload` with the
//!   `x-amz-meta-*` and `x-amz-tagging` of the embedded path, `UploadPart`,
//!   `ListParts`, `CompleteMultipartUpload`, `AbortMultipartUpload`),
//!   `HeadObject`, and ranged `GetObject`s (`If-Match` the ETag seen first,
//!   so an object replaced during a read fails the read instead of mixing
//!   two objects).

mod reader;
mod rules;
pub mod xml;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use hangar_core::buckets::BucketError;
use hangar_core::model::{Bucket, BucketEncryption, S3Object};
use hangar_core::transfer::{BucketSecurity, ObjectBackend};
use hangar_core::{Caller, Hangar};

pub use rules::{PolicyAnswer, PublicAccessAnswer, encryption_warning, public_reason, region_of};

/// How to reach the external store, and who may use which bucket.
#[derive(Clone, Default)]
pub struct ExternalConfig {
    /// A custom endpoint (`http://127.0.0.1:9000`); `None`: AWS's regional
    /// endpoints.
    pub endpoint: Option<String>,
    /// The region requests are signed for (with a custom endpoint, always;
    /// on AWS, the client of each bucket signs for the bucket's region).
    pub region: String,
    /// Static credentials; `None` (both): the standard AWS credential chain.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Bucket name → the accounts that may store to and restore from it.
    /// Empty: every account may use every bucket of the store.
    pub grants: BTreeMap<String, Vec<String>>,
}

/// The secret never reaches logs through `{:?}`.
impl std::fmt::Debug for ExternalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("grants", &self.grants)
            .finish()
    }
}

/// The buckets of the external store, as store and restore tasks use them.
#[derive(Clone)]
pub struct ExternalBuckets {
    inner: Arc<Inner>,
}

struct Inner {
    /// The client signing for the configured region.
    base: Client,
    /// With a custom endpoint every request signs for the configured region
    /// (MinIO and Ceph check it); on AWS, each bucket's region gets its own
    /// client, made on first use.
    custom_endpoint: bool,
    by_region: Mutex<HashMap<String, Client>>,
    grants: BTreeMap<String, Vec<String>>,
    endpoint_description: String,
}

/// The HTTP client: hyper 1 with rustls on ring.
fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

impl ExternalBuckets {
    /// Builds the client. With no static keys, the credential chain is
    /// asked once now, so a deployment without credentials fails at
    /// start-up with one line rather than at the first store.
    pub async fn connect(config: ExternalConfig) -> Result<Self, String> {
        if config.region.is_empty() {
            return Err("the region must not be empty".into());
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client())
            .region(Region::new(config.region.clone()));
        match (&config.access_key_id, &config.secret_access_key) {
            (Some(key), Some(secret)) => {
                loader = loader.credentials_provider(Credentials::new(
                    key.clone(),
                    secret.clone(),
                    None,
                    None,
                    "hangar-config",
                ));
            }
            (None, None) => {}
            _ => return Err("set both access_key_id and a secret access key, or neither".into()),
        }
        let shared = loader.load().await;
        if config.access_key_id.is_none() {
            use aws_sdk_s3::config::ProvideCredentials;
            let Some(provider) = shared.credentials_provider() else {
                return Err("no AWS credential chain is available".into());
            };
            provider.provide_credentials().await.map_err(|error| {
                format!(
                    "no credentials in [storage.s3] and none from the AWS credential chain: {}",
                    DisplayErrorContext(&error)
                )
            })?;
        }
        let mut builder = aws_sdk_s3::config::Builder::from(&shared);
        if let Some(endpoint) = &config.endpoint {
            // Path-style: the stores behind custom endpoints rarely have a
            // wildcard DNS name per bucket.
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        let base = Client::from_conf(builder.build());
        let endpoint_description = config
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("AWS S3 ({})", config.region));
        Ok(Self {
            inner: Arc::new(Inner {
                base,
                custom_endpoint: config.endpoint.is_some(),
                by_region: Mutex::new(HashMap::new()),
                grants: config.grants,
                endpoint_description,
            }),
        })
    }

    /// The store, for messages and logs: its endpoint URL, or `AWS S3`.
    pub fn endpoint_description(&self) -> &str {
        &self.inner.endpoint_description
    }

    /// Whether accounts are kept apart (`grants` configured).
    pub fn isolates_accounts(&self) -> bool {
        !self.inner.grants.is_empty()
    }

    fn client_for(&self, region: &str) -> Client {
        if self.inner.custom_endpoint {
            return self.inner.base.clone();
        }
        let Ok(mut clients) = self.inner.by_region.lock() else {
            return self.inner.base.clone();
        };
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let config = self
                    .inner
                    .base
                    .config()
                    .to_builder()
                    .region(Region::new(region.to_owned()))
                    .build();
                Client::from_conf(config)
            })
            .clone()
    }

    /// Whether `account` may use `bucket` under the configured grants.
    fn granted(&self, bucket: &str, account: &str) -> bool {
        self.inner.grants.is_empty()
            || self
                .inner
                .grants
                .get(bucket)
                .is_some_and(|accounts| accounts.iter().any(|granted| granted == account))
    }
}

/// What a failed request says: the S3 error code (if the store sent one),
/// the HTTP status, and the whole context for logs.
struct Failure {
    code: Option<String>,
    status: Option<u16>,
    detail: String,
}

fn failure_of<E>(error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    Failure {
        code: error.code().map(str::to_owned),
        status: error
            .raw_response()
            .map(|response| response.status().as_u16()),
        detail: DisplayErrorContext(error).to_string(),
    }
}

impl Failure {
    fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// The store does not answer this request at all (NotImplemented, 501,
    /// or an answer that is not the request's document).
    fn unsupported(&self) -> bool {
        self.is("NotImplemented") || self.status == Some(501) || self.code.is_none()
    }

    /// The domain's error for a bucket-level request.
    fn for_bucket(self, bucket: &str) -> BucketError {
        if self.is("NoSuchBucket") || (self.code.is_none() && self.status == Some(404)) {
            return BucketError::NoSuchBucket(bucket.to_owned());
        }
        if self.is("NotFound") && self.status == Some(404) {
            return BucketError::NoSuchBucket(bucket.to_owned());
        }
        self.common(bucket)
    }

    /// The domain's error for an object-level request.
    fn for_object(self, bucket: &str, key: &str) -> BucketError {
        if self.is("NoSuchBucket") {
            return BucketError::NoSuchBucket(bucket.to_owned());
        }
        if self.is("NoSuchKey") || self.is("NotFound") || self.status == Some(404) {
            return BucketError::NoSuchKey(key.to_owned());
        }
        self.common(bucket)
    }

    /// The domain's error for a request about an upload.
    fn for_upload(self, bucket: &str, upload_id: &str) -> BucketError {
        // A 404 without a document (moto's answer to a part of an aborted
        // upload) is the upload gone; a deleted bucket says NoSuchBucket,
        // and the task's bucket check between parts finds it too.
        if self.is("NoSuchUpload") || (self.code.is_none() && self.status == Some(404)) {
            return BucketError::NoSuchUpload(upload_id.to_owned());
        }
        if self.is("NoSuchBucket") {
            return BucketError::NoSuchBucket(bucket.to_owned());
        }
        self.common(bucket)
    }

    fn common(self, bucket: &str) -> BucketError {
        if self.is("AccessDenied") || self.status == Some(403) {
            return BucketError::AccessDenied(format!(
                "the external S3 store refuses the service's credentials for bucket '{bucket}' ({})",
                self.code.as_deref().unwrap_or("403")
            ));
        }
        BucketError::Internal(format!("external S3 store: {}", self.detail))
    }
}

/// S3's quoted ETag, bare.
fn bare_etag(etag: Option<&str>) -> String {
    etag.unwrap_or_default().trim_matches('"').to_owned()
}

/// `x-amz-tagging`: URL query encoding, every byte but the unreserved ones
/// percent-encoded (what the AWS SDKs send).
fn tagging_header(tags: &BTreeMap<String, String>) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const QUERY: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    tags.iter()
        .map(|(key, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(key, QUERY),
                utf8_percent_encode(value, QUERY)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn millis(time: Option<&aws_sdk_s3::primitives::DateTime>) -> i64 {
    time.and_then(|time| time.to_millis().ok()).unwrap_or(0)
}

impl ExternalBuckets {
    /// The bucket `name` for `owner`: granted, located, reachable.
    async fn resolve(&self, owner: &Caller, name: &str) -> Result<Bucket, BucketError> {
        // Grants first: an account without one learns nothing about the
        // bucket, not even whether it exists.
        if !self.granted(name, &owner.account_id) {
            return Err(BucketError::AccessDenied(format!(
                "the external bucket '{name}' is not granted to account {} ([buckets.external] grants)",
                owner.account_id
            )));
        }
        let location = self
            .inner
            .base
            .get_bucket_location()
            .bucket(name)
            .send()
            .await
            .map_err(|error| failure_of(&error).for_bucket(name))?;
        let region = region_of(
            location
                .location_constraint()
                .map(|constraint| constraint.as_str()),
        );
        self.client_for(&region)
            .head_bucket()
            .bucket(name)
            .send()
            .await
            .map_err(|error| failure_of(&error).for_bucket(name))?;
        Ok(Bucket {
            name: name.to_owned(),
            region,
            // The store's owner is not an account of this deployment; the
            // task acts for its own account.
            owner_id: owner.account_id.clone(),
            created_ms: 0,
            public_access_block: None,
            policy: None,
            encryption: BucketEncryption::default(),
            revision: 0,
        })
    }

    /// Whether the upload is still there: one short `ListParts`.
    async fn first_parts(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
    ) -> Result<(), BucketError> {
        match self
            .client_for(&bucket.region)
            .list_parts()
            .bucket(&bucket.name)
            .key(key)
            .upload_id(upload_id)
            .max_parts(1)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => {
                let failure = failure_of(&error);
                // An answer the SDK cannot read is still an answer.
                if failure.status == Some(200) {
                    return Ok(());
                }
                Err(failure.for_upload(&bucket.name, upload_id))
            }
        }
    }

    /// The security settings of `bucket`, judged by [`public_reason`] and
    /// [`encryption_warning`].
    async fn judge(&self, bucket: &Bucket) -> Result<BucketSecurity, BucketError> {
        let client = self.client_for(&bucket.region);
        let name = bucket.name.as_str();
        let block = match client.get_public_access_block().bucket(name).send().await {
            Ok(output) => {
                let config = output.public_access_block_configuration();
                PublicAccessAnswer::Config([
                    config.and_then(|c| c.block_public_acls()).unwrap_or(false),
                    config.and_then(|c| c.ignore_public_acls()).unwrap_or(false),
                    config
                        .and_then(|c| c.block_public_policy())
                        .unwrap_or(false),
                    config
                        .and_then(|c| c.restrict_public_buckets())
                        .unwrap_or(false),
                ])
            }
            Err(error) => {
                let failure = failure_of(&error);
                if failure.is("NoSuchPublicAccessBlockConfiguration") {
                    PublicAccessAnswer::Missing
                } else if failure.unsupported() {
                    PublicAccessAnswer::Unsupported
                } else {
                    return Err(failure.for_bucket(name));
                }
            }
        };
        let policy = match client.get_bucket_policy_status().bucket(name).send().await {
            Ok(output) => {
                PolicyAnswer::Status(output.policy_status().and_then(|status| status.is_public()))
            }
            Err(error) => {
                let failure = failure_of(&error);
                if failure.is("NoSuchBucketPolicy") {
                    PolicyAnswer::NoPolicy
                } else if failure.unsupported() {
                    // Not answered (moto lists the bucket instead): judge
                    // the policy document as the embedded buckets do.
                    tracing::debug!(bucket = name, detail = %failure.detail, "GetBucketPolicyStatus not answered; reading the policy document");
                    match client.get_bucket_policy().bucket(name).send().await {
                        Ok(output) => PolicyAnswer::Document(output.policy().unwrap_or("").into()),
                        Err(error) => {
                            let refused = failure_of(&error);
                            if refused.is("NoSuchBucketPolicy") {
                                PolicyAnswer::NoPolicy
                            } else {
                                return Err(refused.for_bucket(name));
                            }
                        }
                    }
                } else {
                    return Err(failure.for_bucket(name));
                }
            }
        };
        let encrypted = match client.get_bucket_encryption().bucket(name).send().await {
            Ok(output) => Some(
                output
                    .server_side_encryption_configuration()
                    .is_some_and(|config| !config.rules().is_empty()),
            ),
            Err(error) => {
                let failure = failure_of(&error);
                if failure.is("ServerSideEncryptionConfigurationNotFoundError") {
                    Some(false)
                } else if failure.unsupported() {
                    None
                } else {
                    return Err(failure.for_bucket(name));
                }
            }
        };
        Ok(BucketSecurity {
            public_reason: public_reason(name, &block, &policy)?,
            encryption_warning: encryption_warning(name, encrypted),
        })
    }
}

#[async_trait]
impl ObjectBackend for ExternalBuckets {
    async fn bucket(
        &self,
        _hangar: &Hangar,
        owner: &Caller,
        name: &str,
        _action: &'static str,
        _key: &str,
    ) -> Result<Bucket, BucketError> {
        self.resolve(owner, name).await
    }

    async fn security(&self, bucket: &Bucket) -> Result<BucketSecurity, BucketError> {
        self.judge(bucket).await
    }

    async fn create_upload(
        &self,
        bucket: &Bucket,
        key: &str,
        metadata: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
    ) -> Result<String, BucketError> {
        let mut request = self
            .client_for(&bucket.region)
            .create_multipart_upload()
            .bucket(&bucket.name)
            .key(key)
            .content_type("application/octet-stream")
            .set_metadata(Some(metadata.into_iter().collect()));
        if !tags.is_empty() {
            request = request.tagging(tagging_header(&tags));
        }
        let output = request
            .send()
            .await
            .map_err(|error| failure_of(&error).for_bucket(&bucket.name))?;
        output
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| BucketError::Internal("the external store gave no upload ID".into()))
    }

    async fn upload_part(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
        part_number: i32,
        data: Vec<bytes::Bytes>,
    ) -> Result<String, BucketError> {
        // One body: the SDK signs and checksums it whole.
        let data = match <[bytes::Bytes; 1]>::try_from(data) {
            Ok([only]) => only,
            Err(chunks) => {
                let mut body =
                    bytes::BytesMut::with_capacity(chunks.iter().map(bytes::Bytes::len).sum());
                for chunk in &chunks {
                    body.extend_from_slice(chunk);
                }
                body.freeze()
            }
        };
        let output = self
            .client_for(&bucket.region)
            .upload_part()
            .bucket(&bucket.name)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(ByteStream::from(data))
            .send()
            .await;
        match output {
            Ok(output) => Ok(bare_etag(output.e_tag())),
            Err(error) => {
                let refused = failure_of(&error).for_upload(&bucket.name, upload_id);
                // Some stores answer a part of an aborted upload with a bare
                // 500 (moto): ask whether the upload is still there, so the
                // task says what happened.
                if matches!(refused, BucketError::Internal(_))
                    && let Err(gone @ BucketError::NoSuchUpload(_)) =
                        self.first_parts(bucket, key, upload_id).await
                {
                    return Err(gone);
                }
                Err(refused)
            }
        }
    }

    fn part_etag(&self, data: &[bytes::Bytes]) -> Option<String> {
        use md5::Digest;
        let mut md5 = md5::Md5::new();
        for chunk in data {
            md5.update(chunk);
        }
        let digest = md5.finalize();
        Some(digest.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    async fn list_parts(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<(i32, String, i64)>, BucketError> {
        let client = self.client_for(&bucket.region);
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let answer = client
                .list_parts()
                .bucket(&bucket.name)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await;
            let (page, next) = match answer {
                Ok(output) => (
                    output
                        .parts()
                        .iter()
                        .map(|part| {
                            (
                                part.part_number().unwrap_or(0),
                                bare_etag(part.e_tag()),
                                part.size().unwrap_or(0),
                            )
                        })
                        .collect(),
                    output
                        .next_part_number_marker()
                        .filter(|_| output.is_truncated() == Some(true))
                        .map(str::to_owned),
                ),
                Err(error) => {
                    // A 200 the SDK cannot read (moto's `ListPartsResponse`
                    // root): read the document itself.
                    let body = error
                        .raw_response()
                        .and_then(|response| response.body().bytes())
                        .map(<[u8]>::to_vec);
                    let failure = failure_of(&error);
                    match body {
                        Some(body) if failure.status == Some(200) && failure.code.is_none() => {
                            xml::parts_page(&body).map_err(|detail| {
                                BucketError::Internal(format!(
                                    "external S3 store: ListParts answer unreadable: {detail}"
                                ))
                            })?
                        }
                        _ => return Err(failure.for_upload(&bucket.name, upload_id)),
                    }
                }
            };
            parts.extend(page);
            match next {
                // A marker that does not move would list forever.
                Some(next) if Some(&next) != marker.as_ref() => marker = Some(next),
                _ => break,
            }
        }
        parts.sort_by_key(|part| part.0);
        Ok(parts)
    }

    async fn complete_upload(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, String)>,
    ) -> Result<S3Object, BucketError> {
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .into_iter()
                    .map(|(part_number, etag)| {
                        CompletedPart::builder()
                            .part_number(part_number)
                            .e_tag(format!("\"{etag}\""))
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let answer = self
            .client_for(&bucket.region)
            .complete_multipart_upload()
            .bucket(&bucket.name)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await;
        if let Err(error) = answer {
            let failure = failure_of(&error);
            // A 200 whose document the SDK cannot read (moto names its root
            // `CompleteMultipartUploadResponse`) did complete: S3 reports a
            // failed completion as a 200 with an `<Error>` document, which
            // has a code. The object read back below is what counts (the
            // task checks its size and ETag).
            if !(failure.status == Some(200) && failure.code.is_none()) {
                return Err(failure.for_upload(&bucket.name, upload_id));
            }
            tracing::debug!(key, detail = %failure.detail, "completion answer not understood; reading the object back");
        }
        self.head_object(bucket, key).await?.ok_or_else(|| {
            BucketError::Internal(format!(
                "the external store completed {key} but does not show it"
            ))
        })
    }

    async fn abort_upload(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
    ) -> Result<(), BucketError> {
        match self
            .client_for(&bucket.region)
            .abort_multipart_upload()
            .bucket(&bucket.name)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => match failure_of(&error).for_upload(&bucket.name, upload_id) {
                BucketError::NoSuchUpload(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn head_object(
        &self,
        bucket: &Bucket,
        key: &str,
    ) -> Result<Option<S3Object>, BucketError> {
        match self
            .client_for(&bucket.region)
            .head_object()
            .bucket(&bucket.name)
            .key(key)
            .send()
            .await
        {
            Ok(output) => Ok(Some(S3Object {
                bucket: bucket.name.clone(),
                key: key.to_owned(),
                size: output.content_length().unwrap_or(0),
                etag: bare_etag(output.e_tag()),
                content_type: output.content_type().map(str::to_owned),
                metadata: output
                    .metadata()
                    .map(|metadata| {
                        metadata
                            .iter()
                            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                last_modified_ms: millis(output.last_modified()),
                ..S3Object::default()
            })),
            Err(error) => match failure_of(&error).for_object(&bucket.name, key) {
                BucketError::NoSuchKey(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn open_object(
        &self,
        bucket: &Bucket,
        key: &str,
        start: u64,
    ) -> Result<(S3Object, Box<dyn Read + Send>), BucketError> {
        let Some(object) = self.head_object(bucket, key).await? else {
            return Err(BucketError::NoSuchKey(key.to_owned()));
        };
        let size = u64::try_from(object.size).unwrap_or(0);
        let reader = reader::RangeReader::new(
            self.client_for(&bucket.region),
            bucket.name.clone(),
            key.to_owned(),
            object.etag.clone(),
            start.min(size),
            size,
        );
        Ok((object, Box::new(reader)))
    }
}

#[cfg(test)]
mod tests;
