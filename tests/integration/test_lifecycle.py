"""Process-level behaviour: durability across SIGKILL and restart, start-up
failures, graceful stop, and dev mode (no accounts)."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import (HANGAR_BIN, REGIONS, accounts_toml, config_toml, error_code,
                      free_port, http, http_status, unique)


# --------------------------------------------------------------------------
# durability


def test_image_survives_sigkill(make_server):
    hangar = make_server("durable")
    alice = hangar.client("alice")
    name = unique("durable")
    image_id = hangar.register(alice, name, tags={"Keep": "me"}, Description="kept")
    alice.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": "222222222222"}]})
    hangar.kill9()  # right after the 200s

    hangar.start()
    image = alice.describe_images(ImageIds=[image_id])["Images"][0]
    assert image["Name"] == name
    assert image["Description"] == "kept"
    assert {t["Key"]: t["Value"] for t in image["Tags"]} == {"Keep": "me"}
    bob = hangar.client("bob")
    assert bob.describe_images(ImageIds=[image_id])["Images"][0]["ImageId"] == image_id
    # the name is still taken after the restart
    with pytest.raises(ClientError) as caught:
        hangar.register(alice, name)
    assert error_code(caught.value) == "InvalidAMIName.Duplicate"


def test_many_writes_survive_sigkill(make_server):
    hangar = make_server("durable-many")
    alice = hangar.client("alice")
    ids = [hangar.register(alice) for _ in range(10)]
    alice.deregister_image(ImageId=ids[0])
    hangar.kill9()
    hangar.start()
    found = {i["ImageId"]: i["State"] for i in alice.describe_images(ImageIds=ids)["Images"]}
    assert set(found) == set(ids)
    assert found[ids[0]] == "deregistered"
    assert all(found[i] == "available" for i in ids[1:])


def test_graceful_stop_exits_zero(make_server):
    hangar = make_server("graceful")
    hangar.client("alice").describe_regions()
    code = hangar.stop(signal.SIGTERM)
    assert code == 0, hangar.log_text()
    assert "panicked" not in hangar.log_text()
    hangar.start()
    code = hangar.stop(signal.SIGINT)
    assert code == 0, hangar.log_text()


# --------------------------------------------------------------------------
# start-up failures


def run_binary(config_text: str, workdir: Path, *extra_args):
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "hangar.toml"
    config.write_text(config_text)
    result = subprocess.run(
        [str(HANGAR_BIN), "serve", "--config", str(config), *extra_args],
        capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL,
    )
    return result


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hangar: error:"), result.stderr
    assert "panicked" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def good_config(tmp_path, port=None):
    return config_toml(port or free_port(), tmp_path / "data")


def test_startup_bad_toml(tmp_path):
    text = good_config(tmp_path).replace('regions = [', 'regions = [[', 1)
    assert_one_line_error(run_binary(text, tmp_path))


def test_startup_unterminated_string(tmp_path):
    result = run_binary('listen = "127.0.0.1:1\n', tmp_path)
    assert_one_line_error(result)


def test_startup_unknown_key(tmp_path):
    text = good_config(tmp_path) + '\n[limits]\nmax_body_byts = 5\n'
    assert_one_line_error(run_binary(text, tmp_path), "max_body_byts")
    text = "lisen = \"127.0.0.1:1\"\n" + good_config(tmp_path)
    assert_one_line_error(run_binary(text, tmp_path), "lisen")


def test_startup_missing_config_file(tmp_path):
    result = subprocess.run(
        [str(HANGAR_BIN), "serve", "--config", str(tmp_path / "nope.toml")],
        capture_output=True, text=True, timeout=10)
    assert_one_line_error(result)


def test_startup_port_in_use(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_binary(config_toml(port, tmp_path / "data"), tmp_path)
    assert_one_line_error(result, str(port))
    assert not (tmp_path / "data" / "meta.sqlite").exists(), "a failed start left a database"


def test_startup_unwritable_data_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_binary(config_toml(free_port(), blocker / "data"), tmp_path)
    assert_one_line_error(result)


def test_startup_data_dir_is_a_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert_one_line_error(run_binary(config_toml(free_port(), blocker), tmp_path))


def test_startup_corrupt_database(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.sqlite").write_bytes(b"this is not a database" * 100)
    assert_one_line_error(run_binary(config_toml(free_port(), tmp_path / "data"), tmp_path))


def test_startup_bad_port(tmp_path):
    assert_one_line_error(run_binary(config_toml(99999, tmp_path / "data"), tmp_path))


def test_startup_dev_mode_not_on_loopback(tmp_path):
    text = config_toml(free_port(), tmp_path / "data", dev_mode=True, listen_host="0.0.0.0")
    assert_one_line_error(run_binary(text, tmp_path), "loopback")


def test_startup_dev_mode_listen_flag_not_on_loopback(tmp_path):
    text = config_toml(free_port(), tmp_path / "data", dev_mode=True)
    result = run_binary(text, tmp_path, "--listen", f"0.0.0.0:{free_port()}")
    assert_one_line_error(result, "loopback")


@pytest.mark.parametrize("bad", [
    'regions = []',
    'regions = ["US East"]',
    'listen = "not-an-address"',
])
def test_startup_bad_values(tmp_path, bad):
    key = bad.split(" ", 1)[0]
    lines = [line for line in good_config(tmp_path).splitlines() if not line.startswith(key + " ")]
    text = bad + "\n" + "\n".join(lines) + "\n"
    assert_one_line_error(run_binary(text, tmp_path))


def test_startup_bad_account(tmp_path):
    text = (f'listen = "127.0.0.1:{free_port()}"\ndata_dir = "{tmp_path / "data"}"\n'
            '[[accounts]]\nid = "12345"\naccess_key_id = "AKIAEXAMPLEALICE0001"\n'
            'secret_access_key = "alice-secret-key-0001-XXXXXXXXXXXX"\n')
    result = run_binary(text, tmp_path)
    assert_one_line_error(result)
    assert "alice-secret-key-0001-XXXXXXXXXXXX" not in result.stderr


def test_startup_short_secret_not_echoed(tmp_path):
    text = (f'listen = "127.0.0.1:{free_port()}"\ndata_dir = "{tmp_path / "data"}"\n'
            '[[accounts]]\nid = "111111111111"\naccess_key_id = "AKIAEXAMPLEALICE0001"\n'
            'secret_access_key = "tooshort-secret"\n')
    result = run_binary(text, tmp_path)
    assert_one_line_error(result)
    assert "tooshort-secret" not in result.stderr


def test_startup_duplicate_access_key(tmp_path):
    text = good_config(tmp_path) + "\n" + accounts_toml(
        {"x": {"id": "333333333333", "access_key_id": "AKIAEXAMPLEALICE0001",
               "secret_access_key": "another-secret-key-XXXXXXXXXXXXXXXX"}})
    assert_one_line_error(run_binary(text, tmp_path))


# --------------------------------------------------------------------------
# dev mode


@pytest.fixture
def dev(make_server):
    return make_server("dev", dev_mode=True)


def test_dev_mode_any_key_works(dev):
    for creds in [("AKIAANYTHINGATALL01", "whatever"), ("x", "y")]:
        ec2 = dev.client(creds)
        response = ec2.describe_images(Owners=["amazon"])
        assert http_status(response) == 200
        assert len(response["Images"]) >= 4


def test_dev_mode_account_from_key(dev):
    as_333 = dev.client(("333333333333", "anything-at-all"))
    image_id = dev.register(as_333, unique("dev"))
    image = as_333.describe_images(ImageIds=[image_id])["Images"][0]
    assert image["OwnerId"] == "333333333333"
    # another key is another account: the image is private
    other = dev.client(("AKIADEVDEFAULTKEY01", "x"))
    with pytest.raises(ClientError) as caught:
        other.describe_images(ImageIds=[image_id])
    assert error_code(caught.value) == "InvalidAMIID.NotFound"
    own = dev.register(other, unique("dev-default"))
    assert other.describe_images(ImageIds=[own])["Images"][0]["OwnerId"] == "123456789012"


def test_dev_mode_still_checks_region(dev):
    ec2 = dev.client(("AKIAANYTHINGATALL01", "whatever"), region="ap-south-1")
    with pytest.raises(ClientError) as caught:
        ec2.describe_regions()
    assert error_code(caught.value) == "AuthFailure"


@pytest.mark.parametrize("path", ["/_hangar/reset", "/moto-api/reset"])
def test_dev_mode_reset(dev, path):
    ec2 = dev.client(("333333333333", "x"))
    image_id = dev.register(ec2, unique("wipe"))
    catalogue = sorted(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"])
    reply = http("POST", dev.endpoint + path, data=b"")
    assert reply.status == 200, reply.text
    with pytest.raises(ClientError) as caught:
        ec2.describe_images(ImageIds=[image_id])
    assert error_code(caught.value) == "InvalidAMIID.NotFound"
    assert ec2.describe_images(Owners=["self"])["Images"] == []
    after = sorted(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"])
    assert after == catalogue
    for region in REGIONS:
        west = dev.client(("333333333333", "x"), region=region)
        assert len(west.describe_images(Owners=["amazon"])["Images"]) >= 4


def test_reset_forbidden_with_accounts(server, alice):
    image_id = server.register(alice)
    for path in ("/_hangar/reset", "/moto-api/reset"):
        reply = http("POST", server.endpoint + path, data=b"")
        assert reply.status == 403, reply.text
    assert alice.describe_images(ImageIds=[image_id])["Images"][0]["State"] == "available"


def test_reset_needs_post(dev):
    reply = http("GET", dev.endpoint + "/_hangar/reset")
    assert reply.status in (403, 404, 405), reply.text


# --------------------------------------------------------------------------
# configuration knobs seen from outside


def test_deregistered_visibility_window(make_server):
    hangar = make_server("window", extra_config="[images]\nderegistered_visible_secs = 1")
    alice = hangar.client("alice")
    image_id = hangar.register(alice)
    alice.deregister_image(ImageId=image_id)
    assert alice.describe_images(ImageIds=[image_id])["Images"][0]["State"] == "deregistered"
    time.sleep(1.3)
    with pytest.raises(ClientError) as caught:
        alice.describe_images(ImageIds=[image_id])
    assert error_code(caught.value) == "InvalidAMIID.NotFound"


def test_catalog_off(make_server):
    hangar = make_server("nocat", extra_config="catalog = false")
    assert hangar.client("alice").describe_images(Owners=["amazon"])["Images"] == []


def test_configured_limits(make_server):
    hangar = make_server("limits", extra_config="[limits]\nmax_body_bytes = 4096\nmax_parameters = 50")
    body = "Action=DescribeImages&Version=2016-11-15&Filter.1.Name=name&Filter.1.Value.1=" + "a" * 5000
    reply = hangar.raw(body=body)
    assert reply.status == 413 and reply.code == "RequestEntityTooLarge", reply.text
    pairs = [("Action", "DescribeImages"), ("Version", "2016-11-15"), ("Filter.1.Name", "name")]
    reply = hangar.raw(pairs + [(f"Filter.1.Value.{n}", "x") for n in range(1, 60)])
    assert reply.status == 400 and reply.code == "InvalidParameterValue", reply.text
    reply = hangar.raw(pairs + [(f"Filter.1.Value.{n}", "x") for n in range(1, 40)])
    assert reply.status == 200, reply.text


def _wait_health(port, process, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if http("GET", f"http://127.0.0.1:{port}/_hangar/health", timeout=1).status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def test_listen_and_data_dir_flags_and_env_config(tmp_path):
    file_port, flag_port = free_port(), free_port()
    config = tmp_path / "hangar.toml"
    config.write_text(config_toml(file_port, tmp_path / "file-data"))
    env = dict(os.environ, HANGAR_CONFIG=str(config))
    process = subprocess.Popen(
        [str(HANGAR_BIN), "serve", "--listen", f"127.0.0.1:{flag_port}",
         "--data-dir", str(tmp_path / "flag-data")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        assert _wait_health(flag_port, process), process.stderr.read() if process.poll() else ""
        assert (tmp_path / "flag-data" / "meta.sqlite").exists()
        assert not (tmp_path / "file-data").exists()
        # accounts came from the file named by HANGAR_CONFIG: strict auth
        reply = http("GET", f"http://127.0.0.1:{flag_port}/")
        assert reply.code == "MissingAuthenticationToken"
        reply = http("POST", f"http://127.0.0.1:{flag_port}/_hangar/reset", data=b"")
        assert reply.status == 403
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_log_is_plain_text_when_not_a_terminal(make_server):
    """stderr redirected to a file gets plain lines: no ANSI colour escapes
    (they break grep and log shippers)."""
    hangar = make_server("plainlog")
    hangar.client("alice").describe_regions()
    hangar.stop()
    log = hangar.log_text()
    assert "hangar is ready" in log
    escaped = [line for line in log.splitlines() if "\x1b[" in line]
    assert not escaped, f"{len(escaped)} log lines carry ANSI escapes, e.g. {escaped[0][:120]!r}"
