//! Images built from data: `CreateImage` (from an instance's volumes) and
//! `CopyImage` (from another image, in this or another region). Both record
//! the new image as `pending` together with a task in one transaction; the
//! task copies block maps into new snapshots and then makes the image
//! `available`. Every step is idempotent, so a task interrupted by a crash
//! is simply run again.

use crate::error::{Error, Result};
use crate::ids;
use crate::model::{
    BlockDeviceMapping, DeregistrationProtection, Image, ImageState, InstanceState,
    SnapshotCopyPlan, SnapshotState, StateReason, Tag, Task, TaskState, TaskWork,
};
use crate::repo::{Lease, LeaseHolder, StoreError, TASK_LEASE_PREFIX};
use crate::service::{Caller, Hangar};
use crate::snapshots::new_snapshot;
use crate::tags::{self, TagSpecification};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateImageInput {
    pub instance_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub no_reboot: bool,
    pub block_device_mappings: Vec<BlockDeviceMapping>,
    pub tag_specifications: Vec<TagSpecification>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyImageInput {
    pub source_region: String,
    pub source_image_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub copy_image_tags: bool,
    pub client_token: Option<String>,
    pub encrypted: Option<bool>,
    pub kms_key_id: Option<String>,
    pub tag_specifications: Vec<TagSpecification>,
}

fn pending_image(
    template: &Image,
    caller: &Caller,
    name: String,
    description: Option<String>,
    now: i64,
) -> Image {
    Image {
        image_id: ids::generate(ids::IMAGE),
        region: caller.region.clone(),
        owner_id: caller.account_id.clone(),
        owner_alias: None,
        image_location: format!("{}/{}", caller.account_id, name),
        name,
        description,
        image_type: "machine".into(),
        architecture: template.architecture.clone(),
        virtualization_type: template.virtualization_type.clone(),
        hypervisor: template.hypervisor.clone(),
        platform: template.platform.clone(),
        platform_details: template.platform_details.clone(),
        usage_operation: template.usage_operation.clone(),
        root_device_type: "ebs".into(),
        root_device_name: template.root_device_name.clone(),
        block_device_mappings: Vec::new(),
        boot_mode: template.boot_mode.clone(),
        ena_support: template.ena_support,
        sriov_net_support: template.sriov_net_support.clone(),
        tpm_support: template.tpm_support.clone(),
        imds_support: template.imds_support.clone(),
        uefi_data: template.uefi_data.clone(),
        kernel_id: template.kernel_id.clone(),
        ramdisk_id: template.ramdisk_id.clone(),
        state: ImageState::Pending,
        state_reason: None,
        creation_ms: now,
        launch_permissions: Vec::new(),
        tags: Vec::new(),
        source_image_id: None,
        source_image_region: None,
        source_instance_id: None,
        deprecation_ms: None,
        deregistration_protection: DeregistrationProtection::default(),
        last_launched_ms: None,
        launch_history_ms: Vec::new(),
        deregistered_ms: None,
        revision: 0,
    }
}

impl Hangar {
    pub async fn create_image(
        &self,
        caller: &Caller,
        input: CreateImageInput,
        dry_run: bool,
    ) -> Result<String> {
        let name = input
            .name
            .clone()
            .ok_or_else(|| Error::MissingParameter("Name".into()))?;
        crate::images::validate_image_name(&name)?;
        let instance = self.owned_instance(caller, &input.instance_id).await?;
        if !matches!(
            instance.state,
            InstanceState::Running
                | InstanceState::Stopped
                | InstanceState::Stopping
                | InstanceState::Pending
        ) {
            return Err(Error::IncorrectInstanceState {
                instance_id: instance.instance_id.clone(),
                action: "imaged".into(),
            });
        }
        let image_tags =
            tags::tags_for(&input.tag_specifications, "image", &["image", "snapshot"])?;
        let snapshot_tags = tags::tags_for(
            &input.tag_specifications,
            "snapshot",
            &["image", "snapshot"],
        )?;
        // The source image gives the new one its platform fields; when it was
        // deregistered meanwhile, the instance's copy of them is used.
        let source = self.store.get_image(&instance.image_id).await?;
        let template = match &source {
            Some(image) => image.clone(),
            None => {
                let mut template = crate::catalog::images_for(&caller.region).remove(0);
                template.architecture = instance.architecture.clone();
                template.virtualization_type = instance.virtualization_type.clone();
                template.root_device_name = instance.root_device_name.clone();
                template
            }
        };
        let now = self.clock.now_ms();
        let mut image = pending_image(&template, caller, name, input.description.clone(), now);
        image.root_device_name = instance.root_device_name.clone();
        image.source_image_id = Some(instance.image_id.clone());
        image.source_image_region = Some(caller.region.clone());
        image.source_instance_id = Some(instance.instance_id.clone());
        image.tags = image_tags;

        let mut plans = Vec::new();
        let mut mappings = Vec::new();
        for device in &instance.block_devices {
            let change = input
                .block_device_mappings
                .iter()
                .find(|mapping| mapping.device_name == device.device_name);
            if change.is_some_and(|mapping| mapping.no_device) {
                continue;
            }
            let volume = self
                .store
                .get_volume(&device.volume_id)
                .await?
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "volume {} of {} is missing",
                        device.volume_id, instance.instance_id
                    ))
                })?;
            let new_snapshot_id = ids::generate(ids::SNAPSHOT);
            let ebs_change = change.and_then(|mapping| mapping.ebs.as_ref());
            let size = match ebs_change.and_then(|ebs| ebs.volume_size) {
                Some(size) if size < volume.size_gib => {
                    return Err(Error::InvalidParameterValue(format!(
                        "Volume of size {size}GB is smaller than the volume of {} ({}GB)",
                        device.device_name, volume.size_gib
                    )));
                }
                Some(size) => size,
                None => volume.size_gib,
            };
            plans.push(SnapshotCopyPlan {
                source_map_id: volume.volume_id.clone(),
                source_snapshot_id: None,
                source_volume_id: Some(volume.volume_id.clone()),
                new_snapshot_id: new_snapshot_id.clone(),
                device_name: device.device_name.clone(),
                volume_size_gib: size,
                done: false,
            });
            mappings.push(BlockDeviceMapping {
                device_name: device.device_name.clone(),
                virtual_name: None,
                ebs: Some(crate::model::EbsBlockDevice {
                    snapshot_id: Some(new_snapshot_id),
                    volume_size: Some(size),
                    volume_type: Some(
                        ebs_change
                            .and_then(|ebs| ebs.volume_type.clone())
                            .unwrap_or(volume.volume_type.clone()),
                    ),
                    delete_on_termination: Some(
                        ebs_change
                            .and_then(|ebs| ebs.delete_on_termination)
                            .unwrap_or(device.delete_on_termination),
                    ),
                    iops: volume.iops,
                    throughput: volume.throughput,
                    encrypted: Some(volume.encrypted),
                    kms_key_id: None,
                }),
                no_device: false,
            });
        }
        image.block_device_mappings = mappings;
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        self.start_build(caller, image, plans, snapshot_tags, input.description)
            .await
    }

    pub async fn copy_image(
        &self,
        caller: &Caller,
        input: CopyImageInput,
        dry_run: bool,
    ) -> Result<String> {
        let name = input
            .name
            .clone()
            .ok_or_else(|| Error::MissingParameter("Name".into()))?;
        crate::images::validate_image_name(&name)?;
        if !self.settings.regions.contains(&input.source_region) {
            return Err(Error::InvalidRegion(input.source_region.clone()));
        }
        if input.encrypted == Some(true) || input.kms_key_id.is_some() {
            return Err(Error::InvalidParameterValue(
                "Hangar does not encrypt snapshots: Encrypted and KmsKeyId are not supported"
                    .into(),
            ));
        }
        let source_caller = Caller {
            account_id: caller.account_id.clone(),
            region: input.source_region.clone(),
        };
        let source = self
            .usable_image(&source_caller, &input.source_image_id)
            .await?;
        if source.state != ImageState::Available {
            return Err(Error::IncorrectImageState {
                image_id: source.image_id.clone(),
                state: source.state.as_str().into(),
            });
        }
        let mut image_tags =
            tags::tags_for(&input.tag_specifications, "image", &["image", "snapshot"])?;
        let snapshot_tags = tags::tags_for(
            &input.tag_specifications,
            "snapshot",
            &["image", "snapshot"],
        )?;
        if input.copy_image_tags && source.owner_id == caller.account_id {
            let mut merged = source.tags.clone();
            tags::merge(&mut merged, &image_tags)?;
            image_tags = merged;
        }
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let now = self.clock.now_ms();
        let mut image = pending_image(&source, caller, name, input.description.clone(), now);
        image.source_image_id = Some(source.image_id.clone());
        image.source_image_region = Some(source.region.clone());
        image.tags = image_tags;
        if let Some(token) = &input.client_token {
            let scope = format!("CopyImage/{}/{}", caller.account_id, caller.region);
            let fingerprint = format!(
                "{}|{}|{}|{:?}|{}",
                input.source_region,
                input.source_image_id,
                image.name,
                input.description,
                input.copy_image_tags
            );
            if let Some((first_fingerprint, first_image)) = self
                .store
                .claim_client_token(&scope, token, &fingerprint, &image.image_id)
                .await?
            {
                if first_fingerprint != fingerprint {
                    return Err(Error::IdempotentParameterMismatch(token.clone()));
                }
                return Ok(first_image);
            }
        }
        let mut plans = Vec::new();
        let mut mappings = Vec::new();
        for mapping in &source.block_device_mappings {
            let mut mapping = mapping.clone();
            if let Some(ebs) = mapping.ebs.as_mut()
                && let Some(snapshot_id) = ebs.snapshot_id.clone()
            {
                let new_snapshot_id = ids::generate(ids::SNAPSHOT);
                let size = match ebs.volume_size {
                    Some(size) => size,
                    None => self
                        .store
                        .get_snapshot(&snapshot_id)
                        .await?
                        .map_or(8, |snapshot| snapshot.volume_size_gib),
                };
                plans.push(SnapshotCopyPlan {
                    source_map_id: snapshot_id.clone(),
                    source_snapshot_id: Some(snapshot_id),
                    source_volume_id: None,
                    new_snapshot_id: new_snapshot_id.clone(),
                    device_name: mapping.device_name.clone(),
                    volume_size_gib: size,
                    done: false,
                });
                ebs.snapshot_id = Some(new_snapshot_id);
                ebs.volume_size = Some(size);
            }
            mappings.push(mapping);
        }
        image.block_device_mappings = mappings;
        let description = input.description.or_else(|| {
            Some(format!(
                "Copied from {} in {}",
                source.image_id, source.region
            ))
        });
        self.start_build(caller, image, plans, snapshot_tags, description)
            .await
    }

    async fn start_build(
        &self,
        caller: &Caller,
        image: Image,
        plans: Vec<SnapshotCopyPlan>,
        snapshot_tags: Vec<Tag>,
        description: Option<String>,
    ) -> Result<String> {
        let now = self.clock.now_ms();
        let task = Task {
            task_id: format!("build-{}", image.image_id),
            region: caller.region.clone(),
            owner_id: caller.account_id.clone(),
            state: TaskState::Queued,
            work: TaskWork::BuildImage {
                image_id: image.image_id.clone(),
                snapshots: plans,
                snapshot_tags,
                description,
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

    /// Tasks to run: those queued, and those a crash left running.
    pub async fn unfinished_tasks(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .list_unfinished_tasks()
            .await?
            .into_iter()
            .map(|task| task.task_id)
            .collect())
    }

    /// Runs a task to its end (or to a failure it records). Safe to call
    /// again on a task that was interrupted: finished steps are skipped.
    /// Records a running task's progress (0 to 99; 100 is set on
    /// completion), never lowering what was recorded, so a resumed task's
    /// progress stays monotonic.
    pub async fn report_task_progress(&self, task: &mut Task, progress: i64) -> Result<()> {
        let progress = progress.clamp(0, 99);
        if progress <= task.progress {
            return Ok(());
        }
        task.progress = progress;
        task.updated_ms = self.clock.now_ms();
        self.write_task(task).await
    }

    /// Persists a running task's record (e.g. the upload ID a store task
    /// started), as the runner does between steps.
    pub async fn save_task(&self, task: &mut Task) -> Result<()> {
        task.updated_ms = self.clock.now_ms();
        self.write_task(task).await
    }

    pub async fn run_task(&self, task_id: &str) -> Result<()> {
        let Some(mut task) = self.store.get_task(task_id).await? else {
            return Ok(());
        };
        if task.state.is_finished() {
            return Ok(());
        }
        task.state = TaskState::Running;
        task.attempts += 1;
        task.updated_ms = self.clock.now_ms();
        self.write_task(&mut task).await?;
        let outcome = match task.work.clone() {
            TaskWork::BuildImage {
                image_id,
                snapshots,
                snapshot_tags,
                description,
            } => {
                self.build_image(&mut task, &image_id, snapshots, &snapshot_tags, description)
                    .await
            }
            TaskWork::StoreImage { .. } => match self.transfer.get().cloned() {
                Some(transfer) => transfer.store(self, &mut task).await,
                None => Err(Error::Internal("no image transfer is configured".into())),
            },
            TaskWork::RestoreImage { .. } => match self.transfer.get().cloned() {
                Some(transfer) => transfer.restore(self, &mut task).await,
                None => Err(Error::Internal("no image transfer is configured".into())),
            },
        };
        task.updated_ms = self.clock.now_ms();
        match outcome {
            Ok(()) => {
                task.state = TaskState::Completed;
                task.progress = 100;
            }
            Err(reason) => {
                task.state = TaskState::Failed;
                task.failure_reason = Some(reason.to_string());
            }
        }
        // Fenced when leased: a node that lost the lease must not mark
        // the task finished.
        self.write_task(&mut task).await
    }

    async fn build_image(
        &self,
        task: &mut Task,
        image_id: &str,
        mut plans: Vec<SnapshotCopyPlan>,
        snapshot_tags: &[Tag],
        description: Option<String>,
    ) -> std::result::Result<(), Error> {
        let owner = Caller {
            account_id: task.owner_id.clone(),
            region: task.region.clone(),
        };
        let total = plans.len().max(1) as i64;
        for index in 0..plans.len() {
            if plans[index].done {
                continue;
            }
            let plan = plans[index].clone();
            let step = self
                .copy_into_snapshot(&owner, &plan, image_id, snapshot_tags, &description)
                .await;
            if let Err(error) = step {
                let reason = match &error {
                    Error::ResourceNotFound { .. } => format!(
                        "The source of {} ({}) no longer exists",
                        plan.device_name, plan.source_map_id
                    ),
                    other => other.to_string(),
                };
                self.fail_build(image_id, &plans, &reason).await?;
                return Err(Error::Internal(reason));
            }
            plans[index].done = true;
            task.work = TaskWork::BuildImage {
                image_id: image_id.to_string(),
                snapshots: plans.clone(),
                snapshot_tags: snapshot_tags.to_vec(),
                description: description.clone(),
            };
            task.progress = task
                .progress
                .max(((index as i64 + 1) * 100 / total).min(99));
            task.updated_ms = self.clock.now_ms();
            self.write_task(task).await?;
        }
        self.confirm_task_lease(task).await?;
        self.set_image_state(image_id, ImageState::Available, None)
            .await
    }

    async fn copy_into_snapshot(
        &self,
        owner: &Caller,
        plan: &SnapshotCopyPlan,
        image_id: &str,
        snapshot_tags: &[Tag],
        description: &Option<String>,
    ) -> Result<()> {
        let source_exists = match (&plan.source_snapshot_id, &plan.source_volume_id) {
            (Some(snapshot_id), _) => self
                .store
                .get_snapshot(snapshot_id)
                .await?
                .is_some_and(|snapshot| snapshot.state == SnapshotState::Completed),
            (None, Some(volume_id)) => self.store.get_volume(volume_id).await?.is_some(),
            (None, None) => false,
        };
        if !source_exists {
            return Err(Error::ResourceNotFound {
                kind: crate::error::ResourceKind::Snapshot,
                ids: vec![plan.source_map_id.clone()],
            });
        }
        let now = self.clock.now_ms();
        if self
            .store
            .get_snapshot(&plan.new_snapshot_id)
            .await?
            .is_none()
        {
            let mut snapshot = new_snapshot(
                plan.new_snapshot_id.clone(),
                owner,
                plan.volume_size_gib,
                now,
            );
            snapshot.volume_id = plan
                .source_volume_id
                .clone()
                .unwrap_or_else(|| crate::snapshots::NO_VOLUME.into());
            snapshot.description = Some(match description {
                Some(text) => format!("Created for {image_id}: {text}"),
                None => format!("Created for {image_id}"),
            });
            snapshot.tags = snapshot_tags.to_vec();
            snapshot.source_snapshot_id = plan.source_snapshot_id.clone();
            match self.store.insert_snapshot(&snapshot).await {
                Ok(()) | Err(StoreError::DuplicateId(_)) => {}
                Err(other) => return Err(other.into()),
            }
        }
        self.store
            .copy_blocks(&plan.source_map_id, &plan.new_snapshot_id)
            .await?;
        self.finish_snapshot(&plan.new_snapshot_id).await
    }

    async fn fail_build(
        &self,
        image_id: &str,
        plans: &[SnapshotCopyPlan],
        reason: &str,
    ) -> Result<()> {
        for plan in plans {
            if let Some(mut snapshot) = self.store.get_snapshot(&plan.new_snapshot_id).await?
                && snapshot.state != SnapshotState::Completed
            {
                snapshot.state = SnapshotState::Error;
                snapshot.state_message = Some(reason.to_string());
                let _ = self.store.update_snapshot(&snapshot).await;
            }
        }
        self.set_image_state(
            image_id,
            ImageState::Failed,
            Some(StateReason {
                code: "Client.InvalidSnapshot.NotFound".into(),
                message: reason.to_string(),
            }),
        )
        .await
    }

    pub(crate) async fn set_image_state(
        &self,
        image_id: &str,
        state: ImageState,
        reason: Option<StateReason>,
    ) -> Result<()> {
        for _ in 0..8 {
            let Some(mut image) = self.store.get_image(image_id).await? else {
                return Ok(());
            };
            if image.state != ImageState::Pending {
                return Ok(());
            }
            image.state = state;
            image.state_reason = reason.clone();
            match self.store.update_image(&image).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Internal(format!(
            "too much contention updating {image_id}"
        )))
    }
}

// ---------------------------------------------------------------------------
// Leases: one node at a time runs a task.
//
// A runner claims a task (`Hangar::claim_task`), keeps its lease alive with
// heartbeats (`Hangar::renew_lease`, every third of the lease) and runs it
// with `Hangar::run_claimed_task`. While it runs, every write of the task
// record (the runner's own, and `save_task`/`report_task_progress` from the
// store and restore work) is fenced: it commits only while the lease's
// token is still the current one. A write that finds the lease lost does
// not return an error into the work (whose failure path would abort the
// store's multipart upload or fail the restore, undoing what the node that
// took over is doing): it marks the lease lost and waits, and
// `run_claimed_task`, racing the work against the loss, drops the work
// there. A heartbeat that finds the lease lost (or cannot confirm it in
// time) stops the work the same way.

/// What this node holds: its running tasks' leases (by task ID), read by
/// the fenced task writes, and the block collector's grace (for the block
/// writers' time fence, see `crate::snapshots`).
#[derive(Debug)]
pub(crate) struct NodeLeases {
    tasks: std::sync::Mutex<std::collections::HashMap<String, HeldLease>>,
    pub(crate) block_grace_ms: std::sync::atomic::AtomicI64,
}

impl Default for NodeLeases {
    fn default() -> Self {
        Self {
            tasks: std::sync::Mutex::default(),
            block_grace_ms: std::sync::atomic::AtomicI64::new(DEFAULT_BLOCK_GRACE_MS),
        }
    }
}

/// The block collector's default grace (`[blocks] gc_grace_secs`).
const DEFAULT_BLOCK_GRACE_MS: i64 = 3_600_000;

impl NodeLeases {
    fn of_task(&self, task_id: &str) -> Option<HeldLease> {
        self.tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(task_id)
            .cloned()
    }
}

/// A lease this node holds (a task's, or a named one such as the block
/// collector's), shared by the work it covers and the heartbeat that keeps
/// it. Once lost it stays lost.
#[derive(Debug, Clone)]
pub struct HeldLease {
    inner: std::sync::Arc<HeldLeaseState>,
}

#[derive(Debug)]
struct HeldLeaseState {
    lease: std::sync::Mutex<Lease>,
    lease_ms: i64,
    lost: tokio::sync::watch::Sender<bool>,
}

impl HeldLease {
    fn new(lease: Lease, lease_ms: i64) -> Self {
        Self {
            inner: std::sync::Arc::new(HeldLeaseState {
                lease: std::sync::Mutex::new(lease),
                lease_ms,
                lost: tokio::sync::watch::Sender::new(false),
            }),
        }
    }

    /// The lease as last confirmed (name, fencing token, expiry).
    pub fn lease(&self) -> Lease {
        self.inner
            .lease
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The task this lease is for, when it is a task's.
    pub fn task_id(&self) -> Option<String> {
        self.lease()
            .name
            .strip_prefix(TASK_LEASE_PREFIX)
            .map(str::to_owned)
    }

    /// How long a claim or renewal keeps it.
    pub fn lease_ms(&self) -> i64 {
        self.inner.lease_ms
    }

    pub fn is_lost(&self) -> bool {
        *self.inner.lost.borrow()
    }

    /// Stops the work this lease covers (see [`Hangar::run_claimed_task`]).
    pub fn mark_lost(&self) {
        self.inner.lost.send_replace(true);
    }

    /// Resolves once the lease is lost.
    pub async fn lost(&self) {
        let mut lost = self.inner.lost.subscribe();
        // Never `Err`: `self` keeps the sender alive.
        let _ = lost.wait_for(|lost| *lost).await;
    }

    fn same(&self, other: &HeldLease) -> bool {
        std::sync::Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// How a claimed task's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOutcome {
    /// Completed or failed, and recorded so.
    Finished,
    /// The lease was lost (taken over after it expired): this node stopped
    /// the task and wrote nothing more; the node holding it now finishes it.
    LeaseLost,
}

/// Removes a task's lease from the node's registry when its run ends,
/// however it ends (including the run's future being dropped).
struct Registered<'a> {
    leases: &'a NodeLeases,
    task_id: String,
    lease: HeldLease,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut tasks = self
            .leases
            .tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if tasks
            .get(&self.task_id)
            .is_some_and(|held| held.same(&self.lease))
        {
            tasks.remove(&self.task_id);
        }
    }
}

/// Polls `work` until it is done, unless `stop` resolves first (then `None`
/// and `work` is dropped, which cancels it). No runtime needed.
async fn unless<T>(
    work: impl std::future::Future<Output = T>,
    stop: impl std::future::Future<Output = ()>,
) -> Option<T> {
    use std::task::Poll;
    let mut work = std::pin::pin!(work);
    let mut stop = std::pin::pin!(stop);
    std::future::poll_fn(|cx| {
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        work.as_mut().poll(cx).map(Some)
    })
    .await
}

impl Hangar {
    /// Claims the oldest unfinished task whose lease is free for `holder`
    /// (see `MetaStore::claim_task`), for `lease_ms` from now (wall clock:
    /// leases are compared across nodes, never with the dev clock).
    pub async fn claim_task(
        &self,
        holder: &LeaseHolder,
        lease_ms: i64,
    ) -> Result<Option<HeldLease>> {
        let now = self.clock.wall_ms();
        Ok(self
            .store
            .claim_task(holder, now, lease_ms)
            .await?
            .map(|(_, lease)| HeldLease::new(lease, lease_ms)))
    }

    /// Takes the named lease (e.g. the block collector's), `None` while
    /// another node holds it.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &LeaseHolder,
        lease_ms: i64,
    ) -> Result<Option<HeldLease>> {
        let now = self.clock.wall_ms();
        Ok(self
            .store
            .acquire_lease(name, holder, now, lease_ms)
            .await?
            .map(|lease| HeldLease::new(lease, lease_ms)))
    }

    /// A heartbeat: extends the lease by its length from now. `Ok(false)`
    /// when it was lost (and it is then marked lost); `Err` when the store
    /// could not be asked (the caller decides how long to keep trying).
    pub async fn renew_lease(&self, held: &HeldLease) -> Result<bool> {
        if held.is_lost() {
            return Ok(false);
        }
        let lease = held.lease();
        let now = self.clock.wall_ms();
        match self.store.renew_lease(&lease, now, held.lease_ms()).await {
            Ok(expires_ms) => {
                let mut current = held
                    .inner
                    .lease
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                current.expires_ms = current.expires_ms.max(expires_ms);
                Ok(true)
            }
            Err(StoreError::LeaseLost(_)) => {
                held.mark_lost();
                Ok(false)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Frees the lease (if still held), so another node may take it at
    /// once.
    pub async fn release_lease(&self, held: &HeldLease) -> Result<()> {
        Ok(self.store.release_lease(&held.lease()).await?)
    }

    /// Runs a claimed task (as [`Hangar::run_task`]) under its lease: its
    /// record writes are fenced, and the run stops (its future dropped) as
    /// soon as the lease is lost, whether a write or the heartbeat found
    /// out.
    pub async fn run_claimed_task(&self, held: &HeldLease) -> Result<TaskOutcome> {
        let Some(task_id) = held.task_id() else {
            return Err(Error::Internal(format!(
                "lease {} is not a task's",
                held.lease().name
            )));
        };
        self.leases
            .tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(task_id.clone(), held.clone());
        let _registered = Registered {
            leases: &self.leases,
            task_id: task_id.clone(),
            lease: held.clone(),
        };
        match unless(self.run_task(&task_id), held.lost()).await {
            Some(Ok(())) => Ok(TaskOutcome::Finished),
            Some(Err(error)) => Err(error),
            None => Ok(TaskOutcome::LeaseLost),
        }
    }

    /// Confirms, right before an irreversible step (completing an upload),
    /// that this node still holds the task's lease, by renewing it. When
    /// the lease is lost this does not return: the run is stopped (see
    /// [`Hangar::run_claimed_task`]). Tasks run without a lease pass.
    pub async fn confirm_task_lease(&self, task: &Task) -> Result<()> {
        let Some(held) = self.leases.of_task(&task.task_id) else {
            return Ok(());
        };
        if self.renew_lease(&held).await? {
            Ok(())
        } else {
            std::future::pending().await
        }
    }

    /// Writes a running task's record: fenced by its lease when this node
    /// runs it under one (see the section comment), plain otherwise.
    async fn write_task(&self, task: &mut Task) -> Result<()> {
        let Some(held) = self.leases.of_task(&task.task_id) else {
            task.revision = self.store.update_task(task).await?;
            return Ok(());
        };
        match self.store.update_task_fenced(task, &held.lease()).await {
            Ok(revision) => {
                task.revision = revision;
                Ok(())
            }
            Err(StoreError::LeaseLost(_)) => {
                held.mark_lost();
                std::future::pending().await
            }
            Err(other) => Err(other.into()),
        }
    }

    /// The grace the block collectors use (`[blocks] gc_grace_secs`; the
    /// same on every node), for the block writers' time fence.
    pub fn set_block_grace_ms(&self, grace_ms: i64) {
        self.leases
            .block_grace_ms
            .store(grace_ms.max(0), std::sync::atomic::Ordering::Relaxed);
    }
}
