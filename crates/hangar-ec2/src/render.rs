//! Domain results as EC2 XML. One function per response shape; element names
//! are the `locationName`s of botocore's EC2 model.

use hangar_core::images::{
    AncestryEntry, DeleteSnapshotResult, DescribeImageReferencesOutput, DescribeImagesOutput,
    DescribeTagsOutput, ImageAttribute, ImageAttributeValue,
};
use hangar_core::instances::{
    DescribeInstancesOutput, DescribeVolumesOutput, Reservation, StateChange,
};
use hangar_core::model::{
    BlockDeviceMapping, Image, Instance, InstanceState, LaunchPermission, Snapshot, Tag, Volume,
};
use hangar_core::regions::{RegionInfo, ZoneInfo};
use hangar_core::snapshots::DescribeSnapshotsOutput;
use hangar_core::store::DescribeStoreImageTasksOutput;
use hangar_core::timefmt::{iso_millis, iso_seconds};

use crate::xml::XmlWriter;

/// What a handled action produced, before it is written as XML.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    ImageId(String),
    Images(DescribeImagesOutput),
    ImageAttribute(ImageAttribute),
    Return(bool),
    Deregistered(Vec<DeleteSnapshotResult>),
    Tags(DescribeTagsOutput),
    Regions(Vec<RegionInfo>),
    Zones(Vec<ZoneInfo>),
    Snapshots(DescribeSnapshotsOutput),
    /// `CreateSnapshot` answers with the snapshot's fields at the top level.
    Snapshot(Box<Snapshot>),
    /// `CopySnapshot`: the new ID and its tags.
    CopiedSnapshot {
        snapshot_id: String,
        tags: Vec<Tag>,
    },
    Volumes(DescribeVolumesOutput),
    /// `RunInstances` answers with the reservation's fields at the top level.
    Reservation(Reservation),
    Reservations(DescribeInstancesOutput),
    StateChanges(Vec<StateChange>),
    /// `CreateStoreImageTask`: the key the object will have.
    ObjectKey(String),
    StoreImageTasks(DescribeStoreImageTasksOutput),
    /// A `return` that is a string, not a boolean (deregistration
    /// protection answers its new state).
    ReturnText(String),
    /// `GetImageAncestry`: the image first, then its parents.
    Ancestry(Vec<AncestryEntry>),
    ImageReferences(DescribeImageReferencesOutput),
}

