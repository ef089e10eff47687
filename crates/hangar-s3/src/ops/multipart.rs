//! Multipart upload operations: `CreateMultipartUpload`, `UploadPart`,
//! `UploadPartCopy`, `ListParts`, `CompleteMultipartUpload`,
//! `AbortMultipartUpload` and `ListMultipartUploads`.
//!
//! A part is a file written like a `PutObject` body (streamed, verified,
//! durable), then recorded; completion makes the object of the listed part
//! files visible in one transaction of the store (see
//! `hangar_core::multipart`). Files are removed only after the records that
//! named them are gone.

use std::ops::Range;

use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Md5, Sha1, Sha256};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CopyPartResult, CopySource, CreateMultipartUploadInput,
    CreateMultipartUploadOutput, Initiator, ListMultipartUploadsInput, ListMultipartUploadsOutput,
    ListPartsInput, ListPartsOutput, MultipartUpload as WireUpload, Part, UploadPartCopyInput,
    UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};

use super::body::{ALGORITHMS, BodyClaims, Digests, checksum_field};
use super::objects::{check_acl, check_sse, lower_metadata, parse_tagging, sse_s3};
use super::*;
use hangar_core::model::{MultipartUpload, ObjectChecksum, UploadPart};
use hangar_core::multipart::{
    self as domain, ListUploadsInput, MAX_PAGE, PartClaim, PartDigester, validate_part_number,
};

/// The digests completion needs, from `s3s`'s implementations.
pub(crate) struct WireDigester;

impl PartDigester for WireDigester {
    fn md5(&self, data: &[u8]) -> [u8; 16] {
        Md5::checksum(data)
    }

    fn checksum(&self, algorithm: &str, data: &[u8]) -> Option<Vec<u8>> {
        Some(match algorithm {
            "CRC32" => Crc32::checksum(data).to_vec(),
            "CRC32C" => Crc32c::checksum(data).to_vec(),
            "CRC64NVME" => Crc64Nvme::checksum(data).to_vec(),
            "SHA1" => Sha1::checksum(data).to_vec(),
            "SHA256" => Sha256::checksum(data).to_vec(),
            _ => return None,
        })
    }
}

fn refuse(code: s3s::S3ErrorCode, message: impl Into<String>) -> s3s::S3Error {
    s3s::S3Error::with_message(code, message.into())
}

fn checksum_type(checksum: Option<&ObjectChecksum>) -> Option<dto::ChecksumType> {
    checksum.map(|checksum| {
        dto::ChecksumType::from_static(if checksum.composite {
            dto::ChecksumType::COMPOSITE
        } else {
            dto::ChecksumType::FULL_OBJECT
        })
    })
}

fn wire_algorithm(algorithm: Option<&String>) -> Option<dto::ChecksumAlgorithm> {
    algorithm.map(|algorithm| dto::ChecksumAlgorithm::from(algorithm.clone()))
}

fn initiator(upload: &MultipartUpload) -> Initiator {
    Initiator {
        display_name: None,
        id: Some(upload.initiator_id.clone()),
    }
}

/// `max-parts` / `max-uploads`: 0 to 1,000 (more is capped), default 1,000.
fn page_size(value: Option<i32>, name: &str) -> S3Result<usize> {
    match value {
        None => Ok(MAX_PAGE),
        Some(value) if value < 0 => Err(refuse(
            s3s::S3ErrorCode::InvalidArgument,
            format!("Argument {name} must be an integer between 0 and 2147483647"),
        )),
        Some(value) => Ok(usize::try_from(value).unwrap_or(0).min(MAX_PAGE)),
    }
}

/// `x-amz-copy-source-range`: `bytes=first-last`, inside the source.
fn copy_range(header: Option<&String>, size: u64) -> S3Result<Range<u64>> {
    let Some(header) = header else {
        return Ok(0..size);
    };
    let malformed = || {
        refuse(
            s3s::S3ErrorCode::InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first \
             and last are the zero-based offsets of the first and last bytes to copy",
        )
    };
    let (first, last) = header
        .trim()
        .strip_prefix("bytes=")
        .and_then(|range| range.split_once('-'))
        .ok_or_else(malformed)?;
    let first: u64 = first.trim().parse().map_err(|_| malformed())?;
    let last: u64 = last.trim().parse().map_err(|_| malformed())?;
    if first > last {
        return Err(malformed());
    }
    if last >= size {
        return Err(refuse(
            s3s::S3ErrorCode::InvalidRange,
            format!("Range specified is not valid for source object of size: {size}"),
        ));
    }
    Ok(first..last + 1)
}

