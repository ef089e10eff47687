"""RegisterImage, DescribeImages (filters, owners, pagination), attributes,
DeregisterImage, error codes and DryRun, driven through boto3 and raw Query."""

import re

import pytest
from botocore.exceptions import ClientError

from conftest import ALICE, BOB, error_code, http_status, unique

AMI_ID = re.compile(r"^ami-[0-9a-f]{17}$")
CREATION_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def expect_error(call, code, status=400, **kwargs):
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    assert error_code(caught.value) == code, caught.value.response
    if status is not None:
        assert http_status(caught.value) == status, caught.value.response
    return caught.value


def describe_one(ec2, image_id):
    images = ec2.describe_images(ImageIds=[image_id])["Images"]
    assert len(images) == 1, images
    return images[0]


def names_filter(prefix):
    return {"Name": "name", "Values": [prefix + "*"]}


# --------------------------------------------------------------------------
# RegisterImage


def test_register_image_with_every_parameter(server, alice):
    name = unique("full")
    snapshot = server.new_snapshot(alice)
    response = alice.register_image(
        Name=name,
        Description="An image with every field set",
        Architecture="arm64",
        VirtualizationType="hvm",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {
                    "SnapshotId": snapshot,
                    "VolumeSize": 16,
                    "VolumeType": "gp3",
                    "DeleteOnTermination": True,
                    "Iops": 4000,
                    "Throughput": 250,
                    "Encrypted": False,
                },
            },
            {"DeviceName": "/dev/sdb", "NoDevice": ""},
        ],
        BootMode="uefi",
        EnaSupport=True,
        TpmSupport="v2.0",
        ImdsSupport="v2.0",
        SriovNetSupport="simple",
        TagSpecifications=[
            {"ResourceType": "image", "Tags": [{"Key": "Team", "Value": "core"},
                                               {"Key": "Empty", "Value": ""}]}
        ],
    )
    assert http_status(response) == 200
    image_id = response["ImageId"]
    assert AMI_ID.match(image_id), image_id

    image = describe_one(alice, image_id)
    assert image["ImageId"] == image_id
    assert image["Name"] == name
    assert image["Description"] == "An image with every field set"
    assert image["Architecture"] == "arm64"
    assert image["VirtualizationType"] == "hvm"
    assert image["RootDeviceName"] == "/dev/xvda"
    assert image["RootDeviceType"] == "ebs"
    assert image["BootMode"] == "uefi"
    assert image["EnaSupport"] is True
    assert image["TpmSupport"] == "v2.0"
    assert image["ImdsSupport"] == "v2.0"
    assert image["SriovNetSupport"] == "simple"
    assert image["State"] == "available"
    assert image["OwnerId"] == ALICE
    assert image["Public"] is False
    assert image["ImageType"] == "machine"
    assert "ImageOwnerAlias" not in image
    assert CREATION_DATE.match(image["CreationDate"]), image["CreationDate"]
    assert "SourceImageId" not in image
    assert "SourceImageRegion" not in image
    assert image.get("DeregistrationProtection") == "disabled"

    mappings = {m["DeviceName"]: m for m in image["BlockDeviceMappings"]}
    assert set(mappings) == {"/dev/xvda", "/dev/sdb"}
    assert mappings["/dev/xvda"]["Ebs"] == {
        "SnapshotId": snapshot,
        "VolumeSize": 16,
        "VolumeType": "gp3",
        "DeleteOnTermination": True,
        "Iops": 4000,
        "Throughput": 250,
        "Encrypted": False,
    }
    assert "NoDevice" in mappings["/dev/sdb"], mappings["/dev/sdb"]
    assert "Ebs" not in mappings["/dev/sdb"]
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert tags == {"Team": "core", "Empty": ""}


def test_register_defaults_and_minimal(server, alice):
    image_id = server.register(alice, unique("min"))
    image = describe_one(alice, image_id)
    assert image["State"] == "available"
    assert "Tags" not in image or image["Tags"] == []
    assert "SourceImageId" not in image


# --------------------------------------------------------------------------
# Errors


def test_duplicate_name(server, alice):
    name = unique("dup")
    server.register(alice, name)
    expect_error(server.register, "InvalidAMIName.Duplicate", ec2=alice, name=name)


def test_same_name_allowed_for_other_account_and_region(server, alice, bob):
    name = unique("shared-name")
    server.register(alice, name)
    server.register(bob, name)
    server.register(server.client("alice", region="eu-west-1"), name)


@pytest.mark.parametrize("name", ["ab", "x" * 129, "bad!name", "bad#name", "tab\tname",
                                  "semi;colon"])
def test_malformed_names(server, name):
    # botocore would refuse the short name itself: let the server judge
    alice = server.client("alice", validate=False)
    expect_error(server.register, "InvalidAMIName.Malformed", ec2=alice, name=name)


@pytest.mark.parametrize("name", ["abc", "y" * 128, "a (b) [c] ./-'@_ d"])
def test_edge_names_accepted(server, alice, name):
    # fixed names: each is registered once in the session server
    image_id = server.register(alice, name)
    assert describe_one(alice, image_id)["Name"] == name


