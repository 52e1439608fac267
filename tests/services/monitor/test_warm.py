"""Warm CTI mode: the supervisor keeps the real simulator idle on the STANDBY and switches it by stdin,
with the real CTI manager as the judge of "never registered on a STANDBY" (R9 in warm mode)."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from datetime import datetime

import pytest

from services.monitor.supervisor import CtiSupervisor
from tests.services.ctisim.helpers import holder_ids, state

from .test_supervisor import PY, ROOT, Recorder, alive, assert_dies_with_its_node, closing, run, until


@pytest.fixture
def url(manager_url: str) -> str:
    """The CTI manager simulator (tests/services/conftest.py), forgotten before each test."""
    return manager_url


def warm_sim(url: str, events: Recorder, **kw: object) -> CtiSupervisor:
    """The bundled simulator (0 ports, 1 device) under a warm supervisor, as server2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HS_")} | {"PYTHONPATH": str(ROOT)}
    return CtiSupervisor([PY, "-m", "services.ctisim.sim", "--ports", "0", "--devices", "1", "--manager-url", url,
                          "--node-id", "server2"], env=env, restart_delay=lambda: 0.5, on_event=events,
                         warm=True, **kw)  # type: ignore[arg-type]


def test_warm_idles_unregistered_registers_on_start_and_unregisters_before_idle_returns(url: str) -> None:
    """One process throughout: idle and unregistered, registered with the epoch once started, unregistered
    by the time idle() returns; /cti says stopped while it idles and running once registered."""
    events = Recorder()
    sup = warm_sim(url, events, stop_grace_s=5.0)

    async def body() -> None:
        await sup.idle("node is STANDBY")
        await until(lambda: sup.snapshot()["idle"], timeout=10, what="the idle process")
        snap = sup.snapshot()
        pid = snap["pid"]
        assert (snap["state"], snap["mode"], snap["restarts"], holder_ids(url)) == ("stopped", "warm", 0, [])
        assert sup.self_check() is None
        await sup.start(epoch=9)
        await until(lambda: sup.up, timeout=5, what="READY after ACTIVE")
        assert (sup.snapshot()["pid"], sup.snapshot()["devices_registered"]) == (pid, 1)
        assert [(h["node_id"], h["epoch"]) for h in state(url)["holders"]] == [("server2", 9)]
        started = time.monotonic()
        await sup.idle("node is STANDBY")
        assert time.monotonic() - started < 2.5  # on its IDLE answer, not at the 5 s grace
        assert (holder_ids(url), state(url)["lapses_total"]) == ([], 0)  # unregistered, not lapsed
        assert (sup.snapshot()["state"], sup.snapshot()["pid"], alive(pid)) == ("stopped", pid, True)
        await sup.start(epoch=10)
        await until(lambda: sup.up, timeout=5, what="READY again")
        assert ([h["epoch"] for h in state(url)["holders"]], sup.restarts) == ([10], 0)  # promotions are no restarts
        await sup.stop("node shutdown")
        assert (holder_ids(url), alive(pid)) == ([], False)

    run(lambda: closing(sup, body))
    texts = events.texts()
    assert "CTI server activated, pid" in texts[1] and "epoch 9" in texts[1]
    assert "CTI server deactivated (node is STANDBY)" in texts


def test_warm_start_with_no_process_spawns_then_activates(url: str) -> None:
    """A promotion that finds no idle process (first start, or just crashed) spawns one and activates it."""
    sup = warm_sim(url, Recorder())

    async def body() -> None:
        await sup.start(epoch=3)
        await until(lambda: sup.up, timeout=10, what="READY")
        assert holder_ids(url) == ["server2"]

    run(lambda: closing(sup, body))


def test_warm_watchdog_respawns_an_idle_process_unregistered(url: str) -> None:
    """The idle process killed: respawned idle within I, counted as a restart, never registered."""
    sup = warm_sim(url, Recorder())

    async def body() -> None:
        await sup.idle()
        await until(lambda: sup.snapshot()["idle"], timeout=10, what="idle")
        pid = sup.snapshot()["pid"]
        os.kill(pid, signal.SIGKILL)
        await until(lambda: sup.snapshot()["idle"] and sup.snapshot()["pid"] != pid, timeout=10, what="respawn")
        assert (sup.restarts, sup.snapshot()["state"], state(url)["registrations_total"]) == (1, "stopped", 0)

    run(lambda: closing(sup, body))


