"""Hybrid logical clock: wall-clock milliseconds plus a counter (Kulkarni et al., 2014).

Timestamps issued by one clock strictly increase even when the wall clock steps back, and after
``receive(t)`` the clock never issues anything at or below ``t``: so "newest change wins" means
the change made last in causal order, whatever the two servers' clocks say.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_TEXT = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z#(\d+)$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, order=True)
class Timestamp:
    wall_ms: int
    counter: int = 0

    def __str__(self) -> str:
        # integer arithmetic: float seconds lose the millisecond past the year 2242
        wall = (_EPOCH + self.wall_ms * _MS).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        return f"{wall}Z#{self.counter}"

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        """The inverse of ``str()``: ``2026-11-25T14:48:27.734Z#3``."""
        match = _TEXT.match(text.strip())
        if not match:
            raise ValueError(f"not a hybrid logical clock timestamp: {text!r}")
        wall = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
        return cls((wall - _EPOCH) // _MS, int(match.group(2)))


ZERO = Timestamp(0, 0)  # the stamp of bootstrap values: any real change beats it


class HybridClock:
    """Thread-safe HLC over an injected wall clock (seconds, like ``time.time``)."""

    def __init__(self, wall: Callable[[], float], last: Timestamp = ZERO) -> None:
        self._wall = wall
        self._last = last
        self._lock = threading.Lock()

    @property
    def last(self) -> Timestamp:
        return self._last

    def now(self) -> Timestamp:
        """A timestamp for a local event or a message being sent."""
        with self._lock:
            pt = int(self._wall() * 1000)
            last = self._last
            self._last = Timestamp(pt, 0) if pt > last.wall_ms else Timestamp(last.wall_ms, last.counter + 1)
            return self._last

    def receive(self, remote: Timestamp) -> Timestamp:
        """Advance past a timestamp carried by a message received."""
        with self._lock:
            pt = int(self._wall() * 1000)
            last = self._last
            wall = max(pt, last.wall_ms, remote.wall_ms)
            if wall == last.wall_ms == remote.wall_ms:
                counter = max(last.counter, remote.counter) + 1
            elif wall == last.wall_ms:
                counter = last.counter + 1
            elif wall == remote.wall_ms:
                counter = remote.counter + 1
            else:
                counter = 0
            self._last = Timestamp(wall, counter)
            return self._last
