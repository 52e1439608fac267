"""What the arbiter records of its life: each role change in the history (GET /history), and every event of
the node in the hook's outbox (SPEC 13: role changes, peer and witness lost and found, maintenance on and off).

A role change's history line and hook event are written in the same transaction as the role itself
(``Store.save_role``), so none exists without the others, even after a crash. Other events are one
insert each (``Hooks.emit``). Nothing here waits for a hook.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from hotstandby.model import Decision, NodeState, Role
from hotstandby.store import HistoryEntry, Store, StoreError
from services.hooks import Event, Hooks

_REQUESTED = re.compile(r"requested by (.+?)(?:, forced| \(asked by|;|$)")
_ASKED = re.compile(r"\(asked by (server[12])\)")


def asked_by(reason: str) -> str | None:
    """Who asked for a role change, from its sentence: the operator of a manual switch (``requested by CLI
    from 10.0.0.5``), else the peer that commanded it (``(asked by server1)``); None when the node decided."""
    m = _REQUESTED.search(reason)
    if m:
        return m.group(1).strip()
    m = _ASKED.search(reason)
    return m.group(1) if m else None


def _at(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _peer_role(s: NodeState) -> str:
    return s.peer.role.value if s.peer else ""


class Journal:
    def __init__(self, node_id: str, store: Store, hooks: Hooks | None = None) -> None:
        self.node_id, self.store, self.hooks = node_id, store, hooks
        self.peer_lost = False

    # -- role changes: one transaction with the role ----------------------------------------------
    def role_change(self, old: NodeState, d: Decision, wall: float) -> dict[str, Any]:
        """``Store.save_role``'s history line and hook event for ``old`` -> ``d.state`` (none when the role did
        not change: an epoch or cause alone is not a role change)."""
        new = d.state
        if new.role is old.role:
            return {}
        entry = HistoryEntry(at=_at(wall), node_id=self.node_id, from_role=old.role.value, to_role=new.role.value,
                             rule=d.rule, cause=new.cause.value, epoch=new.epoch, asked_by=asked_by(d.reason),
                             reason=d.reason)
        out: dict[str, Any] = {"change": entry}
        if self.hooks is not None and self.hooks.enabled:
            ev = Event("role_change", new.role.value, old.role.value, new.epoch, rule=d.rule or "",
                       cause=new.cause.value, reason=d.reason, peer_role=_peer_role(new))
            out["events"] = (self.hooks.record(ev),)
        return out

    def committed(self) -> None:
        """After a role change's transaction: the runner may deliver its event."""
        if self.hooks is not None:
            self.hooks.wake()

    def restarted(self, stored_role: str, state: NodeState, wall: float) -> None:
        """A node that stopped while ACTIVE comes back STANDBY (SPEC 4): that is a role change too."""
        if stored_role != Role.ACTIVE.value:
            return
        d = Decision(state, f"restarted: {self.node_id} comes back STANDBY whatever it stored, and re-decides "
                            "from what it observes", rule="R6")
        old = state.evolve(role=Role.ACTIVE)
        try:
            self.store.save_role(node_id=self.node_id, role=state.role, epoch=state.epoch, cause=state.cause,
                                 **self.role_change(old, d, wall))
        except StoreError:
            return  # the node refuses to start on an unwritable database anyway (it says why)
        self.committed()

    # -- other events -------------------------------------------------------------------------------
    def event(self, name: str, state: NodeState, reason: str) -> None:
        if self.hooks is not None:
            self.hooks.emit(Event(name, state.role.value, state.role.value, state.epoch, reason=reason,
                                  peer_role=_peer_role(state)))

    def after_tick(self, state: NodeState, n: int) -> None:
        """peer_lost when the peer's failures reach N (its status turns Error), peer_found when it answers again."""
        if not self.peer_lost and state.peer_failures >= n:
            self.peer_lost = True
            self.event("peer_lost", state, f"{state.peer_id} failed {state.peer_failures} consecutive probes")
        elif self.peer_lost and state.peer_failures == 0 and state.probed:
            self.peer_lost = False
            self.event("peer_found", state, f"{state.peer_id} answers again")
