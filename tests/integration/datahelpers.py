"""Helpers for the data-path tests (test_data.py): a self-contained Hangar
server that can be SIGKILLed and restarted on the same data directory (and
with another `[blocks]` config), disk images built from 512 KiB blocks, and
EBS direct API write/read helpers.

Self-contained on purpose: it does not import conftest.py, which another
engineer owns and may change.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import boto3
import botocore.config
import botocore.exceptions
import pytest

REPO = Path(__file__).resolve().parents[2]
HANGAR_BIN = Path(os.environ.get("HANGAR_BIN") or REPO / "target" / "debug" / "hangar")

BLOCK = 512 * 1024
BLOCKS_PER_GIB = 2048
ZERO = bytes(BLOCK)
REGIONS = ["us-east-1", "us-west-2", "eu-west-1"]

ALICE = {"id": "111111111111", "key": "AKIAEXAMPLEALICE0001",
         "secret": "alice-secret-key-0001-XXXXXXXXXXXX"}
BOB = {"id": "222222222222", "key": "AKIAEXAMPLEBOB000002",
       "secret": "bob-secret-key-0002-XXXXXXXXXXXXXX"}
ACCOUNTS = {"alice": ALICE, "bob": BOB}

STARTUP_TIMEOUT = 15.0

_SESSION: List[boto3.session.Session] = []


def _session() -> boto3.session.Session:
    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    return _SESSION[0]


def unique(prefix: str = "data") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def random_snapshot_id() -> str:
    return "snap-" + uuid.uuid4().hex[:17]


def code_of(error: botocore.exceptions.ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def status_of(error_or_response) -> int:
    response = getattr(error_or_response, "response", error_or_response)
    return response["ResponseMetadata"]["HTTPStatusCode"]


def expect_error(call, *args, code, status: Optional[int] = None, **kwargs):
    """Runs call(*args, **kwargs); it must fail with `code` (a string or a set
    of acceptable codes) and, if given, HTTP `status`. Returns the error."""
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(*args, **kwargs)
    error = info.value
    codes = {code} if isinstance(code, str) else set(code)
    assert code_of(error) in codes, (
        f"expected {sorted(codes)}, got {code_of(error)} "
        f"({status_of(error)}): {error.response.get('Error')}")
    if status is not None:
        assert status_of(error) == status, (
            f"{code_of(error)}: expected HTTP {status}, got {status_of(error)}")
    return error


# --------------------------------------------------------------------------
# the server


def config_text(port: int, data_dir: Path, *, gc_interval: int, gc_grace: int,
                transition_ms: int) -> str:
    regions = ", ".join(f'"{region}"' for region in REGIONS)
    text = (
        f'listen = "127.0.0.1:{port}"\n'
        f'data_dir = "{data_dir}"\n'
        f"regions = [{regions}]\n"
        "[instances]\n"
        f"transition_ms = {transition_ms}\n"
        "[blocks]\n"
        f"gc_interval_secs = {gc_interval}\n"
        f"gc_grace_secs = {gc_grace}\n"
    )
    for account in ACCOUNTS.values():
        text += (
            "[[accounts]]\n"
            f'id = "{account["id"]}"\n'
            f'access_key_id = "{account["key"]}"\n'
            f'secret_access_key = "{account["secret"]}"\n'
        )
    return text


class DataServer:
    """One `hangar serve` process on a temp data dir; restartable."""

    def __init__(self, workdir: Path, *, gc_interval: int = 600, gc_grace: int = 3600,
                 transition_ms: int = 300):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.config_path = self.workdir / "hangar.toml"
        self.log_path = self.workdir / "hangar.log"
        self.gc_interval = gc_interval
        self.gc_grace = gc_grace
        self.transition_ms = transition_ms
        self.port = 0
        self.process: Optional[subprocess.Popen] = None
        self.starts = 0
        self._clients: Dict[tuple, object] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def blocks_dir(self) -> Path:
        return self.data_dir / "blocks"

    def start(self) -> "DataServer":
        if not HANGAR_BIN.exists():
            pytest.fail(f"hangar binary not found at {HANGAR_BIN}: run `cargo build -p hangar` "
                        "or set HANGAR_BIN", pytrace=False)
        assert self.process is None, "already running"
        if not self.port:
            self.port = free_port()
        self.config_path.write_text(config_text(
            self.port, self.data_dir, gc_interval=self.gc_interval, gc_grace=self.gc_grace,
            transition_ms=self.transition_ms))
        env = {k: v for k, v in os.environ.items() if k not in ("HANGAR_CONFIG", "HANGAR_LOG")}
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start #{self.starts} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [str(HANGAR_BIN), "serve", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        self._clients.clear()
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.endpoint + "/_hangar/health", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except Exception as error:  # noqa: BLE001 - keep polling
                last = error
            time.sleep(0.05)
        code = self.process.poll()
        self.stop()
        pytest.fail(f"hangar did not become healthy (exit {code}, last error {last!r}); log:\n"
                    f"{self.log_tail()}", pytrace=False)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def health(self) -> int:
        try:
            with urllib.request.urlopen(self.endpoint + "/_hangar/health", timeout=2) as resp:
                return resp.status
        except Exception:  # noqa: BLE001
            return 0

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def kill9(self) -> None:
        """SIGKILL, as the brief asks: no chance to flush or clean up."""
        assert self.alive(), "server is not running"
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def restart(self, **config) -> "DataServer":
        """Stops (if running) and starts again on the same data dir and port,
        optionally with other gc_interval / gc_grace / transition_ms."""
        self.stop()
        for key, value in config.items():
            assert hasattr(self, key), key
            setattr(self, key, value)
        return self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    # -- clients -------------------------------------------------------------

    def client(self, service: str = "ec2", account: str = "alice", region: str = "us-east-1",
               validate: bool = True):
        key = (service, account, region, validate)
        cached = self._clients.get(key)
        if cached is not None:
            return cached
        creds = ACCOUNTS[account]
        client = _session().client(
            service, endpoint_url=self.endpoint, region_name=region,
            aws_access_key_id=creds["key"], aws_secret_access_key=creds["secret"],
            config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=60,
                                          connect_timeout=5, parameter_validation=validate,
                                          max_pool_connections=32))
        self._clients[key] = client
        return client

    def ec2(self, account: str = "alice", region: str = "us-east-1", validate: bool = True):
        return self.client("ec2", account, region, validate)

    def ebs(self, account: str = "alice", region: str = "us-east-1", validate: bool = True):
        return self.client("ebs", account, region, validate)

    def aws(self, *args: str, account: str = "alice", region: str = "us-east-1",
            timeout: float = 60.0, parse_json: bool = True):
        """Runs the AWS CLI against the server; returns (rc, parsed stdout or stderr)."""
        creds = ACCOUNTS[account]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        missing = str(self.workdir / "no-such-aws-file")
        env.update(AWS_ACCESS_KEY_ID=creds["key"], AWS_SECRET_ACCESS_KEY=creds["secret"],
                   AWS_DEFAULT_REGION=region, AWS_CONFIG_FILE=missing,
                   AWS_SHARED_CREDENTIALS_FILE=missing, AWS_MAX_ATTEMPTS="1",
                   AWS_RETRY_MODE="standard", AWS_PAGER="")
        command = [sys.executable, "-m", "awscli", *args, "--endpoint-url", self.endpoint,
                   "--region", region, "--output", "json"]
        result = subprocess.run(command, env=env, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            return result.returncode, result.stderr
        out = result.stdout.strip()
        if not parse_json:
            return 0, out
        return 0, (json.loads(out) if out else None)

    # -- the block store on disk ------------------------------------------------

    def block_files(self) -> List[Path]:
        """Every stored block file (recursively), ignoring `.tmp-*` leftovers."""
        if not self.blocks_dir.exists():
            return []
        return sorted(path for path in self.blocks_dir.rglob("*")
                      if path.is_file() and not path.name.startswith(".tmp-"))

    def unfinished_tasks(self) -> List[Tuple[str, str]]:
        """(task id, state) of the queued or running tasks, read straight from
        meta.sqlite (read-only): only for diagnostics while the server is down."""
        assert not self.alive(), "read the database only while the server is down"
        path = self.data_dir / "meta.sqlite"
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                return con.execute(
                    "SELECT id, state FROM records WHERE kind = 'task' "
                    "AND state IN ('queued', 'running') ORDER BY created_ms").fetchall()
            finally:
                con.close()
        except sqlite3.Error as error:  # the schema is not a contract
            return [("?", f"cannot read tasks: {error}")]

    def block_file_count(self) -> int:
        return len(self.block_files())

    def block_file_for(self, data: bytes) -> Path:
        digest = hashlib.sha256(data).hexdigest()
        return self.blocks_dir / digest[:2] / digest


# --------------------------------------------------------------------------
# disks


def make_disk(seed: int, blocks: int = 128) -> List[bytes]:
    """A deterministic disk of `blocks` 512 KiB blocks (128 = 64 MiB) mixing
    random, compressible text, all-zero and partly-zero blocks, plus blocks
    repeated at several indices (one content, many places)."""
    rng = random.Random(seed)
    repeated = (f"hangar shared block {seed} ".encode() * (BLOCK // 16 + 1))[:BLOCK]
    disk: List[bytes] = []
    for index in range(blocks):
        kind = index % 8
        if kind == 0:
            block = ZERO
        elif kind in (1, 5):
            block = rng.randbytes(BLOCK)
        elif kind == 2:
            line = f"seed {seed} block {index}: the quick brown fox jumps over the lazy dog\n"
            block = (line.encode() * (BLOCK // len(line) + 1))[:BLOCK]
        elif kind == 3:
            # random first part, zeros after
            cut = rng.randrange(1, BLOCK - 1)
            block = rng.randbytes(cut) + bytes(BLOCK - cut)
        elif kind == 4:
            block = repeated
        elif kind == 6:
            # zeros with a single non-zero byte somewhere (not trivially zero)
            position = rng.randrange(BLOCK)
            buf = bytearray(BLOCK)
            buf[position] = 1 + rng.randrange(255)
            block = bytes(buf)
        else:
            # compressible byte ramp with a random run and a zero tail
            ramp = bytes((i * 7 + index) & 0xFF for i in range(256)) * (BLOCK // 256)
            start = rng.randrange(BLOCK // 2)
            buf = bytearray(ramp)
            buf[start:start + 4096] = rng.randbytes(4096)
            buf[-1000:] = bytes(1000)
            block = bytes(buf)
        assert len(block) == BLOCK
        disk.append(block)
    return disk


def nonzero_indices(disk: Sequence[bytes]) -> List[int]:
    return [index for index, block in enumerate(disk) if block != ZERO]


def distinct_nonzero(disks: Iterable[Sequence[bytes]]) -> set:
    return {hashlib.sha256(block).hexdigest()
            for disk in disks for block in disk if block != ZERO}


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def linear_checksum(disk: Sequence[bytes], indices: Iterable[int]) -> str:
    """EBS LINEAR aggregation: SHA-256 over the blocks' SHA-256 digests in index order."""
    outer = hashlib.sha256()
    for index in sorted(indices):
        outer.update(hashlib.sha256(disk[index]).digest())
    return base64.b64encode(outer.digest()).decode()


