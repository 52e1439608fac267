"""The command line of the nemesis (``python -m lab.nemesis``; ``make nemesis``).

    python -m lab.nemesis --minutes 20                 # a campaign: fixed seeds then random, both modes
    python -m lab.nemesis --seed 7 --seconds 150 --witness on      # one run (what a violation says to replay)
    python -m lab.nemesis --check run/nemesis/<run>/history.json   # judge a saved history again

A campaign splits its minutes evenly between the two modes, in runs of about ``--run-seconds``,
alternating modes so that a campaign cut short still has both. Exit status 1 when any run found a
violation, 2 when a run could not be carried out.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lab.nemesis import report
from lab.nemesis.chart import draw
from lab.nemesis.checker import Verdict, check
from lab.nemesis.history import History
from lab.nemesis.runner import FAILURES, INTERVAL, Plan, run

ROOT = Path(__file__).resolve().parents[2]
FIXED_SEEDS = (1, 2, 3, 4, 5, 6)  # the first runs of every campaign: comparable from one campaign to the next
RESULTS = ROOT / "bench" / "results" / "nemesis"


def judge(h: History, out: Path) -> Verdict:
    """Check ``h``, and leave its history, violations and chart in ``out``."""
    h.save(out / "history.json")
    verdict = check(h)
    text = verdict.report(h)
    (out / "violations.txt").write_text(text + "\n" if text else "")
    draw(h, verdict, out / "timeline.png")
    return verdict


def one(plan: Plan, out: Path) -> tuple[History, Verdict]:
    h = run(plan, out)
    verdict = judge(h, out)
    text = verdict.report(h)
    print(text or f"{plan.name}: no violation", flush=True)
    print(f"  {len([a for a in h.applied if a.start])} faults applied; CTI overlap {verdict.overlap_total:.2f} s "
          f"(longest {verdict.overlap_longest:.2f} s); " +
          ", ".join(f"{r.rule} {r.applied}" for r in verdict.results.values() if r.applied), flush=True)
    return h, verdict


def plans(minutes: float, run_seconds: float, modes: tuple[bool, ...], seeds: list[int]) -> list[Plan]:
    """The campaign's runs: per mode ``minutes / len(modes)``, in runs of about ``run_seconds``, modes alternating."""
    per_mode = minutes * 60 / len(modes)
    count = max(1, round(per_mode / run_seconds))
    seconds = round(per_mode / count, 1)
    order = list(seeds) + [secrets.randbelow(10**6) for _ in range(max(0, count - len(seeds)))]
    return [Plan(order[i], seconds, w) for i in range(count) for w in modes]


def _meta() -> dict[str, Any]:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {"when": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(),
            "load": round(os.getloadavg()[0], 1), "commit": commit, "interval": INTERVAL, "failures": FAILURES}


def campaign(args: argparse.Namespace) -> int:
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.witness]
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(FIXED_SEEDS)
    out = args.out or ROOT / "run" / "nemesis" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    meta = _meta()
    todo = plans(args.minutes, args.run_seconds, modes, seeds)
    print(f"nemesis: {len(todo)} runs of {todo[0].seconds:g} s, {args.minutes:g} minutes of faults, "
          f"into {out}", flush=True)
    runs: list[dict[str, Any]] = []
    status = 0
    for plan in todo:
        where = out / plan.name
        try:
            h, verdict = one(plan, where)
        except Exception as exc:  # a run that could not be carried out is reported, and the campaign goes on
            print(f"{plan.name}: the run failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            status = 2
            continue
        runs.append(report.run_summary(h, verdict, os.path.relpath(where, ROOT)))
        status = max(status, 1 if verdict.violations else 0)
        report.write(out, runs, meta)
    if not runs:
        return 2
    summary = report.write(out, runs, meta)
    print((out / "summary.md").read_text(), flush=True)
    if args.results:
        _publish(out, runs, summary, args.results)
    return status


def recheck(out: Path, results: Path | None) -> int:
    """Judge every run of a campaign again with this checker, and write its summary again (same meta)."""
    meta = json.loads((out / "summary.json").read_text())["meta"] if (out / "summary.json").exists() else _meta()
    meta["rechecked"] = _meta()["commit"]
    runs = []
    bad = 0
    for history in sorted(out.glob("*/history.json"), key=lambda p: p.stat().st_mtime):
        h = History.load(history)
        verdict = judge(h, history.parent)
        print(verdict.report(h) or f"{history.parent.name}: no violation", flush=True)
        bad += len(verdict.violations)
        runs.append(report.run_summary(h, verdict, os.path.relpath(history.parent, ROOT)))
    summary = report.write(out, runs, meta)
    if results:
        _publish(out, runs, summary, results)
    return 1 if bad else 0


def _publish(out: Path, runs: list[dict[str, Any]], summary: dict[str, Any], results: Path) -> None:
    """Copy the summary and one representative chart (the busiest run of each mode) beside the bench's results."""
    results.mkdir(parents=True, exist_ok=True)
    for name in ("summary.json", "summary.md"):
        shutil.copy(out / name, results / name)
    for witness, label in ((False, "nowitness"), (True, "witness")):
        mine = [r for r in runs if r["witness"] == witness]
        if mine:
            busiest = max(mine, key=lambda r: sum(r["faults"].values()))
            shutil.copy(ROOT / busiest["where"] / "timeline.png", results / f"timeline-{label}.png")
    print(f"results in {results}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.nemesis", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=None, help="a campaign of this many minutes of faults")
    p.add_argument("--run-seconds", type=float, default=150.0, help="a campaign's runs last about this long")
    p.add_argument("--seeds", default="", help="a campaign's first seeds (default: 1,2,3,4,5,6), then random ones")
    p.add_argument("--seed", type=int, default=None, help="one run with this seed")
    p.add_argument("--seconds", type=float, default=150.0, help="one run's length")
    p.add_argument("--witness", choices=("on", "off", "both"), default=None,
                   help="one run: on or off (default off); a campaign: on, off or both (default both)")
    p.add_argument("--out", type=Path, default=None, help="where runs go (default run/nemesis/<time>/)")
    p.add_argument("--results", type=Path, nargs="?", const=RESULTS, default=None,
                   help=f"a campaign also copies its summary and charts here (default {RESULTS.relative_to(ROOT)})")
    p.add_argument("--check", type=Path, default=None,
                   help="judge a saved history.json again, or every run of a campaign's directory (and its summary)")
    args = p.parse_args(argv)
    if args.check and args.check.is_dir():
        return recheck(args.check, args.results)
    if args.check:
        h = History.load(args.check)
        text = judge(h, args.check.parent).report(h)
        print(text or "no violation")
        return 1 if text else 0
    if args.minutes is not None:
        args.witness = args.witness or "both"
        return campaign(args)
    if args.witness == "both":
        p.error("one run is either --witness on or --witness off")
    plan = Plan(args.seed if args.seed is not None else 1, args.seconds, args.witness == "on")
    out = args.out or ROOT / "run" / "nemesis" / f"{time.strftime('%Y%m%d-%H%M%S')}-{plan.name}"
    _, verdict = one(plan, out)
    print(f"history, violations and chart in {out}")
    return 1 if verdict.violations else 0
