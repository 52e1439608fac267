"""Carrying out role changes: the only code that changes this node's role.

``commit_and_apply(decision)`` takes the witness key first when the decision promotes (no key, no
promotion), persists role, epoch and cause, then applies the decision's actions in order: CTI
stop or start, the key's release once CTI is down, role commands to the peer. A role is always
durable before CTI starts or stops because of it (SPEC 4). Callers hold ``Memory.lock``.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import replace
from typing import Any, Protocol

from hotstandby import lbruntime
from hotstandby.model import Action, Cause, Decision, NodeState, PeerView, Role
from hotstandby.store import Store, StoreError
from services.arbiter.lbclient import LoadBalancers
from services.arbiter.lease import Lease
from services.arbiter.memory import Memory
from services.arbiter.peer import CallResult, PeerClient
from services.arbiter.status import update_gauges

PROMOTE_ANSWER_S = 1.0  # the least a "take ACTIVE" command waits for its answer (see command_peer)
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


def _why(d: Decision) -> str:
    """The cause part of a switch sentence, to pass on to the peer (it adds its own rule words)."""
    return re.sub(r"^SWITCH THIS SERVER TO \w+, R\d+ ", "", d.reason)


class Roles:
    def __init__(self, mem: Memory, *, store: Store, cti: CtiControl, lease: Lease, peer: PeerClient,
                 lb: LoadBalancers | None = None) -> None:
        self.mem, self.store, self.cti, self.lease, self.peer = mem, store, cti, lease, peer
        self.lb = lb  # HS_LB_RUNTIME_API: told of every role change once it is durable

    async def commit_and_apply(self, d: Decision, *, promote_timeout: float | None = None,
                               kept: NodeState | None = None) -> CallResult | None:
        mem = self.mem
        if self.lb and lbruntime.planned_demotion(mem.state, d):
            # No new request to us, and the ones in flight finish before we step down.
            cfg = mem.cluster
            await self.lb.drain(lbruntime.drain_bound_s(cfg.heartbeat_interval_s, cfg.heartbeat_timeout_s))
        d = mem.applied = await self.lease.take(d, kept or mem.state)
        old, new = mem.state, d.state
        durable = (new.role, new.epoch, new.cause) != (old.role, old.epoch, old.cause)
        if durable:
            try:
                self.store.save_node(node_id=mem.node.node_id, role=new.role, epoch=new.epoch, cause=new.cause)
            except StoreError as exc:
                mem.store_problem = str(exc)
                if new.role is Role.ACTIVE and old.role is not Role.ACTIVE:
                    mem.say(f"Not taking ACTIVE: the role cannot be persisted ({exc})")
                    mem.state = old
                    return None
                # Stepping down is safe unpersisted: a restarted node is STANDBY whatever it stored.
                mem.say(f"Role change not persisted ({exc}); stepping down anyway")
        mem.state = new
        if durable:
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
        if d.switched or (new.role is not old.role):
            mem.say(d.reason)
        update_gauges(mem)
        result = None
        for action in d.actions:
            if action in (Action.START_CTI, Action.STOP_CTI):
                await self.cti.converge()
                if action is Action.STOP_CTI and new.role is Role.STANDBY:
                    await self.lease.release()  # our CTI is down: the peer may take the key (handover)
            elif action is Action.DEMOTE_PEER:
                await self.command_peer(Role.STANDBY, new.epoch, new.cause, _why(d))
            elif action is Action.PROMOTE_PEER:
                result = await self.command_peer(Role.ACTIVE, new.epoch + 1, new.cause, _why(d),
                                                 timeout=promote_timeout)
        return result

    async def command_peer(self, role: Role, epoch: int, cause: Cause, reason: str,
                           timeout: float | None = None) -> CallResult:
        mem = self.mem
        cfg = mem.cluster
        if timeout is None:
            # Asking the peer to take ACTIVE waits at least PROMOTE_ANSWER_S: a loaded peer that persists
            # and answers in 0.15 s at T = 0.1 s has taken ACTIVE, and reading that as "no" (then taking
            # ACTIVE back) would leave both ACTIVE until R4. Telling it to stand down stays bounded by T:
            # a promotion must not wait on a peer that may be gone.
            timeout = max(cfg.heartbeat_timeout_s, PROMOTE_ANSWER_S) if role is Role.ACTIVE else cfg.heartbeat_timeout_s
        r = await self.peer.role({"role": role.value, "epoch": epoch, "cause": cause.value, "reason": reason},
                                 timeout)
        peer = mem.node.peer_id
        if r.ok:
            self._peer_confirmed(r.body)
            mem.say(f"Server {peer} confirmed {role.value} (epoch {epoch})")
        elif r.answered:
            mem.say(f"Server {peer} refused {role.value}: {r.detail}")
        else:
            mem.say(f"Server {peer} not reached to make it {role.value}: {r.detail}")
        return r

    def _peer_confirmed(self, body: Any) -> None:
        """A role command's answer is the freshest word on the peer's role: status shows it at once."""
        mem = self.mem
        with contextlib.suppress(KeyError, TypeError, ValueError):
            role, epoch = Role(body["role"]), int(body["epoch"])
            old = mem.state.peer or PeerView(node_id=mem.node.peer_id, role=role, epoch=epoch)
            mem.state = mem.state.evolve(peer=replace(old, role=role, epoch=epoch))
            mem.version += 1