# --------------------------------------------------------------------------
# EBS direct API


def start_snapshot(ebs, volume_size: int = 1, **kwargs) -> str:
    answer = ebs.start_snapshot(VolumeSize=volume_size, Timeout=60, **kwargs)
    assert status_of(answer) == 201, answer["ResponseMetadata"]
    assert answer["Status"] == "pending", answer
    assert answer["BlockSize"] == BLOCK, answer
    return answer["SnapshotId"]


def put_block(ebs, snapshot_id: str, index: int, data: bytes) -> None:
    answer = ebs.put_snapshot_block(
        SnapshotId=snapshot_id, BlockIndex=index, BlockData=data, DataLength=len(data),
        Checksum=sha256_b64(data), ChecksumAlgorithm="SHA256")
    assert status_of(answer) == 201, answer["ResponseMetadata"]
    assert answer["Checksum"] == sha256_b64(data), answer


def put_blocks(ebs, snapshot_id: str, disk: Sequence[bytes], indices: Iterable[int],
               workers: int = 4) -> None:
    indices = list(indices)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda index: put_block(ebs, snapshot_id, index, disk[index]), indices))


def complete(ebs, snapshot_id: str, count: int, checksum: Optional[str] = None) -> None:
    kwargs = {}
    if checksum is not None:
        kwargs = dict(Checksum=checksum, ChecksumAlgorithm="SHA256",
                      ChecksumAggregationMethod="LINEAR")
    answer = ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=count, **kwargs)
    assert status_of(answer) == 202, answer["ResponseMetadata"]
    assert answer["Status"] == "completed", answer


