"""CreateStoreImageTask, DescribeStoreImageTasks and CreateRestoreImageTask on
the wire: every request-time refusal and its error code, DryRun, object keys,
and the task listing (shapes, filters, pagination, validation, waiters).

These tests never depend on a task finishing: whether the transfer completes
or fails a task, what is checked here holds."""

from __future__ import annotations

import json

import botocore.exceptions
import pytest

from conftest import ALICE, BOB, error_code, unique
from test_s3_buckets import s3_client

ALL_BLOCKED = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
STATES = {"InProgress", "Completed", "Failed"}


def make_bucket(server, account="alice", region="us-east-1") -> str:
    name = unique("store")
    s3 = s3_client(server, account, region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    return name


def refused(call, code, **params):
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**params)
    assert error_code(caught.value) == code, caught.value.response
    return caught.value.response["Error"]["Message"]


@pytest.fixture
def loose_alice(server):
    """alice without botocore's client-side validation (the server's is tested)."""
    return server.client("alice", validate=False)


# -- CreateStoreImageTask ------------------------------------------------------


def test_store_returns_object_key_with_and_without_prefix(server, alice):
    bucket = make_bucket(server)
    image = server.register(alice)
    out = alice.create_store_image_task(ImageId=image, Bucket=bucket)
    assert out["ObjectKey"] == f"{image}.bin"
    other = server.register(alice)
    out = alice.create_store_image_task(ImageId=other, Bucket=f"{bucket}/path1/path2")
    assert out["ObjectKey"] == f"path1/path2/{other}.bin"
    tasks = alice.describe_store_image_tasks(ImageIds=[other])["StoreImageTaskResults"]
    assert tasks[0]["S3objectKey"] == f"path1/path2/{other}.bin"
    assert tasks[0]["Bucket"] == bucket


def test_store_with_object_tags_and_cli(server, alice):
    bucket = make_bucket(server)
    image = server.register(alice)
    code, out = server.aws("ec2", "create-store-image-task", "--image-id", image,
                           "--bucket", bucket, "--s3-object-tags", "Key=team,Value=infra")
    assert code == 0, out
    assert out["ObjectKey"] == f"{image}.bin"
    code, out = server.aws("ec2", "describe-store-image-tasks", "--image-ids", image)
    assert code == 0, out
    [task] = out["StoreImageTaskResults"]
    assert task["AmiId"] == image and task["StoreTaskState"] in STATES


def test_store_dry_run(server, alice):
    bucket = make_bucket(server)
    image = server.register(alice)
    refused(alice.create_store_image_task, "DryRunOperation", ImageId=image, Bucket=bucket,
            DryRun=True)
    # Nothing was queued.
    assert alice.describe_store_image_tasks(ImageIds=[image])["StoreImageTaskResults"] == []
    # A refused request answers its refusal, not DryRunOperation.
    refused(alice.create_store_image_task, "InvalidParameterValue", ImageId=image,
            Bucket=unique("missing"), DryRun=True)
    code, out = server.aws("ec2", "create-store-image-task", "--image-id", image, "--bucket",
                           bucket, "--dry-run")
    assert code != 0 and "DryRunOperation" in out


