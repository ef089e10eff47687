//! S3 multipart uploads: upload IDs, the rules of part numbers and of the
//! part list `CompleteMultipartUpload` names, the multipart ETag and the
//! composite checksum, and the pagination of `ListParts` and
//! `ListMultipartUploads`.
//!
//! An upload and its parts are records of the store; a part's bytes are a
//! durable file of the bucket's folder. Completion is one transaction of the
//! store: the object record (whose `parts` are the listed part files, in
//! order) replaces the one under its key while the upload and its part
//! records are deleted, so a reader sees the old object or the new one,
//! never a part of it. The files of parts the object does not use, and of
//! the object it replaced, are removed by the caller afterwards.
//!
//! Digests are computed by the caller ([`PartDigester`]): the domain has no
//! MD5 or CRC of its own.

use crate::buckets::BucketError;
use crate::model::{
    Bucket, CompletedUpload, MultipartUpload, ObjectChecksum, ObjectPart, S3Object, UploadPart,
};
use crate::objects::{common_prefix, validate_key};
use crate::repo::StoreError;
use crate::service::Hangar;

/// Every part but the last must hold at least this many bytes.
pub const MIN_PART_SIZE: i64 = 5 * 1024 * 1024;
/// Part numbers run from 1 to this.
pub const MAX_PART_NUMBER: i32 = 10_000;
/// The largest page of `ListParts` and `ListMultipartUploads` (and their
/// default).
pub const MAX_PAGE: usize = 1000;
/// How many times completion re-reads the parts after losing a race with an
/// `UploadPart` that replaced one of them.
const RETRIES: usize = 8;
/// How many records a listing reads from the store at a time.
const LIST_BATCH: usize = 1000;

/// A fresh upload ID: 12 hex digits of the initiation time in milliseconds,
/// then 32 random hex digits. Opaque to clients, unguessable, and sorting
/// (as text) in order of initiation, which is the order S3 lists the
/// uploads of one key in.
pub fn new_upload_id(now_ms: i64) -> String {
    let millis = u64::try_from(now_ms).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("{millis:012x}{:032x}", rand::random::<u128>())
}

/// Part numbers are 1 to 10,000; anything else is `InvalidArgument`.
pub fn validate_part_number(part_number: i32) -> Result<(), BucketError> {
    if (1..=MAX_PART_NUMBER).contains(&part_number) {
        Ok(())
    } else {
        Err(BucketError::InvalidArgument(format!(
            "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
        )))
    }
}

/// An ETag as clients send it back: with or without its quotes.
pub fn strip_quotes(etag: &str) -> &str {
    let etag = etag.trim();
    etag.strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(etag)
}

/// One entry of `CompleteMultipartUpload`'s part list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartClaim {
    pub part_number: i32,
    /// The part's ETag as the client has it (quotes optional).
    pub etag: Option<String>,
    /// Checksums the client names for the part: `(algorithm, base64)`.
    pub checksums: Vec<(String, String)>,
}

/// Checks the part list of `CompleteMultipartUpload` against the upload's
/// `parts` and returns the parts it names, in order. The list must not be
/// empty (`MalformedXML`), its part numbers valid (`InvalidArgument`) and
/// strictly ascending (`InvalidPartOrder`); each part must exist with the
/// ETag and checksums named (`InvalidPart`); each but the last must hold at
/// least [`MIN_PART_SIZE`] bytes (`EntityTooSmall`).
pub fn select_parts<'p>(
    claims: &[PartClaim],
    parts: &'p [UploadPart],
) -> Result<Vec<&'p UploadPart>, BucketError> {
    if claims.is_empty() {
        return Err(BucketError::MalformedXml);
    }
    for claim in claims {
        validate_part_number(claim.part_number)?;
    }
    if claims
        .windows(2)
        .any(|pair| pair[0].part_number >= pair[1].part_number)
    {
        return Err(BucketError::InvalidPartOrder);
    }
    let mut selected = Vec::with_capacity(claims.len());
    for claim in claims {
        let number = claim.part_number;
        let Some(part) = parts.iter().find(|part| part.part_number == number) else {
            return Err(BucketError::InvalidPart(format!(
                "part {number} was not uploaded"
            )));
        };
        if let Some(etag) = &claim.etag
            && !strip_quotes(etag).eq_ignore_ascii_case(&part.etag)
        {
            return Err(BucketError::InvalidPart(format!(
                "the ETag of part {number} does not match"
            )));
        }
        for (algorithm, value) in &claim.checksums {
            let matches = part.checksum.as_ref().is_some_and(|checksum| {
                checksum.algorithm.eq_ignore_ascii_case(algorithm) && checksum.value == value.trim()
            });
            if !matches {
                return Err(BucketError::InvalidPart(format!(
                    "the {algorithm} checksum of part {number} does not match"
                )));
            }
        }
        selected.push(part);
    }
    if let Some(small) = selected[..selected.len() - 1]
        .iter()
        .find(|part| part.size < MIN_PART_SIZE)
    {
        return Err(BucketError::EntityTooSmall {
            part_number: small.part_number,
            size: small.size,
        });
    }
    Ok(selected)
}