@pytest.mark.parametrize("bad_id", ["ami-xyz", "ami-123", "foo", "ami-0123456789ABCDEF0",
                                    "ami-0123456789abcdef01"])
def test_malformed_image_id(alice, bad_id):
    expect_error(alice.describe_images, "InvalidAMIID.Malformed", ImageIds=[bad_id])


def test_unknown_image_id(alice):
    err = expect_error(alice.describe_images, "InvalidAMIID.NotFound",
                       ImageIds=["ami-0123456789abcdef0"])
    assert "ami-0123456789abcdef0" in err.response["Error"]["Message"]


def test_unknown_image_id_among_known_ones(server, alice):
    known = server.register(alice)
    err = expect_error(alice.describe_images, "InvalidAMIID.NotFound",
                       ImageIds=[known, "ami-0fedcba9876543210"])
    assert "ami-0fedcba9876543210" in err.response["Error"]["Message"]


def test_eight_hex_legacy_id_is_well_formed(alice):
    expect_error(alice.describe_images, "InvalidAMIID.NotFound", ImageIds=["ami-1234abcd"])


def test_ids_with_max_results(server, alice):
    known = server.register(alice)
    expect_error(alice.describe_images, "InvalidParameterCombination",
                 ImageIds=[known], MaxResults=5)


@pytest.mark.parametrize("token", ["garbage", "zz", "00", "76317c4465736372696265546167737c78"])
def test_bad_next_token(alice, token):
    # the last one is a well-formed DescribeTags token: not valid for DescribeImages
    expect_error(alice.describe_images, "InvalidPaginationToken", NextToken=token, MaxResults=5)


def test_unknown_filter_name(alice):
    expect_error(alice.describe_images, "InvalidParameterValue",
                 Filters=[{"Name": "colour", "Values": ["blue"]}])


def test_bad_owner_value(alice):
    expect_error(alice.describe_images, "InvalidParameterValue", Owners=["somebody"])


def test_register_validation_errors(server, alice):
    # unknown architecture, volume type, boot mode
    expect_error(server.register, "InvalidParameterValue", ec2=alice, Architecture="sparc")
    expect_error(server.register, "InvalidParameterValue", ec2=alice, BootMode="bios")
    expect_error(server.register, "InvalidParameterValue", ec2=alice,
                 BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                       "Ebs": {"SnapshotId": server.shared_snapshot(alice),
                                               "VolumeType": "floppy"}}])
    # root device that matches no mapping
    expect_error(server.register, "InvalidParameterValue", ec2=alice, RootDeviceName="/dev/sda1")
    # no name at all
    unchecked = server.client("alice", validate=False)
    expect_error(unchecked.register_image, "MissingParameter", RootDeviceName="/dev/xvda",
                 BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                       "Ebs": {"SnapshotId": server.shared_snapshot(alice)}}])
    # neither an EBS root nor an ImageLocation
    expect_error(unchecked.register_image, "MissingParameter", Name=unique("noroot"))


def test_launch_permission_bad_user_id(server, alice):
    image_id = server.register(alice)
    expect_error(alice.modify_image_attribute, "InvalidAMIAttributeItemValue",
                 ImageId=image_id, LaunchPermission={"Add": [{"UserId": "abc"}]})
    expect_error(alice.modify_image_attribute, "InvalidAMIAttributeItemValue",
                 ImageId=image_id, Attribute="launchPermission", OperationType="add",
                 UserIds=["12345"])
    # nothing was shared
    perms = alice.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    assert perms["LaunchPermissions"] == []


def assert_error_envelope(reply, code, status=400):
    assert reply.status == status, reply.text
    root = reply.xml
    assert root is not None, reply.text
    assert root.tag == "Response", reply.text
    errors = root.findall("./Errors/Error")
    assert len(errors) == 1, reply.text
    assert errors[0].findtext("Code") == code, reply.text
    assert (errors[0].findtext("Message") or "").strip(), reply.text
    request_id = root.findtext("RequestID")
    assert request_id, reply.text
    assert root.find("requestId") is None
    assert reply.headers.get("x-amzn-requestid") == request_id
    assert reply.headers.get("content-type", "").startswith("text/xml")


def test_raw_unknown_action(server):
    reply = server.raw({"Action": "LaunchRockets", "Version": "2016-11-15"})
    assert_error_envelope(reply, "InvalidAction")


def test_raw_missing_action(server):
    reply = server.raw({"Version": "2016-11-15"})
    assert_error_envelope(reply, "MissingAction")


def test_raw_unknown_parameter(server):
    reply = server.raw({"Action": "DescribeImages", "Version": "2016-11-15", "Owner.1": "self",
                        "Colour": "blue"})
    assert_error_envelope(reply, "UnknownParameter")
    assert "Colour" in reply.message


