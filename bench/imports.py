"""What each layer of a node costs in resident memory, import by import.

    python -m bench.imports [--record]    # --record: bench/results/imports.json, and the README's table

Each row is a fresh interpreter that imports everything of the rows above it and its own, then reads
its VmRSS: so a row's increment is what that layer adds to a node that already has the layers above (a
module two layers share is counted in the first). The last row is the node's own import
(``services.node``, what ``hotstandby node`` loads before serving); a running node adds its
applications, threads and SQLite on top (``make bench``'s memory row).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

LAYERS: list[tuple[str, list[str]]] = [
    ("the interpreter", []),
    ("asyncio and ssl (the standard library a server needs)", ["asyncio", "ssl", "sqlite3"]),
    ("pydantic", ["pydantic"]),
    ("starlette", ["starlette.applications"]),
    ("FastAPI (with what it requires: opentelemetry-api, its OpenAPI models)", ["fastapi"]),
    ("uvicorn, uvloop, httptools", ["uvicorn", "uvloop", "httptools"]),
    ("SQLAlchemy", ["sqlalchemy", "sqlalchemy.orm"]),
    ("sqlmodel", ["sqlmodel"]),
    ("prometheus_client", ["prometheus_client"]),
    ("the node's own modules (services.node)", ["services.node"]),
]

PROBE = """
import sys
for name in sys.argv[1:]:
    __import__(name)
rss = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmRSS'))
print(rss / 1024, len(sys.modules))
"""


def measure() -> list[tuple[str, float, int]]:
    rows, names = [], []
    for label, mods in LAYERS:
        names += mods
        out = subprocess.run([sys.executable, "-c", PROBE, *names], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
        rows.append((label, float(out[0]), int(out[1])))
    return rows


def table(rows: list[tuple[str, float, int]] | list[list[Any]]) -> str:
    lines = ["| layer | resident MB | added MB | modules |", "|---|---:|---:|---:|"]
    last = 0.0
    for label, rss, modules in rows:
        lines.append(f"| {label} | {rss:.1f} | {rss - last:+.1f} | {modules} |")
        last = rss
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", action="store_true", help="write bench/results/imports.json (and the README)")
    args = ap.parse_args(argv)
    rows = measure()
    print(table(rows))
    if args.record:
        from bench.record import write

        write("imports.json", {"command": "python -m bench.imports --record", "python": sys.version.split()[0],
                               "rows": [list(r) for r in rows]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
