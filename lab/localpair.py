"""A real pair on this host's loopback: two ``hotstandby node`` processes and the CTI manager simulator.

Nodes run on 127.0.0.11 / 127.0.0.12 with ports chosen per pair, so parallel tests never collide with
each other or with ``make run``. ``Pair`` is the integration tests' pair, and the base of the TLS one.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from lab.waiting import free_port, wait_until
from lab.watch import HOTSTANDBY, ROOT, NodeProcess, PairWatch, client

ADDR = {"server1": "127.0.0.11", "server2": "127.0.0.12"}
MANAGER_HOST = "127.0.0.13"
SECRET, TOKEN = "test-peer-secret-0123456789", "test-admin-token-abcdef"

__all__ = ["ADDR", "HOTSTANDBY", "MANAGER_HOST", "ROOT", "SECRET", "TOKEN", "Pair", "running_pair"]


@dataclass
class Pair(PairWatch):
    """Two nodes and a CTI manager simulator; ``I``, ``T``, ``N`` are the fast test profile."""

    root: Path
    interval: float = 0.5
    timeout: float = 0.5
    failures: int = 3
    extra: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    manager: subprocess.Popen[bytes] | None = None
    token: str = TOKEN
    scheme: str = "http"
    http: httpx.Client = field(default_factory=client)

    def __post_init__(self) -> None:
        self.monitor_port = free_port(*ADDR.values())
        self.arbiter_port = free_port(*ADDR.values())
        self.manager_port = free_port(MANAGER_HOST)
        common = {
            "HS_SERVER1_ADDRESS": ADDR["server1"], "HS_SERVER2_ADDRESS": ADDR["server2"],
            "HS_MONITOR_PORT": str(self.monitor_port), "HS_ARBITER_PORT": str(self.arbiter_port),
            "HS_HEARTBEAT_INTERVAL_S": str(self.interval), "HS_HEARTBEAT_TIMEOUT_S": str(self.timeout),
            "HS_FAILURES_TO_SWITCH": str(self.failures), "HS_PEER_SECRET": SECRET, "HS_ADMIN_TOKEN": self.token,
            "HS_CTI_MANAGER_URL": f"http://{MANAGER_HOST}:{self.manager_port}", "HS_LOG_LEVEL": "INFO",
        } | self.extra
        for node_id, host in ADDR.items():
            env = common | {"HS_NODE_ID": node_id, "HS_BIND_HOST": host,
                            "HS_DATA_DIR": str(self.root / node_id)}
            self.nodes[node_id] = NodeProcess(node_id, env, self.root / node_id)

    # -- lifecycle ---------------------------------------------------------------------------
    def start_manager(self) -> None:
        self.manager = subprocess.Popen(
            [*HOTSTANDBY, "cti-manager", "--bind", f"{MANAGER_HOST}:{self.manager_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
        wait_until(lambda: self.http.get(f"{self.manager_url}/healthz", timeout=1).status_code == 200, 15,
                   "the CTI manager simulator")

    def start(self, *node_ids: str) -> None:
        for node_id in node_ids or tuple(ADDR):
            self.nodes[node_id].start()
        for node_id in node_ids or tuple(ADDR):
            wait_until(partial(self.serving, node_id), 20, f"{node_id} serving")

    def close(self) -> None:
        for node in self.nodes.values():
            node.kill()
        if self.manager and self.manager.poll() is None:
            self.manager.kill()
            self.manager.wait(5)
        self.close_http()

    # -- where things are --------------------------------------------------------------------
    @property
    def manager_url(self) -> str:
        return f"http://{MANAGER_HOST}:{self.manager_port}"

    def arbiter_url(self, node_id: str) -> str:
        return f"{self.scheme}://{ADDR[node_id]}:{self.arbiter_port}"

    def monitor_url(self, node_id: str) -> str:
        return f"{self.scheme}://{ADDR[node_id]}:{self.monitor_port}"

    def cli_env(self, url_node: str, token: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "HS_ADMIN_TOKEN"}
        env["HS_URL"] = self.arbiter_url(url_node)
        if token:
            env["HS_ADMIN_TOKEN"] = token
        return env

    def cli(self, *args: str, token: str | None = TOKEN, url_node: str = "server1",
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """The ``hotstandby`` command against ``url_node``'s arbiter (``HS_URL``), as an operator runs it."""
        return subprocess.run([*HOTSTANDBY, *args], env=self.cli_env(url_node, token), capture_output=True,
                              text=True, timeout=timeout, cwd=ROOT)


@contextlib.contextmanager
def running_pair(root: Path, **kwargs: Any) -> Iterator[Pair]:
    pair = Pair(root, **kwargs)
    try:
        pair.start_manager()
        yield pair
    finally:
        pair.close()


def switch(pair: Pair, target: str) -> None:
    """R7 through server1's API; asked again when a loaded machine made this tick's check fail (409)."""
    for _ in range(3):
        r = pair.admin("POST", "server1", "/switch", {"target": target})
        if r.status_code != 409:
            break
    assert r.status_code == 200, r.text