def test_raw_missing_parameter(server):
    image_id = server.register(server.client("alice"))
    reply = server.raw({"Action": "DescribeImageAttribute", "Version": "2016-11-15",
                        "ImageId": image_id})
    assert_error_envelope(reply, "MissingParameter")
    assert "Attribute" in reply.message


def test_raw_missing_version(server):
    reply = server.raw({"Action": "DescribeImages"})
    assert_error_envelope(reply, "MissingParameter")


def test_raw_bad_version(server):
    reply = server.raw({"Action": "DescribeImages", "Version": "2014-01-01"})
    assert_error_envelope(reply, "NoSuchVersion")


def test_raw_not_found_envelope(server):
    reply = server.raw({"Action": "DescribeImages", "Version": "2016-11-15",
                        "ImageId.1": "ami-0123456789abcdef0"})
    assert_error_envelope(reply, "InvalidAMIID.NotFound")


def test_raw_success_envelope(server):
    reply = server.raw({"Action": "DescribeRegions", "Version": "2016-11-15"})
    assert reply.status == 200, reply.text
    assert reply.xml.tag == "DescribeRegionsResponse"
    assert reply.xml[0].tag == "requestId" and reply.xml[0].text
    assert 'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"' in reply.text
    assert reply.headers.get("x-amzn-requestid") == reply.xml.findtext("requestId")


def test_raw_bad_boolean_and_integer(server):
    reply = server.raw({"Action": "DescribeImages", "Version": "2016-11-15", "DryRun": "maybe"})
    assert reply.status == 400, reply.text
    reply = server.raw({"Action": "DescribeImages", "Version": "2016-11-15", "MaxResults": "ten"})
    assert reply.status == 400, reply.text


def test_raw_get_and_post_agree(server):
    params = {"Action": "DescribeImages", "Version": "2016-11-15", "Owner.1": "amazon"}
    post = server.raw(params)
    get = server.raw(params, method="GET")
    assert post.status == get.status == 200, (post.text, get.text)
    ids = lambda reply: sorted(e.text for e in reply.xml.iter("imageId"))  # noqa: E731
    assert ids(post) == ids(get) and len(ids(post)) >= 4


# --------------------------------------------------------------------------
# DryRun


def test_describe_images_dry_run(alice):
    err = expect_error(alice.describe_images, "DryRunOperation", status=412, DryRun=True)
    assert err.response["Error"]["Message"]


def test_dry_run_other_read_actions(server, alice):
    image_id = server.register(alice)
    expect_error(alice.describe_image_attribute, "DryRunOperation", status=412,
                 ImageId=image_id, Attribute="description", DryRun=True)
    expect_error(alice.describe_tags, "DryRunOperation", status=412, DryRun=True)
    expect_error(alice.describe_regions, "DryRunOperation", status=412, DryRun=True)


def test_register_dry_run_creates_nothing(server, alice):
    name = unique("dry")
    expect_error(server.register, "DryRunOperation", status=412, ec2=alice, name=name, DryRun=True)
    found = alice.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])
    assert found["Images"] == []
    # and the name is still free
    server.register(alice, name)


def test_register_dry_run_still_validates(server, alice):
    expect_error(server.register, "InvalidAMIName.Malformed", ec2=alice, name="bad!name",
                 DryRun=True)


def test_mutating_dry_runs_change_nothing(server, alice):
    image_id = server.register(alice, Description="before")
    expect_error(alice.modify_image_attribute, "DryRunOperation", status=412, ImageId=image_id,
                 Description={"Value": "after"}, DryRun=True)
    expect_error(alice.create_tags, "DryRunOperation", status=412, Resources=[image_id],
                 Tags=[{"Key": "k", "Value": "v"}], DryRun=True)
    expect_error(alice.deregister_image, "DryRunOperation", status=412, ImageId=image_id,
                 DryRun=True)
    image = describe_one(alice, image_id)
    assert image["Description"] == "before"
    assert image["State"] == "available"
    assert not image.get("Tags")


def test_modify_dry_run_by_non_owner_private(server, alice, bob):
    image_id = server.register(alice)
    with pytest.raises(ClientError) as caught:
        bob.modify_image_attribute(ImageId=image_id, Description={"Value": "x"}, DryRun=True)
    assert error_code(caught.value) in ("AuthFailure", "InvalidAMIID.NotFound")
    assert http_status(caught.value) != 412


def test_modify_dry_run_by_non_owner_shared_and_public(server, alice, bob):
    image_id = server.register(alice)
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": BOB}]})
    expect_error(bob.modify_image_attribute, "AuthFailure", ImageId=image_id,
                 Description={"Value": "x"}, DryRun=True)
    catalogue = alice.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    expect_error(bob.modify_image_attribute, "AuthFailure", ImageId=catalogue,
                 Description={"Value": "x"}, DryRun=True)
    expect_error(bob.deregister_image, "AuthFailure", ImageId=catalogue, DryRun=True)


# --------------------------------------------------------------------------
# Filters, owners, executable-by


