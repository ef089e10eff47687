//! The starter catalogue: a few public images owned by the `amazon` alias in
//! every region, named like the real ones, so a newcomer can run
//! `describe-images --owners amazon` right after start. IDs are derived from
//! the region and the image's slug, so they are stable across restarts.

use crate::ids;
use crate::model::{
    BlockDeviceMapping, DeregistrationProtection, EbsBlockDevice, Image, ImageState,
    LaunchPermission, Snapshot, SnapshotState,
};

/// The account AWS publishes Amazon-owned images from.
pub const AMAZON_OWNER_ID: &str = "137112412989";
pub const AMAZON_ALIAS: &str = "amazon";

struct Entry {
    slug: &'static str,
    name: &'static str,
    description: &'static str,
    architecture: &'static str,
    boot_mode: &'static str,
    root_size_gib: i64,
}

const ENTRIES: &[Entry] = &[
    Entry {
        slug: "al2023-x86_64",
        name: "al2023-ami-2023.6.20241121.0-kernel-6.1-x86_64",
        description: "Amazon Linux 2023 AMI 2023.6.20241121.0 x86_64 HVM kernel-6.1",
        architecture: "x86_64",
        boot_mode: "uefi-preferred",
        root_size_gib: 8,
    },
    Entry {
        slug: "al2023-arm64",
        name: "al2023-ami-2023.6.20241121.0-kernel-6.1-arm64",
        description: "Amazon Linux 2023 AMI 2023.6.20241121.0 arm64 HVM kernel-6.1",
        architecture: "arm64",
        boot_mode: "uefi",
        root_size_gib: 8,
    },
    Entry {
        slug: "ubuntu-2404-x86_64",
        name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20241119",
        description: "Canonical, Ubuntu, 24.04, amd64 noble image",
        architecture: "x86_64",
        boot_mode: "uefi-preferred",
        root_size_gib: 8,
    },
    Entry {
        slug: "ubuntu-2404-arm64",
        name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20241119",
        description: "Canonical, Ubuntu, 24.04, arm64 noble image",
        architecture: "arm64",
        boot_mode: "uefi",
        root_size_gib: 8,
    },
];

/// 2024-11-21T00:00:00Z: a fixed creation date, so the records never change.
const CREATED_MS: i64 = 1_732_147_200_000;

pub fn images_for(region: &str) -> Vec<Image> {
    ENTRIES
        .iter()
        .map(|entry| {
            let seed = format!("{region}/{}", entry.slug);
            Image {
                image_id: ids::derived(ids::IMAGE, &seed),
                region: region.to_string(),
                owner_id: AMAZON_OWNER_ID.to_string(),
                owner_alias: Some(AMAZON_ALIAS.to_string()),
                name: entry.name.to_string(),
                description: Some(entry.description.to_string()),
                image_location: format!("{AMAZON_ALIAS}/{}", entry.name),
                image_type: "machine".into(),
                architecture: entry.architecture.into(),
                virtualization_type: "hvm".into(),
                hypervisor: "xen".into(),
                platform: None,
                platform_details: "Linux/UNIX".into(),
                usage_operation: "RunInstances".into(),
                root_device_type: "ebs".into(),
                root_device_name: Some("/dev/xvda".into()),
                block_device_mappings: vec![BlockDeviceMapping {
                    device_name: "/dev/xvda".into(),
                    virtual_name: None,
                    ebs: Some(EbsBlockDevice {
                        snapshot_id: Some(root_snapshot_id(region, entry.slug)),
                        volume_size: Some(entry.root_size_gib),
                        volume_type: Some("gp3".into()),
                        delete_on_termination: Some(true),
                        iops: Some(3000),
                        throughput: Some(125),
                        encrypted: Some(false),
                        kms_key_id: None,
                    }),
                    no_device: false,
                }],
                boot_mode: Some(entry.boot_mode.into()),
                ena_support: Some(true),
                sriov_net_support: Some("simple".into()),
                tpm_support: None,
                imds_support: Some("v2.0".into()),
                uefi_data: None,
                kernel_id: None,
                ramdisk_id: None,
                state: ImageState::Available,
                state_reason: None,
                creation_ms: CREATED_MS,
                launch_permissions: vec![LaunchPermission::GroupAll],
                tags: Vec::new(),
                source_image_id: None,
                source_image_region: None,
                source_instance_id: None,
                // No deprecation time: the catalogue must stay listable for everyone
                // whatever the date (AWS's own images get creation + 2 years).
                deprecation_ms: None,
                deregistration_protection: DeregistrationProtection::default(),
                last_launched_ms: None,
                launch_history_ms: Vec::new(),
                deregistered_ms: None,
                revision: 0,
            }
        })
        .collect()
}

fn root_snapshot_id(region: &str, slug: &str) -> String {
    ids::derived(ids::SNAPSHOT, &format!("{region}/{slug}/root"))
}

/// The root snapshots of the catalogue images: public, completed, and empty
/// (all zeros), so the images launch and their volumes read as blank disks.
pub fn snapshots_for(region: &str) -> Vec<Snapshot> {
    ENTRIES
        .iter()
        .map(|entry| Snapshot {
            snapshot_id: root_snapshot_id(region, entry.slug),
            region: region.to_string(),
            owner_id: AMAZON_OWNER_ID.to_string(),
            owner_alias: Some(AMAZON_ALIAS.to_string()),
            volume_id: "vol-ffffffff".into(),
            volume_size_gib: entry.root_size_gib,
            state: SnapshotState::Completed,
            state_message: None,
            progress: 100,
            start_ms: CREATED_MS,
            completion_ms: Some(CREATED_MS),
            description: Some(format!("Root volume of {}", entry.name)),
            encrypted: false,
            kms_key_id: None,
            tags: Vec::new(),
            parent_snapshot_id: None,
            source_snapshot_id: None,
            source_region: None,
            client_token: None,
            timeout_ms: None,
            create_volume_permissions: vec!["all".into()],
            revision: 0,
        })
        .collect()
}
