"""Cluster settings on a real pair (SPEC 2 and 5): replication, skew, durability, live effect."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from lab.localpair import Pair, running_pair
from lab.waiting import wait_until
from tests.needs import need_file

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def config_value(pair: Pair, node_id: str, name: str) -> object:
    return httpx.get(pair.arbiter_url(node_id) + "/config", timeout=2).json()["settings"][name]["value"]


@pytest.mark.parametrize("on", ["server1", "server2"])
def test_a_change_on_either_node_reaches_the_other_within_one_interval(started: Pair, on: str) -> None:
    """PUT /config on one node: acknowledged as replicated, and the peer serves it within one I."""
    other = "server2" if on == "server1" else "server1"
    r = started.admin("PUT", on, "/config", {"failures_to_switch": 4, "cti_restart_time": "03:30"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["changed"] == ["cti_restart_time", "failures_to_switch"]
    assert body["replicated"] is True
    assert body["settings"]["failures_to_switch"]["origin"] == on
    t0 = time.monotonic()
    wait_until(lambda: config_value(started, other, "failures_to_switch") == 4, started.interval + 1, "replication")
    assert time.monotonic() - t0 <= started.interval + 1
    assert started.status(other)["settings"]["failures_to_switch"] == 4
    a = httpx.get(started.arbiter_url(on) + "/config").json()
    b = httpx.get(started.arbiter_url(other) + "/config").json()
    assert a == b


def test_a_node_down_at_change_time_catches_up_when_back(started: Pair) -> None:
    """A change made while the peer is down is pulled by the peer when it comes back (R6)."""
    started.nodes["server2"].kill()
    r = started.admin("PUT", "server1", "/config", {"heartbeat_timeout_s": 0.4})
    assert r.status_code == 200 and r.json()["replicated"] is False
    started.nodes["server2"].start()
    wait_until(lambda: started.serving("server2"), 20, "server2 serving")
    wait_until(lambda: config_value(started, "server2", "heartbeat_timeout_s") == 0.4, 5, "server2 caught up")
    assert started.role("server2") == "STANDBY"


def test_new_interval_applies_live_and_changes_the_expected_delay(started: Pair) -> None:
    """A new N, I or T is used from the next tick without restart, and the expected delay follows."""
    before = started.status("server1")["expected_failover_delay_s"]
    r = started.admin("PUT", "server2", "/config", {"failures_to_switch": 5})
    assert r.status_code == 200
    wait_until(lambda: started.status("server1")["expected_failover_delay_s"] == pytest.approx(before + 2 * 0.5),
               3, "the expected delay on server1 to grow by 2·I")
    metrics = httpx.get(started.arbiter_url("server1") + "/metrics").text
    assert f'hotstandby_expected_failover_delay_seconds{{node="server1"}} {before + 1.0}' in metrics
    # The new N is in force: server1 dies; server2 now needs 5 failures, not 3.
    started.nodes["server1"].kill()
    wait_until(lambda: started.role("server2") == "ACTIVE", 5 * 0.5 + 0.5 + 0.5 + 3, "failover with N = 5")
    assert "failed 5 consecutive probes" in started.nodes["server2"].ftlog()


def test_cli_config_set_and_refusal(started: Pair) -> None:
    """`config set` changes a setting (visible on the peer); a bad one exits 2 with one line and changes nothing."""
    ok = started.cli("config", "set", "heartbeat_interval_s=0.6", url_node="server2")
    assert ok.returncode == 0, ok.stderr
    wait_until(lambda: config_value(started, "server1", "heartbeat_interval_s") == 0.6, 1.5, "the change on server1")
    bad = started.cli("config", "set", "heartbeat_timeout_s=5", url_node="server2")
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "heartbeat_timeout_s" in bad.stderr and "heartbeat_interval_s" in bad.stderr
    assert config_value(started, "server2", "heartbeat_timeout_s") == 0.5
    got = started.cli("config", "get", "heartbeat_interval_s", url_node="server1")
    assert got.stdout.strip() == "0.6", got.stderr


@pytest.mark.parametrize("rounds", [pytest.param(10), pytest.param(50, marks=pytest.mark.slow)])
def test_durability_acknowledged_changes_survive_kill_9(pair: Pair, rounds: int) -> None:
    """Rounds of PUT /config then kill -9 right after the 200: every acknowledged value is there after restart."""
    node = pair.nodes["server1"]
    node.start()
    wait_until(lambda: pair.serving("server1"), 20, "server1 serving")
    lost = []
    for i in range(rounds):
        value = f"{i // 60:02d}:{i % 60:02d}"
        r = pair.admin("PUT", "server1", "/config", {"cti_restart_time": value})
        assert r.status_code == 200, r.text
        node.kill()
        node.start()
        wait_until(lambda: pair.serving("server1"), 20, "server1 serving again")
        if config_value(pair, "server1", "cti_restart_time") != value:
            lost.append(value)
    assert lost == []


def test_clock_skew_of_ten_minutes_keeps_order_and_is_measured(tmp_path: Path) -> None:
    """server2's clock 10 minutes behind: the skew metric shows about -600 s and a later change still wins."""
    need_file(FAKETIME_LIB, "faketime")
    with running_pair(tmp_path) as p:
        p.nodes["server1"].start()
        # Monotonic time is shifted too (a constant offset is harmless); FAKETIME_DONT_FAKE_MONOTONIC
        # would break Python's absolute-deadline sleeps in threads under libfaketime 0.9.10.
        p.nodes["server2"].start({"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": "-600s"})
        wait_until(lambda: p.serving("server1") and p.serving("server2"), 20, "both serving")
        p.wait_active("server1", p.bound_r1 + 5)
        skew = wait_until(lambda: p.status("server1")["clock_skew_s"], 5, "a skew measurement")
        assert -610 < skew < -590

        def server2_skew() -> float:
            metrics = httpx.get(p.arbiter_url("server2") + "/metrics").text
            line = next(ln for ln in metrics.splitlines() if ln.startswith("hotstandby_clock_skew_seconds{"))
            return float(line.split()[-1])

        # server2 measures on its own first exchange, which may come a tick after server1's.
        assert 590 < wait_until(lambda: server2_skew() or None, 5, "server2's skew measurement") < 610
        # server1 (clock ahead) changes first, server2 (clock 10 min behind) later: the later one wins.
        assert p.admin("PUT", "server1", "/config", {"failures_to_switch": 4}).json()["replicated"]
        assert p.admin("PUT", "server2", "/config", {"failures_to_switch": 6}).json()["replicated"]
        wait_until(lambda: config_value(p, "server1", "failures_to_switch") == 6, 3, "the later change on server1")
        assert config_value(p, "server2", "failures_to_switch") == 6
        assert "Clock skew with server2 exceeds 1 s" in p.nodes["server1"].ftlog()
        # Failover and failback still keep their bounds with the skewed clock.
        p.nodes["server1"].kill()
        p.wait_active("server2", 6 * 0.5 + 0.5 + 0.5 + 3)
        p.nodes["server1"].start()
        p.wait_active("server1", 20)
        assert os.environ.get("FAKETIME") is None
