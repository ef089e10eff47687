"""Account isolation and launch permissions (structured and legacy forms)."""

import pytest
from botocore.exceptions import ClientError

from conftest import ALICE, BOB, error_code, http_status, unique


def codes_of(call, **kwargs):
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return error_code(caught.value), http_status(caught.value)


def visible_ids(ec2, **kwargs):
    return {image["ImageId"] for image in ec2.describe_images(**kwargs)["Images"]}


def launch_permissions(ec2, image_id):
    response = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    return response["LaunchPermissions"]


def test_private_image_is_invisible_to_others(server, alice, bob):
    name = unique("private")
    image_id = server.register(alice, name, tags={"Secret": "yes"})
    assert codes_of(bob.describe_images, ImageIds=[image_id]) == ("InvalidAMIID.NotFound", 400)
    assert image_id not in visible_ids(bob)
    assert image_id not in visible_ids(bob, Filters=[{"Name": "name", "Values": [name]}])
    assert image_id not in visible_ids(bob, Owners=[ALICE])
    assert image_id not in visible_ids(bob, ExecutableUsers=["self"])
    # attributes and changes are equally hidden
    code, _ = codes_of(bob.describe_image_attribute, ImageId=image_id, Attribute="description")
    assert code == "InvalidAMIID.NotFound"
    code, _ = codes_of(bob.modify_image_attribute, ImageId=image_id, Description={"Value": "x"})
    assert code == "InvalidAMIID.NotFound"
    # the owner sees it
    assert image_id in visible_ids(alice, Owners=["self"])


def test_images_are_per_region(server, alice):
    image_id = server.register(alice)
    west = server.client("alice", region="us-west-2")
    assert codes_of(west.describe_images, ImageIds=[image_id])[0] == "InvalidAMIID.NotFound"
    assert image_id not in visible_ids(west, Owners=["self"])


def _check_shared_with_bob(server, alice, bob, image_id):
    image = bob.describe_images(ImageIds=[image_id])["Images"][0]
    assert image["ImageId"] == image_id
    assert image["OwnerId"] == ALICE
    assert image["Public"] is False
    assert not image.get("Tags"), "tags are the owner's alone"
    assert image_id in visible_ids(bob, ExecutableUsers=["self"])
    assert image_id in visible_ids(bob, ExecutableUsers=[BOB])
    assert image_id in visible_ids(bob, Owners=[ALICE])
    assert image_id in visible_ids(alice, ExecutableUsers=[BOB])
    assert image_id not in visible_ids(bob, ExecutableUsers=["all"])
    # a tag filter never matches for the sharee (the sharee has no view of the tags)
    assert image_id not in visible_ids(
        bob, Filters=[{"Name": "tag:Team", "Values": ["blue"]}, {"Name": "image-id", "Values": [image_id]}]
    )
    # Bob may read non-owner attributes but not change anything
    description = bob.describe_image_attribute(ImageId=image_id, Attribute="description")
    assert description["ImageId"] == image_id
    assert codes_of(bob.modify_image_attribute, ImageId=image_id,
                    Description={"Value": "bob was here"})[0] == "AuthFailure"
    assert codes_of(bob.modify_image_attribute, ImageId=image_id,
                    LaunchPermission={"Add": [{"Group": "all"}]})[0] == "AuthFailure"
    assert codes_of(bob.describe_image_attribute, ImageId=image_id,
                    Attribute="launchPermission")[0] == "AuthFailure"
    assert codes_of(bob.describe_image_attribute, ImageId=image_id,
                    Attribute="lastLaunchedTime")[0] == "AuthFailure"
    assert codes_of(bob.reset_image_attribute, ImageId=image_id,
                    Attribute="launchPermission")[0] == "AuthFailure"
    with pytest.raises(ClientError):
        bob.create_tags(Resources=[image_id], Tags=[{"Key": "Bob", "Value": "x"}])
    # nothing changed for Alice
    owner_view = alice.describe_images(ImageIds=[image_id])["Images"][0]
    assert owner_view.get("Description") != "bob was here"
    assert {t["Key"] for t in owner_view.get("Tags", [])} == {"Team"}
    assert owner_view["Public"] is False


