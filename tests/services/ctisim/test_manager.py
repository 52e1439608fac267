"""The manager over real HTTP: a uvicorn server on 127.0.0.1, clocks injected so lapses need no sleep."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from services.ctisim.manager import create_app, parse_bind

from .helpers import ROOT, FakeClock, ManagerProcess, ServerThread, free_port


@dataclass
class Manager:
    url: str
    clock: FakeClock
    wall: FakeClock
    http: httpx.Client

    def post(self, path: str, **body: object) -> httpx.Response:
        return self.http.post(path, json=body)

    def state(self) -> dict:
        resp = self.http.get("/state")
        assert resp.status_code == 200
        return resp.json()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ServerThread, FakeClock, FakeClock]]:
    clock, wall = FakeClock(start=50.0), FakeClock(start=1_800_000_000.0)
    srv = ServerThread(create_app(clock=clock, wall=wall)).start()
    yield srv, clock, wall
    srv.stop()


@pytest.fixture
def mgr(server: tuple[ServerThread, FakeClock, FakeClock]) -> Iterator[Manager]:
    srv, clock, wall = server
    with httpx.Client(base_url=srv.url, timeout=2) as http:
        http.post("/reset", params={"holders": "true"}).raise_for_status()
        yield Manager(srv.url, clock, wall, http)


def test_healthz_answers_200(mgr: Manager) -> None:
    """The manager says it serves."""
    assert mgr.http.get("/healthz").status_code == 200


def test_register_makes_a_holder_with_wall_since(mgr: Manager) -> None:
    """A registration is listed with node, epoch and its unix start time."""
    resp = mgr.post("/register", node_id="server1", epoch=3, ports=2, devices=2)
    assert resp.status_code == 200
    state = mgr.state()
    assert [{"node_id": "server1", "epoch": 3, "since": mgr.wall.now}] == [
        {k: h[k] for k in ("node_id", "epoch", "since")} for h in state["holders"]
    ]
    assert (state["registrations_total"], state["max_epoch"]) == (1, 3)


def test_keepalive_of_an_unknown_node_is_404(mgr: Manager) -> None:
    """An unknown node is told to register again."""
    assert mgr.post("/keepalive", node_id="server9", epoch=1).status_code == 404


def test_registration_lapses_without_keepalives(mgr: Manager) -> None:
    """Kept alive it stays; 0.5 s after the last keepalive it is gone and a keepalive gets 404."""
    mgr.post("/register", node_id="server1", epoch=1)
    mgr.clock.advance(0.25)
    assert mgr.post("/keepalive", node_id="server1", epoch=1).status_code == 200
    mgr.clock.advance(0.25)
    assert [h["node_id"] for h in mgr.state()["holders"]] == ["server1"]
    mgr.clock.advance(0.25)
    assert mgr.post("/keepalive", node_id="server1", epoch=1).status_code == 404
    state = mgr.state()
    assert (state["holders"], state["lapses_total"]) == ([], 1)


def test_two_nodes_overlap_exactly_while_both_hold(mgr: Manager) -> None:
    """server2 registers 0.25 s after server1, server1 unregisters 0.25 s later: 0.25 s, one overlap."""
    mgr.post("/register", node_id="server1", epoch=1)
    mgr.clock.advance(0.25)
    mgr.post("/keepalive", node_id="server1", epoch=1)
    mgr.post("/register", node_id="server2", epoch=2)
    mgr.clock.advance(0.25)
    assert mgr.state()["overlapping"]
    mgr.post("/unregister", node_id="server1")
    mgr.clock.advance(10.0)
    mgr.post("/keepalive", node_id="server2", epoch=2)
    state = mgr.state()
    assert (
        state["overlaps_total"],
        pytest.approx(state["overlap_seconds_total"]),
        pytest.approx(state["overlap_longest_seconds"]),
        state["overlapping"],
    ) == (1, 0.25, 0.25, False)


def test_a_crashed_holder_overlaps_for_the_lapse(mgr: Manager) -> None:
    """server1 stops keeping alive as server2 takes over: the overlap is the 0.5 s lapse."""
    mgr.post("/register", node_id="server1", epoch=1)
    mgr.post("/register", node_id="server2", epoch=2)
    for _ in range(10):
        mgr.clock.advance(0.1)
        assert mgr.post("/keepalive", node_id="server2", epoch=2).status_code == 200
    state = mgr.state()
    assert (
        pytest.approx(state["overlap_seconds_total"]),
        state["lapses_total"],
        [h["node_id"] for h in state["holders"]],
    ) == (0.5, 1, ["server2"])


def test_lower_epoch_after_higher_is_stale(mgr: Manager) -> None:
    """Registering epoch 1 after epoch 2 counts one stale epoch; the manager still accepts it."""
    mgr.post("/register", node_id="server2", epoch=2)
    mgr.post("/unregister", node_id="server2")
    resp = mgr.post("/register", node_id="server1", epoch=1)
    assert (resp.status_code, resp.json()["stale_epoch"]) == (200, True)
    assert mgr.state()["stale_epoch_total"] == 1


def test_reregistering_replaces(mgr: Manager) -> None:
    """One node registering twice holds one registration."""
    mgr.post("/register", node_id="server1", epoch=1)
    resp = mgr.post("/register", node_id="server1", epoch=2)
    state = mgr.state()
    assert (
        resp.json()["replaced"],
        len(state["holders"]),
        state["registrations_total"],
        state["overlaps_total"],
    ) == (True, 1, 2, 0)


def test_unregister_by_an_older_epoch_leaves_the_newer(mgr: Manager) -> None:
    """A late unregister from a previous CTI process does not remove the current registration."""
    mgr.post("/register", node_id="server1", epoch=2)
    assert mgr.post("/unregister", node_id="server1", epoch=1).json() == {"ok": True, "removed": False}
    assert [h["node_id"] for h in mgr.state()["holders"]] == ["server1"]


def test_reset_zeroes_counters_and_keeps_holders_unless_asked(mgr: Manager) -> None:
    """POST /reset zeroes the counters; ?holders=true also drops the registrations."""
    mgr.post("/register", node_id="server1", epoch=1)
    state = mgr.http.post("/reset").json()
    assert (state["registrations_total"], len(state["holders"])) == (0, 1)
    state = mgr.http.post("/reset", params={"holders": "true"}).json()
    assert state["holders"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"epoch": 1},
        {"node_id": "", "epoch": 1},
        {"node_id": "server1"},
        {"node_id": "s", "epoch": 1, "ports": -1},
    ],
)
def test_bad_registration_is_422(mgr: Manager, body: dict) -> None:
    """A registration without a node or an epoch, or with negative counts, is refused."""
    assert mgr.http.post("/register", json=body).status_code == 422


@pytest.mark.parametrize(
    ("bind", "expected"),
    [("127.0.0.13:2748", ("127.0.0.13", 2748)), ("[::1]:80", ("::1", 80)), ("localhost:1", ("localhost", 1))],
)
def test_parse_bind(bind: str, expected: tuple[str, int]) -> None:
    """HOST:PORT splits at the last colon."""
    assert expected == parse_bind(bind)


@pytest.mark.parametrize("bind", ["127.0.0.1", ":80", "127.0.0.1:0", "127.0.0.1:x", "h:70000"])
def test_parse_bind_refuses_bad_input(bind: str) -> None:
    """Anything but HOST:PORT with a real port is refused."""
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_bind(bind)


def test_manager_main_refuses_a_bad_bind_with_exit_2() -> None:
    """`manager_main("nonsense")` says why on one line and exits 2."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from services.ctisim.manager import manager_main; "
            "sys.exit(manager_main('nonsense'))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert (proc.returncode, len(proc.stderr.strip().splitlines())) == (2, 1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_manager_process_serves_and_exits_0_on_signal(sig: signal.Signals) -> None:
    """The deployed form (`manager_main` in its own process) serves /state and stops cleanly."""
    mgr = ManagerProcess(free_port())
    try:
        assert httpx.get(f"{mgr.url}/state", timeout=2).json()["holders"] == []
        mgr.proc.send_signal(sig)
        assert mgr.proc.wait(timeout=5) == 0
    finally:
        mgr.stop()


def test_events_journal_registrations_and_lapses_after_a_sequence_number(mgr: Manager) -> None:
    """GET /events?after=N answers the journal entries numbered above N, each with node, epoch and wall time."""
    first = mgr.http.get("/events").json()["events"]
    last = first[-1]["seq"] if first else 0
    mgr.post("/register", node_id="server1", epoch=7)
    mgr.post("/register", node_id="server2", epoch=6)
    mgr.clock.advance(1.0)
    body = mgr.http.get("/events", params={"after": last}).json()
    assert [(e["kind"], e["node_id"], e["epoch"], e["stale"]) for e in body["events"]] == [
        ("register", "server1", 7, False), ("register", "server2", 6, True),
        ("lapse", "server1", 7, False), ("lapse", "server2", 6, False)]
    assert body["events"][0]["wall"] == mgr.wall.now
