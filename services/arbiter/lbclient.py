"""The arbiter's side of HAProxy's runtime API (``HS_LB_RUNTIME_API``): one short TCP call per command batch.

What is said, and why, lives in :mod:`hotstandby.lbruntime`; this module sends it without ever holding
up a role change for long:

- ``role_changed(role)`` fires in the background once the role is durable; each load balancer gets the
  commands of the newest role only, in order (one call at a time per load balancer), each call bounded
  by ``call_timeout_s``. A failed call is reported once, counted every time, and tried again by
  ``retry()`` (the loop calls it each tick, at most every ``RETRY_S``) until it lands or a newer role
  replaces it; meanwhile the health check moves the VIP as it always did.
- ``drain(bound_s)`` is awaited before a planned demotion: every load balancer stops sending new
  requests to this node, and the requests it serves get up to ``bound_s`` to finish.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hotstandby import lbruntime
from hotstandby.lbruntime import Endpoint
from hotstandby.model import Role
from services.arbiter.memory import Memory

log = logging.getLogger("hotstandby.lb")

CALL_TIMEOUT_S = 0.5  # one connect + one answer from a load balancer on the LAN: a few ms when well
RETRY_S = 1.0  # a load balancer that did not answer is asked again at most this often
POLL_S = 0.01  # how often a drain looks at the sessions still being served
MAX_ANSWER = 1 << 20  # `show stat` of one backend is a few kB


class LbCallError(Exception):
    """No usable answer from a load balancer: refused, timed out, or HAProxy's own error words."""


# (load balancer, what we said, None on success or why it failed, consecutive failures so far)
Report = Callable[[Endpoint, str, str | None, int], None]


async def call(ep: Endpoint, payload: bytes, timeout: float) -> str:
    """Send one batch on a fresh connection and read the answer until HAProxy closes it."""
    async def exchange() -> str:
        reader, writer = await asyncio.open_connection(ep.host, ep.port)
        try:
            writer.write(payload)
            await writer.drain()
            data = b""
            while chunk := await reader.read(65536):
                data += chunk
                if len(data) > MAX_ANSWER:
                    raise LbCallError("answer too long")
            return data.decode("utf-8", "replace")
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(exchange(), timeout)
    except TimeoutError:
        raise LbCallError(f"no answer within {timeout:g} s") from None
    except OSError as exc:
        raise LbCallError(exc.strerror or type(exc).__name__) from None


@dataclass
class _Lb:
    ep: Endpoint
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    want: tuple[int, str, list[str]] | None = None  # (generation, what, commands) not yet said
    failures: int = 0
    last_try: float = float("-inf")
    task: asyncio.Task[None] | None = None


def for_node(mem: Memory) -> LoadBalancers | None:
    """This node's load balancers (``HS_LB_RUNTIME_API``; None when empty), reporting to the fault-tolerant
    log (a failure once, then its recovery) and to ``hotstandby_lb_runtime_api_calls_total``."""
    endpoints = lbruntime.parse_endpoints(mem.node.lb_runtime_api)
    if not endpoints:
        return None
    node_id = mem.node.node_id

    def report(ep: Endpoint, what: str, why: str | None, failures: int) -> None:
        mem.metrics.lb_calls.labels(node_id, "ok" if why is None else "failed").inc()
        if why is not None and failures == 1:
            mem.say(f"Load balancer {ep} not told {what}: {why}; its health check will follow the role")
        elif why is None and failures:
            mem.say(f"Load balancer {ep} told {what} after {failures} failed attempts")

    return LoadBalancers(endpoints, node_id=node_id, peer_id=mem.node.peer_id, report=report)