pub fn render(action: &str, request_id: &str, reply: &Reply) -> String {
    let mut xml = XmlWriter::response(action, request_id);
    match reply {
        Reply::ImageId(image_id) => {
            xml.text("imageId", image_id);
        }
        Reply::Images(output) => {
            xml.list("imagesSet", &output.images, |xml, image| {
                write_image(xml, image, output.as_of_ms)
            });
            xml.opt_text("nextToken", output.next_token.as_deref());
        }
        Reply::ImageAttribute(attribute) => write_image_attribute(&mut xml, attribute),
        Reply::Return(value) => {
            xml.bool("return", *value);
        }
        Reply::ReturnText(value) => {
            xml.text("return", value);
        }
        Reply::Ancestry(entries) => {
            xml.list("imageAncestryEntrySet", entries, |xml, entry| {
                xml.text("creationDate", &iso_millis(entry.creation_ms))
                    .text("imageId", &entry.image_id)
                    .opt_text("imageOwnerAlias", entry.owner_alias.as_deref())
                    .opt_text("sourceImageId", entry.source_image_id.as_deref())
                    .opt_text("sourceImageRegion", entry.source_image_region.as_deref());
            });
        }
        Reply::ImageReferences(output) => {
            xml.list("imageReferenceSet", &output.references, |xml, reference| {
                xml.text("imageId", &reference.image_id)
                    .text("resourceType", &reference.resource_type)
                    .text("arn", &reference.arn);
            });
            xml.opt_text("nextToken", output.next_token.as_deref());
        }
        Reply::Deregistered(results) => {
            xml.bool("return", true);
            if !results.is_empty() {
                xml.list("deleteSnapshotResultSet", results, |xml, result| {
                    xml.text("snapshotId", &result.snapshot_id)
                        .text("returnCode", &result.return_code);
                });
            }
        }
        Reply::Tags(output) => {
            xml.list("tagSet", &output.tags, |xml, tag| {
                xml.text("resourceId", &tag.resource_id)
                    .text("resourceType", &tag.resource_type)
                    .text("key", &tag.key)
                    .text("value", &tag.value);
            });
            xml.opt_text("nextToken", output.next_token.as_deref());
        }
        Reply::Regions(regions) => {
            xml.list("regionInfo", regions, |xml, region| {
                xml.text("regionName", &region.region_name)
                    .text("regionEndpoint", &region.endpoint)
                    .text("optInStatus", &region.opt_in_status);
            });
        }
        Reply::Zones(zones) => {
            xml.list("availabilityZoneInfo", zones, |xml, zone| {
                xml.text("zoneName", &zone.zone_name)
                    .text("zoneId", &zone.zone_id)
                    .text("zoneState", &zone.state)
                    .text("regionName", &zone.region_name)
                    .text("groupName", &zone.region_name)
                    .text("networkBorderGroup", &zone.region_name)
                    .text("optInStatus", &zone.opt_in_status)
                    .text("zoneType", &zone.zone_type)
                    .list::<String>("messageSet", &[], |_, _| {});
            });
        }
        Reply::Snapshots(output) => {
            xml.list("snapshotSet", &output.snapshots, write_snapshot);
            xml.opt_text("nextToken", output.next_token.as_deref());
        }
        Reply::Snapshot(snapshot) => write_snapshot(&mut xml, snapshot),
        Reply::CopiedSnapshot { snapshot_id, tags } => {
            xml.text("snapshotId", snapshot_id);
            write_tags(&mut xml, tags);
        }
        Reply::Volumes(output) => {
            xml.list("volumeSet", &output.volumes, write_volume);
            xml.opt_text("nextToken", output.next_token.as_deref());
        }
        Reply::Reservation(reservation) => write_reservation(&mut xml, reservation),
        Reply::Reservations(output) => {
            xml.list("reservationSet", &output.reservations, write_reservation);
            xml.opt_text("nextToken", output.next_token.as_deref());
        }
        Reply::StateChanges(changes) => {
            xml.list("instancesSet", changes, |xml, change| {
                xml.text("instanceId", &change.instance_id);
                write_state(xml, "currentState", change.current);
                write_state(xml, "previousState", change.previous);
            });
        }
        Reply::ObjectKey(object_key) => {
            xml.text("objectKey", object_key);
        }
        Reply::StoreImageTasks(output) => {
            xml.list("storeImageTaskResultSet", &output.results, |xml, result| {
                xml.text("amiId", &result.ami_id)
                    .text("taskStartTime", &iso_millis(result.task_start_ms))
                    .text("bucket", &result.bucket)
                    .text("s3objectKey", &result.object_key)
                    .text(
                        "progressPercentage",
                        &result.progress_percentage.to_string(),
                    )
                    .text("storeTaskState", result.state)
                    .opt_text("storeTaskFailureReason", result.failure_reason.as_deref());
            });
            xml.opt_text("nextToken", output.next_token.as_deref());
        }
    }
    xml.finish(action)
}

fn write_snapshot(xml: &mut XmlWriter, snapshot: &Snapshot) {
    xml.text("snapshotId", &snapshot.snapshot_id)
        .text("volumeId", &snapshot.volume_id)
        .text("status", snapshot.state.as_str())
        .opt_text("statusMessage", snapshot.state_message.as_deref())
        .text("startTime", &iso_millis(snapshot.start_ms))
        .text("progress", &format!("{}%", snapshot.progress))
        .text("ownerId", &snapshot.owner_id)
        .opt_text("ownerAlias", snapshot.owner_alias.as_deref())
        .text("description", snapshot.description.as_deref().unwrap_or(""))
        .text("volumeSize", &snapshot.volume_size_gib.to_string())
        .bool("encrypted", snapshot.encrypted)
        .opt_text("kmsKeyId", snapshot.kms_key_id.as_deref())
        .text("storageTier", "standard")
        .opt_text(
            "completionTime",
            snapshot.completion_ms.map(iso_millis).as_deref(),
        );
    write_tags(xml, &snapshot.tags);
}

fn write_volume(xml: &mut XmlWriter, volume: &Volume) {
    xml.text("volumeId", &volume.volume_id)
        .text("size", &volume.size_gib.to_string())
        .text("snapshotId", volume.snapshot_id.as_deref().unwrap_or(""))
        .text("availabilityZone", &volume.availability_zone)
        .text("status", volume.state.as_str())
        .text("createTime", &iso_millis(volume.create_ms))
        .list(
            "attachmentSet",
            volume.attachment.as_slice(),
            |xml, attachment| {
                xml.text("volumeId", &volume.volume_id)
                    .text("instanceId", &attachment.instance_id)
                    .text("device", &attachment.device)
                    .text("status", "attached")
                    .text("attachTime", &iso_millis(attachment.attach_ms))
                    .bool("deleteOnTermination", attachment.delete_on_termination);
            },
        )
        .text("volumeType", &volume.volume_type)
        .opt_int("iops", volume.iops)
        .opt_int("throughput", volume.throughput)
        .bool("encrypted", volume.encrypted)
        .bool("multiAttachEnabled", false);
    write_tags(xml, &volume.tags);
}

