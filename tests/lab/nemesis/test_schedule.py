"""The seeded schedule: a function of its seed, storms of overlapping faults, quiet periods, executable rules."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.nemesis.faults import NODES, POINT_KINDS, Fault, Kind
from lab.nemesis.schedule import LEAD_S, QUIET_S, TAIL_S, make_schedule


def test_a_seed_gives_the_same_schedule_every_time() -> None:
    """Replaying a seed replays its faults: same kinds, targets, times and durations."""
    assert make_schedule(7, 150, witness=True) == make_schedule(7, 150, witness=True)
    assert make_schedule(7, 150, witness=True) != make_schedule(8, 150, witness=True)


def test_the_schedule_round_trips_through_json() -> None:
    """Every fault survives as_dict/from_dict (the history file holds the schedule)."""
    s = make_schedule(3, 150, witness=True)
    assert [Fault.from_dict(f.as_dict()) for f in s.faults] == list(s.faults)


@settings(max_examples=60)
@given(seed=st.integers(0, 10**6), seconds=st.floats(60, 600), witness=st.booleans())
def test_schedules_keep_their_rules(seed: int, seconds: float, witness: bool) -> None:
    """Faults start after the lead-in and heal before the tail; storms are apart by a quiet period; one process
    fault, one clock step, one full disk per node and one maintenance window at a time; etcd only with a witness."""
    s = make_schedule(seed, seconds, witness=witness)
    for f in s.faults:
        assert f.at >= LEAD_S and (f.kind is Kind.CONFIG or f.end <= seconds - TAIL_S + 0.01)
        assert (f.duration == 0) == (f.kind in POINT_KINDS)
        assert witness or all("etcd" not in e for e in f.edges)
        assert f.loss <= 0.4 and abs(f.offset) <= 600
    for (_, healed), (nxt, _) in zip(s.storms, s.storms[1:], strict=False):
        assert nxt - healed >= QUIET_S[0] - 0.01
    for f in s.faults:
        for g in s.faults:
            if f.id < g.id and f.at < g.end and g.at < f.end:
                same = {f.kind, g.kind} <= {Kind.KILL, Kind.FREEZE, Kind.TERM} and f.node == g.node
                same = same or (f.kind == g.kind and f.kind in (Kind.CLOCK, Kind.DISK) and f.node == g.node)
                same = same or f.kind == g.kind == Kind.MAINTENANCE
                assert not same, (f, g)


def test_faults_overlap_and_every_kind_appears() -> None:
    """Over a long schedule every kind of fault is drawn, and most storms have faults acting at once."""
    s = make_schedule(11, 1200, witness=True)
    kinds = Counter(f.kind for f in s.faults)
    assert set(kinds) == set(Kind)
    spans = [f for f in s.faults if f.duration]
    overlapping = sum(1 for f in spans if any(g is not f and g.at < f.end and f.at < g.end for g in spans))
    assert overlapping > len(spans) / 2
    assert {f.node for f in s.faults if f.kind is Kind.KILL} == set(NODES)
