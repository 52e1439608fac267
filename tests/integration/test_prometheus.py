"""Debian's real Prometheus scrapes a real pair with the shipped alert rules loaded: one ACTIVE before and after a
kill -9 of the ACTIVE, the peer-unreachable alert fires, and every dashboard query evaluates."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lab.localpair import ADDR, Pair
from lab.prometheus import PrometheusServer
from lab.waiting import wait_until
from tests.needs import need

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "hotstandby.json"
# The shipped expressions, with every `for:` cut to 2 s (four ticks of this pair; promtool's unit tests check the
# real durations): the point here is that the rules read what real nodes export, not minutes of waiting.
FOR = "2s"
# Grafana's variables, as Grafana would expand them for an "All clusters" view of the last few minutes.
GRAFANA = {"$cluster": ".*", "$__rate_interval": "5s", "$__range": "5m"}


@pytest.fixture
def prometheus(started: Pair, tmp_path: Path) -> Iterator[PrometheusServer]:
    """Prometheus scraping both services of both nodes every second (a loaded machine's answer may take most of
    it), evaluating the rules twice a second."""
    started.settle("server1")  # CTI registered: a CTI still starting is not what this test is about
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = FOR
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    server = PrometheusServer(need("prometheus", "prometheus"), tmp_path / "prometheus", targets={
        "hotstandby-arbiter": [f"{ADDR[n]}:{started.arbiter_port}" for n in ADDR],
        "hotstandby-monitor": [f"{ADDR[n]}:{started.monitor_port}" for n in ADDR],
    }, rule_files=[tmp_path / "alerts.yml"], interval="1s", evaluation="500ms")
    try:
        yield server.start()
    finally:
        server.stop()


def active_nodes(prom: PrometheusServer) -> list[str]:
    return sorted(item["metric"]["node"] for item in prom.query("hotstandby_role == 1"))


def firing(prom: PrometheusServer) -> set[tuple[str, str]]:
    return {(a["labels"]["alertname"], a["labels"].get("node") or a["labels"].get("instance", ""))
            for a in prom.alerts()}


def test_prometheus_sees_one_active_before_and_after_a_kill_and_the_peer_alert_fires(
        started: Pair, prometheus: PrometheusServer) -> None:
    """Before: one ACTIVE (server1), all four targets up, no alert firing, every dashboard query evaluates. After
    kill -9 of server1: one ACTIVE (server2), and HotstandbyPeerUnreachable fires for server2."""
    begun = time.monotonic()
    wait_until(lambda: set(prometheus.targets_up().values()) == {"up"} and len(prometheus.targets_up()) == 4, 20,
               "all four targets scraped")
    wait_until(lambda: active_nodes(prometheus) == ["server1"], 10, "Prometheus sees server1 ACTIVE")
    # Twice the shortened `for:` of samples on a healthy pair, evaluated all along: nothing fires.
    wait_until(lambda: prometheus.query("min(count_over_time(hotstandby_role[1m])) >= 5"), 20,
               "five seconds of samples from both nodes")
    assert firing(prometheus) == set()
    assert active_nodes(prometheus) == ["server1"]

    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = re.sub(r"\$\w+", lambda m: GRAFANA[m.group(0)], target["expr"])
            result = prometheus.query(expr)  # fails the test on a PromQL error
            filtered = re.search(r"\)\s*> 0$|== 1$", expr)  # shows only what happened: may be empty
            assert result or filtered, f"{panel['title']}: {expr} returned nothing"

    started.nodes["server1"].kill()
    wait_until(lambda: active_nodes(prometheus) == ["server2"], started.bound_r1 + 10,
               "Prometheus sees server2, and only it, ACTIVE")
    wait_until(lambda: ("HotstandbyPeerUnreachable", "server2") in firing(prometheus), 20,
               "HotstandbyPeerUnreachable firing for server2")
    gone = {("HotstandbyNodeNotScraped", f"{ADDR['server1']}:{port}")
            for port in (started.arbiter_port, started.monitor_port)}
    wait_until(lambda: gone <= firing(prometheus), 20, "HotstandbyNodeNotScraped for server1's two services")
    assert active_nodes(prometheus) == ["server2"]
    assert {name for name, _ in firing(prometheus)} & {"HotstandbySplitBrain", "HotstandbyNoActiveNode"} == set()
    print(f"\nlive Prometheus test: {time.monotonic() - begun:.1f} s from Prometheus up to both alerts firing")
