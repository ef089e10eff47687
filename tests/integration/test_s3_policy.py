"""S3 bucket policies: PutBucketPolicy / GetBucketPolicy / DeleteBucketPolicy /
GetBucketPolicyStatus, and the access they grant or deny (another account,
anonymous callers, the owner), with boto3 and the AWS CLI."""

from __future__ import annotations

import json
import time

import pytest

from conftest import ALICE, BOB, error_code, http, http_status
from test_s3_buckets import aws_text, bucket_name, client_error, s3_client

ALL_OPEN = {"BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
            "RestrictPublicBuckets": False}


def document(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal, actions, resources, **extra) -> dict:
    return {"Effect": "Allow", "Principal": principal, "Action": actions,
            "Resource": resources, **extra}


@pytest.fixture
def bucket(server):
    """A fresh bucket of alice's; its policy, objects and itself go afterwards."""
    alice = s3_client(server, "alice")
    name = bucket_name("pol")
    alice.create_bucket(Bucket=name)
    yield alice, name
    alice.delete_bucket_policy(Bucket=name)
    for entry in alice.list_objects_v2(Bucket=name).get("Contents", []):
        alice.delete_object(Bucket=name, Key=entry["Key"])
    alice.delete_bucket(Bucket=name)


def test_round_trip_and_status(bucket):
    alice, name = bucket
    error = client_error(alice.get_bucket_policy, Bucket=name)
    assert error_code(error) == "NoSuchBucketPolicy"
    assert http_status(error) == 404
    # S3 answers the status of a bucket without a policy the same way.
    error = client_error(alice.get_bucket_policy_status, Bucket=name)
    assert error_code(error) == "NoSuchBucketPolicy"
    text = document(allow({"AWS": f"arn:aws:iam::{BOB}:root"}, "s3:GetObject",
                          f"arn:aws:s3:::{name}/*"))
    put = alice.put_bucket_policy(Bucket=name, Policy=text, ConfirmRemoveSelfBucketAccess=False)
    assert http_status(put) == 204
    assert alice.get_bucket_policy(Bucket=name)["Policy"] == text
    assert alice.get_bucket_policy_status(Bucket=name)["PolicyStatus"] == {"IsPublic": False}
    assert http_status(alice.delete_bucket_policy(Bucket=name)) == 204
    assert error_code(client_error(alice.get_bucket_policy, Bucket=name)) == "NoSuchBucketPolicy"
    # Deleting again is fine, as in S3.
    assert http_status(alice.delete_bucket_policy(Bucket=name)) == 204


def test_round_trip_with_the_cli(server, bucket, tmp_path):
    _, name = bucket
    text = document(allow({"AWS": BOB}, ["s3:ListBucket"], f"arn:aws:s3:::{name}"))
    path = tmp_path / "policy.json"
    path.write_text(text)
    code, _, err = aws_text(server, "s3api", "put-bucket-policy", "--bucket", name,
                            "--policy", f"file://{path}")
    assert code == 0, err
    code, out, err = aws_text(server, "s3api", "get-bucket-policy", "--bucket", name)
    assert code == 0, err
    assert json.loads(json.loads(out)["Policy"]) == json.loads(text)
    code, out, err = aws_text(server, "s3api", "get-bucket-policy-status", "--bucket", name)
    assert code == 0, err
    assert json.loads(out) == {"PolicyStatus": {"IsPublic": False}}
    path.write_text('{"Statement": [')
    code, _, err = aws_text(server, "s3api", "put-bucket-policy", "--bucket", name,
                            "--policy", f"file://{path}")
    assert code != 0 and "MalformedPolicy" in err
    code, _, err = aws_text(server, "s3api", "delete-bucket-policy", "--bucket", name)
    assert code == 0, err


