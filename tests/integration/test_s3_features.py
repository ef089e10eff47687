"""S3 object features beyond put/get: additional checksums, object tagging,
CopyObject, DeleteObjects, part-number reads, ACL and SSE headers, and dev
mode's decoding of `aws-chunked` bodies."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib

import pytest
import requests

from conftest import _boto_session as boto3_session
from conftest import error_code, http_status
from test_s3_buckets import bucket_name, client_error, s3_client


@pytest.fixture
def bucket(server):
    """A fresh bucket of alice's, emptied and deleted afterwards."""
    alice = s3_client(server, "alice")
    name = bucket_name("feat")
    alice.create_bucket(Bucket=name)
    yield alice, name
    listed = alice.list_objects_v2(Bucket=name)
    for entry in listed.get("Contents", []):
        alice.delete_object(Bucket=name, Key=entry["Key"])
    alice.delete_bucket(Bucket=name)


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# -- checksums ----------------------------------------------------------------


def test_checksums_are_verified_and_reported(bucket):
    alice, name = bucket
    data = os.urandom(300_000)
    put = alice.put_object(Bucket=name, Key="c32", Body=data, ChecksumCRC32=crc32_b64(data))
    assert put["ChecksumCRC32"] == crc32_b64(data)
    put = alice.put_object(Bucket=name, Key="s256", Body=data, ChecksumSHA256=sha256_b64(data))
    assert put["ChecksumSHA256"] == sha256_b64(data)
    # Asking for an algorithm without a value: the SDK computes it (header
    # or trailer); the server stores what it computed itself.
    alice.put_object(Bucket=name, Key="sha1", Body=data, ChecksumAlgorithm="SHA1")
    head = alice.head_object(Bucket=name, Key="sha1", ChecksumMode="ENABLED")
    assert head["ChecksumSHA1"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
    head = alice.head_object(Bucket=name, Key="s256", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == sha256_b64(data)
    got = alice.get_object(Bucket=name, Key="s256", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == sha256_b64(data)
    assert got["Body"].read() == data
    # A ranged read reports no whole-object checksum.
    ranged = alice.get_object(Bucket=name, Key="s256", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert "ChecksumSHA256" not in ranged
    assert ranged["Body"].read() == data[:10]


def test_wrong_checksums_are_bad_digest_and_store_nothing(bucket):
    alice, name = bucket
    data = b"the bytes that were sent"
    wrong = crc32_b64(b"other bytes")
    error = client_error(alice.put_object, Bucket=name, Key="bad", Body=data,
                         ChecksumCRC32=wrong)
    assert error_code(error) == "BadDigest"
    assert http_status(error) == 400
    error = client_error(alice.put_object, Bucket=name, Key="bad", Body=data,
                         ChecksumSHA256=sha256_b64(b"nope"))
    assert error_code(error) == "BadDigest"
    error = client_error(alice.head_object, Bucket=name, Key="bad")
    assert http_status(error) == 404


# -- tagging ------------------------------------------------------------------


def test_object_tagging(bucket):
    alice, name = bucket
    alice.put_object(Bucket=name, Key="t", Body=b"x", Tagging="stage=prod&team=a%20b")
    tags = alice.get_object_tagging(Bucket=name, Key="t")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("stage", "prod"), ("team", "a b")]
    assert alice.get_object(Bucket=name, Key="t")["TagCount"] == 2
    alice.put_object_tagging(Bucket=name, Key="t",
                             Tagging={"TagSet": [{"Key": "only", "Value": "one"}]})
    tags = alice.get_object_tagging(Bucket=name, Key="t")["TagSet"]
    assert tags == [{"Key": "only", "Value": "one"}]
    # The tags belong to the object, not to its key's history.
    assert alice.get_object(Bucket=name, Key="t")["Body"].read() == b"x"
    alice.delete_object_tagging(Bucket=name, Key="t")
    assert alice.get_object_tagging(Bucket=name, Key="t")["TagSet"] == []
    eleven = [{"Key": f"k{i}", "Value": "v"} for i in range(11)]
    error = client_error(alice.put_object_tagging, Bucket=name, Key="t",
                         Tagging={"TagSet": eleven})
    assert error_code(error) == "InvalidTag"
    assert http_status(error) == 400
    header = "&".join(f"k{i}=v" for i in range(11))
    error = client_error(alice.put_object, Bucket=name, Key="t2", Body=b"x", Tagging=header)
    assert error_code(error) == "InvalidTag"
    error = client_error(alice.put_object_tagging, Bucket=name, Key="t",
                         Tagging={"TagSet": [{"Key": "k" * 129, "Value": "v"}]})
    assert error_code(error) == "InvalidTag"
    error = client_error(alice.get_object_tagging, Bucket=name, Key="missing")
    assert error_code(error) == "NoSuchKey"


def test_tagging_is_the_owners(server, bucket):
    alice, name = bucket
    alice.put_object(Bucket=name, Key="t", Body=b"x")
    bob = s3_client(server, "bob")
    error = client_error(bob.get_object_tagging, Bucket=name, Key="t")
    assert error_code(error) == "AccessDenied"
    error = client_error(bob.put_object_tagging, Bucket=name, Key="t",
                         Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert error_code(error) == "AccessDenied"


# -- copy -----------------------------------------------------------------------


def test_copy_object_keeps_or_replaces_metadata(bucket):
    alice, name = bucket
    data = os.urandom(700_000)
    alice.put_object(Bucket=name, Key="src", Body=data, ContentType="application/x-test",
                     Metadata={"colour": "blue"}, Tagging="a=1")
    copied = alice.copy_object(Bucket=name, Key="dst", CopySource={"Bucket": name, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = alice.get_object(Bucket=name, Key="dst")
    assert got["Body"].read() == data
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"colour": "blue"}
    assert alice.get_object_tagging(Bucket=name, Key="dst")["TagSet"] == [
        {"Key": "a", "Value": "1"}]
    alice.copy_object(Bucket=name, Key="dst2", CopySource=f"{name}/src",
                      MetadataDirective="REPLACE", Metadata={"shape": "round"},
                      ContentType="text/plain", TaggingDirective="REPLACE", Tagging="b=2")
    head = alice.head_object(Bucket=name, Key="dst2")
    assert head["Metadata"] == {"shape": "round"}
    assert head["ContentType"] == "text/plain"
    assert alice.get_object_tagging(Bucket=name, Key="dst2")["TagSet"] == [
        {"Key": "b", "Value": "2"}]
    # Overwriting the source does not change the copy.
    alice.put_object(Bucket=name, Key="src", Body=b"new")
    assert alice.get_object(Bucket=name, Key="dst")["Body"].read() == data


def test_copy_object_refusals(server, bucket):
    alice, name = bucket
    alice.put_object(Bucket=name, Key="src", Body=b"abc")
    error = client_error(alice.copy_object, Bucket=name, Key="src",
                         CopySource={"Bucket": name, "Key": "src"})
    assert error_code(error) == "InvalidRequest"
    # Replacing the metadata makes a copy onto itself legal.
    alice.copy_object(Bucket=name, Key="src", CopySource={"Bucket": name, "Key": "src"},
                      MetadataDirective="REPLACE", Metadata={"v": "2"})
    assert alice.head_object(Bucket=name, Key="src")["Metadata"] == {"v": "2"}
    assert alice.get_object(Bucket=name, Key="src")["Body"].read() == b"abc"
    error = client_error(alice.copy_object, Bucket=name, Key="d",
                         CopySource={"Bucket": name, "Key": "missing"})
    assert error_code(error) == "NoSuchKey"
    error = client_error(alice.copy_object, Bucket=name, Key="d",
                         CopySource={"Bucket": name, "Key": "src"},
                         CopySourceIfMatch='"0123"')
    assert error_code(error) == "PreconditionFailed"
    assert http_status(error) == 412
    # Bob can neither read alice's object nor write into her bucket.
    bob = s3_client(server, "bob")
    bob_bucket = bucket_name("bobs")
    bob.create_bucket(Bucket=bob_bucket)
    try:
        error = client_error(bob.copy_object, Bucket=bob_bucket, Key="stolen",
                             CopySource={"Bucket": name, "Key": "src"})
        assert error_code(error) == "AccessDenied"
        bob.put_object(Bucket=bob_bucket, Key="mine", Body=b"m")
        error = client_error(bob.copy_object, Bucket=name, Key="planted",
                             CopySource={"Bucket": bob_bucket, "Key": "mine"})
        assert error_code(error) == "AccessDenied"
        assert "Contents" not in bob.list_objects_v2(Bucket=bob_bucket, Prefix="stolen")
    finally:
        for entry in bob.list_objects_v2(Bucket=bob_bucket).get("Contents", []):
            bob.delete_object(Bucket=bob_bucket, Key=entry["Key"])
        bob.delete_bucket(Bucket=bob_bucket)


# -- batch delete ---------------------------------------------------------------


def test_delete_objects(bucket):
    alice, name = bucket
    for index in range(5):
        alice.put_object(Bucket=name, Key=f"d/{index}", Body=b"x")
    result = alice.delete_objects(Bucket=name, Delete={"Objects": [
        {"Key": "d/0"}, {"Key": "d/1"}, {"Key": "never-existed"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == ["d/0", "d/1", "never-existed"]
    assert "Errors" not in result
    quiet = alice.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "d/2"}],
                                                      "Quiet": True})
    assert "Deleted" not in quiet
    left = [entry["Key"] for entry in alice.list_objects_v2(Bucket=name)["Contents"]]
    assert left == ["d/3", "d/4"]
    too_many = [{"Key": f"k{i}"} for i in range(1001)]
    error = client_error(alice.delete_objects, Bucket=name, Delete={"Objects": too_many})
    assert error_code(error) == "MalformedXML"


def test_delete_objects_of_another_account_is_denied(server, bucket):
    alice, name = bucket
    alice.put_object(Bucket=name, Key="keep", Body=b"x")
    bob = s3_client(server, "bob")
    try:
        result = bob.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "keep"}]})
        assert [e["Code"] for e in result.get("Errors", [])] == ["AccessDenied"]
    except Exception as error:  # S3 may also refuse the whole request
        assert error_code(error) == "AccessDenied"
    assert alice.get_object(Bucket=name, Key="keep")["Body"].read() == b"x"


# -- headers --------------------------------------------------------------------


def test_part_number_reads_and_sse_header(bucket):
    alice, name = bucket
    alice.put_object(Bucket=name, Key="one", Body=b"0123456789")
    head = alice.head_object(Bucket=name, Key="one")
    assert head["ServerSideEncryption"] == "AES256"
    part = alice.get_object(Bucket=name, Key="one", PartNumber=1)
    assert part["PartsCount"] == 1
    assert part["Body"].read() == b"0123456789"
    error = client_error(alice.get_object, Bucket=name, Key="one", PartNumber=2)
    assert http_status(error) == 416


def test_acls_and_kms_are_refused(bucket):
    alice, name = bucket
    error = client_error(alice.put_object, Bucket=name, Key="a", Body=b"x", ACL="public-read")
    assert error_code(error) == "AccessControlListNotSupported"
    assert http_status(error) == 400
    alice.put_object(Bucket=name, Key="a", Body=b"x", ACL="bucket-owner-full-control")
    error = client_error(alice.put_object, Bucket=name, Key="k", Body=b"x",
                         ServerSideEncryption="aws:kms")
    assert error_code(error) == "InvalidArgument"
    put = alice.put_object(Bucket=name, Key="s", Body=b"x", ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256"


# -- dev mode and aws-chunked --------------------------------------------------


def chunked(data: bytes, chunk: int, trailer: str | None) -> bytes:
    out = b""
    for start in range(0, len(data), chunk):
        piece = data[start:start + chunk]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    out += b"0\r\n"
    if trailer:
        out += trailer.encode() + b"\r\n"
    return out + b"\r\n"


def test_dev_mode_decodes_aws_chunked_bodies(make_server):
    dev = make_server("dev", dev_mode=True)
    client = s3_client(dev, "alice")
    name = bucket_name("devchunk")
    client.create_bucket(Bucket=name)
    data = os.urandom(200_000)
    url = f"{dev.endpoint}/{name}/chunked.bin"
    key, _ = dev.credentials("alice")
    auth = (f"AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/s3/aws4_request, "
            "SignedHeaders=host, Signature=" + "0" * 64)
    headers = {
        "Authorization": auth,
        "x-amz-date": "20260101T000000Z",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
    }
    body = chunked(data, 65536, f"x-amz-checksum-crc32:{crc32_b64(data)}")
    reply = requests.put(url, data=body, headers=headers, timeout=30)
    assert reply.status_code == 200, reply.text
    assert client.get_object(Bucket=name, Key="chunked.bin")["Body"].read() == data
    # A wrong trailing checksum is refused and stores nothing.
    body = chunked(data, 65536, f"x-amz-checksum-crc32:{crc32_b64(b'x')}")
    reply = requests.put(f"{dev.endpoint}/{name}/wrong.bin", data=body, headers=headers,
                         timeout=30)
    assert reply.status_code == 400
    assert b"BadDigest" in reply.content
    # Signed chunks (the signatures are not checked in dev mode).
    signed = dict(headers)
    signed["x-amz-content-sha256"] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    del signed["x-amz-trailer"]
    body = b""
    for start in range(0, len(data), 65536):
        piece = data[start:start + 65536]
        body += f"{len(piece):x};chunk-signature={'a' * 64}\r\n".encode() + piece + b"\r\n"
    body += f"0;chunk-signature={'a' * 64}\r\n\r\n".encode()
    reply = requests.put(f"{dev.endpoint}/{name}/signed.bin", data=body, headers=signed,
                         timeout=30)
    assert reply.status_code == 200, reply.text
    assert client.get_object(Bucket=name, Key="signed.bin")["Body"].read() == data
    # A truncated body is an error, not a short object.
    reply = requests.put(f"{dev.endpoint}/{name}/short.bin", data=body[:1000],
                         headers=signed, timeout=30)
    assert reply.status_code >= 400
    assert reply.status_code < 500
    error = client_error(client.head_object, Bucket=name, Key="short.bin")
    assert http_status(error) == 404


# -- bucket encryption ----------------------------------------------------------


def test_bucket_encryption_defaults_to_sse_s3(server, bucket):
    alice, name = bucket
    rules = alice.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    alice.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
        "BucketKeyEnabled": True}]})
    rules = alice.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["BucketKeyEnabled"] is True
    error = client_error(alice.put_bucket_encryption, Bucket=name,
                         ServerSideEncryptionConfiguration={"Rules": [{
                             "ApplyServerSideEncryptionByDefault": {
                                 "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "k"}}]})
    assert error_code(error) == "InvalidArgument"
    alice.delete_bucket_encryption(Bucket=name)
    rules = alice.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert rules[0]["BucketKeyEnabled"] is False
    bob = s3_client(server, "bob")
    error = client_error(bob.get_bucket_encryption, Bucket=name)
    assert error_code(error) == "AccessDenied"
    error = client_error(bob.delete_bucket_encryption, Bucket=name)
    assert error_code(error) == "AccessDenied"


# -- early answers ---------------------------------------------------------------


def test_errors_before_the_body_is_read_arrive_whole(server, bucket):
    """An operation refused before it reads the body still gets its S3 error
    document to the client, and the connection stays usable."""
    alice, name = bucket
    bob = s3_client(server, "bob")
    for attempt, size in enumerate([2 * 1024 * 1024, 100_000, 1] * 5):
        body = os.urandom(size)
        error = client_error(alice.put_object, Bucket="no-such-bucket-" + name, Key="k",
                             Body=body)
        assert error_code(error) == "NoSuchBucket", attempt
        assert http_status(error) == 404
        error = client_error(bob.put_object, Bucket=name, Key="k", Body=body)
        assert error_code(error) == "AccessDenied", attempt
        error = client_error(alice.put_object, Bucket=name, Key="k", Body=body,
                             ACL="public-read")
        assert error_code(error) == "AccessControlListNotSupported", attempt
    alice.put_object(Bucket=name, Key="after", Body=b"fine")
    assert alice.get_object(Bucket=name, Key="after")["Body"].read() == b"fine"


# -- presigned URLs and body encodings of other SDKs -----------------------------


def test_presigned_get_and_put(server, bucket):
    alice, name = bucket
    data = os.urandom(123_456)
    put_url = alice.generate_presigned_url("put_object", Params={"Bucket": name, "Key": "pre"},
                                           ExpiresIn=300)
    reply = requests.put(put_url, data=data, timeout=30)
    assert reply.status_code == 200, reply.text
    get_url = alice.generate_presigned_url("get_object", Params={"Bucket": name, "Key": "pre"},
                                           ExpiresIn=300)
    reply = requests.get(get_url, timeout=30)
    assert reply.status_code == 200
    assert reply.content == data
    # SigV4 query signing (what `signature_version="s3v4"` and the other
    # SDKs produce), and boto3's default for presigning (signature v2).
    import botocore.config
    key_id, secret = server.credentials("alice")
    v4 = boto3_session().client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=key_id, aws_secret_access_key=secret,
        config=botocore.config.Config(signature_version="s3v4",
                                      s3={"addressing_style": "path"}))
    v4_url = v4.generate_presigned_url("get_object", Params={"Bucket": name, "Key": "pre"},
                                       ExpiresIn=300)
    assert "X-Amz-Signature=" in v4_url
    reply = requests.get(v4_url, timeout=30)
    assert reply.status_code == 200
    assert reply.content == data
    # A tampered URL, or one for another key, is refused.
    reply = requests.get(get_url.replace("/pre?", "/other?"), timeout=30)
    assert reply.status_code == 403
    assert b"SignatureDoesNotMatch" in reply.content
    # Bob's presigned URL for alice's object is his request: denied.
    bob = s3_client(server, "bob")
    bob_url = bob.generate_presigned_url("get_object", Params={"Bucket": name, "Key": "pre"},
                                         ExpiresIn=300)
    reply = requests.get(bob_url, timeout=30)
    assert reply.status_code == 403
    assert b"AccessDenied" in reply.content


def _hmac(key: bytes, text: str) -> bytes:
    import hmac
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def test_signed_chunks_streaming_payload(server, bucket):
    """`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, as the Java, Go and Rust SDKs
    send: every chunk signed, verified by the server."""
    import datetime

    import botocore.auth
    import botocore.credentials
    from botocore.awsrequest import AWSRequest

    alice, name = bucket
    key_id, secret = server.credentials("alice")
    data = os.urandom(150_000)
    chunk_size = 64 * 1024
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]

    def encoded_length(signature_len=64):
        total = 0
        for chunk in chunks:
            total += len(f"{len(chunk):x};chunk-signature=") + signature_len + 2 + len(chunk) + 2
        return total

    def put(key: str, corrupt: bool):
        url = f"{server.endpoint}/{name}/{key}"
        request = AWSRequest(method="PUT", url=url, data=b"", headers={
            "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "Content-Length": str(encoded_length()),
        })
        signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(key_id, secret), "s3",
                                         "us-east-1")
        signer.add_auth(request)
        amz_date = request.headers["X-Amz-Date"]
        seed = request.headers["Authorization"].rsplit("Signature=", 1)[1]
        day = amz_date[:8]
        scope = f"{day}/us-east-1/s3/aws4_request"
        signing_key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), day), "us-east-1"),
                                  "s3"), "aws4_request")
        previous = seed
        body = b""
        for index, chunk in enumerate(chunks):
            to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous,
                                 hashlib.sha256(b"").hexdigest(),
                                 hashlib.sha256(chunk).hexdigest()])
            signature = _hmac(signing_key, to_sign).hex()
            previous = signature
            payload = chunk
            if corrupt and index == 1:
                payload = bytes([chunk[0] ^ 1]) + chunk[1:]
            body += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + payload + b"\r\n"
        headers = dict(request.headers.items())
        return requests.put(url, data=body, headers=headers, timeout=30)

    reply = put("chunked", corrupt=False)
    assert reply.status_code == 200, reply.text
    assert alice.get_object(Bucket=name, Key="chunked")["Body"].read() == data
    reply = put("tampered", corrupt=True)
    assert reply.status_code in (400, 403), reply.text
    error = client_error(alice.head_object, Bucket=name, Key="tampered")
    assert http_status(error) == 404
    _ = datetime  # (the date comes from the signer)


