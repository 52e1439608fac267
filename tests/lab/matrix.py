"""What a row of the chaos matrix measures, and the fast/full durations of the long faults."""

from __future__ import annotations

import os
from dataclasses import dataclass

from lab.labpair import ConfigLedger, LabPair

FULL = os.environ.get("HS_LAB_FULL", "") not in ("", "0", "false")


def lab_seconds(fast: float, full: float) -> float:
    """A fault's duration: ``full`` under ``make chaos`` (HS_LAB_FULL=1), ``fast`` in ``make test``."""
    return full if FULL else fast


@dataclass
class Row:
    """One line of the chaos table: what the test measured from outside the pair."""

    fault: str
    bound: float | None = None
    worst: float | None = None
    overlap: float | None = None
    lost: int | None = None
    runs: int = 1
    outcome: str = "failed"

    def took(self, seconds: float) -> float:
        self.worst = seconds if self.worst is None else max(self.worst, seconds)
        return seconds

    def within(self, seconds: float, bound: float, margin: float) -> None:
        """Record ``seconds`` and check it against ``bound`` (the SPEC's) plus ``margin``."""
        self.took(seconds)
        assert seconds <= bound + margin, f"{self.fault}: {seconds:.2f} s > bound {bound:.2f} s + {margin:g} s"

    def outside(self, pair: LabPair, ledger: ConfigLedger, *, overlap_max: float = 0.0) -> None:
        """The two measures of every row: CTI overlap (at most ``overlap_max``) and no lost change."""
        self.overlap = pair.overlap()
        self.lost = ledger.lost()
        assert self.lost == 0, f"{self.lost} acknowledged config change(s) lost"
        assert self.overlap <= overlap_max, f"CTI overlap {self.overlap:.2f} s > {overlap_max:.2f} s"


def margin_for(pair: LabPair) -> float:
    """Slack on top of a SPEC bound for a loaded machine (process startup, scheduling), not design slack."""
    return pair.bounds.margin
