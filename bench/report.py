"""Summaries, the printed tables and ``latest.md`` from the results dictionary (``latest.json``)."""

from __future__ import annotations

import statistics
from typing import Any

from bench.resources import resource_table

LOSSES = ("10", "20", "30")
ADVERT_FOR = {"fast": "1", "aggressive": "0.2", "sprint": "0.1"}  # keepalived at matched detection settings


def summary(values: list[float | None]) -> dict[str, Any]:
    """min / median / p95 / max of the runs that produced a value (``runs``), and how many did not."""
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return {"min": None, "median": None, "p95": None, "max": None, "runs": 0, "missing": len(values)}
    p95 = xs[min(len(xs) - 1, max(0, round(0.95 * (len(xs) - 1))))] if len(xs) > 1 else xs[0]
    return {"min": round(xs[0], 3), "median": round(statistics.median(xs), 3), "p95": round(p95, 3),
            "max": round(xs[-1], 3), "runs": len(xs), "missing": len(values) - len(xs)}


def _s(v: Any, unit: str = "") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}{unit}" if abs(v) < 10 else f"{v:.1f}{unit}"
    return f"{v}{unit}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def _dist(d: dict[str, Any] | None) -> list[str]:
    d = d or {}
    return [_s(d.get("min")), _s(d.get("median")), _s(d.get("p95")), _s(d.get("max")), _s(d.get("runs"))]


def _ratio(a: Any, b: Any) -> str:
    return f"{a / b:.2f}" if isinstance(a, int | float) and isinstance(b, int | float) and b else "—"


def tables(res: dict[str, Any]) -> str:
    out: list[str] = []
    m = res.get("machine", {})
    out.append(f"machine: {m.get('cores')} cores, load average at start {m.get('load_at_start')}, "
               f"at end {m.get('load_at_end')}; {m.get('keepalived')}; {m.get('haproxy')}")
    out.append(f"mode: {res.get('mode')} — {res.get('notes', '')}")
    out.append("")
    out.append("Failover after kill -9 of the ACTIVE node (seconds from the kill; min / median / p95 / max, runs)")
    rows = []
    for name, p in res.get("profiles", {}).items():
        label = p.get("label", name)
        for key, what in (("death_to_active_s", "death → ACTIVE"), ("death_to_cti_s", "death → CTI registered"),
                          ("death_to_vip_s", "death → VIP on new ACTIVE"),
                          ("promotion_to_vip_s", "promotion → VIP"), ("promotion_to_cti_s", "promotion → CTI"),
                          ("promotion_to_cti_spawned_s", "  promotion → CTI child spawned"),
                          ("cti_spawned_to_registered_s", "  CTI spawned → registered"),
                          ("death_to_first_failure_s", "death → first failed probe")):
            rows.append([label, what, *_dist(p.get(key))])
    for adv, k in res.get("keepalived", {}).items():
        if isinstance(k, dict) and "death_to_master_s" in k:
            rows.append([f"keepalived advert_int {adv}", "death → MASTER (VIP added)", *_dist(k["death_to_master_s"])])
            rows.append([f"keepalived advert_int {adv}", "  VIP seen by the bench (ip addr)",
                         *_dist(k.get("death_to_vip_seen_s"))])
    out.append(_table(["profile", "figure", "min", "median", "p95", "max", "runs"], rows))
    out.append("")
    out.append("Ours / keepalived at matched detection settings (median death → ACTIVE / death → MASTER)")
    rows = []
    for name, adv in ADVERT_FOR.items():
        ours = res.get("profiles", {}).get(name, {}).get("death_to_active_s", {}).get("median")
        cti = res.get("profiles", {}).get(name, {}).get("death_to_cti_s", {}).get("median")
        ka = res.get("keepalived", {}).get(adv, {}).get("death_to_master_s", {}).get("median")
        rows.append([name, adv, _s(ours), _s(cti), _s(ka), _ratio(ours, ka), _ratio(cti, ka)])
    out.append(_table(["profile", "advert_int", "ours → ACTIVE", "ours → CTI", "keepalived → MASTER",
                       "ratio ACTIVE", "ratio CTI"], rows))
    out.append("")
    v = res.get("vendor_default", {})
    if v:
        out.append(f"Vendor default ({v.get('label')}): computed detection N·I+T = {_s(v.get('detection_s'))} s, "
                   f"R1 bound N·I+T+I = {_s(v.get('r1_bound_s'))} s, expected failover delay (product formula, "
                   f"0 ports) = {_s(v.get('expected_failover_delay_s'))} s, kill -9 model median "
                   f"{_s(v.get('model_kill9_median_s'))} s [{_s(v.get('model_kill9_min_s'))}, "
                   f"{_s(v.get('model_kill9_max_s'))}]; measured once: {_s(v.get('measured_death_to_active_s'))}")
        out.append("  model check on the measured profiles (median measured / model): " + ", ".join(
            f"{n} {_s(c.get('measured_median_s'))}/{_s(c.get('model_median_s'))}"
            for n, c in v.get("model_check", {}).items()))
        out.append("")
    sw = res.get("switchover", {})
    if sw:
        out.append(f"Planned switchover (R7), {sw.get('profile')}, client at {sw.get('rate_per_s')} req/s through "
                   f"HAProxy, {sw.get('switches')} switches")
        rows = [[n, _s(s.get("failed_requests")), _s(s.get("requests")), _s(s.get("max_gap_s")),
                 _s(s.get("median_vip_s"))] for n, s in sw.get("by_profile", {}).items()]
        out.append(_table(["profile", "failed requests", "requests", "longest gap s", "median request → VIP s"],
                          rows))
        out.append("")
    out.append(f"False switches under random loss on the peer link ({res.get('loss_window_s')} s a window; "
               "takeovers: a node becoming ACTIVE/MASTER while nobody died)")
    rows = []
    for name, p in res.get("profiles", {}).items():
        fs = p.get("false_switches", {})
        rows.append([p.get("label", name), *[_s(fs.get(x)) for x in LOSSES],
                     _s(p.get("role_changes_under_loss"))])
    for adv, k in res.get("keepalived", {}).items():
        if isinstance(k, dict) and "false_switches" in k:
            fs = k["false_switches"]
            rows.append([f"keepalived advert_int {adv}", *[_s(fs.get(x)) for x in LOSSES], "—"])
    out.append(_table(["profile", "10 %", "20 %", "30 %", "all role changes"], rows))
    out.append("")
    out.append("Resources (an idle pair; bench/resources.py)")
    out.append(resource_table(res))
    goals = res.get("goals", [])
    if goals:
        out.append("")
        out.append("Goals of issue 6")
        out.append(_table(["goal", "measured", "met"], [[g["goal"], g["measured"], g["met"]] for g in goals]))
    return "\n".join(out)


