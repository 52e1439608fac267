"""The chart's monitoring extras, both off by default: the alert rules as a PrometheusRule and the dashboard as a
ConfigMap for Grafana's sidecar, each the very file under deploy/ (the chart links to them, it keeps no copy)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.deploy.test_helm import DEPLOY, by_kind, template


def test_monitoring_extras_are_off_by_default(helm: Path) -> None:
    """A default install renders neither a PrometheusRule nor the dashboard ConfigMap."""
    docs = template(helm)
    assert by_kind(docs, "PrometheusRule") == []
    assert [d for d in by_kind(docs, "ConfigMap") if "hotstandby.json" in d.get("data", {})] == []


def test_prometheus_rule_carries_the_alert_rules(helm: Path) -> None:
    """prometheusRule.enabled renders deploy/prometheus/alerts.yml's groups, with the labels asked for."""
    docs = template(helm, "prometheusRule.enabled=true", "prometheusRule.labels.release=kps")
    (rule,) = by_kind(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["spec"]["groups"] == yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]


def test_dashboard_config_map_carries_the_dashboard_for_the_sidecar(helm: Path) -> None:
    """grafanaDashboard.enabled renders deploy/grafana/hotstandby.json in a ConfigMap with the sidecar's label."""
    docs = template(helm, "grafanaDashboard.enabled=true", "grafanaDashboard.namespace=monitoring",
                    "grafanaDashboard.annotations.grafana_folder=HA")
    (cm,) = [d for d in by_kind(docs, "ConfigMap") if "hotstandby.json" in d.get("data", {})]
    assert (cm["metadata"]["namespace"], cm["metadata"]["labels"]["grafana_dashboard"],
            cm["metadata"]["annotations"]["grafana_folder"]) == ("monitoring", "1", "HA")
    shipped = json.loads((DEPLOY / "grafana" / "hotstandby.json").read_text())
    assert json.loads(cm["data"]["hotstandby.json"]) == shipped
