//! Storing AMIs in buckets and restoring them: the seams.
//!
//! `CreateStoreImageTask` and `CreateRestoreImageTask` are validated and
//! recorded by the domain (`store.rs`) as [`Task`]s with
//! [`TaskWork::StoreImage`] / [`TaskWork::RestoreImage`]. The work itself
//! (reading blocks, the archive format, compression, writing the object)
//! lives outside the domain, in `hangar-archive`, behind [`ImageTransfer`],
//! which the server registers with [`Hangar::set_transfer`]. The bucket the
//! object goes to is reached through [`ObjectBackend`]: the embedded buckets
//! (`hangar-s3`) or the buckets of an external S3 store (`hangar-external`).
//! The backend also answers the bucket questions of the requests and tasks
//! ([`ObjectBackend::bucket`], [`ObjectBackend::security`]), so the rules in
//! `store.rs` read the same for both.
//!
//! [`StoredImage`] is what an archive carries about the image (everything
//! but sharing), in the domain's terms; the archive crate writes it as its
//! manifest and reads it back.

use std::collections::BTreeMap;
use std::io::Read;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::access::{AccessRequest, Principal};
use crate::blocks::{BLOCK_SIZE, BlockHash, is_all_zero};
use crate::buckets::BucketError;
use crate::error::Error;
use crate::model::{
    BlockDeviceMapping, Bucket, Image, ImageState, S3Object, Snapshot, SnapshotState, StateReason,
    Tag, Task,
};
use crate::repo::{StoreError, ZERO_BLOCK};
use crate::service::{Caller, Hangar};
use crate::snapshots::{BLOCKS_PER_GIB, new_snapshot};

/// One restored block as [`Hangar::restored_block`] decides it.
#[derive(Debug)]
pub enum RestoredBlock {
    /// All zeros: recorded as `ZERO_BLOCK`, nothing stored.
    Zero,
    /// Stored under `hash`; its map value is `hash.to_hex()`.
    Write { hash: BlockHash, data: Vec<u8> },
}

/// One snapshot of a stored image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    /// The snapshot's ID where it was stored (informational).
    pub snapshot_id: String,
    /// Declared size of the volume, in GiB.
    pub volume_size_gib: i64,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    /// Number of non-zero blocks the archive holds for it.
    pub block_count: u64,
}

/// What an archive says about the image it holds: everything needed to
/// register it again, but not its sharing (launch permissions), which is
/// never restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredImage {
    /// The AMI that was stored, and where.
    pub image_id: String,
    pub region: String,
    pub partition: String,
    pub owner_id: String,
    pub name: String,
    pub description: Option<String>,
    pub architecture: String,
    pub virtualization_type: String,
    pub hypervisor: String,
    pub platform: Option<String>,
    pub platform_details: String,
    pub usage_operation: String,
    pub root_device_name: Option<String>,
    pub boot_mode: Option<String>,
    pub ena_support: Option<bool>,
    pub sriov_net_support: Option<String>,
    pub tpm_support: Option<String>,
    pub imds_support: Option<String>,
    pub uefi_data: Option<String>,
    pub kernel_id: Option<String>,
    pub ramdisk_id: Option<String>,
    pub creation_ms: i64,
    /// The mappings as registered; an EBS mapping's `snapshot_id` names one
    /// of `snapshots` (by its `snapshot_id`).
    pub block_device_mappings: Vec<BlockDeviceMapping>,
    pub tags: Vec<Tag>,
    /// In the order their blocks appear in the archive.
    pub snapshots: Vec<StoredSnapshot>,
    /// When the store task started.
    pub stored_ms: i64,
}

/// What the store rules read about a bucket's security, as the backend
/// found it (see [`ObjectBackend::security`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketSecurity {
    /// Why the bucket counts as public (Block Public Access not fully on,
    /// or a public policy), naming the rule; `None` when it does not.
    pub public_reason: Option<String>,
    /// Advice for the log (no default encryption); the store goes ahead.
    pub encryption_warning: Option<String>,
}