class LoadBalancers:
    """This node's load balancers, told of its role changes; see the module docstring."""

    def __init__(self, endpoints: Sequence[Endpoint], *, node_id: str, peer_id: str, report: Report,
                 backend: str = lbruntime.BACKEND, call_timeout_s: float = CALL_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lbs = [_Lb(ep) for ep in endpoints]
        self.node_id, self.peer_id, self.backend = node_id, peer_id, backend
        self._report, self._timeout, self._clock = report, call_timeout_s, clock
        self._gen = 0

    @property
    def endpoints(self) -> list[Endpoint]:
        return [lb.ep for lb in self._lbs]

    def role_changed(self, role: Role) -> None:
        """Fire and forget (the role is already durable): tell every load balancer about ``role``."""
        if role is Role.ACTIVE:
            what, cmds = f"{self.node_id} is ACTIVE", lbruntime.promoted(self.node_id, self.peer_id, self.backend)
        else:
            what, cmds = f"{self.node_id} is STANDBY", lbruntime.demoted(self.node_id, self.backend)
        self._gen += 1
        for lb in self._lbs:
            lb.want = (self._gen, what, cmds)
            lb.failures = 0  # each role change is reported once when it cannot be said
            self._start(lb)

    def retry(self) -> None:
        """Say again what a load balancer missed (the loop calls this every tick; paced by RETRY_S)."""
        now = self._clock()
        for lb in self._lbs:
            if lb.want is not None and now - lb.last_try >= RETRY_S:
                self._start(lb)

    def pending(self) -> list[str]:
        """The load balancers that have not heard this node's current role yet."""
        return [str(lb.ep) for lb in self._lbs if lb.want is not None]

    async def drain(self, bound_s: float) -> None:
        """Before a planned demotion: no new request to this node, and up to ``bound_s`` for the ones it
        is serving to finish (what is left then is cut by the demotion, as a check would)."""
        deadline = self._clock() + bound_s
        await asyncio.gather(*(self._drain_one(lb, deadline) for lb in self._lbs))

    async def settle(self, timeout: float) -> None:
        """Wait (bounded) for the calls in flight: tests, and a node that stops."""
        tasks = [lb.task for lb in self._lbs if lb.task is not None and not lb.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    # -- internals ---------------------------------------------------------------------------
    def _start(self, lb: _Lb) -> None:
        if lb.task is None or lb.task.done():
            lb.task = asyncio.create_task(self._send(lb), name=f"lb-{lb.ep}")

    async def _send(self, lb: _Lb) -> None:
        async with lb.lock:
            while lb.want is not None:
                gen, what, cmds = lb.want
                lb.last_try = self._clock()
                why = await self._say(lb.ep, cmds)
                if lb.want is not None and lb.want[0] != gen:
                    continue  # a newer role came while we spoke: say that one now
                if why is None:
                    lb.want = None
                    self._report(lb.ep, what, None, lb.failures)
                    lb.failures = 0
                    return
                lb.failures += 1
                self._report(lb.ep, what, why, lb.failures)
                return  # retry() asks again later

    async def _say(self, ep: Endpoint, cmds: list[str]) -> str | None:
        try:
            return lbruntime.problem(await call(ep, lbruntime.batch(cmds), self._timeout))
        except LbCallError as exc:
            return str(exc)

    async def _drain_one(self, lb: _Lb, deadline: float) -> None:
        async with lb.lock:
            what = f"{self.node_id} draining"
            why = await self._say(lb.ep, lbruntime.draining(self.node_id, self.backend))
            self._report(lb.ep, what, why, 1 if why else 0)
            if why is not None:
                return
            while (left := deadline - self._clock()) > 0:
                try:
                    answer = await call(lb.ep, lbruntime.batch([lbruntime.sessions(self.backend)]),
                                        min(self._timeout, left))
                except LbCallError as exc:
                    log.info("load balancer %s: cannot read %s's sessions while draining: %s", lb.ep, self.node_id, exc)
                    return
                busy = lbruntime.current_sessions(answer, self.node_id)
                if not busy:
                    return
                await asyncio.sleep(min(POLL_S, max(0.0, deadline - self._clock())))
