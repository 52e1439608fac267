"""Compose file, Dockerfile and systemd unit: structure checked without an engine to run them."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hotstandby.haproxy import CONTAINER_HOLD_LUA, hold_lua, render_haproxy
from hotstandby.settings import ClusterSettings, cluster_from_env

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping, so the anchors merge"
    return {str(k): str(v) for k, v in env.items()}


def test_compose_services(compose: dict[str, Any]) -> None:
    """Both nodes, the CTI manager simulator, HAProxy, and Prometheus behind a profile."""
    services = compose["services"]
    assert {"server1", "server2", "cti-manager", "haproxy", "prometheus"} == set(services)
    assert services["cti-manager"]["command"] == ["cti-manager", "--bind", "0.0.0.0:2748"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["haproxy"]["image"].startswith("haproxy:2.6")


@pytest.mark.parametrize("node_id", ["server1", "server2"])
def test_compose_node(compose: dict[str, Any], node_id: str, known_env: frozenset[str]) -> None:
    """A node: its fixed identity, only SPEC HS_* names, secrets as files, a data volume, a health check."""
    service = compose["services"][node_id]
    env = env_of(service)
    assert set(env) <= known_env, set(env) - known_env
    assert node_id == env["HS_NODE_ID"]
    assert (env["HS_SERVER1_ADDRESS"], env["HS_SERVER2_ADDRESS"]) == ("server1", "server2")
    assert not {"HS_PEER_SECRET", "HS_ADMIN_TOKEN"} & set(env), "secrets come from files"
    declared = set(compose["secrets"])
    assert {"peer_secret", "admin_token"} == set(service["secrets"]) == declared
    for var, secret in (("HS_PEER_SECRET_FILE", "peer_secret"), ("HS_ADMIN_TOKEN_FILE", "admin_token")):
        assert f"/run/secrets/{secret}" == env[var]
    volume, _, mount = service["volumes"][0].partition(":")
    assert volume in compose["volumes"]
    assert env["HS_DATA_DIR"] == mount
    assert "/healthz" in " ".join(service["healthcheck"]["test"])
    assert "node" in service["command"]


def test_compose_env_is_valid_cluster_settings(compose: dict[str, Any]) -> None:
    """The bootstrap settings in compose.yaml pass the settings model's own validation."""
    cluster = cluster_from_env(env_of(compose["services"]["server1"]))
    assert (cluster.heartbeat_interval_s, cluster.heartbeat_timeout_s, cluster.failures_to_switch) == (1.0, 1.0, 3)


def test_compose_haproxy_config_is_rendered_from_the_same_settings(compose: dict[str, Any], haproxy_check: Any) -> None:
    """deploy/compose/haproxy.cfg is `render_haproxy` for the nodes' settings, holding requests with the
    package's own Lua (mounted, not copied), and haproxy accepts it."""
    cluster = cluster_from_env(env_of(compose["services"]["server1"]))
    expected = render_haproxy(cluster, vip="0.0.0.0:8080", hold_lua=CONTAINER_HOLD_LUA)
    assert expected == (COMPOSE / "haproxy.cfg").read_text()
    volumes = compose["services"]["haproxy"]["volumes"]
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in volumes
    lua = next(v.split(":")[0] for v in volumes if v.split(":")[1] == CONTAINER_HOLD_LUA)
    assert (COMPOSE / lua).resolve().read_text() == hold_lua()
    result = haproxy_check(expected)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_prometheus_scrapes_both_nodes() -> None:
    """Prometheus scrapes the arbiter and the monitor of both nodes, and HAProxy."""
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert {"server1:2011", "server2:2011", "server1:8080", "server2:8080", "haproxy:8404"} == targets


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "docker" / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_structure() -> None:
    """python:3.11-slim, a numeric non-root user, both ports, a /healthz check, `hotstandby node`."""
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    last: dict[str, str] = {word: rest for word, rest in instructions}
    assert json.loads(last["ENTRYPOINT"]) == ["hotstandby"]
    assert json.loads(last["CMD"]) == ["node"]
    assert {"8080", "2011"} == set(last["EXPOSE"].split())
    user = last["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0, "numeric, non-root (runAsNonRoot can verify it)"
    assert "/healthz" in last["HEALTHCHECK"]
    assert any(word == "RUN" and "pip install ." in rest for word, rest in instructions)


def test_systemd_unit() -> None:
    """`hotstandby node` with the env file; SIGTERM to the node first (KillMode=mixed), 10 s to stop."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read(DEPLOY / "systemd" / "hotstandby.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("hotstandby node")
    assert service["EnvironmentFile"] == "/etc/hotstandby/env"
    assert (service["KillMode"], service["TimeoutStopSec"]) == ("mixed", "10")


def test_systemd_env_example(known_env: frozenset[str]) -> None:
    """The example env file uses only SPEC names and is a valid cluster bootstrap."""
    env = dict(
        line.split("=", 1)
        for line in (DEPLOY / "systemd" / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert set(env) <= known_env, set(env) - known_env
    assert isinstance(cluster_from_env(env), ClusterSettings)
