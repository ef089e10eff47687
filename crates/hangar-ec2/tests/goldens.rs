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
