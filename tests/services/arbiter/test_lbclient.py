"""The arbiter's runtime-API client against a real HAProxy (rendered by render_haproxy --runtime-api) in front
of two stand-in nodes: it moves the VIP at once, the checks stay the safety net, failures are reported, and a
drain lets a request in flight finish."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotstandby.lbruntime import Endpoint, parse_endpoints
from hotstandby.model import Role
from hotstandby.settings import ClusterSettings
from services.arbiter.lbclient import LoadBalancers
from tests.hotstandby.test_haproxy import Pair, running_pair, server_status, status_through, wait_for, whoami

# Checks every 2 s (I = 8 s): HAProxy alone would need at least 2 s to move the VIP, rise 2 needs 4 s.
SLOW = ClusterSettings(heartbeat_interval_s=8, heartbeat_timeout_s=1, failures_to_switch=3)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    with running_pair(tmp_path, hold=True, cluster=SLOW, runtime_api=True) as p:
        yield p


class Reports:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, str | None, int]] = []

    def __call__(self, ep: Endpoint, what: str, why: str | None, failures: int) -> None:
        self.items.append((str(ep), what, why, failures))


def lbs(pair: Pair, node_id: str, reports: Reports, extra: str = "") -> LoadBalancers:
    assert pair.runtime_api is not None
    peer = "server2" if node_id == "server1" else "server1"
    endpoints = parse_endpoints(pair.runtime_api + extra)
    return LoadBalancers(endpoints, node_id=node_id, peer_id=peer, report=reports)


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.20", 0))
        return f"127.0.0.20:{s.getsockname()[1]}"


@pytest.mark.integration
def test_a_promotion_moves_the_vip_before_any_check_could(pair: Pair) -> None:
    """server2 promoted and told through the runtime API: the VIP routes to it within 1 s, where the checks
    alone (every 2 s, rise 2) would need 4 s; server1 is DOWN at once."""
    reports = Reports()
    pair.nodes["server1"].active = False
    pair.nodes["server2"].active = True

    async def body() -> float:
        lb = lbs(pair, "server2", reports)
        start = time.monotonic()
        lb.role_changed(Role.ACTIVE)
        await lb.settle(2.0)
        await asyncio.to_thread(wait_for, lambda: all(whoami(pair.vip_url) == "server2" for _ in range(5)), 1.0)
        return time.monotonic() - start

    took = asyncio.run(body())
    assert took < 1.0
    assert (server_status(pair, "server1"), server_status(pair, "server2")) == ("DOWN", "UP")
    assert reports.items == [(pair.runtime_api, "server2 is ACTIVE", None, 0)]


@pytest.mark.integration
def test_the_checks_undo_a_wrong_call(pair: Pair) -> None:
    """A node forced UP that answers mod=FT 503 is taken back DOWN by its next check (the safety net)."""
    reports = Reports()

    async def body() -> None:
        lb = lbs(pair, "server2", reports)  # server2 is STANDBY (503) yet claims ACTIVE
        lb.role_changed(Role.ACTIVE)
        await lb.settle(2.0)

    asyncio.run(body())
    wait_for(lambda: server_status(pair, "server2") == "DOWN" and server_status(pair, "server1") == "UP", 10)
    wait_for(lambda: all(whoami(pair.vip_url) == "server1" for _ in range(5)), 5)


@pytest.mark.integration
def test_a_load_balancer_that_does_not_answer_is_reported_once_and_asked_again(pair: Pair) -> None:
    """One of two load balancers down: the other is told at once; the failure is reported with its reason,
    retry() asks again (reported as a further failure), and the reachable one is not asked twice."""
    reports = Reports()
    dead = closed_port()
    pair.nodes["server1"].active = False
    pair.nodes["server2"].active = True

    async def body() -> list[str]:
        lb = lbs(pair, "server2", reports, extra="," + dead)
        lb.role_changed(Role.ACTIVE)
        await lb.settle(2.0)
        await asyncio.sleep(1.05)  # RETRY_S
        lb.retry()
        await lb.settle(2.0)
        return lb.pending()

    pending = asyncio.run(body())
    assert pending == [dead]
    ok = [r for r in reports.items if r[0] == pair.runtime_api]
    failed = [r for r in reports.items if r[0] == dead]
    assert ok == [(pair.runtime_api, "server2 is ACTIVE", None, 0)]
    assert [(r[1], r[3]) for r in failed] == [("server2 is ACTIVE", 1), ("server2 is ACTIVE", 2)]
    assert all(r[2] for r in failed)  # the reason, e.g. "Connection refused"
    assert whoami(pair.vip_url) == "server2"


@pytest.mark.integration
def test_drain_lets_a_request_in_flight_finish_and_holds_new_ones(pair: Pair) -> None:
    """A planned demotion: drain (waiting for the 0.6 s request in flight), demote, promote the peer. The
    request in flight and one sent during the switch both succeed; the later one lands on server2."""
    reports = Reports()
    pair.nodes["server1"].delay = 0.6
    results: dict[str, int] = {}

    def ask(name: str) -> None:
        results[name] = status_through(pair.vip_url)

    async def body() -> float:
        old, new = lbs(pair, "server1", reports), lbs(pair, "server2", reports)
        in_flight = threading.Thread(target=ask, args=("in flight",))
        in_flight.start()
        await asyncio.sleep(0.2)
        start = time.monotonic()
        await old.drain(2.0)
        drained = time.monotonic() - start
        during = threading.Thread(target=ask, args=("during",))
        during.start()
        pair.nodes["server1"].active = False  # the demotion: its checks now get 503
        old.role_changed(Role.STANDBY)
        await old.settle(2.0)
        pair.nodes["server2"].active = True
        new.role_changed(Role.ACTIVE)
        await new.settle(2.0)
        await asyncio.to_thread(in_flight.join, 5)
        await asyncio.to_thread(during.join, 5)
        return drained

    drained = asyncio.run(body())
    assert 0.2 <= drained < 2.0  # it waited for the request in flight, not for the bound
    assert results == {"in flight": 200, "during": 200}
    assert whoami(pair.vip_url) == "server2"
    assert all(why is None for _, _, why, _ in reports.items)


@pytest.mark.integration
def test_drain_is_bounded_when_a_request_outlasts_it(pair: Pair) -> None:
    """A request slower than the drain bound: drain returns at the bound (the demotion then cuts it)."""
    reports = Reports()
    pair.nodes["server1"].delay = 3.0
    pair.nodes["server1"].asked.clear()
    slow = threading.Thread(target=status_through, args=(pair.vip_url,))
    slow.start()
    assert pair.nodes["server1"].asked.wait(5), "the slow request never reached server1"

    async def body() -> float:
        start = time.monotonic()
        await lbs(pair, "server1", reports).drain(0.3)
        return time.monotonic() - start

    took = asyncio.run(body())
    slow.join(5)
    assert 0.3 <= took < 1.0


@pytest.mark.integration
def test_after_a_drain_and_a_demotion_the_checks_own_the_node_again(pair: Pair) -> None:
    """Drained, then demoted: the node is DOWN, not left in drain; when it answers mod=FT 200 again its
    checks alone bring it back UP (nothing the arbiter said outlives the role)."""
    reports = Reports()

    async def body() -> None:
        lb = lbs(pair, "server1", reports)
        await lb.drain(0.3)
        pair.nodes["server1"].active = False
        lb.role_changed(Role.STANDBY)
        await lb.settle(2.0)

    asyncio.run(body())
    assert server_status(pair, "server1") == "DOWN"
    pair.nodes["server1"].active = True
    wait_for(lambda: server_status(pair, "server1") == "UP", 10)