/// Copies `range` of the concatenation of `sources` (file, size) of
/// `source_bucket` into a new file of `bucket` named `file_name`, in
/// bounded chunks, computing MD5 and the `algorithms` on the way. Runs on
/// a blocking thread.
fn copy_files(
    files: &ObjectFiles,
    source_bucket: &str,
    sources: &[(String, u64)],
    range: Range<u64>,
    bucket: &str,
    file_name: &str,
    algorithms: &[String],
) -> io::Result<(WrittenObject, BTreeMap<String, String>)> {
    let mut writer = files.writer(bucket)?;
    let mut digests = Digests::new(algorithms);
    let mut buffer = vec![0u8; WRITE_BATCH];
    let mut offset = 0u64;
    for (source, size) in sources {
        let (start, end) = (offset, offset + size);
        offset = end;
        let from = range.start.max(start);
        let to = range.end.min(end);
        if from >= to {
            continue;
        }
        let mut reader = files.open_read(source_bucket, source)?;
        reader.seek(SeekFrom::Start(from - start))?;
        let mut remaining = to - from;
        while remaining > 0 {
            let want = usize::try_from(remaining)
                .unwrap_or(WRITE_BATCH)
                .min(WRITE_BATCH);
            let read = match reader.read(&mut buffer[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "object file shorter than its record",
                    ));
                }
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            let chunk = &buffer[..read];
            digests.update(chunk);
            writer.write(chunk)?;
            remaining -= read as u64;
        }
    }
    let written = writer.finish(file_name)?;
    Ok((written, digests.finish()))
}

