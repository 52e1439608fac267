"""CtiSupervisor against real processes: no mocks, no sleeps as synchronisation (poll with deadlines).

Each test is a plain function running an async body with asyncio.run (pytest-asyncio is not used).
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hotstandby.model import Role
from services.monitor.cti import CtiService
from services.monitor.supervisor import CtiSupervisor

ROOT = Path(__file__).resolve().parents[3]
PY = sys.executable

# A child speaking the simulator's protocol: two ports, one device, READY, then it holds.
PROTOCOL_CHILD = textwrap.dedent(
    """
    import os, sys, time
    if len(sys.argv) > 1:
        open(sys.argv[1], "w").write(os.environ.get("HS_EPOCH", ""))
    for line in ("HS-CTI port 1/2", "HS-CTI port 2/2", "HS-CTI device 1/1", "HS-CTI READY"):
        print(line, flush=True)
    time.sleep(60)
    """
)
SILENT_CHILD = "import time; time.sleep(60)"


# ------------------------------------------------------------------ helpers


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), timeout=30))


async def until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> float:
    """Poll `cond` every 5 ms; return the seconds it took, or fail after `timeout`."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


def proc_state(pid: int) -> str | None:
    """The /proc state letter of `pid` (R, S, Z, ...), None when no such process exists."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


class Recorder:
    """Collects on_event lines with the monotonic time they arrived."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []

    def __call__(self, line: str) -> None:
        self.lines.append((time.monotonic(), line))

    def texts(self) -> list[str]:
        return [text for _, text in self.lines]

    def matching(self, needle: str) -> list[tuple[float, str]]:
        return [(t, text) for t, text in self.lines if needle in text]


def make(command: list[str], events: Recorder | None = None, **kw: Any) -> CtiSupervisor:
    kw.setdefault("restart_delay", lambda: 1.0)
    return CtiSupervisor(command, on_event=events or Recorder(), **kw)


async def closing(sup: CtiSupervisor, body: Callable[[], Awaitable[None]]) -> None:
    try:
        await body()
    finally:
        await sup.aclose()


# ------------------------------------------------------------------ start / stop


def test_protocol_child_runs_reports_counts_and_stops_cleanly(tmp_path: Path) -> None:
    """A protocol child is running after READY, with its counts and HS_EPOCH; stop leaves nothing."""
    epoch_file = tmp_path / "epoch"
    events = Recorder()
    sup = make([PY, "-c", PROTOCOL_CHILD, str(epoch_file)], events, env={"PATH": os.environ["PATH"]})

    async def body() -> None:
        assert sup.snapshot()["state"] == "stopped"
        await sup.start(epoch=7)
        pid = sup.snapshot()["pid"]
        assert isinstance(pid, int) and alive(pid)
        await until(lambda: sup.up, what="READY")
        snap = sup.snapshot()
        expected = {
            "state": "running",
            "pid": pid,
            "restarts": 0,
            "ports_registered": 2,
            "devices_registered": 1,
            "last_error": None,
            "desired": "running",
            "epoch": 7,
        }
        assert expected == snap
        assert sup.self_check() is None
        assert os.getpgid(pid) == pid  # its own process group (and session)
        await until(lambda: epoch_file.exists() and epoch_file.read_text() == "7", what="HS_EPOCH")

        await sup.stop("demotion")
        assert proc_state(pid) is None  # gone and reaped: not even a zombie
        assert group_members(pid) == []
        assert sup.snapshot()["state"] == "stopped"
        assert sup.snapshot()["pid"] is None
        assert sup.self_check() is None
        assert sup.restarts == 0  # a promotion is not a restart
        assert events.texts()[0] == f"CTI server started, pid {pid}, epoch 7"
        assert events.texts()[-1] == "CTI server stopped (demotion)"

    run(lambda: closing(sup, body))


