#!/usr/bin/env python3
"""Signs a handful of realistic requests with botocore and writes them as a
JSON fixture (tests/botocore_vectors.json) that tests/botocore.rs verifies.

botocore is the oracle: its SigV4Auth / SigV4QueryAuth / S3SigV4Auth /
S3SigV4QueryAuth classes sign the requests exactly as the AWS CLI and boto3
would, at a fixed time. Regenerate with

    python3 crates/hangar-auth/tests/gen_botocore_vectors.py

(written with botocore 1.43). The output is deterministic.
"""

import datetime
import hashlib
import json
import os
import sys
from unittest import mock
from urllib.parse import urlsplit

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY = "AKIAHANGAREXAMPLE01"
SECRET_KEY = "hangar/Secret+Key/EXAMPLE0123456789abcdef"
NOW = datetime.datetime(2026, 3, 14, 15, 9, 26)  # naive UTC, like botocore's clock
EC2_ENDPOINT = "http://127.0.0.1:8773"
S3_ENDPOINT = "https://s3.hangar.test:8443"

CREDS = Credentials(ACCESS_KEY, SECRET_KEY)


def sign(name, auth, method, url, *, data=b"", headers=None, params=None,
         context=None, encoding, note):
    request = AWSRequest(method=method, url=url, data=data,
                         headers=headers or {}, params=params or {})
    if context:
        request.context.update(context)

    captured = {}
    original_cr = type(auth).canonical_request

    def capture(self, req):
        captured["canonical_request"] = original_cr(self, req)
        return captured["canonical_request"]

    with mock.patch.object(botocore.auth, "get_current_datetime",
                           lambda *a, **k: NOW), \
            mock.patch.object(type(auth), "canonical_request", capture):
        auth.add_auth(request)

    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    # What the server receives: the HTTP client adds Host from the URL.
    headers_out = [["Host", botocore.auth._host_from_url(prepared.url)]]
    headers_out += [[k, v if isinstance(v, str) else v.decode()]
                    for k, v in prepared.headers.items()]
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    return {
        "name": name,
        "note": note,
        "service": auth._service_name,
        "region": auth._region_name,
        "encoding": encoding,
        "method": prepared.method,
        "path": parts.path,
        "query": parts.query,
        "headers": headers_out,
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "canonical_request": captured["canonical_request"],
    }


def main():
    out_path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "botocore_vectors.json")
    form = "application/x-www-form-urlencoded; charset=utf-8"
    ec2 = lambda: botocore.auth.SigV4Auth(CREDS, "ec2", "us-east-1")  # noqa: E731
    cases = [
        sign("ec2-describe-images-post",
             ec2(), "POST", EC2_ENDPOINT + "/",
             data=(b"Action=DescribeImages&Version=2016-11-15"
                   b"&ImageId.1=ami-0123456789abcdef0&ImageId.2=ami-0fedcba9876543210"
                   b"&Owner.1=self&Filter.1.Name=name&Filter.1.Value.1=my%20image%2A"),
             headers={"Content-Type": form, "User-Agent": "aws-cli/2.15 botocore"},
             encoding="double",
             note="EC2 query protocol: form body, header auth, payload hash of the body"),
        sign("ec2-register-image-eu",
             botocore.auth.SigV4Auth(CREDS, "ec2", "eu-west-1"), "POST",
             EC2_ENDPOINT + "/",
             data=(b"Action=RegisterImage&Version=2016-11-15&Name=hangar%20%E2%9C%93"
                   b"&Architecture=x86_64&RootDeviceName=%2Fdev%2Fsda1"),
             headers={"Content-Type": form},
             encoding="double",
             note="other region, UTF-8 and '/' in the form body"),
        sign("ec2-get-with-date-header",
             ec2(), "GET", EC2_ENDPOINT + "/",
             params={"Action": "DescribeRegions", "Version": "2016-11-15"},
             headers={"Date": "placeholder"},
             encoding="double",
             note="Date header (RFC 2822, -0000) instead of X-Amz-Date"),
        sign("ec2-presigned-get",
             botocore.auth.SigV4QueryAuth(CREDS, "ec2", "us-east-1", expires=300),
             "GET", EC2_ENDPOINT + "/",
             params={"Action": "DescribeImages", "Version": "2016-11-15",
                     "ImageId.1": "ami-0123456789abcdef0",
                     "Filter.1.Value.1": "a b+c/d~e*"},
             encoding="double",
             note="presigned EC2 GET: hex sha256 of the empty body is signed"),
        sign("ec2-presigned-post-form-moved-to-query",
             botocore.auth.SigV4QueryAuth(CREDS, "ec2", "us-east-1", expires=3600),
             "POST", EC2_ENDPOINT + "/",
             data={"Action": "DescribeImages", "Version": "2016-11-15",
                   "Owner.1": "self"},
             headers={"Content-Type": form},
             encoding="double",
             note="SigV4QueryAuth moves form params into the query and drops the body"),
        sign("s3-put-unsigned-payload",
             botocore.auth.S3SigV4Auth(CREDS, "s3", "us-east-1"), "PUT",
             S3_ENDPOINT + "/images/disk.raw",
             data=b"\x00" * 4096,
             headers={"Content-Type": "application/octet-stream",
                      "Content-MD5": "Dtk3ZTB+4s0Mf7rU9yHwqA=="},
             context={"payload_signing_enabled": False},
             encoding="single",
             note="S3 PUT over https with x-amz-content-sha256: UNSIGNED-PAYLOAD"),
        sign("s3-put-signed-payload",
             botocore.auth.S3SigV4Auth(CREDS, "s3", "us-east-1"), "PUT",
             "http://s3.hangar.test/images/manifest.json",
             data=b'{"image":"ami-0123456789abcdef0"}\n',
             headers={"Content-Type": "application/json"},
             encoding="single",
             note="S3 PUT over http: x-amz-content-sha256 is the body hash"),
        sign("s3-get-key-with-spaces-and-unicode",
             botocore.auth.S3SigV4Auth(CREDS, "s3", "us-east-1"), "GET",
             S3_ENDPOINT + "/bucket/my%20dir/f%C3%BCr%20%E2%9C%93%20%21%28x%29.txt",
             context={"payload_signing_enabled": False},
             encoding="single",
             note="S3 key with spaces and UTF-8, encoded once by the client"),
        sign("s3-get-key-with-dot-segments",
             botocore.auth.S3SigV4Auth(CREDS, "s3", "us-east-1"), "GET",
             S3_ENDPOINT + "/bucket/a//b/./c/../d",
             params={"versionId": "3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", "acl": ""},
             encoding="single",
             note="S3 does not normalise the path; query values with '/' and '+'"),
        sign("s3-presigned-get",
             botocore.auth.S3SigV4QueryAuth(CREDS, "s3", "us-east-1", expires=3600),
             "GET", S3_ENDPOINT + "/bucket/key%20with%20space.bin",
             params={"response-content-disposition": 'attachment; filename="x y.bin"'},
             encoding="single",
             note="S3 presigned GET: UNSIGNED-PAYLOAD"),
    ]
    doc = {
        "generator": "tests/gen_botocore_vectors.py",
        "botocore_version": botocore.__version__,
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "now": NOW.strftime("%Y%m%dT%H%M%SZ"),
        "cases": cases,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
