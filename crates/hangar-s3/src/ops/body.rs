//! Receiving a request body into a new object file: the one path that
//! `PutObject`, `UploadPart` and the copies take, so every body is streamed
//! with bounded memory, checked against `Content-MD5` and the additional
//! checksum the client sent (`x-amz-checksum-*`, as a header or as an
//! `aws-chunked` trailer), and made durable before anything refers to it.

use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::dto::ChecksumAlgorithm;

use super::*;

/// The additional checksums S3 knows, by their wire names.
pub(crate) const ALGORITHMS: [&str; 5] = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];

/// S3's largest single `PutObject` or `UploadPart` body: 5 GiB.
pub(crate) const MAX_BODY_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// What a request claims about its body.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyClaims {
    /// `Content-MD5` (base64).
    pub content_md5: Option<String>,
    /// `x-amz-sdk-checksum-algorithm` / `ChecksumAlgorithm`: compute this
    /// one even when no value was sent.
    pub algorithm: Option<String>,
    /// Expected values by algorithm (upper case), from headers.
    pub values: BTreeMap<String, String>,
    /// `x-amz-trailer`: the checksum header that follows the body.
    pub trailer: Option<String>,
}

impl BodyClaims {
    /// Reads the claims off a request's typed checksum fields and headers.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        headers: &http::HeaderMap,
        content_md5: Option<&String>,
        algorithm: Option<&ChecksumAlgorithm>,
        crc32: Option<&String>,
        crc32c: Option<&String>,
        crc64nvme: Option<&String>,
        sha1: Option<&String>,
        sha256: Option<&String>,
    ) -> Self {
        let mut values = BTreeMap::new();
        for (name, value) in [
            ("CRC32", crc32),
            ("CRC32C", crc32c),
            ("CRC64NVME", crc64nvme),
            ("SHA1", sha1),
            ("SHA256", sha256),
        ] {
            if let Some(value) = value {
                values.insert(name.to_owned(), value.trim().to_owned());
            }
        }
        let trailer = headers
            .get("x-amz-trailer")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                value
                    .trim()
                    .to_ascii_lowercase()
                    .strip_prefix("x-amz-checksum-")
                    .map(str::to_ascii_uppercase)
            });
        Self {
            content_md5: content_md5.cloned(),
            algorithm: algorithm.map(|algorithm| algorithm.as_str().to_ascii_uppercase()),
            values,
            trailer,
        }
    }

    /// The algorithms to compute while the body streams in.
    fn wanted(&self) -> S3Result<Vec<String>> {
        let mut wanted: Vec<String> = self.values.keys().cloned().collect();
        wanted.extend(self.algorithm.clone());
        wanted.extend(self.trailer.clone());
        wanted.sort();
        wanted.dedup();
        for algorithm in &wanted {
            if !ALGORITHMS.contains(&algorithm.as_str()) {
                return Err(s3s::S3Error::with_message(
                    s3s::S3ErrorCode::InvalidRequest,
                    format!("Value for x-amz-checksum-algorithm header is invalid: {algorithm}"),
                ));
            }
        }
        if self.values.len() > 1 {
            return Err(s3s::S3Error::with_message(
                s3s::S3ErrorCode::InvalidRequest,
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
            ));
        }
        Ok(wanted)
    }
}

/// A body made durable in a new file, not yet referenced by any record.
#[derive(Debug, Clone)]
pub(crate) struct StoredBody {
    pub file_name: String,
    pub size: i64,
    pub md5: [u8; 16],
    /// The additional checksum that was asked for or sent, verified.
    pub checksum: Option<ObjectChecksum>,
}

impl StoredBody {
    pub(crate) fn etag(&self) -> String {
        to_hex(&self.md5)
    }
}

/// Running digests of every wanted algorithm.
pub(crate) struct Digests {
    hasher: ChecksumHasher,
}

