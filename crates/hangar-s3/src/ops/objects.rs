//! Object operations.

use super::body::{BodyClaims, checksum_field};
use super::read::reader_body;
use super::*;
use hangar_core::objects::validate_object_tags;

impl HangarS3 {
    pub(super) async fn op_put_object(
        &self,
        mut request: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::PUT_OBJECT,
                Some(&request.input.key),
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        validate_key(&request.input.key).map_err(from_bucket_error)?;
        if request
            .input
            .content_length
            .is_some_and(|length| u64::try_from(length).unwrap_or(0) > super::body::MAX_BODY_BYTES)
        {
            return Err(s3s::S3Error::with_message(
                s3s::S3ErrorCode::EntityTooLarge,
                "Your proposed upload exceeds the maximum allowed object size.",
            ));
        }
        check_acl(request.input.acl.as_ref().map(|acl| acl.as_str()))?;
        check_sse(request.input.server_side_encryption.as_ref())?;
        let tags = parse_tagging(request.input.tagging.as_deref())?;
        let claims = BodyClaims::new(
            &request.headers,
            request.input.content_md5.as_ref(),
            request.input.checksum_algorithm.as_ref(),
            request.input.checksum_crc32.as_ref(),
            request.input.checksum_crc32c.as_ref(),
            request.input.checksum_crc64nvme.as_ref(),
            request.input.checksum_sha1.as_ref(),
            request.input.checksum_sha256.as_ref(),
        );
        let body = request.input.body.take();
        let stored = self
            .store_body(&request, &bucket.name, &request.input.key, body, &claims)
            .await?;
        let input = request.input;
        let object = S3Object {
            bucket: bucket.name.clone(),
            key: input.key,
            size: stored.size,
            etag: stored.etag(),
            content_type: input.content_type,
            metadata: lower_metadata(input.metadata),
            last_modified_ms: self.hangar.now_ms(),
            file_name: stored.file_name.clone(),
            tags,
            checksum: stored.checksum.clone(),
            ..S3Object::default()
        };
        self.commit_object(&bucket, &object).await?;
        let checksum = object.checksum.as_ref();
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(wire_etag(&object)),
            size: Some(object.size),
            server_side_encryption: Some(sse_s3()),
            checksum_crc32: checksum_field(checksum, "CRC32"),
            checksum_crc32c: checksum_field(checksum, "CRC32C"),
            checksum_crc64nvme: checksum_field(checksum, "CRC64NVME"),
            checksum_sha1: checksum_field(checksum, "SHA1"),
            checksum_sha256: checksum_field(checksum, "SHA256"),
            checksum_type: checksum
                .map(|_| dto::ChecksumType::from_static(dto::ChecksumType::FULL_OBJECT)),
            ..PutObjectOutput::default()
        }))
    }

    /// Commits an object whose files are in place, replacing the record
    /// under its key, then removes the replaced object's files. When the
    /// commit fails, the new files are removed and nothing changed.
    pub(crate) async fn commit_object(&self, bucket: &Bucket, object: &S3Object) -> S3Result<()> {
        match self.hangar.put_object_record(bucket, object).await {
            Ok(Some(replaced)) => {
                self.remove_unused_files(&bucket.name, &replaced, Some(object))
                    .await;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(error) => {
                for (file_name, _) in object.files() {
                    self.remove_file(&bucket.name, file_name).await;
                }
                Err(from_bucket_error(error))
            }
        }
    }

    /// Removes the files of a record that is gone, except those `kept`
    /// (the record that replaced it) still uses.
    pub(crate) async fn remove_unused_files(
        &self,
        bucket: &str,
        gone: &S3Object,
        kept: Option<&S3Object>,
    ) {
        for file_name in gone.files_unused_by(kept) {
            self.remove_file(bucket, &file_name).await;
        }
    }

    pub(super) async fn op_get_object(
        &self,
        request: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::GET_OBJECT,
                Some(&request.input.key),
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let input = &request.input;
        let part_number = input.part_number;
        let (object, range, reader) = self
            .open_object(&bucket, &input.key, |object| {
                read_range(object, input.range.as_ref(), part_number)
            })
            .await?;
        let size = u64::try_from(object.size).map_err(internal)?;
        let whole = range.start == 0 && range.end == size;
        let content_range = (input.range.is_some() || part_number.is_some()).then(|| {
            format!(
                "bytes {}-{}/{size}",
                range.start,
                range.end.saturating_sub(1)
            )
        });
        // Checksums describe the whole object: S3 reports them only when
        // asked (`ChecksumMode=ENABLED`) and the whole object is read.
        let checksum = object
            .checksum
            .as_ref()
            .filter(|_| whole && checksum_mode_enabled(input.checksum_mode.as_ref()));
        let length = range.end - range.start;
        let output = GetObjectOutput {
            accept_ranges: Some("bytes".into()),
            body: Some(reader_body(reader, length)),
            content_length: Some(i64::try_from(length).map_err(internal)?),
            content_range,
            content_type: object.content_type.clone(),
            e_tag: Some(wire_etag(&object)),
            last_modified: Some(timestamp(object.last_modified_ms)),
            metadata: wire_metadata(&object),
            server_side_encryption: Some(sse_s3()),
            tag_count: (!object.tags.is_empty())
                .then(|| i32::try_from(object.tags.len()).unwrap_or(i32::MAX)),
            parts_count: part_number.map(|_| parts_count(&object)),
            checksum_crc32: checksum_field(checksum, "CRC32"),
            checksum_crc32c: checksum_field(checksum, "CRC32C"),
            checksum_crc64nvme: checksum_field(checksum, "CRC64NVME"),
            checksum_sha1: checksum_field(checksum, "SHA1"),
            checksum_sha256: checksum_field(checksum, "SHA256"),
            checksum_type: checksum.map(checksum_type),
            ..GetObjectOutput::default()
        };
        let status = if content_range_status(input.range.is_some(), part_number) {
            http::StatusCode::PARTIAL_CONTENT
        } else {
            http::StatusCode::OK
        };
        Ok(S3Response::with_status(output, status))
    }

    pub(super) async fn op_head_object(
        &self,
        request: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::GET_OBJECT,
                Some(&request.input.key),
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let input = request.input;
        let object = self
            .hangar
            .object(&bucket, &input.key)
            .await
            .map_err(from_bucket_error)?;
        let range = read_range(&object, None, input.part_number)?;
        let checksum = object
            .checksum
            .as_ref()
            .filter(|_| input.part_number.is_none())
            .filter(|_| checksum_mode_enabled(input.checksum_mode.as_ref()));
        let output = HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some(i64::try_from(range.end - range.start).map_err(internal)?),
            content_type: object.content_type.clone(),
            e_tag: Some(wire_etag(&object)),
            last_modified: Some(timestamp(object.last_modified_ms)),
            metadata: wire_metadata(&object),
            server_side_encryption: Some(sse_s3()),
            parts_count: input.part_number.map(|_| parts_count(&object)),
            checksum_crc32: checksum_field(checksum, "CRC32"),
            checksum_crc32c: checksum_field(checksum, "CRC32C"),
            checksum_crc64nvme: checksum_field(checksum, "CRC64NVME"),
            checksum_sha1: checksum_field(checksum, "SHA1"),
            checksum_sha256: checksum_field(checksum, "SHA256"),
            checksum_type: checksum.map(checksum_type),
            ..HeadObjectOutput::default()
        };
        let status = if input.part_number.is_some() {
            http::StatusCode::PARTIAL_CONTENT
        } else {
            http::StatusCode::OK
        };
        Ok(S3Response::with_status(output, status))
    }

    pub(super) async fn op_delete_object(
        &self,
        request: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::DELETE_OBJECT,
                Some(&request.input.key),
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let input = request.input;
        let removed = self
            .hangar
            .delete_object_record(&bucket, &input.key)
            .await
            .map_err(from_bucket_error)?;
        if let Some(removed) = removed {
            self.remove_unused_files(&bucket.name, &removed, None).await;
        }
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    pub(super) async fn op_list_objects_v2(
        &self,
        request: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::LIST_BUCKET,
                None,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let input = request.input;
        let max_keys = checked_max_keys(input.max_keys)?;
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
            .list_objects(&bucket, &domain)
            .await
            .map_err(from_bucket_error)?;
        let key_count = listing.objects.len() + listing.common_prefixes.len();
        let (contents, common_prefixes) = wire_listing(&listing);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(bucket.name),
            prefix: input.prefix,
            max_keys: Some(max_keys),
            key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
            continuation_token: input.continuation_token,
            is_truncated: Some(listing.next_after.is_some()),
            next_continuation_token: listing.next_after.as_deref().map(encode_token),
            contents: Some(contents),
            common_prefixes,
            delimiter: input.delimiter,
            start_after: input.start_after,
            ..ListObjectsV2Output::default()
        }))
    }
}

