"""What the Helm chart renders, run: its two StatefulSets' pods form a pair and its HAProxy follows it.

No Kubernetes runs here, so this test plays the part of the kubelet and the cluster DNS for what
`helm template` renders with the default values: each pod becomes processes in its own network
namespace of the fault lab (its own address, so ports and 0.0.0.0 binds are the pod's), started
with the container's command (the image's ENTRYPOINT from deploy/docker/Dockerfile when the pod
has none) and args, its env with Secret references resolved, and its volumes (Secret and
ConfigMap items written out, emptyDir and claims as directories) mapped to host paths. Service
names resolve to the addresses of the pods their selectors pick: through /etc/hosts in each
namespace (`ip netns exec` mounts /etc/netns/<ns>/hosts there) for the nodes' libc, and through a
small DNS server (lab/dns.py) for HAProxy's own run-time resolver, as a cluster's DNS would.

The pair must elect server1, fail over to server2 on kill -9, and take server1 back; the chart's
haproxy.cfg, run as rendered, must send traffic to exactly the ACTIVE node all along.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lab.netns import Lab, stop_process
from lab.netns import unavailable as lab_unavailable
from lab.waiting import wait_until
from tests.needs import missing, need

pytestmark = [pytest.mark.lab, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "hotstandby"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
NAMESPACE = "ha"
# The default values: I = T = 1 s, N = 3.
INTERVAL, TIMEOUT, N = 1.0, 1.0, 3
BOUND_R1 = N * INTERVAL + TIMEOUT + INTERVAL
BOUND_R6 = N * INTERVAL + TIMEOUT + INTERVAL
BOUND_VIP = 2.0
MARGIN = 3.0  # seconds on top of a SPEC bound: a loaded machine, as in tests/integration
# The programs the images run, found here: the node image's (our venv) and the haproxy image's.
PROGRAMS = {"hotstandby": str(Path(sys.executable).with_name("hotstandby"))}


@dataclass
class Pod:
    """One pod's container as the kubelet would start it, mapped onto a lab host."""

    name: str
    labels: dict[str, str]
    argv: list[str]
    env: dict[str, str]
    mounts: dict[str, Path] = field(default_factory=dict)  # mountPath -> host directory
    host: str = ""  # the lab host (network namespace) it runs on


def image_entrypoint(image: str) -> list[str]:
    """What the container's image runs before its args: the node image's ENTRYPOINT (exec form, read
    from the Dockerfile); the official haproxy image's entrypoint runs args that start with haproxy."""
    if image.split(":")[0].endswith("haproxy"):
        return []
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "the Dockerfile has an exec-form ENTRYPOINT"
    return list(json.loads(match.group(1)))


def render(helm: Path) -> list[dict[str, Any]]:
    args = [str(helm), "template", "hs", str(CHART), "--namespace", NAMESPACE]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def secret_data(docs: list[dict[str, Any]], name: str) -> dict[str, bytes]:
    (secret,) = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == name]
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def configmap_data(docs: list[dict[str, Any]], name: str) -> dict[str, bytes]:
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name]
    return {k: v.encode() for k, v in cm["data"].items()}


