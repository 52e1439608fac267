"""The chaos matrix as a table: one line per fault, from the rows the lab tests recorded.

    python -m tests.lab.report [run/chaos-rows.json]

Each test appends a row (fault, bound, worst time, overlap seconds, lost changes, outcome); rows
of the same fault (parametrized runs, repeated rounds) are summed into one line of the table.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from lab.chaosrows import HEADER, load, summarise

ROOT = Path(__file__).resolve().parents[2]


def rows_path() -> Path:
    return Path(os.environ.get("HS_CHAOS_REPORT", ROOT / "run" / "chaos-rows.json"))


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
