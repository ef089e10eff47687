"""Encryption at rest of S3 object files: nothing under <data_dir>/buckets
shows the plaintext, the master key file is private, survives restarts, can
live where `master_key_file` says, and unsafe or lost key files stop the
server at start-up with one clear line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from conftest import config_toml, free_port
from test_lifecycle import assert_one_line_error, run_binary
from test_s3_buckets import bucket_name, s3_client

PATTERN = b"HANGAR-ENCRYPTION-AT-REST-PATTERN-0123456789abcdef-"


def pattern_body(size: int) -> bytes:
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


def files_under(root: Path):
    return [path for path in root.rglob("*") if path.is_file()]


def assert_no_plaintext(root: Path, body: bytes):
    files = files_under(root)
    assert files, f"no object file under {root}"
    # Any 32-byte window of the repeated pattern would show in a plaintext file.
    needles = [(PATTERN * 2)[start:start + 32] for start in range(len(PATTERN))]
    for path in files:
        raw = path.read_bytes()
        assert raw.startswith(b"HGOB\x01\x01"), path
        for needle in needles:
            assert needle not in raw, f"plaintext found in {path}"
        assert body[:64] not in raw


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_object_files_are_encrypted_and_survive_restart(make_server):
    server = make_server("enc")
    s3 = s3_client(server, "alice")
    name = bucket_name("enc")
    s3.create_bucket(Bucket=name)
    body = pattern_body(1024 * 1024 + 12345)
    s3.put_object(Bucket=name, Key="pattern.bin", Body=body)
    s3.put_object(Bucket=name, Key="small.txt", Body=PATTERN)
    s3.put_object(Bucket=name, Key="empty", Body=b"")

    assert_no_plaintext(server.data_dir / "buckets", body)
    got = s3.get_object(Bucket=name, Key="pattern.bin")
    assert got["ContentLength"] == len(body)
    assert got["Body"].read() == body
    ranged = s3.get_object(Bucket=name, Key="pattern.bin", Range="bytes=65530-131080")
    assert ranged["Body"].read() == body[65530:131081]
    assert s3.get_object(Bucket=name, Key="small.txt")["Body"].read() == PATTERN
    assert s3.get_object(Bucket=name, Key="empty")["Body"].read() == b""

    key_file = server.data_dir / "keys" / "master.key"
    assert mode_of(key_file) == 0o600
    assert mode_of(key_file.parent) == 0o700
    key_text = key_file.read_text()
    assert len(key_text.strip()) == 64
    assert key_text.strip() not in server.log_text(), "the key is never logged"
    assert str(key_file) in server.log_text()

    server.restart()
    s3 = s3_client(server, "alice")
    assert s3.get_object(Bucket=name, Key="pattern.bin")["Body"].read() == body
    assert s3.get_object(Bucket=name, Key="small.txt")["Body"].read() == PATTERN
    assert key_file.read_text() == key_text, "the key file is reused, not replaced"


def test_master_key_file_from_config(make_server, tmp_path):
    key_file = tmp_path / "secrets" / "hangar.key"
    server = make_server("cfg", extra_config=f'master_key_file = "{key_file}"')
    assert key_file.exists()
    assert mode_of(key_file) == 0o600
    assert not (server.data_dir / "keys").exists()
    s3 = s3_client(server, "alice")
    name = bucket_name("enc")
    s3.create_bucket(Bucket=name)
    body = pattern_body(200_000)
    s3.put_object(Bucket=name, Key="k", Body=body)
    assert_no_plaintext(server.data_dir / "buckets", body)
    assert str(key_file) in server.log_text()
    server.restart()
    assert s3_client(server, "alice").get_object(Bucket=name, Key="k")["Body"].read() == body


def test_unsafe_or_malformed_key_file_refused(tmp_path):
    key_file = tmp_path / "master.key"
    key_file.write_text("ab" * 32 + "\n")
    os.chmod(key_file, 0o644)
    text = config_toml(free_port(), tmp_path / "data", extra=f'master_key_file = "{key_file}"')
    assert_one_line_error(run_binary(text, tmp_path / "run"), str(key_file), "chmod 600")
    os.chmod(key_file, 0o600)
    key_file.write_text("not a key\n")
    assert_one_line_error(run_binary(text, tmp_path / "run"), str(key_file), "malformed")


def test_lost_key_with_existing_objects_refused(make_server):
    server = make_server("lost")
    s3 = s3_client(server, "alice")
    name = bucket_name("enc")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"data")
    server.stop()
    key_file = server.data_dir / "keys" / "master.key"
    key_file.unlink()
    text = config_toml(free_port(), server.data_dir)
    assert_one_line_error(run_binary(text, server.workdir / "again"), str(key_file), "missing")
    assert not key_file.exists(), "no new key is made over existing object files"
