"""The overlap accounting, driven by a fake clock: exact answers, and an oracle under hypothesis."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ctisim.accounting import OverlapAccounting

from .helpers import FakeClock

LAPSE = 0.5


def make() -> tuple[OverlapAccounting, FakeClock]:
    clock = FakeClock(start=100.0)
    wall = FakeClock(start=1_700_000_000.0)
    return OverlapAccounting(clock=clock, wall=wall, lapse_s=LAPSE), clock


def keep_alive_for(acc: OverlapAccounting, clock: FakeClock, nodes: list[str], seconds: float) -> None:
    """Keepalives from each of `nodes` every 0.1 s for `seconds` from the current time."""
    end = clock.now + seconds
    while clock.now + 0.1 <= end + 1e-9:
        clock.advance(0.1)
        for node in nodes:
            assert acc.keepalive(node)


def test_registration_is_a_holder_with_its_wall_time() -> None:
    """A registration shows as a holder with its epoch and the wall time it started."""
    acc, _ = make()
    acc.register("server1", 4, ports=2, devices=3)
    [holder] = acc.holders()
    assert (
        holder.node_id,
        holder.epoch,
        holder.since_wall,
        holder.ports,
        holder.devices,
    ) == ("server1", 4, 1_700_000_000.0, 2, 3)
    assert acc.counters.registrations_total == 1


def test_registration_lapses_half_a_second_after_its_last_keepalive() -> None:
    """Live until last keepalive + 0.5 s, then gone; a keepalive after that is refused."""
    acc, clock = make()
    acc.register("server1", 1)
    clock.advance(0.25)
    assert acc.keepalive("server1")
    clock.advance(0.4999)
    assert [h.node_id for h in acc.holders()] == ["server1"]
    clock.advance(0.0001)
    assert acc.holders() == []
    assert not acc.keepalive("server1")
    assert acc.counters.lapses_total == 1


def test_keepalive_from_another_epoch_is_refused() -> None:
    """A keepalive naming another epoch comes from another process: it must register itself."""
    acc, _ = make()
    acc.register("server1", 2)
    assert not acc.keepalive("server1", 1)
    assert acc.keepalive("server1", 2)


def test_unregister_of_an_older_epoch_keeps_the_newer_registration() -> None:
    """An old process stopping late cannot remove its successor's registration."""
    acc, _ = make()
    acc.register("server1", 2)
    assert not acc.unregister("server1", 1)
    assert acc.unregister("server1", 2)
    assert acc.holders() == []


def test_reregistering_replaces_and_never_overlaps_with_itself() -> None:
    """A node registering again replaces its registration: one holder, no overlap."""
    acc, clock = make()
    acc.register("server1", 1)
    clock.advance(0.2)
    acc.register("server1", 2)
    clock.advance(0.3)
    assert (
        len(acc.holders()),
        acc.counters.registrations_total,
        acc.counters.overlaps_total,
        acc.counters.overlap_seconds_total,
    ) == (1, 2, 0, 0.0)


def test_unregistered_overlap_is_the_intersection() -> None:
    """server1 [0, 1.0) and server2 [0.3, 1.5): overlap 0.7 s, counted once."""
    acc, clock = make()
    acc.register("server1", 1)
    keep_alive_for(acc, clock, ["server1"], 0.3)
    acc.register("server2", 2)
    keep_alive_for(acc, clock, ["server1", "server2"], 0.7)
    acc.unregister("server1")
    assert pytest.approx(acc.counters.overlap_seconds_total) == 0.7
    assert acc.counters.overlaps_total == 1
    assert not acc.overlapping


def test_a_crashed_holder_overlaps_for_exactly_the_lapse() -> None:
    """The old holder dies silently as the new one registers: overlap is exactly the 0.5 s lapse."""
    acc, clock = make()
    acc.register("server1", 1)
    acc.register("server2", 2)
    keep_alive_for(acc, clock, ["server2"], 2.0)
    state = acc.counters
    assert (
        pytest.approx(state.overlap_seconds_total),
        pytest.approx(acc.overlap_longest_seconds),
        state.overlaps_total,
        state.lapses_total,
    ) == (0.5, 0.5, 1, 1)


def test_overlap_is_accounted_without_any_request_in_between() -> None:
    """Reading once, long after both lapsed, still gives the exact overlap (event-driven, not sampled)."""
    acc, clock = make()
    acc.register("server1", 1)
    clock.advance(0.2)
    acc.register("server2", 2)
    clock.advance(100.0)
    assert acc.holders() == []
    assert pytest.approx(acc.counters.overlap_seconds_total) == 0.3


