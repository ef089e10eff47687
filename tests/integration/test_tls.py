"""HTTPS on the one listener (`tls_cert` + `tls_key`; docs/tls.md): boto3 and
the AWS CLI over TLS trusting a private CA, clients that fail their handshake,
start-up errors for bad certificate/key files, dev mode and graceful stop.

The certificates are made with the `openssl` CLI, with the commands that
docs/tls.md shows."""

import hashlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, SSLError

from conftest import HANGAR_BIN, config_toml, free_port, unique

MiB = 1024 * 1024


@dataclass
class Pki:
    ca: Path  # the CA certificate clients trust
    cert: Path  # the server's certificate (127.0.0.1, localhost), signed by ca
    key: Path  # its private key
    other_key: Path  # a key that matches no certificate
    other_ca: Path  # a CA that signed nothing here


def openssl(*args, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"openssl {' '.join(args)}:\n{result.stderr}"


def make_ca(directory: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "30",
            "-subj", f"/CN=Hangar test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    make_ca(directory, "ca")
    make_ca(directory, "other-ca")
    # The server's key and a request naming 127.0.0.1 and localhost, then the
    # certificate signed by the CA, extensions copied from the request.
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext", "keyUsage=critical,digitalSignature",
            "-addext", "extendedKeyUsage=serverAuth", cwd=directory)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "30", "-copy_extensions", "copy",
            "-out", "server.pem", cwd=directory)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", "other.key", cwd=directory)
    return Pki(ca=directory / "ca.pem", cert=directory / "server.pem",
               key=directory / "server.key", other_key=directory / "other.key",
               other_ca=directory / "other-ca.pem")


def tls_toml(cert: Path, key: Path) -> str:
    return f'tls_cert = "{cert}"\ntls_key = "{key}"\n'


@pytest.fixture
def tls_server(make_server, pki):
    """A strict-mode server (alice and bob) on HTTPS."""
    return make_server("tls", extra_config=tls_toml(pki.cert, pki.key), ca_bundle=pki.ca)


def https_health(port: int, cafile: Path) -> int:
    context = ssl.create_default_context(cafile=str(cafile))
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/_hangar/health", timeout=5,
                                context=context) as response:
        return response.status


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------
# serving


def test_ready_line_says_tls(tls_server, make_server):
    assert tls_server.endpoint.startswith("https://")
    ready = [line for line in tls_server.log_text().splitlines() if "hangar is ready" in line]
    assert ready and "tls=true" in ready[-1], tls_server.log_text()
    plain = make_server("plain")
    ready = [line for line in plain.log_text().splitlines() if "hangar is ready" in line]
    assert ready and "tls=false" in ready[-1], plain.log_text()


def test_boto3_ec2_and_s3_over_https(tls_server):
    ec2 = tls_server.client("alice")
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    assert images, "the starter catalogue answers over HTTPS"

    s3 = tls_server.client("alice", service="s3")
    bucket = unique("tls")
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(256 * 1024) + b"end"
    s3.put_object(Bucket=bucket, Key="dir/blob.bin", Body=body)
    got = s3.get_object(Bucket=bucket, Key="dir/blob.bin")
    assert got["Body"].read() == body
    assert got["ContentLength"] == len(body)
    # strict mode still holds over TLS: bob does not see alice's object
    bob = tls_server.client("bob", service="s3")
    with pytest.raises(ClientError) as caught:
        bob.get_object(Bucket=bucket, Key="dir/blob.bin")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] in (403, 404)


def test_boto3_refuses_an_untrusted_certificate(tls_server, pki):
    import boto3
    import botocore.config

    s3 = boto3.session.Session().client(
        "s3", endpoint_url=tls_server.endpoint, region_name="us-east-1",
        aws_access_key_id="AKIAEXAMPLEALICE0001",
        aws_secret_access_key="alice-secret-key-0001-XXXXXXXXXXXX",
        verify=str(pki.other_ca),
        config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(SSLError):
        s3.list_buckets()
    # ... and the server goes on serving
    assert tls_server.client("alice", service="s3").list_buckets()["ResponseMetadata"][
        "HTTPStatusCode"] == 200


def test_aws_cli_copies_up_and_down(tls_server, tmp_path):
    """`aws s3 cp` over HTTPS sends aws-chunked bodies (STREAMING-UNSIGNED-
    PAYLOAD-TRAILER with a trailing CRC) and checks what it reads back.

    5 MiB stays under the CLI's 8 MiB multipart threshold; 20 MiB goes up
    with `s3 cp` (multipart), or, while multipart uploads answer
    NotImplemented, in one `s3api put-object`."""
    bucket = unique("tls-cli")
    code, out = tls_server.aws("s3api", "create-bucket", "--bucket", bucket)
    assert code == 0, out

    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(5 * MiB))
    code, out = tls_server.aws("s3", "cp", "--only-show-errors", str(small), f"s3://{bucket}/small.bin")
    assert code == 0, out
    back = tmp_path / "small.back"
    code, out = tls_server.aws("s3", "cp", "--only-show-errors", f"s3://{bucket}/small.bin", str(back))
    assert code == 0, out
    assert sha256_file(back) == sha256_file(small)

    large = tmp_path / "large.bin"
    with open(large, "wb") as stream:
        for _ in range(20):
            stream.write(os.urandom(MiB))
    code, out = tls_server.aws("s3", "cp", "--only-show-errors", str(large),
                               f"s3://{bucket}/large.bin", timeout=120)
    if code != 0 and "NotImplemented" in out and "MultipartUpload" in out:
        # no multipart uploads yet: the same bytes in one PutObject
        code, out = tls_server.aws("s3api", "put-object", "--bucket", bucket, "--key",
                                   "large.bin", "--body", str(large), timeout=120)
    assert code == 0, out
    back = tmp_path / "large.back"
    # 20 MiB down with `s3 cp` (ranged GETs above 8 MiB, if the CLI splits)
    code, out = tls_server.aws("s3", "cp", "--only-show-errors", f"s3://{bucket}/large.bin", str(back), timeout=120)
    assert code == 0, out
    assert back.stat().st_size == 20 * MiB
    assert sha256_file(back) == sha256_file(large)
    code, out = tls_server.aws("s3api", "head-object", "--bucket", bucket, "--key", "large.bin")
    assert code == 0, out
    assert out["ContentLength"] == 20 * MiB


