//! The collector of S3 object files nothing refers to.
//!
//! An object file becomes durable (renamed into place) before its record is
//! committed, and a replaced or deleted object's files are removed after
//! the record changes. A crash between the two steps, or a failed removal,
//! leaves a file no record names. This collector finds them: for each
//! bucket folder it lists the files older than the grace period *first*,
//! then reads which files the bucket's records (objects and upload parts)
//! name, and removes the listed files that no record names. Listing first
//! means a file committed in between is seen as referenced; the grace
//! period covers a file renamed into place whose record is about to be
//! committed. A folder whose bucket no longer exists loses all its files,
//! then the folder itself.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use hangar_blocks::objects::ObjectFiles;
use hangar_core::Hangar;
use hangar_core::buckets::BucketError;
use hangar_core::model::Bucket;
use hangar_core::multipart::ListUploadsInput;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    pub kept: usize,
    pub removed: usize,
}

/// One pass over every bucket folder.
pub async fn collect_object_files(
    hangar: &Hangar,
    files: &ObjectFiles,
    grace: Duration,
) -> anyhow::Result<Collected> {
    let mut collected = Collected::default();
    let folders = {
        let files = files.clone();
        tokio::task::spawn_blocking(move || files.bucket_folders()).await??
    };
    for bucket in folders {
        let listed = {
            let (files, bucket) = (files.clone(), bucket.clone());
            tokio::task::spawn_blocking(move || files.list_bucket_files(&bucket)).await??
        };
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let old: Vec<String> = listed
            .into_iter()
            .filter(|(_, modified)| *modified <= cutoff)
            .map(|(name, _)| name)
            .collect();
        let found = hangar.find_bucket(&bucket).await?;
        let exists = found.is_some();
        let referenced: HashSet<String> = match &found {
            Some(found) => {
                let mut referenced = hangar.referenced_object_files(&bucket).await?;
                referenced.extend(referenced_part_files(hangar, found).await?);
                referenced
            }
            None => HashSet::new(),
        };
        let orphans: Vec<String> = old
            .into_iter()
            .filter(|name| !referenced.contains(name))
            .collect();
        collected.kept += referenced.len();
        collected.removed += orphans.len();
        let files = files.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            for name in &orphans {
                files.remove(&bucket, name)?;
            }
            if !exists {
                files.remove_bucket_folder_if_empty(&bucket)?;
            }
            Ok(())
        })
        .await??;
    }
    Ok(collected)
}

/// The part files of every multipart upload in progress in `bucket`.
async fn referenced_part_files(
    hangar: &Hangar,
    bucket: &Bucket,
) -> anyhow::Result<HashSet<String>> {
    let mut referenced = HashSet::new();
    let mut input = ListUploadsInput {
        max_uploads: 1000,
        ..ListUploadsInput::default()
    };
    loop {
        let page = hangar.list_uploads(bucket, &input).await?;
        for upload in &page.uploads {
            for part in hangar.all_parts(&upload.upload_id).await? {
                referenced.insert(part.file_name);
            }
        }
        match page.next {
            Some((key, upload_id)) => {
                input.key_marker = Some(key);
                input.upload_id_marker = upload_id;
            }
            None => return Ok(referenced),
        }
    }
}

/// Aborts the multipart uploads initiated more than `age_ms` ago and removes
/// their part files. Returns how many were aborted.
pub async fn abort_abandoned_uploads(
    hangar: &Hangar,
    files: &ObjectFiles,
    age_ms: i64,
) -> anyhow::Result<usize> {
    let mut aborted = 0;
    loop {
        let uploads = hangar.abandoned_uploads(age_ms).await?;
        if uploads.is_empty() {
            return Ok(aborted);
        }
        for upload in uploads {
            let parts = match hangar.abort_upload(&upload.upload_id).await {
                Ok(parts) => parts,
                // Completed or aborted by a client meanwhile.
                Err(BucketError::NoSuchUpload(_)) => continue,
                Err(error) => return Err(error.into()),
            };
            aborted += 1;
            let files = files.clone();
            let bucket = upload.bucket.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                for part in parts {
                    files.remove(&bucket, &part.file_name)?;
                }
                Ok(())
            })
            .await??;
        }
    }
}
