//! The records Hangar keeps. Field names follow AWS's member names in
//! snake case; the wire crates map them to and from the wire by hand.
//!
//! Records derive serde so the storage engines can persist them; the stored
//! form carries [`Image::RECORD_VERSION`] so a later change can migrate it.

use serde::{Deserialize, Serialize};

use crate::clock::EpochMillis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageState {
    Pending,
    Available,
    Invalid,
    Deregistered,
    Transient,
    Failed,
    Error,
    Disabled,
}

impl ImageState {
    /// The word AWS uses for the state, in `imageState` and the `state` filter.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageState::Pending => "pending",
            ImageState::Available => "available",
            ImageState::Invalid => "invalid",
            ImageState::Deregistered => "deregistered",
            ImageState::Transient => "transient",
            ImageState::Failed => "failed",
            ImageState::Error => "error",
            ImageState::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// One entry of an image's launch permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LaunchPermission {
    /// `UserId`: a 12-digit account.
    UserId(String),
    /// `Group=all`: the image is public.
    GroupAll,
    OrganizationArn(String),
    OrganizationalUnitArn(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EbsBlockDevice {
    pub snapshot_id: Option<String>,
    pub volume_size: Option<i64>,
    pub volume_type: Option<String>,
    pub delete_on_termination: Option<bool>,
    pub iops: Option<i64>,
    pub throughput: Option<i64>,
    pub encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDeviceMapping {
    pub device_name: String,
    pub virtual_name: Option<String>,
    pub ebs: Option<EbsBlockDevice>,
    /// `NoDevice`: suppresses a mapping inherited from the image.
    pub no_device: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReason {
    pub code: String,
    pub message: String,
}

/// Deregistration protection as AWS describes it: off, on, or on with a
/// 24-hour cooldown that keeps it in force after it is turned off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeregistrationProtection {
    pub enabled: bool,
    pub with_cooldown: bool,
    /// When protection was turned off with a cooldown, the moment the
    /// cooldown ends and the image may be deregistered.
    pub cooldown_until: Option<EpochMillis>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub image_id: String,
    pub region: String,
    pub owner_id: String,
    /// `amazon`, `aws-marketplace`, ... for provider images; none for users'.
    pub owner_alias: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub image_location: String,
    pub image_type: String,
    pub architecture: String,
    pub virtualization_type: String,
    pub hypervisor: String,
    pub platform: Option<String>,
    pub platform_details: String,
    pub usage_operation: String,
    pub root_device_type: String,
    pub root_device_name: Option<String>,
    pub block_device_mappings: Vec<BlockDeviceMapping>,
    pub boot_mode: Option<String>,
    pub ena_support: Option<bool>,
    pub sriov_net_support: Option<String>,
    pub tpm_support: Option<String>,
    pub imds_support: Option<String>,
    pub uefi_data: Option<String>,
    pub kernel_id: Option<String>,
    pub ramdisk_id: Option<String>,
    pub state: ImageState,
    pub state_reason: Option<StateReason>,
    pub creation_ms: EpochMillis,
    pub launch_permissions: Vec<LaunchPermission>,
    pub tags: Vec<Tag>,
    pub source_image_id: Option<String>,
    pub source_image_region: Option<String>,
    pub source_instance_id: Option<String>,
    pub deprecation_ms: Option<EpochMillis>,
    pub deregistration_protection: DeregistrationProtection,
    /// The newest launch recorded (raw, any account). In a view for the
    /// owner it is replaced by the reported `lastLaunchedTime` (see
    /// `crate::usage`).
    pub last_launched_ms: Option<EpochMillis>,
    /// Recent launches, oldest first, bounded (see `crate::usage`): what
    /// `lastLaunchedTime` with a reporting delay is computed from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_history_ms: Vec<EpochMillis>,
    pub deregistered_ms: Option<EpochMillis>,
    /// Bumped on every update; the store refuses an update made from a stale
    /// copy, so concurrent read-modify-write cycles never lose a change.
    pub revision: i64,
}

impl Image {
    /// Version of the persisted form of this record.
    pub const RECORD_VERSION: i64 = 1;

    pub fn is_public(&self) -> bool {
        self.launch_permissions
            .iter()
            .any(|permission| matches!(permission, LaunchPermission::GroupAll))
    }

    /// True when `account` appears by ID in the launch permissions.
    pub fn is_shared_with(&self, account: &str) -> bool {
        self.launch_permissions.iter().any(
            |permission| matches!(permission, LaunchPermission::UserId(user) if user == account),
        )
    }

    pub fn is_deprecated_at(&self, now_ms: EpochMillis) -> bool {
        self.deprecation_ms.is_some_and(|at| at <= now_ms)
    }

    /// The snapshot IDs the block device mappings refer to, in order.
    pub fn snapshot_ids(&self) -> impl Iterator<Item = &str> {
        self.block_device_mappings.iter().filter_map(|mapping| {
            mapping
                .ebs
                .as_ref()
                .and_then(|ebs| ebs.snapshot_id.as_deref())
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotState {
    Pending,
    Completed,
    Error,
}

impl SnapshotState {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotState::Pending => "pending",
            SnapshotState::Completed => "completed",
            SnapshotState::Error => "error",
        }
    }
}

/// A snapshot: a disk image of `volume_size_gib`, whose data lives in the
/// block store and whose block map (index → block) lives in the repository
/// under the snapshot's ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub snapshot_id: String,
    pub region: String,
    pub owner_id: String,
    pub owner_alias: Option<String>,
    /// The volume it was taken from; `vol-ffffffff` when it has none (EBS
    /// direct APIs, copies), as AWS reports it.
    pub volume_id: String,
    pub volume_size_gib: i64,
    pub state: SnapshotState,
    pub state_message: Option<String>,
    /// 0 to 100.
    pub progress: i64,
    pub start_ms: EpochMillis,
    pub completion_ms: Option<EpochMillis>,
    pub description: Option<String>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub tags: Vec<Tag>,
    /// EBS direct APIs: the snapshot this one is incremental to.
    pub parent_snapshot_id: Option<String>,
    /// CopySnapshot: where the data came from.
    pub source_snapshot_id: Option<String>,
    pub source_region: Option<String>,
    /// EBS direct APIs: the idempotency token of `StartSnapshot`, and the
    /// moment a pending snapshot times out.
    pub client_token: Option<String>,
    pub timeout_ms: Option<EpochMillis>,
    /// Accounts allowed to use the snapshot (`createVolumePermission`).
    pub create_volume_permissions: Vec<String>,
    pub revision: i64,
}

impl Snapshot {
    pub const RECORD_VERSION: i64 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeState {
    Creating,
    Available,
    InUse,
    Deleting,
    Deleted,
    Error,
}

impl VolumeState {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeState::Creating => "creating",
            VolumeState::Available => "available",
            VolumeState::InUse => "in-use",
            VolumeState::Deleting => "deleting",
            VolumeState::Deleted => "deleted",
            VolumeState::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    pub instance_id: String,
    pub device: String,
    pub attach_ms: EpochMillis,
    pub delete_on_termination: bool,
}

/// A volume: a copy-on-write view of a snapshot, with its own block map under
/// the volume's ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub volume_id: String,
    pub region: String,
    pub owner_id: String,
    pub availability_zone: String,
    pub size_gib: i64,
    pub snapshot_id: Option<String>,
    pub volume_type: String,
    pub iops: Option<i64>,
    pub throughput: Option<i64>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub state: VolumeState,
    pub create_ms: EpochMillis,
    pub attachment: Option<VolumeAttachment>,
    pub tags: Vec<Tag>,
    pub revision: i64,
}

impl Volume {
    pub const RECORD_VERSION: i64 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }

    /// AWS's numeric state code.
    pub fn code(self) -> i64 {
        match self {
            InstanceState::Pending => 0,
            InstanceState::Running => 16,
            InstanceState::ShuttingDown => 32,
            InstanceState::Terminated => 48,
            InstanceState::Stopping => 64,
            InstanceState::Stopped => 80,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceBlockDevice {
    pub device_name: String,
    pub volume_id: String,
    pub delete_on_termination: bool,
    pub attach_ms: EpochMillis,
}

/// An instance. Nothing runs: it is the record of a launch, with volumes that
/// hold real data, and states that move as AWS's do. A transitional state
/// (`pending`, `stopping`, `shutting-down`) settles into `settles_to` at
/// `settles_at_ms`; readers compute the state in effect at their moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub instance_id: String,
    pub region: String,
    pub owner_id: String,
    pub reservation_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub availability_zone: String,
    pub architecture: String,
    pub virtualization_type: String,
    pub hypervisor: String,
    pub platform_details: String,
    pub root_device_name: Option<String>,
    pub root_device_type: String,
    pub block_devices: Vec<InstanceBlockDevice>,
    pub state: InstanceState,
    pub settles_to: Option<InstanceState>,
    pub settles_at_ms: Option<EpochMillis>,
    pub state_reason: Option<StateReason>,
    pub state_transition_reason: String,
    pub launch_ms: EpochMillis,
    pub ami_launch_index: i64,
    pub private_ip_address: String,
    pub client_token: Option<String>,
    pub tags: Vec<Tag>,
    pub revision: i64,
}

impl Instance {
    pub const RECORD_VERSION: i64 = 1;

    /// The state in effect at `now_ms`.
    pub fn state_at(&self, now_ms: EpochMillis) -> InstanceState {
        match (self.settles_to, self.settles_at_ms) {
            (Some(target), Some(at)) if now_ms >= at => target,
            _ => self.state,
        }
    }

    /// Folds a settled transition into `state`, so updates start from the
    /// state in effect.
    pub fn settle(&mut self, now_ms: EpochMillis) {
        self.state = self.state_at(now_ms);
        if self.settles_at_ms.is_some_and(|at| now_ms >= at) {
            self.settles_to = None;
            self.settles_at_ms = None;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskState {
    Queued,
    Running,
    Completed,
    Failed,
}

impl TaskState {
    pub fn is_finished(self) -> bool {
        matches!(self, TaskState::Completed | TaskState::Failed)
    }
}

/// One snapshot a task creates: where its data comes from and the new ID,
/// chosen when the task is created so that re-running a step is idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotCopyPlan {
    /// A snapshot or volume ID whose block map is copied.
    pub source_map_id: String,
    pub source_snapshot_id: Option<String>,
    pub source_volume_id: Option<String>,
    pub new_snapshot_id: String,
    pub device_name: String,
    pub volume_size_gib: i64,
    pub done: bool,
}

/// What a long-running task does; its plan is fixed at creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskWork {
    /// `CreateImage`, `CopyImage`: copy block maps into new snapshots, then
    /// make the (already recorded, pending) image available.
    BuildImage {
        image_id: String,
        snapshots: Vec<SnapshotCopyPlan>,
        snapshot_tags: Vec<Tag>,
        description: Option<String>,
    },
    /// `CreateStoreImageTask`: pack the image and its snapshots' data into
    /// one object `<object_key>` of `bucket` (see `crate::transfer`).
    StoreImage {
        image_id: String,
        bucket: String,
        object_key: String,
        /// `S3ObjectTag.N` of the request.
        object_tags: Vec<Tag>,
        /// The multipart upload the object is written through, once
        /// started: kept so a task resumed after a crash reuses it.
        upload_id: Option<String>,
    },
    /// `CreateRestoreImageTask`: rebuild the (already recorded, pending)
    /// image `image_id` and its snapshots from an object.
    RestoreImage {
        image_id: String,
        bucket: String,
        object_key: String,
        /// The new snapshots, one per snapshot of the archive, in archive
        /// order; chosen at request time so each step is idempotent.
        snapshot_ids: Vec<String>,
        snapshot_tags: Vec<Tag>,
    },
}

/// A long-running piece of work with explicit, persisted state: created
/// with the records it will complete, claimed by a runner, resumed after a
/// crash from its persisted progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub task_id: String,
    pub region: String,
    pub owner_id: String,
    pub state: TaskState,
    pub work: TaskWork,
    /// 0 to 100, from real work done; never goes backwards.
    pub progress: i64,
    pub created_ms: EpochMillis,
    pub updated_ms: EpochMillis,
    pub attempts: i64,
    pub failure_reason: Option<String>,
    pub revision: i64,
}

impl Task {
    pub const RECORD_VERSION: i64 = 1;
}

/// The four switches of an S3 Block Public Access configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    /// Every switch on: what a new bucket gets, as S3 does since April 2023.
    pub const ALL_BLOCKED: PublicAccessBlock = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
}

/// An S3 bucket: a name unique across the whole deployment (every account
/// and region), owned by one account and living in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub name: String,
    pub region: String,
    pub owner_id: String,
    pub created_ms: EpochMillis,
    /// `None` after `DeletePublicAccessBlock`.
    pub public_access_block: Option<PublicAccessBlock>,
    /// The bucket policy document (JSON, as the owner put it), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Default encryption (`PutBucketEncryption`); every bucket has one.
    #[serde(default)]
    pub encryption: BucketEncryption,
    pub revision: i64,
}

/// A bucket's default encryption rule. Hangar encrypts every object file
/// whatever this says (see docs/s3.md); the rule is what S3 reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryption {
    /// `AES256` (SSE-S3), the only algorithm Hangar serves.
    pub sse_algorithm: String,
    pub bucket_key_enabled: bool,
}

impl Default for BucketEncryption {
    fn default() -> Self {
        Self {
            sse_algorithm: "AES256".to_owned(),
            bucket_key_enabled: false,
        }
    }
}

impl Bucket {
    pub const RECORD_VERSION: i64 = 1;
}

/// An S3 object's record: what `HeadObject` reports and where its bytes
/// are. The bytes live in one file of the bucket's folder, named by
/// `file_name` (see [`crate::objects::object_file_name`]), never by the key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Object {
    pub bucket: String,
    pub key: String,
    pub size: i64,
    /// Hex MD5 of the body, without quotes.
    pub etag: String,
    pub content_type: Option<String>,
    /// `x-amz-meta-*` headers, names without the prefix, lower case.
    pub metadata: std::collections::BTreeMap<String, String>,
    pub last_modified_ms: EpochMillis,
    /// The file holding the bytes, inside the bucket's folder; empty when
    /// the object is a completed multipart upload (then `parts`).
    pub file_name: String,
    /// A completed multipart upload's parts, in order: the object's bytes
    /// are their concatenation. Empty for an object written in one piece.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<ObjectPart>,
    /// Object tags (`x-amz-tagging`, `PutObjectTagging`): at most 10.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
    /// The additional checksum the writer sent (`x-amz-checksum-*`),
    /// verified when the object was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ObjectChecksum>,
}

/// One part file of an object made by a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPart {
    pub file_name: String,
    pub size: i64,
}

