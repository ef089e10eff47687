"""Provenance and retiring images: GetImageAncestry, the source-* filters,
Enable/DisableImageDeprecation, deregistration protection, DeregisterImage
with DeleteAssociatedSnapshots, DisableImage/EnableImage and
DescribeImageReferences; through boto3, the AWS CLI and raw Query.

Run: python3 -m pytest -q tests/integration/test_retire.py
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from botocore.exceptions import ClientError

from conftest import ALICE, BOB, error_code, http_status, unique

MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UNKNOWN_IMAGE = "ami-0123456789abcdef0"


def expect_error(call, code, status=400, **kwargs):
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    assert error_code(caught.value) == code, caught.value.response
    if status is not None:
        assert http_status(caught.value) == status, caught.value.response
    return caught.value


def describe(ec2, image_id, **kwargs):
    images = ec2.describe_images(ImageIds=[image_id], **kwargs)["Images"]
    assert len(images) == 1, images
    return images[0]


def wait_image(ec2, image_id, state="available", timeout=30.0):
    deadline = time.monotonic() + timeout
    image = None
    while time.monotonic() < deadline:
        image = describe(ec2, image_id)
        if image["State"] == state:
            return image
        if image["State"] in ("failed", "error"):
            break
        time.sleep(0.1)
    raise AssertionError(f"{image_id} did not become {state}: {image}")


def wait_instance(ec2, instance_id, state, timeout=20.0):
    deadline = time.monotonic() + timeout
    current = None
    while time.monotonic() < deadline:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        current = reservations[0]["Instances"][0]["State"]["Name"]
        if current == state:
            return
        time.sleep(0.1)
    raise AssertionError(f"{instance_id} did not become {state}: {current}")


def launch(ec2, image_id, count=1):
    answer = ec2.run_instances(ImageId=image_id, MinCount=count, MaxCount=count)
    return [instance["InstanceId"] for instance in answer["Instances"]]


def share(ec2, image_id, account):
    ec2.modify_image_attribute(ImageId=image_id,
                               LaunchPermission={"Add": [{"UserId": account}]})


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --------------------------------------------------------------------------
# GetImageAncestry and the source-* fields


@pytest.fixture(scope="module")
def chain(server):
    """RegisterImage -> RunInstances -> CreateImage -> CopyImage to us-west-2."""
    east = server.client("alice")
    west = server.client("alice", region="us-west-2")
    registered = server.register(east, unique("anc-root"))
    [instance] = launch(east, registered)
    wait_instance(east, instance, "running")
    created = east.create_image(InstanceId=instance, Name=unique("anc-created"))["ImageId"]
    wait_image(east, created)
    copied = west.copy_image(SourceRegion="us-east-1", SourceImageId=created,
                             Name=unique("anc-copied"))["ImageId"]
    wait_image(west, copied)
    return {"registered": registered, "instance": instance, "created": created,
            "copied": copied, "east": east, "west": west}


def test_ancestry_of_a_copy_lists_copy_created_registered(chain):
    entries = chain["west"].get_image_ancestry(ImageId=chain["copied"])["ImageAncestryEntries"]
    assert [entry["ImageId"] for entry in entries] == [
        chain["copied"], chain["created"], chain["registered"]], entries
    copy, created, registered = entries
    assert copy["SourceImageId"] == chain["created"]
    assert copy["SourceImageRegion"] == "us-east-1"
    assert created["SourceImageId"] == chain["registered"]
    assert created["SourceImageRegion"] == "us-east-1"
    assert "SourceImageId" not in registered and "SourceImageRegion" not in registered
    for entry in entries:
        assert "ImageOwnerAlias" not in entry, entry
        assert isinstance(entry["CreationDate"], dt.datetime), entry
    # Walking from the middle gives the tail of the same chain.
    middle = chain["east"].get_image_ancestry(ImageId=chain["created"])["ImageAncestryEntries"]
    assert [entry["ImageId"] for entry in middle] == [chain["created"], chain["registered"]]


def test_ancestry_with_the_aws_cli_and_raw_wire(server, chain):
    code, out = server.aws("ec2", "get-image-ancestry", "--image-id", chain["copied"],
                           region="us-west-2")
    assert code == 0, out
    entries = out["ImageAncestryEntries"]
    assert [entry["ImageId"] for entry in entries] == [
        chain["copied"], chain["created"], chain["registered"]]
    assert all(MILLIS.match(entry["CreationDate"]) for entry in entries), entries
    reply = server.raw({"Action": "GetImageAncestry", "Version": "2016-11-15",
                        "ImageId": chain["copied"]}, region="us-west-2")
    assert reply.status == 200, reply.text
    items = reply.xml.findall("./imageAncestryEntrySet/item")
    assert [item.findtext("imageId") for item in items] == [
        chain["copied"], chain["created"], chain["registered"]]
    assert items[0].findtext("sourceImageRegion") == "us-east-1"


def test_source_filters_with_real_values(chain):
    east, west = chain["east"], chain["west"]
    by_parent = east.describe_images(
        Owners=["self"], Filters=[{"Name": "source-image-id", "Values": [chain["registered"]]}])
    assert [image["ImageId"] for image in by_parent["Images"]] == [chain["created"]]
    by_instance = east.describe_images(
        Owners=["self"], Filters=[{"Name": "source-instance-id", "Values": [chain["instance"]]}])
    assert [image["ImageId"] for image in by_instance["Images"]] == [chain["created"]]
    copies = west.describe_images(
        Owners=["self"],
        Filters=[{"Name": "source-image-region", "Values": ["us-east-1"]},
                 {"Name": "source-image-id", "Values": [chain["created"]]}])
    assert [image["ImageId"] for image in copies["Images"]] == [chain["copied"]]
    none = west.describe_images(
        Owners=["self"],
        Filters=[{"Name": "source-image-region", "Values": ["eu-west-1"]},
                 {"Name": "source-image-id", "Values": [chain["created"]]}])
    assert none["Images"] == []


def test_source_survives_parent_deregistration_and_ancestry_walks_through(server):
    east = server.client("alice")
    west = server.client("alice", region="us-west-2")
    parent = server.register(east, unique("anc-gone"))
    copy = west.copy_image(SourceRegion="us-east-1", SourceImageId=parent,
                           Name=unique("anc-orphan"))["ImageId"]
    wait_image(west, copy)
    east.deregister_image(ImageId=parent)
    image = describe(west, copy)
    assert image["SourceImageId"] == parent
    assert image["SourceImageRegion"] == "us-east-1"
    found = west.describe_images(
        Owners=["self"], Filters=[{"Name": "source-image-id", "Values": [parent]}])["Images"]
    assert [item["ImageId"] for item in found] == [copy]
    # Deregistered parents keep their records: the walk goes through them.
    entries = west.get_image_ancestry(ImageId=copy)["ImageAncestryEntries"]
    assert [entry["ImageId"] for entry in entries] == [copy, parent]


def test_ancestry_stops_at_an_amazon_image(server, alice):
    amazon = sorted(alice.describe_images(Owners=["amazon"])["Images"],
                    key=lambda image: image["Name"])[0]["ImageId"]
    alone = alice.get_image_ancestry(ImageId=amazon)["ImageAncestryEntries"]
    assert len(alone) == 1 and alone[0]["ImageId"] == amazon
    assert alone[0]["ImageOwnerAlias"] == "amazon"
    [instance] = launch(alice, amazon)
    wait_instance(alice, instance, "running")
    created = alice.create_image(InstanceId=instance, Name=unique("anc-on-amazon"))["ImageId"]
    wait_image(alice, created)
    entries = alice.get_image_ancestry(ImageId=created)["ImageAncestryEntries"]
    assert [entry["ImageId"] for entry in entries] == [created, amazon]
    assert entries[-1]["ImageOwnerAlias"] == "amazon"


def test_ancestry_errors(server, alice, bob):
    expect_error(alice.get_image_ancestry, "InvalidAMIID.Malformed", ImageId="ami-nope")
    expect_error(alice.get_image_ancestry, "InvalidAMIID.NotFound", ImageId=UNKNOWN_IMAGE)
    private = server.register(alice, unique("anc-private"))
    expect_error(bob.get_image_ancestry, "InvalidAMIID.NotFound", ImageId=private)
    # Another region does not see it either.
    west = server.client("alice", region="us-west-2")
    expect_error(west.get_image_ancestry, "InvalidAMIID.NotFound", ImageId=private)
    expect_error(alice.get_image_ancestry, "DryRunOperation", status=412,
                 ImageId=private, DryRun=True)
    share(alice, private, BOB)
    assert bob.get_image_ancestry(ImageId=private)["ImageAncestryEntries"][0]["ImageId"] == private


# --------------------------------------------------------------------------
# Deprecation


def test_deprecation_rounds_to_the_nearest_minute(server, alice):
    image = server.register(alice, unique("dep-round"))
    base = (utcnow() + dt.timedelta(days=3)).replace(second=0, microsecond=0)
    down = base + dt.timedelta(seconds=29, milliseconds=999)
    assert alice.enable_image_deprecation(ImageId=image, DeprecateAt=down)["Return"] is True
    assert describe(alice, image)["DeprecationTime"] == iso(base)
    up = base + dt.timedelta(seconds=30)
    alice.enable_image_deprecation(ImageId=image, DeprecateAt=up)
    assert describe(alice, image)["DeprecationTime"] == iso(base + dt.timedelta(minutes=1))
    assert alice.disable_image_deprecation(ImageId=image)["Return"] is True
    assert "DeprecationTime" not in describe(alice, image)


def test_deprecation_bounds(server, alice):
    image = server.register(alice, unique("dep-bounds"))
    expect_error(alice.enable_image_deprecation, "InvalidParameterValue", ImageId=image,
                 DeprecateAt=utcnow() - dt.timedelta(hours=1))
    expect_error(alice.enable_image_deprecation, "InvalidParameterValue", ImageId=image,
                 DeprecateAt=utcnow() + dt.timedelta(days=3660))
    nine_years = (utcnow() + dt.timedelta(days=9 * 365)).replace(second=0, microsecond=0)
    alice.enable_image_deprecation(ImageId=image, DeprecateAt=nine_years)
    assert describe(alice, image)["DeprecationTime"] == iso(nine_years)
    # A public image may not be deprecated later than 2 years after creation.
    alice.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]})
    expect_error(alice.enable_image_deprecation, "InvalidParameterValue", ImageId=image,
                 DeprecateAt=utcnow() + dt.timedelta(days=3 * 365))
    one_year = (utcnow() + dt.timedelta(days=365)).replace(second=0, microsecond=0)
    alice.enable_image_deprecation(ImageId=image, DeprecateAt=one_year)
    assert describe(alice, image)["DeprecationTime"] == iso(one_year)
    expect_error(alice.enable_image_deprecation, "InvalidAMIID.NotFound", ImageId=UNKNOWN_IMAGE,
                 DeprecateAt=one_year)
    expect_error(alice.enable_image_deprecation, "InvalidAMIID.Malformed", ImageId="ami-x",
                 DeprecateAt=one_year)
    reply = server.raw({"Action": "EnableImageDeprecation", "Version": "2016-11-15",
                        "ImageId": image, "DeprecateAt": "next tuesday"})
    assert (reply.status, reply.code) == (400, "InvalidParameterValue"), reply.text
    reply = server.raw({"Action": "EnableImageDeprecation", "Version": "2016-11-15",
                        "ImageId": image})
    assert (reply.status, reply.code) == (400, "MissingParameter"), reply.text


def test_deprecated_shared_image_visibility_and_owner_rules(server, alice, bob):
    name = unique("dep-shared")
    image = server.register(alice, name)
    share(alice, image, BOB)
    listing = {"Owners": [ALICE], "Filters": [{"Name": "name", "Values": [name]}]}
    assert [i["ImageId"] for i in bob.describe_images(**listing)["Images"]] == [image]
    # Bob may not deprecate it, nor may anyone who cannot see it.
    future = utcnow() + dt.timedelta(days=2)
    expect_error(bob.enable_image_deprecation, "AuthFailure", ImageId=image, DeprecateAt=future)
    expect_error(bob.disable_image_deprecation, "AuthFailure", ImageId=image)
    # A time whose rounding falls on or before now deprecates at once: pick
    # now + 1 s early enough in a minute that it rounds down.
    if utcnow().second >= 25:
        time.sleep(61 - utcnow().second)
    alice.enable_image_deprecation(ImageId=image, DeprecateAt=utcnow() + dt.timedelta(seconds=1))
    deprecation = describe(alice, image)["DeprecationTime"]
    assert dt.datetime.fromisoformat(deprecation.replace("Z", "+00:00")) <= utcnow()
    assert bob.describe_images(**listing)["Images"] == []
    seen = bob.describe_images(IncludeDeprecated=True, **listing)["Images"]
    assert [i["ImageId"] for i in seen] == [image]
    assert seen[0]["DeprecationTime"] == deprecation
    assert describe(bob, image)["ImageId"] == image  # by ID always
    assert [i["ImageId"] for i in alice.describe_images(**listing)["Images"]] == [image]
    # Launch by ID is never blocked by deprecation.
    assert launch(bob, image)
    code, out = server.aws("ec2", "disable-image-deprecation", "--image-id", image)
    assert code == 0 and out == {"Return": True}, out
    assert [i["ImageId"] for i in bob.describe_images(**listing)["Images"]] == [image]


def test_deprecation_with_the_aws_cli_and_dry_run(server, alice):
    image = server.register(alice, unique("dep-cli"))
    code, out = server.aws("ec2", "enable-image-deprecation", "--image-id", image,
                           "--deprecate-at", "2031-04-15T13:17:12Z")
    # 2031 may be more than ten years ahead only after 2021: always valid today.
    assert code == 0 and out == {"Return": True}, out
    assert describe(alice, image)["DeprecationTime"] == "2031-04-15T13:17:00.000Z"
    expect_error(alice.enable_image_deprecation, "DryRunOperation", status=412,
                 ImageId=image, DeprecateAt=utcnow() + dt.timedelta(days=1), DryRun=True)
    assert describe(alice, image)["DeprecationTime"] == "2031-04-15T13:17:00.000Z"
    # Validation comes before DryRun.
    expect_error(alice.enable_image_deprecation, "InvalidParameterValue",
                 ImageId=image, DeprecateAt=utcnow() - dt.timedelta(days=1), DryRun=True)


# --------------------------------------------------------------------------
# Deregistration protection and DeregisterImage


def test_protection_refuses_deregistration_until_disabled(server, alice, bob):
    image = server.register(alice, unique("prot"))
    answer = alice.enable_image_deregistration_protection(ImageId=image)
    assert answer["Return"] == "enabled-without-cooldown"
    assert describe(alice, image)["DeregistrationProtection"] == "enabled-without-cooldown"
    error = expect_error(alice.deregister_image, "OperationNotPermitted", ImageId=image)
    assert "protected" in error.response["Error"]["Message"]
    expect_error(alice.deregister_image, "OperationNotPermitted", ImageId=image, DryRun=True)
    assert describe(alice, image)["State"] == "available"
    answer = alice.disable_image_deregistration_protection(ImageId=image)
    assert answer["Return"] == "disabled"
    assert alice.deregister_image(ImageId=image)["Return"] is True
    assert describe(alice, image)["State"] == "deregistered"


def test_protection_with_cooldown(server, alice):
    image = server.register(alice, unique("prot-cool"))
    answer = alice.enable_image_deregistration_protection(ImageId=image, WithCooldown=True)
    assert answer["Return"] == "enabled-with-cooldown"
    attribute = alice.describe_image_attribute(ImageId=image,
                                               Attribute="deregistrationProtection")
    assert attribute["DeregistrationProtection"]["Value"] == "enabled-with-cooldown"
    answer = alice.disable_image_deregistration_protection(ImageId=image)
    assert answer["Return"] == "disabled-with-cooldown"
    assert describe(alice, image)["DeregistrationProtection"] == "disabled-with-cooldown"
    error = expect_error(alice.deregister_image, "OperationNotPermitted", ImageId=image)
    assert "cooldown" in error.response["Error"]["Message"]
    # Turning protection on again ends the cooldown; off without cooldown frees it.
    answer = alice.enable_image_deregistration_protection(ImageId=image, WithCooldown=False)
    assert answer["Return"] == "enabled-without-cooldown"
    assert alice.disable_image_deregistration_protection(ImageId=image)["Return"] == "disabled"
    alice.deregister_image(ImageId=image)


def test_protection_owner_only_cli_and_dry_run(server, alice, bob):
    image = server.register(alice, unique("prot-owner"))
    share(alice, image, BOB)
    expect_error(bob.enable_image_deregistration_protection, "AuthFailure", ImageId=image)
    expect_error(bob.disable_image_deregistration_protection, "AuthFailure", ImageId=image)
    private = server.register(alice, unique("prot-private"))
    expect_error(bob.enable_image_deregistration_protection, "InvalidAMIID.NotFound",
                 ImageId=private)
    expect_error(alice.enable_image_deregistration_protection, "DryRunOperation", status=412,
                 ImageId=image, DryRun=True)
    assert describe(alice, image)["DeregistrationProtection"] == "disabled"
    code, out = server.aws("ec2", "enable-image-deregistration-protection",
                           "--image-id", image, "--with-cooldown")
    assert code == 0 and out == {"Return": "enabled-with-cooldown"}, out
    code, out = server.aws("ec2", "disable-image-deregistration-protection",
                           "--image-id", image)
    assert code == 0 and out == {"Return": "disabled-with-cooldown"}, out
    code, out = server.aws("ec2", "deregister-image", "--image-id", image)
    assert code != 0 and "OperationNotPermitted" in out, out


def test_delete_associated_snapshots_skips_a_snapshot_still_in_use(server, alice):
    snapshot = server.new_snapshot(alice)
    if server.snapshots_supported is False:
        pytest.skip("the server does not serve EBS direct snapshots")
    first = server.register(alice, unique("das-a"), snapshot_id=snapshot)
    second = server.register(alice, unique("das-b"), snapshot_id=snapshot)
    answer = alice.deregister_image(ImageId=first, DeleteAssociatedSnapshots=True)
    assert answer["Return"] is True
    assert answer["DeleteSnapshotResults"] == [
        {"SnapshotId": snapshot, "ReturnCode": "skipped"}], answer
    assert alice.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"]
    code, out = server.aws("ec2", "deregister-image", "--image-id", second,
                           "--delete-associated-snapshots")
    assert code == 0, out
    assert out["DeleteSnapshotResults"] == [
        {"SnapshotId": snapshot, "ReturnCode": "success"}], out
    expect_error(alice.describe_snapshots, "InvalidSnapshot.NotFound", SnapshotIds=[snapshot])
    # Without the flag there is no result set.
    third = server.register(alice, unique("das-c"))
    assert "DeleteSnapshotResults" not in alice.deregister_image(ImageId=third)


# --------------------------------------------------------------------------
# DisableImage / EnableImage


def test_disable_and_enable_image(server, alice, bob):
    name = unique("dis")
    image = server.register(alice, name)
    share(alice, image, BOB)
    alice.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]})
    assert describe(bob, image)["ImageId"] == image
    expect_error(bob.disable_image, "AuthFailure", ImageId=image)
    expect_error(alice.disable_image, "DryRunOperation", status=412, ImageId=image, DryRun=True)
    assert describe(alice, image)["State"] == "available"
    assert alice.disable_image(ImageId=image)["Return"] is True
    listing = {"Owners": ["self"], "Filters": [{"Name": "name", "Values": [name]}]}
    assert alice.describe_images(**listing)["Images"] == []
    shown = alice.describe_images(IncludeDisabled=True, **listing)["Images"]
    assert [(i["ImageId"], i["State"], i["Public"]) for i in shown] == [(image, "disabled", False)]
    permissions = alice.describe_image_attribute(ImageId=image, Attribute="launchPermission")
    assert permissions["LaunchPermissions"] == []
    expect_error(bob.describe_images, "InvalidAMIID.NotFound", ImageIds=[image])
    expect_error(alice.run_instances, "IncorrectState", ImageId=image, MinCount=1, MaxCount=1)
    expect_error(alice.disable_image, "IncorrectState", ImageId=image)
    expect_error(alice.modify_image_attribute, "IncorrectState", ImageId=image,
                 LaunchPermission={"Add": [{"UserId": BOB}]})
    code, out = server.aws("ec2", "enable-image", "--image-id", image)
    assert code == 0 and out == {"Return": True}, out
    assert describe(alice, image)["State"] == "available"
    assert [i["ImageId"] for i in alice.describe_images(**listing)["Images"]] == [image]
    # Sharing is not restored.
    assert alice.describe_image_attribute(
        ImageId=image, Attribute="launchPermission")["LaunchPermissions"] == []
    expect_error(bob.describe_images, "InvalidAMIID.NotFound", ImageIds=[image])
    expect_error(alice.enable_image, "IncorrectState", ImageId=image)
    assert launch(alice, image)
    code, out = server.aws("ec2", "disable-image", "--image-id", image)
    assert code == 0 and out == {"Return": True}, out
    assert describe(alice, image)["State"] == "disabled"


# --------------------------------------------------------------------------
# DescribeImageReferences


def references(ec2, image_ids, **kwargs):
    found, token = [], None
    while True:
        extra = {"NextToken": token} if token else {}
        page = ec2.describe_image_references(ImageIds=image_ids, **kwargs, **extra)
        found += page["ImageReferences"]
        token = page.get("NextToken")
        if not token:
            return found


def test_image_references_list_own_instances_only(server, alice, bob):
    image = server.register(alice, unique("refs"))
    share(alice, image, BOB)
    mine = launch(alice, image, count=2)
    theirs = launch(bob, image)
    found = references(alice, [image], IncludeAllResourceTypes=True)
    assert sorted(ref["Arn"] for ref in found) == sorted(
        f"arn:aws:ec2:us-east-1:{ALICE}:instance/{instance}" for instance in mine)
    assert all(ref["ImageId"] == image and ref["ResourceType"] == "ec2:Instance"
               for ref in found), found
    bobs = references(bob, [image], ResourceTypes=[{"ResourceType": "ec2:Instance"}])
    assert [ref["Arn"] for ref in bobs] == [
        f"arn:aws:ec2:us-east-1:{BOB}:instance/{theirs[0]}"]
    assert not any(theirs[0] in ref["Arn"] for ref in found)
    # Other resource types have nothing in Hangar.
    assert references(alice, [image], ResourceTypes=[{"ResourceType": "ec2:LaunchTemplate"}]) == []
    # Another region's instances are not listed.
    west = server.client("alice", region="us-west-2")
    expect_error(west.describe_image_references, "InvalidAMIID.NotFound", ImageIds=[image],
                 IncludeAllResourceTypes=True)


def test_image_references_state_option_and_pagination(server, alice):
    image = server.register(alice, unique("refs-page"))
    other = server.register(alice, unique("refs-other"))
    instances = launch(alice, image, count=6)
    [elsewhere] = launch(alice, other)
    alice.terminate_instances(InstanceIds=[instances[0]])
    wait_instance(alice, instances[0], "terminated")
    for instance in instances[1:]:
        wait_instance(alice, instance, "running")
    terminated = alice.describe_image_references(
        ImageIds=[image],
        ResourceTypes=[{"ResourceType": "ec2:Instance",
                        "ResourceTypeOptions": [{"OptionName": "state-name",
                                                 "OptionValues": ["terminated"]}]}])
    assert [ref["Arn"].rsplit("/", 1)[1] for ref in terminated["ImageReferences"]] == [
        instances[0]]
    running = references(alice, [image], ResourceTypes=[
        {"ResourceType": "ec2:Instance",
         "ResourceTypeOptions": [{"OptionName": "state-name",
                                  "OptionValues": ["running", "stopped"]}]}])
    assert sorted(ref["Arn"].rsplit("/", 1)[1] for ref in running) == sorted(instances[1:])
    first = alice.describe_image_references(ImageIds=[image, other],
                                            IncludeAllResourceTypes=True, MaxResults=5)
    assert len(first["ImageReferences"]) == 5 and first.get("NextToken"), first
    second = alice.describe_image_references(ImageIds=[image, other],
                                             IncludeAllResourceTypes=True, MaxResults=5,
                                             NextToken=first["NextToken"])
    assert len(second["ImageReferences"]) == 2 and not second.get("NextToken"), second
    every = [ref["Arn"].rsplit("/", 1)[1]
             for ref in first["ImageReferences"] + second["ImageReferences"]]
    assert sorted(every) == sorted(instances + [elsewhere])
    code, out = server.aws("ec2", "describe-image-references", "--image-ids", other,
                           "--include-all-resource-types")
    assert code == 0, out
    assert [ref["Arn"].rsplit("/", 1)[1] for ref in out["ImageReferences"]] == [elsewhere]


def test_image_references_validation(server, alice):
    strict = server.client("alice", validate=False)
    image = server.register(alice, unique("refs-bad"))
    expect_error(strict.describe_image_references, "InvalidParameterValue",
                 ImageIds=[image], IncludeAllResourceTypes=True, MaxResults=4)
    expect_error(strict.describe_image_references, "InvalidParameterValue",
                 ImageIds=[UNKNOWN_IMAGE] * 11, IncludeAllResourceTypes=True)
    expect_error(strict.describe_image_references, "MissingParameter", ImageIds=[image])
    expect_error(strict.describe_image_references, "MissingParameter", ImageIds=[],
                 IncludeAllResourceTypes=True)
    expect_error(strict.describe_image_references, "InvalidAMIID.Malformed",
                 ImageIds=["ami-zz"], IncludeAllResourceTypes=True)
    expect_error(strict.describe_image_references, "InvalidAMIID.NotFound",
                 ImageIds=[UNKNOWN_IMAGE], IncludeAllResourceTypes=True)
    expect_error(strict.describe_image_references, "InvalidParameterValue",
                 ImageIds=[image], ResourceTypes=[{"ResourceType": "ec2:Volume"}])
    expect_error(strict.describe_image_references, "InvalidParameterValue",
                 ImageIds=[image],
                 ResourceTypes=[{"ResourceType": "ec2:Instance",
                                 "ResourceTypeOptions": [{"OptionName": "state-name",
                                                          "OptionValues": ["asleep"]}]}])
    expect_error(strict.describe_image_references, "InvalidParameterCombination",
                 ImageIds=[image],
                 ResourceTypes=[{"ResourceType": "ec2:Instance",
                                 "ResourceTypeOptions": [{"OptionName": "version-depth",
                                                          "OptionValues": ["3"]}]}])
    expect_error(strict.describe_image_references, "InvalidPaginationToken",
                 ImageIds=[image], IncludeAllResourceTypes=True, NextToken="zz")
    expect_error(strict.describe_image_references, "DryRunOperation", status=412,
                 ImageIds=[image], IncludeAllResourceTypes=True, DryRun=True)


# --------------------------------------------------------------------------
# Every new action: UnknownParameter and DryRun after the checks


NEW_ACTIONS = {
    "GetImageAncestry": {},
    "EnableImageDeprecation": {"DeprecateAt": "2031-01-01T00:00:00Z"},
    "DisableImageDeprecation": {},
    "EnableImageDeregistrationProtection": {"WithCooldown": "true"},
    "DisableImageDeregistrationProtection": {},
    "DisableImage": {},
    "EnableImage": {},
    "DescribeImageReferences": {"IncludeAllResourceTypes": "true"},
}


@pytest.mark.parametrize("action", sorted(NEW_ACTIONS))
def test_new_actions_unknown_parameter_and_dry_run(server, alice, action):
    image = server.register(alice, unique("wire"))
    id_key = "ImageId.1" if action == "DescribeImageReferences" else "ImageId"
    params = {"Action": action, "Version": "2016-11-15", id_key: image, **NEW_ACTIONS[action]}
    reply = server.raw({**params, "Bogus": "1"})
    assert (reply.status, reply.code) == (400, "UnknownParameter"), reply.text
    reply = server.raw({**params, "DryRun": "true"})
    if action == "EnableImage":
        # The image is available, so EnableImage fails its check before DryRun.
        assert (reply.status, reply.code) == (400, "IncorrectState"), reply.text
    else:
        assert (reply.status, reply.code) == (412, "DryRunOperation"), reply.text
    # DryRun never answers for an image the caller cannot see.
    reply = server.raw({**params, id_key: UNKNOWN_IMAGE, "DryRun": "true"})
    assert (reply.status, reply.code) == (400, "InvalidAMIID.NotFound"), reply.text
    reply = server.raw({**params, id_key: image, "DryRun": "true"}, account="bob")
    assert (reply.status, reply.code) == (400, "InvalidAMIID.NotFound"), reply.text
