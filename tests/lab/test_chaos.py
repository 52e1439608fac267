"""The fault matrix of issue 5 against real node processes on the lab's hosts, one test per row.

Every row checks its SPEC bound plus a margin and takes two measures from outside the pair: the
CTI manager simulator's overlap seconds and the acknowledged config changes lost (always 0). Rows
marked ``slow`` run under ``make chaos`` only; ``HS_LAB_FULL=1`` gives the long faults their full
duration. Waiting is polling against a deadline; a fixed wait only ever shows that something does
NOT happen during a window (no switch under loss, say).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.harness import wait_until
from tests.lab.labpair import PEER, ConfigLedger, LabPair
from tests.lab.matrix import Row, lab_seconds, margin_for

pytestmark = [pytest.mark.lab, pytest.mark.integration]

MakePair = Callable[..., LabPair]
RowOf = Callable[..., Row]


def settled_pair(make_pair: MakePair, **kwargs: Any) -> tuple[LabPair, ConfigLedger]:
    """Both nodes started together and settled (server1 ACTIVE with CTI), and a first config change."""
    pair = make_pair(**kwargs)
    pair.start()
    pair.settle("server1")
    ledger = ConfigLedger(pair)
    assert ledger.put("server1")
    return pair, ledger


def watch_roles(pair: LabPair, seconds: float) -> set[tuple[str | None, str | None]]:
    """The role pairs seen while polling for ``seconds`` (a window in which nothing must change)."""
    seen = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.add(pair.roles())
        time.sleep(0.1)
    return seen


def rejoin(pair: LabPair, *node_ids: str) -> None:
    """Start ``node_ids`` again and wait until the pair is whole: server1 ACTIVE by R3/R6."""
    for n in node_ids:
        pair.nodes[n].start()
    for n in node_ids:
        wait_until(lambda n=n: pair.serving(n), 20, f"{n} serving again")
    pair.settle("server1", pair.bound_r1 + pair.bound_r3 + margin_for(pair))


# -- crashes and freezes ---------------------------------------------------------------------------


def test_kill_9_of_the_active(make_pair: MakePair, row: RowOf) -> None:
    """kill -9 of the ACTIVE: server2 ACTIVE within N·I+T+I, CTI never on both, no change lost."""
    pair, ledger = settled_pair(make_pair)
    r = row("kill -9 ACTIVE", bound=pair.bound_r1)
    pair.nodes["server1"].kill()
    r.within(pair.wait_active("server2", pair.bound_r1 + 10), pair.bound_r1, margin_for(pair))
    wait_until(lambda: pair.holders() == ["server2"], 5, "CTI on server2")
    assert ledger.put()
    rejoin(pair, "server1")
    assert ledger.put()
    r.outside(pair, ledger)


def test_kill_9_of_the_standby(make_pair: MakePair, row: RowOf) -> None:
    """kill -9 of the STANDBY changes nothing: server1 stays ACTIVE with the same CTI process."""
    pair, ledger = settled_pair(make_pair)
    r = row("kill -9 STANDBY")
    pid = pair.cti("server1")["pid"]
    pair.nodes["server2"].kill()
    wait_until(lambda: pair.status("server1")["peer"]["status"] == "Error", pair.bound_r1 + margin_for(pair),
               "server2 shown in Error")
    assert ledger.put("server1")
    assert watch_roles(pair, 2 * pair.interval) == {("ACTIVE", None)}
    assert pair.cti("server1")["pid"] == pid
    rejoin(pair, "server2")
    assert pair.cti("server1")["pid"] == pid
    assert pair.role_changes("server1") == 1  # its own promotion at start, nothing since
    r.outside(pair, ledger)


def test_sigstop_of_the_active_then_sigcont(make_pair: MakePair, row: RowOf) -> None:
    """A frozen ACTIVE host (SIGSTOP, 3·N·I) is replaced within R1; thawed, it steps down at once."""
    pair, ledger = settled_pair(make_pair)
    r = row("SIGSTOP ACTIVE 3·N·I, SIGCONT", bound=pair.bound_r1)
    frozen = 3 * pair.failures * pair.interval
    t0 = time.monotonic()
    pair.nodes["server1"].freeze()
    try:
        r.within(pair.wait_active("server2", pair.bound_r1 + 10), pair.bound_r1, margin_for(pair))
        wait_until(lambda: pair.holders() == ["server2"], 5, "CTI on server2")
        assert ledger.put("server2")
        time.sleep(max(0.0, frozen - (time.monotonic() - t0)))  # the freeze lasts 3·N·I, whatever R1 took
    finally:
        pair.nodes["server1"].thaw()
    thawed = time.monotonic()
    wait_until(lambda: pair.role("server1") == "STANDBY", pair.bound_r4 + margin_for(pair), "server1 STANDBY")
    r.took(time.monotonic() - thawed)
    assert pair.role("server2") == "ACTIVE" or pair.role("server1") == "ACTIVE"  # R3 may hand it back, once
    pair.settle("server1", pair.bound_r3 + margin_for(pair) + 5)
    assert ledger.put()
    # The thawed CTI may resume for at most the time its node needs to see it was replaced: I + T.
    r.outside(pair, ledger, overlap_max=pair.interval + pair.timeout)


# -- partitions ------------------------------------------------------------------------------------


def test_peer_link_cut_both_ways_then_healed(make_pair: MakePair, row: RowOf) -> None:
    """A cut peer link (LAN up) makes both ACTIVE; after healing, one ACTIVE again within 2N·I+I (R4)."""
    pair, ledger = settled_pair(make_pair)
    r = row("peer link cut both ways, healed", bound=pair.bound_r4)
    cut_at = time.monotonic()
    pair.lab.cut("server1", "server2")
    wait_until(lambda: pair.roles() == ("ACTIVE", "ACTIVE"), pair.bound_r1 + margin_for(pair), "both ACTIVE")
    assert ledger.put("server1") and ledger.put("server2")
    pair.lab.heal()
    took, winner = pair.wait_one_active(pair.bound_r4 + 10)
    dual_for = time.monotonic() - cut_at
    r.within(took, pair.bound_r4, margin_for(pair))
    pair.settle("server1", pair.bound_r3 + margin_for(pair) + 5)
    assert ledger.put()
    # Without a witness the pair cannot tell a cut link from a dead peer (SPEC 12): CTI ran on both
    # from the promotion until R4 repaired it.
    r.outside(pair, ledger, overlap_max=dual_for)
    assert winner in PEER
