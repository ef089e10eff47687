"""CreateTags, DeleteTags and DescribeTags on images."""

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, http_status, unique


def tags_of(ec2, image_id):
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    return {tag["Key"]: tag["Value"] for tag in image.get("Tags", [])}


def expect_error(call, code=None, status=None, **kwargs):
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    if code is not None:
        assert error_code(caught.value) == code, caught.value.response
    if status is not None:
        assert http_status(caught.value) == status, caught.value.response
    else:
        assert 400 <= http_status(caught.value) < 500, caught.value.response
    return caught.value


def test_create_and_delete_tags(server, alice):
    image_id = server.register(alice, tags={"Keep": "1"})
    response = alice.create_tags(Resources=[image_id], Tags=[{"Key": "Env", "Value": "prod"},
                                                             {"Key": "Team", "Value": "core"}])
    assert http_status(response) == 200
    assert tags_of(alice, image_id) == {"Keep": "1", "Env": "prod", "Team": "core"}

    # overwrite a value
    alice.create_tags(Resources=[image_id], Tags=[{"Key": "Env", "Value": "dev"}])
    assert tags_of(alice, image_id)["Env"] == "dev"

    # delete by key + mismatching value keeps it
    alice.delete_tags(Resources=[image_id], Tags=[{"Key": "Env", "Value": "prod"}])
    assert tags_of(alice, image_id)["Env"] == "dev"
    # delete by key + matching value removes it
    alice.delete_tags(Resources=[image_id], Tags=[{"Key": "Env", "Value": "dev"}])
    assert "Env" not in tags_of(alice, image_id)
    # delete by key alone
    alice.delete_tags(Resources=[image_id], Tags=[{"Key": "Team"}])
    assert tags_of(alice, image_id) == {"Keep": "1"}
    # deleting a key that is not there is fine
    alice.delete_tags(Resources=[image_id], Tags=[{"Key": "Nope"}])
    assert tags_of(alice, image_id) == {"Keep": "1"}


def test_delete_tag_with_empty_value_only_matches_empty(server, alice):
    image_id = server.register(alice, tags={"A": "x", "B": ""})
    alice.delete_tags(Resources=[image_id], Tags=[{"Key": "A", "Value": ""}])
    alice.delete_tags(Resources=[image_id], Tags=[{"Key": "B", "Value": ""}])
    assert tags_of(alice, image_id) == {"A": "x"}


def test_tags_on_several_images(server, alice):
    first = server.register(alice)
    second = server.register(alice)
    alice.create_tags(Resources=[first, second], Tags=[{"Key": "Pair", "Value": "yes"}])
    assert tags_of(alice, first) == {"Pair": "yes"}
    assert tags_of(alice, second) == {"Pair": "yes"}


def test_describe_tags_filters_and_pagination(server, alice):
    image_id = server.register(alice)
    other = server.register(alice)
    marker = unique("v")
    tags = [{"Key": f"k{n:02d}", "Value": marker if n % 2 else "even"} for n in range(12)]
    alice.create_tags(Resources=[image_id], Tags=tags)
    alice.create_tags(Resources=[other], Tags=[{"Key": "k00", "Value": marker}])

    by_resource = alice.describe_tags(Filters=[{"Name": "resource-id", "Values": [image_id]}])
    rows = by_resource["Tags"]
    assert sorted(t["Key"] for t in rows) == [f"k{n:02d}" for n in range(12)]
    for row in rows:
        assert row["ResourceId"] == image_id
        assert row["ResourceType"] == "image"

    by_value = alice.describe_tags(Filters=[{"Name": "value", "Values": [marker]}])["Tags"]
    assert sorted((t["ResourceId"], t["Key"]) for t in by_value) == sorted(
        [(image_id, f"k{n:02d}") for n in range(1, 12, 2)] + [(other, "k00")]
    )

    by_key = alice.describe_tags(Filters=[
        {"Name": "resource-id", "Values": [image_id, other]},
        {"Name": "key", "Values": ["k00", "k11"]},
    ])["Tags"]
    assert sorted((t["ResourceId"], t["Key"]) for t in by_key) == sorted(
        [(image_id, "k00"), (image_id, "k11"), (other, "k00")]
    )
    wildcard = alice.describe_tags(Filters=[
        {"Name": "resource-id", "Values": [image_id]},
        {"Name": "key", "Values": ["k1?"]},
    ])["Tags"]
    assert sorted(t["Key"] for t in wildcard) == ["k10", "k11"]

    # pagination, MaxResults 5
    seen, pages, token = [], 0, None
    while True:
        kwargs = {"Filters": [{"Name": "resource-id", "Values": [image_id]}], "MaxResults": 5}
        if token:
            kwargs["NextToken"] = token
        page = alice.describe_tags(**kwargs)
        pages += 1
        assert len(page["Tags"]) <= 5
        seen.extend(t["Key"] for t in page["Tags"])
        token = page.get("NextToken")
        if not token:
            break
        assert pages < 10
    assert sorted(seen) == [f"k{n:02d}" for n in range(12)]
    assert len(seen) == len(set(seen))
    assert pages == 3

    paginator = alice.get_paginator("describe_tags")
    paged = [t["Key"] for p in paginator.paginate(
        Filters=[{"Name": "resource-id", "Values": [image_id]}], PaginationConfig={"PageSize": 5})
        for t in p["Tags"]]
    assert sorted(paged) == [f"k{n:02d}" for n in range(12)]