@pytest.fixture(scope="module")
def filter_set(server):
    """Three of Alice's images with distinct names, architectures and tags."""
    alice = server.client("alice")
    prefix = unique("flt")
    snap_a = server.new_snapshot(alice)
    a = server.register(alice, f"{prefix}-alpha-x86", tags={"Env": "prod", "Team": "a"},
                        snapshot_id=snap_a)
    b = server.register(alice, f"{prefix}-alpha-arm", tags={"Env": "dev"}, Architecture="arm64")
    c = server.register(alice, f"{prefix}-beta-x86", tags={"Other": "x"})
    return {"prefix": prefix, "a": a, "b": b, "c": c, "snap_a": snap_a}


def _ids(ec2, prefix, *filters, **kwargs):
    response = ec2.describe_images(Filters=[names_filter(prefix), *filters], **kwargs)
    assert http_status(response) == 200
    return sorted(image["ImageId"] for image in response["Images"])


def _set(fs, *keys):
    return sorted(fs[key] for key in keys)


def test_filter_name_wildcards(alice, filter_set):
    fs, p = filter_set, filter_set["prefix"]
    assert _ids(alice, p) == _set(fs, "a", "b", "c")
    assert _ids(alice, p, {"Name": "name", "Values": [f"{p}-alpha-*"]}) == _set(fs, "a", "b")
    assert _ids(alice, p, {"Name": "name", "Values": [f"{p}-*-x86"]}) == _set(fs, "a", "c")
    assert _ids(alice, p, {"Name": "name", "Values": [f"{p}-alpha-x8?"]}) == _set(fs, "a")
    assert _ids(alice, p, {"Name": "name", "Values": [f"{p}-bet?-x86"]}) == _set(fs, "c")
    # '?' is zero or one character
    assert _ids(alice, p, {"Name": "name", "Values": [f"{p}-beta?-x86"]}) == _set(fs, "c")
    assert _ids(alice, p, {"Name": "name", "Values": [f"{p}-alpha-x86"]}) == _set(fs, "a")
    # exact names are exact, and case-sensitive
    assert _ids(alice, p, {"Name": "name", "Values": [f"{p}-alpha"]}) == []
    assert _ids(alice, p, {"Name": "name", "Values": [f"{p}-ALPHA-*"]}) == []


def test_filter_tags(alice, filter_set):
    fs, p = filter_set, filter_set["prefix"]
    assert _ids(alice, p, {"Name": "tag:Env", "Values": ["prod"]}) == _set(fs, "a")
    assert _ids(alice, p, {"Name": "tag:Env", "Values": ["prod", "dev"]}) == _set(fs, "a", "b")
    assert _ids(alice, p, {"Name": "tag:Env", "Values": ["*"]}) == _set(fs, "a", "b")
    assert _ids(alice, p, {"Name": "tag-key", "Values": ["Env"]}) == _set(fs, "a", "b")
    assert _ids(alice, p, {"Name": "tag-key", "Values": ["Env", "Other"]}) == _set(fs, "a", "b", "c")
    assert _ids(alice, p, {"Name": "tag:env", "Values": ["prod"]}) == []


def test_filter_attributes(alice, filter_set):
    fs, p = filter_set, filter_set["prefix"]
    assert _ids(alice, p, {"Name": "architecture", "Values": ["arm64"]}) == _set(fs, "b")
    assert _ids(alice, p, {"Name": "architecture", "Values": ["arm64", "x86_64"]}) == \
        _set(fs, "a", "b", "c")
    assert _ids(alice, p, {"Name": "state", "Values": ["available"]}) == _set(fs, "a", "b", "c")
    assert _ids(alice, p, {"Name": "state", "Values": ["pending"]}) == []
    assert _ids(alice, p, {"Name": "is-public", "Values": ["false"]}) == _set(fs, "a", "b", "c")
    assert _ids(alice, p, {"Name": "is-public", "Values": ["true"]}) == []
    assert _ids(alice, p, {"Name": "owner-id", "Values": [ALICE]}) == _set(fs, "a", "b", "c")
    assert _ids(alice, p, {"Name": "owner-id", "Values": [BOB]}) == []
    assert _ids(alice, p, {"Name": "image-id", "Values": [fs["b"]]}) == _set(fs, "b")
    assert _ids(alice, p, {"Name": "block-device-mapping.snapshot-id",
                           "Values": [fs["snap_a"]]}) == _set(fs, "a")
    assert _ids(alice, p, {"Name": "root-device-type", "Values": ["ebs"]}) == _set(fs, "a", "b", "c")


def test_filters_are_anded(alice, filter_set):
    fs, p = filter_set, filter_set["prefix"]
    assert _ids(alice, p, {"Name": "architecture", "Values": ["x86_64"]}) == _set(fs, "a", "c")
    assert _ids(alice, p, {"Name": "architecture", "Values": ["x86_64"]},
                {"Name": "tag-key", "Values": ["Env"]}) == _set(fs, "a")
    assert _ids(alice, p, {"Name": "architecture", "Values": ["arm64"]},
                {"Name": "tag:Env", "Values": ["prod"]}) == []