def crc32c_b64(data: bytes) -> str:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


def test_crc32c_header_is_verified(server, bucket):
    """boto3 needs awscrt to compute CRC32C itself, so the header is built
    by hand here (a bit-by-bit CRC-32C)."""
    import botocore.auth
    import botocore.credentials
    from botocore.awsrequest import AWSRequest

    alice, name = bucket
    key_id, secret = server.credentials("alice")
    data = os.urandom(20_000)
    assert crc32c_b64(b"123456789") == base64.b64encode(
        (0xE3069283).to_bytes(4, "big")).decode()

    def put(key: str, checksum: str):
        url = f"{server.endpoint}/{name}/{key}"
        request = AWSRequest(method="PUT", url=url, data=data, headers={
            "x-amz-checksum-crc32c": checksum,
            "x-amz-content-sha256": hashlib.sha256(data).hexdigest(),
        })
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(key_id, secret), "s3",
                                "us-east-1").add_auth(request)
        return requests.put(url, data=data, headers=dict(request.headers.items()), timeout=30)

    reply = put("good", crc32c_b64(data))
    assert reply.status_code == 200, reply.text
    assert reply.headers.get("x-amz-checksum-crc32c") == crc32c_b64(data)
    reply = put("bad", crc32c_b64(data + b"x"))
    assert reply.status_code == 400
    assert b"BadDigest" in reply.content
    head = alice.head_object(Bucket=name, Key="good", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == crc32c_b64(data)


# -- bad input -----------------------------------------------------------------


def _signed(server, method: str, path: str, body: bytes, headers: dict, query: str = ""):
    import botocore.auth
    import botocore.credentials
    from botocore.awsrequest import AWSRequest

    key_id, secret = server.credentials("alice")
    url = f"{server.endpoint}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key_id, secret), "s3",
                            "us-east-1").add_auth(request)
    return url, dict(request.headers.items())


