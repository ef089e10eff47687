"""Fixtures for Hangar's integration suite.

Every test talks to the REAL `hangar` binary over HTTP: a session-scoped
server with two strict accounts (alice, bob) for the bulk of the suite, and a
factory (`make_server`) for tests that need a fresh, killed, restarted or
specially configured server (dev mode, trace logging, ...).

Binary: $HANGAR_BIN, default $CARGO_TARGET_DIR/debug/hangar, else
<repo>/target/debug/hangar (build it with
`cargo build -p hangar`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.exceptions
import pytest

REPO = Path(__file__).resolve().parents[2]
HANGAR_BIN = Path(os.environ.get("HANGAR_BIN")
                  or Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "debug" / "hangar")

REGIONS = ["us-east-1", "us-west-2", "eu-west-1"]

ACCOUNTS = {
    "alice": {
        "id": "111111111111",
        "access_key_id": "AKIAEXAMPLEALICE0001",
        "secret_access_key": "alice-secret-key-0001-XXXXXXXXXXXX",
    },
    "bob": {
        "id": "222222222222",
        "access_key_id": "AKIAEXAMPLEBOB000002",
        "secret_access_key": "bob-secret-key-0002-XXXXXXXXXXXXXX",
    },
}
ALICE = ACCOUNTS["alice"]["id"]
BOB = ACCOUNTS["bob"]["id"]

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
STARTUP_TIMEOUT = 10.0


# --------------------------------------------------------------------------
# small helpers usable from tests


def unique(prefix: str = "it") -> str:
    """A unique, AMI-name-safe string."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def random_snapshot_id() -> str:
    return "snap-" + uuid.uuid4().hex[:17]


def error_code(exc) -> str:
    return exc.response["Error"]["Code"]


def http_status(exc_or_response) -> int:
    response = getattr(exc_or_response, "response", exc_or_response)
    return response["ResponseMetadata"]["HTTPStatusCode"]


def strip_namespaces(root: ET.Element) -> ET.Element:
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]
    return root


@dataclass
class Reply:
    """A raw HTTP answer: status, headers, body text and parsed XML (or None)."""

    status: int
    headers: dict
    text: str
    xml: Optional[ET.Element] = None

    @property
    def code(self) -> Optional[str]:
        if self.xml is None:
            return None
        node = self.xml.find("./Errors/Error/Code")
        return None if node is None else node.text

    @property
    def message(self) -> Optional[str]:
        if self.xml is None:
            return None
        node = self.xml.find("./Errors/Error/Message")
        return None if node is None else node.text


def parse_reply(status: int, headers, raw: bytes) -> Reply:
    text = raw.decode("utf-8", errors="replace")
    root = None
    try:
        root = strip_namespaces(ET.fromstring(raw)) if raw.strip() else None
    except ET.ParseError:
        root = None
    return Reply(status, {k.lower(): v for k, v in dict(headers).items()}, text, root)


