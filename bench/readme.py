"""The README's measured figures, generated from the results files committed beside it.

    python -m bench.readme            # rewrite README.md's generated sections from bench/results/
    python -m bench.readme --check    # exit 1 when README.md differs from what the files say

A generated section sits between ``<!-- BEGIN results:NAME -->`` and ``<!-- END results:NAME -->``; the
text between is replaced, the rest of the README is left alone. Every section says which file (and which
commit and command) its figures come from. A file that is missing, or a figure it does not hold, reads
"no data": never a zero, never a figure from memory.

| section | file | written by |
|---|---|---|
| demo | demo.json | ``bench/demo_sequence.py --runs 3 --out bench/results/demo.json`` (``make run``'s pair) |
| hold | latest.json | ``make bench`` |
| sim | sim.json, sim-witness.json | ``python -m bench.record sim --seed 0 --runs N [--witness]`` |
| chaos, witness | chaos.json | ``make chaos``, then ``python -m bench.record chaos`` |
| bench | latest.json | ``make bench`` (``python -m bench``) |
| issue15 | before.json, latest.json | ``make bench`` on main before issue 15, and after |
| imports | imports.json | ``python -m bench.imports --record`` |
| compose | deploy/compose/results/latest.md | ``make compose-test`` |
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.compare import _get
from bench.compare import table as before_after
from bench.report import ADVERT_FOR, _s, _table, client_visible, med
from lab.chaosrows import summarise

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
COMPOSE_RESULTS = ROOT / "deploy" / "compose" / "results"
README = ROOT / "README.md"
SECTION = re.compile(r"(<!-- BEGIN results:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- END results:(?P=name) -->)",
                     re.S)
NO_DATA = "no data"


def load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / name
    return json.loads(path.read_text()) if path.exists() else None


def source(name: str, data: dict[str, Any] | None) -> str:
    if data is None:
        return f"_No results file yet: `bench/results/{name}` is missing, so there are no figures here._"
    commit = data.get("commit") or data.get("machine", {}).get("commit") or "?"
    when = f", {data['when']}" if data.get("when") else ""
    return f"_From `bench/results/{name}` (commit {commit}{when}: `{data.get('command', '?')}`)._"


def n(v: Any, fmt: str = "{:.2f}", unit: str = "") -> str:
    return NO_DATA if v is None else fmt.format(v) + unit


# -- the sections ------------------------------------------------------------------------------
def demo(results: Path) -> str:
    data = load(results, "demo.json")
    rows = [[str(i), n(r.get("death_to_active"), unit=" s"), n(r.get("active_to_vip"), unit=" s"),
             n(r.get("active_to_cti"), unit=" s"), n(r.get("overlap_s"), unit=" s"),
             n(r.get("serving_to_active"), unit=" s")]
            for i, r in enumerate((data or {}).get("runs", []), start=1)]
    head = ["run", "kill -9 → server2 ACTIVE (bound 5 s)", "→ VIP on server2 (bound 2 s)", "→ CTI registered",
            "overlap", "server1 serving → ACTIVE again (bound 4 s)"]
    return "\n".join([source("demo.json", data), "", _table(head, rows or [[NO_DATA] * len(head)])])


def hold(results: Path) -> str:
    data = load(results, "latest.json")
    sw = (data or {}).get("switchover", {})
    parts = []
    for lb, how in (("checks", "with the health checks alone"), ("api", "with the arbiters telling HAProxy")):
        s = sw.get(lb) or {}
        parts.append(f"{how}, {n(s.get('failed_requests'), '{}')} failed requests of {n(s.get('requests'), '{}')}, "
                     f"longest gap {n(s.get('max_gap_s'), unit=' s')}")
    return (f"Measured at the aggressive profile, a client at 50 req/s through HAProxy over "
            f"{n(sw.get('checks', {}).get('switches'), '{}')} switchovers: " + "; ".join(parts) + ". "
            + source("latest.json", data))


def sim(results: Path) -> str:
    return "\n\n".join(_sim_run(results, name, how) for name, how in (
        ("sim.json", "Without a witness"), ("sim-witness.json", "With an etcd witness (SPEC 12)")))


def _sim_run(results: Path, name: str, how: str) -> str:
    data = load(results, name)
    r = (data or {}).get("result", {})
    violations = r.get("violations")
    return (f"{how}: {n(r.get('ticks') and r['ticks'] / 1e6, '{:.1f}', ' million')} ticks "
            f"({n(r.get('simulated_seconds') and r['simulated_seconds'] / 3600, '{:,.0f}')} simulated hours) over "
            f"{n(r.get('runs'), '{:,}')} seeded runs, {n(violations and sum(violations.values()), '{}')} violations "
            f"of {n(violations and len(violations), '{}')} invariants, "
            f"{n(r.get('ticks_per_second') and r['ticks_per_second'] * 60 / 1e6, '{:.2f}', ' million')} ticks a "
            f"minute on this 2-core machine. " + source(name, data))


def _rows(results: Path, witness: bool) -> tuple[dict[str, Any] | None, list[tuple[str, ...]]]:
    data = load(results, "chaos.json")
    rows = [r for r in (data or {}).get("rows", []) if r["fault"].startswith("witness:") == witness]
    return data, summarise(rows)


def chaos(results: Path) -> str:
    data, rows = _rows(results, witness=False)
    head = ["fault", "runs", "bound s", "worst s", "overlap s", "lost changes", "pass"]
    return "\n".join([source("chaos.json", data), "", _table(head, [list(r) for r in rows] or [[NO_DATA] * 7])])


def witness(results: Path) -> str:
    data, rows = _rows(results, witness=True)
    lines = [f"- {r[0].removeprefix('witness: ')}: worst {r[3]} s (bound {r[2]} s), CTI overlap {r[4]} s, "
             f"passed: {r[6]}" for r in rows] or [f"- {NO_DATA}"]
    return "\n".join([source("chaos.json", data), "", *lines])


def bench(results: Path) -> str:
    data = load(results, "latest.json")
    if data is None:
        return source("latest.json", None)
    m, p, k = data.get("machine", {}), data.get("profiles", {}), data.get("keepalived", {})
    cv = data.get("client_visible") or client_visible(data)
    out = [source("latest.json", data) + f" {m.get('cores')} cores, load {(m.get('load_at_start') or ['?'])[0]} "
           f"at the start, {n(data.get('duration_s'), '{:.0f}', ' s')}, seed {data.get('seed', '?')}.", ""]
    out.append("What a client sees, the comparison that matters: kill -9 → the VIP answers from the new node "
               "(median of the kills, s), ours through HAProxy, keepalived's through its VIP, the same client "
               "(a new request every 20 ms, open loop) at the matched advert_int; ratio below 1: we are faster.")
    out.append("")
    out.append(_table(["profile", "advert_int", "ours, checks only", "ours, arbiters tell HAProxy", "keepalived",
                       "ratio, checks", "ratio, told"],
                      [[name, r["advert_int"], _s(r["ours_vip_checks_s"]), _s(r["ours_vip_api_s"]),
                        _s(r["keepalived_vip_s"]), _s(r["ratio_vip_checks"]), _s(r["ratio_vip_api"])]
                       for name, r in cv.items()]))
    out.append("")

    def dist(stat: str, *path: str) -> list[str]:
        return [_s((_get(p.get(name), *path) or {}).get(stat)) for name in ADVERT_FOR]

    def ka(key: str) -> list[str]:
        return [_s(med(k.get(adv), key)) for adv in ADVERT_FOR.values()]

    def fs(src: dict[str, Any], names: list[str]) -> list[str]:
        return [" / ".join(_s((src.get(x) or {}).get("false_switches", {}).get(lvl)) for lvl in ("10", "20", "30"))
                for x in names]

    def sw(lb: str) -> list[str]:
        return [f"{_s((p.get(x, {}).get('switchover') or {}).get(lb, {}).get('failed_requests'))} / "
                f"{_s((p.get(x, {}).get('switchover') or {}).get(lb, {}).get('requests'))}" for x in ADVERT_FOR]

    rows = [
        ["death → ACTIVE", *dist("median", "death_to_active_s")],
        ["death → CTI registered, cold (started on promotion)", *dist("median", "death_to_cti_s")],
        ["death → CTI registered, warm (HS_CTI_MODE=warm)", *dist("median", "warm", "death_to_cti_s")],
        ["death → VIP answers, checks only", *dist("median", "death_to_vip_s")],
        ["death → VIP answers, arbiters tell HAProxy", *dist("median", "death_to_vip_api_s")],
        ["promotion → VIP (p95), checks only", *dist("p95", "promotion_to_vip_s")],
        ["promotion → VIP (p95), arbiters tell HAProxy", *dist("p95", "promotion_to_vip_api_s")],
        ["keepalived: death → MASTER (VIP added)", *ka("death_to_master_s")],
        ["keepalived: death → VIP answers (client)", *ka("death_to_vip_s")],
        ["false switches at 10 / 20 / 30 % loss", *fs(p, list(ADVERT_FOR))],
        ["keepalived false switches at 10 / 20 / 30 %", *fs(k, list(ADVERT_FOR.values()))],
        ["planned switchovers, failed / requests, checks only", *sw("checks")],
        ["planned switchovers, failed / requests, told", *sw("api")],
    ]
    head = ["kill -9 of the ACTIVE (median s, random phase)", *[p.get(x, {}).get("label", x) for x in ADVERT_FOR]]
    out.append(_table(head, rows))
    r = data.get("resources", {})
    out += ["", f"Resources: {n(r.get('rss_mb'), '{:.1f}', ' MB')} resident for a node and its CTI simulator "
            f"(the node process alone {n(r.get('rss_mb_node_process'), '{:.1f}', ' MB')}; keepalived "
            f"{n(k.get('rss_mb'), '{:.1f}', ' MB')}), {n(r.get('idle_cpu_pct'), '{:.2f}', ' %')} of a core idle at "
            f"I = 1 (the node process {n(r.get('idle_cpu_pct_node_process'), '{:.2f}', ' %')}), "
            f"{n(r.get('heartbeat_bytes_per_hour'), '{:,}')} bytes an hour on the peer link at the vendor default "
            f"profile (keepalived {n(k.get('bytes_per_hour_advert_1'), '{:,}')} at a 1 s advert)."]
    return "\n".join(out)


def issue15(results: Path) -> str:
    before, after = load(results, "before.json"), load(results, "latest.json")
    if after is None:
        return source("latest.json", None)
    return "\n".join([source("before.json", before), source("latest.json", after), "",
                      before_after(before or {}, after)])


def imports(results: Path) -> str:
    from bench.imports import table

    data = load(results, "imports.json")
    return "\n".join([source("imports.json", data), "", table(data["rows"])]) if data else source("imports.json", None)


def nemesis(results: Path) -> str:
    """``make nemesis``'s published summary (lab/nemesis/cli.py --results), as it wrote it, and its charts."""
    summary = results / "nemesis" / "summary.md"
    if not summary.exists():
        return "_No results file yet: `bench/results/nemesis/summary.md` is missing, so there are no figures here._"
    charts = sorted((results / "nemesis").glob("timeline-*.png"))
    links = [f"![nemesis timeline, {c.stem.removeprefix('timeline-')}](bench/results/nemesis/{c.name})" for c in charts]
    return "\n".join([summary.read_text().rstrip(), "", *links])


