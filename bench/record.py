"""Write a results file beside the README from a run that is not the bench itself.

    python -m bench.record sim [ARGS...]       # hotstandby sim ARGS --json      -> bench/results/sim.json
                                               #   (with --witness: bench/results/sim-witness.json)
    python -m bench.record chaos [ROWS]        # the fault lab's rows (make chaos) -> bench/results/chaos.json

Each file holds the command, the commit it ran at and the figures, so ``python -m bench.readme`` can quote
them and say where they came from. ``bench/demo_sequence.py --out`` and ``python -m bench`` write their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lab.chaosrows import load

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except OSError:
        return ""


def write(name: str, body: dict[str, Any], out: Path = RESULTS) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps({"commit": commit(), "when": time.strftime("%Y-%m-%d"), **body}, indent=1) + "\n")
    if out.resolve() == RESULTS.resolve():
        from bench import readme

        readme.main([])  # the README quotes bench/results/: keep it equal to what was just written
    return path


def record_sim(args: list[str]) -> Path:
    cmd = [sys.executable, "-m", "cli", "sim", *args, "--json"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode not in (0, 1):  # 1: an invariant was violated, which the file must say too
        raise SystemExit(f"bench.record: {' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()[-400:]}")
    name = "sim-witness.json" if "--witness" in args else "sim.json"
    return write(name, {"command": "hotstandby sim " + " ".join(args), "result": json.loads(r.stdout)})


def record_chaos(rows_path: Path) -> Path:
    rows = load(rows_path)
    if not rows:
        raise SystemExit(f"bench.record: no rows in {rows_path} (run make chaos first)")
    return write("chaos.json", {"command": "make chaos", "rows": rows})


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("sim", "chaos"):
        print(__doc__, file=sys.stderr)
        return 2
    if args[0] == "sim":
        path = record_sim(args[1:])
    else:
        path = record_chaos(Path(args[1]) if len(args) > 1 else ROOT / "run" / "chaos-rows.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
