"""The commands that change roles outside the tick: a role command from the peer, the operator's
manual switch (R7) and the graceful stop (R10). Each holds the lock and goes through ``Roles``.
"""

from __future__ import annotations

import asyncio
import logging

from hotstandby import rules
from hotstandby.model import Cause, NodeState, Role
from services.arbiter.exchange import Exchange
from services.arbiter.memory import Memory
from services.arbiter.peer import PeerClient
from services.arbiter.roles import PROMOTE_ANSWER_S, CtiControl, Roles

log = logging.getLogger("hotstandby.arbiter")


class SwitchRefused(Exception):
    """A manual switch that cannot be done safely: the text is the 409's reason."""


class Commands:
    def __init__(self, mem: Memory, *, roles: Roles, exchange: Exchange, peer: PeerClient, cti: CtiControl) -> None:
        self.mem, self.roles, self.exchange, self.peer, self.cti = mem, roles, exchange, peer, cti

    async def on_role_command(self, role: Role, epoch: int, cause: Cause, reason: str) -> NodeState:
        mem = self.mem
        async with mem.lock:
            d = rules.on_role_command(mem.state, role, epoch, cause=cause, why=f"{reason} (asked by "
                                      f"{mem.node.peer_id})", can_be_active=self.exchange.can_be_active())
            await self.roles.commit_and_apply(d)
            if role is Role.ACTIVE and mem.state.role is not Role.ACTIVE:
                applied = mem.applied
                raise rules.StaleCommand(applied.reason if applied and applied.reason.startswith("no action")
                                         else "the role could not be persisted")
            return mem.state

    async def switch(self, target: str, *, force: bool, who: str) -> NodeState:
        """R7: move ACTIVE to ``target``; the old ACTIVE's CTI stops before the target's starts."""
        mem = self.mem
        me, peer = mem.node.node_id, mem.node.peer_id
        async with mem.lock:
            mem.say(f"Manual switch to {target} requested by {who}{' (force)' if force else ''}")
            if target == me:
                return await self._switch_to_me(force, who)
            return await self._switch_to_peer(peer, who)

    async def _switch_to_me(self, force: bool, who: str) -> NodeState:
        mem = self.mem
        s, peer = mem.state, mem.node.peer_id
        if s.role is Role.ACTIVE:
            return s
        if not self.exchange.can_be_active():
            raise SwitchRefused(f"{s.node_id} cannot be ACTIVE: "
                                f"{mem.store_problem or 'its LAN check fails or hot standby is disabled'}")
        known = max(s.epoch, s.peer.epoch if s.peer else 0)
        why = f"manual switch requested by {who}"
        r = await self.roles.command_peer(Role.STANDBY, known + 1, Cause.MANUAL, why)
        if not r.ok:
            if r.answered and r.status != 401:
                raise SwitchRefused(f"{peer} refused to step down: {r.detail}")
            if not force:
                raise SwitchRefused(f"the current ACTIVE {peer} is unreachable ({r.detail}); "
                                    "use force to take ACTIVE anyway")
            why += f", forced while {peer} is unreachable"
        d = rules.promote(mem.state, rule="R7", cause=Cause.MANUAL, why=why, demote_peer=False, epoch=known + 1)
        await self.roles.commit_and_apply(d)
        if mem.state.role is not Role.ACTIVE:
            applied = mem.applied
            raise SwitchRefused(f"cannot take ACTIVE: {mem.store_problem or (applied.reason if applied else '')}")
        return mem.state

    async def _switch_to_peer(self, peer: str, who: str) -> NodeState:
        mem = self.mem
        probe = await self.peer.probe()
        view = await self.exchange.exchange(mem.cluster)
        if not probe.ok or view is None:
            raise SwitchRefused(f"target {peer} is unreachable or unhealthy ({probe.detail})")
        if not view.can_be_active:
            raise SwitchRefused(f"target {peer} cannot be ACTIVE (its LAN check fails or it cannot persist)")
        if view.role is Role.ACTIVE and mem.state.role is Role.STANDBY:
            return mem.state
        why = f"manual switch to {peer} requested by {who}"
        if mem.state.role is Role.ACTIVE:
            d = rules.demote(mem.state, rule="R7", cause=Cause.MANUAL, why=why, handover=True)
            r = await self.roles.commit_and_apply(d)
            if r is not None and r.ok:
                return mem.state
            back = rules.promote(mem.state, rule="R7", cause=Cause.MANUAL, demote_peer=True,
                                 why=f"switch to {peer} failed ({r.detail if r else 'no answer'}); taking ACTIVE back")
            await self.roles.commit_and_apply(back)
            raise SwitchRefused(f"target {peer} did not take ACTIVE: {r.detail if r else 'no answer'}")
        r = await self.roles.command_peer(Role.ACTIVE, max(mem.state.epoch, view.epoch) + 1, Cause.MANUAL, why)
        if not r.ok:
            raise SwitchRefused(f"target {peer} did not take ACTIVE: {r.detail}")
        return mem.state

    async def shutdown(self) -> None:
        """R10: hand ACTIVE to a healthy peer and stop CTI (the coordinator has stopped its loop)."""
        mem = self.mem
        try:
            await asyncio.wait_for(mem.lock.acquire(), 1.0)
        except TimeoutError:
            log.warning("shutdown: a command holds the lock; stopping without waiting for it")
            await self.cti.converge()
            return
        try:
            s, cfg = mem.state, mem.cluster
            healthy_peer = s.probed and s.peer_failures == 0 and s.peer is not None and s.peer.can_be_active
            if cfg.enabled and s.role is Role.ACTIVE:
                d = rules.demote(s, rule="R10", cause=Cause.SHUTDOWN, handover=healthy_peer,
                                 why=f"graceful stop{f': handing ACTIVE to {s.peer_id}' if healthy_peer else ''}")
                # Capped at 1.5 s: R10 wants the peer ACTIVE within 2 s whatever T is.
                answer_s = min(max(cfg.heartbeat_timeout_s, PROMOTE_ANSWER_S), 1.5)
                await self.roles.commit_and_apply(d, promote_timeout=answer_s)
            await self.cti.converge()
        finally:
            mem.lock.release()