def test_overlap_in_progress_counts_up_to_now() -> None:
    """A read while two nodes hold includes the overlap so far."""
    acc, clock = make()
    acc.register("server1", 1)
    acc.register("server2", 2)
    clock.advance(0.25)
    acc.holders()
    assert (pytest.approx(acc.counters.overlap_seconds_total), acc.overlapping) == (0.25, True)


def test_stale_epoch_is_a_registration_below_the_highest_seen() -> None:
    """Epoch 3 after epoch 5 is stale; an equal epoch is not."""
    acc, _ = make()
    assert not acc.register("server1", 5).stale
    assert acc.register("server2", 3).stale
    assert not acc.register("server1", 5).stale
    assert (acc.counters.stale_epoch_total, acc.max_epoch) == (1, 5)


def test_reset_zeroes_counters_and_optionally_holders() -> None:
    """Reset forgets the counters; holders go only when asked, and max_epoch follows them."""
    acc, clock = make()
    acc.register("server1", 7)
    acc.register("server2", 3)
    clock.advance(0.1)
    acc.reset()
    assert (
        acc.counters.registrations_total,
        acc.counters.overlap_seconds_total,
        acc.counters.stale_epoch_total,
        acc.max_epoch,
    ) == (0, 0.0, 0, 7)
    assert len(acc.holders()) == 2
    acc.reset(drop_holders=True)
    assert (acc.holders(), acc.max_epoch) == ([], None)


# -- properties -----------------------------------------------------------------------------------

NODES = ["server1", "server2", "server3"]

events = st.lists(
    st.one_of(
        st.tuples(st.just("wait"), st.integers(min_value=0, max_value=40).map(lambda k: k * 0.025)),
        st.tuples(st.just("register"), st.sampled_from(NODES), st.integers(0, 5)),
        st.tuples(st.just("keepalive"), st.sampled_from(NODES)),
        st.tuples(st.just("unregister"), st.sampled_from(NODES)),
    ),
    max_size=60,
)


@dataclass
class _Interval:
    node: str
    start: float
    last_keepalive: float
    closed_at: float | None = None

    def end(self) -> float:
        lapse = self.last_keepalive + LAPSE
        return lapse if self.closed_at is None else min(self.closed_at, lapse)

    def live(self, t: float) -> bool:
        return self.start <= t < self.end()


class Oracle:
    """A deliberately naive model: keep every interval, measure at the end."""

    def __init__(self) -> None:
        self.intervals: list[_Interval] = []
        self.overlaps = 0

    def current(self, node: str, t: float) -> _Interval | None:
        for iv in self.intervals:
            if iv.node == node and iv.live(t):
                return iv
        return None

    def register(self, node: str, t: float) -> None:
        before = sum(1 for n in NODES if self.current(n, t))
        old = self.current(node, t)
        if old:
            old.closed_at = t
        after = sum(1 for n in NODES if n != node and self.current(n, t)) + 1
        if before < 2 <= after:
            self.overlaps += 1
        self.intervals.append(_Interval(node, t, t))

    def keepalive(self, node: str, t: float) -> bool:
        iv = self.current(node, t)
        if iv:
            iv.last_keepalive = t
        return iv is not None

    def unregister(self, node: str, t: float) -> None:
        iv = self.current(node, t)
        if iv:
            iv.closed_at = t

    def overlap_seconds(self, until: float) -> float:
        """Measure of [.., until) where >= 2 nodes hold, by brute force over all end points."""
        points = sorted({p for iv in self.intervals for p in (iv.start, min(iv.end(), until))})
        total = 0.0
        for a, b in itertools.pairwise(points):
            mid = (a + b) / 2
            if sum(1 for iv in self.intervals if iv.start <= mid < min(iv.end(), until)) >= 2:
                total += b - a
        return total


def replay(ops: list[tuple]) -> tuple[OverlapAccounting, Oracle, float, float]:
    acc, clock = make()
    oracle = Oracle()
    t0 = clock.now
    for op in ops:
        if op[0] == "wait":
            clock.advance(op[1])
        elif op[0] == "register":
            oracle.register(op[1], clock.now)
            acc.register(op[1], op[2])
        elif op[0] == "keepalive":
            assert oracle.keepalive(op[1], clock.now) == acc.keepalive(op[1])
        else:
            oracle.unregister(op[1], clock.now)
            acc.unregister(op[1])
    acc.holders()
    return acc, oracle, t0, clock.now


