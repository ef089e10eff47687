"""Real bytes through Hangar: the EBS direct APIs, snapshots, volumes,
instances, CreateImage and CopyImage, crash recovery, the content-addressed
block store and its collector, corruption, bad input, and the AWS CLI.

Self-contained: every server here is spawned by datahelpers.DataServer (no
conftest fixtures), so these tests can be killed, restarted and reconfigured
freely. Run: python3 -m pytest -q tests/integration/test_data.py
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from datahelpers import (
    BLOCK,
    BLOCKS_PER_GIB,
    ZERO,
    DataServer,
    assert_same_disk,
    code_of,
    complete,
    describe_image,
    describe_instance,
    distinct_nonzero,
    expect_error,
    get_block,
    launch,
    linear_checksum,
    list_blocks,
    make_disk,
    nonzero_indices,
    poll_until,
    put_block,
    put_blocks,
    random_snapshot_id,
    read_disk,
    register,
    root_snapshot,
    sha256_b64,
    start_snapshot,
    status_of,
    unique,
    wait_image,
    wait_instance,
    write_disk,
)

MIB = 1024 * 1024
DISK_BLOCKS = 128  # 64 MiB


@functools.lru_cache(maxsize=None)
def disk_for(seed: int, blocks: int = DISK_BLOCKS):
    return tuple(make_disk(seed, blocks))


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """The module's shared server (collector effectively off)."""
    server = DataServer(tmp_path_factory.mktemp("data-shared"), gc_interval=600,
                        gc_grace=3600, transition_ms=300).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _shared_server_alive(request):
    """A test during which the shared server died fails, with its log."""
    yield
    if "srv" in request.fixturenames:
        server = request.getfixturevalue("srv")
        if not server.alive():
            tail = server.log_tail()
            server.process = None
            server.start()
            pytest.fail(f"the shared server died during this test; log:\n{tail}",
                        pytrace=False)


@pytest.fixture
def fresh(tmp_path):
    """A function-scoped server that a test may kill and restart."""
    servers = []

    def factory(**config):
        server = DataServer(tmp_path / f"srv{len(servers)}", **config).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def small(srv):
    """A small registered image (8 blocks: zeros, random, text) owned by Alice
    in us-east-1, for the EC2 API tests."""
    disk = list(make_disk(77, 8))
    ebs = srv.ebs()
    snapshot_id = write_disk(ebs, disk)
    image_id = register(srv.ec2(), snapshot_id, name=unique("small"))
    return {"disk": disk, "snapshot": snapshot_id, "image": image_id}


# --------------------------------------------------------------------------
# 1. the proof


def _flow(server: DataServer, disk, crash_at: str = ""):
    """Writes `disk` with the EBS direct APIs, registers it, launches it,
    creates an image from the instance, copies that image to us-west-2 and
    reads every block of the final snapshot back. `crash_at` in
    ('write', 'create', 'copy') SIGKILLs and restarts the server there."""
    ec2, ebs = server.ec2(), server.ebs()
    snapshot_id = start_snapshot(ebs, 1, Description="the proof disk")
    half = len(disk) // 2
    put_blocks(ebs, snapshot_id, disk, range(half))
    if crash_at == "write":
        server.kill9()
        server.start()
        ec2, ebs = server.ec2(), server.ebs()
        pending = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
        assert pending["State"] == "pending", pending
    put_blocks(ebs, snapshot_id, disk, range(half, len(disk)))
    complete(ebs, snapshot_id, len(disk), linear_checksum(disk, range(len(disk))))

    image_id = register(ec2, snapshot_id, name=unique("proof"))
    assert describe_image(ec2, image_id)["State"] == "available"
    [instance_id] = launch(ec2, image_id)
    wait_instance(ec2, instance_id, "running")

    # When crashing, queue a few more builds first so that the kill lands
    # while tasks are still queued or running (they must resume by themselves).
    extra_created = [
        ec2.create_image(InstanceId=instance_id, Name=unique("extra-created"))["ImageId"]
        for _ in range(3 if crash_at == "create" else 0)]
    created_id = ec2.create_image(InstanceId=instance_id, Name=unique("proof-created"))["ImageId"]
    if crash_at == "create":
        server.kill9()
        unfinished_at_crash = server.unfinished_tasks()
        print(f"unfinished tasks at the crash after CreateImage: {unfinished_at_crash}")
        server.start()
        ec2, ebs = server.ec2(), server.ebs()
    for extra in extra_created:
        wait_image(ec2, extra, timeout=20)
    created = wait_image(ec2, created_id, timeout=20)
    assert created.get("SourceInstanceId") == instance_id, created
    assert created.get("SourceImageId") == image_id, created
    created_snapshot = root_snapshot(created)
    assert created_snapshot != snapshot_id

    west_ec2 = server.ec2(region="us-west-2")
    extra_copied = [
        west_ec2.copy_image(SourceRegion="us-east-1", SourceImageId=created_id,
                            Name=unique("extra-copied"))["ImageId"]
        for _ in range(3 if crash_at == "copy" else 0)]
    copied_id = west_ec2.copy_image(SourceRegion="us-east-1", SourceImageId=created_id,
                                    Name=unique("proof-copied"))["ImageId"]
    if crash_at == "copy":
        server.kill9()
        unfinished_at_crash = server.unfinished_tasks()
        print(f"unfinished tasks at the crash after CopyImage: {unfinished_at_crash}")
        server.start()
        west_ec2 = server.ec2(region="us-west-2")
    for extra in extra_copied:
        wait_image(west_ec2, extra, timeout=20)
    final = wait_image(west_ec2, copied_id, timeout=20)
    assert final.get("SourceImageId") == created_id, final
    assert final.get("SourceImageRegion") == "us-east-1", final
    final_snapshot = root_snapshot(final)
    assert final_snapshot not in (snapshot_id, created_snapshot)
    described = west_ec2.describe_snapshots(SnapshotIds=[final_snapshot])["Snapshots"][0]
    assert described["State"] == "completed", described
    assert described["VolumeSize"] == 1, described

    west_ebs = server.ebs(region="us-west-2")
    listed, pages, first = list_blocks(west_ebs, final_snapshot, max_results=100)
    assert first["VolumeSize"] == 1 and first["BlockSize"] == BLOCK, first
    expected_indices = nonzero_indices(disk)
    assert len(expected_indices) > 100, "the disk must need two listing pages"
    assert pages == 2, f"{len(listed)} blocks at MaxResults=100 came in {pages} pages"
    assert [index for index, _ in listed] == expected_indices, (
        "ListSnapshotBlocks must list exactly the non-zero blocks; zero blocks listed: "
        f"{sorted(set(i for i, _ in listed) - set(expected_indices))}, missing: "
        f"{sorted(set(expected_indices) - set(i for i, _ in listed))}")
    back, _ = read_disk(west_ebs, final_snapshot, len(disk), listed=listed)
    assert_same_disk(back, disk, "the final snapshot in us-west-2")
    return {"snapshot": snapshot_id, "image": image_id, "instance": instance_id,
            "created": created_id, "copied": copied_id, "final_snapshot": final_snapshot}


