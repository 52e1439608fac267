"""Sets of time as sorted, disjoint closed intervals: the algebra the checker judges a history with."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

Span = tuple[float, float]


@dataclass(frozen=True)
class Intervals:
    """A union of closed intervals [a, b] (a <= b), kept sorted and merged."""

    spans: tuple[Span, ...] = ()

    @staticmethod
    def of(spans: Iterable[Span]) -> Intervals:
        merged: list[list[float]] = []
        for a, b in sorted((a, b) for a, b in spans if b >= a):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return Intervals(tuple((a, b) for a, b in merged))

    def __iter__(self) -> Iterator[Span]:
        return iter(self.spans)

    def __bool__(self) -> bool:
        return bool(self.spans)

    def __or__(self, other: Intervals) -> Intervals:
        return Intervals.of((*self.spans, *other.spans))

    def __and__(self, other: Intervals) -> Intervals:
        out: list[Span] = []
        i = j = 0
        while i < len(self.spans) and j < len(other.spans):
            a = max(self.spans[i][0], other.spans[j][0])
            b = min(self.spans[i][1], other.spans[j][1])
            if a <= b:
                out.append((a, b))
            if self.spans[i][1] < other.spans[j][1]:
                i += 1
            else:
                j += 1
        return Intervals.of(out)

    def minus(self, other: Intervals) -> Intervals:
        """What of ``self`` lies outside ``other`` (the boundary points of ``other`` count as outside)."""
        out: list[Span] = []
        for a, b in self.spans:
            cursor = a
            for c, d in other.spans:
                if d < cursor or c > b:
                    continue
                if c > cursor:
                    out.append((cursor, c))
                cursor = max(cursor, d)
            if cursor < b:
                out.append((cursor, b))
        return Intervals.of(out)

    def grow(self, before: float = 0.0, after: float = 0.0) -> Intervals:
        """Each interval widened: [a - before, b + after]."""
        return Intervals.of((a - before, b + after) for a, b in self.spans)

    def touches(self, a: float, b: float) -> bool:
        """Whether any of it meets [a, b]."""
        return any(c <= b and d >= a for c, d in self.spans)

    def covers(self, a: float, b: float) -> bool:
        """Whether [a, b] lies inside one of its intervals."""
        return any(c <= a and b <= d for c, d in self.spans)

    def contains(self, t: float) -> bool:
        return self.covers(t, t)

    @property
    def total(self) -> float:
        return sum(b - a for a, b in self.spans)

    def longest(self) -> float:
        return max((b - a for a, b in self.spans), default=0.0)
