"""Request size limits: big bodies and many parameters are 4xx, never 5xx,
and the server keeps answering."""

import socket

import pytest

from conftest import FORM_CONTENT_TYPE

PREFIX = "Action=DescribeImages&Version=2016-11-15&Filter.1.Name=name&Filter.1.Value.1="


def still_answers(server):
    reply = server.raw({"Action": "DescribeRegions", "Version": "2016-11-15"})
    assert reply.status == 200, reply.text


def test_body_over_the_limit_is_413(server):
    body = PREFIX + "a" * (3 * 1024 * 1024)
    reply = server.raw(body=body, timeout=60)
    assert reply.status == 413, (reply.status, reply.text[:300])
    assert reply.code == "RequestEntityTooLarge", reply.text[:300]
    still_answers(server)


def test_body_just_under_the_limit_is_served(server):
    body = PREFIX + "a" * (2 * 1024 * 1024 - len(PREFIX) - 1024)
    reply = server.raw(body=body, timeout=60)
    # within the body limit, but one value over 256 KiB: refused by validation
    assert reply.status == 400, reply.text[:300]
    assert reply.code == "InvalidParameterValue", reply.text[:300]
    still_answers(server)


def test_unsigned_huge_chunked_body_never_5xx(server):
    """A chunked body (no Content-Length) over the limit: the server answers
    413 or closes the connection early; it never answers 5xx or falls over."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    head = (
        "POST / HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: {FORM_CONTENT_TYPE}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    received = b""
    try:
        sock.sendall(head)
        chunk = b"a" * 65536
        for _ in range(48):  # 3 MiB
            sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server may stop reading once the limit is passed
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
            if b"</Response>" in received:
                break
    except OSError:
        pass
    finally:
        sock.close()
    if received:
        status = int(received.split(b" ", 2)[1])
        assert 400 <= status < 500, received[:300]
    still_answers(server)


def test_too_many_parameters(server):
    pairs = [("Action", "DescribeImages"), ("Version", "2016-11-15"), ("Filter.1.Name", "name")]
    pairs += [(f"Filter.1.Value.{n}", "x") for n in range(1, 25001)]
    reply = server.raw(pairs, timeout=60)
    assert reply.status == 400, reply.text[:300]
    assert reply.code in ("InvalidParameterValue", "MalformedQueryString",
                          "FilterLimitExceeded"), reply.text[:300]
    still_answers(server)


def test_many_ids_are_fine_below_the_limit(server, alice):
    ids = [f"ami-{n:017x}" for n in range(1, 501)]
    reply = server.raw([("Action", "DescribeImages"), ("Version", "2016-11-15")]
                       + [(f"ImageId.{n}", i) for n, i in enumerate(ids, 1)])
    assert reply.status == 400, reply.text[:300]
    assert reply.code == "InvalidAMIID.NotFound"


def test_very_long_url_is_4xx(server):
    reply = server.raw(body=PREFIX + "a" * (1024 * 1024), method="GET", timeout=60)
    assert 400 <= reply.status < 500, (reply.status, reply.text[:300])
    still_answers(server)


@pytest.mark.parametrize("body", [
    "Action=DescribeImages&Version=2016-11-15&%ZZ=1",
    "Action=DescribeImages&Version=2016-11-15&=empty-name",
    "Action=DescribeImages&Version=2016-11-15&ImageId.1=ami-0123456789abcdef0&ImageId.1=x",
    "Action=DescribeImages&Version=2016-11-15&Filter.x.Name=name",
    "Action=DescribeImages&Version=2016-11-15&Filter.0.Name=name&Filter.0.Value.1=x",
    "Action=DescribeImages&Version=2016-11-15&Filter.99999999999.Name=name",
    "Action=DescribeImages&Version=2016-11-15&MaxResults=99999999999999999999999",
    "Action=DescribeImages&Version=2016-11-15&Owner=self",
    "\xff\xfe\x00garbage",
])
def test_malformed_forms_are_4xx(server, body):
    reply = server.raw(body=body)
    assert 400 <= reply.status < 500, (reply.status, reply.text[:300])
    assert reply.code, reply.text
    still_answers(server)


def test_value_limit_boundary(server):
    ok = server.raw(body=PREFIX + "a" * (256 * 1024))
    assert ok.status == 200, ok.text[:300]
    too_long = server.raw(body=PREFIX + "a" * (256 * 1024 + 1))
    assert too_long.status == 400 and too_long.code == "InvalidParameterValue", too_long.text[:300]


def test_parameter_names_are_case_sensitive(server):
    reply = server.raw({"Action": "DescribeImages", "Version": "2016-11-15",
                        "imageId.1": "ami-0123456789abcdef0"})
    assert (reply.status, reply.code) == (400, "UnknownParameter"), reply.text
    assert "imageId.1" in reply.message


def test_repeated_parameter(server):
    reply = server.raw(body="Action=DescribeImages&Version=2016-11-15&Owner.1=self&Owner.1=amazon")
    assert (reply.status, reply.code) == (400, "InvalidParameterValue"), reply.text


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_http_methods(server, method):
    reply = server.raw({"Action": "DescribeRegions", "Version": "2016-11-15"}, method=method)
    assert reply.status == 400, reply.text
    assert reply.code == "InvalidHttpRequest", reply.text
