"""A real HAProxy in front of a pair on this host's loopback, its config rendered by ``render_haproxy``.

The frontend, the stats page and (optionally) the runtime API listen on ports free on ``host``; the
config holds requests while no node is UP, as the demo's and the bench's do.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hotstandby.haproxy import write_config
from hotstandby.settings import ClusterSettings
from lab.waiting import free_port, stop_process, wait_until

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def available() -> bool:
    return Path(HAPROXY).exists()


@dataclass(frozen=True)
class LoadBalancer:
    vip_url: str  # http://host:port, the frontend
    stats_url: str
    runtime_api: str | None  # host:port of the admin stats socket, when asked for
    log: Path  # HAProxy's own output (-db): servers going UP and DOWN, and why

    def said(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def ports(host: str, n: int) -> list[int]:
    """``n`` distinct ports free on ``host``."""
    out: list[int] = []
    while len(out) < n:
        p = free_port(host)
        if p not in out:
            out.append(p)
    return out


@contextmanager
def running_haproxy(root: Path, cluster: ClusterSettings, host: str, *,
                    runtime_api_port: int | None = None) -> Iterator[LoadBalancer]:
    """HAProxy on ``host`` for the pair that ``cluster`` describes (addresses, monitor port, I, T, N)."""
    vip_port, stats_port = ports(host, 2)
    api = f"{host}:{runtime_api_port}" if runtime_api_port else None
    root.mkdir(parents=True, exist_ok=True)
    cfg = write_config(root, cluster, vip=f"{host}:{vip_port}", stats_port=stats_port, runtime_api=api)
    log = root / "haproxy.out"
    with log.open("wb") as out:
        proc = subprocess.Popen([HAPROXY, "-f", str(cfg), "-db"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _listening(host, vip_port), 10, "HAProxy serving")
        yield LoadBalancer(f"http://{host}:{vip_port}", f"http://{host}:{stats_port}/", api, log)
    finally:
        stop_process(proc)


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0
