"""A lane: a few connections kept alive to one of the peer's ports, and calls hedged across them.

One request at a time on each connection. A call is hedged on another connection of the lane when it has
not answered by part of its budget (T, for the heartbeat channels), and it fails only when no valid answer
came within the budget (R2). An attempt that misses the budget is not cancelled: it goes on in the
background until TCP has retransmitted what was lost, so its connection stays warm for the next tick
instead of costing a new handshake (a lost SYN waits a whole second). What is asked on a lane is
services/arbiter/peer.py's.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from hotstandby.http1 import Connection

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

    def cool(self) -> None:
        """Close the idle connections: the peer stopped answering on another lane, so these may lead
        one way only (a one-way cut lets a request in and no answer out)."""
        for conn in self._conns:
            if not conn.busy:
                conn.client.close()
                conn.warm = False

    async def aclose(self) -> None:
        for task in list(self._lingering):
            task.cancel()
        await asyncio.gather(*self._lingering, return_exceptions=True)
        for conn in self._conns:
            conn.client.close()