/// The digests completion needs, computed by the caller.
pub trait PartDigester: Send + Sync {
    fn md5(&self, data: &[u8]) -> [u8; 16];
    /// The raw digest of `data` by `algorithm` (`CRC32`, `CRC32C`, `SHA1`,
    /// `SHA256`, ...), `None` for an algorithm it does not know.
    fn checksum(&self, algorithm: &str, data: &[u8]) -> Option<Vec<u8>>;
}

/// The ETag of a multipart object (without quotes): the hex MD5 of the
/// concatenated binary MD5s of its parts, a dash, and the number of parts.
pub fn multipart_etag(
    parts: &[&UploadPart],
    digester: &dyn PartDigester,
) -> Result<String, BucketError> {
    let mut concatenated = Vec::with_capacity(parts.len() * 16);
    for part in parts {
        let md5 = from_hex(&part.etag)
            .filter(|bytes| bytes.len() == 16)
            .ok_or_else(|| {
                BucketError::Internal(format!(
                    "part {} of upload {} has a malformed ETag",
                    part.part_number, part.upload_id
                ))
            })?;
        concatenated.extend_from_slice(&md5);
    }
    Ok(format!(
        "{}-{}",
        to_hex(&digester.md5(&concatenated)),
        parts.len()
    ))
}

/// The composite checksum of a multipart object: the `algorithm` digest of
/// the concatenated raw checksums of its parts, in base64, a dash, and the
/// number of parts. Every part must carry a checksum of `algorithm`.
pub fn composite_checksum(
    algorithm: &str,
    parts: &[&UploadPart],
    digester: &dyn PartDigester,
) -> Result<ObjectChecksum, BucketError> {
    let mut concatenated = Vec::new();
    for part in parts {
        let raw = part
            .checksum
            .as_ref()
            .filter(|checksum| checksum.algorithm == algorithm)
            .and_then(|checksum| from_base64(&checksum.value))
            .ok_or_else(|| {
                BucketError::InvalidPart(format!(
                    "part {} has no {algorithm} checksum",
                    part.part_number
                ))
            })?;
        concatenated.extend_from_slice(&raw);
    }
    let digest = digester.checksum(algorithm, &concatenated).ok_or_else(|| {
        BucketError::InvalidRequest(format!("Checksum algorithm {algorithm} is not supported"))
    })?;
    Ok(ObjectChecksum {
        algorithm: algorithm.to_owned(),
        value: format!("{}-{}", to_base64(&digest), parts.len()),
        composite: true,
    })
}

/// The record of the object an upload completes into, made of `parts` (as
/// [`select_parts`] returned them).
pub fn completed_object(
    upload: &MultipartUpload,
    parts: &[&UploadPart],
    digester: &dyn PartDigester,
    now_ms: i64,
) -> Result<S3Object, BucketError> {
    let checksum = upload
        .checksum_algorithm
        .as_deref()
        .map(|algorithm| composite_checksum(algorithm, parts, digester))
        .transpose()?;
    Ok(S3Object {
        bucket: upload.bucket.clone(),
        key: upload.key.clone(),
        size: parts.iter().map(|part| part.size).sum(),
        etag: multipart_etag(parts, digester)?,
        content_type: upload.content_type.clone(),
        metadata: upload.metadata.clone(),
        last_modified_ms: now_ms,
        file_name: String::new(),
        parts: parts
            .iter()
            .map(|part| ObjectPart {
                file_name: part.file_name.clone(),
                size: part.size,
            })
            .collect(),
        tags: upload.tags.clone(),
        checksum,
    })
}

