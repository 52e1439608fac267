"""The hotstandby Grafana dashboard, built with Grafana's foundation SDK (grafana-foundation-sdk on PyPI).

    python deploy/grafana/dashboard.py > deploy/grafana/hotstandby.json

The JSON is committed (Grafana's sidecar and the Helm chart ship it as is); tests/deploy/test_dashboard.py
checks that it is what this script builds, and that every query reads metrics a real node exports.
Queries filter on the ``cluster`` label like the alert rules (all clusters, and series without one, by default).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, QueryVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.statetimeline import Panel as StateTimeline
from grafana_foundation_sdk.builders.table import Panel as Table
from grafana_foundation_sdk.builders.timeseries import Panel as TimeSeries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import TimeZoneBrowser, VisibilityMode
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

UID = "hotstandby"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'cluster=~"$cluster"'  # every query's selector


def query(expr: str, legend: str = "{{node}}", ref: str = "A") -> Dataquery:
    return Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)


def words(*pairs: tuple[str, str, str]) -> list[Any]:
    """Value mappings: (value, text, colour)."""
    return [ValueMap({value: ValueMappingResult(text=text, color=colour, index=i)
                      for i, (value, text, colour) in enumerate(pairs)})]


def timeline(title: str, expr: str, description: str, mappings: list[Any], width: int = 12,
             height: int = 6) -> StateTimeline:
    return (StateTimeline().title(title).description(description).datasource(DATASOURCE).span(width).height(height)
            .with_target(query(expr)).mappings(mappings).show_value(VisibilityMode.NEVER))


def series(title: str, description: str, *targets: Dataquery, unit: str = "short", width: int = 12,
           minimum: float | None = None) -> TimeSeries:
    panel = (TimeSeries().title(title).description(description).datasource(DATASOURCE).span(width).height(8)
             .unit(unit))
    if minimum is not None:
        panel = panel.min(minimum)
    for target in targets:
        panel = panel.with_target(target)
    return panel


ROLE = words(("1", "ACTIVE", "green"), ("0", "STANDBY", "blue"))
UP = words(("1", "up", "green"), ("0", "down", "red"))
ON = words(("1", "on", "orange"), ("0", "off", "transparent"))


def build() -> dict[str, Any]:
    dash = (
        Dashboard("hotstandby").uid(UID).tags(["hotstandby", "ha"]).refresh("10s").time("now-1h", "now")
        .timezone(TimeZoneBrowser).editable()
        .description("An active/standby pair: roles, role changes and their causes, peer probes, clock skew, "
                     "CTI, witness and maintenance (deploy/grafana/dashboard.py).")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(QueryVariable("cluster").label("Cluster").datasource(DATASOURCE)
                       .query("label_values(hotstandby_role, cluster)").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
                       .sort(VariableSort.ALPHABETICAL_ASC).include_all(True).all_value(".*").multi(True)
                       .current(VariableOption(selected=True, text="All", value="$__all")))
        .with_row(Row("Roles"))
        .with_panel(timeline("Role by node", f"hotstandby_role{{{SEL}}}",
                             "1 ACTIVE, 0 STANDBY, as each node says (hotstandby_role). Exactly one ACTIVE is "
                             "healthy.", ROLE, width=16))
        .with_panel(Stat().title("ACTIVE nodes").description("How many nodes say ACTIVE now: 1 is healthy, 0 is an "
                                                             "outage, 2 is split brain.")
                    .datasource(DATASOURCE).span(4).height(6)
                    .with_target(query(f"sum(hotstandby_role{{{SEL}}})", legend="ACTIVE nodes"))
                    .mappings(words(("0", "none", "red"), ("1", "one", "green"), ("2", "two: split brain", "red"))))
        .with_panel(Stat().title("Expected failover delay").description("N·I + T + CTI startup, the vendor's "
                                                                        "formula (seconds).")
                    .datasource(DATASOURCE).span(4).height(6).unit("s")
                    .with_target(query(f"max by (node) (hotstandby_expected_failover_delay_seconds{{{SEL}}})")))
        .with_panel(series(
            "Role changes by cause", "Changes in each interval, by node, new role and cause (failover, failback, "
            "manual, lan_lost, dual_active, ...).",
            query(f"sum by (node, to, cause) (increase(hotstandby_role_changes_total{{{SEL}}}[$__rate_interval])) > 0",
                  legend="{{node}} → {{to}} ({{cause}})"), width=12, minimum=0))
        .with_panel(Table().title("Role changes in the time range").description("Totals by node, new role and cause.")
                    .datasource(DATASOURCE).span(6).height(8)
                    .with_target(query(f"sum by (node, to, cause) (increase(hotstandby_role_changes_total{{{SEL}}}"
                                       f"[$__range])) > 0", legend="").instant().format(PromQueryFormat.TABLE)))
        .with_panel(series("Epoch", "The cluster-wide epoch each node knows; it rises by one per promotion.",
                           query(f"hotstandby_epoch{{{SEL}}}"), width=6))
        .with_row(Row("Peer"))
        .with_panel(series(
            "Peer probe latency", "Quantiles of the peer monitor probe (hotstandby_peer_probe_seconds), by node.",
            query(f"histogram_quantile(0.5, sum by (node, le) (rate(hotstandby_peer_probe_seconds_bucket{{{SEL}}}"
                  f"[$__rate_interval])))", legend="{{node}} p50", ref="A"),
            query(f"histogram_quantile(0.9, sum by (node, le) (rate(hotstandby_peer_probe_seconds_bucket{{{SEL}}}"
                  f"[$__rate_interval])))", legend="{{node}} p90", ref="B"),
            query(f"histogram_quantile(0.99, sum by (node, le) (rate(hotstandby_peer_probe_seconds_bucket{{{SEL}}}"
                  f"[$__rate_interval])))", legend="{{node}} p99", ref="C"),
            unit="s", width=8, minimum=0))
        .with_panel(series(
            "Consecutive probe failures", "Failed peer probes in a row (N of them switch); the failure rate beside.",
            query(f"hotstandby_peer_consecutive_failures{{{SEL}}}", legend="{{node}} in a row", ref="A"),
            query(f"rate(hotstandby_peer_probe_failures_total{{{SEL}}}[$__rate_interval])",
                  legend="{{node}} failures/s", ref="B"),
            width=8, minimum=0))
        .with_panel(series("Clock skew", "The peer's clock minus this node's, measured on each exchange.",
                           query(f"hotstandby_clock_skew_seconds{{{SEL}}}"), unit="s", width=8))
        .with_panel(timeline("Peer's role as heard", f"hotstandby_peer_role{{{SEL}}}",
                             "What each node's peer last reported: 1 ACTIVE, 0 STANDBY, -1 not heard from yet.",
                             words(("1", "ACTIVE", "green"), ("0", "STANDBY", "blue"), ("-1", "unknown", "gray"))))
        .with_panel(timeline("LAN", f"hotstandby_lan_ok{{{SEL}}}",
                             "1 while a LAN probe address answers (or the check is off).", UP))
        .with_row(Row("CTI, witness, maintenance"))
        .with_panel(timeline("CTI server", f"hotstandby_cti_up{{{SEL}}}",
                             "1 while the CTI server runs and is ready (it should on the ACTIVE only).", UP, width=8,
                             height=8))
        .with_panel(series("CTI restarts", "Watchdog, daily and manual restarts in each interval.",
                           query(f"increase(hotstandby_cti_restarts_total{{{SEL}}}[$__rate_interval])"),
                           width=8, minimum=0))
        .with_panel(timeline("Witness", f"hotstandby_witness_up{{{SEL}}} and on (cluster, node) "
                                        f"hotstandby_witness_configured{{{SEL}}} == 1",
                             "1 while the etcd witness answers (nodes without a witness are not shown).", UP, width=8,
                             height=8))
        .with_panel(timeline("Maintenance", f"max by (node) (hotstandby_maintenance{{{SEL}}})",
                             "On: automatic switching is paused (R11).", ON, width=8, height=8))
        .with_panel(Table().title("Settings digest").description("Both nodes hold the same settings when the "
                                                                 "digests are equal.")
                    .datasource(DATASOURCE).span(8).height(8)
                    .with_target(query(f"hotstandby_settings_info{{{SEL}}}", legend="").instant()
                                 .format(PromQueryFormat.TABLE)))
        .with_panel(series("Heartbeat tick age", "Seconds since each node's heartbeat loop last completed a tick "
                                                 "(over 3·I, /healthz turns 503).",
                           query(f"time() - hotstandby_last_tick_timestamp_seconds{{{SEL}}}"),
                           unit="s", width=8, minimum=0))
    )
    result: dict[str, Any] = json.loads(json.dumps(dash.build(), cls=JSONEncoder))
    for number, panel in enumerate(result["panels"], 1):  # Grafana wants each panel's id unique
        panel["id"] = number
    return result


def main() -> int:
    sys.stdout.write(json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
