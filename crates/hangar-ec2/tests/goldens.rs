//! Golden tests: every response shape and the error envelope, pinned as XML
//! text. A change to any of them must be deliberate: regenerate with
//! `UPDATE_GOLDENS=1 cargo test -p hangar-ec2 --test goldens` and review the diff.

use std::path::PathBuf;

use hangar_core::Error;
use hangar_core::catalog;
use hangar_core::images::{
    DeleteSnapshotResult, DescribeImagesOutput, DescribeTagsOutput, ImageAttribute,
    ImageAttributeValue, TagDescription,
};
use hangar_core::model::{LaunchPermission, StateReason, Tag};
use hangar_core::regions::{RegionInfo, ZoneInfo};
use hangar_ec2::error::{ProtocolError, WireError};
use hangar_ec2::render::{Reply, render};

const REQUEST_ID: &str = "5e0e3ff3-0000-4000-8000-000000000001";

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/goldens")
        .join(format!("{name}.xml"));
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing golden {}; run with UPDATE_GOLDENS=1",
            path.display()
        )
    });
    assert_eq!(actual, expected, "golden {name} differs");
}

fn sample_image() -> hangar_core::model::Image {
    let mut image = catalog::images_for("us-east-1").remove(0);
    image.tags = vec![Tag {
        key: "team".into(),
        value: "a&b <c>".into(),
    }];
    image.source_image_id = Some("ami-0123456789abcdef0".into());
    image.source_image_region = Some("us-west-2".into());
    image.deprecation_ms = Some(1_893_456_000_000);
    image.last_launched_ms = Some(1_739_823_739_000);
    image
}

#[test]
fn register_image() {
    check(
        "RegisterImage",
        &render(
            "RegisterImage",
            REQUEST_ID,
            &Reply::ImageId("ami-0123456789abcdef0".into()),
        ),
    );
}

#[test]
fn describe_images() {
    let mut failed = sample_image();
    failed.state_reason = Some(StateReason {
        code: "Client.InvalidSnapshot.NotFound".into(),
        message: "snapshot is gone".into(),
    });
    let output = DescribeImagesOutput {
        images: vec![sample_image(), failed],
        next_token: Some("token-1".into()),
        as_of_ms: 1_764_504_000_000,
    };
    check(
        "DescribeImages",
        &render("DescribeImages", REQUEST_ID, &Reply::Images(output)),
    );
    let empty = DescribeImagesOutput {
        images: vec![],
        next_token: None,
        as_of_ms: 0,
    };
    check(
        "DescribeImages-empty",
        &render("DescribeImages", REQUEST_ID, &Reply::Images(empty)),
    );
}

#[test]
fn describe_image_attribute() {
    let permissions = ImageAttribute {
        image_id: "ami-0123456789abcdef0".into(),
        value: ImageAttributeValue::LaunchPermission(vec![
            LaunchPermission::UserId("222222222222".into()),
            LaunchPermission::GroupAll,
            LaunchPermission::OrganizationArn(
                "arn:aws:organizations::111111111111:organization/o-abc".into(),
            ),
        ]),
    };
    check(
        "DescribeImageAttribute-launchPermission",
        &render(
            "DescribeImageAttribute",
            REQUEST_ID,
            &Reply::ImageAttribute(permissions),
        ),
    );
    let description = ImageAttribute {
        image_id: "ami-0123456789abcdef0".into(),
        value: ImageAttributeValue::Description(Some("my image".into())),
    };
    check(
        "DescribeImageAttribute-description",
        &render(
            "DescribeImageAttribute",
            REQUEST_ID,
            &Reply::ImageAttribute(description),
        ),
    );
    let never_launched = ImageAttribute {
        image_id: "ami-0123456789abcdef0".into(),
        value: ImageAttributeValue::LastLaunchedTime(None),
    };
    check(
        "DescribeImageAttribute-lastLaunchedTime",
        &render(
            "DescribeImageAttribute",
            REQUEST_ID,
            &Reply::ImageAttribute(never_launched),
        ),
    );
}

