"""The CTI server simulator as a real process, registering with a real manager process."""

from __future__ import annotations

import asyncio
import io
import signal
import time
from collections.abc import Callable

import httpx
import pytest

from lab.waiting import until
from services.ctisim.manager import create_app
from services.ctisim.sim import build_parser, run

from .helpers import ServerThread, SimProcess, free_port, holder_ids, state, wait_until

StartSim = Callable[..., SimProcess]


def test_lines_in_order_then_ready_after_the_registrations(manager_url: str, start_sim: StartSim) -> None:
    """Ports then devices, one line each 0.2 s apart, then READY once the manager holds it."""
    sim = start_sim("--ports", "2", "--devices", "3", "--manager-url", manager_url, "--node-id", "server1")
    ready = sim.wait_line("HS-CTI READY")
    assert sim.texts() == [
        "HS-CTI port 1/2",
        "HS-CTI port 2/2",
        "HS-CTI device 1/3",
        "HS-CTI device 2/3",
        "HS-CTI device 3/3",
        "HS-CTI READY",
    ]
    first = sim.lines[0][0]
    # Four more registrations after the first line at 0.2 s each (SPEC 9), then READY.
    assert ready - first >= 0.75
    # Registered before READY was printed: no polling needed.
    [holder] = state(manager_url)["holders"]
    assert (holder["node_id"], holder["epoch"], holder["ports"], holder["devices"]) == ("server1", 0, 2, 3)


def test_defaults_come_from_the_environment(manager_url: str, start_sim: StartSim) -> None:
    """HS_NODE_ID, HS_EPOCH and HS_CTI_MANAGER_URL are the defaults; 2 ports and 2 devices."""
    env = {"HS_NODE_ID": "server2", "HS_EPOCH": "7", "HS_CTI_MANAGER_URL": manager_url}
    sim = start_sim(env=env)
    sim.wait_line("HS-CTI READY")
    assert len(sim.texts()) == 5
    [holder] = state(manager_url)["holders"]
    assert (holder["node_id"], holder["epoch"], holder["ports"], holder["devices"]) == ("server2", 7, 2, 2)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_unregisters_and_exits_0(manager_url: str, start_sim: StartSim, sig: signal.Signals) -> None:
    """A clean stop unregisters before the process exits (no lapse), with exit status 0."""
    sim = start_sim("--ports", "0", "--devices", "1", "--manager-url", manager_url)
    sim.wait_line("HS-CTI READY")
    sim.signal(sig)
    assert sim.wait() == 0
    after = state(manager_url)
    assert (after["holders"], after["unregistrations_total"], after["lapses_total"]) == ([], 1, 0)


def test_a_killed_sim_lapses_half_a_second_later(manager_url: str, start_sim: StartSim) -> None:
    """SIGKILL leaves the registration to lapse about 0.5 s after the last keepalive."""
    sim = start_sim("--ports", "0", "--devices", "0", "--manager-url", manager_url)
    sim.wait_line("HS-CTI READY")
    # Let a few keepalives go by so the lapse is measured from a keepalive, not the registration.
    wait_until(lambda: state(manager_url)["keepalives_total"] >= 3, what="keepalives")
    killed = sim.signal(signal.SIGKILL)
    wait_until(lambda: holder_ids(manager_url) == [], timeout=3, what="the holder to lapse")
    gone = time.monotonic() - killed
    # Last keepalive was up to 0.05 s before the kill; polling adds ~0.01 s.
    assert 0.4 <= gone <= 1.2
    assert state(manager_url)["lapses_total"] == 1


def test_two_nodes_running_cti_are_counted_as_overlap(manager_url: str, start_sim: StartSim) -> None:
    """Two sims from two nodes: the manager sees both and counts one overlap that keeps growing."""
    one = start_sim("--ports", "0", "--devices", "0", "--manager-url", manager_url, "--node-id", "server1")
    two = start_sim("--ports", "0", "--devices", "0", "--manager-url", manager_url, "--node-id", "server2")
    one.wait_line("HS-CTI READY")
    two.wait_line("HS-CTI READY")
    grown = wait_until(
        lambda: (s := state(manager_url))["overlap_seconds_total"] >= 0.3 and s, what="overlap to grow"
    )
    assert (sorted(h["node_id"] for h in grown["holders"]), grown["overlaps_total"]) == (
        ["server1", "server2"],
        1,
    )
    two.signal(signal.SIGTERM)
    assert two.wait() == 0
    after = state(manager_url)
    assert (after["overlapping"], after["overlaps_total"]) == (False, 1)


