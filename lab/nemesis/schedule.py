"""The seeded schedule: storms of overlapping faults, each followed by a quiet period. Pure.

``make_schedule(seed, seconds, witness=...)`` is a function of its arguments only (one
``random.Random(seed)``), so a seed and a duration replay the same faults at the same offsets.

Shape: a short quiet lead-in; then storms of 8-24 s in which a fault starts every 1.5, 3 or 6 s
on average (the storm's pace, drawn per storm; exponential gaps, so several often start together)
and lasts its own random time, so faults overlap (a dense storm piles them up, a sparse one leaves
windows in which a single fault's bound applies); each storm heals completely (the last of its
faults ends) and a quiet period follows (12-18 s), long enough for every SPEC bound to play out and
the pair to settle. The operator writes the config every 0.8-3 s throughout, storms and quiet
alike. The run ends with a quiet tail.

Rules that keep a schedule executable: one process fault at a time per node (kill, SIGSTOP and
SIGTERM exclude each other), one clock step and one full disk at a time per node, one maintenance
window at a time. Both nodes may be down or frozen at once, and network faults overlap freely.
"""

from __future__ import annotations

import itertools
import math
import random

from lab.nemesis.faults import NODES, Edge, Fault, Kind, Schedule, hosts

LEAD_S = 3.0
STORM_S = (8.0, 24.0)
MEAN_GAPS_S = (1.5, 3.0, 6.0)  # a storm's pace: dense storms overlap many faults, sparse ones let bounds apply
QUIET_S = (12.0, 18.0)
TAIL_S = 18.0  # after the last heal: the final convergence check needs R4 + margin, then a stable stretch
CONFIG_GAP_S = (0.8, 3.0)

DURATION_S: dict[Kind, tuple[float, float]] = {
    Kind.KILL: (1.0, 10.0), Kind.FREEZE: (0.5, 8.0), Kind.TERM: (1.0, 8.0),
    Kind.PARTITION: (1.0, 12.0), Kind.ONEWAY: (1.0, 12.0), Kind.LOSS: (2.0, 15.0),
    Kind.CLOCK: (2.0, 15.0), Kind.DISK: (2.0, 10.0), Kind.MAINTENANCE: (2.0, 10.0),
}
WEIGHT: dict[Kind, float] = {
    Kind.PARTITION: 3.0, Kind.ONEWAY: 2.0, Kind.LOSS: 2.0, Kind.KILL: 2.0, Kind.FREEZE: 1.5,
    Kind.TERM: 1.0, Kind.CLOCK: 1.0, Kind.DISK: 1.0, Kind.CTI_CRASH: 2.0, Kind.SWITCH: 1.0,
    Kind.FORCE: 0.5, Kind.MAINTENANCE: 0.7,
}
MAX_LOSS = 0.40
CLOCK_S = (0.5, 600.0)  # log-uniform magnitude, either sign; inside the peers' ±15 min signature window


def _resource(kind: Kind, node: str | None) -> str | None:
    """What a fault holds exclusively while it lasts (None: nothing)."""
    if kind in (Kind.KILL, Kind.FREEZE, Kind.TERM):
        return f"process:{node}"
    if kind in (Kind.CLOCK, Kind.DISK):
        return f"{kind.value}:{node}"
    if kind is Kind.MAINTENANCE:
        return "maintenance"
    return None


def _edges(rng: random.Random, names: tuple[str, ...], directed: bool) -> tuple[Edge, ...]:
    """A partition's links: half the time a clean split in two groups, else any non-empty set of links."""
    if rng.random() < 0.5:
        while True:
            side = {h for h in names if rng.random() < 0.5}
            if 0 < len(side) < len(names):
                break
        other = [h for h in names if h not in side]
        pairs = [(a, b) for a in sorted(side) for b in other]
    else:
        links = list(itertools.combinations(names, 2))
        pairs = [p for p in links if rng.random() < 0.4] or [rng.choice(links)]
    if directed:
        return tuple((a, b) if rng.random() < 0.5 else (b, a) for a, b in pairs)
    return tuple(pairs)


def _fault(rng: random.Random, fid: int, kind: Kind, at: float, witness: bool) -> Fault:
    lo, hi = DURATION_S.get(kind, (0.0, 0.0))
    duration = round(rng.uniform(lo, hi), 2) if hi else 0.0
    node = rng.choice(NODES)
    names = hosts(witness)
    if kind in (Kind.PARTITION, Kind.ONEWAY):
        return Fault(fid, kind, at, duration, edges=_edges(rng, names, directed=kind is Kind.ONEWAY))
    if kind is Kind.LOSS:
        a, b = rng.sample(names, 2)
        return Fault(fid, kind, at, duration, edges=((a, b),), loss=round(rng.uniform(0.0, MAX_LOSS), 3))
    if kind is Kind.CLOCK:
        magnitude = math.exp(rng.uniform(math.log(CLOCK_S[0]), math.log(CLOCK_S[1])))
        return Fault(fid, kind, at, duration, node=node, offset=round(rng.choice((-1, 1)) * magnitude, 1))
    if kind is Kind.CTI_CRASH:
        return Fault(fid, kind, at, node="active")
    if kind in (Kind.SWITCH, Kind.FORCE):
        target = "standby" if rng.random() < 0.7 else rng.choice(NODES)
        return Fault(fid, kind, at, node=node, target=target)
    return Fault(fid, kind, at, duration, node=node)


def make_schedule(seed: int, seconds: float, *, witness: bool) -> Schedule:
    """The faults of a run of ``seconds``, from ``seed`` alone."""
    rng = random.Random(seed)
    kinds = list(WEIGHT)
    weights = [WEIGHT[k] for k in kinds]
    faults: list[Fault] = []
    storms: list[tuple[float, float]] = []
    busy: dict[str, float] = {}
    fid = itertools.count(1)
    last_heal = seconds - TAIL_S
    t = LEAD_S
    while t + STORM_S[0] < last_heal:
        storm_end = min(t + rng.uniform(*STORM_S), last_heal)
        first, healed = t, t
        at = t
        gap = rng.choice(MEAN_GAPS_S)
        while at < storm_end:
            for _ in range(8):  # a kind whose resource is free now (else try another)
                f = _fault(rng, 0, rng.choices(kinds, weights)[0], round(at, 2), witness)
                res = _resource(f.kind, f.node)
                if res is None or busy.get(res, -1.0) <= at:
                    break
            else:
                at += rng.expovariate(1 / gap)
                continue
            duration = min(f.duration, round(last_heal - f.at, 2))
            if f.duration and duration < DURATION_S[f.kind][0]:  # no room left before the tail for this one
                at += rng.expovariate(1 / gap)
                continue
            f = Fault(next(fid), f.kind, f.at, duration, f.node, f.target, f.edges, f.loss, f.offset)
            if res is not None:
                busy[res] = f.end + 0.5  # the next one on the same resource after this one has healed
            faults.append(f)
            healed = max(healed, f.end)
            at += rng.expovariate(1 / gap)
        storms.append((round(first, 2), round(healed, 2)))
        t = healed + rng.uniform(*QUIET_S)
    at = LEAD_S
    while at < seconds - 2.0:
        faults.append(Fault(next(fid), Kind.CONFIG, round(at, 2), node=rng.choice(NODES)))
        at += rng.uniform(*CONFIG_GAP_S)
    faults.sort(key=lambda f: (f.at, f.id))
    return Schedule(seed, seconds, witness, tuple(faults), tuple(storms))
