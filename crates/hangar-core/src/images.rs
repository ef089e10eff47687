//! Image operations: register, describe, attributes, deregistration and tags.
//!
//! Visibility rule used throughout: a caller sees an image of its region
//! when it owns it, when the image is public, or when the image is shared
//! with the caller's account. Tags and the last launch time are the owner's
//! alone; others see the image without them.

use crate::error::{Error, Result};
use crate::filter::{self, Filter};
use crate::ids;
use crate::model::{
    BlockDeviceMapping, DeregistrationProtection, Image, ImageState, LaunchPermission, Tag,
};
use crate::page;
use crate::repo::{ImageListQuery, StoreError};
use crate::service::{Caller, Hangar};
use crate::tags::{self, TagRemoval, TagSpecification};

pub const ARCHITECTURES: &[&str] = &["i386", "x86_64", "arm64", "x86_64_mac", "arm64_mac"];
pub const VIRTUALIZATION_TYPES: &[&str] = &["hvm", "paravirtual"];
pub const BOOT_MODES: &[&str] = &["legacy-bios", "uefi", "uefi-preferred"];
pub const VOLUME_TYPES: &[&str] = &["standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"];
pub const MAX_VOLUME_SIZE_GIB: i64 = 65_536;
/// Bound on `UserId` entries in one `ModifyImageAttribute`, as AWS documents.
pub const MAX_LAUNCH_PERMISSION_CHANGES: usize = 10_000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegisterImageInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub image_location: Option<String>,
    pub architecture: Option<String>,
    pub virtualization_type: Option<String>,
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
    pub tag_specifications: Vec<TagSpecification>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DescribeImagesInput {
    pub image_ids: Vec<String>,
    pub owners: Vec<String>,
    pub executable_by: Vec<String>,
    pub filters: Vec<Filter>,
    pub include_deprecated: bool,
    pub include_disabled: bool,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DescribeImagesOutput {
    pub images: Vec<Image>,
    pub next_token: Option<String>,
    /// The moment the listing was taken; time-dependent fields (deprecation,
    /// protection cooldown) are reported as of then.
    pub as_of_ms: i64,
}

/// The attributes `DescribeImageAttribute` knows, named as AWS names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageAttributeName {
    Description,
    Kernel,
    Ramdisk,
    LaunchPermission,
    ProductCodes,
    BlockDeviceMapping,
    SriovNetSupport,
    BootMode,
    TpmSupport,
    UefiData,
    LastLaunchedTime,
    ImdsSupport,
    DeregistrationProtection,
}

