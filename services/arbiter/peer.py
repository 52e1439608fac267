"""The arbiter's HTTP client for its peer: monitor probe, state exchange, role commands, config pull.

Connections are kept alive and reused (a new TCP handshake per probe costs a whole retransmit
timeout when a SYN is lost), and a probe is hedged on other kept connections inside its T budget:
it fails only when no valid answer came within T (R2).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from hotstandby.peerauth import sign
from hotstandby.settings import ClusterSettings, NodeSettings
from hotstandby.tls import client_context

USER_AGENT = "hotstandby-arbiter"
HEDGES = 4  # attempts a probe may make inside its T budget
KEEPALIVE_S = 110.0  # below the servers' keep-alive timeout (node.py), so a kept connection is still open


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    seconds: float
    detail: str


@dataclass(frozen=True)
class CallResult:
    ok: bool
    status: int | None  # None: no answer at all (unreachable, timeout)
    body: Any
    detail: str

    @property
    def answered(self) -> bool:
        return self.status is not None


def _client(node: NodeSettings) -> httpx.AsyncClient:
    # With TLS the peer's certificate is verified against HS_TLS_CA_FILE (host name = its address).
    verify: ssl.SSLContext | bool = (
        client_context(node.tls_ca_file, node.tls_cert_file, node.tls_key_file) if node.tls else False)
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=4, keepalive_expiry=KEEPALIVE_S)
    return httpx.AsyncClient(verify=verify, limits=limits, headers={"user-agent": USER_AGENT}, trust_env=False)


def _why(exc: BaseException) -> str:
    """The exception's name, plus the reason when a TLS handshake failed (a refused certificate)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"{type(exc).__name__} (TLS: {cause.verify_message or 'certificate refused'})"
        if isinstance(cause, ssl.SSLError):
            return f"{type(exc).__name__} (TLS: {cause.reason or 'handshake failed'})"
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


class PeerClient:
    def __init__(self, node: NodeSettings, cluster: Callable[[], ClusterSettings]) -> None:
        self._node = node
        self._cluster = cluster
        self._scheme = "https" if node.tls else "http"
        # The probe's attempts each get a pool of their own: a hedge must not queue behind a stuck
        # attempt on the same connection. Calls to the peer arbiter share the first pool.
        self._probe_clients = [_client(node) for _ in range(HEDGES)]
        self._primary = self._probe_clients[0]

    @property
    def address(self) -> str:
        return self._cluster().address_of(self._node.peer_id)

    def _url(self, port: int, path: str) -> str:
        host = self.address
        host = f"[{host}]" if ":" in host else host
        return f"{self._scheme}://{host}:{port}{path}"

    async def probe(self) -> ProbeResult:
        """GET the peer monitor's mod=NONE (or IPSWS), hedged inside the T budget.

        Up to ``HEDGES`` attempts, each on a connection of its own that is kept alive: the first at
        once, the next when one fails or at each quarter of T without an answer. The probe succeeds
        on the first valid answer, fails at once when the peer answers that it is unhealthy (an HTTP
        answer other than OK), and otherwise fails only when no valid answer came within T (R2). On
        a lossy link this is what turns "one lost segment" (TCP's 200 ms minimum retransmit is longer
        than a sub-second T) into a success instead of a failure."""
        cfg = self._cluster()
        mod, want = ("IPSWS", "IPSWS=OK") if cfg.switch_on_application_error else ("NONE", "OK")
        url = self._url(cfg.monitor_port, f"/IPSCFG/admin/monitor.aspx?mod={mod}")
        budget = cfg.heartbeat_timeout_s
        start = time.monotonic()
        deadline = start + budget

        async def attempt(client: httpx.AsyncClient) -> tuple[str, str]:
            try:
                r = await client.get(url, timeout=max(0.001, deadline - time.monotonic()))
            except httpx.HTTPError as exc:
                return "error", _why(exc)
            if r.status_code == 200 and r.text.strip() == want:
                return "ok", "ok"
            return "answer", f"HTTP {r.status_code} {r.text.strip()[:80]}"

        pending: set[asyncio.Task[tuple[str, str]]] = set()
        launched, detail = 0, "timeout"

        def launch() -> None:
            nonlocal launched
            pending.add(asyncio.create_task(attempt(self._probe_clients[launched])))
            launched += 1

        launch()
        try:
            while pending:
                now = time.monotonic()
                if now >= deadline:
                    break
                next_hedge = start + budget * launched / HEDGES if launched < HEDGES else deadline
                done, pending = await asyncio.wait(pending, timeout=max(0.0, min(deadline, next_hedge) - now),
                                                   return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    kind, detail = task.result()
                    if kind == "ok":
                        return ProbeResult(True, time.monotonic() - start, "ok")
                    if kind == "answer":
                        return ProbeResult(False, time.monotonic() - start, detail)
                if launched < HEDGES and (done or time.monotonic() >= next_hedge):
                    launch()  # a failed attempt is retried at once, a silent one hedged on schedule
        finally:
            for task in pending:
                task.cancel()
        return ProbeResult(False, time.monotonic() - start, detail if detail != "ok" else "timeout")

    async def _signed(self, method: str, path: str, payload: Any | None, timeout: float) -> CallResult:
        cfg = self._cluster()
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = sign(self._node.peer_secret, method, path, body, node=self._node.node_id)
        headers["content-type"] = "application/json"
        try:
            r = await self._primary.request(method, self._url(cfg.arbiter_port, path), content=body,
                                            headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            return CallResult(False, None, None, f"{_why(exc)} calling {path}")
        try:
            data = r.json()
        except ValueError:
            data = None
        if r.status_code >= 400:
            detail = data.get("detail") if isinstance(data, dict) else r.text[:200]
            return CallResult(False, r.status_code, data, f"HTTP {r.status_code}: {detail}")
        return CallResult(True, r.status_code, data, "ok")

    async def exchange(self, payload: dict[str, Any], timeout: float) -> CallResult:
        return await self._signed("POST", "/peer/heartbeat", payload, timeout)

    async def role(self, payload: dict[str, Any], timeout: float) -> CallResult:
        return await self._signed("POST", "/peer/role", payload, timeout)

    async def config(self, digest: str, timeout: float) -> CallResult:
        return await self._signed("GET", f"/peer/config?digest={digest}", None, timeout)

    async def aclose(self) -> None:
        for client in self._probe_clients:
            await client.aclose()
