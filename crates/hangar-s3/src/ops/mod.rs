//! The operations: establish the caller, convert the typed `s3s` input into
//! the domain's, call `hangar-core`, convert the result back.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Seek, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hangar_blocks::objects::{ObjectFiles, ObjectWriter, WrittenObject, to_hex};
use hangar_core::model::{ObjectChecksum, S3Object};
use hangar_core::objects::{ListObjectsInput, object_file_name, validate_key};

use hangar_core::buckets::{BucketError, CreateBucketInput as DomainCreateBucket};
use hangar_core::model::{Bucket, PublicAccessBlock};
use hangar_core::{Caller, Hangar};
use s3s::dto::{
    self, BucketLocationConstraint, CreateBucketInput, CreateBucketOutput, DeleteBucketInput,
    DeleteBucketOutput, DeletePublicAccessBlockInput, DeletePublicAccessBlockOutput,
    GetBucketLocationInput, GetBucketLocationOutput, GetPublicAccessBlockInput,
    GetPublicAccessBlockOutput, HeadBucketInput, HeadBucketOutput, ListBucketsInput,
    ListBucketsOutput, Owner, PublicAccessBlockConfiguration, PutPublicAccessBlockInput,
    PutPublicAccessBlockOutput, Timestamp,
};
use s3s::dto::{
    CommonPrefix, DeleteObjectInput, DeleteObjectOutput, ETag, GetObjectInput, GetObjectOutput,
    HeadObjectInput, HeadObjectOutput, ListObjectsV2Input, ListObjectsV2Output, Object,
    PutObjectInput, PutObjectOutput, StreamingBlob,
};
use s3s::dto::{
    CopyObjectInput, CopyObjectOutput, DeleteObjectTaggingInput, DeleteObjectTaggingOutput,
    DeleteObjectsInput, DeleteObjectsOutput, GetObjectTaggingInput, GetObjectTaggingOutput,
    PutObjectTaggingInput, PutObjectTaggingOutput,
};
use s3s::dto::{
    DeleteBucketEncryptionInput, DeleteBucketEncryptionOutput, GetBucketEncryptionInput,
    GetBucketEncryptionOutput, PutBucketEncryptionInput, PutBucketEncryptionOutput,
};
use s3s::validation::NameValidation;
use s3s::{S3, S3Request, S3Response, S3Result};

mod body;
pub(crate) use body::DevTrailers;
mod buckets;
mod multipart;
pub(crate) use multipart::WireDigester;
mod objects;
mod policy;
pub(crate) mod read;

use crate::error::{anonymous, from_bucket_error, unknown_region};
use crate::{DevCaller, SecureTransport};
use hangar_core::access::{AccessRequest, Principal, actions};
pub use policy::OperationsDecide;

/// Lets every bucket name through `s3s`'s path parser: the domain's rules
/// (`hangar_core::buckets::validate_bucket_name`) are the only ones.
pub struct AnyBucketName;

impl NameValidation for AnyBucketName {
    fn validate_bucket_name(&self, _name: &str) -> bool {
        true
    }
}

pub struct HangarS3 {
    hangar: Arc<Hangar>,
    files: ObjectFiles,
    /// Access key ID → account ID.
    accounts: HashMap<String, String>,
    regions: Vec<String>,
    dev_mode: bool,
}

impl HangarS3 {
    pub fn new(
        hangar: Arc<Hangar>,
        files: ObjectFiles,
        accounts: &[crate::S3Account],
        regions: Vec<String>,
        dev_mode: bool,
    ) -> Self {
        Self {
            hangar,
            files,
            accounts: accounts
                .iter()
                .map(|account| (account.access_key_id.clone(), account.account_id.clone()))
                .collect(),
            regions,
            dev_mode,
        }
    }

