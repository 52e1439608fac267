"""Prometheus from outside a pair: read a node's /metrics as samples, and run Debian's real Prometheus
(``/usr/bin/prometheus``) against a pair, with a temporary config and TSDB, on a loopback address of its own.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from lab.waiting import free_port, stop_process, wait_until

PROMETHEUS_HOST = "127.0.0.14"


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def scrape(http: httpx.Client, url: str) -> list[Sample]:
    """Every sample of one ``/metrics`` answer, as Prometheus would ingest it."""
    r = http.get(url + "/metrics", timeout=5)
    r.raise_for_status()
    return [Sample(s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(r.text) for s in family.samples]


@dataclass
class PrometheusServer:
    """One Prometheus process scraping ``targets`` (job name -> host:port list) with ``rules`` loaded."""

    binary: str
    workdir: Path
    targets: dict[str, list[str]]
    rule_files: list[Path] = field(default_factory=list)
    interval: str = "250ms"  # scrape interval (and timeout)
    evaluation: str = "250ms"  # rule evaluation interval
    proc: subprocess.Popen[bytes] | None = None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(trust_env=False, timeout=5))

    def __post_init__(self) -> None:
        self.port = free_port(PROMETHEUS_HOST)

    @property
    def url(self) -> str:
        return f"http://{PROMETHEUS_HOST}:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "prometheus.out"

    def start(self) -> PrometheusServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": self.interval, "scrape_timeout": self.interval,
                       "evaluation_interval": self.evaluation},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": hosts}]}
                               for job, hosts in self.targets.items()],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [self.binary, f"--config.file={self.workdir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.workdir / 'data'}", f"--web.listen-address={PROMETHEUS_HOST}:{self.port}",
                 "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.ready, 30, "Prometheus ready")
        return self

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log.read_text()[-2000:]}")
        return self.http.get(self.url + "/-/ready").status_code == 200

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.http.close()

    def api(self, path: str, **params: str) -> Any:
        r = self.http.get(f"{self.url}/api/v1/{path}", params=params)
        body = r.json()
        assert body.get("status") == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector: each item has ``metric`` (labels) and ``value`` ([time, "text"])."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self, state: str = "firing") -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["state"] == state]

    def targets_up(self) -> dict[str, str]:
        """scrape URL -> health (up, down, unknown) of every active target."""
        return {t["scrapeUrl"]: t["health"] for t in self.api("targets")["activeTargets"]}
