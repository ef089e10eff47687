//! The metadata repository: the narrow interface the domain needs from a
//! storage engine. Engines (SQLite now, PostgreSQL next) implement it, and
//! one conformance suite (in `hangar-meta`) runs against each.

use async_trait::async_trait;
use thiserror::Error;

use crate::model::{Bucket, Image, Instance, S3Object, Snapshot, Task, Volume};
use crate::model::{CompletedUpload, MultipartUpload, UploadPart};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Another live (not deregistered) image of the same owner in the same
    /// region already has this name.
    #[error("image name already in use by {existing_image_id}")]
    ImageNameTaken { existing_image_id: String },
    /// A record with this ID already exists.
    #[error("duplicate id {0}")]
    DuplicateId(String),
    /// The record changed since it was read (its revision moved on), or it
    /// no longer exists. Callers re-read and retry.
    #[error("stale revision for {0}")]
    Conflict(String),
    #[error("storage failure: {0}")]
    Backend(String),
    /// The lease named here is no longer held with the caller's fencing
    /// token: it expired and another holder claimed it (or it was
    /// released). The caller must stop the work the lease covered.
    #[error("lease {0} is lost")]
    LeaseLost(String),
}

impl From<StoreError> for crate::Error {
    fn from(error: StoreError) -> Self {
        crate::Error::Internal(error.to_string())
    }
}

/// Which images a listing should consider. The domain applies visibility and
/// filters on what comes back; the engine only narrows by indexed columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageListQuery {
    pub region: String,
    /// When set, only images whose owner ID is one of these.
    pub owner_ids: Option<Vec<String>>,
    /// When set, only images whose owner alias is one of these.
    pub owner_aliases: Option<Vec<String>>,
    /// Leave out images in state `deregistered`.
    pub exclude_deregistered: bool,
}