    /// Who is asking. Strict mode: the account of the access key `s3s`
    /// verified, in the region of its credential scope; an unsigned request
    /// is anonymous. Dev mode: what [`crate::Gateway::handle`] read from the
    /// signature.
    pub(crate) fn principal<T>(&self, request: &S3Request<T>) -> S3Result<Principal> {
        if self.dev_mode {
            return Ok(match request.extensions.get::<DevCaller>() {
                Some(DevCaller(caller)) => Principal::Account(caller.clone()),
                None => Principal::Anonymous,
            });
        }
        let Some(credentials) = &request.credentials else {
            return Ok(Principal::Anonymous);
        };
        let Some(account_id) = self.accounts.get(&credentials.access_key) else {
            return Err(s3s::s3_error!(InvalidAccessKeyId));
        };
        // Signature version 2 (which boto3 still uses for presigned URLs
        // unless told `s3v4`) names no region: the caller is then in the
        // deployment's first region (`us-east-1` when served), which only
        // matters for `CreateBucket`.
        let region = request
            .region
            .as_ref()
            .map(|region| region.as_str().to_owned())
            .filter(|region| !region.is_empty())
            .unwrap_or_else(|| self.default_region());
        if !self.regions.iter().any(|served| served == &region) {
            return Err(unknown_region(&region));
        }
        Ok(Principal::Account(Caller {
            account_id: account_id.clone(),
            region,
        }))
    }

    fn default_region(&self) -> String {
        if self.regions.iter().any(|region| region == "us-east-1") {
            "us-east-1".to_owned()
        } else {
            self.regions.first().cloned().unwrap_or_default()
        }
    }

    /// The signed-in caller, for operations that only an account may make
    /// (`CreateBucket`, `ListBuckets`): anonymous requests are refused.
    pub(crate) fn caller<T>(&self, request: &S3Request<T>) -> S3Result<Caller> {
        match self.principal(request)? {
            Principal::Account(caller) => Ok(caller),
            Principal::Anonymous => Err(anonymous()),
        }
    }

    /// The one access check of every operation on a bucket or its objects:
    /// the bucket, if the request's principal may perform `action` (on
    /// `key`, for object actions) and the bucket's owner is the
    /// `ExpectedBucketOwner` when one is given.
    pub(crate) async fn access<T>(
        &self,
        request: &S3Request<T>,
        bucket: &str,
        action: &'static str,
        key: Option<&str>,
        expected_owner: Option<&String>,
    ) -> S3Result<Bucket> {
        let principal = self.principal(request)?;
        let access = AccessRequest {
            principal: &principal,
            action,
            key,
            secure_transport: request.extensions.get::<SecureTransport>().is_some(),
        };
        let bucket = self
            .hangar
            .authorize(bucket, &access)
            .await
            .map_err(from_bucket_error)?;
        check_expected_owner(expected_owner, &bucket)?;
        Ok(bucket)
    }

    /// Removes an object's file; a failure is logged and only leaves an
    /// orphan for the collector.
    pub(crate) async fn remove_file(&self, bucket: &str, file_name: &str) {
        let files = self.files.clone();
        let (bucket, file_name) = (bucket.to_owned(), file_name.to_owned());
        let result = tokio::task::spawn_blocking(move || files.remove(&bucket, &file_name)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot remove an object file"),
            Err(error) => tracing::warn!(%error, "cannot remove an object file"),
        }
    }
}

/// Bytes written to disk at a time while a body streams in.
const WRITE_BATCH: usize = 1 << 20;
/// Bytes read from disk per chunk of a body streamed out.
const READ_CHUNK: usize = 1 << 16;

fn internal(detail: impl std::fmt::Display) -> s3s::S3Error {
    from_bucket_error(BucketError::Internal(detail.to_string()))
}

/// Runs a blocking file operation off the async threads.
async fn blocking<T, F>(work: F) -> S3Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(internal)?
        .map_err(internal)
}

/// Standard base64 (with padding), for comparing `Content-MD5`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn wire_etag(object: &S3Object) -> ETag {
    ETag::Strong(object.etag.clone())
}

