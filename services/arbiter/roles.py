"""Carrying out the core's plans: the only code that changes this node's role.

``carry_out(plan)`` drives ``hotstandby.carry.carry_out`` (what each step means, in order, decided
once for the arbiter and the simulator) and performs its effects on the real edges: the witness
key, SQLite, the CTI supervisor, role commands to the peer, the fault-tolerant log. A role is
always durable before CTI starts or stops because of it (SPEC 4). Callers hold ``Memory.lock``.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from hotstandby import lbruntime
from hotstandby.carry import (
    Adopt,
    Answer,
    Ask,
    Effect,
    Heard,
    KeyNow,
    Outcome,
    Persist,
    Reassert,
    Say,
    TakeKey,
    carry_out,
)
from hotstandby.model import Plan, ReleaseKey, Role, StartCti, StopCti
from hotstandby.store import Store, StoreError
from services.arbiter.lbclient import LoadBalancers
from services.arbiter.lease import Lease
from services.arbiter.memory import Memory
from services.arbiter.peer import PeerClient
from services.arbiter.status import update_gauges

log = logging.getLogger("hotstandby.arbiter")
LB_HEAD_START_S = 0.05  # how long a promotion waits for its load balancers before starting CTI


class CtiControl(Protocol):
    async def converge(self) -> None: ...
    def snapshot(self) -> dict[str, Any]: ...
    async def restart(self) -> str | None:
        """A manual CTI restart (counted in ``restarts``): None once done, else why not (not ACTIVE)."""
        ...
    def vouch(self) -> tuple[bool, str | None]:
        """(the monitor serves from this process, its application problem or None)."""
        ...


class Roles:
    def __init__(self, mem: Memory, *, store: Store, cti: CtiControl, lease: Lease, peer: PeerClient,
                 lb: LoadBalancers | None = None) -> None:
        self.mem, self.store, self.cti, self.lease, self.peer = mem, store, cti, lease, peer
        self.lb = lb  # HS_LB_RUNTIME_API: told of every role change once it is durable

    async def carry_out(self, plan: Plan) -> Outcome:
        """Every step of ``plan``, in order; the outcome says what was done or why not."""
        mem = self.mem
        for line in plan.log:
            mem.say(line)
        run = carry_out(plan, mem.cluster, lambda: mem.state)
        result: Any = None
        while True:
            try:
                effect = run.send(result)
            except StopIteration as stop:
                return stop.value
            result = await self._do(effect)

    async def _do(self, e: Effect) -> Any:
        mem = self.mem
        if isinstance(e, Say):
            if e.once:
                log.warning(e.line)
            if not (e.once and e.line == mem.last_reason):  # once per streak, not once a tick
                mem.say(e.line)
        elif isinstance(e, Adopt):
            await self._adopt(e)
        elif isinstance(e, Persist):
            if self.lb and lbruntime.planned_demotion(mem.state, e.decision):
                # No new request to us, and the ones in flight finish before we step down.
                cfg = mem.cluster
                await self.lb.drain(lbruntime.drain_bound_s(cfg.heartbeat_interval_s, cfg.heartbeat_timeout_s))
            try:  # the role, with its history line and hook event when the role changes (one transaction)
                journal = mem.journal.role_change(mem.state, e.decision, mem.wall())
                self.store.save_role(node_id=mem.node.node_id, role=e.state.role, epoch=e.state.epoch,
                                     cause=e.state.cause, **journal)
                mem.journal.committed()
            except StoreError as exc:
                mem.store_problem = str(exc)
                return str(exc)
        elif isinstance(e, StopCti | StartCti):
            await self.cti.converge()
        elif isinstance(e, Ask):
            return await self._ask(e)
        elif isinstance(e, Heard):
            mem.state = e.state
            mem.version += 1
        elif isinstance(e, TakeKey):
            return await self.lease.take(e.epoch)
        elif isinstance(e, ReleaseKey):
            return await self.lease.release()
        elif isinstance(e, KeyNow):
            return self.lease.view()
        elif isinstance(e, Reassert):
            return await self.lease.reassert(e.epoch)
        return None

    async def _adopt(self, e: Adopt) -> None:
        mem = self.mem
        old, new = mem.state, e.decision.state
        mem.state = new
        if e.durable:
            mem.version += 1
        if new.role is not old.role:
            mem.role_since = mem.wall()  # the role took effect now; the load balancers hear of it after
            mem.metrics.role_changes.labels(mem.node.node_id, new.role.value, new.cause.value).inc()
            if self.lb:
                self.lb.role_changed(new.role)  # the role is durable: tell the load balancers now
                if new.role is Role.ACTIVE:
                    # The VIP first (a local call takes a few ms), then CTI: a cold start's fork would hold
                    # the loop meanwhile. Never longer than LB_HEAD_START_S; the rest goes on in the background.
                    await self.lb.settle(LB_HEAD_START_S)
        update_gauges(mem)

    async def _ask(self, e: Ask) -> Answer:
        r = await self.peer.role({"role": e.role.value, "epoch": e.epoch, "cause": e.cause.value, "reason": e.why},
                                 e.timeout)
        role = epoch = None
        if r.ok and isinstance(r.body, dict):
            try:
                role, epoch = Role(r.body["role"]), int(r.body["epoch"])
            except (KeyError, TypeError, ValueError):
                role = epoch = None
        return Answer(r.ok, r.answered, r.detail, role, epoch, unauthorized=r.status == 401)