def test_proof_64mib_disk_through_register_launch_create_and_copy(srv):
    disk = disk_for(1)
    assert len(b"".join(disk)) >= 64 * MIB
    kinds = {"zero": sum(b == ZERO for b in disk),
             "partly zero": sum(b != ZERO and b.count(0) > BLOCK // 4 for b in disk)}
    assert kinds["zero"] >= 8 and kinds["partly zero"] >= 8, kinds
    _flow(srv, disk)


# --------------------------------------------------------------------------
# 2. SIGKILL in the middle


@pytest.mark.parametrize("crash_at", ["write", "create", "copy"])
def test_sigkill_and_restart_mid_flow_keeps_bytes(fresh, crash_at):
    server = fresh(gc_interval=600, gc_grace=3600)
    _flow(server, disk_for({"write": 2, "create": 3, "copy": 4}[crash_at]), crash_at)
    assert server.alive()


# --------------------------------------------------------------------------
# 3. block sharing and collection


def test_blocks_are_shared_and_collected(fresh):
    server = fresh(gc_interval=600, gc_grace=3600)
    ec2, ebs = server.ec2(), server.ebs()
    west_ec2, west_ebs = server.ec2(region="us-west-2"), server.ebs(region="us-west-2")
    eu_ec2, eu_ebs = server.ec2(region="eu-west-1"), server.ebs(region="eu-west-1")
    disk_a = list(disk_for(11))
    disk_b = disk_a[:64] + list(disk_for(12))[64:]  # shares its first half with A
    disk_c = list(make_disk(13, 8))

    def count():
        return server.block_file_count()

    s1 = write_disk(ebs, disk_a)
    assert count() == len(distinct_nonzero([disk_a])), "one file per distinct non-zero block"
    assert len(distinct_nonzero([disk_a])) < len(nonzero_indices(disk_a)), "A repeats blocks"
    s2 = write_disk(ebs, disk_b)
    assert count() == len(distinct_nonzero([disk_a, disk_b]))
    s3 = write_disk(ebs, disk_c)
    expected_all = len(distinct_nonzero([disk_a, disk_b, disk_c]))
    assert count() == expected_all

    image_1 = register(ec2, s1, name=unique("gc"))
    [instance] = launch(ec2, image_1)
    wait_instance(ec2, instance, "running")
    assert count() == expected_all, "launching must not write block files"
    image_2 = ec2.create_image(InstanceId=instance, Name=unique("gc-created"))["ImageId"]
    s_image_2 = root_snapshot(wait_image(ec2, image_2))
    assert count() == expected_all, "CreateImage must not write block files"
    image_3 = west_ec2.copy_image(SourceRegion="us-east-1", SourceImageId=image_2,
                                  Name=unique("gc-copied"))["ImageId"]
    s_image_3 = root_snapshot(wait_image(west_ec2, image_3))
    assert count() == expected_all, "CopyImage must not write block files"
    s3_eu = eu_ec2.copy_snapshot(SourceRegion="us-east-1", SourceSnapshotId=s3)["SnapshotId"]
    assert count() == expected_all, "CopySnapshot must not write block files"

    # Now let the collector run every second with no grace period.
    server.restart(gc_interval=1, gc_grace=0)
    ec2, ebs = server.ec2(), server.ebs()
    west_ec2, west_ebs = server.ec2(region="us-west-2"), server.ebs(region="us-west-2")
    eu_ec2, eu_ebs = server.ec2(region="eu-west-1"), server.ebs(region="eu-west-1")
    time.sleep(2.5)
    assert count() == expected_all, "the collector took referenced blocks"

    # S2 alone holds the second half of B: deleting it frees exactly those.
    ec2.delete_snapshot(SnapshotId=s2)
    expected = len(distinct_nonzero([disk_a, disk_c]))
    assert expected < expected_all
    assert poll_until(lambda: count() == expected, timeout=10), (
        f"after deleting {s2}: {count()} block files, expected {expected}")
    back, _ = read_disk(ebs, s1, len(disk_a))
    assert_same_disk(back, disk_a, f"{s1} after deleting {s2}, which shared half its blocks")

    # S1 goes, but the volume and both images' snapshots still hold A.
    ec2.deregister_image(ImageId=image_1)
    ec2.delete_snapshot(SnapshotId=s1)
    time.sleep(2.5)
    assert count() == expected, "blocks still used by a volume and snapshots were collected"
    back, _ = read_disk(west_ebs, s_image_3, len(disk_a))
    assert_same_disk(back, disk_a, f"{s_image_3} (us-west-2) after deleting {s1}")

    # Everything holding A goes: the volume (terminate), both images and snapshots.
    ec2.terminate_instances(InstanceIds=[instance])
    wait_instance(ec2, instance, "terminated")
    ec2.deregister_image(ImageId=image_2)
    ec2.delete_snapshot(SnapshotId=s_image_2)
    west_ec2.deregister_image(ImageId=image_3)
    west_ec2.delete_snapshot(SnapshotId=s_image_3)
    expected = len(distinct_nonzero([disk_c]))
    assert poll_until(lambda: count() == expected, timeout=10), (
        f"after dropping every holder of disk A: {count()} block files, expected {expected}")
    for client, snapshot_id in ((ebs, s3), (eu_ebs, s3_eu)):
        back, _ = read_disk(client, snapshot_id, len(disk_c))
        assert_same_disk(back, disk_c, snapshot_id)

    # The last two holders of C.
    ec2.delete_snapshot(SnapshotId=s3)
    time.sleep(2.5)
    assert count() == expected, "the eu-west-1 copy still needs C's blocks"
    back, _ = read_disk(eu_ebs, s3_eu, len(disk_c))
    assert_same_disk(back, disk_c, f"{s3_eu} after deleting its source {s3}")
    eu_ec2.delete_snapshot(SnapshotId=s3_eu)
    assert poll_until(lambda: count() == 0, timeout=10), f"{count()} block files left"
    assert server.alive()


def test_collector_never_takes_blocks_being_written(fresh):
    """With gc_grace_secs = 0 (a setting the config accepts) the collector runs
    every second while blocks are written for ~8 s (24 writers): it must not
    delete a block whose map entry is about to be written. Every written
    block must keep its file and read back once the snapshot is completed.
    (The race is timing-dependent: when the server has it, this test fails
    most of the time, not always.)"""
    server = fresh(gc_interval=1, gc_grace=0)
    ebs = server.ebs()
    writers = 24  # more writers, more blocks caught between their file and map entry
    rng = random.Random(15)
    lock = threading.Lock()
    written = {}
    deadline = time.monotonic() + 8.0
    snapshot_id = start_snapshot(ebs, 1)

    def writer():
        while time.monotonic() < deadline:
            with lock:
                index = len(written)
                if index >= BLOCKS_PER_GIB:
                    return
                data = rng.randbytes(BLOCK)
                written[index] = data
            put_block(ebs, snapshot_id, index, data)

    with ThreadPoolExecutor(max_workers=writers) as pool:
        for future in [pool.submit(writer) for _ in range(writers)]:
            future.result()
    complete(ebs, snapshot_id, len(written))
    time.sleep(1.5)  # one more collection after completion
    missing = sorted(index for index, data in written.items()
                     if not server.block_file_for(data).exists())
    detail = ""
    if missing:
        tokens = dict(list_blocks(ebs, snapshot_id)[0])
        try:
            get_block(ebs, snapshot_id, missing[0], tokens[missing[0]])
            detail = "GetSnapshotBlock still answered 200"
        except Exception as error:  # noqa: BLE001
            detail = (f"GetSnapshotBlock of block {missing[0]}: "
                      f"{getattr(error, 'response', {}).get('Error', error)!r}")
    assert not missing, (
        f"the collector deleted the files of {len(missing)} of {len(written)} blocks written "
        f"to pending snapshot {snapshot_id} (indices {missing}); {detail}")
    sample = sorted(written)[:: max(1, len(written) // 16)]
    tokens = dict(list_blocks(ebs, snapshot_id)[0])
    for index in sample:
        assert get_block(ebs, snapshot_id, index, tokens[index]) == written[index]


# --------------------------------------------------------------------------
# 4. corruption


def test_corrupted_block_file_returns_no_data(srv):
    ebs = srv.ebs()
    disk = [os.urandom(BLOCK) for _ in range(3)]
    snapshot_id = write_disk(ebs, disk)
    listed, _, _ = list_blocks(ebs, snapshot_id)
    tokens = dict(listed)
    assert sorted(tokens) == [0, 1, 2]
    path = srv.block_file_for(disk[1])
    assert path.is_file(), f"no block file at {path}"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x5A  # one byte inside the data
    os.chmod(path, 0o644)
    path.write_bytes(bytes(raw))

    for _ in range(2):  # not a one-off: the block stays refused
        try:
            answer = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=1,
                                            BlockToken=tokens[1])
        except Exception as error:  # noqa: BLE001
            response = getattr(error, "response", None)
            assert response is not None, f"not an HTTP error: {error!r}"
            assert status_of(error) >= 400, response
            assert code_of(error) in ("InternalServerException", "ValidationException",
                                      "ResourceNotFoundException"), response
        else:
            data = answer["BlockData"].read()
            pytest.fail(f"GetSnapshotBlock of a corrupted block answered "
                        f"{status_of(answer)} with {len(data)} bytes "
                        f"(equal to the corrupted file's data: {data == bytes(raw[9:])})")
    assert srv.alive() and srv.health() == 200
    for index in (0, 2):
        assert get_block(ebs, snapshot_id, index, tokens[index]) == disk[index]


# --------------------------------------------------------------------------
# 5. bad input


def _assert_nothing_written(ebs, snapshot_id, written=()):
    """Completing with exactly the good writes works, and only they are listed."""
    complete(ebs, snapshot_id, len(written))
    listed, _, _ = list_blocks(ebs, snapshot_id)
    assert [index for index, _ in listed] == sorted(written), listed


def test_put_block_with_wrong_checksum_is_refused_and_stores_nothing(srv):
    ebs = srv.ebs()
    snapshot_id = start_snapshot(ebs)
    data = os.urandom(BLOCK)
    before = srv.block_file_count()
    expect_error(ebs.put_snapshot_block, SnapshotId=snapshot_id, BlockIndex=0, BlockData=data,
                 DataLength=BLOCK, Checksum=sha256_b64(data[:-1] + b"\x00"),
                 ChecksumAlgorithm="SHA256", code="ValidationException", status=400)
    assert srv.block_file_count() == before
    assert not srv.block_file_for(data).exists()
    _assert_nothing_written(ebs, snapshot_id)


def test_put_block_of_wrong_length_is_refused(srv):
    ebs = srv.ebs(validate=False)
    snapshot_id = start_snapshot(ebs)
    short = os.urandom(1000)
    expect_error(ebs.put_snapshot_block, SnapshotId=snapshot_id, BlockIndex=0, BlockData=short,
                 DataLength=len(short), Checksum=sha256_b64(short),
                 ChecksumAlgorithm="SHA256", code="ValidationException", status=400)
    long = os.urandom(BLOCK + 1)
    expect_error(ebs.put_snapshot_block, SnapshotId=snapshot_id, BlockIndex=1, BlockData=long,
                 DataLength=len(long), Checksum=sha256_b64(long),
                 ChecksumAlgorithm="SHA256", code="ValidationException", status=400)
    full = os.urandom(BLOCK)  # right size, declared length wrong
    expect_error(ebs.put_snapshot_block, SnapshotId=snapshot_id, BlockIndex=2, BlockData=full,
                 DataLength=1000, Checksum=sha256_b64(full),
                 ChecksumAlgorithm="SHA256", code="ValidationException", status=400)
    assert not srv.block_file_for(full).exists()
    _assert_nothing_written(ebs, snapshot_id)


def test_put_block_index_out_of_range(srv):
    ebs = srv.ebs(validate=False)
    snapshot_id = start_snapshot(ebs, 1)
    data = os.urandom(BLOCK)
    expect_error(ebs.put_snapshot_block, SnapshotId=snapshot_id, BlockIndex=BLOCKS_PER_GIB,
                 BlockData=data, DataLength=BLOCK, Checksum=sha256_b64(data),
                 ChecksumAlgorithm="SHA256", code="ValidationException", status=400)
    put_block(ebs, snapshot_id, BLOCKS_PER_GIB - 1, data)  # the last block is inside
    _assert_nothing_written(ebs, snapshot_id, [BLOCKS_PER_GIB - 1])
    expect_error(ebs.get_snapshot_block, SnapshotId=snapshot_id, BlockIndex=BLOCKS_PER_GIB,
                 BlockToken="AAAA", code="ValidationException", status=400)


def test_put_block_to_completed_snapshot_is_refused(srv):
    ebs = srv.ebs()
    first, second = os.urandom(BLOCK), os.urandom(BLOCK)
    snapshot_id = write_disk(ebs, [first])
    expect_error(ebs.put_snapshot_block, SnapshotId=snapshot_id, BlockIndex=0, BlockData=second,
                 DataLength=BLOCK, Checksum=sha256_b64(second), ChecksumAlgorithm="SHA256",
                 code="ValidationException", status=400)
    expect_error(ebs.put_snapshot_block, SnapshotId=snapshot_id, BlockIndex=1, BlockData=second,
                 DataLength=BLOCK, Checksum=sha256_b64(second), ChecksumAlgorithm="SHA256",
                 code="ValidationException", status=400)
    back, indices = read_disk(ebs, snapshot_id, 4)
    assert indices == [0]
    assert back[0] == first


def test_complete_with_wrong_count_keeps_snapshot_pending(srv):
    ebs, ec2 = srv.ebs(), srv.ec2()
    disk = [os.urandom(BLOCK), ZERO, os.urandom(BLOCK)]
    snapshot_id = start_snapshot(ebs)
    # Writing an index twice keeps the last data and counts once: index 1
    # gets data then zeros, index 2 other data then its own.
    put_block(ebs, snapshot_id, 1, os.urandom(BLOCK))
    put_block(ebs, snapshot_id, 2, os.urandom(BLOCK))
    put_blocks(ebs, snapshot_id, disk, range(3))
    for wrong in (2, 4, 0):
        expect_error(ebs.complete_snapshot, SnapshotId=snapshot_id, ChangedBlocksCount=wrong,
                     code="ValidationException", status=400)
        state = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"]
        assert state == "pending", f"after ChangedBlocksCount={wrong}: {state}"
    wrong_sum = linear_checksum([disk[2], disk[1], disk[0]], range(3))
    expect_error(ebs.complete_snapshot, SnapshotId=snapshot_id, ChangedBlocksCount=3,
                 Checksum=wrong_sum, ChecksumAlgorithm="SHA256",
                 ChecksumAggregationMethod="LINEAR", code="ValidationException", status=400)
    assert ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"] == "pending"
    complete(ebs, snapshot_id, 3, linear_checksum(disk, range(3)))
    assert ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"] == \
        "completed"
    back, indices = read_disk(ebs, snapshot_id, 3)
    assert indices == [0, 2]
    assert_same_disk(back, disk)


def test_reading_a_pending_snapshot_is_refused(srv):
    ebs, ec2 = srv.ebs(), srv.ec2()
    data = os.urandom(BLOCK)
    snapshot_id = start_snapshot(ebs)
    put_block(ebs, snapshot_id, 0, data)
    expect_error(ebs.list_snapshot_blocks, SnapshotId=snapshot_id,
                 code="ValidationException", status=400)
    token = hashlib.sha256(data).hexdigest()[:32]
    expect_error(ebs.get_snapshot_block, SnapshotId=snapshot_id, BlockIndex=0, BlockToken=token,
                 code="ValidationException", status=400)
    # EC2 side: a pending snapshot cannot be copied or registered.
    expect_error(srv.ec2(region="us-west-2").copy_snapshot, SourceRegion="us-east-1",
                 SourceSnapshotId=snapshot_id, code="IncorrectState", status=400)
    expect_error(ec2.register_image, Name=unique("pending"), Architecture="x86_64",
                 VirtualizationType="hvm", RootDeviceName="/dev/xvda",
                 BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                       "Ebs": {"SnapshotId": snapshot_id}}],
                 code="IncorrectState", status=400)


def test_get_block_with_wrong_token(srv):
    ebs = srv.ebs()
    disk = [os.urandom(BLOCK), os.urandom(BLOCK)]
    snapshot_id = write_disk(ebs, disk)
    tokens = dict(list_blocks(ebs, snapshot_id)[0])
    expect_error(ebs.get_snapshot_block, SnapshotId=snapshot_id, BlockIndex=0,
                 BlockToken=tokens[1], code="ValidationException", status=400)
    expect_error(ebs.get_snapshot_block, SnapshotId=snapshot_id, BlockIndex=0,
                 BlockToken="AAAAAAAA", code="ValidationException", status=400)
    expect_error(ebs.get_snapshot_block, SnapshotId=snapshot_id, BlockIndex=5,
                 BlockToken=tokens[0], code="ValidationException", status=400)
    assert get_block(ebs, snapshot_id, 1, tokens[1]) == disk[1]


def test_unknown_snapshot_is_404(srv):
    ebs = srv.ebs()
    missing = random_snapshot_id()
    data = os.urandom(BLOCK)
    for call, kwargs in (
        (ebs.list_snapshot_blocks, {}),
        (ebs.get_snapshot_block, {"BlockIndex": 0, "BlockToken": "AAAA"}),
        (ebs.put_snapshot_block, {"BlockIndex": 0, "BlockData": data, "DataLength": BLOCK,
                                  "Checksum": sha256_b64(data), "ChecksumAlgorithm": "SHA256"}),
        (ebs.complete_snapshot, {"ChangedBlocksCount": 0}),
    ):
        expect_error(call, SnapshotId=missing, code="ResourceNotFoundException", status=404,
                     **kwargs)
    assert not srv.block_file_for(data).exists()


def test_start_snapshot_volume_size_zero(srv):
    ebs = srv.ebs(validate=False)
    expect_error(ebs.start_snapshot, VolumeSize=0, code="ValidationException", status=400)


def test_start_snapshot_client_token(srv):
    ebs = srv.ebs()
    token = uuid.uuid4().hex
    first = ebs.start_snapshot(VolumeSize=1, ClientToken=token, Timeout=60)["SnapshotId"]
    again = ebs.start_snapshot(VolumeSize=1, ClientToken=token, Timeout=60)["SnapshotId"]
    assert again == first
    expect_error(ebs.start_snapshot, VolumeSize=2, ClientToken=token, Timeout=60,
                 code="ConflictException", status=409)
    pending = srv.ec2().describe_snapshots(
        Filters=[{"Name": "snapshot-id", "Values": [first]}])["Snapshots"]
    assert [s["SnapshotId"] for s in pending] == [first]


def test_register_image_with_unknown_snapshot(srv):
    expect_error(srv.ec2().register_image, Name=unique("nosnap"), Architecture="x86_64",
                 VirtualizationType="hvm", RootDeviceName="/dev/xvda",
                 BlockDeviceMappings=[{"DeviceName": "/dev/xvda",
                                       "Ebs": {"SnapshotId": random_snapshot_id()}}],
                 code="InvalidSnapshot.NotFound", status=400)


def test_delete_snapshot_in_use_then_deleted(srv):
    ec2, ebs = srv.ec2(), srv.ebs()
    disk = [os.urandom(BLOCK)]
    snapshot_id = write_disk(ebs, disk)
    image_id = register(ec2, snapshot_id)
    error = expect_error(ec2.delete_snapshot, SnapshotId=snapshot_id,
                         code="InvalidSnapshot.InUse", status=400)
    assert image_id in error.response["Error"]["Message"], error.response["Error"]
    assert read_disk(ebs, snapshot_id, 1)[0] == disk
    ec2.deregister_image(ImageId=image_id)
    assert status_of(ec2.delete_snapshot(SnapshotId=snapshot_id)) == 200
    expect_error(ec2.describe_snapshots, SnapshotIds=[snapshot_id],
                 code="InvalidSnapshot.NotFound", status=400)
    expect_error(ebs.list_snapshot_blocks, SnapshotId=snapshot_id,
                 code="ResourceNotFoundException", status=404)


def test_stop_terminated_instance_changes_nothing(srv, small):
    ec2 = srv.ec2()
    running, doomed = launch(ec2, small["image"], count=2)
    wait_instance(ec2, running, "running")
    ec2.terminate_instances(InstanceIds=[doomed])
    wait_instance(ec2, doomed, "terminated")
    expect_error(ec2.stop_instances, InstanceIds=[doomed], code="IncorrectInstanceState",
                 status=400)
    expect_error(ec2.stop_instances, InstanceIds=[running, doomed],
                 code="IncorrectInstanceState", status=400)
    time.sleep(0.5)  # longer than transition_ms: a stop would have settled
    assert describe_instance(ec2, running)["State"]["Name"] == "running"
    assert describe_instance(ec2, doomed)["State"]["Name"] == "terminated"
    ec2.terminate_instances(InstanceIds=[running])


def test_run_deregistered_image(srv):
    ec2 = srv.ec2()
    snapshot_id = write_disk(srv.ebs(), [os.urandom(BLOCK)])
    image_id = register(ec2, snapshot_id)
    ec2.deregister_image(ImageId=image_id)
    expect_error(ec2.run_instances, ImageId=image_id, MinCount=1, MaxCount=1,
                 code="InvalidAMIID.Unavailable", status=400)


def test_private_image_launch_needs_permission(srv, small):
    alice, bob = srv.ec2(), srv.ec2("bob")
    image_id = register(alice, small["snapshot"], name=unique("private"))
    expect_error(bob.run_instances, ImageId=image_id, MinCount=1, MaxCount=1,
                 code="InvalidAMIID.NotFound", status=400)
    alice.modify_image_attribute(ImageId=image_id,
                                 LaunchPermission={"Add": [{"UserId": "222222222222"}]})
    answer = bob.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
    [instance] = answer["Instances"]
    assert instance["ImageId"] == image_id
    running = wait_instance(bob, instance["InstanceId"], "running")
    volume_id = running["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    volume = bob.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert volume["SnapshotId"] == small["snapshot"]
    # Bob's own snapshot of his volume holds the image's bytes.
    copy = bob.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    back, _ = read_disk(srv.ebs("bob"), copy, len(small["disk"]))
    assert_same_disk(back, small["disk"], "Bob's snapshot of his volume")
    bob.terminate_instances(InstanceIds=[instance["InstanceId"]])


def test_other_account_cannot_read_or_write_snapshot_blocks(srv, small):
    alice_ebs, bob_ebs = srv.ebs(), srv.ebs("bob")
    tokens = dict(list_blocks(alice_ebs, small["snapshot"])[0])
    index, token = next(iter(tokens.items()))
    denied = {"ResourceNotFoundException", "AccessDeniedException"}
    error = expect_error(bob_ebs.list_snapshot_blocks, SnapshotId=small["snapshot"], code=denied)
    assert status_of(error) in (403, 404)
    error = expect_error(bob_ebs.get_snapshot_block, SnapshotId=small["snapshot"],
                         BlockIndex=index, BlockToken=token, code=denied)
    assert status_of(error) in (403, 404)
    pending = start_snapshot(alice_ebs)
    data = os.urandom(BLOCK)
    expect_error(bob_ebs.put_snapshot_block, SnapshotId=pending, BlockIndex=0, BlockData=data,
                 DataLength=BLOCK, Checksum=sha256_b64(data), ChecksumAlgorithm="SHA256",
                 code=denied)
    expect_error(bob_ebs.complete_snapshot, SnapshotId=pending, ChangedBlocksCount=0,
                 code=denied)
    assert not srv.block_file_for(data).exists()
    _assert_nothing_written(alice_ebs, pending)
    # Nor through EC2: copying Alice's snapshot.
    expect_error(srv.ec2("bob", region="us-west-2").copy_snapshot, SourceRegion="us-east-1",
                 SourceSnapshotId=small["snapshot"], code="InvalidSnapshot.NotFound")
    expect_error(srv.ec2("bob").describe_snapshots, SnapshotIds=[small["snapshot"]],
                 code="InvalidSnapshot.NotFound")


def test_other_account_cannot_snapshot_or_image_alice_instance(srv, small):
    alice, bob = srv.ec2(), srv.ec2("bob")
    [instance_id] = launch(alice, small["image"])
    instance = wait_instance(alice, instance_id, "running")
    volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    expect_error(bob.create_snapshot, VolumeId=volume_id, code="InvalidVolume.NotFound")
    expect_error(bob.describe_volumes, VolumeIds=[volume_id], code="InvalidVolume.NotFound")
    expect_error(bob.create_image, InstanceId=instance_id, Name=unique("steal"),
                 code="InvalidInstanceID.NotFound")
    expect_error(bob.terminate_instances, InstanceIds=[instance_id],
                 code="InvalidInstanceID.NotFound")
    assert describe_instance(alice, instance_id)["State"]["Name"] == "running"
    alice.terminate_instances(InstanceIds=[instance_id])


def test_encryption_is_refused(srv, small):
    expect_error(srv.ebs().start_snapshot, VolumeSize=1, Encrypted=True,
                 code="ValidationException", status=400)
    expect_error(srv.ec2(region="us-west-2").copy_snapshot, SourceRegion="us-east-1",
                 SourceSnapshotId=small["snapshot"], Encrypted=True,
                 code="InvalidParameterValue", status=400)
    expect_error(srv.ec2(region="us-west-2").copy_image, SourceRegion="us-east-1",
                 SourceImageId=small["image"], Name=unique("enc"), Encrypted=True,
                 code="InvalidParameterValue", status=400)


# --------------------------------------------------------------------------
# 6. EC2 snapshot, volume and instance APIs


def test_describe_snapshots_ids_owner_filters_pagination(srv):
    ebs, ec2 = srv.ebs(), srv.ec2()
    suite = unique("suite")
    sizes = [1, 1, 2, 2, 3, 3]
    ids = []
    for number, size in enumerate(sizes):
        snapshot_id = start_snapshot(ebs, size, Tags=[{"Key": "suite", "Value": suite},
                                                      {"Key": "n", "Value": str(number)}])
        if number < 5:
            complete(ebs, snapshot_id, 0)
        ids.append(snapshot_id)
    mine = [{"Name": "tag:suite", "Values": [suite]}]

    by_id = ec2.describe_snapshots(SnapshotIds=ids)["Snapshots"]
    assert sorted(s["SnapshotId"] for s in by_id) == sorted(ids)
    for snapshot in by_id:
        assert snapshot["OwnerId"] == "111111111111"
        assert snapshot["VolumeSize"] == sizes[ids.index(snapshot["SnapshotId"])]
        assert {"Key": "suite", "Value": suite} in snapshot["Tags"]
    owned = ec2.describe_snapshots(OwnerIds=["self"], Filters=mine)["Snapshots"]
    assert sorted(s["SnapshotId"] for s in owned) == sorted(ids)

    def select(*filters):
        answer = ec2.describe_snapshots(OwnerIds=["self"], Filters=mine + list(filters))
        return sorted(s["SnapshotId"] for s in answer["Snapshots"])

    assert select({"Name": "status", "Values": ["pending"]}) == [ids[5]]
    assert select({"Name": "status", "Values": ["completed"]}) == sorted(ids[:5])
    assert select({"Name": "volume-size", "Values": ["3"]}) == sorted(ids[4:])
    assert select({"Name": "tag:n", "Values": ["2", "3"]}) == sorted(ids[2:4])
    assert select({"Name": "tag:n", "Values": ["nope"]}) == []

    seen, pages, token = [], 0, None
    while True:
        kwargs = {"OwnerIds": ["self"], "Filters": mine, "MaxResults": 5}
        if token:
            kwargs["NextToken"] = token
        page = ec2.describe_snapshots(**kwargs)
        pages += 1
        assert len(page["Snapshots"]) <= 5
        seen += [s["SnapshotId"] for s in page["Snapshots"]]
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 2 and sorted(seen) == sorted(ids), (pages, seen)

    # Bob sees none of it.
    bob = srv.ec2("bob")
    assert bob.describe_snapshots(Filters=mine)["Snapshots"] == []
    expect_error(bob.describe_snapshots, SnapshotIds=[ids[0]], code="InvalidSnapshot.NotFound")


def test_copy_snapshot_across_regions_with_boto3(srv, small):
    west = srv.ec2(region="us-west-2")
    answer = west.copy_snapshot(SourceRegion="us-east-1", SourceSnapshotId=small["snapshot"],
                                Description="copied by test_data")
    assert status_of(answer) == 200
    copy_id = answer["SnapshotId"]
    assert copy_id != small["snapshot"]
    described = west.describe_snapshots(SnapshotIds=[copy_id])["Snapshots"][0]
    assert described["State"] == "completed", described
    assert described["VolumeSize"] == 1
    assert described["Description"] == "copied by test_data"
    expect_error(srv.ec2().describe_snapshots, SnapshotIds=[copy_id],
                 code="InvalidSnapshot.NotFound")
    back, _ = read_disk(srv.ebs(region="us-west-2"), copy_id, len(small["disk"]))
    assert_same_disk(back, small["disk"], "the us-west-2 copy")


def test_create_snapshot_from_running_instance_volume(srv, small):
    ec2 = srv.ec2()
    [instance_id] = launch(ec2, small["image"])
    instance = wait_instance(ec2, instance_id, "running")
    [mapping] = instance["BlockDeviceMappings"]
    assert mapping["DeviceName"] == "/dev/xvda"
    volume_id = mapping["Ebs"]["VolumeId"]
    answer = ec2.create_snapshot(VolumeId=volume_id, Description="from a running instance")
    assert answer["State"] == "completed", answer
    assert answer["VolumeId"] == volume_id
    assert answer["VolumeSize"] == 1
    back, indices = read_disk(srv.ebs(), answer["SnapshotId"], len(small["disk"]))
    assert indices == nonzero_indices(small["disk"])
    assert_same_disk(back, small["disk"], "snapshot of the instance's root volume")
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_describe_volumes_shows_attached_root_volume(srv, small):
    ec2 = srv.ec2()
    [instance_id] = launch(ec2, small["image"])
    instance = wait_instance(ec2, instance_id, "running")
    volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    [volume] = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    assert volume["State"] == "in-use", volume
    assert volume["Size"] == 1 and volume["SnapshotId"] == small["snapshot"], volume
    assert volume["AvailabilityZone"] == instance["Placement"]["AvailabilityZone"]
    [attachment] = volume["Attachments"]
    assert attachment["InstanceId"] == instance_id
    assert attachment["Device"] == "/dev/xvda"
    assert attachment["State"] == "attached"
    assert attachment["DeleteOnTermination"] is True
    by_filter = ec2.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["Volumes"]
    assert [v["VolumeId"] for v in by_filter] == [volume_id]
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_instance_state_transitions(srv, small):
    ec2 = srv.ec2()

    def settle(call, transitional, settled, previous):
        started = time.monotonic()
        answer = call(InstanceIds=[instance_id])
        key = next(k for k in answer if k.endswith("Instances"))
        [change] = answer[key]
        assert change["InstanceId"] == instance_id
        assert change["PreviousState"]["Name"] == previous, change
        assert change["CurrentState"]["Name"] == transitional, change
        state = describe_instance(ec2, instance_id)["State"]["Name"]
        if time.monotonic() - started < 0.25:
            assert state == transitional, state
        wait_instance(ec2, instance_id, settled, timeout=5)

    answer = ec2.run_instances(ImageId=small["image"], MinCount=1, MaxCount=1)
    [instance] = answer["Instances"]
    instance_id = instance["InstanceId"]
    assert instance["State"] == {"Code": 0, "Name": "pending"}
    wait_instance(ec2, instance_id, "running", timeout=5)
    assert describe_instance(ec2, instance_id)["State"]["Code"] == 16
    settle(ec2.stop_instances, "stopping", "stopped", "running")
    expect_error(ec2.stop_instances, InstanceIds=[instance_id], DryRun=True,
                 code="DryRunOperation", status=412)
    settle(ec2.start_instances, "pending", "running", "stopped")
    settle(ec2.terminate_instances, "shutting-down", "terminated", "running")
    assert describe_instance(ec2, instance_id)["State"] == {"Code": 48, "Name": "terminated"}
    expect_error(ec2.start_instances, InstanceIds=[instance_id], code="IncorrectInstanceState")


def test_terminate_deletes_only_delete_on_termination_volumes(srv, small):
    ec2 = srv.ec2()
    image_id = register(ec2, small["snapshot"], extra_mappings=[
        {"DeviceName": "/dev/sdb",
         "Ebs": {"SnapshotId": small["snapshot"], "DeleteOnTermination": False}}])
    [instance_id] = launch(ec2, image_id)
    instance = wait_instance(ec2, instance_id, "running")
    volumes = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}
    assert set(volumes) == {"/dev/xvda", "/dev/sdb"}, volumes
    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_instance(ec2, instance_id, "terminated")
    expect_error(ec2.describe_volumes, VolumeIds=[volumes["/dev/xvda"]],
                 code="InvalidVolume.NotFound", status=400)
    [kept] = ec2.describe_volumes(VolumeIds=[volumes["/dev/sdb"]])["Volumes"]
    assert kept["State"] == "available", kept
    assert kept.get("Attachments", []) == [], kept
    snapshot = ec2.create_snapshot(VolumeId=kept["VolumeId"])["SnapshotId"]
    back, _ = read_disk(srv.ebs(), snapshot, len(small["disk"]))
    assert_same_disk(back, small["disk"], "the kept volume")


def test_run_instances_min_and_max_count(srv, small):
    ec2 = srv.ec2()
    answer = ec2.run_instances(ImageId=small["image"], MinCount=2, MaxCount=3)
    instances = answer["Instances"]
    assert len(instances) == 3
    assert sorted(i["AmiLaunchIndex"] for i in instances) == [0, 1, 2]
    ids = [i["InstanceId"] for i in instances]
    reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    assert {r["ReservationId"] for r in reservations} == {answer["ReservationId"]}
    volumes = {wait_instance(ec2, i, "running")["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
               for i in ids}
    assert len(volumes) == 3, "each instance gets its own root volume"
    ec2.terminate_instances(InstanceIds=ids)


def test_run_instances_block_device_override_size(srv, small):
    ec2 = srv.ec2()
    [instance_id] = launch(ec2, small["image"], BlockDeviceMappings=[
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 5}}])
    instance = wait_instance(ec2, instance_id, "running")
    volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    [volume] = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    assert volume["Size"] == 5, volume
    snapshot = ec2.create_snapshot(VolumeId=volume_id)
    assert snapshot["VolumeSize"] == 5
    back, indices = read_disk(srv.ebs(), snapshot["SnapshotId"], len(small["disk"]))
    assert indices == nonzero_indices(small["disk"])
    assert_same_disk(back, small["disk"], "the grown volume's first blocks")
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_catalogue_images_are_launchable(srv):
    ec2 = srv.ec2()
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    assert len(images) >= 4, [i["Name"] for i in images]
    launched = []
    for image in images:
        instance_type = "t4g.micro" if image["Architecture"] == "arm64" else "t3.micro"
        answer = ec2.run_instances(ImageId=image["ImageId"], MinCount=1, MaxCount=1,
                                   InstanceType=instance_type)
        launched.append((answer["Instances"][0]["InstanceId"], image))
    for instance_id, image in launched:
        instance = wait_instance(ec2, instance_id, "running")
        assert instance["ImageId"] == image["ImageId"]
        assert instance["Architecture"] == image["Architecture"]
        volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
        [volume] = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
        assert volume["SnapshotId"] == root_snapshot(image)
    ec2.terminate_instances(InstanceIds=[i for i, _ in launched])


