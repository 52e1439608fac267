"""TLS a setting away (SPEC section 6): a real pair on https, peers verified against HS_TLS_CA_FILE."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lab.localpair import ADDR
from lab.waiting import holds_for, wait_until
from tests.security.pki import CertificateAuthority
from tests.security.tlspair import TlsPair, running_tls_pair, tls_env

pytestmark = pytest.mark.integration


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki")


@pytest.fixture
def tls_pair(tmp_path: Path, ca: CertificateAuthority) -> Iterator[TlsPair]:
    """Both nodes on https with certificates for their addresses from one CA; started and settled."""
    env = {n: tls_env(ca.issue(n, ADDR[n]), ca.ca_file) for n in ADDR}
    with running_tls_pair(tmp_path / "pair", env, [ca.ca_file]) as pair:
        pair.start()
        pair.wait_active("server1", pair.bound_r1 + 5)
        yield pair


def test_failover_switch_and_replication_work_over_tls(tls_pair: TlsPair) -> None:
    """Probe, exchange, role command and config pull all run over verified https: the pair works as on http."""
    p = tls_pair
    wait_until(lambda: p.status("server1")["peer"]["status"] == "Standby (Backup)", 5, "server2 seen over TLS")
    assert p.ft("server1") == 200 and p.ft("server2") == 503

    r = p.admin("PUT", "server1", "/config", {"cti_restart_time": "03:17"})
    assert r.status_code == 200
    wait_until(lambda: p.http.get(p.arbiter_url("server2") + "/config").json()["settings"]["cti_restart_time"]
               ["value"] == "03:17", 10, "the change replicated to server2 over TLS")

    done = p.cli("switch", "server2", ca_file=p.trust[0])
    assert done.returncode == 0, done.stderr
    p.wait_active("server2", 10)

    p.nodes["server2"].kill()
    took = p.wait_active("server1", p.bound_r1 + 3)
    assert took <= p.bound_r1 + 3


def test_plain_http_and_unverified_clients_are_refused(tls_pair: TlsPair) -> None:
    """Plain http to a TLS port gets no answer; a client not trusting the CA refuses the node (CLI included)."""
    p = tls_pair
    for url in (p.arbiter_url("server1"), p.monitor_url("server2")):
        with pytest.raises(httpx.TransportError):
            httpx.get(url.replace("https://", "http://") + "/healthz", timeout=2, trust_env=False)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(url + "/healthz", timeout=2, trust_env=False)

    refused = p.cli("status", "--json")
    assert refused.returncode == 1 and "cannot reach the arbiter" in refused.stderr
    ok = p.cli("status", "--json", ca_file=p.trust[0])
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["local"]["role"] == "ACTIVE"


def test_a_peer_certificate_from_another_ca_is_refused_without_a_role_change(tmp_path: Path,
                                                                              ca: CertificateAuthority) -> None:
    """server2 presents a certificate from a rogue CA: server1 refuses every call it makes to server2 (it shows
    server2 in Error whenever it had to ask itself) and stays ACTIVE; server2, which can verify server1, sees a
    healthy ACTIVE and stays STANDBY. With the compact exchange the STANDBY asks (protocol 2), so server1 also
    hears server2's own signed asks, and Error is not shown on every tick: no role may change either way."""
    rogue = CertificateAuthority(tmp_path / "rogue", name="rogue CA")
    env = {"server1": tls_env(ca.issue("server1", ADDR["server1"]), ca.ca_file),
           "server2": tls_env(rogue.issue("server2", ADDR["server2"]), ca.ca_file)}
    with running_tls_pair(tmp_path / "pair", env, [ca.ca_file, rogue.ca_file]) as p:
        p.start("server1")
        p.wait_active("server1", p.bound_r1 + 5)
        epoch = p.status("server1")["local"]["epoch"]
        p.start("server2")

        def refused() -> bool:
            peer = p.status("server1")["peer"]
            return peer["status"] == "Error" and not peer["reachable"]

        wait_until(lambda: p.status("server2")["peer"]["role"] == "ACTIVE", 10, "server2 seeing server1 ACTIVE")
        wait_until(refused, p.bound_r1 + 5, "server1 showing server2 in Error")

        def unchanged() -> bool:
            s1, s2 = p.status("server1"), p.status("server2")
            return (s1["local"]["role"], s1["local"]["epoch"], s2["local"]["role"]) == ("ACTIVE", epoch, "STANDBY")

        holds_for(unchanged, (p.failures + 2) * p.interval, "ACTIVE/STANDBY with server2 refused")
        metrics = p.http.get(p.arbiter_url("server1") + "/metrics").text
        failures = [ln for ln in metrics.splitlines() if ln.startswith("hotstandby_peer_probe_failures_total{")]
        assert failures and float(failures[0].split()[-1]) >= p.failures
