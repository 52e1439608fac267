"""Two minutes of the nemesis in make test: the real pair under random, overlapping faults, judged as a history.

One minute without the witness and one with it (a fixed seed each, so a failure replays): the checker
(lab/nemesis/checker.py, its rules in lab/nemesis/README.md) must find no violation. `make nemesis` runs
the same for 20 minutes. The evidence of each run stays in run/nemesis/make-test/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lab import netns
from lab.nemesis.cli import one
from lab.nemesis.runner import Plan

pytestmark = [pytest.mark.lab, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
PLANS = (Plan(1001, 60, witness=False), Plan(1002, 60, witness=True))


@pytest.mark.early(130)
@pytest.mark.timeout(720)
def test_a_minute_each_without_and_with_the_witness_breaks_no_rule() -> None:
    """Overlapping kills, freezes, partitions, loss, clock steps, full disks, CTI crashes and operator moves:
    no split brain outside what the SPEC allows, no lost config write, every applicable bound met."""
    why = netns.unavailable()
    if why:
        pytest.skip(why)
    out = ROOT / "run" / "nemesis" / "make-test"
    shutil.rmtree(out, ignore_errors=True)
    reports = []
    for plan in PLANS:
        h, verdict = one(plan, out / plan.name)
        applied = [a for a in h.applied if a.start is not None and a.fault.kind.value != "config"]
        assert len(applied) >= 5, f"{plan.name}: only {len(applied)} faults applied"
        assert all(h.samples[n] for n in ("server1", "server2")) and h.registrations and h.vip
        reports.append(verdict.report(h))
    assert [r for r in reports if r] == [], "\n\n".join(reports)
