"""What the connections answer below the server (services/fastpath.py: the monitor's probes, the compact
exchange) is what the documented routes answer, on a real node: status, headers and body, kept and closed
connections, a request split across reads, pipelined requests, a connection handed to the application
mid-way, and the exchange's refusals."""

from __future__ import annotations

import json
import socket
import time

import pytest

from hotstandby.hlc import Timestamp
from hotstandby.model import Role
from hotstandby.peerauth import H_COMPACT, sign_compact
from lab.localpair import ADDR, SECRET, Pair
from services.arbiter import wire

pytestmark = pytest.mark.integration

# A '%' in the path is never answered below the server: the same probe, decoded by uvicorn, reaches the route.
FAST, ROUTED = "/IPSCFG/admin/monitor.aspx", "/IPSCFG/admin/monitor%2Easpx"


def _read_answer(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes, bytes]:
    """One answer (head, body) from ``sock``, and what is left after it."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {buf!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    fields = (line.split(b":") for line in head.split(b"\r\n")[1:])
    length = int(next(value for name, value in fields if name.lower() == b"content-length"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return head, rest[:length], rest[length:]


def _shape(head: bytes, body: bytes) -> tuple[str, dict[str, str], str]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return lines[0], headers, body.decode()


def _ask(pair: Pair, node: str, raw: bytes, port: int | None = None) -> tuple[tuple[str, dict[str, str], str], bool]:
    """One request on a new connection: the answer's shape, and whether the server then closed."""
    with socket.create_connection((ADDR[node], port or pair.monitor_port), timeout=5) as s:
        s.sendall(raw)
        head, body, rest = _read_answer(s, b"")
        s.settimeout(0.3)
        try:
            closed = rest == b"" and s.recv(1) == b""
        except TimeoutError:
            closed = False
        return _shape(head, body), closed


