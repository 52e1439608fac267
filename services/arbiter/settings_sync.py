"""The cluster settings' replication with the peer (SPEC 5): pulled when the digests differ.

Every exchange, ask or answer, carries the sender's settings digest (``peer_digest``, what status calls
``config_replicated`` when it equals ours). A digest that differs from ours makes this node pull the
peer's settings (``GET /peer/config``), which ``ConfigBook`` merges field by field, the newest stamp
winning. A change made here (``PUT /config``) is stored first, then pushed by the exchange at once
(``Exchange.put_config``): the peer sees our new digest and pulls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from hotstandby.store import StoreError
from services.arbiter.memory import Memory
from services.arbiter.peer import PeerClient
from services.arbiter.status import update_gauges

log = logging.getLogger("hotstandby.arbiter")


class SettingsSync:
    def __init__(self, mem: Memory, *, peer: PeerClient, wake: Callable[[], None]) -> None:
        self.mem, self.peer = mem, peer
        self.wake = wake  # a new interval applies from the next tick, not after the old one ends
        self.peer_digest: str | None = None  # the peer's settings digest, as it last said or we last pulled
        self._pulling: asyncio.Task[list[str]] | None = None  # a pull started while answering an ask

    def heard(self, digest: str) -> bool:
        """The peer's digest, as an exchange carried it; True when it is not ours (a pull is due)."""
        self.peer_digest = digest
        return digest != self.mem.config.digest()

    async def pull(self) -> list[str]:
        """The peer's settings, merged into ours; the names whose value changed."""
        mem = self.mem
        r = await self.peer.config(mem.config.digest(), mem.cluster.heartbeat_timeout_s)
        if not r.ok or not isinstance(r.body, dict):
            return []
        try:
            changed = mem.config.merge_remote(r.body.get("settings", {}))
        except (StoreError, KeyError, TypeError, ValueError) as exc:
            log.warning("config pull failed: %s", exc)
            return []
        self.peer_digest = r.body.get("digest")
        if changed:
            self._changed(changed, f"replicated from {mem.node.peer_id}")
        return changed

    def pull_soon(self) -> None:
        """The peer's settings differ: pull them, but never before answering its ask. The asker waits at most
        T for the answer, and a pull is a second round trip: on a slow link (0.8·T each way) waiting for it
        would turn every settings change into failed exchanges, and with the exchange deciding R2, a switch."""
        if self._pulling is None or self._pulling.done():
            self._pulling = asyncio.get_running_loop().create_task(self.pull())

    def put(self, patch: dict[str, Any], who: str) -> list[str]:
        """An operator's change on this node, durable (or SettingsError, StoreError); the names changed."""
        mem = self.mem
        changed = mem.config.put(patch, origin=mem.node.node_id)
        if changed:
            self._changed(changed, who)
        return changed

    def _changed(self, names: list[str], source: str) -> None:
        mem = self.mem
        values = ", ".join(f"{n}={mem.config.table[n].value!r}" for n in names)
        mem.say(f"Configuration changed: {values} ({source})")
        if mem.config.repaired:
            mem.say(f"Configuration conflict: {mem.config.repaired}")
        mem.metrics.config_changes.labels(mem.node.node_id, "local" if "API" in source else "peer").inc()
        update_gauges(mem)
        self.wake()