impl Digests {
    pub(crate) fn new(algorithms: &[String]) -> Self {
        let mut hasher = ChecksumHasher::default();
        for algorithm in algorithms {
            match algorithm.as_str() {
                "CRC32" => hasher.crc32 = Some(Crc32::new()),
                "CRC32C" => hasher.crc32c = Some(Crc32c::new()),
                "CRC64NVME" => hasher.crc64nvme = Some(Crc64Nvme::new()),
                "SHA1" => hasher.sha1 = Some(Sha1::new()),
                "SHA256" => hasher.sha256 = Some(Sha256::new()),
                _ => {}
            }
        }
        Self { hasher }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// Base64 digests by algorithm.
    pub(crate) fn finish(self) -> BTreeMap<String, String> {
        let sums = self.hasher.finalize();
        [
            ("CRC32", sums.checksum_crc32),
            ("CRC32C", sums.checksum_crc32c),
            ("CRC64NVME", sums.checksum_crc64nvme),
            ("SHA1", sums.checksum_sha1),
            ("SHA256", sums.checksum_sha256),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name.to_owned(), value)))
        .collect()
    }
}

fn bad_digest(algorithm: &str) -> s3s::S3Error {
    s3s::S3Error::with_message(
        s3s::S3ErrorCode::BadDigest,
        format!("The {algorithm} you specified did not match the calculated checksum."),
    )
}

/// Trailing headers that dev mode decoded from an `aws-chunked` body (the
/// `s3s` handle only exists for verified requests).
#[derive(Debug, Clone, Default)]
pub(crate) struct DevTrailers(pub Arc<std::sync::Mutex<Option<http::HeaderMap>>>);

/// The value of a trailing header, from `s3s`'s verified trailers or dev
/// mode's.
fn trailer_value<T>(request: &S3Request<T>, name: &str) -> Option<String> {
    let header = format!("x-amz-checksum-{}", name.to_ascii_lowercase());
    let read = |headers: &http::HeaderMap| {
        headers
            .get(header.as_str())
            .and_then(|value| value.to_str().ok())
            .map(|value| value.trim().to_owned())
    };
    if let Some(trailers) = &request.trailing_headers
        && let Some(value) = trailers.read(read).flatten()
    {
        return Some(value);
    }
    let dev = request.extensions.get::<DevTrailers>()?;
    let guard = dev.0.lock().ok()?;
    guard.as_ref().and_then(read)
}

