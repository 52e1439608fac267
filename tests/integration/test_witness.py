"""The witness (SPEC 12) with real node processes and a real etcd: failover through the key, the failsafe
during an etcd outage, handovers that move the key, and what status and metrics show.

A partition of the ACTIVE from both its peer and etcd needs real network cuts: it is a row of the fault
lab (tests/lab/test_chaos.py, ``make chaos``).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hotstandby.witness import key_for
from lab.etcd import ETCD, Etcd, running_etcd
from lab.localpair import Pair, running_pair
from lab.waiting import wait_until
from tests.needs import need

MARGIN = 3.0
CLUSTER = "itest"
L = 2.0  # what etcd grants for max(N·I, 1 s) = 1.5 s (its minimum is 2 s at the default election timeout)


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Etcd]:
    need(ETCD, "etcd-server")
    with running_etcd(tmp_path / "etcd") as e:
        yield e


@pytest.fixture
def wpair(tmp_path: Path, etcd: Etcd) -> Iterator[Pair]:
    """The fast-profile pair (I = T = 0.5 s, N = 3) with ``etcd`` as its witness, started and settled."""
    (tmp_path / "pair").mkdir()
    with running_pair(tmp_path / "pair", extra={"HS_WITNESS_URL": etcd.url, "HS_CLUSTER_NAME": CLUSTER}) as p:
        p.start()
        p.wait_active("server1", p.bound_r1 + 5)
        wait_until(lambda: key_holder(etcd) == "server1", 5, "server1 holding the witness key")
        yield p


def key_holder(etcd: Etcd) -> str | None:
    record = etcd.get(key_for(CLUSTER))
    return record["value"]["node_id"] if record else None


def epoch_matches_key(pair: Pair, etcd: Etcd, node_id: str) -> bool:
    """The node's epoch is the one in the key, and etcd's revision of the write that took it."""
    record = etcd.get(key_for(CLUSTER))
    epoch = pair.status(node_id)["local"]["epoch"]
    return record is not None and record["value"] == {"node_id": node_id, "epoch": epoch} and \
        epoch in (record["create_revision"], record["mod_revision"])


def test_status_and_metrics_show_the_witness(wpair: Pair, etcd: Etcd) -> None:
    """GET /status shows witness {url, reachable, holder, lease_ttl_s} on both nodes; the metric is 1; the log
    says it was found; server1's epoch is etcd's revision of its key."""
    for node_id in ("server1", "server2"):
        w = wait_until(lambda n=node_id: (s := wpair.status(n)["witness"])["holder"] == "server1" and s, 5,
                       f"{node_id} seeing server1 hold the key")
        assert (w["url"], w["reachable"], w["holder"], w["lease_ttl_s"]) == (etcd.url, True, "server1", L)
        metrics = httpx.get(wpair.arbiter_url(node_id) + "/metrics").text
        assert f'hotstandby_witness_up{{node="{node_id}"}} 1.0' in metrics
        assert "Arbiter : Witness found: " in wpair.nodes[node_id].ftlog()
    assert wpair.status("server1")["witness"]["holds"] is True
    assert epoch_matches_key(wpair, etcd, "server1")


def test_kill_9_of_the_active_the_standby_takes_the_key_within_the_r1_bound(wpair: Pair, etcd: Etcd) -> None:
    """(a) kill -9 of the ACTIVE: once its lease is gone server2 takes the key and is ACTIVE within the R1 bound,
    its epoch etcd's revision; CTI moves with no more overlap than the dead node's registration lapse."""
    wait_until(lambda: wpair.holders() == ["server1"], 5, "server1 holding CTI")
    wpair.nodes["server1"].kill()
    took = wpair.wait_active("server2", wpair.bound_r1 + MARGIN)
    assert took <= wpair.bound_r1 + MARGIN
    assert key_holder(etcd) == "server2"
    assert epoch_matches_key(wpair, etcd, "server2")
    assert wait_until(lambda: wpair.holders() == ["server2"], 5, "server2 registered with the CTI manager")
    assert wpair.manager_state()["overlap_seconds_total"] < 2 * wpair.interval
    assert "SWITCH THIS SERVER TO PRIMARY, R1 failover" in wpair.nodes["server2"].ftlog()


def test_an_etcd_outage_alone_switches_nothing(wpair: Pair, etcd: Etcd) -> None:
    """(b) etcd hangs for 3·L while the peer link is fine: failsafe, nothing switches, CTI stays; the witness is
    reported lost, then found, and server1 holds the key again."""
    wait_until(lambda: wpair.holders() == ["server1"], 5, "server1 holding CTI")
    pid = wpair.status("server1")["local"]["cti"]["pid"]
    etcd.freeze()
    try:
        wait_until(lambda: wpair.status("server1")["witness"]["reachable"] is False, 5, "the witness lost")
        wait_until(lambda: "failsafe" in wpair.status("server1")["local"]["last_decision"], 5, "the failsafe")
        deadline = time.monotonic() + 3 * L
        while time.monotonic() < deadline:
            assert (wpair.role("server1"), wpair.role("server2")) == ("ACTIVE", "STANDBY")
            time.sleep(0.1)
        assert "server2 confirms STANDBY" in wpair.status("server1")["local"]["last_decision"]
        assert 'hotstandby_witness_up{node="server1"} 0.0' in httpx.get(wpair.arbiter_url("server1") + "/metrics").text
    finally:
        etcd.thaw()
    wait_until(lambda: wpair.status("server1")["witness"]["holds"], 10, "server1 holding the key again")
    assert (wpair.role("server1"), wpair.role("server2")) == ("ACTIVE", "STANDBY")
    assert wpair.status("server1")["local"]["cti"]["pid"] == pid
    assert wpair.manager_state()["overlap_seconds_total"] == 0.0
    log = wpair.nodes["server1"].ftlog()
    assert "Arbiter : Witness lost: " in log and log.count("Arbiter : Witness found: ") >= 2
    assert "SWITCH" not in log.split("Witness lost")[1]


def test_manual_switch_hands_the_key_over(wpair: Pair, etcd: Etcd) -> None:
    """R7 with a witness: server1 stops CTI and releases the key, server2 takes it (epoch = revision); no overlap."""
    wait_until(lambda: wpair.holders() == ["server1"], 5, "server1 holding CTI")
    r = wpair.admin("POST", "server1", "/switch", {"target": "server2"})
    assert r.status_code == 200, r.text
    assert (wpair.role("server2"), wpair.role("server1")) == ("ACTIVE", "STANDBY")
    assert key_holder(etcd) == "server2" and epoch_matches_key(wpair, etcd, "server2")
    assert wait_until(lambda: wpair.holders() == ["server2"], 5, "CTI on server2")
    assert wpair.manager_state()["overlap_seconds_total"] == 0.0


def test_sigterm_hands_the_key_over_within_2_s(wpair: Pair, etcd: Etcd) -> None:
    """R10 with a witness: SIGTERM to the ACTIVE releases the key on the way out; server2 ACTIVE within 2 s."""
    wait_until(lambda: wpair.holders() == ["server1"], 5, "server1 holding CTI")
    t0 = time.monotonic()
    wpair.nodes["server1"].signal(signal.SIGTERM)
    wait_until(lambda: wpair.ft("server2") == 200, 4.0, "server2 ACTIVE")
    # R10's 2 s plus the witness's two fsynced etcd writes (release, take): 2.52 s was seen on a loaded CI run.
    assert time.monotonic() - t0 <= 3.0
    # Once seen on a loaded CI machine: the key briefly absent after the handover, re-taken by
    # server2's next tick (an ACTIVE whose key vanished takes it back).
    wait_until(lambda: key_holder(etcd) == "server2", 3.0, "server2 holding the key")


def test_a_forced_switch_cannot_take_a_key_the_frozen_active_still_holds(wpair: Pair, etcd: Etcd) -> None:
    """SPEC 3's force meets SPEC 12: while the frozen ACTIVE's lease lives, server2 cannot take the key (409,
    saying so); once the lease expired, R1 or the forced switch succeeds and the thawed server1 steps down."""
    wpair.nodes["server1"].signal(signal.SIGSTOP)
    try:
        # The frozen server1's key, bound to a lease that outlives any loaded machine's request (its own
        # lease is L = 2 s): whatever the timing, the key is not free while server2 asks.
        held = etcd.get(key_for(CLUSTER))
        assert held is not None and held["value"]["node_id"] == "server1"
        lease, _ = etcd.grant(60)
        etcd.put(key_for(CLUSTER), f'{{"node_id":"server1","epoch":{held["value"]["epoch"]}}}', lease)
        r = wpair.admin("POST", "server2", "/switch", {"target": "server2", "force": True})
        assert r.status_code == 409, r.text
        assert "witness key is held by server1" in r.json()["detail"]
        assert wpair.role("server2") == "STANDBY" and key_holder(etcd) == "server1"
        etcd.call("/v3/lease/revoke", {"ID": str(lease)})  # the frozen node's lease expires
        wpair.wait_active("server2", wpair.bound_r1 + MARGIN)
        assert key_holder(etcd) == "server2"
    finally:
        wpair.nodes["server1"].signal(signal.SIGCONT)
    wait_until(lambda: wpair.role("server1") == "STANDBY", 3 * wpair.interval + MARGIN, "server1 back to STANDBY")
    assert wpair.role("server2") == "ACTIVE"
