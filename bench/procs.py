"""What a host's processes cost, read from /proc: resident memory and CPU time."""

from __future__ import annotations

import contextlib
import os

TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pids: list[int]) -> float:
    """The sum of VmRSS of ``pids`` in megabytes (shared pages counted in each process, like ``ps``)."""
    total_kb = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def pss_mb(pids: list[int]) -> float:
    """The sum of the proportional set sizes (shared pages split between their users)."""
    total_kb = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (children already reaped are not counted)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()
