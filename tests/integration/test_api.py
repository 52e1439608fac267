"""The documented interface of one running pair: endpoints, status codes, auth, startup refusals."""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import pytest

from hotstandby.peerauth import sign
from lab.localpair import HOTSTANDBY, ROOT, SECRET, Pair
from lab.waiting import wait_until


@pytest.mark.parametrize("path", ["/IPSCFG/admin/monitor.aspx", "/monitor", "/ipscfg/ADMIN/Monitor.ASPX", "/MONITOR"])
@pytest.mark.parametrize("mod", ["NONE", "none", "NoNe"])
def test_mod_none_answers_ok_on_every_compat_path(started: Pair, path: str, mod: str) -> None:
    """Like IIS, the monitor path and the mod value match case-insensitively."""
    r = httpx.get(f"{started.monitor_url('server2')}{path}?mod={mod}")
    assert (r.status_code, r.text) == (200, "OK")


def test_role_and_health_probes_answer_with_status_codes(started: Pair) -> None:
    """mod=FT is 200 ACTIVE / 503 STANDBY; IPSWS is 200 IPSWS=OK; an unknown mod is 400."""
    s1, s2 = started.monitor_url("server1"), started.monitor_url("server2")
    assert (httpx.get(f"{s1}/monitor?mod=FT").status_code, httpx.get(f"{s1}/monitor?mod=FT").text) == (200, "ACTIVE")
    assert (httpx.get(f"{s2}/monitor?mod=ft").status_code, httpx.get(f"{s2}/monitor?mod=ft").text) == (503, "STANDBY")
    wait_until(lambda: httpx.get(f"{s1}/monitor?mod=IPSWS").text == "IPSWS=OK", 5, "IPSWS=OK on the ACTIVE")
    assert httpx.get(f"{s2}/monitor?mod=IPSWS").text == "IPSWS=OK"
    bad = httpx.get(f"{s1}/IPSCFG/admin/monitor.aspx?mod=BOGUS")
    assert bad.status_code == 400 and "BOGUS" in bad.text


def test_whoami_and_cti_describe_the_node(started: Pair) -> None:
    """/whoami names the node and address; /cti has state, pid, restarts and registration counts."""
    assert httpx.get(started.monitor_url("server2") + "/whoami").json() == {"node_id": "server2",
                                                                            "address": "127.0.0.12"}
    cti = wait_until(lambda: (c := httpx.get(started.monitor_url("server1") + "/cti").json())["state"] == "running"
                     and c, 10, "CTI running")
    assert cti["ports_registered"] == 2 and cti["devices_registered"] == 2 and cti["pid"] > 0
    assert httpx.get(started.monitor_url("server2") + "/cti").json()["state"] == "stopped"


def test_cti_commands_need_the_admin_token(started: Pair) -> None:
    """POST /cti/* is 401 without the token, 409 on the STANDBY, and restarts CTI on the ACTIVE (counted)."""
    s1, s2 = started.monitor_url("server1"), started.monitor_url("server2")
    assert httpx.post(f"{s1}/cti/restart").status_code == 401
    headers = {"authorization": "Bearer test-admin-token-abcdef"}
    assert httpx.post(f"{s2}/cti/start", headers=headers).status_code == 409
    r = httpx.post(f"{s1}/cti/restart", headers=headers, timeout=10)
    assert r.status_code == 200 and r.json()["restarts"] == 1
    assert "admin call refused: POST /cti/restart" in started.nodes["server1"].ftlog()


def test_status_carries_every_documented_field(started: Pair) -> None:
    """GET /status: local and peer with the SPEC's fields, settings and the expected failover delay."""
    s = started.status("server1")
    for side in ("local", "peer"):
        assert {"node_id", "address", "rank", "role", "status", "epoch", "role_since"} <= set(s[side])
    assert {"consecutive_failures", "consecutive_successes", "lan_ok", "cti", "maintenance"} <= set(s["local"])
    assert s["local"]["rank"] == "primary" and s["peer"]["rank"] == "backup"
    assert s["local"]["epoch"] >= 1
    wait_until(lambda: started.status("server1")["peer"]["epoch"] == s["local"]["epoch"], 5,
               "the peer's epoch converging on the exchange")
    # N·I + T + CTI startup (0.5 s connect + 0.2 s × (2 ports + 2 devices)).
    assert s["expected_failover_delay_s"] == pytest.approx(3 * 0.5 + 0.5 + 0.5 + 0.8)
    assert s["settings"]["failures_to_switch"] == 3


def test_healthz_and_metrics_on_both_services(started: Pair) -> None:
    """/healthz is 200 on both services; /metrics carries the SPEC's metrics with a node label."""
    assert httpx.get(started.arbiter_url("server1") + "/healthz").status_code == 200
    assert httpx.get(started.monitor_url("server1") + "/healthz").status_code == 200
    text = httpx.get(started.arbiter_url("server1") + "/metrics").text
    for name in ("hotstandby_role{node=\"server1\"} 1.0", "hotstandby_peer_probe_seconds_bucket",
                 "hotstandby_peer_probe_failures_total", "hotstandby_peer_consecutive_failures",
                 "hotstandby_lan_ok", "hotstandby_clock_skew_seconds", "hotstandby_expected_failover_delay_seconds",
                 "hotstandby_maintenance",
                 'hotstandby_role_changes_total{cause="no_active",node="server1",to="ACTIVE"}'):
        assert name in text, name
    mon = httpx.get(started.monitor_url("server1") + "/metrics").text
    assert 'hotstandby_cti_up{node="server1"}' in mon and "hotstandby_cti_restarts_total" in mon


