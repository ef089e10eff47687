"""The client commands of the `hangar` binary, driven as subprocesses:
`hangar report unused` and `hangar clock show|advance` (docs/cli.md)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess

import pytest

from conftest import ACCOUNTS, HANGAR_BIN, free_port
from test_tls import pki as tls_pki  # noqa: F401 - the module-scoped CA fixture
from test_tls import tls_toml

KEYS = ["ImageId", "Name", "CreationDate", "LastLaunchedTime", "DeprecationTime",
        "DeregistrationProtection", "InstancesUsing", "Ancestry"]
DAY = 86_400

DEV_CLOCK_CONFIG = 'dev_clock = true\n[usage]\nreport_delay = "0s"\n'


def clean_env(home, **extra) -> dict:
    """The process environment without any AWS_ variable, HOME pointing at
    an empty directory (no ~/.aws), plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env["HOME"] = str(home)
    env.update(extra)
    return env


def alice_env(home, server, region="us-east-1", **extra) -> dict:
    settings = dict(
        AWS_ACCESS_KEY_ID=ACCOUNTS["alice"]["access_key_id"],
        AWS_SECRET_ACCESS_KEY=ACCOUNTS["alice"]["secret_access_key"],
        AWS_REGION=region,
        AWS_ENDPOINT_URL=server.endpoint,
    )
    settings.update(extra)
    return clean_env(home, **settings)