def materialize(docs: list[dict[str, Any]], workload: dict[str, Any], root: Path) -> Pod:
    """The workload's pod template, its volumes written under ``root`` and its env resolved."""
    template = workload["spec"]["template"]
    spec = template["spec"]
    (container,) = spec["containers"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        volumes[claim["metadata"]["name"]] = {"name": claim["metadata"]["name"], "persistentVolumeClaim": {}}
    pod = Pod(workload["metadata"]["name"], dict(template["metadata"]["labels"]), [], {})
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        where = root / pod.name / mount["name"]
        where.mkdir(parents=True, exist_ok=True)
        if "secret" in volume or "configMap" in volume:
            source = volume.get("secret") or volume["configMap"]
            data = (secret_data(docs, source["secretName"]) if "secret" in volume
                    else configmap_data(docs, source["name"]))
            items = source.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                (where / item["path"]).write_bytes(data[item["key"]])
        pod.mounts[mount["mountPath"]] = where
    for item in container.get("env", []):
        if "value" in item:
            value = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            value = secret_data(docs, ref["name"])[ref["key"]].decode()
        pod.env[item["name"]] = pod_path(pod, value)
    command = container.get("command") or image_entrypoint(container["image"])
    argv = [*command, *container.get("args", [])]
    pod.argv = [PROGRAMS.get(argv[0], argv[0]), *(pod_path(pod, a) for a in argv[1:])]
    return pod


def pod_path(pod: Pod, value: str) -> str:
    """A path inside the pod's filesystem, as the host path its volume is mapped to."""
    for mount_path, where in pod.mounts.items():
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(where) + value[len(mount_path.rstrip("/")):]
    return value


def service_names(docs: list[dict[str, Any]], pods: list[Pod], lab: Lab) -> dict[str, str]:
    """Every name a Service answers to in the cluster DNS -> the lab address of the pod it selects."""
    names = {}
    for svc in (d for d in docs if d["kind"] == "Service"):
        selector = svc["spec"]["selector"]
        (pod,) = [p for p in pods if selector.items() <= p.labels.items()]
        name = svc["metadata"]["name"]
        for form in (name, f"{name}.{NAMESPACE}", f"{name}.{NAMESPACE}.svc", f"{name}.{NAMESPACE}.svc.cluster.local"):
            names[form] = lab.addr(pod.host)
    return names


@dataclass
class Cluster:
    lab: Lab
    pods: dict[str, Pod]  # node id or "haproxy" -> pod
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    etc_netns: list[Path] = field(default_factory=list)

    def start(self, key: str) -> None:
        pod = self.pods[key]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", **pod.env}
        self.procs[key] = self.lab.spawn(pod.host, pod.argv, env=env, log=self.logs / f"{key}.log")

    def addr(self, key: str) -> str:
        return self.lab.addr(self.pods[key].host)

    def role(self, node: str) -> str | None:
        try:
            return str(httpx.get(f"http://{self.addr(node)}:2011/status", timeout=1).json()["local"]["role"])
        except (httpx.HTTPError, KeyError, ValueError):
            return None

    def serving(self, node: str) -> bool:
        try:
            return httpx.get(f"http://{self.addr(node)}:8080/monitor?mod=NONE", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def whoami(self) -> str | None:
        try:
            r = httpx.get(f"http://{self.addr('haproxy')}:8080/whoami", timeout=2)
        except httpx.HTTPError:
            return None
        return str(r.json()["node_id"]) if r.status_code == 200 else None

    def up_servers(self) -> list[str]:
        """The backend's servers HAProxy has UP, from its stats page (CSV)."""
        text = httpx.get(f"http://{self.addr('haproxy')}:8404/;csv", timeout=2).text.lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return sorted(r["svname"] for r in rows if r["pxname"] == "hotstandby"
                      and r["svname"] not in ("FRONTEND", "BACKEND") and r["status"].startswith("UP"))

    def routes_only_to(self, node: str) -> bool:
        """HAProxy has exactly ``node`` UP and the VIP answers from it."""
        return self.up_servers() == [node] and self.whoami() == node


@pytest.fixture
def cluster(helm: Path, tmp_path: Path) -> Iterator[Cluster]:
    reason = lab_unavailable()
    if reason:
        missing(reason)
    PROGRAMS["haproxy"] = need("haproxy", "haproxy")
    docs = render(helm)
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("StatefulSet", "Deployment")}
    assert set(workloads) == {"hs-hotstandby-server1", "hs-hotstandby-server2", "hs-hotstandby-haproxy"}
    lab = Lab().setup()
    logs = tmp_path / "logs"
    logs.mkdir()
    c = Cluster(lab, {}, logs)
    try:
        for key, host in (("server1", "server1"), ("server2", "server2"), ("haproxy", "infra")):
            workload = workloads[f"hs-hotstandby-{key}"]
            pod = materialize(docs, workload, lab.base / "pods")
            pod.host = host
            c.pods[key] = pod
        # The haproxy.cfg names its Lua file by its path in the pod: the ConfigMap's mount.
        hapod = c.pods["haproxy"]
        cfg = Path(hapod.argv[hapod.argv.index("-f") + 1])
        cfg.write_text(pod_path_text(hapod, cfg.read_text()))
        names = service_names(docs, list(c.pods.values()), lab)
        hosts = "".join(f"{address} {name}\n" for name, address in sorted(names.items()))
        for host in ("server1", "server2", "infra"):
            d = Path("/etc/netns") / lab.ns(host)
            d.mkdir(parents=True, exist_ok=True)
            c.etc_netns.append(d)
            (d / "hosts").write_text(f"127.0.0.1 localhost\n{hosts}")
            (d / "resolv.conf").write_text(f"nameserver {lab.addr('infra')}\noptions timeout:1 attempts:1\n")
        lab.spawn("infra", [sys.executable, "-m", "lab.dns", "--bind", f"{lab.addr('infra')}:53",
                            *(f"{n}={a}" for n, a in names.items())], log=logs / "dns.log")
        yield c
    finally:
        for p in c.procs.values():
            stop_process(p)
        lab.teardown()
        for d in c.etc_netns:
            shutil.rmtree(d, ignore_errors=True)


def pod_path_text(pod: Pod, text: str) -> str:
    """Every mount path named in a config file, as its host directory."""
    for mount_path, where in pod.mounts.items():
        text = text.replace(mount_path.rstrip("/") + "/", str(where) + "/")
    return text


def test_rendered_pods_form_a_pair_behind_the_rendered_haproxy(cluster: Cluster) -> None:
    """server1 elected, HAProxy on exactly it; kill -9 server1: server2 ACTIVE within R1's bound and
    HAProxy on exactly server2 within 2 s; server1 restarted: ACTIVE again and HAProxy back on it."""
    c = cluster
    env1 = c.pods["server1"].env
    assert env1["HS_SERVER2_ADDRESS"] == f"hs-hotstandby-server2.{NAMESPACE}.svc.cluster.local"
    secret1, secret2 = (Path(c.pods[n].env["HS_PEER_SECRET_FILE"]).read_text() for n in ("server1", "server2"))
    assert secret1 == secret2
    c.start("haproxy")
    c.start("server1")
    c.start("server2")
    wait_until(lambda: c.serving("server1") and c.serving("server2"), 60, "both pods serving")
    both_serving = time.monotonic()
    wait_until(lambda: c.role("server1") == "ACTIVE" and c.role("server2") == "STANDBY", BOUND_R6 + 10,
               "server1 ACTIVE, server2 STANDBY")
    assert time.monotonic() - both_serving <= BOUND_R6 + MARGIN
    wait_until(lambda: c.routes_only_to("server1"), 15, "HAProxy on server1 alone")

    c.lab.signal_host("server1", signal.SIGKILL)  # the node and its CTI child: the pod's processes
    killed = time.monotonic()
    wait_until(lambda: c.role("server2") == "ACTIVE", BOUND_R1 + 10, "server2 ACTIVE")
    promoted = time.monotonic()
    assert promoted - killed <= BOUND_R1 + MARGIN
    wait_until(lambda: c.routes_only_to("server2"), BOUND_VIP + 10, "HAProxy on server2 alone")
    assert time.monotonic() - promoted <= BOUND_VIP + MARGIN

    c.lab.clear_host("server1")
    c.start("server1")  # the pod restarted, its volume (the data dir) kept
    wait_until(lambda: c.role("server1") == "ACTIVE" and c.role("server2") == "STANDBY", 60,
               "server1 ACTIVE again (R3)")
    wait_until(lambda: c.routes_only_to("server1"), 15, "HAProxy back on server1 alone")
