"""A real pair serving HTTPS: ``lab.localpair.Pair`` with per-node TLS settings and an https observer."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hotstandby.tls import client_context
from lab.localpair import HOTSTANDBY, ROOT, TOKEN, Pair
from lab.watch import client
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
        ctx = client_context()
        for ca in trust:
            ctx.load_verify_locations(cafile=str(ca))
        super().__init__(root, scheme="https", http=client(verify=ctx), **kwargs)
        for node_id, env in node_env.items():
            self.nodes[node_id].env |= env
        self.trust = trust

    def cli(self, *args: str, token: str | None = TOKEN, url_node: str = "server1", timeout: float = 30,
            ca_file: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in self.cli_env(url_node, token).items() if not k.startswith("HS_TLS_")}
        if ca_file:
            env["HS_TLS_CA_FILE"] = str(ca_file)
        return subprocess.run([*HOTSTANDBY, *args], env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT)


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
