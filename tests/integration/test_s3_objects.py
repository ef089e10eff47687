"""S3 objects on the shared endpoint: boto3's s3 client (path-style) and the
AWS CLI's `aws s3` (single-part uploads only)."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys

import pytest

from conftest import error_code, http_status
from test_s3_buckets import bucket_name, client_error, s3_client


@pytest.fixture
def bucket(server):
    """A fresh bucket of alice's, emptied and deleted afterwards."""
    alice = s3_client(server, "alice")
    name = bucket_name("obj")
    alice.create_bucket(Bucket=name)
    yield alice, name
    listed = alice.list_objects_v2(Bucket=name)
    for entry in listed.get("Contents", []):
        alice.delete_object(Bucket=name, Key=entry["Key"])
    alice.delete_bucket(Bucket=name)


def test_put_get_roundtrip(bucket):
    alice, name = bucket
    small = b"hello, hangar"
    put = alice.put_object(Bucket=name, Key="small.txt", Body=small)
    assert put["ETag"] == f'"{hashlib.md5(small).hexdigest()}"'
    assert alice.get_object(Bucket=name, Key="small.txt")["Body"].read() == small
    big = os.urandom(5 * 1024 * 1024)
    alice.put_object(Bucket=name, Key="big.bin", Body=big)
    got = alice.get_object(Bucket=name, Key="big.bin")
    assert got["ContentLength"] == len(big)
    assert got["Body"].read() == big
    empty = alice.put_object(Bucket=name, Key="empty", Body=b"")
    assert empty["ETag"] == f'"{hashlib.md5(b"").hexdigest()}"'
    assert alice.get_object(Bucket=name, Key="empty")["Body"].read() == b""


def test_content_md5(bucket):
    alice, name = bucket
    body = b"checked body"
    digest = base64.b64encode(hashlib.md5(body).digest()).decode()
    alice.put_object(Bucket=name, Key="md5", Body=body, ContentMD5=digest)
    assert alice.get_object(Bucket=name, Key="md5")["Body"].read() == body
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    error = client_error(alice.put_object, Bucket=name, Key="md5", Body=b"changed",
                         ContentMD5=wrong)
    assert error_code(error) == "BadDigest"
    assert http_status(error) == 400
    assert alice.get_object(Bucket=name, Key="md5")["Body"].read() == body


def test_metadata_and_content_type(bucket):
    alice, name = bucket
    alice.put_object(Bucket=name, Key="doc", Body=b"{}", ContentType="application/json",
                     Metadata={"Owner-Team": "storage", "color": "blue"})
    head = alice.head_object(Bucket=name, Key="doc")
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"owner-team": "storage", "color": "blue"}
    got = alice.get_object(Bucket=name, Key="doc")
    assert got["ContentType"] == "application/json"
    assert got["Metadata"] == {"owner-team": "storage", "color": "blue"}


def test_range_get(bucket):
    alice, name = bucket
    body = bytes(range(100))
    alice.put_object(Bucket=name, Key="r", Body=body)
    got = alice.get_object(Bucket=name, Key="r", Range="bytes=10-19")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == "bytes 10-19/100"
    assert got["Body"].read() == body[10:20]
    tail = alice.get_object(Bucket=name, Key="r", Range="bytes=-5")
    assert tail["Body"].read() == body[-5:]
    error = client_error(alice.get_object, Bucket=name, Key="r", Range="bytes=999999999-")
    assert error_code(error) == "InvalidRange"
    assert http_status(error) == 416


def test_head_overwrite_delete(server, bucket):
    alice, name = bucket
    folder = server.data_dir / "buckets" / name
    first = b"first version"
    alice.put_object(Bucket=name, Key="k", Body=first)
    head = alice.head_object(Bucket=name, Key="k")
    assert head["ContentLength"] == len(first)
    assert head["ETag"] == f'"{hashlib.md5(first).hexdigest()}"'
    second = b"the second, longer version"
    alice.put_object(Bucket=name, Key="k", Body=second)
    assert alice.get_object(Bucket=name, Key="k")["Body"].read() == second
    assert alice.head_object(Bucket=name, Key="k")["ContentLength"] == len(second)
    # The replaced object's file is gone; no temporary file is left.
    assert len(list(folder.iterdir())) == 1
    deleted = alice.delete_object(Bucket=name, Key="k")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert list(folder.iterdir()) == []
    error = client_error(alice.get_object, Bucket=name, Key="k")
    assert error_code(error) == "NoSuchKey"
    assert http_status(error) == 404
    error = client_error(alice.head_object, Bucket=name, Key="k")
    assert http_status(error) == 404
    # Deleting a missing key succeeds, as in S3.
    again = alice.delete_object(Bucket=name, Key="k")
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_list_objects_v2(bucket):
    alice, name = bucket
    keys = ["a.txt", "dir/one", "dir/two", "dir/sub/three", "e.txt", "other/x"]
    for key in keys:
        alice.put_object(Bucket=name, Key=key, Body=key.encode())
    everything = alice.list_objects_v2(Bucket=name)
    assert [entry["Key"] for entry in everything["Contents"]] == sorted(keys)
    assert everything["KeyCount"] == len(keys)
    assert everything["IsTruncated"] is False
    sizes = {entry["Key"]: entry["Size"] for entry in everything["Contents"]}
    assert sizes["dir/one"] == len(b"dir/one")
    under = alice.list_objects_v2(Bucket=name, Prefix="dir/")
    assert [entry["Key"] for entry in under["Contents"]] == ["dir/one", "dir/sub/three",
                                                             "dir/two"]
    rolled = alice.list_objects_v2(Bucket=name, Delimiter="/")
    assert [entry["Key"] for entry in rolled["Contents"]] == ["a.txt", "e.txt"]
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["dir/", "other/"]
    assert rolled["KeyCount"] == 4
    nested = alice.list_objects_v2(Bucket=name, Prefix="dir/", Delimiter="/")
    assert [entry["Key"] for entry in nested["Contents"]] == ["dir/one", "dir/two"]
    assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["dir/sub/"]
    after = alice.list_objects_v2(Bucket=name, StartAfter="dir/two")
    assert [entry["Key"] for entry in after["Contents"]] == ["e.txt", "other/x"]
    # Pages of two, by continuation token.
    seen = []
    kwargs = {}
    pages = 0
    while True:
        page = alice.list_objects_v2(Bucket=name, MaxKeys=2, **kwargs)
        pages += 1
        assert page["KeyCount"] <= 2
        seen.extend(entry["Key"] for entry in page.get("Contents", []))
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        kwargs = {"ContinuationToken": page["NextContinuationToken"]}
    assert seen == sorted(keys)
    assert pages == 3