def test_describe_instances_filters(srv, small):
    ec2 = srv.ec2()
    name = unique("named")
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}]
    first, second = launch(ec2, small["image"], count=2, TagSpecifications=tags)
    [other] = launch(ec2, small["image"])
    for instance_id in (first, second, other):
        wait_instance(ec2, instance_id, "running")

    def select(*filters):
        reservations = ec2.describe_instances(Filters=list(filters))["Reservations"]
        return sorted(i["InstanceId"] for r in reservations for i in r["Instances"])

    by_name = {"Name": "tag:Name", "Values": [name]}
    assert select(by_name) == sorted([first, second])
    assert select(by_name, {"Name": "image-id", "Values": [small["image"]]}) == \
        sorted([first, second])
    assert other in select({"Name": "image-id", "Values": [small["image"]]})
    assert select(by_name, {"Name": "image-id", "Values": ["ami-0123456789abcdef0"]}) == []
    ec2.terminate_instances(InstanceIds=[second])
    wait_instance(ec2, second, "terminated")
    assert select(by_name, {"Name": "instance-state-name", "Values": ["running"]}) == [first]
    assert select(by_name, {"Name": "instance-state-name", "Values": ["terminated"]}) == [second]
    [instance] = [i for r in ec2.describe_instances(InstanceIds=[first])["Reservations"]
                  for i in r["Instances"]]
    assert {"Key": "Name", "Value": name} in instance["Tags"]
    ec2.terminate_instances(InstanceIds=[first, other])


