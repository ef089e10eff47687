"""Two `hangar serve` nodes sharing one PostgreSQL database and one S3 server
(moto's, which no one here wrote): a store task started through node A, the
node that runs it killed with SIGKILL in the middle of its upload, the task
taken over and finished by the other node once the lease expires, and the
object restored through node B byte for byte.

Skips with a printed reason when PostgreSQL or moto_server is missing.
"""

from __future__ import annotations

import random
import time
import uuid

import pytest

from datahelpers import assert_same_disk, read_disk, register, root_snapshot, wait_image, write_disk
from test_storage_backends import MOTO_KEY, MOTO_SECRET, moto, moto_s3, pg_database, psql  # noqa: F401

LEASE_SECS = 3
BLOCK = 512 * 1024


def node_config(pg_url: str, moto_endpoint: str, blocks_bucket: str, node: str) -> str:
    return (
        "[storage]\n"
        f'metadata = "{pg_url}"\n'
        f'blocks = "s3://{blocks_bucket}/shared"\n'
        "[storage.s3]\n"
        f'endpoint = "{moto_endpoint}"\n'
        'region = "us-east-1"\n'
        f'access_key_id = "{MOTO_KEY}"\n'
        f'secret_access_key = "{MOTO_SECRET}"\n'
        "[buckets]\n"
        'backend = "external"\n'
        "[store]\n"
        "part_size_mib = 5\n"
        "[tasks]\n"
        f"lease_secs = {LEASE_SECS}\n"
        f'node_id = "{node}"\n'
    )


def make_big_disk(seed: int, blocks: int, distinct: int) -> list:
    """`blocks` incompressible blocks drawn from `distinct` random ones: the
    archive holds every frame (the store takes a while), the block store
    only `distinct` objects (the disk is quick to write)."""
    rng = random.Random(seed)
    pool = [rng.randbytes(BLOCK) for _ in range(distinct)]
    return [pool[rng.randrange(distinct)] for _ in range(blocks)]


def lease_holder(database: str) -> list:
    rows = psql("SELECT name || '=' || node_id FROM leases ORDER BY name", database)
    return [row for row in rows.splitlines() if row and "collector" not in row]


def test_store_task_survives_the_death_of_its_node(make_server, moto, pg_database):  # noqa: F811
    s3 = moto_s3(moto)
    blocks_bucket = "hangar-blocks-" + uuid.uuid4().hex[:8]
    images_bucket = "hangar-images-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=blocks_bucket)
    s3.create_bucket(Bucket=images_bucket)
    s3.put_public_access_block(Bucket=images_bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=images_bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})

    url = f"postgresql://postgres@127.0.0.1:5432/{pg_database}"
    node_a = make_server("node-a", extra_config=node_config(url, moto, blocks_bucket, "node-a"))
    node_b = make_server("node-b", extra_config=node_config(url, moto, blocks_bucket, "node-b"))

    # The disk, written through node A, read back through node B.
    ec2_a = node_a.client("alice", service="ec2")
    ebs_a = node_a.client("alice", service="ebs")
    disk = make_big_disk(seed=7, blocks=768, distinct=24)  # 384 MiB
    snapshot_id = write_disk(ebs_a, disk)
    image_id = register(ec2_a, snapshot_id, name="two-nodes-" + uuid.uuid4().hex[:8])
    wait_image(ec2_a, image_id)
    ec2_b = node_b.client("alice", service="ec2")
    ebs_b = node_b.client("alice", service="ebs")
    back, _ = read_disk(ebs_b, snapshot_id, len(disk))
    assert_same_disk(back, disk, "the snapshot read through the other node")

    # The store, started through node A.
    key = ec2_a.create_store_image_task(ImageId=image_id, Bucket=images_bucket)["ObjectKey"]
    assert key == f"{image_id}.bin"

    # Wait until one node is in the middle of the upload.
    seen = []
    deadline = time.monotonic() + 120
    holder = None
    while time.monotonic() < deadline:
        task = ec2_b.describe_store_image_tasks(ImageIds=[image_id])["StoreImageTaskResults"][0]
        seen.append(task.get("ProgressPercentage", 0))
        assert task["StoreTaskState"] == "InProgress", task
        holders = lease_holder(pg_database)
        if 10 <= seen[-1] <= 70 and holders:
            holder = holders[0].split("=", 1)[1]
            break
        time.sleep(0.05)
    assert holder in ("node-a", "node-b"), (seen[-5:], lease_holder(pg_database))
    victim, survivor = (node_a, node_b) if holder == "node-a" else (node_b, node_a)
    ec2_survivor = survivor.client("alice", service="ec2")

    # SIGKILL mid-upload: the object does not exist yet, an upload does.
    victim.kill9()
    progress_at_kill = seen[-1]
    assert "Contents" not in s3.list_objects_v2(Bucket=images_bucket, Prefix=key)
    uploads = s3.list_multipart_uploads(Bucket=images_bucket).get("Uploads", [])
    assert [upload["Key"] for upload in uploads] == [key], uploads

    # The survivor takes the task over after the lease expires and
    # finishes it; progress never goes backwards on the way.
    deadline = time.monotonic() + 180
    while True:
        task = ec2_survivor.describe_store_image_tasks(
            ImageIds=[image_id])["StoreImageTaskResults"][0]
        progress = task.get("ProgressPercentage", 0)
        assert progress >= seen[-1], (seen[-5:], progress)
        seen.append(progress)
        if task["StoreTaskState"] != "InProgress":
            break
        assert time.monotonic() < deadline, f"not finished: {task}"
        time.sleep(0.1)
    assert task["StoreTaskState"] == "Completed", task
    assert task["ProgressPercentage"] == 100
    assert progress_at_kill < 100
    # The survivor ran the task to its end; the victim never finished it.
    assert "store task finished" in survivor.log_text()
    assert "store task finished" not in victim.log_text()
    assert lease_holder(pg_database) == [holders[0].split("=", 1)[0] + "="], lease_holder(
        pg_database)  # released when done

    # The upload was resumed, not started over: one upload id, and no
    # upload left behind.
    assert s3.list_multipart_uploads(Bucket=images_bucket).get("Uploads", []) == []
    head = s3.head_object(Bucket=images_bucket, Key=key)
    assert head["ContentLength"] > 300 * 1024 * 1024  # random data does not compress

    # Restore through node B (whichever node ran the store), byte for byte.
    restored = ec2_b.create_restore_image_task(
        Bucket=images_bucket, ObjectKey=key, Name="restored-" + uuid.uuid4().hex[:8])["ImageId"]
    image = wait_image(ec2_b, restored, timeout=180)
    assert image["SourceImageId"] == image_id
    back, _ = read_disk(ebs_b, root_snapshot(image), len(disk))
    assert_same_disk(back, disk, "the disk restored through node B")
