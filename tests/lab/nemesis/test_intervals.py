"""Interval algebra against a brute-force oracle on a grid of points."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lab.nemesis.intervals import Intervals

span = st.tuples(st.integers(0, 40), st.integers(0, 10)).map(lambda p: (float(p[0]), float(p[0] + p[1])))
spans = st.lists(span, max_size=6)
GRID = [x / 2 for x in range(0, 110)]


def inside(spans: list[tuple[float, float]], x: float) -> bool:
    return any(a <= x <= b for a, b in spans)


@given(spans, spans)
def test_union_and_intersection_hold_exactly_the_points_of_either_and_both(a: list, b: list) -> None:
    """Every grid point is in the union iff in either, in the intersection iff in both."""
    u, i = Intervals.of(a) | Intervals.of(b), Intervals.of(a) & Intervals.of(b)
    assert [u.contains(x) for x in GRID] == [inside(a, x) or inside(b, x) for x in GRID]
    assert [i.contains(x) for x in GRID] == [inside(a, x) and inside(b, x) for x in GRID]


@given(spans, spans)
def test_minus_keeps_what_lies_strictly_outside(a: list, b: list) -> None:
    """A point off the grid of boundaries is in a - b iff in a and not in b; the total never grows."""
    d = Intervals.of(a).minus(Intervals.of(b))
    for x in (g + 0.25 for g in GRID):
        assert d.contains(x) == (inside(a, x) and not inside(b, x))
    assert d.total <= Intervals.of(a).total + 1e-9


def test_covers_touches_grow_longest() -> None:
    """The small questions the checker asks."""
    iv = Intervals.of([(1, 3), (2, 5), (10, 11)])
    assert iv.spans == ((1, 5), (10, 11))
    assert (iv.covers(2, 4), iv.covers(4, 10), iv.touches(5, 6), iv.touches(6, 9)) == (True, False, True, False)
    assert (iv.grow(after=5).spans, iv.longest(), iv.total) == (((1, 16),), 4, 5)