def test_create_image_tag_specifications(srv, small):
    ec2 = srv.ec2()
    [instance_id] = launch(ec2, small["image"])
    wait_instance(ec2, instance_id, "running")
    marker = unique("tag")
    image_id = ec2.create_image(InstanceId=instance_id, Name=unique("tagged"), TagSpecifications=[
        {"ResourceType": "image", "Tags": [{"Key": "kind", "Value": "image-" + marker}]},
        {"ResourceType": "snapshot", "Tags": [{"Key": "kind", "Value": "snap-" + marker}]},
    ])["ImageId"]
    image = wait_image(ec2, image_id)
    assert {"Key": "kind", "Value": "image-" + marker} in image.get("Tags", []), image
    snapshot_id = root_snapshot(image)
    [snapshot] = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert {"Key": "kind", "Value": "snap-" + marker} in snapshot.get("Tags", []), snapshot
    assert snapshot["State"] == "completed"
    found = ec2.describe_snapshots(
        Filters=[{"Name": "tag:kind", "Values": ["snap-" + marker]}])["Snapshots"]
    assert [s["SnapshotId"] for s in found] == [snapshot_id]
    back, _ = read_disk(srv.ebs(), snapshot_id, len(small["disk"]))
    assert_same_disk(back, small["disk"], "the created image's snapshot")
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_copy_image_client_token(srv, small):
    west = srv.ec2(region="us-west-2")
    token = uuid.uuid4().hex
    name = unique("idem")
    first = west.copy_image(SourceRegion="us-east-1", SourceImageId=small["image"], Name=name,
                            ClientToken=token)["ImageId"]
    again = west.copy_image(SourceRegion="us-east-1", SourceImageId=small["image"], Name=name,
                            ClientToken=token)["ImageId"]
    assert again == first
    expect_error(west.copy_image, SourceRegion="us-east-1", SourceImageId=small["image"],
                 Name=name + "-other", ClientToken=token,
                 code="IdempotentParameterMismatch", status=400)
    copied = wait_image(west, first)
    named = west.describe_images(Owners=["self"],
                                 Filters=[{"Name": "name", "Values": [name]}])["Images"]
    assert [i["ImageId"] for i in named] == [first]
    back, _ = read_disk(srv.ebs(region="us-west-2"), root_snapshot(copied), len(small["disk"]))
    assert_same_disk(back, small["disk"], "the idempotent copy")