def test_warm_daily_restart_renews_the_idle_process_too(url: str) -> None:
    """At cti_restart_time the idle process of a warm STANDBY is restarted (and counted), still unregistered."""
    wall = [datetime(2026, 11, 25, 3, 29, 50)]
    events = Recorder()
    sup = warm_sim(url, events, wall=lambda: wall[0], daily_check_s=0.05)

    async def body() -> None:
        sup.set_daily_restart("03:30")
        await sup.idle()
        await until(lambda: sup.snapshot()["idle"], timeout=10, what="idle")
        pid = sup.snapshot()["pid"]
        wall[0] = datetime(2026, 11, 25, 3, 30, 5)
        await until(lambda: sup.restarts == 1, what="daily restart by the background loop")
        await until(lambda: sup.snapshot()["idle"], timeout=10, what="the new process idle")
        assert (sup.snapshot()["pid"] != pid, state(url)["registrations_total"]) == (True, 0)

    run(lambda: closing(sup, body))
    assert any(t.startswith("CTI server restarted (daily restart at 03:30), pid ") and t.endswith("idle (warm)")
               for t in events.texts())


DEAF = textwrap.dedent(
    """
    import sys, time
    print("HS-CTI IDLE", flush=True)
    for line in sys.stdin:
        if line.startswith("ACTIVE"):
            print("HS-CTI READY", flush=True)   # then ignores STANDBY
    """
)
EAGER = 'print("HS-CTI IDLE", flush=True); print("HS-CTI READY", flush=True); import time; time.sleep(60)'


def test_warm_child_that_ignores_standby_is_killed_and_replaced_within_the_grace() -> None:
    """A CTI server that does not answer STANDBY with IDLE is killed after stop_grace_s, and a fresh idle
    one takes its place: idle() never leaves a registered process behind."""
    events = Recorder()
    sup = CtiSupervisor([PY, "-c", DEAF], restart_delay=lambda: 0.5, on_event=events, warm=True, stop_grace_s=0.3)

    async def body() -> None:
        await sup.start(epoch=1)
        await until(lambda: sup.up, timeout=10, what="READY")
        pid = sup.snapshot()["pid"]
        started = time.monotonic()
        await sup.idle("node is STANDBY")
        took = time.monotonic() - started
        assert not alive(pid)
        assert 0.3 <= took < 3.0
        await until(lambda: sup.snapshot()["idle"], timeout=10, what="the fresh idle process")
        assert sup.snapshot()["pid"] != pid

    run(lambda: closing(sup, body))
    assert any("did not go idle within 0.3 s and was replaced" in t for t in events.texts())


@pytest.mark.parametrize(("program", "why"), [
    (EAGER, "said READY without being told ACTIVE"),
    ("import time; time.sleep(60)", "did not say HS-CTI IDLE within 0.5 s of its start"),
])
def test_warm_child_that_breaks_the_protocol_is_killed(program: str, why: str) -> None:
    """A warm child that registers unasked, or never says IDLE, is killed: it could be registered on a STANDBY."""
    events = Recorder()
    sup = CtiSupervisor([PY, "-c", program], restart_delay=lambda: 5.0, on_event=events, warm=True, warm_idle_s=0.5)

    async def body() -> None:
        await sup.idle()
        await until(lambda: sup.snapshot()["pid"] is not None, timeout=10, what="spawn")
        pid = sup.snapshot()["pid"]
        await until(lambda: not alive(pid), timeout=10, what="the kill")
        assert not sup.up

    run(lambda: closing(sup, body))
    assert any(why in t for t in events.texts()), events.texts()


def test_warm_idle_cti_dies_when_the_node_process_is_sigkilled(url: str) -> None:
    """SIGKILL of the node takes its idle CTI process with it (parent-death signal, and the end of stdin)."""
    helper = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {str(ROOT)!r})
        from services.monitor.supervisor import CtiSupervisor

        async def main():
            sup = CtiSupervisor([sys.executable, "-m", "services.ctisim.sim", "--manager-url", {url!r}],
                                restart_delay=lambda: 1.0, warm=True)
            await sup.idle()
            while not sup.snapshot()["idle"]:
                await asyncio.sleep(0.01)
            print(sup.snapshot()["pid"], flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HS_")} | {"PYTHONPATH": str(ROOT)}
    assert_dies_with_its_node(helper, env)