def test_store_image_refusals(server, alice, bob):
    bucket = make_bucket(server)
    refused(alice.create_store_image_task, "InvalidAMIID.Malformed", ImageId="ami-nothex",
            Bucket=bucket)
    refused(alice.create_store_image_task, "InvalidAMIID.NotFound",
            ImageId="ami-0123456789abcdef0", Bucket=bucket)
    # Public alone is not enough: a catalogue image.
    catalogue = alice.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    message = refused(alice.create_store_image_task, "AuthFailure", ImageId=catalogue,
                      Bucket=bucket)
    assert catalogue in message
    # Bob's image made public: still refused; shared with alice directly: accepted.
    bobs = server.register(bob)
    bob.modify_image_attribute(ImageId=bobs, LaunchPermission={"Add": [{"Group": "all"}]})
    refused(alice.create_store_image_task, "AuthFailure", ImageId=bobs, Bucket=bucket)
    bob.modify_image_attribute(ImageId=bobs, LaunchPermission={"Add": [{"UserId": ALICE}]})
    out = alice.create_store_image_task(ImageId=bobs, Bucket=bucket)
    assert out["ObjectKey"] == f"{bobs}.bin"
    # Bob's private image: alice cannot see it.
    private = server.register(bob)
    refused(alice.create_store_image_task, "InvalidAMIID.NotFound", ImageId=private,
            Bucket=bucket)
    # Paravirtual.
    pv = server.register(alice, VirtualizationType="paravirtual")
    message = refused(alice.create_store_image_task, "InvalidParameterValue", ImageId=pv,
                      Bucket=bucket)
    assert "paravirtual" in message
    # Instance-store backed.
    instance_store = alice.register_image(Name=unique("is"), ImageLocation="bucket/image.xml",
                                          Architecture="x86_64")["ImageId"]
    message = refused(alice.create_store_image_task, "InvalidParameterValue",
                      ImageId=instance_store, Bucket=bucket)
    assert "EBS-backed" in message
    # Deregistered.
    gone = server.register(alice)
    alice.deregister_image(ImageId=gone)
    refused(alice.create_store_image_task, "InvalidAMIID.Unavailable", ImageId=gone,
            Bucket=bucket)


