"""HAProxy on a lab host in front of the pair, its config rendered from the pair's own settings.

The config comes from ``hotstandby.haproxy.write_config`` (follow-role checks derived from I and T,
requests held while no node is UP), exactly what ``make run`` and a deployment use. The bench runs
it on the infra host, the nemesis on a host of its own (``lb``) so it can be cut from either node.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from hotstandby.haproxy import write_config
from hotstandby.settings import ClusterSettings
from lab.netns import Lab, wait_port

VIP_PORT, STATS_PORT = 80, 8404


def haproxy_config(lab: Lab, host: str, root: Path, cluster: ClusterSettings) -> Path:
    """haproxy.cfg (and the Lua it loads) in ``root`` for a VIP on ``host``, the nodes at their lab addresses."""
    cluster = cluster.model_copy(update={"server1_address": lab.addr("server1"),
                                         "server2_address": lab.addr("server2")})
    return write_config(root, cluster, vip=f"{lab.addr(host)}:{VIP_PORT}", stats_port=STATS_PORT)


def start_haproxy(lab: Lab, host: str, root: Path, cluster: ClusterSettings) -> subprocess.Popen[bytes]:
    """HAProxy on ``host``, in the foreground (-db) so the lab stops it; returns once the VIP listens."""
    cfg = haproxy_config(lab, host, root, cluster)
    proc = lab.spawn(host, ["haproxy", "-f", str(cfg), "-db"], log=root / "haproxy.out")
    wait_port(lab.addr(host), VIP_PORT, 15)
    return proc


def vip_url(lab: Lab, host: str, path: str = "/whoami") -> str:
    return f"http://{lab.addr(host)}:{VIP_PORT}{path}"
