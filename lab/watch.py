"""What an outside observer does with a running pair, wherever it runs (loopback, the lab, containers).

``NodeProcess`` is one ``hotstandby node`` process: started by a ``spawn`` function the pair supplies
(a plain subprocess, or one inside a lab namespace), signalled, killed, read back (its output and its
fault-tolerant log). ``PairWatch`` is the observer's side: the SPEC's bounds for the pair's I, T and N,
and every question the tests and the bench ask (who is ACTIVE, who holds CTI, how long until ...),
over one HTTP client that never uses a proxy from the environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from lab.bounds import Bounds
from lab.waiting import stop_process, wait_until

HOTSTANDBY = [sys.executable, "-m", "cli"]  # the `hotstandby` command of this checkout
ROOT = Path(__file__).resolve().parents[1]
PEER = {"server1": "server2", "server2": "server1"}
OWN_TOKEN = "\0the pair's own token"  # admin()'s default: a value no test passes by chance

Spawn = Callable[[list[str], dict[str, str], Path, Sequence[str]], "subprocess.Popen[bytes]"]


def client(verify: Any = True) -> httpx.Client:
    """The observer's HTTP client: no proxies from the environment, so nothing leaves the test network."""
    return httpx.Client(trust_env=False, timeout=2.0, verify=verify)


def popen(cmd: list[str], env: dict[str, str], log: Path, wrapper: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Spawn on this host: a new session (so a signal to the test's group never reaches it), output to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen([*wrapper, *cmd], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                start_new_session=True)


@dataclass
class NodeProcess:
    node_id: str
    env: dict[str, str]
    data_dir: Path
    spawn: Spawn = popen
    proc: subprocess.Popen[bytes] | None = None
    stop_grace: float = 8.0

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"{self.node_id}.out"

    def start(self, extra_env: dict[str, str] | None = None, wrapper: Sequence[str] = ()) -> NodeProcess:
        assert not self.alive(), f"{self.node_id} already running"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.proc = self.spawn([*HOTSTANDBY, "node"], os.environ | self.env | (extra_env or {}), self.log, wrapper)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

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

    def stop(self) -> None:
        """SIGTERM (R10), then SIGKILL past the grace period."""
        if self.proc is not None:
            stop_process(self.proc, grace=self.stop_grace)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def ftlog(self) -> str:
        logs = self.data_dir / "logs"
        return "".join(p.read_text(errors="replace") for p in sorted(logs.glob("*.log"))) if logs.exists() else ""


class PairWatch:
    """The observer's questions; a subclass sets ``nodes``, ``http``, ``token``, I/T/N and the URLs."""

    nodes: dict[str, NodeProcess]
    http: httpx.Client
    token: str
    interval: float
    timeout: float
    failures: int

    def arbiter_url(self, node_id: str) -> str:
        raise NotImplementedError

    def monitor_url(self, node_id: str) -> str:
        raise NotImplementedError

    @property
    def manager_url(self) -> str:
        raise NotImplementedError

    # -- the SPEC's bounds -------------------------------------------------------------------
    @property
    def bounds(self) -> Bounds:
        return Bounds(self.interval, self.timeout, self.failures)

    @property
    def bound_r1(self) -> float:
        """Peer death to ACTIVE (R1), LAN loss to STANDBY (R5), both serving to one ACTIVE (R6): N·I + T + I."""
        return self.bounds.r1

    @property
    def bound_r3(self) -> float:
        """server1 healthy to ACTIVE again (R3): N·I + I."""
        return self.bounds.r3

    @property
    def bound_r4(self) -> float:
        """Link healed to one ACTIVE (R4): 2N·I + I."""
        return self.bounds.r4

    # -- observation -------------------------------------------------------------------------
    def serving(self, node_id: str) -> bool:
        try:
            a = self.http.get(self.arbiter_url(node_id) + "/healthz", timeout=1)
            m = self.http.get(self.monitor_url(node_id) + "/healthz", timeout=1)
        except httpx.HTTPError:
            return False
        return a.status_code in (200, 503) and m.status_code == 200

    def status(self, node_id: str, timeout: float = 2.0) -> dict[str, Any]:
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

    def ft(self, node_id: str) -> int:
        """The monitor's mod=FT status code (200 ACTIVE, 503 STANDBY)."""
        return self.http.get(self.monitor_url(node_id) + "/monitor?mod=FT").status_code

    def cti(self, node_id: str) -> dict[str, Any]:
        return self.http.get(self.monitor_url(node_id) + "/cti").json()

    def manager_state(self) -> dict[str, Any]:
        return self.http.get(self.manager_url + "/state").json()

    def overlap(self) -> float:
        return float(self.manager_state()["overlap_seconds_total"])

    def holders(self) -> list[str]:
        return sorted(h["node_id"] for h in self.manager_state()["holders"])

    def config_value(self, node_id: str, name: str) -> Any:
        return self.http.get(self.arbiter_url(node_id) + "/config").json()["settings"][name]["value"]

    def role_changes(self, node_id: str) -> int:
        """Switch lines in the node's fault-tolerant log (every role change writes one)."""
        return sum("SWITCH THIS SERVER TO" in ln for ln in self.nodes[node_id].ftlog().splitlines())

    # -- waiting for the pair ----------------------------------------------------------------
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

    def settle(self, active: str = "server1", timeout: float | None = None) -> float:
        """Wait for ``active`` ACTIVE, the other STANDBY, and CTI registered only on ``active``."""
        took = self.wait_active(active, timeout or self.bound_r1 + 5)
        wait_until(lambda: self.holders() == [active], 10, f"CTI only on {active}")
        return took

    # -- acting on the pair ------------------------------------------------------------------
    def admin(self, method: str, node_id: str, path: str, body: Any = None, token: str | None = OWN_TOKEN,
              timeout: float = 15) -> httpx.Response:
        """An admin call with the pair's own Bearer token, another ``token``, or none (``None``)."""
        token = self.token if token is OWN_TOKEN else token
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return self.http.request(method, self.arbiter_url(node_id) + path, json=body, headers=headers,
                                 timeout=timeout)

    def close_http(self) -> None:
        self.http.close()
