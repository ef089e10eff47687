"""Provenance across every path that records it, end to end: RegisterImage
(the root) -> RunInstances -> CreateImage -> CopyImage to another region ->
CreateStoreImageTask -> CreateRestoreImageTask, then GetImageAncestry from
the restored image walks back to the root in order, across regions, with
boto3 and with the AWS CLI; and the links stay after the parents are
deregistered."""

from __future__ import annotations

from datahelpers import launch, make_disk, register, unique, wait_image, wait_instance, write_disk
from test_s3_buckets import s3_client
from test_store_restore import wait_store


def test_four_level_chain_comes_back_in_order(server):
    east = server.client("alice", region="us-east-1")
    west = server.client("alice", region="us-west-2")
    ebs = server.client("alice", service="ebs")

    snapshot = write_disk(ebs, make_disk(seed=61, blocks=8), volume_size=1)
    registered = register(east, snapshot, name=unique("chain-root"))
    [instance] = launch(east, registered)
    wait_instance(east, instance, "running")
    created = east.create_image(InstanceId=instance, Name=unique("chain-created"))["ImageId"]
    wait_image(east, created, timeout=30)
    copied = west.copy_image(SourceRegion="us-east-1", SourceImageId=created,
                             Name=unique("chain-copied"))["ImageId"]
    wait_image(west, copied, timeout=30)

    # Stored from us-west-2 into a us-west-2 bucket, restored there.
    s3 = s3_client(server, "alice", region="us-west-2")
    bucket = unique("chain-bucket")
    s3.create_bucket(Bucket=bucket,
                     CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    key = west.create_store_image_task(ImageId=copied, Bucket=bucket)["ObjectKey"]
    task = wait_store(west, copied)
    assert task["StoreTaskState"] == "Completed", task
    restored = west.create_restore_image_task(Bucket=bucket, ObjectKey=key,
                                              Name=unique("chain-restored"))["ImageId"]
    image = wait_image(west, restored, timeout=60)
    assert image["SourceImageId"] == copied and image["SourceImageRegion"] == "us-west-2"

    expected = [
        (restored, copied, "us-west-2"),
        (copied, created, "us-east-1"),
        (created, registered, "us-east-1"),
        (registered, None, None),
    ]
    entries = west.get_image_ancestry(ImageId=restored)["ImageAncestryEntries"]
    got = [(e["ImageId"], e.get("SourceImageId"), e.get("SourceImageRegion")) for e in entries]
    assert got == expected, entries
    assert all("CreationDate" in e for e in entries), entries
    assert all("ImageOwnerAlias" not in e for e in entries), entries

    # The same through the AWS CLI.
    code, answer = server.aws("ec2", "get-image-ancestry", "--image-id", restored,
                              region="us-west-2")
    assert code == 0, answer
    cli_entries = answer["ImageAncestryEntries"]
    assert [e["ImageId"] for e in cli_entries] == [entry[0] for entry in expected]

    # Parents deregistered: the links stay on each image, and the walk
    # goes through them (docs/behaviour.md).
    west.deregister_image(ImageId=copied)
    east.deregister_image(ImageId=created)
    again = west.get_image_ancestry(ImageId=restored)["ImageAncestryEntries"]
    assert [e["ImageId"] for e in again] == [entry[0] for entry in expected], again
    kept = west.describe_images(ImageIds=[restored])["Images"][0]
    assert kept["SourceImageId"] == copied and kept["SourceImageRegion"] == "us-west-2"

    for entry in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=entry["Key"])
    s3.delete_bucket(Bucket=bucket)
