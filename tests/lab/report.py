"""The chaos matrix as a table: one line per fault, from the rows the lab tests recorded.

    python -m tests.lab.report [run/chaos-rows.json]

Each test appends a row (fault, bound, worst time, overlap seconds, lost changes, outcome); rows
of the same fault (parametrized runs, repeated rounds) are summed into one line of the table.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HEADER = ("fault", "runs", "bound s", "worst s", "overlap s", "lost", "pass")


def rows_path() -> Path:
    return Path(os.environ.get("HS_CHAOS_REPORT", ROOT / "run" / "chaos-rows.json"))


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
    out = []
    for fault, m in merged.items():
        verdict = "yes" if m["ok"] else "/".join(sorted(o for o in m["outcome"] if o != "passed")).upper()
        out.append((fault, str(m["runs"]), _num(m["bound"]), _num(m["worst"]), _num(m["overlap"]),
                    "-" if m["lost"] is None else str(m["lost"]), verdict))
    return out


def table(rows: list[dict[str, Any]]) -> str:
    body = summarise(rows)
    if not body:
        return "no chaos rows recorded"
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(HEADER)]

    def line(cells: tuple[str, ...]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(HEADER), sep, *(line(r) for r in body)])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    rows = load(Path(args[0]) if args else rows_path())
    print(table(rows))
    return 0 if rows and all(r["outcome"] == "passed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
