"""Real pairs for integration tests: node processes, the CTI manager simulator, real HTTP.

Nodes run as ``hotstandby node`` subprocesses on 127.0.0.11 / 127.0.0.12 with ports chosen per
test, so tests never collide with each other or with ``make run``. Waiting is always polling a
condition against a deadline, never a bare sleep.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
HOTSTANDBY = [sys.executable, "-m", "hotstandby"]
ADDR = {"server1": "127.0.0.11", "server2": "127.0.0.12"}
MANAGER_HOST = "127.0.0.13"
SECRET, TOKEN = "test-peer-secret-0123456789", "test-admin-token-abcdef"


def free_port(*hosts: str) -> int:
    """A port free on every one of ``hosts`` (the two nodes share monitor and arbiter ports)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        ok = True
        for h in hosts[1:]:
            with socket.socket() as s:
                try:
                    s.bind((h, port))
                except OSError:
                    ok = False
        if ok:
            return port
    raise RuntimeError("no common free port")


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``pred`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = pred()
            if value:
                return value
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what} (last error: {last_exc!r})")


@dataclass
class NodeProc:
    node_id: str
    env: dict[str, str]
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def host(self) -> str:
        return ADDR[self.node_id]

    def start(self, extra_env: dict[str, str] | None = None) -> NodeProc:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.log = self.data_dir.parent / f"{self.node_id}.out"
        env = os.environ | self.env | (extra_env or {})
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*HOTSTANDBY, "node"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                         cwd=ROOT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """kill -9 of the node's process (its CTI child must die with it)."""
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(5)

    def stop(self) -> None:
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                assert self.proc is not None
                self.proc.wait(8)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def ftlog(self) -> str:
        logs = self.data_dir / "logs"
        return "".join(p.read_text() for p in sorted(logs.glob("*.log"))) if logs.exists() else ""


@dataclass
class Pair:
    """Two nodes and a CTI manager simulator; ``I``, ``T``, ``N`` are the fast test profile."""

    root: Path
    interval: float = 0.5
    timeout: float = 0.5
    failures: int = 3
    extra: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, NodeProc] = field(default_factory=dict)
    manager: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.monitor_port = free_port(*ADDR.values())
        self.arbiter_port = free_port(*ADDR.values())
        self.manager_port = free_port(MANAGER_HOST)
        common = {
            "HS_SERVER1_ADDRESS": ADDR["server1"], "HS_SERVER2_ADDRESS": ADDR["server2"],
            "HS_MONITOR_PORT": str(self.monitor_port), "HS_ARBITER_PORT": str(self.arbiter_port),
            "HS_HEARTBEAT_INTERVAL_S": str(self.interval), "HS_HEARTBEAT_TIMEOUT_S": str(self.timeout),
            "HS_FAILURES_TO_SWITCH": str(self.failures), "HS_PEER_SECRET": SECRET, "HS_ADMIN_TOKEN": TOKEN,
            "HS_CTI_MANAGER_URL": f"http://{MANAGER_HOST}:{self.manager_port}", "HS_LOG_LEVEL": "INFO",
        } | self.extra
        for node_id, host in ADDR.items():
            env = common | {"HS_NODE_ID": node_id, "HS_BIND_HOST": host,
                            "HS_DATA_DIR": str(self.root / node_id)}
            self.nodes[node_id] = NodeProc(node_id, env, self.root / node_id)

    # -- lifecycle ---------------------------------------------------------------------------
    def start_manager(self) -> None:
        self.manager = subprocess.Popen(
            [*HOTSTANDBY, "cti-manager", "--bind", f"{MANAGER_HOST}:{self.manager_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
        wait_until(lambda: httpx.get(f"{self.manager_url}/healthz", timeout=1).status_code == 200, 15,
                   "the CTI manager simulator")

    def start(self, *node_ids: str) -> None:
        for node_id in node_ids or tuple(ADDR):
            self.nodes[node_id].start()
        for node_id in node_ids or tuple(ADDR):
            wait_until(lambda n=node_id: self.serving(n), 20, f"{node_id} serving")

    def close(self) -> None:
        for node in self.nodes.values():
            if node.alive():
                node.kill()
        if self.manager and self.manager.poll() is None:
            self.manager.kill()
            self.manager.wait(5)

    @property
    def bound_r1(self) -> float:
        """Peer death to ACTIVE: N·I + T + I (SPEC R1)."""
        return self.failures * self.interval + self.timeout + self.interval

    # -- observation -------------------------------------------------------------------------
    @property
    def manager_url(self) -> str:
        return f"http://{MANAGER_HOST}:{self.manager_port}"

    def arbiter_url(self, node_id: str) -> str:
        return f"http://{ADDR[node_id]}:{self.arbiter_port}"

    def monitor_url(self, node_id: str) -> str:
        return f"http://{ADDR[node_id]}:{self.monitor_port}"

    def serving(self, node_id: str) -> bool:
        try:
            a = httpx.get(self.arbiter_url(node_id) + "/healthz", timeout=1)
            m = httpx.get(self.monitor_url(node_id) + "/healthz", timeout=1)
        except httpx.HTTPError:
            return False
        return a.status_code in (200, 503) and m.status_code == 200

    def status(self, node_id: str) -> dict[str, Any]:
        r = httpx.get(self.arbiter_url(node_id) + "/status", timeout=2)
        r.raise_for_status()
        return r.json()

    def role(self, node_id: str) -> str | None:
        try:
            return self.status(node_id)["local"]["role"]
        except httpx.HTTPError:
            return None

    def ft(self, node_id: str) -> int:
        """The monitor's mod=FT status code (200 ACTIVE, 503 STANDBY)."""
        return httpx.get(self.monitor_url(node_id) + "/monitor?mod=FT", timeout=2).status_code

    def manager_state(self) -> dict[str, Any]:
        return httpx.get(self.manager_url + "/state", timeout=2).json()

    def holders(self) -> list[str]:
        return sorted(h["node_id"] for h in self.manager_state()["holders"])

    def wait_active(self, node_id: str, timeout: float) -> float:
        """Seconds until ``node_id`` reports ACTIVE and the other one STANDBY (or is down)."""
        start = time.monotonic()
        other = "server2" if node_id == "server1" else "server1"

        def settled() -> bool:
            if self.role(node_id) != "ACTIVE":
                return False
            return not self.nodes[other].alive() or self.role(other) in ("STANDBY", None)

        wait_until(settled, timeout, f"{node_id} ACTIVE")
        return time.monotonic() - start

    def admin(self, method: str, node_id: str, path: str, body: Any = None, token: str | None = TOKEN,
              timeout: float = 15) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, self.arbiter_url(node_id) + path, json=body, headers=headers, timeout=timeout)

    def cli(self, *args: str, token: str | None = TOKEN, url_node: str = "server1",
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        env = os.environ | {"HS_URL": self.arbiter_url(url_node)}
        env.pop("HS_ADMIN_TOKEN", None)
        if token:
            env["HS_ADMIN_TOKEN"] = token
        return subprocess.run([*HOTSTANDBY, *args], env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT)


@contextlib.contextmanager
def running_pair(root: Path, **kwargs: Any) -> Iterator[Pair]:
    pair = Pair(root, **kwargs)
    try:
        pair.start_manager()
        yield pair
    finally:
        pair.close()
