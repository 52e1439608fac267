"""A pair of real node processes on the lab's hosts, the infra services, and the outside measures.

Each node runs ``hotstandby node`` in its own namespace on the standard ports (8080, 2011: every
host has its own network stack). The infra host runs the CTI manager simulator (ground truth for
"only one node runs CTI") and a TCP listener the nodes use as their LAN probe. The test process
observes from 198.18.<net>.254. ``ConfigLedger`` writes acknowledged config changes during a row
and counts the ones lost at the end.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from lab.netns import Lab, wait_port
from lab.waiting import wait_until
from lab.watch import HOTSTANDBY, PEER, NodeProcess, PairWatch, client

SECRET, TOKEN = "lab-peer-secret-0123456789abcdef", "lab-admin-token-fedcba9876543210"
MONITOR_PORT, ARBITER_PORT, MANAGER_PORT, LAN_PORT = 8080, 2011, 2748, 9000

__all__ = ["PEER", "ConfigLedger", "LabNode", "LabPair"]


class LabNode(NodeProcess):
    """A node on its lab host: spawned inside the host's namespace; the whole host can be frozen."""

    def __init__(self, lab: Lab, node_id: str, env: dict[str, str], data_dir: Path) -> None:
        def spawn(cmd: list[str], env: dict[str, str], log: Path, wrapper: Sequence[str]) -> subprocess.Popen[bytes]:
            return lab.spawn(node_id, cmd, env=env, log=log, wrapper=wrapper)

        super().__init__(node_id, env, data_dir, spawn=spawn)
        self.lab = lab

    def freeze(self) -> None:
        """SIGSTOP every process on the host: the machine hangs (a VM pause, a stuck kernel)."""
        self.lab.signal_host(self.node_id, signal.SIGSTOP)

    def thaw(self) -> None:
        self.lab.signal_host(self.node_id, signal.SIGCONT)


@dataclass
class LabPair(PairWatch):
    """Two nodes, the CTI manager simulator and a LAN probe target on the lab's hosts."""

    lab: Lab
    root: Path
    interval: float = 0.5
    timeout: float = 0.5
    failures: int = 3
    extra: dict[str, str] = field(default_factory=dict)
    lan_host: str = "infra"  # where the LAN probe target listens (the nemesis puts it on its LB host)
    nodes: dict[str, LabNode] = field(default_factory=dict)  # type: ignore[assignment]
    http: httpx.Client = field(default_factory=client)
    token: str = TOKEN

    def __post_init__(self) -> None:
        lab = self.lab
        common = {
            "HS_SERVER1_ADDRESS": lab.addr("server1"), "HS_SERVER2_ADDRESS": lab.addr("server2"),
            "HS_MONITOR_PORT": str(MONITOR_PORT), "HS_ARBITER_PORT": str(ARBITER_PORT),
            "HS_HEARTBEAT_INTERVAL_S": str(self.interval), "HS_HEARTBEAT_TIMEOUT_S": str(self.timeout),
            "HS_FAILURES_TO_SWITCH": str(self.failures), "HS_PEER_SECRET": SECRET, "HS_ADMIN_TOKEN": TOKEN,
            "HS_CTI_MANAGER_URL": self.manager_url, "HS_LOG_LEVEL": "INFO",
            "HS_LAN_PROBE_ADDRESSES": f"{lab.addr(self.lan_host)}:{LAN_PORT}",
        } | self.extra
        for node_id in PEER:
            data = self.root / node_id
            env = common | {"HS_NODE_ID": node_id, "HS_BIND_HOST": lab.addr(node_id),
                            "HS_LOCAL_ADDRESS": lab.addr(node_id), "HS_DATA_DIR": str(data)}
            self.nodes[node_id] = LabNode(lab, node_id, env, data)

    # -- lifecycle ---------------------------------------------------------------------------
    def start_infra(self) -> None:
        infra, lan = self.lab.addr("infra"), self.lab.addr(self.lan_host)
        self.manager = self.lab.spawn("infra", [*HOTSTANDBY, "cti-manager", "--bind", f"{infra}:{MANAGER_PORT}"],
                                      log=self.root / "manager.out")
        self.listener = self.lab.spawn(self.lan_host, [sys.executable, "-m", "lab.tools", "listen",
                                                       f"{lan}:{LAN_PORT}"], log=self.root / "listener.out")
        wait_port(lan, LAN_PORT, 15)
        wait_until(lambda: self.http.get(f"{self.manager_url}/healthz").status_code == 200, 15,
                   "the CTI manager simulator")

    def start(self, *node_ids: str, wait: bool = True, **kwargs: Any) -> None:
        for node_id in node_ids or tuple(PEER):
            self.nodes[node_id].start(**kwargs)
        if wait:
            for node_id in node_ids or tuple(PEER):
                wait_until(partial(self.serving, node_id), 20, f"{node_id} serving")

    def close(self) -> None:
        for node in self.nodes.values():
            if node.alive():
                node.thaw()
                node.kill()
        self.close_http()

    # -- where things are --------------------------------------------------------------------
    @property
    def manager_url(self) -> str:
        return f"http://{self.lab.addr('infra')}:{MANAGER_PORT}"

    def arbiter_url(self, node_id: str) -> str:
        return f"http://{self.lab.addr(node_id)}:{ARBITER_PORT}"

    def monitor_url(self, node_id: str) -> str:
        return f"http://{self.lab.addr(node_id)}:{MONITOR_PORT}"

    def status(self, node_id: str, timeout: float = 1.0) -> dict[str, Any]:
        """A shorter default than on loopback: a frozen host must not hold the observer up."""
        return super().status(node_id, timeout)


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