def test_openapi_and_docs_are_served(started: Pair) -> None:
    """Both services serve /openapi.json and /docs."""
    for base in (started.arbiter_url("server1"), started.monitor_url("server1")):
        spec = httpx.get(base + "/openapi.json").json()
        assert spec["openapi"].startswith("3.")
        assert httpx.get(base + "/docs").status_code == 200
    assert "/switch" in httpx.get(started.arbiter_url("server1") + "/openapi.json").json()["paths"]


def test_peer_calls_need_a_valid_signature_and_refuse_replays(started: Pair) -> None:
    """A signed call is accepted once; replayed, forged, altered or unsigned it is 401 and logged."""
    url = started.arbiter_url("server2")
    path = "/peer/config?digest=x"
    headers = sign(SECRET, "GET", path, b"", node="server1")
    assert httpx.get(url + path, headers=headers).status_code == 200
    assert httpx.get(url + path, headers=headers).status_code == 401  # replay
    forged = sign("wrong-secret", "GET", path, b"", node="server1")
    assert httpx.get(url + path, headers=forged).status_code == 401
    assert httpx.get(url + path).status_code == 401
    body = json.dumps({"role": "STANDBY", "epoch": 99}).encode()
    signed = sign(SECRET, "POST", "/peer/role", body, node="server1")
    altered = body.replace(b"STANDBY", b"ACTIVE\x20")
    r = httpx.post(url + "/peer/role", content=altered, headers=signed | {"content-type": "application/json"})
    assert r.status_code == 401
    log = started.nodes["server2"].ftlog()
    assert "replayed request" in log and "bad signature" in log and "unsigned request" in log
    assert SECRET not in log and SECRET not in started.nodes["server2"].output()
    assert started.role("server2") == "STANDBY"


def test_admin_calls_refuse_a_missing_or_wrong_token(started: Pair) -> None:
    """POST /switch, /maintenance and PUT /config are 401 without the right Bearer token."""
    for token in (None, "wrong"):
        assert started.admin("POST", "server1", "/switch", {"target": "server2"}, token=token).status_code == 401
        assert started.admin("POST", "server1", "/maintenance", {"enabled": True}, token=token).status_code == 401
        assert started.admin("PUT", "server1", "/config", {"failures_to_switch": 4}, token=token).status_code == 401
    assert started.role("server1") == "ACTIVE"


@pytest.mark.parametrize(("body", "field"), [
    ({"heartbeat_timeout_s": 5, "heartbeat_interval_s": 1}, "heartbeat_timeout_s"),
    ({"failures_to_switch": 0}, "failures_to_switch"),
    ({"heartbeat_interval_s": 0.01}, "heartbeat_interval_s"),
    ({"server2_address": "127.0.0.11"}, "server2_address"),
    ({"server1_address": "not a host!"}, "server1_address"),
    ({"bogus": 1}, "bogus"),
    ({"failures_to_switch": "many"}, "failures_to_switch"),
])
def test_bad_config_is_422_naming_the_field_and_changes_nothing(started: Pair, body: dict, field: str) -> None:
    """PUT /config with a bad value: 422 naming the field, and GET /config is unchanged."""
    before = httpx.get(started.arbiter_url("server1") + "/config").json()
    r = started.admin("PUT", "server1", "/config", body | {"auto_failback": False})
    assert r.status_code == 422
    assert field in r.text
    assert httpx.get(started.arbiter_url("server1") + "/config").json() == before


def test_switch_with_a_bad_target_is_422(started: Pair) -> None:
    """POST /switch with a target that is not a node is 422 naming `target`."""
    r = started.admin("POST", "server1", "/switch", {"target": "server3"})
    assert r.status_code == 422 and "target" in r.text


def test_logs_endpoints(started: Pair) -> None:
    """GET /logs is today's text, ?format=json parses it, /logs/days lists days."""
    base = started.arbiter_url("server1")
    text = httpx.get(base + "/logs").text
    assert "SWITCH THIS SERVER TO PRIMARY" in text
    entries = httpx.get(base + "/logs?format=json").json()
    assert entries and {"at", "component", "message"} <= set(entries[0])
    days = httpx.get(base + "/logs/days").json()
    assert days == [time.strftime("%Y-%m-%d")]
    assert httpx.get(base + f"/logs?day={days[0]}").text.startswith(text)  # the same file, maybe grown since
    assert httpx.get(base + "/logs?day=notaday").status_code == 422


def _run_node(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HS_")}
    return subprocess.run([*HOTSTANDBY, "node"], env=clean | env, capture_output=True, text=True, timeout=30, cwd=ROOT)


def test_node_refuses_to_start_without_a_peer_secret(tmp_path) -> None:
    """SPEC 6: enabled and no HS_PEER_SECRET → one clear line and exit status 2."""
    r = _run_node({"HS_DATA_DIR": str(tmp_path), "HS_NODE_ID": "server1", "HS_BIND_HOST": "127.0.0.11",
                   "HS_PEER_SECRET": ""})
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "HS_PEER_SECRET" in r.stderr


@pytest.mark.parametrize(("var", "value"), [
    ("HS_HEARTBEAT_TIMEOUT_S", "60"), ("HS_FAILURES_TO_SWITCH", "101"), ("HS_NODE_ID", "server3"),
    ("HS_SERVER1_ADDRESS", "bad host"), ("HS_ENABLED", "perhaps"),
])
def test_bad_environment_refuses_to_start_naming_the_variable(tmp_path, var: str, value: str) -> None:
    """A bad setting in the environment: exit 2 with one line naming the variable."""
    env = {"HS_DATA_DIR": str(tmp_path), "HS_PEER_SECRET": "x", "HS_BIND_HOST": "127.0.0.11", var: value}
    r = _run_node(env)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and var in r.stderr
