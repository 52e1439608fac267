"""The maintenance flag (R11): a replicated flag, the newest stamp wins.

Its stamp is ``(at, origin)``: the hybrid clock's time of the change and the node that made it. An
operator sets it here (``POST /maintenance``); the peer's flag comes with every exchange, ask or answer,
and is taken when its stamp is newer. Either way it is durable before it is held, and the core reads it
from ``NodeState.maintenance`` on the next tick (automatic switching paused). Telling the peer at once
is the exchange's (``Exchange.set_maintenance``).
"""

from __future__ import annotations

from typing import Any

from hotstandby.hlc import HybridClock, Timestamp
from hotstandby.store import Store
from services.arbiter.memory import Memory
from services.arbiter.status import update_gauges


class Maintenance:
    def __init__(self, mem: Memory, *, store: Store, hlc: HybridClock, version: tuple[Timestamp, str]) -> None:
        self.mem, self.store, self.hlc = mem, store, hlc
        self.version = version  # the flag's stamp (at, origin): the newest wins

    def merge_json(self, remote: dict[str, Any]) -> bool:
        """The peer's flag as protocol 1 carries it: ``{"value", "at", "origin"}``."""
        return self.merge(bool(remote["value"]), Timestamp.parse(remote["at"]), str(remote["origin"]))

    def merge(self, value: bool, at: Timestamp, origin: str) -> bool:
        """Take the peer's flag if its stamp is newer than ours; True when taken."""
        version = (at, origin)
        if version <= self.version:
            return False
        self.hlc.receive(at)
        self.set(value, version, f"replicated from {origin}")
        return True

    def set_here(self, enabled: bool, who: str) -> None:
        """An operator's change on this node: stamped now, by us."""
        self.set(enabled, (self.hlc.now(), self.mem.node.node_id), who)

    def set(self, enabled: bool, version: tuple[Timestamp, str], source: str) -> None:
        mem = self.mem
        self.store.save_maintenance(node_id=mem.node.node_id, enabled=enabled, at=version[0], origin=version[1])
        self.version = version
        changed = enabled != mem.state.maintenance
        mem.state = mem.state.evolve(maintenance=enabled)  # the flag only: roles change through Roles alone
        if changed:
            line = f"Maintenance {'ON: automatic switching paused' if enabled else 'OFF'} ({source})"
            mem.say(line)
            mem.journal.event("maintenance_on" if enabled else "maintenance_off", mem.state, line)
        update_gauges(mem)
