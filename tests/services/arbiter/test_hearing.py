"""What a tick hears from the peer, against a peer made of real sockets: one exchange for the pair, the
monitor probe only as a hedge, the ACTIVE answering without asking, protocol 1 for an earlier release."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from hotstandby.ftlog import FaultTolerantLog
from hotstandby.hlc import HybridClock, Timestamp
from hotstandby.metrics import ArbiterMetrics
from hotstandby.model import Role
from hotstandby.peerauth import sign_compact
from hotstandby.settings import ClusterSettings, NodeSettings
from hotstandby.store import Store
from services.arbiter import wire
from services.arbiter.config import ConfigBook
from services.arbiter.heartbeat import Arbiter
from services.arbiter.peer import PeerClient
from tests.services.arbiter.test_heartbeat import FakeClock, RecordingCti

INTERVAL = T = 2.0  # long enough that a loaded machine does not hedge the exchange (at T/8), so requests can be counted


@dataclass
class FakePeer:
    """server1 as the network shows it: an HTTP server on 127.0.0.1 answering the monitor probe, the compact
    exchange and the long one; it records every request line. ``hb_delay`` holds the compact answer back."""

    role: Role = Role.ACTIVE
    serves: bool = True
    compact: bool = True  # False: a node of an earlier release (404 on /peer/hb)
    hb_delay: float = 0.0
    digest: str = "0" * 16  # with_peer sets the arbiter's own: the settings agree, nothing is pulled
    requests: list[str] = field(default_factory=list)

    def beat(self, times: tuple[float, ...]) -> wire.Beat:
        now = time.time()
        return wire.Beat(node_id="server1", role=self.role, epoch=3, can_be_active=True, lan_ok=True,
                         serves=self.serves, app_ok=True, maintenance=False, maintenance_at=Timestamp(0),
                         maintenance_origin="", digest=self.digest, hlc=Timestamp(int(now * 1000)), role_since=now,
                         times=times)

    async def answer(self, line: str, body: bytes) -> tuple[int, bytes]:
        target = line.split(" ")[1]
        if target.startswith("/IPSCFG/admin/monitor.aspx"):
            return 200, b"OK"
        if target == wire.PATH and self.compact:
            await asyncio.sleep(self.hb_delay)
            return 200, wire.encode(self.beat((time.time(), time.time())))
        if target == "/peer/heartbeat":
            now = time.time()
            return 200, json.dumps({
                "node_id": "server1", "role": self.role.value, "epoch": 3, "lan_ok": True, "can_be_active": True,
                "maintenance": {"value": False, "at": str(Timestamp(0)), "origin": ""}, "digest": self.digest,
                "hlc": str(Timestamp(int(now * 1000))), "vouch": {"serves": self.serves, "app_ok": True},
                "t2": now, "t3": now}).encode()
        if target.startswith("/peer/config"):
            return 200, json.dumps({"settings": {}, "digest": "0" * 16}).encode()
        return 404, b'{"detail":"Not Found"}'

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode().split("\r\n")
                length = next((int(v) for k, _, v in (ln.partition(":") for ln in lines)
                               if k.lower() == "content-length"), 0)
                body = await reader.readexactly(length)
                self.requests.append(lines[0].split(" ")[1].split("?")[0])
                status, answer = await self.answer(lines[0], body)
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: {len(answer)}\r\n\r\n".encode() + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


def arbiter_beside(peer_port: int, tmp_path: Path, clock: FakeClock) -> Arbiter:
    """server2, whose peer server1 listens on 127.0.0.1:``peer_port`` (both its monitor and its arbiter)."""
    cfg = ClusterSettings(server1_address="127.0.0.1", server2_address="127.0.0.2", monitor_port=peer_port,
                          arbiter_port=peer_port, heartbeat_interval_s=INTERVAL, heartbeat_timeout_s=T,
                          failures_to_switch=3)
    node = NodeSettings(node_id="server2", data_dir=tmp_path, peer_secret="s")
    store = Store(node.db_path)
    hlc = HybridClock(time.time)
    config = ConfigBook(store, hlc, node.node_id, cfg)
    cti = RecordingCti()
    arbiter = Arbiter(node=node, store=store, ftlog=FaultTolerantLog(node.log_dir, node_id=node.node_id),
                      metrics=ArbiterMetrics(node.node_id), config=config, hlc=hlc,
                      peer=PeerClient(node, lambda: config.current), cti=cti, clock=clock)
    cti.arbiter = arbiter
    return arbiter


def with_peer(peer: FakePeer, tmp_path: Path, body: Callable[[Arbiter, FakeClock], Awaitable[None]]) -> None:
    async def run() -> None:
        server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
        clock = FakeClock()
        arbiter = arbiter_beside(server.sockets[0].getsockname()[1], tmp_path, clock)
        peer.digest = arbiter.config.digest()
        try:
            await body(arbiter, clock)
        finally:
            await arbiter.peer.aclose()
            server.close()

    asyncio.run(run())


def test_a_standby_asks_once_a_tick_and_does_not_probe_when_the_answer_vouches(tmp_path: Path) -> None:
    """A STANDBY's tick is one compact exchange: its answer vouches for the peer's monitor, so no probe is sent."""
    peer = FakePeer()

    async def body(a: Arbiter, clock: FakeClock) -> None:
        for _ in range(3):
            heard = await a.hearing.observe(a.cluster)
            assert heard.ok and heard.view is not None and heard.view.role is Role.ACTIVE
            assert heard.channels["exchange"] == {"ok": True, "consecutive_failures": 0, "by": "asking", "protocol": 2}
            assert heard.channels["probe"]["ok"] is None

    with_peer(peer, tmp_path, body)
    assert peer.requests == [wire.PATH] * 3


def test_a_lost_exchange_is_hedged_by_the_monitor_probe_inside_t(tmp_path: Path) -> None:
    """No compact answer within T: the probe, started at T/2, answers OK, and the tick is a success within T."""
    peer = FakePeer(hb_delay=2 * T)

    async def body(a: Arbiter, clock: FakeClock) -> None:
        t0 = time.monotonic()
        heard = await a.hearing.observe(a.cluster)
        assert heard.ok and heard.channels["probe"]["ok"] is True
        assert time.monotonic() - t0 < T + 0.3

    with_peer(peer, tmp_path, body)
    assert "/IPSCFG/admin/monitor.aspx" in peer.requests


def test_a_peer_whose_monitor_runs_apart_is_probed_every_tick(tmp_path: Path) -> None:
    """An answer that does not speak for the peer's monitor (it runs in another process): every tick probes it."""
    peer = FakePeer(serves=False)

    async def body(a: Arbiter, clock: FakeClock) -> None:
        for _ in range(3):
            assert (await a.hearing.observe(a.cluster)).ok

    with_peer(peer, tmp_path, body)
    assert peer.requests.count("/IPSCFG/admin/monitor.aspx") == 3


