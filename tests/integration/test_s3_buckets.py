"""S3 buckets on the shared endpoint: the AWS CLI (s3api and s3) and boto3's
s3 client (path-style), with two accounts and an anonymous client."""

from __future__ import annotations

import os
import subprocess
import sys

import botocore
import botocore.config
import botocore.exceptions
import pytest

from conftest import ALICE, BOB, _boto_session, error_code, http, http_status, unique


def bucket_name(prefix: str = "bkt") -> str:
    return unique(prefix)


def s3_client(server, account="alice", region: str = "us-east-1", anonymous: bool = False):
    config = botocore.config.Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1},
        signature_version=botocore.UNSIGNED if anonymous else None,
    )
    if anonymous:
        return _boto_session().client("s3", endpoint_url=server.endpoint, region_name=region,
                                      config=config)
    key, secret = server.credentials(account)
    return _boto_session().client("s3", endpoint_url=server.endpoint, region_name=region,
                                  aws_access_key_id=key, aws_secret_access_key=secret,
                                  config=config)


def aws_text(server, *args, account="alice", region: str = "us-east-1"):
    """Runs the AWS CLI and returns (returncode, stdout, stderr) as text."""
    key, secret = server.credentials(account)
    missing = str(server.workdir / "no-such-aws-file")
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION=region,
               AWS_REGION=region, AWS_CONFIG_FILE=missing, AWS_SHARED_CREDENTIALS_FILE=missing,
               AWS_MAX_ATTEMPTS="1", AWS_PAGER="")
    result = subprocess.run([sys.executable, "-m", "awscli", *args, "--endpoint-url",
                             server.endpoint], env=env, capture_output=True, text=True,
                            timeout=60)
    return result.returncode, result.stdout, result.stderr


def client_error(call, *args, **kwargs) -> botocore.exceptions.ClientError:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(*args, **kwargs)
    return caught.value


ALL_BLOCKED = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
               "RestrictPublicBuckets": True}


# --------------------------------------------------------------------------
# the AWS CLI


def test_cli_s3api_bucket_lifecycle(server):
    name = bucket_name()
    code, out = server.aws("s3api", "create-bucket", "--bucket", name)
    assert code == 0, out
    assert out["Location"] == f"/{name}"
    code, out = server.aws("s3api", "head-bucket", "--bucket", name)
    assert code == 0, out
    assert out["BucketRegion"] == "us-east-1"
    code, out = server.aws("s3api", "list-buckets")
    assert code == 0, out
    assert name in [bucket["Name"] for bucket in out["Buckets"]]
    assert out["Owner"]["ID"] == ALICE
    code, out = server.aws("s3api", "get-bucket-location", "--bucket", name)
    assert code == 0, out
    assert out["LocationConstraint"] is None
    code, out = server.aws("s3api", "get-public-access-block", "--bucket", name)
    assert code == 0, out
    assert out["PublicAccessBlockConfiguration"] == ALL_BLOCKED
    code, out = server.aws("s3api", "put-public-access-block", "--bucket", name,
                           "--public-access-block-configuration",
                           "BlockPublicAcls=true,IgnorePublicAcls=false,"
                           "BlockPublicPolicy=false,RestrictPublicBuckets=true")
    assert code == 0, out
    code, out = server.aws("s3api", "get-public-access-block", "--bucket", name)
    assert out["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": True}
    code, out = server.aws("s3api", "delete-bucket", "--bucket", name)
    assert code == 0, out
    code, err = server.aws("s3api", "head-bucket", "--bucket", name)
    assert code != 0 and "404" in err, err


def test_cli_s3api_regional_bucket(server):
    name = bucket_name()
    code, out = server.aws("s3api", "create-bucket", "--bucket", name,
                           "--create-bucket-configuration", "LocationConstraint=eu-west-1",
                           region="eu-west-1")
    assert code == 0, out
    code, out = server.aws("s3api", "get-bucket-location", "--bucket", name, region="eu-west-1")
    assert code == 0, out
    assert out["LocationConstraint"] == "eu-west-1"
    code, err = server.aws("s3api", "create-bucket", "--bucket", bucket_name(),
                           region="eu-west-1")
    assert code != 0 and "IllegalLocationConstraintException" in err, err
    code, out = server.aws("s3api", "delete-bucket", "--bucket", name, region="eu-west-1")
    assert code == 0, out


