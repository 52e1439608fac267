"""Running scenarios: one seed, many seeds (over processes), and shrinking a failing schedule."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing import get_context

from hotstandby.rules import decide
from hotstandby.sim.invariants import NAMES, Violation
from hotstandby.sim.scenario import Scenario, make_scenario
from hotstandby.sim.world import DecideFn, World

DEFAULT_STEPS = 400


@dataclass
class RunResult:
    """One seed's outcome: what the report needs, small enough to send between processes."""

    seed: int
    ticks: int
    simulated_seconds: float
    violations: dict[str, int]
    found: list[Violation]
    trace_hash: int
    worst_failover: float
    worst_ratio: float
    r1_bound: float
    measured: dict[str, int]
    overlap_seconds: float
    stale_epochs: int
    faults: int

    @property
    def failed(self) -> bool:
        return any(self.violations.values())


def run_scenario(sc: Scenario, decide_fn: DecideFn = decide, trace: bool = False, plant: str | None = None
                 ) -> tuple[RunResult, World]:
    w = World(sc, decide_fn, trace, plant).run()
    c = w.checks
    res = RunResult(
        seed=sc.seed, ticks=w.ticks, simulated_seconds=sc.horizon, violations=dict(c.counts), found=c.found,
        trace_hash=w.trace_hash, worst_failover=c.worst_failover, worst_ratio=c.worst_ratio,
        r1_bound=c.r1_bound, measured=dict(c.measured), overlap_seconds=w.overlap_seconds,
        stale_epochs=w.stale_epochs, faults=len(sc.faults),
    )
    return res, w


def run_seed(seed: int, steps: int = DEFAULT_STEPS, profile: str = "random", decide_fn: DecideFn = decide,
             witness: bool = False, plant: str | None = None) -> RunResult:
    return run_scenario(make_scenario(seed, steps, profile, witness), decide_fn, plant=plant)[0]


def shrink(sc: Scenario, decide_fn: DecideFn = decide, names: Iterable[str] | None = None,
           budget: int = 300, plant: str | None = None) -> tuple[int, ...]:
    """The smallest fault subset (greedy, delta-debugging style) that still violates ``names``."""
    wanted = set(names or NAMES)

    def fails(keep: tuple[int, ...]) -> bool:
        res, _ = run_scenario(sc.keep(keep), decide_fn, plant=plant)
        return any(res.violations[k] for k in wanted)

    keep = tuple(range(len(sc.faults)))
    tries = 0
    if fails(()):
        return ()
    chunk = max(1, len(keep) // 2)
    while chunk >= 1 and tries < budget:
        changed = False
        start = 0
        while start < len(keep) and tries < budget:
            trial = keep[:start] + keep[start + chunk:]
            tries += 1
            if fails(trial):
                keep = trial
                changed = True
            else:
                start += chunk
        if not changed:
            chunk //= 2
    return keep


@dataclass
class Summary:
    runs: int = 0
    ticks: int = 0
    simulated_seconds: float = 0.0
    wall_seconds: float = 0.0
    violations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    failing_seeds: list[int] = field(default_factory=list)
    worst_failover: float = 0.0
    worst_failover_bound: float = 0.0
    worst_ratio: float = 0.0
    worst_ratio_seed: int | None = None
    measured: dict[str, int] = field(default_factory=dict)
    overlap_seconds: float = 0.0
    stale_epochs: int = 0
    first: dict[int, list[Violation]] = field(default_factory=dict)

    def add(self, r: RunResult) -> None:
        self.runs += 1
        self.ticks += r.ticks
        self.simulated_seconds += r.simulated_seconds
        for k, v in r.violations.items():
            self.violations[k] += v
        if r.failed:
            self.failing_seeds.append(r.seed)
            if len(self.first) < 10:
                self.first[r.seed] = r.found
        if r.worst_ratio > self.worst_ratio:
            self.worst_ratio, self.worst_ratio_seed = r.worst_ratio, r.seed
            self.worst_failover, self.worst_failover_bound = r.worst_failover, r.r1_bound
        for k, v in r.measured.items():
            self.measured[k] = self.measured.get(k, 0) + v
        self.overlap_seconds += r.overlap_seconds
        self.stale_epochs += r.stale_epochs

    @property
    def ticks_per_second(self) -> float:
        return self.ticks / self.wall_seconds if self.wall_seconds else 0.0


def _chunk(args: tuple[list[int], int, str, bool, str | None]) -> list[RunResult]:
    seeds, steps, profile, witness, plant = args
    return [run_seed(s, steps, profile, witness=witness, plant=plant) for s in seeds]


def run_many(seeds: list[int], steps: int = DEFAULT_STEPS, profile: str = "random", processes: int = 2,
             decide_fn: DecideFn = decide, witness: bool = False, plant: str | None = None) -> Summary:
    """Run every seed; over ``processes`` worker processes when there are enough of them to pay off.

    A custom ``decide_fn`` runs in this process (it need not be importable by the workers); ``witness``
    simulates an etcd witness (SPEC 12); ``plant`` plants a known bug (``world.PLANTS``).
    """
    summary = Summary()
    started = time.perf_counter()
    if processes <= 1 or len(seeds) < 200 or decide_fn is not decide:
        for s in seeds:
            summary.add(run_seed(s, steps, profile, decide_fn, witness, plant))
    else:
        size = 250
        chunks = [(seeds[k:k + size], steps, profile, witness, plant) for k in range(0, len(seeds), size)]
        with get_context("fork").Pool(processes) as pool:
            for results in pool.imap(_chunk, chunks):
                for r in results:
                    summary.add(r)
    summary.wall_seconds = time.perf_counter() - started
    return summary