def test_program_without_protocol_is_running_after_one_second_alive() -> None:
    """No HS-CTI line: starting for ~1 s, then running; a protocol child without READY stays starting.

    Starting is healthy for IPSWS during the startup grace (a peer must not take ACTIVE back
    mid-startup); a start that outlasts it without READY is reported.
    """
    silent = make([PY, "-c", SILENT_CHILD])
    half = make([PY, "-c", "import time; print('HS-CTI port 1/3', flush=True); time.sleep(60)"],
                starting_grace_s=0.5)

    async def body() -> None:
        t0 = time.monotonic()
        await asyncio.gather(silent.start(epoch=1), half.start(epoch=1))
        assert silent.snapshot()["state"] == "starting"
        assert silent.self_check() is None
        await until(lambda: silent.up, what="alive fallback")
        elapsed = time.monotonic() - t0
        assert elapsed >= 0.9  # running only once it stayed alive about a second
        # The half-protocol child spoke HS-CTI, so only READY makes it running.
        await until(lambda: half.snapshot()["ports_registered"] == 1, what="port line")
        assert half.snapshot()["state"] == "starting"
        await until(lambda: half.self_check() is not None, timeout=2, what="the startup grace over")
        assert re.fullmatch(r"CTI server starting for \d+ s without READY", half.self_check() or "")
        assert not half.up

    async def both() -> None:
        try:
            await body()
        finally:
            await asyncio.gather(silent.aclose(), half.aclose())

    run(both)


def test_stop_escalates_to_sigkill_and_takes_the_whole_group() -> None:
    """A child ignoring SIGTERM, with a grandchild, is SIGKILLed after the grace; the group is empty."""
    script = textwrap.dedent(
        """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        subprocess.Popen([sys.executable, "-c", "import signal, time; "
                          "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        print("HS-CTI READY", flush=True)
        time.sleep(60)
        """
    )
    events = Recorder()
    sup = make([PY, "-c", script], events, stop_grace_s=0.3)

    async def body() -> None:
        await sup.start(epoch=2)
        pid = sup.snapshot()["pid"]
        await until(lambda: sup.up and len(group_members(pid)) == 2, what="child and grandchild")
        t0 = time.monotonic()
        await sup.stop("operator")
        took = time.monotonic() - t0
        assert took >= 0.3  # SIGKILL only after the grace
        assert proc_state(pid) is None
        await until(lambda: group_members(pid) == [], timeout=2, what="group empty")
        assert "ignored SIGTERM" in events.texts()[-1]

    run(lambda: closing(sup, body))


def test_output_flood_never_blocks_the_child() -> None:
    """Megabytes of output (and a line longer than the chunk limit) never fill the pipe."""
    script = (
        "import sys; w = sys.stdout.write\n"
        "for i in range(20000): w('x' * 100 + '\\n')\n"
        "w('y' * 300000 + '\\n'); sys.stderr.write('e' * 100000)\n"
        "print('HS-CTI READY', flush=True); import time; time.sleep(60)"
    )
    sup = make([PY, "-c", script])

    async def body() -> None:
        await sup.start(epoch=1)
        await until(lambda: sup.up, timeout=10, what="READY after the flood")

    run(lambda: closing(sup, body))


# ------------------------------------------------------------------ watchdog


def test_killed_child_is_respawned_within_restart_delay() -> None:
    """kill -9 of the CTI server: respawned at once (first exit), counted once."""
    events = Recorder()
    sup = make([PY, "-c", PROTOCOL_CHILD], events, restart_delay=lambda: 1.0)

    async def body() -> None:
        await sup.start(epoch=3)
        await until(lambda: sup.up, what="READY")
        first = sup.snapshot()["pid"]
        os.kill(first, signal.SIGKILL)
        latency = await until(lambda: sup.snapshot()["pid"] not in (None, first), timeout=1.0, what="respawn")
        assert latency < 1.0
        assert sup.restarts == 1
        await until(lambda: sup.up, what="READY again")
        assert proc_state(first) is None  # the dead one was reaped
        assert sup.snapshot()["epoch"] == 3
        assert sup.snapshot()["last_error"] == "killed by signal SIGKILL"
        assert "CTI server killed by signal SIGKILL, restarting in 0 s" in events.texts()
        second = sup.snapshot()["pid"]
        assert f"CTI server restarted (watchdog), pid {second}, epoch 3" in events.texts()

    run(lambda: closing(sup, body))


