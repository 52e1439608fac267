"""Prometheus metrics of SPEC section 8, always on an explicit registry (no import-time globals).

Every family has samples from the first scrape: the label values we know (each role and cause of a role
change, each kind of refused call) start at 0, so a rule or a ``rate()`` sees 0 instead of nothing.
Besides SPEC 8, what the alert rules (deploy/prometheus/alerts.yml) need: the settings digest, the last
completed tick, the heartbeat interval, the peer's role as this node last heard it, whether a witness is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hotstandby.model import Cause, Role

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
        self.hook_failures = Counter("hotstandby_hook_failures", "HS_NOTIFY_COMMAND runs that failed (or "
                                     "events that could not be queued)", n, registry=r)
        self.hook_pending = Gauge("hotstandby_hook_pending", "Events waiting in the outbox for HS_NOTIFY_COMMAND",
                                  n, registry=r)
        self.lb_calls = Counter("hotstandby_lb_runtime_api_calls",
                                "Calls to the load balancers' runtime API (HS_LB_RUNTIME_API), by result",
                                ["node", "result"], registry=r)
        self.tick_seconds = Histogram("hotstandby_tick_seconds", "Duration of one heartbeat tick", n,
                                      buckets=PROBE_BUCKETS, registry=r)
        self.peer_role = Gauge("hotstandby_peer_role", "The peer's role as it last reported it: 1 ACTIVE, "
                               "0 STANDBY, -1 not heard from yet", n, registry=r)
        self.last_tick = Gauge("hotstandby_last_tick_timestamp_seconds", "Wall clock time the heartbeat loop last "
                               "completed a tick (the process start until the first one)", n, registry=r)
        self.interval = Gauge("hotstandby_heartbeat_interval_seconds", "I, the heartbeat interval in force", n,
                              registry=r)
        self.witness_configured = Gauge("hotstandby_witness_configured", "1 when this node uses a witness "
                                        "(HS_WITNESS_URL set and hot standby enabled)", n, registry=r)
        self.settings = Info("hotstandby_settings", "Digest of the cluster settings this node holds (equal on "
                             "both nodes once replicated)", n, registry=r)
        for g in (self.role, self.consecutive_failures, self.lan_ok, self.skew, self.expected_delay,
                  self.maintenance, self.witness_up, self.epoch, self.interval, self.witness_configured,
                  self.hook_pending):
            g.labels(node)
        self.peer_role.labels(node).set(-1)
        self.last_tick.labels(node).set_to_current_time()
        self.settings.labels(node).info({"digest": ""})
        for c in (self.probe_failures, self.exchange_failures, self.hook_failures):
            c.labels(node)
        for role in Role:
            for cause in Cause:
                self.role_changes.labels(node, role.value, cause.value)
        for kind in ("admin", "peer"):
            self.auth_rejections.labels(node, kind)
        for source in ("local", "peer"):
            self.config_changes.labels(node, source)
        for result in ("ok", "failed"):
            self.lb_calls.labels(node, result)
        for h in (self.probe_seconds, self.tick_seconds):  # scraped before the first probe, too
            h.labels(node)

    def readings(self, *, peer_role: Role | None, interval_s: float, digest: str) -> None:
        """What the arbiter knows besides its gauges of SPEC 8, set with them (one call, wherever they are set)."""
        n = self.node
        self.peer_role.labels(n).set(-1 if peer_role is None else 1 if peer_role is Role.ACTIVE else 0)
        self.interval.labels(n).set(interval_s)
        self.settings.labels(n).info({"digest": digest})

    def ticked(self, wall: float, *, witness: bool) -> None:
        """A tick completed at ``wall`` (time.time()); ``witness``: it took a witness into account."""
        self.last_tick.labels(self.node).set(wall)
        self.witness_configured.labels(self.node).set(1 if witness else 0)


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
