"""`hotstandby check` against a real pair, with the faults made real: a wrong secret, a skewed clock, a dead LAN
target, a missing CTI command, a peer that is down, bad settings; nothing changes on disk."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.etcd import ETCD, running_etcd
from lab.localpair import ADDR, HOTSTANDBY, MANAGER_HOST, ROOT, Pair, running_pair
from lab.waiting import free_port, wait_until
from tests.needs import need, need_file

pytestmark = pytest.mark.integration
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@pytest.fixture
def lan_target() -> Iterator[str]:
    """A LAN probe target that accepts connections and closes them (the gateway, in a real site)."""
    port = free_port(MANAGER_HOST)
    server = socket.create_server((MANAGER_HOST, port))

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                server.accept()[0].close()

    threading.Thread(target=accept, daemon=True).start()
    yield f"{MANAGER_HOST}:{port}"
    server.close()


@pytest.fixture
def pair(tmp_path: Path, lan_target: str) -> Iterator[Pair]:
    """A settled pair whose settings name a live LAN target and, as the VIP, server2's monitor."""
    with running_pair(tmp_path, extra={"HS_LAN_PROBE_ADDRESSES": lan_target}) as p:
        p.extra["HS_VIP_ADDRESS"] = ""
        p.start()
        p.settle("server1")
        r = p.admin("PUT", "server1", "/config", {"vip_address": f"{ADDR['server2']}:{p.monitor_port}"})
        assert r.status_code == 200, r.text
        wait_until(lambda: p.config_value("server2", "vip_address"), 10, "the VIP setting on server2")
        yield p


def check(pair: Pair, node_id: str = "server1", env: dict[str, str] | None = None,
          wrapper: tuple[str, ...] = (), *args: str) -> subprocess.CompletedProcess[str]:
    """`hotstandby check` with the node's own environment (what its unit gives it), plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HS_")}
    return subprocess.run([*wrapper, *HOTSTANDBY, "check", *args], env=base | pair.nodes[node_id].env | (env or {}),
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def lines(r: subprocess.CompletedProcess[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in r.stdout.splitlines()[:-1]:
        status, name = line.split()[0], line[6:19].strip()
        out.setdefault(name, []).append(status + " " + line[20:])
    return out


def test_a_healthy_node_passes_and_each_fault_is_told_apart(pair: Pair, lan_target: str) -> None:
    """Healthy: settings, secrets, data dir, ports, the peer (signed), its monitor, the LAN target, the VIP, the CTI
    command and manager, one line each, exit 0, --json alike. Then a wrong secret, a dead LAN target and a missing
    CTI command each fail their own line with a fix (exit 1), and a clock 20 minutes ahead (libfaketime) is told
    apart from a wrong secret while 30 s ahead is accepted and measured."""
    r = check(pair)
    assert r.returncode == 0, r.stdout + r.stderr
    got = lines(r)
    assert set(got) == {"settings", "secrets", "data dir", "ports", "peer", "peer monitor", "lan", "vip", "witness",
                        "cti command", "cti manager"}
    assert all(s.startswith(("ok", "skip")) for ls in got.values() for s in ls), r.stdout
    assert "a node is running on it" in got["data dir"][0]
    assert got["peer"][0].startswith("ok server2 at http://127.0.0.12") and "signed call" in got["peer"][0]
    assert got["lan"] == [f"ok {lan_target} accepts TCP connections"]
    assert got["vip"][0].endswith("routes to server2")
    assert got["witness"][0].startswith("skip")
    js = check(pair, "server1", None, (), "--json")
    assert js.returncode == 0, [c for c in json.loads(js.stdout)["checks"] if not c["ok"]]
    data: dict[str, Any] = json.loads(js.stdout)
    assert data["ok"] is True and len(data["checks"]) == len(r.stdout.splitlines()) - 1
    assert {"check", "status", "detail", "fix", "ok"} <= set(data["checks"][0])

    dead = f"{MANAGER_HOST}:{free_port(MANAGER_HOST)}"
    r = pair.admin("PUT", "server1", "/config", {"lan_probe_addresses": f"{lan_target},{dead}"})
    assert r.status_code == 200, r.text
    r = check(pair, env={"HS_PEER_SECRET": "not-the-pair-s-secret", "HS_CTI_COMMAND": "/opt/nowhere/cti --serve"})
    assert r.returncode == 1, r.stdout + r.stderr
    got = lines(r)
    assert got["peer"][0].startswith("FAIL server2 refused our signature: HS_PEER_SECRET differs between the nodes")
    assert "-> copy the peer secret file" in got["peer"][0]
    assert f"ok {lan_target} accepts TCP connections" in got["lan"]
    assert any(s.startswith(f"FAIL {dead}: Connect call failed") or s.startswith(f"FAIL {dead}: Connection refused")
               for s in got["lan"]), got["lan"]
    assert got["cti command"][0].startswith("FAIL /opt/nowhere/cti: not found -> install the CTI server")
    assert r.stdout.splitlines()[-1].endswith("3 failed")

    lib = str(need_file(FAKETIME_LIB, "faketime"))
    far = check(pair, env={"LD_PRELOAD": lib, "FAKETIME": "+1200s"})
    assert far.returncode == 1, far.stdout + far.stderr
    peer = lines(far)["peer"][0]
    assert "refused our signature for its time" in peer and "stale timestamp" in peer and "run NTP" in peer
    near = check(pair, env={"LD_PRELOAD": lib, "FAKETIME": "+30s"})
    peer = lines(near)["peer"][0]
    assert peer.startswith("ok"), peer
    skew = int(re.search(r"clock skew ([+-]\d+) s", peer).group(1))  # type: ignore[union-attr]
    assert -32 <= skew <= -28, peer


def test_a_peer_that_is_down_a_witness_and_bad_settings(pair: Pair, tmp_path: Path) -> None:
    """server2 stopped: its arbiter and monitor lines fail with 'start hotstandby on server2'; a live etcd as the
    witness answers (nobody holds this cluster's key), one that is not there fails. Then server1 stopped too: a
    setting the node would refuse is exit 2 naming it, and check writes nothing into the data directory."""
    need(ETCD, "etcd-server")
    pair.nodes["server2"].stop()
    with running_etcd(tmp_path / "etcd") as etcd:
        r = check(pair, env={"HS_WITNESS_URL": etcd.url, "HS_CLUSTER_NAME": "check-test"})
    got = lines(r)
    assert r.returncode == 1
    assert got["peer"][0].startswith("FAIL server2 at") and "start hotstandby on server2" in got["peer"][0]
    assert got["peer monitor"][0].startswith("FAIL")
    assert got["witness"][0].startswith(f"ok {etcd.url} answers; nobody holds the key")
    gone = check(pair, env={"HS_WITNESS_URL": f"http://127.0.0.1:{free_port()}"})
    assert lines(gone)["witness"][0].startswith("FAIL")

    node = pair.nodes["server1"]
    node.stop()
    files = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in node.data_dir.rglob("*") if p.is_file()}
    bad = check(pair, env={"HS_NODE_ID": "server3"})
    assert bad.returncode == 2
    assert "HS_NODE_ID" in bad.stdout and bad.stdout.startswith("FAIL  settings")
    stopped = check(pair)
    assert "no node running on it" in lines(stopped)["data dir"][0]
    assert lines(stopped)["ports"][0].startswith("ok")
    assert files == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in node.data_dir.rglob("*") if p.is_file()}
