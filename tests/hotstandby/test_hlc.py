"""The hybrid logical clock (SPEC section 5): monotonic stamps whatever the wall clock does.

Wall clocks are injected lists of readings; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotstandby.hlc import ZERO, HybridClock, Timestamp

# 1970 .. 9999-12-31: the range ``str()`` can print with a four-digit year.
MAX_MS = 253_402_300_799_999
wall_ms = st.integers(min_value=0, max_value=MAX_MS)
counters = st.integers(min_value=0, max_value=10**9)
stamps = st.builds(Timestamp, wall_ms, counters)


def readings(seconds: Iterable[float]) -> Callable[[], float]:
    """A wall clock that returns the given readings in turn, then keeps the last one."""
    values = list(seconds)
    state = {"i": 0}

    def wall() -> float:
        value = values[min(state["i"], len(values) - 1)]
        state["i"] += 1
        return value

    return wall


@pytest.mark.parametrize(
    "wall",
    [
        [100.0, 100.0, 100.0, 100.0],  # stands still
        [100.0, 99.0, 98.0, 50.0],  # steps back
        [100.0, 100.0005, 100.0009, 100.001],  # sub-millisecond steps
        [100.0, 200.0, 150.0, 150.0, 300.0],  # jumps both ways
        [0.0, 0.0, 0.0],  # the epoch itself
    ],
    ids=["still", "back", "sub-ms", "jumps", "epoch"],
)
def test_now_strictly_increases(wall: list[float]) -> None:
    """Every ``now()`` is above the previous one whatever the wall clock reads."""
    clock = HybridClock(readings(wall))
    issued = [clock.now() for _ in wall]
    assert all(a < b for a, b in pairwise(issued))
    assert issued[-1] == clock.last


def test_now_follows_the_wall_clock_when_it_advances() -> None:
    """A wall clock ahead of the last stamp gives its own millisecond with counter zero."""
    clock = HybridClock(readings([1.5, 2.25]))
    assert [Timestamp(1500, 0), Timestamp(2250, 0)] == [clock.now(), clock.now()]


def test_now_counts_when_the_wall_clock_stands_still() -> None:
    """The same millisecond twice bumps the counter."""
    clock = HybridClock(readings([7.0]))
    assert [Timestamp(7000, 0), Timestamp(7000, 1), Timestamp(7000, 2)] == [clock.now() for _ in range(3)]


def test_starting_stamp_is_respected() -> None:
    """A clock resumed from a stored stamp never issues one at or below it, even with a clock behind it."""
    last = Timestamp(10_000, 4)
    clock = HybridClock(readings([1.0]), last)
    assert Timestamp(10_000, 5) == clock.now()


@pytest.mark.parametrize(
    ("local_wall", "remote"),
    [
        (1.0, Timestamp(5000, 0)),  # remote ahead
        (1.0, Timestamp(5000, 7)),  # remote ahead with a counter
        (9.0, Timestamp(5000, 7)),  # remote behind
        (5.0, Timestamp(5000, 7)),  # same millisecond
        (0.0, ZERO),
    ],
)
def test_receive_moves_past_the_remote_stamp(local_wall: float, remote: Timestamp) -> None:
    """After ``receive(t)`` the clock's stamp and every later ``now()`` are above ``t``."""
    clock = HybridClock(readings([local_wall]))
    got = clock.receive(remote)
    assert got > remote
    assert clock.now() > got > remote


@pytest.mark.parametrize(
    ("stamp", "text"),
    [
        (Timestamp(0, 0), "1970-01-01T00:00:00.000Z#0"),
        (Timestamp(1_795_618_107_734, 3), "2026-11-25T14:48:27.734Z#3"),
        (Timestamp(1_795_618_107_001, 12), "2026-11-25T14:48:27.001Z#12"),
    ],
)
def test_text_form(stamp: Timestamp, text: str) -> None:
    """``str()`` is ISO-8601 UTC milliseconds then ``#counter``, and ``parse`` reads it back."""
    assert text == str(stamp)
    assert stamp == Timestamp.parse(text)


@pytest.mark.parametrize(
    "text",
    ["", "garbage", "2026-11-25T14:48:27.734Z", "2026-11-25T14:48:27Z#1", "2026-11-25 14:48:27.734Z#1",
     "2026-11-25T14:48:27.734Z#-1", "2026-13-25T14:48:27.734Z#1"],
)
def test_parse_refuses_malformed_text(text: str) -> None:
    """Text that is not a stamp raises ValueError."""
    with pytest.raises(ValueError):
        Timestamp.parse(text)


@given(stamps)
def test_text_round_trip(stamp: Timestamp) -> None:
    """``Timestamp.parse(str(t)) == t`` for every representable stamp."""
    assert stamp == Timestamp.parse(str(stamp))


@given(stamps, stamps)
def test_order_is_the_tuple_order_and_survives_text(a: Timestamp, b: Timestamp) -> None:
    """Stamps order by (wall_ms, counter), and parsing their text keeps that order."""
    assert (a < b) == ((a.wall_ms, a.counter) < (b.wall_ms, b.counter))
    assert (Timestamp.parse(str(a)) < Timestamp.parse(str(b))) == (a < b)


def test_text_is_not_ordered_lexicographically_by_counter() -> None:
    """The counter is not zero-padded: compare parsed stamps, never their text."""
    nine, ten = Timestamp(1000, 9), Timestamp(1000, 10)
    assert nine < ten
    assert str(nine) > str(ten)


wall_sequences = st.lists(st.floats(min_value=0, max_value=4e9, allow_nan=False), min_size=1, max_size=50)


@given(wall_sequences)
def test_now_is_monotonic_for_any_wall_clock(walls: list[float]) -> None:
    """Any sequence of wall-clock readings yields strictly increasing stamps."""
    clock = HybridClock(readings(walls))
    issued = [clock.now() for _ in walls]
    assert issued == sorted(set(issued))


# One step of a two-clock run: a local event on clock 0 or 1, or a message sent from one to the other.
steps = st.lists(
    st.tuples(st.sampled_from(["now", "send"]), st.integers(0, 1), st.floats(0, 4e9, allow_nan=False)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200)
@given(steps, st.data())
def test_two_clocks_keep_causality(run: list[tuple[str, int, float]], data: st.DataObject) -> None:
    """Across any interleaving of events and messages between two skewed clocks, a receive is above
    the stamp it received, and each clock's stamps strictly increase."""
    walls = [0.0, 0.0]
    clocks = [HybridClock(lambda: walls[0]), HybridClock(lambda: walls[1])]
    in_flight: list[tuple[int, Timestamp]] = []
    history: list[list[Timestamp]] = [[], []]
    for kind, who, wall in run:
        walls[who] = wall
        stamp = clocks[who].now()
        history[who].append(stamp)
        if kind == "send":
            in_flight.append((1 - who, stamp))
        if in_flight and data.draw(st.booleans()):
            dest, sent = in_flight.pop(data.draw(st.integers(0, len(in_flight) - 1)))
            got = clocks[dest].receive(sent)
            assert got > sent
            history[dest].append(got)
            later = clocks[dest].now()
            assert later > sent
            history[dest].append(later)
    for issued in history:
        assert all(a < b for a, b in pairwise(issued))