def test_share_with_structured_form(server, alice, bob):
    image_id = server.register(alice, tags={"Team": "blue"})
    response = alice.modify_image_attribute(
        ImageId=image_id, LaunchPermission={"Add": [{"UserId": BOB}]}
    )
    assert http_status(response) == 200
    assert launch_permissions(alice, image_id) == [{"UserId": BOB}]
    _check_shared_with_bob(server, alice, bob, image_id)
    # remove again with the structured form
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={"Remove": [{"UserId": BOB}]})
    assert launch_permissions(alice, image_id) == []
    assert codes_of(bob.describe_images, ImageIds=[image_id])[0] == "InvalidAMIID.NotFound"


def test_share_with_legacy_form_via_cli(server, alice, bob):
    image_id = server.register(alice, tags={"Team": "blue"})
    code, out = server.aws("ec2", "modify-image-attribute", "--image-id", image_id,
                           "--attribute", "launchPermission", "--operation-type", "add",
                           "--user-ids", BOB, account="alice")
    assert code == 0, out
    assert launch_permissions(alice, image_id) == [{"UserId": BOB}]
    _check_shared_with_bob(server, alice, bob, image_id)
    code, out = server.aws("ec2", "modify-image-attribute", "--image-id", image_id,
                           "--attribute", "launchPermission", "--operation-type", "remove",
                           "--user-ids", BOB, account="alice")
    assert code == 0, out
    assert launch_permissions(alice, image_id) == []


def test_share_with_legacy_form_via_boto3(server, alice, bob):
    image_id = server.register(alice)
    alice.modify_image_attribute(ImageId=image_id, Attribute="launchPermission",
                                 OperationType="add", UserIds=[BOB])
    assert image_id in visible_ids(bob, ExecutableUsers=["self"])
    assert launch_permissions(alice, image_id) == [{"UserId": BOB}]


def test_adding_twice_keeps_one_entry(server, alice):
    image_id = server.register(alice)
    for _ in range(2):
        alice.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": BOB}]})
    assert launch_permissions(alice, image_id) == [{"UserId": BOB}]


def test_public_and_reset(server, alice, bob):
    name = unique("public")
    image_id = server.register(alice, name, tags={"Team": "blue"})
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    assert launch_permissions(alice, image_id) == [{"Group": "all"}]

    only = [{"Name": "image-id", "Values": [image_id]}]
    public = alice.describe_images(Filters=only + [{"Name": "is-public", "Values": ["true"]}])
    assert [i["ImageId"] for i in public["Images"]] == [image_id]
    assert public["Images"][0]["Public"] is True
    # Bob sees it in a plain listing, by id, with ExecutableUsers all, and by name
    assert image_id in visible_ids(bob)
    assert image_id in visible_ids(bob, ExecutableUsers=["all"])
    assert image_id in visible_ids(bob, Filters=[{"Name": "name", "Values": [name]}])
    bob_view = bob.describe_images(ImageIds=[image_id])["Images"][0]
    assert bob_view["Public"] is True and not bob_view.get("Tags")
    # still Alice's alone to change
    assert codes_of(bob.modify_image_attribute, ImageId=image_id,
                    Description={"Value": "x"})[0] == "AuthFailure"

    # the legacy way to take it back: UserGroup all, remove
    alice.modify_image_attribute(ImageId=image_id, Attribute="launchPermission",
                                 OperationType="remove", UserGroups=["all"])
    assert launch_permissions(alice, image_id) == []
    assert image_id not in visible_ids(bob)

    # share with Bob and make public again, then reset: private to Alice
    alice.modify_image_attribute(ImageId=image_id, Attribute="launchPermission",
                                 OperationType="add", UserGroups=["all"])
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": BOB}]})
    assert image_id in visible_ids(bob)
    response = alice.reset_image_attribute(ImageId=image_id, Attribute="launchPermission")
    assert http_status(response) == 200
    assert launch_permissions(alice, image_id) == []
    private = alice.describe_images(Filters=only + [{"Name": "is-public", "Values": ["false"]}])
    assert [i["ImageId"] for i in private["Images"]] == [image_id]
    assert codes_of(bob.describe_images, ImageIds=[image_id])[0] == "InvalidAMIID.NotFound"
    assert image_id not in visible_ids(bob)


