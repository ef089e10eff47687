"""The XML goldens of hangar-ec2, read by botocore's own EC2 parser against the
EC2 service model: every element must land in the field the SDKs expose."""

from pathlib import Path

import botocore.session
from botocore.parsers import create_parser

GOLDENS = Path(__file__).resolve().parents[2] / "crates" / "hangar-ec2" / "tests" / "goldens"

_model = botocore.session.get_session().get_service_model("ec2")
_parser = create_parser("ec2")


def parse(name, operation, status=200):
    body = (GOLDENS / f"{name}.xml").read_bytes()
    shape = _model.operation_model(operation).output_shape
    return _parser.parse({"body": body, "headers": {}, "status_code": status}, shape)


def test_describe_images_fields():
    parsed = parse("DescribeImages", "DescribeImages")
    image = parsed["Images"][0]
    assert image["ImageId"].startswith("ami-")
    assert image["OwnerId"] == "137112412989"
    assert image["ImageOwnerAlias"] == "amazon"
    assert image["Public"] is True
    assert image["State"] == "available"
    assert image["CreationDate"] == "2024-11-21T00:00:00.000Z"
    assert image["Tags"] == [{"Key": "team", "Value": "a&b <c>"}]
    ebs = image["BlockDeviceMappings"][0]["Ebs"]
    assert ebs["VolumeSize"] == 8 and ebs["DeleteOnTermination"] is True and ebs["Iops"] == 3000
    assert image["SourceImageId"] == "ami-0123456789abcdef0"
    assert image["SourceImageRegion"] == "us-west-2"
    assert image["DeprecationTime"] == "2030-01-01T00:00:00.000Z"
    assert image["LastLaunchedTime"] == "2025-02-17T20:22:19Z"
    assert image["DeregistrationProtection"] == "disabled"
    assert image["EnaSupport"] is True
    assert parsed["Images"][1]["StateReason"]["Code"] == "Client.InvalidSnapshot.NotFound"
    assert parsed["NextToken"] == "token-1"
    assert parsed["ResponseMetadata"]["RequestId"] == "5e0e3ff3-0000-4000-8000-000000000001"


def test_empty_listing():
    parsed = parse("DescribeImages-empty", "DescribeImages")
    assert parsed["Images"] == []
    assert "NextToken" not in parsed


def test_attributes():
    parsed = parse("DescribeImageAttribute-launchPermission", "DescribeImageAttribute")
    assert parsed["LaunchPermissions"] == [
        {"UserId": "222222222222"},
        {"Group": "all"},
        {"OrganizationArn": "arn:aws:organizations::111111111111:organization/o-abc"},
    ]
    parsed = parse("DescribeImageAttribute-description", "DescribeImageAttribute")
    assert parsed["Description"] == {"Value": "my image"}
    parsed = parse("DescribeImageAttribute-lastLaunchedTime", "DescribeImageAttribute")
    assert parsed["LastLaunchedTime"] == {}


def test_simple_results():
    assert parse("RegisterImage", "RegisterImage")["ImageId"] == "ami-0123456789abcdef0"
    assert parse("DeregisterImage", "DeregisterImage")["Return"] is True
    results = parse("DeregisterImage-snapshots", "DeregisterImage")["DeleteSnapshotResults"]
    assert results == [{"SnapshotId": "snap-0123456789abcdef0", "ReturnCode": "skipped"}]
    tags = parse("DescribeTags", "DescribeTags")["Tags"]
    assert tags == [
        {"ResourceId": "ami-0123456789abcdef0", "ResourceType": "image", "Key": "team", "Value": "platform"}
    ]
    regions = parse("DescribeRegions", "DescribeRegions")["Regions"]
    assert regions[0]["RegionName"] == "us-east-1"
    zones = parse("DescribeAvailabilityZones", "DescribeAvailabilityZones")["AvailabilityZones"]
    assert zones[0]["ZoneName"] == "us-east-1a" and zones[0]["State"] == "available"