def test_describe_tags_errors(alice):
    expect_error(alice.describe_tags, "InvalidParameterValue",
                 Filters=[{"Name": "colour", "Values": ["x"]}])
    expect_error(alice.describe_tags, "InvalidParameterValue", MaxResults=4)
    expect_error(alice.describe_tags, "InvalidPaginationToken", NextToken="garbage")


def test_bob_does_not_see_alices_tags(server, alice, bob):
    image_id = server.register(alice, tags={"Private": "alice"})
    assert bob.describe_tags(Filters=[{"Name": "resource-id", "Values": [image_id]}])["Tags"] == []
    assert bob.describe_tags(Filters=[{"Name": "key", "Values": ["Private"]}])["Tags"] == []


def test_tagging_images_one_does_not_own(server, alice, bob):
    catalogue = alice.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    expect_error(alice.create_tags, Resources=[catalogue], Tags=[{"Key": "Mine", "Value": "no"}])
    expect_error(alice.delete_tags, Resources=[catalogue], Tags=[{"Key": "Name"}])
    bobs = server.register(bob, tags={"Bob": "1"})
    expect_error(alice.create_tags, "InvalidAMIID.NotFound", Resources=[bobs],
                 Tags=[{"Key": "Mine", "Value": "no"}])
    expect_error(alice.delete_tags, "InvalidAMIID.NotFound", Resources=[bobs])
    assert tags_of(bob, bobs) == {"Bob": "1"}
    # a shared image is still Bob's to tag
    bob.modify_image_attribute(ImageId=bobs, LaunchPermission={"Add": [{"UserId": "111111111111"}]})
    expect_error(alice.create_tags, Resources=[bobs], Tags=[{"Key": "Mine", "Value": "no"}])
    assert tags_of(bob, bobs) == {"Bob": "1"}


def test_bad_resource_ids(alice):
    expect_error(alice.create_tags, Resources=["i-0123456789abcdef0"],
                 Tags=[{"Key": "k", "Value": "v"}])
    expect_error(alice.create_tags, "InvalidAMIID.NotFound", Resources=["ami-0123456789abcdef0"],
                 Tags=[{"Key": "k", "Value": "v"}])
    expect_error(alice.create_tags, Resources=["nonsense"], Tags=[{"Key": "k", "Value": "v"}])


def test_a_bad_resource_tags_nothing(server, alice):
    image_id = server.register(alice)
    expect_error(alice.create_tags, Resources=[image_id, "ami-0123456789abcdef0"],
                 Tags=[{"Key": "k", "Value": "v"}])
    assert tags_of(alice, image_id) == {}


