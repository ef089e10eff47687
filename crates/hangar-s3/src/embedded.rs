//! The embedded buckets as an [`ObjectBackend`]: what store and restore
//! tasks write to and read from when the bucket is one of Hangar's own. The
//! same records, files and rules as the S3 operations (multipart upload
//! records, encrypted part files, atomic completion), without the wire.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use hangar_blocks::objects::{ObjectFiles, to_hex};
use hangar_core::Hangar;
use hangar_core::buckets::BucketError;
use hangar_core::model::{Bucket, MultipartUpload, S3Object, UploadPart};
use hangar_core::multipart::{PartClaim, new_upload_id};
use hangar_core::objects::object_file_name;
use hangar_core::transfer::ObjectBackend;

use crate::ops::WireDigester;
use crate::ops::read::open_range;

/// Hangar's own buckets, for tasks.
/// It holds the service weakly: the service holds it (through its
/// transfer), and a strong reference back would be a cycle.
#[derive(Clone)]
pub struct EmbeddedObjects {
    hangar: Weak<Hangar>,
    files: ObjectFiles,
}

impl EmbeddedObjects {
    pub fn new(hangar: &Arc<Hangar>, files: ObjectFiles) -> Self {
        Self {
            hangar: Arc::downgrade(hangar),
            files,
        }
    }

    fn hangar(&self) -> Result<Arc<Hangar>, BucketError> {
        self.hangar
            .upgrade()
            .ok_or_else(|| BucketError::Internal("the service is shutting down".into()))
    }

    async fn blocking<T, F>(work: F) -> Result<T, BucketError>
    where
        F: FnOnce() -> std::io::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|error| BucketError::Internal(error.to_string()))?
            .map_err(|error| BucketError::Internal(error.to_string()))
    }

    async fn remove_files(&self, bucket: &str, names: Vec<String>) {
        let files = self.files.clone();
        let bucket = bucket.to_owned();
        let removed = Self::blocking(move || {
            for name in names {
                files.remove(&bucket, &name)?;
            }
            Ok(())
        })
        .await;
        if let Err(error) = removed {
            tracing::warn!(%error, "cannot remove object files (the collector will)");
        }
    }
}

#[async_trait]
impl ObjectBackend for EmbeddedObjects {
    async fn create_upload(
        &self,
        bucket: &Bucket,
        key: &str,
        metadata: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
    ) -> Result<String, BucketError> {
        let now = self.hangar()?.now_ms();
        let upload = MultipartUpload {
            upload_id: new_upload_id(now),
            bucket: bucket.name.clone(),
            key: key.to_owned(),
            initiator_id: bucket.owner_id.clone(),
            initiated_ms: now,
            content_type: Some("application/octet-stream".to_owned()),
            metadata,
            tags,
            checksum_algorithm: None,
        };
        self.hangar()?.create_upload(bucket, &upload).await?;
        Ok(upload.upload_id)
    }

    async fn upload_part(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
        part_number: i32,
        data: Vec<bytes::Bytes>,
    ) -> Result<String, BucketError> {
        // The upload must still exist (an abort or a deleted bucket fails
        // the task early, before the part is written).
        self.hangar()?.upload(bucket, key, upload_id).await?;
        let files = self.files.clone();
        let bucket_name = bucket.name.clone();
        let file_name = object_file_name(key, &format!("{:032x}", rand::random::<u128>()));
        let final_name = file_name.clone();
        let written = Self::blocking(move || {
            // Task parts: no client checks their ETags against the content.
            let mut writer = files.writer_without_md5(&bucket_name)?;
            for chunk in &data {
                writer.write(chunk)?;
            }
            writer.finish(&final_name)
        })
        .await?;
        let part = UploadPart {
            upload_id: upload_id.to_owned(),
            part_number,
            file_name: file_name.clone(),
            size: i64::try_from(written.size).unwrap_or(i64::MAX),
            etag: to_hex(&written.md5),
            last_modified_ms: self.hangar()?.now_ms(),
            checksum: None,
        };
        match self.hangar()?.put_part_record(&part).await {
            Ok(Some(replaced)) if replaced.file_name != part.file_name => {
                self.remove_files(&bucket.name, vec![replaced.file_name])
                    .await;
            }
            Ok(_) => {}
            Err(error) => {
                self.remove_files(&bucket.name, vec![file_name]).await;
                return Err(error);
            }
        }
        Ok(part.etag)
    }

    async fn list_parts(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<(i32, String, i64)>, BucketError> {
        self.hangar()?.upload(bucket, key, upload_id).await?;
        Ok(self
            .hangar()?
            .all_parts(upload_id)
            .await?
            .into_iter()
            .map(|part| (part.part_number, part.etag, part.size))
            .collect())
    }

    async fn complete_upload(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, String)>,
    ) -> Result<S3Object, BucketError> {
        let upload = self.hangar()?.upload(bucket, key, upload_id).await?;
        let claims: Vec<PartClaim> = parts
            .into_iter()
            .map(|(part_number, etag)| PartClaim {
                part_number,
                etag: Some(etag),
                checksums: Vec::new(),
            })
            .collect();
        let (object, completed) = self
            .hangar()?
            .complete_upload(bucket, &upload, &claims, &WireDigester)
            .await?;
        let mut unused: Vec<String> = completed
            .unused_parts
            .into_iter()
            .map(|part| part.file_name)
            .collect();
        if let Some(replaced) = &completed.replaced {
            unused.extend(replaced.files_unused_by(Some(&object)));
        }
        self.remove_files(&bucket.name, unused).await;
        Ok(object)
    }

    async fn abort_upload(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
    ) -> Result<(), BucketError> {
        match self.hangar()?.upload(bucket, key, upload_id).await {
            Ok(_) => {}
            Err(BucketError::NoSuchUpload(_)) => return Ok(()),
            Err(error) => return Err(error),
        }
        let parts = match self.hangar()?.abort_upload(upload_id).await {
            Ok(parts) => parts,
            Err(BucketError::NoSuchUpload(_)) => return Ok(()),
            Err(error) => return Err(error),
        };
        self.remove_files(
            &bucket.name,
            parts.into_iter().map(|part| part.file_name).collect(),
        )
        .await;
        Ok(())
    }

    async fn head_object(
        &self,
        bucket: &Bucket,
        key: &str,
    ) -> Result<Option<S3Object>, BucketError> {
        match self.hangar()?.object(bucket, key).await {
            Ok(object) => Ok(Some(object)),
            Err(BucketError::NoSuchKey(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn open_object(
        &self,
        bucket: &Bucket,
        key: &str,
        start: u64,
    ) -> Result<(S3Object, Box<dyn Read + Send>), BucketError> {
        let hangar = self.hangar()?;
        let (object, _, reader) = open_range(
            &hangar,
            &self.files,
            bucket,
            key,
            true,
            |object| {
                let size = u64::try_from(object.size).unwrap_or(0);
                Ok(start.min(size)..size)
            },
            |error| error,
        )
        .await?;
        Ok((object, Box::new(reader)))
    }
}