#[test]
fn simple_returns() {
    check(
        "ModifyImageAttribute",
        &render("ModifyImageAttribute", REQUEST_ID, &Reply::Return(true)),
    );
    check(
        "DeregisterImage",
        &render("DeregisterImage", REQUEST_ID, &Reply::Deregistered(vec![])),
    );
    check(
        "DeregisterImage-snapshots",
        &render(
            "DeregisterImage",
            REQUEST_ID,
            &Reply::Deregistered(vec![DeleteSnapshotResult {
                snapshot_id: "snap-0123456789abcdef0".into(),
                return_code: "skipped".into(),
            }]),
        ),
    );
}

#[test]
fn describe_tags() {
    let output = DescribeTagsOutput {
        tags: vec![TagDescription {
            resource_id: "ami-0123456789abcdef0".into(),
            resource_type: "image".into(),
            key: "team".into(),
            value: "platform".into(),
        }],
        next_token: None,
    };
    check(
        "DescribeTags",
        &render("DescribeTags", REQUEST_ID, &Reply::Tags(output)),
    );
}

#[test]
fn regions_and_zones() {
    let regions = vec![RegionInfo {
        region_name: "us-east-1".into(),
        endpoint: "ec2.us-east-1.amazonaws.com".into(),
        opt_in_status: "opt-in-not-required".into(),
    }];
    check(
        "DescribeRegions",
        &render("DescribeRegions", REQUEST_ID, &Reply::Regions(regions)),
    );
    let zones = vec![ZoneInfo {
        zone_name: "us-east-1a".into(),
        zone_id: "use1-az1".into(),
        region_name: "us-east-1".into(),
        state: "available".into(),
        opt_in_status: "opt-in-not-required".into(),
        zone_type: "availability-zone".into(),
    }];
    check(
        "DescribeAvailabilityZones",
        &render(
            "DescribeAvailabilityZones",
            REQUEST_ID,
            &Reply::Zones(zones),
        ),
    );
}

#[test]
fn errors() {
    let cases: Vec<(&str, WireError)> = vec![
        (
            "error-InvalidAMIID.NotFound",
            WireError::from(&Error::ImageNotFound(vec!["ami-0123456789abcdef0".into()])),
        ),
        (
            "error-InvalidAMIID.Malformed",
            WireError::from(&Error::MalformedImageId("ami-x".into())),
        ),
        (
            "error-DryRunOperation",
            WireError::from(&Error::DryRunOperation),
        ),
        (
            "error-UnknownParameter",
            WireError::from(ProtocolError::UnknownParameter("Bogus".into())),
        ),
        (
            "error-InternalError",
            WireError::from(&Error::Internal("secret detail".into())),
        ),
    ];
    for (name, error) in cases {
        check(name, &error.render(REQUEST_ID));
    }
}

fn sample_snapshot() -> hangar_core::model::Snapshot {
    let mut snapshot = catalog::snapshots_for("us-east-1").remove(0);
    snapshot.tags = vec![Tag {
        key: "Name".into(),
        value: "root".into(),
    }];
    snapshot
}

fn sample_instance() -> hangar_core::model::Instance {
    use hangar_core::model::{Instance, InstanceBlockDevice, InstanceState};
    Instance {
        instance_id: "i-0123456789abcdef0".into(),
        region: "us-east-1".into(),
        owner_id: "111111111111".into(),
        reservation_id: "r-0123456789abcdef0".into(),
        image_id: "ami-0123456789abcdef0".into(),
        instance_type: "t3.micro".into(),
        availability_zone: "us-east-1a".into(),
        architecture: "x86_64".into(),
        virtualization_type: "hvm".into(),
        hypervisor: "xen".into(),
        platform_details: "Linux/UNIX".into(),
        root_device_name: Some("/dev/xvda".into()),
        root_device_type: "ebs".into(),
        block_devices: vec![InstanceBlockDevice {
            device_name: "/dev/xvda".into(),
            volume_id: "vol-0123456789abcdef0".into(),
            delete_on_termination: true,
            attach_ms: 1_764_504_000_000,
        }],
        state: InstanceState::Pending,
        settles_to: Some(InstanceState::Running),
        settles_at_ms: Some(1_764_504_001_000),
        state_reason: None,
        state_transition_reason: String::new(),
        launch_ms: 1_764_504_000_000,
        ami_launch_index: 0,
        private_ip_address: "10.0.0.10".into(),
        client_token: None,
        tags: vec![Tag {
            key: "Name".into(),
            value: "web".into(),
        }],
        revision: 0,
    }
}

