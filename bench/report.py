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


def ratio(a: Any, b: Any) -> float | None:
    """a / b, or None (no data) when either is missing."""
    return round(a / b, 2) if isinstance(a, int | float) and isinstance(b, int | float) and b else None


def _ratio(a: Any, b: Any) -> str:
    r = ratio(a, b)
    return "—" if r is None else f"{r:.2f}"


def med(d: dict[str, Any] | None, *path: str) -> Any:
    """``d[path...]["median"]``, or None wherever something is missing."""
    for key in path:
        d = d.get(key) if isinstance(d, dict) else None
    return d.get("median") if isinstance(d, dict) else None


def client_visible(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per matched setting: death → the VIP answers from the new node (median, through our HAProxy as the
    checks move it and as the arbiters tell it, and through keepalived's VIP, the same client at the same
    pace), and death → CTI registered (cold, warm) against keepalived's death → MASTER. Ratios are ours /
    keepalived's (below 1: we are faster); None where either side has no data."""
    out = {}
    for name, adv in ADVERT_FOR.items():
        p, k = res.get("profiles", {}).get(name, {}), res.get("keepalived", {}).get(adv, {})
        row = {"advert_int": adv, "ours_vip_checks_s": med(p, "death_to_vip_s"),
               "ours_vip_api_s": med(p, "death_to_vip_api_s"), "keepalived_vip_s": med(k, "death_to_vip_s"),
               "ours_cti_cold_s": med(p, "death_to_cti_s"), "ours_cti_warm_s": med(p, "warm", "death_to_cti_s"),
               "keepalived_master_s": med(k, "death_to_master_s")}
        row |= {"ratio_vip_checks": ratio(row["ours_vip_checks_s"], row["keepalived_vip_s"]),
                "ratio_vip_api": ratio(row["ours_vip_api_s"], row["keepalived_vip_s"]),
                "ratio_cti_cold": ratio(row["ours_cti_cold_s"], row["keepalived_master_s"]),
                "ratio_cti_warm": ratio(row["ours_cti_warm_s"], row["keepalived_master_s"])}
        out[name] = row
    return out


def tables(res: dict[str, Any]) -> str:
    out: list[str] = []
    m = res.get("machine", {})
    out.append(f"machine: {m.get('cores')} cores, load average at start {m.get('load_at_start')}, "
               f"at end {m.get('load_at_end')}; {m.get('keepalived')}; {m.get('haproxy')}; commit {m.get('commit')}")
    out.append(f"mode: {res.get('mode')} — {res.get('notes', '')}")
    out.append("")
    cv = res.get("client_visible") or client_visible(res)
    out.append("What a client sees: kill -9 → the VIP answers from the new node (median s; the same client, a new "
               "request every 20 ms, open loop), ours through HAProxy / keepalived's VIP at the matched advert_int")
    out.append(_table(["profile", "advert_int", "ours, checks only", "ours, arbiters tell HAProxy",
                       "keepalived VIP", "ratio checks", "ratio told"],
                      [[n, r["advert_int"], _s(r["ours_vip_checks_s"]), _s(r["ours_vip_api_s"]),
                        _s(r["keepalived_vip_s"]), _s(r["ratio_vip_checks"]), _s(r["ratio_vip_api"])]
                       for n, r in cv.items()]))
    out.append("")
    out.append("CTI ready: kill -9 → CTI registered at the manager (median s), ours cold (started on promotion) "
               "and warm (HS_CTI_MODE=warm) / keepalived's death → MASTER")
    out.append(_table(["profile", "advert_int", "ours cold", "ours warm", "keepalived → MASTER", "ratio cold",
                       "ratio warm"],
                      [[n, r["advert_int"], _s(r["ours_cti_cold_s"]), _s(r["ours_cti_warm_s"]),
                        _s(r["keepalived_master_s"]), _s(r["ratio_cti_cold"]), _s(r["ratio_cti_warm"])]
                       for n, r in cv.items()]))
    out.append("")
    out.append("Failover after kill -9 of the ACTIVE node (seconds from the kill; min / median / p95 / max, runs)")
    rows = []
    for name, p in res.get("profiles", {}).items():
        label = p.get("label", name)
        for key, what in (("death_to_active_s", "death → ACTIVE"), ("death_to_cti_s", "death → CTI registered"),
                          ("death_to_vip_s", "death → VIP, checks only"),
                          ("death_to_vip_api_s", "death → VIP, arbiters tell HAProxy"),
                          ("promotion_to_vip_s", "promotion → VIP, checks only"),
                          ("promotion_to_vip_api_s", "promotion → VIP, told"),
                          ("promotion_to_cti_s", "promotion → CTI"),
                          ("promotion_to_cti_spawned_s", "  promotion → CTI child spawned"),
                          ("cti_spawned_to_registered_s", "  CTI spawned → registered"),
                          ("death_to_first_failure_s", "death → first failed probe"),
                          ("kill_phase_s", "  random phase before the kill")):
            if key in p:
                rows.append([label, what, *_dist(p.get(key))])
        w = p.get("warm") or {}
        for key, what in (("death_to_active_s", "warm CTI: death → ACTIVE"),
                          ("death_to_cti_s", "warm CTI: death → CTI registered"),
                          ("promotion_to_cti_s", "warm CTI: promotion → CTI")):
            if key in w:
                rows.append([label, what, *_dist(w.get(key))])
    for adv, k in res.get("keepalived", {}).items():
        if isinstance(k, dict) and "death_to_master_s" in k:
            rows.append([f"keepalived advert_int {adv}", "death → MASTER (VIP added)", *_dist(k["death_to_master_s"])])
            rows.append([f"keepalived advert_int {adv}", "  VIP seen by the bench (ip addr)",
                         *_dist(k.get("death_to_vip_seen_s"))])
            rows.append([f"keepalived advert_int {adv}", "death → VIP answers (client)",
                         *_dist(k.get("death_to_vip_s"))])
    out.append(_table(["profile", "figure", "min", "median", "p95", "max", "runs"], rows))
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
    rows = []
    for name, p in res.get("profiles", {}).items():
        for lb, what in (("checks", "checks only"), ("api", "arbiters tell HAProxy")):
            s = (p.get("switchover") or {}).get(lb)
            if s:
                rows.append([name, what, _s(s.get("failed_requests")), _s(s.get("requests")), _s(s.get("max_gap_s")),
                             _s(s.get("median_vip_s"))])
    if rows:
        out.append("Planned switchover (R7): a client at 50 req/s through each HAProxy, 3 switches a profile")
        out.append(_table(["profile", "load balancer", "failed requests", "requests", "longest gap s",
                           "median request → VIP s"], rows))
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
        out.append("Goals of issue 15")
        out.append(_table(["goal", "measured", "met"], [[g["goal"], g["measured"], g["met"]] for g in goals]))
    return "\n".join(out)


def goals(res: dict[str, Any]) -> list[dict[str, str]]:
    """The issue's goals against this run's figures; a figure without data is "no data", never met."""
    p = res.get("profiles", {})
    r = res.get("resources", {})
    cv = res.get("client_visible") or client_visible(res)

    def fs(profile: str, level: str) -> Any:
        return p.get(profile, {}).get("false_switches", {}).get(level)

    rows: list[tuple[str, Any, Any]] = [
        ("idle CPU of the node process at I = 1 s ≤ 0.5 %", r.get("idle_cpu_pct_node_process"), lambda v: v <= 0.5),
        ("idle CPU at sprint, node and CTI simulator ≤ 3 %", r.get("idle_cpu_pct_sprint"), lambda v: v <= 3),
        ("peer link bytes an hour at I = 30 s ≤ 100 kB", r.get("heartbeat_bytes_per_hour"), lambda v: v <= 100_000),
        ("resident memory of the node process ≤ 60 MB", r.get("rss_mb_node_process"), lambda v: v <= 60),
        ("planned switchovers (aggressive, 50 req/s), arbiters tell HAProxy: 0 failed requests",
         res.get("switchover", {}).get("api", {}).get("failed_requests"), lambda v: v == 0),
        ("sprint: promotion → VIP p95 ≤ 0.05 s (arbiters tell HAProxy)",
         p.get("sprint", {}).get("promotion_to_vip_api_s", {}).get("p95"), lambda v: v <= 0.05),
    ]
    for name in ADVERT_FOR:
        rows.append((f"{name}: death → VIP median, ours told / keepalived's VIP ≤ 0.8",
                     cv.get(name, {}).get("ratio_vip_api"), lambda v: v <= 0.8))
    for name in ADVERT_FOR:
        rows.append((f"{name}: death → CTI registered (warm) ≤ keepalived's death → MASTER",
                     cv.get(name, {}).get("ratio_cti_warm"), lambda v: v <= 1.0))
    for name in ADVERT_FOR:
        rows.append((f"{name}: 0 false switches at 20 % loss", fs(name, "20"), lambda v: v == 0))
    rows.append(("sprint: median death → ACTIVE ≤ 0.30 s", med(p.get("sprint"), "death_to_active_s"),
                 lambda v: v <= 0.30))
    out = []
    for goal, value, ok in rows:
        met = "no data" if value is None else ("yes" if ok(value) else "NO")
        out.append({"goal": goal, "measured": _s(value), "met": met})
    return out
