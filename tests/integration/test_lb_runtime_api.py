"""A real pair behind a real HAProxy whose runtime API the arbiters call (HS_LB_RUNTIME_API): HAProxy hears of
each role change from the arbiter, a planned switchover loses no request, and the checks still move the VIP
when the call cannot be made."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from hotstandby.settings import ClusterSettings
from lab.haproxy import LoadBalancer, ports, running_haproxy
from lab.localpair import ADDR, Pair, running_pair, switch
from lab.vipclient import VipClient
from lab.waiting import wait_until
from tests.needs import need

pytestmark = pytest.mark.integration

HOST = "127.0.0.10"


class Setup(NamedTuple):
    pair: Pair
    lb: LoadBalancer


def behind_haproxy(tmp_path: Path, *, api_reachable: bool) -> Iterator[Setup]:
    need("haproxy", "haproxy")
    api_port, closed = ports(HOST, 2)
    told = f"{HOST}:{api_port if api_reachable else closed}"
    with running_pair(tmp_path, extra={"HS_LB_RUNTIME_API": told}) as pair:
        cluster = ClusterSettings(server1_address=ADDR["server1"], server2_address=ADDR["server2"],
                                  monitor_port=pair.monitor_port, heartbeat_interval_s=pair.interval,
                                  heartbeat_timeout_s=pair.timeout, failures_to_switch=pair.failures)
        with running_haproxy(tmp_path / "lb", cluster, HOST, runtime_api_port=api_port) as lb:
            pair.start()
            pair.settle("server1", pair.bound_r1 + pair.bound_r3 + 10)
            with VipClient(lb.vip_url + "/whoami", period=0.05) as probe:
                wait_until(lambda: probe.routes_to("server1"), 10, "the VIP on server1")
            yield Setup(pair, lb)


@pytest.fixture
def told(tmp_path: Path) -> Iterator[Setup]:
    yield from behind_haproxy(tmp_path, api_reachable=True)


@pytest.fixture
def untold(tmp_path: Path) -> Iterator[Setup]:
    yield from behind_haproxy(tmp_path, api_reachable=False)


def on(client: VipClient, target: str) -> None:
    wait_until(lambda: client.routes_to(target), 10, f"the VIP on {target}")


def test_planned_switchovers_lose_no_request_and_haproxy_hears_of_them_from_the_arbiters(told: Setup) -> None:
    """Two manual switches with a client at 20 requests a second through the VIP: every request answered,
    each switch moving the VIP to its target (the old ACTIVE drained before it stepped down), and HAProxy's
    own log says the nodes went UP and DOWN "changed from CLI": the arbiters told it, no check had to."""
    pair = told.pair
    with VipClient(told.lb.vip_url + "/whoami", period=0.05, timeout=5.0) as client:
        on(client, "server1")
        start = client.samples[-1][0]
        for target in ("server2", "server1"):
            switch(pair, target)
            on(client, target)
        switched = client.samples[-1][0]
        # Switches can take a fraction of a second: the window goes on until ten more requests were sent.
        wait_until(lambda: client.requests(switched, time.time()) >= 10, 10, "ten requests after the switches")
        end = time.time()
    assert client.failures(start, end) == 0
    assert client.requests(start, end) >= 10
    said = told.lb.said()
    assert "Server hotstandby/server2 is UP, changed from CLI" in said
    assert "Server hotstandby/server1 is DOWN, changed from CLI" in said


def test_the_checks_move_the_vip_when_the_load_balancer_cannot_be_told(untold: Setup) -> None:
    """HS_LB_RUNTIME_API names a port nobody serves: the switch still happens, the health checks move the VIP,
    and the fault-tolerant log says the load balancer was not told."""
    switch(untold.pair, "server2")
    with VipClient(untold.lb.vip_url + "/whoami", period=0.05) as client:
        wait_until(lambda: client.routes_to("server2"), 10, "the VIP on server2 by its checks")
    assert "changed from CLI" not in untold.lb.said()
    wait_until(lambda: "not told server2 is ACTIVE" in untold.pair.nodes["server2"].ftlog(), 5, "the log line")
    metrics = untold.pair.http.get(untold.pair.arbiter_url("server2") + "/metrics").text
    assert 'hotstandby_lb_runtime_api_calls_total{node="server2",result="failed"}' in metrics
