"""Health, unauthenticated requests, regions and zones, the starter catalogue."""

import re
import urllib.request

import pytest

from conftest import REGIONS, http, http_status


def test_health_needs_no_auth(server):
    with urllib.request.urlopen(server.endpoint + "/_hangar/health", timeout=5) as response:
        assert response.status == 200


def test_unsigned_get_root_is_missing_authentication_token(server):
    reply = http("GET", server.endpoint + "/")
    assert 400 <= reply.status < 500, reply.text
    assert reply.code == "MissingAuthenticationToken", reply.text


def test_unsigned_post_action_is_refused(server):
    reply = server.raw({"Action": "DescribeImages", "Version": "2016-11-15"}, sign=False)
    assert 400 <= reply.status < 500, reply.text
    assert reply.code == "MissingAuthenticationToken", reply.text


def test_unknown_dev_helper_is_404(server):
    reply = http("GET", server.endpoint + "/_hangar/nope")
    assert reply.status == 404


@pytest.mark.parametrize("region", REGIONS)
def test_describe_regions_lists_the_configured_regions(server, region):
    ec2 = server.client("alice", region=region)
    response = ec2.describe_regions()
    assert http_status(response) == 200
    names = sorted(r["RegionName"] for r in response["Regions"])
    assert names == sorted(REGIONS)
    for entry in response["Regions"]:
        assert entry.get("Endpoint"), entry


@pytest.mark.parametrize("region", REGIONS)
def test_describe_availability_zones(server, region):
    ec2 = server.client("alice", region=region)
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert len(zones) == 3, zones
    names = sorted(zone["ZoneName"] for zone in zones)
    for name in names:
        assert re.fullmatch(re.escape(region) + r"[a-z]", name), name
    assert len(set(names)) == 3
    for zone in zones:
        assert zone["RegionName"] == region
        assert zone["State"] == "available"
        assert zone.get("ZoneId"), zone


def _catalogue(server, region):
    ec2 = server.client("alice", region=region)
    response = ec2.describe_images(Owners=["amazon"])
    assert http_status(response) == 200
    return response["Images"]


@pytest.mark.parametrize("region", REGIONS)
def test_catalogue_in_every_region(server, region):
    images = _catalogue(server, region)
    assert len(images) >= 4, images
    names = [image["Name"] for image in images]
    assert any(name.startswith("al2023-ami-") for name in names), names
    assert any(name.startswith("ubuntu/images/") for name in names), names
    assert {image["Architecture"] for image in images} >= {"x86_64", "arm64"}
    for image in images:
        assert image["ImageOwnerAlias"] == "amazon", image
        assert image["State"] == "available", image
        assert image["Public"] is True, image
        assert re.fullmatch(r"ami-[0-9a-f]{17}", image["ImageId"]), image
        assert re.fullmatch(r"\d{12}", image["OwnerId"]), image
        assert image["RootDeviceType"] == "ebs"
        assert "DeprecationTime" not in image
    # each of the 4 families has both architectures
    for family in ("al2023-ami-", "ubuntu/images/"):
        archs = {i["Architecture"] for i in images if i["Name"].startswith(family)}
        assert archs >= {"x86_64", "arm64"}, (family, archs)


def test_catalogue_ids_differ_per_region(server):
    ids = {region: {image["ImageId"] for image in _catalogue(server, region)} for region in REGIONS}
    for a in REGIONS:
        for b in REGIONS:
            if a < b:
                assert not (ids[a] & ids[b]), (a, b)


def test_catalogue_images_are_regional(server):
    """An image of us-east-1's catalogue is not found from us-west-2."""
    east = _catalogue(server, "us-east-1")[0]["ImageId"]
    west = server.client("alice", region="us-west-2")
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        west.describe_images(ImageIds=[east])
    assert caught.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"


def test_catalogue_stable_across_restart_and_data_dirs(make_server):
    first = make_server("a")
    before = {r: sorted((i["ImageId"], i["Name"], i["CreationDate"]) for i in _catalogue(first, r))
              for r in REGIONS}
    first.restart()
    after = {r: sorted((i["ImageId"], i["Name"], i["CreationDate"]) for i in _catalogue(first, r))
             for r in REGIONS}
    assert after == before
    # a brand-new data directory derives the very same IDs
    other = make_server("b")
    fresh = {r: sorted((i["ImageId"], i["Name"], i["CreationDate"]) for i in _catalogue(other, r))
             for r in REGIONS}
    assert fresh == before