@pytest.mark.parametrize("query", ["mod=FT", "mod=ft", "mod=NONE", "", "mod=IPSWS", "mod=BOGUS", "mod=NONE&mod=FT"])
@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_probe_answers_as_the_route(started: Pair, query: str, version: str) -> None:
    for node in ADDR:  # the ACTIVE (200 to FT) and the STANDBY (503)
        fast = _ask(started, node, f"GET {FAST}?{query} {version}\r\nHost: x\r\n\r\n".encode())
        routed = _ask(started, node, f"GET {ROUTED}?{query} {version}\r\nHost: x\r\n\r\n".encode())
        assert fast == routed, (node, query, version)
    status = {node: _ask(started, node, f"GET {FAST}?mod=FT HTTP/1.1\r\n\r\n".encode())[0][0] for node in ADDR}
    assert status == {"server1": "HTTP/1.1 200 OK", "server2": "HTTP/1.1 503 Service Unavailable"}


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
@pytest.mark.parametrize("query", ["", "?x=1"])
def test_whoami_answers_as_the_route(started: Pair, version: str, query: str) -> None:
    """What a client asking the VIP which node serves it gets (services/monitor/hotpath.py): the route's JSON."""
    for node in ADDR:
        fast = _ask(started, node, f"GET /whoami{query} {version}\r\nHost: x\r\n\r\n".encode())
        routed = _ask(started, node, f"GET /whoam%69{query} {version}\r\nHost: x\r\n\r\n".encode())
        assert fast == routed, (node, version)
        assert fast[0][0] == "HTTP/1.1 200 OK" and json.loads(fast[0][2])["node_id"] == node
    # Not a plain GET of that path: the application's answer (its 405 names the methods it takes).
    post, _ = _ask(started, "server1", b"POST /whoami HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert post[0] == "HTTP/1.1 405 Method Not Allowed"


def test_one_connection_kept_split_pipelined_then_handed_over(started: Pair) -> None:
    with socket.create_connection((ADDR["server1"], started.monitor_port), timeout=5) as s:
        probe = f"GET {FAST}?mod=FT HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(probe[:10])  # a head split across reads: its first part leaves alone, and is read
        time.sleep(0.05)  # before the rest is sent (an interleaving forced, not a wait for a condition)
        s.sendall(probe[10:])
        head, body, rest = _read_answer(s, b"")
        assert (head.split(b"\r\n")[0], body) == (b"HTTP/1.1 200 OK", b"ACTIVE")
        # Two probes in one write, then an application request on the same connection, then a probe again:
        # the connection is the application's from the third request on, and answers all the same.
        s.sendall(probe + probe + b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n" + probe)
        answers = []
        for _ in range(4):
            head, body, rest = _read_answer(s, rest)
            answers.append((head.split(b"\r\n")[0], body))
        assert answers[:2] == [(b"HTTP/1.1 200 OK", b"ACTIVE")] * 2
        assert answers[2][0] == b"HTTP/1.1 200 OK" and b'"node_id":"server1"' in answers[2][1]
        assert answers[3] == (b"HTTP/1.1 200 OK", b"ACTIVE")


@pytest.mark.parametrize("raw", [
    b"HEAD /monitor?mod=FT HTTP/1.1\r\n\r\n",  # not GET: the application's 405 (the route is GET only)
    b"GET /monitor?mod=FT HTTP/1.1\r\nContent-Length: 2\r\n\r\nxx",  # a body: the route
    b"GET /monitor?mod=FT HTTP/1.1\r\nbroken header line\r\n\r\n",  # not HTTP as we read it: the server's 400
    b"GET /monitor?mod=FT HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n",  # framed two ways: 400
])
def test_what_is_not_a_plain_probe_is_the_servers(started: Pair, raw: bytes) -> None:
    with socket.create_connection((ADDR["server1"], started.monitor_port), timeout=5) as s:
        s.sendall(raw)
        s.settimeout(5)
        got = s.recv(65536)
    status = got.split(b"\r\n")[0]
    if raw.startswith(b"HEAD"):
        assert status == b"HTTP/1.1 405 Method Not Allowed" and b"\r\nallow: GET" in got
    elif b"Content-Length: 2" in raw:
        assert status == b"HTTP/1.1 200 OK" and got.endswith(b"ACTIVE")
    else:
        assert status == b"HTTP/1.1 400 Bad Request"


def test_connection_close_is_honoured(started: Pair) -> None:
    shape, closed = _ask(started, "server1", f"GET {FAST}?mod=FT HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
    assert closed and shape[1].get("connection") == "close"
    shape, closed = _ask(started, "server1", f"GET {FAST}?mod=FT HTTP/1.1\r\n\r\n".encode())
    assert not closed and "connection" not in shape[1]


def _beat_request(path: str, body: bytes, signed: bool = True) -> bytes:
    auth = f"{H_COMPACT}: {sign_compact(SECRET, 'POST', wire.PATH, body, node='server2')}\r\n" if signed else ""
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.mark.parametrize("case", ["valid", "unsigned", "not JSON", "wrong node"])
def test_the_exchange_answers_as_the_route(started: Pair, case: str) -> None:
    """server2's compact ask of server1, below the server and through the application (a '%' in the path)."""
    def body() -> bytes:
        if case == "not JSON":
            return b"{nope"
        ask = wire.Beat(node_id="server1" if case == "wrong node" else "server2", role=Role.STANDBY, epoch=0,
                        can_be_active=True, lan_ok=True, serves=True, app_ok=True, maintenance=False,
                        maintenance_at=Timestamp(0), maintenance_origin="", digest="0" * 16,
                        hlc=Timestamp(int(time.time() * 1000)), role_since=None, times=(time.time(),))
        return wire.encode(ask)

    shapes = []
    for path in (wire.PATH, "/peer/%68b"):
        (status, headers, text), closed = _ask(started, "server1", _beat_request(path, body(), case != "unsigned"),
                                               started.arbiter_port)
        assert not closed and headers["content-type"] == "application/json"
        shapes.append((status, text if case != "valid" else wire.decode(text.encode()).node_id))
    assert shapes[0] == shapes[1]
    status, detail = shapes[0]
    expected = {"valid": ("HTTP/1.1 200 OK", "server1"), "unsigned": ("HTTP/1.1 401 Unauthorized", None),
                "not JSON": ("HTTP/1.1 422 Unprocessable Entity", None),
                "wrong node": ("HTTP/1.1 422 Unprocessable Entity", None)}[case]
    assert status == expected[0]
    if expected[1]:
        assert detail == expected[1]
    elif case == "unsigned":
        assert json.loads(detail)["detail"].startswith("peer authentication failed")
    else:
        assert json.loads(detail)["detail"][0]["loc"][0] == "body"