/// An additional checksum of an object, as S3 reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectChecksum {
    /// `CRC32`, `CRC32C`, `CRC64NVME`, `SHA1` or `SHA256`.
    pub algorithm: String,
    /// Base64 of the digest; for a composite checksum, `<base64>-<parts>`.
    pub value: String,
    /// `COMPOSITE` (a checksum of the parts' checksums) rather than
    /// `FULL_OBJECT`.
    pub composite: bool,
}

impl S3Object {
    pub const RECORD_VERSION: i64 = 1;

    /// The files of this (replaced or deleted) record that `kept` (the record
    /// that replaced it, if any) does not use: what to remove once the change
    /// is committed.
    pub fn files_unused_by(&self, kept: Option<&S3Object>) -> Vec<String> {
        let in_use: Vec<&str> = kept
            .map(|kept| kept.files().into_iter().map(|(name, _)| name).collect())
            .unwrap_or_default();
        self.files()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| !name.is_empty() && !in_use.contains(name))
            .map(str::to_owned)
            .collect()
    }

    /// The files holding the object's bytes, in order, with their sizes.
    pub fn files(&self) -> Vec<(&str, i64)> {
        if self.parts.is_empty() {
            vec![(self.file_name.as_str(), self.size)]
        } else {
            self.parts
                .iter()
                .map(|part| (part.file_name.as_str(), part.size))
                .collect()
        }
    }
}

