"""`[storage]`: Hangar on PostgreSQL metadata and an S3 block store (moto's
server, which no one here wrote), and start-up refusing bad engine URLs.

PostgreSQL is the machine's server on 127.0.0.1:5432 (trust authentication
for `postgres`); each test creates and drops its own database. Tests skip
with a printed reason when moto_server or PostgreSQL is not available.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import urllib.request
import uuid

import boto3
import botocore.config
import pytest

from conftest import HANGAR_BIN, config_toml, free_port
from datahelpers import (assert_same_disk, describe_image, make_disk, read_disk, register,
                         root_snapshot, wait_image, write_disk)

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_PASSWORD = "pg-password-never-logged"
MOTO_KEY = "AKIDMOTOEXAMPLE00001"
MOTO_SECRET = "moto-secret-never-logged-0001"


def psql(sql: str, database: str = "postgres") -> str:
    """Runs one statement as `postgres`; returns its unaligned output."""
    result = subprocess.run(
        ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", database,
         "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"psql {sql!r} failed: {result.stderr.strip()}")
    return result.stdout.strip()


@pytest.fixture
def pg_database():
    """A fresh, empty database; dropped afterwards."""
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed, so no PostgreSQL database can be created")
    try:
        psql("SELECT 1")
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"PostgreSQL cannot be reached on {PG_HOST}:{PG_PORT} as {PG_USER}: {error}")
    name = "hangar_test_" + uuid.uuid4().hex[:12]
    psql(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        assert psql(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'") == "0"


@pytest.fixture
def moto(tmp_path):
    """moto's S3 server on a free port; yields its endpoint."""
    binary = shutil.which("moto_server")
    if binary is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")
    process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(endpoint + "/moto-api/", timeout=1):
                    break
            except Exception:  # noqa: BLE001 - keep polling until it listens
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start: {(tmp_path / 'moto.log').read_text()}")
                time.sleep(0.2)
        yield endpoint
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def moto_s3(endpoint: str):
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=MOTO_KEY, aws_secret_access_key=MOTO_SECRET,
        config=botocore.config.Config(s3={"addressing_style": "path"}))


def listed_keys(s3, bucket: str, prefix: str) -> list:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def test_postgres_metadata_and_s3_blocks_survive_a_restart(make_server, moto, pg_database,
                                                           tmp_path):
    bucket = "hangar-blocks-" + uuid.uuid4().hex[:8]
    # An unsigned PUT creates a bucket on moto.
    request = urllib.request.Request(f"{moto}/{bucket}", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200
    secret_file = tmp_path / "s3-secret"
    secret_file.write_text(MOTO_SECRET + "\n")
    # Trust authentication ignores the password; it is here to check that
    # it never reaches the log.
    url = f"postgresql://{PG_USER}:{PG_PASSWORD}@{PG_HOST}:{PG_PORT}/{pg_database}"
    hangar = make_server(extra_config=(
        "[storage]\n"
        f'metadata = "{url}"\n'
        f'blocks = "s3://{bucket}/team/hangar"\n'
        "[storage.s3]\n"
        f'endpoint = "{moto}"\n'
        'region = "us-east-1"\n'
        f'access_key_id = "{MOTO_KEY}"\n'
        f'secret_access_key_file = "{secret_file}"\n'))
    log = hangar.log_text()
    ready = [line for line in log.splitlines() if "hangar is ready" in line]
    assert ready, log
    assert pg_database in ready[-1] and "postgres" in ready[-1], ready[-1]
    assert f"s3://{bucket}/team/hangar" in ready[-1], ready[-1]
    assert MOTO_SECRET not in log
    assert PG_PASSWORD not in log

    ec2 = hangar.client("alice", service="ec2")
    ebs = hangar.client("alice", service="ebs")
    disk = make_disk(seed=71, blocks=16)
    snapshot_id = write_disk(ebs, disk)
    image_id = register(ec2, snapshot_id, name="storage-backends-" + uuid.uuid4().hex[:8])
    image = wait_image(ec2, image_id)
    assert root_snapshot(image) == snapshot_id
    back, _ = read_disk(ebs, snapshot_id, len(disk))
    assert_same_disk(back, disk, "snapshot read from the S3 block store")

    # The bytes are in moto's bucket under the prefix, nowhere else, and
    # not in the data directory.
    s3 = moto_s3(moto)
    keys = listed_keys(s3, bucket, "")
    assert keys, "no object in the S3 bucket"
    assert all(key.startswith("team/hangar/") for key in keys), keys[:5]
    assert not (hangar.data_dir / "blocks").exists() or not any(
        path.is_file() for path in (hangar.data_dir / "blocks").rglob("*"))
    assert not (hangar.data_dir / "meta.sqlite").exists()
    # The records are in PostgreSQL.
    assert int(psql("SELECT count(*) FROM images", pg_database)) >= 1
    assert image_id in psql("SELECT string_agg(images::text, ',') FROM images", pg_database)

    hangar.restart()
    ec2 = hangar.client("alice", service="ec2")
    ebs = hangar.client("alice", service="ebs")
    again = describe_image(ec2, image_id)
    assert again["State"] == "available"
    assert root_snapshot(again) == snapshot_id
    back, _ = read_disk(ebs, snapshot_id, len(disk))
    assert_same_disk(back, disk, "snapshot read after a restart")
    assert MOTO_SECRET not in hangar.log_text()
    assert PG_PASSWORD not in hangar.log_text()


@pytest.mark.parametrize("storage, key", [
    ('metadata = "mysql://db/hangar"', "storage.metadata"),
    ('metadata = "postgres://"', "storage.metadata"),
    ('blocks = "file:///var/blocks"', "storage.blocks"),
    ('blocks = "s3://Not_A_Bucket/x"', "storage.blocks"),
    ('blocks = "s3://bucket-one/x"\n[storage.s3]\nendpoint = "ftp://host"', "storage.s3.endpoint"),
])
def test_bad_storage_values_refuse_start_up(tmp_path, storage, key):
    config = tmp_path / "hangar.toml"
    config.write_text(config_toml(free_port(), tmp_path / "data",
                                  extra=f"[storage]\n{storage}\n"))
    result = subprocess.run([str(HANGAR_BIN), "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    assert result.returncode != 0, result
    output = result.stderr + result.stdout
    assert key in output, output
    assert "hangar is ready" not in output, output
