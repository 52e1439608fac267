"""A real etcd (Debian's ``etcd-server``) for the witness tests: random free ports, a tmp data dir.

``running_etcd()`` always tears it down. ``freeze()``/``thaw()`` (SIGSTOP/SIGCONT) make it hang the
way an unreachable host does (requests time out rather than being refused); ``stop()``/``start()``
restart it on the same data. ``start_in_lab()`` runs one on a host of the fault lab instead.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from lab.netns import Lab, wait_port
from lab.waiting import wait_until

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
CLIENT_PORT = 2379


def etcd_command(data_dir: Path, host: str, client_port: int, peer_port: int) -> list[str]:
    """A one-member etcd serving clients on ``host:client_port``."""
    url, peer = f"http://{host}:{client_port}", f"http://{host}:{peer_port}"
    return [ETCD, "--name", "witness", "--data-dir", str(data_dir),
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"witness={peer}", "--log-level", "warn"]


def start_in_lab(lab: Lab, host: str, root: Path) -> str:
    """etcd on the lab's ``host`` (data under ``root``), stopped with the lab; returns its client URL."""
    if not os.path.exists(ETCD):
        raise FileNotFoundError(f"{ETCD}: the witness needs etcd (apt-get install etcd-server)")
    addr = lab.addr(host)
    lab.spawn(host, etcd_command(root / "etcd-data", addr, CLIENT_PORT, CLIENT_PORT + 1), log=root / "etcd.out")
    wait_port(addr, CLIENT_PORT, 20)
    return f"http://{addr}:{CLIENT_PORT}"


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Etcd:
    data_dir: Path
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.client_port, self.peer_port = _free_port(self.host), _free_port(self.host)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    def start(self) -> Etcd:
        log = open(self.data_dir.parent / "etcd.out", "ab")  # noqa: SIM115 (the child holds it)
        self.proc = subprocess.Popen(etcd_command(self.data_dir, self.host, self.client_port, self.peer_port),
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_until(self.healthy, 20, "etcd healthy")
        return self

    def healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=1, trust_env=False).json().get("health") == "true"
        except httpx.HTTPError:
            return False

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.kill()
            self.proc.wait(10)

    # -- looking at the key from outside the pair ---------------------------------------------
    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(self.url + path, json=body, timeout=2, trust_env=False)
        r.raise_for_status()
        return r.json()

    def get(self, key: str) -> dict[str, Any] | None:
        """The key's record (value decoded from JSON, revisions as ints), or None when absent."""
        kvs = self.call("/v3/kv/range", {"key": base64.b64encode(key.encode()).decode()}).get("kvs") or []
        if not kvs:
            return None
        kv = kvs[0]
        return {"value": json.loads(base64.b64decode(kv["value"])), "lease": int(kv.get("lease", 0)),
                "create_revision": int(kv["create_revision"]), "mod_revision": int(kv["mod_revision"])}

    def put(self, key: str, value: str, lease: int = 0) -> int:
        body: dict[str, Any] = {"key": base64.b64encode(key.encode()).decode(),
                                "value": base64.b64encode(value.encode()).decode()}
        if lease:
            body["lease"] = str(lease)
        return int(self.call("/v3/kv/put", body)["header"]["revision"])

    def grant(self, ttl: int) -> tuple[int, int]:
        data = self.call("/v3/lease/grant", {"TTL": str(ttl)})
        return int(data["ID"]), int(data["TTL"])


@contextlib.contextmanager
def running_etcd(root: Path, host: str = "127.0.0.1") -> Iterator[Etcd]:
    if not os.path.exists(ETCD):
        raise FileNotFoundError(f"{ETCD}: the witness needs etcd (apt-get install etcd-server)")
    root.mkdir(parents=True, exist_ok=True)
    etcd = Etcd(root / "etcd-data", host)
    try:
        yield etcd.start()
    finally:
        etcd.stop()