/// Where store tasks write objects and restore tasks read them. The data
/// calls act on a bucket that [`ObjectBackend::bucket`] returned; none of
/// them checks access again.
/// Reads return blocking readers: callers run them on blocking threads.
#[async_trait]
pub trait ObjectBackend: Send + Sync {
    /// The bucket `name`, if `owner` may do `action` (`s3:PutObject`,
    /// `s3:GetObject`) on `key` in it: `NoSuchBucket` when there is none,
    /// `AccessDenied` when the owner may not. Asked by the request checks
    /// and again by the task between parts. The default is the embedded
    /// buckets' rule: the bucket's record and its policy
    /// ([`Hangar::authorize`]).
    async fn bucket(
        &self,
        hangar: &Hangar,
        owner: &Caller,
        name: &str,
        action: &'static str,
        key: &str,
    ) -> Result<Bucket, BucketError> {
        let principal = Principal::Account(owner.clone());
        let request = AccessRequest {
            principal: &principal,
            action,
            key: Some(key),
            secure_transport: true,
        };
        hangar.authorize(name, &request).await
    }
    /// The bucket's security settings as the store rules read them. The
    /// default reads the embedded bucket's record (Block Public Access,
    /// policy, default encryption).
    async fn security(&self, bucket: &Bucket) -> Result<BucketSecurity, BucketError> {
        let public_reason =
            crate::store::bucket_public_reason(bucket).map_err(|error| match error {
                Error::Internal(detail) => BucketError::Internal(detail),
                other => BucketError::Internal(other.to_string()),
            })?;
        Ok(BucketSecurity {
            public_reason,
            encryption_warning: crate::store::encryption_warning(bucket),
        })
    }
    /// Starts a multipart upload of `key`; returns its upload ID.
    async fn create_upload(
        &self,
        bucket: &Bucket,
        key: &str,
        metadata: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
    ) -> Result<String, BucketError>;
    /// Stores part `part_number` (replacing one of that number); returns
    /// its ETag (hex MD5, no quotes). `data` is shared so that the caller
    /// can reuse the buffer once the backend has dropped its handle (a
    /// fresh 16 MiB buffer per part costs its page faults on every part).
    async fn upload_part(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
        part_number: i32,
        data: Vec<bytes::Bytes>,
    ) -> Result<String, BucketError>;
    /// The ETag the store gives a part holding `data` (its chunks, in
    /// order), where it can be computed (S3 stores: the hex MD5 of a part),
    /// so that a resumed task keeps the parts the store already holds
    /// instead of sending them again. `None` (the default): ETags are
    /// opaque, every part is sent.
    fn part_etag(&self, _data: &[bytes::Bytes]) -> Option<String> {
        None
    }
    /// Parts stored so far: (number, ETag, size), in order.
    async fn list_parts(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<(i32, String, i64)>, BucketError>;
    /// Makes the object visible, atomically, from the listed parts.
    async fn complete_upload(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
        parts: Vec<(i32, String)>,
    ) -> Result<S3Object, BucketError>;
    /// Drops the upload and its parts; an unknown upload is not an error.
    async fn abort_upload(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
    ) -> Result<(), BucketError>;
    /// The object's record, `None` when there is none.
    async fn head_object(
        &self,
        bucket: &Bucket,
        key: &str,
    ) -> Result<Option<S3Object>, BucketError>;
    /// A blocking reader of the object's bytes from `start`.
    async fn open_object(
        &self,
        bucket: &Bucket,
        key: &str,
        start: u64,
    ) -> Result<(S3Object, Box<dyn Read + Send>), BucketError>;
}

/// The work of store and restore tasks, registered by the server.
#[async_trait]
pub trait ImageTransfer: Send + Sync {
    /// Runs a store task until it completes or fails. Progress is reported
    /// through [`Hangar::report_task_progress`]; an `Err` fails the task
    /// with its message as the reason.
    async fn store(&self, hangar: &Hangar, task: &mut Task) -> Result<(), Error>;
    /// Runs a restore task until the image is available or failed.
    async fn restore(&self, hangar: &Hangar, task: &mut Task) -> Result<(), Error>;
    /// Reads what an object holds, without restoring (request-time checks
    /// of `CreateRestoreImageTask`): `Err` when it is not an AMI archive.
    async fn inspect(&self, bucket: &Bucket, key: &str) -> Result<StoredImage, Error>;
    /// The backend the work goes through, for the request checks (which
    /// bucket, how secure, is the object there). `None`: the request checks
    /// read the embedded buckets' records themselves.
    fn objects(&self) -> Option<&dyn ObjectBackend> {
        None
    }
}

/// What the store and restore workers need from the domain, beyond the
/// public operations: record reads without a caller (the task acts for its
/// owner, checked when it was created and re-checked by the worker), block
/// maps in pages, and the restore's writes.
impl Hangar {
    pub async fn image_record(&self, image_id: &str) -> Result<Option<Image>, Error> {
        Ok(self.store.get_image(image_id).await?)
    }