fn wire_metadata(object: &S3Object) -> Option<dto::Metadata> {
    (!object.metadata.is_empty()).then(|| {
        object
            .metadata
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    })
}

fn encode_token(after: &str) -> String {
    to_hex(after.as_bytes())
}

fn decode_token(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|at| {
            token
                .get(at..at + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect();
    String::from_utf8(bytes?).ok()
}

fn timestamp(epoch_ms: i64) -> Timestamp {
    let nanos = i128::from(epoch_ms) * 1_000_000;
    let moment = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(moment)
}

fn to_wire(configuration: PublicAccessBlock) -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration {
        block_public_acls: Some(configuration.block_public_acls),
        ignore_public_acls: Some(configuration.ignore_public_acls),
        block_public_policy: Some(configuration.block_public_policy),
        restrict_public_buckets: Some(configuration.restrict_public_buckets),
    }
}

/// A switch left out of the configuration is off, as in S3.
fn from_wire(configuration: &PublicAccessBlockConfiguration) -> PublicAccessBlock {
    PublicAccessBlock {
        block_public_acls: configuration.block_public_acls.unwrap_or(false),
        ignore_public_acls: configuration.ignore_public_acls.unwrap_or(false),
        block_public_policy: configuration.block_public_policy.unwrap_or(false),
        restrict_public_buckets: configuration.restrict_public_buckets.unwrap_or(false),
    }
}

fn listed(bucket: &Bucket) -> dto::Bucket {
    dto::Bucket {
        name: Some(bucket.name.clone()),
        creation_date: Some(timestamp(bucket.created_ms)),
        bucket_region: Some(bucket.region.clone()),
    }
}

/// `ExpectedBucketOwner`: a bucket of another owner reads as `AccessDenied`.
fn check_expected_owner(expected: Option<&String>, bucket: &Bucket) -> S3Result<()> {
    match expected {
        Some(expected) if expected != &bucket.owner_id => Err(from_bucket_error(
            BucketError::AccessDenied(bucket.name.clone()),
        )),
        _ => Ok(()),
    }
}

#[async_trait::async_trait]
impl S3 for HangarS3 {
    async fn list_objects(
        &self,
        request: S3Request<s3s::dto::ListObjectsInput>,
    ) -> S3Result<S3Response<s3s::dto::ListObjectsOutput>> {
        self.op_list_objects(request).await
    }

    async fn create_multipart_upload(
        &self,
        request: S3Request<dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
        self.op_create_multipart_upload(request).await
    }

    async fn upload_part(
        &self,
        request: S3Request<dto::UploadPartInput>,
    ) -> S3Result<S3Response<dto::UploadPartOutput>> {
        self.op_upload_part(request).await
    }

    async fn upload_part_copy(
        &self,
        request: S3Request<dto::UploadPartCopyInput>,
    ) -> S3Result<S3Response<dto::UploadPartCopyOutput>> {
        self.op_upload_part_copy(request).await
    }

    async fn list_parts(
        &self,
        request: S3Request<dto::ListPartsInput>,
    ) -> S3Result<S3Response<dto::ListPartsOutput>> {
        self.op_list_parts(request).await
    }

    async fn complete_multipart_upload(
        &self,
        request: S3Request<dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
        self.op_complete_multipart_upload(request).await
    }

    async fn abort_multipart_upload(
        &self,
        request: S3Request<dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
        self.op_abort_multipart_upload(request).await
    }

    async fn list_multipart_uploads(
        &self,
        request: S3Request<dto::ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<dto::ListMultipartUploadsOutput>> {
        self.op_list_multipart_uploads(request).await
    }

    async fn put_bucket_encryption(
        &self,
        request: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        self.op_put_bucket_encryption(request).await
    }

    async fn get_bucket_encryption(
        &self,
        request: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        self.op_get_bucket_encryption(request).await
    }

    async fn delete_bucket_encryption(
        &self,
        request: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.op_delete_bucket_encryption(request).await
    }

    async fn copy_object(
        &self,
        request: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.op_copy_object(request).await
    }

    async fn delete_objects(
        &self,
        request: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.op_delete_objects(request).await
    }

    async fn put_object_tagging(
        &self,
        request: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        self.op_put_object_tagging(request).await
    }

    async fn get_object_tagging(
        &self,
        request: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        self.op_get_object_tagging(request).await
    }

    async fn delete_object_tagging(
        &self,
        request: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        self.op_delete_object_tagging(request).await
    }

    async fn put_object(
        &self,
        request: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.op_put_object(request).await
    }

    async fn get_object(
        &self,
        request: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.op_get_object(request).await
    }

    async fn head_object(
        &self,
        request: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.op_head_object(request).await
    }

    async fn delete_object(
        &self,
        request: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.op_delete_object(request).await
    }

    async fn list_objects_v2(
        &self,
        request: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.op_list_objects_v2(request).await
    }

    async fn create_bucket(
        &self,
        request: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.op_create_bucket(request).await
    }

    async fn head_bucket(
        &self,
        request: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.op_head_bucket(request).await
    }

    async fn list_buckets(
        &self,
        request: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.op_list_buckets(request).await
    }

    async fn delete_bucket(
        &self,
        request: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.op_delete_bucket(request).await
    }

    async fn get_bucket_location(
        &self,
        request: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.op_get_bucket_location(request).await
    }

    async fn get_public_access_block(
        &self,
        request: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        self.op_get_public_access_block(request).await
    }

    async fn put_public_access_block(
        &self,
        request: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        self.op_put_public_access_block(request).await
    }

    async fn delete_public_access_block(
        &self,
        request: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        self.op_delete_public_access_block(request).await
    }

    async fn put_bucket_policy(
        &self,
        request: S3Request<dto::PutBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::PutBucketPolicyOutput>> {
        self.op_put_bucket_policy(request).await
    }

    async fn get_bucket_policy(
        &self,
        request: S3Request<dto::GetBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::GetBucketPolicyOutput>> {
        self.op_get_bucket_policy(request).await
    }

    async fn delete_bucket_policy(
        &self,
        request: S3Request<dto::DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketPolicyOutput>> {
        self.op_delete_bucket_policy(request).await
    }

    async fn get_bucket_policy_status(
        &self,
        request: S3Request<dto::GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<dto::GetBucketPolicyStatusOutput>> {
        self.op_get_bucket_policy_status(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_switches_are_off() {
        let wire = PublicAccessBlockConfiguration {
            block_public_acls: Some(true),
            ignore_public_acls: None,
            block_public_policy: Some(false),
            restrict_public_buckets: Some(true),
        };
        let domain = from_wire(&wire);
        assert_eq!(
            domain,
            PublicAccessBlock {
                block_public_acls: true,
                ignore_public_acls: false,
                block_public_policy: false,
                restrict_public_buckets: true,
            }
        );
        assert_eq!(
            to_wire(PublicAccessBlock::ALL_BLOCKED),
            PublicAccessBlockConfiguration {
                block_public_acls: Some(true),
                ignore_public_acls: Some(true),
                block_public_policy: Some(true),
                restrict_public_buckets: Some(true),
            }
        );
    }

    #[test]
    fn base64_and_tokens() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        for key in ["a", "d/x/", "é/../", ""] {
            assert_eq!(decode_token(&encode_token(key)).as_deref(), Some(key));
        }
        assert_eq!(decode_token("zz"), None);
        assert_eq!(decode_token("abc"), None);
    }

    #[test]
    fn timestamps_keep_milliseconds() {
        let mut text = Vec::new();
        timestamp(1_700_000_000_123)
            .format(s3s::dto::TimestampFormat::DateTime, &mut text)
            .expect("format");
        assert_eq!(
            String::from_utf8(text).expect("utf8"),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