def test_malformed_xml_bodies(server, bucket):
    alice, name = bucket
    alice.put_object(Bucket=name, Key="k", Body=b"x")
    body = b"<Delete><Object><Key>k</Key></Object"
    url, headers = _signed(server, "POST", f"/{name}", body, {
        "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
        "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
    }, query="delete=")
    reply = requests.post(url, data=body, headers=headers, timeout=30)
    assert reply.status_code == 400, reply.text
    assert b"MalformedXML" in reply.content
    assert alice.get_object(Bucket=name, Key="k")["Body"].read() == b"x"


def test_oversized_put_is_entity_too_large(server, bucket):
    """A PutObject announcing more than 5 GiB is refused before its body is
    read, with S3's code."""
    import socket

    alice, name = bucket
    size = 5 * 1024 * 1024 * 1024 + 1
    url, headers = _signed(server, "PUT", f"/{name}/huge", b"", {
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        "Content-Length": str(size),
    })
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = f"PUT /{name}/huge HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode() + b"x" * 65536)
        reply = b""
        while b"</Error>" not in reply:
            piece = sock.recv(65536)
            if not piece:
                break
            reply += piece
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"EntityTooLarge" in reply
    error = client_error(alice.head_object, Bucket=name, Key="huge")
    assert http_status(error) == 404


def test_list_objects_v1(bucket):
    alice, name = bucket
    for key in ["a/1", "a/2", "b/1", "c"]:
        alice.put_object(Bucket=name, Key=key, Body=b"x")
    first = alice.list_objects(Bucket=name, MaxKeys=2)
    assert [o["Key"] for o in first["Contents"]] == ["a/1", "a/2"]
    assert first["IsTruncated"] is True
    rest = alice.list_objects(Bucket=name, Marker=first["NextMarker"])
    assert [o["Key"] for o in rest["Contents"]] == ["b/1", "c"]
    assert rest["IsTruncated"] is False
    grouped = alice.list_objects(Bucket=name, Delimiter="/")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["a/", "b/"]
    assert [o["Key"] for o in grouped["Contents"]] == ["c"]
    paginated = [o["Key"] for page in alice.get_paginator("list_objects").paginate(
        Bucket=name, PaginationConfig={"PageSize": 1}) for o in page.get("Contents", [])]
    assert paginated == ["a/1", "a/2", "b/1", "c"]