def compose(results: Path) -> str:
    """``make compose-test``'s table as it wrote it (tests/deploy/test_compose_stack.py): its steps, bounds, images."""
    table = COMPOSE_RESULTS / "latest.md"
    if not table.exists():
        return "_No results file yet: `deploy/compose/results/latest.md` is missing, so there are no figures here._"
    return f"_From `deploy/compose/results/latest.md`:_ {table.read_text().strip()}"


SECTIONS: dict[str, Callable[[Path], str]] = {"demo": demo, "hold": hold, "sim": sim, "chaos": chaos,
                                               "witness": witness, "bench": bench, "issue15": issue15,
                                               "imports": imports, "nemesis": nemesis, "compose": compose}


def render(text: str, results: Path = RESULTS) -> str:
    """``text`` with every generated section rewritten from ``results``; an unknown name is an error."""
    def section(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in SECTIONS:
            raise KeyError(f"README section results:{name} has no generator (known: {', '.join(SECTIONS)})")
        return f"{m.group(1)}{SECTIONS[name](results).rstrip()}\n{m.group(4)}"

    return SECTION.sub(section, text)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = README.read_text()
    new = render(text)
    if "--check" in args:
        if new != text:
            print("README.md differs from bench/results/: run python -m bench.readme", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    print(f"rewrote {len(SECTION.findall(new))} generated sections of {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