@settings(max_examples=300, deadline=None)
@given(events)
def test_accounting_matches_a_brute_force_oracle(ops: list[tuple]) -> None:
    """Any sequence of events: same overlap seconds, overlap count and holders as the naive model."""
    acc, oracle, _, now = replay(ops)
    assert oracle.overlap_seconds(now) == pytest.approx(acc.counters.overlap_seconds_total, abs=1e-9)
    assert oracle.overlaps == acc.counters.overlaps_total
    assert sorted(n for n in NODES if oracle.current(n, now)) == sorted(h.node_id for h in acc.holders())


@settings(max_examples=200, deadline=None)
@given(events)
def test_overlap_never_exceeds_elapsed_time(ops: list[tuple]) -> None:
    """Overlap is a measure of time: never more than the time that passed, longest stretch within it."""
    acc, _, t0, now = replay(ops)
    assert acc.counters.overlap_seconds_total <= (now - t0) + 1e-9
    assert acc.overlap_longest_seconds <= acc.counters.overlap_seconds_total + 1e-9


@settings(max_examples=200, deadline=None)
@given(events.map(lambda ops: [op if op[0] == "wait" else (op[0], "server1", *op[2:]) for op in ops]))
def test_a_single_node_never_overlaps(ops: list[tuple]) -> None:
    """However one node registers, keeps alive and unregisters, it never overlaps with itself."""
    acc, _, _, _ = replay(ops)
    assert (acc.counters.overlaps_total, acc.counters.overlap_seconds_total) == (0, 0.0)


@given(
    a=st.integers(0, 40),
    b=st.integers(0, 40),
    c=st.integers(0, 40),
    d=st.integers(0, 40),
)
def test_two_registrations_overlap_by_their_intersection(a: int, b: int, c: int, d: int) -> None:
    """server1 holds [a, b) and server2 [c, d) (in 0.05 s steps, kept alive): overlap = |[a,b) ∩ [c,d)|."""
    a, b = sorted((a, b))
    c, d = sorted((c, d))
    acc, clock = make()
    t0 = clock.now
    plan = [
        (node, start, stop) for node, start, stop in (("server1", a, b), ("server2", c, d)) if start < stop
    ]
    # Walk time in 0.05 s steps; at each instant stops come before starts (half-open intervals).
    for k in range(0, 41):
        clock.now = t0 + k * 0.05
        for node, start, stop in plan:
            if k == stop:
                acc.unregister(node)
            elif start < k < stop:
                assert acc.keepalive(node)
        for node, start, _ in plan:
            if k == start:
                acc.register(node, 1)
    acc.holders()
    expected = max(0, min(b, d) - max(a, c)) * 0.05
    assert expected == pytest.approx(acc.counters.overlap_seconds_total, abs=1e-9)
    assert (1 if expected > 0 else 0) == acc.counters.overlaps_total


def test_journal_tells_who_held_when_and_at_which_epoch() -> None:
    """Registrations, unregistrations and lapses are journaled in order with their wall times; the lapse
    is stamped when it happened (last keepalive + 0.5 s), not when it was noticed."""
    clock, wall = FakeClock(start=100.0), FakeClock(start=1_700_000_000.0)
    acc = OverlapAccounting(clock=clock, wall=wall, lapse_s=LAPSE)
    acc.register("server1", 5)
    for c in (clock, wall):
        c.advance(0.2)
    acc.register("server2", 4)
    for c in (clock, wall):
        c.advance(2.0)
    assert acc.unregister("server1", 5) is False  # lapsed long ago
    events = acc.events()
    assert [(e["seq"], e["kind"], e["node_id"], e["epoch"], e["stale"]) for e in events] == [
        (1, "register", "server1", 5, False), (2, "register", "server2", 4, True),
        (3, "lapse", "server1", 5, False), (4, "lapse", "server2", 4, False)]
    assert [round(e["wall"] - 1_700_000_000.0, 6) for e in events] == [0.0, 0.2, 0.5, 0.7]
    assert [e["seq"] for e in acc.events(after=2)] == [3, 4]


def test_unregister_is_journaled() -> None:
    """A clean stop is an unregister entry (and no lapse follows)."""
    acc, clock = make()
    acc.register("server1", 1)
    clock.advance(0.1)
    assert acc.unregister("server1", 1)
    clock.advance(1.0)
    assert [e["kind"] for e in acc.events()] == ["register", "unregister"]