def write_disk(ebs, disk: Sequence[bytes], volume_size: int = 1, **start_kwargs) -> str:
    """StartSnapshot, every block (zeros included), CompleteSnapshot with the
    LINEAR checksum. Returns the snapshot id."""
    snapshot_id = start_snapshot(ebs, volume_size, **start_kwargs)
    put_blocks(ebs, snapshot_id, disk, range(len(disk)))
    complete(ebs, snapshot_id, len(disk), linear_checksum(disk, range(len(disk))))
    return snapshot_id


def list_blocks(ebs, snapshot_id: str, max_results: Optional[int] = None
                ) -> Tuple[List[Tuple[int, str]], int, dict]:
    """All (index, token) of a snapshot, following NextToken. Returns
    (blocks, pages, first page)."""
    blocks: List[Tuple[int, str]] = []
    kwargs = {"SnapshotId": snapshot_id}
    if max_results:
        kwargs["MaxResults"] = max_results
    pages = 0
    first = None
    while True:
        page = ebs.list_snapshot_blocks(**kwargs)
        assert status_of(page) == 200
        pages += 1
        first = first or page
        blocks.extend((block["BlockIndex"], block["BlockToken"]) for block in page["Blocks"])
        token = page.get("NextToken")
        if not token:
            break
        kwargs["NextToken"] = token
        assert pages < 1000, "ListSnapshotBlocks does not end"
    return blocks, pages, first