#[test]
fn snapshots_and_volumes() {
    use hangar_core::instances::DescribeVolumesOutput;
    use hangar_core::model::{Volume, VolumeAttachment, VolumeState};
    use hangar_core::snapshots::DescribeSnapshotsOutput;
    let output = DescribeSnapshotsOutput {
        snapshots: vec![sample_snapshot()],
        next_token: None,
    };
    check(
        "DescribeSnapshots",
        &render("DescribeSnapshots", REQUEST_ID, &Reply::Snapshots(output)),
    );
    check(
        "CreateSnapshot",
        &render(
            "CreateSnapshot",
            REQUEST_ID,
            &Reply::Snapshot(Box::new(sample_snapshot())),
        ),
    );
    check(
        "CopySnapshot",
        &render(
            "CopySnapshot",
            REQUEST_ID,
            &Reply::CopiedSnapshot {
                snapshot_id: "snap-0123456789abcdef0".into(),
                tags: vec![],
            },
        ),
    );
    let volume = Volume {
        volume_id: "vol-0123456789abcdef0".into(),
        region: "us-east-1".into(),
        owner_id: "111111111111".into(),
        availability_zone: "us-east-1a".into(),
        size_gib: 8,
        snapshot_id: Some("snap-0123456789abcdef0".into()),
        volume_type: "gp3".into(),
        iops: Some(3000),
        throughput: Some(125),
        encrypted: false,
        kms_key_id: None,
        state: VolumeState::InUse,
        create_ms: 1_764_504_000_000,
        attachment: Some(VolumeAttachment {
            instance_id: "i-0123456789abcdef0".into(),
            device: "/dev/xvda".into(),
            attach_ms: 1_764_504_000_000,
            delete_on_termination: true,
        }),
        tags: vec![],
        revision: 0,
    };
    let output = DescribeVolumesOutput {
        volumes: vec![volume],
        next_token: Some("next".into()),
    };
    check(
        "DescribeVolumes",
        &render("DescribeVolumes", REQUEST_ID, &Reply::Volumes(output)),
    );
}

#[test]
fn instances() {
    use hangar_core::instances::{DescribeInstancesOutput, Reservation, StateChange};
    use hangar_core::model::InstanceState;
    let reservation = Reservation {
        reservation_id: "r-0123456789abcdef0".into(),
        owner_id: "111111111111".into(),
        instances: vec![sample_instance()],
        as_of_ms: 1_764_504_000_500,
    };
    check(
        "RunInstances",
        &render(
            "RunInstances",
            REQUEST_ID,
            &Reply::Reservation(reservation.clone()),
        ),
    );
    let mut settled = reservation;
    settled.as_of_ms = 1_764_504_002_000;
    let output = DescribeInstancesOutput {
        reservations: vec![settled],
        next_token: None,
    };
    check(
        "DescribeInstances",
        &render(
            "DescribeInstances",
            REQUEST_ID,
            &Reply::Reservations(output),
        ),
    );
    let changes = vec![StateChange {
        instance_id: "i-0123456789abcdef0".into(),
        previous: InstanceState::Running,
        current: InstanceState::ShuttingDown,
    }];
    check(
        "TerminateInstances",
        &render(
            "TerminateInstances",
            REQUEST_ID,
            &Reply::StateChanges(changes),
        ),
    );
}

