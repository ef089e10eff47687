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
use crate::repo::StoreError;
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
        task.revision = self.store.update_task(task).await?;
        Ok(())
    }

    /// Persists a running task's record (e.g. the upload ID a store task
    /// started), as the runner does between steps.
    pub async fn save_task(&self, task: &mut Task) -> Result<()> {
        task.updated_ms = self.clock.now_ms();
        task.revision = self.store.update_task(task).await?;
        Ok(())
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
        task.revision = self.store.update_task(&task).await?;
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
        self.store.update_task(&task).await?;
        Ok(())
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
            task.revision = self.store.update_task(task).await?;
        }
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