/// `x-amz-meta-*` names are kept lower case, as S3 does.
pub(crate) fn lower_metadata(metadata: Option<dto::Metadata>) -> BTreeMap<String, String> {
    metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect()
}

/// Buckets are created with ACLs disabled (object ownership
/// `BucketOwnerEnforced`, S3's default since April 2023): only the ACLs that
/// grant nothing beyond the owner are accepted.
pub(crate) fn check_acl(acl: Option<&str>) -> S3Result<()> {
    match acl {
        None | Some("private") | Some("bucket-owner-full-control") => Ok(()),
        Some(_) => {
            let mut error = s3s::S3Error::with_message(
                s3s::S3ErrorCode::Custom("AccessControlListNotSupported".into()),
                "The bucket does not allow ACLs",
            );
            error.set_status_code(http::StatusCode::BAD_REQUEST);
            Err(error)
        }
    }
}

/// `x-amz-server-side-encryption`: objects are always encrypted with
/// Hangar's keys (SSE-S3); asking for KMS is refused rather than ignored.
pub(crate) fn check_sse(sse: Option<&dto::ServerSideEncryption>) -> S3Result<()> {
    match sse.map(|sse| sse.as_str()) {
        None | Some("AES256") => Ok(()),
        Some(other) => Err(s3s::S3Error::with_message(
            s3s::S3ErrorCode::InvalidArgument,
            format!(
                "Server Side Encryption with {other} is not supported by this endpoint; use AES256"
            ),
        )),
    }
}

