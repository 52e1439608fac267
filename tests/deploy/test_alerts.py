"""The alert rules (deploy/prometheus/alerts.yml): valid for Prometheus, written the monitoring-mixin way, and each
one unit-tested by promtool firing in one case and staying quiet in another."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.needs import need

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
UNIT_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "alerts_test.yml"
SEVERITIES = {"critical", "warning"}
# What the issue asks an alert for: each must be one rule below.
WANTED = {
    "HotstandbyNoActiveNode", "HotstandbySplitBrain", "HotstandbyPeerUnreachable", "HotstandbyLanLost",
    "HotstandbyCtiDownOnActive", "HotstandbyCtiRestarting", "HotstandbyClockSkew", "HotstandbyWitnessLost",
    "HotstandbyMaintenanceLeftOn", "HotstandbySettingsDiverged", "HotstandbyHeartbeatStalled",
    "HotstandbyNodeNotScraped",
}


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", duration)
    assert "".join(n + u for n, u in parts) == duration, f"not a Prometheus duration: {duration!r}"
    return sum(int(n) * units[u] for n, u in parts)


def test_promtool_check_rules_accepts_the_file() -> None:
    """`promtool check rules` finds every rule valid (PromQL parses, templates compile)."""
    promtool = need("promtool", "prometheus")
    run = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in run.stdout


def test_promtool_unit_tests_pass() -> None:
    """`promtool test rules`: every expected alert fires with its labels and annotations, and no other."""
    promtool = need("promtool", "prometheus")
    run = subprocess.run([promtool, "test", "rules", str(UNIT_TESTS)], capture_output=True, text=True, timeout=120,
                         cwd=UNIT_TESTS.parent)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_the_wanted_alerts_are_there_and_no_other() -> None:
    """One rule for each condition the operator asked to be told about."""
    assert sorted(rule["alert"] for rule in alert_rules()) == sorted(WANTED)


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_each_rule_says_what_to_do_and_rides_out_a_tick(rule: dict[str, Any]) -> None:
    """Summary, a description of at least two sentences naming what to do, a severity, a `for:` of 1 min or more."""
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description"}
    assert rule["labels"]["severity"] in SEVERITIES
    assert seconds(rule["for"]) >= 60  # the default I is 30 s: one tick's blip never fires
    assert annotations["description"].count(". ") >= 1 and len(annotations["description"]) > 120
    assert "`" in annotations["description"]  # a command or a call the operator can run


def test_every_rule_has_a_firing_and_a_quiet_unit_test() -> None:
    """alerts_test.yml holds, for each rule, a case where it fires and a case where it must not."""
    cases: dict[str, dict[str, int]] = {rule["alert"]: {"fires": 0, "quiet": 0} for rule in alert_rules()}
    for group in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for check in group.get("alert_rule_test", []):
            cases[check["alertname"]]["fires" if check["exp_alerts"] else "quiet"] += 1
    assert {name: counts for name, counts in cases.items() if not (counts["fires"] and counts["quiet"])} == {}
