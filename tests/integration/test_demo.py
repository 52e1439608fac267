"""`hotstandby demo` (what `make run` starts): the operator's first five minutes, end to end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from lab.localpair import HOTSTANDBY, ROOT
from lab.waiting import wait_until
from tests.needs import need


@pytest.fixture(autouse=True)
def _haproxy() -> None:
    need("haproxy", "haproxy")


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children run in sessions of their own, so walk parents)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,stat="], capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines()]
    parent = {int(p): int(pp) for p, pp, st in rows if not st.startswith("Z")}
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def test_demo_fails_over_behind_haproxy_and_stops_cleanly(tmp_path: Path) -> None:
    """kill -9 of server1 in the demo: server2 ACTIVE, the VIP names it within 2 s after, Ctrl-C leaves nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HS_")}
    demo = subprocess.Popen([*HOTSTANDBY, "demo", "--workdir", str(tmp_path)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert demo.stdout is not None
        pid_line = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "kill -9" not in pid_line:
            pid_line = demo.stdout.readline()
        s1_pid = int(re.search(r"kill -9 (\d+)", pid_line).group(1))  # type: ignore[union-attr]
        vip = "http://127.0.0.10:8080/whoami"
        wait_until(lambda: httpx.get(vip, headers={"connection": "close"}).json()["node_id"] == "server1", 20,
                   "the VIP routing to server1")
        before = _descendants(demo.pid)
        assert len(before) >= 5, before  # manager, two nodes, a CTI child, haproxy
        os.kill(s1_pid, signal.SIGKILL)
        t0 = time.monotonic()
        wait_until(lambda: httpx.get("http://127.0.0.12:2011/status").json()["local"]["role"] == "ACTIVE",
                   3 * 1 + 1 + 1 + 3, "server2 ACTIVE")
        promoted = time.monotonic()
        wait_until(lambda: httpx.get(vip, headers={"connection": "close"}).json()["node_id"] == "server2", 2 + 1,
                   "the VIP routing to server2")
        assert time.monotonic() - promoted <= 3.0
        assert promoted - t0 <= 3 * 1 + 1 + 1 + 3
        holders = httpx.get("http://127.0.0.13:2748/state").json()
        assert [h["node_id"] for h in holders["holders"]] in (["server2"], [])
        children = _descendants(demo.pid)
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(20)
    assert demo.returncode == 0
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()
             and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"]
    assert alive == []
