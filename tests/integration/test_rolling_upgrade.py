"""A rolling upgrade, as operators do it: a node of this release beside a node of the previous one
(lab.release.PREVIOUS, which speaks exchange protocol 1 only) keeps the pair correct at every step."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import release
from lab.localpair import Pair
from lab.waiting import holds_for, wait_until
from lab.watch import PEER, popen

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Path:
    why = release.unavailable()
    if why:
        pytest.skip(why)
    return release.unpack(release.PREVIOUS, tmp_path_factory.mktemp("previous"))


def run(pair: Pair, node_id: str, tree: Path | None) -> None:
    """Start ``node_id`` as the release in ``tree`` (None: this checkout) and wait until it serves."""
    node = pair.nodes[node_id]
    node.spawn = release.spawner(tree) if tree else popen
    node.start()
    wait_until(lambda: pair.serving(node_id), 30, f"{node_id} serving")


def steady(pair: Pair, active: str, seconds: float) -> None:
    """``active`` ACTIVE, its peer STANDBY, CTI only on ``active``, and no failed probe counting up, throughout."""
    def ok() -> bool:
        a, s = pair.status(active)["local"], pair.status(PEER[active])["local"]
        return (a["role"], s["role"]) == ("ACTIVE", "STANDBY") and a["consecutive_failures"] == 0 == \
            s["consecutive_failures"] and pair.holders() == [active]

    wait_until(ok, pair.bound_r1 + 10, f"{active} ACTIVE and steady")
    holds_for(ok, seconds, f"{active} ACTIVE, {PEER[active]} STANDBY, no failure")


def protocol(pair: Pair, node_id: str) -> int | None:
    """The exchange protocol a node of this release speaks to its peer (status.local.channels)."""
    return pair.status(node_id)["local"]["channels"]["exchange"].get("protocol")


@pytest.mark.early(29)
def test_standby_upgraded_then_switch_then_the_other_upgraded(pair: Pair, previous: Path) -> None:
    """Both on the previous release; the STANDBY upgraded; a switch to it; the other upgraded: at every step
    one ACTIVE with CTI only there, no switch nobody asked for, no CTI overlap, no stale epoch; the two
    releases exchange in protocol 1, two nodes of this release in protocol 2 (one exchange a tick)."""
    ticks = 8 * pair.interval
    pair.extra["HS_AUTO_FAILBACK"] = "false"
    for node in pair.nodes.values():
        node.env["HS_AUTO_FAILBACK"] = "false"
    run(pair, "server1", previous)
    run(pair, "server2", previous)
    steady(pair, "server1", ticks)

    # 1. The STANDBY is upgraded: the mixed pair stays as it was.
    changes = {n: pair.role_changes(n) for n in PEER}
    pair.nodes["server2"].stop()
    run(pair, "server2", None)
    steady(pair, "server1", ticks)
    assert protocol(pair, "server2") == 1
    assert changes == {n: pair.role_changes(n) for n in PEER}

    # 2. A switch to the upgraded node, asked of the previous release's ACTIVE (R7 across releases).
    r = pair.admin("POST", "server1", "/switch", {"target": "server2"})
    assert r.status_code == 200, r.text
    steady(pair, "server2", ticks)
    assert protocol(pair, "server2") == 1

    # 3. The other node is upgraded (auto_failback off: the pair stays as the operator left it).
    pair.nodes["server1"].stop()
    run(pair, "server1", None)
    wait_until(lambda: protocol(pair, "server1") == protocol(pair, "server2") == 2, 15, "protocol 2 both ways")
    steady(pair, "server2", ticks)
    by = {n: pair.status(n)["local"]["channels"]["exchange"]["by"] for n in PEER}
    assert by["server1"] == "asking"  # the STANDBY asks every tick; the ACTIVE counts being asked
    wait_until(lambda: pair.status("server2")["local"]["channels"]["exchange"]["by"] == "asked", 5,
               "the ACTIVE answering, not asking")
    assert changes["server1"] + 1 == pair.role_changes("server1")  # the switch, and nothing else
    assert changes["server2"] + 1 == pair.role_changes("server2")

    state = pair.manager_state()
    assert (state["overlap_seconds_total"], state["stale_epoch_total"]) == (0, 0)


@pytest.mark.parametrize("dies", ["previous", "this"])
def test_the_survivor_takes_over_when_the_active_of_either_release_dies(pair: Pair, previous: Path,
                                                                         dies: str) -> None:
    """A mixed pair fails over within R1's bound when its ACTIVE is killed, whichever release the ACTIVE runs."""
    run(pair, "server1", previous if dies == "previous" else None)
    run(pair, "server2", None if dies == "previous" else previous)
    steady(pair, "server1", 4 * pair.interval)
    pair.nodes["server1"].kill()
    took = pair.wait_active("server2", pair.bound_r1 + 5)
    assert took <= pair.bound_r1 + 1.0  # R1: N·I + T + I, plus the observer's polling on a loaded machine
    wait_until(lambda: pair.holders() == ["server2"], 10, "CTI on server2")