/// One page of `ListParts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartListing {
    pub parts: Vec<UploadPart>,
    /// Set when the page was cut short: `NextPartNumberMarker`.
    pub next_marker: Option<i32>,
}

/// Cuts parts read with a limit of `max + 1` to a page of `max`.
pub fn page_parts(mut parts: Vec<UploadPart>, max: usize) -> PartListing {
    if parts.len() <= max {
        return PartListing {
            parts,
            next_marker: None,
        };
    }
    parts.truncate(max);
    let next_marker = parts.last().map(|part| part.part_number);
    PartListing { parts, next_marker }
}

/// `ListMultipartUploads`' parameters, already decoded from the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListUploadsInput {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// At most this many uploads plus common prefixes.
    pub max_uploads: usize,
    /// List the uploads of keys after this one...
    pub key_marker: Option<String>,
    /// ... and, with this, the uploads of `key_marker` after this ID.
    pub upload_id_marker: Option<String>,
}

/// One page of `ListMultipartUploads`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadListing {
    pub uploads: Vec<MultipartUpload>,
    pub common_prefixes: Vec<String>,
    /// Set when the page was cut short: `NextKeyMarker` and
    /// `NextUploadIdMarker` (none after a common prefix).
    pub next: Option<(String, Option<String>)>,
}

/// Builds a page of uploads from records offered in (key, upload ID) order.
pub struct UploadCollector<'a> {
    input: &'a ListUploadsInput,
    listing: UploadListing,
    /// The last entry put on the page (or the start markers).
    last: Option<(String, Option<String>)>,
    count: usize,
}

impl<'a> UploadCollector<'a> {
    pub fn new(input: &'a ListUploadsInput) -> Self {
        Self {
            input,
            listing: UploadListing::default(),
            last: input
                .key_marker
                .clone()
                .map(|key| (key, input.upload_id_marker.clone())),
            count: 0,
        }
    }

    /// Offers the next record; `false` once the page is full and this
    /// record proves there is more (then the page is cut short).
    pub fn offer(&mut self, upload: MultipartUpload) -> bool {
        let rolled_up = self
            .input
            .delimiter
            .as_deref()
            .and_then(|delimiter| common_prefix(&upload.key, &self.input.prefix, delimiter))
            .map(str::to_owned);
        if let Some(prefix) = &rolled_up
            && self
                .last
                .as_ref()
                .is_some_and(|(key, id)| id.is_none() && key == prefix)
        {
            return true;
        }
        if self.count >= self.input.max_uploads {
            self.listing.next = self.last.clone();
            return false;
        }
        self.count += 1;
        match rolled_up {
            Some(prefix) => {
                self.last = Some((prefix.clone(), None));
                self.listing.common_prefixes.push(prefix);
            }
            None => {
                self.last = Some((upload.key.clone(), Some(upload.upload_id.clone())));
                self.listing.uploads.push(upload);
            }
        }
        true
    }

    pub fn finish(self) -> UploadListing {
        self.listing
    }
}

