"""The AWS CLI (v1) as a subprocess against the server."""

import re

from conftest import ALICE, unique


def test_cli_describe_catalogue(server):
    code, out = server.aws("ec2", "describe-images", "--owners", "amazon")
    assert code == 0, out
    images = out["Images"]
    assert len(images) >= 4
    assert all(image["ImageOwnerAlias"] == "amazon" for image in images)


def test_cli_image_lifecycle(server):
    name = unique("cli")
    snapshot = server.new_snapshot(server.client("alice"))
    code, out = server.aws(
        "ec2", "register-image",
        "--name", name,
        "--description", "from the cli",
        "--architecture", "arm64",
        "--virtualization-type", "hvm",
        "--root-device-name", "/dev/xvda",
        "--boot-mode", "uefi",
        "--ena-support",
        "--block-device-mappings",
        f"DeviceName=/dev/xvda,Ebs={{SnapshotId={snapshot},VolumeSize=10,VolumeType=gp3}}",
        "--tag-specifications", "ResourceType=image,Tags=[{Key=Origin,Value=cli}]",
    )
    assert code == 0, out
    image_id = out["ImageId"]
    assert re.fullmatch(r"ami-[0-9a-f]{17}", image_id)

    code, out = server.aws("ec2", "create-tags", "--resources", image_id,
                           "--tags", "Key=Stage,Value=test", "Key=Empty,Value=")
    assert code == 0, out

    prefix = name[: len(name) - 4]
    code, out = server.aws("ec2", "describe-images", "--owners", "self",
                           "--filters", f"Name=name,Values={prefix}*")
    assert code == 0, out
    matching = [image for image in out["Images"] if image["ImageId"] == image_id]
    assert len(matching) == 1, out
    image = matching[0]
    assert image["Name"] == name
    assert image["OwnerId"] == ALICE
    assert image["Architecture"] == "arm64"
    assert image["BootMode"] == "uefi"
    assert image["EnaSupport"] is True
    assert image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] == snapshot
    assert {t["Key"]: t["Value"] for t in image["Tags"]} == {
        "Origin": "cli", "Stage": "test", "Empty": ""}

    code, out = server.aws("ec2", "describe-image-attribute", "--image-id", image_id,
                           "--attribute", "description")
    assert code == 0, out
    assert out["Description"]["Value"] == "from the cli"

    code, out = server.aws("ec2", "deregister-image", "--image-id", image_id)
    assert code == 0, out

    code, out = server.aws("ec2", "describe-images", "--image-ids", image_id)
    assert code == 0, out
    assert out["Images"][0]["State"] == "deregistered"


def test_cli_error_case(server):
    code, err = server.aws("ec2", "describe-images", "--image-ids", "ami-0123456789abcdef0")
    assert code in (254, 255), (code, err)
    assert "InvalidAMIID.NotFound" in err


def test_cli_auth_error(server):
    code, err = server.aws("ec2", "describe-regions",
                           account=("AKIAEXAMPLEALICE0001", "definitely-the-wrong-secret-XXXX"))
    assert code in (254, 255), (code, err)
    assert "SignatureDoesNotMatch" in err


def test_cli_regions_and_zones(server):
    code, out = server.aws("ec2", "describe-availability-zones", region="eu-west-1")
    assert code == 0, out
    assert sorted(z["ZoneName"] for z in out["AvailabilityZones"]) == [
        "eu-west-1a", "eu-west-1b", "eu-west-1c"]