def test_plain_http_on_the_tls_port_fails_cleanly(tls_server, pki):
    # urllib speaking plain HTTP: no HTTP answer comes back
    with pytest.raises(Exception) as caught:  # noqa: B017 - any failure, never an answer
        urllib.request.urlopen(f"http://127.0.0.1:{tls_server.port}/_hangar/health", timeout=5)
    assert not isinstance(caught.value, urllib.error.HTTPError)
    # garbage, a half handshake and a hang-up, each on its own connection
    for payload in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05hello", b""):
        with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as sock:
            if payload:
                sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            try:
                reply = sock.recv(1024)
            except (ConnectionResetError, socket.timeout):
                reply = b""
            assert not reply.startswith(b"HTTP/"), reply
    # a client that does not trust the certificate
    with pytest.raises(urllib.error.URLError) as caught:
        https_health(tls_server.port, pki.other_ca)
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError), caught.value
    # the server is still up and serving
    assert tls_server.process.poll() is None
    assert https_health(tls_server.port, pki.ca) == 200
    assert tls_server.client("alice").describe_regions()["Regions"]
    assert "panicked" not in tls_server.log_text()


def test_graceful_stop_with_tls(tls_server):
    tls_server.client("alice").describe_regions()
    assert tls_server.stop(signal.SIGTERM) == 0, tls_server.log_text()
    tls_server.start()
    tls_server.client("alice").describe_regions()
    assert tls_server.stop(signal.SIGINT) == 0, tls_server.log_text()
    assert "panicked" not in tls_server.log_text()


def test_dev_mode_with_tls(make_server, pki):
    hangar = make_server("dev-tls", dev_mode=True, extra_config=tls_toml(pki.cert, pki.key),
                         ca_bundle=pki.ca)
    ec2 = hangar.client(("AKIDANYTHINGATALL123", "whatever-secret-value"))
    assert ec2.describe_images(Owners=["amazon"])["Images"]


def test_dev_mode_s3_put_get_over_tls(make_server, pki):
    """boto3 sends aws-chunked bodies over HTTPS: dev mode, which verifies no
    signature, must still decode them."""
    hangar = make_server("dev-tls-s3", dev_mode=True, extra_config=tls_toml(pki.cert, pki.key),
                         ca_bundle=pki.ca)
    s3 = hangar.client(("111111111111", "whatever-secret-value"), service="s3")
    bucket = unique("dev-tls")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 1000)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x" * 1000


# --------------------------------------------------------------------------
# start-up errors: one line, exit 1, nothing left behind


def run_binary(config_text: str, workdir: Path) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "hangar.toml"
    config.write_text(config_text)
    env = {key: value for key, value in os.environ.items()
           if key not in ("HANGAR_CONFIG", "HANGAR_LOG")}
    return subprocess.run([str(HANGAR_BIN), "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=10,
                          stdin=subprocess.DEVNULL, env=env)


BAD_CONFIGS = {
    "only tls_cert": (lambda p: f'tls_cert = "{p.cert}"\n', "tls_key is not"),
    "only tls_key": (lambda p: f'tls_key = "{p.key}"\n', "tls_cert is not"),
    "missing cert file": (lambda p: tls_toml(p.cert.with_name("nope.pem"), p.key),
                          "cannot read tls_cert"),
    "missing key file": (lambda p: tls_toml(p.cert, p.key.with_name("nope.key")),
                         "cannot read tls_key"),
    "cert path is a directory": (lambda p: tls_toml(p.cert.parent, p.key),
                                 "cannot read tls_cert"),
    "no certificate in the PEM": (lambda p: tls_toml(p.key, p.key), "holds no certificate"),
    "no private key in the PEM": (lambda p: tls_toml(p.cert, p.cert), "holds no private key"),
    "key does not match": (lambda p: tls_toml(p.cert, p.other_key), "does not match"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_tls_config_is_one_line_exit_1(case, pki, tmp_path):
    extra, expected = BAD_CONFIGS[case]
    data_dir = tmp_path / "data"
    text = config_toml(free_port(), data_dir, extra=extra(pki))
    result = run_binary(text, tmp_path)
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hangar: error: "), lines[0]
    assert expected in lines[0], lines[0]
    assert not data_dir.exists(), "a failed start leaves no data directory"


def test_dev_mode_with_tls_stays_on_loopback(pki, tmp_path):
    text = config_toml(free_port(), tmp_path / "data", dev_mode=True,
                       extra=tls_toml(pki.cert, pki.key), listen_host="0.0.0.0")
    result = run_binary(text, tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hangar: error: "), result.stderr
    assert "loopback" in lines[0]


def test_server_stays_up_across_many_failed_handshakes(tls_server, pki):
    deadline = time.monotonic() + 10
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as sock:
            sock.sendall(b"\x16\x03\x01\x02\x00" + os.urandom(64))
        assert time.monotonic() < deadline
    assert https_health(tls_server.port, pki.ca) == 200
