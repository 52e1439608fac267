"""The PNG: failover time distributions per profile (and keepalived's), and one failover's timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def draw(res: dict[str, Any], raw: dict[str, Any], path: Path) -> Path:
    fig, (ax, tl) = plt.subplots(2, 1, figsize=(11, 11), gridspec_kw={"height_ratios": [3, 1.4]})
    series: list[tuple[str, list[float]]] = []
    for name, runs in raw.get("deaths", {}).items():
        for key, what in (("active_s", "→ ACTIVE"), ("cti_s", "→ CTI"), ("vip_s", "→ VIP (checks)"),
                          ("vip_api_s", "→ VIP (told)")):
            xs = [r[key] for r in runs if r.get(key) is not None]
            if xs:
                series.append((f"{name} {what}", xs))
        xs = [r["cti_s"] for r in raw.get("warm_deaths", {}).get(name, []) if r.get("cti_s") is not None]
        if xs:
            series.append((f"{name} → CTI (warm)", xs))
    for adv, runs in raw.get("keepalived_deaths", {}).items():
        for key, what in (("master_s", "→ MASTER"), ("vip_s", "→ VIP (client)")):
            xs = [r[key] for r in runs if r.get(key) is not None]
            if xs:
                series.append((f"keepalived {adv} s {what}", xs))
    if series:
        ax.boxplot([s for _, s in series], vert=False, whis=(0, 100), widths=0.6)
        for i, (_, xs) in enumerate(series, start=1):
            ax.scatter(xs, [i] * len(xs), s=9, alpha=0.5, color="tab:blue", zorder=3)
        ax.set_yticks(range(1, len(series) + 1), [n for n, _ in series], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("seconds after kill -9 of the ACTIVE node / MASTER (log scale; boxes: min-max, quartiles)")
    ax.set_title(f"Failover times ({res.get('mode')}; {res['machine'].get('cores')} cores, "
                 f"load {res['machine'].get('load_at_start')})", fontsize=10)
    ax.axvline(0.8, color="tab:red", lw=0.8, ls="--")
    ax.text(0.8, 0.3, " 0.8 s goal", color="tab:red", fontsize=8)
    ax.grid(axis="x", alpha=0.3, which="both")

    t = res.get("timeline")
    if t:
        events = [("death (kill -9)", 0.0), ("first failed probe", t.get("first_failure_s")),
                  ("last probe (N-th failure)", t.get("last_probe_s")), ("promotion (role_since)", t.get("active_s")),
                  ("CTI registered", t.get("cti_s")), ("VIP switched (checks)", t.get("vip_s")),
                  ("VIP switched (told)", t.get("vip_api_s"))]
        events = [(n, v) for n, v in events if v is not None]
        end = max(v for _, v in events) * 1.15 or 1.0
        tl.hlines(0, 0, end, color="grey", lw=1)
        for k, (n, v) in enumerate(events):
            tl.plot([v], [0], "o", color=f"C{k}")
            tl.annotate(f"{n}\n{v:.3f} s", (v, 0), xytext=(0, 18 if k % 2 == 0 else -34),
                        textcoords="offset points", ha="center", fontsize=8)
        tl.set_xlim(-0.05 * end, end)
        tl.set_ylim(-1, 1)
        tl.set_yticks([])
        tl.set_xlabel("seconds after the kill")
        tl.set_title(f"One failover ({t.get('profile')}, the median run: {t.get('victim')} killed, "
                     f"{t.get('survivor')} takes over)", fontsize=10)
    else:
        tl.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
