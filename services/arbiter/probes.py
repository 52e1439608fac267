"""LAN reachability (TCP connect to the gateway or LB) and where the VIP routes (GET /whoami)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import httpx

from hotstandby.settings import ClusterSettings, NodeSettings, split_host_port
from hotstandby.tls import client_context


async def tcp_connect(host: str, port: int, timeout: float) -> str | None:
    """None when a TCP connection to host:port opens within ``timeout``, else why not."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


async def tcp_ok(host: str, port: int, timeout: float) -> bool:
    return await tcp_connect(host, port, timeout) is None


async def lan_ok(cfg: ClusterSettings) -> bool | None:
    """True when any LAN probe answers within T; None when no probe is configured (check off)."""
    targets = cfg.lan_probes
    if not targets:
        return None
    results = await asyncio.gather(*(tcp_ok(h, p, cfg.heartbeat_timeout_s) for h, p in targets))
    return any(results)


class VipProbe:
    def __init__(self, node: NodeSettings | None = None) -> None:
        # A fresh connection each time: HAProxy must route this request, not reuse a pinned one.
        # With TLS the VIP's frontend must serve HTTPS with a certificate from HS_TLS_CA_FILE's CA.
        tls = node is not None and node.tls
        self._scheme = "https" if tls else "http"
        self._verify: ssl.SSLContext | bool = (
            client_context(node.tls_ca_file, node.tls_cert_file, node.tls_key_file) if node and tls else False)

    async def where(self, cfg: ClusterSettings) -> str | None:
        """The node_id the VIP routed /whoami to, or None (no VIP, no answer)."""
        if not cfg.test_vip_destination or not cfg.vip_address:
            return None
        host, port = split_host_port(cfg.vip_address, default_port=cfg.monitor_port)
        url = f"{self._scheme}://{host}:{port}/whoami"
        try:
            async with httpx.AsyncClient(trust_env=False, verify=self._verify) as client:
                r = await client.get(url, timeout=cfg.heartbeat_timeout_s, headers={"connection": "close"})
            node = r.json().get("node_id") if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return node if node in ("server1", "server2") else None
