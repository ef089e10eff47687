//! Storing AMIs in buckets and restoring them, as EC2 sees it:
//! `CreateStoreImageTask`, `DescribeStoreImageTasks` and
//! `CreateRestoreImageTask`. This module validates the requests (every
//! precondition of AWS's documentation, each refused with an error that
//! names the rule) and records the tasks; the work itself is done by the
//! registered [`crate::transfer::ImageTransfer`] when the runner picks the
//! task up.
//!
//! Decisions (documented in `docs/behaviour.md`, "Store and restore"):
//!
//! - the caller must own the AMI or be named in its launch permissions;
//!   public alone is not enough (`AuthFailure`);
//! - bucket problems (missing, foreign region, no access, public, object
//!   missing, already stored) are `InvalidParameterValue`, naming the rule;
//! - quotas of GiB in progress are `ResourceLimitExceeded`; they count the
//!   account's unfinished tasks in the request's region.

use std::collections::{BTreeMap, HashSet};

use crate::access::{AccessRequest, Principal, actions};
use crate::buckets::BucketError;
use crate::error::{Error, ResourceKind, Result};
use crate::filter::{self, Filter};
use crate::ids;
use crate::images::validate_image_name;
use crate::model::{
    Bucket, DeregistrationProtection, Image, ImageState, PublicAccessBlock, Tag, Task, TaskState,
    TaskWork,
};
use crate::page;
use crate::policy::BucketPolicy;
use crate::repo::{ImageListQuery, StoreError};
use crate::service::{Caller, Hangar};
use crate::tags::{self, TagSpecification};
use crate::transfer::{BucketSecurity, StoredImage};

/// How far back `DescribeStoreImageTasks` looks: 31 days.
pub const TASK_HISTORY_MS: i64 = 31 * 24 * 60 * 60 * 1000;
/// Most `ImageId.N` in one `DescribeStoreImageTasks`.
pub const MAX_DESCRIBE_IMAGE_IDS: usize = 20;
/// `MaxResults` bounds of `DescribeStoreImageTasks`.
pub const MIN_RESULTS: i64 = 1;
pub const MAX_RESULTS: i64 = 200;
/// S3's limits on the tags of one object (`S3ObjectTag.N`).
pub const MAX_OBJECT_TAGS: usize = 10;
pub const MAX_OBJECT_TAG_KEY_CHARS: usize = 128;
pub const MAX_OBJECT_TAG_VALUE_CHARS: usize = 256;
/// The suffix of a stored image's object key: `<ami-id>.bin`.
pub const OBJECT_SUFFIX: &str = ".bin";