impl ImageAttributeName {
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "description" => Self::Description,
            "kernel" => Self::Kernel,
            "ramdisk" => Self::Ramdisk,
            "launchPermission" => Self::LaunchPermission,
            "productCodes" => Self::ProductCodes,
            "blockDeviceMapping" => Self::BlockDeviceMapping,
            "sriovNetSupport" => Self::SriovNetSupport,
            "bootMode" => Self::BootMode,
            "tpmSupport" => Self::TpmSupport,
            "uefiData" => Self::UefiData,
            "lastLaunchedTime" => Self::LastLaunchedTime,
            "imdsSupport" => Self::ImdsSupport,
            "deregistrationProtection" => Self::DeregistrationProtection,
            other => {
                return Err(Error::InvalidParameterValue(format!(
                    "Value ({other}) for parameter attribute is invalid. Unknown attribute."
                )));
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ImageAttributeValue {
    Description(Option<String>),
    Kernel(Option<String>),
    Ramdisk(Option<String>),
    LaunchPermission(Vec<LaunchPermission>),
    ProductCodes,
    SriovNetSupport(Option<String>),
    BootMode(Option<String>),
    TpmSupport(Option<String>),
    UefiData(Option<String>),
    LastLaunchedTime(Option<i64>),
    ImdsSupport(Option<String>),
    DeregistrationProtection(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageAttribute {
    pub image_id: String,
    pub value: ImageAttributeValue,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaunchPermissionChanges {
    pub add: Vec<LaunchPermission>,
    pub remove: Vec<LaunchPermission>,
}

/// `ModifyImageAttribute` in both its structured and its legacy forms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModifyImageAttributeInput {
    pub image_id: String,
    pub attribute: Option<String>,
    pub operation_type: Option<String>,
    pub user_ids: Vec<String>,
    pub user_groups: Vec<String>,
    pub organization_arns: Vec<String>,
    pub organizational_unit_arns: Vec<String>,
    pub launch_permission: Option<LaunchPermissionChanges>,
    pub description: Option<String>,
    pub value: Option<String>,
    pub imds_support: Option<String>,
    pub product_codes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteSnapshotResult {
    pub snapshot_id: String,
    pub return_code: String,
}

/// One row of `DescribeTags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagDescription {
    pub resource_id: String,
    pub resource_type: String,
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeTagsOutput {
    pub tags: Vec<TagDescription>,
    pub next_token: Option<String>,
}

/// Checks an AMI name against AWS's rule: 3 to 128 characters of letters,
/// digits and `( ) [ ] space . / - ' @ _`.
pub fn validate_image_name(name: &str) -> Result<()> {
    let length = name.chars().count();
    let allowed =
        |character: char| character.is_ascii_alphanumeric() || "()[] ./-'@_".contains(character);
    if !(3..=128).contains(&length) || !name.chars().all(allowed) {
        return Err(Error::MalformedImageName(format!(
            "Invalid AMI name: {name}. AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/', '_', '[', ']', ' ', ''' and '@'."
        )));
    }
    Ok(())
}

fn one_of(parameter: &str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid_value(
            parameter,
            value,
            &format!("Valid values: {}.", allowed.join(", ")),
        ))
    }
}

fn validate_mappings(mappings: &[BlockDeviceMapping]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for mapping in mappings {
        if mapping.device_name.is_empty() {
            return Err(Error::MissingParameter(
                "BlockDeviceMapping.N.DeviceName".into(),
            ));
        }
        if !seen.insert(mapping.device_name.as_str()) {
            return Err(Error::InvalidParameterValue(format!(
                "The device name {} is used more than once in the block device mappings",
                mapping.device_name
            )));
        }
        if let Some(ebs) = &mapping.ebs {
            if let Some(snapshot_id) = &ebs.snapshot_id
                && !ids::is_well_formed(ids::SNAPSHOT, snapshot_id)
            {
                return Err(Error::InvalidParameterValue(format!(
                    "Invalid id: \"{snapshot_id}\" (expecting \"snap-...\")"
                )));
            }
            if let Some(size) = ebs.volume_size
                && !(1..=MAX_VOLUME_SIZE_GIB).contains(&size)
            {
                return Err(Error::invalid_value(
                    "VolumeSize",
                    &size.to_string(),
                    &format!("Volume size must be between 1 and {MAX_VOLUME_SIZE_GIB} GiB."),
                ));
            }
            if let Some(volume_type) = &ebs.volume_type {
                one_of("VolumeType", volume_type, VOLUME_TYPES)?;
            }
        }
    }
    Ok(())
}

impl Hangar {
    pub async fn register_image(
        &self,
        caller: &Caller,
        input: RegisterImageInput,
        dry_run: bool,
    ) -> Result<String> {
        let name = input
            .name
            .clone()
            .ok_or_else(|| Error::MissingParameter("Name".into()))?;
        validate_image_name(&name)?;
        if let Some(description) = &input.description
            && description.chars().count() > 255
        {
            return Err(Error::InvalidParameterValue(
                "Description must be at most 255 characters long".into(),
            ));
        }
        let architecture = input
            .architecture
            .clone()
            .unwrap_or_else(|| "x86_64".into());
        one_of("Architecture", &architecture, ARCHITECTURES)?;
        // AWS documents paravirtual as RegisterImage's default.
        let virtualization_type = input
            .virtualization_type
            .clone()
            .unwrap_or_else(|| "paravirtual".into());
        one_of(
            "VirtualizationType",
            &virtualization_type,
            VIRTUALIZATION_TYPES,
        )?;
        if let Some(boot_mode) = &input.boot_mode {
            one_of("BootMode", boot_mode, BOOT_MODES)?;
        }
        if let Some(tpm) = &input.tpm_support {
            one_of("TpmSupport", tpm, &["v2.0"])?;
        }
        if let Some(imds) = &input.imds_support {
            one_of("ImdsSupport", imds, &["v2.0"])?;
        }
        if let Some(sriov) = &input.sriov_net_support {
            one_of("SriovNetSupport", sriov, &["simple"])?;
        }
        validate_mappings(&input.block_device_mappings)?;

        let has_ebs_root = input.block_device_mappings.iter().any(|mapping| {
            mapping
                .ebs
                .as_ref()
                .is_some_and(|ebs| ebs.snapshot_id.is_some())
        });
        let root_device_type = match (&input.image_location, has_ebs_root) {
            (Some(_), false) => "instance-store",
            (_, true) => "ebs",
            (None, false) => {
                return Err(Error::MissingParameter(
                    "ImageLocation or a BlockDeviceMapping with Ebs.SnapshotId".into(),
                ));
            }
        };
        if root_device_type == "ebs" {
            let Some(root) = &input.root_device_name else {
                return Err(Error::MissingParameter("RootDeviceName".into()));
            };
            let root_mapping = input
                .block_device_mappings
                .iter()
                .find(|mapping| &mapping.device_name == root);
            if !root_mapping.is_some_and(|mapping| {
                mapping
                    .ebs
                    .as_ref()
                    .is_some_and(|ebs| ebs.snapshot_id.is_some())
            }) {
                return Err(Error::InvalidParameterValue(format!(
                    "The root device name {root} must match a block device mapping with an Ebs.SnapshotId"
                )));
            }
        }
        let image_tags = tags::tags_for(&input.tag_specifications, "image", &["image"])?;
        let mut input = input;
        self.resolve_mapping_snapshots(caller, &mut input.block_device_mappings)
            .await?;
        if dry_run {
            // The store enforces names on insert; a dry run asks it first.
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
            if let Some(existing) = taken {
                return Err(Error::DuplicateImageName {
                    name,
                    existing: existing.image_id,
                });
            }
            return Err(Error::DryRunOperation);
        }

        let now = self.clock.now_ms();
        let image_location = input
            .image_location
            .clone()
            .unwrap_or_else(|| format!("{}/{}", caller.account_id, name));
        let mut image = Image {
            image_id: ids::generate(ids::IMAGE),
            region: caller.region.clone(),
            owner_id: caller.account_id.clone(),
            owner_alias: None,
            name,
            description: input.description,
            image_location,
            image_type: "machine".into(),
            architecture,
            virtualization_type,
            hypervisor: "xen".into(),
            platform: None,
            platform_details: "Linux/UNIX".into(),
            usage_operation: "RunInstances".into(),
            root_device_type: root_device_type.into(),
            root_device_name: input.root_device_name,
            block_device_mappings: input.block_device_mappings,
            boot_mode: input.boot_mode,
            ena_support: input.ena_support,
            sriov_net_support: input.sriov_net_support,
            tpm_support: input.tpm_support,
            imds_support: input.imds_support,
            uefi_data: input.uefi_data,
            kernel_id: input.kernel_id,
            ramdisk_id: input.ramdisk_id,
            state: ImageState::Available,
            state_reason: None,
            creation_ms: now,
            launch_permissions: Vec::new(),
            tags: image_tags,
            source_image_id: None,
            source_image_region: None,
            source_instance_id: None,
            deprecation_ms: None,
            deregistration_protection: DeregistrationProtection::default(),
            last_launched_ms: None,
            launch_history_ms: Vec::new(),
            deregistered_ms: None,
            revision: 0,
        };
        self.insert_new_image(&mut image).await?;
        Ok(image.image_id)
    }

    /// Checks that every snapshot a mapping names exists, is completed and
    /// usable by the caller, and that the mapping is at least as large; a
    /// mapping without `VolumeSize` takes the snapshot's size.
    async fn resolve_mapping_snapshots(
        &self,
        caller: &Caller,
        mappings: &mut [BlockDeviceMapping],
    ) -> Result<()> {
        for mapping in mappings {
            let Some(ebs) = mapping.ebs.as_mut() else {
                continue;
            };
            let Some(snapshot_id) = ebs.snapshot_id.clone() else {
                continue;
            };
            let snapshot = self.visible_snapshot(caller, &snapshot_id).await?;
            if snapshot.state != crate::model::SnapshotState::Completed {
                return Err(Error::IncorrectSnapshotState {
                    snapshot_id,
                    state: snapshot.state.as_str().into(),
                    detail: "an image can only use completed snapshots".into(),
                });
            }
            match ebs.volume_size {
                None => ebs.volume_size = Some(snapshot.volume_size_gib),
                Some(size) if size < snapshot.volume_size_gib => {
                    return Err(Error::InvalidParameterValue(format!(
                        "Volume of size {size}GB is smaller than snapshot '{snapshot_id}', expect size >= {}GB",
                        snapshot.volume_size_gib
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Stores a new image, mapping a taken name to `InvalidAMIName.Duplicate`
    /// and retrying on the (astronomically unlikely) ID collision.
    pub(crate) async fn insert_new_image(&self, image: &mut Image) -> Result<()> {
        for _ in 0..3 {
            match self.store.insert_image(image).await {
                Ok(()) => return Ok(()),
                Err(StoreError::ImageNameTaken { existing_image_id }) => {
                    return Err(Error::DuplicateImageName {
                        name: image.name.clone(),
                        existing: existing_image_id,
                    });
                }
                Err(StoreError::DuplicateId(_)) => image.image_id = ids::generate(ids::IMAGE),
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Internal("could not allocate an image id".into()))
    }

    fn can_see(caller: &Caller, image: &Image) -> bool {
        image.region == caller.region
            && (image.owner_id == caller.account_id
                || image.is_public()
                || image.is_shared_with(&caller.account_id))
    }

    /// The image as `caller` may see it: owner-only fields are removed for
    /// everyone else.
    fn view_for(&self, caller: &Caller, mut image: Image, now: i64) -> Image {
        crate::usage::apply_report(&mut image, now, self.settings.report_delay_ms);
        if image.owner_id != caller.account_id {
            image.tags.clear();
            image.last_launched_ms = None;
        }
        image
    }

    /// Loads an image the caller can see, in the states that allow use.
    /// Malformed, missing, foreign-region and invisible IDs read as AWS
    /// reports them; a deregistered image is `InvalidAMIID.Unavailable`.
    pub async fn usable_image(&self, caller: &Caller, image_id: &str) -> Result<Image> {
        if !ids::is_well_formed(ids::IMAGE, image_id) {
            return Err(Error::MalformedImageId(image_id.to_string()));
        }
        let image = self
            .store
            .get_image(image_id)
            .await?
            .filter(|image| Self::can_see(caller, image))
            .ok_or_else(|| Error::ImageNotFound(vec![image_id.to_string()]))?;
        if image.state == ImageState::Deregistered {
            return Err(Error::ImageUnavailable(image_id.to_string()));
        }
        Ok(image)
    }

    /// Like [`Self::usable_image`], but the caller must own the image.
    pub async fn owned_image(&self, caller: &Caller, image_id: &str) -> Result<Image> {
        let image = self.usable_image(caller, image_id).await?;
        if image.owner_id != caller.account_id {
            return Err(Error::NotAuthorizedForImage(image_id.to_string()));
        }
        Ok(image)
    }

    /// Applies `change` to the stored image, re-reading and retrying when a
    /// concurrent writer got there first.
    pub(crate) async fn update_owned_image<F>(
        &self,
        caller: &Caller,
        image_id: &str,
        mut change: F,
    ) -> Result<Image>
    where
        F: FnMut(&mut Image) -> Result<()>,
    {
        for _ in 0..8 {
            let mut image = self.owned_image(caller, image_id).await?;
            change(&mut image)?;
            match self.store.update_image(&image).await {
                Ok(revision) => {
                    image.revision = revision;
                    return Ok(image);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(StoreError::ImageNameTaken { existing_image_id }) => {
                    return Err(Error::DuplicateImageName {
                        name: image.name,
                        existing: existing_image_id,
                    });
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Internal(format!(
            "too much contention updating {image_id}"
        )))
    }

    pub async fn describe_images(
        &self,
        caller: &Caller,
        input: DescribeImagesInput,
    ) -> Result<DescribeImagesOutput> {
        if !input.image_ids.is_empty() && input.max_results.is_some() {
            return Err(Error::InvalidParameterCombination(
                "The parameter imageIdsSet cannot be used with the parameter maxResults".into(),
            ));
        }
        let max_results = page::check_max_results(input.max_results, 1, 1000)?;
        filter::check_limits(&input.filters)?;
        for filter in &input.filters {
            if image_filter_values(&Self::sample_for_filter_check(), &filter.name).is_none() {
                return Err(filter::unknown_filter(&filter.name));
            }
        }
        for image_id in &input.image_ids {
            if !ids::is_well_formed(ids::IMAGE, image_id) {
                return Err(Error::MalformedImageId(image_id.clone()));
            }
        }
        let (owner_ids, owner_aliases) = self.resolve_owners(caller, &input.owners)?;
        for executable in &input.executable_by {
            if executable != "self" && executable != "all" && !ids::is_account_id(executable) {
                return Err(Error::InvalidParameterValue(format!(
                    "Invalid value '{executable}' for ExecutableBy. Expected 'self', 'all' or an account ID"
                )));
            }
        }
        let now = self.clock.now_ms();
        let by_id = !input.image_ids.is_empty();

        let candidates = if by_id {
            let mut unique = input.image_ids.clone();
            unique.sort();
            unique.dedup();
            let found = self.store.get_images(&unique).await?;
            let visible: Vec<Image> = found
                .into_iter()
                .filter(|image| Self::can_see(caller, image))
                .filter(|image| {
                    image.state != ImageState::Deregistered
                        || image
                            .deregistered_ms
                            .is_some_and(|at| now - at < self.settings.deregistered_visible_ms)
                })
                .collect();
            let missing: Vec<String> = unique
                .iter()
                .filter(|id| !visible.iter().any(|image| &image.image_id == *id))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(Error::ImageNotFound(missing));
            }
            // Owner.N narrows an ID lookup too.
            visible
                .into_iter()
                .filter(|image| {
                    input.owners.is_empty()
                        || owner_ids.contains(&image.owner_id)
                        || image
                            .owner_alias
                            .as_ref()
                            .is_some_and(|alias| owner_aliases.contains(alias))
                })
                .collect()
        } else {
            let query = ImageListQuery {
                region: caller.region.clone(),
                owner_ids: (!owner_ids.is_empty()).then_some(owner_ids.clone()),
                owner_aliases: (!owner_aliases.is_empty()).then_some(owner_aliases.clone()),
                exclude_deregistered: true,
            };
            let mut listed = if !owner_ids.is_empty() && !owner_aliases.is_empty() {
                // Owners mixing IDs and aliases: two narrow queries, merged.
                let mut by_ids = self
                    .store
                    .list_images(&ImageListQuery {
                        owner_aliases: None,
                        ..query.clone()
                    })
                    .await?;
                let by_aliases = self
                    .store
                    .list_images(&ImageListQuery {
                        owner_ids: None,
                        ..query
                    })
                    .await?;
                for image in by_aliases {
                    if !by_ids.iter().any(|known| known.image_id == image.image_id) {
                        by_ids.push(image);
                    }
                }
                by_ids.sort_by(|a, b| a.image_id.cmp(&b.image_id));
                by_ids
            } else {
                self.store.list_images(&query).await?
            };
            listed.retain(|image| Self::can_see(caller, image));
            listed
        };

        let mut selected: Vec<Image> = candidates
            .into_iter()
            .filter(|image| {
                let owned = image.owner_id == caller.account_id;
                if image.state == ImageState::Disabled && !input.include_disabled && !by_id {
                    return false;
                }
                if !owned && !by_id && !input.include_deprecated && image.is_deprecated_at(now) {
                    return false;
                }
                if !input.executable_by.is_empty()
                    && !input
                        .executable_by
                        .iter()
                        .any(|executable| match executable.as_str() {
                            "all" => image.is_public(),
                            "self" => image.is_shared_with(&caller.account_id),
                            account => image.is_shared_with(account),
                        })
                {
                    return false;
                }
                let view_tags: &[Tag] = if owned { &image.tags } else { &[] };
                input.filters.iter().all(|filter| {
                    let values = image_filter_values_with_tags(image, view_tags, &filter.name)
                        .unwrap_or_default();
                    filter::matches_any(filter, &values)
                })
            })
            .collect();
        selected.sort_by(|a, b| a.image_id.cmp(&b.image_id));
        let (page, next_token) = page::paginate(
            selected,
            "DescribeImages",
            input.next_token.as_deref(),
            max_results,
            |image| image.image_id.as_str(),
        )?;
        Ok(DescribeImagesOutput {
            images: page
                .into_iter()
                .map(|image| self.view_for(caller, image, now))
                .collect(),
            next_token,
            as_of_ms: now,
        })
    }

    /// Splits `Owner.N` into owner IDs and owner aliases.
    fn resolve_owners(
        &self,
        caller: &Caller,
        owners: &[String],
    ) -> Result<(Vec<String>, Vec<String>)> {
        let mut owner_ids = Vec::new();
        let mut owner_aliases = Vec::new();
        for owner in owners {
            match owner.as_str() {
                "self" => owner_ids.push(caller.account_id.clone()),
                "amazon" | "aws-marketplace" | "aws-backup-vault" => {
                    owner_aliases.push(owner.clone())
                }
                account if ids::is_account_id(account) => owner_ids.push(account.to_string()),
                other => {
                    return Err(Error::InvalidParameterValue(format!(
                        "Invalid value '{other}' for Owner. Expected 'self', 'amazon', 'aws-marketplace', 'aws-backup-vault' or an account ID"
                    )));
                }
            }
        }
        Ok((owner_ids, owner_aliases))
    }

    fn sample_for_filter_check() -> Image {
        crate::catalog::images_for("us-east-1").remove(0)
    }

    pub async fn describe_image_attribute(
        &self,
        caller: &Caller,
        image_id: &str,
        attribute: ImageAttributeName,
    ) -> Result<ImageAttribute> {
        let image = self.usable_image(caller, image_id).await?;
        let owned = image.owner_id == caller.account_id;
        let owner_only = matches!(
            attribute,
            ImageAttributeName::LaunchPermission
                | ImageAttributeName::LastLaunchedTime
                | ImageAttributeName::DeregistrationProtection
        );
        if (owner_only && !owned) || attribute == ImageAttributeName::BlockDeviceMapping {
            // AWS answers AuthFailure for owner-only attributes, and for the
            // deprecated blockDeviceMapping attribute for everyone.
            return Err(Error::NotAuthorizedForImage(image_id.to_string()));
        }
        let value = match attribute {
            ImageAttributeName::Description => ImageAttributeValue::Description(image.description),
            ImageAttributeName::Kernel => ImageAttributeValue::Kernel(image.kernel_id),
            ImageAttributeName::Ramdisk => ImageAttributeValue::Ramdisk(image.ramdisk_id),
            ImageAttributeName::LaunchPermission => {
                ImageAttributeValue::LaunchPermission(image.launch_permissions)
            }
            ImageAttributeName::ProductCodes => ImageAttributeValue::ProductCodes,
            ImageAttributeName::BlockDeviceMapping => {
                return Err(Error::NotAuthorizedForImage(image_id.to_string()));
            }
            ImageAttributeName::SriovNetSupport => {
                ImageAttributeValue::SriovNetSupport(image.sriov_net_support)
            }
            ImageAttributeName::BootMode => ImageAttributeValue::BootMode(image.boot_mode),
            ImageAttributeName::TpmSupport => ImageAttributeValue::TpmSupport(image.tpm_support),
            ImageAttributeName::UefiData => ImageAttributeValue::UefiData(image.uefi_data),
            ImageAttributeName::LastLaunchedTime => {
                ImageAttributeValue::LastLaunchedTime(crate::usage::reported_launch(
                    &image,
                    self.clock.now_ms(),
                    self.settings.report_delay_ms,
                ))
            }
            ImageAttributeName::ImdsSupport => ImageAttributeValue::ImdsSupport(image.imds_support),
            ImageAttributeName::DeregistrationProtection => {
                ImageAttributeValue::DeregistrationProtection(protection_state(
                    &image.deregistration_protection,
                    self.clock.now_ms(),
                ))
            }
        };
        Ok(ImageAttribute {
            image_id: image.image_id,
            value,
        })
    }

    pub async fn modify_image_attribute(
        &self,
        caller: &Caller,
        input: ModifyImageAttributeInput,
        dry_run: bool,
    ) -> Result<()> {
        let change = AttributeChange::from_input(&input)?;
        if dry_run {
            self.owned_image(caller, &input.image_id).await?;
            return Err(Error::DryRunOperation);
        }
        self.update_owned_image(caller, &input.image_id, |image| change.apply(image))
            .await?;
        Ok(())
    }

    pub async fn reset_image_attribute(
        &self,
        caller: &Caller,
        image_id: &str,
        attribute: &str,
        dry_run: bool,
    ) -> Result<()> {
        if attribute != "launchPermission" {
            return Err(Error::invalid_value(
                "Attribute",
                attribute,
                "Only launchPermission can be reset.",
            ));
        }
        if dry_run {
            self.owned_image(caller, image_id).await?;
            return Err(Error::DryRunOperation);
        }
        self.update_owned_image(caller, image_id, |image| {
            image.launch_permissions.clear();
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn deregister_image(
        &self,
        caller: &Caller,
        image_id: &str,
        delete_associated_snapshots: bool,
        dry_run: bool,
    ) -> Result<Vec<DeleteSnapshotResult>> {
        let now = self.clock.now_ms();
        if dry_run {
            let image = self.owned_image(caller, image_id).await?;
            Self::check_not_protected(&image, now)?;
            return Err(Error::DryRunOperation);
        }
        let image = self
            .update_owned_image(caller, image_id, |image| {
                Self::check_not_protected(image, now)?;
                image.state = ImageState::Deregistered;
                image.deregistered_ms = Some(now);
                image.launch_permissions.clear();
                Ok(())
            })
            .await?;
        let mut results = Vec::new();
        if delete_associated_snapshots {
            for snapshot_id in image.snapshot_ids() {
                let return_code = match self.delete_snapshot(caller, snapshot_id, false).await {
                    Ok(()) => "success",
                    Err(Error::SnapshotInUse { .. }) => "skipped",
                    Err(Error::UnauthorizedOperation | Error::ResourceNotFound { .. }) => {
                        "missing-permissions"
                    }
                    Err(Error::MalformedId { .. }) => "client-error",
                    Err(_) => "internal-error",
                };
                results.push(DeleteSnapshotResult {
                    snapshot_id: snapshot_id.to_string(),
                    return_code: return_code.into(),
                });
            }
        }
        Ok(results)
    }

    pub async fn create_tags(
        &self,
        caller: &Caller,
        resource_ids: &[String],
        new_tags: &[Tag],
        dry_run: bool,
    ) -> Result<()> {
        if resource_ids.is_empty() {
            return Err(Error::MissingParameter("ResourceId".into()));
        }
        if new_tags.is_empty() {
            return Err(Error::MissingParameter("Tag".into()));
        }
        for tag in new_tags {
            tags::validate_tag(tag)?;
        }
        // Check every resource before changing any, so a bad ID leaves
        // nothing half-tagged; merging into a copy checks the per-resource
        // limit up front.
        for resource_id in resource_ids {
            let mut current = self.check_taggable(caller, resource_id).await?;
            tags::merge(&mut current, new_tags)?;
        }
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        for resource_id in resource_ids {
            self.change_tags(caller, resource_id, &|current| {
                tags::merge(current, new_tags)
            })
            .await?;
        }
        Ok(())
    }

    pub async fn delete_tags(
        &self,
        caller: &Caller,
        resource_ids: &[String],
        removals: &[TagRemoval],
        dry_run: bool,
    ) -> Result<()> {
        if resource_ids.is_empty() {
            return Err(Error::MissingParameter("ResourceId".into()));
        }
        for resource_id in resource_ids {
            self.check_taggable(caller, resource_id).await?;
        }
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        for resource_id in resource_ids {
            self.change_tags(caller, resource_id, &|current| {
                tags::remove(current, removals);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// The resource exists, is the caller's, and can carry tags; returns its
    /// current tags.
    async fn check_taggable(&self, caller: &Caller, resource_id: &str) -> Result<Vec<Tag>> {
        Ok(match ids::prefix_of(resource_id) {
            Some(ids::IMAGE) => {
                let image = self.usable_image(caller, resource_id).await?;
                if image.owner_id != caller.account_id {
                    return Err(Error::UnauthorizedOperation);
                }
                image.tags
            }
            Some(ids::SNAPSHOT) => self.owned_snapshot(caller, resource_id).await?.tags,
            Some(ids::VOLUME) => self.owned_volume(caller, resource_id).await?.tags,
            Some(ids::INSTANCE) => self.owned_instance(caller, resource_id).await?.tags,
            _ => return Err(Error::MalformedResourceId(resource_id.to_string())),
        })
    }

    async fn change_tags(
        &self,
        caller: &Caller,
        resource_id: &str,
        change: &(dyn Fn(&mut Vec<Tag>) -> Result<()> + Sync),
    ) -> Result<()> {
        match ids::prefix_of(resource_id) {
            Some(ids::IMAGE) => {
                self.update_owned_image(caller, resource_id, |image| change(&mut image.tags))
                    .await?;
            }
            Some(ids::SNAPSHOT) => {
                self.update_owned_snapshot(caller, resource_id, |snapshot| {
                    change(&mut snapshot.tags)
                })
                .await?;
            }
            Some(ids::VOLUME) => {
                for _ in 0..8 {
                    let mut volume = self.owned_volume(caller, resource_id).await?;
                    change(&mut volume.tags)?;
                    match self.store.update_volume(&volume).await {
                        Ok(_) => return Ok(()),
                        Err(StoreError::Conflict(_)) => continue,
                        Err(other) => return Err(other.into()),
                    }
                }
                return Err(Error::Internal(format!(
                    "too much contention updating {resource_id}"
                )));
            }
            Some(ids::INSTANCE) => {
                for _ in 0..8 {
                    let mut instance = self.owned_instance(caller, resource_id).await?;
                    change(&mut instance.tags)?;
                    match self.store.update_instance(&instance).await {
                        Ok(_) => return Ok(()),
                        Err(StoreError::Conflict(_)) => continue,
                        Err(other) => return Err(other.into()),
                    }
                }
                return Err(Error::Internal(format!(
                    "too much contention updating {resource_id}"
                )));
            }
            _ => return Err(Error::MalformedResourceId(resource_id.to_string())),
        }
        Ok(())
    }

    pub async fn describe_tags(
        &self,
        caller: &Caller,
        filters: &[Filter],
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<DescribeTagsOutput> {
        let max_results = page::check_max_results(max_results, 5, 1000)?;
        filter::check_limits(filters)?;
        for filter in filters {
            if !matches!(
                filter.name.as_str(),
                "key" | "value" | "resource-id" | "resource-type"
            ) && !filter.name.starts_with("tag:")
            {
                return Err(filter::unknown_filter(&filter.name));
            }
        }
        let mine = crate::repo::RecordQuery {
            region: Some(caller.region.clone()),
            owner_ids: Some(vec![caller.account_id.clone()]),
        };
        let mut tagged: Vec<(String, &'static str, Vec<Tag>)> = Vec::new();
        for image in self
            .store
            .list_images(&ImageListQuery {
                region: caller.region.clone(),
                owner_ids: Some(vec![caller.account_id.clone()]),
                owner_aliases: None,
                exclude_deregistered: true,
            })
            .await?
        {
            tagged.push((image.image_id, "image", image.tags));
        }
        for snapshot in self.store.list_snapshots(&mine).await? {
            tagged.push((snapshot.snapshot_id, "snapshot", snapshot.tags));
        }
        for volume in self.store.list_volumes(&mine).await? {
            tagged.push((volume.volume_id, "volume", volume.tags));
        }
        for instance in self.store.list_instances(&mine).await? {
            tagged.push((instance.instance_id, "instance", instance.tags));
        }
        let mut rows: Vec<(String, TagDescription)> = Vec::new();
        for (resource_id, resource_type, resource_tags) in &tagged {
            for tag in resource_tags {
                let row = TagDescription {
                    resource_id: resource_id.clone(),
                    resource_type: (*resource_type).into(),
                    key: tag.key.clone(),
                    value: tag.value.clone(),
                };
                let keep = filters.iter().all(|filter| match filter.name.as_str() {
                    "key" => filter::matches_any(filter, &[&row.key]),
                    "value" => filter::matches_any(filter, &[&row.value]),
                    "resource-id" => filter::matches_any(filter, &[&row.resource_id]),
                    "resource-type" => filter::matches_any(filter, &[&row.resource_type]),
                    name => {
                        let key = &name["tag:".len()..];
                        resource_tags.iter().any(|other| {
                            other.key == key && filter::matches_any(filter, &[&other.value])
                        })
                    }
                });
                if keep {
                    rows.push((format!("{}\u{1}{}", row.resource_id, row.key), row));
                }
            }
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let (page, next_token) =
            page::paginate(rows, "DescribeTags", next_token, max_results, |row| {
                row.0.as_str()
            })?;
        Ok(DescribeTagsOutput {
            tags: page.into_iter().map(|(_, row)| row).collect(),
            next_token,
        })
    }
}

/// The string AWS reports for deregistration protection.
pub fn protection_state(protection: &DeregistrationProtection, now_ms: i64) -> String {
    match (protection.enabled, protection.with_cooldown) {
        (true, true) => "enabled-with-cooldown".into(),
        (true, false) => "enabled-without-cooldown".into(),
        (false, _)
            if protection
                .cooldown_until
                .is_some_and(|until| until > now_ms) =>
        {
            "disabled-with-cooldown".into()
        }
        (false, _) => "disabled".into(),
    }
}

/// What one `ModifyImageAttribute` call changes, decided before the image is
/// loaded so that a malformed request touches nothing.
enum AttributeChange {
    LaunchPermission(LaunchPermissionChanges),
    Description(String),
    ImdsSupport,
}

fn parse_permission_item(kind: &str, value: &str) -> Result<LaunchPermission> {
    let bad = || {
        Error::InvalidAttributeItemValue(format!(
            "Invalid attribute item value \"{value}\" for {kind} item type."
        ))
    };
    match kind {
        "userId" if ids::is_account_id(value) => Ok(LaunchPermission::UserId(value.to_string())),
        "group" if value == "all" => Ok(LaunchPermission::GroupAll),
        "organizationArn" if value.starts_with("arn:") && value.contains(":organization/") => {
            Ok(LaunchPermission::OrganizationArn(value.to_string()))
        }
        "organizationalUnitArn" if value.starts_with("arn:") && value.contains(":ou/") => {
            Ok(LaunchPermission::OrganizationalUnitArn(value.to_string()))
        }
        _ => Err(bad()),
    }
}

fn validate_permission(permission: &LaunchPermission) -> Result<LaunchPermission> {
    match permission {
        LaunchPermission::UserId(value) => parse_permission_item("userId", value),
        LaunchPermission::GroupAll => Ok(LaunchPermission::GroupAll),
        LaunchPermission::OrganizationArn(value) => parse_permission_item("organizationArn", value),
        LaunchPermission::OrganizationalUnitArn(value) => {
            parse_permission_item("organizationalUnitArn", value)
        }
    }
}

impl AttributeChange {
    fn from_input(input: &ModifyImageAttributeInput) -> Result<Self> {
        if !input.product_codes.is_empty() {
            return Err(Error::InvalidParameterValue(
                "Product codes cannot be modified: ProductCode is not supported".into(),
            ));
        }
        let legacy_permission_items = !input.user_ids.is_empty()
            || !input.user_groups.is_empty()
            || !input.organization_arns.is_empty()
            || !input.organizational_unit_arns.is_empty();
        let mut changes: Vec<AttributeChange> = Vec::new();

        if let Some(structured) = &input.launch_permission {
            let add = structured
                .add
                .iter()
                .map(validate_permission)
                .collect::<Result<Vec<_>>>()?;
            let remove = structured
                .remove
                .iter()
                .map(validate_permission)
                .collect::<Result<Vec<_>>>()?;
            changes.push(AttributeChange::LaunchPermission(LaunchPermissionChanges {
                add,
                remove,
            }));
        }
        if legacy_permission_items || input.attribute.as_deref() == Some("launchPermission") {
            let operation = input
                .operation_type
                .as_deref()
                .ok_or_else(|| Error::MissingParameter("OperationType".into()))?;
            let mut items = Vec::new();
            for user in &input.user_ids {
                items.push(parse_permission_item("userId", user)?);
            }
            for group in &input.user_groups {
                items.push(parse_permission_item("group", group)?);
            }
            for arn in &input.organization_arns {
                items.push(parse_permission_item("organizationArn", arn)?);
            }
            for arn in &input.organizational_unit_arns {
                items.push(parse_permission_item("organizationalUnitArn", arn)?);
            }
            let change = match operation {
                "add" => LaunchPermissionChanges {
                    add: items,
                    remove: Vec::new(),
                },
                "remove" => LaunchPermissionChanges {
                    add: Vec::new(),
                    remove: items,
                },
                other => {
                    return Err(Error::invalid_value(
                        "OperationType",
                        other,
                        "Valid values: add, remove.",
                    ));
                }
            };
            if input.launch_permission.is_none() {
                changes.push(AttributeChange::LaunchPermission(change));
            }
        }
        if let Some(description) = &input.description {
            changes.push(AttributeChange::Description(description.clone()));
        }
        if let Some(imds) = &input.imds_support {
            one_of("ImdsSupport", imds, &["v2.0"])?;
            changes.push(AttributeChange::ImdsSupport);
        }
        match (input.attribute.as_deref(), &input.value) {
            (Some("description"), Some(value)) if input.description.is_none() => {
                changes.push(AttributeChange::Description(value.clone()));
            }
            (Some("imdsSupport"), Some(value)) if input.imds_support.is_none() => {
                one_of("ImdsSupport", value, &["v2.0"])?;
                changes.push(AttributeChange::ImdsSupport);
            }
            (Some("description" | "imdsSupport"), None) => {
                return Err(Error::MissingParameter("Value".into()));
            }
            (Some("launchPermission") | None, _) => {}
            (Some("description" | "imdsSupport"), Some(_)) => {}
            (Some("productCodes"), _) => {
                return Err(Error::InvalidParameterValue(
                    "Product codes cannot be modified: ProductCode is not supported".into(),
                ));
            }
            (Some(other), _) => {
                return Err(Error::invalid_value(
                    "Attribute",
                    other,
                    "Valid values: description, launchPermission, imdsSupport.",
                ));
            }
        }
        let total_items = match changes.first() {
            Some(AttributeChange::LaunchPermission(change)) => {
                change.add.len() + change.remove.len()
            }
            _ => 0,
        };
        if total_items > MAX_LAUNCH_PERMISSION_CHANGES {
            return Err(Error::InvalidParameterValue(format!(
                "At most {MAX_LAUNCH_PERMISSION_CHANGES} launch permission changes are allowed per request"
            )));
        }
        if let Some(AttributeChange::Description(description)) = changes.first()
            && description.chars().count() > 255
        {
            return Err(Error::InvalidParameterValue(
                "Description must be at most 255 characters long".into(),
            ));
        }
        match changes.len() {
            0 => Err(Error::InvalidParameterCombination(
                "No attributes specified.".into(),
            )),
            1 => Ok(changes.remove(0)),
            _ => Err(Error::InvalidParameterCombination(
                "Only one attribute can be modified in a single call".into(),
            )),
        }
    }

    fn apply(&self, image: &mut Image) -> Result<()> {
        match self {
            AttributeChange::LaunchPermission(change) => {
                // A disabled image cannot be shared: DisableImage took its
                // permissions away and only EnableImage makes it usable again.
                if image.state == ImageState::Disabled && !change.add.is_empty() {
                    return Err(Error::IncorrectImageState {
                        image_id: image.image_id.clone(),
                        state: image.state.as_str().into(),
                    });
                }
                for permission in &change.add {
                    if !image.launch_permissions.contains(permission) {
                        image.launch_permissions.push(permission.clone());
                    }
                }
                image
                    .launch_permissions
                    .retain(|permission| !change.remove.contains(permission));
            }
            AttributeChange::Description(description) => {
                image.description = Some(description.clone());
            }
            AttributeChange::ImdsSupport => image.imds_support = Some("v2.0".into()),
        }
        Ok(())
    }
}

/// The values of an image for one filter name, or `None` when the name is
/// not a `DescribeImages` filter. Tags are passed separately because only
/// the owner's view carries them.
pub fn image_filter_values(image: &Image, name: &str) -> Option<Vec<String>> {
    image_filter_values_with_tags(image, &image.tags, name)
}

fn image_filter_values_with_tags(image: &Image, tags: &[Tag], name: &str) -> Option<Vec<String>> {
    fn opt(value: &Option<String>) -> Vec<String> {
        value.iter().cloned().collect()
    }
    fn flag(value: bool) -> Vec<String> {
        vec![value.to_string()]
    }
    let ebs = || {
        image
            .block_device_mappings
            .iter()
            .filter_map(|mapping| mapping.ebs.as_ref())
    };
    let values = match name {
        "architecture" => vec![image.architecture.clone()],
        "block-device-mapping.delete-on-termination" => ebs()
            .filter_map(|ebs| ebs.delete_on_termination.map(|flag| flag.to_string()))
            .collect(),
        "block-device-mapping.device-name" => image
            .block_device_mappings
            .iter()
            .map(|mapping| mapping.device_name.clone())
            .collect(),
        "block-device-mapping.snapshot-id" => {
            ebs().filter_map(|ebs| ebs.snapshot_id.clone()).collect()
        }
        "block-device-mapping.volume-size" => ebs()
            .filter_map(|ebs| ebs.volume_size.map(|size| size.to_string()))
            .collect(),
        "block-device-mapping.volume-type" => {
            ebs().filter_map(|ebs| ebs.volume_type.clone()).collect()
        }
        "block-device-mapping.encrypted" => ebs()
            .map(|ebs| ebs.encrypted.unwrap_or(false).to_string())
            .collect(),
        "boot-mode" => opt(&image.boot_mode),
        "creation-date" => vec![crate::timefmt::iso_millis(image.creation_ms)],
        "description" => opt(&image.description),
        "ena-support" => image
            .ena_support
            .map(|flag| flag.to_string())
            .into_iter()
            .collect(),
        "free-tier-eligible" => flag(false),
        "hypervisor" => vec![image.hypervisor.clone()],
        "image-allowed" => flag(true),
        "image-id" => vec![image.image_id.clone()],
        "image-type" => vec![image.image_type.clone()],
        "is-public" => flag(image.is_public()),
        "kernel-id" => opt(&image.kernel_id),
        "manifest-location" => vec![image.image_location.clone()],
        "name" => vec![image.name.clone()],
        "owner-alias" => opt(&image.owner_alias),
        "owner-id" => vec![image.owner_id.clone()],
        "platform" => opt(&image.platform),
        "platform-details" => vec![image.platform_details.clone()],
        "usage-operation" => vec![image.usage_operation.clone()],
        "product-code" | "product-code.type" | "public-ssm-parameter-name" => Vec::new(),
        "ramdisk-id" => opt(&image.ramdisk_id),
        "root-device-name" => opt(&image.root_device_name),
        "root-device-type" => vec![image.root_device_type.clone()],
        "source-image-id" => opt(&image.source_image_id),
        "source-image-region" => opt(&image.source_image_region),
        "source-instance-id" => opt(&image.source_instance_id),
        "state" => vec![image.state.as_str().to_string()],
        "state-reason-code" => image
            .state_reason
            .iter()
            .map(|reason| reason.code.clone())
            .collect(),
        "state-reason-message" => image
            .state_reason
            .iter()
            .map(|reason| reason.message.clone())
            .collect(),
        "sriov-net-support" => opt(&image.sriov_net_support),
        "tpm-support" => opt(&image.tpm_support),
        "imds-support" => opt(&image.imds_support),
        "virtualization-type" => vec![image.virtualization_type.clone()],
        "tag-key" => tags.iter().map(|tag| tag.key.clone()).collect(),
        other if other.starts_with("tag:") => {
            let key = &other["tag:".len()..];
            tags.iter()
                .filter(|tag| tag.key == key)
                .map(|tag| tag.value.clone())
                .collect()
        }
        other
            if other.starts_with("scan-result.")
                || other.starts_with("image-watermark.")
                || other.starts_with("instance-type-specification.") =>
        {
            Vec::new()
        }
        _ => return None,
    };
    Some(values)
}

// ---------------------------------------------------------------------------
// Provenance and retirement: GetImageAncestry, deprecation, deregistration
// protection, DisableImage/EnableImage, DescribeImageReferences.

/// `GetImageAncestry` stops after this many entries, as AWS documents.
pub const MAX_ANCESTRY_ENTRIES: usize = 50;
/// Owner aliases of verified providers: the ancestry walk ends at their
/// images (included), as AWS does.
const ANCESTRY_ROOT_ALIASES: &[&str] = &["amazon", "aws-marketplace"];
/// Cooldown kept after protection with cooldown is turned off.
pub const PROTECTION_COOLDOWN_MS: i64 = 24 * 60 * 60 * 1000;
/// `DescribeImageReferences` takes 1 to 10 `ImageId.N`.
pub const MAX_REFERENCE_IMAGE_IDS: usize = 10;
/// The resource types `DescribeImageReferences` knows (botocore's enum).
pub const REFERENCE_RESOURCE_TYPES: &[&str] = &[
    "ec2:Instance",
    "ec2:LaunchTemplate",
    "ssm:Parameter",
    "imagebuilder:ImageRecipe",
    "imagebuilder:ContainerRecipe",
];
const INSTANCE_STATE_NAMES: &[&str] = &[
    "pending",
    "running",
    "shutting-down",
    "terminated",
    "stopping",
    "stopped",
];

/// One entry of `GetImageAncestry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AncestryEntry {
    pub image_id: String,
    pub creation_ms: i64,
    pub owner_alias: Option<String>,
    pub source_image_id: Option<String>,
    pub source_image_region: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceTypeOption {
    pub option_name: Option<String>,
    pub option_values: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceTypeRequest {
    pub resource_type: Option<String>,
    pub options: Vec<ResourceTypeOption>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DescribeImageReferencesInput {
    pub image_ids: Vec<String>,
    pub include_all_resource_types: bool,
    pub resource_types: Vec<ResourceTypeRequest>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    pub image_id: String,
    pub resource_type: String,
    pub arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeImageReferencesOutput {
    pub references: Vec<ImageReference>,
    pub next_token: Option<String>,
}

/// `ms` plus `years` calendar years (29 February lands on 28 February).
fn add_years(ms: i64, years: i32) -> i64 {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms;
    };
    let year = at.year() + years;
    let moved = at
        .replace_year(year)
        .or_else(|_| at.replace_day(28).and_then(|at| at.replace_year(year)));
    match moved {
        Ok(moved) => i64::try_from(moved.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
        Err(_) => i64::MAX,
    }
}

/// Rounds to the nearest whole minute; exactly 30 seconds rounds up.
pub fn round_to_minute(ms: i64) -> i64 {
    const MINUTE: i64 = 60_000;
    let floor = ms.div_euclid(MINUTE) * MINUTE;
    if ms - floor >= MINUTE / 2 {
        floor + MINUTE
    } else {
        floor
    }
}

impl Hangar {
    /// The partition `region` lies in, seen from this deployment: its own
    /// regions are in the configured partition, any other region in the one
    /// its name says.
    fn partition_of_region(&self, region: &str) -> String {
        if self.settings.regions.iter().any(|known| known == region) {
            self.settings.partition.clone()
        } else {
            crate::regions::partition_of(region).to_string()
        }
    }

    /// `GetImageAncestry`: the image, then each parent by `sourceImageId`,
    /// across regions. The requested image must be visible to the caller;
    /// ancestors are followed whoever owns them (entries show only IDs,
    /// dates and pointers) and also when deregistered (their records are
    /// kept). The walk stops at a verified provider's image (included), an
    /// image without a recorded parent, a parent in another partition or
    /// whose record is absent, a parent already seen, or 50 entries.
    pub async fn get_image_ancestry(
        &self,
        caller: &Caller,
        image_id: &str,
        dry_run: bool,
    ) -> Result<Vec<AncestryEntry>> {
        if !ids::is_well_formed(ids::IMAGE, image_id) {
            return Err(Error::MalformedImageId(image_id.to_string()));
        }
        let now = self.clock.now_ms();
        let visible_deregistered = |image: &Image| {
            image.state != ImageState::Deregistered
                || image
                    .deregistered_ms
                    .is_some_and(|at| now - at < self.settings.deregistered_visible_ms)
        };
        let image = self
            .store
            .get_image(image_id)
            .await?
            .filter(|image| Self::can_see(caller, image) && visible_deregistered(image))
            .ok_or_else(|| Error::ImageNotFound(vec![image_id.to_string()]))?;
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let mut entries = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut current = image;
        loop {
            seen.insert(current.image_id.clone());
            let stop_here = current
                .owner_alias
                .as_deref()
                .is_some_and(|alias| ANCESTRY_ROOT_ALIASES.contains(&alias));
            let parent = match (&current.source_image_id, &current.source_image_region) {
                (Some(id), Some(region)) => Some((id.clone(), region.clone())),
                _ => None,
            };
            entries.push(AncestryEntry {
                image_id: current.image_id,
                creation_ms: current.creation_ms,
                owner_alias: current.owner_alias,
                source_image_id: current.source_image_id,
                source_image_region: current.source_image_region,
            });
            if stop_here || entries.len() >= MAX_ANCESTRY_ENTRIES {
                break;
            }
            let Some((parent_id, parent_region)) = parent else {
                break;
            };
            if self.partition_of_region(&parent_region) != self.settings.partition
                || seen.contains(&parent_id)
            {
                break;
            }
            match self.store.get_image(&parent_id).await? {
                Some(parent) => current = parent,
                None => break,
            }
        }
        Ok(entries)
    }

    /// `EnableImageDeprecation`: owner only. `DeprecateAt` is rounded to
    /// the nearest minute; it may not be in the past nor more than 10 years
    /// ahead, and for a public image not later than 2 years after creation.
    pub async fn enable_image_deprecation(
        &self,
        caller: &Caller,
        image_id: &str,
        deprecate_at: &str,
        dry_run: bool,
    ) -> Result<()> {
        let requested = crate::timefmt::parse_iso(deprecate_at).ok_or_else(|| {
            Error::invalid_value(
                "DeprecateAt",
                deprecate_at,
                "Expected an ISO 8601 timestamp such as 2030-01-01T00:00:00Z.",
            )
        })?;
        let now = self.clock.now_ms();
        if requested < now {
            return Err(Error::invalid_value(
                "DeprecateAt",
                deprecate_at,
                "The deprecation time cannot be in the past.",
            ));
        }
        let at = round_to_minute(requested);
        if at > add_years(now, 10) {
            return Err(Error::invalid_value(
                "DeprecateAt",
                deprecate_at,
                "The deprecation time cannot be more than 10 years from now.",
            ));
        }
        let check = |image: &Image| -> Result<()> {
            if image.is_public() && at > add_years(image.creation_ms, 2) {
                return Err(Error::invalid_value(
                    "DeprecateAt",
                    deprecate_at,
                    "The deprecation time of a public image cannot be more than 2 years after its creation date. Make the image private first.",
                ));
            }
            Ok(())
        };
        if dry_run {
            check(&self.owned_image(caller, image_id).await?)?;
            return Err(Error::DryRunOperation);
        }
        self.update_owned_image(caller, image_id, |image| {
            check(image)?;
            image.deprecation_ms = Some(at);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// `DisableImageDeprecation`: owner only; clears the deprecation time.
    pub async fn disable_image_deprecation(
        &self,
        caller: &Caller,
        image_id: &str,
        dry_run: bool,
    ) -> Result<()> {
        if dry_run {
            self.owned_image(caller, image_id).await?;
            return Err(Error::DryRunOperation);
        }
        self.update_owned_image(caller, image_id, |image| {
            image.deprecation_ms = None;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// `EnableImageDeregistrationProtection`: owner only; answers the new
    /// state string. Turning it on again ends a running cooldown.
    pub async fn enable_image_deregistration_protection(
        &self,
        caller: &Caller,
        image_id: &str,
        with_cooldown: bool,
        dry_run: bool,
    ) -> Result<String> {
        if dry_run {
            self.owned_image(caller, image_id).await?;
            return Err(Error::DryRunOperation);
        }
        let image = self
            .update_owned_image(caller, image_id, |image| {
                image.deregistration_protection = DeregistrationProtection {
                    enabled: true,
                    with_cooldown,
                    cooldown_until: None,
                };
                Ok(())
            })
            .await?;
        Ok(protection_state(
            &image.deregistration_protection,
            self.clock.now_ms(),
        ))
    }

    /// `DisableImageDeregistrationProtection`: owner only. Protection that
    /// was on with cooldown stays in force for 24 hours
    /// (`disabled-with-cooldown`); otherwise it ends at once.
    pub async fn disable_image_deregistration_protection(
        &self,
        caller: &Caller,
        image_id: &str,
        dry_run: bool,
    ) -> Result<String> {
        if dry_run {
            self.owned_image(caller, image_id).await?;
            return Err(Error::DryRunOperation);
        }
        let now = self.clock.now_ms();
        let image = self
            .update_owned_image(caller, image_id, |image| {
                let protection = &mut image.deregistration_protection;
                if protection.enabled {
                    protection.cooldown_until = protection
                        .with_cooldown
                        .then_some(now + PROTECTION_COOLDOWN_MS);
                    protection.enabled = false;
                    protection.with_cooldown = false;
                }
                Ok(())
            })
            .await?;
        Ok(protection_state(&image.deregistration_protection, now))
    }

    /// Refuses deregistration while protection is on or cooling down.
    pub(crate) fn check_not_protected(image: &Image, now_ms: i64) -> Result<()> {
        let state = protection_state(&image.deregistration_protection, now_ms);
        if state == "disabled" {
            Ok(())
        } else {
            Err(Error::DeregistrationProtected {
                image_id: image.image_id.clone(),
                state,
            })
        }
    }

    /// `DisableImage`: owner only, from `available`. The image becomes
    /// `disabled` and loses every launch permission (public and shared).
    pub async fn disable_image(
        &self,
        caller: &Caller,
        image_id: &str,
        dry_run: bool,
    ) -> Result<()> {
        self.switch_image_state(
            caller,
            image_id,
            dry_run,
            ImageState::Available,
            ImageState::Disabled,
        )
        .await
    }

    /// `EnableImage`: owner only, from `disabled`. The image is `available`
    /// again; the sharing it lost is not restored.
    pub async fn enable_image(&self, caller: &Caller, image_id: &str, dry_run: bool) -> Result<()> {
        self.switch_image_state(
            caller,
            image_id,
            dry_run,
            ImageState::Disabled,
            ImageState::Available,
        )
        .await
    }

    /// Moves an owned image from state `from` to `to` (`IncorrectState`
    /// from any other); disabling drops every launch permission.
    async fn switch_image_state(
        &self,
        caller: &Caller,
        image_id: &str,
        dry_run: bool,
        from: ImageState,
        to: ImageState,
    ) -> Result<()> {
        let check = |image: &Image| -> Result<()> {
            if image.state != from {
                return Err(Error::IncorrectImageState {
                    image_id: image.image_id.clone(),
                    state: image.state.as_str().into(),
                });
            }
            Ok(())
        };
        if dry_run {
            check(&self.owned_image(caller, image_id).await?)?;
            return Err(Error::DryRunOperation);
        }
        self.update_owned_image(caller, image_id, |image| {
            check(image)?;
            image.state = to;
            if to == ImageState::Disabled {
                image.launch_permissions.clear();
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// `DescribeImageReferences`: the caller's own resources that use the
    /// given images. Hangar has instances only, so other resource types
    /// contribute nothing.
    pub async fn describe_image_references(
        &self,
        caller: &Caller,
        input: DescribeImageReferencesInput,
        dry_run: bool,
    ) -> Result<DescribeImageReferencesOutput> {
        if input.image_ids.is_empty() {
            return Err(Error::MissingParameter("ImageId".into()));
        }
        if input.image_ids.len() > MAX_REFERENCE_IMAGE_IDS {
            return Err(Error::InvalidParameterValue(format!(
                "Value ({}) for parameter ImageId is invalid. At most {MAX_REFERENCE_IMAGE_IDS} image IDs may be given.",
                input.image_ids.len()
            )));
        }
        let max_results = page::check_max_results(input.max_results, 5, 1000)?;
        if !input.include_all_resource_types && input.resource_types.is_empty() {
            return Err(Error::MissingParameter(
                "ResourceType or IncludeAllResourceTypes".into(),
            ));
        }
        let mut include_instances = input.include_all_resource_types;
        let mut state_names: Option<Vec<String>> = None;
        for request in &input.resource_types {
            let resource_type = request
                .resource_type
                .as_deref()
                .ok_or_else(|| Error::MissingParameter("ResourceType.N.ResourceType".into()))?;
            if !REFERENCE_RESOURCE_TYPES.contains(&resource_type) {
                return Err(Error::invalid_value(
                    "ResourceType",
                    resource_type,
                    &format!("Expected one of: {}.", REFERENCE_RESOURCE_TYPES.join(", ")),
                ));
            }
            for option in &request.options {
                let name = option.option_name.as_deref().ok_or_else(|| {
                    Error::MissingParameter("ResourceType.N.ResourceTypeOption.M.OptionName".into())
                })?;
                match (name, resource_type) {
                    ("state-name", "ec2:Instance") => {
                        for value in &option.option_values {
                            if !INSTANCE_STATE_NAMES.contains(&value.as_str()) {
                                return Err(Error::invalid_value(
                                    "state-name",
                                    value,
                                    &format!(
                                        "Expected one of: {}.",
                                        INSTANCE_STATE_NAMES.join(", ")
                                    ),
                                ));
                            }
                        }
                        state_names
                            .get_or_insert_with(Vec::new)
                            .extend(option.option_values.iter().cloned());
                    }
                    ("version-depth", "ec2:LaunchTemplate") => {
                        for value in &option.option_values {
                            if !value
                                .parse::<i64>()
                                .is_ok_and(|depth| (1..=10_000).contains(&depth))
                            {
                                return Err(Error::invalid_value(
                                    "version-depth",
                                    value,
                                    "Expected an integer from 1 to 10000.",
                                ));
                            }
                        }
                    }
                    ("state-name" | "version-depth", _) => {
                        return Err(Error::InvalidParameterCombination(format!(
                            "The option {name} does not apply to resource type {resource_type}."
                        )));
                    }
                    (other, _) => {
                        return Err(Error::invalid_value(
                            "OptionName",
                            other,
                            "Expected state-name or version-depth.",
                        ));
                    }
                }
            }
            include_instances |= resource_type == "ec2:Instance";
        }
        let mut image_ids = input.image_ids.clone();
        image_ids.sort();
        image_ids.dedup();
        for image_id in &image_ids {
            if !ids::is_well_formed(ids::IMAGE, image_id) {
                return Err(Error::MalformedImageId(image_id.clone()));
            }
        }
        let found = self.store.get_images(&image_ids).await?;
        let missing: Vec<String> = image_ids
            .iter()
            .filter(|id| {
                !found
                    .iter()
                    .any(|image| &image.image_id == *id && Self::can_see(caller, image))
            })
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Error::ImageNotFound(missing));
        }
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let now = self.clock.now_ms();
        let mut keyed: Vec<(String, ImageReference)> = Vec::new();
        if include_instances {
            let instances = self
                .store
                .list_instances(&crate::repo::RecordQuery {
                    region: Some(caller.region.clone()),
                    owner_ids: Some(vec![caller.account_id.clone()]),
                })
                .await?;
            for instance in instances {
                if instance.owner_id != caller.account_id || !image_ids.contains(&instance.image_id)
                {
                    continue;
                }
                let state = instance.state_at(now).as_str();
                if state_names
                    .as_ref()
                    .is_some_and(|names| !names.iter().any(|name| name == state))
                {
                    continue;
                }
                keyed.push((
                    format!("{}/{}", instance.image_id, instance.instance_id),
                    ImageReference {
                        arn: format!(
                            "arn:{}:ec2:{}:{}:instance/{}",
                            self.settings.partition,
                            instance.region,
                            instance.owner_id,
                            instance.instance_id
                        ),
                        image_id: instance.image_id,
                        resource_type: "ec2:Instance".into(),
                    },
                ));
            }
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let (page, next_token) = page::paginate(
            keyed,
            "DescribeImageReferences",
            input.next_token.as_deref(),
            max_results,
            |(key, _)| key.as_str(),
        )?;
        Ok(DescribeImageReferencesOutput {
            references: page.into_iter().map(|(_, reference)| reference).collect(),
            next_token,
        })
    }
}

#[cfg(test)]
mod retire_tests {
    use super::*;

    #[test]
    fn rounding_to_the_minute() {
        let minute = 1_764_504_000_000; // 2025-11-30T12:00:00Z
        assert_eq!(round_to_minute(minute), minute);
        assert_eq!(round_to_minute(minute + 29_999), minute);
        assert_eq!(round_to_minute(minute + 30_000), minute + 60_000);
        assert_eq!(round_to_minute(minute - 1), minute);
    }

    #[test]
    fn calendar_years() {
        let at = crate::timefmt::parse_iso("2024-02-29T10:00:00Z").unwrap();
        assert_eq!(
            crate::timefmt::iso_millis(add_years(at, 2)),
            "2026-02-28T10:00:00.000Z"
        );
        let at = crate::timefmt::parse_iso("2025-11-30T12:00:00Z").unwrap();
        assert_eq!(
            crate::timefmt::iso_millis(add_years(at, 10)),
            "2035-11-30T12:00:00.000Z"
        );
    }
}