#[test]
fn store_and_restore() {
    use hangar_core::store::{DescribeStoreImageTasksOutput, StoreImageTaskResult};
    check(
        "CreateStoreImageTask",
        &render(
            "CreateStoreImageTask",
            REQUEST_ID,
            &Reply::ObjectKey("path1/path2/ami-0123456789abcdef0.bin".into()),
        ),
    );
    check(
        "CreateRestoreImageTask",
        &render(
            "CreateRestoreImageTask",
            REQUEST_ID,
            &Reply::ImageId("ami-0fedcba9876543210".into()),
        ),
    );
    let output = DescribeStoreImageTasksOutput {
        results: vec![
            StoreImageTaskResult {
                ami_id: "ami-0123456789abcdef0".into(),
                task_start_ms: 1_609_462_861_001,
                bucket: "my-ami-bucket".into(),
                object_key: "ami-0123456789abcdef0.bin".into(),
                progress_percentage: 17,
                state: "InProgress",
                failure_reason: None,
            },
            StoreImageTaskResult {
                ami_id: "ami-0fedcba9876543210".into(),
                task_start_ms: 1_609_462_800_000,
                bucket: "my-ami-bucket".into(),
                object_key: "p/ami-0fedcba9876543210.bin".into(),
                progress_percentage: 0,
                state: "Failed",
                failure_reason: Some("The snapshot snap-0123456789abcdef0 <gone>".into()),
            },
        ],
        next_token: Some("token-2".into()),
    };
    check(
        "DescribeStoreImageTasks",
        &render(
            "DescribeStoreImageTasks",
            REQUEST_ID,
            &Reply::StoreImageTasks(output),
        ),
    );
    let empty = DescribeStoreImageTasksOutput {
        results: vec![],
        next_token: None,
    };
    check(
        "DescribeStoreImageTasks-empty",
        &render(
            "DescribeStoreImageTasks",
            REQUEST_ID,
            &Reply::StoreImageTasks(empty),
        ),
    );
    check(
        "error-ResourceLimitExceeded",
        &WireError::from(&Error::ResourceLimitExceeded(
            "Storing ami-0123456789abcdef0 (8 GiB) would bring the account's store tasks in progress to 1208 GiB, over the limit of 1200 GiB".into(),
        ))
        .render(REQUEST_ID),
    );
}

#[test]
fn provenance_and_retirement() {
    use hangar_core::images::{AncestryEntry, DescribeImageReferencesOutput, ImageReference};
    let entries = vec![
        AncestryEntry {
            image_id: "ami-0fedcba9876543210".into(),
            creation_ms: 1_737_139_070_123,
            owner_alias: None,
            source_image_id: Some("ami-0123456789abcdef0".into()),
            source_image_region: Some("us-east-1".into()),
        },
        AncestryEntry {
            image_id: "ami-0123456789abcdef0".into(),
            creation_ms: 1_609_462_800_000,
            owner_alias: Some("amazon".into()),
            source_image_id: None,
            source_image_region: None,
        },
    ];
    check(
        "GetImageAncestry",
        &render("GetImageAncestry", REQUEST_ID, &Reply::Ancestry(entries)),
    );
    check(
        "EnableImageDeregistrationProtection",
        &render(
            "EnableImageDeregistrationProtection",
            REQUEST_ID,
            &Reply::ReturnText("enabled-with-cooldown".into()),
        ),
    );
    let references = DescribeImageReferencesOutput {
        references: vec![ImageReference {
            image_id: "ami-0123456789abcdef0".into(),
            resource_type: "ec2:Instance".into(),
            arn: "arn:aws:ec2:us-east-1:111111111111:instance/i-0123456789abcdef0".into(),
        }],
        next_token: Some("token-3".into()),
    };
    check(
        "DescribeImageReferences",
        &render(
            "DescribeImageReferences",
            REQUEST_ID,
            &Reply::ImageReferences(references),
        ),
    );
    let empty = DescribeImageReferencesOutput {
        references: vec![],
        next_token: None,
    };
    check(
        "DescribeImageReferences-empty",
        &render(
            "DescribeImageReferences",
            REQUEST_ID,
            &Reply::ImageReferences(empty),
        ),
    );
    let protected = WireError::from(&Error::DeregistrationProtected {
        image_id: "ami-0123456789abcdef0".into(),
        state: "disabled-with-cooldown".into(),
    });
    assert_eq!(protected.status, 400);
    check("error-OperationNotPermitted", &protected.render(REQUEST_ID));
}
