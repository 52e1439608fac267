"""The peer probe on real sockets: hedged attempts inside T, a definite answer ends it at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from hotstandby.hlc import Timestamp
from hotstandby.model import Role
from hotstandby.settings import ClusterSettings, NodeSettings
from lab.waiting import until
from services.arbiter import wire
from services.arbiter.lane import HEDGES
from services.arbiter.peer import CallResult, PeerClient

Handler = Callable[[int], Awaitable[bytes | None]]  # request number -> raw response, None: never answer


async def serve(handler: Handler, connections: list[int] | None = None) -> tuple[asyncio.AbstractServer, int]:
    count = 0

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        if connections is not None:
            connections.append(len(connections) + 1)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                count += 1
                answer = await handler(count)
                if answer is None:
                    await asyncio.sleep(3600)  # a request swallowed by the network
                writer.write(answer or b"")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def http(status: int, body: str) -> bytes:
    return f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\ncontent-type: text/plain\r\n\r\n{body}".encode()


def client(port: int, timeout: float = 0.4) -> PeerClient:
    cfg = ClusterSettings(server1_address="127.0.0.2", server2_address="127.0.0.1", monitor_port=port,
                          heartbeat_interval_s=1, heartbeat_timeout_s=timeout)
    return PeerClient(NodeSettings(node_id="server1", peer_secret="s"), lambda: cfg)


def probe_with(handler: Handler, timeout: float = 0.4) -> tuple[bool, float, str]:
    async def run() -> tuple[bool, float, str]:
        server, port = await serve(handler)
        peer = client(port, timeout)
        try:
            r = await peer.probe()
        finally:
            await peer.aclose()
            server.close()
        return r.ok, r.seconds, r.detail

    return asyncio.run(run())


def test_a_swallowed_first_request_is_saved_by_a_hedge_inside_t() -> None:
    """The first attempt never answers; a hedge on another connection does, so the probe succeeds within T."""
    async def handler(n: int) -> bytes | None:
        return None if n == 1 else http(200, "OK")

    ok, seconds, _ = probe_with(handler, timeout=1.0)
    assert ok is True
    assert seconds < 1.0  # R2: a hedge answers inside the probe's T budget, or the probe fails


@pytest.mark.parametrize("lost", [1, 2, 3])
def test_up_to_all_but_one_attempt_lost_still_succeeds(lost: int) -> None:
    """Any of the first HEDGES−1 attempts may be lost: the probe still succeeds."""
    async def handler(n: int) -> bytes | None:
        return None if n <= lost else http(200, "OK")

    assert lost < HEDGES
    assert probe_with(handler)[0] is True


def test_no_valid_answer_within_t_fails_after_t() -> None:
    """Every attempt swallowed: the probe fails, and not before T."""
    async def handler(n: int) -> bytes | None:
        return None

    ok, seconds, detail = probe_with(handler, timeout=0.3)
    assert ok is False and detail in ("timeout", "ReadTimeout")
    assert seconds >= 0.3  # not before T (how soon after T is the bench's business)


def test_an_unhealthy_answer_fails_at_once_without_hedging() -> None:
    """A 503 (IPSWS=ERROR, or anything but OK) is the peer's own word: the probe fails at once."""
    async def handler(n: int) -> bytes | None:
        return http(503, "IPSWS=ERROR: CTI failed")

    ok, seconds, detail = probe_with(handler, timeout=1.0)
    assert ok is False and detail.startswith("HTTP 503")
    assert seconds < 1.0  # failed on the answer, without waiting out T for a hedge


def test_a_slow_answer_under_t_is_a_success() -> None:
    """R2: one slow answer under T counts as a success."""
    async def handler(n: int) -> bytes | None:
        await asyncio.sleep(0.25)
        return http(200, "OK")

    assert probe_with(handler, timeout=0.4)[0] is True


def test_nothing_listening_fails_fast() -> None:
    """Connection refused on every attempt: the probe fails before T (a refusal is an answer: no waiting out T)."""
    async def run() -> tuple[bool, float]:
        peer = client(9, timeout=1.0)  # discard port: nothing listens on 127.0.0.1:9
        try:
            r = await peer.probe()
        finally:
            await peer.aclose()
        return r.ok, r.seconds

    ok, seconds = asyncio.run(run())
    assert ok is False and seconds < 1.0


