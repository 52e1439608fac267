"""A node of this release starting on the database the previous release left (after a crash while ACTIVE)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotstandby.store import Store
from lab.localpair import ADDR, SECRET, TOKEN
from lab.waiting import free_port, wait_until
from lab.watch import NodeProcess, client
from tests.needs import need

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release1-server2.db"

pytestmark = pytest.mark.integration


def _ports_free(db: Path) -> None:
    """The fixture holds the ports of the run that made it: move one this machine uses now elsewhere."""
    with sqlite3.connect(db) as conn:
        ports = dict(conn.execute("SELECT name, value FROM setting WHERE name IN ('monitor_port', 'arbiter_port')"))
        for name, port in ports.items():
            with socket.socket() as s:
                try:
                    s.bind((ADDR["server2"], int(port)))
                    continue
                except OSError:
                    pass
            conn.execute("UPDATE setting SET value = ? WHERE name = ?", (str(free_port(ADDR["server2"])), name))


def test_first_start_on_a_previous_release_database(tmp_path: Path) -> None:
    """It migrates on first start, serves the old settings exactly as they were (values, stamps, origins),
    comes back STANDBY whatever the old release stored, and goes on from the stored epoch."""
    data = tmp_path / "server2"
    data.mkdir()
    db = data / "hotstandby.db"
    shutil.copyfile(FIXTURE, db)
    _ports_free(db)
    with sqlite3.connect(db) as conn:
        old = {n: (v, at, o) for n, v, at, o in conn.execute("SELECT name, value, updated_at, origin FROM setting")}
    port = int(old["arbiter_port"][0])
    env = {"HS_NODE_ID": "server2", "HS_BIND_HOST": ADDR["server2"], "HS_DATA_DIR": str(data),
           "HS_PEER_SECRET": SECRET, "HS_ADMIN_TOKEN": TOKEN,
           # Bootstrap values that differ from the database's: the database wins.
           "HS_FAILURES_TO_SWITCH": "9", "HS_HEARTBEAT_INTERVAL_S": "30", "HS_HEARTBEAT_TIMEOUT_S": "10"}
    node = NodeProcess("server2", env, data)
    http = client()
    url = f"http://{ADDR['server2']}:{port}"
    try:
        node.start()
        wait_until(partial(lambda: http.get(url + "/healthz", timeout=1).status_code in (200, 503)), 30,
                   "the node serving on the database's ports")
        def settings() -> dict[str, Any] | None:
            r = http.get(url + "/config", timeout=2)
            return r.json()["settings"] if r.status_code == 200 else None

        served = wait_until(settings, 30, "GET /config answering")  # a loaded machine: the first may be refused
        assert {n: (json.loads(v), at, o) for n, (v, at, o) in old.items()} == {
            n: (s["value"], s["updated_at"], s["origin"]) for n, s in served.items()}
        local = http.get(url + "/status").json()["local"]
        assert local["role"] == "STANDBY" and local["epoch"] >= 2
        first = http.get(url + "/history").json()[-1]  # its history starts with the restart out of ACTIVE
        assert (first["from"], first["to"], first["cause"], first["epoch"]) == ("ACTIVE", "STANDBY", "start", 2)
        # Alone (server1 is not running), it fails over by R1 from the stored epoch, on the old settings.
        wait_until(lambda: http.get(url + "/status").json()["local"]["role"] == "ACTIVE", 30, "R1 on the old db")
        assert http.get(url + "/status").json()["local"]["epoch"] > 2
    except httpx.HTTPError:
        raise AssertionError(node.output()[-3000:]) from None
    finally:
        node.stop()
        http.close()
    assert db.with_name("hotstandby.db.schema1.bak").exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2


def test_a_node_restarted_on_a_full_data_disk_refuses_in_one_line(tmp_path: Path) -> None:
    """Its restart cannot write STANDBY: it refuses to start, exit 2 with one line saying why, no traceback
    (the nemesis found a traceback and exit 1 here: seed 4, no witness, a kill while the disk was full)."""
    need("mount", "mount")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    try:
        data = disk / "server2"
        data.mkdir()
        db = data / "hotstandby.db"
        store = Store(db)  # this release's schema, left ACTIVE by a node that was killed
        store.save_node(node_id="server2", role="ACTIVE", epoch=5, cause="failover")
        store.close()
        filler = disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        # 32 kB left: the database opens (its -shm fits), the first write does not (with none left, the open
        # itself fails, which was always a one-line refusal).
        os.truncate(filler, max(0, filler.stat().st_size - 32 * 1024))
        env = {**os.environ, "HS_NODE_ID": "server2", "HS_BIND_HOST": ADDR["server2"], "HS_DATA_DIR": str(data),
               "HS_PEER_SECRET": SECRET, "HS_ADMIN_TOKEN": TOKEN}
        r = subprocess.run([sys.executable, "-m", "cli", "node"], env=env, capture_output=True, text=True,
                           timeout=60, cwd=Path(__file__).resolve().parents[2])
        assert r.returncode == 2, r.stderr[-2000:]
        assert "Traceback" not in r.stderr
        assert r.stderr.count("\n") == 1 and "disk is full" in r.stderr and "free space" in r.stderr, r.stderr
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