def test_backoff_grows_then_resets_after_ten_seconds_up() -> None:
    """Exits in a row back off 0, 0.1 s, ...; a child up 10 s (fake clock) resets it to 0."""
    now = [1000.0]
    events = Recorder()
    sup = make([PY, "-c", PROTOCOL_CHILD], events, clock=lambda: now[0])

    async def kill_and_wait_respawn() -> None:
        await until(lambda: sup.up, what="READY")
        pid = sup.snapshot()["pid"]
        os.kill(pid, signal.SIGKILL)
        await until(lambda: sup.snapshot()["pid"] not in (None, pid), what="respawn")

    async def body() -> None:
        await sup.start(epoch=1)
        await kill_and_wait_respawn()
        await kill_and_wait_respawn()
        now[0] += 11.0  # the third child "stays up" 11 s
        await kill_and_wait_respawn()
        delays = [text.rsplit("in ", 1)[1] for _, text in events.matching("restarting in")]
        assert delays == ["0 s", "0.1 s", "0 s"]
        assert sup.restarts == 3

    run(lambda: closing(sup, body))


def test_crash_loop_fails_with_backoff_keeps_retrying_and_stop_wins() -> None:
    """exit(3) at once: backoff 0/0.1/0.2/cap (0.8 I), `failed` after 5, retries at the cap, stop ends it."""
    events = Recorder()
    sup = make([PY, "-c", "import sys; sys.exit(3)"], events, restart_delay=lambda: 0.5)

    async def body() -> None:
        await sup.start(epoch=4)
        await until(lambda: sup.snapshot()["state"] == "failed", timeout=5, what="failed")
        snap = sup.snapshot()
        assert snap["last_error"] == "exited with status 3 5 times in a row"
        assert sup.self_check() == "exited with status 3 5 times in a row"
        assert not sup.up
        await until(lambda: sup.restarts >= 6, timeout=3, what="retries at the cap")
        assert sup.snapshot()["state"] == "failed"  # still failed while retrying

        delays = [text.rsplit("in ", 1)[1] for _, text in events.matching("restarting in")]
        assert delays[:6] == ["0 s", "0.1 s", "0.2 s", "0.4 s", "0.4 s", "0.4 s"]
        assert any(text.startswith("CTI server failed: exited with status 3 5 times") for text in events.texts())
        # Each respawn came no earlier than its announced delay after the exit.
        # Each respawn came no earlier than its announced delay after the exit, and within one I.
        exits = [t for t, _ in events.matching("restarting in")][:5]
        spawns = [t for t, _ in events.matching("restarted (watchdog)")][:5]
        for exit_t, spawn_t, delay in zip(exits, spawns, [0, 0.1, 0.2, 0.4, 0.4], strict=True):
            assert delay - 0.01 <= spawn_t - exit_t < 0.5 + 0.5  # I, plus a margin for a fork on a loaded machine

        await sup.stop("demotion")
        count = sup.restarts
        # No respawn after stop returned: a bounded look past the cap (absence cannot be polled).
        await asyncio.sleep(0.8)
        assert count == sup.restarts
        assert sup.snapshot()["state"] == "stopped"
        # Stopped, but it could not run: still unhealthy, so a peer does not fail back to it.
        assert re.fullmatch(r"CTI server failed on its last start: exited with status 3 \d+ times in a row",
                            sup.self_check() or "")

    run(lambda: closing(sup, body))


def test_a_failed_start_stays_unhealthy_while_stopped_until_a_start_reaches_ready(tmp_path: Path) -> None:
    """Demoted after its CTI failed, the node reports IPSWS error as STANDBY (no failback flapping) until fixed."""
    program = tmp_path / "cti-server"
    sup = make([str(program)], Recorder(), restart_delay=lambda: 0.125)

    async def body() -> None:
        await sup.start(epoch=1)
        assert sup.snapshot()["state"] == "failed"
        await sup.stop("demotion")
        assert sup.snapshot()["state"] == "stopped"
        assert sup.self_check() == f"CTI server failed on its last start: command not found: {program}"
        program.write_text("#!/bin/sh\necho 'HS-CTI READY'\nexec sleep 60\n")
        program.chmod(0o755)
        await sup.start(epoch=2)
        await until(lambda: sup.up, timeout=3, what="READY")
        await sup.stop("demotion")
        assert sup.self_check() is None

    run(lambda: closing(sup, body))


