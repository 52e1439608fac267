"""A real pair serving HTTPS: the integration harness's ``Pair`` with TLS env and an https observer."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from hotstandby.tls import client_context
from tests.integration.harness import ADDR, HOTSTANDBY, ROOT, TOKEN, Pair
from tests.security.pki import Issued


def tls_env(issued: Issued, ca_file: Path) -> dict[str, str]:
    return {"HS_TLS_CERT_FILE": str(issued.cert_file), "HS_TLS_KEY_FILE": str(issued.key_file),
            "HS_TLS_CA_FILE": str(ca_file)}


class TlsPair(Pair):
    """``Pair`` whose nodes get per-node TLS settings; the test observes them over verified https.

    ``trust`` lists the CA files the observer trusts (a test may trust a rogue CA to watch a node
    its peer refuses); each node's own ``HS_TLS_CA_FILE`` is what decides whom *it* trusts.
    """

    def __init__(self, root: Path, node_env: dict[str, dict[str, str]], trust: list[Path], **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        for node_id, env in node_env.items():
            self.nodes[node_id].env |= env
        ctx = client_context()
        for ca in trust:
            ctx.load_verify_locations(cafile=str(ca))
        self.trust = trust
        self.http = httpx.Client(verify=ctx, timeout=2, trust_env=False)

    def arbiter_url(self, node_id: str) -> str:
        return f"https://{ADDR[node_id]}:{self.arbiter_port}"

    def monitor_url(self, node_id: str) -> str:
        return f"https://{ADDR[node_id]}:{self.monitor_port}"

    def serving(self, node_id: str) -> bool:
        try:
            a = self.http.get(self.arbiter_url(node_id) + "/healthz")
            m = self.http.get(self.monitor_url(node_id) + "/healthz")
        except httpx.HTTPError:
            return False
        return a.status_code in (200, 503) and m.status_code == 200

    def status(self, node_id: str) -> dict[str, Any]:
        r = self.http.get(self.arbiter_url(node_id) + "/status")
        r.raise_for_status()
        return r.json()

    def ft(self, node_id: str) -> int:
        return self.http.get(self.monitor_url(node_id) + "/monitor?mod=FT").status_code

    def admin(self, method: str, node_id: str, path: str, body: Any = None, token: str | None = TOKEN,
              timeout: float = 15) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return self.http.request(method, self.arbiter_url(node_id) + path, json=body, headers=headers,
                                 timeout=timeout)

    def cli(self, *args: str, token: str | None = TOKEN, url_node: str = "server1", timeout: float = 30,
            ca_file: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HS_TLS_", "HS_ADMIN_TOKEN"))}
        env["HS_URL"] = self.arbiter_url(url_node)
        if token:
            env["HS_ADMIN_TOKEN"] = token
        if ca_file:
            env["HS_TLS_CA_FILE"] = str(ca_file)
        return subprocess.run([*HOTSTANDBY, *args], env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT)

    def close(self) -> None:
        super().close()
        self.http.close()


@contextlib.contextmanager
def running_tls_pair(root: Path, node_env: dict[str, dict[str, str]], trust: list[Path],
                     **kwargs: Any) -> Iterator[TlsPair]:
    root.mkdir(parents=True, exist_ok=True)
    pair = TlsPair(root, node_env, trust, **kwargs)
    try:
        pair.start_manager()
        yield pair
    finally:
        pair.close()


def holds_for(pred: Callable[[], bool], seconds: float, what: str, interval: float = 0.05) -> None:
    """Assert ``pred`` stays true on every poll for ``seconds`` (the observation window is the assertion)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert pred(), f"{what} stopped holding"
        time.sleep(interval)
