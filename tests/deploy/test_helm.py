"""The Helm chart lints, renders valid Kubernetes 1.30 objects, and renders the same haproxy.cfg as Python."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hotstandby.haproxy import CONTAINER_HOLD_LUA, hold_lua, render_haproxy
from hotstandby.settings import ClusterSettings
from tests.needs import need_file

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "hotstandby"
K8S_VERSION = "1.30.0"
CRDS = {"ServiceMonitor"}  # not in the core schemas: checked by hand below


def template(helm: Path, *sets: str, namespace: str = "ha") -> list[dict[str, Any]]:
    args = [str(helm), "template", "hs", str(CHART), "--namespace", namespace]
    for item in sets:
        args += ["--set", item]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def node_env(docs: list[dict[str, Any]], node_id: str) -> dict[str, str]:
    (sts,) = [d for d in by_kind(docs, "StatefulSet") if d["metadata"]["name"].endswith(node_id)]
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item.get("value", "") for item in container["env"]}


NODE1 = "hs-hotstandby-server1.ha.svc.cluster.local"
NODE2 = "hs-hotstandby-server2.ha.svc.cluster.local"
TLS_WITNESS = (
    "tls.enabled=true",
    "tls.existingSecret=hs-tls",
    "witness.url=http://etcd-0.etcd:2379\\,http://etcd-1.etcd:2379",
    "serviceMonitor.enabled=true",
)

# name: (--set values, the ClusterSettings they amount to, render_haproxy's keyword arguments)
CASES: dict[str, tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]] = {
    "default": ((), {}, {}),
    "tls-witness": (TLS_WITNESS, {}, {"tls_ca_file": "/usr/local/etc/haproxy/tls/ca.crt"}),
    "vendor-app-error": (
        ("haproxy.mode=vendor", "cluster.switchOnApplicationError=true", "cluster.failuresToSwitch=5"),
        {"switch_on_application_error": True, "failures_to_switch": 5},
        {"mode": "vendor"},
    ),
    "no-hold": (("haproxy.holdRequests=false",), {}, {"hold_lua": None}),
    "sub-second-ips": (
        (
            "cluster.heartbeatIntervalS=0.2",
            "cluster.heartbeatTimeoutS=0.1",
            "cluster.server1Address=10.0.0.11",
            "cluster.server2Address=10.0.0.12",
            "haproxy.appPort=9000",
            "persistence.enabled=false",
            "auth.existingSecret=hs-auth",
            "antiAffinity=required",
        ),
        {
            "heartbeat_interval_s": 0.2,
            "heartbeat_timeout_s": 0.1,
            "server1_address": "10.0.0.11",
            "server2_address": "10.0.0.12",
        },
        {"app_port": 9000},
    ),
}


def test_chart_lints(helm: Path) -> None:
    """`helm lint --strict` finds nothing, with default and with TLS/witness values."""
    for sets in ((), TLS_WITNESS):
        args = [str(helm), "lint", "--strict", str(CHART)]
        for item in sets:
            args += ["--set", item]
        result = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_objects_are_valid_kubernetes(helm: Path, case: str) -> None:
    """Every rendered object passes strict schema validation for Kubernetes 1.30."""
    docs = template(helm, *CASES[case][0])
    for doc in docs:
        if doc["kind"] in CRDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    kinds = sorted({doc["kind"] for doc in docs})
    assert {"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "StatefulSet"} <= set(kinds)


@pytest.mark.parametrize("case", list(CASES))
def test_haproxy_config_matches_python_renderer(helm: Path, case: str, haproxy_check: Any) -> None:
    """The chart's haproxy.cfg is exactly `render_haproxy` for the same settings, and haproxy accepts it."""
    sets, cluster_kwargs, render_kwargs = CASES[case]
    docs = template(helm, *sets)
    (configmap,) = by_kind(docs, "ConfigMap")
    fields: dict[str, Any] = {
        "server1_address": NODE1,
        "server2_address": NODE2,
        "heartbeat_interval_s": 1,
        "heartbeat_timeout_s": 1,
        "failures_to_switch": 3,
    }
    render_kwargs = {"hold_lua": CONTAINER_HOLD_LUA} | render_kwargs
    expected = render_haproxy(ClusterSettings(**(fields | cluster_kwargs)), vip="0.0.0.0:8080", **render_kwargs)
    assert expected == configmap["data"]["haproxy.cfg"]
    if render_kwargs["hold_lua"]:
        assert configmap["data"]["hold.lua"] == hold_lua()  # the chart's copy is the package's own
    else:
        assert "hold.lua" not in configmap["data"]
    cfg = expected.replace("/usr/local/etc/haproxy/tls/ca.crt", "/etc/ssl/certs/ca-certificates.crt")
    if "ca-file" in cfg:
        need_file("/etc/ssl/certs/ca-certificates.crt", "ca-certificates")  # stands in for the TLS secret
    result = haproxy_check(cfg)
    assert result.returncode == 0, result.stdout + result.stderr


