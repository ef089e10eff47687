//! One typed `Action` per EC2 operation Hangar serves, parsed once from the
//! query parameters. Names are AWS's, verbatim.

use hangar_core::build::{CopyImageInput, CreateImageInput};
use hangar_core::filter::Filter;
use hangar_core::images::{
    DescribeImageReferencesInput, DescribeImagesInput, LaunchPermissionChanges,
    ModifyImageAttributeInput, RegisterImageInput, ResourceTypeOption, ResourceTypeRequest,
};
use hangar_core::instances::RunInstancesInput;
use hangar_core::model::{BlockDeviceMapping, EbsBlockDevice, LaunchPermission, Tag};
use hangar_core::snapshots::{CopySnapshotInput, DescribeSnapshotsInput};
use hangar_core::store::{
    CreateRestoreImageTaskInput, CreateStoreImageTaskInput, DescribeStoreImageTasksInput,
};
use hangar_core::tags::{TagRemoval, TagSpecification};

use crate::error::ProtocolError;
use crate::params::{Params, View};

pub const VERSION: &str = "2016-11-15";

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    RegisterImage(RegisterImageInput),
    DescribeImages(DescribeImagesInput),
    DescribeImageAttribute {
        image_id: String,
        attribute: String,
    },
    ModifyImageAttribute(ModifyImageAttributeInput),
    ResetImageAttribute {
        image_id: String,
        attribute: String,
    },
    DeregisterImage {
        image_id: String,
        delete_associated_snapshots: bool,
    },
    CreateTags {
        resource_ids: Vec<String>,
        tags: Vec<Tag>,
    },
    DeleteTags {
        resource_ids: Vec<String>,
        tags: Vec<TagRemoval>,
    },
    DescribeTags {
        filters: Vec<Filter>,
        max_results: Option<i64>,
        next_token: Option<String>,
    },
    DescribeRegions {
        region_names: Vec<String>,
        all_regions: bool,
        filters: Vec<Filter>,
    },
    DescribeAvailabilityZones {
        zone_names: Vec<String>,
        zone_ids: Vec<String>,
        all_availability_zones: bool,
        filters: Vec<Filter>,
    },
    DescribeSnapshots(DescribeSnapshotsInput),
    DeleteSnapshot {
        snapshot_id: String,
    },
    CopySnapshot(CopySnapshotInput),
    CreateSnapshot {
        volume_id: String,
        description: Option<String>,
        tag_specifications: Vec<TagSpecification>,
    },
    DescribeVolumes {
        volume_ids: Vec<String>,
        filters: Vec<Filter>,
        max_results: Option<i64>,
        next_token: Option<String>,
    },
    RunInstances(RunInstancesInput),
    DescribeInstances {
        instance_ids: Vec<String>,
        filters: Vec<Filter>,
        max_results: Option<i64>,
        next_token: Option<String>,
    },
    StopInstances {
        instance_ids: Vec<String>,
    },
    StartInstances {
        instance_ids: Vec<String>,
    },
    TerminateInstances {
        instance_ids: Vec<String>,
    },
    CreateImage(CreateImageInput),
    CopyImage(CopyImageInput),
    CreateStoreImageTask(CreateStoreImageTaskInput),
    DescribeStoreImageTasks(DescribeStoreImageTasksInput),
    CreateRestoreImageTask(CreateRestoreImageTaskInput),
    GetImageAncestry {
        image_id: String,
    },
    EnableImageDeprecation {
        image_id: String,
        /// As sent; the domain parses it, so a bad value is its error.
        deprecate_at: String,
    },
    DisableImageDeprecation {
        image_id: String,
    },
    EnableImageDeregistrationProtection {
        image_id: String,
        with_cooldown: bool,
    },
    DisableImageDeregistrationProtection {
        image_id: String,
    },
    DisableImage {
        image_id: String,
    },
    EnableImage {
        image_id: String,
    },
    DescribeImageReferences(DescribeImageReferencesInput),
}