def test_owners(server, alice, bob, filter_set):
    fs, p = filter_set, filter_set["prefix"]
    assert _ids(alice, p, Owners=["self"]) == _set(fs, "a", "b", "c")
    assert _ids(alice, p, Owners=[ALICE]) == _set(fs, "a", "b", "c")
    assert _ids(alice, p, Owners=["amazon"]) == []
    assert _ids(bob, p, Owners=["self"]) == []
    assert _ids(bob, p, Owners=[ALICE]) == []  # private to Alice
    # self + amazon merges both
    mixed = alice.describe_images(Owners=["self", "amazon"],
                                  Filters=[{"Name": "image-id", "Values": [fs["a"]]}])["Images"]
    assert [i["ImageId"] for i in mixed] == [fs["a"]]
    everything = alice.describe_images(Owners=["self", "amazon"])["Images"]
    owners = {i.get("ImageOwnerAlias") or i["OwnerId"] for i in everything}
    assert owners == {"amazon", ALICE}


def test_executable_users_all(alice, filter_set):
    public = alice.describe_images(ExecutableUsers=["all"])["Images"]
    assert len(public) >= 4
    assert all(image["Public"] for image in public)
    assert filter_set["a"] not in {image["ImageId"] for image in public}


def test_filter_value_limits(alice):
    expect_error(alice.describe_images, "FilterLimitExceeded",
                 Filters=[{"Name": "name", "Values": [f"v{i}" for i in range(201)]}])


# --------------------------------------------------------------------------
# Pagination


@pytest.fixture(scope="module")
def twelve(server):
    alice = server.client("alice")
    batch = unique("batch")
    ids = [server.register(alice, tags={"Batch": batch}) for _ in range(12)]
    return batch, sorted(ids)


def test_pagination_by_hand(alice, twelve):
    batch, expected = twelve
    seen, pages, token = [], [], None
    while True:
        kwargs = {"Filters": [{"Name": "tag:Batch", "Values": [batch]}], "MaxResults": 5}
        if token:
            kwargs["NextToken"] = token
        response = alice.describe_images(**kwargs)
        pages.append(len(response["Images"]))
        assert len(response["Images"]) <= 5
        seen.extend(image["ImageId"] for image in response["Images"])
        token = response.get("NextToken")
        if not token:
            break
        assert len(pages) < 10, "pagination does not end"
    assert sorted(seen) == expected
    assert len(seen) == len(set(seen)) == 12
    assert sum(pages) == 12 and len(pages) >= 3


def test_pagination_with_boto3_paginator(alice, twelve):
    batch, expected = twelve
    paginator = alice.get_paginator("describe_images")
    seen, pages = [], 0
    for page in paginator.paginate(Filters=[{"Name": "tag:Batch", "Values": [batch]}],
                                   PaginationConfig={"PageSize": 5}):
        pages += 1
        seen.extend(image["ImageId"] for image in page["Images"])
    assert sorted(seen) == expected
    assert len(seen) == len(set(seen))
    assert pages >= 3


def test_pagination_unfiltered_listing_has_no_duplicates(alice, twelve):
    """Paging the whole visible set of the account also yields every image once."""
    seen, token = [], None
    for _ in range(1000):
        kwargs = {"MaxResults": 50, "Owners": ["self"]}
        if token:
            kwargs["NextToken"] = token
        response = alice.describe_images(**kwargs)
        seen.extend(image["ImageId"] for image in response["Images"])
        token = response.get("NextToken")
        if not token:
            break
    assert len(seen) == len(set(seen))
    assert set(twelve[1]) <= set(seen)
    unpaged = alice.describe_images(Owners=["self"])["Images"]
    assert len(unpaged) >= len(seen) - 0  # images may be added concurrently, never lost
    assert set(seen) <= {i["ImageId"] for i in unpaged}


def test_max_results_out_of_range(alice):
    expect_error(alice.describe_images, "InvalidParameterValue", MaxResults=0)
    expect_error(alice.describe_images, "InvalidParameterValue", MaxResults=1001)


# --------------------------------------------------------------------------
# Attributes


def attribute(ec2, image_id, name):
    response = ec2.describe_image_attribute(ImageId=image_id, Attribute=name)
    assert http_status(response) == 200
    assert response["ImageId"] == image_id
    return response


def test_describe_image_attributes(server, alice):
    image_id = server.register(alice, Description="desc one", BootMode="uefi-preferred",
                               ImdsSupport="v2.0", TpmSupport="v2.0", SriovNetSupport="simple")
    assert attribute(alice, image_id, "description")["Description"] == {"Value": "desc one"}
    assert attribute(alice, image_id, "bootMode")["BootMode"] == {"Value": "uefi-preferred"}
    assert attribute(alice, image_id, "imdsSupport")["ImdsSupport"] == {"Value": "v2.0"}
    assert attribute(alice, image_id, "tpmSupport")["TpmSupport"] == {"Value": "v2.0"}
    assert attribute(alice, image_id, "sriovNetSupport")["SriovNetSupport"] == {"Value": "simple"}
    assert attribute(alice, image_id, "launchPermission")["LaunchPermissions"] == []
    assert attribute(alice, image_id, "deregistrationProtection")["DeregistrationProtection"] == \
        {"Value": "disabled"}
    last = attribute(alice, image_id, "lastLaunchedTime")
    assert last.get("LastLaunchedTime", {}).get("Value") in (None, "")
    assert attribute(alice, image_id, "productCodes").get("ProductCodes", []) == []


