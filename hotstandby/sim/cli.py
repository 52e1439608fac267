"""``hotstandby sim``: run one schedule or many seeds, print a table or one JSON object.

``run_cli`` is a plain function (``hotstandby sim`` passes its arguments to ``main``); ``python -m
hotstandby.sim.cli`` is the same. ``--witness`` simulates an etcd witness (SPEC 12); ``--plant NAME``
plants a known bug (to see the invariants catch it); ``--keep`` and ``--trace`` replay a shrunk schedule.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from hotstandby.rules import decide
from hotstandby.sim.invariants import NAMES
from hotstandby.sim.runner import DEFAULT_STEPS, Summary, run_many, run_scenario, shrink
from hotstandby.sim.scenario import PROFILES, make_scenario
from hotstandby.sim.world import PLANTS, DecideFn, World

MAX_SHRUNK = 3  # shrinking costs runs: minimise the first few failing seeds only


def replay_command(seed: int, steps: int, profile: str, keep: tuple[int, ...] | None, witness: bool = False,
                   plant: str | None = None) -> str:
    kept = "" if keep is None else f" --keep {','.join(map(str, keep)) or 'none'}"
    prof = "" if profile == "random" else f" --profile {profile}"
    extra = (" --witness" if witness else "") + (f" --plant {plant}" if plant else "")
    return f"python -m hotstandby.sim.cli --seed {seed} --steps {steps}{prof}{extra}{kept} --trace"


def minimal_replay(seed: int, steps: int, profile: str, decide_fn: DecideFn = decide, witness: bool = False,
                   plant: str | None = None) -> dict[str, Any]:
    """Shrink a failing seed's fault schedule while it still fails; the replay names what is left."""
    sc = make_scenario(seed, steps, profile, witness)
    res, _ = run_scenario(sc, decide_fn, plant=plant)
    failing = [k for k, v in res.violations.items() if v]
    keep = shrink(sc, decide_fn, failing, plant=plant)
    return {
        "seed": seed,
        "violations": failing,
        "faults_total": len(sc.faults),
        "keep": list(keep),
        "faults": [repr(sc.faults[k]) for k in keep],
        "replay": replay_command(seed, steps, profile, keep, witness, plant),
    }


def _table(s: Summary, replays: list[dict[str, Any]], steps: int, witness: bool = False,
           plant: str | None = None) -> str:
    lines = [
        f"witness                 {'etcd (simulated)' if witness else 'none'}"
        + (f"; planted bug: {plant}" if plant else ""),
        f"runs                    {s.runs}",
        f"ticks                   {s.ticks}",
        f"simulated hours         {s.simulated_seconds / 3600:.1f}",
        f"wall seconds            {s.wall_seconds:.1f}",
        f"ticks per second        {s.ticks_per_second:,.0f}  ({s.ticks_per_second * 60:,.0f} a minute)",
        "violations",
    ]
    lines += [f"  {name:22}{s.violations[name]}" for name in NAMES]
    if s.worst_failover_bound:
        lines.append(
            f"worst R1 failover       {s.worst_failover:.3f} s against its bound N*I+T+I = "
            f"{s.worst_failover_bound:.3f} s ({100 * s.worst_ratio:.0f}%, seed {s.worst_ratio_seed})"
        )
    lines.append("bounds measured         " + ", ".join(f"{k} {v}" for k, v in sorted(s.measured.items())))
    lines.append(f"CTI overlap seconds     {s.overlap_seconds:.1f} (inside windows the SPEC allows, else counted "
                 f"as single_active); stale-epoch registrations {s.stale_epochs}")
    shown = " ".join(map(str, s.failing_seeds[:20])) + (" ..." if len(s.failing_seeds) > 20 else "")
    lines.append(f"failing seeds           {shown or 'none'}")
    for r in replays:
        lines.append(f"seed {r['seed']} violates {', '.join(r['violations'])}; minimal schedule keeps "
                     f"{len(r['keep'])} of {r['faults_total']} faults:")
        lines += [f"    {f}" for f in r["faults"]]
        lines.append(f"  replay: {r['replay']}")
    return "\n".join(lines)