def test_a_lower_epoch_after_a_higher_is_stale(manager_url: str, start_sim: StartSim) -> None:
    """Epoch 5 on server1, then epoch 3 on server2: one stale epoch."""
    new = start_sim("--ports", "0", "--devices", "0", "--manager-url", manager_url, "--epoch", "5")
    new.wait_line("HS-CTI READY")
    new.signal(signal.SIGTERM)
    assert new.wait() == 0
    old = start_sim(
        "--ports", "0", "--devices", "0", "--manager-url", manager_url, "--epoch", "3", "--node-id", "server2"
    )
    old.wait_line("HS-CTI READY")
    after = state(manager_url)
    assert (after["stale_epoch_total"], after["max_epoch"], holder_ids(manager_url)) == (1, 5, ["server2"])


def test_reregisters_when_the_manager_forgets_it(manager_url: str, start_sim: StartSim) -> None:
    """A manager that lost its state answers keepalives 404; the sim registers again."""
    sim = start_sim("--ports", "0", "--devices", "0", "--manager-url", manager_url, "--node-id", "server1")
    sim.wait_line("HS-CTI READY")
    httpx.post(f"{manager_url}/reset", params={"holders": "true"}, timeout=2).raise_for_status()
    wait_until(lambda: holder_ids(manager_url) == ["server1"], timeout=2, what="re-registration")
    assert state(manager_url)["registrations_total"] == 1