impl Hangar {
    /// `CreateMultipartUpload`: stores the upload. `bucket` comes from
    /// [`Hangar::authorize`].
    pub async fn create_upload(
        &self,
        bucket: &Bucket,
        upload: &MultipartUpload,
    ) -> Result<(), BucketError> {
        validate_key(&upload.key)?;
        if upload.bucket != bucket.name {
            return Err(BucketError::Internal(format!(
                "upload of bucket {} created in {}",
                upload.bucket, bucket.name
            )));
        }
        match self.store.insert_upload(upload).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(BucketError::NoSuchBucket(bucket.name.clone())),
            Err(other) => Err(other.into()),
        }
    }

    /// The upload `upload_id` of `key` in `bucket`; `NoSuchUpload` when it
    /// does not exist there.
    pub async fn upload(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
    ) -> Result<MultipartUpload, BucketError> {
        match self.store.get_upload(upload_id).await? {
            Some(upload) if upload.bucket == bucket.name && upload.key == key => Ok(upload),
            _ => Err(BucketError::NoSuchUpload(upload_id.to_owned())),
        }
    }

    /// Records a part whose file is in place; returns the part it replaced
    /// (whose file the caller removes). `NoSuchUpload` when the upload was
    /// completed or aborted meanwhile (the caller removes the new file).
    pub async fn put_part_record(
        &self,
        part: &UploadPart,
    ) -> Result<Option<UploadPart>, BucketError> {
        validate_part_number(part.part_number)?;
        match self.store.put_part(part).await {
            Ok(replaced) => Ok(replaced),
            Err(StoreError::Conflict(_)) => Err(BucketError::NoSuchUpload(part.upload_id.clone())),
            Err(other) => Err(other.into()),
        }
    }

    /// `ListParts`: the parts numbered above `marker`, at most `max` (capped
    /// at [`MAX_PAGE`]).
    pub async fn list_parts(
        &self,
        upload: &MultipartUpload,
        marker: i32,
        max: usize,
    ) -> Result<PartListing, BucketError> {
        let max = max.min(MAX_PAGE);
        let parts = self
            .store
            .list_parts(&upload.upload_id, marker, max + 1)
            .await?;
        Ok(page_parts(parts, max))
    }

    /// Every part of an upload, in part-number order.
    pub async fn all_parts(&self, upload_id: &str) -> Result<Vec<UploadPart>, BucketError> {
        let mut parts: Vec<UploadPart> = Vec::new();
        loop {
            let after = parts.last().map_or(0, |part| part.part_number);
            let batch = self.store.list_parts(upload_id, after, LIST_BATCH).await?;
            let complete = batch.len() < LIST_BATCH;
            parts.extend(batch);
            if complete {
                return Ok(parts);
            }
        }
    }

    /// `CompleteMultipartUpload`: checks the part list, then, in one
    /// transaction of the store, makes the object of the named parts
    /// visible and deletes the upload. Returns the new object and what the
    /// caller must clean up (the replaced object, the unused parts).
    pub async fn complete_upload(
        &self,
        bucket: &Bucket,
        upload: &MultipartUpload,
        claims: &[PartClaim],
        digester: &dyn PartDigester,
    ) -> Result<(S3Object, CompletedUpload), BucketError> {
        if claims.is_empty() {
            return Err(BucketError::MalformedXml);
        }
        for _ in 0..RETRIES {
            let parts = self.all_parts(&upload.upload_id).await?;
            let selected = select_parts(claims, &parts)?;
            let object = completed_object(upload, &selected, digester, self.now_ms())?;
            match self.store.complete_upload(&upload.upload_id, &object).await {
                Ok(completed) => return Ok((object, completed)),
                Err(StoreError::Conflict(what)) if what == bucket.name => {
                    return Err(BucketError::NoSuchBucket(bucket.name.clone()));
                }
                Err(StoreError::Conflict(_)) => {
                    if self.store.get_upload(&upload.upload_id).await?.is_none() {
                        return Err(BucketError::NoSuchUpload(upload.upload_id.clone()));
                    }
                    // A part was replaced meanwhile: check the list again.
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(BucketError::Internal(format!(
            "completing upload {} kept racing part uploads",
            upload.upload_id
        )))
    }

    /// `AbortMultipartUpload` (and the collector of abandoned uploads):
    /// deletes the upload and its parts and returns the parts, whose files
    /// (in the upload's bucket) the caller removes. `NoSuchUpload` when
    /// there is no such upload. Needs no wire request.
    pub async fn abort_upload(&self, upload_id: &str) -> Result<Vec<UploadPart>, BucketError> {
        self.store
            .delete_upload(upload_id)
            .await?
            .ok_or_else(|| BucketError::NoSuchUpload(upload_id.to_owned()))
    }

    /// Uploads initiated more than `older_than_ms` ago, oldest first, at
    /// most [`LIST_BATCH`] per call: what the collector aborts (with
    /// [`Hangar::abort_upload`], removing the returned parts' files).
    pub async fn abandoned_uploads(
        &self,
        older_than_ms: i64,
    ) -> Result<Vec<MultipartUpload>, BucketError> {
        let before = self.now_ms().saturating_sub(older_than_ms.max(0));
        Ok(self
            .store
            .uploads_initiated_before(before, LIST_BATCH)
            .await?)
    }

    /// `ListMultipartUploads`: uploads under the prefix in (key, upload ID)
    /// order, rolled up by the delimiter, at most `max_uploads` entries.
    pub async fn list_uploads(
        &self,
        bucket: &Bucket,
        input: &ListUploadsInput,
    ) -> Result<UploadListing, BucketError> {
        let mut collector = UploadCollector::new(input);
        if input.max_uploads == 0 {
            return Ok(collector.finish());
        }
        let mut after_key = input.key_marker.clone().unwrap_or_default();
        let mut after_id = input
            .upload_id_marker
            .clone()
            .filter(|_| input.key_marker.is_some());
        loop {
            let batch = self
                .store
                .list_uploads(
                    &bucket.name,
                    &input.prefix,
                    &after_key,
                    after_id.as_deref(),
                    LIST_BATCH,
                )
                .await?;
            let complete = batch.len() < LIST_BATCH;
            for upload in batch {
                after_key = upload.key.clone();
                after_id = Some(upload.upload_id.clone());
                if !collector.offer(upload) {
                    return Ok(collector.finish());
                }
            }
            if complete {
                return Ok(collector.finish());
            }
        }
    }
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Bytes of a hex string (either case); `None` when it is not hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| {
            text.get(at..at + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn to_base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Bytes of standard base64 (padding required); `None` when malformed.
pub fn from_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().as_bytes();
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for (index, group) in text.chunks(4).enumerate() {
        let last = index == text.len() / 4 - 1;
        let padding = group.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &group[..4 - padding] {
            let value = BASE64.iter().position(|&a| a == c)?;
            n = (n << 6) | u32::try_from(value).ok()?;
        }
        n <<= 6 * u32::try_from(padding).ok()?;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - padding]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A digester for tests: MD5 and CRC32 written out here, independent
    /// of the crates the wire uses.
    struct TestDigester;

    fn md5(data: &[u8]) -> [u8; 16] {
        const S: [u32; 64] = [
            7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20,
            5, 9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
            6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
        ];
        let k: Vec<u32> = (0..64)
            .map(|i: i32| ((f64::from(i) + 1.0).sin().abs() * 4_294_967_296.0) as u32)
            .collect();
        let mut message = data.to_vec();
        let bit_len = (data.len() as u64).wrapping_mul(8);
        message.push(0x80);
        while message.len() % 64 != 56 {
            message.push(0);
        }
        message.extend_from_slice(&bit_len.to_le_bytes());
        let (mut a0, mut b0, mut c0, mut d0) = (
            0x6745_2301u32,
            0xefcd_ab89u32,
            0x98ba_dcfeu32,
            0x1032_5476u32,
        );
        for chunk in message.chunks(64) {
            let m: Vec<u32> = chunk
                .chunks(4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                .collect();
            let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
            for i in 0..64 {
                let (f, g) = match i / 16 {
                    0 => ((b & c) | (!b & d), i),
                    1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                    2 => (b ^ c ^ d, (3 * i + 5) % 16),
                    _ => (c ^ (b | !d), (7 * i) % 16),
                };
                let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
                a = d;
                d = c;
                c = b;
                b = b.wrapping_add(f.rotate_left(S[i]));
            }
            a0 = a0.wrapping_add(a);
            b0 = b0.wrapping_add(b);
            c0 = c0.wrapping_add(c);
            d0 = d0.wrapping_add(d);
        }
        let mut out = [0u8; 16];
        for (i, word) in [a0, b0, c0, d0].iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    impl PartDigester for TestDigester {
        fn md5(&self, data: &[u8]) -> [u8; 16] {
            md5(data)
        }
        fn checksum(&self, algorithm: &str, data: &[u8]) -> Option<Vec<u8>> {
            (algorithm == "CRC32").then(|| crc32(data).to_be_bytes().to_vec())
        }
    }

    fn part(number: i32, body: &[u8]) -> UploadPart {
        UploadPart {
            upload_id: "u".into(),
            part_number: number,
            file_name: format!("f{number}"),
            size: i64::try_from(body.len()).expect("size"),
            etag: to_hex(&md5(body)),
            last_modified_ms: 0,
            checksum: Some(ObjectChecksum {
                algorithm: "CRC32".into(),
                value: to_base64(&crc32(body).to_be_bytes()),
                composite: false,
            }),
        }
    }

    fn claim(number: i32, etag: Option<&str>) -> PartClaim {
        PartClaim {
            part_number: number,
            etag: etag.map(str::to_owned),
            checksums: Vec::new(),
        }
    }

    #[test]
    fn test_digests_are_right() {
        // Known answers, so the ETag tests below rest on real MD5/CRC32.
        assert_eq!(to_hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            to_hex(&md5(b"The quick brown fox jumps over the lazy dog")),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn upload_ids_sort_by_time_and_differ() {
        let early = new_upload_id(1_700_000_000_000);
        let late = new_upload_id(1_700_000_000_001);
        assert!(early < late);
        assert_eq!(early.len(), 44);
        assert_ne!(new_upload_id(5), new_upload_id(5));
        assert!(early.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn part_numbers() {
        assert!(validate_part_number(1).is_ok());
        assert!(validate_part_number(10_000).is_ok());
        for bad in [0, -1, 10_001, i32::MAX] {
            assert!(matches!(
                validate_part_number(bad),
                Err(BucketError::InvalidArgument(_))
            ));
        }
    }

    #[test]
    fn multipart_etag_matches_independent_value() {
        // Value computed outside Rust: python3 -c "import hashlib;
        // d=b''.join(hashlib.md5(p).digest() for p in [b'a'*3, b'b'*2]);
        // print(hashlib.md5(d).hexdigest())"
        let parts = [part(1, b"aaa"), part(2, b"bb")];
        let refs: Vec<&UploadPart> = parts.iter().collect();
        let etag = multipart_etag(&refs, &TestDigester).expect("etag");
        assert_eq!(etag, "b9975d734c52a2de0f970f525cb96ad3-2");
        let mut concatenated = Vec::new();
        concatenated.extend_from_slice(&md5(b"aaa"));
        concatenated.extend_from_slice(&md5(b"bb"));
        assert_eq!(etag, format!("{}-2", to_hex(&md5(&concatenated))));
    }

    #[test]
    fn composite_checksum_matches_independent_value() {
        // python3 -c "import zlib,base64,struct;
        // r=b''.join(struct.pack('>I',zlib.crc32(p)) for p in [b'aaa',b'bb']);
        // print(base64.b64encode(struct.pack('>I',zlib.crc32(r))).decode())"
        let parts = [part(1, b"aaa"), part(2, b"bb")];
        let refs: Vec<&UploadPart> = parts.iter().collect();
        let checksum = composite_checksum("CRC32", &refs, &TestDigester).expect("checksum");
        assert_eq!(checksum.value, "ihvqwA==-2");
        assert!(checksum.composite);
        let mut missing = parts.clone();
        missing[1].checksum = None;
        let refs: Vec<&UploadPart> = missing.iter().collect();
        assert!(matches!(
            composite_checksum("CRC32", &refs, &TestDigester),
            Err(BucketError::InvalidPart(_))
        ));
    }

    #[test]
    fn part_list_rules() {
        let big = vec![7u8; usize::try_from(MIN_PART_SIZE).expect("size")];
        let parts = vec![
            part(1, &big),
            part(2, &big),
            part(3, b"tail"),
            part(5, b"x"),
        ];
        let etag1 = format!("\"{}\"", parts[0].etag);
        // Quotes optional, the last part may be small, gaps allowed.
        let chosen = select_parts(
            &[
                claim(1, Some(&etag1)),
                claim(2, Some(&parts[1].etag)),
                claim(3, None),
            ],
            &parts,
        )
        .expect("valid list");
        assert_eq!(
            chosen.iter().map(|p| p.part_number).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(select_parts(&[], &parts), Err(BucketError::MalformedXml));
        assert_eq!(
            select_parts(&[claim(2, None), claim(1, None)], &parts),
            Err(BucketError::InvalidPartOrder)
        );
        assert_eq!(
            select_parts(&[claim(1, None), claim(1, None)], &parts),
            Err(BucketError::InvalidPartOrder)
        );
        assert!(matches!(
            select_parts(&[claim(4, None)], &parts),
            Err(BucketError::InvalidPart(_))
        ));
        assert!(matches!(
            select_parts(&[claim(1, Some("\"00\""))], &parts),
            Err(BucketError::InvalidPart(_))
        ));
        assert!(matches!(
            select_parts(&[claim(0, None)], &parts),
            Err(BucketError::InvalidArgument(_))
        ));
        assert_eq!(
            select_parts(&[claim(3, None), claim(5, None)], &parts),
            Err(BucketError::EntityTooSmall {
                part_number: 3,
                size: 4
            })
        );
        let mut with_checksum = claim(3, None);
        with_checksum.checksums = vec![(
            "CRC32".into(),
            parts[2].checksum.clone().expect("checksum").value,
        )];
        assert!(select_parts(std::slice::from_ref(&with_checksum), &parts).is_ok());
        with_checksum.checksums[0].1 = "AAAAAA==".into();
        assert!(matches!(
            select_parts(&[with_checksum], &parts),
            Err(BucketError::InvalidPart(_))
        ));
    }

    #[test]
    fn completed_object_record() {
        let big = vec![1u8; usize::try_from(MIN_PART_SIZE).expect("size")];
        let parts = [part(1, &big), part(2, b"end")];
        let refs: Vec<&UploadPart> = parts.iter().collect();
        let upload = MultipartUpload {
            upload_id: "u".into(),
            bucket: "b".into(),
            key: "k".into(),
            content_type: Some("text/plain".into()),
            checksum_algorithm: Some("CRC32".into()),
            ..MultipartUpload::default()
        };
        let object = completed_object(&upload, &refs, &TestDigester, 42).expect("object");
        assert_eq!(object.size, MIN_PART_SIZE + 3);
        assert!(object.file_name.is_empty());
        assert_eq!(
            object.files(),
            vec![("f1", MIN_PART_SIZE), ("f2", 3)],
            "files() gives the part files in order"
        );
        assert!(object.etag.ends_with("-2"));
        assert_eq!(object.content_type.as_deref(), Some("text/plain"));
        assert!(object.checksum.expect("checksum").value.ends_with("-2"));
        assert_eq!(object.last_modified_ms, 42);
    }

    #[test]
    fn part_pages() {
        let parts: Vec<UploadPart> = (1..=5).map(|n| part(n, b"x")).collect();
        let page = page_parts(parts.clone(), 2);
        assert_eq!(page.parts.len(), 2);
        assert_eq!(page.next_marker, Some(2));
        let page = page_parts(parts.clone(), 5);
        assert_eq!(page.next_marker, None);
        assert_eq!(page.parts.len(), 5);
    }

    fn upload(key: &str, id: &str) -> MultipartUpload {
        MultipartUpload {
            upload_id: id.into(),
            bucket: "b".into(),
            key: key.into(),
            ..MultipartUpload::default()
        }
    }

    /// Pages as the service does, over uploads sorted by (key, ID).
    fn page(all: &[(&str, &str)], input: &ListUploadsInput) -> UploadListing {
        let mut collector = UploadCollector::new(input);
        for (key, id) in all {
            let after = match (&input.key_marker, &input.upload_id_marker) {
                (Some(marker), Some(id_marker)) => {
                    (*key, *id) > (marker.as_str(), id_marker.as_str())
                }
                (Some(marker), None) => *key > marker.as_str(),
                (None, _) => true,
            };
            if !after || !key.starts_with(input.prefix.as_str()) {
                continue;
            }
            if !collector.offer(upload(key, id)) {
                break;
            }
        }
        collector.finish()
    }

    #[test]
    fn upload_pages() {
        let all = [
            ("a", "1"),
            ("a", "2"),
            ("a", "3"),
            ("d/x", "4"),
            ("d/y", "5"),
            ("e", "6"),
        ];
        let mut input = ListUploadsInput {
            max_uploads: 2,
            delimiter: Some("/".into()),
            ..ListUploadsInput::default()
        };
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let listing = page(&all, &input);
            pages += 1;
            assert!(listing.uploads.len() + listing.common_prefixes.len() <= 2);
            seen.extend(
                listing
                    .uploads
                    .iter()
                    .map(|u| format!("{}:{}", u.key, u.upload_id)),
            );
            seen.extend(listing.common_prefixes.clone());
            match listing.next {
                Some((key, id)) => {
                    input.key_marker = Some(key);
                    input.upload_id_marker = id;
                }
                None => break,
            }
        }
        assert_eq!(seen, ["a:1", "a:2", "a:3", "d/", "e:6"]);
        assert_eq!(pages, 3);
    }

    #[test]
    fn base64_roundtrip() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\xff\x00\x10"] {
            assert_eq!(from_base64(&to_base64(bytes)).as_deref(), Some(bytes));
        }
        assert_eq!(to_base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(from_base64("Zg=").as_deref(), None);
        assert_eq!(from_base64("Z===").as_deref(), None);
        assert_eq!(from_base64("Zg==Zg==").as_deref(), None);
        assert_eq!(from_hex("0aFf"), Some(vec![10, 255]));
        assert_eq!(from_hex("0g"), None);
    }
}