def test_incremental_snapshot_inherits_parent_blocks(srv):
    ebs = srv.ebs()
    parent_disk = list(make_disk(21, 8))
    parent = write_disk(ebs, parent_disk)
    child_disk = list(parent_disk)
    child_disk[1] = os.urandom(BLOCK)  # changed
    child_disk[2] = ZERO  # became zeros
    child_disk[6] = os.urandom(BLOCK)  # was partly zero
    child = start_snapshot(ebs, 1, ParentSnapshotId=parent)
    put_blocks(ebs, child, child_disk, [1, 2, 6])
    complete(ebs, child, 3)
    back, indices = read_disk(ebs, child, 8)
    assert indices == nonzero_indices(child_disk)
    assert_same_disk(back, child_disk, "the incremental snapshot")
    changed = ebs.list_changed_blocks(FirstSnapshotId=parent, SecondSnapshotId=child)
    assert sorted(b["BlockIndex"] for b in changed["ChangedBlocks"]) == [1, 2, 6], changed
    back, _ = read_disk(ebs, parent, 8)
    assert_same_disk(back, parent_disk, "the parent after its child was written")


# --------------------------------------------------------------------------
# 7. the AWS CLI


def test_aws_cli_flow(srv, tmp_path):
    def aws(*args, region="us-east-1"):
        code, out = srv.aws(*args, region=region)
        assert code == 0, f"aws {' '.join(args)} failed: {out}"
        return out

    started = aws("ebs", "start-snapshot", "--volume-size", "1", "--timeout", "60",
                  "--description", "written by the aws cli")
    snapshot_id = started["SnapshotId"]
    assert started["Status"] == "pending"
    disk = [os.urandom(BLOCK), make_disk(31, 3)[2], ZERO]
    for index, data in enumerate(disk):
        path = tmp_path / f"block{index}.bin"
        path.write_bytes(data)
        args = ["ebs", "put-snapshot-block", "--snapshot-id", snapshot_id,
                "--block-index", str(index), "--block-data", f"fileb://{path}",
                "--data-length", str(BLOCK), "--checksum", sha256_b64(data),
                "--checksum-algorithm", "SHA256"]
        code, put = srv.aws(*args)
        if code != 0 and "Blob values must be a path to a file" in put:
            # AWS CLI v1 takes a streaming blob as a plain path (v2: fileb://).
            args[args.index(f"fileb://{path}")] = str(path)
            code, put = srv.aws(*args)
        assert code == 0, f"aws {' '.join(args)} failed: {put}"
        assert put["Checksum"] == sha256_b64(data)
    done = aws("ebs", "complete-snapshot", "--snapshot-id", snapshot_id,
               "--changed-blocks-count", "3")
    assert done["Status"] == "completed"
    listing = aws("ebs", "list-snapshot-blocks", "--snapshot-id", snapshot_id)
    assert [b["BlockIndex"] for b in listing["Blocks"]] == [0, 1]
    out = tmp_path / "read0.bin"
    got = aws("ebs", "get-snapshot-block", "--snapshot-id", snapshot_id, "--block-index", "0",
              "--block-token", listing["Blocks"][0]["BlockToken"], str(out))
    assert got["DataLength"] == BLOCK
    assert out.read_bytes() == disk[0]

    mapping = ('[{"DeviceName":"/dev/xvda","Ebs":{"SnapshotId":"%s","DeleteOnTermination":true}}]'
               % snapshot_id)
    image_id = aws("ec2", "register-image", "--name", unique("cli"), "--architecture", "x86_64",
                   "--virtualization-type", "hvm", "--root-device-name", "/dev/xvda",
                   "--block-device-mappings", mapping)["ImageId"]
    run = aws("ec2", "run-instances", "--image-id", image_id, "--count", "1",
              "--instance-type", "t3.micro")
    instance_id = run["Instances"][0]["InstanceId"]
    ec2 = srv.ec2()
    wait_instance(ec2, instance_id, "running")
    created_id = aws("ec2", "create-image", "--instance-id", instance_id,
                     "--name", unique("cli-created"))["ImageId"]
    wait_image(ec2, created_id)
    described = aws("ec2", "describe-images", "--image-ids", created_id)["Images"][0]
    assert described["State"] == "available"
    assert described["SourceInstanceId"] == instance_id

    copied_id = aws("ec2", "copy-image", "--source-region", "us-east-1", "--source-image-id",
                    created_id, "--name", unique("cli-copied"), region="us-west-2")["ImageId"]
    final = wait_image(srv.ec2(region="us-west-2"), copied_id)
    final_snapshot = root_snapshot(final)
    snapshots = aws("ec2", "describe-snapshots", "--snapshot-ids", final_snapshot,
                    region="us-west-2")["Snapshots"]
    assert snapshots[0]["State"] == "completed"
    listing = aws("ebs", "list-snapshot-blocks", "--snapshot-id", final_snapshot,
                  region="us-west-2")
    assert [b["BlockIndex"] for b in listing["Blocks"]] == [0, 1]
    for block in listing["Blocks"]:
        out = tmp_path / f"final{block['BlockIndex']}.bin"
        aws("ebs", "get-snapshot-block", "--snapshot-id", final_snapshot,
            "--block-index", str(block["BlockIndex"]), "--block-token", block["BlockToken"],
            str(out), region="us-west-2")
        assert out.read_bytes() == disk[block["BlockIndex"]]
    ec2.terminate_instances(InstanceIds=[instance_id])