def test_missing_command_fails_then_recovers_when_it_appears(tmp_path: Path) -> None:
    """A missing or non-executable command is `failed` with the reason; it recovers once fixed."""
    program = tmp_path / "cti-server"
    events = Recorder()
    sup = make([str(program)], events, restart_delay=lambda: 0.125)  # cap 0.8 I = 0.1 s

    async def body() -> None:
        await sup.start(epoch=1)
        assert sup.snapshot()["state"] == "failed"
        assert sup.snapshot()["last_error"] == f"command not found: {program}"
        assert sup.self_check() == f"command not found: {program}"
        assert events.texts() == [f"CTI server failed: command not found: {program}; retrying every 0.1 s"]

        program.write_text("#!/bin/sh\necho 'HS-CTI READY'\nexec sleep 60\n")
        await until(lambda: sup.snapshot()["last_error"] == f"permission denied: {program}", what="permission denied")
        program.chmod(0o755)
        await until(lambda: sup.up, timeout=3, what="recovery")
        assert sup.self_check() is None
        assert "recovered from" in events.texts()[-1]

    run(lambda: closing(sup, body))


# ------------------------------------------------------------------ restarts, concurrency


def test_restart_counts_keeps_epoch_and_never_starts_a_stopped_cti() -> None:
    """restart() replaces the process with the same epoch; counted unless told not; no-op when stopped."""
    events = Recorder()
    sup = make([PY, "-c", PROTOCOL_CHILD], events)

    async def body() -> None:
        await sup.restart("manual")
        assert sup.snapshot()["state"] == "stopped" and sup.restarts == 0

        await sup.start(epoch=5)
        first = sup.snapshot()["pid"]
        await sup.restart("manual")
        second = sup.snapshot()["pid"]
        assert second != first and proc_state(first) is None
        assert sup.restarts == 1
        assert sup.snapshot()["epoch"] == 5
        assert events.texts()[-1] == f"CTI server restarted (manual), pid {second}, epoch 5"
        await sup.restart("config change", counted=False)
        assert sup.restarts == 1
        assert sup.snapshot()["pid"] not in (first, second)

    run(lambda: closing(sup, body))


def test_a_respawn_after_the_node_epoch_moved_registers_at_the_new_epoch(tmp_path: Path) -> None:
    """The survivor of a healed dual ACTIVE moves its epoch above its peer's while its CTI runs (R4): the running
    server keeps its epoch, but a watchdog respawn must register at the node's epoch now, not the one it left
    behind (found by the nemesis, seed 532 without a witness: CTI crashes after a healed cut registered at epoch 2
    on a node at epoch 3)."""
    epoch_file = tmp_path / "epoch"
    sup = make([PY, "-c", PROTOCOL_CHILD, str(epoch_file)])
    role: list[tuple[Role | None, int]] = [(Role.ACTIVE, 3)]
    cti = CtiService(sup, lambda: role[0])

    async def body() -> None:
        await cti.converge()
        await until(lambda: sup.up and epoch_file.exists() and epoch_file.read_text() == "3", what="READY at 3")
        first = sup.snapshot()["pid"]
        role[0] = (Role.ACTIVE, 5)  # R4: the survivor moved above the peer that stepped down
        await cti.converge()
        assert (sup.snapshot()["pid"], sup.snapshot()["epoch"]) == (first, 3)  # not restarted for it
        epoch_file.unlink()
        os.kill(first, signal.SIGKILL)
        await until(lambda: sup.snapshot()["pid"] not in (None, first) and epoch_file.exists()
                    and epoch_file.read_text() != "", what="respawn")
        assert (epoch_file.read_text(), sup.snapshot()["epoch"]) == ("5", 5)

    run(lambda: closing(sup, body))


def test_concurrent_commands_apply_in_call_order() -> None:
    """start/stop/restart from many tasks at once: the last call decides and nothing leaks."""
    sup = make([PY, "-c", PROTOCOL_CHILD], stop_grace_s=0.5)
    spawned: list[int] = []

    async def start_and_note() -> None:
        await sup.start(epoch=1)
        if sup.snapshot()["pid"] is not None:
            spawned.append(sup.snapshot()["pid"])

    async def body() -> None:
        await asyncio.gather(start_and_note(), sup.stop("x"), start_and_note(), sup.restart("y"), sup.stop("z"))
        assert sup.snapshot()["state"] == "stopped" and sup.snapshot()["pid"] is None
        await asyncio.gather(sup.stop("a"), start_and_note(), sup.stop("b"), start_and_note())
        assert sup.snapshot()["desired"] == "running"
        live = sup.snapshot()["pid"]
        assert [p for p in spawned if alive(p)] == [live]
        await sup.stop("end")
        assert all(proc_state(p) is None for p in spawned)

    run(lambda: closing(sup, body))


