"""LAN reachability (TCP connect to the gateway or LB) and where the VIP routes (GET /whoami)."""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import os
import socket
import ssl
from typing import Any

from hotstandby.settings import ClusterSettings, NodeSettings, split_host_port
from hotstandby.tls import client_context


async def tcp_connect(host: str, port: int, timeout: float) -> str | None:
    """None when a TCP connection to ``host:port`` completes within ``timeout`` (then it is closed at once),
    else why not. A bare non-blocking socket, not a stream: every tick does this, ten times a second at
    I = 0.1 s."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            family, address = _numeric(host, port) or await _resolve(loop, host, port)
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setblocking(False)
                await _connect(loop, sock, address)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
    return None


async def _connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, address: tuple[Any, ...]) -> None:
    """A non-blocking connect to a resolved address, waited for as the loop waits for a socket to be writable.
    Not ``loop.sock_connect``: uvloop's resolves the address again, even an IP literal, in its thread pool
    (a thread woken and a callback, each tick)."""
    err = sock.connect_ex(address)
    if err == errno.EINPROGRESS:
        fd = sock.fileno()
        writable: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not writable.done():
                writable.set_result(None)

        loop.add_writer(fd, ready)
        try:
            await writable
        finally:
            loop.remove_writer(fd)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))


async def tcp_ok(host: str, port: int, timeout: float) -> bool:
    return await tcp_connect(host, port, timeout) is None


@functools.lru_cache(maxsize=64)
def _numeric(host: str, port: int) -> tuple[int, tuple[Any, ...]] | None:
    """An IP literal needs no resolver (the usual LAN probe target: the gateway, the LB)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return (socket.AF_INET6, (str(ip), port, 0, 0)) if ip.version == 6 else (socket.AF_INET, (str(ip), port))


async def _resolve(loop: asyncio.AbstractEventLoop, host: str, port: int) -> tuple[int, tuple[Any, ...]]:
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"cannot resolve {host}")
    family, _, _, _, address = infos[0]
    return family, address


@functools.lru_cache(maxsize=16)
def _targets(addresses: str) -> list[tuple[str, int]]:
    """``lan_probe_addresses`` parsed once per value (it is validated, and read every tick)."""
    return [split_host_port(x) for x in addresses.split(",") if x]


async def lan_ok(cfg: ClusterSettings) -> bool | None:
    """True when any LAN probe answers within T; None when no probe is configured (check off)."""
    targets = _targets(cfg.lan_probe_addresses)
    if not targets:
        return None
    if len(targets) == 1:
        return await tcp_ok(*targets[0], cfg.heartbeat_timeout_s)
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
        import httpx  # only with test_vip_destination: a node without it never loads an HTTP client library

        host, port = split_host_port(cfg.vip_address, default_port=cfg.monitor_port)
        url = f"{self._scheme}://{host}:{port}/whoami"
        try:
            async with httpx.AsyncClient(trust_env=False, verify=self._verify) as client:
                r = await client.get(url, timeout=cfg.heartbeat_timeout_s, headers={"connection": "close"})
            node = r.json().get("node_id") if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return node if node in ("server1", "server2") else None
