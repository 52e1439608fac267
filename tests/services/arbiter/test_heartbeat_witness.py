"""The arbiter's tick with a real etcd as its witness (SPEC 12): the peer is dead (a closed port), the clock
is injected, so the tests drive ticks and time instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from hotstandby.ftlog import FaultTolerantLog
from hotstandby.hlc import HybridClock
from hotstandby.metrics import ArbiterMetrics
from hotstandby.model import Role
from hotstandby.settings import ClusterSettings, NodeSettings
from hotstandby.store import Store
from hotstandby.witness import EtcdWitness, key_for
from lab.etcd import ETCD, Etcd, running_etcd
from services.arbiter.config import ConfigBook
from services.arbiter.heartbeat import Arbiter
from services.arbiter.peer import PeerClient
from tests.needs import need
from tests.services.arbiter.test_heartbeat import FakeClock, RecordingCti


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Etcd]:
    need(ETCD, "etcd-server")
    with running_etcd(tmp_path_factory.mktemp("etcd")) as e:
        yield e


def make(tmp_path: Path, etcd: Etcd, clock: FakeClock, cluster: str, **kw: Any) -> tuple[Arbiter, RecordingCti]:
    """server2 with a dead peer (nothing listens at 127.0.0.1:9) and ``etcd`` as its witness; I = 0.5, N = 3."""
    cfg = ClusterSettings(server1_address="127.0.0.1", server2_address="127.0.0.2", monitor_port=9, arbiter_port=9,
                          heartbeat_interval_s=0.5, heartbeat_timeout_s=0.3, failures_to_switch=3, **kw)
    node = NodeSettings(node_id="server2", data_dir=tmp_path, peer_secret="s", cluster_name=cluster,
                        witness_url=etcd.url)
    store = Store(node.db_path)
    hlc = HybridClock(time.time)
    config = ConfigBook(store, hlc, node.node_id, cfg)
    cti = RecordingCti()
    witness = EtcdWitness(node.witness_url, cluster=cluster, node_id=node.node_id, clock=clock)
    arbiter = Arbiter(node=node, store=store, ftlog=FaultTolerantLog(node.log_dir, node_id=node.node_id),
                      metrics=ArbiterMetrics(node.node_id), config=config, hlc=hlc,
                      peer=PeerClient(node, lambda: config.current), cti=cti, clock=clock, witness=witness)
    cti.arbiter = arbiter
    return arbiter, cti


def metric(arbiter: Arbiter, name: str) -> str:
    return next(line for line in generate_latest(arbiter.metrics.registry).decode().splitlines()
                if line.startswith(name + "{"))


def test_r1_takes_the_key_and_the_epoch_is_its_revision(tmp_path: Path, etcd: Etcd) -> None:
    """N failed probes: the STANDBY takes the key in one transaction, becomes ACTIVE in epoch = etcd's revision."""
    clock = FakeClock()
    arbiter, cti = make(tmp_path, etcd, clock, "r1")

    async def run() -> list[str]:
        out = []
        for _ in range(3):
            out.append((await arbiter.tick()).reason)
            clock.now += 0.5
        return out

    reasons = asyncio.run(run())
    record = etcd.get(key_for("r1"))
    assert reasons[2].startswith("SWITCH THIS SERVER TO PRIMARY, R1 failover")
    assert record is not None and record["value"] == {"node_id": "server2", "epoch": arbiter.state.epoch}
    assert arbiter.state.epoch == record["mod_revision"]
    assert cti.converged == [Role.ACTIVE]
    status = arbiter.status()["witness"]
    assert (status["url"], status["reachable"], status["holder"], status["lease_ttl_s"]) == (etcd.url, True,
                                                                                           "server2", 2.0)
    assert metric(arbiter, "hotstandby_witness_up") == 'hotstandby_witness_up{node="server2"} 1.0'
    assert "Witness found: " in arbiter.ftlog.read()


