"""The fault lab's rows (one JSON object a line, one per test: fault, bound, worst time, overlap seconds,
lost changes, outcome) and their summary, one line per fault: read by ``tests/lab/report.py`` (the
chaos table ``make chaos`` prints) and by ``bench/readme.py`` (the README's table, from
``bench/results/chaos.jsonl``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HEADER = ("fault", "runs", "bound s", "worst s", "overlap s", "lost", "pass")


def load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def summarise(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    merged: dict[str, dict[str, Any]] = {}
    for r in rows:
        m = merged.setdefault(r["fault"], {"runs": 0, "bound": r.get("bound"), "worst": None, "overlap": None,
                                           "lost": None, "ok": True, "outcome": set()})
        m["runs"] += r.get("runs", 1)
        if r.get("worst") is not None:
            m["worst"] = max(m["worst"] or 0.0, r["worst"])
        if r.get("overlap") is not None:
            m["overlap"] = max(m["overlap"] or 0.0, r["overlap"])
        if r.get("lost") is not None:
            m["lost"] = (m["lost"] or 0) + r["lost"]
        m["ok"] = m["ok"] and r["outcome"] == "passed"
        m["outcome"].add(r["outcome"])
    out: list[tuple[str, ...]] = []
    for fault, m in merged.items():
        verdict = "yes" if m["ok"] else "/".join(sorted(o for o in m["outcome"] if o != "passed")).upper()
        out.append((fault, str(m["runs"]), _num(m["bound"]), _num(m["worst"]), _num(m["overlap"]),
                    "-" if m["lost"] is None else str(m["lost"]), verdict))
    return out