def test_describe_attribute_of_image_without_optional_values(server, alice):
    image_id = server.register(alice)
    assert attribute(alice, image_id, "description").get("Description", {}).get("Value") in (None, "")
    assert attribute(alice, image_id, "bootMode").get("BootMode", {}).get("Value") in (None, "")


def test_unknown_attribute(server, alice):
    image_id = server.register(alice)
    err = expect_error(alice.describe_image_attribute, "InvalidParameterValue",
                       ImageId=image_id, Attribute="colour")
    assert http_status(err) == 400
    with pytest.raises(ClientError) as caught:
        alice.modify_image_attribute(ImageId=image_id, Attribute="colour", Value="blue")
    assert http_status(caught.value) == 400
    expect_error(alice.reset_image_attribute, "InvalidParameterValue", ImageId=image_id,
                 Attribute="description")


def test_block_device_mapping_attribute_is_refused(server, alice):
    image_id = server.register(alice)
    expect_error(alice.describe_image_attribute, "AuthFailure", ImageId=image_id,
                 Attribute="blockDeviceMapping")


def test_modify_description_both_forms(server, alice):
    image_id = server.register(alice, Description="first")
    response = alice.modify_image_attribute(ImageId=image_id, Description={"Value": "second"})
    assert http_status(response) == 200
    assert attribute(alice, image_id, "description")["Description"]["Value"] == "second"
    assert describe_one(alice, image_id)["Description"] == "second"
    alice.modify_image_attribute(ImageId=image_id, Attribute="description", Value="third")
    assert attribute(alice, image_id, "description")["Description"]["Value"] == "third"
    assert describe_one(alice, image_id)["Description"] == "third"


def test_modify_two_attributes_at_once_is_refused(server, alice):
    image_id = server.register(alice, Description="d")
    with pytest.raises(ClientError) as caught:
        alice.modify_image_attribute(ImageId=image_id, Description={"Value": "x"},
                                     LaunchPermission={"Add": [{"UserId": BOB}]})
    assert http_status(caught.value) == 400
    assert attribute(alice, image_id, "description")["Description"]["Value"] == "d"
    assert attribute(alice, image_id, "launchPermission")["LaunchPermissions"] == []


def test_modify_imds_support(server, alice):
    image_id = server.register(alice)
    alice.modify_image_attribute(ImageId=image_id, ImdsSupport={"Value": "v2.0"})
    assert attribute(alice, image_id, "imdsSupport")["ImdsSupport"] == {"Value": "v2.0"}
    expect_error(alice.modify_image_attribute, "InvalidParameterValue", ImageId=image_id,
                 ImdsSupport={"Value": "v1.0"})


def test_attribute_of_unknown_and_malformed_ids(alice):
    expect_error(alice.describe_image_attribute, "InvalidAMIID.NotFound",
                 ImageId="ami-0123456789abcdef0", Attribute="description")
    expect_error(alice.describe_image_attribute, "InvalidAMIID.Malformed",
                 ImageId="ami-nope", Attribute="description")
    expect_error(alice.modify_image_attribute, "InvalidAMIID.NotFound",
                 ImageId="ami-0123456789abcdef0", Description={"Value": "x"})


# --------------------------------------------------------------------------
# DeregisterImage


def test_deregister(server, alice):
    name = unique("dereg")
    image_id = server.register(alice, name, tags={"K": "V"})
    response = alice.deregister_image(ImageId=image_id)
    assert http_status(response) == 200
    assert response.get("Return") in (True, None)

    image = describe_one(alice, image_id)
    assert image["State"] == "deregistered"

    listed = alice.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])
    assert listed["Images"] == []
    listed = alice.describe_images(Filters=[{"Name": "image-id", "Values": [image_id]}])
    assert listed["Images"] == []

    expect_error(alice.modify_image_attribute, "InvalidAMIID.Unavailable", ImageId=image_id,
                 Description={"Value": "x"})
    expect_error(alice.describe_image_attribute, "InvalidAMIID.Unavailable", ImageId=image_id,
                 Attribute="description")
    expect_error(alice.deregister_image, "InvalidAMIID.Unavailable", ImageId=image_id)

    # the name is free again
    again = server.register(alice, name)
    assert again != image_id
    assert describe_one(alice, again)["State"] == "available"


def test_deregister_by_non_owner(server, alice, bob):
    image_id = server.register(alice)
    expect_error(bob.deregister_image, "InvalidAMIID.NotFound", ImageId=image_id)
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    expect_error(bob.deregister_image, "AuthFailure", ImageId=image_id)
    assert describe_one(alice, image_id)["State"] == "available"