def test_an_active_counts_the_standbys_ask_as_its_heartbeat_and_sends_nothing(tmp_path: Path) -> None:
    """The ACTIVE asked by its STANDBY within I + T hears the ask (its view, vouched) without a request; with no
    ask that recent it asks itself."""
    peer = FakePeer(role=Role.STANDBY)

    async def body(a: Arbiter, clock: FakeClock) -> None:
        a.mem.state = replace(a.mem.state, role=Role.ACTIVE)

        async def asked() -> None:
            raw = wire.encode(peer.beat((time.time(),)))
            wire.decode(a.exchange.on_beat(raw))  # the answer is a valid compact body

        heard = await a.hearing.observe(a.cluster)  # never asked: it asks
        assert heard.ok and heard.channels["exchange"]["by"] == "asking" and peer.requests == [wire.PATH]
        await asked()
        for _ in range(2):  # one tick, and the next one too if no newer ask came: within I + T
            heard = await a.hearing.observe(a.cluster)
            assert heard.ok and heard.view is not None and heard.view.role is Role.STANDBY
            assert heard.channels["exchange"]["by"] == "asked" and peer.requests == [wire.PATH]
            clock.now += INTERVAL
        clock.now += T + 0.01  # the ask is now older than I + T: it asks
        assert (await a.hearing.observe(a.cluster)).channels["exchange"]["by"] == "asking"

    with_peer(peer, tmp_path, body)
    assert peer.requests == [wire.PATH] * 2


def test_a_peer_of_an_earlier_release_is_asked_in_protocol_1_in_the_same_tick(tmp_path: Path) -> None:
    """/peer/hb answered 404: the same tick exchanges over /peer/heartbeat and succeeds; later ticks skip the
    compact ask until it is tried again, RETRY_COMPACT_S later."""
    peer = FakePeer(compact=False)

    async def body(a: Arbiter, clock: FakeClock) -> None:
        heard = await a.hearing.observe(a.cluster)
        assert heard.ok and heard.channels["exchange"]["protocol"] == 1
        assert (await a.hearing.observe(a.cluster)).ok
        assert peer.requests == [wire.PATH, "/peer/heartbeat", "/peer/heartbeat"]
        clock.now += 60
        assert (await a.hearing.observe(a.cluster)).ok
        assert peer.requests[3:] == [wire.PATH, "/peer/heartbeat"]
        peer.compact = True  # the peer was upgraded
        clock.now += 60
        heard = await a.hearing.observe(a.cluster)
        assert heard.ok and heard.channels["exchange"]["protocol"] == 2

    with_peer(peer, tmp_path, body)
    log = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    assert "Server server1 speaks exchange protocol 1 (an earlier release)" in log
    assert "Server server1 speaks exchange protocol 2 again (upgraded)" in log


def test_the_compact_ask_is_signed_and_refused_unsigned(tmp_path: Path) -> None:
    """The answering half refuses a body whose node is not the peer (the hot path checks the signature first)."""
    peer = FakePeer(role=Role.STANDBY)

    async def body(a: Arbiter, clock: FakeClock) -> None:
        raw = wire.encode(replace(peer.beat((time.time(),)), node_id="server2"))
        try:
            a.exchange.on_beat(raw)
        except wire.WireError as exc:
            assert str(exc).startswith("n:")
        else:
            raise AssertionError("a body naming this node itself was answered")
        assert sign_compact("s", "POST", wire.PATH, raw, node="server1").startswith("server1 ")

    with_peer(peer, tmp_path, body)