def test_an_attempt_that_misses_t_keeps_its_connection_for_the_next_probes() -> None:
    """The first answer comes after T (a lost segment TCP retransmits): the probe is saved by a hedge,
    and the late attempt is left to finish, so its connection is reused instead of a new handshake."""
    async def handler(n: int) -> bytes | None:
        if n == 1:
            await asyncio.sleep(1.2)
        return http(200, "OK")

    async def run() -> tuple[list[bool], int, int]:
        connections: list[int] = []
        server, port = await serve(handler, connections)
        peer = client(port, timeout=1.0)
        try:
            first = await peer.probe()
            # the late attempt gets its answer (the handler's 1.2 s), and its connection is free again
            await until(lambda: not any(c.busy for c in peer._monitor._conns), 5, "the late attempt answered")
            after_first = len(connections)
            later = [await peer.probe() for _ in range(5)]
        finally:
            await peer.aclose()
            server.close()
        return [first.ok, *(r.ok for r in later)], after_first, len(connections)

    oks, after_first, total = asyncio.run(run())
    assert all(oks)
    assert 2 <= after_first <= 3  # the slow attempt and its hedge (a loaded machine may hedge once more)
    assert total == after_first  # no new handshake: the late attempt's connection was kept


def test_the_exchange_is_hedged_and_says_which_payload_was_answered() -> None:
    """The second channel is hedged too; each attempt is made afresh (own signature and send time),
    and the result carries the payload its answer replies to."""
    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                sent = json.loads(await reader.readexactly(length))
                if sent["made"] == 1:
                    await asyncio.sleep(3600)  # the first attempt is swallowed by the network
                body = json.dumps({"echo": sent["made"]})
                writer.write(f"HTTP/1.1 200 X\r\ncontent-length: {len(body)}\r\n"
                             f"content-type: application/json\r\n\r\n{body}".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def run() -> CallResult:
        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        cfg = ClusterSettings(server1_address="127.0.0.2", server2_address="127.0.0.1",
                              arbiter_port=server.sockets[0].getsockname()[1],
                              heartbeat_interval_s=2.0, heartbeat_timeout_s=2.0)
        peer = PeerClient(NodeSettings(node_id="server1", peer_secret="s"), lambda: cfg)
        made = iter(range(1, 100))
        try:
            return await peer.exchange(lambda: {"made": next(made)}, 2.0)
        finally:
            await peer.aclose()
            server.close()

    r = asyncio.run(run())
    assert r.ok
    assert r.sent["made"] != 1 and r.body == {"echo": r.sent["made"]}


def test_a_silent_exchange_cools_the_commands_lane() -> None:
    """A command never goes out on a connection warmed before the peer fell silent: after an exchange with
    no answer at all, the next config pull opens a new connection (a one-way cut would let a command in
    on the old one and no answer out)."""
    served: list[list[bytes]] = []  # per connection, the paths it was asked

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        paths: list[bytes] = []
        served.append(paths)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                path = head.split(b" ")[1]
                paths.append(path)
                length = next((int(v) for k, _, v in (line.partition(b":") for line in head.split(b"\r\n"))
                               if k.lower() == b"content-length"), 0)
                await reader.readexactly(length)
                if path.startswith(b"/peer/hb"):
                    await asyncio.sleep(3600)  # the peer fell silent
                body = b'{"settings": {}, "digest": "d"}'
                writer.write(b"HTTP/1.1 200 X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def run() -> tuple[bool, bool, bool]:
        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        cfg = ClusterSettings(server1_address="127.0.0.2", server2_address="127.0.0.1",
                              arbiter_port=server.sockets[0].getsockname()[1],
                              heartbeat_interval_s=0.3, heartbeat_timeout_s=0.3)
        peer = PeerClient(NodeSettings(node_id="server1", peer_secret="s"), lambda: cfg)
        try:
            first = await peer.config("d", 2.0)
            beat = await peer.beat(_beat, 0.3)
            second = await peer.config("d", 2.0)
        finally:
            await peer.aclose()
            server.close()
        return first.ok, beat.ok, second.ok

    first, beat, second = asyncio.run(run())
    assert first and not beat and second
    config_conns = [paths for paths in served if paths and paths[0].startswith(b"/peer/config")]
    assert len(config_conns) == 2 and all(len(p) == 1 for p in config_conns)  # not the warm one again


def _beat() -> wire.Beat:
    return wire.Beat(node_id="server1", role=Role.STANDBY, epoch=0, can_be_active=True, lan_ok=True, serves=True,
                     app_ok=True, maintenance=False, maintenance_at=Timestamp(0), maintenance_origin="",
                     digest="d", hlc=Timestamp(0), role_since=None, times=(0.0,))
