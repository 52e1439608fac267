"""What an idle pair costs on the machine: CPU, memory and bytes on the peer link, ours beside keepalived's.

    python -m bench --only idle,memory,bytes    # these rows alone (about 9 minutes), results/resources.*

CPU is CPU time (user + system, from /proc) over a window of wall time, never wall time itself: on a
shared, loaded machine a process waits for a core, but the CPU seconds it burns are its own. Each
figure is taken ``repeats`` times, back to back, and reported as the median with every sample and
the load average at each window, so a reader can judge how noisy the machine was.

- ``idle``: the node process alone (without its CTI child) and the node with its children, both
  nodes of a pair steady behind HAProxy (its checks count: they are part of what a node serves), at
  the fast profile (I = 1 s) and the sprint profile (I = 0.1 s); keepalived at advert_int 1 and 0.1.
- ``memory``: resident (VmRSS) and proportional (PSS) set size of the node process, the larger node.
- ``bytes``: bytes on the peer link an hour at the vendor default (I = 30 s, T = 10, N = 5), both
  directions, headers included (iptables counters); keepalived's at advert_int 1.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.procs import cpu_seconds, load_average, pss_mb, rss_mb
from lab.netns import Lab

PEER = ("server1", "server2")


def idle_cpu(lab: Lab, main: Callable[[str], int], window_s: float, repeats: int) -> dict[str, Any]:
    """CPU of each node over ``repeats`` windows of ``window_s``: the node process alone (``main(node)`` is its
    pid) and with every process of its host (the CTI child); resident memory after the last window."""
    samples: list[dict[str, Any]] = []
    for _ in range(repeats):
        hosts = {n: lab.pids(n) for n in PEER}
        before = {n: (cpu_seconds([main(n)]), cpu_seconds(hosts[n])) for n in PEER}
        t0 = time.monotonic()
        time.sleep(window_s)
        took = time.monotonic() - t0
        hosts_after = {n: lab.pids(n) for n in PEER}
        sample: dict[str, Any] = {"window_s": round(took, 2), "load": round(load_average()[0], 2)}
        for n in PEER:
            # A child that exited inside the window takes its CPU with it: count the hosts' pids at both ends.
            pids = sorted(set(hosts[n]) | set(hosts_after[n]))
            sample[n] = {"node_pct": round(100 * (cpu_seconds([main(n)]) - before[n][0]) / took, 3),
                         "host_pct": round(100 * (cpu_seconds(pids) - before[n][1]) / took, 3)}
        samples.append(sample)
    out: dict[str, Any] = {"samples": samples, "repeats": repeats, "window_s": window_s}
    for n in PEER:
        out[n] = {"node_pct": _median([s[n]["node_pct"] for s in samples]),
                  "host_pct": _median([s[n]["host_pct"] for s in samples]),
                  "rss_mb": round(rss_mb([main(n)]), 1), "pss_mb": round(pss_mb([main(n)]), 1),
                  "host_rss_mb": round(rss_mb(lab.pids(n)), 1), "host_pss_mb": round(pss_mb(lab.pids(n)), 1),
                  "processes": len(lab.pids(n))}
    out["node_pct"] = max(out[n]["node_pct"] for n in PEER)  # the busier node
    out["host_pct"] = max(out[n]["host_pct"] for n in PEER)
    out["rss_mb"] = max(out[n]["rss_mb"] for n in PEER)
    out["pss_mb"] = max(out[n]["pss_mb"] for n in PEER)
    out["load"] = [s["load"] for s in samples]
    return out


def keepalived_idle(lab: Lab, pids: Callable[[str], list[int]], window_s: float, repeats: int) -> dict[str, Any]:
    """The same measure for keepalived: every keepalived process of each host (its parent and VRRP child)."""
    samples: list[dict[str, Any]] = []
    for _ in range(repeats):
        before = {n: cpu_seconds(pids(n)) for n in PEER}
        t0 = time.monotonic()
        time.sleep(window_s)
        took = time.monotonic() - t0
        sample: dict[str, Any] = {"window_s": round(took, 2), "load": round(load_average()[0], 2)}
        for n in PEER:
            sample[n] = round(100 * (cpu_seconds(pids(n)) - before[n]) / took, 3)
        samples.append(sample)
    per_node = {n: _median([s[n] for s in samples]) for n in PEER}
    return {"samples": samples, "repeats": repeats, "window_s": window_s, "cpu_pct": max(per_node.values()),
            "per_node": per_node, "rss_mb": max(round(rss_mb(pids(n)), 1) for n in PEER),
            "pss_mb": max(round(pss_mb(pids(n)), 1) for n in PEER), "load": [s["load"] for s in samples]}


def _median(xs: list[float]) -> float:
    return round(statistics.median(xs), 3)


# (figure, where ours is in results["resources"], where keepalived's is in results["keepalived"], goal, limit)
ROWS: tuple[tuple[str, str, str | None, str, float | None], ...] = (
    ("idle CPU of the node process at I = 1 s (% of a core)", "idle_cpu_pct_node_process", "idle_cpu_pct_advert_1",
     "≤ 0.5", 0.5),
    ("  with its CTI child", "idle_cpu_pct", None, "", None),
    ("idle CPU at I = 0.1 s, node and CTI simulator (% of a core)", "idle_cpu_pct_sprint", "idle_cpu_pct_advert_0.1",
     "≤ 3", 3.0),
    ("  the node process alone", "idle_cpu_pct_sprint_node_process", None, "", None),
    ("peer-link bytes an hour at the vendor default (I = 30 s)", "heartbeat_bytes_per_hour",
     "bytes_per_hour_advert_1", "≤ 100000", 100_000),
    ("resident memory of the node process (MB)", "rss_mb_node_process", "rss_mb", "≤ 60", 60.0),
    ("  PSS of the node process (MB)", "pss_mb_node_process", "pss_mb", "", None),
    ("  RSS of the node and its CTI child (MB)", "rss_mb", None, "", None),
)


def resource_table(res: dict[str, Any]) -> str:
    """The resource rows beside keepalived's (advert_int 1, or 0.1 for the sprint row), and the goals."""
    r, k = res.get("resources", {}), res.get("keepalived", {})
    head = ["resource", "ours", "keepalived", "goal", "met"]
    rows = []
    for what, ours, theirs, goal, limit in ROWS:
        v = r.get(ours)
        met = "" if limit is None else "—" if v is None else "yes" if v <= limit else "NO"
        rows.append([what, _fmt(v), _fmt(k.get(theirs)) if theirs else "—", goal, met])
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in [head, *rows]]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    m = res.get("machine", {})
    lines.append("")
    lines.append(f"keepalived: advert_int 1 s (0.1 s for the sprint row); machine: {m.get('cores')} cores, load "
                 f"average at start {m.get('load_at_start')}, at end {m.get('load_at_end')}")
    for key, label in (("idle_detail", "I = 1"), ("idle_detail_sprint", "I = 0.1")):
        d = r.get(key)
        if d and "samples" in d:  # (runs before bench/resources.py took one window)
            lines.append(f"{label}: {d.get('repeats')} windows of {d.get('window_s')} s, node process % per window "
                         + ", ".join(f"{max(s[n]['node_pct'] for n in PEER):.2f}" for s in d["samples"])
                         + f"; 1-minute load at each window {d.get('load')}")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)
