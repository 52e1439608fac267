"""Hooks and history on a real pair, with a real program as HS_NOTIFY_COMMAND: the order under a burst of
switches, a hook that hangs, a hook that fails, and a crash (kill -9) with events pending."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.localpair import SECRET, TOKEN, Pair, running_pair
from lab.waiting import holds_for, wait_until

pytestmark = pytest.mark.integration

HOOK = """#!/bin/sh
# One line a delivery into $HOOK_OUT/<node>; fails while $HOOK_OUT/fail exists, hangs while $HOOK_OUT/hang does.
[ -e "$HOOK_OUT/hang" ] && exec sleep 300
if [ -e "$HOOK_OUT/fail" ]; then echo "receiver down" >&2; exit 1; fi
mkdir "$HOOK_OUT/$HS_NODE_ID.busy" 2>/dev/null || echo OVERLAP >> "$HOOK_OUT/$HS_NODE_ID"
echo "$HS_SEQUENCE|$HS_EVENT|$HS_ROLE|$HS_PREVIOUS_ROLE|$HS_EPOCH|$HS_RULE|$HS_CAUSE|$HS_PEER_ROLE|$HS_REASON" \\
  >> "$HOOK_OUT/$HS_NODE_ID"
env > "$HOOK_OUT/$HS_NODE_ID.env"
rmdir "$HOOK_OUT/$HS_NODE_ID.busy"
"""


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "hook-out"
    d.mkdir()
    return d


@pytest.fixture
def hooked(tmp_path: Path, out: Path) -> Iterator[Pair]:
    hook = tmp_path / "notify.sh"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    with running_pair(tmp_path / "pair", interval=1.0, timeout=1.0,
                      extra={"HS_NOTIFY_COMMAND": str(hook), "HS_NOTIFY_TIMEOUT_S": "1", "HOOK_OUT": str(out)}) as p:
        p.start()
        p.settle("server1")
        yield p


def switch(pair: Pair, target: str) -> None:
    """POST /switch; asked again when R7 refused it because this moment's check of the target timed out (a
    loaded machine), as an operator would."""
    for _ in range(5):
        r = pair.admin("POST", "server1", "/switch", {"target": target})
        if r.status_code == 200:
            return
        assert r.status_code == 409 and "(timeout)" in r.text, r.text
    raise AssertionError(f"switch to {target} refused 5 times: {r.text}")


def delivered(out: Path, node_id: str) -> list[dict[str, str]]:
    path = out / node_id
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        assert line != "OVERLAP", "two runs of the hook at once"
        seq, event, role, previous, epoch, rule, cause, peer_role, reason = line.split("|", 8)
        rows.append({"seq": int(seq), "event": event, "role": role, "previous": previous, "epoch": int(epoch),
                     "rule": rule, "cause": cause, "peer_role": peer_role, "reason": reason})
    return rows


def metric(pair: Pair, node_id: str, name: str) -> float:
    text = pair.http.get(pair.arbiter_url(node_id) + "/metrics").text
    m = re.search(rf'^{name}{{node="{node_id}"}} (\S+)$', text, re.M)
    assert m, name
    return float(m.group(1))


def drained(pair: Pair) -> bool:
    return all(metric(pair, n, "hotstandby_hook_pending") == 0 for n in ("server1", "server2"))


def history(pair: Pair, node_id: str, **params: Any) -> list[dict[str, Any]]:
    r = pair.http.get(pair.arbiter_url(node_id) + "/history", params=params)
    assert r.status_code == 200, r.text
    return list(r.json())


def assert_in_order(rows: list[dict[str, str]] | list[dict[str, Any]]) -> None:
    """Sequences strictly increasing with no gap; each role change starts from the role the one before left."""
    seqs = [r["seq"] for r in rows]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    changes = [r for r in rows if r["event"] == "role_change"]
    for before, after in itertools.pairwise(changes):
        assert after["previous"] == before["role"], (before, after)


def test_a_burst_of_switches_reaches_the_hook_in_order_and_the_history(hooked: Pair, out: Path) -> None:
    """Six switches back and forth: on each node every event reaches the hook once, in order, one at a time,
    role changes chained from/to; the history holds the same changes, newest first, pages, and who asked."""
    pair = hooked
    for k in range(6):
        switch(pair, "server2" if k % 2 == 0 else "server1")
    wait_until(lambda: drained(pair), 30, "every event delivered")
    for node_id in ("server1", "server2"):
        rows = delivered(out, node_id)
        assert_in_order(rows)
        changes = [r for r in rows if r["event"] == "role_change"]
        assert changes[-1]["role"] == pair.role(node_id)
        kept = history(pair, node_id, limit=1000)
        assert [(h["from"], h["to"], h["epoch"]) for h in reversed(kept)] == \
            [(c["previous"], c["role"], c["epoch"]) for c in changes]
        assert {r["event"] for r in rows} >= {"role_change", "cti_started", "cti_stopped"}
        env = (out / f"{node_id}.env").read_text()
        assert SECRET not in env and TOKEN not in env and "NOTIFY_SOCKET" not in env, "the hook sees no secret"
        assert f"HS_NODE_ID={node_id}" in env and "HOOK_OUT=" in env, "but the node's own environment"
        manual = [h for h in kept if h["cause"] == "manual"]
        assert len(manual) >= 6 and all(h["asked_by"] == "API from 127.0.0.1" for h in manual), manual
    page1 = pair.http.get(pair.arbiter_url("server1") + "/history", params={"limit": 2})
    nxt = re.match(r'<(/history\?limit=2&before=(\d+))>; rel="next"', page1.headers["link"])
    assert nxt is not None
    page2 = pair.http.get(pair.arbiter_url("server1") + nxt.group(1)).json()
    ids = [e["id"] for e in page1.json()] + [e["id"] for e in page2]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
    cli = pair.cli("history", "--json", "--limit", "100")
    assert cli.returncode == 0, cli.stderr
    merged = json.loads(cli.stdout)
    assert len(merged) == len(history(pair, "server1", limit=100)) + len(history(pair, "server2", limit=100))
    assert [e["at"] for e in merged] == sorted((e["at"] for e in merged), reverse=True)
    table = pair.cli("history")
    assert table.returncode == 0 and "asked by" in table.stdout and "API from 127.0.0.1" in table.stdout


def test_hangs_failures_and_a_crash_lose_nothing_and_delay_nothing(hooked: Pair, out: Path) -> None:
    """A hanging hook is killed at its timeout while switches and ticks go on unhindered; a failing one is
    retried (logged, counted); server2 killed with events pending delivers them after its restart, in order,
    with the sequence going on from where it was."""
    pair = hooked
    (out / "hang").touch()
    switch(pair, "server2")
    wait_until(lambda: "killed after 1 s (HS_NOTIFY_TIMEOUT_S)" in pair.nodes["server2"].ftlog(), 15,
               "the hung hook killed at its timeout")
    holds_for(lambda: pair.http.get(pair.arbiter_url("server2") + "/healthz").status_code == 200, 2,
              "ticks going on while the hook hangs")
    (out / "fail").touch()
    (out / "hang").unlink()
    wait_until(lambda: "exited with status 1: receiver down" in pair.nodes["server2"].ftlog(), 20,
               "a failed attempt in the log")
    assert metric(pair, "server2", "hotstandby_hook_failures_total") >= 2
    assert metric(pair, "server2", "hotstandby_hook_pending") > 0
    assert delivered(out, "server2") == [] or delivered(out, "server2")[-1]["event"] != "role_change" or \
        delivered(out, "server2")[-1]["role"] == "STANDBY", "nothing after the switch got through"

    pair.nodes["server2"].kill()  # kill -9 with events pending in its outbox
    pair.wait_active("server1", pair.bound_r1 + 5)
    (out / "fail").unlink()
    pair.nodes["server2"].start()
    wait_until(lambda: pair.serving("server2"), 20, "server2 serving again")
    wait_until(lambda: drained(pair), 90, "every event delivered after the restart")
    rows = delivered(out, "server2")
    assert_in_order(rows)
    changes = [(r["previous"], r["role"], r["rule"], r["cause"]) for r in rows if r["event"] == "role_change"]
    assert ("STANDBY", "ACTIVE", "R7", "manual") in changes, "the switch's event survived the crash"
    assert changes[-1] == ("ACTIVE", "STANDBY", "R6", "start"), "then the restart, which came back STANDBY"
    restart = history(pair, "server2", limit=1)[0]
    assert (restart["from"], restart["to"], restart["cause"]) == ("ACTIVE", "STANDBY", "start")
    assert "Hook role_change" in pair.nodes["server2"].ftlog() and "delivered after" in pair.nodes["server2"].ftlog()
