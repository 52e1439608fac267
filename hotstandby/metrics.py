"""Prometheus metrics of SPEC section 8, always on an explicit registry (no import-time globals)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ArbiterMetrics:
    def __init__(self, node: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r, n = self.registry, ["node"]
        self.node = node
        self.role = Gauge("hotstandby_role", "1 when this node is ACTIVE, 0 when STANDBY", n, registry=r)
        self.role_changes = Counter("hotstandby_role_changes", "Role changes by new role and cause",
                                    ["node", "to", "cause"], registry=r)
        self.probe_seconds = Histogram("hotstandby_peer_probe_seconds", "Peer monitor probe latency", n,
                                       buckets=PROBE_BUCKETS, registry=r)
        self.probe_failures = Counter("hotstandby_peer_probe_failures", "Failed peer probes", n, registry=r)
        self.consecutive_failures = Gauge("hotstandby_peer_consecutive_failures",
                                          "Consecutive failed peer probes", n, registry=r)
        self.lan_ok = Gauge("hotstandby_lan_ok", "1 when a LAN probe answers (or the check is off)", n,
                            registry=r)
        self.skew = Gauge("hotstandby_clock_skew_seconds", "Peer clock minus ours, from the last exchange", n,
                          registry=r)
        self.expected_delay = Gauge("hotstandby_expected_failover_delay_seconds",
                                    "N*I + T + CTI startup", n, registry=r)
        self.maintenance = Gauge("hotstandby_maintenance", "1 while automatic switching is paused", n,
                                 registry=r)
        self.witness_up = Gauge("hotstandby_witness_up", "1 when the witness answers (0 when none)", n,
                                registry=r)
        self.epoch = Gauge("hotstandby_epoch", "Cluster epoch as this node knows it", n, registry=r)
        self.exchange_failures = Counter("hotstandby_peer_exchange_failures",
                                         "Failed state exchanges with the peer arbiter", n, registry=r)
        self.auth_rejections = Counter("hotstandby_auth_rejections", "Refused peer or admin calls",
                                       ["node", "kind"], registry=r)
        self.config_changes = Counter("hotstandby_config_changes", "Cluster settings changed, by origin",
                                      ["node", "source"], registry=r)
        self.lb_calls = Counter("hotstandby_lb_runtime_api_calls",
                                "Calls to the load balancers' runtime API (HS_LB_RUNTIME_API), by result",
                                ["node", "result"], registry=r)
        self.tick_seconds = Histogram("hotstandby_tick_seconds", "Duration of one heartbeat tick", n,
                                      buckets=PROBE_BUCKETS, registry=r)
        for g in (self.role, self.consecutive_failures, self.lan_ok, self.skew, self.expected_delay,
                  self.maintenance, self.witness_up, self.epoch):
            g.labels(node)
        for c in (self.probe_failures, self.exchange_failures):
            c.labels(node)
        for result in ("ok", "failed"):
            self.lb_calls.labels(node, result)
        for h in (self.probe_seconds, self.tick_seconds):  # scraped before the first probe, too
            h.labels(node)


class CtiCollector(Collector):
    """Reads the supervisor at scrape time, so the metric cannot drift from what /cti says."""

    def __init__(self, node: str, up: Callable[[], bool], restarts: Callable[[], int]) -> None:
        self._node, self._up, self._restarts = node, up, restarts

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("hotstandby_cti_up", "1 while the CTI server runs and is ready", labels=["node"])
        up.add_metric([self._node], 1.0 if self._up() else 0.0)
        restarts = CounterMetricFamily("hotstandby_cti_restarts", "Watchdog, daily and manual CTI restarts",
                                       labels=["node"])
        restarts.add_metric([self._node], float(self._restarts()))
        return [up, restarts]


def monitor_registry(node: str, up: Callable[[], bool], restarts: Callable[[], int]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(CtiCollector(node, up, restarts))
    return registry