/// A parsed request: the action and the common `DryRun` flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub action: Action,
    pub dry_run: bool,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::RegisterImage(_) => "RegisterImage",
            Action::DescribeImages(_) => "DescribeImages",
            Action::DescribeImageAttribute { .. } => "DescribeImageAttribute",
            Action::ModifyImageAttribute(_) => "ModifyImageAttribute",
            Action::ResetImageAttribute { .. } => "ResetImageAttribute",
            Action::DeregisterImage { .. } => "DeregisterImage",
            Action::CreateTags { .. } => "CreateTags",
            Action::DeleteTags { .. } => "DeleteTags",
            Action::DescribeTags { .. } => "DescribeTags",
            Action::DescribeRegions { .. } => "DescribeRegions",
            Action::DescribeAvailabilityZones { .. } => "DescribeAvailabilityZones",
            Action::DescribeSnapshots(_) => "DescribeSnapshots",
            Action::DeleteSnapshot { .. } => "DeleteSnapshot",
            Action::CopySnapshot(_) => "CopySnapshot",
            Action::CreateSnapshot { .. } => "CreateSnapshot",
            Action::DescribeVolumes { .. } => "DescribeVolumes",
            Action::RunInstances(_) => "RunInstances",
            Action::DescribeInstances { .. } => "DescribeInstances",
            Action::StopInstances { .. } => "StopInstances",
            Action::StartInstances { .. } => "StartInstances",
            Action::TerminateInstances { .. } => "TerminateInstances",
            Action::CreateImage(_) => "CreateImage",
            Action::CopyImage(_) => "CopyImage",
            Action::CreateStoreImageTask(_) => "CreateStoreImageTask",
            Action::DescribeStoreImageTasks(_) => "DescribeStoreImageTasks",
            Action::CreateRestoreImageTask(_) => "CreateRestoreImageTask",
            Action::GetImageAncestry { .. } => "GetImageAncestry",
            Action::EnableImageDeprecation { .. } => "EnableImageDeprecation",
            Action::DisableImageDeprecation { .. } => "DisableImageDeprecation",
            Action::EnableImageDeregistrationProtection { .. } => {
                "EnableImageDeregistrationProtection"
            }
            Action::DisableImageDeregistrationProtection { .. } => {
                "DisableImageDeregistrationProtection"
            }
            Action::DisableImage { .. } => "DisableImage",
            Action::EnableImage { .. } => "EnableImage",
            Action::DescribeImageReferences(_) => "DescribeImageReferences",
        }
    }
}

fn filters(view: &View) -> Result<Vec<Filter>, ProtocolError> {
    view.structs("Filter")?
        .into_iter()
        .map(|filter| {
            Ok(Filter {
                name: filter.required("Name")?,
                values: filter.strings("Value")?,
            })
        })
        .collect()
}

fn tags(view: &View, name: &str) -> Result<Vec<Tag>, ProtocolError> {
    view.structs(name)?
        .into_iter()
        .map(|tag| {
            Ok(Tag {
                key: tag.required("Key")?,
                value: tag.string("Value").unwrap_or_default(),
            })
        })
        .collect()
}

fn tag_specifications(view: &View) -> Result<Vec<TagSpecification>, ProtocolError> {
    view.structs("TagSpecification")?
        .into_iter()
        .map(|specification| {
            Ok(TagSpecification {
                resource_type: specification.string("ResourceType"),
                tags: tags(&specification, "Tag")?,
            })
        })
        .collect()
}

