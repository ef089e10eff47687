"""Many clients at once: no lost updates, unique names stay unique, no 5xx."""

import threading

from botocore.exceptions import ClientError

from conftest import REGIONS, error_code, unique


def run_threads(count, target):
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)


def test_concurrent_tagging_loses_nothing(server, alice):
    image_id = server.register(alice)
    errors = []

    def tag(n):
        try:
            server.client("alice").create_tags(Resources=[image_id],
                                               Tags=[{"Key": f"k{n}", "Value": str(n)}])
        except Exception as error:  # noqa: BLE001
            errors.append(repr(error))

    run_threads(30, tag)
    assert errors == []
    tags = alice.describe_images(ImageIds=[image_id])["Images"][0]["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {f"k{n}": str(n) for n in range(30)}


def test_concurrent_launch_permission_changes(server, alice):
    image_id = server.register(alice)
    accounts = [f"{n:012d}" for n in range(300000000000, 300000000020)]
    errors = []

    def share(n):
        try:
            server.client("alice").modify_image_attribute(
                ImageId=image_id, LaunchPermission={"Add": [{"UserId": accounts[n]}]})
        except Exception as error:  # noqa: BLE001
            errors.append(repr(error))

    run_threads(len(accounts), share)
    assert errors == []
    got = alice.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    assert sorted(p["UserId"] for p in got["LaunchPermissions"]) == accounts


def test_same_name_race_has_one_winner(server):
    name = unique("race")
    results = []

    def register(_):
        try:
            results.append(server.register(server.client("alice"), name))
        except ClientError as error:
            results.append(error_code(error))

    run_threads(10, register)
    winners = [r for r in results if r.startswith("ami-")]
    assert len(winners) == 1, results
    assert sorted(set(results) - set(winners)) == ["InvalidAMIName.Duplicate"], results


def test_mixed_load_across_accounts_and_regions(server):
    errors, made = [], []

    def work(n):
        ec2 = server.client("alice" if n % 2 else "bob", region=REGIONS[n % 3])
        for _ in range(4):
            try:
                image_id = server.register(ec2)
                ec2.create_tags(Resources=[image_id], Tags=[{"Key": "load", "Value": "1"}])
                ec2.describe_images(Owners=["self"], MaxResults=50)
                made.append((n, image_id))
            except Exception as error:  # noqa: BLE001
                errors.append(repr(error)[:300])

    run_threads(12, work)
    assert errors == []
    assert len(made) == 48
    for n, image_id in made:
        ec2 = server.client("alice" if n % 2 else "bob", region=REGIONS[n % 3])
        image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
        assert image["Tags"] == [{"Key": "load", "Value": "1"}]
    assert "panicked" not in server.log_text()
