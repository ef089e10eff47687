//! Instances and their volumes. Launching creates, per block device of the
//! image, a volume whose block map is a copy of the snapshot's: a
//! copy-on-write view that shares every block with the snapshot.

use crate::error::{Error, ResourceKind, Result};
use crate::filter::{self, Filter};
use crate::ids;
use crate::model::{
    BlockDeviceMapping, Image, ImageState, Instance, InstanceBlockDevice, InstanceState,
    StateReason, Volume, VolumeAttachment, VolumeState,
};
use crate::page;
use crate::repo::{RecordQuery, StoreError};
use crate::service::{Caller, Hangar};
use crate::snapshots::MAX_VOLUME_GIB;
use crate::tags::{self, TagSpecification};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunInstancesInput {
    pub image_id: Option<String>,
    pub min_count: Option<i64>,
    pub max_count: Option<i64>,
    pub instance_type: Option<String>,
    pub availability_zone: Option<String>,
    pub block_device_mappings: Vec<BlockDeviceMapping>,
    pub tag_specifications: Vec<TagSpecification>,
    pub client_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub reservation_id: String,
    pub owner_id: String,
    pub instances: Vec<Instance>,
    /// The moment the states were read.
    pub as_of_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DescribeInstancesOutput {
    pub reservations: Vec<Reservation>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub instance_id: String,
    pub previous: InstanceState,
    pub current: InstanceState,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DescribeVolumesOutput {
    pub volumes: Vec<Volume>,
    pub next_token: Option<String>,
}

/// Instance types Hangar accepts: `family.size` as AWS writes them.
fn valid_instance_type(instance_type: &str) -> bool {
    let Some((family, size)) = instance_type.split_once('.') else {
        return false;
    };
    !family.is_empty()
        && !size.is_empty()
        && family
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && size
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
}

fn check_id(kind: ResourceKind, prefix: &str, id: &str) -> Result<()> {
    if ids::is_well_formed(prefix, id) {
        Ok(())
    } else {
        Err(Error::MalformedId {
            kind,
            id: id.to_string(),
        })
    }
}

impl Hangar {
    pub async fn owned_volume(&self, caller: &Caller, volume_id: &str) -> Result<Volume> {
        check_id(ResourceKind::Volume, ids::VOLUME, volume_id)?;
        self.store
            .get_volume(volume_id)
            .await?
            .filter(|volume| volume.region == caller.region && volume.owner_id == caller.account_id)
            .ok_or_else(|| Error::ResourceNotFound {
                kind: ResourceKind::Volume,
                ids: vec![volume_id.to_string()],
            })
    }

    pub async fn owned_instance(&self, caller: &Caller, instance_id: &str) -> Result<Instance> {
        check_id(ResourceKind::Instance, ids::INSTANCE, instance_id)?;
        let mut instance = self
            .store
            .get_instance(instance_id)
            .await?
            .filter(|instance| {
                instance.region == caller.region && instance.owner_id == caller.account_id
            })
            .ok_or_else(|| Error::ResourceNotFound {
                kind: ResourceKind::Instance,
                ids: vec![instance_id.to_string()],
            })?;
        instance.settle(self.clock.now_ms());
        Ok(instance)
    }

    /// The image's block devices with the launch's overrides applied:
    /// `NoDevice` removes a mapping, an override of the same device replaces
    /// size, type and `DeleteOnTermination`, a new device adds a blank or
    /// snapshot-backed volume.
    fn effective_mappings(
        image: &Image,
        overrides: &[BlockDeviceMapping],
    ) -> Result<Vec<BlockDeviceMapping>> {
        let mut mappings: Vec<BlockDeviceMapping> = image
            .block_device_mappings
            .iter()
            .filter(|mapping| !mapping.no_device && mapping.ebs.is_some())
            .cloned()
            .collect();
        for change in overrides {
            if change.no_device {
                mappings.retain(|mapping| mapping.device_name != change.device_name);
                continue;
            }
            let Some(ebs) = &change.ebs else { continue };
            match mappings
                .iter_mut()
                .find(|mapping| mapping.device_name == change.device_name)
            {
                Some(existing) => {
                    let current = existing.ebs.get_or_insert_with(Default::default);
                    if let Some(size) = ebs.volume_size {
                        if current
                            .volume_size
                            .is_some_and(|snapshot_size| size < snapshot_size)
                        {
                            return Err(Error::InvalidParameterValue(format!(
                                "Volume of size {size}GB is smaller than snapshot '{}', expect size >= {}GB",
                                current.snapshot_id.clone().unwrap_or_default(),
                                current.volume_size.unwrap_or_default()
                            )));
                        }
                        current.volume_size = Some(size);
                    }
                    if ebs.volume_type.is_some() {
                        current.volume_type = ebs.volume_type.clone();
                    }
                    if ebs.delete_on_termination.is_some() {
                        current.delete_on_termination = ebs.delete_on_termination;
                    }
                    if ebs.iops.is_some() {
                        current.iops = ebs.iops;
                    }
                    if ebs.throughput.is_some() {
                        current.throughput = ebs.throughput;
                    }
                }
                None => {
                    if ebs.snapshot_id.is_none() && ebs.volume_size.is_none() {
                        return Err(Error::MissingParameter(format!(
                            "BlockDeviceMapping {} needs Ebs.VolumeSize or Ebs.SnapshotId",
                            change.device_name
                        )));
                    }
                    mappings.push(change.clone());
                }
            }
        }
        for mapping in &mappings {
            if let Some(size) = mapping.ebs.as_ref().and_then(|ebs| ebs.volume_size)
                && !(1..=MAX_VOLUME_GIB).contains(&size)
            {
                return Err(Error::invalid_value(
                    "VolumeSize",
                    &size.to_string(),
                    "Volume size must be between 1 and 65536 GiB.",
                ));
            }
        }
        Ok(mappings)
    }

    pub async fn run_instances(
        &self,
        caller: &Caller,
        input: RunInstancesInput,
        dry_run: bool,
    ) -> Result<Reservation> {
        let image_id = input
            .image_id
            .clone()
            .ok_or_else(|| Error::MissingParameter("ImageId".into()))?;
        let min = input
            .min_count
            .ok_or_else(|| Error::MissingParameter("MinCount".into()))?;
        let max = input
            .max_count
            .ok_or_else(|| Error::MissingParameter("MaxCount".into()))?;
        if min < 1 || max < min {
            return Err(Error::InvalidParameterValue(format!(
                "MinCount ({min}) must be at least 1 and not more than MaxCount ({max})"
            )));
        }
        let limit = self.settings.max_instances_per_launch;
        if min > limit {
            return Err(Error::InstanceLimitExceeded(format!(
                "You have requested more instances ({min}) than your current instance limit of {limit} allows"
            )));
        }
        let count = max.min(limit);
        let instance_type = input
            .instance_type
            .clone()
            .unwrap_or_else(|| "m1.small".into());
        if !valid_instance_type(&instance_type) {
            return Err(Error::InvalidParameterValue(format!(
                "Invalid value '{instance_type}' for InstanceType."
            )));
        }
        let zone_letters = ['a', 'b', 'c'];
        let availability_zone = match &input.availability_zone {
            Some(zone) => {
                let valid = zone
                    .strip_prefix(caller.region.as_str())
                    .is_some_and(|letter| {
                        letter.len() == 1 && zone_letters.iter().any(|l| letter.starts_with(*l))
                    });
                if !valid {
                    return Err(Error::InvalidParameterValue(format!(
                        "Invalid availability zone: [{zone}]"
                    )));
                }
                zone.clone()
            }
            None => format!("{}a", caller.region),
        };
        let image = self.usable_image(caller, &image_id).await?;
        let launchable = image.owner_id == caller.account_id
            || image.is_public()
            || image.is_shared_with(&caller.account_id);
        if !launchable {
            return Err(Error::NotAuthorizedForImage(image_id));
        }
        if image.state != ImageState::Available {
            return Err(Error::IncorrectImageState {
                image_id,
                state: image.state.as_str().into(),
            });
        }
        let mut mappings = Self::effective_mappings(&image, &input.block_device_mappings)?;
        // Every snapshot the launch needs must exist and be readable; a
        // mapping without a size takes its snapshot's.
        for mapping in &mut mappings {
            let Some(ebs) = mapping.ebs.as_mut() else {
                continue;
            };
            let Some(snapshot_id) = ebs.snapshot_id.clone() else {
                continue;
            };
            let snapshot = self
                .store
                .get_snapshot(&snapshot_id)
                .await?
                .filter(|snapshot| snapshot.state == crate::model::SnapshotState::Completed)
                .ok_or_else(|| Error::ResourceNotFound {
                    kind: ResourceKind::Snapshot,
                    ids: vec![snapshot_id.clone()],
                })?;
            if ebs.volume_size.is_none() {
                ebs.volume_size = Some(snapshot.volume_size_gib);
            }
        }
        let instance_tags = tags::tags_for(
            &input.tag_specifications,
            "instance",
            &["instance", "volume"],
        )?;
        let volume_tags =
            tags::tags_for(&input.tag_specifications, "volume", &["instance", "volume"])?;
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        if let Some(token) = &input.client_token {
            let scope = format!("RunInstances/{}/{}", caller.account_id, caller.region);
            let fingerprint = format!("{image_id}|{min}|{max}|{instance_type}");
            let reservation_id = format!("r-{}", &ids::generate("x")[2..]);
            if let Some((first_fingerprint, first_reservation)) = self
                .store
                .claim_client_token(&scope, token, &fingerprint, &reservation_id)
                .await?
            {
                if first_fingerprint != fingerprint {
                    return Err(Error::IdempotentParameterMismatch(token.clone()));
                }
                return self.reservation(caller, &first_reservation).await;
            }
            return self
                .launch(
                    caller,
                    &image,
                    &mappings,
                    count,
                    instance_type,
                    availability_zone,
                    instance_tags,
                    volume_tags,
                    reservation_id,
                    input.client_token,
                )
                .await;
        }
        let reservation_id = format!("r-{}", &ids::generate("x")[2..]);
        self.launch(
            caller,
            &image,
            &mappings,
            count,
            instance_type,
            availability_zone,
            instance_tags,
            volume_tags,
            reservation_id,
            None,
        )
        .await
    }

    async fn reservation(&self, caller: &Caller, reservation_id: &str) -> Result<Reservation> {
        let now = self.clock.now_ms();
        let mut instances: Vec<Instance> = self
            .store
            .list_instances(&RecordQuery {
                region: Some(caller.region.clone()),
                owner_ids: Some(vec![caller.account_id.clone()]),
            })
            .await?
            .into_iter()
            .filter(|instance| instance.reservation_id == reservation_id)
            .collect();
        instances.sort_by_key(|instance| instance.ami_launch_index);
        Ok(Reservation {
            reservation_id: reservation_id.to_string(),
            owner_id: caller.account_id.clone(),
            instances,
            as_of_ms: now,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn launch(
        &self,
        caller: &Caller,
        image: &Image,
        mappings: &[BlockDeviceMapping],
        count: i64,
        instance_type: String,
        availability_zone: String,
        instance_tags: Vec<crate::model::Tag>,
        volume_tags: Vec<crate::model::Tag>,
        reservation_id: String,
        client_token: Option<String>,
    ) -> Result<Reservation> {
        let now = self.clock.now_ms();
        let mut instances = Vec::new();
        for launch_index in 0..count {
            let instance_id = ids::generate(ids::INSTANCE);
            let mut block_devices = Vec::new();
            for mapping in mappings {
                let Some(ebs) = &mapping.ebs else { continue };
                let volume_id = ids::generate(ids::VOLUME);
                let delete_on_termination = ebs.delete_on_termination.unwrap_or(true);
                let volume = Volume {
                    volume_id: volume_id.clone(),
                    region: caller.region.clone(),
                    owner_id: caller.account_id.clone(),
                    availability_zone: availability_zone.clone(),
                    size_gib: ebs.volume_size.unwrap_or(8),
                    snapshot_id: ebs.snapshot_id.clone(),
                    volume_type: ebs.volume_type.clone().unwrap_or_else(|| "gp2".into()),
                    iops: ebs.iops,
                    throughput: ebs.throughput,
                    encrypted: ebs.encrypted.unwrap_or(false),
                    kms_key_id: None,
                    state: VolumeState::InUse,
                    create_ms: now,
                    attachment: Some(VolumeAttachment {
                        instance_id: instance_id.clone(),
                        device: mapping.device_name.clone(),
                        attach_ms: now,
                        delete_on_termination,
                    }),
                    tags: volume_tags.clone(),
                    revision: 0,
                };
                // The record first, then its map (the collector removes maps
                // without a record, so a map must never exist alone).
                self.store.insert_volume(&volume).await?;
                if let Some(snapshot_id) = &ebs.snapshot_id {
                    self.store.copy_blocks(snapshot_id, &volume_id).await?;
                }
                block_devices.push(InstanceBlockDevice {
                    device_name: mapping.device_name.clone(),
                    volume_id,
                    delete_on_termination,
                    attach_ms: now,
                });
            }
            let instance = Instance {
                instance_id: instance_id.clone(),
                region: caller.region.clone(),
                owner_id: caller.account_id.clone(),
                reservation_id: reservation_id.clone(),
                image_id: image.image_id.clone(),
                instance_type: instance_type.clone(),
                availability_zone: availability_zone.clone(),
                architecture: image.architecture.clone(),
                virtualization_type: image.virtualization_type.clone(),
                hypervisor: image.hypervisor.clone(),
                platform_details: image.platform_details.clone(),
                root_device_name: image.root_device_name.clone(),
                root_device_type: image.root_device_type.clone(),
                block_devices,
                state: InstanceState::Pending,
                settles_to: Some(InstanceState::Running),
                settles_at_ms: Some(now + self.settings.instance_transition_ms),
                state_reason: None,
                state_transition_reason: String::new(),
                launch_ms: now,
                ami_launch_index: launch_index,
                private_ip_address: format!(
                    "10.0.{}.{}",
                    (launch_index / 250) % 250,
                    10 + launch_index % 240
                ),
                client_token: client_token.clone(),
                tags: instance_tags.clone(),
                revision: 0,
            };
            self.store.insert_instance(&instance).await?;
            instances.push(instance);
        }
        self.record_launch(&image.image_id, now).await?;
        Ok(Reservation {
            reservation_id,
            owner_id: caller.account_id.clone(),
            instances,
            as_of_ms: now,
        })
    }

    /// Records a launch on the image (for `lastLaunchedTime`, reported after
    /// `[usage] report_delay`), whoever launched it.
    async fn record_launch(&self, image_id: &str, now: i64) -> Result<()> {
        for _ in 0..8 {
            let Some(mut image) = self.store.get_image(image_id).await? else {
                return Ok(());
            };
            if !crate::usage::record_launch(&mut image, now, self.settings.report_delay_ms) {
                return Ok(());
            }
            match self.store.update_image(&image).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Ok(())
    }

    pub async fn describe_instances(
        &self,
        caller: &Caller,
        instance_ids: &[String],
        filters: &[Filter],
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<DescribeInstancesOutput> {
        if !instance_ids.is_empty() && max_results.is_some() {
            return Err(Error::InvalidParameterCombination(
                "The parameter instancesSet cannot be used with the parameter maxResults".into(),
            ));
        }
        let max_results = page::check_max_results(max_results, 5, 1000)?;
        filter::check_limits(filters)?;
        for instance_id in instance_ids {
            check_id(ResourceKind::Instance, ids::INSTANCE, instance_id)?;
        }
        let now = self.clock.now_ms();
        let mut instances = self
            .store
            .list_instances(&RecordQuery {
                region: Some(caller.region.clone()),
                owner_ids: Some(vec![caller.account_id.clone()]),
            })
            .await?;
        if !instance_ids.is_empty() {
            let missing: Vec<String> = instance_ids
                .iter()
                .filter(|id| {
                    !instances
                        .iter()
                        .any(|instance| &instance.instance_id == *id)
                })
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(Error::ResourceNotFound {
                    kind: ResourceKind::Instance,
                    ids: missing,
                });
            }
            instances.retain(|instance| instance_ids.contains(&instance.instance_id));
        }
        let mut selected = Vec::new();
        for mut instance in instances {
            instance.settle(now);
            let mut keep = true;
            for filter in filters {
                let values = instance_filter_values(&instance, &filter.name)
                    .ok_or_else(|| filter::unknown_filter(&filter.name))?;
                keep &= filter::matches_any(filter, &values);
            }
            if keep {
                selected.push(instance);
            }
        }
        let (page, next_token) = page::paginate(
            selected,
            "DescribeInstances",
            next_token,
            max_results,
            |instance| instance.instance_id.as_str(),
        )?;
        let mut reservations: Vec<Reservation> = Vec::new();
        for instance in page {
            match reservations
                .iter_mut()
                .find(|reservation| reservation.reservation_id == instance.reservation_id)
            {
                Some(reservation) => reservation.instances.push(instance),
                None => reservations.push(Reservation {
                    reservation_id: instance.reservation_id.clone(),
                    owner_id: instance.owner_id.clone(),
                    instances: vec![instance],
                    as_of_ms: now,
                }),
            }
        }
        Ok(DescribeInstancesOutput {
            reservations,
            next_token,
        })
    }

    /// Applies a state change to each instance; all are checked before any
    /// changes, so one instance in the wrong state changes nothing.
    async fn change_states(
        &self,
        caller: &Caller,
        instance_ids: &[String],
        action: &str,
        dry_run: bool,
        decide: impl Fn(InstanceState) -> Option<Option<(InstanceState, InstanceState)>>,
    ) -> Result<Vec<(Instance, StateChange)>> {
        if instance_ids.is_empty() {
            return Err(Error::MissingParameter("InstanceId".into()));
        }
        let mut plans = Vec::new();
        for instance_id in instance_ids {
            let instance = self.owned_instance(caller, instance_id).await?;
            match decide(instance.state) {
                Some(plan) => plans.push((instance, plan)),
                None => {
                    return Err(Error::IncorrectInstanceState {
                        instance_id: instance_id.clone(),
                        action: action.to_string(),
                    });
                }
            }
        }
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let now = self.clock.now_ms();
        let mut changes = Vec::new();
        for (mut instance, plan) in plans {
            let previous = instance.state;
            if let Some((transitional, settled)) = plan {
                instance.state = transitional;
                instance.settles_to = Some(settled);
                instance.settles_at_ms = Some(now + self.settings.instance_transition_ms);
                instance.state_transition_reason = format!(
                    "User initiated ({})",
                    crate::timefmt::iso_seconds(now)
                        .replace('T', " ")
                        .replace('Z', " GMT")
                );
                if settled == InstanceState::Stopped || settled == InstanceState::Terminated {
                    instance.state_reason = Some(StateReason {
                        code: "Client.UserInitiatedShutdown".into(),
                        message: "Client.UserInitiatedShutdown: User initiated shutdown".into(),
                    });
                } else {
                    instance.state_reason = None;
                }
                match self.store.update_instance(&instance).await {
                    Ok(revision) => instance.revision = revision,
                    Err(StoreError::Conflict(id)) => {
                        return Err(Error::Internal(format!(
                            "instance {id} changed concurrently"
                        )));
                    }
                    Err(other) => return Err(other.into()),
                }
            }
            let change = StateChange {
                instance_id: instance.instance_id.clone(),
                previous,
                current: instance.state,
            };
            changes.push((instance, change));
        }
        Ok(changes)
    }

    pub async fn stop_instances(
        &self,
        caller: &Caller,
        instance_ids: &[String],
        dry_run: bool,
    ) -> Result<Vec<StateChange>> {
        let changes = self
            .change_states(
                caller,
                instance_ids,
                "stopped",
                dry_run,
                |state| match state {
                    InstanceState::Running => {
                        Some(Some((InstanceState::Stopping, InstanceState::Stopped)))
                    }
                    InstanceState::Stopping | InstanceState::Stopped => Some(None),
                    _ => None,
                },
            )
            .await?;
        Ok(changes.into_iter().map(|(_, change)| change).collect())
    }

    pub async fn start_instances(
        &self,
        caller: &Caller,
        instance_ids: &[String],
        dry_run: bool,
    ) -> Result<Vec<StateChange>> {
        let changes = self
            .change_states(
                caller,
                instance_ids,
                "started",
                dry_run,
                |state| match state {
                    InstanceState::Stopped => {
                        Some(Some((InstanceState::Pending, InstanceState::Running)))
                    }
                    InstanceState::Pending | InstanceState::Running => Some(None),
                    _ => None,
                },
            )
            .await?;
        Ok(changes.into_iter().map(|(_, change)| change).collect())
    }

    pub async fn terminate_instances(
        &self,
        caller: &Caller,
        instance_ids: &[String],
        dry_run: bool,
    ) -> Result<Vec<StateChange>> {
        let changes = self
            .change_states(
                caller,
                instance_ids,
                "terminated",
                dry_run,
                |state| match state {
                    InstanceState::ShuttingDown | InstanceState::Terminated => Some(None),
                    _ => Some(Some((
                        InstanceState::ShuttingDown,
                        InstanceState::Terminated,
                    ))),
                },
            )
            .await?;
        for (instance, change) in &changes {
            if change.previous == InstanceState::ShuttingDown
                || change.previous == InstanceState::Terminated
            {
                continue;
            }
            for device in &instance.block_devices {
                if device.delete_on_termination {
                    self.store.delete_volume(&device.volume_id).await?;
                } else {
                    self.detach_volume(&device.volume_id).await?;
                }
            }
        }
        Ok(changes.into_iter().map(|(_, change)| change).collect())
    }

    async fn detach_volume(&self, volume_id: &str) -> Result<()> {
        for _ in 0..8 {
            let Some(mut volume) = self.store.get_volume(volume_id).await? else {
                return Ok(());
            };
            volume.attachment = None;
            volume.state = VolumeState::Available;
            match self.store.update_volume(&volume).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Internal(format!(
            "too much contention updating {volume_id}"
        )))
    }

    pub async fn describe_volumes(
        &self,
        caller: &Caller,
        volume_ids: &[String],
        filters: &[Filter],
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<DescribeVolumesOutput> {
        if !volume_ids.is_empty() && max_results.is_some() {
            return Err(Error::InvalidParameterCombination(
                "The parameter volumeSet cannot be used with the parameter maxResults".into(),
            ));
        }
        // AWS documents 5 to 500; the AWS CLI pages with 1000, so accept that.
        let max_results = page::check_max_results(max_results, 5, 1000)?;
        filter::check_limits(filters)?;
        for volume_id in volume_ids {
            check_id(ResourceKind::Volume, ids::VOLUME, volume_id)?;
        }
        let mut volumes = self
            .store
            .list_volumes(&RecordQuery {
                region: Some(caller.region.clone()),
                owner_ids: Some(vec![caller.account_id.clone()]),
            })
            .await?;
        if !volume_ids.is_empty() {
            let missing: Vec<String> = volume_ids
                .iter()
                .filter(|id| !volumes.iter().any(|volume| &volume.volume_id == *id))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(Error::ResourceNotFound {
                    kind: ResourceKind::Volume,
                    ids: missing,
                });
            }
            volumes.retain(|volume| volume_ids.contains(&volume.volume_id));
        }
        let mut selected = Vec::new();
        for volume in volumes {
            let mut keep = true;
            for filter in filters {
                let values = volume_filter_values(&volume, &filter.name)
                    .ok_or_else(|| filter::unknown_filter(&filter.name))?;
                keep &= filter::matches_any(filter, &values);
            }
            if keep {
                selected.push(volume);
            }
        }
        let (page, next_token) = page::paginate(
            selected,
            "DescribeVolumes",
            next_token,
            max_results,
            |volume| volume.volume_id.as_str(),
        )?;
        Ok(DescribeVolumesOutput {
            volumes: page,
            next_token,
        })
    }
}

fn tag_values(tags: &[crate::model::Tag], name: &str) -> Option<Vec<String>> {
    if name == "tag-key" {
        return Some(tags.iter().map(|tag| tag.key.clone()).collect());
    }
    let key = name.strip_prefix("tag:")?;
    Some(
        tags.iter()
            .filter(|tag| tag.key == key)
            .map(|tag| tag.value.clone())
            .collect(),
    )
}

pub fn instance_filter_values(instance: &Instance, name: &str) -> Option<Vec<String>> {
    let values = match name {
        "image-id" => vec![instance.image_id.clone()],
        "instance-id" => vec![instance.instance_id.clone()],
        "instance-state-name" => vec![instance.state.as_str().to_string()],
        "instance-state-code" => vec![instance.state.code().to_string()],
        "instance-type" => vec![instance.instance_type.clone()],
        "availability-zone" => vec![instance.availability_zone.clone()],
        "reservation-id" => vec![instance.reservation_id.clone()],
        "owner-id" => vec![instance.owner_id.clone()],
        "architecture" => vec![instance.architecture.clone()],
        "root-device-type" => vec![instance.root_device_type.clone()],
        "root-device-name" => instance.root_device_name.iter().cloned().collect(),
        "private-ip-address" => vec![instance.private_ip_address.clone()],
        "block-device-mapping.volume-id" => instance
            .block_devices
            .iter()
            .map(|device| device.volume_id.clone())
            .collect(),
        "block-device-mapping.device-name" => instance
            .block_devices
            .iter()
            .map(|device| device.device_name.clone())
            .collect(),
        other => return tag_values(&instance.tags, other),
    };
    Some(values)
}

pub fn volume_filter_values(volume: &Volume, name: &str) -> Option<Vec<String>> {
    let values = match name {
        "volume-id" => vec![volume.volume_id.clone()],
        "snapshot-id" => volume.snapshot_id.iter().cloned().collect(),
        "size" => vec![volume.size_gib.to_string()],
        "status" => vec![volume.state.as_str().to_string()],
        "volume-type" => vec![volume.volume_type.clone()],
        "availability-zone" => vec![volume.availability_zone.clone()],
        "encrypted" => vec![volume.encrypted.to_string()],
        "attachment.instance-id" => volume
            .attachment
            .iter()
            .map(|a| a.instance_id.clone())
            .collect(),
        "attachment.device" => volume.attachment.iter().map(|a| a.device.clone()).collect(),
        "attachment.delete-on-termination" => volume
            .attachment
            .iter()
            .map(|a| a.delete_on_termination.to_string())
            .collect(),
        other => return tag_values(&volume.tags, other),
    };
    Some(values)
}