def test_r1_waits_while_the_peer_holds_a_live_key(tmp_path: Path, etcd: Etcd) -> None:
    """The silent peer still holds the key on a live lease: no promotion (the reason says why) until it lapses."""
    lease, _ = etcd.grant(30)
    put_at = etcd.put(key_for("held"), '{"node_id":"server1","epoch":7}', lease)
    clock = FakeClock()
    arbiter, cti = make(tmp_path, etcd, clock, "held")

    async def ticks(n: int) -> None:
        for _ in range(n):
            await arbiter.tick()
            clock.now += 0.5

    async def run() -> None:
        await ticks(5)
        assert arbiter.state.role is Role.STANDBY and cti.converged == []
        assert arbiter.last_reason == ("no action: server2 would take ACTIVE (R1) but the witness key is held by "
                                       "server1 (its lease has not expired): no promotion without the key")
        assert arbiter.status()["witness"]["holder"] == "server1"
        etcd.call("/v3/lease/revoke", {"ID": str(lease)})  # the dead peer's lease expires
        await ticks(1)
        assert arbiter.state.role is Role.ACTIVE
        kv = etcd.get(key_for("held"))
        assert kv is not None and kv["value"] == {"node_id": "server2", "epoch": arbiter.state.epoch}
        # The epoch is the revision the take landed at (a later rewrite of the same value may move
        # mod_revision on, as one did on a loaded CI machine), and above every revision before it.
        assert put_at < arbiter.state.epoch <= kv["mod_revision"]

    asyncio.run(run())


def test_an_active_cut_off_from_witness_and_peer_steps_down_at_l_minus_i(tmp_path: Path, etcd: Etcd) -> None:
    """ACTIVE, then etcd hangs and the peer is dead: at the tick where the last renewal is L − I old it goes
    STANDBY and stops CTI; the log and the metric say the witness was lost, and found again later."""
    clock = FakeClock()
    arbiter, cti = make(tmp_path, etcd, clock, "cut")

    async def run() -> list[tuple[float, Role]]:
        for _ in range(3):
            await arbiter.tick()
            clock.now += 0.5
        assert arbiter.state.role is Role.ACTIVE
        seen = []
        etcd.freeze()
        try:
            cut = clock.now
            for _ in range(4):
                await arbiter.tick()
                seen.append((clock.now - cut, arbiter.state.role))
                clock.now += 0.5
        finally:
            etcd.thaw()
        assert metric(arbiter, "hotstandby_witness_up") == 'hotstandby_witness_up{node="server2"} 0.0'
        await arbiter.tick()
        return seen

    seen = asyncio.run(run())
    # The last renewal was sent one tick (0.5 s) before the cut: L − I = 1.5 s is reached 1.0 s after it.
    assert seen == [(0.0, Role.ACTIVE), (0.5, Role.ACTIVE), (1.0, Role.STANDBY), (1.5, Role.STANDBY)]
    # Back: the peer is still dead and the key still names us, so R1 takes ACTIVE again at once.
    assert cti.converged == [Role.ACTIVE, Role.STANDBY, Role.ACTIVE]
    assert "R12 witness lost: last lease renewal 1.50 s ago" in arbiter.ftlog.read()
    assert "Witness lost: " in arbiter.ftlog.read()
    assert metric(arbiter, "hotstandby_witness_up") == 'hotstandby_witness_up{node="server2"} 1.0'
    assert arbiter.ftlog.read().count("Witness found: ") == 2


def test_without_a_witness_status_shows_null(tmp_path: Path) -> None:
    """HS_WITNESS_URL empty: status.witness is null and the metric 0; the arbiter behaves as before."""
    from tests.services.arbiter.test_heartbeat import make_arbiter

    arbiter, _ = make_arbiter(tmp_path, FakeClock())
    asyncio.run(arbiter.tick())
    assert arbiter.status()["witness"] is None
    assert metric(arbiter, "hotstandby_witness_up") == 'hotstandby_witness_up{node="server2"} 0.0'


def test_can_be_active_follows_the_witness_but_not_before_first_contact(tmp_path: Path, etcd: Etcd) -> None:
    """The exchange's can_be_active is true before the first renewal (a starting primary keeps R6), false
    while the witness does not answer (no failback or handover to it), true again once it answers."""
    clock = FakeClock()
    arbiter, _ = make(tmp_path, etcd, clock, "cba")

    async def run() -> list[bool]:
        seen = [arbiter.view()["can_be_active"]]
        etcd.freeze()
        try:
            await arbiter.tick()
            seen.append(arbiter.view()["can_be_active"])
        finally:
            etcd.thaw()
        await arbiter.tick()
        return [*seen, arbiter.view()["can_be_active"]]

    assert asyncio.run(run()) == [True, False, True]
