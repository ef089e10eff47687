"""S3 objects and SIGKILL: an acknowledged object survives, an upload cut
short leaves no visible object and no file behind, an overwrite cut short
leaves the old object, and files no record names are collected."""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
from pathlib import Path

import pytest

from conftest import http_status
from test_s3_buckets import bucket_name, client_error, s3_client

# Collect orphaned object files quickly in these servers.
COLLECT = """
[buckets]
collect_interval_secs = 1
orphan_grace_secs = 1
"""


def bucket_files(server, bucket: str) -> list[Path]:
    folder = Path(server.data_dir) / "buckets" / bucket
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_file())


def slow_put(server, bucket: str, key: str, total: int, sent: threading.Event,
             stop: threading.Event) -> None:
    """An unsigned-payload PutObject whose body trickles in until `stop`."""
    import botocore.auth
    import botocore.credentials
    from botocore.awsrequest import AWSRequest

    key_id, secret = server.credentials("alice")
    url = f"{server.endpoint}/{bucket}/{key}"
    aws_request = AWSRequest(method="PUT", url=url, data=b"", headers={
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        "Content-Length": str(total),
    })
    # Plain SigV4 signs with the x-amz-content-sha256 header as given.
    signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(key_id, secret), "s3",
                                     "us-east-1")
    signer.add_auth(aws_request)
    headers = dict(aws_request.headers.items())
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest("PUT", f"/{bucket}/{key}", skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        chunk = os.urandom(256 * 1024)
        written = 0
        while written < total - len(chunk) and not stop.is_set():
            connection.send(chunk)
            written += len(chunk)
            if written >= 4 * len(chunk):
                sent.set()
            time.sleep(0.01)
    except OSError:
        pass
    finally:
        sent.set()
        connection.close()


def test_sigkill_during_put_keeps_old_object_and_leaves_nothing(make_server):
    server = make_server("kill-put", extra_config=COLLECT)
    alice = s3_client(server, "alice")
    name = bucket_name("kill")
    alice.create_bucket(Bucket=name)
    kept = os.urandom(3 * 1024 * 1024 + 17)
    alice.put_object(Bucket=name, Key="kept.bin", Body=kept)
    old = b"the old object"
    alice.put_object(Bucket=name, Key="overwritten.bin", Body=old)
    sent, stop = threading.Event(), threading.Event()
    threads = [
        threading.Thread(target=slow_put, args=(server, name, key, 64 * 1024 * 1024, sent, stop))
        for key in ("new.bin", "overwritten.bin")
    ]
    for thread in threads:
        thread.start()
    assert sent.wait(20), "the uploads started"
    time.sleep(0.3)
    server.kill9()
    stop.set()
    for thread in threads:
        thread.join(10)
    server.start()
    alice = s3_client(server, "alice")
    assert alice.get_object(Bucket=name, Key="kept.bin")["Body"].read() == kept
    assert alice.get_object(Bucket=name, Key="overwritten.bin")["Body"].read() == old
    error = client_error(alice.head_object, Bucket=name, Key="new.bin")
    assert http_status(error) == 404
    keys = [entry["Key"] for entry in alice.list_objects_v2(Bucket=name)["Contents"]]
    assert keys == ["kept.bin", "overwritten.bin"]
    # The interrupted writes' temporary files are gone after the restart:
    # only the two objects' files remain.
    files = bucket_files(server, name)
    assert len(files) == 2, files
    assert not any(path.name.startswith(".tmp") for path in files)


def test_orphaned_files_are_collected_and_live_ones_kept(make_server):
    server = make_server("orphans", extra_config=COLLECT)
    alice = s3_client(server, "alice")
    name = bucket_name("orph")
    alice.create_bucket(Bucket=name)
    data = os.urandom(100_000)
    alice.put_object(Bucket=name, Key="live.bin", Body=data)
    [live] = bucket_files(server, name)
    # A file renamed into place whose record was never committed (a crash
    # in between) looks like this: an object file name nothing refers to.
    orphan = live.parent / (hashlib.sha256(b"ghost").hexdigest() + ".deadbeef")
    orphan.write_bytes(live.read_bytes())
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    deadline = time.time() + 20
    while orphan.exists() and time.time() < deadline:
        time.sleep(0.5)
    assert not orphan.exists(), "the collector removed the orphan"
    assert live.exists(), "the live object's file is kept"
    assert alice.get_object(Bucket=name, Key="live.bin")["Body"].read() == data
    assert "object file collection" in server.log_text()


def test_sigkill_right_after_put_loses_nothing(make_server):
    server = make_server("kill-after")
    alice = s3_client(server, "alice")
    name = bucket_name("ack")
    alice.create_bucket(Bucket=name)
    bodies = {f"k{i}": os.urandom(50_000 + i) for i in range(20)}
    for key, body in bodies.items():
        alice.put_object(Bucket=name, Key=key, Body=body)
    server.kill9()
    server.start()
    alice = s3_client(server, "alice")
    for key, body in bodies.items():
        assert alice.get_object(Bucket=name, Key=key)["Body"].read() == body


def test_abandoned_uploads_are_aborted_and_their_parts_removed(make_server):
    server = make_server("abandoned", extra_config="""
[buckets]
collect_interval_secs = 1
orphan_grace_secs = 1
abandoned_upload_secs = 2
""")
    alice = s3_client(server, "alice")
    name = bucket_name("aband")
    alice.create_bucket(Bucket=name)
    upload = alice.create_multipart_upload(Bucket=name, Key="big.bin")["UploadId"]
    alice.upload_part(Bucket=name, Key="big.bin", UploadId=upload, PartNumber=1,
                      Body=os.urandom(5 * 1024 * 1024))
    alice.upload_part(Bucket=name, Key="big.bin", UploadId=upload, PartNumber=2,
                      Body=b"tail")
    alice.put_object(Bucket=name, Key="kept.bin", Body=b"kept")
    assert len(bucket_files(server, name)) == 3
    deadline = time.time() + 20
    while time.time() < deadline:
        uploads = alice.list_multipart_uploads(Bucket=name).get("Uploads", [])
        if not uploads and len(bucket_files(server, name)) == 1:
            break
        time.sleep(0.5)
    assert alice.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    assert len(bucket_files(server, name)) == 1, bucket_files(server, name)
    error = client_error(alice.list_parts, Bucket=name, Key="big.bin", UploadId=upload)
    assert http_status(error) == 404
    assert alice.get_object(Bucket=name, Key="kept.bin")["Body"].read() == b"kept"
    assert "aborted abandoned multipart uploads" in server.log_text()
