"""The arbiter's runtime on real edges (SQLite, HTTP to a closed port) with an injected clock."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from hotstandby.ftlog import FaultTolerantLog
from hotstandby.hlc import HybridClock
from hotstandby.metrics import ArbiterMetrics
from hotstandby.model import Role
from hotstandby.settings import ClusterSettings, NodeSettings
from hotstandby.store import Store
from services.arbiter.config import ConfigBook
from services.arbiter.heartbeat import Arbiter
from services.arbiter.peer import PeerClient


class RecordingCti:
    """The arbiter's CTI handle, seen from the CTI side: each time the arbiter asks CTI to converge, it records
    the role the database holds at that moment (what a separate monitor would read), so a test sees whether the
    role was durable before CTI followed it. The supervisor itself has its own tests."""

    def __init__(self) -> None:
        self.converged: list[Role] = []
        self.arbiter: Arbiter | None = None

    async def converge(self) -> None:
        assert self.arbiter is not None
        store = Store(self.arbiter.node.db_path)  # a connection of its own, as a separate monitor has
        try:
            stored = store.load_node()
        finally:
            store.close()
        assert stored is not None
        self.converged.append(Role(stored.role))

    def snapshot(self) -> dict[str, Any]:
        return {"state": "stopped"}

    async def restart(self) -> str | None:
        return "not used by these tests"

    def vouch(self) -> tuple[bool, str | None]:
        return True, None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_arbiter(tmp_path: Path, clock: FakeClock, **cluster: Any) -> tuple[Arbiter, RecordingCti]:
    # The peer lives at an address where nothing listens: every probe fails at once (connection refused).
    cfg = ClusterSettings(server1_address="127.0.0.1", server2_address="127.0.0.2", monitor_port=9,
                          arbiter_port=9, heartbeat_interval_s=1, heartbeat_timeout_s=0.2, failures_to_switch=3,
                          **cluster)
    node = NodeSettings(node_id="server2", data_dir=tmp_path, peer_secret="s")
    store = Store(node.db_path)
    hlc = HybridClock(time.time)
    config = ConfigBook(store, hlc, node.node_id, cfg)
    cti = RecordingCti()
    arbiter = Arbiter(node=node, store=store, ftlog=FaultTolerantLog(node.log_dir, node_id=node.node_id),
                      metrics=ArbiterMetrics(node.node_id), config=config, hlc=hlc,
                      peer=PeerClient(node, lambda: config.current), cti=cti, clock=clock)
    cti.arbiter = arbiter
    return arbiter, cti


def test_healthz_turns_unhealthy_when_no_tick_completes_within_3_intervals(tmp_path: Path) -> None:
    """A loop that has not completed a tick for more than 3·I is reported unhealthy; a tick heals it."""
    clock = FakeClock()
    arbiter, _ = make_arbiter(tmp_path, clock)
    assert arbiter.healthy()[0] is True
    clock.now += 3.0
    assert arbiter.healthy()[0] is True
    clock.now += 0.01
    ok, why = arbiter.healthy()
    assert ok is False and "3·I" in why
    asyncio.run(arbiter.tick())
    assert arbiter.healthy()[0] is True


def test_n_ticks_against_a_dead_peer_promote_and_persist_before_cti(tmp_path: Path) -> None:
    """N failed probes: ACTIVE on the N-th tick, committed to SQLite by the time CTI is asked to start (the
    CTI side reads ACTIVE from the database when it is asked)."""
    arbiter, cti = make_arbiter(tmp_path, FakeClock())

    async def run() -> list[str]:
        return [(await arbiter.tick()).reason for _ in range(3)]

    reasons = asyncio.run(run())
    assert [r.startswith("SWITCH") for r in reasons] == [False, False, True]
    assert reasons[2].startswith("SWITCH THIS SERVER TO PRIMARY, R1 failover")
    assert cti.converged == [Role.ACTIVE]
    stored = arbiter.store.load_node()
    assert stored is not None and (stored.role, stored.epoch) == ("ACTIVE", 1)
    log = arbiter.ftlog.read()
    assert "Check primary server : failure detected, count = 3" in log


def test_maintenance_holds_a_standby_whose_peer_is_dead(tmp_path: Path) -> None:
    """R11 at the edge: with maintenance on, N and more failed probes change nothing."""
    arbiter, cti = make_arbiter(tmp_path, FakeClock())

    async def run() -> None:
        await arbiter.set_maintenance(True, "test")
        for _ in range(6):
            await arbiter.tick()

    asyncio.run(run())
    assert arbiter.state.role is Role.STANDBY and cti.converged == []
    assert arbiter.status()["local"]["consecutive_failures"] == 6
    assert arbiter.last_reason.startswith("PAUSE: maintenance on")


@pytest.mark.parametrize("failures", [1, 2])
def test_fewer_than_n_failures_never_switch(tmp_path: Path, failures: int) -> None:
    """R2 at the edge: N−1 failed ticks leave the node STANDBY."""
    arbiter, cti = make_arbiter(tmp_path, FakeClock())

    async def run() -> None:
        for _ in range(failures):
            await arbiter.tick()

    asyncio.run(run())
    assert arbiter.state.role is Role.STANDBY and cti.converged == []
