"""The summary of a campaign (several runs, with and without the witness): JSON for tools, Markdown for people.

What the issue asks to measure, per mode: minutes run, faults injected by kind, violations found, CTI overlap
seconds in total and the longest; plus how often each bound applied and the worst time measured against it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from lab.nemesis.checker import Verdict
from lab.nemesis.faults import Kind
from lab.nemesis.history import History
from lab.nemesis.world import World

MODES = {False: "without witness", True: "with witness"}


def run_summary(h: History, v: Verdict, where: str = "") -> dict[str, Any]:
    """One run's figures, JSON-ready."""
    done = [a for a in h.applied if a.start is not None and not a.result.startswith(("skipped", "error"))]
    kinds = Counter(a.fault.kind.value for a in done)
    refusals = [a.result for a in done if a.fault.kind in (Kind.SWITCH, Kind.FORCE) and a.status == 409]
    vip_failed = sum(1 for x in h.vip if x.node is None)
    return {
        "seed": h.seed, "seconds": round(h.end, 1), "witness": h.witness, "replay": h.replay, "where": where,
        "faults": dict(sorted(kinds.items())), "skipped": sum(1 for a in h.applied if a.result.startswith("skipped")),
        "violations": [{"rule": x.rule, "at": x.at, "what": x.what} for x in v.violations],
        "overlap_total_s": round(v.overlap_total, 3), "overlap_longest_s": round(v.overlap_longest, 3),
        "overlap_episodes": v.overlap_episodes,
        "pause_overlap_total_s": round(v.pause.total, 3), "pause_overlap_longest_s": round(v.pause.longest(), 3),
        "pause_overlap_episodes": len(v.pause.spans),
        "rules": {r.rule: {"applied": r.applied, "starved": r.starved, "bound_s": r.bound,
                           "worst_s": None if r.worst is None else round(r.worst, 3), "violations": len(r.violations)}
                  for r in v.results.values()},
        "quiet_switches": len(v.results["settle"].notes),
        "unresponsive_s": round(World(h).unresponsive_any.total, 1),
        "switch_refusals": len(refusals),
        "config_writes_acked": sum(1 for w in h.writes if w.acked),
        "vip_requests": len(h.vip), "vip_failed": vip_failed,
        "bounds": h.bounds.as_dict(),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per mode: the totals over its runs."""
    out: dict[str, Any] = {}
    for witness, name in MODES.items():
        rs = [r for r in runs if r["witness"] == witness]
        if not rs:
            continue
        kinds: Counter[str] = Counter()
        rules: dict[str, dict[str, Any]] = {}
        for r in rs:
            kinds.update(r["faults"])
            for rule, x in r["rules"].items():
                agg = rules.setdefault(rule, {"applied": 0, "starved": 0, "bound_s": x["bound_s"], "worst_s": None,
                                              "violations": 0})
                agg["applied"] += x["applied"]
                agg["starved"] += x.get("starved", 0)
                agg["violations"] += x["violations"]
                if x["worst_s"] is not None:
                    agg["worst_s"] = x["worst_s"] if agg["worst_s"] is None else max(agg["worst_s"], x["worst_s"])
        out[name] = {
            "runs": len(rs), "minutes": round(sum(r["seconds"] for r in rs) / 60, 1),
            "seeds": [r["seed"] for r in rs], "faults": dict(sorted(kinds.items())),
            "faults_total": sum(v for k, v in kinds.items() if k != Kind.CONFIG.value),
            "config_writes_acked": sum(r["config_writes_acked"] for r in rs),
            "violations": [v | {"seed": r["seed"], "replay": r["replay"]} for r in rs for v in r["violations"]],
            "overlap_total_s": round(sum(r["overlap_total_s"] for r in rs), 3),
            "overlap_longest_s": max(r["overlap_longest_s"] for r in rs),
            "overlap_episodes": sum(r["overlap_episodes"] for r in rs),
            "pause_overlap_total_s": round(sum(r["pause_overlap_total_s"] for r in rs), 3),
            "pause_overlap_longest_s": max(r["pause_overlap_longest_s"] for r in rs),
            "pause_overlap_episodes": sum(r["pause_overlap_episodes"] for r in rs),
            "quiet_switches": sum(r["quiet_switches"] for r in rs),
            "unresponsive_s": round(sum(r.get("unresponsive_s", 0.0) for r in rs), 1),
            "switch_refusals": sum(r["switch_refusals"] for r in rs),
            "vip_requests": sum(r["vip_requests"] for r in rs), "vip_failed": sum(r["vip_failed"] for r in rs),
            "rules": rules,
        }
    return out


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    modes = [m for m in MODES.values() if m in summary]
    again = f"; judged again by the checker at {meta['rechecked']}" if meta.get("rechecked") else ""
    lines = [f"# Nemesis results ({meta.get('when', '')})", "",
             f"{meta.get('cores', '?')} cores, load average {meta.get('load', '?')} at the start; "
             f"commit {meta.get('commit', '?')}{again}; profile I = T = {meta.get('interval', '?')} s, N = "
             f"{meta.get('failures', '?')}; the checker's rules: lab/nemesis/README.md.", "",
             "| | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]

    def row(label: str, f: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(str(f(summary[m])) for m in modes) + " |")

    row("runs (seeds)", lambda s: f"{s['runs']} ({', '.join(map(str, s['seeds']))})")
    row("minutes of faults", lambda s: s["minutes"])
    row("faults injected (config writes apart)", lambda s: s["faults_total"])
    row("acknowledged config writes", lambda s: s["config_writes_acked"])
    row("violations", lambda s: len(s["violations"]))
    row("CTI overlap, total s", lambda s: f"{s['overlap_total_s']:.2f}")
    row("CTI overlap, longest s", lambda s: f"{s['overlap_longest_s']:.2f}")
    row("CTI overlap episodes", lambda s: s["overlap_episodes"])
    row("of which began as a frozen node was thawed: episodes, s (longest)",
        lambda s: f"{s['pause_overlap_episodes']}, {s['pause_overlap_total_s']:.2f} "
                  f"({s['pause_overlap_longest_s']:.2f})")
    row("switches in quiet periods (noted)", lambda s: s["quiet_switches"])
    row("s a running node did not answer the observer within 1 s (starved)", lambda s: s["unresponsive_s"])
    row("switches refused (409)", lambda s: s["switch_refusals"])
    row("VIP requests failed / sent", lambda s: f"{s['vip_failed']} / {s['vip_requests']}")
    lines += ["", "Faults injected, by kind:", "", "| kind | " + " | ".join(modes) + " |",
              "|---|" + "---|" * len(modes)]
    kinds = sorted({k for m in modes for k in summary[m]["faults"]}, key=lambda k: list(Kind).index(Kind(k)))
    for k in kinds:
        lines.append(f"| {k} | " + " | ".join(str(summary[m]["faults"].get(k, 0)) for m in modes) + " |")
    lines += ["", "Each rule: how often it applied / the worst measured, s / how often the machine starved the pair "
              "in its window (not judged); bounds in s, plus a margin of 2 s:", "",
              "| rule | bound s | " + " | ".join(modes) + " |", "|---|---|" + "---|" * len(modes)]
    rules = [r for r in summary[modes[0]]["rules"]]
    for rule in rules:
        bound = summary[modes[0]]["rules"][rule]["bound_s"]

        def cell(s: dict[str, Any], rule: str = rule) -> str:
            x = s["rules"].get(rule, {})
            worst = "-" if x.get("worst_s") is None else f"{x['worst_s']:.2f}"
            return f"{x.get('applied', 0)} / {worst} / {x.get('starved', 0)}" + (
                f" / **{x['violations']} violated**" if x.get("violations") else "")

        lines.append(f"| {rule} | {'-' if bound is None else f'{bound:g}'} | " +
                     " | ".join(cell(summary[m]) for m in modes) + " |")
    found = [(m, v) for m in modes for v in summary[m]["violations"]]
    if found:
        lines += ["", "Violations:", ""]
        lines += [f"- {m}, seed {v['seed']}, t = {v['at']:.2f} s, {v['rule']}: {v['what']} (replay: `{v['replay']}`)"
                  for m, v in found]
    return "\n".join(lines) + "\n"


def write(out: Path, runs: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    summary = summarize(runs)
    (out / "summary.json").write_text(json.dumps({"meta": meta, "modes": summary, "runs": runs}, indent=1) + "\n")
    (out / "summary.md").write_text(markdown(summary, meta))
    return summary
