"""The timeline of a run as a PNG: faults (overlapping ones in lanes), both nodes' roles, who held CTI (two at
once in red), where the VIP sent requests, and every violation."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from lab.nemesis.checker import Verdict
from lab.nemesis.faults import NODES, Kind
from lab.nemesis.history import History
from lab.nemesis.world import World

COLOR = {
    Kind.KILL: "#d62728", Kind.TERM: "#ff7f0e", Kind.FREEZE: "#8c564b", Kind.PARTITION: "#1f77b4",
    Kind.ONEWAY: "#17becf", Kind.LOSS: "#9edae5", Kind.CLOCK: "#9467bd", Kind.DISK: "#7f7f7f",
    Kind.MAINTENANCE: "#bcbd22", Kind.SWITCH: "#2ca02c", Kind.FORCE: "#98df8a", Kind.CTI_CRASH: "#e377c2",
}
ROLE_COLOR = {"ACTIVE": "#2ca02c", "STANDBY": "#c7c7c7"}


def draw(h: History, verdict: Verdict, path: Path) -> Path:
    w = World(h)
    faults = [a for a in w.applied if a.fault.kind is not Kind.CONFIG]
    lanes: list[float] = []  # each lane's end
    placed = []
    for a in sorted(faults, key=lambda x: w.loose(x)[0]):
        lo, hi = w.loose(a)
        hi = max(hi, lo + 0.4)
        lane = next((i for i, end in enumerate(lanes) if end <= lo), None)
        if lane is None:
            lanes.append(hi)
            lane = len(lanes) - 1
        lanes[lane] = hi
        placed.append((lane, lo, hi, a))
    n_lanes = max(1, len(lanes))
    fig, (ax_f, ax_r) = plt.subplots(2, 1, figsize=(min(40, max(14, h.end / 8)), 3 + 0.28 * n_lanes + 3.2),
                                     sharex=True, gridspec_kw={"height_ratios": [0.4 + 0.28 * n_lanes, 3.2]})
    for lane, lo, hi, a in placed:
        y = n_lanes - lane
        ax_f.barh(y, hi - lo, left=lo, height=0.8, color=COLOR[a.fault.kind], edgecolor="black", linewidth=0.3)
        words = a.fault.describe() + (f" ({a.node})" if a.fault.node in ("active", "standby") and a.node else "")
        if hi - lo > 4:
            ax_f.text(lo + 0.1, y, words, va="center", fontsize=6, clip_on=True)
    ax_f.set_yticks([])
    ax_f.set_ylabel("faults")
    used = sorted({a.fault.kind for a in faults}, key=lambda k: list(Kind).index(k))
    ax_f.legend(handles=[Patch(color=COLOR[k], label=k.value) for k in used], fontsize=7, ncol=min(6, len(used) or 1),
                loc="upper left", bbox_to_anchor=(0, 1.0 + 1.2 / (2 + n_lanes)), frameon=False)

    rows = {"server1 role": 5, "server2 role": 4, "server1 CTI": 3, "server2 CTI": 2, "VIP": 1}
    for node in NODES:
        y = rows[f"{node} role"]
        for role, color in ROLE_COLOR.items():
            spans = [(lo, hi - lo) for lo, hi in w.spans(node, role)]
            ax_r.broken_barh(spans, (y - 0.35, 0.7), color=color)
    holdings = w.holdings()
    for node in NODES:
        spans = [(lo, hi - lo) for lo, hi in holdings.get(node, [])]
        ax_r.broken_barh(spans, (rows[f"{node} CTI"] - 0.3, 0.6), color="#1f77b4")
    for lo, hi in w.overlap():
        ax_r.axvspan(lo, max(hi, lo + 0.05), ymin=0.3, ymax=0.65, color="red", alpha=0.6)
    vip_colors: list[tuple[str | None, str, float]] = [("server1", "#1f77b4", 0.15), ("server2", "#ff7f0e", -0.15),
                                                       (None, "red", 0.0)]
    for who, color, dy in vip_colors:
        xs = [v.sent for v in h.vip if v.node == who]
        ax_r.scatter(xs, [rows["VIP"] + dy] * len(xs), s=2, color=color, marker="x" if who is None else "o",
                     linewidths=0.5)
    for v in verdict.violations:
        for ax in (ax_f, ax_r):
            ax.axvline(v.at, color="red", linewidth=1.2, linestyle="--")
        ax_r.text(v.at, 5.6, v.rule, color="red", fontsize=7, rotation=45)
    for lo, hi in h.schedule.storms:
        ax_r.axvspan(lo, hi, color="#ffe8a0", alpha=0.25, zorder=0)
    ax_r.set_yticks(list(rows.values()), list(rows.keys()))
    ax_r.set_ylim(0.4, 6.2)
    ax_r.set_xlim(0, h.end)
    ax_r.set_xlabel("seconds (storms shaded; CTI on both nodes in red; VIP: server1 blue, server2 orange, failed x)")
    mode = "with a witness" if h.witness else "without a witness"
    fig.suptitle(f"nemesis seed {h.seed}, {h.seconds:g} s, {mode}: {len(faults)} faults, "
                 f"{len(verdict.violations)} violation(s), CTI overlap {verdict.overlap_total:.2f} s "
                 f"(longest {verdict.overlap_longest:.2f} s)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
