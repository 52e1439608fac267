"""The Grafana dashboard (deploy/grafana/hotstandby.json): what deploy/grafana/dashboard.py builds, and it shows
what the operator asked for. (That every query reads metrics a real node exports: tests/integration/test_metrics.py;
that each one evaluates in a real Prometheus: tests/integration/test_prometheus.py.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "hotstandby.json"
BUILDER = ROOT / "deploy" / "grafana" / "dashboard.py"


def panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def queries() -> list[str]:
    """Every PromQL expression of the dashboard's panels."""
    return [t["expr"] for p in panels() for t in p.get("targets", [])]


def test_committed_json_is_what_the_builder_makes() -> None:
    """deploy/grafana/hotstandby.json is exactly the builder's output (edit the script, not the JSON)."""
    run = subprocess.run([sys.executable, str(BUILDER)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout == DASHBOARD.read_text()


def test_panels_have_unique_ids_and_one_datasource_variable() -> None:
    """Each panel has its own id, every query goes to the dashboard's Prometheus data source variable."""
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert {p["datasource"]["uid"] for p in panels()} == {"${datasource}"}
    assert [v["name"] for v in dash["templating"]["list"]] == ["datasource", "cluster"]


def test_dashboard_shows_what_the_operator_needs() -> None:
    """Roles over time, role changes by cause, probe latency quantiles from the histogram, consecutive failures,
    clock skew, CTI up and restarts, witness and maintenance each have a query."""
    text = "\n".join(queries())
    wanted = {
        "roles": r"hotstandby_role\{",
        "role changes by cause": r"by \(node, to, cause\).*hotstandby_role_changes_total",
        "probe quantiles": r"histogram_quantile\(0\.99, .*hotstandby_peer_probe_seconds_bucket",
        "consecutive failures": r"hotstandby_peer_consecutive_failures", "clock skew": r"hotstandby_clock_skew_seconds",
        "CTI up": r"hotstandby_cti_up", "CTI restarts": r"hotstandby_cti_restarts_total",
        "witness": r"hotstandby_witness_up", "maintenance": r"hotstandby_maintenance",
    }
    assert [what for what, pattern in wanted.items() if not re.search(pattern, text)] == []


def test_every_query_filters_on_the_cluster_variable() -> None:
    """Each metric selector carries the cluster filter, so one dashboard serves several pairs."""
    for expr in queries():
        selectors = re.findall(r"hotstandby_\w+(\{[^}]*\})?", expr)
        assert selectors and all('cluster=~"$cluster"' in s for s in selectors), expr