def test_error_envelope():
    parsed = parse("error-InvalidAMIID.NotFound", "DescribeImages", status=400)
    assert parsed["Error"]["Code"] == "InvalidAMIID.NotFound"
    assert "ami-0123456789abcdef0" in parsed["Error"]["Message"]
    assert parsed["ResponseMetadata"]["RequestId"] == "5e0e3ff3-0000-4000-8000-000000000001"
    internal = parse("error-InternalError", "DescribeImages", status=500)
    assert internal["Error"]["Code"] == "InternalError"
    assert "secret detail" not in internal["Error"]["Message"]


def test_snapshots_and_volumes():
    snapshot = parse("DescribeSnapshots", "DescribeSnapshots")["Snapshots"][0]
    assert snapshot["State"] == "completed" and snapshot["Progress"] == "100%"
    assert snapshot["VolumeSize"] == 8 and snapshot["OwnerAlias"] == "amazon"
    assert snapshot["StartTime"].year == 2024
    assert snapshot["Tags"] == [{"Key": "Name", "Value": "root"}]
    created = parse("CreateSnapshot", "CreateSnapshot")
    assert created["SnapshotId"].startswith("snap-") and created["State"] == "completed"
    assert parse("CopySnapshot", "CopySnapshot")["SnapshotId"] == "snap-0123456789abcdef0"
    volumes = parse("DescribeVolumes", "DescribeVolumes")
    volume = volumes["Volumes"][0]
    assert volume["State"] == "in-use" and volume["Size"] == 8
    assert volume["Attachments"][0]["InstanceId"] == "i-0123456789abcdef0"
    assert volume["Attachments"][0]["DeleteOnTermination"] is True
    assert volumes["NextToken"] == "next"


def test_instances():
    run = parse("RunInstances", "RunInstances")
    assert run["ReservationId"] == "r-0123456789abcdef0"
    instance = run["Instances"][0]
    assert instance["State"] == {"Code": 0, "Name": "pending"}
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1a"
    assert instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"] == "vol-0123456789abcdef0"
    described = parse("DescribeInstances", "DescribeInstances")["Reservations"][0]["Instances"][0]
    assert described["State"] == {"Code": 16, "Name": "running"}
    assert described["Tags"] == [{"Key": "Name", "Value": "web"}]
    changes = parse("TerminateInstances", "TerminateInstances")["TerminatingInstances"]
    assert changes[0]["CurrentState"]["Name"] == "shutting-down"
    assert changes[0]["PreviousState"]["Name"] == "running"


def test_store_and_restore_results():
    assert parse("CreateStoreImageTask", "CreateStoreImageTask")["ObjectKey"] == (
        "path1/path2/ami-0123456789abcdef0.bin"
    )
    assert parse("CreateRestoreImageTask", "CreateRestoreImageTask")["ImageId"] == "ami-0fedcba9876543210"
    parsed = parse("DescribeStoreImageTasks", "DescribeStoreImageTasks")
    first, second = parsed["StoreImageTaskResults"]
    assert first["AmiId"] == "ami-0123456789abcdef0"
    assert first["TaskStartTime"].isoformat() == "2021-01-01T01:01:01.001000+00:00"
    assert first["Bucket"] == "my-ami-bucket"
    assert first["S3objectKey"] == "ami-0123456789abcdef0.bin"
    assert first["ProgressPercentage"] == 17
    assert first["StoreTaskState"] == "InProgress"
    assert "StoreTaskFailureReason" not in first
    assert second["StoreTaskState"] == "Failed"
    assert second["StoreTaskFailureReason"] == "The snapshot snap-0123456789abcdef0 <gone>"
    assert parsed["NextToken"] == "token-2"
    empty = parse("DescribeStoreImageTasks-empty", "DescribeStoreImageTasks")
    assert empty["StoreImageTaskResults"] == [] and "NextToken" not in empty
    error = parse("error-ResourceLimitExceeded", "CreateStoreImageTask", status=400)
    assert error["Error"]["Code"] == "ResourceLimitExceeded"
