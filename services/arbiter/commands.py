"""The commands that change roles outside the tick: a role command from the peer, the operator's manual
switch (R7) and the graceful stop (R10). Each gathers what the core needs, takes the lock, asks the
core for a plan (``rules.plan_role_command``, ``plan_switch``, ``plan_stop``) and has ``Roles`` carry
it out; a refused plan is the 409's reason.
"""

from __future__ import annotations

import asyncio
import logging

from hotstandby import rules
from hotstandby.model import Cause, NodeState, Role
from services.arbiter.exchange import Exchange
from services.arbiter.memory import Memory
from services.arbiter.peer import PeerClient
from services.arbiter.roles import CtiControl, Roles
from services.arbiter.selfview import SelfView

log = logging.getLogger("hotstandby.arbiter")


class SwitchRefused(Exception):
    """A manual switch that cannot be done safely: the text is the 409's reason."""


class Commands:
    def __init__(self, mem: Memory, *, roles: Roles, exchange: Exchange, me: SelfView, peer: PeerClient,
                 cti: CtiControl) -> None:
        self.mem, self.roles, self.exchange, self.me, self.peer, self.cti = mem, roles, exchange, me, peer, cti

    async def on_role_command(self, role: Role, epoch: int, cause: Cause, reason: str) -> NodeState:
        """``POST /peer/role``: obey the peer, or raise ``rules.StaleCommand`` (409) with the reason."""
        mem = self.mem
        async with mem.lock:
            plan = rules.plan_role_command(mem.state, role, epoch, mem.cluster, cause=cause,
                                           why=f"{reason} (asked by {mem.node.peer_id})",
                                           can_be_active=self.me.can_be_active())
            out = await self.roles.carry_out(plan)
            if out.refused:
                raise rules.StaleCommand(out.reason)
            return mem.state

    async def switch(self, target: str, *, force: bool, who: str) -> NodeState:
        """R7: move ACTIVE to ``target``, or raise ``SwitchRefused`` (409) with the reason."""
        mem = self.mem
        async with mem.lock:
            mem.say(f"Manual switch to {target} requested by {who}{' (force)' if force else ''}")
            cfg = mem.cluster
            if target == mem.node.node_id:
                unfit = None if self.me.can_be_active() else (
                    mem.store_problem or "its LAN check fails or hot standby is disabled")
                # The peer's epoch as of now: a STANDBY command below it would be refused as stale.
                view = await self.exchange.exchange(cfg) if unfit is None else None
                plan = rules.plan_switch(mem.state, target, cfg, force=force, who=who, unfit=unfit, view=view)
            else:  # the freshest word on the target: probe it and exchange with it now
                probe = await self.peer.probe()
                view = await self.exchange.exchange(cfg)
                plan = rules.plan_switch(mem.state, target, cfg, force=force, who=who, view=view,
                                         probe=None if probe.ok else probe.detail)
            out = await self.roles.carry_out(plan)
            if out.refused:
                raise SwitchRefused(out.reason)
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
            await self.roles.carry_out(rules.plan_stop(mem.state, mem.cluster))
            await self.cti.converge()
        finally:
            mem.lock.release()