# ------------------------------------------------------------------ daily restart


def test_daily_restart_once_per_day_at_the_set_minute() -> None:
    """With an injected wall clock: restarts at HH:MM once per date, not before, again the next day."""
    wall = [datetime(2026, 11, 25, 2, 59, 30)]
    events = Recorder()
    sup = make([PY, "-c", PROTOCOL_CHILD], events, wall=lambda: wall[0], daily_check_s=0.05)

    async def body() -> None:
        with pytest.raises(ValueError):
            sup.set_daily_restart("25:00")
        sup.set_daily_restart("03:00")
        await sup.start(epoch=9)
        assert await sup.daily_tick() is False  # 02:59
        wall[0] = datetime(2026, 11, 25, 3, 0, 10)
        await until(lambda: sup.restarts == 1, what="daily restart by the background loop")
        assert events.texts()[-1].startswith("CTI server restarted (daily restart at 03:00), pid ")
        wall[0] = datetime(2026, 11, 25, 3, 0, 50)
        assert await sup.daily_tick() is False  # same date, same minute: once
        wall[0] += timedelta(days=1)
        assert await sup.daily_tick() is True
        assert sup.restarts == 2
        sup.set_daily_restart("")
        wall[0] += timedelta(days=1)
        assert await sup.daily_tick() is False
        await sup.stop()
        sup.set_daily_restart("03:00")
        wall[0] += timedelta(days=1)
        assert await sup.daily_tick() is False  # never starts a stopped CTI server
        assert sup.snapshot()["state"] == "stopped"

    run(lambda: closing(sup, body))


# ------------------------------------------------------------------ dies with its node (R9)


def test_cti_dies_when_the_node_process_is_sigkilled() -> None:
    """SIGKILL of the process running the supervisor takes the CTI server with it (PDEATHSIG)."""
    helper = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {str(ROOT)!r})
        from services.monitor.supervisor import CtiSupervisor

        async def main():
            sup = CtiSupervisor([sys.executable, "-c", {SILENT_CHILD!r}], restart_delay=lambda: 1.0)
            await sup.start(epoch=1)
            print(sup.snapshot()["pid"], flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    assert_dies_with_its_node(helper)


def assert_dies_with_its_node(helper: str, env: dict[str, str] | None = None) -> None:
    """Run ``helper`` (a node stand-in that prints its CTI pid), SIGKILL it, and see the CTI pid gone
    within 3 s."""
    node = subprocess.Popen([PY, "-c", helper], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert node.stdout is not None
        ready, _, _ = select.select([node.stdout], [], [], 10)
        assert ready, "helper did not report the CTI pid"
        cti = int(node.stdout.readline())
        assert alive(cti)
        node.kill()
        node.wait(timeout=5)
        deadline = time.monotonic() + 3
        while alive(cti):
            assert time.monotonic() < deadline, "CTI server outlived its SIGKILLed node"
            time.sleep(0.01)
    finally:
        node.kill()
        node.wait()
        if node.stdout is not None:
            node.stdout.close()


# ------------------------------------------------------------------ the real simulator


@pytest.mark.skipif(not (ROOT / "services" / "ctisim" / "sim.py").exists(), reason="CTI simulator absent")
def test_real_simulator_reaches_running_with_its_counts() -> None:
    """The bundled simulator's HS-CTI lines drive the state; SIGTERM stops it cleanly."""
    events = Recorder()
    sup = make(
        [PY, "-m", "services.ctisim.sim", "--ports", "1", "--devices", "1"],
        events,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

    async def body() -> None:
        await sup.start(epoch=11)
        await until(lambda: sup.up, timeout=10, what="simulator READY")
        snap = sup.snapshot()
        assert (snap["ports_registered"], snap["devices_registered"]) == (1, 1)
        assert "1 ports and 1 devices registered" in events.texts()[-1]
        await sup.stop("demotion")
        assert events.texts()[-1] == "CTI server stopped (demotion)"  # exited on SIGTERM, no SIGKILL

    run(lambda: closing(sup, body))