pub(crate) fn sse_s3() -> dto::ServerSideEncryption {
    dto::ServerSideEncryption::from_static(dto::ServerSideEncryption::AES256)
}

/// `x-amz-tagging`: URL-encoded `key=value&…`.
pub(crate) fn parse_tagging(header: Option<&str>) -> S3Result<BTreeMap<String, String>> {
    let Some(header) = header.filter(|header| !header.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(header.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect();
    validate_object_tags(&pairs).map_err(from_bucket_error)
}

/// What a read covers: the `Range`, or the part `partNumber` names (a
/// single-file object is one part), or the whole object.
pub(crate) fn read_range(
    object: &S3Object,
    range: Option<&dto::Range>,
    part_number: Option<i32>,
) -> S3Result<std::ops::Range<u64>> {
    let size = u64::try_from(object.size).map_err(internal)?;
    if let Some(part_number) = part_number {
        if range.is_some() {
            return Err(s3s::S3Error::with_message(
                s3s::S3ErrorCode::InvalidRequest,
                "Cannot specify both Range header and partNumber query parameter",
            ));
        }
        let files = object.files();
        let index = usize::try_from(part_number)
            .ok()
            .filter(|n| (1..=files.len()).contains(n))
            .ok_or_else(|| {
                let mut error = s3s::S3Error::with_message(
                    s3s::S3ErrorCode::Custom("InvalidPartNumber".into()),
                    "The requested partnumber is not satisfiable",
                );
                error.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
                error
            })?;
        let start: i64 = files[..index - 1].iter().map(|(_, size)| size).sum();
        let start = u64::try_from(start).map_err(internal)?;
        let length = u64::try_from(files[index - 1].1).map_err(internal)?;
        return Ok(start..start + length);
    }
    match range {
        Some(range) => Ok(range.check(size)?),
        None => Ok(0..size),
    }
}

fn content_range_status(range: bool, part_number: Option<i32>) -> bool {
    range || part_number.is_some()
}

fn parts_count(object: &S3Object) -> i32 {
    i32::try_from(object.files().len()).unwrap_or(i32::MAX)
}

fn checksum_mode_enabled(mode: Option<&dto::ChecksumMode>) -> bool {
    mode.is_some_and(|mode| mode.as_str().eq_ignore_ascii_case("ENABLED"))
}

fn checksum_type(checksum: &ObjectChecksum) -> dto::ChecksumType {
    if checksum.composite {
        dto::ChecksumType::from_static(dto::ChecksumType::COMPOSITE)
    } else {
        dto::ChecksumType::from_static(dto::ChecksumType::FULL_OBJECT)
    }
}

/// S3's largest `CopyObject` source: 5 GiB (bigger copies use
/// `UploadPartCopy`).
pub(crate) const MAX_COPY_BYTES: i64 = 5 * 1024 * 1024 * 1024;

/// The bucket and key a `x-amz-copy-source` names. Versions do not exist
/// here, and access points are not served.
pub(crate) fn copy_source(source: &dto::CopySource) -> S3Result<(String, String)> {
    match source {
        dto::CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            if version_id.as_deref().is_some_and(|v| v != "null") {
                return Err(s3s::S3Error::with_message(
                    s3s::S3ErrorCode::NoSuchVersion,
                    "The specified version does not exist.",
                ));
            }
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(s3s::S3Error::with_message(
            s3s::S3ErrorCode::NotImplemented,
            "Copying from an access point is not supported",
        )),
    }
}

/// `x-amz-copy-source-if-match` / `-if-none-match` against the source.
pub(crate) fn check_copy_conditions(
    source: &S3Object,
    if_match: Option<&dto::ETagCondition>,
    if_none_match: Option<&dto::ETagCondition>,
) -> S3Result<()> {
    let matches = |condition: &dto::ETagCondition| match condition {
        dto::ETagCondition::Any => true,
        dto::ETagCondition::ETag(tag) => tag.value().trim_matches('"') == source.etag,
    };
    let failed = || {
        s3s::S3Error::with_message(
            s3s::S3ErrorCode::PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold",
        )
    };
    if if_match.is_some_and(|condition| !matches(condition)) || if_none_match.is_some_and(matches) {
        return Err(failed());
    }
    Ok(())
}

impl HangarS3 {
    pub(super) async fn op_copy_object(
        &self,
        request: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = &request.input;
        let (source_bucket_name, source_key) = copy_source(&input.copy_source)?;
        let source_bucket = self
            .access(
                &request,
                &source_bucket_name,
                actions::GET_OBJECT,
                Some(&source_key),
                input.expected_source_bucket_owner.as_ref(),
            )
            .await?;
        let bucket = self
            .access(
                &request,
                &input.bucket,
                actions::PUT_OBJECT,
                Some(&input.key),
                input.expected_bucket_owner.as_ref(),
            )
            .await?;
        validate_key(&input.key).map_err(from_bucket_error)?;
        check_acl(input.acl.as_ref().map(|acl| acl.as_str()))?;
        check_sse(input.server_side_encryption.as_ref())?;
        let replace_metadata = input
            .metadata_directive
            .as_ref()
            .is_some_and(|directive| directive.as_str() == "REPLACE");
        let replace_tags = input
            .tagging_directive
            .as_ref()
            .is_some_and(|directive| directive.as_str() == "REPLACE");
        if source_bucket.name == bucket.name
            && source_key == input.key
            && !replace_metadata
            && input.checksum_algorithm.is_none()
        {
            return Err(s3s::S3Error::with_message(
                s3s::S3ErrorCode::InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself \
                 without changing the object's metadata, storage class, website redirect \
                 location or encryption attributes.",
            ));
        }
        let new_tags = if replace_tags {
            Some(parse_tagging(input.tagging.as_deref())?)
        } else {
            None
        };
        let (source, range, reader) = self
            .open_object(&source_bucket, &source_key, |object| {
                check_copy_conditions(
                    object,
                    input.copy_source_if_match.as_ref(),
                    input.copy_source_if_none_match.as_ref(),
                )?;
                if object.size > MAX_COPY_BYTES {
                    return Err(s3s::S3Error::with_message(
                        s3s::S3ErrorCode::InvalidRequest,
                        format!(
                            "The specified copy source is larger than the maximum allowable size for a copy source: {MAX_COPY_BYTES}"
                        ),
                    ));
                }
                Ok(0..u64::try_from(object.size).unwrap_or(0))
            })
            .await?;
        let algorithm = input
            .checksum_algorithm
            .as_ref()
            .map(|algorithm| algorithm.as_str().to_ascii_uppercase())
            .or_else(|| source.checksum.as_ref().map(|c| c.algorithm.clone()));
        let stored = self
            .copy_to_new_file(
                reader,
                range.end - range.start,
                &bucket.name,
                &input.key,
                algorithm,
            )
            .await?;
        let input = request.input;
        let (content_type, metadata) = if replace_metadata {
            (input.content_type, lower_metadata(input.metadata))
        } else {
            (source.content_type.clone(), source.metadata.clone())
        };
        let object = S3Object {
            bucket: bucket.name.clone(),
            key: input.key,
            size: stored.size,
            etag: stored.etag(),
            content_type,
            metadata,
            last_modified_ms: self.hangar.now_ms(),
            file_name: stored.file_name.clone(),
            tags: new_tags.unwrap_or_else(|| source.tags.clone()),
            checksum: stored.checksum.clone(),
            ..S3Object::default()
        };
        self.commit_object(&bucket, &object).await?;
        let checksum = object.checksum.as_ref();
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(dto::CopyObjectResult {
                e_tag: Some(wire_etag(&object)),
                last_modified: Some(timestamp(object.last_modified_ms)),
                checksum_crc32: checksum_field(checksum, "CRC32"),
                checksum_crc32c: checksum_field(checksum, "CRC32C"),
                checksum_crc64nvme: checksum_field(checksum, "CRC64NVME"),
                checksum_sha1: checksum_field(checksum, "SHA1"),
                checksum_sha256: checksum_field(checksum, "SHA256"),
                checksum_type: checksum.map(checksum_type),
            }),
            server_side_encryption: Some(sse_s3()),
            ..CopyObjectOutput::default()
        }))
    }

    pub(super) async fn op_delete_objects(
        &self,
        request: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = &request.input;
        let bucket = self
            .access(
                &request,
                &input.bucket,
                actions::DELETE_OBJECT,
                None,
                input.expected_bucket_owner.as_ref(),
            )
            .await;
        // A policy may grant deletes of some keys only: the keys are then
        // checked one by one below.
        let bucket_checked = match bucket {
            Ok(bucket) => Some(bucket),
            Err(error) if *error.code() == s3s::S3ErrorCode::AccessDenied => None,
            Err(error) => return Err(error),
        };
        if input.delete.objects.len() > MAX_DELETE_KEYS {
            return Err(s3s::S3Error::with_message(
                s3s::S3ErrorCode::MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema",
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for identifier in &input.delete.objects {
            let key = identifier.key.clone();
            let outcome = match &bucket_checked {
                Some(bucket) => Ok(bucket.clone()),
                None => {
                    self.access(
                        &request,
                        &input.bucket,
                        actions::DELETE_OBJECT,
                        Some(&key),
                        input.expected_bucket_owner.as_ref(),
                    )
                    .await
                }
            };
            let outcome = match outcome {
                Ok(bucket) => self
                    .hangar
                    .delete_object_record(&bucket, &key)
                    .await
                    .map(|removed| (bucket, removed))
                    .map_err(from_bucket_error),
                Err(error) => Err(error),
            };
            match outcome {
                Ok((bucket, removed)) => {
                    if let Some(removed) = removed {
                        self.remove_unused_files(&bucket.name, &removed, None).await;
                    }
                    if !quiet {
                        deleted.push(dto::DeletedObject {
                            key: Some(key),
                            ..dto::DeletedObject::default()
                        });
                    }
                }
                Err(error) => errors.push(dto::Error {
                    code: Some(error.code().as_str().to_owned()),
                    key: Some(key),
                    message: error.message().map(str::to_owned),
                    version_id: None,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!deleted.is_empty()).then_some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..DeleteObjectsOutput::default()
        }))
    }

    pub(super) async fn op_put_object_tagging(
        &self,
        request: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = &request.input;
        let bucket = self
            .access(
                &request,
                &input.bucket,
                actions::PUT_OBJECT_TAGGING,
                Some(&input.key),
                input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let pairs: Vec<(String, String)> = input
            .tagging
            .tag_set
            .iter()
            .map(|tag| {
                (
                    tag.key.clone().unwrap_or_default(),
                    tag.value.clone().unwrap_or_default(),
                )
            })
            .collect();
        let tags = validate_object_tags(&pairs).map_err(from_bucket_error)?;
        self.hangar
            .set_object_tags(&bucket, &input.key, tags)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(PutObjectTaggingOutput::default()))
    }

    pub(super) async fn op_get_object_tagging(
        &self,
        request: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = &request.input;
        let bucket = self
            .access(
                &request,
                &input.bucket,
                actions::GET_OBJECT_TAGGING,
                Some(&input.key),
                input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let object = self
            .hangar
            .object(&bucket, &input.key)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: object
                .tags
                .into_iter()
                .map(|(key, value)| dto::Tag {
                    key: Some(key),
                    value: Some(value),
                })
                .collect(),
            version_id: None,
        }))
    }

    pub(super) async fn op_delete_object_tagging(
        &self,
        request: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = &request.input;
        let bucket = self
            .access(
                &request,
                &input.bucket,
                actions::DELETE_OBJECT_TAGGING,
                Some(&input.key),
                input.expected_bucket_owner.as_ref(),
            )
            .await?;
        self.hangar
            .set_object_tags(&bucket, &input.key, BTreeMap::new())
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::with_status(
            DeleteObjectTaggingOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }
}

/// S3's limit on keys per `DeleteObjects`.
pub(crate) const MAX_DELETE_KEYS: usize = 1000;

impl HangarS3 {
    /// `ListObjects` (version 1): the same listing as `ListObjectsV2`, paged
    /// by `Marker` (a key) instead of a token. `NextMarker` is returned when
    /// the page is cut short, with or without a delimiter (S3 returns it
    /// only with one; clients without one use the last key, which is the
    /// same value).
    pub(super) async fn op_list_objects(
        &self,
        request: S3Request<s3s::dto::ListObjectsInput>,
    ) -> S3Result<S3Response<s3s::dto::ListObjectsOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::LIST_BUCKET,
                None,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let input = request.input;
        let max_keys = checked_max_keys(input.max_keys)?;
        let domain = ListObjectsInput {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            max_keys: usize::try_from(max_keys.min(1000)).unwrap_or(0),
            after: input.marker.clone().filter(|marker| !marker.is_empty()),
        };
        let listing = self
            .hangar
            .list_objects(&bucket, &domain)
            .await
            .map_err(from_bucket_error)?;
        let (contents, common_prefixes) = wire_listing(&listing);
        Ok(S3Response::new(s3s::dto::ListObjectsOutput {
            name: Some(bucket.name),
            prefix: input.prefix,
            marker: input.marker,
            max_keys: Some(max_keys),
            is_truncated: Some(listing.next_after.is_some()),
            next_marker: listing.next_after,
            contents: Some(contents),
            common_prefixes,
            delimiter: input.delimiter,
            ..s3s::dto::ListObjectsOutput::default()
        }))
    }
}

/// `MaxKeys` of a listing: 1,000 when absent, never negative.
fn checked_max_keys(max_keys: Option<i32>) -> S3Result<i32> {
    let max_keys = max_keys.unwrap_or(1000);
    if max_keys < 0 {
        return Err(s3s::S3Error::with_message(
            s3s::S3ErrorCode::InvalidArgument,
            "max-keys cannot be negative",
        ));
    }
    Ok(max_keys)
}

/// A listing page as both `ListObjects` versions answer it: the objects,
/// and the common prefixes (absent when there are none).
fn wire_listing(
    listing: &hangar_core::objects::ObjectListing,
) -> (Vec<Object>, Option<Vec<CommonPrefix>>) {
    let contents = listing
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
        .iter()
        .map(|prefix| CommonPrefix {
            prefix: Some(prefix.clone()),
        })
        .collect();
    (
        contents,
        (!common_prefixes.is_empty()).then_some(common_prefixes),
    )
}
