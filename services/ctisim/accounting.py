"""Exact, event-driven accounting of who holds a CTI registration and when two nodes overlap.

This is the ground truth for "only one node runs CTI", so it must not sample: between two events
(register, keepalive, unregister, or a read) every live registration has a fixed end time (its
last keepalive + the lapse, or the moment it was unregistered). Advancing from the last accounting
time to *now* is therefore a sweep over those end points, and the overlap measure it produces is
exact whatever the request rate. No I/O and no hidden clock: the caller passes the times, so the
tests drive it with a fake clock and hypothesis.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_LAPSE_S = 0.5
JOURNAL_SIZE = 100_000  # registrations, unregistrations and lapses kept for `GET /events`


@dataclass
class Registration:
    """One node's live CTI registration (times on the accounting clock, except `since_wall`)."""

    node_id: str
    epoch: int
    ports: int
    devices: int
    start: float
    since_wall: float
    last_keepalive: float
    # The end is always known in advance: last keepalive + lapse until a keepalive moves it.
    end: float


@dataclass
class Counters:
    """Everything `POST /reset` zeroes."""

    registrations_total: int = 0
    keepalives_total: int = 0
    unregistrations_total: int = 0
    lapses_total: int = 0
    overlaps_total: int = 0
    overlap_seconds_total: float = 0.0
    # Longest single stretch of >= 2 holders: after a crash it must stay within the lapse.
    overlap_longest_seconds: float = 0.0
    stale_epoch_total: int = 0


@dataclass
class RegisterResult:
    """What a registration changed, for the HTTP answer."""

    stale: bool
    replaced: bool
    holders: int


