"""The dev clock (`dev_clock`, `/_hangar/clock`) and the reporting delay of
`lastLaunchedTime` (`[usage] report_delay`).

Every server here is a fresh `make_server` with its own data directory, so
moving its clock disturbs no other test."""

from __future__ import annotations

import datetime as _dt
import json
import subprocess

import botocore.exceptions
import pytest

from conftest import BOB, HANGAR_BIN, config_toml, free_port, http

HOUR = 3600
DEV_CLOCK = 'dev_clock = true\n[usage]\nreport_delay = "24h"\n'


def clock(hangar, method="GET", path="/_hangar/clock"):
    reply = http(method, hangar.endpoint + path, data=b"" if method == "POST" else None)
    body = json.loads(reply.text) if reply.text.strip().startswith("{") else None
    return reply, body


def advance(hangar, by):
    return clock(hangar, "POST", f"/_hangar/clock/advance?by={by}")


def parse_time(text: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def error_of(call, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"][
        "HTTPStatusCode"]


def owned_image(ec2, image_id):
    [image] = ec2.describe_images(ImageIds=[image_id])["Images"]
    return image


def last_launched_attribute(ec2, image_id):
    answer = ec2.describe_image_attribute(ImageId=image_id, Attribute="lastLaunchedTime")
    return answer.get("LastLaunchedTime", {}).get("Value")


def shared_image(hangar):
    """An image of alice's, shared with bob; returns (alice, bob, image_id)."""
    alice, bob = hangar.client("alice"), hangar.client("bob")
    image_id = hangar.register(alice)
    alice.modify_image_attribute(ImageId=image_id,
                                 LaunchPermission={"Add": [{"UserId": BOB}]})
    return alice, bob, image_id


# --------------------------------------------------------------------------
# the clock routes


def test_clock_get_and_advance_with_dev_clock(make_server):
    hangar = make_server("clock", extra_config=DEV_CLOCK)
    reply, before = clock(hangar)
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    assert before["offset_seconds"] == 0
    wall_before = parse_time(before["now"])
    reply, after = advance(hangar, "90d")
    assert reply.status == 200, reply.text
    assert after["offset_seconds"] == 90 * 24 * HOUR
    moved = parse_time(after["now"]) - wall_before
    assert _dt.timedelta(days=90) <= moved < _dt.timedelta(days=90, minutes=1), moved
    reply, again = advance(hangar, "1h30m")
    assert reply.status == 200 and again["offset_seconds"] == 90 * 24 * HOUR + 5400
    reply, read = clock(hangar)
    assert reply.status == 200 and read["offset_seconds"] == again["offset_seconds"]
    # Zero moves nothing and is not an error.
    reply, same = advance(hangar, "0s")
    assert reply.status == 200 and same["offset_seconds"] == again["offset_seconds"]


def test_clock_advance_is_refused_without_dev_clock(server):
    reply, body = advance(server, "90d")
    assert reply.status == 403, reply.text
    assert "dev_clock" in body["error"]
    reply, read = clock(server)
    assert reply.status == 200 and read["offset_seconds"] == 0
    # The service time is wall time.
    skew = abs(parse_time(read["now"]) - _dt.datetime.now(_dt.timezone.utc))
    assert skew < _dt.timedelta(minutes=1), read


def test_clock_advance_bad_requests(make_server):
    hangar = make_server("badby", extra_config=DEV_CLOCK)
    for path in ["/_hangar/clock/advance", "/_hangar/clock/advance?by=",
                 "/_hangar/clock/advance?by=soon", "/_hangar/clock/advance?by=-1h",
                 "/_hangar/clock/advance?by=24", "/_hangar/clock/advance?by=1.5h",
                 "/_hangar/clock/advance?by=999999999d"]:
        reply, body = clock(hangar, "POST", path)
        assert reply.status == 400, (path, reply.status, reply.text)
        assert body and body["error"], (path, reply.text)
    reply, _ = clock(hangar, "GET", "/_hangar/clock/advance?by=1h")
    assert reply.status == 405, reply.text
    reply, read = clock(hangar)
    assert read["offset_seconds"] == 0, read


def test_advancing_ends_the_deregistered_window(make_server):
    hangar = make_server("window", extra_config=DEV_CLOCK)
    alice = hangar.client("alice")
    image_id = hangar.register(alice)
    alice.deregister_image(ImageId=image_id)
    # Within [images] deregistered_visible_secs (1 hour) it still reads by ID.
    assert owned_image(alice, image_id)["State"] == "deregistered"
    reply, _ = advance(hangar, "2h")
    assert reply.status == 200, reply.text
    assert error_of(alice.describe_images, ImageIds=[image_id]) == ("InvalidAMIID.NotFound", 400)


def test_advancing_ages_store_tasks_out_of_the_31_day_window(make_server):
    from datahelpers import make_disk, register, unique, write_disk
    from test_s3_buckets import s3_client
    from test_store_restore import wait_store

    hangar = make_server("taskwindow", extra_config=DEV_CLOCK)
    ec2 = hangar.client("alice")
    ebs = hangar.client("alice", service="ebs")
    s3 = s3_client(hangar, "alice")
    bucket = unique("window")
    s3.create_bucket(Bucket=bucket)
    image_id = register(ec2, write_disk(ebs, make_disk(seed=71, blocks=4)), name=unique("w"))
    ec2.create_store_image_task(ImageId=image_id, Bucket=bucket)
    assert wait_store(ec2, image_id)["StoreTaskState"] == "Completed"
    listed = ec2.describe_store_image_tasks()["StoreImageTaskResults"]
    assert [task["AmiId"] for task in listed] == [image_id]
    reply, _ = advance(hangar, "30d")
    assert reply.status == 200, reply.text
    assert len(ec2.describe_store_image_tasks()["StoreImageTaskResults"]) == 1
    reply, _ = advance(hangar, "2d")
    assert reply.status == 200, reply.text
    assert ec2.describe_store_image_tasks()["StoreImageTaskResults"] == []
    by_id = ec2.describe_store_image_tasks(ImageIds=[image_id])["StoreImageTaskResults"]
    assert by_id == [], by_id


def test_advancing_times_out_an_open_ebs_snapshot(make_server):
    hangar = make_server("ebs", extra_config=DEV_CLOCK)
    ec2 = hangar.client("alice")
    ebs = hangar.client("alice", service="ebs")
    snapshot_id = ebs.start_snapshot(VolumeSize=1, Timeout=60)["SnapshotId"]
    [snapshot] = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert snapshot["State"] == "pending"
    reply, _ = advance(hangar, "59m")
    assert reply.status == 200
    assert ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"] == "pending"
    reply, _ = advance(hangar, "2m")
    assert reply.status == 200
    # Signed requests still pass: SigV4's time check keeps wall time.
    [snapshot] = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert snapshot["State"] == "error", snapshot


def test_offset_survives_a_restart(make_server):
    hangar = make_server("restart", extra_config=DEV_CLOCK)
    reply, moved = advance(hangar, "3d")
    assert reply.status == 200, reply.text
    hangar.restart()
    reply, read = clock(hangar)
    assert reply.status == 200 and read["offset_seconds"] == 3 * 24 * HOUR, read
    assert parse_time(read["now"]) >= parse_time(moved["now"])


# --------------------------------------------------------------------------
# lastLaunchedTime and the reporting delay


def test_last_launched_time_waits_for_the_report_delay(make_server):
    hangar = make_server("delay", extra_config=DEV_CLOCK)
    alice, bob, image_id = shared_image(hangar)
    launched = bob.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
    launch_time = launched["Instances"][0]["LaunchTime"]

    # Inside the delay: nobody sees the launch yet.
    assert "LastLaunchedTime" not in owned_image(alice, image_id)
    assert last_launched_attribute(alice, image_id) in (None, "")
    reply, _ = advance(hangar, "23h")
    assert reply.status == 200
    assert "LastLaunchedTime" not in owned_image(alice, image_id)

    reply, _ = advance(hangar, "2h")
    assert reply.status == 200
    reported = owned_image(alice, image_id)["LastLaunchedTime"]
    assert abs(parse_time(reported) - launch_time) < _dt.timedelta(seconds=2), (reported,
                                                                                launch_time)
    assert last_launched_attribute(alice, image_id) == reported
    # The AWS CLI reads the same value.
    code, answer = hangar.aws("ec2", "describe-images", "--image-ids", image_id)
    assert code == 0, answer
    assert answer["Images"][0]["LastLaunchedTime"] == reported
    code, answer = hangar.aws("ec2", "describe-image-attribute", "--image-id", image_id,
                              "--attribute", "lastLaunchedTime")
    assert code == 0, answer
    assert answer["LastLaunchedTime"]["Value"] == reported

    # The launcher never sees it, and may not ask for it.
    [seen_by_bob] = bob.describe_images(ImageIds=[image_id])["Images"]
    assert "LastLaunchedTime" not in seen_by_bob
    assert error_of(bob.describe_image_attribute, ImageId=image_id,
                    Attribute="lastLaunchedTime") == ("AuthFailure", 400)
    code, answer = hangar.aws("ec2", "describe-image-attribute", "--image-id", image_id,
                              "--attribute", "lastLaunchedTime", account="bob")
    assert code != 0 and "AuthFailure" in answer, answer

    # A newer launch waits its own delay: the older one keeps showing.
    bob.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
    assert owned_image(alice, image_id)["LastLaunchedTime"] == reported

    # Both the launch history and the clock offset survive a restart.
    hangar.restart()
    assert owned_image(alice, image_id)["LastLaunchedTime"] == reported
    reply, read = clock(hangar)
    assert read["offset_seconds"] == 25 * HOUR, read
    reply, _ = advance(hangar, "25h")
    assert reply.status == 200
    newer = owned_image(alice, image_id)["LastLaunchedTime"]
    assert parse_time(newer) - parse_time(reported) >= _dt.timedelta(hours=25), (newer,
                                                                                 reported)
    assert "LastLaunchedTime" not in bob.describe_images(ImageIds=[image_id])["Images"][0]


def test_zero_report_delay_shows_launches_at_once(make_server):
    hangar = make_server("nodelay", extra_config='[usage]\nreport_delay = "0s"\n')
    alice, bob, image_id = shared_image(hangar)
    bob.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
    reported = owned_image(alice, image_id)["LastLaunchedTime"]
    skew = abs(parse_time(reported) - _dt.datetime.now(_dt.timezone.utc))
    assert skew < _dt.timedelta(minutes=1), reported
    assert last_launched_attribute(alice, image_id) == reported
    assert "LastLaunchedTime" not in bob.describe_images(ImageIds=[image_id])["Images"][0]
    hangar.restart()
    assert owned_image(alice, image_id)["LastLaunchedTime"] == reported


def test_default_delay_hides_a_fresh_launch(make_server):
    # No [usage] section: 24 hours, as on AWS.
    hangar = make_server("default")
    alice, bob, image_id = shared_image(hangar)
    bob.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
    assert "LastLaunchedTime" not in owned_image(alice, image_id)


# --------------------------------------------------------------------------
# start-up refusals


def start_with(tmp_path, extra, listen_host="127.0.0.1"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "hangar.toml"
    config.write_text(config_toml(free_port(), tmp_path / "data", extra=extra,
                                  listen_host=listen_host))
    return subprocess.run([str(HANGAR_BIN), "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=10,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("value", ["soon", "24", "-1h", "1h 30m", ""])
def test_bad_report_delay_refuses_start(tmp_path, value):
    result = start_with(tmp_path, f'[usage]\nreport_delay = "{value}"\n')
    assert result.returncode != 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "usage.report_delay" in lines[0], lines[0]
    assert "panicked" not in result.stderr


def test_dev_clock_needs_a_loopback_listener(tmp_path):
    result = start_with(tmp_path, "dev_clock = true\n", listen_host="0.0.0.0")
    assert result.returncode != 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "dev_clock" in lines[0] and "loopback" in lines[0], lines[0]
    assert "panicked" not in result.stderr
