"""The arbiter's HTTP client for its peer: monitor probe, state exchange, role commands, config pull.

The two heartbeat channels (the monitor probe and the arbiter exchange) each run over a ``Lane``
(services/arbiter/lane.py): a few connections kept alive to one of the peer's ports, calls hedged
across them inside T, an attempt that misses T left to finish in the background so its connection
stays warm.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hotstandby.http1 import Connection, HttpError, Response
from hotstandby.peerauth import H_COMPACT, sign, sign_compact
from hotstandby.settings import ClusterSettings, NodeSettings
from hotstandby.tls import client_context
from services.arbiter import wire
from services.arbiter.lane import HEDGES, Lane, Outcome


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
    sent: Any = None  # the payload this answer replies to (a hedged call sends several)

    @property
    def answered(self) -> bool:
        return self.status is not None


def _tls(node: NodeSettings) -> ssl.SSLContext | None:
    """Built once per peer and shared by its connections (a context costs ~2 ms to make).
    With TLS the peer's certificate is verified against HS_TLS_CA_FILE (host name = its address)."""
    return client_context(node.tls_ca_file, node.tls_cert_file, node.tls_key_file) if node.tls else None


class PeerClient:
    def __init__(self, node: NodeSettings, cluster: Callable[[], ClusterSettings]) -> None:
        self._node = node
        self._cluster = cluster
        self._scheme = "https" if node.tls else "http"
        tls = _tls(node)
        # Each lane carries one kind of call only: the peer answers the probe and the compact exchange on
        # the connection's own protocol (services/fastpath.py) for as long as a connection carries nothing
        # else; the first other request hands that connection to the application for good.
        self._monitor = Lane(tls)  # the first channel: the peer monitor's probe
        self._arbiter = Lane(tls)  # the second: the compact exchange with the peer arbiter
        # Role commands, config pulls and the long exchange (an earlier release's): kept warm apart.
        self._commands = Lane(tls)

    @property
    def address(self) -> str:
        return self._cluster().address_of(self._node.peer_id)

    async def probe(self, budget: float | None = None) -> ProbeResult:
        """GET the peer monitor's mod=NONE (or IPSWS), hedged inside the T budget.

        Succeeds on the first valid answer, fails at once when the peer answers that it is unhealthy
        (an HTTP answer other than OK), and otherwise fails only when no valid answer came within T
        (R2). On a lossy link this is what turns "one lost segment" (TCP's 200 ms minimum retransmit
        is longer than a sub-second T) into a success instead of a failure. ``budget``: what is left of T
        when the probe hedges a late exchange (services/arbiter/hearing.py)."""
        cfg = self._cluster()
        mod, want = ("IPSWS", "IPSWS=OK") if cfg.switch_on_application_error else ("NONE", "OK")
        host, port, path = self.address, cfg.monitor_port, f"/IPSCFG/admin/monitor.aspx?mod={mod}"

        async def attempt(conn: Connection, timeout: float) -> Outcome:
            try:
                r = await conn.request(host, port, "GET", path, timeout=timeout)
            except HttpError as exc:
                return Outcome("error", str(exc))
            if r.status == 200 and r.text.strip() == want:
                return Outcome("ok", "ok")
            return Outcome("answer", f"HTTP {r.status} {r.text.strip()[:80]}")

        out, seconds = await self._monitor.hedged(attempt, cfg.heartbeat_timeout_s if budget is None else budget)
        return ProbeResult(out.kind == "ok", seconds, out.detail)

    def _signed(self, method: str, path: str, payload: Any | None) -> tuple[bytes, dict[str, str]]:
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        headers = sign(self._node.peer_secret, method, path, body, node=self._node.node_id)
        if payload is not None:
            headers["content-type"] = "application/json"
        return body, headers

    @staticmethod
    def _result(r: Response, sent: Any) -> CallResult:
        try:
            data = json.loads(r.body) if r.body else None
        except ValueError:
            data = None
        if r.status >= 400:
            detail = data.get("detail") if isinstance(data, dict) else r.text[:200]
            return CallResult(False, r.status, data, f"HTTP {r.status}: {detail}", sent)
        return CallResult(True, r.status, data, "ok", sent)

    async def _call(self, method: str, path: str, payload: Callable[[], Any], timeout: float,
                    hedges: int) -> CallResult:
        """A signed call to the peer arbiter over the commands' lane; ``payload`` is made afresh for
        each attempt (its own signature, nonce and send time)."""
        host, port = self.address, self._cluster().arbiter_port

        async def attempt(conn: Connection, limit: float) -> Outcome:
            sent = payload()
            body, headers = self._signed(method, path, sent)
            try:
                r = await conn.request(host, port, method, path, body=body, headers=headers, timeout=limit)
            except HttpError as exc:
                return Outcome("error", f"{exc} calling {path}")
            res = self._result(r, sent)
            return Outcome("ok" if res.ok else "answer", res.detail, res)

        out, _ = await self._commands.hedged(attempt, timeout, hedges)
        return out.value if out.value is not None else CallResult(False, None, None, out.detail)

    async def beat(self, make: Callable[[], wire.Beat], timeout: float) -> CallResult:
        """POST /peer/hb, the compact exchange (protocol 2), hedged like the probe. The answer's ``body``
        is its raw bytes (``wire.decode`` reads them); ``sent`` is the Beat it replies to."""
        host, port, secret, me = self.address, self._cluster().arbiter_port, self._node.peer_secret, self._node.node_id

        async def attempt(conn: Connection, limit: float) -> Outcome:
            sent = make()
            body = wire.encode(sent)
            headers = {H_COMPACT: sign_compact(secret, "POST", wire.PATH, body, node=me)}
            try:
                r = await conn.request(host, port, "POST", wire.PATH, body=body, headers=headers, timeout=limit)
            except HttpError as exc:
                return Outcome("error", f"{exc} calling {wire.PATH}")
            if r.status == 200:
                return Outcome("ok", "ok", CallResult(True, 200, r.body, "ok", sent))
            res = self._result(r, sent)
            return Outcome("answer", res.detail, res)

        out, _ = await self._arbiter.hedged(attempt, timeout)
        if out.kind == "error":
            # No answer at all: a command must not go out on a connection warmed before the peer fell silent
            # (as when it shared the exchange's lane, whose failed attempts close their connections).
            self._commands.cool()
        return out.value if out.value is not None else CallResult(False, None, None, out.detail)

    async def exchange(self, payload: Callable[[], dict[str, Any]], timeout: float) -> CallResult:
        """POST /peer/heartbeat, the long exchange (protocol 1, what a peer of an earlier release speaks),
        hedged like the probe."""
        return await self._call("POST", "/peer/heartbeat", payload, timeout, HEDGES)

    async def role(self, payload: dict[str, Any], timeout: float) -> CallResult:
        """A role command is sent once: it is not hedged."""
        return await self._call("POST", "/peer/role", lambda: payload, timeout, 1)

    async def config(self, digest: str, timeout: float) -> CallResult:
        return await self._call("GET", f"/peer/config?digest={digest}", lambda: None, timeout, 1)

    async def aclose(self) -> None:
        await self._monitor.aclose()
        await self._arbiter.aclose()
        await self._commands.aclose()
