"""Hostile input on every endpoint of both services: bounded bodies (413), and 4xx, never 5xx."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from hotstandby.peerauth import sign
from lab.localpair import ADDR, SECRET, TOKEN, Pair, running_pair

pytestmark = pytest.mark.integration

LIMITS = {"monitor": 16 * 1024, "arbiter": 64 * 1024}

HOSTILE: dict[str, bytes] = {
    "malformed JSON": b'{"target": "server1",',
    "not UTF-8": b'{"target": "\xff\xfe"}',
    "empty": b"",
    "null": b"null",
    "a list": b"[1, 2, 3]",
    "a string": b'"server1"',
    "wrong types": json.dumps({"target": 5, "force": "yes", "enabled": "on", "role": 1, "epoch": "one",
                               "hlc": [], "digest": {}, "heartbeat_interval_s": "fast", "monitor_port": True}).encode(),
    "huge numbers": b'{"target": "server1", "enabled": 1e999, "epoch": 1' + b"0" * 5000 + b', "monitor_port": -1e999}',
    "NaN and Infinity": b'{"target": NaN, "force": Infinity, "enabled": -Infinity, "epoch": NaN, '
                        b'"heartbeat_timeout_s": NaN}',
    "huge integer": b'{"failures_to_switch": ' + b"9" * 4400 + b"}",
    "nested arrays": b"[" * 5000 + b"]" * 5000,
    "nested objects": b'{"a":' * 2500 + b"1" + b"}" * 2500,
    "duplicate keys": b'{"enabled": true, "enabled": "x", "target": "server1", "target": 7}',
}


@pytest.fixture(scope="module")
def hostile_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """One started pair shared by these tests (they refuse input; the role may move, nothing crashes)."""
    with running_pair(tmp_path_factory.mktemp("hostile")) as pair:
        pair.start()
        pair.wait_active("server1", pair.bound_r1 + 5)
        yield pair


def operations(pair: Pair) -> list[tuple[str, str, str, bool]]:
    """(service, method, path, takes a JSON body) for every operation in both OpenAPI documents."""
    ops = []
    for service, base in (("monitor", pair.monitor_url("server2")), ("arbiter", pair.arbiter_url("server2"))):
        spec = httpx.get(base + "/openapi.json", timeout=5).json()
        for path, methods in spec["paths"].items():
            for method, op in methods.items():
                ops.append((service, method.upper(), path, "requestBody" in op))
    ops.append(("monitor", "GET", "/IPSCFG/admin/monitor.aspx", False))
    return ops


def send(pair: Pair, service: str, method: str, path: str, body: bytes, **extra: str) -> httpx.Response:
    base = pair.monitor_url("server2") if service == "monitor" else pair.arbiter_url("server2")
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"} | extra
    if path.startswith("/peer/"):
        headers |= sign(SECRET, method, path, body, node="server1")
    return httpx.request(method, base + path, content=body, headers=headers, timeout=15)


def test_every_operation_is_covered(hostile_pair: Pair) -> None:
    """Both services' documents list the endpoints of SPEC section 3, bodies included (the loops below use them)."""
    ops = {(s, m, p): b for s, m, p, b in operations(hostile_pair)}
    for key in [("arbiter", "POST", "/switch"), ("arbiter", "PUT", "/config"), ("arbiter", "POST", "/maintenance"),
                ("arbiter", "POST", "/peer/heartbeat"), ("arbiter", "POST", "/peer/role")]:
        assert ops[key] is True, key
    assert ("monitor", "POST", "/cti/restart") in ops and ("arbiter", "GET", "/peer/config") in ops


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_bodies_get_4xx_never_5xx(hostile_pair: Pair, kind: str) -> None:
    """Every endpoint that parses a body refuses a hostile one with 4xx; the others ignore it, and none answers 5xx."""
    bad = []
    for service, method, path, takes_body in operations(hostile_pair):
        r = send(hostile_pair, service, method, path, HOSTILE[kind])
        if r.status_code >= 500 or (takes_body and not 400 <= r.status_code < 500):
            bad.append(f"{method} {service}{path}: {r.status_code} {r.text[:120]}")
    assert bad == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_bodies_over_the_limit_are_413(hostile_pair: Pair, chunked: bool) -> None:
    """A body over the service's limit is 413 on every endpoint that reads one, declared or streamed; never 5xx."""
    bad = []
    for service, method, path, takes_body in operations(hostile_pair):
        body = b'{"x": "' + b"a" * LIMITS[service] + b'"}'
        if chunked:
            base = hostile_pair.monitor_url("server2") if service == "monitor" else hostile_pair.arbiter_url("server2")
            headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
            if path.startswith("/peer/"):
                headers |= sign(SECRET, method, path, body, node="server1")
            r = httpx.request(method, base + path, content=iter([body[:1000], body[1000:]]), headers=headers,
                              timeout=15)
        else:
            r = send(hostile_pair, service, method, path, body)
        if r.status_code >= 500 or (takes_body and r.status_code != 413) or (not chunked and r.status_code != 413):
            bad.append(f"{method} {service}{path}: {r.status_code}")
    assert bad == []


@pytest.mark.parametrize(("service", "path"), [
    ("arbiter", "/logs?day=99999-99-99"), ("arbiter", "/logs?day=2026-02-30"), ("arbiter", "/logs?day=" + "1" * 5000),
    ("arbiter", "/logs?format=xml"), ("arbiter", "/peer/config?digest=" + "d" * 5000),
    ("monitor", "/monitor?mod=" + "X" * 5000), ("monitor", "/monitor?mod=%00%ff"),
    ("monitor", "/monitor?mod=FT&mod=NONE"),
])
def test_hostile_query_strings_get_4xx_or_a_plain_answer(hostile_pair: Pair, service: str, path: str) -> None:
    """Oversized, impossible or binary query values are refused with 4xx (or answered plainly), never 5xx."""
    r = send(hostile_pair, service, "GET", path, b"")
    assert r.status_code < 500


@pytest.mark.parametrize(("length", "status"), [(10**9, 413), (10**30, 400)])
def test_a_huge_content_length_is_refused_before_reading(hostile_pair: Pair, length: int, status: int) -> None:
    """A declared 1 GB body is 413 at once (10**30 fails HTTP parsing: 400); nothing is waited for or buffered."""
    host, port = ADDR["server2"], hostile_pair.arbiter_port
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(f"PUT /config HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{}}".encode())
        head = sock.recv(4096).decode(errors="replace")
    assert head.split(" ", 2)[:2] == ["HTTP/1.1", str(status)], head
