"""Per-setting last-writer-wins merge by ``(updated_at, origin)``: pure, so both nodes agree."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hotstandby.hlc import Timestamp


@dataclass(frozen=True)
class Stamped:
    """One setting's value with the hybrid clock time and node that last changed it."""

    value: Any
    updated_at: Timestamp
    origin: str

    @property
    def version(self) -> tuple[Timestamp, str]:
        return (self.updated_at, self.origin)

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "updated_at": str(self.updated_at), "origin": self.origin}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stamped:
        return cls(data["value"], Timestamp.parse(str(data["updated_at"])), str(data["origin"]))


Table = Mapping[str, Stamped]


def merge(local: Table, remote: Table) -> dict[str, Stamped]:
    """The settings of ``remote`` that are newer than ours (and only those)."""
    return {
        name: theirs
        for name, theirs in remote.items()
        if name not in local or theirs.version > local[name].version
    }


def digest(table: Table) -> str:
    """Equal on both nodes exactly when they hold the same versions of the same settings."""
    canon = sorted((name, s.value, str(s.updated_at), s.origin) for name, s in table.items())
    return hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()[:16]


def newest(table: Table) -> Timestamp | None:
    stamps: Iterable[Timestamp] = (s.updated_at for s in table.values())
    return max(stamps, default=None)