def http(method: str, url: str, data: Optional[bytes] = None, headers: Optional[dict] = None,
         timeout: float = 30.0) -> Reply:
    """Sends one request with urllib; HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return parse_reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return parse_reply(error.code, error.headers, error.read())


def sign_request(request: botocore.awsrequest.AWSRequest, key: str, secret: str, region: str,
                 when: Optional[_dt.datetime] = None, query_auth: bool = False,
                 expires: int = 300) -> None:
    """Signs `request` in place with SigV4 for service ec2, optionally as if at `when` (UTC)."""
    credentials = botocore.credentials.Credentials(key, secret)
    if query_auth:
        signer = botocore.auth.SigV4QueryAuth(credentials, "ec2", region, expires=expires)
    else:
        signer = botocore.auth.SigV4Auth(credentials, "ec2", region)
    if when is None:
        signer.add_auth(request)
        return
    naive = when.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    if hasattr(botocore.auth, "get_current_datetime"):
        # Recent botocore reads the clock through this one function.
        clock = mock.patch("botocore.auth.get_current_datetime", return_value=naive)
    else:  # older botocore calls datetime.datetime.utcnow() itself

        class _Frozen(_dt.datetime):
            @classmethod
            def utcnow(cls):
                return naive

        clock = mock.patch("botocore.auth.datetime.datetime", _Frozen)
    with clock:
        signer.add_auth(request)
    stamp = naive.strftime("%Y%m%dT%H%M%SZ")
    signed_at = request.context.get("timestamp")
    assert signed_at == stamp, f"could not sign as of {stamp} (botocore signed {signed_at})"


def send_prepared(request: botocore.awsrequest.AWSRequest, timeout: float = 30.0) -> Reply:
    prepared = request.prepare()
    body = prepared.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = {k: v for k, v in prepared.headers.items()}
    return http(prepared.method, prepared.url, data=body, headers=headers, timeout=timeout)


# --------------------------------------------------------------------------
# the server

# Building a boto3 client loads the EC2 model (~0.3 s): share one session and
# reuse clients (they keep no state between calls).
_SESSION = []
_CLIENTS: dict = {}


def _boto_session():
    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    return _SESSION[0]


def accounts_toml(accounts=ACCOUNTS) -> str:
    blocks = []
    for account in accounts.values():
        blocks.append(
            "[[accounts]]\n"
            f'id = "{account["id"]}"\n'
            f'access_key_id = "{account["access_key_id"]}"\n'
            f'secret_access_key = "{account["secret_access_key"]}"\n'
        )
    return "\n".join(blocks)


def config_toml(port: int, data_dir: Path, *, dev_mode: bool = False, extra: str = "",
                listen_host: str = "127.0.0.1") -> str:
    regions = ", ".join(f'"{region}"' for region in REGIONS)
    text = (
        f'listen = "{listen_host}:{port}"\n'
        f'data_dir = "{data_dir}"\n'
        f"regions = [{regions}]\n"
    )
    if extra:
        text += extra.rstrip("\n") + "\n"
    if not dev_mode:
        text += accounts_toml()
    return text


@dataclass
class HangarServer:
    """One running `hangar serve` process and helpers to talk to it."""

    workdir: Path
    dev_mode: bool = False
    extra_config: str = ""
    env_extra: dict = field(default_factory=dict)
    data_dir: Optional[Path] = None
    # The CA that signed the server's certificate: set it when extra_config
    # names tls_cert/tls_key, and every helper speaks HTTPS trusting it.
    ca_bundle: Optional[Path] = None
    port: int = 0
    process: Optional[subprocess.Popen] = None
    log_path: Optional[Path] = None
    config_path: Optional[Path] = None
    starts: int = 0
    snapshots_supported: Optional[bool] = None
    _snapshots: dict = field(default_factory=dict)

    def __post_init__(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.data_dir is None:
            self.data_dir = self.workdir / "data"
        self.config_path = self.workdir / "hangar.toml"
        self.log_path = self.workdir / "hangar.log"

    # -- lifecycle -----------------------------------------------------------

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.ca_bundle else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> "HangarServer":
        if not HANGAR_BIN.exists():
            pytest.fail(
                f"hangar binary not found at {HANGAR_BIN}: run `cargo build -p hangar` "
                "or set HANGAR_BIN",
                pytrace=False,
            )
        assert self.process is None, "already running"
        if not self.port:
            self.port = free_port()
        self.config_path.write_text(
            config_toml(self.port, self.data_dir, dev_mode=self.dev_mode, extra=self.extra_config)
        )
        env = dict(os.environ)
        env.pop("HANGAR_CONFIG", None)
        env.pop("HANGAR_LOG", None)
        env.update(self.env_extra)
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"--- start #{self.starts} ---\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [str(HANGAR_BIN), "serve", "--config", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
        )
        log.close()
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                context = ssl.create_default_context(cafile=str(self.ca_bundle)) \
                    if self.ca_bundle else None
                with urllib.request.urlopen(self.endpoint + "/_hangar/health", timeout=1,
                                            context=context) as resp:
                    if resp.status == 200:
                        return
            except Exception as error:  # noqa: BLE001 - keep polling
                last_error = error
            time.sleep(0.05)
        code = self.process.poll()
        self.stop()
        pytest.fail(
            f"hangar did not become healthy within {timeout}s (exit code {code}, last error "
            f"{last_error!r}); its stderr:\n{self.log_text()}",
            pytrace=False,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> Optional[int]:
        if self.process is None:
            return None
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        return process.returncode

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> "HangarServer":
        self.stop()
        return self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- clients -------------------------------------------------------------

    def credentials(self, account) -> tuple:
        if isinstance(account, tuple):
            return account
        for name, data in ACCOUNTS.items():
            if account in (name, data["id"], data["access_key_id"]):
                return data["access_key_id"], data["secret_access_key"]
        raise KeyError(f"unknown account {account!r}")

    def client(self, account="alice", region: str = "us-east-1", service: str = "ec2",
               validate: bool = True):
        """A boto3 client; `account` is alice/bob (or an id) or a (key, secret) tuple.

        validate=False turns botocore's client-side parameter validation off, so
        that the server's own validation is what gets tested."""
        key, secret = self.credentials(account)
        cache_key = (key, secret, region, service, validate, self.port, self.ca_bundle)
        cached = _CLIENTS.get(cache_key)
        if cached is not None:
            return cached
        client = _boto_session().client(
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            verify=str(self.ca_bundle) if self.ca_bundle else None,
            config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=60,
                                          parameter_validation=validate),
        )
        client._hangar_account = (key, secret)
        client._hangar_region = region
        _CLIENTS[cache_key] = client
        return client

    def aws(self, *args, account="alice", region: str = "us-east-1", timeout: float = 60.0):
        """Runs the AWS CLI (v1) against the server. Returns (returncode, json or stderr)."""
        key, secret = self.credentials(account)
        env = {
            key_: value
            for key_, value in os.environ.items()
            if not key_.startswith("AWS_")
        }
        missing = str(self.workdir / "no-such-aws-file")
        env.update(
            AWS_ACCESS_KEY_ID=key,
            AWS_SECRET_ACCESS_KEY=secret,
            AWS_DEFAULT_REGION=region,
            AWS_REGION=region,
            AWS_CONFIG_FILE=missing,
            AWS_SHARED_CREDENTIALS_FILE=missing,
            AWS_MAX_ATTEMPTS="1",
            AWS_RETRY_MODE="standard",
            AWS_PAGER="",
        )
        command = [sys.executable, "-m", "awscli", *args, "--endpoint-url", self.endpoint,
                   "--output", "json"]
        if self.ca_bundle:
            command += ["--ca-bundle", str(self.ca_bundle)]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            return result.returncode, result.stderr
        out = result.stdout.strip()
        return result.returncode, (json.loads(out) if out else None)

    def raw(self, params=None, *, body: Optional[str] = None, account="alice",
            region: str = "us-east-1", method: str = "POST", when: Optional[_dt.datetime] = None,
            query_auth: bool = False, expires: int = 300, sign: bool = True,
            extra_headers: Optional[dict] = None, timeout: float = 30.0) -> Reply:
        """Sends a hand-built EC2 Query request signed with SigV4 (header or query form).

        `params`: list of (name, value) pairs or a dict; or a pre-encoded `body`.
        POST puts the form in the body; GET puts it in the query string.
        """
        if body is None:
            pairs = list(params.items()) if isinstance(params, dict) else list(params or [])
            body = urllib.parse.urlencode(pairs)
        url = self.endpoint + "/"
        headers = dict(extra_headers or {})
        if method == "GET":
            if body:
                url += "?" + body
            data = None
        else:
            headers.setdefault("Content-Type", FORM_CONTENT_TYPE)
            data = body
        request = botocore.awsrequest.AWSRequest(method=method, url=url, data=data, headers=headers)
        if sign:
            key, secret = self.credentials(account)
            sign_request(request, key, secret, region, when=when, query_auth=query_auth,
                         expires=expires)
        return send_prepared(request, timeout=timeout)

    # -- snapshots -----------------------------------------------------------------

    # Error codes of the EBS direct API itself: when StartSnapshot answers one
    # of these, the server does serve EBS and the error is real.
    EBS_ERRORS = {"ValidationException", "AccessDeniedException", "ResourceNotFoundException",
                  "ConflictException", "RequestThrottledException",
                  "ServiceQuotaExceededException", "ConcurrentLimitExceededException",
                  "InternalServerException"}

    def new_snapshot(self, ec2, size_gib: int = 1) -> str:
        """A completed, empty snapshot owned by the account and region of `ec2`,
        made through the EBS direct API (StartSnapshot + CompleteSnapshot).

        While the server does not serve EBS, a public catalogue snapshot of the
        region instead (one that `shared_snapshot` does not hand out)."""
        if self.snapshots_supported is False:
            return self._fallback_snapshot(ec2, 1)
        account, region = ec2._hangar_account, ec2._hangar_region
        ebs = self.client(account, region=region, service="ebs")
        try:
            started = ebs.start_snapshot(VolumeSize=size_gib, Timeout=60,
                                         Description="hangar integration test")
        except botocore.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in self.EBS_ERRORS:
                raise
            self.snapshots_supported = False
            return self._fallback_snapshot(ec2, 1)
        self.snapshots_supported = True
        snapshot_id = started["SnapshotId"]
        completed = ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=0)
        assert completed["Status"] in ("completed", "pending"), completed
        if completed["Status"] != "completed":
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                found = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
                if found and found[0]["State"] == "completed":
                    break
                time.sleep(0.1)
        return snapshot_id

    def _fallback_snapshot(self, ec2, index: int) -> str:
        """The root snapshot of a catalogue image (public, completed, 8 GiB); a
        random well-formed ID when there is no catalogue."""
        images = sorted(ec2.describe_images(Owners=["amazon"])["Images"],
                        key=lambda image: image["Name"])
        snapshots = [mapping["Ebs"]["SnapshotId"] for image in images
                     for mapping in image.get("BlockDeviceMappings", [])
                     if mapping.get("Ebs", {}).get("SnapshotId")]
        if len(snapshots) > index:
            return snapshots[index]
        return random_snapshot_id()

    def shared_snapshot(self, ec2) -> str:
        """One snapshot per account and region, reused by images that do not
        care which snapshot backs them."""
        key = (ec2._hangar_account, ec2._hangar_region)
        if key not in self._snapshots:
            fresh = self.new_snapshot(ec2)
            if self.snapshots_supported is False:
                fresh = self._fallback_snapshot(ec2, 0)
            self._snapshots[key] = fresh
        return self._snapshots[key]

    # -- convenience -----------------------------------------------------------

    def register(self, ec2, name: Optional[str] = None, *, tags: Optional[dict] = None,
                 snapshot_id: Optional[str] = None, **kwargs) -> str:
        """Registers a minimal EBS-backed image and returns its id."""
        name = name or unique("img")
        params = dict(
            Name=name,
            Architecture="x86_64",
            VirtualizationType="hvm",
            RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[
                {
                    "DeviceName": "/dev/xvda",
                    "Ebs": {"SnapshotId": snapshot_id or self.shared_snapshot(ec2),
                            "VolumeSize": 8},
                }
            ],
        )
        if tags:
            params["TagSpecifications"] = [
                {"ResourceType": "image", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            ]
        params.update(kwargs)
        response = ec2.register_image(**params)
        assert http_status(response) == 200
        return response["ImageId"]



@pytest.fixture(scope="session")
def _session_tmp():
    path = Path(tempfile.mkdtemp(prefix="hangar-it-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


_SHARED: dict = {}


@pytest.fixture(scope="session")
def server(_session_tmp) -> HangarServer:
    """The shared strict-auth server (two accounts). Tests must use unique names."""
    hangar = HangarServer(_session_tmp / "shared").start()
    _SHARED["server"] = hangar
    yield hangar
    _SHARED.pop("server", None)
    hangar.stop()


@pytest.fixture(autouse=True)
def _shared_server_survives():
    """Fails the test during which the shared server died (crash, panic, killed)
    with the end of its log, then restarts it on the same data directory so
    that one crash does not fail every later test."""
    yield
    hangar = _SHARED.get("server")
    if hangar is None or hangar.process is None:
        return
    code = hangar.process.poll()
    if code is None:
        return
    hangar.process = None
    tail = "\n".join(hangar.log_text().splitlines()[-40:])
    hangar.start()
    pytest.fail(f"the shared hangar server exited with {code} during this test; "
                f"end of its log:\n{tail}", pytrace=False)


@pytest.fixture
def make_server(tmp_path):
    """Factory for function-scoped servers: make_server(dev_mode=..., extra_config=..., ...)."""
    started = []

    def factory(name: str = "srv", start: bool = True, **kwargs) -> HangarServer:
        hangar = HangarServer(tmp_path / name, **kwargs)
        started.append(hangar)
        return hangar.start() if start else hangar

    yield factory
    for hangar in started:
        hangar.stop()


@pytest.fixture
def alice(server):
    return server.client("alice")


@pytest.fixture
def bob(server):
    return server.client("bob")
