"""S3 multipart uploads on the real binary: boto3's low-level calls, its
managed transfers (`upload_file`/`download_file`), the AWS CLI's `aws s3 cp`
of a 100 MiB file, the S3 errors, another account, and a SIGKILL in the
middle of an upload."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import subprocess
import sys
import zlib

import boto3.s3.transfer
import pytest

from conftest import error_code, http_status
from test_s3_buckets import bucket_name, client_error, s3_client

MIB = 1024 * 1024


def multipart_etag(*parts: bytes) -> str:
    digests = b"".join(hashlib.md5(part).digest() for part in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(struct.pack(">I", zlib.crc32(data))).decode()


def empty_bucket(client, name):
    uploads = client.list_multipart_uploads(Bucket=name).get("Uploads", [])
    for upload in uploads:
        client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    for entry in client.list_objects_v2(Bucket=name).get("Contents", []):
        client.delete_object(Bucket=name, Key=entry["Key"])
    client.delete_bucket(Bucket=name)


@pytest.fixture
def bucket(server):
    alice = s3_client(server, "alice")
    name = bucket_name("mpu")
    alice.create_bucket(Bucket=name)
    yield alice, name
    empty_bucket(alice, name)


def upload_parts(client, name, key, bodies, **create):
    upload_id = client.create_multipart_upload(Bucket=name, Key=key, **create)["UploadId"]
    parts = []
    for number, body in enumerate(bodies, start=1):
        answer = client.upload_part(Bucket=name, Key=key, UploadId=upload_id, PartNumber=number,
                                    Body=body)
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    return upload_id, parts


def test_three_parts_roundtrip(bucket):
    alice, name = bucket
    bodies = [os.urandom(5 * MIB), os.urandom(5 * MIB + 7), b"the tail"]
    whole = b"".join(bodies)
    upload_id = alice.create_multipart_upload(
        Bucket=name, Key="disk.img", ContentType="application/x-raw",
        Metadata={"Origin": "test"})["UploadId"]
    etags = []
    for number, body in enumerate(bodies, start=1):
        answer = alice.upload_part(Bucket=name, Key="disk.img", UploadId=upload_id,
                                   PartNumber=number, Body=body)
        assert answer["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
        etags.append(answer["ETag"])
    # Nothing is visible before completion.
    assert error_code(client_error(alice.head_object, Bucket=name, Key="disk.img")) == "404"
    listed = alice.list_parts(Bucket=name, Key="disk.img", UploadId=upload_id)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    assert [p["Size"] for p in listed["Parts"]] == [len(b) for b in bodies]
    assert [p["ETag"] for p in listed["Parts"]] == etags
    assert listed["IsTruncated"] is False
    page = alice.list_parts(Bucket=name, Key="disk.img", UploadId=upload_id, MaxParts=2)
    assert page["IsTruncated"] is True and page["NextPartNumberMarker"] == 2
    rest = alice.list_parts(Bucket=name, Key="disk.img", UploadId=upload_id,
                            PartNumberMarker=2)
    assert [p["PartNumber"] for p in rest["Parts"]] == [3]

    # Quotes on the listed ETags are optional.
    parts = [{"PartNumber": 1, "ETag": etags[0]},
             {"PartNumber": 2, "ETag": etags[1].strip('"')},
             {"PartNumber": 3, "ETag": etags[2]}]
    done = alice.complete_multipart_upload(Bucket=name, Key="disk.img", UploadId=upload_id,
                                           MultipartUpload={"Parts": parts})
    assert done["ETag"] == multipart_etag(*bodies)
    assert done["Key"] == "disk.img" and done["Bucket"] == name
    assert done["Location"].endswith(f"/{name}/disk.img")

    head = alice.head_object(Bucket=name, Key="disk.img")
    assert head["ContentLength"] == len(whole)
    assert head["ETag"] == multipart_etag(*bodies)
    assert head["ContentType"] == "application/x-raw"
    assert head["Metadata"] == {"origin": "test"}
    got = alice.get_object(Bucket=name, Key="disk.img")
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(whole).digest()
    # Ranges across part boundaries.
    for start, end in [(5 * MIB - 10, 5 * MIB + 9), (0, 10 * MIB + 7 + 3),
                       (10 * MIB + 5, len(whole) - 1), (5 * MIB - 1, 10 * MIB + 8)]:
        ranged = alice.get_object(Bucket=name, Key="disk.img", Range=f"bytes={start}-{end}")
        assert ranged["Body"].read() == whole[start:end + 1], (start, end)
    # The upload is gone.
    error = client_error(alice.list_parts, Bucket=name, Key="disk.img", UploadId=upload_id)
    assert error_code(error) == "NoSuchUpload"
    assert http_status(error) == 404


def test_replacing_a_part_and_leaving_one_out(bucket):
    alice, name = bucket
    upload_id, parts = upload_parts(alice, name, "k", [b"a" * (5 * MIB), b"old", b"unused"])
    again = alice.upload_part(Bucket=name, Key="k", UploadId=upload_id, PartNumber=2, Body=b"new")
    listed = alice.list_parts(Bucket=name, Key="k", UploadId=upload_id)["Parts"]
    assert [p["ETag"] for p in listed][1] == again["ETag"]
    stale = client_error(alice.complete_multipart_upload, Bucket=name, Key="k",
                         UploadId=upload_id, MultipartUpload={"Parts": parts[:2]})
    assert error_code(stale) == "InvalidPart"
    done = alice.complete_multipart_upload(
        Bucket=name, Key="k", UploadId=upload_id,
        MultipartUpload={"Parts": [parts[0], {"PartNumber": 2, "ETag": again["ETag"]}]})
    assert done["ETag"] == multipart_etag(b"a" * (5 * MIB), b"new")
    assert alice.get_object(Bucket=name, Key="k")["Body"].read() == b"a" * (5 * MIB) + b"new"


def test_errors(bucket):
    alice, name = bucket
    upload_id, parts = upload_parts(alice, name, "e", [b"x" * MIB, b"y" * MIB])

    error = client_error(alice.complete_multipart_upload, Bucket=name, Key="e",
                         UploadId=upload_id, MultipartUpload={"Parts": parts})
    assert (error_code(error), http_status(error)) == ("EntityTooSmall", 400)

    error = client_error(alice.complete_multipart_upload, Bucket=name, Key="e",
                         UploadId=upload_id, MultipartUpload={"Parts": parts[::-1]})
    assert (error_code(error), http_status(error)) == ("InvalidPartOrder", 400)

    wrong = [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]
    error = client_error(alice.complete_multipart_upload, Bucket=name, Key="e",
                         UploadId=upload_id, MultipartUpload={"Parts": wrong})
    assert (error_code(error), http_status(error)) == ("InvalidPart", 400)

    missing = [{"PartNumber": 3, "ETag": parts[0]["ETag"]}]
    error = client_error(alice.complete_multipart_upload, Bucket=name, Key="e",
                         UploadId=upload_id, MultipartUpload={"Parts": missing})
    assert error_code(error) == "InvalidPart"

    error = client_error(alice.complete_multipart_upload, Bucket=name, Key="e",
                         UploadId=upload_id, MultipartUpload={"Parts": []})
    assert (error_code(error), http_status(error)) == ("MalformedXML", 400)

    # Errors found before the body is read are sent with empty bodies here:
    # with a body left unread the server closes the connection, and the
    # client then sometimes loses the error document (a reset), which is
    # the HTTP layer's business, not multipart's.
    for number in (0, 10001):
        error = client_error(alice.upload_part, Bucket=name, Key="e", UploadId=upload_id,
                             PartNumber=number, Body=b"")
        assert (error_code(error), http_status(error)) == ("InvalidArgument", 400), number

    # The wrong key for the upload, an unknown upload.
    error = client_error(alice.upload_part, Bucket=name, Key="other", UploadId=upload_id,
                         PartNumber=1, Body=b"")
    assert (error_code(error), http_status(error)) == ("NoSuchUpload", 404)

    # One part alone may be small.
    done = alice.complete_multipart_upload(Bucket=name, Key="e", UploadId=upload_id,
                                           MultipartUpload={"Parts": parts[:1]})
    assert done["ETag"] == multipart_etag(b"x" * MIB)
    assert alice.head_object(Bucket=name, Key="e")["ContentLength"] == MIB


def test_abort(bucket):
    alice, name = bucket
    upload_id, parts = upload_parts(alice, name, "gone", [b"1" * 100])
    alice.abort_multipart_upload(Bucket=name, Key="gone", UploadId=upload_id)
    for call, kwargs in [
        (alice.list_parts, {}),
        (alice.abort_multipart_upload, {}),
        (alice.upload_part, {"PartNumber": 1, "Body": b""}),
        (alice.complete_multipart_upload, {"MultipartUpload": {"Parts": parts}}),
    ]:
        error = client_error(call, Bucket=name, Key="gone", UploadId=upload_id, **kwargs)
        assert (error_code(error), http_status(error)) == ("NoSuchUpload", 404), call
    assert error_code(client_error(alice.head_object, Bucket=name, Key="gone")) == "404"
    assert alice.list_multipart_uploads(Bucket=name).get("Uploads", []) == []


def test_list_multipart_uploads_pages(bucket):
    alice, name = bucket
    made = []
    for key in ["a", "a", "b/1", "b/2", "c"]:
        made.append((key, alice.create_multipart_upload(Bucket=name, Key=key)["UploadId"]))
    listed = alice.list_multipart_uploads(Bucket=name)
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == sorted(made)
    assert listed["Uploads"][0]["Initiator"]["ID"] == "111111111111"
    seen, kwargs = [], {}
    while True:
        page = alice.list_multipart_uploads(Bucket=name, MaxUploads=2, **kwargs)
        assert len(page.get("Uploads", [])) <= 2
        seen += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        if not page["IsTruncated"]:
            break
        kwargs = {"KeyMarker": page["NextKeyMarker"],
                  "UploadIdMarker": page.get("NextUploadIdMarker", "")}
    assert seen == sorted(made)
    rolled = alice.list_multipart_uploads(Bucket=name, Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["b/"]
    assert [u["Key"] for u in rolled["Uploads"]] == ["a", "a", "c"]
    under = alice.list_multipart_uploads(Bucket=name, Prefix="b/")
    assert [u["Key"] for u in under["Uploads"]] == ["b/1", "b/2"]
    # A bucket with uploads in progress is not deleted.
    error = client_error(alice.delete_bucket, Bucket=name)
    assert error_code(error) == "BucketNotEmpty"


def test_upload_part_copy_with_range(bucket):
    alice, name = bucket
    source = os.urandom(6 * MIB)
    alice.put_object(Bucket=name, Key="src", Body=source)
    # A multipart source too, so a copy spans its part files.
    mp_bodies = [os.urandom(5 * MIB), os.urandom(MIB)]
    mp_id, mp_parts = upload_parts(alice, name, "mpsrc", mp_bodies)
    alice.complete_multipart_upload(Bucket=name, Key="mpsrc", UploadId=mp_id,
                                    MultipartUpload={"Parts": mp_parts})
    mp_source = b"".join(mp_bodies)

    upload_id = alice.create_multipart_upload(Bucket=name, Key="copy")["UploadId"]
    first = alice.upload_part_copy(Bucket=name, Key="copy", UploadId=upload_id, PartNumber=1,
                                   CopySource={"Bucket": name, "Key": "src"},
                                   CopySourceRange=f"bytes=0-{5 * MIB - 1}")
    assert first["CopyPartResult"]["ETag"] == f'"{hashlib.md5(source[:5 * MIB]).hexdigest()}"'
    assert "LastModified" in first["CopyPartResult"]
    span = (5 * MIB - 100, 5 * MIB + 99)
    second = alice.upload_part_copy(Bucket=name, Key="copy", UploadId=upload_id, PartNumber=2,
                                    CopySource=f"{name}/mpsrc",
                                    CopySourceRange=f"bytes={span[0]}-{span[1]}")
    expected_tail = mp_source[span[0]:span[1] + 1]
    assert second["CopyPartResult"]["ETag"] == f'"{hashlib.md5(expected_tail).hexdigest()}"'
    error = client_error(alice.upload_part_copy, Bucket=name, Key="copy", UploadId=upload_id,
                         PartNumber=3, CopySource={"Bucket": name, "Key": "src"},
                         CopySourceRange=f"bytes=0-{6 * MIB}")
    assert error_code(error) == "InvalidRange"
    error = client_error(alice.upload_part_copy, Bucket=name, Key="copy", UploadId=upload_id,
                         PartNumber=3, CopySource={"Bucket": name, "Key": "src"},
                         CopySourceRange="bytes=9-2")
    assert error_code(error) == "InvalidArgument"
    error = client_error(alice.upload_part_copy, Bucket=name, Key="copy", UploadId=upload_id,
                         PartNumber=3, CopySource={"Bucket": name, "Key": "nothing"})
    assert error_code(error) == "NoSuchKey"
    done = alice.complete_multipart_upload(
        Bucket=name, Key="copy", UploadId=upload_id,
        MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
            {"PartNumber": 2, "ETag": second["CopyPartResult"]["ETag"]}]})
    assert done["ETag"] == multipart_etag(source[:5 * MIB], expected_tail)
    body = alice.get_object(Bucket=name, Key="copy")["Body"].read()
    assert body == source[:5 * MIB] + expected_tail


def test_checksums_composite(bucket):
    alice, name = bucket
    bodies = [os.urandom(5 * MIB), b"end of it"]
    upload_id = alice.create_multipart_upload(Bucket=name, Key="crc",
                                              ChecksumAlgorithm="CRC32")["UploadId"]
    parts = []
    for number, body in enumerate(bodies, start=1):
        answer = alice.upload_part(Bucket=name, Key="crc", UploadId=upload_id,
                                   PartNumber=number, Body=body, ChecksumAlgorithm="CRC32")
        assert answer["ChecksumCRC32"] == crc32_b64(body)
        parts.append({"PartNumber": number, "ETag": answer["ETag"],
                      "ChecksumCRC32": answer["ChecksumCRC32"]})
    listed = alice.list_parts(Bucket=name, Key="crc", UploadId=upload_id)
    assert [p["ChecksumCRC32"] for p in listed["Parts"]] == [crc32_b64(b) for b in bodies]
    bad = [dict(parts[0]), parts[1]]
    bad[0]["ChecksumCRC32"] = crc32_b64(b"something else")
    error = client_error(alice.complete_multipart_upload, Bucket=name, Key="crc",
                         UploadId=upload_id, MultipartUpload={"Parts": bad})
    assert error_code(error) == "InvalidPart"
    done = alice.complete_multipart_upload(Bucket=name, Key="crc", UploadId=upload_id,
                                           MultipartUpload={"Parts": parts})
    raw = b"".join(struct.pack(">I", zlib.crc32(body)) for body in bodies)
    assert done["ChecksumCRC32"] == f"{crc32_b64(raw)}-2"
    # FULL_OBJECT is refused rather than faked.
    error = client_error(alice.create_multipart_upload, Bucket=name, Key="full",
                         ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    assert error_code(error) == "InvalidRequest"


def test_boto3_managed_transfer(bucket, tmp_path):
    alice, name = bucket
    data = os.urandom(23 * MIB + 5)
    source = tmp_path / "up.bin"
    source.write_bytes(data)
    config = boto3.s3.transfer.TransferConfig(multipart_threshold=8 * MIB,
                                              multipart_chunksize=8 * MIB)
    alice.upload_file(str(source), name, "managed.bin", Config=config)
    head = alice.head_object(Bucket=name, Key="managed.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-3"')
    down = tmp_path / "down.bin"
    alice.download_file(name, "managed.bin", str(down), Config=config)
    assert hashlib.sha256(down.read_bytes()).digest() == hashlib.sha256(data).digest()


def run_cli(server, *args, timeout=300):
    key, secret = server.credentials("alice")
    missing = str(server.workdir / "no-such-aws-file")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret,
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=missing,
               AWS_SHARED_CREDENTIALS_FILE=missing, AWS_MAX_ATTEMPTS="1", AWS_PAGER="")
    result = subprocess.run([sys.executable, "-m", "awscli", *args, "--endpoint-url",
                             server.endpoint], env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def test_cli_cp_100_mib(server, bucket, tmp_path):
    alice, name = bucket
    source = tmp_path / "big.bin"
    with open(source, "wb") as handle:
        for _ in range(100):
            handle.write(os.urandom(MIB))
    run_cli(server, "s3", "cp", str(source), f"s3://{name}/big.bin")
    head = alice.head_object(Bucket=name, Key="big.bin")
    assert head["ContentLength"] == 100 * MIB
    assert head["ETag"].endswith('-13"')  # 8 MiB parts
    down = tmp_path / "down.bin"
    run_cli(server, "s3", "cp", f"s3://{name}/big.bin", str(down))
    assert sha256_file(down) == sha256_file(source)


def test_another_account_is_denied(server, bucket):
    alice, name = bucket
    bob = s3_client(server, "bob")
    upload_id, parts = upload_parts(alice, name, "mine", [b"data"])
    for call, kwargs in [
        (bob.create_multipart_upload, {"Key": "mine"}),
        (bob.upload_part, {"Key": "mine", "UploadId": upload_id, "PartNumber": 1,
                           "Body": b""}),
        (bob.list_parts, {"Key": "mine", "UploadId": upload_id}),
        (bob.complete_multipart_upload, {"Key": "mine", "UploadId": upload_id,
                                         "MultipartUpload": {"Parts": parts}}),
        (bob.abort_multipart_upload, {"Key": "mine", "UploadId": upload_id}),
        (bob.list_multipart_uploads, {}),
    ]:
        error = client_error(call, Bucket=name, **kwargs)
        assert (error_code(error), http_status(error)) == ("AccessDenied", 403), call
    # Bob cannot copy alice's object into his own upload either.
    bob_bucket = bucket_name("bob")
    bob.create_bucket(Bucket=bob_bucket)
    try:
        alice.put_object(Bucket=name, Key="secret", Body=b"s")
        bob_upload = bob.create_multipart_upload(Bucket=bob_bucket, Key="k")["UploadId"]
        error = client_error(bob.upload_part_copy, Bucket=bob_bucket, Key="k",
                             UploadId=bob_upload, PartNumber=1,
                             CopySource={"Bucket": name, "Key": "secret"})
        assert error_code(error) == "AccessDenied"
    finally:
        empty_bucket(bob, bob_bucket)
    listed = alice.list_parts(Bucket=name, Key="mine", UploadId=upload_id)["Parts"]
    assert len(listed) == 1 and listed[0]["Size"] == 4


def test_sigkill_mid_upload(make_server):
    hangar = make_server("kill")
    alice = s3_client(hangar, "alice")
    name = bucket_name("kill")
    alice.create_bucket(Bucket=name)
    # An object completed before the kill.
    early = [os.urandom(5 * MIB), b"early tail"]
    early_id, early_parts = upload_parts(alice, name, "early", early)
    alice.complete_multipart_upload(Bucket=name, Key="early", UploadId=early_id,
                                    MultipartUpload={"Parts": early_parts})
    # An upload in progress.
    bodies = [os.urandom(5 * MIB), os.urandom(5 * MIB)]
    upload_id, parts = upload_parts(alice, name, "late", bodies)
    hangar.kill9()
    hangar.start()
    alice = s3_client(hangar, "alice")
    uploads = alice.list_multipart_uploads(Bucket=name)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("late", upload_id)]
    listed = alice.list_parts(Bucket=name, Key="late", UploadId=upload_id)["Parts"]
    assert [p["ETag"] for p in listed] == [p["ETag"] for p in parts]
    assert error_code(client_error(alice.head_object, Bucket=name, Key="late")) == "404"
    assert alice.get_object(Bucket=name, Key="early")["Body"].read() == b"".join(early)
    # The client carries on.
    third = alice.upload_part(Bucket=name, Key="late", UploadId=upload_id, PartNumber=3,
                              Body=b"after the crash")
    parts.append({"PartNumber": 3, "ETag": third["ETag"]})
    bodies.append(b"after the crash")
    done = alice.complete_multipart_upload(Bucket=name, Key="late", UploadId=upload_id,
                                           MultipartUpload={"Parts": parts})
    assert done["ETag"] == multipart_etag(*bodies)
    assert alice.get_object(Bucket=name, Key="late")["Body"].read() == b"".join(bodies)
