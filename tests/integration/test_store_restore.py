"""Storing AMIs in buckets and restoring them, end to end, against the real
binary: real snapshot data in, one archive object in the bucket, the same
bytes out of the restored snapshots."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time

import pytest

from conftest import HANGAR_BIN, error_code
from datahelpers import (
    assert_same_disk,
    make_disk,
    read_disk,
    register,
    unique,
    wait_image,
    write_disk,
)
from test_s3_buckets import aws_text, bucket_name, client_error, s3_client


def wait_store(ec2, image_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        tasks = ec2.describe_store_image_tasks(ImageIds=[image_id])["StoreImageTaskResults"]
        if tasks and tasks[0]["StoreTaskState"] != "InProgress":
            return tasks[0]
        assert time.monotonic() < deadline, f"store of {image_id} still in progress: {tasks}"
        time.sleep(0.2)


@pytest.fixture
def setup(server):
    ec2 = server.client("alice", service="ec2")
    ebs = server.client("alice", service="ebs")
    s3 = s3_client(server, "alice")
    bucket = bucket_name("store")
    s3.create_bucket(Bucket=bucket)
    yield ec2, ebs, s3, bucket
    for entry in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=entry["Key"])
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    s3.delete_bucket(Bucket=bucket)


def test_store_and_restore_round_trip(server, setup, tmp_path):
    ec2, ebs, s3, bucket = setup
    # 256 MiB of random, text, repeated, partly-zero and zero blocks.
    root = make_disk(seed=11, blocks=512)
    data = make_disk(seed=12, blocks=40)
    root_snapshot = write_disk(ebs, root, volume_size=1)
    data_snapshot = write_disk(ebs, data, volume_size=1)
    ec2.create_tags(Resources=[root_snapshot], Tags=[{"Key": "disk", "Value": "root"}])
    name = unique("stored")
    image_id = register(
        ec2, root_snapshot, name=name, Description="an image to store",
        BootMode="uefi",
        extra_mappings=[{"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": data_snapshot}}],
        TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "team", "Value": "a"}]}])

    key = ec2.create_store_image_task(ImageId=image_id, Bucket=bucket,
                                      S3ObjectTags=[{"Key": "kept", "Value": "yes"}])["ObjectKey"]
    assert key == f"{image_id}.bin"
    task = wait_store(ec2, image_id)
    assert task["StoreTaskState"] == "Completed", task
    assert task["ProgressPercentage"] == 100
    assert task["Bucket"] == bucket and task["S3objectKey"] == key

    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["Metadata"]["ami-name"] == name
    assert head["Metadata"]["ami-owner-account"] == "111111111111"
    tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    assert tags == [{"Key": "kept", "Value": "yes"}]
    nonzero = sum(1 for block in root + data if block != bytes(len(block)))
    assert head["ContentLength"] < nonzero * 512 * 1024, "compressed"

    # The CLI can check the object without restoring it.
    local = tmp_path / key
    s3.download_file(bucket, key, str(local))
    verify = subprocess.run([str(HANGAR_BIN), "archive", "verify", str(local)],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    inspect = subprocess.run([str(HANGAR_BIN), "archive", "inspect", str(local)],
                             capture_output=True, text=True, timeout=60)
    assert inspect.returncode == 0 and image_id in inspect.stdout and name in inspect.stdout
    # A reader that went away (`| head -1`) is not an error: here the pipe's
    # read end is closed before the command starts, so every write fails.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        piped = subprocess.run([str(HANGAR_BIN), "archive", "inspect", str(local)],
                               stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert piped.returncode == 0, piped.stderr
    assert "panicked" not in piped.stderr, piped.stderr

    # The source goes away: the restore does not need it.
    ec2.deregister_image(ImageId=image_id)
    restored_id = ec2.create_restore_image_task(
        Bucket=bucket, ObjectKey=key, Name=unique("restored"),
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "r", "Value": "1"}]}],
    )["ImageId"]
    assert restored_id != image_id
    image = wait_image(ec2, restored_id, "available", timeout=60)
    assert image["Description"] == "an image to store"
    assert image["BootMode"] == "uefi"
    assert image["SourceImageId"] == image_id
    assert image["SourceImageRegion"] == "us-east-1"
    assert {"Key": "team", "Value": "a"} in image.get("Tags", [])
    mappings = {m["DeviceName"]: m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"]}
    assert set(mappings) == {"/dev/xvda", "/dev/sdf"}
    assert root_snapshot not in mappings.values()
    new_root = ec2.describe_snapshots(SnapshotIds=[mappings["/dev/xvda"]])["Snapshots"][0]
    assert new_root["State"] == "completed"
    assert {"Key": "disk", "Value": "root"} in new_root.get("Tags", [])
    assert {"Key": "r", "Value": "1"} in new_root.get("Tags", [])
    got_root, _ = read_disk(ebs, mappings["/dev/xvda"], blocks=2048)
    assert_same_disk(got_root[:512], root, "restored root")
    assert all(block == bytes(512 * 1024) for block in got_root[512:])
    got_data, _ = read_disk(ebs, mappings["/dev/sdf"], blocks=2048)
    assert_same_disk(got_data[:40], data, "restored data disk")


def test_corrupt_objects_fail_the_restore(server, setup):
    ec2, ebs, s3, bucket = setup
    snapshot = write_disk(ebs, make_disk(seed=21, blocks=24), volume_size=1)
    image_id = register(ec2, snapshot, name=unique("tostore"))
    key = ec2.create_store_image_task(ImageId=image_id, Bucket=bucket)["ObjectKey"]
    assert wait_store(ec2, image_id)["StoreTaskState"] == "Completed"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    # Not an archive at all: refused at request time.
    s3.put_object(Bucket=bucket, Key="junk.bin", Body=os.urandom(4096))
    error = client_error(ec2.create_restore_image_task, Bucket=bucket, ObjectKey="junk.bin",
                         Name=unique("junk"))
    assert error_code(error) == "InvalidParameterValue"

    cases = {
        "flipped.bin": body[:len(body) // 2] + bytes([body[len(body) // 2] ^ 0xFF])
        + body[len(body) // 2 + 1:],
        "truncated.bin": body[:len(body) - 100],
    }
    for name, corrupt in cases.items():
        s3.put_object(Bucket=bucket, Key=name, Body=corrupt)
        restored = ec2.create_restore_image_task(Bucket=bucket, ObjectKey=name,
                                                 Name=unique("bad"))["ImageId"]
        image = wait_image(ec2, restored, "failed", timeout=60)
        assert image["StateReason"]["Message"], image
        snapshots = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
        for snapshot_id in snapshots:
            found = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
            assert all(s["State"] != "completed" for s in found), (name, found)


# -- failures, crashes, other partitions -----------------------------------------

SMALL_PARTS = """
[store]
part_size_mib = 5
"""


def random_disk(blocks: int, seed: int) -> list:
    """Incompressible blocks: a store of them takes a while."""
    import random

    rng = random.Random(seed)
    return [rng.randbytes(512 * 1024) for _ in range(blocks)]


def store_setup(srv):
    ec2 = srv.client("alice", service="ec2")
    ebs = srv.client("alice", service="ebs")
    s3 = s3_client(srv, "alice")
    bucket = bucket_name("st")
    s3.create_bucket(Bucket=bucket)
    return ec2, ebs, s3, bucket


def test_deregistering_during_the_task_fails_it_and_leaves_nothing(make_server):
    srv = make_server("dereg", extra_config=SMALL_PARTS)
    ec2, ebs, s3, bucket = store_setup(srv)
    snapshot = write_disk(ebs, random_disk(512, seed=3), volume_size=1)
    image_id = register(ec2, snapshot, name=unique("gone"))
    ec2.create_store_image_task(ImageId=image_id, Bucket=bucket)
    ec2.deregister_image(ImageId=image_id)
    task = wait_store(ec2, image_id)
    assert task["StoreTaskState"] == "Failed", task
    assert "deregistered" in task["StoreTaskFailureReason"], task
    assert task["ProgressPercentage"] < 100
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_losing_access_during_the_task_fails_it(make_server):
    srv = make_server("access", extra_config=SMALL_PARTS)
    ec2, ebs, s3, bucket = store_setup(srv)
    snapshot = write_disk(ebs, random_disk(512, seed=4), volume_size=1)
    image_id = register(ec2, snapshot, name=unique("denied"))
    ec2.create_store_image_task(ImageId=image_id, Bucket=bucket)
    import json

    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": {"AWS": "111111111111"},
                       "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    task = wait_store(ec2, image_id)
    assert task["StoreTaskState"] == "Failed", task
    assert "Access to the bucket" in task["StoreTaskFailureReason"], task
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_sigkill_during_a_store_resumes_it(make_server, tmp_path):
    srv = make_server("killstore", extra_config=SMALL_PARTS)
    ec2, ebs, s3, bucket = store_setup(srv)
    disk = random_disk(256, seed=5)
    snapshot = write_disk(ebs, disk, volume_size=1)
    image_id = register(ec2, snapshot, name=unique("killed"))
    ec2.create_store_image_task(ImageId=image_id, Bucket=bucket)
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        task = ec2.describe_store_image_tasks(ImageIds=[image_id])["StoreImageTaskResults"][0]
        seen.append(task["ProgressPercentage"])
        if task["ProgressPercentage"] > 0 or task["StoreTaskState"] != "InProgress":
            break
        time.sleep(0.02)
    srv.kill9()
    srv.start()
    ec2 = srv.client("alice", service="ec2")
    s3 = s3_client(srv, "alice")
    deadline = time.monotonic() + 60
    while True:
        task = ec2.describe_store_image_tasks(ImageIds=[image_id])["StoreImageTaskResults"][0]
        seen.append(task["ProgressPercentage"])
        if task["StoreTaskState"] != "InProgress":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert task["StoreTaskState"] == "Completed", task
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    local = tmp_path / "resumed.bin"
    s3.download_file(bucket, task["S3objectKey"], str(local))
    verify = subprocess.run([str(HANGAR_BIN), "archive", "verify", str(local)],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    restored = ec2.create_restore_image_task(Bucket=bucket, ObjectKey=task["S3objectKey"],
                                             Name=unique("back"))["ImageId"]
    image = wait_image(ec2, restored, "available", timeout=60)
    ebs = srv.client("alice", service="ebs")
    got, _ = read_disk(ebs, image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"], blocks=2048)
    assert_same_disk(got[:256], disk, "restored after a crash")


def test_restore_in_another_partition(server, setup, make_server, tmp_path):
    ec2, ebs, s3, bucket = setup
    disk = make_disk(seed=31, blocks=64)
    snapshot = write_disk(ebs, disk, volume_size=1)
    name = unique("travels")
    image_id = register(
        ec2, snapshot, name=name, Description="crosses partitions",
        TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "k", "Value": "v"}]}])
    key = ec2.create_store_image_task(ImageId=image_id, Bucket=f"{bucket}/exports/2026"
                                      )["ObjectKey"]
    assert key == f"exports/2026/{image_id}.bin"
    # The AWS CLI's waiter, then the object travels with `aws s3 cp`.
    code, _, err = aws_text(server, "ec2", "wait", "store-image-task-complete",
                            "--image-ids", image_id)
    assert code == 0, err
    local = tmp_path / "travel.bin"
    code, _, err = aws_text(server, "s3", "cp", f"s3://{bucket}/{key}", str(local))
    assert code == 0, err

    gov = make_server("gov", extra_config='partition = "aws-us-gov"\n')
    gov_s3 = s3_client(gov, "alice")
    gov_bucket = bucket_name("gov")
    gov_s3.create_bucket(Bucket=gov_bucket)
    code, _, err = aws_text(gov, "s3", "cp", str(local), f"s3://{gov_bucket}/{image_id}.bin")
    assert code == 0, err
    gov_ec2 = gov.client("alice", service="ec2")
    restored = gov_ec2.create_restore_image_task(Bucket=gov_bucket,
                                                 ObjectKey=f"{image_id}.bin")["ImageId"]
    image = wait_image(gov_ec2, restored, "available", timeout=60)
    assert image["Name"] == name
    assert image["Description"] == "crosses partitions"
    assert {"Key": "k", "Value": "v"} in image["Tags"]
    assert image["RootDeviceName"] == "/dev/xvda"
    assert [m["DeviceName"] for m in image["BlockDeviceMappings"]] == ["/dev/xvda"]
    assert image["SourceImageId"] == image_id
    gov_ebs = gov.client("alice", service="ebs")
    got, _ = read_disk(gov_ebs, image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"],
                       blocks=2048)
    assert_same_disk(got[:64], disk, "restored in aws-us-gov")
    # boto3's waiter on the original side works too.
    ec2.get_waiter("store_image_task_complete").wait(ImageIds=[image_id])
