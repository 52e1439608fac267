"""The cluster settings as this node holds them: stamped, durable, merged with the peer's.

Bootstrap values (from the environment, on a first start) carry the zero timestamp, so any change
made through the API on either node wins over them, and a node that joins later never overwrites
its peer's settings with its own environment (R6).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from hotstandby.hlc import ZERO, HybridClock, Timestamp
from hotstandby.replication import Stamped, digest, merge
from hotstandby.settings import CLUSTER_FIELDS, ClusterSettings, SettingsError, validate_cluster
from hotstandby.store import Store

log = logging.getLogger("hotstandby.config")


class ConfigBook:
    def __init__(self, store: Store, clock: HybridClock, node_id: str, bootstrap: ClusterSettings, *,
                 writer: bool = True) -> None:
        """``writer`` is False for a monitor running apart: it reads what its arbiter stores and never
        writes settings (the arbiter is the only writer of the database's settings)."""
        self._store = store
        self._clock = clock
        self._node_id = node_id
        self._bootstrap = bootstrap
        table = store.load_settings()
        missing = {f: Stamped(getattr(bootstrap, f), ZERO, node_id) for f in CLUSTER_FIELDS if f not in table}
        if missing and writer:
            store.save_settings(missing)
        table.update(missing)
        self._table: dict[str, Stamped] = {k: v for k, v in table.items() if k in CLUSTER_FIELDS}
        self._digest: str | None = None  # digest(self._table), kept until the table changes (read every exchange)
        newest = max((s.updated_at for s in self._table.values()), default=ZERO)
        clock.receive(newest)  # never issue a stamp below one already stored
        self.repaired: str | None = None
        self._effective = self._build(bootstrap)

    def reload(self) -> None:
        """Re-read the stored settings (the monitor apart follows its arbiter's changes)."""
        stored = self._store.load_settings()
        if any(stored.get(n) != self._table.get(n) for n in stored if n in CLUSTER_FIELDS):
            self._update({n: st for n, st in stored.items() if n in CLUSTER_FIELDS})
            self._effective = self._build(self._effective)

    @property
    def current(self) -> ClusterSettings:
        return self._effective

    @property
    def table(self) -> Mapping[str, Stamped]:
        return self._table

    def digest(self) -> str:
        if self._digest is None:
            self._digest = digest(self._table)
        return self._digest

    def _update(self, changes: Mapping[str, Stamped]) -> None:
        self._table.update(changes)
        self._digest = None

    def as_json(self) -> dict[str, Any]:
        return {"settings": {n: self._table[n].to_json() for n in CLUSTER_FIELDS}, "digest": self.digest()}

    def put(self, patch: Mapping[str, Any], *, origin: str) -> list[str]:
        """Validate the whole result first: a bad field refuses the request and changes nothing."""
        candidate = {n: s.value for n, s in self._table.items()} | dict(patch)
        unknown = [k for k in patch if k not in CLUSTER_FIELDS]
        if unknown:
            raise SettingsError([(k, "unknown setting") for k in unknown])
        valid = validate_cluster(candidate)
        stamp = self._clock.now()
        changes = {
            name: Stamped(getattr(valid, name), stamp, origin)
            for name in patch
            if getattr(valid, name) != self._table[name].value
        }
        if changes:
            self._store.save_settings(changes)  # durable before anyone is told
            self._update(changes)
            self._effective = self._build(self._effective)
        return sorted(changes)

    def merge_remote(self, remote: Mapping[str, Any]) -> list[str]:
        """Take the peer's settings that are newer than ours; returns the names whose value changed
        (a newer stamp on the same value is stored silently)."""
        parsed: dict[str, Stamped] = {}
        for name, raw in remote.items():
            if name in CLUSTER_FIELDS:
                parsed[name] = Stamped.from_json(raw)
        newer = merge(self._table, parsed)
        if not newer:
            return []
        for st in newer.values():
            self._clock.receive(st.updated_at)
        self._store.save_settings(newer)
        changed = sorted(n for n, st in newer.items() if st.value != self._table[n].value)
        self._update(newer)
        self._effective = self._build(self._effective)
        return changed

    def newest(self) -> Timestamp:
        return max(s.updated_at for s in self._table.values())

    def _build(self, fallback: ClusterSettings) -> ClusterSettings:
        """The settings to run on. Two concurrent valid changes can combine into an invalid pair
        (T raised on one node, I lowered on the other): both nodes then run on the same
        deterministic repair (T clipped to I) rather than on different values."""
        values = {n: s.value for n, s in self._table.items()}
        try:
            self.repaired = None
            return validate_cluster(values)
        except SettingsError as first:
            values["heartbeat_timeout_s"] = min(values["heartbeat_timeout_s"], values["heartbeat_interval_s"])
            try:
                self.repaired = f"{first}; running with heartbeat_timeout_s clipped to heartbeat_interval_s"
                return validate_cluster(values)
            except SettingsError as second:
                self.repaired = f"{second}; keeping the previous settings"
                log.error("merged settings invalid: %s", second)
                return fallback