impl HangarS3 {
    pub(super) async fn op_create_multipart_upload(
        &self,
        request: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::PUT_OBJECT,
                Some(&request.input.key),
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        // Whoever the access check admitted (an account, or anonymous
        // through a bucket policy).
        let initiator_id = match self.principal(&request)? {
            Principal::Account(caller) => caller.account_id,
            Principal::Anonymous => "anonymous".to_owned(),
        };
        let input = request.input;
        validate_key(&input.key).map_err(from_bucket_error)?;
        check_acl(input.acl.as_ref().map(|acl| acl.as_str()))?;
        check_sse(input.server_side_encryption.as_ref())?;
        let tags = parse_tagging(input.tagging.as_deref())?;
        let algorithm = input
            .checksum_algorithm
            .as_ref()
            .map(|algorithm| algorithm.as_str().to_ascii_uppercase());
        if let Some(algorithm) = &algorithm
            && !ALGORITHMS.contains(&algorithm.as_str())
        {
            return Err(refuse(
                s3s::S3ErrorCode::InvalidRequest,
                format!("Checksum algorithm {algorithm} is not supported"),
            ));
        }
        match input.checksum_type.as_ref().map(|kind| kind.as_str()) {
            None | Some("COMPOSITE") => {}
            Some("FULL_OBJECT") => {
                return Err(refuse(
                    s3s::S3ErrorCode::InvalidRequest,
                    "The FULL_OBJECT checksum type is not supported for multipart uploads by \
                     this endpoint; use COMPOSITE",
                ));
            }
            Some(other) => {
                return Err(refuse(
                    s3s::S3ErrorCode::InvalidRequest,
                    format!("Value for x-amz-checksum-type header is invalid: {other}"),
                ));
            }
        }
        if algorithm.as_deref() == Some("CRC64NVME") {
            // S3 only offers FULL_OBJECT for CRC64NVME, which Hangar cannot
            // compute for multipart objects.
            return Err(refuse(
                s3s::S3ErrorCode::InvalidRequest,
                "The COMPOSITE checksum type is not supported for the CRC64NVME algorithm",
            ));
        }
        let now = self.hangar.now_ms();
        let upload = MultipartUpload {
            upload_id: domain::new_upload_id(now),
            bucket: bucket.name.clone(),
            key: input.key.clone(),
            initiator_id,
            initiated_ms: now,
            content_type: input.content_type,
            metadata: lower_metadata(input.metadata),
            tags,
            checksum_algorithm: algorithm.clone(),
        };
        self.hangar
            .create_upload(&bucket, &upload)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(bucket.name),
            key: Some(upload.key),
            upload_id: Some(upload.upload_id),
            checksum_algorithm: wire_algorithm(algorithm.as_ref()),
            checksum_type: algorithm
                .as_ref()
                .map(|_| dto::ChecksumType::from_static(dto::ChecksumType::COMPOSITE)),
            server_side_encryption: Some(sse_s3()),
            ..CreateMultipartUploadOutput::default()
        }))
    }

    /// Records a part whose file is in place: removes the part it replaced,
    /// or the new file when the upload is gone.
    async fn record_part(&self, bucket: &str, part: &UploadPart) -> S3Result<()> {
        match self.hangar.put_part_record(part).await {
            Ok(Some(replaced)) => {
                if replaced.file_name != part.file_name {
                    self.remove_file(bucket, &replaced.file_name).await;
                }
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(error) => {
                self.remove_file(bucket, &part.file_name).await;
                Err(from_bucket_error(error))
            }
        }
    }

    pub(super) async fn op_upload_part(
        &self,
        mut request: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::PUT_OBJECT,
                Some(&request.input.key),
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        validate_part_number(request.input.part_number).map_err(from_bucket_error)?;
        let upload = self
            .hangar
            .upload(&bucket, &request.input.key, &request.input.upload_id)
            .await
            .map_err(from_bucket_error)?;
        let mut claims = BodyClaims::new(
            &request.headers,
            request.input.content_md5.as_ref(),
            request.input.checksum_algorithm.as_ref(),
            request.input.checksum_crc32.as_ref(),
            request.input.checksum_crc32c.as_ref(),
            request.input.checksum_crc64nvme.as_ref(),
            request.input.checksum_sha1.as_ref(),
            request.input.checksum_sha256.as_ref(),
        );
        if let Some(expected) = &upload.checksum_algorithm {
            let sent = claims
                .values
                .keys()
                .chain(claims.algorithm.iter())
                .chain(claims.trailer.iter())
                .find(|sent| *sent != expected);
            if let Some(sent) = sent {
                return Err(refuse(
                    s3s::S3ErrorCode::InvalidRequest,
                    format!(
                        "Checksum Type mismatch occurred, expected checksum Type: {}, actual \
                         checksum Type: {}",
                        expected.to_ascii_lowercase(),
                        sent.to_ascii_lowercase()
                    ),
                ));
            }
            claims.algorithm = Some(expected.clone());
        }
        let body = request.input.body.take();
        let stored = self
            .store_body(&request, &bucket.name, &upload.key, body, &claims)
            .await?;
        let part = UploadPart {
            upload_id: upload.upload_id.clone(),
            part_number: request.input.part_number,
            file_name: stored.file_name.clone(),
            size: stored.size,
            etag: stored.etag(),
            last_modified_ms: self.hangar.now_ms(),
            checksum: stored.checksum.clone(),
        };
        self.record_part(&bucket.name, &part).await?;
        let checksum = part.checksum.as_ref();
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(part.etag.clone())),
            checksum_crc32: checksum_field(checksum, "CRC32"),
            checksum_crc32c: checksum_field(checksum, "CRC32C"),
            checksum_crc64nvme: checksum_field(checksum, "CRC64NVME"),
            checksum_sha1: checksum_field(checksum, "SHA1"),
            checksum_sha256: checksum_field(checksum, "SHA256"),
            server_side_encryption: Some(sse_s3()),
            ..UploadPartOutput::default()
        }))
    }

    pub(super) async fn op_upload_part_copy(
        &self,
        request: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::PUT_OBJECT,
                Some(&request.input.key),
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        validate_part_number(request.input.part_number).map_err(from_bucket_error)?;
        let (source_bucket, source_key) = match &request.input.copy_source {
            CopySource::Bucket {
                bucket,
                key,
                version_id,
            } => {
                if version_id.is_some() {
                    return Err(refuse(
                        s3s::S3ErrorCode::InvalidArgument,
                        "Versioning is not supported by this endpoint: a copy source cannot \
                         name a versionId",
                    ));
                }
                (bucket.to_string(), key.to_string())
            }
            _ => {
                return Err(refuse(
                    s3s::S3ErrorCode::InvalidArgument,
                    "Copy sources must be bucket/key",
                ));
            }
        };
        let source = self
            .access(
                &request,
                &source_bucket,
                actions::GET_OBJECT,
                Some(&source_key),
                request.input.expected_source_bucket_owner.as_ref(),
            )
            .await?;
        let upload = self
            .hangar
            .upload(&bucket, &request.input.key, &request.input.upload_id)
            .await
            .map_err(from_bucket_error)?;
        let object = self
            .hangar
            .object(&source, &source_key)
            .await
            .map_err(from_bucket_error)?;
        let size = u64::try_from(object.size).map_err(internal)?;
        let range = copy_range(request.input.copy_source_range.as_ref(), size)?;
        let sources: Vec<(String, u64)> = object
            .files()
            .into_iter()
            .map(|(name, size)| (name.to_owned(), u64::try_from(size).unwrap_or(0)))
            .collect();
        let algorithms: Vec<String> = upload.checksum_algorithm.iter().cloned().collect();
        let file_name = object_file_name(&upload.key, &format!("{:032x}", rand::random::<u128>()));
        let files = self.files.clone();
        let (bucket_name, final_name) = (bucket.name.clone(), file_name.clone());
        let (written, computed) = blocking(move || {
            copy_files(
                &files,
                &source.name,
                &sources,
                range,
                &bucket_name,
                &final_name,
                &algorithms,
            )
        })
        .await?;
        let checksum = upload.checksum_algorithm.as_ref().and_then(|algorithm| {
            computed.get(algorithm).map(|value| ObjectChecksum {
                algorithm: algorithm.clone(),
                value: value.clone(),
                composite: false,
            })
        });
        let part = UploadPart {
            upload_id: upload.upload_id.clone(),
            part_number: request.input.part_number,
            file_name,
            size: i64::try_from(written.size).map_err(internal)?,
            etag: to_hex(&written.md5),
            last_modified_ms: self.hangar.now_ms(),
            checksum,
        };
        self.record_part(&bucket.name, &part).await?;
        let checksum = part.checksum.as_ref();
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(part.etag.clone())),
                last_modified: Some(timestamp(part.last_modified_ms)),
                checksum_crc32: checksum_field(checksum, "CRC32"),
                checksum_crc32c: checksum_field(checksum, "CRC32C"),
                checksum_crc64nvme: checksum_field(checksum, "CRC64NVME"),
                checksum_sha1: checksum_field(checksum, "SHA1"),
                checksum_sha256: checksum_field(checksum, "SHA256"),
            }),
            server_side_encryption: Some(sse_s3()),
            ..UploadPartCopyOutput::default()
        }))
    }

    pub(super) async fn op_list_parts(
        &self,
        request: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::LIST_MULTIPART_UPLOAD_PARTS,
                Some(&request.input.key),
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let input = request.input;
        let max_parts = page_size(input.max_parts, "max-parts")?;
        let marker = input.part_number_marker.unwrap_or(0);
        if marker < 0 {
            return Err(refuse(
                s3s::S3ErrorCode::InvalidArgument,
                "Argument part-number-marker must be an integer between 0 and 2147483647",
            ));
        }
        let upload = self
            .hangar
            .upload(&bucket, &input.key, &input.upload_id)
            .await
            .map_err(from_bucket_error)?;
        let listing = self
            .hangar
            .list_parts(&upload, marker, max_parts)
            .await
            .map_err(from_bucket_error)?;
        let parts: Vec<Part> = listing
            .parts
            .iter()
            .map(|part| {
                let checksum = part.checksum.as_ref();
                Part {
                    e_tag: Some(ETag::Strong(part.etag.clone())),
                    last_modified: Some(timestamp(part.last_modified_ms)),
                    part_number: Some(part.part_number),
                    size: Some(part.size),
                    checksum_crc32: checksum_field(checksum, "CRC32"),
                    checksum_crc32c: checksum_field(checksum, "CRC32C"),
                    checksum_crc64nvme: checksum_field(checksum, "CRC64NVME"),
                    checksum_sha1: checksum_field(checksum, "SHA1"),
                    checksum_sha256: checksum_field(checksum, "SHA256"),
                }
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(bucket.name.clone()),
            key: Some(upload.key.clone()),
            upload_id: Some(upload.upload_id.clone()),
            initiator: Some(initiator(&upload)),
            owner: Some(Owner {
                display_name: None,
                id: Some(bucket.owner_id.clone()),
            }),
            storage_class: Some(dto::StorageClass::from_static(dto::StorageClass::STANDARD)),
            part_number_marker: Some(marker),
            next_part_number_marker: listing
                .next_marker
                .or(parts.last().and_then(|p| p.part_number)),
            max_parts: Some(i32::try_from(max_parts).unwrap_or(i32::MAX)),
            is_truncated: Some(listing.next_marker.is_some()),
            checksum_algorithm: wire_algorithm(upload.checksum_algorithm.as_ref()),
            checksum_type: upload
                .checksum_algorithm
                .as_ref()
                .map(|_| dto::ChecksumType::from_static(dto::ChecksumType::COMPOSITE)),
            parts: Some(parts),
            ..ListPartsOutput::default()
        }))
    }

    pub(super) async fn op_complete_multipart_upload(
        &self,
        request: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::PUT_OBJECT,
                Some(&request.input.key),
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let location = {
            let host = request
                .headers
                .get(http::header::HOST)
                .and_then(|host| host.to_str().ok())
                .unwrap_or("localhost")
                .to_owned();
            let scheme = if request.extensions.get::<SecureTransport>().is_some() {
                "https"
            } else {
                "http"
            };
            format!(
                "{scheme}://{host}/{}/{}",
                bucket.name,
                form_urlencoded::byte_serialize(request.input.key.as_bytes())
                    .collect::<String>()
                    .replace("%2F", "/")
            )
        };
        let input = request.input;
        if let Some(kind) = &input.checksum_type
            && kind.as_str() != "COMPOSITE"
        {
            return Err(refuse(
                s3s::S3ErrorCode::InvalidRequest,
                format!(
                    "The upload was created using the COMPOSITE checksum mode; the complete \
                     request specified {}",
                    kind.as_str()
                ),
            ));
        }
        let claims: Vec<PartClaim> = input
            .multipart_upload
            .as_ref()
            .and_then(|list| list.parts.as_ref())
            .map(|parts| {
                parts
                    .iter()
                    .map(|part| {
                        let mut checksums = Vec::new();
                        for (name, value) in [
                            ("CRC32", &part.checksum_crc32),
                            ("CRC32C", &part.checksum_crc32c),
                            ("CRC64NVME", &part.checksum_crc64nvme),
                            ("SHA1", &part.checksum_sha1),
                            ("SHA256", &part.checksum_sha256),
                        ] {
                            if let Some(value) = value {
                                checksums.push((name.to_owned(), value.clone()));
                            }
                        }
                        Ok(PartClaim {
                            part_number: part
                                .part_number
                                .ok_or_else(|| from_bucket_error(BucketError::MalformedXml))?,
                            etag: part.e_tag.as_ref().map(|etag| etag.value().to_owned()),
                            checksums,
                        })
                    })
                    .collect::<S3Result<Vec<PartClaim>>>()
            })
            .transpose()?
            .unwrap_or_default();
        let upload = self
            .hangar
            .upload(&bucket, &input.key, &input.upload_id)
            .await
            .map_err(from_bucket_error)?;
        let (object, completed) = self
            .hangar
            .complete_upload(&bucket, &upload, &claims, &WireDigester)
            .await
            .map_err(from_bucket_error)?;
        // The object is visible: now remove what nothing refers to.
        if let Some(replaced) = &completed.replaced {
            self.remove_unused_files(&bucket.name, replaced, Some(&object))
                .await;
        }
        for part in &completed.unused_parts {
            self.remove_file(&bucket.name, &part.file_name).await;
        }
        let checksum = object.checksum.as_ref();
        if let Some(checksum) = checksum {
            let sent = [
                ("CRC32", &input.checksum_crc32),
                ("CRC32C", &input.checksum_crc32c),
                ("SHA1", &input.checksum_sha1),
                ("SHA256", &input.checksum_sha256),
            ]
            .into_iter()
            .find_map(|(name, value)| value.as_ref().map(|value| (name, value)));
            if let Some((name, value)) = sent
                && (name != checksum.algorithm || value.trim() != checksum.value)
            {
                // Logged only: the object is committed, as S3 would have
                // refused before; clients that send it compute the same.
                tracing::warn!(
                    algorithm = name,
                    "CompleteMultipartUpload named an object checksum that differs"
                );
            }
        }
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(bucket.name.clone()),
            key: Some(object.key.clone()),
            e_tag: Some(wire_etag(&object)),
            location: Some(location),
            checksum_crc32: checksum_field(checksum, "CRC32"),
            checksum_crc32c: checksum_field(checksum, "CRC32C"),
            checksum_crc64nvme: checksum_field(checksum, "CRC64NVME"),
            checksum_sha1: checksum_field(checksum, "SHA1"),
            checksum_sha256: checksum_field(checksum, "SHA256"),
            checksum_type: checksum_type(checksum),
            server_side_encryption: Some(sse_s3()),
            ..CompleteMultipartUploadOutput::default()
        }))
    }

    pub(super) async fn op_abort_multipart_upload(
        &self,
        request: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::ABORT_MULTIPART_UPLOAD,
                Some(&request.input.key),
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let input = request.input;
        let upload = self
            .hangar
            .upload(&bucket, &input.key, &input.upload_id)
            .await
            .map_err(from_bucket_error)?;
        let parts = self
            .hangar
            .abort_upload(&upload.upload_id)
            .await
            .map_err(from_bucket_error)?;
        for part in &parts {
            self.remove_file(&bucket.name, &part.file_name).await;
        }
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(super) async fn op_list_multipart_uploads(
        &self,
        request: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::LIST_BUCKET_MULTIPART_UPLOADS,
                None,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let input = request.input;
        let max_uploads = page_size(input.max_uploads, "max-uploads")?;
        let key_marker = input.key_marker.clone().filter(|marker| !marker.is_empty());
        let domain_input = ListUploadsInput {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            max_uploads,
            upload_id_marker: input
                .upload_id_marker
                .clone()
                .filter(|marker| !marker.is_empty() && key_marker.is_some()),
            key_marker,
        };
        let listing = self
            .hangar
            .list_uploads(&bucket, &domain_input)
            .await
            .map_err(from_bucket_error)?;
        let uploads: Vec<WireUpload> = listing
            .uploads
            .iter()
            .map(|upload| WireUpload {
                key: Some(upload.key.clone()),
                upload_id: Some(upload.upload_id.clone()),
                initiated: Some(timestamp(upload.initiated_ms)),
                initiator: Some(initiator(upload)),
                owner: Some(Owner {
                    display_name: None,
                    id: Some(bucket.owner_id.clone()),
                }),
                storage_class: Some(dto::StorageClass::from_static(dto::StorageClass::STANDARD)),
                checksum_algorithm: wire_algorithm(upload.checksum_algorithm.as_ref()),
                checksum_type: upload
                    .checksum_algorithm
                    .as_ref()
                    .map(|_| dto::ChecksumType::from_static(dto::ChecksumType::COMPOSITE)),
            })
            .collect();
        let common_prefixes: Vec<CommonPrefix> = listing
            .common_prefixes
            .into_iter()
            .map(|prefix| CommonPrefix {
                prefix: Some(prefix),
            })
            .collect();
        let (next_key_marker, next_upload_id_marker) = match listing.next {
            Some((key, id)) => (Some(key), id),
            None => (None, None),
        };
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(bucket.name.clone()),
            prefix: input.prefix,
            delimiter: input.delimiter,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(i32::try_from(max_uploads).unwrap_or(i32::MAX)),
            is_truncated: Some(next_key_marker.is_some()),
            next_key_marker,
            next_upload_id_marker,
            uploads: Some(uploads),
            common_prefixes: (!common_prefixes.is_empty()).then_some(common_prefixes),
            ..ListMultipartUploadsOutput::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges() {
        assert_eq!(copy_range(None, 10).ok(), Some(0..10));
        assert_eq!(
            copy_range(Some(&"bytes=2-5".to_owned()), 10).ok(),
            Some(2..6)
        );
        assert_eq!(
            copy_range(Some(&"bytes=0-9".to_owned()), 10).ok(),
            Some(0..10)
        );
        for malformed in ["bytes=5-2", "bytes=2-", "2-5", "bytes=-3", "bytes=a-b"] {
            let error = copy_range(Some(&malformed.to_owned()), 10).expect_err(malformed);
            assert_eq!(error.code().as_str(), "InvalidArgument", "{malformed}");
        }
        let error = copy_range(Some(&"bytes=5-10".to_owned()), 10).expect_err("past the end");
        assert_eq!(error.code().as_str(), "InvalidRange");
    }

    #[test]
    fn wire_digests() {
        // Independent values: python3 -c "import hashlib, zlib; ..."
        assert_eq!(
            to_hex(&WireDigester.md5(b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            WireDigester.checksum("CRC32", b"123456789"),
            Some(vec![0xcb, 0xf4, 0x39, 0x26])
        );
        assert_eq!(WireDigester.checksum("MD4", b""), None);
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(None, "max-parts").ok(), Some(1000));
        assert_eq!(page_size(Some(5000), "max-parts").ok(), Some(1000));
        assert_eq!(page_size(Some(0), "max-parts").ok(), Some(0));
        assert!(page_size(Some(-1), "max-parts").is_err());
    }
}