def test_delete_non_empty_bucket(bucket):
    alice, name = bucket
    alice.put_object(Bucket=name, Key="keep", Body=b"x")
    error = client_error(alice.delete_bucket, Bucket=name)
    assert error_code(error) == "BucketNotEmpty"
    assert http_status(error) == 409


def test_other_account_and_anonymous_denied(server, bucket):
    alice, name = bucket
    alice.put_object(Bucket=name, Key="secret", Body=b"s")
    for client in (s3_client(server, "bob"), s3_client(server, anonymous=True)):
        for call, kwargs in [
            (client.get_object, {"Key": "secret"}),
            (client.head_object, {"Key": "secret"}),
            (client.put_object, {"Key": "intruder", "Body": b"x"}),
            (client.delete_object, {"Key": "secret"}),
            (client.list_objects_v2, {}),
        ]:
            error = client_error(call, Bucket=name, **kwargs)
            assert http_status(error) == 403, call
            if call != client.head_object:
                assert error_code(error) == "AccessDenied", call
    assert alice.get_object(Bucket=name, Key="secret")["Body"].read() == b"s"
    listed = alice.list_objects_v2(Bucket=name)
    assert [entry["Key"] for entry in listed["Contents"]] == ["secret"]


def test_dotted_keys_stay_inside(server, bucket):
    alice, name = bucket
    before = set(walk(server.data_dir))
    for key in ["../../escape", "../x", "/abs/path", "a/../../b"]:
        alice.put_object(Bucket=name, Key=key, Body=key.encode())
        assert alice.get_object(Bucket=name, Key=key)["Body"].read() == key.encode()
    buckets = server.data_dir / "buckets"
    added = set(walk(server.data_dir)) - before
    assert added
    for path in added:
        assert str(path).startswith(str(buckets) + os.sep), path
    assert not (server.data_dir.parent / "escape").exists()
    assert not (server.data_dir / "escape").exists()


def walk(root):
    for dirpath, _dirnames, filenames in os.walk(root):
        for filename in filenames:
            path = os.path.join(dirpath, filename)
            if "meta.sqlite" not in filename:
                yield path


def test_cli_cp_and_ls(server, bucket, tmp_path):
    alice, name = bucket
    config = tmp_path / "aws-config"
    config.write_text("[default]\ns3 =\n  multipart_threshold = 1GB\n  addressing_style = path\n")
    key, secret = server.credentials("alice")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret,
               AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
               AWS_CONFIG_FILE=str(config),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
               AWS_MAX_ATTEMPTS="1", AWS_PAGER="")

    def aws(*args):
        result = subprocess.run([sys.executable, "-m", "awscli", *args, "--endpoint-url",
                                 server.endpoint], env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    source = tmp_path / "up.txt"
    content = os.urandom(3000)
    source.write_bytes(content)
    aws("s3", "cp", str(source), f"s3://{name}/folder/up.txt")
    down = tmp_path / "down.txt"
    aws("s3", "cp", f"s3://{name}/folder/up.txt", str(down))
    assert down.read_bytes() == content
    listing = aws("s3", "ls", f"s3://{name}/")
    assert "PRE folder/" in listing
    listing = aws("s3", "ls", f"s3://{name}/folder/")
    assert "up.txt" in listing and "3000" in listing


def test_dev_mode_objects(make_server):
    dev = make_server("dev-s3-objects", dev_mode=True)
    mine = s3_client(dev, ("444444444444", "anything"))
    other = s3_client(dev, ("555555555555", "anything"))
    name = bucket_name()
    mine.create_bucket(Bucket=name)
    body = os.urandom(70000)
    mine.put_object(Bucket=name, Key="k", Body=body)
    assert mine.get_object(Bucket=name, Key="k")["Body"].read() == body
    assert http_status(client_error(other.get_object, Bucket=name, Key="k")) == 403
    mine.delete_object(Bucket=name, Key="k")
    mine.delete_bucket(Bucket=name)
