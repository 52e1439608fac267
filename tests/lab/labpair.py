"""A pair of real node processes on the lab's hosts, the infra services, and the outside measures.

Each node runs ``hotstandby node`` in its own namespace on the standard ports (8080, 2011: every
host has its own network stack). The infra host runs the CTI manager simulator (ground truth for
"only one node runs CTI") and a TCP listener the nodes use as their LAN probe. The test process
observes from 198.18.<net>.254. ``ConfigLedger`` writes acknowledged config changes during a row
and counts the ones lost at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.integration.harness import wait_until
from tests.lab.netns import Lab, stop_process, wait_port

SECRET, TOKEN = "lab-peer-secret-0123456789abcdef", "lab-admin-token-fedcba9876543210"
MONITOR_PORT, ARBITER_PORT, MANAGER_PORT, LAN_PORT = 8080, 2011, 2748, 9000
HOTSTANDBY = [sys.executable, "-m", "hotstandby"]
PEER = {"server1": "server2", "server2": "server1"}


def client() -> httpx.Client:
    """The observer's HTTP client: no proxies from the environment, so nothing leaves the lab network."""
    return httpx.Client(trust_env=False, timeout=2.0)


@dataclass
class LabNode:
    lab: Lab
    node_id: str
    env: dict[str, str]
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"{self.node_id}.out"

    def start(self, extra_env: dict[str, str] | None = None, wrapper: Sequence[str] = ()) -> LabNode:
        assert not self.alive(), f"{self.node_id} already running"
        env = os.environ | self.env | (extra_env or {})
        self.proc = self.lab.spawn(self.node_id, [*HOTSTANDBY, "node"], env=env, log=self.log, wrapper=wrapper)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """``sig`` to the node's main process only."""
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """kill -9 of the node process (its CTI child must die with it, R9)."""
        if self.alive():
            self.signal(signal.SIGKILL)
            assert self.proc is not None
            self.proc.wait(5)

    def freeze(self) -> None:
        """SIGSTOP every process on the host: the machine hangs (a VM pause, a stuck kernel)."""
        self.lab.signal_host(self.node_id, signal.SIGSTOP)

    def thaw(self) -> None:
        self.lab.signal_host(self.node_id, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=8)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def ftlog(self) -> str:
        logs = self.data_dir / "logs"
        return "".join(p.read_text(errors="replace") for p in sorted(logs.glob("*.log"))) if logs.exists() else ""


