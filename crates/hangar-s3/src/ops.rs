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
use hangar_core::model::S3Object;
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
use s3s::validation::NameValidation;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::DevCaller;
use crate::error::{anonymous, from_bucket_error, unknown_region};

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
    /// verified, in the region of its credential scope. Dev mode: what
    /// [`crate::Gateway::handle`] read from the signature. Anonymous
    /// requests are refused: nothing in this slice is public.
    fn caller<T>(&self, request: &S3Request<T>) -> S3Result<Caller> {
        if self.dev_mode {
            return match request.extensions.get::<DevCaller>() {
                Some(DevCaller(caller)) => Ok(caller.clone()),
                None => Err(anonymous()),
            };
        }
        let Some(credentials) = &request.credentials else {
            return Err(anonymous());
        };
        let Some(account_id) = self.accounts.get(&credentials.access_key) else {
            return Err(s3s::s3_error!(InvalidAccessKeyId));
        };
        let region = request
            .region
            .as_ref()
            .map(|region| region.as_str().to_owned())
            .unwrap_or_default();
        if !self.regions.iter().any(|served| served == &region) {
            return Err(unknown_region(&region));
        }
        Ok(Caller {
            account_id: account_id.clone(),
            region,
        })
    }
}

impl HangarS3 {
    /// The caller's bucket, after the `ExpectedBucketOwner` check.
    async fn bucket_of(
        &self,
        caller: &Caller,
        bucket: &str,
        expected_owner: Option<&String>,
    ) -> S3Result<Bucket> {
        let bucket = self
            .hangar
            .owned_bucket(caller, bucket)
            .await
            .map_err(from_bucket_error)?;
        check_expected_owner(expected_owner, &bucket)?;
        Ok(bucket)
    }