fn block_device_mappings(view: &View) -> Result<Vec<BlockDeviceMapping>, ProtocolError> {
    view.structs("BlockDeviceMapping")?
        .into_iter()
        .map(|mapping| {
            let ebs = if mapping.present("Ebs") {
                let ebs = mapping.member("Ebs");
                Some(EbsBlockDevice {
                    snapshot_id: ebs.string("SnapshotId"),
                    volume_size: ebs.int("VolumeSize")?,
                    volume_type: ebs.string("VolumeType"),
                    delete_on_termination: ebs.bool("DeleteOnTermination")?,
                    iops: ebs.int("Iops")?,
                    throughput: ebs.int("Throughput")?,
                    encrypted: ebs.bool("Encrypted")?,
                    kms_key_id: ebs.string("KmsKeyId"),
                })
            } else {
                None
            };
            Ok(BlockDeviceMapping {
                device_name: mapping.required("DeviceName")?,
                virtual_name: mapping.string("VirtualName"),
                ebs,
                // NoDevice carries an empty string when set.
                no_device: mapping.string("NoDevice").is_some(),
            })
        })
        .collect()
}

fn launch_permissions(view: &View, name: &str) -> Result<Vec<LaunchPermission>, ProtocolError> {
    view.structs(name)?
        .into_iter()
        .map(|permission| {
            let group = match permission.string("Group") {
                None => None,
                Some(group) if group == "all" => Some(LaunchPermission::GroupAll),
                Some(group) => {
                    return Err(ProtocolError::InvalidAttributeItemValue(format!(
                        "Invalid attribute item value \"{group}\" for group item type."
                    )));
                }
            };
            let choices = [
                permission.string("UserId").map(LaunchPermission::UserId),
                group,
                permission
                    .string("OrganizationArn")
                    .map(LaunchPermission::OrganizationArn),
                permission
                    .string("OrganizationalUnitArn")
                    .map(LaunchPermission::OrganizationalUnitArn),
            ];
            let mut set = choices.into_iter().flatten();
            match (set.next(), set.next()) {
                (Some(only), None) => Ok(only),
                (None, _) => Err(ProtocolError::MissingParameter(format!(
                    "{name}.N.UserId, Group, OrganizationArn or OrganizationalUnitArn"
                ))),
                (Some(_), Some(_)) => Err(ProtocolError::InvalidParameterCombination(
                    "A launch permission item takes exactly one of UserId, Group, OrganizationArn, OrganizationalUnitArn".into(),
                )),
            }
        })
        .collect()
}