def get_block(ebs, snapshot_id: str, index: int, token: str) -> bytes:
    answer = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockToken=token)
    data = answer["BlockData"].read()
    assert answer["DataLength"] == len(data), (answer["DataLength"], len(data))
    assert answer["ChecksumAlgorithm"] == "SHA256"
    assert answer["Checksum"] == sha256_b64(data), f"block {index}: checksum header mismatch"
    return data


def read_disk(ebs, snapshot_id: str, blocks: int, max_results: Optional[int] = None,
              workers: int = 4, listed: Optional[List[Tuple[int, str]]] = None
              ) -> Tuple[List[bytes], List[int]]:
    """Reads a snapshot back: every listed block with GetSnapshotBlock,
    unlisted ones as zeros. Returns (disk, listed indices)."""
    if listed is None:
        listed, _, _ = list_blocks(ebs, snapshot_id, max_results)
    indices = [index for index, _ in listed]
    assert len(indices) == len(set(indices)), f"a block is listed twice: {indices}"
    assert indices == sorted(indices), "blocks are not listed in index order"
    assert all(index < blocks for index in indices), (
        f"blocks listed past the disk's {blocks} blocks: {[i for i in indices if i >= blocks]}")
    disk = [ZERO] * blocks
    with ThreadPoolExecutor(max_workers=workers) as pool:
        datas = list(pool.map(lambda item: get_block(ebs, snapshot_id, item[0], item[1]), listed))
    for (index, _), data in zip(listed, datas):
        disk[index] = data
    return disk, indices


def assert_same_disk(actual: Sequence[bytes], expected: Sequence[bytes], what: str = "disk"):
    assert len(actual) == len(expected), f"{what}: {len(actual)} blocks, expected {len(expected)}"
    bad = [index for index, (a, b) in enumerate(zip(actual, expected)) if a != b]
    assert not bad, f"{what}: {len(bad)} blocks differ, first indices {bad[:10]}"
    assert b"".join(actual) == b"".join(expected)


# --------------------------------------------------------------------------
# EC2 helpers


def register(ec2, snapshot_id: str, name: Optional[str] = None, volume_size: Optional[int] = None,
             extra_mappings: Sequence[dict] = (), **kwargs) -> str:
    ebs = {"SnapshotId": snapshot_id, "DeleteOnTermination": True}
    if volume_size is not None:
        ebs["VolumeSize"] = volume_size
    answer = ec2.register_image(
        Name=name or unique("img"), Architecture="x86_64", VirtualizationType="hvm",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": ebs}, *extra_mappings],
        **kwargs)
    assert status_of(answer) == 200
    return answer["ImageId"]


def describe_image(ec2, image_id: str) -> dict:
    images = ec2.describe_images(ImageIds=[image_id])["Images"]
    assert len(images) == 1, images
    return images[0]


def wait_image(ec2, image_id: str, state: str = "available", timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    image = None
    while time.monotonic() < deadline:
        image = describe_image(ec2, image_id)
        if image["State"] == state:
            return image
        if image["State"] in ("failed", "error", "deregistered") and state != image["State"]:
            break
        time.sleep(0.1)
    raise AssertionError(f"{image_id} did not become {state} within {timeout}s: "
                         f"{image and (image['State'], image.get('StateReason'))}")


def root_snapshot(image: dict) -> str:
    for mapping in image["BlockDeviceMappings"]:
        if mapping["DeviceName"] == image["RootDeviceName"]:
            return mapping["Ebs"]["SnapshotId"]
    raise AssertionError(f"no root mapping in {image['BlockDeviceMappings']}")


def describe_instance(ec2, instance_id: str) -> dict:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    assert len(instances) == 1, instances
    return instances[0]


def wait_instance(ec2, instance_id: str, state: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    instance = None
    while time.monotonic() < deadline:
        instance = describe_instance(ec2, instance_id)
        if instance["State"]["Name"] == state:
            return instance
        time.sleep(0.05)
    raise AssertionError(f"{instance_id} did not become {state} within {timeout}s: "
                         f"{instance and instance['State']}")


def launch(ec2, image_id: str, count: int = 1, **kwargs) -> List[str]:
    answer = ec2.run_instances(ImageId=image_id, MinCount=count, MaxCount=count,
                               InstanceType="t3.micro", **kwargs)
    assert status_of(answer) == 200
    return [instance["InstanceId"] for instance in answer["Instances"]]


def poll_until(predicate, timeout: float, interval: float = 0.2, message: str = ""):
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value
