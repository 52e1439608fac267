"""SPEC 12 in the fault lab: real partitions of the three (server1, server2, and etcd on the infra host).

The invariant measured from outside: with a witness, two nodes never run CTI at once for longer than
one tick (I), whatever is cut, as the CTI manager simulator counts it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from lab.etcd import CLIENT_PORT as ETCD_PORT
from lab.etcd import start_in_lab
from lab.labpair import ConfigLedger, LabPair
from lab.waiting import wait_until
from tests.lab.matrix import Row, lab_seconds, margin_for

pytestmark = [pytest.mark.lab, pytest.mark.integration]

L = 2.0  # what etcd grants for max(N·I, 1 s) = 1.5 s at the lab's profile (its minimum is 2 s)

MakePair = Callable[..., LabPair]
RowOf = Callable[..., Row]


def witnessed_pair(make_pair: MakePair, **kwargs: Any) -> tuple[LabPair, ConfigLedger]:
    """etcd on the infra host, both nodes started with it as their witness, settled with server1 ACTIVE."""
    pair = make_pair(**kwargs)
    url = start_in_lab(pair.lab, "infra", pair.root)
    for node in pair.nodes.values():
        node.env["HS_WITNESS_URL"] = url
    pair.start()
    pair.settle("server1")
    wait_until(lambda: pair.status("server2")["witness"]["holder"] == "server1", 5, "server1 holding the key")
    ledger = ConfigLedger(pair)
    assert ledger.put("server1")
    return pair, ledger


def test_active_cut_from_peer_and_witness(make_pair: MakePair, row: RowOf) -> None:
    """The ACTIVE loses its peer and etcd (the CTI manager and LAN still reachable): it steps down (R12) before
    its lease can expire; server2 then takes the key and ACTIVE; CTI overlap at most one tick."""
    pair, ledger = witnessed_pair(make_pair)
    lease_bound = L + pair.interval + pair.timeout  # lease expiry, etcd's sweep (0.5 s), one tick
    r = row("witness: ACTIVE cut from peer and etcd", bound=max(pair.bound_r1, lease_bound))
    t0 = time.monotonic()
    pair.lab.cut("server1", "server2")
    pair.lab.cut_port("server1", "infra", ETCD_PORT)
    wait_until(lambda: pair.role("server1") == "STANDBY", L + margin_for(pair), "server1 STANDBY (R12)")
    down = time.monotonic() - t0
    assert down < L + pair.timeout, f"server1 stepped down {down:.2f} s after the cut, its lease is L = {L} s"
    r.within(pair.wait_active("server2", r.bound + 10), r.bound, margin_for(pair))  # type: ignore[arg-type]
    wait_until(lambda: pair.holders() == ["server2"], 5, "CTI on server2")
    assert pair.status("server2")["witness"]["holder"] == "server2"
    assert "R12 witness lost" in pair.nodes["server1"].ftlog()
    # Cut off from etcd, server1 cannot take ACTIVE back however long server2 stays silent to it.
    assert pair.role("server1") == "STANDBY"
    assert ledger.put("server2")
    pair.lab.heal()
    pair.settle("server1", pair.bound_r3 + margin_for(pair) + 5)
    assert ledger.put()
    r.outside(pair, ledger, overlap_max=pair.interval)


@pytest.mark.slow
def test_peer_link_cut_with_a_witness_keeps_one_active(make_pair: MakePair, row: RowOf) -> None:
    """The cut that gives two ACTIVE nodes without a witness: with one, server2 cannot take the key that
    server1 keeps renewing, so nothing switches and CTI never runs twice."""
    pair, ledger = witnessed_pair(make_pair)
    r = row("witness: peer link cut both ways, healed")
    pair.lab.cut("server1", "server2")
    window = lab_seconds(3 * pair.bound_r1, 30)
    end = time.monotonic() + window
    while time.monotonic() < end:
        assert pair.roles() == ("ACTIVE", "STANDBY")
        time.sleep(0.1)
    assert "the witness key is held by server1" in pair.status("server2")["local"]["last_decision"]
    assert ledger.put("server1")
    pair.lab.heal()
    wait_until(lambda: pair.status("server2")["peer"]["status"] == "Active (Primary)", 10, "the link back")
    assert ledger.put()
    r.outside(pair, ledger)


@pytest.mark.slow
def test_witness_cut_from_the_active_only_switches_nothing(make_pair: MakePair, row: RowOf) -> None:
    """etcd unreachable from the ACTIVE only, peer link fine: failsafe, nothing switches; healed, it holds the key."""
    pair, ledger = witnessed_pair(make_pair)
    r = row("witness: etcd cut from the ACTIVE only, healed")
    pair.lab.cut_port("server1", "infra", ETCD_PORT)
    end = time.monotonic() + lab_seconds(4 * L, 30)
    while time.monotonic() < end:
        assert pair.roles() == ("ACTIVE", "STANDBY")
        time.sleep(0.1)
    assert "failsafe" in pair.status("server1")["local"]["last_decision"]
    assert pair.status("server1")["witness"]["reachable"] is False
    pair.lab.heal()
    wait_until(lambda: pair.status("server1")["witness"]["holds"], 10, "server1 holding the key again")
    assert pair.roles() == ("ACTIVE", "STANDBY")
    assert ledger.put()
    r.outside(pair, ledger)