fn write_state(xml: &mut XmlWriter, name: &str, state: InstanceState) {
    xml.open(name)
        .text("code", &state.code().to_string())
        .text("name", state.as_str())
        .close(name);
}

fn write_reservation(xml: &mut XmlWriter, reservation: &Reservation) {
    xml.text("reservationId", &reservation.reservation_id)
        .text("ownerId", &reservation.owner_id)
        .list::<String>("groupSet", &[], |_, _| {})
        .list("instancesSet", &reservation.instances, |xml, instance| {
            write_instance(xml, instance, reservation.as_of_ms)
        });
}

fn write_instance(xml: &mut XmlWriter, instance: &Instance, now_ms: i64) {
    let state = instance.state_at(now_ms);
    xml.text("instanceId", &instance.instance_id)
        .text("imageId", &instance.image_id);
    write_state(xml, "instanceState", state);
    let private_dns = format!(
        "ip-{}.ec2.internal",
        instance.private_ip_address.replace('.', "-")
    );
    xml.text("privateDnsName", &private_dns)
        .text("dnsName", "")
        .text("reason", &instance.state_transition_reason)
        .text("amiLaunchIndex", &instance.ami_launch_index.to_string())
        .list::<String>("productCodes", &[], |_, _| {})
        .text("instanceType", &instance.instance_type)
        .text("launchTime", &iso_millis(instance.launch_ms))
        .open("placement")
        .text("availabilityZone", &instance.availability_zone)
        .text("groupName", "")
        .text("tenancy", "default")
        .close("placement")
        .open("monitoring")
        .text("state", "disabled")
        .close("monitoring")
        .text("privateIpAddress", &instance.private_ip_address)
        .list::<String>("groupSet", &[], |_, _| {})
        .text("architecture", &instance.architecture)
        .text("rootDeviceType", &instance.root_device_type)
        .opt_text("rootDeviceName", instance.root_device_name.as_deref())
        .list(
            "blockDeviceMapping",
            &instance.block_devices,
            |xml, device| {
                xml.text("deviceName", &device.device_name)
                    .open("ebs")
                    .text("volumeId", &device.volume_id)
                    .text(
                        "status",
                        if state == InstanceState::Terminated {
                            "detached"
                        } else {
                            "attached"
                        },
                    )
                    .text("attachTime", &iso_millis(device.attach_ms))
                    .bool("deleteOnTermination", device.delete_on_termination)
                    .close("ebs");
            },
        )
        .text("virtualizationType", &instance.virtualization_type)
        .opt_text("clientToken", instance.client_token.as_deref());
    write_tags(xml, &instance.tags);
    if let Some(reason) = &instance.state_reason {
        xml.open("stateReason")
            .text("code", &reason.code)
            .text("message", &reason.message)
            .close("stateReason");
    }
    xml.text("hypervisor", &instance.hypervisor)
        .list::<String>("networkInterfaceSet", &[], |_, _| {})
        .bool("ebsOptimized", false)
        .text("platformDetails", &instance.platform_details);
}

fn write_tags(xml: &mut XmlWriter, tags: &[Tag]) {
    xml.list("tagSet", tags, |xml, tag| {
        xml.text("key", &tag.key).text("value", &tag.value);
    });
}

fn write_mapping(xml: &mut XmlWriter, mapping: &BlockDeviceMapping) {
    xml.text("deviceName", &mapping.device_name)
        .opt_text("virtualName", mapping.virtual_name.as_deref());
    if let Some(ebs) = &mapping.ebs {
        xml.open("ebs")
            .opt_text("snapshotId", ebs.snapshot_id.as_deref())
            .opt_int("volumeSize", ebs.volume_size)
            .opt_bool("deleteOnTermination", ebs.delete_on_termination)
            .opt_text("volumeType", ebs.volume_type.as_deref())
            .opt_int("iops", ebs.iops)
            .opt_int("throughput", ebs.throughput)
            .opt_bool("encrypted", ebs.encrypted)
            .opt_text("kmsKeyId", ebs.kms_key_id.as_deref())
            .close("ebs");
    }
    if mapping.no_device {
        xml.text("noDevice", "");
    }
}