def test_malformed_policies(bucket):
    alice, name = bucket
    objects = f"arn:aws:s3:::{name}/*"
    cases = [
        ("not json", "invalid Json"),
        (json.dumps({"Version": "2012-10-17"}), "Missing required field Statement"),
        (json.dumps({"Version": "2012-10-17", "Statement": []}), "Statement is empty"),
        (json.dumps({"Version": "2001-01-01",
                     "Statement": [allow({"AWS": BOB}, "s3:GetObject", objects)]}),
         "invalid version"),
        (document(allow({"AWS": BOB}, "ec2:RunInstances", objects)), "Policy has invalid action"),
        (document(allow({"AWS": BOB}, "s3:GetObject", "arn:aws:s3:::some-other-bucket/*")),
         "Policy has invalid resource"),
        (document(allow({"AWS": "not-an-account"}, "s3:GetObject", objects)),
         "Invalid principal in policy"),
        (document({"Effect": "Allow", "Action": "s3:GetObject", "Resource": objects}),
         "Missing required field Principal"),
        (document(allow({"AWS": BOB}, "s3:GetObject", objects, Effect="Perhaps")),
         "Invalid effect"),
        (document(allow({"AWS": BOB}, "s3:GetObject", f"arn:aws:s3:::{name}")),
         "Action does not apply to any resource(s) in statement"),
        (document(allow({"AWS": BOB}, "s3:GetObject", objects,
                        Condition={"StringEquals": {"aws:NoSuchKey": "x"}})),
         "Policy has an invalid condition key"),
        (document(allow({"AWS": BOB}, "s3:GetObject", objects,
                        Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
         "Invalid Condition type"),
        (document({"Effect": "Allow", "NotPrincipal": {"AWS": BOB}, "Action": "s3:GetObject",
                   "Resource": objects}), "NotPrincipal"),
        (json.dumps({"Id": "x" * 21000,
                     "Statement": [allow({"AWS": BOB}, "s3:GetObject", objects)]}),
         "maximum allowed document size"),
    ]
    for text, message in cases:
        error = client_error(alice.put_bucket_policy, Bucket=name, Policy=text)
        assert error_code(error) == "MalformedPolicy", text[:200]
        assert http_status(error) == 400
        assert message in error.response["Error"]["Message"], (text[:200], error.response)
    # Nothing was stored.
    assert error_code(client_error(alice.get_bucket_policy, Bucket=name)) == "NoSuchBucketPolicy"


def test_block_public_policy_refuses_public_policies(bucket):
    alice, name = bucket
    public = document(allow("*", "s3:GetObject", f"arn:aws:s3:::{name}/*"))
    error = client_error(alice.put_bucket_policy, Bucket=name, Policy=public)
    assert error_code(error) == "AccessDenied"
    assert http_status(error) == 403
    assert "BlockPublicPolicy" in error.response["Error"]["Message"]
    # A wildcard principal pinned to fixed accounts is not public.
    pinned = document(allow("*", "s3:GetObject", f"arn:aws:s3:::{name}/*",
                            Condition={"StringEquals": {"aws:PrincipalAccount": [BOB]}}))
    alice.put_bucket_policy(Bucket=name, Policy=pinned)
    assert alice.get_bucket_policy_status(Bucket=name)["PolicyStatus"]["IsPublic"] is False
    # Once BlockPublicPolicy is off, the public policy goes in.
    alice.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicPolicy": False, "RestrictPublicBuckets": True})
    alice.put_bucket_policy(Bucket=name, Policy=public)
    assert alice.get_bucket_policy_status(Bucket=name)["PolicyStatus"]["IsPublic"] is True
    # A condition on TLS alone does not make it private.
    secure_only = document(allow("*", "s3:GetObject", f"arn:aws:s3:::{name}/*",
                                 Condition={"Bool": {"aws:SecureTransport": "true"}}))
    alice.put_bucket_policy(Bucket=name, Policy=secure_only)
    assert alice.get_bucket_policy_status(Bucket=name)["PolicyStatus"]["IsPublic"] is True


def test_another_account_denied_then_granted(server, bucket):
    alice, name = bucket
    bob = s3_client(server, "bob")
    alice.put_object(Bucket=name, Key="shared/report.txt", Body=b"numbers")
    alice.put_object(Bucket=name, Key="private/diary.txt", Body=b"secrets")
    for call, kwargs in [(bob.get_object, {"Key": "shared/report.txt"}),
                         (bob.list_objects_v2, {}),
                         (bob.put_object, {"Key": "shared/from-bob", "Body": b"b"})]:
        assert error_code(client_error(call, Bucket=name, **kwargs)) == "AccessDenied", call
    alice.put_bucket_policy(Bucket=name, Policy=document(
        allow({"AWS": BOB}, "s3:ListBucket", f"arn:aws:s3:::{name}"),
        allow({"AWS": [f"arn:aws:iam::{BOB}:root"]}, ["s3:GetObject", "s3:PutObject"],
              f"arn:aws:s3:::{name}/shared/*"),
    ))
    # New buckets keep RestrictPublicBuckets on: a non-public policy still grants.
    assert bob.get_object(Bucket=name, Key="shared/report.txt")["Body"].read() == b"numbers"
    listed = bob.list_objects_v2(Bucket=name)
    assert sorted(entry["Key"] for entry in listed["Contents"]) == \
        ["private/diary.txt", "shared/report.txt"]
    bob.put_object(Bucket=name, Key="shared/from-bob", Body=b"hello alice")
    assert alice.get_object(Bucket=name, Key="shared/from-bob")["Body"].read() == b"hello alice"
    assert bob.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    # Outside the grant.
    assert error_code(client_error(bob.get_object, Bucket=name, Key="private/diary.txt")) == \
        "AccessDenied"
    assert error_code(client_error(bob.delete_object, Bucket=name, Key="shared/report.txt")) == \
        "AccessDenied"
    # The bucket's configuration stays alice's.
    for call, kwargs in [
        (bob.put_bucket_policy, {"Policy": document(allow({"AWS": BOB}, "s3:*",
                                                          f"arn:aws:s3:::{name}/*"))}),
        (bob.get_bucket_policy, {}),
        (bob.delete_bucket_policy, {}),
        (bob.get_bucket_policy_status, {}),
        (bob.get_public_access_block, {}),
        (bob.delete_bucket, {}),
    ]:
        error = client_error(call, Bucket=name, **kwargs)
        assert error_code(error) == "AccessDenied", call
        assert http_status(error) == 403
    # The grant is bob's, not everyone's.
    anonymous = s3_client(server, anonymous=True)
    assert http_status(client_error(anonymous.get_object, Bucket=name,
                                    Key="shared/report.txt")) == 403


def test_even_a_granted_bob_cannot_manage_the_policy(server, bucket):
    alice, name = bucket
    bob = s3_client(server, "bob")
    alice.put_bucket_policy(Bucket=name, Policy=document(
        allow({"AWS": BOB}, ["s3:PutBucketPolicy", "s3:GetBucketPolicy",
                             "s3:DeleteBucketPolicy"], f"arn:aws:s3:::{name}")))
    error = client_error(bob.put_bucket_policy, Bucket=name,
                         Policy=document(allow({"AWS": BOB}, "s3:*", f"arn:aws:s3:::{name}/*")))
    assert error_code(error) == "AccessDenied"
    assert error_code(client_error(bob.get_bucket_policy, Bucket=name)) == "AccessDenied"


def test_deny_plain_http_binds_the_owner(bucket):
    alice, name = bucket
    alice.put_object(Bucket=name, Key="k", Body=b"v")
    alice.put_bucket_policy(Bucket=name, Policy=document({
        "Sid": "TLSOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }))
    # This endpoint is plain HTTP: alice's own reads are refused.
    for call, kwargs in [(alice.get_object, {"Key": "k"}), (alice.list_objects_v2, {}),
                         (alice.put_object, {"Key": "k2", "Body": b"x"})]:
        error = client_error(call, Bucket=name, **kwargs)
        assert error_code(error) == "AccessDenied", call
        assert http_status(error) == 403
    # But she can always read and remove the policy.
    assert "TLSOnly" in alice.get_bucket_policy(Bucket=name)["Policy"]
    alice.delete_bucket_policy(Bucket=name)
    assert alice.get_object(Bucket=name, Key="k")["Body"].read() == b"v"


def test_anonymous_denied_then_allowed_on_a_public_bucket(server, bucket):
    alice, name = bucket
    anonymous = s3_client(server, anonymous=True)
    alice.put_object(Bucket=name, Key="site/index.html", Body=b"<h1>hi</h1>",
                     ContentType="text/html")
    error = client_error(anonymous.get_object, Bucket=name, Key="site/index.html")
    assert error_code(error) == "AccessDenied"
    alice.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=ALL_OPEN)
    alice.put_bucket_policy(Bucket=name, Policy=document(
        allow("*", "s3:GetObject", f"arn:aws:s3:::{name}/site/*")))
    assert alice.get_bucket_policy_status(Bucket=name)["PolicyStatus"]["IsPublic"] is True
    got = anonymous.get_object(Bucket=name, Key="site/index.html")
    assert got["Body"].read() == b"<h1>hi</h1>"
    assert got["ContentType"] == "text/html"
    # A plain unsigned HTTP GET, as a browser would send it.
    reply = http("GET", f"{server.endpoint}/{name}/site/index.html")
    assert reply.status == 200
    assert reply.text == "<h1>hi</h1>"
    # Only what the policy grants.
    for call, kwargs in [(anonymous.put_object, {"Key": "site/x", "Body": b"x"}),
                         (anonymous.list_objects_v2, {}),
                         (anonymous.delete_object, {"Key": "site/index.html"}),
                         (anonymous.get_bucket_policy, {})]:
        assert error_code(client_error(call, Bucket=name, **kwargs)) == "AccessDenied", call
    # Any account is "everyone" too.
    bob = s3_client(server, "bob")
    assert bob.get_object(Bucket=name, Key="site/index.html")["Body"].read() == b"<h1>hi</h1>"
    # Anonymous ListBuckets and CreateBucket stay refused.
    assert http_status(client_error(anonymous.create_bucket, Bucket=bucket_name())) == 403


def test_restrict_public_buckets_ignores_public_grants(server, bucket):
    alice, name = bucket
    anonymous, bob = s3_client(server, anonymous=True), s3_client(server, "bob")
    alice.put_object(Bucket=name, Key="k", Body=b"v")
    alice.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicPolicy": False, "RestrictPublicBuckets": True})
    alice.put_bucket_policy(Bucket=name, Policy=document(
        allow("*", "s3:GetObject", f"arn:aws:s3:::{name}/*"),
        allow({"AWS": BOB}, "s3:GetObject", f"arn:aws:s3:::{name}/*"),
    ))
    # As in S3: a public policy under RestrictPublicBuckets lets only the
    # owner's account in, cross-account grants of that policy included.
    assert error_code(client_error(anonymous.get_object, Bucket=name, Key="k")) == "AccessDenied"
    assert error_code(client_error(bob.get_object, Bucket=name, Key="k")) == "AccessDenied"
    assert alice.get_object(Bucket=name, Key="k")["Body"].read() == b"v"
    alice.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicPolicy": False, "RestrictPublicBuckets": False})
    assert anonymous.get_object(Bucket=name, Key="k")["Body"].read() == b"v"
    assert bob.get_object(Bucket=name, Key="k")["Body"].read() == b"v"


def test_expected_bucket_owner_with_a_grant(server, bucket):
    alice, name = bucket
    bob = s3_client(server, "bob")
    alice.put_object(Bucket=name, Key="k", Body=b"v")
    alice.put_bucket_policy(Bucket=name, Policy=document(
        allow({"AWS": BOB}, "s3:GetObject", f"arn:aws:s3:::{name}/*")))
    assert bob.get_object(Bucket=name, Key="k", ExpectedBucketOwner=ALICE)["Body"].read() == b"v"
    error = client_error(bob.get_object, Bucket=name, Key="k", ExpectedBucketOwner=BOB)
    assert http_status(error) == 403


def test_missing_bucket(server):
    alice = s3_client(server, "alice")
    name = bucket_name("nopol")
    for call in (alice.get_bucket_policy, alice.delete_bucket_policy,
                 alice.get_bucket_policy_status):
        assert error_code(client_error(call, Bucket=name)) == "NoSuchBucket", call
    error = client_error(alice.put_bucket_policy, Bucket=name,
                         Policy=document(allow("*", "s3:GetObject", f"arn:aws:s3:::{name}/*")))
    assert error_code(error) == "NoSuchBucket"


def test_dev_mode_unsigned_is_anonymous(make_server):
    dev = make_server("dev-policy", dev_mode=True)
    mine = s3_client(dev, ("444444444444", "anything"))
    anonymous = s3_client(dev, anonymous=True)
    name = bucket_name("devpol")
    mine.create_bucket(Bucket=name)
    mine.put_object(Bucket=name, Key="k", Body=b"v")
    assert error_code(client_error(anonymous.get_object, Bucket=name, Key="k")) == "AccessDenied"
    mine.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=ALL_OPEN)
    mine.put_bucket_policy(Bucket=name, Policy=document(
        allow("*", "s3:GetObject", f"arn:aws:s3:::{name}/*")))
    assert anonymous.get_object(Bucket=name, Key="k")["Body"].read() == b"v"
    mine.delete_bucket_policy(Bucket=name)
    assert error_code(client_error(anonymous.get_object, Bucket=name, Key="k")) == "AccessDenied"
    mine.delete_object(Bucket=name, Key="k")
    mine.delete_bucket(Bucket=name)


def read_response(sock) -> tuple:
    """One HTTP/1.1 response from a raw socket: (status, headers, body), or
    None when the server closed the connection before answering."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return None
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:length]


def test_refused_expect_continue_put_does_not_mistake_the_next_request_for_its_body(
        server, bucket):
    """A PUT with `Expect: 100-continue` refused before its body is asked
    for: the client never sends the body, and its next request on the same
    connection must not be read as that body (it would arrive with its
    method cut short). botocore sends its next request right after such a
    refusal; here the next request is already on the wire when the refusal
    is written, which makes the race certain."""
    import socket
    import urllib.parse

    _, name = bucket
    endpoint = urllib.parse.urlsplit(server.endpoint)
    with socket.create_connection((endpoint.hostname, endpoint.port), timeout=10) as sock:
        host = f"{endpoint.hostname}:{endpoint.port}"
        sock.sendall((f"PUT /{name}/site/x HTTP/1.1\r\nHost: {host}\r\n"
                      "Content-Length: 1\r\nExpect: 100-continue\r\n\r\n").encode())
        time.sleep(0.2)
        sock.sendall((f"GET /{name}?list-type=2 HTTP/1.1\r\nHost: {host}\r\n\r\n").encode())
        first = read_response(sock)
        assert first is not None and first[0] == 403, first
        assert b"AccessDenied" in first[2], first
        second = read_response(sock)
    # Either the refusal closed the connection (as it says), or the next
    # request was read whole: anonymous ListObjectsV2 is AccessDenied too.
    if second is None:
        assert first[1].get("connection", "").lower() == "close", first[1]
    else:
        assert second[0] == 403 and b"AccessDenied" in second[2], second
