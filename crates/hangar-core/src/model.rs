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
    pub last_launched_ms: Option<EpochMillis>,
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