def test_store_bucket_refusals(server, alice, bob):
    image = server.register(alice)
    message = refused(alice.create_store_image_task, "InvalidParameterValue", ImageId=image,
                      Bucket=unique("missing"))
    assert "does not exist" in message
    refused(alice.create_store_image_task, "InvalidParameterValue", ImageId=image,
            Bucket="Not_A_Bucket")
    # Another region.
    west = make_bucket(server, region="us-west-2")
    message = refused(alice.create_store_image_task, "InvalidParameterValue", ImageId=image,
                      Bucket=west)
    assert "us-west-2" in message
    # Bob's bucket, no grant.
    bobs = make_bucket(server, "bob")
    message = refused(alice.create_store_image_task, "InvalidParameterValue", ImageId=image,
                      Bucket=bobs)
    assert "denied" in message
    # Bob grants alice s3:PutObject by policy: accepted.
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ALICE}:root"},
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bobs}/*",
        }],
    }
    s3_client(server, "bob").put_bucket_policy(Bucket=bobs, Policy=json.dumps(policy))
    out = alice.create_store_image_task(ImageId=image, Bucket=f"{bobs}/granted")
    assert out["ObjectKey"] == f"granted/{image}.bin"


def test_store_refuses_public_buckets(server, alice):
    image = server.register(alice)
    s3 = s3_client(server)
    # Block Public Access not fully on.
    open_bucket = make_bucket(server)
    s3.delete_public_access_block(Bucket=open_bucket)
    message = refused(alice.create_store_image_task, "InvalidParameterValue", ImageId=image,
                      Bucket=open_bucket)
    assert "Block Public Access" in message
    partly = make_bucket(server)
    s3.put_public_access_block(Bucket=partly, PublicAccessBlockConfiguration={
        **ALL_BLOCKED, "RestrictPublicBuckets": False})
    refused(alice.create_store_image_task, "InvalidParameterValue", ImageId=image,
            Bucket=partly)
    # A public policy, with every switch back on afterwards.
    public = make_bucket(server)
    s3.put_public_access_block(Bucket=public, PublicAccessBlockConfiguration={
        key: False for key in ALL_BLOCKED})
    s3.put_bucket_policy(Bucket=public, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{public}/*"}],
    }))
    s3.put_public_access_block(Bucket=public, PublicAccessBlockConfiguration=ALL_BLOCKED)
    message = refused(alice.create_store_image_task, "InvalidParameterValue", ImageId=image,
                      Bucket=public)
    assert "policy" in message


def test_allow_public_buckets(make_server):
    srv = make_server("public", extra_config="[store]\nallow_public_buckets = true\n")
    ec2 = srv.client("alice")
    image = srv.register(ec2)
    bucket = make_bucket(srv)
    s3_client(srv).delete_public_access_block(Bucket=bucket)
    assert ec2.create_store_image_task(ImageId=image, Bucket=bucket)["ObjectKey"] == \
        f"{image}.bin"


def test_store_refuses_an_existing_object(server, alice):
    bucket = make_bucket(server)
    image = server.register(alice)
    s3_client(server).put_object(Bucket=bucket, Key=f"p/{image}.bin", Body=b"not an archive")
    message = refused(alice.create_store_image_task, "InvalidParameterValue", ImageId=image,
                      Bucket=f"{bucket}/p")
    assert "already stored" in message
    # Another key (no prefix) of the same bucket is fine.
    assert alice.create_store_image_task(ImageId=image, Bucket=bucket)["ObjectKey"] == \
        f"{image}.bin"


def test_store_size_limits(make_server):
    srv = make_server("limits", extra_config=(
        "[store]\nmax_in_progress_gib = 10\nmax_image_gib = 20\n"))
    ec2 = srv.client("alice")
    bucket = make_bucket(srv)
    snapshot = srv.shared_snapshot(ec2)

    def image(size):
        return srv.register(ec2, BlockDeviceMappings=[{
            "DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot, "VolumeSize": size}}])

    too_big = image(30)
    message = refused(ec2.create_store_image_task, "InvalidParameterValue", ImageId=too_big,
                      Bucket=bucket)
    assert "20 GiB" in message
    over_quota = image(16)
    message = refused(ec2.create_store_image_task, "ResourceLimitExceeded", ImageId=over_quota,
                      Bucket=bucket)
    assert "10 GiB" in message
    fits = image(8)
    assert ec2.create_store_image_task(ImageId=fits, Bucket=bucket)["ObjectKey"] == \
        f"{fits}.bin"


def test_store_object_tag_rules(server, alice, loose_alice):
    bucket = make_bucket(server)
    image = server.register(alice)

    def tags(*pairs):
        return [{"Key": key, "Value": value} for key, value in pairs]

    refused(loose_alice.create_store_image_task, "TagLimitExceeded", ImageId=image,
            Bucket=bucket, S3ObjectTags=tags(*[(f"k{n}", "v") for n in range(11)]))
    refused(loose_alice.create_store_image_task, "InvalidParameterValue", ImageId=image,
            Bucket=bucket, S3ObjectTags=tags(("aws:owner", "v")))
    refused(loose_alice.create_store_image_task, "InvalidParameterValue", ImageId=image,
            Bucket=bucket, S3ObjectTags=tags(("k" * 129, "v")))
    refused(loose_alice.create_store_image_task, "InvalidParameterValue", ImageId=image,
            Bucket=bucket, S3ObjectTags=tags(("k", "v" * 257)))
    refused(loose_alice.create_store_image_task, "InvalidParameterValue", ImageId=image,
            Bucket=bucket, S3ObjectTags=tags(("k", "1"), ("k", "2")))
    refused(loose_alice.create_store_image_task, "MissingParameter", ImageId=image)
    out = alice.create_store_image_task(
        ImageId=image, Bucket=bucket,
        S3ObjectTags=tags(("k" * 128, "v" * 256), *[(f"k{n}", "v") for n in range(9)]))
    assert out["ObjectKey"] == f"{image}.bin"


# -- DescribeStoreImageTasks ---------------------------------------------------


def test_describe_shapes_and_latest_per_image(server, alice, bob):
    first, second = make_bucket(server), make_bucket(server)
    image = server.register(alice)
    alice.create_store_image_task(ImageId=image, Bucket=first)
    alice.create_store_image_task(ImageId=image, Bucket=second)
    [task] = alice.describe_store_image_tasks(ImageIds=[image])["StoreImageTaskResults"]
    assert task["AmiId"] == image
    assert task["Bucket"] == second  # the latest task of the AMI
    assert task["S3objectKey"] == f"{image}.bin"
    assert task["StoreTaskState"] in STATES
    assert 0 <= task["ProgressPercentage"] <= 100
    assert (task["ProgressPercentage"] == 100) == (task["StoreTaskState"] == "Completed")
    assert task["TaskStartTime"].tzinfo is not None
    if task["StoreTaskState"] == "Failed":
        assert task["StoreTaskFailureReason"]
    else:
        assert "StoreTaskFailureReason" not in task
    # Without IDs both tasks are listed, newest first.
    listed = [t for t in alice.describe_store_image_tasks()["StoreImageTaskResults"]
              if t["AmiId"] == image]
    assert [t["Bucket"] for t in listed] == [second, first]
    # Bob sees none of alice's tasks; an AMI without tasks lists nothing.
    assert bob.describe_store_image_tasks(ImageIds=[image])["StoreImageTaskResults"] == []
    assert all(t["AmiId"] != image
               for t in bob.describe_store_image_tasks()["StoreImageTaskResults"])
    other = server.register(alice)
    assert alice.describe_store_image_tasks(ImageIds=[other])["StoreImageTaskResults"] == []
    # Filters are ignored when IDs are given.
    out = alice.describe_store_image_tasks(
        ImageIds=[image], Filters=[{"Name": "bucket", "Values": ["no-such-bucket"]}])
    assert len(out["StoreImageTaskResults"]) == 1


def test_describe_filters_and_pagination(server, alice):
    bucket = make_bucket(server)
    images = [server.register(alice) for _ in range(3)]
    for image in images:
        alice.create_store_image_task(ImageId=image, Bucket=bucket)
    by_bucket = alice.describe_store_image_tasks(
        Filters=[{"Name": "bucket", "Values": [bucket]}])["StoreImageTaskResults"]
    assert [t["AmiId"] for t in by_bucket] == images[::-1]
    # task-state: every listed task is in one of the states asked for.
    for state in STATES:
        out = alice.describe_store_image_tasks(Filters=[
            {"Name": "bucket", "Values": [bucket]}, {"Name": "task-state", "Values": [state]}])
        assert all(t["StoreTaskState"] == state for t in out["StoreImageTaskResults"])
    everything = alice.describe_store_image_tasks(Filters=[
        {"Name": "bucket", "Values": [bucket]},
        {"Name": "task-state", "Values": sorted(STATES)}])["StoreImageTaskResults"]
    assert len(everything) == 3
    # Pages of one.
    seen, token = [], None
    while True:
        params = {"Filters": [{"Name": "bucket", "Values": [bucket]}], "MaxResults": 1}
        if token:
            params["NextToken"] = token
        page = alice.describe_store_image_tasks(**params)
        assert len(page["StoreImageTaskResults"]) <= 1
        seen += [t["AmiId"] for t in page["StoreImageTaskResults"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == images[::-1]
    # boto3's paginator and the CLI.
    paginator = alice.get_paginator("describe_store_image_tasks")
    pages = list(paginator.paginate(Filters=[{"Name": "bucket", "Values": [bucket]}],
                                    PaginationConfig={"PageSize": 2}))
    assert [t["AmiId"] for p in pages for t in p["StoreImageTaskResults"]] == images[::-1]
    code, out = server.aws("ec2", "describe-store-image-tasks", "--filters",
                           f"Name=bucket,Values={bucket}", "--page-size", "1")
    assert code == 0, out
    assert [t["AmiId"] for t in out["StoreImageTaskResults"]] == images[::-1]


def test_describe_validation(server, alice, loose_alice):
    image = server.register(alice)
    refused(loose_alice.describe_store_image_tasks, "InvalidParameterCombination",
            ImageIds=[image], MaxResults=5)
    refused(loose_alice.describe_store_image_tasks, "InvalidParameterValue",
            ImageIds=[f"ami-{n:017x}" for n in range(21)])
    refused(loose_alice.describe_store_image_tasks, "InvalidParameterValue", MaxResults=0)
    refused(loose_alice.describe_store_image_tasks, "InvalidParameterValue", MaxResults=201)
    assert "StoreImageTaskResults" in alice.describe_store_image_tasks(MaxResults=200)
    refused(loose_alice.describe_store_image_tasks, "InvalidParameterValue",
            Filters=[{"Name": "state", "Values": ["Failed"]}])
    refused(loose_alice.describe_store_image_tasks, "InvalidPaginationToken",
            NextToken="not-a-token")
    refused(loose_alice.describe_store_image_tasks, "InvalidAMIID.Malformed",
            ImageIds=["ami-x"])
    refused(alice.describe_store_image_tasks, "DryRunOperation", DryRun=True)


def test_waiter_returns_the_task(server, alice):
    """The waiter never meets an error for polled IDs: it ends on Completed
    (success) or Failed (a terminal failure), whichever the task reaches."""
    bucket = make_bucket(server)
    image = server.register(alice)
    alice.create_store_image_task(ImageId=image, Bucket=bucket)
    waiter = alice.get_waiter("store_image_task_complete")
    try:
        waiter.wait(ImageIds=[image], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    except botocore.exceptions.WaiterError as error:
        assert "terminal failure" in str(error), error
        [task] = error.last_response["StoreImageTaskResults"]
        assert task["StoreTaskState"] == "Failed" and task["StoreTaskFailureReason"]
    else:
        [task] = alice.describe_store_image_tasks(ImageIds=[image])["StoreImageTaskResults"]
        assert task["StoreTaskState"] == "Completed" and task["ProgressPercentage"] == 100
    code, out = server.aws("ec2", "wait", "store-image-task-complete", "--image-ids", image)
    assert code == 0 or "terminal failure" in out, out


# -- CreateRestoreImageTask ----------------------------------------------------


def test_restore_refusals(server, alice, loose_alice):
    bucket = make_bucket(server)
    refused(alice.create_restore_image_task, "InvalidParameterValue",
            Bucket=unique("missing"), ObjectKey="ami-0123456789abcdef0.bin")
    message = refused(alice.create_restore_image_task, "InvalidParameterValue", Bucket=bucket,
                      ObjectKey="ami-0123456789abcdef0.bin")
    assert "does not exist" in message
    bobs = make_bucket(server, "bob")
    s3_client(server, "bob").put_object(Bucket=bobs, Key="x.bin", Body=b"x")
    message = refused(alice.create_restore_image_task, "InvalidParameterValue", Bucket=bobs,
                      ObjectKey="x.bin")
    assert "denied" in message
    west = make_bucket(server, region="us-west-2")
    s3_client(server, region="us-west-2").put_object(Bucket=west, Key="x.bin", Body=b"x")
    refused(alice.create_restore_image_task, "InvalidParameterValue", Bucket=west,
            ObjectKey="x.bin")
    # Not an AMI archive: refused at request time.
    s3_client(server).put_object(Bucket=bucket, Key="p/not-an-ami.bin", Body=b"hello" * 100)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        alice.create_restore_image_task(Bucket=bucket, ObjectKey="p/not-an-ami.bin",
                                        Name=unique("restored"))
    assert error_code(caught.value) in ("InvalidParameterValue", "Unsupported")
    # Names: malformed, duplicate (checked before the object is read).
    refused(loose_alice.create_restore_image_task, "InvalidAMIName.Malformed", Bucket=bucket,
            ObjectKey="p/not-an-ami.bin", Name="x")
    taken = unique("taken")
    server.register(alice, name=taken)
    refused(alice.create_restore_image_task, "InvalidAMIName.Duplicate", Bucket=bucket,
            ObjectKey="p/not-an-ami.bin", Name=taken)
    code, out = server.aws("ec2", "create-restore-image-task", "--bucket", bucket,
                           "--object-key", "p/not-an-ami.bin", "--name", taken)
    assert code != 0 and "InvalidAMIName.Duplicate" in out
    # Tag specifications for other resource types.
    refused(alice.create_restore_image_task, "InvalidParameterValue", Bucket=bucket,
            ObjectKey="p/not-an-ami.bin",
            TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "k", "Value": "v"}]}])
    refused(loose_alice.create_restore_image_task, "MissingParameter", Bucket=bucket)
    # Nothing was recorded by any of these.
    assert not [i for i in alice.describe_images(Owners=["self"])["Images"]
                if i.get("SourceImageId") and i["State"] == "pending"
                and i["Name"] == taken]