def run_cli(
    seed: int | None,
    steps: int = DEFAULT_STEPS,
    runs: int | None = None,
    json_out: bool = False,
    profile: str = "random",
    processes: int = 2,
    decide_fn: DecideFn = decide,
    out: Callable[[str], object] = print,
    witness: bool = False,
    plant: str | None = None,
) -> int:
    """Run ``runs`` seeds from ``seed`` (default 0), ``steps`` ticks each; exit status 1 on any violation."""
    if profile not in PROFILES:
        out(f"error: --profile must be one of {', '.join(PROFILES)}")
        return 2
    if plant is not None and plant not in PLANTS:
        out(f"error: --plant must be one of {', '.join(PLANTS)}")
        return 2
    if steps < 1 or (runs is not None and runs < 1):
        out("error: --steps and --runs must be positive")
        return 2
    first = 0 if seed is None else seed
    count = 1 if runs is None else runs
    summary = run_many(list(range(first, first + count)), steps, profile, processes, decide_fn, witness, plant)
    replays = [minimal_replay(s, steps, profile, decide_fn, witness, plant)
               for s in summary.failing_seeds[:MAX_SHRUNK]]
    if json_out:
        out(json.dumps({
            "runs": summary.runs,
            "ticks": summary.ticks,
            "simulated_seconds": round(summary.simulated_seconds, 3),
            "wall_seconds": round(summary.wall_seconds, 3),
            "ticks_per_second": round(summary.ticks_per_second, 1),
            "violations": summary.violations,
            "failing_seeds": summary.failing_seeds,
            "worst_failover_s": round(summary.worst_failover, 3),
            "worst_failover_bound_s": round(summary.worst_failover_bound, 3),
            "worst_failover_seed": summary.worst_ratio_seed,
            "bounds_measured": summary.measured,
            "overlap_seconds": round(summary.overlap_seconds, 3),
            "stale_epoch_registrations": summary.stale_epochs,
            "replays": replays,
            "seeds": [first, first + count - 1],
            "steps": steps,
            "profile": profile,
            "witness": witness,
            "plant": plant,
        }, sort_keys=True))
    else:
        out(_table(summary, replays, steps, witness, plant))
    return 1 if summary.failing_seeds else 0


def trace_cli(seed: int, steps: int, profile: str, keep: tuple[int, ...] | None,
              out: Callable[[str], object] = print, witness: bool = False, plant: str | None = None) -> int:
    """Replay one schedule (optionally only the faults in ``keep``) and print its story."""
    sc = make_scenario(seed, steps, profile, witness)
    if keep is not None:
        sc = sc.keep(keep)
    w = World(sc, trace=True, plant=plant).run()
    cfg = sc.settings
    out(f"seed {seed}: N={cfg.failures_to_switch} I={cfg.heartbeat_interval_s} T={cfg.heartbeat_timeout_s} "
        f"auto_failback={cfg.auto_failback} test_vip_destination={cfg.test_vip_destination} "
        f"lan_checked={sc.lan_checked} witness={witness} plant={plant} horizon={sc.horizon:.1f}s "
        f"quiet_from={sc.quiet_from:.1f}s")
    for line in w.story:
        out(line)
    for v in w.checks.found:
        out(f"VIOLATION {v.name} at {v.at:.4f} on {v.node}: {v.detail}")
    out(f"trace hash {w.trace_hash:x}")
    return 1 if w.checks.total else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hotstandby.sim.cli", description=__doc__)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--profile", default="random", choices=PROFILES)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--witness", action="store_true", help="simulate an etcd witness (SPEC 12)")
    p.add_argument("--plant", default=None, choices=PLANTS, help="plant a known bug, to see it caught")
    p.add_argument("--keep", default=None, help="comma-separated fault indices to keep ('none': no faults)")
    p.add_argument("--trace", action="store_true", help="print the story of one run")
    a = p.parse_args(argv)
    if a.trace:
        keep = None if a.keep is None else tuple(int(x) for x in a.keep.split(",") if x and x != "none")
        return trace_cli(a.seed or 0, a.steps, a.profile, keep, witness=a.witness, plant=a.plant)
    return run_cli(a.seed, a.steps, a.runs, a.json, a.profile, a.processes, witness=a.witness, plant=a.plant)


if __name__ == "__main__":
    sys.exit(main())
