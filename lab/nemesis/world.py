"""What held when, derived from a history: faults as windows of time, and the nodes' observed roles. Pure.

Two windows per applied fault: ``loose`` from the moment its start began to the moment its heal was
done (the fault may have acted anywhere in it: what a permission must cover) and ``strict`` from
its start done to its heal begun (it certainly held: what a bound's precondition needs). A fault
never healed lasts to the end of the history.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

from lab.nemesis.faults import NODES, Kind
from lab.nemesis.history import Applied, History, Sample
from lab.nemesis.intervals import Intervals

GAP_S = 1.0  # two polls further apart than this do not vouch for the time between them
FRESH_S = 1.0  # a role read longer ago than this is not "the role at" a moment


def pair_edge(edges: Iterable[tuple[str, str]]) -> bool:
    """Whether a partition drops traffic between the two nodes (either direction breaks every TCP call)."""
    return any({a, b} == set(NODES) for a, b in edges)


def touches_link(a: Applied, x: str, y: str) -> bool:
    return a.fault.kind in (Kind.PARTITION, Kind.ONEWAY, Kind.LOSS) and any({s, d} == {x, y} for s, d in a.fault.edges)


@dataclass
class World:
    h: History
    _times: dict[str, list[float]] = field(default_factory=dict)

    # -- faults as windows ------------------------------------------------------------------------
    @cached_property
    def applied(self) -> list[Applied]:
        return [a for a in self.h.applied if a.start is not None]

    def loose(self, a: Applied) -> tuple[float, float]:
        assert a.start is not None
        end = a.heal[1] if a.heal else (a.answered if a.answered is not None else self.h.end)
        if a.fault.duration == 0 and a.answered is None:
            end = a.start[1]
        return a.start[0], max(end, a.start[1])

    def strict(self, a: Applied) -> tuple[float, float]:
        assert a.start is not None
        end = a.heal[0] if a.heal else self.h.end
        return a.start[1], end

    def windows(self, pred: Callable[[Applied], bool], *, strict: bool = False) -> Intervals:
        span = self.strict if strict else self.loose
        return Intervals.of(span(a) for a in self.applied if pred(a))

    def around(self, a: float, b: float) -> list[Applied]:
        """Applied faults whose loose window meets [a, b] (config writes left out), in start order."""
        return [x for x in self.applied if x.fault.kind is not Kind.CONFIG and
                self.loose(x)[0] <= b and self.loose(x)[1] >= a]

    @cached_property
    def pair_disturbed(self) -> Intervals:
        """Loose windows of every fault under which the two running nodes may not hear each other: a cut
        between them (either direction), loss on their link, either one frozen."""
        return self.windows(lambda a: (a.fault.kind in (Kind.PARTITION, Kind.ONEWAY) and pair_edge(a.fault.edges))
                            or (a.fault.kind is Kind.LOSS and pair_edge(a.fault.edges))
                            or a.fault.kind is Kind.FREEZE)

    def link_cut(self, x: str, y: str, *, strict: bool = False) -> Intervals:
        """Windows in which some cut drops traffic between ``x`` and ``y`` (either direction)."""
        return self.windows(lambda a: a.fault.kind in (Kind.PARTITION, Kind.ONEWAY) and touches_link(a, x, y),
                            strict=strict)

    def frozen(self, node: str) -> Intervals:
        return self.windows(lambda a: a.fault.kind is Kind.FREEZE and a.node == node)

    def quiet_except(self, a: float, b: float, allowed: Callable[[Applied], bool]) -> list[Applied]:
        """Faults acting in [a, b] other than config writes, clock steps and what ``allowed`` lets through:
        empty means the window was quiet enough for a bound to apply."""
        return [x for x in self.around(a, b) if x.fault.kind is not Kind.CLOCK and not allowed(x)]

    # -- the nodes' processes -----------------------------------------------------------------------
    def down(self, node: str) -> Intervals:
        """When the node's process was not running: from its exit (or kill) to its next start."""
        spans, since = [], None
        for life in sorted(self.h.life, key=lambda x: x.t):
            if life.node != node:
                continue
            if life.event == "exit" and since is None:
                since = life.t
            elif life.event == "start" and since is not None:
                spans.append((since, life.t))
                since = None
        if since is not None:
            spans.append((since, self.h.end))
        return Intervals.of(spans)

    def absent(self, node: str) -> Intervals:
        """When the node could not answer its peer: its process down, or started but not serving yet."""
        spans = list(self.down(node))
        for life in self.h.life:
            if life.node == node and life.event == "start":
                serving = self.serving_after(node, life.t)
                spans.append((life.t, serving if serving is not None else self.h.end))
        return Intervals.of(spans)

    def unresponsive(self, node: str) -> Intervals:
        """When the node ran (not down, starting or frozen) but did not answer the observer, who is never cut, within
        the poll's 1 s: a starved process. Its peer cannot tell it from a dead or frozen one (R2: no answer within T
        is a failure), so it counts as a freeze does: in the split-brain window and as a pause that ends."""
        spans: list[tuple[float, float]] = []
        last_ok: float | None = None
        missed = False
        for s in self.samples(node):
            if s.role is None:
                missed = True
                continue
            if last_ok is not None and missed and s.recv - last_ok > 1.0:
                spans.append((last_ok, s.recv))
            last_ok, missed = s.recv, False
        if last_ok is not None and missed:
            spans.append((last_ok, self.h.end))
        stopped = self.windows(lambda a: a.fault.kind in (Kind.KILL, Kind.TERM) and a.node == node)
        left = Intervals.of(spans).minus(self.absent(node) | self.frozen(node) | stopped)
        return Intervals.of((a, b) for a, b in left if b - a >= 1.0)  # a poll's timeout at least: evidence

    @cached_property
    def unresponsive_any(self) -> Intervals:
        return self.unresponsive("server1") | self.unresponsive("server2")

    @cached_property
    def starved(self) -> Intervals:
        """When a node counted failed probes of a peer that was up, with nothing between them: no cut or loss
        on their link, neither frozen, the peer's process serving. R2 counts a probe slower than T as a failure,
        and a machine that starves the pair of CPU makes such probes with no fault at all; no bound is judged
        where it did (the summary counts them). Each failed probe counted is blamed on the I before it. A node
        the observer found unresponsive is starved too."""
        b = self.h.bounds
        slack = b.timeout + b.interval
        out: list[tuple[float, float]] = []
        for node in NODES:
            peer = "server2" if node == "server1" else "server1"
            explained = self.pair_disturbed | self.absent(peer)
            for s in self.samples(node):
                if s.role is None or not s.failures:
                    continue
                span = (s.recv - s.failures * b.interval - b.timeout, s.recv)
                if not explained.touches(span[0] - slack, span[1]):
                    out.append(span)
        return Intervals.of(out) | self.unresponsive_any

    def serving_after(self, node: str, t: float) -> float | None:
        """When the node first answered a status poll sent at or after ``t``."""
        s = self.first(node, t, lambda x: x.role is not None)
        return s.recv if s else None

    # -- the observed roles -------------------------------------------------------------------------
    def samples(self, node: str) -> list[Sample]:
        return self.h.samples.get(node, [])

    def _sent_times(self, node: str) -> list[float]:
        if node not in self._times:
            self._times[node] = [s.sent for s in self.samples(node)]
        return self._times[node]

    def first(self, node: str, t: float, pred: Callable[[Sample], bool], until: float | None = None) -> Sample | None:
        """The first answered poll of ``node`` sent at or after ``t`` (and before ``until``) that ``pred`` accepts."""
        samples = self.samples(node)
        for s in samples[bisect.bisect_left(self._sent_times(node), t):]:
            if until is not None and s.sent > until:
                return None
            if s.role is not None and pred(s):
                return s
        return None

    def last_before(self, node: str, t: float) -> Sample | None:
        """The last answered poll of ``node`` whose answer came at or before ``t`` (None if older than FRESH_S)."""
        samples = self.samples(node)
        i = bisect.bisect_right(self._sent_times(node), t)
        for s in reversed(samples[max(0, i - 400):i]):
            if s.role is not None and s.recv <= t:
                return s if t - s.recv <= FRESH_S else None
        return None

    def role_at(self, node: str, t: float) -> str | None:
        s = self.last_before(node, t)
        return s.role if s else None

    def spans(self, node: str, role: str) -> Intervals:
        """Times the node certainly held ``role``: from the answer of a poll saying so to the sending of the
        last consecutive poll still saying so (polls closer than GAP_S apart)."""
        out: list[tuple[float, float]] = []
        start: Sample | None = None
        prev: Sample | None = None
        for s in self.samples(node):
            if s.role is None:
                continue
            same = prev is not None and prev.role == s.role == role and s.sent - prev.recv <= GAP_S
            if s.role == role and not same:
                if start is not None and prev is not None:
                    out.append((start.recv, max(start.recv, prev.sent)))
                start = s
            elif s.role != role and start is not None and prev is not None:
                out.append((start.recv, max(start.recv, prev.sent)))
                start = None
            prev = s
        if start is not None and prev is not None:
            out.append((start.recv, max(start.recv, prev.sent)))
        return Intervals.of(out)

    def maintenance(self) -> Intervals:
        """When either node said maintenance was on (grown by a poll gap), or a maintenance move was acting."""
        seen = Intervals.of((s.sent - GAP_S, s.recv + GAP_S) for n in NODES for s in self.samples(n)
                            if s.maintenance)
        return seen | self.windows(lambda a: a.fault.kind is Kind.MAINTENANCE)

    # -- the CTI manager's view ---------------------------------------------------------------------
    def holdings(self) -> dict[str, Intervals]:
        """Per node, when it held a live CTI registration (from the manager's journal)."""
        spans: dict[str, list[tuple[float, float]]] = {n: [] for n in NODES}
        since: dict[str, float] = {}
        for r in sorted(self.h.registrations, key=lambda x: x.t):
            if r.kind == "register":
                since.setdefault(r.node, r.t)
            elif r.node in since:
                spans.setdefault(r.node, []).append((since.pop(r.node), r.t))
        for node, t in since.items():
            spans.setdefault(node, []).append((t, self.h.end))
        return {n: Intervals.of(v) for n, v in spans.items()}

    def overlap(self) -> Intervals:
        """When two nodes held CTI registrations at once."""
        h = self.holdings()
        return h.get("server1", Intervals()) & h.get("server2", Intervals())