#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Stores a new image. Fails with `ImageNameTaken` when the owner already
    /// has a live image of that name in that region, `DuplicateId` when the
    /// ID exists. The write is durable when this returns.
    async fn insert_image(&self, image: &Image) -> Result<(), StoreError>;

    /// Replaces the stored image whose ID and revision match `image`, and
    /// stores it with `revision + 1`. Returns the new revision.
    async fn update_image(&self, image: &Image) -> Result<i64, StoreError>;

    /// Inserts the image, or replaces it entirely if the ID exists (used to
    /// keep the starter catalogue current at start-up).
    async fn upsert_image(&self, image: &Image) -> Result<(), StoreError>;

    async fn get_image(&self, image_id: &str) -> Result<Option<Image>, StoreError>;

    /// The images with these IDs that exist, in any order.
    async fn get_images(&self, image_ids: &[String]) -> Result<Vec<Image>, StoreError>;

    /// Images matching the query, ordered by image ID.
    async fn list_images(&self, query: &ImageListQuery) -> Result<Vec<Image>, StoreError>;

    /// Deletes every record (the dev-mode reset).
    async fn reset(&self) -> Result<(), StoreError>;

    /// Stores a new pending image and the task that will finish it, in one
    /// transaction: either both exist afterwards or neither does. Fails like
    /// `insert_image` (name taken, duplicate ID) and then stores nothing.
    async fn insert_image_with_task(&self, image: &Image, task: &Task) -> Result<(), StoreError>;

    // Snapshots. `insert_*` fails with `DuplicateId`; `update_*` follows the
    // revision rule of `update_image` and returns the new revision.
    async fn insert_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError>;
    async fn update_snapshot(&self, snapshot: &Snapshot) -> Result<i64, StoreError>;
    async fn get_snapshot(&self, snapshot_id: &str) -> Result<Option<Snapshot>, StoreError>;
    /// Ordered by snapshot ID.
    async fn list_snapshots(&self, query: &RecordQuery) -> Result<Vec<Snapshot>, StoreError>;
    /// Removes the record and its block map. Returns whether it existed.
    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<bool, StoreError>;

    // Volumes, with the same rules.
    async fn insert_volume(&self, volume: &Volume) -> Result<(), StoreError>;
    async fn update_volume(&self, volume: &Volume) -> Result<i64, StoreError>;
    async fn get_volume(&self, volume_id: &str) -> Result<Option<Volume>, StoreError>;
    async fn list_volumes(&self, query: &RecordQuery) -> Result<Vec<Volume>, StoreError>;
    /// Removes the record and its block map. Returns whether it existed.
    async fn delete_volume(&self, volume_id: &str) -> Result<bool, StoreError>;

    // Instances (kept after termination, as AWS shows them for a while).
    async fn insert_instance(&self, instance: &Instance) -> Result<(), StoreError>;
    async fn update_instance(&self, instance: &Instance) -> Result<i64, StoreError>;
    async fn get_instance(&self, instance_id: &str) -> Result<Option<Instance>, StoreError>;
    async fn list_instances(&self, query: &RecordQuery) -> Result<Vec<Instance>, StoreError>;

    // Tasks.
    async fn insert_task(&self, task: &Task) -> Result<(), StoreError>;
    async fn update_task(&self, task: &Task) -> Result<i64, StoreError>;
    async fn get_task(&self, task_id: &str) -> Result<Option<Task>, StoreError>;
    /// Tasks not yet completed or failed, oldest first.
    async fn list_unfinished_tasks(&self) -> Result<Vec<Task>, StoreError>;
    /// The tasks of `owner_id` in `region` created at or after
    /// `created_since_ms`, in any state, newest first (ties by task ID,
    /// descending).
    async fn list_tasks_by_owner(
        &self,
        owner_id: &str,
        region: &str,
        created_since_ms: i64,
    ) -> Result<Vec<Task>, StoreError>;

    // Leases: which node runs a task (or the block collector) now. A lease
    // is a row keyed by name with its holder, expiry and fencing token;
    // the token grows by one at every claim and never goes back (a
    // released lease keeps its row), so a holder whose lease was taken
    // over can always tell. Times are the callers' wall clocks
    // (`now_ms`): nodes must keep their clocks in step (NTP) to well
    // under a lease.
    /// Claims the oldest unfinished (queued or running) task whose lease
    /// is free: never claimed, released, expired (`expires_ms <= now_ms`),
    /// or held by an earlier run of the same node (`holder.node_id` equal,
    /// `holder.run_id` different: that process is gone). Records the
    /// holder, an expiry of `now_ms + lease_ms` and the next fencing
    /// token, and returns the task as stored when claimed, with its lease.
    /// Concurrent claims (from any node) never return the same task.
    async fn claim_task(
        &self,
        holder: &LeaseHolder,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<(Task, Lease)>, StoreError>;
    /// Takes the lease `name` (any name, e.g. "block-collector") on the
    /// same terms as `claim_task`; `None` while someone else holds it.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &LeaseHolder,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<Lease>, StoreError>;
    /// Extends the lease to `now_ms + lease_ms` (a heartbeat) while its
    /// token is still the current one; `LeaseLost` otherwise. Returns the
    /// new expiry.
    async fn renew_lease(
        &self,
        lease: &Lease,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<i64, StoreError>;
    /// Frees the lease if its token is still the current one (otherwise
    /// nothing happens: someone else holds it now). The token is kept.
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;
    /// `update_task` fenced by `lease`: in one transaction, replaces the
    /// task (revision rule of `update_task`, `Conflict`) only while
    /// `lease`'s token is still the current one of its name (else
    /// `LeaseLost`, and nothing is written).
    async fn update_task_fenced(&self, task: &Task, lease: &Lease) -> Result<i64, StoreError>;

    // S3 buckets, keyed by name: one name space for every account and
    // region. `update_bucket` follows the revision rule of `update_image`.
    /// Fails with `DuplicateId` when a bucket of that name exists, whoever
    /// owns it and wherever it lives.
    async fn insert_bucket(&self, bucket: &Bucket) -> Result<(), StoreError>;
    async fn update_bucket(&self, bucket: &Bucket) -> Result<i64, StoreError>;
    async fn get_bucket(&self, name: &str) -> Result<Option<Bucket>, StoreError>;
    /// The buckets one account owns, in every region, ordered by name.
    async fn list_buckets(&self, owner_id: &str) -> Result<Vec<Bucket>, StoreError>;
    /// Deletes the bucket if it holds no object and no multipart upload, in
    /// one statement (so an object put concurrently is never orphaned). Returns whether a bucket
    /// was deleted: `false` when there is none *or* it is not empty; the
    /// caller re-reads to tell which.
    async fn delete_bucket(&self, name: &str) -> Result<bool, StoreError>;

    // S3 objects, keyed by (bucket, key).
    /// Stores the object, replacing the one under the same key, in one
    /// transaction, and returns the replaced record (whose file the caller
    /// removes). Fails with `Conflict(bucket)` when the bucket does not
    /// exist (deleted meanwhile); nothing is stored then.
    async fn put_object(&self, object: &S3Object) -> Result<Option<S3Object>, StoreError>;
    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<S3Object>, StoreError>;
    /// Removes the object and returns its record, `None` when there was none.
    async fn delete_object(&self, bucket: &str, key: &str) -> Result<Option<S3Object>, StoreError>;
    /// Replaces the record of `object`'s key with `object` only while the
    /// stored record equals `expected` (a tag change must not undo a put
    /// that raced it), in one transaction. Returns whether it replaced.
    async fn update_object_if(
        &self,
        object: &S3Object,
        expected: &S3Object,
    ) -> Result<bool, StoreError>;
    /// The bucket's objects whose key starts with `prefix` and sorts after
    /// `after` (when given), in key order (by bytes of UTF-8), at most
    /// `limit`.
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<S3Object>, StoreError>;

    // Block maps: for a snapshot or volume ID, which block holds the data at
    // each 512 KiB index. `hash` is the hex SHA-256 of the block, or
    // `ZERO_BLOCK` for a block of zeros that is not stored.
    /// Sets (inserts or replaces) one entry.
    async fn put_block(&self, map_id: &str, index: i64, hash: &str) -> Result<(), StoreError>;
    /// Sets many entries of one map, in one transaction where the engine
    /// has them (restores write thousands; one commit each would be one
    /// fsync each).
    async fn put_blocks(&self, map_id: &str, entries: &[(i64, String)]) -> Result<(), StoreError> {
        for (index, hash) in entries {
            self.put_block(map_id, *index, hash).await?;
        }
        Ok(())
    }
    async fn get_block(&self, map_id: &str, index: i64) -> Result<Option<String>, StoreError>;
    /// Entries with index ≥ `start_index`, in index order, at most `limit`.
    async fn list_blocks(
        &self,
        map_id: &str,
        start_index: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError>;
    async fn count_blocks(&self, map_id: &str) -> Result<i64, StoreError>;
    /// Makes `to`'s map an exact copy of `from`'s (replacing what `to` had),
    /// in one transaction. Returns the number of entries copied.
    async fn copy_blocks(&self, from: &str, to: &str) -> Result<i64, StoreError>;
    /// Copies into `into` every entry of `base` whose index `into` lacks (an
    /// incremental snapshot inherits its parent's data), in one transaction.
    async fn merge_blocks(&self, base: &str, into: &str) -> Result<(), StoreError>;
    async fn delete_blocks(&self, map_id: &str) -> Result<(), StoreError>;
    /// The hashes among `hashes` that some map references now (the
    /// collector's last check before it deletes).
    async fn referenced_among(&self, hashes: &[String]) -> Result<Vec<String>, StoreError>;

    /// Deletes map entries whose snapshot or volume record does not exist
    /// (left by a write that raced a delete). Every writer creates the record
    /// before its map, so a map being built is never an orphan. Returns the
    /// number of entries removed.
    async fn delete_orphan_block_maps(&self) -> Result<u64, StoreError>;

    /// Distinct block hashes referenced by any map, greater than `after`, in
    /// order, at most `limit` (the mark phase of block collection).
    async fn referenced_hashes(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// Idempotency tokens (`ClientToken`): records `(scope, token) →
    /// (fingerprint, result)` if absent and returns `None`; if present,
    /// returns what was recorded first and changes nothing.
    async fn claim_client_token(
        &self,
        scope: &str,
        token: &str,
        fingerprint: &str,
        result: &str,
    ) -> Result<Option<(String, String)>, StoreError>;

    // S3 multipart uploads, keyed by upload ID, and their parts, keyed by
    // (upload ID, part number).
    /// Stores a new upload. Fails with `Conflict(bucket)` when the bucket
    /// does not exist, `DuplicateId` when the upload ID does.
    async fn insert_upload(&self, upload: &MultipartUpload) -> Result<(), StoreError>;
    async fn get_upload(&self, upload_id: &str) -> Result<Option<MultipartUpload>, StoreError>;
    /// The bucket's uploads whose key starts with `prefix`, in order of key
    /// (bytes of UTF-8) then upload ID, after `(after_key, after_upload_id)`:
    /// with an upload ID, the uploads of `after_key` after it and every
    /// later key; without, only later keys (`""`: from the start). At most
    /// `limit`.
    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after_key: &str,
        after_upload_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MultipartUpload>, StoreError>;
    /// Uploads of any bucket initiated before `before_ms`, oldest first, at
    /// most `limit` (what the collector of abandoned uploads aborts).
    async fn uploads_initiated_before(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<MultipartUpload>, StoreError>;
    /// Stores a part, replacing the one of the same number, in one
    /// transaction, and returns the replaced record (whose file the caller
    /// removes). Fails with `Conflict(upload_id)` when the upload does not
    /// exist (completed or aborted meanwhile); nothing is stored then.
    async fn put_part(&self, part: &UploadPart) -> Result<Option<UploadPart>, StoreError>;
    /// The upload's parts numbered above `after`, in part-number order, at
    /// most `limit`.
    async fn list_parts(
        &self,
        upload_id: &str,
        after: i32,
        limit: usize,
    ) -> Result<Vec<UploadPart>, StoreError>;
    /// Completes an upload in one transaction: stores `object` (replacing
    /// the record under its key), deletes the upload and all its parts, and
    /// returns the replaced object and the parts whose files `object` does
    /// not use. Fails with `Conflict(upload_id)`, changing nothing, when the
    /// upload is gone or a file of `object.parts` is no longer one of its
    /// parts (replaced meanwhile); `Conflict(bucket)` when the bucket is
    /// gone.
    async fn complete_upload(
        &self,
        upload_id: &str,
        object: &S3Object,
    ) -> Result<CompletedUpload, StoreError>;
    /// Deletes the upload and its parts in one transaction and returns the
    /// parts (whose files the caller removes); `None` when there was no
    /// such upload.
    async fn delete_upload(&self, upload_id: &str) -> Result<Option<Vec<UploadPart>>, StoreError>;
}

/// Who holds a lease: the node (stable across its restarts when
/// configured or persisted) and this run of it (new at every start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub node_id: String,
    pub run_id: String,
}

/// A lease as its holder knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    /// The fencing token: strictly greater than every earlier claim's.
    pub token: i64,
    /// When it lapses unless renewed (the holder's wall clock, ms).
    pub expires_ms: i64,
}

/// The lease name of a task (the engines claim tasks under it).
pub fn task_lease_name(task_id: &str) -> String {
    format!("{TASK_LEASE_PREFIX}{task_id}")
}

/// The prefix of task lease names.
pub const TASK_LEASE_PREFIX: &str = "task/";

/// The block-map value for an all-zero block, which is never stored.
pub const ZERO_BLOCK: &str = "zero";

/// Narrowing for listings of snapshots, volumes and instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordQuery {
    pub region: Option<String>,
    pub owner_ids: Option<Vec<String>>,
}