@dataclass
class OverlapAccounting:
    """Live registrations keyed by node, with exact overlap accounting.

    `clock` is monotonic seconds (for the accounting), `wall` unix seconds (only for reporting
    `since`). Every public method first advances the accounting to `clock()`.
    """

    clock: Callable[[], float]
    wall: Callable[[], float]
    lapse_s: float = DEFAULT_LAPSE_S
    counters: Counters = field(default_factory=Counters)
    max_epoch: int | None = None
    _holders: dict[str, Registration] = field(default_factory=dict)
    _accounted_to: float | None = None
    # Length of the overlap stretch in progress (0 when fewer than two nodes hold).
    _episode: float = 0.0
    # Every registration, unregistration and lapse, numbered from 1, with its wall time: a recorder
    # outside the pair rebuilds who held CTI when (and at which epoch) without sampling. `reset` keeps it.
    journal: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=JOURNAL_SIZE))
    _seq: int = 0

    # -- events ---------------------------------------------------------------------------------

    def register(self, node_id: str, epoch: int, ports: int = 0, devices: int = 0) -> RegisterResult:
        """Record a registration; one from a node that already holds one replaces it."""
        now = self.advance()
        stale = self.max_epoch is not None and epoch < self.max_epoch
        if stale:
            self.counters.stale_epoch_total += 1
        self._note("register", node_id, epoch, self.wall(), stale=stale)
        self.max_epoch = epoch if self.max_epoch is None else max(self.max_epoch, epoch)
        before = len(self._holders)
        replaced = node_id in self._holders
        self._holders[node_id] = Registration(
            node_id=node_id,
            epoch=epoch,
            ports=ports,
            devices=devices,
            start=now,
            since_wall=self.wall(),
            last_keepalive=now,
            end=now + self.lapse_s,
        )
        self.counters.registrations_total += 1
        # Overlap starts only here: keepalives never add a holder and the sweep only removes.
        if before < 2 <= len(self._holders):
            self.counters.overlaps_total += 1
        return RegisterResult(stale=stale, replaced=replaced, holders=len(self._holders))

    def keepalive(self, node_id: str, epoch: int | None = None) -> bool:
        """Extend a live registration; False (the caller answers 404) when unknown or lapsed.

        A keepalive carrying another epoch than the registration is refused too: it comes from a
        different CTI process than the one that registered, which must register for itself.
        """
        now = self.advance()
        reg = self._holders.get(node_id)
        if reg is None or (epoch is not None and epoch != reg.epoch):
            return False
        reg.last_keepalive = now
        reg.end = now + self.lapse_s
        self.counters.keepalives_total += 1
        return True

    def unregister(self, node_id: str, epoch: int | None = None) -> bool:
        """End a registration now; an unregister naming an older epoch leaves a newer one alone."""
        self.advance()
        reg = self._holders.get(node_id)
        if reg is None or (epoch is not None and epoch != reg.epoch):
            return False
        del self._holders[node_id]
        self.counters.unregistrations_total += 1
        self._note("unregister", node_id, reg.epoch, self.wall())
        self._close_episode_if_below_two()
        return True

    def reset(self, *, drop_holders: bool = False) -> None:
        """Zero the counters (and optionally forget the holders), as if the manager had just started.

        `max_epoch` restarts from the epochs still held, so a test's "lower epoch" is judged only
        against what it registered itself.
        """
        self.advance()
        if drop_holders:
            self._holders.clear()
        self.counters = Counters()
        self._episode = 0.0
        epochs = [r.epoch for r in self._holders.values()]
        self.max_epoch = max(epochs) if epochs else None

    def _note(self, kind: str, node_id: str, epoch: int, wall: float, *, stale: bool = False) -> None:
        self._seq += 1
        self.journal.append({"seq": self._seq, "kind": kind, "node_id": node_id, "epoch": epoch, "wall": wall,
                             "stale": stale})

    # -- reading --------------------------------------------------------------------------------

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        """Journal entries numbered above ``after``, oldest first (lapses up to now included)."""
        self.advance()
        return [e for e in self.journal if e["seq"] > after]

    def holders(self) -> list[Registration]:
        """Live registrations, oldest first."""
        self.advance()
        return sorted(self._holders.values(), key=lambda r: (r.start, r.node_id))

    @property
    def overlap_longest_seconds(self) -> float:
        """Longest overlap stretch so far, including the one in progress."""
        return max(self.counters.overlap_longest_seconds, self._episode)

    @property
    def overlapping(self) -> bool:
        return len(self._holders) >= 2

    # -- the sweep ------------------------------------------------------------------------------

    def advance(self) -> float:
        """Account for the time from the last event to now, drop lapsed registrations, return now.

        Between events the set of holders can only shrink (each one ends at its fixed `end`), so
        sweeping the end points in order gives the exact time with >= 2 holders.
        """
        now = self.clock()
        prev = self._accounted_to
        if prev is None or now <= prev:
            # First call, or a clock that did not move (or stepped back): nothing to account.
            self._accounted_to = now if prev is None else prev
            return self._accounted_to
        live = len(self._holders)
        cursor = prev
        for reg in sorted(self._holders.values(), key=lambda r: r.end):
            stop = min(reg.end, now)
            if stop > cursor:
                if live >= 2:
                    self._add_overlap(stop - cursor)
                cursor = stop
            if reg.end <= now:
                # The holder lapsed at reg.end, which is inside (prev, now].
                del self._holders[reg.node_id]
                self.counters.lapses_total += 1
                self._note("lapse", reg.node_id, reg.epoch, self.wall() - (now - reg.end))
                live -= 1
                if live < 2:
                    self._close_episode_if_below_two(live)
        if now > cursor and live >= 2:
            self._add_overlap(now - cursor)
        self._accounted_to = now
        return now

    def _add_overlap(self, seconds: float) -> None:
        self.counters.overlap_seconds_total += seconds
        self._episode += seconds

    def _close_episode_if_below_two(self, live: int | None = None) -> None:
        if (len(self._holders) if live is None else live) < 2 and self._episode > 0:
            self.counters.overlap_longest_seconds = max(self.counters.overlap_longest_seconds, self._episode)
            self._episode = 0.0
