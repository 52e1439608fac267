"""The arbiter's HTTP client for its peer: monitor probe, state exchange, role commands, config pull.

The two heartbeat channels (the monitor probe and the arbiter exchange) each run over a ``Lane``: a
few connections kept alive to one of the peer's ports, one request at a time on each. A call is
hedged on another connection of the lane when it has not answered by part of T, and it fails only
when no valid answer came within T (R2). An attempt that misses T is not cancelled: it goes on in
the background until TCP has retransmitted what was lost, so its connection stays warm for the
next tick instead of costing a new handshake (a lost SYN waits a whole second).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from hotstandby.http1 import Connection, HttpError, Response
from hotstandby.peerauth import H_COMPACT, sign, sign_compact
from hotstandby.settings import ClusterSettings, NodeSettings
from hotstandby.tls import client_context
from services.arbiter import wire

HEDGES = 8  # attempts a call may make inside its T budget
# Connections a lane may open: on a lossy link at I = 0.1 s, attempts lingering from the last
# ticks hold a dozen at once. An idle one costs nothing but a socket, and is closed after KEEPALIVE_S.
LANE_MAX = 4 * HEDGES
# How long an attempt that missed T may go on in the background: long enough for TCP to retransmit
# a lost segment twice (200 ms minimum RTO, doubled), short enough that a frozen peer frees the lane.
LINGER_S = 1.0
KEEPALIVE_S = 110.0  # below the servers' keep-alive timeout (node.py), so a kept connection is still open

Kind = Literal["ok", "answer", "error"]  # a valid answer, a definite negative answer, no answer


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    detail: str
    value: Any = None


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


@dataclass(eq=False)
class _Conn:
    client: Connection
    warm: bool = False  # its last request was answered, so its connection is open and idle
    busy: bool = False


Attempt = Callable[[Connection, float], Awaitable[Outcome]]


class Lane:
    """Kept-alive connections to one of the peer's ports, and calls hedged across them."""

    def __init__(self, tls: ssl.SSLContext | None, most: int = LANE_MAX) -> None:
        self._tls = tls
        self._most = most
        self._conns: list[_Conn] = []
        self._lingering: set[asyncio.Task[Outcome]] = set()

    def _free(self) -> _Conn | None:
        """An idle connection, a warm one first; a new one while the lane may grow."""
        idle = [c for c in self._conns if not c.busy]
        conn = next((c for c in idle if c.warm), idle[0] if idle else None)
        if conn is None and len(self._conns) < self._most:
            conn = _Conn(Connection(self._tls, keepalive_s=KEEPALIVE_S))
            self._conns.append(conn)
        return conn

    async def _run(self, conn: _Conn, attempt: Attempt, timeout: float) -> Outcome:
        try:
            out = await attempt(conn.client, timeout)
        except BaseException:
            conn.warm = False
            raise
        finally:
            conn.busy = False
        conn.warm = out.kind != "error"
        return out

    async def hedged(self, attempt: Attempt, budget: float, hedges: int = HEDGES) -> tuple[Outcome, float]:
        """Run ``attempt`` on a free connection, and again on another one when it fails or at each
        ``budget / hedges`` without an answer, up to ``hedges`` times. Returns the first valid or
        definite answer within ``budget``, else the last error (or "timeout"); and the seconds taken.
        Attempts still running at the deadline linger (their answers are ignored)."""
        start = time.monotonic()
        deadline = start + budget
        timeout = max(budget, LINGER_S)
        pending: set[asyncio.Task[Outcome]] = set()
        launched, last = 0, Outcome("error", "timeout")

        def launch() -> None:
            nonlocal launched
            launched += 1
            conn = self._free()
            if conn is None:  # every connection is busy with an attempt that has not answered
                return
            conn.busy = True
            task = asyncio.create_task(self._run(conn, attempt, timeout))
            pending.add(task)
            self._lingering.add(task)
            task.add_done_callback(self._lingering.discard)

        launch()
        while (now := time.monotonic()) < deadline:
            next_hedge = start + budget * launched / hedges if launched < hedges else deadline
            wait = max(0.0, min(deadline, next_hedge) - now)
            done: set[asyncio.Task[Outcome]] = set()
            if pending:
                done, pending = await asyncio.wait(pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            elif launched < hedges:
                await asyncio.sleep(wait)  # no free connection yet: try again at the next hedge
            else:
                break
            for task in done:
                out = task.result()
                if out.kind != "error":
                    return out, time.monotonic() - start
                last = out
            if launched < hedges and (done or time.monotonic() >= next_hedge):
                launch()  # a failed attempt is retried at once, a silent one hedged on schedule
        return last, time.monotonic() - start

    async def aclose(self) -> None:
        for task in list(self._lingering):
            task.cancel()
        await asyncio.gather(*self._lingering, return_exceptions=True)
        for conn in self._conns:
            conn.client.close()


class PeerClient:
    def __init__(self, node: NodeSettings, cluster: Callable[[], ClusterSettings]) -> None:
        self._node = node
        self._cluster = cluster
        self._scheme = "https" if node.tls else "http"
        tls = _tls(node)
        self._monitor = Lane(tls)  # the first channel: the peer monitor's probe
        # The second channel, the state exchange with the peer arbiter; role commands and config
        # pulls use its warm connections too, once each (not hedged: a command is sent once).
        self._arbiter = Lane(tls)

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
        """A signed call to the peer arbiter over the exchange's lane; ``payload`` is made afresh for
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

        out, _ = await self._arbiter.hedged(attempt, timeout, hedges)
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