def test_rides_out_a_manager_outage(start_sim: StartSim) -> None:
    """No manager at start: READY anyway (it does not wait for the manager), and it registers once the manager
    appears."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sim = start_sim("--ports", "1", "--devices", "0", "--manager-url", url, "--node-id", "server2")
    sim.wait_line("HS-CTI READY")
    assert sim.texts() == ["HS-CTI port 1/1", "HS-CTI READY"]  # READY before any manager answered
    assert sim.proc.poll() is None
    server = ServerThread(create_app(), port=port).start()
    try:
        wait_until(lambda: holder_ids(url) == ["server2"], timeout=3, what="registration after the outage")
        sim.signal(signal.SIGTERM)
        assert sim.wait() == 0
        assert holder_ids(url) == []
    finally:
        server.stop()


def test_without_manager_url_it_only_prints_and_idles(manager_url: str, start_sim: StartSim) -> None:
    """An empty manager URL: same lines and timing, registers nowhere, exits 0 on SIGTERM."""
    sim = start_sim("--ports", "1", "--devices", "1", "--manager-url", "")
    sim.wait_line("HS-CTI READY")
    assert sim.texts() == ["HS-CTI port 1/1", "HS-CTI device 1/1", "HS-CTI READY"]
    sim.signal(signal.SIGTERM)
    assert sim.wait() == 0
    assert state(manager_url)["registrations_total"] == 0


def test_negative_counts_exit_2(start_sim: StartSim) -> None:
    """--ports -1 is refused with exit status 2."""
    assert start_sim("--ports", "-1").wait() == 2


def test_parser_reads_the_environment() -> None:
    """Environment gives the defaults; flags win over it."""
    env = {"HS_NODE_ID": "server2", "HS_EPOCH": "4", "HS_CTI_MANAGER_URL": "http://127.0.0.13:2748"}
    args = build_parser(env).parse_args([])
    assert (args.node_id, args.epoch, args.manager_url, args.ports, args.devices) == (
        "server2",
        4,
        "http://127.0.0.13:2748",
        2,
        2,
    )
    assert build_parser(env).parse_args(["--epoch", "9"]).epoch == 9
    assert build_parser({}).parse_args([]).node_id == "server1"


def test_run_in_process_stops_through_its_event(manager_url: str) -> None:
    """`run(stop=...)` is embeddable: setting the event unregisters and returns 0."""
    out = io.StringIO()

    async def scenario() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(
            run(node_id="server1", epoch=2, ports=1, devices=0, manager_url=manager_url, out=out, stop=stop)
        )
        await until(lambda: "HS-CTI READY" in out.getvalue(), 10, "the CTI simulator ready")
        assert await asyncio.to_thread(holder_ids, manager_url) == ["server1"]
        stop.set()
        return await asyncio.wait_for(task, timeout=2)

    assert asyncio.run(scenario()) == 0
    assert (out.getvalue(), holder_ids(manager_url)) == ("HS-CTI port 1/1\nHS-CTI READY\n", [])


# --- warm mode: idle on the STANDBY, told ACTIVE / STANDBY on stdin -------------------------------------


def test_warm_starts_idle_registers_on_active_and_unregisters_on_standby(manager_url: str,
                                                                          start_sim: StartSim) -> None:
    """Warm: IDLE and registered nowhere; ACTIVE <epoch> registers with that epoch; STANDBY unregisters first."""
    sim = start_sim("--ports", "1", "--devices", "0", "--manager-url", manager_url, "--node-id", "server2",
                    env={"HS_CTI_MODE": "warm"}, orders=True)
    sim.wait_line("HS-CTI IDLE")
    assert state(manager_url)["registrations_total"] == 0
    sim.order("ACTIVE 12")
    sim.wait_line("HS-CTI READY")
    [holder] = state(manager_url)["holders"]
    assert (holder["node_id"], holder["epoch"]) == ("server2", 12)
    sim.order("STANDBY")
    sim.wait_line("HS-CTI IDLE")
    after = state(manager_url)  # read after IDLE: the registration was gone before the sim said so
    assert (after["holders"], after["unregistrations_total"], after["lapses_total"]) == ([], 1, 0)
    assert sim.texts() == ["HS-CTI IDLE", "HS-CTI port 1/1", "HS-CTI READY", "HS-CTI IDLE"]
    sim.order("ACTIVE 13")
    sim.wait_line("HS-CTI READY")
    assert [h["epoch"] for h in state(manager_url)["holders"]] == [13]


def test_warm_standby_during_registration_comes_back_idle_unregistered(manager_url: str,
                                                                       start_sim: StartSim) -> None:
    """STANDBY while the ports are still registering: it stops there, says IDLE and never registers."""
    sim = start_sim("--ports", "3", "--devices", "0", "--manager-url", manager_url, "--warm", orders=True)
    sim.wait_line("HS-CTI IDLE")
    sim.order("ACTIVE 1")
    sim.wait_line("HS-CTI port 1/3")
    sim.order("STANDBY")
    sim.wait_line("HS-CTI IDLE")
    assert (state(manager_url)["registrations_total"], sim.texts()[-2:]) == (0, ["HS-CTI port 1/3", "HS-CTI IDLE"])


@pytest.mark.parametrize("how", ["end of input", "SIGTERM"])
def test_warm_sim_unregisters_and_exits_0_when_its_supervisor_goes(manager_url: str, start_sim: StartSim,
                                                                   how: str) -> None:
    """An active warm sim whose stdin closes (its node is gone), or that gets SIGTERM, unregisters and exits 0."""
    sim = start_sim("--ports", "0", "--devices", "0", "--manager-url", manager_url, "--warm", orders=True)
    sim.wait_line("HS-CTI IDLE")
    sim.order("ACTIVE 4")
    sim.wait_line("HS-CTI READY")
    if how == "SIGTERM":
        sim.signal(signal.SIGTERM)
    else:
        sim.end_orders()
    assert sim.wait() == 0
    after = state(manager_url)
    assert (after["holders"], after["unregistrations_total"], after["lapses_total"]) == ([], 1, 0)


def test_warm_comes_from_the_environment() -> None:
    """HS_CTI_MODE=warm (any case) turns --warm on; anything else leaves it off."""
    assert build_parser({"HS_CTI_MODE": " Warm"}).parse_args([]).warm is True
    assert build_parser({"HS_CTI_MODE": "cold"}).parse_args([]).warm is False
    assert build_parser({}).parse_args(["--warm"]).warm is True
