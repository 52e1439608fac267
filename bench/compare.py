"""Issue 15's figures, before and after, side by side with keepalived, from two bench results files.

    python -m bench.compare bench/results/before.json bench/results/latest.json

The "before" file may come from an older bench (main before issue 15): it knew one load balancer (the
checks alone), no warm CTI, and saw keepalived's VIP with ``ip addr`` only. Each row reads whatever the
file holds and says "no data" for what it does not; nothing is filled in.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import ADVERT_FOR, _s, _table, med, ratio

Res = dict[str, Any]


def _get(d: Any, *path: str) -> Any:
    for key in path:
        d = d.get(key) if isinstance(d, dict) else None
    return d


def _switchover(res: Res, lb: str) -> str:
    """Failed of requests over the aggressive switchovers through ``lb`` (an old file: the one HAProxy)."""
    sw = _get(res, "profiles", "aggressive", "switchover")
    if isinstance(sw, dict) and lb in sw:
        sw = sw[lb]
    elif isinstance(sw, dict) and lb != "checks":
        return "no data"
    if not isinstance(sw, dict) or sw.get("failed_requests") is None:
        return "no data"
    return f"{sw['failed_requests']} of {sw.get('requests')}"


def _keepalived_vip(res: Res, adv: str) -> tuple[Any, str]:
    """keepalived's death → VIP median: a client through it when the file has one, else ``ip addr``."""
    client = med(res, "keepalived", adv, "death_to_vip_s")
    if client is not None:
        return client, ""
    return med(res, "keepalived", adv, "death_to_vip_seen_s"), " (ip addr)"


def _vip_ratio(res: Res, key: str) -> str:
    parts = []
    for name, adv in ADVERT_FOR.items():
        ka, how = _keepalived_vip(res, adv)
        r = ratio(med(res, "profiles", name, key), ka)
        parts.append(f"{_s(r)}{how if r is not None else ''}")
    return " / ".join(parts)


def _cti_ratio(res: Res, *path: str) -> str:
    return " / ".join(_s(ratio(med(res, "profiles", name, *path), med(res, "keepalived", adv, "death_to_master_s")))
                      for name, adv in ADVERT_FOR.items())


def _p95(res: Res, *path: str) -> str:
    return _s(_get(res, "profiles", *path, "p95"))


ROWS: list[tuple[str, Callable[[Res], str], str]] = [
    ("idle CPU of the node process at I = 1 s (% of a core)",
     lambda r: _s(_get(r, "resources", "idle_cpu_pct_node_process")), "≤ 0.5"),
    ("idle CPU at the sprint profile, node and CTI simulator (% of a core)",
     lambda r: _s(_get(r, "resources", "idle_cpu_pct_sprint")), "≤ 3"),
    ("bytes an hour on the peer link at the vendor default (I = 30 s)",
     lambda r: _s(_get(r, "resources", "heartbeat_bytes_per_hour")), "≤ 100,000"),
    ("resident memory of the node process (MB)", lambda r: _s(_get(r, "resources", "rss_mb_node_process")), "≤ 60"),
    ("failed requests over 3 planned switchovers at 50 req/s (aggressive), checks only",
     lambda r: _switchover(r, "checks"), "—"),
    ("  the same, the arbiters telling HAProxy (HS_LB_RUNTIME_API)", lambda r: _switchover(r, "api"), "0"),
    ("promotion → VIP (sprint, p95, s), checks only", lambda r: _p95(r, "sprint", "promotion_to_vip_s"), "—"),
    ("  the same, the arbiters telling HAProxy", lambda r: _p95(r, "sprint", "promotion_to_vip_api_s"), "≤ 0.05"),
    ("death → VIP answers, median, ours / keepalived's VIP (fast / aggressive / sprint), checks only",
     lambda r: _vip_ratio(r, "death_to_vip_s"), "—"),
    ("  the same, the arbiters telling HAProxy", lambda r: _vip_ratio(r, "death_to_vip_api_s"), "≤ 0.8 each"),
    ("death → CTI registered / keepalived's death → MASTER (fast / aggressive / sprint), cold CTI",
     lambda r: _cti_ratio(r, "death_to_cti_s"), "—"),
    ("  the same, warm CTI (HS_CTI_MODE=warm)", lambda r: _cti_ratio(r, "warm", "death_to_cti_s"), "≤ 1 each"),
    ("sprint: median death → ACTIVE (s)", lambda r: _s(med(r, "profiles", "sprint", "death_to_active_s")), "≤ 0.30"),
    ("false switches at 20 % loss (fast / aggressive / sprint)",
     lambda r: " / ".join(_s(_get(r, "profiles", n, "false_switches", "20")) for n in ADVERT_FOR), "0 each"),
]


def _label(res: Res) -> str:
    m = res.get("machine", {})
    return f"commit {m.get('commit') or '?'}, load {(m.get('load_at_start') or ['?'])[0]}"


def table(before: Res, after: Res) -> str:
    """The rows above as a markdown table: before, after, goal; cells without data say so."""
    rows = [[what, (fn(before) if before else "no data").replace("—", "no data"),
             fn(after).replace("—", "no data"), goal] for what, fn, goal in ROWS]
    return _table(["figure", f"before ({_label(before)})" if before else "before",
                   f"after ({_label(after)})", "goal"], rows)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    before, after = (json.loads(Path(a).read_text()) for a in args)
    print(table(before, after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