def hangar(*args, env, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([str(HANGAR_BIN), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def report(*args, env) -> subprocess.CompletedProcess:
    return hangar("report", "unused", *args, env=env)


def report_json(days, env, *extra) -> dict:
    """Runs the JSON report and returns it keyed by ImageId."""
    result = report("--days", str(days), "--format", "json", *extra, env=env)
    assert result.returncode == 0, result.stderr
    # No progress bar when stderr is not a terminal.
    assert result.stderr == ""
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    return {row["ImageId"]: row for row in rows}


def test_report_json_shape_with_environment_credentials(server, alice, tmp_path):
    image_id = server.register(alice)
    described = alice.describe_images(ImageIds=[image_id])["Images"][0]
    env = alice_env(tmp_path, server)

    # Just registered: not listed with --days 30, listed with --days 0.
    assert image_id not in report_json(30, env)
    rows = report_json(0, env)
    assert image_id in rows
    row = rows[image_id]
    result = report("--days", "0", "--format", "json", env=env)
    first = json.loads(result.stdout)[0]
    assert list(first.keys()) == KEYS, "exactly these keys, in this order"
    assert list(row.keys()) == KEYS
    assert row["Name"] == described["Name"]
    assert row["CreationDate"] == described["CreationDate"]
    assert row["LastLaunchedTime"] is None
    assert row["DeprecationTime"] is None
    assert row["DeregistrationProtection"] == described.get("DeregistrationProtection",
                                                           "disabled")
    assert row["InstancesUsing"] == 0
    # GetImageAncestry of a registered image: the image alone.
    assert row["Ancestry"] == [image_id]
    # Only the caller's images: bob's do not appear in alice's report.
    bob_image = server.register(server.client("bob"))
    assert bob_image not in report_json(0, env)
    # Another region: another set of images.
    assert image_id not in report_json(0, alice_env(tmp_path, server, region="us-west-2"))
    assert image_id in report_json(0, env, "--region", "us-east-1")


def test_report_ancestry_of_a_copy(server, alice, tmp_path):
    parent = server.register(alice)
    west = server.client("alice", region="us-west-2")
    copy = west.copy_image(SourceImageId=parent, SourceRegion="us-east-1",
                           Name="report-copy")["ImageId"]
    rows = report_json(0, alice_env(tmp_path, server, region="us-west-2"))
    assert rows[copy]["Ancestry"] == [copy, parent], "the image first, then its source"
    assert parent not in rows


def test_report_reads_a_profile(server, alice, tmp_path):
    image_id = server.register(alice)
    credentials = tmp_path / "credentials"
    config = tmp_path / "config"
    credentials.write_text(
        "[hangar-it]\n"
        f"aws_access_key_id = {ACCOUNTS['alice']['access_key_id']}\n"
        f"aws_secret_access_key = {ACCOUNTS['alice']['secret_access_key']}\n"
        "[default]\n"
        f"aws_access_key_id = {ACCOUNTS['bob']['access_key_id']}\n"
        f"aws_secret_access_key = {ACCOUNTS['bob']['secret_access_key']}\n"
    )
    config.write_text(
        "[profile hangar-it]\n"
        "region = us-east-1\n"
        f"endpoint_url = {server.endpoint}\n"
        "[default]\n"
        "region = us-east-1\n"
        f"endpoint_url = {server.endpoint}\n"
    )
    files = dict(AWS_SHARED_CREDENTIALS_FILE=str(credentials), AWS_CONFIG_FILE=str(config))

    # --profile: region, endpoint and keys all from the files.
    assert image_id in report_json(0, clean_env(tmp_path, **files), "--profile", "hangar-it")
    # AWS_PROFILE does the same.
    assert image_id in report_json(0, clean_env(tmp_path, AWS_PROFILE="hangar-it", **files))
    # The default profile is bob: alice's image is not his.
    assert image_id not in report_json(0, clean_env(tmp_path, **files))
    # The files at their default place, ~/.aws.
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text(credentials.read_text())
    (tmp_path / ".aws" / "config").write_text(config.read_text())
    assert image_id in report_json(0, clean_env(tmp_path), "--profile", "hangar-it")
    # A profile that does not exist: a clear error.
    result = report("--days", "1", "--profile", "nosuch", env=clean_env(tmp_path, **files))
    assert result.returncode == 1
    assert "nosuch" in result.stderr


def test_report_csv_and_table(server, alice, tmp_path):
    image_id = server.register(alice)
    env = alice_env(tmp_path, server)

    result = report("--days", "0", "--format", "csv", env=env)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == KEYS
    assert all(len(row) == len(KEYS) for row in rows)
    mine = [row for row in rows[1:] if row[0] == image_id]
    assert len(mine) == 1
    assert mine[0][KEYS.index("LastLaunchedTime")] == ""
    assert mine[0][KEYS.index("InstancesUsing")] == "0"

    result = report("--days", "0", env=env)  # table is the default
    assert result.returncode == 0, result.stderr
    lines = result.stdout.rstrip("\n").split("\n")
    header = lines[0]
    assert header.split() == KEYS
    mine = [line for line in lines[1:] if line.startswith(image_id + " ")]
    assert len(mine) == 1
    # Aligned: each value starts under its column's name.
    described = alice.describe_images(ImageIds=[image_id])["Images"][0]
    assert mine[0].index(described["CreationDate"]) == header.index("CreationDate")
    assert mine[0].index(" 0 ") + 1 == header.index("InstancesUsing")

    # Nothing unused: json is [], csv is the header only.
    many = str(365 * 200)
    result = report("--days", many, "--format", "json", env=env)
    assert result.returncode == 0 and json.loads(result.stdout) == []
    result = report("--days", many, "--format", "csv", env=env)
    assert result.returncode == 0 and result.stdout.strip() == ",".join(KEYS)


@pytest.mark.parametrize("args", [
    ["--days", "-1"],
    ["--days", "abc"],
    ["--days", "1.5"],
    [],
    ["--days", "1", "--format", "xml"],
])
def test_report_bad_arguments(server, tmp_path, args):
    result = report(*args, env=alice_env(tmp_path, server))
    assert result.returncode == 2, result
    assert "error:" in result.stderr
    assert result.stdout == ""


def test_report_errors_exit_non_zero(server, tmp_path):
    # No credentials anywhere.
    env = clean_env(tmp_path, AWS_REGION="us-east-1", AWS_ENDPOINT_URL=server.endpoint)
    result = report("--days", "1", env=env)
    assert result.returncode == 1
    assert "no credentials" in result.stderr
    # No region.
    env = alice_env(tmp_path, server)
    del env["AWS_REGION"]
    result = report("--days", "1", env=env)
    assert result.returncode == 1 and "no region" in result.stderr
    # Wrong keys: the EC2 error's code and message.
    env = alice_env(tmp_path, server, AWS_SECRET_ACCESS_KEY="wrong")
    result = report("--days", "1", env=env)
    assert result.returncode == 1
    assert "SignatureDoesNotMatch" in result.stderr, result.stderr
    # A region the server does not serve.
    result = report("--days", "1", "--region", "ap-south-1", env=alice_env(tmp_path, server))
    assert result.returncode == 1
    assert "An error occurred (" in result.stderr, result.stderr
    # Nobody listening.
    env = alice_env(tmp_path, server, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    result = report("--days", "1", env=env)
    assert result.returncode == 1 and "could not connect" in result.stderr
    # Not a URL.
    result = report("--days", "1", "--endpoint-url", "localhost:1", env=alice_env(tmp_path, server))
    assert result.returncode == 1 and "http://" in result.stderr


def test_clock_on_a_server_without_dev_clock(server, tmp_path):
    env = clean_env(tmp_path)
    result = hangar("clock", "show", "--endpoint-url", server.endpoint, env=env)
    assert result.returncode == 0, result.stderr
    assert "offset_seconds: 0" in result.stdout.splitlines()
    result = hangar("clock", "advance", "90d", "--endpoint-url", server.endpoint, env=env)
    assert result.returncode == 1
    assert "403" in result.stderr and "dev_clock" in result.stderr, result.stderr
    # Unreachable.
    result = hangar("clock", "advance", "1d", "--endpoint-url",
                    f"http://127.0.0.1:{free_port()}", env=env)
    assert result.returncode == 1 and "could not connect" in result.stderr
    # No endpoint at all.
    result = hangar("clock", "show", env=env)
    assert result.returncode == 1 and "--endpoint-url" in result.stderr


def test_report_follows_launches_on_the_dev_clock(make_server, tmp_path):
    srv = make_server(extra_config=DEV_CLOCK_CONFIG)
    ec2 = srv.client("alice")
    env = alice_env(tmp_path, srv)
    launched = srv.register(ec2)
    idle = srv.register(ec2)
    instance = ec2.run_instances(ImageId=launched, MinCount=1, MaxCount=1)[
        "Instances"][0]["InstanceId"]

    rows = report_json(0, env)
    assert set(rows) == {launched, idle}
    assert rows[launched]["LastLaunchedTime"] is not None, "report_delay 0s: shown at once"
    assert rows[launched]["InstancesUsing"] == 1
    assert rows[idle]["LastLaunchedTime"] is None
    assert report_json(30, env) == {}

    # The clock, through AWS_ENDPOINT_URL: a bad duration, then 31 days.
    result = hangar("clock", "advance", "soon", env=env)
    assert result.returncode == 1 and "400" in result.stderr, result.stderr
    result = hangar("clock", "advance", "31d", env=env)
    assert result.returncode == 0, result.stderr
    assert f"offset_seconds: {31 * DAY}" in result.stdout.splitlines()
    result = hangar("clock", "show", "--endpoint-url", srv.endpoint, env=clean_env(tmp_path))
    assert result.returncode == 0 and f"offset_seconds: {31 * DAY}" in result.stdout

    # On the service's clock both are now 31 days idle; the instance still runs.
    rows = report_json(30, env)
    assert set(rows) == {launched, idle}
    assert rows[launched]["InstancesUsing"] == 1
    assert rows[idle]["InstancesUsing"] == 0
    assert report_json(32, env) == {}

    # A terminated instance uses nothing (an hour lets it finish shutting down).
    ec2.terminate_instances(InstanceIds=[instance])
    assert hangar("clock", "advance", "1h", env=env).returncode == 0
    assert report_json(30, env)[launched]["InstancesUsing"] == 0

    # A new launch takes the image off the list.
    ec2.run_instances(ImageId=launched, MinCount=1, MaxCount=1)
    rows = report_json(30, env)
    assert set(rows) == {idle}
    csv_rows = list(csv.reader(io.StringIO(
        report("--days", "30", "--format", "csv", env=env).stdout)))
    assert [row[0] for row in csv_rows[1:]] == [idle]


def test_report_and_clock_over_https(make_server, tmp_path, tls_pki):
    srv = make_server("tls", extra_config=tls_toml(tls_pki.cert, tls_pki.key) + DEV_CLOCK_CONFIG,
                      ca_bundle=tls_pki.ca)
    assert srv.endpoint.startswith("https://")
    image_id = srv.register(srv.client("alice"))
    env = alice_env(tmp_path, srv)
    # The CA from --ca-bundle, or from AWS_CA_BUNDLE.
    assert image_id in report_json(0, env, "--ca-bundle", str(tls_pki.ca))
    assert image_id in report_json(0, dict(env, AWS_CA_BUNDLE=str(tls_pki.ca)))
    result = hangar("clock", "advance", "2h", "--ca-bundle", str(tls_pki.ca), env=env)
    assert result.returncode == 0, result.stderr
    assert "offset_seconds: 7200" in result.stdout.splitlines()
    # A CA that did not sign the server's certificate: refused.
    result = report("--days", "0", "--ca-bundle", str(tls_pki.other_ca), env=env)
    assert result.returncode == 1 and "TLS handshake" in result.stderr, result.stderr