/// Parses `Action`, checks `Version`, reads the action's parameters and the
/// common `DryRun`, and refuses any parameter the action does not take.
pub fn parse(params: &Params) -> Result<Request, ProtocolError> {
    let root = params.root();
    let action_name = root.string("Action").ok_or(ProtocolError::MissingAction)?;
    match root.string("Version") {
        Some(version) if version == VERSION => {}
        Some(version) => return Err(ProtocolError::NoSuchVersion(version)),
        None => return Err(ProtocolError::MissingParameter("Version".into())),
    }
    let dry_run = root.bool("DryRun")?.unwrap_or(false);
    let action = match action_name.as_str() {
        "RegisterImage" => Action::RegisterImage(RegisterImageInput {
            name: root.string("Name"),
            description: root.string("Description"),
            image_location: root.string("ImageLocation"),
            architecture: root.string("Architecture"),
            virtualization_type: root.string("VirtualizationType"),
            root_device_name: root.string("RootDeviceName"),
            block_device_mappings: block_device_mappings(&root)?,
            boot_mode: root.string("BootMode"),
            ena_support: root.bool("EnaSupport")?,
            sriov_net_support: root.string("SriovNetSupport"),
            tpm_support: root.string("TpmSupport"),
            imds_support: root.string("ImdsSupport"),
            uefi_data: root.string("UefiData"),
            kernel_id: root.string("KernelId"),
            ramdisk_id: root.string("RamdiskId"),
            tag_specifications: tag_specifications(&root)?,
        }),
        "DescribeImages" => Action::DescribeImages(DescribeImagesInput {
            image_ids: root.strings("ImageId")?,
            owners: root.strings("Owner")?,
            executable_by: root.strings("ExecutableBy")?,
            filters: filters(&root)?,
            include_deprecated: root.bool("IncludeDeprecated")?.unwrap_or(false),
            include_disabled: root.bool("IncludeDisabled")?.unwrap_or(false),
            max_results: root.int("MaxResults")?,
            next_token: root.string("NextToken"),
        }),
        "DescribeImageAttribute" => Action::DescribeImageAttribute {
            image_id: root.required("ImageId")?,
            attribute: root.required("Attribute")?,
        },
        "ModifyImageAttribute" => {
            let launch_permission = if root.present("LaunchPermission") {
                let member = root.member("LaunchPermission");
                Some(LaunchPermissionChanges {
                    add: launch_permissions(&member, "Add")?,
                    remove: launch_permissions(&member, "Remove")?,
                })
            } else {
                None
            };
            Action::ModifyImageAttribute(ModifyImageAttributeInput {
                image_id: root.required("ImageId")?,
                attribute: root.string("Attribute"),
                operation_type: root.string("OperationType"),
                user_ids: root.strings("UserId")?,
                user_groups: root.strings("UserGroup")?,
                organization_arns: root.strings("OrganizationArn")?,
                organizational_unit_arns: root.strings("OrganizationalUnitArn")?,
                launch_permission,
                description: root.member("Description").string("Value"),
                value: root.string("Value"),
                imds_support: root.member("ImdsSupport").string("Value"),
                product_codes: root.strings("ProductCode")?,
            })
        }
        "ResetImageAttribute" => Action::ResetImageAttribute {
            image_id: root.required("ImageId")?,
            attribute: root.required("Attribute")?,
        },
        "DeregisterImage" => Action::DeregisterImage {
            image_id: root.required("ImageId")?,
            delete_associated_snapshots: root.bool("DeleteAssociatedSnapshots")?.unwrap_or(false),
        },
        "CreateTags" => Action::CreateTags {
            resource_ids: root.strings("ResourceId")?,
            tags: tags(&root, "Tag")?,
        },
        "DeleteTags" => Action::DeleteTags {
            resource_ids: root.strings("ResourceId")?,
            tags: root
                .structs("Tag")?
                .into_iter()
                .map(|tag| {
                    Ok(TagRemoval {
                        key: tag.required("Key")?,
                        value: tag.string("Value"),
                    })
                })
                .collect::<Result<_, ProtocolError>>()?,
        },
        "DescribeTags" => Action::DescribeTags {
            filters: filters(&root)?,
            max_results: root.int("MaxResults")?,
            next_token: root.string("NextToken"),
        },
        "DescribeRegions" => Action::DescribeRegions {
            region_names: root.strings("RegionName")?,
            all_regions: root.bool("AllRegions")?.unwrap_or(false),
            filters: filters(&root)?,
        },
        "DescribeAvailabilityZones" => Action::DescribeAvailabilityZones {
            zone_names: root.strings("ZoneName")?,
            zone_ids: root.strings("ZoneId")?,
            all_availability_zones: root.bool("AllAvailabilityZones")?.unwrap_or(false),
            filters: filters(&root)?,
        },
        "DescribeSnapshots" => Action::DescribeSnapshots(DescribeSnapshotsInput {
            snapshot_ids: root.strings("SnapshotId")?,
            owners: root.strings("Owner")?,
            restorable_by: root.strings("RestorableBy")?,
            filters: filters(&root)?,
            max_results: root.int("MaxResults")?,
            next_token: root.string("NextToken"),
        }),
        "DeleteSnapshot" => Action::DeleteSnapshot {
            snapshot_id: root.required("SnapshotId")?,
        },
        "CopySnapshot" => {
            // boto3 adds these on its own for cross-region copies; within one
            // deployment they carry nothing Hangar needs.
            let _ = root.string("PresignedUrl");
            let _ = root.string("DestinationRegion");
            Action::CopySnapshot(CopySnapshotInput {
                source_region: root.required("SourceRegion")?,
                source_snapshot_id: root.required("SourceSnapshotId")?,
                description: root.string("Description"),
                encrypted: root.bool("Encrypted")?,
                kms_key_id: root.string("KmsKeyId"),
                tag_specifications: tag_specifications(&root)?,
            })
        }
        "CreateSnapshot" => Action::CreateSnapshot {
            volume_id: root.required("VolumeId")?,
            description: root.string("Description"),
            tag_specifications: tag_specifications(&root)?,
        },
        "DescribeVolumes" => Action::DescribeVolumes {
            volume_ids: root.strings("VolumeId")?,
            filters: filters(&root)?,
            max_results: root.int("MaxResults")?,
            next_token: root.string("NextToken"),
        },
        "RunInstances" => {
            // Accepted and not modelled: networking and access settings that
            // have no meaning without real machines.
            for ignored in [
                "KeyName",
                "SubnetId",
                "UserData",
                "EbsOptimized",
                "DisableApiTermination",
                "InstanceInitiatedShutdownBehavior",
            ] {
                let _ = root.string(ignored);
            }
            let _ = root.strings("SecurityGroupId")?;
            let _ = root.strings("SecurityGroup")?;
            let _ = root.member("Monitoring").string("Enabled");
            let _ = root.member("IamInstanceProfile").string("Arn");
            let _ = root.member("IamInstanceProfile").string("Name");
            let _ = root.member("MetadataOptions").string("HttpTokens");
            let placement = root.member("Placement");
            let _ = placement.string("Tenancy");
            Action::RunInstances(RunInstancesInput {
                image_id: root.string("ImageId"),
                min_count: root.int("MinCount")?,
                max_count: root.int("MaxCount")?,
                instance_type: root.string("InstanceType"),
                availability_zone: placement.string("AvailabilityZone"),
                block_device_mappings: block_device_mappings(&root)?,
                tag_specifications: tag_specifications(&root)?,
                client_token: root.string("ClientToken"),
            })
        }
        "DescribeInstances" => Action::DescribeInstances {
            instance_ids: root.strings("InstanceId")?,
            filters: filters(&root)?,
            max_results: root.int("MaxResults")?,
            next_token: root.string("NextToken"),
        },
        "StopInstances" => {
            let _ = root.bool("Force")?;
            let _ = root.bool("Hibernate")?;
            Action::StopInstances {
                instance_ids: root.strings("InstanceId")?,
            }
        }
        "StartInstances" => Action::StartInstances {
            instance_ids: root.strings("InstanceId")?,
        },
        "TerminateInstances" => Action::TerminateInstances {
            instance_ids: root.strings("InstanceId")?,
        },
        "CreateImage" => Action::CreateImage(CreateImageInput {
            instance_id: root.required("InstanceId")?,
            name: root.string("Name"),
            description: root.string("Description"),
            no_reboot: root.bool("NoReboot")?.unwrap_or(false),
            block_device_mappings: block_device_mappings(&root)?,
            tag_specifications: tag_specifications(&root)?,
        }),
        "CopyImage" => Action::CopyImage(CopyImageInput {
            source_region: root.required("SourceRegion")?,
            source_image_id: root.required("SourceImageId")?,
            name: root.string("Name"),
            description: root.string("Description"),
            copy_image_tags: root.bool("CopyImageTags")?.unwrap_or(false),
            client_token: root.string("ClientToken"),
            encrypted: root.bool("Encrypted")?,
            kms_key_id: root.string("KmsKeyId"),
            tag_specifications: tag_specifications(&root)?,
        }),
        "CreateStoreImageTask" => Action::CreateStoreImageTask(CreateStoreImageTaskInput {
            image_id: root.required("ImageId")?,
            bucket: root.required("Bucket")?,
            object_tags: tags(&root, "S3ObjectTag")?,
        }),
        "DescribeStoreImageTasks" => {
            Action::DescribeStoreImageTasks(DescribeStoreImageTasksInput {
                image_ids: root.strings("ImageId")?,
                filters: filters(&root)?,
                max_results: root.int("MaxResults")?,
                next_token: root.string("NextToken"),
            })
        }
        "CreateRestoreImageTask" => Action::CreateRestoreImageTask(CreateRestoreImageTaskInput {
            bucket: root.required("Bucket")?,
            object_key: root.required("ObjectKey")?,
            name: root.string("Name"),
            tag_specifications: tag_specifications(&root)?,
        }),
        "GetImageAncestry" => Action::GetImageAncestry {
            image_id: root.required("ImageId")?,
        },
        "EnableImageDeprecation" => Action::EnableImageDeprecation {
            image_id: root.required("ImageId")?,
            deprecate_at: root.required("DeprecateAt")?,
        },
        "DisableImageDeprecation" => Action::DisableImageDeprecation {
            image_id: root.required("ImageId")?,
        },
        "EnableImageDeregistrationProtection" => Action::EnableImageDeregistrationProtection {
            image_id: root.required("ImageId")?,
            with_cooldown: root.bool("WithCooldown")?.unwrap_or(false),
        },
        "DisableImageDeregistrationProtection" => Action::DisableImageDeregistrationProtection {
            image_id: root.required("ImageId")?,
        },
        "DisableImage" => Action::DisableImage {
            image_id: root.required("ImageId")?,
        },
        "EnableImage" => Action::EnableImage {
            image_id: root.required("ImageId")?,
        },
        "DescribeImageReferences" => {
            Action::DescribeImageReferences(DescribeImageReferencesInput {
                image_ids: root.strings("ImageId")?,
                include_all_resource_types: root.bool("IncludeAllResourceTypes")?.unwrap_or(false),
                resource_types: root
                    .structs("ResourceType")?
                    .into_iter()
                    .map(|request| {
                        Ok(ResourceTypeRequest {
                            resource_type: request.string("ResourceType"),
                            options: request
                                .structs("ResourceTypeOption")?
                                .into_iter()
                                .map(|option| {
                                    Ok(ResourceTypeOption {
                                        option_name: option.string("OptionName"),
                                        option_values: option.strings("OptionValue")?,
                                    })
                                })
                                .collect::<Result<_, ProtocolError>>()?,
                        })
                    })
                    .collect::<Result<_, ProtocolError>>()?,
                max_results: root.int("MaxResults")?,
                next_token: root.string("NextToken"),
            })
        }
        other => return Err(ProtocolError::InvalidAction(other.to_string())),
    };
    params.finish()?;
    Ok(Request { action, dry_run })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Limits;

    fn parse_form(form: &str) -> Result<Request, ProtocolError> {
        parse(&Params::from_form(form.as_bytes(), Limits::default()).unwrap())
    }

    #[test]
    fn describe_images_with_everything() {
        let request = parse_form(
            "Action=DescribeImages&Version=2016-11-15&ImageId.1=ami-1&Owner.1=self&ExecutableBy.1=all&Filter.1.Name=name&Filter.1.Value.1=a*&IncludeDeprecated=true&DryRun=true",
        )
        .unwrap();
        assert!(request.dry_run);
        let Action::DescribeImages(input) = request.action else {
            panic!("wrong action")
        };
        assert_eq!(input.image_ids, vec!["ami-1"]);
        assert_eq!(input.owners, vec!["self"]);
        assert_eq!(input.executable_by, vec!["all"]);
        assert_eq!(input.filters[0].values, vec!["a*"]);
        assert!(input.include_deprecated);
    }

    #[test]
    fn register_image_mappings_and_tags() {
        let request = parse_form(
            "Action=RegisterImage&Version=2016-11-15&Name=n&RootDeviceName=%2Fdev%2Fxvda&BlockDeviceMapping.1.DeviceName=%2Fdev%2Fxvda&BlockDeviceMapping.1.Ebs.SnapshotId=snap-0123456789abcdef0&BlockDeviceMapping.1.Ebs.VolumeSize=8&BlockDeviceMapping.1.Ebs.DeleteOnTermination=true&BlockDeviceMapping.2.DeviceName=%2Fdev%2Fsdb&BlockDeviceMapping.2.NoDevice=&TagSpecification.1.ResourceType=image&TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=v",
        )
        .unwrap();
        let Action::RegisterImage(input) = request.action else {
            panic!("wrong action")
        };
        assert_eq!(input.block_device_mappings.len(), 2);
        let ebs = input.block_device_mappings[0].ebs.as_ref().unwrap();
        assert_eq!(ebs.volume_size, Some(8));
        assert_eq!(ebs.delete_on_termination, Some(true));
        assert!(input.block_device_mappings[1].no_device);
        assert_eq!(input.tag_specifications[0].tags[0].key, "k");
    }

    #[test]
    fn protocol_errors() {
        assert_eq!(
            parse_form("Version=2016-11-15"),
            Err(ProtocolError::MissingAction)
        );
        assert_eq!(
            parse_form("Action=DescribeImages"),
            Err(ProtocolError::MissingParameter("Version".into()))
        );
        assert_eq!(
            parse_form("Action=DescribeImages&Version=2014-01-01"),
            Err(ProtocolError::NoSuchVersion("2014-01-01".into()))
        );
        assert_eq!(
            parse_form("Action=LaunchRockets&Version=2016-11-15"),
            Err(ProtocolError::InvalidAction("LaunchRockets".into()))
        );
        assert_eq!(
            parse_form("Action=DescribeImages&Version=2016-11-15&Foo=1"),
            Err(ProtocolError::UnknownParameter("Foo".into()))
        );
        assert_eq!(
            parse_form("Action=DescribeImageAttribute&Version=2016-11-15&ImageId=ami-1"),
            Err(ProtocolError::MissingParameter("Attribute".into()))
        );
    }

    #[test]
    fn store_and_restore_requests() {
        let store = parse_form(
            "Action=CreateStoreImageTask&Version=2016-11-15&ImageId=ami-1&Bucket=b%2Fp1&S3ObjectTag.1.Key=k&S3ObjectTag.1.Value=v&DryRun=true",
        )
        .unwrap();
        assert!(store.dry_run);
        let Action::CreateStoreImageTask(input) = store.action else {
            panic!("wrong action")
        };
        assert_eq!(input.image_id, "ami-1");
        assert_eq!(input.bucket, "b/p1");
        assert_eq!(
            input.object_tags,
            vec![Tag {
                key: "k".into(),
                value: "v".into()
            }]
        );
        assert_eq!(
            parse_form("Action=CreateStoreImageTask&Version=2016-11-15&ImageId=ami-1"),
            Err(ProtocolError::MissingParameter("Bucket".into()))
        );

        let describe = parse_form(
            "Action=DescribeStoreImageTasks&Version=2016-11-15&ImageId.1=ami-1&Filter.1.Name=bucket&Filter.1.Value.1=b&MaxResults=5&NextToken=t",
        )
        .unwrap();
        let Action::DescribeStoreImageTasks(input) = describe.action else {
            panic!("wrong action")
        };
        assert_eq!(input.image_ids, vec!["ami-1"]);
        assert_eq!(input.filters[0].name, "bucket");
        assert_eq!(input.max_results, Some(5));
        assert_eq!(input.next_token.as_deref(), Some("t"));

        let restore = parse_form(
            "Action=CreateRestoreImageTask&Version=2016-11-15&Bucket=b&ObjectKey=p%2Fami-1.bin&Name=restored&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=v",
        )
        .unwrap();
        let Action::CreateRestoreImageTask(input) = restore.action else {
            panic!("wrong action")
        };
        assert_eq!(input.bucket, "b");
        assert_eq!(input.object_key, "p/ami-1.bin");
        assert_eq!(input.name.as_deref(), Some("restored"));
        assert_eq!(
            input.tag_specifications[0].resource_type.as_deref(),
            Some("snapshot")
        );
        assert_eq!(
            parse_form("Action=CreateRestoreImageTask&Version=2016-11-15&Bucket=b"),
            Err(ProtocolError::MissingParameter("ObjectKey".into()))
        );
    }

    #[test]
    fn modify_image_attribute_forms() {
        let structured = parse_form(
            "Action=ModifyImageAttribute&Version=2016-11-15&ImageId=ami-1&LaunchPermission.Add.1.UserId=111111111111&LaunchPermission.Remove.1.Group=all",
        )
        .unwrap();
        let Action::ModifyImageAttribute(input) = structured.action else {
            panic!("wrong action")
        };
        let changes = input.launch_permission.unwrap();
        assert_eq!(
            changes.add,
            vec![LaunchPermission::UserId("111111111111".into())]
        );
        assert_eq!(changes.remove, vec![LaunchPermission::GroupAll]);

        let legacy = parse_form(
            "Action=ModifyImageAttribute&Version=2016-11-15&ImageId=ami-1&Attribute=launchPermission&OperationType=add&UserId.1=111111111111&UserGroup.1=all",
        )
        .unwrap();
        let Action::ModifyImageAttribute(input) = legacy.action else {
            panic!("wrong action")
        };
        assert_eq!(input.user_ids, vec!["111111111111"]);
        assert_eq!(input.user_groups, vec!["all"]);
    }

    #[test]
    fn provenance_and_retirement_requests() {
        let request = parse_form(
            "Action=DescribeImageReferences&Version=2016-11-15&ImageId.1=ami-1&ImageId.2=ami-2&ResourceType.1.ResourceType=ec2%3AInstance&ResourceType.1.ResourceTypeOption.1.OptionName=state-name&ResourceType.1.ResourceTypeOption.1.OptionValue.1=running&ResourceType.1.ResourceTypeOption.1.OptionValue.2=stopped&MaxResults=5&NextToken=t&DryRun=true",
        )
        .unwrap();
        assert!(request.dry_run);
        let Action::DescribeImageReferences(input) = request.action else {
            panic!("wrong action")
        };
        assert_eq!(input.image_ids, vec!["ami-1", "ami-2"]);
        assert!(!input.include_all_resource_types);
        assert_eq!(
            input.resource_types[0].resource_type.as_deref(),
            Some("ec2:Instance")
        );
        let option = &input.resource_types[0].options[0];
        assert_eq!(option.option_name.as_deref(), Some("state-name"));
        assert_eq!(option.option_values, vec!["running", "stopped"]);
        assert_eq!(input.max_results, Some(5));

        let request = parse_form(
            "Action=EnableImageDeregistrationProtection&Version=2016-11-15&ImageId=ami-1&WithCooldown=true",
        )
        .unwrap();
        assert_eq!(
            request.action,
            Action::EnableImageDeregistrationProtection {
                image_id: "ami-1".into(),
                with_cooldown: true
            }
        );
        let request = parse_form(
            "Action=EnableImageDeprecation&Version=2016-11-15&ImageId=ami-1&DeprecateAt=2030-04-15T13%3A17%3A12.500000Z",
        )
        .unwrap();
        assert_eq!(
            request.action,
            Action::EnableImageDeprecation {
                image_id: "ami-1".into(),
                deprecate_at: "2030-04-15T13:17:12.500000Z".into()
            }
        );
        for action in [
            "GetImageAncestry",
            "DisableImageDeprecation",
            "DisableImageDeregistrationProtection",
            "DisableImage",
            "EnableImage",
        ] {
            assert_eq!(
                parse_form(&format!("Action={action}&Version=2016-11-15")),
                Err(ProtocolError::MissingParameter("ImageId".into()))
            );
            assert_eq!(
                parse_form(&format!(
                    "Action={action}&Version=2016-11-15&ImageId=ami-1&WithCooldown=true"
                ))
                .err(),
                (action != "EnableImageDeregistrationProtection")
                    .then(|| ProtocolError::UnknownParameter("WithCooldown".into()))
            );
        }
        assert_eq!(
            parse_form("Action=EnableImageDeprecation&Version=2016-11-15&ImageId=ami-1"),
            Err(ProtocolError::MissingParameter("DeprecateAt".into()))
        );
    }
}