def goals(res: dict[str, Any]) -> list[dict[str, str]]:
    """The issue's goals against this run's figures."""
    p = res.get("profiles", {})

    def med(profile: str, key: str) -> float | None:
        return p.get(profile, {}).get(key, {}).get("median")

    def fs(profile: str, level: str) -> Any:
        return p.get(profile, {}).get("false_switches", {}).get(level)

    rows: list[tuple[str, Any, Any]] = [
        ("aggressive: median death → ACTIVE ≤ 0.8 s", med("aggressive", "death_to_active_s"),
         lambda v: v <= 0.8),
        ("aggressive: median death → CTI ≤ 1.0 s", med("aggressive", "death_to_cti_s"), lambda v: v <= 1.0),
        ("aggressive: VIP ≤ 0.5 s after promotion (p95)",
         p.get("aggressive", {}).get("promotion_to_vip_s", {}).get("p95"), lambda v: v <= 0.5),
        ("switchover: 0 failed requests", res.get("switchover", {}).get("failed_requests"), lambda v: v == 0),
        ("switchover: longest gap ≤ 0.5 s", res.get("switchover", {}).get("max_gap_s"), lambda v: v <= 0.5),
        ("aggressive: 0 false switches at 20 % loss", fs("aggressive", "20"), lambda v: v == 0),
        ("sprint: median death → ACTIVE ≤ 0.5 s", med("sprint", "death_to_active_s"), lambda v: v <= 0.5),
        ("sprint: 0 false switches at 20 % loss", fs("sprint", "20"), lambda v: v == 0),
        ("RSS ≤ 100 MB", res.get("resources", {}).get("rss_mb"), lambda v: v <= 100),
        ("idle CPU ≤ 1 % of a core at I=1", res.get("resources", {}).get("idle_cpu_pct"), lambda v: v <= 1),
        ("≤ 120 kB/hour on the peer link", res.get("resources", {}).get("heartbeat_bytes_per_hour"),
         lambda v: v <= 120000),
    ]
    out = []
    for goal, value, ok in rows:
        met = "—" if value is None else ("yes" if ok(value) else "NO")
        out.append({"goal": goal, "measured": _s(value), "met": met})
    return out
