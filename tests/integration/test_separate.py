"""`hotstandby arbiter` and `hotstandby monitor` as separate processes sharing HS_DATA_DIR."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from lab.localpair import HOTSTANDBY, ROOT, Pair
from lab.waiting import wait_until


def test_separate_arbiter_and_monitor_follow_the_committed_role(pair: Pair, tmp_path: Path) -> None:
    """server1 as two processes: R6 makes it ACTIVE with CTI under its monitor, which the arbiter's CTI restart
    reaches; a switch moves CTI without overlap, and a STANDBY refuses a CTI restart."""
    env = os.environ | pair.nodes["server1"].env
    procs = []
    for role in ("monitor", "arbiter"):
        with open(tmp_path / f"{role}.out", "wb") as out:
            procs.append(subprocess.Popen([*HOTSTANDBY, role], env=env, cwd=ROOT, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True))
    try:
        pair.start("server2")
        wait_until(lambda: pair.serving("server1"), 20, "server1's two services")
        pair.wait_active("server1", pair.bound_r1 + 5)
        wait_until(lambda: pair.holders() == ["server1"], 10, "CTI registered from server1's monitor")
        assert pair.ft("server1") == 200
        # The console's CTI restart: the arbiter asks its monitor (another process) with the admin token.
        r = pair.admin("POST", "server1", "/cti/restart")
        assert (r.status_code, r.json()["restarts"]) == (200, 1), r.text
        assert pair.cti("server1")["restarts"] == 1
        t0 = time.monotonic()
        r = pair.admin("POST", "server1", "/switch", {"target": "server2"})
        assert r.status_code == 200, r.text
        assert time.monotonic() - t0 < pair.interval + 2
        assert httpx.get(pair.monitor_url("server1") + "/cti").json()["state"] == "stopped"
        refused = pair.admin("POST", "server1", "/cti/restart")
        assert (refused.status_code, refused.json()["detail"]) == (409, "CTI runs only on the ACTIVE node; "
                                                                         "this node is STANDBY")
        wait_until(lambda: pair.holders() == ["server2"], 10, "CTI moved to server2")
        assert pair.manager_state()["overlap_seconds_total"] == 0.0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