def test_cli_s3_mb_ls_rb(server):
    name = bucket_name()
    code, out, err = aws_text(server, "s3", "mb", f"s3://{name}", region="us-west-2")
    assert code == 0, err
    assert f"make_bucket: {name}" in out
    code, out, err = aws_text(server, "s3", "ls", region="us-west-2")
    assert code == 0, err
    assert name in out
    code, out, err = aws_text(server, "s3", "ls", account="bob")
    assert code == 0, err
    assert name not in out
    code, out, err = aws_text(server, "s3", "rb", f"s3://{name}", region="us-west-2")
    assert code == 0, err
    assert f"remove_bucket: {name}" in out
    code, out, err = aws_text(server, "s3", "ls")
    assert name not in out


def test_cli_invalid_name(server):
    code, err = server.aws("s3api", "create-bucket", "--bucket", "xn--punycode")
    assert code != 0 and "InvalidBucketName" in err, err


# --------------------------------------------------------------------------
# boto3: ownership and isolation


def test_names_are_global_and_owned(server):
    alice, bob = s3_client(server, "alice"), s3_client(server, "bob")
    name = bucket_name()
    alice.create_bucket(Bucket=name)

    # Re-creating one's own us-east-1 bucket in us-east-1 succeeds (S3's legacy rule).
    again = alice.create_bucket(Bucket=name)
    assert http_status(again) == 200

    error = client_error(bob.create_bucket, Bucket=name)
    assert error_code(error) == "BucketAlreadyExists"
    assert http_status(error) == 409

    # Elsewhere, one's own name is BucketAlreadyOwnedByYou.
    alice_west = s3_client(server, "alice", region="us-west-2")
    error = client_error(alice_west.create_bucket, Bucket=name,
                         CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    assert error_code(error) == "BucketAlreadyOwnedByYou"
    assert http_status(error) == 409
    west = bucket_name()
    alice_west.create_bucket(Bucket=west,
                             CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    error = client_error(alice_west.create_bucket, Bucket=west,
                         CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    assert error_code(error) == "BucketAlreadyOwnedByYou"
    bob_west = s3_client(server, "bob", region="us-west-2")
    error = client_error(bob_west.create_bucket, Bucket=west,
                         CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    assert error_code(error) == "BucketAlreadyExists"

    mine = [bucket["Name"] for bucket in alice.list_buckets()["Buckets"]]
    assert name in mine and west in mine
    theirs = bob.list_buckets()
    assert name not in [bucket["Name"] for bucket in theirs["Buckets"]]
    assert theirs["Owner"]["ID"] == BOB

    alice_west.delete_bucket(Bucket=west)
    alice.delete_bucket(Bucket=name)


def test_another_account_is_denied(server):
    alice, bob = s3_client(server, "alice"), s3_client(server, "bob")
    name = bucket_name()
    alice.create_bucket(Bucket=name)
    error = client_error(bob.head_bucket, Bucket=name)
    assert http_status(error) == 403
    for call, kwargs in [
        (bob.delete_bucket, {}),
        (bob.get_bucket_location, {}),
        (bob.get_public_access_block, {}),
        (bob.delete_public_access_block, {}),
        (bob.put_public_access_block,
         {"PublicAccessBlockConfiguration": {"BlockPublicAcls": False}}),
    ]:
        error = client_error(call, Bucket=name, **kwargs)
        assert error_code(error) == "AccessDenied", call
        assert http_status(error) == 403
    # Nothing changed.
    assert alice.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"] == \
        ALL_BLOCKED
    assert alice.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    # ExpectedBucketOwner naming someone else is refused too.
    error = client_error(alice.head_bucket, Bucket=name, ExpectedBucketOwner=BOB)
    assert http_status(error) == 403
    alice.delete_bucket(Bucket=name)


def test_anonymous_is_denied(server):
    alice = s3_client(server, "alice")
    anonymous = s3_client(server, anonymous=True)
    name = bucket_name()
    alice.create_bucket(Bucket=name)
    error = client_error(anonymous.head_bucket, Bucket=name)
    assert http_status(error) == 403
    for call, kwargs in [
        (anonymous.create_bucket, {"Bucket": bucket_name()}),
        (anonymous.get_bucket_location, {"Bucket": name}),
        (anonymous.get_public_access_block, {"Bucket": name}),
        (anonymous.delete_bucket, {"Bucket": name}),
    ]:
        error = client_error(call, **kwargs)
        assert error_code(error) == "AccessDenied", call
        assert http_status(error) == 403
    alice.head_bucket(Bucket=name)
    alice.delete_bucket(Bucket=name)


def test_unknown_access_key_and_bad_secret(server):
    name = bucket_name()
    stranger = s3_client(server, ("AKIAUNKNOWNKEY000000", "whatever-secret"))
    error = client_error(stranger.create_bucket, Bucket=name)
    assert error_code(error) == "InvalidAccessKeyId"
    assert http_status(error) == 403
    forger = s3_client(server, ("AKIAEXAMPLEALICE0001", "not-alices-secret"))
    error = client_error(forger.create_bucket, Bucket=name)
    assert error_code(error) == "SignatureDoesNotMatch"
    assert http_status(error) == 403


# --------------------------------------------------------------------------
# boto3: rules and errors


@pytest.mark.parametrize("name", [
    "ab", "a" * 64, "MyBucket", "my_bucket", "-leading", "trailing-", "two..dots",
    "192.168.5.4", "xn--bucket", "bucket-s3alias", ".dot-first",
])
def test_invalid_names(server, name):
    alice = s3_client(server, "alice")
    error = client_error(alice.create_bucket, Bucket=name)
    assert error_code(error) == "InvalidBucketName"
    assert http_status(error) == 400


def test_region_constraint(server):
    east = s3_client(server, "alice", region="us-east-1")
    west = s3_client(server, "alice", region="us-west-2")
    name = bucket_name()
    error = client_error(west.create_bucket, Bucket=name)
    assert error_code(error) == "IllegalLocationConstraintException"
    assert http_status(error) == 400
    error = client_error(east.create_bucket, Bucket=name,
                         CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert error_code(error) == "IllegalLocationConstraintException"
    error = client_error(east.create_bucket, Bucket=name,
                         CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    assert error_code(error) == "InvalidLocationConstraint"
    error = client_error(west.create_bucket, Bucket=name,
                         CreateBucketConfiguration={"LocationConstraint": "ap-south-1"})
    assert error_code(error) == "InvalidLocationConstraint"
    west.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    assert west.get_bucket_location(Bucket=name)["LocationConstraint"] == "us-west-2"
    head = west.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-west-2"
    listed = {bucket["Name"]: bucket for bucket in west.list_buckets()["Buckets"]}
    assert listed[name]["BucketRegion"] == "us-west-2"
    west.delete_bucket(Bucket=name)


def test_region_not_served(server):
    far = s3_client(server, "alice", region="ap-south-1")
    error = client_error(far.list_buckets)
    assert error_code(error) == "AuthorizationHeaderMalformed"
    assert http_status(error) == 400


def test_public_access_block(server):
    alice = s3_client(server, "alice")
    name = bucket_name()
    alice.create_bucket(Bucket=name)
    got = alice.get_public_access_block(Bucket=name)
    assert got["PublicAccessBlockConfiguration"] == ALL_BLOCKED
    alice.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": False, "RestrictPublicBuckets": True})
    got = alice.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert got == {"BlockPublicAcls": False, "IgnorePublicAcls": False,
                   "BlockPublicPolicy": False, "RestrictPublicBuckets": True}
    alice.delete_public_access_block(Bucket=name)
    error = client_error(alice.get_public_access_block, Bucket=name)
    assert error_code(error) == "NoSuchPublicAccessBlockConfiguration"
    assert http_status(error) == 404
    # Deleting again is fine, as in S3.
    alice.delete_public_access_block(Bucket=name)
    alice.delete_bucket(Bucket=name)


def test_missing_bucket(server):
    alice = s3_client(server, "alice")
    name = bucket_name()
    error = client_error(alice.head_bucket, Bucket=name)
    assert http_status(error) == 404
    for call in (alice.delete_bucket, alice.get_bucket_location, alice.get_public_access_block):
        error = client_error(call, Bucket=name)
        assert error_code(error) == "NoSuchBucket", call
        assert http_status(error) == 404
    alice.create_bucket(Bucket=name)
    alice.delete_bucket(Bucket=name)
    error = client_error(alice.delete_bucket, Bucket=name)
    assert error_code(error) == "NoSuchBucket"


def test_error_shape_and_unimplemented(server):
    alice = s3_client(server, "alice")
    name = bucket_name()
    alice.create_bucket(Bucket=name)
    # An unsigned request to a private bucket is answered by S3, in S3's XML.
    # (Unsigned requests now reach the operations, which a bucket policy may
    # open to anonymous callers; see test_s3_policy.py.)
    reply = http("GET", f"{server.endpoint}/{name}/some-key")
    assert reply.status == 403
    assert reply.xml is not None and reply.xml.tag == "Error"
    assert reply.xml.findtext("Code") == "AccessDenied"
    assert reply.xml.findtext("Message")
    assert reply.headers.get("x-amz-request-id")
    # Operations outside this slice say so.
    error = client_error(alice.get_bucket_website, Bucket=name)
    assert error_code(error) == "NotImplemented"
    alice.delete_bucket(Bucket=name)


def test_list_buckets_pages(server):
    alice = s3_client(server, "alice")
    prefix = bucket_name("page")
    names = [f"{prefix}-{n}" for n in range(3)]
    for name in names:
        alice.create_bucket(Bucket=name)
    first = alice.list_buckets(Prefix=prefix, MaxBuckets=2)
    assert [bucket["Name"] for bucket in first["Buckets"]] == names[:2]
    assert first["ContinuationToken"]
    rest = alice.list_buckets(Prefix=prefix, MaxBuckets=2,
                              ContinuationToken=first["ContinuationToken"])
    assert [bucket["Name"] for bucket in rest["Buckets"]] == names[2:]
    assert "ContinuationToken" not in rest
    for name in names:
        alice.delete_bucket(Bucket=name)


def test_ec2_still_served_alongside(server):
    ec2 = server.client("alice")
    regions = ec2.describe_regions()["Regions"]
    assert regions


# --------------------------------------------------------------------------
# dev mode


def test_dev_mode_accounts_from_access_keys(make_server):
    dev = make_server("dev-s3", dev_mode=True)
    mine = s3_client(dev, ("444444444444", "anything"))
    other = s3_client(dev, ("AKIASOMETHINGELSE000", "anything"))
    anonymous = s3_client(dev, anonymous=True)
    name = bucket_name()
    mine.create_bucket(Bucket=name)
    listed = mine.list_buckets()
    assert listed["Owner"]["ID"] == "444444444444"
    assert name in [bucket["Name"] for bucket in listed["Buckets"]]
    assert other.list_buckets()["Owner"]["ID"] == "123456789012"
    assert name not in [bucket["Name"] for bucket in other.list_buckets()["Buckets"]]
    error = client_error(other.head_bucket, Bucket=name)
    assert http_status(error) == 403
    error = client_error(anonymous.get_bucket_location, Bucket=name)
    assert error_code(error) == "AccessDenied"
    assert mine.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"] == \
        ALL_BLOCKED
    mine.delete_bucket(Bucket=name)