    /// Removes an object's file; a failure is logged and only leaves an
    /// orphan for the later collector.
    async fn remove_file(&self, bucket: &str, file_name: &str) {
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

/// Streams a request body into a new object file (not yet finished).
async fn write_body(
    mut writer: ObjectWriter,
    body: Option<StreamingBlob>,
) -> S3Result<ObjectWriter> {
    let Some(mut body) = body else {
        return Ok(writer);
    };
    let mut pending: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
    loop {
        let chunk = body.next().await;
        let done = chunk.is_none();
        if let Some(chunk) = chunk {
            let chunk = chunk.map_err(|error| {
                s3s::S3Error::with_message(
                    s3s::S3ErrorCode::IncompleteBody,
                    format!("The request body could not be read: {error}"),
                )
            })?;
            pending.extend_from_slice(&chunk);
        }
        if pending.len() >= WRITE_BATCH || (done && !pending.is_empty()) {
            let data = std::mem::replace(&mut pending, Vec::with_capacity(WRITE_BATCH));
            writer = blocking(move || writer.write(&data).map(|()| writer)).await?;
        }
        if done {
            return Ok(writer);
        }
    }
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

/// A file's bytes `[start, end)` as a body, read on a blocking thread.
struct FileStream(tokio::sync::mpsc::Receiver<io::Result<Bytes>>);

impl Stream for FileStream {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.poll_recv(cx)
    }
}

fn file_body(mut file: std::fs::File, start: u64, end: u64) -> StreamingBlob {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        if let Err(error) = file.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(error));
            return;
        }
        let mut remaining = end.saturating_sub(start);
        while remaining > 0 {
            let want = usize::try_from(remaining)
                .unwrap_or(READ_CHUNK)
                .min(READ_CHUNK);
            let mut buffer = vec![0u8; want];
            let result = match file.read(&mut buffer) {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object file shorter than its record",
                )),
                Ok(read) => {
                    buffer.truncate(read);
                    remaining -= read as u64;
                    Ok(Bytes::from(buffer))
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => Err(error),
            };
            let failed = result.is_err();
            if tx.blocking_send(result).is_err() || failed {
                return;
            }
        }
    });
    StreamingBlob::wrap(FileStream(rx))
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
impl HangarS3 {
    /// The caller's bucket, also checked against `ExpectedBucketOwner`.
    async fn owned(
        &self,
        caller: &Caller,
        bucket: &str,
        expected: Option<&String>,
    ) -> S3Result<Bucket> {
        let bucket = self
            .hangar
            .owned_bucket(caller, bucket)
            .await
            .map_err(from_bucket_error)?;
        check_expected_owner(expected, &bucket)?;
        Ok(bucket)
    }
}

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
    async fn put_object(
        &self,
        request: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let caller = self.caller(&request)?;
        let input = request.input;
        let bucket = self
            .bucket_of(&caller, &input.bucket, input.expected_bucket_owner.as_ref())
            .await?;
        validate_key(&input.key).map_err(from_bucket_error)?;
        let files = self.files.clone();
        let bucket_name = bucket.name.clone();
        let writer = blocking(move || files.writer(&bucket_name)).await?;
        let writer = write_body(writer, input.body).await?;
        if let Some(expected) = &input.content_md5
            && expected.trim() != base64(&writer.md5())
        {
            // The writer is dropped: its temporary file goes with it.
            drop(
                blocking(move || {
                    drop(writer);
                    Ok(())
                })
                .await,
            );
            return Err(s3s::S3Error::with_message(
                s3s::S3ErrorCode::BadDigest,
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
        let file_name = object_file_name(&input.key, &format!("{:032x}", rand::random::<u128>()));
        let final_name = file_name.clone();
        let written: WrittenObject = blocking(move || writer.finish(&final_name)).await?;
        let metadata: BTreeMap<String, String> = input
            .metadata
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        let object = S3Object {
            bucket: bucket.name.clone(),
            key: input.key,
            size: i64::try_from(written.size).map_err(internal)?,
            etag: to_hex(&written.md5),
            content_type: input.content_type,
            metadata,
            last_modified_ms: self.hangar.now_ms(),
            file_name: file_name.clone(),
        };
        match self.hangar.put_object_record(&caller, &object).await {
            Ok(Some(replaced)) if replaced.file_name != object.file_name => {
                self.remove_file(&bucket.name, &replaced.file_name).await;
            }
            Ok(_) => {}
            Err(error) => {
                self.remove_file(&bucket.name, &file_name).await;
                return Err(from_bucket_error(error));
            }
        }
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(wire_etag(&object)),
            size: Some(object.size),
            ..PutObjectOutput::default()
        }))
    }

    async fn get_object(
        &self,
        request: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let caller = self.caller(&request)?;
        let input = request.input;
        let bucket = self
            .bucket_of(&caller, &input.bucket, input.expected_bucket_owner.as_ref())
            .await?;
        let object = self
            .hangar
            .object(&caller, &bucket.name, &input.key)
            .await
            .map_err(from_bucket_error)?;
        let size = u64::try_from(object.size).map_err(internal)?;
        let (range, content_range) = match &input.range {
            Some(range) => {
                let range = range.check(size)?;
                let content_range = format!("bytes {}-{}/{size}", range.start, range.end - 1);
                (range, Some(content_range))
            }
            None => (0..size, None),
        };
        let files = self.files.clone();
        let (bucket_name, file_name) = (bucket.name.clone(), object.file_name.clone());
        let file = blocking(move || files.open_read(&bucket_name, &file_name)).await?;
        let content_length = i64::try_from(range.end - range.start).map_err(internal)?;
        Ok(S3Response::new(GetObjectOutput {
            accept_ranges: Some("bytes".into()),
            body: Some(file_body(file, range.start, range.end)),
            content_length: Some(content_length),
            content_range,
            content_type: object.content_type.clone(),
            e_tag: Some(wire_etag(&object)),
            last_modified: Some(timestamp(object.last_modified_ms)),
            metadata: wire_metadata(&object),
            ..GetObjectOutput::default()
        }))
    }

    async fn head_object(
        &self,
        request: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let caller = self.caller(&request)?;
        let input = request.input;
        let bucket = self
            .bucket_of(&caller, &input.bucket, input.expected_bucket_owner.as_ref())
            .await?;
        let object = self
            .hangar
            .object(&caller, &bucket.name, &input.key)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some(object.size),
            content_type: object.content_type.clone(),
            e_tag: Some(wire_etag(&object)),
            last_modified: Some(timestamp(object.last_modified_ms)),
            metadata: wire_metadata(&object),
            ..HeadObjectOutput::default()
        }))
    }

    async fn delete_object(
        &self,
        request: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let caller = self.caller(&request)?;
        let input = request.input;
        let bucket = self
            .bucket_of(&caller, &input.bucket, input.expected_bucket_owner.as_ref())
            .await?;
        let removed = self
            .hangar
            .delete_object_record(&caller, &bucket.name, &input.key)
            .await
            .map_err(from_bucket_error)?;
        if let Some(removed) = removed {
            self.remove_file(&bucket.name, &removed.file_name).await;
        }
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn list_objects_v2(
        &self,
        request: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let caller = self.caller(&request)?;
        let input = request.input;
        let bucket = self
            .bucket_of(&caller, &input.bucket, input.expected_bucket_owner.as_ref())
            .await?;
        let max_keys = input.max_keys.unwrap_or(1000);
        if max_keys < 0 {
            return Err(s3s::S3Error::with_message(
                s3s::S3ErrorCode::InvalidArgument,
                "max-keys cannot be negative",
            ));
        }
        let after = match &input.continuation_token {
            Some(token) => Some(decode_token(token).ok_or_else(|| {
                s3s::S3Error::with_message(
                    s3s::S3ErrorCode::InvalidArgument,
                    "The continuation token provided is incorrect",
                )
            })?),
            None => input.start_after.clone().filter(|after| !after.is_empty()),
        };
        let domain = ListObjectsInput {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            max_keys: usize::try_from(max_keys.min(1000)).unwrap_or(0),
            after,
        };
        let listing = self
            .hangar
            .list_objects(&caller, &bucket.name, &domain)
            .await
            .map_err(from_bucket_error)?;
        let key_count = listing.objects.len() + listing.common_prefixes.len();
        let contents: Vec<Object> = listing
            .objects
            .iter()
            .map(|object| Object {
                e_tag: Some(wire_etag(object)),
                key: Some(object.key.clone()),
                last_modified: Some(timestamp(object.last_modified_ms)),
                size: Some(object.size),
                storage_class: Some(dto::ObjectStorageClass::from_static(
                    dto::ObjectStorageClass::STANDARD,
                )),
                ..Object::default()
            })
            .collect();
        let common_prefixes: Vec<CommonPrefix> = listing
            .common_prefixes
            .into_iter()
            .map(|prefix| CommonPrefix {
                prefix: Some(prefix),
            })
            .collect();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(bucket.name),
            prefix: input.prefix,
            max_keys: Some(max_keys),
            key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
            continuation_token: input.continuation_token,
            is_truncated: Some(listing.next_after.is_some()),
            next_continuation_token: listing.next_after.as_deref().map(encode_token),
            contents: Some(contents),
            common_prefixes: (!common_prefixes.is_empty()).then_some(common_prefixes),
            delimiter: input.delimiter,
            start_after: input.start_after,
            ..ListObjectsV2Output::default()
        }))
    }

    async fn create_bucket(
        &self,
        request: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let caller = self.caller(&request)?;
        let input = request.input;
        let location_constraint = input
            .create_bucket_configuration
            .and_then(|configuration| configuration.location_constraint)
            .map(|constraint| constraint.as_str().to_owned());
        let bucket = self
            .hangar
            .create_bucket(
                &caller,
                DomainCreateBucket {
                    name: input.bucket,
                    location_constraint,
                },
            )
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", bucket.name)),
        }))
    }

    async fn head_bucket(
        &self,
        request: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let caller = self.caller(&request)?;
        let bucket = self
            .owned(
                &caller,
                &request.input.bucket,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(bucket.region),
            ..HeadBucketOutput::default()
        }))
    }

    async fn list_buckets(
        &self,
        request: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let caller = self.caller(&request)?;
        let input = request.input;
        let mut buckets: Vec<Bucket> = self
            .hangar
            .list_buckets(&caller)
            .await
            .map_err(from_bucket_error)?
            .into_iter()
            .filter(|bucket| {
                input
                    .prefix
                    .as_ref()
                    .is_none_or(|prefix| bucket.name.starts_with(prefix.as_str()))
                    && input
                        .bucket_region
                        .as_ref()
                        .is_none_or(|region| &bucket.region == region)
                    && input
                        .continuation_token
                        .as_ref()
                        .is_none_or(|after| bucket.name.as_str() > after.as_str())
            })
            .collect();
        // Pages hold at most `MaxBuckets` (S3's range is 1 to 10,000); the
        // token is the last name of the page.
        let continuation_token = match input.max_buckets {
            Some(max) if max >= 1 && buckets.len() > max as usize => {
                buckets.truncate(max as usize);
                buckets.last().map(|bucket| bucket.name.clone())
            }
            _ => None,
        };
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets.iter().map(listed).collect()),
            continuation_token,
            owner: Some(Owner {
                display_name: None,
                id: Some(caller.account_id),
            }),
            prefix: input.prefix,
        }))
    }

    async fn delete_bucket(
        &self,
        request: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let caller = self.caller(&request)?;
        let bucket = self
            .owned(
                &caller,
                &request.input.bucket,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        self.hangar
            .delete_bucket(&caller, &bucket.name)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn get_bucket_location(
        &self,
        request: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let caller = self.caller(&request)?;
        let bucket = self
            .owned(
                &caller,
                &request.input.bucket,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        // S3 reports `us-east-1` as no constraint at all.
        let location_constraint = (bucket.region != hangar_core::buckets::DEFAULT_REGION)
            .then(|| BucketLocationConstraint::from(bucket.region));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }

    async fn get_public_access_block(
        &self,
        request: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        let caller = self.caller(&request)?;
        let bucket = self
            .owned(
                &caller,
                &request.input.bucket,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let configuration = self
            .hangar
            .public_access_block(&caller, &bucket.name)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(to_wire(configuration)),
        }))
    }

    async fn put_public_access_block(
        &self,
        request: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let caller = self.caller(&request)?;
        let input = request.input;
        let bucket = self
            .owned(&caller, &input.bucket, input.expected_bucket_owner.as_ref())
            .await?;
        let configuration = from_wire(&input.public_access_block_configuration);
        self.hangar
            .set_public_access_block(&caller, &bucket.name, Some(configuration))
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(PutPublicAccessBlockOutput {}))
    }

    async fn delete_public_access_block(
        &self,
        request: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        let caller = self.caller(&request)?;
        let bucket = self
            .owned(
                &caller,
                &request.input.bucket,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        self.hangar
            .set_public_access_block(&caller, &bucket.name, None)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(DeletePublicAccessBlockOutput {}))
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