def test_bad_group(server, alice):
    image_id = server.register(alice)
    code, status = codes_of(alice.modify_image_attribute, ImageId=image_id,
                            LaunchPermission={"Add": [{"Group": "everyone"}]})
    assert (code, status) == ("InvalidAMIAttributeItemValue", 400)
    code, status = codes_of(alice.modify_image_attribute, ImageId=image_id,
                            Attribute="launchPermission", OperationType="add",
                            UserGroups=["everyone"])
    assert (code, status) == ("InvalidAMIAttributeItemValue", 400)


def test_legacy_form_needs_operation_type(server, alice):
    image_id = server.register(alice)
    code, status = codes_of(alice.modify_image_attribute, ImageId=image_id,
                            Attribute="launchPermission", UserIds=[BOB])
    assert status == 400 and code == "MissingParameter"


def test_organization_arns(server, alice):
    image_id = server.register(alice)
    org = "arn:aws:organizations::111111111111:organization/o-abcdefghij"
    alice.modify_image_attribute(ImageId=image_id,
                                 LaunchPermission={"Add": [{"OrganizationArn": org}]})
    assert launch_permissions(alice, image_id) == [{"OrganizationArn": org}]
    code, status = codes_of(alice.modify_image_attribute, ImageId=image_id,
                            LaunchPermission={"Add": [{"OrganizationArn": "not-an-arn"}]})
    assert (code, status) == ("InvalidAMIAttributeItemValue", 400)


def test_other_accounts_describe_tags_hide_alices(server, alice, bob):
    image_id = server.register(alice, tags={"Owner": "alice"})
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    mine = alice.describe_tags(Filters=[{"Name": "resource-id", "Values": [image_id]}])["Tags"]
    assert [(t["Key"], t["Value"]) for t in mine] == [("Owner", "alice")]
    theirs = bob.describe_tags(Filters=[{"Name": "resource-id", "Values": [image_id]}])["Tags"]
    assert theirs == []
    all_bobs = bob.describe_tags()["Tags"]
    assert image_id not in {t["ResourceId"] for t in all_bobs}


def test_ten_thousand_accounts_per_request(server, alice):
    image_id = server.register(alice)
    accounts = [f"{n:012d}" for n in range(400000000000, 400000010000)]
    alice.modify_image_attribute(ImageId=image_id,
                                 LaunchPermission={"Add": [{"UserId": a} for a in accounts]})
    assert len(launch_permissions(alice, image_id)) == 10000
    more = [f"{n:012d}" for n in range(500000000000, 500000010001)]
    code, status = codes_of(alice.modify_image_attribute, ImageId=image_id,
                            LaunchPermission={"Add": [{"UserId": a} for a in more]})
    assert status == 400 and code == "InvalidParameterValue"
    assert len(launch_permissions(alice, image_id)) == 10000


def test_auth_failure_status_is_400(server, alice, bob):
    image_id = server.register(alice)
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": BOB}]})
    assert codes_of(bob.describe_image_attribute, ImageId=image_id,
                    Attribute="launchPermission") == ("AuthFailure", 400)
    assert codes_of(bob.deregister_image, ImageId=image_id) == ("AuthFailure", 400)
