"""What a real pair exports at /metrics (SPEC section 8): every family from the first scrape on both nodes, what
the alert rules and the dashboard read, and values that follow the pair (scraped over HTTP, never read back from
the code that set them)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import yaml

from hotstandby.model import Cause, Role
from lab.localpair import Pair
from lab.prometheus import Sample, scrape
from lab.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
# SPEC 8's families, by the sample names Prometheus stores (counters end in _total, a histogram has _bucket...).
SPEC8 = (
    "hotstandby_role", "hotstandby_role_changes_total", "hotstandby_peer_probe_seconds_bucket",
    "hotstandby_peer_probe_seconds_count", "hotstandby_peer_probe_seconds_sum", "hotstandby_peer_probe_failures_total",
    "hotstandby_peer_consecutive_failures", "hotstandby_lan_ok", "hotstandby_cti_up", "hotstandby_cti_restarts_total",
    "hotstandby_clock_skew_seconds", "hotstandby_expected_failover_delay_seconds", "hotstandby_maintenance",
)


def node_samples(pair: Pair, node_id: str) -> list[Sample]:
    """Both services of one node: the arbiter's and the monitor's /metrics."""
    return scrape(pair.http, pair.arbiter_url(node_id)) + scrape(pair.http, pair.monitor_url(node_id))


def one(samples: list[Sample], name: str, **labels: str) -> float:
    (value,) = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    return value


def read_by_rules_and_dashboard() -> set[str]:
    """Every hotstandby_* name in an alert rule's expression or a dashboard query."""
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "hotstandby.json").read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return {name for expr in exprs for name in re.findall(r"\bhotstandby_\w+", expr)}


def test_every_family_and_what_rules_and_dashboard_read_is_exported_from_the_first_scrape(pair: Pair) -> None:
    """On each node's first scrape, every SPEC 8 family has samples labelled with that node (role changes at 0 for
    each role and cause), and every metric an alert rule or a dashboard query reads is there."""
    pair.start()
    wanted = read_by_rules_and_dashboard()
    assert {"hotstandby_settings_info", "hotstandby_last_tick_timestamp_seconds", "hotstandby_peer_role"} <= wanted
    for node_id in ("server1", "server2"):
        samples = node_samples(pair, node_id)
        names = {s.name for s in samples}
        assert [name for name in SPEC8 if name not in names] == [], node_id
        assert [name for name in sorted(wanted) if name not in names] == [], node_id
        assert {s.labels.get("node") for s in samples if s.name.startswith("hotstandby_")} == {node_id}
        changes = {(s.labels["to"], s.labels["cause"]) for s in samples if s.name == "hotstandby_role_changes_total"}
        assert changes == {(role.value, cause.value) for role in Role for cause in Cause}


def test_rule_readings_follow_the_pair(started: Pair) -> None:
    """The settings digest, peer's role, interval and last tick exported by each node follow what the pair does."""
    def peers_agree() -> bool:  # each node's view of its peer's role is that peer's own word
        s1, s2 = node_samples(started, "server1"), node_samples(started, "server2")
        return (one(s1, "hotstandby_peer_role"), one(s2, "hotstandby_peer_role")) == (
            one(s2, "hotstandby_role"), one(s1, "hotstandby_role"))

    def digests() -> list[str]:  # what /metrics says each node holds, then what /config says
        return [s.labels["digest"] for n in ("server1", "server2") for s in node_samples(started, n)
                if s.name == "hotstandby_settings_info"] + [
            started.http.get(started.arbiter_url(n) + "/config").json()["digest"] for n in ("server1", "server2")]

    wait_until(peers_agree, 10, "each node's hotstandby_peer_role equal to its peer's hotstandby_role")
    wait_until(lambda: len(set(digests())) == 1, 10, "one settings digest in both nodes' metrics and /config")
    s1, s2 = node_samples(started, "server1"), node_samples(started, "server2")
    assert (one(s1, "hotstandby_heartbeat_interval_seconds"), one(s1, "hotstandby_witness_configured")) == (
        started.interval, 0.0)
    for node_id, samples in (("server1", s1), ("server2", s2)):
        changes = {to: sum(s.value for s in samples if s.name == "hotstandby_role_changes_total"
                           and s.labels["to"] == to) for to in ("ACTIVE", "STANDBY")}
        # Every node starts STANDBY: the ACTIVE changes outnumber the STANDBY ones by its role now.
        assert changes["ACTIVE"] - changes["STANDBY"] == one(samples, "hotstandby_role"), node_id
    ticked = one(s1, "hotstandby_last_tick_timestamp_seconds")
    assert time.time() - 30 < ticked <= time.time()  # a wall clock time, and a recent one
    wait_until(lambda: one(node_samples(started, "server1"), "hotstandby_last_tick_timestamp_seconds") > ticked, 5,
               "a later tick")

    r = started.admin("PUT", "server2", "/config", {"heartbeat_interval_s": 0.6})
    assert r.status_code == 200, r.text
    new = r.json()["digest"]

    def both_new() -> bool:
        for node_id in ("server1", "server2"):
            info = [s for s in node_samples(started, node_id) if s.name == "hotstandby_settings_info"]
            if [(s.labels["digest"], s.value) for s in info] != [(new, 1.0)]:  # the old digest's series is gone
                return False
        return True

    wait_until(both_new, 10, "the new settings digest on both nodes, and only it")
    assert one(node_samples(started, "server1"), "hotstandby_heartbeat_interval_seconds") == 0.6
