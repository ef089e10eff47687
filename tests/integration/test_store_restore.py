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
from test_s3_buckets import bucket_name, client_error, s3_client


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
    root = make_disk(seed=11, blocks=96)
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
    assert_same_disk(got_root[:96], root, "restored root")
    assert all(block == bytes(512 * 1024) for block in got_root[96:])
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