def test_deregistered_shared_image_is_gone_for_the_sharee(server, alice, bob):
    image_id = server.register(alice)
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": BOB}]})
    assert describe_one(bob, image_id)["ImageId"] == image_id
    alice.deregister_image(ImageId=image_id)
    with pytest.raises(ClientError) as caught:
        bob.describe_images(ImageIds=[image_id])
    assert error_code(caught.value) == "InvalidAMIID.NotFound"


# --------------------------------------------------------------------------
# More DescribeImages semantics


def test_owners_apply_together_with_image_ids(server, alice):
    """Owner.N scopes the result even when ImageId.N is given (AWS applies
    every scoping parameter together; ExecutableBy already does)."""
    catalogue = alice.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    mine = server.register(alice)
    assert [i["ImageId"] for i in alice.describe_images(ImageIds=[catalogue],
                                                        Owners=["amazon"])["Images"]] == [catalogue]
    assert alice.describe_images(ImageIds=[catalogue], ExecutableUsers=["self"])["Images"] == []
    both = alice.describe_images(ImageIds=[catalogue, mine], Owners=["self"])["Images"]
    assert [i["ImageId"] for i in both] == [mine]
    assert alice.describe_images(ImageIds=[catalogue], Owners=["self"])["Images"] == []


def test_owner_by_catalogue_account_id_and_alias_filter(alice):
    catalogue = alice.describe_images(Owners=["amazon"])["Images"]
    owner_id = catalogue[0]["OwnerId"]
    by_id = alice.describe_images(Owners=[owner_id])["Images"]
    assert sorted(i["ImageId"] for i in by_id) == sorted(i["ImageId"] for i in catalogue)
    by_alias = alice.describe_images(Filters=[{"Name": "owner-alias", "Values": ["amazon"]}])
    assert sorted(i["ImageId"] for i in by_alias["Images"]) == sorted(i["ImageId"] for i in catalogue)
    assert alice.describe_images(Owners=["aws-marketplace"])["Images"] == []


def test_executable_users_self_excludes_own_images(server, alice):
    image_id = server.register(alice)
    assert image_id not in {i["ImageId"] for i in
                            alice.describe_images(ExecutableUsers=["self"])["Images"]}
    assert image_id not in {i["ImageId"] for i in
                            alice.describe_images(ExecutableUsers=[ALICE])["Images"]}


def test_executable_users_bogus_value(alice):
    expect_error(alice.describe_images, "InvalidParameterValue", ExecutableUsers=["bogus"])


def test_describe_dry_run_validates_first(alice):
    expect_error(alice.describe_images, "InvalidAMIID.Malformed", ImageIds=["ami-bad"], DryRun=True)
    expect_error(alice.describe_images, "InvalidAMIID.NotFound",
                 ImageIds=["ami-0123456789abcdef0"], DryRun=True)


@pytest.fixture(scope="module")
def rich_image(server):
    alice = server.client("alice")
    snapshot = server.new_snapshot(alice)
    image_id = server.register(
        alice, unique("rich"), Description="star*desc?back\\slash",
        Architecture="arm64", BootMode="uefi", EnaSupport=True, TpmSupport="v2.0",
        ImdsSupport="v2.0", SriovNetSupport="simple",
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot, "VolumeSize": 30,
                                                "VolumeType": "io2", "DeleteOnTermination": False,
                                                "Iops": 5000, "Encrypted": True}},
            {"DeviceName": "/dev/sdf", "NoDevice": ""},
        ],
    )
    return image_id, snapshot, describe_one(alice, image_id)


@pytest.mark.parametrize("name,value,matches", [
    ("description", "star\\*desc\\?back\\\\slash", True),
    ("description", "star*", True),
    ("description", "star\\*d", False),
    ("description", "starXdesc*", False),
    ("description", "*back\\\\slash", True),
    ("virtualization-type", "hvm", True),
    ("virtualization-type", "paravirtual", False),
    ("boot-mode", "uefi", True),
    ("ena-support", "true", True),
    ("ena-support", "false", False),
    ("tpm-support", "v2.0", True),
    ("imds-support", "v2.0", True),
    ("sriov-net-support", "simple", True),
    ("root-device-name", "/dev/xvda", True),
    ("root-device-type", "instance-store", False),
    ("block-device-mapping.device-name", "/dev/sdf", True),
    ("block-device-mapping.volume-size", "30", True),
    ("block-device-mapping.volume-size", "8", False),
    ("block-device-mapping.volume-type", "io2", True),
    ("block-device-mapping.delete-on-termination", "false", True),
    ("block-device-mapping.encrypted", "true", True),
    ("image-type", "machine", True),
    ("hypervisor", "xen", True),
    ("platform-details", "Linux/UNIX", True),
    ("owner-alias", "amazon", False),
    ("source-image-id", "*", False),
    ("image-allowed", "true", True),
    ("free-tier-eligible", "false", True),
    ("scan-result.highest-finding-severity-label", "*", False),
])
def test_filter_table(alice, rich_image, name, value, matches):
    image_id = rich_image[0]
    found = alice.describe_images(Filters=[{"Name": "image-id", "Values": [image_id]},
                                           {"Name": name, "Values": [value]}])["Images"]
    assert [i["ImageId"] for i in found] == ([image_id] if matches else []), (name, value)