@dataclass
class LabPair:
    """Two nodes, the CTI manager simulator and a LAN probe target on the lab's hosts."""

    lab: Lab
    root: Path
    interval: float = 0.5
    timeout: float = 0.5
    failures: int = 3
    extra: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, LabNode] = field(default_factory=dict)
    http: httpx.Client = field(default_factory=client)

    def __post_init__(self) -> None:
        lab = self.lab
        common = {
            "HS_SERVER1_ADDRESS": lab.addr("server1"), "HS_SERVER2_ADDRESS": lab.addr("server2"),
            "HS_MONITOR_PORT": str(MONITOR_PORT), "HS_ARBITER_PORT": str(ARBITER_PORT),
            "HS_HEARTBEAT_INTERVAL_S": str(self.interval), "HS_HEARTBEAT_TIMEOUT_S": str(self.timeout),
            "HS_FAILURES_TO_SWITCH": str(self.failures), "HS_PEER_SECRET": SECRET, "HS_ADMIN_TOKEN": TOKEN,
            "HS_CTI_MANAGER_URL": self.manager_url, "HS_LOG_LEVEL": "INFO",
            "HS_LAN_PROBE_ADDRESSES": f"{lab.addr('infra')}:{LAN_PORT}",
        } | self.extra
        for node_id in PEER:
            data = self.root / node_id
            env = common | {"HS_NODE_ID": node_id, "HS_BIND_HOST": lab.addr(node_id),
                            "HS_LOCAL_ADDRESS": lab.addr(node_id), "HS_DATA_DIR": str(data)}
            self.nodes[node_id] = LabNode(lab, node_id, env, data)

    # -- lifecycle ---------------------------------------------------------------------------
    def start_infra(self) -> None:
        infra = self.lab.addr("infra")
        self.manager = self.lab.spawn("infra", [*HOTSTANDBY, "cti-manager", "--bind", f"{infra}:{MANAGER_PORT}"],
                                      log=self.root / "manager.out")
        self.listener = self.lab.spawn("infra", [sys.executable, "-m", "tests.lab.tools", "listen",
                                                 f"{infra}:{LAN_PORT}"], log=self.root / "listener.out")
        wait_port(infra, LAN_PORT, 15)
        wait_until(lambda: self.http.get(f"{self.manager_url}/healthz").status_code == 200, 15,
                   "the CTI manager simulator")

    def start(self, *node_ids: str, wait: bool = True, **kwargs: Any) -> None:
        for node_id in node_ids or tuple(PEER):
            self.nodes[node_id].start(**kwargs)
        if wait:
            for node_id in node_ids or tuple(PEER):
                wait_until(lambda n=node_id: self.serving(n), 20, f"{node_id} serving")

    def settle(self, active: str = "server1", timeout: float | None = None) -> float:
        """Wait for ``active`` ACTIVE, the other STANDBY, and CTI registered only on ``active``."""
        took = self.wait_active(active, timeout or self.bound_r1 + 5)
        wait_until(lambda: self.holders() == [active], 10, f"CTI only on {active}")
        return took

    def close(self) -> None:
        for node in self.nodes.values():
            if node.alive():
                node.thaw()
                node.kill()
        self.http.close()

    # -- the SPEC's bounds -------------------------------------------------------------------
    @property
    def bound_r1(self) -> float:
        """Peer death to ACTIVE (R1), LAN loss to STANDBY (R5), both serving to one ACTIVE (R6): N·I + T + I."""
        return self.failures * self.interval + self.timeout + self.interval

    @property
    def bound_r3(self) -> float:
        """server1 healthy to ACTIVE again (R3): N·I + I."""
        return self.failures * self.interval + self.interval

    @property
    def bound_r4(self) -> float:
        """Link healed to one ACTIVE (R4): 2N·I + I."""
        return 2 * self.failures * self.interval + self.interval

    # -- observation -------------------------------------------------------------------------
    @property
    def manager_url(self) -> str:
        return f"http://{self.lab.addr('infra')}:{MANAGER_PORT}"

    def arbiter_url(self, node_id: str) -> str:
        return f"http://{self.lab.addr(node_id)}:{ARBITER_PORT}"

    def monitor_url(self, node_id: str) -> str:
        return f"http://{self.lab.addr(node_id)}:{MONITOR_PORT}"

    def serving(self, node_id: str) -> bool:
        try:
            a = self.http.get(self.arbiter_url(node_id) + "/healthz", timeout=1)
            m = self.http.get(self.monitor_url(node_id) + "/healthz", timeout=1)
        except httpx.HTTPError:
            return False
        return a.status_code in (200, 503) and m.status_code == 200

    def status(self, node_id: str, timeout: float = 1.0) -> dict[str, Any]:
        r = self.http.get(self.arbiter_url(node_id) + "/status", timeout=timeout)
        r.raise_for_status()
        return r.json()

    def role(self, node_id: str) -> str | None:
        try:
            return self.status(node_id)["local"]["role"]
        except httpx.HTTPError:
            return None

    def roles(self) -> tuple[str | None, str | None]:
        return self.role("server1"), self.role("server2")

    def cti(self, node_id: str) -> dict[str, Any]:
        return self.http.get(self.monitor_url(node_id) + "/cti").json()

    def manager_state(self) -> dict[str, Any]:
        return self.http.get(self.manager_url + "/state").json()

    def overlap(self) -> float:
        return float(self.manager_state()["overlap_seconds_total"])

    def holders(self) -> list[str]:
        return sorted(h["node_id"] for h in self.manager_state()["holders"])

    def wait_active(self, node_id: str, timeout: float) -> float:
        """Seconds until ``node_id`` reports ACTIVE; then waits (apart) for its peer to be STANDBY or gone.

        The time is taken when ``node_id`` answers ACTIVE, so a frozen peer that makes the observer's
        own request time out does not inflate it.
        """
        start = time.monotonic()
        wait_until(lambda: self.role(node_id) == "ACTIVE", timeout, f"{node_id} ACTIVE", interval=0.05)
        took = time.monotonic() - start
        other = PEER[node_id]
        wait_until(lambda: not self.nodes[other].alive() or self.role(other) in ("STANDBY", None), timeout,
                   f"{other} STANDBY or gone once {node_id} is ACTIVE", interval=0.05)
        return took

    def wait_one_active(self, timeout: float) -> tuple[float, str]:
        """Seconds until exactly one node reports ACTIVE (both answering), and which one."""
        start = time.monotonic()

        def one() -> tuple[str | None, str | None] | None:
            r = self.roles()
            return r if sorted(map(str, r)) == ["ACTIVE", "STANDBY"] else None

        roles = wait_until(one, timeout, "exactly one ACTIVE", interval=0.05)
        return time.monotonic() - start, "server1" if roles[0] == "ACTIVE" else "server2"

    def admin(self, method: str, node_id: str, path: str, body: Any = None, timeout: float = 10) -> httpx.Response:
        return self.http.request(method, self.arbiter_url(node_id) + path, json=body,
                                 headers={"authorization": f"Bearer {TOKEN}"}, timeout=timeout)

    def config_value(self, node_id: str, name: str) -> Any:
        return self.http.get(self.arbiter_url(node_id) + "/config").json()["settings"][name]["value"]

    def role_changes(self, node_id: str) -> int:
        """Switch lines in the node's fault-tolerant log (every role change writes one)."""
        return sum("SWITCH THIS SERVER TO" in ln for ln in self.nodes[node_id].ftlog().splitlines())