def test_nodes_have_fixed_identities_and_spec_env(helm: Path, known_env: frozenset[str]) -> None:
    """Two StatefulSets, server1 and server2, each with its identity and only HS_* names from SPEC section 2."""
    docs = template(helm)
    names = sorted(d["metadata"]["name"] for d in by_kind(docs, "StatefulSet"))
    assert names == ["hs-hotstandby-server1", "hs-hotstandby-server2"]
    for node_id, address in (("server1", NODE1), ("server2", NODE2)):
        env = node_env(docs, node_id)
        assert set(env) <= known_env, set(env) - known_env
        assert node_id == env["HS_NODE_ID"]
        assert address == env["HS_LOCAL_ADDRESS"]
        assert (env["HS_SERVER1_ADDRESS"], env["HS_SERVER2_ADDRESS"]) == (NODE1, NODE2)
        assert env["HS_PEER_SECRET_FILE"] == "/etc/hotstandby/secrets/peer-secret"
        assert "HS_PEER_SECRET" not in env  # secrets come from files, never inline
        assert env["HS_VIP_ADDRESS"] == "hs-hotstandby-vip.ha.svc.cluster.local:80"


def test_probes_security_and_storage(helm: Path) -> None:
    """Liveness on the arbiter's /healthz, readiness on mod=NONE, non-root, a PVC for the data dir."""
    docs = template(helm)
    for sts in by_kind(docs, "StatefulSet"):
        pod = sts["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert tuple(container["livenessProbe"]["httpGet"][k] for k in ("path", "port")) == ("/healthz", "arbiter")
        assert container["readinessProbe"]["httpGet"]["path"] == "/monitor?mod=NONE"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["data"]
    headless = [s for s in by_kind(docs, "Service") if s["spec"].get("clusterIP") == "None"]
    assert len(headless) == 2
    assert all(s["spec"]["publishNotReadyAddresses"] for s in headless)
    (secret,) = by_kind(docs, "Secret")
    assert {"peer-secret", "admin-token"} == set(secret["data"])


def test_tls_and_witness_values(helm: Path) -> None:
    """TLS mounts the certificate and switches the probes to HTTPS; the witness URL reaches the node."""
    docs = template(helm, *TLS_WITNESS)
    env = node_env(docs, "server1")
    assert env["HS_TLS_CERT_FILE"] == "/etc/hotstandby/tls/tls.crt"
    assert env["HS_TLS_CA_FILE"] == "/etc/hotstandby/tls/ca.crt"
    assert env["HS_WITNESS_URL"] == "http://etcd-0.etcd:2379,http://etcd-1.etcd:2379"
    (sts, _) = by_kind(docs, "StatefulSet")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    (monitor,) = by_kind(docs, "ServiceMonitor")
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["monitor", "arbiter"]


def test_tls_without_a_secret_is_refused(helm: Path) -> None:
    """tls.enabled without tls.existingSecret fails the render with a message that names the value."""
    args = [str(helm), "template", "hs", str(CHART), "--set", "tls.enabled=true"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "tls.existingSecret is required" in result.stderr


def test_existing_secret_is_used_instead_of_creating_one(helm: Path) -> None:
    """With auth.existingSecret the chart creates no Secret and mounts the named one."""
    docs = template(helm, "auth.existingSecret=hs-auth")
    assert by_kind(docs, "Secret") == []
    sts = by_kind(docs, "StatefulSet")[0]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["auth"]["secret"]["secretName"] == "hs-auth"