/// An S3 multipart upload in progress (`CreateMultipartUpload` until
/// `CompleteMultipartUpload` or `AbortMultipartUpload`). Its parts are
/// [`UploadPart`] records; the object exists only once it completes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartUpload {
    /// Opaque to clients; sorts in order of initiation (see
    /// [`crate::multipart::new_upload_id`]).
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    /// The account that initiated the upload.
    pub initiator_id: String,
    pub initiated_ms: EpochMillis,
    /// What the completed object will carry.
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
    /// `ChecksumAlgorithm` of `CreateMultipartUpload`: every part carries
    /// this checksum, and the object a composite one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
}

impl MultipartUpload {
    pub const RECORD_VERSION: i64 = 1;
}

/// One uploaded part of a multipart upload: a durable file of the bucket's
/// folder, not yet part of any object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadPart {
    pub upload_id: String,
    /// 1 to 10,000.
    pub part_number: i32,
    pub file_name: String,
    pub size: i64,
    /// Hex MD5 of the part's bytes, without quotes.
    pub etag: String,
    pub last_modified_ms: EpochMillis,
    /// The additional checksum of the part's bytes, verified on upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ObjectChecksum>,
}

impl UploadPart {
    pub const RECORD_VERSION: i64 = 1;
}

/// What completing an upload changed in the store: the object record it
/// replaced and the parts the object does not use (whose files the caller
/// removes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompletedUpload {
    pub replaced: Option<S3Object>,
    pub unused_parts: Vec<UploadPart>,
}
