"""Secrets never appear in a log line, status field, error or metric (SPEC section 6).

One pair with distinctive secrets and DEBUG logging goes through auth failures of every kind,
config changes, maintenance, a CLI switch, a kill -9 failover and a failback; then every
fault-tolerant log, the stdout JSON logs, every file in the data directories, every GET answer
of both services, the refusals' bodies, the CLI's output and the CTI child's environment are
searched for the two values.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from hotstandby.peerauth import sign
from lab.localpair import ADDR, running_pair
from lab.waiting import wait_until

pytestmark = pytest.mark.integration

PEER_SECRET = "peer-SECRET-7f3a9c1e5b2d4086-do-not-log"
ADMIN_TOKEN = "admin-TOKEN-c4e8a1f09b7d3265-do-not-log"
SECRETS = (PEER_SECRET, ADMIN_TOKEN)


def leaks(where: str, text: str | bytes) -> list[str]:
    """Names of the secrets found in ``text`` (also hex/partial: the first 12 characters suffice)."""
    data = text if isinstance(text, bytes) else text.encode(errors="replace")
    return [f"{where}: {s[:12]}..." for s in SECRETS if s[:12].encode() in data]


def test_no_secret_in_any_log_status_error_metric_or_file(tmp_path: Path) -> None:
    """After failover, auth failures and config changes, neither secret is found in anything a node wrote or said."""
    extra = {"HS_PEER_SECRET": PEER_SECRET, "HS_ADMIN_TOKEN": ADMIN_TOKEN, "HS_LOG_LEVEL": "DEBUG"}
    with running_pair(tmp_path, extra=extra) as p:
        p.start()
        p.wait_active("server1", p.bound_r1 + 5)
        said: list[tuple[str, str]] = []

        def keep(where: str, r: httpx.Response) -> httpx.Response:
            said.append((where, r.text + json.dumps(dict(r.headers))))
            return r

        # Auth failures of every kind: admin token missing, wrong, or the peer secret used by mistake;
        # a peer call signed with the wrong secret, one signed with the admin token, a replay.
        for token in (None, "wrong", PEER_SECRET):
            assert keep("admin refusal", p.admin("POST", "server1", "/maintenance", {"enabled": True},
                                                 token=token)).status_code == 401
        headers = {"authorization": f"Bearer {PEER_SECRET}"}
        assert keep("monitor refusal", httpx.post(p.monitor_url("server1") + "/cti/restart",
                                                  headers=headers)).status_code == 401
        body = b'{"role": "STANDBY", "epoch": 99}'
        for secret in ("wrong-secret", ADMIN_TOKEN):
            signed = sign(secret, "POST", "/peer/role", body, node="server2") | {"content-type": "application/json"}
            r = httpx.post(p.arbiter_url("server1") + "/peer/role", content=body, headers=signed)
            assert keep("peer refusal", r).status_code == 401
        good = sign(PEER_SECRET, "GET", "/peer/config?digest=x", b"", node="server2")
        for _ in range(2):  # the second is a replay
            keep("peer replay", httpx.get(p.arbiter_url("server1") + "/peer/config?digest=x", headers=good))
        assert said[-1][1].startswith('{"detail":"peer authentication failed: replayed')

        # Config changes (accepted and refused), maintenance, a switch by the CLI.
        assert keep("config", p.admin("PUT", "server1", "/config", {"cti_restart_time": "04:05"},
                                      token=ADMIN_TOKEN)).status_code == 200
        assert keep("config refusal", p.admin("PUT", "server1", "/config", {"failures_to_switch": 0},
                                              token=ADMIN_TOKEN)).status_code == 422
        for on in (True, False):
            assert keep("maintenance", p.admin("POST", "server2", "/maintenance", {"enabled": on},
                                               token=ADMIN_TOKEN)).status_code == 200
        cli = p.cli("switch", "server2", token=ADMIN_TOKEN)
        assert cli.returncode == 0, cli.stderr
        said.append(("CLI", cli.stdout + cli.stderr))
        p.wait_active("server2", 10)
        cli = p.cli("config", "set", "failures_to_switch=0", token=ADMIN_TOKEN)
        said.append(("CLI refusal", cli.stdout + cli.stderr))

        # A failover (kill -9 of the ACTIVE) and the failback when it returns.
        p.nodes["server2"].kill()
        p.wait_active("server1", p.bound_r1 + 3)
        p.nodes["server2"].start()
        wait_until(lambda: p.serving("server2"), 20, "server2 back")
        wait_until(lambda: p.status("server1")["peer"]["status"] == "Standby (Backup)", 10, "server2 STANDBY")

        cti_pid = wait_until(lambda: httpx.get(p.monitor_url("server1") + "/cti").json()["pid"], 10, "CTI pid")
        environ = Path(f"/proc/{cti_pid}/environ").read_bytes()

        found = leaks("CTI child environment", environ)
        for node_id in ADDR:
            a, m = p.arbiter_url(node_id), p.monitor_url(node_id)
            for url in (a + "/status", a + "/config", a + "/metrics", a + "/logs", a + "/logs?format=json",
                        a + "/logs/days", a + "/openapi.json", a + "/docs", a + "/healthz", a + "/",
                        m + "/cti", m + "/whoami", m + "/metrics", m + "/openapi.json", m + "/healthz",
                        m + "/monitor?mod=IPSWS", m + "/monitor?mod=FT"):
                r = httpx.get(url, timeout=5)
                found += leaks(f"GET {url}", r.text + json.dumps(dict(r.headers)))
            found += leaks(f"{node_id} stdout", p.nodes[node_id].output())
            found += leaks(f"{node_id} fault-tolerant log", p.nodes[node_id].ftlog())
            for f in sorted(p.nodes[node_id].data_dir.rglob("*")):
                if f.is_file():
                    found += leaks(str(f), f.read_bytes())
        for where, text in said:
            found += leaks(where, text)
        assert found == []
        assert "admin call refused" in p.nodes["server1"].ftlog() and "peer call refused" in p.nodes["server1"].ftlog()
        assert len(p.nodes["server1"].output().splitlines()) > 3  # the JSON logs were there to search