class ConfigLedger:
    """Acknowledged config changes made during a row, and how many of them are lost at the end.

    Every write sets ``vip_address`` (harmless here: nothing follows the VIP) to a new value. A write
    is acknowledged when ``PUT /config`` answered 200. At the end, a node holding the value of write
    k has lost every acknowledged write issued after k (a later write must win: the observer orders
    them, and the nodes' hybrid clocks must respect that order).
    """

    NAME = "vip_address"

    def __init__(self, pair: LabPair) -> None:
        self.pair = pair
        self.issued: list[str] = []
        self.acked: set[int] = set()

    def put(self, node_id: str | None = None) -> bool:
        """One change on ``node_id`` (default: whichever node answers, the ACTIVE first)."""
        targets = [node_id] if node_id else self._preferred()
        value = f"198.18.{self.pair.lab.net}.100:{10000 + len(self.issued)}"
        self.issued.append(value)
        for target in targets:
            try:
                r = self.pair.admin("PUT", target, "/config", {self.NAME: value}, timeout=5)
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                self.acked.add(len(self.issued) - 1)
                return True
        return False

    def _preferred(self) -> list[str]:
        order = sorted(PEER, key=lambda n: self.pair.role(n) != "ACTIVE")
        return [n for n in order if self.pair.nodes[n].alive()]

    def lost_on(self, node_id: str) -> int:
        value = self.pair.config_value(node_id, self.NAME)
        k = self.issued.index(value) if value in self.issued else -1
        return sum(1 for i in self.acked if i > k)

    def lost(self, timeout: float = 10) -> int:
        """Lost acknowledged changes, the worse of the two nodes, once both agree (or ``timeout``)."""
        def agreed() -> bool:
            return self.pair.config_value("server1", self.NAME) == self.pair.config_value("server2", self.NAME)

        with contextlib.suppress(AssertionError):  # disagreeing is counted below, as a loss on the laggard
            wait_until(agreed, timeout, "both nodes agreeing on the config", interval=0.1)
        return max(self.lost_on("server1"), self.lost_on("server2"))
