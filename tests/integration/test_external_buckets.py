"""`[buckets] backend = "external"`: store and restore tasks write to and read
from the buckets of an external S3 store (moto's server, which no one here
wrote), with its real security settings checked at request time, the
`[buckets.external] grants` isolating accounts, and Hangar's own S3 API
refused.

moto 5 answers GetPublicAccessBlock and GetBucketEncryption, but not
GetBucketPolicyStatus (it lists the bucket instead): against moto, Hangar
judges the policy document itself (GetBucketPolicy), which is what the
public-policy case below exercises. The GetBucketPolicyStatus answers
(IsPublic true, a status without IsPublic) are covered by the unit tests of
crates/hangar-external on canned S3 documents.

Metadata is SQLite (the default); blocks are local. Tests skip with a
printed reason when moto_server is not installed.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid

import botocore.exceptions
import pytest

from conftest import ALICE, BOB, HANGAR_BIN, config_toml, free_port
from datahelpers import (assert_same_disk, make_disk, read_disk, register, unique, wait_image,
                         write_disk)
from test_s3_buckets import aws_text, s3_client
from test_storage_backends import MOTO_KEY, MOTO_SECRET, moto, moto_s3  # noqa: F401 - fixture
from test_store_restore import random_disk, wait_store

ALL_BLOCKED = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
               "RestrictPublicBuckets": True}


def external_config(moto_endpoint: str, grants: str = "", part_size_mib: int = 5) -> str:
    return (
        "[store]\n"
        f"part_size_mib = {part_size_mib}\n"
        "[buckets]\n"
        'backend = "external"\n'
        + (f"[buckets.external]\ngrants = {{ {grants} }}\n" if grants else "")
        + "[storage.s3]\n"
        f'endpoint = "{moto_endpoint}"\n'
        'region = "us-east-1"\n'
        f'access_key_id = "{MOTO_KEY}"\n'
        f'secret_access_key = "{MOTO_SECRET}"\n')


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_bucket(s3, bucket: str, *, region: str = "us-east-1", block=ALL_BLOCKED,
                encrypted: bool = True, policy=None) -> str:
    """A bucket in moto, set up as asked (`block=None`: no Block Public
    Access configuration at all)."""
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket,
                         CreateBucketConfiguration={"LocationConstraint": region})
    if policy is not None:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    if block is not None:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
    else:
        try:
            s3.delete_public_access_block(Bucket=bucket)
        except botocore.exceptions.ClientError:
            pass
    if encrypted:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    else:
        try:
            s3.delete_bucket_encryption(Bucket=bucket)
        except botocore.exceptions.ClientError:
            pass
    return bucket


def refusal(call, **kwargs) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidParameterValue", caught.value.response
    return error["Message"]


def registered_image(ec2, ebs, disk: bytes, label: str, **extra) -> str:
    """`disk` written as a 1 GiB snapshot and registered (with `extra`
    RegisterImage parameters); the image ID, once available."""
    snapshot_id = write_disk(ebs, disk, volume_size=1)
    image_id = register(ec2, snapshot_id, name=unique(label), **extra)
    wait_image(ec2, image_id)
    return image_id


def stored_image(ec2, ebs, seed: int, blocks: int) -> tuple:
    disk = make_disk(seed=seed, blocks=blocks)
    return registered_image(ec2, ebs, disk, "ext", Description="external store"), disk


def test_external_buckets_rules_round_trip_and_refused_s3(make_server, moto, tmp_path):
    s3 = moto_s3(moto)
    good = make_bucket(s3, name("good"))
    no_block = make_bucket(s3, name("no-pab"), block=None)
    partial = make_bucket(s3, name("partial"), block={**ALL_BLOCKED, "BlockPublicPolicy": False})
    public = name("public")
    make_bucket(s3, public, policy={
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{public}/*"}]})
    plain = make_bucket(s3, name("plain"), encrypted=False)
    west = make_bucket(s3, name("west"), region="us-west-2")
    assert s3.get_public_access_block(Bucket=good)["PublicAccessBlockConfiguration"] == ALL_BLOCKED
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        s3.get_public_access_block(Bucket=no_block)
    assert caught.value.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration"

    hangar = make_server(extra_config=external_config(moto))
    log = hangar.log_text()
    assert "accounts are not isolated from each other in the external store" in log, log
    assert MOTO_SECRET not in log
    ec2 = hangar.client("alice", service="ec2")
    ebs = hangar.client("alice", service="ebs")
    # 60 blocks of mixed content: several 5 MiB parts once compressed.
    image_id, disk = stored_image(ec2, ebs, seed=31, blocks=60)

    # Each rule, against the bucket's real settings in the store.
    missing = name("missing")
    message = refusal(ec2.create_store_image_task, ImageId=image_id, Bucket=missing)
    assert f"The bucket '{missing}' does not exist" in message, message
    message = refusal(ec2.create_store_image_task, ImageId=image_id, Bucket=no_block)
    assert "NoSuchPublicAccessBlockConfiguration" in message, message
    assert "counts as not blocked" in message, message
    message = refusal(ec2.create_store_image_task, ImageId=image_id, Bucket=partial)
    assert "not fully enabled" in message and "BlockPublicPolicy" in message, message
    message = refusal(ec2.create_store_image_task, ImageId=image_id, Bucket=public)
    assert "makes it public" in message, message
    message = refusal(ec2.create_store_image_task, ImageId=image_id, Bucket=west)
    assert "is in us-west-2, not in us-east-1" in message, message
    # The same refusal through the AWS CLI.
    code, _, stderr = aws_text(hangar, "ec2", "create-store-image-task", "--image-id", image_id,
                               "--bucket", no_block)
    assert code != 0 and "InvalidParameterValue" in stderr, stderr
    assert "NoSuchPublicAccessBlockConfiguration" in stderr, stderr
    # Nothing was written for the refused requests.
    for bucket in (no_block, partial, public, west):
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0

    # A bucket without default encryption is accepted, with a warning.
    plain_key = ec2.create_store_image_task(ImageId=image_id, Bucket=plain)["ObjectKey"]
    task = wait_store(ec2, image_id, timeout=120)
    assert task["StoreTaskState"] == "Completed", f"{task}"
    assert "no default encryption" in hangar.log_text()
    assert s3.head_object(Bucket=plain, Key=plain_key)["ContentLength"] > 0

    # The good bucket, under a prefix: a multipart upload into the store.
    key = ec2.create_store_image_task(
        ImageId=image_id, Bucket=f"{good}/amis/team",
        S3ObjectTags=[{"Key": "kept", "Value": "yes"}, {"Key": "owner", "Value": "a b"}],
    )["ObjectKey"]
    assert key == f"amis/team/{image_id}.bin"
    task = wait_store(ec2, image_id, timeout=120)
    assert task["StoreTaskState"] == "Completed", f"{task}"
    assert task["ProgressPercentage"] == 100
    assert task["Bucket"] == good
    head = s3.head_object(Bucket=good, Key=key)
    assert head["Metadata"]["ami-id"] == image_id
    assert head["Metadata"]["ami-owner-account"] == ALICE
    assert head["Metadata"]["ami-region"] == "us-east-1"
    assert head["Metadata"]["ami-description"] == "external store"
    assert "ami-name" in head["Metadata"] and "ami-store-date" in head["Metadata"]
    # A multipart ETag: `<md5>-<parts>`, more than one part.
    parts = int(head["ETag"].strip('"').split("-")[1])
    assert parts >= 2, head["ETag"]
    tags = {tag["Key"]: tag["Value"]
            for tag in s3.get_object_tagging(Bucket=good, Key=key)["TagSet"]}
    assert tags == {"kept": "yes", "owner": "a b"}
    assert s3.list_multipart_uploads(Bucket=good).get("Uploads", []) == []
    # The object is a whole, verifiable archive.
    local = tmp_path / "stored.bin"
    s3.download_file(good, key, str(local))
    verify = subprocess.run([str(HANGAR_BIN), "archive", "verify", str(local)],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr

    # Already stored while the object exists (HeadObject on the store).
    message = refusal(ec2.create_store_image_task, ImageId=image_id, Bucket=f"{good}/amis/team")
    assert "already stored" in message, message

    # Restore through Hangar, from the store: the same bytes.
    ec2.deregister_image(ImageId=image_id)
    restored_id = ec2.create_restore_image_task(Bucket=good, ObjectKey=key,
                                                Name=unique("restored"))["ImageId"]
    image = wait_image(ec2, restored_id, "available", timeout=120)
    assert image["SourceImageId"] == image_id
    snapshot_id = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    back, _ = read_disk(ebs, snapshot_id, len(disk))
    assert_same_disk(back, disk, "snapshot restored from the external store")

    # Restore refusals read the store too.
    message = refusal(ec2.create_restore_image_task, Bucket=good, ObjectKey="no/such.bin",
                      Name=unique("r"))
    assert "does not exist" in message, message
    s3.put_object(Bucket=good, Key="not-an-ami.bin", Body=b"plain bytes, no archive" * 100)
    message = refusal(ec2.create_restore_image_task, Bucket=good, ObjectKey="not-an-ami.bin",
                      Name=unique("r"))
    assert "not" in message and "AMI" in message, message
    message = refusal(ec2.create_restore_image_task, Bucket=west, ObjectKey=key,
                      Name=unique("r"))
    assert "is in us-west-2" in message, message

    # Hangar's own S3 API is refused, naming the external store.
    hangar_s3 = s3_client(hangar, "alice")
    for call, kwargs in ((hangar_s3.list_buckets, {}),
                         (hangar_s3.create_bucket, {"Bucket": name("local")}),
                         (hangar_s3.put_object, {"Bucket": good, "Key": "k", "Body": b"x" * 4096}),
                         (hangar_s3.get_object, {"Bucket": good, "Key": key})):
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            call(**kwargs)
        response = caught.value.response
        assert response["Error"]["Code"] == "NotImplemented", response
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 501, response
        assert moto in response["Error"]["Message"], response
        assert "use it directly" in response["Error"]["Message"], response
    code, _, stderr = aws_text(hangar, "s3api", "list-buckets")
    assert code != 0 and "NotImplemented" in stderr and moto in stderr, stderr


def test_grants_isolate_accounts(make_server, moto):
    s3 = moto_s3(moto)
    alices = make_bucket(s3, name("alice"))
    shared = make_bucket(s3, name("shared"))
    other = make_bucket(s3, name("other"))
    hangar = make_server(extra_config=external_config(
        moto, grants=f'"{alices}" = ["{ALICE}"], "{shared}" = ["{ALICE}", "{BOB}"]'))
    assert "not isolated" not in hangar.log_text()
    alice = hangar.client("alice", service="ec2")
    bob = hangar.client("bob", service="ec2")
    alice_image, disk = stored_image(alice, hangar.client("alice", service="ebs"), 41, 8)
    bob_image, _ = stored_image(bob, hangar.client("bob", service="ebs"), 42, 8)

    # Bob may not use Alice's bucket, nor anyone a bucket granted to no one.
    message = refusal(bob.create_store_image_task, ImageId=bob_image, Bucket=alices)
    assert "is denied" in message and f"not granted to account {BOB}" in message, message
    message = refusal(alice.create_store_image_task, ImageId=alice_image, Bucket=other)
    assert f"not granted to account {ALICE}" in message, message
    # A bucket that does not exist but is not granted: refused the same way,
    # so an account learns nothing about the store's other buckets.
    message = refusal(bob.create_store_image_task, ImageId=bob_image, Bucket=name("nothere"))
    assert "not granted" in message, message

    key = alice.create_store_image_task(ImageId=alice_image, Bucket=alices)["ObjectKey"]
    assert wait_store(alice, alice_image)["StoreTaskState"] == "Completed"
    shared_key = bob.create_store_image_task(ImageId=bob_image, Bucket=shared)["ObjectKey"]
    assert wait_store(bob, bob_image)["StoreTaskState"] == "Completed"
    assert s3.head_object(Bucket=shared, Key=shared_key)["Metadata"]["ami-owner-account"] == BOB

    # Restores follow the same grants.
    message = refusal(bob.create_restore_image_task, Bucket=alices, ObjectKey=key,
                      Name=unique("r"))
    assert "not granted" in message, message
    restored = alice.create_restore_image_task(Bucket=alices, ObjectKey=key,
                                               Name=unique("r"))["ImageId"]
    image = wait_image(alice, restored, "available", timeout=60)
    back, _ = read_disk(hangar.client("alice", service="ebs"),
                        image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"], len(disk))
    assert_same_disk(back, disk, "restored from a granted bucket")
    assert alice.create_restore_image_task(Bucket=shared, ObjectKey=shared_key,
                                           Name=unique("r"))["ImageId"]


def in_progress_upload(s3, bucket: str, parts: int, timeout: float = 60.0) -> tuple:
    """Waits for the task's upload to hold at least `parts` parts; returns
    (key, upload ID, part numbers stored)."""
    deadline = time.monotonic() + timeout
    while True:
        for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            listed = s3.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            numbers = [part["PartNumber"] for part in listed.get("Parts", [])]
            if len(numbers) >= parts:
                return upload["Key"], upload["UploadId"], numbers
        assert time.monotonic() < deadline, "the store task's upload never got its parts"
        time.sleep(0.02)


def test_an_aborted_upload_fails_the_task(make_server, moto):
    s3 = moto_s3(moto)
    bucket = make_bucket(s3, name("abort"))
    hangar = make_server(extra_config=external_config(moto))
    ec2 = hangar.client("alice", service="ec2")
    ebs = hangar.client("alice", service="ebs")
    image_id = registered_image(ec2, ebs, random_disk(160, seed=51), "abort")
    ec2.create_store_image_task(ImageId=image_id, Bucket=bucket)
    key, upload_id, _ = in_progress_upload(s3, bucket, parts=1)
    # Someone aborts the upload in the store while the task writes it.
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    task = wait_store(ec2, image_id, timeout=120)
    assert task["StoreTaskState"] == "Failed", f"{task}"
    assert "was aborted during the task" in task["StoreTaskFailureReason"], f"{task}"
    assert task["ProgressPercentage"] < 100
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_bucket_deleted_mid_task_fails_the_task(make_server, moto):
    """The bucket is re-checked in the store between parts (HeadBucket):
    deleted there, the task fails saying so, and leaves nothing behind.
    (Its security settings are checked when the task is requested, as for
    the embedded buckets.)"""
    s3 = moto_s3(moto)
    hangar = make_server(extra_config=external_config(moto))
    ec2 = hangar.client("alice", service="ec2")
    ebs = hangar.client("alice", service="ebs")
    image_id = registered_image(ec2, ebs, random_disk(160, seed=53), "gone")
    bucket = make_bucket(s3, name("deleted"))
    ec2.create_store_image_task(ImageId=image_id, Bucket=bucket)
    key, upload_id, _ = in_progress_upload(s3, bucket, parts=1)
    # moto refuses to delete a bucket with uploads in progress only when it
    # holds objects; the upload goes first so that the bucket can go.
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    s3.delete_bucket(Bucket=bucket)
    task = wait_store(ec2, image_id, timeout=120)
    assert task["StoreTaskState"] == "Failed", f"{task}"
    reason = task["StoreTaskFailureReason"]
    assert bucket in reason, f"{task}"
    assert "was deleted during the task" in reason or "was aborted during the task" in reason, \
        f"{task}"
    assert task["ProgressPercentage"] < 100
    names = [entry["Name"] for entry in s3.list_buckets().get("Buckets", [])]
    assert bucket not in names


def test_sigkill_mid_upload_resumes_and_keeps_the_stored_parts(make_server, moto, tmp_path):
    s3 = moto_s3(moto)
    bucket = make_bucket(s3, name("resume"))
    hangar = make_server(extra_config=external_config(moto))
    ec2 = hangar.client("alice", service="ec2")
    ebs = hangar.client("alice", service="ebs")
    disk = random_disk(256, seed=52)
    image_id = registered_image(ec2, ebs, disk, "resume")
    key = ec2.create_store_image_task(ImageId=image_id, Bucket=bucket)["ObjectKey"]
    _, upload_id, stored_before = in_progress_upload(s3, bucket, parts=3)
    progress = [ec2.describe_store_image_tasks(ImageIds=[image_id])
                ["StoreImageTaskResults"][0]["ProgressPercentage"]]
    hangar.kill9()
    hangar.start()
    ec2 = hangar.client("alice", service="ec2")
    deadline = time.monotonic() + 120
    while True:
        task = ec2.describe_store_image_tasks(ImageIds=[image_id])["StoreImageTaskResults"][0]
        progress.append(task["ProgressPercentage"])
        if task["StoreTaskState"] != "InProgress":
            break
        assert time.monotonic() < deadline, f"{task}"
        time.sleep(0.05)
    assert task["StoreTaskState"] == "Completed", f"{task}"
    assert progress == sorted(progress), f"progress went backwards: {progress}"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # The same upload was completed, and the parts the store held at the
    # kill were not sent again: moto logged one UploadPart for each.
    sent = re.findall(rf"partNumber=(\d+)&uploadId={re.escape(upload_id)}",
                      (tmp_path / "moto.log").read_text())
    assert sent, "no UploadPart of the task's upload in moto's log"
    for number in stored_before:
        assert sent.count(str(number)) == 1, (number, sorted(map(int, sent)))
    head = s3.head_object(Bucket=bucket, Key=key)
    assert int(head["ETag"].strip('"').split("-")[1]) > len(stored_before)
    restored = ec2.create_restore_image_task(Bucket=bucket, ObjectKey=key,
                                             Name=unique("back"))["ImageId"]
    image = wait_image(ec2, restored, "available", timeout=120)
    got, _ = read_disk(hangar.client("alice", service="ebs"),
                       image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"], len(disk))
    assert_same_disk(got, disk, "restored after a crash mid-upload")


@pytest.mark.parametrize("buckets, key", [
    ('[buckets]\nbackend = "remote"', "buckets.backend"),
    ('[buckets.external]\ngrants = { "some-bucket" = ["111122223333"] }', "buckets.external.grants"),
    ('[buckets]\nbackend = "external"\n[buckets.external]\ngrants = { "b" = ["111122223333"] }',
     "buckets.external.grants"),
    ('[buckets]\nbackend = "external"\n[buckets.external]\ngrants = { "good-name" = ["12"] }',
     "buckets.external.grants"),
    ('[buckets]\nbackend = "external"\n[storage.s3]\nendpoint = "ftp://host"',
     "storage.s3.endpoint"),
])
def test_bad_bucket_settings_refuse_start_up(tmp_path, buckets, key):
    config = tmp_path / "hangar.toml"
    config.write_text(config_toml(free_port(), tmp_path / "data", extra=buckets + "\n"))
    result = subprocess.run([str(HANGAR_BIN), "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    assert result.returncode != 0, result
    output = result.stderr + result.stdout
    assert key in output, output
    assert "hangar is ready" not in output, output
