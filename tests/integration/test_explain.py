"""`hotstandby explain` on a real pair: it says what the next tick decides and what a fault would do, changes
nothing (roles, epochs, settings, logs), and what it predicts for a dead ACTIVE is what then happens."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lab.localpair import Pair

pytestmark = pytest.mark.integration


def snapshot(pair: Pair) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for node_id in ("server1", "server2"):
        local = pair.status(node_id)["local"]
        out[node_id] = (local["role"], local["epoch"], local["cause"], local["maintenance"],
                        pair.http.get(pair.arbiter_url(node_id) + "/config").json()["digest"],
                        pair.nodes[node_id].ftlog())
    return out


def test_explain_changes_nothing_and_its_prediction_comes_true(started: Pair) -> None:
    """Every form of explain (--peer-dead, --lan-lost, --vip-to, --switch, --stop) on both nodes leaves roles,
    epochs, settings and logs as they were; server2's --peer-dead says R1 makes it ACTIVE in the next epoch
    after N ticks, and killing server1 does just that."""
    pair = started
    pair.settle("server1")
    before = snapshot(pair)

    plain = pair.cli("explain", url_node="server2")
    assert plain.returncode == 0, plain.stderr
    text = plain.stdout
    assert text.startswith("server2 is STANDBY (backup), epoch")
    assert "observed: peer probe ok, exchange ok (server1 ACTIVE" in text
    assert "next tick, seeing the same: no action: server2 is STANDBY (backup)" in text
    assert text.rstrip().endswith("nothing was changed)")

    dead = pair.cli("explain", "--peer-dead", "--json", url_node="server2")
    assert dead.returncode == 0, dead.stderr
    sc = json.loads(dead.stdout)["scenario"]
    last = sc["ticks"][-1]
    assert (len(sc["ticks"]), last["rule"], last["role"]) == (pair.failures, "R1", "ACTIVE")
    predicted_epoch = last["epoch"]

    lan = pair.cli("explain", "--lan-lost", url_node="server1")
    assert lan.returncode == 0 and "lan_probe_addresses is empty" in lan.stdout
    vip = pair.cli("explain", "--vip-to", "server2", url_node="server1")
    assert vip.returncode == 0 and "test_vip_destination is off" in vip.stdout
    ours = pair.cli("explain", "--peer-dead", url_node="server1")
    assert "then: server1 stays ACTIVE" in ours.stdout
    bad = pair.cli("explain", "--vip-to", "server3", url_node="server1")
    assert bad.returncode == 2 and "server1 or server2" in bad.stderr
    switch = pair.cli("explain", "--switch", "server2", url_node="server1")
    assert switch.returncode == 0, switch.stderr
    assert "server2 is told to go ACTIVE" in switch.stdout and "if that fails: server1 takes ACTIVE" in switch.stdout
    stop = pair.cli("explain", "--stop", "--json", url_node="server1")
    assert "handing ACTIVE to server2" in json.loads(stop.stdout)["scenario"]["outcome"]
    idle = pair.cli("explain", "--stop", url_node="server2")
    assert "then: no action: server2 stops as STANDBY" in idle.stdout
    two = pair.cli("explain", "--peer-dead", "--lan-lost")
    assert two.returncode == 2
    api = pair.http.get(pair.arbiter_url("server1") + "/explain", params={"scenario": "vip-to"})
    assert api.status_code == 422 and "target" in api.text, "a scenario without its target names it"
    assert pair.http.get(pair.arbiter_url("server1") + "/explain", params={"scenario": "meteor"}).status_code == 422

    assert snapshot(pair) == before, "explain changed something"

    pair.nodes["server1"].kill()
    pair.wait_active("server2", pair.bound_r1 + 5)
    local = pair.status("server2")["local"]
    assert (local["epoch"], local["cause"]) == (predicted_epoch, "failover")
    assert last["reason"] in pair.nodes["server2"].ftlog(), "the sentence it predicted is the one it logged"
