"""Where an idle node's CPU goes: py-spy on both nodes of a pair steady behind HAProxy, in the fault lab.

    python -m bench.profile_idle [--seconds 60] [--interval 1] [--out bench/results/profile]

Writes, for the ACTIVE and the STANDBY node: a flame graph (``<name>-<role>.svg``), py-spy's raw
collapsed stacks (``.txt``) and a top table (``<name>-<role>.md``: the functions where the samples
were, own and total, like ``py-spy top``). py-spy samples only threads that are running, so the
table is where the CPU went, not where the node waited. Needs py-spy (``pip install py-spy``).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pair import PROFILES, BenchPair, Profile  # noqa: E402
from lab import netns  # noqa: E402

FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def short(frame: str) -> str:
    """``fn (path/to/site-packages/pkg/mod.py:12)`` as ``fn (pkg/mod.py)``."""
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('fn')} ({path})"


def top_table(raw: str, limit: int = 40) -> tuple[int, str]:
    """(samples, a markdown table of the busiest functions: own and total samples, as py-spy top shows)."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    by_module: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [short(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        own[frames[-1]] += n
        by_module[frames[-1].rsplit("(", 1)[-1].split("/")[0].rstrip(")")] += n
        for f in set(frames):
            total[f] += n
    rows = ["| own % | total % | function |", "|---:|---:|---|"]
    for fn, n in own.most_common(limit):
        rows.append(f"| {100 * n / samples:.1f} | {100 * total[fn] / samples:.1f} | `{fn}` |")
    rows += ["", "Own samples by top-level package (where the leaf frame was):", "",
             "| package | own % |", "|---|---:|"]
    for mod, n in by_module.most_common(15):
        rows.append(f"| {mod} | {100 * n / samples:.1f} |")
    rows += ["", "Busiest call paths through our code (total %):", "", "| total % | function |", "|---:|---|"]
    ours = [(fn, n) for fn, n in total.most_common() if any(p in fn for p in ("services/", "hotstandby/"))]
    for fn, n in ours[:25]:
        rows.append(f"| {100 * n / samples:.1f} | `{fn}` |")
    return samples, "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile_idle", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--profile", default="fast", choices=list(PROFILES))
    ap.add_argument("--rate", type=int, default=200, help="samples a second (py-spy -r)")
    ap.add_argument("--name", default="idle", help="file name prefix, e.g. before / after")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "profile")
    args = ap.parse_args(argv)
    why = netns.unavailable()
    if why:
        print(f"profile_idle: {why}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    profile: Profile = PROFILES[args.profile]
    with netns.lab_run() as lab:
        bp = BenchPair(lab, lab.base / "profile", profile)
        try:
            bp.start()
            bp.steady()
            roles = {bp.active: "active", "server2" if bp.active == "server1" else "server1": "standby"}
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            procs = []
            for node, role in roles.items():
                out = args.out / f"{args.name}-{role}"
                # Two samplers side by side (raw stacks for the table, the flame graph): --nonblocking reads
                # the node's memory without stopping it, so the node pays nothing for either.
                for fmt, suffix in (("raw", ".txt"), ("flamegraph", ".svg")):
                    # Inside the node's namespace: py-spy hangs reading a process that `ip netns exec` started
                    # in a mount namespace of its own when run from outside it.
                    procs.append((role, out, subprocess.Popen(
                        [*lab.exec_prefix(node), spy, "record", "-p", str(bp.pair.nodes[node].pid),
                         "-d", str(int(args.seconds)), "-r", str(args.rate), "--nonblocking", "-f", fmt,
                         "-o", str(out.with_suffix(suffix))],
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
            for role, out, proc in procs:
                _, err = proc.communicate(timeout=4 * args.seconds + 300)  # py-spy runs late on a loaded machine
                if proc.returncode != 0:
                    print(f"py-spy failed on the {role} node: {err.decode()[-500:]}", file=sys.stderr)
                    return 1
                if proc.args[proc.args.index("-f") + 1] != "raw":
                    continue
                raw = out.with_suffix(".txt").read_text()
                samples, table = top_table(raw)
                head = (f"# py-spy, {args.name}, the {role} node, {profile.label()}, {args.seconds:g} s at "
                        f"{args.rate} Hz: {samples} samples while running ({samples / args.rate:.2f} s of CPU "
                        f"in Python threads, {100 * samples / args.rate / args.seconds:.2f} % of a core)\n\n")
                out.with_suffix(".md").write_text(head + table + "\n")
                print(head + table.split("\n\nOwn samples")[0][:3000])
        finally:
            bp.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