impl HangarS3 {
    /// Streams `body` into a new file of `bucket`, verifies what `claims`
    /// says about it, and makes it durable under a fresh file name for
    /// `key`. Nothing is left on disk when a check fails.
    pub(crate) async fn store_body<T>(
        &self,
        request: &S3Request<T>,
        bucket: &str,
        key: &str,
        body: Option<StreamingBlob>,
        claims: &BodyClaims,
    ) -> S3Result<StoredBody> {
        let wanted = claims.wanted()?;
        let files = self.files.clone();
        let bucket_name = bucket.to_owned();
        let writer = blocking(move || files.writer(&bucket_name)).await?;
        let (writer, digests) = write_body(writer, body, Digests::new(&wanted)).await?;
        let computed = digests.finish();
        let discard = |writer: ObjectWriter| async move {
            // Dropping the writer removes its temporary file.
            drop(
                blocking(move || {
                    drop(writer);
                    Ok(())
                })
                .await,
            );
        };
        if let Some(expected) = &claims.content_md5
            && expected.trim() != base64(&writer.md5())
        {
            discard(writer).await;
            return Err(s3s::S3Error::with_message(
                s3s::S3ErrorCode::BadDigest,
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
        let mut checksum = None;
        for algorithm in &wanted {
            let expected = claims.values.get(algorithm).cloned().or_else(|| {
                (claims.trailer.as_deref() == Some(algorithm.as_str()))
                    .then(|| trailer_value(request, algorithm))
                    .flatten()
            });
            let Some(actual) = computed.get(algorithm) else {
                continue;
            };
            if let Some(expected) = expected
                && &expected != actual
            {
                discard(writer).await;
                return Err(bad_digest(algorithm));
            }
            // The one S3 keeps: the sent one, else the asked-for one.
            if checksum.is_none()
                || claims.values.contains_key(algorithm)
                || claims.trailer.as_deref() == Some(algorithm.as_str())
            {
                checksum = Some(ObjectChecksum {
                    algorithm: algorithm.clone(),
                    value: actual.clone(),
                    composite: false,
                });
            }
        }
        let file_name = object_file_name(key, &format!("{:032x}", rand::random::<u128>()));
        let final_name = file_name.clone();
        let written: WrittenObject = blocking(move || writer.finish(&final_name)).await?;
        Ok(StoredBody {
            file_name,
            size: i64::try_from(written.size).map_err(internal)?,
            md5: written.md5,
            checksum,
        })
    }
}

/// Streams a request body into a new object file (not yet finished),
/// feeding the digests on the way.
async fn write_body(
    mut writer: ObjectWriter,
    body: Option<StreamingBlob>,
    mut digests: Digests,
) -> S3Result<(ObjectWriter, Digests)> {
    let Some(mut body) = body else {
        return Ok((writer, digests));
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
            if writer.size() + pending.len() as u64 > MAX_BODY_BYTES {
                // Dropping the writer removes its temporary file.
                drop(
                    blocking(move || {
                        drop(writer);
                        Ok(())
                    })
                    .await,
                );
                return Err(s3s::S3Error::with_message(
                    s3s::S3ErrorCode::EntityTooLarge,
                    "Your proposed upload exceeds the maximum allowed object size.",
                ));
            }
        }
        if pending.len() >= WRITE_BATCH || (done && !pending.is_empty()) {
            let data = std::mem::replace(&mut pending, Vec::with_capacity(WRITE_BATCH));
            let (back, back_digests) = blocking(move || {
                digests.update(&data);
                writer.write(&data).map(|()| (writer, digests))
            })
            .await?;
            writer = back;
            digests = back_digests;
        }
        if done {
            return Ok((writer, digests));
        }
    }
}

/// The checksum fields of a reply: the one algorithm's value.
pub(crate) fn checksum_field(checksum: Option<&ObjectChecksum>, algorithm: &str) -> Option<String> {
    checksum
        .filter(|checksum| checksum.algorithm == algorithm)
        .map(|checksum| checksum.value.clone())
}

impl HangarS3 {
    /// Copies `length` bytes from `reader` into a new durable file of
    /// `bucket` named for `key`, computing the MD5 and, when asked, one
    /// additional checksum on the way (`CopyObject`, `UploadPartCopy`).
    /// Runs on one blocking thread, a chunk at a time.
    pub(crate) async fn copy_to_new_file(
        &self,
        mut reader: super::read::RangeReader,
        length: u64,
        bucket: &str,
        key: &str,
        algorithm: Option<String>,
    ) -> S3Result<StoredBody> {
        let files = self.files.clone();
        let bucket = bucket.to_owned();
        let file_name = object_file_name(key, &format!("{:032x}", rand::random::<u128>()));
        let final_name = file_name.clone();
        let wanted: Vec<String> = algorithm.iter().cloned().collect();
        let (written, computed) = blocking(move || {
            let mut writer = files.writer(&bucket)?;
            let mut digests = Digests::new(&wanted);
            let mut buffer = vec![0u8; WRITE_BATCH];
            let mut remaining = length;
            while remaining > 0 {
                let want = usize::try_from(remaining)
                    .unwrap_or(WRITE_BATCH)
                    .min(WRITE_BATCH);
                let read = reader.read(&mut buffer[..want])?;
                if read == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "copy source shorter than its record",
                    ));
                }
                digests.update(&buffer[..read]);
                writer.write(&buffer[..read])?;
                remaining -= read as u64;
            }
            let written = writer.finish(&final_name)?;
            Ok((written, digests.finish()))
        })
        .await?;
        let checksum = algorithm.and_then(|algorithm| {
            computed.get(&algorithm).map(|value| ObjectChecksum {
                algorithm: algorithm.clone(),
                value: value.clone(),
                composite: false,
            })
        });
        Ok(StoredBody {
            file_name,
            size: i64::try_from(written.size).map_err(internal)?,
            md5: written.md5,
            checksum,
        })
    }
}
