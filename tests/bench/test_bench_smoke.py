"""`python -m bench --quick` end to end in the fault lab: it runs, and latest.json holds the issues' keys.

Speed figures are never asserted here: only that every figure the issue names is present.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab import netns
from tests.needs import missing

pytestmark = [pytest.mark.lab, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
DIST = ("min", "median", "p95", "max", "runs")
LOSS = ("10", "20", "30")


@pytest.mark.slow  # make bench-smoke (in .ci/run): about 2 minutes, beyond make test's budget
@pytest.mark.timeout(330)
@pytest.mark.skipif(os.geteuid() != 0, reason="the bench's fault lab needs root")
def test_quick_bench_writes_every_key_of_issue_15(tmp_path: Path) -> None:
    """The quick bench completes and its JSON has every key the report, the README and the comparison read."""
    why = netns.unavailable()
    if why:
        missing(why)
    r = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=320)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "latest.json").read_text())
    for name in ("fast", "aggressive", "sprint"):
        p = res["profiles"][name]
        for key in ("death_to_active_s", "death_to_cti_s", "death_to_vip_s", "death_to_vip_api_s",
                    "promotion_to_vip_api_s", "kill_phase_s"):
            assert set(DIST) <= set(p[key]), (name, key)
        assert set(LOSS) <= set(p["false_switches"]), name
        assert {"checks", "api"} <= set(p["switchover"]), name
        assert set(res["client_visible"][name]) >= {"ratio_vip_checks", "ratio_vip_api", "ratio_cti_warm"}
    assert set(DIST) <= set(res["profiles"]["fast"]["warm"]["death_to_cti_s"])
    assert {"failed_requests", "max_gap_s"} <= set(res["switchover"]["api"])
    assert {"rss_mb", "idle_cpu_pct", "heartbeat_bytes_per_hour"} <= set(res["resources"])
    for advert in ("1", "0.2", "0.1"):
        for key in ("death_to_master_s", "death_to_vip_s"):
            assert set(DIST) <= set(res["keepalived"][advert][key]), advert
        assert set(LOSS) <= set(res["keepalived"][advert]["false_switches"]), advert
    assert "rss_mb" in res["keepalived"]
    assert {"cores", "load_at_start"} <= set(res["machine"])
    assert isinstance(res["seed"], int)
    assert (tmp_path / "latest.md").exists()
    assert (tmp_path / "latest.png").stat().st_size > 0