def test_creation_date_filter(alice, rich_image):
    image_id, _, image = rich_image
    day = image["CreationDate"][:10]
    for pattern, matches in [(f"{day}T*", True), (image["CreationDate"], True),
                             ("1999-01-01T*", False)]:
        found = alice.describe_images(Filters=[{"Name": "image-id", "Values": [image_id]},
                                               {"Name": "creation-date", "Values": [pattern]}])
        assert bool(found["Images"]) == matches, pattern


def test_creation_date_is_now(rich_image):
    import datetime as dt
    created = dt.datetime.strptime(rich_image[2]["CreationDate"], "%Y-%m-%dT%H:%M:%S.%fZ")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert abs((now - created).total_seconds()) < 600


def test_special_characters_round_trip(server, alice):
    text = "<a href=\"x\">&amp; 'quotes' é ü 日本 ]]> \u00a0</a>"
    image_id = server.register(alice, Description=text, tags={"K<&>": text})
    image = describe_one(alice, image_id)
    assert image["Description"] == text
    assert image["Tags"] == [{"Key": "K<&>", "Value": text}]
    assert attribute(alice, image_id, "description")["Description"]["Value"] == text


def test_register_defaults(server, alice):
    unchecked = server.client("alice", validate=False)
    name = unique("defaults")
    image_id = unchecked.register_image(
        Name=name, RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": server.shared_snapshot(alice)}}],
    )["ImageId"]
    image = describe_one(alice, image_id)
    assert image["VirtualizationType"] == "paravirtual"  # AWS's documented default
    assert image["Architecture"] == "x86_64"
    assert image["ImageLocation"] == f"{ALICE}/{name}"


def test_register_instance_store(alice):
    name = unique("s3backed")
    image_id = alice.register_image(Name=name, ImageLocation="my-bucket/image.manifest.xml")["ImageId"]
    image = describe_one(alice, image_id)
    assert image["RootDeviceType"] == "instance-store"
    assert image["ImageLocation"] == "my-bucket/image.manifest.xml"


def test_register_more_validation(server, alice):
    expect_error(server.register, "InvalidParameterValue", ec2=alice, Description="d" * 256)
    expect_error(server.register, "InvalidParameterValue", ec2=alice, TpmSupport="v1.2")
    expect_error(server.register, "InvalidParameterValue", ec2=alice,
                 TagSpecifications=[{"ResourceType": "snapshot",
                                     "Tags": [{"Key": "a", "Value": "b"}]}])
    for size in (0, 70000):
        expect_error(server.register, "InvalidParameterValue", ec2=alice,
                     BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                           "Ebs": {"SnapshotId": server.shared_snapshot(alice),
                                                   "VolumeSize": size}}])
    expect_error(server.register, "InvalidParameterValue", ec2=alice,
                 BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                       "Ebs": {"SnapshotId": "snap-nope"}}])
    expect_error(server.register, "InvalidParameterValue", ec2=alice,
                 BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                       "Ebs": {"SnapshotId": server.shared_snapshot(alice)}},
                                      {"DeviceName": "/dev/xvda", "NoDevice": ""}])


def test_pagination_survives_deregistration_between_pages(server, alice):
    batch = unique("pg")
    ids = sorted(server.register(alice, tags={"Batch": batch}) for _ in range(7))
    flt = [{"Name": "tag:Batch", "Values": [batch]}]
    first = alice.describe_images(Filters=flt, MaxResults=3)
    first_ids = [i["ImageId"] for i in first["Images"]]
    assert len(first_ids) == 3 and first.get("NextToken")
    # the last image of the page goes away before the next page is read
    alice.deregister_image(ImageId=first_ids[-1])
    rest, token = [], first["NextToken"]
    while token:
        page = alice.describe_images(Filters=flt, MaxResults=3, NextToken=token)
        rest.extend(i["ImageId"] for i in page["Images"])
        token = page.get("NextToken")
    assert sorted(first_ids + rest) == ids


def test_catalogue_attributes_for_a_non_owner(alice):
    image = alice.describe_images(Owners=["amazon"])["Images"][0]
    description = attribute(alice, image["ImageId"], "description")
    assert description["Description"]["Value"] == image["Description"]
    assert attribute(alice, image["ImageId"], "bootMode")["BootMode"]["Value"] == image["BootMode"]
    expect_error(alice.describe_image_attribute, "AuthFailure", ImageId=image["ImageId"],
                 Attribute="launchPermission")
    expect_error(alice.reset_image_attribute, "AuthFailure", ImageId=image["ImageId"],
                 Attribute="launchPermission")