    pub async fn snapshot_record(&self, snapshot_id: &str) -> Result<Option<Snapshot>, Error> {
        Ok(self.store.get_snapshot(snapshot_id).await?)
    }

    /// Block map entries of a snapshot with index ≥ `start`, in index order,
    /// at most `limit`: `(index, hex SHA-256 or ZERO_BLOCK)`.
    pub async fn block_entries(
        &self,
        map_id: &str,
        start: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, Error> {
        Ok(self.store.list_blocks(map_id, start, limit).await?)
    }

    /// Restore: records snapshot `snapshot_id` as `pending` for `owner`
    /// unless it exists (a resumed task).
    pub async fn begin_restored_snapshot(
        &self,
        owner: &Caller,
        snapshot_id: &str,
        volume_size_gib: i64,
        description: String,
        tags: Vec<Tag>,
    ) -> Result<(), Error> {
        if self.store.get_snapshot(snapshot_id).await?.is_some() {
            return Ok(());
        }
        let mut snapshot = new_snapshot(
            snapshot_id.to_owned(),
            owner,
            volume_size_gib,
            self.clock.now_ms(),
        );
        snapshot.description = Some(description);
        snapshot.tags = tags;
        match self.store.insert_snapshot(&snapshot).await {
            Ok(()) | Err(StoreError::DuplicateId(_)) => Ok(()),
            Err(other) => Err(other.into()),
        }
    }

    /// Restore: makes a block decided by [`Hangar::restored_block`] durable
    /// in the block store (for engines without `BlockStore::put_blocking`)
    /// and returns the map value to record for it (the hash, or
    /// `ZERO_BLOCK`). The caller holds [`Hangar::block_write_guard`] from
    /// here until the map entry is written ([`Hangar::restore_map_entries`]),
    /// as `PutSnapshotBlock` does, so the collector cannot take the block in
    /// between.
    pub async fn put_restored_block(&self, block: RestoredBlock) -> Result<String, Error> {
        match block {
            RestoredBlock::Zero => Ok(ZERO_BLOCK.to_owned()),
            RestoredBlock::Write { hash, data } => {
                self.blocks.put(&hash, data).await?;
                Ok(hash.to_hex())
            }
        }
    }

    /// Restore: what to store for one block of a pending snapshot, after
    /// checking that it fits the volume; no I/O, so that a caller on a
    /// blocking thread can verify and write a block in one hop
    /// (`BlockStore::put_blocking`, else [`Hangar::put_restored_block`]).
    /// `verified_sha256` is the SHA-256 of `data` as given, already checked
    /// by the caller against the archive's frame (`UnverifiedBlock::verify`
    /// in hangar-archive): a full block is stored under it without hashing
    /// it again, a shorter one is padded with zeros to the block size and
    /// hashed here.
    pub fn restored_block(
        snapshot_id: &str,
        volume_size_gib: i64,
        index: i64,
        data: Vec<u8>,
        verified_sha256: [u8; 32],
    ) -> Result<RestoredBlock, Error> {
        check_block_place(snapshot_id, volume_size_gib, index)?;
        if data.is_empty() || data.len() > BLOCK_SIZE {
            return Err(outside(snapshot_id, volume_size_gib, index));
        }
        if is_all_zero(&data) {
            return Ok(RestoredBlock::Zero);
        }
        if data.len() == BLOCK_SIZE {
            debug_assert_eq!(BlockHash::of(&data).0, verified_sha256);
            return Ok(RestoredBlock::Write {
                hash: BlockHash(verified_sha256),
                data,
            });
        }
        // Only archives written elsewhere hold short blocks: rare enough to
        // hash here.
        let mut data = data;
        data.resize(BLOCK_SIZE, 0);
        Ok(RestoredBlock::Write {
            hash: BlockHash::of(&data),
            data,
        })
    }

    /// Restore: the map value of a full block the block store already held
    /// (found by `BlockStore::refresh_if_holding_blocking`, which refreshed
    /// its time as a put would); checked as [`Hangar::restored_block`]
    /// checks its place.
    pub fn restore_block_held(
        snapshot_id: &str,
        volume_size_gib: i64,
        index: i64,
        sha256: [u8; 32],
    ) -> Result<String, Error> {
        check_block_place(snapshot_id, volume_size_gib, index)?;
        Ok(BlockHash(sha256).to_hex())
    }

    /// Held shared by writers of blocks from the block put to the map entry
    /// (see the collector in `snapshots.rs`).
    pub async fn block_write_guard(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.block_guard.read().await
    }

    /// The wall time to pass to [`Hangar::restore_map_entries`], taken
    /// before the first of a batch's block puts.
    pub fn block_write_started(&self) -> i64 {
        self.clock.wall_ms()
    }

    /// Restore: records the map entries of blocks written
    /// since `put_ms` (from
    /// [`Hangar::block_write_started`]), in one transaction. The same time
    /// fence as `PutSnapshotBlock`'s applies first: a batch that took more
    /// than half the collectors' grace puts its blocks again, so a
    /// collector on another node cannot have taken them.
    pub async fn restore_map_entries(
        &self,
        snapshot_id: &str,
        entries: &[(i64, String)],
        put_ms: i64,
    ) -> Result<(), Error> {
        if self.block_write_is_stale(put_ms) {
            for (_, value) in entries {
                if let Some(hash) = BlockHash::from_hex(value) {
                    self.refresh_if_stale(&hash, put_ms).await?;
                }
            }
        }
        Ok(self.store.put_blocks(snapshot_id, entries).await?)
    }

    /// Restore: every snapshot is written; make them `completed`, then the
    /// image `available`.
    pub async fn finish_restore(
        &self,
        image_id: &str,
        snapshot_ids: &[String],
    ) -> Result<(), Error> {
        for snapshot_id in snapshot_ids {
            self.finish_snapshot(snapshot_id).await?;
        }
        self.set_image_state(image_id, ImageState::Available, None)
            .await
    }

    /// Restore failed: the snapshots go to `error` (none stays `completed`)
    /// and the image to `failed` with `reason`.
    pub async fn fail_restore(
        &self,
        image_id: &str,
        snapshot_ids: &[String],
        reason: &str,
    ) -> Result<(), Error> {
        for snapshot_id in snapshot_ids {
            for _ in 0..8 {
                let Some(mut snapshot) = self.store.get_snapshot(snapshot_id).await? else {
                    break;
                };
                if snapshot.state == SnapshotState::Error {
                    break;
                }
                snapshot.state = SnapshotState::Error;
                snapshot.state_message = Some(reason.to_owned());
                match self.store.update_snapshot(&snapshot).await {
                    Ok(_) => break,
                    Err(StoreError::Conflict(_)) => continue,
                    Err(other) => return Err(other.into()),
                }
            }
        }
        self.set_image_state(
            image_id,
            ImageState::Failed,
            Some(StateReason {
                code: "Client.RestoreImageFailed".into(),
                message: reason.to_owned(),
            }),
        )
        .await
    }
}

impl Hangar {
    /// Restore: shows `progress` (0 to 99) on the pending snapshots, as
    /// `DescribeSnapshots` reports it while the data arrives. Best effort: a
    /// lost race only delays the figure.
    pub async fn report_restore_progress(
        &self,
        snapshot_ids: &[String],
        progress: i64,
    ) -> Result<(), Error> {
        let progress = progress.clamp(0, 99);
        for snapshot_id in snapshot_ids {
            if let Some(mut snapshot) = self.store.get_snapshot(snapshot_id).await?
                && snapshot.state == SnapshotState::Pending
                && snapshot.progress < progress
            {
                snapshot.progress = progress;
                match self.store.update_snapshot(&snapshot).await {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(other) => return Err(other.into()),
                }
            }
        }
        Ok(())
    }
}

/// A restored block's index must lie within its volume.
fn check_block_place(snapshot_id: &str, volume_size_gib: i64, index: i64) -> Result<(), Error> {
    if (0..volume_size_gib * BLOCKS_PER_GIB).contains(&index) {
        Ok(())
    } else {
        Err(outside(snapshot_id, volume_size_gib, index))
    }
}

fn outside(snapshot_id: &str, volume_size_gib: i64, index: i64) -> Error {
    Error::Internal(format!(
        "block {index} of {snapshot_id} is outside its {volume_size_gib} GiB volume"
    ))
}
