"""Deterministic simulation of the pair (issue 4): the real decision core under every fault.

``run_seed(seed)`` plays one schedule; ``run_many(seeds)`` many; ``shrink`` minimises a failing
schedule; ``cli.run_cli`` is what ``hotstandby sim`` calls. See README.md in this directory.
"""

from __future__ import annotations

from hotstandby.sim.invariants import NAMES
from hotstandby.sim.runner import RunResult, Summary, run_many, run_scenario, run_seed, shrink
from hotstandby.sim.scenario import Fault, Scenario, make_scenario
from hotstandby.sim.world import World

__all__ = [
    "NAMES",
    "Fault",
    "RunResult",
    "Scenario",
    "Summary",
    "World",
    "make_scenario",
    "run_many",
    "run_scenario",
    "run_seed",
    "shrink",
]