pub fn write_image(xml: &mut XmlWriter, image: &Image, now_ms: i64) {
    xml.text("imageId", &image.image_id)
        .text("imageLocation", &image.image_location)
        .text("imageState", image.state.as_str())
        .text("imageOwnerId", &image.owner_id)
        .text("creationDate", &iso_millis(image.creation_ms))
        .bool("isPublic", image.is_public())
        .text("architecture", &image.architecture)
        .text("imageType", &image.image_type)
        .opt_text("kernelId", image.kernel_id.as_deref())
        .opt_text("ramdiskId", image.ramdisk_id.as_deref())
        .opt_text("platform", image.platform.as_deref())
        .text("platformDetails", &image.platform_details)
        .text("usageOperation", &image.usage_operation)
        .opt_text("imageOwnerAlias", image.owner_alias.as_deref())
        .text("name", &image.name)
        .opt_text("description", image.description.as_deref())
        .text("rootDeviceType", &image.root_device_type)
        .opt_text("rootDeviceName", image.root_device_name.as_deref())
        .list(
            "blockDeviceMapping",
            &image.block_device_mappings,
            write_mapping,
        )
        .text("virtualizationType", &image.virtualization_type);
    write_tags(xml, &image.tags);
    xml.text("hypervisor", &image.hypervisor)
        .opt_bool("enaSupport", image.ena_support)
        .opt_text("sriovNetSupport", image.sriov_net_support.as_deref())
        .opt_text("bootMode", image.boot_mode.as_deref())
        .opt_text("tpmSupport", image.tpm_support.as_deref())
        .opt_text("uefiData", image.uefi_data.as_deref())
        .opt_text("imdsSupport", image.imds_support.as_deref());
    if let Some(reason) = &image.state_reason {
        xml.open("stateReason")
            .text("code", &reason.code)
            .text("message", &reason.message)
            .close("stateReason");
    }
    xml.opt_text(
        "deprecationTime",
        image.deprecation_ms.map(iso_millis).as_deref(),
    )
    .opt_text("sourceInstanceId", image.source_instance_id.as_deref())
    .text(
        "deregistrationProtection",
        &hangar_core::images::protection_state(&image.deregistration_protection, now_ms),
    )
    .opt_text(
        "lastLaunchedTime",
        image.last_launched_ms.map(iso_seconds).as_deref(),
    )
    .bool("imageAllowed", true)
    .opt_text("sourceImageId", image.source_image_id.as_deref())
    .opt_text("sourceImageRegion", image.source_image_region.as_deref())
    .bool("freeTierEligible", false);
}

fn write_permission(xml: &mut XmlWriter, permission: &LaunchPermission) {
    match permission {
        LaunchPermission::UserId(user) => xml.text("userId", user),
        LaunchPermission::GroupAll => xml.text("group", "all"),
        LaunchPermission::OrganizationArn(arn) => xml.text("organizationArn", arn),
        LaunchPermission::OrganizationalUnitArn(arn) => xml.text("organizationalUnitArn", arn),
    };
}

fn write_image_attribute(xml: &mut XmlWriter, attribute: &ImageAttribute) {
    xml.text("imageId", &attribute.image_id);
    match &attribute.value {
        ImageAttributeValue::Description(value) => {
            xml.attribute_value("description", value.as_deref());
        }
        ImageAttributeValue::Kernel(value) => {
            xml.attribute_value("kernel", value.as_deref());
        }
        ImageAttributeValue::Ramdisk(value) => {
            xml.attribute_value("ramdisk", value.as_deref());
        }
        ImageAttributeValue::LaunchPermission(permissions) => {
            xml.list("launchPermission", permissions, write_permission);
        }
        ImageAttributeValue::ProductCodes => {
            xml.list::<String>("productCodes", &[], |_, _| {});
        }
        ImageAttributeValue::SriovNetSupport(value) => {
            xml.attribute_value("sriovNetSupport", value.as_deref());
        }
        ImageAttributeValue::BootMode(value) => {
            xml.attribute_value("bootMode", value.as_deref());
        }
        ImageAttributeValue::TpmSupport(value) => {
            xml.attribute_value("tpmSupport", value.as_deref());
        }
        ImageAttributeValue::UefiData(value) => {
            xml.attribute_value("uefiData", value.as_deref());
        }
        ImageAttributeValue::LastLaunchedTime(value) => {
            xml.attribute_value("lastLaunchedTime", value.map(iso_seconds).as_deref());
        }
        ImageAttributeValue::ImdsSupport(value) => {
            xml.attribute_value("imdsSupport", value.as_deref());
        }
        ImageAttributeValue::DeregistrationProtection(state) => {
            xml.attribute_value("deregistrationProtection", Some(state));
        }
    }
}
