"""Prometheus metrics (SPEC section 8): explicit registries, every name present with a node label."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hotstandby.metrics import ArbiterMetrics, monitor_registry
from hotstandby.model import Cause, Role
from tests.services.arbiter.test_heartbeat import FakeClock, make_arbiter

ARBITER_SAMPLES = (
    "hotstandby_role",
    "hotstandby_peer_probe_seconds_bucket",
    "hotstandby_peer_probe_seconds_count",
    "hotstandby_peer_probe_seconds_sum",
    "hotstandby_peer_probe_failures_total",
    "hotstandby_peer_consecutive_failures",
    "hotstandby_lan_ok",
    "hotstandby_clock_skew_seconds",
    "hotstandby_expected_failover_delay_seconds",
    "hotstandby_maintenance",
    "hotstandby_witness_up",
)


def samples(registry: CollectorRegistry) -> dict[str, list[dict[str, str]]]:
    """Sample name -> the label sets it was exported with, parsed from the scrape text."""
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(dict(sample.labels))
    return out


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


@pytest.mark.parametrize("name", ARBITER_SAMPLES)
def test_arbiter_metric_present_from_the_start_with_a_node_label(name: str) -> None:
    """A fresh arbiter's scrape already carries each SPEC metric, labelled with its node."""
    found = samples(ArbiterMetrics("server2").registry)
    assert name in found
    assert all(labels.get("node") == "server2" for labels in found[name])


def test_role_changes_start_at_zero_for_every_role_and_cause() -> None:
    """``hotstandby_role_changes_total`` has a 0 sample for each new role x cause before any change happens."""
    found = samples(ArbiterMetrics("server1").registry)["hotstandby_role_changes_total"]
    assert sorted((s["node"], s["to"], s["cause"]) for s in found) == sorted(
        ("server1", role.value, cause.value) for role in Role for cause in Cause)


def test_role_changes_carry_node_to_and_cause() -> None:
    """A change counts under its node, new role and cause; the others stay at 0."""
    m = ArbiterMetrics("server1")
    m.role_changes.labels("server1", "ACTIVE", "failover").inc()
    m.role_changes.labels("server1", "ACTIVE", "failover").inc()
    m.role_changes.labels("server1", "STANDBY", "manual").inc()
    assert (value(m.registry, "hotstandby_role_changes_total", node="server1", to="ACTIVE", cause="failover"),
            value(m.registry, "hotstandby_role_changes_total", node="server1", to="STANDBY", cause="manual"),
            value(m.registry, "hotstandby_role_changes_total", node="server1", to="ACTIVE", cause="manual")) == (
        2.0, 1.0, 0.0)


def test_a_failover_driven_through_the_arbiter_is_exported(tmp_path: Path) -> None:
    """The arbiter, driven through R1 against a dead peer, exports what happened: ACTIVE, one role change
    labelled with its new role and cause, N failed probes (each observed), the epoch, the expected delay."""
    arbiter, _ = make_arbiter(tmp_path, FakeClock())

    async def ticks() -> None:
        for _ in range(3):
            await arbiter.tick()

    asyncio.run(ticks())
    r = arbiter.metrics.registry
    changed = [s for s in samples(r)["hotstandby_role_changes_total"]
               if value(r, "hotstandby_role_changes_total", **s)]
    assert changed == [{"node": "server2", "to": "ACTIVE", "cause": "failover"}]
    assert (
        value(r, "hotstandby_role", node="server2"),
        value(r, "hotstandby_role_changes_total", node="server2", to="ACTIVE", cause="failover"),
        value(r, "hotstandby_peer_probe_failures_total", node="server2"),
        value(r, "hotstandby_peer_probe_seconds_count", node="server2"),
        value(r, "hotstandby_peer_consecutive_failures", node="server2"),
        value(r, "hotstandby_epoch", node="server2"),
        value(r, "hotstandby_expected_failover_delay_seconds", node="server2"),
    ) == (1.0, 1.0, 3.0, 3.0, 3.0, 1.0, 3 * 1 + 0.2 + 0.5 + 0.2 * 2 + 0.2 * 2)


def test_maintenance_set_on_the_arbiter_is_exported(tmp_path: Path) -> None:
    """``POST /maintenance`` on the arbiter turns ``hotstandby_maintenance`` to 1, and back to 0."""
    arbiter, _ = make_arbiter(tmp_path, FakeClock())
    seen = []
    for on in (True, False):
        asyncio.run(arbiter.set_maintenance(on, "test"))
        seen.append(value(arbiter.metrics.registry, "hotstandby_maintenance", node="server2"))
    assert seen == [1.0, 0.0]


def test_two_instances_do_not_clash() -> None:
    """Each ArbiterMetrics has its own registry: two nodes in one process keep separate values."""
    one, two = ArbiterMetrics("server1"), ArbiterMetrics("server2")
    assert one.registry is not two.registry
    one.role.labels("server1").set(1)
    two.role.labels("server2").set(0)
    assert (value(one.registry, "hotstandby_role", node="server1"),
                           value(one.registry, "hotstandby_role", node="server2")) == (1.0, None)
    assert (value(two.registry, "hotstandby_role", node="server2"),
                           value(two.registry, "hotstandby_role", node="server1")) == (0.0, None)


def test_explicit_registry_is_used() -> None:
    """A registry passed in receives the metrics, and a second set on it is refused as a duplicate."""
    registry = CollectorRegistry()
    m = ArbiterMetrics("server1", registry)
    assert registry is m.registry
    assert "hotstandby_role" in samples(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        ArbiterMetrics("server1", registry)


@pytest.mark.parametrize(("up", "restarts"), [(True, 0), (False, 0), (True, 7), (False, 12)])
def test_monitor_registry_exports_cti_metrics(up: bool, restarts: int) -> None:
    """``hotstandby_cti_up`` and ``hotstandby_cti_restarts_total`` carry the node label and the supervisor's values."""
    registry = monitor_registry("server1", lambda: up, lambda: restarts)
    assert (1.0 if up else 0.0) == value(registry, "hotstandby_cti_up", node="server1")
    assert float(restarts) == value(registry, "hotstandby_cti_restarts_total", node="server1")
    found = samples(registry)
    assert [{"node": "server1"}] == found["hotstandby_cti_up"] == found["hotstandby_cti_restarts_total"]


def test_monitor_metrics_are_read_at_scrape_time() -> None:
    """Each scrape reads the supervisor afresh, so the metric follows /cti without anyone updating it."""
    state = {"up": False, "restarts": 0}
    registry = monitor_registry("server2", lambda: bool(state["up"]), lambda: int(state["restarts"]))
    seen = []
    for up, restarts in ((False, 0), (True, 0), (False, 1), (True, 1)):
        state.update(up=up, restarts=restarts)
        seen.append((value(registry, "hotstandby_cti_up", node="server2"),
                     value(registry, "hotstandby_cti_restarts_total", node="server2")))
    assert seen == [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)]


def test_two_monitor_registries_do_not_clash() -> None:
    """Two monitors in one process each export their own node."""
    a = monitor_registry("server1", lambda: True, lambda: 1)
    b = monitor_registry("server2", lambda: False, lambda: 2)
    assert (value(a, "hotstandby_cti_up", node="server1"), value(a, "hotstandby_cti_up", node="server2")) == (1.0, None)
    assert value(b, "hotstandby_cti_restarts_total", node="server2") == 2.0