const LISTING: &str = "store-image-tasks";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateStoreImageTaskInput {
    pub image_id: String,
    /// A bucket name, optionally followed by a key prefix:
    /// `bucket/path1/path2`.
    pub bucket: String,
    pub object_tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateStoreImageTaskOutput {
    pub object_key: String,
    /// Advice about the bucket (e.g. no default encryption) for the
    /// server's log; the request succeeded anyway.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DescribeStoreImageTasksInput {
    pub image_ids: Vec<String>,
    pub filters: Vec<Filter>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

/// One `StoreImageTaskResult`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreImageTaskResult {
    pub ami_id: String,
    pub task_start_ms: i64,
    pub bucket: String,
    pub object_key: String,
    pub progress_percentage: i64,
    /// `InProgress`, `Completed` or `Failed`.
    pub state: &'static str,
    pub failure_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeStoreImageTasksOutput {
    pub results: Vec<StoreImageTaskResult>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateRestoreImageTaskInput {
    pub bucket: String,
    pub object_key: String,
    pub name: Option<String>,
    pub tag_specifications: Vec<TagSpecification>,
}

/// The wire word of a task state: `InProgress`, `Completed`, `Failed`.
pub fn store_task_state(state: TaskState) -> &'static str {
    match state {
        TaskState::Queued | TaskState::Running => "InProgress",
        TaskState::Completed => "Completed",
        TaskState::Failed => "Failed",
    }
}

/// Splits `bucket/path1/path2` into the bucket name and the key prefix
/// (`path1/path2`, without surrounding slashes; empty when none).
pub fn split_bucket(bucket: &str) -> (&str, &str) {
    match bucket.split_once('/') {
        Some((name, prefix)) => (name, prefix.trim_matches('/')),
        None => (bucket, ""),
    }
}

/// The key a stored image gets: `<prefix>/<ami-id>.bin`, or
/// `<ami-id>.bin` without a prefix.
pub fn object_key_for(prefix: &str, image_id: &str) -> String {
    if prefix.is_empty() {
        format!("{image_id}{OBJECT_SUFFIX}")
    } else {
        format!("{prefix}/{image_id}{OBJECT_SUFFIX}")
    }
}

/// Checks `S3ObjectTag.N`: at most 10, keys of 1 to 128 characters without
/// the `aws:` prefix, values of at most 256, no key twice.
pub fn validate_object_tags(object_tags: &[Tag]) -> Result<()> {
    if object_tags.len() > MAX_OBJECT_TAGS {
        return Err(Error::TagLimitExceeded(format!(
            "S3ObjectTag: at most {MAX_OBJECT_TAGS} tags may be put on the object ({} given)",
            object_tags.len()
        )));
    }
    let mut seen = HashSet::new();
    for tag in object_tags {
        let key_chars = tag.key.chars().count();
        if key_chars == 0 || key_chars > MAX_OBJECT_TAG_KEY_CHARS {
            return Err(Error::InvalidParameterValue(format!(
                "S3ObjectTag key '{}' is invalid: keys must be 1 to {MAX_OBJECT_TAG_KEY_CHARS} characters long",
                tag.key
            )));
        }
        if tag.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(Error::InvalidParameterValue(format!(
                "S3ObjectTag key '{}' is invalid: keys starting with 'aws:' are reserved",
                tag.key
            )));
        }
        if tag.value.chars().count() > MAX_OBJECT_TAG_VALUE_CHARS {
            return Err(Error::InvalidParameterValue(format!(
                "S3ObjectTag value of key '{}' is invalid: values may be at most {MAX_OBJECT_TAG_VALUE_CHARS} characters long",
                tag.key
            )));
        }
        if !seen.insert(tag.key.as_str()) {
            return Err(Error::InvalidParameterValue(format!(
                "S3ObjectTag key '{}' is given more than once",
                tag.key
            )));
        }
    }
    Ok(())
}

/// Whether the bucket counts as public for storing: its policy is public,
/// or its Block Public Access is not fully on.
pub fn bucket_public_reason(bucket: &Bucket) -> Result<Option<String>> {
    if bucket.public_access_block != Some(PublicAccessBlock::ALL_BLOCKED) {
        return Ok(Some(format!(
            "the Block Public Access configuration of bucket '{}' is not fully enabled",
            bucket.name
        )));
    }
    if let Some(document) = &bucket.policy {
        let policy = BucketPolicy::parse(document, &bucket.name).map_err(|error| {
            Error::Internal(format!(
                "the stored policy of bucket {} no longer parses: {error}",
                bucket.name
            ))
        })?;
        if policy.is_public() {
            return Ok(Some(format!(
                "the policy of bucket '{}' makes it public",
                bucket.name
            )));
        }
    }
    Ok(None)
}

/// The advice logged for a bucket without default encryption. Embedded
/// buckets always encrypt (every bucket has a rule), so this only fires for
/// backends that can be unencrypted.
pub fn encryption_warning(bucket: &Bucket) -> Option<String> {
    if bucket.encryption.sse_algorithm.is_empty() {
        Some(format!(
            "bucket {} has no default encryption; stored AMI objects hold plaintext disk data",
            bucket.name
        ))
    } else {
        None
    }
}

fn bucket_error(error: BucketError, bucket: &str, action: &str) -> Error {
    match error {
        BucketError::NoSuchBucket(_) => {
            Error::InvalidParameterValue(format!("The bucket '{bucket}' does not exist"))
        }
        // The embedded buckets say only the bucket's name; an external
        // store's backend says why (a grant missing, the store refusing).
        BucketError::AccessDenied(detail) if detail != bucket => {
            Error::InvalidParameterValue(format!("Access to bucket '{bucket}' is denied: {detail}"))
        }
        BucketError::AccessDenied(_) => Error::InvalidParameterValue(format!(
            "Access to bucket '{bucket}' is denied: the bucket is not yours and its policy does not grant you {action}"
        )),
        BucketError::Internal(detail) => Error::Internal(detail),
        other => Error::InvalidParameterValue(format!("Bucket '{bucket}': {other}")),
    }
}

/// The sum of the volume sizes of an image's EBS mappings, in GiB (a
/// mapping without a size counts its snapshot's).
async fn image_size_gib(hangar: &Hangar, image: &Image) -> Result<i64> {
    let mut total = 0;
    for mapping in &image.block_device_mappings {
        let Some(ebs) = &mapping.ebs else { continue };
        let size = match (ebs.volume_size, &ebs.snapshot_id) {
            (Some(size), _) => size,
            (None, Some(snapshot_id)) => hangar
                .store
                .get_snapshot(snapshot_id)
                .await?
                .map_or(0, |snapshot| snapshot.volume_size_gib),
            (None, None) => 0,
        };
        total += size;
    }
    Ok(total)
}

impl Hangar {
    /// `CreateStoreImageTask`: checks every precondition, then records a
    /// queued store task and returns the key the object will have.
    pub async fn create_store_image_task(
        &self,
        caller: &Caller,
        input: CreateStoreImageTaskInput,
        dry_run: bool,
    ) -> Result<CreateStoreImageTaskOutput> {
        validate_object_tags(&input.object_tags)?;
        let (bucket_name, prefix) = split_bucket(&input.bucket);
        if bucket_name.is_empty() {
            return Err(Error::InvalidParameterValue(
                "The Bucket parameter must name a bucket".into(),
            ));
        }
        crate::buckets::validate_bucket_name(bucket_name).map_err(|error| {
            Error::InvalidParameterValue(format!("Invalid bucket name '{bucket_name}': {error}"))
        })?;

        // The image: visible, owned or shared directly, EBS-backed, HVM,
        // available, not too big.
        let image = self.usable_image(caller, &input.image_id).await?;
        if image.owner_id != caller.account_id && !image.is_shared_with(&caller.account_id) {
            return Err(Error::NotAuthorizedForImage(image.image_id.clone()));
        }
        if image.root_device_type != "ebs" {
            return Err(Error::InvalidParameterValue(format!(
                "The image {} is not EBS-backed (root device type {}): only EBS-backed AMIs can be stored",
                image.image_id, image.root_device_type
            )));
        }
        if image.virtualization_type == "paravirtual" {
            return Err(Error::InvalidParameterValue(format!(
                "The image {} uses paravirtual virtualization: paravirtual AMIs cannot be stored",
                image.image_id
            )));
        }
        if image.state != ImageState::Available {
            return Err(Error::IncorrectImageState {
                image_id: image.image_id.clone(),
                state: image.state.as_str().into(),
            });
        }
        for mapping in &image.block_device_mappings {
            if let Some(snapshot_id) = mapping.ebs.as_ref().and_then(|ebs| ebs.snapshot_id.clone())
                && self.store.get_snapshot(&snapshot_id).await?.is_none()
            {
                return Err(Error::ResourceNotFound {
                    kind: ResourceKind::Snapshot,
                    ids: vec![snapshot_id],
                });
            }
        }
        let size = image_size_gib(self, &image).await?;
        if size > self.settings.store_max_image_gib {
            return Err(Error::InvalidParameterValue(format!(
                "The image {} is {size} GiB: AMIs larger than {} GiB cannot be stored",
                image.image_id, self.settings.store_max_image_gib
            )));
        }

        // The bucket: exists, in this region, writable by the caller, not
        // public.
        let object_key = object_key_for(prefix, &image.image_id);
        crate::objects::validate_key(&object_key).map_err(|_| {
            Error::InvalidParameterValue(format!(
                "The object key '{object_key}' is too long (at most 1024 bytes)"
            ))
        })?;
        let bucket = self
            .task_bucket(caller, bucket_name, actions::PUT_OBJECT, &object_key)
            .await
            .map_err(|error| bucket_error(error, bucket_name, actions::PUT_OBJECT))?;
        if bucket.region != caller.region {
            return Err(Error::InvalidParameterValue(format!(
                "The bucket '{}' is in {}, not in {}: the bucket must be in the region of the request",
                bucket.name, bucket.region, caller.region
            )));
        }
        let security = self
            .bucket_security(&bucket)
            .await
            .map_err(|error| bucket_error(error, bucket_name, actions::PUT_OBJECT))?;
        if !self.settings.store_allow_public_buckets
            && let Some(reason) = security.public_reason
        {
            return Err(Error::InvalidParameterValue(format!(
                "The bucket '{}' may be public ({reason}): AMIs are only stored in buckets that block all public access",
                bucket.name
            )));
        }
        let warnings: Vec<String> = security.encryption_warning.into_iter().collect();

        // Not stored twice, and within the quota of work in progress.
        let in_progress = self.unfinished_tasks_of(caller).await?;
        for task in &in_progress {
            if let TaskWork::StoreImage {
                image_id,
                bucket: task_bucket,
                object_key: task_key,
                ..
            } = &task.work
                && image_id == &image.image_id
                && task_bucket == &bucket.name
                && task_key == &object_key
            {
                return Err(Error::InvalidParameterValue(format!(
                    "The image {} is already being stored in bucket '{}' as '{object_key}'",
                    image.image_id, bucket.name
                )));
            }
        }
        if self
            .task_object_exists(&bucket, &object_key)
            .await
            .map_err(|error| bucket_error(error, bucket_name, actions::PUT_OBJECT))?
        {
            return Err(Error::InvalidParameterValue(format!(
                "The image {} is already stored in bucket '{}' as '{object_key}': delete the object to store it again",
                image.image_id, bucket.name
            )));
        }
        let mut used = 0;
        for task in &in_progress {
            if let TaskWork::StoreImage { image_id, .. } = &task.work
                && let Some(stored) = self.store.get_image(image_id).await?
            {
                used += image_size_gib(self, &stored).await?;
            }
        }
        let limit = self.settings.store_max_in_progress_gib;
        if used + size > limit {
            return Err(Error::ResourceLimitExceeded(format!(
                "Storing {} ({size} GiB) would bring the account's store tasks in progress to {} GiB, over the limit of {limit} GiB",
                image.image_id,
                used + size
            )));
        }
        if dry_run {
            return Err(Error::DryRunOperation);
        }

        let now = self.clock.now_ms();
        let task = Task {
            task_id: ids::generate("store"),
            region: caller.region.clone(),
            owner_id: caller.account_id.clone(),
            state: TaskState::Queued,
            work: TaskWork::StoreImage {
                image_id: image.image_id.clone(),
                bucket: bucket.name.clone(),
                object_key: object_key.clone(),
                object_tags: input.object_tags,
                upload_id: None,
            },
            progress: 0,
            created_ms: now,
            updated_ms: now,
            attempts: 0,
            failure_reason: None,
            revision: 0,
        };
        self.store.insert_task(&task).await?;
        self.waker.wake();
        Ok(CreateStoreImageTaskOutput {
            object_key,
            warnings,
        })
    }

    /// The bucket of a store or restore request, as the registered
    /// transfer's backend finds it (the embedded buckets' records, or an
    /// external S3 store); without a transfer, the embedded rule.
    async fn task_bucket(
        &self,
        caller: &Caller,
        name: &str,
        action: &'static str,
        key: &str,
    ) -> std::result::Result<Bucket, BucketError> {
        if let Some(objects) = self.transfer().and_then(|transfer| transfer.objects()) {
            return objects.bucket(self, caller, name, action, key).await;
        }
        let principal = Principal::Account(caller.clone());
        let request = AccessRequest {
            principal: &principal,
            action,
            key: Some(key),
            secure_transport: true,
        };
        self.authorize(name, &request).await
    }

    /// The security settings the store rules read, from the same backend.
    async fn bucket_security(
        &self,
        bucket: &Bucket,
    ) -> std::result::Result<BucketSecurity, BucketError> {
        if let Some(objects) = self.transfer().and_then(|transfer| transfer.objects()) {
            return objects.security(bucket).await;
        }
        let public_reason = bucket_public_reason(bucket).map_err(|error| match error {
            Error::Internal(detail) => BucketError::Internal(detail),
            other => BucketError::Internal(other.to_string()),
        })?;
        Ok(BucketSecurity {
            public_reason,
            encryption_warning: encryption_warning(bucket),
        })
    }

    /// Whether `key` exists in the bucket, from the same backend.
    async fn task_object_exists(
        &self,
        bucket: &Bucket,
        key: &str,
    ) -> std::result::Result<bool, BucketError> {
        if let Some(objects) = self.transfer().and_then(|transfer| transfer.objects()) {
            return Ok(objects.head_object(bucket, key).await?.is_some());
        }
        Ok(self.store.get_object(&bucket.name, key).await?.is_some())
    }

    /// `InvalidAMIName.Duplicate` when the caller has a live image of this
    /// name in its region (the store enforces it again on insert).
    async fn check_name_free(&self, caller: &Caller, name: &str) -> Result<()> {
        let taken = self
            .store
            .list_images(&ImageListQuery {
                region: caller.region.clone(),
                owner_ids: Some(vec![caller.account_id.clone()]),
                owner_aliases: None,
                exclude_deregistered: true,
            })
            .await?
            .into_iter()
            .find(|image| image.name == name);
        match taken {
            Some(existing) => Err(Error::DuplicateImageName {
                name: name.to_string(),
                existing: existing.image_id,
            }),
            None => Ok(()),
        }
    }

    /// The caller's queued and running tasks in its region.
    async fn unfinished_tasks_of(&self, caller: &Caller) -> Result<Vec<Task>> {
        Ok(self
            .store
            .list_unfinished_tasks()
            .await?
            .into_iter()
            .filter(|task| task.owner_id == caller.account_id && task.region == caller.region)
            .collect())
    }

    /// `DescribeStoreImageTasks`: the caller's store tasks of the last 31
    /// days, newest first. With `ImageId.N`, the latest task of each of
    /// those AMIs (filters ignored); otherwise filtered and paginated.
    pub async fn describe_store_image_tasks(
        &self,
        caller: &Caller,
        input: DescribeStoreImageTasksInput,
    ) -> Result<DescribeStoreImageTasksOutput> {
        if input.image_ids.len() > MAX_DESCRIBE_IMAGE_IDS {
            return Err(Error::InvalidParameterValue(format!(
                "At most {MAX_DESCRIBE_IMAGE_IDS} ImageId values may be given ({} given)",
                input.image_ids.len()
            )));
        }
        if !input.image_ids.is_empty() && input.max_results.is_some() {
            return Err(Error::InvalidParameterCombination(
                "The parameter ImageId cannot be used with the parameter MaxResults".into(),
            ));
        }
        for image_id in &input.image_ids {
            if !ids::is_well_formed(ids::IMAGE, image_id) {
                return Err(Error::MalformedImageId(image_id.clone()));
            }
        }
        let max_results = page::check_max_results(input.max_results, MIN_RESULTS, MAX_RESULTS)?;
        if input.image_ids.is_empty() {
            filter::check_limits(&input.filters)?;
            for filter in &input.filters {
                match filter.name.as_str() {
                    "task-state" | "bucket" => {}
                    other => return Err(filter::unknown_filter(other)),
                }
            }
        }
        let since = self.clock.now_ms() - TASK_HISTORY_MS;
        let tasks = self
            .store
            .list_tasks_by_owner(&caller.account_id, &caller.region, since)
            .await?;
        let mut results: Vec<StoreImageTaskResult> = Vec::new();
        let mut keyed: Vec<(String, StoreImageTaskResult)> = Vec::new();
        let mut seen_images = HashSet::new();
        for task in tasks {
            let TaskWork::StoreImage {
                image_id,
                bucket,
                object_key,
                ..
            } = &task.work
            else {
                continue;
            };
            let result = StoreImageTaskResult {
                ami_id: image_id.clone(),
                task_start_ms: task.created_ms,
                bucket: bucket.clone(),
                object_key: object_key.clone(),
                progress_percentage: if task.state == TaskState::Completed {
                    100
                } else {
                    task.progress.clamp(0, 99)
                },
                state: store_task_state(task.state),
                failure_reason: if task.state == TaskState::Failed {
                    task.failure_reason.clone()
                } else {
                    None
                },
            };
            if !input.image_ids.is_empty() {
                // Newest first: the first task seen of an AMI is its latest.
                if input.image_ids.contains(image_id) && seen_images.insert(image_id.clone()) {
                    results.push(result);
                }
                continue;
            }
            let wanted = input
                .filters
                .iter()
                .all(|filter| match filter.name.as_str() {
                    "task-state" => filter::matches_any(filter, &[result.state]),
                    "bucket" => filter::matches_any(filter, std::slice::from_ref(&result.bucket)),
                    _ => false,
                });
            if wanted {
                // Sorts newest first; ties by task ID.
                let key = format!("{:019}|{}", i64::MAX - task.created_ms.max(0), task.task_id);
                keyed.push((key, result));
            }
        }
        if !input.image_ids.is_empty() {
            return Ok(DescribeStoreImageTasksOutput {
                results,
                next_token: None,
            });
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let (page, next_token) = page::paginate(
            keyed,
            LISTING,
            input.next_token.as_deref(),
            max_results,
            |(key, _)| key.as_str(),
        )?;
        Ok(DescribeStoreImageTasksOutput {
            results: page.into_iter().map(|(_, result)| result).collect(),
            next_token,
        })
    }

    /// `CreateRestoreImageTask`: checks the bucket, the object and what it
    /// holds, then records the new image (`pending`) and its restore task in
    /// one transaction and returns the new image's ID.
    pub async fn create_restore_image_task(
        &self,
        caller: &Caller,
        input: CreateRestoreImageTaskInput,
        dry_run: bool,
    ) -> Result<String> {
        if let Some(name) = &input.name {
            validate_image_name(name)?;
        }
        let image_tags =
            tags::tags_for(&input.tag_specifications, "image", &["image", "snapshot"])?;
        let snapshot_tags = tags::tags_for(
            &input.tag_specifications,
            "snapshot",
            &["image", "snapshot"],
        )?;
        if input.bucket.is_empty() {
            return Err(Error::InvalidParameterValue(
                "The Bucket parameter must name a bucket".into(),
            ));
        }
        crate::objects::validate_key(&input.object_key).map_err(|_| {
            Error::InvalidParameterValue(format!(
                "The object key '{}' is invalid: keys are 1 to 1024 bytes long",
                input.object_key
            ))
        })?;
        let bucket = self
            .task_bucket(
                caller,
                &input.bucket,
                actions::GET_OBJECT,
                &input.object_key,
            )
            .await
            .map_err(|error| bucket_error(error, &input.bucket, actions::GET_OBJECT))?;
        if bucket.region != caller.region {
            return Err(Error::InvalidParameterValue(format!(
                "The bucket '{}' is in {}, not in {}: the bucket must be in the region of the request",
                bucket.name, bucket.region, caller.region
            )));
        }
        if !self
            .task_object_exists(&bucket, &input.object_key)
            .await
            .map_err(|error| bucket_error(error, &input.bucket, actions::GET_OBJECT))?
        {
            return Err(Error::InvalidParameterValue(format!(
                "The object '{}' does not exist in bucket '{}'",
                input.object_key, bucket.name
            )));
        }
        // A name given in the request is checked before the object is read.
        if let Some(name) = &input.name {
            self.check_name_free(caller, name).await?;
        }
        let Some(transfer) = self.transfer.get().cloned() else {
            return Err(Error::Unsupported(
                "Restoring images is not available: this server has no image transfer configured"
                    .into(),
            ));
        };
        let stored =
            transfer
                .inspect(&bucket, &input.object_key)
                .await
                .map_err(|error| match error {
                    Error::Internal(detail) => Error::Internal(detail),
                    other => Error::InvalidParameterValue(format!(
                        "The object '{}' of bucket '{}' is not a stored AMI: {other}",
                        input.object_key, bucket.name
                    )),
                })?;
        let name = input.name.clone().unwrap_or_else(|| stored.name.clone());
        validate_image_name(&name)?;
        self.check_name_free(caller, &name).await?;
        let now = self.clock.now_ms();
        let (mut image, snapshot_ids) = restored_image(&stored, caller, name, now, &input)?;
        let mut merged_tags = stored.tags.clone();
        tags::merge(&mut merged_tags, &image_tags)?;
        image.tags = merged_tags;

        let size: i64 = stored
            .snapshots
            .iter()
            .map(|snapshot| snapshot.volume_size_gib)
            .sum();
        let mut used = 0;
        for task in self.unfinished_tasks_of(caller).await? {
            if let TaskWork::RestoreImage { image_id, .. } = &task.work
                && let Some(restoring) = self.store.get_image(image_id).await?
            {
                used += image_size_gib(self, &restoring).await?;
            }
        }
        let limit = self.settings.store_max_restore_in_progress_gib;
        if used + size > limit {
            return Err(Error::ResourceLimitExceeded(format!(
                "Restoring '{}' ({size} GiB) would bring the account's restore tasks in progress to {} GiB, over the limit of {limit} GiB",
                input.object_key,
                used + size
            )));
        }
        if dry_run {
            return Err(Error::DryRunOperation);
        }

        let task = Task {
            task_id: format!("restore-{}", image.image_id),
            region: caller.region.clone(),
            owner_id: caller.account_id.clone(),
            state: TaskState::Queued,
            work: TaskWork::RestoreImage {
                image_id: image.image_id.clone(),
                bucket: bucket.name.clone(),
                object_key: input.object_key.clone(),
                snapshot_ids,
                snapshot_tags,
            },
            progress: 0,
            created_ms: now,
            updated_ms: now,
            attempts: 0,
            failure_reason: None,
            revision: 0,
        };
        match self.store.insert_image_with_task(&image, &task).await {
            Ok(()) => {}
            Err(StoreError::ImageNameTaken { existing_image_id }) => {
                return Err(Error::DuplicateImageName {
                    name: image.name,
                    existing: existing_image_id,
                });
            }
            Err(other) => return Err(other.into()),
        }
        self.waker.wake();
        Ok(image.image_id)
    }
}

/// The pending image a restore records, with its mappings pointing at new
/// snapshot IDs (one per stored snapshot, in archive order), and those IDs.
fn restored_image(
    stored: &StoredImage,
    caller: &Caller,
    name: String,
    now: i64,
    input: &CreateRestoreImageTaskInput,
) -> Result<(Image, Vec<String>)> {
    let not_an_archive = |detail: String| {
        Error::InvalidParameterValue(format!(
            "The object '{}' of bucket '{}' is not a valid stored AMI: {detail}",
            input.object_key, input.bucket
        ))
    };
    let mut renamed = BTreeMap::new();
    let mut snapshot_ids = Vec::with_capacity(stored.snapshots.len());
    for snapshot in &stored.snapshots {
        let new_id = ids::generate(ids::SNAPSHOT);
        if renamed
            .insert(
                snapshot.snapshot_id.clone(),
                (new_id.clone(), snapshot.volume_size_gib),
            )
            .is_some()
        {
            return Err(not_an_archive(format!(
                "snapshot {} appears twice",
                snapshot.snapshot_id
            )));
        }
        snapshot_ids.push(new_id);
    }
    let mut mappings = Vec::with_capacity(stored.block_device_mappings.len());
    for mapping in &stored.block_device_mappings {
        let mut mapping = mapping.clone();
        if let Some(ebs) = mapping.ebs.as_mut()
            && let Some(old_id) = ebs.snapshot_id.clone()
        {
            let Some((new_id, size)) = renamed.get(&old_id) else {
                return Err(not_an_archive(format!(
                    "the mapping of {} names snapshot {old_id}, which the archive does not hold",
                    mapping.device_name
                )));
            };
            ebs.snapshot_id = Some(new_id.clone());
            ebs.volume_size = Some(ebs.volume_size.unwrap_or(*size));
            ebs.kms_key_id = None;
        }
        mappings.push(mapping);
    }
    let image = Image {
        image_id: ids::generate(ids::IMAGE),
        region: caller.region.clone(),
        owner_id: caller.account_id.clone(),
        owner_alias: None,
        image_location: format!("{}/{}", caller.account_id, name),
        name,
        description: stored.description.clone(),
        image_type: "machine".into(),
        architecture: stored.architecture.clone(),
        virtualization_type: stored.virtualization_type.clone(),
        hypervisor: stored.hypervisor.clone(),
        platform: stored.platform.clone(),
        platform_details: stored.platform_details.clone(),
        usage_operation: stored.usage_operation.clone(),
        root_device_type: "ebs".into(),
        root_device_name: stored.root_device_name.clone(),
        block_device_mappings: mappings,
        boot_mode: stored.boot_mode.clone(),
        ena_support: stored.ena_support,
        sriov_net_support: stored.sriov_net_support.clone(),
        tpm_support: stored.tpm_support.clone(),
        imds_support: stored.imds_support.clone(),
        uefi_data: stored.uefi_data.clone(),
        kernel_id: stored.kernel_id.clone(),
        ramdisk_id: stored.ramdisk_id.clone(),
        state: ImageState::Pending,
        state_reason: None,
        creation_ms: now,
        launch_permissions: Vec::new(),
        tags: Vec::new(),
        source_image_id: Some(stored.image_id.clone()),
        source_image_region: Some(stored.region.clone()),
        source_instance_id: None,
        deprecation_ms: None,
        deregistration_protection: DeregistrationProtection::default(),
        last_launched_ms: None,
        launch_history_ms: Vec::new(),
        deregistered_ms: None,
        revision: 0,
    };
    Ok((image, snapshot_ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_prefixes() {
        assert_eq!(split_bucket("b"), ("b", ""));
        assert_eq!(split_bucket("b/p1/p2"), ("b", "p1/p2"));
        assert_eq!(split_bucket("b/p1/"), ("b", "p1"));
        assert_eq!(split_bucket("b/"), ("b", ""));
        assert_eq!(
            object_key_for("", "ami-0123456789abcdef0"),
            "ami-0123456789abcdef0.bin"
        );
        assert_eq!(
            object_key_for("p1/p2", "ami-0123456789abcdef0"),
            "p1/p2/ami-0123456789abcdef0.bin"
        );
    }

    fn tag(key: &str, value: &str) -> Tag {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn object_tag_rules() {
        assert!(validate_object_tags(&[tag("k", "v"), tag("", "")]).is_err());
        assert!(validate_object_tags(&[tag(&"k".repeat(128), &"v".repeat(256))]).is_ok());
        assert!(validate_object_tags(&[tag(&"k".repeat(129), "v")]).is_err());
        assert!(validate_object_tags(&[tag("k", &"v".repeat(257))]).is_err());
        assert!(validate_object_tags(&[tag("AWS:x", "v")]).is_err());
        assert!(validate_object_tags(&[tag("k", "1"), tag("k", "2")]).is_err());
        let eleven: Vec<Tag> = (0..11).map(|n| tag(&format!("k{n}"), "v")).collect();
        assert!(matches!(
            validate_object_tags(&eleven),
            Err(Error::TagLimitExceeded(_))
        ));
        assert!(validate_object_tags(&eleven[..10]).is_ok());
    }

    #[test]
    fn task_state_words() {
        assert_eq!(store_task_state(TaskState::Queued), "InProgress");
        assert_eq!(store_task_state(TaskState::Running), "InProgress");
        assert_eq!(store_task_state(TaskState::Completed), "Completed");
        assert_eq!(store_task_state(TaskState::Failed), "Failed");
    }
}