def test_tag_limit(server, alice):
    image_id = server.register(alice)
    fifty = [{"Key": f"k{n}", "Value": "v"} for n in range(50)]
    alice.create_tags(Resources=[image_id], Tags=fifty)
    assert len(tags_of(alice, image_id)) == 50
    expect_error(alice.create_tags, "TagLimitExceeded", Resources=[image_id],
                 Tags=[{"Key": "one-more", "Value": "v"}])
    # replacing an existing key is still fine at the limit
    alice.create_tags(Resources=[image_id], Tags=[{"Key": "k0", "Value": "w"}])
    assert tags_of(alice, image_id)["k0"] == "w"

    fresh = server.register(alice)
    expect_error(alice.create_tags, "TagLimitExceeded", Resources=[fresh],
                 Tags=[{"Key": f"k{n}", "Value": "v"} for n in range(51)])
    assert tags_of(alice, fresh) == {}


def test_tag_limit_checked_under_dry_run(server, alice):
    """DryRun validates first: 51 tags in one request can never succeed, so a
    dry run must not answer DryRunOperation ("would have succeeded")."""
    image_id = server.register(alice)
    expect_error(alice.create_tags, "TagLimitExceeded", status=400, Resources=[image_id],
                 Tags=[{"Key": f"k{n}", "Value": "v"} for n in range(51)], DryRun=True)
    # the dry run with a valid request does answer DryRunOperation
    expect_error(alice.create_tags, "DryRunOperation", status=412, Resources=[image_id],
                 Tags=[{"Key": "k", "Value": "v"}], DryRun=True)
    assert tags_of(alice, image_id) == {}


def test_tag_limit_at_register(server, alice):
    expect_error(server.register, "TagLimitExceeded", ec2=alice,
                 tags={f"k{n}": "v" for n in range(51)})


@pytest.mark.parametrize("key", ["aws:reserved", "AWS:Reserved"])
def test_reserved_prefix(server, alice, key):
    image_id = server.register(alice)
    expect_error(alice.create_tags, "InvalidParameterValue", Resources=[image_id],
                 Tags=[{"Key": key, "Value": "v"}])
    expect_error(server.register, "InvalidParameterValue", ec2=alice, tags={key: "v"})
    assert tags_of(alice, image_id) == {}


def test_tag_sizes(server, alice):
    image_id = server.register(alice)
    alice.create_tags(Resources=[image_id], Tags=[{"Key": "k" * 127, "Value": "v" * 256}])
    expect_error(alice.create_tags, "InvalidParameterValue", Resources=[image_id],
                 Tags=[{"Key": "k" * 128, "Value": "v"}])
    expect_error(alice.create_tags, "InvalidParameterValue", Resources=[image_id],
                 Tags=[{"Key": "k", "Value": "v" * 257}])


def test_tags_of_deregistered_image_leave_describe_tags(server, alice):
    image_id = server.register(alice, tags={"Gone": "soon"})
    alice.deregister_image(ImageId=image_id)
    rows = alice.describe_tags(Filters=[{"Name": "resource-id", "Values": [image_id]}])["Tags"]
    assert rows == []
    expect_error(alice.create_tags, "InvalidAMIID.Unavailable", Resources=[image_id],
                 Tags=[{"Key": "k", "Value": "v"}])


def test_delete_tags_without_tags_removes_all(server, alice):
    image_id = server.register(alice, tags={"A": "1", "B": "2"})
    alice.delete_tags(Resources=[image_id])
    assert tags_of(alice, image_id) == {}


def test_describe_tags_resource_type(server, alice):
    image_id = server.register(alice, tags={"Typed": "yes"})
    rows = alice.describe_tags(Filters=[{"Name": "resource-id", "Values": [image_id]},
                                        {"Name": "resource-type", "Values": ["image"]}])["Tags"]
    assert [(r["Key"], r["ResourceType"]) for r in rows] == [("Typed", "image")]
    rows = alice.describe_tags(Filters=[{"Name": "resource-id", "Values": [image_id]},
                                        {"Name": "resource-type", "Values": ["snapshot"]}])["Tags"]
    assert rows == []


def test_tagging_dry_run_on_foreign_image(server, alice, bob):
    bobs = server.register(bob)
    bob.modify_image_attribute(ImageId=bobs, LaunchPermission={"Add": [{"Group": "all"}]})
    with pytest.raises(ClientError) as caught:
        alice.create_tags(Resources=[bobs], Tags=[{"Key": "k", "Value": "v"}], DryRun=True)
    assert error_code(caught.value) != "DryRunOperation"
    assert http_status(caught.value) in (400, 403)
