"""schemathesis against both services of a real pair: no 5xx, every response as documented.

The bounded run here (``HS_FUZZ_EXAMPLES``, default 10 per operation) is part of ``make test``;
``make fuzz`` runs the same with a large budget and a random seed. The admin token is sent, and
/peer/ calls are signed (tests/security/schemathesis_hooks.py), so every operation is exercised
past its authentication: switch, maintenance, config changes and peer heartbeats and role
commands with generated data, on a throwaway pair. Nothing is excluded; the one narrowing (T and I
at most 2 s in PUT /config) is explained in schemathesis_hooks.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.localpair import ROOT, SECRET, TOKEN, Pair, running_pair

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
EXAMPLES = int(os.environ.get("HS_FUZZ_EXAMPLES", "10"))
SEED = os.environ.get("HS_FUZZ_SEED", "20261125")  # fixed in make test; `make fuzz` passes a random one


@pytest.fixture(scope="module")
def fuzz_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """A started pair, server1 ACTIVE; the fuzzer may leave it in any state, so it is not shared further."""
    with running_pair(tmp_path_factory.mktemp("fuzz")) as pair:
        pair.start()
        pair.wait_active("server1", pair.bound_r1 + 5)
        yield pair


def schemathesis(url: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).parent / "schemathesis"), "--no-color", "--config-file",
           str(HERE / "schemathesis.toml"), "run", f"{url}/openapi.json", "--checks", "all",
           "-H", f"Authorization: Bearer {TOKEN}", "-n", str(EXAMPLES), "--generation-database", "none",
           "--request-timeout", "20"]
    if SEED:
        cmd += ["--seed", SEED]
    env = os.environ | {"SCHEMATHESIS_HOOKS": "tests.security.schemathesis_hooks", "HS_FUZZ_PEER_SECRET": SECRET,
                        "HS_FUZZ_PEER_NODE": "server2", "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)


@pytest.mark.timeout(3600)  # make fuzz: FUZZ_EXAMPLES=300 takes minutes
@pytest.mark.parametrize("service", ["monitor", "arbiter"])
def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzz_pair: Pair, service: str,
                                                                    tmp_path: Path) -> None:
    """Every generated request, valid or not, gets a documented status and a body matching its schema (and a
    run that generated or passed no case at all fails: a schema that no longer loads must not look green)."""
    url = fuzz_pair.monitor_url("server1") if service == "monitor" else fuzz_pair.arbiter_url("server1")
    run = schemathesis(url, tmp_path)
    summary = re.search(r"Test cases:\s*\n\s*(.+)", run.stdout)
    seed = re.search(r"Seed: (\d+)", run.stdout)
    print(f"\nschemathesis {service}: {summary.group(1) if summary else '?'} (seed {seed.group(1) if seed else '?'})")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    counts = re.match(r"(\d+) generated, (\d+) passed", summary.group(1)) if summary else None
    assert counts and min(map(int, counts.groups())) > 0, f"schemathesis ran no test case:\n{run.stdout[-3000:]}"
    assert "Traceback" not in fuzz_pair.nodes["server1"].output()
